"""AD through call nodes (issue 10, layer 1).

Derivatives of graphs with calls must equal those of the same model written
inline (jvp, vjp, grad, jacobian and hessian: values *and* patterns), agree
with complex step through the graph with calls, and keep the structure: the
derivative of a call is a call of a derivative Function, built once per
callee and cached on it (symgraph/calldiff.py).
"""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import symgraph as sg
from symgraph import calldiff
from symgraph.call import callee, is_call
from symgraph.expr import topological
from strategies import points, random_graphs

H = 1e-30


def test_collect_frees_a_dead_callee_and_its_derivative_functions_in_one_call():
    # A dead call releases its callee, whose cached derivative Functions hold nodes newer than the call.
    x = sg.symbols("x", 2)
    F = sg.Function("dead_callee", [x], [x[0] * sg.sin(x[1])])
    y = sg.symbols("y", 2)
    g = sg.grad(F(y) * F(y), y)
    assert calldiff.builds(F) >= 1
    del F, g
    sg.collect()
    assert sg.collect() == 0


# ------------------------------------------------------------------ callees
class Callee:
    """A callee built from a Python body, which also builds the same model inline.

    ``body(calls, *args)`` returns the outputs (a tuple for several); with
    ``calls`` True the body may itself call other callees (nested calls),
    with False it is fully inline.
    """

    def __init__(self, name, shapes, body):
        self.body = body
        args = [sg.symbols(f"{name}{k}", s) if s else sg.symbols(f"{name}{k}") for k, s in enumerate(shapes)]
        outs = body(True, *args)
        self.F = sg.Function(name, args, list(outs) if isinstance(outs, tuple) else [outs])

    def __call__(self, calls, *args):
        return self.F(*args) if calls else self.body(False, *args)


def _body_a(calls, x):  # (3,) -> (2,), ()
    return (np.array([sg.sin(x[0]) * x[1], sg.exp(0.3 * x[2]) + x[0] ** 2]), x[0] * x[1] * x[2])


def _body_s(calls, x):  # (2,) -> ()
    return sg.log1p(x[0] ** 2) * sg.cos(x[1]) + x[0] * x[1]


A = Callee("a", [(3,)], _body_a)
S = Callee("s", [(2,)], _body_s)


def _body_n(calls, x):  # (3,) -> (2,): calls A and S
    a, b = A(calls, x)
    return np.array([a[0] * S(calls, x[:2]), a[1] + b * S(calls, x[1:])])


N = Callee("n", [(3,)], _body_n)


def _body_sparse(calls, x, u):  # (3,), () -> sparse (3, 3), (): a sparse output
    values = [x[0] * x[1], sg.sin(x[2]) * u, x[0] ** 3, u * u]
    return sg.SparseExpr([0, 2, 1, 2], [0, 0, 1, 2], values, (3, 3)), x.sum() * u


SP = Callee("sp", [(3,), ()], _body_sparse)


# ------------------------------------------------------------------- models
# Each model maps (calls, y, p) to a flat list of outputs; y (4,) is differentiated, p (1,) is a parameter.
def _twice(calls, y, p):  # one callee on different operands, a parameter operand
    return [S(calls, y[0:2]) + S(calls, y[1:3]) * y[3], S(calls, [y[3], p[0]])]


def _arrays(calls, y, p):  # array and several outputs
    a, b = A(calls, y[0:3])
    return [*a, b, a[0] * b + y[3]]


def _chained(calls, y, p):  # an operand that is an expression of another call's result
    a, b = A(calls, y[0:3])
    c, d = A(calls, [a[1] * p[0], b, y[3]])
    return [*c, d + a[0]]


def _nested(calls, y, p):
    return [*N(calls, y[1:4]), N(calls, y[0:3])[0] * y[3]]


def _constants(calls, y, p):  # constant operands
    a, b = A(calls, [y[0], 2.0, y[1]])
    return [a[0], b * S(calls, [0.5, y[2]]), a[1] + y[3]]


def _repeated(calls, y, p):  # one node as several operands
    a, b = A(calls, [y[0], y[0], y[1]])
    return [a[1], b + S(calls, [y[2], y[2]]) * y[3]]


def _sparse(calls, y, p):  # sparse callee output, used by its nonzeros
    m, t = SP(calls, y[0:3], y[3])
    return [*m.values, t * m.values[0]]


