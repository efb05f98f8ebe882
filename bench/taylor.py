"""Taylor mode (sg.taylor) vs jvp nested K times: graph size, build and evaluation time.

For a moderately sized function and each order K, builds the coefficients
``c_0..c_K`` of ``t -> f(x + t v)`` two ways:

* ``taylor``: :func:`symgraph.taylor.taylor`, one pass of Taylor arithmetic;
* ``nested``: ``sg.jvp`` applied K times along ``v`` (derivatives
  ``D_v^k f``; every level differentiates the whole graph of the previous one).

and prints the number of operations of all coefficients together
(``sg.count_ops``), the time to build them and the time of one VM
evaluation of a Function over them.  Nested jvp is skipped past the first
order whose build takes longer than ``--nested-limit`` seconds.  The
functions: ``pendulum``, the final state of a few RK4 steps of a damped
pendulum in its initial state, and ``luksan``, the Luksan objective plus
the sum of its constraints (symgraph.models) at N = 100.

Usage::

    python bench/taylor.py                    # both functions, orders 2..10
    python bench/taylor.py --quick            # orders 2, 4, 6
    python bench/taylor.py --model pendulum --orders 2 3 4
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np

import symgraph as sg
from symgraph.taylor import taylor


def pendulum(steps: int = 5, h: float = 0.1):
    """``(x, f)``: the state after ``steps`` RK4 steps of ``theta'' = -sin(theta) - 0.1 theta'`` from ``x``."""
    x = sg.symbols("x", 2)

    def rhs(s):
        return np.array([s[1], -sg.sin(s[0]) - 0.1 * s[1]], dtype=object)

    s = x
    for _ in range(steps):
        k1 = rhs(s)
        k2 = rhs(s + 0.5 * h * k1)
        k3 = rhs(s + 0.5 * h * k2)
        k4 = rhs(s + h * k3)
        s = s + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return x, s


def luksan(n: int = 100):
    """``(x, f)``: the Luksan objective plus the sum of its constraints (sin, exp, cubes) at size ``n``."""
    x, f, g = sg.models.luksan(n)
    return x, f + np.sum(g)


MODELS = {"pendulum": pendulum, "luksan": luksan}


def _timed(fn):
    gc.collect()
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def nested_jvp(f, x, v, order: int) -> list:
    """``[f, D_v f, ..., D_v^order f]`` by jvp applied ``order`` times."""
    out = [f]
    for _ in range(order):
        out.append(sg.jvp(out[-1], x, v))
    return out


def _eval_time(coeffs, x, x0, repeat: int = 5) -> float:
    F = sg.Function("c", [x], [np.asarray(c, dtype=object) for c in coeffs])
    F(x0)  # the Tape is built on the first call
    t = time.perf_counter()
    for _ in range(repeat):
        F(x0)
    return (time.perf_counter() - t) / repeat


def measure(name: str, orders: list[int], nested_limit: float) -> list[dict]:
    """One row per order: ops, build and evaluation time of both ways (None where nested was skipped)."""
    x, f = MODELS[name]()
    rng = np.random.default_rng(0)
    v = rng.uniform(-1.0, 1.0, x.shape)
    x0 = rng.uniform(-1.0, 1.0, x.shape)
    rows, nested_on = [], True
    for k in orders:
        row = {"model": name, "order": k, "f_ops": sg.count_ops(f)}
        tc, row["taylor_build"] = _timed(lambda: taylor(f, x, v, k))
        row["taylor_ops"] = sg.count_ops(tc)
        row["taylor_eval"] = _eval_time(tc, x, x0)
        if nested_on:
            nc, row["nested_build"] = _timed(lambda: nested_jvp(f, x, v, k))
            row["nested_ops"] = sg.count_ops(nc)
            row["nested_eval"] = _eval_time(nc, x, x0)
            nested_on = row["nested_build"] <= nested_limit
        rows.append(row)
    return rows


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(rows: list[dict]) -> str:
    head = (f"{'model':>9} {'K':>3} {'f ops':>7} | {'taylor ops':>10} {'build s':>8} {'eval ms':>8} | "
            f"{'nested ops':>10} {'build s':>8} {'eval ms':>8} | {'ops ratio':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        nested = r.get("nested_ops")
        ratio = None if nested is None else nested / r["taylor_ops"]
        lines.append(
            f"{r['model']:>9} {r['order']:>3} {r['f_ops']:>7} | {r['taylor_ops']:>10} {r['taylor_build']:>8.3f} "
            f"{1e3 * r['taylor_eval']:>8.3f} | {_fmt(nested, '>10')} {_fmt(r.get('nested_build'), '>8.3f')} "
            f"{_fmt(None if r.get('nested_eval') is None else 1e3 * r['nested_eval'], '>8.3f')} | "
            f"{_fmt(ratio, '>9.1f')}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the benchmark, print the table, return its rows (for bench/solvers.py to fold in)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=sorted(MODELS), action="append")
    p.add_argument("--orders", type=int, nargs="+", default=list(range(2, 11)))
    p.add_argument("--quick", action="store_true", help="orders 2, 4, 6")
    p.add_argument("--nested-limit", type=float, default=20.0,
                   help="stop nested jvp after an order whose build takes longer (seconds)")
    args = p.parse_args(argv)
    orders = [2, 4, 6] if args.quick else args.orders
    rows = []
    for name in args.model or ["pendulum", "luksan"]:
        rows += measure(name, orders, args.nested_limit)
    print("Taylor coefficients of t -> f(x + t v): sg.taylor vs jvp nested K times (VM evaluation)")
    print(table(rows))
    return rows


if __name__ == "__main__":
    main()
