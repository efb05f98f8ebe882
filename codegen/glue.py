"""C for copies between arrays: call operands into the argument block, call results into outputs.

A call's operands are copied into its argument block ``cw`` before the
call, and its results into the outputs after it, one scalar at a time in the
Tape.  Emitted one statement per scalar, the C source (and gcc's time) would
grow with the number of instances of a map: at 1,000 bundle-adjustment
observations gathered by camera and point index, gcc -O2 did not finish in
240 s.  Here the copies of one block (same target array) are planned by a
small cost rule, decided per *stretch* of copies whose destinations are
consecutive and whose source is one array (an input ``arg[k]``, the work
array ``w``, the argument block ``cw``) or the constants:

* a *run* advances its source index by a fixed stride (``x[off:off+size]``
  in order, every other result, a repeated constant);
* a stretch of at most :data:`MAX_LOOPS` runs, or of fewer than
  :data:`MIN_TABLE` copies, is regular: a run of at least :data:`MIN_RUN`
  copies is a loop, a shorter one single statements;
* a longer, irregular stretch is a ``static const`` index table read by one
  loop, ``dst[d0 + t] = src[g[t]]`` (``int`` entries when they fit, else
  ``long long``; constants: a table of ``double`` values).  When its runs all
  have one stride and lengths that are multiples of one row length ``L``
  (``cams[cam_idx]``: rows of 11 consecutive elements), the table holds one
  start per row, ``dst[d0 + L*r + t] = src[g[r] + stride*t]``, so a gather of
  rows costs one number per row.  Runs of at least :data:`LONG_RUN` inside it
  stay loops of their own.  A table in arithmetic progression (row starts
  ``340000, 340030, ...``: rows of results spaced wider than they are long)
  is no table: its entry is ``a + b * r`` (:func:`affine_step`).

If a block would still need more than :data:`BUDGET` statements and loops
(sources interleaved instance by instance, results scattered into a sparse
output), its smallest pieces go into one table per source: a scatter table
``dst[g[t]] = src[s0 + t]`` when their sources are consecutive, a gather
table when their destinations are, otherwise a table of ``{dst, src}``
pairs.  So the C of a block has a bounded number of statements however many
copies it has; only the tables' data grows, one number per row or scalar.
The same copies always give the same C.

In a JIT build the top-level code (``arg`` is the Function's own inputs)
passes a :class:`codegen.stores.Tables` collector: a table of at least
:data:`codegen.stores.RUNTIME_TABLE_MIN` entries is then not written into
the C but read through a pointer past the inputs,
``const int *g = (const int *)arg[N_IN + k];``, and kept as an array that
the runtime passes in; so the C source and gcc's time do not grow with the
number of instances at all.  Callee bodies (small) and exported C keep
``static const`` tables.

>>> import symgraph as sg
>>> x = sg.symbols("x")
>>> F = sg.Function("sq", [x], [x * x])
>>> len(F.map(100000).c_code().splitlines()) == len(F.map(10).c_code().splitlines())   # the same lines
True
>>> rows = np.array([1, 0, 2, 1, 0])  # x.reshape(-1, 3)[rows], flat: 5 runs of 3
>>> src = (3 * rows[:, None] + np.arange(3)).reshape(-1)
>>> print("\\n".join(copy_lines("cw", np.arange(15), np.zeros(15, int), src, ["x"], [])))
  { static const int g[5] = {3, 0, 6, 3, 0};
    for (long r = 0; r < 5; ++r) for (long t = 0; t < 3; ++t) cw[0 + 3 * r + t] = x[g[r] + 1 * t]; }
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from symgraph.sparse import sorted_unique
from symgraph.tape import CALL, RESULT

from .stores import Tables, affine, number, progression_arrays

__all__ = ["is_glue", "glue_lines", "affine_step", "operand_copies", "operand_table_copies", "parse_operands", "pointer_run", "copy_lines", "runs",
           "MIN_RUN", "MIN_TABLE", "MAX_LOOPS", "LONG_RUN", "BUDGET"]

MIN_RUN = 4  # shorter runs are written out statement by statement
MIN_TABLE = 8  # copies in a stretch from which it may be a table
MAX_LOOPS = 4  # runs in a stretch up to which it stays loops and statements (a regular stretch)
LONG_RUN = 64  # a run this long inside an irregular stretch is a loop of its own, not table entries
BUDGET = 32  # statements and loops of one block at most; beyond, the smallest pieces go into tables


def is_glue(tape: Any) -> bool:
    """Whether ``tape`` is one call plus result instructions only (and has more than a few of them)."""
    n = tape.n_instructions
    if tape.n_calls != 1 or n < 2 * MIN_RUN:
        return False
    codes = tape.opcodes
    return int(np.count_nonzero(codes == RESULT.code)) == n - 1 and int(codes[0]) == CALL.code


def runs(dst: np.ndarray, src: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Split copies ``dst[t] <- src[t]`` into runs ``(dst0, src0, stride, length)``.

    Within a run the destination advances by one and the source by
    ``stride``; the input order is kept.

    >>> runs(np.array([0, 1, 2, 5]), np.array([3, 5, 7, 0]))
    [(0, 3, 2, 3), (5, 0, 1, 1)]
    """
    d, s = np.asarray(dst, dtype=np.int64), np.asarray(src, dtype=np.int64)
    if not len(d):
        return []
    ds = np.diff(s)
    start, count = progression_arrays(np.diff(d) == 1, ds[:, None])
    stride = np.where(count > 1, np.append(ds, 1)[start], 1)
    return list(zip(d[start].tolist(), s[start].tolist(), stride.tolist(), count.tolist()))


