"""Derivatives of call nodes: calls of derivative Functions, built once per callee and cached on it.

A call node of Function ``F`` (symgraph/call.py) is differentiated without
looking inside ``F``'s graph from the caller: its derivative is again a call,
of an ordinary Function built from ``F``'s own graph by ``sg.jvp`` or
``sg.vjp``.  Flat over ``F``'s operand scalars ``x`` (its inputs flattened in
order) and result scalars ``y`` (outputs flattened, sparse ones by their
nonzeros):

* forward, ``F_jvp(x, tx) -> ty``: ``ty = (dy/dx)[rows, cols] @ tx``, the
  tangents of the results ``rows`` given tangents ``tx`` of the operands
  ``cols``;
* reverse, ``F_vjp(x, ybar) -> xbar``: ``xbar = ybar @ (dy/dx)[rows, cols]``,
  the cotangents ``ybar`` of the results ``rows`` pulled back to the
  operands ``cols``.

Both are specialized per call site to what carries a derivative, as JAX
does with symbolic zeros: ``cols`` of ``F_jvp`` are the operands with a
tangent, ``rows`` the results the graph reads that those reach through
``F``'s Jacobian pattern; ``rows`` of ``F_vjp`` are the results with a
cotangent, ``cols`` the active operands they reach.  So a result nobody reads
and an operand without a tangent cost nothing, and a call with no live
operand is no call at all.  A sweep with several directions (the colors of a
compressed Jacobian) makes one call per direction of one Function, built for
the union of the directions' operands; an operand without a given direction
gets the seed 0 there (so, as in JAX and CasADi, an infinite or NaN partial
of that operand gives NaN in that direction, where the inline graph, which
has no such term, stays finite).  The call sites of a model usually share one
specialization per mode, so a callee usually gets one Function per mode.

The cache is a ``WeakKeyDictionary`` keyed by the callee Function (it goes
with the callee), and per callee a dict keyed by ``(mode, rows, cols)``;
derivative Functions are cached the same way on themselves, so second
derivatives are calls again, built once.  A callee carrying a
``derivative_rule`` (:mod:`symgraph.custom`: ``custom_jvp``, ``custom_vjp``,
``stop_gradient``) gets its derivative Functions from the rule instead of
its graph; its pattern is still its graph's, or its ``known_pattern``.  The callee's Jacobian pattern
(dependency propagation over its graph, calls in it included) is cached
alongside: sparsity propagates through a call by it (:func:`row_columns`),
and the masks above are read from it.

Building a derivative Function differentiates the callee's graph, which may
call other Functions: their derivative Functions are built (and cached) on
the way, one nesting level of Functions at a time (never recursion over a
graph).

>>> import numpy as np, symgraph as sg
>>> x = sg.symbols("x", 2)
>>> F = sg.Function("f", [x], [x[0] * x[1], sg.sin(x[1])])
>>> D = forward_function(F, (0,), (0,))    # result 0's tangent from a tangent on operand 0
>>> D.function
Function(f_jvp: (x[2], tx[1]) -> (ty[1]), 1 ops)
>>> float(D.function([2.0, 3.0], [1.0])[0])
3.0
>>> forward_function(F, (0,), (0,)) is D    # cached on F
True
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, NamedTuple

import numpy as np

from .expr import CALL, CONST, RESULT, Expr, building, const, intern_results, intern_structural, topological
from .sparsity import Sparsity, jacobian_sparsity


class Derivative(NamedTuple):
    """A derivative Function of a callee and where its scalars sit among the callee's.

    ``function`` takes ``(x, seeds)``: all operand scalars of the callee, and
    one seed per entry of ``cols`` (forward: operand tangents) or ``rows``
    (reverse: result cotangents).  Its one output holds the tangents of the
    results ``rows`` (forward) or the cotangents of the operands ``cols``
    (reverse), in that order.
    """

    function: Any
    rows: tuple[int, ...]
    cols: tuple[int, ...]


class _Pattern:
    """A callee's Jacobian pattern, with its rows and columns as index sets (each made when first asked for).

    A map's pattern has a column per operand, hundreds of thousands for a
    model's parameters and data: a gradient reads only :meth:`meeting`
    (numpy over the CSR rows), never the Python sets.
    """

    __slots__ = ("pattern", "_csr", "_row_cols", "_col_rows")

    def __init__(self, pattern: Sparsity) -> None:
        self.pattern = pattern
        self._csr = self._row_cols = self._col_rows = None

    @property
    def csr(self) -> Any:
        if self._csr is None:
            self._csr = self.pattern.matrix.tocsr()
        return self._csr

    @property
    def row_cols(self) -> list[tuple[int, ...]]:
        if self._row_cols is None:
            csr = self.csr
            self._row_cols = [tuple(csr.indices[csr.indptr[j]:csr.indptr[j + 1]].tolist())
                              for j in range(self.pattern.shape[0])]
        return self._row_cols

    @property
    def col_rows(self) -> list[frozenset]:
        if self._col_rows is None:
            csc = self.pattern.matrix.tocsc()
            self._col_rows = [frozenset(csc.indices[csc.indptr[i]:csc.indptr[i + 1]].tolist())
                              for i in range(self.pattern.shape[1])]
        return self._col_rows

    def meeting(self, rows: Any) -> np.ndarray:
        """The columns (sorted) with a structural nonzero in one of ``rows``."""
        csr = self.csr
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return np.empty(0, dtype=np.int64)
        starts, ends = csr.indptr[rows], csr.indptr[rows + 1]
        if len(rows) == 1:
            return np.unique(csr.indices[starts[0]:ends[0]]).astype(np.int64)
        return np.unique(np.concatenate([csr.indices[a:b] for a, b in zip(starts.tolist(), ends.tolist())]))


# Per callee Function: "pattern" -> _Pattern, (mode, rows, cols) -> Derivative.
_CACHE: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()
_LOCK = threading.RLock()  # held while building; reentrant: builds of nested callees happen inside
_STATE = threading.local()  # .depth: how many builds enclose the current one in this thread
_NESTED = 16  # nesting levels built by plain recursion; deeper ones by the worklist of _cached


class _Missing(Exception):
    """Raised at nesting depth ``_NESTED`` instead of building there: ``task`` is ``(F, key, build)``."""

    def __init__(self, task: tuple) -> None:
        super().__init__(task[1])
        self.task = task


def _cached(F: Any, key: Any, build: Any) -> Any:
    """The value cached on callee ``F`` under ``key``, made by ``build()`` on a miss.

    A build differentiates (or propagates sparsity over) ``F``'s graph,
    which needs the cached values of the Functions ``F`` calls: those are
    built inside it, one nesting level deeper.  Past ``_NESTED`` levels a
    miss raises ``_Missing`` instead, which unwinds to the build loop below
    at the last recursive level; that loop builds the missing value first
    (its own misses stack up the same way) and then retries the build that
    needed it.  So Functions nested to any depth are handled with a
    bounded Python stack, at the price of one retry per missing value
    below that level.
    """
    table = _CACHE.get(F)
    if table is not None:
        hit = table.get(key)
        if hit is not None:
            return hit
    depth = getattr(_STATE, "depth", 0)
    if depth >= _NESTED:
        raise _Missing((F, key, build))
    with _LOCK:
        stack = [(F, key, build)]
        while stack:
            G, k, make = stack[-1]
            table = _CACHE.get(G)
            if table is None:
                table = _CACHE[G] = {}
            if k in table:
                stack.pop()
                continue
            _STATE.depth = depth + 1
            try:
                value = make()
            except _Missing as missing:
                stack.append(missing.task)
                continue
            finally:
                _STATE.depth = depth
            table[k] = value
            stack.pop()
        return _CACHE[F][key]


def flat_inputs(F: Any) -> np.ndarray:
    """``F``'s input symbols flattened in call-operand order (a 1-d object array)."""
    parts = [a.reshape(-1) for a in F.inputs]
    return np.concatenate(parts) if parts else np.empty(0, dtype=object)


