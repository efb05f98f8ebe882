"""C for glue Tapes: one call and its results, with the copies in and out as loops over affine runs.

The derivative Functions of maps and folds (symgraph/structdiff.py,
symgraph/folddiff.py), and a structured Function compiled on its own, have
Tapes made of one call whose operands are input elements and constants and
whose results go straight to the outputs.  Emitted like other Tapes, each of
the ``n`` operands and results would be a statement of its own: C source,
and gcc's time, growing with the number of instances.  Here the copies are
grouped into runs whose source and destination advance by fixed strides
(``x[off:off+size]`` in order, every other result, ...), and each run of at
least :data:`MIN_RUN` becomes one loop, so the source of such a Function
stays a few lines however large ``n``.

>>> import symgraph as sg
>>> x = sg.symbols("x")
>>> F = sg.Function("sq", [x], [x * x])
>>> len(F.map(100000).c_code().splitlines()) == len(F.map(10).c_code().splitlines())   # the same lines
True
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from symgraph.tape import CALL, RESULT

__all__ = ["is_glue", "glue_lines", "operand_copies", "runs", "MIN_RUN"]

MIN_RUN = 4  # shorter runs are written out statement by statement


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
    out: list[tuple[int, int, int, int]] = []
    d, s = dst.tolist(), src.tolist()
    t, n = 0, len(d)
    while t < n:
        length, stride = 1, 1
        if t + 1 < n and d[t + 1] == d[t] + 1:
            stride = s[t + 1] - s[t]
            while t + length < n and d[t + length] == d[t] + length and s[t + length] == s[t] + stride * length:
                length += 1
        out.append((d[t], s[t], stride, length))
        t += length
    return out


def _copies(target: str, source: str, dst: np.ndarray, src: np.ndarray) -> list[str]:
    """``target[dst[t]] = source[src[t]]`` for all ``t``, runs as loops."""
    lines = []
    for d0, s0, stride, length in runs(dst, src):
        if length >= MIN_RUN:
            lines.append(f"  for (long t = 0; t < {length}; ++t) {target}[{d0} + t] = {source}[{s0} + {stride} * t];")
        else:
            lines.extend(f"  {target}[{d0 + q}] = {source}[{s0 + stride * q}];" for q in range(length))
    return lines


def glue_lines(tape: Any, places: dict, info: Any, c_constant: Any) -> list[str]:
    """The statements of a glue Tape's body: operands into ``w``, the call, results to ``res``.

    ``places[slot]`` lists the output positions ``(k, j)`` of a result slot;
    ``info`` is the callee's ``_Callee`` record (name, operand and result
    layout); ``c_constant`` spells a constant.
    """
    callee, slots = tape.call(0)
    slots = np.asarray(slots, dtype=np.int64)
    n_in, first = tape.n_input_scalars, tape.first_instruction_slot
    where = np.empty((n_in, 2), dtype=np.int64)  # input slot -> (input k, element j)
    for k, arr in enumerate(tape.input_slots):
        flat = np.asarray(arr, dtype=np.int64).reshape(-1)
        where[flat, 0] = k
        where[flat, 1] = np.arange(len(flat))
    lines = ["  double *const cw = w;"]
    from_input = np.flatnonzero(slots < n_in)
    for k in range(len(tape.input_slots)):
        mine = from_input[where[slots[from_input], 0] == k]
        lines += _copies("cw", f"arg[{k}]", mine, where[slots[mine], 1])
    constants = tape.constants.tolist()
    from_constant = np.flatnonzero((slots >= n_in) & (slots < first))
    by_value: dict[float, list[int]] = {}
    for t in from_constant.tolist():
        by_value.setdefault(constants[int(slots[t]) - n_in], []).append(t)
    for value, ts in by_value.items():
        for d0, _, _, length in runs(np.asarray(ts), np.zeros(len(ts), dtype=np.int64)):
            if length >= MIN_RUN:
                lines.append(f"  for (long t = 0; t < {length}; ++t) cw[{d0} + t] = {c_constant(value)};")
            else:
                lines.extend(f"  cw[{d0 + q}] = {c_constant(value)};" for q in range(length))
    ins = ", ".join(f"cw + {o}" for o in info.in_offsets) or "0"
    outs = ", ".join(f"cw + {info.n_in + o}" for o in info.out_offsets) or "0"
    lines += [f"  {{ const double *const ca[{max(1, len(info.in_offsets))}] = {{{ins}}};",
              f"    double *const cr[{max(1, len(info.out_offsets))}] = {{{outs}}};",
              f"    {info.name}(ca, cr, cw + {info.n_in + info.n_out}); }}"]
    immediates = tape.immediates
    store_k, store_j, store_src = [], [], []
    for s, positions in places.items():
        j = int(immediates[s - first])
        for k, pos in positions:
            store_k.append(k)
            store_j.append(pos)
            store_src.append(info.n_in + j)
    if store_k:
        order = np.lexsort((np.asarray(store_j), np.asarray(store_k)))
        ks, js, ss = (np.asarray(a, dtype=np.int64)[order] for a in (store_k, store_j, store_src))
        for k in np.unique(ks).tolist():
            mask = ks == k
            lines += _copies(f"res[{k}]", "cw", js[mask], ss[mask])
    return lines


_ARG = re.compile(r"^arg\[(\d+)\]\[(\d+)\]$")


def operand_copies(target: str, texts: list[str], indent: str = "    ") -> list[str]:
    """``target[t] = texts[t]`` for every operand of a call site; runs of input elements become loops.

    >>> operand_copies("cw", ["arg[0][0]", "arg[0][1]", "arg[0][2]", "arg[0][3]", "v9"], "")
    ['for (long t = 0; t < 4; ++t) cw[0 + t] = arg[0][0 + 1 * t];', 'cw[4] = v9;']
    """
    lines: list[str] = []
    t, n = 0, len(texts)
    parsed = [_ARG.match(s) for s in texts]
    while t < n:
        m = parsed[t]
        if m is not None:
            k, j0 = m.group(1), int(m.group(2))
            length, stride = 1, None
            while t + length < n and parsed[t + length] is not None and parsed[t + length].group(1) == k:
                step = int(parsed[t + length].group(2)) - j0
                if stride is None:
                    stride = step
                if step != stride * length:
                    break
                length += 1
            if length >= MIN_RUN:
                lines.append(f"{indent}for (long t = 0; t < {length}; ++t) {target}[{t} + t] = "
                             f"arg[{k}][{j0} + {stride} * t];")
                t += length
                continue
        lines.append(f"{indent}{target}[{t}] = {texts[t]};")
        t += 1
    return lines
