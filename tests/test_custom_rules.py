"""User-given derivative rules (issue 11): custom_jvp, custom_vjp, stop_gradient.

Oracles: closed forms (sigmoid for softplus, the norm's gradient and
Hessian), central finite differences of the VM, and the compiled C of the
same Functions (VM vs C).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symgraph as sg
from symgraph.custom import custom_jvp, custom_rules, custom_vjp, stop_gradient
from symgraph.errors import ArgumentCountError, InvalidInputError, ShapeError, SymgraphError

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "symgraph-cache"))


def dense(value) -> np.ndarray:
    return np.asarray(value.toarray() if hasattr(value, "toarray") else value, dtype=np.float64)


def sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)) if x >= 0 else np.exp(x) / (1.0 + np.exp(x)))  # no overflow


def fd_jacobian(F, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of a one-input, one-output Function (flat)."""
    x = np.asarray(x, dtype=np.float64)
    cols = []
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = h
        up = dense(F((x.reshape(-1) + e).reshape(x.shape))).reshape(-1)
        down = dense(F((x.reshape(-1) - e).reshape(x.shape))).reshape(-1)
        cols.append((up - down) / (2 * h))
    return np.stack(cols, axis=1)


# ------------------------------------------------------------------ softplus: a stable jvp rule
x_ = sg.symbols("x")
SOFTPLUS = sg.Function("softplus", [x_], [sg.log(1 + sg.exp(x_))])
STABLE = custom_jvp(SOFTPLUS, lambda x, t: t / (1 + sg.exp(-x)))
z = sg.symbols("z")
STABLE_D = sg.Function("d", [z], [sg.grad(STABLE(z), z), sg.jvp(STABLE(z), z, 1.0), sg.hessian(STABLE(z), z)])
NAIVE_D = sg.Function("n", [z], [sg.grad(SOFTPLUS(z), z)])


def test_softplus_rule_is_stable_where_the_naive_derivative_is_nan():
    g, j, h = STABLE_D(1000.0)
    assert float(g) == 1.0 and float(j) == 1.0
    assert float(dense(h)[0, 0]) == 0.0
    assert np.isnan(float(NAIVE_D(1000.0)))
    g, j, _ = STABLE_D(-1000.0)
    assert float(g) == 0.0 and float(j) == 0.0


def test_softplus_value_is_the_wrapped_function():
    for v in (-3.0, 0.0, 0.7, 20.0):
        assert float(STABLE(v)) == float(SOFTPLUS(v))
    assert custom_rules(STABLE).keys() == {"jvp"}
    assert custom_rules(SOFTPLUS) == {}


@settings(deadline=None, max_examples=30)
@given(st.floats(-40, 40))
def test_softplus_derivatives_match_closed_forms(v):
    g, j, h = STABLE_D(v)
    s = sigmoid(v)
    assert float(g) == pytest.approx(s, rel=1e-12, abs=1e-300)
    assert float(j) == pytest.approx(s, rel=1e-12, abs=1e-300)
    assert float(dense(h)[0, 0]) == pytest.approx(s * (1 - s), rel=1e-9, abs=1e-15)


@needs_gcc
def test_softplus_vm_and_c_agree():
    C = STABLE_D.compile()
    for v in (-1000.0, -2.0, 0.0, 0.5, 30.0, 1000.0):
        for a, b in zip(STABLE_D(v), C(v)):
            assert np.allclose(dense(a), dense(b), rtol=1e-14, atol=0, equal_nan=True)  # the rule's own Hessian is NaN at -1000


def test_rule_given_as_function_and_inside_another_function():
    a, t = sg.symbols("a"), sg.symbols("t")
    rule = sg.Function("sp_jvp", [a, t], [t * sg.exp(-sg.log1p(sg.exp(-a)))])  # t * sigmoid(a), written otherwise
    F = custom_jvp(SOFTPLUS, rule, name="softplus2")
    assert F.name == "softplus2"
    w = sg.symbols("w", 2)
    outer = sg.Function("outer", [w], [F(w[0]) * F(w[1])])  # a call of F inside a call of outer
    v = sg.symbols("v", 2)
    G = sg.Function("g", [v], [sg.grad(outer(v), v)])
    p = np.array([30.0, 0.25])
    sp = np.log1p(np.exp(p))
    assert np.allclose(dense(G(p)), [sigmoid(30.0) * sp[1], sp[0] * sigmoid(0.25)], rtol=1e-13)
    assert float(sg.Function("h", [z], [sg.grad(F(z), z)])(1000.0)) == 1.0


