"""Interpolants on rectilinear grids: expanded into graphs for small grids, a lookup node for large ones.

``interpolant(name, method, grid, values)`` returns a :class:`~symgraph.Function`
named ``name`` that maps a query point to the interpolated value, on numbers
and on symbols (a call node) alike.

* ``"linear"``: piecewise linear in 1-D (as ``numpy.interp``) and multilinear
  on N-D rectilinear grids (as ``scipy.interpolate.RegularGridInterpolator``
  with ``method="linear"``).
* ``"bspline"``: cubic interpolating spline with **not-a-knot** end
  conditions, C2 across the grid points; in 1-D the same function as
  ``scipy.interpolate.make_interp_spline(grid, values, k=3)``, on N-D grids
  the tensor product of those (``make_interp_spline`` along each axis in
  turn).  It reproduces every cubic polynomial exactly.

The grid is a 1-D sequence of numbers (the Function then takes a scalar) or a
list of ``N`` such sequences (it takes a vector of length ``N``, and ``values``
has shape ``(m1, ..., mN)``).

Two implementations compute the same piecewise polynomials:

* *expanded* (grids of at most :data:`MAX_EXPANDED_POINTS` points in all,
  ``"bspline"`` in 1-D only): the interval holding the query is selected by
  a chain of ``if_else`` on comparisons with the grid points, the interval's
  coefficients are constants, and the piece is evaluated as a polynomial in
  ``x - g_k``.  So it compiles to straight-line C.
* a *lookup node* (:mod:`symgraph.lookup`; larger grids, N-D ``"bspline"``,
  or any grid with ``expand=False``): one native call holding the grid and
  its nodal data (values, and for ``"bspline"`` the spline's second
  derivatives) as tables, a cell search per axis (``numpy.searchsorted`` in
  the VM, a binary search in C) and Horner's rule on the cell's
  coefficients.  Its derivatives are lookups again (one more derivative
  order on one axis), so every order exists.

Either way derivatives are exact derivatives of the selected piece (first
derivatives of ``"linear"``, any order of ``"bspline"``, which is C2 across
grid points).  At a grid point the piece to its right is used (the left end
piece below ``g_1``, the right end piece at and beyond the last point).

Out-of-grid queries are **extrapolated** with the end intervals' pieces
continued: linearly for ``"linear"`` (per axis in N-D), with the end cubic for
``"bspline"`` (as scipy's ``make_interp_spline`` does by default).  A query
with a NaN entry gives NaN, as numpy and scipy do (a NaN test per axis; the
derivatives there are 0 when expanded, NaN from the lookup node: not
meaningful either way); an infinite one gives the end
piece's limit, ``inf`` or ``-inf`` (NaN may come out where that piece is
flat, ``inf * 0``).

>>> from symgraph.interpolant import interpolant
>>> F = interpolant("f", "linear", [0.0, 1.0, 3.0], [0.0, 2.0, 3.0])
>>> float(F(0.5)), float(F(2.0)), float(F(4.0))
(1.0, 2.5, 3.5)
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .array import builder, symbols
from .errors import InvalidInputError, OptionError, ShapeError
from .expr import Expr, const
from .function import Function

#: Most grid points (the product over the axes) that are expanded into a
#: graph; larger grids become a lookup node (:mod:`symgraph.lookup`).
MAX_EXPANDED_POINTS = 256

#: The interpolation methods and the fewest points each needs per axis.
METHODS = {"linear": 2, "bspline": 4}

_IF_ELSE, _LT, _NE = builder("if_else"), builder("lt"), builder("ne")
_NAN = const(float("nan"))


# ---------------------------------------------------------------- argument checks

def _check_method(method: Any) -> str:
    """``method`` itself, or InvalidInputError naming the known ones."""
    if not isinstance(method, str) or method not in METHODS:
        raise InvalidInputError(f"interpolant: method must be one of {sorted(METHODS)}, got {method!r}")
    return method


def _real_array(data: Any, what: str) -> np.ndarray:
    """``data`` as a float array, or an InvalidInputError naming ``what`` (complex numbers included)."""
    try:
        if np.iscomplexobj(data):
            raise TypeError("complex numbers given")
        return np.asarray(data, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"interpolant: {what} must hold real numbers ({exc})") from None


def _check_axis(g: Any, axis: int, fewest: int, method: str) -> np.ndarray:
    """Grid ``axis`` as a float array, strictly increasing and finite, or an error naming it."""
    arr = _real_array(g, f"grid[{axis}]")
    if arr.ndim != 1:
        raise ShapeError(f"interpolant: grid[{axis}] must be 1-D, got shape {arr.shape}")
    if arr.size < fewest:
        raise ShapeError(f"interpolant: grid[{axis}] has {arr.size} points; method {method!r} needs "
                         f"at least {fewest}")
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError(f"interpolant: grid[{axis}] has NaN or inf entries: {arr.tolist()}")
    steps = np.diff(arr)
    if not np.all(steps > 0):
        k = int(np.argmin(steps > 0))
        raise InvalidInputError(f"interpolant: grid[{axis}] must be strictly increasing, but "
                                f"grid[{axis}][{k}] = {arr[k]!r} >= grid[{axis}][{k + 1}] = {arr[k + 1]!r}")
    return arr


def _check_grid(grid: Any, method: str) -> tuple[list[np.ndarray], bool]:
    """The axes of ``grid`` and whether it was given flat (1-D, scalar query)."""
    if isinstance(grid, np.ndarray) and grid.dtype != object and grid.ndim == 1:
        flat = True
    elif isinstance(grid, (list, tuple, np.ndarray)) and len(grid) > 0:
        flat = all(np.ndim(g) == 0 for g in grid)
    else:
        raise InvalidInputError(f"interpolant: grid must be a non-empty sequence of numbers or of "
                                f"1-D grids, got {grid!r}")
    axes = [grid] if flat else list(grid)
    fewest = METHODS[method]
    checked = [_check_axis(g, j, fewest, method) for j, g in enumerate(axes)]
    return checked, flat


def _check_expand(expand: Any, method: str, axes: list[np.ndarray]) -> bool:
    """Whether to expand the interpolant into a graph (``expand`` None: where allowed), or an error."""
    if expand is not None and not isinstance(expand, (bool, np.bool_)):
        raise OptionError(f"interpolant: expand must be True, False or None, got {expand!r}")
    total = int(np.prod([g.size for g in axes], dtype=object))
    can = total <= MAX_EXPANDED_POINTS and (method == "linear" or len(axes) == 1)
    if expand is None:
        return can
    if expand and not can:
        why = (f"method 'bspline' is expanded in 1-D only; the grid has {len(axes)} axes"
               if total <= MAX_EXPANDED_POINTS else
               f"the grid has {total} points, more than MAX_EXPANDED_POINTS = {MAX_EXPANDED_POINTS} "
               f"that are expanded into a graph")
        raise ShapeError(f"interpolant: expand=True, but {why}; use expand=None or False for the lookup "
                         f"node with binary search")
    return bool(expand)


def _check_values(values: Any, axes: list[np.ndarray]) -> np.ndarray:
    """``values`` as a finite float array of the grid's shape, or an error naming it."""
    arr = _real_array(values, "values")
    shape = tuple(g.size for g in axes)
    if arr.shape != shape:
        raise ShapeError(f"interpolant: values must have shape {shape} (the grid's point counts), "
                         f"got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError("interpolant: values has NaN or inf entries")
    return arr


# ---------------------------------------------------------------- graph pieces

def _select(conds: list[Expr], items: Sequence[Any]) -> Any:
    """``items[k]`` for the first ``k`` with ``conds[k]`` true, else the last item.

    ``conds`` has one entry fewer than ``items``; the chain is built from the
    end, so nothing recurses.
    """
    out = items[-1]
    for k in range(len(items) - 2, -1, -1):
        out = _IF_ELSE(conds[k], items[k], out)
    return out


def _interval_conds(x: Expr, g: np.ndarray) -> list[Expr]:
    """``x < g[k + 1]`` for the interior points: the interval chooser of :func:`_select`."""
    return [_LT(x, const(float(gk))) for gk in g[1:-1]]


def _c(v: Any) -> Any:
    """A number as a constant node, an Expr unchanged."""
    return v if isinstance(v, Expr) else const(float(v))


def _lerp_axis(x: Expr, g: np.ndarray, V: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``V`` (numbers or Exprs) along its first axis at ``x``."""
    conds = _interval_conds(x, g)
    h = np.diff(g)
    t = (x - _select(conds, [const(float(v)) for v in g[:-1]])) * _select(conds, [const(1.0 / v) for v in h])
    flat = V.reshape(V.shape[0], -1)
    out = np.empty(flat.shape[1], dtype=object)
    for r in range(flat.shape[1]):
        col = flat[:, r]
        lo = _select(conds, [_c(v) for v in col[:-1]])
        step = _select(conds, [_c(col[k + 1] - col[k]) for k in range(len(col) - 1)])
        out[r] = lo + t * step
    return out.reshape(V.shape[1:])


def _linear(xs: list[Expr], axes: list[np.ndarray], values: np.ndarray) -> Expr:
    """Multilinear interpolation, one axis at a time (the first axis first)."""
    V: np.ndarray = values.astype(object)
    for x, g in zip(xs, axes):
        V = _lerp_axis(x, g, V)
    return V[()]


def not_a_knot_coefficients(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-interval coefficients ``(y_k, b_k, c_k, d_k)`` of the not-a-knot cubic spline.

    On ``[g[k], g[k+1]]`` the spline is ``y_k + b_k t + c_k t**2 + d_k t**3``
    with ``t = x - g[k]``.  The second derivatives ``M`` at the grid points
    solve the C2 conditions at the interior points plus a continuous third
    derivative at ``g[1]`` and ``g[-2]``.

    >>> import numpy as np
    >>> g = np.array([0.0, 1.0, 2.0, 3.0])
    >>> not_a_knot_coefficients(g, g**3)[1].round(12).tolist()  # (x)^3 around 1
    [1.0, 3.0, 3.0, 1.0]
    """
    m = g.size
    h = np.diff(g)
    slope = np.diff(y) / h
    A = np.zeros((m, m))
    rhs = np.zeros(m)
    for i in range(1, m - 1):
        A[i, i - 1:i + 2] = h[i - 1], 2.0 * (h[i - 1] + h[i]), h[i]
        rhs[i] = 6.0 * (slope[i] - slope[i - 1])
    A[0, :3] = h[1], -(h[0] + h[1]), h[0]
    A[-1, -3:] = h[-1], -(h[-2] + h[-1]), h[-2]
    M = np.linalg.solve(A, rhs)
    b = slope - h * (2.0 * M[:-1] + M[1:]) / 6.0
    d = (M[1:] - M[:-1]) / (6.0 * h)
    return np.column_stack([y[:-1], b, M[:-1] / 2.0, d])


def _cubic(x: Expr, g: np.ndarray, y: np.ndarray) -> Expr:
    """The not-a-knot spline at ``x``: coefficients selected, then Horner in ``x - g_k``."""
    conds = _interval_conds(x, g)
    coef = not_a_knot_coefficients(g, y)
    t = x - _select(conds, [const(float(v)) for v in g[:-1]])
    c0, c1, c2, c3 = (_select(conds, [const(float(v)) for v in coef[:, j]]) for j in range(4))
    return c0 + t * (c1 + t * (c2 + t * c3))


# ---------------------------------------------------------------- public

def interpolant(name: str, method: str, grid: Any, values: Any, *, expand: bool | None = None) -> Function:
    """A Function ``name`` interpolating ``values`` on a rectilinear ``grid``.

    Args:
        name: the Function's name.
        method: ``"linear"`` (1-D or N-D, multilinear) or ``"bspline"``
            (cubic, not-a-knot, as ``scipy.interpolate.make_interp_spline(k=3)``;
            on N-D grids its tensor product).
        grid: a strictly increasing 1-D sequence of numbers (the Function
            takes a scalar), or a list of ``N`` of them (it takes a vector of
            length ``N``); at least 2 points per axis (4 for ``"bspline"``).
        values: finite numbers of shape ``(m1, ..., mN)``, ``mj`` the length
            of axis ``j``.
        expand: ``None`` (default): expanded into a graph where it can be
            (at most :data:`MAX_EXPANDED_POINTS` grid points, ``"bspline"``
            in 1-D), else a lookup node; ``True``: expanded (or ShapeError);
            ``False``: a lookup node (:mod:`symgraph.lookup`) whatever the size.

    Returns:
        A Function with one input ``x`` and one scalar output.  Queries
        outside the grid are extrapolated with the end pieces (linear for
        ``"linear"``, the end cubic for ``"bspline"``).

    Raises:
        InvalidInputError: unknown method, NaN/inf, grid not strictly increasing.
        ShapeError: too few points, values of the wrong shape, ``expand=True``
            for a grid that is not expanded.
        OptionError: ``expand`` not True, False or None.

    >>> import numpy as np, symgraph as sg
    >>> from symgraph.interpolant import interpolant
    >>> g = np.linspace(0.0, 3.0, 5)
    >>> S = interpolant("s", "bspline", g, g**3)
    >>> x = sg.symbols("x")
    >>> dS = sg.Function("ds", [x], [sg.grad(S(x), x)])
    >>> round(float(S(1.2)), 12), round(float(dS(1.2)), 12)
    (1.728, 4.32)
    >>> L = interpolant("l", "linear", [[0.0, 1.0], [0.0, 2.0]], [[0.0, 2.0], [1.0, 3.0]])
    >>> float(L(np.array([0.5, 1.0])))
    1.5
    >>> g = np.linspace(0.0, 10.0, 1001)   # more than MAX_EXPANDED_POINTS: a lookup node
    >>> B = interpolant("b", "bspline", g, np.sin(g))
    >>> d2 = sg.Function("d2", [x], [sg.hessian(B(x), x)])
    >>> bool(abs(float(B(2.0)) - np.sin(2.0)) < 1e-10), bool(abs(d2(2.0).toarray()[0, 0] + np.sin(2.0)) < 1e-4)
    (True, True)
    """
    method = _check_method(method)
    axes, flat = _check_grid(grid, method)
    vals = _check_values(values, axes)
    if not _check_expand(expand, method, axes):
        from .lookup import lookup_function

        return lookup_function(name, method, axes, vals, flat=flat)
    x = symbols("x") if flat else symbols("x", len(axes))
    xs = [x] if flat else list(x)
    body = _cubic(xs[0], axes[0], vals) if method == "bspline" else _linear(xs, axes, vals)
    for xj in xs:  # NaN in, NaN out, even where the pieces fold to constants (a flat axis)
        body = _IF_ELSE(_NE(xj, xj), _NAN, body)
    return Function(name, [x], [body])


interpolant.MAX_EXPANDED_POINTS = MAX_EXPANDED_POINTS  # reachable as sg.interpolant.MAX_EXPANDED_POINTS
