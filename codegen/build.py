"""Compile generated C into a shared library, cache it on disk, load it with cffi.

The C compiler is run directly (one process per translation unit, in
parallel, then one link), and the library is loaded with cffi's ABI mode
(``ffi.dlopen``): no setuptools, no Python headers, and any C compiler
works, ``tcc`` included (see docs/design.md for the measurements).

Cache: ``$SYMGRAPH_CACHE_DIR`` (default ``~/.cache/symgraph``) holds
``KEY.so`` and ``KEY.json``, where ``KEY`` hashes the sources, the flags, the
compiler (path and version), the cffi version and the platform.  Entries are
built in ``build-KEY-*`` directories and moved into place with
``os.replace``; the JSON records the library's SHA-256, checked before every
load, so a truncated or corrupt entry is rebuilt, never loaded.  A per-key
file lock (``fcntl.flock``) makes concurrent processes build an entry once;
a ``build-KEY-*`` directory whose lock nobody holds was left by a killed
build and is removed.  A read-only cache directory is still read; only a
miss is compiled into a temporary directory (with a
:class:`~symgraph.errors.BackendWarning`), removed when the process exits.
Every failure (no library written, disk full, a damaged entry, the cache
removed while compiling) is a :class:`~symgraph.errors.CompileError` that
says what happened to which path.

>>> cc = find_compiler()
>>> cc.family in ("gcc", "tcc")
True
>>> lib = build([("one.c", "int one(void) { return 1; }\\n")], "int one(void);")
>>> lib.lib.one()
1
"""

from __future__ import annotations

import atexit
import contextlib
import errno
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
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import cffi

from symgraph.errors import BackendWarning, CompileError, CompilerNotFoundError, OptionError

from .c99 import CODEGEN_VERSION

ENV_CACHE = "SYMGRAPH_CACHE_DIR"
DEFAULT_FLAGS: tuple[str, ...] = ("-O2",)
# Always passed to gcc-like compilers: position-independent C99, and no
# contraction of a*b+c into fma (keeps results IEEE-identical to the VM even with -march=native).
BASE_FLAGS: tuple[str, ...] = ("-std=c99", "-fPIC", "-ffp-contract=off")
# Flags that make gcc (before 13) and clang link start-up objects into the library that change
# floating point for the whole process when it is loaded: crtfastmath.o sets flush-to-zero and
# denormals-are-zero, crtprec*.o the x87 precision.  They are kept for compiling, left out of the
# link (where they do nothing else), so a -ffast-math Function cannot change numpy or other code.
PROCESS_WIDE_LINK_FLAGS = frozenset(("-ffast-math", "-funsafe-math-optimizations", "-mdaz-ftz",
                                     "-mpc32", "-mpc64", "-mpc80"))
CANDIDATES: tuple[str, ...] = ("cc", "gcc", "clang")

# Counters for tests and benchmarks, in this process: compiler runs a caller waited for ("compiles"),
# compiler runs of background tier upgrades ("background_compiles", see codegen.runtime), cache hits of
# libraries ("disk_hits", "memory_hits") and of function entries found before any work ("function_hits").
STATS = {"compiles": 0, "background_compiles": 0, "disk_hits": 0, "memory_hits": 0, "function_hits": 0}

_LOADED: dict[str, "Library"] = {}
_VERSIONS: dict[tuple, str] = {}
_FALLBACK: dict[str, str] = {}
_CLEANED: set[str] = set()
_MUTEX = threading.Lock()
STALE_SECONDS = 24 * 3600  # build directories not named after a key: removed after a day
ENTRY_PREFIX = "fn-"  # function entries (codegen.runtime): fn-KEY.npz beside the libraries
ENTRY_TMP_PREFIX = ".fn-tmp-"  # a function entry being written (renamed into place when complete)
_ENTRIES: dict[str, tuple] = {}  # function entries read or written in this process: key -> (meta, tables)
_CHILDREN: dict = {}  # compiler processes running now -> background? (killed at interpreter exit)
_WORKDIRS: dict = {}  # build directories in use now -> background? (removed at interpreter exit)
_EXITING = threading.Event()  # set at interpreter exit: background builds stop quietly


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
    if compiler is not None:
        if isinstance(compiler, os.PathLike):
            compiler = os.fspath(compiler)
        if not isinstance(compiler, str) or not compiler:
            raise OptionError(f"compiler must be a compiler name or path (non-empty str), got {compiler!r}")
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


