"""sg.interpolant: expanded linear (1-D, N-D) and cubic not-a-knot spline interpolants.

Oracles: numpy.interp, scipy.interpolate.RegularGridInterpolator and
make_interp_spline (values, extrapolation, spline derivatives), polynomials the
methods reproduce exactly, central finite differences of the derivative
graphs, and the compiled C backend against the numpy VM.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.interpolate import RegularGridInterpolator, make_interp_spline

import symgraph as sg
from symgraph.errors import InvalidInputError, ShapeError, SymgraphError
from symgraph.interpolant import MAX_EXPANDED_POINTS, interpolant, not_a_knot_coefficients

RNG = np.random.default_rng(11)
G1 = np.array([-1.0, -0.3, 0.4, 0.5, 1.7, 2.0, 3.5])  # non-uniform
Y1 = np.array([0.3, -1.2, 0.8, 2.0, 0.1, -0.4, 1.5])


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "symgraph-cache"))


def _eval(F: sg.Function, points) -> np.ndarray:
    return np.array([float(F(p)) for p in points])


def _derivatives(F: sg.Function) -> tuple[sg.Function, sg.Function]:
    """Functions of x giving F'(x) and F''(x) for a 1-D interpolant, through the call node."""
    x = sg.symbols("x")
    d1 = sg.grad(F(x), x)
    return sg.Function("d1", [x], [d1]), sg.Function("d2", [x], [sg.grad(d1, x)])


def _inside(g: np.ndarray, n: int) -> np.ndarray:
    return RNG.uniform(g[0], g[-1], n)


# ---------------------------------------------------------------- linear, 1-D

def test_linear_1d_matches_numpy_interp_inside_and_on_grid():
    F = interpolant("f", "linear", G1, Y1)
    pts = np.concatenate([_inside(G1, 50), G1])
    np.testing.assert_allclose(_eval(F, pts), np.interp(pts, G1, Y1), rtol=1e-14, atol=1e-14)
    assert np.array_equal(_eval(F, G1[:-1]), Y1[:-1])  # grid points exact (the piece starting there)


def test_linear_1d_extrapolates_with_end_slopes():
    F = interpolant("f", "linear", G1, Y1)
    s0 = (Y1[1] - Y1[0]) / (G1[1] - G1[0])
    s1 = (Y1[-1] - Y1[-2]) / (G1[-1] - G1[-2])
    for x in (-3.0, -1.5):
        assert float(F(x)) == pytest.approx(Y1[0] + s0 * (x - G1[0]), rel=1e-14)
    for x in (3.6, 10.0):
        assert float(F(x)) == pytest.approx(Y1[-1] + s1 * (x - G1[-1]), rel=1e-13)


def test_linear_1d_reproduces_affine_data_everywhere():
    F = interpolant("f", "linear", G1, 2.5 * G1 - 0.75)
    pts = RNG.uniform(-5.0, 6.0, 60)
    np.testing.assert_allclose(_eval(F, pts), 2.5 * pts - 0.75, rtol=1e-13, atol=1e-13)