# ---------------------------------------------------------------- planning


@dataclass(frozen=True)
class _Piece:
    """Copies ``first .. first+count-1`` (of one source's copies, sorted by destination) and how to emit them.

    ``kind`` is ``"run"`` (``stride``: the source's step), ``"rows"`` (a table
    of row starts, rows of ``row`` copies with source step ``stride``) or
    ``"table"`` (one source index per copy).
    """

    kind: str
    first: int
    count: int
    stride: int = 1
    row: int = 1

    def cost(self) -> int:
        """Statements and loops it takes (a table counts as one)."""
        return self.count if self.kind == "run" and self.count < MIN_RUN else 1


def _pieces(d: np.ndarray, s: np.ndarray, constant: bool) -> list[_Piece]:
    """Plan the copies ``d[t] <- s[t]`` of one source (``d`` distinct and sorted) into pieces, in order."""
    n = len(d)
    if n == 0:
        return []
    ds = np.diff(s)
    if n > 1 and int(d[-1]) - int(d[0]) == n - 1 and (not constant or ds[0] == 0) and np.all(ds == ds[0]):
        return [_Piece("run", 0, n, int(ds[0]))]  # one run (what the general plan below finds, found faster)
    ok = np.diff(d) == 1
    start, length = progression_arrays(ok & (ds == 0) if constant else ok, ds[:, None])
    last = np.minimum(start, max(n - 2, 0))
    stride = np.where(length > 1, ds[last] if n > 1 else 0, 0)
    # stretches: consecutive destinations; a run never spans two
    end = start + length - 1
    joined = (end < n - 1) & (ok[np.minimum(end, max(n - 2, 0))] if n > 1 else False)
    stretch = np.concatenate([[0], np.cumsum(~joined[:-1])])
    bounds = np.flatnonzero(np.diff(np.concatenate([[-1], stretch, [stretch[-1] + 1]])))
    pieces: list[_Piece] = []
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        total = int(start[hi - 1] + length[hi - 1] - start[lo])
        if hi - lo <= MAX_LOOPS or total < MIN_TABLE:
            pieces.extend(_runs(start[lo:hi], length[lo:hi], stride[lo:hi]))
        else:
            pieces.extend(_stretch(start[lo:hi], length[lo:hi], stride[lo:hi], constant))
    return pieces


def _runs(starts: np.ndarray, lengths: np.ndarray, strides: np.ndarray) -> list[_Piece]:
    """One run piece per run."""
    return [_Piece("run", a, n, d) for a, n, d in zip(starts.tolist(), lengths.tolist(), strides.tolist())]


def _stretch(starts: np.ndarray, lengths: np.ndarray, strides: np.ndarray, constant: bool) -> list[_Piece]:
    """The pieces of an irregular stretch: a run of at least :data:`LONG_RUN` alone, each group of shorter
    runs between them a table when it has more than :data:`MAX_LOOPS` runs and :data:`MIN_TABLE` copies.

    Groups are found with numpy, so a stretch of a million short runs costs no Python loop over them.

    >>> _stretch(np.array([0, 2, 4, 6, 8, 10]), np.array([2, 2, 2, 2, 2, 70]), np.array([1, 1, 1, 1, 1, 1]), False)
    [_Piece(kind='rows', first=0, count=10, stride=1, row=2), _Piece(kind='run', first=10, count=70, stride=1, row=1)]
    """
    long = lengths >= LONG_RUN
    cuts = np.concatenate([[0], np.flatnonzero(long[1:] != long[:-1]) + 1, [len(lengths)]]).tolist()
    pieces: list[_Piece] = []
    for r, q in zip(cuts[:-1], cuts[1:]):
        if long[r] or q - r <= MAX_LOOPS or int(starts[q - 1] + lengths[q - 1] - starts[r]) < MIN_TABLE:
            pieces.extend(_runs(starts[r:q], lengths[r:q], strides[r:q]))
        else:
            pieces.append(_table(starts[r:q], lengths[r:q], strides[r:q], constant))
    return pieces


