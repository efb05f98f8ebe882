"""Luksan problem with IPOPT: symgraph callbacks vs CasADi's nlpsol (with and without jit).

Prints, per N: set-up time (symbolic + compile), solve time, time inside
callbacks, iterations and the optimum; where casadi is importable, the same
for ``casadi.nlpsol('ipopt')`` interpreted (SX virtual machine) and with
``jit`` (generated C compiled with the same -O2), with ratios.

Targets (issue 6): our callbacks' time <= CasADi's compiled callbacks; our
set-up at least 5x smaller than CasADi's jit at N = 1,000.

Run: python3 bench/nlp.py [N ...] [--casadi-jit-max N]   (default: 1000 10000; CasADi's
jit is skipped above --casadi-jit-max, default 1000, as its compile takes many minutes there)
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

# The repository root first: this script's own directory holds bench/codegen.py,
# which would otherwise shadow the codegen package.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import symgraph as sg  # noqa: E402

IPOPT = {"print_level": 0, "sb": "yes", "max_iter": 200}


def start_point(n: int) -> np.ndarray:
    return np.where(np.arange(n) % 2 == 0, -1.2, 1.0)


def ours(n: int) -> dict:
    start = time.perf_counter()
    x, f, g = sg.models.luksan(n)
    nlp = sg.NLP(x=x, f=f, g=g, name=f"bench_luksan{n}")
    setup = time.perf_counter() - start
    start = time.perf_counter()
    sol = nlp.solve_ipopt(start_point(n), options=IPOPT)
    total = time.perf_counter() - start
    return {"setup": setup, "solve": total, "callbacks": sol.stats["callback_seconds"],
            "iterations": sol.iterations, "f": sol.f, "status": sol.message}


def casadi_run(n: int, jit: bool) -> dict | None:
    try:
        import casadi as ca
    except ImportError:
        return None
    start = time.perf_counter()
    x = ca.SX.sym("x", n)
    f = ca.sum1(100 * (x[:-1] ** 2 - x[1:]) ** 2 + (x[:-1] - 1) ** 2)
    u, v, w = x[:-2], x[1:-1], x[2:]
    g = 3 * v ** 3 + 2 * w - 5 + ca.sin(v - w) * ca.sin(v + w) + 4 * v - u * ca.exp(u - v) - 3
    opts = {"ipopt": dict(IPOPT), "print_time": False}
    if jit:
        opts.update({"jit": True, "compiler": "shell", "jit_options": {"flags": ["-O2"], "verbose": False}})
    solver = ca.nlpsol("solver", "ipopt", {"x": x, "f": f, "g": g}, opts)
    setup = time.perf_counter() - start
    start = time.perf_counter()
    res = solver(x0=start_point(n), lbg=0, ubg=0)
    total = time.perf_counter() - start
    stats = solver.stats()
    callbacks = sum(v for k, v in stats.items() if k.startswith("t_wall_nlp_"))
    return {"setup": setup, "solve": total, "callbacks": callbacks, "iterations": stats.get("iter_count"),
            "f": float(res["f"]), "status": stats.get("return_status")}


def show(label: str, r: dict | None, ref: dict | None = None) -> None:
    if r is None:
        print(f"  {label:<22} (casadi not installed)")
        return
    ratio = ""
    if ref is not None:
        ratio = (f"   ours/this: set-up {ref['setup'] / r['setup']:.2f}x, "
                 f"callbacks {ref['callbacks'] / max(r['callbacks'], 1e-12):.2f}x")
    print(f"  {label:<22} set-up {r['setup']:7.2f} s  solve {r['solve']:7.3f} s  callbacks {r['callbacks']:7.4f} s  "
          f"iters {r['iterations']}  f* {r['f']:.8g}  ({r['status']}){ratio}")


def main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[1000, 10000])
    parser.add_argument("--casadi-jit-max", type=int, default=1000)
    args = parser.parse_args(argv)
    for n in args.sizes:
        print(f"Luksan N = {n}")
        mine = ours(n)
        show("symgraph (C, -O2)", mine)
        show("casadi SX (no jit)", casadi_run(n, jit=False), mine)
        if n <= args.casadi_jit_max:
            show("casadi jit (-O2)", casadi_run(n, jit=True), mine)
        else:
            print(f"  {'casadi jit (-O2)':<22} skipped above N = {args.casadi_jit_max} (--casadi-jit-max)")


if __name__ == "__main__":
    main(sys.argv[1:])
