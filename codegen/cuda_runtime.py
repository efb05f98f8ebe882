"""CudaFunction: a Function compiled to CUDA and evaluated for many points on a GPU (or its host build).

``F.compile(target="cuda")`` optimizes ``F`` (``optimize=1``), emits CUDA
C++ (:mod:`codegen.cuda`), compiles it for the GPU in use with NVRTC (the
``libnvrtc`` that CuPy's wheels or the CUDA toolkit ship, through ctypes) or
else ``nvcc``, keeps the machine code in the disk cache of the C backend
(``$SYMGRAPH_CACHE_DIR``, default ``~/.cache/symgraph``: ``KEY.cubin`` and
``KEY.json`` with its SHA-256, built under a per-key lock) and loads it with
CuPy (``pip install "symgraph[cuda]"``).  ``CudaFunction.batch`` evaluates
N points, one GPU thread each:

* arguments are numpy arrays (copied to the GPU) or device arrays: CuPy
  arrays, anything with ``__cuda_array_interface__`` (Numba, PyTorch) or
  DLPack (``__dlpack__``: PyTorch, JAX), used in place whatever their
  strides, as long as each point's components are evenly spaced;
* an argument of the input's own shape is shared by all points (as in
  ``C.batch``); ``shared=`` names arguments that must be so;
* dense outputs come back with shape ``(N,) + shape``, sparse ones as a
  :class:`~symgraph.batch.SparseBatch` of ``(N, nnz)`` values in the fixed
  compressed-column order of the CPU; on the device (CuPy arrays) unless
  ``out="host"``;
* ``layout="soa"`` (default) stores results component-major (component
  ``j`` of point ``i`` at ``j * N + i``: coalesced) and copies numpy
  arguments the same way; ``layout="aos"`` point after point, as numpy's
  C order.  Either way the arrays have the same shape and values;
* a batch larger than the free device memory runs in chunks of points
  (``out="host"``, or device outputs that fit); ``chunk_points`` caps a chunk.

``F.compile(target="cuda-host")`` builds the *same* source with the host
C++ compiler (``g++ -x c++``: the qualifiers are empty) and runs the batch
loop on the CPU (:class:`CudaHostFunction`, loaded with ctypes): what CI
checks against the VM on machines without a GPU.

>>> import numpy as np, symgraph as sg
>>> x, a = sg.symbols("x", 2), sg.symbols("a")
>>> F = sg.Function("f", [x, a], [a * x * x, sg.jacobian(a * x * x, x)])
>>> H = F.compile(target="cuda-host")          # doctest: +SKIP
>>> y, J = H.batch(np.array([[1.0, 2.0], [3.0, 4.0]]), 0.5)   # doctest: +SKIP
>>> y.tolist(), J.data.tolist()                # doctest: +SKIP
([[0.5, 2.0], [4.5, 8.0]], [[1.0, 2.0], [3.0, 4.0]])
"""

from __future__ import annotations

import ctypes
import glob
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from typing import Any, Callable, Sequence

import numpy as np

from symgraph.batch import SparseBatch, batch_arguments, csc_order
from symgraph.errors import (ArgumentCountError, BackendWarning, BatchMemoryError, CompileError, CudaUnavailableError, DeviceError,
                             DTypeError, OptionError, ShapeError)
from symgraph.function import as_number_array

from . import build as _build
from .cuda import CUDA_CHUNK, CUDA_CODEGEN_VERSION, CudaProgram, program

__all__ = ["compile_cuda", "CudaFunction", "CudaHostFunction", "host_check", "cuda_status",
           "nvrtc_compile", "find_nvrtc", "find_nvcc", "TARGETS"]

TARGETS = ("cuda", "cuda-host")
BLOCK_SIZE = 128  # threads per block (the kernels are register-heavy: small blocks keep occupancy flexible)
MEMORY_FRACTION = 0.7  # of the free device memory a batch may use before it is cut into chunks
SCRATCH_BYTES = 1 << 30  # global work scratch at most (Functions whose work array is not thread-local)
HOST_CXX = ("c++", "g++", "clang++")
HOST_FLAGS = ("-x", "c++", "-std=c++11", "-O2", "-fPIC", "-ffp-contract=off", "-shared")
_F64 = np.dtype(np.float64)
_NVRTC: dict[str, Any] = {}
_MODULES: dict[str, Any] = {}


# ---------------------------------------------------------------- compile entry

