"""One forward per instance: nested map vjps split at their residuals, and ``value_and_grad``.

Guarded here:

* inside a map's derivative, the vjp of an inner map whose values the outer
  body reads is a forward call (values and residuals) and a backward call
  (no forward recomputed); where the outer body does not read them the vjp
  stays one call;
* ``value_and_grad`` reads a map's value off its vjp call (the map call is
  gone), keeps the map call where the cotangent reads the value (and when
  two maps' cotangents read each other's values: no cycle), and equals
  ``f`` and ``grad`` (VM, compiled C, the unrolled model, complex step).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import symgraph as sg
from symgraph.ad import value_and_grad
from symgraph.expr import CALL, topological
from strategies import complex_step_gradient, module_cache, small_gmm  # module_cache: autouse, a cache per module

HAVE_CC = shutil.which("cc") is not None or shutil.which("gcc") is not None
needs_cc = pytest.mark.skipif(not HAVE_CC, reason="no C compiler")
D_, K_, N_ = 3, 2, 5


def gmm():
    """``(inputs, objective)`` of the small GMM (tests/strategies.py)."""
    return small_gmm(D_, K_, N_, q_prior=False)


def gmm_args(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, K_), rng.uniform(-1, 1, (K_, D_)), 0.3 * rng.uniform(-1, 1, (K_, D_)),
            0.3 * rng.uniform(-1, 1, (K_, D_ * (D_ - 1) // 2)), rng.uniform(-1, 1, (N_, D_))]


def callees(roots) -> list[str]:
    """The names of the Functions called anywhere under ``roots`` (inside called Functions too)."""
    from symgraph.call import callees_bottom_up

    roots = [e for r in roots for e in np.asarray(r, dtype=object).reshape(-1)]
    return [G.name for G in callees_bottom_up([n.data for n in topological(roots) if n.op is CALL])]


def test_inner_map_vjp_is_split_and_gradients_equal_the_unrolled():
    inputs, f = gmm()
    grads = [sg.grad(f, v) for v in inputs[:4]]
    names = callees(grads)
    assert "component_fwd" in names and "component_vjp_w_bwd" in names
    assert "component_vjp_w" not in names  # the inner vjp never recomputes the forward
    G = sg.Function("g", inputs, [f, *grads])
    U = sg.Function("u", inputs, [sg.inline(f), *[sg.grad(sg.inline(f), v) for v in inputs[:4]]])
    args = gmm_args()
    for a, b in zip(G(*args), U(*args)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_inner_map_vjp_stays_whole_where_the_outer_body_reads_no_value():
    x, w = sg.symbols("x", 2), sg.symbols("w", 2)
    F = sg.Function("f", [x, w], [sg.sin(x[0] * w[0]) + x[1] * w[1] ** 2])
    outer = F.map(3, shared=["w"], reduce="sum").map(2, reduce="sum")
    X, W = sg.symbols("X", (2, 3, 2)), sg.symbols("W", (2, 2))
    g = sg.grad(outer(X, W), W)
    names = callees([g])
    assert "f_vjp_w" in names and "f_fwd" not in names


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=needs_cc)])
def test_value_and_grad_equals_value_and_grad_separately(compiled):
    inputs, f = gmm()
    value, grads = value_and_grad(f, inputs[:4])
    assert isinstance(grads, list) and [g.shape for g in grads] == [v.shape for v in inputs[:4]]
    assert "point_h_map5" not in callees([value]) and "point_map5" not in callees([value])
    G = sg.Function("vg", inputs, [value, *grads])
    R = sg.Function("ref", inputs, [f, *[sg.grad(f, v) for v in inputs[:4]]])
    args = gmm_args(1)
    ours = (G.compile() if compiled else G)(*args)
    for a, b in zip(ours, R(*args)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    fq = sg.Function("fq", [inputs[2]], [sg.substitute(f, [v for k, v in enumerate(inputs) if k != 2],
                                                        [a for k, a in enumerate(args) if k != 2])])
    np.testing.assert_allclose(ours[3].reshape(-1), complex_step_gradient(
        lambda v: fq(v.reshape(args[2].shape)), args[2].reshape(-1)), rtol=1e-9, atol=1e-12)


def _maps():
    x, p = sg.symbols("x"), sg.symbols("p", 2)
    M1 = sg.Function("m1", [x, p], [p[0] * sg.sin(p[1] * x)]).map(4, shared=["p"], reduce="sum")
    M2 = sg.Function("m2", [x, p], [sg.exp(p[0] * x) + p[1]]).map(4, shared=["p"], reduce="sum")
    return sg.symbols("X", 4), p, M1, M2


@pytest.mark.parametrize("case", ["log", "product", "chain", "plain"])
def test_value_and_grad_keeps_the_map_where_the_cotangent_reads_the_value(case):
    X, p, M1, M2 = _maps()
    f = {"log": lambda: sg.log(M2(X, p)),
         "product": lambda: M1(X, p) * M2(X, p),
         "chain": lambda: M2(np.array([M1(X, p)] * 4), p) * M1(X, p),
         "plain": lambda: M1(X, p) + 2 * M2(X, p)}[case]()
    value, (gp, gX) = value_and_grad(f, (p, X))
    names = callees([value])
    if case == "plain":
        assert "m1_map4" not in names and "m2_map4" not in names
    else:  # the value keeps its map calls, and no vjp call computes the values in vain
        assert "m2_map4" in names
        assert not [n for n in callees([value, gp, gX]) if "valued" in n]
    G = sg.Function("vg", [X, p], [value, gp, gX])
    R = sg.Function("ref", [X, p], [f, sg.grad(f, p), sg.grad(f, X)])
    args = [np.array([0.1, 0.3, -0.2, 0.5]), np.array([0.7, 1.3])]
    for a, b in zip(G(*args), R(*args)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_value_and_grad_of_a_graph_without_maps():
    x = sg.symbols("x", 2)
    value, g = value_and_grad(x[0] * sg.sin(x[1]), x)
    assert value is x[0] * sg.sin(x[1])
    assert [str(e) for e in g] == [str(e) for e in sg.grad(x[0] * sg.sin(x[1]), x)]


@pytest.mark.parametrize("seed", range(4))
def test_map_meeting_equals_the_tiled_pattern(seed):
    """The operands a map's results read, from the body's pattern, equal the tiled pattern's columns."""
    from symgraph import calldiff
    from symgraph.structdiff import map_meeting

    rng = np.random.default_rng(seed)
    x, p, q = sg.symbols("x", 2), sg.symbols("p", 2), sg.symbols("q")
    F = sg.Function("f", [x, p, q], [np.array([x[0] * p[0], sg.floor(x[1]) + q]), p[1] * q + x[1]])
    flags = [bool(v) for v in rng.integers(0, 2, 3)]
    reduce = [None if v else "sum" for v in rng.integers(0, 2, 2)]
    M = F.map(3, shared=[k for k, f in enumerate(flags) if f], reduce=reduce)
    P = calldiff.jacobian_pattern(M).matrix.tocsr()
    n_rows = P.shape[0]
    for _ in range(5):
        rows = sorted(rng.choice(n_rows, size=int(rng.integers(1, n_rows + 1)), replace=False).tolist())
        want = np.unique(P[rows].indices).tolist()
        assert map_meeting(M.structure, rows).tolist() == want


