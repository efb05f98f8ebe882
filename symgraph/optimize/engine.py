"""The rewrite engine: apply a list of rules to a whole DAG, to a fixed point.

One *pass* walks the graph in topological order (operands first), rebuilds
each node from its rewritten operands through ``sg.apply`` (so construction
folding, identities and hash-consing apply), then tries the rules at that
node until none fires.  The old-to-new map keeps sharing: a node used by many
users is rewritten once.  Passes repeat until the outputs stop changing;
nodes found in normal form are remembered (new nodes too, once no rule
fires at them and their operands are normal), so later passes only look at
what changed.  Nothing recurses over the graph.

Rules are dispatched by the opcodes of the node and of its operands, so a
node only tries the few rules whose pattern can match it.  Call and result
nodes (symgraph/call.py) are opaque: no rule is tried at them, they are only
rebuilt on their rewritten operands, and callees are not optimized here.

>>> import symgraph as sg
>>> from symgraph.optimize.rules import select
>>> x = sg.symbols("x")
>>> (out,), counts, passes = rewrite([sg.log(1 + x * x) + sg.log(1 + x * x)], select())
>>> str(out), dict(counts)
('2 * log1p(x**2)', {'mul-self': 1, 'log1p': 1, 'add-self': 1})
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Iterable, Sequence

from ..call import rebuild
from ..ops import OPS
from ..expr import CONST, RESULT, Expr, _binary, _unary, apply, building, const, topological
from .analysis import Context
from .pattern import OP, alternatives, compile_matcher, match_class, matcher_code
from .rules import Rule

MAX_PASSES = 64
MAX_FIRINGS_PER_NODE = 32


class Dispatch:
    """Candidate rules per (opcode, operand opcodes), built lazily from the rule list.

    Each rule's pattern is expanded into its commutative variants and each
    variant compiled to a matcher; a node only tries the variants whose
    root and operand heads fit it.  :meth:`tryer` compiles the candidates
    of one such shape into a single function.
    """

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = list(rules)
        self.by_op: dict[int, list[tuple[Rule, list]]] = {}
        for r in self.rules:
            if r.pattern.head is None or r.pattern.kind != OP:
                raise ValueError(f"rule {r.name}: the pattern root must be an op, got {r.pattern}")
            variants = [(tuple(p.head for p in alt.args), compile_matcher(alt), alt) for alt in alternatives(r.pattern)]
            self.by_op.setdefault(r.pattern.head, []).append((r, variants))
        self.cache: dict[tuple, list[tuple[Rule, tuple]]] = {}
        self.patterns: dict[tuple, list[tuple[Rule, tuple]]] = {}
        self.tryers: dict[tuple, Callable | None] = {}
        self.by_shape: dict[int | tuple, Callable | None] = {}  # the engine's: tryers by a packed int key

    def candidates(self, node: Expr) -> list[tuple[Rule, tuple]]:
        """``(rule, matchers)`` pairs whose variants' operand heads fit ``node``, in rule order."""
        args = node.args
        key = (node.op.code,) + tuple([a.op.code for a in args])
        found = self.cache.get(key)
        if found is None:
            found, pats = [], []
            for r, variants in self.by_op.get(key[0], ()):
                fits = [(fn, alt) for heads, fn, alt in variants
                        if all(h is None or h == k for h, k in zip(heads, key[1:]))]
                if fits:
                    found.append((r, tuple(fn for fn, _ in fits)))
                    pats.append((r, tuple(alt for _, alt in fits)))
            self.cache[key] = found
            self.patterns[key] = pats
        return found

    def tryer(self, node: Expr) -> Callable | None:
        """``fn(node, ctx) -> (rule name, replacement) | None`` for nodes of ``node``'s shape; None: no candidate.

        The first candidate rule that fires, as :func:`apply_rules` tries
        them: a rule applies with the first of its variants that matches,
        then its guard must hold and its replacement must be a different
        node.  Generated code: the candidates' matchers inlined in rule order
        (the tests of heads the shape fixes left out), so a node costs one call.

        >>> import symgraph as sg
        >>> from symgraph.optimize.analysis import Context
        >>> from symgraph.optimize.rules import select
        >>> x = sg.symbols("x")
        >>> fn, ctx = dispatch_for(select()).tryer(x * x), Context([x])
        >>> ctx.current = x * x
        >>> fn(x * x, ctx)
        ('mul-self', Expr(x**2))
        >>> dispatch_for(select()).tryer(sg.sin(x)) is None
        True
        """
        args = node.args
        key = (node.op.code,) + tuple([a.op.code for a in args])
        if key in self.tryers:
            return self.tryers[key]
        self.candidates(node)
        fn = self.tryers[key] = _compile_tryer(self.patterns[key], key) if self.cache[key] else None
        return fn


