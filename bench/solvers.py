"""Solvers and custom rules (issue 11): the figures of what exists so far.

Sections (``--only NAME``, several allowed; default all):

* ``linalg``: ``sg.linalg.solve`` / ``logdet`` expanded symbolically
  (LU with partial pivoting chosen in the graph) for n = 2..8, and the
  native solve node for n = 16..200 (C size, call time beside numpy, the
  gradient's cost over the solve's): graph size,
  build + compile time, time per compiled call beside ``numpy.linalg``
  (whose per-call Python overhead dominates at these sizes), and the cost of
  the gradient of ``logdet`` relative to ``logdet`` itself.
* ``taylor``: ``sg.taylor`` against ``sg.jvp`` nested K times
  (``bench/taylor.py``): operations, build and evaluation time, K = 2..10.

* ``integrators``: ``sg.integrator`` (Radau IIA, 3 stages) on stiff Van der
  Pol (mu = 1000) and Robertson against ``solve_ivp(method="Radau")`` on the
  steps scipy chose (time, error against a tight reference), CasADi's
  ``integrator("collocation")`` on the same steps, ``adaptive=True`` against
  ``solve_ivp`` at the same tolerances, and the integrator's sensitivities
  against central differences of ``solve_ivp``.

* ``interpolant``: the interpolant lookup node (``sg.interpolant(...,
  expand=False)``, 1-D at 10^3 and 10^5 grid points, 2-D at 100 x 100):
  build and compile time, C size (the tables are static arrays in the C),
  time per lookup in C and in the VM beside ``numpy.interp``,
  ``make_interp_spline`` and ``RegularGridInterpolator``.

* ``rootfinder``: the gradient of a Newton solve's result (a nonlinear
  system of size 10 and 200): ``sg.rootfinder`` (implicit derivative, one
  linear solve with dG/dz) against 50 Newton steps unrolled into a graph
  with ``sg.linalg.solve`` and CasADi's ``rootfinder("newton")``: ops,
  build and compile time, time per point, gradient time / solve time.  At
  n = 200 the unrolled graph is built with 5 steps and scaled to 50 unless
  ``--full``.

Run: python3 bench/solvers.py [--quick] [--full] [--only linalg|taylor|integrators|interpolant|rootfinder]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from typing import Any, Sequence

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

import symgraph as sg  # noqa: E402

SECTIONS = ("linalg", "taylor", "integrators", "interpolant", "rootfinder")


def load_bench(name: str):
    """A sibling bench script as a module."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", os.path.join(ROOT, "bench", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def bench_linalg(sizes: Sequence[int]) -> None:
    """Expanded solve and logdet: size of the graphs, prepare and call time, gradient cost ratio."""
    per_call = load_bench("structure").per_call  # best of repeated batches (bench/structure.py)
    rng = np.random.default_rng(0)
    print("\n== sg.linalg, expanded (LU with pivoting in the graph), compiled with gcc -O2, cold cache")
    print(f"  {'n':>2}  {'solve ops':>9}  {'prepare s':>9}  {'call us':>8}  {'numpy us':>8}  "
          f"{'logdet ops':>10}  {'+grad ops':>9}  {'grad/logdet':>11}  {'max err':>8}")
    for n in sizes:
        A, b = sg.symbols("A", (n, n)), sg.symbols("b", n)
        start = time.perf_counter()
        with sg.building():
            x = sg.linalg.solve(A, b)
            F = sg.Function(f"solve{n}", [A, b], [x])
        with tempfile.TemporaryDirectory() as cache:
            C = F.compile(cache_dir=cache)
        prepare = time.perf_counter() - start
        An, bn = rng.normal(size=(n, n)) + n * np.eye(n), rng.normal(size=n)
        err = float(np.max(np.abs(C(An, bn) - np.linalg.solve(An, bn))))
        logdet = sg.linalg.logdet(A)
        gradient = sg.grad(logdet, A)
        ops_logdet = sg.count_ops([logdet])
        ops_both = sg.count_ops([logdet, *gradient.reshape(-1)])
        print(f"  {n:>2}  {sg.count_ops(list(x)):>9}  {prepare:>9.3f}  {per_call(C, An, bn) * 1e6:>8.2f}  "
              f"{per_call(np.linalg.solve, An, bn) * 1e6:>8.2f}  {ops_logdet:>10}  {ops_both:>9}  "
              f"{ops_both / ops_logdet:>11.2f}  {err:>8.1e}")
    print("  call us: compiled solve through CompiledFunction.__call__ (argument checks included); "
          "numpy us: numpy.linalg.solve")


def bench_solve_node(sizes: Sequence[int]) -> None:
    """The native solve node (n > MAX_EXPANDED_SIZE): prepare, call time beside numpy, gradient cost."""
    per_call = load_bench("structure").per_call
    rng = np.random.default_rng(1)
    print("\n== sg.linalg.solve beyond 8x8: one native node (LU with partial pivoting in C), gcc -O2, cold cache")
    print(f"  {'n':>3}  {'ops':>5}  {'C chars':>7}  {'prepare s':>9}  {'call us':>8}  {'numpy us':>8}  "
          f"{'grad us':>8}  {'grad/solve':>10}  {'max err':>8}")
    for n in sizes:
        A, b = sg.symbols("A", (n, n)), sg.symbols("b", n)
        start = time.perf_counter()
        x = sg.linalg.solve(A, b)
        F = sg.Function(f"solve{n}", [A, b], [x])
        f = x @ x
        G = sg.Function(f"grad{n}", [A, b], [f, sg.grad(f, A), sg.grad(f, b)])
        with tempfile.TemporaryDirectory() as cache:
            C, CG = F.compile(cache_dir=cache), G.compile(cache_dir=cache)
        prepare = time.perf_counter() - start
        An, bn = rng.normal(size=(n, n)) + n * np.eye(n), rng.normal(size=n)
        err = float(np.max(np.abs(C(An, bn) - np.linalg.solve(An, bn))))
        t_solve, t_grad = per_call(C, An, bn), per_call(CG, An, bn)
        print(f"  {n:>3}  {F.n_ops:>5}  {len(F.c_code()):>7}  {prepare:>9.3f}  {t_solve * 1e6:>8.2f}  "
              f"{per_call(np.linalg.solve, An, bn) * 1e6:>8.2f}  {t_grad * 1e6:>8.2f}  {t_grad / t_solve:>10.2f}  "
              f"{err:>8.1e}")
    print("  grad: f = |x|^2 with its gradients w.r.t. A and b (one more solve, with A^T: a second factorization); "
          "target about 2-3x the solve")


def _vdp_problem(mu: float):
    """Van der Pol ``x'' - mu (1 - x^2) x' + x = 0`` with ``mu`` a parameter: the rhs Function and numpy's."""
    x, p = sg.symbols("x", 2), sg.symbols("mu")
    rhs = sg.Function("vdp", [x, p], [np.array([x[1], p * (1 - x[0] ** 2) * x[1] - x[0]], dtype=object)])
    return rhs, (lambda t, y: [y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]]), np.array([2.0, 0.0]), mu


