"""The fast paths of AD and graph construction build exactly what the general rules build.

The sweeps of symgraph/ad.py look common products and sums up in the intern
table inline, ``topological`` descends along first operands without a stack
round trip, ``collect`` visits only dead nodes, and ``building`` hands its
objects to the oldest GC generation.  Each is checked here against the plain
version it replaces: the same nodes (hash-consing makes structural equality
identity), the same order, nothing left to collect.
"""

from __future__ import annotations

import gc
import math
import sys

import numpy as np
import pytest
from hypothesis import given, strategies as st

import symgraph as sg
from symgraph import ad
from symgraph import expr as E
from symgraph.expr import topological
from strategies import random_graphs


# ------------------------------------------------------------ topological
_MARK = object()


def plain_topological(roots, leaves=None):
    """Depth-first post-order, operands left to right, each node once (the reference)."""
    order, expanded = [], set()
    for root in roots:
        stack = [root]
        while stack:
            node = stack.pop()
            if node is _MARK:
                order.append(stack.pop())
            elif node not in expanded:
                expanded.add(node)
                if node.args and (leaves is None or node not in leaves):
                    stack += [node, _MARK]
                    stack += [a for a in reversed(node.args) if a not in expanded]
                else:
                    order.append(node)
    return order


@given(random_graphs(max_inputs=3, max_steps=14), st.data())
def test_topological_is_the_plain_depth_first_post_order(graph, data):
    roots = [o for o in graph.outputs] + graph.inputs[:1]
    assert [id(n) for n in topological(roots)] == [id(n) for n in plain_topological(roots)]
    inner = [n for n in plain_topological(roots) if n.args]
    leaves = set(data.draw(st.lists(st.sampled_from(inner), max_size=3))) if inner else set()
    got = topological(roots, leaves)
    assert [id(n) for n in got] == [id(n) for n in plain_topological(roots, leaves)]
    position = {id(n): i for i, n in enumerate(got)}
    for n in got:
        if n not in leaves:
            assert all(position[id(a)] < position[id(n)] for a in n.args)


def test_topological_of_ternary_nodes_and_calls():
    x, y, z = sg.symbols("x"), sg.symbols("y"), sg.symbols("z")
    F = sg.Function("F", [x, y], [[x * y, sg.sin(x)]])
    r = F(y + z, x)
    roots = [sg.if_else(x > y, r[0] * z, sg.fmax(r[1], x)), sg.if_else(z, x, y) + r[0]]
    assert [id(n) for n in topological(roots)] == [id(n) for n in plain_topological(roots)]


# --------------------------------------------------------- product rules
def _factors():
    x, y, c = sg.symbols("x"), sg.symbols("y"), sg.symbols("c")
    nodes = [x, x * y, sg.sin(x), -x, -(x * y), 3.0 * x, x - y, x + y, sg.exp(y) / x]
    masks = [x > y, sg.if_else(c, x * y, 0.0), sg.if_else(c, 0.0, sg.cos(x))]
    consts = [sg.const(v) for v in (0.0, -0.0, 1.0, -1.0, 2.5, -3.0, math.nan, math.inf)]
    numbers = [0.0, -0.0, 1.0, -1.0, 0.5, -2.0]
    return nodes + masks + consts, nodes + masks + consts, numbers


def test_scale_fast_path_builds_the_general_rule_s_node():
    partials, values, numbers = _factors()
    for p in partials + numbers:
        for v in values:
            assert ad._scale(p, v) is ad._scale_general(p, v), (p, v)


def _plain_accumulate(acc, p, dirs):
    for k, v in dirs.items():
        term = ad._scale_general(p, v)
        prev = acc.get(k)
        acc[k] = term if prev is None else ad._plus(prev, term)


def test_scaled_and_accumulate_match_term_by_term_rules():
    partials, values, numbers = _factors()
    dirs = dict(enumerate(values))
    start = {k: v for k, v in enumerate(reversed(values)) if k % 3}  # some directions absent
    for p in partials + numbers:
        scaled = ad._scaled(p, dirs)
        assert scaled.keys() == dirs.keys()
        assert all(scaled[k] is ad._scale_general(p, v) for k, v in dirs.items()), p
        got, want = dict(start), dict(start)
        ad._accumulate(got, p, dirs)
        _plain_accumulate(want, p, dirs)
        assert got.keys() == want.keys() and all(got[k] is want[k] for k in want), p


def test_scaled_returns_a_new_dict():
    x = sg.symbols("x")
    dirs = {0: x}
    out = ad._scaled(1.0, dirs)
    assert list(out) == [0] and out[0] is x and out is not dirs


@pytest.mark.parametrize("op", ["add", "sub", "neg", "floor", "sign", "lt", "not"])
def test_known_constant_partials_are_the_rules_own(op):
    rule = sg.OPS[op]
    operands = [sg.symbols(f"a{k}") for k in range(rule.arity)]
    assert ad._CONST_PARTIALS[rule] == tuple(rule.deriv(*operands, sg.symbols("r")))


