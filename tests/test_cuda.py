"""CUDA backend (codegen/cuda.py, codegen/cuda_runtime.py): the generated source against the VM and C.

On every machine with a C++ compiler the CUDA source is built as host C++
(``compile(target="cuda-host")``) and must give the compiled C results
bitwise (the same per-point code, the same libm) and the VM's: bitwise where
every op on the way is exactly rounded, else within 1e-14 relative, on random
graphs over the op table and on structured Functions (calls, maps, folds,
sparse Jacobians, shared arguments), in both layouts.  Bad input and a
machine without CuPy, GPU or CUDA compiler give clear errors.

On a machine with a CUDA GPU and CuPy (the ``gpu`` tests; skipped with the
reason otherwise) the device results are compared with the compiled CPU
results: bitwise for exactly rounded ops, within a few ulps per op otherwise.
When NVRTC is found (``SYMGRAPH_NVRTC`` or CuPy's wheels) the sources are also
compiled for sm_90 without a GPU.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symgraph as sg
from codegen import cuda, cuda_runtime
from strategies import OPERATIONS, random_graphs
from symgraph.batch import SparseBatch
from symgraph.expr import topological

HAVE_CXX = any(shutil.which(c) for c in cuda_runtime.HOST_CXX)
HAVE_CC = any(shutil.which(c) for c in ("cc", "gcc", "clang")) and importlib.util.find_spec("_cffi_backend") is not None
needs_cxx = pytest.mark.skipif(not HAVE_CXX, reason="no C++ compiler (c++, g++ or clang++) on PATH: "
                                                    "the host build of the CUDA source cannot be checked")
needs_cc = pytest.mark.skipif(not HAVE_CC, reason="no C compiler or no cffi: the C backend to compare with is unavailable")
STATUS = cuda_runtime.cuda_status()
gpu = pytest.mark.skipif(bool(STATUS["reason"]), reason=f"no CUDA device run here: {STATUS['reason']}")
SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, 2.0, -3.0, 1e-300, -1e300, 1e300, 1e-8, 0.75, -0.25, 3.0]
TINY = np.finfo(np.float64).tiny
SIGNED_ZERO_FREE = {"fmin", "fmax"}  # C leaves the sign of their zero results open (see test_codegen_props)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "symgraph-cache"))


# ---------------------------------------------------------------- oracles

def same(a, b) -> np.ndarray:
    """Bitwise equality, all NaNs equal."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return (np.isnan(a) & np.isnan(b)) | (a.view(np.int64) == b.view(np.int64))


def close(a, b, rel: float = 1e-14) -> np.ndarray:
    """Equal, both NaN, or finite and within ``rel`` relative (absolute below the smallest normal)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(all="ignore"):
        diff, scale = np.abs(a - b), np.maximum(np.abs(a), np.abs(b))
        ok = (a == b) | (np.isnan(a) & np.isnan(b))
        ok |= np.isfinite(diff) & ((diff <= rel * scale) | (scale < TINY))
    return ok


def values_of(result) -> np.ndarray:
    """The numbers of a batch result: a dense array, or a SparseBatch's ``(N, nnz)`` values (on the host)."""
    data = result.data if isinstance(result, SparseBatch) else result
    if hasattr(data, "get"):
        data = data.get()
    return np.asarray(data, dtype=np.float64)


def outputs(result, F) -> list:
    return [values_of(r) for r in ([result] if F.n_out == 1 else result)]


def combined(graphs):
    """One Function of all graphs' inputs whose output is every non-leaf node (as test_codegen_props)."""
    inputs = [s for g in graphs for s in g.inputs]
    nodes = [n for n in topological([o for g in graphs for o in g.outputs]) if n.args] or [inputs[0] + 1.0]
    return inputs, nodes, sg.Function("rand", inputs, [np.array(nodes, dtype=object)])


def exact_nodes(nodes) -> np.ndarray:
    """Per node: whether every op from the inputs to it is exactly rounded (so backends agree bitwise)."""
    exact: dict = {}
    for node in nodes:  # topological order
        ok = node.op.has("exact") and node.op.name not in SIGNED_ZERO_FREE
        exact[node] = ok and all(exact.get(a, True) for a in node.args)
    return np.array([exact[n] for n in nodes])


def batch_points(values, n_inputs: int, n_points: int) -> list[np.ndarray]:
    return [np.array([values[(k + p) % len(values)] for p in range(n_points)]) for k in range(n_inputs)]


# ---------------------------------------------------------------- source

