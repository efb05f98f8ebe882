"""sg.interpolant's lookup node (symgraph/lookup.py): large grids, N-D bspline, derivatives of every order.

Oracles: numpy.interp and scipy.interpolate (make_interp_spline k=3 with its
derivatives, RegularGridInterpolator linear and cubic with a direct sparse
solver) at 10^3-10^4 grid points; polynomials the methods reproduce exactly;
the expanded interpolant (symgraph/interpolant.py) on grids it can expand;
central finite differences and complex step; the compiled C against the VM.
"""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.interpolate import RegularGridInterpolator, make_interp_spline
from scipy.sparse.linalg import spsolve

import symgraph as sg
from symgraph.errors import InvalidInputError, OptionError, ShapeError, SymgraphError
from symgraph.interpolant import MAX_EXPANDED_POINTS, interpolant
from symgraph.lookup import is_lookup, lookup_function, nodal_data

RNG = np.random.default_rng(1101)
HAVE_GCC = shutil.which("gcc") is not None
needs_gcc = pytest.mark.skipif(not HAVE_GCC, reason="needs gcc")


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "symgraph-cache"))


def _grid(m: int, lo: float = -2.0, hi: float = 3.0, rng=RNG) -> np.ndarray:
    """``m`` strictly increasing, non-uniform points from ``lo`` to ``hi``."""
    steps = rng.uniform(0.2, 1.8, m - 1)
    return lo + (hi - lo) * np.concatenate([[0.0], np.cumsum(steps) / steps.sum()])


def _batch(F: sg.Function, points: np.ndarray) -> np.ndarray:
    """F at every point, by one map (the VM runs the node once over all points)."""
    return np.asarray(F.map(len(points))(np.asarray(points, dtype=float)), dtype=float).reshape(-1)


def _derivatives_1d(F: sg.Function) -> sg.Function:
    """``x -> (F, F', F'')`` for a 1-D interpolant, through the call node."""
    x = sg.symbols("x")
    d1 = sg.grad(F(x), x)
    return sg.Function("d", [x], [F(x), d1, sg.grad(d1, x)])


def _tensor_spline(axes, V, p, nu=None) -> float:
    """The tensor-product not-a-knot spline (or its derivative ``nu``) at ``p``: make_interp_spline axis by axis."""
    W = V
    for j, g in enumerate(axes):
        W = make_interp_spline(g, W, k=3, axis=0)(p[j], 0 if nu is None else nu[j])
    return float(W)


# ---------------------------------------------------------------- what is made

def test_large_grid_becomes_a_lookup_node_and_small_one_stays_expanded():
    g = np.linspace(0.0, 1.0, MAX_EXPANDED_POINTS + 1)
    assert is_lookup(interpolant("f", "linear", g, g))
    assert not is_lookup(interpolant("f", "linear", g[:-1], g[:-1]))
    assert is_lookup(interpolant("f", "linear", g[:-1], g[:-1], expand=False))
    assert is_lookup(interpolant("f", "bspline", [g[:5], g[:6]], np.zeros((5, 6))))  # N-D bspline: node only
    F = interpolant("table", "linear", g, g)
    assert F.name == "table" and F.input_shapes == ((),) and F.output_shapes == ((),)
    assert interpolant("f", "linear", [g[:3], g[:4]], np.zeros((3, 4)), expand=False).input_shapes == ((2,),)


# ---------------------------------------------------------------- values against references

@pytest.mark.parametrize("m", [1000, 10000])
def test_linear_1d_matches_numpy_interp_on_large_grids(m):
    g = _grid(m)
    y = np.sin(3.0 * g) + RNG.normal(scale=0.1, size=m)
    F = interpolant("f", "linear", g, y)
    inside = RNG.uniform(g[0], g[-1], 2000)
    pts = np.concatenate([inside, g, [g[-1]]])
    np.testing.assert_allclose(_batch(F, pts), np.interp(pts, g, y), rtol=1e-12, atol=1e-12)
    assert np.array_equal(_batch(F, g[:-1]), y[:-1])  # grid points exact: the piece starting there


