"""Batches (issue 15): shared arguments, and sparse outputs as one SparseBatch, in the VM and in C.

The oracle for every batch is the per-point call (``F(x_i)`` and ``C(x_i)``);
the VM's ``F.batch`` and the compiled ``C.batch`` must agree bit for bit, in
the same types and layout.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, strategies as st

import symgraph as sg
from codegen import runtime
from symgraph.batch import SparseBatch
from symgraph.sparse import SparseExpr


def bits(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64).view(np.int64)


def same_batch(a, b) -> None:
    """Two batch results (one output) are identical: type, layout and bits."""
    assert type(a) is type(b)
    if isinstance(a, SparseBatch):
        assert a.shape == b.shape and a.data.shape == b.data.shape
        assert (a.indices == b.indices).all() and (a.indptr == b.indptr).all()
        assert (bits(a.data) == bits(b.data)).all()
    else:
        assert a.shape == b.shape and (bits(a) == bits(b)).all()


def same_matrix(a, b) -> None:
    """Two csc_matrix results are identical, down to the order of ``data``."""
    assert a.format == b.format == "csc" and a.shape == b.shape
    assert (a.indptr == b.indptr).all() and (a.indices == b.indices).all() and (bits(a.data) == bits(b.data)).all()


@pytest.fixture(scope="module")
def term():
    """The reproducer's Function: a per-point gradient with the parameters shared by all points."""
    theta, x = sg.symbols("theta", 3), sg.symbols("x", 3)
    F = sg.Function("term", [theta, x], [sg.grad(np.sum((theta - x) ** 2), theta)])
    return F, F.compile()


@pytest.fixture(scope="module")
def residual():
    """Bundle-adjustment-like: per observation, the residual's sparse Jacobian in (camera, point)."""
    cam, pt, obs = sg.symbols("cam", 3), sg.symbols("pt", 2), sg.symbols("obs", 2)
    scale = sg.symbols("scale")
    u = cam[0] * pt[0] + cam[2] * sg.sin(pt[1]) - obs[0]
    v = scale * (cam[1] * pt[1] - obs[1])
    r = np.array([u, v])
    z = np.concatenate([cam, pt])
    F = sg.Function("residual", [cam, pt, obs, scale], [r, sg.jacobian(r, z)],
                    output_names=["r", "J"])
    return F, F.compile()


def test_reproducer_shared_parameters(term):
    """r_batch_shared.py: theta shared by 5 points, no tiling needed; same as tiling and as per-point calls."""
    F, C = term
    X = np.random.default_rng(1).random((5, 3))
    th = np.ones(3)
    got = C.batch(th, X)
    assert got.shape == (5, 3)
    same_batch(got, C.batch(np.broadcast_to(th, (5, 3)), X))
    same_batch(got, F.batch(th, X))
    for i in range(5):
        assert (bits(got[i]) == bits(C(th, X[i]))).all()
    np.testing.assert_allclose(got.sum(axis=0), 2 * (5 * th - X.sum(axis=0)), rtol=1e-14)


def test_sparse_batch_vm_and_c_agree_with_per_point_calls(residual):
    F, C = residual
    rng = np.random.default_rng(2)
    cams, pts, obs = rng.normal(size=(7, 3)), rng.normal(size=(7, 2)), rng.normal(size=(7, 2))
    got, ref = C.batch(cams, pts, obs, 2.0), F.batch(cams, pts, obs, 2.0)
    for a, b in zip(got, ref):
        same_batch(a, b)
    J = got[1]
    assert isinstance(J, SparseBatch) and J.shape == (7, 2, 5) and J.data.shape == (7, J.nnz)
    assert repr(J) == f"SparseBatch(7 matrices of shape (2, 5), {J.nnz} nonzeros each)"
    for i in range(7):
        one_c, one_vm = C(cams[i], pts[i], obs[i], 2.0)[1], F(cams[i], pts[i], obs[i], 2.0)[1]
        same_matrix(J[i], one_c)
        same_matrix(ref[1][i], one_vm)
        assert (bits(J.data[i]) == bits(one_c.data)).all()