def check_cache_dir(path: Any) -> str | None:
    """``path`` as a str, or None for the default; :class:`~symgraph.errors.OptionError` if it is no path.

    >>> check_cache_dir(None), check_cache_dir(b"/tmp/c")
    (None, '/tmp/c')
    """
    if path is None:
        return None
    if isinstance(path, (bytes, os.PathLike)):
        path = os.fsdecode(path)
    if not isinstance(path, str) or not path:
        raise OptionError(f"cache_dir must be a directory path (non-empty str or os.PathLike) or None for "
                          f"${ENV_CACHE} or ~/.cache/symgraph, got {path!r}")
    return path


def check_jobs(jobs: Any) -> int | None:
    """``jobs`` if it is None or an int >= 1, else :class:`~symgraph.errors.OptionError`."""
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise OptionError(f"jobs must be a number of parallel compiler processes (int >= 1) or None "
                          f"for the CPU count, got {jobs!r}")
    return jobs


def _wanted(path: str | None) -> str:
    path = check_cache_dir(path)
    wanted = path or os.environ.get(ENV_CACHE) or os.path.join(os.path.expanduser("~"), ".cache", "symgraph")
    return os.path.abspath(wanted)


def untrusted_reason(path: str) -> str | None:
    """Why libraries in the directory ``path`` must not be loaded, or None where they may.

    A library in the cache is loaded into this process (``dlopen`` runs its
    code), so the directory must be owned by this user (or root) and not
    writable by everyone.  Group write is allowed (a team cache trusts its
    group, and user-private groups are common).  A directory that does not
    exist yet is fine (it is created private).

    >>> untrusted_reason(tempfile.mkdtemp()) is None
    True
    """
    if not hasattr(os, "geteuid"):
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    if st.st_uid not in (os.geteuid(), 0):
        return f"is owned by another user (uid {st.st_uid})"
    if st.st_mode & 0o002:
        return f"is writable by other users (mode {st.st_mode & 0o777:o})"
    return None


def cache_dir(path: str | None = None) -> str:
    """The directory new entries are written to: ``path``, else ``$SYMGRAPH_CACHE_DIR``, else ``~/.cache/symgraph``.

    Created if needed (private to this user); if it cannot be written, or
    others could write it (see :func:`untrusted_reason`), a temporary
    directory is used instead (removed when the process exits) and a
    :class:`~symgraph.errors.BackendWarning` says so.  Entries already in a
    read-only cache directory are still used (see :func:`build`).

    >>> os.path.isdir(cache_dir())
    True
    """
    wanted = _wanted(path)
    with _MUTEX:
        if wanted in _FALLBACK:
            return _FALLBACK[wanted]
    why = untrusted_reason(wanted)
    if why is None:
        try:
            os.makedirs(wanted, mode=0o700, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=wanted, prefix=".probe-")
            os.close(fd)
            os.remove(probe)
            return wanted
        except OSError as exc:
            why = "is not a directory" if os.path.exists(wanted) and not os.path.isdir(wanted) else \
                f"is not writable ({exc.strerror or exc})"
    with _MUTEX:
        if wanted not in _FALLBACK:
            if not _FALLBACK:
                atexit.register(_remove_fallbacks, os.getpid())
            _FALLBACK[wanted] = tempfile.mkdtemp(prefix="symgraph-cache-")
        fallback = _FALLBACK[wanted]
    warnings.warn(f"symgraph cache directory {wanted} {why}; compiling into the temporary directory "
                  f"{fallback} instead, removed at exit (set {ENV_CACHE} or cache_dir= to change it)",
                  BackendWarning, stacklevel=3)
    return fallback


def _remove_fallbacks(pid: int) -> None:
    """At exit: remove the temporary cache directories this process made (not a forked child's)."""
    if os.getpid() != pid:
        return
    for path in list(_FALLBACK.values()):
        shutil.rmtree(path, ignore_errors=True)


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


class _CacheVanished(Exception):
    """The cache directory disappeared while a library was being built in it (internal)."""