def _robertson_problem():
    y, k = sg.symbols("y", 3), sg.symbols("k", 3)
    rhs = sg.Function("rober", [y, k], [np.array([-k[0] * y[0] + k[1] * y[1] * y[2],
                                                  k[0] * y[0] - k[1] * y[1] * y[2] - k[2] * y[1] ** 2,
                                                  k[2] * y[1] ** 2], dtype=object)])
    kv = np.array([0.04, 1e4, 3e7])

    def f(t, y):
        return [-kv[0] * y[0] + kv[1] * y[1] * y[2], kv[0] * y[0] - kv[1] * y[1] * y[2] - kv[2] * y[1] ** 2,
                kv[2] * y[1] ** 2]
    return rhs, f, np.array([1.0, 0.0, 0.0]), kv


def _best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _casadi_collocation(problem: str, grid: np.ndarray, x0: np.ndarray, p: Any):
    """CasADi's integrator('collocation', Radau, 3 stages, one finite element per interval): (states, time)."""
    import casadi as ca

    n = x0.size
    x, q = ca.SX.sym("x", n), ca.SX.sym("p", np.size(p))
    if problem == "vdp":
        ode = ca.vertcat(x[1], q[0] * (1 - x[0] ** 2) * x[1] - x[0])
    else:
        ode = ca.vertcat(-q[0] * x[0] + q[1] * x[1] * x[2], q[0] * x[0] - q[1] * x[1] * x[2] - q[2] * x[1] ** 2,
                         q[2] * x[1] ** 2)
    start = time.perf_counter()
    F = ca.integrator("F", "collocation", {"x": x, "p": q, "ode": ode}, float(grid[0]), list(grid[1:]),
                      {"number_of_finite_elements": 1, "interpolation_order": 3, "collocation_scheme": "radau"})
    build = time.perf_counter() - start
    pv = np.atleast_1d(p)
    run = lambda: F(x0=x0, p=pv)  # noqa: E731
    xs = np.array(run()["xf"]).T
    return xs, build, _best(run)


