"""The numpy VM: the reference interpreter of a :class:`~symgraph.tape.Tape`.

It evaluates N points at once, one numpy call per instruction (never a
Python loop over points), in float64 or complex128 (complex-step
differentiation relies on the latter).  Slots are released right after their
last use, so memory follows the live set, not the program length.

>>> import numpy as np, symgraph as sg
>>> x = sg.symbols("x", 2)
>>> F = sg.Function("f", [x], [x[0] * sg.exp(x[1])])
>>> run(F.tape, [np.array([[2.0, 0.0], [3.0, 0.0]])])[0].ravel().tolist()
[2.0, 3.0]
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .tape import Tape

# (numpy function, result slot, operand slots, slots that die after it)
Program = list[tuple[Callable, int, tuple[int, ...], tuple[int, ...]]]


def program(tape: Tape) -> Program:
    """The VM's instruction list for ``tape``; callers keep it for reuse."""
    last = tape.last_use()
    dies: list[list[int]] = [[] for _ in range(tape.n_instructions)]
    for slot in np.flatnonzero((last >= 0) & (last < tape.n_instructions)).tolist():
        if slot >= tape.n_input_scalars:  # input columns are views; nothing to free
            dies[last[slot]].append(slot)
    return [(op.np, out, args, tuple(dies[i])) for i, (op, out, args) in enumerate(tape.instructions())]


def run(tape: Tape, inputs: Sequence[np.ndarray], prog: Program | None = None) -> list[np.ndarray]:
    """Evaluate ``tape`` on N points.

    ``inputs[k]`` has shape ``(N, size_k)`` (input k flattened in C order),
    dtype float64 or complex128.  Returns one ``(N, size)`` array per output,
    complex if any input is complex.  ``prog`` is :func:`program` of the
    tape, if the caller has kept it.
    """
    n = inputs[0].shape[0] if inputs else 1
    dtype = np.result_type(np.float64, *[a.dtype for a in inputs])
    slots: list = [None] * tape.n_slots
    k = 0
    for arr in inputs:
        for j in range(arr.shape[1]):
            slots[k] = arr[:, j]
            k += 1
    for value in tape.constants.tolist():
        slots[k] = np.float64(value)
        k += 1
    with np.errstate(all="ignore"):
        for fn, out, args, dead in (prog if prog is not None else program(tape)):
            slots[out] = fn(*[slots[a] for a in args])
            for s in dead:
                slots[s] = None
    results = []
    for out_slots in tape.output_slots:
        flat = out_slots.reshape(-1).tolist()
        res = np.empty((n, len(flat)), dtype=dtype)
        for j, s in enumerate(flat):
            res[:, j] = slots[s]
        results.append(res)
    return results