def test_source_is_deterministic_and_has_the_qualifier_macros():
    x = sg.symbols("x", 3)
    F = sg.Function("f", [x], [sg.jacobian(sg.sin(x) * x[0], x), sg.sign(x[1])])
    src = cuda.generate(F)
    assert src == cuda.generate(sg.Function("f", [x], [sg.jacobian(sg.sin(x) * x[0], x), sg.sign(x[1])]))
    assert "#define SG_DEVICE __device__" in src and 'extern "C" SG_GLOBAL void sgf_f__kernel(' in src
    assert "SG_DEVICE static double sg_sign(" in src and "SG_DEVICE static void sgf_f__part0(" in src
    assert "__device__" not in src.replace("#define SG_DEVICE __device__", "")  # only through the macro
    assert "fast" not in src.lower()


def test_program_sizes_and_work_placement():
    x, u = sg.symbols("x", 4), sg.symbols("u")
    F = sg.Function("g", [x, u], [x * u, sg.jacobian(x * u, x)])
    p = cuda.program(F)
    assert p.in_sizes == (4, 1) and p.out_sizes == (4, 4) and p.local_work
    y = sg.sin(x[0])
    G = sg.Function("h", [x], [y * x[1] + y * x[2] + y * x[3]])
    tiny = cuda.program(G, chunk_size=1)  # values cross device functions through w
    assert tiny.work_size >= 1 and tiny.local_work
    assert f"double w[{tiny.work_size}];" in tiny.source


def test_collapse_of_strides():
    c = cuda_runtime._collapse
    a = np.zeros((5, 2, 3))
    assert c(a.shape, a.strides, True) == (6, 1)
    soa = np.ascontiguousarray(a.reshape(5, 6).T).T.reshape(5, 2, 3)  # component-major
    assert c(soa.shape, soa.strides, True) == (1, 5)
    f = np.asfortranarray(a)  # components not in C order: copied by the callers
    assert c(f.shape, f.strides, True) is None
    assert c(a[:, :, ::2].shape, a[:, :, ::2].strides, True) is None  # not evenly spaced
    assert c((3,), (8,), False) == (0, 1)
    assert c((), (), False) == (0, 1)


