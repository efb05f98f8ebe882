"""sg.linalg: solve, inv, det, slogdet, logdet, cholesky on symbolic matrices.

Oracles: numpy.linalg (values, on random and pivot-needing matrices), the
other backend (compiled C vs the numpy VM), closed forms of derivatives
(grad logdet = inv(A).T, d solve / d b = inv(A), ridge regression, the
Hessian of logdet) and central finite differences.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import symgraph as sg
from symgraph import linalg as la

PERM3 = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
# Gauss without pivoting loses all digits on this one (pivot 1e-20).
TINY_PIVOT = np.array([[1e-20, 1.0, 2.0], [1.0, 1.0, 0.0], [3.0, -1.0, 1.0]])


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "symgraph-cache"))


def _all_outputs(n: int, k: int = 2) -> tuple[sg.Function, list]:
    """A Function of (A, b, B) returning every linalg result, and the output names."""
    A, b, B = sg.symbols("A", (n, n)), sg.symbols("b", n), sg.symbols("B", (n, k))
    s, l = la.slogdet(A)
    outs = [la.solve(A, b), la.solve(A, B), la.inv(A), la.det(A), s, l, la.logdet(A)]
    return sg.Function("all", [A, b, B], outs), ["solve_v", "solve_m", "inv", "det", "sign", "logabs", "logdet"]


def _numpy_outputs(A: np.ndarray, b: np.ndarray, B: np.ndarray) -> list:
    s, l = np.linalg.slogdet(A)
    with np.errstate(divide="ignore", invalid="ignore"):
        ld = l + np.log(s)
    return [np.linalg.solve(A, b), np.linalg.solve(A, B), np.linalg.inv(A), np.linalg.det(A), s, l, ld]


def _check_all(F, names, A, b, B, rtol=1e-10):
    got = F(A, b, B)
    for name, g, w in zip(names, got, _numpy_outputs(A, b, B)):
        np.testing.assert_allclose(np.asarray(g, dtype=float), w, rtol=rtol, atol=1e-12, err_msg=name)


def _fd_jacobian(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of ``f`` (array -> array) at ``x``: shape (f.size, x.size)."""
    cols = []
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = h
        up, dn = f(x + e.reshape(x.shape)), f(x - e.reshape(x.shape))
        cols.append((np.asarray(up, dtype=float) - np.asarray(dn, dtype=float)).reshape(-1) / (2 * h))
    return np.stack(cols, axis=1)


# ---------------------------------------------------------------- values

@settings(deadline=None, max_examples=30)
@given(n=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_values_match_numpy_on_random_matrices(n, seed):
    rng = np.random.default_rng(seed)
    A, b, B = rng.standard_normal((n, n)), rng.standard_normal(n), rng.standard_normal((n, 2))
    if np.linalg.cond(A) > 1e6:   # same algorithm as LAPACK, but rounding differs by about cond * eps
        return
    F, names = _all_outputs(n)
    _check_all(F, names, A, b, B, rtol=1e-8)


@settings(deadline=None, max_examples=30)
@given(n=st.integers(2, 5), entries=st.lists(st.integers(-2, 2), min_size=25, max_size=25))
def test_values_match_numpy_on_sparse_integer_matrices(n, entries):
    # many zeros: pivoting is needed often, ties between |pivots| are common
    A = np.array(entries[:n * n], dtype=float).reshape(n, n)
    if np.linalg.cond(A) > 1e6:
        return
    b, B = np.arange(1.0, n + 1), np.arange(2.0 * n).reshape(n, 2)
    F, names = _all_outputs(n)
    _check_all(F, names, A, b, B, rtol=1e-11)


@pytest.mark.parametrize("A", [np.array([[0.0, 1.0], [1.0, 0.0]]), PERM3, TINY_PIVOT,
                               np.array([[0.0, 2.0, 1.0], [0.0, 1.0, 3.0], [4.0, 0.0, 1.0]]),
                               np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 2.0], [1.0, 2.0, 2.0]])],
                         ids=["swap2", "perm3", "tiny-pivot", "zero-column-head", "zero-after-step"])
def test_values_on_matrices_that_need_pivoting(A):
    n = A.shape[0]
    b, B = np.arange(1.0, n + 1), np.arange(2.0 * n).reshape(n, 2)
    F, names = _all_outputs(n)
    _check_all(F, names, A, b, B, rtol=1e-13)


