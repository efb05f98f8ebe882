"""GPU batch evaluation (issue 14): symgraph's CUDA kernels beside JAX jit(vmap(...)) on the same GPU and C.batch.

Cases (each a Function evaluated at N independent points, one GPU thread per point):

* ``cartpole``: 10 RK4 steps of the cart-pole of examples/cartpole_multiple_shooting.py and the
  sparse Jacobian of the final state w.r.t. state and control (15 nonzeros), at 1e6 and 1e7 points;
* ``luksan``: the Luksan (chained Rosenbrock) term of ``sg.models.luksan_objective`` and its
  gradient, mapped over 1e7 terms (the two arguments are shifted views of one device vector);
* ``gmm``: ADBench's GMM objective at one point and its gradient w.r.t. all parameters
  (shared by the points: broadcast), over 1e6 points (bench/structure.py's model).

Per case: compile time (cold cache: code generation + NVRTC/nvcc), time per batch (median after
a warm-up, device arrays in and out), points/s, GB/s (arguments read + results written once),
Tape instructions per second, for component-major (SoA, default) and point-major (AoS) layouts,
one row with numpy arguments and host results (transfers included); JAX jit(vmap(...)) in float64
on the same GPU (jacfwd / grad, dense); ``C.batch`` on the CPU at a small N, extrapolated per point.
Results are checked against the CPU (C, or the VM) and JAX on the first points.  No assertion on time.
Per case the program's per-thread memory is printed (calls expanded, strided views, doubles of work and
of thread-local arrays, peak live values), and variants are timed at the first size beside the default:
cart-pole in device functions of 2000 instructions; where calls were expanded (GMM), the calls kept as the
C backend emits them (``inline=False``: the code before the expansion).

Run: PYTHONPATH=. python bench/gpu.py [--quick] [--only cartpole luksan gmm] [--no-jax] [--no-cpu]
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import statistics
import sys
import tempfile
import time
import types
from typing import Any, Callable, Sequence

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)  # before bench/ (bench/codegen.py would shadow the codegen package)


def ensure_cffi() -> bool:
    """Whether the real cffi is importable; if not, a stand-in lets ``codegen`` import (the CUDA path never uses it).

    The C backend (``F.compile()``) loads libraries with cffi, imported when
    ``codegen`` is; a GPU machine may lack it.  The stand-in fails on use
    with a clear message, so only the CPU comparisons are skipped.
    """
    try:
        import _cffi_backend  # noqa: F401
        import cffi  # noqa: F401
        return True
    except ImportError:
        pass
    stub = types.ModuleType("cffi")
    stub.__version__ = "0+missing"

    class FFI:  # noqa: D401
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise ImportError("cffi is not installed here: the C backend (F.compile()) is unavailable; "
                              "compile(target='cuda') does not need it")

    stub.FFI = FFI
    sys.modules["cffi"] = stub
    return False


HAVE_CFFI = ensure_cffi()

import symgraph as sg  # noqa: E402
from codegen import cuda_runtime  # noqa: E402


def load_module(name: str, relative_path: str) -> Any:
    """Import a script of this repository (an example, another benchmark) by its path."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, relative_path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def optional(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError:
        return None


# ------------------------------------------------------------------ timing

def median_time(fn: Callable[[], Any], sync: Callable[[], None], repeats: int) -> float:
    """Median wall time of ``fn()`` followed by ``sync()``, after one warm-up call."""
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4g}"
    return f"{value:.3e}"


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], note: str = "") -> None:
    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c) for i, c in enumerate(columns)]
    print(f"\n## {title}")
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    for r in cells:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths)))
    if note:
        print(note)
    sys.stdout.flush()


def max_rel(a: Any, b: Any) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / (1.0 + np.abs(b)))) if a.size else 0.0


def host_values(results: Any) -> list[np.ndarray]:
    out = []
    for r in results if isinstance(results, tuple) else (results,):
        data = r.data if isinstance(r, sg.batch.SparseBatch) else r
        out.append(np.asarray(data.get() if hasattr(data, "get") else data, dtype=np.float64))
    return out


# ------------------------------------------------------------------ cases

