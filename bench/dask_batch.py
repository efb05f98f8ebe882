"""Dask batch evaluation (issue 12): ``symgraph.dask.batch`` on a LocalCluster of 2 worker processes vs ``C.batch``.

Model: ``--steps`` RK4 steps (default 1) of the cart-pole of examples/cartpole_multiple_shooting.py
over dt = 0.1 and the sparse Jacobian of the final state w.r.t. state and control (bench/gpu.py's
``cartpole`` case takes 10): 5 inputs, 4 + 15 outputs per point.

Both sides do the same work per block of points: draw the arguments (uniform random numbers),
evaluate, and sum each output (so that the figure is evaluation throughput, not the cost of
moving 19 doubles per point back to one process):

* local: one process, a loop over blocks: ``rng.uniform`` + ``C.batch`` + ``sum``;
* dask: ``da.random`` arguments chunked along axis 0 (made on the workers), ``symgraph.dask.batch``,
  ``.sum()`` of each output, one ``dask.compute``; the cluster is warmed up first (workers import
  symgraph and load the compiled code from the shared disk cache: timed separately).

``--gather`` also times bringing the full outputs back to this process (``(N, 4)`` and ``(N, 15)``).

Run: PYTHONPATH=. python bench/dask_batch.py [--points 10000000] [--chunk 1000000] [--workers 2] [--steps 1] [--gather]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)  # before bench/ (bench/codegen.py would shadow the codegen package)
if sys.path[1:2] == [os.path.dirname(os.path.abspath(__file__))]:
    del sys.path[1]

import symgraph as sg  # noqa: E402


def cartpole_function(steps: int) -> sg.Function:
    spec = importlib.util.spec_from_file_location("cartpole_multiple_shooting",
                                                  os.path.join(ROOT, "examples", "cartpole_multiple_shooting.py"))
    model = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = model  # dataclasses look their module up there
    spec.loader.exec_module(model)
    q, u = sg.symbols("q", 4), sg.symbols("u")
    final = model.rk4(model.dynamics, q, u, 0.1, steps)
    jac = sg.jacobian(final, np.concatenate([q, [u]]))
    return sg.Function("cartpole_rk4_jac", [q, u], [final, jac], input_names=["q", "u"],
                       output_names=["q_next", "jac"])


def local_run(C, n: int, chunk: int) -> tuple:
    """One process: per block, draw the arguments, ``C.batch``, sum the outputs."""
    rng = np.random.default_rng(0)
    totals = np.zeros(2)
    start = time.perf_counter()
    for lo in range(0, n, chunk):
        m = min(chunk, n - lo)
        q, u = rng.uniform(-1, 1, (m, 4)), rng.uniform(-5, 5, m)
        y, J = C.batch(q, u)
        totals += (y.sum(), J.data.sum())
    return time.perf_counter() - start, totals


def dask_arguments(n: int, chunk: int) -> tuple:
    import dask.array as da

    rs = da.random.default_rng(0)  # PCG64, as numpy's default_rng on the local side
    return rs.uniform(-1, 1, (n, 4), chunks=(chunk, 4)), rs.uniform(-5, 5, n, chunks=chunk)


def dask_run(C, n: int, chunk: int) -> tuple:
    import dask

    from symgraph.dask import batch

    q, u = dask_arguments(n, chunk)
    y, J = batch(C, q, u)
    start = time.perf_counter()
    totals = dask.compute(y.sum(), J.sum())
    return time.perf_counter() - start, np.array(totals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10**7)
    parser.add_argument("--chunk", type=int, default=10**6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=1, help="RK4 steps in the model")
    parser.add_argument("--gather", action="store_true", help="also time bringing the full outputs back")
    args = parser.parse_args()
    n, chunk = args.points, min(args.chunk, args.points)
    os.environ.setdefault("SYMGRAPH_CACHE_DIR", tempfile.mkdtemp(prefix="symgraph-dask-bench-"))

    import dask
    from distributed import Client, LocalCluster

    from symgraph.dask import batch, worker_stats

    F = cartpole_function(args.steps)
    t = time.perf_counter()
    C = F.compile()
    print(f"model: {C!r}; compile {time.perf_counter() - t:.2f} s; {n:,} points in blocks of {chunk:,}; "
          f"{os.cpu_count()} CPUs here")
    t_local, totals_local = local_run(C, n, chunk)
    print(f"C.batch, 1 process        : {t_local:7.2f} s  {n / t_local / 1e6:7.2f} M points/s")

    t = time.perf_counter()
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=50)
    client = Client(cluster)
    t_start = time.perf_counter() - t
    try:
        q, u = dask_arguments(4 * 1000, 1000)
        t = time.perf_counter()
        y, J = dask.compute(*batch(C, q, u))  # warm-up: every worker loads the code (a cache hit)
        t_warm = time.perf_counter() - t
        ref = C.batch(*dask.compute(q, u))
        assert np.array_equal(y, ref[0]) and np.array_equal(J, ref[1].data), "dask results differ from C.batch"
        stats = client.run(worker_stats)
        print(f"cluster start {t_start:.2f} s; first batch (import + load code on each worker) {t_warm:.2f} s; "
              f"per worker compiles/cache hits: "
              + ", ".join(f"{s['functions_compiled']}/{s['cache_hits']}" for s in stats.values()))
        before = client.run(worker_stats)
        t_dask, totals = dask_run(C, n, chunk)
        after = client.run(worker_stats)
        busy = sum(after[w]["block_seconds"] - before[w]["block_seconds"] for w in after)
        print(f"symgraph.dask.batch, {args.workers} workers: {t_dask:7.2f} s  {n / t_dask / 1e6:7.2f} M points/s  "
              f"(x{t_local / t_dask:.2f} of one process)")
        print(f"  time inside C.batch on the workers: {busy:.2f} s in all, {busy / n * 1e6:.2f} s per million points "
              f"(one process: {t_local / n * 1e6:.2f} s per million, arguments and sums included)")
        if args.gather:
            q, u = dask_arguments(n, chunk)
            t = time.perf_counter()
            y, J = dask.compute(*batch(C, q, u))
            t_gather = time.perf_counter() - t
            print(f"  with the full outputs gathered here ({(y.nbytes + J.nbytes) / 1e9:.2f} GB): {t_gather:7.2f} s  "
                  f"{n / t_gather / 1e6:7.2f} M points/s")
        print(f"sums (different random streams): local {totals_local.round(1).tolist()}, dask {totals.round(1).tolist()}")
    finally:
        client.close()
        cluster.close()


if __name__ == "__main__":
    main()