def compile_cuda(F: Any, target: str = "cuda", optimize: int = 1, name: str | None = None,
                 chunk_size: int = CUDA_CHUNK, cache_dir: str | None = None, compiler: str | None = None,
                 fast_math: bool = False, device: int | None = None, block_size: int = BLOCK_SIZE,
                 inline: bool = True, map_grid: bool = True, **unknown: Any) -> Any:
    """Compile ``F`` for the GPU (``target="cuda"``) or its source for the CPU (``target="cuda-host"``).

    Args:
        F: the :class:`symgraph.Function`.
        target: ``"cuda"`` (a :class:`CudaFunction`) or ``"cuda-host"`` (a :class:`CudaHostFunction`);
            for a map Function, a :class:`codegen.cuda_map.CudaMapFunction` around either.
        optimize: optimizer level applied first (0: ``F`` as is).
        name: the name C identifiers are made from (default ``F.name``).
        chunk_size: instructions per generated device function (default ``CUDA_CHUNK``: one function
            for most models, so values stay in registers).
        cache_dir: cache directory (default ``$SYMGRAPH_CACHE_DIR`` or ``~/.cache/symgraph``).
        compiler: ``"cuda"``: ``"nvrtc"``, ``"nvcc"`` or a path to nvcc (default: NVRTC, else nvcc);
            ``"cuda-host"``: a C++ compiler name or path (default: c++, g++, clang++).
        fast_math: allow contraction into fma and approximate math (``--use_fast_math``;
            host: ``-ffast-math``); default IEEE double precision.
        device: the GPU's number (default: CuPy's current device).
        block_size: threads per block.
        inline: expand calls (maps and folds unrolled) when the program then has at most
            :data:`codegen.cuda.INLINE_MAX` instructions, so a thread's values stay in registers
            (False: keep the calls, whose operands and results go through the work array).
        map_grid: a map Function (``body.map(n)``) runs its body's kernel over points and
            instances, one thread per instance (a :class:`codegen.cuda_map.CudaMapFunction`);
            False: one thread per point, all its instances.

    Raises :class:`~symgraph.errors.CudaUnavailableError` (a ``CompileError``)
    naming what is missing when CuPy, a GPU or a CUDA compiler is absent;
    :class:`~symgraph.errors.OptionError` for a bad option.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> sg.Function("f", [x], [x]).compile(target="cuda", block_size=0)
    Traceback (most recent call last):
    ...
    symgraph.errors.OptionError: compile(target='cuda'): block_size must be an int in [32, 1024], got 0
    """
    label = f"compile(target={target!r})"
    if unknown:
        raise OptionError(f"{label} has no option {', '.join(map(repr, sorted(unknown)))}; the options are "
                          "optimize, name, chunk_size, cache_dir, compiler, fast_math, device, block_size, inline, "
                          "map_grid")
    if target not in TARGETS:
        raise OptionError(f"compile(): unknown target {target!r}; the targets are 'c' (default), 'cuda', 'cuda-host'")
    for option, value, low in (("optimize", optimize, 0), ("chunk_size", chunk_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise OptionError(f"{label}: {option} must be an int >= {low}, got {value!r}")
    if isinstance(block_size, bool) or not isinstance(block_size, int) or not 32 <= block_size <= 1024:
        raise OptionError(f"{label}: block_size must be an int in [32, 1024], got {block_size!r}")
    if not isinstance(fast_math, bool):
        raise OptionError(f"{label}: fast_math must be True or False, got {fast_math!r}")
    for option, value in (("inline", inline), ("map_grid", map_grid)):
        if not isinstance(value, bool):
            raise OptionError(f"{label}: {option} must be True or False, got {value!r}")
    if device is not None and (isinstance(device, bool) or not isinstance(device, int) or device < 0):
        raise OptionError(f"{label}: device must be a GPU number (int >= 0) or None, got {device!r}")
    if compiler is not None and (not isinstance(compiler, (str, os.PathLike)) or not os.fspath(compiler)):
        raise OptionError(f"{label}: compiler must be a name or path (or None), got {compiler!r}")
    if name is not None and (not isinstance(name, str) or not name):
        raise OptionError(f"{label}: name must be a non-empty str (or None for the Function's name), got {name!r}")
    cache_dir = _build.check_cache_dir(cache_dir)
    options = dict(optimize=optimize, name=name, chunk_size=chunk_size, cache_dir=cache_dir, compiler=compiler,
                   fast_math=fast_math, device=device, block_size=block_size, inline=inline, map_grid=map_grid)
    if map_grid:
        from .cuda_map import CudaMapFunction, grid_body

        body = grid_body(F)
        if body is not None:  # one thread per instance: the body's kernel over points and instances
            return CudaMapFunction(F, compile_cuda(body, target, optimize, name, chunk_size, cache_dir, compiler,
                                                   fast_math, device, block_size, inline, False))
    if target == "cuda":
        cupy, device = _cuda_device(device)  # fail early, before any code generation
        start = time.perf_counter()
        G = F.optimize(optimize) if optimize else F
        prog = program(G, name, chunk_size, optimize, inline)
        generated = time.perf_counter() - start
        path, how, built_by = _device_binary(prog, cupy, device, compiler, fast_math, cache_dir)
        return CudaFunction(F, G, prog, path, how, built_by, generated, time.perf_counter() - start, cupy, device,
                            block_size, options)
    start = time.perf_counter()
    G = F.optimize(optimize) if optimize else F
    prog = program(G, name, chunk_size, optimize, inline)
    path, source = _host_library(prog, compiler, fast_math, cache_dir)
    return CudaHostFunction(F, G, prog, path, source, time.perf_counter() - start, options)


def host_check(F: Any, *args: Any, layout: str = "soa", **options: Any):
    """``F.batch(*args)`` through the CUDA source compiled for the CPU (``compile(target="cuda-host")``).

    >>> import numpy as np, symgraph as sg
    >>> x = sg.symbols("x")
    >>> host_check(sg.Function("sq", [x], [x * x]), np.arange(3.0)).tolist()   # doctest: +SKIP
    [0.0, 1.0, 4.0]
    """
    return compile_cuda(F, "cuda-host", **options).batch(*args, layout=layout)


# ---------------------------------------------------------------- finding CUDA

def _import_cupy() -> Any:
    try:
        import cupy
    except ImportError as exc:
        raise CudaUnavailableError(
            f"target='cuda' needs CuPy, which cannot be imported ({exc}); install it with "
            "pip install 'symgraph[cuda]' (or the cupy-cudaXXx wheel matching your CUDA). "
            "target='cuda-host' runs the same generated source on the CPU, and compile() the C code") from None
    return cupy


def _cuda_device(device: int | None) -> tuple[Any, int]:
    """CuPy and the GPU's number; :class:`CudaUnavailableError` when there is none."""
    cupy = _import_cupy()
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError: no driver, no device
        raise CudaUnavailableError(f"target='cuda': no usable CUDA GPU ({type(exc).__name__}: {exc}); "
                                   "CuPy is installed but the CUDA driver reports no device. "
                                   "compile() (C on the CPU) and target='cuda-host' still work") from None
    if count < 1:
        raise CudaUnavailableError("target='cuda': no CUDA GPU is visible (0 devices; check "
                                   "CUDA_VISIBLE_DEVICES and the driver)")
    if device is None:
        device = cupy.cuda.runtime.getDevice()
    if device >= count:
        raise DeviceError(f"target='cuda': device={device}, but only {count} CUDA device(s) exist (0..{count - 1})")
    return cupy, device


def find_nvcc(compiler: str | None = None) -> str | None:
    """Path of nvcc (``compiler`` if it is a path or name), else None: PATH, ``$CUDA_HOME/bin``, /usr/local/cuda/bin.

    >>> find_nvcc("surely-not-a-compiler") is None
    True
    """
    if compiler is not None and compiler != "nvcc":
        return shutil.which(os.fspath(compiler))
    found = shutil.which("nvcc")
    if found:
        return found
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if root and os.access(os.path.join(root, "bin", "nvcc"), os.X_OK):
            return os.path.join(root, "bin", "nvcc")
    return None


def _nvrtc_candidates() -> list[str]:
    names = [os.environ.get("SYMGRAPH_NVRTC", "")]
    for entry in sys.path:  # the nvidia-cuda-nvrtc wheels (CUDA 12: nvidia/cuda_nvrtc, 13: nvidia/cu13)
        if entry and os.path.isdir(os.path.join(entry, "nvidia")):
            names += sorted(glob.glob(os.path.join(entry, "nvidia", "*", "lib", "libnvrtc.so*")), reverse=True)
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if root:
            names += sorted(glob.glob(os.path.join(root, "lib64", "libnvrtc.so*")), reverse=True)
    names += ["libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2"]
    return [n for n in names if n and "builtins" not in os.path.basename(n) and "alt" not in os.path.basename(n)]


def find_nvrtc() -> Any:
    """The NVRTC library (ctypes), or None: ``$SYMGRAPH_NVRTC``, the nvidia wheels, the CUDA toolkit, the loader path."""
    if "lib" in _NVRTC:
        return _NVRTC["lib"]
    lib = None
    for name in _nvrtc_candidates():
        try:
            lib = ctypes.CDLL(name)
            lib.nvrtcVersion  # noqa: B018  (an NVRTC library)
            break
        except (OSError, AttributeError):
            lib = None
    if lib is not None:
        lib.nvrtcGetErrorString.restype = ctypes.c_char_p
    _NVRTC["lib"] = lib
    return lib


def nvrtc_version(lib: Any) -> tuple[int, int]:
    """NVRTC's ``(major, minor)``."""
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    return major.value, minor.value


def nvrtc_compile(source: str, arch: str, options: Sequence[str] = (), lib: Any = None) -> tuple[bytes, str, str]:
    """Compile CUDA C++ with NVRTC for ``arch`` (e.g. ``"90"``): ``(binary, "cubin" or "ptx", log)``.

    A GPU is not needed.  When NVRTC does not know ``sm_ARCH``, PTX for the
    newest architecture it knows below it is made (the driver compiles it).
    Raises :class:`~symgraph.errors.CompileError` with NVRTC's log on failure.
    """
    lib = lib or find_nvrtc()
    if lib is None:
        raise CudaUnavailableError("NVRTC (libnvrtc.so) was not found; set SYMGRAPH_NVRTC to its path")
    kind, want = nvrtc_target(lib, arch)
    flags = [f"--gpu-architecture={'sm' if kind == 'cubin' else 'compute'}_{want}", *options]
    prog = ctypes.c_void_p()
    check = _nvrtc_checker(lib)
    check(lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"symgraph.cu", 0, None, None), "create")
    try:
        c_flags = (ctypes.c_char_p * len(flags))(*[f.encode() for f in flags])
        status = lib.nvrtcCompileProgram(prog, len(flags), c_flags)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        text = log.value.decode(errors="replace")
        if status != 0:
            raise CompileError(f"NVRTC failed ({lib.nvrtcGetErrorString(status).decode()}) with options "
                               f"{' '.join(flags)}:\n{text[:4000]}")
        get_size, get = (lib.nvrtcGetCUBINSize, lib.nvrtcGetCUBIN) if kind == "cubin" else \
            (lib.nvrtcGetPTXSize, lib.nvrtcGetPTX)
        check(get_size(prog, ctypes.byref(size)), "size")
        data = ctypes.create_string_buffer(size.value)
        check(get(prog, data), "read")
        return data.raw, kind, text
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def nvrtc_target(lib: Any, arch: str) -> tuple[str, int]:
    """``("cubin", arch)`` when NVRTC knows ``sm_ARCH``, else ``("ptx", the newest architecture below it)``."""
    count = ctypes.c_int()
    known: list[int] = []
    if lib.nvrtcGetNumSupportedArchs(ctypes.byref(count)) == 0 and count.value > 0:
        archs = (ctypes.c_int * count.value)()
        if lib.nvrtcGetSupportedArchs(archs) == 0:
            known = list(archs)
    want = int(arch)
    if not known or want in known:
        return "cubin", want
    lower = [a for a in known if a <= want]
    if not lower:
        raise CompileError(f"NVRTC {nvrtc_version(lib)} cannot compile for sm_{arch} (it knows {known})")
    return "ptx", max(lower)


def _nvrtc_checker(lib: Any) -> Callable:
    def check(status: int, what: str) -> None:
        if status != 0:
            raise CompileError(f"NVRTC: {what} failed: {lib.nvrtcGetErrorString(status).decode()}")
    return check


def cuda_status() -> dict:
    """What this machine offers for ``target="cuda"``: CuPy, GPUs, NVRTC, nvcc (for messages and test skips).

    >>> sorted(cuda_status())
    ['cupy', 'devices', 'nvcc', 'nvrtc', 'reason']
    """
    status: dict[str, Any] = {"cupy": None, "devices": 0, "nvrtc": None, "nvcc": find_nvcc(), "reason": ""}
    lib = find_nvrtc()
    status["nvrtc"] = None if lib is None else "%d.%d" % nvrtc_version(lib)
    try:
        import cupy
        status["cupy"] = cupy.__version__
        status["devices"] = int(cupy.cuda.runtime.getDeviceCount())
    except ImportError:
        status["reason"] = "CuPy is not installed"
    except Exception as exc:  # the driver reports no device
        status["reason"] = f"no CUDA GPU ({type(exc).__name__}: {exc})"
    if not status["reason"] and status["devices"] == 0:
        status["reason"] = "no CUDA GPU is visible"
    if not status["reason"] and status["nvrtc"] is None and status["nvcc"] is None:
        status["reason"] = "no CUDA compiler (neither NVRTC nor nvcc)"
    return status


# ---------------------------------------------------------------- cache

def _cached(key: str, suffix: str, directory: str | None, produce: Callable[[str], str]) -> tuple[str, str]:
    """Path of the cache entry ``KEY.suffix`` (checked against ``KEY.json``), made by ``produce(workdir)`` if absent.

    Returns ``(path, "disk" or "compiled")``.  Built in a ``build-KEY-*``
    directory of the cache under the key's lock and moved into place, as the
    C backend's entries (:mod:`codegen.build`).
    """
    root = _build.cache_dir(directory)
    path, meta = os.path.join(root, key + suffix), os.path.join(root, key + ".json")
    if _build._read_entry(path, meta) is not None:
        return path, "disk"
    with _build._file_lock(os.path.join(root, key + ".lock")):
        if _build._read_entry(path, meta) is not None:
            return path, "disk"
        try:
            work = tempfile.mkdtemp(dir=root, prefix=f"build-{key}-")
        except OSError as exc:
            raise CompileError(f"cannot create a build directory in {root}: {exc.strerror or exc}") from None
        try:
            built = produce(work)
            with open(built, "rb") as fh:
                digest = hashlib.sha256(fh.read()).hexdigest()
            tmp_meta = os.path.join(work, "meta.json")
            with open(tmp_meta, "w", encoding="ascii") as fh:
                json.dump({"sha256": digest, "codegen": CUDA_CODEGEN_VERSION}, fh)
            os.replace(built, path)
            os.replace(tmp_meta, meta)
        except OSError as exc:
            raise CompileError(f"cannot store {path} in the symgraph cache {root}: {exc.strerror or exc}") from None
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return path, "compiled"


def _key(*parts: Any) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([CUDA_CODEGEN_VERSION, *parts[:-1]]).encode())
    h.update(b"\0" + parts[-1].encode())
    return h.hexdigest()


