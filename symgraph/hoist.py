"""Hoisting: the instance-independent work of a map's body, computed once outside the map.

A map runs its body on every instance, and a body often computes things
from the shared inputs alone: ``exp(q)`` of a parameter, a matrix built from
parameters.  Those are the same in every instance, yet the map computes
them ``n`` times (JAX's ``vmap`` computes them once, as it broadcasts).
:func:`hoist` rewrites a graph so that each map call computes them once:

1. in the body, a node is *invariant* when it depends only on the shared
   inputs and constants; the *frontier* is the invariant nodes (not
   leaves) that a non-invariant node or an output reads;
2. a small Function ``P`` of the shared inputs computes the frontier (the
   ``pre`` Function); the body ``B'`` takes it as one more shared input
   (``hoisted``) in place of those nodes;
3. the call of the map becomes a call of ``P`` on the shared operands and
   a call of ``B'.map(n)`` on the operands and ``P``'s results.

Maps nest, and the rule applies inside a body too, relative to the
enclosing map: a call of an inner map whose operands are partly invariant
(the parameters, not the point) is split the same way, its ``pre``
Function of the invariant inputs mapped over the inner instances when some
of them are mapped there (a per-component ``exp(q_c)``).  That ``pre`` call
is itself invariant in the enclosing body, so it is hoisted out of the
enclosing map with the rest.  The result is an ordinary graph of calls and
maps: its derivatives are the ordinary ones (the cotangent of the hoisted
values is summed over the instances, as for any shared input, and pulled
back through ``P``).  Bodies are rewritten one nesting level of Functions at
a time, to ``MAX_DEPTH`` levels; each graph is walked in topological order
(no recursion over a graph).

>>> import numpy as np, symgraph as sg
>>> x, q = sg.symbols("x"), sg.symbols("q", 2)
>>> F = sg.Function("f", [x, q], [sg.exp(q[0]) * x + sg.exp(q[1]) * x * x])
>>> X = sg.symbols("X", 1000)
>>> f = F.map(1000, shared=["q"], reduce="sum")(X, q)
>>> h = hoist(f)
>>> [node.data.name for node in sg.expr.topological([h]) if node.op is sg.expr.CALL]
['f_pre', 'f_h_map1000']
>>> G = sg.Function("g", [X, q], [f, h, sg.grad(h, q)])
>>> v, w, g = G(np.linspace(0, 1, 1000), np.array([0.1, -0.2]))
>>> bool(np.isclose(v, w)), np.allclose(g, [np.exp(0.1) * 500, np.exp(-0.2) * 1000 / 3 * (1 + 0.5 / 999)])
(True, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .call import split_operands
from .expr import CALL, CONST, RESULT, SYMBOL, Expr, building, intern_results, intern_structural, topological

__all__ = ["hoist", "MAX_DEPTH"]

MAX_DEPTH = 8  # nesting levels of map bodies rewritten; deeper maps are left as they are


def hoist(exprs: Any):
    """``exprs`` with every map call's instance-independent work computed once (see the module docstring).

    Accepts what :func:`~symgraph.substitute` accepts (an Expr or number, an
    array, a :class:`~symgraph.SparseExpr`, nested lists/tuples of them) and
    returns the same structure, equal in value.  A graph without a map call
    is returned node for node.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> hoist(sg.sin(x) + 1) is sg.sin(x) + 1
    True
    """
    from .substitution import _collect, _rebuild_structure

    roots: list[Expr] = []
    _collect(exprs, roots)
    with building():
        new_roots, _ = _rewrite(roots, None, 0)
    return _rebuild_structure(exprs, new_roots)


def _is_map(F: Any) -> bool:
    structure = getattr(F, "structure", None)
    return structure is not None and getattr(structure, "kind", None) == "map"


def _rewrite(roots: list[Expr], invariant_symbols: set | None, depth: int) -> tuple[list[Expr], set]:
    """``roots`` rebuilt with their map calls hoisted, and the rebuilt nodes invariant in this context.

    ``invariant_symbols``: the symbols whose values are the same in every
    instance of the enclosing map (None at the top level, where no node
    is).  A map call is first split relative to that context (its inputs
    whose operands are invariant), then relative to its own instances (its
    shared inputs).
    """
    new: dict[Expr, Expr] = {}
    invariant: set = set()
    for node in topological(roots):
        args = node.args
        if not args:
            new[node] = node
            if node.op is CONST or (invariant_symbols is not None and node in invariant_symbols):
                invariant.add(node)
            continue
        new_args = [new[a] for a in args]
        if node.op is CALL and _is_map(node.data) and depth < MAX_DEPTH and not all(a in invariant for a in new_args):
            built, extra_invariant = _hoisted_call(node.data, new_args, invariant, depth)
            new[node] = built
            invariant.update(extra_invariant)
            continue
        if all(a is b for a, b in zip(args, new_args)):
            rebuilt = node
        else:
            from .call import rebuild

            rebuilt = rebuild(node, new_args)
        new[node] = rebuilt
        if all(a in invariant for a in new_args):
            invariant.add(rebuilt)
    return [new[r] for r in roots], invariant


def _operand_groups(M: Any, args: list[Expr]) -> list[list[Expr]]:
    """The flat operands of a call of map ``M``, split per input."""
    s = M.structure
    shapes = s.input_shapes()
    out, start = [], 0
    for shape in shapes:
        size = int(np.prod(shape, dtype=np.int64))
        out.append(args[start:start + size])
        start += size
    return out


def _hoisted_call(M: Any, args: list[Expr], invariant: set, depth: int) -> tuple[Expr, list[Expr]]:
    """The call of map ``M`` on ``args``, split: ``(new call node, new invariant nodes)``."""
    groups = _operand_groups(M, args)
    extra: list[Expr] = []
    context = [bool(g) and all(a in invariant for a in g) for g in groups]
    if any(context):
        split = _split(M, context, depth)
        if split is not None:
            M, groups, pre_results = _apply(split, groups)
            extra.extend(pre_results)
    split = _split(M, list(M.structure.shared), depth)
    if split is not None:
        M, groups, _ = _apply(split, groups)
    flat = [a for g in groups for a in g]
    return intern_structural(CALL, tuple(flat), M), extra


def _apply(split: tuple, groups: list[list[Expr]]) -> tuple[Any, list[list[Expr]], list[Expr]]:
    """Call ``split``'s pre Function on its operands; the new map, its operand groups, the pre results."""
    P, which, M2 = split
    if P is None:
        return M2, groups, []
    operands = tuple(a for k in which for a in groups[k])
    call = intern_structural(CALL, operands, P)
    n_results = int(sum(np.prod(shape, dtype=np.int64) for shape in P.output_shapes))
    results = intern_results(call, 0, n_results)
    return M2, groups + [results], results


