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

Calls (symgraph/call.py) add two instructions.  A ``call`` instruction has
no operands in ``operands`` (its row is -1): its ``immediates`` entry is its
row ``k`` of the call tables, its operand slots are
``call_operands[call_offsets[k]:call_offsets[k + 1]]`` (the callee's input
scalars, any number) and its callee is ``callees[call_callee[k]]``, a
frozen Function (the callee's own Tape is ``callee.tape``).  The call's slot
holds all the callee's output scalars; a ``result`` instruction reads it as
its one operand and picks output scalar ``immediates[i]`` (flat, output
after output).  Only results read a call's slot.

>>> y = sg.symbols("y")
>>> G = sg.Function("g", [y], [sg.Function("f", [x], [sg.sin(x) * 2])(y + 1)])
>>> print(G.tape.listing())
@0 = input 0 [] (y)
@1 = 1
@2 = add(@1, @0)
@3 = call f(@2)
@4 = result 0 of @3
output 0 [] = @4
"""

from __future__ import annotations

import itertools
import operator
import threading
import weakref
from collections import abc
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

from .errors import FreeSymbolError, InvalidInputError, SerializationError
from .expr import CONST, Expr
from .ops import OP_LIST, OPS, Op

MAX_ARITY = 3
CALL, RESULT = OPS["call"], OPS["result"]
_NO_INTS = np.zeros(0, dtype=np.int64)


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
        symbol_names: the name of each input scalar (for listings and C comments): a
            tuple of str, or an :class:`InputNames` that makes them on demand.
        immediates: int64 per instruction: a call's row of the call tables, a
            result's output index, -1 for every other instruction.
        callees: the distinct callee Functions of the calls.
        call_callee: per call row, the index of its callee in ``callees``.
        call_offsets: ``n_calls + 1`` offsets into ``call_operands``.
        call_operands: the operand slots of all calls, concatenated.
    """

    input_slots: tuple[np.ndarray, ...]
    constants: np.ndarray
    opcodes: np.ndarray
    operands: np.ndarray
    output_slots: tuple[np.ndarray, ...]
    symbol_names: "tuple[str, ...] | InputNames"
    immediates: np.ndarray | None = None  # None: no call or result (filled with -1)
    callees: tuple = ()
    call_callee: np.ndarray = field(default_factory=lambda: _NO_INTS)
    call_offsets: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    call_operands: np.ndarray = field(default_factory=lambda: _NO_INTS)

    def __post_init__(self) -> None:
        if self.immediates is None:
            object.__setattr__(self, "immediates", np.full(len(self.opcodes), -1, dtype=np.int64))

    @property
    def n_calls(self) -> int:
        """Number of call instructions."""
        return len(self.call_callee)

    def call(self, i: int) -> tuple[Any, tuple[int, ...]]:
        """``(callee, operand_slots)`` of call instruction ``i``.

        >>> import symgraph as sg
        >>> x = sg.symbols("x")
        >>> F = sg.Function("f", [x], [x + 1])
        >>> T = sg.Function("g", [x], [F(2 * x)]).tape
        >>> T.call(1)[0] is F, T.call(1)[1]
        (True, (2,))
        """
        if self.opcodes[i] != CALL.code:
            raise IndexError(f"instruction {i} is a {OP_LIST[int(self.opcodes[i])].name}, not a call")
        k = int(self.immediates[i])
        lo, hi = int(self.call_offsets[k]), int(self.call_offsets[k + 1])
        return self.callees[int(self.call_callee[k])], tuple(self.call_operands[lo:hi].tolist())

    def callee(self, i: int) -> Any:
        """The callee Function of call instruction ``i`` (:meth:`call` without its operand slots).

        A map's call reads every operand scalar: where only the callee is
        wanted, this spares a tuple of them.

        >>> import symgraph as sg
        >>> x = sg.symbols("x")
        >>> F = sg.Function("f", [x], [x + 1])
        >>> sg.Function("g", [x], [F(2 * x)]).tape.callee(1) is F
        True
        """
        if self.opcodes[i] != CALL.code:
            raise IndexError(f"instruction {i} is a {OP_LIST[int(self.opcodes[i])].name}, not a call")
        return self.callees[int(self.call_callee[int(self.immediates[i])])]

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
        calls = self._call_slots()
        for i, code in enumerate(self.opcodes.tolist()):
            op = OP_LIST[code]
            yield op, first + i, calls[i] if op is CALL else tuple(operands[i][: op.arity])

    def _call_slots(self) -> dict[int, tuple[int, ...]]:
        """Operand slots of each call instruction, by instruction index."""
        if not self.n_calls:
            return {}
        flat, offsets = self.call_operands.tolist(), self.call_offsets.tolist()
        rows = self.immediates.tolist()
        return {i: tuple(flat[offsets[rows[i]]:offsets[rows[i] + 1]])
                for i in np.flatnonzero(self.opcodes == CALL.code).tolist()}

    def operand_rows(self) -> list[list[int]]:
        """Per instruction, all its operand slots (a call's from the call tables).

        >>> import symgraph as sg
        >>> x = sg.symbols("x")
        >>> sg.Function("f", [x], [sg.sin(x) + 1]).tape.operand_rows()
        [[0], [1, 2]]
        """
        rows = [[a for a in row if a >= 0] for row in self.operands.tolist()]
        for i, slots in self._call_slots().items():
            rows[i] = list(slots)
        return rows

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
        if self.n_calls:
            where = np.flatnonzero(self.opcodes == CALL.code)
            rows = self.immediates[where]
            lo, hi = self.call_offsets[rows], self.call_offsets[rows + 1]
            reader = np.repeat(where, hi - lo)
            slots = np.concatenate([self.call_operands[a:b] for a, b in zip(lo.tolist(), hi.tolist())] or [_NO_INTS])
            np.maximum.at(last, slots, reader)
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
            if op is CALL:
                lines.append(f"@{out} = call {self.callee(out - self.first_instruction_slot).name}"
                             f"({', '.join(f'@{a}' for a in args)})")
            elif op is RESULT:
                lines.append(f"@{out} = result {self.immediates[out - self.first_instruction_slot]} of @{args[0]}")
            else:
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


def element_names(name: str, shape: tuple) -> list[str]:
    """The names ``sg.symbols(name, shape)`` gives its elements, in C order.

    >>> element_names("x", (2, 2))
    ['x[0,0]', 'x[0,1]', 'x[1,0]', 'x[1,1]']
    >>> element_names("y", ())
    ['y']
    """
    if not shape:
        return [name]
    if len(shape) == 1:
        return [f"{name}[{i}]" for i in range(shape[0])]
    axes = [list(map(str, range(n))) for n in shape]
    return [f"{name}[{','.join(index)}]" for index in itertools.product(*axes)]


def element_name(name: str, shape: tuple, i: int) -> str:
    """Entry ``i`` of :func:`element_names` ``(name, shape)``, without making the others.

    >>> element_name("x", (2, 3), 4), element_name("y", (), 0)
    ('x[1,1]', 'y')
    """
    if not shape:
        return name
    index = np.unravel_index(i, shape)
    return f"{name}[{','.join(str(int(k)) for k in index)}]"


class InputNames(abc.Sequence):
    """A Tape's ``symbol_names`` made on demand: a read-only sequence of str, equal to the tuple it stands for.

    A Tape of a map over 10^6 instances names 10^6 input scalars, which
    only listings, comments and saved records read, and seldom all of them.
    Built from per-input blocks: ``("x", (3,))`` stands for the
    :func:`element_names` ``x[0], x[1], x[2]``, and an object array of
    symbols for their names.  The full tuple is made once, on first
    iteration; indexing makes one name.

    >>> names = InputNames([("x", (2,)), ("p", ())])
    >>> len(names), names[1], names[-1], tuple(names), names == ("x[0]", "x[1]", "p")
    (3, 'x[1]', 'p', ('x[0]', 'x[1]', 'p'), True)
    """

    __slots__ = ("_blocks", "_starts", "_all")

    def __init__(self, blocks: Sequence[Any]) -> None:
        self._blocks = tuple(b if isinstance(b, np.ndarray) else (b[0], tuple(int(n) for n in b[1]))
                             for b in blocks)
        sizes = [b.size if isinstance(b, np.ndarray) else int(np.prod(b[1], dtype=np.int64)) for b in self._blocks]
        self._starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)
        self._all: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getitem__(self, i):
        if self._all is not None or isinstance(i, slice):
            return tuple(self)[i]
        n = len(self)
        i = operator.index(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"symbol name index out of range (there are {n})")
        k = int(np.searchsorted(self._starts, i, side="right")) - 1
        block, at = self._blocks[k], i - int(self._starts[k])
        if isinstance(block, np.ndarray):
            return block.reshape(-1)[at].data
        return element_name(block[0], block[1], at)

    def __iter__(self):
        if self._all is None:
            names: list[str] = []
            for block in self._blocks:
                if isinstance(block, np.ndarray):
                    names.extend(map(_DATA, block.reshape(-1).tolist()))
                else:
                    names.extend(element_names(*block))
            self._all = tuple(names)
        return iter(self._all)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (tuple, InputNames)):
            return len(self) == len(other) and tuple(self) == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        n = len(self)
        shown = ", ".join(repr(self[i]) for i in range(min(n, 3)))
        return f"InputNames([{shown}{', ...' if n > 3 else ''}], {n} names)"