def test_sparse_batch_assembles_a_global_matrix(residual):
    """The common use: per-observation blocks scattered into one sparse Jacobian with rows/cols."""
    F, C = residual
    rng = np.random.default_rng(3)
    n = 4
    cams, pts, obs = rng.normal(size=(n, 3)), rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
    J = C.batch(cams, pts, obs, 0.5)[1]
    # observation i owns rows 2i, 2i+1 and columns 5i..5i+4 of a block-diagonal Jacobian
    rows = (2 * np.arange(n)[:, None] + J.rows[None, :]).ravel()
    cols = (5 * np.arange(n)[:, None] + J.cols[None, :]).ravel()
    big = sp.csc_matrix((J.data.ravel(), (rows, cols)), shape=(2 * n, 5 * n))
    want = sp.block_diag([C(cams[i], pts[i], obs[i], 0.5)[1] for i in range(n)]).toarray()
    assert (big.toarray() == want).all()
    assert (J.toarray() == np.array([m.toarray() for m in J.to_list()])).all()


def test_unsorted_sparse_expr_comes_back_in_compressed_column_order():
    x = sg.symbols("x", 3)
    S = SparseExpr([2, 0, 1], [0, 2, 0], [x[0], 2 * x[1], x[2] ** 2], (3, 3))
    F = sg.Function("s", [x], [S])
    C = F.compile()
    pts = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    got, ref = C.batch(pts), F.batch(pts)
    same_batch(got, ref)
    assert got.indices.tolist() == [1, 2, 0] and got.indptr.tolist() == [0, 2, 2, 3]
    assert got.data.tolist() == [[9.0, 1.0, 4.0], [36.0, 4.0, 10.0]]
    for i in range(2):
        same_matrix(got[i], C(pts[i]))
        same_matrix(ref[i], F(pts[i]))
    pattern = F.output_pattern(0)
    assert (pattern.indices == got.indices).all() and (pattern.indptr == got.indptr).all()
    assert (C.output_pattern(0) != pattern).nnz == 0 and C.output_sparsity is F.output_sparsity


def test_sparse_batch_sequence_protocol():
    B = SparseBatch(np.arange(6.0).reshape(3, 2), np.array([1, 0]), np.array([0, 1, 1, 2]), (2, 3))
    assert len(B) == 3 and B.shape == (3, 2, 3) and B.nnz == 2
    assert B.rows.tolist() == [1, 0] and B.cols.tolist() == [0, 2]
    assert B[-1].toarray().tolist() == [[0.0, 0.0, 5.0], [4.0, 0.0, 0.0]]
    sub = B[1:]
    assert isinstance(sub, SparseBatch) and len(sub) == 2 and sub.data.tolist() == [[2.0, 3.0], [4.0, 5.0]]
    mats = B.to_list()
    assert len(mats) == 3 and all(m.format == "csc" for m in mats) and [m.data.tolist() for m in B] == \
        B.data.tolist()
    mats[0].data[0] = 99.0  # each matrix owns its values and pattern
    mats[0].indices[0] = 0
    assert B.data[0, 0] == 0.0 and B.indices[0] == 1
    with pytest.raises(ValueError):
        B.indices[0] = 5  # the shared pattern is read-only
    with pytest.raises(TypeError, match="ints or slices"):
        B["a"]
    with pytest.raises(sg.ShapeError, match="does not match a pattern of 2 nonzeros"):
        SparseBatch(np.zeros((3, 3)), np.array([1, 0]), np.array([0, 1, 1, 2]), (2, 3))


def test_output_pattern_of_a_dense_output_and_bad_indices(residual):
    F, C = residual
    assert F.output_pattern(0) is None and C.output_pattern(-2) is None
    assert F.output_pattern(1).shape == (2, 5) and (F.output_pattern(1).data == 1.0).all()
    for bad in (2, -3, 1.0, True, "J"):
        with pytest.raises(sg.InvalidInputError, match=r"output_pattern\(k\) needs an output index in \[0, 2\)"):
            F.output_pattern(bad)