def _unused(calls, y, p):  # some results of a call never used
    a, b = A(calls, y[1:4])
    return [a[1] * y[0]]


MODELS = {f.__name__[1:]: f for f in (_twice, _arrays, _chained, _nested, _constants, _repeated, _sparse, _unused)}


def _build(name):
    y, p = sg.symbols("y", 4), sg.symbols("p", 1)
    model = MODELS[name]
    outs = np.array(model(True, y, p), dtype=object)
    inline = np.array(model(False, y, p), dtype=object)
    return y, p, outs, inline


def _point(seed, n=4):
    return np.random.default_rng(seed).uniform(0.3, 1.2, n)


def _values(inputs, outputs, *args):
    """Evaluate ``outputs`` (a list) in the numpy VM at ``args``."""
    return sg.Function("t", inputs, outputs)(*args)


def _calls(roots):
    """The call nodes of a graph."""
    return [n for n in topological(roots) if is_call(n)]


def _flat(value):
    if isinstance(value, sg.SparseExpr):
        return list(value.values)
    return np.asarray(value, dtype=object).reshape(-1).tolist()


# -------------------------------------------------------- against inline
@pytest.mark.parametrize("name", MODELS)
def test_inline_oracle_is_sg_inline(name):
    _, _, outs, inline = _build(name)
    assert all(a is b for a, b in zip(sg.inline(list(outs)), inline))


