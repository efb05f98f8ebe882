"""Patterns over ops: the left-hand sides of rewrite rules.

A pattern is a small tree of :class:`Pat` nodes: an op with sub-patterns, a
variable (``X``: any node; the same name twice must be the same node), a
constant wildcard (``C``: any constant, bound to its float value) or a
literal constant.  Python operators build patterns, so a rule reads like the
algebra it rewrites::

    X, Y, C = var("x"), var("y"), cst("c")
    -X * -Y            # mul(neg(x), neg(y))
    P.log(1 + X)       # log(add(1, x))

Operands of commutative ops match in either order.  Patterns are a few
levels deep, so matching recurses over the *pattern* (never over a graph).

>>> import symgraph as sg
>>> X, Y = var("x"), var("y")
>>> x, y = sg.symbols("x"), sg.symbols("y")
>>> m = match(-X * Y, y * -x)
>>> m["x"] is x and m["y"] is y
True
>>> match(-X * Y, x * y) is None
True
"""

from __future__ import annotations

import keyword
from functools import partial
from operator import itemgetter
from typing import Any, Sequence

from ..errors import OptimizerOptionError
from ..expr import CONST, Expr, _binary, _unary, apply, const
from ..ops import OPS, Op

OP, VAR, CST, LIT = 0, 1, 2, 3


class Pat:
    """One node of a pattern (build with :func:`var`, :func:`cst`, operators and ``P.<op>``).

    >>> str(var("x") + 1)
    'add(x, 1)'
    """

    __slots__ = ("kind", "op", "args", "name", "node")

    def __init__(self, kind: int, op: Op | None = None, args: tuple = (), name: str | None = None,
                 node: Expr | None = None) -> None:
        self.kind, self.op, self.args, self.name, self.node = kind, op, args, name, node

    # -- the operators build op patterns
    def __add__(self, o: Any) -> "Pat":
        return op_pattern("add", self, o)

    def __radd__(self, o: Any) -> "Pat":
        return op_pattern("add", o, self)

    def __sub__(self, o: Any) -> "Pat":
        return op_pattern("sub", self, o)

    def __rsub__(self, o: Any) -> "Pat":
        return op_pattern("sub", o, self)

    def __mul__(self, o: Any) -> "Pat":
        return op_pattern("mul", self, o)

    def __rmul__(self, o: Any) -> "Pat":
        return op_pattern("mul", o, self)

    def __truediv__(self, o: Any) -> "Pat":
        return op_pattern("div", self, o)

    def __rtruediv__(self, o: Any) -> "Pat":
        return op_pattern("div", o, self)

    def __neg__(self) -> "Pat":
        return op_pattern("neg", self)

    def __str__(self) -> str:
        if self.kind == OP:
            return f"{self.op.name}({', '.join(str(a) for a in self.args)})"
        if self.kind == LIT:
            return str(self.node)
        return self.name if self.kind == VAR else f"<{self.name}>"

    __repr__ = __str__

    @property
    def head(self) -> int | None:
        """Opcode a node must have to match (None for a variable)."""
        if self.kind == OP:
            return self.op.code
        return None if self.kind == VAR else CONST.code


def _pattern_name(name: Any) -> str:
    """``name`` if it is a plain Python identifier (it becomes a name in generated matcher code)."""
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise OptimizerOptionError(f"a pattern variable needs a plain Python identifier as its name, got {name!r}")
    return name


def var(name: str) -> Pat:
    """A variable matching any node (repeated names must bind the same node).

    >>> var("x").kind == VAR
    True
    """
    return Pat(VAR, name=_pattern_name(name))


def cst(name: str) -> Pat:
    """A wildcard matching any constant node; binds its float value.

    >>> import symgraph as sg
    >>> match(cst("c") * var("x"), 3 * sg.symbols("x"))["c"]
    3.0
    """
    return Pat(CST, name=_pattern_name(name))


def lit(value: float) -> Pat:
    """The literal constant ``value`` (``-0.0`` and ``0.0`` differ).

    >>> str(lit(1.0))
    '1'
    """
    return Pat(LIT, node=const(value))


def _as_pat(x: Any) -> Pat:
    return x if isinstance(x, Pat) else lit(x)


