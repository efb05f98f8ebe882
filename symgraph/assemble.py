"""Functions assembled from calls and their result indices, without a result node per scalar.

:func:`assembled_function` builds a :class:`~symgraph.Function` whose
outputs are concatenations of *pieces*: ordinary Expr arrays, or results of
calls given by index arrays (``(call k, result indices)``).  The Tape is
laid out with numpy: the Expr pieces (and the call operands that are not
input symbols) go through :func:`~symgraph.tape.build_tape`, then each call
and the results the outputs read are appended as instructions.  No Expr is
made per result (``sg.NLP`` on a map over 10^6 instances would otherwise
make millions); the Function's ``outputs`` are rebuilt from the Tape only
if something asks for them.

>>> import numpy as np, symgraph as sg
>>> x = sg.symbols("x", 3)
>>> a = sg.symbols("a")
>>> M = sg.Function("sq", [a], [a * a]).map(3)
>>> F = assembled_function("f", [x], [[CallPiece(0, np.array([2, 0])), ExprPiece(np.array([x[1] + 1]))]],
...                        [(M, x)])
>>> F(np.array([1.0, 2.0, 3.0]))
array([9., 1., 3.])
>>> [str(e) for e in F.outputs[0]]
['sq_map3(x[0], x[1], x[2])[2]', 'sq_map3(x[0], x[1], x[2])[0]', '1 + x[1]']
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import Any, Sequence

import numpy as np

from .call import n_results
from .expr import CALL, RESULT, Expr, building
from .function import Function, _names
from .map import sizes
from .sparse import sorted_unique
from .tape import MAX_ARITY, Tape, build_tape, tape_exprs

__all__ = ["assembled_function", "pieces_of", "ExprPiece", "CallPiece", "AssembledFunction"]

_OP, _ARGS, _DATA, _FIRST = attrgetter("op"), attrgetter("args"), attrgetter("data"), itemgetter(0)


@dataclass(frozen=True)
class ExprPiece:
    """Output values given as Exprs (a flat object array)."""

    values: np.ndarray

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class CallPiece:
    """Output values read from call ``call`` (an index into the calls list): its flat results ``indices``."""

    call: int
    indices: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)


class AssembledFunction(Function):
    """A Function built from a Tape laid out by :func:`assembled_function`; ``outputs`` made on first use."""

    def __init__(self, name: str, inputs: Sequence[np.ndarray], tape: Tape, input_names: Sequence[str] | None,
                 output_names: Sequence[str] | None) -> None:
        from .function import _default_input_name

        self.name = name
        self.inputs = tuple(inputs)
        self.tape = tape
        self.output_sparsity = (None,) * len(tape.output_slots)
        defaults = ([_default_input_name(k, v) for k, v in enumerate(self.inputs)] if input_names is None
                    else [f"i{k}" for k in range(len(self.inputs))])  # names given: no scan of every symbol
        self.input_names = _names(input_names, defaults, "input")
        self.output_names = _names(output_names, [f"o{k}" for k in range(len(tape.output_slots))], "output")
        self._program = None
        self._lazy_outputs: tuple | None = None

    @property
    def n_out(self) -> int:
        return len(self.tape.output_slots)

    @property
    def output_shapes(self) -> tuple[tuple[int, ...], ...]:
        return tuple(s.shape for s in self.tape.output_slots)

    @property
    def outputs(self) -> tuple:
        """The output Exprs, rebuilt from the Tape (results become result nodes) on first use."""
        if self._lazy_outputs is None:
            with building():
                values = np.empty(self.tape.n_slots, dtype=object)
                values[:] = tape_exprs(self.tape, list(self.inputs))
                self._lazy_outputs = tuple(values[s] for s in self.tape.output_slots)
        return self._lazy_outputs


def assembled_function(name: str, inputs: Sequence[np.ndarray], outputs: Sequence[Sequence[Any]],
                       calls: Sequence[tuple[Function, Any]], input_names: Sequence[str] | None = None,
                       output_names: Sequence[str] | None = None) -> Function:
    """A Function of ``inputs`` whose output ``k`` is the concatenation of the pieces ``outputs[k]``.

    Args:
        name: the Function's name.
        inputs: object arrays of distinct symbols.
        outputs: per output, a list of :class:`ExprPiece` and :class:`CallPiece` (flat; the output is 1-d).
        calls: ``(F, operands)`` or ``(F, operands, slots)``: call ``k`` is ``F`` on the flat object array
            ``operands`` (Exprs or numbers, as many as ``F`` has input scalars); ``slots``, if given, holds
            the input slot of each operand where the caller knows it (-1 elsewhere: looked up).

    See the module docstring for an example.
    """
    from .array import as_expr_array

    inputs = [np.asarray(a, dtype=object) for a in inputs]
    flat_inputs: list = []
    for arr in inputs:
        flat_inputs.extend(arr.reshape(-1).tolist())
    slot_of = dict(zip(flat_inputs, range(len(flat_inputs))))
    # call operands that are not input symbols are computed by the Expr part (as hidden outputs)
    operand_slots, hidden, hidden_at = [], [], []
    for call in calls:
        F, operands = call[0], call[1]
        ops = np.asarray(operands, dtype=object).reshape(-1)  # numbers among them are looked up as missing
        if len(ops) != sum(sizes(F.input_shapes)):
            from .errors import ShapeError

            raise ShapeError(f"assembled_function: {F.name} takes {sum(sizes(F.input_shapes))} "
                             f"operand scalars, got {len(ops)}")
        get = slot_of.get
        known = np.asarray(call[2], dtype=np.int64) if len(call) > 2 else None  # slots the caller knows
        if known is None:
            slots = np.fromiter(map(get, ops.tolist(), repeat(-1)), dtype=np.int64, count=len(ops))
        else:
            slots = known.copy()
            look = np.flatnonzero(slots < 0)
            slots[look] = np.fromiter(map(get, ops[look].tolist(), repeat(-1)), dtype=np.int64, count=len(look))
        missing = np.flatnonzero(slots < 0)
        hidden.append(as_expr_array(ops[missing]).reshape(-1))
        hidden_at.append(missing)
        operand_slots.append(slots)
    expr_pieces = [p.values for out in outputs for p in out if isinstance(p, ExprPiece)]
    roots = [as_expr_array(v).reshape(-1) for v in expr_pieces] + [np.concatenate(hidden) if hidden else
                                                                     np.empty(0, dtype=object)]
    with building():
        base = build_tape(inputs, roots)
    # hidden operands: their slots in the base Tape
    hidden_slots = base.output_slots[-1].reshape(-1)
    k = 0
    for slots, at in zip(operand_slots, hidden_at):
        slots[at] = hidden_slots[k:k + len(at)]
        k += len(at)
    # append each call, then the results the outputs read
    first = base.first_instruction_slot
    n0 = base.n_instructions
    wanted = [[] for _ in calls]
    for out in outputs:
        for p in out:
            if isinstance(p, CallPiece):
                wanted[p.call].append(np.asarray(p.indices, dtype=np.int64).reshape(-1))
    opcodes, operands, immediates = [base.opcodes], [base.operands], [base.immediates]
    callees = list(base.callees)
    call_callee, call_offsets, call_operands = [base.call_callee], [base.call_offsets], [base.call_operands]
    n_call_rows = base.n_calls
    offset = int(base.call_offsets[-1])
    result_lists, result_starts = [], []
    index = n0
    for c, (F, *_) in enumerate(calls):
        results = sorted_unique(np.concatenate(wanted[c])) if wanted[c] else np.zeros(0, np.int64)
        total = n_results(F)
        if len(results) and (results[0] < 0 or results[-1] >= total):
            from .errors import ShapeError

            raise ShapeError(f"assembled_function: a result index of {F.name} is outside [0, {total})")
        call_slot = first + index
        opcodes.append(np.concatenate([[CALL.code], np.full(len(results), RESULT.code)]).astype(np.int16))
        rows = np.full((len(results) + 1, MAX_ARITY), -1, dtype=np.int64)
        rows[1:, 0] = call_slot
        operands.append(rows)
        immediates.append(np.concatenate([[n_call_rows], results]).astype(np.int64))
        for j, G in enumerate(callees):
            if G is F:
                callee_index = j
                break
        else:
            callee_index = len(callees)
            callees.append(F)
        call_callee.append(np.array([callee_index], dtype=np.int64))
        offset += len(operand_slots[c])
        call_offsets.append(np.array([offset], dtype=np.int64))
        call_operands.append(operand_slots[c])
        n_call_rows += 1
        result_lists.append(results)
        result_starts.append(call_slot + 1)
        index += 1 + len(results)
    # outputs: Expr pieces from the base Tape, call pieces from the appended results
    expr_slot_iter = iter(base.output_slots[:-1])
    output_slots = []
    for out in outputs:
        parts = []
        for p in out:
            if isinstance(p, ExprPiece):
                parts.append(next(expr_slot_iter).reshape(-1))
            else:
                idx = np.asarray(p.indices, dtype=np.int64).reshape(-1)
                parts.append(result_starts[p.call] + np.searchsorted(result_lists[p.call], idx))
        output_slots.append(np.concatenate(parts) if parts else np.zeros(0, np.int64))
    tape = Tape(input_slots=base.input_slots, constants=base.constants, opcodes=np.concatenate(opcodes),
                operands=np.concatenate(operands), output_slots=tuple(output_slots),
                symbol_names=base.symbol_names, immediates=np.concatenate(immediates), callees=tuple(callees),
                call_callee=np.concatenate(call_callee), call_offsets=np.concatenate(call_offsets),
                call_operands=np.concatenate(call_operands))
    return AssembledFunction(name, inputs, tape, input_names, output_names)



def pieces_of(values: Any) -> tuple[list, list] | None:
    """``values`` (flat Exprs) as pieces and calls for :func:`assembled_function`, or None if no call result is in it.

    Runs of results of one call become :class:`CallPiece` s (the call made
    once, its operands as they are); everything else :class:`ExprPiece` s.

    >>> import numpy as np, symgraph as sg
    >>> x, a = sg.symbols("x", 3), sg.symbols("a")
    >>> r = sg.Function("sq", [a], [a ** 2]).map(3)(x)
    >>> pieces, calls = pieces_of(np.concatenate([r, [x[0] + 1]]))
    >>> [type(p).__name__ for p in pieces], len(calls)
    (['CallPiece', 'ExprPiece'], 1)
    """
    flat = np.asarray(values, dtype=object).reshape(-1)
    owner = _owners(flat.tolist())
    if not owner.any():
        return None
    # runs of equal owners (0: not a result): one piece each
    starts = np.flatnonzero(np.concatenate([[True], owner[1:] != owner[:-1]])) if len(owner) else owner
    ends = np.append(starts[1:], len(owner))
    pieces: list = []
    calls: list = []
    call_index: dict = {}
    for start, end in zip(starts.tolist(), ends.tolist()):
        run = flat[start:end]
        if not owner[start]:
            pieces.append(ExprPiece(run.copy()))
            continue
        node = run[0].args[0]
        if node not in call_index:
            call_index[node] = len(calls)
            calls.append((node.data, np.fromiter(node.args, dtype=object, count=len(node.args))))
        indices = np.fromiter(map(_DATA, run.tolist()), dtype=np.int64, count=len(run))
        pieces.append(CallPiece(call_index[node], indices))
    return pieces, calls


def _owners(flat: list) -> np.ndarray:
    """Per value: the ``id`` of its call node if it is a result node, else 0 (int64, found in bulk).

    >>> import symgraph as sg
    >>> a = sg.symbols("a")
    >>> r = sg.Function("sq", [a], [a ** 2]).map(2)(sg.symbols("x", 2))
    >>> o = _owners([r[0], a, r[1]]); bool(o[0] == o[2] != 0), int(o[1])
    (True, 0)
    """
    from .call import is_result

    owner = np.zeros(len(flat), dtype=np.int64)
    if set(map(type, flat)) <= {Expr}:
        ops = np.fromiter(map(id, map(_OP, flat)), dtype=np.int64, count=len(flat))
        results = np.flatnonzero(ops == id(RESULT))
        picked = [flat[k] for k in results.tolist()]
    else:  # numbers among the values
        results = np.array([k for k, e in enumerate(flat) if is_result(e)], dtype=np.int64)
        picked = [flat[k] for k in results.tolist()]
    owner[results] = np.fromiter(map(id, map(_FIRST, map(_ARGS, picked))), dtype=np.int64, count=len(picked))
    return owner
