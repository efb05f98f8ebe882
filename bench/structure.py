"""Structured models (issue 10): maps and folds against unrolled graphs, JAX and CasADi.

Sections (``--only NAME``, several allowed; default all):

* ``luksan``: the Luksan problem written as one per-term Function mapped over
  the terms (``reduce="sum"`` for the objective) and one per-constraint
  Function mapped over the constraints; the time of each set-up phase
  (model, gradient, sparse Jacobian, Lagrangian Hessian, C compile of each
  callback with its source size), the time per callback evaluation, the
  optimum and iterations beside the unrolled model (``sg.models.luksan``)
  where that is affordable, and IPOPT at the largest N.
* ``cartpole``: the swing-up of ``examples/cartpole_multiple_shooting.py``
  (interval Function with RK4 substeps, mapped over the intervals): cold
  ``sg.NLP`` set-up (fresh cache), solve time, iterations, objective; the
  unrolled model with ``--unrolled``; CasADi's ``nlpsol`` where importable.
* ``gmm``: ADBench's Gaussian mixture objective (Wishart prior) with a
  component Function mapped over components inside a point Function mapped
  over points (``reduce="sum"``): prepare time (build, gradient, compile)
  and gradient evaluation time, beside ``jax.jit(jax.grad)`` if importable.
* ``ba``: ADBench's bundle adjustment reprojection residual mapped over the
  observations, cameras and points gathered by index arrays; the sparse
  Jacobian: prepare time, colors, nonzeros, time per evaluation.
* ``fold``: least-squares fit of Lotka-Volterra (RK4 steps folded over
  time): gradient w.r.t. parameters and initial state, against the unrolled
  chain, and the compile time at two step counts.

``sg.Function.fold`` is used where it exists; until then :func:`fold`
emulates it by chaining ``n`` calls of the step Function (same signature).

Every compile runs in a fresh ``SYMGRAPH_CACHE_DIR`` (a temporary folder),
so set-up times are cold.

Run: python3 bench/structure.py [--quick] [--big] [--unrolled] [--only SECTION ...]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
# The repository root first: this directory holds bench/codegen.py, which would shadow the codegen package.
sys.path.insert(0, ROOT)

import symgraph as sg  # noqa: E402

IPOPT = {"print_level": 0, "sb": "yes", "max_iter": 500}


# ------------------------------------------------------------------ helpers

def load_module(name: str, relative_path: str) -> Any:
    """Import a script of this repository (an example, another benchmark) by its path."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, relative_path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


cartpole = load_module("cartpole_multiple_shooting", "examples/cartpole_multiple_shooting.py")
rk4 = cartpole.rk4


def optional(name: str) -> Any:
    """The module ``name``, or None if it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


@contextlib.contextmanager
def cold_cache() -> Iterator[str]:
    """A fresh, empty compile cache for the duration of the block (so compiles are cold)."""
    old = os.environ.get("SYMGRAPH_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="sg_bench_cache_") as path:
        os.environ["SYMGRAPH_CACHE_DIR"] = path
        try:
            yield path
        finally:
            if old is None:
                os.environ.pop("SYMGRAPH_CACHE_DIR", None)
            else:
                os.environ["SYMGRAPH_CACHE_DIR"] = old


class Clock:
    """Named wall-clock phases: ``with clock("grad"): ...`` adds the block's seconds to ``clock["grad"]``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def __getitem__(self, name: str) -> float:
        return self.seconds.get(name, float("nan"))


def per_call(fn: Callable[..., Any], *args: Any, budget: float = 0.3) -> float:
    """Seconds per call of ``fn(*args)``: the best of repeated batches within about ``budget`` seconds."""
    fn(*args)
    start = time.perf_counter()
    fn(*args)
    once = max(time.perf_counter() - start, 1e-7)
    reps = max(1, min(1000, int(budget / 3 / once)))
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(reps):
            fn(*args)
        best = min(best, (time.perf_counter() - start) / reps)
    return best