def flat_outputs(F: Any) -> np.ndarray:
    """``F``'s output scalars flattened in result order (sparse outputs by their nonzeros)."""
    parts = [a.reshape(-1) for a in F.outputs]
    return np.concatenate(parts) if parts else np.empty(0, dtype=object)


def _pattern(F: Any) -> _Pattern:
    def build() -> _Pattern:
        structure = getattr(F, "structure", None)
        if structure is not None:
            return _Pattern(structure.pattern())
        known = getattr(F, "known_pattern", None)  # set by whoever built F from a structure
        if known is not None:
            return _Pattern(known)
        with building():
            outputs = flat_outputs(F)
            order = topological(outputs.tolist())
            _ORDERS[F] = order  # for the vjp of F's body that usually follows (take_order)
            return _Pattern(jacobian_sparsity(outputs, flat_inputs(F), order))

    return _cached(F, "pattern", build)


# Function -> the topological order of its flat outputs made for its pattern, until taken
_ORDERS: "weakref.WeakKeyDictionary[Any, list]" = weakref.WeakKeyDictionary()


def take_order(F: Any) -> list | None:
    """The topological order of ``F``'s flat outputs left by its pattern's build, once (None: none left).

    A map's vjp reads its body's pattern first (which columns), then
    differentiates the body: the second pass over the graph reuses the
    first one's order instead of walking the graph again.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> F = sg.Function("f", [x], [sg.sin(x)])
    >>> _ = jacobian_pattern(F)
    >>> [str(n) for n in take_order(F)], take_order(F)
    (['x', 'sin(x)'], None)
    """
    return _ORDERS.pop(F, None)


