"""CompiledFunction: a Function compiled to C, called like the Function itself.

``F.compile(**options)`` optimizes ``F`` (``optimize=1``; 0 disables),
generates C (:mod:`codegen.c99`), builds and loads it (:mod:`codegen.build`,
cached on disk) and returns a :class:`CompiledFunction`.  Calls check the
argument count, shapes and dtypes before entering C (the same checks as the
VM; complex input is refused: use the VM for complex step), so bad input
never reaches C.  Each thread gets its own input, output and work buffers,
so calls are thread safe (and run without the GIL); a call made while
converting another call's arguments (re-entrant) gets buffers of its own.
A CompiledFunction pickles as its Function and compile options and is
compiled again (normally a cache hit) when unpickled.

Large index and value tables of the Function's own code (gathers by an
index table, scattered results) are not in the C: the program is generated
with ``runtime_tables=True`` (:func:`codegen.c99.program`), the
CompiledFunction keeps the tables as arrays and appends their addresses to
every argument array it passes (calls, threads, ``batch``).  So the C source
and its compile time do not grow with the number of instances, and two
Functions differing only in their index data share one cached library.

>>> import numpy as np, symgraph as sg
>>> x = sg.symbols("x", 2)
>>> F = sg.Function("f", [x], [x * 2, x[0] * x[1]])
>>> C = F.compile()
>>> C(np.array([1.0, 3.0]))
(array([2., 6.]), np.float64(3.0))
>>> C.batch(np.array([[1.0, 2.0], [3.0, 4.0]]))[1]
array([ 2., 12.])

Without an explicit ``compiler``, the optimizing compiler (cc) is used
unless its build is estimated to take longer than ``compile_budget``
seconds (default 60) and tcc is installed; then tcc builds the code, much
faster, and a :class:`~symgraph.errors.BackendWarning` says what that costs
per call (see :func:`estimate_build` and docs/design.md, "Choosing the
compiler").
"""

from __future__ import annotations

import functools
import math
import os
import threading
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from symgraph.errors import (ArgumentCountError, BackendWarning, CompileError, CompilerNotFoundError,
                             DTypeError, OptionError, ShapeError)
from symgraph.batch import SparseBatch, batch_arguments, csc_order
from symgraph.expr import building
from symgraph.function import as_number_array, check_argument

from . import build as _build
from .c99 import DEFAULT_CHUNK, program, single_file, translation_units

MIN_PARTS_PER_UNIT = 2  # split into several C files only when each gets at least this many parts
COMPILE_BUDGET = 60.0  # seconds: a longer estimated cc build is done by tcc instead (auto_tcc)
# The build and run-time model, fitted to `python3 bench/codegen.py --tcc-vs-cc` (docs/design.md,
# "Choosing the compiler"); gcc 12 and tcc 0.9.27 on x86-64.
# CPU seconds of gcc per Tape instruction by level: -O0, -O1 (-Og), -O2 (-Os), -O3 (-Ofast).
# Measured at -O2: Luksan 0.10 ms, dense least squares 0.32 ms; the middle is within 2x of both.
CC_SECONDS_PER_OP = (0.045e-3, 0.1e-3, 0.2e-3, 0.22e-3)
TCC_SECONDS_PER_OP = 1.5e-6  # tcc, C files of at most TCC_UNIT_OPS instructions (measured 0.9-1.9 us)
TCC_UNIT_OPS = 100_000  # tcc's time per instruction grows with a file's size (3.4 us at 10^6): split
# One call of the generated code while it fits the last-level cache: (low, high) seconds per instruction.
CALL_SECONDS_PER_OP = {"gcc": (0.3e-9, 1.3e-9), "tcc": (0.9e-9, 1.6e-9)}
CODE_BYTES_PER_OP = {"gcc": 14, "tcc": 34}  # machine code per instruction (cc -O2; tcc)
CODE_FETCH_BYTES_PER_SECOND = 5e9  # code beyond the cache streams from memory at about this rate
DEFAULT_CACHE_BYTES = 32 << 20  # last-level cache where the system does not say
# tcc's slowdown per call against cc -O2, measured: while its code fits the cache, and beyond
TCC_SLOWDOWN = {"in cache": (1.9, 4.8), "beyond": (9.0, 14.0)}
SHARED_BLOCK_DOUBLES = 1 << 16  # batch: shared arguments are repeated for blocks of points of this many doubles
_F64 = np.dtype(np.float64)