def test_generated_source_compiles_with_nvcc_without_a_gpu(tmp_path):
    nvcc = cuda_runtime.find_nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found: the CUDA compile of the source is checked where it is installed")
    import subprocess
    x = sg.symbols("x", 3)
    F = sg.Function("f", [x], [sg.jacobian(sg.exp(x) * x[0], x), sg.erfinv(x[0] / 4) + sg.digamma(x[1]),
                               sg.if_else(x[0] < x[1], np.inf, np.nan)])
    (tmp_path / "f.cu").write_text(cuda.generate(F, chunk_size=3))
    done = subprocess.run([nvcc, "-cubin", "-arch=sm_90", "--fmad=false", "-o", str(tmp_path / "f.cubin"),
                           str(tmp_path / "f.cu")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_generated_source_compiles_with_nvrtc_without_a_gpu():
    lib = cuda_runtime.find_nvrtc()
    if lib is None:
        pytest.skip("NVRTC (libnvrtc.so) not found; set SYMGRAPH_NVRTC to check the runtime-compiled path")
    x = sg.symbols("x", 3)
    F = sg.Function("f", [x], [sg.jacobian(sg.exp(x) * x[0], x), sg.erfinv(x[0] / 4) + sg.polygamma(1, x[1]),
                               sg.if_else(x[0] < x[1], np.inf, np.nan)])
    M = sg.Function("t", [x], [sg.sin(x) * x[2]]).map(5, reduce="sum")
    for G in (F, M):
        data, kind, _ = cuda_runtime.nvrtc_compile(cuda.generate(G), "90", ["-default-device", "--fmad=false"])
        assert kind in ("cubin", "ptx") and len(data) > 100


@pytest.mark.parametrize("compiler", ["nvrtc", "nvcc"])
def test_device_binary_is_compiled_once_and_cached(compiler, monkeypatch):
    """The cubin for sm_90 without a GPU (a CuPy stand-in reports the device), then a cache hit."""
    if compiler == "nvrtc" and cuda_runtime.find_nvrtc() is None:
        pytest.skip("NVRTC (libnvrtc.so) not found; set SYMGRAPH_NVRTC")
    if compiler == "nvcc" and cuda_runtime.find_nvcc() is None:
        pytest.skip("nvcc not found")
    x = sg.symbols("x", 2)
    prog = cuda.program(sg.Function("f", [x], [sg.sin(x) * x[0]]))
    cp = fake_cupy()
    path, how, by = cuda_runtime._device_binary(prog, cp, 0, compiler, False, None)
    assert how == "compiled" and path.endswith((".cubin", ".ptx")) and by.lower().startswith(compiler)
    with open(path, "rb") as fh:
        assert fh.read(4) == b"\x7fELF" or path.endswith(".ptx")
    assert cuda_runtime._device_binary(prog, cp, 0, compiler, False, None)[:2] == (path, "disk")


# ---------------------------------------------------------------- host build against the VM and C

@needs_cxx
@needs_cc
@settings(max_examples=8)
@given(st.lists(random_graphs(max_inputs=3, max_steps=10), min_size=6, max_size=6),
       st.lists(st.sampled_from(SPECIAL) | st.floats(-4, 4, allow_nan=False), min_size=5, max_size=5),
       st.sampled_from(["soa", "aos"]))
def test_random_graphs_host_build_equals_c_and_vm(graphs, values, layout):
    inputs, nodes, F = combined(graphs)
    args = batch_points(values, len(inputs), 4)
    got = values_of(F.compile(target="cuda-host", optimize=0).batch(*args, layout=layout))
    c = values_of(F.compile(optimize=0).batch(*args))
    assert same(got, c).all(), "host CUDA build differs from the C backend"
    with np.errstate(all="ignore"):
        vm = values_of(F.batch(*args))
    exact = exact_nodes(nodes)
    assert same(got[:, exact], vm[:, exact]).all(), "exactly rounded nodes differ from the VM"


@needs_cxx
@settings(max_examples=6)
@given(st.lists(random_graphs(max_inputs=2, max_steps=8, smooth_only=True,
                              ops=[op for op in OPERATIONS if op.name not in ("lgamma", "digamma", "polygamma",
                                                                              "erfinv", "pow", "fmod")]),
                min_size=4, max_size=4),
       st.lists(st.floats(-2, 2, allow_nan=False), min_size=3, max_size=3))
def test_random_graphs_tiny_parts_close_to_the_vm(graphs, values):
    """One instruction per device function (every value through the work array) against the VM."""
    inputs, nodes, F = combined(graphs)
    args = batch_points(values, len(inputs), 3)
    got = values_of(F.compile(target="cuda-host", optimize=0, chunk_size=1).batch(*args))
    with np.errstate(all="ignore"):
        vm = values_of(F.batch(*args))
    exact = exact_nodes(nodes)
    assert same(got[:, exact], vm[:, exact]).all()
    finite = np.isfinite(vm) & (np.abs(vm) < 1e100)
    assert (close(got, vm, 1e-9) | ~finite).all()


def _cartpole_step():
    q, u = sg.symbols("q", 4), sg.symbols("u")
    s, c = sg.sin(q[1]), sg.cos(q[1])
    rhs = np.array([q[2], q[3], (u + 0.3 * s * q[3] ** 2) / (1.0 + 0.3 * s * s), -(u * c + 9.81 * s) / (1.0 + s * s)])
    q1 = q + 0.05 * rhs
    return q, u, sg.Function("step", [q, u], [q1, sg.jacobian(q1, q), sg.jacobian(q1, np.array([u]))])


def _structured_cases():
    """(Function, argument builder) pairs: calls, maps with shared inputs and sums, folds, sparse Jacobians."""
    q, u, step = _cartpole_step()
    rng = np.random.default_rng(3)
    cases = {}
    cases["sparse_jacobians"] = (step, lambda n: (rng.uniform(-1, 1, (n, 4)), rng.uniform(-1, 1, n)))
    x, y = sg.symbols("x", 3), sg.symbols("y")
    term = sg.Function("term", [x, y], [sg.exp(x[0] * y) + x[1] * x[2] - y ** 2, sg.sin(x) * y])
    X, Y = sg.symbols("X", (6, 3)), sg.symbols("Y")
    mapped = term.map(6, shared=["y"], reduce=("sum", None))
    f_sum, stacked = mapped(X, Y)
    grad = sg.grad(f_sum, X.reshape(-1))
    cases["map_shared_sum_grad"] = (sg.Function("m", [X, Y], [f_sum, stacked, grad]),
                                    lambda n: (rng.uniform(-1, 1, (n, 6, 3)), 0.3))
    s, v = sg.symbols("s", 2), sg.symbols("v")
    body = sg.Function("body", [s, v], [np.array([s[1], -sg.sin(s[0]) + v]) * 0.1 + s])
    V = sg.symbols("V", 8)
    fold = body.fold(8)
    states = fold(s, V)
    final = states[-1]
    cases["fold_and_jacobian"] = (sg.Function("fo", [s, V], [states, sg.jacobian(final, s)]),
                                  lambda n: (rng.uniform(-1, 1, (n, 2)), rng.uniform(-1, 1, (n, 8))))
    inner = sg.Function("inner", [y], [sg.log1p(y * y) + sg.atan2(y, 2.0)])
    cases["calls"] = (sg.Function("c", [x], [inner(x[0]) * inner(x[1] + x[2]) + inner(x[2])]),
                      lambda n: (rng.uniform(-2, 2, (n, 3)),))
    return cases


STRUCTURED = _structured_cases()


@needs_cxx
@pytest.mark.parametrize("case", sorted(STRUCTURED))
@pytest.mark.parametrize("layout", ["soa", "aos"])
def test_structured_functions_host_build_equal_vm_and_c(case, layout):
    F, make = STRUCTURED[case]
    args = make(5)
    H = F.compile(target="cuda-host")
    got = outputs(H.batch(*args, layout=layout), F)
    vm = outputs(F.batch(*args), F)
    for g, r in zip(got, vm):
        assert g.shape == r.shape and close(g, r, 1e-13).all(), (case, np.max(np.abs(g - r)))
    if HAVE_CC:
        # bitwise the C backend's results of the program it emitted: calls expanded (the order of a map's
        # sums can differ from the C backend's loop: within rounding of it), or kept
        G = F.optimize(1)
        emitted = G.inline() if H.program.inlined else G
        c = outputs(emitted.compile(optimize=0).batch(*args), F)
        for g, r in zip(got, c):
            assert same(g, r).all(), case
        for g, r in zip(got, outputs(F.compile().batch(*args), F)):
            assert close(g, r, 1e-13).all(), case


@needs_cxx
def test_sparse_outputs_follow_the_cpu_pattern_and_per_point_call():
    F, make = STRUCTURED["sparse_jacobians"]
    H = F.compile(target="cuda-host")
    q0, u0 = make(3)
    _, J, Ju = H.batch(q0, u0)
    ref = F.batch(q0, u0)[1]
    assert isinstance(J, SparseBatch)
    assert np.array_equal(J.indices, ref.indices) and np.array_equal(J.indptr, ref.indptr)
    one = H(q0[1], float(u0[1]))
    vm = F(q0[1], float(u0[1]))
    assert close(one[0], vm[0], 1e-13).all()
    assert abs(one[1] - vm[1]).max() < 1e-13 and one[1].shape == (4, 4)


@needs_cxx
def test_strided_and_fortran_arguments_and_shared_values():
    x, p = sg.symbols("x", (2, 3)), sg.symbols("p", 2)
    F = sg.Function("s", [x, p], [x @ np.array([1.0, 2.0, 3.0]) * p, np.sum(x) + p[0]])
    H = F.compile(target="cuda-host")
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (7, 2, 3))
    P = rng.uniform(-1, 1, 2)
    ref = F.batch(X, P)
    for arg in (X, np.asfortranarray(X), np.ascontiguousarray(X.transpose(1, 2, 0)).transpose(2, 0, 1),
                np.repeat(X, 2, axis=0)[::2]):
        for layout in ("soa", "aos"):
            got = H.batch(arg, P, shared=["p"], layout=layout)
            assert all(close(g, r, 1e-15).all() for g, r in zip(got, ref))
    assert np.shape(H.batch(X[0], P)[0]) == (1, 2)  # nothing batched: one point, as C.batch


# ---------------------------------------------------------------- bad input

@needs_cxx
def test_bad_arguments_are_clear_errors():
    x, a = sg.symbols("x", 2), sg.symbols("a")
    H = sg.Function("f", [x, a], [a * x]).compile(target="cuda-host")
    with pytest.raises(sg.ShapeError, match=r"expected shape \(N,\) \+ \(2,\)"):
        H.batch(np.ones((4, 3)), 1.0)
    with pytest.raises(sg.ShapeError, match="has 3 points"):
        H.batch(np.ones((4, 2)), np.ones(3))
    with pytest.raises(sg.ShapeError, match="listed in shared="):
        H.batch(np.ones((4, 2)), np.ones(4), shared=[1])
    with pytest.raises(sg.DTypeError, match="complex"):
        H.batch(np.ones((4, 2)) * 1j, 1.0)
    with pytest.raises(sg.ArgumentCountError):
        H.batch(np.ones((4, 2)))
    with pytest.raises(sg.OptionError, match="layout"):
        H.batch(np.ones((4, 2)), 1.0, layout="rows")
    with pytest.raises(sg.OptionError, match="shared entry"):
        H.batch(np.ones((4, 2)), 1.0, shared=["nope"])
    with pytest.raises(sg.OptionError, match="out='host'"):
        H.batch(np.ones((4, 2)), 1.0, out="device")


def test_bad_options_and_targets():
    x = sg.symbols("x")
    F = sg.Function("f", [x], [x * x])
    with pytest.raises(sg.OptionError, match="unknown target 'gpu'"):
        F.compile(target="gpu")
    with pytest.raises(sg.OptionError, match="has no option 'flags'"):
        F.compile(target="cuda-host", flags=("-O3",))
    with pytest.raises(sg.OptionError, match="block_size"):
        F.compile(target="cuda", block_size=7)
    with pytest.raises(sg.errors.CudaUnavailableError, match="C\\+\\+ compiler"):
        F.compile(target="cuda-host", compiler="surely-not-a-c++-compiler")


def _fake_cupy(devices: int, fail: bool = False) -> types.ModuleType:
    """A stand-in for CuPy reporting ``devices`` GPUs (or a driver error), so the checks run anywhere."""
    cupy = types.ModuleType("cupy")

    def count():
        if fail:
            raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")
        return devices

    class Device:
        def __init__(self, k=0):
            self.compute_capability = "90"

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    cupy.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=count, getDevice=lambda: 0),
                                      Device=Device)
    return cupy


