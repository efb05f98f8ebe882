"""CasADi import (symgraph.interop.casadi.from_casadi): time to import a large SX Function.

Builds two CasADi SX Functions of about ``--instructions`` instructions each
(default 100,000):

* ``luksan``: the Luksan objective and constraints (symgraph.models) at the
  N that gives that many instructions;
* ``rk4``: a long unrolled RK4 integration of a damped, driven pendulum.

and prints the CasADi instruction count, the seconds ``from_casadi`` takes
(best of ``--repeat``), the symgraph ops of the imported Function, and the
largest relative difference of its values from CasADi's at one point.

Usage::

    python bench/casadi_import.py
    python bench/casadi_import.py --instructions 1000000 --repeat 1
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from symgraph.interop.casadi import from_casadi


def luksan(target: int):
    import casadi as ca

    n = max(3, target // 29)  # CasADi needs about 29 instructions per variable
    x = ca.SX.sym("x", n)
    a, b = x[:-1], x[1:]
    f = ca.sum1(100 * (a ** 2 - b) ** 2 + (a - 1) ** 2)
    u, v, w = x[:-2], x[1:-1], x[2:]
    g = 3 * v ** 3 + 2 * w - 5 + ca.sin(v - w) * ca.sin(v + w) + 4 * v - u * ca.exp(u - v) - 3
    return ca.Function("luksan", [x], [f, g], ["x"], ["f", "g"]), [np.linspace(-1.0, 1.0, n)]


def rk4(target: int, dt: float = 0.01):
    import casadi as ca

    x0, p = ca.SX.sym("x0", 2), ca.SX.sym("p", 2)

    def rhs(s):
        return ca.vertcat(s[1], -ca.sin(s[0]) - p[0] * s[1] + p[1])

    steps = max(1, target // 40)  # about 40 instructions per step
    s = x0
    for _ in range(steps):
        k1 = rhs(s)
        k2 = rhs(s + dt / 2 * k1)
        k3 = rhs(s + dt / 2 * k2)
        k4 = rhs(s + dt * k3)
        s = s + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return ca.Function("rk4", [x0, p], [s], ["x0", "p"], ["xf"]), [np.array([0.5, 0.0]), np.array([0.1, 0.2])]


def worst_difference(f, F, args) -> float:
    import casadi as ca

    ours = F(*args)
    ours = ours if F.n_out > 1 else (ours,)
    theirs = f.call([ca.DM(a) for a in args])
    worst = 0.0
    for a, b in zip(ours, theirs):
        b = np.array(b.full()).reshape(np.shape(a))
        worst = max(worst, float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instructions", type=int, default=100_000, help="target CasADi instruction count")
    parser.add_argument("--repeat", type=int, default=3, help="imports timed (the best is printed)")
    parser.add_argument("--model", choices=["luksan", "rk4"], nargs="*", default=["luksan", "rk4"])
    opts = parser.parse_args()
    print(f"{'model':8s} {'instructions':>12s} {'seconds':>8s} {'instr/s':>10s} {'sg ops':>8s} {'max rel diff':>12s}")
    for name in opts.model:
        f, args = {"luksan": luksan, "rk4": rk4}[name](opts.instructions)
        best, F = float("inf"), None
        for _ in range(opts.repeat):
            F = None  # drop the previous import first, as a fresh process would have nothing
            start = time.perf_counter()
            F = from_casadi(f)
            best = min(best, time.perf_counter() - start)
        count = f.n_instructions()
        print(f"{name:8s} {count:12,d} {best:8.3f} {count / best:10,.0f} {F.n_ops:8,d} "
              f"{worst_difference(f, F, args):12.1e}")


if __name__ == "__main__":
    main()