def _split(M: Any, inv: list[bool], depth: int) -> tuple | None:
    """``(P, inputs of P, M')`` hoisting what map ``M``'s body computes from the inputs flagged ``inv``.

    ``P`` is None when nothing is hoisted but the body was rewritten (an
    inner map hoisted); the whole result is None when nothing changes.
    """
    from .array import symbols
    from .calldiff import flat_outputs
    from .function import Function
    from .map import map_function

    s = M.structure
    B = s.body
    which = [k for k, flag in enumerate(inv) if flag]
    if not which:
        return None
    inv_symbols = {e for k in which for e in np.asarray(B.inputs[k], dtype=object).reshape(-1).tolist()}
    roots = flat_outputs(B).tolist()
    new_roots, invariant = _rewrite(roots, inv_symbols, depth + 1)
    frontier = _frontier(new_roots, invariant)
    changed = any(a is not b for a, b in zip(roots, new_roots))
    if not frontier and not changed:
        return None
    shared = list(s.shared)
    reduce = list(s.reduce)
    inputs, names = list(B.inputs), list(B.input_names)
    if not frontier:
        body = Function(f"{B.name}_h", inputs, split_operands(new_roots, B.output_shapes), input_names=names,
                        output_names=B.output_names)
        return None, which, map_function(body, s.n, [k for k, f in enumerate(shared) if f], reduce)
    h = symbols(_fresh(B, "hoisted"), len(frontier))
    replaced = _replace(new_roots, dict(zip(frontier, h.tolist())))
    pre = Function(f"{B.name}_pre", [B.inputs[k] for k in which], [np.array(frontier, dtype=object)],
                   input_names=[names[k] for k in which], output_names=["hoisted"])
    per_instance = any(not shared[k] for k in which)
    if per_instance:  # some invariant inputs differ between this map's instances: one pre per instance
        pre = map_function(pre, s.n, [j for j, k in enumerate(which) if shared[k]])
    body = Function(f"{B.name}_h", inputs + [h], split_operands(replaced, B.output_shapes),
                    input_names=names + [_fresh_name(names, "hoisted")], output_names=B.output_names)
    flags = shared + [not per_instance]
    return pre, which, map_function(body, s.n, [k for k, f in enumerate(flags) if f], reduce)