def test_no_gpu_or_no_compiler_is_a_clear_compile_error(monkeypatch):
    x = sg.symbols("x")
    F = sg.Function("f", [x], [x * x])
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy fails
    with pytest.raises(sg.CompileError, match="needs CuPy"):
        F.compile(target="cuda")
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(0, fail=True))
    with pytest.raises(sg.errors.CudaUnavailableError, match="no usable CUDA GPU"):
        F.compile(target="cuda")
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(0))
    with pytest.raises(sg.errors.CudaUnavailableError, match="no CUDA GPU is visible"):
        F.compile(target="cuda")
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(1))
    with pytest.raises(sg.errors.DeviceError, match="only 1 CUDA device"):
        F.compile(target="cuda", device=3)
    monkeypatch.setattr(cuda_runtime, "find_nvrtc", lambda: None)
    monkeypatch.setattr(cuda_runtime, "find_nvcc", lambda compiler=None: None)
    with pytest.raises(sg.errors.CudaUnavailableError, match="no CUDA compiler: found neither NVRTC"):
        F.compile(target="cuda")
    assert F.compile(optimize=0) is not None if HAVE_CC else True  # the CPU path keeps working


def test_device_array_detection():
    class Dl:
        def __init__(self, kind):
            self.kind = kind

        def __dlpack_device__(self):
            return (self.kind, 0)

    assert cuda_runtime._is_device_array(Dl(2)) and not cuda_runtime._is_device_array(Dl(1))
    assert not cuda_runtime._is_device_array(np.ones(3))  # numpy has __dlpack__ too: host
    assert cuda_runtime._is_device_array(types.SimpleNamespace(__cuda_array_interface__={}))


