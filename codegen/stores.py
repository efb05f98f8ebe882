"""Output stores as loops and tables: C whose size and compile time do not grow with repeated entries.

An output entry takes its value from a *source*: a computed local ``vS``, a
constant, or an input element ``arg[i][m]``.  Writing one statement per entry
made a Function with 10^5 constant entries 10^5 statements in one C function
(gcc -O2: two minutes for 24 live operations; gcc's time per statement, and
per loop, grows with the size of the function).  Here the entries of one
output that read one source are split into *blocks*: entries
``j0 + js*r + t`` (``r < rows``, ``t < cols``) reading element
``m0 + ms*r + d*t`` of the source (``d`` and ``ms`` are 0 for a constant or a
local).  A run of equal constants is one block (``rows == 1``), so is a
rectangle of them inside a matrix, a strided column or a diagonal
(``cols == 1``), a copied slice of an input (``d == 1``) or a transposed one.

Constants and inputs are stored by the entry point (:func:`copy_stores`):

* an output whose most frequent constant makes up at least half of it and is
  scattered over more than :data:`FILL_PIECES` blocks is first *filled* with
  it (before the computed entries are stored); that constant needs no other code;
* the :data:`LOOP_BUDGET` largest blocks of at least :data:`MIN_LOOP` entries
  become ``for`` loops (one or two nested);
* further blocks of that size become rows of a static block table, read by
  one loop nest; smaller blocks become rows of a static entry table
  (``{k, j}`` and a value, or ``{k, j, i, m}`` for ``arg[i][m]``), or single
  statements when there are fewer than :data:`MIN_TABLE` such entries.

So the entry point holds a bounded number of statements and loops and at most
four tables: data, which gcc compiles about a hundred times faster per entry
than statements.  In a JIT build (:class:`Tables`) a table of at least
:data:`RUNTIME_TABLE_MIN` entries is not written into the C at all: it is an
array the compiled code reads through its argument array, so the C source
and its compile time do not grow with the table.  A computed local goes to its places right where it is
computed (:func:`scalar_stores`: loops for blocks, statements for the rest).
Blocks are found greedily in two linear passes (:func:`progressions`) and
every choice is ordered, so the same graph gives the same C.

>>> import numpy as np
>>> j = np.arange(10, 30)
>>> print("\\n".join(scalar_stores(0, j, "0.0")))
  for (long t = 0; t < 20; ++t) res[0][10 + t] = 0.0;
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_LOOP = 8  # entries of one block from which it is a loop (or a block-table row), not single entries
LOOP_BUDGET = 64  # loops in the entry point at most (gcc -O2: ~1 ms each, more in a large function)
MIN_TABLE = 32  # single entries (constants, or inputs) from which a table replaces statements
FILL_PIECES = 8  # blocks of an output's most frequent constant above which it fills the output (if half of it)
TABLE_ROW = 8  # table rows per line of C
RUNTIME_TABLE_MIN = 256  # entries from which a table of top-level code is run-time data in a JIT build


@dataclass(frozen=True)
class Block:
    """Entries ``j0 + js*r + t`` of one output reading element ``m0 + ms*r + d*t`` of one source.

    ``r`` runs over ``range(rows)`` and ``t`` over ``range(cols)``; the block
    covers items ``first .. first + rows*cols - 1`` of the sorted entry list it
    was found in.
    """

    first: int
    rows: int
    cols: int
    j0: int
    js: int
    m0: int
    ms: int
    d: int

    @property
    def size(self) -> int:
        """Number of entries."""
        return self.rows * self.cols


def progressions(ok: np.ndarray, labels: np.ndarray) -> list[tuple[int, int]]:
    """Split ``n`` items into consecutive groups joined by edges of one label; ``[(start, count)]``.

    ``ok[e]`` says whether items ``e`` and ``e + 1`` may be in one group and
    ``labels[e]`` (a row of ints) what joins them; a group is a maximal chain
    of allowed edges with equal labels, taken greedily from the left (an item
    between two chains goes to the left one).  See :func:`progression_arrays`.

    >>> progressions(np.array([True, True, False, True]), np.array([[1], [1], [1], [2]]))
    [(0, 3), (3, 2)]
    """
    start, count = progression_arrays(ok, labels)
    return list(zip(start.tolist(), count.tolist()))


def progression_arrays(ok: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`progressions` as two int64 arrays ``(start, count)``, computed without a Python loop.

    The edges fall into *segments*: each forbidden edge alone, and each
    maximal chain of allowed edges with equal labels.  Taken from the left,
    a group enters a segment at its first edge (offset 0) or, when the group
    before ended on the previous chain and took the edge between them, at its
    second (offset 1).  A forbidden edge sets the next segment's offset to 0,
    a chain of two or more edges to 1, and a chain of one edge flips it (it is
    skipped when entered at offset 1); so every offset is the value set by the
    last such reset before it, flipped once per one-edge chain since.

    >>> [a.tolist() for a in progression_arrays(np.array([True, False, True]), np.zeros((3, 1), int))]
    [[0, 2], [2, 2]]
    """
    ok = np.asarray(ok, dtype=bool)
    n = len(ok) + 1
    if n == 1:
        return np.zeros(1, dtype=np.int64), np.ones(1, dtype=np.int64)
    labels = np.asarray(labels)
    equal = labels[:-1, 0] == labels[1:, 0]
    for c in range(1, labels.shape[1]):
        equal &= labels[:-1, c] == labels[1:, c]
    cut = np.flatnonzero(~(equal & ok[:-1] & ok[1:]))  # edges e and e + 1 not in one chain
    seg_start = np.concatenate([[0], cut + 1])  # a forbidden edge, or the first of a chain
    seg_end = np.concatenate([cut, [n - 2]])
    m = len(seg_start)
    length = seg_end - seg_start + 1
    allowed = ok[seg_start]
    one = allowed & (length == 1)  # flips the offset
    resets = np.concatenate([[-1], np.flatnonzero(~one)])  # -1: the start, offset 0
    reset_value = np.concatenate([[0], allowed[resets[1:]].astype(np.int64)])  # after a forbidden edge 0, a long chain 1
    flips = np.concatenate([[0], np.cumsum(one)])  # one-edge chains before each segment (and the end)
    last = np.searchsorted(resets[1:], np.arange(m + 1), side="left")  # the last reset before segment s (m: the end)
    base = reset_value[last]
    since = flips - flips[resets[last] + 1]
    offset = base ^ (since & 1)
    seg_offset, end_offset = offset[:m], int(offset[m])
    begin = seg_start + seg_offset
    take = np.where(allowed, seg_offset < length, seg_offset == 0)
    count = np.where(allowed, seg_end - begin + 2, 1)
    start, count = begin[take], count[take]
    if end_offset == 0:  # the last item is left alone
        start, count = np.append(start, n - 1), np.append(count, 1)
    return start.astype(np.int64), count.astype(np.int64)


