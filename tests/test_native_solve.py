"""The native linear-solve and slogdet nodes (symgraph/linsolve.py) and the native-callee protocol.

Values against numpy.linalg, derivatives against closed forms (``dx = A^-1 (db - dA x)``,
``Abar = -lam x^T``, ``grad logdet = A^-T``), finite differences and complex step, the VM
against compiled C, and the protocol's edges (inline, maps, pickling, SymPy, Taylor).
"""

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symgraph as sg
from symgraph import linalg as la
from symgraph.linsolve import lu_factor_batch, slogdet_function, solve_function
from symgraph.native import is_native

N = la.MAX_EXPANDED_SIZE + 2  # the smallest sizes that take the native path


def _matrix(rng, n, shift=0.0):
    return rng.normal(size=(n, n)) + shift * np.eye(n)


def _function(n, k=None):
    A = sg.symbols("A", (n, n))
    b = sg.symbols("b", n if k is None else (n, k))
    x = la.solve(A, b)
    sign, logabs = la.slogdet(A)
    return A, b, x, sg.Function("lin", [A, b], [x, sign, logabs, la.det(A), la.inv(A)])


@pytest.mark.parametrize("n,k", [(N, None), (N, 3), (17, None)])
def test_values_match_numpy_in_the_vm_and_in_c(n, k):
    rng = np.random.default_rng(n)
    _, _, x, F = _function(n, k)
    assert F.tape.n_calls >= 2 and F.n_ops < 3 * n * n + 50   # calls, not an expansion
    Av, bv = _matrix(rng, n), rng.normal(size=n if k is None else (n, k))
    sign, logabs = np.linalg.slogdet(Av)
    want = [np.linalg.solve(Av, bv), sign, logabs, np.linalg.det(Av), np.linalg.inv(Av)]
    vm = F(Av, bv)
    c = F.compile()(Av, bv)
    for got_vm, got_c, ref in zip(vm, c, want):
        np.testing.assert_allclose(got_vm, ref, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got_c, got_vm, rtol=1e-13, atol=1e-15)


def test_pivoting_handles_a_zero_leading_entry():
    n = N
    P = np.eye(n)[::-1] * np.arange(1.0, n + 1)          # anti-diagonal: every step swaps rows
    A, b, x, F = _function(n)
    got = F.compile()(P, np.ones(n))
    np.testing.assert_allclose(got[0], np.linalg.solve(P, np.ones(n)), rtol=1e-15)
    assert got[1] == np.linalg.slogdet(P)[0]
    np.testing.assert_allclose(got[3], np.linalg.det(P), rtol=1e-14)


def test_singular_matrices_give_non_finite_solutions_and_zero_determinants():
    n = N
    S = np.ones((n, n))
    _, _, _, F = _function(n)
    for x, sign, logabs, det, inv in (F(S, np.ones(n)), F.compile()(S, np.ones(n))):
        assert not np.all(np.isfinite(x)) and not np.all(np.isfinite(inv))
        assert sign == 0.0 and logabs == -np.inf and det == 0.0


def test_lu_factor_batch_matches_the_textbook_factorization():
    rng = np.random.default_rng(3)
    A = rng.normal(size=(4, 6, 6))
    U, _, sign = lu_factor_batch(A)
    for a, u, s in zip(A, U, sign):
        assert np.allclose(np.triu(u), u)
        np.testing.assert_allclose(s * np.prod(np.diag(u)), np.linalg.det(a), rtol=1e-12)