def _run(cmd: list[str], work: str, what: str) -> None:
    try:
        done = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    except OSError as exc:
        raise CompileError(f"cannot run {cmd[0]} ({exc})") from None
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip()
        raise CompileError(f"{what} failed with exit status {done.returncode}:\n  {' '.join(cmd)}\n{message[:4000]}")


def _host_library(prog: CudaProgram, compiler: str | None, fast_math: bool, directory: str | None) -> tuple[str, str]:
    """Build the source as host C++ (cached): ``(library path, "disk" or "compiled")``."""
    names = HOST_CXX if compiler is None else (os.fspath(compiler),)
    cxx = next((shutil.which(n) for n in names if shutil.which(n)), None)
    if cxx is None:
        raise CudaUnavailableError(f"target='cuda-host' needs a C++ compiler (looked for {', '.join(names)} on "
                                   "PATH); install g++ or pass compiler='/path/to/c++'")
    cxx = os.path.realpath(cxx)
    try:
        version = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise CompileError(f"cannot run the C++ compiler {cxx} ({exc})") from None
    flags = [*HOST_FLAGS, *(["-ffast-math"] if fast_math else [])]
    key = _key("host", cxx, version.splitlines()[:1], flags, sys.platform, prog.source)

    def produce(work: str) -> str:
        with open(os.path.join(work, "src.cpp"), "w", encoding="ascii") as fh:
            fh.write(prog.source)
        _run([cxx, *flags, "-o", "lib.so", "src.cpp", "-lm"], work, os.path.basename(cxx))
        return os.path.join(work, "lib.so")

    return _cached(key, ".so", directory, produce)