_DATA = operator.attrgetter("data")


def structured_tape(F: Any, input_names: Sequence[str], input_shapes: Sequence[tuple],
                    output_shapes: Sequence[tuple]) -> Tape:
    """The Tape of a structured Function ``F``: one call of ``F`` on all its input scalars, then one result each.

    Laid out with numpy (no Expr is made), so a map over 10^6 instances
    costs arrays, not objects.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> print(sg.Function("sq", [x], [x * x]).map(2).tape.listing())
    @0 = input 0 [0] (x[0])
    @1 = input 0 [1] (x[1])
    @2 = call sq_map2(@0, @1)
    @3 = result 0 of @2
    @4 = result 1 of @2
    output 0 [0] = @3
    output 0 [1] = @4
    """
    in_sizes = [int(np.prod(s, dtype=np.int64)) for s in input_shapes]
    out_sizes = [int(np.prod(s, dtype=np.int64)) for s in output_shapes]
    n_in, n_out = sum(in_sizes), sum(out_sizes)
    in_starts = np.concatenate([[0], np.cumsum(in_sizes)]).astype(np.int64)
    out_starts = np.concatenate([[0], np.cumsum(out_sizes)]).astype(np.int64) + n_in + 1
    operands = np.full((n_out + 1, MAX_ARITY), -1, dtype=np.int64)
    operands[1:, 0] = n_in
    opcodes = np.full(n_out + 1, RESULT.code, dtype=np.int16)
    opcodes[0] = CALL.code
    immediates = np.arange(-1, n_out, dtype=np.int64)  # the call's row 0, then each result's index
    immediates[0] = 0
    return Tape(
        input_slots=tuple(np.arange(in_starts[k], in_starts[k + 1], dtype=np.int64).reshape(shape)
                          for k, shape in enumerate(input_shapes)),
        constants=np.zeros(0, dtype=np.float64),
        opcodes=opcodes,
        operands=operands,
        output_slots=tuple(np.arange(out_starts[k], out_starts[k + 1], dtype=np.int64).reshape(shape)
                           for k, shape in enumerate(output_shapes)),
        symbol_names=InputNames(list(zip(input_names, input_shapes))),
        immediates=immediates,
        callees=(F,),
        call_callee=np.zeros(1, dtype=np.int64),
        call_offsets=np.array([0, n_in], dtype=np.int64),
        call_operands=np.arange(n_in, dtype=np.int64),
    )


