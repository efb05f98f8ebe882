"""Output stores as loops: C text whose size does not grow with repeated output entries.

An output entry takes its value from a *source*: a computed local ``vS``, a
constant, or an input element ``arg[i][m]``.  Writing one statement per entry
made a Function with 10^5 constant entries 10^5 statements (gcc: about two
minutes for 24 live operations).  Here the entries of one output that read
one source are split into *blocks*: entries ``j0 + js*r + t`` (``r < rows``,
``t < cols``) reading element ``m0 + ms*r + d*t`` of the source (``d`` and
``ms`` are 0 for a constant or a local).  A run of equal constants is one
block (``rows == 1``), so is a rectangle of them inside a matrix, a strided
column or a diagonal (``cols == 1``), a copied slice of an input (``d == 1``)
or a transposed one.  A block of at least :data:`MIN_LOOP` entries becomes a
``for`` loop (one or two nested); the entries left over are single
statements, or, when an output has at least :data:`MIN_TABLE` of them,
static tables of positions and values (or input indices) read by one loop,
which compile in a fraction of the time of as many statements.  An output
whose most frequent constant is scattered over more than
:data:`FILL_PIECES` loops and statements is first filled with it (one loop
before the computed entries are stored), and that constant needs no other code.

Blocks are found greedily in two linear passes (:func:`progressions`), so the
result is a pure function of the entries: the same graph gives the same C.

>>> import numpy as np
>>> j = np.arange(10, 30)
>>> print("\\n".join(scalar_stores(0, j, "0.0")))
  for (long t = 0; t < 20; ++t) res[0][10 + t] = 0.0;
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

MIN_LOOP = 8  # entries of one block from which a loop replaces single statements
MIN_TABLE = 32  # scattered entries of one output (of one kind) from which a table replaces statements
FILL_PIECES = 8  # loops and statements of an output's most frequent constant above which it fills the output
TABLE_ROW = 16  # table values per line of C


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
    between two chains goes to the left one).  Runs over chains, not items.

    >>> progressions(np.array([True, True, False, True]), np.array([[1], [1], [1], [2]]))
    [(0, 3), (3, 2)]
    """
    n = len(ok) + 1
    if n == 1:
        return [(0, 1)]
    same = ok[:-1] & ok[1:] & np.all(labels[:-1] == labels[1:], axis=1)
    edges = np.arange(n - 1)
    stop = np.where(np.append(same, False), n - 1, edges)  # first edge at or after e ending a chain
    end = np.minimum.accumulate(stop[::-1])[::-1].tolist()
    allowed = ok.tolist()
    groups, a = [], 0
    while a < n:
        count = end[a] - a + 2 if a < n - 1 and allowed[a] else 1
        groups.append((a, count))
        a += count
    return groups


def blocks(j: np.ndarray, m: np.ndarray) -> list[Block]:
    """Cover sorted positions ``j`` reading source elements ``m`` with :class:`Block` s, in order.

    First runs (consecutive positions, source index stepping by a constant),
    then runs of equal length and step whose starts step by constants.

    >>> [(b.rows, b.cols, b.j0, b.js) for b in blocks(np.array([1, 2, 3, 11, 12, 13]), np.zeros(6, int))]
    [(2, 3, 1, 10)]
    """
    j, m = np.asarray(j, dtype=np.int64), np.asarray(m, dtype=np.int64)
    if not len(j):
        return []
    dj, dm = np.diff(j), np.diff(m)
    runs = progressions(dj == 1, dm[:, None])
    start = np.array([a for a, _ in runs], dtype=np.int64)
    length = np.array([c for _, c in runs], dtype=np.int64)
    step = np.where(length > 1, np.append(dm, 0)[start], 0)
    j0, m0 = j[start], m[start]
    ok = (length[:-1] == length[1:]) & (step[:-1] == step[1:])
    labels = np.stack([np.diff(j0), np.diff(m0)], axis=1)
    result = []
    for b, rows in progressions(ok, labels):
        js = int(j0[b + 1] - j0[b]) if rows > 1 else 0
        ms = int(m0[b + 1] - m0[b]) if rows > 1 else 0
        result.append(Block(int(start[b]), rows, int(length[b]), int(j0[b]), js, int(m0[b]), ms, int(step[b])))
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


def table(name: str, ctype: str, values: list[str]) -> Iterator[str]:
    """Lines of a block-scope ``static const`` array."""
    yield f"    static const {ctype} {name}[{len(values)}] = {{"
    for a in range(0, len(values), TABLE_ROW):
        yield "      " + ", ".join(values[a:a + TABLE_ROW]) + ","
    yield "    };"


def table_stores(k: int, j: np.ndarray, values: list[str], ctype: str, read: str) -> list[str]:
    """One loop storing ``read`` (C text over ``src[t]``) at the positions ``j`` of ``res[k]``, from tables.

    >>> print("\\n".join(table_stores(1, np.array([4, 9]), ["7", "2"], "long", "arg[0][src[t]]")))
      {
        static const long pos[2] = {
          4, 9,
        };
        static const long src[2] = {
          7, 2,
        };
        for (long t = 0; t < 2; ++t) res[1][pos[t]] = arg[0][src[t]];
      }
    """
    lines = ["  {"]
    lines.extend(table("pos", "long", [str(p) for p in j.tolist()]))
    lines.extend(table("src", ctype, values))
    lines += [f"    for (long t = 0; t < {len(values)}; ++t) res[{k}][pos[t]] = {read};", "  }"]
    return lines