class Case:
    """One benchmark: the Function, its arguments (device, SoA and AoS), the JAX twin and the CPU check size."""

    name: str
    F: Any
    sizes: list
    cpu_points: int

    def arguments(self, n: int, cupy: Any, layout: str) -> tuple:
        raise NotImplementedError

    def host_arguments(self, n: int) -> tuple:
        raise NotImplementedError

    def jax_function(self, jax: Any) -> Callable | None:
        return None

    def jax_arguments(self, n: int, jnp: Any) -> tuple:
        raise NotImplementedError

    def jax_reference(self, outputs: Any) -> list:
        """JAX's outputs in our output order and layout (the nonzeros of a sparse output)."""
        return [np.asarray(o) for o in outputs]


def rng_for(n: int) -> np.random.Generator:
    return np.random.default_rng(12345 + n)


class Cartpole(Case):
    name = "cartpole"

    def __init__(self, sizes: list, cpu_points: int) -> None:
        self.sizes, self.cpu_points = sizes, cpu_points
        self.model = load_module("cartpole_multiple_shooting", "examples/cartpole_multiple_shooting.py")
        q, u = sg.symbols("q", 4), sg.symbols("u")
        self.dt, self.steps = 0.1, 10
        final = self.model.rk4(self.model.dynamics, q, u, self.dt, self.steps)
        jac = sg.jacobian(final, np.concatenate([q, [u]]))
        self.F = sg.Function("cartpole_rk4_jac", [q, u], [final, jac], input_names=["q", "u"],
                             output_names=["q_next", "jac"])
        self.pattern = self.F.output_pattern(1)

    def host_arguments(self, n: int) -> tuple:
        rng = rng_for(n)
        return rng.uniform(-1, 1, (n, 4)), rng.uniform(-5, 5, n)

    def arguments(self, n: int, cupy: Any, layout: str) -> tuple:
        q, u = (cupy.asarray(a) for a in self.host_arguments(n))
        if layout == "soa":
            q = cupy.ascontiguousarray(q.T).T
        return q, u

    def jax_function(self, jax: Any) -> Callable:
        jnp, m = jax.numpy, self.model
        mc, mp, length, g = m.CART_MASS, m.POLE_MASS, m.POLE_LENGTH, m.GRAVITY

        def dynamics(q, u):
            _, theta, dx, dtheta = q
            s, c = jnp.sin(theta), jnp.cos(theta)
            den = mc + mp * s * s
            ddx = (length * mp * s * dtheta * dtheta + u + mp * g * c * s) / den
            ddtheta = -(length * mp * c * s * dtheta * dtheta + u * c + (mc + mp) * g * s) / (length * den)
            return jnp.stack([dx, dtheta, ddx, ddtheta])

        h = self.dt / self.steps

        def final(z):
            q, u = z[:4], z[4]
            for _ in range(self.steps):
                k1 = dynamics(q, u)
                k2 = dynamics(q + h / 2 * k1, u)
                k3 = dynamics(q + h / 2 * k2, u)
                k4 = dynamics(q + h * k3, u)
                q = q + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            return q

        def point(q, u):
            z = jnp.concatenate([q, u[None]])
            return final(z), jax.jacfwd(final)(z)

        return jax.jit(jax.vmap(point))

    def jax_arguments(self, n: int, jnp: Any) -> tuple:
        return tuple(jnp.asarray(a) for a in self.host_arguments(n))

    def jax_reference(self, outputs: Any) -> list:
        state, jac = (np.asarray(o) for o in outputs)
        rows, cols = self.pattern.indices, np.repeat(np.arange(5), np.diff(self.pattern.indptr))
        return [state, jac[:, rows, cols]]


