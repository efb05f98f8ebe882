"""Tiered compilation (issue 13): tcc's code at once, the optimizing compiler's in the background.

The optimizing compiler is replaced, through PATH, by small shell scripts
named ``cc``: one that waits before running gcc (so the fast tier is
observed for a while), one that fails, one that hangs (for interpreter exit).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import symgraph as sg
from codegen import build, runtime

pytestmark = pytest.mark.skipif(shutil.which("tcc") is None or shutil.which("gcc") is None,
                                reason="tiers need tcc and gcc")
GCC = shutil.which("gcc")


def fake_cc(tmp_path, body: str) -> str:
    """A directory holding a ``cc`` script (``--version`` answered by gcc) to put first on PATH."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    script = folder / "cc"
    script.write_text(f'#!/bin/sh\ncase "$1" in --version) exec {GCC} --version;; esac\n{body}\n')
    script.chmod(0o755)
    return str(folder)


@pytest.fixture
def slow_cc(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", fake_cc(tmp_path, f'sleep 1\nexec {GCC} "$@"') + os.pathsep + os.environ["PATH"])
    build.clear_memory_cache()
    return tmp_path


def model(name: str, n: int = 8):
    x = sg.symbols("x", n)
    f = np.sum(sg.sin(x[1:] * x[:-1]) + sg.exp(x[:-1] / 4) * x[1:] ** 2)
    return sg.Function(name, [x], [f, sg.grad(f, x)])


def check(F, C, v):
    value, grad = C(v)
    ref = F(v)
    assert value == pytest.approx(float(ref[0]), rel=1e-13)
    np.testing.assert_allclose(grad, ref[1], rtol=1e-13, atol=1e-15)


def test_auto_starts_on_tcc_and_switches_to_the_optimized_code(slow_cc, caplog):
    F = model("tiers_switch")
    with caplog.at_level(logging.INFO, logger="symgraph"):
        C = F.compile(cache_dir=str(slow_cc / "cache"), tier="auto")
        assert C.tier == "fast" and "tcc" in C.compiler
        check(F, C, np.linspace(-1, 1, 8))
        assert C.wait(120) and C.tier == "best" and C.compiler.endswith("/cc") and C.upgrade_error is None
    check(F, C, np.linspace(-1, 1, 8))
    assert any("switched from the fast tier (tcc) to the best tier" in r.getMessage() for r in caplog.records)
    # the next compile finds the optimized code first: no tcc, no thread
    build.clear_memory_cache()
    again = F.compile(cache_dir=str(slow_cc / "cache"), tier="auto")
    assert again.tier == "best" and again._upgrade_done is None


def calls_during_the_switch(F, C, n: int) -> set:
    """Call ``C`` (plain, ``out=``, batch) from 4 threads, checking every value against ``F``, until it has
    switched to the best tier and its upgrade is done; the tiers seen before calls."""
    seen, errors = set(), []
    rng = np.random.default_rng(0)
    points = [rng.normal(size=n) for _ in range(16)]
    refs = [F(v) for v in points]
    stop = time.monotonic() + 120

    def work():
        try:
            while time.monotonic() < stop:
                for v, (value, grad) in zip(points, refs):
                    before = C.tier
                    got = C(v)
                    seen.add(before)
                    assert got[0] == pytest.approx(float(value), rel=1e-13)
                    np.testing.assert_allclose(got[1], grad, rtol=1e-13, atol=1e-15)
                    out = (np.empty(()), np.empty(n))
                    C(v, out=out)
                    np.testing.assert_allclose(out[1], grad, rtol=1e-13, atol=1e-15)
                    assert C.batch(np.stack([v, v]))[1].shape == (2, n)
                if "best" in seen and C.wait(0):
                    return
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    return seen


def test_the_switch_under_concurrent_calls(slow_cc):
    F = model("tiers_threads", 12)
    C = F.compile(cache_dir=str(slow_cc / "cache"), tier="auto")
    seen = calls_during_the_switch(F, C, 12)
    assert seen == {"fast", "best"} and C.tier == "best"


def test_fast_and_best_pin_one_tier(tmp_path):
    F = model("tiers_pinned")
    fast = F.compile(cache_dir=str(tmp_path), tier="fast")
    best = F.compile(cache_dir=str(tmp_path), tier="best")
    assert fast.tier == "fast" and "tcc" in fast.compiler and fast._upgrade_done is None
    assert best.tier == "best" and "tcc" not in best.compiler
    v = np.linspace(0.0, 2.0, 8)
    check(F, fast, v)
    check(F, best, v)


def test_a_named_compiler_pins_the_code_even_with_auto(tmp_path):
    F = model("tiers_named")
    C = F.compile(cache_dir=str(tmp_path), tier="auto", compiler="gcc")
    assert C.tier == "best" and C._upgrade_done is None


def test_without_tcc_auto_is_best_and_fast_is_refused(tmp_path, monkeypatch):
    real = build.find_compiler

    def no_tcc(name=None):
        if name == "tcc":
            raise sg.CompilerNotFoundError("no tcc here")
        return real(name)

    monkeypatch.setattr(build, "find_compiler", no_tcc)
    F = model("tiers_no_tcc")
    C = F.compile(cache_dir=str(tmp_path), tier="auto")
    assert C.tier == "best" and C._upgrade_done is None
    with pytest.raises(sg.CompilerNotFoundError, match=r"tier='fast'\) needs tcc"):
        F.compile(cache_dir=str(tmp_path), tier="fast")


def test_a_failed_background_build_keeps_the_fast_tier_and_warns_once(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", fake_cc(tmp_path, 'echo "cc: internal compiler error: boom" >&2\nexit 4')
                       + os.pathsep + os.environ["PATH"])
    build.clear_memory_cache()
    F = model("tiers_fails")
    with pytest.warns(sg.BackendWarning, match="background failed, so the tcc code keeps running") as record:
        C = F.compile(cache_dir=str(tmp_path / "cache"), tier="auto")
        assert C.wait(120)
    assert len(record) == 1 and record[0].filename == __file__
    assert "boom" in str(record[0].message) and isinstance(C.upgrade_error, sg.CompileError)
    assert C.tier == "fast"
    check(F, C, np.linspace(-1, 1, 8))
    # tier="best" asked for: the same failure is a CompileError
    with pytest.raises(sg.CompileError, match="boom"):
        F.compile(cache_dir=str(tmp_path / "cache"), tier="best")


def test_a_full_disk_in_the_background_keeps_the_fast_tier(slow_cc, monkeypatch):
    original = build._write_text

    def full(path, text):
        if "build-" in path and threading.current_thread().name.startswith("symgraph-upgrade"):
            raise OSError(28, "No space left on device")
        return original(path, text)

    monkeypatch.setattr(build, "_write_text", full)
    F = model("tiers_full")
    with pytest.warns(sg.BackendWarning, match="disk or quota is full"):
        C = F.compile(cache_dir=str(slow_cc / "cache"), tier="auto")
        assert C.wait(120)
    assert C.tier == "fast"
    check(F, C, np.linspace(-1, 1, 8))


HANG = """
    import os, signal, sys, time
    import numpy as np, symgraph as sg
    x = sg.symbols("x", 5)
    F = sg.Function("tiers_exit", [x], [sg.exp(x).sum() * x[0]])
    C = F.compile(tier="auto")
    assert float(C(np.zeros(5))) == 0.0
    while not os.path.exists(os.environ["PIDFILE"]):
        time.sleep(0.05)
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the optimizing build runs
    time.sleep(30)
"""


def test_interrupting_python_during_a_background_build_leaves_nothing_behind(tmp_path):
    pidfile = tmp_path / "cc.pid"
    folder = fake_cc(tmp_path, f'echo $$ > {pidfile}.tmp && mv {pidfile}.tmp {pidfile}\nexec sleep 60')
    cache = tmp_path / "cache"
    env = dict(os.environ, PATH=folder + os.pathsep + os.environ["PATH"], SYMGRAPH_CACHE_DIR=str(cache),
               PIDFILE=str(pidfile))
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(HANG)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0 and "KeyboardInterrupt" in done.stderr
    assert time.monotonic() - start < 40, "exit waited for the background compiler (it sleeps 60 s)"
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), "the compiler outlived the interpreter"
    names = os.listdir(cache)
    assert not [n for n in names if n.startswith(("build-", build.ENTRY_TMP_PREFIX, "failed"))], names
    # only the fast tier's complete entry (library, checksum, lock, function entry) remains
    assert sum(n.endswith(".so") for n in names) == 1 and sum(n.startswith(build.ENTRY_PREFIX) for n in names) == 1


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return not any(line.startswith("State:") and "Z" in line for line in fh)
    except FileNotFoundError:
        return False


