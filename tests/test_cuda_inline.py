"""The CUDA program's per-thread memory (codegen/cuda.py): calls expanded, strided views, liveness.

A thread's values should be scalar locals the CUDA compiler keeps in
registers: calls are expanded (maps and folds unrolled) up to
``cuda.INLINE_MAX`` instructions, so the work array is empty, and without a
call left the arguments are read and written in place through strided
views (no per-thread copies).  Checked on the host build of the same source
(``compile(target="cuda-host")``) against the VM and, bitwise, against the C
backend's build of the very program emitted (the expanded Function): on
random graphs used as map, fold and call bodies, on nested maps with shared
arguments and gradients (a small ADBench GMM), native callees (which stay
calls) and Functions over the expansion limit (which keep their calls).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symgraph as sg
from codegen import cuda, cuda_runtime
from strategies import OPERATIONS, random_graphs, small_gmm
from symgraph.batch import SparseBatch

HAVE_CXX = any(shutil.which(c) for c in cuda_runtime.HOST_CXX)
HAVE_CC = any(shutil.which(c) for c in ("cc", "gcc", "clang")) and importlib.util.find_spec("_cffi_backend") is not None
needs_cxx = pytest.mark.skipif(not HAVE_CXX, reason="no C++ compiler (c++, g++ or clang++) on PATH: "
                                                    "the host build of the CUDA source cannot be checked")
needs_cc = pytest.mark.skipif(not HAVE_CC, reason="no C compiler or no cffi: the C backend to compare with is unavailable")
SMOOTH = [op for op in OPERATIONS if op.name not in ("lgamma", "digamma", "polygamma", "erfinv", "pow", "fmod")]


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "symgraph-cache"))


def values(result) -> list:
    items = result if isinstance(result, tuple) else (result,)
    return [np.asarray(r.data if isinstance(r, SparseBatch) else r, dtype=np.float64) for r in items]


def same(a, b) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return bool(((np.isnan(a) & np.isnan(b)) | (a.view(np.int64) == b.view(np.int64))).all())


def close(a, b, rel: float) -> bool:
    """Equal, both NaN, or within ``rel`` of each other relative to ``1 + |b|`` (infinities must match)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(all="ignore"):
        ok = (a == b) | (np.isnan(a) & np.isnan(b)) | (np.abs(a - b) <= rel * (1 + np.abs(b)))
    return bool(ok.all())


def structured_from(graph, m: int):
    """A Function calling the random graph's Function as a map over ``m`` instances (last input shared when
    there are several, one output summed), as a plain call, and as a fold when it maps a scalar to a scalar."""
    body = graph.function("body")
    n_in = len(graph.inputs)
    arrays = [sg.symbols(f"a{i}", m) for i in range(n_in - 1)] + [sg.symbols(f"a{n_in - 1}", m if n_in == 1 else ())]
    shared = [] if n_in == 1 else [n_in - 1]
    mapped = body.map(m, shared=shared, reduce="sum")(*arrays)
    outputs = [np.asarray(mapped, dtype=object).reshape(-1)]
    first = [a[0] if a.ndim else a for a in arrays]
    outputs.append(np.asarray(body(*[e * 0.5 for e in first]), dtype=object).reshape(-1))
    if n_in == 1:
        step = sg.Function("step", [graph.inputs[0]], [graph.outputs[0] * 0.25 + graph.inputs[0]])
        outputs.append(np.asarray(step.fold(3)(arrays[0][0]), dtype=object).reshape(-1))
    return arrays, sg.Function("outer", arrays, [np.concatenate(outputs)])


# ---------------------------------------------------------------- sizes

def test_expanded_size_counts_what_inline_gives():
    x, y = sg.symbols("x", 3), sg.symbols("y")
    body = sg.Function("b", [x, y], [sg.sin(x) * y, sg.exp(x[0] * y)])
    X = sg.symbols("X", (7, 3))
    mapped = body.map(7, shared=["y"], reduce=(None, "sum"))
    inner = sg.Function("inner", [X, y], [np.sum(mapped(X, y)[0]) + mapped(X, y)[1]])
    outer = sg.Function("outer", [X, y], [inner(X, y) * inner(X, 2 * y)])
    s = sg.symbols("s")
    fold = sg.Function("st", [s, y], [sg.cos(s) * y]).fold(5)
    F = sg.Function("f", [s, y], [fold(s, y * np.ones(5))])
    for G in (body, mapped, inner, outer, F, fold):
        assert cuda.expanded_size(G) >= G.inline().n_ops
    assert cuda.expanded_size(mapped) == mapped.inline().n_ops == 7 * body.n_ops + 6  # 6 additions of the sum
    assert cuda.expanded_size(fold) == 5 * 2  # cos and * per step
    assert cuda.expanded_size(outer) == 2 * cuda.expanded_size(inner) + 2  # 2 * y and the product
    assert cuda.expanded_size(outer, limit=10) == 11


