"""Benchmark of the C backend on the Luksan model, side by side with CasADi when it is installed.

For each N: one Function (x, lam) -> (f, grad f, g, Jacobian of g, lower Hessian of f + lam.g);
the derivative outputs are included when symgraph.ad provides them.  Printed per N:

* symgraph: ops, C generation time, compile time (gcc/cc with the given flags, and tcc when
  installed), evaluation time per call measured in C (a small driver loop linked to the built
  library) and from Python (``C(x, lam)``);
* CasADi (SX, same model): C generation, compile with the *same* compiler and flags, evaluation in C
  (same kind of driver) and from Python (``casadi.Function`` call); ratios symgraph / CasADi.

Then the Python call overhead of a 5-input/5-output scalar function (symgraph vs casadi.Function).

``--tcc-vs-cc`` measures instead what choosing tcc costs and saves (issue 15): for each model
(Luksan with derivatives, and the gradient of a dense linear least-squares objective, whose
C is long sums) at about each of ``--ops`` optimized instructions, the build time (wall and
CPU) with cc and the given flags in the runtime's parallel C files, with tcc in one file (as
before issue 15) and with tcc in files of ``TCC_UNIT_OPS`` instructions (now), the time of one
call measured in C, the ratios, and the runtime's estimates (``estimate_build``) beside them.
At 10^6 instructions this takes several minutes.

Usage: python3 bench/codegen.py [--sizes 100,400,1000,10000] [--flags "-O2"] [--casadi-timeout 300]
       [--gcc-max-ops 2000000] [--no-casadi]
       python3 bench/codegen.py --tcc-vs-cc [--ops 100000,400000,1000000] [--models luksan,llsq]
Everything is built in a temporary directory (its own symgraph cache), removed at the end.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import timeit

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import symgraph as sg  # noqa: E402
from codegen import build  # noqa: E402
from codegen.c99 import program, translation_units  # noqa: E402
from codegen import runtime  # noqa: E402
from codegen.runtime import CompiledFunction, estimate_build  # noqa: E402

try:
    import casadi as ca
except ImportError:  # the benchmark runs without CasADi, printing our figures only
    ca = None

DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
%(decl)s
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
int main(void) {
  %(setup)s
  double best = 1e300, sink = 0.0;
  long reps = 1, r, round;
  double t0 = now();
  %(call)s;
  double once = now() - t0;
  reps = once > 0 ? (long)(0.05 / once) + 1 : 1000;
  for (round = 0; round < 7; ++round) {
    t0 = now();
    for (r = 0; r < reps; ++r) { %(call)s; sink += res[0][0]; }
    double t = (now() - t0) / reps;
    if (t < best) best = t;
  }
  printf("%%.9g %%g\n", best, sink);
  return 0;
}
"""

OURS = {"decl": "int %(n)s(const double *const *arg, double *const *res, double *w);\n"
                "long %(n)s__numel_in(int i); long %(n)s__nnz_out(int i); long %(n)s__work_size(void);\n"
                "int %(n)s__n_in(void); int %(n)s__n_out(void);",
        "setup": "int i; const double *arg[8]; double *res[8];\n"
                 "  for (i = 0; i < %(n)s__n_in(); ++i) { long k, m = %(n)s__numel_in(i); double *a = malloc((m + 1) * sizeof(double));"
                 " for (k = 0; k < m; ++k) a[k] = 0.1 + 0.8 * k / (m + 1.0); arg[i] = a; }\n"
                 "  for (i = 0; i < %(n)s__n_out(); ++i) res[i] = malloc((%(n)s__nnz_out(i) + 1) * sizeof(double));\n"
                 "  double *w = malloc((%(n)s__work_size() + 1) * sizeof(double));",
        "call": "%(n)s(arg, res, w)"}