@pytest.mark.parametrize("m", [1000, 10000])
def test_bspline_1d_matches_make_interp_spline_with_derivatives(m):
    g = _grid(m, 0.0, 10.0)
    y = np.cos(g) + 0.1 * g
    F = interpolant("s", "bspline", g, y)
    ref = make_interp_spline(g, y, k=3)
    pts = np.concatenate([RNG.uniform(g[0], g[-1], 500), g[::17], [-0.01, 10.01]])
    np.testing.assert_allclose(_batch(F, pts), ref(pts), rtol=1e-9, atol=1e-9)
    # far out, the end cubic of a short end cell amplifies rounding ((0.4 / h)^3 eps), in scipy too
    far = np.array([-0.4, -0.3, 10.3, 10.4])
    np.testing.assert_allclose(_batch(F, far), ref(far), rtol=1e-6)
    D = _derivatives_1d(F)
    for p in pts[::25]:
        v, d1, d2 = D(p)
        assert float(v) == pytest.approx(float(ref(p)), rel=1e-9, abs=1e-9)
        assert float(d1) == pytest.approx(float(ref(p, 1)), rel=1e-7, abs=1e-7)
        assert float(d2) == pytest.approx(float(ref(p, 2)), rel=1e-5, abs=1e-5)


def test_linear_nd_matches_regular_grid_interpolator_on_a_large_grid():
    axes = [_grid(40), _grid(30, 0.0, 1.0), _grid(12, -1.0, 1.0)]  # 14400 points
    V = RNG.normal(size=(40, 30, 12))
    F = interpolant("f", "linear", axes, V)
    assert is_lookup(F)
    ref = RegularGridInterpolator(axes, V, method="linear", bounds_error=False, fill_value=None)
    inside = np.column_stack([RNG.uniform(a[0], a[-1], 300) for a in axes])
    outside = np.column_stack([RNG.uniform(a[0] - 1.0, a[-1] + 1.0, 100) for a in axes])
    on_grid = np.column_stack([a[RNG.integers(0, a.size, 50)] for a in axes])
    pts = np.concatenate([inside, outside, on_grid])
    got = np.asarray(F.map(len(pts))(pts), dtype=float).reshape(-1)
    np.testing.assert_allclose(got, ref(pts), rtol=1e-11, atol=1e-11)


def test_bspline_nd_matches_regular_grid_interpolator_cubic_and_axiswise_splines():
    axes = [_grid(9), _grid(7, 0.0, 1.0), _grid(5, -1.0, 1.0)]
    V = RNG.normal(size=(9, 7, 5))
    F = interpolant("f", "bspline", axes, V)
    ref = RegularGridInterpolator(axes, V, method="cubic", solver=spsolve)
    pts = np.column_stack([RNG.uniform(a[0], a[-1], 60) for a in axes])
    got = np.asarray(F.map(len(pts))(pts), dtype=float).reshape(-1)
    np.testing.assert_allclose(got, ref(pts), rtol=1e-10, atol=1e-10)
    outside = np.column_stack([RNG.uniform(a[0] - 0.5, a[-1] + 0.5, 20) for a in axes])  # extrapolated
    for p in outside:
        assert float(F(p)) == pytest.approx(_tensor_spline(axes, V, p), rel=1e-10, abs=1e-10)


def test_bspline_2d_on_a_large_grid_matches_axiswise_splines():
    axes = [_grid(120, 0.0, 2.0), _grid(100, -1.0, 1.0)]  # 12000 points
    X, Y = np.meshgrid(*axes, indexing="ij")
    V = np.sin(2.0 * X) * np.cos(Y) + X * Y
    F = interpolant("f", "bspline", axes, V)
    for p in np.column_stack([RNG.uniform(a[0], a[-1], 8) for a in axes]):
        assert float(F(p)) == pytest.approx(_tensor_spline(axes, V, p), rel=1e-10, abs=1e-10)
        assert float(F(p)) == pytest.approx(np.sin(2.0 * p[0]) * np.cos(p[1]) + p[0] * p[1], abs=1e-6)


