"""Derivative Functions of structured Functions: a map's are maps of its body's.

:mod:`symgraph.calldiff` asks every callee for flat derivative Functions,
``F_jvp(x, tx) -> ty`` and ``F_vjp(x, ybar) -> xbar`` specialized to
result positions ``rows`` and operand positions ``cols``.  For a map ``M``
of body ``F`` they are built without unrolling:

1. the positions are decoded to the body's scalars (which body operands
   carry a seed in some instance, which body results are wanted);
2. the body's derivative for those sets is built as a graph over the
   body's own input symbols (what the body's ``F_jvp``/``F_vjp`` computes);
3. that graph is the *wrapper* ``W``: it takes the body's inputs one by one
   plus the seeds in two groups, per-instance and shared, and returns the
   derivative per-instance, one output per body input (or output) so that
   each one's derivative over all instances is one run of results, and
   summed.  ``W`` holds no call
   of a derivative Function (a body that is itself a map holds one, the
   derivative of its call node), so the C loop of step 4 hands each
   instance pointers into the arguments and nothing is copied per instance;
4. the map of ``W`` over the same instances does the work: forward, the
   tangents of shared inputs are shared and those of summed outputs summed;
   reverse, the cotangents of summed outputs are shared and those of shared
   inputs summed over instances (the adjoint of a broadcast is a sum);
5. the flat derivative Function places its seed symbols (or 0) into the
   groups, calls that map once and picks the wanted positions out.  Its
   Jacobian pattern (``known_pattern``, needed to differentiate it again)
   is read from ``W``'s pattern when first asked for: a first-order
   gradient never asks, and for a shared parameter that pattern is dense
   against every instance's inputs (see :class:`FlatDerivative`).

So a derivative of a map is again one map call, and its own derivatives
(second order) come the same way.  In a graph, :mod:`symgraph.calldiff`
calls the mapped wrapper itself, not the flat Function (``direct``: the
seeds placed into the groups, the results picked, as the flat Function's
own graph does): the caller's operands go straight to the map, and the C
glue copies them once instead of twice (into ``x``, then into the map).

>>> import numpy as np, symgraph as sg
>>> x, p = sg.symbols("x"), sg.symbols("p")
>>> M = sg.Function("f", [x, p], [p * x * x]).map(3, shared=["p"], reduce="sum")
>>> X = sg.symbols("X", 3)
>>> g = sg.grad(M(X, 2.0), X)
>>> sg.Function("g", [X], [g])(np.array([1.0, 2.0, 3.0]))
array([ 4.,  8., 12.])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import calldiff
from .expr import const
from .function import Function
from .map import sizes

_ZERO = const(0.0)


def map_derivative(F: Any, s: Any, mode: str, rows: tuple, cols: tuple) -> Any:
    """The flat ``F_jvp`` (mode ``"jvp"``) or ``F_vjp`` (``"vjp"``) of map ``F`` with structure ``s``."""
    from .array import symbols
    from .call import call_function

    body_rows_of, inst_rows = s.outs.decode(np.asarray(rows, dtype=np.int64))
    body_cols_of, inst_cols = s.ins.decode(np.asarray(cols, dtype=np.int64))
    if mode == "jvp":
        col_rows = calldiff.column_rows(s.body)
        bcols = sorted(set(body_cols_of.tolist()))
        reached = set().union(*(col_rows[c] for c in bcols)) if bcols else set()
        brows = sorted(set(body_rows_of.tolist()) & reached)
        seed_pos, seed_inst, seed_layout, seed_body = body_cols_of, inst_cols, s.ins, bcols
        out_pos, out_inst, out_layout, out_body = body_rows_of, inst_rows, s.outs, brows
    else:
        brows = sorted(set(body_rows_of.tolist()))
        # the body columns asked for that one of brows reads (from the rows' side: no per-column sets)
        met = calldiff._pattern(s.body).meeting(brows)
        bcols = np.intersect1d(body_cols_of, met).tolist()
        seed_pos, seed_inst, seed_layout, seed_body = body_rows_of, inst_rows, s.outs, brows
        out_pos, out_inst, out_layout, out_body = body_cols_of, inst_cols, s.ins, bcols
    seed_shared = [not seed_layout.per_instance[seed_layout.group[b]] for b in seed_body]
    # per output body position: its body input (vjp) or output (jvp) if it has one copy per instance, else -1
    out_group = [int(out_layout.group[b]) if out_layout.per_instance[out_layout.group[b]] else -1
                 for b in out_body]
    key = ("mapped", mode, tuple(brows), tuple(bcols))
    mapped = calldiff._cached(F, key, lambda: _mapped_wrapper(s, mode, key[2], key[3], seed_shared, out_group))

    n_seeds = len(cols if mode == "jvp" else rows)
    tables = _seed_tables(s.n, seed_body, seed_shared, seed_pos, seed_inst)
    seed_index = np.concatenate([t.reshape(-1) for t in tables]) if tables else np.empty(0, dtype=np.int64)
    where = _pick(s.n, out_body, out_group, out_pos, out_inst, mapped.structure.n_results)
    names = ("tx", "ty") if mode == "jvp" else ("ybar", "xbar")

    def graph() -> tuple:
        """The flat Function's inputs and outputs: the seeds placed, one call of ``mapped``, the results picked."""
        x = symbols("x", s.n_operands)
        seeds = symbols(names[0], n_seeds)
        args = [x[off:off + size].reshape(shape) for off, size, shape in
                zip(s.ins.offsets.tolist(), sizes(s.input_shapes()), s.input_shapes())]
        outs = call_function(mapped, args + _seed_values(tables, seeds))
        parts = [np.asarray(o, dtype=object).reshape(-1) for o in (outs if isinstance(outs, tuple) else [outs])]
        flat_outs = np.concatenate(parts) if parts else np.empty(0, dtype=object)
        picked = np.full(len(where), _ZERO, dtype=object)
        picked[where >= 0] = flat_outs[where[where >= 0]]
        return [x, seeds], [picked]

    D = FlatDerivative.deferred(f"{F.name}_{mode}", graph, input_names=["x", names[0]], output_names=[names[1]])
    in_index = np.concatenate([np.arange(s.n_operands, dtype=np.int64),
                               np.where(seed_index >= 0, s.n_operands + seed_index, -1)])
    D.pattern_source = (mapped, in_index, where, s.n_operands + n_seeds)
    D.direct = (mapped, seed_index, where)
    return D