def _device_binary(prog: CudaProgram, cupy: Any, device: int, compiler: str | None, fast_math: bool,
                   directory: str | None) -> tuple[str, str, str]:
    """Compile for the GPU ``device`` (cached): ``(path of cubin or ptx, "disk"/"compiled", compiler used)``."""
    with cupy.cuda.Device(device):
        arch = str(cupy.cuda.Device(device).compute_capability)
    lib = find_nvrtc() if compiler in (None, "nvrtc") else None
    nvcc = find_nvcc(compiler) if compiler != "nvrtc" else None
    if lib is None and nvcc is None:
        looked = {None: "NVRTC (libnvrtc.so: set SYMGRAPH_NVRTC to its path) nor nvcc (PATH, $CUDA_HOME/bin)",
                  "nvrtc": "NVRTC (libnvrtc.so; set SYMGRAPH_NVRTC to its path)"}.get(compiler, f"nvcc ({compiler})")
        raise CudaUnavailableError(f"target='cuda': no CUDA compiler: found neither {looked}"
                                   if compiler is None else f"target='cuda': {looked} was not found")
    math_flags = ["--use_fast_math"] if fast_math else ["--fmad=false"]
    if lib is not None:
        flags = ["-default-device", "--std=c++14", *math_flags]
        version = "%d.%d" % nvrtc_version(lib)
        kind, _ = nvrtc_target(lib, arch)
        key = _key("nvrtc", version, arch, flags, prog.source)

        def produce(work: str) -> str:
            data, _, _ = nvrtc_compile(prog.source, arch, flags, lib)
            path = os.path.join(work, "module." + kind)
            with open(path, "wb") as fh:
                fh.write(data)
            return path

        try:
            path, source = _cached(key, "." + kind, directory, produce)
            return path, source, f"NVRTC {version}"
        except CompileError as exc:
            if compiler is not None or nvcc is None:
                raise
            warnings.warn(f"NVRTC {version} failed, compiling with nvcc instead: {str(exc)[:500]}",
                          BackendWarning, stacklevel=3)
    nvcc = os.path.realpath(nvcc)
    try:
        version = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise CompileError(f"cannot run nvcc {nvcc} ({exc})") from None
    flags = ["-cubin", f"-arch=sm_{arch}", "-O3", "--std=c++14", *math_flags]
    key = _key("nvcc", nvcc, version.strip().splitlines()[-1:], flags, prog.source)

    def produce_nvcc(work: str) -> str:
        with open(os.path.join(work, "module.cu"), "w", encoding="ascii") as fh:
            fh.write(prog.source)
        _run([nvcc, *flags, "-o", "module.cubin", "module.cu"], work, "nvcc")
        return os.path.join(work, "module.cubin")

    path, source = _cached(key, ".cubin", directory, produce_nvcc)
    return path, source, "nvcc " + (version.strip().splitlines()[-1:] or ["?"])[0]


