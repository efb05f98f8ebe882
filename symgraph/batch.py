"""Batches: many points in one evaluation (``F.batch`` in the VM, ``C.batch`` in C).

Both backends read their arguments with :func:`batch_arguments` and return
the same types in the same layout:

* an argument of shape ``(N,) + shape`` gives each point its own value, one
  of the input's own ``shape`` is *shared* by all N points (a parameter,
  like ``in_axes=None`` in JAX's ``vmap``);
* a dense output comes back as one array of shape ``(N,) + shape``;
* a sparse output (a ``SparseExpr``, e.g. a Jacobian) as one
  :class:`SparseBatch`: the N nonzero vectors as an ``(N, nnz)`` array and
  the compressed-column pattern, which all points share, once.

>>> import numpy as np, symgraph as sg
>>> theta, x = sg.symbols("theta", 2), sg.symbols("x", 2)
>>> F = sg.Function("r", [theta, x], [sg.jacobian(theta * x, theta)])
>>> J = F.batch(np.array([1.0, 2.0]), np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
>>> J
SparseBatch(3 matrices of shape (2, 2), 2 nonzeros each)
>>> J.data.tolist(), J.indices.tolist(), J.indptr.tolist()
([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], [0, 1], [0, 1, 2])
>>> J[1].toarray().tolist()
[[3.0, 0.0], [0.0, 4.0]]
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .errors import ShapeError


class SparseBatch:
    """N sparse matrices with one sparsity pattern: what ``batch`` returns for a sparse output.

    Point ``i``'s matrix is ``scipy.sparse.csc_matrix((data[i], indices, indptr), shape=shape[1:])``,
    the matrix a call at that point returns, with the same ``data`` order.

    Attributes:
        data: ``(N, nnz)`` array; row ``i`` holds point ``i``'s nonzeros in compressed-column order.
        indices, indptr: the compressed-column (CSC) pattern shared by all points, as in
            ``scipy.sparse.csc_matrix`` (read-only arrays).
        shape: ``(N, n_rows, n_cols)``, like a dense batch of the same matrices.

    A SparseBatch is a sequence of ``csc_matrix``: ``len(B)``, ``B[i]``, ``for J in B``,
    ``B.to_list()``; ``B[a:b]`` is a SparseBatch of those points.  ``B.rows`` and ``B.cols``
    give the row and column of each column of ``data`` (e.g. to scatter per-observation
    blocks into one large matrix), ``B.toarray()`` the dense ``(N, n_rows, n_cols)`` array.

    >>> import numpy as np
    >>> B = SparseBatch(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([1, 0]), np.array([0, 1, 2]), (2, 2))
    >>> len(B), B.shape, B.nnz, B.rows.tolist(), B.cols.tolist()
    (2, (2, 2, 2), 2, [1, 0], [0, 1])
    >>> B.toarray()[1].tolist()
    [[0.0, 4.0], [3.0, 0.0]]
    """

    __slots__ = ("data", "indices", "indptr", "_matrix_shape")

    def __init__(self, data: np.ndarray, indices: np.ndarray, indptr: np.ndarray,
                 matrix_shape: tuple[int, int]) -> None:
        if data.ndim != 2 or data.shape[1] != len(indices) or len(indptr) != matrix_shape[1] + 1:
            raise ShapeError(f"SparseBatch: data of shape {data.shape} does not match a pattern of "
                             f"{len(indices)} nonzeros over {matrix_shape[1]} columns")
        self.data = data
        self.indices = _read_only(indices)
        self.indptr = _read_only(indptr)
        self._matrix_shape = (int(matrix_shape[0]), int(matrix_shape[1]))

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(N, n_rows, n_cols)``."""
        return (self.data.shape[0],) + self._matrix_shape

    @property
    def nnz(self) -> int:
        """Structural nonzeros per matrix."""
        return self.data.shape[1]

    @property
    def rows(self) -> np.ndarray:
        """Row of each column of ``data`` (the pattern's ``indices``)."""
        return self.indices

    @property
    def cols(self) -> np.ndarray:
        """Column of each column of ``data``."""
        return np.repeat(np.arange(self._matrix_shape[1], dtype=self.indices.dtype), np.diff(self.indptr))

    def __len__(self) -> int:
        return self.data.shape[0]

    def __getitem__(self, index: Any):
        if isinstance(index, slice):
            return SparseBatch(self.data[index], self.indices, self.indptr, self._matrix_shape)
        return self.matrix(index)

    def __iter__(self) -> Iterator[Any]:
        return (self.matrix(i) for i in range(len(self)))

    def matrix(self, i: int):
        """Point ``i``'s matrix as a ``scipy.sparse.csc_matrix`` (its own copy of the values)."""
        import scipy.sparse as sp

        try:
            row = self.data[int(i)]
        except (TypeError, ValueError):
            raise TypeError(f"SparseBatch indices are ints or slices, got {type(i).__name__}") from None
        return sp.csc_matrix((row.copy(), self.indices.copy(), self.indptr.copy()), shape=self._matrix_shape)

    def to_list(self) -> list:
        """The N matrices as a list of ``scipy.sparse.csc_matrix``."""
        return list(self)

    def toarray(self) -> np.ndarray:
        """The dense ``(N, n_rows, n_cols)`` array (zeros off the pattern)."""
        out = np.zeros(self.shape, dtype=self.data.dtype)
        out[:, self.rows, self.cols] = self.data
        return out

    def __repr__(self) -> str:
        return (f"SparseBatch({len(self)} matrices of shape {self._matrix_shape}, "
                f"{self.nnz} nonzeros each)")


