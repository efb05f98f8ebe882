"""SparseExpr: a sparse matrix of expressions (COO triplets with a shape).

Jacobians and Hessians are returned as SparseExpr holding only structural
nonzeros. As a Function output, a SparseExpr evaluates to a
``scipy.sparse.csc_matrix`` (or ``coo`` on request) with the same pattern
every call; its nonzeros sit on the Tape in the SparseExpr's own order.

>>> import symgraph as sg
>>> x = sg.symbols("x", 2)
>>> S = SparseExpr([0, 1], [1, 0], [x[0], 2 * x[1]], (2, 2))
>>> F = sg.Function("f", [x], [S])
>>> F([1.0, 3.0]).toarray()
array([[0., 1.],
       [6., 0.]])
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .errors import ShapeError


class SparseExpr:
    """Sparse matrix of Expr: ``values[k]`` sits at ``(rows[k], cols[k])``.

    Args:
        rows, cols: int sequences of equal length (no duplicate positions).
        values: Exprs or numbers, one per position.
        shape: ``(n_rows, n_cols)``.

    Derivatives (``sg.jacobian``, ``sg.hessian``) also set ``mode``
    (``"forward"``, ``"reverse"`` or ``"star"``) and ``n_colors`` (number of
    compressed sweeps used); both are None otherwise.
    """

    mode: str | None = None
    n_colors: int | None = None

    def __init__(self, rows: Sequence[int], cols: Sequence[int], values: Sequence[Any],
                 shape: tuple[int, int]) -> None:
        from .array import as_expr_array

        self.shape = matrix_shape(shape, "SparseExpr")
        self.rows = index_array(rows, "SparseExpr", "rows")
        self.cols = index_array(cols, "SparseExpr", "cols")
        self.values = as_expr_array(list(values) if not isinstance(values, np.ndarray) else values).reshape(-1)
        if not (len(self.rows) == len(self.cols) == len(self.values)):
            raise ShapeError(f"SparseExpr: rows, cols and values must have one length, got "
                             f"{len(self.rows)}, {len(self.cols)}, {len(self.values)}")
        if len(self.rows) and (self.rows.min() < 0 or self.rows.max() >= self.shape[0]
                               or self.cols.min() < 0 or self.cols.max() >= self.shape[1]):
            raise ShapeError(f"SparseExpr: an index lies outside the shape {self.shape}")
        if len(set(zip(self.rows.tolist(), self.cols.tolist()))) != len(self.rows):
            raise ShapeError("SparseExpr: duplicate (row, col) positions")

    @property
    def nnz(self) -> int:
        """Number of structural nonzeros."""
        return len(self.values)

    def to_dense(self) -> np.ndarray:
        """Dense object array of Expr (structural zeros are the constant 0).

        >>> import symgraph as sg
        >>> SparseExpr([1], [0], [sg.symbols("y")], (2, 1)).to_dense().tolist()
        [[Expr(0)], [Expr(y)]]
        """
        from .expr import const

        out = np.full(self.shape, const(0.0), dtype=object)
        out[self.rows, self.cols] = self.values
        return out

    def pattern(self):
        """The sparsity pattern as a ``scipy.sparse.coo_matrix`` of ones."""
        import scipy.sparse as sp

        return sp.coo_matrix((np.ones(self.nnz), (self.rows, self.cols)), shape=self.shape)

    def __repr__(self) -> str:
        return f"SparseExpr(shape={self.shape}, nnz={self.nnz})"


def matrix_shape(shape: Any, what: str) -> tuple[int, int]:
    """``shape`` as a pair of non-negative Python ints, or a ShapeError naming ``what``.

    >>> matrix_shape((np.int64(2), 3), "S")
    (2, 3)
    """
    try:
        pair = tuple(shape)
    except TypeError:
        pair = None
    if (pair is None or len(pair) != 2
            or not all(isinstance(n, (int, np.integer)) and not isinstance(n, (bool, np.bool_)) and n >= 0
                       for n in pair)):
        raise ShapeError(f"{what}: shape must be a pair of non-negative ints (n_rows, n_cols), got {shape!r}")
    return int(pair[0]), int(pair[1])


def index_array(values: Any, what: str, name: str) -> np.ndarray:
    """``values`` as a flat int64 array; float, bool or other non-integer data is a DTypeError.

    >>> index_array([0, 2], "S", "rows").tolist()
    [0, 2]
    """
    from .errors import DTypeError

    if isinstance(values, np.ndarray) and values.dtype == np.int64:
        return values.reshape(-1)
    try:
        arr = np.asarray(values)
    except Exception:  # ragged lists and the like
        arr = np.asarray([None])
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise DTypeError(f"{what}: {name} must be integer indices, got an array of dtype {arr.dtype}")
    if arr.dtype.kind == "u" and arr.max() > np.iinfo(np.int64).max:
        raise ShapeError(f"{what}: {name} holds an index too large for int64")
    return arr.astype(np.int64, copy=False).reshape(-1)


def to_scipy(values: np.ndarray, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]):
    """A ``scipy.sparse.csc_matrix`` with the given nonzeros (pattern kept, zeros included)."""
    import scipy.sparse as sp

    return sp.csc_matrix((values, (rows, cols)), shape=shape)


def sorted_unique(values: Any) -> np.ndarray:
    """The distinct values of an integer array, sorted (``np.unique`` without its hash path, slow on big arrays).

    >>> sorted_unique(np.array([3, 1, 3, 0])).tolist()
    [0, 1, 3]
    """
    a = np.asarray(values).reshape(-1)
    if len(a) > 1 and not np.all(a[1:] > a[:-1]):
        a = np.sort(a)
        a = a[np.concatenate([[True], a[1:] != a[:-1]])]
    return a