def _compile_tryer(cands: list, key: tuple) -> Callable:
    """The generated function of :meth:`Dispatch.tryer` for the candidates ``cands`` of shape ``key``."""
    env: dict[str, Any] = {"CONST": CONST, "Expr": Expr, "const": const}
    root_args = [f"a{i}" for i in range(len(key) - 1)]
    lines = ["def tryer(node, ctx):"]
    if root_args:
        lines.append(f"    {', '.join(root_args)}, = node.args")
    for i, (r, alts) in enumerate(cands):
        env[f"name{i}"], env[f"replace{i}"] = r.name, r.replace
        block: list[str] = []  # the variants, each in a loop left at its first failed test
        for j, alt in enumerate(alts):
            body, binds = matcher_code(alt, "break", env, prefix=f"r{i}v{j}n", heads_known=True, root_args=root_args)
            env[f"Match{i}_{j}"] = match_class([k for k, _ in binds])
            made = [f"m = Match{i}_{j}()"] + [f"m[{k!r}] = {v}" for k, v in binds] + ["m.ctx = ctx"]
            pad = "        " if j else "    "
            if j:
                block.append("    if m is None:")
            if not any(line.endswith(": break") for line in body):  # this variant always matches
                block += [pad + line for line in body + made]
                break  # the later variants are never tried
            block += [pad + "while True:"] + [pad + "    " + line for line in body + made + ["break"]]
        else:
            block.insert(0, "    m = None")
        pad = "    "
        if block[0] != "    m = None":  # the first variant always matches
            lines += block
        else:
            lines += block + ["    if m is not None:"]
            pad = "        "
        if r.guard is not None:
            env[f"guard{i}"] = r.guard
            lines.append(pad + f"if guard{i}(m):")
            pad += "    "
        lines += [pad + f"out = replace{i}(m)",
                  pad + "if out is not None:",
                  pad + "    if type(out) is not Expr:",
                  pad + "        out = const(out)",
                  pad + "    if out is not node:",
                  pad + f"        return name{i}, out"]
    lines.append("    return None")
    src = "\n".join(lines) + "\n"
    exec(compile(src, f"<rules at {key}>", "exec"), env)
    return env["tryer"]


def apply_rules(node: Expr, dispatch: Dispatch, ctx: Context, counts: Counter) -> Expr:
    """Rewrite at ``node`` (its operands are taken as already rewritten) until no rule fires.

    A rule applies with the first of its variants that matches; then its
    guard must hold and its replacement must be a different node.

    >>> import symgraph as sg
    >>> from symgraph.optimize.rules import select
    >>> x, y = sg.symbols("x"), sg.symbols("y")
    >>> counts = Counter()
    >>> apply_rules(-x * -y, dispatch_for(select()), Context([x, y]), counts), dict(counts)
    (Expr(x * y), {'mul-neg-neg': 1})
    """
    return _apply(node, dispatch, ctx, counts)[0]


def _apply(node: Expr, dispatch: Dispatch, ctx: Context, counts: Counter,
           tryer: Callable | None = None, limit: int = MAX_FIRINGS_PER_NODE) -> tuple[Expr, bool]:
    """:func:`apply_rules`, and whether no rule fires at the node returned (False: stopped at the limit).

    ``tryer``: the :meth:`Dispatch.tryer` of ``node`` if the caller has it; ``limit``: firings allowed.
    """
    tryers = dispatch.tryers
    for _ in range(limit):
        args = node.args
        if not args:
            return node, True
        if tryer is None:
            if len(args) == 2:
                key = (node.op.code, args[0].op.code, args[1].op.code)
            elif len(args) == 1:
                key = (node.op.code, args[0].op.code)
            else:
                key = (node.op.code,) + tuple([a.op.code for a in args])
            tryer = tryers.get(key, _MISSING)
            if tryer is _MISSING:
                tryer = dispatch.tryer(node)
            if tryer is None:
                return node, True
        ctx.current = node
        fired = tryer(node, ctx)
        if fired is None:
            return node, True
        counts[fired[0]] += 1
        node = fired[1]
        tryer = None
    return node, False