_DEFERRING = threading.local()  # .on: build_tape returns None in this thread (see tapes_deferred)


@contextmanager
def tapes_deferred() -> Iterator[None]:
    """Within the block (in this thread), :func:`build_tape` builds nothing and returns None.

    For a Function whose Tape may never be read: the caller builds it on
    first read (:class:`symgraph.structdiff.LazyTapeFunction`).

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> with tapes_deferred():
    ...     build_tape([x], [np.array([x + 1], dtype=object)]) is None
    True
    """
    was = getattr(_DEFERRING, "on", False)
    _DEFERRING.on = True
    try:
        yield
    finally:
        _DEFERRING.on = was


def build_tape(inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray],
               positions: Sequence[dict] | None = None, distinct: bool | None = None) -> Tape:
    """Freeze output graphs over input symbols into a :class:`Tape`.

    ``inputs`` are object arrays of distinct symbols, ``outputs`` object
    arrays of Expr (validated by :class:`~symgraph.function.Function`).
    ``positions``, if given, is :func:`input_positions` ``(inputs)`` and
    ``distinct`` whether no symbol repeats (checked here if not given).
    Raises :class:`FreeSymbolError` naming symbols the outputs use that are
    not inputs.  One iterative post-order walk (as
    :func:`~symgraph.expr.topological`) numbers every node.

    >>> import symgraph as sg
    >>> x = sg.symbols("x", 2)
    >>> tape = build_tape([x], [np.array([x[0] * x[1]], dtype=object)])
    >>> tape.opcodes.tolist() == [OPS["mul"].code], tape.output_slots[0].tolist(), tuple(tape.symbol_names)
    (True, [2], ('x[0]', 'x[1]'))
    """
    if getattr(_DEFERRING, "on", False):
        return None
    inputs = [np.asarray(arr, dtype=object) for arr in inputs]
    flat_inputs = [arr.reshape(-1) for arr in inputs]
    n_in = sum(len(f) for f in flat_inputs)
    positions = input_positions(inputs) if positions is None else positions
    if distinct is None:
        distinct = inputs_distinct(positions, [len(f) for f in flat_inputs])
    # The first input's map is copied (a model's x: read by most Tapes; a copy costs less than entering
    # its symbols one by one); the symbols of the others are entered when the walk meets them (a
    # callback of 10^6 multipliers may read a few).  A repeated symbol (not from a Function, which
    # refuses them) has the slot of its last place.
    if not distinct:
        code_of: dict[Expr, int] = dict(zip(itertools.chain.from_iterable(f.tolist() for f in flat_inputs),
                                            range(n_in)))  # Expr hashes by identity
        blocks = []
    else:
        code_of = positions[0].copy() if positions else {}
        starts = np.cumsum([0] + [len(f) for f in flat_inputs]).tolist()
        blocks = list(zip(starts, positions))[1:]
    constants: list[float] = []
    free: list[Expr] = []
    opcodes: list[int] = []
    arity: list[int] = []
    flat: list[int] = []  # operand codes of all instructions, concatenated
    calls: list[tuple[int, Expr]] = []  # (instruction index, call node)
    result_at: list[int] = []  # instruction index of each result node
    result_of: list[int] = []  # and the output index it picks
    lookup = code_of.__getitem__

    def emit(node: Expr) -> None:  # number ``node``, whose operands are all numbered
        i = len(opcodes)
        code_of[node] = _INSTR + i
        op = node.op
        opcodes.append(op.code)
        if node.data is not None:  # a call or result node
            if op is CALL:
                calls.append((i, node))
                arity.append(0)
                return
            result_at.append(i)
            result_of.append(node.data)
        args = node.args
        arity.append(len(args))
        flat.extend(map(lookup, args))

    stack: list = []
    push, pop = stack.append, stack.pop
    result_code = RESULT.code
    for root in itertools.chain.from_iterable(np.asarray(arr, dtype=object).reshape(-1).tolist()
                                              for arr in outputs):
        if root in code_of:
            continue
        args = root.args
        if root.op is RESULT and args[0] in code_of:  # a result of a numbered call (10^5 of them): inline
            i = len(opcodes)
            code_of[root] = _INSTR + i
            opcodes.append(result_code)
            result_at.append(i)
            result_of.append(root.data)
            arity.append(1)
            flat.append(code_of[args[0]])
            continue
        if args and all(map(code_of.__contains__, args)):  # operands numbered: no stack needed
            emit(root)
            continue
        push(root)
        while stack:
            node = pop()
            if node is _EMIT:
                emit(pop())
            elif node not in code_of:
                # In a DAG a node popped here was never expanded: any copy of
                # it above an expanded one would make it its own descendant.
                args = node.args
                if args:
                    depth = len(stack)
                    push(node)
                    push(_EMIT)
                    if len(args) > 16:  # a call's operands: the same, with the loops in C
                        if blocks:
                            _number_inputs(args, blocks, code_of)
                        stack.extend(itertools.filterfalse(code_of.__contains__, reversed(args)))
                    else:
                        for a in reversed(args):
                            if a not in code_of:
                                push(a)
                    if len(stack) == depth + 2:  # operands all numbered: emit now (the same order)
                        del stack[depth:]
                        emit(node)
                elif node.op is CONST:
                    code_of[node] = _CONST + len(constants)
                    constants.append(node.data)
                else:
                    for start, where in blocks:
                        j = where.get(node)
                        if j is not None:
                            code_of[node] = start + j
                            break
                    else:
                        code_of[node] = -1
                        free.append(node)
    if free:
        shown = ", ".join(repr(s.data) for s in free[:10]) + (" ..." if len(free) > 10 else "")
        raise FreeSymbolError(f"the outputs depend on {len(free)} symbol(s) that are not inputs: {shown}; "
                              "add them to the Function's inputs")
    remap = _remapper(n_in, len(constants))
    structural = bool(calls or result_at)
    tape = Tape(
        input_slots=_input_slots(inputs, code_of, remap, distinct),
        constants=np.array(constants, dtype=np.float64),
        opcodes=np.array(opcodes, dtype=np.int16),
        operands=_operand_matrix(np.array(arity, dtype=np.int64), remap(np.array(flat, dtype=np.int64))),
        output_slots=tuple(_slot_array(arr, code_of, remap) for arr in outputs),
        symbol_names=InputNames([f.copy() for f in flat_inputs]),
        **(_call_tables(calls, result_at, result_of, code_of, remap, len(opcodes)) if structural else {}),
    )
    if structural:
        _check_call_reads(tape)
    return tape


