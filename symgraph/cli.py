"""The ``symgraph`` command line: look at, export and draw saved Functions; manage the compiled-code cache.

A thin layer over the public API.  ``FILE`` is a Function saved with
``F.save(path)`` (:func:`symgraph.serialize.save`)::

    symgraph info FILE [--json]            name, inputs, outputs (shapes, nnz), op counts, calls
    symgraph debugprint FILE [--limit N]   the graph as text, each shared node once
    symgraph export FILE --out DIR         standalone C (NAME.c, NAME.h, NAME__demo.c)
    symgraph draw FILE --out graph.svg     a picture of the graph (Graphviz: svg, png, pdf, dot)
    symgraph spy FILE --output K --out pattern.png   the sparsity pattern of output K (matplotlib)
    symgraph cache info | clear            the compiled-code cache ($SYMGRAPH_CACHE_DIR)
    symgraph --version | --help

``python -m symgraph`` is the same.  Every error (unknown command, bad
option, missing or corrupt file, missing Graphviz or matplotlib) is one
line on stderr, ``symgraph: error: ...``, and exit status 2; success is 0.

>>> main(["--version"])  # doctest: +ELLIPSIS
symgraph ...
0
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import sys
from typing import Any, Sequence

__all__ = ["main", "cache_entries"]

EXIT_ERROR = 2
_KEY_FILE = re.compile(r"^([0-9a-f]{64})\.[A-Za-z0-9_.-]+$")  # KEY.so, KEY.json, KEY.lock, KEY.cubin, ...
_BUILD_DIR = re.compile(r"^build-([0-9a-f]{64})-")  # a build in progress (or killed)
_FUNCTION_FILE = re.compile(r"^(fn-[0-9a-f]{64})\.[A-Za-z0-9_.-]+$")  # fn-KEY.npz: a compiled Function's tables
_TEMPORARY = (".probe-", ".fn-tmp-")  # files being written: removed only once an hour old
TEMPORARY_SECONDS = 3600


class CommandLineError(Exception):
    """A one-line error for the user (printed as ``symgraph: error: ...``, exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so each error is one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CommandLineError(f"{message} (see 'symgraph {self._command()}--help')")

    def _command(self) -> str:
        words = self.prog.split()[1:]
        return " ".join(words) + " " if words else ""


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("symgraph")
    except Exception:  # not installed as a distribution (a source tree on sys.path)
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="symgraph", description="Look at, export and draw saved symgraph Functions "
                     "(files written by F.save(path)); manage the compiled-code cache.")
    parser.add_argument("--version", action="version", version=f"symgraph {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = commands.add_parser("info", help="name, inputs, outputs, op counts, calls and sparsity of a saved Function")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print the facts as one JSON object")

    p = commands.add_parser("debugprint", help="the graph as indented text, each shared node once")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--limit", type=_positive_int, default=None, help="print at most this many lines")

    p = commands.add_parser("export", help="write standalone C (NAME.c, NAME.h, NAME__demo.c) into a directory")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the C files (created if missing)")
    p.add_argument("--name", default=None, help="C name of the exported function (default: the Function's name)")
    p.add_argument("--optimize", type=_level, default=1, metavar="LEVEL", help="optimizer level first (default 1)")
    p.add_argument("--overwrite", action="store_true", help="replace existing files")

    p = commands.add_parser("draw", help="draw the graph to an SVG/PNG/PDF file through Graphviz")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--out", required=True, metavar="PATH", help="picture to write; the suffix gives the format")
    p.add_argument("--format", default=None, choices=("svg", "png", "pdf", "dot"), help="format (default: suffix)")
    p.add_argument("--max-nodes", type=_positive_int, default=None, metavar="N",
                   help="summarise graphs with more nodes than this (default 1000)")

    p = commands.add_parser("spy", help="plot the sparsity pattern of one output (matplotlib)")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--output", required=True, metavar="K", help="output index or name")
    p.add_argument("--out", required=True, metavar="PATH", help="picture to write (.png, .svg, .pdf)")

    p = commands.add_parser("cache", help="the compiled-code cache: 'info' or 'clear'")
    p.add_argument("action", choices=("info", "clear"), metavar="ACTION", help="info or clear")
    p.add_argument("--dir", default=None, metavar="DIR",
                   help="cache directory (default: $SYMGRAPH_CACHE_DIR, else ~/.cache/symgraph)")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _level(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an optimizer level (0, 1, 2, ...), got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an optimizer level (0, 1, 2, ...), got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    0 on success, 2 on any error (one line on stderr, never a traceback).

    >>> main(["cache", "frobnicate"])
    2
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = _parser()
        try:
            args = parser.parse_args(args_list)
        except SystemExit as exc:  # --help and --version print and exit 0
            return int(exc.code or 0)
        if args.command is None:
            raise CommandLineError("no command given; the commands are " + ", ".join(_COMMANDS)
                                   + " (see 'symgraph --help')")
        return _COMMANDS[args.command](args)
    except CommandLineError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into head: stop quietly
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")
        return 0
    except Exception as exc:  # SymgraphError and OSError from the API; anything else as one line too
        return _fail(_message(exc))


def _fail(message: str) -> int:
    text = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
    print(f"symgraph: error: {text}", file=sys.stderr)
    return EXIT_ERROR


def _message(exc: BaseException) -> str:
    from .errors import SymgraphError

    if isinstance(exc, SymgraphError):
        return str(exc)
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}"
    return f"unexpected {type(exc).__name__}: {exc} (please report this as a symgraph bug)"