def op_pattern(name: str, *args: Any) -> Pat:
    """The pattern ``name(*args)``; numbers become literals.

    >>> str(op_pattern("log", var("x")))
    'log(x)'
    """
    op = OPS[name]
    if len(args) != op.arity:
        raise TypeError(f"pattern {name} takes {op.arity} operand(s), got {len(args)}")
    return Pat(OP, op=op, args=tuple(_as_pat(a) for a in args))


class _Builders:
    """``P.<op>(...)`` builds the op pattern of any op of the table."""

    def __getattr__(self, name: str):
        if name not in OPS:
            raise AttributeError(f"no op {name!r} in the op table")
        return lambda *args: op_pattern(name, *args)

    __getitem__ = __getattr__  # P["not"], P["and"], P["or"]


P = _Builders()


class _GraphBuilders:
    """``G.<op>(...)`` builds the graph node ``op(...)`` through ``sg.apply`` (for replacements).

    >>> import symgraph as sg
    >>> str(G.log1p(sg.symbols("x")))
    'log1p(x)'
    """

    def __init__(self) -> None:
        self._made: dict = {}

    def __getattr__(self, name: str):
        made = self.__dict__.get("_made")
        if made is None:
            raise AttributeError(name)
        builder = made.get(name)
        if builder is not None:  # made once per op: replacements call G["add"](...) for every firing
            return builder
        if name not in OPS:
            raise AttributeError(f"no op {name!r} in the op table")
        op = OPS[name]
        if op.arity == 2 and not op.has("structural"):  # what apply does for two operands, without its checks
            builder = partial(_binary, op)
        elif op.arity == 1 and not op.has("structural"):
            builder = partial(_unary, op)
        else:
            builder = partial(apply, op)
        made[name] = self.__dict__[name] = builder  # G.<op> finds it from now on without this method
        return builder

    __getitem__ = __getattr__


G = _GraphBuilders()


class Match(dict):
    """Bindings of a successful match; ``m.x`` reads binding ``x``; ``m.ctx`` is the rewrite context.

    >>> m = Match(None, x=1); m.x
    1
    """

    __slots__ = ("ctx",)

    def __init__(self, ctx: Any = None, **bindings: Any) -> None:
        super().__init__(bindings)
        self.ctx = ctx


    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class _FastMatch(Match):
    """Match built by generated matchers: dict's own constructor, ctx set afterwards."""

    __slots__ = ()
    __init__ = dict.__init__


_MATCH_CLASSES: dict[tuple, type] = {}


def match_class(names: Sequence[str]) -> type:
    """A :class:`Match` class whose bindings ``names`` read as attributes without a Python call.

    ``m.x`` is a property reading ``m["x"]`` through ``operator.itemgetter``
    (names that are already attributes of a Match, such as ``get``, stay
    what they are).

    >>> M = match_class(("x",))
    >>> m = M(); m["x"] = 1
    >>> m.x, isinstance(m, Match), match_class(("x",)) is M
    (1, True, True)
    """
    key = tuple(names)
    found = _MATCH_CLASSES.get(key)
    if found is None:
        fields = {n: property(itemgetter(n)) for n in key if not hasattr(_FastMatch, n)}
        found = _MATCH_CLASSES[key] = type("Match", (_FastMatch,), {"__slots__": (), **fields})
    return found


def match_into(pat: Pat, node: Expr, m: dict) -> bool:
    """Match ``node`` against ``pat``, adding bindings to ``m``; False (m may be spoiled) if no match."""
    kind = pat.kind
    if kind == VAR:
        bound = m.get(pat.name)
        if bound is None:
            m[pat.name] = node
            return True
        return bound is node
    if kind == LIT:
        return node is pat.node
    if kind == CST:
        if node.op is not CONST:
            return False
        bound = m.get(pat.name)
        if bound is None:
            m[pat.name] = node.data
            return True
        return bound == node.data
    if node.op is not pat.op:
        return False
    args, pargs = node.args, pat.args
    if len(pargs) == 2 and pat.op.has("commutative"):
        saved = dict(m)
        if match_into(pargs[0], args[0], m) and match_into(pargs[1], args[1], m):
            return True
        m.clear()
        m.update(saved)
        return match_into(pargs[0], args[1], m) and match_into(pargs[1], args[0], m)
    for p, a in zip(pargs, args):
        if not match_into(p, a, m):
            return False
    return True