# ------------------------------------------------------------------ norm: a safe vjp rule at 0
xv = sg.symbols("x", 3)
NORM = sg.Function("norm", [xv], [sg.sqrt(xv @ xv)])
SAFE = custom_vjp(NORM, lambda x, y, ybar: ybar * x / sg.if_else(y > 0, y, 1.0))
q = sg.symbols("q", 3)
SAFE_D = sg.Function("d", [q], [sg.grad(SAFE(q), q), sg.jacobian(SAFE(q), q, mode="forward"),
                                sg.jvp(SAFE(q), q, [1.0, 2.0, -1.0]), sg.hessian(SAFE(q), q)])


def test_norm_gradient_is_safe_at_zero():
    g, J, j, H = SAFE_D(np.zeros(3))
    assert dense(g).tolist() == [0.0, 0.0, 0.0]
    assert dense(J).tolist() == [[0.0, 0.0, 0.0]]
    assert float(j) == 0.0
    naive = sg.Function("n", [q], [sg.grad(NORM(q), q)])
    assert np.all(np.isnan(dense(naive(np.zeros(3)))))


@settings(deadline=None, max_examples=25)
@given(st.lists(st.floats(-5, 5), min_size=3, max_size=3).filter(lambda v: np.linalg.norm(v) > 1e-2))
def test_norm_derivatives_match_closed_forms(v):
    x = np.array(v)
    r = np.linalg.norm(x)
    g, J, j, H = SAFE_D(x)
    assert np.allclose(dense(g), x / r, rtol=1e-12, atol=1e-14)
    assert np.allclose(dense(J), (x / r)[None, :], rtol=1e-12, atol=1e-14)  # forward mode: the rule transposed
    assert float(j) == pytest.approx(float(x @ [1.0, 2.0, -1.0]) / r, rel=1e-12, abs=1e-13)
    assert np.allclose(dense(H), np.eye(3) / r - np.outer(x, x) / r ** 3, rtol=1e-10, atol=1e-12)


def test_norm_hessian_matches_finite_differences():
    grad = sg.Function("g", [q], [sg.grad(SAFE(q), q)])
    hess = sg.Function("h", [q], [sg.hessian(SAFE(q), q)])
    x = np.array([0.3, -1.2, 2.0])
    assert np.allclose(dense(hess(x)), fd_jacobian(grad, x), rtol=1e-6, atol=1e-8)


@needs_gcc
def test_norm_vm_and_c_agree():
    C = SAFE_D.compile()
    for x in (np.zeros(3), np.array([3.0, 4.0, 12.0]), np.array([-0.1, 1e-3, 2.0])):
        for a, b in zip(SAFE_D(x), C(x)):
            assert np.allclose(dense(a), dense(b), rtol=1e-13, atol=1e-300)


# ------------------------------------------------------------------ both rules, several inputs and outputs
def _polar():
    r, th = sg.symbols("r"), sg.symbols("th")
    F = sg.Function("polar", [r, th], [np.array([r * sg.cos(th), r * sg.sin(th)]), r * r])

    def jvp(r, th, tr, tth):
        return (np.array([tr * sg.cos(th) - r * sg.sin(th) * tth, tr * sg.sin(th) + r * sg.cos(th) * tth]),
                2 * r * tr)

    def vjp(r, th, xy, rr, bxy, brr):
        return (bxy[0] * sg.cos(th) + bxy[1] * sg.sin(th) + 2 * r * brr,
                -bxy[0] * r * sg.sin(th) + bxy[1] * r * sg.cos(th))

    return F, jvp, vjp


