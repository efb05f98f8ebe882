"""The interpolant lookup node: a tensor-product piecewise polynomial, one native call.

:func:`symgraph.interpolant.interpolant` expands small grids into ``if_else``
chains; larger ones (or any with ``expand=False``) become one call of a
native Function (:mod:`symgraph.native`) made here by
:func:`lookup_function`.  It holds, as constants known when it is built:

* the breakpoints of each axis ``j`` (``m_j`` strictly increasing numbers,
  ``m_j - 1`` cells);
* per cell, the coefficients of a polynomial of degree ``k_j`` in each
  local coordinate ``t_j = x_j - g_j[i_j]`` (power basis), an array of shape
  ``(m_1 - 1, ..., m_N - 1, k_1 + 1, ..., k_N + 1)``.

A query finds its cell on each axis by **binary search** (the last
breakpoint ``<=`` the coordinate, clipped to the first and last cells:
out-of-grid queries continue the end pieces, a query on a grid point takes
the piece to its right) and evaluates the cell's polynomial by Horner's
rule, the last axis first.  The VM does this with ``numpy.searchsorted``
over all points at once; the C has the tables as ``static const double``
arrays and the same binary search and Horner loops (so its text grows with
the table: about 20 bytes per number).  A query with a NaN coordinate gives
NaN.

The derivative with respect to ``x_j`` is the same kind of node with the
coefficients differentiated along axis ``j`` (degree ``k_j - 1``; a degree 0
axis has derivative 0), so derivatives of every order are lookups again,
exact for the piecewise polynomial.  All the derivatives of one lookup share
one cache, so ``d/dx d/dy`` and ``d/dy d/dx`` are the same Function (one
node), and one **table** Function (their only child): the C of the tables
and of the evaluator is emitted once, and each lookup is a three-line C
function calling it with its derivative orders (the evaluator multiplies
each coefficient by the exact integer ``prod p_j! / (p_j - o_j)!`` and skips
the powers below the order).

>>> import numpy as np, symgraph as sg
>>> g = np.linspace(0.0, 2.0, 5)
>>> axes, coef = tensor_coefficients([g], 3.0 * g, "linear")  # f(x) = 3 x: (3 g_i, 3) per cell
>>> coef.shape
(4, 2)
>>> L = lookup_function("l", [g], coef, flat=True)
>>> x = sg.symbols("x")
>>> D = sg.Function("d", [x], [L(x), sg.grad(L(x), x)])
>>> [float(v) for v in D(0.75)]
[2.25, 3.0]
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .native import NativeStructure, arrays_as_columns, columns_as_arrays

__all__ = ["lookup_function", "tensor_coefficients", "is_lookup"]


# ------------------------------------------------------------------ coefficients
def _linear_axis(g: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Per-cell ``(v_i, (v_{i+1} - v_i) / h_i)`` along the first axis of ``V``: shape ``(m - 1, 2, ...)``."""
    h = np.diff(g).reshape((-1,) + (1,) * (V.ndim - 1))
    return np.stack([V[:-1], np.diff(V, axis=0) / h], axis=1)