# ---------------------------------------------------------------- loading


def _load(path: str) -> Any:
    from .serialize import load

    if not os.path.exists(path):
        raise CommandLineError(f"no such file: {path}")
    if os.path.isdir(path):
        raise CommandLineError(f"{path} is a directory, not a saved Function")
    return load(path)


# ---------------------------------------------------------------- commands


def _info(args: argparse.Namespace) -> int:
    from .pictures import _reachable, graph_summary

    F = _load(args.file)
    facts = graph_summary(F, max_cones=0)
    outputs = []
    for name, shape, sparsity in zip(F.output_names, F.output_shapes, F.output_sparsity):
        entry = {"name": name, "shape": list(shape)}
        if sparsity is not None:
            entry["sparse"], entry["nnz"] = True, int(len(sparsity[0]))
        outputs.append(entry)
    functions = []
    for G in _reachable(F)[1:]:
        structure = getattr(G, "structure", None)
        entry = {"name": G.name, "kind": structure.kind if structure is not None else "function"}
        if structure is not None:
            entry["description"] = structure.describe()
            if structure.body is not None:  # a map or fold (a native has no body)
                entry.update(n=int(structure.n), body=structure.body.name)
        else:
            entry["operations"] = graph_summary(G, max_cones=0).n_ops
        functions.append(entry)
    data = {"file": args.file, "name": F.name,
            "inputs": [{"name": n, "shape": list(s)} for n, s in zip(F.input_names, F.input_shapes)],
            "outputs": outputs, "operations": facts.n_ops, "op_counts": facts.op_counts,
            "calls": [{"callee": name, "structure": how, "count": n} for name, how, n in facts.callees],
            "functions_called": functions}
    structure = getattr(F, "structure", None)
    if structure is not None:
        data["structure"] = structure.describe()
    if args.json:
        print(json.dumps(data))
        return 0
    lines = [f"Function {F.name}" + (f" ({data['structure']})" if structure is not None else ""),
             f"inputs ({F.n_in}):"]
    lines += [f"  {i['name']}: {_shape(i['shape'])}" for i in data["inputs"]]
    lines.append(f"outputs ({F.n_out}):")
    for o in outputs:
        extra = f", sparse, nnz {o['nnz']}" if o.get("sparse") else ""
        lines.append(f"  {o['name']}: {_shape(o['shape'])}{extra}")
    if structure is not None:
        body = f"; body: {structure.body.name}" if structure.body is not None else ""
        lines.append(f"operations: one {structure.kind} node ({data['structure']}){body}")
    else:
        lines.append(f"operations: {facts.n_ops}")
        lines += [f"  {name}: {n}" for name, n in facts.op_counts.items()]
    if facts.callees and structure is None:
        lines.append(f"calls ({len(facts.callees)} distinct callee{'s' if len(facts.callees) > 1 else ''}):")
        lines += [f"  {name} x{n}: {how}" for name, how, n in facts.callees]
    if functions:
        lines.append("functions called (all levels):")
        for f in functions:
            lines.append(f"  {f['name']}: " + (f["description"] if f["kind"] != "function"
                                               else f"{f['operations']} operations"))
    print("\n".join(lines))
    return 0


