"""Choosing the compiler by estimated build time (issue 15): the model, the rule, the notice, the option.

No large program is compiled here: the rule is tested on stand-in
Functions with any number of operations, and the estimate's arithmetic
against its own constants.
"""

from __future__ import annotations

import math
import shutil
import types
import warnings

import numpy as np
import pytest

import symgraph as sg
from codegen import build, runtime
from codegen.runtime import COMPILE_BUDGET, _choose_compiler, _opt_level, estimate_build, tcc_notice

tcc = pytest.mark.skipif(shutil.which("tcc") is None, reason="tcc is not installed")


def stand_in(n_ops: int, n_parts: int):
    """A Function and program of ``n_ops`` instructions in ``n_parts`` parts, as far as the rule looks."""
    return types.SimpleNamespace(name="big", n_ops=n_ops), types.SimpleNamespace(parts=[None] * n_parts,
                                                                               n_ops=n_ops)


@pytest.mark.parametrize("flags, level", [
    ((), 0), (("-O2",), 2), (("-O",), 1), (("-O1", "-g"), 1), (("-O3", "-march=native"), 3), (("-Ofast",), 3),
    (("-Os",), 2), (("-O3", "-O0"), 0), (("-march=native",), 0), (("-Og",), 1),
])
def test_the_last_optimization_flag_sets_the_cost_per_instruction(flags, level):
    assert _opt_level(flags) == level


def test_the_estimate_is_linear_and_spread_over_parallel_jobs(monkeypatch):
    monkeypatch.setattr(runtime.os, "cpu_count", lambda: 8)
    one = estimate_build(100_000, 500, ("-O2",), jobs=1)
    four = estimate_build(100_000, 500, ("-O2",), jobs=4)
    assert one.cc_seconds == pytest.approx(runtime.CC_SECONDS_PER_OP[2] * 100_000)
    assert (one.cc_units, one.cc_parallel, four.cc_units, four.cc_parallel) == (1, 1, 4, 4)
    assert four.cc_seconds == pytest.approx(one.cc_seconds / 4)
    assert estimate_build(200_000, 500, ("-O2",), 1).cc_seconds == pytest.approx(2 * one.cc_seconds)
    assert estimate_build(100_000, 500, ("-O0",), 1).cc_seconds < one.cc_seconds
    # few parts: no more C files than parts // 2, and no more parallel jobs than CPUs
    assert estimate_build(100_000, 5, ("-O2",), 16).cc_units == 2
    assert estimate_build(100_000, 500, ("-O2",), 16).cc_parallel == 8
    # tcc: files of at most TCC_UNIT_OPS instructions (its time per instruction grows with a file's size)
    assert one.tcc_seconds == pytest.approx(runtime.TCC_SECONDS_PER_OP * 100_000)
    assert estimate_build(10**6, 500).tcc_units == math.ceil(10**6 / runtime.TCC_UNIT_OPS)
    assert estimate_build(10**6, 3).tcc_units == 3 and estimate_build(10, 1).tcc_units == 1
    # per call: tcc's code is the slower one, and cc pays off after a finite number of calls
    e = estimate_build(10**6, 500, ("-O2",), 2)
    assert e.tcc_call[0] > e.cc_call[0] and e.tcc_call[1] > e.cc_call[1]
    assert 0 < e.break_even_calls < math.inf


def test_tcc_only_when_the_estimated_cc_build_exceeds_the_budget(monkeypatch):
    found = []

    def find(name=None):
        found.append(name)
        return build.Compiler(f"/usr/bin/{name or 'cc'}", "tcc" if name == "tcc" else "gcc", "test")

    monkeypatch.setattr(build, "find_compiler", find)
    monkeypatch.setattr(runtime.os, "cpu_count", lambda: 8)
    G, prog = stand_in(400_000, 200)
    seconds = estimate_build(400_000, 200, ("-O2",), 2).cc_seconds
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _choose_compiler(G, prog, None, True, seconds * 1.01, ("-O2",), 2).family == "gcc"
        assert _choose_compiler(G, prog, None, False, seconds / 100, ("-O2",), 2).family == "gcc"
        assert _choose_compiler(G, prog, "gcc", True, seconds / 100, ("-O2",), 2).family == "gcc"
        assert _choose_compiler(G, prog, "tcc", True, math.inf, ("-O2",), 2).family == "tcc"
        # more cores or a cheaper -O level bring the same program under the budget
        assert _choose_compiler(G, prog, None, True, seconds / 1.5, ("-O2",), 16).family == "gcc"
        assert _choose_compiler(G, prog, None, True, seconds / 1.5, ("-O0",), 2).family == "gcc"
    with pytest.warns(sg.BackendWarning, match="more than compile_budget=") as record:
        assert _choose_compiler(G, prog, None, True, seconds * 0.99, ("-O2",), 2).family == "tcc"
    assert len(record) == 1


def test_no_tcc_installed_keeps_cc_silently(monkeypatch):
    def find(name=None):
        if name == "tcc":
            raise sg.CompilerNotFoundError("no tcc")
        return build.Compiler("/usr/bin/cc", "gcc", "test")

    monkeypatch.setattr(build, "find_compiler", find)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _choose_compiler(*stand_in(10**7, 5000), None, True, 1.0, ("-O2",), 2).family == "gcc"


