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

import contextlib
import functools
import hashlib
import json
import math
import os
import platform
import sys
import threading
import warnings
import weakref
from dataclasses import dataclass
from typing import Any, Sequence

import cffi
import numpy as np

from symgraph.dask import batch as _dask_batch, is_dask_array
from symgraph.errors import (ArgumentCountError, BackendWarning, CompileError, CompilerNotFoundError,
                             DTypeError, NotPicklableError, OptionError, ShapeError)
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


TIERS = ("auto", "fast", "best")
# Plain F.compile() pins the optimizing tier (deterministic: one compiler run, no thread left behind);
# sg.NLP asks for "auto" (start-up latency matters there).  See docs/design.md, "Tiers".
DEFAULT_TIER = "best"
ENTRY_VERSION = 1  # layout of the function entries (codegen.build.store_entry) this module writes


def compile_function(F: Any, optimize: int = 1, compiler: str | None = None, flags: Sequence[str] | None = None,
                     jobs: int | None = None, chunk_size: int = DEFAULT_CHUNK, cache_dir: str | None = None,
                     auto_tcc: bool = True, compile_budget: float = COMPILE_BUDGET,
                     name: str | None = None, tier: str | None = None, verbose: bool | None = None,
                     **unknown: Any) -> "CompiledFunction":
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
        tier: ``"best"`` (default, :data:`DEFAULT_TIER`): the optimizing compiler's code;
            ``"fast"``: tcc's code (built in a fraction of the time, runs 2-5x slower);
            ``"auto"``: tcc's code at once, then the optimizing build in a background
            thread, switched to atomically when ready (``C.tier`` says which runs;
            ``C.wait()`` waits for the switch).  Without tcc, "auto" is "best".
        verbose: progress display for slow phases: None on a terminal, True always, False never
            (:mod:`symgraph.progress`).

    The compiled code is looked up in the cache first, by a hash of ``F``'s
    Tape (and its callees') and these options: a hit loads the library and
    returns without optimizing or generating C.  Every option is checked
    first: a wrong type or value raises :class:`~symgraph.errors.OptionError`
    naming the option.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> C = sg.Function("sq", [x], [x * x]).compile(optimize=0)
    >>> float(C(3.0)), C.work_size, C.tier
    (9.0, 0, 'best')
    """
    if "tcc_threshold" in unknown:
        raise OptionError("compile(): tcc_threshold (a number of operations) was replaced by compile_budget, "
                          "the seconds an optimizing build may take before tcc is used instead "
                          f"(default {COMPILE_BUDGET:g}); pass compiler='tcc' or compiler='cc' to force either")
    if unknown:
        raise OptionError(f"compile() has no option {', '.join(map(repr, sorted(unknown)))}; the options are "
                          "optimize, compiler, flags, jobs, chunk_size, cache_dir, auto_tcc, compile_budget, name, "
                          "tier, verbose")
    options = check_options(optimize=optimize, compiler=compiler, flags=flags, jobs=jobs, chunk_size=chunk_size,
                            cache_dir=cache_dir, auto_tcc=auto_tcc, compile_budget=compile_budget, name=name,
                            tier=tier, verbose=verbose)
    from symgraph.progress import call_site

    with call_site():
        return _compile(F, options)


def _compile(F: Any, options: dict) -> "CompiledFunction":
    tier = options.get("tier") or DEFAULT_TIER
    if tier == "auto" and options.get("compiler") is not None:
        tier = "best"  # a named compiler pins the code
    if tier == "best":
        return _compile_tier(F, options, "best")[0]
    fast = _fast_compiler()
    if tier == "fast":
        if fast is None:
            raise CompilerNotFoundError("compile(tier='fast') needs tcc, the fast compiler, and it is not on PATH; "
                                        "install it (e.g. 'apt-get install tcc') or pass tier='best'")
        return _compile_tier(F, options, "fast")[0]
    if fast is None and F.n_ops < INTERP_MIN:  # no fast compiler: "auto" is "best"
        return _compile_tier(F, options, "best")[0]
    try:
        best_key = function_key(F, options, "best")
    except CompilerNotFoundError as exc:  # tcc alone: its code, and one warning that nothing better follows
        if fast is None:
            raise
        from symgraph.progress import current_site

        C = _compile_tier(F, options, "fast")[0]
        C._upgrade_failed(exc, current_site())
        return C
    hit = _from_entry(F, options, "best", best_key)
    if hit is not None:
        return hit
    if F.n_ops >= INTERP_MIN:  # a large Function starts on the Tape interpreter at once
        C = _interpreter_first(F, options, best_key, fast)
        if C is not None:
            return C
    if fast is None:  # no fast compiler: "auto" is "best"
        return _compile_tier(F, options, "best", best_key)[0]
    fast_options = options
    if options["optimize"] and F.n_ops >= FAST_UNOPTIMIZED_MIN:  # the optimizer is most of a large cold start
        fast_options = dict(options, optimize=0)
    C, prepared = _compile_tier(F, fast_options, "fast")
    if fast_options is not options:
        prepared = None  # the optimized code is made by the background build, for itself
    flags = tuple(_build.DEFAULT_FLAGS if options["flags"] is None else options["flags"])
    estimate = estimate_build(C._code.n_ops, C._code.n_parts, flags, options["jobs"])
    if options["auto_tcc"] and estimate.cc_seconds > options["compile_budget"]:
        from symgraph.progress import warn

        try:  # the optimizing build would take longer than the budget: the tcc code stays
            cc_name = _build.find_compiler(None).name
        except CompilerNotFoundError:
            cc_name = "cc"
        warn(tcc_notice(F.name, estimate, cc_name, flags, options["compile_budget"]), BackendWarning)
        _alias(function_key(F, fast_options, "fast"), best_key, C, options)  # "best" would choose tcc too
        return C
    _start_upgrade(C, F, options, best_key, prepared)
    return C


def _interpreter_first(F: Any, options: dict, best_key: str, fast: "_build.Compiler | None") -> "CompiledFunction | None":
    """``F`` on the Tape interpreter (:mod:`codegen.interp`), its compiled code building in the background;
    None where the interpreter cannot run ``F`` (calls of other Functions).

    The compiler of the background build is chosen here, by the estimate of
    :func:`estimate_build`, so that the tcc notice points at the user's line;
    a large Function built by tcc is not optimized first (as the fast tier).
    """
    from symgraph.progress import phase, warn

    from .interp import UnsupportedTape, interpreted

    cc = _build.find_compiler(None)  # found: the best key was made with it
    try:
        with phase("interpret", F.name, F.n_ops, verbose=options.get("verbose")) as p:
            C = interpreted(F, cc, options["cache_dir"], _public(options), options.get("verbose"))
            p.detail = f"{C.work_size:,} doubles of work"
    except UnsupportedTape:
        return None
    flags = tuple(_build.DEFAULT_FLAGS if options["flags"] is None else options["flags"])
    parts = max(1, math.ceil(F.n_ops / max(1, options["chunk_size"])))
    estimate = estimate_build(F.n_ops, parts, flags, options["jobs"])
    upgrade = dict(options, compiler=cc)
    if options["auto_tcc"] and fast is not None and estimate.cc_seconds > options["compile_budget"]:
        warn(tcc_notice(F.name, estimate, cc.name, flags, options["compile_budget"]), BackendWarning)
        upgrade["compiler"] = fast
        if F.n_ops >= FAST_UNOPTIMIZED_MIN:
            upgrade["optimize"] = 0
    _start_upgrade(C, F, upgrade, best_key, None)
    return C


#: Functions of at least this many operations start on the Tape interpreter under tier="auto": generating
#: and compiling their C takes longer than a few calls of the interpreter (which needs no C of its own).
INTERP_MIN = 10_000

#: Functions of at least this many operations get their "auto" fast tier without the optimizer: on an
#: unrolled model the optimizer takes most of a cold start (a 800,000-op Hessian: tens of seconds) for a few
#: percent fewer operations; the background build optimizes as asked.
FAST_UNOPTIMIZED_MIN = 100_000


def _fast_compiler() -> "_build.Compiler | None":
    try:
        return _build.find_compiler("tcc")
    except CompileError:
        return None


def _compile_tier(F: Any, options: dict, tier: str, key: str | None = None, prepared: tuple | None = None,
                  background: bool = False) -> tuple["CompiledFunction", tuple | None]:
    """Compile ``F`` for ``tier`` ("fast": tcc; "best": the options' compiler): a cache hit, else the work.

    Returns the CompiledFunction and, where the work was done, ``(G, prog)``
    (the optimized Function and its C program, for the other tier).
    """
    from symgraph.progress import phase, warn

    key = key or function_key(F, options, tier)
    hit = _from_entry(F, options, tier, key)
    if hit is not None:
        return hit, None
    optimize, chunk, verbose = options["optimize"], options["chunk_size"], options.get("verbose")
    jobs = max(1, options["jobs"] or os.cpu_count() or 1)
    flags = tuple(_build.DEFAULT_FLAGS if options["flags"] is None else options["flags"])
    pipeline = _BACKGROUND_PIPELINE if background and prepared is None else contextlib.nullcontext()
    with pipeline, building():  # millions of small objects, no cycles: the cyclic collector's passes are pure cost
        if prepared is None:
            with phase("optimize", F.name, F.n_ops, expected=2e-5 * F.n_ops, verbose=verbose) as p:
                G = F.optimize(optimize) if optimize else F
                p.detail = f"{G.n_ops:,} ops after level {optimize}"
            with phase("generate", F.name, G.n_ops, expected=1.5e-5 * G.n_ops, verbose=verbose):
                # each callee optimized once at the same level; large tables of G's own code are run-time data
                prog = program(G, options["name"], chunk, optimize, runtime_tables=True)
            prepared = (G, prog)
        G, prog = prepared
        if tier == "fast":
            cc = _build.find_compiler("tcc")
        else:
            cc, notice = _pick_compiler(G, prog, options["compiler"], options["auto_tcc"],
                                          options["compile_budget"], flags, jobs)
            if notice is not None:
                warn(notice, BackendWarning)
        estimate = estimate_build(prog.n_ops, len(prog.parts), flags, jobs)
        units = translation_units(prog, G, estimate.tcc_units if cc.family == "tcc" else estimate.cc_units)
    expected = estimate.tcc_seconds if cc.family == "tcc" else estimate.cc_seconds
    library = _build.build(units, prog.cdef, cc, flags, jobs, options["cache_dir"], background=background,
                           expected=expected, what=F.name, verbose=verbose)
    C = CompiledFunction(F, G, prog, library, flags, _public(options))
    _store(key, library, prog, flags, C.tier)
    return C, prepared


def _public(options: dict) -> dict:
    """The options a CompiledFunction keeps (and pickles): those given, without None defaults."""
    return {k: v for k, v in options.items() if v is not None and k != "verbose"}


def _store(key: str, library: Any, prog: Any, flags: tuple, tier: str) -> None:
    """Write the function entry for ``key`` beside the library (what a hit needs to call it)."""
    meta = {"version": ENTRY_VERSION, "library": library.key, "cdef": prog.cdef, "name": prog.name,
            "batch": prog.symbol("batch"), "work_size": int(prog.work_size), "n_ops": int(prog.n_ops),
            "parts": len(prog.parts),
            "tables": len(prog.tables), "flags": list(flags), "tier": tier,
            "compiler": library.compiler.path if library.compiler else None}
    _build.store_entry(os.path.dirname(library.path), key, meta, prog.tables)


def _alias(key: str, other: str, C: "CompiledFunction", options: dict) -> None:
    """Store the entry ``key`` under ``other`` too (the same code answers both), beside ``C``'s library."""
    found = _build.load_entry(key, options["cache_dir"])
    if found is not None:
        _build.store_entry(os.path.dirname(C.library.path), other, found[0], found[1])


def _from_entry(F: Any, options: dict, tier: str, key: str) -> "CompiledFunction | None":
    """The CompiledFunction of the cached entry ``key``, or None (missing, damaged, or its library is)."""
    from symgraph.progress import phase

    found = _build.load_entry(key, options["cache_dir"])
    if found is None:
        return None
    meta, tables = found
    try:
        if meta.get("version") != ENTRY_VERSION or len(tables) != meta["tables"]:
            return None
        with phase("load", F.name, meta["n_ops"]):
            compiler = None
            if meta.get("compiler"):
                with contextlib.suppress(CompileError):
                    compiler = _build.find_compiler(meta["compiler"])
            library = _build.load_library(meta["library"], meta["cdef"], options["cache_dir"], compiler)
            if library is None:
                return None
            code = _Code(library, meta["name"], meta["batch"], int(meta["work_size"]), tuple(tables), meta["tier"],
                         int(meta["n_ops"]), int(meta["parts"]))
        return CompiledFunction._make(F, code, tuple(meta["flags"]), _public(options))
    except (KeyError, TypeError, ValueError, CompileError):
        return None  # a damaged entry: the caller compiles again and rewrites it


# ------------------------------------------------------------ keys before the work
_DIGESTS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_DIGEST_LOCK = threading.Lock()


def function_digest(F: Any) -> str:
    """A hash of what ``F`` computes: its Tape's arrays and its callees' (structures: kind, size, flags, body).

    Made with numpy buffers, not per node; callees are hashed once (an
    iterative walk) and remembered per Function object.  The names of ``F``
    and of its inputs do not enter it.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> a, b = sg.Function("a", [x], [x * 2]), sg.Function("b", [x], [x * 2])
    >>> function_digest(a) == function_digest(b) != function_digest(sg.Function("c", [x], [x * 3]))
    True
    """
    from symgraph.structured import children, structure_of

    with _DIGEST_LOCK:
        if F in _DIGESTS:
            return _DIGESTS[F]
    memo: dict = {}
    stack = [F]
    while stack:
        G = stack[-1]
        if G in memo:
            stack.pop()
            continue
        with _DIGEST_LOCK:
            known = _DIGESTS.get(G)
        if known is not None:
            memo[G] = known
            stack.pop()
            continue
        kids = children(G)
        missing = [c for c in kids if c not in memo]
        if missing:
            stack.extend(missing)
            continue
        stack.pop()
        memo[G] = digest = _digest_one(G, structure_of(G), memo)
        with _DIGEST_LOCK:
            _DIGESTS[G] = digest
    return memo[F]


def _unsaved_identity(structure: Any) -> tuple:
    """A key part for a structure without ``to_data`` (a user's native): unique to the object, so never a false hit."""
    token = getattr(structure, "_cache_token", None)
    if token is None:
        import uuid

        token = structure._cache_token = uuid.uuid4().hex
    return ("unsaved", type(structure).__qualname__, token)


def _hash_record(h: Any, record: Any) -> None:
    """Feed a structure record to ``h``: arrays by dtype, shape and every byte (``repr`` elides large ones).

    >>> import hashlib
    >>> a, b = np.zeros(5000), np.zeros(5000)
    >>> b[2500] = 1.0
    >>> digests = []
    >>> for arr in (a, b):
    ...     h = hashlib.blake2b()
    ...     _hash_record(h, ("native", "lookup_table", (arr,)))
    ...     digests.append(h.hexdigest())
    >>> digests[0] != digests[1]
    True
    """
    stack = [record]
    while stack:
        item = stack.pop()
        if isinstance(item, np.ndarray):
            a = np.ascontiguousarray(item)
            h.update(f"<array {a.dtype.str}{a.shape}>".encode())
            h.update(a.view(np.uint8).reshape(-1).tobytes() if a.size else b"")
        elif isinstance(item, (tuple, list)):
            h.update(f"<{type(item).__name__} {len(item)}>".encode())
            stack.extend(reversed(item))
        else:
            h.update(repr(item).encode())
            h.update(b"\x00")


def _digest_one(G: Any, structure: Any, memo: dict) -> str:
    h = hashlib.blake2b(digest_size=32)
    h.update(repr((G.input_shapes, G.output_shapes)).encode())
    if structure is not None:
        try:
            record = structure.to_data({c: memo[c] for c in structure.children})
        except NotPicklableError:  # a native that cannot describe itself: this object's own, fresh identity
            record = _unsaved_identity(structure)
        _hash_record(h, record)
        return h.hexdigest()
    t = G.tape
    arrays = [*t.input_slots, t.constants, t.opcodes, t.operands, *t.output_slots, t.immediates, t.call_callee,
              t.call_offsets, t.call_operands]
    for sp in G.output_sparsity:
        arrays.extend(() if sp is None else (np.asarray(sp[0]), np.asarray(sp[1])))
    h.update(repr([None if sp is None else sp[2] for sp in G.output_sparsity]).encode())
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.reshape(-1).view(np.uint8))
    h.update("|".join(memo[c] for c in t.callees).encode())
    return h.hexdigest()


# The modules that turn a Tape into C: a change to any of them changes every function key.
FINGERPRINT_MODULES = ("ops.py", "expr.py", "tape.py", "call.py", "map.py", "fold.py", "structured.py",
                       "function.py", "specfun.py", "special.py")


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """A hash of the code that turns a Tape into C (once per process): the codegen package, the optimizer
    (``symgraph/optimize``), :data:`FINGERPRINT_MODULES` and the op table.

    Entries found by :func:`function_key` skip the optimizer and the C
    generator, so a change to either (or to the op numbering) must change
    the key.

    >>> len(code_fingerprint())
    64
    """
    from symgraph.ops import OP_LIST

    h = hashlib.blake2b(digest_size=32)
    h.update("|".join(op.name for op in OP_LIST).encode())
    here = os.path.dirname(os.path.abspath(__file__))
    package = os.path.join(os.path.dirname(here), "symgraph")
    files = [os.path.join(here, n) for n in sorted(os.listdir(here)) if n.endswith(".py")]
    optimizer = os.path.join(package, "optimize")
    if os.path.isdir(optimizer):
        files += [os.path.join(optimizer, n) for n in sorted(os.listdir(optimizer)) if n.endswith(".py")]
    files += [os.path.join(package, n) for n in FINGERPRINT_MODULES]
    for path in files:
        with contextlib.suppress(OSError), open(path, "rb") as fh:
            h.update(os.path.basename(path).encode())
            h.update(fh.read())
    return h.hexdigest()


def function_key(F: Any, options: dict, tier: str) -> str:
    """The cache key of ``F`` compiled with ``options`` for ``tier``, made before any optimizing or C.

    It hashes :func:`function_digest`, the options that shape the code
    (optimizer level, chunk size, C name, flags, the compiler or compilers
    that may be chosen with their versions, ``auto_tcc``/``compile_budget``
    and the jobs that decide between them), :data:`CODEGEN_VERSION`,
    :func:`code_fingerprint`, cffi and the platform.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> F = sg.Function("f", [x], [x + 1])
    >>> opts = check_options()
    >>> function_key(F, opts, "best") != function_key(F, dict(opts, optimize=0), "best")
    True
    """
    from .c99 import CODEGEN_VERSION

    flags = list(_build.DEFAULT_FLAGS if options.get("flags") is None else options["flags"])
    if tier == "fast":
        compilers = [_build.find_compiler("tcc")]
        choice: list = []
    else:
        named = options.get("compiler")
        if isinstance(named, _build.Compiler):
            compilers = [named]
        else:
            compilers = [_build.find_compiler(named)]
            if named is None and options.get("auto_tcc", True):
                fast = _fast_compiler()
                compilers += [fast] if fast is not None else []
        choice = [options.get("auto_tcc", True), options.get("compile_budget", COMPILE_BUDGET),
                  max(1, options.get("jobs") or os.cpu_count() or 1)] if named is None else []
    header = [ENTRY_VERSION, CODEGEN_VERSION, code_fingerprint(), tier, options.get("optimize", 1),
              options.get("chunk_size", DEFAULT_CHUNK), options.get("name") or "", flags,
              [(c.path, c.family, c.version) for c in compilers], choice, cffi.__version__, sys.platform,
              platform.machine(), None if options.get("name") else F.name]
    h = hashlib.sha256(json.dumps(header, default=str).encode())
    h.update(function_digest(F).encode())
    return h.hexdigest()


# ------------------------------------------------------------ the background upgrade ("auto")
_UPGRADES: dict = {}  # best key -> the thread building it (one per key in this process)
_UPGRADE_LOCK = threading.Lock()
#: Background builds optimize and generate their C one at a time (Python work: threads would only share
#: the GIL, with each other and with the caller); their compilers still run side by side.
_BACKGROUND_PIPELINE = threading.Lock()


def _start_upgrade(C: "CompiledFunction", F: Any, options: dict, key: str, prepared: tuple | None) -> None:
    """Build the "best" tier of ``C`` in a daemon thread; switch ``C`` to it when ready."""
    from symgraph.progress import current_site

    C._upgrade_done = threading.Event()
    site = current_site()

    def run() -> None:
        try:
            best = _upgrade_result(F, options, key, prepared)
            if best is None:
                return
            C._switch(best._code)
        except BaseException as exc:  # noqa: BLE001 - any failure leaves the fast tier running
            if not (_build._EXITING.is_set() or _build._BACKGROUND_EXIT.is_set()):
                C._upgrade_failed(exc, site)
        finally:
            C._upgrade_done.set()

    thread = threading.Thread(target=run, name=f"symgraph-upgrade-{F.name}", daemon=True)
    C._upgrade_thread = thread
    thread.start()


def _upgrade_result(F: Any, options: dict, key: str, prepared: tuple | None) -> "CompiledFunction | None":
    """The "best" CompiledFunction for ``key``; builds of the same key in this process share one result."""
    with _UPGRADE_LOCK:
        shared = _UPGRADES.get(key)
        if shared is None:
            shared = _UPGRADES[key] = {"lock": threading.Lock(), "result": None}
    with shared["lock"]:
        if shared["result"] is None:
            if _build._EXITING.is_set() or _build._BACKGROUND_EXIT.is_set():
                return None
            opts = dict(options, tier="best")
            if opts.get("compiler") is None:
                opts["compiler"] = _build.find_compiler(None)  # no switch to tcc: the fast tier is tcc already
            try:
                shared["result"] = _compile_tier(F, opts, "best", key, prepared, background=True)[0]
            finally:
                with _UPGRADE_LOCK:  # later requests find the entry in the cache
                    if _UPGRADES.get(key) is shared:
                        del _UPGRADES[key]
        return shared["result"]
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


_DEFAULT_OPTIONS = {"optimize": 1, "compiler": None, "flags": None, "jobs": None, "chunk_size": DEFAULT_CHUNK,
                    "cache_dir": None, "auto_tcc": True, "compile_budget": COMPILE_BUDGET, "name": None,
                    "tier": None, "verbose": None}


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
    if options.get("tier") is not None and options["tier"] not in TIERS:
        raise bad("tier", "'auto', 'fast' or 'best' (or None for the default, "
                          f"{DEFAULT_TIER!r})")
    if options.get("verbose") is not None and not isinstance(options["verbose"], bool):
        raise bad("verbose", "True, False or None (a progress display on a terminal only)")
    compiler = options.get("compiler")
    if compiler is not None and not isinstance(compiler, (str, os.PathLike, _build.Compiler)):
        raise bad("compiler", "a compiler name or path such as 'gcc' or '/usr/bin/clang' (or None)")
    if compiler is not None and not isinstance(compiler, _build.Compiler) and not os.fspath(compiler):
        raise bad("compiler", "a non-empty compiler name or path")
    checked = dict(_DEFAULT_OPTIONS, **options)
    if options.get("flags") is not None:
        checked["flags"] = _build.check_flags(options["flags"])
    checked["jobs"] = _build.check_jobs(options.get("jobs"))
    checked["cache_dir"] = _build.check_cache_dir(options.get("cache_dir"))
    return checked


def _choose_compiler(G: Any, prog: Any, compiler: Any, auto_tcc: bool, budget: float, flags: tuple,
                     jobs: int) -> _build.Compiler:
    """The named compiler; else cc, or tcc (with a notice at the user's call) when cc's build would exceed
    ``budget`` seconds."""
    from symgraph.progress import warn

    cc, notice = _pick_compiler(G, prog, compiler, auto_tcc, budget, flags, jobs)
    if notice is not None:
        warn(notice, BackendWarning)
    return cc


def _pick_compiler(G: Any, prog: Any, compiler: Any, auto_tcc: bool, budget: float, flags: tuple,
                   jobs: int) -> tuple:
    """``(compiler, notice)``: as :func:`_choose_compiler`, the notice (:func:`tcc_notice`) returned, not given."""
    if isinstance(compiler, _build.Compiler):
        return compiler, None
    if compiler is not None:
        return _build.find_compiler(compiler), None
    cc = _build.find_compiler(None)
    if not auto_tcc:
        return cc, None
    estimate = estimate_build(prog.n_ops, len(prog.parts), flags, jobs)
    if estimate.cc_seconds <= budget:
        return cc, None
    try:
        tcc = _build.find_compiler("tcc")
    except CompilerNotFoundError:
        return cc, None
    return tcc, tcc_notice(G.name, estimate, cc.name, flags, budget)


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
            "or tier='fast' to use tcc without this notice")


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
    """Unpickle a CompiledFunction: compile its Function again with the same options (normally a cache hit)."""
    if isinstance(function, (bytes, bytearray)):
        from symgraph.serialize import from_bytes  # type: ignore[import-not-found]

        function = from_bytes(bytes(function))
    return compile_function(function, **options)


