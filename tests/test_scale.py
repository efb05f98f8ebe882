"""Scale: nothing recurses over a graph, so a million-node chain just works."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

import symgraph as sg
from symgraph.expr import to_str, topological

N = 1_000_000


@pytest.fixture(scope="module")
def chain():
    """x -> 1 + x -> 1 + (1 + x) -> ... : N add nodes, each depending on the previous one."""
    assert sys.getrecursionlimit() < N  # so any recursion over the graph would fail
    x = sg.symbols("x")
    e = x
    with sg.building():
        for _ in range(N):
            e = e + 1.0
    yield x, e
    del e
    sg.collect()


def test_million_node_chain_builds_freezes_prints_and_evaluates(chain):
    x, e = chain
    assert e.op.name == "add" and e.args[0] is sg.const(1.0)
    start = time.perf_counter()
    F = sg.Function("chain", [x], [e])
    assert F.n_ops == N
    assert repr(F) == f"Function(chain: (x) -> (o0), {N} ops)"
    assert F.listing(limit=2).splitlines()[2:5] == ["@2 = add(@1, @0)", "@3 = add(@1, @2)",
                                                    f"... {N - 2} more instructions"]
    assert float(F(0.5)) == 0.5 + N  # exact: every partial sum is an integer plus 0.5
    # a batch, complex: value and complex-step derivative through the whole chain
    got = F.batch(np.array([0.5 + 1e-30j, -N]))
    assert got.real.tolist() == [0.5 + N, 0.0] and got.imag.tolist() == [1e-30, 0.0]
    assert time.perf_counter() - start < 60


def test_million_node_chain_traversals_and_printing(chain):
    x, e = chain
    order = topological([e])
    assert len(order) == N + 2 and order[-1] is e and (order[0] is x or order[0] is sg.const(1.0))
    assert sg.count_ops([e]) == N and sg.free_symbols([e]) == [x]
    head = to_str(e, limit=60)
    assert head.startswith("1 + (1 + (1 + (") and head.endswith("...") and len(head) == 63
    assert repr(e).startswith("Expr(1 + (1 + ") and len(repr(e)) < 300
    with pytest.raises(sg.SymbolicBoolError, match=r"1 \+ \(1 \+"):
        bool(e)  # the error message prints a bounded head too


def test_full_str_of_a_deep_chain_does_not_recurse():
    x = sg.symbols("x")
    e = x
    with sg.building():
        for k in range(100_000):
            e = sg.sin(e) if k % 2 else e * 2.0
    text = str(e)
    assert text.startswith("sin(2 * sin(2 * ") and text.endswith("sin(2 * x)" + ")" * 49_999)
    assert len(text) == len("sin(2 * )") * 50_000 + 1
