"""assembled_function: Functions laid out from calls and result indices, against the same Function built from Exprs."""

import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import symgraph as sg
from symgraph.assemble import CallPiece, ExprPiece, assembled_function


def body():
    a, b = sg.symbols("a"), sg.symbols("b")
    return sg.Function("body", [a, b], [[sg.sin(a) * b, a * a - b]])


def reference(M, operands, x, picks, extra):
    """The same outputs built the ordinary way: one call node, results picked, Exprs concatenated."""
    results = np.asarray(sg.call.call_function(M, [operands[:M.input_shapes[0][0]].reshape(M.input_shapes[0]),
                                                   operands[M.input_shapes[0][0]:].reshape(M.input_shapes[1])]),
                         dtype=object).reshape(-1)
    return sg.Function("ref", [x], [np.concatenate([results[picks], extra])])


@given(n=st.integers(1, 6), data=st.data())
def test_picked_results_and_exprs_equal_the_expr_built_function(n, data):
    x = sg.symbols("x", n + 1)
    M = body().map(n)
    picks = np.array(data.draw(st.lists(st.integers(0, 2 * n - 1), min_size=0, max_size=3 * n)), dtype=np.int64)
    operands = np.concatenate([x[:-1], x[1:]])
    extra = np.array([x[0] * 3 + 1, sg.cos(x[-1])], dtype=object)
    F = assembled_function("f", [x], [[CallPiece(0, picks), ExprPiece(extra)]], [(M, operands)])
    G = reference(M, operands, x, picks, extra)
    value = np.random.default_rng(n).uniform(-1, 1, n + 1)
    np.testing.assert_array_equal(F(value), G(value))
    assert [str(e) for e in F.outputs[0]] == [str(e) for e in G.outputs[0]]


def test_operands_that_are_constants_or_expressions_are_computed_first():
    x = sg.symbols("x", 3)
    M = body().map(2)
    operands = np.array([x[0], 2.5, x[1] * x[2], x[2]], dtype=object)  # a constant and an expression among them
    F = assembled_function("f", [x], [[CallPiece(0, np.arange(4))]], [(M, operands)])
    value = np.array([0.3, -0.7, 1.1])
    a, b = np.array([0.3, 2.5]), np.array([-0.7 * 1.1, 1.1])
    expected = np.column_stack([np.sin(a) * b, a * a - b]).reshape(-1)
    np.testing.assert_allclose(F(value), expected, rtol=1e-15)
    np.testing.assert_allclose(F.compile()(value), expected, rtol=1e-15)


def test_two_calls_several_outputs_compiled_and_pickled():
    x, p = sg.symbols("x", 4), sg.symbols("p", 2)
    M = body().map(2)
    calls = [(M, np.concatenate([x[:2], x[2:]])), (M, np.concatenate([p, x[1:3]]))]
    F = assembled_function("f", [x, p], [[CallPiece(1, np.array([3, 0]))],
                                         [CallPiece(0, np.array([0, 1, 2, 3])), ExprPiece(np.array([p[0]]))]], calls,
                           input_names=["x", "p"])
    xv, pv = np.array([0.1, 0.2, 0.3, 0.4]), np.array([-1.0, 2.0])
    first, second = F(xv, pv)
    np.testing.assert_allclose(first, [2.0 * 2.0 - 0.3, np.sin(-1.0) * 0.2], rtol=1e-15)  # instance 1 output 1, instance 0 output 0
    np.testing.assert_allclose(second[-1], -1.0)
    C = F.compile()
    for got, want in zip(C(xv, pv), (first, second)):
        np.testing.assert_allclose(got, want, rtol=1e-15)
    G = pickle.loads(pickle.dumps(F))
    for got, want in zip(G(xv, pv), (first, second)):
        np.testing.assert_array_equal(got, want)
    J = sg.jacobian(F.outputs[1], x)  # the outputs rebuild into Exprs that differentiate as usual
    assert J.shape == (5, 4)


def test_bad_result_index_and_operand_count():
    x = sg.symbols("x", 3)
    M = body().map(2)
    with pytest.raises(sg.ShapeError, match="outside"):
        assembled_function("f", [x], [[CallPiece(0, np.array([4]))]], [(M, np.concatenate([x[:2], x[1:]]))])
    with pytest.raises(sg.ShapeError, match="operand scalars"):
        assembled_function("f", [x], [[CallPiece(0, np.array([0]))]], [(M, x)])


def test_pieces_of_mixed_values_equal_the_expr_built_function():
    from symgraph.assemble import pieces_of

    x = sg.symbols("x", 5)
    M, N = body().map(4), body().map(2)
    r = np.asarray(M(x[:-1], x[1:]), dtype=object).reshape(-1)
    q = np.asarray(N(x[:2], x[3:]), dtype=object).reshape(-1)
    values = np.concatenate([r[:3], [x[0] * 2], q[::-1], r[5:], [sg.sin(x[4])], r[3:5]])
    pieces, calls = pieces_of(values)
    assert len(calls) == 2 and sum(len(p) for p in pieces) == len(values)
    F = assembled_function("f", [x], [pieces], calls)
    G = sg.Function("g", [x], [values])
    value = np.array([0.3, -0.2, 1.5, 0.7, -1.1])
    np.testing.assert_array_equal(F(value), G(value))
    np.testing.assert_array_equal(F.compile()(value), G(value))
    assert pieces_of(np.array([x[0] + 1, x[1]], dtype=object)) is None


def test_nlp_constraints_of_a_big_mapped_model_are_assembled():
    n = 1200
    a, b = sg.symbols("a"), sg.symbols("b")
    con = sg.Function("con", [a, b], [a * a - b + sg.sin(a)])
    x = sg.symbols("x", n)
    g = np.concatenate([con.map(n - 1)(x[:-1], x[1:]), [x[0] - 1.0]])
    nlp = sg.NLP(x=x, f=x @ x, g=g, jit=False)
    assert type(nlp.functions["g"]).__name__ == "AssembledFunction"
    xv = np.random.default_rng(2).uniform(-1, 1, n)
    expected = np.concatenate([xv[:-1] ** 2 - xv[1:] + np.sin(xv[:-1]), [xv[0] - 1.0]])
    np.testing.assert_allclose(nlp.constraints(xv), expected, rtol=1e-14, atol=1e-14)


def test_id_positions_direct_table_and_sorted_search_agree_with_a_dict():
    import symgraph as sg
    from symgraph.assemble import id_positions, object_ids

    x = sg.symbols("x", 50)
    others = [sg.symbols("p"), object(), 1.5]
    query = np.array(list(x[::-3]) + others + list(x[:4]), dtype=object)
    expected = [dict(zip(x.tolist(), range(50))).get(e, -1) for e in query.tolist()]
    assert object_ids(query).tolist() == [id(e) for e in query.tolist()]
    assert id_positions(object_ids(x), object_ids(query)).tolist() == expected
    spread = np.array([16, 2 ** 40, 48], dtype=np.int64)  # too wide for a direct table: the sorted search
    assert id_positions(spread, np.array([48, 2 ** 40, 17, 16])).tolist() == [2, 1, -1, 0]
    assert id_positions(np.zeros(0, np.int64), np.array([1])).tolist() == [-1]
