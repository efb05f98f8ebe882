"""Benchmark: C generation and compile time of outputs made mostly of constants (issue 15, item 5).

A Function with one dense 1000 x 100 output (10^5 entries) and 24 live operations; every other
entry is a constant or a copied input.  Patterns (``--patterns``):

* ``zeros``: all constant entries are 0.0;
* ``mixed``: runs of 0.0, -0.0 (from ``x * 0``), 1.0, inf and nan, a diagonal of 2.5 and a
  column copied from an input;
* ``scattered``: 0.0 everywhere except 2,000 entries of 1.0 and 2,000 of -3.5 at random
  (seeded) positions, and 2,000 entries of a random permutation of an input;
* ``checker``: 0.0 and 1.0 alternating along rows, 2.0 where ``(7 i + j) % 13 == 0``
  (thousands of short blocks);
* ``random``: 10^5 distinct constants (the worst case: one table entry each).

Printed per pattern: C generation time (``codegen.c99.generate``), gcc compile time (one
translation unit, ``gcc -std=c99 -O2 -fPIC -ffp-contract=off -shared``; tcc too when installed),
and the source size.  Each gcc build is checked once against the VM: output buffer pre-filled
with a sentinel, every entry must equal the VM's bitwise (NaN entries: NaN).

Usage: python3 bench/constant_outputs.py [--patterns zeros,mixed,scattered,checker,random] [--flags "-O2"]
       [--no-tcc]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import symgraph as sg  # noqa: E402
from codegen.c99 import generate  # noqa: E402

ROWS, COLS = 1000, 100
N_LIVE = 24


def live_entries(x: np.ndarray) -> list:
    """24 scalar expressions, each one correctly rounded operation on the inputs (so C equals the VM)."""
    ops = (sg.sqrt, lambda a: a * 3.0, lambda a: a + 0.25)
    return [ops[k // len(x)](x[k % len(x)]) for k in range(N_LIVE)]


def function(pattern: str) -> sg.Function:
    """The benchmark Function for one pattern (see the module docstring)."""
    x = sg.symbols("x", 8)
    z = sg.symbols("z", 2000)
    out = np.full((ROWS, COLS), sg.const(0.0), dtype=object)
    if pattern == "mixed":
        out[100:200, :] = x[0] * 0  # -0.0
        out[200:300, :] = sg.const(1.0)
        out[300:310, :] = sg.const(float("inf"))
        out[310:320, :] = sg.const(float("nan"))
        out[np.arange(COLS), np.arange(COLS)] = sg.const(2.5)
        out[400:1000:3, 7] = sg.const(-1.25)
        out[500:600, 50] = x[np.arange(100) % 8]
        out[600:800, 60] = z[:200]
    elif pattern == "scattered":
        rng = np.random.default_rng(0)
        positions = rng.permutation(ROWS * COLS)[:6000]
        flat = out.reshape(-1)
        flat[positions[:2000]] = sg.const(1.0)
        flat[positions[2000:4000]] = sg.const(-3.5)
        flat[positions[4000:]] = z[rng.permutation(2000)]
    elif pattern == "checker":
        i, j = np.indices((ROWS, COLS))
        out[(i + j) % 2 == 1] = sg.const(1.0)
        out[(7 * i + j) % 13 == 0] = sg.const(2.0)
    elif pattern == "random":
        out = np.array([sg.const(v) for v in np.random.default_rng(1).normal(size=ROWS * COLS)],
                       dtype=object).reshape(ROWS, COLS)
    elif pattern != "zeros":
        raise SystemExit(f"unknown pattern {pattern!r}")
    flat = out.reshape(-1)
    flat[np.linspace(0, ROWS * COLS - 1, N_LIVE).astype(int)] = live_entries(x)
    return sg.Function(f"const_{pattern}", [x, z], [out])


def timed(fn, *args):
    """(result, seconds) of one call."""
    t0 = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - t0


def compile_seconds(compiler: str, flags: list[str], source: str, library: str) -> float:
    """Wall-clock seconds of building a shared library from ``source``."""
    cmd = [compiler, "-std=c99", "-fPIC", *(["-ffp-contract=off"] if compiler != "tcc" else []), *flags,
           "-shared", source, "-o", library, "-lm"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return time.perf_counter() - t0


def check(library: str, F: sg.Function) -> bool:
    """Evaluate the built library once (cffi) and compare bitwise with the VM."""
    import cffi

    ffi = cffi.FFI()
    ident = "sgf_" + F.name
    ffi.cdef(f"int {ident}(const double *const *arg, double *const *res, double *w);"
             f"long {ident}__work_size(void);")
    lib = ffi.dlopen(library)
    args = [np.linspace(0.1, 0.9, 8), np.linspace(-1.0, 1.0, 2000)]
    res = np.full(ROWS * COLS, 12345.0)
    work = np.zeros(max(1, getattr(lib, f"{ident}__work_size")()))
    arg_p = ffi.new("double *[]", [ffi.cast("double *", a.ctypes.data) for a in args])
    res_p = ffi.new("double *[]", [ffi.cast("double *", res.ctypes.data)])
    getattr(lib, ident)(arg_p, res_p, ffi.cast("double *", work.ctypes.data))
    want = np.asarray(F(*args), dtype=np.float64).reshape(-1)
    nan = np.isnan(want)  # NaN: C's NAN may differ from the VM's in sign (IEEE leaves it open)
    return bool(np.array_equal(np.isnan(res), nan)
                and np.array_equal(res[~nan].view(np.uint64), want[~nan].view(np.uint64)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patterns", default="zeros,mixed,scattered,checker,random")
    parser.add_argument("--flags", default="-O2")
    parser.add_argument("--no-tcc", action="store_true")
    opts = parser.parse_args()
    compilers = ["gcc"] + ([] if opts.no_tcc or shutil.which("tcc") is None else ["tcc"])
    flags = opts.flags.split()
    print(f"{ROWS} x {COLS} output, {N_LIVE} live ops; flags {' '.join(flags)}")
    with tempfile.TemporaryDirectory() as tmp:
        for pattern in opts.patterns.split(","):
            F, t_build = timed(function, pattern)
            src, t_gen = timed(generate, F)
            path = os.path.join(tmp, f"{pattern}.c")
            with open(path, "w") as fh:
                fh.write(src)
            line = (f"{pattern:10s} ops {F.n_ops:3d}  build {t_build:6.2f} s  C generation {t_gen:6.2f} s  "
                    f"source {len(src) / 1e3:9.1f} kB {src.count(chr(10)):7d} lines")
            for cc in compilers:
                library = os.path.join(tmp, f"{pattern}_{cc}.so")
                seconds = compile_seconds(cc, flags if cc != "tcc" else [], path, library)
                line += f"  {cc} {seconds:6.2f} s"
                if cc == "gcc":
                    line += " (matches VM)" if check(library, F) else " (DIFFERS FROM VM)"
            print(line, flush=True)


if __name__ == "__main__":
    main()
