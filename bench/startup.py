"""Time to first result (issue 13): cold and warm set-up, first IPOPT iteration, tiers, CasADi beside it.

For each case a fresh process sets the problem up with ``sg.NLP`` (``tier="auto"``,
the default there) in an empty temporary ``SYMGRAPH_CACHE_DIR`` (cold), then a
second process does it again in the same directory (warm); a third cold
process uses ``tier="best"`` (the gcc-first path: what set-up did before tiers).
Each prints:

* ``setup``: ``sg.NLP(...)`` returns (callbacks loaded, first calls made);
* ``first_iter``: the first IPOPT iteration is done (its first Hessian evaluation returns);
* ``solve``: ``solve_ipopt`` returns, counted from the start of the set-up;
* ``best``: every callback runs its final code (the last switch);
* ``eval interp``/``eval tcc``/``eval -O2``: one evaluation of all five callbacks on each tier (median;
  ``interp``: the Tape interpreter, which large callbacks start on).

Cases: cart-pole multiple shooting (``examples/cartpole_multiple_shooting.py``,
RK4 with 4 substeps) at N = 100 and 400, unrolled and mapped; the Luksan NLP at
N = 1,000 and 10,000; with ``--big``, cart-pole N = 400 unrolled and a 10^6-op
unstructured graph (compile only).  CasADi's ``nlpsol`` set-up, without and with
its jit, where casadi is installed.

Run: python3 bench/startup.py [--big] [--only cartpole100u,...]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# bench/codegen.py would shadow the codegen package: this folder leaves the import path
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
IPOPT = {"print_level": 0, "sb": "yes", "max_iter": 500}
DEFAULT_CASES = ("cartpole100m", "cartpole400m", "cartpole100u", "luksan1000", "luksan10000")
BIG_CASES = ("cartpole400u", "graph1e6")


# ------------------------------------------------------------------ problems
def problem(case: str):
    """``(x, f, g, x0, lbx, ubx)`` of a case."""
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    if case.startswith("cartpole"):
        import cartpole_multiple_shooting as cp

        n, mapped = int(case[8:-1]), case.endswith("m")
        pb = cp.build(n, mapped=mapped)
        return pb.w, pb.f, pb.g, pb.x0, pb.lbx, pb.ubx
    from symgraph.models import luksan

    n = int(case[6:])
    x, f, g = luksan(n)
    return x, f, g, np.where(np.arange(n) % 2 == 0, -1.2, 1.0), None, None


def big_graph(n_ops: int = 1_000_000):
    """An unstructured graph of about ``n_ops`` operations: rounds of mixing over 1,000 scalars."""
    import symgraph as sg

    width = 1000
    x = sg.symbols("x", width)
    with sg.building():
        v = x
        rng = np.random.default_rng(0)
        for _ in range(n_ops // (3 * width)):
            perm = rng.permutation(width)
            v = sg.sin(v) * 0.5 + v[perm] * 0.25
    return sg.Function("big_graph", [x], [v])


# ------------------------------------------------------------------ one process
def child(case: str, tier: str) -> dict:
    """Set one case up and solve it; the figures as a dict (times from the start of the set-up)."""
    import symgraph as sg

    switches: list = []

    class Switches(logging.Handler):
        def emit(self, record):
            if "switched from the" in record.getMessage():
                switches.append(record.created)

    logger = logging.getLogger("symgraph")
    logger.addHandler(Switches())
    logger.setLevel(logging.INFO)
    logger.propagate = False
    warnings.simplefilter("ignore")
    if case == "graph1e6":
        return child_graph(tier, switches)
    x, f, g, x0, lbx, ubx = problem(case)
    start = time.time()
    nlp = sg.NLP(x=x, f=f, g=g, name=f"startup_{case}", compile_options={"tier": tier})
    setup = time.time() - start
    first: list = []
    hessian = nlp.hessian_values

    def timed_hessian(*args):
        out = hessian(*args)
        if not first:
            first.append(time.time() - start)
        return out

    nlp.hessian_values = timed_hessian
    sol = nlp.solve_ipopt(x0, lbx=lbx, ubx=ubx, lbg=0.0, ubg=0.0, options=IPOPT)
    solved = time.time() - start
    tiers_at_end = sorted({C.tier for C in nlp._eval.values()})
    for C in nlp._eval.values():
        C.wait()
    best = (max(switches) - start) if switches else setup
    evals = {t: eval_time(nlp, t) for t in ("interp", "fast", "best")}
    return {"case": case, "tier": tier, "setup": setup, "first_iter": first[0] if first else None,
            "solve": solved, "best": best, "iterations": sol.iterations, "f": float(sol.f),
            "success": bool(sol.success), "tiers_at_solve_end": tiers_at_end, "eval_interp": evals["interp"],
            "eval_fast": evals["fast"],
            "eval_best": evals["best"], "n_ops": {k: F.n_ops for k, F in nlp.functions.items()}}


def child_graph(tier: str, switches: list) -> dict:
    start = time.time()
    F = big_graph()
    built = time.time() - start
    start = time.time()
    C = F.compile(tier=tier)
    v = np.linspace(-1.0, 1.0, 1000)
    C(v)
    first = time.time() - start
    C.wait()
    best = (max(switches) - start) if switches else first
    times = {}
    for t in ("interp", "fast", "best"):
        D = _interpreted(F) if t == "interp" else F.compile(tier=t)
        times[t] = median_time(lambda: D(v))
    return {"case": "graph1e6", "tier": tier, "graph": built, "setup": first, "first_iter": first,
            "solve": first, "best": best, "eval_interp": times["interp"], "eval_fast": times["fast"],
            "eval_best": times["best"],
            "n_ops": {"F": F.n_ops}}


def child_load() -> dict:
    """``F.compile()`` of a Function of about 10^5 operations (Luksan, N = 5,000: f and g) in this process."""
    import symgraph as sg
    from codegen import build, runtime
    from symgraph.models import luksan

    x, f, g = luksan(5000)
    F = sg.Function("startup_load", [x], [f, g])
    start = time.perf_counter()
    digest = runtime.function_digest(F)
    hashed = time.perf_counter() - start
    C = F.compile()
    total = time.perf_counter() - start
    return {"n_ops": F.n_ops, "hash": hashed, "compile": total, "library_load": C.library.seconds,
            "source": C.library.source, "hits": build.STATS["function_hits"], "digest": digest[:8]}


def _interpreted(F):
    """``F`` on the Tape interpreter; its compiled code where the interpreter cannot run it (calls)."""
    from codegen.interp import UnsupportedTape, interpreted

    try:
        return interpreted(F)
    except UnsupportedTape:
        return F.compile(tier="fast")


def eval_time(nlp, tier: str) -> float:
    """Median seconds of one evaluation of all five callbacks on ``tier`` ("interp": the Tape interpreter;
    "fast", "best": compiled, cache hits)."""
    p = np.zeros(len(nlp.p))
    x = np.linspace(-0.5, 0.5, nlp.n)
    calls = []
    for key, F in nlp.functions.items():
        C = _interpreted(F) if tier == "interp" else F.compile(tier=tier)
        args = [x, p] if key != "hess_l" else [x, p, 1.0, np.full(nlp.m, 0.5)]
        calls.append((C, args))
    return median_time(lambda: [C(*args) for C, args in calls])


def median_time(fn, repeats: int = 15) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


CASADI_TIMEOUT = 300  # seconds for one CasADi set-up (its jit of an unrolled model can take much longer)


def casadi_setup(case: str) -> dict | None:
    """CasADi ``nlpsol`` set-up without and with its jit, each in a process of its own (in a temporary
    directory: the jit writes its C and objects into the working directory), at most CASADI_TIMEOUT s."""
    try:
        import casadi  # noqa: F401
    except ImportError:
        return None
    out = {}
    for jit in (False, True):
        label = "jit" if jit else "nojit"
        with tempfile.TemporaryDirectory(prefix="symgraph-startup-casadi-") as work:
            try:
                done = subprocess.run([sys.executable, os.path.abspath(__file__), "--casadi", case,
                                       "--jit", str(int(jit))], cwd=work, capture_output=True, text=True,
                                      timeout=CASADI_TIMEOUT)
                lines = done.stdout.strip().splitlines()
                out[label] = json.loads(lines[-1])[label] if done.returncode == 0 and lines else \
                    "failed: " + (done.stderr.strip().splitlines() or ["?"])[-1][:60]
            except subprocess.TimeoutExpired:
                out[label] = f"> {CASADI_TIMEOUT} s (stopped)"
    return out


def casadi_child(case: str, jit: bool) -> dict:
    """One CasADi ``nlpsol`` set-up (SX, the same model), without or with its jit (gcc -O2 through 'shell')."""
    import casadi as ca

    sys.path.insert(0, os.path.join(ROOT, "examples"))
    out = {}
    for jit in (jit,):
        start = time.perf_counter()
        if case.startswith("cartpole"):
            import cartpole_multiple_shooting as cp

            n, mapped = int(case[8:-1]), case.endswith("m")
            X, U = ca.SX.sym("X", n + 1, 4), ca.SX.sym("U", n)
            if mapped:
                q, u = ca.SX.sym("q", 4), ca.SX.sym("u")
                ends = cp.rk4(cp.dynamics, np.array([q[i] for i in range(4)], dtype=object), u, cp.HORIZON / n)
                interval = ca.Function("interval", [q, u], [ca.vertcat(*ends)])
                XM, UM = ca.MX.sym("X", 4, n + 1), ca.MX.sym("U", 1, n)
                gaps = interval.map(n)(XM[:, :-1], UM) - XM[:, 1:]
                g = ca.vertcat(XM[:, 0], ca.vec(gaps), XM[:, n] - ca.DM([cp.DISTANCE, np.pi, 0, 0]))
                w, f = ca.vertcat(ca.vec(XM), ca.vec(UM)), cp.HORIZON / n * ca.sumsqr(UM)
            else:
                rows = []
                for k in range(n):
                    q = np.array([X[k, i] for i in range(4)], dtype=object)
                    end = cp.rk4(cp.dynamics, q, U[k], cp.HORIZON / n)
                    rows.append(ca.vertcat(*[end[i] - X[k + 1, i] for i in range(4)]))
                g = ca.vertcat(X[0, :].T, *rows, X[n, :].T - ca.DM([cp.DISTANCE, np.pi, 0, 0]))
                w, f = ca.vertcat(ca.vec(X.T), U), cp.HORIZON / n * ca.sumsqr(U)
        else:
            n = int(case[6:])
            xs = ca.SX.sym("x", n)
            xv = np.array([xs[i] for i in range(n)], dtype=object)
            from symgraph.models import luksan_constraints, luksan_objective

            w, f, g = xs, luksan_objective(xv), ca.vertcat(*luksan_constraints(xv))
        options = {"ipopt": dict(IPOPT), "print_time": False}
        if jit:
            options.update({"jit": True, "compiler": "shell", "jit_options": {"flags": ["-O2"], "verbose": False}})
        try:
            ca.nlpsol("startup", "ipopt", {"x": w, "f": f, "g": g}, options)
            out["jit" if jit else "nojit"] = time.perf_counter() - start
        except Exception as exc:  # noqa: BLE001 - no compiler for the jit, etc.
            out["jit" if jit else "nojit"] = f"failed: {exc}"[:80]
    return out


# ------------------------------------------------------------------ the parent
def run(case: str, tier: str, cache: str) -> dict:
    env = dict(os.environ, SYMGRAPH_CACHE_DIR=cache)
    done = subprocess.run([sys.executable, __file__, "--child", case, "--tier", tier], env=env,
                          capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        return {"case": case, "tier": tier, "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def fmt(t) -> str:
    if t is None:
        return "-"
    if isinstance(t, str):
        return t
    return f"{t:.2f} s" if t >= 0.1 else f"{t * 1e3:.1f} ms" if t >= 1e-4 else f"{t * 1e6:.0f} us"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", action="store_true", help="also cart-pole N=400 unrolled and a 10^6-op graph")
    parser.add_argument("--only", default="", help="comma-separated cases")
    parser.add_argument("--no-casadi", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--tier", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--casadi", help=argparse.SUPPRESS)
    parser.add_argument("--jit", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.casadi:
        warnings.simplefilter("ignore")
        print(json.dumps(casadi_child(args.casadi, bool(args.jit))))
        return
    if args.child:
        print(json.dumps(child_load() if args.child == "load1e5" else child(args.child, args.tier)))
        return
    cases = [c for c in args.only.split(",") if c] or list(DEFAULT_CASES) + (list(BIG_CASES) if args.big else [])
    header = (f"{'case':<14}{'run':<11}{'setup':>10}{'1st iter':>10}{'solve':>10}{'-O2 in use':>12}"
              f"{'eval interp':>12}{'eval tcc':>11}{'eval -O2':>11}  ops (f, grad, g, jac, hess)")
    with tempfile.TemporaryDirectory(prefix="symgraph-startup-") as load_dir:
        cold, warm = run("load1e5", "best", load_dir), run("load1e5", "best", load_dir)
    if "error" not in warm:
        print(f"10^5-op Function ({warm['n_ops']:,} ops): cold compile() {fmt(cold.get('compile'))}; "
              f"a second process: compile() {fmt(warm['compile'])} = hash {fmt(warm['hash'])} + library load "
              f"{fmt(warm['library_load'])} + the rest {fmt(warm['compile'] - warm['hash'] - warm['library_load'])} "
              f"({warm['source']} hit)", flush=True)
    print(header)
    for case in cases:
        rows = []
        with tempfile.TemporaryDirectory(prefix="symgraph-startup-") as auto_dir, \
                tempfile.TemporaryDirectory(prefix="symgraph-startup-") as best_dir:
            rows.append(("auto cold", run(case, "auto", auto_dir)))
            rows.append(("auto warm", run(case, "auto", auto_dir)))
            rows.append(("best cold", run(case, "best", best_dir)))
        for label, r in rows:
            if "error" in r:
                print(f"{case:<14}{label:<11} error: {r['error']}")
                continue
            ops = ", ".join(f"{v:,}" for v in r["n_ops"].values())
            print(f"{case:<14}{label:<11}{fmt(r['setup']):>10}{fmt(r['first_iter']):>10}{fmt(r['solve']):>10}"
                  f"{fmt(r['best']):>12}{fmt(r.get('eval_interp')):>12}{fmt(r['eval_fast']):>11}"
                  f"{fmt(r['eval_best']):>11}  {ops}", flush=True)
        if not args.no_casadi and case != "graph1e6":
            c = casadi_setup(case)
            if c is not None:
                print(f"{case:<14}{'casadi':<11} nlpsol set-up {fmt(c['nojit'])}, with jit {fmt(c['jit'])}",
                      flush=True)


if __name__ == "__main__":
    main()
