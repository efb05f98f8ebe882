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

from .errors import FreeSymbolError
from .expr import CONST, Expr
from .ops import OP_LIST, Op

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
