"""Compile generated C into a shared library, cache it on disk, load it with cffi.

The C compiler is run directly (one process per translation unit, in
parallel, then one link), and the library is loaded with cffi's ABI mode
(``ffi.dlopen``): no setuptools, no Python headers, and any C compiler
works, ``tcc`` included (see docs/design.md for the measurements).

Cache: ``$SYMGRAPH_CACHE_DIR`` (default ``~/.cache/symgraph``) holds
``KEY.so`` and ``KEY.json``, where ``KEY`` hashes the sources, the flags, the
compiler (path and version), the cffi version and the platform.  Entries are
written to a temporary name and moved into place with ``os.replace``; the
JSON records the library's SHA-256, checked before every load, so a
truncated or corrupt entry is rebuilt, never loaded.  A per-key file lock
(``fcntl.flock``) makes concurrent processes build an entry once.  An
unwritable cache directory falls back to a temporary directory with a
:class:`~symgraph.errors.BackendWarning`.

>>> cc = find_compiler()
>>> cc.family in ("gcc", "tcc")
True
>>> lib = build([("one.c", "int one(void) { return 1; }\\n")], "int one(void);")
>>> lib.lib.one()
1
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import cffi

from symgraph.errors import BackendWarning, CompileError, CompilerNotFoundError

from .c99 import CODEGEN_VERSION

ENV_CACHE = "SYMGRAPH_CACHE_DIR"
DEFAULT_FLAGS: tuple[str, ...] = ("-O2",)
# Always passed to gcc-like compilers: position-independent C99, and no
# contraction of a*b+c into fma (keeps results IEEE-identical to the VM even with -march=native).
BASE_FLAGS: tuple[str, ...] = ("-std=c99", "-fPIC", "-ffp-contract=off")
CANDIDATES: tuple[str, ...] = ("cc", "gcc", "clang")

# Counters for tests and benchmarks: compiler runs and cache hits in this process.
STATS = {"compiles": 0, "disk_hits": 0, "memory_hits": 0}

_LOADED: dict[str, "Library"] = {}
_VERSIONS: dict[tuple, str] = {}
_FALLBACK: dict[str, str] = {}
_MUTEX = threading.Lock()


@dataclass(frozen=True)
class Compiler:
    """A C compiler: resolved path, family (``gcc`` for gcc/clang-like, ``tcc``) and version text.

    >>> find_compiler().path.startswith("/")
    True
    """

    path: str
    family: str
    version: str

    @property
    def name(self) -> str:
        """Short name (file name of the executable)."""
        return os.path.basename(self.path)


@dataclass
class Library:
    """A loaded shared library: the cffi ``ffi`` and ``lib``, its path and how it was obtained.

    ``source`` is ``"compiled"``, ``"disk"`` (cache hit) or ``"memory"`` (already loaded).
    """

    ffi: Any
    lib: Any
    path: str
    key: str
    source: str
    seconds: float = 0.0
    compiler: Compiler | None = field(default=None, repr=False)

    @property
    def cache_hit(self) -> bool:
        """True when no compiler ran."""
        return self.source != "compiled"


def find_compiler(compiler: str | None = None) -> Compiler:
    """Resolve ``compiler`` (a name on PATH or a path; None: the first of cc, gcc, clang).

    Raises :class:`~symgraph.errors.CompilerNotFoundError` with a clear message when absent.

    >>> find_compiler("gcc").family
    'gcc'
    """
    if compiler is not None and not isinstance(compiler, str):
        raise CompileError(f"compiler must be a str (name or path), got {type(compiler).__name__}")
    names = CANDIDATES if compiler is None else (compiler,)
    for name in names:
        path = shutil.which(name)
        if path:
            path = os.path.realpath(path)
            family = "tcc" if "tcc" in os.path.basename(path) else "gcc"
            return Compiler(path, family, _version(path, family))
    looked = ", ".join(names)
    raise CompilerNotFoundError(
        f"no C compiler found (looked for {looked} on PATH); install one (e.g. 'apt-get install gcc' or "
        f"'apt-get install tcc') or pass compiler='/path/to/cc'. Evaluating with the numpy VM, F(...), "
        "works without a compiler.")


def _version(path: str, family: str) -> str:
    stat = os.stat(path)
    memo = (path, stat.st_mtime_ns, stat.st_size)
    if memo not in _VERSIONS:
        flag = "-v" if family == "tcc" else "--version"
        try:
            done = subprocess.run([path, flag], capture_output=True, text=True, timeout=60)
            text = (done.stdout or done.stderr).strip().splitlines()
            _VERSIONS[memo] = text[0] if text else "unknown"
        except (OSError, subprocess.SubprocessError) as exc:
            raise CompileError(f"cannot run the C compiler {path} ({exc})") from None
    return _VERSIONS[memo]


def cache_dir(path: str | None = None) -> str:
    """The cache directory: ``path``, else ``$SYMGRAPH_CACHE_DIR``, else ``~/.cache/symgraph``.

    Created if needed; if it cannot be written, a temporary directory is used
    instead and a :class:`~symgraph.errors.BackendWarning` says so.

    >>> os.path.isdir(cache_dir())
    True
    """
    wanted = path or os.environ.get(ENV_CACHE) or os.path.join(os.path.expanduser("~"), ".cache", "symgraph")
    wanted = os.path.abspath(wanted)
    if wanted in _FALLBACK:
        return _FALLBACK[wanted]
    try:
        os.makedirs(wanted, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=wanted, prefix=".probe-")
        os.close(fd)
        os.remove(probe)
        return wanted
    except OSError as exc:
        fallback = tempfile.mkdtemp(prefix="symgraph-cache-")
        _FALLBACK[wanted] = fallback
        warnings.warn(f"symgraph cache directory {wanted} is not writable ({exc.strerror or exc}); "
                      f"using the temporary directory {fallback} instead (set {ENV_CACHE} to change it)",
                      BackendWarning, stacklevel=3)
        return fallback


def cache_key(units: Sequence[tuple[str, str]], cdef: str, compiler: Compiler, flags: Sequence[str]) -> str:
    """SHA-256 over everything that determines the built library.

    >>> len(cache_key([("a.c", "int x;")], "", find_compiler(), ["-O2"]))
    64
    """
    h = hashlib.sha256()
    header = [CODEGEN_VERSION, compiler.path, compiler.family, compiler.version, list(flags), cdef,
              cffi.__version__, sys.platform, platform.machine(), [name for name, _ in units]]
    h.update(json.dumps(header).encode())
    for _, text in units:
        h.update(b"\0")
        h.update(text.encode())
    return h.hexdigest()


def build(units: Sequence[tuple[str, str]], cdef: str, compiler: str | Compiler | None = None,
          flags: Sequence[str] | None = None, jobs: int | None = None, directory: str | None = None) -> Library:
    """Compile ``units`` (``[(file name, C text)]``) into a shared library and load it (cached).

    Args:
        units: translation units, compiled in parallel and linked together.
        cdef: C declarations of the symbols to use from Python (cffi ``cdef``).
        compiler: name, path or :class:`Compiler` (default: cc, gcc or clang).
        flags: optimization flags (default ``("-O2",)``); no ``-ffast-math`` unless given.
        jobs: parallel compiler processes (default: CPU count).
        directory: cache directory (default :func:`cache_dir`).

    Raises :class:`~symgraph.errors.CompileError` with the compiler's message
    and the path of the kept sources when compilation fails.
    """
    cc = compiler if isinstance(compiler, Compiler) else find_compiler(compiler)
    flags = tuple(DEFAULT_FLAGS if flags is None else _check_flags(flags))
    key = cache_key(units, cdef, cc, flags)
    with _MUTEX:
        if key in _LOADED:
            STATS["memory_hits"] += 1
            lib = _LOADED[key]
            return Library(lib.ffi, lib.lib, lib.path, key, "memory", 0.0, cc)
    root = cache_dir(directory)
    so_path, meta_path = os.path.join(root, key + ".so"), os.path.join(root, key + ".json")
    start = time.perf_counter()
    loaded = _load_verified(so_path, meta_path, cdef)
    source = "disk"
    if loaded is None:
        with _file_lock(os.path.join(root, key + ".lock")):
            loaded = _load_verified(so_path, meta_path, cdef)  # another process may have built it
            if loaded is None:
                _compile_into(units, cc, flags, jobs, root, key, so_path, meta_path)
                loaded = _load_verified(so_path, meta_path, cdef)
                source = "compiled"
                if loaded is None:
                    raise CompileError(f"the library just built at {so_path} failed its checksum; "
                                       "is another program writing into the cache directory?")
    if source == "disk":
        STATS["disk_hits"] += 1
    ffi, lib = loaded
    result = Library(ffi, lib, so_path, key, source, time.perf_counter() - start, cc)
    with _MUTEX:
        _LOADED.setdefault(key, result)
    return result


def clear_memory_cache() -> None:
    """Forget libraries loaded in this process (the next build checks the disk cache again)."""
    with _MUTEX:
        _LOADED.clear()


def _check_flags(flags: Sequence[str]) -> tuple[str, ...]:
    if isinstance(flags, str) or not all(isinstance(f, str) for f in flags):
        raise CompileError(f"flags must be a sequence of str such as ('-O2', '-march=native'), got {flags!r}")
    return tuple(flags)


def _load_verified(so_path: str, meta_path: str, cdef: str):
    """``(ffi, lib)`` if the entry exists and its checksum matches, else None."""
    try:
        with open(meta_path, "r", encoding="utf-8") as fh:
            meta = json.load(fh)
        with open(so_path, "rb") as fh:
            data = fh.read()
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("sha256") != hashlib.sha256(data).hexdigest():
        return None
    ffi = cffi.FFI()
    ffi.cdef(cdef)
    try:
        return ffi, ffi.dlopen(so_path)
    except OSError:
        return None


@contextlib.contextmanager
def _file_lock(path: str) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: atomic renames alone keep the cache consistent
        yield
        return
    try:
        fh = open(path, "a+b")
    except OSError:
        yield
        return
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        fh.close()


def _compile_into(units, cc: Compiler, flags, jobs, root, key, so_path, meta_path) -> None:
    work = tempfile.mkdtemp(dir=root, prefix=f"build-{key[:12]}-")
    try:
        for name, text in units:
            with open(os.path.join(work, name), "w", encoding="ascii", newline="\n") as fh:
                fh.write(text)
        STATS["compiles"] += 1
        _run_compiler(units, cc, flags, jobs, work, root, key)
        built = os.path.join(work, "lib.so")
        with open(built, "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()
        os.replace(built, so_path)
        meta = {"sha256": digest, "compiler": cc.path, "version": cc.version, "flags": list(flags),
                "units": [name for name, _ in units], "codegen": CODEGEN_VERSION}
        tmp_meta = os.path.join(work, "meta.json")
        with open(tmp_meta, "w", encoding="utf-8") as fh:
            json.dump(meta, fh)
        os.replace(tmp_meta, meta_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def compile_commands(units: Sequence[str], cc: Compiler, flags: Sequence[str], output: str) -> list[list[str]]:
    """The compiler command lines: one per unit then a link (gcc-like), or one (single unit, tcc).

    >>> cmds = compile_commands(["a.c"], Compiler("/usr/bin/gcc", "gcc", "?"), ["-O2"], "lib.so")
    >>> cmds[0][:5]
    ['/usr/bin/gcc', '-std=c99', '-fPIC', '-ffp-contract=off', '-O2']
    """
    if cc.family == "tcc":
        return [[cc.path, "-shared", *flags, "-o", output, *units, "-lm"]]
    if len(units) == 1:
        return [[cc.path, *BASE_FLAGS, *flags, "-shared", "-o", output, units[0], "-lm"]]
    objects = [u[:-2] + ".o" for u in units]
    steps = [[cc.path, *BASE_FLAGS, *flags, "-c", "-o", obj, u] for u, obj in zip(units, objects)]
    return steps + [[cc.path, *flags, "-shared", "-o", output, *objects, "-lm"]]


def _run_compiler(units, cc: Compiler, flags, jobs, work: str, root: str, key: str) -> None:
    commands = compile_commands([name for name, _ in units], cc, flags, "lib.so")
    parallel, link = (commands[:-1], commands[-1:]) if len(commands) > 1 else (commands, [])
    jobs = max(1, jobs or os.cpu_count() or 1)

    def run(cmd):
        try:
            return cmd, subprocess.run(cmd, cwd=work, capture_output=True, text=True)
        except OSError as exc:
            raise CompileError(f"cannot run the C compiler {cc.path} ({exc})") from None

    with ThreadPoolExecutor(max_workers=min(jobs, len(parallel))) as pool:
        results = list(pool.map(run, parallel))
    for cmd in link:
        results.append(run(cmd))
    for cmd, done in results:
        if done.returncode != 0:
            kept = os.path.join(root, "failed", key)
            shutil.rmtree(kept, ignore_errors=True)
            os.makedirs(os.path.dirname(kept), exist_ok=True)
            shutil.copytree(work, kept)
            message = (done.stderr or done.stdout).strip()
            if len(message) > 4000:
                message = message[:4000] + "\n... (truncated)"
            raise CompileError(f"{cc.name} failed with exit status {done.returncode}:\n  {' '.join(cmd)}\n"
                               f"{message}\nThe C sources are kept in {kept}")
