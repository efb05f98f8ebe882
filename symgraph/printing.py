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
from typing import Any

from .expr import CALL, CONST, RESULT, SYMBOL, Expr, topological
from .ops import OP_LIST

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


# ---------------------------------------------------------------- debugprint

DEBUG_DEPTH = 40
OP_NAMES = [op.name for op in OP_LIST]  # tree levels printed under one line before a subtree continues as its own root


def debugprint(F: Any, *, file: Any = None, limit: int | None = None, max_depth: int = DEBUG_DEPTH) -> str:
    """A text dump of ``F``'s graph in PyTensor's ``debugprint`` style; returns the text.

    Each output element is a tree, its operands indented below it.  Every
    node carries an id (``[id 7]``: for ``F`` itself its Tape slot, the
    ``@7`` of ``F.listing()``); a node with operands is printed in full the
    first time and as ``... [id 7] (see above)`` afterwards, so a shared
    node is written once.  A call shows its callee and structure (``call
    sq_map3 (map of sq over 3 instances)``); an operand run over a whole
    input prints as one line (``x (3,) [id 0..2]``) and an output that is
    all of one call's results as one line.  The Functions called (and the
    bodies of maps and folds) follow, each once, with ids unique across
    the whole text.

    The walk is iterative, and a tree deeper than ``max_depth`` levels
    continues as a new root further down (``(continued below)``), so a
    chain of 10^6 operations prints in linear time and bounded width.

    Args:
        F: a :class:`~symgraph.Function`.
        file: also write the text (and a newline) to this file object
            (e.g. ``sys.stdout``); by default only return it.
        limit: keep the first this many lines, then one line saying the
            text was cut; the walk stops there too (bounded work).
        max_depth: tree levels under a root before a subtree continues
            as its own root (int >= 1).

    Raises:
        InvalidInputError: ``F`` is not a Function.
        OptionError: a bad ``limit``, ``max_depth`` or ``file``.

    >>> import symgraph as sg
    >>> x, y = sg.symbols("x"), sg.symbols("y")
    >>> s = x * y
    >>> print(debugprint(sg.Function("f", [x, y], [sg.sin(s) + s])))
    f: (x, y) -> (o0)
    o0 = add [id 4]
    ├─ sin [id 3]
    │  └─ mul [id 2]
    │     ├─ x [id 0]
    │     └─ y [id 1]
    └─ mul [id 2] (see above)
    """
    from .errors import OptionError
    from .pictures import _check_function, _reachable

    _check_function(F, "debugprint")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise OptionError(f"debugprint: limit must be None or an int >= 1 (lines), got {limit!r}")
    if isinstance(max_depth, bool) or not isinstance(max_depth, int) or max_depth < 1:
        raise OptionError(f"debugprint: max_depth must be an int >= 1, got {max_depth!r}")
    if file is not None and not callable(getattr(file, "write", None)):
        raise OptionError(f"debugprint: file must be None or a writable file object, got {type(file).__name__}")
    out = _Lines(limit)
    functions = _reachable(F)
    offset = 0
    for c, G in enumerate(functions):
        if c == 1:
            out.add("")
            out.add("Functions called (ids continue across the listing):")
        if out.full:
            break
        out.add(_header(G))
        structure = getattr(G, "structure", None)
        if structure is not None and c > 0:
            body = f"; body: {structure.body.name}" if structure.body is not None else ""
            out.add(f"  {structure.describe()}{_structure_details(G)}{body}")
        else:
            _function_trees(G, offset, out, max_depth)
        offset += G.tape.n_slots
    text = "\n".join(out.lines)
    if file is not None:
        file.write(text + "\n")
    return text


class _Lines:
    """Collected lines, cut at ``limit`` with a closing note."""

    def __init__(self, limit: int | None) -> None:
        self.lines: list[str] = []
        self.limit = limit
        self.full = False

    def add(self, line: str) -> None:
        if self.full:
            return
        if self.limit is not None and len(self.lines) >= self.limit:
            self.lines.append(f"... (cut at limit={self.limit} lines)")
            self.full = True
            return
        self.lines.append(line)


def _shape_text(name: str, shape: tuple) -> str:
    return name if not shape else f"{name} {tuple(int(n) for n in shape)}"


def _header(G: Any) -> str:
    ins = ", ".join(_shape_text(n, s) for n, s in zip(G.input_names, G.input_shapes))
    outs = ", ".join(_shape_text(n, s) for n, s in zip(G.output_names, G.output_shapes))
    return f"{G.name}: ({ins}) -> ({outs})"


def _structure_details(G: Any) -> str:
    structure = G.structure
    parts = []
    if structure.body is None:  # a native: what its C calls
        return "".join(f"; calls {C.name}" for C in structure.children)
    shared = [n for n, f in zip(structure.body.input_names, getattr(structure, "shared", ())) if f]
    if shared:
        parts.append("shared: " + ", ".join(shared))
    summed = [n for n, r in zip(structure.body.output_names, getattr(structure, "reduce", ())) if r is not None]
    if summed:
        parts.append("summed: " + ", ".join(summed))
    return "".join(f"; {p}" for p in parts)