def bench_integrators(quick: bool) -> None:
    """Stiff Van der Pol and Robertson: Radau IIA (3 stages) on the step grid scipy's Radau chose."""
    from scipy.integrate import solve_ivp

    from symgraph.integrator import integrator

    print("\n== sg.integrator: Radau IIA, 3 stages (order 5), compiled with gcc -O2, on the steps scipy chose")
    print("  Grids: the step points of solve_ivp(method='Radau', rtol) (same method, its adaptive steps),")
    print("  so both run the same scheme on the same steps; errors at the final time against")
    print("  solve_ivp(Radau, rtol=1e-10, atol=1e-12) (Robertson: atol=1e-14), relative to max|x(T)|.")
    print(f"  {'problem':<18} {'rtol':>6} {'steps':>6}  {'scipy s':>8} {'scipy err':>9}  {'sg build s':>10} "
          f"{'sg run ms':>9} {'sg err':>8}  {'casadi run ms':>13} {'|sg-casadi|':>11}")
    vdp_T = 1000.0 if quick else 2000.0
    cases = [("vdp mu=1000", "vdp", vdp_T), ("robertson", "rober", 1e5)]
    for label, kind, T in cases:
        rhs, f, x0, p = _vdp_problem(1000.0) if kind == "vdp" else _robertson_problem()
        atol_ref = 1e-12 if kind == "vdp" else 1e-14
        ref = solve_ivp(f, (0.0, T), x0, method="Radau", rtol=1e-10, atol=atol_ref).y[:, -1]
        scale = np.abs(ref).max()
        for rtol in ((1e-5, 1e-7) if quick else (1e-4, 1e-6, 1e-8)):
            atol = rtol * (1e-3 if kind == "vdp" else 1e-6)
            sol = solve_ivp(f, (0.0, T), x0, method="Radau", rtol=rtol, atol=atol)
            t_scipy = _best(lambda: solve_ivp(f, (0.0, T), x0, method="Radau", rtol=rtol, atol=atol), 1)
            err_scipy = np.abs(sol.y[:, -1] - ref).max() / scale
            grid = sol.t
            start = time.perf_counter()
            with tempfile.TemporaryDirectory() as cache:
                I = integrator(f"{kind}_int", rhs, grid, "radau", stages=3, controls=())
                C = I.compile(cache_dir=cache)
            build = time.perf_counter() - start
            xs = C(x0, p)
            t_sg = _best(lambda: C(x0, p))
            err_sg = np.abs(xs[-1] - ref).max() / scale
            try:
                xc, _, t_ca = _casadi_collocation(kind, grid, x0, p)
                ca_cols = f"{t_ca * 1e3:>13.2f} {np.abs(xc[-1] - xs[-1]).max() / scale:>11.1e}"
            except ImportError:
                ca_cols = f"{'(no casadi)':>13} {'':>11}"
            print(f"  {label:<18} {rtol:>6.0e} {grid.size - 1:>6}  {t_scipy:>8.3f} {err_scipy:>9.1e}  "
                  f"{build:>10.2f} {t_sg * 1e3:>9.2f} {err_sg:>8.1e}  {ca_cols}")
    print("  scipy s: one solve_ivp (adaptive, Python rhs); sg run: the compiled integrator on its grid;")
    print("  casadi: integrator('collocation', radau, order 3, one element per interval) on the same grid")

    # adaptive: sg's own step control (step doubling) against solve_ivp(Radau) at the same tolerances
    print("\n  adaptive=True (Radau IIA, step doubling, failed Newton = rejected step) vs solve_ivp(Radau), same rtol:")
    print(f"  {'problem':<24} {'rtol':>6}  {'scipy s':>8} {'nfev':>6} {'scipy err':>9}  {'sg build s':>10} "
          f"{'sg run ms':>9} {'sg err':>8}")
    vdp_T = 2000.0 if quick else 3000.0
    cases = [(f"vdp mu=1000, T={vdp_T:g}", "vdp", np.linspace(0.0, vdp_T, int(vdp_T / 100) + 1), 200),
             ("robertson, T=1e5", "rober", np.concatenate([[0.0], np.geomspace(1e-4, 1e5, 19)]), 100)]
    for label, kind, grid, max_steps in cases:
        rhs, f, x0, p = _vdp_problem(1000.0) if kind == "vdp" else _robertson_problem()
        atol_scale = 1e-3 if kind == "vdp" else 1e-6
        ref = solve_ivp(f, (0.0, grid[-1]), x0, method="Radau", rtol=1e-10, atol=1e-12 if kind == "vdp" else 1e-14,
                        t_eval=grid).y.T
        scale = np.abs(ref).max(axis=0)
        for rtol in ((1e-4, 1e-6) if quick else (1e-4, 1e-6, 1e-8)):
            atol = rtol * atol_scale
            sol = solve_ivp(f, (0.0, grid[-1]), x0, method="Radau", rtol=rtol, atol=atol, t_eval=grid)
            t_scipy = _best(lambda: solve_ivp(f, (0.0, grid[-1]), x0, method="Radau", rtol=rtol, atol=atol,
                                              t_eval=grid), 1)
            start = time.perf_counter()
            with tempfile.TemporaryDirectory() as cache:
                I = integrator(f"{kind}_adaptive", rhs, grid, "radau", controls=(), adaptive=True, rtol=rtol,
                               atol=atol, max_steps=max_steps)
                C = I.compile(cache_dir=cache)
            build = time.perf_counter() - start
            xs = C(x0, p)
            t_sg = _best(lambda: C(x0, p))
            err_scipy = (np.abs(sol.y.T - ref) / scale).max()
            err_sg = (np.abs(xs - ref) / scale).max()
            print(f"  {label:<24} {rtol:>6.0e}  {t_scipy:>8.3f} {sol.nfev:>6} {err_scipy:>9.1e}  {build:>10.2f} "
                  f"{t_sg * 1e3:>9.2f} {err_sg:>8.1e}")
    print(f"  {len(cases[0][2]) - 1} and 19 output intervals; max_steps {cases[0][3]} and {cases[1][3]} attempts per "
          "interval (all of them run: the loop has a fixed trip count); errors: max over the output times,")
    print("  relative to each component's max; nfev: scipy's rhs evaluations")

    # sensitivities: d x(T) / d (x0, mu) by the integrator's own derivative vs central differences of solve_ivp
    rhs, f, x0, mu = _vdp_problem(1000.0)
    T = 500.0
    grid = np.linspace(0.0, T, 101)
    X0, P = sg.symbols("X0", 2), sg.symbols("P")
    I = integrator("vdp_int", rhs, grid, "radau", stages=3, controls=())
    xT = I(X0, P)[-1]
    z = np.concatenate([X0, [P]])
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        Jf = sg.Function("dxT", [X0, P], [sg.jacobian(xT, z).to_dense()]).compile(cache_dir=cache)
        gT = sg.grad(xT[0], z)
        Gr = sg.Function("gxT", [X0, P], [gT]).compile(cache_dir=cache)
        Xc = I.compile(cache_dir=cache)
        build = time.perf_counter() - start
    J = Jf(x0, mu)
    t_j, t_g, t_x = _best(lambda: Jf(x0, mu)), _best(lambda: Gr(x0, mu)), _best(lambda: Xc(x0, mu))

    def final(v):
        g = lambda t, y: [y[1], v[2] * (1 - y[0] ** 2) * y[1] - y[0]]  # noqa: E731
        return solve_ivp(g, (0.0, T), v[:2], method="Radau", rtol=1e-11, atol=1e-13).y[:, -1]

    start = time.perf_counter()
    v0, fd = np.array([*x0, mu]), np.zeros((2, 3))
    for k, step in enumerate((1e-5, 1e-5, 1e-2)):
        e = np.zeros(3)
        e[k] = step
        fd[:, k] = (final(v0 + e) - final(v0 - e)) / (2 * step)
    t_fd = time.perf_counter() - start
    Js = np.zeros((2, 3))  # the integrator's own central differences (same scheme): truncation only
    for k, step in enumerate((1e-5, 1e-5, 1e-2)):
        e = np.zeros(3)
        e[k] = step
        Js[:, k] = (Xc(v0[:2] + e[:2], v0[2] + e[2])[-1] - Xc(v0[:2] - e[:2], v0[2] - e[2])[-1]) / (2 * step)
    print(f"\n  sensitivities of x(T), VdP mu=1000, T={T:g}, 100 Radau steps (compiled, build {build:.1f} s):")
    print(f"    states {t_x * 1e3:.2f} ms, forward Jacobian d x(T)/d(x0, mu) {t_j * 1e3:.2f} ms, "
          f"adjoint gradient of x1(T) {t_g * 1e3:.2f} ms; 6 solve_ivp for central differences {t_fd:.2f} s")
    print(f"    max |J - FD(solve_ivp)| / max|J| = {np.abs(J - fd).max() / np.abs(J).max():.1e}, "
          f"max |J - FD(own scheme)| / max|J| = {np.abs(J - Js).max() / np.abs(J).max():.1e}")
    print(f"    J = {np.array2string(J, precision=6)}")