def jacobian_pattern(F: Any) -> Sparsity:
    """The structural pattern of ``F``'s Jacobian, results by operands (flat), cached on ``F``.

    >>> import symgraph as sg
    >>> x = sg.symbols("x", 3)
    >>> jacobian_pattern(sg.Function("f", [x], [x[0] * x[2], sg.floor(x[1])])).matrix.toarray().tolist()
    [[1, 0, 1], [0, 0, 0]]
    """
    return _pattern(F).pattern


def row_columns(F: Any) -> list[tuple[int, ...]]:
    """Per result ``j`` of a call of ``F``: the operand positions its derivative reads (cached)."""
    return _pattern(F).row_cols


def column_rows(F: Any) -> list[frozenset]:
    """Per operand ``i`` of a call of ``F``: the results whose derivative reads it (cached)."""
    return _pattern(F).col_rows


def cached(F: Any) -> dict[tuple, Derivative]:
    """The derivative Functions built for callee ``F`` so far, by ``(mode, rows, cols)`` (a copy).

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> F = sg.Function("sq", [x], [x * x])
    >>> _ = reverse_function(F, (0,), (0,))
    >>> list(cached(F))
    [('vjp', (0,), (0,))]
    """
    table = _CACHE.get(F) or {}
    return {k: v for k, v in table.items() if k != "pattern"}


def builds(F: Any) -> int:
    """How many derivative Functions have been built for callee ``F`` (each key is built once)."""
    return len(cached(F))


def forward_function(F: Any, rows: tuple[int, ...], cols: tuple[int, ...]) -> Derivative:
    """``F_jvp``: tangents of the results ``rows`` from tangents of the operands ``cols``, cached on ``F``.

    The caller passes only results whose derivative reads one of ``cols``
    (see :func:`row_columns`), so every output is structurally nonzero.
    """
    return _cached(F, ("jvp", rows, cols), lambda: Derivative(_build_jvp(F, rows, cols), rows, cols))


