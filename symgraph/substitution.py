"""Substitution: replace symbols by expressions throughout a graph.

:func:`substitute` rebuilds every node that depends on a replaced symbol
through the ordinary construction path (``apply``), so the local
simplifications and hash-consing apply to the result: substituting
``x -> 2, y -> 5`` in ``x * y + z`` gives ``10 + z``, and building the result
directly gives the very same node.  Nodes that do not depend on a replaced symbol are
returned as they are (the same objects).  One pass over the topological
order, no recursion: graphs a million nodes deep are fine.

Typical use is nested differentiation: take a derivative with respect to
``x``, evaluate it at an expression point ``x = h(y)``, and differentiate
the result with respect to ``y`` (saddle points, bilevel problems, implicit
functions), as CasADi's ``substitute`` does.

>>> import numpy as np, symgraph as sg
>>> x, y = sg.symbols("x", 2), sg.symbols("y")
>>> f = x[0] ** 2 * x[1] + sg.sin(x[1])
>>> g = sg.grad(f, x)                                 # [2 x0 x1, x0^2 + cos(x1)]
>>> gy = substitute(g, x, [y, 3 * y])                 # g at x = (y, 3y): sg.substitute
>>> dg = sg.jacobian(gy, y)                           # d/dy of g(y, 3y)
>>> F = sg.Function("dg", [y], [dg])
>>> np.round(F(0.5).toarray().ravel(), 12).tolist()   # [12 y, 2 y - 3 sin(3y)]
[6.0, -1.992484959812]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InvalidInputError, ShapeError
from .expr import SYMBOL, Expr, _binary, _unary, apply, building, const, topological
from .sparse import SparseExpr
from .call import rebuild

__all__ = ["substitute"]


def substitute(exprs: Any, old: Any, new: Any):
    """``exprs`` with every symbol of ``old`` replaced by the matching value of ``new``.

    Args:
        exprs: an Expr or number, a numpy array of them (any shape), a
            :class:`~symgraph.SparseExpr`, or a list/tuple of any of these
            (nested).  The result has the same structure: an Expr for an
            Expr or number, an object array of the same shape, a SparseExpr
            with the same pattern, a list or tuple.
        old: a symbol, an array-like of distinct symbols (any shape), or a
            list/tuple of such groups (``[x, p]`` with ``x`` an array).
        new: values matching ``old`` element by element, the same shape
            (or the same groups): Exprs or real numbers.

    The replacement is simultaneous: a symbol that occurs in a new value is
    not replaced again (``substitute(f, [x, y], [y, x])`` swaps them).
    Symbols of ``old`` that ``exprs`` does not use are ignored.

    Raises:
        InvalidInputError: an element of ``old`` is not a symbol, or a symbol
            is listed twice.
        ShapeError: ``new`` does not have the shape of ``old``.
        NonNumericConstantError: a value of ``new`` is neither an Expr nor a
            real number.

    >>> import symgraph as sg
    >>> x, y, z = sg.symbols("x"), sg.symbols("y"), sg.symbols("z")
    >>> str(substitute(sg.sin(x) * y + z, x, y ** 2))
    'sin(y**2) * y + z'
    >>> str(substitute(x * y + z, [x, y], [2, 5]))             # folded at construction
    '10 + z'
    >>> substitute(x * y, y, 1) is x                            # simplified and interned
    True
    >>> [str(e) for e in substitute([x - y, 2 * z], [x, y], [y, x])]  # simultaneous
    ['y - x', '2 * z']
    """
    mapping = _mapping(old, new)
    roots: list[Expr] = []
    _collect(exprs, roots)
    with building():
        replaced = _rebuild(roots, mapping)
    return _rebuild_structure(exprs, replaced)


# ---------------------------------------------------------------- arguments
def _groups(old: Any, new: Any) -> list[tuple[Any, Any]]:
    """``old``/``new`` as (symbols, values) groups: one group unless ``old`` lists arrays."""
    if isinstance(old, (list, tuple)) and any(isinstance(o, (np.ndarray, list, tuple)) for o in old):
        if not isinstance(new, (list, tuple)) or len(new) != len(old):
            given = f"a {type(new).__name__} of length {len(new)}" if isinstance(new, (list, tuple)) \
                else f"a {type(new).__name__}"
            raise ShapeError(f"substitute: old lists {len(old)} groups of symbols, so new must be a list of "
                             f"{len(old)} values (one per group); got {given}")
        return list(zip(old, new))
    return [(old, new)]


def _mapping(old: Any, new: Any) -> dict[Expr, Expr]:
    """Symbol -> replacement, checked: symbols only, no repeats, matching shapes."""
    from .array import as_expr_array

    mapping: dict[Expr, Expr] = {}
    groups = _groups(old, new)
    grouped = groups[0][0] is not old
    for g, (olds, news) in enumerate(groups):
        old_arr = np.array(olds, dtype=object) if isinstance(olds, Expr) else np.asarray(olds, dtype=object)
        new_arr = as_expr_array(news)
        where = f" (group {g})" if grouped else ""
        if old_arr.shape != new_arr.shape:
            raise ShapeError(f"substitute: new must have the shape of old{where}, {old_arr.shape}; "
                             f"got shape {new_arr.shape}")
        for j, (s, v) in enumerate(zip(old_arr.reshape(-1).tolist(), new_arr.reshape(-1).tolist())):
            if type(s) is not Expr or s.op is not SYMBOL:
                shown = str(s) if type(s) is Expr else repr(s)
                at = f" at flat index {j}" if old_arr.ndim else ""
                raise InvalidInputError(f"substitute: can only replace symbols; old{where}{at} is "
                                        f"{shown[:80]}, expected a symbol made by sg.symbols")
            if s in mapping:
                raise InvalidInputError(f"substitute: symbol {s.data!r} appears twice in old; "
                                        "expected distinct symbols")
            mapping[s] = v
    return mapping


# ---------------------------------------------------------------- structure
def _collect(exprs: Any, roots: list[Expr]) -> None:
    """Append the Exprs of ``exprs`` (any supported structure) to ``roots``, in order."""
    from .array import as_expr_array

    if type(exprs) is Expr:
        roots.append(exprs)
    elif isinstance(exprs, SparseExpr):
        roots.extend(exprs.values.tolist())
    elif isinstance(exprs, (list, tuple)):
        for item in exprs:
            _collect(item, roots)
    elif isinstance(exprs, np.ndarray):
        roots.extend(as_expr_array(exprs).reshape(-1).tolist())
    else:
        roots.append(const(exprs))


def _rebuild_structure(exprs: Any, replaced: list[Expr]):
    """``exprs``'s structure filled with ``replaced`` (consumed in :func:`_collect`'s order)."""
    values = iter(replaced)

    def fill(item: Any):
        if isinstance(item, SparseExpr):
            out = SparseExpr(item.rows, item.cols, [next(values) for _ in range(item.nnz)], item.shape)
            out.mode, out.n_colors = item.mode, item.n_colors
            return out
        if isinstance(item, tuple):
            return tuple(fill(e) for e in item)
        if isinstance(item, list):
            return [fill(e) for e in item]
        if isinstance(item, np.ndarray):
            out = np.empty(item.size, dtype=object)
            out[:] = [next(values) for _ in range(item.size)]
            return out.reshape(item.shape)
        return next(values)

    return fill(exprs)


# ------------------------------------------------------------------- graphs
def _rebuild(roots: list[Expr], mapping: dict[Expr, Expr]) -> list[Expr]:
    """Each root with the symbols of ``mapping`` replaced (one topological pass).

    Only nodes whose operands changed are rebuilt, through the construction path (``apply``);
    a call node becomes the same callee's call on the new operands, its results the new call's
    (the callee's own graph is not touched: its symbols are its own).

    >>> import symgraph as sg
    >>> x, y = sg.symbols("x"), sg.symbols("y")
    >>> [str(r) for r in _rebuild([x + 1, y], {x: sg.const(2.0)})]
    ['3', 'y']
    """
    done = dict(mapping)  # original node -> its replacement (changed nodes only)
    get = done.get
    for node in topological(roots):
        args = node.args
        if node.data is not None:  # a call or result node (leaves have no args)
            if args:
                new_args = [get(a, a) for a in args]
                if any(a is not b for a, b in zip(args, new_args)):
                    done[node] = rebuild(node, new_args)
        elif len(args) == 2:  # the common cases, unrolled
            a, b = args
            na, nb = get(a, a), get(b, b)
            if na is not a or nb is not b:
                done[node] = _binary(node.op, na, nb)
        elif len(args) == 1:
            a = args[0]
            na = get(a, a)
            if na is not a:
                done[node] = _unary(node.op, na)
        elif args:
            new_args = [get(a, a) for a in args]
            if any(a is not b for a, b in zip(args, new_args)):
                done[node] = apply(node.op, *new_args)
    return [get(r, r) for r in roots]