def bench_interpolant(quick: bool) -> None:
    """The interpolant lookup node: build, compile, C size, time per lookup beside numpy/scipy."""
    from scipy.interpolate import RegularGridInterpolator, make_interp_spline
    from scipy.sparse.linalg import spsolve

    per_call = load_bench("structure").per_call
    rng = np.random.default_rng(0)
    n_q = 100000  # random queries in the grid's range, evaluated in one batch by each contender
    print(f"\n== sg.interpolant lookup node (sg.interpolant(..., expand=False)): tables as static C arrays, "
          f"gcc -O2, cold cache; time per lookup over {n_q} random queries in one batch")
    print(f"  {'grid':>9}  {'spacing':>9}  {'method':>7}  {'build s':>7}  {'compile s':>9}  {'C MB':>5}  "
          f"{'+d,d2 MB':>8}  {'C ns':>6}  {'VM ns':>6}  {'ref ns':>6}  {'ref':>22}  {'max err':>8}")
    sizes = (1000, 10000) if quick else (1000, 100000)
    cases = [((m,), spacing, method) for m in sizes for spacing in ("irregular", "uniform")
             for method in ("linear", "bspline")]
    cases += [((100, 100), "irregular", "linear"), ((40, 40) if quick else (100, 100), "irregular", "bspline")]
    for shape, spacing, method in cases:
        if spacing == "uniform":
            axes = [np.linspace(0.0, 10.0, m) for m in shape]
        else:
            axes = [np.concatenate([[0.0], np.sort(rng.uniform(0.0, 10.0, m - 2)), [10.0]]) for m in shape]
        mesh = np.meshgrid(*axes, indexing="ij")
        V = np.sin(mesh[0]) * (np.cos(0.5 * mesh[1]) if len(shape) > 1 else 1.0)
        start = time.perf_counter()
        F = sg.interpolant("f", method, axes[0] if len(shape) == 1 else axes, V, expand=False)
        build = time.perf_counter() - start
        q = rng.uniform(0.0, 10.0, (n_q, len(shape)))
        q = q[:, 0] if len(shape) == 1 else q
        with tempfile.TemporaryDirectory() as cache:
            start = time.perf_counter()
            C = F.compile(cache_dir=cache)
            compile_s = time.perf_counter() - start
        c_ns = per_call(C.batch, q) / n_q * 1e9
        vm_ns = per_call(F.batch, q, budget=0.1) / n_q * 1e9
        got = np.asarray(C.batch(q), dtype=float).reshape(-1)
        if len(shape) == 1:
            ref = (make_interp_spline(axes[0], V, k=3) if method == "bspline"
                   else (lambda p, g=axes[0], v=V: np.interp(p, g, v)))
            ref_name = "make_interp_spline k=3" if method == "bspline" else "numpy.interp"
            x = sg.symbols("x")
        else:
            ref = RegularGridInterpolator(axes, V, method="linear" if method == "linear" else "cubic",
                                          **({"solver": spsolve} if method == "bspline" else {}))
            ref_name = f"RGI {ref.method}"
            x = sg.symbols("x", len(shape))
        ref_ns = per_call(ref, q, budget=0.1) / n_q * 1e9
        err = float(np.max(np.abs(got - ref(q))))
        size = len(F.c_code()) / 1e6
        D = sg.Function("d", [x], [F(x), sg.grad(F(x), x), sg.hessian(F(x), x)])
        size_d = len(D.c_code()) / 1e6
        grid = "x".join(map(str, shape))
        print(f"  {grid:>9}  {spacing:>9}  {method:>7}  {build:>7.3f}  {compile_s:>9.2f}  {size:>5.2f}  "
              f"{size_d:>8.2f}  {c_ns:>6.1f}  {vm_ns:>6.1f}  {ref_ns:>6.1f}  {ref_name:>22}  {err:>8.1e}")
    print("  C ns / VM ns / ref ns: per lookup, CompiledFunction.batch / Function.batch (numpy VM) / the reference, "
          "each over the whole batch;\n  C MB: the lookup's C text (~20 bytes a number: per grid point 1 "
          "(linear) or 2^N (bspline) nodal numbers, + breakpoints); +d,d2 MB: value, gradient and Hessian "
          "together (one shared table);\n"
          "  uniform: the cell is guessed from the mean step, irregular: branch-free binary search")


