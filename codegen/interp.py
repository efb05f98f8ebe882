"""A compiled interpreter of Tapes: any call-free Function runs at C speed with no C of its own.

The first tier of ``compile(tier="auto")`` for large Functions (see
:func:`codegen.runtime.compile_function`).  Generating and compiling C for an
unrolled model of a million operations takes tens of seconds; this module
instead turns the Tape into four int32 columns per instruction (opcode and
operand slots) and runs them in one loop of C, a ``switch`` over the op table
written once per machine (the library is model-independent, built once and
cached like any other).  Like CasADi's SX virtual machine it needs no
compiler run per model: set-up costs a few array copies, a call a few
nanoseconds per instruction.

Each op is spelled with the op table's own C template, over the same
operands in the same order, and integer powers are built by the same
squarings as the generated C (:func:`codegen.c99._powi`), so the interpreter
and the generated code agree bitwise (both compiled without fast math).

>>> import numpy as np, symgraph as sg
>>> x = sg.symbols("x", 3)
>>> F = sg.Function("f", [x], [sg.sin(x) * x[0] ** 3, x @ x])
>>> C = interpreted(F)
>>> C.tier, bool(np.allclose(C(np.arange(3.0))[0], F(np.arange(3.0))[0]))
('interp', True)
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import numpy as np

from symgraph.ops import C_HELPERS, OP_LIST, OPS

from . import build as _build
from .c99 import POWI_MAX, POWI_MIN, _output_layout
from .runtime import CompiledFunction, _Code, _Local

#: The two opcodes the interpreter adds to the op table's: ``x ** n`` by the generated C's squarings
#: (``n`` in the fourth column), and the result of a power with a run-time exponent.
POWI_SQUARING = len(OP_LIST)
_POWI, _POW = OPS["powi"], OPS["pow"]
INTERP_VERSION = 1

_DECLARATIONS = """
typedef struct {
    long n_instr, n_const, n_in, n_out, first;
    const int *code;
    const double *constants;
    const long *in_offsets;
    const long *out_offsets;
    const int *out_slots;
} sg_tape_program;
int sg_interp_eval(const sg_tape_program *p, const double *const *arg, double *const *res, double *w);
int sg_interp_batch(const sg_tape_program *p, long n, const double *const *arg, double *const *res, double *w);
"""


def interpreter_source() -> str:
    """The C text of the interpreter: a ``switch`` with one case per op of the table.

    >>> src = interpreter_source()
    >>> "case 15:" in src and "sin(" in src
    True
    """
    cases = []
    names = "w[q[1]]", "w[q[2]]", "w[q[3]]"
    for op in OP_LIST:
        if op.c is None:
            continue
        cases.append(f"        case {op.code}: v = {op.c.format(*names)}; break;  /* {op.name} */")
    cases.append(f"        case {POWI_SQUARING}: v = sg_powi(w[q[1]], q[3]); break;  /* powi by squaring */")
    helpers = "\n".join(C_HELPERS[h] for h in sorted(C_HELPERS))
    return f"""/* symgraph Tape interpreter, version {INTERP_VERSION}; generated from the op table; do not edit. */
#include <math.h>
{_DECLARATIONS}
{helpers}

/* x**n for POWI_MIN <= n <= POWI_MAX, with the generated C's multiplications in the same order */
static double sg_powi(double base, int n) {{
    double square, result = 0.0;
    int m, have = 0;
    if (n == 0) return 1.0;
    square = n < 0 ? 1.0 / base : base;
    m = n < 0 ? -n : n;
    for (;;) {{
        if (m & 1) {{ result = have ? result * square : square; have = 1; }}
        m >>= 1;
        if (!m) break;
        square = square * square;
    }}
    return result;
}}

static int sg_interp_run(const sg_tape_program *p, double *w) {{
    const int *q = p->code;
    double *out = w + p->first;
    long i;
    for (i = 0; i < p->n_instr; ++i, q += 4) {{
        double v;
        switch (q[0]) {{
{chr(10).join(cases)}
        default: return 1;
        }}
        out[i] = v;
    }}
    return 0;
}}

