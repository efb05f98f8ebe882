"""Derivative Functions of structured Functions: a map's are maps of its body's.

:mod:`symgraph.calldiff` asks every callee for flat derivative Functions,
``F_jvp(x, tx) -> ty`` and ``F_vjp(x, ybar) -> xbar`` specialized to
result positions ``rows`` and operand positions ``cols``.  For a map ``M``
of body ``F`` they are built without unrolling:

1. the positions are decoded to the body's scalars (which body operands
   carry a seed in some instance, which body results are wanted);
2. the body's own derivative Function ``D`` for those sets is fetched
   (cached on ``F`` by calldiff);
3. a small *wrapper* ``W`` takes the body's inputs one by one plus the seeds
   in two groups, per-instance and shared, calls ``D`` once and returns its
   outputs in two groups, per-instance and summed;
4. the map of ``W`` over the same instances does the work: forward, the
   tangents of shared inputs are shared and those of summed outputs summed;
   reverse, the cotangents of summed outputs are shared and those of shared
   inputs summed over instances (the adjoint of a broadcast is a sum);
5. the flat derivative Function places its seed symbols (or 0) into the
   groups, calls that map once and picks the wanted positions out.

So a derivative of a map is again one map call, and its own derivatives
(second order) come the same way.

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

from .expr import const

_ZERO = const(0.0)


def map_derivative(F: Any, s: Any, mode: str, rows: tuple, cols: tuple) -> Any:
    """The flat ``F_jvp`` (mode ``"jvp"``) or ``F_vjp`` (``"vjp"``) of map ``F`` with structure ``s``."""
    from . import calldiff
    from .array import symbols
    from .call import call_function
    from .function import Function

    body_rows_of, inst_rows = s.outs.decode(np.asarray(rows, dtype=np.int64))
    body_cols_of, inst_cols = s.ins.decode(np.asarray(cols, dtype=np.int64))
    col_rows = calldiff.column_rows(s.body)
    if mode == "jvp":
        bcols = sorted(set(body_cols_of.tolist()))
        reached = set().union(*(col_rows[c] for c in bcols)) if bcols else set()
        brows = sorted(set(body_rows_of.tolist()) & reached)
        D = calldiff.forward_function(s.body, tuple(brows), tuple(bcols))
        seed_pos, seed_inst, seed_layout, seed_body = body_cols_of, inst_cols, s.ins, bcols
        out_pos, out_inst, out_layout, out_body = body_rows_of, inst_rows, s.outs, brows
    else:
        brows = sorted(set(body_rows_of.tolist()))
        live = set(brows)
        bcols = sorted(c for c in set(body_cols_of.tolist()) if not live.isdisjoint(col_rows[c]))
        D = calldiff.reverse_function(s.body, tuple(brows), tuple(bcols))
        seed_pos, seed_inst, seed_layout, seed_body = body_rows_of, inst_rows, s.outs, brows
        out_pos, out_inst, out_layout, out_body = body_cols_of, inst_cols, s.ins, bcols
    seed_shared = [not seed_layout.per_instance[seed_layout.group[b]] for b in seed_body]
    out_summed = [not out_layout.per_instance[out_layout.group[b]] for b in out_body]
    key = ("mapped", mode, D.rows, D.cols)
    mapped = calldiff._cached(F, key, lambda: _mapped_wrapper(F, s, D.function, seed_shared, out_summed))

    x = symbols("x", s.n_operands)
    seeds = symbols("tx" if mode == "jvp" else "ybar", len(cols if mode == "jvp" else rows))
    args = [x[off:off + size].reshape(shape) for off, size, shape in
            zip(s.ins.offsets.tolist(), _sizes(s.input_shapes()), s.input_shapes())]
    groups = _seed_groups(s.n, seed_body, seed_shared, seed_pos, seed_inst, seeds)
    outs = call_function(mapped, args + groups)
    outs = list(outs) if isinstance(outs, tuple) else [outs]
    picked = _pick(s.n, out_body, out_summed, out_pos, out_inst, outs)
    names = ("tx", "ty") if mode == "jvp" else ("ybar", "xbar")
    return Function(f"{F.name}_{mode}", [x, seeds], [picked], input_names=["x", names[0]],
                    output_names=[names[1]])


def _sizes(shapes: list) -> list[int]:
    return [int(np.prod(sh, dtype=np.int64)) for sh in shapes]


def _mapped_wrapper(F: Any, s: Any, D: Any, seed_shared: list, out_summed: list) -> Any:
    """The map, over ``s``'s instances, of a wrapper calling the body's derivative Function ``D``.

    The wrapper's inputs: the body's inputs, then the per-instance seeds and
    the shared seeds (each group only if not empty); its outputs: ``D``'s
    outputs split into per-instance and summed (each only if not empty).
    """
    from .array import symbols
    from .call import call_function
    from .function import Function
    from .map import MapStructure

    body = s.body
    xs = [symbols(name, tuple(shape)) for name, shape in zip(body.input_names, body.input_shapes)]
    flat_x = np.concatenate([np.asarray(a, dtype=object).reshape(-1) for a in xs]) if xs else np.empty(0, object)
    n_each = len(seed_shared) - sum(seed_shared)
    each, once = symbols("se", n_each), symbols("ss", len(seed_shared) - n_each)
    seeds = np.empty(len(seed_shared), dtype=object)
    seeds[[not f for f in seed_shared]] = each
    seeds[list(map(bool, seed_shared))] = once
    result = np.asarray(call_function(D, [flat_x, seeds]), dtype=object).reshape(-1)
    summed = np.asarray(out_summed, dtype=bool)
    inputs, names, shared = list(xs), list(body.input_names), list(s.shared)
    for group, name, flag in ((each, "se", False), (once, "ss", True)):
        if group.size:
            inputs.append(group)
            names.append(name)
            shared.append(flag)
    outputs, out_names, reduce = [], [], []
    for part, name, how in ((result[~summed], "oe", None), (result[summed], "os", "sum")):
        if part.size:
            outputs.append(part)
            out_names.append(name)
            reduce.append(how)
    W = Function(f"{D.name}_w", inputs, outputs, input_names=_unique(names), output_names=out_names)
    return MapStructure(W, s.n, tuple(shared), tuple(reduce)).function(f"{W.name}_map{s.n}")


def _unique(names: list[str]) -> list[str]:
    """``names`` with repeats suffixed (a body input may be called ``se``)."""
    seen: dict = {}
    out = []
    for nm in names:
        k = seen.get(nm, 0)
        seen[nm] = k + 1
        out.append(nm if not k else f"{nm}_{k}")
    return out


def _seed_groups(n: int, seed_body: list, seed_shared: list, pos: np.ndarray, inst: np.ndarray,
                 seeds: np.ndarray) -> list:
    """The per-instance ``(n, k)`` and shared ``(m,)`` seed arrays: the seed symbols where given, else 0."""
    slot = np.full(max(seed_body, default=-1) + 1, -1, dtype=np.int64)
    slot_each, slot_once = [], []
    for q, (b, f) in enumerate(zip(seed_body, seed_shared)):
        (slot_once if f else slot_each).append(q)
    for g, q in enumerate(slot_each):
        slot[seed_body[q]] = g
    for g, q in enumerate(slot_once):
        slot[seed_body[q]] = g
    each = np.full((n, len(slot_each)), _ZERO, dtype=object)
    once = np.full(len(slot_once), _ZERO, dtype=object)
    known = pos < len(slot)
    g = np.where(known, slot[np.minimum(pos, len(slot) - 1)] if len(slot) else -1, -1)
    for q in np.flatnonzero(g >= 0).tolist():
        if inst[q] < 0:
            once[g[q]] = seeds[q]
        else:
            each[inst[q], g[q]] = seeds[q]
    groups = []
    if each.shape[1]:
        groups.append(each)
    if once.size:
        groups.append(once)
    return groups


def _pick(n: int, out_body: list, out_summed: list, pos: np.ndarray, inst: np.ndarray, outs: list) -> np.ndarray:
    """The wanted flat positions out of the map's per-instance and summed outputs (0 where none)."""
    slot = np.full(max(out_body, default=-1) + 1, -1, dtype=np.int64)
    n_each = 0
    n_once = 0
    for b, f in zip(out_body, out_summed):
        if f:
            slot[b] = n_once
            n_once += 1
        else:
            slot[b] = n_each
            n_each += 1
    k = 0
    each = once = None
    if n_each:
        each = np.asarray(outs[k], dtype=object).reshape(n, n_each)
        k += 1
    if n_once:
        once = np.asarray(outs[k], dtype=object).reshape(n_once)
    picked = np.full(len(pos), _ZERO, dtype=object)
    for q in range(len(pos)):
        b = int(pos[q])
        g = slot[b] if b < len(slot) else -1
        if g >= 0:
            picked[q] = once[g] if inst[q] < 0 else each[inst[q], g]
    return picked