def _read_only(arr: np.ndarray) -> np.ndarray:
    arr = np.array(arr, copy=True)
    arr.flags.writeable = False
    return arr


def csc_order(sparsity: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """``(perm, indices, indptr, shape)`` of a sparse output ``(rows, cols, shape)``.

    ``values[perm]`` puts the output's nonzeros (in its own order) into
    compressed-column order, the order of ``indices``; both backends use it.

    >>> perm, indices, indptr, shape = csc_order((np.array([0, 1]), np.array([1, 0]), (2, 2)))
    >>> perm.tolist(), indices.tolist(), indptr.tolist()
    ([1, 0], [1, 0], [0, 1, 2])
    """
    rows, cols, shape = sparsity
    perm = np.lexsort((rows, cols))
    index_dtype = np.int32 if max(shape) < 2**31 - 1 and len(rows) < 2**31 - 1 else np.int64
    indptr = np.concatenate([[0], np.cumsum(np.bincount(cols, minlength=shape[1]))]).astype(index_dtype)
    return perm, rows[perm].astype(index_dtype), indptr, (int(shape[0]), int(shape[1]))


def batch_arguments(F: Any, args: Sequence[Any], check: Callable) -> tuple[list[np.ndarray], list[bool], int]:
    """The arguments of a batch call: ``(arrays, batched, N)``.

    ``check(k, value)`` converts argument ``k`` to an array (the backend's own
    dtype checks).  An argument whose shape is the input's shape is shared by
    all points (``batched[k]`` False); one of shape ``(N,) + shape`` is a
    batch.  All batches must have the same N; N is 1 when no argument has a
    batch axis.  Anything else is a :class:`~symgraph.errors.ShapeError`.

    >>> import symgraph as sg
    >>> a, b = sg.symbols("a", 2), sg.symbols("b")
    >>> F = sg.Function("f", [a, b], [a * b])
    >>> arrays, batched, n = batch_arguments(F, [np.ones(2), np.arange(4.0)], lambda k, v: np.asarray(v))
    >>> batched, n
    ([False, True], 4)
    """
    arrays, batched, n, first = [], [], None, None
    for k, (value, shape) in enumerate(zip(args, F.input_shapes)):
        arr = check(k, value)
        if arr.shape == shape:
            arrays.append(arr)
            batched.append(False)
            continue
        label = f"{F.name}: argument {k} ({F.input_names[k]!r})"
        if arr.ndim != len(shape) + 1 or arr.shape[1:] != shape:
            raise ShapeError(f"{label}: expected shape (N,) + {shape} for a batch, or {shape} for a value "
                             f"shared by all points, got {arr.shape}")
        if n is not None and arr.shape[0] != n:
            raise ShapeError(f"{label} has {arr.shape[0]} points, but argument {first} "
                             f"({F.input_names[first]!r}) has {n}")
        n, first = (arr.shape[0], k) if n is None else (n, first)
        arrays.append(arr)
        batched.append(True)
    return arrays, batched, 1 if n is None else n
