"""The linear-solve and log-determinant nodes: LU with partial pivoting as one native call.

:func:`symgraph.linalg.solve` (and ``inv``, ``det``, ``slogdet``,
``logdet``) expand matrices up to ``linalg.MAX_EXPANDED_SIZE`` into scalar
nodes; larger ones become one call of a native Function
(:mod:`symgraph.native`) made here, one per size:

* ``solve_function(n, rhs)``: ``(A, b) -> x`` with ``A x = b``, ``A`` of
  shape ``(n, n)`` and ``b`` of shape ``(n,) + rhs`` (``rhs = ()`` for a
  vector, ``(k,)`` for ``k`` columns);
* ``slogdet_function(n)``: ``A -> (sign, log|det A|)``.

Both factor ``A`` by Gaussian elimination with partial pivoting (at step
``k`` the row with the largest ``|a[i, k]|``, the first on ties, as LAPACK's
``getrf``), in the VM with numpy over all points at once and in C with loops
whose size is fixed by ``n`` (the C does not grow with ``n``).  A zero pivot
is divided by: a singular ``A`` gives ``inf``/``nan`` in ``x`` (never an
exception), and ``slogdet`` gives ``(0, -inf)``.

Derivatives are solves with the same matrix (the derivative graphs call
these Functions again, so every order works):

* ``x = A^-1 b``: forward ``dx = A^-1 (db - dA x)``; reverse
  ``lam = A^-T xbar``, ``bbar = lam``, ``Abar = -lam x^T``;
* ``l = log|det A|``: forward ``dl = tr(A^-1 dA)``; reverse
  ``Abar = lbar A^-T``; the sign is piecewise constant (derivative 0).

>>> import numpy as np, symgraph as sg
>>> S = solve_function(2, ())
>>> A, b = sg.symbols("A", (2, 2)), sg.symbols("b", 2)
>>> x = S(A, b)
>>> G = sg.Function("g", [A, b], [x, sg.jacobian(x, b)])
>>> xv, J = G(np.array([[0.0, 2.0], [4.0, 0.0]]), np.array([2.0, 4.0]))
>>> xv.tolist(), np.allclose(J.toarray(), np.linalg.inv([[0.0, 2.0], [4.0, 0.0]]))
([1.0, 1.0], True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .native import NativeStructure, arrays_as_columns, columns_as_arrays

__all__ = ["solve_function", "slogdet_function", "lu_factor_batch", "lu_solve_c", "load_native"]

_SOLVES: dict = {}
_SLOGDETS: dict = {}


def solve_function(n: int, rhs: tuple) -> Any:
    """The native Function ``(A, b) -> x`` solving ``A x = b`` for ``A`` of shape ``(n, n)``, ``b`` of ``(n,) + rhs``.

    One Function per ``(n, rhs)``, shared by every call (so equal solves
    are one node).

    >>> import numpy as np
    >>> S = solve_function(3, (2,))
    >>> S.input_shapes, S.output_shapes
    (((3, 3), (3, 2)), ((3, 2),))
    >>> A = np.array([[4.0, 1, 0], [1, 4, 1], [0, 1, 4]]); B = np.arange(6.0).reshape(3, 2)
    >>> np.allclose(S(A, B), np.linalg.solve(A, B))
    True
    """
    key = (int(n), tuple(int(k) for k in rhs))
    F = _SOLVES.get(key)
    if F is None:
        F = _SOLVES.setdefault(key, _SolveStructure(*key).function(f"solve{key[0]}" + "".join(f"x{k}" for k in key[1])))
    return F


def slogdet_function(n: int) -> Any:
    """The native Function ``A -> (sign, log|det A|)`` for ``A`` of shape ``(n, n)``.

    >>> import numpy as np
    >>> s, l = slogdet_function(3)(np.array([[0.0, 2, 0], [1, 0, 0], [0, 0, 3]]))
    >>> float(s), round(float(l), 12) == round(float(np.log(6.0)), 12)
    (-1.0, True)
    """
    F = _SLOGDETS.get(int(n))
    if F is None:
        F = _SLOGDETS.setdefault(int(n), _SlogdetStructure(int(n)).function(f"slogdet{int(n)}"))
    return F


#: Largest sizes a file may declare for a solve node (a forged record must not allocate without bound).
MAX_LOADED_N, MAX_LOADED_RHS = 4096, 1 << 16


def load_native(record: Any, table: list, label: str) -> Any:
    """The Function of a ``("native", "solve", n, rhs)`` or ``("native", "slogdet", n)`` record, validated.

    >>> load_native(("native", "slogdet", 4), [], "r").name
    'slogdet4'
    >>> load_native(("native", "solve", -1, ()), [], "r")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
      ...
    symgraph.errors.SerializationError: r: a native solve record is ('native', 'solve', n, rhs) with 1 <= n <= ...
    """
    from .errors import SerializationError
    from .function import data_repr

    def size(v: Any, top: int) -> bool:
        return type(v) is int and 1 <= v <= top

    if record[1] == "solve":
        if len(record) == 4 and size(record[2], MAX_LOADED_N) and isinstance(record[3], tuple) and (
                record[3] == () or len(record[3]) == 1 and size(record[3][0], MAX_LOADED_RHS)):
            return solve_function(record[2], record[3])
        raise SerializationError(f"{label}: a native solve record is ('native', 'solve', n, rhs) with 1 <= n <= "
                                 f"{MAX_LOADED_N} and rhs () or (k,), 1 <= k <= {MAX_LOADED_RHS}; got "
                                 f"{data_repr(record)}")
    if len(record) == 3 and size(record[2], MAX_LOADED_N):
        return slogdet_function(record[2])
    raise SerializationError(f"{label}: a native slogdet record is ('native', 'slogdet', n) with 1 <= n <= "
                             f"{MAX_LOADED_N}; got {data_repr(record)}")


# ------------------------------------------------------------------ numpy (the VM)
def lu_factor_batch(A: np.ndarray, B: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LU with partial pivoting of every matrix of ``A`` (``(N, n, n)``), rows of ``B`` (``(N, n, k)``) swapped along.

    Returns ``(U, B', sign)``: the eliminated matrices (``U`` in the upper
    triangle), ``B`` with the same row exchanges and eliminations applied,
    and the sign of each permutation.  The operations are those of the C
    (:func:`lu_solve_c`), in the same order.

    >>> U, _, sign = lu_factor_batch(np.array([[[0.0, 1.0], [2.0, 3.0]]]))
    >>> U[0].tolist(), sign.tolist()
    ([[2.0, 3.0], [0.0, 1.0]], [-1.0])
    """
    A = np.array(A, copy=True)
    N, n, _ = A.shape
    B = np.zeros((N, n, 0), dtype=A.dtype) if B is None else np.array(B, copy=True)
    sign = np.ones(N)
    points = np.arange(N)
    for k in range(n):
        p = k + np.argmax(np.abs(A[:, k:, k]), axis=1)
        swap = p != k
        if swap.any():
            sign[swap] = -sign[swap]
            for M in (A, B):
                row = M[points, k].copy()
                M[points, k] = M[points, p]
                M[points, p] = row
        if k + 1 < n:
            factor = A[:, k + 1:, k] / A[:, k, k][:, None]
            A[:, k + 1:, k + 1:] -= factor[:, :, None] * A[:, k, None, k + 1:]
            B[:, k + 1:] -= factor[:, :, None] * B[:, k, None, :]
            A[:, k + 1:, k] = 0.0
    return A, B, sign


