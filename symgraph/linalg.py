"""Linear algebra on symbolic matrices, with numpy.linalg's names.

``solve``, ``inv``, ``det``, ``slogdet``, ``logdet`` and ``cholesky`` take
square 2-D object arrays of :class:`~symgraph.Expr` (as ``sg.symbols("A",
(n, n))`` makes) and return graphs; on plain numeric arrays they are
``numpy.linalg`` itself.  Matrices up to :data:`MAX_EXPANDED_SIZE` are
*expanded*: the factorization is written out as scalar nodes, so results
compile to straight-line C and derivatives of any order come from the graphs
themselves.

* ``solve``, ``inv``, ``det``, ``slogdet`` and ``logdet`` use Gaussian
  elimination with **partial pivoting**, the pivot chosen symbolically: at
  step ``k`` a chain of ``if_else`` swaps, one per remaining row, moves the
  row with the largest ``|a[i, k]|`` up (the first one on ties, as LAPACK's
  ``getrf``), so matrices that need row exchanges (``[[0, 1], [1, 0]]``) are
  handled and the rounding is that of LU with partial pivoting.  ``det`` is
  the product of the pivots times the sign of the permutation.
* ``cholesky`` is the lower factor ``L`` (``A = L L^T``) without pivoting, for
  symmetric positive definite ``A``; it reads only the lower triangle.
* Derivatives differentiate through the chosen branch of each ``if_else``
  (piecewise, as for ``abs``): ``grad(logdet(A), A) == inv(A).T``.
* Beyond ``MAX_EXPANDED_SIZE``, ``solve`` (and ``inv``, ``det``, ``slogdet``,
  ``logdet``) are one call of a native Function (:mod:`symgraph.linsolve`):
  the same pivoted LU, run by numpy in the VM and by fixed-size C loops in
  compiled code, whose derivatives are solves with the same matrix.
  ``cholesky`` is expanded up to ``MAX_CHOLESKY_SIZE``.

Singular and indefinite matrices at evaluation (the graph cannot raise): an
exactly zero pivot is skipped in elimination, as LAPACK does, so ``det`` is
``0`` (or ``-0``), ``slogdet`` is ``(0, -inf)`` and ``logdet`` is ``-inf``, as numpy
gives; ``solve`` and ``inv`` then divide by the zero pivot and give ``inf`` or
``nan`` entries (numpy raises ``LinAlgError`` instead).  ``logdet`` of a
matrix with negative determinant is ``nan``.  ``cholesky`` of a matrix that is
not positive definite gives ``nan`` entries (the square root of a negative
number; numpy raises).  A matrix singular only up to rounding has a tiny
nonzero pivot instead, and gives the same huge values numpy gives.

>>> import numpy as np, symgraph as sg
>>> A = sg.symbols("A", (2, 2))
>>> F = sg.Function("f", [A], [sg.linalg.det(A), sg.linalg.inv(A)])
>>> d, Ai = F(np.array([[0.0, 1.0], [1.0, 0.0]]))
>>> float(d), Ai.tolist()
(-1.0, [[0.0, 1.0], [1.0, 0.0]])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .array import as_expr_array, builder
from .errors import DTypeError, ShapeError, SymgraphError
from .expr import Expr, const

#: Largest ``n`` for which an ``(n, n)`` symbolic matrix is expanded into
#: scalar nodes by ``solve``, ``inv``, ``det``, ``slogdet`` and ``logdet`` (the
#: graph grows as ``n**3``); larger ones are one native call each
#: (:mod:`symgraph.linsolve`: LU in C and numpy, derivatives by solves).
MAX_EXPANDED_SIZE = 8
#: Largest ``n`` for which ``cholesky`` of a symbolic matrix is expanded
#: (about ``n**3 / 6`` products); larger ones raise ShapeError.
MAX_CHOLESKY_SIZE = 64

_ABS, _IF_ELSE, _EQ, _GT = builder("abs"), builder("if_else"), builder("eq"), builder("gt")
_LOG, _SQRT, _SIGN, _EXP = builder("log"), builder("sqrt"), builder("sign"), builder("exp")
_ZERO, _ONE = const(0.0), const(1.0)


# ---------------------------------------------------------------- argument checks

def _is_symbolic(*arrays: np.ndarray) -> bool:
    """Whether any of ``arrays`` holds objects (Exprs), so the graph path is taken."""
    return any(a.dtype == object for a in arrays)


def _numbers(value: Any, func: str, name: str) -> np.ndarray:
    """``value`` as an array of numbers or objects (Exprs), or DTypeError naming the argument."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biufcO":
        raise DTypeError(f"linalg.{func}: {name} must hold numbers or Exprs, got an array of dtype {arr.dtype}")
    return arr


