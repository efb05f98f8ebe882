"""F.map (symgraph/map.py): n instances of F as n calls; values, derivatives, structure and bad input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import symgraph as sg
from symgraph.call import callee, is_result
from tests.strategies import complex_step_jacobian

HAVE_CC = shutil.which("cc") is not None or shutil.which("gcc") is not None


def _term():
    """A small two-input term with a shared parameter: F(a[2], b, p) -> (vector[2], scalar)."""
    a, b, p = sg.symbols("a", 2), sg.symbols("b"), sg.symbols("p")
    return sg.Function("term", [a, b, p], [sg.sin(a) * b + p, sg.exp(a[0] * b) - p * a[1] ** 2])


def _unrolled(n):
    """The model F.map(n, shared=["p"], reduce=(None, "sum")) written by hand, without calls."""
    A, B, p = sg.symbols("a", (n, 2)), sg.symbols("b", n), sg.symbols("p")
    first = np.array([sg.sin(A[i]) * B[i] + p for i in range(n)])
    terms = [sg.exp(A[i, 0] * B[i]) - p * A[i, 1] ** 2 for i in range(n)]
    while len(terms) > 1:  # the same pairwise order as the map
        terms = [terms[j] + terms[j + 1] for j in range(0, len(terms) - 1, 2)] + (terms[-1:] if len(terms) % 2 else [])
    return sg.Function("u", [A, B, p], [first, terms[0]])


def _point(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n, 2)), rng.uniform(-1, 1, n), 0.7


def test_map_values_equal_the_unrolled_model_vm_and_c():
    n = 5
    M = _term().map(n, shared=["p"], reduce=(None, "sum"))
    assert M.name == "term_map5" and M.input_names == ("a", "b", "p")
    assert M.input_shapes == ((n, 2), (n,), ()) and M.output_shapes == ((n, 2), ())
    U = _unrolled(n)
    args = _point(n)
    got, want = M(*args), U(*args)
    np.testing.assert_array_equal(got[0], want[0])
    assert got[1] == want[1]
    F = _term()
    for i in range(n):  # and instance by instance against F itself
        np.testing.assert_array_equal(got[0][i], F(args[0][i], args[1][i], args[2])[0])
    if HAVE_CC:
        c = M.compile()(*args)
        np.testing.assert_allclose(c[0], want[0], rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(c[1], want[1], rtol=1e-14)


def test_shared_by_index_equals_by_name_and_batch():
    F = _term()
    M1, M2 = F.map(3, shared=[2]), F.map(3, shared="p")
    args = _point(3, seed=1)
    for x, y in zip(M1(*args), M2(*args)):
        np.testing.assert_array_equal(x, y)
    pts = [_point(3, seed=s) for s in range(4)]
    batched = M1.batch(np.stack([q[0] for q in pts]), np.stack([q[1] for q in pts]), np.array([q[2] for q in pts]))
    for s, q in enumerate(pts):
        np.testing.assert_array_equal(batched[0][s], M1(*q)[0])
        np.testing.assert_array_equal(batched[1][s], M1(*q)[1])


def test_nested_map_and_scalar_input():
    x = sg.symbols("x")
    F = sg.Function("f", [x], [x * x + 1])
    M = F.map(3).map(4)
    assert M.name == "f_map3_map4" and M.input_shapes == ((4, 3),) and M.output_shapes == ((4, 3),)
    X = np.arange(12.0).reshape(4, 3)
    np.testing.assert_array_equal(M(X), X * X + 1)
    S = F.map(3, reduce="sum").map(4, reduce="sum")
    assert float(S(X)) == float(np.sum(X * X + 1))
    np.testing.assert_array_equal(M.inline()(X), X * X + 1)


def test_calling_a_map_on_symbols_is_one_call_node():
    F = _term()
    M = F.map(4, shared=["p"], reduce=(None, "sum"))
    A, B, q = sg.symbols("A", (4, 2)), sg.symbols("B", 4), sg.symbols("q")
    first, total = M(A, B, q)
    calls = {r.args[0] for r in list(first.reshape(-1)) + [total]}
    assert len(calls) == 1 and is_result(total) and callee(total) is M
    G = sg.Function("g", [A, B, q], [total * 2])
    assert G.tape.n_calls == 1
    args = _point(4, seed=2)
    assert float(G(*args)) == 2 * float(M(*args)[1])
    # numbers too: a map is a Function
    assert float(M(*args)[1]) == float(_unrolled(4)(*args)[1])


def test_derivatives_through_a_map_equal_the_unrolled_ones():
    n = 4
    M = _term().map(n, shared=["p"], reduce=(None, "sum"))
    A, B, p = sg.symbols("A", (n, 2)), sg.symbols("B", n), sg.symbols("p")
    first, total = M(A, B, p)
    flat = np.concatenate([A.reshape(-1), B, [p]])
    G = sg.Function("d", [A, B, p], [sg.grad(total, flat), sg.jacobian(first, flat), sg.hessian(total, flat)])
    Gi = G.inline()
    args = _point(n, seed=3)
    g, J, H = G(*args)
    gi, Ji, Hi = Gi(*args)
    np.testing.assert_allclose(g, gi, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(J.toarray(), Ji.toarray(), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(H.toarray(), Hi.toarray(), rtol=1e-14, atol=1e-15)
    # patterns are those of the unrolled model (instances independent, p shared)
    Ju = sg.jacobian(sg.inline(first), flat)
    Jd = sg.jacobian(first, flat)
    assert sorted(zip(Jd.rows.tolist(), Jd.cols.tolist())) == sorted(zip(Ju.rows.tolist(), Ju.cols.tolist()))
    Hd, Hu = sg.hessian(total, flat), sg.hessian(sg.inline(total), flat)
    assert sorted(zip(Hd.rows.tolist(), Hd.cols.tolist())) == sorted(zip(Hu.rows.tolist(), Hu.cols.tolist()))
    # derivatives stay structured: G calls derivative Functions, no scalar copy of F's body
    assert G.tape.n_calls >= 1 and G.n_ops < Gi.n_ops


def test_luksan_objective_gradient_against_complex_step():
    N = 50
    u, v = sg.symbols("u"), sg.symbols("v")
    term = sg.Function("term", [u, v], [100 * (u * u - v) ** 2 + (u - 1) ** 2 + sg.sin(u - v) ** 2])
    x = sg.symbols("x", N)
    f = term.map(N - 1, reduce="sum")(x[:-1], x[1:])
    assert is_result(f) and callee(f).name == "term_map49"
    obj = sg.Function("obj", [x], [f])
    gradf = sg.Function("g", [x], [sg.grad(f, x)])
    x0 = np.random.default_rng(4).uniform(-1, 1, N)
    want = float(sum(100 * (x0[i] ** 2 - x0[i + 1]) ** 2 + (x0[i] - 1) ** 2 + np.sin(x0[i] - x0[i + 1]) ** 2
                     for i in range(N - 1)))
    np.testing.assert_allclose(float(obj(x0)), want, rtol=1e-13)
    np.testing.assert_allclose(gradf(x0), complex_step_jacobian(obj, x0)[0], rtol=1e-12, atol=1e-12)


def test_structure_is_one_map_call_not_n_copies_of_the_body():
    x = sg.symbols("x", 2)
    e = x[0]
    for k in range(100):  # a body of about 200 operations
        e = sg.sin(e) * x[1] + k
    F = sg.Function("body", [x], [e])
    assert F.n_ops >= 200
    M = F.map(100, reduce="sum")
    assert M.tape.n_calls == 1 and M.structure.kind == "map" and M.structure.body is F
    assert M.n_ops == 2  # one call and its one result, not 20,000 operations
    assert M.inline().n_ops >= 100 * 200 // 2  # the unrolled graph, on request


@pytest.mark.parametrize("n", [0, -3, 2.0, True, "3", None])
def test_bad_n(n):
    with pytest.raises(sg.InvalidInputError, match=r"term\.map: n must be a positive int"):
        _term().map(n)


@pytest.mark.parametrize("shared, message", [
    (["q"], r"shared names no input 'q' \(inputs: 'a', 'b', 'p'\)"),
    ([3], r"shared index 3 is out of range; term has 3 input"),
    ([2, "p"], r"input 2 \('p'\) is named twice"),
    ([1.5], r"shared entries are input indices or names, got 1.5"),
    ([True], r"shared entries are input indices or names, got True"),
])
def test_bad_shared(shared, message):
    with pytest.raises(sg.InvalidInputError, match=message):
        _term().map(2, shared=shared)


@pytest.mark.parametrize("reduce, message", [
    ("mean", r"reduce for output 0 \('o0'\) must be None or 'sum', got 'mean'"),
    (("sum",), r"reduce has 1 entries; expected one per output \(2\)"),
    ((None, "max"), r"reduce for output 1 \('o1'\) must be None or 'sum', got 'max'"),
    (3, r"reduce must be None, 'sum' or one of those per output, got 3"),
])
def test_bad_reduce(reduce, message):
    with pytest.raises(sg.InvalidInputError, match=message):
        _term().map(2, reduce=reduce)


def test_arguments_whose_leading_axis_is_not_n():
    M = _term().map(3, shared=["p"])
    A, B = sg.symbols("A", (4, 2)), sg.symbols("B", 3)
    with pytest.raises(sg.ShapeError, match=r"term_map3: argument 0 \('a'\): expected shape \(3, 2\), got \(4, 2\)"):
        M(A, B, 1.0)
    with pytest.raises(sg.ShapeError, match=r"argument 0 \('a'\)"):
        M(np.zeros((4, 2)), np.zeros(3), 1.0)


def test_sparse_output_is_refused_with_a_clear_error():
    x = sg.symbols("x", 2)
    F = sg.Function("s", [x], [sg.jacobian(x * x, x)])
    with pytest.raises(sg.InvalidInputError, match=r"s\.map: output 0 \('o0'\) is sparse"):
        F.map(2)


def test_c_code_holds_the_body_once_and_n_call_sites():
    x = sg.symbols("x", 2)
    e = x[0]
    for k in range(100):
        e = sg.sin(e) * x[1] + k
    F = sg.Function("body", [x], [e])
    small, large = F.map(10, reduce="sum").c_code(), F.map(100, reduce="sum").c_code()
    assert large.count("static void sgf_body_map100__c0(") == 1  # F emitted once, as a static function
    assert large.count("sin(") == small.count("sin(") == 100  # its body is not copied per instance
    assert (len(large) - len(small)) / 90 < 500  # a few short lines per call site