def _number_inputs(args: tuple, blocks: list, code_of: dict) -> None:
    """Enter the input symbols among ``args`` in ``code_of`` at their slots (the loops run in C)."""
    for start, where in blocks:
        found = list(map(where.get, args))
        known = list(map(operator.is_not, found, itertools.repeat(None)))
        code_of.update(zip(itertools.compress(args, known),
                           map(start.__add__, itertools.compress(found, known))))


def input_positions(inputs: Sequence[np.ndarray]) -> list[dict]:
    """Per input, ``{symbol: flat index}`` (a repeated symbol: its last index); do not modify them.

    A large array's map is remembered while the array lives and holds the
    same symbols: a model's ``x`` is frozen into every callback and
    derivative, and checking that it still holds its symbols costs less
    than hashing them again.

    >>> import symgraph as sg
    >>> x, p = sg.symbols("x", 2), sg.symbols("p")
    >>> [sorted(d.values()) for d in input_positions([x, np.array(p, dtype=object)])]
    [[0, 1], [0]]
    """
    return [_array_positions(np.asarray(arr, dtype=object)) for arr in inputs]


def inputs_distinct(positions: Sequence[dict], sizes: Sequence[int]) -> bool:
    """True if no symbol repeats within or across inputs (``positions``: :func:`input_positions`).

    >>> import symgraph as sg
    >>> x = sg.symbols("x", 2)
    >>> inputs_distinct(input_positions([x, x[:1]]), [2, 1]), inputs_distinct(input_positions([x]), [2])
    (False, True)
    """
    if any(len(p) != n for p, n in zip(positions, sizes)):
        return False
    by_size = sorted(positions, key=len, reverse=True)
    # views on both sides: isdisjoint then walks the smaller one
    return all(small.keys().isdisjoint(big.keys()) for k, big in enumerate(by_size) for small in by_size[k + 1:])


