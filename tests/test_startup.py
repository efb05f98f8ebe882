"""Start-up (issue 13): the cache keyed before the work, progress and logging, warnings at the user's line,
CompiledFunction pickling across processes."""

from __future__ import annotations

import concurrent.futures
import json
import logging
import multiprocessing
import operator
import os
import pickle
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import symgraph as sg
from codegen import build, runtime
from symgraph import progress


def rosen(n: int = 6):
    x = sg.symbols("x", n)
    f = np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    return x, sg.Function("rosen_start", [x], [f, sg.grad(f, x)])


def reference(F, v):
    return F(v)


def child(code: str, cache: str, env: dict | None = None) -> dict:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, SYMGRAPH_CACHE_DIR=cache, **(env or {})))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------ the cache keyed before the work
SECOND = """
    import json, time
    import numpy as np, symgraph as sg
    from codegen import build, runtime
    import symgraph.function

    def refuse(*a, **k):
        raise AssertionError("a cache hit must not optimize or generate C")

    x = sg.symbols("x", 6)
    f = np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    F = sg.Function("rosen_start", [x], [f, sg.grad(f, x)])
    runtime.program = refuse
    symgraph.function.Function.optimize = refuse
    start = time.perf_counter()
    C = F.compile()
    seconds = time.perf_counter() - start
    v = np.linspace(-1.0, 1.5, 6)
    print(json.dumps({"stats": build.STATS, "value": float(C(v)[0]), "grad": C(v)[1].tolist(),
                      "seconds": seconds, "tier": C.tier}))
"""


def test_a_second_process_loads_the_entry_without_optimizing_or_generating(tmp_path):
    x, F = rosen()
    build.clear_memory_cache()
    C = F.compile(cache_dir=str(tmp_path))
    assert any(n.startswith(build.ENTRY_PREFIX) for n in os.listdir(tmp_path))
    out = child(SECOND, str(tmp_path))
    v = np.linspace(-1.0, 1.5, 6)
    assert out["stats"]["compiles"] == 0 and out["stats"]["function_hits"] == 1 and out["tier"] == "best"
    assert out["value"] == pytest.approx(float(F(v)[0]), rel=1e-14)
    np.testing.assert_allclose(out["grad"], F(v)[1], rtol=1e-13)
    # the source and the optimized Function are made again on demand after a hit
    assert C(v)[0] == pytest.approx(out["value"], rel=1e-14)


@pytest.mark.parametrize("damage", ["garbage", "truncate", "pickle", "table_checksum"])
def test_a_corrupt_function_entry_is_rebuilt(tmp_path, damage):
    y, t = sg.symbols("y", 300), sg.symbols("t")
    idx = np.random.default_rng(1).integers(0, 300, 2000)  # a mapped call on gathered rows: run-time tables
    M = sg.Function("twice", [t], [t * 2.0]).map(2000)
    F = sg.Function("gathered_start", [y], [M(sg.gather(y, idx))])
    build.clear_memory_cache()  # entries loaded in this process are found by key, whatever the directory
    first = F.compile(cache_dir=str(tmp_path))
    assert len(first.tables) >= 1
    [entry] = [tmp_path / n for n in os.listdir(tmp_path) if n.startswith(build.ENTRY_PREFIX)]
    if damage == "garbage":
        entry.write_bytes(b"not a zip at all")
    elif damage == "truncate":
        entry.write_bytes(entry.read_bytes()[:100])
    elif damage == "pickle":
        np.savez(str(entry), meta=np.array([{"evil": True}], dtype=object))
    else:
        with np.load(str(entry)) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(bytes(arrays["meta"]).decode())
        arrays["t0"] = arrays["t0"].copy()
        arrays["t0"].reshape(-1).view(np.uint8)[0] ^= 1
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        with open(entry, "wb") as fh:
            np.savez(fh, **arrays)
    build.clear_memory_cache()
    hits = build.STATS["function_hits"]
    again = F.compile(cache_dir=str(tmp_path))
    assert build.STATS["function_hits"] == hits  # the damaged entry was not used
    v = np.arange(300.0)
    np.testing.assert_array_equal(again(v), 2.0 * v[idx])
    build.clear_memory_cache()
    third = F.compile(cache_dir=str(tmp_path))  # rewritten whole: a hit now
    assert build.STATS["function_hits"] == hits + 1
    np.testing.assert_array_equal(third(v), 2.0 * v[idx])