def map_meeting(s: Any, rows: Any) -> np.ndarray:
    """The operands (flat positions, sorted) of a map with structure ``s`` that its results ``rows`` read.

    From the body's pattern: a stacked result of instance ``i`` reads its
    body row's mapped columns in instance ``i``, a summed result reads them
    in every instance, and both read the shared columns once, as the map's
    tiled pattern says (:meth:`symgraph.map.MapStructure.pattern`), which
    is not built.

    >>> import symgraph as sg
    >>> x, p = sg.symbols("x"), sg.symbols("p")
    >>> M = sg.Function("f", [x, p], [p * x, x]).map(3, shared=["p"], reduce=[None, "sum"])
    >>> map_meeting(M.structure, [1]).tolist(), map_meeting(M.structure, [3]).tolist()
    ([1, 3], [0, 1, 2])
    """
    body_rows, inst = s.outs.decode(np.asarray(rows, dtype=np.int64))
    P = calldiff._pattern(s.body).csr
    starts, counts = P.indptr[body_rows].astype(np.int64), np.diff(P.indptr)[body_rows].astype(np.int64)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    cols = P.indices[np.repeat(starts, counts) + np.arange(int(counts.sum()), dtype=np.int64) - first]
    cols = cols.astype(np.int64)
    inst = np.repeat(inst, counts)
    mapped = s.ins.per_instance[s.ins.group[cols]]
    every = mapped & (inst < 0)  # a summed row reading a mapped column: every instance
    once = ~every
    n = s.n
    parts = [s.ins.encode(cols[once], np.maximum(inst[once], 0)),
             s.ins.encode(np.repeat(np.unique(cols[every]), n),
                          np.tile(np.arange(n, dtype=np.int64), len(np.unique(cols[every]))))]
    return np.unique(np.concatenate(parts))