# ------------------------------------------------------------------ rootfinder (implicit vs unrolled Newton)
def _rf_residual(z: np.ndarray, p: Any, c: np.ndarray, cos: bool = False) -> np.ndarray:
    """``3 z_i - z_{i-1} - z_{i+1} + 0.1 z_i^3 + c_i sin z_i - p_i``, and with ``cos`` the Jacobian's diagonal."""
    if cos:
        return 3.0 + 0.3 * z * z + c * np.asarray([sg.cos(e) for e in z], dtype=object)
    zz = np.concatenate([[0.0], z, [0.0]]).astype(object)
    return 3 * z - zz[:-2] - zz[2:] + 0.1 * z**3 + c * np.asarray([sg.sin(e) for e in z], dtype=object) - p


def _rf_times(fns: Sequence[Any], args: Sequence[Any], rounds: int = 5, budget: float = 0.2) -> list[float]:
    """Seconds per call of each ``fns[k](*args[k])``: the best of ``rounds`` interleaved batches (a shared machine)."""
    reps = []
    for fn, a in zip(fns, args):
        fn(*a)
        start = time.perf_counter()
        fn(*a)
        reps.append(max(1, min(2000, int(budget / max(time.perf_counter() - start, 1e-7)))))
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for k, (fn, a) in enumerate(zip(fns, args)):
            start = time.perf_counter()
            for _ in range(reps[k]):
                fn(*a)
            best[k] = min(best[k], (time.perf_counter() - start) / reps[k])
    return best