def test_nlp_starts_on_the_fast_tier_and_solves_correctly(slow_cc, monkeypatch):
    pytest.importorskip("cyipopt")
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(slow_cc / "nlp-cache"))  # cold: no earlier run's entries
    x = sg.symbols("x", 3)
    f = (x[0] - 1) ** 2 + 10 * (x[1] - x[0] ** 2) ** 2 + (x[2] - 0.5) ** 2
    nlp = sg.NLP(x=x, f=f, g=x[0] + x[1] + x[2], name="tiers_nlp")
    assert {C.tier for C in nlp._eval.values()} == {"fast"}
    sol = nlp.solve_ipopt([0.0, 0.0, 0.0], lbg=1.0, ubg=1.0)
    for C in nlp._eval.values():
        assert C.wait(120)
    assert {C.tier for C in nlp._eval.values()} == {"best"}
    again = nlp.solve_ipopt([0.0, 0.0, 0.0], lbg=1.0, ubg=1.0)
    assert sol.success and again.success
    np.testing.assert_allclose(again.x, sol.x, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("interp_min", [runtime.INTERP_MIN, 1])  # 1: large enough for the interpreter tier,
def test_no_optimizing_compiler_keeps_tcc_and_warns(tmp_path, monkeypatch, interp_min):  # which steps aside
    monkeypatch.setattr(runtime, "INTERP_MIN", interp_min)
    real = build.find_compiler

    def tcc_only(name=None):
        if name != "tcc":
            raise sg.CompilerNotFoundError("no C compiler found (looked for cc, gcc, clang on PATH)")
        return real(name)

    monkeypatch.setattr(build, "find_compiler", tcc_only)
    F = model("tiers_tcc_only")
    with pytest.warns(sg.BackendWarning, match="no C compiler found") as record:
        C = F.compile(cache_dir=str(tmp_path), tier="auto")
    assert record[0].filename == __file__ and C.tier == "fast" and C.wait(0)
    assert isinstance(C.upgrade_error, sg.CompilerNotFoundError)
    check(F, C, np.linspace(-1, 1, 8))


def test_a_large_function_starts_on_unoptimized_fast_code_and_switches_to_optimized(tmp_path, monkeypatch):
    x = sg.symbols("x", 4)
    y = (x + 0.0) * 1.0 + x * x - x * x          # the optimizer removes work here
    F = sg.Function("tiers_unoptimized", [x], [(y * 2).sum(), y])
    monkeypatch.setattr(runtime, "FAST_UNOPTIMIZED_MIN", 1)   # "large" for this test
    C = F.compile(cache_dir=str(tmp_path), tier="auto")
    fast_ops = C._code.n_ops                          # compiled as given: no optimizer before the first result
    assert C.tier == "fast" and fast_ops >= F.n_ops - F.tape.n_input_scalars
    v = np.linspace(-1.0, 1.0, 4)
    check(F, C, v)
    assert C.wait(120) and C.tier == "best" and C._code.n_ops < fast_ops   # the background build optimized it
    check(F, C, v)