_MISSING = object()
_EMIT = object()  # walk stack marker: the node below it has its operands rewritten
_PENDING = object()  # the value in a pass's map of a node expanded and not yet rewritten
_ONE = (1 << 10) - 1  # the third opcode field of a one-operand node's packed shape: no opcode
assert max(op.code for op in OPS.values()) < _ONE and CONST.code < _ONE  # opcodes fit 10 bits
_DISPATCH: dict[tuple, Dispatch] = {}


def dispatch_for(rules: Sequence[Rule]) -> Dispatch:
    """The (cached) :class:`Dispatch` of a rule list: patterns are compiled once per list.

    >>> from symgraph.optimize.rules import select
    >>> dispatch_for(select()) is dispatch_for(select())
    True
    """
    key = tuple(id(r) for r in rules)
    found = _DISPATCH.get(key)
    if found is None or [id(r) for r in found.rules] != list(key):
        if len(_DISPATCH) > 32:
            _DISPATCH.clear()
        found = _DISPATCH[key] = Dispatch(rules)
    return found


def rewrite(roots: Sequence[Expr], rules: Sequence[Rule], symbol_order: Iterable[Expr] = (),
            max_passes: int = MAX_PASSES, closed: bool = False) -> tuple[list[Expr], Counter, int]:
    """Rewrite the DAG under ``roots`` with ``rules`` to a fixed point.

    Returns the new roots (same order), the number of times each rule fired,
    and the number of passes run.  ``symbol_order`` fixes the order key of
    symbols (e.g. a Function's inputs; others are numbered as first met), so
    operand sorting is deterministic; ``closed``: every symbol under
    ``roots`` is in ``symbol_order`` (as a Function's inputs are).

    >>> import symgraph as sg
    >>> from symgraph.optimize.rules import select
    >>> x, y = sg.symbols("x"), sg.symbols("y")
    >>> (out,), counts, passes = rewrite([(-y) * x + x * x], select(), [x, y], closed=True)
    >>> str(out), sorted(counts.items()), passes
    ('x**2 - x * y', [('add-neg', 1), ('mul-neg', 1), ('mul-self', 1), ('sort-mul', 2)], 2)
    """
    roots = list(roots)
    dispatch = dispatch_for(rules)
    ctx = Context(symbol_order)
    whole_graph = any(r.needs_uses for r in dispatch.rules)
    fast = dispatch.by_shape
    fast_get = fast.get
    counts: Counter = Counter()
    normal: set[Expr] = set()
    # Nodes at which every rule was tried and none fired, though an operand is not known normal yet
    # (a replacement's new inner node): while their operands stay the same nodes, no rule fires there
    # (rules read only the nodes under them and memoized keys), so a later pass skips trying them.
    # Use counts change between passes: with rules that read them, every node is tried every pass.
    inert: set[Expr] = set()
    passes = 0
    keys, key_of = ctx.keys, ctx.key
    eager = None  # key every node as it is made: its users' guards then find their operands' keys

    def quiet(o: Expr) -> bool:
        # True (and o recorded normal) if o, an operand of a rule's replacement, is in normal form: its
        # operands are, and no rule fires at it.  Only asked where keys do not depend on when they are
        # computed (eager), of replacements not known inert (a result's operands are results, known): o is
        # then what the next pass would find, a node that no rule changes, so it need not walk o or the
        # result above it.  Nothing is rewritten here (a replacement's new inner node where a rule does
        # fire waits for the next pass, as before).
        if not o.args or o in normal:
            return True
        if o.data is not None:
            return False
        for a in o.args:
            if a.args and a not in normal:
                return False
        tryer = dispatch.tryer(o)
        if tryer is not None:
            ctx.node = ctx.current = o
            if tryer(o, ctx) is not None:
                return False
        normal.add(o)
        return True

    with building():
        while passes < max_passes:
            passes += 1
            starts = roots  # the walk below starts from these, operands first (as pending() orders them)
            if whole_graph:
                starts = topological(roots)
                ctx.count_uses(starts)
            if eager is None:  # only where every symbol has its number already: keys do not depend on when
                if closed:  # they are computed then (a symbol's number would)
                    eager = True
                else:
                    if not whole_graph:
                        starts = pending(roots, normal)
                    eager = ctx.numbers_symbols(starts)
            new: dict[Expr, Expr] = {}
            new_get = new.get
            later = passes > 1  # inert is empty before the second pass
            # pending()'s walk, each node rewritten as it is emitted: depth-first, operands left to right,
            # a node in new once expanded (_PENDING until rewritten), normal nodes not descended into
            for start in starts:
                if start in new:
                    continue
                stack = [start]
                push, pop = stack.append, stack.pop
                while stack:
                    node = pop()
                    if node is not _EMIT:
                        while node not in new:  # expand node, then its first operand, and so on
                            args = node.args
                            if not args or node in normal:
                                new[node] = node
                                break
                            new[node] = _PENDING
                            push(node)
                            push(_EMIT)
                            if len(args) == 2:
                                if args[1] not in new:
                                    push(args[1])
                            else:
                                for a in args[:0:-1]:
                                    if a not in new:
                                        push(a)
                            node = args[0]
                        continue
                    node = pop()
                    args = node.args
                    if not args or node in normal:
                        new[node] = node
                        continue
                    if node.data is not None:  # a call or result: opaque, rebuilt on its rewritten operands
                        new[node] = opaque(node, new_get, normal)
                        continue
                    if len(args) == 2:  # the common case, unrolled
                        a0, a1 = args
                        b0, b1 = new[a0], new[a1]  # every operand comes first in the walk (normal ones as leaves)
                        rebuilt = node if (b0 is a0 and b1 is a1) else _binary(node.op, b0, b1)
                    elif len(args) == 1:
                        a0 = args[0]
                        b0 = new[a0]
                        rebuilt = node if b0 is a0 else _unary(node.op, b0)
                    else:
                        nargs = [new_get(a, a) for a in args]
                        changed = any(a is not b for a, b in zip(args, nargs))
                        rebuilt = apply(node.op, *nargs) if changed else node
                    rargs = rebuilt.args
                    settled = True  # no rule fires at result
                    if not rargs or (rebuilt is node and later and node in inert):
                        result = rebuilt
                    else:
                        if len(rargs) == 2:
                            shape = rebuilt.op.code << 20 | rargs[0].op.code << 10 | rargs[1].op.code
                        elif len(rargs) == 1:
                            shape = rebuilt.op.code << 20 | rargs[0].op.code << 10 | _ONE
                        else:
                            shape = (rebuilt.op.code,) + tuple([a.op.code for a in rargs])
                        tryer = fast_get(shape, _MISSING)
                        if tryer is _MISSING:
                            tryer = fast[shape] = dispatch.tryer(rebuilt)
                        if tryer is None:  # no rule can match this shape
                            result = rebuilt
                        else:  # the first try inlined: at most nodes no rule fires
                            ctx.node = node
                            ctx.current = rebuilt
                            fired = tryer(rebuilt, ctx)
                            if fired is None:
                                result = rebuilt
                            else:  # _apply's loop, inlined: rules at each replacement until none fires
                                counts[fired[0]] += 1
                                result = fired[1]
                                settled = False
                                for _ in range(MAX_FIRINGS_PER_NODE - 1):
                                    rargs = result.args
                                    if len(rargs) == 2:
                                        shape = result.op.code << 20 | rargs[0].op.code << 10 | rargs[1].op.code
                                    elif len(rargs) == 1:
                                        shape = result.op.code << 20 | rargs[0].op.code << 10 | _ONE
                                    elif not rargs:
                                        settled = True
                                        break
                                    else:
                                        shape = (result.op.code,) + tuple([a.op.code for a in rargs])
                                    tryer = fast_get(shape, _MISSING)
                                    if tryer is _MISSING:
                                        tryer = fast[shape] = dispatch.tryer(result)
                                    if tryer is None:
                                        settled = True
                                        break
                                    ctx.current = result
                                    fired = tryer(result, ctx)
                                    if fired is None:
                                        settled = True
                                        break
                                    counts[fired[0]] += 1
                                    result = fired[1]
                    if result is node:
                        normal.add(node)
                    elif settled and not whole_graph:
                        rargs = result.args
                        if len(rargs) == 2:  # the common case, unrolled
                            a0, a1 = rargs
                            if (not a0.args or a0 in normal) and (not a1.args or a1 in normal):
                                normal.add(result)
                            elif (eager and result is not rebuilt and a0 not in inert and a1 not in inert
                                  and quiet(a0) and quiet(a1)):
                                normal.add(result)
                            else:
                                inert.add(result)
                        elif len(rargs) == 1:
                            a0 = rargs[0]
                            if not a0.args or a0 in normal or (eager and result is not rebuilt and a0 not in inert
                                                               and quiet(a0)):
                                normal.add(result)
                            else:
                                inert.add(result)
                        elif all(not a.args or a in normal for a in rargs):
                            normal.add(result)  # a new node in normal form: later passes need not walk it
                        else:
                            inert.add(result)
                    new[node] = result
                    if eager:  # a key already there is the one computed again here (keys are structural)
                        rargs = result.args
                        if result.data is None:  # Context.key's fast paths, inlined
                            if len(rargs) == 2:
                                k0, k1 = keys.get(rargs[0]), keys.get(rargs[1])
                                if k0 is not None and k1 is not None:
                                    keys[result] = hash((result.op.code, k0, k1))
                                    continue
                            elif len(rargs) == 1:
                                a0 = rargs[0]
                                k0 = keys.get(a0)
                                if k0 is None and a0.data is None and len(a0.args) == 2:  # a new inner node: -(x * y)
                                    k00, k01 = keys.get(a0.args[0]), keys.get(a0.args[1])
                                    if k00 is not None and k01 is not None:
                                        k0 = keys[a0] = hash((a0.op.code, k00, k01))
                                if k0 is not None:
                                    keys[result] = hash((result.op.code, k0))
                                    continue
                        key_of(result)
            new_roots = [new.get(r, r) for r in roots]
            if all(a is b for a, b in zip(new_roots, roots)):
                break
            roots = new_roots
            if not whole_graph and all(not r.args or r in normal for r in roots):
                break  # every new root is in normal form: another pass would change nothing
    return roots, counts, passes