def _shape(shape: list) -> str:
    return "scalar" if not shape else str(tuple(shape))


def _debugprint(args: argparse.Namespace) -> int:
    from .printing import debugprint

    print(debugprint(_load(args.file), limit=args.limit))
    return 0


def _export(args: argparse.Namespace) -> int:
    from .errors import OverwriteError

    F = _load(args.file)
    try:
        paths = F.export_c(args.out, name=args.name, optimize=args.optimize, overwrite=args.overwrite)
    except OverwriteError as exc:
        raise CommandLineError(f"{str(exc).split(';')[0]}; pass --overwrite to replace them") from None
    for kind in ("source", "header", "demo"):
        print(f"{kind}: {paths[kind]}")
    return 0


def _draw(args: argparse.Namespace) -> int:
    from .pictures import draw

    F = _load(args.file)
    options = {} if args.max_nodes is None else {"max_nodes": args.max_nodes}
    print(draw(F, args.out, format=args.format, **options))
    return 0


_SPY_FORMATS = ("png", "svg", "pdf")


def _spy(args: argparse.Namespace) -> int:
    suffix = os.path.splitext(args.out)[1].lstrip(".").lower()
    if suffix not in _SPY_FORMATS:
        raise CommandLineError(f"spy: cannot tell the picture format from {args.out!r}; "
                               f"use a suffix {', '.join('.' + s for s in _SPY_FORMATS)}")
    F = _load(args.file)
    k = _output_index(F, args.output)
    pattern = _output_positions(F, k)
    try:
        import matplotlib
    except ImportError:
        raise CommandLineError("spy needs matplotlib: pip install \"symgraph[plot]\"") from None
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from .pictures import spy

    fig = Figure(figsize=(6, 6))
    ax = fig.add_subplot()
    spy(pattern, ax=ax)
    ax.set_title(f"{F.name}: {F.output_names[k]}, {ax.get_title()}", pad=24)
    fig.savefig(args.out, format=suffix)
    print(args.out)
    return 0


def _output_index(F: Any, text: str) -> int:
    if text in F.output_names:
        return F.output_names.index(text)
    try:
        k = int(text)
    except ValueError:
        raise CommandLineError(f"{F.name} has no output {text!r}; its outputs are "
                               f"{', '.join(F.output_names)} (or an index 0..{F.n_out - 1})") from None
    if not 0 <= k < F.n_out:
        raise CommandLineError(f"output index {k} is out of range: {F.name} has {F.n_out} output(s)")
    return k


def _output_positions(F: Any, k: int) -> Any:
    """Output ``k``'s pattern: a sparse output's; a dense one's structural nonzeros, as a matrix.

    A scalar is a 1 x 1 matrix, a vector one column, and an array of more
    axes has its trailing axes flattened.
    """
    import numpy as np

    from .expr import CONST
    from .sparsity import Sparsity

    sparsity = F.output_sparsity[k]
    if sparsity is not None:
        return Sparsity(sparsity[0], sparsity[1], sparsity[2])
    values = F.outputs[k]
    shape = values.shape
    matrix = (1, 1) if not shape else (shape[0], 1) if len(shape) == 1 else (shape[0], values.size // shape[0])
    flat = values.reshape(-1)
    nonzero = np.array([not (e.op is CONST and e.data == 0) for e in flat.tolist()], dtype=bool)
    rows, cols = np.unravel_index(np.flatnonzero(nonzero), matrix)
    return Sparsity(rows, cols, matrix)


# ---------------------------------------------------------------- cache


ENV_CACHE = "SYMGRAPH_CACHE_DIR"  # as codegen.build.ENV_CACHE (not imported: 'cache' needs no compiler set-up)


def _cache_root(directory: str | None) -> str:
    path = directory or os.environ.get(ENV_CACHE) or os.path.join(os.path.expanduser("~"), ".cache", "symgraph")
    return os.path.abspath(path)


def cache_entries(root: str) -> dict:
    """symgraph's files in the cache directory ``root``, by key: ``{key: [names]}``.

    Only names symgraph writes there count: ``KEY.so``, ``KEY.json``,
    ``KEY.lock``, ``KEY.cubin`` and the like (``KEY``: 64 hex digits),
    ``build-KEY-*`` directories of builds in progress or killed,
    ``fn-KEY.npz`` (a compiled Function's tables, listed under ``fn-KEY``),
    and ``.probe-*`` and ``.fn-tmp-*`` files being written (listed under
    the key ``""``); anything else is left alone.

    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> open(os.path.join(root, "a" * 64 + ".so"), "w").close()
    >>> open(os.path.join(root, "notes.txt"), "w").close()
    >>> cache_entries(root) == {"a" * 64: ["a" * 64 + ".so"]}
    True
    """
    found: dict[str, list[str]] = {}
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return found
    for name in names:
        match = _KEY_FILE.match(name) or _BUILD_DIR.match(name) or _FUNCTION_FILE.match(name)
        if match:
            found.setdefault(match.group(1), []).append(name)
        elif name.startswith(_TEMPORARY):
            found.setdefault("", []).append(name)
    return found


def _size(path: str) -> int:
    try:
        st = os.lstat(path)
    except OSError:
        return 0
    if not os.path.isdir(path) or os.path.islink(path):
        return st.st_size
    total = 0
    for folder, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, f)).st_size
    return total


