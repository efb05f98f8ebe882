"""The Tape interpreter (codegen/interp.py): the first tier of large Functions under ``tier="auto"``.

Oracles: the compiled C of the same Function (bitwise: the same C expressions
of the op table over the same operands), the numpy VM (to a few ulps), closed
forms for integer powers, and an IPOPT solve equal to the compiled one.
"""

from __future__ import annotations

import logging
import os
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symgraph as sg
from codegen import build, interp, runtime
from tests.strategies import module_cache, points, random_graphs  # noqa: F401  (fixture: a cache per module)
from tests.test_tiers import calls_during_the_switch

GCC = shutil.which("gcc")


def same_bits(a, b) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and np.array_equal(a.view(np.int64), b.view(np.int64))


def results(value) -> list:
    """A Function's or CompiledFunction's results as a list of dense arrays."""
    value = value if isinstance(value, tuple) else (value,)
    return [v.toarray() if hasattr(v, "toarray") else np.asarray(v, dtype=np.float64) for v in value]


@given(graph=random_graphs(max_inputs=3, max_steps=14), data=st.data())
@settings(max_examples=60)
def test_random_graphs_equal_the_compiled_c_bitwise_and_the_vm(graph, data):
    F = graph.function("interp_random")
    v = data.draw(points(len(graph.inputs)))
    C = F.compile(optimize=0)
    I = interp.interpreted(F)
    got, want = results(I(*v)), results(C(*v))
    assert all(same_bits(g, w) for g, w in zip(got, want)), (graph.ops, v, got, want)
    with np.errstate(all="ignore"):
        vm = results(F(*v))
    for g, w in zip(got, vm):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-300, equal_nan=True)


@pytest.mark.parametrize("n", [-4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 7, 0.5])
def test_integer_powers_follow_the_generated_squarings(n):
    x, e = sg.symbols("x"), sg.symbols("e")
    F = sg.Function("interp_powi", [x, e], [x ** n, sg.apply(sg.ops.OPS["powi"], x, e)])
    I, C = interp.interpreted(F), F.compile(optimize=0)
    for v in (0.3, -1.7, 3.0, 1e-160, 1e160, 0.0, -0.0):
        got, want = I(v, float(n)), C(v, float(n))
        assert same_bits(got[0], want[0]) and same_bits(got[1], want[1]), (n, v)
        with np.errstate(all="ignore"):
            closed = np.power(np.float64(v), float(n))
        np.testing.assert_allclose(got[0], closed, rtol=1e-14)


def test_sparse_outputs_batch_shared_arguments_and_out():
    x, p = sg.symbols("x", 6), sg.symbols("p")
    g = sg.sin(x[1:] * x[:-1]) * p + x[1:] ** 3
    F = sg.Function("interp_sparse", [x, p], [g, sg.jacobian(g, x), g.sum()])
    I, C = interp.interpreted(F), F.compile()
    assert F.output_sparsity[1] is not None
    v = np.linspace(-1.0, 1.5, 6)
    for got, want in zip(results(I(v, 0.7)), results(C(v, 0.7))):
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)
    X = np.random.default_rng(1).normal(size=(5, 6))
    for got, want in zip(I.batch(X, 0.7), C.batch(X, 0.7)):
        np.testing.assert_allclose(getattr(got, "data", got), getattr(want, "data", want), rtol=1e-14, atol=1e-15)
    out = (np.empty(5), None, np.empty(()))
    I(v, 0.7, out=out)
    np.testing.assert_allclose(out[0], results(C(v, 0.7))[0], rtol=1e-14)


def test_calls_are_refused_and_auto_falls_back_to_compiled_code(tmp_path, monkeypatch):
    x = sg.symbols("x", 3)
    inner = sg.Function("interp_inner", [x], [sg.sin(x).sum()])
    F = sg.Function("interp_outer", [x], [inner(x * 2) + x[0]])
    with pytest.raises(interp.UnsupportedTape, match="call"):
        interp.tape_program(F)
    monkeypatch.setattr(runtime, "INTERP_MIN", 1)
    C = F.compile(tier="auto", cache_dir=str(tmp_path))
    assert C.tier in ("fast", "best")
    assert float(C(np.ones(3))) == pytest.approx(float(F(np.ones(3))), rel=1e-14)


def model(name: str, n: int = 10):
    x = sg.symbols("x", n)
    f = np.sum(sg.sin(x[1:] * x[:-1]) + sg.exp(x[:-1] / 4) * x[1:] ** 2)
    return sg.Function(name, [x], [f, sg.grad(f, x)])


@pytest.fixture
def slow_cc(tmp_path, monkeypatch):
    """``cc`` on PATH waits a second before running gcc: the interpreter tier is observed for a while."""
    if GCC is None:
        pytest.skip("needs gcc")
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "cc"
    script.write_text(f'#!/bin/sh\ncase "$1" in --version) exec {GCC} --version;; esac\nsleep 1\nexec {GCC} "$@"\n')
    script.chmod(0o755)
    interp.interpreter_library(GCC, str(tmp_path / "cache"))  # the interpreter itself: built by the real gcc
    monkeypatch.setenv("PATH", str(folder) + os.pathsep + os.environ["PATH"])
    monkeypatch.setattr(runtime, "INTERP_MIN", 1)  # every Function is "large" here
    build.clear_memory_cache()
    interp._LIBRARIES.clear()
    return tmp_path