# ---------------------------------------------------------------- arguments

def _collapse(shape: tuple, strides: tuple, batched: bool) -> tuple[int, int] | None:
    """Element strides ``(point, component)`` of an array holding one input per point, or None if uneven.

    ``shape``/``strides`` (bytes) are the array's; a batched array's first
    axis is the points.  The components (the other axes, flattened in C
    order) must be evenly spaced.

    >>> _collapse((5, 2, 3), (48, 24, 8), True), _collapse((5, 2, 3), (8, 120, 40), True)
    ((6, 1), (1, 5))
    >>> _collapse((5, 2, 3), (8, 40, 160), True) is None
    True
    """
    point = strides[0] if batched else 0
    dims = [(n, s) for n, s in zip(shape[1:] if batched else shape, strides[1:] if batched else strides) if n != 1]
    component = dims[-1][1] if dims else 8
    for (n0, s0), (n1, s1) in zip(dims, dims[1:]):
        if s0 != s1 * n1:
            return None
    if point % 8 or component % 8:
        return None
    return point // 8, component // 8


def _is_device_array(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return False
    if hasattr(value, "__cuda_array_interface__"):
        return True
    device = getattr(value, "__dlpack_device__", None)
    if device is None:
        return False
    try:
        kind = device()[0]
    except Exception:
        return False
    return int(kind) in (2, 3, 13)  # kDLCUDA, kDLCUDAHost, kDLCUDAManaged


def _pack(results: list, single: bool):
    return results[0] if single else tuple(results)


class _BatchBase:
    """What the GPU and the host CUDA Functions share: metadata, argument checks, output shapes."""

    target = ""

    def __init__(self, F: Any, G: Any, prog: CudaProgram, options: dict) -> None:
        self.function = F
        self.compiled = G
        self.program = prog
        self.options = dict(options)
        self.name = F.name
        self.work_size = prog.work_size
        self._in_sizes = list(prog.in_sizes)
        self._out_sizes = list(prog.out_sizes)
        self._sparse = [None if sp is None else csc_order(sp)[1:] for sp in F.output_sparsity]
        self._single = F.n_out == 1

    @property
    def source(self) -> str:
        """The CUDA C++ source (also host C++)."""
        return self.program.source

    @property
    def output_sparsity(self) -> tuple:
        """Per output: None (dense) or ``(rows, cols, shape)``, as ``Function.output_sparsity``."""
        return self.function.output_sparsity

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.function!r})"

    def _check_options(self, shared: Any, layout: Any, out: Any) -> list[int]:
        if layout not in ("soa", "aos"):
            raise OptionError(f"{self.name}.batch(): layout must be 'soa' (component-major) or 'aos' "
                              f"(point-major), got {layout!r}")
        if out not in ("device", "host"):
            raise OptionError(f"{self.name}.batch(): out must be 'device' or 'host', got {out!r}")
        items = [shared] if isinstance(shared, (int, str)) else shared
        try:
            items = list(items)
        except TypeError:
            raise OptionError(f"{self.name}.batch(): shared must be argument indices or names, got {shared!r}") from None
        names = self.function.input_names
        indices = []
        for item in items:
            if isinstance(item, str) and item in names:
                indices.append(names.index(item))
            elif isinstance(item, (int, np.integer)) and not isinstance(item, bool) and -len(names) <= item < len(names):
                indices.append(int(item) % len(names))
            else:
                raise OptionError(f"{self.name}.batch(): shared entry {item!r} is not an argument index in "
                                  f"[0, {len(names)}) or one of the names {names}")
        return indices

    def _host_argument(self, k: int, value: Any) -> np.ndarray:
        arr = as_number_array(f"{self.name}: argument {k} ({self.function.input_names[k]!r})", value)
        if arr.dtype.kind == "c":
            raise DTypeError(f"{self.name}: argument {k} ({self.function.input_names[k]!r}) is complex; CUDA "
                             "Functions evaluate float64 only; use the VM, F.batch(...), for complex step")
        return arr if arr.dtype == _F64 else arr.astype(np.float64)

    def _arrange(self, args: tuple, shared: list, check: Callable) -> tuple[list, list, int]:
        if len(args) != self.function.n_in:
            raise ArgumentCountError(f"{self.name} takes {self.function.n_in} argument(s) "
                                     f"({', '.join(self.function.input_names)}), got {len(args)}")
        arrays, batched, n = batch_arguments(self.function, args, check)
        for k in shared:
            if batched[k]:
                raise ShapeError(f"{self.name}: argument {k} ({self.function.input_names[k]!r}) is listed in "
                                 f"shared=, so it must have the input's shape {self.function.input_shapes[k]}, "
                                 f"got {tuple(arrays[k].shape)}")
        return arrays, batched, n

    def _results(self, outs: list, n: int):
        results = []
        for values, shape, pattern in zip(outs, self.function.output_shapes, self._sparse):
            results.append(values.reshape((n,) + shape) if pattern is None else SparseBatch(values, *pattern))
        return _pack(results, self._single)

    def __call__(self, *args: Any):
        """Evaluate one point (a batch of one, on the host): the same results as ``F(*args)``."""
        results = self.batch(*args, out="host")
        results = [results] if self._single else list(results)
        one = []
        for r, pattern in zip(results, self._sparse):
            if pattern is None:
                value = r[0]
                one.append(value[()] if isinstance(value, np.ndarray) and value.ndim == 0 else value)
            else:
                one.append(r[0])
        return _pack(one, self._single)