def fmt(value: Any) -> str:
    """A table cell: seconds and other floats to 3-4 significant digits, the rest as str."""
    if value is None:
        return "-"
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return "-"
        if value == 0 or 1e-3 <= abs(value) < 1e5:
            return f"{value:.4g}"
        return f"{value:.3e}"
    return str(value)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], note: str = "") -> None:
    """Print ``rows`` under ``columns`` as an aligned text table."""
    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[j]) for r in cells]) for j, c in enumerate(columns)]
    print(f"\n== {title}")
    print("  " + "  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    for row in cells:
        print("  " + "  ".join(v.rjust(w) for v, w in zip(row, widths)))
    if note:
        print("  " + note.replace("\n", "\n  "))
    sys.stdout.flush()


def compile_timed(F: sg.Function, clock: Clock, phase: str = "compile") -> Any:
    """``F.compile()`` timed into ``clock[phase]`` (cold when run inside :func:`cold_cache`)."""
    with clock(phase):
        return F.compile()


def fold(F: sg.Function, n: int, shared: Sequence[int | str] = (), last: bool = False) -> sg.Function:
    """``F.fold(n, shared, last)``: the real one where symgraph has it, else :func:`chained_fold`."""
    if hasattr(sg.Function, "fold"):
        return F.fold(n, shared=shared, last=last)
    return chained_fold(F, n, shared, last)


def fold_label() -> str:
    """What :func:`fold` builds in this symgraph: ``"fold"`` or ``"chained calls"``."""
    return "fold" if hasattr(sg.Function, "fold") else "chained calls"


def chained_fold(F: sg.Function, n: int, shared: Sequence[int | str] = (), last: bool = False) -> sg.Function:
    """The fold of ``F`` over ``n`` steps as ``n`` chained calls (an unstructured stand-in for ``F.fold``).

    Input 0 of ``F`` is the state and output 0 the next state; the other
    inputs get a leading axis ``n`` (row ``i`` for step ``i``) unless named in
    ``shared``. The result's inputs are (state0, the other inputs); output 0
    holds every state after each step, shape ``(n,) + state_shape`` (only the
    last with ``last=True``); the other outputs are stacked per step.
    """
    is_shared = [k in shared or name in shared for k, name in enumerate(F.input_names)]
    inputs = [sg.symbols(name, shape if (k == 0 or is_shared[k]) else (n,) + shape)
              for k, (name, shape) in enumerate(zip(F.input_names, F.input_shapes))]
    stacks = [np.empty((n,) + shape, dtype=object) for shape in F.output_shapes]
    state = inputs[0]
    for i in range(n):
        outs = F(state, *[arr if is_shared[k] else arr[i] for k, arr in enumerate(inputs) if k > 0])
        outs = outs if F.n_out > 1 else (outs,)
        for stack, out in zip(stacks, outs):
            stack[i, ...] = out
        state = outs[0]
    if last:
        stacks[0] = stacks[0][-1]
    return sg.Function(f"{F.name}_fold{n}", inputs, stacks, input_names=F.input_names,
                       output_names=F.output_names)


def logsumexp(values: np.ndarray) -> Any:
    """``log(sum(exp(values)))`` of a 1-D object array, shifted by the maximum (as ADBench)."""
    top = values[0]
    for v in values[1:]:
        top = sg.fmax(top, v)
    return top + sg.log(np.sum(np.exp(values - top)))


# ------------------------------------------------------------------ luksan

def nlp_callbacks(nlp: Any) -> dict:
    """Per compiled callback of ``nlp``: C size and time per call at a random point."""
    rng = np.random.default_rng(0)
    x, lam = rng.uniform(-1, 1, nlp.n), rng.uniform(-1, 1, nlp.m)
    p = np.zeros(len(nlp.p))
    out = {}
    for key, C in nlp._eval.items():
        args = (x, p) + ((1.0, lam) if key == "hess_l" else ())
        out[key] = {"c_chars": len(getattr(C, "source", "")), "eval": per_call(C, *args)}
    return out


def setup_luksan(x: np.ndarray, f: Any, g: np.ndarray, name: str) -> tuple[Any, float]:
    """``sg.NLP`` built (derivatives, C, compile: all of set-up) and timed."""
    start = time.perf_counter()
    nlp = sg.NLP(x=x, f=f, g=g, name=name)
    return nlp, time.perf_counter() - start


def solve_luksan(nlp: Any) -> dict:
    """An IPOPT solve from the standard start point."""
    x0 = np.where(np.arange(nlp.n) % 2 == 0, -1.2, 1.0)
    start = time.perf_counter()
    sol = nlp.solve_ipopt(x0, lbg=0.0, ubg=0.0, options=IPOPT)
    return {"solve": time.perf_counter() - start, "callbacks": sol.stats["callback_seconds"],
            "iterations": sol.iterations, "f": sol.f, "success": sol.success}


def casadi_luksan_c(n: int) -> dict | None:
    """CasADi's Luksan callbacks (MX maps of SX term/constraint Functions), generated C, gcc -O2, timed via ctypes.

    The five callbacks of ``sg.NLP`` (f, grad_f, g, jac_g, hess_l: the lower
    Hessian of ``sigma*f + lam'g``) as five CasADi Functions in one
    ``CodeGenerator`` file; each is called through its C entry point
    (``name(arg, res, iw, w, mem)``), so no CasADi virtual machine runs.
    """
    ca = optional("casadi")
    if ca is None:
        return None
    import ctypes
    import subprocess

    a, b = ca.SX.sym("a"), ca.SX.sym("b")
    term = ca.Function("term", [a, b], [100 * (a ** 2 - b) ** 2 + (a - 1) ** 2])
    u, v, w = ca.SX.sym("u"), ca.SX.sym("v"), ca.SX.sym("w")
    con = ca.Function("con", [u, v, w], [3 * v ** 3 + 2 * w - 5 + ca.sin(v - w) * ca.sin(v + w) + 4 * v
                                         - u * ca.exp(u - v) - 3])
    X, sigma, lam = ca.MX.sym("x", n), ca.MX.sym("sigma"), ca.MX.sym("lam", n - 2)
    f = ca.sum2(term.map(n - 1)(X[:-1].T, X[1:].T))
    g = con.map(n - 2)(X[:-2].T, X[1:-1].T, X[2:].T).T
    lagrangian = sigma * f + ca.dot(lam, g)
    functions = [ca.Function("lk_f", [X], [f]), ca.Function("lk_grad_f", [X], [ca.gradient(f, X)]),
                 ca.Function("lk_g", [X], [g]), ca.Function("lk_jac_g", [X], [ca.jacobian(g, X)]),
                 ca.Function("lk_hess_l", [X, sigma, lam], [ca.tril(ca.hessian(lagrangian, X)[0])])]
    folder = tempfile.mkdtemp(prefix="bench_casadi_")
    generator = ca.CodeGenerator("luksan_casadi.c")
    for F in functions:
        generator.add(F)
    generator.generate(folder + os.sep)
    source, library = os.path.join(folder, "luksan_casadi.c"), os.path.join(folder, "luksan_casadi.so")
    start = time.perf_counter()
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", library, source], check=True)
    gcc = time.perf_counter() - start
    lib = ctypes.CDLL(library)
    x = np.where(np.arange(n) % 2 == 0, -1.2, 1.0)
    inputs = {"lk_hess_l": [x, np.ones(1), np.linspace(-1, 1, n - 2)]}
    total = 0.0
    for F in functions:
        name = F.name()
        sizes = [ctypes.c_longlong() for _ in range(4)]
        getattr(lib, name + "_work")(*[ctypes.byref(z) for z in sizes])
        n_arg, n_res, n_iw, n_w = (z.value for z in sizes)
        values = inputs.get(name, [x])
        outputs = [np.empty(F.nnz_out(k)) for k in range(F.n_out())]
        arg = (ctypes.c_void_p * max(1, n_arg))(*[v.ctypes.data for v in values])
        res = (ctypes.c_void_p * max(1, n_res))(*[o.ctypes.data for o in outputs])
        iw, work = (ctypes.c_longlong * max(1, n_iw))(), (ctypes.c_double * max(1, n_w))()
        entry = getattr(lib, name)
        total += per_call(lambda: entry(arg, res, iw, work, 0))
    return {"c_chars": os.path.getsize(source), "gcc": gcc, "eval": total}


def bench_luksan(sizes: Sequence[int], compare_max: int, casadi_max: int, solve_max: int = 1000000) -> None:
    """Section a: mapped Luksan through sg.NLP (tiled derivatives), cold; unrolled and CasADi beside it."""
    setup_rows, callback_rows, solve_rows = [], [], []
    evals: dict[tuple[int, str], float] = {}
    w = sg.symbols("w", 2)
    sg.NLP(x=w, f=w @ w, jit=False).solve_ipopt(np.ones(2), options=IPOPT)  # IPOPT's one-time start-up
    for n in sizes:
        runs = [("mapped", lambda n=n: sg.models.luksan_mapped(n))]
        if n <= compare_max:
            runs.append(("unrolled", lambda n=n: sg.models.luksan(n)))
        for label, make in runs:
            with cold_cache():
                start = time.perf_counter()
                with sg.building():
                    x, f, g = make()
                model = time.perf_counter() - start
                nlp, setup = setup_luksan(x, f, g, f"bench_{label[0]}luksan{n}")
            callbacks = nlp_callbacks(nlp)
            total_eval = sum(r["eval"] for r in callbacks.values())
            evals[(n, label)] = total_eval
            c_chars = sum(r["c_chars"] for r in callbacks.values())
            setup_rows.append([n, label, model, setup, model + setup, c_chars, nlp.jacobian_structure.nnz,
                               nlp.hessian_structure.nnz, total_eval * 1e3])
            if label == "mapped":
                for key, r in callbacks.items():
                    callback_rows.append([n, key, r["c_chars"], r["eval"] * 1e3])
            if n <= solve_max:
                r = solve_luksan(nlp)
                solve_rows.append([n, label, setup, r["solve"], r["callbacks"], r["iterations"], f"{r['f']:.10g}"])
        if n <= casadi_max and optional("casadi") is not None:
            c = casadi_luksan_c(n)
            evals[(n, "casadi")] = c["eval"]
            setup_rows.append([n, "casadi map, generated C", None, c["gcc"], None, c["c_chars"], None, None,
                               c["eval"] * 1e3])
            nlp_bench = load_module("bench_nlp", "bench/nlp.py")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = nlp_bench.casadi_run(n, jit=False)
            solve_rows.append([n, "casadi SX (no jit)", r["setup"], r["solve"], r["callbacks"], r["iterations"],
                               f"{r['f']:.10g}"])
    ratios = [f"N={n}: mapped/unrolled eval {evals[(n, 'mapped')] / evals[(n, 'unrolled')]:.2f}x"
              for n in sizes if (n, "unrolled") in evals]
    ratios += [f"N={n}: mapped/casadi eval {evals[(n, 'mapped')] / evals[(n, 'casadi')]:.2f}x"
               for n in sizes if (n, "casadi") in evals]
    table("Luksan through sg.NLP, cold cache (s)",
          ["N", "model", "build", "NLP set-up", "build+diff+compile", "C chars (5)", "J entries", "H entries",
           "eval all 5 ms"], setup_rows,
          "set-up = derivatives + C generation + compile of the five callbacks; mapped: tiled derivatives, "
          "values summed onto the unrolled structure; casadi: the same five callbacks from MX maps, CodeGenerator C, gcc -O2, "
          "called through ctypes (set-up column: its gcc time)\n" + "; ".join(ratios)
          + " (targets: <= 1.2x unrolled at N = 1,000; <= 1x casadi)")
    table("Luksan, mapped: callbacks", ["N", "callback", "C chars", "eval ms"], callback_rows)
    table("Luksan: IPOPT", ["N", "model", "set-up s", "solve s", "in callbacks s", "iterations", "f*"], solve_rows,
          "casadi: SX, nlpsol without jit (bench/nlp.py)")


# ------------------------------------------------------------------ cart-pole

def casadi_cartpole(n: int) -> dict | None:
    """CasADi: the same interval (SX, RK4 substeps), mapped with ``Function.map``, solved with nlpsol/IPOPT."""
    ca = optional("casadi")
    if ca is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        q, u = ca.SX.sym("q", 4), ca.SX.sym("u")
        ends = rk4(cartpole.dynamics, np.array([q[i] for i in range(4)], dtype=object), u, cartpole.HORIZON / n)
        interval = ca.Function("interval", [q, u], [ca.vertcat(*ends)])
        X, U = ca.MX.sym("X", 4, n + 1), ca.MX.sym("U", 1, n)
        gaps = interval.map(n)(X[:, :-1], U) - X[:, 1:]
        target = ca.DM([cartpole.DISTANCE, np.pi, 0, 0])
        g = ca.vertcat(X[:, 0], ca.vec(gaps), X[:, n] - target)
        f = cartpole.HORIZON / n * ca.sumsqr(U)
        w = ca.vertcat(ca.vec(X), ca.vec(U))
        solver = ca.nlpsol("cartpole", "ipopt", {"x": w, "f": f, "g": g},
                           {"ipopt": dict(IPOPT), "print_time": False})
        setup = time.perf_counter() - start
        problem = cartpole.build(n)  # only for the bounds and the start point (same layout: X column-major = rows)
        start = time.perf_counter()
        res = solver(x0=problem.x0, lbx=problem.lbx, ubx=problem.ubx, lbg=0, ubg=0)
        solve = time.perf_counter() - start
    stats = solver.stats()
    return {"setup": setup, "solve": solve, "iterations": stats["iter_count"], "f": float(res["f"])}


def bench_cartpole(sizes: Sequence[int], unrolled_sizes: Sequence[int]) -> None:
    """Section b: cold sg.NLP set-up and IPOPT solve of the swing-up, mapped, unrolled, CasADi."""
    rows = []
    runs = [(n, True) for n in sizes] + [(n, False) for n in unrolled_sizes]
    for n, mapped in runs:
        with cold_cache():
            start = time.perf_counter()
            problem = cartpole.build(n, mapped=mapped)
            model = time.perf_counter() - start
            start = time.perf_counter()
            nlp = sg.NLP(x=problem.w, f=problem.f, g=problem.g, name=f"bench_cartpole{n}{'m' if mapped else 'u'}")
            setup = time.perf_counter() - start
            start = time.perf_counter()
            sol = nlp.solve_ipopt(problem.x0, lbx=problem.lbx, ubx=problem.ubx, lbg=0.0, ubg=0.0, options=IPOPT)
            solve = time.perf_counter() - start
        rows.append([n, "mapped" if mapped else "unrolled", model, setup, solve, sol.stats["callback_seconds"],
                     sol.iterations, f"{sol.f:.8g}", "ok" if sol.success else sol.message[:30]])
    for n in sizes:
        r = casadi_cartpole(n)
        if r is not None:
            rows.append([n, "casadi map+nlpsol", None, r["setup"], r["solve"], None, r["iterations"],
                         f"{r['f']:.8g}", ""])
    table("Cart-pole swing-up, multiple shooting (RK4, 4 substeps per interval)",
          ["N", "model", "build s", "NLP set-up s (cold)", "solve s", "in callbacks s", "iterations", "objective",
           "status"], rows,
          "casadi: set-up = building the map and nlpsol (SX/MX virtual machines, no C compile)")


# ------------------------------------------------------------------ GMM

@dataclass
class GMMData:
    """One ADBench-style GMM instance: parameters, points, Wishart prior."""

    alphas: np.ndarray
    means: np.ndarray
    qs: np.ndarray  # log diagonal of each Q
    ls: np.ndarray  # strict lower triangle of each Q, column by column
    x: np.ndarray
    gamma: float = 1.0
    m: int = 0

    @property
    def params(self) -> tuple:
        return self.alphas, self.means, self.qs, self.ls


def gmm_data(d: int, k: int, n: int, seed: int = 0) -> GMMData:
    """Random parameters and points of the sizes given (ADBench draws them uniformly the same way)."""
    rng = np.random.default_rng(seed)
    return GMMData(rng.uniform(-1, 1, k), rng.uniform(-1, 1, (k, d)), rng.uniform(-1, 1, (k, d)) * 0.1,
                   rng.uniform(-1, 1, (k, d * (d - 1) // 2)) * 0.1, rng.uniform(-1, 1, (n, d)))


def strict_lower(d: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the strict lower triangle of a d x d matrix, column by column (ADBench's order)."""
    rows, cols = zip(*[(i, j) for j in range(d) for i in range(j + 1, d)]) if d > 1 else ((), ())
    return np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64)


def gmm_constant(d: int, k: int, n: int, gamma: float, m: int) -> float:
    """The parameter-free part of ADBench's GMM objective."""
    from scipy.special import multigammaln

    wishart_n = d + m + 1
    c = wishart_n * d * (np.log(gamma) - 0.5 * np.log(2)) - multigammaln(0.5 * wishart_n, d)
    return -n * d * 0.5 * np.log(2 * np.pi) - k * c


def gmm_symgraph(d: int, k: int, n: int, gamma: float = 1.0, m: int = 0) -> tuple[list, Any]:
    """The GMM objective over symbols (alphas, means, qs, ls, x) as maps; returns (inputs, objective).

    Written as a user of ``map`` writes it, following ADBench's own C++
    (loops over points, over components inside, and over components for
    the prior): the log-likelihood is a component Function mapped over the
    components (the point shared) inside a point Function mapped over the
    points (the parameters shared, ``reduce="sum"``), and the Wishart prior
    is a per-component Function mapped over the components
    (``reduce="sum"``), as JAX's version sums it over the component axis.
    No term is written out scalar by scalar at the top level.  The model is
    then passed through ``symgraph.hoist.hoist``, which computes the
    parameter-only work of the map bodies (``exp(q)``, ``alpha + sum(q)``)
    once instead of once per point and component, as JAX/XLA does by
    itself; a user calls it explicitly (it is not automatic yet).
    """
    from symgraph.hoist import hoist

    rows, cols = strict_lower(d)
    xi, alpha, mu, q, l = (sg.symbols("x", d), sg.symbols("alpha"), sg.symbols("mu", d), sg.symbols("q", d),
                           sg.symbols("l", len(rows)))
    z = xi - mu
    qz = np.exp(q) * z
    for t, (i, j) in enumerate(zip(rows, cols)):
        qz[i] = qz[i] + l[t] * z[j]
    component = sg.Function("gmm_component", [xi, alpha, mu, q, l], [alpha + np.sum(q) - 0.5 * np.sum(qz * qz)])
    alphas, means, qs, ls = (sg.symbols("alphas", k), sg.symbols("means", (k, d)), sg.symbols("qs", (k, d)),
                             sg.symbols("ls", (k, len(rows))))
    per_component = component.map(k, shared=["x"])(xi, alphas, means, qs, ls)
    point = sg.Function("gmm_point", [xi, alphas, means, qs, ls], [logsumexp(per_component)])
    x = sg.symbols("points", (n, d))
    total = point.map(n, shared=[1, 2, 3, 4], reduce="sum")(x, alphas, means, qs, ls)
    prior_term = sg.Function("gmm_prior", [q, l],
                             [0.5 * gamma * gamma * (np.sum(np.exp(2 * q)) + np.sum(l * l)) - m * np.sum(q)])
    prior = prior_term.map(k, reduce="sum")(qs, ls)
    objective = gmm_constant(d, k, n, gamma, m) + total - n * logsumexp(alphas) + prior
    return [alphas, means, qs, ls, x], hoist(objective)


def gmm_jax(d: int, k: int, n: int, gamma: float = 1.0, m: int = 0) -> Callable:
    """The same objective in JAX (vectorized over points and components), as a function of (params..., x)."""
    import jax.numpy as jnp
    from jax.scipy.special import logsumexp as lse

    rows, cols = strict_lower(d)
    const = gmm_constant(d, k, n, gamma, m)

    def objective(alphas, means, qs, ls, x):
        L = jnp.zeros((k, d, d)).at[:, rows, cols].set(ls)
        z = x[:, None, :] - means[None, :, :]  # (n, k, d)
        qz = jnp.exp(qs)[None] * z + jnp.einsum("kij,nkj->nki", L, z)
        inner = alphas[None] + jnp.sum(qs, axis=1)[None] - 0.5 * jnp.sum(qz * qz, axis=2)
        prior = 0.5 * gamma * gamma * (jnp.sum(jnp.exp(2 * qs)) + jnp.sum(ls * ls)) - m * jnp.sum(qs)
        return const + jnp.sum(lse(inner, axis=1)) - n * lse(alphas) + prior

    return objective


def gmm_value_and_grad(objective: Any, params: Sequence[Any]) -> tuple[Any, list]:
    """The value and the gradients w.r.t. ``params``, as JAX's ``value_and_grad`` (the value read off the
    maps' vjps, so each point's forward runs once); ``(objective, [sg.grad ...])`` where symgraph lacks it."""
    value_and_grad = getattr(sg, "value_and_grad", None) or getattr(sg.ad, "value_and_grad", None)
    if value_and_grad is None:
        return objective, [sg.grad(objective, v) for v in params]
    value, gradient = value_and_grad(objective, list(params))
    return value, list(gradient)


def bench_gmm(grid: Sequence[tuple[int, int]], n: int) -> None:
    """Section c: GMM gradient, prepare and evaluation time, beside JAX; gradient checked at the first size."""
    jax = optional("jax")
    if jax is not None:
        jax.config.update("jax_enable_x64", True)
    rows = []
    for index, (d, k) in enumerate(grid):
        data = gmm_data(d, k, n)
        clock = Clock()
        with sg.building():
            with clock("build"):
                inputs, objective = gmm_symgraph(d, k, n)
            with clock("gradient"):
                value, gradient = gmm_value_and_grad(objective, inputs[:4])
        F = sg.Function(f"bench_gmm_d{d}_k{k}", inputs, [value, *gradient])
        with cold_cache():
            C = compile_timed(F, clock)
        args = (*data.params, data.x)
        ours = per_call(C, *args)
        prepare = clock["build"] + clock["gradient"] + clock["compile"]
        jax_prepare = jax_eval = None
        if jax is not None:
            fn = jax.jit(jax.value_and_grad(gmm_jax(d, k, n), argnums=(0, 1, 2, 3)))
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            jax_prepare = time.perf_counter() - start
            jax_eval = per_call(lambda *a: jax.block_until_ready(fn(*a)), *args)
            if index == 0:
                value, grads = fn(*args)
                check_gradient(C(*args), (float(value), *[np.asarray(g) for g in grads]), "JAX")
        elif index == 0:
            check_gradient_fd(C, args)
        rows.append([d, k, n, clock["build"], clock["gradient"], clock["compile"], prepare, len(C.source),
                     ours * 1e3, jax_prepare, None if jax_eval is None else jax_eval * 1e3,
                     None if jax_eval is None else ours / jax_eval])
    table(f"GMM (ADBench objective, Wishart prior), value and gradient, n = {n}",
          ["d", "k", "n", "build s", "grad s", "compile s", "prepare s", "C chars", "eval ms", "jax jit s",
           "jax eval ms", "ours/jax"], rows,
          "jax: jit(value_and_grad) in float64 on the CPU; 'jax jit s' is its first call (trace + XLA compile)")


def check_gradient(ours: Sequence[Any], reference: Sequence[Any], what: str) -> None:
    """Print the largest relative difference of our outputs (value, gradients) from a reference."""
    worst = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)) / (1 + np.abs(np.asarray(b)))))
                for a, b in zip(ours, reference))
    print(f"  gradient check against {what}: max relative difference {worst:.1e}")
    assert worst < 1e-8, f"gradient differs from {what} by {worst:.1e}"


