"""Tape -> C99 source using only ``<math.h>``.

The generated code has one entry point per Function with a CasADi-like
calling convention::

    int NAME(const double *const *arg, double *const *res, double *w);

``NAME`` is the Function's C identifier (``sgf_rosen`` for ``rosen``, see
:mod:`codegen.names`); every other symbol is ``NAME__SUFFIX``.
``arg[i]`` points to input ``i`` (flattened in C order), ``res[k]`` to output
``k`` (a dense output flattened in C order; a sparse output holds its
structural nonzeros in compressed-column order, see ``NAME__sparsity_out``),
``w`` to ``NAME__work_size()`` doubles of scratch memory.  It returns 0.
``NAME__batch(n, arg, res, w)`` evaluates ``n`` points stored one after the
other.  Metadata functions give counts, names, shapes and sparsity.

How the body is laid out (see docs/design.md, "C backend"):

* Every instruction becomes one SSA statement ``const double vS = ...;``
  (``S`` is its Tape slot), so the C compiler sees no memory traffic.
* The instructions are cut into *parts* of at most ``chunk_size``
  instructions, each a separate C function.  Values used in a later part go
  through the work array ``w``; slots of ``w`` are reused once their last
  reader part has run (liveness from the Tape), so ``w`` stays small.  This
  keeps the C compiler's time linear in the program size.
* Runs of instructions repeating one body over operands and stores in
  arithmetic progression (per-parameter gradient sums, elementwise code
  written out) are *rerolled* into ``for`` loops (:mod:`codegen.reroll`): the
  same operations in the same order, bitwise the same values, a fraction of
  the C (GMM d=20, k=25: 1.9 MB -> 0.16 MB, gcc -O2 34 s -> 1.6 s).
* Outputs are stored as soon as they are computed; entries that are
  constants or inputs are stored by the entry point.  Runs and other regular
  blocks of entries with one source become loops, scattered ones tables
  (:mod:`codegen.stores`), so the C does not grow with them.
* Calls: every distinct callee reachable from the Function (nested ones
  too, found iteratively, numbered ``c0, c1, ...`` callees first) is emitted
  once, as ``static void NAME__cK(arg, res, w)`` with the same calling
  convention and its own parts ``NAME__cK_partP``; its sparse outputs are in
  Tape order.  A call site stores its operands into ``w`` after the slots of
  values crossing parts, points the callee's ``arg``/``res`` into that
  area, gives it the rest of ``w`` as its work array, and its results are
  read from there right after the call (the Tape is reordered so they
  follow it).  So the C grows by a few lines per call, not by the callee.
* Large tables (gathers by index, scattered results and constants) of the
  Function's own code are run-time data in a JIT build
  (``program(..., runtime_tables=True)``, which ``F.compile()`` uses): the C
  reads table ``k`` through ``arg[n_in + k]`` and :attr:`CProgram.tables`
  holds the arrays, so the source does not grow with the number of instances
  of a map; standalone C (:func:`export_c`, CUDA) keeps them ``static const``.
* Integer powers ``x**n``
  with ``-2 <= n <= 4`` become multiplications (``1/x`` first for ``n < 0``),
  other powers ``pow()``, so the C result stays within 2 ulps of the VM's.
* The output is a pure function of the Function and the options: the same
  graph always gives byte-identical C (so the build cache works).

>>> import symgraph as sg
>>> x = sg.symbols("x", 2)
>>> F = sg.Function("f", [x], [sg.sin(x[0]) * x[1] ** 3])
>>> src = generate(F)
>>> "int sgf_f(const double *const *arg, double *const *res, double *w)" in src
True
>>> print(program(F).parts[0])
void sgf_f__part0(const double *const *arg, double *const *res, double *w) {
  (void)arg; (void)res; (void)w;
  const double v0 = arg[0][0];
  const double v3 = sin(v0);
  const double v1 = arg[0][1];
  const double v4_1 = v1 * v1;
  const double v4 = v1 * v4_1;
  const double v5 = v3 * v4;
  res[0][0] = v5;
}
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from symgraph.errors import CompileError, OptionError
from symgraph.ops import C_HELPERS, OP_LIST, OPS
from symgraph.schedule import permuted, scheduled
from symgraph.map import sizes
from symgraph.structured import children
from symgraph.tape import CALL, RESULT

from . import reroll, stores
from .glue import (CONSTANT, MIN_POINTER, PASSED, PLAIN, call_operands, call_statements, glue_lines, is_glue, is_multi_glue,
                   multi_glue_lines, operand_table_copies, parse_operands, pointer_run, result_table_copies)
from .loops import structured_callee
from .names import c_comment, c_identifier, c_string, c_symbol, header_guard

CODEGEN_VERSION = "symgraph-c99-2"
DEFAULT_CHUNK = 2000  # instructions per part function (see docs/design.md for the measurements)
# x**n by multiplications only for POWI_MIN <= n <= POWI_MAX: each squaring doubles the relative
# error, so x**1024 by squaring is ~800 ulps off; within this range the error is <= 1.5 ulps
# (1/x is computed first for n < 0, so x**-n cannot overflow where the result is finite).
POWI_MIN, POWI_MAX = -2, 4
_POWI = OPS["powi"]

SIGNATURE = "(const double *const *arg, double *const *res, double *w)"


@dataclass(frozen=True)
class CProgram:
    """The pieces of generated C for one Function (assembled by :func:`generate` and :mod:`codegen.build`).

    Attributes:
        name: the C identifier prefix of every public symbol.
        work_size: number of doubles the work array ``w`` needs.
        declarations: public prototypes with documentation (the header body).
        helpers: op name -> static C helper definition, for helpers any part uses.
        parts: part function definitions, each starting with ``void NAME__partK(``.
        part_helpers: per part, the op names whose helper it needs.
        entry: the entry point, the batch entry point and the metadata functions.
        cdef: the prototypes the cffi loader needs.
        part_names: the C name of each part function.
        part_calls: per part, the indices of the parts it calls (a callee's parts and
            its function come before every caller; see "Calls" in the module docstring).
        entry_calls: the indices of the parts the entry point calls.
        n_ops: statements of instructions emitted: ``F``'s, plus each distinct callee's once; a
            rerolled loop's body counts once, results copied by glue loops and tables not at all.
        tables: the tables the C reads at run time (``program(..., runtime_tables=True)``):
            table ``k`` through ``arg[n_in + k]``, past the Function's inputs; empty otherwise.
    """

    name: str
    work_size: int
    declarations: str
    helpers: dict
    parts: tuple
    part_helpers: tuple
    entry: str
    cdef: str
    part_names: tuple = ()
    part_calls: tuple = ()
    entry_calls: tuple = ()
    n_ops: int = 0
    tables: tuple = field(default=(), compare=False, repr=False)

    def symbol(self, suffix: str) -> str:
        """The C name ``NAME__suffix`` of one of this program's functions (``batch``, ``n_in``, ...)."""
        return c_symbol(self.name, suffix)

    def prelude(self, comment: str) -> str:
        """The first lines of every generated C file."""
        return (f"/* {comment} -- generated by {CODEGEN_VERSION}; do not edit. */\n"
                "#include <math.h>\n")


def program(F: Any, name: str | None = None, chunk_size: int = DEFAULT_CHUNK, optimize: int = 0,
            loops: bool = True, runtime_tables: bool = False) -> CProgram:
    """Translate ``F.tape`` into a :class:`CProgram`.

    Args:
        F: a :class:`symgraph.Function`.
        name: the name to derive C identifiers from (default: ``F.name``; see :func:`codegen.names.c_identifier`).
        chunk_size: maximum number of instructions per part function.
        optimize: the optimizer level at which each callee is emitted (optimized once,
            however many calls it has); ``F`` itself is emitted as given (``compile``
            optimizes it first).
        loops: reroll repeated runs of instructions into loops (:mod:`codegen.reroll`);
            False writes every instruction out (the same values, bit for bit).
        runtime_tables: keep the large tables of ``F``'s own code (at least
            :data:`codegen.stores.RUNTIME_TABLE_MIN` entries: gathers by index, scattered
            results, constants) out of the C: the C reads table ``k`` through
            ``arg[F.n_in + k]`` and :attr:`CProgram.tables` holds the arrays, which the caller
            must append to every argument array (the JIT runtime does); large sparsity
            patterns are left out of the metadata (``NAME__sparsity_out`` gives NULL for
            them).  False (standalone C, as :func:`export_c` writes): every table is in the C.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> p = program(sg.Function("g", [x], [x * x + 1.5]))
    >>> p.name, p.work_size, len(p.parts)
    ('sgf_g', 0, 1)
    >>> y = sg.symbols("y", 500)
    >>> M = sg.Function("sq", [x], [x * x]).map(1000)
    >>> G = sg.Function("h", [y], [M(sg.gather(y, np.random.default_rng(0).integers(0, 500, 1000)))])
    >>> p = program(G, runtime_tables=True)
    >>> [(a.dtype.name, a.shape) for a in p.tables], "(const int *)arg[1]" in p.parts[-1]
    ([('int32', (1000,))], True)
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise OptionError(f"chunk_size must be a positive int, got {chunk_size!r}")
    if name is not None and (not isinstance(name, str) or not name):
        raise OptionError(f"name must be a non-empty str (or None for the Function's name), got {name!r}")
    if isinstance(optimize, bool) or not isinstance(optimize, int) or optimize < 0:
        raise OptionError(f"optimize must be an optimizer level (int >= 0), got {optimize!r}")
    if not isinstance(runtime_tables, bool):
        raise OptionError(f"runtime_tables must be True or False, got {runtime_tables!r}")
    cname = c_identifier(F.name if name is None else name)
    parts: list[str] = []
    part_helpers: list[frozenset] = []
    part_names: list[str] = []
    part_calls: list[frozenset] = []
    callees: dict[Any, _Callee] = {}  # by the callee Function a Tape names (identity)
    n_ops = 0
    emitted: dict = {}
    for k, callee in enumerate(callee_order(F, optimize, emitted)):
        G = emitted[callee]
        if G.structure is not None:  # a map or fold: a loop around its body's function
            fname = c_symbol(cname, f"c{k}")
            text, work = structured_callee(G, fname, callees)
            parts.append(text)
            part_helpers.append(frozenset())
            part_names.append(fname)
            part_calls.append(frozenset(callees[B].index for B in children(G)))
            callees[callee] = _Callee(fname, len(parts) - 1, _offsets(G.input_shapes), G.tape.n_input_scalars,
                                      _offsets(G.output_shapes), int(sum(sizes(G.output_shapes))), work)
            continue
        tape = _prepared(G.tape)
        outputs = _output_layout(G, tape, compressed=False)
        body = _emit_parts(tape, outputs, cname, chunk_size, f"c{k}_", callees, len(parts), loops)
        parts += body.parts
        part_helpers += body.helpers
        part_names += body.names
        part_calls += body.calls
        fname = c_symbol(cname, f"c{k}")
        fills, copies = _copy_stores(tape, outputs)
        lines = [f"void {fname}{SIGNATURE} {{", f"  /* {_describe(G)}, emitted once for all its calls */",
                 "  (void)arg; (void)res; (void)w;", *fills]
        lines.extend(f"  {n}(arg, res, w);" for n in body.names)
        lines += [*copies, "}\n"]
        parts.append("\n".join(lines))
        part_helpers.append(frozenset())
        part_names.append(fname)
        part_calls.append(frozenset(range(len(parts) - 1 - len(body.parts), len(parts) - 1)))
        callees[callee] = _Callee(fname, len(parts) - 1, _offsets(G.input_shapes), G.tape.n_input_scalars,
                                  _offsets([(len(s),) for s in outputs.slots]), int(sum(outputs.sizes)),
                                  body.work_size)
        n_ops += body.emitted
    tape = _prepared(F.tape)  # values used soon after made: fewer crossing part boundaries
    outputs = _output_layout(F, tape)
    tables = stores.Tables(F.n_in) if runtime_tables else None  # F's own code reads arg[F.n_in + k]
    body = _emit_parts(tape, outputs, cname, chunk_size, "", callees, len(parts), loops, tables)
    top = range(len(parts), len(parts) + len(body.parts))
    parts += body.parts
    part_helpers += body.helpers
    part_names += body.names
    part_calls += body.calls
    work_size = body.work_size
    entry = _emit_entry(F, tape, outputs, cname, body.names, work_size, tables)
    helpers = {h: C_HELPERS[h] for h in sorted(set().union(*part_helpers))} if parts else {}
    held = tuple(tables.arrays) if tables is not None else ()
    return CProgram(cname, work_size, _declarations(F, cname, work_size, len(held)), helpers,
                    tuple(parts), tuple(part_helpers), entry, _cdef(cname), tuple(part_names), tuple(part_calls),
                    tuple(top), n_ops + body.emitted, held)


def generate(F: Any, name: str | None = None, chunk_size: int = DEFAULT_CHUNK, optimize: int = 0) -> str:
    """The complete C99 source of ``F`` as one self-contained file.

    ``optimize`` is the optimizer level applied first to ``F`` and to each
    callee, as ``F.compile(optimize=...)`` does (default 0: ``F`` as given), so
    ``generate(F, optimize=1)`` is the source that ``F.compile()`` builds.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> generate(sg.Function("h", [x], [x + 1])) == generate(sg.Function("h", [x], [x + 1]))
    True
    """
    G = optimized(F, optimize)
    return single_file(program(G, name, chunk_size, optimize), G)


def optimized(F: Any, optimize: Any) -> Any:
    """``F`` optimized at level ``optimize`` (checked: an int >= 0; 0 gives ``F``), as the generators take it.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> F = sg.Function("h", [x], [x * 2 * 3])
    >>> optimized(F, 0) is F, F.n_ops, optimized(F, 1).n_ops
    (True, 2, 1)
    """
    if isinstance(optimize, bool) or not isinstance(optimize, int) or optimize < 0:
        raise OptionError(f"optimize must be an optimizer level (int >= 0), got {optimize!r}")
    return F.optimize(optimize) if optimize else F


def single_file(prog: CProgram, F: Any, include_header: str | None = None) -> str:
    """Assemble a :class:`CProgram` into one translation unit.

    With ``include_header``, the declarations are replaced by ``#include "include_header"``.
    """
    out = [prog.prelude(f"C code of {_describe(F)}")]
    out.append(f'#include "{include_header}"\n' if include_header else prog.declarations)
    out.extend(helper + "\n" for helper in prog.helpers.values())
    out.extend("static " + part for part in prog.parts)
    out.append(prog.entry)
    return "\n".join(out)


def translation_units(prog: CProgram, F: Any, n_units: int) -> list[tuple[str, str]]:
    """Split a program into ``n_units`` C files (for parallel compilation): ``[(filename, text)]``.

    The first file holds the entry point and metadata; the parts are spread
    over the files in order.  With ``n_units == 1`` this is :func:`single_file`.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> F = sg.Function("k", [x], [sg.sin(sg.cos(x))])
    >>> [name for name, _ in translation_units(program(F, chunk_size=1), F, 2)]
    ['sgf_k__0.c', 'sgf_k__1.c']
    """
    n_units = max(1, min(n_units, len(prog.parts)))
    if n_units == 1:
        return [(prog.symbol("0") + ".c", single_file(prog, F))]
    hidden = ("#if defined(__GNUC__) && !defined(__TINYC__)\n"
              "#define SG_PART __attribute__((visibility(\"hidden\")))\n"
              "#else\n#define SG_PART\n#endif\n")
    bounds = [round(u * len(prog.parts) / n_units) for u in range(n_units + 1)]
    unit_of = np.repeat(np.arange(n_units), np.diff(bounds)).tolist()
    units = []
    for u in range(n_units):
        lo, hi = bounds[u], bounds[u + 1]
        used = sorted(set().union(*prog.part_helpers[lo:hi])) if hi > lo else []
        called = set().union(*prog.part_calls[lo:hi], prog.entry_calls if u == 0 else ())
        text = [prog.prelude(f"C code of {_describe(F)}, file {u + 1} of {n_units}"), hidden]
        text.extend(C_HELPERS[h] + "\n" for h in used)
        text.extend(f"SG_PART void {prog.part_names[q]}{SIGNATURE};\n" for q in sorted(called) if unit_of[q] != u)
        text.extend("SG_PART " + part for part in prog.parts[lo:hi])
        if u == 0:
            text.append(prog.declarations)
            text.append(prog.entry)
        units.append((prog.symbol(str(u)) + ".c", "\n".join(text)))
    return units


def export_c(F: Any, directory: str, name: str | None = None, optimize: int = 1, overwrite: bool = False) -> dict:
    """Write ``NAME.c``, ``NAME.h`` and ``NAME__demo.c`` into ``directory`` (see :mod:`codegen.export`)."""
    from .export import export_c as _export

    return _export(F, directory, name, optimize, overwrite)


# ---------------------------------------------------------------- layout

@dataclass(frozen=True)
class _Outputs:
    """Where each output scalar goes (``slots``; computed ones listed by :attr:`place_table`), plus sparsity."""

    sizes: tuple
    sparsity: tuple  # per output: None or (nrow, ncol, colind, row)
    slots: tuple  # per output: 1-D int64 slot array in C memory order
    first: int  # the Tape's first instruction slot

    @functools.cached_property
    def place_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(slot, k, j)``: every output position ``(k, j)`` holding a computed slot, sorted by slot, then ``k``
        and ``j`` (int64 arrays, made when first asked)."""
        found = [(np.flatnonzero(flat >= self.first), k, flat) for k, flat in enumerate(self.slots)]
        slot = np.concatenate([np.zeros(0, dtype=np.int64)] + [flat[j] for j, _, flat in found])
        k = np.concatenate([np.zeros(0, dtype=np.int64)] + [np.full(len(j), k, dtype=np.int64) for j, k, _ in found])
        j = np.concatenate([np.zeros(0, dtype=np.int64)] + [j for j, _, _ in found])
        order = np.argsort(slot, kind="stable")
        return slot[order], k[order], j[order]

    def places(self, keep: np.ndarray) -> dict:
        """``places[slot]``: the output positions ``(k, j)`` of each computed slot with ``keep[slot - first]``."""
        slot, k, j = self.place_table
        mine = keep[slot - self.first]
        slot, pairs = slot[mine], list(zip(k[mine].tolist(), j[mine].tolist()))
        cuts = np.flatnonzero(np.diff(slot)) + 1
        starts, ends = [0] + cuts.tolist(), cuts.tolist() + [len(slot)]
        return {s: pairs[a:b] for s, a, b in zip(slot[starts].tolist() if len(slot) else [], starts, ends)}


def _output_layout(F: Any, tape: Any, compressed: bool = True) -> _Outputs:
    """Where outputs go; sparse ones in compressed-column order, or (``compressed=False``, callees) in Tape order."""
    sizes, sparsity, slot_arrays = [], [], []
    first = tape.first_instruction_slot
    for k, slots in enumerate(tape.output_slots):
        flat = np.asarray(slots, dtype=np.int64).reshape(-1)
        pattern = F.output_sparsity[k] if compressed else None
        if pattern is None:
            sparsity.append(None)
        else:
            rows, cols, shape = pattern
            perm = np.lexsort((rows, cols))  # compressed-column order
            flat = flat[perm]
            colind = np.concatenate([[0], np.cumsum(np.bincount(cols, minlength=shape[1]))])
            sparsity.append((shape[0], shape[1], colind.tolist(), rows[perm].tolist()))
        sizes.append(len(flat))
        slot_arrays.append(flat)
    return _Outputs(tuple(sizes), tuple(sparsity), tuple(slot_arrays), first)


def c_constant(value: float) -> str:
    """A C expression for ``value`` that reads back exactly (shortest round-trip decimal).

    >>> [c_constant(v) for v in (2.0, -0.5, 0.1, float("inf"), -0.0)]
    ['2.0', '(-0.5)', '0.1', 'INFINITY', '(-0.0)']
    """
    if math.isnan(value):
        return "NAN"
    if math.isinf(value):
        return "INFINITY" if value > 0 else "(-INFINITY)"
    if value == 0.0 and math.copysign(1.0, value) > 0 or value > 0:
        return repr(value)
    return f"({repr(value)})"


# ---------------------------------------------------------------- calls

def callee_order(F: Any, level: int = 0, emitted: dict | None = None) -> list:
    """Every callee reachable from ``F`` (through the callees' optimized copies), each once, callees first.

    An iterative depth-first post-order: children in the order their Tape
    first calls them, so the order (and the C numbering ``c0, c1, ...``)
    depends only on the graph.  Each callee is optimized at ``level`` once
    (``callee.optimize(level)``; 0: as given); ``emitted``, if given, receives
    ``{callee: the Function to emit for it}``.  The optimized copies are not
    kept beyond that, as ``compile`` does not keep the top Function's.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> f = sg.Function("f", [x], [sg.sin(x)])
    >>> g = sg.Function("g", [x], [f(x) + 1])
    >>> [c.name for c in callee_order(sg.Function("h", [x], [g(x) * f(2 * x)]))]
    ['f', 'g']
    """
    order: list = []
    seen: dict = {} if emitted is None else emitted
    stack = [iter(F.tape.callees)]
    path: list = []  # the callee each iterator above the first belongs to
    ready: set = set()  # bodies of optimized structured callees: optimized already
    while stack:
        for callee in stack[-1]:
            if callee not in seen:
                seen[callee] = callee.optimize(level) if level and callee not in ready else callee
                path.append(callee)
                if seen[callee].structure is not None:
                    ready.update(children(seen[callee]))
                stack.append(iter(children(seen[callee])))
                break
        else:
            stack.pop()
            if path:
                order.append(path.pop())
    return order


@dataclass(frozen=True)
class _Callee:
    """A callee's static C function and the layout of its operand and result arrays."""

    name: str
    index: int  # in the program's part list
    in_offsets: tuple  # start of each input among the operands
    n_in: int
    out_offsets: tuple  # start of each output among the results (sparse: nonzeros in Tape order)
    n_out: int
    work_size: int


def _offsets(shapes) -> tuple:
    return tuple(np.concatenate([[0], np.cumsum(sizes(shapes), dtype=np.int64)])[:-1].tolist())


def _prepared(tape: Any) -> Any:
    """``tape`` scheduled for locality, each call's results right after it (so they read its result array)."""
    tape = scheduled(tape)
    if not tape.n_calls:
        return tape
    n = tape.n_instructions
    keys = [_order_key(tape, lo, min(n, lo + _BLOCK + 1)) for lo in range(0, n, _BLOCK)]  # blocks overlap by one
    if all(np.all(key[1:] >= key[:-1]) for key in keys):  # each call's results follow it already
        return tape
    key = np.concatenate([key[:_BLOCK] for key in keys])
    return permuted(tape, np.argsort(key, kind="stable"))


_BLOCK = 1 << 18  # instructions per block of work on a large Tape (temporaries stay small: no fresh pages)


def _order_key(tape: Any, lo: int, hi: int) -> np.ndarray:
    """The sort key of instructions ``lo:hi`` putting each call's results right after it: ``2 i`` for
    instruction ``i``, ``2 c + 1`` for a result of the call at ``c``."""
    key = 2 * np.arange(lo, hi, dtype=np.int64)
    results = np.flatnonzero(tape.opcodes[lo:hi] == RESULT.code)
    key[results] = 2 * (tape.operands[lo + results, 0] - tape.first_instruction_slot) + 1
    return key


def _part_bounds(tape: Any, chunk: int) -> list[int]:
    """Start of each part and the end: ``chunk`` instructions each, a call's results kept with it."""
    n = tape.n_instructions
    if not tape.n_calls:
        return list(range(0, n, chunk)) + [n]
    is_result = tape.opcodes == RESULT.code
    read = np.zeros(tape.n_slots, dtype=bool)
    read[tape.operands[tape.operands >= 0]] = True
    read[tape.call_operands] = True
    # results nothing reads count nothing: they are stored with their call by a few loops and tables (glue.py)
    weight = np.concatenate([[0], np.cumsum(~is_result | read[tape.first_instruction_slot:])])
    is_result = is_result.tolist()
    bounds = [0]
    while bounds[-1] < n:
        end = min(n, int(np.searchsorted(weight, weight[bounds[-1]] + chunk)))
        while end < n and is_result[end]:
            end += 1
        bounds.append(end)
    return bounds


@dataclass(frozen=True)
class _Operands:
    """A call site's operands as :func:`codegen.glue.operand_table_copies` takes them.

    ``names[array[t]][index[t]]`` (arrays below ``pointable``: ``arg[k]`` and ``w``,
    which a pointer may point into), a constant, or the C text ``plain[t]``.
    """

    array: np.ndarray
    index: np.ndarray
    names: list
    pointable: int
    constants: list
    plain: dict


class _Sources:
    """Where a Tape's inputs, constants and values kept in ``w`` are read from (int arrays over slots)."""

    def __init__(self, tape: Any, wslot_of: np.ndarray, const_id: np.ndarray, constants: list) -> None:
        self.n_in, self.first = tape.n_input_scalars, tape.first_instruction_slot
        self.input_of = np.zeros(self.n_in, dtype=np.int64)
        self.element_of = np.zeros(self.n_in, dtype=np.int64)
        for k, slots in enumerate(tape.input_slots):
            flat = np.asarray(slots, dtype=np.int64).reshape(-1)
            self.input_of[flat] = k
            self.element_of[flat] = np.arange(len(flat))
        self.names = [f"arg[{k}]" for k in range(len(tape.input_slots))] + ["w"]
        self.wslot_of, self.const_id, self.constants = wslot_of, const_id, constants

    def input_text(self, a: int) -> str:
        """The C text of input slot ``a``."""
        return f"arg[{self.input_of[a]}][{self.element_of[a]}]"

    def operands(self, slots: np.ndarray, operand: Any) -> _Operands:
        """The operands ``slots`` of a call: inputs from ``arg``, kept values from ``w``, constants, and
        ``operand(slot)``'s text for any other (a local, or a rerolled loop's spilled value)."""
        n_in, first = self.n_in, self.first
        array = np.full(len(slots), PLAIN, dtype=np.int64)
        index = np.zeros(len(slots), dtype=np.int64)
        inp = slots < n_in
        array[inp], index[inp] = self.input_of[slots[inp]], self.element_of[slots[inp]]
        const = (slots >= n_in) & (slots < first)
        array[const], index[const] = CONSTANT, self.const_id[slots[const] - n_in]
        kept = (slots >= first) & (self.wslot_of[slots] >= 0)
        array[kept], index[kept] = len(self.names) - 1, self.wslot_of[slots[kept]]
        names, constants, plain = list(self.names), list(self.constants), {}
        rest = np.flatnonzero(array == PLAIN)
        if len(rest):
            texts = [operand(a) for a in slots[rest].tolist()]
            more, at, spelled = parse_operands(texts, names)
            number = {text: c for c, text in enumerate(constants)}
            renumber = np.array([number.setdefault(text, len(number)) for text in spelled] + [0], dtype=np.int64)
            at = np.where(more == CONSTANT, renumber[np.minimum(at, len(spelled))], at)
            constants = list(number)
            array[rest], index[rest] = more, at
            plain = {t: texts[r] for r, t in enumerate(rest.tolist()) if more[r] == PLAIN}
        return _Operands(array, index, names, len(self.names), constants, plain)


def _call_site(callee: _Callee, operands: _Operands, base: int, tables: Any = None) -> list[str]:
    """A call: operands into ``w[base ...]``, results after them, the callee's work area after those.

    An input of the callee whose operands are one contiguous run of an input
    array (``arg[k][j0 ...]``) or of kept values (``w[j0 ...]``, all below
    ``base``) is passed as a pointer into it, not copied (a map body reading
    the whole parameter vector: no copy per instance).
    """
    lines = ["  {", f"    double *const cw = w + {base};"]
    ends = list(callee.in_offsets[1:]) + [callee.n_in]
    array, index = operands.array.copy(), operands.index
    pointers = []
    for lo, hi in zip(callee.in_offsets, ends):
        where = pointer_run(array[lo:hi], index[lo:hi], operands.names, operands.pointable) \
            if hi - lo >= MIN_POINTER else None
        if where is not None:
            array[lo:hi] = PASSED
        pointers.append(where)
    lines.extend(operand_table_copies("cw", array, index, operands.names, operands.constants, operands.plain,
                                      tables=tables))
    return lines + call_statements(callee, pointers) + ["  }"]


def _stored_results(tape: Any, reader_part: np.ndarray, last_part: np.ndarray,
                    wslot_of: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which results are stored into the outputs together with their call (nothing else reads them).

    Returns, per instruction: ``block_end`` (for a call, the end of the run of its
    results right after it, in its part), ``done`` (a result of that run that
    only outputs read: stored straight from ``w`` by the call site) and
    ``resume`` (the first instruction at or after it that is not ``done``).
    """
    n, first = tape.n_instructions, tape.first_instruction_slot
    rows = np.arange(n, dtype=np.int64)
    if not tape.n_calls:
        return rows + 1, np.zeros(n, dtype=bool), rows
    is_result = tape.opcodes == RESULT.code
    anchor = np.maximum.accumulate(np.where(is_result, -1, rows))  # the last other instruction at or before
    at = np.maximum(anchor, 0)
    follows = is_result & (anchor >= 0) & (tape.operands[:, 0] - first == anchor) & (reader_part == reader_part[at])
    broken = np.cumsum(is_result & ~follows)  # a result of another call or part ends the run
    in_run = follows & (broken == broken[at])
    after = np.minimum.accumulate(np.where(in_run, n, rows)[::-1])[::-1]
    block_end = np.append(after, n)[rows + 1]
    done = in_run & (last_part[first:] < 0) & (wslot_of[first:] < 0)
    resume = np.minimum.accumulate(np.where(done, n, rows)[::-1])[::-1]
    return block_end, done, resume


# ---------------------------------------------------------------- body

@dataclass(frozen=True)
class _Body:
    """The part functions of one Tape: texts, helpers and names, the parts each calls, the work size."""

    parts: list
    helpers: list
    names: list
    calls: list
    work_size: int
    emitted: int = 0  # statements computing values (a rerolled loop's body counts once)


def _emit_parts(tape: Any, outputs: _Outputs, cname: str, chunk: int, prefix: str = "",
                callees: dict | None = None, first_index: int = 0, loops: bool = True,
                tables: Any = None) -> _Body:
    """Part functions ``NAME__{prefix}partK`` of ``tape`` (``first_index``: the first one's index in the program).

    ``tables`` (a :class:`codegen.stores.Tables`, for the top-level Tape of a JIT
    build) takes the large tables of its copies as run-time data.

    A call's operands, results and its callee's work area follow the slots
    of ``w`` that hold values crossing parts; its results are read from there
    right after the call (:func:`_prepared` puts them there).
    """
    n = tape.n_instructions
    if n == 0:
        return _Body([], [], [], [], 0)
    if callees is not None and is_glue(tape):  # one call and its results: copies as loops
        info = callees[tape.callee(0)]
        pname = c_symbol(cname, f"{prefix}part0")
        text = "\n".join([f"void {pname}{SIGNATURE} {{", "  (void)arg; (void)res; (void)w;",
                          *glue_lines(tape, outputs.slots, info, c_constant, tables), "}\n"])
        return _Body([text], [frozenset()], [pname], [frozenset({info.index})], info.n_in + info.n_out + info.work_size,
                     text.count(";"))
    if callees is not None and is_multi_glue(tape):  # several calls on inputs (assembled callbacks): the same
        pname = c_symbol(cname, f"{prefix}part0")
        lines = multi_glue_lines(tape, outputs.slots, callees, c_constant, tables)
        text = "\n".join([f"void {pname}{SIGNATURE} {{", "  (void)arg; (void)res; (void)w;", *lines, "}\n"])
        used = [callees[G] for G in tape.callees]
        return _Body([text], [frozenset()], [pname], [frozenset(info.index for info in used)],
                     max(info.n_in + info.n_out + info.work_size for info in used), text.count(";"))
    n_in, first = tape.n_input_scalars, tape.first_instruction_slot
    operand_matrix = tape.operands
    bounds = _part_bounds(tape, chunk)
    reader_part = np.repeat(np.arange(len(bounds) - 1, dtype=np.int64), np.diff(bounds))
    last_part = np.full(tape.n_slots, -1, dtype=np.int64)
    for k in range(operand_matrix.shape[1]):
        column = operand_matrix[:, k]
        used = column >= 0
        np.maximum.at(last_part, column[used], reader_part[used])
    if tape.n_calls:
        where = np.flatnonzero(tape.opcodes == CALL.code)
        row_part = np.zeros(tape.n_calls, dtype=np.int64)
        row_part[tape.immediates[where]] = reader_part[where]
        np.maximum.at(last_part, tape.call_operands, np.repeat(row_part, np.diff(tape.call_offsets)))
    # values that live across parts get a work slot, reused after their last reader part
    crossing = np.flatnonzero(last_part[first:] > reader_part)
    wslot: dict[int, int] = {}
    free: list[int] = []
    release: dict[int, list[int]] = {}
    size = 0
    current = 0
    for i, p, last in zip(crossing.tolist(), reader_part[crossing].tolist(), last_part[first + crossing].tolist()):
        while current < p:
            current += 1
            free.extend(sorted(release.pop(current, ()), reverse=True))
        if free:
            w = free.pop()
        else:
            w, size = size, size + 1
        wslot[first + i] = w
        release.setdefault(last + 1, []).append(w)

    wslot_of = np.full(tape.n_slots, -1, dtype=np.int64)
    if wslot:
        wslot_of[list(wslot)] = list(wslot.values())
    consts = [c_constant(v) for v in tape.constants.tolist()]
    text_id: dict[str, int] = {}
    const_id = np.array([text_id.setdefault(c, len(text_id)) for c in consts], dtype=np.int64)
    sources = _Sources(tape, wslot_of, const_id, list(text_id))
    ops = _op_array()[tape.opcodes].tolist()
    columns = [operand_matrix[:, k].tolist() for k in range(operand_matrix.shape[1])]  # flat lists: quick to make
    col0, col1 = (columns + [[], []])[:2]
    operands = _Rows(columns)
    immediates = tape.immediates.tolist()
    block_end, done, resume = _stored_results(tape, reader_part, last_part, wslot_of)
    places = outputs.places(~done)
    place_slot, place_k, place_j = outputs.place_table
    finder = None
    if loops:
        result_base = {first + i: size + callees[tape.callee(i)].n_in
                       for i in np.flatnonzero(tape.opcodes == CALL.code).tolist()} if tape.n_calls else {}
        finder = _LoopFinder(tape, outputs.place_table, wslot_of, reader_part, last_part, result_base)
    loaded = [-1] * tape.n_slots  # part in which a slot was last loaded into a local
    done_at, resume_at = done.tolist(), resume.tolist()
    # per op: the C format and the helper it needs, for the plain ones (_statement does the others)
    plain = {op: (op.c.format, op.name if op.name in C_HELPERS else None) for op in set(ops)
             if op is not CALL and op is not RESULT and op is not _POWI and op.c is not None}
    # (format, arity) of the instructions the inner loop of emit_run writes itself: a plain op of one or
    # two operands needing no helper, not written with its call, stored into no output (None: emit writes
    # it); kept_in[i]: the work slot instruction i is kept in (-1: none)
    shape_of = np.empty(len(OP_LIST) + 1, dtype=object)  # by opcode; the last entry: None for the others
    for op, (fmt, helper) in plain.items():
        if helper is None and op.arity in (1, 2):
            shape_of[op.code] = (fmt, op.arity)
    simple = ~done
    simple[place_slot - first] = False
    kept_in = wslot_of[first:].tolist()
    shapes = shape_of[np.where(simple, tape.opcodes, len(OP_LIST))].tolist()
    results_at: dict[int, int] = {}  # call slot -> where its results start in w
    scratch = 0  # doubles after the crossing slots that calls use
    emitted = 0  # statements of instructions written (a loop's body once)
    body = _Body([], [], [], [], 0)
    for p in range(len(bounds) - 1):
        lo, hi = bounds[p], bounds[p + 1]
        pname = c_symbol(cname, f"{prefix}part{p}")
        lines = [f"void {pname}{SIGNATURE} {{", "  (void)arg; (void)res; (void)w;"]
        helpers: set = set()
        called: set = set()
        part_first = first + lo

        spilled: dict = {}  # slot -> where a rerolled loop keeps it (middle iterations read later)

        def operand(a: int) -> str:
            if a in spilled:
                return spilled[a]
            if a >= part_first or (n_in <= a < first):
                return f"v{a}" if a >= first else consts[a - n_in]
            if loaded[a] != p:
                loaded[a] = p
                source = sources.input_text(a) if a < n_in else f"w[{wslot[a]}]"
                lines.append(f"  const double v{a} = {source};")
            return f"v{a}"

        def emit(i: int) -> int:
            """Emit instruction ``i``; the next instruction to emit (results stored with their call are skipped)."""
            nonlocal scratch, emitted
            if done_at[i]:
                return resume_at[i]
            op = ops[i]
            s = first + i
            if op is CALL:
                info = callees[tape.callee(i)]
                # inputs and values kept in w are copied straight from arg and w (loops and tables, glue.py)
                lines.extend(_call_site(info, sources.operands(call_operands(tape, i), operand), size, tables))
                called.add(info.index)
                results_at[s] = size + info.n_in
                scratch = max(scratch, info.n_in + info.n_out + info.work_size)
                # results only stored into outputs go there straight from w, together (glue.py)
                a, b = np.searchsorted(place_slot, [s + 1, first + int(block_end[i])])
                mine = done[place_slot[a:b] - first]
                lines.extend(result_table_copies(place_k[a:b][mine], place_j[a:b][mine],
                                                 results_at[s] + tape.immediates[place_slot[a:b][mine] - first], "w",
                                                 tables=tables))
                emitted += 1
                return i + 1
            emitted += 1
            fast = plain.get(op)
            if fast is not None:
                fmt, helper = fast
                row = operands[i]
                if spilled:
                    line = f"  const double v{s} = {fmt(*[operand(a) for a in row[: op.arity]])};"
                elif op.arity == 2:  # values of this part written inline (the usual operands), the others loaded
                    a, b = row[0], row[1]
                    ta = f"v{a}" if a >= part_first else operand(a)
                    line = f"  const double v{s} = {fmt(ta, f'v{b}' if b >= part_first else operand(b))};"
                elif op.arity == 1:
                    a = row[0]
                    line = f"  const double v{s} = {fmt(f'v{a}' if a >= part_first else operand(a))};"
                else:
                    line = f"  const double v{s} = {fmt(*[operand(a) for a in row[: op.arity]])};"
                lines.append(line)
                if helper is not None:
                    helpers.add(helper)
            elif op is RESULT:
                lines.append(f"  const double v{s} = w[{results_at[operands[i][0]] + immediates[i]}];")
            else:
                lines.extend(_statement(f"v{s}", op, [operand(a) for a in operands[i][: op.arity]],
                                        operands[i], tape, helpers))
            stored = places.get(s)
            if stored:
                lines.extend(_computed_stores(stored, f"v{s}"))
            if s in wslot:
                lines.append(f"  w[{wslot[s]}] = v{s};")
            return i + 1

        def emit_run(i: int, stop: int) -> int:
            """Emit instructions from ``i`` while before ``stop`` (as ``emit`` does); where it stopped."""
            nonlocal emitted
            if spilled:
                while i < stop:
                    i = emit(i)
                return i
            append, count = lines.append, 0
            while i < stop:
                shape = shapes[i]
                if shape is None:
                    i = emit(i)
                    continue
                fmt, arity = shape
                a = col0[i]  # a value of this part or one loaded into it already: its local; a constant: inline
                if a >= part_first or loaded[a] == p:
                    ta = f"v{a}"
                else:
                    ta = consts[a - n_in] if n_in <= a < first else operand(a)
                if arity == 2:
                    b = col1[i]
                    if b >= part_first or loaded[b] == p:
                        tb = f"v{b}"
                    else:
                        tb = consts[b - n_in] if n_in <= b < first else operand(b)
                    append(f"  const double v{first + i} = {fmt(ta, tb)};")
                else:
                    append(f"  const double v{first + i} = {fmt(ta)};")
                if kept_in[i] >= 0:
                    append(f"  w[{kept_in[i]}] = v{first + i};")
                count += 1
                i += 1
            emitted += count
            return i

        found = finder.loops(lo, hi, part_first) if finder is not None else []
        i = lo
        for loop in found + [None]:
            start = hi if loop is None else lo + loop.start
            i = emit_run(i, start)
            if loop is None:
                break
            for i in range(start, start + loop.period):  # iteration 0, straight
                emit(i)
            lines.extend(_loop_lines(loop, start, first, ops, operands, operand, finder.array_names, tape,
                                     helpers))
            emitted += loop.period
            s0 = first + start
            for q in loop.spilled:
                spilled.update((s0 + r * loop.period + q, f"e{s0}_{q}[{r}]") for r in range(1, loop.count - 1))
            for i in range(start + (loop.count - 1) * loop.period, lo + loop.stop):  # the last iteration
                emit(i)
            i = lo + loop.stop
        lines.append("}\n")
        body.parts.append("\n".join(lines))
        body.helpers.append(frozenset(helpers))
        body.names.append(pname)
        body.calls.append(frozenset(called))
    return _Body(body.parts, body.helpers, body.names, body.calls, size + scratch, emitted)


def _computed_stores(places: list, value: str) -> list[str]:
    """Stores of a local ``value`` into its output places ``[(k, j), ...]`` (runs become loops)."""
    if len(places) < stores.MIN_LOOP:
        return [f"  res[{k}][{j}] = {value};" for k, j in places]
    lines = []
    for k in sorted({k for k, _ in places}):
        lines.extend(stores.scalar_stores(k, np.array(sorted(j for kk, j in places if kk == k)), value))
    return lines


def _statement(name: str, op: Any, texts: list[str], operands: list[int], tape: Any, helpers: set) -> list[str]:
    """The statements defining the local ``name`` as ``op`` applied to the operand texts."""
    if op is _POWI:
        return _powi(name, texts[0], operands[1], tape, tape.n_input_scalars)
    if op.c is None:
        raise CompileError(f"op {op.name!r} has no C spelling in the op table; cannot generate C")
    if op.name in C_HELPERS:
        helpers.add(op.name)
    return [f"  const double {name} = {op.c.format(*texts)};"]


def _powi(name: str, base: str, exponent_slot: int, tape: Any, n_in: int) -> list[str]:
    """Statements computing ``name = base ** n``: multiplications for small ``n``, else ``pow``.

    For ``POWI_MIN <= n <= POWI_MAX`` the power is built by squaring from
    ``base`` (``1.0 / base`` when ``n < 0``, so that ``x**-2`` is not
    ``1/(x*x)``, which overflows to 0 where the result is still finite); larger
    ``|n|`` go to ``pow``, which is accurate to an ulp where squaring is not.
    """
    first = tape.first_instruction_slot
    value = float(tape.constants[exponent_slot - n_in]) if n_in <= exponent_slot < first else None
    if value is None or not value.is_integer() or not POWI_MIN <= value <= POWI_MAX:
        exponent = f"v{exponent_slot}" if value is None else c_constant(value)
        return [f"  const double {name} = pow({base}, {exponent});"]
    n = int(value)
    if n == 0:
        return [f"  const double {name} = 1.0;"]
    lines: list[str] = []

    def temp(expr: str) -> str:
        lines.append(f"  const double {name}_{len(lines) + 1} = {expr};")
        return f"{name}_{len(lines)}"

    square = temp(f"1.0 / {base}") if n < 0 else base
    result, m = None, abs(n)
    while True:
        if m & 1:
            result = square if result is None else temp(f"{result} * {square}")
        m >>= 1
        if not m:
            break
        square = temp(f"{square} * {square}")
    if lines and lines[-1].startswith(f"  const double {result} ="):
        lines[-1] = lines[-1].replace(f"const double {result} =", f"const double {name} =")
    else:
        lines.append(f"  const double {name} = {result};")
    return lines


# ---------------------------------------------------------------- rerolled loops

class _LoopFinder:
    """What :func:`codegen.reroll.find_loops` needs about a Tape's instructions, computed once per Tape.

    Operand and store columns: the op's operands, then the work slot a value is
    kept in, then up to ``_MAX_PLACES`` output places.  Array numbers:
    ``w``, then ``arg[0], arg[1], ...``, then ``res[0], res[1], ...``
    (``array_names`` gives their C names).
    """

    def __init__(self, tape: Any, place_table: tuple, wslot_of: np.ndarray, reader_part: np.ndarray,
                 last_part: np.ndarray, result_base: dict) -> None:
        n_in, first, n = tape.n_input_scalars, tape.first_instruction_slot, tape.n_instructions
        self.first, self.n_in = first, n_in
        n_inputs = len(tape.input_slots)
        self.array_names = ["w"] + [f"arg[{i}]" for i in range(n_inputs)] + \
            [f"res[{k}]" for k in range(len(tape.output_slots))]
        self.res0 = reroll.ARRAY0 + 1 + n_inputs
        self.input_array = np.zeros(n_in, dtype=np.int64)
        self.input_element = np.zeros(n_in, dtype=np.int64)
        for i, slots in enumerate(tape.input_slots):
            flat = np.asarray(slots, dtype=np.int64).reshape(-1)
            self.input_array[flat] = reroll.ARRAY0 + 1 + i
            self.input_element[flat] = np.arange(len(flat))
        self.wslot = wslot_of
        arity = np.array([op.arity for op in OP_LIST], dtype=np.int64)
        codes = tape.opcodes.astype(np.int64)
        usable = np.array([op.c is not None or op is RESULT or op is _POWI for op in OP_LIST])[codes]
        self.commutative = np.array([op.arity == 2 and op.has("commutative") for op in OP_LIST])[codes]
        self.operands = np.where(np.arange(tape.operands.shape[1]) < arity[codes][:, None], tape.operands, -1)
        # a result is read from the call's result array in w: a load from w (those stored with the call: never)
        self.result = np.flatnonzero(codes == RESULT.code)
        if len(self.result):
            slots = first + self.result
            usable[self.result[(last_part[slots] < 0) & (self.wslot[slots] < 0)]] = False
            base = np.array([result_base[c] for c in tape.operands[self.result, 0].tolist()], dtype=np.int64)
            self.result_w = base + tape.immediates[self.result]
        # each instruction's output places, up to MAX_PLACES (more: never in a loop)
        self.places = np.full((n, 2 * _MAX_PLACES), -1, dtype=np.int64)
        slot, k, j = place_table
        row = slot - first
        count = np.bincount(row, minlength=n)
        usable[count > _MAX_PLACES] = False
        rank = np.arange(len(row)) - np.searchsorted(row, row)  # place number of each among its slot's
        fits = count[row] <= _MAX_PLACES
        self.places[row[fits], 2 * rank[fits]] = self.res0 + k[fits]
        self.places[row[fits], 2 * rank[fits] + 1] = j[fits]
        self.key = np.where(usable, codes, -1 - np.arange(n, dtype=np.int64))
        # the last reader of each value in the part that computes it
        self.last_reader = np.full(n, -1, dtype=np.int64)
        rows = np.arange(n, dtype=np.int64)
        reads = [(rows, self.operands[:, k]) for k in range(self.operands.shape[1])]
        if tape.n_calls:
            where = np.flatnonzero(codes == CALL.code)
            row_of = np.zeros(tape.n_calls, dtype=np.int64)
            row_of[tape.immediates[where]] = where
            reads.append((np.repeat(row_of, np.diff(tape.call_offsets)), np.asarray(tape.call_operands)))
        for reader, a in reads:
            inside = a >= first
            reader, a = reader[inside], a[inside] - first
            same = reader_part[reader] == reader_part[a]
            np.maximum.at(self.last_reader, a[same], reader[same])

    def loops(self, lo: int, hi: int, part_first: int) -> list:
        """The rerolled loops of instructions ``lo:hi`` (one part), starts relative to ``lo``."""
        if hi - lo < reroll.MIN_ITERATIONS:
            return []
        first = self.first
        a = self.operands[lo:hi]
        arr = np.full(a.shape, reroll.UNUSED, dtype=np.int64)
        idx = np.zeros(a.shape, dtype=np.int64)
        local = a >= part_first
        arr[local], idx[local] = reroll.LOCAL, a[local]
        const = (a >= self.n_in) & (a < first)
        arr[const], idx[const] = reroll.CONST, a[const]
        inp = (a >= 0) & (a < self.n_in)
        arr[inp], idx[inp] = self.input_array[a[inp]], self.input_element[a[inp]]
        kept = (a >= first) & (a < part_first)
        arr[kept], idx[kept] = reroll.ARRAY0, self.wslot[a[kept]]
        if len(self.result):
            lo_r, hi_r = np.searchsorted(self.result, [lo, hi])
            rows = self.result[lo_r:hi_r] - lo
            arr[rows, 0], idx[rows, 0] = reroll.ARRAY0, self.result_w[lo_r:hi_r]
        ws = self.wslot[first + lo:first + hi]
        store_arr = np.where(ws >= 0, reroll.ARRAY0, reroll.UNUSED)[:, None]
        pl = self.places[lo:hi]
        # commutative ops: operands in a canonical order (a + b and b + a are the same IEEE result),
        # so that iterations the scheduler wrote as v1 + v2 and v3 + v1 still match
        rel = np.where(arr == reroll.LOCAL, part_first + np.arange(hi - lo)[:, None] - idx, idx)
        swap = self.commutative[lo:hi] & ((arr[:, 0] > arr[:, 1]) | ((arr[:, 0] == arr[:, 1]) & (rel[:, 0] > rel[:, 1])))
        arr[swap, :2], idx[swap, :2] = arr[swap, 1::-1], idx[swap, 1::-1]
        arr = np.concatenate([arr, store_arr, pl[:, 0::2]], axis=1)
        idx = np.concatenate([idx, np.maximum(ws, 0)[:, None], np.maximum(pl[:, 1::2], 0)], axis=1)
        return reroll.find_loops(self.key[lo:hi], arr, idx, a.shape[1], part_first, self.last_reader[lo:hi] - lo)


class _Rows:
    """Row ``i`` of an operand matrix as a list, made when asked, from its columns as lists.

    >>> _Rows([[1, 2], [3, 4]])[1]
    [2, 4]
    """

    __slots__ = ("columns",)

    def __init__(self, columns: list) -> None:
        self.columns = columns

    def __getitem__(self, i: int) -> list:
        return [column[i] for column in self.columns]


def _op_array() -> np.ndarray:
    """The ops of ``OP_LIST`` by opcode in an object array, and None after them (for fancy indexing)."""
    array = np.empty(len(OP_LIST) + 1, dtype=object)
    for op in OP_LIST:
        array[op.code] = op
    return array


_MAX_PLACES = 4  # output places of one value that a loop body stores (a value with more stays straight-line)


def _loop_lines(loop: Any, start: int, first: int, ops: list, operands: list, operand: Any, arrays: list,
                tape: Any, helpers: set) -> list[str]:
    """The ``for`` loop of a rerolled loop's middle iterations (its first iteration is already emitted).

    Locals of the body are ``l{p}`` (position ``p``); a value the next iteration
    reads lives in ``c{S}_{p}`` (``S``: the loop's first slot), and the last
    straight iteration reads iteration ``count - 2``'s as its usual ``v`` local;
    middle-iteration values read after the loop go into ``e{S}_{p}[r]``.
    """
    s0 = first + start
    L, count = loop.period, loop.count
    carry = {q: f"c{s0}_{q}" for q in loop.carried}
    lines = [f"  double {name} = v{s0 + q};" for q, name in carry.items()]
    lines.extend(f"  double e{s0}_{q}[{count - 1}];" for q in loop.spilled)
    lines.append(f"  for (long r = 1; r < {count - 1}; ++r) {{")
    for p in range(L):
        i = start + p
        op = ops[i]
        texts = []
        for k, ref in enumerate(loop.refs[p][:op.arity]):
            if ref.kind == "same":
                texts.append(f"l{ref.q}")
            elif ref.kind == "carried":
                texts.append(carry[ref.q])
            elif ref.kind == "fixed":
                texts.append(operand(ref.base))  # in scope: iteration 0 read it already
            else:
                texts.append(f"{arrays[ref.array - reroll.ARRAY0]}[{reroll.index_text(ref.base, ref.step)}]")
        if op is RESULT:
            lines.append(f"    const double l{p} = {texts[0]};")
        else:
            lines.extend("  " + line for line in _statement(f"l{p}", op, texts, operands[i], tape, helpers))
        lines.extend(f"    {arrays[ref.array - reroll.ARRAY0]}[{reroll.index_text(ref.base, ref.step)}] = l{p};"
                     for ref in loop.stores[p])
        if p in loop.spilled:
            lines.append(f"    e{s0}_{p}[r] = l{p};")
    lines.extend(f"    {name} = l{q};" for q, name in carry.items())
    lines.append("  }")
    last = s0 + (count - 2) * L
    lines.extend(f"  const double v{last + q} = {name};" for q, name in carry.items())
    return lines


# ---------------------------------------------------------------- entry and metadata

def _emit_entry(F: Any, tape: Any, outputs: _Outputs, cname: str, part_names: list, work_size: int,
                tables: Any = None) -> str:
    """The entry point, the batch entry point and the metadata; ``tables``: see :func:`program`."""
    fills, copies = _copy_stores(tape, outputs, tables)
    n_tables = len(tables.arrays) if tables is not None else 0
    body = [f"static int {cname}__eval{SIGNATURE} {{", "  (void)arg; (void)res; (void)w;", *fills]
    body.extend(f"  {name}(arg, res, w);" for name in part_names)
    body.extend(copies)
    body.append("  return 0;\n}\n")
    body.append(f"int {cname}{SIGNATURE} {{\n  return {cname}__eval(arg, res, w);\n}}\n")

    in_sizes = [int(np.prod(s, dtype=np.int64)) for s in F.input_shapes]
    batch = [f"int {cname}__batch(long n, const double *const *arg, double *const *res, double *w) {{",
             f"  const double *a[{max(1, len(in_sizes) + n_tables)}] = {{0}};",
             f"  double *r[{max(1, len(outputs.sizes))}] = {{0}};",
             "  long p;", "  (void)arg; (void)res;"]
    if n_tables:  # the run-time tables, the same for every point
        batch.append(f"  for (p = {len(in_sizes)}; p < {len(in_sizes) + n_tables}; ++p) a[p] = arg[p];")
    batch += ["  for (p = 0; p < n; ++p) {", "    int flag;"]
    batch.extend(f"    a[{i}] = arg[{i}] + p * {size}L;" for i, size in enumerate(in_sizes))
    batch.extend(f"    r[{k}] = res[{k}] + p * {size}L;" for k, size in enumerate(outputs.sizes))
    batch += [f"    flag = {cname}__eval(a, r, w);", "    if (flag) return flag;", "  }", "  return 0;\n}\n"]

    meta = [f"int {cname}__n_in(void) {{ return {F.n_in}; }}\n",
            f"int {cname}__n_out(void) {{ return {F.n_out}; }}\n",
            f"long {cname}__work_size(void) {{ return {work_size}L; }}\n"]
    meta.append(_switch(f"const char *{cname}__name_in(int i)", [c_string(s) for s in F.input_names], "0"))
    meta.append(_switch(f"const char *{cname}__name_out(int i)", [c_string(s) for s in F.output_names], "0"))
    meta.append(_switch(f"long {cname}__numel_in(int i)", [f"{s}L" for s in in_sizes], "-1L"))
    meta.append(_switch(f"long {cname}__nnz_out(int i)", [f"{s}L" for s in outputs.sizes], "-1L"))
    for kind, shapes in (("in", F.input_shapes), ("out", F.output_shapes)):
        meta.append(_switch(f"int {cname}__ndim_{kind}(int i)", [str(len(s)) for s in shapes], "-1"))
        arrays = "".join(f"static const long {cname}__shape_{kind}{k}[] = {{{_longs(s or (0,))}}};\n"
                         for k, s in enumerate(shapes))
        meta.append(arrays + _switch(f"const long *{cname}__shape_{kind}(int i)",
                                     [f"{cname}__shape_{kind}{k}" for k in range(len(shapes))], "0"))
    arrays, cases = [], []
    for k, sp in enumerate(outputs.sparsity):
        if sp is None or tables is not None and tables.takes(2 + len(sp[2]) + len(sp[3])):
            cases.append("0")  # dense; or (JIT build) a large pattern, which the runtime holds
        else:
            nrow, ncol, colind, row = sp
            arrays.append(f"static const long {cname}__sparsity_out{k}[] = {{{_longs([nrow, ncol] + colind + row)}}};\n")
            cases.append(f"{cname}__sparsity_out{k}")
    meta.append("".join(arrays) + _switch(f"const long *{cname}__sparsity_out(int i)", cases, "0"))
    return "\n".join(body) + "\n" + "\n".join(batch) + "\n" + "\n".join(meta)


def _copy_stores(tape: Any, outputs: _Outputs, tables: Any = None) -> tuple[list[str], list[str]]:
    """Stores of the output entries that are inputs or constants (the parts store computed ones).

    Returns the lines to run before the parts (fills) and after them; see
    :func:`codegen.stores.copy_stores` (``tables``: run-time tables, top level of a
    JIT build).  Constants that print alike are one source.
    """
    n_in, first = tape.n_input_scalars, tape.first_instruction_slot
    text_id: dict[str, int] = {}
    const_key = [text_id.setdefault(c_constant(v), len(text_id)) for v in tape.constants.tolist()]
    input_of = np.zeros(n_in, dtype=np.int64)
    element_of = np.zeros(n_in, dtype=np.int64)
    for i, slots in enumerate(tape.input_slots):
        flat = np.asarray(slots, dtype=np.int64).reshape(-1)
        input_of[flat] = i
        element_of[flat] = np.arange(len(flat))
    n_inputs = len(tape.input_slots)
    source_of = np.concatenate([input_of, n_inputs + np.array(const_key, dtype=np.int64)])
    element = np.concatenate([element_of, np.zeros(len(const_key), dtype=np.int64)])
    entries = []
    for k, slots in enumerate(outputs.slots):
        j = np.flatnonzero(slots < first)
        if len(j):
            entries.append((k, len(slots), j, source_of[slots[j]], element[slots[j]]))
    return stores.copy_stores(entries, stores.Sources(n_inputs, tuple(text_id)), tables)


def _longs(values) -> str:
    return ", ".join(f"{int(v)}L" for v in values)


def _switch(signature: str, cases: list[str], default: str) -> str:
    lines = [f"{signature} {{", "  switch (i) {"]
    lines.extend(f"    case {k}: return {c};" for k, c in enumerate(cases))
    lines += [f"    default: return {default};", "  }", "}\n"]
    return "\n".join(lines)


def _describe(F: Any) -> str:
    return f"Function {c_comment(F.name)} ({F.n_ops} ops)"


def _declarations(F: Any, cname: str, work_size: int, n_tables: int = 0) -> str:
    def describe(names, shapes, sparsity=None):
        lines = []
        for k, (nm, shape) in enumerate(zip(names, shapes)):
            kind = "dense" if sparsity is None or sparsity[k] is None else \
                f"sparse, {len(sparsity[k][0])} nonzeros in compressed-column order"
            dims = "x".join(map(str, shape)) if shape else "scalar"
            lines.append(f" *   [{k}] {c_comment(nm)}: {dims} ({kind})")
        return "\n".join(lines) if lines else " *   (none)"

    guard = header_guard(cname)
    return f"""#ifndef {guard}
#define {guard}
#ifdef __cplusplus
extern "C" {{
#endif

/* {_describe(F)}.
 * Inputs (arg[i] points to the values, flattened in C order):
{describe(F.input_names, F.input_shapes)}{_tables_note(F.n_in, n_tables)}
 * Outputs (res[k] points to room for {cname}__nnz_out(k) doubles):
{describe(F.output_names, F.output_shapes, F.output_sparsity)}
 *
 * {cname}(arg, res, w) evaluates one point and returns 0.  w points to
 * {cname}__work_size() = {work_size} doubles of scratch memory (may be NULL when 0).
 * Outputs must not overlap inputs.  The code keeps no state: calls with
 * separate w are thread safe.
 */
int {cname}{SIGNATURE};

/* Evaluate n points: arg[i] holds n * {cname}__numel_in(i) doubles, point after point,
 * res[k] room for n * {cname}__nnz_out(k) doubles. */
int {cname}__batch(long n, const double *const *arg, double *const *res, double *w);

int {cname}__n_in(void);            /* number of inputs */
int {cname}__n_out(void);           /* number of outputs */
long {cname}__work_size(void);      /* doubles of work memory w */
const char *{cname}__name_in(int i);    /* input name (NULL out of range) */
const char *{cname}__name_out(int i);   /* output name */
long {cname}__numel_in(int i);      /* doubles in input i */
long {cname}__nnz_out(int i);       /* doubles in output i (its nonzeros if sparse) */
int {cname}__ndim_in(int i);        /* number of dimensions of input i */
int {cname}__ndim_out(int i);
const long *{cname}__shape_in(int i);   /* dimensions of input i */
const long *{cname}__shape_out(int i);
/* NULL for a dense output; for a sparse one {{nrow, ncol, colind[0..ncol], row[0..nnz-1]}}
 * (compressed column storage, as CasADi). */
const long *{cname}__sparsity_out(int i);

#ifdef __cplusplus
}}
#endif
#endif
"""


def _tables_note(n_in: int, n_tables: int) -> str:
    """The header's line on run-time tables (none: empty)."""
    if not n_tables:
        return ""
    return (f"\n *   [{n_in}..{n_in + n_tables - 1}] index and value tables this code reads at run time "
            "(built with runtime_tables=True: the caller passes them after the inputs)")


def _cdef(cname: str) -> str:
    return (f"int {cname}{SIGNATURE};\n"
            f"int {cname}__batch(long n, const double *const *arg, double *const *res, double *w);\n"
            f"long {cname}__work_size(void);\n")