@pytest.mark.parametrize("which", ["jvp", "vjp", "both"])
@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_several_inputs_and_outputs_each_rule_and_mode(which, mode):
    F, jvp, vjp = _polar()
    G = F
    if which in ("jvp", "both"):
        G = custom_jvp(G, jvp)
    if which in ("vjp", "both"):
        G = custom_vjp(G, vjp)
    assert set(custom_rules(G)) == ({"jvp", "vjp"} if which == "both" else {which})
    p = sg.symbols("p", 2)
    xy, rr = G(p[0], p[1])
    out = np.concatenate([xy, [rr]])
    D = sg.Function("D", [p], [sg.jacobian(out, p, mode=mode)])
    P = sg.Function("P", [p], [out])
    x = np.array([1.3, 0.4])
    assert np.allclose(dense(D(x)), fd_jacobian(P, x), rtol=1e-7, atol=1e-8)
    # second order: the Hessian of a scalar combination, against differences of its gradient
    f = xy[0] * xy[1] + rr
    H = sg.Function("H", [p], [sg.hessian(f, p)])
    g = sg.Function("g", [p], [sg.grad(f, p)])
    assert np.allclose(dense(H(x)), fd_jacobian(g, x), rtol=1e-6, atol=1e-7)


def test_the_rule_is_what_is_differentiated():
    y = sg.symbols("y")
    F = custom_jvp(sg.Function("cube", [y], [y ** 3]), lambda y, t: 7 * y * t)  # deliberately not 3 y^2
    s = sg.symbols("s")
    D = sg.Function("D", [s], [sg.grad(F(s), s), sg.jvp(F(s), s, 2.0), sg.hessian(F(s), s)])
    g, j, h = D(2.0)
    assert float(g) == 14.0 and float(j) == 28.0 and float(dense(h)[0, 0]) == 7.0
    assert float(F(2.0)) == 8.0


def test_vjp_rule_reads_outputs_through_the_rule():
    # the vjp rule uses y = F(x); its own derivative (second order) uses the rule again
    y = sg.symbols("y")
    F = custom_vjp(sg.Function("ex", [y], [sg.exp(y)]), lambda x, out, bar: bar * out)
    s = sg.symbols("s")
    D = sg.Function("D", [s], [sg.grad(F(s), s), sg.hessian(F(s), s)])
    g, h = D(0.5)
    assert float(g) == pytest.approx(np.exp(0.5), rel=1e-15)
    assert float(dense(h)[0, 0]) == pytest.approx(np.exp(0.5), rel=1e-15)


# ------------------------------------------------------------------ stop_gradient
def test_stop_gradient_scalar_in_every_mode():
    s = sg.symbols("s")
    f = s * s * stop_gradient(s)  # value s^3, derivative 2 s * s (the stopped factor is a constant)
    D = sg.Function("D", [s], [f, sg.grad(f, s), sg.jvp(f, s, 1.0), sg.vjp(f, s, 1.0), sg.hessian(f, s),
                               sg.jacobian(stop_gradient(s), s)])
    v, g, j, b, h, J = D(3.0)
    assert float(v) == 27.0 and float(g) == 18.0 and float(j) == 18.0 and float(b) == 18.0
    assert float(dense(h)[0, 0]) == 6.0
    assert dense(J).tolist() == [[0.0]]
    assert sg.jacobian(stop_gradient(s), s).nnz == 0


def test_stop_gradient_arrays_and_sparsity():
    x = sg.symbols("x", (2, 2))
    sx = stop_gradient(x)
    assert sx.shape == (2, 2)
    out = (x * sx).reshape(-1)
    J = sg.jacobian(out, x)
    assert J.nnz == 4  # the diagonal only: d(x_i * sg(x_i))/dx_i, nothing through the stopped factor
    assert sg.jacobian(sx.reshape(-1), x).nnz == 0
    assert sg.jacobian(sx.sum() * x[0, 0], x).nnz == 1
    H = sg.hessian((sx * x * x).sum(), x)
    F = sg.Function("F", [x], [sx, J, H])
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    val, j, h = F(a)
    assert dense(val).tolist() == a.tolist()
    assert np.allclose(dense(j), np.diag(a.reshape(-1)))
    assert np.allclose(dense(h), np.diag(2 * a.reshape(-1)))


def test_stop_gradient_passes_numbers_and_keeps_sparse():
    assert stop_gradient(2.5) == 2.5
    x = sg.symbols("x", 2)
    S = sg.SparseExpr([0, 1], [1, 0], x * 2, (2, 2))
    T = stop_gradient(S)
    assert T.shape == (2, 2) and T.rows.tolist() == [0, 1]
    assert sg.jacobian(T.values, x).nnz == 0