def test_peak_live_is_the_most_values_live_at_once():
    """A closed form (k values all read again after their sum) and a brute-force scan on a model."""
    k = 6
    x = sg.symbols("x", k)
    z = sg.sin(x)
    total = np.sum(z)
    F = sg.Function("f", [x], [total, z * total])
    # the sines and the running sum are live at once until the products: k + 1 (the tape order: sum first)
    assert cuda.peak_live(F.tape) == k + 1
    assert cuda.peak_live(sg.Function("g", [x], [z]).tape) == 1
    q, u, step = _cartpole_step()
    tape = step.tape
    first, n = tape.first_instruction_slot, tape.n_instructions
    last, begin = {}, {}
    for i, (_, _, operands) in enumerate(tape.instructions()):
        for a in operands:
            if a < tape.n_input_scalars or a >= first:
                last[a] = max(last.get(a, -1), i)
                begin.setdefault(a, i)
    live = [0] * n
    for slot in set(begin) | set(range(first, first + n)):
        start = slot - first if slot >= first else begin[slot]
        stop = last.get(slot, -1)
        if slot >= first:
            stop = max(stop, start + 1)
        for r in range(start, stop):
            live[r] += 1
    assert cuda.peak_live(tape) == max(live) > 1


def _cartpole_step():
    q, u = sg.symbols("q", 4), sg.symbols("u")
    s, c = sg.sin(q[1]), sg.cos(q[1])
    rhs = np.array([q[2], q[3], (u + 0.3 * s * q[3] ** 2) / (1.0 + 0.3 * s * s), -(u * c + 9.81 * s) / (1.0 + s * s)])
    q1 = q + 0.05 * rhs
    return q, u, sg.Function("step", [q, u], [q1, sg.jacobian(q1, q), sg.jacobian(q1, np.array([u]))])


def test_program_of_nested_maps_keeps_values_in_locals():
    """The small GMM (component map inside a point map, shared parameters, gradient): expanded, no work
    array, no copies; with the calls kept (inline=False) the work array and copies come back."""
    inputs, objective = small_gmm(3, 2, 1)[:2]
    F = sg.Function("gmm", inputs, [objective, *[sg.grad(objective, v) for v in inputs[:-1]]])
    G = F.optimize(1)
    assert G.tape.n_calls
    kept = cuda.program(G, optimize=1, inline=False)
    expanded = cuda.program(G, optimize=1)
    assert not kept.inlined and not kept.strided and kept.work_size > 0 and kept.thread_doubles > kept.work_size
    assert "double xin[" in kept.source and "sg_strided_in arg[" not in kept.source
    assert expanded.inlined and expanded.strided and expanded.work_size == 0 and expanded.thread_doubles == 0
    assert "double xin[" not in expanded.source and f"const sg_strided_in arg[{len(inputs)}]" in expanded.source
    assert 0 < expanded.peak_live < G.inline().n_ops
    assert expanded.n_ops == G.inline().n_ops


def test_bad_inline_and_loops_options():
    x = sg.symbols("x")
    F = sg.Function("f", [x], [x * x])
    with pytest.raises(sg.OptionError, match="inline must be True or False"):
        cuda.program(F, inline="yes")
    with pytest.raises(sg.OptionError, match="loops must be"):
        cuda.program(F, loops=1)
    with pytest.raises(sg.OptionError, match="inline must be True or False"):
        F.compile(target="cuda-host", inline=None)


def test_subscript_scan_refuses_pointer_uses():
    assert cuda._subscripts_only(["  res[0][3] = arg[1][j * 2 + 1];", "  (void)arg; (void)res;"])
    assert not cuda._subscripts_only(["  const double *const ca[1] = {arg[0] + 3};"])
    assert not cuda._subscripts_only(["  f(&res[0][1]);"])
    assert not cuda._subscripts_only(["  double *const r[1] = {res[2]};"])


# ---------------------------------------------------------------- host build: values

@needs_cxx
@settings(max_examples=8)
@given(random_graphs(max_inputs=3, max_steps=8, smooth_only=True, ops=SMOOTH),
       st.integers(2, 4), st.lists(st.floats(-2, 2, allow_nan=False), min_size=4, max_size=4),
       st.sampled_from(["soa", "aos"]))