def reverse_function(F: Any, rows: tuple[int, ...], cols: tuple[int, ...]) -> Derivative:
    """``F_vjp`` for cotangents on the results ``rows`` pulled back to the operands ``cols``, cached on ``F``.

    The caller passes only operands whose column meets ``rows`` (see
    :func:`column_rows`), so every output is structurally nonzero.
    """
    return _cached(F, ("vjp", rows, cols), lambda: Derivative(_build_vjp(F, rows, cols), rows, cols))


def _build_jvp(F: Any, rows: tuple[int, ...], cols: tuple[int, ...]) -> Any:
    from .ad import jvp
    from .array import symbols
    from .function import Function

    if getattr(F, "structure", None) is not None:
        return F.structure.derivative(F, "jvp", rows, cols)
    rule = getattr(F, "derivative_rule", None)  # a user-given rule (symgraph/custom.py)
    if rule is not None:
        return rule(F, "jvp", rows, cols)
    x, y = flat_inputs(F), flat_outputs(F)
    tx = symbols("tx", len(cols))
    with building():
        ty = jvp(y[list(rows)], x[list(cols)], tx)
    return Function(f"{F.name}_jvp", [x, tx], [ty], input_names=["x", "tx"], output_names=["ty"])


def _build_vjp(F: Any, rows: tuple[int, ...], cols: tuple[int, ...]) -> Any:
    from .ad import vjp
    from .array import symbols
    from .function import Function

    if getattr(F, "structure", None) is not None:
        return F.structure.derivative(F, "vjp", rows, cols)
    rule = getattr(F, "derivative_rule", None)  # a user-given rule (symgraph/custom.py)
    if rule is not None:
        return rule(F, "vjp", rows, cols)
    x, y = flat_inputs(F), flat_outputs(F)
    ybar = symbols("ybar", len(rows))
    with building():
        xbar = vjp(y[list(rows)], x[list(cols)], ybar)
    return Function(f"{F.name}_vjp", [x, ybar], [xbar], input_names=["x", "ybar"], output_names=["xbar"])


# ------------------------------------------------------- what the sweeps call
_ZERO = const(0.0)


def _live(e: Any) -> bool:
    """A seed that is not the constant 0 (absent seeds are None)."""
    return e is not None and not (e.op is CONST and e.data == 0.0)


def _results(D: Derivative, operands: tuple, seeds: list, split: tuple | None = None) -> list:
    """The flat result nodes of one call of ``D.function`` on the callee's ``operands`` and ``seeds``.

    The operands are Exprs already, in the order of the Function's flat
    inputs, so the call node is interned directly (``call_function`` would
    check and convert each argument: most of a sweep's time on small callees).
    A map's flat derivative Function is not called: its mapped wrapper is,
    on the operands and the seeds placed in its groups, and the wanted
    results are picked (``FlatDerivative.direct``, :mod:`symgraph.structdiff`).
    With ``split = (backward map, residual nodes)`` the backward map is
    called in its place, on the residuals as well.
    """
    if getattr(D.function, "splice", False):  # a rule's derivative: its graph on the operands (see custom._Rule)
        from .substitution import _rebuild

        G = D.function
        keys = [s for arr in G.inputs for s in arr.reshape(-1).tolist()]
        return list(_rebuild(list(G.outputs[0].reshape(-1)), dict(zip(keys, list(operands) + list(seeds)))))
    direct = getattr(D.function, "direct", None)
    if direct is not None:  # a map's derivative: call its mapped wrapper itself, pick the results
        mapped, seed_index, where = direct
        placed = [seeds[i] if i >= 0 else _ZERO for i in seed_index.tolist()]
        extra: tuple = ()
        if split is not None:
            mapped, extra = split
        node = intern_structural(CALL, tuple(operands) + tuple(placed) + extra, mapped)
        results = intern_results(node, 0, mapped.structure.n_results)
        return [results[w] if w >= 0 else _ZERO for w in where.tolist()]
    node = intern_structural(CALL, tuple(operands) + tuple(seeds), D.function)
    return [intern_structural(RESULT, (node,), j) for j in range(D.function.outputs[0].size)]