def compile_function(F: Any, optimize: int = 1, compiler: str | None = None, flags: Sequence[str] | None = None,
                     jobs: int | None = None, chunk_size: int = DEFAULT_CHUNK, cache_dir: str | None = None,
                     auto_tcc: bool = True, compile_budget: float = COMPILE_BUDGET,
                     name: str | None = None, **unknown: Any) -> "CompiledFunction":
    """Compile ``F`` to C and load it.

    Args:
        F: the :class:`symgraph.Function`.
        optimize: optimizer level applied first (``F.optimize(level)``); 0 compiles ``F`` as is.
        compiler: ``"cc"``, ``"gcc"``, ``"clang"``, ``"tcc"`` or a path; default: the first
            of cc, gcc, clang on PATH (tcc for very large code, see ``auto_tcc``).
        flags: compiler flags, default ``("-O2",)`` (e.g. ``("-O3", "-march=native")``).
            Flags such as ``-ffast-math`` change only this Function's code: they are
            left out of the link, so loading it cannot change floating point elsewhere.
        jobs: parallel compiler processes for large code (default: CPU count).
        chunk_size: instructions per generated C function.
        cache_dir: cache directory (default ``$SYMGRAPH_CACHE_DIR`` or ``~/.cache/symgraph``).
        auto_tcc: with no explicit ``compiler``, build with tcc (when it is installed) code
            whose build with the optimizing compiler is estimated to take more than
            ``compile_budget`` seconds (:func:`estimate_build`): tcc builds in a small
            fraction of the time, but its code runs about 2-5x slower (9-14x once it
            outgrows the CPU cache); a :class:`~symgraph.errors.BackendWarning` says so,
            with the estimates.
        compile_budget: seconds (a positive number, ``math.inf`` for no limit); see ``auto_tcc``.
        name: the name C identifiers are made from (default ``F.name``; see
            :func:`codegen.names.c_identifier`).

    Every option is checked first: a wrong type or value raises
    :class:`~symgraph.errors.OptionError` naming the option.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> C = sg.Function("sq", [x], [x * x]).compile(optimize=0)
    >>> float(C(3.0)), C.work_size
    (9.0, 0)
    """
    if "tcc_threshold" in unknown:
        raise OptionError("compile(): tcc_threshold (a number of operations) was replaced by compile_budget, "
                          "the seconds an optimizing build may take before tcc is used instead "
                          f"(default {COMPILE_BUDGET:g}); pass compiler='tcc' or compiler='cc' to force either")
    if unknown:
        raise OptionError(f"compile() has no option {', '.join(map(repr, sorted(unknown)))}; the options are "
                          "optimize, compiler, flags, jobs, chunk_size, cache_dir, auto_tcc, compile_budget, name")
    options = check_options(optimize=optimize, compiler=compiler, flags=flags, jobs=jobs, chunk_size=chunk_size,
                            cache_dir=cache_dir, auto_tcc=auto_tcc, compile_budget=compile_budget, name=name)
    jobs = max(1, jobs or os.cpu_count() or 1)
    flags = tuple(_build.DEFAULT_FLAGS if flags is None else options["flags"])
    with building():  # millions of small objects, no cycles: the cyclic collector's passes are pure cost
        G = F.optimize(optimize) if optimize else F
        # each callee optimized once at the same level; large tables of G's own code are run-time data
        prog = program(G, name, chunk_size, optimize, runtime_tables=True)
        cc = _choose_compiler(G, prog, compiler, auto_tcc, compile_budget, flags, jobs)
        estimate = estimate_build(prog.n_ops, len(prog.parts), flags, jobs)
        units = translation_units(prog, G, estimate.tcc_units if cc.family == "tcc" else estimate.cc_units)
    library = _build.build(units, prog.cdef, cc, flags, jobs, options["cache_dir"])
    return CompiledFunction(F, G, prog, library, flags, options)


@dataclass(frozen=True)
class BuildEstimate:
    """What building a program is expected to cost (see :func:`estimate_build`).

    Attributes:
        n_ops: instructions.
        cc_seconds: wall time of the optimizing compiler (cc/gcc/clang) with the given flags.
        cc_units, cc_parallel: its C files, and how many of them compile at once.
        tcc_seconds: wall time of tcc.
        tcc_units: tcc's C files (one process compiles them in turn).
        cc_call, tcc_call: ``(low, high)`` seconds per call of the code, cc -O2 and tcc.
        regime: ``"in cache"`` (tcc's machine code fits the last-level cache), ``"beyond"``
            (only cc's does) or ``"both beyond"``.
        slowdown: ``(low, high)`` ratio of tcc's call time to cc -O2's in that regime (measured;
            for ``"both beyond"``, not measured, the ratio of the code sizes).
    """

    n_ops: int
    cc_seconds: float
    cc_units: int
    cc_parallel: int
    tcc_seconds: float
    tcc_units: int
    cc_call: tuple
    tcc_call: tuple
    regime: str
    slowdown: tuple

    @property
    def break_even_calls(self) -> float:
        """Calls after which cc's longer build has paid for itself (middle of the call-time ranges)."""
        saved = (sum(self.tcc_call) - sum(self.cc_call)) / 2
        return math.inf if saved <= 0 else max(0.0, self.cc_seconds - self.tcc_seconds) / saved


