"""The C backend emits calls (issue 10, layer 1): each callee once, as a static C function.

Oracles: the numpy VM (bit for bit on graphs of correctly rounded ops), and
the C code of the same graph with its calls inlined (bit for bit on any op:
the same libm sees the same operands).  Size: the source holds each callee
once, so it grows by a few lines per call, not by the callee's body.
"""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symgraph as sg
from codegen.c99 import callee_order, generate, program, translation_units
from codegen.export import demo_inputs
from strategies import compile_and_run, random_graphs

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
STRICT = ["gcc", "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror"]


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "symgraph-cache"))


def same(a, b) -> bool:
    """Bitwise equal arrays (NaN equal to NaN)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.all((np.isnan(a) & np.isnan(b)) | (a.view(np.int64) == b.view(np.int64))))


def dense(value) -> np.ndarray:
    return np.asarray(value.toarray() if hasattr(value, "toarray") else value, dtype=np.float64)


def as_list(result) -> list:
    return list(result) if isinstance(result, tuple) else [result]


def exact_model():
    """Calls of every kind over correctly rounded ops (so C equals the VM bit for bit).

    ``inner`` (several outputs, a sparse one, a constant and a copied entry) is
    called by ``middle``, which ``G`` calls; ``G`` also calls ``inner`` itself,
    on constant operands too, and a callee whose outputs are constants and
    copies of its inputs.
    """
    a, b = sg.symbols("a", 2), sg.symbols("b")
    S = sg.SparseExpr([2, 0, 1], [1, 0, 1], [a[0] * b - a[1], sg.sqrt(sg.abs(a[1])), a[0] / (b + 3.0)], (3, 2))
    inner = sg.Function("inner", [a, b], [np.array([a[0] + b, a[1] * a[1], 2.5, a[0]], dtype=object), S, -b])
    u = sg.symbols("u", 3)
    v, s, w = inner([u[0], u[1]], u[2])
    middle = sg.Function("middle", [u], [v * w + s.values[0], sg.if_else(sg.lt(u[0], u[1]), s.values[2], w)])
    t = sg.symbols("t", 2)
    copies = sg.Function("copies", [t], [np.array([t[1], 0.0, t[0], -1.5], dtype=object), t[0]])
    x, y = sg.symbols("x", 3), sg.symbols("y")
    m1, m2 = middle(x)
    n1, n2 = middle([x[2], y, 0.5])  # a constant operand
    i1, i2, i3 = inner([y, 1.0], 2.0)  # only constant operands but one
    c1, c2 = copies([x[0] * y, x[1]])
    outs = [m1 - n1, m2 + n2, i2, np.array([i1[0] * i3, i1[2], i1[3]], dtype=object), c1, c2 * m2]
    return sg.Function("calls", [x, y], outs), (inner, middle, copies)


POINTS = [(np.array([0.3, -1.2, 2.5]), 0.7), (np.array([-2.0, 0.25, 1e-3]), -5.5),
          (np.array([0.0, -0.0, 3.0]), 0.0), (np.array([1e300, -1e-300, 4.0]), math.inf)]


def test_compiled_calls_equal_the_vm_bit_for_bit():
    G, _ = exact_model()
    assert G.tape.n_calls >= 4 and G.output_sparsity[2] is not None
    C = G.compile(optimize=0)
    for x, y in POINTS:
        for got, want in zip(as_list(C(x, y)), as_list(G(x, y))):
            assert same(dense(got), dense(want)), (x, y)
    X = np.array([p[0] for p in POINTS])
    Y = np.array([p[1] for p in POINTS])
    for got, want in zip(C.batch(X, Y), G.batch(X, Y)):
        assert same(got.data if hasattr(got, "data") and hasattr(got, "indptr") else got,
                    want.data if hasattr(want, "data") and hasattr(want, "indptr") else want)
    out = [np.empty(s) if sp is None else C(*POINTS[0])[k].copy()
           for k, (s, sp) in enumerate(zip(G.output_shapes, G.output_sparsity))]
    C(*POINTS[1], out=out)
    for got, want in zip(out, as_list(G(*POINTS[1]))):
        assert same(dense(got), dense(want))


def test_each_callee_is_one_static_function_callees_first_in_order_of_first_call():
    G, (inner, middle, copies) = exact_model()
    src = G.c_code()
    assert [c.name for c in callee_order(G)] == ["inner", "middle", "copies"]
    for k in range(3):
        assert src.count(f"static void sgf_calls__c{k}(") == 1
    assert "sgf_calls__c3" not in src
    assert src.index("sgf_calls__c0(const") < src.index("sgf_calls__c1(const") < src.index("sgf_calls__c2(const")
    assert src.count("sgf_calls__c0(ca, cr,") == 2  # called by middle (once) and by G (once)
    assert src.count("sgf_calls__c1(ca, cr,") == 2
    assert generate(G) == src  # generate works on calls directly
    G2, _ = exact_model()  # the same graph built again: the same C, byte for byte
    assert G2.c_code() == src and G2.compile(optimize=0).source == G.compile(optimize=0).source


def test_split_callees_and_callers_in_several_files_equal_the_vm():
    G, _ = exact_model()
    prog = program(G, chunk_size=3)
    assert sum("__c0_part" in n for n in prog.part_names) > 1  # the callee body is split too
    assert len(translation_units(prog, G, 3)) == 3
    C = G.compile(optimize=0, chunk_size=3, jobs=3)
    for x, y in POINTS:
        for got, want in zip(as_list(C(x, y)), as_list(G(x, y))):
            assert same(dense(got), dense(want))


def test_tcc_compiles_the_calls():
    if shutil.which("tcc") is None:
        pytest.skip("tcc is not installed")
    G, _ = exact_model()
    C = G.compile(optimize=0, compiler="tcc", chunk_size=4, jobs=2)
    for x, y in POINTS:
        for got, want in zip(as_list(C(x, y)), as_list(G(x, y))):
            assert same(dense(got), dense(want))


def test_callees_are_optimized_once_at_the_compile_level():
    x = sg.symbols("x", 2)
    f = sg.Function("f", [x], [x[0] * x[1] + x[1] * x[0] + 0.0 * x[0], sg.sin(x[0]) * sg.sin(x[0])])
    y = sg.symbols("y", 2)
    G = sg.Function("g", [y], [f(y)[0] * f([y[1], y[0]])[1]])
    emitted: dict = {}
    assert callee_order(G, 1, emitted) == [f] and emitted[f].n_ops < f.n_ops  # one optimized copy for both calls
    emitted = {}
    assert callee_order(G, 0, emitted) == [f] and emitted[f] is f
    src1, src0 = program(G, optimize=1), program(G, optimize=0)
    assert src1.n_ops < src0.n_ops
    C = G.compile()
    assert C.source == G.c_code(optimize=1) == generate(G, optimize=1) != G.c_code()
    for p in ([0.3, -1.1], [2.0, 0.5]):
        np.testing.assert_allclose(C(np.array(p)), G(np.array(p)), rtol=1e-14)


def chain_callee(n_ops: int):
    """A callee of about ``n_ops`` operations with two inputs and three outputs."""
    x = sg.symbols("x", 2)
    e, f = x[0], x[1]
    with sg.building():
        for k in range(n_ops // 4):
            e, f = e * f + 0.5, f - e / (1.0 + k)
    return sg.Function("body", [x], [e, f, e * f])


def test_source_grows_by_a_few_lines_per_call_not_by_the_callee():
    body = chain_callee(500)
    assert body.n_ops >= 500
    y = sg.symbols("y", 2)

    def caller(n_calls: int):
        acc, outs = y[0], []
        for k in range(n_calls):
            a, b, c = body([acc, y[1] + k])
            acc = a - c
            outs.append(b)
        return sg.Function("many", [y], [acc, np.array(outs, dtype=object)])

    few, many = caller(2), caller(200)
    small, big = few.c_code(), many.c_code()
    assert big.count("static void sgf_many__c0(") == 1
    per_call = (len(big) - len(small)) / 198
    assert per_call < 600, per_call  # call site, results and uses (measured: 380), not the body (~20,000)
    assert len(big) < len(small) + 200 * 600
    assert len(many.inline().c_code()) > 20 * len(big)  # inlined: the body 200 times (measured: 4.0 MB vs 98 kB)
    C = many.compile(optimize=0)
    p = np.array([0.3, 0.7])
    for got, want in zip(C(p), many(p)):
        assert same(got, want)


def test_export_with_calls_compiles_pedantic_and_the_demo_matches_the_vm(tmp_path):
    G, _ = exact_model()
    paths = G.export_c(str(tmp_path), optimize=0)
    printed = compile_and_run(paths, tmp_path, STRICT)
    ref = as_list(G(*demo_inputs(G)))
    assert len(printed) == G.n_out
    for got, want in zip(printed, ref):
        want = want.tocsc().data if hasattr(want, "tocsc") else np.asarray(want, dtype=np.float64).reshape(-1)
        assert same(np.array(got), want)  # %.17g round-trips exactly


def test_nested_calls_three_levels_deep_and_deep_chains_of_callees():
    x = sg.symbols("x", 2)
    level = sg.Function("l0", [x], [x[0] * x[1] - 1.0, x[0] + x[1]])
    for depth in range(1, 12):  # 12 levels: the work area covers the deepest chain
        a, b = level(x)
        c, d = level([b, a])
        level = sg.Function(f"l{depth}", [x], [a * d - c, b / (1.0 + c * c)])
    assert len(callee_order(level)) == 11
    C = level.compile(optimize=0)
    for p in ([0.3, 0.2], [-0.5, 0.25]):
        for got, want in zip(C(np.array(p)), level(np.array(p))):
            assert same(got, want)
    assert program(level).work_size >= 11 * 4


@settings(max_examples=12, deadline=None)
@given(st.lists(random_graphs(max_inputs=3, max_steps=10), min_size=1, max_size=4),
       st.lists(st.floats(-3, 3, allow_nan=False), min_size=4, max_size=4), st.sampled_from([1, 3, 2000]))
def test_random_callee_bodies_equal_their_inlined_code(graphs, values, chunk_size):
    """Random callees over the op table, called twice each and once from a wrapper, against the inlined C.

    Parts of 1 and 3 instructions split callers and callees everywhere (a call's results stay with it).
    """
    n = max(len(g.inputs) for g in graphs)
    y = sg.symbols("y", n + 1)
    outs = []
    for k, g in enumerate(graphs):
        f = g.function(f"r{k}")
        m = len(g.inputs)
        first = f(*y[:m])
        second = f(*y[n + 1 - m:][::-1])
        z = sg.symbols("z", m)
        wrapper = sg.Function(f"w{k}", [z], [f(*z) * 2.0 + z[0]])
        outs += [first, second, wrapper(y[1:m + 1])]
    G = sg.Function("rand", [y], [np.concatenate([np.asarray(o, dtype=object).reshape(-1) for o in outs])])
    point = np.array([values[k % 4] for k in range(n + 1)])
    got = G.compile(optimize=0, chunk_size=chunk_size)(point)
    want = G.inline().compile(optimize=0)(point)
    assert same(got, want)