# ---------------------------------------------------------------- the GPU path, emulated on the CPU

class FakeDeviceArray(np.ndarray):
    """A numpy array posing as a CuPy array (``data.ptr``, ``device``, ``get``) for the emulated device."""

    @property
    def data(self):
        return types.SimpleNamespace(ptr=self.ctypes.data)

    @property
    def device(self):
        return types.SimpleNamespace(id=0)

    def get(self):
        return np.array(self)


class FakeKernel:
    """``CNAME__kernel`` emulated by the host build's ``CNAME__host_batch`` with the same pointers and strides."""

    def __init__(self, library, entry: str, n_in: int, work_size: int) -> None:
        import ctypes
        self.fn = getattr(library, entry)
        self.n_in, self.work = n_in, np.empty(max(1, work_size))
        self.ctypes = ctypes
        self.launches = 0
        self.max_threads_per_block = 1024
        self.ptr = 0

    def __call__(self, grid, block, params):
        ct = self.ctypes
        n, rest = int(params[0]), [int(v) for v in params[1:-1]]
        triples = [rest[i:i + 3] for i in range(0, len(rest), 3)]
        ins, outs = triples[:self.n_in], triples[self.n_in:]
        arrays = []
        for group in (ins, outs):
            arrays.append((ct.c_void_p * max(1, len(group)))(*[t[0] for t in group]))
            for j in (1, 2):
                arrays.append((ct.c_long * max(1, len(group)))(*[t[j] for t in group]))
        self.launches += 1
        self.fn(ct.c_long(n), *arrays, self.work.ctypes.data_as(ct.c_void_p))