def _table(starts: np.ndarray, lengths: np.ndarray, strides: np.ndarray, constant: bool) -> _Piece:
    """A table piece over runs: rows when all runs are multiples of one row length with one stride."""
    first, count = int(starts[0]), int(starts[-1] + lengths[-1] - starts[0])
    row = int(lengths.min())
    steps = sorted_unique(strides[lengths > 1])
    if not constant and row > 1 and len(steps) == 1 and bool(np.all(lengths % row == 0)):
        return _Piece("rows", first, count, int(steps[0]), row)
    return _Piece("table", first, count)


def _budgeted(plans: list[list[_Piece]]) -> tuple[list[list[_Piece]], list[np.ndarray]]:
    """Move pieces into leftover sets until the block fits :data:`BUDGET`: all short ones, then the smallest.

    Pieces shorter than :data:`LONG_RUN` all go (so how many stay does not
    hang on how many small pieces there happen to be), then longer ones,
    smallest first, until the block fits.

    Returns the pieces kept per source and, per source, the copy numbers
    (into its sorted copies) that go into its leftover table.
    """
    cost = sum(p.cost() for plan in plans for p in plan)
    moved: list[set] = [set() for _ in plans]
    if cost > BUDGET:  # first every piece shorter than a long run, then the smallest others, until it fits
        order = sorted((p.count if p.count >= LONG_RUN else 0, c, p.first) for c, plan in enumerate(plans) for p in plan)
        short = sum(p.count < LONG_RUN for plan in plans for p in plan)
        index = {(c, p.first): p for c, plan in enumerate(plans) for p in plan}
        tables = 0
        for q, (_, c, first) in enumerate(order):
            if q >= short and cost + tables <= BUDGET:
                break
            if not moved[c]:
                tables += 1
            moved[c].add(first)
            cost -= index[(c, first)].cost()
    kept = [[p for p in plan if p.first not in moved[c]] for c, plan in enumerate(plans)]
    left = [np.concatenate([np.arange(p.first, p.first + p.count) for p in plan if p.first in moved[c]])
            if moved[c] else np.zeros(0, dtype=np.int64) for c, plan in enumerate(plans)]
    return kept, left


# ---------------------------------------------------------------- emission


def _ints(values: np.ndarray) -> tuple[str, str]:
    """The C type (``int`` when every value fits 32 bits) and the initializer text of an index table."""
    values = np.asarray(values, dtype=np.int64)
    fits = not len(values) or (int(values.min()) >= -(2 ** 31) and int(values.max()) < 2 ** 31)
    return ("int" if fits else "long long"), "{" + ", ".join(map(str, values.tolist())) + "}"


def _static(text: str) -> str:
    """A constant's C text as a static initializer (tcc refuses ``-INFINITY`` there)."""
    return "(-1.0 / 0.0)" if text == "(-INFINITY)" else text


def affine_step(values: np.ndarray) -> int | None:
    """The step ``b`` when ``values[t] == values[0] + b * t`` for every ``t``, else None.

    >>> affine_step(np.array([340000, 340030, 340060])), affine_step(np.array([1, 2, 4]))
    (30, None)
    """
    values = np.asarray(values, dtype=np.int64)
    if len(values) < 2:
        return 0
    step = values[1] - values[0]
    return int(step) if np.all(np.diff(values) == step) else None


def _lookup(name: str, values: np.ndarray, var: str, tables: Tables | None, indent: str) -> tuple[str | None, str]:
    """How a loop reads the index table ``values`` at ``var``: the line opening its block (None when there
    is no table) and the C expression of the entry.

    An affine table is no table: its entry is ``a + b * var``.  A table that
    ``tables`` takes is read through a pointer (run-time data), any other is
    a ``static const`` array in the C.
    """
    values = np.asarray(values, dtype=np.int64)
    step = affine_step(values)
    if step is not None:
        return None, affine(int(values[0]), (step, var))
    if tables is not None and tables.takes(len(values)):
        return f"{indent}{{ {tables.pointer(name, values)}", f"{name}[{var}]"
    ctype, data = _ints(values)
    return f"{indent}{{ static const {ctype} {name}[{len(values)}] = {data};", f"{name}[{var}]"


