"""Function: metadata, the frozen Tape, evaluation of every kind of output."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse

import symgraph as sg
from symgraph.batch import SparseBatch
from symgraph.expr import topological
from symgraph.ops import OP_LIST
from symgraph.tape import tape_exprs


@pytest.fixture
def F():
    x, y = sg.symbols("x", 2), sg.symbols("y")
    return sg.Function("f", [x, y], [x * y, sg.sin(x[0]) + x[1] ** 2 * y])


# ----------------------------------------------------------------- metadata
def test_metadata(F):
    assert F.name == "f" and F.n_in == 2 and F.n_out == 2
    assert F.input_shapes == ((2,), ()) and F.output_shapes == ((2,), ())
    assert F.input_names == ("x", "y") and F.output_names == ("o0", "o1")
    assert F.n_ops == sg.count_ops([e for o in F.outputs for e in o.ravel()]) == 6
    assert repr(F) == "Function(f: (x[2], y) -> (o0[2], o1), 6 ops)" and str(F) == repr(F)
    assert F.output_sparsity == (None, None)


def test_names_given_and_default():
    a, b = sg.symbols("a"), sg.symbols("a")
    m = sg.symbols("m", (2, 2))
    mixed = np.array([sg.symbols("p"), sg.symbols("q")], dtype=object)
    G = sg.Function("g", [a, b, m, mixed], [a + b, m.sum() + mixed.sum()])
    assert G.input_names == ("i0", "i1", "i2", "i3")  # a clash, so all are numbered
    H = sg.Function("h", [m, mixed], [m.sum() + mixed.sum()])
    assert H.input_names == ("m", "i1")
    K = sg.Function("k", [m], [m, m.sum()], input_names=["M"], output_names=["same", "total"])
    assert K.input_names == ("M",) and K.output_names == ("same", "total")
    assert repr(K) == "Function(k: (M[2,2]) -> (same[2,2], total), 3 ops)"


def test_single_input_and_output_need_no_list():
    x = sg.symbols("x", 3)
    G = sg.Function("g", x, x * 2)
    assert G.n_in == 1 and G.n_out == 1 and G.input_shapes == ((3,),)
    np.testing.assert_array_equal(G([1.0, 2.0, 3.0]), [2.0, 4.0, 6.0])
    s = sg.symbols("s")
    H = sg.Function("h", s, sg.exp(s))
    assert float(H(0.0)) == 1.0 and H.input_names == ("s",)


def test_listing_shows_the_tape():
    x = sg.symbols("x", 2)
    G = sg.Function("g", [x], [sg.sin(x[0]) * 2 + x[1]])
    assert G.listing() == "\n".join([
        "@0 = input 0 [0] (x[0])",
        "@1 = input 0 [1] (x[1])",
        "@2 = 2",
        "@3 = sin(@0)",
        "@4 = mul(@2, @3)",
        "@5 = add(@4, @1)",
        "output 0 [] = @5",
    ])
    v = sg.symbols("v", 50)
    long = sg.Function("long", [v], [sg.sin(v).sum()]).listing(limit=10)
    lines = long.splitlines()
    assert "... 89 more instructions" in lines and lines[-1] == "output 0 [] = @148"
    assert sum(1 for line in lines if "(@" in line) == 10


# --------------------------------------------------------------------- tape
def _check_tape(F):
    tape = F.tape
    n_in = sum(int(np.prod(s)) for s in F.input_shapes)
    assert tape.n_input_scalars == n_in and tape.first_instruction_slot == n_in + len(tape.constants)
    assert tape.n_slots == tape.first_instruction_slot + tape.n_instructions
    assert tape.operands.shape == (tape.n_instructions, 3) and tape.opcodes.shape == (tape.n_instructions,)
    for (op, out, args), code in zip(tape.instructions(), tape.opcodes.tolist()):
        assert OP_LIST[code] is op and len(args) == op.arity
        assert all(0 <= a < out for a in args)  # topological: operands are earlier slots
    assert [s.shape for s in tape.input_slots] == list(F.input_shapes)
    assert sorted(np.concatenate([s.ravel() for s in tape.input_slots]).tolist()) == list(range(n_in))
    assert len(set(tape.constants.tolist())) == len(tape.constants) or np.isnan(tape.constants).any()
    # the tape rebuilds the very same graph (hash-consing makes this an identity check)
    values = tape_exprs(tape, F.inputs)
    for out, slots in zip(F.outputs, tape.output_slots):
        assert all(values[s] is e for s, e in zip(slots.ravel().tolist(), out.ravel()))
    last = tape.last_use()
    for i, (op, out, args) in enumerate(tape.instructions()):
        assert all(last[a] >= i for a in args)
    for slots in tape.output_slots:
        assert (last[slots.ravel()] == tape.n_instructions).all()


def test_tape_invariants(F):
    _check_tape(F)
    v = sg.symbols("v", 6)
    x, f, g = sg.models.luksan(6)
    _check_tape(sg.Function("luksan", [x], [f, g]))
    _check_tape(sg.Function("mix", [v], [sg.if_else(sg.lt(v, 1), v, 0.5), 3.0, v[::-1], sg.atan2(v, 2.0)]))


def test_tape_shares_common_subexpressions():
    x = sg.symbols("x")
    s = sg.sin(x)
    G = sg.Function("g", [x], [s * s + s, s])
    assert G.n_ops == 3  # sin, mul, add: sin computed once
    assert [op.name for op, _, _ in G.tape.instructions()] == ["sin", "mul", "add"]


# --------------------------------------------------------------- evaluation
def test_single_point_and_batch(F):
    x, y = np.array([0.5, -2.0]), 3.0
    got = F(x, y)
    assert isinstance(got, tuple) and len(got) == 2
    np.testing.assert_array_equal(got[0], x * y)
    assert got[1] == math.sin(0.5) + 4.0 * 3.0 and isinstance(got[1], np.float64)
    xs, ys = np.array([[0.5, -2.0], [1.0, 1.0], [0.0, 3.0]]), np.array([3.0, -1.0, 2.0])
    batch = F.batch(xs, ys)
    assert batch[0].shape == (3, 2) and batch[1].shape == (3,)
    for k in range(3):
        single = F(xs[k], ys[k])
        np.testing.assert_array_equal(batch[0][k], single[0])
        assert batch[1][k] == single[1]


def test_scalar_output_is_a_numpy_scalar():
    x = sg.symbols("x")
    G = sg.Function("g", [x], [x * x])
    out = G(3.0)
    assert isinstance(out, np.float64) and out == 9.0 and np.ndim(out) == 0
    assert G.batch(np.array([1.0, 2.0])).tolist() == [1.0, 4.0]


def test_constant_outputs():
    x = sg.symbols("x", 2)
    G = sg.Function("g", [x], [3.0, sg.const(-0.0), np.array([1.0, 2.0]), x * 0, [[x[0], 7]]])
    got = G([5.0, 6.0])
    assert got[0] == 3.0 and math.copysign(1.0, got[1]) == -1.0
    np.testing.assert_array_equal(got[2], [1.0, 2.0])
    np.testing.assert_array_equal(got[3], [0.0, 0.0])
    np.testing.assert_array_equal(got[4], [[5.0, 7.0]])
    assert G.output_shapes == ((), (), (2,), (2,), (1, 2)) and G.n_ops == 0
    batch = G.batch(np.ones((4, 2)))
    assert batch[0].shape == (4,) and (batch[0] == 3.0).all() and batch[4].shape == (4, 1, 2)
    C = sg.Function("c", [], [np.pi])
    assert C() == np.pi and C.n_in == 0


def test_outputs_that_are_inputs_are_copies():
    x, y = sg.symbols("x", 2), sg.symbols("y")
    G = sg.Function("g", [x, y], [x, y, x[::-1]])
    arg = np.array([1.0, 2.0])
    got = G(arg, 3.0)
    np.testing.assert_array_equal(got[0], arg)
    assert got[1] == 3.0
    np.testing.assert_array_equal(got[2], [2.0, 1.0])
    got[0][0] = 99.0
    assert arg[0] == 1.0  # the result does not alias the argument
    assert G.n_ops == 0


def test_one_node_in_several_outputs_and_positions():
    x = sg.symbols("x")
    s = sg.exp(x)
    G = sg.Function("g", [x], [np.array([s, s, 1 / s]), s])
    got = G(1.0)
    np.testing.assert_allclose(got[0], [math.e, math.e, 1 / math.e], rtol=1e-15)
    assert got[1] == math.e and G.n_ops == 2


def test_empty_input_and_output():
    x, p = sg.symbols("x", 2), sg.symbols("p", 0)
    G = sg.Function("g", [x, p], [x.sum(), np.empty(0, dtype=object)])
    got = G([1.0, 2.0], np.zeros(0))
    assert got[0] == 3.0 and got[1].shape == (0,)
    batch = G.batch(np.ones((3, 2)), np.zeros((3, 0)))
    assert batch[0].tolist() == [2.0, 2.0, 2.0] and batch[1].shape == (3, 0)


def test_sparse_outputs_become_scipy_matrices():
    x = sg.symbols("x", 3)
    S = sg.SparseExpr([0, 2, 1, 0], [0, 0, 2, 1], [x[0] * x[1], sg.sin(x[2]), x[1] * 0, 4.0], (3, 3))
    G = sg.Function("g", [x], [S, x.sum()])
    assert G.output_shapes == ((3, 3), ()) and G.output_sparsity[1] is None
    rows, cols, shape = G.output_sparsity[0]
    assert rows.tolist() == [0, 2, 1, 0] and cols.tolist() == [0, 0, 2, 1] and shape == (3, 3)
    p = np.array([2.0, 3.0, 0.5])
    M, total = G(p)
    assert scipy.sparse.issparse(M) and M.format == "csc" and M.shape == (3, 3)
    assert M.nnz == 4  # the structural zero (x[1] * 0) is kept in the pattern
    want = np.zeros((3, 3))
    want[0, 0], want[2, 0], want[1, 2], want[0, 1] = 6.0, math.sin(0.5), 0.0, 4.0
    np.testing.assert_array_equal(M.toarray(), want)
    np.testing.assert_array_equal(S.to_dense()[0, 1].value, 4.0)
    assert total == 5.5
    ps = np.array([p, 2 * p])
    mats, totals = G.batch(ps)
    assert isinstance(mats, SparseBatch) and mats.data.shape == (2, 4) and mats.shape == (2, 3, 3)
    assert len(mats) == 2 and all(scipy.sparse.issparse(m) for m in mats)
    assert all((m.data == row).all() and (m.indices == mats.indices).all() for m, row in zip(mats, mats.data))
    np.testing.assert_array_equal(mats[1].toarray()[0, 0], 24.0)
    assert totals.tolist() == [5.5, 11.0]
    # the nonzeros sit on the tape in the SparseExpr's order
    slots = G.tape.output_slots[0].tolist()
    assert len(slots) == 4 and tape_exprs(G.tape, G.inputs)[slots[1]] is sg.sin(x[2])


def test_complex_inputs():
    x, y = sg.symbols("x", 2), sg.symbols("y")
    G = sg.Function("g", [x, y], [x * y, sg.exp(x[0]) * y])
    h = 1e-30
    got = G(np.array([1.0 + h * 1j, 2.0]), 3.0)
    assert got[0].dtype == np.complex128 and got[1].dtype == np.complex128
    assert got[1].real == math.exp(1.0) * 3.0 and got[1].imag / h == pytest.approx(math.exp(1.0) * 3.0, rel=1e-15)
    assert got[0][0].imag / h == 3.0 and got[0][1].imag == 0.0
    mixed = G(np.array([1.0, 2.0]), 3.0 + h * 1j)  # a real and a complex argument
    assert mixed[1].imag / h == pytest.approx(math.exp(1.0), rel=1e-15)
    batch = G.batch(np.array([[1.0 + h * 1j, 2.0], [0.0, 1.0]]), np.array([3.0, 4.0]))
    assert batch[1].dtype == np.complex128 and batch[1][1] == 4.0
    real = G(np.array([1.0, 2.0]), 3.0)
    assert real[1].dtype == np.float64


def test_arguments_are_converted():
    x = sg.symbols("x", 2)
    G = sg.Function("g", [x], [x / 2])
    for arg in ([1, 2], (1, 2), np.array([1, 2], dtype=np.int32), np.array([1, 2], dtype=np.float32),
                np.array([True, False])):
        got = G(arg)
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, np.asarray(arg, dtype=float) / 2)
    assert float(sg.Function("s", [sg.symbols("s")], [sg.symbols("t") * 0 + 1])(np.float32(2))) == 1.0


def test_functions_are_independent_of_later_graph_building(F):
    before = F(np.array([1.0, 2.0]), 3.0)
    x = F.inputs[0]
    for _ in range(10):
        _ = sg.sin(x) * 5  # new nodes do not change a frozen Function
    sg.collect()
    after = F(np.array([1.0, 2.0]), 3.0)
    np.testing.assert_array_equal(before[0], after[0])
    assert before[1] == after[1]


def test_topological_walk_of_outputs_matches_tape_order():
    x = sg.symbols("x", 3)
    out = sg.hypot(x[0], sg.atan2(x[1], x[2])) * sg.exp(x[0])
    G = sg.Function("g", [x], [out])
    order = [n for n in topological([out]) if n.args]
    assert [op.name for op, _, _ in G.tape.instructions()] == [n.op.name for n in order]