# ---------------------------------------------------------------- exact reproduction

def test_bspline_node_reproduces_cubics_and_their_derivatives_everywhere():
    g = _grid(400)
    p = np.polynomial.Polynomial([0.7, -1.3, 0.4, 0.9])
    D = _derivatives_1d(interpolant("s", "bspline", g, p(g)))
    x = sg.symbols("x")
    S = interpolant("s", "bspline", g, p(g))
    D3 = sg.Function("d3", [x], [sg.grad(sg.grad(sg.grad(S(x), x), x), x)])
    for q in RNG.uniform(g[0] - 1.0, g[-1] + 1.0, 30):  # extrapolation continues the cubic
        v, d1, d2 = (float(a) for a in D(q))
        assert v == pytest.approx(p(q), rel=1e-10, abs=1e-10)
        assert d1 == pytest.approx(p.deriv(1)(q), rel=1e-8, abs=1e-8)
        assert d2 == pytest.approx(p.deriv(2)(q), rel=1e-6, abs=1e-6)
        assert float(D3(q)) == pytest.approx(p.deriv(3)(q), rel=1e-4)


def test_bspline_nd_reproduces_tensor_cubics():
    axes = [_grid(6), _grid(5, 0.0, 1.0)]
    f = lambda x, y: (1.0 + x - 0.5 * x**3) * (2.0 - y**2 + 0.25 * y**3)  # noqa: E731
    X, Y = np.meshgrid(*axes, indexing="ij")
    F = interpolant("f", "bspline", axes, f(X, Y))
    x = sg.symbols("x", 2)
    H = sg.Function("h", [x], [sg.hessian(F(x), x)])
    for p in RNG.uniform(-2.5, 3.5, (20, 2)):
        assert float(F(p)) == pytest.approx(f(*p), rel=1e-9, abs=1e-9)
        a, b = p
        fxy = (1.0 - 1.5 * a**2) * (-2.0 * b + 0.75 * b**2)
        fxx = (-3.0 * a) * (2.0 - b**2 + 0.25 * b**3)
        fyy = (1.0 + a - 0.5 * a**3) * (-2.0 + 1.5 * b)
        np.testing.assert_allclose(H(p).toarray(), [[fxx, fxy], [fxy, fyy]], rtol=1e-7, atol=1e-7)


def test_linear_node_reproduces_multilinear_data_everywhere():
    axes = [_grid(20), _grid(15, 0.0, 1.0)]
    X, Y = np.meshgrid(*axes, indexing="ij")
    f = lambda x, y: 1.5 - 2.0 * x + 0.5 * y + 0.75 * x * y  # noqa: E731
    F = interpolant("f", "linear", axes, f(X, Y))
    pts = RNG.uniform(-4.0, 5.0, (50, 2))
    got = np.asarray(F.map(50)(pts), dtype=float).reshape(-1)
    np.testing.assert_allclose(got, f(pts[:, 0], pts[:, 1]), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- node against the expanded version

@settings(deadline=None, max_examples=20)
@given(st.integers(4, 30), st.integers(0, 2**31 - 1), st.sampled_from(["linear", "bspline"]))
def test_node_agrees_with_expanded_1d(m, seed, method):
    rng = np.random.default_rng(seed)
    g = _grid(m, rng=rng)
    y = rng.normal(size=m)
    E, N = (_derivatives_1d(interpolant("f", method, g, y, expand=e)) for e in (True, False))
    pts = np.concatenate([rng.uniform(g[0] - 1.0, g[-1] + 1.0, 8), g])
    for p in pts:
        for a, b in zip(E(p), N(p)):
            assert float(b) == pytest.approx(float(a), rel=1e-10, abs=1e-10)


@settings(deadline=None, max_examples=15)
@given(st.lists(st.integers(2, 9), min_size=1, max_size=3), st.integers(0, 2**31 - 1),
       st.sampled_from(["linear", "bspline"]))
def test_random_nd_grids_match_scipy(counts, seed, method):
    rng = np.random.default_rng(seed)
    if method == "bspline":
        counts = [max(c, 4) for c in counts]
    axes = [_grid(c, rng.uniform(-2.0, 0.0), rng.uniform(0.5, 3.0), rng=rng) for c in counts]
    V = rng.normal(size=counts)
    F = interpolant("f", method, axes, V, expand=False)
    pts = np.column_stack([rng.uniform(a[0] - 0.5, a[-1] + 0.5, 12) for a in axes])
    got = np.asarray(F.map(len(pts))(pts), dtype=float).reshape(-1)
    if method == "linear":
        ref = RegularGridInterpolator(axes, V, method="linear", bounds_error=False, fill_value=None)(pts)
    else:
        ref = [_tensor_spline(axes, V, p) for p in pts]
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9)


