"""Save/load time and file size of symgraph's file format (issue 12) on the Luksan model.

The model Function ``luksan(x) -> (f, g)`` at N variables, built two ways:
unrolled (``sg.models.luksan``: one scalar node per operation, as in
bench/structure.py) and with maps (``sg.models.luksan_mapped``: one map
node for the objective terms, one for the constraints).  For each: the
time to build the Function (for scale), ``save`` (to_bytes and the file
write), ``load`` (read, validate, rebuild the graph), the file size, a
pickle round trip, and a check that the loaded Function gives the same
values.  Files go to a temporary folder, removed afterwards.

Run: python3 bench/serialize.py [--n 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)  # the repository root first (bench/codegen.py would shadow the codegen package)

import symgraph as sg  # noqa: E402
from symgraph.serialize import load, save  # noqa: E402


def best_of(repeat: int, action):
    """(best wall time in seconds, last result) of ``repeat`` runs of ``action()``."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - start)
    return best, result


def bench_model(label: str, build, n: int, repeat: int, folder: str) -> None:
    start = time.perf_counter()
    x, f, g = build(n)
    F = sg.Function(f"luksan_{label}", [x], [f, g])
    t_build = time.perf_counter() - start
    path = os.path.join(folder, f"luksan_{label}_{n}.sgf")
    t_save, _ = best_of(repeat, lambda: save(F, path))
    size = os.path.getsize(path)
    t_load, G = best_of(repeat, lambda: load(path))
    t_pickle, H = best_of(1, lambda: pickle.loads(pickle.dumps(F)))
    point = np.linspace(0.5, 1.5, n)
    same = all(np.array_equal(a, b) for a, b in zip(F(point), G(point))) and \
        all(np.array_equal(a, b) for a, b in zip(F(point), H(point)))
    print(f"{label:9s} N={n:>8d}  ops {F.n_ops:>9d}  build {t_build:7.2f} s  save {t_save:7.3f} s  "
          f"load {t_load:7.3f} s  pickle round trip {t_pickle:7.3f} s  file {size / 1e6:8.3f} MB "
          f"({size / max(F.n_ops, 1):.1f} B/op)  same values: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="number of variables (default 100000)")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many saves and loads (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sg-bench-serialize-") as folder:
        bench_model("mapped", sg.models.luksan_mapped, args.n, args.repeat, folder)
        bench_model("unrolled", sg.models.luksan, args.n, args.repeat, folder)


if __name__ == "__main__":
    main()