_POSITIONS: dict[int, tuple[Any, tuple, dict]] = {}  # id(array) -> (weak reference, its symbols, their map)
_POSITIONS_MIN_SIZE = 1 << 14
_POSITIONS_ENTRIES = 8


def _array_positions(arr: np.ndarray) -> dict:
    """``{element: flat index}`` of ``arr``, remembered for a large array while it lives (see input_positions)."""
    flat = arr.reshape(-1).tolist()
    if len(flat) < _POSITIONS_MIN_SIZE:
        return dict(zip(flat, range(len(flat))))  # Expr hashes by identity
    found = _POSITIONS.get(id(arr))
    if found is not None:
        ref, held, positions = found
        if ref() is arr and len(held) == len(flat) and all(map(operator.is_, held, flat)):
            return positions
    positions = dict(zip(flat, range(len(flat))))
    key = id(arr)
    try:
        ref = weakref.ref(arr, lambda _, key=key: _POSITIONS.pop(key, None))
    except TypeError:  # not weakly referable: not remembered
        return positions
    while len(_POSITIONS) >= _POSITIONS_ENTRIES:
        _POSITIONS.pop(next(iter(_POSITIONS)), None)
    _POSITIONS[key] = (ref, tuple(flat), positions)
    return positions


def _input_slots(inputs: Sequence[np.ndarray], code_of: dict[Expr, int], remap, distinct: bool) -> tuple:
    """Per input, its slots: the input scalars numbered in order (looked up where a symbol repeats)."""
    arrays = [np.asarray(arr, dtype=object) for arr in inputs]
    if not distinct:  # a repeated symbol has the slot of its last place
        return tuple(_slot_array(arr, code_of, remap) for arr in arrays)
    out, start = [], 0
    for arr in arrays:
        out.append(np.arange(start, start + arr.size, dtype=np.int64).reshape(arr.shape))
        start += arr.size
    return tuple(out)