def _block(opener: str | None, loop: str, indent: str) -> list[str]:
    """The loop statement ``loop``, inside the block that ``opener`` opens (if any)."""
    return [f"{indent}{loop}"] if opener is None else [opener, f"{indent}  {loop} }}"]


def _values(texts: list[str], tables: Tables | None, indent: str, name: str = "g") -> str:
    """The line opening a block with a table of the constants ``texts``: static, or run-time data."""
    if tables is not None and tables.takes(len(texts)):
        return f"{indent}{{ {tables.pointer(name, np.array([number(v) for v in texts], dtype=np.float64))}"
    return f"{indent}{{ static const double {name}[{len(texts)}] = {{{', '.join(_static(v) for v in texts)}}};"


def copy_lines(target: str, dst: np.ndarray, source: np.ndarray, index: np.ndarray,
               arrays: list[str], constants: list[str], indent: str = "  ", tables: Tables | None = None) -> list[str]:
    """C statements doing ``target[dst[t]] = SOURCE_t`` for every ``t`` (see the module docstring).

    ``source[t] < len(arrays)`` reads ``arrays[source[t]][index[t]]`` (C array
    expressions such as ``"arg[0]"`` or ``"w"``); ``source[t] == len(arrays)``
    stores the constant whose C text is ``constants[index[t]]``.  The
    destinations must be distinct.  ``tables``, where given, takes the large
    tables as run-time data (top-level code of a JIT build).

    >>> copy_lines("cw", np.arange(5), np.array([0, 0, 0, 0, 1]), np.array([0, 1, 2, 3, 0]), ["arg[0]"], ["2.5"], "")
    ['for (long t = 0; t < 4; ++t) cw[0 + t] = arg[0][0 + 1 * t];', 'cw[4] = 2.5;']
    """
    dst, source, index = (np.asarray(a, dtype=np.int64).reshape(-1) for a in (dst, source, index))
    if not len(dst):
        return []
    if source[0] == source[-1] and source.min() == source.max():  # one source: by destination
        if not np.all(dst[1:] > dst[:-1]):
            order = np.argsort(dst, kind="stable")
            dst, index = dst[order], index[order]
        parts = [(int(source[0]), dst, index)]
    else:
        step = np.diff(source)
        if np.any((step < 0) | ((step == 0) & (np.diff(dst) < 0))):  # not yet by source, then destination
            order = np.lexsort((dst, source))
            dst, source, index = dst[order], source[order], index[order]
            step = np.diff(source)
        cuts = np.concatenate([[0], np.flatnonzero(step) + 1, [len(source)]]).tolist()
        ids = source[cuts[:-1]].tolist()
        parts = [(c, dst[lo:hi], index[lo:hi]) for c, lo, hi in zip(ids, cuts[:-1], cuts[1:])]
    plans = [_pieces(d, s, c == len(arrays)) for c, d, s in parts]
    kept, left = _budgeted(plans)
    lines: list[str] = []
    for (c, d, s), plan, rest in zip(parts, kept, left):
        if c == len(arrays):
            for p in plan:
                lines += _constant_piece(target, p, d, s, constants, indent, tables)
            lines += _constant_leftovers(target, d[rest], [constants[v] for v in s[rest].tolist()], indent, tables)
        else:
            for p in plan:
                lines += _array_piece(target, p, d, s, arrays[c], indent, tables)
            lines += _array_leftovers(target, d[rest], s[rest], arrays[c], indent, tables)
    return lines


def _array_piece(target: str, p: _Piece, d: np.ndarray, s: np.ndarray, array: str, indent: str,
                 tables: Tables | None = None) -> list[str]:
    d0, s0 = int(d[p.first]), int(s[p.first])
    if p.kind == "run":
        if p.count >= MIN_RUN:
            return [f"{indent}for (long t = 0; t < {p.count}; ++t) "
                    f"{target}[{d0} + t] = {array}[{s0} + {p.stride} * t];"]
        return [f"{indent}{target}[{d0 + q}] = {array}[{s0 + p.stride * q}];" for q in range(p.count)]
    if p.kind == "rows":
        rows = p.count // p.row
        opener, start = _lookup("g", s[p.first:p.first + p.count:p.row], "r", tables, indent)
        return _block(opener, f"for (long r = 0; r < {rows}; ++r) for (long t = 0; t < {p.row}; ++t) "
                              f"{target}[{d0} + {p.row} * r + t] = {array}[{start} + {p.stride} * t];", indent)
    opener, at = _lookup("g", s[p.first:p.first + p.count], "t", tables, indent)
    return _block(opener, f"for (long t = 0; t < {p.count}; ++t) {target}[{d0} + t] = {array}[{at}];", indent)