@needs_gcc
def test_stop_gradient_vm_and_c_agree():
    x = sg.symbols("x", 3)
    f = (x * stop_gradient(sg.sin(x))).sum()
    F = sg.Function("F", [x], [f, sg.grad(f, x), sg.hessian(f, x)])
    a = np.array([0.1, -2.0, 3.0])
    for u, w in zip(F(a), F.compile()(a)):
        assert np.allclose(dense(u), dense(w), rtol=1e-15, atol=0)
    assert np.allclose(dense(F(a)[1]), np.sin(a))
    assert dense(F(a)[2]).tolist() == np.zeros((3, 3)).tolist()


def test_inline_drops_the_rules():
    s = sg.symbols("s")
    f = s * stop_gradient(s)
    assert float(sg.Function("g", [s], [sg.grad(sg.inline(f), s)])(3.0)) == 6.0
    assert float(sg.Function("g", [s], [sg.grad(f, s)])(3.0)) == 3.0


# ------------------------------------------------------------------ bad input
def test_bad_input_errors_name_what_was_wrong():
    F, jvp, vjp = _polar()
    with pytest.raises(InvalidInputError, match="Function to wrap"):
        custom_jvp(lambda x: x, jvp)
    with pytest.raises(InvalidInputError, match="callable"):
        custom_jvp(F, 3.0)
    with pytest.raises(TypeError):  # a callable with the wrong arity fails as Python does
        custom_jvp(F, lambda r, th: r)
    with pytest.raises(ArgumentCountError, match="must return 2 values, got 1"):
        custom_jvp(F, lambda r, th, tr, tth: (tr,))
    with pytest.raises(ShapeError, match=r"value 0 must have shape \(2,\), got \(3,\)"):
        custom_jvp(F, lambda r, th, tr, tth: (np.array([tr, tr, tr]), tr))
    with pytest.raises(ArgumentCountError, match="must return 2 values"):
        custom_vjp(F, lambda r, th, xy, rr, bxy, brr: bxy[0])
    a, t = sg.symbols("a"), sg.symbols("t", 2)
    wrong = sg.Function("w", [a, t], [t[0]])
    with pytest.raises(ShapeError, match=r"input 1 must have shape \(\)"):
        custom_jvp(SOFTPLUS, wrong)
    with pytest.raises(ArgumentCountError, match="must take 3 inputs"):
        custom_vjp(SOFTPLUS, wrong)
    S = sg.Function("sp", [t], [sg.SparseExpr([0], [1], [t[0]], (2, 2))])
    with pytest.raises(InvalidInputError, match="sparse output"):
        custom_jvp(S, lambda x, tx: x)
    for cls in (InvalidInputError, ArgumentCountError, ShapeError):
        assert issubclass(cls, SymgraphError)


# ------------------------------------------------------------------ a custom Function as a map's body
def test_map_of_a_custom_function_uses_the_rule():
    M = STABLE.map(4)
    X = sg.symbols("X", 4)
    f = np.asarray(M(X)).reshape(-1)
    D = sg.Function("D", [X], [sg.grad(f.sum(), X), sg.jacobian(f, X), sg.jvp(f, X, np.ones(4))])
    a = np.array([1000.0, 0.0, -1000.0, 2.0])
    s = np.array([sigmoid(v) for v in a])
    g, J, j = D(a)
    assert np.allclose(dense(g), s, rtol=1e-14) and np.allclose(dense(j), s, rtol=1e-14)
    assert np.allclose(dense(J), np.diag(s), rtol=1e-14)
    S = sg.Function("r", [x_], [x_ * stop_gradient(x_)]).map(3, reduce="sum")
    Y = sg.symbols("Y", 3)
    G = sg.Function("G", [Y], [sg.grad(S(Y), Y), sg.hessian(S(Y), Y)])
    g, H = G(np.array([1.0, 2.0, 3.0]))
    assert dense(g).tolist() == [1.0, 2.0, 3.0] and not dense(H).any()