class Luksan(Case):
    name = "luksan"

    def __init__(self, sizes: list, cpu_points: int) -> None:
        self.sizes, self.cpu_points = sizes, cpu_points
        a, b = sg.symbols("a"), sg.symbols("b")
        f = sg.models.luksan_objective(np.array([a, b], dtype=object))
        self.F = sg.Function("luksan_term_grad", [a, b], [f, sg.grad(f, np.array([a, b], dtype=object))],
                             input_names=["a", "b"], output_names=["f", "grad"])

    def vector(self, n: int) -> np.ndarray:
        return rng_for(n).uniform(-2, 2, n + 1)

    def host_arguments(self, n: int) -> tuple:
        x = self.vector(n)
        return x[:-1], x[1:]

    def arguments(self, n: int, cupy: Any, layout: str) -> tuple:
        x = cupy.asarray(self.vector(n))
        return x[:-1], x[1:]  # term i reads x[i], x[i+1]: two views of one vector, no copies

    def jax_function(self, jax: Any) -> Callable:
        def term(a, b):
            return 100 * (a ** 2 - b) ** 2 + (a - 1) ** 2

        value_and_grad = jax.value_and_grad(term, argnums=(0, 1))

        def point(a, b):
            value, (ga, gb) = value_and_grad(a, b)
            return value, jax.numpy.stack([ga, gb])

        return jax.jit(jax.vmap(point))

    def jax_arguments(self, n: int, jnp: Any) -> tuple:
        x = jnp.asarray(self.vector(n))
        return x[:-1], x[1:]


class GMM(Case):
    name = "gmm"

    def __init__(self, sizes: list, cpu_points: int, d: int = 5, k: int = 10) -> None:
        self.sizes, self.cpu_points, self.d, self.k = sizes, cpu_points, d, k
        self.structure = load_module("bench_structure", "bench/structure.py")
        with sg.building():
            inputs, objective = self.structure.gmm_symgraph(d, k, 1)
            gradient = [sg.grad(objective, v) for v in inputs[:4]]
        self.F = sg.Function(f"gmm_point_grad_d{d}_k{k}", inputs, [objective, *gradient],
                             input_names=["alphas", "means", "qs", "ls", "x"],
                             output_names=["f", "d_alphas", "d_means", "d_qs", "d_ls"])
        self.params = self.structure.gmm_data(d, k, 1).params

    def points(self, n: int) -> np.ndarray:
        return rng_for(n).uniform(-1, 1, (n, 1, self.d))

    def host_arguments(self, n: int) -> tuple:
        return (*self.params, self.points(n))

    def arguments(self, n: int, cupy: Any, layout: str) -> tuple:
        x = cupy.asarray(self.points(n))
        if layout == "soa":
            x = cupy.ascontiguousarray(x.reshape(n, -1).T).T.reshape(n, 1, self.d)
        return (*self.params, x)  # the parameters: numpy, shared by every point (uploaded once per batch)

    def jax_function(self, jax: Any) -> Callable:
        objective = self.structure.gmm_jax(self.d, self.k, 1)
        value_and_grad = jax.value_and_grad(objective, argnums=(0, 1, 2, 3))

        def point(alphas, means, qs, ls, x):
            value, grads = value_and_grad(alphas, means, qs, ls, x)
            return (value, *grads)

        return jax.jit(jax.vmap(point, in_axes=(None, None, None, None, 0)))

    def jax_arguments(self, n: int, jnp: Any) -> tuple:
        return (*(jnp.asarray(p) for p in self.params), jnp.asarray(self.points(n)))


# ------------------------------------------------------------------ running a case

def bytes_per_point(C: Any, args: tuple, n: int) -> int:
    """Doubles read (batched arguments) and written (results) per point, in bytes."""
    batched = sum(size for size, a, shape in zip(C.program.in_sizes, args, C.function.input_shapes)
                  if tuple(np.shape(a)) != tuple(shape))
    return 8 * (batched + sum(C.program.out_sizes))


class Rows(list):
    """The table's rows; each is also printed when added (figures survive a time limit that stops the run)."""

    def append(self, row: list) -> None:
        super().append(row)
        print("  row: " + " | ".join(fmt(v) for v in row[:8]))
        sys.stdout.flush()


def describe_program(prog: Any) -> str:
    """What decides a thread's memory: calls expanded, strided views, thread-local arrays, peak live values."""
    return (f"{prog.n_ops:,} instructions, calls expanded: {prog.inlined}, strided views: {prog.strided}, "
            f"{prog.work_size} doubles of work, {prog.thread_doubles} doubles of thread-local arrays, "
            f"peak {prog.peak_live} live values")


