"""Call nodes (issue 10, layer 1): a Function called on symbols is one node with several outputs.

Oracles: the callee evaluated on the argument values (the call must compute
exactly that), the same model built inline (``sg.inline`` and direct
construction, identical nodes by hash-consing), and compiled C against the VM.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import symgraph as sg
from symgraph import vm
from symgraph.call import (callee, inline_roots, is_call, is_result, n_results, output_position, rebuild,
                           rebuild_call, result_index, result_node)
from symgraph.function import function_from_data, function_to_data
from symgraph.schedule import scheduled
from symgraph.tape import tape_exprs, tape_from_data, tape_to_data
from strategies import points, random_graphs


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "symgraph-cache"))


def model(v):
    """A small model with several outputs: an array, a scalar."""
    return [sg.sin(v[0]) * v[1], sg.exp(v[0] - v[1])], v[0] * v[1] + sg.cos(v[1])


@pytest.fixture
def F():
    x = sg.symbols("x", 2)
    a, b = model(x)
    return sg.Function("f", [x], [np.array(a, dtype=object), b])


def close(a, b):
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-12, atol=1e-14,
                               equal_nan=True)


# ------------------------------------------------------------------- nodes
def test_a_call_is_one_node_and_its_results_are_shaped_like_the_outputs(F):
    y = sg.symbols("y", 2)
    a, b = F(y)
    assert isinstance(a, np.ndarray) and a.shape == (2,) and type(b) is sg.Expr
    call = b.args[0]
    assert is_call(call) and all(is_result(e) and e.args[0] is call for e in [*a, b])
    assert call.args == tuple(y) and call.data is F and callee(b) is F and callee(call) is F
    assert [result_index(e) for e in [*a, b]] == [0, 1, 2]
    assert output_position(F, 2) == (1, 0) and n_results(F) == 3
    a2, b2 = F(y)  # hash-consed: the same call and results
    assert b2 is b and all(p is q for p, q in zip(a, a2))
    assert F(list(y))[1] is b and F(np.array(y))[1] is b
    assert sg.count_ops([*a, b]) == 4  # one call, three results
    assert sg.free_symbols([b]) == list(y)  # the callee's own symbols are not free here
    assert result_node(call, 1) is a[1]
    assert rebuild_call(call, list(y)) is call and rebuild(b, [call]) is b


def test_numbers_become_constant_operands_and_calls_on_constants_stay_calls(F):
    y = sg.symbols("y")
    _, b = F([y, 2])
    assert b.args[0].args == (y, sg.const(2.0))
    _, c = F([sg.const(1.0), 2.0])  # all-constant operands: still a call, never folded
    assert is_result(c) and all(a.is_const for a in c.args[0].args)
    G = sg.Function("g", [y], [c + y])
    assert float(G(0.5)) == pytest.approx(float(F([1.0, 2.0])[1]) + 0.5, rel=1e-15)


def test_different_callees_or_operands_give_different_calls(F):
    y, z = sg.symbols("y", 2), sg.symbols("z", 2)
    x = sg.symbols("x", 2)
    F2 = sg.Function("f", [x], [np.array(model(x)[0], dtype=object), model(x)[1]])  # equal graph, other object
    assert F(y)[1] is not F(z)[1] and F(y)[1] is not F2(y)[1]
    assert F(y)[1].args[0] is not F(y)[0][0] and F(y)[1].args[0] is F(y)[0][0].args[0]


def test_a_big_callee_called_many_times_adds_one_call_and_its_results_per_call():
    x = sg.symbols("x", 10)
    with sg.building():
        e = x
        for _ in range(100):  # about 1000 operations
            e = sg.sin(e) * 0.5 + x
    body = sg.Function("body", [x], [e.sum()])
    assert body.n_ops > 1000
    y = sg.symbols("y", 100)
    outs = [body(np.roll(y, k)[:10]) for k in range(100)]
    total = outs[0]
    for o in outs[1:]:
        total = total + o
    # 100 calls + 100 results + 99 additions, not 100 copies of the body
    assert sg.count_ops([total]) == 299
    G = sg.Function("g", [y], [total])
    assert G.n_ops == 299 and G.tape.n_calls == 100 and G.tape.callees == (body,)
    v = np.linspace(-1, 1, 100)
    assert float(G(v)) == pytest.approx(sum(float(body(np.roll(v, k)[:10])) for k in range(100)), rel=1e-13)


def test_a_callee_without_inputs_returns_its_own_outputs():
    K = sg.Function("k", [], [sg.const(2.0) * 3, np.array([1.0, 2.0])])
    a, b = sg.call.call_function(K, [])
    assert a is sg.const(6.0) and [e.value for e in b] == [1.0, 2.0]


# ------------------------------------------------------------------- errors
def test_argument_errors_name_the_argument(F):
    y = sg.symbols("y", 3)
    with pytest.raises(sg.ShapeError, match=r"f: argument 0 \('x'\): expected shape \(2,\), got \(3,\)"):
        F(y)
    with pytest.raises(sg.ArgumentCountError, match=r"f takes 1 argument\(s\) \(x\), got 2"):
        F(y[:2], y[2])
    with pytest.raises(sg.NonNumericConstantError, match=r"f: argument 0 \('x'\) at flat index 1"):
        F(np.array([y[0], "a"], dtype=object))
    J = sg.SparseExpr([0], [0], [y[0]], (2, 1))
    with pytest.raises(sg.ShapeError, match="SparseExpr"):
        F(J)
    with pytest.raises(sg.NonNumericConstantError, match=r"argument 0 \('x'\) at flat index 1: cannot use \[Expr"):
        F([y[0], [y[1], y[2]]])  # ragged
    with pytest.raises(sg.InvalidOpError, match="call a Function on symbolic arguments"):
        sg.apply(sg.OPS["call"], y[0])
    with pytest.raises(sg.InvalidOpError, match="does not build result nodes"):
        sg.apply(sg.OPS["result"], y[0])
    b = F(y[:2])[1]
    with pytest.raises(sg.InvalidInputError, match="result index 7"):
        result_node(b.args[0], 7)
    with pytest.raises(sg.InvalidInputError, match="a call node is used as a value"):
        sg.Function("g", [y], [b.args[0]])
    with pytest.raises(sg.InvalidInputError):
        callee(y[0])
    with pytest.raises(sg.ArityError):
        rebuild_call(b.args[0], [y[0]])


def test_batch_and_numbers_still_evaluate(F):
    v = np.array([0.3, -1.2])
    a, b = F(v)
    ref_a, ref_b = model(v)
    close(a, ref_a)
    close(b, ref_b)
    with pytest.raises(sg.DTypeError, match="call the Function itself"):
        F.batch(np.array([sg.symbols("y", 2)]))


# ---------------------------------------------------------------- values
def _check_values(G, inline_model, x_values):
    """G(x) equals the inline model in the VM, and G.inline() is that same graph."""
    for v in x_values:
        close(G(v), inline_model(v))
    H = G.inline()
    assert H.tape.n_calls == 0
    for v in x_values:
        close(H(v), G(v))


def test_values_with_several_outputs_constants_and_nesting(F):
    y = sg.symbols("y", 2)
    a, b = F(y)
    c, d = F([b, 2.0])                  # a call on another call's result and a constant
    G = sg.Function("g", [y], [a[0] * d + c[1], b])
    H = sg.Function("h", [y], [G(y[::-1])[0] + G([y[0], 1.0])[1] * F(y)[1]])  # calls inside a callee

    def h(v):
        def g(w):
            a, b = model(w)
            c, d = model([b, 2.0])
            return a[0] * d + c[1], b
        return g(v[::-1])[0] + g([v[0], 1.0])[1] * model(v)[1]

    pts = [np.array([0.3, -0.7]), np.array([1.5, 2.0]), np.array([-2.0, 0.0])]
    _check_values(H, h, pts)
    assert set(H.tape.callees) == {G, F} and H.tape.n_calls == 3
    # complex step through nested calls: the derivative in y[0]
    dx = 1e-30
    for v in pts:
        d = H(v + np.array([1j * dx, 0.0])).imag / dx
        d_inline = H.inline()(v + np.array([1j * dx, 0.0])).imag / dx
        assert d == pytest.approx(d_inline, rel=1e-12)
    # a batch of points runs each callee once over all of them
    batch = np.array(pts)
    close(H.batch(batch), [h(v) for v in pts])


def test_sparse_callee_outputs_come_back_as_sparse_exprs():
    x = sg.symbols("x", 3)
    J = sg.jacobian(sg.sin(x) * x[0], x)
    F = sg.Function("jf", [x], [J, x.sum()])
    y = sg.symbols("y", 3)
    Jy, s = F(y * 2)
    assert isinstance(Jy, sg.SparseExpr) and Jy.shape == J.shape and Jy.nnz == J.nnz
    assert np.array_equal(Jy.rows, J.rows) and np.array_equal(Jy.cols, J.cols)
    assert [result_index(e) for e in Jy.values] == list(range(J.nnz))
    G = sg.Function("g", [y], [Jy, s])
    v = np.array([0.2, -0.4, 1.1])
    (JG, sG), (JF, sF) = G(v), F(2 * v)
    assert np.array_equal(JG.toarray(), JF.toarray()) and float(sG) == float(sF)
    GI = G.inline()
    assert GI.output_sparsity[0][2] == J.shape and GI.tape.n_calls == 0
    JI, sI = GI(v)
    np.testing.assert_allclose(JI.toarray(), JG.toarray(), rtol=1e-14)


@given(random_graphs(max_inputs=3, max_steps=10), st.data())
def test_random_callee_bodies_in_calls_equal_the_callee_and_the_inline_model(graph, data):
    F = graph.function("body")
    n = len(graph.inputs)
    y = sg.symbols("y", 2)
    # arguments: symbolic expressions of y and a constant
    pool = [y[0], y[1], y[0] * 2 - y[1], sg.const(0.75)]
    picks = data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    args = [pool[k] for k in picks]
    out = F(*args)
    G = sg.Function("g", [y], [out, out.sum() * y[0]])
    v = data.draw(points(2, wide=False))
    arg_values = [float(sg.Function("a", [y], [a])(v)) for a in args]
    want = F(*arg_values)
    got, total = G(v)
    np.testing.assert_array_equal(got, want)  # the call computes exactly the callee on those values
    inline_out = sg.inline(out)
    assert all(e is f for e, f in zip(inline_out, sg.substitute(graph.outputs, graph.inputs, args)))
    H = sg.Function("h", [y], [inline_out])
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(H(v), want, rtol=1e-12, atol=1e-300, equal_nan=True)


# -------------------------------------------------------------- inlining
def test_inline_gives_the_very_graph_built_directly():
    x, y = sg.symbols("x", 2), sg.symbols("y", 2)
    a, b = model(x)
    F = sg.Function("f", [x], [np.array(a, dtype=object), b])
    inner = sg.Function("inner", [x], [sg.log1p(x[0] * x[0]) + x[1]])
    outer = sg.Function("outer", [x], [F([inner(x), x[1]])[1] * 2])  # nested
    z = sg.symbols("z", 2)
    got = sg.inline(outer(z) + 1)
    want = model([sg.log1p(z[0] * z[0]) + z[1], z[1]])[1] * 2 + 1
    assert got is want
    # every structure substitute accepts
    ra, rb = F(z)
    out = sg.inline([ra, (rb, 3.0), sg.SparseExpr([0], [1], [rb], (1, 2))])
    assert out[0][0] is model(z)[0][0] and out[1][0] is model(z)[1] and out[1][1] is sg.const(3.0)
    assert isinstance(out[2], sg.SparseExpr) and out[2].values[0] is model(z)[1]
    assert sg.inline(y[0]) is y[0] and inline_roots([y[0]]) == [y[0]]


def test_inline_of_deeply_nested_callees_is_iterative():
    x = sg.symbols("x")
    F = sg.Function("f0", [x], [sg.sin(x) + 1])
    for k in range(1, 300):  # 300 levels of callees, each calling the previous one
        F = sg.Function(f"f{k}", [x], [F(x) * 0.5 + x])
    y = sg.symbols("y")
    G = sg.Function("g", [y], [F(y)])
    e = y
    ref = sg.sin(y) + 1
    for _ in range(1, 300):
        ref = ref * 0.5 + e
    assert sg.inline(F(y)) is ref
    assert float(G(0.3)) == pytest.approx(float(sg.Function("r", [y], [ref])(0.3)), rel=1e-14)
    G2 = pickle.loads(pickle.dumps(G))
    assert float(G2(0.3)) == float(G(0.3))


def test_substitute_rebuilds_calls_and_to_sympy_inlines(F):
    y, z = sg.symbols("y", 2), sg.symbols("z", 2)
    a, b = F(y)
    assert sg.substitute(b, y, z) is F(z)[1]
    assert sg.substitute(a[1] + b, y, [z[0], 2.0]) is F([z[0], 2.0])[0][1] + F([z[0], 2.0])[1]
    s = sg.to_sympy(b)
    import sympy

    Y0, Y1 = sympy.Symbol("y[0]", real=True), sympy.Symbol("y[1]", real=True)
    assert sympy.simplify(s - (Y0 * Y1 + sympy.cos(Y1))) == 0


# ------------------------------------------------------- Tape, optimizer
def test_tape_listing_last_use_and_schedule(F):
    y = sg.symbols("y", 2)
    a, b = F(y * 2)
    G = sg.Function("g", [y], [a[1] * b, sg.cos(y[0])])
    text = G.listing()
    assert "= call f(@" in text and "= result 1 of @" in text and "= result 2 of @" in text
    T = G.tape
    i = int(np.flatnonzero(T.opcodes == sg.OPS["call"].code)[0])
    fn, slots = T.call(i)
    assert fn is F and len(slots) == 2 and T.operands[i].tolist() == [-1, -1, -1]
    last = T.last_use()
    assert all(last[s] >= i for s in slots)
    values = tape_exprs(T, G.inputs)  # the Tape rebuilds the very same graph, calls included
    for out, slots_k in zip(G.outputs, T.output_slots):
        assert all(values[s] is e for s, e in zip(slots_k.ravel().tolist(), out.ravel()))
    assert T.operand_rows()[i] == list(slots)
    S = scheduled(T)
    for p in ([0.3, 0.1], [-1.0, 2.0]):
        col = [np.array([p])]
        for u, w in zip(vm.run(S, col), vm.run(T, col)):
            np.testing.assert_array_equal(u, w)


def test_optimize_keeps_calls_rewrites_their_operands_and_values(F):
    y = sg.symbols("y", 2)
    a, b = F([sg.log(1 + y[0] * y[0]), y[1] * 1.0])
    G = sg.Function("g", [y], [a[0] + a[0], b * 1])
    O = G.optimize()
    assert O.tape.n_calls == 1 and O.tape.callees == (F,)
    call = O.outputs[1][()].args[0]
    assert is_call(call) and call.args[0].op.name == "log1p"
    for p in ([0.3, 0.1], [-1.0, 2.0]):
        close(O(np.array(p)), G(np.array(p)))
    O2 = G.optimize(2)
    close(O2(np.array([0.3, 0.1])), G(np.array([0.3, 0.1])))


def test_printing_names_a_shared_call_once_and_stays_linear(F):
    y = sg.symbols("y", 2)
    a, b = F(y)
    assert str(b) == "f(y[0], y[1])[2]"
    assert str(a[0] * b).splitlines() == ["@1 = f(y[0], y[1])", "@1[0] * @1[2]"]
    x = sg.symbols("x")
    P = sg.Function("p", [x], [sg.sin(x), x * 2])
    e = sg.symbols("z")
    for _ in range(200):  # each level reads two results of one call: inline text would double per level
        s, t = P(e)
        e = s + t
    text = str(e)
    assert len(text) < 200 * 60 and text.count("p(") == 200


# --------------------------------------------------------------- pickling
def test_pickle_round_trip_with_nested_callees(F):
    y = sg.symbols("y", 2)
    G = sg.Function("g", [y], [F(y)[1] * 2])
    H = sg.Function("h", [y], [G(y) + F(y[::-1])[0][0], G([y[1], 0.5])])
    H2 = pickle.loads(pickle.dumps(H))
    assert H2.listing() == H.listing()
    g2, f2 = H2.tape.callees
    assert g2.name == "g" and f2.name == "f" and g2.tape.callees == (f2,)  # each callee once, shared
    for p in ([0.3, 0.1], [-1.0, 2.0]):
        for u, w in zip(H2(np.array(p)), H(np.array(p))):
            np.testing.assert_array_equal(u, w)
    data = function_to_data(H)
    assert data[1] == 3 and [r[0] for r in data[7]] == ["f", "g"]


def test_version_1_data_still_loads():
    x = sg.symbols("x", 2)
    F = sg.Function("f", [x], [sg.sin(x) * 2])
    data = function_to_data(F)
    v1 = ("symgraph.Function", 1) + data[2:5] + (("symgraph.Tape", 1) + data[5][2:9],) + data[6:7]
    G = function_from_data(v1)
    np.testing.assert_array_equal(G(np.array([0.1, 0.2])), F(np.array([0.1, 0.2])))


def test_corrupt_call_data_is_refused(F):
    y = sg.symbols("y", 2)
    G = sg.Function("g", [y], [F(y)[1] * 2])
    good = function_to_data(G)

    def with_tape(**changes):
        tape = list(good[5])
        fields = {"immediates": 9, "call_callee": 10, "call_offsets": 11, "call_operands": 12}
        for k, v in changes.items():
            tape[fields[k]] = v
        return good[:5] + (tuple(tape),) + good[6:]

    imm = good[5][9]
    bad_index = imm.copy()
    bad_index[imm >= 2] = 7  # the result's output index beyond the callee's 3 outputs
    cases = [
        with_tape(call_callee=np.array([3])),                        # no such callee
        with_tape(call_offsets=np.array([0, 1])),                    # operand count is not the callee's
        with_tape(immediates=bad_index),
        good[:7] + ((),),                                            # callee table missing
        good[:5] + (good[5][:9] + good[5][9:],) + good[6:7] + ((("f",) + good[7][0][1:4] + (None,),),),
    ]
    for data in cases:
        with pytest.raises(sg.SerializationError):
            function_from_data(data)
    assert function_from_data(good)(np.array([0.1, 0.2])) == G(np.array([0.1, 0.2]))
    with pytest.raises(sg.SerializationError):
        tape_from_data(tape_to_data(G.tape), ())  # the callee table is needed


# ---------------------------------------------------------------- C code
def test_compile_emits_calls_and_equals_the_vm(F):
    y = sg.symbols("y", 2)
    a, b = F(y)
    G = sg.Function("g", [y], [a * b, F([b, 1.0])[1]])
    try:
        C = G.compile()
    except sg.CompilerNotFoundError:
        pytest.skip("no C compiler")
    for p in ([0.3, 0.1], [-1.0, 2.0]):
        for u, w in zip(C(np.array(p)), G(np.array(p))):
            np.testing.assert_allclose(u, w, rtol=1e-13)
    assert G.c_code().count("void sgf_g__c0(") == 1  # the callee once, as a static function (test_codegen_calls.py)
