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

import ctypes
import platform
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import Any, Sequence

import numpy as np

from .call import n_results
from .expr import CALL, RESULT, Expr, building
from .function import Function, _names
from .map import sizes
from .sparse import sorted_unique
from .tape import MAX_ARITY, Tape, build_tape, tape_exprs

__all__ = ["assembled_function", "pieces_of", "ExprPiece", "CallPiece", "AssembledFunction", "object_ids",
           "id_positions"]

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
    input_ids: np.ndarray | None = None  # ids of the flat input symbols, made only if an operand must be looked up
    # call operands that are not input symbols are computed by the Expr part (as hidden outputs)
    operand_slots, hidden, hidden_at = [], [], []
    for call in calls:
        F, operands = call[0], call[1]
        ops = np.asarray(operands, dtype=object).reshape(-1)  # numbers among them are looked up as missing
        if len(ops) != sum(sizes(F.input_shapes)):
            from .errors import ShapeError

            raise ShapeError(f"assembled_function: {F.name} takes {sum(sizes(F.input_shapes))} "
                             f"operand scalars, got {len(ops)}")
        known = np.asarray(call[2], dtype=np.int64) if len(call) > 2 else None  # slots the caller knows
        slots = np.full(len(ops), -1, dtype=np.int64) if known is None else known.copy()
        look = np.flatnonzero(slots < 0)
        if len(look):
            input_ids = _input_ids(inputs) if input_ids is None else input_ids
            picked = ops if len(look) == len(ops) else ops[look]
            slots[look] = id_positions(input_ids, object_ids(picked))
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
    wanted = [[] for _ in calls]
    for out in outputs:
        for p in out:
            if isinstance(p, CallPiece):
                wanted[p.call].append(np.asarray(p.indices, dtype=np.int64).reshape(-1))
    results = [_wanted_results(call[0], w) for call, w in zip(calls, wanted)]
    arrays, starts = _append_calls(base, [call[0] for call in calls], operand_slots, results)
    # outputs: Expr pieces from the base Tape, call pieces from the appended results
    expr_slot_iter = iter(base.output_slots[:-1])
    output_slots = []
    for out in outputs:
        parts = []
        for p in out:
            if isinstance(p, ExprPiece):
                parts.append(next(expr_slot_iter).reshape(-1))
            else:
                parts.append(starts[p.call] + _positions(results[p.call], p.indices))
        output_slots.append(np.concatenate(parts) if parts else np.zeros(0, np.int64))
    tape = Tape(input_slots=base.input_slots, constants=base.constants, output_slots=tuple(output_slots),
                symbol_names=base.symbol_names, **arrays)
    return AssembledFunction(name, inputs, tape, input_names, output_names)


def _input_ids(inputs: list) -> np.ndarray:
    """The ``id`` of each input scalar (symbol), over the flat inputs in order: its slot is its position.

    >>> import symgraph as sg
    >>> x, y = sg.symbols("x", 2), sg.symbols("y")
    >>> _input_ids([x, np.array(y)]).tolist() == [id(x[0]), id(x[1]), id(y)]
    True
    """
    return np.concatenate([object_ids(arr) for arr in inputs]) if inputs else np.zeros(0, np.int64)


def _wanted_results(F: Function, wanted: list) -> np.ndarray:
    """The distinct result indices of ``F`` that the pieces read, sorted (a ShapeError if one is out of range)."""
    results = (sorted_unique(wanted[0] if len(wanted) == 1 else np.concatenate(wanted)) if wanted
               else np.zeros(0, np.int64))
    total = n_results(F)
    if len(results) and (results[0] < 0 or results[-1] >= total):
        from .errors import ShapeError

        raise ShapeError(f"assembled_function: a result index of {F.name} is outside [0, {total})")
    return results


def _positions(results: np.ndarray, indices: Any) -> np.ndarray:
    """Where each of ``indices`` sits in the sorted distinct ``results`` (which hold them all).

    >>> _positions(np.array([2, 5, 7]), [7, 2]).tolist(), _positions(np.arange(4), [3, 1]).tolist()
    ([2, 0], [3, 1])
    """
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if not len(results) or (results[0] == 0 and results[-1] == len(results) - 1):  # all of 0 .. k-1
        return idx
    if len(idx) == len(results) and (idx is results or np.array_equal(idx, results)):  # the only reader, in order
        return np.arange(len(idx), dtype=np.int64)
    if int(results[-1]) > 4 * (len(idx) + len(results)):  # sparse results: a binary search
        return np.searchsorted(results, idx)
    position = np.empty(int(results[-1]) + 1, dtype=np.int64)  # dense enough: a table, no search
    position[results] = np.arange(len(results), dtype=np.int64)
    return position[idx]


