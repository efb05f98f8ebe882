"""Symbolic AD on the chained Luksan model: symgraph vs CasADi SX.

For each N: time to build the gradient of the objective, the sparse
constraint Jacobian and the lower triangle of the Lagrangian Hessian
(``sigma*f + lambda'g`` with symbols ``sigma``, ``lambda``), with the number of
colors, nonzeros and operations of each result (instructions of a Function
over the result: inputs, constants and outputs not counted).  Where
``casadi`` is importable, the same for CasADi SX (``gradient``, ``jacobian``,
``hessian`` + ``tril``) and the ratios symgraph / CasADi.

Usage::

    python bench/ad.py              # N = 1,000 and 100,000
    python bench/ad.py --quick      # N = 1,000 only
    python bench/ad.py 1000 20000   # any N
    python bench/ad.py --optimize   # also count operations after F.optimize()
    python bench/ad.py --phases     # also where symgraph's time goes (topological order,
                                    # sparsity, coloring, sweeps) in each derivative
"""

from __future__ import annotations

import argparse
import gc
import time

import networkx  # noqa: F401  (imported up front so its import time is not charged to the first coloring)
import numpy as np
import scipy.sparse  # noqa: F401  (likewise: the first sparsity pattern's matrix imports it otherwise)

import symgraph as sg


def _timed(fn):
    gc.collect()
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


# The phases of symgraph's sparse AD, as symgraph.ad calls them (module globals, so wrapping them
# here times every call; the sweeps may call each other through calls of Functions, counted once each).
PHASES = ("topological", "active_nodes", "jacobian_sparsity", "column_coloring", "row_coloring", "star_coloring",
          "gradient_sweep", "forward_sweep", "reverse_sweep")


class PhaseTimer:
    """Wraps the phases above in symgraph.ad with timers; ``take()`` returns and resets the totals."""

    def __init__(self) -> None:
        from symgraph import ad

        self.totals: dict[str, float] = {}
        self.depth = 0
        for name in PHASES:
            setattr(ad, name, self._wrap(name, getattr(ad, name)))

    def _wrap(self, name, fn):
        def timed(*args, **kwargs):
            if self.depth:  # a phase inside another (a sweep's own topological order) counts to the outer one
                return fn(*args, **kwargs)
            self.depth += 1
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.depth -= 1
                self.totals[name] = self.totals.get(name, 0.0) + time.perf_counter() - t
        return timed

    def take(self) -> dict[str, float]:
        out, self.totals = self.totals, {}
        return out


def ours(n: int, optimize: bool, phases: PhaseTimer | None = None) -> dict:
    res = {}
    (x, f, g), res["build"] = _timed(lambda: sg.models.luksan(n))
    lam, sigma = sg.symbols("lam", n - 2), sg.symbols("sigma")
    with sg.building():
        L = sigma * f + (lam * g).sum()
    res["f ops"] = sg.Function("f", [x], [f]).n_ops
    res["g ops"] = sg.Function("g", [x], [g]).n_ops
    if phases is not None:
        phases.take()
    gr, res["grad time"] = _timed(lambda: sg.grad(f, x))
    res["grad phases"] = phases.take() if phases is not None else None
    J, res["jac time"] = _timed(lambda: sg.jacobian(g, x))
    res["jac phases"] = phases.take() if phases is not None else None
    H, res["hess time"] = _timed(lambda: sg.hessian(L, x, lower=True))
    res["hess phases"] = phases.take() if phases is not None else None
    for key, inputs, out in (("grad", [x], gr), ("jac", [x], J), ("hess", [x, lam, sigma], H)):
        F = sg.Function(key, inputs, [out])
        res[f"{key} ops"] = F.n_ops
        if optimize:
            res[f"{key} ops opt"] = F.optimize().n_ops
    res["jac colors"], res["jac mode"], res["jac nnz"] = J.n_colors, J.mode, J.nnz
    res["hess colors"], res["hess nnz"] = H.n_colors, H.nnz
    return res