def test_pivot_order_is_largest_magnitude_first():
    # the factor of 1e-20 * (1/1e-20) would be 1 without pivoting and destroy the other rows
    A = sg.symbols("A", (3, 3))
    F = sg.Function("x", [A], [la.solve(A, np.ones(3, dtype=object))])
    np.testing.assert_allclose(F(TINY_PIVOT), np.linalg.solve(TINY_PIVOT, np.ones(3)), rtol=1e-15)


def test_cholesky_matches_numpy():
    rng = np.random.default_rng(3)
    for n in (1, 2, 4, 7):
        M = rng.standard_normal((n, n))
        S = M @ M.T + n * np.eye(n)
        A = sg.symbols("A", (n, n))
        L = sg.Function("chol", [A], [la.cholesky(A)])(S)
        np.testing.assert_allclose(L, np.linalg.cholesky(S), rtol=1e-13, atol=1e-15)


def test_cholesky_reads_only_the_lower_triangle():
    A = sg.symbols("A", (3, 3))
    assert not {A[0, 1], A[0, 2], A[1, 2]} & set(sg.free_symbols(list(la.cholesky(A).ravel())))


def test_largest_expanded_size_works():
    n = la.MAX_EXPANDED_SIZE
    rng = np.random.default_rng(8)
    A, b, B = rng.standard_normal((n, n)), rng.standard_normal(n), rng.standard_normal((n, 2))
    F, names = _all_outputs(n)
    _check_all(F, names, A, b, B, rtol=1e-9)


def test_numeric_arrays_are_numpy():
    rng = np.random.default_rng(1)
    A, b = rng.standard_normal((4, 4)), rng.standard_normal(4)
    S = A @ A.T + np.eye(4)
    assert np.array_equal(la.solve(A, b), np.linalg.solve(A, b))
    assert np.array_equal(la.inv(A), np.linalg.inv(A))
    assert la.det(A) == np.linalg.det(A) and la.slogdet(A) == np.linalg.slogdet(A)
    assert la.logdet(S) == pytest.approx(np.log(np.linalg.det(S)), rel=1e-13)
    assert np.array_equal(la.cholesky(S), np.linalg.cholesky(S))


def test_mixed_numeric_matrix_and_symbolic_rhs():
    b = sg.symbols("b", 2)
    A = np.array([[0.0, 2.0], [4.0, 1.0]])
    x = la.solve(A, b)
    assert x.dtype == object and x.shape == (2,)
    np.testing.assert_allclose(sg.Function("x", [b], [x])(np.array([2.0, 9.0])), [2.0, 1.0], rtol=1e-15)


def test_results_compose_with_matmul():
    A = sg.symbols("A", (3, 3))
    F = sg.Function("eye", [A], [la.inv(A) @ A, A @ la.solve(A, np.eye(3))])
    for got in F(PERM3 + 0.5 * np.eye(3)):
        np.testing.assert_allclose(got, np.eye(3), atol=1e-14)


def test_compiled_c_matches_vm():
    rng = np.random.default_rng(11)
    n = 4
    A, b, B = rng.standard_normal((n, n)), rng.standard_normal(n), rng.standard_normal((n, 2))
    F, names = _all_outputs(n)
    C = F.compile()
    for M in (A, np.eye(n)[[2, 0, 3, 1]] + 1e-3 * A):
        for name, c, v in zip(names, C(M, b, B), F(M, b, B)):
            np.testing.assert_allclose(c, v, rtol=1e-13, atol=1e-15, err_msg=name)
    _check_all(C, names, A, b, B, rtol=1e-10)


# ---------------------------------------------------------------- derivatives

def test_grad_of_logdet_is_inverse_transpose():
    rng = np.random.default_rng(5)
    n = 4
    A = sg.symbols("A", (n, n))
    G = sg.Function("g", [A], [sg.grad(la.logdet(A), A), sg.grad(la.slogdet(A)[1], A)])
    M = rng.standard_normal((n, n))
    M = M @ M.T + np.eye(n)   # det > 0
    g1, g2 = G(M)
    np.testing.assert_allclose(g1, np.linalg.inv(M).T, rtol=1e-11)
    np.testing.assert_allclose(g2, np.linalg.inv(M).T, rtol=1e-11)
    # a pivot-needing matrix with negative determinant: grad of log|det| is still inv(A).T
    A3 = sg.symbols("A", (3, 3))
    G3 = sg.Function("g3", [A3], [sg.grad(la.slogdet(A3)[1], A3)])
    P = PERM3 + 0.1 * np.eye(3)
    np.testing.assert_allclose(G3(P), np.linalg.inv(P).T, rtol=1e-12)


