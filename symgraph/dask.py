"""Dask: batch evaluation over ``dask.array`` chunks and many NLP solves on a ``dask.distributed`` cluster.

Optional extra ``symgraph[dask]`` (``dask[array]`` and ``distributed``).  Inside
this module ``import dask`` is the real Dask (absolute imports).

* :func:`batch` evaluates a Function (compiled on the workers) or a
  CompiledFunction at every point of ``dask.array`` arguments chunked along
  the batch axis (axis 0); each block is one ``C.batch`` call, and all
  outputs of a block come from that one evaluation.
* :func:`map_solve` runs one NLP solve per starting point (and parameter
  row) as tasks of a ``dask.distributed`` client.

What travels: a Function as its :func:`symgraph.serialize.to_bytes` file
(one key of the graph, or one scattered future, shared by all tasks), and
the compile options.  Each worker process compiles it once (a module-level
memo keyed by a hash of the bytes and options; the compile itself is a hit
in the disk cache, ``$SYMGRAPH_CACHE_DIR``, wherever that cache has the code
already), never once per task.  :func:`worker_stats` tells a process what it
compiled.

>>> import numpy as np, dask.array as da, symgraph as sg
>>> x = sg.symbols("x", 2)
>>> F = sg.Function("f", [x], [x[0] * x[1]])
>>> X = da.from_array(np.arange(8.0).reshape(4, 2), chunks=(2, 2))
>>> batch(F, X).compute(scheduler="synchronous").tolist()
[0.0, 6.0, 20.0, 42.0]
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import threading
import time
from typing import Any

import numpy as np

from .errors import (ArgumentCountError, DTypeError, InvalidInputError, MissingToolError, OptionError,
                     SerializationError, ShapeError, SymgraphError)

__all__ = ["batch", "map_solve", "nlp_payload", "nlp_from_payload", "worker_stats", "is_dask_array"]

PAYLOAD_FORMAT = "symgraph-nlp"
PAYLOAD_VERSION = 1
_CALLBACKS = ("f", "grad_f", "g", "jac_g", "hess_l")

# ---------------------------------------------------------------- per-process state (one per worker process)
_MEMO: dict[str, Any] = {}  # key -> CompiledFunction (batch) or NLP (map_solve)
_BUILD_LOCK = threading.Lock()  # one build per key, even with several threads per worker
_LOCK = threading.Lock()  # the counters
_STATS = {"functions_compiled": 0, "nlps_built": 0, "cache_hits": 0, "blocks": 0, "block_seconds": 0.0, "solves": 0}


def worker_stats() -> dict:
    """What this process has built and run for :func:`batch` and :func:`map_solve` so far.

    Keys: ``pid``; ``functions_compiled`` (Functions compiled for :func:`batch`), ``nlps_built``
    (NLPs rebuilt from a payload), ``cache_hits`` (of the compiled Functions, those whose code came
    from the disk cache), ``blocks`` (``C.batch`` calls run) and ``block_seconds`` (their time),
    ``solves`` and ``memo`` (entries held).
    On a cluster, ``client.run(worker_stats)`` gives it per worker.

    >>> sorted(worker_stats())
    ['block_seconds', 'blocks', 'cache_hits', 'functions_compiled', 'memo', 'nlps_built', 'pid', 'solves']
    """
    with _LOCK:
        return dict(_STATS, pid=os.getpid(), memo=len(_MEMO))


def _require_dask() -> Any:
    try:
        import dask
        import dask.array  # noqa: F401
    except ImportError:
        raise MissingToolError("symgraph.dask needs Dask: pip install 'symgraph[dask]' "
                                 "(dask[array] and distributed)") from None
    return dask


def is_dask_array(value: Any) -> bool:
    """Whether ``value`` is a ``dask.array.Array`` (False, without importing Dask, when Dask was never imported).

    >>> import numpy as np, dask.array as da
    >>> is_dask_array(da.zeros(3)), is_dask_array(np.zeros(3))
    (True, False)
    """
    import sys

    module = sys.modules.get("dask.array")
    return module is not None and isinstance(value, module.Array)


# ---------------------------------------------------------------------------------------------- batch
def _function_bytes(F: Any) -> tuple[str, Any]:
    """``(digest, payload)``: the Function as serialize bytes (or, for one the format cannot hold, itself)."""
    from .serialize import to_bytes

    try:
        data = to_bytes(F)
    except SymgraphError:  # a Function the format cannot hold travels as itself (its own pickle)
        from codegen.runtime import function_digest

        return "digest:" + function_digest(F), F
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def _options_key(options: dict) -> str:
    return repr(sorted((k, v if not isinstance(v, list) else tuple(v)) for k, v in options.items()))


def _compiled(key: str, payload: Any, options: dict) -> Any:
    """The CompiledFunction of ``payload`` in this process: compiled at the first call, then the memo's."""
    C = _MEMO.get(key)
    if C is not None:
        return C
    with _BUILD_LOCK:
        C = _MEMO.get(key)
        if C is None:
            from codegen.runtime import compile_function

            from .serialize import from_bytes

            F = from_bytes(bytes(payload)) if isinstance(payload, (bytes, bytearray, memoryview)) else payload
            C = compile_function(F, **options)
            with _LOCK:
                _STATS["functions_compiled"] += 1
                _STATS["cache_hits"] += bool(getattr(C, "cache_hit", False))
                _MEMO[key] = C
    return C