def build(units: Sequence[tuple[str, str]], cdef: str, compiler: str | Compiler | None = None,
          flags: Sequence[str] | None = None, jobs: int | None = None, directory: str | None = None, *,
          background: bool = False, expected: float | None = None, what: str = "",
          verbose: bool | None = None) -> Library:
    """Compile ``units`` (``[(file name, C text)]``) into a shared library and load it (cached).

    Args:
        units: translation units, compiled in parallel and linked together.
        cdef: C declarations of the symbols to use from Python (cffi ``cdef``).
        compiler: name, path or :class:`Compiler` (default: cc, gcc or clang).
        flags: optimization flags (default ``("-O2",)``); no ``-ffast-math`` unless given.
        jobs: parallel compiler processes (default: CPU count).
        directory: cache directory (default :func:`cache_dir`).
        background: a background tier upgrade (counted as ``STATS["background_compiles"]``).
        expected, what, verbose: the compile phase's estimated seconds, subject and display
            (see :func:`symgraph.progress.phase`).

    Raises :class:`~symgraph.errors.CompileError` with the compiler's message
    and the path of the kept sources when compilation fails, and with the
    path and the system's reason when the cache cannot be written.
    """
    directory = check_cache_dir(directory)
    jobs = check_jobs(jobs)
    flags = tuple(DEFAULT_FLAGS if flags is None else check_flags(flags))
    cc = compiler if isinstance(compiler, Compiler) else find_compiler(compiler)
    key = cache_key(units, cdef, cc, flags)
    with _MUTEX:
        if key in _LOADED:
            STATS["memory_hits"] += 1
            lib = _LOADED[key]
            return Library(lib.ffi, lib.lib, lib.path, key, "memory", 0.0, cc)
    start = time.perf_counter()
    wanted = _wanted(directory)
    found = None
    if untrusted_reason(wanted) is None:
        found = _load_verified(*_entry(wanted, key), cdef)  # a read-only cache is still read
    root = wanted
    if found is None:
        root = cache_dir(directory)
        if root != wanted:
            found = _load_verified(*_entry(root, key), cdef)
    source = "disk"
    if found is None:
        for attempt in (1, 2):
            try:
                found, source = _build_locked(units, cdef, cc, flags, jobs, root, key,
                                              (background, expected, what, verbose))
                break
            except _CacheVanished:
                if attempt == 2:
                    raise CompileError(f"the cache directory {root} was removed while a library was being "
                                       "built in it, twice; is another program cleaning it?") from None
                root = cache_dir(directory)  # made again
    if source == "disk":
        STATS["disk_hits"] += 1
    ffi, lib, so_path = found
    result = Library(ffi, lib, so_path, key, source, time.perf_counter() - start, cc)
    with _MUTEX:
        _LOADED.setdefault(key, result)
    return result


def _entry(root: str, key: str) -> tuple[str, str]:
    return os.path.join(root, key + ".so"), os.path.join(root, key + ".json")


def _build_locked(units, cdef, cc: Compiler, flags, jobs, root: str, key: str, how: tuple = (False, None, "", None)):
    """Under the key's lock: load what another process built meanwhile, else compile; ``(found, source)``."""
    from symgraph.progress import phase

    background, expected, what, verbose = how
    so_path, meta_path = _entry(root, key)
    with _file_lock(os.path.join(root, key + ".lock")):
        found = _load_verified(so_path, meta_path, cdef)  # another process may have built it
        if found is not None:
            return found, "disk"
        _clean_stale(root)
        size = sum(len(text) for _, text in units)
        with phase("compile", f"{what} with {cc.name} {' '.join(flags)}".strip(), size, "bytes of C",
                   expected, False if background else verbose):
            _compile_into(units, cc, flags, jobs, root, key, so_path, meta_path, background)
        with phase("load", what):
            return _load_built(so_path, meta_path, cdef, cc), "compiled"


def clear_memory_cache() -> None:
    """Forget libraries and function entries loaded in this process (the next build checks the disk again).

    >>> clear_memory_cache(); STATS["memory_hits"] >= 0
    True
    """
    with _MUTEX:
        _LOADED.clear()
        _ENTRIES.clear()


def check_flags(flags: Any) -> tuple[str, ...]:
    """``flags`` as a tuple if it is a list or tuple of non-empty str, else :class:`~symgraph.errors.OptionError`."""
    if isinstance(flags, (str, bytes)) or not isinstance(flags, (list, tuple)) \
            or not all(isinstance(f, str) and f for f in flags):
        raise OptionError(f"flags must be a sequence of str (a list or tuple of non-empty flags) such as "
                          f"('-O2', '-march=native'), got {flags!r}")
    return tuple(flags)