class FlatDerivative(Function):
    """A flat derivative Function of a map, whose Jacobian pattern is computed when first asked for.

    ``known_pattern`` (read by :mod:`symgraph.calldiff` when the pattern is
    needed, e.g. to differentiate the derivative again) is built from the
    mapped wrapper's tiled pattern by :func:`_flat_pattern` on first access
    and kept.  A first-order gradient never asks for it, which matters: the
    pattern of a shared parameter's cotangent against the points is dense
    (parameters x points), far larger than the program that computes it.
    """

    pattern_source: tuple | None = None
    _known: Any = None
    # (mapped wrapper, per wrapper seed scalar the index of its seed or -1, per output the wrapper result
    # or -1): what calldiff calls in place of this Function (no glue copying the operands into ``x``)
    direct: tuple | None = None
    _pending: tuple | None = None  # (name, graph, names) until the Function is first used

    @classmethod
    def deferred(cls, name: str, graph: Any, **names: Any) -> "FlatDerivative":
        """The Function named ``name`` of ``graph() -> (inputs, outputs)``, built when first used.

        A gradient calls the mapped wrapper itself (``direct``) and never
        this Function, whose graph and Tape span every operand of the map
        (points and parameters): they are built only when something reads
        the Function (its Tape, its call, a second derivative).
        """
        self = cls.__new__(cls)
        self._pending = (name, graph, names)
        return self

    def __getattr__(self, attr: str) -> Any:
        """Only for attributes not set yet: build the Function if it is pending, then read ``attr``."""
        pending = self.__dict__.get("_pending")
        if pending is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {attr!r}")
        with calldiff._LOCK:
            if self.__dict__.get("_pending") is not None:
                name, graph, names = pending
                inputs, outputs = graph()
                Function.__init__(self, name, inputs, outputs, **names)
                self._pending = None
        return getattr(self, attr)

    @property
    def known_pattern(self) -> Any:
        if self._known is None and self.pattern_source is not None:
            self._known = _flat_pattern(*self.pattern_source)
            self.pattern_source = None
        return self._known


class LazyTapeFunction(Function):
    """A Function whose Tape is built when first read (the same Tape as :class:`Function`'s).

    A map's vjp wrapper is built for every reverse sweep, but where
    :func:`symgraph.ad.value_and_grad` reads the values from the map's
    vjp it calls :func:`valued_map`'s body instead, and the wrapper's own
    Tape (as large as the derivative) is never read.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> F = LazyTapeFunction("f", [x], [sg.sin(x)])
    >>> F._tape is None, F.n_ops, bool(F(0.5) == sg.Function("g", [x], [sg.sin(x)])(0.5))
    (True, 1, True)
    """

    _tape = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from .tape import tapes_deferred

        with tapes_deferred():
            super().__init__(*args, **kwargs)

    @property
    def tape(self) -> Any:
        """The Tape, built on first read."""
        if self._tape is None:
            from .expr import building
            from .tape import build_tape, input_positions

            with calldiff._LOCK, building():
                if self._tape is None:
                    self._tape = build_tape(self.inputs, self.outputs, input_positions(self.inputs), distinct=True)
        return self._tape

    @tape.setter
    def tape(self, value: Any) -> None:
        self._tape = value