def test_grad_of_det_is_det_times_inverse_transpose():
    A = sg.symbols("A", (3, 3))
    G = sg.Function("g", [A], [sg.grad(la.det(A), A)])
    for M in (TINY_PIVOT, PERM3 - 0.2):
        np.testing.assert_allclose(G(M), np.linalg.det(M) * np.linalg.inv(M).T, rtol=1e-10, atol=1e-12)


def test_jacobian_of_solve_wrt_b_is_inverse():
    A, b = sg.symbols("A", (3, 3)), sg.symbols("b", 3)
    J = sg.Function("J", [A, b], [sg.jacobian(la.solve(A, b), b)])
    for M in (TINY_PIVOT, PERM3):
        np.testing.assert_allclose(J(M, np.ones(3)).toarray(), np.linalg.inv(M), rtol=1e-12, atol=1e-15)


def test_jacobian_of_solve_wrt_A_matches_finite_differences():
    A, b = sg.symbols("A", (3, 3)), sg.symbols("b", 3)
    x = la.solve(A, b)
    J = sg.Function("J", [A, b], [sg.jacobian(x, A)])
    rng = np.random.default_rng(2)
    M, b0 = rng.standard_normal((3, 3)), rng.standard_normal(3)
    fd = _fd_jacobian(lambda m: np.linalg.solve(m, b0), M)
    np.testing.assert_allclose(J(M, b0).toarray(), fd, rtol=1e-6, atol=1e-8)
    # closed form: dx/dA_jk = -inv(A)[:, j] x_k
    Ai, x0 = np.linalg.inv(M), np.linalg.solve(M, b0)
    np.testing.assert_allclose(J(M, b0).toarray(), -np.einsum("ij,k->ijk", Ai, x0).reshape(3, 9), rtol=1e-11)


def test_ridge_regression_derivative_matches_closed_form():
    # w(theta) = (X'X + theta I)^{-1} X'y;  dw/dtheta = -(X'X + theta I)^{-1} w
    rng = np.random.default_rng(7)
    X, y = rng.standard_normal((20, 4)), rng.standard_normal(20)
    theta = sg.symbols("theta", 1)
    w = la.solve(X.T @ X + theta[0] * np.eye(4), X.T @ y)
    F = sg.Function("ridge", [theta], [w, sg.jacobian(w, theta)])
    t0 = 0.7
    w0, dw = F(np.array([t0]))
    K = X.T @ X + t0 * np.eye(4)
    np.testing.assert_allclose(w0, np.linalg.solve(K, X.T @ y), rtol=1e-12)
    np.testing.assert_allclose(dw.toarray()[:, 0], -np.linalg.solve(K, w0), rtol=1e-11)


def test_hessian_of_logdet_matches_closed_form_and_finite_differences():
    n = 3
    A = sg.symbols("A", (n, n))
    ld = la.logdet(A)
    F = sg.Function("h", [A], [sg.hessian(ld, A)])
    G = sg.Function("g", [A], [sg.grad(ld, A)])
    M = np.array([[4.0, 1.0, 0.5], [0.3, 3.0, 1.0], [1.0, 0.2, 5.0]])
    H = F(M).toarray()
    fd = _fd_jacobian(G, M, h=1e-5)
    np.testing.assert_allclose(H, fd, rtol=1e-6, atol=1e-8)
    Ai = np.linalg.inv(M)   # d2 logdet / dA_ij dA_kl = -inv(A)_li inv(A)_jk
    np.testing.assert_allclose(H, -np.einsum("li,jk->ijkl", Ai, Ai).reshape(9, 9), rtol=1e-11, atol=1e-14)


def test_hessian_of_logdet_on_pivot_needing_matrix():
    A = sg.symbols("A", (3, 3))
    s, l = la.slogdet(A)
    F = sg.Function("h", [A], [sg.hessian(l, A)])
    P = PERM3 + 0.05 * np.arange(9.0).reshape(3, 3)
    Ai = np.linalg.inv(P)
    np.testing.assert_allclose(F(P).toarray(), -np.einsum("li,jk->ijkl", Ai, Ai).reshape(9, 9),
                               rtol=1e-10, atol=1e-12)