def fake_cupy(free_bytes: int = 1 << 40) -> types.ModuleType:
    """A CuPy stand-in over numpy: the CudaFunction logic (strides, layouts, chunks, shared values) runs on the CPU."""
    cp = types.ModuleType("cupy")
    cp.__version__ = "fake"
    cp.ndarray = FakeDeviceArray
    cp.float32, cp.float64 = np.float32, np.float64
    view = lambda a: a if isinstance(a, FakeDeviceArray) else np.asarray(a).view(FakeDeviceArray)  # noqa: E731
    cp.asarray = lambda a, dtype=None: view(a) if isinstance(a, FakeDeviceArray) else view(np.array(a, dtype=dtype))
    cp.ascontiguousarray = lambda a: view(np.ascontiguousarray(a))
    cp.empty = lambda shape, dtype=np.float64: view(np.empty(shape, dtype))
    cp.zeros = lambda shape, dtype=np.float64: view(np.zeros(shape, dtype))
    cp.ones = lambda shape, dtype=np.float64: view(np.ones(shape, dtype))
    cp.broadcast_to = lambda a, shape: view(np.broadcast_to(a, shape))
    cp.repeat = lambda a, n, axis=None: view(np.repeat(a, n, axis=axis))
    cp.asnumpy = lambda a: np.array(a)
    cp.from_dlpack = lambda a: view(np.from_dlpack(a))
    pool = types.SimpleNamespace(free_bytes=lambda: 0, free_all_blocks=lambda: None)
    cp.get_default_memory_pool = lambda: pool

    class Device:
        def __init__(self, k=0):
            self.id, self.compute_capability = k, "90"
            self.attributes = {"MultiProcessorCount": 2}

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def synchronize(self):
            pass

    def raw_module(path):
        import ctypes
        program = EMULATED[path]
        library = ctypes.CDLL(path)
        kernel = FakeKernel(library, program.host_entry, len(program.in_sizes), program.work_size)
        cp.kernels.append(kernel)
        return types.SimpleNamespace(get_function=lambda name: kernel)

    cp.kernels = []
    cp.RawModule = lambda path: raw_module(path)
    runtime = types.SimpleNamespace(getDeviceCount=lambda: 1, getDevice=lambda: 0,
                                    memGetInfo=lambda: (free_bytes, 1 << 40))
    cp.cuda = types.SimpleNamespace(runtime=runtime, Device=Device, driver=types.SimpleNamespace(),
                                    get_current_stream=lambda: types.SimpleNamespace(synchronize=lambda: None))
    return cp


EMULATED: dict = {}


@pytest.fixture
def emulated(monkeypatch):
    """``compile(target="cuda")`` on the CPU: the host build stands in for the cubin, FakeKernel for the kernel."""
    if not HAVE_CXX:
        pytest.skip("no C++ compiler: the emulated device runs the host build of the CUDA source")

    def install(free_bytes: int = 1 << 40):
        cp = fake_cupy(free_bytes)
        monkeypatch.setitem(sys.modules, "cupy", cp)
        monkeypatch.setattr(cuda_runtime, "_MODULES", {})

        def binary(prog, cupy, device, compiler, fast_math, directory):
            path, how = cuda_runtime._host_library(prog, None, fast_math, directory)
            EMULATED[path] = prog
            return path, how, "host C++ (emulated device)"

        monkeypatch.setattr(cuda_runtime, "_device_binary", binary)
        return cp

    return install


@pytest.mark.parametrize("case", sorted(STRUCTURED))
def test_emulated_device_batch_equals_vm(emulated, case):
    cp = emulated()
    F, make = STRUCTURED[case]
    args = make(9)
    C = F.compile(target="cuda")
    assert "emulated" in C.compiler and F.compile(target="cuda").cache_hit
    ref = outputs(F.batch(*args), F)
    device_args = [cp.asarray(a) if np.ndim(a) else a for a in args]
    for layout in ("soa", "aos"):
        for given_args, out in ((args, "host"), (device_args, "device"), (args, "device")):
            got = C.batch(*given_args, layout=layout, out=out)
            first = got[0] if isinstance(got, tuple) else got
            data = first.data if isinstance(first, SparseBatch) else first
            assert isinstance(data, cp.ndarray) == (out == "device")
            for g, r in zip(outputs(got, F), ref):
                assert g.shape == r.shape and close(g, r, 1e-13).all(), (case, layout, out)