def _rf_ops(F: Any) -> int:
    """Operations of ``F`` and of every Function it calls, each once (a native call counts its results)."""
    from codegen.c99 import callee_order

    return F.n_ops + sum(G.n_ops for G in callee_order(F))


def _rf_compile(F: Any) -> tuple[Any, float]:
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        C = F.compile(cache_dir=cache)
        return C, time.perf_counter() - start


def bench_rootfinder(sizes: Sequence[int], unrolled_steps: dict) -> None:
    """Gradient of a Newton solve's result: sg.rootfinder (implicit) vs 50 unrolled Newton steps vs CasADi."""
    from symgraph.rootfinder import rootfinder

    steps = 50
    print(f"\n== rootfinder: f(p) = |z(p)|^2 / 2 with G(z, p) = 0 (tridiagonal + cubic + sine, size n), Newton "
          f"(at most {steps} steps, tol 1e-10), gradient df/dp")
    print("  ops: the Function's and its callees' (each once; CasADi: MX instructions); compile: gcc -O2, cold "
          "cache; solve s, grad s: per point of a batch (C batch; CasADi: Function.map)")
    head = (f"  {'n':>3}  {'method':<22}  {'solve ops':>9}  {'grad ops':>8}  {'build s':>7}  {'compile s':>9}  "
            f"{'solve s':>9}  {'grad s':>9}  {'grad/solve':>10}  {'|grad - implicit|':>17}")
    print(head)
    for n in sizes:
        rng = np.random.default_rng(n)
        c, pv = rng.uniform(0.2, 0.5, n), rng.normal(size=n) * 2
        batch = 100 if n <= 20 else 4
        P = np.tile(pv, (batch, 1))
        z, p = sg.symbols("z", n), sg.symbols("p", n)
        rows: list = []

        def row(method, S, Gr, build, ref=None, repeat=1.0):
            CS, ts = _rf_compile(S)
            CG, tg = _rf_compile(Gr)
            t_s, t_g = (t / batch for t in _rf_times([CS.batch, CG.batch], [(P,), (P,)]))
            g = CG(pv)
            err = "-" if ref is None else f"{float(np.max(np.abs(g - ref))):.1e}"
            note = "" if repeat == 1.0 else f" (x{repeat:g})"
            print(f"  {n:>3}  {method:<22}  {_rf_ops(S):>9}  {_rf_ops(Gr):>8}  {build * repeat:>7.2f}  "
                  f"{(ts + tg) * repeat:>9.2f}  {t_s * repeat:>9.2e}  {t_g * repeat:>9.2e}  {t_g / t_s:>10.2f}  "
                  f"{err:>17}{note}", flush=True)
            return g

        start = time.perf_counter()
        with sg.building():
            R = rootfinder("newton", sg.Function("g", [z, p], [_rf_residual(z, p, c)]), max_iter=steps)
            zi = R(np.zeros(n), p)
            f = 0.5 * np.sum(zi * zi)
            S = sg.Function("solve", [p], [zi])
            Gr = sg.Function("grad", [p], [sg.grad(f, p)])
            Gi = Gr.inline()
        build = time.perf_counter() - start
        ref = row("implicit (rootfinder)", S, Gr, build)
        row("implicit, grad inlined", S, Gi, build, ref)

        k = unrolled_steps.get(n, steps)
        start = time.perf_counter()
        off = -(np.eye(n, k=1) + np.eye(n, k=-1))
        with sg.building():
            zu = np.zeros(n, dtype=object)
            zu[:] = 0.0
            for _ in range(k):
                J = off.astype(object) + np.diag(_rf_residual(zu, p, c, cos=True))
                zu = zu - sg.linalg.solve(J, _rf_residual(zu, p, c))
            f = 0.5 * np.sum(zu * zu)
            Su = sg.Function("usolve", [p], [zu])
            Gu = sg.Function("ugrad", [p], [sg.grad(f, p)])
        build = time.perf_counter() - start
        row(f"unrolled, {k} steps", Su, Gu, build, ref if k == steps else None, steps / k)
        _rf_casadi(n, c, pv, steps, ref, batch)
    print("  grad/solve: the gradient Function's time over the solve Function's (target: at most about 2, one "
          "extra solve).  The rule's derivative is spliced into the gradient on the call's own operands, so its "
          "call of the rootfinder is the primal one: only one linear solve with dG/dz at the root is added "
          "(inlining the gradient Function changes nothing more).  (xK): a shorter "
          "unrolled run, its build/compile/time figures scaled by K to 50 steps (--full runs all 50); its "
          "grad/solve is the measured one.")


