"""Every script in examples/ runs to completion as a user would run it.

Examples are discovered by glob, so new ones are tested the moment they are
added.  All of them start at once (they are independent processes; on two
cores the wall time is about half the sum), each in its own temporary
working directory so nothing is written into the repository.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.py"))
TIMEOUT = 600


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One running process per example, started together."""
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1")
    procs = {}
    for path in EXAMPLES:
        cwd = tmp_path_factory.mktemp(path.stem)
        procs[path.name] = subprocess.Popen([sys.executable, str(path)], cwd=cwd, env=env, text=True,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    yield procs
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_there_are_examples():
    assert any(p.name == "quickstart.py" for p in EXAMPLES)


@pytest.mark.parametrize("name", [p.name for p in EXAMPLES])
def test_example_runs(runs, name):
    proc = runs[name]
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"examples/{name} did not finish within {TIMEOUT} s\n{out[-2000:]}\n{err[-2000:]}")
    assert proc.returncode == 0, f"examples/{name} exited with {proc.returncode}\n{out[-2000:]}\n{err[-4000:]}"
    assert out.strip(), f"examples/{name} printed nothing"
    assert "Traceback" not in err
