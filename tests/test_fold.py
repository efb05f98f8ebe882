"""F.fold (symgraph/fold.py, symgraph/folddiff.py): values, derivatives, nesting, pattern, bad input, structure.

Every claim is checked against an independent oracle: the unrolled chain of
``n`` body calls (``R.inline()`` / ``sg.inline``), a plain Python loop calling
the body, complex step through the VM, finite differences, and the compiled C.
"""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

import symgraph as sg
from symgraph.fold import FoldStructure
from tests.strategies import complex_step_gradient, complex_step_jacobian

HAVE_CC = shutil.which("cc") is not None or shutil.which("gcc") is not None
needs_cc = pytest.mark.skipif(not HAVE_CC, reason="no C compiler")


# ----------------------------------------------------------------- bodies
def _sym(name, shape):
    return sg.symbols(name, shape) if len(shape) else sg.symbols(name)


def _total(a):
    """Sum of the entries of a symbol array (the symbol itself for a scalar)."""
    return a if not isinstance(a, np.ndarray) else sum(a.reshape(-1).tolist())


def _body(sshape, extras, n_extra_out, name="step"):
    """A smooth body F(s, u1.., uk) -> (next s, extra outputs..) coupling every input into the state.

    ``extras`` are the extra inputs' shapes; the extra outputs are a scalar
    and then a vector of 2 (so both shapes are exercised).
    """
    s = _sym("s", sshape)
    us = [_sym(f"u{k + 1}", shape) for k, shape in enumerate(extras)]
    flat_s = s.reshape(-1) if isinstance(s, np.ndarray) else np.array([s], dtype=object)
    rolled = np.roll(flat_s, 1).reshape(sshape) if sshape else s  # couples the state's components
    nxt = 0.7 * sg.sin(s) + 0.2 * rolled * sg.cos(s)
    for k, u in enumerate(us):
        nxt = nxt + (0.3 / (k + 1)) * sg.sin(_total(u) * (k + 1) + s)
    outputs = [nxt]
    head = flat_s[0]
    mix = us[0] if us else 1.5
    if n_extra_out >= 1:
        outputs.append(sg.exp(0.5 * head) * _total(mix) + head * head)
    if n_extra_out >= 2:
        last = flat_s[-1]
        outputs.append(np.array([sg.cos(last * _total(mix)), head * last - _total(mix)], dtype=object))
    return sg.Function(name, [s] + us, outputs)


def _shared_spec(F, flags, by):
    """The ``shared`` argument naming the inputs flagged (by index, by name, or alternating both)."""
    spec = []
    for q, k in enumerate(k for k, f in enumerate(flags) if f):
        if by == "index" or (by == "mixed" and q % 2 == 0):
            spec.append(k)
        else:
            spec.append(F.input_names[k])
    return spec


def _arguments(sshape, extras, flags, n, rng):
    args = [rng.uniform(-1, 1, sshape)]
    for shape, shared in zip(extras, flags[1:]):
        args.append(rng.uniform(-1, 1, tuple(shape) if shared else (n,) + tuple(shape)))
    return [np.float64(a) if a.ndim == 0 else a for a in args]


def _python_loop(F, args, flags, n, last):
    """The fold computed by hand: F called n times in a Python loop."""
    state, states, extras = args[0], [], []
    for i in range(n):
        step = [a if shared else a[i] for a, shared in zip(args[1:], flags[1:])]
        outs = F(state, *step)
        outs = outs if isinstance(outs, tuple) else (outs,)
        state = outs[0]
        states.append(np.asarray(state))
        extras.append([np.asarray(o) for o in outs[1:]])
    first = np.asarray(state) if last else np.stack(states)
    return [first] + [np.stack([e[k] for e in extras]) for k in range(F.n_out - 1)]


def _as_list(outs):
    return list(outs) if isinstance(outs, tuple) else [outs]


# (id, state shape, extra input shapes, shared flags of the extras, shared by, extra outputs, last, n)
CASES = [
    ("scalar-alone", (), [], [], "index", 0, False, 1),
    ("scalar-one-step-input-last", (), [()], [False], "index", 1, True, 2),
    ("vector-shared-index", (2,), [(), (2,)], [False, True], "index", 2, False, 3),
    ("scalar-shared-name", (), [(3,), ()], [True, False], "name", 0, False, 4),
    ("vector3-three-inputs-last", (3,), [(2,), (), (2, 2)], [False, True, True], "mixed", 2, True, 7),
    ("vector-all-shared", (2,), [(), (3,)], [True, True], "name", 1, True, 5),
    ("matrix-state", (2, 2), [(2,)], [False], "index", 1, False, 6),
    ("vector-three-per-step", (2,), [(), (2,), ()], [False, False, True], "mixed", 2, False, 7),
]
CASE_IDS = [c[0] for c in CASES]


