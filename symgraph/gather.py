"""``sg.gather``: numpy's ``take`` on arrays of Exprs, with the index table checked first.

Arguments of a map are usually rows of larger arrays picked by an index
table: the camera and the point of each bundle-adjustment observation,
``cams[cam_idx]`` and ``points[pt_idx]``.  numpy's fancy indexing does that on
object arrays of Exprs too, but a bad table gives a bare ``IndexError`` from
deep inside numpy (or, with a negative entry, silently the wrong row).
:func:`gather` checks the table before anything is built and names what is
wrong: the argument, the first bad position, the bad value and the valid
range.

Negative indices are refused, unlike numpy's: an index table with ``-1`` in
it is nearly always a "missing" marker or an off-by-one, and taking the last
row for it would be a silent wrong answer.  Wrap explicitly
(``index % n``) where counting from the end is meant.

The result is what ``numpy.take(array, index, axis)`` gives: the axis
``axis`` of ``array`` replaced by the shape of ``index`` (a scalar index
drops it), the same elements (the same Expr nodes, so nothing is copied
in the graph), the same dtype.  Calling a map on gathered rows gives one
call node whose derivatives are maps too (see ``F.map``).

>>> import numpy as np, symgraph as sg
>>> cams = sg.symbols("cams", (3, 2))
>>> [str(e) for e in sg.gather(cams, [2, 0, 2]).ravel()]
['cams[2,0]', 'cams[2,1]', 'cams[0,0]', 'cams[0,1]', 'cams[2,0]', 'cams[2,1]']
>>> sg.gather(cams, [0, 3])
Traceback (most recent call last):
...
symgraph.errors.IndexOutOfRangeError: gather: index[1] = 3 is out of range for axis 0 of array, which has 3 entries (shape (3, 2)); valid indices are 0 <= i < 3 (1 of 2 entries out of range)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import DTypeError, IndexOutOfRangeError, ShapeError
from .expr import Expr

__all__ = ["gather", "IndexOutOfRangeError"]

_ARRAY_KINDS = "biufO"  # bool, ints, floats, objects (Exprs and numbers)


def gather(array: Any, index: Any, axis: int = 0) -> np.ndarray:
    """Entries of ``array`` along ``axis`` picked by the integer table ``index`` (``numpy.take``).

    Args:
        array: an object array of Exprs and numbers (as ``sg.symbols`` gives),
            a numeric array, or a nested list of them; at least 1-D.
        index: integers, any shape (a scalar picks one entry and drops the
            axis); each must satisfy ``0 <= i < array.shape[axis]``.
            Repeats are fine.
        axis: the axis to select along; negative counts from the end, as numpy.

    Returns:
        ``numpy.take(array, index, axis)``.

    Raises:
        IndexOutOfRangeError: an entry of ``index`` is negative or too large
            (the message names its position, its value and the valid range).
        DTypeError: ``index`` is not integers (floats, bools, Exprs), or
            ``array`` holds strings or other non-numbers.
        ShapeError: ``array`` is 0-d, or ``axis`` is not one of its axes.

    >>> import numpy as np, symgraph as sg
    >>> x = sg.symbols("x", 4)
    >>> [str(e) for e in sg.gather(x, np.array([[3, 0], [1, 1]])).ravel()]
    ['x[3]', 'x[0]', 'x[1]', 'x[1]']
    >>> sg.gather(np.arange(6.0).reshape(2, 3), [2, 2, 0], axis=1).tolist()
    [[2.0, 2.0, 0.0], [5.0, 5.0, 3.0]]
    """
    arr = _as_array(array)
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ShapeError(f"gather: axis must be an int, got {type(axis).__name__} {axis!r}")
    if arr.ndim == 0:
        raise ShapeError("gather: array must have at least one axis to select along, got a 0-d array")
    if not -arr.ndim <= axis < arr.ndim:
        raise ShapeError(f"gather: axis {axis} is not an axis of array with shape {arr.shape} "
                         f"(valid: {-arr.ndim} <= axis < {arr.ndim})")
    axis = int(axis) % arr.ndim
    table = _index_table(index)
    n = arr.shape[axis]
    bad = (table < 0) | (table >= n)
    if np.any(bad):
        where = np.argwhere(bad)[0] if table.ndim else ()
        position = "index" + ("[" + ", ".join(map(str, where.tolist())) + "]" if table.ndim else "")
        value = table[tuple(where)] if table.ndim else table[()]
        valid = f"valid indices are 0 <= i < {n}" if n else "the axis is empty, so no index is valid"
        why = " (negative indices are refused; wrap with index % n to count from the end)" if value < 0 else ""
        count = f" ({int(np.count_nonzero(bad))} of {table.size} entries out of range)" if table.ndim else ""
        raise IndexOutOfRangeError(f"gather: {position} = {int(value)} is out of range for axis {axis} of array, "
                                   f"which has {n} entries (shape {arr.shape}); {valid}{why}{count}")
    return np.take(arr, table.astype(np.intp), axis=axis)


def _as_array(array: Any) -> np.ndarray:
    """``array`` as an ndarray (lists holding Exprs become object arrays); non-numbers refused."""
    if isinstance(array, Expr):
        raise ShapeError("gather: array must have at least one axis to select along, got a single Expr")
    if isinstance(array, np.ndarray):
        arr = array
    else:
        try:
            arr = np.asarray(array)
        except ValueError:  # ragged nested lists
            raise ShapeError("gather: array must be rectangular (nested lists of equal lengths)") from None
    if arr.dtype.kind not in _ARRAY_KINDS:
        raise DTypeError(f"gather: array must hold Exprs or real numbers, got dtype {arr.dtype}")
    return arr


def _index_table(index: Any) -> np.ndarray:
    """``index`` as an integer ndarray, or a clear error naming what it holds instead."""
    if isinstance(index, Expr):
        raise DTypeError("gather: index must be integers known now, got a symbolic Expr "
                         "(index tables are data, not part of the graph)")
    if isinstance(index, (bool, np.bool_)):
        raise DTypeError("gather: index must be integers, got a bool")
    try:
        table = np.asarray(index)
    except ValueError:
        raise ShapeError("gather: index must be rectangular (nested lists of equal lengths)") from None
    if table.size == 0 and table.dtype.kind == "f":  # [] and np.array([]) are float64 in numpy
        return table.astype(np.int64)
    if table.dtype.kind not in "iu":
        if table.dtype.kind == "O" and any(isinstance(v, Expr) for v in table.reshape(-1)):
            raise DTypeError("gather: index must be integers known now, got symbolic Exprs "
                             "(index tables are data, not part of the graph)")
        raise DTypeError(f"gather: index must have an integer dtype, got dtype {table.dtype}"
                         + (" (bools are masks, not indices: use np.flatnonzero(mask))" if table.dtype.kind == "b"
                            else " (round and cast explicitly: np.asarray(index).astype(int))"
                            if table.dtype.kind == "f" else ""))
    return table