def _square(A: Any, func: str, name: str = "A") -> np.ndarray:
    """``A`` as a square 2-D array, or ShapeError naming ``func``'s argument ``name``."""
    arr = _numbers(A, func, name)
    if arr.ndim != 2:
        raise ShapeError(f"linalg.{func}: {name} must be a 2-D square matrix, got shape {arr.shape} "
                         f"({arr.ndim}-D; stacked matrices are not supported)")
    if arr.shape[0] != arr.shape[1]:
        raise ShapeError(f"linalg.{func}: {name} must be square, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ShapeError(f"linalg.{func}: {name} is empty (shape {arr.shape}); expected n >= 1")
    return arr


def _sum(terms: Any) -> Expr:
    """The sum of the Exprs ``terms`` (``0`` for none), without a leading ``0 +``."""
    total = None
    for t in terms:
        total = t if total is None else total + t
    return _ZERO if total is None else total


def _rhs(b: Any, n: int) -> np.ndarray:
    """``b`` of ``solve`` as a 1-D ``(n,)`` or 2-D ``(n, k)`` array, or ShapeError."""
    arr = _numbers(b, "solve", "b")
    if arr.ndim not in (1, 2) or arr.shape[0] != n:
        raise ShapeError(f"linalg.solve: b must have shape ({n},) or ({n}, k) to match A of shape ({n}, {n}), "
                         f"got shape {arr.shape}")
    return arr


def _expanded(arr: np.ndarray, func: str, limit: int = MAX_EXPANDED_SIZE) -> list[list[Expr]]:
    """The rows of a symbolic square ``arr`` as lists of Exprs, within the expansion ``limit``."""
    n = arr.shape[0]
    if n > limit:
        raise ShapeError(f"linalg.{func}: A has shape {arr.shape}; symbolic matrices are expanded for {func} only "
                         f"up to n = {limit} (linalg.MAX_CHOLESKY_SIZE)")
    return _entries(arr, func, "A").tolist()


def _entries(arr: np.ndarray, func: str, name: str) -> np.ndarray:
    """``arr`` as an object array of Exprs, or DTypeError naming ``func``'s argument ``name``.

    Graphs are real: a complex entry next to a symbol has no graph to go
    into (a fully numeric complex matrix goes to numpy instead).
    """
    if np.iscomplexobj(arr) or any(isinstance(v, (complex, np.complexfloating)) for v in arr.reshape(-1)):
        raise DTypeError(f"linalg.{func}: {name} mixes symbols with complex numbers; symbolic matrices are "
                         f"real (a matrix of numbers only, complex included, goes to numpy.linalg)")
    try:
        return as_expr_array(arr)
    except SymgraphError as exc:
        raise type(exc)(f"linalg.{func}: {name} has an entry that is neither an Expr nor a real number "
                        f"({exc})") from None


# ---------------------------------------------------------------- the expansions

def _pivot_rows(rows: list[list[Expr]], k: int, sign: Expr) -> Expr:
    """Move the row with the largest ``|rows[i][k]|``, ``i >= k``, to row ``k`` (in place).

    A chain of conditional swaps of row ``k`` with each later row (strict
    ``>``: the first maximum wins); only columns ``k`` onwards are swapped,
    the earlier ones being eliminated.  Returns the permutation's sign.
    """
    for i in range(k + 1, len(rows)):
        swap = _GT(_ABS(rows[i][k]), _ABS(rows[k][k]))
        top, low = rows[k], rows[i]
        rows[k] = top[:k] + [_IF_ELSE(swap, a, b) for a, b in zip(low[k:], top[k:])]
        rows[i] = low[:k] + [_IF_ELSE(swap, b, a) for a, b in zip(low[k:], top[k:])]
        sign = _IF_ELSE(swap, -sign, sign)
    return sign


def _eliminate(rows: list[list[Expr]], n: int) -> Expr:
    """Gaussian elimination with partial pivoting on the augmented ``rows`` (in place).

    The first ``n`` columns end upper triangular (entries below the diagonal
    are left as they were and never read); returns the permutation's sign.
    A zero pivot eliminates nothing (its column is zero below it), as LAPACK.
    """
    sign = _ONE
    for k in range(n):
        sign = _pivot_rows(rows, k, sign)
        pivot = rows[k][k]
        recip = _IF_ELSE(_EQ(pivot, 0.0), _ZERO, _ONE / pivot)
        top = rows[k]
        for i in range(k + 1, n):
            factor = rows[i][k] * recip
            rows[i] = rows[i][:k + 1] + [a - factor * t for a, t in zip(rows[i][k + 1:], top[k + 1:])]
    return sign


def _back_substitute(rows: list[list[Expr]], n: int) -> list[list[Expr]]:
    """Solutions ``x[i][c]`` of the triangular system left by :func:`_eliminate`."""
    m = len(rows[0]) - n
    x: list[list[Expr]] = [[]] * n
    for i in range(n - 1, -1, -1):
        row = rows[i]
        x[i] = [(row[n + c] - _sum(row[j] * x[j][c] for j in range(i + 1, n))) / row[i]
                for c in range(m)]
    return x


def _lu_solve(A: list[list[Expr]], B: list[list[Expr]]) -> list[list[Expr]]:
    """``A^{-1} B`` for rows of Exprs, by elimination with partial pivoting."""
    n = len(A)
    rows = [a + b for a, b in zip(A, B)]
    _eliminate(rows, n)
    return _back_substitute(rows, n)


def _pivots(A: list[list[Expr]]) -> tuple[list[Expr], Expr]:
    """The pivots (diagonal of ``U``) of ``A``'s pivoted LU and the permutation's sign."""
    n = len(A)
    rows = [list(r) for r in A]
    sign = _eliminate(rows, n)
    return [rows[k][k] for k in range(n)], sign


def _object(rows: list[list[Expr]]) -> np.ndarray:
    """Rows of Exprs as a 2-D object array."""
    out = np.empty((len(rows), len(rows[0])), dtype=object)
    for i, r in enumerate(rows):
        out[i, :] = r
    return out


# ---------------------------------------------------------------- public API

def solve(A: Any, b: Any) -> np.ndarray:
    """The solution ``x`` of ``A x = b``, as ``numpy.linalg.solve``.

    ``A`` is ``(n, n)``; ``b`` is ``(n,)`` (then ``x`` is ``(n,)``) or
    ``(n, k)`` (then ``x`` is ``(n, k)``).  Symbolic operands give an object
    array of Exprs (elimination with partial pivoting, see the module doc);
    numeric ones give ``numpy.linalg.solve(A, b)``.  A singular ``A`` at
    evaluation gives ``inf``/``nan`` entries.

    >>> import numpy as np, symgraph as sg
    >>> A, b = sg.symbols("A", (2, 2)), sg.symbols("b", 2)
    >>> F = sg.Function("s", [A, b], [sg.linalg.solve(A, b)])
    >>> F(np.array([[0.0, 2.0], [4.0, 1.0]]), np.array([2.0, 9.0])).tolist()
    [2.0, 1.0]
    """
    arr = _square(A, "solve")
    rhs = _rhs(b, arr.shape[0])
    if not _is_symbolic(arr, rhs):
        return np.linalg.solve(arr, rhs)
    n = arr.shape[0]
    if n > MAX_EXPANDED_SIZE:
        from .call import call_function
        from .linsolve import solve_function

        return np.asarray(call_function(solve_function(n, rhs.shape[1:]), [_entries(arr, "solve", "A"),
                                                                           _entries(rhs, "solve", "b")]), dtype=object)
    columns = rhs.reshape(n, -1)
    x = _object(_lu_solve(_expanded(arr, "solve"), _entries(columns, "solve", "b").tolist()))
    return x.reshape(rhs.shape)


def inv(A: Any) -> np.ndarray:
    """The inverse of the square matrix ``A``, as ``numpy.linalg.inv``.

    ``solve(A, I)``: elimination with partial pivoting for a symbolic ``A``
    (``inf``/``nan`` entries where ``A`` is singular at evaluation).

    >>> import numpy as np, symgraph as sg
    >>> A = sg.symbols("A", (2, 2))
    >>> F = sg.Function("i", [A], [sg.linalg.inv(A)])
    >>> F(np.array([[2.0, 0.0], [0.0, 4.0]])).tolist()
    [[0.5, 0.0], [0.0, 0.25]]
    """
    arr = _square(A, "inv")
    if not _is_symbolic(arr):
        return np.linalg.inv(arr)
    n = arr.shape[0]
    if n > MAX_EXPANDED_SIZE:
        return solve(arr, np.eye(n))
    eye = [[_ONE if i == j else _ZERO for j in range(n)] for i in range(n)]
    return _object(_lu_solve(_expanded(arr, "inv"), eye))


def det(A: Any) -> Any:
    """The determinant of the square matrix ``A``, as ``numpy.linalg.det``.

    The product of the pivots of the pivoted LU times the permutation's sign
    (an Expr for a symbolic ``A``; ``0`` or ``-0`` where a pivot is zero).

    >>> import numpy as np, symgraph as sg
    >>> A = sg.symbols("A", (2, 2))
    >>> F = sg.Function("d", [A], [sg.linalg.det(A)])
    >>> float(F(np.array([[1.0, 2.0], [3.0, 4.0]])))
    -2.0
    """
    arr = _square(A, "det")
    if not _is_symbolic(arr):
        return np.linalg.det(arr)
    if arr.shape[0] > MAX_EXPANDED_SIZE:
        sign, total = slogdet(arr)
        return sign * _EXP(total)
    pivots, sign = _pivots(_expanded(arr, "det"))
    out = sign
    for p in pivots:
        out = out * p
    return out


def slogdet(A: Any) -> tuple[Any, Any]:
    """``(sign, log|det A|)``, as ``numpy.linalg.slogdet``.

    From the pivots ``u_k`` of the pivoted LU: ``sign = s_perm * prod
    sign(u_k)`` and ``logabsdet = sum log|u_k|`` (no overflow for large
    determinants).  Singular at evaluation: ``(0, -inf)``, as numpy.

    >>> import numpy as np, symgraph as sg
    >>> A = sg.symbols("A", (2, 2))
    >>> s, l = sg.linalg.slogdet(A)
    >>> F = sg.Function("sl", [A], [s, l])
    >>> [round(float(v), 12) for v in F(np.array([[0.0, 2.0], [3.0, 1.0]]))]
    [-1.0, 1.791759469228]
    """
    arr = _square(A, "slogdet")
    if not _is_symbolic(arr):
        return np.linalg.slogdet(arr)
    n = arr.shape[0]
    if n > MAX_EXPANDED_SIZE:
        from .call import call_function
        from .linsolve import slogdet_function

        return call_function(slogdet_function(n), [_entries(arr, "slogdet", "A")])
    pivots, sign = _pivots(_expanded(arr, "slogdet"))
    for p in pivots:
        sign = sign * _SIGN(p)
    return sign, _sum(_LOG(_ABS(p)) for p in pivots)


def logdet(A: Any) -> Any:
    """``log(det A)``: ``nan`` where ``det A < 0``, ``-inf`` where it is 0.

    ``logabsdet + log(sign)`` from :func:`slogdet`, so its gradient is
    ``inv(A).T``.  Numeric ``A``: the same from ``numpy.linalg.slogdet``.

    >>> import numpy as np, symgraph as sg
    >>> A = sg.symbols("A", (2, 2))
    >>> F = sg.Function("ld", [A], [sg.linalg.logdet(A), sg.grad(sg.linalg.logdet(A), A)])
    >>> v, g = F(np.array([[2.0, 1.0], [1.0, 2.0]]))
    >>> round(float(v), 12), g.tolist()   # log 3, inv(A).T
    (1.098612288668, [[0.6666666666666666, -0.3333333333333333], [-0.3333333333333333, 0.6666666666666666]])
    """
    sign, total = slogdet(A)
    if isinstance(sign, Expr):
        return total + _LOG(sign)
    with np.errstate(divide="ignore", invalid="ignore"):
        return total + np.log(sign)


def cholesky(A: Any) -> np.ndarray:
    """The lower Cholesky factor ``L`` (``A = L L^T``), as ``numpy.linalg.cholesky``.

    For symmetric positive definite ``A``; only the lower triangle is read,
    no pivoting.  A symbolic ``A`` that is not positive definite at
    evaluation gives ``nan`` entries (numpy raises ``LinAlgError``).

    >>> import numpy as np, symgraph as sg
    >>> A = sg.symbols("A", (2, 2))
    >>> F = sg.Function("c", [A], [sg.linalg.cholesky(A)])
    >>> F(np.array([[4.0, 2.0], [2.0, 5.0]])).tolist()
    [[2.0, 0.0], [1.0, 2.0]]
    """
    arr = _square(A, "cholesky")
    if not _is_symbolic(arr):
        return np.linalg.cholesky(arr)
    a = _expanded(arr, "cholesky", MAX_CHOLESKY_SIZE)
    n = len(a)
    L = [[_ZERO] * n for _ in range(n)]
    for j in range(n):
        L[j][j] = _SQRT(a[j][j] - _sum(L[j][k] * L[j][k] for k in range(j)))
        for i in range(j + 1, n):
            L[i][j] = (a[i][j] - _sum(L[i][k] * L[j][k] for k in range(j))) / L[j][j]
    return _object(L)


__all__ = ["MAX_EXPANDED_SIZE", "MAX_CHOLESKY_SIZE", "solve", "inv", "det", "slogdet", "logdet", "cholesky"]