class CallTangents:
    """The tangents of one call node's results: per direction, one call of a ``F_jvp``.

    Stored by the forward sweep in place of the call node's tangent (a call
    node is no value); each result node reads its own with :meth:`of`.
    """

    __slots__ = ("calls",)

    def __init__(self, calls: list) -> None:
        self.calls = calls  # [(direction, {result j: position}, result nodes)]

    def of(self, j: int) -> dict:
        """``{direction: tangent}`` of result ``j`` (empty if it has none)."""
        out = {}
        for k, where, results in self.calls:
            p = where.get(j)
            if p is not None:
                out[k] = results[p]
        return out


def forward(call: Expr, tangents: list, wanted: Any) -> CallTangents | None:
    """The tangents of ``call``'s results given its operands' ``{direction: tangent}`` (None: no tangent).

    ``wanted`` holds the indices of the results the graph reads.  One
    ``F_jvp`` for the call, from the operands that carry a tangent in any
    direction to the wanted results they reach, and one call of it per
    direction (an operand without that direction gets the seed 0); None
    when no wanted result gets a tangent.
    """
    F = call.data
    col_rows = _pattern(F).col_rows
    wanted = frozenset(wanted)
    cols, directions, reached = [], set(), set()
    for i, t in enumerate(tangents):
        if t and not wanted.isdisjoint(col_rows[i]):
            live = [k for k, v in t.items() if _live(v)]
            if live:
                cols.append(i)
                directions.update(live)
                reached.update(col_rows[i])
    if not cols:
        return None
    D = forward_function(F, tuple(sorted(reached & wanted)), tuple(cols))
    position = {j: p for p, j in enumerate(D.rows)}
    calls = []
    for k in sorted(directions, key=_order):
        seeds = [tangents[i].get(k, _ZERO) for i in cols]
        # only the results that read an operand with this direction get a tangent in it
        reached = set().union(*(col_rows[i] for i, t in zip(cols, seeds) if _live(t)))
        where = {j: position[j] for j in reached if j in position}
        calls.append((k, where, _results(D, call.args, seeds)))
    return CallTangents(calls)


def reverse(call: Expr, bars: dict, active: Any, forwarded: dict | None = None) -> list[tuple[Expr, dict]]:
    """Cotangent contributions ``[(operand, {direction: cotangent})]`` of a call node.

    ``bars`` maps result index ``j`` to ``{direction: cotangent}``.  One
    ``F_vjp`` for the call, from the results that carry a cotangent in any
    direction to the operands in ``active`` that those results read, and
    one call of it per direction (a result without that direction gets 0).

    With a dict ``forwarded`` (a map's derivative being built,
    :mod:`symgraph.structdiff`), a map call whose vjp reads forward values
    is split instead of recomputed: a forward call of the map that also
    returns those values per instance (the residuals), recorded in
    ``forwarded[call]``, and one backward call per direction that reads
    them; the caller then takes the primal results from the forward call.
    """
    F = call.data
    args = call.args
    rows, directions = [], set()
    for j in sorted(bars):
        live = [k for k, v in bars[j].items() if _live(v)]
        if live:
            rows.append(j)
            directions.update(live)
    cols = _pulled_back(F, args, rows, active)
    if not cols:
        return []
    D = reverse_function(F, tuple(rows), cols)
    split = _split(call, D, forwarded) if forwarded is not None else None
    out = []
    for k in sorted(directions, key=_order):
        seeds = [bars[j].get(k, _ZERO) for j in rows]
        if split is not None:  # the seeds read the values from the forward call already (nothing rebuilt later)
            seeds = _forwarded_seeds(call, forwarded[call], seeds)
        # only the operands read by a result with this direction get a cotangent in it
        live = {j for j, v in zip(rows, seeds) if _live(v)}
        results = _results(D, args, seeds, split)
        if len(live) == len(rows):  # every row is live: each of cols meets one (_pulled_back chose them so)
            out.extend((args[i], {k: r}) for i, r in zip(cols, results))
            continue
        col_rows = _pattern(F).col_rows
        out.extend((args[i], {k: r}) for i, r in zip(cols, results) if not live.isdisjoint(col_rows[i]))
    return out