def _function_payload(F: Any) -> Any:
    """What a CompiledFunction pickles its Function as: ``serialize.to_bytes(F)`` where that module exists, else ``F``."""
    try:
        from symgraph.serialize import to_bytes  # type: ignore[import-not-found]
    except ImportError:
        return F
    try:
        return to_bytes(F)
    except Exception:  # a Function the format cannot hold: its own pickle
        return F


class _Code:
    """One tier's loaded code: the library, its entry points, run-time tables and per-thread buffers.

    A CompiledFunction holds one ``_Code`` and replaces it whole (one attribute
    store) when a better tier is ready; a call reads it once, so calls in
    flight finish on the code they started with.
    """

    def __init__(self, library: Any, name: str, batch: str, work_size: int, tables: tuple, tier: str,
                 n_ops: int = 0, n_parts: int = 1, prog: Any = None, compiled: Any = None) -> None:
        self.library, self.name, self.work_size, self.tables, self.tier = library, name, work_size, tables, tier
        self.n_ops, self.n_parts, self.prog, self.compiled = n_ops, n_parts, prog, compiled
        try:
            self.fn = getattr(library.lib, name)
            self.batch_fn = getattr(library.lib, batch)
        except AttributeError as exc:
            raise CompileError(f"the library {library.path} lacks the entry points {name} ({exc}); "
                               "was it built from other code?") from None
        self.ffi = library.ffi
        self.local = _Local()
        # the run-time tables: kept alive here, their addresses appended to every argument array
        self.table_buffers = [library.ffi.from_buffer("char[]", a) for a in tables]
        self.table_pointers = [library.ffi.cast("double *", b) for b in self.table_buffers]
        self.fast: Any = None


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
        code = _Code(library, prog.name, prog.symbol("batch"), prog.work_size, tuple(prog.tables),
                     "fast" if library.compiler is not None and library.compiler.family == "tcc" else "best",
                     prog.n_ops, len(prog.parts), prog, G)
        self._setup(F, code, flags, options)

    @classmethod
    def _make(cls, F: Any, code: _Code, flags: tuple, options: dict | None = None) -> "CompiledFunction":
        """A CompiledFunction of loaded code (a cache hit: no program, no optimized Function yet)."""
        self = cls.__new__(cls)
        self._setup(F, code, flags, options)
        return self

    def _setup(self, F: Any, code: _Code, flags: tuple, options: dict | None) -> None:
        self.function = F
        self.flags = flags
        self.options = dict(options or {})
        self.name = F.name
        self._switch_lock = threading.Lock()
        self._upgrade_done: threading.Event | None = None
        self._upgrade_thread: threading.Thread | None = None
        self._upgrade_error: BaseException | None = None
        self._code_lock = threading.Lock()
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
        code.fast = self._make_fast(code)
        self._code = code
        self._fast = code.fast

    # ------------------------------------------------------------ tiers
    def _switch(self, code: _Code) -> None:
        """Use ``code`` from now on (calls already running finish on the old code); logged at INFO."""
        from symgraph.progress import logger

        code.fast = self._make_fast(code)
        with self._switch_lock:
            old = self._code
            self._code = code  # one store each: a call reads self._fast (or self._code) once
            self._fast = code.fast
        logger.info("%s: switched from the %s tier (%s) to the %s tier (%s)", self.name, old.tier,
                    _compiler_name(old), code.tier, _compiler_name(code))

    def _upgrade_failed(self, exc: BaseException, site: Any) -> None:
        """A background build failed: keep the fast tier, say so once (a BackendWarning at the user's call)."""
        from symgraph.progress import logger, warn

        self._upgrade_error = exc
        logger.warning("%s: the background build of the optimized code failed: %s", self.name, exc)
        running = "the Tape interpreter keeps" if self._code.tier == "interp" else "the tcc code keeps"
        warn(f"{self.name}: building the optimized code in the background failed, so {running} "
             f"running (correct, 2-5x slower per call): {type(exc).__name__}: {exc}. Pass tier='best' to "
             "compile with the optimizing compiler in the foreground (its errors are raised), or tier='fast' "
             "to use tcc alone", BackendWarning, site)

    @property
    def tier(self) -> str:
        """Which code runs now: ``"interp"`` (the Tape interpreter, :mod:`codegen.interp`), ``"fast"`` (tcc)
        or ``"best"`` (the optimizing compiler)."""
        return self._code.tier

    @property
    def upgrade_error(self) -> BaseException | None:
        """The exception that stopped the background build of the best tier, or None."""
        return self._upgrade_error

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a background upgrade (``tier="auto"``); True when none is pending any more.

        >>> import symgraph as sg
        >>> x = sg.symbols("x")
        >>> C = sg.Function("w", [x], [x + 1]).compile(tier="auto")
        >>> C.wait(300), float(C(1.0))
        (True, 2.0)
        """
        done = self._upgrade_done
        return True if done is None else done.wait(timeout)

    # ------------------------------------------------------------ pickling
    def __reduce__(self):
        """Pickle as the Function (``serialize.to_bytes`` where available) and the compile options;
        unpickling looks the code up in the cache (normally a hit) or compiles it again."""
        return _rebuild, (_function_payload(self.function), self.options)

    # ------------------------------------------------------------ metadata
    @property
    def library(self) -> Any:
        """The :class:`codegen.build.Library` of the code running now."""
        return self._code.library

    @property
    def work_size(self) -> int:
        """Doubles of work memory per call."""
        return self._code.work_size

    @property
    def tables(self) -> tuple:
        """The run-time tables of the code (read-only numpy arrays)."""
        return self._code.tables

    @property
    def compiled(self) -> Any:
        """The optimized Function the C code was generated from (made again after a cache hit)."""
        code = self._code
        with self._code_lock:
            if code.compiled is None:
                level = self.options.get("optimize", 1)
                code.compiled = self.function.optimize(level) if level else self.function
            return code.compiled

    @property
    def _program(self) -> Any:
        code = self._code
        G = self.compiled
        with self._code_lock:
            if code.prog is None:
                code.prog = program(G, self.options.get("name"), self.options.get("chunk_size", DEFAULT_CHUNK),
                                    self.options.get("optimize", 1), runtime_tables=True)
            return code.prog

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
    def _new_state(self, code: _Code | None = None) -> _State:
        code = code or self._code
        ffi = code.ffi
        st = _State()
        st.inbuf = ffi.new("double[]", max(1, self._in_offsets[-1]))
        st.invals = np.frombuffer(ffi.buffer(st.inbuf), dtype=np.float64)
        st.inviews = [st.invals[off:off + size].reshape(shape)
                      for (_, shape, off, _), size in zip(self._inputs, self._in_sizes)]
        st.argp = ffi.new("double *[]", max(1, self._n_in + len(code.table_pointers)))
        for k, off in enumerate(self._in_offsets[:-1]):
            st.argp[k] = st.inbuf + off
        for k, pointer in enumerate(code.table_pointers, self._n_in):
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
        st.w = ffi.new("double[]", max(1, code.work_size))
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
        code = self._code
        st = self._run(args, code)
        try:
            return self._write_out(st, targets)
        finally:
            code.local.state = st

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

    def _run(self, args: tuple, code: _Code) -> _State:
        """Convert the arguments, take this thread's buffers of ``code``, fill them and run its C code.

        The caller puts the buffers back (``code.local.state = st``) once it
        has read the results; a call made meanwhile allocates its own.
        """
        values = self._convert(args)
        local = code.local
        st = local.state
        if st is None:
            st = self._new_state(code)
        local.state = None
        inbuf = st.inbuf
        for value, (k, _, off, scalar) in zip(values, self._inputs):
            if scalar:
                inbuf[off] = value
            else:
                st.inviews[k][...] = value
        code.fn(st.argp, st.resp, st.w)
        return st

    def _count_error(self, args: tuple):
        raise ArgumentCountError(f"{self.name} takes {self._n_in} argument(s) "
                                 f"({', '.join(self.function.input_names)}), got {len(args)}")

    def _make_fast(self, code: _Code):
        """A call path of ``code`` specialized to this Function's inputs and outputs (unrolled, no loops).

        Only integers and names of local variables enter the generated Python;
        no user-supplied text does.  All arguments are converted first, then
        the thread's buffers are taken (so a re-entrant call from an argument's
        ``__array__`` cannot overwrite them), filled, run, read and put back.
        """
        if self._n_in > 64 or len(self._outputs) > 64:
            def generic(args):
                st = self._run(args, code)
                try:
                    return self._results(st)
                finally:
                    code.local.state = st
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
        namespace = {"count_error": self._count_error, "local": code.local,
                     "new_state": functools.partial(self._new_state, code),
                     "F64S": np.float64, "F64": _F64, "ndarray": np.ndarray, "fn": code.fn,
                     "checked": self._checked, "shapes": [s for _, s, _, _ in self._inputs],
                     "to_csc": _to_csc, "patterns": self._sparse}
        exec(compile("\n".join(lines), f"<compiled {code.name}>", "exec"), namespace)
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
        if any(map(is_dask_array, args)):  # dask arrays: a lazy batch, block by block (symgraph.dask)
            return _dask_batch(self, *args)
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
        code = self._code
        ffi = code.ffi
        sizes = self._in_sizes
        widest = max([sizes[k] for k, b in enumerate(batched) if not b], default=0)
        block = n if widest == 0 else max(1, min(n, SHARED_BLOCK_DOUBLES // widest))
        # a shared argument is repeated `block` times: each block reads the same copy
        arrays = [a if b else np.repeat(a.reshape(1, -1), block, axis=0) for a, b in zip(arrays, batched)]
        keep = [ffi.from_buffer("double[]", a) for a in arrays]
        keep_out = [ffi.from_buffer("double[]", o) for o in outs]
        argp = ffi.new("double *[]", max(1, len(keep) + len(code.table_pointers)))
        for k, pointer in enumerate(code.table_pointers, len(keep)):
            argp[k] = pointer
        resp = ffi.new("double *[]", max(1, len(keep_out)))
        w = ffi.new("double[]", max(1, code.work_size))
        for start in range(0, n, block):
            for k, buf in enumerate(keep):
                argp[k] = buf + start * sizes[k] if batched[k] else buf
            for k, buf in enumerate(keep_out):
                resp[k] = buf + start * self._out_sizes[k]
            code.batch_fn(min(block, n - start), argp, resp, w)

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


def _compiler_name(code: _Code) -> str:
    if code.tier == "interp":
        return "the Tape interpreter"
    compiler = code.library.compiler
    return compiler.name if compiler is not None else "?"
