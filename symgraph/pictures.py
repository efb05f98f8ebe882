"""Pictures of graphs and sparsity patterns: Graphviz DOT text, SVG/PNG files, ``spy`` plots.

:func:`to_dot` draws a Function as Graphviz DOT text.  Every slot of its
Tape is one node, so a node shared by several operations is drawn once;
each input and each output is one node labelled with its name and shape
(an edge from an array input names the element it carries).  Every
distinct Function it calls is drawn once, as a cluster labelled with its
name; a map or fold is a cluster of three nodes (inputs, the structure
``map x1000 of body``, outputs) pointing at its body's cluster, so a map
over 10^6 instances is as small a picture as a map over ten.  A call node
points at its callee's cluster with a dashed ``calls`` edge.

A graph with more than ``max_nodes`` nodes in all is summarised instead
of drawn node by node: each Function becomes its inputs, one box of op
counts, the callees it calls, and its outputs labelled with the size of
their cone (the operations they depend on), and the graph's label says so.

:func:`draw` runs Graphviz's ``dot`` program on that text to write an
SVG or PNG file; :func:`spy` plots a sparsity pattern with matplotlib
(``pip install "symgraph[plot]"``).

>>> import symgraph as sg
>>> x, y = sg.symbols("x"), sg.symbols("y")
>>> s = x + y
>>> F = sg.Function("f", [x, y], [s * s + sg.sin(s)])
>>> text = to_dot(F)
>>> text.splitlines()[0], text.count('label="add"')
('digraph "f" {', 2)
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InvalidInputError, MissingToolError, OptionError, ShapeError
from .ops import OP_LIST, OPS

__all__ = ["to_dot", "draw", "spy", "GraphSummary", "graph_summary", "DEFAULT_MAX_NODES"]

DEFAULT_MAX_NODES = 1000  # above this many nodes in all, to_dot draws a summary
DOT_TIMEOUT = 120.0  # seconds granted to Graphviz's dot by draw()
MAX_LISTED = 20  # inputs, outputs, op kinds and callees listed per Function in a summary
MAX_FUNCTIONS = 200  # Functions drawn at most (a graph calling more lists the rest in its label)
SPY_MARKERS = 200_000  # above this many nonzeros spy draws a density image instead of markers
_CALL, _RESULT = OPS["call"], OPS["result"]
_FORMATS = ("svg", "png", "pdf", "dot")


# ---------------------------------------------------------------- graph facts


@dataclass(frozen=True)
class GraphSummary:
    """Facts about one Function's graph, for summaries and ``symgraph info``.

    Attributes:
        n_ops: instructions on the Tape other than call results.
        op_counts: ``{op name: count}`` over those, most frequent first
            (``call`` counts calls of any callee).
        callees: ``((name, description, number of calls), ...)`` per distinct
            callee, in order of first call; the description says ``map of f
            over 1000 instances``, ``fold ...`` or ``function``.
        cones: per output (the first ``max_cones`` of them), the number of
            operations (as in ``n_ops``) that it depends on.
    """

    n_ops: int
    op_counts: dict
    callees: tuple
    cones: tuple


def graph_summary(F: Any, max_cones: int | None = None) -> GraphSummary:
    """Op counts, callees and output cone sizes of ``F`` (see :class:`GraphSummary`).

    Op counts are one pass of numpy over the Tape; each cone is one graph
    search (scipy), linear in the Tape, so ``max_cones`` (default: every
    output) bounds the work for a Function of many outputs; 0 skips them.

    >>> import symgraph as sg
    >>> x, y = sg.symbols("x"), sg.symbols("y")
    >>> s = graph_summary(sg.Function("f", [x, y], [sg.sin(x) * x, y + 1]))
    >>> s.n_ops, s.op_counts, s.cones
    (3, {'add': 1, 'mul': 1, 'sin': 1}, (2, 1))
    """
    _check_function(F, "graph_summary")
    if max_cones is not None and (isinstance(max_cones, bool) or not isinstance(max_cones, (int, np.integer))
                                  or max_cones < 0):
        raise OptionError(f"graph_summary: max_cones must be None or an int >= 0, got {max_cones!r}")
    tape = F.tape
    codes = np.asarray(tape.opcodes, dtype=np.int64)
    counts = np.bincount(codes, minlength=len(OP_LIST))
    counts[_RESULT.code] = 0
    order = sorted((int(c), OP_LIST[k].name) for k, c in enumerate(counts.tolist()) if c)
    order.sort(key=lambda item: (-item[0], item[1]))
    op_counts = {name: c for c, name in order}
    callees = tuple((G.name, _describe(G), n) for G, n in _callee_calls(tape))
    n_cones = len(tape.output_slots) if max_cones is None else min(int(max_cones), len(tape.output_slots))
    return GraphSummary(int(counts.sum()), op_counts, callees, _cones(tape, n_cones))


def _callee_calls(tape: Any) -> list[tuple[Any, int]]:
    """``[(callee, number of calls)]`` per distinct callee, in order of first call."""
    calls: dict[int, list] = {}
    for i in np.flatnonzero(np.asarray(tape.opcodes) == _CALL.code).tolist():
        G = tape.callee(i)
        calls.setdefault(id(G), [G, 0])[1] += 1
    return [(G, n) for G, n in calls.values()]


def _describe(G: Any) -> str:
    structure = getattr(G, "structure", None)
    return structure.describe() if structure is not None else "function"


def _cones(tape: Any, n_cones: int) -> tuple[int, ...]:
    """For the first ``n_cones`` outputs, the number of non-result instructions each depends on."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import breadth_first_order

    n_out = len(tape.output_slots)
    if not n_cones:
        return ()
    readers, slots = _reads(tape)
    n_slots, first = tape.n_slots, tape.first_instruction_slot
    heads = [np.full(s.size, n_slots + k, dtype=np.int64) for k, s in enumerate(tape.output_slots)]
    src = np.concatenate([readers + first] + heads)
    dst = np.concatenate([slots] + [s.reshape(-1).astype(np.int64) for s in tape.output_slots])
    size = n_slots + n_out
    graph = csr_matrix((np.ones(len(src), dtype=np.int8), (src, dst)), shape=(size, size))
    counted = np.zeros(size, dtype=bool)
    counted[first:n_slots] = np.asarray(tape.opcodes) != _RESULT.code
    return tuple(int(np.count_nonzero(counted[breadth_first_order(graph, n_slots + k, directed=True,
                                                                   return_predecessors=False)]))
                 for k in range(n_cones))