THEIRS = {"decl": "typedef long long casadi_int;\n"
                  "int %(n)s(const double** arg, double** res, casadi_int* iw, double* w, int mem);\n"
                  "int %(n)s_work(casadi_int *sz_arg, casadi_int* sz_res, casadi_int *sz_iw, casadi_int *sz_w);\n"
                  "const casadi_int* %(n)s_sparsity_in(casadi_int i); const casadi_int* %(n)s_sparsity_out(casadi_int i);\n"
                  "casadi_int %(n)s_n_in(void); casadi_int %(n)s_n_out(void);",
          "setup": "casadi_int sz_arg, sz_res, sz_iw, sz_w, i; %(n)s_work(&sz_arg, &sz_res, &sz_iw, &sz_w);\n"
                   "  const double **arg = malloc((sz_arg + 1) * sizeof(double*)); double **res = malloc((sz_res + 1) * sizeof(double*));\n"
                   "  casadi_int *iw = malloc((sz_iw + 1) * sizeof(casadi_int)); double *w = malloc((sz_w + 1) * sizeof(double));\n"
                   "  for (i = 0; i < %(n)s_n_in(); ++i) { const casadi_int *s = %(n)s_sparsity_in(i); casadi_int k, m = s[2] == 1 ? s[0] * s[1] : s[2 + s[1]];"
                   " double *a = malloc((m + 1) * sizeof(double)); for (k = 0; k < m; ++k) a[k] = 0.1 + 0.8 * k / (m + 1.0); arg[i] = a; }\n"
                   "  for (i = 0; i < %(n)s_n_out(); ++i) { const casadi_int *s = %(n)s_sparsity_out(i);"
                   " res[i] = malloc(((s[2] == 1 ? s[0] * s[1] : s[2 + s[1]]) + 1) * sizeof(double)); }",
          "call": "%(n)s(arg, res, iw, w, 0)"}


def have_ad() -> bool:
    return all(hasattr(sg, n) for n in ("grad", "jacobian", "hessian"))


def luksan_function(n: int):
    x, f, g = sg.models.luksan(n)
    lam = sg.symbols("lam", n - 2)
    outs = [f, g]
    if have_ad():
        with sg.building():
            outs = [f, sg.grad(f, x), g, sg.jacobian(g, x), sg.hessian(f + lam @ g, x, lower=True)]
    return sg.Function("luksan", [x, lam], outs)


def casadi_function(n: int):
    x, lam = ca.SX.sym("x", n), ca.SX.sym("lam", n - 2)
    a, b = x[:-1], x[1:]
    f = ca.sum1(100 * (a ** 2 - b) ** 2 + (a - 1) ** 2)
    u, v, w = x[:-2], x[1:-1], x[2:]
    g = 3 * v ** 3 + 2 * w - 5 + ca.sin(v - w) * ca.sin(v + w) + 4 * v - u * ca.exp(u - v) - 3
    outs = [f, g]
    if have_ad():
        outs = [f, ca.gradient(f, x), g, ca.jacobian(g, x), ca.tril(ca.hessian(f + ca.dot(lam, g), x)[0])]
    return ca.Function("luksan_ca", [x, lam], outs)