def _frontier(roots: list[Expr], invariant: set) -> list[Expr]:
    """The invariant non-leaf values that a non-invariant node or a root reads, in topological order."""
    wanted: set = set()
    for node in topological(roots):
        if node in invariant:
            continue
        for a in node.args:
            if a in invariant and a.args and a.op is not CALL:
                wanted.add(a)
    for r in roots:
        if r in invariant and r.args and r.op is not CALL:
            wanted.add(r)
    return [node for node in topological(roots) if node in wanted]


def _replace(roots: list[Expr], mapping: dict[Expr, Expr]) -> list[Expr]:
    """``roots`` with the nodes of ``mapping`` replaced (not looked into), one topological pass."""
    return replace_along(inner_order(roots, mapping), roots, mapping)


_EMIT = object()  # stack marker: the entry below it is complete


def inner_order(roots: list, leaves: Any = (), skip: Any = ()) -> list[Expr]:
    """The nodes with operands reachable from ``roots``, operands first: :func:`~symgraph.expr.topological`
    less the nodes without operands (symbols, constants), which are never stacked.

    Nodes in ``leaves`` (any container) are listed without visiting their
    operands.  The call nodes in ``skip`` (a set) and their results are
    neither listed nor visited: what a pass rebuilding around calls known to
    stay need not look at.  Enough for a pass that rebuilds or reads only
    nodes with operands, at a fraction of the cost where a call reads 10^5
    symbols.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> [str(n) for n in inner_order([sg.sin(x) * 2 + x])]
    ['sin(x)', '2 * sin(x)', '2 * sin(x) + x']
    >>> F = sg.Function("f", [x], [sg.sin(x)])
    >>> r = F(x)
    >>> [str(n) for n in inner_order([r * 2 + 1], skip={r.args[0]})]    # the call and its result left out
    ['2 * f(x)[0]', '1 + 2 * f(x)[0]']
    """
    order: list[Expr] = []
    emit = order.append
    expanded: set[Expr] = set()

    def skipped(a: Expr) -> bool:
        return bool(skip) and (a in skip or (a.op is RESULT and a.args[0] in skip))

    for root in roots:
        if type(root) is not Expr or not root.args or root in expanded or skipped(root):
            continue
        stack = [root]
        push, pop = stack.append, stack.pop
        while stack:
            node = pop()
            if node is _EMIT:
                emit(pop())
            elif node not in expanded:
                expanded.add(node)
                if node in leaves:
                    emit(node)
                    continue
                push(node)
                push(_EMIT)
                for a in reversed(node.args):
                    if a.args and a not in expanded and not (skip and skipped(a)):
                        push(a)
    return order


def replace_along(order: list[Expr], roots: list[Expr], mapping: dict[Expr, Expr]) -> list[Expr]:
    """``roots`` with the nodes of ``mapping`` replaced, rebuilding along ``order`` (operands first).

    ``order`` holds every node of ``roots``' graphs outside ``mapping``'s
    (a :func:`~symgraph.expr.topological` order, with or without the nodes
    below ``mapping``'s: a traversal made already serves, none is made here).

    >>> import symgraph as sg
    >>> x, y = sg.symbols("x"), sg.symbols("y")
    >>> e = sg.sin(x) + x
    >>> [str(r) for r in replace_along(topological([e]), [e], {x: y})]
    ['sin(y) + y']
    """
    from .call import rebuild

    done = dict(mapping)
    get, untouched = done.get, done.keys().isdisjoint
    for node in order:
        args = node.args
        if not args or node in mapping or untouched(args):  # nothing replaced below: checked in C
            continue
        new_args = [get(a, a) for a in args]
        if all(a is b for a, b in zip(args, new_args)):  # replaced by themselves
            continue
        op = node.op
        if op is RESULT:  # same call position, a call of the same callee: no check needed
            done[node] = intern_structural(RESULT, (new_args[0],), node.data)
        elif op is CALL:
            done[node] = intern_structural(CALL, tuple(new_args), node.data)
        else:
            done[node] = rebuild(node, new_args)
    return [get(r, r) for r in roots]


def _fresh(B: Any, stem: str) -> str:
    """A symbol name that none of ``B``'s input symbols has."""
    taken = {e.data for arr in B.inputs for e in np.asarray(arr, dtype=object).reshape(-1).tolist()
             if type(e) is Expr and e.op is SYMBOL}
    name, k = f"{B.name}_{stem}", 0
    while any(t == name or str(t).startswith(name + "[") for t in taken):
        k += 1
        name = f"{B.name}_{stem}{k}"
    return name


def _fresh_name(names: list[str], stem: str) -> str:
    name, k = stem, 0
    while name in names:
        k += 1
        name = f"{stem}{k}"
    return name