def blocks(j: np.ndarray, m: np.ndarray, source: np.ndarray | None = None) -> list[Block]:
    """Cover positions ``j`` reading source elements ``m`` with :class:`Block` s, in order.

    First runs (consecutive positions, source index stepping by a constant),
    then runs of equal length and step whose starts step by constants.  With
    ``source``, items are sorted by source and then position, and no block
    mixes two sources; without, ``j`` is sorted and all items read one source.

    >>> [(b.rows, b.cols, b.j0, b.js) for b in blocks(np.array([1, 2, 3, 11, 12, 13]), np.zeros(6, int))]
    [(2, 3, 1, 10)]
    """
    j, m = np.asarray(j, dtype=np.int64), np.asarray(m, dtype=np.int64)
    if not len(j):
        return []
    same = np.ones(len(j) - 1, dtype=bool) if source is None else source[:-1] == source[1:]
    dj, dm = np.diff(j), np.diff(m)
    start, length = progression_arrays((dj == 1) & same, dm[:, None])
    step = np.where(length > 1, np.append(dm, 0)[start], 0)
    j0, m0 = j[start], m[start]
    ok = (length[:-1] == length[1:]) & (step[:-1] == step[1:])
    if source is not None:
        ok &= source[start[:-1]] == source[start[1:]]
    labels = np.stack([np.diff(j0), np.diff(m0)], axis=1)
    j0, m0, start, length, step = j0.tolist(), m0.tolist(), start.tolist(), length.tolist(), step.tolist()
    result = []
    for b, rows in zip(*(a.tolist() for a in progression_arrays(ok, labels))):
        js, ms = (j0[b + 1] - j0[b], m0[b + 1] - m0[b]) if rows > 1 else (0, 0)
        result.append(Block(start[b], rows, length[b], j0[b], js, m0[b], ms, step[b]))
    return result