def test_no_rule_with_node_partials_is_taken_as_constant():
    for rule in ad._CONST_PARTIALS:
        assert rule.name not in ("mul", "div", "sin", "pow", "if_else", "fmax", "atan2")


# ------------------------------------------------ sweeps agree with each other
@given(random_graphs(max_inputs=3, max_steps=12))
def test_gradient_sweep_and_reverse_sweep_build_the_same_graph(graph):
    x = np.array(graph.inputs, dtype=object)
    f = graph.outputs[0]
    g = sg.grad(f, x)
    v = sg.vjp(f, x, 1.0)
    assert all(a is b for a, b in zip(np.ravel(g).tolist(), np.ravel(v).tolist()))


@given(random_graphs(max_inputs=3, max_steps=12))
def test_forward_jacobian_is_jvp_along_each_color(graph):
    x = np.array(graph.inputs, dtype=object)
    y = np.array(graph.outputs, dtype=object)
    J = sg.jacobian(y, x, mode="forward")
    dense = {}
    for i, j, e in zip(J.rows.tolist(), J.cols.tolist(), J.values.tolist()):
        dense[i, j] = e
    for j in range(len(x)):
        seed = np.zeros(len(x))
        seed[j] = 1.0
        column = np.ravel(sg.jvp(y, x, seed)).tolist()
        for i, e in enumerate(column):
            if (i, j) in dense:
                assert dense[i, j] is e
            else:
                assert e.op is E.CONST and e.data == 0.0


def test_luksan_hessian_values_and_pattern():
    x, f, g = sg.models.luksan(6)
    lam = sg.symbols("lam", 4)
    L = f + (lam * g).sum()
    H = sg.hessian(L, x, lower=True)
    x0, l0 = np.linspace(0.3, 1.2, 6), np.linspace(-1.0, 1.0, 4)
    got = sg.Function("H", [x, lam], [H])(x0, l0).toarray()
    G = sg.Function("G", [x, lam], [sg.grad(L, x)])
    h = 1e-6
    fd = np.column_stack([(G(x0 + h * e, l0) - G(x0 - h * e, l0)) / (2 * h) for e in np.eye(6)])
    assert np.allclose(got, np.tril(fd), atol=1e-5)
    assert H.n_colors == 3 and H.nnz == 11


# ------------------------------------------------------------ collection
def _plain_collect() -> int:
    """The reference sweep: every entry, newest first, until no dead call is dropped."""
    dropped, again = 0, True
    while again:
        again = False
        for key in reversed(list(E._TABLE)):
            node = E._TABLE[key]
            if sys.getrefcount(node) <= 3:
                again = again or node.op is E.CALL
                del E._TABLE[key]
                dropped += 1
            del node
    return dropped


def test_collect_leaves_nothing_the_plain_sweep_would_drop():
    x = sg.symbols("x", 30)
    keep = sg.hessian((x[1:] * sg.sin(x[:-1])).sum(), x)
    a, b = sg.symbols("a"), sg.symbols("b")
    F = sg.Function("f", [a, b], [a * sg.sin(b)])
    junk = [sg.jacobian(sg.exp(x[1:] - x[:-1]) * x[1:], x), sg.grad(F.map(3)(x[:3], x[3:6]).sum(), x),
            sg.hessian(F(x[0], x[1]) * x[2], x)]
    del junk
    sg.collect()
    assert _plain_collect() == 0
    x0 = np.linspace(0.1, 0.9, 30)
    H = sg.Function("H", [x], [keep])(x0).toarray()
    assert H[0, 1] == pytest.approx(math.cos(x0[0]))
    assert H[0, 0] == pytest.approx(-x0[1] * math.sin(x0[0]))


def test_collect_counts_each_dropped_node_once():
    x = sg.symbols("x")
    sg.collect()
    chain = x
    for k in range(500):
        chain = sg.sin(chain) * (k + 1.5)
    del chain
    assert sg.collect() == 1000
    assert sg.collect() == 0


# ------------------------------------------------------------- building()
def test_building_hands_its_objects_to_the_oldest_generation():
    if not gc.isenabled() or gc.get_freeze_count():
        pytest.skip("needs the collector on and nothing frozen")
    with sg.building():
        x = sg.symbols("x")
        node = sg.sin(x) * x
    assert gc.isenabled() and gc.get_freeze_count() == 0
    assert any(o is node for o in gc.get_objects(generation=2))


def test_building_keeps_a_program_s_frozen_objects_frozen():
    if not gc.isenabled() or gc.get_freeze_count():
        pytest.skip("needs the collector on and nothing frozen")
    marker = [object()]
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with sg.building():
            x = sg.symbols("x")
            sg.cos(x) + x
        assert gc.get_freeze_count() == frozen and gc.isenabled()
    finally:
        gc.unfreeze()
    assert marker
