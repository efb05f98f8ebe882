"""Graph construction benchmark: nodes per second and bytes per node.

Builds the Luksan model (objective + constraints) with plain numpy code on
symbol arrays, freezes it into a Function and evaluates it once in the VM.
Targets (issue 2): >= 500k nodes/s and <= 300 bytes per node.

Run: python3 bench/build.py [N ...]   (default: 10000 100000)
"""

from __future__ import annotations

import gc
import sys
import time
import tracemalloc

import numpy as np

import symgraph as sg


def measure(n: int) -> None:
    sg.collect()
    gc.collect()
    start = time.perf_counter()
    x, f, g = sg.models.luksan(n)
    build = time.perf_counter() - start
    roots = [f, *g]
    nodes = len(sg.expr.topological(roots))
    rebuild = warm_rebuild(n)
    start = time.perf_counter()
    with sg.building():
        F = sg.Function("luksan", [x], [f, g])
    freeze = time.perf_counter() - start
    start = time.perf_counter()
    F(np.full(n, 0.5))
    run = time.perf_counter() - start
    print(f"N={n:>7}: {nodes:>9} nodes  build {build:6.2f} s ({nodes / build / 1e3:6.0f}k nodes/s; "
          f"rebuilt with new symbols {nodes / rebuild / 1e3:4.0f}k nodes/s)  "
          f"freeze {freeze:6.2f} s ({nodes / freeze / 1e3:5.0f}k nodes/s)  VM eval {run:6.2f} s  "
          f"ops on tape {F.n_ops}")


def warm_rebuild(n: int) -> float:
    """Seconds to build the model again from new symbols (all nodes are new), once the
    intern table and the allocator have grown: the steady state of a long session."""
    x, f, g = sg.models.luksan(n)  # a second, distinct model, then dropped
    del x, f, g
    sg.collect()
    start = time.perf_counter()
    sg.models.luksan(n)
    return time.perf_counter() - start


def bytes_per_node(n: int) -> None:
    """Memory held by the graph itself (nodes, operand tuples, intern entries)."""
    sg.collect()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    x, f, g = sg.models.luksan(n)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    nodes = len(sg.expr.topological([f, *g]))
    print(f"N={n:>7}: {(after - before) / nodes:6.1f} bytes per node (tracemalloc, {nodes} nodes)")


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or [10_000, 100_000]
    for n in sizes:
        measure(n)
    bytes_per_node(min(sizes))


if __name__ == "__main__":
    main(sys.argv[1:])