def _mapped_wrapper(s: Any, mode: str, rows: tuple, cols: tuple, seed_shared: list, out_group: list) -> Any:
    """The map, over ``s``'s instances, of a wrapper computing the body's derivative for ``rows`` and ``cols``.

    The wrapper's inputs: the body's inputs, then the per-instance seeds and
    the shared seeds (each group only if not empty); its outputs: the
    derivative's (what the body's ``F_jvp``/``F_vjp`` for ``rows`` and
    ``cols`` returns) split into one per-instance output per body input
    (``jvp``: output) ``g`` in ``out_group`` and one summed (``-1``), each
    only if not empty.  The wrapper *is* the derivative graph, built over the body's
    own input symbols, so an instance runs one function on the pointers the
    loop passes, with no call (and no copy of its operands) inside; a body
    that is itself a map holds one call node, whose derivative is the call
    of the inner map's flat derivative Function.
    """
    from .array import symbols
    from .map import MapStructure

    body = s.body
    n_each = len(seed_shared) - sum(seed_shared)
    each, once = symbols("se", n_each), symbols("ss", len(seed_shared) - n_each)
    seeds = np.empty(len(seed_shared), dtype=object)
    seeds[[not f for f in seed_shared]] = each
    seeds[list(map(bool, seed_shared))] = once
    forwarded: dict = {}
    result = _derivative_graph(body, mode, rows, cols, seeds, forwarded)
    xs = list(body.inputs)
    out_of = np.asarray(out_group, dtype=np.int64)
    inputs, names, shared = list(xs), list(body.input_names), list(s.shared)
    for group, name, flag in ((each, "se", False), (once, "ss", True)):
        if group.size:
            inputs.append(group)
            names.append(name)
            shared.append(flag)
    outputs, out_names, reduce = [], [], []
    parts = [(result[out_of == g], f"oe{g}", None) for g in sorted(set(out_of.tolist()) - {-1})]
    for part, name, how in parts + [(result[out_of < 0], "os", "sum")]:
        if part.size:
            outputs.append(part)
            out_names.append(name)
            reduce.append(how)
    W = LazyTapeFunction(f"{body.name}_{mode}_w", inputs, outputs, input_names=_unique(names),
                         output_names=out_names)  # a gradient's value reading calls valued_map's body instead
    W.forwarded = forwarded  # read by residual_split: the body's map calls whose forward W takes from elsewhere
    return MapStructure(W, s.n, tuple(shared), tuple(reduce)).function(f"{W.name}_map{s.n}")


def _derivative_graph(body: Any, mode: str, rows: tuple, cols: tuple, seeds: np.ndarray,
                      forwarded: dict | None = None) -> np.ndarray:
    """The graph of the body's derivative (what its ``D`` computes), over the body's own symbols and ``seeds``.

    Reverse mode with a dict ``forwarded``: the map calls in the body are
    split into a forward call that saves what their vjp reads and a
    backward call that reads it (:func:`symgraph.ad.vjp_forwarding`), the
    graph reads the primal results from the forward calls, and
    ``forwarded`` holds ``{primal call: forward call}``.  So an inner map
    runs its forward once per instance of the outer one, not twice (once
    for the outer body's own values, once inside its vjp).

    >>> import numpy as np, symgraph as sg
    >>> x = sg.symbols("x", 2)
    >>> F = sg.Function("f", [x], [x[0] * x[1]])
    >>> [str(e) for e in _derivative_graph(F, "vjp", (0,), (0, 1), np.array([sg.symbols("b")]))]
    ['x[1] * b', 'x[0] * b']
    """
    from .ad import jvp, vjp_forwarding
    from .expr import building

    rule = getattr(body, "derivative_rule", None)  # a body with a user-given rule (symgraph/custom.py)
    if rule is not None:
        with building():
            return rule.graph(body, mode, rows, cols, seeds)
    x, y = calldiff.flat_inputs(body), calldiff.flat_outputs(body)
    with building():
        if mode == "jvp":
            out = jvp(y[list(rows)], x[list(cols)], seeds)
        else:
            every = len(rows) == y.size and list(rows) == list(range(y.size))
            order = calldiff.take_order(body) if every else None  # the pattern's pass over the same roots
            out = vjp_forwarding(y[list(rows)], x[list(cols)], seeds, forwarded, order)
        out = np.asarray(out, dtype=object).reshape(-1)
        if forwarded:
            read = _unsplit_reading_forward(out.tolist(), forwarded)
            out = np.empty(len(read), dtype=object)
            out[:] = read
    return out


def _unsplit_reading_forward(roots: list, forwarded: dict) -> list:
    """``_reading_forward(_unsplit(roots, forwarded), forwarded)``, with one traversal where nothing is unsplit."""
    from .hoist import inner_order, replace_along

    order = inner_order(roots)  # _unsplit and _forward_results read results, replace_along rebuilds: no leaf
    unsplit = _unsplit(roots, forwarded, order)
    if unsplit is not roots:
        return _reading_forward(unsplit, forwarded)
    mapping = _forward_results(order, forwarded)
    return replace_along(order, roots, mapping) if mapping else list(roots)