def test_two_point_axes():
    F = interpolant("f", "linear", [[1.0, 3.0], [0.0, 1.0]], [[2.0, 2.0], [6.0, 8.0]], expand=False)
    x = sg.symbols("x", 2)
    G = sg.Function("g", [x], [F(x), sg.grad(F(x), x)])
    f = lambda x, y: 2.0 + 2.0 * (x - 1.0) + (x - 1.0) * y  # noqa: E731  (the bilinear through the corners)
    for p in ([2.0, 0.5], [5.0, -1.0], [0.0, 3.0], [3.0, 1.0]):  # inside, extrapolated, on the last corner
        v, g = G(np.array(p))
        assert float(v) == pytest.approx(f(*p), rel=1e-14, abs=1e-14)
        assert g.tolist() == pytest.approx([2.0 + p[1], p[0] - 1.0], rel=1e-14)


def test_node_agrees_with_expanded_2d_linear_with_gradient():
    axes = [_grid(8), _grid(6, 0.0, 1.0)]
    V = RNG.normal(size=(8, 6))
    x = sg.symbols("x", 2)
    E, N = (interpolant("f", "linear", axes, V, expand=e) for e in (True, False))
    DE, DN = (sg.Function("d", [x], [F(x), sg.grad(F(x), x)]) for F in (E, N))
    pts = np.concatenate([np.column_stack([RNG.uniform(a[0] - 1.0, a[-1] + 1.0, 30) for a in axes]),
                          np.column_stack([axes[0][:6], axes[1]])])
    for p in pts:
        for a, b in zip(DE(p), DN(p)):
            np.testing.assert_allclose(b, a, rtol=1e-11, atol=1e-11)


# ---------------------------------------------------------------- derivatives

def test_linear_1d_derivative_is_the_interval_slope_and_second_is_zero():
    g = _grid(1000)
    y = RNG.normal(size=1000)
    D = _derivatives_1d(interpolant("f", "linear", g, y))
    slopes = np.diff(y) / np.diff(g)
    for q in np.concatenate([RNG.uniform(g[0], g[-1], 20), g[[0, 5, 999]], [-5.0, 7.0]]):
        k = min(max(int(np.searchsorted(g, q, side="right")) - 1, 0), 998)
        _, d1, d2 = D(q)
        assert float(d1) == pytest.approx(slopes[k], rel=1e-12)
        assert float(d2) == 0.0


def test_linear_second_derivative_has_no_entries():
    F = interpolant("f", "linear", _grid(300), RNG.normal(size=300))
    x = sg.symbols("x")
    H = sg.hessian(F(x), x)
    assert H.nnz == 0


def test_bspline_first_and_second_derivatives_match_finite_differences():
    g = _grid(2000, 0.0, 4.0)
    S = interpolant("s", "bspline", g, np.exp(-g) * np.sin(5.0 * g))
    D = _derivatives_1d(S)
    eps = 1e-6
    for q in RNG.uniform(0.0, 4.0, 15):
        _, d1, d2 = (float(a) for a in D(q))
        assert d1 == pytest.approx((float(S(q + eps)) - float(S(q - eps))) / (2 * eps), rel=1e-6, abs=1e-6)
        fd2 = (float(D(q + eps)[1]) - float(D(q - eps)[1])) / (2 * eps)
        assert d2 == pytest.approx(fd2, rel=1e-5, abs=1e-4)


