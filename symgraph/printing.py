"""Printing expressions: infix text, each large shared subexpression written once.

An expression prints inline, with minimal parentheses, so that the text reads
back as Python over the symbols and the ``sg`` builders: ``sin(x) * y``.

A graph shares nodes, and inline text repeats a shared node at every use, so
its length can grow exponentially with the graph (a 30-step recurrence
``e = sin(e * y) + exp(-e * z)`` is 210 nodes and ~10^10 characters inline).
When the inline text would be longer than :data:`INLINE_LIMIT` characters,
each shared subexpression whose own text is longer than :data:`NAME_MIN`
characters is instead printed once, as a numbered definition on its own
line (CasADi's ``@1`` notation), and referred to by its name::

    @1 = sin(x * y) + exp(-x * z)
    @2 = sin(@1 * y) + exp(-@1 * z)
    sin(@2 * y) + exp(-@2 * z)

The last line is the expression.  Both forms cost time and text linear in
the graph: every walk here is iterative over the graph's topological order.

A call of a Function ``f`` prints as ``f(operands)[j]``, ``j`` the flat index
of the output scalar it reads.  A call read by several results is always
named and printed once::

    @1 = f(x, y)
    @1[0] * @1[1]

>>> import symgraph as sg
>>> x, y = sg.symbols("x"), sg.symbols("y")
>>> print(sg.sin(x) * y)
sin(x) * y
>>> e = x
>>> for _ in range(30):
...     e = sg.sin(e * y) + sg.exp(-e * y)
>>> text = str(e)
>>> len(text) < 2000, text.splitlines()[0]
(True, '@1 = sin(x * y) + exp(-x * y)')
"""

from __future__ import annotations

import math

from .expr import CALL, CONST, RESULT, SYMBOL, Expr, topological

INLINE_LIMIT = 10_000  # characters of inline text above which shared nodes are named
NAME_MIN = 12  # a shared node with shorter text stays inline (bounded repetition)

# Ops printed under their sg builder name, so printed text reads back as Python.
_CALL_NAME = {"not": "logical_not", "and": "logical_and", "or": "logical_or"}


def to_str(root: Expr, limit: int | None = None) -> str:
    """The text of ``root``: inline, or with shared subexpressions named (see module doc).

    With ``limit`` (a number of characters, then ``...``) the inline text is
    cut there; it is emitted top-down from an explicit stack, so the work is
    bounded too: printing the head of a million-node expression is instant.

    >>> import symgraph as sg
    >>> x, y = sg.symbols("x"), sg.symbols("y")
    >>> to_str((x + y) * (x - y) ** 3 - -x)
    '(x + y) * (x - y)**3 - -x'
    >>> to_str(x + y, limit=3)
    'x +...'
    """
    if limit is not None:
        return _inline(root, {}, limit)
    order = topological([root])
    long = _inline_length(order) > INLINE_LIMIT
    if not long and not _has_shared_call(order):
        return _inline(root, {}, None)
    names = _shared_names(order, by_length=long)
    if not names:
        return _inline(root, {}, None)
    lines = []
    for node in order:
        name = names.get(node)
        if name is not None:
            lines.append(f"{name} = {_inline(node, names, None, skip=node)}")
    lines.append(_inline(root, names, None))
    return "\n".join(lines)


def short(node: Expr, limit: int = 80) -> str:
    """The first ``limit`` characters of the inline text (for messages and ``repr``).

    >>> import symgraph as sg
    >>> short(sg.symbols("x") + 1, 3)
    '1 +...'
    """
    return _inline(node, {}, limit)


def _inline_length(order: list[Expr]) -> int:
    """Length of the fully inline text of the last node, capped just above INLINE_LIMIT."""
    cap = INLINE_LIMIT + 1
    length: dict[Expr, int] = {}
    for node in order:
        total = 0
        for piece in _pieces(node, {}):
            total += len(piece) if type(piece) is str else length[piece]
        length[node] = total if total < cap else cap
    return length[order[-1]]