def test_functions_with_rules_pickle_with_their_rules():
    import pickle

    x = sg.symbols("x")
    softplus = sg.Function("softplus", [x], [sg.log(1 + sg.exp(x))])
    stable = sg.custom_jvp(softplus, lambda x, t: t / (1 + sg.exp(-x)))
    z = sg.symbols("z")
    caller = sg.Function("caller", [z], [stable(z) * 2])
    user = sg.Function("sg_user", [z], [z * sg.stop_gradient(z)])
    for F, slope in ((stable, 1.0), (caller, 2.0), (user, 1000.0)):  # at z = 1000: the rules, not the graphs
        G = pickle.loads(pickle.dumps(F))
        assert float(sg.Function("d", [z], [sg.grad(G(z), z)])(1000.0)) == slope
    assert sorted(sg.custom_rules(pickle.loads(pickle.dumps(stable)))) == ["jvp"]
    assert pickle.loads(pickle.dumps(softplus)).name == "softplus"  # the plain Function still pickles


def test_nlp_of_a_mapped_custom_body_uses_the_rule():
    x = sg.symbols("x")
    softplus = sg.Function("softplus", [x], [sg.log(1 + sg.exp(x))])
    doubled = sg.custom_jvp(softplus, lambda x, t: 2.0 * t)  # a deliberately different rule, to see it used
    with sg.building():
        X = sg.symbols("X", 5)
        f = doubled.map(5, reduce="sum")(X)
        g = doubled.map(5)(X) - 1.0
    nlp = sg.NLP(x=X, f=f, g=g, jit=False)
    assert np.allclose(nlp.gradient(np.ones(5)), 2.0)
    assert np.allclose(nlp.jacobian_values(np.ones(5)), 2.0)


@pytest.mark.parametrize("mode", ["jvp", "vjp"])
def test_a_rule_reaching_beyond_the_graphs_pattern_is_kept(mode):
    """Straight-through floor: F's own pattern is empty, the rule's is the identity (x3 for vjp)."""
    x = sg.symbols("x", 2)
    F = sg.Function("fl", [x], [sg.floor(x)])
    G = (custom_jvp(F, lambda x, t: 3.0 * t) if mode == "jvp"
         else custom_vjp(F, lambda x, y, ybar: 3.0 * ybar))
    y = sg.symbols("y", 2)
    out = G(y)
    J = sg.jacobian(out, y)
    assert (J.rows.tolist(), J.cols.tolist()) == ([0, 1], [0, 1])
    point = np.array([0.3, 1.7])
    Fd = sg.Function("d", [y], [sg.grad(out.sum(), y), J.values, sg.jvp(out, y, np.ones(2))])
    for values in Fd(point):
        assert np.allclose(values, 3.0)
    assert np.allclose(Fd(point)[0], 3.0)
    assert sg.Function("v", [y], [out])(point).tolist() == [0.0, 1.0]  # the value is F's


@pytest.mark.parametrize("make, mode", [
    (lambda F: custom_jvp(F, lambda x, t: t * t), "jvp"),        # jvp = t**2 but its transpose (grad) = 0
    (lambda F: custom_jvp(F, lambda x, t: t + 1.0), "jvp"),      # a nonzero tangent out of a zero one
    (lambda F: custom_jvp(F, lambda x, t: sg.fmax(t, 0.0)), "jvp"),   # piecewise linear, not linear
    (lambda F: custom_vjp(F, lambda x, y, ybar: ybar * ybar), "vjp"),
])
def test_a_rule_not_linear_in_its_seeds_is_refused(make, mode):
    x = sg.symbols("x")
    F = sg.Function("f", [x], [x ** 3])
    with pytest.raises(InvalidInputError, match=f"the {mode} rule of 'f'.*must be linear"):
        make(F)