def test_a_damaged_library_behind_a_good_entry_is_rebuilt(tmp_path):
    _, F = rosen()
    build.clear_memory_cache()
    path = F.compile(cache_dir=str(tmp_path)).library.path
    with open(path, "rb") as fh:  # a new file in its place: the loaded one stays mapped in this process
        head = fh.read(100)
    with open(path + ".tmp", "wb") as fh:
        fh.write(head)
    os.replace(path + ".tmp", path)
    build.clear_memory_cache()
    compiles = build.STATS["compiles"]
    again = F.compile(cache_dir=str(tmp_path))
    assert build.STATS["compiles"] == compiles + 1 and again.library.source == "compiled"
    v = np.linspace(0.0, 1.0, 6)
    assert float(again(v)[0]) == pytest.approx(float(F(v)[0]), rel=1e-14)


def test_keys_follow_the_tape_structure_and_options():
    x = sg.symbols("x")
    body = sg.Function("b", [x], [sg.sin(x) * 2])
    other = sg.Function("b", [x], [sg.sin(x) * 3])
    opts = runtime.check_options()
    y = sg.symbols("y", 4)
    keys = {runtime.function_key(G, o, t) for G, o, t in [
        (body.map(4), opts, "best"), (other.map(4), opts, "best"), (body.map(5), opts, "best"),
        (body.map(4, reduce="sum"), opts, "best"), (body.map(4), dict(opts, optimize=0), "best"),
        (body.map(4), dict(opts, flags=("-O1",)), "best"), (body.map(4), dict(opts, chunk_size=7), "best"),
        (body.map(4), opts, "fast"), (sg.Function("u", [y], [sg.sin(y) * 2]), opts, "best")]}
    assert len(keys) == 9
    # names do not enter the digest: a renamed copy of the same graph shares it
    assert runtime.function_digest(sg.Function("a", [x], [x + 1])) == \
        runtime.function_digest(sg.Function("z", [x], [x + 1]))


def test_two_functions_with_one_tape_but_different_names_each_get_their_own_entry_points(tmp_path):
    x = sg.symbols("x")
    a = sg.Function("first_name", [x], [x * 4.0]).compile(cache_dir=str(tmp_path))
    b = sg.Function("second_name", [x], [x * 4.0]).compile(cache_dir=str(tmp_path))
    assert float(a(2.0)) == float(b(2.0)) == 8.0 and b.name == "second_name"


# ------------------------------------------------------------ progress and logging
def test_every_phase_is_logged_with_its_size_and_time(tmp_path, caplog):
    x = sg.symbols("x", 3)
    F = sg.Function("logged_start", [x], [sg.exp(x).sum()])
    with caplog.at_level(logging.DEBUG, logger="symgraph"):
        F.compile(cache_dir=str(tmp_path))
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "symgraph")
    for name in ("optimize logged_start", "generate logged_start", "compile logged_start", "load logged_start"):
        assert name in text
    assert " took " in text and "ops" in text
    caplog.clear()
    build.clear_memory_cache()
    with caplog.at_level(logging.INFO, logger="symgraph"):
        F.compile(cache_dir=str(tmp_path))
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("load logged_start") for m in messages)
    assert not any(m.startswith(("optimize", "generate", "compile")) for m in messages)


def test_nlp_set_up_logs_the_differentiation(caplog):
    x = sg.symbols("x", 2)
    with caplog.at_level(logging.INFO, logger="symgraph"):
        sg.NLP(x=x, f=(x[0] - 1) ** 2 + x[1] ** 2, g=x[0] * x[1], jit=False, name="logged_nlp")
    assert any(r.getMessage().startswith("differentiate logged_nlp") for r in caplog.records)