def _casadi_ops(F) -> int:
    import casadi as ca

    skip = {ca.OP_INPUT, ca.OP_OUTPUT, ca.OP_CONST, ca.OP_PARAMETER}
    return sum(1 for k in range(F.n_instructions()) if F.instruction_id(k) not in skip)


def theirs(n: int) -> dict | None:
    try:
        import casadi as ca
    except ImportError:
        return None
    res = {}

    def build():
        x = ca.SX.sym("x", n)
        a, b = x[:-1], x[1:]
        f = ca.sum1(100 * (a**2 - b) ** 2 + (a - 1) ** 2)
        u, v, w = x[:-2], x[1:-1], x[2:]
        g = 3 * v**3 + 2 * w - 5 + ca.sin(v - w) * ca.sin(v + w) + 4 * v - u * ca.exp(u - v) - 3
        return x, f, g

    (x, f, g), res["build"] = _timed(build)
    lam, sigma = ca.SX.sym("lam", n - 2), ca.SX.sym("sigma")
    L = sigma * f + ca.dot(lam, g)
    res["f ops"] = _casadi_ops(ca.Function("f", [x], [f]))
    res["g ops"] = _casadi_ops(ca.Function("g", [x], [g]))
    gr, res["grad time"] = _timed(lambda: ca.gradient(f, x))
    J, res["jac time"] = _timed(lambda: ca.jacobian(g, x))
    H, res["hess time"] = _timed(lambda: ca.tril(ca.hessian(L, x)[0]))
    res["grad ops"] = _casadi_ops(ca.Function("g", [x], [gr]))
    res["jac ops"] = _casadi_ops(ca.Function("J", [x], [J]))
    res["hess ops"] = _casadi_ops(ca.Function("H", [x, lam, sigma], [H]))
    res["jac nnz"], res["hess nnz"] = J.nnz(), H.nnz()
    return res


def report(n: int, optimize: bool, phases: PhaseTimer | None = None) -> None:
    print(f"\n=== Luksan N = {n:,} ===")
    a = ours(n, optimize, phases)
    b = theirs(n)
    keys = ["build", "f ops", "g ops", "grad time", "grad ops", "jac time", "jac ops", "jac nnz", "jac colors",
            "jac mode", "hess time", "hess ops", "hess nnz", "hess colors"]
    if optimize:
        keys += ["grad ops opt", "jac ops opt", "hess ops opt"]
    print(f"{'':14s} {'symgraph':>12s} {'casadi':>12s} {'ratio':>8s}")
    for k in keys:
        va = a.get(k)
        vb = None if b is None else b.get(k if not k.endswith(" opt") else k[:-4])
        fa = f"{va:12.3f}" if isinstance(va, float) else f"{va!s:>12s}"
        fb = "" if vb is None else (f"{vb:12.3f}" if isinstance(vb, float) else f"{vb!s:>12s}")
        ratio = f"{va / vb:8.2f}" if isinstance(va, (int, float)) and isinstance(vb, (int, float)) and vb else ""
        print(f"{k:14s} {fa} {fb:>12s} {ratio}")
    if b is None:
        print("(casadi not importable: symgraph figures only)")
    if phases is not None:
        for key in ("grad", "jac", "hess"):
            spent = a[f"{key} phases"]
            rest = a[f"{key} time"] - sum(spent.values())
            parts = ", ".join(f"{name} {t:.3f}" for name, t in sorted(spent.items(), key=lambda kv: -kv[1]))
            print(f"{key} phases (s): {parts}, rest {rest:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, help="values of N (default 1000 100000)")
    parser.add_argument("--quick", action="store_true", help="N = 1000 only")
    parser.add_argument("--optimize", action="store_true", help="also count ops after Function.optimize()")
    parser.add_argument("--phases", action="store_true", help="also time symgraph's AD phases")
    args = parser.parse_args()
    sizes = args.sizes or ([1000] if args.quick else [1000, 100000])
    np.set_printoptions(precision=3)
    phases = PhaseTimer() if args.phases else None
    for n in sizes:
        report(n, args.optimize, phases)


if __name__ == "__main__":
    main()