def _run_block(key: str, payload: Any, options: dict, *args: Any) -> tuple:
    """One block: one ``C.batch`` call; its outputs as plain arrays (a sparse one: its ``(n, nnz)`` values)."""
    C = _compiled(key, payload, options)
    start = time.perf_counter()
    out = C.batch(*args)
    seconds = time.perf_counter() - start
    with _LOCK:
        _STATS["blocks"] += 1
        _STATS["block_seconds"] += seconds
    from .batch import SparseBatch

    out = (out,) if C.function.n_out == 1 else out
    return tuple(o.data if isinstance(o, SparseBatch) else o for o in out)


def _callee(C: Any, options: dict | None) -> tuple[Any, dict, Any]:
    """``(Function, options, CompiledFunction or None)`` of what :func:`batch` was given."""
    from .function import Function

    if isinstance(C, Function):
        import inspect

        from codegen.runtime import _public, check_options, compile_function

        if options is not None and not isinstance(options, dict):
            raise OptionError(f"symgraph.dask.batch: options must be a dict of Function.compile options, "
                              f"got {type(options).__name__}")
        opts = dict(options or {})
        opts.pop("verbose", None)
        known = [name for name, param in inspect.signature(compile_function).parameters.items()
                 if name not in ("F", "verbose") and param.kind is not param.VAR_KEYWORD]
        unknown = sorted(set(opts) - set(known))
        if unknown:
            raise OptionError(f"symgraph.dask.batch: compile() has no option {', '.join(map(repr, unknown))}; "
                              f"the options are {', '.join(known)}")
        return C, _public(check_options(**opts)), None
    function = getattr(C, "function", None)
    if not isinstance(function, Function) or not hasattr(C, "batch"):
        raise InvalidInputError("symgraph.dask.batch: expected a symgraph Function or CompiledFunction, "
                                f"got {type(C).__name__}")
    if options is not None:
        raise OptionError("symgraph.dask.batch: options are for a Function (compiled on the workers); "
                          "this CompiledFunction has its own (C.options)")
    return function, dict(C.options), C


def _check_argument(F: Any, k: int, value: Any) -> Any:
    """A dask array as it is (its dtype checked), anything else as a float64 numpy array."""
    from .function import as_number_array

    label = f"{F.name}: argument {k} ({F.input_names[k]!r})"
    if is_dask_array(value):
        if value.dtype.kind == "c":
            raise DTypeError(f"{label} is complex; compiled functions evaluate float64 only")
        if value.dtype.kind not in "biuf":
            raise DTypeError(f"{label}: expected real numbers, got a dask array of dtype {value.dtype}")
        return value
    arr = as_number_array(label, value)
    if arr.dtype.kind == "c":
        raise DTypeError(f"{label} is complex; compiled functions evaluate float64 only")
    return arr