def test_bspline_second_derivative_continuous_at_grid_points():
    g = _grid(500)
    D = _derivatives_1d(interpolant("s", "bspline", g, np.sin(g)))
    eps = 1e-10
    for q in g[1:-1:37]:
        assert float(D(q - eps)[2]) == pytest.approx(float(D(q + eps)[2]), abs=1e-6)


def test_nd_mixed_derivatives_match_scipy_and_are_one_node():
    axes = [_grid(9), _grid(8, 0.0, 1.0)]
    V = RNG.normal(size=(9, 8))
    F = interpolant("f", "bspline", axes, V)
    x = sg.symbols("x", 2)
    gx = sg.grad(F(x), x)
    G = sg.Function("g", [x], [gx, sg.hessian(F(x), x)])
    for p in np.column_stack([RNG.uniform(a[0], a[-1], 10) for a in axes]):
        grad, H = G(p)
        np.testing.assert_allclose(grad, [_tensor_spline(axes, V, p, nu) for nu in ((1, 0), (0, 1))],
                                   rtol=1e-9, atol=1e-9)
        ref = [[_tensor_spline(axes, V, p, (2, 0)), _tensor_spline(axes, V, p, (1, 1))],
               [_tensor_spline(axes, V, p, (1, 1)), _tensor_spline(axes, V, p, (0, 2))]]
        np.testing.assert_allclose(H.toarray(), ref, rtol=1e-8, atol=1e-8)
    s = F.structure
    dxy = s.derivative_function(0).structure.derivative_function(1)
    dyx = s.derivative_function(1).structure.derivative_function(0)
    assert dxy is dyx  # d/dx d/dy and d/dy d/dx: the same Function, so one node


def test_jvp_and_vjp_of_the_node_agree_with_complex_step():
    axes = [_grid(30), _grid(25, 0.0, 1.0)]
    V = RNG.normal(size=(30, 25))
    F = interpolant("f", "bspline", axes, V)
    x, v = sg.symbols("x", 2), sg.symbols("v", 2)
    J = sg.Function("j", [x, v], [sg.jvp(F(x), x, v)])
    p, d = np.array([0.3, 0.55]), np.array([0.7, -1.1])
    cs = float(np.imag(F(p + 1e-30j * d))) / 1e-30  # the VM on complex input: the same pieces
    assert float(J(p, d)) == pytest.approx(cs, rel=1e-12)
    G = sg.Function("g", [x], [sg.grad(F(x), x)])
    assert float(G(p) @ d) == pytest.approx(cs, rel=1e-12)


# ---------------------------------------------------------------- compiled C

@needs_gcc
def test_compiled_c_matches_vm_1d_with_derivatives_nan_and_out_of_grid():
    g = _grid(5000)
    S = interpolant("s", "bspline", g, np.sin(2.0 * g))
    L = interpolant("l", "linear", g, np.cos(g))
    x = sg.symbols("x")
    D = sg.Function("d", [x], [S(x), sg.grad(S(x), x), sg.hessian(S(x), x), L(x), sg.grad(L(x), x)])
    C = D.compile()
    pts = np.concatenate([RNG.uniform(g[0], g[-1], 20), g[[0, 1, 2500, -2, -1]], [-9.0, 9.0, np.inf, -np.inf]])
    for p in pts:
        for a, b in zip(D(p), C(p)):
            a, b = (np.asarray(u.toarray() if hasattr(u, "toarray") else u, dtype=float) for u in (a, b))
            np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-14)
    for a, b in zip(D(np.nan), C(np.nan)):
        a, b = (np.asarray(u.toarray() if hasattr(u, "toarray") else u, dtype=float) for u in (a, b))
        assert np.isnan(a).all() and np.isnan(b).all()


