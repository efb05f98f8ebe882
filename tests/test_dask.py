"""symgraph.dask: batch over dask.array chunks and map_solve on a LocalCluster with worker processes.

Results are compared bitwise with the local ``C.batch`` (the workers load the same
code from the shared disk cache) and with local solves; the workers' own counters
(``worker_stats`` through ``client.run``) show one compile per worker process.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

distributed = pytest.importorskip("distributed", reason="symgraph[dask] not installed (pip install 'symgraph[dask]')")
da = pytest.importorskip("dask.array", reason="symgraph[dask] not installed (pip install 'symgraph[dask]')")

import dask  # noqa: E402

import symgraph as sg  # noqa: E402
from symgraph.dask import batch, map_solve, nlp_from_payload, nlp_payload, worker_stats  # noqa: E402
from symgraph.errors import (ArgumentCountError, DTypeError, InvalidInputError, OptionError,  # noqa: E402
                             SerializationError, ShapeError)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """A LocalCluster of 2 worker processes sharing a fresh compile cache with this process."""
    cache = str(tmp_path_factory.mktemp("dask_cache"))
    before = os.environ.get("SYMGRAPH_CACHE_DIR")
    os.environ["SYMGRAPH_CACHE_DIR"] = cache  # before the cluster starts: the workers inherit it
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=50)
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()
        if before is None:
            os.environ.pop("SYMGRAPH_CACHE_DIR", None)
        else:
            os.environ["SYMGRAPH_CACHE_DIR"] = before


def _stats(client) -> dict:
    return client.run(worker_stats)


def _delta(after: dict, before: dict, key: str) -> dict:
    return {w: after[w][key] - before[w][key] for w in after}


def _model():
    """Dense and sparse outputs, a shared scalar and a shared matrix."""
    x, a, M = sg.symbols("x", 3), sg.symbols("a"), sg.symbols("M", (2, 2))
    y = a * sg.sin(x) * x[::-1] + M[0, 1] * x[0]
    J = sg.jacobian(y * x[1], x)
    F = sg.Function("model", [x, a, M], [y.sum() + M[1, 0], y, J], input_names=["x", "a", "M"])
    return F


@pytest.fixture(scope="module")
def compiled(client):
    return _model().compile()  # in this process, into the cluster's cache


def _points(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3))


# ------------------------------------------------------------------------------------------ batch
def test_dense_and_sparse_outputs_bitwise_with_uneven_chunks(client, compiled):
    X = _points(23)
    M = np.array([[1.5, -0.25], [2.0, 3.0]])
    A = np.linspace(0.5, 2.0, 23)
    before = _stats(client)
    s, y, J = batch(compiled, da.from_array(X, chunks=((5, 9, 7, 2), (3,))), da.from_array(A, chunks=6), M)
    assert s.chunks[0] == (5, 9, 7, 2) and y.shape == (23, 3) and J.shape == (23, compiled.output_pattern(2).nnz)
    got = dask.compute(s, y, J)
    after = _stats(client)
    ref = compiled.batch(X, A, M)
    assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1])
    assert np.array_equal(got[2], ref[2].data)  # the sparse output: values in the pattern's order
    P = compiled.output_pattern(2)
    assert np.array_equal(P.indices, ref[2].indices) and np.array_equal(P.indptr, ref[2].indptr)
    # four blocks, each one C.batch call; a worker compiles at most once, from the disk cache
    assert sum(_delta(after, before, "blocks").values()) == 4
    compiles = _delta(after, before, "functions_compiled")
    assert all(v <= 1 for v in compiles.values())
    assert _delta(after, before, "cache_hits") == compiles


def test_compile_once_per_worker_across_calls(client, compiled):
    X = _points(40, seed=1)
    before = _stats(client)
    first = batch(compiled, da.from_array(X, chunks=4), 0.7, np.eye(2))[1].compute()
    second = batch(compiled, da.from_array(X, chunks=5), 0.7, np.eye(2))[1].compute()
    after = _stats(client)
    assert np.array_equal(first, compiled.batch(X, 0.7, np.eye(2))[1]) and np.array_equal(second, first)
    assert sum(_delta(after, before, "blocks").values()) == 18
    assert all(v <= 1 for v in _delta(after, before, "functions_compiled").values())  # 18 tasks, <= 1 compile each


def test_function_bytes_travel_once_in_the_graph(compiled):
    import pickle

    from symgraph.serialize import to_bytes

    data = to_bytes(compiled.function)
    graph = dict(batch(compiled, da.from_array(_points(12), chunks=3), 1.0, np.eye(2))[0].__dask_graph__())
    holders = [k for k, v in graph.items() if data in pickle.dumps(v)]
    assert len(holders) == 1 and "symgraph-function" in str(holders[0])
    assert sum("_run_block" in str(k) for k in graph) == 4  # one task per block, every output from it


def test_function_compiled_on_workers_with_options(client):
    F = _model()
    X = _points(17, seed=2)
    local = F.compile(optimize=0)
    got = batch(F, da.from_array(X, chunks=8), 1.25, np.ones((2, 2)), options={"optimize": 0})
    ref = local.batch(X, 1.25, np.ones((2, 2)))
    for g, r in zip(dask.compute(*got), ref):
        assert np.array_equal(g, getattr(r, "data", r))


def test_shared_only_gives_one_point(compiled):
    s = batch(compiled, da.from_array(np.array([1.0, 2.0, 3.0]), chunks=3), 2.0, np.eye(2))[0]
    assert s.shape == (1,)
    assert np.array_equal(s.compute(), compiled.batch(np.array([1.0, 2.0, 3.0]), 2.0, np.eye(2))[0])


def test_numpy_batch_argument_beside_a_dask_one(compiled):
    X, A = _points(10, seed=3), np.arange(10.0)
    y = batch(compiled, da.from_array(X, chunks=4), A, np.eye(2))[1]
    assert y.chunks[0] == (4, 4, 2)
    assert np.array_equal(y.compute(), compiled.batch(X, A, np.eye(2))[1])


def test_map_structured_function(client):
    u, q = sg.symbols("u", 2), sg.symbols("q")
    body = sg.Function("body", [u, q], [sg.exp(-q * u[0]) * sg.cos(u[1])])
    z, w = sg.symbols("z", (6, 2)), sg.symbols("w")
    total = body.map(6, shared=[1], reduce="sum")(z, w)
    F = sg.Function("mapped", [z, w], [total, sg.grad(total, z.reshape(-1))])
    C = F.compile()
    Z = np.random.default_rng(4).normal(size=(30, 6, 2))
    got = dask.compute(*batch(C, da.from_array(Z, chunks=(7, 6, 2)), 0.3))
    ref = C.batch(Z, 0.3)
    assert np.array_equal(got[0], ref[0])
    assert np.array_equal(got[1], getattr(ref[1], "data", ref[1]))


def test_single_output_returns_one_array(client):
    x = sg.symbols("x", 2)
    C = sg.Function("one", [x], [x[0] * x[1] + 1]).compile()
    X = np.arange(10.0).reshape(5, 2)
    out = batch(C, da.from_array(X, chunks=2))
    assert isinstance(out, da.Array)
    assert out.compute().tolist() == [1.0, 7.0, 21.0, 43.0, 73.0]


def test_no_points_and_the_threaded_scheduler(compiled):
    s, y, J = batch(compiled, da.zeros((0, 3), chunks=(1, 3)), 1.0, np.eye(2))
    assert [a.compute(scheduler="threads").shape for a in (s, y, J)] == [(0,), (0, 3), (0, compiled.output_pattern(2).nnz)]
    X = _points(9, seed=5)
    y = batch(compiled, da.from_array(X, chunks=4), 0.5, np.eye(2))[1].compute(scheduler="threads")
    assert np.array_equal(y, compiled.batch(X, 0.5, np.eye(2))[1])


def test_compiled_batch_takes_dask_arrays(compiled):
    """``C.batch`` hands dask arrays to symgraph.dask.batch (the hook in codegen/runtime.py)."""
    import inspect

    from codegen.runtime import CompiledFunction

    if "symgraph.dask" not in inspect.getsource(CompiledFunction.batch):
        pytest.skip("CompiledFunction.batch does not hand dask arrays to symgraph.dask yet")
    X = _points(10, seed=6)
    s, y, J = compiled.batch(da.from_array(X, chunks=3), 2.0, np.eye(2))
    assert isinstance(y, da.Array) and y.chunks[0] == (3, 3, 3, 1)
    ref = compiled.batch(X, 2.0, np.eye(2))
    assert np.array_equal(J.compute(), ref[2].data) and np.array_equal(s.compute(), ref[0])


# ------------------------------------------------------------------------------------ bad input
def test_chunked_along_the_wrong_axis(compiled):
    X = da.from_array(_points(8), chunks=(4, 2))
    with pytest.raises(ShapeError, match=r"argument 0 \('x'\) is chunked along axis 1.*rechunk\(\{1: -1\}\)"):
        batch(compiled, X, 1.0, np.eye(2))
    M = da.from_array(np.ones((8, 2, 2)), chunks=(4, 2, 1))
    with pytest.raises(ShapeError, match=r"argument 2 \('M'\) is chunked along axis 2.*rechunk\(\{1: -1, 2: -1\}\)"):
        batch(compiled, da.from_array(_points(8), chunks=4), 1.0, M)


def test_wrong_shapes_and_types(compiled):
    with pytest.raises(ShapeError, match=r"argument 0 \('x'\): expected shape \(N,\) \+ \(3,\)"):
        batch(compiled, da.ones((5, 4)), 1.0, np.eye(2))
    with pytest.raises(ShapeError, match=r"argument 1 \('a'\) has 6 points, but argument 0 \('x'\) has 5"):
        batch(compiled, da.ones((5, 3)), da.ones(6), np.eye(2))
    with pytest.raises(ArgumentCountError, match="takes 3 arguments"):
        batch(compiled, da.ones((5, 3)))
    with pytest.raises(DTypeError, match="complex"):
        batch(compiled, da.ones((5, 3), dtype=complex), 1.0, np.eye(2))
    with pytest.raises(DTypeError, match="argument 1"):
        batch(compiled, da.ones((5, 3)), "a", np.eye(2))
    with pytest.raises(InvalidInputError, match="expected a symgraph Function or CompiledFunction"):
        batch(np.sin, da.ones((5, 3)))
    with pytest.raises(OptionError, match="C.options"):
        batch(compiled, da.ones((5, 3)), 1.0, np.eye(2), options={"optimize": 0})
    with pytest.raises(OptionError):
        batch(_model(), da.ones((5, 3)), 1.0, np.eye(2), options={"optimise": 0})
    X = da.from_array(_points(8), chunks=4)
    unknown = X[X[:, 0] > 0]
    with pytest.raises(ShapeError, match="compute_chunk_sizes"):
        batch(compiled, unknown, 1.0, np.eye(2))


# -------------------------------------------------------------------------------------- map_solve
def _hs071():
    """HS071 with the weight of x[2] in the objective as a parameter (p = 1: the textbook problem)."""
    x, p = sg.symbols("x", 4), sg.symbols("p")
    f = x[0] * x[3] * (x[0] + x[1] + x[2]) + p * x[2]
    g = np.array([x[0] * x[1] * x[2] * x[3], (x * x).sum()], dtype=object)
    return sg.NLP(x=x, f=f, g=g, p=p)


HS071_BOUNDS = {"lbx": [1.0] * 4, "ubx": [5.0] * 4, "lbg": [25.0, 40.0], "ubg": [np.inf, 40.0]}


@pytest.fixture(scope="module")
def hs071(client):
    return _hs071()


def test_map_solve_ipopt_matches_local_solves(client, hs071):
    pytest.importorskip("cyipopt", reason="IPOPT needs cyipopt (pip install 'symgraph[ipopt]')")
    x0s = np.array([[1.0, 5.0, 5.0, 1.0], [2.0, 2.0, 2.0, 2.0], [1.5, 4.0, 4.0, 1.5],
                    [1.0, 5.0, 5.0, 1.0], [3.0, 3.0, 3.0, 3.0], [1.0, 4.0, 3.5, 1.5]])
    ps = np.array([[1.0], [1.0], [0.5], [2.0], [1.5], [0.8]])
    before = _stats(client)
    sols = map_solve(hs071, x0s, ps, client=client, **HS071_BOUNDS)
    after = _stats(client)
    assert len(sols) == 6 and all(s.success for s in sols)
    for x0, p, sol in zip(x0s, ps, sols):
        ref = hs071.solve_ipopt(x0, p=p, **HS071_BOUNDS)
        np.testing.assert_allclose(sol.x, ref.x, rtol=1e-7, atol=1e-9)
        assert sol.f == pytest.approx(ref.f, rel=1e-9)
    np.testing.assert_allclose(sols[0].x, [1.0, 4.74299963, 3.82114998, 1.37940829], atol=1e-6)
    assert sum(_delta(after, before, "solves").values()) == 6
    again = map_solve(hs071, x0s[:4], ps[:4], client=client, **HS071_BOUNDS)  # the memo's NLP: no rebuild
    built = _delta(_stats(client), before, "nlps_built")
    assert all(v <= 1 for v in built.values()) and sum(built.values()) >= 1  # 10 solves, <= 1 build per worker
    assert [s.x.tolist() for s in again] == [s.x.tolist() for s in sols[:4]]


def test_map_solve_scipy_and_shared_parameters(client):
    x, p = sg.symbols("x", 2), sg.symbols("p", 2)
    nlp = sg.NLP(x=x, f=(p[0] - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2 + p[1] * x[1] ** 2, p=p)
    x0s = np.array([[-1.2, 1.0], [0.0, 0.0], [2.0, 2.0]])
    sols = map_solve(nlp, x0s, [1.0, 0.0], client=client, solver="scipy", method="L-BFGS-B",
                     options={"gtol": 1e-12, "ftol": 1e-15})
    assert all(s.success for s in sols)
    for x0, sol in zip(x0s, sols):
        ref = nlp.scipy_minimize(x0, method="L-BFGS-B", p=[1.0, 0.0], options={"gtol": 1e-12, "ftol": 1e-15})
        np.testing.assert_allclose(sol.x, ref.x, rtol=1e-9)
        np.testing.assert_allclose(sol.x, [1.0, 1.0], atol=1e-4)


def test_map_solve_bad_input(client, hs071):
    with pytest.raises(ShapeError, match=r"x0s must have shape \(K, 4\)"):
        map_solve(hs071, np.zeros(4), client=client)
    with pytest.raises(ShapeError, match=r"ps must have shape \(2, 1\)"):
        map_solve(hs071, np.zeros((2, 4)), np.zeros((3, 1)), client=client)
    with pytest.raises(OptionError, match="solver must be 'ipopt' or 'scipy'"):
        map_solve(hs071, np.zeros((2, 4)), client=client, solver="snopt")
    with pytest.raises(OptionError, match="no option 'lbxx'"):
        map_solve(hs071, np.zeros((2, 4)), client=client, lbxx=[0.0] * 4)
    with pytest.raises(OptionError, match="ps"):
        map_solve(hs071, np.zeros((2, 4)), client=client, p=[1.0])
    with pytest.raises(InvalidInputError, match="expected a symgraph NLP"):
        map_solve("nlp", np.zeros((2, 4)), client=client)


# ----------------------------------------------------------------------------------- NLP payload
def test_payload_round_trip_gives_the_same_callbacks(hs071):
    rebuilt = nlp_from_payload(nlp_payload(hs071))
    assert (rebuilt.n, rebuilt.m, len(rebuilt.p)) == (4, 2, 1)
    for name in ("jacobian_structure", "hessian_structure"):
        a, b = getattr(rebuilt, name), getattr(hs071, name)
        assert a.shape == b.shape and np.array_equal(a.rows, b.rows) and np.array_equal(a.cols, b.cols)
    xs = np.array([1.1, 2.2, 3.3, 0.7])
    for nlp in (hs071, rebuilt):
        nlp.set_parameters([0.9])
    assert rebuilt.objective(xs) == hs071.objective(xs)
    assert np.array_equal(rebuilt.gradient(xs), hs071.gradient(xs))
    assert np.array_equal(rebuilt.constraints(xs), hs071.constraints(xs))
    assert np.array_equal(rebuilt.jacobian_values(xs), hs071.jacobian_values(xs))
    lam = np.array([0.3, -1.2])
    assert np.array_equal(rebuilt.hessian_values(xs, lam, 0.5), hs071.hessian_values(xs, lam, 0.5))


def test_payload_of_a_second_nlp_of_the_same_model(hs071, monkeypatch):
    """A second NLP of one model (set up from the cache where the NLP caches its set-up) gives the same
    payload bytes, made at any time (the workers' memo is keyed by their hash)."""
    import time

    again = _hs071()
    first = nlp_payload(hs071)
    later = time.time() + 3600.0
    monkeypatch.setattr(time, "time", lambda: later)
    assert nlp_payload(again) == first
    rebuilt = nlp_from_payload(nlp_payload(again))
    xs = np.array([1.0, 4.0, 4.0, 1.5])
    again.set_parameters([1.3]), rebuilt.set_parameters([1.3])
    assert np.array_equal(rebuilt.hessian_values(xs, [1.0, 2.0]), again.hessian_values(xs, [1.0, 2.0]))


def test_payload_of_a_tiled_nlp():
    x = sg.symbols("x", 8)
    nlp = sg.NLP(x=x, f=sg.models.luksan_objective(x), jit=False)
    rebuilt = nlp_from_payload(nlp_payload(nlp))
    xs = np.linspace(-1.0, 1.0, 8)
    assert rebuilt.tiled == nlp.tiled
    assert np.array_equal(rebuilt.gradient(xs), nlp.gradient(xs))
    assert np.array_equal(rebuilt.hessian_values(xs, []), nlp.hessian_values(xs, []))


def test_payload_rejects_damaged_data(hs071):
    data = nlp_payload(hs071)
    for bad in (b"", b"PK\x03\x04" + b"\x00" * 20, data[: len(data) // 2], 42):
        with pytest.raises(SerializationError, match="NLP payload"):
            nlp_from_payload(bad)
    import io
    import json

    with np.load(io.BytesIO(data)) as archive:
        arrays = {k: archive[k] for k in archive.files}
    header = json.loads(arrays["header"].tobytes())
    header["version"] = 99
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with pytest.raises(SerializationError, match="version 99"):
        nlp_from_payload(buffer.getvalue())
    del arrays["function_g"]
    header["version"] = 1
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with pytest.raises(SerializationError, match="malformed"):
        nlp_from_payload(buffer.getvalue())
    with pytest.raises(InvalidInputError):
        nlp_payload("not an nlp")
