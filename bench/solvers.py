"""Solvers and custom rules (issue 11): the figures of what exists so far.

Sections (``--only NAME``, several allowed; default all):

* ``linalg``: ``sg.linalg.solve`` / ``logdet`` expanded symbolically
  (LU with partial pivoting chosen in the graph) for n = 2..8: graph size,
  build + compile time, time per compiled call beside ``numpy.linalg``
  (whose per-call Python overhead dominates at these sizes), and the cost of
  the gradient of ``logdet`` relative to ``logdet`` itself.
* ``taylor``: ``sg.taylor`` against ``sg.jvp`` nested K times
  (``bench/taylor.py``): operations, build and evaluation time, K = 2..10.

Not measurable yet (the issue's other benchmarks): implicit vs unrolled
Newton solves (needs ``sg.rootfinder``), stiff integrators against
``solve_ivp`` (needs ``sg.integrator``), CasADi's rootfinder/integrator.

Run: python3 bench/solvers.py [--quick] [--only linalg|taylor]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from typing import Sequence

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

import symgraph as sg  # noqa: E402

SECTIONS = ("linalg", "taylor")


def load_bench(name: str):
    """A sibling bench script as a module."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", os.path.join(ROOT, "bench", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def bench_linalg(sizes: Sequence[int]) -> None:
    """Expanded solve and logdet: size of the graphs, prepare and call time, gradient cost ratio."""
    per_call = load_bench("structure").per_call  # best of repeated batches (bench/structure.py)
    rng = np.random.default_rng(0)
    print("\n== sg.linalg, expanded (LU with pivoting in the graph), compiled with gcc -O2, cold cache")
    print(f"  {'n':>2}  {'solve ops':>9}  {'prepare s':>9}  {'call us':>8}  {'numpy us':>8}  "
          f"{'logdet ops':>10}  {'+grad ops':>9}  {'grad/logdet':>11}  {'max err':>8}")
    for n in sizes:
        A, b = sg.symbols("A", (n, n)), sg.symbols("b", n)
        start = time.perf_counter()
        with sg.building():
            x = sg.linalg.solve(A, b)
            F = sg.Function(f"solve{n}", [A, b], [x])
        with tempfile.TemporaryDirectory() as cache:
            C = F.compile(cache_dir=cache)
        prepare = time.perf_counter() - start
        An, bn = rng.normal(size=(n, n)) + n * np.eye(n), rng.normal(size=n)
        err = float(np.max(np.abs(C(An, bn) - np.linalg.solve(An, bn))))
        logdet = sg.linalg.logdet(A)
        gradient = sg.grad(logdet, A)
        ops_logdet = sg.count_ops([logdet])
        ops_both = sg.count_ops([logdet, *gradient.reshape(-1)])
        print(f"  {n:>2}  {sg.count_ops(list(x)):>9}  {prepare:>9.3f}  {per_call(C, An, bn) * 1e6:>8.2f}  "
              f"{per_call(np.linalg.solve, An, bn) * 1e6:>8.2f}  {ops_logdet:>10}  {ops_both:>9}  "
              f"{ops_both / ops_logdet:>11.2f}  {err:>8.1e}")
    print("  call us: compiled solve through CompiledFunction.__call__ (argument checks included); "
          "numpy us: numpy.linalg.solve")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and low orders")
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run only this section (repeatable)")
    args = parser.parse_args(argv)
    sections = args.only or list(SECTIONS)
    start = time.perf_counter()
    if "linalg" in sections:
        bench_linalg([2, 4] if args.quick else [2, 3, 4, 6, 8])
    if "taylor" in sections:
        print()
        load_bench("taylor").main(["--quick"] if args.quick else [])
    print(f"\ntotal {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
