"""sg.taylor (symgraph/taylor.py): Taylor coefficients of t -> f(x + t v) against SymPy, nested jvp, closed forms, C."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings, strategies as st

import symgraph as sg
from symgraph.errors import DifferentiationError, InvalidInputError, ShapeError
from symgraph.taylor import taylor
from strategies import random_graphs

PROFILE = settings(max_examples=25, deadline=None, derandomize=True,
                   suppress_health_check=[HealthCheck.too_slow])


def _values(coeffs, x, x0):
    """The coefficients evaluated by the VM at x0 (one float array per order)."""
    F = sg.Function("c", [x], [np.asarray(c, dtype=object) for c in coeffs])
    out = F(np.asarray(x0, dtype=float))
    out = out if len(coeffs) > 1 else [out]
    return [np.asarray(r, dtype=float) for r in out]


def _sympy_coeffs(f, x, x0, v, order):
    """Taylor coefficients of t -> f(x0 + t v) by SymPy: derivatives in t at 0 over k!."""
    t = sp.Symbol("t")
    e = sg.to_sympy(f)
    by_name = {str(s): s for s in e.free_symbols}
    names = [by_name.get(s.name, sp.Symbol(s.name)) for s in np.asarray(x, dtype=object).reshape(-1)]
    sub = {n: sp.Float(a, 30) + t * sp.Float(b, 30) for n, a, b in zip(names, np.ravel(x0), np.ravel(v))}
    e = e.subs(sub)
    out = []
    for k in range(order + 1):
        out.append(float(sp.N(e.subs(t, 0), 30)) / math.factorial(k))
        e = sp.diff(e, t)
    return np.array(out)


def _close(got, want, rtol=1e-9, atol=1e-9):
    scale = max(1.0, float(np.max(np.abs(want))))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * scale)


# ------------------------------------------------------------ every op against SymPy
X = sg.symbols("x")
# inner argument with a nontrivial series: u(0.5 + t) = c + 0.2(0.5 + t) + 0.1(0.5 + t)^2
U = 0.2 * X + 0.1 * X * X
UNARY = {
    "sqrt": (sg.sqrt, 1.0), "exp": (sg.exp, 0.0), "expm1": (sg.expm1, 0.0),
    "log": (sg.log, 1.0), "log1p": (sg.log1p, 0.0), "log2": (sg.log2, 1.0), "log10": (sg.log10, 1.0),
    "sin": (sg.sin, 0.3), "cos": (sg.cos, 0.3), "tan": (sg.tan, 0.3), "asin": (sg.asin, 0.1),
    "acos": (sg.acos, 0.1), "atan": (sg.atan, 0.3), "sinh": (sg.sinh, 0.3), "cosh": (sg.cosh, 0.3),
    "tanh": (sg.tanh, 0.3), "asinh": (sg.asinh, 0.3), "acosh": (sg.acosh, 1.5), "atanh": (sg.atanh, 0.1),
    "erf": (sg.erf, 0.1), "erfc": (sg.erfc, 0.1), "square": (sg.square, 0.3),
    "digamma": (sg.digamma, 1.2), "erfinv": (sg.erfinv, 0.1),
    "neg": (lambda u: -u, 0.0), "recip": (lambda u: 1.0 / u, 0.5), "pow_const": (lambda u: u ** 2.5, 0.5),
    "powi": (lambda u: u ** 3, -0.5), "powi_neg": (lambda u: u ** -2, 0.5),
    "pow_var": (lambda u: u ** (X + 0.5), 0.5), "trigamma": (lambda u: sg.polygamma(1.0, u), 1.2),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_ops_match_sympy_series(name):
    op, c = UNARY[name]
    f = op(U + c)
    got = np.array([float(r) for r in _values(taylor(f, X, 1.0, 5), X, 0.5)])
    _close(got, _sympy_coeffs(f, X, 0.5, 1.0, 5), rtol=1e-8)


def _nested_jvp(f, x, v, order):
    """[f, D_v f, D_v^2 f, ...]: jvp applied order times along v."""
    out = [f]
    for _ in range(order):
        out.append(sg.jvp(out[-1], x, v))
    return out


def _jvp_coeffs(f, x, x0, v, order):
    """Taylor coefficients from jvp nested ``order`` times (the oracle where SymPy cannot differentiate)."""
    return np.ravel([d / math.factorial(k) for k, d in enumerate(_values(_nested_jvp(f, x, v, order), x, x0))])


# SymPy's Abs, cbrt and loggamma stop its differentiation: these take nested jvp as the oracle
BY_JVP = {"abs": (sg.abs, -1.0), "cbrt": (sg.cbrt, 1.0), "cbrt_negative": (sg.cbrt, -1.0),
          "lgamma": (sg.lgamma, 1.2), "lgamma_negative": (sg.lgamma, -1.7)}


@pytest.mark.parametrize("name", sorted(BY_JVP))
def test_unary_ops_match_nested_jvp(name):
    op, c = BY_JVP[name]
    f = op(U + c)
    got = np.ravel(_values(taylor(f, X, 1.0, 4), X, 0.5))
    np.testing.assert_allclose(got, _jvp_coeffs(f, X, 0.5, 1.0, 4), rtol=1e-11, atol=1e-11)


Y = sg.symbols("y")
XY = np.array([X, Y], dtype=object)
PIECEWISE = {
    "fmod": sg.fmod(X * 7.0 + Y, Y + 1.5), "if_else": sg.if_else(X < Y, sg.exp(X * Y), sg.cos(X)),
    "steps": sg.floor(X * 3.0) + sg.sign(Y) * X + sg.ceil(Y) + (X > Y) + sg.logical_and(X < 1.0, Y > 0.0),
    "abs": sg.abs(X * Y - 0.1) * sg.sin(X),
}


@pytest.mark.parametrize("name", sorted(PIECEWISE))
@pytest.mark.parametrize("point", [(0.4, 0.9), (0.7, -0.35)])
def test_piecewise_ops_match_nested_jvp(name, point):
    f = PIECEWISE[name]
    v = (0.6, -0.8)
    got = np.ravel(_values(taylor(f, XY, v, 4), XY, point))
    np.testing.assert_allclose(got, _jvp_coeffs(f, XY, point, v, 4), rtol=1e-11, atol=1e-11)


BINARY = {
    "mul": X * sg.sin(Y), "div": sg.exp(X) / (Y * Y + 1.0), "sub": sg.sin(X) - Y * X,
    "atan2": sg.atan2(X * X + Y, Y - 0.3 * X), "hypot": sg.hypot(X + Y * Y, Y - X),
    "fmin": sg.fmin(X * X, Y + 1.0), "fmax": sg.fmax(sg.sin(X), Y * Y),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("point", [(0.4, 0.9), (0.7, -0.35)])
def test_binary_ops_match_sympy_series(name, point):
    f = BINARY[name]
    v = (0.6, -0.8)
    got = np.array([float(r) for r in _values(taylor(f, XY, v, 4), XY, point)])
    _close(got, _sympy_coeffs(f, XY, point, v, 4), rtol=1e-8)


# ------------------------------------------------------------ random expressions (hypothesis)
_SAFE_UNARY = [sg.sin, sg.cos, sg.tanh, sg.atan, lambda u: sg.exp(sg.sin(u)), lambda u: sg.sqrt(1.0 + u * u),
               lambda u: sg.log(2.0 + sg.cos(u)), lambda u: 1.0 / (1.5 + sg.sin(u)), lambda u: u ** 3,
               sg.square, lambda u: sg.erf(u), lambda u: sg.asinh(u)]
_SAFE_BINARY = [lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b,
                lambda a, b: a / (1.2 + sg.cos(b)), lambda a, b: sg.hypot(a, 1.0 + b * b)]


@st.composite
def random_expressions(draw):
    """A random smooth expression over (x, y), finite everywhere, of up to 8 operations."""
    pool = [X, Y, sg.const(draw(st.floats(-2.0, 2.0)))]
    for _ in range(draw(st.integers(1, 8))):
        if draw(st.booleans()):
            pool.append(draw(st.sampled_from(_SAFE_UNARY))(draw(st.sampled_from(pool))))
        else:
            op = draw(st.sampled_from(_SAFE_BINARY))
            pool.append(op(draw(st.sampled_from(pool)), draw(st.sampled_from(pool))))
    return pool[-1]


@PROFILE
@given(random_expressions(), st.tuples(st.floats(-1.5, 1.5), st.floats(-1.5, 1.5)),
       st.tuples(st.floats(-1.0, 1.0), st.floats(-1.0, 1.0)), st.integers(0, 5))
def test_random_expressions_match_sympy_series(f, point, v, order):
    got = np.array([float(r) for r in _values(taylor(f, XY, v, order), XY, point)])
    _close(got, _sympy_coeffs(f, XY, point, v, order), rtol=1e-7, atol=1e-9)


# ------------------------------------------------------------ nested jvp, closed forms, C
def test_matches_nested_jvp_on_an_array_function():
    x = sg.symbols("x", 3)
    f = np.array([sg.sin(x[0] * x[1]) + x[2] ** 3, sg.exp(x[0]) / (1.0 + x[1] * x[1]) * sg.tanh(x[2])],
                 dtype=object)
    v = np.array([0.3, -1.2, 0.7])
    x0 = np.array([0.4, 0.8, -0.6])
    derivs = taylor(f, x, v, 3, derivatives=True)
    assert all(d.shape == (2,) for d in derivs)
    for got, want in zip(_values(derivs, x, x0), _values(_nested_jvp(f, x, v, 3), x, x0)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_exp_and_sin_closed_forms():
    order = 8
    ce = _values(taylor(sg.exp(X), X, 1.0, order), X, 0.7)
    np.testing.assert_allclose([float(c) for c in ce], [math.exp(0.7) / math.factorial(k) for k in range(order + 1)],
                               rtol=1e-14)
    # sin(x0 + 2t): k-th derivative 2^k sin(x0 + k pi / 2)
    cs = _values(taylor(sg.sin(X), X, 2.0, order, derivatives=True), X, 0.3)
    np.testing.assert_allclose([float(c) for c in cs], [2.0 ** k * math.sin(0.3 + k * math.pi / 2) for k in range(order + 1)],
                               rtol=1e-13, atol=1e-12)


def test_symbolic_direction_and_other_symbols():
    x = sg.symbols("x", 2)
    w = sg.symbols("w")
    # f = w * x0 * x1 along v = (w, 1): c1 = w*(w*x1 + x0), c2 = w*w
    cs = taylor(w * x[0] * x[1], x, [w, 1.0], 3)
    F = sg.Function("c", [x, w], cs)
    got = [float(c) for c in F([2.0, 3.0], 0.5)]
    assert got == pytest.approx([3.0, 0.5 * (0.5 * 3.0 + 2.0), 0.25, 0.0])


def test_order_zero_and_constant_outputs():
    x = sg.symbols("x", 2)
    (c0,) = taylor(x[0] * 2.0, x, [1.0, 1.0], 0)
    assert c0 is x[0] * 2.0
    cs = taylor([x[0], 5.0], x, [0.0, 1.0], 2)  # x0 does not move along v
    assert [str(e) for c in cs for e in c] == ["x[0]", "5", "0", "0", "0", "0"]


def test_calls_are_inlined():
    x = sg.symbols("x")
    G = sg.Function("g", [x], [sg.sin(x) * x])
    y = sg.symbols("y")
    got = _values(taylor(G(y * 2.0), y, 1.0, 4), y, 0.3)
    want = _values(taylor(sg.sin(y * 2.0) * (y * 2.0), y, 1.0, 4), y, 0.3)
    np.testing.assert_allclose(np.ravel(got), np.ravel(want), rtol=1e-14)


def test_vm_and_compiled_c_agree():
    x = sg.symbols("x", 2)
    f = sg.atan2(x[1], x[0]) * sg.exp(-x[0] * x[0]) + sg.log1p(x[1] * x[1]) + sg.erf(x[0] - x[1])
    F = sg.Function("t", [x], taylor(f, x, [0.5, -0.25], 6))
    x0 = np.array([0.8, 0.3])
    vm = np.array([float(c) for c in F(x0)])
    C = np.array([float(c) for c in F.compile()(x0)])
    np.testing.assert_allclose(C, vm, rtol=1e-12, atol=1e-14)


def test_graph_grows_slower_than_nested_jvp():
    x = sg.symbols("x", 2)
    f = sg.sin(x[0] * x[1]) * sg.exp(x[1]) / (1.0 + x[0] * x[0])
    v = [1.0, 0.5]
    order = 6
    assert sg.count_ops(taylor(f, x, v, order)) < sg.count_ops(_nested_jvp(f, x, v, order))


# ------------------------------------------------------------ bad input
@pytest.mark.parametrize("order", [-1, 1.5, True, "2", None])
def test_bad_order(order):
    with pytest.raises(InvalidInputError, match="order must be a non-negative integer"):
        taylor(X * X, X, 1.0, order)


def test_direction_of_wrong_shape():
    x = sg.symbols("x", 3)
    with pytest.raises(ShapeError, match=r"shape of x \(3,\), got shape \(2,\)"):
        taylor(x[0], x, [1.0, 2.0], 2)


def test_direction_not_numbers():
    with pytest.raises(InvalidInputError, match="direction v"):
        taylor(X, X, "up", 2)


def test_inputs_must_be_symbols():
    with pytest.raises(DifferentiationError, match="symbols"):
        taylor(X * X, X + 1.0, 1.0, 2)


def test_polygamma_with_a_moving_order_is_refused():
    with pytest.raises(DifferentiationError, match="polygamma"):
        taylor(sg.polygamma(X, Y), XY, [1.0, 0.0], 2)


def test_a_plain_number_gives_exprs_and_repeated_symbols_are_refused():
    x = sg.symbols("x", 2)
    cs = taylor(3.0, x, [1.0, 0.0], 2)
    assert all(isinstance(c, sg.Expr) for c in cs) and [str(c) for c in cs] == ["3", "0", "0"]
    with pytest.raises(DifferentiationError, match="appears twice"):
        taylor(x[0] * x[1], [x[0], x[0]], [1.0, 2.0], 2)


@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(random_graphs(smooth_only=True, max_steps=8), st.data())
def test_random_smooth_graphs_match_nested_jvp_at_order_3(graph, data):
    n = len(graph.inputs)
    away = st.floats(0.2, 2.0) | st.floats(-2.0, -0.2)   # off the kinks and poles at 0, and no underflow
    x0 = np.array(data.draw(st.lists(away, min_size=n, max_size=n)))
    v = np.array(data.draw(st.lists(st.floats(-2.0, 2.0), min_size=n, max_size=n)))
    X = np.array(graph.inputs, dtype=object)
    for out in graph.outputs:
        got = [float(c) for c in sg.Function("t", list(graph.inputs), taylor(out, X, v, 3))(*x0)]
        nested = [out]
        for _ in range(3):
            nested.append(sg.jvp(nested[-1], X, v))
        ref = [float(d) / math.factorial(k) for k, d in enumerate(sg.Function("j", list(graph.inputs), nested)(*x0))]
        np.testing.assert_allclose(got, ref, rtol=1e-7, atol=1e-7)


def test_custom_rules_and_stop_gradient_are_refused_not_dropped():
    # inlining would differentiate the bodies as written: c1 of x * stop_gradient(x) at 3 is 3, not 6;
    # with a made-up jvp rule 10 t, c1 of the call is 10, not 3 x**2 = 12
    x, w = sg.symbols("x"), sg.symbols("w", 2)
    C = sg.custom_jvp(sg.Function("cube", [x], [x ** 3]), lambda x, t: 10 * t)
    nested = sg.Function("outer", [w], [C.map(2)(w)]).map(1)
    for f, var, v in ((x * sg.stop_gradient(x), x, 1.0), (C(x), x, 1.0), (nested(w.reshape(1, 2)), w, [1.0, 1.0])):
        with pytest.raises(DifferentiationError, match="carries a derivative rule"):
            taylor(f, var, v, 2)
