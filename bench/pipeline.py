"""Pipeline speed (issue 13, "Faster pipeline"): optimizer, C generation, symbolic AD.

For unstructured graphs of about 10^5 and 10^6 operations (the unrolled
Luksan constraints with their sparse Jacobian, an unrolled RK4 sensitivity
model of the Van der Pol oscillator, a random graph over the arithmetic and
elementary ops) prints the time of

* ``F.optimize(1)`` (target: under 1 s per 10^5 nodes),
* C generation, ``codegen.c99.program(G, runtime_tables=True)`` on the
  optimized Function (what ``G.compile()`` runs before the C compiler;
  target: under 0.3 s per 10^5 ops),

and, on the Luksan model at N = 1,000 and 10,000, ``sg.jacobian`` of the
constraints and ``sg.hessian`` of the Lagrangian (lower triangle) beside
CasADi SX ``jacobian``/``hessian`` + ``tril`` (target: within 3x).

    python3 bench/pipeline.py            # 10^5 and 10^6 ops, AD at N = 1,000 and 10,000
    python3 bench/pipeline.py --quick    # 10^5 ops only, AD at N = 1,000
    python3 bench/pipeline.py --only ad  # one section: optimize, codegen or ad (several allowed)
    python3 bench/pipeline.py --profile optimize --size 100000  # cProfile of one phase on the Luksan model
    python3 bench/pipeline.py --digest   # sha256 of each model's optimized Tape and generated C, and rule counts

Times are CPU seconds of this process (``time.process_time``: every phase is
single-threaded, and on a shared machine wall time measures the neighbours),
the best of ``--repeat`` runs (default 1), with the cyclic garbage collector
paused as ``compile()`` does.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import sys
import time
from typing import Any, Callable

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)  # this directory holds bench/codegen.py, which would shadow the codegen package

import symgraph as sg  # noqa: E402
from codegen.c99 import program  # noqa: E402
from symgraph.expr import building  # noqa: E402
from symgraph.models import luksan  # noqa: E402

try:
    import casadi as ca
except ImportError:  # the AD comparison prints symgraph's figures only
    ca = None

OPTIMIZE_TARGET = 1.0  # s per 10^5 nodes
CODEGEN_TARGET = 0.3  # s per 10^5 ops
AD_TARGET = 3.0  # ratio to CasADi SX


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[Any, float]:
    """``fn()`` and its best CPU time over ``repeat`` runs, the cyclic collector paused."""
    best, out = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        with building():
            t = time.process_time()
            out = fn()
            best = min(best, time.process_time() - t)
    return out, best


# ------------------------------------------------------------------ models

def _sibling(name: str):
    """A sibling bench script as a module (``bench/optimize.py`` holds the unrolled RK4 model)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{name}", os.path.join(ROOT, "bench", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def luksan_jacobian(ops: int) -> sg.Function:
    """Luksan constraints and their sparse Jacobian, N chosen for about ``ops`` operations (~33 per N)."""
    n = max(10, ops // 33)
    x, _, g = luksan(n)
    return sg.Function("luksan_jac", [x], [g, sg.jacobian(g, x)])


def rk4_sensitivity(ops: int) -> sg.Function:
    """Van der Pol, unrolled RK4: final state and its Jacobian in (state, parameters); ~186 ops a step."""
    steps = max(1, ops // 186)
    with building():
        z = sg.symbols("z", 4)
        final = np.array(_sibling("optimize").rk4_final(sg, [z[0], z[1]], z[2:], steps, 0.01), dtype=object)
    return sg.Function("rk4_sens", [z], [final, sg.jacobian(final, z)])


def random_graph(ops: int, seed: int = 0) -> sg.Function:
    """``ops`` random operations (+ - * / sin exp sqrt abs with constants) over 100 inputs; 100 outputs."""
    rng = np.random.default_rng(seed)
    with building():
        x = sg.symbols("x", 100)
        pool = list(x)
        binary = [lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: a / (1 + b * b)]
        unary = [sg.sin, lambda a: sg.exp(-a * a), lambda a: sg.sqrt(1 + a * a), abs, lambda a: 2.5 * a]
        kinds = rng.integers(0, len(binary) + len(unary), ops)
        # operands mostly recent (a long dependency chain, as models have), some anywhere
        back = np.minimum(rng.geometric(0.05, (ops, 2)), 10**9)
        anywhere = rng.random((ops, 2)) < 0.1
        for k in range(ops):
            m = len(pool)
            i, j = (int(rng.integers(0, m)) if anywhere[k, t] else max(0, m - int(back[k, t])) for t in (0, 1))
            kind = int(kinds[k])
            if kind < len(binary):
                pool.append(binary[kind](pool[i], pool[j]))
            else:
                pool.append(unary[kind - len(binary)](pool[i]))
        out = np.array(pool[-100:], dtype=object)
    return sg.Function("random", [x], [out])


MODELS = {"luksan": luksan_jacobian, "rk4": rk4_sensitivity, "random": random_graph}


# ------------------------------------------------------------------ sections

def pipeline(sizes: list[int], repeat: int, sections: set[str]) -> None:
    print(f"{'model':<8} {'target':>8} {'ops':>9} {'ops opt':>9} {'optimize':>9} {'/1e5':>6} "
          f"{'C gen':>7} {'/1e5':>6} {'C MB':>6}")
    for size in sizes:
        for name, build in MODELS.items():
            F, t_build = timed(lambda: build(size))
            row = f"{name:<8} {size:>8.0e} {F.n_ops:>9}"
            G, t_opt = timed(lambda: F.optimize(1), repeat) if "optimize" in sections else (F, float("nan"))
            row += f" {G.n_ops:>9} {t_opt:>9.3f} {t_opt * 1e5 / F.n_ops:>6.2f}"
            if "codegen" in sections:
                prog, t_gen = timed(lambda: program(G, runtime_tables=True), repeat)
                mb = sum(len(p) for p in prog.parts) / 1e6
                row += f" {t_gen:>7.3f} {t_gen * 1e5 / max(1, G.n_ops):>6.2f} {mb:>6.1f}"
            print(row, flush=True)
            del F, G
    print(f"targets: optimize < {OPTIMIZE_TARGET} s per 1e5 nodes; C generation < {CODEGEN_TARGET} s per 1e5 ops")


def casadi_luksan(n: int):
    x = ca.SX.sym("x", n)
    a, b = x[:-1], x[1:]
    f = ca.sum1(100 * (a**2 - b) ** 2 + (a - 1) ** 2)
    u, v, w = x[:-2], x[1:-1], x[2:]
    g = 3 * v**3 + 2 * w - 5 + ca.sin(v - w) * ca.sin(v + w) + 4 * v - u * ca.exp(u - v) - 3
    lam, sigma = ca.SX.sym("lam", n - 2), ca.SX.sym("sigma")
    return x, g, sigma * f + ca.dot(lam, g)


def ad(sizes: list[int], repeat: int) -> None:
    print(f"{'N':>7} {'phase':<8} {'symgraph':>9} {'casadi':>9} {'ratio':>7}")
    for n in sizes:
        x, f, g = luksan(n)
        lam, sigma = sg.symbols("lam", n - 2), sg.symbols("sigma")
        with building():
            lag = sigma * f + (lam * g).sum()
        _, t_jac = timed(lambda: sg.jacobian(g, x), repeat)
        _, t_hess = timed(lambda: sg.hessian(lag, x, lower=True), repeat)
        c_jac = c_hess = None
        if ca is not None:
            X, G, L = casadi_luksan(n)
            _, c_jac = timed(lambda: ca.jacobian(G, X), repeat)
            _, c_hess = timed(lambda: ca.tril(ca.hessian(L, X)[0]), repeat)
        for phase, ours, theirs in (("jacobian", t_jac, c_jac), ("hessian", t_hess, c_hess)):
            tail = f" {theirs:>9.3f} {ours / theirs:>7.2f}" if theirs else "  (casadi not importable)"
            print(f"{n:>7} {phase:<8} {ours:>9.3f}{tail}", flush=True)
    print(f"target: ratio < {AD_TARGET}")


def digest(size: int) -> None:
    """What a faster pipeline must leave unchanged: per model, sha256 of the optimized Tape's arrays and of
    ``single_file(program(G, runtime_tables=True), G)``, with the rule counts and passes."""
    import hashlib

    from codegen.c99 import single_file

    for name, build in MODELS.items():
        F = build(size)
        G = F.optimize(1)
        c = hashlib.sha256(single_file(program(G, runtime_tables=True), G).encode()).hexdigest()
        tape = hashlib.sha256()
        for attr in sorted(vars(G.tape)):
            value = getattr(G.tape, attr)
            tape.update(attr.encode())
            for part in value if isinstance(value, tuple) else (value,):
                tape.update(part.tobytes() if hasattr(part, "tobytes") else repr(part).encode())
        report = G.optimize_report
        print(f"{name:<8} C {c[:16]} tape {tape.hexdigest()[:16]} ops {G.n_ops} passes {report.passes} "
              f"counts {sorted(report.counts.items())}", flush=True)


def profile(phase: str, model: str, size: int, top: int) -> None:
    """cProfile of one phase on one model, the ``top`` functions by internal time."""
    F = MODELS[model](size)
    if phase == "optimize":
        run = lambda: F.optimize(1)  # noqa: E731
    elif phase == "codegen":
        G = F.optimize(1)
        run = lambda: program(G, runtime_tables=True)  # noqa: E731
    else:
        n = max(10, size // 33)
        x, f, g = luksan(n)
        lam, sigma = sg.symbols("lam", n - 2), sg.symbols("sigma")
        with building():
            lag = sigma * f + (lam * g).sum()
        run = (lambda: sg.jacobian(g, x)) if phase == "jacobian" else (lambda: sg.hessian(lag, x, lower=True))
    gc.collect()
    prof = cProfile.Profile()
    with building():
        prof.enable()
        run()
        prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(top)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10^5 ops and N = 1,000 only")
    ap.add_argument("--only", action="append", choices=["optimize", "codegen", "ad"], help="sections to run")
    ap.add_argument("--repeat", type=int, default=1, help="runs per figure (the best is printed)")
    ap.add_argument("--profile", choices=["optimize", "codegen", "jacobian", "hessian"], help="profile one phase")
    ap.add_argument("--model", choices=sorted(MODELS), default="luksan", help="model to profile")
    ap.add_argument("--size", type=int, default=100_000, help="operations of the profiled model")
    ap.add_argument("--top", type=int, default=30, help="functions in the profile")
    ap.add_argument("--digest", action="store_true", help="hashes of the optimized Tapes and the C, rule counts")
    args = ap.parse_args()
    if args.digest:
        digest(args.size)
        return
    if args.profile:
        profile(args.profile, args.model, args.size, args.top)
        return
    sections = set(args.only or ["optimize", "codegen", "ad"])
    sizes = [100_000] if args.quick else [100_000, 1_000_000]
    if sections & {"optimize", "codegen"}:
        pipeline(sizes, args.repeat, sections)
    if "ad" in sections:
        ad([1000] if args.quick else [1000, 10_000], args.repeat)


if __name__ == "__main__":
    main()
