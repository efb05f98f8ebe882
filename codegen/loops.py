"""C for structured callees: a map or a fold is a loop around its body's static function.

The body is emitted once like any callee (``void NAME__cK(const double
*const *arg, double *const *res, double *w)``); the structured callee gets a
function with the same signature whose loop passes the body pointers into
its own arguments, so nothing is copied per instance:

* a **map** hands instance ``i`` the pointer ``arg[k] + i * size_k`` for a
  mapped input and ``arg[k]`` for a shared one, and ``res[k] + i * size_k``
  for a stacked output; a summed output is written by the body into a
  scratch block of ``w`` and added into ``res[k]`` (zeroed first), in
  instance order;
* a **fold** keeps the state in ``w``; step ``i`` reads the state (the
  initial one at step 0), row ``i`` of each per-step input and the shared
  inputs whole, and writes the next state straight into row ``i`` of the
  states output (or into ``w`` for ``last=True``) and row ``i`` of each
  per-step output.

The C source therefore has a fixed size whatever ``n``, and compiles in a
time independent of it.

>>> import symgraph as sg
>>> x = sg.symbols("x")
>>> M = sg.Function("sq", [x], [x * x]).map(1000, reduce="sum")
>>> "for (long i = 0; i < 1000; ++i)" in M.c_code()
True
"""

from __future__ import annotations

from typing import Any

from symgraph.map import sizes

__all__ = ["structured_callee"]


def structured_callee(G: Any, fname: str, callees: dict) -> tuple[str, int]:
    """The C function ``fname`` of structured Function ``G`` and its work size (doubles of ``w``).

    ``callees`` maps each Function already emitted to its ``_Callee``
    record (name, work size); ``G``'s body is one of them.
    """
    structure = G.structure
    if structure.kind == "map":
        return _map(G, structure, fname, callees[structure.body])
    if structure.kind == "fold":
        return _fold(G, structure, fname, callees[structure.body])
    if structure.kind == "native":  # hand-written C (symgraph/native.py)
        return structure.c_function(fname, callees)
    raise NotImplementedError(f"no C for structure kind {structure.kind!r}")


def _map(G: Any, s: Any, fname: str, body: Any) -> tuple[str, int]:
    n = s.n
    in_sizes, out_sizes = sizes(s.body.input_shapes), sizes(s.body.output_shapes)
    args = [f"arg[{k}]" if shared else f"arg[{k}] + i * {m}" for k, (m, shared) in
            enumerate(zip(in_sizes, s.shared))]
    scratch, results, sums = 0, [], []
    for k, (p, how) in enumerate(zip(out_sizes, s.reduce)):
        if how == "sum":
            results.append(f"w + {scratch}")
            sums.append((k, p, scratch))
            scratch += p
        else:
            results.append(f"res[{k}] + i * {p}")
    lines = [f"void {fname}(const double *const *arg, double *const *res, double *w) {{",
             f"  /* {G.structure.describe()} */"]
    for k, p, _ in sums:
        lines.append(f"  for (long j = 0; j < {p}; ++j) res[{k}][j] = 0.0;")
    lines += [f"  for (long i = 0; i < {n}; ++i) {{",
              f"    const double *const a[{max(1, len(args))}] = {{{', '.join(args) or '0'}}};",
              f"    double *const r[{max(1, len(results))}] = {{{', '.join(results) or '0'}}};",
              f"    {body.name}(a, r, w + {scratch});"]
    for k, p, at in sums:
        lines.append(f"    for (long j = 0; j < {p}; ++j) res[{k}][j] += w[{at} + j];")
    lines += ["  }", "}\n"]
    return "\n".join(lines), scratch + body.work_size


def _fold(G: Any, s: Any, fname: str, body: Any) -> tuple[str, int]:
    n, m = s.n, s.m
    in_sizes, out_sizes = sizes(s.body.input_shapes), sizes(s.body.output_shapes)
    args = ["cur"] + [f"arg[{k}]" if s.shared[k] else f"arg[{k}] + i * {size}"
                      for k, size in enumerate(in_sizes) if k]
    nxt = "(i % 2 ? w : w + " + str(m) + ")" if s.last else f"res[0] + i * {m}"
    results = ["next"] + [f"res[{k}] + i * {p}" for k, p in enumerate(out_sizes) if k]
    lines = [f"void {fname}(const double *const *arg, double *const *res, double *w) {{",
             f"  /* {G.structure.describe()} */",
             "  const double *cur = arg[0];",
             f"  for (long i = 0; i < {n}; ++i) {{",
             f"    double *const next = {nxt};",
             f"    const double *const a[{len(args)}] = {{{', '.join(args)}}};",
             f"    double *const r[{len(results)}] = {{{', '.join(results)}}};",
             f"    {body.name}(a, r, w + {2 * m});",
             "    cur = next;",
             "  }"]
    if s.last:
        lines.append(f"  for (long j = 0; j < {m}; ++j) res[0][j] = cur[j];")
    lines.append("}\n")
    return "\n".join(lines), 2 * m + body.work_size