def estimate_build(n_ops: int, n_parts: int, flags: Sequence[str] = _build.DEFAULT_FLAGS,
                   jobs: int | None = None) -> BuildEstimate:
    """Estimated build and call times of a program of ``n_ops`` instructions in ``n_parts`` part functions.

    A model fitted to this project's benchmarks (``python3 bench/codegen.py
    --tcc-vs-cc``): gcc spends ``CC_SECONDS_PER_OP`` CPU seconds per
    instruction at the flags' ``-O`` level, spread over ``min(jobs, CPUs, C
    files)`` processes; tcc ``TCC_SECONDS_PER_OP`` in files of at most
    ``TCC_UNIT_OPS`` instructions.  A call costs ``CALL_SECONDS_PER_OP`` per
    instruction while the machine code (``CODE_BYTES_PER_OP``) fits the
    last-level cache, else it is bound by fetching the code from memory.
    Real build times vary with the model (dense sums compile about 3x slower
    per instruction than Luksan's terms) and the machine's load: an estimate,
    good to a factor of about 2.

    >>> e = estimate_build(1_000_000, 500, ("-O2",), jobs=2)
    >>> e.cc_units, e.tcc_units, e.cc_seconds > 30 * e.tcc_seconds
    (2, 10, True)
    """
    jobs = max(1, jobs or os.cpu_count() or 1)
    cc_units = max(1, min(jobs, n_parts // MIN_PARTS_PER_UNIT))
    parallel = max(1, min(cc_units, jobs, os.cpu_count() or 1))
    tcc_units = max(1, min(n_parts, math.ceil(n_ops / TCC_UNIT_OPS)))
    cache = last_level_cache_bytes()
    regime = "in cache" if CODE_BYTES_PER_OP["tcc"] * n_ops <= cache else \
        "beyond" if CODE_BYTES_PER_OP["gcc"] * n_ops <= cache else "both beyond"
    if regime in TCC_SLOWDOWN:
        slowdown = TCC_SLOWDOWN[regime]
    else:  # both fetch-bound (not measured): the ratio of the code sizes
        ratio = round(CODE_BYTES_PER_OP["tcc"] / CODE_BYTES_PER_OP["gcc"], 1)
        slowdown = (ratio, ratio)
    return BuildEstimate(n_ops, CC_SECONDS_PER_OP[_opt_level(flags)] * n_ops / parallel, cc_units, parallel,
                         TCC_SECONDS_PER_OP * n_ops, tcc_units, _call_seconds("gcc", n_ops, cache),
                         _call_seconds("tcc", n_ops, cache), regime, slowdown)


def _call_seconds(family: str, n_ops: int, cache: int) -> tuple:
    """``(low, high)`` seconds of one call: compute-bound in the cache, fetch-bound beyond it."""
    low, high = (t * n_ops for t in CALL_SECONDS_PER_OP[family])
    code = CODE_BYTES_PER_OP[family] * n_ops
    if code > cache:
        fetch = code / CODE_FETCH_BYTES_PER_SECOND
        low, high = max(low, fetch), max(high, fetch)
    return low, high


@functools.lru_cache(maxsize=1)
def last_level_cache_bytes() -> int:
    """Size of the CPU's largest cache (Linux sysfs), else ``DEFAULT_CACHE_BYTES``.

    >>> last_level_cache_bytes() >= 1 << 16
    True
    """
    best = 0
    root = "/sys/devices/system/cpu/cpu0/cache"
    try:
        entries = os.listdir(root)
    except OSError:
        return DEFAULT_CACHE_BYTES
    for entry in entries:
        try:
            with open(os.path.join(root, entry, "size"), encoding="ascii") as fh:
                text = fh.read().strip()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:].upper(), 1)
        digits = text[:-1] if scale != 1 else text
        if digits.isdigit():
            best = max(best, int(digits) * scale)
    return best or DEFAULT_CACHE_BYTES


def _opt_level(flags: Sequence[str]) -> int:
    """The index into CC_SECONDS_PER_OP of the last ``-O`` flag (gcc's default: -O0)."""
    level = 0
    for flag in flags:
        if flag.startswith("-O"):
            rest = flag[2:]
            level = {"": 1, "0": 0, "1": 1, "g": 1, "s": 2, "z": 2, "2": 2, "fast": 3}.get(rest, 3)
    return level