def _call_tables(calls: list[tuple[int, Expr]], result_at: list[int], result_of: list[int],
                 code_of: dict[Expr, int], remap, n: int) -> dict:
    """The Tape's call fields for the call nodes and result nodes at their instruction indices."""
    immediates = np.full(n, -1, dtype=np.int64)
    immediates[np.array(result_at, dtype=np.int64)] = np.array(result_of, dtype=np.int64)
    callees: dict[Any, int] = {}  # Functions hash by identity
    call_callee: list[int] = []
    offsets = [0]
    codes: list[int] = []
    for i, node in calls:
        immediates[i] = len(call_callee)
        call_callee.append(callees.setdefault(node.data, len(callees)))
        codes.extend(map(code_of.__getitem__, node.args))
        offsets.append(len(codes))
    return {"immediates": immediates, "callees": tuple(callees),
            "call_callee": np.array(call_callee, dtype=np.int64),
            "call_offsets": np.array(offsets, dtype=np.int64),
            "call_operands": remap(np.array(codes, dtype=np.int64))}


def _check_call_reads(tape: Tape) -> None:
    """Only result instructions read a call's slot, and no output is one (a call is not a value)."""
    is_call = np.zeros(tape.n_slots, dtype=bool)
    is_call[tape.first_instruction_slot + np.flatnonzero(tape.opcodes == CALL.code)] = True
    reads = [tape.operands[tape.opcodes != RESULT.code].reshape(-1), tape.call_operands]
    reads += [s.reshape(-1) for s in tape.output_slots]
    for slots in reads:
        if np.any(is_call[slots[slots >= 0]]):
            raise InvalidInputError("a call node is used as a value: only its results (the Exprs that calling a "
                                    "Function returns) may be operands or outputs")


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
    flat = np.fromiter(map(code_of.__getitem__, arr.reshape(-1).tolist()), dtype=np.int64, count=arr.size)
    return remap(flat).reshape(arr.shape)