# ---------------------------------------------------------------- host build

class CudaHostFunction(_BatchBase):
    """The CUDA source of a Function built as host C++ and run on the CPU (``compile(target="cuda-host")``).

    ``batch(*args, shared=(), layout="soa")`` takes numpy arguments and returns
    numpy results exactly as :meth:`CudaFunction.batch` with ``out="host"``
    does (same layouts, same strided reads and writes), one point after the
    other: the check of the generated source on machines without a GPU.

    Attributes:
        function, compiled, program, options, work_size: as :class:`CudaFunction`.
        library_path: the shared library; ``cache_hit``: whether no compiler ran;
        compile_seconds: code generation and build (or cache lookup).
    """

    target = "cuda-host"

    def __init__(self, F: Any, G: Any, prog: CudaProgram, path: str, how: str, seconds: float,
                 options: dict) -> None:
        super().__init__(F, G, prog, options)
        self.library_path = path
        self.cache_hit = how != "compiled"
        self.compile_seconds = seconds
        try:
            self._lib = ctypes.CDLL(path)
            self._fn = getattr(self._lib, prog.host_entry)
        except (OSError, AttributeError) as exc:
            raise CompileError(f"cannot load the host build {path} of {F.name} ({exc})") from None
        self._fn.restype = ctypes.c_int

    def batch(self, *args: Any, shared: Any = (), layout: str = "soa", out: str = "host"):
        """Evaluate N points on the CPU through the CUDA source; numpy in, numpy out (``out`` must be "host").

        >>> import numpy as np, symgraph as sg
        >>> x = sg.symbols("x", 2)
        >>> H = sg.Function("f", [x], [x[0] * x[1]]).compile(target="cuda-host")   # doctest: +SKIP
        >>> H.batch(np.array([[1.0, 2.0], [3.0, 4.0]])).tolist()                    # doctest: +SKIP
        [2.0, 12.0]
        """
        shared_k = self._check_options(shared, layout, "device" if out == "host" else out)
        if out != "host":
            raise OptionError(f"{self.name}.batch(): a cuda-host Function returns host arrays (out='host'), got {out!r}")
        arrays, batched, n = self._arrange(args, shared_k, self._host_argument)
        ptrs, ap, aj, keep = [], [], [], []
        for k, (arr, b) in enumerate(zip(arrays, batched)):
            if b and layout == "soa" and self._in_sizes[k] > 1 and _collapse(arr.shape, arr.strides, b) != (1, n):
                arr = np.ascontiguousarray(arr.reshape(n, -1).T).T  # component-major, as the GPU path copies
            strides = _collapse(arr.shape, arr.strides, b)
            if strides is None:
                arr = np.ascontiguousarray(arr)
                strides = _collapse(arr.shape, arr.strides, b)
            keep.append(arr)
            ptrs.append(arr.ctypes.data if arr.size else 0)
            ap.append(strides[0])
            aj.append(strides[1])
        outs, rp, rj, rptrs = [], [], [], []
        for size in self._out_sizes:
            buf = _allocate(np, (size, n) if layout == "soa" else (n, size), self.name)
            view = buf.T if layout == "soa" else buf
            outs.append(view)
            rptrs.append(buf.ctypes.data if buf.size else 0)
            rp.append(1 if layout == "soa" else size)
            rj.append(n if layout == "soa" else 1)
        work = np.empty(max(1, self.work_size))
        if n:
            c_ptrs = (ctypes.c_void_p * max(1, len(ptrs)))(*ptrs)
            c_rptrs = (ctypes.c_void_p * max(1, len(rptrs)))(*rptrs)
            longs = [(ctypes.c_long * max(1, len(v)))(*v) for v in (ap, aj, rp, rj)]
            self._fn(ctypes.c_long(n), c_ptrs, longs[0], longs[1], c_rptrs, longs[2], longs[3],
                     work.ctypes.data_as(ctypes.c_void_p))
        return self._results(outs, n)