def check_gradient_fd(C: Any, args: tuple) -> None:
    """Central finite differences of the value along the parameters (without JAX)."""
    value, *grads = C(*args)
    step, worst = 1e-6, 0.0
    for j, g in enumerate(grads):
        flat = np.asarray(args[j], dtype=float).reshape(-1)
        for t in range(min(flat.size, 5)):
            plus, minus = flat.copy(), flat.copy()
            plus[t] += step
            minus[t] -= step
            up = C(*args[:j], plus.reshape(np.shape(args[j])), *args[j + 1:])[0]
            down = C(*args[:j], minus.reshape(np.shape(args[j])), *args[j + 1:])[0]
            worst = max(worst, abs((up - down) / (2 * step) - np.asarray(g).reshape(-1)[t]) / (1 + abs(value)))
    print(f"  gradient check against central differences: max scaled difference {worst:.1e}")
    assert worst < 1e-5


# ------------------------------------------------------------------ bundle adjustment

def rodrigues_rotate(rot: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Rotate ``X`` by the Rodrigues vector ``rot`` (ADBench's formula, the branch for a nonzero angle)."""
    theta = sg.sqrt(np.sum(rot * rot))
    w = rot / theta
    cross = np.array([w[1] * X[2] - w[2] * X[1], w[2] * X[0] - w[0] * X[2], w[0] * X[1] - w[1] * X[0]],
                     dtype=object)
    return X * sg.cos(theta) + cross * sg.sin(theta) + w * (np.sum(w * X) * (1 - sg.cos(theta)))


def reprojection_function() -> sg.Function:
    """ADBench's weighted reprojection error of one observation: (camera 11, point 3, weight, feature 2) -> 2.

    Camera layout: rotation (3, Rodrigues), center (3), focal length,
    principal point (2), radial distortion (2).
    """
    cam, X, weight, feat = sg.symbols("cam", 11), sg.symbols("point", 3), sg.symbols("w"), sg.symbols("feat", 2)
    Xcam = rodrigues_rotate(cam[0:3], X - cam[3:6])
    proj = Xcam[:2] / Xcam[2]
    rsq = np.sum(proj * proj)
    distorted = proj * (1 + cam[9] * rsq + cam[10] * rsq * rsq)
    return sg.Function("ba_reprojection", [cam, X, weight, feat],
                       [(distorted * cam[6] + cam[7:9] - feat) * weight])


def ba_data(n_obs: int, seed: int = 0) -> dict:
    """A random problem with ADBench's proportions (about 650 observations a camera, 4 a point)."""
    rng = np.random.default_rng(seed)
    n_cams, n_pts = max(2, n_obs // 650), max(2, n_obs // 4)
    cams = np.column_stack([rng.uniform(-0.3, 0.3, (n_cams, 3)), rng.uniform(-1, 1, (n_cams, 3)),
                            rng.uniform(500, 1000, n_cams), rng.uniform(-1, 1, (n_cams, 2)),
                            rng.uniform(-1e-3, 1e-3, (n_cams, 2))])
    points = rng.uniform(-1, 1, (n_pts, 3)) + np.array([0.0, 0.0, 10.0])
    cam_idx = rng.integers(0, n_cams, n_obs)
    pt_idx = np.concatenate([np.arange(n_pts), rng.integers(0, n_pts, n_obs - n_pts)])
    return {"cams": cams, "points": points, "cam_idx": cam_idx, "pt_idx": pt_idx,
            "w": rng.uniform(0.5, 1.5, n_obs), "feat": rng.uniform(-1, 1, (n_obs, 2))}


def bench_ba(sizes: Sequence[int], csc_max: int = 100000) -> None:
    """Section d: sparse Jacobian of all BA residuals w.r.t. all cameras and points.

    Two forms: ``sg.jacobian`` (a SparseExpr in CSC order; tiled, so no
    colors) up to ``csc_max`` observations, and the tiled triplets of
    ``symgraph.tiled.tiled_jacobian`` (COO in observation order, as a
    least-squares or NLP solver takes them) at every size.
    """
    from symgraph.tiled import tiled_jacobian

    rows = []
    residual = reprojection_function()
    for n_obs in sizes:
        data = ba_data(n_obs)
        args = (data["cams"], data["points"], data["w"], data["feat"])
        forms = (["sg.jacobian (CSC)"] if n_obs <= csc_max else []) + ["tiled triplets (COO)"]
        for form in forms:
            clock = Clock()
            with sg.building():
                with clock("model"):
                    cams = sg.symbols("cams", data["cams"].shape)
                    points = sg.symbols("points", data["points"].shape)
                    w, feat = sg.symbols("w", n_obs), sg.symbols("feat", (n_obs, 2))
                    r = residual.map(n_obs)(sg.gather(cams, data["cam_idx"]), sg.gather(points, data["pt_idx"]),
                                            w, feat)
                unknowns = np.concatenate([cams.reshape(-1), points.reshape(-1)])
                with clock("jacobian"):
                    if form.startswith("sg.jacobian"):
                        jac = sg.jacobian(r.reshape(-1), unknowns)
                        F = sg.Function(f"bench_ba{n_obs}", [cams, points, w, feat], [jac.values])
                        mode, colors, nnz = jac.mode, jac.n_colors, jac.nnz
                    else:
                        T = tiled_jacobian(r.reshape(-1), unknowns)
                        F = T.function(f"bench_bat{n_obs}", [cams, points, w, feat])
                        mode, colors, nnz = "tiled", 0, len(T.rows)
            with cold_cache():
                C = compile_timed(F, clock)
            values = C(*args)
            assert np.all(np.isfinite(values))
            prepare = clock["model"] + clock["jacobian"] + clock["compile"]
            rows.append([n_obs, form, len(data["cams"]), len(data["points"]), clock["model"], clock["jacobian"],
                         clock["compile"], prepare, mode, colors, nnz, len(C.source), per_call(C, *args) * 1e3])
    table("Bundle adjustment (ADBench residual), sparse Jacobian w.r.t. cameras and points",
          ["observations", "form", "cameras", "points", "model s", "jacobian s", "compile s", "prepare s", "mode",
           "colors", "nnz", "C chars", "eval ms"], rows,
          "nnz of the exact pattern: 26 per observation (2 residuals x 14 unknowns, less each row's other principal-point coordinate)")


# ------------------------------------------------------------------ fold

LV_TRUE = np.array([1.1, 0.4, 0.1, 0.4])
LV_DT = 0.01


def lotka_volterra(q: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Lotka-Volterra right-hand side: prey ``q[0]``, predators ``q[1]``, parameters (a, b, c, d)."""
    return np.array([p[0] * q[0] - p[1] * q[0] * q[1], p[2] * q[0] * q[1] - p[3] * q[1]], dtype=object)


def lv_observations(steps: int) -> np.ndarray:
    """Noise-free observations after each step, from the true parameters."""
    q, out = np.array([10.0, 5.0]), []
    for _ in range(steps):
        q = rk4(lotka_volterra, q, LV_TRUE, LV_DT, 1).astype(float)
        out.append(q)
    return np.array(out)


def lv_loss(steps: int, folded: bool) -> tuple[np.ndarray, np.ndarray, Any]:
    """Symbols theta = (a, b, c, d, prey0, predators0), data symbols and the least-squares loss.

    ``folded``: the steps are a fold of one RK4 step Function and the squared
    residuals a map of one Function summed over the steps; else everything is
    written out step by step.
    """
    theta, data = sg.symbols("theta", 6), sg.symbols("data", (steps, 2))
    if folded:
        q, p = sg.symbols("q", 2), sg.symbols("p", 4)
        step = sg.Function("lv_step", [q, p], [rk4(lotka_volterra, q, p, LV_DT, 1)], input_names=["q", "p"])
        states = fold(step, steps, shared=["p"])(theta[4:], theta[:4])
        s, d = sg.symbols("s", 2), sg.symbols("d", 2)
        square = sg.Function("lv_square", [s, d], [np.sum((s - d) * (s - d))])
        return theta, data, square.map(steps, reduce="sum")(states, data)
    else:
        q, rows = theta[4:], []
        for _ in range(steps):
            q = rk4(lotka_volterra, q, theta[:4], LV_DT, 1)
            rows.append(q)
        states = np.array(rows, dtype=object)
    residual = states - data
    return theta, data, np.sum(residual * residual)


def bench_fold(steps_folded: Sequence[int], steps_unrolled: Sequence[int]) -> None:
    """Section e: gradient of the LV fit, folded vs unrolled: prepare, compile and evaluation time."""
    rows = []
    runs = [(s, True) for s in steps_folded] + [(s, False) for s in steps_unrolled]
    theta0 = np.concatenate([LV_TRUE * 1.05, [9.5, 5.5]])
    for steps, folded in runs:
        clock = Clock()
        with sg.building():
            with clock("build"):
                theta, data, loss = lv_loss(steps, folded)
            with clock("gradient"):
                gradient = sg.grad(loss, theta)
        F = sg.Function(f"bench_lv{steps}{'f' if folded else 'u'}", [theta, data], [loss, gradient])
        with cold_cache():
            C = compile_timed(F, clock)
        obs = lv_observations(steps)
        value, g = C(theta0, obs)
        rows.append([steps, fold_label() if folded else "unrolled", clock["build"], clock["gradient"],
                     clock["compile"], clock["build"] + clock["gradient"] + clock["compile"], len(C.source),
                     per_call(C, theta0, obs) * 1e6, f"{value:.6g}", f"{np.linalg.norm(g):.6g}"])
    table("Lotka-Volterra fit: loss and gradient w.r.t. 4 parameters and the initial state (RK4 steps)",
          ["steps", "model", "build s", "grad s", "compile s", "prepare s", "C chars", "eval us", "loss",
           "|grad|"], rows,
          "fold: F.fold; 'chained calls': the stand-in for F.fold until symgraph has it (n calls of the step)")


# ------------------------------------------------------------------ main

@dataclass
class Sizes:
    """The problem sizes of one run (quick, full, big)."""

    luksan: list = field(default_factory=lambda: [1000, 10000, 100000])
    luksan_compare_max: int = 1000
    casadi_luksan_max: int = 10000
    cartpole: list = field(default_factory=lambda: [100, 400])
    cartpole_unrolled: list = field(default_factory=list)
    gmm_grid: list = field(default_factory=lambda: [(d, k) for d in (2, 10, 20, 64) for k in (5, 10, 25, 50, 100)])
    gmm_n: int = 1000
    ba: list = field(default_factory=lambda: [30000])
    fold: list = field(default_factory=lambda: [100, 1000])
    fold_unrolled: list = field(default_factory=lambda: [200])


def sizes_for(args: argparse.Namespace) -> Sizes:
    """The sizes the command line asks for."""
    if args.quick:
        s = Sizes(luksan=[100], luksan_compare_max=100, casadi_luksan_max=100, cartpole=[50],
                  gmm_grid=[(2, 5)], gmm_n=200, ba=[100], fold=[10, 100], fold_unrolled=[100])
    else:
        s = Sizes()
    if args.big:
        s.luksan.append(1000000)
        s.ba.append(1000000)
    if args.unrolled:
        s.cartpole_unrolled = [min(s.cartpole)]
    if args.luksan_sizes:
        s.luksan = args.luksan_sizes
    if args.gmm_grid:
        s.gmm_grid = [tuple(int(v) for v in dk.split(",")) for dk in args.gmm_grid]
    return s


SECTIONS = ("luksan", "cartpole", "gmm", "ba", "fold")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of a few minutes at most")
    parser.add_argument("--big", action="store_true", help="add Luksan N = 1e6 and BA with 1e6 observations")
    parser.add_argument("--unrolled", action="store_true", help="also solve the unrolled cart-pole (slow)")
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run only this section (repeatable)")
    parser.add_argument("--luksan-sizes", type=int, nargs="+", help="override the Luksan sizes")
    parser.add_argument("--gmm-grid", nargs="+", metavar="D,K", help="override the GMM sizes, e.g. 2,5 64,10")
    args = parser.parse_args(argv)
    sizes = sizes_for(args)
    print(f"symgraph structure benchmark ({'quick' if args.quick else 'full'}); casadi "
          f"{'yes' if optional('casadi') else 'no'}, jax {'yes' if optional('jax') else 'no'}, "
          f"folds: {fold_label()}")
    wanted = args.only or SECTIONS
    start = time.perf_counter()
    if "luksan" in wanted:
        bench_luksan(sizes.luksan, sizes.luksan_compare_max, sizes.casadi_luksan_max)
    if "cartpole" in wanted:
        bench_cartpole(sizes.cartpole, sizes.cartpole_unrolled)
    if "gmm" in wanted:
        bench_gmm(sizes.gmm_grid, sizes.gmm_n)
    if "ba" in wanted:
        bench_ba(sizes.ba)
    if "fold" in wanted:
        bench_fold(sizes.fold, sizes.fold_unrolled)
    print(f"\ntotal {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