def variant_options(C: Any, single_part: bool) -> list:
    """The variants timed beside the default program: device functions of 2000 instructions (cart-pole),
    the calls kept as the C backend emits them (where they were expanded: the code before the expansion)."""
    out = []
    if single_part:
        out.append(("parts of 2000", {"chunk_size": 2000}))
    if C.program.inlined:
        out.append(("calls kept", {"inline": False}))
    return out


def run_case(case: Case, cupy: Any, jax: Any, cpu: bool, repeats: int, rows: list, checks: list,
             single_part: bool = False) -> None:
    F = case.F
    print(f"\n# {case.name}: {F.n_ops} Tape instructions, inputs {F.input_shapes}, "
          f"outputs {[s if p is None else f'{s} sparse, {len(p[0])} nnz' for s, p in zip(F.output_shapes, F.output_sparsity)]}")
    sys.stdout.flush()
    with tempfile.TemporaryDirectory(prefix="symgraph-gpu-bench-") as cold:
        start = time.perf_counter()
        C = F.compile(target="cuda", cache_dir=cold)
        compile_s = time.perf_counter() - start
        print(f"  compile (cold cache): {compile_s:.2f} s ({C.compiler}; generation {C.generate_seconds:.2f} s), "
              f"{len(C.source):,} chars of CUDA, {C.work_size} doubles of work per thread, block {C.block_size}")
        print(f"  per thread: {describe_program(C.program)}")
    ops = C.program.n_ops
    variants = []  # (label, CudaFunction, compile seconds), timed at the first size
    for label, options in variant_options(C, single_part):
        with tempfile.TemporaryDirectory(prefix="symgraph-gpu-bench-") as cold:
            start = time.perf_counter()
            V = F.compile(target="cuda", cache_dir=cold, **options)
            seconds = time.perf_counter() - start
        print(f"  variant '{label}': compile {seconds:.2f} s, {describe_program(V.program)}")
        variants.append((label, V, seconds))
    sync = cupy.cuda.Device().synchronize
    cpu_per_point = None
    reference = None
    small_n = min(1000, case.cpu_points)
    small = case.host_arguments(small_n)
    if cpu and HAVE_CFFI:
        try:
            start = time.perf_counter()
            CC = F.compile()
            cpu_compile = time.perf_counter() - start
            m = case.cpu_points
            args = case.host_arguments(m)
            cpu_time = median_time(lambda: CC.batch(*args), lambda: None, 2)
            cpu_per_point = cpu_time / m
            reference = host_values(CC.batch(*small))
            print(f"  C.batch on the CPU: {cpu_per_point * 1e6:.3f} us per point ({m:,} points; compile {cpu_compile:.1f} s)")
        except Exception as exc:  # no C compiler or cffi: the VM is the reference
            print(f"  C backend unavailable ({type(exc).__name__}: {exc}); checking against the VM")
    if reference is None:
        reference = host_values(F.batch(*small))
    got = host_values(C.batch(*small, out="host"))
    worst = max(max_rel(g, r) for g, r in zip(got, reference))
    checks.append((case.name, "GPU vs CPU", worst))
    jfn = case.jax_function(jax) if jax is not None else None
    jax_compile = None
    if jfn is not None:
        start = time.perf_counter()
        out = jfn(*case.jax_arguments(small_n, jax.numpy))
        jax.block_until_ready(out)
        jax_compile = time.perf_counter() - start
        jref = case.jax_reference(out)
        checks.append((case.name, "GPU vs JAX", max(max_rel(g, r) for g, r in zip(got, jref))))
    for n in case.sizes:
        for layout in ("soa", "aos"):
            args = case.arguments(n, cupy, layout)
            per = bytes_per_point(C, args, n)
            t = median_time(lambda: C.batch(*args, layout=layout), sync, repeats)
            rows.append([case.name, n, f"symgraph {layout}", t * 1e3, n / t, per * n / t / 1e9, ops * n / t / 1e9,
                         compile_s, None])
            del args
        host = case.host_arguments(n)
        t = median_time(lambda: C.batch(*host, out="host"), sync, max(1, repeats // 2))
        rows.append([case.name, n, "symgraph numpy in/out", t * 1e3, n / t, bytes_per_point(C, host, n) * n / t / 1e9,
                     ops * n / t / 1e9, None, None])
        del host
        jax_time = None
        if jfn is not None:
            jargs = case.jax_arguments(n, jax.numpy)
            try:
                jax_time = median_time(lambda: jax.block_until_ready(jfn(*jargs)), lambda: None, repeats)
                rows.append([case.name, n, "JAX jit(vmap)", jax_time * 1e3, n / jax_time, None, None, jax_compile, None])
            except Exception as exc:  # e.g. out of memory at the largest size
                rows.append([case.name, n, f"JAX failed: {type(exc).__name__}", None, None, None, None, jax_compile, None])
            del jargs
        if cpu_per_point is not None:
            rows.append([case.name, n, "C.batch CPU (extrapolated)", cpu_per_point * n * 1e3, 1 / cpu_per_point,
                         None, ops / cpu_per_point / 1e9, None, None])
        for label, V, seconds in variants if n == case.sizes[0] else ():
            args = case.arguments(n, cupy, "soa")
            t = median_time(lambda: V.batch(*args), sync, repeats)
            rows.append([case.name, n, f"symgraph soa, {label}", t * 1e3, n / t, bytes_per_point(C, args, n) * n / t / 1e9,
                         ops * n / t / 1e9, seconds, None])
            del args
        soa = [r for r in rows if r[0] == case.name and r[1] == n and r[2] == "symgraph soa"][-1]
        if jax_time is not None:
            soa[8] = jax_time * 1e3 / soa[3]
        cupy.get_default_memory_pool().free_all_blocks()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a minute on one GPU)")
    parser.add_argument("--only", nargs="+", choices=("cartpole", "luksan", "gmm"), help="cases to run")
    parser.add_argument("--no-jax", action="store_true", help="skip JAX")
    parser.add_argument("--no-cpu", action="store_true", help="skip C.batch on the CPU")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per measurement (median)")
    args = parser.parse_args(argv)
    status = cuda_runtime.cuda_status()
    print(f"symgraph GPU benchmark: CuPy {status['cupy']}, {status['devices']} device(s), NVRTC {status['nvrtc']}, "
          f"nvcc {status['nvcc']}, cffi {'yes' if HAVE_CFFI else 'missing (no C backend)'}")
    if status["reason"]:
        print(f"no GPU run possible here: {status['reason']}")
        return 0
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.runtime.getDevice())
    print(f"device: {props['name'].decode() if isinstance(props['name'], bytes) else props['name']}, "
          f"{props['multiProcessorCount']} SMs, {props['totalGlobalMem'] / 2**30:.0f} GiB")
    jax = None
    if not args.no_jax:
        jax = optional("jax")
        if jax is not None:
            jax.config.update("jax_enable_x64", True)
            backend = jax.default_backend()
            print(f"JAX {jax.__version__} on {backend} ({jax.devices()[0]})")
            if backend != "gpu":
                print("  JAX has no GPU backend here: JAX rows are skipped")
                jax = None
    repeats = args.repeats or (3 if args.quick else 5)
    quick = args.quick
    cases = {"cartpole": lambda: Cartpole([10**5] if quick else [10**6, 10**7], 500 if quick else 2000),
             "luksan": lambda: Luksan([10**6] if quick else [10**7], 10**5),
             "gmm": lambda: GMM([10**5] if quick else [10**6], 500 if quick else 2000)}
    rows: list = Rows()
    checks: list = []
    for name in args.only or list(cases):
        try:
            run_case(cases[name](), cupy, jax, not args.no_cpu, repeats, rows, checks, single_part=name == "cartpole")
        except Exception as exc:  # keep the other cases' figures
            import traceback
            traceback.print_exc()
            print(f"  {name} failed: {type(exc).__name__}: {exc}")
    table("GPU batch evaluation", ["case", "points", "what", "ms/batch", "points/s", "GB/s", "Gop/s", "compile s",
                                   "JAX/soa"], rows,
          "GB/s: batched arguments read + results written once; Gop/s: Tape instructions (of the optimized Function "
          "and each callee once) per second; 'compile s': cold cache for symgraph (generation + NVRTC/nvcc), first "
          "call (trace + XLA) for JAX; JAX/soa: JAX's time over symgraph's (SoA); JAX outputs dense Jacobians")
    table("Checks (max |a - b| / (1 + |b|) on the first points)", ["case", "what", "max rel diff"], checks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
