"""Tape: a frozen graph as a flat program, the contract with every backend.

Slots are numbered in three consecutive blocks: input scalars (in input
order, each input flattened in C order), constants, then one slot per
instruction, written by that instruction.  Instructions are in topological
order; each has an opcode (index into :data:`symgraph.ops.OP_LIST`) and up
to three operand slots.  Backends (the numpy VM, the C emitter) read only a
Tape and the op table.

>>> import symgraph as sg
>>> x = sg.symbols("x")
>>> tape = sg.Function("f", [x], [sg.sin(x) * 2]).tape
>>> print(tape.listing())
@0 = input 0 [] (x)
@1 = 2
@2 = sin(@0)
@3 = mul(@1, @2)
output 0 [] = @3
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from .errors import FreeSymbolError, SerializationError
from .expr import CONST, Expr
from .ops import OP_LIST, OPS, Op

MAX_ARITY = 3


@dataclass(frozen=True, eq=False)
class Tape:
    """A topologically ordered program over numbered slots.

    Attributes:
        input_slots: per input, an int array shaped like the input, holding
            the slot of each element (slots ``0 .. n_input_scalars-1``).
        constants: float64 values of the constant slots, which follow the inputs.
        opcodes: int16 opcode of each instruction.
        operands: ``(n_instructions, 3)`` int64 operand slots, -1 where unused.
        output_slots: per output, an int array shaped like the output.
        symbol_names: the name of each input scalar (for listings and C comments).
    """

    input_slots: tuple[np.ndarray, ...]
    constants: np.ndarray
    opcodes: np.ndarray
    operands: np.ndarray
    output_slots: tuple[np.ndarray, ...]
    symbol_names: tuple[str, ...]

    @property
    def n_input_scalars(self) -> int:
        """Number of input slots."""
        return len(self.symbol_names)

    @property
    def first_instruction_slot(self) -> int:
        """Slot written by instruction 0."""
        return self.n_input_scalars + len(self.constants)

    @property
    def n_instructions(self) -> int:
        """Number of instructions (operations)."""
        return len(self.opcodes)

    @property
    def n_slots(self) -> int:
        """Total number of slots (inputs + constants + instructions)."""
        return self.first_instruction_slot + self.n_instructions

    def instructions(self) -> Iterator[tuple[Op, int, tuple[int, ...]]]:
        """Yield ``(op, result_slot, operand_slots)`` in execution order.

        >>> import symgraph as sg
        >>> x = sg.symbols("x")
        >>> [(op.name, out, a) for op, out, a in sg.Function("f", [x], [-x]).tape.instructions()]
        [('neg', 1, (0,))]
        """
        first = self.first_instruction_slot
        operands = self.operands.tolist()
        for i, code in enumerate(self.opcodes.tolist()):
            op = OP_LIST[code]
            yield op, first + i, tuple(operands[i][: op.arity])

    def last_use(self) -> np.ndarray:
        """Per slot, the index of the last instruction that reads it.

        -1 for slots never read; ``n_instructions`` for slots that are outputs
        (they must live to the end).  Backends free or reuse a slot after this.

        >>> import symgraph as sg
        >>> x = sg.symbols("x")
        >>> sg.Function("f", [x], [sg.sin(x) + 1]).tape.last_use().tolist()
        [0, 1, 1, 2]
        """
        last = np.full(self.n_slots, -1, dtype=np.int64)
        index = np.arange(self.n_instructions, dtype=np.int64)
        for k in range(MAX_ARITY):
            column = self.operands[:, k]
            used = column >= 0
            np.maximum.at(last, column[used], index[used])
        for slots in self.output_slots:
            last[slots.reshape(-1)] = self.n_instructions
        return last

    def listing(self, limit: int | None = None) -> str:
        """Readable text of the program, one slot or instruction per line.

        ``limit`` keeps only the first that many instruction lines.
        """
        lines = []
        for i, slots in enumerate(self.input_slots):
            for index, slot in np.ndenumerate(slots):
                lines.append(f"@{slot} = input {i} {list(index)} ({self.symbol_names[slot]})")
        for k, value in enumerate(self.constants.tolist()):
            lines.append(f"@{self.n_input_scalars + k} = {_const_text(value)}")
        for count, (op, out, args) in enumerate(self.instructions()):
            if limit is not None and count >= limit:
                lines.append(f"... {self.n_instructions - limit} more instructions")
                break
            lines.append(f"@{out} = {op.name}({', '.join(f'@{a}' for a in args)})")
        for i, slots in enumerate(self.output_slots):
            for index, slot in np.ndenumerate(slots):
                lines.append(f"output {i} {list(index)} = @{slot}")
        return "\n".join(lines)


def _const_text(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)


# While freezing, a slot is first recorded as a provisional code: inputs keep
# their final slot, the i-th instruction is _INSTR + i and the j-th constant
# _CONST + j; one vectorized remap then yields final slots (inputs, constants,
# instructions), so the graph is walked only once.
_INSTR, _CONST = 1 << 40, 1 << 50
_EMIT = object()


def build_tape(inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> Tape:
    """Freeze output graphs over input symbols into a :class:`Tape`.

    ``inputs`` are object arrays of distinct symbols, ``outputs`` object
    arrays of Expr (validated by :class:`~symgraph.function.Function`).
    Raises :class:`FreeSymbolError` naming symbols the outputs use that are
    not inputs.  One iterative post-order walk (as
    :func:`~symgraph.expr.topological`) numbers every node.
    """
    code_of: dict[Expr, int] = {}  # Expr hashes by identity
    names: list[str] = []
    for arr in inputs:
        for sym in arr.reshape(-1):
            code_of[sym] = len(names)
            names.append(sym.data)
    constants: list[float] = []
    free: list[Expr] = []
    opcodes: list[int] = []
    arity: list[int] = []
    flat: list[int] = []  # operand codes of all instructions, concatenated
    lookup = code_of.__getitem__
    for root in (e for arr in outputs for e in arr.reshape(-1)):
        stack = [root]
        push, pop = stack.append, stack.pop
        while stack:
            node = pop()
            if node is _EMIT:
                node = pop()
                args = node.args
                if node.data is not None:  # call nodes: not on Tapes yet (issue 10, layer 1)
                    raise FreeSymbolError("Functions of graphs with calls cannot be frozen yet")
                code_of[node] = _INSTR + len(opcodes)
                opcodes.append(node.op.code)
                arity.append(len(args))
                flat.extend(map(lookup, args))
            elif node not in code_of:
                # In a DAG a node popped here was never expanded: any copy of
                # it above an expanded one would make it its own descendant.
                args = node.args
                if args:
                    push(node)
                    push(_EMIT)
                    for a in reversed(args):
                        if a not in code_of:
                            push(a)
                elif node.op is CONST:
                    code_of[node] = _CONST + len(constants)
                    constants.append(node.data)
                else:
                    code_of[node] = -1
                    free.append(node)
    if free:
        shown = ", ".join(repr(s.data) for s in free[:10]) + (" ..." if len(free) > 10 else "")
        raise FreeSymbolError(f"the outputs depend on {len(free)} symbol(s) that are not inputs: {shown}; "
                              "add them to the Function's inputs")
    remap = _remapper(len(names), len(constants))
    return Tape(
        input_slots=tuple(_slot_array(arr, code_of, remap) for arr in inputs),
        constants=np.array(constants, dtype=np.float64),
        opcodes=np.array(opcodes, dtype=np.int16),
        operands=_operand_matrix(np.array(arity, dtype=np.int64), remap(np.array(flat, dtype=np.int64))),
        output_slots=tuple(_slot_array(arr, code_of, remap) for arr in outputs),
        symbol_names=tuple(names),
    )


def _remapper(n_inputs: int, n_constants: int):
    def remap(codes: np.ndarray) -> np.ndarray:
        return np.where(codes >= _CONST, codes - _CONST + n_inputs,
                        np.where(codes >= _INSTR, codes - _INSTR + n_inputs + n_constants, codes))

    return remap


def _operand_matrix(arity: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """``(n, MAX_ARITY)`` operand slots from concatenated operands, -1 where unused."""
    start = np.cumsum(arity) - arity
    operands = np.full((len(arity), MAX_ARITY), -1, dtype=np.int64)
    for k in range(MAX_ARITY):
        has = arity > k
        operands[has, k] = flat[start[has] + k]
    return operands


def _slot_array(arr: np.ndarray, code_of: dict[Expr, int], remap) -> np.ndarray:
    flat = np.array([code_of[e] for e in arr.reshape(-1)], dtype=np.int64)
    return remap(flat).reshape(arr.shape)


# ------------------------------------------------------------ plain data
TAPE_FORMAT = 1  # version of the layout below; bump it when the layout changes


def tape_to_data(tape: Tape) -> tuple:
    """The Tape as plain data: a tuple of str, ints, tuples of str and numpy arrays.

    ``("symgraph.Tape", TAPE_FORMAT, op_names, codes, operands, constants,
    input_slots, output_slots, symbol_names)``: ``op_names`` are the names
    of the ops used, ``codes`` (int32) index into them, so the data does not
    depend on the order of the op table.  Read back with :func:`tape_from_data`.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> data = tape_to_data(sg.Function("f", [x], [sg.sin(x) * 2]).tape)
    >>> data[:3], data[3].tolist()
    (('symgraph.Tape', 1, ('mul', 'sin')), [1, 0])
    """
    used = np.unique(tape.opcodes)
    names = tuple(OP_LIST[c].name for c in used.tolist())
    codes = np.searchsorted(used, tape.opcodes).astype(np.int32)
    return ("symgraph.Tape", TAPE_FORMAT, names, codes, tape.operands.astype(np.int64),
            tape.constants.astype(np.float64), tuple(a.astype(np.int64) for a in tape.input_slots),
            tuple(a.astype(np.int64) for a in tape.output_slots), tuple(tape.symbol_names))


def tape_from_data(data: object) -> Tape:
    """A :class:`Tape` from :func:`tape_to_data`'s tuple, validated; SerializationError if malformed.

    Checked: the header and version, every op name is in the op table (and
    not a leaf), codes and operand slots are integers in range, each
    instruction reads only earlier slots and exactly as many as its op's
    arity, input slots number the input scalars in order, output slots
    exist, names are str.  Nothing is evaluated.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> tape = sg.Function("f", [x], [sg.sin(x) * 2]).tape
    >>> print(tape_from_data(tape_to_data(tape)).listing())
    @0 = input 0 [] (x)
    @1 = 2
    @2 = sin(@0)
    @3 = mul(@1, @2)
    output 0 [] = @3
    """
    if not (isinstance(data, tuple) and len(data) == 9 and data[0] == "symgraph.Tape"):
        raise SerializationError(f"not a symgraph Tape record (expected a 9-tuple starting with 'symgraph.Tape', "
                                 f"got {type(data).__name__})")
    _, version, names, codes, operands, constants, input_slots, output_slots, symbol_names = data
    if version != TAPE_FORMAT:
        raise SerializationError(f"Tape format version {version!r} is not supported (this symgraph reads "
                                 f"version {TAPE_FORMAT})")
    if not isinstance(names, tuple) or not all(isinstance(n, str) for n in names):
        raise SerializationError("Tape op names must be a tuple of str")
    unknown = [n for n in names if n not in OPS or OPS[n].arity == 0]
    if unknown:
        raise SerializationError(f"Tape uses unknown op(s) {unknown}; known: {sorted(OPS)}")
    if not isinstance(symbol_names, tuple) or not all(isinstance(n, str) and n for n in symbol_names):
        raise SerializationError("Tape symbol names must be a tuple of non-empty str")
    codes = _int_array(codes, "op codes", 1)
    operands = _int_array(operands, "operands", 2)
    if not isinstance(constants, np.ndarray) or constants.dtype != np.float64 or constants.ndim != 1:
        raise SerializationError("Tape constants must be a 1-d float64 array")
    n, n_in = len(codes), len(symbol_names)
    first = n_in + len(constants)
    if operands.shape != (n, MAX_ARITY):
        raise SerializationError(f"Tape operands must have shape ({n}, {MAX_ARITY}), got {operands.shape}")
    if n and (codes.min() < 0 or codes.max() >= len(names)):
        raise SerializationError("Tape op codes out of range")
    arity = np.array([OPS[name].arity for name in names], dtype=np.int64)[codes] if n else np.zeros(0, np.int64)
    limit = first + np.arange(n, dtype=np.int64)  # an instruction reads only earlier slots
    for k in range(MAX_ARITY):
        column, used = operands[:, k], arity > k
        if np.any(column[~used] != -1) or np.any(column[used] < 0) or np.any(column[used] >= limit[used]):
            raise SerializationError(f"Tape operand column {k} is out of range (each instruction must read "
                                     "only earlier slots, and unused operands are -1)")
    input_slots = _slot_arrays(input_slots, "input")
    offset = 0
    for slots in input_slots:
        if not np.array_equal(slots.reshape(-1), np.arange(offset, offset + slots.size)):
            raise SerializationError("Tape input slots must number the input scalars in order")
        offset += slots.size
    if offset != n_in:
        raise SerializationError(f"Tape input slots cover {offset} scalars, but {n_in} symbol names are given")
    output_slots = _slot_arrays(output_slots, "output")
    if any(s.size and (s.min() < 0 or s.max() >= first + n) for s in output_slots):
        raise SerializationError(f"Tape output slots out of range (the Tape has {first + n} slots)")
    opcodes = np.array([OPS[name].code for name in names], dtype=np.int16)[codes] if n else np.zeros(0, np.int16)
    return Tape(input_slots=input_slots, constants=constants.copy(), opcodes=opcodes,
                operands=operands.astype(np.int64), output_slots=output_slots, symbol_names=symbol_names)


def _int_array(value: object, what: str, ndim: int) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "iu" or value.ndim != ndim:
        raise SerializationError(f"Tape {what} must be a {ndim}-d integer array")
    return value.astype(np.int64)


def _slot_arrays(value: object, what: str) -> tuple[np.ndarray, ...]:
    if not isinstance(value, tuple):
        raise SerializationError(f"Tape {what} slots must be a tuple of integer arrays")
    out = []
    for arr in value:
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "iu":
            raise SerializationError(f"Tape {what} slots must be a tuple of integer arrays")
        out.append(arr.astype(np.int64))
    return tuple(out)


def tape_exprs(tape: Tape, inputs: Sequence[np.ndarray]) -> list[Expr]:
    """Rebuild one Expr per slot from a Tape over the given input symbols.

    The inverse of :func:`build_tape` (used by passes that rewrite programs).
    """
    from .expr import apply, const

    values: list[Expr] = [s for arr in inputs for s in arr.reshape(-1)]
    values.extend(const(v) for v in tape.constants.tolist())
    for op, _, args in tape.instructions():
        values.append(apply(op, *[values[a] for a in args]))
    return values
