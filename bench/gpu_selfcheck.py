"""Device check without pytest or hypothesis: GPU results of a few Functions against the VM (and C where it works).

For machines where the test dependencies are missing (bench/gpu_check.sh falls back to it): each
check prints PASS or FAIL with the largest difference; the exit status is the number of failures.
Covers the op table on safe inputs, a sparse Jacobian of RK4 steps, a map with a shared argument
and a sum, a fold, calls, both layouts, device (CuPy) arguments, chunks and host results.

Run: PYTHONPATH=. python bench/gpu_selfcheck.py
"""

from __future__ import annotations

import os
import sys
import traceback

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)  # before bench/ (bench/codegen.py would shadow the codegen package)
sys.path.insert(1, os.path.dirname(os.path.abspath(__file__)))

from gpu import HAVE_CFFI  # noqa: E402  (installs a cffi stand-in when cffi is missing)

import symgraph as sg  # noqa: E402
from codegen import cuda_runtime  # noqa: E402
from symgraph.batch import SparseBatch  # noqa: E402

REL = 1e-12  # GPU libm against glibc/numpy through a few ops: a few ulps each


def numbers(results, n_out: int) -> list[np.ndarray]:
    out = []
    for r in [results] if n_out == 1 else results:
        data = r.data if isinstance(r, SparseBatch) else r
        out.append(np.asarray(data.get() if hasattr(data, "get") else data, dtype=np.float64))
    return out


def worst(got: list, ref: list) -> float:
    w = 0.0
    for g, r in zip(got, ref):
        if g.shape != r.shape:
            return float("inf")
        both_nan = np.isnan(g) & np.isnan(r)
        with np.errstate(all="ignore"):
            d = np.where(both_nan | (g == r), 0.0, np.abs(g - r) / (1e-300 + np.abs(r)))
        w = max(w, float(np.max(d)) if d.size else 0.0)
    return w


def functions() -> dict:
    """name -> (Function, arguments of n points)."""
    rng = np.random.default_rng(7)
    cases = {}
    x = sg.symbols("x", 3)
    a, b, c = x
    ops = [a + b, a - b, a * b, a / b, -a, a ** 2, sg.sqrt(sg.abs(a) + 1), sg.cbrt(a), sg.exp(a), sg.expm1(a),
           sg.log(sg.abs(a) + 0.5), sg.log1p(sg.abs(b)), sg.log2(c + 3), sg.log10(c + 3), sg.sin(a), sg.cos(b),
           sg.tan(c / 3), sg.asin(a / 2), sg.acos(b / 2), sg.atan(c), sg.atan2(a, b), sg.sinh(a), sg.cosh(b),
           sg.tanh(c), sg.asinh(a), sg.acosh(sg.abs(b) + 1), sg.atanh(c / 2), sg.erf(a), sg.erfc(b),
           sg.sign(a), sg.floor(a * 3), sg.ceil(b * 3), sg.fmin(a, b), sg.fmax(a, c), sg.fmod(a * 5, c + 3),
           sg.hypot(a, b), sg.if_else(a < b, a, c), sg.lgamma(c + 2.5), sg.digamma(c + 2.5),
           sg.polygamma(1, c + 2.5), sg.erfinv(a / 2), (c + 2) ** 1.7, a ** 7]
    cases["ops"] = (sg.Function("ops", [x], [np.array(ops, dtype=object)]),
                    lambda n: (rng.uniform(-1, 1, (n, 3)),))
    q, u = sg.symbols("q", 4), sg.symbols("u")
    s1, c1 = sg.sin(q[1]), sg.cos(q[1])
    h = 0.01

    def rhs(z):
        return np.array([z[2], z[3], (u + 0.3 * sg.sin(z[1]) * z[3] ** 2) / (1.0 + 0.3 * sg.sin(z[1]) ** 2),
                         -(u * sg.cos(z[1]) + 9.81 * sg.sin(z[1])) / (1.0 + sg.sin(z[1]) ** 2)])

    z = q
    for _ in range(3):
        k1 = rhs(z)
        k2 = rhs(z + h / 2 * k1)
        k3 = rhs(z + h / 2 * k2)
        k4 = rhs(z + h * k3)
        z = z + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    del s1, c1
    cases["rk4_sparse_jacobian"] = (sg.Function("rk4", [q, u], [z, sg.jacobian(z, np.concatenate([q, [u]]))]),
                                    lambda n: (rng.uniform(-1, 1, (n, 4)), rng.uniform(-3, 3, n)))
    y, p = sg.symbols("y", 2), sg.symbols("p")
    term = sg.Function("term", [y, p], [sg.exp(y[0] * p) - y[1] ** 2, sg.sin(y) * p])
    Y = sg.symbols("Y", (5, 2))
    total, stacked = term.map(5, shared=["p"], reduce=("sum", None))(Y, p)
    cases["map_shared_sum"] = (sg.Function("m", [Y, p], [total, stacked, sg.grad(total, Y.reshape(-1))]),
                               lambda n: (rng.uniform(-1, 1, (n, 5, 2)), 0.4))
    s, v = sg.symbols("s", 2), sg.symbols("v")
    body = sg.Function("body", [s, v], [np.array([s[1], -sg.sin(s[0]) + v]) * 0.1 + s])
    V = sg.symbols("V", 6)
    states = body.fold(6)(s, V)
    cases["fold"] = (sg.Function("fo", [s, V], [states, sg.jacobian(states[-1], s)]),
                     lambda n: (rng.uniform(-1, 1, (n, 2)), rng.uniform(-1, 1, (n, 6))))
    # a map Function: its body's kernel over points x instances (one thread per instance), the shared
    # argument one array for every thread
    cases["map_grid"] = (term.map(5, shared=["p"], reduce=("sum", None)),
                         lambda n: (rng.uniform(-1, 1, (n, 5, 2)), 0.4))
    w = sg.symbols("w")
    inner = sg.Function("inner", [w], [sg.log1p(w * w) + sg.atan2(w, 2.0)])
    cases["calls"] = (sg.Function("c", [x], [inner(x[0]) * inner(x[1] + x[2]) + inner(x[2])]),
                      lambda n: (rng.uniform(-2, 2, (n, 3)),))
    return cases