def test_random_bodies_in_maps_calls_and_folds_host_build(graph, m, numbers, layout):
    """Expanded (values in locals) and with the calls kept (work array, copies): both the VM's values;
    expanded, bitwise the C backend's build of the expanded Function."""
    arrays, F = structured_from(graph, m)
    points = 3
    args = [np.array([[numbers[(i + p + j) % 4] for j in range(a.size)] for p in range(points)]).reshape(
        (points,) + a.shape) for i, a in enumerate(arrays)]
    expanded = F.compile(target="cuda-host", optimize=0)
    kept = F.compile(target="cuda-host", optimize=0, inline=False)
    assert expanded.program.inlined and expanded.work_size == 0 and expanded.program.thread_doubles == 0
    assert not kept.program.inlined
    with np.errstate(all="ignore"):
        vm = values(F.batch(*args))[0]
    got = values(expanded.batch(*args, layout=layout))[0]
    also = values(kept.batch(*args, layout=layout))[0]
    finite = np.isfinite(vm) & (np.abs(vm) < 1e100)
    for result in (got, also):
        assert close(result[finite], vm[finite], 1e-9)
    if HAVE_CC:
        c = values(F.inline().compile(optimize=0).batch(*args))[0]
        assert same(got, c), "the expanded program differs from the C backend's build of F.inline()"


@needs_cxx
def test_over_the_limit_the_calls_stay(monkeypatch):
    x, y = sg.symbols("x", 2), sg.symbols("y")
    body = sg.Function("b", [x, y], [sg.sin(x[0] * y) + x[1] ** 2])
    X = sg.symbols("X", (40, 2))
    F = sg.Function("big", [X, y], [body.map(40, shared=["y"], reduce="sum")(X, y), sg.grad(
        body.map(40, shared=["y"], reduce="sum")(X, y), np.array([y]))])
    rng = np.random.default_rng(1)
    args = (rng.uniform(-1, 1, (6, 40, 2)), rng.uniform(-1, 1, 6))
    ref = values(F.batch(*args))
    inlined = F.compile(target="cuda-host")
    assert inlined.program.inlined
    monkeypatch.setattr(cuda, "INLINE_MAX", cuda.expanded_size(F.optimize(1)) - 1)
    H = F.compile(target="cuda-host")
    assert not H.program.inlined and H.program.work_size > 0 and not H.program.strided
    for layout in ("soa", "aos"):
        for a, b, r in zip(values(H.batch(*args, layout=layout)), values(inlined.batch(*args, layout=layout)), ref):
            assert close(a, r, 1e-13) and close(b, r, 1e-13)


@needs_cxx
def test_native_callees_stay_calls_beside_expanded_ones():
    from symgraph import linalg as la

    n = la.MAX_EXPANDED_SIZE + 2  # a native solve
    A, b = sg.symbols("A", (n, n)), sg.symbols("b", n)
    sq = sg.Function("sq", [b], [b * b])
    F = sg.Function("lin", [A, b], [la.solve(A, sq(b)) + sq(b + 1.0)])
    prog = cuda.program(F.optimize(1), optimize=1)
    assert prog.inlined and not prog.strided  # the solve is a call still: arguments by pointer
    rng = np.random.default_rng(2)
    As = rng.normal(size=(4, n, n)) + 4 * np.eye(n)
    bs = rng.normal(size=(4, n))
    H = F.compile(target="cuda-host")
    want = np.stack([np.linalg.solve(As[p], bs[p] ** 2) + (bs[p] + 1) ** 2 for p in range(4)])
    for layout in ("soa", "aos"):
        assert close(values(H.batch(As, bs, layout=layout))[0], want, 1e-10)
    shared = values(H.batch(As[0], bs, shared=["A"]))[0]  # one matrix for every right-hand side
    assert close(shared, np.linalg.solve(As[0], (bs ** 2).T).T + (bs + 1) ** 2, 1e-10)


@needs_cxx
def test_gmm_gradient_host_build_equals_vm_and_c_in_both_layouts():
    inputs, objective = small_gmm(3, 2, 1)[:2]
    F = sg.Function("gmm", inputs, [objective, *[sg.grad(objective, v) for v in inputs[:-1]]])
    rng = np.random.default_rng(5)
    params = [rng.uniform(-0.5, 0.5, np.shape(v)) for v in inputs[:-1]]
    X = rng.uniform(-1, 1, (9,) + np.shape(inputs[-1]))
    ref = values(F.batch(*params, X))
    H = F.compile(target="cuda-host")
    assert H.program.inlined and H.program.strided
    for layout in ("soa", "aos"):
        for g, r in zip(values(H.batch(*params, X, layout=layout)), ref):
            assert g.shape == r.shape and close(g, r, 1e-12)
    if HAVE_CC:
        c = values(F.optimize(1).inline().compile(optimize=0).batch(*params, X))
        assert all(same(g, r) for g, r in zip(values(H.batch(*params, X)), c))