def alternatives(pat: Pat) -> list[Pat]:
    """``pat`` and its variants with operands of commutative ops swapped (distinct ones, original first).

    >>> [str(a) for a in alternatives(var("x") * -var("y"))]
    ['mul(x, neg(y))', 'mul(neg(y), x)']
    """
    if pat.kind != OP:
        return [pat]
    options = [[]]
    for sub in pat.args:
        options = [o + [a] for o in options for a in alternatives(sub)]
    out = [Pat(OP, op=pat.op, args=tuple(o)) for o in options]
    if len(pat.args) == 2 and pat.op.has("commutative"):
        out += [Pat(OP, op=pat.op, args=(o.args[1], o.args[0])) for o in out]
    seen, unique = set(), []
    for a in out:
        if str(a) not in seen:
            seen.add(str(a))
            unique.append(a)
    return unique


def compile_matcher(pat: Pat):
    """A fast matcher ``fn(node, ctx) -> Match | None`` for ``pat`` taken literally (operands in order).

    Generated Python code: one attribute test per pattern node, no
    backtracking (commutative variants are separate :func:`alternatives`).

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> compile_matcher(var("a") + var("a"))(x + x, None)["a"] is x
    True
    """
    env: dict[str, Any] = {"Match": _FastMatch, "CONST": CONST}
    lines, binds = matcher_code(pat, "return None", env)
    tail = [f"m = Match({', '.join(f'{k}={v}' for k, v in binds)})", "m.ctx = ctx", "return m"]
    src = "def matcher(node, ctx):\n    " + "\n    ".join(lines + tail) + "\n"
    exec(compile(src, f"<pattern {pat}>", "exec"), env)
    return env["matcher"]


def matcher_code(pat: Pat, fail: str, env: dict, prefix: str = "n", heads_known: bool = False,
                 root_args: Sequence[str] = ()) -> tuple[list[str], list[tuple[str, str]]]:
    """Python lines testing ``node`` against ``pat`` literally (``fail`` where it does not match), and the bindings.

    The bindings are ``(name, expression)`` pairs, in the order bound.  Names the
    lines need (ops, literals) are added to ``env``; local names start with
    ``prefix``.  ``heads_known``: the opcodes of the node and of its operands
    are known to fit the pattern's heads, so those tests are left out.
    ``root_args``: local names already holding the node's operands.

    >>> env = {}
    >>> lines, binds = matcher_code(var("a") * var("a"), "return None", env, heads_known=True)
    >>> lines, binds
    (['n1 = node.args[0]', 'n2 = node.args[1]', 'if n2 is not n1: return None'], [('a', 'n1')])
    """
    lines: list[str] = []
    bound: dict[str, str] = {}
    counter = [0]

    def fresh() -> str:
        counter[0] += 1
        return f"{prefix}{counter[0]}"

    work = [(pat, "node", 0)]  # patterns are tiny; an explicit list keeps the order operands-first-left
    while work:
        p, e, depth = work.pop(0)
        known = heads_known and depth <= 1
        if p.kind == OP:
            env[f"op{p.op.code}"] = p.op
            if not known:
                lines.append(f"if {e}.op is not op{p.op.code}: {fail}")
            subs = []
            for i, sub in enumerate(p.args):
                if depth == 0 and root_args:
                    name = root_args[i]
                else:
                    name = fresh()
                    lines.append(f"{name} = {e}.args[{i}]")
                subs.append((sub, name, depth + 1))
            work = subs + work
        elif p.kind == LIT:
            key = f"{prefix}lit{counter[0]}"
            counter[0] += 1
            env[key] = p.node
            lines.append(f"if {e} is not {key}: {fail}")
        elif p.kind == VAR:
            if p.name in bound:
                lines.append(f"if {e} is not {bound[p.name]}: {fail}")
            else:
                bound[p.name] = e
        else:  # CST
            if not known:
                lines.append(f"if {e}.op is not CONST: {fail}")
            if p.name in bound:
                lines.append(f"if {e}.data != {bound[p.name]}: {fail}")
            else:
                value = fresh()
                lines.append(f"{value} = {e}.data")
                bound[p.name] = value
    return lines, list(bound.items())


def match(pat: Pat, node: Expr, ctx: Any = None) -> Match | None:
    """The bindings if ``node`` matches ``pat``, else None.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> match(var("a") + var("a"), x + x)["a"] is x
    True
    """
    m = Match(ctx)
    return m if match_into(pat, node, m) else None