def _unsplit(roots: list, forwarded: dict, order: list | None = None) -> list:
    """``roots`` with the split vjp calls of the primal calls that ``roots`` never read made whole again.

    A split pays off only where the graph reads the primal call's results
    (an outer body's values computed from the inner map's): otherwise its
    forward call would run only for the residuals, one more call and pass
    over them where the whole vjp recomputes them in one.  Those primal
    calls leave ``forwarded``; each of their backward calls is replaced by
    the vjp wrapper's map on the same operands less the residuals.
    """
    from .expr import CALL, RESULT, intern_structural
    from .hoist import _replace, inner_order

    order = inner_order(roots) if order is None else order
    primal = {R: C for C, R in forwarded.items()}  # a forward call's first results are its primal call's
    read = set()
    for node in order:
        if node.op is RESULT:
            call = node.args[0]
            if call in forwarded:
                read.add(call)
            elif call in primal and node.data < primal[call].data.structure.n_results:
                read.add(primal[call])
    idle = {forwarded.pop(C) for C in list(forwarded) if C not in read}
    if not idle:
        return roots
    mapping, whole = {}, {}
    for node in order:
        if node.op is not RESULT:
            continue
        call = node.args[0]
        plain = getattr(call.data, "plain", None)
        if call.op is not CALL or plain is None or call.args[-1].args[0] not in idle:
            continue
        if call not in whole:
            whole[call] = intern_structural(CALL, call.args[:plain.structure.n_operands], plain)
        mapping[node] = intern_structural(RESULT, (whole[call],), node.data)
    return _replace(roots, mapping)


def _reading_forward(roots: list, forwarded: dict) -> list:
    """``roots`` with every result of a primal call in ``forwarded`` read from its forward call instead."""
    from .hoist import inner_order, replace_along

    order = inner_order(roots)
    mapping = _forward_results(order, forwarded)
    return replace_along(order, roots, mapping) if mapping else list(roots)


def _forward_results(order: list, forwarded: dict) -> dict:
    """``{result of a primal call in forwarded: the same result of its forward call}`` over ``order``."""
    from .expr import RESULT, intern_structural

    return {node: intern_structural(RESULT, (forwarded[node.args[0]],), node.data)
            for node in order if node.op is RESULT and node.args[0] in forwarded}


RESIDUAL_WIDTH = 64  # residuals per instance allowed beyond 4 per body scalar (inputs and outputs)
RESIDUAL_TOTAL = 1 << 21  # residual scalars allowed per split call (all instances): 16 MiB of work array


def residual_split(F: Any, mapped: Any) -> tuple | None:
    """The forward/backward split of the mapped vjp wrapper ``mapped`` of map ``F`` (kept on ``mapped``).

    ``mapped``'s body ``W`` computes the body's vjp and, on the way, the
    forward values it reads (the *residuals*: the seed-independent nodes
    that a seed-dependent node reads).  The split is ``(forward map,
    backward map, start, count)``: the forward map runs ``F``'s body
    returning its outputs (the same results as ``F``, in the same places)
    and then the residuals of each instance, results ``start ..
    start+count-1``; the backward map runs ``W`` with the residuals as one
    more per-instance input in place of those nodes, so it recomputes
    nothing of the forward.  None when ``W`` reads no forward value (a
    linear body) or the residuals are too many (past ``RESIDUAL_WIDTH``
    per instance beyond 4 per body scalar, or ``RESIDUAL_TOTAL`` in all):
    then the vjp recomputes the forward, as without a split.

    >>> import numpy as np, symgraph as sg
    >>> x, p = sg.symbols("x"), sg.symbols("p")
    >>> M = sg.Function("f", [x, p], [sg.sin(p * x)]).map(3, shared=["p"])
    >>> mapped = calldiff.reverse_function(M, (0, 1, 2), (0, 1, 2, 3)).function.direct[0]
    >>> forward, backward, start, count = residual_split(M, mapped)
    >>> [str(e) for e in forward.structure.body.outputs[1]]    # the vjp reads cos(p * x)
    ['cos(p * x)']
    >>> start, count
    (3, 3)
    """
    with calldiff._LOCK:
        split = getattr(mapped, "residual_split", None)
        if split is None:
            split = mapped.residual_split = _split(F.structure, mapped) or ()
    return split or None