def test_a_slow_phase_shows_progress_only_where_asked(capsys, monkeypatch):
    monkeypatch.setattr(progress, "TICK_SECONDS", 0.05)
    import time

    with progress.phase("compile", "slow", 10, expected=5.0, verbose=True):
        time.sleep(0.3)
    shown = capsys.readouterr().err
    assert "slow" in shown and ("s (estimate)" in shown or "done in" in shown)
    with progress.phase("compile", "quiet", 10, expected=5.0, verbose=False):
        time.sleep(0.1)
    with progress.phase("compile", "tty", 10, expected=5.0):  # stderr is captured: not a terminal
        time.sleep(0.1)
    with progress.phase("compile", "short", 10, expected=0.5, verbose=True):
        time.sleep(0.1)
    assert capsys.readouterr().err == ""


def test_the_tcc_notice_points_at_the_callers_line(tmp_path):
    x = sg.symbols("x", 3)
    F = sg.Function("notice_start", [x], [sg.sin(x) * x.sum()])
    with pytest.warns(sg.BackendWarning, match="so tcc builds them instead") as record:
        C = F.compile(cache_dir=str(tmp_path), compile_budget=1e-9)
    assert record[0].filename == __file__ and C.tier == "fast"
    message = str(record[0].message)
    for words in ("slower than", "compile_budget", "compiler='cc'", "tier='fast'"):
        assert words in message


def test_nlp_warnings_from_worker_threads_point_at_the_callers_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path))  # cold: an earlier run's entries would skip the build
    build.clear_memory_cache()
    x = sg.symbols("x", 2)
    with pytest.warns(sg.BackendWarning, match="so tcc builds them instead") as record:
        sg.NLP(x=x, f=sg.exp(x[0]) + x[1] ** 2 + 0.123, g=x[0] - x[1],
               compile_options={"compile_budget": 1e-9, "tier": "best"}, name="warned_nlp")
    assert record and all(w.filename == __file__ for w in record)


def test_bad_tier_and_verbose_are_option_errors():
    x = sg.symbols("x")
    F = sg.Function("opts_start", [x], [x + 1])
    with pytest.raises(sg.OptionError, match="tier must be 'auto', 'fast' or 'best'"):
        F.compile(tier="fastest")
    with pytest.raises(sg.OptionError, match="verbose must be True, False or None"):
        F.compile(verbose="yes")


# ------------------------------------------------------------ pickling
def test_a_compiled_function_pickles_as_its_function_and_reloads_from_the_cache(tmp_path):
    x, F = rosen()
    C = F.compile(cache_dir=str(tmp_path), optimize=0)
    blob = pickle.dumps(C)
    assert b"\x7fELF" not in blob  # no machine code travels
    build.clear_memory_cache()
    hits = build.STATS["function_hits"]
    D = pickle.loads(blob)
    assert build.STATS["function_hits"] == hits + 1 and D.options["optimize"] == 0
    v = np.linspace(0.0, 1.0, 6)
    assert float(D(v)[0]) == float(C(v)[0])


def test_compiled_functions_travel_to_spawned_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path))
    x, F = rosen()
    C = F.compile()
    points = [np.linspace(-1.0, 1.0, 6) * k for k in range(4)]
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        got = list(pool.map(operator.call, [C] * len(points), points))
    for v, (value, grad) in zip(points, got):
        assert value == pytest.approx(float(F(v)[0]), rel=1e-14)
        np.testing.assert_allclose(grad, F(v)[1], rtol=1e-13)


# ------------------------------------------------------------ the whole NLP set-up
def small_nlp(name: str, cache: str, jit: bool = True):
    x, p = sg.symbols("x", 5), sg.symbols("p")
    f = sum((x[i + 1] - x[i] ** 2) ** 2 * p + (1 - x[i]) ** 2 for i in range(4))
    g = np.array([x[0] * x[1] - p, sg.sin(x[2]) + x[3] * x[4]])
    return sg.NLP(x=x, f=f, g=g, p=p, name=name, jit=jit, compile_options={"cache_dir": cache})