def _check_chunks(F: Any, k: int, arr: Any) -> None:
    label = f"{F.name}: argument {k} ({F.input_names[k]!r})"
    if any(np.isnan(c) for c in arr.chunks[0]):
        raise ShapeError(f"{label}: a dask array of unknown chunk sizes along axis 0; call "
                         "arr.compute_chunk_sizes() first")
    split = [axis for axis in range(1, arr.ndim) if len(arr.chunks[axis]) > 1]
    if split:
        fix = ", ".join(f"{axis}: -1" for axis in range(1, arr.ndim))
        raise ShapeError(f"{label} is chunked along axis {split[0]} (chunks {arr.chunks[split[0]]}); symgraph "
                         f"evaluates blocks of whole points, chunked along axis 0 (the batch axis) only: "
                         f"pass arr.rechunk({{{fix}}})")


def batch(C: Any, *args: Any, options: dict | None = None) -> Any:
    """``C.batch(*args)`` over ``dask.array`` arguments: lazy dask arrays of the results, block by block.

    Args:
        C: a :class:`~symgraph.Function` (compiled on each worker with ``options``, the
            options of :meth:`Function.compile`) or a CompiledFunction (its own options).
        args: per input, a ``dask.array`` of shape ``(N,) + shape`` chunked along axis 0 only
            (the batch axis; all batched arguments are rechunked to the first one's axis-0
            chunks), or a value of the input's own shape (numpy array or number) shared by
            all points.  A numpy array of shape ``(N,) + shape`` is chunked like the first
            dask argument.

    Returns:
        One dask array per output (one array for a single-output Function), chunked along
        axis 0 like the arguments: ``(N,) + shape`` for a dense output; for a sparse output
        ``(N, nnz)``, the nonzeros of each point in compressed-column order, whose pattern
        is ``C.output_pattern(k)`` (a ``csc_matrix`` of ones: ``indices``, ``indptr``;
        ``SparseBatch(values, P.indices, P.indptr, P.shape)`` rebuilds the local result).

    Each block is one ``C.batch`` call in a task; the Function's bytes are one key of the
    graph, shared by all blocks, and each worker process compiles them once.

    >>> import numpy as np, dask.array as da, symgraph as sg
    >>> x, a = sg.symbols("x", 2), sg.symbols("a")
    >>> C = sg.Function("f", [x, a], [a * x.sum(), sg.jacobian(a * x * x, x)]).compile()
    >>> X = da.from_array(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), chunks=2)
    >>> s, J = batch(C, X, 0.5)
    >>> s.compute(scheduler="synchronous").tolist(), J.shape
    ([1.5, 3.5, 5.5], (3, 2))
    >>> J.compute(scheduler="synchronous").tolist(), C.output_pattern(1).indices.tolist()
    ([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], [0, 1])
    >>> batch(C, X.rechunk((1, 1)), 0.5)
    Traceback (most recent call last):
    ...
    symgraph.errors.ShapeError: f: argument 0 ('x') is chunked along axis 1 (chunks (1, 1)); symgraph evaluates blocks of whole points, chunked along axis 0 (the batch axis) only: pass arr.rechunk({1: -1})
    """
    dask = _require_dask()
    import dask.array as da

    from .batch import batch_arguments

    F, options, compiled = _callee(C, options)
    if len(args) != F.n_in:
        raise ArgumentCountError(f"{F.name} takes {F.n_in} arguments ({', '.join(F.input_names)}), "
                                 f"got {len(args)}")
    arrays, batched, n = batch_arguments(F, args, lambda k, v: _check_argument(F, k, v))
    first = next((k for k, (a, b) in enumerate(zip(arrays, batched)) if b and is_dask_array(a)), None)
    if first is not None:
        _check_chunks(F, first, arrays[first])
        chunks = arrays[first].chunks[0]
    else:
        chunks = (n,)
    digest, payload = _function_bytes(F)
    key = f"{digest}|{_options_key(options)}"
    if compiled is not None:  # this process (the threaded or synchronous scheduler) reuses C itself
        with _LOCK:
            _MEMO.setdefault(key, compiled)
    parts: list[list] = []  # per argument: one entry per block
    for k, (arr, is_batch) in enumerate(zip(arrays, batched)):
        if is_batch and is_dask_array(arr):
            _check_chunks(F, k, arr)
            if arr.chunks[0] != chunks:
                arr = arr.rechunk({0: chunks})
            blocks = arr.to_delayed().reshape(-1).tolist()
        elif is_batch:
            blocks = da.from_array(arr, chunks=(chunks,) + arr.shape[1:]).to_delayed().reshape(-1).tolist()
        else:
            shared = arr.compute() if is_dask_array(arr) else arr
            blocks = [dask.delayed(np.asarray(shared, dtype=np.float64), pure=True)] * len(chunks)
        parts.append(blocks)
    function = dask.delayed(payload, pure=True, name=f"symgraph-function-{digest.split(':')[1][:16]}")
    run = dask.delayed(_run_block, pure=True, nout=F.n_out)
    results = [run(key, function, options, *[p[i] for p in parts]) for i in range(len(chunks))]
    outputs = []
    for k, (shape, sparsity) in enumerate(zip(F.output_shapes, F.output_sparsity)):
        tail = shape if sparsity is None else (len(sparsity[0]),)
        pieces = [da.from_delayed(r[k], shape=(size,) + tuple(tail), dtype=np.float64)
                  for r, size in zip(results, chunks)]
        outputs.append(pieces[0] if len(pieces) == 1 else da.concatenate(pieces, axis=0))
    return outputs[0] if F.n_out == 1 else tuple(outputs)


