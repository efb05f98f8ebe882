"""Optimizer benchmark: operation counts before/after, CasADi's count, optimizer speed.

    python3 bench/optimize.py            # the issue's sizes (Luksan N = 1,000, ...)
    python3 bench/optimize.py --quick    # small sizes, a few seconds

Each model is written once over plain Python scalars, then built both as
symgraph Exprs and (when ``casadi`` is importable) as CasADi SX, so both
count the same mathematics.  Derivatives: ``sg.grad/jacobian/hessian`` and
CasADi's ``gradient/jacobian/hessian``.  CasADi's count is its
``n_instructions()`` minus inputs, outputs and constants (the figure
comparable with ``F.n_ops``); the raw figure is printed next to it.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

import symgraph as sg

try:
    import casadi as ca
except ImportError:  # benchmarks run without it
    ca = None


# ----------------------------------------------------------------- models
class SymgraphLib:
    sin, cos, exp, log, sqrt = sg.sin, sg.cos, sg.exp, sg.log, sg.sqrt

    @staticmethod
    def symbols(name, n):
        return list(sg.symbols(name, n))


class CasadiLib:
    if ca is not None:
        sin, cos, exp, log, sqrt = ca.sin, ca.cos, ca.exp, ca.log, ca.sqrt

    @staticmethod
    def symbols(name, n):
        return [ca.SX.sym(f"{name}{i}") for i in range(n)]


def luksan_f(x):
    return sum(100 * (x[i] ** 2 - x[i + 1]) ** 2 + (x[i] - 1) ** 2 for i in range(len(x) - 1))


def luksan_g(L, x):
    return [3 * x[i + 1] ** 3 + 2 * x[i + 2] - 5 + L.sin(x[i + 1] - x[i + 2]) * L.sin(x[i + 1] + x[i + 2])
            + 4 * x[i + 1] - x[i] * L.exp(x[i] - x[i + 1]) - 3 for i in range(len(x) - 2)]


def gmm_loglik(L, params, data, k, d):
    """Sum over points of log(sum_k exp(log w_k - |y - mu_k|^2 / (2 s_k^2) - d log s_k)) (+ constants)."""
    logw, mu, logs = params[:k], params[k:k + k * d], params[k + k * d:]
    total = 0
    for y in data:
        terms = []
        for j in range(k):
            sq = sum((float(y[i]) - mu[j * d + i]) ** 2 for i in range(d))
            terms.append(L.exp(logw[j] - 0.5 * sq * L.exp(-2 * logs[j]) - d * logs[j]))
        total = total + L.log(sum(terms))
    return total


def rk4_final(L, state, p, steps, h):
    """Van der Pol oscillator with parameter mu = p[0] and forcing p[1], unrolled RK4."""
    def rhs(s):
        u, v = s
        return [v, p[0] * (1 - u * u) * v - u + p[1]]

    s = list(state)
    for _ in range(steps):
        k1 = rhs(s)
        k2 = rhs([s[i] + h / 2 * k1[i] for i in range(2)])
        k3 = rhs([s[i] + h / 2 * k2[i] for i in range(2)])
        k4 = rhs([s[i] + h * k3[i] for i in range(2)])
        s = [s[i] + h / 6 * (k1[i] + 2 * k2[i] + 2 * k3[i] + k4[i]) for i in range(2)]
    return s


def cases(n: int, gmm_points: int, rk4_steps: int):
    """(name, symgraph Function builder, casadi Function builder) per benchmark."""
    rng = np.random.default_rng(0)
    data = rng.normal(size=(gmm_points, 2))
    k, d = 4, 2

    def sg_arr(v):
        return np.array(v, dtype=object)

    def luksan_grad(lib):
        x = lib.symbols("x", n)
        f = luksan_f(x)
        if lib is SymgraphLib:
            return sg.Function("luksan_grad", [sg_arr(x)], [f, sg.grad(f, sg_arr(x))])
        X = ca.vertcat(*x)
        return ca.Function("luksan_grad", [X], [f, ca.gradient(f, X)])

    def luksan_jac(lib):
        x = lib.symbols("x", n)
        g = luksan_g(lib, x)
        if lib is SymgraphLib:
            return sg.Function("luksan_jac", [sg_arr(x)], [sg_arr(g), sg.jacobian(sg_arr(g), sg_arr(x))])
        X, G = ca.vertcat(*x), ca.vertcat(*g)
        return ca.Function("luksan_jac", [X], [G, ca.jacobian(G, X)])

    def luksan_hess(lib):
        x, lam = lib.symbols("x", n), lib.symbols("l", n - 2)
        lag = luksan_f(x) + sum(a * b for a, b in zip(lam, luksan_g(lib, x)))
        if lib is SymgraphLib:
            return sg.Function("luksan_hess", [sg_arr(x), sg_arr(lam)], [sg.hessian(lag, sg_arr(x))])
        X = ca.vertcat(*x)
        return ca.Function("luksan_hess", [X, ca.vertcat(*lam)], [ca.hessian(lag, X)[0]])

    def gmm_grad(lib):
        p = lib.symbols("p", k + k * d + k)
        f = gmm_loglik(lib, p, data, k, d)
        if lib is SymgraphLib:
            return sg.Function("gmm_grad", [sg_arr(p)], [f, sg.grad(f, sg_arr(p))])
        P = ca.vertcat(*p)
        return ca.Function("gmm_grad", [P], [f, ca.gradient(f, P)])

    def rk4_sens(lib):
        s0, p = lib.symbols("s", 2), lib.symbols("p", 2)
        final = rk4_final(lib, s0, p, rk4_steps, 0.05)
        if lib is SymgraphLib:
            z = sg_arr(s0 + p)
            return sg.Function("rk4_sens", [z], [sg_arr(final), sg.jacobian(sg_arr(final), z)])
        Z, S = ca.vertcat(*(s0 + p)), ca.vertcat(*final)
        return ca.Function("rk4_sens", [Z], [S, ca.jacobian(S, Z)])

    return [(f"Luksan N={n}: f + gradient", luksan_grad), (f"Luksan N={n}: g + Jacobian", luksan_jac),
            (f"Luksan N={n}: Lagrangian Hessian", luksan_hess),
            (f"GMM K={k} D={d} {gmm_points} points: loglik + gradient", gmm_grad),
            (f"Van der Pol RK4 x{rk4_steps}: state + sensitivity", rk4_sens)]


def casadi_ops(F) -> tuple[int, int]:
    """(operations, raw n_instructions) of a CasADi SX Function."""
    skip = {ca.OP_INPUT, ca.OP_OUTPUT, ca.OP_CONST, ca.OP_PARAMETER}
    n = F.n_instructions()
    return sum(1 for i in range(n) if F.instruction_id(i) not in skip), n


def speed(n: int) -> tuple[int, float, float]:
    """Wall and CPU seconds of F.optimize(1) per 10^5 operations on the Luksan Jacobian of size n."""
    x, f, g = sg.models.luksan(n)
    F = sg.Function("jac", [x], [g, sg.jacobian(g, x)])
    t, c = time.perf_counter(), time.process_time()
    G = F.optimize(1)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    per = 1e5 / F.n_ops
    return F.n_ops, wall * per, cpu * per, G.optimize_report.rewrite_seconds * per


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (Luksan N=100, 40 GMM points, 10 RK4 steps)")
    ap.add_argument("--n", type=int, default=None, help="Luksan size (default 1000, quick 100)")
    ap.add_argument("--no-casadi", action="store_true", help="skip the CasADi comparison")
    ap.add_argument("--reports", action="store_true", help="print the per-rule report of each optimization")
    args = ap.parse_args()
    n = args.n or (100 if args.quick else 1000)
    gmm_points, rk4_steps = (40, 10) if args.quick else (200, 50)
    use_casadi = ca is not None and not args.no_casadi
    print(f"symgraph optimizer benchmark (casadi {'%s' % ca.__version__ if use_casadi else 'not used'})")
    header = f"{'case':<46} {'ops':>8} {'level 1':>8} {'level 2':>8} {'casadi':>8} {'(raw)':>8} {'t1 [s]':>7} {'t2 [s]':>7}"
    print(header)
    print("-" * len(header))
    for name, build in cases(n, gmm_points, rk4_steps):
        try:
            F = build(SymgraphLib)
        except AttributeError as exc:  # e.g. sg.hessian missing in an older tree
            print(f"{name:<46} skipped ({exc})")
            continue
        t = time.perf_counter()
        G1 = F.optimize(1)
        t1 = time.perf_counter() - t
        t = time.perf_counter()
        G2 = F.optimize(2)
        t2 = time.perf_counter() - t
        cas, raw = casadi_ops(build(CasadiLib)) if use_casadi else ("-", "-")
        print(f"{name:<46} {F.n_ops:>8} {G1.n_ops:>8} {G2.n_ops:>8} {cas:>8} {raw:>8} {t1:>7.2f} {t2:>7.2f}")
        if args.reports:
            print(G1.optimize_report)
            print(G2.optimize_report)
    size = 300 if args.quick else 3000
    n_ops, wall, cpu, rewriting = speed(size)
    print(f"\noptimizer speed (level 1, Luksan Jacobian N={size}, {n_ops} ops): per 10^5 ops {wall:.2f} s wall, "
          f"{cpu:.2f} s CPU including the new Function's Tape; rewriting alone {rewriting:.2f} s wall "
          f"(target < 2 s)")


if __name__ == "__main__":
    main()