def affine(base: int, *terms: tuple[int, str]) -> str:
    """C text of ``base + sum(coef * var)``, without zero terms.

    >>> affine(5, (100, "r"), (1, "t")), affine(0, (-1, "t")), affine(0)
    ('5 + 100 * r + t', '-t', '0')
    """
    text = str(base) if base else ""
    for coef, var in terms:
        if not coef:
            continue
        size = abs(coef)
        term = var if size == 1 else f"{size} * {var}"
        if not text:
            text = term if coef > 0 else "-" + term
        else:
            text += (" + " if coef > 0 else " - ") + term
    return text or "0"


def loop(k: int, block: Block, read) -> str:
    """The ``for`` statement storing ``block`` into ``res[k]``; ``read(index_text)`` is the source's C text."""
    if block.rows > 1 and block.cols > 1:
        target = affine(block.j0, (block.js, "r"), (1, "t"))
        value = read(affine(block.m0, (block.ms, "r"), (block.d, "t")))
        return (f"  for (long r = 0; r < {block.rows}; ++r) "
                f"for (long t = 0; t < {block.cols}; ++t) res[{k}][{target}] = {value};")
    if block.rows > 1:
        target, value = affine(block.j0, (block.js, "t")), read(affine(block.m0, (block.ms, "t")))
        return f"  for (long t = 0; t < {block.rows}; ++t) res[{k}][{target}] = {value};"
    target, value = affine(block.j0, (1, "t")), read(affine(block.m0, (block.d, "t")))
    return f"  for (long t = 0; t < {block.cols}; ++t) res[{k}][{target}] = {value};"


def split(j: np.ndarray, m: np.ndarray) -> tuple[list[Block], np.ndarray]:
    """The blocks of at least :data:`MIN_LOOP` entries, and the item indices of all other entries."""
    big, rest = [], []
    for block in blocks(j, m):
        if block.size >= MIN_LOOP:
            big.append(block)
        else:
            rest.append(np.arange(block.first, block.first + block.size))
    return big, (np.concatenate(rest) if rest else np.zeros(0, dtype=np.int64))


def scalar_stores(k: int, j: np.ndarray, value: str) -> list[str]:
    """Statements storing the C expression ``value`` at the sorted positions ``j`` of ``res[k]``."""
    big, rest = split(j, np.zeros(len(j), dtype=np.int64))
    lines = [loop(k, block, lambda _: value) for block in big]
    lines.extend(f"  res[{k}][{p}] = {value};" for p in j[rest].tolist())
    return lines


# ---------------------------------------------------------------- constants and inputs


@dataclass(frozen=True)
class Sources:
    """The sources of output entries that are not computed.

    Source ``i < n_inputs`` is input ``i`` (``arg[i]``, indexed by element);
    source ``n_inputs + c`` is the constant with C text ``texts[c]``.
    """

    n_inputs: int
    texts: tuple

    def read(self, source: int, index: str) -> str:
        """C text of element ``index`` of ``source``."""
        if source < self.n_inputs:
            return f"arg[{source}][{index}]"
        return self.texts[source - self.n_inputs]

    def static(self, source: int) -> str:
        """C text of constant ``source`` in a static initializer.

        tcc 0.9.27 refuses ``-INFINITY`` (any arithmetic on an infinite or NaN
        operand) there, so -inf is written ``-1.0 / 0.0``, which every compiler
        folds exactly.
        """
        text = self.read(source, "")
        return "(-1.0 / 0.0)" if text == "(-INFINITY)" else text


def copy_stores(outputs: list, sources: Sources, tables: "Tables | None" = None) -> tuple[list[str], list[str]]:
    """Stores of the entries of outputs that are inputs or constants: ``(before the parts, after them)``.

    ``outputs`` holds, per output, ``(k, size, j, source, m)``: its number and
    number of entries, and for each such entry its position, source and
    element (0 for a constant), as int arrays.  See the module docstring;
    ``tables``, where given, takes the large tables as run-time data.
    """
    fills, big, small = [], [], []  # (k, Block, source) and (k, j, source, m)
    for k, size, j, source, m in outputs:
        order = np.lexsort((j, source))  # by source, then position
        j, source, m = j[order], source[order], m[order]
        found = blocks(j, m, source)
        of = source[[b.first for b in found]].tolist()
        fill = _fill(source, of, sources.n_inputs, size)
        if fill is not None:
            fills.append((k, Block(0, 1, size, 0, 0, 0, 0, 0), fill))
        big.extend((k, b, src) for b, src in zip(found, of) if src != fill and b.size >= MIN_LOOP)
        sizes = np.array([b.size for b in found])
        single = np.repeat(sizes < MIN_LOOP, sizes) & (source != (-1 if fill is None else fill))  # items in order
        small.extend(zip([k] * int(single.sum()), j[single].tolist(), source[single].tolist(), m[single].tolist()))
    sizes = [b.size for _, b, _ in fills + big]
    looped = set(sorted(range(len(sizes)), key=lambda a: -sizes[a])[:LOOP_BUDGET])  # the largest; ties: first
    before = _blocks_code([b for a, b in enumerate(fills) if a in looped],
                          [b for a, b in enumerate(fills) if a not in looped], sources, tables)
    after = _blocks_code([b for a, b in enumerate(big, len(fills)) if a in looped],
                         [b for a, b in enumerate(big, len(fills)) if a not in looped], sources, tables)
    return before, after + _entries_code(sorted(small), sources, tables)