@needs_gcc
def test_c_cell_search_on_uniform_grids_matches_the_vm_at_grid_points_and_their_neighbours():
    # a uniform axis is searched from the mean step (then fixed), a jittered one too, an irregular
    # one by halving: all must pick the cell numpy.searchsorted picks, even one ulp either side
    uniform = np.linspace(-1.0, 2.0, 301)
    jittered = uniform + RNG.uniform(-0.2, 0.2, 301) * 0.01
    F1, F2 = (interpolant("f", "linear", g, RNG.normal(size=301)) for g in (uniform, jittered))
    F3 = interpolant("f", "bspline", [uniform[::30], jittered[::30], _grid(4)], RNG.normal(size=(11, 11, 4)))
    x = sg.symbols("x", 3)
    D = sg.Function("d", [x], [F1(x[0]), sg.grad(F1(x[0]), x), F2(x[1]), sg.grad(F2(x[1]), x),
                               F3(x), sg.grad(F3(x), x)])
    C = D.compile()
    picks = np.concatenate([RNG.integers(0, 301, 30), RNG.integers(0, 11, 10) * 30])
    pts = []
    for k in picks:
        for a in (uniform[k], jittered[k]):
            for v in (a, np.nextafter(a, -np.inf), np.nextafter(a, np.inf)):
                pts.append([v, jittered[(k * 7) % 301], 0.1])
                pts.append([uniform[(k * 3) % 301], v, -0.3])
    pts += [[-1e300, 0.0, 0.0], [1e300, 0.5, 0.0], [-np.inf, 0.0, 0.0], [np.inf, 0.0, 0.0], [0.3, -5.0, 9.0]]
    for p in np.array(pts):
        for a, b in zip(D(p), C(p)):
            np.testing.assert_allclose(np.asarray(b, dtype=float), np.asarray(a, dtype=float), rtol=1e-12, atol=1e-12)
    out = C(np.array([np.nan, 0.0, 0.0]))
    assert np.isnan(out[0]) and np.isnan(out[1][0]) and np.isnan(out[4]) and np.isnan(out[5]).all()
    out = C(np.array([0.0, np.nan, 0.0]))
    assert np.isnan(out[2]) and np.isnan(out[3][1]) and np.isnan(out[4]) and not np.isnan(out[0])


@needs_gcc
@pytest.mark.parametrize("method", ["linear", "bspline"])
def test_compiled_c_matches_vm_nd(method):
    axes = [_grid(20), _grid(15, 0.0, 1.0), _grid(6, -1.0, 1.0)]
    V = RNG.normal(size=(20, 15, 6))
    F = interpolant("f", method, axes, V)
    x = sg.symbols("x", 3)
    D = sg.Function("d", [x], [F(x), sg.grad(F(x), x), sg.hessian(F(x), x)])
    C = D.compile()
    inside = np.column_stack([RNG.uniform(a[0], a[-1], 15) for a in axes])
    edges = np.array([[a[0] for a in axes], [a[-1] for a in axes], [a[3] for a in axes], [-5.0, 2.0, 4.0]])
    for p in np.concatenate([inside, edges]):
        for a, b in zip(D(p), C(p)):
            a, b = (np.asarray(u.toarray() if hasattr(u, "toarray") else u, dtype=float) for u in (a, b))
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)
    assert np.isnan(float(C(np.array([0.0, np.nan, 0.0]))[0]))
    M = F.map(40)  # the node inside a loop in C, over all points at once in the VM
    pts = np.column_stack([RNG.uniform(a[0] - 0.5, a[-1] + 0.5, 40) for a in axes])
    np.testing.assert_allclose(M.compile()(pts), M(pts), rtol=1e-13, atol=1e-13)