def test_zero_points_and_all_arguments_shared(residual):
    F, C = residual
    for f in (F, C):
        r, J = f.batch(np.zeros((0, 3)), np.zeros((0, 2)), np.zeros(2), 1.0)
        assert r.shape == (0, 2) and isinstance(J, SparseBatch) and J.data.shape == (0, J.nnz)
        assert J.to_list() == [] and J.toarray().shape == (0, 2, 5)
    args = (np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.0]), np.array([0.1, 0.2]), 2.0)
    got, ref = C.batch(*args), F.batch(*args)
    for a, b in zip(got, ref):
        same_batch(a, b)
    assert got[0].shape == (1, 2) and len(got[1]) == 1  # no batch axis anywhere: one point
    same_matrix(got[1][0], C(*args)[1])


def test_shared_arguments_in_blocks(residual, monkeypatch):
    """A shared argument is repeated for blocks of points; tiny blocks give the same bits."""
    F, C = residual
    rng = np.random.default_rng(4)
    cams, obs = rng.normal(size=(11, 3)), rng.normal(size=(11, 2))
    pt = np.array([0.3, -0.7])
    want = C.batch(cams, pt, obs, 1.5)
    for block_doubles in (1, 2, 5, 7):
        monkeypatch.setattr(runtime, "SHARED_BLOCK_DOUBLES", block_doubles)
        got = C.batch(cams, pt, obs, 1.5)
        for a, b in zip(got, want):
            same_batch(a, b)
    for a, b in zip(want, F.batch(cams, pt, obs, 1.5)):
        same_batch(a, b)


def test_batch_argument_errors(residual):
    F, C = residual
    for f in (F, C):
        with pytest.raises(sg.ShapeError, match=r"argument 2 \('obs'\) has 4 points, but argument 0 \('cam'\) has 3"):
            f.batch(np.zeros((3, 3)), np.zeros(2), np.zeros((4, 2)), 1.0)
        with pytest.raises(sg.ShapeError, match=r"argument 1 \('pt'\): expected shape \(N,\) \+ \(2,\) for a batch, "
                                                r"or \(2,\) for a value shared by all points, got \(3, 3\)"):
            f.batch(np.zeros((3, 3)), np.zeros((3, 3)), np.zeros(2), 1.0)
        with pytest.raises(sg.ArgumentCountError, match=r"residual takes 4 argument\(s\)"):
            f.batch(np.zeros((3, 3)))
        with pytest.raises(sg.DTypeError, match=r"argument 3 \('scale'\): expected real numbers"):
            f.batch(np.zeros((3, 3)), np.zeros(2), np.zeros(2), "a")
    with pytest.raises(sg.DTypeError, match=r"argument 3 \('scale'\) is complex; .*F.batch"):
        C.batch(np.zeros((3, 3)), np.zeros(2), np.zeros(2), 1j)
    # the VM takes complex, shared or not (complex step): Jacobian data is complex then
    J = F.batch(np.ones((2, 3)), np.ones(2) + 1e-20j, np.zeros(2), 1.0)[1]
    assert J.data.dtype == np.complex128 and J.shape == (2, 2, 5)


@given(n=st.integers(0, 5), shared=st.lists(st.booleans(), min_size=4, max_size=4), seed=st.integers(0, 2**16))
def test_random_shared_and_batched_arguments_agree(residual, n, shared, seed):
    F, C = residual
    rng = np.random.default_rng(seed)
    shapes = F.input_shapes
    args = [rng.normal(size=s) if sh else rng.normal(size=(n,) + s) for s, sh in zip(shapes, shared)]
    got, ref = C.batch(*args), F.batch(*args)
    for a, b in zip(got, ref):
        same_batch(a, b)
    points = 1 if all(shared) else n
    assert len(got[1]) == points and got[0].shape == (points, 2)
    for i in range(points):
        one = [a if sh else a[i] for a, sh in zip(args, shared)]
        r, J = C(*one)
        assert (bits(got[0][i]) == bits(r)).all()
        same_matrix(got[1][i], J)