def _fill(source: np.ndarray, block_sources: list, n_inputs: int, size: int) -> int | None:
    """The constant to fill an output of ``size`` entries with first, or None.

    ``source`` holds the source of each stored entry, ``block_sources`` that of
    each block.  The fill is the most frequent constant (the first source on
    ties) when it is scattered (more than :data:`FILL_PIECES` blocks) and
    covers at least half of the output, so that the fill writes at most twice
    the entries it replaces.
    """
    values, counts = np.unique(source[source >= n_inputs], return_counts=True)
    if not len(values):
        return None
    best = int(np.argmax(counts))
    fill = int(values[best])
    return fill if block_sources.count(fill) > FILL_PIECES and 2 * int(counts[best]) >= size else None


def _blocks_code(loops: list, rows: list, sources: Sources, tables: "Tables | None" = None) -> list[str]:
    """Loops for ``loops`` and block tables for ``rows`` (both ``[(k, Block, source)]``)."""
    lines = [loop(k, b, lambda index, src=src: sources.read(src, index)) for k, b, src in loops]
    const = [(k, b, src) for k, b, src in rows if src >= sources.n_inputs]
    if const:
        lines += ["  {", *table("blk", "long", [(k, b.j0, b.js, b.rows, b.cols) for k, b, _ in const], tables),
                  *table("val", "double", [sources.static(src) for _, _, src in const], tables),
                  f"    for (long b = 0; b < {len(const)}; ++b)",
                  "      for (long r = 0; r < blk[b][3]; ++r)",
                  "        for (long t = 0; t < blk[b][4]; ++t)",
                  "          res[blk[b][0]][blk[b][1] + blk[b][2] * r + t] = val[b];",
                  "  }"]
    copies = [(k, b.j0, b.js, b.rows, b.cols, src, b.m0, b.ms, b.d) for k, b, src in rows if src < sources.n_inputs]
    if copies:
        lines += ["  {", *table("blk", "long", copies, tables),
                  f"    for (long b = 0; b < {len(copies)}; ++b)",
                  "      for (long r = 0; r < blk[b][3]; ++r)",
                  "        for (long t = 0; t < blk[b][4]; ++t)",
                  "          res[blk[b][0]][blk[b][1] + blk[b][2] * r + t] = "
                  "arg[blk[b][5]][blk[b][6] + blk[b][7] * r + blk[b][8] * t];",
                  "  }"]
    return lines


def _entries_code(entries: list, sources: Sources, tables: "Tables | None" = None) -> list[str]:
    """Single entries ``[(k, j, source, m)]``: statements, or a table per kind when there are many."""
    lines = []
    const = [(k, j, src) for k, j, src, _ in entries if src >= sources.n_inputs]
    if len(const) < MIN_TABLE:
        lines.extend(f"  res[{k}][{j}] = {sources.read(src, '')};" for k, j, src in const)
    else:
        lines += ["  {", *table("at", "long", [(k, j) for k, j, _ in const], tables),
                  *table("val", "double", [sources.static(src) for _, _, src in const], tables),
                  f"    for (long t = 0; t < {len(const)}; ++t) res[at[t][0]][at[t][1]] = val[t];", "  }"]
    copies = [(k, j, src, m) for k, j, src, m in entries if src < sources.n_inputs]
    if len(copies) < MIN_TABLE:
        lines.extend(f"  res[{k}][{j}] = arg[{src}][{m}];" for k, j, src, m in copies)
    else:
        lines += ["  {", *table("at", "long", copies, tables),
                  f"    for (long t = 0; t < {len(copies)}; ++t) res[at[t][0]][at[t][1]] = arg[at[t][2]][at[t][3]];",
                  "  }"]
    return lines