# ------------------------------------------------------------------------------------- NLP payload
def nlp_payload(nlp: Any) -> bytes:
    """An :class:`~symgraph.NLP` as bytes to rebuild it elsewhere with :func:`nlp_from_payload`.

    Holds the five callback Functions (in :mod:`symgraph.serialize`'s format),
    the sparsity structures and how values are summed onto them, the sizes,
    ``jit`` and the compile options (not the current parameter values: the
    rebuilt NLP starts at zeros, as a new one does); an ``.npz`` archive read
    without pickle, so loading executes no code.

    >>> import symgraph as sg
    >>> x, p = sg.symbols("x", 2), sg.symbols("p")
    >>> nlp = sg.NLP(x=x, f=(x[0] - p) ** 2 + x[1] ** 2, p=p, jit=False)
    >>> data = nlp_payload(nlp)
    >>> isinstance(data, bytes), nlp_from_payload(data).objective([1.0, 2.0])
    (True, 5.0)
    """
    from .nlp import NLP
    from .serialize import to_bytes

    if not isinstance(nlp, NLP):
        raise InvalidInputError(f"nlp_payload: expected a symgraph NLP, got {type(nlp).__name__}")
    options = dict(next(iter(nlp._eval.values())).options) if nlp.jit else {}
    header = {"format": PAYLOAD_FORMAT, "version": PAYLOAD_VERSION, "n": int(nlp.n), "m": int(nlp.m),
              "n_p": int(len(nlp.p)), "tiled": bool(nlp.tiled), "jit": bool(nlp.jit),
              "options": {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()},
              "jacobian_shape": list(nlp.jacobian_structure.shape),
              "hessian_shape": list(nlp.hessian_structure.shape),
              "jacobian_sum": _sum_size(nlp._jacobian_sum), "hessian_sum": _sum_size(nlp._hessian_sum)}
    arrays = {"header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
              "jacobian_rows": np.asarray(nlp.jacobian_structure.rows, dtype=np.int64),
              "jacobian_cols": np.asarray(nlp.jacobian_structure.cols, dtype=np.int64),
              "hessian_rows": np.asarray(nlp.hessian_structure.rows, dtype=np.int64),
              "hessian_cols": np.asarray(nlp.hessian_structure.cols, dtype=np.int64),
              "gradient_cols": np.asarray(nlp._gradient_cols, dtype=np.int64).reshape(-1)}
    for name in ("jacobian", "hessian"):
        how = getattr(nlp, f"_{name}_sum")
        if how is not None:
            arrays[f"{name}_sum_index"] = np.asarray(how[0], dtype=np.int64)
    for name in _CALLBACKS:
        arrays[f"function_{name}"] = np.frombuffer(to_bytes(nlp.functions[name]), dtype=np.uint8)
    return _npz(arrays)


