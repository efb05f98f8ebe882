"""Standalone C export: ``NAME.c``, ``NAME.h`` and a ``NAME_demo.c`` main.

The files need no Python: ``gcc -std=c99 -Wall -Wextra -Werror -c NAME.c``
compiles them, and ``gcc -std=c99 NAME.c NAME_demo.c -lm`` builds a demo
that evaluates the Function at fixed inputs (or at numbers given on its
command line, input scalar after input scalar) and prints every output.

>>> import tempfile, symgraph as sg
>>> x = sg.symbols("x", 2)
>>> F = sg.Function("norm2", [x], [x @ x])
>>> paths = export_c(F, tempfile.mkdtemp())
>>> sorted(p.rsplit("/", 1)[1] for p in paths.values())
['norm2.c', 'norm2.h', 'norm2_demo.c']
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from symgraph.errors import InvalidInputError

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


def export_c(F: Any, directory: str, name: str | None = None, optimize: int = 1) -> dict:
    """Write ``NAME.c``, ``NAME.h`` and ``NAME_demo.c`` for ``F`` into ``directory``.

    ``name`` (default ``F.name``) is turned into a safe C identifier, which
    names the files and prefixes every C symbol.  ``optimize`` is the
    optimizer level applied first, as in ``F.compile`` (0 exports ``F`` as
    is).  Returns ``{"source": path, "header": path, "demo": path}``.
    """
    if not isinstance(directory, (str, os.PathLike)):
        raise InvalidInputError(f"export_c: directory must be a path, got {type(directory).__name__}")
    F = F.optimize(optimize) if optimize else F
    prog = program(F, name)
    cname = prog.name
    os.makedirs(directory, exist_ok=True)
    paths = {"source": os.path.join(directory, f"{cname}.c"),
             "header": os.path.join(directory, f"{cname}.h"),
             "demo": os.path.join(directory, f"{cname}_demo.c")}
    header = prog.prelude(f"C interface of {c_comment(F.name)}") + "\n" + prog.declarations
    texts = {"source": single_file(prog, F, include_header=f"{cname}.h"),
             "header": header,
             "demo": _demo(F, cname, prog.work_size)}
    for key, path in paths.items():
        with open(path, "w", encoding="ascii", newline="\n") as fh:
            fh.write(texts[key])
    return paths


def _demo(F: Any, cname: str, work_size: int) -> str:
    sizes_in = [int(np.prod(s, dtype=np.int64)) for s in F.input_shapes]
    sizes_out = [int(np.prod(s, dtype=np.int64)) if sp is None else len(sp[0])
                 for s, sp in zip(F.output_shapes, F.output_sparsity)]
    lines = ["/* Demo: evaluate " + cname + " once and print every output (no Python needed).",
             f" * Build: cc -std=c99 {cname}.c {cname}_demo.c -lm",
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
