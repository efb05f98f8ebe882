"""Tape -> CUDA C++ source: one thread per point, the same source also a host C++ library.

The per-point code is the C99 backend's (:func:`codegen.c99.program`, which
reads the Tape): its part functions, callees, maps, folds, helpers and output
stores, each made a device function by a qualifier macro.  What keeps a
thread's values in registers rather than in local memory (see docs/gpu.md):

* **Calls are expanded** (:func:`symgraph.Function.inline`: maps and folds
  unrolled, nested calls too) when the expanded program has at most
  :data:`INLINE_MAX` instructions (:func:`expanded_size`, counted without
  expanding).  The C backend's calls pass operands, results and the callee's
  work area through the work array ``w``; expanded, every value is an SSA
  local of one device function and ``w`` is empty: liveness (which values
  share a register) is then the CUDA compiler's register allocation over
  the straight-line code.  Values crossing device functions (a program of
  more than ``chunk_size`` instructions) still go through ``w``, in slots
  reused by liveness (the C backend's allocation: a slot is free after the
  last part that reads it).  Native callees stay calls.
* **No rerolled loops** below :data:`INLINE_MAX` instructions (``loops``):
  a rerolled loop keeps values read after it in small arrays indexed by the
  iteration, which live in local memory; straight-line code has none.
* **Strided views instead of copies**: when the program has no call left,
  the per-point code reads ``arg[i][j]`` and writes ``res[k][j]`` through
  ``sg_strided_in`` / ``sg_strided_out`` (a pointer and a component
  stride, ``p[j * s]``), so component-major (SoA) arguments and results are
  read and written in place, with no per-thread copy into ``xin``/``xout``;
  on the device inputs are read with ``__ldg`` (the read-only data cache;
  without it the strided view of the Luksan term takes 48 registers, not 30).

:attr:`CudaProgram.thread_doubles` counts the doubles of thread-local arrays
the per-point code declares (work array, argument copies, loop arrays).

Around the per-point code this module emits, for a Function named ``NAME``
(C identifier ``sgf_NAME``):

* ``SG_DEVICE static int CNAME__eval(arg, res, w)``: one point, the C99
  entry point's body (constant and input stores, then the parts);
* ``SG_DEVICE static void CNAME__point(p, a0, a0_p, a0_j, ..., r0, r0_p,
  r0_j, ..., w)``: point ``p`` of a batch.  Element ``j`` of input ``i`` at
  point ``p`` is ``ai[p * ai_p + j * ai_j]`` (a strided view): component-major
  (SoA, ``ai_p = 1``, ``ai_j = N``: coalesced), point-major (AoS,
  ``ai_p = size``, ``ai_j = 1``) and shared (``ai_p = 0``, ``ai_j = 1``)
  arguments are all one kernel.  Strided views (above) read and write every
  argument in place; a program that still calls functions (which take plain
  pointers) reads an argument with ``ai_j == 1`` in place and copies a
  strided one into a thread-local array first (likewise for the outputs,
  copied out after the point);
* ``extern "C" SG_GLOBAL void CNAME__kernel(n, ..., gw)``: one thread per
  point, a grid-stride loop; the work array ``w`` is a thread-local array of
  ``work_size`` doubles, or, above :data:`LOCAL_WORK_MAX`, a slice of the
  global scratch ``gw`` (``work_size`` doubles per thread of the grid);
* ``extern "C" int CNAME__host_batch(n, a, ap, aj, r, rp, rj, w)``: the same
  loop on the CPU (only when ``__CUDACC__`` is not defined), so the source
  compiled by a host C++ compiler (``g++ -x c++``) is checked against the VM
  on any machine.

All qualifiers are macros (``SG_DEVICE``, ``SG_GLOBAL``, ``SG_RESTRICT``),
empty for a host compiler.  Under NVRTC (``__CUDACC_RTC__``) no header is
included (the math functions are built in).  Double precision with IEEE
semantics: the CUDA build passes ``--fmad=false`` (no contraction into fma)
unless asked for fast math (:mod:`codegen.cuda_runtime`).

>>> import symgraph as sg
>>> x = sg.symbols("x", 2)
>>> src = generate(sg.Function("f", [x], [sg.sin(x[0]) * x[1]]))
>>> 'extern "C" SG_GLOBAL void sgf_f__kernel(' in src, "SG_DEVICE static void sgf_f__part0(" in src
(True, True)
>>> y = sg.symbols("y", (4, 2))
>>> M = sg.Function("m", [y], [sg.Function("t", [x], [sg.sin(x[0]) * x[1]]).map(4)(y)])
>>> p = program(M)
>>> p.inlined, p.strided, p.work_size, p.thread_doubles    # the map unrolled: all values in locals
(True, True, 0, 0)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from symgraph.map import sizes

from . import c99

__all__ = ["CudaProgram", "program", "generate", "expanded_size", "CUDA_CODEGEN_VERSION", "CUDA_CHUNK",
           "LOCAL_WORK_MAX", "INLINE_MAX"]

CUDA_CODEGEN_VERSION = "symgraph-cuda-2"
# Work arrays up to this many doubles live in thread-local memory; larger ones in a global scratch
# buffer (local memory is reserved for every thread the GPU can hold at once: 16 KiB x ~270k threads).
LOCAL_WORK_MAX = 2048
# Instructions per device function.  Larger than the C backend's parts: values crossing device functions go
# through the work array in local memory, while one function keeps them in registers, and NVRTC compiles one
# function faster than the same code in parts (cart-pole, 24,000 instructions: 52 s in one, 98 s in parts of 2000).
CUDA_CHUNK = 25_000
# Calls are expanded (maps and folds unrolled) when the program then has at most this many instructions: the
# values of expanded calls live in registers rather than in the work array, and NVRTC compiles the straight
# line faster than the calls up to this size (NVRTC 13.5, sm_90: GMM d=5 k=10, 2,207 instructions, 1.4-2.4 s
# expanded against 7.7-10.7 s with its calls; cart-pole, 7,892, 2.7 s), while beyond it the time grows fast
# where many values are live at once (GMM d=10 k=20, 13,317 instructions with 2,058 live: 29 s expanded,
# 22 s with its calls).
INLINE_MAX = 10_000

PRELUDE = """\
#if defined(__CUDACC__)
#define SG_DEVICE __device__
#define SG_GLOBAL __global__
#else
#define SG_DEVICE
#define SG_GLOBAL
#endif
#define SG_RESTRICT __restrict__
#if !defined(__CUDACC_RTC__)
#include <math.h>
#endif
/* NVRTC has the math functions built in but no <math.h>: constants that fold exactly */
#ifndef INFINITY
#define INFINITY (1.0 / 0.0)
#endif
#ifndef NAN
#define NAN (0.0 / 0.0)
#endif
/* One point's input and output in place: element j at p[j * s] (s = 1 point-major, N component-major). */
struct sg_strided_in {
  const double *SG_RESTRICT p;
  long s;
#if defined(__CUDA_ARCH__)
  /* through the read-only data cache: the arguments are not written while the kernel runs */
  SG_DEVICE double operator[](long j) const { return __ldg(p + j * s); }
#else
  double operator[](long j) const { return p[j * s]; }
#endif
};
struct sg_strided_out {
  double *SG_RESTRICT p;
  long s;
  SG_DEVICE double &operator[](long j) const { return p[j * s]; }
};
"""
STRIDED_SIGNATURE = "(const sg_strided_in *arg, const sg_strided_out *res, double *w)"

_STATIC = re.compile(r"^static ", re.M)
_PART = re.compile(r"^void ", re.M)
_ACCESS = re.compile(r"(&?)\b(arg|res)\[(\d+\]\[)?")  # a use of arg/res: a subscript arg[i][..] or not
_LOCAL_ARRAY = re.compile(r"^\s*double \w+\[(\d+)\];", re.M)  # a thread-local array the per-point code declares


@dataclass(frozen=True)
class CudaProgram:
    """The CUDA C++ source of one Function and what the runtime needs to call it.

    Attributes:
        name: the C identifier prefix (``sgf_NAME``).
        source: the complete translation unit (CUDA C++, and host C++ without ``__CUDACC__``).
        kernel: the kernel's name (``extern "C"``).
        host_entry: the host batch entry's name (``extern "C"``, host builds only).
        in_sizes: doubles per point of each input.
        out_sizes: doubles per point of each output (nonzeros of a sparse one, compressed-column order).
        work_size: doubles of work memory per point.
        local_work: True when the work array is thread-local (``work_size <= LOCAL_WORK_MAX``),
            else the kernel takes a global scratch of ``work_size`` doubles per thread.
        n_ops: instructions emitted (the Function's and each distinct callee's once).
        inlined: whether the calls were expanded (:func:`expanded_size` at most :data:`INLINE_MAX`).
        strided: whether the per-point code reads and writes the arguments in place through
            strided views (no call left), rather than through copies into thread-local arrays.
        thread_doubles: doubles of thread-local arrays per thread: the work array when local,
            argument and result copies, rerolled loops' arrays (what is not a scalar local).
        peak_live: the most values live at once in the top-level code, in the order it is
            emitted (:func:`peak_live`): the registers, in doubles, the straight-line code needs
            not to spill (a callee's own values not counted).
    """

    name: str
    source: str
    kernel: str
    host_entry: str
    in_sizes: tuple
    out_sizes: tuple
    work_size: int
    local_work: bool
    n_ops: int
    inlined: bool = False
    strided: bool = False
    thread_doubles: int = 0
    peak_live: int = 0


def _refuse_host_only(F: Any) -> None:
    """CompileError where ``F`` calls (at any depth) a native Function whose C runs only on the host."""
    from symgraph.call import callees_bottom_up
    from symgraph.errors import CompileError

    for G in callees_bottom_up(list(F.tape.callees)):
        structure = getattr(G, "structure", None)
        if structure is not None and not getattr(structure, "device", True):
            raise CompileError(f"{F.name} calls {G.name} ({structure.describe()}), whose C runs only on the host; "
                               f"it cannot be compiled for a GPU")


def expanded_size(F: Any, limit: int | None = None) -> int:
    """Instructions of ``F`` with every call expanded, as :meth:`symgraph.Function.inline` would give them.

    Counted over each distinct callee once, bottom up (no expansion, no
    recursion): a call counts its callee's expanded size, a map or fold ``n``
    times its body's (plus the sums of a map's reduced outputs), a native
    Function one (it stays a call); calls and their results count nothing.
    An upper bound (expanding merges equal expressions); with ``limit``,
    sizes above it are reported as ``limit + 1``.

    >>> import symgraph as sg
    >>> x = sg.symbols("x", 3)
    >>> body = sg.Function("b", [x], [sg.sin(x) * x[0]])
    >>> X = sg.symbols("X", (10, 3))
    >>> F = sg.Function("f", [X], [body.map(10, reduce="sum")(X) + 1.0])
    >>> body.n_ops, expanded_size(F), F.inline().n_ops
    (6, 90, 90)
    """
    from symgraph.call import callees_bottom_up
    from symgraph.tape import CALL, RESULT

    cap = None if limit is None else limit + 1
    size: dict = {}
    for G in callees_bottom_up([F]):
        structure = getattr(G, "structure", None)
        if structure is not None:
            if structure.kind == "native":
                total = 1
            else:
                body = structure.body
                total = structure.n * size[body]
                for shape, reduced in zip(body.output_shapes, getattr(structure, "reduce", ())):
                    total += (structure.n - 1) * int(np.prod(shape, dtype=np.int64)) if reduced else 0
        else:
            tape = G.tape
            codes = tape.opcodes
            total = int(np.count_nonzero((codes != CALL.code) & (codes != RESULT.code)))
            if tape.n_calls:
                per_callee = np.array([size[C] for C in tape.callees], dtype=object)
                total += int(sum(per_callee[np.asarray(tape.call_callee, dtype=np.int64)]))
        size[G] = total if cap is None else min(total, cap)
    return size[F]


def program(F: Any, name: str | None = None, chunk_size: int = CUDA_CHUNK, optimize: int = 0,
            inline: bool = True, loops: bool | None = None) -> CudaProgram:
    """The :class:`CudaProgram` of ``F`` (emitted as given; ``optimize`` is the level of its callees).

    Args:
        F: the Function.
        name: the name C identifiers are made from (default ``F.name``).
        chunk_size: instructions per device function.
        optimize: the optimizer level of the callees that stay calls.
        inline: expand the calls when the result has at most :data:`INLINE_MAX`
            instructions (False: keep them, the C backend's structure).
        loops: reroll repeated runs into loops (:mod:`codegen.reroll`); default: only
            above :data:`INLINE_MAX` instructions, where the source size matters more than
            the loops' arrays in local memory.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> p = program(sg.Function("g", [x], [x * x + 1.5]))
    >>> p.kernel, p.in_sizes, p.out_sizes, p.work_size
    ('sgf_g__kernel', (1,), (1,), 0)
    >>> sq = sg.Function("sq", [x], [x * x])
    >>> G = sg.Function("k", [x], [sq(x) + sq(x + 1.0)])
    >>> program(G).inlined, program(G, inline=False).inlined, program(G, inline=False).work_size > 0
    (True, False, True)
    """
    from symgraph.errors import OptionError

    if not isinstance(inline, bool):
        raise OptionError(f"inline must be True or False, got {inline!r}")
    if loops is not None and not isinstance(loops, bool):
        raise OptionError(f"loops must be True, False or None (automatic), got {loops!r}")
    _refuse_host_only(F)
    inlined = False
    if inline and F.tape.n_calls and expanded_size(F, INLINE_MAX) <= INLINE_MAX:
        F, inlined = F.inline(), True
    if loops is None:
        loops = F.n_ops > INLINE_MAX
    prog = c99.program(F, name, chunk_size, optimize, loops=loops)
    in_sizes = tuple(sizes(F.input_shapes))
    tape = c99._prepared(F.tape)  # what c99.program emitted the top level from (deterministic)
    outputs = c99._output_layout(F, tape)
    out_sizes = tuple(int(s) for s in outputs.sizes)
    fills, copies = c99._copy_stores(tape, outputs)
    cname = prog.name
    local = prog.work_size <= LOCAL_WORK_MAX
    strided = not tape.n_calls and _subscripts_only([*prog.parts, *fills, *copies])
    signature = STRIDED_SIGNATURE if strided else c99.SIGNATURE
    text = [f"/* CUDA C++ code of {c99._describe(F)} -- generated by {CUDA_CODEGEN_VERSION}; do not edit.\n"
            f" * Compiles as CUDA (nvcc, NVRTC) and as host C++ (g++ -x c++). */\n", PRELUDE]
    text.extend(_STATIC.sub("SG_DEVICE static ", helper) + "\n" for helper in prog.helpers.values())
    parts = [part.replace(c99.SIGNATURE, signature, 1) for part in prog.parts] if strided else prog.parts
    text.extend(_PART.sub("SG_DEVICE static void ", part, count=1) for part in parts)
    evaluate = [f"SG_DEVICE static int {cname}__eval{signature} {{", "  (void)arg; (void)res; (void)w;",
                *fills, *(f"  {prog.part_names[i]}(arg, res, w);" for i in prog.entry_calls), *copies,
                "  return 0;", "}\n"]
    text.append("\n".join(evaluate))
    text.append(_strided_point(cname, len(in_sizes), len(out_sizes)) if strided else
                _point(cname, in_sizes, out_sizes))
    text.append(_kernel(cname, len(in_sizes), len(out_sizes), prog.work_size, local))
    text.append(_host_entry(cname, len(in_sizes), len(out_sizes)))
    copied = 0 if strided else max(1, sum(in_sizes)) + max(1, sum(out_sizes))
    arrays = sum(int(m) for part in prog.parts for m in _LOCAL_ARRAY.findall(part))
    thread = (prog.work_size if local else 0) + copied + arrays
    return CudaProgram(cname, "\n".join(text), f"{cname}__kernel", f"{cname}__host_batch", in_sizes, out_sizes,
                       prog.work_size, local, prog.n_ops, inlined, strided, thread, peak_live(tape))


def peak_live(tape: Any) -> int:
    """The most values live at once over ``tape``'s instruction order: a linear scan of live ranges.

    A computed value is live from its instruction to its last reader (only
    stored: at its instruction), an input from its first reader to its last
    (the per-point code loads it on first use; read once: not at all); a reader may reuse its
    operand's register, so a value whose last reader is instruction ``i`` is
    not counted live beside the value ``i`` makes.  Constants are literals.

    >>> import symgraph as sg
    >>> x = sg.symbols("x", 3)
    >>> peak_live(sg.Function("chain", [x], [sg.sin(sg.cos(x[0]))]).tape)
    1
    >>> peak_live(sg.Function("sum", [x], [(x[0] * x[1]) + (x[1] * x[2])]).tape)
    2
    """
    from symgraph.ops import OP_LIST
    from symgraph.tape import CALL

    n, first = tape.n_instructions, tape.first_instruction_slot
    if n == 0:
        return 0
    codes = tape.opcodes.astype(np.int64)
    arity = np.array([op.arity for op in OP_LIST], dtype=np.int64)[codes]
    rows = np.arange(n, dtype=np.int64)
    width = tape.operands.shape[1]
    used = (np.arange(width) < arity[:, None]) & (tape.operands >= 0)
    reader = [np.broadcast_to(rows[:, None], (n, width))[used]]
    slot = [tape.operands[used]]
    if tape.n_calls:
        where = np.flatnonzero(codes == CALL.code)
        row_of = np.zeros(tape.n_calls, dtype=np.int64)
        row_of[tape.immediates[where]] = where
        reader.append(np.repeat(row_of, np.diff(tape.call_offsets)))
        slot.append(np.asarray(tape.call_operands, dtype=np.int64))
    reader, slot = np.concatenate(reader), np.concatenate(slot)
    inputs = slot < tape.n_input_scalars
    keep = inputs | (slot >= first)
    reader, slot = reader[keep], slot[keep]
    last = np.full(tape.n_slots, -1, dtype=np.int64)
    np.maximum.at(last, slot, reader)
    begin = np.full(tape.n_slots, n, dtype=np.int64)
    np.minimum.at(begin, slot, reader)
    begin[first:] = rows
    end = last.copy()  # an input read once is loaded straight into its reader's register
    end[first:] = np.maximum(last[first:], rows + 1)
    live = np.flatnonzero(begin < n)
    change = np.zeros(n + 2, dtype=np.int64)
    np.add.at(change, begin[live], 1)
    np.add.at(change, np.minimum(end[live], n + 1), -1)
    return int(np.cumsum(change).max())


def _subscripts_only(texts: list) -> bool:
    """Whether ``arg`` and ``res`` appear in ``texts`` only as element accesses ``arg[i][...]``, never as
    pointers (``arg[i] + j`` handed to a callee) or addresses: then strided views can stand for them."""
    for text in texts:
        for match in _ACCESS.finditer(text):
            if match.group(1) or not match.group(3):
                return False
    return True


def generate(F: Any, name: str | None = None, chunk_size: int = CUDA_CHUNK, optimize: int = 0,
             inline: bool = True, loops: bool | None = None) -> str:
    """The CUDA C++ source of ``F`` (``optimize``: the level applied to ``F`` and its callees first;
    ``inline``, ``loops``: see :func:`program`).

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> generate(sg.Function("h", [x], [x + 1])) == generate(sg.Function("h", [x], [x + 1]))
    True
    """
    return program(c99.optimized(F, optimize), name, chunk_size, optimize, inline, loops).source


# ---------------------------------------------------------------- batch wrappers

def _params(n_in: int, n_out: int) -> str:
    """The pointer and stride parameters of the inputs and outputs, each followed by a comma."""
    ins = [f"const double *SG_RESTRICT a{i}, long a{i}_p, long a{i}_j, " for i in range(n_in)]
    outs = [f"double *SG_RESTRICT r{k}, long r{k}_p, long r{k}_j, " for k in range(n_out)]
    return "".join(ins + outs)


def _point(cname: str, in_sizes: tuple, out_sizes: tuple) -> str:
    """``CNAME__point``: gather point ``p``'s strided inputs, evaluate, scatter its strided outputs."""
    n_in, n_out = len(in_sizes), len(out_sizes)
    head = f"SG_DEVICE static void {cname}__point(long p, {_params(n_in, n_out)}double *w) {{"
    in_at = np.concatenate([[0], np.cumsum(in_sizes, dtype=np.int64)]).tolist()
    out_at = np.concatenate([[0], np.cumsum(out_sizes, dtype=np.int64)]).tolist()
    lines = [head, f"  double xin[{max(1, in_at[-1])}];", f"  double xout[{max(1, out_at[-1])}];",
             f"  const double *arg[{max(1, n_in)}];", f"  double *res[{max(1, n_out)}];",
             "  (void)xin; (void)xout;"]
    for i, m in enumerate(in_sizes):
        if m <= 1:
            lines.append(f"  arg[{i}] = a{i} + p * a{i}_p;")
            continue
        lines += [f"  if (a{i}_j == 1) {{",
                  f"    arg[{i}] = a{i} + p * a{i}_p;",
                  "  } else {",
                  f"    for (long j = 0; j < {m}; ++j) xin[{in_at[i]} + j] = a{i}[p * a{i}_p + j * a{i}_j];",
                  f"    arg[{i}] = xin + {in_at[i]};",
                  "  }"]
    for k, m in enumerate(out_sizes):
        lines.append(f"  res[{k}] = r{k} + p * r{k}_p;" if m <= 1 else
                     f"  res[{k}] = r{k}_j == 1 ? r{k} + p * r{k}_p : xout + {out_at[k]};")
    lines.append(f"  {cname}__eval(arg, res, w);")
    for k, m in enumerate(out_sizes):
        if m > 1:
            lines.append(f"  if (r{k}_j != 1) for (long j = 0; j < {m}; ++j) "
                         f"r{k}[p * r{k}_p + j * r{k}_j] = xout[{out_at[k]} + j];")
    lines.append("}\n")
    return "\n".join(lines)


def _strided_point(cname: str, n_in: int, n_out: int) -> str:
    """``CNAME__point`` with strided views: point ``p``'s arguments read and written where they are."""
    ins = ", ".join(f"{{a{i} + p * a{i}_p, a{i}_j}}" for i in range(n_in)) or "{0, 0}"
    outs = ", ".join(f"{{r{k} + p * r{k}_p, r{k}_j}}" for k in range(n_out)) or "{0, 0}"
    return "\n".join([f"SG_DEVICE static void {cname}__point(long p, {_params(n_in, n_out)}double *w) {{",
                      f"  const sg_strided_in arg[{max(1, n_in)}] = {{{ins}}};",
                      f"  const sg_strided_out res[{max(1, n_out)}] = {{{outs}}};",
                      f"  {cname}__eval(arg, res, w);", "}\n"])


def _call_point(cname: str, n_in: int, n_out: int, array: bool) -> str:
    """The call of ``CNAME__point`` from the kernel (``array=False``) or the host entry (pointer arrays)."""
    if array:
        args = [f"a[{i}], ap[{i}], aj[{i}]" for i in range(n_in)] + [f"r[{k}], rp[{k}], rj[{k}]" for k in range(n_out)]
    else:
        args = [f"a{i}, a{i}_p, a{i}_j" for i in range(n_in)] + [f"r{k}, r{k}_p, r{k}_j" for k in range(n_out)]
    return f"{cname}__point(p, {''.join(a + ', ' for a in args)}w);"


def _kernel(cname: str, n_in: int, n_out: int, work_size: int, local: bool) -> str:
    """The kernel: one thread per point in a grid-stride loop; ``gw``: global scratch when ``local`` is False."""
    lines = [f"/* n points; gw: NULL, or (when {cname}__LOCAL_WORK is 0) {work_size} doubles per thread of the grid */",
             f"#define {cname}__LOCAL_WORK {int(local)}",
             "#if defined(__CUDACC__)",
             f'extern "C" SG_GLOBAL void {cname}__kernel(long n, {_params(n_in, n_out)}double *gw) {{',
             "  const long first = (long)blockIdx.x * blockDim.x + threadIdx.x;",
             "  const long step = (long)blockDim.x * gridDim.x;"]
    if local:
        lines += [f"  double w[{max(1, work_size)}];", "  (void)gw;"]
    else:
        lines.append(f"  double *const w = gw + first * {work_size}L;")
    lines += ["  for (long p = first; p < n; p += step) {",
              f"    {_call_point(cname, n_in, n_out, False)}", "  }", "}", "#endif\n"]
    return "\n".join(lines)


def _host_entry(cname: str, n_in: int, n_out: int) -> str:
    """The host batch loop (host C++ builds only): the same per-point code, run point after point."""
    return "\n".join([
        "#if !defined(__CUDACC__)",
        f"/* Host build: n points, pointer and stride arrays as the kernel's parameters; w: work_size doubles. */",
        f'extern "C" int {cname}__host_batch(long n, const double *const *a, const long *ap, const long *aj,',
        "                                   double *const *r, const long *rp, const long *rj, double *w) {",
        "  (void)a; (void)ap; (void)aj; (void)r; (void)rp; (void)rj;",
        "  for (long p = 0; p < n; ++p) {",
        f"    {_call_point(cname, n_in, n_out, True)}",
        "  }",
        "  return 0;",
        "}",
        "#endif\n"])