def opaque(node: Expr, new_get, normal: set) -> Expr:
    """Call or result ``node`` rebuilt on its rewritten operands (``new_get(a, a)``); no rule is tried.

    Such a node is normal (recorded in ``normal``) when its operands are: a
    later pass finds it unchanged without walking it or the call's operands.

    >>> import symgraph as sg
    >>> x, y = sg.symbols("x"), sg.symbols("y")
    >>> F = sg.Function("f", [x], [sg.sin(x)])
    >>> call, normal = F(x).args[0], set()
    >>> opaque(call, {x: y}.get, normal) is F(y).args[0], F(y).args[0] in normal
    (True, True)
    >>> opaque(call, {}.get, normal) is call, call in normal
    (True, True)
    """
    args = node.args
    if node.op is RESULT:  # the common case: one operand, its call
        call = args[0]
        new_call = new_get(call, call)
        if new_call is call:
            normal.add(node)
            return node
        result = rebuild(node, (new_call,))
        if new_call in normal:
            normal.add(result)
        return result
    nargs = [new_get(a, a) for a in args]
    if all(a is b for a, b in zip(args, nargs)):
        normal.add(node)
        return node
    result = rebuild(node, nargs)
    if all(not a.args or a in normal for a in nargs):
        normal.add(result)
    return result


def pending(roots: Sequence[Expr], normal: set) -> list[Expr]:
    """Nodes under ``roots`` in topological order, not descending into nodes of ``normal``.

    A normal node's operands are normal too, so a later pass only walks
    what changed.  Iterative, like :func:`symgraph.expr.topological`.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> e = sg.sin(x) + 1
    >>> [str(n) for n in pending([e], {sg.sin(x)})]
    ['1', 'sin(x)', '1 + sin(x)']
    """
    return topological(roots, leaves=normal if normal else None)
