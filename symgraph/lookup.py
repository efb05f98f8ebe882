"""The interpolant lookup node: a tensor-product piecewise polynomial, one native call.

:func:`symgraph.interpolant.interpolant` expands small grids into ``if_else``
chains; larger ones (or any with ``expand=False``) become one call of a
native Function (:mod:`symgraph.native`) made here by
:func:`lookup_function`.  It holds, as constants known when it is built:

* the breakpoints of each axis ``j`` (``m_j`` strictly increasing numbers,
  ``m_j - 1`` cells);
* **nodal data** per grid point (:func:`nodal_data`): for ``"linear"`` the
  value, for ``"bspline"`` the value and the spline's second derivative
  along each axis, tensor-wise (``f``, ``f_xx``, ``f_yy``, ``f_xxyy`` in
  2-D): ``2^N`` numbers a point, an array of shape ``(m_1, ..., m_N, s, ...,
  s)`` with ``s`` = 1 or 2.

A query finds its cell on each axis (the last breakpoint ``<=`` the
coordinate, clipped to the first and last cells: out-of-grid queries
continue the end pieces, a query on a grid point takes the piece to its
right), gathers the nodal data of the cell's corners, turns it into the
cell's power coefficients in ``t_j = x_j - g_j[i_j]`` (per axis a small
matrix of the cell width ``h``: ``(y0, (y1 - y0) / h)`` for degree 1, the
cubic through ``y0, y1`` with second derivatives ``M0, M1`` for degree 3),
and evaluates them by Horner's rule, the last axis first.  The VM does this
with ``numpy.searchsorted`` over all points at once; the C has the tables as
``static const double`` arrays (its text grows with the table: about 20
bytes per number), a branch-free binary search (or, on a nearly uniform
axis, a guess from the mean step corrected by comparisons) and the same
loops, in the same order.  A query with a NaN coordinate gives NaN.

The derivative with respect to ``x_j`` is the same kind of node with one
more derivative order on axis ``j`` (the power coefficients differentiated:
degree ``k_j - 1``; past the degree it is 0), so derivatives of every order
are lookups again, exact for the piecewise polynomial.  All the derivatives
of one lookup share one cache, so ``d/dx d/dy`` and ``d/dy d/dx`` are the
same Function (one node), and one **table** Function (their only child): the
C of the tables and of the evaluator is emitted once, and each lookup is a
three-line C function calling it with its derivative orders (the evaluator
multiplies each coefficient by the exact integer ``prod p_j! / (p_j -
o_j)!`` and skips the powers below the order).

>>> import numpy as np, symgraph as sg
>>> g = np.linspace(0.0, 2.0, 5)
>>> L = lookup_function("l", "linear", [g], 3.0 * g, flat=True)   # f(x) = 3 x
>>> x = sg.symbols("x")
>>> D = sg.Function("d", [x], [L(x), sg.grad(L(x), x)])
>>> [float(v) for v in D(0.75)]
[2.25, 3.0]
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .native import NativeStructure, arrays_as_columns, columns_as_arrays

__all__ = ["lookup_function", "nodal_data", "is_lookup", "DEGREES", "load_native"]

#: The degree of the pieces along each axis, and the nodal numbers per point and axis, per method.
DEGREES = {"linear": (1, 1), "bspline": (3, 2)}


# ------------------------------------------------------------------ nodal data
def _second_derivatives(g: np.ndarray, V: np.ndarray) -> np.ndarray:
    """The not-a-knot cubic spline's second derivatives at the grid points, along the first axis of ``V``.

    They solve the C2 conditions at the interior points plus a continuous
    third derivative at ``g[1]`` and ``g[-2]`` (the system of
    :func:`symgraph.interpolant.not_a_knot_coefficients`), for all the
    columns of ``V`` at once.  The system is tridiagonal but for one entry in
    the first and the last row; those are eliminated with rows 1 and
    ``m - 2``, and LAPACK's banded LU with partial pivoting
    (``scipy.linalg.solve_banded``) does the rest, in ``O(m)``.

    >>> g = np.array([0.0, 1.0, 2.0, 4.0])
    >>> _second_derivatives(g, g**3).round(12).tolist()   # (x^3)'' = 6 x
    [0.0, 6.0, 12.0, 24.0]
    """
    from scipy.linalg import solve_banded

    m = g.size
    Y = V.reshape(m, -1)
    h = np.diff(g)
    slope = np.diff(Y, axis=0) / h[:, None]
    lower, diag, upper = np.zeros(m), np.zeros(m), np.zeros(m)  # A[i, i-1], A[i, i], A[i, i+1]
    rhs = np.zeros_like(Y)
    lower[1:-1], diag[1:-1], upper[1:-1] = h[:-1], 2.0 * (h[:-1] + h[1:]), h[1:]
    rhs[1:-1] = 6.0 * (slope[1:] - slope[:-1])
    # row 0: h1 M0 - (h0 + h1) M1 + h0 M2 = 0; minus (h0 / h1) row 1 clears M2
    f = h[0] / h[1]
    diag[0], upper[0] = h[1] - f * h[0], -(h[0] + h[1]) - f * 2.0 * (h[0] + h[1])
    rhs[0] = -f * rhs[1]
    # row m-1: h[-1] M[-3] - (h[-2] + h[-1]) M[-2] + h[-2] M[-1] = 0; minus (h[-1] / h[-2]) row m-2
    f = h[-1] / h[-2]
    lower[-1], diag[-1] = -(h[-2] + h[-1]) - f * 2.0 * (h[-2] + h[-1]), h[-2] - f * h[-1]
    rhs[-1] = -f * rhs[-2]
    ab = np.zeros((3, m))
    ab[0, 1:], ab[1], ab[2, :-1] = upper[:-1], diag, lower[1:]
    return solve_banded((1, 1), ab, rhs).reshape(V.shape)


def nodal_data(axes: Sequence[np.ndarray], values: np.ndarray, method: str) -> np.ndarray:
    """What a lookup stores per grid point: shape ``(m_1, ..., m_N, s, ..., s)``.

    ``"linear"`` (``s = 1``): the values.  ``"bspline"`` (``s = 2``): along
    each axis in turn, the data so far and the not-a-knot spline's second
    derivatives of it along that axis (a linear map along the axis), so entry
    ``[..., a_1, ..., a_N]`` is ``d^(2 a_1) ... d^(2 a_N) f`` at the point, of
    the tensor-product spline.  Inputs are checked by
    :func:`symgraph.interpolant.interpolant`, not here.

    >>> g = np.array([0.0, 1.0, 2.0, 4.0])
    >>> nodal_data([g], g**3, "bspline").round(12).tolist()   # (x^3, 6 x)
    [[0.0, 0.0], [1.0, 6.0], [8.0, 12.0], [64.0, 24.0]]
    """
    W = np.asarray(values, dtype=float)
    n = len(axes)
    if method == "linear":
        return W.reshape(W.shape + (1,) * n)
    for j, g in enumerate(axes):
        M = np.moveaxis(_second_derivatives(np.asarray(g, dtype=float), np.moveaxis(W, j, 0)), 0, j)
        W = np.stack([W, M], axis=-1)
    return np.ascontiguousarray(W)


# ------------------------------------------------------------------ the Function
def lookup_function(name: str, method: str, axes: Sequence[np.ndarray], values: np.ndarray, flat: bool) -> Any:
    """The native Function interpolating ``values`` on the grid ``axes`` by ``method`` (see the module docstring).

    Args:
        name: the Function's name.
        method: ``"linear"`` or ``"bspline"``.
        axes: the breakpoints of each axis, strictly increasing (not checked:
            :func:`symgraph.interpolant.interpolant` checks its arguments).
        values: shape ``(m_1, ..., m_N)``.
        flat: the Function takes a scalar (1-D only) instead of a vector of length ``N``.

    >>> import numpy as np
    >>> g = np.array([0.0, 1.0, 2.0, 3.0])
    >>> F = lookup_function("cube", "bspline", [g], g**3, flat=True)
    >>> [round(float(F(v)), 12) for v in (0.5, 2.5, 4.0, -1.0)]
    [0.125, 15.625, 64.0, -1.0]
    """
    axes = [np.ascontiguousarray(g, dtype=float) for g in axes]
    table = _TableStructure(method, axes, nodal_data(axes, values, method), bool(flat), name).function(
        f"{name}_table")
    s = _LookupStructure(table, table.structure.family, (0,) * len(axes), name)
    F = s.function(name)
    s.family[s.orders] = F
    return F


def load_native(record: Any, table: list, label: str) -> Any:
    """The table or lookup Function a ``("native", "lookup_table" | "lookup", ...)`` record describes, validated.

    A table record holds the method, ``flat``, the root name, the axes
    (strictly increasing finite float arrays) and the nodal data (its shape
    fixed by them and the method); a lookup record the position of its
    table Function in ``table`` (loaded before it) and its derivative
    orders.  Anything else raises SerializationError starting with ``label``.

    >>> g = np.array([0.0, 1.0, 2.0])
    >>> T = load_native(("native", "lookup_table", "linear", True, "f", (g,), np.zeros((3, 1))), [], "r")
    >>> float(load_native(("native", "lookup", 0, (0,)), [T], "r")(0.5))
    0.0
    >>> load_native(("native", "lookup_table", "linear", True, "f", (g[::-1],), np.zeros((3, 1))), [], "r")
    Traceback (most recent call last):
      ...
    symgraph.errors.SerializationError: r: lookup table axis 0 must be a 1-D float array of at least 2 strictly increasing finite numbers
    """
    from .errors import SerializationError
    from .function import data_repr

    if record[1] == "lookup_table":
        if not (len(record) == 7 and record[2] in DEGREES and type(record[3]) is bool and type(record[4]) is str
                and record[4] and isinstance(record[5], tuple) and 1 <= len(record[5]) <= 8
                and isinstance(record[6], np.ndarray)):
            raise SerializationError(f"{label}: a lookup table record is ('native', 'lookup_table', method, flat, "
                                     f"root, axes, nodal); got {data_repr(record)[:200]}")
        method, flat, root, axes, nodal = record[2:]
        for j, g in enumerate(axes):
            if not (isinstance(g, np.ndarray) and g.ndim == 1 and g.dtype.kind == "f" and g.size >= 2
                    and np.all(np.isfinite(g)) and np.all(np.diff(g) > 0)):
                raise SerializationError(f"{label}: lookup table axis {j} must be a 1-D float array of at least 2 "
                                         f"strictly increasing finite numbers")
        s = DEGREES[method][1]
        want = tuple(g.size for g in axes) + (s,) * len(axes)
        if nodal.shape != want or nodal.dtype.kind != "f" or flat and len(axes) != 1:
            raise SerializationError(f"{label}: lookup table nodal data must be floats of shape {want} for "
                                     f"{method} on these axes{' (flat: 1-D only)' if flat else ''}, got "
                                     f"{nodal.dtype} {nodal.shape}")
        return _TableStructure(method, [np.ascontiguousarray(g) for g in axes], np.ascontiguousarray(nodal),
                               flat, root).function(f"{root}_table")
    if not (len(record) == 4 and type(record[2]) is int and 0 <= record[2] < len(table)
            and isinstance(getattr(table[record[2]], "structure", None), _TableStructure)):
        raise SerializationError(f"{label}: a lookup record is ('native', 'lookup', position of its table "
                                 f"Function, orders); got {data_repr(record)[:200]}")
    T = table[record[2]]
    t, orders = T.structure, record[3]
    if not (isinstance(orders, tuple) and len(orders) == t.n
            and all(type(o) is int and 0 <= o <= k for o, k in zip(orders, t.degrees))):
        raise SerializationError(f"{label}: lookup orders must be {t.n} int(s) from 0 to the degree "
                                 f"{t.degrees[0]}, got {data_repr(orders)}")
    found = t.family.get(orders)
    if found is None:
        suffix = "".join(f"_d{j}" * o for j, o in enumerate(orders))
        found = t.family.setdefault(orders, _LookupStructure(T, t.family, orders, t.root).function(t.root + suffix))
    return found


def is_lookup(F: Any) -> bool:
    """Whether ``F`` is a lookup Function made by :func:`lookup_function` (or one of its derivatives).

    >>> from symgraph.interpolant import interpolant
    >>> is_lookup(interpolant("f", "linear", [0.0, 1.0], [0.0, 1.0]))
    False
    """
    return isinstance(getattr(F, "structure", None), _LookupStructure)


def _c_numbers(values: np.ndarray, per_line: int = 8) -> str:
    """Numbers as a C initializer body (shortest round-trip decimals), a few per line."""
    text = list(map(repr, np.asarray(values, dtype=float).reshape(-1).tolist()))
    return ",\n".join("    " + ", ".join(text[i:i + per_line]) for i in range(0, len(text), per_line))


def _nearly_uniform(g: np.ndarray) -> bool:
    """Whether every point of ``g`` is within a quarter of the smallest step of ``g[0] + i * mean step``.

    Then the C finds the cell from the mean step, off by one at most, and
    corrects it with comparisons (exact whatever the grid: only the speed
    depends on this).

    >>> _nearly_uniform(np.linspace(0.0, 1.0, 11)), _nearly_uniform(np.array([0.0, 1.0, 3.0]))
    (True, False)
    """
    c = g.size - 1
    h = (g[-1] - g[0]) / c
    return bool(np.max(np.abs(g - (g[0] + h * np.arange(c + 1)))) < 0.25 * np.min(np.diff(g)))


def _factors(degrees: tuple, orders: tuple) -> np.ndarray:
    """Per coefficient, ``prod_j p_j! / (p_j - o_j)!`` (0 where ``p_j < o_j``): shape ``(k_1 + 1, ..., k_N + 1)``.

    The order-``o`` derivative of ``sum_p c_p t^p`` is ``sum_{p >= o} c_p
    p! / (p - o)! t^(p - o)``; the C multiplies each coefficient by the same
    exact integer, once.

    >>> _factors((3,), (2,)).tolist()
    [0.0, 0.0, 2.0, 6.0]
    """
    out = np.ones(())
    for k, o in zip(degrees, orders):
        f = np.ones(k + 1)
        for i in range(o):
            f *= np.arange(k + 1) - i
        out = np.multiply.outer(out, f)
    return out


def _transform_rows(kind: int, h: Any) -> list:
    """Per power ``p``, the weights of the cell's nodal numbers (``y0, y1`` or ``y0, M0, y1, M1``) in ``a_p``.

    ``h`` is the cell width (a number or an array); a weight is a number or
    an array like ``h``.  The C computes the same expressions (see
    ``_TableStructure.c_function``).

    >>> _transform_rows(1, 2.0)
    [[1.0, 0.0], [-0.5, 0.5]]
    """
    if isinstance(h, _Named):  # the C expressions of the same weights
        one, zero, ih, m_ih, m_h3, m_h6, half, m_ih6, ih6 = ("1.0", "0.0", "ih", "-ih", "-(hj / 3.0)",
                                                           "-(hj / 6.0)", "0.5", "-(ih / 6.0)", "ih / 6.0")
    else:
        ih = 1.0 / h
        one, zero, m_ih, m_h3, m_h6 = 1.0, 0.0, -ih, -(h / 3.0), -(h / 6.0)
        half, m_ih6, ih6 = 0.5, -(ih / 6.0), ih / 6.0
    if kind == 1:
        return [[one, zero], [m_ih, ih]]
    return [[one, zero, zero, zero],
            [m_ih, m_h3, ih, m_h6],
            [zero, half, zero, zero],
            [zero, m_ih6, zero, ih6]]


class _Named:
    """Stands for the cell width in :func:`_transform_rows`: the weights as C expressions."""


def _evaluate(axes: list, nodal: np.ndarray, degrees: tuple, orders: tuple, X: np.ndarray) -> np.ndarray:
    """The order-``orders`` derivative of the piecewise polynomial at the rows of ``X`` (``(width, N)``).

    The operations of the C evaluator (``_TableStructure.c_function``), in
    the same order, over all rows at once.
    """
    n, width = len(axes), X.shape[0]
    s = nodal.shape[n:]
    idx, ts, hs = [], [], []
    for j, g in enumerate(axes):
        xj = X[:, j]
        i = np.clip(np.searchsorted(g, xj.real, side="right") - 1, 0, g.size - 2)
        shape = [width] + [1] * n
        shape[1 + j] = 2
        idx.append((i[:, None] + np.arange(2)).reshape(shape))
        ts.append(xj - g[i])
        hs.append(g[i + 1] - g[i])
    G = nodal[tuple(idx)]  # (width, 2, ..., 2, s_1, ..., s_N): the cell's corners
    G = G.transpose([0] + [a for j in range(n) for a in (1 + j, 1 + n + j)])
    C = G.reshape((width,) + tuple(2 * sj for sj in s))
    if np.iscomplexobj(X):
        C = C.astype(X.dtype)
    for j in range(n):  # nodal numbers to power coefficients, axis by axis
        Cm = np.moveaxis(C, 1 + j, 1)
        rows = _transform_rows(degrees[j], hs[j])
        out = []
        for row in rows:  # as the C: zero weights skipped, the others added left to right
            terms = [a for a, wt in enumerate(row) if not (np.ndim(wt) == 0 and wt == 0.0)]
            acc = _weight(row[terms[0]], Cm.ndim) * Cm[:, terms[0]]
            for a in terms[1:]:
                acc = acc + _weight(row[a], Cm.ndim) * Cm[:, a]
            out.append(acc)
        C = np.moveaxis(np.stack(out, axis=1), 1, 1 + j)
    C = C * _factors(degrees, orders)  # (width, k_1 + 1, ..., k_N + 1)
    for j in range(n - 1, -1, -1):  # Horner along the last power axis, the last coordinate first
        t = ts[j].reshape((width,) + (1,) * (C.ndim - 2))
        acc = C[..., -1]
        for p in range(C.shape[-1] - 2, orders[j] - 1, -1):
            acc = C[..., p] + t * acc
        C = acc
    return np.where(np.isnan(X).any(axis=1), np.nan, C)


def _weight(w: Any, ndim: int) -> Any:
    """A transform weight (number, or one per row) shaped to multiply a ``(width, ...)`` slice of ``ndim - 1`` axes."""
    return w if np.ndim(w) == 0 else np.reshape(w, (-1,) + (1,) * (ndim - 2))


class _TableStructure(NativeStructure):
    """``(x, orders) -> d^orders p(x)``: the tables and the C evaluator shared by a lookup and its derivatives.

    Never called in a graph: the lookups (:class:`_LookupStructure`) call its
    C function with their derivative orders, so a Function using a value,
    gradient and Hessian holds the tables once.
    """

    def __init__(self, method: str, axes: list, nodal: np.ndarray, flat: bool, root: str) -> None:
        self.method, self.axes, self.nodal, self.flat, self.root = method, axes, nodal, flat, root
        self.family: dict = {}  # the lookups over this table, by derivative orders (loading rebuilds them here)
        self.n = len(axes)
        self.cells = tuple(g.size - 1 for g in axes)
        self.degrees = (DEGREES[method][0],) * self.n
        self.block = (self.degrees[0] + 1) ** self.n
        super().__init__([() if flat else (self.n,), (self.n,), (self.block,)], [()], ["x", "orders", "factors"],
                         ["y"])
        self._tables: list | None = None
        self.label = (f"interpolant table of {root}: {method} on a {'x'.join(str(c + 1) for c in self.cells)} "
                      f"grid, {nodal.size} nodal numbers, cell search")

    def to_data(self, index: dict) -> tuple:
        """``("native", "lookup_table", method, flat, root, axes, nodal)``: everything, tables included."""
        return ("native", "lookup_table", self.method, self.flat, self.root, tuple(self.axes), self.nodal)

    def evaluate(self, columns: list, width: int) -> list:
        X, orders, _ = columns_as_arrays(columns, self.in_shapes, width)
        (o,) = {tuple(int(v) for v in row.real) for row in np.asarray(orders).reshape(width, self.n)}
        y = _evaluate(self.axes, self.nodal, self.degrees, o, X.reshape(width, self.n))
        return arrays_as_columns([y], width)

    def c_function(self, fname: str, callees: dict) -> tuple[str, int]:
        n, kind, s = self.n, self.degrees[0], DEGREES[self.method][1]
        block = (kind + 1) ** n
        gathered = (2 * s) ** n
        points = [g.size for g in self.axes]
        span = s ** n  # nodal numbers per point
        pstride = [int(np.prod(points[j + 1:], dtype=np.int64)) * span for j in range(n)]
        off = []  # corner q: per axis (last fastest) node a // s and nodal number a % s
        for q in range(gathered):
            rem, total = q, 0
            for j in range(n - 1, -1, -1):
                a = rem % (2 * s)
                rem //= 2 * s
                total += (a // s) * pstride[j] + (a % s) * s ** (n - 1 - j)
            off.append(total)
        if self._tables is None:  # the numbers as C text once (the backend may ask more than once)
            self._tables = []
            for j, g in enumerate(self.axes):
                self._tables += [f"  static const double g{j}[{g.size}] = {{", _c_numbers(g), "  };"]
            self._tables += [f"  static const double nd[{self.nodal.size}] = {{", _c_numbers(self.nodal), "  };"]
        lines = [f"void {fname}(const double *const *arg, double *const *res, double *w) {{",
                 f"  /* {self.label}; arg[1]: derivative orders, arg[2]: their factors (_factors) */",
                 *self._tables,
                 f"  static const long off[{gathered}] = {{{', '.join(map(str, off))}}};",
                 "  const double *x = arg[0], *fac = arg[2];",
                 f"  double t[{n}], h[{n}], r[{gathered}], tmp[{gathered}];",
                 f"  long o[{n}], base = 0;",
                 "  (void)w;",
                 f"  for (long j = 0; j < {n}; ++j) o[j] = (long)arg[1][j];"]
        for j, g in enumerate(self.axes):
            lines += ["  {", *self._search_c(j, g), f"    t[{j}] = xj - g{j}[c];",
                      f"    h[{j}] = g{j}[c + 1] - g{j}[c];", f"    base += c * {pstride[j]}L;", "  }"]
        lines.append(f"  for (long q = 0; q < {gathered}; ++q) r[q] = nd[base + off[q]];  /* the cell's corners */")
        rows = _transform_rows(kind, _Named())
        done = 1  # nodal numbers to power coefficients, axis by axis (the rows of _transform_rows), zeros skipped
        for j in range(n):
            inner = (2 * s) ** (n - 1 - j)
            lines += ["  {", f"    const double hj = h[{j}], ih = 1.0 / hj;"]
            for u in range(done):
                for p, row in enumerate(rows):
                    for i in range(inner):
                        at = [(wt, f"r[{(u * 2 * s + a) * inner + i}]") for a, wt in enumerate(row) if wt != "0.0"]
                        terms = [r if wt == "1.0" else f"{wt} * {r}" for wt, r in at]
                        lines.append(f"    tmp[{(u * (kind + 1) + p) * inner + i}] = {' + '.join(terms)};")
            size = done * (kind + 1) * inner
            lines += [f"    for (long q = 0; q < {size}; ++q) r[q] = tmp[q];", "  }"]
            done *= kind + 1
        lines.append(f"  for (long q = 0; q < {block}; ++q) r[q] = r[q] * fac[q];  /* d^o t^p = p!/(p-o)! t^(p-o) */")
        outer = block
        for j in range(n - 1, -1, -1):
            inner = kind + 1
            outer //= inner
            lines += [f"  for (long u = 0; u < {outer}; ++u) {{",
                      f"    double acc = r[u * {inner} + {inner - 1}];",
                      f"    for (long p = {inner - 2}; p >= o[{j}]; --p) acc = r[u * {inner} + p] + t[{j}] * acc;",
                      "    r[u] = acc;",
                      "  }"]
        nan = " || ".join(f"x[{j}] != x[{j}]" for j in range(n))
        lines += [f"  res[0][0] = ({nan}) ? NAN : r[0];", "}\n"]
        return "\n".join(lines), 0

    def _search_c(self, j: int, g: np.ndarray) -> list[str]:
        """C lines setting ``c``: the last of ``g_j[0..cells-1]`` ``<=`` ``xj``, else 0 (below the grid, NaN)."""
        c = self.cells[j]
        lines = [f"    /* axis {j}: the last of g{j}[0..{c - 1}] <= x[{j}], else 0 (below the grid, NaN) */",
                 f"    const double xj = x[{j}];"]
        if c > 1 and _nearly_uniform(g):
            step = float(g[-1] - g[0]) / c
            return lines + ["    /* nearly uniform: a guess from the mean step, off by one at most, then fixed */",
                            f"    double u = (xj - {float(g[0])!r}) * {1.0 / step!r};",
                            "    long c;",
                            "    u = u > 0.0 ? u : 0.0;",
                            f"    u = u < {c - 1}.0 ? u : {c - 1}.0;",
                            "    c = (long)u;",
                            f"    while (c < {c - 1} && g{j}[c + 1] <= xj) ++c;",
                            f"    while (c > 0 && g{j}[c] > xj) --c;"]
        return lines + ["    /* branch-free halving (a conditional move), the answer in [c, c + len) */",
                        f"    long c = 0, len = {c};",
                        "    while (len > 1) {",
                        "      long half = len / 2;",
                        f"      c = g{j}[c + half] <= xj ? c + half : c;",
                        "      len -= half;",
                        "    }"]


class _LookupStructure(NativeStructure):
    """A lookup: derivative ``orders`` of the piecewise polynomial of ``table``; see the module docstring."""

    def __init__(self, table: Any, family: dict, orders: tuple, root: str) -> None:
        t = table.structure
        self.table, self.family, self.orders, self.root = table, family, orders, root
        self.children = (table,)
        self.n, self.flat = t.n, t.flat
        self.degrees = tuple(k - o for k, o in zip(t.degrees, orders))
        self.factors = _factors(t.degrees, orders).reshape(-1)
        super().__init__([() if t.flat else (t.n,)], [()], ["x"], ["y"])
        self.label = (f"interpolant lookup, {t.method} on a {'x'.join(str(c + 1) for c in t.cells)} grid"
                      + (f", derivative {orders} of {root}" if sum(orders) else ""))

    def to_data(self, index: dict) -> tuple:
        """``("native", "lookup", table, orders)``: the table Function's position, the derivative orders."""
        return ("native", "lookup", index[self.table], self.orders)

    # ------------------------------------------------------------ derivatives
    def derivative_function(self, axis: int) -> Any:
        """The lookup Function of ``d/dx_axis`` of this one, or None where that derivative is 0."""
        orders = tuple(o + (j == axis) for j, o in enumerate(self.orders))
        if orders in self.family:
            return self.family[orders]
        F = None
        if self.degrees[axis] > 0:
            suffix = "".join(f"_d{j}" * o for j, o in enumerate(orders))
            F = _LookupStructure(self.table, self.family, orders, self.root).function(self.root + suffix)
        return self.family.setdefault(orders, F)

    def pattern(self) -> Any:
        from .sparsity import Sparsity

        cols = np.array([j for j, k in enumerate(self.degrees) if k > 0], dtype=np.int64)
        return Sparsity(np.zeros(cols.size, dtype=np.int64), cols, (1, self.n))

    def make_rules(self, F: Any) -> dict:
        from .array import symbols
        from .call import call_function
        from .expr import const
        from .function import Function

        x = symbols("x") if self.flat else symbols("x", self.n)
        grads = []
        for j in range(self.n):
            D = self.derivative_function(j)
            grads.append(const(0.0) if D is None else call_function(D, [x]))
        tx = symbols("tx") if self.flat else symbols("tx", self.n)
        txs = [tx] if self.flat else list(tx)
        ty = grads[0] * txs[0]
        for g, t in zip(grads[1:], txs[1:]):
            ty = ty + g * t
        y, ybar = symbols("y"), symbols("ybar")
        xbar = ybar * grads[0] if self.flat else np.array([ybar * g for g in grads], dtype=object)
        return {"jvp": Function(f"{F.name}_jvp_rule", [x, tx], [ty]),
                "vjp": Function(f"{F.name}_vjp_rule", [x, y, ybar], [xbar])}

    # ------------------------------------------------------------ numpy, C
    def evaluate(self, columns: list, width: int) -> list:
        (X,) = columns_as_arrays(columns, self.in_shapes, width)
        t = self.table.structure
        y = _evaluate(t.axes, t.nodal, t.degrees, self.orders, X.reshape(width, self.n))
        return arrays_as_columns([y], width)

    def c_function(self, fname: str, callees: dict) -> tuple[str, int]:
        table = callees[self.table]
        t = self.table.structure
        lines = [f"void {fname}(const double *const *arg, double *const *res, double *w) {{",
                 f"  /* {self.label} */",
                 f"  static const double orders[{self.n}] = {{{', '.join(f'{o}.0' for o in self.orders)}}};",
                 f"  static const double factors[{t.block}] = {{{', '.join(map(repr, self.factors.tolist()))}}};",
                 "  const double *const a[3] = {arg[0], orders, factors};",
                 f"  {table.name}(a, res, w);",
                 "}\n"]
        return "\n".join(lines), table.work_size
