"""symgraph.hoist: instance-independent work of map bodies computed once, outside the map.

Guarded here: the hoisted graph has the values and the derivatives of the
original (VM, complex step, compiled C), for random shared/reduce flags and
a map nested in a map; the work that depends only on shared inputs (or, in
a nested map, on the enclosing map's shared inputs) leaves the bodies; a
graph with nothing to hoist comes back node for node.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from hypothesis import given, settings

import symgraph as sg
from symgraph.call import callees_bottom_up
from symgraph.expr import CALL, topological
from symgraph.hoist import hoist
from strategies import MAP_FLAGS, complex_step_gradient, module_cache  # module_cache: autouse, a cache per module

HAVE_CC = shutil.which("cc") is not None or shutil.which("gcc") is not None


def calls(roots) -> list:
    return [node.data for node in topological(list(np.asarray(roots, dtype=object).reshape(-1))) if node.op is CALL]


def count_op(F, name: str) -> int:
    """How many ``name`` nodes the graph of Function ``F`` holds (not its callees')."""
    return sum(node.op.name == name for node in topological(list(F.outputs[0].reshape(-1))))


def body():
    """f(x[2], p[2], c) -> (y[2], s): exp(p) and sin(c) depend on p and c alone."""
    x, p, c = sg.symbols("x", 2), sg.symbols("p", 2), sg.symbols("c")
    e = sg.exp(p)
    y = np.array([e[0] * x[0] + sg.sin(c) * x[1], e[1] * x[1] * x[0]], dtype=object)
    return sg.Function("f", [x, p, c], [y, sg.sin(c) * p[0] + x[0] ** 2], input_names=["x", "p", "c"])


@settings(max_examples=25)
@given(MAP_FLAGS)
def test_hoisted_values_and_gradients_equal_the_original(flags):
    shared, reduce, n = flags
    M = body().map(n, shared=[k for k, s in enumerate(shared) if s], reduce=reduce)
    args = [sg.symbols(name, shape) for name, shape in zip(("X", "P", "C"), M.input_shapes)]
    y, s = M(*args)
    f = sum((np.asarray(y, dtype=object).reshape(-1) ** 2).tolist()) + 3 * sum(
        np.asarray(s, dtype=object).reshape(-1).tolist())
    h = hoist(f)
    variables = np.concatenate([np.asarray(a, dtype=object).reshape(-1) for a in args])
    G = sg.Function("g", args, [f, sg.grad(f, variables)])
    H = sg.Function("h", args, [h, sg.grad(h, variables)])
    rng = np.random.default_rng(n)
    values = [rng.uniform(-1, 1, shape) for shape in M.input_shapes]
    for a, b in zip(H(*values), G(*values)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    if any(shared[1:]):  # exp(p) or sin(c) is instance-independent: a pre Function computes it
        assert any(F.name == "f_pre" for F in calls([h]))


def gmm_like(k: int = 3, n: int = 4, d: int = 2):
    """A map over points of a map over components, the parameters shared by the points."""
    xi, a, mu, q = sg.symbols("x", d), sg.symbols("a"), sg.symbols("mu", d), sg.symbols("q", d)
    component = sg.Function("component", [xi, a, mu, q], [a + np.sum(q) - np.sum((sg.exp(q) * (xi - mu)) ** 2)])
    As, Mu, Q = sg.symbols("A", k), sg.symbols("Mu", (k, d)), sg.symbols("Q", (k, d))
    per = component.map(k, shared=["x"])(xi, As, Mu, Q)
    point = sg.Function("point", [xi, As, Mu, Q], [sg.log(np.sum(sg.exp(per)))])
    X = sg.symbols("X", (n, d))
    f = point.map(n, shared=[1, 2, 3], reduce="sum")(X, As, Mu, Q)
    return [As, Mu, Q, X], f


def test_a_nested_map_hoists_the_parameter_work_out_of_both_maps():
    inputs, f = gmm_like()
    h = hoist(f)
    top = calls([h])
    assert [F.name for F in top] == ["point_pre", "point_h_map4"]
    everything = {F.name: F for F in callees_bottom_up(top)}
    # exp(q) of each component is computed by the pre map over the components, once per call
    assert "component_pre_map3" in everything
    original = {F.name: F for F in callees_bottom_up(calls([f]))}
    assert count_op(original["component"], "exp") == 2 and count_op(everything["component_h"], "exp") == 0
    assert count_op(everything["component_pre"], "exp") == 2
    rng = np.random.default_rng(1)
    values = [rng.uniform(-1, 1, np.shape(v)) for v in inputs]
    G = sg.Function("g", inputs, [f, *[sg.grad(f, v) for v in inputs]])
    H = sg.Function("h", inputs, [h, *[sg.grad(h, v) for v in inputs]])
    for a, b in zip(H(*values), G(*values)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    theta = np.concatenate([v.reshape(-1) for v in values[:3]])
    flat = np.concatenate([np.asarray(v, dtype=object).reshape(-1) for v in inputs[:3]])
    objective = sg.Function("objective", [flat, inputs[3]], [h])
    cs = complex_step_gradient(lambda th: objective(th, values[3].astype(th.dtype)), theta)
    np.testing.assert_allclose(np.concatenate([g.reshape(-1) for g in H(*values)[1:4]]), cs, rtol=1e-10,
                               atol=1e-12)
    if HAVE_CC:
        for a, b in zip(H.compile()(*values), H(*values)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_hessian_of_the_hoisted_graph_equals_the_original():
    inputs, f = gmm_like(k=2, n=3)
    h = hoist(f)
    theta = np.concatenate([np.asarray(v, dtype=object).reshape(-1) for v in inputs[:3]])
    rng = np.random.default_rng(4)
    values = [rng.uniform(-1, 1, np.shape(v)) for v in inputs]
    Hf = sg.Function("hf", inputs, [sg.hessian(f, theta).to_dense()])
    Hh = sg.Function("hh", inputs, [sg.hessian(h, theta).to_dense()])
    np.testing.assert_allclose(Hh(*values), Hf(*values), rtol=1e-10, atol=1e-12)


def test_nothing_to_hoist_returns_the_same_nodes():
    x, p = sg.symbols("x"), sg.symbols("p")
    M = sg.Function("f", [x, p], [x * p]).map(3, shared=["p"], reduce="sum")  # x * p reads x: nothing
    X = sg.symbols("X", 3)
    f = M(X, p) + sg.sin(p)
    assert hoist(f) is f
    assert [hoist([f, X])[0]] == [f]
    assert hoist(2.0) is sg.const(2.0)


def test_an_output_that_is_instance_independent_becomes_the_hoisted_value():
    x, p = sg.symbols("x"), sg.symbols("p")
    F = sg.Function("f", [x, p], [[x * p, sg.cos(p)]])
    X = sg.symbols("X", 4)
    y = F.map(4, shared=["p"])(X, p)
    h = hoist(y)
    G = sg.Function("g", [X, p], [y, h, sg.jacobian(h.reshape(-1), p).to_dense()])
    want, got, jac = G(np.arange(4.0), 0.3)
    np.testing.assert_allclose(got, want, rtol=1e-15)
    np.testing.assert_allclose(jac.reshape(4, 2), np.stack([np.arange(4.0), np.full(4, -np.sin(0.3))], 1))