def _has_shared_call(order: list[Expr]) -> bool:
    """True if a call node is read by more than one result node."""
    seen: set[Expr] = set()
    for node in order:
        if node.op is RESULT:
            call = node.args[0]
            if call in seen:
                return True
            seen.add(call)
    return False


def _shared_names(order: list[Expr], by_length: bool = True) -> dict[Expr, str]:
    """``{node: "@k"}`` for calls read by several results and, if ``by_length``, for shared
    nodes whose text (given earlier names) exceeds NAME_MIN."""
    uses: dict[Expr, int] = {}
    for node in order:
        for a in node.args:
            uses[a] = uses.get(a, 0) + 1
    names: dict[Expr, str] = {}
    length: dict[Expr, int] = {}
    for node in order:
        total = 0
        for piece in _pieces(node, names):
            if type(piece) is str:
                total += len(piece)
            else:
                name = names.get(piece)
                total += len(name) if name is not None else length[piece]
        if node.args and uses.get(node, 0) > 1 and (node.op is CALL or (by_length and total > NAME_MIN)):
            names[node] = f"@{len(names) + 1}"
        length[node] = total
    return names


def _inline(root: Expr, names: dict[Expr, str], limit: int | None, skip: Expr | None = None) -> str:
    """Text of ``root`` top-down from an explicit stack; named nodes other than ``skip`` print as their name."""
    out: list[str] = []
    size = 0
    stack: list = [root]
    while stack:
        item = stack.pop()
        if type(item) is not str:
            name = names.get(item) if item is not skip else None
            if name is None:
                stack.extend(reversed(_pieces(item, names)))
                continue
            item = name
        out.append(item)
        size += len(item)
        if limit is not None and size > limit:
            return "".join(out)[:limit] + "..."
    return "".join(out)


def _format_const(v: float) -> str:
    if v != v:
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v.is_integer() and abs(v) < 1e16:
        return str(int(v)) if v != 0 or math.copysign(1.0, v) > 0 else "-0.0"  # reads back as -0.0
    return repr(v)


def _node_prec(node: Expr, names: dict[Expr, str]) -> int:
    if node in names:
        return 9  # a name is an atom
    op = node.op
    if op is CONST:
        return 3 if node.data < 0 or math.copysign(1.0, node.data) < 0 else 9
    if op.name == "square":
        return 4
    return op.prec if op.infix else 9


def _wrap(child: Expr, need: int, names: dict[Expr, str], strict: bool = False) -> list:
    p = _node_prec(child, names)
    return ["(", child, ")"] if p < need or (strict and p == need) else [child]


def _pieces(node: Expr, names: dict[Expr, str]) -> list:
    """The text of ``node`` as strings and operand nodes still to print."""
    op = node.op
    if op is SYMBOL:
        return [node.data]
    if op is CONST:
        return [_format_const(node.data)]
    args = node.args
    if op is RESULT:
        return [args[0], f"[{node.data}]"]
    if op is CALL:
        pieces = [node.data.name + "("]
        for k, a in enumerate(args):
            pieces += [", ", a] if k else [a]
        return pieces + [")"]
    if op.name == "square":
        return _wrap(args[0], 5, names) + ["**2"]
    if op.infix is None:
        pieces: list = [_CALL_NAME.get(op.name, op.name) + "("]
        for k, a in enumerate(args):
            pieces += [", ", a] if k else [a]
        return pieces + [")"]
    if op.arity == 1:
        return [op.infix] + _wrap(args[0], op.prec, names)
    if op.infix == "**":  # right-associative
        return _wrap(args[0], op.prec, names, strict=True) + ["**"] + _wrap(args[1], op.prec, names)
    # Left-associative like Python: an equal-precedence right operand keeps its
    # parentheses (x * (y / z), x + (y + z)), so the text parses back to this graph.
    return (_wrap(args[0], op.prec, names, strict=op.prec == 0) + [f" {op.infix} "]
            + _wrap(args[1], op.prec, names, strict=True))
