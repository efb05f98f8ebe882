"""The rewrite engine: apply a list of rules to a whole DAG, to a fixed point.

One *pass* walks the graph in topological order (operands first), rebuilds
each node from its rewritten operands through ``sg.apply`` (so construction
folding, identities and hash-consing apply), then tries the rules at that
node until none fires.  The old-to-new map keeps sharing: a node used by many
users is rewritten once.  Passes repeat until the outputs stop changing;
nodes found in normal form are remembered, so later passes only look at
what changed.  Nothing recurses over the graph.

Rules are dispatched by the opcodes of the node and of its operands, so a
node only tries the few rules whose pattern can match it.

>>> import symgraph as sg
>>> from symgraph.optimize.rules import select
>>> x = sg.symbols("x")
>>> (out,), counts, passes = rewrite([sg.log(1 + x) + sg.log(1 + x)], select())
>>> str(out), dict(counts)
('2 * log1p(x)', {'log1p': 1, 'add-self': 1})
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Sequence

from ..expr import Expr, apply, building, const, topological
from ..ops import OP_LIST
from .analysis import Context
from .pattern import Match, match_into
from .rules import Rule

MAX_PASSES = 64
MAX_FIRINGS_PER_NODE = 32


class Dispatch:
    """Candidate rules per (opcode, operand opcodes), built lazily from the rule list."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = list(rules)
        self.by_op: dict[int, list[Rule]] = {}
        for r in self.rules:
            if r.pattern.head is None:
                raise ValueError(f"rule {r.name}: the pattern root must be an op, got {r.pattern}")
            self.by_op.setdefault(r.pattern.head, []).append(r)
        self.cache: dict[tuple, list[Rule]] = {}

    def candidates(self, node: Expr) -> list[Rule]:
        """The rules whose pattern root and operand heads fit ``node``."""
        key = (node.op.code,) + tuple(a.op.code for a in node.args)
        found = self.cache.get(key)
        if found is None:
            found = self.cache[key] = [r for r in self.by_op.get(key[0], ()) if _fits(r, key)]
        return found


def _fits(r: Rule, key: tuple) -> bool:
    heads = [p.head for p in r.pattern.args]
    ok = all(h is None or h == k for h, k in zip(heads, key[1:]))
    if not ok and len(heads) == 2 and OP_LIST[key[0]].has("commutative"):
        ok = all(h is None or h == k for h, k in zip(heads, reversed(key[1:])))
    return ok


def apply_rules(node: Expr, dispatch: Dispatch, ctx: Context, counts: Counter) -> Expr:
    """Rewrite at ``node`` (its operands are taken as already rewritten) until no rule fires."""
    for _ in range(MAX_FIRINGS_PER_NODE):
        if not node.args:
            return node
        ctx.current = node
        for r in dispatch.candidates(node):
            m = Match(ctx)
            if not match_into(r.pattern, node, m):
                continue
            if r.guard is not None and not r.guard(m):
                continue
            out = r.replace(m)
            if out is None:
                continue
            if type(out) is not Expr:
                out = const(out)
            if out is not node:
                counts[r.name] += 1
                node = out
                break
        else:
            return node
    return node


def rewrite(roots: Sequence[Expr], rules: Sequence[Rule], symbol_order: Iterable[Expr] = (),
            max_passes: int = MAX_PASSES) -> tuple[list[Expr], Counter, int]:
    """Rewrite the DAG under ``roots`` with ``rules`` to a fixed point.

    Returns the new roots (same order), the number of times each rule fired,
    and the number of passes run.  ``symbol_order`` fixes the order key of
    symbols (e.g. a Function's inputs), so operand sorting is deterministic.
    """
    roots = list(roots)
    dispatch = Dispatch(rules)
    ctx = Context(list(symbol_order) + [n for n in topological(roots) if n.is_symbol])
    counts: Counter = Counter()
    normal: set[Expr] = set()
    passes = 0
    with building():
        while passes < max_passes:
            passes += 1
            order = topological(roots)
            ctx.count_uses(order)
            new: dict[Expr, Expr] = {}
            for node in order:
                args = node.args
                if not args or node in normal:
                    new[node] = node
                    continue
                nargs = [new[a] for a in args]
                changed = False
                for a, b in zip(args, nargs):
                    if a is not b:
                        changed = True
                        break
                rebuilt = apply(node.op, *nargs) if changed else node
                ctx.node = node
                result = apply_rules(rebuilt, dispatch, ctx, counts) if rebuilt.args else rebuilt
                if result is node:
                    normal.add(node)
                new[node] = result
            new_roots = [new[r] for r in roots]
            if all(a is b for a, b in zip(new_roots, roots)):
                break
            roots = new_roots
    return roots, counts, passes