def test_emulated_device_map_grid_one_thread_per_instance(emulated):
    """A map Function: the body's kernel over points x instances (device and host arrays, both layouts)."""
    cp = emulated()
    x, p = sg.symbols("x", 2), sg.symbols("p")
    body = sg.Function("t", [x, p], [sg.sin(x) * p, x[0] * x[1] + p])
    M = body.map(4, shared=["p"], reduce=(None, "sum"))
    C = M.compile(target="cuda")
    assert type(C).__name__ == "CudaMapFunction" and C.program.in_sizes == (2, 1)
    rng = np.random.default_rng(4)
    X, P = rng.uniform(-1, 1, (6, 4, 2)), rng.uniform(-1, 1, 6)
    for args in ((X, P), (cp.asarray(X), 0.5), (X[0], cp.asarray(P)), (X[0], 0.5)):
        ref = M.batch(*[np.array(a) for a in args])
        for layout in ("soa", "aos"):
            for out in ("device", "host"):
                got = C.batch(*args, layout=layout, out=out)
                assert isinstance(got[0], cp.ndarray) == (out == "device")
                for g, r in zip(got, ref):
                    assert g.shape == r.shape and close(np.array(g), r, 1e-14).all()
    assert cp.kernels[-1].launches > 0
    one = C(X[1], 0.5)
    assert all(close(g, r, 1e-14).all() for g, r in zip(one, M(X[1], 0.5)))


def test_emulated_device_chunks_strides_and_shared(emulated):
    cp = emulated(free_bytes=4000)  # room for a few points per chunk
    F, make = STRUCTURED["sparse_jacobians"]
    C = F.compile(target="cuda")
    q0, u0 = make(50)
    ref = outputs(F.batch(q0, u0), F)
    got = outputs(C.batch(q0, u0, out="host"), F)
    assert all(close(g, r, 1e-13).all() for g, r in zip(got, ref))
    assert cp.kernels[-1].launches > 2  # cut into chunks
    cp.kernels[-1].launches = 0
    cp.cuda.runtime.memGetInfo = lambda: (1 << 40, 1 << 40)
    soa = cp.asarray(np.ascontiguousarray(q0.T)).T
    got = outputs(C.batch(soa, cp.asarray(u0), chunk_points=7), F)
    assert all(close(g, r, 1e-13).all() for g, r in zip(got, ref)) and cp.kernels[-1].launches == 8
    shared = outputs(C.batch(q0[3], u0, shared=["q"], out="host"), F)
    want = outputs(F.batch(q0[3], u0), F)
    assert all(close(g, r, 1e-13).all() for g, r in zip(shared, want))
    cp.cuda.runtime.memGetInfo = lambda: (4000, 1 << 40)
    with pytest.raises(sg.errors.BatchMemoryError, match="out='host'"):
        C.batch(q0[0], cp.broadcast_to(cp.zeros(1), (10**6,)))
    with pytest.raises(sg.DTypeError, match="float64"):
        C.batch(cp.asarray(q0.astype(np.float32)), u0)
    with pytest.raises(sg.ShapeError):
        C.batch(cp.ones((10, 3)), u0[:10])
    with pytest.raises(sg.OptionError, match="chunk_points"):
        C.batch(q0, u0, chunk_points=0)
    with pytest.raises(sg.OptionError, match="out must be"):
        C.batch(q0, u0, out="gpu")
    one = C(q0[2], float(u0[2]))
    assert close(one[0], F(q0[2], float(u0[2]))[0], 1e-13).all()


# ---------------------------------------------------------------- on a GPU