def test_value_gradient_and_hessian_share_one_table_in_c():
    axes = [_grid(30), _grid(20, 0.0, 1.0)]
    F = interpolant("f", "bspline", axes, RNG.normal(size=(30, 20)))
    x = sg.symbols("x", 2)
    D = sg.Function("d", [x], [F(x), sg.grad(F(x), x), sg.hessian(F(x), x)])
    code = D.c_code()
    assert code.count("static const double nd[") == 1
    assert code.count("static const double nd[") == F.c_code().count("static const double nd[")
    assert len(code) < 1.5 * len(F.c_code())


@needs_gcc
def test_c_size_grows_linearly_with_the_table():
    sizes = []
    for m in (1000, 4000):
        g = np.linspace(0.0, 1.0, m)
        F = interpolant("f", "bspline", g, np.sin(g))
        sizes.append(len(F.c_code()))
    per_number = (sizes[1] - sizes[0]) / (3 * 3000)  # value and M + 1 breakpoint per point
    assert 5.0 < per_number < 30.0


# ---------------------------------------------------------------- out of grid, NaN, inf

def test_out_of_grid_extrapolates_with_the_end_pieces():
    g = _grid(600)
    y = RNG.normal(size=600)
    L = interpolant("l", "linear", g, y)
    s0, s1 = (y[1] - y[0]) / (g[1] - g[0]), (y[-1] - y[-2]) / (g[-1] - g[-2])
    for q in (-10.0, -2.5):
        assert float(L(q)) == pytest.approx(y[0] + s0 * (q - g[0]), rel=1e-12)
    for q in (3.5, 12.0):
        assert float(L(q)) == pytest.approx(y[-1] + s1 * (q - g[-1]), rel=1e-11)
    S = interpolant("s", "bspline", g, y)
    ref = make_interp_spline(g, y, k=3)
    for q in (-2.2, -2.01, 3.01, 3.1):
        assert float(S(q)) == pytest.approx(float(ref(q)), rel=1e-8)


def test_nan_and_inf_queries():
    g = _grid(400)
    for method in ("linear", "bspline"):
        F = interpolant("f", method, g, np.full(400, 2.0))  # flat: NaN must not fold away
        v, d1, d2 = (float(a) for a in _derivatives_1d(F)(np.nan))
        assert np.isnan(v) and np.isnan(d1)
        assert np.isnan(d2) if method == "bspline" else d2 == 0.0  # linear: F'' is structurally 0
        G = interpolant("f", method, g, g if method == "linear" else g**3)  # end pieces of full degree
        assert float(G(np.inf)) == np.inf and float(G(-np.inf)) == -np.inf
    F = interpolant("f", "linear", [g[:30], g[:40]], np.ones((30, 40)))
    assert np.isnan(float(F(np.array([np.nan, 0.0])))) and np.isnan(float(F(np.array([0.0, np.nan]))))


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("grid, values, err, words", [
    (np.r_[np.arange(300.0), 299.0], np.zeros(301), InvalidInputError, "strictly increasing"),
    (np.r_[np.arange(300.0), np.nan], np.zeros(301), InvalidInputError, "NaN"),
    (np.arange(300.0), np.zeros(299), ShapeError, "values must have shape (300,)"),
    ([np.arange(30.0), np.arange(20.0)], np.zeros((20, 30)), ShapeError, "(30, 20)"),
    (np.arange(300.0), np.r_[np.zeros(299), np.inf], InvalidInputError, "values"),
    ([np.arange(30.0), np.arange(20.0)[::-1]], np.zeros((30, 20)), InvalidInputError, "grid[1]"),
])
def test_bad_grids_and_values_for_the_node(grid, values, err, words):
    for expand in (None, False):
        with pytest.raises(err) as info:
            interpolant("f", "bspline", grid, values, expand=expand)
        assert isinstance(info.value, SymgraphError)
        assert words in str(info.value)


def test_bspline_needs_four_points_per_axis_for_the_node_too():
    with pytest.raises(ShapeError, match="at least 4"):
        interpolant("f", "bspline", [np.arange(10.0), np.arange(3.0)], np.zeros((10, 3)), expand=False)


