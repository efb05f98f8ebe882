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

from .expr import building
from .tape import CALL, MAX_ARITY, RESULT, Tape


def locality_order(tape: Tape) -> np.ndarray:
    """A topological order of ``tape``'s instructions that keeps live ranges short.

    The operand edges are gathered with numpy; one loop over a heap does the
    rest, computing each key when its instruction's last operand is done.

    >>> import symgraph as sg
    >>> x = sg.symbols("x", 2)
    >>> locality_order(sg.Function("f", [x], [sg.sin(x[1]), sg.cos(x[0])]).tape).tolist()
    [1, 0]
    """
    n = tape.n_instructions
    reader, slot = operand_edges(tape)
    first = tape.first_instruction_slot
    inner = slot >= first  # an operand made by an instruction: one wait, one release per occurrence
    key = np.full(n, tape.n_slots, dtype=np.int64)  # n_slots: larger than any input slot
    direct = ~inner & (slot < tape.n_input_scalars)
    np.minimum.at(key, reader[direct], slot[direct])
    source, user = slot[inner] - first, reader[inner]
    by_source = np.argsort(source, kind="stable")
    users = user[by_source].tolist()
    start = np.searchsorted(source[by_source], np.arange(n + 1)).tolist()
    waiting = np.bincount(user, minlength=n).tolist()
    with building():  # many small objects: the cyclic collector's passes would cost as much as the loop
        return np.array(_list_schedule(key.tolist(), users, start, waiting, n), dtype=np.int64)


def _list_schedule(key: list, users: list, start: list, waiting: list, n: int) -> list:
    """Pop the ready instruction of smallest ``(key, index)``; a user's key is the least of its own
    and its operands' (lowered as each operand is popped, final when its last one is)."""
    ready = [k * n + i for i, (k, w) in enumerate(zip(key, waiting)) if not w]  # (key, index) as one int
    heapq.heapify(ready)
    pop, push, pushpop = heapq.heappop, heapq.heappush, heapq.heappushpop
    order: list[int] = []
    append = order.append
    # The first instruction made ready by a pop is held back and pushed by the next pop's heappushpop
    # (one sift instead of two, and none when it is the least); codes are distinct, so the order is the same.
    held = -1
    while True:
        if held >= 0:
            code = pushpop(ready, held) if ready else held
            held = -1
        elif ready:
            code = pop(ready)
        else:
            break
        k, i = divmod(code, n)
        append(i)
        for e in range(start[i], start[i + 1]):
            u = users[e]
            if k < key[u]:
                key[u] = k
            w = waiting[u] - 1
            waiting[u] = w
            if not w:
                if held < 0:
                    held = key[u] * n + u
                else:
                    push(ready, key[u] * n + u)
    return order


def operand_edges(tape: Tape) -> tuple[np.ndarray, np.ndarray]:
    """``(reader, slot)``: one pair per operand occurrence of each instruction (a call's from its table).

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> [a.tolist() for a in operand_edges(sg.Function("f", [x], [sg.sin(x) + 1]).tape)]
    [[0, 1, 1], [0, 1, 2]]
    """
    n = tape.n_instructions
    operands = tape.operands.reshape(n, MAX_ARITY)
    is_call = tape.opcodes == CALL.code
    used = (operands >= 0) & ~is_call[:, None]
    reader = np.broadcast_to(np.arange(n, dtype=np.int64)[:, None], operands.shape)[used]
    slot = operands[used].astype(np.int64)
    if tape.n_calls:
        calls = np.flatnonzero(is_call)
        rows = tape.immediates[calls].astype(np.int64)
        lo, hi = tape.call_offsets[rows], tape.call_offsets[rows + 1]
        counts = hi - lo
        within = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
        reader = np.concatenate([reader, np.repeat(calls, counts)])
        slot = np.concatenate([slot, tape.call_operands[np.repeat(lo, counts) + within].astype(np.int64)])
    return reader, slot


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