def _split(call: Expr, D: Derivative, forwarded: dict) -> tuple | None:
    """``(backward map, residual nodes)`` for the vjp ``D`` of map call ``call``, or None (no split).

    The forward call is made once per primal call and kept in
    ``forwarded``; None when ``D`` is no map's derivative or the map's
    vjp reads no forward value (:func:`symgraph.structdiff.residual_split`).
    """
    direct = getattr(D.function, "direct", None)
    if direct is None:
        return None
    from .structdiff import residual_split

    split = residual_split(call.data, direct[0])
    if split is None:
        return None
    forward_map, backward_map, start, count = split
    R = forwarded.get(call)
    if R is None or R.data is not forward_map:
        R = intern_structural(CALL, call.args, forward_map)
        forwarded.setdefault(call, R)
    return backward_map, tuple(intern_results(R, start, count))


def _forwarded_seeds(call: Expr, forward: Expr, seeds: list) -> list:
    """``seeds`` reading ``call``'s results from the ``forward`` call (same positions) instead."""
    from .hoist import _replace

    n = call.data.structure.n_results
    return _replace(seeds, dict(zip(intern_results(call, 0, n), intern_results(forward, 0, n))))


def _pulled_back(F: Any, args: tuple, rows: list, active: Any) -> tuple[int, ...]:
    """The operand positions in ``active`` whose column of ``F``'s Jacobian pattern meets ``rows``."""
    return tuple(i for i in _meeting(F, rows).tolist() if args[i] in active)


def reverse_single(call: Expr, bars: dict, active: Any, valued: dict | None = None) -> list[tuple[Expr, Expr]]:
    """:func:`reverse` for one direction: ``bars`` maps result ``j`` to its cotangent Expr.

    With a dict ``valued`` (one sweep for every gradient wanted,
    :func:`symgraph.ad.value_and_grad`), a map call pulls back to the
    ``active`` operands only, and through the map of a wrapper that also
    returns the call's own results after the cotangents
    (:func:`symgraph.structdiff.valued_map`); ``valued[call]`` is that
    call, from which :func:`read_values` takes the values.

    For a structured callee (a map, a fold) the call pulls back to every
    non-constant operand its rows reach, not only the ``active`` ones
    (:func:`_widened`); the sweep drops the contributions to inactive
    operands.  So the gradients of one objective w.r.t. several parameter
    groups (``[sg.grad(f, p) for p in params]``, one sweep each) make the
    same derivative call, one node computed once, instead of one pass over
    the instances per group.

    >>> import numpy as np, symgraph as sg
    >>> x, p, q = sg.symbols("x"), sg.symbols("p"), sg.symbols("q")
    >>> M = sg.Function("f", [x, p, q], [p * sg.sin(q * x)]).map(4, shared=["p", "q"], reduce="sum")
    >>> X = sg.symbols("X", 4)
    >>> f = M(X, p, q)
    >>> g = sg.Function("g", [X, p, q], [sg.grad(f, p), sg.grad(f, q)])
    >>> g.tape.n_calls    # one call of M's vjp serves both gradients
    1
    """
    F = call.data
    args = call.args
    rows = [j for j in sorted(bars) if _live(bars[j])]
    if getattr(F, "structure", None) is not None and valued is None:
        cols = _widened(F, args, rows)
    else:
        cols = _pulled_back(F, args, rows, active)
    if not cols:
        return []
    D = reverse_function(F, tuple(rows), cols)
    direct = getattr(D.function, "direct", None) if valued is not None else None
    if direct is None:
        results = _results(D, args, [bars[j] for j in rows])
        return [(args[i], r) for i, r in zip(cols, results) if args[i] in active]
    from .structdiff import valued_map

    mapped, seed_index, where = direct
    both = valued_map(call.data, mapped)
    placed = [bars[rows[i]] if i >= 0 else _ZERO for i in seed_index.tolist()]
    node = valued[call] = intern_structural(CALL, tuple(args) + tuple(placed), both)
    values = intern_results(node, 0, both.structure.n_results)
    results = [values[w] if w >= 0 else _ZERO for w in where.tolist()]
    return [(args[i], r) for i, r in zip(cols, results) if args[i] in active]