def _allocate(xp: Any, shape: tuple, name: str):
    try:
        return xp.empty(shape, dtype=np.float64)
    except MemoryError as exc:
        where = "host" if xp is np else "device"
        raise BatchMemoryError(f"{name}: cannot allocate {_bytes(math.prod(shape) * 8)} of {where} "
                               f"memory for a batch output ({exc}); use fewer points per batch") from None


def _bytes(n: float) -> str:
    """``n`` bytes in words: ``_bytes(3 * 2**30) == '3.0 GiB'``."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} bytes"


# ---------------------------------------------------------------- GPU

class CudaFunction(_BatchBase):
    """A Function compiled for a CUDA GPU: ``batch(*args, shared=(), out="device", layout="soa")``.

    See the module docstring for the arguments and layouts.

    Attributes:
        function: the original Function; ``compiled``: the optimized one the code came from.
        program: the :class:`~codegen.cuda.CudaProgram` (``source``: the CUDA C++).
        binary_path: the cubin (or PTX) in the cache; ``compiler``: what built it;
        cache_hit: whether no compiler ran; compile_seconds: code generation, build
        (or cache lookup) and loading; generate_seconds: code generation alone.
        device: the GPU's number.
    """

    target = "cuda"

    def __init__(self, F: Any, G: Any, prog: CudaProgram, path: str, how: str, compiler: str, generated: float,
                 seconds: float, cupy: Any, device: int, block_size: int, options: dict) -> None:
        super().__init__(F, G, prog, options)
        self.binary_path = path
        self.cache_hit = how != "compiled"
        self.compiler = compiler
        self.device = device
        self.generate_seconds = generated
        self._cupy = cupy
        start = time.perf_counter()
        with cupy.cuda.Device(device):
            try:
                module = _MODULES.get((path, device))
                if module is None:
                    module = _MODULES.setdefault((path, device), cupy.RawModule(path=path))
                self._kernel = module.get_function(prog.kernel)
            except Exception as exc:
                raise CompileError(f"cannot load the CUDA module {path} of {F.name} on device {device} "
                                   f"({type(exc).__name__}: {exc})") from None
            attributes = cupy.cuda.Device(device).attributes
            self._sm_count = int(attributes.get("MultiProcessorCount", 1))
            limit = int(getattr(self._kernel, "max_threads_per_block", block_size) or block_size)
            self.block_size = max(32, min(block_size, limit) // 32 * 32)
            try:
                per_sm = int(cupy.cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor(
                    self._kernel.ptr, self.block_size, 0))
            except Exception:
                per_sm = 8
            self._blocks_per_sm = max(1, per_sm)
        self.compile_seconds = seconds + time.perf_counter() - start

    # ------------------------------------------------------------ arguments
    def _device_argument(self, k: int, value: Any) -> Any:
        cupy = self._cupy
        label = f"{self.name}: argument {k} ({self.function.input_names[k]!r})"
        if isinstance(value, cupy.ndarray):
            arr = value
        elif hasattr(value, "__cuda_array_interface__"):
            arr = cupy.asarray(value)
        elif _is_device_array(value):
            try:
                arr = cupy.from_dlpack(value)
            except Exception as exc:
                raise DeviceError(f"{label}: the DLPack array cannot be read by CuPy ({exc})") from None
        else:
            return self._host_argument(k, value)
        if arr.dtype != _F64:
            raise DTypeError(f"{label}: device arrays must be float64 (CUDA Functions compute in double "
                             f"precision), got {arr.dtype}; convert it first, e.g. x.astype('float64')")
        if arr.device.id != self.device:
            raise DeviceError(f"{label} is on CUDA device {arr.device.id}, but {self.name} runs on device "
                              f"{self.device}; copy it there or compile with device={arr.device.id}")
        return arr

    # ------------------------------------------------------------ batch
    def batch(self, *args: Any, shared: Any = (), out: str = "device", layout: str = "soa",
              chunk_points: int | None = None):
        """Evaluate N points on the GPU; see the module docstring.

        Args:
            args: one per input: numpy or device arrays of shape ``(N,) + shape`` (or ``shape``: shared).
            shared: argument indices or names that must be shared (have the input's shape).
            out: ``"device"`` (CuPy arrays) or ``"host"`` (numpy arrays).
            layout: ``"soa"`` (component-major outputs, coalesced) or ``"aos"`` (point-major).
            chunk_points: at most this many points per kernel launch (default: as many as fit in memory).

        Raises :class:`~symgraph.errors.ShapeError`, :class:`~symgraph.errors.DTypeError`,
        :class:`~symgraph.errors.DeviceError` for bad arguments, and
        :class:`~symgraph.errors.BatchMemoryError` when ``out="device"`` results do not fit on the GPU.
        """
        cupy = self._cupy
        shared_k = self._check_options(shared, layout, out)
        if chunk_points is not None and (isinstance(chunk_points, bool) or not isinstance(chunk_points, int)
                                         or chunk_points < 1):
            raise OptionError(f"{self.name}.batch(): chunk_points must be a positive int or None, got {chunk_points!r}")
        with cupy.cuda.Device(self.device):
            arrays, batched, n = self._arrange(args, shared_k, self._device_argument)
            on_host = [not isinstance(a, cupy.ndarray) for a in arrays]
            out_total = sum(self._out_sizes)
            # host arguments of every point and device outputs of a chunk are what a chunk needs on the GPU
            per_point = 8 * (sum(s for s, b, h in zip(self._in_sizes, batched, on_host) if b and h)
                             + (out_total if out == "host" else 0))
            free = self._free_bytes()
            if out == "device":
                need = 8 * out_total * n
                if need > free:
                    raise BatchMemoryError(f"{self.name}: the results of {n} points need {_bytes(need)} on "
                                           f"the GPU, {_bytes(free)} are free; pass out='host' (the batch "
                                           "then runs in chunks) or fewer points")
                free -= need
            chunk = n if per_point == 0 else max(1, min(n, int(free * MEMORY_FRACTION) // per_point))
            if chunk_points is not None:
                chunk = min(chunk, chunk_points)
            dev_args = [cupy.asarray(np.ascontiguousarray(a)) if h and not b else a
                        for a, b, h in zip(arrays, batched, on_host)]
            if out == "device":
                bufs = [_allocate(cupy, (s, n) if layout == "soa" else (n, s), self.name) for s in self._out_sizes]
                results = [b.T if layout == "soa" else b for b in bufs]
            else:
                bufs = [_allocate(np, (s, n) if layout == "soa" else (n, s), self.name) for s in self._out_sizes]
                results = [b.T if layout == "soa" else b for b in bufs]
            for start in range(0, n, max(1, chunk)):
                stop = min(n, start + chunk)
                self._run_chunk(start, stop, n, arrays, dev_args, batched, on_host, results, out, layout)
            if out == "host":
                cupy.cuda.get_current_stream().synchronize()
            return self._results(results, n)

    def _free_bytes(self) -> int:
        cupy = self._cupy
        free, _ = cupy.cuda.runtime.memGetInfo()
        return int(free) + int(cupy.get_default_memory_pool().free_bytes())

    def _run_chunk(self, start: int, stop: int, n: int, arrays: list, dev_args: list, batched: list,
                   on_host: list, results: list, out: str, layout: str) -> None:
        cupy = self._cupy
        m = stop - start
        params: list = [np.int64(m)]
        keep = []
        for k, (a, b, h) in enumerate(zip(dev_args, batched, on_host)):
            if b and h:  # a host batch: this chunk's points, in the layout asked for
                part = a.reshape(n, -1)[start:stop]
                if layout == "soa" and self._in_sizes[k] > 1:
                    dev = cupy.asarray(np.ascontiguousarray(part.T)).T
                else:
                    dev = cupy.asarray(np.ascontiguousarray(part))
                strides = _collapse(dev.shape, dev.strides, True)
            else:
                dev = a
                strides = _collapse(dev.shape, dev.strides, b)
                if strides is None:  # components not evenly spaced: one contiguous copy
                    dev = cupy.ascontiguousarray(dev)
                    strides = _collapse(dev.shape, dev.strides, b)
                if b:
                    dev = dev[start:stop]
            keep.append(dev)
            params += [np.uint64(dev.data.ptr), np.int64(strides[0]), np.int64(strides[1])]
        for k, (r, size) in enumerate(zip(results, self._out_sizes)):
            if out == "device":
                target = r[start:stop]
            else:
                target = _allocate(cupy, (size, m) if layout == "soa" else (m, size), self.name)
                target = target.T if layout == "soa" else target
            keep.append(target)
            strides = _collapse(target.shape, target.strides, True)
            params += [np.uint64(target.data.ptr), np.int64(strides[0]), np.int64(strides[1])]
        block = self.block_size
        grid = max(1, min(math.ceil(m / block), self._sm_count * self._blocks_per_sm))
        scratch = None
        if not self.program.local_work:
            grid = max(1, min(grid, SCRATCH_BYTES // (8 * self.work_size * block)))
            scratch = cupy.empty(grid * block * self.work_size, dtype=np.float64)
        params.append(np.uint64(0 if scratch is None else scratch.data.ptr))
        if m:
            self._kernel((grid,), (block,), tuple(params))
        if out == "host":
            for r, target in zip(results, keep[len(dev_args):]):
                r[start:stop] = cupy.asnumpy(target)
        del keep, scratch