def table(name: str, ctype: str, rows: list, tables: "Tables | None" = None) -> list[str]:
    """Lines of a block-scope ``static const`` array: one value per row, or rows of tuples (a 2-D array).

    With ``tables``, a table of at least its ``minimum`` entries is handed to it
    instead and read through a pointer (:meth:`Tables.pointer`; a ``double``
    table's rows are C texts of constants, see :func:`number`).

    >>> print("\\n".join(table("at", "long", [(0, 5), (1, 7)])))
        static const long at[2][2] = {
          {0, 5}, {1, 7},
        };
    >>> table("at", "long", [(0, 5), (1, 7)], Tables(3, minimum=4))
    ['    const int (*at)[2] = (const int (*)[2])arg[3];']
    """
    if tables is not None and tables.takes(len(rows) * (len(rows[0]) if rows and isinstance(rows[0], tuple) else 1)):
        values = np.array([number(r) for r in rows]) if ctype == "double" else np.array(rows, dtype=np.int64)
        return ["    " + tables.pointer(name, values)]
    if rows and isinstance(rows[0], tuple):
        shape, items = f"[{len(rows)}][{len(rows[0])}]", ["{" + ", ".join(map(str, r)) + "}" for r in rows]
    else:
        shape, items = f"[{len(rows)}]", [str(r) for r in rows]
    lines = [f"    static const {ctype} {name}{shape} = {{"]
    lines.extend("      " + ", ".join(items[a:a + TABLE_ROW]) + "," for a in range(0, len(items), TABLE_ROW))
    lines.append("    };")
    return lines


# ---------------------------------------------------------------- tables as run-time data


def number(text: str) -> float:
    """The value of a constant's C text (:func:`codegen.c99.c_constant`, or a static initializer's).

    >>> [number(t) for t in ("2.0", "(-0.5)", "INFINITY", "(-1.0 / 0.0)")]
    [2.0, -0.5, inf, -inf]
    """
    if text == "(-1.0 / 0.0)":
        return -math.inf
    return float(text.replace("(", "").replace(")", ""))


class Tables:
    """The large tables of a program's top-level code, kept as arrays that its C reads at run time.

    Table ``k`` is read through ``arg[base + k]``, past the ``base`` inputs of
    the Function (the caller appends the tables' addresses to the argument
    array; :class:`codegen.runtime.CompiledFunction` does).  The C names only
    the table's element type, its row length and its number, never its
    values, so the source stays the same size whatever the data, and two
    Functions differing only in their index data share one compiled library.
    Index tables are ``int32`` when every entry fits, else ``int64``
    (C ``long long``); value tables ``float64``.

    >>> t = Tables(2, minimum=3)
    >>> t.takes(2), t.pointer("g", np.array([4, 0, 9]))
    (False, 'const int *g = (const int *)arg[2];')
    >>> t.pointer("h", np.array([[2 ** 40, 1]])), [a.dtype.name for a in t.arrays]
    ('const long long (*h)[2] = (const long long (*)[2])arg[3];', ['int32', 'int64'])
    """

    def __init__(self, base: int, minimum: int = RUNTIME_TABLE_MIN) -> None:
        self.base = base
        self.minimum = minimum
        self.arrays: list[np.ndarray] = []

    def takes(self, entries: int) -> bool:
        """Whether a table of ``entries`` numbers is run-time data (else it stays in the C)."""
        return entries >= self.minimum

    def pointer(self, name: str, values: np.ndarray) -> str:
        """Keep ``values`` (1-D, or 2-D rows) as the next table; the C declaring the pointer ``name`` to it."""
        values = np.asarray(values)
        if values.dtype.kind == "f":
            data, ctype = np.ascontiguousarray(values, dtype=np.float64), "double"
        else:
            fits = not values.size or (int(values.min()) >= -(2 ** 31) and int(values.max()) < 2 ** 31)
            data, ctype = (np.ascontiguousarray(values, dtype=np.int32), "int") if fits else \
                (np.ascontiguousarray(values, dtype=np.int64), "long long")
        data.flags.writeable = False
        where = f"arg[{self.base + len(self.arrays)}]"
        self.arrays.append(data)
        if data.ndim == 1:
            return f"const {ctype} *{name} = (const {ctype} *){where};"
        row = data.shape[1]
        return f"const {ctype} (*{name})[{row}] = (const {ctype} (*)[{row}]){where};"