def _constant_piece(target: str, p: _Piece, d: np.ndarray, s: np.ndarray, constants: list[str],
                    indent: str, tables: Tables | None = None) -> list[str]:
    d0 = int(d[p.first])
    if p.kind == "run":
        value = constants[int(s[p.first])]
        if p.count >= MIN_RUN:
            return [f"{indent}for (long t = 0; t < {p.count}; ++t) {target}[{d0} + t] = {value};"]
        return [f"{indent}{target}[{d0 + q}] = {value};" for q in range(p.count)]
    opener = _values([constants[v] for v in s[p.first:p.first + p.count].tolist()], tables, indent)
    return [opener, f"{indent}  for (long t = 0; t < {p.count}; ++t) {target}[{d0} + t] = g[t]; }}"]


def _array_leftovers(target: str, d: np.ndarray, s: np.ndarray, array: str, indent: str,
                     tables: Tables | None = None) -> list[str]:
    """One table for scattered copies of one source: scatter, gather or pairs, whichever fits."""
    if not len(d):
        return []
    n = len(d)
    by_source = np.lexsort((d, s))
    if np.all(np.diff(s[by_source]) == 1):  # consecutive sources: a scatter
        opener, at = _lookup("g", d[by_source], "t", tables, indent)
        return _block(opener, f"for (long t = 0; t < {n}; ++t) {target}[{at}] = {array}[{int(s[by_source[0]])} + t];",
                      indent)
    if np.all(np.diff(d) == 1):
        opener, at = _lookup("g", s, "t", tables, indent)
        return _block(opener, f"for (long t = 0; t < {n}; ++t) {target}[{int(d[0])} + t] = {array}[{at}];", indent)
    b_d, b_s = affine_step(d), affine_step(s)
    if b_d is not None and b_s is not None:  # both in arithmetic progression: no table
        return [f"{indent}for (long t = 0; t < {n}; ++t) {target}[{affine(int(d[0]), (b_d, 't'))}] = "
                f"{array}[{affine(int(s[0]), (b_s, 't'))}];"]
    pairs = np.stack([d, s], axis=1)
    if tables is not None and tables.takes(2 * n):
        opener = f"{indent}{{ {tables.pointer('g', pairs)}"
    else:
        ctype, _ = _ints(pairs.reshape(-1))
        data = "{" + ", ".join(f"{{{a}, {b}}}" for a, b in zip(d.tolist(), s.tolist())) + "}"
        opener = f"{indent}{{ static const {ctype} g[{n}][2] = {data};"
    return [opener, f"{indent}  for (long t = 0; t < {n}; ++t) {target}[g[t][0]] = {array}[g[t][1]]; }}"]


def _constant_leftovers(target: str, d: np.ndarray, values: list[str], indent: str,
                        tables: Tables | None = None) -> list[str]:
    if not len(d):
        return []
    n = len(d)
    opener, at = _lookup("g", d, "t", tables, indent)
    if len(set(values)) == 1:  # one value: no table of values
        return _block(opener, f"for (long t = 0; t < {n}; ++t) {target}[{at}] = {values[0]};", indent)
    held = _values(values, tables, indent, "h")
    if opener is None:
        return [held, f"{indent}  for (long t = 0; t < {n}; ++t) {target}[{at}] = h[t]; }}"]
    return [opener, "  " + held.replace("{ ", "", 1),
            f"{indent}  for (long t = 0; t < {n}; ++t) {target}[{at}] = h[t]; }}"]


# ---------------------------------------------------------------- glue Tapes and call sites


def call_statements(info: Any, pointers: Sequence[str | None] | None = None) -> list[str]:
    """The call of a callee whose operands, results and work area lie in ``cw`` (``info``: its ``_Callee``).

    ``pointers[g]``, where given, is where input ``g`` is read instead of
    its place in ``cw`` (an input passed by pointer, see :func:`contiguous_run`).
    """
    given = pointers or [None] * len(info.in_offsets)
    ins = ", ".join(p if p is not None else f"cw + {o}" for o, p in zip(info.in_offsets, given)) or "0"
    outs = ", ".join(f"cw + {info.n_in + o}" for o in info.out_offsets) or "0"
    return [f"    const double *const ca[{max(1, len(info.in_offsets))}] = {{{ins}}};",
            f"    double *const cr[{max(1, len(info.out_offsets))}] = {{{outs}}};",
            f"    {info.name}(ca, cr, cw + {info.n_in + info.n_out});"]