def run(cmd, cwd, timeout=None):
    """Run a compiler command; on timeout kill its whole process group (gcc's cc1 too)."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    done = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[:2000]}")
    return done.stdout


def c_eval_time(lib_path: str, spec: dict, name: str, cc: str, flags, work: str, tag: str) -> float:
    src = os.path.join(work, f"driver_{tag}.c")
    with open(src, "w") as fh:
        fh.write(DRIVER % {k: v % {"n": name} for k, v in spec.items()})
    exe = os.path.join(work, f"driver_{tag}")
    run([cc, "-O2", "-std=gnu99", src, lib_path, "-o", exe, "-lm", f"-Wl,-rpath,{os.path.dirname(lib_path)}"], work)
    return float(run([exe], work).split()[0])


def py_time(fn, *args) -> float:
    number = 1
    while True:
        t = timeit.timeit(lambda: fn(*args), number=number)
        if t > 0.05 or number > 10**6:
            break
        number *= 4
    return min(timeit.repeat(lambda: fn(*args), number=number, repeat=5)) / number


def fmt(t: float) -> str:
    if t is None:
        return "-"
    if t >= 1.0:
        return f"{t:.2f} s"
    if t >= 1e-3:
        return f"{t * 1e3:.2f} ms"
    return f"{t * 1e6:.2f} us"


def ratio(a, b) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def bench_size(n: int, args, work: str) -> dict:
    cache = os.path.join(work, "cache")
    row = {"N": n}
    t = time.perf_counter()
    F = luksan_function(n)
    row["graph"] = time.perf_counter() - t
    row["ops"] = F.n_ops
    t = time.perf_counter()
    prog = program(F)
    units = translation_units(prog, F, max(1, min(os.cpu_count() or 1, len(prog.parts) // 2)))
    row["gen"] = time.perf_counter() - t
    row["parts"], row["units"], row["work"] = len(prog.parts), len(units), prog.work_size
    xv, lv = np.linspace(0.1, 0.9, n), np.linspace(-1.0, 1.0, n - 2)
    cc = build.find_compiler()
    if F.n_ops <= args.gcc_max_ops:
        t = time.perf_counter()
        library = build.build(units, prog.cdef, cc, args.flags, None, cache)
        row["compile"] = time.perf_counter() - t
        C = CompiledFunction(F, F, prog, library, args.flags)
        row["c_eval"] = c_eval_time(C.library.path, OURS, prog.name, cc.path, args.flags, work, f"sg{n}")
        row["py_eval"] = py_time(C, xv, lv)
        ref = F(xv, lv)
        row["max_err"] = max(float(np.max(np.abs((a - b).toarray() if hasattr(a, "toarray") else a - b)))
                             for a, b in zip(C(xv, lv), ref))
    if shutil.which("tcc"):
        tcc = build.find_compiler("tcc")
        t = time.perf_counter()
        tcc_units = translation_units(prog, F, estimate_build(F.n_ops, len(prog.parts)).tcc_units)  # as compile()
        library = build.build(tcc_units, prog.cdef, tcc, (), None, cache)
        row["tcc_compile"] = time.perf_counter() - t
        row["tcc_eval"] = c_eval_time(library.path, OURS, prog.name, cc.path, (), work, f"tcc{n}")
    if ca is not None and not args.no_casadi:
        t = time.perf_counter()
        G = casadi_function(n)
        cwd = os.getcwd()
        os.chdir(work)
        try:
            G.generate("luksan_ca.c")
        finally:
            os.chdir(cwd)
        row["ca_gen"] = time.perf_counter() - t
        lib = os.path.join(work, f"luksan_ca_{n}.so")
        t = time.perf_counter()
        try:
            run([cc.path, *build.BASE_FLAGS, *args.flags, "-shared", "-o", lib, "luksan_ca.c", "-lm"], work,
                timeout=args.casadi_timeout)
            row["ca_compile"] = time.perf_counter() - t
            row["ca_c_eval"] = c_eval_time(lib, THEIRS, "luksan_ca", cc.path, args.flags, work, f"ca{n}")
        except subprocess.TimeoutExpired:
            row["ca_compile"] = None
            row["ca_timeout"] = True
        row["ca_py_eval"] = py_time(G, xv, lv)
    return row


OPS_PER_LUKSAN_N = 80.5  # optimized instructions of luksan_function(n) per n (measured)
OPS_PER_LLSQ_COLUMN = 4104  # optimized instructions of llsq_gradient(m) per column (measured)


def llsq_gradient(m: int, rows: int = 1024):
    """The gradient of ||A x - b||^2 for a dense random A (rows x m): long sums of products."""
    rng = np.random.default_rng(0)
    A, b = rng.standard_normal((rows, m)), rng.standard_normal(rows)
    x = sg.symbols("x", m)
    with sg.building():
        r = A @ x - b
        return sg.Function("llsq_grad", [x], [sg.grad((r * r).sum(), x)])


def model_of_size(model: str, ops: int):
    if model == "luksan":
        return luksan_function(max(3, round(ops / OPS_PER_LUKSAN_N)))
    if model == "llsq":
        return llsq_gradient(max(1, round(ops / OPS_PER_LLSQ_COLUMN)))
    raise SystemExit(f"unknown model {model!r}: use luksan or llsq")


def timed_build(units, prog, compiler, flags, cache: str) -> tuple[float, float, str]:
    """Build (always compiling: a fresh cache directory); wall and CPU seconds (compiler processes)."""
    build.clear_memory_cache()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    library = build.build(units, prog.cdef, compiler, flags, None, cache)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, library.path


def tcc_vs_cc(args, work: str) -> None:
    """``--tcc-vs-cc``: build and call times of cc and tcc on the same Functions (see the module doc)."""
    cc, tcc = build.find_compiler(), build.find_compiler("tcc")
    jobs = os.cpu_count() or 1
    print(f"cc: {cc.path} ({cc.version}), flags {' '.join(args.flags)}, {jobs} CPU(s); tcc: {tcc.path} "
          f"({tcc.version}), files of at most {runtime.TCC_UNIT_OPS:,} ops")
    header = (f"{'model':>7} {'ops':>9} | {'cc build':>17} {'est':>6} | {'tcc 1 file':>15} | {'tcc split':>19} "
              f"{'est':>6} | {'cc call':>9} {'tcc call':>9} {'tcc/cc':>6} | {'build cc/tcc':>12}")
    print(header + "\n" + "-" * len(header))
    for model in args.models.split(","):
        for target in (int(o) for o in args.ops.split(",") if o):
            t = time.perf_counter()
            F = model_of_size(model, target)
            G = F.optimize(1)
            prog = program(G)
            prep = time.perf_counter() - t
            e = estimate_build(G.n_ops, len(prog.parts), args.flags, jobs)
            row = {}
            for tag, compiler, n_units, flags in (("cc", cc, e.cc_units, args.flags), ("tcc1", tcc, 1, ()),
                                                  ("tcc", tcc, e.tcc_units, ())):
                units = translation_units(prog, G, n_units)
                cache = os.path.join(work, f"cache-{model}-{target}-{tag}")
                wall, cpu, path = timed_build(units, prog, compiler, flags, cache)
                call = c_eval_time(path, OURS, prog.name, cc.path, (), work, f"{model}{target}{tag}")
                row[tag] = (wall, cpu, call)
            (cw, cc_cpu, c_call), (t1w, _, _), (tw, _, t_call) = row["cc"], row["tcc1"], row["tcc"]
            print(f"{model:>7} {G.n_ops:>9,} | {cw:6.1f} s ({cc_cpu:5.1f} cpu) {e.cc_seconds:5.0f}s | "
                  f"{t1w:5.2f} s ({t1w / G.n_ops * 1e6:3.1f}us/op) | {tw:5.2f} s {e.tcc_units:>2} files "
                  f"({tw / G.n_ops * 1e6:3.1f}us/op) {e.tcc_seconds:5.1f}s | {fmt(c_call):>9} {fmt(t_call):>9} "
                  f"{t_call / c_call:5.2f}x | {cw / tw:11.0f}x", flush=True)
            print(f"{'':>7} {'':>9}   per op: cc {cc_cpu / G.n_ops * 1e3:.3f} ms cpu, call cc "
                  f"{c_call / G.n_ops * 1e9:.2f} ns, tcc {t_call / G.n_ops * 1e9:.2f} ns; graph + optimize + C "
                  f"generation {prep:.1f} s ({prep / G.n_ops * 1e6:.0f} us/op); break-even "
                  f"{(cw - tw) / max(t_call - c_call, 1e-12):,.0f} calls", flush=True)


def small_call_overhead() -> dict:
    s = [sg.symbols(f"s{i}") for i in range(5)]
    F = sg.Function("small", s, [s[0] * s[1], sg.sin(s[2]), s[3] + s[4], s[0] - s[4], sg.exp(s[1])])
    C = F.compile()
    vals = (0.1, 0.2, 0.3, 0.4, 0.5)
    out = {"symgraph": py_time(C, *vals)}
    if ca is not None:
        z = [ca.SX.sym(f"s{i}") for i in range(5)]
        G = ca.Function("small", z, [z[0] * z[1], ca.sin(z[2]), z[3] + z[4], z[0] - z[4], ca.exp(z[1])])
        out["casadi"] = py_time(G, *vals)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,400,1000,10000")
    parser.add_argument("--flags", default="-O2", help="compiler flags for both symgraph and CasADi code")
    parser.add_argument("--casadi-timeout", type=float, default=300.0, help="seconds allowed for CasADi's compile")
    parser.add_argument("--gcc-max-ops", type=int, default=2_000_000, help="skip gcc above this many ops")
    parser.add_argument("--no-casadi", action="store_true")
    parser.add_argument("--tcc-vs-cc", action="store_true", help="build and call times of tcc vs cc (issue 15)")
    parser.add_argument("--ops", default="100000,400000,1000000", help="--tcc-vs-cc: sizes in optimized ops")
    parser.add_argument("--models", default="luksan,llsq", help="--tcc-vs-cc: luksan and/or llsq")
    args = parser.parse_args()
    args.flags = tuple(args.flags.split())
    if args.tcc_vs_cc:
        work = tempfile.mkdtemp(prefix="symgraph-bench-")
        try:
            tcc_vs_cc(args, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    sizes = [int(s) for s in args.sizes.split(",") if s]
    cc = build.find_compiler()
    print(f"compiler: {cc.path} ({cc.version}); flags: {' '.join(args.flags)} (+ {' '.join(build.BASE_FLAGS)})")
    print(f"tcc: {shutil.which('tcc') or 'not installed'}; casadi: {ca.__version__ if ca else 'not installed'}; "
          f"derivatives: {'f, grad, g, J, H' if have_ad() else 'f, g only (symgraph.ad missing)'}")
    work = tempfile.mkdtemp(prefix="symgraph-bench-")
    try:
        for n in sizes:
            r = bench_size(n, args, work)
            print(f"\nN = {n}: {r['ops']} ops, {r['parts']} parts in {r['units']} C files, work array {r['work']} "
                  f"doubles (graph built in {fmt(r['graph'])})")
            print(f"  symgraph  C generation {fmt(r['gen'])}, compile {fmt(r.get('compile'))}, "
                  f"eval in C {fmt(r.get('c_eval'))}, from Python {fmt(r.get('py_eval'))}, "
                  f"max |C - VM| {r.get('max_err', float('nan')):.1e}")
            if "tcc_compile" in r:
                print(f"  symgraph/tcc  compile {fmt(r['tcc_compile'])}, eval in C {fmt(r['tcc_eval'])}")
            if "ca_gen" in r:
                ca_compile = fmt(r.get("ca_compile")) if not r.get("ca_timeout") else f"> {args.casadi_timeout:.0f} s (timeout)"
                print(f"  CasADi    C generation {fmt(r['ca_gen'])}, compile {ca_compile}, "
                      f"eval in C {fmt(r.get('ca_c_eval'))}, from Python {fmt(r['ca_py_eval'])}")
                print(f"  ratios symgraph/CasADi: compile {ratio(r.get('compile'), r.get('ca_compile'))}, "
                      f"eval in C {ratio(r.get('c_eval'), r.get('ca_c_eval'))}, "
                      f"from Python {ratio(r.get('py_eval'), r.get('ca_py_eval'))}")
            sys.stdout.flush()
        small = small_call_overhead()
        print(f"\n5-input/5-output scalar function, one call from Python: symgraph {fmt(small['symgraph'])}"
              + (f", casadi.Function {fmt(small['casadi'])} ({ratio(small['symgraph'], small['casadi'])})"
                 if "casadi" in small else ""))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