def _read_entry(so_path: str, meta_path: str):
    """The library's bytes if the entry exists and its checksum matches, else None."""
    try:
        with open(meta_path, "r", encoding="utf-8") as fh:
            meta = json.load(fh)
        with open(so_path, "rb") as fh:
            data = fh.read()
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("sha256") != hashlib.sha256(data).hexdigest():
        return None
    return data


def _load_verified(so_path: str, meta_path: str, cdef: str):
    """``(ffi, lib, so_path)`` if the entry exists, its checksum matches and it loads, else None."""
    if _read_entry(so_path, meta_path) is None:
        return None
    ffi = cffi.FFI()
    ffi.cdef(cdef)
    try:
        return ffi, ffi.dlopen(so_path), so_path
    except OSError:
        return None


def _load_built(so_path: str, meta_path: str, cdef: str, cc: Compiler):
    """Load the library just built, or say precisely why it cannot be."""
    if _read_entry(so_path, meta_path) is None:
        raise CompileError(f"the library just built at {so_path} failed its checksum; "
                           "is another program writing into the cache directory?")
    ffi = cffi.FFI()
    ffi.cdef(cdef)
    try:
        return ffi, ffi.dlopen(so_path), so_path
    except OSError as exc:
        raise CompileError(f"the library {cc.name} built at {so_path} cannot be loaded ({exc}); "
                           f"is {cc.path} a C compiler for this platform?") from None


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


def _clean_stale(root: str) -> None:
    """Remove ``build-KEY-*`` directories left by killed builds (once per directory and process).

    A build directory exists only while its key's lock is held, so one whose
    lock can be taken without waiting is stale.  Directories not named after a
    key (older versions) and stray probe files go once they are a day old.
    """
    with _MUTEX:
        if root in _CLEANED:
            return
        _CLEANED.add(root)
    try:
        import fcntl
    except ImportError:
        fcntl = None
    try:
        names = os.listdir(root)
    except OSError:
        return
    now = time.time()
    for name in names:
        path = os.path.join(root, name)
        if name.startswith((".probe-", ENTRY_TMP_PREFIX)):
            with contextlib.suppress(OSError):
                if now - os.lstat(path).st_mtime > STALE_SECONDS:
                    os.remove(path)
            continue
        if not name.startswith("build-") or not os.path.isdir(path):
            continue
        key = name[len("build-"):len("build-") + 64]
        if fcntl is None or len(key) != 64 or not all(c in "0123456789abcdef" for c in key):
            with contextlib.suppress(OSError):
                if now - os.lstat(path).st_mtime > STALE_SECONDS:
                    shutil.rmtree(path, ignore_errors=True)
            continue
        try:
            fh = open(os.path.join(root, key + ".lock"), "a+b")
        except OSError:
            continue
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # being built right now
            fh.close()
            continue
        try:
            shutil.rmtree(path, ignore_errors=True)
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            fh.close()


def _cache_error(exc: OSError, action: str, path: str, root: str, work: str | None = None) -> Exception:
    """The exception for an OS error while building: the cache vanished, or a CompileError saying what failed."""
    if not os.path.isdir(root) or (work is not None and not os.path.isdir(work)):
        return _CacheVanished(root)
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason += " (the disk or quota is full)"
    return CompileError(f"cannot {action} {path}: {reason}; the symgraph cache directory is {root}")


def _write_text(path: str, text: str) -> None:
    """Write one generated C file (tests replace this to simulate a full disk)."""
    with open(path, "w", encoding="ascii", newline="\n") as fh:
        fh.write(text)


def _install(source: str, target: str, root: str, work: str) -> None:
    """Move a finished file of the build directory into its place in the cache."""
    try:
        os.replace(source, target)
    except OSError as exc:
        if os.path.isdir(target):
            raise CompileError(f"the cache entry {target} is a directory, not a file, so the library cannot be "
                               f"stored; remove it (it is inside the symgraph cache directory {root})") from None
        raise _cache_error(exc, "store the cache entry", target, root, work) from None