def _back_substitute(U: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``U^-1 B`` for upper-triangular ``U`` (``(N, n, n)``, ``B``: ``(N, n, k)``), as the C does it."""
    n = U.shape[1]
    X = np.empty_like(B)
    for k in range(n - 1, -1, -1):
        s = B[:, k].copy()
        for j in range(k + 1, n):
            s -= U[:, k, j, None] * X[:, j]
        X[:, k] = s / U[:, k, k, None]
    return X


# ------------------------------------------------------------------ C
def lu_solve_c(n: int, k: int, a: str, x: str, indent: str = "  ", skip_zeros: bool = False,
               sign: str | None = None) -> list[str]:
    """C lines solving ``a x = x`` in place: ``a`` (``n*n`` doubles, overwritten), ``x`` (``n*k``, rhs then solution).

    Gaussian elimination with partial pivoting (first largest ``|a[i][c]|``),
    then back substitution; the operations of :func:`lu_factor_batch`.
    Declares nothing outside a block of its own.  ``k = 0`` only factors.
    With ``skip_zeros`` a row whose multiplier is zero is left alone (the
    same pivots and, for finite entries, the same values): a sparse matrix
    (banded, block diagonal) costs about ``n`` times its fill-in instead of
    ``n^3 / 3`` (the rootfinder's Jacobians).  With ``sign`` (the name of a
    double in scope) each row exchange negates it: the permutation's sign.

    >>> "fabs" in "\\n".join(lu_solve_c(3, 1, "a", "x"))
    True
    >>> "if (l == 0.0) continue;" in "\\n".join(lu_solve_c(3, 1, "a", "x", skip_zeros=True))
    True
    """
    t = indent
    lines = [f"{t}{{",
             f"{t}  for (long c = 0; c < {n}; ++c) {{",
             f"{t}    long p = c; double best = fabs({a}[c * {n} + c]);",
             f"{t}    for (long i = c + 1; i < {n}; ++i) {{ double v = fabs({a}[i * {n} + c]); "
             f"if (v > best) {{ best = v; p = i; }} }}",
             f"{t}    if (p != c) {{",
             *([f"{t}      {sign} = -{sign};"] if sign else []),
             f"{t}      for (long j = 0; j < {n}; ++j) {{ double s = {a}[c * {n} + j]; "
             f"{a}[c * {n} + j] = {a}[p * {n} + j]; {a}[p * {n} + j] = s; }}"]
    if k:
        lines.append(f"{t}      for (long j = 0; j < {k}; ++j) {{ double s = {x}[c * {k} + j]; "
                     f"{x}[c * {k} + j] = {x}[p * {k} + j]; {x}[p * {k} + j] = s; }}")
    lines += [f"{t}    }}",
              f"{t}    for (long i = c + 1; i < {n}; ++i) {{",
              *([f"{t}      if ({a}[i * {n} + c] == 0.0) continue;"] if skip_zeros else []),
              f"{t}      double l = {a}[i * {n} + c] / {a}[c * {n} + c];",
              *([f"{t}      if (l == 0.0) continue;"] if skip_zeros else []),
              f"{t}      for (long j = c + 1; j < {n}; ++j) {a}[i * {n} + j] -= l * {a}[c * {n} + j];"]
    if k:
        lines.append(f"{t}      for (long j = 0; j < {k}; ++j) {x}[i * {k} + j] -= l * {x}[c * {k} + j];")
    lines += [f"{t}      {a}[i * {n} + c] = 0.0;", f"{t}    }}", f"{t}  }}"]
    if k:
        lines += [f"{t}  for (long c = {n} - 1; c >= 0; --c) {{",
                  f"{t}    for (long j = 0; j < {k}; ++j) {{",
                  f"{t}      double s = {x}[c * {k} + j];",
                  f"{t}      for (long i = c + 1; i < {n}; ++i) s -= {a}[c * {n} + i] * {x}[i * {k} + j];",
                  f"{t}      {x}[c * {k} + j] = s / {a}[c * {n} + c];",
                  f"{t}    }}",
                  f"{t}  }}"]
    lines.append(f"{t}}}")
    return lines


# ------------------------------------------------------------------ the structures
class _SolveStructure(NativeStructure):
    """``(A, b) -> x``, ``A x = b``; see the module docstring."""

    def __init__(self, n: int, rhs: tuple) -> None:
        self.n, self.rhs = n, rhs
        self.k = int(np.prod(rhs, dtype=np.int64))
        super().__init__([(n, n), (n,) + rhs], [(n,) + rhs], ["A", "b"], ["x"])
        columns = f", {self.k} right-hand sides" if rhs else ""
        self.label = f"linear solve, LU with partial pivoting, n = {n}{columns}"

    def to_data(self, index: dict) -> tuple:
        return ("native", "solve", self.n, self.rhs)

    def evaluate(self, columns: list, width: int) -> list:
        A, b = columns_as_arrays(columns, self.in_shapes, width)
        U, B, _ = lu_factor_batch(A, b.reshape(width, self.n, self.k))
        return arrays_as_columns([_back_substitute(U, B)], width)

    def c_function(self, fname: str, callees: dict) -> tuple[str, int]:
        n, k = self.n, self.k
        lines = [f"void {fname}(const double *const *arg, double *const *res, double *w) {{",
                 f"  /* {self.label} */",
                 f"  double *x = res[0];",
                 f"  for (long i = 0; i < {n * n}; ++i) w[i] = arg[0][i];",
                 f"  for (long i = 0; i < {n * k}; ++i) x[i] = arg[1][i];",
                 *lu_solve_c(n, k, "w", "x"),
                 "}\n"]
        return "\n".join(lines), n * n

    def make_rules(self, F: Any) -> dict:
        from .array import symbols
        from .call import call_function
        from .function import Function

        n, rhs = self.n, self.rhs
        A, b = symbols("A", (n, n)), _symbols("b", (n,) + rhs)
        tA, tb = symbols("tA", (n, n)), _symbols("tb", (n,) + rhs)
        x, xbar = _symbols("x", (n,) + rhs), _symbols("xbar", (n,) + rhs)
        X = _as_array(call_function(F, [A, b]))
        jvp = Function(f"{F.name}_jvp_rule", [A, b, tA, tb], [call_function(F, [A, tb - tA @ X])])
        lam = _as_array(call_function(F, [A.T, xbar]))
        Abar = -(np.multiply.outer(lam, x) if not rhs else lam @ x.T)
        vjp = Function(f"{F.name}_vjp_rule", [A, b, x, xbar], [Abar, lam])
        return {"jvp": jvp, "vjp": vjp}


class _SlogdetStructure(NativeStructure):
    """``A -> (sign, log|det A|)``; see the module docstring."""

    def __init__(self, n: int) -> None:
        self.n = n
        super().__init__([(n, n)], [(), ()], ["A"], ["sign", "logabsdet"])
        self.label = f"sign and log|det| by LU with partial pivoting, n = {n}"

    def to_data(self, index: dict) -> tuple:
        return ("native", "slogdet", self.n)

    def pattern(self) -> Any:
        from .sparsity import Sparsity

        m = self.n * self.n  # the sign is piecewise constant: only log|det| has derivatives
        return Sparsity(np.ones(m, dtype=np.int64), np.arange(m, dtype=np.int64), (2, m))

    def evaluate(self, columns: list, width: int) -> list:
        (A,) = columns_as_arrays(columns, self.in_shapes, width)
        U, _, sign = lu_factor_batch(A)
        d = np.diagonal(U, axis1=1, axis2=2)
        signs = (d.real > 0).astype(np.float64) - (d.real < 0)  # as the C: a NaN pivot has sign 0
        sign = sign * np.prod(signs, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):  # log(d * sign(d)): analytic, for complex step
            logabs = np.sum(np.log(d * np.where(signs == 0, 1.0, signs)), axis=1)
        logabs = np.where(sign == 0, -np.inf, logabs)
        return [sign.astype(A.dtype), logabs.astype(A.dtype)]

    def c_function(self, fname: str, callees: dict) -> tuple[str, int]:
        n = self.n
        lines = [f"void {fname}(const double *const *arg, double *const *res, double *w) {{",
                 f"  /* {self.label} */",
                 "  double sign = 1.0, logabs = 0.0;",
                 f"  for (long i = 0; i < {n * n}; ++i) w[i] = arg[0][i];",
                 *lu_solve_c(n, 0, "w", "", sign="sign"),
                 f"  for (long c = 0; c < {n}; ++c) {{",
                 f"    double d = w[c * {n} + c];",
                 "    sign *= (d > 0.0) - (d < 0.0);",
                 "    logabs += log(fabs(d));",
                 "  }",
                 "  res[0][0] = sign;",
                 "  res[1][0] = sign == 0.0 ? -INFINITY : logabs;",
                 "}\n"]
        return "\n".join(lines), n * n

    def make_rules(self, F: Any) -> dict:
        from .array import symbols
        from .call import call_function
        from .function import Function

        n = self.n
        A, s, l, sbar, lbar = symbols("A", (n, n)), *(symbols(nm) for nm in ("s", "l", "sbar", "lbar"))
        S = solve_function(n, (n,))
        Ainv_T = _as_array(call_function(S, [A.T, np.eye(n)]))
        vjp = Function(f"{F.name}_vjp_rule", [A, s, l, sbar, lbar], [lbar * Ainv_T])
        return {"vjp": vjp}


def _symbols(name: str, shape: tuple) -> np.ndarray:
    from .array import symbols

    return np.asarray(symbols(name, shape), dtype=object)


def _as_array(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=object)