def _cubic_axis(g: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Per-cell not-a-knot cubic coefficients along the first axis of ``V``: shape ``(m - 1, 4, ...)``.

    The second derivatives ``M`` at the grid points solve the C2 conditions
    plus a continuous third derivative at ``g[1]`` and ``g[-2]`` (the system
    of :func:`symgraph.interpolant.not_a_knot_coefficients`), for all the
    columns of ``V`` at once.  The system is tridiagonal but for one entry in
    the first and the last row; those are eliminated with rows 1 and
    ``m - 2``, and LAPACK's banded LU with partial pivoting
    (``scipy.linalg.solve_banded``) does the rest, in ``O(m)``.
    """
    from scipy.linalg import solve_banded

    m = g.size
    rest = V.shape[1:]
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
    # row m-1: h[-1] M[-3] - (h[-2] + h[-1]) M[-2] + h[-2] M[-1] = 0; minus (h[-1] / h[-3]) row m-2
    f = h[-1] / h[-2]
    lower[-1], diag[-1] = -(h[-2] + h[-1]) - f * 2.0 * (h[-2] + h[-1]), h[-2] - f * h[-1]
    rhs[-1] = -f * rhs[-2]
    ab = np.zeros((3, m))
    ab[0, 1:], ab[1], ab[2, :-1] = upper[:-1], diag, lower[1:]
    M = solve_banded((1, 1), ab, rhs)
    b = slope - h[:, None] * (2.0 * M[:-1] + M[1:]) / 6.0
    d = (M[1:] - M[:-1]) / (6.0 * h[:, None])
    out = np.stack([Y[:-1], b, M[:-1] / 2.0, d], axis=1)
    return out.reshape((m - 1, 4) + rest)


def tensor_coefficients(axes: Sequence[np.ndarray], values: np.ndarray, method: str) -> tuple[list, np.ndarray]:
    """The breakpoints and per-cell power coefficients interpolating ``values`` on the grid ``axes``.

    ``method`` ``"linear"`` (degree 1 on every axis: multilinear) or
    ``"bspline"`` (degree 3: the tensor product of 1-D not-a-knot cubic
    splines, as ``make_interp_spline(k=3)`` along each axis).  Inputs are
    checked by :func:`symgraph.interpolant.interpolant`, not here.

    Returns ``(axes, coef)``, ``coef`` of shape ``(m_1 - 1, ..., m_N - 1,
    k + 1, ..., k + 1)``.

    >>> g = np.array([0.0, 1.0, 3.0])
    >>> _, c = tensor_coefficients([g], np.array([0.0, 2.0, 3.0]), "linear")
    >>> c.tolist()
    [[0.0, 2.0], [2.0, 0.5]]
    """
    axes = [np.asarray(g, dtype=float) for g in axes]
    per_axis = _linear_axis if method == "linear" else _cubic_axis
    C = np.asarray(values, dtype=float)
    n = len(axes)
    for j, g in enumerate(axes):
        # axis j (now at position j) to the front, its cells and powers back at j and at the end
        C = np.moveaxis(per_axis(g, np.moveaxis(C, j, 0)), (0, 1), (j, C.ndim))
    # C now has the cell axes at 0..n-1 and the power axes at n..2n-1 in axis order
    assert C.ndim == 2 * n
    return axes, np.ascontiguousarray(C)


# ------------------------------------------------------------------ the Function
def lookup_function(name: str, axes: Sequence[np.ndarray], coef: np.ndarray, flat: bool) -> Any:
    """The native Function ``x -> p(x)`` of a tensor-product piecewise polynomial (see the module docstring).

    Args:
        name: the Function's name.
        axes: the breakpoints of each axis, strictly increasing (not checked).
        coef: per-cell power coefficients, shape ``(m_1 - 1, ..., m_N - 1, k_1 + 1, ..., k_N + 1)``.
        flat: the Function takes a scalar (1-D only) instead of a vector of length ``N``.

    >>> import numpy as np
    >>> g = np.array([0.0, 1.0, 2.0])
    >>> F = lookup_function("sq", [g], np.array([[0.0, 0.0, 1.0], [1.0, 2.0, 1.0]]), flat=True)  # x^2
    >>> [float(F(v)) for v in (0.5, 1.5, 3.0, -1.0)]
    [0.25, 2.25, 9.0, 1.0]
    """
    axes = [np.ascontiguousarray(g, dtype=float) for g in axes]
    coef = np.ascontiguousarray(coef, dtype=float)
    table = _TableStructure(axes, coef, bool(flat), name).function(f"{name}_table")
    s = _LookupStructure(table, {}, (0,) * len(axes), name)
    F = s.function(name)
    s.family[s.orders] = F
    return F


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


def _evaluate(axes: list, coef: np.ndarray, orders: tuple, X: np.ndarray) -> np.ndarray:
    """The order-``orders`` derivative of the piecewise polynomial at the rows of ``X`` (``(width, N)``)."""
    n, width = len(axes), X.shape[0]
    degrees = tuple(c - 1 for c in coef.shape[n:])
    idx, ts = [], []
    for j, g in enumerate(axes):
        xj = X[:, j]
        i = np.clip(np.searchsorted(g, xj.real, side="right") - 1, 0, g.size - 2)
        idx.append(i)
        ts.append(xj - g[i])
    C = coef[tuple(idx)] * _factors(degrees, orders)  # (width, k_1 + 1, ..., k_N + 1)
    if np.iscomplexobj(X):
        C = C.astype(X.dtype)
    for j in range(n - 1, -1, -1):  # Horner along the last power axis, the last coordinate first
        t = ts[j].reshape((width,) + (1,) * (C.ndim - 2))
        acc = C[..., -1]
        for p in range(C.shape[-1] - 2, orders[j] - 1, -1):
            acc = C[..., p] + t * acc
        C = acc
    return np.where(np.isnan(X).any(axis=1), np.nan, C)


class _TableStructure(NativeStructure):
    """``(x, orders) -> d^orders p(x)``: the tables and the C evaluator shared by a lookup and its derivatives.

    Never called in a graph: the lookups (:class:`_LookupStructure`) call its
    C function with their derivative orders, so a Function using a value,
    gradient and Hessian holds the tables once.
    """

    savable = False

    def __init__(self, axes: list, coef: np.ndarray, flat: bool, root: str) -> None:
        self.axes, self.coef, self.flat = axes, coef, flat
        self.n = len(axes)
        self.cells = tuple(g.size - 1 for g in axes)
        self.degrees = tuple(c - 1 for c in coef.shape[self.n:])
        super().__init__([() if flat else (self.n,), (self.n,)], [()], ["x", "orders"], ["y"])
        self._tables: list | None = None
        self.label = (f"interpolant table of {root}: {'x'.join(str(c + 1) for c in self.cells)} grid, degree "
                      f"{'x'.join(map(str, self.degrees))}, {coef.size} coefficients, binary search")

    def to_data(self, index: dict) -> tuple:
        """An identity record for the compile cache's digest: the tables by their hash (not loadable)."""
        import hashlib

        h = hashlib.blake2b(digest_size=32)
        for a in (*self.axes, self.coef):
            h.update(repr(a.shape).encode())
            h.update(a.tobytes())
        return ("native", "lookup_table", self.flat, self.coef.shape, h.hexdigest())

    def evaluate(self, columns: list, width: int) -> list:
        X, orders = columns_as_arrays(columns, self.in_shapes, width)
        (o,) = {tuple(int(v) for v in row.real) for row in np.asarray(orders).reshape(width, self.n)}
        return arrays_as_columns([_evaluate(self.axes, self.coef, o, X.reshape(width, self.n))], width)

    def c_function(self, fname: str, callees: dict) -> tuple[str, int]:
        n, block = self.n, int(np.prod([k + 1 for k in self.degrees]))
        sizes = [k + 1 for k in self.degrees]
        if self._tables is None:  # the numbers as C text once (the backend may ask more than once)
            self._tables = []
            for j, g in enumerate(self.axes):
                self._tables += [f"  static const double g{j}[{g.size}] = {{", _c_numbers(g), "  };"]
            self._tables += [f"  static const double cf[{self.coef.size}] = {{", _c_numbers(self.coef), "  };"]
        lines = [f"void {fname}(const double *const *arg, double *const *res, double *w) {{",
                 f"  /* {self.label} */",
                 *self._tables,
                  f"  static const long size[{n}] = {{{', '.join(map(str, sizes))}}};",
                  "  const double *x = arg[0];",
                  f"  double t[{n}], r[{block}];",
                  f"  long o[{n}], cell = 0;",
                  "  (void)w;",
                  f"  for (long j = 0; j < {n}; ++j) o[j] = (long)arg[1][j];"]
        for j, g in enumerate(self.axes):
            c = self.cells[j]
            if c > 1 and _nearly_uniform(g):
                h = float(g[-1] - g[0]) / c
                lines += ["  {",
                          f"    /* axis {j}: the last of g{j}[0..{c - 1}] <= x[{j}], else 0 (below the grid, NaN); */",
                          "    /* nearly uniform: a guess from the mean step, off by one at most, then fixed */",
                          f"    const double xj = x[{j}];",
                          f"    double u = (xj - {float(g[0])!r}) * {1.0 / h!r};",
                          "    long lo;",
                          "    u = u > 0.0 ? u : 0.0;",
                          f"    u = u < {c - 1}.0 ? u : {c - 1}.0;",
                          "    lo = (long)u;",
                          f"    while (lo < {c - 1} && g{j}[lo + 1] <= xj) ++lo;",
                          f"    while (lo > 0 && g{j}[lo] > xj) --lo;",
                          f"    t[{j}] = xj - g{j}[lo];",
                          f"    cell = cell * {c} + lo;",
                          "  }"]
                continue
            lines += ["  {",
                      f"    /* axis {j}: the last of g{j}[0..{c - 1}] <= x[{j}], else 0 (below the grid, NaN); */",
                      "    /* branch-free halving (a conditional move), the answer in [lo, lo + len) */",
                      f"    const double xj = x[{j}];",
                      f"    long lo = 0, len = {c};",
                      "    while (len > 1) {",
                      "      long half = len / 2;",
                      f"      lo = g{j}[lo + half] <= xj ? lo + half : lo;",
                      "      len -= half;",
                      "    }",
                      f"    t[{j}] = xj - g{j}[lo];",
                      f"    cell = cell * {c} + lo;",
                      "  }"]
        lines += [f"  for (long q = 0; q < {block}; ++q) {{",
                  "    /* the derivative's factor prod_j p_j! / (p_j - o_j)!, an exact integer */",
                  "    double f = 1.0;",
                  "    long rem = q;",
                  f"    for (long j = {n - 1}; j >= 0; --j) {{",
                  "      long p = rem % size[j];",
                  "      rem /= size[j];",
                  "      for (long i = 0; i < o[j]; ++i) f *= (double)(p - i);",
                  "    }",
                  f"    r[q] = cf[cell * {block} + q] * f;",
                  "  }"]
        outer = block
        for j in range(n - 1, -1, -1):
            inner = self.degrees[j] + 1
            outer //= inner
            lines += [f"  for (long u = 0; u < {outer}; ++u) {{",
                      f"    double acc = r[u * {inner} + {inner - 1}];",
                      f"    for (long p = {inner - 2}; p >= o[{j}]; --p) acc = r[u * {inner} + p] + t[{j}] * acc;",
                      "    r[u] = acc;",
                      "  }"]
        nan = " || ".join(f"x[{j}] != x[{j}]" for j in range(n))
        lines += [f"  res[0][0] = ({nan}) ? NAN : r[0];", "}\n"]
        return "\n".join(lines), 0


class _LookupStructure(NativeStructure):
    """A lookup: derivative ``orders`` of the piecewise polynomial of ``table``; see the module docstring."""

    savable = False

    def __init__(self, table: Any, family: dict, orders: tuple, root: str) -> None:
        t = table.structure
        self.table, self.family, self.orders, self.root = table, family, orders, root
        self.children = (table,)
        self.n, self.flat = t.n, t.flat
        self.degrees = tuple(k - o for k, o in zip(t.degrees, orders))
        self._factors = _factors(t.degrees, orders)
        super().__init__([() if t.flat else (t.n,)], [()], ["x"], ["y"])
        self.label = (f"interpolant lookup, {'x'.join(str(c + 1) for c in t.cells)} grid, degree "
                      f"{'x'.join(map(str, t.degrees))}, binary search"
                      + (f", derivative {orders} of {root}" if sum(orders) else ""))

    def to_data(self, index: dict) -> tuple:
        """An identity record for the compile cache's digest (the table is a child)."""
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
        return arrays_as_columns([_evaluate(t.axes, t.coef, self.orders, X.reshape(width, self.n))], width)

    def c_function(self, fname: str, callees: dict) -> tuple[str, int]:
        table = callees[self.table]
        lines = [f"void {fname}(const double *const *arg, double *const *res, double *w) {{",
                 f"  /* {self.label} */",
                 f"  static const double orders[{self.n}] = {{{', '.join(f'{o}.0' for o in self.orders)}}};",
                 "  const double *const a[2] = {arg[0], orders};",
                 f"  {table.name}(a, res, w);",
                 "}\n"]
        return "\n".join(lines), table.work_size