@pytest.mark.parametrize("expand", ["yes", 1, 0.0])
def test_expand_must_be_a_bool_or_none(expand):
    with pytest.raises(OptionError, match="expand"):
        interpolant("f", "linear", [0.0, 1.0], [0.0, 1.0], expand=expand)


def test_a_saved_node_is_the_same_lookup():
    from symgraph.serialize import from_bytes, to_bytes

    F = interpolant("f", "linear", np.arange(300.0), np.arange(300.0) ** 2)
    G = from_bytes(to_bytes(F))
    assert is_lookup(G) and G.name == "f"
    assert [float(G(v)) for v in (2.5, 299.5)] == [float(F(v)) for v in (2.5, 299.5)]


def test_lookup_function_directly():
    g = np.array([0.0, 1.0, 2.0, 4.0])
    assert nodal_data([g], g**2, "linear").shape == (4, 1)
    F = lookup_function("sq", "linear", [g], g**2, flat=True)
    assert [float(F(v)) for v in (0.5, 3.0, 5.0)] == [0.5, 10.0, 22.0]  # the end piece continued: 16 + 6 * 1
    S = interpolant("s", "bspline", np.linspace(0.0, 1.0, 300), np.linspace(0.0, 1.0, 300) ** 3)
    T = S.structure.table  # the shared evaluator: derivative orders and their factors p!/(p-o)! as inputs
    got = [float(T(0.5, np.array([float(o)]), np.array([float(math.perm(p, o)) for p in range(4)])))
           for o in range(4)]
    np.testing.assert_allclose(got, [0.125, 0.75, 3.0, 6.0], rtol=1e-8)


def test_lookup_nodes_and_their_derivatives_save_load_and_pickle():
    import pickle

    from symgraph.native import load_native
    from symgraph.serialize import from_bytes, to_bytes

    axes = [np.linspace(0.0, 1.0, 30), np.linspace(-1.0, 1.0, 20)]
    X, Y = np.meshgrid(*axes, indexing="ij")
    T = sg.interpolant("t", "bspline", axes, np.sin(3 * X) * Y ** 2)
    p = sg.symbols("p", 2)
    G = sg.Function("g", [p], [T(p), sg.grad(T(p), p), sg.hessian(T(p), p)])
    pt = np.array([0.3, -0.4])
    want = G.compile()(pt)
    for H in (from_bytes(to_bytes(G)), pickle.loads(pickle.dumps(G))):
        got = H.compile()(pt)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_array_equal(got[2].toarray(), want[2].toarray())
        np.testing.assert_array_equal(H(pt)[1], G(pt)[1])
        assert any(is_lookup(C) for C in H.tape.callees)
    Tl = from_bytes(to_bytes(T))
    q = sg.symbols("q", 2)
    D = sg.Function("d", [q], [sg.hessian(Tl(q), q)])
    np.testing.assert_allclose(D(pt).toarray(), sg.Function("d0", [q], [sg.hessian(T(q), q)])(pt).toarray(),
                               rtol=1e-14)
    with pytest.raises(sg.SerializationError, match="nodal data must be floats of shape"):
        load_native(("native", "lookup_table", "bspline", False, "t", tuple(axes), np.zeros((30, 20, 2))), [], "r")
    with pytest.raises(sg.SerializationError, match="lookup orders"):
        load_native(("native", "lookup", 0, (4, 0)), [T.tape.callees[0].structure.table], "r")


def test_tables_differing_in_one_entry_never_share_compiled_code(tmp_path):
    """The compile cache keys a lookup by every byte of its tables (a repr of a large array elides its middle)."""
    g = np.linspace(0.0, 1.0, 2000)
    v = g ** 2
    w = v.copy()
    w[1000] += 1.0
    A = interpolant("same_name", "linear", g, v)
    B = interpolant("same_name", "linear", g, w)
    q = 0.5 * (g[999] + g[1000])
    a, b = A.compile(cache_dir=str(tmp_path)), B.compile(cache_dir=str(tmp_path))
    assert float(a(q)) == float(A(q)) and float(b(q)) == float(B(q)) and float(a(q)) != float(b(q))