def test_auto_starts_on_the_interpreter_and_switches_under_concurrent_calls(slow_cc, caplog):
    F = model("interp_switch", 12)
    with caplog.at_level(logging.INFO, logger="symgraph"):
        C = F.compile(tier="auto", cache_dir=str(slow_cc / "cache"))
        assert C.tier == "interp" and C.work_size == F.tape.n_slots
        seen = calls_during_the_switch(F, C, 12)
    assert seen == {"interp", "best"} and C.tier == "best" and C.upgrade_error is None
    assert any("interp tier (the Tape interpreter) to the best tier" in r.getMessage() for r in caplog.records)
    assert any(r.getMessage().startswith("interpret interp_switch") for r in caplog.records)
    build.clear_memory_cache()  # the next compile finds the optimized code: no interpreter, no thread
    again = F.compile(tier="auto", cache_dir=str(slow_cc / "cache"))
    assert again.tier == "best" and again._upgrade_done is None


def test_a_failed_background_build_keeps_the_interpreter_and_warns_once(tmp_path, monkeypatch):
    if GCC is None:
        pytest.skip("needs gcc")
    interp.interpreter_library(GCC, str(tmp_path))
    monkeypatch.setattr(runtime, "INTERP_MIN", 1)
    real = runtime._compile_tier

    def broken(F, options, tier, *args, **kwargs):
        if kwargs.get("background"):
            raise sg.CompileError("the compiler crashed (simulated)")
        return real(F, options, tier, *args, **kwargs)

    monkeypatch.setattr(runtime, "_compile_tier", broken)
    F = model("interp_broken")
    with pytest.warns(sg.BackendWarning, match="Tape interpreter keeps running") as record:
        C = F.compile(tier="auto", cache_dir=str(tmp_path))
        assert C.wait(60)
    assert C.tier == "interp" and isinstance(C.upgrade_error, sg.CompileError)
    assert record[0].filename == __file__
    v = np.linspace(-1, 1, 10)
    np.testing.assert_allclose(C(v)[1], F(v)[1], rtol=1e-13)


def test_a_build_over_budget_is_announced_at_the_users_line_and_done_by_tcc(tmp_path, monkeypatch):
    if shutil.which("tcc") is None:
        pytest.skip("needs tcc")
    monkeypatch.setattr(runtime, "INTERP_MIN", 1)
    F = model("interp_budget")
    with pytest.warns(sg.BackendWarning, match="so tcc builds them instead") as record:
        C = F.compile(tier="auto", cache_dir=str(tmp_path), compile_budget=1e-9)
    assert record[0].filename == __file__ and C.tier == "interp"
    assert C.wait(120) and C.tier == "fast" and "tcc" in C.compiler
    v = np.linspace(-1, 1, 10)
    np.testing.assert_allclose(C(v)[1], F(v)[1], rtol=1e-13)


def test_nlp_starts_on_the_interpreter_and_solves_as_compiled(tmp_path, monkeypatch):
    pytest.importorskip("cyipopt")
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(runtime, "INTERP_MIN", 30)
    n = 12
    x = sg.symbols("x", n)
    f = np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    g = x[:-2] ** 2 + x[1:-1] * x[2:] + sg.sin(x[:-2])
    nlp = sg.NLP(x=x, f=f, g=g, name="interp_nlp")
    assert "interp" in {C.tier for C in nlp._eval.values()}
    x0 = np.full(n, 0.5)
    sol = nlp.solve_ipopt(x0, lbg=0.0, ubg=1.0)
    reference = sg.NLP(x=x, f=f, g=g, name="interp_nlp_ref", compile_options={"tier": "best"})
    ref = reference.solve_ipopt(x0, lbg=0.0, ubg=1.0)
    assert sol.success and ref.success
    np.testing.assert_allclose(sol.x, ref.x, rtol=1e-9, atol=1e-12)
    for C in nlp._eval.values():
        assert C.wait(120)


def test_the_interpreter_runs_a_large_unrolled_model_like_the_vm():
    x = sg.symbols("x", 4)
    state = x
    with sg.building():
        for _ in range(200):
            rate = np.array([state[1], -sg.sin(state[0]) * state[3], state[3] ** 2 / 7, sg.cos(state[2])])
            state = state + 0.01 * rate
    F = sg.Function("interp_unrolled", [x], [state, sg.jacobian(state, x)])
    I = interp.interpreted(F)
    v = np.array([0.1, -0.2, 0.3, 0.4])
    for got, want in zip(results(I(v)), results(F(v))):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)



def test_batch_of_a_function_with_many_inputs_and_outputs():
    xs = [sg.symbols(f"x{k}") for k in range(70)]
    outs = [sg.sin(x) * (k + 1) for k, x in enumerate(xs)]
    F = sg.Function("interp_many", xs, outs)
    I = interp.interpreted(F)
    X = np.random.default_rng(3).normal(size=(70, 4))
    got = I.batch(*X)
    for k in range(70):
        np.testing.assert_array_equal(got[k], np.sin(X[k]) * (k + 1))