@pytest.mark.parametrize("name", MODELS)
def test_jvp_and_vjp_equal_inline(name):
    y, p, outs, inline = _build(name)
    rng = np.random.default_rng(1)
    t1, t3 = rng.normal(size=4), rng.normal(size=(3, 4))
    c1, c3 = rng.normal(size=len(outs)), rng.normal(size=(2, len(outs)))
    v = sg.symbols("v", 4)  # a symbolic direction: Hessian-vector style seeds
    pairs = [(sg.jvp(outs, y, t1), sg.jvp(inline, y, t1)), (sg.jvp(outs, y, t3), sg.jvp(inline, y, t3)),
             (sg.jvp(outs, y, v), sg.jvp(inline, y, v)),
             (sg.vjp(outs, y, c1), sg.vjp(inline, y, c1)), (sg.vjp(outs, y, c3), sg.vjp(inline, y, c3))]
    for got, want in pairs:
        assert got.shape == want.shape
    assert _calls(_flat(pairs[0][0]) + _flat(pairs[3][0]))  # the derivatives are calls again
    results = _values([y, p, v], [x for pair in pairs for x in pair], _point(2), [0.8], rng.normal(size=4))
    for got, want in zip(results[::2], results[1::2]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", MODELS)
def test_grad_jacobian_hessian_equal_inline(name):
    y, p, outs, inline = _build(name)
    w = np.random.default_rng(3).normal(size=len(outs))
    f, fi = (w * outs).sum(), (w * inline).sum()
    exprs = [sg.grad(f, y), sg.grad(fi, y)]
    for mode in ("forward", "reverse", "auto"):
        J, Ji = sg.jacobian(outs, y, mode=mode), sg.jacobian(inline, y, mode=mode)
        assert J.rows.tolist() == Ji.rows.tolist() and J.cols.tolist() == Ji.cols.tolist()
        assert J.n_colors == Ji.n_colors
        exprs += [J, Ji]
    for lower in (False, True):
        Hs, Hi = sg.hessian(f, y, lower=lower), sg.hessian(fi, y, lower=lower)
        assert Hs.rows.tolist() == Hi.rows.tolist() and Hs.cols.tolist() == Hi.cols.tolist()
        exprs += [Hs, Hi]
    results = _values([y, p], exprs, _point(4), [1.1])
    for got, want in zip(results[::2], results[1::2]):
        got, want = (r.toarray() if hasattr(r, "toarray") else r for r in (got, want))
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    assert _calls(list(exprs[0]))


@pytest.mark.parametrize("name", MODELS)
def test_sparsity_patterns_equal_inline(name):
    y, p, outs, inline = _build(name)
    for a, b in ((sg.jacobian_sparsity(outs, y), sg.jacobian_sparsity(inline, y)),
                 (sg.jacobian_sparsity(outs, np.concatenate([y, p])),
                  sg.jacobian_sparsity(inline, np.concatenate([y, p]))),
                 (sg.hessian_sparsity(outs.sum(), y), sg.hessian_sparsity(inline.sum(), y))):
        assert a.shape == b.shape
        assert a.rows.tolist() == b.rows.tolist() and a.cols.tolist() == b.cols.tolist()


@pytest.mark.parametrize("name", MODELS)
def test_jacobian_and_hessian_against_complex_step(name):
    y, p, outs, _ = _build(name)
    y0 = _point(5)
    F = sg.Function("f", [y, p], [outs])
    J = sg.Function("J", [y, p], [sg.jacobian(outs, y)])(y0, [0.9]).toarray()
    steps = y0 + 1j * H * np.eye(4)  # one complex-step point per input, in one batch
    cs = np.imag(F.batch(steps, np.full((4, 1), 0.9))) / H  # (4, m): column j of J per row
    np.testing.assert_allclose(J, cs.T, rtol=1e-12, atol=1e-14)
    f = outs.sum()
    g = sg.Function("g", [y, p], [sg.grad(f, y)])
    Hs = sg.Function("H", [y, p], [sg.hessian(f, y)])(y0, [0.9]).toarray()
    hcs = np.imag(g.batch(steps, np.full((4, 1), 0.9))) / H
    np.testing.assert_allclose(Hs, hcs, rtol=1e-11, atol=1e-13)


def test_constant_operand_that_kills_a_partial_is_conservative():
    # inline, pow(1, y) has the structurally zero partial log(1) * r in y; through a call the
    # pattern is the callee's (an operand read by a result counts), so an entry may be a stored 0
    u = sg.symbols("u", 2)
    P = sg.Function("pw", [u], [sg.pow(u[0], u[1]) + u[1]])
    y = sg.symbols("y", 2)
    outs = [P([1.0, y[0]]) * y[1]]
    inline = [(sg.pow(1.0, y[0]) + y[0]) * y[1]]
    pat, pat_inline = sg.jacobian_sparsity(outs, y), sg.jacobian_sparsity(inline, y)
    assert set(zip(pat_inline.rows.tolist(), pat_inline.cols.tolist())) <= set(zip(pat.rows.tolist(),
                                                                                   pat.cols.tolist()))
    J, Ji = sg.jacobian(outs, y), sg.jacobian(inline, y)
    got, want = _values([y], [J, Ji], [0.7, 1.3])
    np.testing.assert_allclose(got.toarray(), want.toarray(), rtol=1e-14)


# ---------------------------------------------------------------- structure
def _long_callee(n_ops: int) -> sg.Function:
    x = sg.symbols("x", 2)
    z = x[0]
    while sg.count_ops([z]) < n_ops:
        z = sg.sin(z) * x[1] + x[0]
    return sg.Function("long", [x], [z, z * x[0]])


def test_derivatives_of_many_calls_stay_calls_and_derivative_functions_are_built_once():
    F = _long_callee(1000)
    y = sg.symbols("y", 51)
    results = [F(y[i:i + 2]) for i in range(50)]
    f = sum(a * b for a, b in results)
    g = sg.grad(f, y)
    calls = _calls(list(g))
    assert len(calls) == 100  # 50 calls of F, 50 of F's vjp
    assert sg.count_ops(list(g)) < 2000  # no 50,000-op copy of the callee
    (vjp,) = {callee(c) for c in calls} - {F}
    assert vjp.name == "long_vjp" and calldiff.builds(F) == 1
    g2 = sg.grad(2.0 * f, y)  # a second gradient: cache hits only
    assert calldiff.builds(F) == 1 and {callee(c) for c in _calls(list(g2))} == {F, vjp}
    # second derivatives: calls of the vjp's own derivative Functions, cached on the vjp
    Hs = sg.hessian(f, y)
    h_callees = {callee(c) for c in _calls(list(Hs.values))}
    second = [D.function for key, D in calldiff.cached(vjp).items() if key[0] == "jvp"]
    assert second and set(second) <= h_callees and all(c.name == "long_vjp_jvp" for c in second)
    assert sg.count_ops(list(Hs.values)) < 20000
    # one derivative Function per callee and mode: F's vjp and jvp, the vjp's jvp
    assert calldiff.builds(F) == 2 and calldiff.builds(vjp) == 1
    sg.hessian(3.0 * f, y)
    assert calldiff.builds(F) == 2 and calldiff.builds(vjp) == 1
    # values: the gradient against complex step through the graph with calls
    y0 = np.linspace(0.1, 0.6, 51)
    G = sg.Function("g", [y], [g])(y0)
    fF = sg.Function("f", [y], [f])
    cs = np.imag(fF.batch(y0 + 1j * H * np.eye(51))) / H
    np.testing.assert_allclose(G, cs, rtol=1e-11, atol=1e-13)


def test_deeply_nested_functions():
    # each level calls the one below: derivative Functions and patterns are built level by level,
    # past calldiff._NESTED levels by a worklist (no Python recursion over the nesting, any depth)
    x = sg.symbols("x", 2)
    F = sg.Function("f0", [x], [sg.sin(x[0]) * x[1], x[1]])
    for k in range(1, 3 * calldiff._NESTED):
        x = sg.symbols("x", 2)
        a, b = F(x)
        F = sg.Function(f"f{k}", [x], [a * 1.001 + x[1], b * x[0]])
    y = sg.symbols("y", 2)
    outs, inline = np.array(F(y), dtype=object), np.array(sg.inline(list(F(y))), dtype=object)
    f, fi = outs[0] + outs[1], inline[0] + inline[1]
    exprs = [sg.grad(f, y), sg.grad(fi, y), sg.jacobian(outs, y), sg.jacobian(inline, y),
             sg.hessian(f, y), sg.hessian(fi, y)]
    assert sg.jacobian_sparsity(outs, y).rows.tolist() == sg.jacobian_sparsity(inline, y).rows.tolist()
    results = _values([y], exprs, [0.3, 0.9])
    for got, want in zip(results[::2], results[1::2]):
        got, want = (r.toarray() if hasattr(r, "toarray") else r for r in (got, want))
        np.testing.assert_allclose(got, want, rtol=1e-11)


def test_derivative_functions_are_cached_per_callee_and_live_operands():
    x = sg.symbols("x", 2)
    F = sg.Function("m", [x], [x[0] * x[1], sg.exp(x[1])])
    y = sg.symbols("y", 3)
    a, b = F(y[:2])
    sg.jvp([a, b], y, [1.0, 1.0, 0.0])
    sg.jvp([a, b], y, [[3.0, 2.0, 1.0], [1.0, -1.0, 0.0]])  # the same live operands: hits
    assert set(calldiff.cached(F)) == {("jvp", (0, 1), (0, 1))} and calldiff.builds(F) == 1
    sg.jvp([a, b], y, [1.0, 0.0, 0.0])  # only operand 0 live: result 1 gets no tangent
    D = calldiff.cached(F)[("jvp", (0,), (0,))]
    assert D.function.output_shapes == ((1,),)
    sg.jvp(b, y, [1.0, 1.0, 0.0])  # only result 1 read
    assert calldiff.cached(F)[("jvp", (1,), (1,))].function.output_shapes == ((1,),)
    assert sg.jvp(b, y, [1.0, 0.0, 0.0]).value == 0.0  # no call at all
    before = calldiff.builds(F)
    assert sg.grad(a + 0 * y[2], y[2]).value == 0.0
    assert calldiff.builds(F) == before


def test_cotangent_only_on_some_results_and_zero_tangents():
    y = sg.symbols("y", 4)
    a, b = A.F(y[:3])
    v = sg.vjp([a[0], a[1], b], y, [0.0, 1.0, 0.0])
    vi = sg.vjp(_body_a(False, y[:3])[0][1], y, 1.0)
    got, want = _values([y], [v, vi], _point(6))
    np.testing.assert_allclose(got, want, rtol=1e-14)
    assert all(callee(c).name in ("a", "a_vjp") for c in _calls(list(v)))
    D = calldiff.cached(A.F)[("vjp", (1,), (0, 2))]  # a[1] reads x[0] and x[2] only
    assert D.function.output_shapes == ((2,),)
    zero = sg.jvp([a[0], b], y, [0.0, 0.0, 0.0, 1.0])  # y[3] is no operand: no call
    assert [e.value for e in zero] == [0.0, 0.0]


def test_nonzero_partials_of_call_and_result_nodes():
    from symgraph.sparsity import nonzero_partials

    x = sg.symbols("x", 3)
    F = sg.Function("nz", [x], [x[0] * x[1], sg.floor(x[2])])
    y = sg.symbols("y", 2)
    a, b = F([y[0], 2.0, y[1]])
    assert nonzero_partials(a.args[0]) == (True, False, False)  # a constant; read through floor only
    assert nonzero_partials(a) == (True,) and nonzero_partials(b) == (False,)
    assert calldiff.jacobian_pattern(F).matrix.toarray().tolist() == [[1, 1, 0], [0, 0, 0]]


def test_nlp_of_a_model_with_calls_equals_inline():
    u = sg.symbols("u", 3)

    def term(a, b, c):  # Luksan's chained terms: a constraint and an objective term
        return (3 * b**3 + 2 * c - 5 + sg.sin(b - c) * sg.sin(b + c) + 4 * b - a * sg.exp(a - b) - 3,
                100 * (a**2 - b) ** 2 + (a - 1) ** 2)

    T = sg.Function("term", [u], list(term(*u)))
    n = 12
    x = sg.symbols("x", n)
    nlps = []
    for parts in ([T(x[i:i + 3]) for i in range(n - 2)], [term(*x[i:i + 3]) for i in range(n - 2)]):
        nlps.append(sg.NLP(x, sum(p[1] for p in parts), np.array([p[0] for p in parts]), jit=False))
    x0, lam = np.linspace(0.2, 0.9, n), np.linspace(-1.0, 1.0, n - 2)
    calls, inline = nlps
    np.testing.assert_allclose(calls.gradient(x0), inline.gradient(x0), rtol=1e-14)
    np.testing.assert_allclose(calls.jacobian(x0).toarray(), inline.jacobian(x0).toarray(), rtol=1e-14)
    np.testing.assert_allclose(calls.hessian(x0, lam, 0.7).toarray(), inline.hessian(x0, lam, 0.7).toarray(),
                               rtol=1e-13, atol=1e-13)


def test_derivative_graphs_pickle_and_compile():
    y, p, outs, _ = _build("nested")
    f = outs.sum()
    F = sg.Function("d", [y, p], [sg.grad(f, y), sg.hessian(f, y)])
    y0 = _point(8)
    g, Hs = F(y0, [0.5])
    gp, Hp = pickle.loads(pickle.dumps(F))(y0, [0.5])  # the derivative callees travel with F
    np.testing.assert_array_equal(gp, g)
    np.testing.assert_array_equal(Hp.toarray(), Hs.toarray())
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler")
    gc, Hc = F.compile()(y0, [0.5])
    np.testing.assert_allclose(gc, g, rtol=1e-13)
    np.testing.assert_allclose(Hc.toarray(), Hs.toarray(), rtol=1e-13)


# ---------------------------------------------------------------- properties
def _close_finite(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    finite = np.isfinite(a) & np.isfinite(b)
    np.testing.assert_allclose(a[finite], b[finite], rtol=1e-9, atol=1e-9)


@settings(max_examples=60)
@given(graph=random_graphs(max_inputs=3, max_steps=8), data=st.data())
def test_random_callee_bodies(graph, data):
    R = graph.function("r")
    n = len(graph.inputs)
    y = sg.symbols("y", n + 1)
    first = [y[i] for i in range(n)]
    r1 = R(*first)
    second = [r1[0] * 0.5 + y[n]] + [y[(i + 1) % (n + 1)] for i in range(1, n)]  # an operand from r1
    r2 = R(*second)
    outs = np.concatenate([r1, r2])
    i1 = sg.substitute(graph.outputs, graph.inputs, first)
    i2 = sg.substitute(graph.outputs, graph.inputs, [i1[0] * 0.5 + y[n]] + second[1:])
    inline = np.array(list(i1) + list(i2), dtype=object)
    assert all(a is b for a, b in zip(sg.inline(list(outs)), inline))
    pat, pat_inline = sg.jacobian_sparsity(outs, y), sg.jacobian_sparsity(inline, y)
    entries = set(zip(pat.rows.tolist(), pat.cols.tolist()))
    assert set(zip(pat_inline.rows.tolist(), pat_inline.cols.tolist())) <= entries  # never misses one
    f = outs.sum()
    exprs = [sg.jacobian(outs, y, mode="forward"), sg.jacobian(outs, y, mode="reverse"),
             sg.jacobian(inline, y), sg.grad(f, y), sg.grad(inline.sum(), y)]
    x0 = data.draw(points(n + 1, wide=False))
    jf, jr, ji, g, gi = _values([y], exprs, x0)
    _close_finite(jf.toarray(), ji.toarray())
    _close_finite(jr.toarray(), ji.toarray())
    _close_finite(g, gi)