def test_cholesky_jacobian_matches_finite_differences():
    A = sg.symbols("A", (3, 3))
    J = sg.Function("J", [A], [sg.jacobian(la.cholesky(A), A)])
    S = np.array([[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]])
    # cholesky reads the lower triangle: differentiate tril-based numpy cholesky
    fd = _fd_jacobian(lambda m: np.linalg.cholesky(np.tril(m) + np.tril(m, -1).T), S)
    np.testing.assert_allclose(J(S).toarray(), fd, rtol=1e-6, atol=1e-8)


def test_derivatives_compile():
    A, b = sg.symbols("A", (3, 3)), sg.symbols("b", 3)
    F = sg.Function("d", [A, b], [sg.grad(la.logdet(A), A), sg.jacobian(la.solve(A, b), A)])
    M = PERM3 + 0.3 * np.eye(3)
    vm, c = F(M, np.ones(3)), F.compile()(M, np.ones(3))
    np.testing.assert_allclose(c[0], vm[0], rtol=1e-14)
    np.testing.assert_allclose(c[1].toarray(), vm[1].toarray(), rtol=1e-14)


# ---------------------------------------------------------------- singular matrices

def test_singular_matrices_give_documented_values():
    A, b = sg.symbols("A", (2, 2)), sg.symbols("b", 2)
    s, l = la.slogdet(A)
    F = sg.Function("sing", [A, b], [la.det(A), s, l, la.logdet(A), la.solve(A, b), la.inv(A)])
    for M in (np.array([[1.0, 2.0], [2.0, 4.0]]), np.zeros((2, 2)), np.array([[0.0, 1.0], [0.0, 1.0]])):
        for G in (F, F.compile()):
            d, sv, lv, ldv, x, Ai = G(M, np.ones(2))
            assert d == 0.0 and sv == 0.0 and lv == -np.inf and ldv == -np.inf
            assert not np.isfinite(x).all() and not np.isfinite(Ai).all()
    assert np.linalg.slogdet(np.array([[1.0, 2.0], [2.0, 4.0]])) == (0.0, -np.inf)   # as numpy


def test_negative_determinant_logdet_is_nan_and_indefinite_cholesky_is_nan():
    A = sg.symbols("A", (2, 2))
    F = sg.Function("neg", [A], [la.logdet(A), la.cholesky(A)])
    with np.errstate(invalid="ignore"):
        ld, L = F(np.array([[0.0, 1.0], [1.0, 0.0]]))
        assert np.isnan(ld)
        ld, L = F(np.array([[1.0, 2.0], [2.0, 1.0]]))
    assert np.isnan(L[1, 1])


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("func", [la.inv, la.det, la.slogdet, la.logdet, la.cholesky])
def test_non_square_and_non_2d_raise_shape_error(func):
    with pytest.raises(sg.ShapeError, match=r"A must be square.*\(2, 3\)"):
        func(sg.symbols("A", (2, 3)))
    with pytest.raises(sg.ShapeError, match=r"A must be a 2-D.*\(3,\)"):
        func(sg.symbols("A", 3))
    with pytest.raises(sg.ShapeError, match=r"A must be a 2-D.*\(2, 2, 2\)"):
        func(np.ones((2, 2, 2)))
    with pytest.raises(sg.ShapeError, match="empty"):
        func(np.zeros((0, 0), dtype=object))


def test_solve_bad_shapes_name_the_argument():
    A = sg.symbols("A", (3, 3))
    with pytest.raises(sg.ShapeError, match=r"b must have shape \(3,\) or \(3, k\).*\(2,\)"):
        la.solve(A, sg.symbols("b", 2))
    with pytest.raises(sg.ShapeError, match=r"b must have shape.*\(3, 1, 1\)"):
        la.solve(A, np.ones((3, 1, 1)))
    with pytest.raises(sg.ShapeError, match=r"A must be square.*\(3, 2\)"):
        la.solve(sg.symbols("A", (3, 2)), sg.symbols("b", 3))
    with pytest.raises(ValueError):   # ShapeError is a ValueError too
        la.solve(np.ones((2, 2)), np.ones(3))