def _split(s: Any, mapped: Any) -> tuple | None:
    """:func:`residual_split`, built (None: no split)."""
    from .array import symbols
    from .call import split_operands
    from .expr import building, topological
    from .hoist import _fresh, _replace
    from .map import MapStructure

    ms, W, B = mapped.structure, mapped.structure.body, s.body
    with building():
        roots = calldiff.flat_outputs(W).tolist()
        order = topological(roots)
        residuals = _residuals(order, roots, calldiff.flat_inputs(W)[calldiff.flat_inputs(B).size:].tolist())
        width = 4 * (calldiff.flat_inputs(B).size + calldiff.flat_outputs(B).size) + RESIDUAL_WIDTH
        if not residuals or len(residuals) > width or s.n * len(residuals) > RESIDUAL_TOTAL:
            return None
        y = calldiff.flat_outputs(B).tolist()
        forwarded = getattr(W, "forwarded", None)
        if forwarded:
            y = _reading_forward(y, forwarded)
        forward = Function(f"{B.name}_fwd", list(B.inputs),
                           split_operands(y, B.output_shapes) + [np.array(residuals, dtype=object)],
                           input_names=list(B.input_names), output_names=_unique(list(B.output_names) + ["r"]))
        r = symbols(_fresh(W, "residual"), len(residuals))
        replaced = _replace(roots, dict(zip(residuals, r.tolist())))
        backward = Function(f"{W.name}_bwd", list(W.inputs) + [r], split_operands(replaced, W.output_shapes),
                            input_names=_unique(list(W.input_names) + ["r"]), output_names=list(W.output_names))
    forward_map = MapStructure(forward, s.n, s.shared, s.reduce + (None,)).function(f"{forward.name}_map{s.n}")
    backward_map = MapStructure(backward, ms.n, ms.shared + (False,), ms.reduce).function(
        f"{backward.name}_map{ms.n}")
    backward_map.plain = mapped  # what _unsplit calls in its place, on the operands less the residuals
    return forward_map, backward_map, s.n_results, s.n * len(residuals)


def valued_map(F: Any, mapped: Any) -> Any:
    """The mapped vjp wrapper ``mapped`` of map ``F``, returning ``F``'s own results too (kept on ``mapped``).

    Its body is the wrapper ``W`` with the body's outputs added after
    ``W``'s (reduced as ``F`` reduces them), so its results are
    ``mapped``'s, then ``F``'s at the same positions (from
    ``n_cotangents`` on).  ``W`` computes most of the forward already
    (what its vjp reads, an inner map's forward call included), so the
    values cost little more; :func:`symgraph.ad.value_and_grad` reads them
    from here instead of calling ``F``.  ``plain_vjp`` is ``mapped``.

    >>> import numpy as np, symgraph as sg
    >>> x, p = sg.symbols("x"), sg.symbols("p")
    >>> M = sg.Function("f", [x, p], [sg.sin(p * x)]).map(3, shared=["p"], reduce="sum")
    >>> mapped = calldiff.reverse_function(M, (0,), (3,)).function.direct[0]
    >>> both = valued_map(M, mapped)
    >>> both.output_names, both.n_cotangents
    (('os', 'o0'), 1)
    """
    with calldiff._LOCK:
        both = getattr(mapped, "valued_map", None)
        if both is None:
            both = mapped.valued_map = _valued(F.structure, mapped)
    return both