def read_values(roots: list, valued: dict) -> list:
    """``roots`` reading each map call's results in ``valued`` from its vjp call (see :func:`reverse_single`).

    The vjp call returns the cotangents, then the map's own results at the
    same positions as the map call.  Where the vjp call's operands read one
    of these calls (the cotangent depends on a value: reading it from a vjp
    call could close a cycle), the map call stays and the vjp call is made
    again without the values; either way each instance's forward runs once
    less or as often as before, never more.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> read_values([sg.sin(x)], {}) == [sg.sin(x)]
    True
    """
    from .call import rebuild
    from .hoist import inner_order

    if not valued:
        return list(roots)
    calls = set(valued) | set(valued.values())
    read_from, whole = {}, set()  # map call -> its vjp call; vjp calls to make again without the values
    for call, both in valued.items():
        if calls.isdisjoint(inner_order(list(both.args[len(call.args):]))):  # the seeds (the rest is call's)
            read_from[call] = both
        else:  # its operands read a value: reading that from a vjp call could close a cycle
            whole.add(both)
    # vjp calls whose whole graph reads none of the calls: they and their results stay as they are
    settled = {both for both in read_from.values() if calls.isdisjoint(inner_order(list(both.args)))}
    done: dict = {}
    get, untouched = done.get, done.keys().isdisjoint
    for node in inner_order(roots, skip=settled):  # not below a call known to stay
        args = node.args
        if node.op is RESULT and args[0] in read_from:
            both = read_from[args[0]]
            done[node] = intern_structural(RESULT, (both,), both.data.n_cotangents + node.data)
        elif node in whole:
            done[node] = intern_structural(CALL, tuple(get(a, a) for a in args), node.data.plain_vjp)
        elif untouched(args):  # no operand replaced (the most nodes): checked in C
            continue
        elif node.op is RESULT:  # the same position of a call of the same callee: nothing to check
            done[node] = intern_structural(RESULT, (get(args[0], args[0]),), node.data)
        else:
            new_args = [get(a, a) for a in args]
            if any(a is not b for a, b in zip(args, new_args)):
                done[node] = rebuild(node, new_args)
    return [get(r, r) for r in roots]


def _widened(F: Any, args: tuple, rows: list) -> tuple[int, ...]:
    """The non-constant operand positions whose column of ``F``'s Jacobian pattern meets ``rows``.

    A structured call costs a pass over its instances whatever the columns,
    and the derivative Function is built and cached per ``(rows, cols)``:
    taking every operand that can carry a cotangent keeps one Function and
    one call per call site across the sweeps of several gradients.
    """
    return tuple(i for i in _meeting(F, rows).tolist() if args[i].op is not CONST)


def _meeting(F: Any, rows: list) -> np.ndarray:
    """The operand positions (sorted) whose column of ``F``'s Jacobian pattern meets ``rows``.

    For a map, read from its body's pattern (:func:`symgraph.structdiff.map_meeting`): the map's own
    pattern, tiled over every instance, is never built for a gradient.
    """
    structure = getattr(F, "structure", None)
    if structure is not None and getattr(structure, "kind", None) == "map":
        from .structdiff import map_meeting

        return map_meeting(structure, rows)
    return _pattern(F).meeting(rows)


def _order(k: Any) -> tuple:
    """Directions are ints in every sweep; sort anything else by its text, deterministically."""
    return (0, k, "") if isinstance(k, (int, np.integer)) else (1, 0, repr(k))
