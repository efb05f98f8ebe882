"""C backend with calls: a callee emitted once vs inlined (issue 10, layer 1).

A callee of about ``--ops`` operations (4 inputs, 4 outputs) is called
``--calls`` times on distinct operands; the caller sums its results.  For the
inlined copy (what compile() did before) and the emitted calls (now), prints
C generation time, build time (compile() of the generated code, gcc -O2,
parallel files as compile() makes them), source size, and time per
evaluation.  Usage: python3 bench/calls_c.py [--ops 1000] [--calls 1000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path[0] = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")  # not bench/ (bench/codegen.py)

import symgraph as sg  # noqa: E402
from codegen.c99 import program, single_file  # noqa: E402


def callee(n_ops: int) -> sg.Function:
    x = sg.symbols("x", 4)
    a, b, c, d = x
    with sg.building():
        for k in range(n_ops // 15):  # bounded values: 15 operations per step
            a, b, c, d = (sg.sin(a * b) + 0.25 * c, b * 0.5 - a / (1.5 + d * d), sg.cos(c) * 0.5 + 0.25 * d,
                          d * 0.75 + sg.exp(-a * a))
    return sg.Function("body", [x], [np.array([a, b, c, d], dtype=object)])


def caller(body: sg.Function, n_calls: int) -> sg.Function:
    y = sg.symbols("y", (n_calls, 2))
    total = 0.0
    for k in range(n_calls):
        r = body([y[k, 0], y[k, 1], y[k - 1, 0], 0.5])
        total = total + r[0] * r[3] - r[1] + r[2]
    return sg.Function("many", [y], [total])


def measure(label: str, F: sg.Function, point: np.ndarray, cache: str) -> dict:
    t0 = time.perf_counter()
    prog = program(F)
    source = single_file(prog, F)
    gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    C = F.compile(optimize=0, compiler="gcc", cache_dir=cache)
    total = time.perf_counter() - t0
    C(point)
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            C(point)
        dt = time.perf_counter() - t0
        if dt > 0.5:
            break
        n *= 2
    per_call = dt / n
    row = {"label": label, "emitted ops": prog.n_ops, "generate s": gen, "compile() s": total,
           "build s": total - gen, "source bytes": len(source), "eval us": per_call * 1e6, "value": float(C(point))}
    print(row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ops", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--skip-inline", action="store_true")
    args = parser.parse_args()
    body = callee(args.ops)
    F = caller(body, args.calls)
    print(f"callee {body.n_ops} ops, caller {F.n_ops} ops ({args.calls} calls)", flush=True)
    point = np.linspace(-1.0, 1.0, 2 * args.calls).reshape(args.calls, 2)
    with tempfile.TemporaryDirectory() as cache:
        after = measure("emitted once (after)", F, point, cache)
        if not args.skip_inline:
            t0 = time.perf_counter()
            G = F.inline()
            print(f"inline(): {time.perf_counter() - t0:.1f} s, {G.n_ops} ops", flush=True)
            before = measure("inlined (before)", G, point, cache)
            print("same value:", before["value"] == after["value"], before["value"], after["value"])


if __name__ == "__main__":
    main()