def _valued(s: Any, mapped: Any) -> Any:
    """:func:`valued_map`, built."""
    from .call import split_operands
    from .expr import building
    from .map import MapStructure

    ms, W, B = mapped.structure, mapped.structure.body, s.body
    with building():
        y = calldiff.flat_outputs(B).tolist()
        forwarded = getattr(W, "forwarded", None)
        if forwarded:
            y = _reading_forward(y, forwarded)
        values = Function(f"{W.name}_valued", list(W.inputs), list(W.outputs) + split_operands(y, B.output_shapes),
                          input_names=list(W.input_names),
                          output_names=_unique(list(W.output_names) + list(B.output_names)))
    both = MapStructure(values, ms.n, ms.shared, ms.reduce + s.reduce).function(f"{values.name}_map{ms.n}")
    both.n_cotangents, both.plain_vjp = ms.n_results, mapped
    return both


def _residuals(order: list, roots: list, seeds: list) -> list:
    """The seed-independent non-leaf values (no call nodes) that a seed-dependent node or a root reads.

    ``order`` is a topological order of ``roots``; a node depends on the
    seeds when one of its operands does.  In topological order.
    """
    from .expr import CALL

    tainted = set(seeds)
    wanted: set = set()
    for node in order:
        args = node.args
        if args and any(a in tainted for a in args):
            tainted.add(node)
            wanted.update(a for a in args if a not in tainted and a.args and a.op is not CALL)
    wanted.update(r for r in roots if r not in tainted and r.args and r.op is not CALL)
    return [node for node in order if node in wanted]


def _unique(names: list[str]) -> list[str]:
    """``names`` with repeats suffixed (a body input may be called ``se``)."""
    seen: dict = {}
    out = []
    for nm in names:
        k = seen.get(nm, 0)
        seen[nm] = k + 1
        out.append(nm if not k else f"{nm}_{k}")
    return out


def _slots(body_positions: list, flags: list) -> tuple[np.ndarray, int, int]:
    """Per body position: its column in its group (per-instance where the flag is False, else shared)."""
    slot = np.full(max(body_positions, default=-1) + 1, -1, dtype=np.int64)
    counts = [0, 0]
    for b, f in zip(body_positions, flags):
        slot[b] = counts[bool(f)]
        counts[bool(f)] += 1
    return slot, counts[0], counts[1]