@pytest.mark.parametrize("reduce", [None, "sum"])
def test_split_inner_map_with_summed_or_stacked_values_equals_the_unrolled(reduce):
    """The outer body reads the inner map's values nonlinearly: split, and equal to the unrolled model."""
    x, w = sg.symbols("x", 2), sg.symbols("w", 2)
    F = sg.Function("f", [x, w], [sg.sin(x[0] * w[0]) * sg.exp(x[1] * w[1])])
    inner = F.map(3, shared=["w"], reduce=reduce)
    xs, ws = sg.symbols("xs", (3, 2)), sg.symbols("ws", 2)
    y = np.asarray(inner(xs, ws), dtype=object).reshape(-1).tolist()
    body = sg.Function("b", [xs, ws], [sg.cos(sum(e * e for e in y))])
    outer = body.map(2, shared=["ws"], reduce="sum")
    X, W = sg.symbols("X", (2, 3, 2)), sg.symbols("W", 2)
    f = outer(X, W)
    value, (gW, gX) = value_and_grad(f, [W, X])
    assert "f_fwd" in callees([gW]) and "f_vjp_w_bwd" in callees([gW])
    G = sg.Function("g", [X, W], [value, gW, gX])
    U = sg.Function("u", [X, W], [sg.inline(f), sg.grad(sg.inline(f), W), sg.grad(sg.inline(f), X)])
    rng = np.random.default_rng(3)
    args = [rng.uniform(-1, 1, (2, 3, 2)), rng.uniform(-1, 1, 2)]
    for ours in (G, G.compile()) if HAVE_CC else (G,):
        for a, b in zip(ours(*args), U(*args)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