def check_options(**options: Any) -> dict:
    """The compile options, checked: each wrong one raises :class:`~symgraph.errors.OptionError` naming it.

    >>> check_options(jobs=2)["jobs"]
    2
    """
    def bad(option: str, expected: str) -> OptionError:
        return OptionError(f"compile(): {option} must be {expected}, got {options[option]!r}")

    for option, low, expected in (("optimize", 0, "an optimizer level (int >= 0)"),
                                  ("chunk_size", 1, "a positive int (instructions per C function)")):
        value = options.get(option, low)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise bad(option, expected)
    budget = options.get("compile_budget", COMPILE_BUDGET)
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0:
        raise bad("compile_budget", "a positive number of seconds (math.inf: never switch to tcc)")
    if not isinstance(options.get("auto_tcc", True), bool):
        raise bad("auto_tcc", "True or False")
    name = options.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        raise bad("name", "a non-empty str (or None for the Function's name)")
    compiler = options.get("compiler")
    if compiler is not None and not isinstance(compiler, (str, os.PathLike, _build.Compiler)):
        raise bad("compiler", "a compiler name or path such as 'gcc' or '/usr/bin/clang' (or None)")
    if compiler is not None and not isinstance(compiler, _build.Compiler) and not os.fspath(compiler):
        raise bad("compiler", "a non-empty compiler name or path")
    checked = dict(options)
    if options.get("flags") is not None:
        checked["flags"] = _build.check_flags(options["flags"])
    checked["jobs"] = _build.check_jobs(options.get("jobs"))
    checked["cache_dir"] = _build.check_cache_dir(options.get("cache_dir"))
    return checked


def _choose_compiler(G: Any, prog: Any, compiler: Any, auto_tcc: bool, budget: float, flags: tuple,
                     jobs: int) -> _build.Compiler:
    """The named compiler; else cc, or tcc (with a notice) when cc's build would exceed ``budget`` seconds."""
    if isinstance(compiler, _build.Compiler):
        return compiler
    if compiler is not None:
        return _build.find_compiler(compiler)
    cc = _build.find_compiler(None)
    if not auto_tcc:
        return cc
    estimate = estimate_build(prog.n_ops, len(prog.parts), flags, jobs)
    if estimate.cc_seconds <= budget:
        return cc
    try:
        tcc = _build.find_compiler("tcc")
    except CompilerNotFoundError:
        return cc
    warnings.warn(tcc_notice(G.name, estimate, cc.name, flags, budget), BackendWarning, stacklevel=4)
    return tcc


def tcc_notice(name: str, e: BuildEstimate, cc_name: str, flags: Sequence[str], budget: float) -> str:
    """The text of the :class:`~symgraph.errors.BackendWarning` given when tcc is chosen for ``name``.

    >>> print(tcc_notice("big", estimate_build(10**6, 500, ("-O2",), 1), "cc", ("-O2",), 60.0))  # doctest: +ELLIPSIS
    big: 1,000,000 operations: building them with cc -O2 would take about ... s (estimate, 1 parallel job(s)), ...
    """
    low, high = e.slowdown
    where = {"in cache": "while its code fits the CPU cache, measured",
             "beyond": "once its code outgrows the CPU cache, measured",
             "both beyond": "both codes outgrow the CPU cache: estimated"}[e.regime]
    return (f"{name}: {e.n_ops:,} operations: building them with {cc_name} {' '.join(flags)} would take about "
            f"{e.cc_seconds:.0f} s (estimate, {e.cc_parallel} parallel job(s)), more than compile_budget="
            f"{budget:g} s, so tcc builds them instead (about {e.tcc_seconds:.1f} s). tcc's code runs "
            f"{_ratio(low, high)} slower than cc -O2's ({where}): expect {_span(e.tcc_call)} per call "
            f"instead of {_span(e.cc_call)}; cc's build pays for itself after about {_count(e.break_even_calls)} "
            "calls. Pass compiler='cc' for the optimizing compiler (or a larger compile_budget), compiler='tcc' "
            "to use tcc without this notice")


def _ratio(low: float, high: float) -> str:
    return f"about {low:g}x" if low == high else f"{low:g}-{high:g}x"


def _seconds(t: float) -> str:
    value, unit = (t, "s") if t >= 1 else (t * 1e3, "ms") if t >= 1e-3 else (t * 1e6, "us")
    return f"{float(f'{value:.2g}'):g} {unit}"


def _span(pair: tuple) -> str:
    low, high = _seconds(pair[0]), _seconds(pair[1])
    return f"about {low}" if low == high else f"{low} to {high}"


