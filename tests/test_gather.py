"""sg.gather: numpy's take on arrays of Exprs with the index table checked first.

Oracles: numpy's own ``take`` on the same arrays (values), the unrolled model
written row by row (derivatives through a map called on gathered rows, in the
VM and compiled), and the error messages for every bad input.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import symgraph as sg
from strategies import module_cache  # noqa: F401  autouse: a cache per module

HAVE_CC = shutil.which("cc") is not None or shutil.which("gcc") is not None
needs_cc = pytest.mark.skipif(not HAVE_CC, reason="no C compiler")


# ------------------------------------------------------- values


@pytest.mark.parametrize("axis", [0, 1, -1, -2])
@pytest.mark.parametrize("index", [[2, 0, 2, 1], np.array([[1, 1], [0, 2]], dtype=np.int32), np.uint8(2), 0,
                                   np.zeros(0, dtype=np.int64), []])
def test_same_as_numpy_take(axis, index):
    x = sg.symbols("x", (3, 3))
    got = sg.gather(x, index, axis=axis)
    want = np.take(x, np.asarray(index, dtype=np.intp), axis=axis)
    assert got.shape == want.shape and got.dtype == object
    assert all(a is b for a, b in zip(got.ravel(), want.ravel()))  # the same nodes, nothing new in the graph


def test_numbers_mixed_in_and_plain_arrays_keep_their_dtype():
    a = np.array([sg.symbols("a"), 2.5, 3], dtype=object)
    got = sg.gather(a, [1, 0, 1, 2])
    assert got[0] == 2.5 and got[1] is a[0] and got[3] == 3
    f = np.arange(12.0).reshape(4, 3)
    np.testing.assert_array_equal(sg.gather(f, [3, 3, 0]), f[[3, 3, 0]])
    assert sg.gather(f, [3, 3, 0]).dtype == np.float64
    assert sg.gather([[1, 2], [3, 4]], [1]).tolist() == [[3, 4]]  # nested lists


def test_repeats_and_a_3d_array():
    x = sg.symbols("x", (2, 3, 4))
    idx = np.array([3, 0, 0, 3, 1])
    got, want = sg.gather(x, idx, axis=2), x[:, :, idx]
    assert got.shape == want.shape == (2, 3, 5) and all(a is b for a, b in zip(got.ravel(), want.ravel()))


# ------------------------------------------------------- derivatives through a gathered map


def _body() -> sg.Function:
    cam, pt = sg.symbols("cam", 3), sg.symbols("pt", 2)
    return sg.Function("b", [cam, pt], [[sg.sin(cam[0] * pt[0]) + cam[1] / (2 + pt[1] ** 2), cam[2] * pt[0] * pt[1]]])


def _by_hand(c: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.array([sg.sin(c[0] * p[0]) + c[1] / (2 + p[1] ** 2), c[2] * p[0] * p[1]], dtype=object)


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=needs_cc)], ids=["vm", "c"])
def test_derivatives_through_a_gathered_map_equal_the_unrolled_ones(compiled):
    rng = np.random.default_rng(0)
    n, n_cams, n_pts = 40, 3, 9
    cams, pts = sg.symbols("cams", (n_cams, 3)), sg.symbols("pts", (n_pts, 2))
    ci, pi = rng.integers(0, n_cams, n), rng.integers(0, n_pts, n)  # repeats
    unknowns = np.concatenate([cams.ravel(), pts.ravel()])
    r = _body().map(n)(sg.gather(cams, ci), sg.gather(pts, pi)).reshape(-1)
    u = np.concatenate([_by_hand(cams[a], pts[b]) for a, b in zip(ci, pi)])
    f, fu = np.sum(r * r), np.sum(u * u)
    J, Ju = sg.jacobian(r, unknowns), sg.jacobian(u, unknowns)
    F = sg.Function("g", [cams, pts], [r, sg.grad(f, unknowns), J.values])
    Fu = sg.Function("gu", [cams, pts], [u, sg.grad(fu, unknowns), Ju.values])
    args = (rng.uniform(-1, 1, (n_cams, 3)), rng.uniform(-1, 1, (n_pts, 2)))
    rv, gv, jv = (F.compile() if compiled else F)(*args)
    ruv, guv, juv = Fu(*args)
    np.testing.assert_allclose(rv, ruv, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(gv, guv, rtol=1e-12, atol=1e-13)
    dense, dense_u = np.zeros((len(r), len(unknowns))), np.zeros((len(u), len(unknowns)))
    dense[J.rows, J.cols] = jv
    dense_u[Ju.rows, Ju.cols] = juv
    np.testing.assert_allclose(dense, dense_u, rtol=1e-12, atol=1e-13)
    assert set(zip(J.rows.tolist(), J.cols.tolist())) == set(zip(Ju.rows.tolist(), Ju.cols.tolist()))


# ------------------------------------------------------- bad input


@pytest.mark.parametrize("index, where, value", [([0, 3], "index[1]", 3), ([[0, 1], [5, 2]], "index[1, 0]", 5),
                                                 ([0, -1], "index[1]", -1), (7, "index", 7),
                                                 (np.array([2, 9, 9], dtype=np.uint64), "index[1]", 9)])
def test_out_of_range_names_the_position_the_value_and_the_range(index, where, value):
    x = sg.symbols("x", (3, 2))
    with pytest.raises(sg.IndexOutOfRangeError) as info:
        sg.gather(x, index)
    message = str(info.value)
    assert message.startswith(f"gather: {where} = {value} is out of range for axis 0 of array")
    assert "valid indices are 0 <= i < 3" in message and "shape (3, 2)" in message
    assert ("negative indices are refused" in message) == (value < 0)
    assert isinstance(info.value, IndexError) and isinstance(info.value, sg.SymgraphError)


def test_out_of_range_along_another_axis_and_an_empty_axis():
    x = sg.symbols("x", (2, 3))
    with pytest.raises(sg.IndexOutOfRangeError, match=r"index\[0\] = 3 .* axis 1 .* 0 <= i < 3 \(1 of 2 entries"):
        sg.gather(x, [3, 0], axis=-1)
    with pytest.raises(sg.IndexOutOfRangeError, match="the axis is empty"):
        sg.gather(np.zeros((0, 2)), [0])


@pytest.mark.parametrize("index, match", [([0.0, 1.0], "integer dtype, got dtype float64"),
                                          ([True, False], "bools are masks"), (True, "got a bool"),
                                          (sg.symbols("i"), "symbolic Expr"),
                                          (np.array([0, sg.symbols("i")], dtype=object), "symbolic Exprs"),
                                          (["0", "1"], "integer dtype, got dtype <U1")])
def test_index_that_is_not_integers_is_refused(index, match):
    with pytest.raises(sg.DTypeError, match=match):
        sg.gather(sg.symbols("x", 3), index)


@pytest.mark.parametrize("array, axis, match", [(sg.symbols("x", 3), 1, "axis 1 is not an axis of array with shape"),
                                                (sg.symbols("x", 3), -2, "valid: -1 <= axis < 1"),
                                                (sg.symbols("x", 3), 0.0, "axis must be an int"),
                                                (sg.symbols("x", 3), True, "axis must be an int"),
                                                (np.array(1.0), 0, "0-d array"),
                                                (sg.symbols("x"), 0, "single Expr"),
                                                ([[1, 2], [3]], 0, "rectangular")])
def test_bad_array_or_axis_is_refused(array, axis, match):
    with pytest.raises(sg.ShapeError, match=match):
        sg.gather(array, [0], axis=axis)


def test_array_of_strings_is_refused_and_ragged_index_too():
    with pytest.raises(sg.DTypeError, match="must hold Exprs or real numbers, got dtype <U1"):
        sg.gather(np.array(["a", "b"]), [0])
    with pytest.raises(sg.ShapeError, match="index must be rectangular"):
        sg.gather(sg.symbols("x", 3), [[0, 1], [2]])
