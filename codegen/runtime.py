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

>>> import numpy as np, symgraph as sg
>>> x = sg.symbols("x", 2)
>>> F = sg.Function("f", [x], [x * 2, x[0] * x[1]])
>>> C = F.compile()
>>> C(np.array([1.0, 3.0]))
(array([2., 6.]), np.float64(3.0))
>>> C.batch(np.array([[1.0, 2.0], [3.0, 4.0]]))[1]
array([ 2., 12.])
"""

from __future__ import annotations

import os
import threading
import warnings
from typing import Any, Sequence

import numpy as np

from symgraph.errors import (ArgumentCountError, BackendWarning, CompileError, CompilerNotFoundError,
                             DTypeError, OptionError, ShapeError)
from symgraph.function import check_argument

from . import build as _build
from .c99 import DEFAULT_CHUNK, program, single_file, translation_units

TCC_THRESHOLD = 400_000  # instructions above which the default compiler switches to tcc (auto_tcc)
MIN_PARTS_PER_UNIT = 2  # split into several C files only when each gets at least this many parts
_F64 = np.dtype(np.float64)


def compile_function(F: Any, optimize: int = 1, compiler: str | None = None, flags: Sequence[str] | None = None,
                     jobs: int | None = None, chunk_size: int = DEFAULT_CHUNK, cache_dir: str | None = None,
                     auto_tcc: bool = True, tcc_threshold: int = TCC_THRESHOLD,
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
        auto_tcc: with no explicit ``compiler``, compile programs of more than
            ``tcc_threshold`` instructions with tcc when it is installed (fast build,
            slower code), with a :class:`~symgraph.errors.BackendWarning` saying so.
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
    if unknown:
        raise OptionError(f"compile() has no option {', '.join(map(repr, sorted(unknown)))}; the options are "
                          "optimize, compiler, flags, jobs, chunk_size, cache_dir, auto_tcc, tcc_threshold, name")
    options = check_options(optimize=optimize, compiler=compiler, flags=flags, jobs=jobs, chunk_size=chunk_size,
                            cache_dir=cache_dir, auto_tcc=auto_tcc, tcc_threshold=tcc_threshold, name=name)
    G = F.optimize(optimize) if optimize else F
    cc = _choose_compiler(G, compiler, auto_tcc, tcc_threshold)
    prog = program(G, name, chunk_size)
    jobs = max(1, jobs or os.cpu_count() or 1)
    n_units = 1 if cc.family == "tcc" else max(1, min(jobs, len(prog.parts) // MIN_PARTS_PER_UNIT))
    units = translation_units(prog, G, n_units)
    library = _build.build(units, prog.cdef, cc, options["flags"], jobs, options["cache_dir"])
    flags = tuple(_build.DEFAULT_FLAGS if flags is None else options["flags"])
    return CompiledFunction(F, G, prog, library, flags, options)


def check_options(**options: Any) -> dict:
    """The compile options, checked: each wrong one raises :class:`~symgraph.errors.OptionError` naming it.

    >>> check_options(jobs=2)["jobs"]
    2
    """
    def bad(option: str, expected: str) -> OptionError:
        return OptionError(f"compile(): {option} must be {expected}, got {options[option]!r}")

    for option, low, expected in (("optimize", 0, "an optimizer level (int >= 0)"),
                                  ("chunk_size", 1, "a positive int (instructions per C function)"),
                                  ("tcc_threshold", 0, "a number of operations (int >= 0)")):
        value = options.get(option, low)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise bad(option, expected)
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


def _choose_compiler(G: Any, compiler: str | None, auto_tcc: bool, threshold: int) -> _build.Compiler:
    if isinstance(compiler, _build.Compiler):
        return compiler
    if compiler is not None:
        return _build.find_compiler(compiler)
    if auto_tcc and G.n_ops > threshold:
        try:
            tcc = _build.find_compiler("tcc")
        except CompilerNotFoundError:
            tcc = None
        if tcc is not None:
            warnings.warn(f"{G.name} has {G.n_ops} operations (more than tcc_threshold={threshold}): "
                          "compiling with tcc, which builds in a fraction of the time but whose code runs "
                          "about 2-3x slower (more on some models); pass compiler='cc' (or auto_tcc=False) "
                          "to use the optimizing compiler", BackendWarning, stacklevel=4)
            return tcc
    return _build.find_compiler(None)


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
        st.argp = ffi.new("double *[]", max(1, self._n_in))
        for k, off in enumerate(self._in_offsets[:-1]):
            st.argp[k] = st.inbuf + off
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
        """Evaluate N points at once (arguments with a leading axis of length N), in one C call.

        Returns arrays of shape ``(N,) + shape`` (a list of N ``csc_matrix`` for sparse outputs).
        """
        F = self.function
        if len(args) != self._n_in:
            raise ArgumentCountError(f"{self.name} takes {self._n_in} argument(s) "
                                     f"({', '.join(F.input_names)}), got {len(args)}")
        arrays, n = [], None
        for k, (value, shape) in enumerate(zip(args, F.input_shapes)):
            arr = self._checked(k, value, shape, True)
            if n is not None and arr.shape[0] != n:
                raise ShapeError(f"{self.name}: argument {k} ({F.input_names[k]!r}) has {arr.shape[0]} "
                                 f"points, but earlier arguments have {n}")
            n = arr.shape[0]
            arrays.append(np.ascontiguousarray(arr, dtype=np.float64))
        n = 1 if n is None else n
        outs = [np.empty((n, size), dtype=np.float64) for size in self._out_sizes]
        if n:
            ffi = self._ffi
            keep = [ffi.from_buffer("double[]", a) for a in arrays]
            keep_out = [ffi.from_buffer("double[]", o) for o in outs]
            argp = ffi.new("double *[]", max(1, len(keep)))
            resp = ffi.new("double *[]", max(1, len(keep_out)))
            for k, buf in enumerate(keep):
                argp[k] = buf
            for k, buf in enumerate(keep_out):
                resp[k] = buf
            w = ffi.new("double[]", max(1, self.work_size))
            self._batch_fn(n, argp, resp, w)
        results = []
        for (kind, _, shape, pattern), values in zip(self._outputs, outs):
            results.append(values.reshape((n,) + shape) if kind != 2 else [_to_csc(row.copy(), pattern) for row in values])
        return results[0] if self._single else tuple(results)


def _csc_pattern(sparsity) -> tuple:
    """``(indices, indptr, shape)`` of a sparse output in compressed-column order."""
    rows, cols, shape = sparsity
    perm = np.lexsort((rows, cols))
    index_dtype = np.int32 if max(shape) < 2**31 - 1 and len(rows) < 2**31 - 1 else np.int64
    indptr = np.concatenate([[0], np.cumsum(np.bincount(cols, minlength=shape[1]))]).astype(index_dtype)
    return rows[perm].astype(index_dtype), indptr, shape


def _to_csc(data: np.ndarray, pattern: tuple):
    import scipy.sparse as sp

    indices, indptr, shape = pattern
    return sp.csc_matrix((data, indices.copy(), indptr.copy()), shape=shape)