def _group_of(slot: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``slot[pos]``, -1 where ``pos`` is past the table."""
    if not len(slot):
        return np.full(len(pos), -1, dtype=np.int64)
    return np.where(pos < len(slot), slot[np.minimum(pos, len(slot) - 1)], -1)


def _seed_tables(n: int, seed_body: list, seed_shared: list, pos: np.ndarray, inst: np.ndarray) -> list:
    """Per seed group of the mapped wrapper's call, per scalar of it the index of its seed (-1: a 0).

    The per-instance group is ``(n, k)``, the shared one ``(m,)``; each
    present only if not empty.

    >>> [t.tolist() for t in _seed_tables(2, [0, 1], [False, True], np.array([0, 0, 1]), np.array([0, 1, -1]))]
    [[[0], [1]], [2]]
    """
    slot, n_each, n_once = _slots(seed_body, seed_shared)
    each = np.full((n, n_each), -1, dtype=np.int64)
    once = np.full(n_once, -1, dtype=np.int64)
    g = _group_of(slot, pos)
    for q in np.flatnonzero(g >= 0).tolist():
        if inst[q] < 0:
            once[g[q]] = q
        else:
            each[inst[q], g[q]] = q
    return [table for table in (each, once) if table.size]


def _seed_values(tables: list, seeds: np.ndarray) -> list:
    """The seed arrays of the mapped wrapper's call: the seed symbols where given, else the constant 0."""
    groups = []
    for table in tables:
        values = np.full(table.shape, _ZERO, dtype=object)
        values[table >= 0] = seeds[table[table >= 0]]
        groups.append(values)
    return groups


def _pick(n: int, out_body: list, out_group: list, pos: np.ndarray, inst: np.ndarray,
          n_results: int) -> np.ndarray:
    """Per wanted flat position, the mapped wrapper's result that holds it (-1: none, the value is 0).

    Its results are one per-instance group ``(n, k_g)`` (flat, instance-major)
    per body input (or output) ``g`` with per-instance derivatives, in the
    order of ``g``, then the summed one.  So the derivative of one mapped
    input over all instances is one run of results, as the caller's
    operand is: a caller gathering it copies one block (or passes it on by
    pointer), not ``n`` short pieces.

    >>> _pick(2, [0, 1, 2], [0, 1, -1], np.array([0, 1, 2, 0, 1]), np.array([0, 0, -1, 1, 1]), 5).tolist()
    [0, 2, 4, 1, 3]
    """
    group = np.asarray(out_group, dtype=np.int64)
    body = np.asarray(out_body, dtype=np.int64)
    size = max(out_body, default=-1) + 1
    slot, base, width = (np.full(size, -1, dtype=np.int64) for _ in range(3))
    start = 0
    for g in sorted(set(group.tolist()) - {-1}) + [-1]:
        members = body[group == g]
        slot[members] = np.arange(len(members), dtype=np.int64)
        base[members] = start
        width[members] = len(members) if g >= 0 else 0
        start += n * len(members) if g >= 0 else len(members)
    assert start == n_results
    if not size:
        return np.full(len(pos), -1, dtype=np.int64)
    known = (pos >= 0) & (pos < size)
    at = np.where(known, pos, 0)
    where = base[at] + np.maximum(inst, 0) * width[at] + slot[at]
    where[~known | (slot[at] < 0)] = -1
    return where


def _flat_pattern(mapped: Any, in_index: np.ndarray, picked: np.ndarray, n_inputs: int) -> Any:
    """The Jacobian pattern of a flat derivative Function: the mapped wrapper's, rows picked, columns placed.

    ``in_index[c]`` is the flat input of the derivative Function that the
    mapped wrapper's operand ``c`` is (-1 for a constant); ``picked[q]`` the
    wrapper result that output ``q`` is (-1: the constant 0).  Read straight
    from the wrapper body's (small) pattern, for the picked rows only: a
    stacked row of instance ``i`` reads the body row's columns in instance
    ``i`` (a shared column once), a summed row reads a mapped column in
    every instance and a shared one once.  No tiled pattern of all rows, no
    per-scalar dependency sets (whose bit masks would span from an
    instance's columns to the shared ones at the end), no ``np.unique``:
    ``in_index`` is one-to-one where it is not -1, so no two entries
    coincide and the positions are only put in CSC order.

    >>> import numpy as np, symgraph as sg
    >>> x, p = sg.symbols("x"), sg.symbols("p")
    >>> M = sg.Function("f", [x, p], [p * x * x]).map(3, shared=["p"], reduce="sum")
    >>> D = calldiff.reverse_function(M, (0,), (0, 1, 2, 3)).function
    >>> D.known_pattern.matrix.toarray().tolist()    # xbar_i reads x_i, p, ybar; pbar reads every x and ybar
    [[1, 0, 0, 1, 1], [0, 1, 0, 1, 1], [0, 0, 1, 1, 1], [1, 1, 1, 0, 1]]
    """
    from .map import csc_pattern

    s = mapped.structure
    P = calldiff.jacobian_pattern(s.body).matrix.tocsr()
    valid = np.flatnonzero(picked >= 0)
    body_row, inst = s.outs.decode(picked[valid])
    starts = P.indptr[body_row].astype(np.int64)
    counts = P.indptr[body_row + 1].astype(np.int64) - starts
    # every (picked output, body column) entry, output by output
    out = np.repeat(valid, counts)
    inst = np.repeat(inst, counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    body_col = P.indices[np.repeat(starts, counts) + np.arange(int(counts.sum()), dtype=np.int64) - first]
    body_col = body_col.astype(np.int64)
    mapped_col = s.ins.per_instance[s.ins.group[body_col]]
    every = (inst < 0) & mapped_col  # a summed row reading a mapped column: all instances
    once = ~every
    rows = [out[once], np.repeat(out[every], s.n)]
    cols = [s.ins.encode(body_col[once], np.maximum(inst[once], 0)),
            s.ins.encode(np.repeat(body_col[every], s.n), np.tile(np.arange(s.n, dtype=np.int64), int(every.sum())))]
    rows, cols = np.concatenate(rows), in_index[np.concatenate(cols)]
    keep = cols >= 0
    return csc_pattern(rows[keep], cols[keep], (len(picked), n_inputs))