def call_operands(tape: Any, i: int) -> np.ndarray:
    """The operand slots of call instruction ``i`` of ``tape`` (an int64 array; :meth:`Tape.call` as a tuple).

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> F = sg.Function("f", [x], [x + 1])
    >>> call_operands(sg.Function("g", [x], [F(2 * x)]).tape, 1).tolist()
    [2]
    """
    row = int(tape.immediates[i])
    return np.asarray(tape.call_operands[tape.call_offsets[row]:tape.call_offsets[row + 1]], dtype=np.int64)


def _input_sources(tape: Any, c_constant: Any) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Where each input and constant slot is read from, as :func:`copy_lines` takes it.

    ``source[slot]``: the input ``k`` (array ``arg[k]``), or ``len(arrays)``
    for a constant; ``element[slot]``: its element, or its constant's number
    among ``constants`` (C texts, constants that print alike are one).
    """
    n_in, n_inputs = tape.n_input_scalars, len(tape.input_slots)
    source = np.full(n_in + len(tape.constants), n_inputs, dtype=np.int64)
    element = np.zeros(len(source), dtype=np.int64)
    for k, arr in enumerate(tape.input_slots):
        flat = np.asarray(arr, dtype=np.int64).reshape(-1)
        source[flat] = k
        element[flat] = np.arange(len(flat))
    text_id: dict[str, int] = {}
    element[n_in:] = [text_id.setdefault(c_constant(v), len(text_id)) for v in tape.constants.tolist()]
    return source, element, [f"arg[{k}]" for k in range(n_inputs)], list(text_id)


def glue_lines(tape: Any, output_slots: Sequence[np.ndarray], info: Any, c_constant: Any,
               tables: Tables | None = None) -> list[str]:
    """The statements of a glue Tape's body: operands into ``w``, the call, results to ``res``.

    ``output_slots[k]``: the slot of each scalar of output ``k`` in C order;
    ``info`` is the callee's ``_Callee`` record (name, operand and result
    layout); ``c_constant`` spells a constant; ``tables`` (top-level code of a JIT
    build) takes the large tables as run-time data.
    """
    slots = call_operands(tape, 0)
    first = tape.first_instruction_slot
    source, element, arrays, constants = _input_sources(tape, c_constant)
    lines = ["  double *const cw = w;"]
    lines += copy_lines("cw", np.arange(len(slots)), source[slots], element[slots], arrays, constants, tables=tables)
    lines += ["  {", *call_statements(info), "  }"]
    for k, out in enumerate(output_slots):
        out = np.asarray(out, dtype=np.int64).reshape(-1)
        j = np.flatnonzero(out >= first)
        if len(j):
            lines += copy_lines(f"res[{k}]", j, np.zeros(len(j), dtype=np.int64),
                                info.n_in + tape.immediates[out[j] - first], ["cw"], [], tables=tables)
    return lines


def is_multi_glue(tape: Any) -> bool:
    """Whether ``tape`` is calls and their results only, every call on inputs and constants (assembled callbacks)."""
    codes = tape.opcodes
    if tape.n_calls < 2 or tape.n_instructions < 2 * MIN_RUN:
        return False
    if not np.all((codes == CALL.code) | (codes == RESULT.code)):
        return False
    return bool(np.all(np.asarray(tape.call_operands) < tape.first_instruction_slot))


def multi_glue_lines(tape: Any, output_slots: Sequence[np.ndarray], infos: dict, c_constant: Any,
                     tables: Tables | None = None) -> list[str]:
    """The statements of a Tape of several calls on inputs and constants: per call, operands into ``w``, the
    call, and its results into the outputs, all planned by :func:`copy_lines` (no statement per scalar).

    ``output_slots[k]``: the slot of each scalar of output ``k`` in C order; ``infos``: callee -> ``_Callee``;
    ``tables``: as :func:`glue_lines` takes it.
    """
    first = tape.first_instruction_slot
    source, element, arrays, constants = _input_sources(tape, c_constant)
    is_result = tape.opcodes == RESULT.code
    owner = tape.operands[:, 0] - first  # of a result: its call
    stores = []  # per output: its computed positions and their results' numbers, sorted by the call
    for out in output_slots:
        out = np.asarray(out, dtype=np.int64).reshape(-1)
        if len(out) and out.min() >= first:
            j, q = np.arange(len(out)), out - first  # the result instruction
        else:
            j = np.flatnonzero(out >= first)
            q = out[j] - first
        if not np.all(is_result[q]):
            j = j[is_result[q]]
            q = out[j] - first
        call = owner[q]
        if np.any(np.diff(call) < 0):
            order = np.argsort(call, kind="stable")
            j, q, call = j[order], q[order], call[order]
        stores.append((j, tape.immediates[q], call))
    lines = ["  double *const cw = w;"]
    for i in np.flatnonzero(tape.opcodes == CALL.code).tolist():
        slots = call_operands(tape, i)
        info = infos[tape.callee(i)]
        lines += copy_lines("cw", np.arange(len(slots)), source[slots], element[slots], arrays, constants,
                            tables=tables)
        lines += ["  {", *call_statements(info), "  }"]
        for k, (j, picked, call) in enumerate(stores):
            lo, hi = np.searchsorted(call, [i, i + 1])
            if hi > lo:
                lines += copy_lines(f"res[{k}]", j[lo:hi], np.zeros(hi - lo, dtype=np.int64),
                                    info.n_in + picked[lo:hi], ["cw"], [], tables=tables)
    return lines


def result_copies(stores: list[tuple[int, int, int]], array: str, indent: str = "  ",
                  tables: Tables | None = None) -> list[str]:
    """``res[k][j] = array[m]`` for every ``(k, j, m)`` in ``stores``, planned per output ``k``.

    >>> result_copies([(0, 2, 7), (0, 1, 8), (0, 0, 9)], "w", "")
    ['res[0][0] = w[9];', 'res[0][1] = w[8];', 'res[0][2] = w[7];']
    """
    if not stores:
        return []
    table = np.asarray(stores, dtype=np.int64)
    return result_table_copies(table[:, 0], table[:, 1], table[:, 2], array, indent, tables)


def result_table_copies(k: np.ndarray, j: np.ndarray, m: np.ndarray, array: str, indent: str = "  ",
                        tables: Tables | None = None) -> list[str]:
    """:func:`result_copies` of the stores ``res[k[t]][j[t]] = array[m[t]]`` given as int arrays.

    >>> result_table_copies(np.array([1, 0]), np.array([0, 0]), np.array([4, 3]), "w", "")
    ['res[0][0] = w[3];', 'res[1][0] = w[4];']
    """
    k, j, m = (np.asarray(a, dtype=np.int64).reshape(-1) for a in (k, j, m))
    lines = []
    for out in np.unique(k).tolist():
        mine = k == out
        lines += copy_lines(f"res[{out}]", j[mine], np.zeros(int(np.count_nonzero(mine)), dtype=np.int64), m[mine],
                            [array], [], indent, tables)
    return lines


_ARRAY = re.compile(r"^(arg\[\d+\]|w|e\d+_\d+)\[(\d+)\]$")  # inputs, work slots, rerolled loops' spilled values
_CONSTANT = re.compile(r"^(\(?-?(\d[\d.eE+-]*|INFINITY)\)?|NAN)$")
MIN_POINTER = 4  # an operand group at least this long, contiguous in one array, is passed by pointer


def contiguous_run(texts: Sequence[str]) -> str | None:
    """``"arg[k] + j0"`` (or ``"w + j0"``) when ``texts`` are ``arg[k][j0], arg[k][j0 + 1], ...``, else None.

    >>> contiguous_run(["arg[1][3]", "arg[1][4]", "arg[1][5]"]), contiguous_run(["w[2]", "w[4]"])
    ('arg[1] + 3', None)
    """
    if not texts:
        return None
    names = sorted({m.group(1) for m in map(_POINTABLE.match, texts) if m is not None})
    pointable = len(names)
    array, index, _ = parse_operands(texts, names)
    return pointer_run(array, index, names, pointable)


_POINTABLE = re.compile(r"^(arg\[\d+\]|w)\[(\d+)\]$")

PASSED, CONSTANT, PLAIN = -1, -2, -3  # operand kinds of :func:`operand_table_copies` besides array numbers


def pointer_run(array: np.ndarray, index: np.ndarray, names: Sequence[str], pointable: int) -> str | None:
    """``"NAME + j0"`` when the operands ``names[array[t]][index[t]]`` are ``j0, j0 + 1, ...`` of one array
    numbered below ``pointable`` (one a pointer may point into), else None.

    >>> pointer_run(np.array([1, 1, 1]), np.array([3, 4, 5]), ["arg[0]", "w"], 2)
    'w + 3'
    """
    if not len(array):
        return None
    a = int(array[0])
    if not 0 <= a < pointable or np.any(array != a) or np.any(np.diff(index) != 1):
        return None
    return f"{names[a]} + {int(index[0])}"


def parse_operands(texts: Sequence[str | None], names: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Operand texts as :func:`operand_table_copies` takes them: ``(array, index, constants)``.

    Array names not in ``names`` are appended to it; constants are numbered by first appearance.

    >>> names = ["w"]
    >>> [a.tolist() for a in parse_operands(["w[3]", "e7_1[2]", "2.0", "v4", None][:4], names)[:2]], names
    ([[0, 1, -2, -3], [3, 2, 0, 0]], ['w', 'e7_1'])
    """
    number = {name: a for a, name in enumerate(names)}
    constants: dict[str, int] = {}
    array = np.full(len(texts), PLAIN, dtype=np.int64)
    index = np.zeros(len(texts), dtype=np.int64)
    for t, text in enumerate(texts):
        if text is None:  # passed by pointer, not copied
            array[t] = PASSED
            continue
        m = _ARRAY.match(text)
        if m is not None:
            if m.group(1) not in number:
                number[m.group(1)] = len(names)
                names.append(m.group(1))
            array[t], index[t] = number[m.group(1)], int(m.group(2))
        elif _CONSTANT.match(text):
            array[t], index[t] = CONSTANT, constants.setdefault(text, len(constants))
    return array, index, list(constants)