def _count(n: float) -> str:
    return "never" if math.isinf(n) else f"{float(f'{n:.2g}'):,.0f}"


def _rebuild(function: Any, options: dict) -> "CompiledFunction":
    """Unpickle a CompiledFunction: compile its Function again with the same options (a cache hit)."""
    return compile_function(function, **options)


class _State:
    """One thread's buffers: inputs, outputs and work memory, with the C pointer arrays."""

    __slots__ = ("inbuf", "invals", "inviews", "argp", "outbuf", "outvals", "outviews", "resp", "w")


class _Local(threading.local):
    """Per-thread buffers; ``state`` is None while a call of this thread uses them."""

    state: _State | None = None


class CompiledFunction:
    """A Function compiled to C: ``C(*args, out=None)`` and ``C.batch(*args)`` like ``F``.

    Attributes:
        function: the original Function (names, shapes, VM).
        compiled: the (optimized) Function the C code was generated from.
        library: the :class:`codegen.build.Library` (path, cache key, whether it was a cache hit).
        flags: the compiler flags used.
        options: the compile options (``F.compile(**options)`` rebuilds it; pickling uses them).
        work_size: doubles of work memory per call.
        output_sparsity: per output, None (dense) or ``(rows, cols, shape)``, as on the Function;
            ``output_pattern(k)`` gives the compressed-column pattern of results.
        tables: the index and value tables the C reads at run time (read-only numpy arrays, see
            :attr:`codegen.c99.CProgram.tables`); every call passes their addresses after the inputs.
    """

    def __init__(self, F: Any, G: Any, prog: Any, library: Any, flags: tuple, options: dict | None = None) -> None:
        self.function = F
        self.compiled = G
        self.library = library
        self.flags = flags
        self.options = dict(options or {})
        self.work_size = prog.work_size
        self._program = prog
        self.name = F.name
        try:
            self._fn = getattr(library.lib, prog.name)
            self._batch_fn = getattr(library.lib, prog.symbol("batch"))
        except AttributeError as exc:
            raise CompileError(f"the library {library.path} lacks the entry points of {F.name} ({exc}); "
                               "was it built from other code?") from None
        self._ffi = library.ffi
        self._local = _Local()
        # the run-time tables: kept alive here, their addresses appended to every argument array
        self.tables = prog.tables
        self._table_buffers = [library.ffi.from_buffer("char[]", a) for a in prog.tables]
        self._table_pointers = [library.ffi.cast("double *", b) for b in self._table_buffers]
        shapes = F.input_shapes
        sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
        offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).tolist()
        # per input: (index, shape, offset, scalar?)
        self._inputs = tuple((k, shapes[k], offsets[k], shapes[k] == ()) for k in range(F.n_in))
        self._in_sizes = sizes
        self._in_offsets = offsets
        self._n_in = F.n_in
        out_sizes = [int(np.prod(s, dtype=np.int64)) if sp is None else len(sp[0])
                     for s, sp in zip(F.output_shapes, F.output_sparsity)]
        self._out_sizes = out_sizes
        self._out_offsets = np.concatenate([[0], np.cumsum(out_sizes, dtype=np.int64)]).tolist()
        self._sparse = [None if sp is None else _csc_pattern(sp) for sp in F.output_sparsity]
        # per output: (kind, offset, shape, sparse pattern); kind 0 scalar, 1 dense array, 2 sparse
        self._outputs = tuple((0 if sp is None and s == () else 1 if sp is None else 2,
                               self._out_offsets[k], s, self._sparse[k])
                              for k, (s, sp) in enumerate(zip(F.output_shapes, F.output_sparsity)))
        self._single = F.n_out == 1
        self._fast = self._make_fast()

    # ------------------------------------------------------------ pickling
    def __reduce__(self):
        """Pickle as the Function and the compile options; unpickling compiles again (a cache hit)."""
        return _rebuild, (self.function, self.options)

    # ------------------------------------------------------------ metadata
    @property
    def source(self) -> str:
        """The C source (one file) of the compiled Function."""
        return single_file(self._program, self.compiled)

    @property
    def cache_hit(self) -> bool:
        """True when loading needed no compiler run."""
        return self.library.cache_hit

    @property
    def compiler(self) -> str:
        """Path of the compiler that built the library."""
        return self.library.compiler.path if self.library.compiler else "?"

    def __repr__(self) -> str:
        return f"Compiled{self.function!r}"

    # ------------------------------------------------------------ buffers
    def _new_state(self) -> _State:
        ffi = self._ffi
        st = _State()
        st.inbuf = ffi.new("double[]", max(1, self._in_offsets[-1]))
        st.invals = np.frombuffer(ffi.buffer(st.inbuf), dtype=np.float64)
        st.inviews = [st.invals[off:off + size].reshape(shape)
                      for (_, shape, off, _), size in zip(self._inputs, self._in_sizes)]
        st.argp = ffi.new("double *[]", max(1, self._n_in + len(self._table_pointers)))
        for k, off in enumerate(self._in_offsets[:-1]):
            st.argp[k] = st.inbuf + off
        for k, pointer in enumerate(self._table_pointers, self._n_in):
            st.argp[k] = pointer
        st.outbuf = ffi.new("double[]", max(1, self._out_offsets[-1]))
        st.outvals = np.frombuffer(ffi.buffer(st.outbuf), dtype=np.float64)
        st.outviews = []
        for kind, off, shape, _ in self._outputs:
            size = self._out_sizes[len(st.outviews)]
            view = st.outvals[off:off + size]
            st.outviews.append(view.reshape(shape) if kind != 2 else view)
        st.resp = ffi.new("double *[]", max(1, len(self._outputs)))
        for k, off in enumerate(self._out_offsets[:-1]):
            st.resp[k] = st.outbuf + off
        st.w = ffi.new("double[]", max(1, self.work_size))
        return st

    # ------------------------------------------------------------ calls
    def __call__(self, *args: Any, out: Any = None):
        """Evaluate at one point; ``out`` optionally receives the outputs (see :meth:`_check_out`).

        Every argument is converted and checked, and every ``out`` entry
        validated, before any buffer or ``out`` array is written.
        """
        if out is None:
            return self._fast(args)
        targets = self._check_out(out)
        st = self._run(args)
        try:
            return self._write_out(st, targets)
        finally:
            self._local.state = st

    def _convert(self, args: tuple) -> list:
        """The arguments as float / float64 arrays of the right shapes (all checked before any is copied)."""
        if len(args) != self._n_in:
            self._count_error(args)
        values = []
        for value, (k, shape, _, scalar) in zip(args, self._inputs):
            kind = type(value)
            if scalar and (kind is float or kind is np.float64):
                values.append(value)
            elif kind is np.ndarray and value.dtype is _F64 and value.shape == shape:
                values.append(value)
            else:
                arr = self._checked(k, value, shape, False)
                values.append(float(arr) if scalar else arr)
        return values

    def _run(self, args: tuple) -> _State:
        """Convert the arguments, take this thread's buffers, fill them and run the C code.

        The caller puts the buffers back (``self._local.state = st``) once it
        has read the results; a call made meanwhile allocates its own.
        """
        values = self._convert(args)
        local = self._local
        st = local.state
        if st is None:
            st = self._new_state()
        local.state = None
        inbuf = st.inbuf
        for value, (k, _, off, scalar) in zip(values, self._inputs):
            if scalar:
                inbuf[off] = value
            else:
                st.inviews[k][...] = value
        self._fn(st.argp, st.resp, st.w)
        return st

    def _count_error(self, args: tuple):
        raise ArgumentCountError(f"{self.name} takes {self._n_in} argument(s) "
                                 f"({', '.join(self.function.input_names)}), got {len(args)}")

    def _make_fast(self):
        """A call path specialized to this Function's inputs and outputs (unrolled, no loops).

        Only integers and names of local variables enter the generated Python;
        no user-supplied text does.  All arguments are converted first, then
        the thread's buffers are taken (so a re-entrant call from an argument's
        ``__array__`` cannot overwrite them), filled, run, read and put back.
        """
        if self._n_in > 64 or len(self._outputs) > 64:
            def generic(args):
                st = self._run(args)
                try:
                    return self._results(st)
                finally:
                    self._local.state = st
            return generic
        lines = ["def fast(args):",
                 f"    if len(args) != {self._n_in}: count_error(args)"]
        for k, shape, off, scalar in self._inputs:
            lines.append(f"    a{k} = args[{k}]")
            if scalar:
                lines += [f"    t = type(a{k})", "    if t is not float and t is not F64S:",
                          f"        a{k} = float(checked({k}, a{k}, shapes[{k}], False))"]
            else:
                lines += [f"    if type(a{k}) is not ndarray or a{k}.dtype is not F64 or a{k}.shape != shapes[{k}]:",
                          f"        a{k} = checked({k}, a{k}, shapes[{k}], False)"]
        lines += ["    st = local.state", "    if st is None:", "        st = new_state()", "    local.state = None",
                  "    b = st.inbuf", "    iv = st.inviews"]
        for k, shape, off, scalar in self._inputs:
            lines.append(f"    b[{off}] = a{k}" if scalar else f"    iv[{k}][...] = a{k}")
        lines += ["    fn(st.argp, st.resp, st.w)", "    o = st.outvals", "    ov = st.outviews"]
        items = []
        for k, (kind, off, _, _) in enumerate(self._outputs):
            items.append(f"o[{off}]" if kind == 0 else f"ov[{k}].copy()" if kind == 1
                         else f"to_csc(ov[{k}].copy(), patterns[{k}])")
        if self._single:
            lines.append(f"    r = {items[0]}")
        else:
            lines.append(f"    r = ({''.join(item + ', ' for item in items)})")
        lines += ["    local.state = st", "    return r"]
        namespace = {"count_error": self._count_error, "local": self._local, "new_state": self._new_state,
                     "F64S": np.float64, "F64": _F64, "ndarray": np.ndarray, "fn": self._fn,
                     "checked": self._checked, "shapes": [s for _, s, _, _ in self._inputs],
                     "to_csc": _to_csc, "patterns": self._sparse}
        exec(compile("\n".join(lines), f"<compiled {self._program.name}>", "exec"), namespace)
        return namespace["fast"]

    def _results(self, st: _State):
        results = []
        for k, (kind, off, shape, pattern) in enumerate(self._outputs):
            if kind == 0:
                results.append(st.outvals[off])
            elif kind == 1:
                results.append(st.outviews[k].copy())
            else:
                results.append(_to_csc(st.outviews[k].copy(), pattern))
        return results[0] if self._single else tuple(results)

    def _checked(self, k: int, value: Any, shape: tuple, batch: bool) -> np.ndarray:
        arr = check_argument(self.function, k, value, shape, batch)
        if arr.dtype.kind == "c":
            raise DTypeError(f"{self.name}: argument {k} ({self.function.input_names[k]!r}) is complex; "
                             "compiled functions evaluate float64 only; use the VM, F(...), for complex step")
        return arr

    def _check_out(self, out: Any) -> list:
        """Validate ``out`` (all of it, before anything is written): one target or None per output.

        A dense output takes a writeable float64 array of the output's shape; a
        sparse output a float64 array of its nonzeros (CSC order) or a
        ``csc_matrix`` with exactly the output's pattern (same ``indptr`` and
        ``indices``), whose ``data`` is filled.  Entries may be None.
        """
        outs = [out] if self._single else out
        if self._single and isinstance(out, (list, tuple)):
            outs = out
        if not isinstance(outs, (list, tuple)) or len(outs) != len(self._outputs):
            raise ArgumentCountError(f"{self.name}: out= must hold {len(self._outputs)} array(s) "
                                     f"(one per output, None to allocate), got {type(out).__name__}")
        for k, (target, (kind, _, shape, pattern)) in enumerate(zip(outs, self._outputs)):
            if target is None:
                continue
            label = f"{self.name}: out[{k}] ({self.function.output_names[k]!r})"
            if kind == 2 and hasattr(target, "tocsc"):
                self._check_sparse_out(label, target, shape, pattern)
                continue
            want = (self._out_sizes[k],) if kind == 2 else shape
            if not isinstance(target, np.ndarray) or target.dtype != _F64 or not target.flags.writeable:
                raise DTypeError(f"{label}: expected a writeable float64 numpy array, got "
                                 f"{type(target).__name__}{'' if not isinstance(target, np.ndarray) else ' of dtype ' + str(target.dtype)}")
            if target.shape != want:
                raise ShapeError(f"{label}: expected shape {want}, got {target.shape}")
        return list(outs)

    def _check_sparse_out(self, label: str, target: Any, shape: tuple, pattern: tuple) -> None:
        indices, indptr, _ = pattern
        if getattr(target, "format", None) != "csc" or target.shape != shape or target.data.dtype != _F64 \
                or not target.data.flags.writeable:
            raise ShapeError(f"{label}: expected a float64 csc_matrix of shape {shape} with "
                             f"{len(indices)} stored entries, got {target!r}")
        if not (np.array_equal(target.indptr, indptr) and np.array_equal(target.indices, indices)):
            raise ShapeError(f"{label}: the csc_matrix has another sparsity pattern than the output "
                             f"({target.nnz} stored entries, expected {len(indices)} at the output's rows "
                             "and columns, in the same order); pass a copy of a result of this function, "
                             "or None to allocate")

    def _write_out(self, st: _State, targets: list):
        results = []
        for k, (target, (kind, off, _, pattern)) in enumerate(zip(targets, self._outputs)):
            values = st.outviews[k]
            if target is None:
                results.append(st.outvals[off] if kind == 0 else values.copy() if kind == 1
                               else _to_csc(values.copy(), pattern))
            elif kind == 2 and hasattr(target, "tocsc"):
                target.data[...] = values
                results.append(target)
            else:
                target[...] = values
                results.append(target)
        return results[0] if self._single else tuple(results)

    def batch(self, *args: Any):
        """Evaluate N points in C: ``F.batch`` of the Function, same types and layout, same values.

        Each argument has a leading axis of length N, or the input's own shape
        to share one value among all points.  Dense outputs come back as
        arrays of shape ``(N,) + shape``, sparse ones as one
        :class:`~symgraph.batch.SparseBatch` (``(N, nnz)`` values and the
        shared compressed-column pattern).  Batched arguments go to C
        without a copy when they are C-contiguous float64; a shared one is
        repeated for blocks of points (at most ``SHARED_BLOCK_DOUBLES``
        doubles each), each block one C call.

        >>> import numpy as np, symgraph as sg
        >>> x, a = sg.symbols("x", 2), sg.symbols("a")
        >>> C = sg.Function("f", [x, a], [sg.jacobian(a * x * x, x)]).compile()
        >>> J = C.batch(np.array([[1.0, 2.0], [3.0, 4.0]]), 0.5)
        >>> J.data.tolist(), J.indices.tolist()
        ([[1.0, 2.0], [3.0, 4.0]], [0, 1])
        """
        if len(args) != self._n_in:
            self._count_error(args)
        arrays, batched, n = batch_arguments(self.function, args, self._batch_argument)
        arrays = [np.ascontiguousarray(a, dtype=np.float64) for a in arrays]
        outs = [np.empty((n, size), dtype=np.float64) for size in self._out_sizes]
        if n:
            self._run_batch(n, arrays, batched, outs)
        results = []
        for (kind, _, shape, pattern), values in zip(self._outputs, outs):
            results.append(values.reshape((n,) + shape) if kind != 2 else SparseBatch(values, *pattern))
        return results[0] if self._single else tuple(results)

    def _batch_argument(self, k: int, value: Any) -> np.ndarray:
        arr = as_number_array(f"{self.name}: argument {k} ({self.function.input_names[k]!r})", value)
        if arr.dtype.kind == "c":
            raise DTypeError(f"{self.name}: argument {k} ({self.function.input_names[k]!r}) is complex; "
                             "compiled functions evaluate float64 only; use the VM, F.batch(...), for complex step")
        return arr

    def _run_batch(self, n: int, arrays: list, batched: list, outs: list) -> None:
        """Run the C batch loop over ``n`` points, in blocks when some argument is shared."""
        ffi = self._ffi
        sizes = self._in_sizes
        widest = max([sizes[k] for k, b in enumerate(batched) if not b], default=0)
        block = n if widest == 0 else max(1, min(n, SHARED_BLOCK_DOUBLES // widest))
        # a shared argument is repeated `block` times: each block reads the same copy
        arrays = [a if b else np.repeat(a.reshape(1, -1), block, axis=0) for a, b in zip(arrays, batched)]
        keep = [ffi.from_buffer("double[]", a) for a in arrays]
        keep_out = [ffi.from_buffer("double[]", o) for o in outs]
        argp = ffi.new("double *[]", max(1, len(keep) + len(self._table_pointers)))
        for k, pointer in enumerate(self._table_pointers, len(keep)):
            argp[k] = pointer
        resp = ffi.new("double *[]", max(1, len(keep_out)))
        w = ffi.new("double[]", max(1, self.work_size))
        for start in range(0, n, block):
            for k, buf in enumerate(keep):
                argp[k] = buf + start * sizes[k] if batched[k] else buf
            for k, buf in enumerate(keep_out):
                resp[k] = buf + start * self._out_sizes[k]
            self._batch_fn(min(block, n - start), argp, resp, w)

    @property
    def output_sparsity(self) -> tuple:
        """Per output: None (dense) or ``(rows, cols, shape)``, as ``Function.output_sparsity``."""
        return self.function.output_sparsity

    def output_pattern(self, k: int):
        """Output ``k``'s pattern as a ``csc_matrix`` of ones (None if dense): see ``Function.output_pattern``."""
        return self.function.output_pattern(k)


def _csc_pattern(sparsity) -> tuple:
    """``(indices, indptr, shape)`` of a sparse output in compressed-column order (the C code's order)."""
    return csc_order(sparsity)[1:]


def _to_csc(data: np.ndarray, pattern: tuple):
    import scipy.sparse as sp

    indices, indptr, shape = pattern
    return sp.csc_matrix((data, indices.copy(), indptr.copy()), shape=shape)
