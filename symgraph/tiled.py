"""Tiled NLP derivatives: each mapped term differentiated once, its nonzeros placed by index arrays.

An NLP written with maps (``term.map(N, reduce="sum")(x[:-1], x[1:])``,
``interval.map(N)(X[:-1], U) - X[1:]``) is a sum of *pieces*: results of
map calls whose operands are decision variables or do not depend on them
(parameters, constants), times constant coefficients, plus a remainder.
For those pieces :func:`tiled_derivatives` builds, ExaModels-style:

* the gradient of the objective: the body's gradient, mapped (one call);
* the constraint Jacobian: the body's Jacobian, mapped;
* the Hessian of the Lagrangian: the Hessian of the body's weighted
  outputs ``sum_r w_r * out_r`` (the weights are the instance's multipliers
  ``lambda``, or ``sigma`` for objective terms), mapped;

and places every value with numpy index arithmetic on the map's operand
layout: no coloring, no scalar graph per instance, no C statement per
nonzero.  The values come out instance by instance, so a position may
repeat (a variable shared by neighbouring instances, or by two slots of one
instance): the triplets are COO with duplicates that add up, which is what
IPOPT, scipy and ExaModels/MathOptInterface expect.  The remainder (the
pieces that are not mapped results, and the results of maps whose operands
are themselves functions of the variables) goes through the general sparse
AD (:func:`symgraph.jacobian`, :func:`symgraph.hessian`).

>>> import numpy as np, symgraph as sg
>>> a, b = sg.symbols("a"), sg.symbols("b")
>>> term = sg.Function("term", [a, b], [(a - 1) ** 2 + 10 * (b - a * a) ** 2])
>>> x = sg.symbols("x", 4)
>>> f = term.map(3, reduce="sum")(x[:-1], x[1:])
>>> t = tiled_derivatives(x, f, np.empty(0, dtype=object), sg.symbols("sigma"), np.empty(0, dtype=object))
>>> t.tiled
True
>>> G = t.gradient.function("G", [x], dense=t.gradient_dense)
>>> dense, values = G(np.arange(4.0))
>>> total = dense + np.bincount(t.gradient.cols, values, minlength=4)
>>> np.allclose(total, sg.Function("g", [x], [sg.grad(f, x)])(np.arange(4.0)))
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import Any, Sequence

import numpy as np

from .assemble import id_positions, object_ids
from .call import is_result, result_node
from .calldiff import flat_inputs, flat_outputs
from .expr import CONST, RESULT, Expr, building, const, free_symbols
from .sparse import sorted_unique

_OP, _ARGS, _DATA, _FIRST = attrgetter("op"), attrgetter("args"), attrgetter("data"), itemgetter(0)

__all__ = ["tiled_derivatives", "tiled_jacobian", "TiledDerivatives", "Triplets", "split_terms"]


class Triplets:
    """COO entries: ``(rows[k], cols[k])`` takes value ``k`` of the pieces in order (repeated positions add up).

    A piece is an :class:`~symgraph.assemble.ExprPiece` (Exprs) or a
    :class:`~symgraph.assemble.CallPiece` (results of call ``c`` of
    :attr:`calls`, by index): mapped terms never make an Expr per value.
    """

    def __init__(self) -> None:
        self.row_parts: list = []
        self.col_parts: list = []
        self.pieces: list = []
        self.calls: list = []
        self.variables: np.ndarray | None = None  # the x that known operand slots count in
        self.multipliers: np.ndarray | None = None  # the lambda that known slots from len(x) on count in
        self.scale: Expr | None = None  # the sigma that known slot len(x) + len(multipliers) names

    def add_exprs(self, rows: Any, cols: Any, values: Any) -> None:
        from .assemble import ExprPiece

        self._add(rows, cols, ExprPiece(np.asarray(values, dtype=object).reshape(-1)))

    def add_call(self, rows: Any, cols: Any, F: Any, operands: np.ndarray, indices: np.ndarray,
                 slots: np.ndarray | None = None) -> None:
        """Values ``indices`` of the results of ``F`` on ``operands``.

        ``slots``, per operand: ``j < len(variables)`` for ``variables[j]``,
        ``len(variables) + i`` for ``multipliers[i]``, ``len(variables) +
        len(multipliers)`` for ``scale``, -1 if not known.
        """
        from .assemble import CallPiece

        for c, (G, ops, *_) in enumerate(self.calls):  # one call of F on the same operands serves several pieces
            if G is F and ops is operands:
                break
        else:
            c = len(self.calls)
            self.calls.append((F, operands) if slots is None else (F, operands, slots))
        self._add(rows, cols, CallPiece(c, np.asarray(indices, dtype=np.int64).reshape(-1)))

    def _add(self, rows: Any, cols: Any, piece: Any) -> None:
        self.row_parts.append(np.asarray(rows, dtype=np.int64).reshape(-1))
        self.col_parts.append(np.asarray(cols, dtype=np.int64).reshape(-1))
        self.pieces.append(piece)

    @property
    def rows(self) -> np.ndarray:
        return np.concatenate(self.row_parts) if self.row_parts else np.zeros(0, np.int64)

    @property
    def cols(self) -> np.ndarray:
        return np.concatenate(self.col_parts) if self.col_parts else np.zeros(0, np.int64)

    def values(self) -> np.ndarray:
        """The values as Exprs (calls made, results picked): for inspection; sg.NLP assembles instead."""
        from .assemble import ExprPiece
        from .call import call_function, split_operands

        results = []
        for F, ops, *_ in self.calls:
            out = call_function(F, split_operands(ops, F.input_shapes))
            results.append(np.asarray(out, dtype=object).reshape(-1))
        parts = [p.values if isinstance(p, ExprPiece) else results[p.call][p.indices] for p in self.pieces]
        return np.concatenate(parts) if parts else np.empty(0, dtype=object)

    def function(self, name: str, inputs: list, input_names: Sequence[str] | None = None, dense: Any = None) -> Any:
        """The Function of ``inputs`` whose outputs are ``[dense]`` (if given) and these values."""
        from .assemble import ExprPiece, assembled_function

        outputs = ([[ExprPiece(np.asarray(dense, dtype=object).reshape(-1))]] if dense is not None else [])
        outputs.append(list(self.pieces))
        # known operand slots name x and lambda: where they sit among the inputs (None: look those up)
        x_at = 0 if self._x_leads(inputs) else None
        at = (x_at, _offset_of(inputs, self.multipliers), _offset_of(inputs, self.scale))
        calls = [c if len(c) < 3 else (c[0], c[1], self._input_slots(c[2], *at)) for c in self.calls]
        return assembled_function(name, inputs, outputs, calls, input_names=input_names)

    def _input_slots(self, known: np.ndarray, x_at: int | None, lam_at: int | None, sigma_at: int | None
                     ) -> np.ndarray:
        """Known operand slots (see :meth:`add_call`) as input slots, given where x, lambda and sigma sit
        among the inputs (None: not there, look those operands up; -1 in the result)."""
        n_x = len(self.variables) if self.variables is not None else 0
        n_lam = n_x + (len(self.multipliers) if self.multipliers is not None else 0)
        slots = np.full(len(known), -1, dtype=np.int64)
        for start, end, offset in ((0, n_x, x_at), (n_x, n_lam, lam_at), (n_lam, n_lam + 1, sigma_at)):
            if offset is not None:
                at = (known >= start) & (known < end)
                slots[at] = offset + known[at] - start
        return slots

    def _x_leads(self, inputs: list) -> bool:
        """Whether the flat inputs begin with exactly the variables, in order."""
        x = self.variables
        if x is None:
            return False
        if inputs and inputs[0] is x:
            return True
        flat: list = []
        for arr in inputs:
            flat.extend(np.asarray(arr, dtype=object).reshape(-1).tolist())
            if len(flat) >= len(x):
                break
        return len(flat) >= len(x) and all(a is b for a, b in zip(flat, x.tolist()))


def _offset_of(inputs: list, arr: np.ndarray | None) -> int | None:
    """The flat position at which the array ``arr`` itself (by identity) starts among ``inputs``, or None.

    >>> a, b = np.zeros(2), np.zeros(3)
    >>> _offset_of([a, b], b), _offset_of([a], b)
    (2, None)
    """
    at = 0
    for a in inputs if arr is not None else ():
        if a is arr:
            return at
        at += np.size(a)
    return None


@dataclass
class TiledDerivatives:
    """What :func:`tiled_derivatives` returns (see the module docstring).

    ``gradient_dense`` (length n, Exprs) plus ``bincount(gradient.cols,
    gradient values)`` is the gradient of f; ``jacobian`` and ``hessian``
    (lower triangle) are :class:`Triplets` whose repeated positions add up.
    ``tiled`` is False when no mapped piece was found: then everything came
    from the general sparse AD and no position repeats.  ``operand_columns``
    gives, per tiled map call, the column in x of each operand (-1: not in x).
    """

    tiled: bool
    gradient_dense: np.ndarray
    gradient: Triplets
    jacobian: Triplets
    hessian: Triplets
    n_mapped_terms: int = 0
    operand_columns: dict = field(default_factory=dict)  # tiled call node -> its operands' columns in x


# ------------------------------------------------------------------ pieces
def split_terms(e: Any) -> tuple[list[tuple[float, Expr]], list[tuple[float, Expr]]]:
    """``e`` as ``sum(c * result) + sum(c * rest)``: (mapped-result pieces, remainder pieces).

    Looks only through ``+``, ``-``, negation, and products and quotients by
    constants (iteratively); a result node of a call of a map is a piece,
    anything else is remainder.

    >>> import symgraph as sg
    >>> x, y = sg.symbols("x"), sg.symbols("y")
    >>> F = sg.Function("f", [x], [x * x])
    >>> r = F.map(2)([x, y])
    >>> mapped, rest = split_terms(2 * r[0] - r[1] / 4 + sg.sin(x))
    >>> [c for c, _ in mapped], [(c, str(e)) for c, e in rest]
    ([2.0, -0.25], [(1.0, 'sin(x)')])
    """
    root = e if isinstance(e, Expr) else const(e)
    with building():  # a tuple per linear node stays alive until the end: no cyclic-GC passes over them
        found = _split_tree(root)
        return found if found is not None else _split_shared(root)


def _split_tree(root: Expr) -> tuple[list, list] | None:
    """:func:`split_terms` by one walk down the linear part, or None where a linear node is shared.

    A walk visits a shared node once per path (2^depth times for ``s = s + s``
    repeated): it stops at the first linear node reached twice, and
    :func:`_split_shared` takes over.
    """
    mapped: list[tuple[float, Expr]] = []
    rest: list[tuple[float, Expr]] = []
    seen: set = set()
    stack = [(1.0, root)]
    while stack:
        c, node = stack.pop()
        children = _linear_children(node)
        if children is None:
            _place_piece(c, node, mapped, rest)
            continue
        key = id(node)
        if key in seen:
            return None
        seen.add(key)
        for child, k, divide in reversed(children):
            stack.append((c / k if divide else c * k, child))
    return mapped, rest


def _split_shared(root: Expr) -> tuple[list[tuple[float, Expr]], list[tuple[float, Expr]]]:
    """:func:`split_terms` where linear nodes are shared: each node once, coefficients summed."""
    # Each node once (a shared sum is not walked once per path): the linear nodes in reverse postorder
    # (parents first), then the coefficients pushed down them; pieces in order of first visit, left first.
    # Keys are ids (the graph holds every node for the duration): no Python-level hashing per lookup.
    factors: dict = {}  # id of a linear node -> ((child, k, divide), ...)
    first: list = []  # non-linear nodes in order of first visit
    post: list = []
    seen = {id(root)}
    stack: list = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            post.append(node)
            continue
        children = _linear_children(node)
        if children is None:
            first.append(node)
            continue
        factors[id(node)] = children
        stack.append((node, True))
        for child, _, _ in reversed(children):
            if id(child) not in seen:
                seen.add(id(child))
                stack.append((child, False))
    coef = {id(root): 1.0}
    get = coef.get
    for node in reversed(post):
        c = coef[id(node)]
        for child, k, divide in factors[id(node)]:
            share = c / k if divide else c * k
            key = id(child)
            total = get(key)
            coef[key] = share if total is None else total + share
    mapped: list[tuple[float, Expr]] = []
    rest: list[tuple[float, Expr]] = []
    for node in first:
        _place_piece(coef[id(node)], node, mapped, rest)
    return mapped, rest


def _place_piece(c: float, node: Expr, mapped: list, rest: list) -> None:
    """``c * node`` among the mapped pieces (a result of a map call), the rest, or nowhere (the constant 0)."""
    if is_result(node) and _is_map_call(node.args[0]):
        mapped.append((c, node))
    elif not (node.op is CONST and node.data == 0.0):
        rest.append((c, node))


def _linear_children(node: Expr) -> tuple | None:
    """``((child, k, divide), ...)`` of ``+``, ``-``, negation, products and quotients by finite nonzero constants.

    A child's coefficient is its parent's times ``k`` (divided by ``k`` where ``divide``), as
    written, so a tree gets the very coefficients of a walk down it.
    """
    name = node.op.name
    if name in ("add", "sub"):
        a, b = node.args
        return ((a, 1.0, False), (b, -1.0 if name == "sub" else 1.0, False))
    if name == "neg":
        return ((node.args[0], -1.0, False),)
    if name == "mul" and (node.args[0].op is CONST or node.args[1].op is CONST):
        k, other = (node.args[0], node.args[1]) if node.args[0].op is CONST else (node.args[1], node.args[0])
        return ((other, k.data, False),) if k.data != 0.0 and np.isfinite(k.data) else None
    if name == "div" and node.args[1].op is CONST and node.args[1].data != 0.0 and np.isfinite(node.args[1].data):
        return ((node.args[0], node.args[1].data, True),)
    return None


def _rebuild(pieces: list[tuple[float, Expr]], zero: Expr) -> Any:
    total: Any = zero
    for c, e in pieces:
        total = total + (e if c == 1.0 else c * e)
    return total


def _slot_columns(call: Expr, x: "_Variables") -> tuple[np.ndarray, np.ndarray] | None:
    """Per operand of ``call``: its column in x, -1 where it does not depend on x; None if it depends otherwise.

    Returned with the operands as a flat object array (the term's call is made on them).
    """
    args = call.args
    operands = np.fromiter(args, dtype=object, count=len(args))
    cols = x.columns(operands)
    other = operands[cols < 0]
    # operands outside x that are not leaves (symbols, constants): do they depend on x?
    inner = np.fromiter(map(len, map(_ARGS, other.tolist())), dtype=np.int64, count=len(other)) > 0
    if inner.any():
        compound = list(dict.fromkeys(other[inner].tolist()))
        if any(x.has(s) for s in free_symbols(compound)):
            return None
    return cols, operands


class _Variables:
    """The variables x, and where operands sit in it, found by object id with numpy
    (:func:`~symgraph.assemble.id_positions`): no Python work per operand.
    """

    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        self.ids = object_ids(x)
        self._index: dict | None = None

    @property
    def index(self) -> dict:
        """Variable -> column (made on first use)."""
        if self._index is None:
            self._index = dict(zip(self.x.tolist(), range(len(self.x))))
        return self._index

    def has(self, e: Expr) -> bool:
        return e in self.index

    def columns(self, operands: Any) -> np.ndarray:
        """The column of each operand in x, -1 for those not in x.

        >>> import symgraph as sg
        >>> x = sg.symbols("x", 4)
        >>> _Variables(x).columns((x[1], x[2], sg.symbols("p"), x[0], x[1])).tolist()
        [1, 2, -1, 0, 1]
        """
        return id_positions(self.ids, object_ids(np.fromiter(operands, dtype=object, count=len(operands))
                                                 if isinstance(operands, tuple) else operands))


# ------------------------------------------------------------------ one mapped call
_NO_FLOATS, _NO_INTS = np.zeros(0, dtype=np.float64), np.zeros(0, dtype=np.int64)


class _Term:
    """One map call and the pieces of f and g that read its results (arrays, in the order of f and g)."""

    def __init__(self, call: Expr, slot_cols: np.ndarray, operands: np.ndarray) -> None:
        self.call = call
        self.structure = call.data.structure
        self.slot_cols = slot_cols
        self.f_coef, self.f_result = _NO_FLOATS, _NO_INTS                  # objective pieces
        self.g_coef, self.g_result, self.g_row = _NO_FLOATS, _NO_INTS, _NO_INTS  # constraint pieces
        self._operands = operands
        self._columns: np.ndarray | None = None

    @property
    def has_f(self) -> bool:
        return len(self.f_result) > 0

    @property
    def has_g(self) -> bool:
        return len(self.g_result) > 0

    # -------------------------------------------------------- layout helpers
    def operands(self) -> np.ndarray:
        """The call's operands, flat (one array: pieces of one term share it, hence one call)."""
        return self._operands

    def instance_columns(self, slots: np.ndarray) -> np.ndarray:
        """(n, len(slots)): the x column of body input scalar ``slots[q]`` in instance ``i`` (-1: not in x)."""
        if self._columns is None:  # every body input scalar at once, then picked: slots repeat across calls
            s = self.structure
            positions = s.ins.encode(np.arange(s.ins.body_total)[None, :], np.arange(s.n)[:, None])
            self._columns = self.slot_cols[positions]
        return np.take(self._columns, slots, axis=1)  # C order, as the values are numbered

    def mapped_function(self, name: str, extra_inputs: list[tuple[np.ndarray, bool]], outputs: Any) -> Any:
        """``Function(body inputs + extra, outputs).map(n)`` with the body's shared flags (extra: (symbols, shared))."""
        from .function import Function

        s = self.structure
        body = s.body
        inputs = list(body.inputs) + [a for a, _ in extra_inputs]
        names = list(body.input_names)
        for k in range(len(extra_inputs)):  # weight inputs, named apart from the body's own inputs
            label, suffix = f"w{k}", 0
            while label in names:
                suffix += 1
                label = f"w{k}_{suffix}"
            names.append(label)
        F = Function(f"{body.name}_{name}", inputs, [outputs], input_names=names)
        shared = [k for k, f in enumerate(s.shared) if f]
        shared += [len(body.inputs) + k for k, (_, sh) in enumerate(extra_inputs) if sh]
        return F.map(s.n, shared=shared)


def _kept(keep: np.ndarray, *arrays: np.ndarray) -> list[np.ndarray]:
    """``a[keep]`` for each array (flat views, no copy, when every entry is kept), then the kept flat
    positions (``arange(keep.size)[keep]``, the values' numbers), found once.

    >>> [a.tolist() for a in _kept(np.array([[True, False, True]]), np.array([[1, 2, 3]]))]
    [[1, 3], [0, 2]]
    """
    if keep.all():
        return [a.reshape(-1) for a in arrays] + [np.arange(keep.size, dtype=np.int64)]
    at = np.flatnonzero(keep)
    return [a.reshape(-1)[at] for a in arrays] + [at]


def _first_of_each(keys: np.ndarray, size: int) -> np.ndarray:
    """Per key value in ``[0, size)``: the position of its first occurrence in ``keys`` (``len(keys)`` if none).

    >>> _first_of_each(np.array([2, 0, 2, 0]), 4).tolist()
    [1, 4, 0, 4]
    """
    first = np.full(size, len(keys), dtype=np.int64)
    np.minimum.at(first, keys, np.arange(len(keys), dtype=np.int64))
    return first


def _last_of_each(keys: np.ndarray) -> np.ndarray:
    """Per key value in ``[0, max]``: the position of its last occurrence in ``keys`` (-1 if none).

    >>> _last_of_each(np.array([2, 0, 2])).tolist()
    [1, -1, 2]
    """
    last = np.full(int(keys.max()) + 1, -1, dtype=np.int64)
    np.maximum.at(last, keys, np.arange(len(keys), dtype=np.int64))
    return last


def _uniform(entries: np.ndarray, coef: np.ndarray, n_entries: int) -> bool:
    """Whether every piece of one body output entry has the same coefficient (pieces' coefficients are never NaN)."""
    if not len(entries):
        return True
    return bool(np.all(coef == coef[_first_of_each(entries, n_entries)[entries]]))


def _repeats(keys: np.ndarray) -> bool:
    """Whether a value occurs twice in the integer array ``keys``."""
    return len(sorted_unique(keys)) != len(keys)


# ------------------------------------------------------------------ main entry
def tiled_derivatives(x: np.ndarray, f: Expr, g: np.ndarray, sigma: Expr, lam: np.ndarray,
                      hessian_function: tuple | None = None) -> TiledDerivatives:
    """Gradient of ``f``, Jacobian of ``g`` and lower Hessian of ``sigma*f + lam'g`` w.r.t. ``x``, tiled.

    Args:
        x: flat array of distinct symbols (the variables).
        f: scalar Expr; g: flat array of Exprs (may be empty).
        sigma: the objective factor symbol; lam: one multiplier symbol per g.
        hessian_function: ``(name, inputs, input_names)`` of the Function the caller will build from the
            Hessian; where nothing tiles, a large Hessian is then built with that Function in a forked
            child while this process builds the rest (see :func:`_general`).

    See the module docstring for what comes back and an example.
    """
    from .ad import grad, hessian, jacobian

    m = len(g)
    with building():
        split = _decompose(x, f, g)
        if split is None:
            return _general(x, f, g, sigma, lam, hessian_function)
        live, f_rem, g_rem, zero = split
        # a constant remainder (all of f and g tiled) has no derivative: no sweep over x for it
        gradient_dense = (np.full(len(x), const(0.0), dtype=object) if f_rem.op is CONST
                          else np.asarray(grad(f_rem, x), dtype=object).reshape(-1))
        gradient = Triplets()
        jac = Triplets()
        hess = Triplets()
        for T in (gradient, jac, hess):
            T.variables = x
        hess.multipliers, hess.scale = lam, sigma
        constant = _constant_rows(g_rem, zero)
        if m and not constant.all():
            J = jacobian(g_rem, x, tiled=False)
            jac.add_exprs(J.rows, J.cols, J.values)
        nonzero = ~constant
        other = constant & ~zero
        nonzero[other] = np.fromiter(map(_DATA, g_rem[other].tolist()), dtype=np.float64) != 0.0
        lagrangian = sigma * f_rem + (lam[nonzero] @ g_rem[nonzero] if nonzero.any() else 0.0)
        if lagrangian.op is CONST:
            hess.add_exprs(_NO_INTS, _NO_INTS, np.empty(0, dtype=object))
        else:
            H = hessian(lagrangian, x, lower=True)
            hess.add_exprs(H.rows, H.cols, H.values)
        for t in live:
            _tile_gradient(t, gradient)
            _tile_jacobian(t, jac)
            _tile_hessian(t, sigma, lam, hess)
    return TiledDerivatives(True, gradient_dense, gradient, jac, hess, len(live),
                            {t.call: t.slot_cols for t in live})


def tiled_jacobian(y: np.ndarray, x: np.ndarray) -> Triplets | None:
    """The Jacobian of the flat Exprs ``y`` w.r.t. the symbols ``x`` as tiled :class:`Triplets`, or None.

    None when no element of ``y`` has a mapped piece (the general sparse
    Jacobian is the way then).  Repeated positions add up.

    >>> import numpy as np, symgraph as sg
    >>> u = sg.symbols("u", 2)
    >>> F = sg.Function("F", [u], [[u[0] * u[1], u[0] ** 2]])
    >>> x = sg.symbols("x", 3)
    >>> y = F.map(2)(np.stack([x[:-1], x[1:]], axis=1)).reshape(-1)
    >>> T = tiled_jacobian(y, x)
    >>> J = T.function("J", [x])
    >>> import scipy.sparse as sp
    >>> sp.coo_matrix((J(np.array([1.0, 2.0, 3.0])), (T.rows, T.cols)), shape=(4, 3)).toarray().tolist()
    [[2.0, 1.0, 0.0], [2.0, 0.0, 0.0], [0.0, 3.0, 2.0], [0.0, 4.0, 0.0]]
    """
    from .ad import jacobian

    with building():
        split = _decompose(x, const(0.0), y)
        if split is None:
            return None
        live, _, y_rem, zero = split
        jac = Triplets()
        jac.variables = x
        if not _constant_rows(y_rem, zero).all():
            J = jacobian(y_rem, x, tiled=False)
            jac.add_exprs(J.rows, J.cols, J.values)
        for t in live:
            _tile_jacobian(t, jac)
    return jac


def _constant_rows(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Which of the flat Exprs ``values`` are constants (a boolean array); ``known``: rows known to be."""
    constant = known.copy()
    look = np.flatnonzero(~known)
    ops = np.fromiter(map(id, map(_OP, values[look].tolist())), dtype=np.int64, count=len(look))
    constant[look] = ops == id(CONST)
    return constant


def _decompose(x: np.ndarray, f: Expr, g: np.ndarray) -> tuple[list, Any, np.ndarray, np.ndarray] | None:
    """(terms with tileable pieces, remainder of f, remainder of g, which rows of that remainder are
    the constant 0 for sure), or None when nothing tiles.

    The pieces are handled as arrays: a row of g that is itself a result of a
    map call (the constraints of a mapped model, a million of them) is a
    piece with coefficient 1 found in bulk; only the other rows go through
    :func:`split_terms` one by one.
    """
    variables = _Variables(x)
    f_mapped, f_rest = split_terms(f)
    g_rows, g_coef, g_nodes, g_calls, g_rest = _constraint_pieces(g)
    f_coef = np.array([c for c, _ in f_mapped], dtype=np.float64)
    f_nodes = np.empty(len(f_mapped), dtype=object)
    f_nodes[:] = [e for _, e in f_mapped]
    # the terms, in the order their calls first appear in f, then in g
    nodes = np.concatenate([f_nodes, g_nodes])
    call_ids = np.concatenate([_call_ids(f_nodes.tolist()), g_calls])
    order = np.argsort(call_ids, kind="stable")
    new = np.concatenate([[True], call_ids[order][1:] != call_ids[order][:-1]]) if len(order) else order
    first = order[new]                        # first piece of each distinct call, by call id
    term_of = np.empty(len(nodes), dtype=np.int64)
    term_of[order] = np.cumsum(new) - 1
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    term_of = rank[term_of]                   # terms numbered by first appearance
    terms: list[_Term | None] = [None] * len(first)
    for k, p in zip(rank.tolist(), first.tolist()):
        call = nodes[p].args[0]
        found = _slot_columns(call, variables)
        terms[k] = _Term(call, *found) if found is not None else None
    f_term, g_term = term_of[:len(f_mapped)], term_of[len(f_mapped):]
    failed = np.array([t is None for t in terms], dtype=bool)
    # pieces of calls that do not tile (operands that are functions of x) go back to the remainder
    f_rest.extend(f_mapped[k] for k in np.flatnonzero(failed[f_term]).tolist())
    for k in np.flatnonzero(failed[g_term]).tolist():
        g_rest.setdefault(int(g_rows[k]), []).append((float(g_coef[k]), g_nodes[k]))
    f_result = np.fromiter(map(_DATA, f_nodes.tolist()), dtype=np.int64, count=len(f_nodes))
    g_result = np.fromiter(map(_DATA, g_nodes.tolist()), dtype=np.int64, count=len(g_nodes))
    for t, fk, gk in zip(terms, _groups(f_term, len(terms)), _groups(g_term, len(terms))):
        if t is not None:
            t.f_coef, t.f_result = f_coef[fk], f_result[fk]
            t.g_coef, t.g_result, t.g_row = g_coef[gk], g_result[gk], g_rows[gk]
    live = [t for t in terms if t is not None]
    if not live:
        return None
    # pieces a term cannot tile (coefficients that differ between instances) go back to the remainder
    for t in live:
        _settle(t, f_rest, g_rest)
    live = [t for t in live if t.has_f or t.has_g]
    zero = const(0.0)
    f_rem = f if not f_mapped else _rebuild(f_rest, zero)
    g_rem = np.array(g, dtype=object).reshape(-1)
    zero_rows = np.zeros(len(g_rem), dtype=bool)
    zero_rows[g_rows] = True
    g_rem[zero_rows] = zero                   # a row with mapped pieces keeps its remainder only
    for row in sorted(g_rest):
        g_rem[row] = _rebuild(g_rest[row], zero)
        zero_rows[row] = g_rem[row] is zero
    return live, f_rem, g_rem, zero_rows


def _constraint_pieces(g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
    """The mapped pieces of the rows of ``g`` in row order: (row, coefficient, result node, ``id`` of its
    call), and per row that has them, its remainder pieces.

    Rows that are results of a map call are found with numpy (one piece,
    coefficient 1, no remainder); the others go through :func:`split_terms`.
    """
    m = g.size
    values = g.reshape(-1) if _all_exprs(g) else np.fromiter(
        (e if type(e) is Expr else const(e) for e in g.reshape(-1).tolist()), dtype=object, count=m)
    direct = np.flatnonzero(np.fromiter(map(id, map(_OP, values.tolist())), dtype=np.int64, count=m) == id(RESULT))
    direct_nodes = values[direct]
    ids = _call_ids(direct_nodes.tolist())
    distinct, first = np.unique(ids, return_index=True)
    maps = np.array([_is_map_call(direct_nodes[k].args[0]) for k in first.tolist()], dtype=bool)
    if not maps.all():  # results of calls that are not maps: split like any other row
        keep = maps[np.searchsorted(distinct, ids)]
        direct, direct_nodes, ids = direct[keep], direct_nodes[keep], ids[keep]
    other = np.ones(m, dtype=bool)
    other[direct] = False
    rows, coefs, nodes, rest = [], [], [], {}
    for row in np.flatnonzero(other).tolist():
        mapped, remainder = split_terms(values[row])
        if mapped:
            rows.extend([row] * len(mapped))
            coefs.extend(c for c, _ in mapped)
            nodes.extend(e for _, e in mapped)
            rest[row] = remainder
    all_rows = np.concatenate([direct, np.array(rows, dtype=np.int64)])
    all_coefs = np.concatenate([np.ones(len(direct)), np.array(coefs, dtype=np.float64)])
    all_nodes = np.empty(len(all_rows), dtype=object)
    all_nodes[:len(direct)] = direct_nodes
    all_nodes[len(direct):] = nodes
    all_ids = np.concatenate([ids, _call_ids(nodes)])
    if len(direct) and rows:  # pieces in row order, a row's pieces in split order
        order = np.argsort(all_rows, kind="stable")
        all_rows, all_coefs, all_nodes, all_ids = all_rows[order], all_coefs[order], all_nodes[order], all_ids[order]
    return all_rows.astype(np.int64), all_coefs, all_nodes, all_ids, rest


def _call_ids(results: list) -> np.ndarray:
    """The ``id`` of the call node of each result node in ``results`` (int64)."""
    return np.fromiter(map(id, map(_FIRST, map(_ARGS, results))), dtype=np.int64, count=len(results))


def _groups(labels: np.ndarray, k: int) -> list[np.ndarray]:
    """Per label ``0 .. k-1``: the positions that carry it, ascending.

    >>> [g.tolist() for g in _groups(np.array([1, 0, 1]), 3)]
    [[1], [0, 2], []]
    """
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(k + 1))
    return [order[bounds[j]:bounds[j + 1]] for j in range(k)]


def _all_exprs(values: np.ndarray) -> bool:
    """Whether every element of the object array ``values`` is an Expr (not a plain number)."""
    return set(map(type, values.reshape(-1).tolist())) <= {Expr}


def _is_map_call(call: Expr) -> bool:
    """Whether the call node ``call`` calls a map whose body can be tiled.

    A body carrying its own derivative rule (``sg.custom_jvp``/``custom_vjp``)
    is not: tiling differentiates the body's graph, which would skip the rule.
    """
    structure = getattr(call.data, "structure", None)
    return (structure is not None and structure.kind == "map"
            and getattr(structure.body, "derivative_rule", None) is None)


def _general(x: np.ndarray, f: Expr, g: np.ndarray, sigma: Expr, lam: np.ndarray,
             hessian_function: tuple | None = None) -> TiledDerivatives:
    """No mapped piece: the general sparse AD, as sg.NLP always did.

    With ``hessian_function`` (``(name, inputs, input_names)`` of the Hessian's
    Function, which sg.NLP will ask for) and a large enough Lagrangian, the
    Hessian and its Function are built in a forked child
    (:mod:`symgraph.forked`) while this process builds the gradient and the
    Jacobian: ``hessian`` is then a :class:`ForkedHessian`.
    """
    from .ad import grad, jacobian

    def lagrangian() -> Expr:
        return sigma * f + (lam @ g if len(g) else 0.0)

    hess: Any = None
    if hessian_function is not None and _lagrangian_size(f, g) >= FORK_MIN_NODES:
        from . import forked

        job = forked.start(lambda: _hessian_data(lagrangian(), x, hessian_function))
        if job.forked:
            hess = ForkedHessian(job, x, lagrangian, hessian_function)
    gradient = np.asarray(grad(f, x), dtype=object).reshape(-1)
    jac = Triplets()
    if len(g):
        J = jacobian(g, x)
        jac.add_exprs(J.rows, J.cols, J.values)
    if hess is None:
        hess = _hessian_triplets(lagrangian(), x)
    return TiledDerivatives(False, gradient, Triplets(), jac, hess)


#: A Lagrangian of at least this many nodes (f and g, counted up to the limit) has its Hessian built in a
#: forked child, beside the gradient and the Jacobian (below it the fork costs more than it saves).
FORK_MIN_NODES = 20_000


def _lagrangian_size(f: Expr, g: np.ndarray) -> int:
    """Nodes of f and g, counted up to FORK_MIN_NODES (an iterative walk that stops there)."""
    seen: set = set()
    stack = [f, *g.tolist()]
    while stack and len(seen) < FORK_MIN_NODES:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(node.args)
    return len(seen)


def _hessian_triplets(lagrangian: Expr, x: np.ndarray) -> Triplets:
    from .ad import hessian

    H = hessian(lagrangian, x, lower=True)
    hess = Triplets()
    hess.add_exprs(H.rows, H.cols, H.values)
    return hess


def _hessian_data(lagrangian: Expr, x: np.ndarray, hessian_function: tuple) -> tuple:
    """(rows, cols, the Function's Tape as arrays): the forked child's work, plain data only."""
    hess = _hessian_triplets(lagrangian, x)
    name, inputs, names = hessian_function
    tape = hess.function(name, inputs, names).tape
    return (hess.rows, hess.cols, tape.input_slots, tape.constants, tape.opcodes, tape.operands,
            tape.output_slots)


class ForkedHessian:
    """The lower Hessian's triplets and Function, built by a forked child (:func:`_general`).

    ``rows``, ``cols`` and ``function(...)`` (for the name, inputs and names
    it was started with) wait for the child; ``values()`` and other inputs
    build the Hessian here.
    """

    def __init__(self, job: Any, x: np.ndarray, lagrangian: Any, hessian_function: tuple) -> None:
        self._job, self._x, self._lagrangian, self._spec = job, x, lagrangian, hessian_function
        self._function: Any = None
        self._triplets: Triplets | None = None

    def _data(self) -> tuple:
        return self._job.result()

    @property
    def rows(self) -> np.ndarray:
        return self._data()[0]

    @property
    def cols(self) -> np.ndarray:
        return self._data()[1]

    def function(self, name: str, inputs: list, input_names: Sequence[str] | None = None, dense: Any = None) -> Any:
        """The Hessian's Function: the child's Tape, for the spec it was started with (else built here)."""
        from .assemble import AssembledFunction
        from .tape import InputNames, Tape

        spec_name, spec_inputs, spec_names = self._spec
        same = (name == spec_name and dense is None and len(inputs) == len(spec_inputs)
                and all(a is b for a, b in zip(inputs, spec_inputs)) and list(input_names or []) == list(spec_names))
        if not same:
            return self._built().function(name, inputs, input_names, dense)
        if self._function is None:
            _, _, input_slots, constants, opcodes, operands, output_slots = self._data()
            inputs = [np.asarray(a, dtype=object) for a in inputs]
            flat = [a.reshape(-1).copy() for a in inputs]
            tape = Tape(input_slots=input_slots, constants=constants, opcodes=opcodes, operands=operands,
                        output_slots=output_slots, symbol_names=InputNames(flat))
            self._function = AssembledFunction(name, inputs, tape, input_names, None)
        return self._function

    def _built(self) -> Triplets:
        if self._triplets is None:
            with building():
                self._triplets = _hessian_triplets(self._lagrangian(), self._x)
        return self._triplets

    def values(self) -> np.ndarray:
        """The values as Exprs (built here)."""
        return self._built().values()


def _settle(t: _Term, f_rest: list, g_rest: dict) -> None:
    """Keep the pieces the term can tile; hand the others back to the remainder.

    Objective pieces need one coefficient per body output entry over all
    instances that have it (a mapped entry must be present in every
    instance); constraint pieces need each (instance, entry) in at most one
    row, and one coefficient per entry.
    """
    s = t.structure
    n_entries = s.outs.body_total
    if t.has_f:
        body_r, inst = s.outs.decode(t.f_result)
        mapped = inst >= 0
        counts = np.bincount(body_r[mapped], minlength=n_entries)
        ok = (_uniform(body_r, t.f_coef, n_entries) and bool(np.all(counts[sorted_unique(body_r[mapped])] == s.n))
              and not _repeats(body_r * (s.n + 1) + (inst + 1)) and not _repeats(body_r[~mapped]))
        if not ok:
            f_rest.extend((c, result_node(t.call, j)) for c, j in zip(t.f_coef.tolist(), t.f_result.tolist()))
            t.f_coef, t.f_result = _NO_FLOATS, _NO_INTS
    if t.has_g:
        body_r, inst = s.outs.decode(t.g_result)
        if not _uniform(body_r, t.g_coef, n_entries) or _repeats(body_r * (s.n + 1) + (inst + 1)):
            for c, j, row in zip(t.g_coef.tolist(), t.g_result.tolist(), t.g_row.tolist()):
                g_rest.setdefault(row, []).append((c, result_node(t.call, j)))
            t.g_coef, t.g_result, t.g_row = _NO_FLOATS, _NO_INTS, _NO_INTS


def _tile_gradient(t: _Term, out: Triplets) -> None:
    """Objective pieces: the body's gradient of ``sum_r c_r out_r``, mapped; one value per (instance, slot)."""
    from .ad import grad

    if not t.has_f:
        return
    body_r, _ = t.structure.outs.decode(t.f_result)
    outs, u = flat_outputs(t.structure.body), flat_inputs(t.structure.body)
    entries = sorted_unique(body_r)
    coef = t.f_coef[_last_of_each(body_r)[entries]]  # one coefficient per entry (the pieces agree)
    objective = sum((outs[r] * c for r, c in zip(entries.tolist(), coef.tolist())), const(0.0))
    gb = np.asarray(grad(objective, u), dtype=object).reshape(-1)
    slots = np.arange(len(u), dtype=np.int64)
    M = t.mapped_function("tgrad", [], gb)
    cols = t.instance_columns(slots)                                    # (n, slots)
    keep = cols >= 0
    cols, index = _kept(keep, cols)
    out.add_call(np.zeros(len(cols), np.int64), cols, M, t.operands(), index, t.slot_cols)


def _tile_jacobian(t: _Term, out: Triplets) -> None:
    """Constraint pieces: the body's Jacobian of ``c_r out_r``, mapped; rows from the pieces' places in g."""
    from .ad import jacobian

    if not t.has_g:
        return
    s = t.structure
    body_r, inst = s.outs.decode(t.g_result)
    coef, g_row = t.g_coef, t.g_row
    n_entries = s.outs.body_total
    row_table = np.full((n_entries, s.n), -1, dtype=np.int64)   # (entry, instance) -> row of g
    shared_row = np.full(n_entries, -1, dtype=np.int64)
    mapped = inst >= 0
    row_table[body_r[mapped], inst[mapped]] = g_row[mapped]
    shared_row[body_r[~mapped]] = g_row[~mapped]
    entries = sorted_unique(body_r)
    first = _first_of_each(body_r, n_entries)[entries]
    outs, u = flat_outputs(t.structure.body), flat_inputs(t.structure.body)
    scaled = [outs[r] * c if c != 1.0 else outs[r] for r, c in zip(entries.tolist(), coef[first].tolist())]
    J = jacobian(np.array(scaled, dtype=object), u)
    if J.nnz == 0:
        return
    M = t.mapped_function("tjac", [], J.values)
    cols = t.instance_columns(J.cols)                                   # (n, nnz)
    entry = entries[J.rows]                                             # body output entry per nonzero
    per_instance = s.outs.per_instance[s.outs.group[entry]]
    rows = np.where(per_instance[None, :], row_table[entry].T, shared_row[entry][None, :])
    keep = (rows >= 0) & (cols >= 0)
    kept_rows, kept_cols, index = _kept(keep, rows, cols)
    out.add_call(kept_rows, kept_cols, M, t.operands(), index, t.slot_cols)


def _tile_hessian(t: _Term, sigma: Expr, lam: np.ndarray, out: Triplets) -> None:
    """The body's lower Hessian of ``sum_r c_r w_r out_r``, mapped, weights per instance (lambda) or shared (sigma)."""
    from .ad import hessian
    from .array import symbols

    s = t.structure
    r, inst, coef, mult, g_row = _weight_pieces(t, sigma, lam)
    # one coefficient per entry is baked into the body where each (entry, instance) has exactly one
    # piece with that coefficient; elsewhere the weight operand is the sum of coefficient * multiplier
    keys = r * (s.n + 1) + (inst + 1)
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    entries, first = np.unique(r, return_index=True)
    position = np.searchsorted(entries, r)
    bad = (counts[inverse] > 1) | (coef != coef[first][position])
    baked = np.where(np.isin(entries, r[bad]), 1.0, coef[first])
    mapped_entries = sorted_unique(r[inst >= 0])
    shared_entries = sorted_unique(r[inst < 0])
    outs, u = flat_outputs(t.structure.body), flat_inputs(t.structure.body)
    w_inst = symbols("w_inst", len(mapped_entries)) if len(mapped_entries) else np.empty(0, dtype=object)
    w_sh = symbols("w_shared", len(shared_entries)) if len(shared_entries) else np.empty(0, dtype=object)
    lagrangian: Any = const(0.0)
    for weights, which in ((w_inst, mapped_entries), (w_sh, shared_entries)):
        for w, e in zip(weights.tolist(), which.tolist()):
            b = float(baked[np.searchsorted(entries, e)])
            lagrangian = lagrangian + (w * outs[e] if b == 1.0 else b * w * outs[e])
    H = hessian(lagrangian, u, lower=True)
    if H.nnz == 0:
        return
    args: list = []  # the weight operands, after the call's own
    extra = []
    weight_slots: list = []
    zero = const(0.0)
    scale = baked[position]
    simple = ~bad & (coef == scale)
    if len(mapped_entries):
        W = np.full((s.n, len(mapped_entries)), zero, dtype=object)
        k = np.searchsorted(mapped_entries, r)
        take = simple & (inst >= 0)
        W[inst[take], k[take]] = mult[take]
        known = np.full(W.shape, -1, dtype=np.int64)  # W entries that are lambdas: their slots (see add_call)
        if out.multipliers is lam and out.variables is not None:
            known[inst[take], k[take]] = np.where(g_row[take] >= 0, len(out.variables) + g_row[take], -1)
        weight_slots.append(known.reshape(-1))
        for p in np.flatnonzero(~simple & (inst >= 0)).tolist():
            W[inst[p], k[p]] = W[inst[p], k[p]] + (coef[p] / scale[p]) * mult[p]
        args.append(W)
        extra.append((w_inst, False))
    if len(shared_entries):
        ws = np.full(len(shared_entries), zero, dtype=object)
        k = np.searchsorted(shared_entries, r)
        for p in np.flatnonzero(inst < 0).tolist():
            ws[k[p]] = mult[p] if simple[p] and ws[k[p]] is zero else ws[k[p]] + (coef[p] / scale[p]) * mult[p]
        args.append(ws)
        extra.append((w_sh, True))
        weight_slots.append(_multiplier_slots(ws, out, sigma, lam, g_row[(inst < 0) & (g_row >= 0)]))
    M = t.mapped_function("thess", extra, H.values)
    operands = np.concatenate([t.operands()] + [np.asarray(a, dtype=object).reshape(-1) for a in args])
    index = np.arange(s.n * H.nnz, dtype=np.int64).reshape(s.n, H.nnz)
    ra, cb = t.instance_columns(H.rows), t.instance_columns(H.cols)
    keep = (ra >= 0) & (cb >= 0)
    rows, cols = np.maximum(ra, cb), np.minimum(ra, cb)
    slots = np.concatenate([t.slot_cols, *weight_slots])
    kept_rows, kept_cols, kept_index = _kept(keep, rows, cols)
    out.add_call(kept_rows, kept_cols, M, operands, kept_index, slots)
    # an off-diagonal body entry whose two slots are one variable counts twice on its diagonal
    twice = keep & (ra == cb) & (H.rows != H.cols)[None, :]
    if twice.any():
        out.add_call(rows[twice], cols[twice], M, operands, index[twice], slots)


def _multiplier_slots(weights: np.ndarray, out: Triplets, sigma: Expr, lam: np.ndarray, rows: np.ndarray
                      ) -> np.ndarray:
    """Per weight (a few shared ones): its known slot (see :meth:`Triplets.add_call`) if it is sigma or
    ``lam[r]`` for one of ``rows``, else -1."""
    if out.multipliers is not lam or out.scale is not sigma or out.variables is None:
        return np.full(len(weights), -1, dtype=np.int64)
    n_x = len(out.variables)
    code = {lam[r]: n_x + r for r in rows.tolist()}
    code[sigma] = n_x + len(lam)
    return np.array([code.get(w, -1) for w in weights.tolist()], dtype=np.int64)


def _weight_pieces(t: _Term, sigma: Expr, lam: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per piece of f and g: body entry, instance (-1 shared), coefficient, multiplier (sigma or its lambda),
    row of g (-1 for f)."""
    parts = []
    if t.has_f:
        r, i = t.structure.outs.decode(t.f_result)
        parts.append((r, i, t.f_coef, np.full(len(r), sigma, dtype=object), np.full(len(r), -1, dtype=np.int64)))
    if t.has_g:
        r, i = t.structure.outs.decode(t.g_result)
        parts.append((r, i, t.g_coef, lam[t.g_row], t.g_row))
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(5))