def nlp_values(nlp) -> dict:
    nlp.set_parameters(2.0)
    v = np.linspace(0.1, 0.9, 5)
    return {"f": nlp.objective(v), "grad": nlp.gradient(v).tolist(), "g": nlp.constraints(v).tolist(),
            "jac": nlp.jacobian_values(v).tolist(), "hess": nlp.hessian_values(v, [0.3, -0.7], 1.5).tolist(),
            "jac_rows": nlp.jacobian_structure.rows.tolist(), "hess_cols": nlp.hessian_structure.cols.tolist()}


NLP_CHILD = """
    import json, sys
    import numpy as np, symgraph as sg
    import symgraph.tiled
    from codegen import build
    sys.path.insert(0, {tests!r})
    from test_startup import small_nlp, nlp_values

    def refuse(*a, **k):
        raise AssertionError("a warm NLP set-up must not differentiate")

    real = symgraph.tiled.tiled_derivatives
    symgraph.tiled.tiled_derivatives = refuse
    nlp = small_nlp("warm_nlp", {cache!r})
    out = nlp_values(nlp)
    out["stats"] = build.STATS
    out["tiers"] = sorted({{C.tier for C in nlp._eval.values()}})
    symgraph.tiled.tiled_derivatives = real
    v = np.linspace(0.1, 0.9, 5)
    out["vm_f"] = float(nlp.functions["f"](v, np.array([2.0])))  # the Functions are derived on first use
    out["pickled"] = float(__import__("pickle").loads(__import__("pickle").dumps(nlp._eval["f"]))(v, np.array([2.0])))
    print(json.dumps(out))
"""


def test_a_warm_nlp_set_up_skips_the_differentiation(tmp_path):
    reference = nlp_values(small_nlp("warm_nlp", str(tmp_path), jit=False))
    first = small_nlp("warm_nlp", str(tmp_path))
    for C in first._eval.values():
        assert C.wait(120)
    assert any(n.startswith(build.ENTRY_PREFIX + "nlp-") for n in os.listdir(tmp_path))
    out = child(NLP_CHILD.format(tests=os.path.dirname(__file__), cache=str(tmp_path)), str(tmp_path))
    assert out["stats"]["compiles"] == 0 and out["tiers"] == ["best"]
    for k in ("f", "grad", "g", "jac", "hess"):
        np.testing.assert_allclose(out[k], reference[k], rtol=1e-13, atol=1e-14)
    assert out["jac_rows"] == reference["jac_rows"] and out["hess_cols"] == reference["hess_cols"]
    assert out["vm_f"] == pytest.approx(reference["f"], rel=1e-14) and out["pickled"] == out["vm_f"]


def test_a_corrupt_nlp_entry_is_rebuilt(tmp_path):
    first = small_nlp("corrupt_nlp", str(tmp_path))
    for C in first._eval.values():
        assert C.wait(120)
    [entry] = [tmp_path / n for n in os.listdir(tmp_path) if n.startswith(build.ENTRY_PREFIX + "nlp-")]
    entry.write_bytes(b"PK\x03\x04 damaged")
    build.clear_memory_cache()
    again = small_nlp("corrupt_nlp", str(tmp_path))
    assert again._functions is not None  # differentiated again
    assert nlp_values(again) == nlp_values(first)
    build.clear_memory_cache()
    third = small_nlp("corrupt_nlp", str(tmp_path))  # the entry was written again
    assert third._functions is None and nlp_values(third) == nlp_values(first)


def test_warnings_from_a_script_read_from_stdin(tmp_path):
    code = textwrap.dedent("""
        import warnings
        import symgraph as sg
        x = sg.symbols("x", 2)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sg.Function("stdin_start", [x], [x.sum() * 3.5]).compile(compile_budget=1e-9)
        print(caught[0].filename, caught[0].lineno)
    """)
    done = subprocess.run([sys.executable, "-"], input=code, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, SYMGRAPH_CACHE_DIR=str(tmp_path)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["<stdin>", "7"]