def _rf_casadi(n: int, c: np.ndarray, pv: np.ndarray, steps: int, ref: np.ndarray, batch: int) -> None:
    try:
        import casadi as ca
    except ImportError:
        print(f"  {n:>3}  {'casadi':<22}  (casadi not installed)")
        return
    start = time.perf_counter()
    z, p = ca.SX.sym("z", n), ca.SX.sym("p", n)
    zz = ca.vertcat(0, z, 0)
    r = 3 * z - zz[:-2] - zz[2:] + 0.1 * z**3 + ca.DM(c) * ca.sin(z) - p
    rf = ca.rootfinder("rf", "newton", ca.Function("g", [z, p], [r]), {"abstol": 1e-10, "max_iter": steps})
    P = ca.MX.sym("p", n)
    zc = rf(ca.DM.zeros(n), P)
    f = 0.5 * ca.dot(zc, zc)
    S = ca.Function("S", [P], [zc])
    Gr = ca.Function("G", [P], [ca.gradient(f, P)])
    build = time.perf_counter() - start
    PT = np.tile(pv[:, None], (1, batch))   # the batch as CasADi's map: per point, without Python's call overhead
    t_s, t_g = (t / batch for t in _rf_times([S.map(batch), Gr.map(batch)], [(PT,), (PT,)]))
    err = float(np.max(np.abs(np.asarray(Gr(pv)).ravel() - ref)))
    print(f"  {n:>3}  {'casadi newton (MX)':<22}  {S.n_instructions():>9}  {Gr.n_instructions():>8}  {build:>7.2f}  "
          f"{'-':>9}  {t_s:>9.2e}  {t_g:>9.2e}  {t_g / t_s:>10.2f}  {err:>17.1e}", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and low orders")
    parser.add_argument("--only", action="append", choices=SECTIONS, help="run only this section (repeatable)")
    parser.add_argument("--full", action="store_true", help="rootfinder: all 50 unrolled steps at n = 200 (minutes)")
    args = parser.parse_args(argv)
    sections = args.only or list(SECTIONS)
    start = time.perf_counter()
    if "linalg" in sections:
        bench_linalg([2, 4] if args.quick else [2, 3, 4, 6, 8])
        bench_solve_node([16] if args.quick else [16, 64, 200])
    if "taylor" in sections:
        print()
        load_bench("taylor").main(["--quick"] if args.quick else [])
    if "integrators" in sections:
        bench_integrators(args.quick)
    if "interpolant" in sections:
        bench_interpolant(args.quick)
    if "rootfinder" in sections:
        bench_rootfinder([10] if args.quick else [10, 200], {} if args.full else {200: 5})
    print(f"\ntotal {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