def _case(case):
    _, sshape, extras, flags, by, n_out, last, n = case
    F = _body(sshape, extras, n_out)
    flags = [False] + list(flags)
    R = F.fold(n, shared=_shared_spec(F, flags, by), last=last)
    return F, R, flags, n, last, sshape, extras


# ----------------------------------------------------------------- 1. values
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_values_equal_the_unrolled_chain_and_a_python_loop(case):
    F, R, flags, n, last, sshape, extras = _case(case)
    assert isinstance(R.structure, FoldStructure) and R.structure.body is F
    assert R.name == f"step_fold{n}" and R.input_names == F.input_names
    want_in = [tuple(sshape)] + [tuple(sh) if f else (n,) + tuple(sh) for sh, f in zip(extras, flags[1:])]
    assert list(R.input_shapes) == want_in
    want_out = [tuple(sshape) if last else (n,) + tuple(sshape)] + [(n,) + tuple(sh) for sh in F.output_shapes[1:]]
    assert list(R.output_shapes) == want_out
    rng = np.random.default_rng(n)
    args = _arguments(sshape, extras, flags, n, rng)
    got = _as_list(R(*args))
    unrolled = _as_list(R.inline()(*args))
    loop = _python_loop(F, args, flags, n, last)
    assert len(got) == len(unrolled) == len(loop) == F.n_out
    for g, u, p, shape in zip(got, unrolled, loop, want_out):
        assert np.shape(g) == shape
        np.testing.assert_allclose(g, u, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(g, p, rtol=1e-13, atol=1e-14)
    # the state really changes from step to step (a fold that copied its input would fail above too)
    if not last and n > 1:
        assert not np.allclose(got[0][0], got[0][1])


def test_shared_by_index_equals_by_name():
    F = _body((2,), [(), (3,), ()], 1)
    rng = np.random.default_rng(9)
    args = [rng.uniform(-1, 1, 2), rng.uniform(-1, 1, (4,)), rng.uniform(-1, 1, 3), 0.3]
    folds = [F.fold(4, shared=spec, last=True) for spec in ([2, 3], ["u2", "u3"], [3, "u2"], ("u3", 2))]
    want = folds[0](*args)
    for R in folds[1:]:
        assert R.input_shapes == ((2,), (4,), (3,), ())
        for g, w in zip(R(*args), want):
            np.testing.assert_array_equal(g, w)
    one = F.fold(4, shared="u3"), F.fold(4, shared=3)  # one input, not in a list
    assert one[0].input_shapes == one[1].input_shapes == ((2,), (4,), (4, 3), ())


@needs_cc
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_compiled_c_equals_the_vm(case):
    F, R, flags, n, last, sshape, extras = _case(case)
    args = _arguments(sshape, extras, flags, n, np.random.default_rng(7))
    C = R.compile()
    for g, c in zip(_as_list(R(*args)), _as_list(C(*args))):
        np.testing.assert_allclose(c, g, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("case", CASES[2:6], ids=CASE_IDS[2:6])
def test_batch_equals_per_point_calls(case):
    F, R, flags, n, last, sshape, extras = _case(case)
    rng = np.random.default_rng(11)
    points = [_arguments(sshape, extras, flags, n, rng) for _ in range(4)]
    stacked = [np.stack([np.asarray(p[k]) for p in points]) for k in range(R.n_in)]
    batched = _as_list(R.batch(*stacked))
    for j, p in enumerate(points):
        for b, one in zip(batched, _as_list(R(*p))):
            assert b.shape[1:] == np.shape(one)
            np.testing.assert_allclose(b[j], one, rtol=1e-15, atol=0)
    # a shared input given once (not per point) is seen by every point
    once = [stacked[k] if not flags[k] else np.asarray(points[0][k]) for k in range(R.n_in)]
    batched = _as_list(R.batch(*once))
    for j, p in enumerate(points):
        q = [p[k] if not flags[k] else points[0][k] for k in range(R.n_in)]
        for b, one in zip(batched, _as_list(R(*q))):
            np.testing.assert_allclose(b[j], one, rtol=1e-15, atol=0)
    if HAVE_CC:
        for b, c in zip(batched, _as_list(R.compile().batch(*once))):
            np.testing.assert_allclose(c, b, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("case", CASES[1:8:3], ids=CASE_IDS[1:8:3])
def test_complex_arguments_through_the_vm_equal_the_unrolled(case):
    F, R, flags, n, last, sshape, extras = _case(case)
    rng = np.random.default_rng(5)
    args = [np.asarray(a) + 1e-3j * rng.uniform(-1, 1, np.shape(a))
            for a in _arguments(sshape, extras, flags, n, rng)]
    got, want = _as_list(R(*args)), _as_list(R.inline()(*args))
    for g, w in zip(got, want):
        assert np.iscomplexobj(g) and np.abs(np.imag(g)).max() > 0
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-15)


# ----------------------------------------------------------------- 2. derivatives
def _operands(R, X, seed):
    """Symbolic arguments for R over the symbols X: entries are symbols of X (repeated) or constants."""
    rng = np.random.default_rng(seed)
    args, at = [], 0
    for shape in R.input_shapes:
        size = int(np.prod(shape, dtype=np.int64))
        values = np.empty(size, dtype=object)
        for i in range(size):
            at += 1
            values[i] = sg.const(round(float(rng.uniform(-1, 1)), 3)) if at % 5 == 3 else X[at % len(X)]
        args.append(values.reshape(shape) if shape else values[0])
    return args


def _derivative_checks(X, outs, x0, hessian=True, compiled=True):
    """Every derivative of ``outs`` (arrays over symbols X) equals the unrolled one and complex step."""
    y = np.concatenate([np.asarray(o, dtype=object).reshape(-1) for o in outs])
    weights = np.linspace(0.3, 1.3, len(y))
    f = sum(w * sg.sin(e) for w, e in zip(weights.tolist(), y.tolist()))
    t = np.linspace(-1, 1, len(X))
    c = np.cos(np.arange(len(y)))
    yi, fi = sg.inline(y), sg.inline(f)
    # the unrolled expressions are calls-free; the folded ones are not
    assert sg.Function("yi", [X], [yi]).tape.n_calls == 0 < sg.Function("y", [X], [y]).tape.n_calls

    def derivatives(yy, ff):
        out = [sg.jvp(yy, X, t), sg.vjp(yy, X, c), sg.grad(ff, X), sg.jacobian(yy, X)]
        if hessian:
            out.append(sg.hessian(ff, X))
        return out

    D, Di = derivatives(y, f), derivatives(yi, fi)
    # the Jacobian pattern never misses an entry of the unrolled one (and the Hessian's)
    for k in ([3, 4] if hessian else [3]):
        mine = set(zip(D[k].rows.tolist(), D[k].cols.tolist()))
        unrolled = set(zip(Di[k].rows.tolist(), Di[k].cols.tolist()))
        assert unrolled <= mine, sorted(unrolled - mine)[:5]
    got = _as_list(sg.Function("d", [X], D)(x0))
    want = _as_list(sg.Function("di", [X], Di)(x0))
    dense = lambda v: v.toarray() if hasattr(v, "toarray") else np.asarray(v)  # noqa: E731
    for g, w in zip(got, want):
        np.testing.assert_allclose(dense(g), dense(w), rtol=1e-10, atol=1e-10)
    # complex step through the VM (the fold itself runs on complex numbers)
    Y = sg.Function("Y", [X], [y])
    J_cs = complex_step_jacobian(Y, x0)
    np.testing.assert_allclose(dense(got[3]), J_cs, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got[0], J_cs @ t, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got[1], c @ J_cs, rtol=1e-10, atol=1e-10)
    g_cs = complex_step_gradient(sg.Function("f", [X], [f]), x0)
    np.testing.assert_allclose(got[2], g_cs, rtol=1e-10, atol=1e-10)
    if hessian:  # complex step of the gradient: a derivative fold run on complex numbers
        H_cs = complex_step_jacobian(sg.Function("g", [X], [D[2]]), x0)
        np.testing.assert_allclose(dense(got[4]), H_cs, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(dense(got[4]), dense(got[4]).T, rtol=1e-12, atol=1e-12)
    if compiled and HAVE_CC:
        G = sg.Function("grad", [X], [D[2]])
        np.testing.assert_allclose(G.compile()(x0), got[2], rtol=1e-13, atol=1e-13)
    return got


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_derivatives_equal_the_unrolled_and_complex_step(case):
    F, R, flags, n, last, sshape, extras = _case(case)
    X = sg.symbols("X", 5)
    outs = _as_list(R(*_operands(R, X, seed=n)))
    x0 = np.random.default_rng(n).uniform(-1, 1, 5)
    _derivative_checks(X, outs, x0)


@pytest.mark.parametrize("case", CASES[2:8:2], ids=CASE_IDS[2:8:2])
def test_second_and_third_order_in_both_modes(case):
    """Hessians as forward-over-reverse and reverse-over-reverse, and a third derivative, as unrolled."""
    F, R, flags, n, last, sshape, extras = _case(case)
    X = sg.symbols("X", 4)
    y = np.concatenate([np.asarray(o, dtype=object).reshape(-1) for o in _as_list(R(*_operands(R, X, seed=n)))])
    f = sum(sg.sin(e) * (k + 1) for k, e in enumerate(y.tolist()))
    g, gi = sg.grad(f, X), sg.grad(sg.inline(f), X)
    mine = [sg.jacobian(g, X, mode="reverse"), sg.jacobian(g, X, mode="forward"), sg.jacobian(y, X, mode="reverse"),
            sg.jacobian(y, X, mode="forward"), sg.grad(sg.grad(g[0], X)[1], X)]
    Hi, Ji = sg.jacobian(gi, X), sg.jacobian(sg.inline(y), X)
    unrolled = [Hi, Hi, Ji, Ji, sg.grad(sg.grad(gi[0], X)[1], X)]
    x0 = np.random.default_rng(1).uniform(-1, 1, 4)
    dense = lambda v: v.toarray() if hasattr(v, "toarray") else np.asarray(v)  # noqa: E731
    for a, b in zip(sg.Function("a", [X], mine)(x0), sg.Function("b", [X], unrolled)(x0)):
        np.testing.assert_allclose(dense(a), dense(b), rtol=1e-10, atol=1e-10)


def test_derivatives_with_the_same_symbol_as_state_and_inputs():
    """One symbol is the state, a per-step input at every step and the shared input: all its paths add up."""
    s, u, p = sg.symbols("s"), sg.symbols("u"), sg.symbols("p")
    F = sg.Function("f", [s, u, p], [s * sg.sin(u) + p * s * s, sg.exp(u * s)])
    R = F.fold(4, shared=["p"], last=True)
    a = sg.symbols("a")
    X = np.array([a], dtype=object)
    outs = _as_list(R(a, np.array([a, a, 2.0, a], dtype=object), a))
    _derivative_checks(X, outs, np.array([0.37]))
    # the closed form by hand
    def value(x):
        v = x
        for ui in (x, x, 2.0, x):
            v = v * np.sin(ui) + x * v * v
        return v
    h = 1e-30
    closed = np.imag(value(0.37 + 1j * h)) / h
    g = sg.Function("g", [X], [sg.grad(outs[0], X)])(np.array([0.37]))
    np.testing.assert_allclose(g, [closed], rtol=1e-12)


# ----------------------------------------------------------------- 3. nesting
def test_fold_whose_body_calls_a_map():
    a, b = sg.symbols("a"), sg.symbols("b")
    M = sg.Function("pair", [a, b], [a * sg.sin(b) + 0.1 * b]).map(3)
    s, u, p = sg.symbols("s", 3), sg.symbols("u", 3), sg.symbols("p")
    F = sg.Function("body", [s, u, p], [0.8 * M(s, u) + p * sg.cos(s), sg.exp(s[0]) * p])
    assert F.tape.n_calls == 1
    R = F.fold(5, shared=["p"])
    rng = np.random.default_rng(1)
    args = [rng.uniform(-1, 1, 3), rng.uniform(-1, 1, (5, 3)), 0.4]
    got, want = R(*args), R.inline()(*args)
    loop = _python_loop(F, args, [False, False, True], 5, False)
    for g, w, p_ in zip(got, want, loop):
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(g, p_, rtol=1e-13, atol=1e-14)
    if HAVE_CC:
        for g, c in zip(got, R.compile()(*args)):
            np.testing.assert_allclose(c, g, rtol=1e-14, atol=1e-15)
    X = sg.symbols("X", 4)
    _derivative_checks(X, _as_list(R(*_operands(R, X, seed=3))), rng.uniform(-1, 1, 4))


def test_map_whose_body_is_a_fold():
    F = _body((2,), [(), ()], 1)
    R = F.fold(3, shared=["u2"], last=True)
    M = R.map(4, shared=["u2"])
    assert M.input_shapes == ((4, 2), (4, 3), ()) and M.output_shapes == ((4, 2), (4, 3))
    rng = np.random.default_rng(2)
    args = [rng.uniform(-1, 1, (4, 2)), rng.uniform(-1, 1, (4, 3)), 0.3]
    got = M(*args)
    for i in range(4):  # instance by instance against the fold and the hand loop
        one = R(args[0][i], args[1][i], args[2])
        loop = _python_loop(F, [args[0][i], args[1][i], args[2]], [False, False, True], 3, True)
        for g, o, p_ in zip(got, one, loop):
            np.testing.assert_allclose(g[i], o, rtol=1e-15, atol=0)
            np.testing.assert_allclose(g[i], p_, rtol=1e-13, atol=1e-14)
    for g, w in zip(got, M.inline()(*args)):
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-14)
    if HAVE_CC:
        for g, c in zip(got, M.compile()(*args)):
            np.testing.assert_allclose(c, g, rtol=1e-14, atol=1e-15)
    X = sg.symbols("X", 5)
    _derivative_checks(X, _as_list(M(*_operands(M, X, seed=4))), rng.uniform(-1, 1, 5))


def test_fold_of_a_fold_inside_the_body_and_directly():
    inner = _body((2,), [()], 0, name="inner").fold(3, last=True)  # (s[2], u[3]) -> s[2]
    s, U, q = sg.symbols("s", 2), sg.symbols("U", 3), sg.symbols("q")
    F = sg.Function("outer", [s, U, q], [inner(s, U * q) * 0.9 + 0.1 * q, sg.sin(s[1]) * q])
    R = F.fold(4, shared=[2])
    rng = np.random.default_rng(3)
    args = [rng.uniform(-1, 1, 2), rng.uniform(-1, 1, (4, 3)), 0.6]
    got, want = R(*args), R.inline()(*args)
    loop = _python_loop(F, args, [False, False, True], 4, False)
    for g, w, p_ in zip(got, want, loop):
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(g, p_, rtol=1e-13, atol=1e-14)
    if HAVE_CC:
        for g, c in zip(got, R.compile()(*args)):
            np.testing.assert_allclose(c, g, rtol=1e-14, atol=1e-15)
    X = sg.symbols("X", 4)
    _derivative_checks(X, _as_list(R(*_operands(R, X, seed=5))), rng.uniform(-1, 1, 4))
    # a fold of a (last-state) fold: 4 x 3 steps of the inner body
    RR = inner.fold(4)
    assert RR.input_shapes == ((2,), (4, 3)) and RR.output_shapes == ((4, 2),)
    s0, u = rng.uniform(-1, 1, 2), rng.uniform(-1, 1, (4, 3))
    flat = _python_loop(inner.structure.body, [s0, u.reshape(12)], [False, False], 12, False)[0]
    np.testing.assert_allclose(RR(s0, u), flat[2::3], rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(RR(s0, u), RR.inline()(s0, u), rtol=1e-13, atol=1e-14)
    X = sg.symbols("X", 3)
    _derivative_checks(X, [RR(*_operands(RR, X, seed=6))], rng.uniform(-1, 1, 3))


def _rk4_step():
    """One RK4 step of Lotka-Volterra with parameters (alpha, beta, delta, gamma), dt = 0.05."""
    x, p = sg.symbols("x", 2), sg.symbols("p", 4)

    def rhs(z):
        return np.array([p[0] * z[0] - p[1] * z[0] * z[1], p[2] * z[0] * z[1] - p[3] * z[1]], dtype=object)

    dt = 0.05
    k1 = rhs(x)
    k2 = rhs(x + dt / 2 * k1)
    k3 = rhs(x + dt / 2 * k2)
    k4 = rhs(x + dt * k3)
    return sg.Function("rk4", [x, p], [x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)])


def _rk4_numpy(x, p, n):
    def rhs(z):
        return np.array([p[0] * z[0] - p[1] * z[0] * z[1], p[2] * z[0] * z[1] - p[3] * z[1]])

    out, dt = [], 0.05
    for _ in range(n):
        k1 = rhs(x)
        k2 = rhs(x + dt / 2 * k1)
        k3 = rhs(x + dt / 2 * k2)
        k4 = rhs(x + dt * k3)
        x = x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        out.append(x)
    return np.array(out)


def test_rk4_lotka_volterra_least_squares_gradient():
    n = 50
    R = _rk4_step().fold(n, shared=["p"])
    assert R.n_ops == 1 + 2 * n
    p_true, x_true = np.array([1.1, 0.4, 0.1, 0.4]), np.array([10.0, 5.0])
    data = _rk4_numpy(x_true, p_true, n)
    np.testing.assert_allclose(R(x_true, p_true), data, rtol=1e-13)
    z = sg.symbols("z", 6)  # (x0, p)
    traj = R(z[:2], z[2:])
    loss = sum(((traj - data) ** 2).reshape(-1).tolist())
    L = sg.Function("loss", [z], [loss])
    G = sg.Function("grad", [z], [sg.grad(loss, z)])
    z0 = np.array([9.5, 5.3, 1.0, 0.45, 0.12, 0.38])
    g = G(z0)
    np.testing.assert_allclose(float(L(np.concatenate([x_true, p_true]))), 0.0, atol=1e-18)
    np.testing.assert_allclose(g, complex_step_gradient(L, z0), rtol=1e-10)
    fd = np.array([(float(L(z0 + h * e)) - float(L(z0 - h * e))) / (2 * h)
                   for e, h in zip(np.eye(6), 1e-6 * np.maximum(1.0, np.abs(z0)))])
    np.testing.assert_allclose(g, fd, rtol=1e-6)
    np.testing.assert_allclose(g, sg.Function("gi", [z], [sg.inline(sg.grad(loss, z))])(z0), rtol=1e-10)
    if HAVE_CC:
        np.testing.assert_allclose(G.compile()(z0), g, rtol=1e-12)


# ----------------------------------------------------------------- 4. pattern
def _sparse_body():
    """A body whose Jacobian is sparse: s[0] sees u, s[1] sees p, s[2] only itself; o1 sees s[2]."""
    s, u, p = sg.symbols("s", 3), sg.symbols("u"), sg.symbols("p", 2)
    nxt = np.array([s[0] * u, s[1] + sg.sin(p[0]), 0.5 * s[2] + s[1] * 0.0], dtype=object)
    return sg.Function("sparse", [s, u, p], [nxt, sg.exp(s[2])])


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_pattern_equals_the_sparsity_of_the_unrolled_model(case):
    _, R, *_ = _case(case)
    _check_pattern(R)


@pytest.mark.parametrize("last", [False, True])
@pytest.mark.parametrize("shared", [(), ("p",)])
def test_pattern_of_a_sparse_body(last, shared):
    R = _sparse_body().fold(4, shared=shared, last=last)
    pat = _check_pattern(R)
    assert pat.nnz < pat.shape[0] * pat.shape[1] // 2  # genuinely sparse


@pytest.mark.parametrize("last", [False, True])
@pytest.mark.parametrize("shared", [(), ("p",)])
def test_derivatives_of_a_sparse_body(last, shared):
    R = _sparse_body().fold(4, shared=shared, last=last)
    X = sg.symbols("X", 4)
    _derivative_checks(X, _as_list(R(*_operands(R, X, seed=1))), np.random.default_rng(1).uniform(-1, 1, 4),
                       compiled=False)


def _edge_bodies():
    s, u = sg.symbols("s", 2), sg.symbols("u", 2)
    two = np.array([sg.const(1.0), sg.const(2.0)], dtype=object)
    return {
        "identity": sg.Function("idn", [s, u], [s, s * u]),
        "state-is-input": sg.Function("su", [s, u], [u, s[0] + 0.0 * u[0]]),
        "constant-next": sg.Function("cn", [s, u], [two, s * u]),
        "swap-and-copy-input": sg.Function("sw", [s, u], [s[::-1], u]),
        "extra-is-state": sg.Function("es", [s, u], [sg.sin(s) + u, s]),
    }


@pytest.mark.parametrize("last", [False, True])
@pytest.mark.parametrize("label", list(_edge_bodies()))
def test_bodies_that_copy_or_ignore_their_inputs(label, last):
    """Outputs that are inputs, constants or permutations: values, C, pattern and derivatives."""
    F = _edge_bodies()[label]
    R = F.fold(4, last=last)
    rng = np.random.default_rng(0)
    args = [rng.uniform(-1, 1, 2), rng.uniform(-1, 1, (4, 2))]
    got = _as_list(R(*args))
    for g, i, p in zip(got, _as_list(R.inline()(*args)), _python_loop(F, args, [False, False], 4, last)):
        np.testing.assert_allclose(g, i, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(g, p, rtol=1e-13, atol=1e-14)
    if HAVE_CC:
        for g, c in zip(got, _as_list(R.compile()(*args))):
            np.testing.assert_allclose(c, g, rtol=1e-14, atol=1e-15)
    _check_pattern(R)
    X = sg.symbols("X", 3)
    _derivative_checks(X, _as_list(R(*_operands(R, X, seed=1))), rng.uniform(-1, 1, 3), compiled=False)


def _check_pattern(R):
    U = R.inline()
    ins = np.concatenate([np.asarray(a, dtype=object).reshape(-1) for a in U.inputs])
    outs = np.concatenate([np.asarray(o, dtype=object).reshape(-1) for o in U.outputs])
    want = sg.jacobian_sparsity(outs, ins)
    got = R.structure.pattern()
    assert got.shape == want.shape == (R.structure.n_results, R.structure.n_operands)
    assert sorted(zip(got.rows.tolist(), got.cols.tolist())) == sorted(zip(want.rows.tolist(), want.cols.tolist()))
    return got


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
@pytest.mark.parametrize("last", [False, True])
def test_exported_c_of_a_fold_and_its_derivatives_matches_the_vm(tmp_path, last):
    from codegen.export import demo_inputs
    from tests.strategies import compile_and_run

    R = _body((2,), [(), (2,)], 2).fold(5, shared=["u2"], last=last)
    X = sg.symbols("X", 4)
    y = np.concatenate([np.asarray(o, dtype=object).reshape(-1) for o in _as_list(R(*_operands(R, X, seed=1)))])
    f = sum(sg.sin(e) for e in y.tolist())
    for G in (R, sg.Function("derivs", [X], [sg.grad(f, X), sg.hessian(f, X)])):
        where = tmp_path / G.name
        where.mkdir()
        printed = compile_and_run(G.export_c(str(where)), where, ["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror"])
        want = _as_list(G(*demo_inputs(G)))
        assert len(printed) == len(want)
        for p, w in zip(printed, want):
            w = w.tocsc().data if hasattr(w, "tocsc") else np.asarray(w).reshape(-1)
            np.testing.assert_allclose(p, w, rtol=1e-14, atol=1e-15)


# ----------------------------------------------------------------- 5. bad input
def _plain():
    s, u, p = sg.symbols("s", 2), sg.symbols("u"), sg.symbols("p")
    return sg.Function("plain", [s, u, p], [sg.sin(s) * p + u])


@pytest.mark.parametrize("n", [0, -2, 2.0, 2.5, "3", None, True, False])
def test_bad_n(n):
    message = rf"plain\.fold: n must be a positive int, got {re.escape(repr(n))}"
    with pytest.raises(sg.InvalidInputError, match=message):
        _plain().fold(n)


def test_numpy_int_n_is_accepted():
    R = _plain().fold(np.int64(2), shared=["p"])
    assert R.output_shapes == ((2, 2),)


@pytest.mark.parametrize("last", [1, 0, "yes", None])
def test_bad_last(last):
    message = rf"plain\.fold: last must be True or False, got {re.escape(repr(last))}"
    with pytest.raises(sg.InvalidInputError, match=message):
        _plain().fold(3, last=last)


@pytest.mark.parametrize("shared", [[0], ["s"], 0, "s", [2, 0]])
def test_shared_state_is_refused(shared):
    with pytest.raises(sg.InvalidInputError, match=r"plain\.fold: input 0 \('s'\) is the state; it cannot be shared"):
        _plain().fold(3, shared=shared)


@pytest.mark.parametrize("shared, message", [
    (["q"], r"plain\.fold: shared names no input 'q' \(inputs: 's', 'u', 'p'\)"),
    ([3], r"plain\.fold: shared index 3 is out of range; plain has 3 input"),
    ([2, "p"], r"input 2 \('p'\) is named twice"),
])
def test_shared_naming_a_missing_input(shared, message):
    with pytest.raises(sg.InvalidInputError, match=message):
        _plain().fold(3, shared=shared)


def test_state_output_shape_differs_from_state_input_shape():
    s, u = sg.symbols("s", 2), sg.symbols("u")
    with pytest.raises(sg.ShapeError, match=r"f\.fold: output 0 \(the next state, 'o0'\) has shape \(3,\), but input 0 "
                                            r"\(the state, 's'\) has shape \(2,\)"):
        sg.Function("f", [s, u], [np.array([s[0], s[1], u], dtype=object)]).fold(2)
    with pytest.raises(sg.ShapeError, match=r"has shape \(\), but input 0 \(the state, 's'\) has shape \(2,\)"):
        sg.Function("f", [s, u], [s[0] * u]).fold(2)
    with pytest.raises(ValueError, match=r"has shape \(1, 2\), but input 0"):  # ShapeError is a ValueError
        sg.Function("f", [s, u], [np.array([[s[0], s[1]]], dtype=object)]).fold(2)


def test_sparse_outputs_are_refused():
    x = sg.symbols("x", 2)
    F = sg.Function("sp", [x], [x * 0.5, sg.jacobian(x * x, x)])
    with pytest.raises(sg.InvalidInputError, match=r"sp\.fold: output 1 \('o1'\) is sparse; fold takes dense outputs"):
        F.fold(2)


def test_argument_whose_leading_axis_is_not_n():
    R = _plain().fold(3, shared=["p"])
    msg = r"plain_fold3: argument 1 \('u'\): expected shape \(3,\), got \(4,\)"
    with pytest.raises(sg.ShapeError, match=msg):
        R(np.zeros(2), np.zeros(4), 1.0)
    with pytest.raises(sg.ShapeError, match=msg):
        R(sg.symbols("S", 2), sg.symbols("U", 4), sg.symbols("P"))
    s, v = sg.symbols("s", 2), sg.symbols("v", 2)
    R2 = sg.Function("g", [s, v], [s * v]).fold(3)
    with pytest.raises(sg.ShapeError, match=r"g_fold3: argument 1 \('v'\): expected shape \(3, 2\), got \(2, 2\)"):
        R2(np.zeros(2), np.zeros((2, 2)))
    with pytest.raises(sg.ShapeError, match=r"argument 0 \('s'\): expected shape \(2,\), got \(3,\)"):
        R2(np.zeros(3), np.zeros((3, 2)))
    if HAVE_CC:
        with pytest.raises(sg.ShapeError, match=msg):
            R.compile()(np.zeros(2), np.zeros(4), 1.0)


# ----------------------------------------------------------------- 6. structure
@pytest.mark.parametrize("last", [False, True])
def test_one_call_node_whatever_n(last):
    F = _body((2,), [(), ()], 2)
    for n in (1, 10, 1000, 30000):
        R = F.fold(n, shared=["u2"], last=last)
        assert R.tape.n_calls == 1
        assert R.n_ops == 1 + R.structure.n_results
        assert R.structure.n_results == (2 if last else 2 * n) + n * (1 + 2)
    # the body itself is never copied: a body of ~200 operations folded 1000 times
    x = sg.symbols("x", 2)
    e = x[0]
    for k in range(100):
        e = sg.sin(e) * x[1] + k
    B = sg.Function("big", [x], [np.array([e, x[1]], dtype=object)])
    R = B.fold(1000, last=True)
    assert B.n_ops >= 200 and R.n_ops == 3


def _c_without_n(F, n, **kw):
    """The fold's C source with the digits of n replaced (in names, loop bounds, comments)."""
    return re.sub(rf"(?<=fold){n}(?![0-9])|(?<![\w.]){n}(?![\w.])", "N", F.fold(n, **kw).c_code())


@needs_cc
def test_c_source_does_not_grow_with_n_state_and_shared_inputs():
    s, p = sg.symbols("s", 2), sg.symbols("p", 3)
    e = s
    for k in range(20):
        e = sg.sin(e) * p[k % 3] + 0.25 * e[::-1]
    F = sg.Function("body", [s, p], [e])
    small, large = _c_without_n(F, 10, shared=["p"], last=True), _c_without_n(F, 10000, shared=["p"], last=True)
    assert "for (long i = 0; i < N; ++i)" in large
    assert len(small) == len(large) and small == large
    # the body (20 steps x 2 sines) is emitted once, whatever n; loop rerolling may fold some of its steps
    assert large.count("sin(") == small.count("sin(") and 0 < large.count("sin(") <= 40


# The fold's own Tape holds one operand per scalar of its (n,)-shaped inputs and one result per scalar of
# its stacked outputs; codegen/glue.py emits those copies as loops (before it: 1.2 MB of C at n = 10000).
@needs_cc
def test_c_source_does_not_grow_with_n_per_step_inputs_and_outputs():
    F = _body((2,), [(), ()], 1)
    small, large = F.fold(10, shared=["u2"]).c_code(), F.fold(10000, shared=["u2"]).c_code()
    assert "for (long i = 0; i < 10000; ++i)" in large
    # the same text up to the numbers (n and sizes and offsets derived from it), a few digits longer
    assert re.sub(r"[0-9]+", "#", small) == re.sub(r"[0-9]+", "#", large)
    assert len(large) - len(small) < 300


@needs_cc
def test_c_of_a_fold_gradient_does_not_grow_with_n():
    # the reverse fold reads the stored states in reverse; rerolled loads of them feed the next call's
    # operands, which must be copied by loops, not one statement per state
    def gradient_function(n):
        q, p = sg.symbols("q", 2), sg.symbols("p", 2)
        step = sg.Function("step", [q, p], [q + 0.01 * np.array([p[0] * q[0] - q[0] * q[1], q[0] * q[1] - p[1] * q[1]],
                                                               dtype=object)])
        theta, data = sg.symbols("theta", 4), sg.symbols("data", (n, 2))
        states = step.fold(n, shared=["p"])(theta[2:], theta[:2])
        s, d = sg.symbols("s", 2), sg.symbols("d", 2)
        square = sg.Function("square", [s, d], [np.sum((s - d) * (s - d))])
        with sg.building():
            loss = square.map(n, reduce="sum")(states, data)
            return sg.Function("lv", [theta, data], [loss, sg.grad(loss, theta)])
    small, large = gradient_function(300), gradient_function(3000)
    lines = [len(G.compile().source.splitlines()) for G in (small, large)]
    assert abs(lines[1] - lines[0]) <= 20  # 10x the steps: the same code (a part boundary may move), tables grow
    th, d = np.array([1.0, 0.5, 0.9, 0.4]), np.random.default_rng(0).uniform(0, 1, (3000, 2))
    np.testing.assert_array_equal(large.compile()(th, d)[1], large(th, d)[1])