def operand_copies(target: str, texts: list[str | None], indent: str = "    ",
                   tables: Tables | None = None) -> list[str]:
    """``target[t] = texts[t]`` for every operand of a call site, planned by :func:`copy_lines`.

    Input elements ``arg[k][j]``, work slots ``w[j]`` and constants become
    loops and tables; anything else (a local ``vS``) a statement of its own;
    an operand ``None`` is passed by pointer and not copied.

    >>> operand_copies("cw", ["arg[0][0]", "arg[0][1]", "arg[0][2]", "arg[0][3]", "v9"], "")
    ['for (long t = 0; t < 4; ++t) cw[0 + t] = arg[0][0 + 1 * t];', 'cw[4] = v9;']
    """
    names: list[str] = []
    array, index, constants = parse_operands(texts, names)
    plain = {t: texts[t] for t in np.flatnonzero(array == PLAIN).tolist()}
    return operand_table_copies(target, array, index, names, constants, plain, indent, tables)


def operand_table_copies(target: str, array: np.ndarray, index: np.ndarray, names: Sequence[str],
                         constants: Sequence[str], plain: dict, indent: str = "    ",
                         tables: Tables | None = None) -> list[str]:
    """:func:`operand_copies` of operands given as arrays: ``target[t] = names[array[t]][index[t]]``.

    ``array[t]`` may also be :data:`CONSTANT` (the constant ``constants[index[t]]``;
    equal texts must have equal numbers), :data:`PLAIN` (the C text ``plain[t]``,
    stored by a statement of its own after the others) or :data:`PASSED` (not
    copied).  The arrays are numbered in the order the operands first read
    them, as :func:`operand_copies` numbers them.

    >>> operand_table_copies("cw", np.array([-3, 0, 0, 0, 0]), np.array([0, 5, 6, 7, 8]), ["w"], [], {0: "v1"}, "")
    ['for (long t = 0; t < 4; ++t) cw[1 + t] = w[5 + 1 * t];', 'cw[0] = v1;']
    """
    array, index = np.asarray(array, dtype=np.int64), np.asarray(index, dtype=np.int64)
    lines: list[str] = []
    read = array >= 0
    copied = np.flatnonzero(read | (array == CONSTANT))
    if len(copied):
        ids, at = np.unique(array[read], return_index=True)
        order = ids[np.argsort(at)]  # by first reader
        rank = np.zeros(len(names) + 1, dtype=np.int64)
        rank[order] = np.arange(len(order))
        source = np.where(array[copied] == CONSTANT, len(order), rank[np.maximum(array[copied], 0)])
        lines += copy_lines(target, copied, source, index[copied], [names[a] for a in order.tolist()],
                            list(constants), indent, tables)
    return lines + [f"{indent}{target}[{t}] = {plain[t]};" for t in np.flatnonzero(array == PLAIN).tolist()]
