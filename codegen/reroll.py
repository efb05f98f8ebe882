"""Loop rerolling: a run of instructions that repeats one body over slots in arithmetic progression.

Straight-line programs made from repeated structure (per-parameter gradient
sums ``res[0][j] = w[a+j] + w[b+j]``, an elementwise model written out, a
``fmax`` chain over an array) spend most of the C compiler's time on
statements that differ only in their array indices.  Within one part
function (see :mod:`codegen.c99`), this module finds *loops*: ``count``
iterations of a body of ``period`` consecutive instructions where
iteration ``r`` is iteration 0 with every operand, and every store,
shifted by a constant per position:

* an operand read from an array (``arg[i][j]``, ``w[j]``) steps ``j``
  by any constant (0 included);
* an operand computed in the same part is the same position of the same
  iteration or of the previous one (a loop-carried value, such as a running
  sum), or one fixed value made before the loop's second iteration;
* a constant is the same constant;
* stores into outputs ``res[k][j]`` and into the work array ``w[j]`` step
  ``j`` by a constant.

The first and the last iteration are emitted straight-line as before, so
every value the rest of the part reads is an ordinary local; the middle
ones become one ``for`` loop whose body is the statements of one iteration,
each computing exactly the expression it computed before.  Nothing is
reordered across iterations (iteration ``r`` runs its instructions in
Tape order, after iteration ``r - 1``), and each instruction evaluates the
same C expression on the same values, so the results are bitwise those of
the straight-line code.  A value of a middle iteration that the part reads
after the loop (other than through ``w`` or the outputs) is kept in a local
array, which those readers index.

The search is vectorized over the part: for each period ``L`` up to
:data:`MAX_PERIOD`, instruction ``i`` *matches* ``i + L`` when their ops and
operand arrays agree, and two matches in a row with equal index steps make
``i`` *regular*; a run of regular instructions of length ``m`` is a loop of
``m // L + 2`` iterations.  Loops are taken greedily from the left, the
period saving the most statements first.

>>> import numpy as np
>>> key = np.zeros(8, dtype=np.int64)                 # eight instructions of one op
>>> arr = np.full((8, 1), ARRAY0, dtype=np.int64)     # each reads arg[0] ...
>>> idx = np.arange(8, dtype=np.int64)[:, None]       # ... at 0, 1, 2, ...
>>> [(lp.start, lp.period, lp.count) for lp in find_loops(key, arr, idx, 1, 100, np.full(8, -1), min_saved=2)]
[(0, 1, 8)]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

__all__ = ["Loop", "Ref", "find_loops", "index_text", "LOCAL", "CONST", "ARRAY0", "UNUSED",
           "MIN_ITERATIONS", "MIN_SAVED", "MAX_PERIOD"]

MIN_ITERATIONS = 4  # a loop has at least this many iterations (its first and last stay straight-line)
MIN_SAVED = 12  # statements a loop must save (its middle iterations' instructions) to be worth a loop
MAX_PERIOD = 48  # the longest body looked for
MAX_TRIES = 3  # periods validated per start position before moving on

UNUSED, LOCAL, CONST = -1, 0, 1  # operand kinds; arrays (arg[i], w, res[k]) are numbered from ARRAY0
ARRAY0 = 2


@dataclass(frozen=True)
class Ref:
    """How a loop body reads one operand: ``kind`` is ``"same"``/``"carried"`` (position ``q`` of this
    or the previous iteration), ``"fixed"`` (the slot ``base``: a constant or a value in scope before the loop)
    or ``"array"`` (element ``base + step * r`` of array number ``array``, ``base`` its index in iteration 0)."""

    kind: str
    q: int = 0
    array: int = 0
    base: int = 0
    step: int = 0


@dataclass(frozen=True)
class Loop:
    """``count`` iterations of the ``period`` instructions from ``start`` (indices into the part).

    ``refs[p][k]`` says how position ``p`` reads operand column ``k`` (None: unused);
    ``stores[p]`` lists its stores as ``Ref("array", ...)``; ``carried`` lists the positions
    read by the next iteration, ``spilled`` those whose middle-iteration values the part reads
    after the loop (the loop keeps them in a local array).
    """

    start: int
    period: int
    count: int
    refs: tuple
    stores: tuple
    carried: tuple
    spilled: tuple = ()

    @property
    def stop(self) -> int:
        """One past the last instruction of the last iteration."""
        return self.start + self.period * self.count


def index_text(base: int, step: int, var: str = "r") -> str:
    """The C index ``base + step * var``, written simply.

    >>> index_text(4, 1), index_text(4, 0), index_text(4, -2), index_text(0, 3)
    ('4 + r', '4', '4 - 2 * r', '3 * r')
    """
    if step == 0:
        return str(base)
    term = var if abs(step) == 1 else f"{abs(step)} * {var}"
    if base == 0:
        return term if step > 0 else f"-{term}"
    return f"{base} {'+' if step > 0 else '-'} {term}"


def find_loops(key: np.ndarray, arr: np.ndarray, idx: np.ndarray, n_operands: int, slot0: int,
               last_reader: np.ndarray, min_saved: int = MIN_SAVED, max_period: int = MAX_PERIOD) -> list[Loop]:
    """The loops of one part, in order and disjoint.

    Args:
        key: ``(m,)`` op code of each instruction; negative: never in a loop (unique per instruction).
        arr: ``(m, K)`` per column what it reads or stores: :data:`UNUSED`, :data:`LOCAL` (a value
            computed in this part; ``idx`` is its slot), :data:`CONST` (``idx``: its slot) or an
            array number ``>= ARRAY0`` (``idx``: the element).  The first ``n_operands`` columns are
            operands, the others stores.
        idx: ``(m, K)`` indices as above.
        slot0: the slot of the part's first instruction (instruction ``i`` defines ``slot0 + i``).
        last_reader: ``(m,)`` the last instruction of this part reading each instruction's value
            (-1: none).
    """
    m = len(key)
    if m < MIN_ITERATIONS:
        return []
    periods = list(range(1, min(max_period, m // MIN_ITERATIONS) + 1))
    if not periods:
        return []
    saved = _savings(key, arr, idx, periods)
    best = saved.max(axis=0)
    loops: list[Loop] = []
    i = 0
    candidates = np.flatnonzero(best >= min_saved).tolist()
    c = 0
    while c < len(candidates):
        i = candidates[c]
        column = saved[:, i]
        order = [r for r in np.argsort(-column, kind="stable")[:MAX_TRIES].tolist() if column[r] >= min_saved]
        found = None
        for r in order:
            L = periods[r]
            found = _validated(arr, idx, n_operands, slot0, last_reader, i, L, int(column[r]) // L + 2, min_saved)
            if found is not None:
                break
        if found is None:
            c += 1
            continue
        loops.append(found)
        while c < len(candidates) and candidates[c] < found.stop:
            c += 1
    return loops


def _savings(key: np.ndarray, arr: np.ndarray, idx: np.ndarray, periods: list) -> np.ndarray:
    """``saved[row, i]``: the statements a loop of period ``periods[row]`` from ``i`` would save.

    Instruction ``i`` matches ``i + L`` when their rows of ``key`` and ``arr``
    agree (compared as one exact id per row, :func:`row_ids`); it is regular
    when it matches ``i + L``, which matches ``i + 2L``, with equal index
    steps (compared column by column, over the columns of ``idx`` that vary,
    at the few instructions that match twice).  All periods at once: one
    ``(periods, m)`` comparison, read shifted by each row's period.

    >>> key = np.zeros(6, dtype=np.int64)
    >>> _savings(key, np.full((6, 1), ARRAY0), np.arange(6)[:, None], [1]).tolist()
    [[4, 3, 2, 1, 0, 0]]
    """
    m, n_periods = len(key), len(periods)
    saved = np.zeros((n_periods, m), dtype=np.int64)
    if not n_periods or not m:
        return saved
    ids = row_ids(np.column_stack([key, arr]))
    period = np.asarray(periods, dtype=np.int64)
    top = int(period.max())
    # ids past the end match nothing; match[row, i]: i matches i + L (L = period[row])
    ids_ext = np.concatenate([ids, np.full(top, int(ids.min()) - 1, dtype=np.int64)])
    match_ext = np.zeros((n_periods, m + top), dtype=bool)
    match = match_ext[:, :m]
    if np.array_equal(period, np.arange(1, n_periods + 1)):  # 1, 2, ...: row r reads r + 1 ahead, a strided view
        np.equal(sliding_window_view(ids_ext[1:], m)[:n_periods], ids[None, :], out=match)
        match &= (key >= 0)[None, :]
        # match[r, i + r + 1] is element i + 1 of row r of a (W + 1)-strided view of match_ext (W its width)
        flat = match_ext.reshape(-1)
        twice = as_strided(flat[1:], shape=(n_periods, m), strides=((m + top + 1) * flat.strides[0], flat.strides[0]))
    else:
        ahead = np.arange(m, dtype=np.int64)[None, :] + period[:, None]
        np.equal(ids_ext[ahead], ids[None, :], out=match)
        match &= (key >= 0)[None, :]
        twice = np.take_along_axis(match_ext, ahead, axis=1)
    rows, at = np.nonzero(match & twice)  # few: checked one by one
    step = period[rows]
    for k in range(idx.shape[1]):
        column = idx[:, k]
        if not len(at):
            return saved
        if np.all(column == column[0]):
            continue
        a, b, c = column[at], column[at + step], column[at + 2 * step]
        keep = b - a == c - b
        rows, at, step = rows[keep], at[keep], step[keep]
    if not len(at):
        return saved
    # a run of consecutive regular instructions (one period) reaches the end of its block
    starts = np.ones(len(at), dtype=bool)
    starts[1:] = (np.diff(at) != 1) | (np.diff(rows) != 0)
    block = np.cumsum(starts) - 1
    last = at[np.append(np.flatnonzero(starts[1:]), len(at) - 1)]
    run = last[block] - at + 1
    saved[rows, at] = (run // step) * step
    return saved


def row_ids(matrix: np.ndarray) -> np.ndarray:
    """One integer per row of an integer ``matrix``, equal exactly when the rows are equal.

    The columns are packed into one integer, one after another; a column of
    values spread wider than its length, and the ids whenever the next column
    would not fit in 62 bits, are renumbered densely first (``np.unique``).

    >>> ids = row_ids(np.array([[1, 2], [3, 4], [1, 2], [1, 5]]))
    >>> [bool(ids[0] == ids[k]) for k in range(4)]
    [True, False, True, False]
    """
    m = matrix.shape[0]
    ids = np.zeros(m, dtype=np.int64)
    size = 1  # ids are in range(size)
    for k in range(matrix.shape[1]):
        column = matrix[:, k].astype(np.int64)
        low = int(column.min()) if m else 0
        width = (int(column.max()) - low + 1) if m else 1
        if width == 1:
            continue
        if width > m:
            _, inverse = np.unique(column, return_inverse=True)
            column, low, width = inverse.reshape(-1).astype(np.int64), 0, int(inverse.max()) + 1
        if size * width >= 1 << 62:
            _, inverse = np.unique(ids, return_inverse=True)
            ids, size = inverse.reshape(-1).astype(np.int64), int(inverse.max()) + 1
        ids = ids * width + (column - low)
        size *= width
    return ids


def _validated(arr, idx, n_operands: int, slot0: int, last_reader, i0: int, L: int, count: int,
               min_saved: int) -> Loop | None:
    """The loop ``(i0, L, count)`` if its operands can be read in a loop, shortened where values escape."""
    body = slice(i0, i0 + L)
    steps = idx[i0 + L:i0 + 2 * L] - idx[body]
    s0 = slot0 + i0
    refs = []
    carried = set()
    for p in range(L):
        row = []
        for k in range(n_operands):
            kind = int(arr[i0 + p, k])
            d = int(steps[p, k])
            if kind == UNUSED:
                row.append(None)
            elif kind == CONST:
                if d:
                    return None
                row.append(Ref("fixed", base=int(idx[i0 + p, k])))
            elif kind == LOCAL:
                a1 = int(idx[i0 + L + p, k])  # the operand of iteration 1
                if d == L and s0 + L <= a1 < s0 + L + p:
                    row.append(Ref("same", a1 - s0 - L))
                elif d == L and s0 <= a1 < s0 + L:
                    row.append(Ref("carried", a1 - s0))
                    carried.add(a1 - s0)
                elif d == 0 and a1 < s0 + L:
                    row.append(Ref("fixed", base=a1))
                else:
                    return None
            else:
                row.append(Ref("array", array=kind, base=int(idx[i0 + p, k]), step=d))
        refs.append(tuple(row))
    stores = tuple(tuple(Ref("array", array=int(arr[i0 + p, k]), base=int(idx[i0 + p, k]), step=int(steps[p, k]))
                         for k in range(n_operands, arr.shape[1]) if arr[i0 + p, k] != UNUSED) for p in range(L))
    if count < MIN_ITERATIONS or (count - 2) * L < min_saved:
        return None
    # positions whose middle-iteration values the part reads after the loop: kept in an array
    middle = last_reader[i0 + L:i0 + (count - 1) * L].reshape(count - 2, L)
    spilled = tuple(np.flatnonzero(np.any(middle >= i0 + count * L, axis=0)).tolist())
    return Loop(i0, L, count, tuple(refs), stores, tuple(sorted(carried)), spilled)