def _npz(arrays: dict) -> bytes:
    """An ``.npz`` archive (read by ``np.load``) with fixed timestamps: the same arrays give the same bytes,
    so a payload's hash (the workers' memo key) does not depend on when it was made."""
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            with archive.open(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w") as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _sum_size(how: tuple | None) -> Any:
    """The header's note of a ``_distinct`` summing rule: None (no rule), -1 (a permutation) or the size."""
    if how is None:
        return None
    return -1 if how[1] is None else int(how[1])


def nlp_from_payload(payload: bytes | bytearray | memoryview) -> Any:
    """The :class:`~symgraph.NLP` that :func:`nlp_payload` wrote, its callbacks compiled (disk cache first).

    Validates the archive (a :class:`~symgraph.errors.SerializationError` otherwise) and
    compiles the five Functions with the original options, as ``NLP(...)`` does, without
    differentiating again.  See :func:`nlp_payload` for an example.

    >>> nlp_from_payload(b"junk")
    Traceback (most recent call last):
    ...
    symgraph.errors.SerializationError: NLP payload: not an NLP payload archive (an .npz starts with b'PK\\x03\\x04', got b'junk')
    """
    from .nlp import NLP, CallbackStats, _compile_all
    from .serialize import from_bytes
    from .sparsity import Sparsity

    arrays, header = _read_payload(payload)
    try:
        functions = {name: from_bytes(arrays[f"function_{name}"].tobytes()) for name in _CALLBACKS}
        nlp = NLP.__new__(NLP)
        f_fn = functions["f"]
        nlp.x, nlp.p = _objects(f_fn.inputs[0]), _objects(f_fn.inputs[1])
        nlp.f = _objects(f_fn.outputs[0])[0]
        nlp.g = _objects(functions["g"].outputs[0])
        nlp.n, nlp.m, nlp.tiled = header["n"], header["m"], header["tiled"]
        if (len(nlp.x), len(nlp.p)) != (header["n"], header["n_p"]):
            raise SerializationError(f"NLP payload: the objective takes {len(nlp.x)} x and {len(nlp.p)} p, "
                                     f"the header says {header['n']} and {header['n_p']}")
        for name in ("jacobian", "hessian"):
            pattern = Sparsity(arrays[f"{name}_rows"], arrays[f"{name}_cols"], tuple(header[f"{name}_shape"]))
            size = header[f"{name}_sum"]
            how = None if size is None else (arrays[f"{name}_sum_index"].astype(np.intp),
                                             None if size == -1 else size)
            setattr(nlp, f"{name}_structure", pattern)
            setattr(nlp, f"_{name}_sum", how)
        nlp._gradient_cols = arrays["gradient_cols"]
        nlp._name = f_fn.name[:-2] if f_fn.name.endswith("_f") else f_fn.name
        if isinstance(getattr(NLP, "functions", None), property):  # derived on demand: its store is _functions
            nlp._functions = functions
        else:
            nlp.functions = functions
        nlp.jit = header["jit"]
        options = {k: tuple(v) if isinstance(v, list) else v for k, v in header["options"].items()}
        nlp._eval = _compile_all(functions, options) if nlp.jit else dict(functions)
        nlp.stats = CallbackStats()
        nlp._p_value = np.zeros(len(nlp.p))
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        if isinstance(exc, SerializationError):
            raise
        raise SerializationError(f"NLP payload: malformed ({type(exc).__name__}: {exc})") from None
    return nlp


def _objects(value: Any) -> np.ndarray:
    """A flat object array of the Exprs in ``value`` (an Expr or an array of them)."""
    out = np.empty(1, dtype=object)
    if not isinstance(value, np.ndarray):
        out[0] = value
        return out
    return value.reshape(-1)


def _read_payload(payload: Any) -> tuple[dict, dict]:
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise SerializationError(f"NLP payload: expected bytes, got {type(payload).__name__}")
    if bytes(payload[:4]) != b"PK\x03\x04":
        raise SerializationError(f"NLP payload: not an NLP payload archive (an .npz starts with b'PK\\x03\\x04', "
                                 f"got {bytes(payload[:4])!r})")
    try:
        with np.load(io.BytesIO(bytes(payload)), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except Exception as exc:
        raise SerializationError(f"NLP payload: not an NLP payload archive ({type(exc).__name__}: {exc})") from None
    try:
        header = json.loads(arrays["header"].tobytes().decode())
    except Exception as exc:
        raise SerializationError(f"NLP payload: no readable header ({type(exc).__name__}: {exc})") from None
    if not isinstance(header, dict) or header.get("format") != PAYLOAD_FORMAT:
        raise SerializationError("NLP payload: not an NLP payload (wrong format tag)")
    if header.get("version") != PAYLOAD_VERSION:
        raise SerializationError(f"NLP payload: version {header.get('version')!r}; this symgraph reads version "
                                 f"{PAYLOAD_VERSION}")
    for name, array in arrays.items():
        if name != "header" and array.dtype.kind not in "iuf":
            raise SerializationError(f"NLP payload: array {name!r} has dtype {array.dtype}")
    return arrays, header


# -------------------------------------------------------------------------------------- map_solve
def _nlp_for(key: str, payload: Any) -> Any:
    """The NLP of ``payload`` in this process: rebuilt at the first task, then the memo's."""
    nlp = _MEMO.get(key)
    if nlp is None:
        with _BUILD_LOCK:
            nlp = _MEMO.get(key)
            if nlp is None:
                nlp = nlp_from_payload(payload)
                with _LOCK:
                    _STATS["nlps_built"] += 1
                    _MEMO[key] = nlp
    return nlp


def _solve_one(x0: np.ndarray, p: Any, payload: Any, memo_key: str, solver: str, options: dict) -> Any:
    """One solve on a worker: a shallow copy of the memo's NLP (own parameters and stats), then the solver."""
    from .nlp import CallbackStats, NLPResult

    base = _nlp_for(memo_key, payload)
    nlp = copy.copy(base)  # the compiled callbacks are shared; parameters and counters are the task's own
    nlp.stats = CallbackStats()
    nlp._p_value = base._p_value.copy()
    with _LOCK:
        _STATS["solves"] += 1
    if solver == "ipopt":
        return nlp.solve_ipopt(x0, p=p, **options)
    r = nlp.scipy_minimize(x0, p=p, **options)
    return NLPResult(x=np.asarray(r.x), f=float(r.fun), status=int(r.status), message=str(r.message),
                     success=bool(r.success), iterations=int(r.get("nit", r.get("niter", 0)) or 0))


_IPOPT_OPTIONS = ("lbx", "ubx", "lbg", "ubg", "options")


def map_solve(nlp: Any, x0s: Any, ps: Any = None, *, client: Any = None, solver: str = "ipopt",
              **solve_options: Any) -> list:
    """Solve ``nlp`` from every row of ``x0s`` (with parameters ``ps``) as tasks on a ``dask.distributed`` cluster.

    Args:
        nlp: an :class:`~symgraph.NLP`.
        x0s: starting points, shape ``(K, n)``.
        ps: parameters: ``(K, n_p)`` (one row per solve), ``(n_p,)`` shared by all, or None
            (the NLP's current parameters, :meth:`NLP.set_parameters`).
        client: a ``distributed.Client`` (default: the current default client).
        solver: ``"ipopt"`` (:meth:`NLP.solve_ipopt`; ``solve_options`` are its ``lbx``, ``ubx``,
            ``lbg``, ``ubg``, ``options``) or ``"scipy"`` (:meth:`NLP.scipy_minimize`;
            ``solve_options`` are its ``bounds``, ``constraint_bounds``, ``method`` and
            ``scipy.optimize.minimize``'s own).

    Returns:
        A list of K :class:`~symgraph.NLPResult` (``x``, ``f``, ``status``, ``success``,
        ``iterations``, ...), in the order of the rows.

    The NLP travels once: :func:`nlp_payload` scattered to every worker, and each worker
    process rebuilds it (compiling the callbacks through the disk cache) at its first task,
    then keeps it for the next ones.

    >>> import numpy as np, symgraph as sg
    >>> from distributed import Client
    >>> x, p = sg.symbols("x", 2), sg.symbols("p")
    >>> nlp = sg.NLP(x=x, f=(x[0] - p) ** 2 + (x[1] + p) ** 2, p=p, jit=False)
    >>> with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as client:
    ...     sols = map_solve(nlp, np.zeros((3, 2)), [[1.0], [2.0], [3.0]], client=client,
    ...                      solver="scipy", method="L-BFGS-B")
    >>> [np.round(s.x, 4).tolist() for s in sols]
    [[1.0, -1.0], [2.0, -2.0], [3.0, -3.0]]
    """
    from .nlp import NLP, real_values

    _require_dask()
    if not isinstance(nlp, NLP):
        raise InvalidInputError(f"map_solve: expected a symgraph NLP, got {type(nlp).__name__}")
    if solver not in ("ipopt", "scipy"):
        raise OptionError(f"map_solve: solver must be 'ipopt' or 'scipy', got {solver!r}")
    if "p" in solve_options:
        raise OptionError("map_solve: pass parameters as ps (one row per solve), not p")
    if solver == "ipopt":
        unknown = sorted(set(solve_options) - set(_IPOPT_OPTIONS))
        if unknown:
            raise OptionError(f"map_solve: solve_ipopt has no option {', '.join(map(repr, unknown))}; "
                              f"it takes {', '.join(_IPOPT_OPTIONS)}")
    x0s = real_values(x0s, "map_solve: x0s")
    if x0s.ndim != 2 or x0s.shape[1] != nlp.n:
        raise ShapeError(f"map_solve: x0s must have shape (K, {nlp.n}) (one starting point per row), "
                         f"got {x0s.shape}")
    rows = _parameter_rows(nlp, ps, len(x0s))
    client = _client(client)
    payload = nlp_payload(nlp)
    key = "nlp:" + hashlib.sha256(payload).hexdigest()
    shared = client.scatter(payload, broadcast=True, hash=True)
    futures = client.map(_solve_one, list(x0s), rows, payload=shared, memo_key=key, solver=solver,
                         options=solve_options, pure=False, key=f"symgraph-solve-{key[5:17]}")
    return client.gather(futures)


def _parameter_rows(nlp: Any, ps: Any, count: int) -> list:
    from .nlp import real_values

    n_p = len(nlp.p)
    if ps is None:  # the NLP's current parameters (not part of the payload, so setting them never rebuilds)
        return [np.array(nlp._p_value, dtype=np.float64) if n_p else None] * count
    ps = real_values(ps, "map_solve: ps")
    if ps.shape == (n_p,) or (n_p == 1 and ps.shape == ()):
        return [ps.reshape(n_p)] * count
    if ps.ndim == 2 and ps.shape == (count, n_p):
        return list(ps)
    if n_p == 1 and ps.shape == (count,):
        return list(ps.reshape(count, 1))
    raise ShapeError(f"map_solve: ps must have shape ({count}, {n_p}) (one row per starting point) or "
                     f"({n_p},) (shared by all), got {ps.shape}")


def _client(client: Any) -> Any:
    if client is not None:
        return client
    try:
        from distributed import default_client
    except ImportError:
        raise MissingToolError("map_solve needs distributed: pip install 'symgraph[dask]'") from None
    try:
        return default_client()
    except ValueError:
        raise InvalidInputError("map_solve: no dask.distributed client; pass client=Client(...) or create one "
                                "first (Client() for this machine, Client('tcp://scheduler:8786') for a "
                                "cluster)") from None
