"""sg.substitute: values against direct construction, identity of unchanged nodes,
deep graphs, structures, errors, and nested AD at expression points (complex step)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import symgraph as sg
from strategies import points, random_graphs

H = 1e-30


def _cs_jacobian(F, y0):
    """Dense Jacobian of ``y -> F(y)`` (any callable taking complex arrays) by complex step."""
    cols = []
    for k in range(len(y0)):
        yc = y0.astype(complex)
        yc[k] += H * 1j
        cols.append(np.imag(np.atleast_1d(F(yc))).ravel() / H)
    return np.column_stack(cols)


def _model(x):
    """A small numpy-style model of a length-3 array (sums, products, ufuncs, selections)."""
    r = np.sin(x) * x[::-1] + x ** 2 / (1.0 + x * x)
    return np.array([r.sum() + sg.fmax(x[0], x[1]) * sg.exp(-x[2]),
                     sg.if_else(x[0] > x[2], sg.sqrt(1 + x[1] ** 2), x[2] - 1),
                     sg.atan2(x[1], x[0] + 3) * sg.log1p(x[2] ** 2)], dtype=object)


def _h(y):
    """An expression point x = h(y) for a length-2 y."""
    return np.array([y[0] * y[1], sg.cos(y[0]) - y[1], y[1] ** 3], dtype=object)


# ------------------------------------------------- construction and identity
def test_result_is_direct_construction():
    x, y = sg.symbols("x", 3), sg.symbols("y", 2)
    got = sg.substitute(_model(x), x, _h(y))
    want = _model(_h(y))
    assert got.shape == (3,) and all(a is b for a, b in zip(got, want))  # hash-consed: the same nodes
    v = np.array([0.4, -1.3])
    np.testing.assert_array_equal(sg.Function("g", [y], [got])(v),
                                  sg.Function("f", [x], [_model(x)])(sg.Function("h", [y], [_h(y)])(v)))


def test_numbers_fold_and_simplify_at_construction():
    x, y, z = sg.symbols("x"), sg.symbols("y"), sg.symbols("z")
    assert sg.substitute(x * y, y, 1.0) is x
    assert sg.substitute(sg.sin(x) * y + z, [x, y], [0.5, 2]) is 2 * np.sin(0.5) + z
    assert sg.substitute(sg.if_else(x > 0, y, z), x, -1.0) is z
    f = sg.exp(x) * sg.hypot(x, 3.0) - sg.floor(x / 2)
    got = sg.substitute(f, x, 1.7)
    assert got.is_const
    assert got.value == float(sg.Function("f", [x], [f])(1.7))  # folding agrees with the VM


def test_unchanged_subgraphs_are_the_same_nodes():
    x, y, z = sg.symbols("x"), sg.symbols("y"), sg.symbols("z")
    a = sg.sin(y) * z
    f = a + x
    out = sg.substitute([f, a, z, 3.0], x, y)
    assert out[0].args[0] is a and out[1] is a and out[2] is z and out[3] is sg.const(3.0)
    assert sg.substitute(f, x, x) is f  # x -> x: nothing is rebuilt
    w = sg.symbols("w")
    assert sg.substitute(f, w, y * 2) is f  # a symbol f does not use


def test_substitution_is_simultaneous():
    x, y = sg.symbols("x"), sg.symbols("y")
    assert sg.substitute(x - 2 * y, [x, y], [y, x]) is y - 2 * x
    assert sg.substitute(x * x, x, x + 1) is (x + 1) * (x + 1)  # new values are not substituted again


def test_hundred_thousand_deep_chain():
    n = 100_000
    x, y, z = sg.symbols("x"), sg.symbols("y"), sg.symbols("z")

    def chain(start):
        e = start
        with sg.building():
            for _ in range(n):
                e = sg.sin(e) + y
        return e

    f = chain(x)
    t = time.perf_counter()
    got = sg.substitute(f, x, 2 * z)
    assert time.perf_counter() - t < 30  # no recursion, one pass (about a second)
    assert got is chain(2 * z)
    assert sg.substitute(f, y, y) is f
    assert sg.substitute(f, z, x) is f


# --------------------------------------------------------------- structures
def test_structures_are_kept():
    x, y = sg.symbols("x", (2, 3)), sg.symbols("y")
    s = sg.symbols("s")
    out = sg.substitute(x * s, s, y + 1)
    assert isinstance(out, np.ndarray) and out.shape == (2, 3) and out[1, 2] is x[1, 2] * (y + 1)
    out = sg.substitute(np.array(s * 2, dtype=object), s, y)  # 0-d array
    assert isinstance(out, np.ndarray) and out.shape == () and out[()] is 2 * y
    out = sg.substitute((s, [s + 1, [2.0, x[0, 0]]], np.ones(2)), s, y)
    assert isinstance(out, tuple) and isinstance(out[1], list) and isinstance(out[1][1], list)
    assert out[0] is y and out[1][0] is y + 1 and out[1][1][0] is sg.const(2.0) and out[1][1][1] is x[0, 0]
    assert out[2].dtype == object and out[2].shape == (2,) and out[2][0] is sg.const(1.0)
    assert sg.substitute(4.0, s, y) is sg.const(4.0)
    assert sg.substitute([], s, y) == []


def test_groups_of_symbols():
    x, p, y = sg.symbols("x", 3), sg.symbols("p"), sg.symbols("y", 2)
    f = (x * x).sum() * p
    got = sg.substitute(f, [x, p], [_h(y), 2.0])
    assert got is (_h(y) * _h(y)).sum() * 2.0
    assert sg.substitute(f, (x, [p]), (_h(y), [y[0]])) is (_h(y) * _h(y)).sum() * y[0]
    # a flat list of symbols is one group; old of any shape pairs with new of that shape
    xx = sg.symbols("xx", (2, 2))
    assert sg.substitute(xx[0, 1] - xx[1, 0], xx, [[1, y[0]], [y[1], 2]]) is y[0] - y[1]
    u = np.array([y[0], x[1], y[1]])
    assert sg.substitute(f, [x[0], x[2]], [y[0], y[1]]) is (u * u).sum() * p


def test_sparse_expr_keeps_its_pattern():
    x, y = sg.symbols("x", 3), sg.symbols("y", 2)
    f = x[0] ** 2 * x[1] + sg.sin(x[2]) * x[1]
    Hx = sg.hessian(f, x)
    Hy = sg.substitute(Hx, x, _h(y))
    assert isinstance(Hy, sg.SparseExpr) and Hy.shape == Hx.shape
    assert Hy.rows.tolist() == Hx.rows.tolist() and Hy.cols.tolist() == Hx.cols.tolist()
    assert Hy.mode == "star" and Hy.n_colors == Hx.n_colors
    v = np.array([0.3, 1.1])
    h0 = sg.Function("h", [y], [_h(y)])(v)
    np.testing.assert_array_equal(sg.Function("Hy", [y], [Hy])(v).toarray(),
                                  sg.Function("Hx", [x], [Hx])(h0).toarray())


# ------------------------------------------------------------------- errors
@pytest.mark.parametrize("bad", ["expr", "const", "number", "string"])
def test_old_must_be_symbols(bad):
    x, y = sg.symbols("x", 2), sg.symbols("y")
    old = {"expr": [x[0], x[1] + 1], "const": [x[0], sg.const(1.0)], "number": [x[0], 2.0],
           "string": [x[0], "x"]}[bad]
    with pytest.raises(sg.InvalidInputError, match=r"can only replace symbols.*flat index 1") as info:
        sg.substitute(x.sum(), old, [y, y])
    assert isinstance(info.value, ValueError) and isinstance(info.value, sg.SymgraphError)
    with pytest.raises(sg.InvalidInputError, match="can only replace symbols"):
        sg.substitute(x.sum(), x[0] * 2, y)


def test_repeated_symbol_is_refused():
    x, y = sg.symbols("x"), sg.symbols("y")
    with pytest.raises(sg.InvalidInputError, match="appears twice"):
        sg.substitute(x, [x, x], [y, 1.0])
    with pytest.raises(sg.InvalidInputError, match="appears twice"):
        sg.substitute(x, [[x], [x]], [[y], [1.0]])


def test_shapes_must_match():
    x, y = sg.symbols("x", 3), sg.symbols("y", 2)
    with pytest.raises(sg.ShapeError, match=r"shape of old, \(3,\); got shape \(2,\)"):
        sg.substitute(x.sum(), x, y)
    with pytest.raises(sg.ShapeError, match="shape"):
        sg.substitute(x.sum(), x, 1.0)  # no broadcasting
    with pytest.raises(sg.ShapeError, match="shape"):
        sg.substitute(x[0], x[0], [1.0])
    with pytest.raises(sg.ShapeError, match=r"group 1"):
        sg.substitute(x.sum(), [x, y], [np.ones(3), np.ones(3)])
    with pytest.raises(sg.ShapeError, match="2 values"):
        sg.substitute(x.sum(), [x, y], [np.ones(3)])
    with pytest.raises(ValueError):
        sg.substitute(x.sum(), [x, y], np.ones(5))


def test_new_values_must_be_real():
    x = sg.symbols("x")
    with pytest.raises(sg.NonNumericConstantError):
        sg.substitute(x, x, "1")
    with pytest.raises(sg.NonNumericConstantError, match="complex"):
        sg.substitute(x, x, 1j)


# ---------------------------------------------- nested AD at expression points
def test_gradient_at_expression_point_then_differentiated():
    # inner gradient g(x, y) = d/dx L, evaluated at x = h(y), differentiated in y
    x, y = sg.symbols("x", 3), sg.symbols("y", 2)
    L = (sg.sin(x * y[0]) ** 2).sum() + x[0] * x[2] * sg.exp(y[1]) + sg.log1p(x[1] ** 2) * y[1]
    g = sg.grad(L, x)
    gy = sg.substitute(g, x, _h(y))
    J = sg.jacobian(gy, y)
    G, Hf = sg.Function("g", [x, y], [g]), sg.Function("h", [y], [_h(y)])
    v = np.array([0.7, -0.4])
    want = _cs_jacobian(lambda w: G(Hf(w), w), v)  # complex step through the two original graphs
    np.testing.assert_allclose(sg.Function("J", [y], [J])(v).toarray(), want, rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(sg.Function("gy", [y], [gy])(v), G(Hf(v), v))
    # saddle-point style: the squared norm of the inner gradient, its gradient and Hessian in y
    phi = (gy * gy).sum()
    dphi = sg.grad(phi, y)
    np.testing.assert_allclose(sg.Function("d", [y], [dphi])(v),
                               _cs_jacobian(lambda w: (G(Hf(w), w) ** 2).sum(), v).ravel(), rtol=1e-13)
    D = sg.Function("d", [y], [dphi])
    np.testing.assert_allclose(sg.Function("H", [y], [sg.hessian(phi, y)])(v).toarray(),
                               _cs_jacobian(D, v), rtol=1e-12, atol=1e-13)


def test_jvp_vjp_at_expression_point():
    x, y = sg.symbols("x", 3), sg.symbols("y", 2)
    f = _model(x)
    fy = sg.substitute(f, x, _h(y))
    F, Hf = sg.Function("f", [x], [f]), sg.Function("h", [y], [_h(y)])
    v = np.array([0.9, 0.25])
    J = _cs_jacobian(lambda w: F(Hf(w)), v)
    T = np.array([[1.0, -2.0], [0.5, 0.0]])
    np.testing.assert_allclose(sg.Function("jv", [y], [sg.jvp(fy, y, T)])(v), T @ J.T, rtol=1e-13, atol=1e-15)
    C = np.array([1.0, 2.0, -3.0])
    np.testing.assert_allclose(sg.Function("vj", [y], [sg.vjp(fy, y, C)])(v), C @ J, rtol=1e-13, atol=1e-15)


def test_particles_inner_solution_as_expressions():
    # a parameter p of an inner problem replaced by an expression of outer
    # variables (one Newton step from x0 on the inner objective, as particle methods do)
    x, p, y = sg.symbols("x", 2), sg.symbols("p", 2), sg.symbols("y", 2)
    inner = ((x - p) ** 2).sum() + 0.1 * (x ** 4).sum()
    g = sg.grad(inner, x)
    Hd = np.array([sg.grad(gi, x)[i] for i, gi in enumerate(g)], dtype=object)  # diagonal Hessian
    step = x - g / Hd
    x1 = sg.substitute(step, [x, p], [np.array([0.5, -0.5]), sg.tanh(y)])
    outer = (x1 * y).sum()
    S = sg.Function("s", [x, p], [step])
    want = _cs_jacobian(lambda w: (S(np.array([0.5, -0.5]), np.tanh(w)) * w).sum(), np.array([0.3, 0.8]))
    got = sg.Function("g", [y], [sg.grad(outer, y)])(np.array([0.3, 0.8]))
    np.testing.assert_allclose(got, want.ravel(), rtol=1e-13)


# ------------------------------------------------------------- random graphs
@settings(max_examples=80)
@given(graph=random_graphs(max_inputs=3, max_steps=10), data=st.data())
def test_random_graphs_equal_composition(graph, data):
    n = len(graph.inputs)
    z = sg.symbols("z", 2)
    pieces = [z[0], z[1], sg.sin(z[0]) * 0.5 + z[1], z[0] * z[1] - 1.0, sg.const(0.5)]
    new = [data.draw(st.sampled_from(pieces)) for _ in range(n)]
    outs = sg.substitute(graph.outputs, graph.inputs, new)
    assert all(a is b for a, b in zip(sg.substitute(graph.outputs, graph.inputs, graph.inputs), graph.outputs))
    z0 = data.draw(points(2, wide=False))
    got = np.atleast_1d(sg.Function("s", [z], [np.array(outs, dtype=object)])(z0))
    at = sg.Function("n", [z], [np.array(new, dtype=object)])(z0)
    want = np.atleast_1d(graph.function()(*at))
    # construction simplifications (x * 0 -> 0, 0 / x -> 0, x ** 0 -> 1) may turn a
    # nan or inf of the composition into a number, never a finite value into another
    finite = np.isfinite(want)
    np.testing.assert_array_equal(got[finite], want[finite])