def _reads(tape: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(reader instruction, operand slot)`` of every operand read on the Tape (calls' from the call tables)."""
    operands = np.asarray(tape.operands, dtype=np.int64)
    index = np.repeat(np.arange(len(operands), dtype=np.int64), operands.shape[1]) if len(operands) else \
        np.zeros(0, dtype=np.int64)
    flat = operands.reshape(-1)
    used = flat >= 0
    readers, slots = [index[used]], [flat[used]]
    if tape.n_calls:
        where = np.flatnonzero(np.asarray(tape.opcodes) == _CALL.code)
        rows = tape.immediates[where]
        lo, hi = tape.call_offsets[rows], tape.call_offsets[rows + 1]
        readers.append(np.repeat(where, hi - lo).astype(np.int64))
        slots.append(np.concatenate([tape.call_operands[a:b] for a, b in zip(lo.tolist(), hi.tolist())]
                                    ).astype(np.int64))
    return np.concatenate(readers), np.concatenate(slots)


# ---------------------------------------------------------------- DOT text


def to_dot(F: Any, *, max_nodes: int = DEFAULT_MAX_NODES) -> str:
    """``F``'s graph as Graphviz DOT text (see the module docstring for what is drawn).

    Args:
        F: a :class:`~symgraph.Function` (ordinary or structured).
        max_nodes: above this many nodes in all Functions drawn, every
            Function is summarised (op counts, callees, output cone sizes)
            and the graph's label says so.

    Raises:
        InvalidInputError: ``F`` is not a Function.
        OptionError: ``max_nodes`` is not an int >= 1.

    >>> import numpy as np, symgraph as sg
    >>> x = sg.symbols("x")
    >>> M = sg.Function("sq", [x], [x * x]).map(1000)
    >>> text = to_dot(M)
    >>> "map of sq over 1000 instances" in text, text.count("->") < 10
    (True, True)
    """
    _check_function(F, "to_dot")
    if isinstance(max_nodes, bool) or not isinstance(max_nodes, (int, np.integer)) or max_nodes < 1:
        raise OptionError(f"to_dot: max_nodes must be an int >= 1, got {max_nodes!r}")
    functions = _reachable(F)
    shown = functions[:MAX_FUNCTIONS]
    index = {id(G): c for c, G in enumerate(shown)}
    total = sum(_node_count(G) for G in functions)
    summary = total > max_nodes
    lines = [f"digraph {_quote(F.name)} {{", "  compound=true;", "  node [fontname=Helvetica, fontsize=11];",
             "  edge [fontname=Helvetica, fontsize=9];"]
    notes = []
    if summary:
        notes.append(f"summary: {total} nodes is more than max_nodes={int(max_nodes)}; "
                     "op counts, callees and output cone sizes shown")
    if len(functions) > len(shown):
        notes.append(f"{len(functions) - len(shown)} more Functions called, not drawn: "
                     + ", ".join(G.name for G in functions[len(shown):len(shown) + 10]))
    title = F.name if getattr(F, "structure", None) is None else f"{F.name}: {F.structure.describe()}"
    title = "\n".join([title] + notes)
    lines += [f"  label={_quote(title)};", "  labelloc=t;"]
    for c, G in enumerate(shown):
        body = _unit(G, c, index, summary)
        if c == 0:
            lines += ["  " + line for line in body]
        else:
            label = G.name if getattr(G, "structure", None) is None else f"{G.name}: {G.structure.describe()}"
            lines += [f"  subgraph cluster_{c} {{", f"    label={_quote(label)};", "    style=rounded;",
                      "    color=gray50;"]
            lines += ["    " + line for line in body]
            lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _check_function(F: Any, what: str) -> None:
    from .function import Function

    if not isinstance(F, Function):
        raise InvalidInputError(f"{what}: expected a symgraph Function, got {type(F).__name__}")


def _reachable(F: Any) -> list:
    """``F`` then every distinct Function it calls (callees, bodies of maps and folds), breadth first."""
    order, seen, at = [F], {id(F)}, 0
    while at < len(order):
        G = order[at]
        at += 1
        structure = getattr(G, "structure", None)
        for H in (structure.children if structure is not None else G.tape.callees):
            if id(H) not in seen:
                seen.add(id(H))
                order.append(H)
    return order


def _node_count(G: Any) -> int:
    if getattr(G, "structure", None) is not None:
        return G.n_in + G.n_out + 1
    tape = G.tape
    n_results = int(np.count_nonzero(np.asarray(tape.opcodes) == _RESULT.code))
    return G.n_in + len(tape.constants) + tape.n_instructions - n_results + G.n_out


def _unit(G: Any, c: int, index: dict, summary: bool) -> list[str]:
    """DOT statements drawing Function ``G`` with node names prefixed ``u{c}_``."""
    p = f"u{c}_"
    lines = [f"{p}i{k} [label={_quote(_signature(n, s))}, shape=box, style=filled, fillcolor=lightblue];"
             for k, (n, s) in enumerate(zip(G.input_names, G.input_shapes))]
    outputs = [f"{p}o{k} [label={_quote(_signature(n, s))}, shape=box, style=filled, fillcolor=lightgoldenrod];"
               for k, (n, s) in enumerate(zip(G.output_names, G.output_shapes))]
    structure = getattr(G, "structure", None)
    if structure is not None:
        lines += outputs
        head = structure.kind if structure.kind == "native" else f"{structure.kind} x{structure.n}"
        text = f"{head}\n{structure.describe()}"
        lines.append(f"{p}s [label={_quote(text)}, shape=box3d, style=filled, fillcolor=thistle];")
        lines += [f"{p}i{k} -> {p}s;" for k in range(G.n_in)]
        lines += [f"{p}s -> {p}o{k};" for k in range(G.n_out)]
        for child in structure.children:  # a map's or fold's body; the Functions a native's C calls
            lines += _calls_edge(f"{p}s", child, index)
        return lines
    if summary:
        return _summary_unit(G, p, lines, outputs, index)
    return lines + outputs + _full_unit(G, p, index)


def _full_unit(G: Any, p: str, index: dict) -> list[str]:
    """Every constant and operation of ``G`` as a node (results folded into their call), and the edges."""
    tape = G.tape
    nin, first = tape.n_input_scalars, tape.first_instruction_slot
    codes = np.asarray(tape.opcodes, dtype=np.int64)
    lines = [f"{p}k{j} [label={_quote(_const_text(v))}, shape=plaintext];"
             for j, v in enumerate(tape.constants.tolist())]
    for i, code in enumerate(codes.tolist()):
        op = OP_LIST[code]
        if op is _RESULT:
            continue
        if op is _CALL:
            callee = tape.callee(i)
            text = "call " + callee.name
            if getattr(callee, "structure", None) is not None:
                text += f"\n{callee.structure.kind} x{callee.structure.n}"
            lines.append(f"{p}n{i} [label={_quote(text)}, shape=box3d, style=filled, fillcolor=thistle];")
            lines += _calls_edge(f"{p}n{i}", callee, index)
        else:
            lines.append(f"{p}n{i} [label={_quote(op.name)}];")
    # Every read: operand slot -> reader node (results read as their call; outputs as their output node).
    readers, slots = _reads(tape)
    keep = codes[readers] != _RESULT.code
    readers, slots = readers[keep], slots[keep]
    out_slots = [s.reshape(-1).astype(np.int64) for s in tape.output_slots]
    n_instr = len(codes)
    dst = np.concatenate([readers] + [np.full(len(s), n_instr + k, dtype=np.int64) for k, s in enumerate(out_slots)])
    slots = np.concatenate([slots] + out_slots)
    lines += _edges(G, p, dst, slots, nin, first, codes)
    return lines


def _edges(G: Any, p: str, dst: np.ndarray, slots: np.ndarray, nin: int, first: int, codes: np.ndarray) -> list[str]:
    """Deduplicated edges from the node holding each slot to each reader, labelled with the element carried."""
    tape = G.tape
    n_instr = len(codes)
    # source node code: input k -> k; constant j -> K + j; instruction i -> K + C + i (a result: its call)
    K, C = len(tape.input_slots), len(tape.constants)
    owner = np.zeros(nin, dtype=np.int64)
    element = np.zeros(nin, dtype=np.int64)
    for k, s in enumerate(tape.input_slots):
        owner[s.reshape(-1)] = k
        element[s.reshape(-1)] = np.arange(s.size)
    src = np.empty(len(slots), dtype=np.int64)
    elem = np.full(len(slots), -1, dtype=np.int64)
    is_in = slots < nin
    src[is_in], elem[is_in] = owner[slots[is_in]], element[slots[is_in]]
    is_const = (slots >= nin) & (slots < first)
    src[is_const] = K + slots[is_const] - nin
    is_instr = slots >= first
    instr = slots[is_instr] - first
    result = codes[instr] == _RESULT.code
    calls = instr.copy()
    calls[result] = tape.operands[instr[result], 0] - first
    src[is_instr] = K + C + calls
    e = elem[is_instr]
    e[result] = tape.immediates[instr[result]]
    elem[is_instr] = e
    triples = np.unique(np.stack([src, dst, elem], axis=1), axis=0) if len(src) else np.zeros((0, 3), np.int64)
    pairs, first_at, counts = np.unique(triples[:, :2], axis=0, return_index=True, return_counts=True)
    lines = []
    for (s, d), at, n in zip(pairs.tolist(), first_at.tolist(), counts.tolist()):
        if s < K:
            a, shape, names = f"{p}i{s}", G.input_shapes[s], None
        elif s < K + C:
            a, shape, names = f"{p}k{s - K}", (), None
        else:
            a = f"{p}n{s - K - C}"
            shape, names = None, None
            if codes[s - K - C] == _CALL.code:
                callee = tape.callee(s - K - C)
                names = (callee.output_names, callee.output_shapes)
        b = f"{p}o{d - n_instr}" if d >= n_instr else f"{p}n{d}"
        label = None
        if n > 1:
            label = f"{n} elements"
        elif names is not None and sum(_size(sh) for sh in names[1]) > 1:
            label = _flat_name(names[0], names[1], int(triples[at, 2]))
        elif shape is not None and _size(shape) > 1:
            label = _element_label(shape, int(triples[at, 2]))
        lines.append(f"{a} -> {b};" if label is None else f"{a} -> {b} [label={_quote(label)}];")
    return lines


def _summary_unit(G: Any, p: str, inputs: list[str], outputs: list[str], index: dict) -> list[str]:
    """``G`` as inputs -> one box of op counts (and its callees) -> outputs with their cone sizes."""
    facts = graph_summary(G, max_cones=MAX_LISTED)
    lines = inputs[:MAX_LISTED]
    if G.n_in > MAX_LISTED:
        lines.append(f"{p}imore [label={_quote(f'... {G.n_in - MAX_LISTED} more inputs')}, shape=plaintext];")
    items = list(facts.op_counts.items())
    text = [f"{G.name}: {facts.n_ops} operations"] + [f"{name}: {n}" for name, n in items[:MAX_LISTED]]
    if len(items) > MAX_LISTED:
        text.append(f"... {len(items) - MAX_LISTED} more op kinds")
    lines.append(f"{p}ops [label={_quote(chr(10).join(text))}, shape=note, style=filled, fillcolor=whitesmoke];")
    lines += [f"{p}i{k} -> {p}ops;" for k in range(min(G.n_in, MAX_LISTED))]
    for j, (H, n) in enumerate(_callee_calls(G.tape)[:MAX_LISTED]):
        name, description = H.name, _describe(H)
        lines.append(f"{p}c{j} [label={_quote(f'calls {name} x{n}' + chr(10) + description)}, shape=box3d, "
                     "style=filled, fillcolor=thistle];")
        lines.append(f"{p}c{j} -> {p}ops;")
        lines += _calls_edge(f"{p}c{j}", H, index)
    for k, line in enumerate(outputs[:MAX_LISTED]):
        cone = facts.cones[k]
        name = _signature(G.output_names[k], G.output_shapes[k])
        lines.append(line.replace(f"label={_quote(name)}", f"label={_quote(name + chr(10) + f'cone: {cone} ops')}"))
        lines.append(f"{p}ops -> {p}o{k};")
    if G.n_out > MAX_LISTED:
        lines.append(f"{p}omore [label={_quote(f'... {G.n_out - MAX_LISTED} more outputs')}, shape=plaintext];")
    return lines


def _calls_edge(a: str, callee: Any, index: dict) -> list[str]:
    """A dashed edge from node ``a`` to the cluster of ``callee`` (to its first node), if it is drawn."""
    c = index.get(id(callee))
    head = _first_node(callee)
    if c is None or head is None:  # not drawn (past MAX_FUNCTIONS), or a Function without nodes
        return []
    if c == 0:
        return [f'{a} -> u0_{head} [style=dashed, label="calls"];']
    return [f'{a} -> u{c}_{head} [style=dashed, lhead=cluster_{c}, label="calls"];']


def _first_node(G: Any) -> str | None:
    if G.n_in:
        return "i0"
    if getattr(G, "structure", None) is not None:
        return "s"
    return "o0" if G.n_out else None


def _signature(name: str, shape: tuple) -> str:
    return name if not shape else f"{name}\n{tuple(int(n) for n in shape)}"


def _size(shape: tuple) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _element_label(shape: tuple, flat: int) -> str:
    return "[" + ",".join(str(int(i)) for i in np.unravel_index(flat, shape)) + "]"


def _flat_name(names: tuple, shapes: tuple, flat: int) -> str:
    """The name of scalar ``flat`` of outputs ``names`` with ``shapes`` laid end to end: ``o1[2]``."""
    for name, shape in zip(names, shapes):
        n = _size(shape)
        if flat < n:
            return name if not shape else name + _element_label(shape, flat)
        flat -= n
    return f"[{flat}]"


def _const_text(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)


def _quote(text: str) -> str:
    """``text`` as a DOT double-quoted string (backslashes, quotes and newlines escaped)."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


# ---------------------------------------------------------------- files through Graphviz


def draw(F: Any, path: Any, *, format: str | None = None, timeout: float = DOT_TIMEOUT, **to_dot_options: Any) -> str:
    """Write ``F``'s graph to ``path`` as SVG, PNG or PDF through Graphviz's ``dot`` program.

    Args:
        F: the Function to draw.
        path: the file to write (its directory must exist).
        format: ``"svg"``, ``"png"``, ``"pdf"`` or ``"dot"`` (the text of
            :func:`to_dot`, no Graphviz needed); by default the suffix of ``path``.
        timeout: seconds ``dot`` may run.
        to_dot_options: passed to :func:`to_dot` (``max_nodes``).

    Returns the path written, as a str.

    Raises:
        OptionError: no format given and ``path`` has no known suffix, or an
            unknown format; a bad ``timeout``.
        MissingToolError: the ``dot`` program is not installed (Debian:
            ``apt-get install graphviz``).
        InvalidInputError: ``dot`` failed or ran out of time (its message is
            included); ``path`` cannot be written.

    >>> import os, tempfile, symgraph as sg
    >>> x = sg.symbols("x")
    >>> path = draw(sg.Function("f", [x], [sg.sin(x)]), os.path.join(tempfile.mkdtemp(), "f.dot"))
    >>> open(path).read().startswith('digraph "f"')
    True
    """
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise OptionError(f"draw: path must be a file path (str or os.PathLike), got {path!r}")
    path = os.fspath(path)
    if format is None:
        format = os.path.splitext(path)[1].lstrip(".").lower()
        if format not in _FORMATS:
            raise OptionError(f"draw: cannot tell the format from the file name {path!r}; use a suffix "
                              f"{', '.join('.' + f for f in _FORMATS)} or pass format=")
    elif not isinstance(format, str) or format.lower() not in _FORMATS:
        raise OptionError(f"draw: format must be one of {', '.join(map(repr, _FORMATS))}, got {format!r}")
    format = format.lower()
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise OptionError(f"draw: timeout must be a positive number of seconds, got {timeout!r}")
    text = to_dot(F, **to_dot_options)
    if format == "dot":
        _write(path, text.encode())
        return path
    dot = shutil.which("dot")
    if dot is None:
        raise MissingToolError("draw: Graphviz's 'dot' program is not installed (on Debian/Ubuntu: "
                                 "apt-get install graphviz); F.to_dot() gives the DOT text without it")
    try:
        done = subprocess.run([dot, "-T" + format], input=text.encode(), capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise InvalidInputError(f"draw: Graphviz's dot ran longer than {timeout} s on {F.name}'s graph; "
                                "pass a smaller max_nodes to draw a summary") from None
    except OSError as exc:
        raise MissingToolError(f"draw: cannot run Graphviz's dot at {dot} ({exc})") from None
    if done.returncode != 0 or not done.stdout:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise InvalidInputError(f"draw: Graphviz's dot failed on {F.name}'s graph (exit {done.returncode}): "
                                + (message[0] if message else "no message"))
    _write(path, done.stdout)
    return path


def _write(path: str, data: bytes) -> None:
    try:
        with open(path, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        raise InvalidInputError(f"draw: cannot write {path}: {exc.strerror or exc}") from None


# ---------------------------------------------------------------- spy


def spy(pattern_or_matrix: Any, ax: Any = None, **kwargs: Any) -> Any:
    """Plot the nonzero positions of a sparsity pattern or matrix with matplotlib; returns the Axes.

    Args:
        pattern_or_matrix: a :class:`~symgraph.sparsity.Sparsity`, a
            :class:`~symgraph.sparse.SparseExpr` (its structural nonzeros), a
            ``scipy.sparse`` matrix (its stored entries) or a 2-D array (its
            nonzero entries; for an array of Exprs, those not the constant 0).
        ax: the matplotlib Axes to draw on (default: a new figure's).
        kwargs: passed to ``Axes.plot`` (``markersize``, ``color``, ``marker``).

    Row 0 is at the top, as in a printed matrix, and the title gives the
    shape and the number of nonzeros.  Each nonzero is one marker of one
    line (``ax.lines[0]``); above 200,000 nonzeros a density image is
    drawn instead (``ax.images[0]``), so a huge pattern stays quick.

    Raises:
        MissingToolError: matplotlib is not installed (``pip install "symgraph[plot]"``).
        InvalidInputError: an object that is none of the above.
        ShapeError: an array that is not 2-D.

    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import symgraph as sg
    >>> x = sg.symbols("x", 3)
    >>> ax = spy(sg.hessian(x[0] * x[1] + x[2] ** 2, x))
    >>> len(ax.lines[0].get_xdata()), ax.get_title()
    (3, '3 x 3, nnz = 3')
    """
    rows, cols, shape = _positions(pattern_or_matrix)
    try:
        import matplotlib
    except ImportError:
        raise MissingToolError("spy needs matplotlib: pip install \"symgraph[plot]\" "
                                 "(or pip install matplotlib)") from None
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots()
    n_rows, n_cols = shape
    if len(rows) > SPY_MARKERS:
        bins = (min(n_rows, 1000) or 1, min(n_cols, 1000) or 1)
        density, _, _ = np.histogram2d(rows, cols, bins=bins, range=[[0, max(n_rows, 1)], [0, max(n_cols, 1)]])
        ax.imshow(density > 0, cmap=kwargs.get("cmap", "Greys"), interpolation="nearest", aspect="equal",
                  extent=(-0.5, n_cols - 0.5, n_rows - 0.5, -0.5))
    else:
        options = {"marker": "s", "linestyle": "none", "color": "black",
                   "markersize": max(0.5, min(6.0, 300.0 / max(n_rows, n_cols, 1)))}
        options.update(kwargs)
        ax.plot(cols, rows, **options)
    ax.set_xlim(-0.5, n_cols - 0.5)
    ax.set_ylim(n_rows - 0.5, -0.5)
    ax.set_aspect("equal" if n_rows and n_cols else "auto")
    ax.xaxis.tick_top()
    ax.set_title(f"{n_rows} x {n_cols}, nnz = {len(rows)}")
    del matplotlib
    return ax


def _positions(value: Any) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """``(rows, cols, shape)`` of the nonzeros of anything :func:`spy` accepts."""
    from .sparse import SparseExpr
    from .sparsity import Sparsity

    if isinstance(value, (Sparsity, SparseExpr)):
        return np.asarray(value.rows), np.asarray(value.cols), tuple(value.shape)
    if hasattr(value, "tocoo") and hasattr(value, "nnz"):  # scipy.sparse
        coo = value.tocoo()
        return np.asarray(coo.row), np.asarray(coo.col), tuple(int(n) for n in coo.shape)
    if isinstance(value, (np.ndarray, list, tuple)):
        arr = np.asarray(value)
        if arr.ndim != 2:
            raise ShapeError(f"spy: an array must be 2-D, got shape {arr.shape}")
        if arr.dtype == object:
            from .expr import CONST, Expr

            nonzero = np.array([not (isinstance(v, Expr) and v.op is CONST and v.data == 0)
                                and not (not isinstance(v, Expr) and v == 0) for v in arr.reshape(-1)],
                               dtype=bool).reshape(arr.shape)
        else:
            nonzero = arr != 0
        rows, cols = np.nonzero(nonzero)
        return rows, cols, arr.shape
    raise InvalidInputError(f"spy: expected a Sparsity, SparseExpr, scipy.sparse matrix or 2-D array, "
                            f"got {type(value).__name__}")