def _compile_into(units, cc: Compiler, flags, jobs, root, key, so_path, meta_path, background=False) -> None:
    try:
        work = tempfile.mkdtemp(dir=root, prefix=f"build-{key}-")
    except OSError as exc:
        raise _cache_error(exc, "create a build directory in", root, root) from None
    with _MUTEX:
        _WORKDIRS[work] = background
    try:
        for name, text in units:
            path = os.path.join(work, name)
            try:
                _write_text(path, text)
            except OSError as exc:
                raise _cache_error(exc, "write the C source", path, root, work) from None
        STATS["background_compiles" if background else "compiles"] += 1
        if background:
            _run_compiler(units, cc, flags, jobs, work, root, key, background=True)
        else:  # (tests replace _run_compiler with a function of these seven arguments)
            _run_compiler(units, cc, flags, jobs, work, root, key)
        built = os.path.join(work, "lib.so")
        try:
            with open(built, "rb") as fh:
                digest = hashlib.sha256(fh.read()).hexdigest()
        except FileNotFoundError:
            if not os.path.isdir(work):
                raise _CacheVanished(root) from None
            raise CompileError(f"{cc.path} exited with status 0 but wrote no library ({built} is missing); "
                               f"is {cc.path} a C compiler? Pass compiler='gcc', 'clang' or 'tcc'") from None
        except OSError as exc:
            raise _cache_error(exc, "read the library just built", built, root, work) from None
        meta = {"sha256": digest, "compiler": cc.path, "version": cc.version, "flags": list(flags),
                "units": [name for name, _ in units], "codegen": CODEGEN_VERSION}
        tmp_meta = os.path.join(work, "meta.json")
        try:
            _write_text(tmp_meta, json.dumps(meta))
        except OSError as exc:
            raise _cache_error(exc, "write the cache entry's checksum", tmp_meta, root, work) from None
        if _EXITING.is_set() or (background and _BACKGROUND_EXIT.is_set()):
            raise CompileError("the interpreter is exiting: the library was not stored")
        _install(built, so_path, root, work)
        _install(tmp_meta, meta_path, root, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        with _MUTEX:
            _WORKDIRS.pop(work, None)


def link_flags(flags: Sequence[str]) -> list[str]:
    """``flags`` for the link step: without those that put process-wide start-up code into the library.

    >>> link_flags(["-O2", "-ffast-math", "-march=native"]), link_flags(["-Ofast"])
    (['-O2', '-march=native'], ['-O3'])
    """
    return ["-O3" if f == "-Ofast" else f for f in flags if f not in PROCESS_WIDE_LINK_FLAGS]


def compile_commands(units: Sequence[str], cc: Compiler, flags: Sequence[str], output: str) -> list[list[str]]:
    """The compiler command lines: one per unit then a link (gcc-like), or one (single unit, tcc).

    A single unit is compiled and linked by one command unless some flag must
    stay out of the link (:func:`link_flags`).

    >>> cmds = compile_commands(["a.c"], Compiler("/usr/bin/gcc", "gcc", "?"), ["-O2"], "lib.so")
    >>> cmds[0][:5]
    ['/usr/bin/gcc', '-std=c99', '-fPIC', '-ffp-contract=off', '-O2']
    >>> [c[1:] for c in compile_commands(["a.c"], Compiler("gcc", "gcc", "?"), ["-ffast-math"], "lib.so")]
    [['-std=c99', '-fPIC', '-ffp-contract=off', '-ffast-math', '-c', '-o', 'a.o', 'a.c'], ['-shared', '-o', 'lib.so', 'a.o', '-lm']]
    """
    if cc.family == "tcc":
        return [[cc.path, "-shared", *flags, "-o", output, *units, "-lm"]]
    linking = link_flags(flags)
    if len(units) == 1 and linking == list(flags):
        return [[cc.path, *BASE_FLAGS, *flags, "-shared", "-o", output, units[0], "-lm"]]
    objects = [u[:-2] + ".o" for u in units]
    steps = [[cc.path, *BASE_FLAGS, *flags, "-c", "-o", obj, u] for u, obj in zip(units, objects)]
    return steps + [[cc.path, *linking, "-shared", "-o", output, *objects, "-lm"]]


def _run_compiler(units, cc: Compiler, flags, jobs, work: str, root: str, key: str, background: bool = False) -> None:
    commands = compile_commands([name for name, _ in units], cc, flags, "lib.so")
    parallel, link = (commands[:-1], commands[-1:]) if len(commands) > 1 else (commands, [])
    jobs = max(1, jobs or os.cpu_count() or 1)

    def run(cmd):
        if not os.path.isdir(work):
            raise _CacheVanished(root)
        try:
            return cmd, _run_tracked(cmd, work, background)
        except OSError as exc:
            if not os.path.isdir(work):
                raise _CacheVanished(root) from None
            raise CompileError(f"cannot run the C compiler {cc.path} ({exc})") from None

    def check(results):
        for cmd, done in results:
            if done.returncode != 0:
                if _EXITING.is_set() or (background and _BACKGROUND_EXIT.is_set()):
                    raise CompileError(f"{cc.name} was stopped: the interpreter is exiting")
                if not os.path.isdir(work):
                    raise _CacheVanished(root)
                _compiler_failed(cc, cmd, done, work, root, key)

    check(_parallel(run, parallel, jobs))
    check([run(cmd) for cmd in link])


def _compiler_failed(cc: Compiler, cmd, done, work: str, root: str, key: str) -> None:
    kept = os.path.join(root, "failed", key)
    try:
        shutil.rmtree(kept, ignore_errors=True)
        os.makedirs(os.path.dirname(kept), exist_ok=True)
        shutil.copytree(work, kept)
        where = f"The C sources are kept in {kept}"
    except (OSError, shutil.Error) as exc:
        where = f"The C sources could not be kept ({exc})"
    message = (done.stderr or done.stdout).strip()
    if len(message) > 4000:
        message = message[:4000] + "\n... (truncated)"
    raise CompileError(f"{cc.name} failed with exit status {done.returncode}:\n  {' '.join(cmd)}\n"
                       f"{message}\n{where}")


# ------------------------------------------------------------ compiler processes and interpreter exit
def _parallel(run: Any, commands: list, jobs: int) -> list:
    """``[run(c) for c in commands]`` on up to ``jobs`` daemon threads (interpreter exit does not wait for them)."""
    if len(commands) <= 1 or jobs <= 1:
        return [run(c) for c in commands]
    results: list = [None] * len(commands)
    errors: list = []
    todo = iter(range(len(commands)))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                k = next(todo, None)
            if k is None or errors:
                return
            try:
                results[k] = run(commands[k])
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                errors.append(exc)

    threads = [threading.Thread(target=worker, daemon=True, name="symgraph-cc")
               for _ in range(min(jobs, len(commands)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def _run_tracked(cmd: list, cwd: str, background: bool = False) -> subprocess.CompletedProcess:
    """Run one compiler command, registered so that interpreter exit can kill it (see :func:`_stop_at_exit`)."""
    if _EXITING.is_set() or (background and _BACKGROUND_EXIT.is_set()):
        raise CompileError("the interpreter is exiting: no compiler is started")
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with _MUTEX:
        _CHILDREN[proc] = background
    try:
        out, err = proc.communicate()
    finally:
        with _MUTEX:
            _CHILDREN.pop(proc, None)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


_BACKGROUND_EXIT = threading.Event()  # set when the interpreter starts to exit: background builds stop


def _stop_background_at_exit() -> None:
    """When the main thread ends: stop background builds before Python waits for other threads."""
    _BACKGROUND_EXIT.set()
    _stop_at_exit(background_only=True)


def _stop_at_exit(background_only: bool = False) -> None:
    """At interpreter exit: kill compilers still running (background builds first) and remove their build
    directories.

    Finished entries are installed by atomic renames only, so nothing
    half-written is left in the cache; the killed build's key lock goes
    with the process.
    """
    if not background_only:
        _EXITING.set()
    with _MUTEX:
        children = [p for p, bg in _CHILDREN.items() if bg or not background_only]
        workdirs = [w for w, bg in _WORKDIRS.items() if bg or not background_only]
    for proc in children:
        with contextlib.suppress(OSError):
            proc.kill()
    for proc in children:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            proc.wait(timeout=10)
    for work in workdirs:
        shutil.rmtree(work, ignore_errors=True)


atexit.register(_stop_at_exit)
try:  # runs when the main thread ends, before non-daemon threads are joined
    threading._register_atexit(_stop_background_at_exit)  # type: ignore[attr-defined]
except (AttributeError, RuntimeError):
    pass


# ------------------------------------------------------------ function entries (codegen.runtime)
def _entry_path(root: str, key: str) -> str:
    return os.path.join(root, ENTRY_PREFIX + key + ".npz")


def store_entry(root: str, key: str, meta: dict, tables: Sequence[Any]) -> str | None:
    """Write the function entry ``key`` (JSON ``meta`` and numpy ``tables``) into ``root``; its path, or None.

    The entry is one ``.npz`` file (no pickles: ``meta`` as JSON bytes,
    the tables as arrays, with their SHA-256 in ``meta``) written under a
    temporary name and renamed into place, so a reader sees it whole or not
    at all.  A cache that cannot be written keeps no entry (the caller
    compiled anyway): None.

    >>> import numpy as np
    >>> root = tempfile.mkdtemp()
    >>> path = store_entry(root, "ab" * 32, {"x": 1}, [np.arange(3)])
    >>> load_entry("ab" * 32, root)[0]["x"], load_entry("cd" * 32, root)
    (1, None)
    """
    import numpy as np

    meta = dict(meta, tables_sha256=_tables_digest(tables))
    arrays = {f"t{k}": np.ascontiguousarray(t) for k, t in enumerate(tables)}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    target = _entry_path(root, key)
    try:
        fd, tmp = tempfile.mkstemp(dir=root, prefix=ENTRY_TMP_PREFIX + key[:16] + "-", suffix=".npz")
    except OSError:
        return None
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        if _EXITING.is_set():
            raise OSError("the interpreter is exiting")
        os.replace(tmp, target)
    except OSError:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        return None
    with _MUTEX:
        _ENTRIES[key] = (meta, tuple(arrays[f"t{k}"] for k in range(len(tables))))
    return target


def _tables_digest(tables: Sequence[Any]) -> str:
    import numpy as np

    h = hashlib.sha256()
    for t in tables:
        t = np.ascontiguousarray(t)
        h.update(f"{t.dtype.str}{t.shape}".encode())
        h.update(t.reshape(-1).view(np.uint8))
    return h.hexdigest()


def load_entry(key: str, directory: str | None = None) -> tuple[dict, tuple] | None:
    """The function entry ``key``: ``(meta, tables)`` from memory or the cache, else None.

    Read from the wanted cache directory (if trusted, see :func:`untrusted_reason`;
    a read-only one too) or the fallback one.  An entry that cannot be read,
    is not a valid archive, holds a pickle, or whose tables fail their
    checksum is treated as missing (and rebuilt by the caller).

    >>> load_entry("00" * 32) is None
    True
    """
    with _MUTEX:
        if key in _ENTRIES:
            STATS["function_hits"] += 1
            return _ENTRIES[key]
    roots = _readable_roots(directory)
    for root in roots:
        found = _read_function_entry(_entry_path(root, key))
        if found is not None:
            with _MUTEX:
                STATS["function_hits"] += 1
                return _ENTRIES.setdefault(key, found)
    return None


def _read_function_entry(path: str) -> tuple[dict, tuple] | None:
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            if not isinstance(meta, dict) or not isinstance(meta.get("tables"), int):
                return None
            tables = tuple(data[f"t{k}"] for k in range(meta["tables"]))
    except Exception:  # missing, truncated, not a zip, a pickle, bad JSON: a miss
        return None
    if meta.get("tables_sha256") != _tables_digest(tables):
        return None
    for t in tables:
        t.flags.writeable = False
    return meta, tables


def _readable_roots(directory: str | None) -> list[str]:
    """The cache directories an entry is looked up in: the wanted one (if trusted), then its fallback."""
    wanted = _wanted(directory)
    roots = [wanted] if untrusted_reason(wanted) is None else []
    with _MUTEX:
        if wanted in _FALLBACK:
            roots.append(_FALLBACK[wanted])
    return roots


def load_library(key: str, cdef: str, directory: str | None = None, compiler: Compiler | None = None
                 ) -> Library | None:
    """The cached library ``key`` (from memory, or verified from the cache), or None: no compiler runs.

    >>> load_library("00" * 32, "") is None
    True
    """
    with _MUTEX:
        if key in _LOADED:
            STATS["memory_hits"] += 1
            lib = _LOADED[key]
            return Library(lib.ffi, lib.lib, lib.path, key, "memory", 0.0, compiler or lib.compiler)
    start = time.perf_counter()
    roots = _readable_roots(directory)
    for root in roots:
        found = _load_verified(*_entry(root, key), cdef)
        if found is not None:
            STATS["disk_hits"] += 1
            ffi, lib, so_path = found
            result = Library(ffi, lib, so_path, key, "disk", time.perf_counter() - start, compiler)
            with _MUTEX:
                return _LOADED.setdefault(key, result)
    return None