def _function_trees(G: Any, offset: int, out: _Lines, max_depth: int) -> None:
    """Append the trees of ``G``'s outputs (ids shifted by ``offset``), then the subtrees continued below."""
    import collections

    import numpy as np

    from .pictures import _element_label, _flat_name

    tape = G.tape
    nin, first = tape.n_input_scalars, tape.first_instruction_slot
    codes = tape.opcodes.tolist()
    operands = tape.operands
    immediates = tape.immediates
    constants = tape.constants.tolist()
    names = tape.symbol_names
    owner = np.zeros(nin, dtype=np.int64)
    for k, s in enumerate(tape.input_slots):
        owner[s.reshape(-1)] = k
    call_code, result_code = CALL.code, RESULT.code

    def ident(slot: int) -> str:
        return f"[id {offset + slot}]"

    def text(slot: int) -> str:
        if slot < nin:
            return f"{names[slot]} {ident(slot)}"
        if slot < first:
            return f"{_format_const(constants[slot - nin])} {ident(slot)}"
        i = slot - first
        code = codes[i]
        if code == call_code:
            callee = tape.callee(i)
            structure = getattr(callee, "structure", None)
            extra = f" ({structure.describe()}{_structure_details(callee)})" if structure is not None else ""
            return f"call {callee.name}{extra} {ident(slot)}"
        if code == result_code:
            callee = tape.callee(int(operands[i, 0]) - first)
            return f"result {_flat_name(callee.output_names, callee.output_shapes, int(immediates[i]))} {ident(slot)}"
        return f"{OP_NAMES[code]} {ident(slot)}"

    def children(slot: int) -> list:
        if slot < first:
            return []
        i = slot - first
        code = codes[i]
        if code == result_code:
            return [int(operands[i, 0])]
        if code == call_code:
            return _grouped_operands(tape.call(i)[1], nin, owner)
        return [a for a in operands[i].tolist() if a >= 0]

    def group_text(item: tuple) -> str:
        _, lo, hi = item
        k = int(owner[lo])
        slots = tape.input_slots[k]
        if hi - lo + 1 == slots.size:
            return f"{_shape_text(G.input_names[k], G.input_shapes[k])} [id {offset + lo}..{offset + hi}]"
        return f"{names[lo]} .. {names[hi]} [id {offset + lo}..{offset + hi}]"

    done: set[int] = set()
    pending: set[int] = set()
    later: collections.deque = collections.deque()

    def walk(root: Any, label: str) -> None:
        stack = [(root, "", None, 0)]
        while stack and not out.full:
            item, prefix, last, depth = stack.pop()
            if last is None:
                head, below = label, ""
            else:
                head, below = prefix + ("└─ " if last else "├─ "), prefix + ("   " if last else "│  ")
            if type(item) is tuple:
                out.add(head + group_text(item))
                continue
            kids = children(item)
            if not kids:
                out.add(head + text(item))
            elif item in done:
                out.add(head + text(item) + " (see above)")
            elif item in pending:
                out.add(head + text(item) + " (see below)")
            elif depth >= max_depth:
                out.add(head + text(item) + " (continued below)")
                pending.add(item)
                later.append(item)
            else:
                done.add(item)
                out.add(head + text(item))
                n = len(kids)
                for j in range(n - 1, -1, -1):
                    stack.append((kids[j], below, j == n - 1, depth + 1))

    for k, slots in enumerate(tape.output_slots):
        flat = slots.reshape(-1).tolist()
        run = _result_run(flat, first, codes, operands, immediates)
        name, shape = G.output_names[k], G.output_shapes[k]
        sparsity = G.output_sparsity[k]
        if run is not None and len(flat) > 1:
            call, lo, hi = run
            walk(call, f"{_shape_text(name, shape)} = results {lo}..{hi} of ")
            continue
        if not flat and not out.full:
            out.add(f"{_shape_text(name, shape)} = (empty)")
        for j, slot in enumerate(flat):
            if sparsity is not None:
                element = f"{name}[{int(sparsity[0][j])},{int(sparsity[1][j])}]"
            else:
                element = name if not slots.shape else name + _element_label(slots.shape, j)
            walk(slot, element + " = ")
            if out.full:
                return
    while later and not out.full:
        slot = later.popleft()
        pending.discard(slot)
        walk(slot, "(continued) ")


def _grouped_operands(slots: tuple, nin: int, owner: Any) -> list:
    """A call's operand slots, runs of consecutive slots of one input as ``("input", first, last)``."""
    items: list = []
    j, n = 0, len(slots)
    while j < n:
        s = slots[j]
        end = j
        if s < nin:
            while end + 1 < n and slots[end + 1] == slots[end] + 1 and slots[end + 1] < nin \
                    and owner[slots[end + 1]] == owner[s]:
                end += 1
        items.append(("input", s, slots[end]) if end > j else s)
        j = end + 1
    return items


def _result_run(flat: list, first: int, codes: list, operands: Any, immediates: Any) -> tuple | None:
    """``(call slot, first index, last index)`` if ``flat`` are consecutive results of one call, else None."""
    if not flat or flat[0] < first:
        return None
    i0 = flat[0] - first
    if codes[i0] != RESULT.code:
        return None
    call, start = int(operands[i0, 0]), int(immediates[i0])
    for j, slot in enumerate(flat):
        i = slot - first
        if i < 0 or codes[i] != RESULT.code or int(operands[i, 0]) != call or int(immediates[i]) != start + j:
            return None
    return call, start, start + len(flat) - 1
