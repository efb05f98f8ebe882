"""Structural facts about nodes that rule guards ask, and the rewrite context.

Every predicate looks at a bounded number of nodes (never a whole graph).

>>> import symgraph as sg
>>> x = sg.symbols("x")
>>> nonneg(sg.square(x)), nonneg(sg.sqrt(x)), nonneg(sg.sqrt(sg.exp(x)))
(True, False, True)
"""

from __future__ import annotations

import math
from typing import Iterable

from ..expr import CONST, SYMBOL, Expr
from ..ops import OPS

# Ops whose result is >= +0 (never -0, never -inf) or NaN, whatever the operands.
_NONNEG_ALWAYS = frozenset(OPS[n] for n in ("square", "abs", "exp", "cosh", "hypot", "erfc", "acos"))
# Ops whose result is >= +0 or NaN when every operand is.
_NONNEG_IF_ARGS = frozenset(OPS[n] for n in ("add", "mul", "div", "sqrt", "fmin", "fmax", "cbrt"))
_INTEGER_VALUED = frozenset(OPS[n] for n in ("floor", "ceil", "sign", "lt", "le", "gt", "ge", "eq", "ne",
                                                 "not", "and", "or"))
_POWI = OPS["powi"]
_MAX_LOOK = 16


def nonneg(node: Expr) -> bool:
    """True if ``node`` is structurally ``>= +0`` (or NaN): never negative, -0.0 or -inf.

    Looks at most 16 nodes deep; False means "not known".

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> nonneg(sg.exp(x) * sg.abs(x)), nonneg(x * x), nonneg(sg.const(-0.0))
    (True, False, False)
    """
    stack, seen = [node], 0
    while stack:
        n = stack.pop()
        seen += 1
        if seen > _MAX_LOOK:
            return False
        op = n.op
        if op is CONST:
            if not (n.data > 0.0 or (n.data == 0.0 and math.copysign(1.0, n.data) > 0)):
                return False
        elif op in _NONNEG_ALWAYS:
            continue
        elif op is _POWI:
            if n.args[1].data % 2 != 0:
                stack.append(n.args[0])
        elif op in _NONNEG_IF_ARGS:
            stack.extend(n.args)
        else:
            return False
    return True


def integer_valued(node: Expr) -> bool:
    """True if ``node`` is always an integer, +-inf or NaN (floor, ceil, sign, comparisons).

    >>> import symgraph as sg
    >>> integer_valued(sg.floor(sg.symbols("x"))), integer_valued(sg.symbols("x"))
    (True, False)
    """
    if node.op is CONST:
        return float(node.data).is_integer() or not math.isfinite(node.data)
    return node.op in _INTEGER_VALUED


def boolean(node: Expr) -> bool:
    """True if ``node`` is always 0.0 or 1.0 (comparisons and logic).

    >>> import symgraph as sg
    >>> boolean(sg.lt(sg.symbols("x"), 1))
    True
    """
    if node.op is CONST:
        return node.data in (0.0, 1.0)
    return node.op.has("boolean")


def power_of_two_exponent(value: float) -> int | None:
    """k if ``value == 2**k`` (normal range), else None.

    >>> power_of_two_exponent(8.0), power_of_two_exponent(0.25), power_of_two_exponent(3.0)
    (3, -2, None)
    """
    if not math.isfinite(value) or value <= 0.0:
        return None
    mantissa, exponent = math.frexp(value)
    if mantissa != 0.5 or not -1021 <= exponent - 1 <= 1023:
        return None
    return exponent - 1


class Context:
    """What rules may ask beyond their match: structural order keys and use counts.

    The order key of a node is a structural hash computed bottom-up from
    opcodes, constant values and the position of each symbol (in the given
    symbol order, then in first-visit order).  It never depends on ``id()``
    or on string hashing, so the same graph always sorts the same way.

    >>> import symgraph as sg
    >>> x, y = sg.symbols("x"), sg.symbols("y")
    >>> ctx = Context([x, y])
    >>> ctx.key(x + y) == ctx.key(x + y), ctx.key(x) < ctx.key(y) or ctx.key(x) > ctx.key(y)
    (True, True)
    """

    __slots__ = ("keys", "_symbols", "uses", "user_op", "node", "current")

    def __init__(self, symbol_order: Iterable[Expr] = ()) -> None:
        self.keys: dict[Expr, int] = {}
        self._symbols: dict[Expr, int] = {}
        for s in symbol_order:
            self._symbols.setdefault(s, len(self._symbols))
        self.uses: dict[Expr, int] = {}
        self.user_op: dict[Expr, str] = {}
        self.node: Expr | None = None  # the node of the pass's graph being rewritten
        self.current: Expr | None = None  # the node the rules are being tried at

    def key(self, node: Expr) -> int:
        """The structural order key of ``node`` (iterative, memoized)."""
        keys = self.keys
        k = keys.get(node)
        if k is not None:
            return k
        args = node.args
        if len(args) == 2 and node.data is None:  # fast path: operands already keyed (the usual case in a pass)
            k0, k1 = keys.get(args[0]), keys.get(args[1])
            if k0 is not None and k1 is not None:
                k = keys[node] = hash((node.op.code, k0, k1))
                return k
        elif len(args) == 1 and node.data is None:  # a unary op over a keyed operand
            k0 = keys.get(args[0])
            if k0 is not None:
                k = keys[node] = hash((node.op.code, k0))
                return k
        elif type(node.data) is int and len(args) == 1:  # a result whose call is keyed (as below)
            k0 = keys.get(args[0])
            if k0 is not None:
                k = keys[node] = hash((node.op.code, node.data, k0))
                return k
        stack = [node]
        while stack:
            n = stack[-1]
            if n in keys:
                stack.pop()
                continue
            missing = [a for a in n.args if a not in keys]
            if missing:
                stack.extend(missing)
                continue
            stack.pop()
            args = n.args
            if not args:
                keys[n] = self._leaf_key(n)
            elif n.data is not None:  # call or result: callee shape or output index, then operands
                data = n.data if type(n.data) is int else (n.data.n_ops, len(args), len(n.data.output_shapes))
                keys[n] = hash((n.op.code, data) + tuple([keys[a] for a in args]))
            elif len(args) == 2:
                keys[n] = hash((n.op.code, keys[args[0]], keys[args[1]]))
            else:
                keys[n] = hash((n.op.code,) + tuple([keys[a] for a in args]))
        return keys[node]

    def numbers_symbols(self, nodes: Iterable[Expr]) -> bool:
        """True if every symbol among ``nodes`` has its number from the symbol order given.

        Then the key of any node above them is the same whenever it is computed.

        >>> import symgraph as sg
        >>> x, y = sg.symbols("x"), sg.symbols("y")
        >>> Context([x]).numbers_symbols([x, x + 1]), Context([x]).numbers_symbols([x, y])
        (True, False)
        """
        numbered = self._symbols
        return all(n in numbered for n in nodes if n.op is SYMBOL)

    def _leaf_key(self, n: Expr) -> int:
        if n.op is SYMBOL:
            index = self._symbols.setdefault(n, len(self._symbols))
            return hash((-1, index))
        return hash((-2, n.data, math.copysign(1.0, n.data)))

    def count_uses(self, order: list[Expr]) -> None:
        """Record how many operand slots of ``order``'s nodes refer to each node, and a user's op name."""
        uses: dict[Expr, int] = {}
        user_op: dict[Expr, str] = {}
        get = uses.get
        for n in order:
            name = n.op.name
            for a in n.args:
                uses[a] = get(a, 0) + 1
                user_op[a] = name
        self.uses, self.user_op = uses, user_op