def _append_calls(base: Tape, functions: list, operand_slots: list, results: list) -> tuple[dict, list[int]]:
    """The instruction and call-table arrays of ``base`` followed, per call, by the call and its ``results``.

    Each array is allocated once at its final size and filled (a map over a
    million instances appends millions of result instructions).  Returns the
    arrays (keyword arguments of :class:`~symgraph.tape.Tape`) and, per call,
    the slot of its first result.
    """
    n0, first = base.n_instructions, base.first_instruction_slot
    total = n0 + sum(1 + len(r) for r in results)
    opcodes = np.empty(total, dtype=np.result_type(base.opcodes, np.int16))
    operands = np.empty((total, MAX_ARITY), dtype=np.result_type(base.operands, np.int64))
    immediates = np.empty(total, dtype=np.result_type(base.immediates, np.int64))
    opcodes[:n0], operands[:n0], immediates[:n0] = base.opcodes, base.operands, base.immediates
    operands[n0:, 1:] = -1  # a result's first operand is its call, set below
    callees = list(base.callees)
    callee_rows, starts = [], []
    at = n0
    for c, (F, r) in enumerate(zip(functions, results)):
        end = at + 1 + len(r)
        opcodes[at], opcodes[at + 1:end] = CALL.code, RESULT.code
        operands[at, 0] = -1
        operands[at + 1:end, 0] = first + at
        immediates[at], immediates[at + 1:end] = base.n_calls + c, r
        callee_index = next((j for j, G in enumerate(callees) if G is F), len(callees))
        if callee_index == len(callees):
            callees.append(F)
        callee_rows.append(callee_index)
        starts.append(first + at + 1)
        at = end
    counts = np.array([len(slots) for slots in operand_slots], dtype=np.int64)
    arrays = dict(opcodes=opcodes, operands=operands, immediates=immediates, callees=tuple(callees),
                  call_callee=np.concatenate([base.call_callee, np.array(callee_rows, dtype=np.int64)]),
                  call_offsets=np.concatenate([base.call_offsets, base.call_offsets[-1] + np.cumsum(counts)]),
                  call_operands=np.concatenate([base.call_operands, *operand_slots]))
    return arrays, starts


def pieces_of(values: Any, known: dict | None = None) -> tuple[list, list] | None:
    """``values`` (flat Exprs) as pieces and calls for :func:`assembled_function`, or None if no call result is in it.

    Runs of results of one call become :class:`CallPiece` s (the call made
    once, its operands as they are); everything else :class:`ExprPiece` s.
    ``known`` maps a call node to the input slots of its operands, where
    the caller knows them (-1 elsewhere); they are passed on with the call.

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
            call = (node.data, np.fromiter(node.args, dtype=object, count=len(node.args)))
            calls.append(call if known is None or node not in known else call + (known[node],))
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
    else:  # numbers among the values
        results = np.array([k for k, e in enumerate(flat) if is_result(e)], dtype=np.int64)
    picked = flat if len(results) == len(flat) else [flat[k] for k in results.tolist()]
    owner[results] = np.fromiter(map(id, map(_FIRST, map(_ARGS, picked))), dtype=np.int64, count=len(picked))
    return owner


# ------------------------------------------------------------------ objects by identity, in bulk
_CPYTHON = platform.python_implementation() == "CPython"
_DIRECT_SPAN = 64  # a direct table of :func:`id_positions` is at most this many entries per id


def object_ids(values: Any) -> np.ndarray:
    """``id`` of each element of the object array ``values``, flat, as int64.

    In CPython an object array holds the objects' addresses, which are their
    ids: they are read in bulk with no Python call per element (elsewhere,
    and if the two ever disagree, ``map(id, ...)``).

    >>> a, b = object(), object()
    >>> object_ids(np.array([a, b, a], dtype=object)).tolist() == [id(a), id(b), id(a)]
    True
    """
    arr = np.ascontiguousarray(np.asarray(values, dtype=object).reshape(-1))
    n = len(arr)
    if _CPYTHON and n and arr.itemsize == 8:
        ids = np.frombuffer((ctypes.c_int64 * n).from_address(arr.ctypes.data), dtype=np.int64).copy()
        if int(ids[0]) == id(arr[0]) and int(ids[-1]) == id(arr[-1]):
            return ids
    return np.fromiter(map(id, arr.tolist()), dtype=np.int64, count=n)


def id_positions(table: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Per id in ``query``: its position in the distinct ids ``table``, -1 where it is not there (int64).

    Ids are addresses: when the table's span is small (objects made
    together, as ``sg.symbols`` makes them), a direct table indexed by
    ``(id - min) >> shift`` (``shift``: the alignment the table's ids share)
    answers each query; otherwise a sorted copy and a binary search.

    >>> id_positions(np.array([48, 16, 96]), np.array([16, 32, 96, 16, 7])).tolist()
    [1, -1, 2, 1, -1]
    """
    table, query = np.asarray(table, dtype=np.int64), np.asarray(query, dtype=np.int64)
    out = np.full(len(query), -1, dtype=np.int64)
    if not len(table) or not len(query):
        return out
    lo = int(table.min())
    offsets = table - lo
    common = int(np.bitwise_or.reduce(offsets))
    shift = (common & -common).bit_length() - 1 if common else 0
    size = (int(offsets.max()) >> shift) + 1
    if size <= _DIRECT_SPAN * len(table) + 4096 and len(table) < 2 ** 31:
        direct = np.full(size, -1, dtype=np.int32)
        keys = offsets >> shift
        direct[keys] = np.arange(len(table), dtype=np.int32)
        if np.all(direct[keys] == np.arange(len(table))):  # else repeated ids: the search below
            inside = np.flatnonzero((query >= lo) & (query - lo <= int(offsets.max())))
            at = direct[(query[inside] - lo) >> shift].astype(np.int64)
            out[inside] = np.where(table[np.maximum(at, 0)] == query[inside], at, -1)
            return out
    order = np.argsort(table, kind="stable")
    ordered = table[order]
    at = np.minimum(np.searchsorted(ordered, query, side="right") - 1, len(table) - 1)
    found = (at >= 0) & (ordered[np.maximum(at, 0)] == query)
    out[found] = order[at[found]]
    return out