def test_call_times_are_bound_by_code_fetch_beyond_the_cache(monkeypatch):
    monkeypatch.setattr(runtime, "last_level_cache_bytes", lambda: 32 << 20)
    small, mid, big = (estimate_build(n, n // 2000, ("-O2",), 2) for n in (400_000, 1_000_000, 4_000_000))
    assert (small.regime, mid.regime, big.regime) == ("in cache", "beyond", "both beyond")
    assert small.slowdown == runtime.TCC_SLOWDOWN["in cache"] and mid.slowdown == runtime.TCC_SLOWDOWN["beyond"]
    lo, hi = runtime.CALL_SECONDS_PER_OP["tcc"]
    assert small.tcc_call == pytest.approx((lo * 400_000, hi * 400_000))
    fetch = runtime.CODE_BYTES_PER_OP["tcc"] * 1_000_000 / runtime.CODE_FETCH_BYTES_PER_SECOND
    assert mid.tcc_call == pytest.approx((fetch, fetch)) and mid.cc_call[1] < fetch / 4
    assert big.slowdown[0] == big.slowdown[1] == pytest.approx(
        runtime.CODE_BYTES_PER_OP["tcc"] / runtime.CODE_BYTES_PER_OP["gcc"], abs=0.05)
    assert mid.break_even_calls < small.break_even_calls  # the slower tcc's code, the sooner cc pays off


def test_the_cache_size_is_read_or_defaulted(monkeypatch):
    assert runtime.last_level_cache_bytes() >= 1 << 16
    runtime.last_level_cache_bytes.cache_clear()
    monkeypatch.setattr(runtime.os, "listdir", lambda path: (_ for _ in ()).throw(OSError("no sysfs")))
    try:
        assert runtime.last_level_cache_bytes() == runtime.DEFAULT_CACHE_BYTES
    finally:
        runtime.last_level_cache_bytes.cache_clear()


@pytest.mark.parametrize("n_ops, regime, ratio", [(400_000, "in cache", "1.9-4.8x"), (1_000_000, "beyond", "9-14x"),
                                                  (4_000_000, "both beyond", "about 2.4x")])
def test_the_notice_says_what_each_compiler_costs_and_how_to_choose(monkeypatch, n_ops, regime, ratio):
    monkeypatch.setattr(runtime, "last_level_cache_bytes", lambda: 32 << 20)
    e = estimate_build(n_ops, 1000, ("-O2",), 2)
    assert e.regime == regime
    text = tcc_notice("llsq_grad", e, "cc", ("-O2",), 60.0)
    for fragment in (f"llsq_grad: {n_ops:,} operations", "building them with cc -O2 would take about",
                     f"{e.cc_seconds:.0f} s", "more than compile_budget=60 s",
                     f"about {e.tcc_seconds:.1f} s", f"{ratio} slower than cc -O2's",
                     "per call instead of", "pays for itself after about", "compiler='cc'", "compiler='tcc'",
                     "larger compile_budget"):
        assert fragment in text, fragment


@pytest.mark.parametrize("value", ["60", -1, 0, 0.0, -math.inf, math.nan, True, None, [60]])
def test_compile_budget_is_validated(value):
    x = sg.symbols("x")
    with pytest.raises(sg.OptionError, match=r"compile_budget must be a positive number of seconds.*got "):
        sg.Function("f", [x], [x * 2]).compile(compile_budget=value)


def test_tcc_threshold_says_what_replaced_it():
    x = sg.symbols("x")
    with pytest.raises(sg.OptionError, match=r"tcc_threshold .* was replaced by compile_budget"):
        sg.Function("f", [x], [x * 2]).compile(tcc_threshold=10)


def test_the_default_budget_keeps_small_code_on_cc():
    x = sg.symbols("x", 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        C = sg.Function("small", [x], [sg.exp(x) * x.sum()]).compile(compile_budget=COMPILE_BUDGET)
    assert "tcc" not in C.compiler and C.options["compile_budget"] == COMPILE_BUDGET


@tcc
def test_tcc_builds_large_code_in_several_files(monkeypatch):
    """tcc gets one C file per TCC_UNIT_OPS instructions; the split library computes what the VM does."""
    monkeypatch.setattr(runtime, "TCC_UNIT_OPS", 40)
    x = sg.symbols("x", 30)
    F = sg.Function("split", [x], [sg.sin(x) * sg.exp(x[::-1]), (x * x).sum(), sg.jacobian(sg.sin(x) * x[0], x)])
    with pytest.warns(sg.BackendWarning, match="tcc builds them instead"):
        C = F.compile(compile_budget=1e-9, chunk_size=16)
    assert "tcc" in C.compiler
    units = estimate_build(C.compiled.n_ops, len(C._program.parts)).tcc_units
    assert units > 2
    pts = np.linspace(-1.0, 1.0, 30)
    got, ref = C(pts), F(pts)
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-15)
    assert got[1] == pytest.approx(ref[1], rel=1e-15) and (got[2] != ref[2]).nnz == 0


def test_the_estimate_counts_emitted_statements_not_results_copied_by_loops():
    """A glue-only Function of a map: its results are copied by loops (glue.py), so the estimate
    does not grow with the instances (it counted every stored result as an operation: a map over
    10^5 instances of 8 outputs went to tcc as "800,040 operations")."""
    from codegen import c99

    x = sg.symbols("x", 8)
    body = sg.Function("body", [x], [x * x + 1])

    def glue(n):
        X = sg.symbols("X", (n, 8))
        return c99.program(sg.Function("glue", [X], [body.map(n)(X)]))

    small, large = glue(10), glue(20_000)
    assert small.n_ops == large.n_ops < 100
    assert estimate_build(large.n_ops, len(large.parts), ("-O2",), 1).cc_seconds < 1.0