def main() -> int:
    status = cuda_runtime.cuda_status()
    print(f"CuPy {status['cupy']}, {status['devices']} GPU(s), NVRTC {status['nvrtc']}, nvcc {status['nvcc']}, "
          f"cffi {'yes' if HAVE_CFFI else 'missing'}")
    if status["reason"]:
        print(f"SKIP: no device check possible here: {status['reason']}")
        return 0
    import cupy

    failures = 0
    for name, (F, make) in functions().items():
        try:
            args = make(1001)
            C = F.compile(target="cuda")
            ref = numbers(F.batch(*args), F.n_out)
            results = {}
            for layout in ("soa", "aos"):
                results[f"host {layout}"] = C.batch(*args, out="host", layout=layout)
                dev = [cupy.asarray(a) if np.ndim(a) else a for a in args]
                results[f"device {layout}"] = C.batch(*dev, layout=layout)
            results["chunks of 97"] = C.batch(*args, out="host", chunk_points=97)
            if C.program.inlined:  # the calls kept (work array, argument copies): the other code path
                kept = F.compile(target="cuda", inline=False)
                results["calls kept soa"] = kept.batch(*args, out="host")
                results["calls kept aos"] = kept.batch(*args, out="host", layout="aos")
            print(f"  {name}: {C.program.n_ops} instructions, calls expanded {C.program.inlined}, strided views "
                  f"{C.program.strided}, {C.program.thread_doubles} doubles of thread-local arrays, "
                  f"peak {C.program.peak_live} live values")
            if HAVE_CFFI:
                try:
                    results["(C backend vs VM)"] = F.compile().batch(*args)
                except Exception as exc:  # no C compiler
                    print(f"  note: C backend unavailable ({type(exc).__name__})")
            for what, r in results.items():
                w = worst(numbers(r, F.n_out), ref)
                ok = w <= REL
                failures += not ok
                print(f"{'PASS' if ok else 'FAIL'} {name:22s} {what:18s} max rel diff {w:.2e} "
                      f"({C.compiler}, compile {C.compile_seconds:.2f} s)")
        except Exception:
            failures += 1
            print(f"FAIL {name}: exception")
            traceback.print_exc()
    print(f"{'ALL PASS' if not failures else f'{failures} FAILURE(S)'}")
    return failures


if __name__ == "__main__":
    sys.exit(main())
