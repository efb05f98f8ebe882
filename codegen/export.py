"""Standalone C export: ``NAME.c``, ``NAME.h`` and a ``NAME__demo.c`` main.

``NAME`` is the Function's C identifier (:func:`codegen.names.c_identifier`:
``sgf_norm2`` for ``norm2``), which also prefixes every C symbol, so files
and symbols of distinct Functions never collide.  The files need no Python:
``gcc -std=c99 -Wall -Wextra -Werror -c NAME.c`` compiles them, and
``gcc -std=c99 NAME.c NAME__demo.c -lm`` builds a demo that evaluates the
Function at fixed inputs (or at numbers given on its command line, input
scalar after input scalar) and prints every output.  Existing files are
never replaced unless ``overwrite=True``.

>>> import tempfile, symgraph as sg
>>> x = sg.symbols("x", 2)
>>> F = sg.Function("norm2", [x], [x @ x])
>>> paths = export_c(F, tempfile.mkdtemp())
>>> sorted(p.rsplit("/", 1)[1] for p in paths.values())
['sgf_norm2.c', 'sgf_norm2.h', 'sgf_norm2__demo.c']
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Any

import numpy as np

from symgraph.errors import InvalidInputError, OptionError, OverwriteError

from .c99 import program, single_file
from .names import c_comment, c_identifier, c_string


def demo_inputs(F: Any) -> list[np.ndarray]:
    """The input values the demo uses when given no arguments: ``0.5 + 0.125 * k`` for scalar ``k``.

    >>> import symgraph as sg
    >>> [a.tolist() for a in demo_inputs(sg.Function("f", [sg.symbols("y", 2)], [1.0]))]
    [[0.5, 0.625]]
    """
    values, k = [], 0
    for shape in F.input_shapes:
        size = int(np.prod(shape, dtype=np.int64))
        values.append((0.5 + 0.125 * np.arange(k, k + size, dtype=np.float64)).reshape(shape))
        k += size
    return values


def export_c(F: Any, directory: str, name: str | None = None, optimize: int = 1,
             overwrite: bool = False) -> dict:
    """Write ``NAME.c``, ``NAME.h`` and ``NAME__demo.c`` for ``F`` into ``directory``.

    ``NAME`` is the C identifier made from ``name`` (default ``F.name``) by
    :func:`codegen.names.c_identifier`; it names the files and prefixes every C
    symbol.  ``optimize`` is the optimizer level applied first, as in
    ``F.compile`` (0 exports ``F`` as is).  If any of the three files exists,
    nothing is written and :class:`~symgraph.errors.OverwriteError` is raised,
    unless ``overwrite=True`` (then each file is replaced atomically).
    Returns ``{"source": path, "header": path, "demo": path}``.
    """
    if isinstance(directory, bytes):
        directory = os.fsdecode(directory)
    if not isinstance(directory, (str, os.PathLike)) or not os.fspath(directory):
        raise InvalidInputError(f"export_c: directory must be a path, got {type(directory).__name__}"
                                f"{' (empty)' if isinstance(directory, str) else ''}")
    directory = os.fspath(directory)
    if isinstance(optimize, bool) or not isinstance(optimize, int) or optimize < 0:
        raise OptionError(f"export_c: optimize must be an optimizer level (int >= 0), got {optimize!r}")
    if not isinstance(overwrite, bool):
        raise OptionError(f"export_c: overwrite must be True or False, got {overwrite!r}")
    G = F.optimize(optimize) if optimize else F
    prog = program(G, name, optimize=optimize)  # callees optimized once at the same level
    cname = prog.name
    paths = {"source": os.path.join(directory, f"{cname}.c"),
             "header": os.path.join(directory, f"{cname}.h"),
             "demo": os.path.join(directory, prog.symbol("demo") + ".c")}
    header = prog.prelude(f"C interface of {c_comment(F.name)}") + "\n" + prog.declarations
    texts = {"source": single_file(prog, G, include_header=f"{cname}.h"),
             "header": header,
             "demo": _demo(G, prog)}
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise InvalidInputError(f"export_c: {directory} exists and is not a directory")
    if not overwrite:
        taken = [p for p in paths.values() if os.path.lexists(p)]
        if taken:
            raise OverwriteError(f"export_c: {', '.join(taken)} already exist{'s' if len(taken) == 1 else ''}; "
                                 "pass overwrite=True to replace, or export into another directory or name")
    os.makedirs(directory, exist_ok=True)
    _write_all(paths, texts, overwrite)
    return paths


def _write_all(paths: dict, texts: dict, overwrite: bool) -> None:
    """Write every file or none: each goes to a temporary name, then into place."""
    temps: dict[str, str] = {}
    placed: list[str] = []
    try:
        for key, path in paths.items():
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".export-", suffix=".tmp")
            temps[key] = tmp
            with os.fdopen(fd, "w", encoding="ascii", newline="\n") as fh:
                fh.write(texts[key])
        for key, path in paths.items():
            if overwrite:
                os.replace(temps[key], path)
            else:
                try:
                    os.link(temps[key], path)  # fails, rather than replaces, if the file appeared meanwhile
                except FileExistsError:
                    raise OverwriteError(f"export_c: {path} already exists (created while exporting); "
                                         "pass overwrite=True to replace it") from None
                except OSError:  # no hard links on this file system: exclusive creation instead
                    with open(path, "x", encoding="ascii", newline="\n") as fh:
                        fh.write(texts[key])
            placed.append(path)
    except BaseException:
        if not overwrite:
            for path in placed:
                with contextlib.suppress(OSError):
                    os.remove(path)
        raise
    finally:
        for tmp in temps.values():
            with contextlib.suppress(OSError):
                os.remove(tmp)


def _demo(F: Any, prog: Any) -> str:
    cname, work_size = prog.name, prog.work_size
    sizes_in = [int(np.prod(s, dtype=np.int64)) for s in F.input_shapes]
    sizes_out = [int(np.prod(s, dtype=np.int64)) if sp is None else len(sp[0])
                 for s, sp in zip(F.output_shapes, F.output_sparsity)]
    lines = ["/* Demo: evaluate " + cname + " once and print every output (no Python needed).",
             f" * Build: cc -std=c99 {cname}.c {prog.symbol('demo')}.c -lm",
             " * Run:   ./demo [input scalars...]  (missing scalars default to 0.5 + 0.125 * k) */",
             "#include <stdio.h>", "#include <stdlib.h>", f'#include "{cname}.h"', "",
             "int main(int argc, char **argv) {"]
    for i, size in enumerate(sizes_in):
        lines.append(f"  static double in{i}[{max(1, size)}];")
    for k, size in enumerate(sizes_out):
        lines.append(f"  static double out{k}[{max(1, size)}];")
    lines.append(f"  static double w[{max(1, work_size)}];")
    lines.append(f"  const double *arg[{max(1, len(sizes_in))}] = {{" +
                 (", ".join(f"in{i}" for i in range(len(sizes_in))) or "0") + "};")
    lines.append(f"  double *res[{max(1, len(sizes_out))}] = {{" +
                 (", ".join(f"out{k}" for k in range(len(sizes_out))) or "0") + "};")
    lines += ["  long j, k = 0;", "  int flag;"]
    for i, size in enumerate(sizes_in):
        lines += [f"  for (j = 0; j < {size}; ++j, ++k)",
                  f"    in{i}[j] = argc > 1 + k ? strtod(argv[1 + k], 0) : 0.5 + 0.125 * (double)k;"]
    lines += [f"  flag = {cname}(arg, res, w);",
              '  if (flag) { fprintf(stderr, "evaluation failed: %d\\n", flag); return 1; }']
    for k, size in enumerate(sizes_out):
        label = c_string(f"output {k} {F.output_names[k]}:")
        lines += [f"  printf(\"%s\", {label});",
                  f"  for (j = 0; j < {size}; ++j) printf(\" %.17g\", out{k}[j]);",
                  '  printf("\\n");']
    lines += ["  (void)k;", "  return 0;", "}", ""]
    return "\n".join(lines)


__all__ = ["export_c", "demo_inputs", "c_identifier"]