def test_ptxas_reports_a_smaller_thread_frame_with_the_calls_expanded(tmp_path):
    """What the CUDA compiler itself reports (nvcc -Xptxas -v, sm_90, no GPU needed): the expanded program
    of the small GMM gradient needs a smaller per-thread stack frame (local memory) than with its calls kept."""
    import re
    import subprocess

    nvcc = cuda_runtime.find_nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found: ptxas's resource report is checked where the CUDA toolkit is installed")
    inputs, objective = small_gmm(3, 4, 1)[:2]
    G = sg.Function("gmm", inputs, [objective, *[sg.grad(objective, v) for v in inputs[:-1]]]).optimize(1)
    frames = {}
    for inline in (True, False):
        path = tmp_path / f"gmm_{inline}.cu"
        path.write_text(cuda.program(G, optimize=1, inline=inline).source)
        done = subprocess.run([nvcc, "-cubin", "-arch=sm_90", "--fmad=false", "-Xptxas", "-v", "-o",
                               str(path.with_suffix(".cubin")), str(path)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        report = done.stderr.split("Compiling entry function 'sgf_gmm__kernel'")[1]
        frames[inline] = int(re.search(r"(\d+) bytes stack frame", report).group(1))
    assert frames[True] < frames[False] and frames[False] >= 8 * 40, frames


# ---------------------------------------------------------------- a map Function: one thread per instance

@needs_cxx
@settings(max_examples=6)
@given(random_graphs(max_inputs=3, max_steps=8, smooth_only=True, ops=SMOOTH), st.integers(1, 4),
       st.lists(st.booleans(), min_size=3, max_size=3), st.sampled_from([None, "sum"]),
       st.lists(st.booleans(), min_size=3, max_size=3), st.sampled_from(["soa", "aos"]))
def test_map_function_on_the_instance_grid_equals_the_vm(graph, m, shared_flags, reduce, batched, layout):
    """Random bodies, shared and mapped inputs, stacked or summed output, arguments per point or one for all."""
    body = graph.function("body")
    n_in = len(graph.inputs)
    shared = [k for k in range(n_in) if shared_flags[k]]
    if len(shared) == n_in:
        shared = shared[1:]
    M = body.map(m, shared=shared, reduce=reduce)
    H = M.compile(target="cuda-host", optimize=0)
    assert type(H).__name__ == "CudaMapFunction" and H.program.in_sizes == (1,) * n_in
    rng = np.random.default_rng(m)
    points = 3
    args = [rng.uniform(-2, 2, ((points,) if batched[k] else ()) + tuple(shape))
            for k, shape in enumerate(M.input_shapes)]
    with np.errstate(all="ignore"):
        ref = values(M.batch(*args))
    got = values(H.batch(*args, layout=layout))
    for g, r in zip(got, ref):
        finite = np.isfinite(r) & (np.abs(r) < 1e100)
        assert g.shape == r.shape and close(g[finite], r[finite], 1e-9)
    if reduce is None:  # the same instances, one per thread: bitwise the one-Function build's values
        whole = values(M.compile(target="cuda-host", optimize=0, map_grid=False).batch(*args, layout=layout))
        assert all(same(g, w) for g, w in zip(got, whole))


@needs_cxx
def test_map_grid_edges():
    x, p = sg.symbols("x", 2), sg.symbols("p")
    body = sg.Function("t", [x, p], [sg.sin(x) * p])
    M = body.map(3, shared=["p"])
    H = M.compile(target="cuda-host")
    assert "one thread per instance of t" in repr(H) and H.work_size == 0 and H.source == H.body.source
    assert type(M.compile(target="cuda-host", map_grid=False)).__name__ == "CudaHostFunction"
    X = np.arange(12.0).reshape(2, 3, 2)
    with pytest.raises(sg.ShapeError, match="listed in shared="):
        H.batch(X, np.ones(2), shared=["p"])
    with pytest.raises(sg.ShapeError):
        H.batch(np.ones((2, 4, 2)), 1.0)
    with pytest.raises(sg.OptionError, match="map_grid must be True or False"):
        M.compile(target="cuda-host", map_grid="yes")
    one = H(X[1], 2.0)
    assert one.shape == (3, 2) and close(one, np.sin(X[1]) * 2.0, 1e-15)
    fold = sg.Function("st", [p, sg.symbols("v")], [sg.cos(p) * 0.5]).fold(3)  # not a map: one Function
    assert type(fold.compile(target="cuda-host")).__name__ == "CudaHostFunction"
