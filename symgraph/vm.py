"""The numpy VM: the reference interpreter of a :class:`~symgraph.tape.Tape`.

It evaluates N points at once, one numpy call per instruction (never a
Python loop over points), in float64 or complex128 (complex-step
differentiation relies on the latter).  Slots are released right after their
last use, so memory follows the live set, not the program length.

A call instruction runs its callee's own program (cached on the callee
Function) on the operand columns, all N points at once, and stores the list
of the callee's output values; a result instruction picks one.  Nested calls
run on an explicit stack of frames, never by recursion.  A structured
callee (map, fold) is run by its driver: the driver turns the operand
columns into the body's (a map lays its ``n`` instances end to end, so the
body runs once over ``n * N`` points; a fold feeds the body once per step),
and turns the body's values back into the call's results.  A native callee
(:mod:`symgraph.native`: a linear solve, a rootfinder) has no program: its
structure's ``evaluate`` computes the results from the operand columns.

>>> import numpy as np, symgraph as sg
>>> x = sg.symbols("x", 2)
>>> F = sg.Function("f", [x], [x[0] * sg.exp(x[1])])
>>> run(F.tape, [np.array([[2.0, 0.0], [3.0, 0.0]])])[0].ravel().tolist()
[2.0, 3.0]
"""

from __future__ import annotations

import operator
from typing import Any, Callable, Sequence

import numpy as np

from .tape import CALL, RESULT, Tape

# (numpy function, result slot, operand slots, slots that die after it); a call's
# "function" is a _Call naming the callee Function.
Program = list[tuple[Callable, int, tuple[int, ...], tuple[int, ...]]]


class _Call:
    """Program step marker: run ``callee``'s program on the operand values."""

    __slots__ = ("callee",)

    def __init__(self, callee: Any) -> None:
        self.callee = callee


def program(tape: Tape) -> Program:
    """The VM's instruction list for ``tape``; callers keep it for reuse.

    A callee's own program is built (and cached on it) when a call first runs.
    """
    last = tape.last_use()
    dies: list[list[int]] = [[] for _ in range(tape.n_instructions)]
    for slot in np.flatnonzero((last >= 0) & (last < tape.n_instructions)).tolist():
        if slot >= tape.n_input_scalars:  # input columns are views; nothing to free
            dies[last[slot]].append(slot)
    immediates = tape.immediates.tolist()
    steps: Program = []
    for i, (op, out, args) in enumerate(tape.instructions()):
        if op is CALL:
            fn = _Call(tape.call(i)[0])
        elif op is RESULT:
            fn = operator.itemgetter(immediates[i])
        else:
            fn = op.np
        steps.append((fn, out, args, tuple(dies[i])))
    return steps


def _slots(tape: Tape, columns: list) -> list:
    """A frame's slot list: the input columns, then the constants, then room for every instruction."""
    slots: list = [None] * tape.n_slots
    slots[:len(columns)] = columns
    k = len(columns)
    for value in tape.constants.tolist():
        slots[k] = np.float64(value)
        k += 1
    return slots


def run(tape: Tape, inputs: Sequence[np.ndarray], prog: Program | None = None) -> list[np.ndarray]:
    """Evaluate ``tape`` on N points.

    ``inputs[k]`` has shape ``(N, size_k)`` (input k flattened in C order),
    dtype float64 or complex128.  Returns one ``(N, size)`` array per output,
    complex if any input is complex.  ``prog`` is :func:`program` of the
    tape, if the caller has kept it.
    """
    n = inputs[0].shape[0] if inputs else 1
    dtype = np.result_type(np.float64, *[a.dtype for a in inputs])
    slots = _slots(tape, [arr[:, j] for arr in inputs for j in range(arr.shape[1])])
    steps = prog if prog is not None else program(tape)
    # suspended callers: (tape, steps, next step, slots, call slot, width, driver or None)
    frames: list = []
    frame_tape, pc, width = tape, 0, n
    with np.errstate(all="ignore"):
        while True:
            if pc == len(steps):
                if not frames:
                    break
                values = [slots[s] for out_slots in frame_tape.output_slots for s in out_slots.reshape(-1).tolist()]
                driver = frames[-1][6]
                if driver is not None:
                    again = driver.resume(values)
                    if again is not None:  # a fold's next step: the body once more
                        slots, pc = _slots(frame_tape, again), 0
                        continue
                    values = driver.result()
                frame_tape, steps, pc, slots, out, width, _ = frames.pop()
                slots[out] = values
                continue
            fn, out, args, dead = steps[pc]
            pc += 1
            if type(fn) is _Call:
                columns = [slots[a] for a in args]
                for s in dead:
                    slots[s] = None
                callee = fn.callee
                structure = callee.structure
                driver = None
                if structure is not None and structure.kind == "native":  # numpy, no program to run
                    slots[out] = structure.evaluate(columns, width)
                    continue
                if structure is not None:  # a map or fold: its driver feeds the body's program
                    driver = structure.vm_driver(columns, width)
                    callee, columns = driver.body, driver.start()
                frames.append((frame_tape, steps, pc, slots, out, width, driver))
                if driver is not None:
                    width = driver.body_width
                frame_tape, steps, pc = callee.tape, callee._vm_program(), 0
                slots = _slots(frame_tape, columns)
                continue
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