def _cache(args: argparse.Namespace) -> int:
    root = _cache_root(args.dir)
    if os.path.exists(root) and not os.path.isdir(root):
        raise CommandLineError(f"the cache path {root} is not a directory")
    entries = cache_entries(root)
    if args.action == "info":
        libraries = [key for key, names in entries.items() if _is_entry(key, names)]
        size = sum(_size(os.path.join(root, n)) for names in entries.values() for n in names)
        others = 0
        with contextlib.suppress(OSError):
            others = len(os.listdir(root)) - sum(len(names) for names in entries.values())
        print(f"directory: {root}" + ("" if os.path.isdir(root) else " (does not exist yet)"))
        tables = sum(key.startswith("fn-") for key in libraries)
        print(f"entries: {len(libraries)} ({len(libraries) - tables} compiled libraries, {tables} Function tables)")
        print(f"size: {size} bytes ({_human(size)})")
        if others:
            print(f"other files: {others} (not symgraph's; 'symgraph cache clear' leaves them)")
        return 0
    removed, busy, freed = 0, 0, 0
    for key, names in entries.items():
        with _key_lock(root, key) as free:
            if not free:
                busy += 1
                continue
            for name in names:
                path = os.path.join(root, name)
                if not key and not _older_than(path, TEMPORARY_SECONDS):
                    continue  # being written now
                size = _size(path)
                try:
                    if os.path.isdir(path) and not os.path.islink(path):
                        shutil.rmtree(path)
                    else:
                        os.remove(path)
                except FileNotFoundError:
                    continue
                freed += size
            removed += _is_entry(key, names)
    note = f"; {busy} being built now, kept" if busy else ""
    print(f"removed {removed} entries ({_human(freed)}) from {root}{note}")
    return 0


def _is_entry(key: str, names: list) -> bool:
    """True for a cache entry proper (a library, a Function's tables), not only a lock or a build directory."""
    return bool(key) and any(not n.endswith(".lock") and not n.startswith("build-") for n in names)


def _older_than(path: str, seconds: float) -> bool:
    import time

    try:
        return time.time() - os.lstat(path).st_mtime > seconds
    except OSError:
        return False


@contextlib.contextmanager
def _key_lock(root: str, key: str):
    """Hold ``KEY.lock`` without waiting (yields True), or yield False if a build holds it now."""
    if not key:
        yield True
        return
    try:
        import fcntl
    except ImportError:  # not POSIX: nothing to coordinate with
        yield True
        return
    path = os.path.join(root, key + ".lock")
    if not os.path.exists(path):
        yield True
        return
    try:
        fh = open(path, "a+b")
    except OSError:
        yield True
        return
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        yield True
    finally:
        fh.close()  # closing releases the lock


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


_COMMANDS = {"info": _info, "debugprint": _debugprint, "export": _export, "draw": _draw, "spy": _spy,
             "cache": _cache}