# ------------------------------------------------------------ plain data
TAPE_FORMAT = 2  # version of the layout below; bump it when the layout changes (1: no call fields)


def tape_to_data(tape: Tape, callee_index: dict | None = None) -> tuple:
    """The Tape as plain data: a tuple of str, ints, tuples of str and numpy arrays.

    ``("symgraph.Tape", TAPE_FORMAT, op_names, codes, operands, constants,
    input_slots, output_slots, symbol_names, immediates, call_callee,
    call_offsets, call_operands)``: ``op_names`` are the names of the ops
    used, ``codes`` (int32) index into them, so the data does not depend on
    the order of the op table.  The callees themselves are not in it:
    ``call_callee`` holds their positions in a table the caller keeps
    (``callee_index`` maps each callee Function to its position; by default
    ``tape.callees``), which :func:`tape_from_data` is given back.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> data = tape_to_data(sg.Function("f", [x], [sg.sin(x) * 2]).tape)
    >>> data[:3], data[3].tolist()
    (('symgraph.Tape', 2, ('mul', 'sin')), [1, 0])
    """
    used = np.unique(tape.opcodes)
    names = tuple(OP_LIST[c].name for c in used.tolist())
    codes = np.searchsorted(used, tape.opcodes).astype(np.int32)
    positions = [k if callee_index is None else callee_index[c] for k, c in enumerate(tape.callees)]
    call_callee = np.array(positions, dtype=np.int64)[tape.call_callee] if tape.n_calls else _NO_INTS
    return ("symgraph.Tape", TAPE_FORMAT, names, codes, tape.operands.astype(np.int64),
            tape.constants.astype(np.float64), tuple(a.astype(np.int64) for a in tape.input_slots),
            tuple(a.astype(np.int64) for a in tape.output_slots), tuple(tape.symbol_names),
            tape.immediates.astype(np.int64), call_callee.astype(np.int64), tape.call_offsets.astype(np.int64),
            tape.call_operands.astype(np.int64))


