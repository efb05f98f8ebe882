"""Work in a forked child (symgraph/forked.py) and sg.NLP's Hessian built there.

The oracle is the same work done in this process: the child's result must be
equal (bit for bit, Tape for Tape), and any failure of the child must give
the result (or the exception) of the work run here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import symgraph as sg
from symgraph import forked, tiled



def needs_fork():
    if not forked.available():
        pytest.skip("no fork here (not Linux, one CPU, or another thread running): "
                    "test_the_fork_tests_run_in_a_fresh_process runs them where threads are the reason")


def fork_possible_without_threads() -> bool:
    """Linux with two or more CPUs: a process without other threads would fork."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return sys.platform.startswith("linux") and hasattr(os, "fork") and cpus >= 2 \
        and os.environ.get(forked.ENVIRONMENT, "1") != "0"


def test_the_fork_tests_run_in_a_fresh_process():
    """In a full test run other tests leave threads behind (compile upgrades, dask), so the tests above
    skip there; this runs the module again in a fresh interpreter, where they must all run and pass."""
    if os.environ.get("SYMGRAPH_FORK_SUBRUN"):
        pytest.skip("this is the fresh process")
    if forked.available():
        pytest.skip("the fork tests ran in this process")
    if not fork_possible_without_threads():
        pytest.skip("no fork on this machine (not Linux, or one CPU)")
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", str(Path(__file__))],
                          env=dict(os.environ, SYMGRAPH_FORK_SUBRUN="1"), cwd=root, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert "passed" in summary and summary.count("skipped") <= 1, done.stdout[-4000:]


def test_a_forked_job_returns_the_childs_value():
    needs_fork()
    parent = os.getpid()
    job = forked.start(lambda: (os.getpid(), np.arange(5.0)))
    assert job.forked
    pid, values = job.result()
    assert pid != parent and values.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert job.result()[0] == pid  # asked twice: the same value


def test_without_fork_the_work_runs_here_when_asked(monkeypatch):
    monkeypatch.setenv(forked.ENVIRONMENT, "0")
    ran = []
    job = forked.start(lambda: ran.append(os.getpid()) or 7)
    assert not job.forked and ran == []
    assert job.result() == 7 and ran == [os.getpid()]


def test_another_running_thread_means_no_fork():
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert not forked.available()
        assert not forked.start(lambda: 1).forked
    finally:
        stop.set()
        t.join()


def test_an_exception_in_the_work_is_raised_here_as_without_a_child():
    needs_fork()

    def work():
        raise sg.ShapeError("bad shape (in the work)")

    job = forked.start(work)
    assert job.forked
    with pytest.raises(sg.ShapeError, match="in the work"):
        job.result()


def test_a_child_that_dies_gives_the_result_computed_here():
    needs_fork()
    parent = os.getpid()

    def work():
        if os.getpid() != parent:
            os._exit(3)  # the child dies without an answer
        return "computed here"

    assert forked.start(work).result() == "computed here"


def test_an_unpicklable_result_is_computed_here():
    needs_fork()
    job = forked.start(lambda: (lambda: 1))  # a lambda does not pickle
    assert callable(job.result()) and job.result()() == 1


def test_cancel_leaves_no_child_behind():
    needs_fork()
    import time

    job = forked.start(lambda: time.sleep(60))
    pid = job._pid
    job.cancel()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def cartpole_like(n: int):
    """An unrolled pendulum-on-cart model: n intervals, RK2 steps, defects as constraints."""
    X, U = sg.symbols("X", (n + 1, 2)), sg.symbols("U", n)
    rows = []
    with sg.building():
        for k in range(n):
            q, u = X[k], U[k]

            def rate(s, u=u):
                return np.array([s[1], -sg.sin(s[0]) + u * sg.cos(s[0]) - 0.1 * s[1]], dtype=object)

            mid = q + 0.05 * rate(q)
            end = q + 0.1 * rate(mid)
            rows.extend(end - X[k + 1])
    w = np.concatenate([X.reshape(-1), U])
    g = np.array(rows + [X[0, 0] - 0.0, X[0, 1], X[n, 0] - np.pi, X[n, 1]], dtype=object)
    return w, (U * U).sum() * 0.1, g


def test_nlp_hessian_from_the_child_equals_the_one_built_here(monkeypatch, tmp_path):
    needs_fork()
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tiled, "FORK_MIN_NODES", 50)
    w, f, g = cartpole_like(12)
    made = []
    real = forked.start
    monkeypatch.setattr(forked, "start", lambda work: made.append(real(work)) or made[-1])
    nlp = sg.NLP(w, f, g, name="forked_nlp", jit=False)
    H = nlp.functions["hess_l"]
    assert made and made[0].forked
    monkeypatch.setenv(forked.ENVIRONMENT, "0")
    here = sg.NLP(w, f, g, name="forked_nlp", jit=False)
    H0 = here.functions["hess_l"]
    assert H.tape.opcodes.tolist() == H0.tape.opcodes.tolist()
    assert np.array_equal(H.tape.operands, H0.tape.operands) and np.array_equal(H.tape.constants, H0.tape.constants)
    np.testing.assert_array_equal(nlp.hessian_structure.rows, here.hessian_structure.rows)
    np.testing.assert_array_equal(nlp.hessian_structure.cols, here.hessian_structure.cols)
    rng = np.random.default_rng(2)
    args = (rng.normal(size=len(w)), np.zeros(0), 1.3, rng.normal(size=len(g)))
    np.testing.assert_array_equal(H(*args), H0(*args))
    # the outputs are rebuilt from the Tape on first use: the Hessian against a Hessian of the Exprs
    L = 1.3 * f + args[3] @ g
    dense = sg.Function("L", [w], [sg.hessian(L, w)]).__call__(args[0])
    dense = dense.toarray() if hasattr(dense, "toarray") else np.asarray(dense)
    got = np.zeros((len(w), len(w)))
    got[nlp.hessian_structure.rows, nlp.hessian_structure.cols] = H(*args)
    np.testing.assert_allclose(np.tril(dense), got, rtol=1e-12, atol=1e-12)


def test_nlp_with_a_forked_hessian_solves_like_without(monkeypatch, tmp_path):
    needs_fork()
    pytest.importorskip("cyipopt")
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tiled, "FORK_MIN_NODES", 50)
    w, f, g = cartpole_like(10)
    nlp = sg.NLP(w, f, g, name="forked_solve")
    sol = nlp.solve_ipopt(np.zeros(len(w)), lbg=0.0, ubg=0.0)
    monkeypatch.setenv(forked.ENVIRONMENT, "0")
    ref = sg.NLP(w, f, g, name="forked_solve_ref").solve_ipopt(np.zeros(len(w)), lbg=0.0, ubg=0.0)
    assert sol.success and ref.success
    np.testing.assert_allclose(sol.x, ref.x, rtol=1e-9, atol=1e-10)