def near(a, b, tol: float = 1e-12) -> np.ndarray:
    """GPU against CPU through several transcendental ops: ``|a - b| <= tol * (1 + |b|)``, NaN equal to NaN."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(all="ignore"):
        return (np.isnan(a) & np.isnan(b)) | (a == b) | (np.abs(a - b) <= tol * (1 + np.abs(b)))


@gpu
@settings(max_examples=4)
@given(st.lists(random_graphs(max_inputs=3, max_steps=10), min_size=6, max_size=6),
       st.lists(st.sampled_from(SPECIAL) | st.floats(-4, 4, allow_nan=False), min_size=5, max_size=5))
def test_gpu_random_graphs_equal_compiled_cpu(graphs, values):
    """Exactly rounded nodes bitwise; every node within a few ulps of its op on the device's own operands."""
    inputs, nodes, F = combined(graphs)
    args = batch_points(values, len(inputs), 5)
    got = values_of(F.compile(target="cuda", optimize=0).batch(*args, out="host"))
    c = values_of(F.compile(optimize=0).batch(*args)) if HAVE_CC else values_of(F.batch(*args))
    exact = exact_nodes(nodes)
    assert same(got[:, exact], c[:, exact]).all(), "exactly rounded nodes differ between GPU and CPU"
    position = {n: k for k, n in enumerate(nodes)}
    for p in range(got.shape[0]):
        value = {s: np.float64(a[p]) for s, a in zip(inputs, args)}
        for k, node in enumerate(nodes):
            operands = [got[p, position[a]] if a in position else value[a] if a.is_symbol else np.float64(a.data)
                        for a in node.args]
            with np.errstate(all="ignore"):
                local = np.float64(node.op.np(*[np.asarray(v) for v in operands]))
            if node.op.name in SIGNED_ZERO_FREE:
                ok = got[p, k] == local or (np.isnan(got[p, k]) and np.isnan(local))
            elif node.op.has("exact"):
                ok = same(got[p, k], local)
            elif node.op.name == "lgamma":  # CUDA's lgamma: larger errors on the negative axis
                ok = close(got[p, k], local, 1e-9) or abs(got[p, k] - local) < 1e-9
            else:  # CUDA's libm: within a few ulps; near a function's zeros: absolutely
                ok = close(got[p, k], local, 1e-13) or abs(got[p, k] - local) < 1e-14
            assert ok, f"{node.op.name}{tuple(map(float, operands))}: GPU {got[p, k]!r}, numpy {local!r}"


@gpu
@pytest.mark.parametrize("case", sorted(STRUCTURED))
def test_gpu_structured_functions_equal_compiled_cpu(case):
    import cupy
    F, make = STRUCTURED[case]
    args = make(257)
    C = F.compile(target="cuda")
    ref = outputs(F.compile().batch(*args) if HAVE_CC else F.batch(*args), F)
    for layout in ("soa", "aos"):
        host = outputs(C.batch(*args, out="host", layout=layout), F)
        device_args = [cupy.asarray(a) if np.ndim(a) else a for a in args]
        dev = C.batch(*device_args, layout=layout)
        dev = outputs(dev, F)
        for g, d, r in zip(host, dev, ref):
            assert same(g, d).all()
            assert near(g, r).all(), (case, layout, np.max(np.abs(g - r)))


@gpu
def test_gpu_device_arrays_layouts_chunks_and_errors():
    import cupy
    F, make = STRUCTURED["sparse_jacobians"]
    C = F.compile(target="cuda")
    q0, u0 = make(1000)
    ref = outputs(F.batch(q0, u0), F)
    soa_q = cupy.asarray(np.ascontiguousarray(q0.T)).T  # component-major device array
    for args in ((soa_q, cupy.asarray(u0)), (cupy.asarray(q0), u0), (q0, u0)):
        for kwargs in ({}, {"chunk_points": 77}, {"out": "host", "chunk_points": 300, "layout": "aos"}):
            got = outputs(C.batch(*args, **kwargs), F)
            assert all(near(g, r).all() for g, r in zip(got, ref)), kwargs
    dev = C.batch(soa_q, cupy.asarray(u0))
    assert isinstance(dev[0], cupy.ndarray) and isinstance(dev[1].data, cupy.ndarray)
    with pytest.raises(sg.DTypeError, match="float64"):
        C.batch(soa_q.astype(cupy.float32), u0)
    with pytest.raises(sg.ShapeError):
        C.batch(cupy.ones((10, 3)), u0[:10])
    free, _ = cupy.cuda.runtime.memGetInfo()
    n = int(free // 8) * 4  # the results alone far beyond the device memory; the argument is one broadcast value
    with pytest.raises(sg.errors.BatchMemoryError, match="out='host'"):
        C.batch(q0[0], cupy.broadcast_to(cupy.zeros(1), (n,)))


@gpu
def test_gpu_dlpack_arrays():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch sees no GPU")
    F, make = STRUCTURED["calls"]
    C = F.compile(target="cuda")
    (x,) = make(100)
    got = values_of(C.batch(torch.as_tensor(x, device="cuda"), out="host"))
    assert near(got, values_of(F.batch(x))).all()
