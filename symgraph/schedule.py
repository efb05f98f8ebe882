"""Instruction scheduling: reorder a Tape so values are used soon after they are made.

A Tape's order comes from a depth-first walk of its outputs, one output
after another: the gradient of a chained model is computed long after the
objective terms it reuses.  A backend that cuts the program into pieces (the
C emitter's part functions) must carry every such value across the cut.

:func:`locality_order` is a list schedule: among the instructions whose
operands are ready it always runs the one with the smallest *key*, the lowest
input slot it depends on (ties: original position).  Models indexed along an
axis (chains, time steps, meshes) are then computed index by index across all
outputs at once, which for the Luksan model with gradient, Jacobian and
Hessian cuts the values crossing part boundaries about threefold.  Any
topological order is valid, so the results are unchanged.

>>> import symgraph as sg
>>> x = sg.symbols("x", 3)
>>> F = sg.Function("f", [x], [x[2] * x[1], x[0] + 1])
>>> T = scheduled(F.tape)
>>> [op.name for op, _, _ in T.instructions()]
['add', 'mul']
"""

from __future__ import annotations

import heapq

import numpy as np

from .tape import CALL, MAX_ARITY, RESULT, Tape


def locality_order(tape: Tape) -> np.ndarray:
    """A topological order of ``tape``'s instructions that keeps live ranges short.

    >>> import symgraph as sg
    >>> x = sg.symbols("x", 2)
    >>> locality_order(sg.Function("f", [x], [sg.sin(x[1]), sg.cos(x[0])]).tape).tolist()
    [1, 0]
    """
    n = tape.n_instructions
    first, n_in = tape.first_instruction_slot, tape.n_input_scalars
    users: list[list[int]] = [[] for _ in range(n)]
    waiting = [0] * n
    key = [0] * n
    none = tape.n_slots  # larger than any input slot
    for i, row in enumerate(tape.operand_rows()):  # a call's operands too
        k = none
        for a in row:
            if a >= first:  # one wait per operand occurrence, one release per user entry
                j = a - first
                if key[j] < k:
                    k = key[j]
                users[j].append(i)
                waiting[i] += 1
            elif 0 <= a < n_in and a < k:
                k = a
        key[i] = k
    ready = [(key[i], i) for i in range(n) if waiting[i] == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        _, i = heapq.heappop(ready)
        order.append(i)
        for u in users[i]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, (key[u], u))
    return np.array(order, dtype=np.int64)


def permuted(tape: Tape, order: np.ndarray) -> Tape:
    """``tape`` with its instructions run in ``order`` (a topological order), slots renumbered.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> T = sg.Function("f", [x], [sg.sin(x), sg.cos(x)]).tape
    >>> [op.name for op, _, _ in permuted(T, np.array([1, 0])).instructions()]
    ['cos', 'sin']
    """
    first = tape.first_instruction_slot
    new_slot = np.arange(tape.n_slots, dtype=np.int64)
    new_slot[first + order] = first + np.arange(len(order), dtype=np.int64)
    operands = tape.operands[order]
    operands = np.where(operands >= 0, new_slot[np.maximum(operands, 0)], -1).reshape(-1, MAX_ARITY)
    return Tape(
        input_slots=tape.input_slots,
        constants=tape.constants,
        opcodes=tape.opcodes[order],
        operands=operands,
        output_slots=tuple(new_slot[s] for s in tape.output_slots),
        symbol_names=tape.symbol_names,
        immediates=tape.immediates[order],  # call rows stay, their operand slots are renumbered
        callees=tape.callees,
        call_callee=tape.call_callee,
        call_offsets=tape.call_offsets,
        call_operands=new_slot[tape.call_operands],
    )


def scheduled(tape: Tape) -> Tape:
    """``tape`` reordered by :func:`locality_order` (as it is when it holds only calls and results)."""
    ops = tape.opcodes
    if len(ops) and np.all((ops == CALL.code) | (ops == RESULT.code)):
        return tape  # glue: the emitter keeps each call's results with it, and copies them as runs
    return permuted(tape, locality_order(tape))