def test_cholesky_beyond_its_expansion_limit_raises():
    n = la.MAX_CHOLESKY_SIZE + 1
    with pytest.raises(sg.ShapeError, match=r"expanded for cholesky only up to n = 64"):
        la.cholesky(sg.symbols("A", (n, n)))
    assert la.det(np.eye(n)) == 1.0   # numeric matrices have no limit


def test_bad_entries_raise_dtype_errors_naming_the_argument():
    A = sg.symbols("A", (2, 2))
    mixed = np.array([[A[0, 0], 1j], [2.0, 3.0]], dtype=object)
    with pytest.raises(sg.DTypeError, match=r"linalg.det: A mixes symbols with complex"):
        la.det(mixed)
    with pytest.raises(sg.DTypeError, match=r"linalg.solve: b mixes symbols with complex"):
        la.solve(A, np.array([1j, 2.0]))
    with pytest.raises(sg.DTypeError, match=r"linalg.inv: A must hold numbers or Exprs"):
        la.inv([["a", "b"], ["c", "d"]])
    with pytest.raises(sg.DTypeError, match=r"linalg.solve: b must hold numbers or Exprs"):
        la.solve(np.eye(2), ["a", "b"])
    with pytest.raises(sg.SymgraphError, match=r"linalg.solve: b has an entry"):
        la.solve(A, np.array([None, 1.0], dtype=object))
    # numbers only, complex or integer: numpy itself
    np.testing.assert_allclose(la.solve(2j * np.eye(2), [1, 2]), np.linalg.solve(2j * np.eye(2), [1, 2]))
    assert la.det(np.array([[1, 2], [3, 4]])) == np.linalg.det(np.array([[1, 2], [3, 4]]))


def test_mixed_matrix_list_rhs_one_by_one_and_empty_rhs():
    A, b, a = sg.symbols("A", (2, 2)), sg.symbols("b", 2), sg.symbols("a", (1, 1))
    M = np.array([[A[0, 0], 2.0], [3, 4.0]], dtype=object)       # floats, an int and one Expr
    F = sg.Function("f", [A, b], [la.det(M), la.solve(M, [b[0], 1.0]), la.solve(A, np.zeros((2, 0)))])
    d, x, empty = F(np.array([[5.0, 0.0], [0.0, 0.0]]), np.array([1.0, 0.0]))
    Mn = np.array([[5.0, 2.0], [3.0, 4.0]])
    assert float(d) == pytest.approx(np.linalg.det(Mn), rel=1e-14)
    np.testing.assert_allclose(x, np.linalg.solve(Mn, [1.0, 1.0]), rtol=1e-14)
    assert np.asarray(empty).shape == (2, 0)
    G = sg.Function("g", [a], [la.inv(a), la.det(a), la.logdet(a), la.cholesky(a)])
    for value in (4.0, -2.0):
        inv, det, logdet, chol = G(np.array([[value]]))
        assert float(np.ravel(inv)[0]) == 1 / value and float(det) == value
        assert (float(logdet) == np.log(value)) if value > 0 else np.isnan(float(logdet))
        assert (float(np.ravel(chol)[0]) == 2.0) if value > 0 else np.isnan(float(np.ravel(chol)[0]))


def test_values_and_derivatives_are_continuous_across_a_pivot_tie():
    A, b = sg.symbols("A", (3, 3)), sg.symbols("b", 3)
    x = la.solve(A, b)
    F = sg.Function("f", [A, b], [x, la.det(A), sg.jacobian(x, b), sg.grad(la.det(A), A)])
    M = np.array([[1.0, 2.0, 0.0], [-1.0, 3.0, 1.0], [1.0, 0.0, 2.0]])   # |a00| = |a10| = |a20|: ties
    rhs = np.array([1.0, 2.0, 3.0])
    for h in (0.0, 1e-9, -1e-9):
        P = M.copy()
        P[1, 0] -= h                                                   # each side of the tie
        xs, d, Jb, gd = F(P, rhs)
        np.testing.assert_allclose(xs, np.linalg.solve(P, rhs), rtol=1e-12)
        np.testing.assert_allclose(float(d), np.linalg.det(P), rtol=1e-12)
        np.testing.assert_allclose(np.asarray(Jb.toarray() if hasattr(Jb, "toarray") else Jb, dtype=float),
                                   np.linalg.inv(P), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(np.asarray(gd, dtype=float), np.linalg.det(P) * np.linalg.inv(P).T,
                                   rtol=1e-12, atol=1e-12)