def test_linear_1d_derivative_is_the_interval_slope():
    F = interpolant("f", "linear", G1, Y1)
    d1, d2 = _derivatives(F)
    pts = np.concatenate([_inside(G1, 30), [-4.0, 5.0]])
    slopes = np.diff(Y1) / np.diff(G1)
    k = np.clip(np.searchsorted(G1, pts, side="right") - 1, 0, len(slopes) - 1)
    np.testing.assert_allclose(_eval(d1, pts), slopes[k], rtol=1e-13)
    eps = 1e-6  # away from the kinks, the derivative is the finite difference too
    fd = (_eval(F, pts + eps) - _eval(F, pts - eps)) / (2 * eps)
    away = np.min(np.abs(pts[:, None] - G1[None, :]), axis=1) > 1e-4
    np.testing.assert_allclose(_eval(d1, pts[away]), fd[away], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(_eval(d2, pts), 0.0, atol=0.0)


def test_linear_two_points():
    F = interpolant("f", "linear", [1.0, 3.0], [2.0, 6.0])
    assert [float(F(x)) for x in (0.0, 1.0, 2.0, 3.0, 4.0)] == [0.0, 2.0, 4.0, 6.0, 8.0]


# ---------------------------------------------------------------- linear, N-D

def _grid_2d():
    axes = [np.array([0.0, 0.5, 1.5, 2.0]), np.array([-1.0, 0.0, 0.25, 1.0, 3.0])]
    return axes, RNG.normal(size=(4, 5))


def test_linear_2d_matches_regular_grid_interpolator():
    axes, V = _grid_2d()
    F = interpolant("f", "linear", axes, V)
    ref = RegularGridInterpolator(axes, V, method="linear", bounds_error=False, fill_value=None)
    inside = np.column_stack([_inside(a, 40) for a in axes])
    outside = np.column_stack([RNG.uniform(-1.0, 3.0, 20), RNG.uniform(-3.0, 5.0, 20)])
    on_grid = np.array([[a, b] for a in axes[0] for b in axes[1]])
    pts = np.concatenate([inside, outside, on_grid])
    np.testing.assert_allclose(_eval(F, pts), ref(pts), rtol=1e-12, atol=1e-12)


def test_linear_3d_matches_regular_grid_interpolator():
    axes = [np.array([0.0, 1.0, 2.5]), np.array([0.0, 0.3, 0.6, 1.0]), np.array([-2.0, 2.0])]
    V = RNG.normal(size=(3, 4, 2))
    F = interpolant("f", "linear", axes, V)
    ref = RegularGridInterpolator(axes, V, method="linear")
    pts = np.column_stack([_inside(a, 40) for a in axes])
    np.testing.assert_allclose(_eval(F, pts), ref(pts), rtol=1e-12, atol=1e-12)


def test_linear_nd_reproduces_multilinear_data_everywhere():
    axes, _ = _grid_2d()
    X, Y = np.meshgrid(*axes, indexing="ij")
    f = lambda x, y: 1.5 - 2.0 * x + 0.5 * y + 0.75 * x * y  # noqa: E731
    F = interpolant("f", "linear", axes, f(X, Y))
    pts = RNG.uniform(-4.0, 5.0, (50, 2))
    np.testing.assert_allclose(_eval(F, pts), f(pts[:, 0], pts[:, 1]), rtol=1e-12, atol=1e-12)


def test_linear_nd_gradient_matches_finite_differences():
    axes, V = _grid_2d()
    F = interpolant("f", "linear", axes, V)
    x = sg.symbols("x", 2)
    G = sg.Function("g", [x], [sg.grad(F(x), x)])
    eps = 1e-6
    for p in np.column_stack([_inside(a, 15) for a in axes]):
        fd = [(float(F(p + eps * e)) - float(F(p - eps * e))) / (2 * eps) for e in np.eye(2)]
        np.testing.assert_allclose(G(p), fd, rtol=1e-6, atol=1e-7)


def test_one_axis_list_takes_a_vector():
    F = interpolant("f", "linear", [G1], Y1)
    assert F.input_shapes == ((1,),)
    assert float(F(np.array([0.45]))) == pytest.approx(np.interp(0.45, G1, Y1), rel=1e-14)


# ---------------------------------------------------------------- cubic spline

def test_bspline_matches_make_interp_spline_inside_outside_and_on_grid():
    F = interpolant("s", "bspline", G1, Y1)
    ref = make_interp_spline(G1, Y1, k=3)
    pts = np.concatenate([_inside(G1, 60), G1, [-2.0, -1.2, 3.7, 5.0]])
    np.testing.assert_allclose(_eval(F, pts), ref(pts), rtol=1e-10, atol=1e-10)
    assert np.array_equal(_eval(F, G1[:-1]), Y1[:-1])


def test_bspline_derivatives_match_scipy_and_finite_differences():
    F = interpolant("s", "bspline", G1, Y1)
    d1, d2 = _derivatives(F)
    ref = make_interp_spline(G1, Y1, k=3)
    pts = np.concatenate([_inside(G1, 40), G1, [-2.0, 5.0]])
    np.testing.assert_allclose(_eval(d1, pts), ref(pts, 1), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(_eval(d2, pts), ref(pts, 2), rtol=1e-8, atol=1e-8)
    eps = 1e-6
    fd2 = (_eval(d1, pts + eps) - _eval(d1, pts - eps)) / (2 * eps)
    np.testing.assert_allclose(_eval(d2, pts[:40]), fd2[:40], rtol=1e-5, atol=1e-5)
    # at grid points d2 is continuous (C2) but d3 jumps: the difference is O(eps), not O(1)
    np.testing.assert_allclose(_eval(d2, pts[40:]), fd2[40:], rtol=0, atol=1e-3)


def test_bspline_hessian_of_the_call():
    F = interpolant("s", "bspline", G1, Y1)
    x = sg.symbols("x")
    H = sg.Function("h", [x], [sg.hessian(F(x), x)])
    ref = make_interp_spline(G1, Y1, k=3)
    for p in (-0.8, 0.45, 1.0, 3.1):
        assert H(p).toarray()[0, 0] == pytest.approx(float(ref(p, 2)), rel=1e-8, abs=1e-8)


def test_bspline_second_derivative_continuous_at_grid_points():
    F = interpolant("s", "bspline", G1, Y1)
    _, d2 = _derivatives(F)
    eps = 1e-9
    left, right = _eval(d2, G1[1:-1] - eps), _eval(d2, G1[1:-1] + eps)
    np.testing.assert_allclose(left, right, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("g", [np.array([0.0, 1.0, 2.0, 3.0]), G1])
def test_bspline_reproduces_cubics_exactly(g):
    p = np.polynomial.Polynomial([0.7, -1.3, 0.4, 0.9])
    F = interpolant("s", "bspline", g, p(g))
    d1, d2 = _derivatives(F)
    pts = RNG.uniform(g[0] - 1.0, g[-1] + 1.0, 40)  # extrapolation continues the cubic
    np.testing.assert_allclose(_eval(F, pts), p(pts), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(_eval(d1, pts), p.deriv(1)(pts), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(_eval(d2, pts), p.deriv(2)(pts), rtol=1e-8, atol=1e-8)


def test_not_a_knot_coefficients_closed_form():
    g = np.array([0.0, 1.0, 2.0, 4.0])
    c = not_a_knot_coefficients(g, g**3)
    expected = np.array([[gk**3, 3 * gk**2, 3 * gk, 1.0] for gk in g[:-1]])  # (gk + t)^3
    np.testing.assert_allclose(c, expected, rtol=1e-12, atol=1e-12)


@settings(deadline=None, max_examples=25)
@given(st.integers(4, 12), st.integers(0, 2**31 - 1), st.sampled_from(["linear", "bspline"]))
def test_random_data_matches_reference(m, seed, method):
    rng = np.random.default_rng(seed)
    g = np.cumsum(rng.uniform(0.1, 2.0, m))
    y = rng.normal(size=m)
    F = interpolant("f", method, g, y)
    pts = np.concatenate([rng.uniform(g[0], g[-1], 10), g])
    ref = np.interp(pts, g, y) if method == "linear" else make_interp_spline(g, y, k=3)(pts)
    np.testing.assert_allclose(_eval(F, pts), ref, rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------- symbols, compiled C

def test_call_in_a_larger_graph():
    F = interpolant("s", "bspline", G1, Y1)
    x = sg.symbols("x", 2)
    H = sg.Function("h", [x], [F(x[0]) * F(x[1]) + 1.0])
    ref = make_interp_spline(G1, Y1, k=3)
    p = np.array([0.2, 1.9])
    assert float(H(p)) == pytest.approx(float(ref(p[0]) * ref(p[1]) + 1.0), rel=1e-10)


@pytest.mark.parametrize("method, grid, values, points", [
    ("linear", G1, Y1, np.array([-2.0, -1.0, 0.0, 0.45, 0.5, 1.8, 3.5, 4.0])),
    ("bspline", G1, Y1, np.array([-2.0, -1.0, 0.0, 0.45, 0.5, 1.8, 3.5, 4.0])),
    ("linear", [[0.0, 0.5, 1.5, 2.0], [-1.0, 0.0, 1.0]], np.arange(12.0).reshape(4, 3) ** 1.5,
     np.array([[0.1, -0.5], [1.5, 0.0], [2.5, 3.0], [-1.0, 0.9]])),
])
def test_compiled_c_matches_vm(method, grid, values, points):
    F = interpolant("f", method, grid, values)
    x = sg.symbols("x") if np.ndim(points[0]) == 0 else sg.symbols("x", 2)
    D = sg.Function("d", [x], [F(x), sg.grad(F(x), x)])
    C = D.compile()
    for p in points:
        for a, b in zip(D(p), C(p)):
            np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-14)


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("method, grid, values, err, words", [
    ("cubic", [0.0, 1.0], [0.0, 1.0], InvalidInputError, "method"),
    ("linear", [0.0, 1.0, 1.0], [0.0, 1.0, 2.0], InvalidInputError, "strictly increasing"),
    ("linear", [0.0, 2.0, 1.0], [0.0, 1.0, 2.0], InvalidInputError, "grid[0][1]"),
    ("linear", [0.0, np.nan, 1.0], [0.0, 1.0, 2.0], InvalidInputError, "NaN"),
    ("linear", [0.0, np.inf], [0.0, 1.0], InvalidInputError, "inf"),
    ("linear", [0.0, 1.0], [0.0, np.nan], InvalidInputError, "values"),
    ("linear", [0.0, 1.0, 2.0], [0.0, 1.0], ShapeError, "values must have shape (3,)"),
    ("linear", [[0.0, 1.0], [0.0, 1.0, 2.0]], np.zeros((3, 2)), ShapeError, "(2, 3)"),
    ("linear", [0.0], [0.0], ShapeError, "at least 2"),
    ("bspline", [0.0, 1.0, 2.0], [0.0, 1.0, 2.0], ShapeError, "at least 4"),
    ("linear", [[0.0, 1.0], [[0.0, 1.0]]], np.zeros((2, 2)), ShapeError, "grid[1] must be 1-D"),
    ("linear", [], [], InvalidInputError, "grid"),
    ("linear", ["a", "b"], [0.0, 1.0], InvalidInputError, "grid"),
])
def test_bad_input(method, grid, values, err, words):
    with pytest.raises(err) as info:
        interpolant("f", method, grid, values)
    assert isinstance(info.value, SymgraphError)
    assert words in str(info.value)


@pytest.mark.parametrize("method, grid, values, words", [
    ("bspline", [[0.0, 1, 2, 3], [0.0, 1, 2, 3]], np.zeros((4, 4)), "1-D only"),
    ("linear", np.arange(MAX_EXPANDED_POINTS + 1.0), np.zeros(MAX_EXPANDED_POINTS + 1), "binary search"),
    ("linear", [np.arange(20.0), np.arange(20.0)], np.zeros((20, 20)), "400 points"),
])
def test_expand_true_refuses_what_is_not_expanded(method, grid, values, words):
    # without expand=True these are lookup nodes (tests/test_interpolant_node.py)
    with pytest.raises(ShapeError) as info:
        interpolant("f", method, grid, values, expand=True)
    assert words in str(info.value)


def test_largest_expanded_grid_works():
    g = np.linspace(0.0, 1.0, MAX_EXPANDED_POINTS)
    F = interpolant("f", "linear", g, np.sin(g))
    assert float(F(0.3)) == pytest.approx(np.interp(0.3, g, np.sin(g)), rel=1e-14)


@pytest.mark.parametrize("method, grid, values, query", [
    ("linear", [0.0, 1.0, 2.0], [1.0, 1.0, 1.0], np.nan),                 # constant: the pieces fold to 1
    ("linear", [0.0, 1.0, 3.0], [0.0, 2.0, 3.0], np.nan),
    ("bspline", [0.0, 1.0, 2.0, 4.0], [1.0, 0.0, 2.0, 1.0], np.nan),
    ("linear", [[0.0, 1.0], [0.0, 1.0]], [[1.0, 1.0], [1.0, 1.0]], [0.5, np.nan]),
    ("linear", [[0.0, 1.0], [0.0, 2.0]], [[0.0, 2.0], [1.0, 3.0]], [np.nan, 0.5]),
])
def test_nan_query_gives_nan_in_the_vm_and_in_c(method, grid, values, query):
    F = interpolant("f", method, grid, values)
    q = np.asarray(query, dtype=float)
    assert np.isnan(float(F(q)))
    if shutil.which("gcc"):
        assert np.isnan(float(F.compile()(q)))


def test_complex_grid_or_values_are_refused_not_cast():
    with pytest.raises(InvalidInputError, match="values must hold real numbers"):
        interpolant("f", "linear", [0.0, 1.0, 2.0], np.array([0.0, 1.0, 2.0]) + 1j)
    with pytest.raises(InvalidInputError, match=r"grid\[0\] must hold real numbers"):
        interpolant("f", "linear", np.array([0.0, 1.0, 2.0]) + 0j, [0.0, 1.0, 2.0])


def test_last_grid_point_and_both_ends_match_numpy_and_scipy():
    g, y = np.array([0, 1, 3, 4]), np.array([0.0, 2.0, 3.0, 1.0])   # an integer grid
    L, S = interpolant("l", "linear", g, y), interpolant("s", "bspline", g, y)
    spl = make_interp_spline(g.astype(float), y, k=3)
    for q in (4.0, 0.0, 3.0):
        assert float(L(q)) == np.interp(q, g, y)
    for q, want in ((5.0, -1.0), (-1.0, -2.0)):
        assert float(L(q)) == pytest.approx(want, rel=1e-14)
    for q in (4.0, 5.0, -1.0, 0.0):
        assert float(S(q)) == pytest.approx(float(spl(q)), rel=1e-12, abs=1e-14)
    x = sg.symbols("x")
    D = sg.Function("d", [x], [sg.grad(L(x), x)])
    assert float(D(1.0)) == 0.5 and float(D(4.0)) == -2.0   # right piece at a grid point, end piece at the last