int sg_interp_eval(const sg_tape_program *p, const double *const *arg, double *const *res, double *w) {{
    long k, j, flag;
    for (k = 0; k < p->n_in; ++k) {{
        const long lo = p->in_offsets[k], size = p->in_offsets[k + 1] - lo;
        for (j = 0; j < size; ++j) w[lo + j] = arg[k][j];
    }}
    for (j = 0; j < p->n_const; ++j) w[p->in_offsets[p->n_in] + j] = p->constants[j];
    flag = sg_interp_run(p, w);
    if (flag) return (int)flag;
    for (k = 0; k < p->n_out; ++k) {{
        const long lo = p->out_offsets[k], size = p->out_offsets[k + 1] - lo;
        for (j = 0; j < size; ++j) res[k][j] = w[p->out_slots[lo + j]];
    }}
    return 0;
}}

int sg_interp_batch(const sg_tape_program *p, long n, const double *const *arg, double *const *res, double *w) {{
    const double *a[p->n_in > 0 ? p->n_in : 1];
    double *r[p->n_out > 0 ? p->n_out : 1];
    long pt, k;
    for (pt = 0; pt < n; ++pt) {{
        int flag;
        for (k = 0; k < p->n_in; ++k) a[k] = arg[k] + pt * (p->in_offsets[k + 1] - p->in_offsets[k]);
        for (k = 0; k < p->n_out; ++k) r[k] = res[k] + pt * (p->out_offsets[k + 1] - p->out_offsets[k]);
        flag = sg_interp_eval(p, a, r, w);
        if (flag) return flag;
    }}
    return 0;
}}
"""


_LIBRARIES: dict = {}
_LIBRARY_LOCK = threading.Lock()


def interpreter_library(compiler: Any = None, directory: str | None = None, verbose: bool | None = None) -> Any:
    """The interpreter, compiled (cached on disk and in this process) with ``compiler`` (default: cc -O2).

    >>> interpreter_library().lib.sg_interp_eval is not None
    True
    """
    cc = compiler if isinstance(compiler, _build.Compiler) else _build.find_compiler(compiler)
    key = (cc.path, directory)
    with _LIBRARY_LOCK:
        library = _LIBRARIES.get(key)
        if library is None:
            library = _build.build([("sg_interp.c", interpreter_source())], _DECLARATIONS, cc,
                                   _build.DEFAULT_FLAGS, 1, directory, what="the Tape interpreter", verbose=verbose)
            _LIBRARIES[key] = library
    return library


class UnsupportedTape(Exception):
    """The Tape has instructions the interpreter does not run (calls of other Functions)."""


def tape_program(F: Any) -> dict:
    """The interpreter's arrays for ``F.tape`` (``UnsupportedTape`` where it holds calls).

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> p = tape_program(sg.Function("f", [x], [sg.sin(x) + 1]))
    >>> p["code"].shape, p["first"]
    ((2, 4), 2)
    """
    tape = F.tape
    opcodes = np.asarray(tape.opcodes, dtype=np.int32)
    n_slots = tape.n_slots
    if n_slots >= 2**31 - 1:
        raise UnsupportedTape("more than 2**31 slots")
    supported = np.array([op.c is not None or op is _POWI for op in OP_LIST])
    if not supported[opcodes].all():
        bad = OP_LIST[int(opcodes[~supported[opcodes]][0])].name
        raise UnsupportedTape(f"a {bad} instruction")
    n_in = tape.n_input_scalars
    flat_inputs = np.concatenate([np.zeros(0, dtype=np.int64)]
                                 + [np.asarray(s, dtype=np.int64).reshape(-1) for s in tape.input_slots])
    if not np.array_equal(flat_inputs, np.arange(n_in)):
        raise UnsupportedTape("input slots out of order")
    code = np.empty((len(opcodes), 4), dtype=np.int32)
    code[:, 0] = opcodes
    code[:, 1:] = tape.operands
    powi = np.flatnonzero(opcodes == _POWI.code)
    if len(powi):
        _powers(tape, code, powi)
    outputs = _output_layout(F, tape)
    out_slots = np.concatenate([np.zeros(0, dtype=np.int64)] + list(outputs.slots)).astype(np.int32)
    in_sizes = [int(np.prod(s, dtype=np.int64)) for s in F.input_shapes]
    return {"code": np.ascontiguousarray(code), "constants": np.ascontiguousarray(tape.constants, dtype=np.float64),
            "in_offsets": np.concatenate([[0], np.cumsum(in_sizes)]).astype(np.int64),
            "out_offsets": np.concatenate([[0], np.cumsum(outputs.sizes)]).astype(np.int64),
            "out_slots": out_slots, "first": tape.first_instruction_slot, "n_slots": n_slots}


def _powers(tape: Any, code: np.ndarray, rows: np.ndarray) -> None:
    """Rewrite ``powi`` rows as the generated C spells them: squarings for small constant n, else ``pow``."""
    n_in, first = tape.n_input_scalars, tape.first_instruction_slot
    exponent = code[rows, 2].astype(np.int64)
    constant = (exponent >= n_in) & (exponent < first)
    value = np.full(len(rows), np.nan)
    value[constant] = tape.constants[exponent[constant] - n_in]
    small = constant & (value == np.round(value)) & (value >= POWI_MIN) & (value <= POWI_MAX)
    code[rows[small], 0] = POWI_SQUARING
    code[rows[small], 3] = value[small].astype(np.int32)
    code[rows[~small], 0] = _POW.code


def interpreted(F: Any, compiler: Any = None, directory: str | None = None, options: dict | None = None,
                verbose: bool | None = None) -> Any:
    """``F`` as a :class:`codegen.runtime.CompiledFunction` running on the Tape interpreter (tier ``"interp"``).

    Raises :class:`UnsupportedTape` where ``F`` calls other Functions.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> float(interpreted(sg.Function("f", [x], [x ** 2 + 1]))(3.0))
    10.0
    """
    arrays = tape_program(F)
    library = interpreter_library(compiler, directory, verbose)
    code = _InterpCode(library, arrays, F)
    return CompiledFunction._make(F, code, tuple(_build.DEFAULT_FLAGS), options)


class _InterpCode(_Code):
    """One tier's code: the interpreter library bound to one Tape's arrays."""

    def __init__(self, library: Any, arrays: dict, F: Any) -> None:
        self.library, self.name, self.tables, self.tier = library, F.name, (), "interp"
        self.work_size = max(1, int(arrays["n_slots"]))
        self.n_ops, self.n_parts, self.prog, self.compiled = len(arrays["code"]), 1, None, F
        self.ffi = ffi = library.ffi
        self.arrays = arrays  # kept alive: the struct points into them
        p = ffi.new("sg_tape_program *")
        p.n_instr, p.n_const = len(arrays["code"]), len(arrays["constants"])
        p.n_in, p.n_out = len(arrays["in_offsets"]) - 1, len(arrays["out_offsets"]) - 1
        p.first = int(arrays["first"])
        self.buffers = [ffi.from_buffer(arrays[k]) for k in ("code", "constants", "in_offsets", "out_offsets",
                                                              "out_slots")]
        p.code = ffi.cast("const int *", self.buffers[0])
        p.constants = ffi.cast("const double *", self.buffers[1])
        p.in_offsets = ffi.cast("const long *", self.buffers[2])
        p.out_offsets = ffi.cast("const long *", self.buffers[3])
        p.out_slots = ffi.cast("const int *", self.buffers[4])
        self.struct = p
        self.fn = functools.partial(library.lib.sg_interp_eval, p)
        self.batch_fn = functools.partial(library.lib.sg_interp_batch, p)
        self.local = _Local()
        self.table_buffers, self.table_pointers = [], []
        self.fast = None