@settings(max_examples=15)
@given(st.integers(0, 2**31 - 1), st.integers(N, 14))
def test_random_solves_vm_against_c(seed, n):
    rng = np.random.default_rng(seed)
    S = solve_function(n, ())
    Av, bv = _matrix(rng, n), rng.normal(size=n)
    np.testing.assert_allclose(S.compile()(Av, bv), S(Av, bv), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(S(Av, bv), np.linalg.solve(Av, bv), rtol=1e-8, atol=1e-10)


# ---------------------------------------------------------------- derivatives
def test_jvp_and_gradients_are_the_implicit_closed_forms():
    n = N
    rng = np.random.default_rng(5)
    A, b, x, _ = _function(n)
    TA, Tb = sg.symbols("TA", (n, n)), sg.symbols("Tb", n)
    u, tu = np.concatenate([A.ravel(), b]), np.concatenate([TA.ravel(), Tb])
    logabs = la.slogdet(A)[1]
    F = sg.Function("d", [A, b, TA, Tb], [sg.jvp(x, u, tu), sg.grad(x.sum(), b), sg.grad(x.sum(), A),
                                          sg.grad(logabs, A), sg.grad(la.det(A), A)])
    Av, bv, tA, tb = _matrix(rng, n, 3.0), rng.normal(size=n), rng.normal(size=(n, n)), rng.normal(size=n)
    xv = np.linalg.solve(Av, bv)
    lam = np.linalg.solve(Av.T, np.ones(n))
    inv_t = np.linalg.inv(Av).T
    want = [np.linalg.solve(Av, tb - tA @ xv), lam, -np.outer(lam, xv), inv_t, np.linalg.det(Av) * inv_t]
    for got_vm, got_c, ref in zip(F(Av, bv, tA, tb), F.compile()(Av, bv, tA, tb), want):
        np.testing.assert_allclose(got_vm, ref, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got_c, got_vm, rtol=1e-12, atol=1e-14)


def test_jacobian_against_central_differences_and_complex_step():
    n = N
    rng = np.random.default_rng(6)
    A, b, x, _ = _function(n)
    J = sg.Function("J", [A, b], [sg.jacobian(x, np.concatenate([A.ravel(), b]))])
    S = sg.Function("S", [A, b], [x])
    Av, bv = _matrix(rng, n, 2.0), rng.normal(size=n)
    got = J(Av, bv).toarray()
    flat = np.concatenate([Av.ravel(), bv])
    h = 1e-30
    for k in range(0, flat.size, 7):
        step = np.zeros(flat.size, dtype=complex)
        step[k] = 1j * h
        z = flat + step
        cs = S(z[:n * n].reshape(n, n), z[n * n:]).imag / h     # complex step through the native VM
        np.testing.assert_allclose(got[:, k], cs, rtol=1e-10, atol=1e-13)
        e = np.zeros(flat.size)
        e[k] = 1e-6
        fd = (S(*_split(flat + e, n)) - S(*_split(flat - e, n))) / 2e-6
        np.testing.assert_allclose(got[:, k], fd, rtol=1e-5, atol=1e-7)


def _split(flat, n):
    return flat[:n * n].reshape(n, n), flat[n * n:]


def test_second_derivatives_through_solves():
    n = la.MAX_EXPANDED_SIZE + 1
    rng = np.random.default_rng(7)
    A, b = sg.symbols("A", (n, n)), sg.symbols("b", n)
    x = la.solve(A, b)
    f = x @ x + la.logdet(A)
    H = sg.Function("H", [A, b], [sg.hessian(f, b), sg.hessian(f, A)])
    G = sg.Function("G", [A, b], [sg.grad(f, b), sg.grad(f, A)])
    Av = _matrix(rng, n, 3.0) + 4 * np.eye(n)
    bv = rng.normal(size=n)
    Ai = np.linalg.inv(Av)
    Hb, HA = H(Av, bv)
    np.testing.assert_allclose(Hb.toarray(), 2 * Ai.T @ Ai, rtol=1e-10)           # closed form
    for k in (0, 13, 40):
        e = np.zeros(n * n)
        e[k] = 1e-6
        fd = (G(Av + e.reshape(n, n), bv)[1] - G(Av - e.reshape(n, n), bv)[1]).ravel() / 2e-6
        np.testing.assert_allclose(HA.toarray()[:, k], fd, rtol=1e-5, atol=1e-7)
    Hc = H.compile()(Av, bv)
    np.testing.assert_allclose(Hc[1].toarray(), HA.toarray(), rtol=1e-11, atol=1e-13)


def test_ill_conditioned_solves_keep_their_closed_form_derivatives():
    n = N
    hilbert = 1.0 / (np.arange(n)[:, None] + np.arange(n)[None, :] + 1.0)   # cond ~ 1e13
    rng = np.random.default_rng(8)
    A, b, x, _ = _function(n)
    F = sg.Function("g", [A, b], [x, sg.grad(x.sum(), b)])
    bv = rng.normal(size=n)
    xv, g = F.compile()(hilbert, bv)
    np.testing.assert_allclose(xv, np.linalg.solve(hilbert, bv), rtol=1e-3)
    np.testing.assert_allclose(hilbert @ g, np.ones(n), rtol=1e-5, atol=1e-5)   # A^T lam = 1 (symmetric A)


# ---------------------------------------------------------------- protocol edges
def test_a_map_of_a_solve_with_a_shared_matrix_and_its_gradient():
    n, m = N, 5
    rng = np.random.default_rng(9)
    A, B = sg.symbols("A", (n, n)), sg.symbols("B", (m, n))
    M = solve_function(n, ()).map(m, shared=["A"])
    X = M(A, B)
    F = sg.Function("m", [A, B], [X, sg.grad((X ** 2).sum(), A)])
    Av, Bv = _matrix(rng, n, 3.0), rng.normal(size=(m, n))
    Xv, g = F(Av, Bv)
    np.testing.assert_allclose(Xv, np.linalg.solve(Av, Bv.T).T, rtol=1e-12)
    Xc, gc = F.compile()(Av, Bv)
    np.testing.assert_allclose(Xc, Xv, rtol=1e-13)
    np.testing.assert_allclose(gc, g, rtol=1e-12)
    lam = np.linalg.solve(Av.T, 2 * Xv.T)               # sum over instances of -lam_i x_i^T
    np.testing.assert_allclose(g, -lam @ Xv, rtol=1e-10)


def test_inline_keeps_native_calls_and_optimize_leaves_them():
    n = N
    A, b, x, _ = _function(n)
    F = sg.Function("f", [A, b], [2 * x])
    assert F.inline().tape.n_calls == 1 and F.optimize().tape.n_calls == 1
    assert is_native(solve_function(n, ())) and not is_native(F)
    Av = np.eye(n) * 2
    np.testing.assert_array_equal(F.inline()(Av, np.ones(n)), np.ones(n))


def test_one_function_per_size_and_equal_solves_share_one_node():
    n = N
    assert solve_function(n, ()) is solve_function(n, ())
    assert slogdet_function(n) is slogdet_function(n)
    A, b = sg.symbols("A", (n, n)), sg.symbols("b", n)
    assert la.solve(A, b)[0] is la.solve(A, b)[0]


def test_symbolic_tools_that_cannot_take_a_native_call_say_so():
    n = N
    A, b, x, _ = _function(n)
    with pytest.raises(sg.SympyConversionError, match=r"solve10 \(linear solve.*no closed form"):
        sg.to_sympy(x[0])
    with pytest.raises(sg.DifferentiationError, match="solve10"):
        sg.taylor(x, b, np.ones(n), 2)


def test_c_code_size_does_not_grow_with_n():
    small, large = solve_function(12, ()).c_code(), solve_function(60, ()).c_code()
    assert abs(len(large) - len(small)) < 100


def test_cuda_source_of_a_solve_builds_for_the_host():
    n = N
    rng = np.random.default_rng(10)
    S = solve_function(n, ())
    try:
        C = S.compile(target="cuda-host")
    except sg.CompileError as exc:   # no C++ compiler on this machine
        pytest.skip(f"no host C++ build: {exc}")
    Av, bv = _matrix(rng, n, 3.0)[None].repeat(3, 0), rng.normal(size=(3, n))
    got = np.asarray(C.batch(Av, bv)[0] if isinstance(C.batch(Av, bv), tuple) else C.batch(Av, bv))
    np.testing.assert_allclose(got, np.linalg.solve(Av, bv[..., None])[..., 0], rtol=1e-12)


def test_bad_shapes_for_the_native_path_raise_clearly():
    n = N
    A = sg.symbols("A", (n, n))
    with pytest.raises(sg.ShapeError, match=r"b must have shape \(10,\) or \(10, k\)"):
        la.solve(A, sg.symbols("b", n + 1))
    with pytest.raises(sg.ShapeError, match="must be square"):
        la.det(sg.symbols("A", (n, n + 1)))
    with pytest.raises(sg.ShapeError, match=r"expected shape \(10, 10\)"):
        solve_function(n, ())(sg.symbols("B", (n, 2)), sg.symbols("b", n))


def test_functions_calling_solve_nodes_save_load_and_pickle():
    from symgraph.serialize import from_bytes, to_bytes

    n = N
    rng = np.random.default_rng(11)
    A, b, x, F = _function(n)
    G = sg.Function("g", [A, b], [x, sg.grad(x.sum(), A)])
    Av, bv = _matrix(rng, n, 3.0), rng.normal(size=n)
    for H in (from_bytes(to_bytes(G)), pickle.loads(pickle.dumps(G))):
        assert H.listing(None) == G.listing(None)
        for got, want in zip(H.compile()(Av, bv), G.compile()(Av, bv)):
            np.testing.assert_array_equal(got, want)
    assert from_bytes(to_bytes(solve_function(n, (2,)))) is solve_function(n, (2,))


def test_forged_native_records_are_refused():
    from symgraph.native import load_native

    for record in [("native", "solve", 10 ** 6, ()), ("native", "solve", 3, (0,)), ("native", "slogdet", "3"),
                   ("native", "solve", True, ()), ("native", "os.system", 1), ("native",)]:
        with pytest.raises(sg.SerializationError, match="record"):
            load_native(record, [], "record")


def test_cuda_source_of_rootfinder_and_lookup_nodes_builds_for_the_host():
    z, p, q = sg.symbols("z"), sg.symbols("p"), sg.symbols("q")
    R = sg.rootfinder("cubic", sg.Function("c", [z, p], [z ** 3 + z - p]))
    g = np.linspace(0.0, 10.0, 1001)
    S = sg.interpolant("s", "bspline", g, np.sin(g))
    F = sg.Function("f", [q], [R(1.0, q), sg.grad(R(1.0, q), q), S(q), sg.grad(S(q), q)])
    try:
        C = F.compile(target="cuda-host")
    except sg.CompileError as exc:   # no C++ compiler on this machine
        pytest.skip(f"no host C++ build: {exc}")
    pts = np.array([10.0, 2.0, 5.5])
    for got, want in zip(C.batch(pts), F.compile().batch(pts)):
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)