def test_linear_rules_with_a_domain_and_several_inputs_still_pass():
    a, b = sg.symbols("a"), sg.symbols("b", 2)
    G = sg.Function("G", [a, b], [a * 2, b * b, sg.log(a - 2.0)])   # log(a - 2) is nan at the test point
    C = custom_jvp(G, lambda a, b, ta, tb: (2 * ta, 2 * b * tb, ta / (a - 2.0)))
    aa, bb = sg.symbols("aa"), sg.symbols("bb", 2)
    ys = C(aa, bb)
    flat = np.concatenate([np.atleast_1d(np.asarray(y, dtype=object)) for y in ys])
    J = sg.Function("J", [aa, bb], [sg.jacobian(flat, np.concatenate([[aa], bb]))])
    want = np.array([[2, 0, 0], [0, 2, 0], [0, 0, 4], [1 / 1.5, 0, 0]])
    np.testing.assert_allclose(dense(J(3.5, np.array([1.0, 2.0]))), want, rtol=1e-14)


def test_callable_rule_of_the_wrong_arity_or_with_free_symbols_names_the_rule():
    x, c = sg.symbols("x"), sg.symbols("c")
    F = sg.Function("f", [x], [x ** 3])
    with pytest.raises(ArgumentCountError, match="the jvp rule of 'f'.*2 positional"):
        custom_jvp(F, lambda x: x)
    with pytest.raises(ArgumentCountError, match="the vjp rule of 'f'.*3 positional"):
        custom_vjp(F, lambda x, ybar: ybar)
    with pytest.raises(sg.FreeSymbolError, match="the jvp rule of 'f'.*'c'"):
        custom_jvp(F, lambda x, t: c * t)


def test_stop_gradient_of_bools_and_0d_arrays():
    assert stop_gradient(True) is True
    x = sg.symbols("x")
    s = stop_gradient(np.array(x, dtype=object))
    assert isinstance(s, sg.Expr)
    f = sg.Function("g", [x], [sg.grad(x * s, x)])
    assert float(f(3.0)) == 3.0


def test_custom_function_inside_a_fold_and_a_nested_map_matches_finite_differences():
    x = sg.symbols("x")
    F = sg.Function("f", [x], [sg.sin(x) * x])
    C = custom_vjp(F, lambda x, y, ybar: (sg.cos(x) * x + sg.sin(x)) * ybar)
    s, u = sg.symbols("s"), sg.symbols("u")
    fold = sg.Function("step", [s, u], [C(s) + u]).fold(3, last=True)
    s0, U = sg.symbols("s0"), sg.symbols("U", 3)
    z = np.concatenate([[s0], U])
    J = sg.Function("J", [s0, U], [sg.jacobian(fold(s0, U), z)])
    p = np.array([0.7, 0.1, 0.2, 0.3])
    h = 1e-6
    fd = np.array([(fold(*(lambda q: (q[0], q[1:]))(p + h * e)) - fold(*(lambda q: (q[0], q[1:]))(p - h * e))) / (2 * h)
                   for e in np.eye(4)])
    np.testing.assert_allclose(dense(J(p[0], p[1:])).ravel(), fd, rtol=1e-7, atol=1e-9)
    w, W = sg.symbols("w", 2), sg.symbols("W", (3, 2))
    outer = sg.Function("outer", [w], [sg.Function("inner", [x], [C(x)]).map(2)(w)]).map(3)
    Jm = sg.Function("Jm", [W], [sg.jacobian(np.ravel(outer(W)), np.ravel(W))])
    W0 = np.arange(6.0).reshape(3, 2) / 3
    want = np.diag((np.cos(W0) * W0 + np.sin(W0)).ravel())
    np.testing.assert_allclose(dense(Jm(W0)), want, rtol=1e-14, atol=1e-15)


def test_functions_without_inputs_and_sparse_rule_values_are_refused_by_name():
    c = sg.Function("c", [], [sg.const(1.0)])
    with pytest.raises(InvalidInputError, match="custom_jvp: Function 'c' has no inputs or no outputs"):
        custom_jvp(c, lambda: 0.0)
    with pytest.raises(InvalidInputError, match="custom_vjp: Function 'c' has no inputs or no outputs"):
        custom_vjp(c, lambda y, ybar: ())
    x = sg.symbols("x", 2)
    F = sg.Function("f", [x], [x * x])
    sparse = lambda x, t: sg.SparseExpr([0, 1], [0, 0], [2 * x[0] * t[0], 2 * x[1] * t[1]], (2, 1))  # noqa: E731
    with pytest.raises(InvalidInputError, match="the jvp rule of 'f'.*value 0 must be Exprs or numbers"):
        custom_jvp(F, sparse)