def tape_from_data(data: object, callees: Sequence[Any] = ()) -> Tape:
    """A :class:`Tape` from :func:`tape_to_data`'s tuple, validated; SerializationError if malformed.

    Checked: the header and version, every op name is in the op table (and
    not a leaf), codes and operand slots are integers in range, each
    instruction reads only earlier slots and exactly as many as its op's
    arity, input slots number the input scalars in order, output slots
    exist, names are str; each call names a callee of ``callees`` (the
    Functions its ``call_callee`` indexes) with as many operands as the
    callee has input scalars, each result reads a call and an output index
    the callee has, and only results read calls.  Nothing is evaluated.
    Version 1 data (before calls) is read too.

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
    if not (isinstance(data, tuple) and len(data) in (9, 13) and data[0] == "symgraph.Tape"):
        raise SerializationError(f"not a symgraph Tape record (expected a 9- or 13-tuple starting with "
                                 f"'symgraph.Tape', got {type(data).__name__})")
    _, version, names, codes, operands, constants, input_slots, output_slots, symbol_names = data[:9]
    if (version, len(data)) not in ((1, 9), (TAPE_FORMAT, 13)):
        raise SerializationError(f"Tape format version {version!r} is not supported (this symgraph reads "
                                 f"versions 1 and {TAPE_FORMAT}, as 9- and 13-tuples)")
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
    tape = Tape(input_slots=input_slots, constants=constants.copy(), opcodes=opcodes,
                operands=operands.astype(np.int64), output_slots=output_slots, symbol_names=symbol_names)
    if len(data) == 9:
        if np.any((opcodes == CALL.code) | (opcodes == RESULT.code)):
            raise SerializationError("Tape version 1 has no call tables, but uses call or result instructions")
        return tape
    return _calls_from_data(tape, data[9:], callees)


def _calls_from_data(tape: Tape, data: tuple, table: Sequence[Any]) -> Tape:
    """``tape`` with its call fields from ``data`` (immediates, call_callee, call_offsets, call_operands), checked."""
    immediates = _int_array(data[0], "immediates", 1)
    call_callee = _int_array(data[1], "call callees", 1)
    offsets = _int_array(data[2], "call offsets", 1)
    call_operands = _int_array(data[3], "call operands", 1)
    n, first, n_calls = tape.n_instructions, tape.first_instruction_slot, len(call_callee)
    is_call, is_result = tape.opcodes == CALL.code, tape.opcodes == RESULT.code
    calls = np.flatnonzero(is_call)
    if len(immediates) != n or np.any(immediates[~(is_call | is_result)] != -1):
        raise SerializationError(f"Tape immediates must be {n} integers, -1 except at calls and results")
    if len(offsets) != n_calls + 1 or offsets[0] != 0 or np.any(np.diff(offsets) < 0) \
            or offsets[-1] != len(call_operands):
        raise SerializationError(f"Tape call offsets must be {n_calls + 1} nondecreasing offsets from 0 to "
                                 f"{len(call_operands)}")
    if len(calls) != n_calls or not np.array_equal(np.sort(immediates[calls]), np.arange(n_calls)):
        raise SerializationError(f"Tape has {len(calls)} call instruction(s); their immediates must number the "
                                 f"{n_calls} rows of the call tables, each once")
    if n_calls and (call_callee.min() < 0 or call_callee.max() >= len(table)):
        raise SerializationError(f"Tape calls name callees out of range (the table has {len(table)})")
    n_results = np.zeros(tape.n_slots, dtype=np.int64)  # per call slot, its callee's number of output scalars
    for i in calls.tolist():
        k = int(immediates[i])
        F = table[int(call_callee[k])]
        slots = call_operands[offsets[k]:offsets[k + 1]]
        if len(slots) != F.tape.n_input_scalars or np.any(slots < 0) or np.any(slots >= first + i):
            raise SerializationError(f"Tape call at instruction {i} of {F.name} must read {F.tape.n_input_scalars} "
                                     f"earlier slot(s), got {slots.tolist()[:10]}")
        n_results[first + i] = sum(s.size for s in F.tape.output_slots)
    results = np.flatnonzero(is_result)
    read = tape.operands[results, 0]
    if np.any(~is_call[np.maximum(read - first, 0)] | (read < first)) \
            or np.any(immediates[results] < 0) or np.any(immediates[results] >= n_results[read]):
        raise SerializationError("Tape results must each read a call and an output index its callee has")
    used = np.unique(call_callee)
    tape = Tape(input_slots=tape.input_slots, constants=tape.constants, opcodes=tape.opcodes, operands=tape.operands,
                output_slots=tape.output_slots, symbol_names=tape.symbol_names, immediates=immediates,
                callees=tuple(table[k] for k in used.tolist()), call_callee=np.searchsorted(used, call_callee),
                call_offsets=offsets, call_operands=call_operands)
    try:
        _check_call_reads(tape)
    except InvalidInputError as exc:
        raise SerializationError(f"Tape: {exc}") from None
    return tape


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
    from .expr import apply, const, intern_structural

    values: list[Expr] = [s for arr in inputs for s in arr.reshape(-1)]
    values.extend(const(v) for v in tape.constants.tolist())
    immediates = tape.immediates.tolist()
    for i, (op, _, args) in enumerate(tape.instructions()):
        if op is CALL:
            values.append(intern_structural(CALL, tuple([values[a] for a in args]), tape.callee(i)))
        elif op is RESULT:
            values.append(intern_structural(RESULT, (values[args[0]],), immediates[i]))
        else:
            values.append(apply(op, *[values[a] for a in args]))
    return values
