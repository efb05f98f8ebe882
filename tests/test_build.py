"""The build cache (codegen.build): hits across processes, concurrency, corruption, fallbacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import symgraph as sg
from codegen import build

# A child process: compile one Function, check its value, print what the cache did.
CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np, symgraph as sg
    from codegen import build
    x = sg.symbols("x", 4)
    F = sg.Function("cached", [x], [sg.exp(x) * x.sum(), sg.sin(x[0]) ** 3])
    C = F.compile()
    v = np.linspace(-1.0, 2.0, 4)
    got, ref = C(v), F(v)
    assert np.array_equal(got[0], ref[0]) and abs(got[1] - ref[1]) <= 1e-15
    print(json.dumps({"stats": build.STATS, "hit": C.cache_hit, "path": C.library.path}))
""")


def run_child(cache: str) -> subprocess.Popen:
    env = dict(os.environ, SYMGRAPH_CACHE_DIR=cache)
    return subprocess.Popen([sys.executable, "-c", CHILD], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_second_compile_in_a_new_process_is_a_cache_hit(tmp_path):
    first = result(run_child(str(tmp_path)))
    assert first["stats"]["compiles"] == 1 and not first["hit"]
    second = result(run_child(str(tmp_path)))
    assert second["stats"]["compiles"] == 0 and second["stats"]["disk_hits"] == 1 and second["hit"]
    assert second["path"] == first["path"] and second["path"].startswith(str(tmp_path))


def test_two_processes_compiling_at_once_both_succeed_and_build_once(tmp_path):
    procs = [run_child(str(tmp_path)) for _ in range(2)]
    results = [result(p) for p in procs]
    assert sum(r["stats"]["compiles"] for r in results) == 1  # the file lock serializes the build
    assert len({r["path"] for r in results}) == 1
    assert not any(name.startswith("build-") for name in os.listdir(tmp_path))  # no leftovers


@pytest.mark.parametrize("damage", ["truncate", "garbage_meta", "delete_meta"])
def test_a_corrupt_entry_is_detected_and_rebuilt(tmp_path, damage):
    first = result(run_child(str(tmp_path)))
    path = first["path"]
    meta = path[:-3] + ".json"
    if damage == "truncate":
        size = os.path.getsize(path)
        with open(path, "r+b") as fh:
            fh.truncate(size // 2)
    elif damage == "garbage_meta":
        with open(meta, "w") as fh:
            fh.write("{not json")
    else:
        os.remove(meta)
    again = result(run_child(str(tmp_path)))
    assert again["stats"]["compiles"] == 1 and not again["hit"]  # rebuilt, and the value check passed
    with open(meta) as fh, open(path, "rb") as so:
        import hashlib
        assert json.load(fh)["sha256"] == hashlib.sha256(so.read()).hexdigest()
    assert result(run_child(str(tmp_path)))["stats"]["compiles"] == 0


def test_memory_hit_in_the_same_process(tmp_path):
    x = sg.symbols("x")
    F = sg.Function("mem", [x], [sg.cos(x)])
    a = F.compile(cache_dir=str(tmp_path))
    b = F.compile(cache_dir=str(tmp_path))
    assert b.library.source == "memory" and b.cache_hit and a.library.key == b.library.key
    assert b(0.0) == 1.0


def test_key_depends_on_flags_compiler_and_source(tmp_path):
    cc = build.find_compiler()
    units = [("a.c", "int a(void) { return 1; }\n")]
    k = build.cache_key(units, "", cc, ["-O2"])
    assert k == build.cache_key(units, "", cc, ["-O2"])
    assert k != build.cache_key(units, "", cc, ["-O3"])
    assert k != build.cache_key([("a.c", "int a(void) { return 2; }\n")], "", cc, ["-O2"])
    other = build.Compiler(cc.path, cc.family, cc.version + " (patched)")
    assert k != build.cache_key(units, "", other, ["-O2"])


def test_unwritable_cache_dir_falls_back_to_a_temporary_dir_with_a_warning(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    wanted = str(blocker / "cache")  # cannot be created, even by root
    x = sg.symbols("x")
    F = sg.Function("fallback", [x], [x * 5])
    with pytest.warns(sg.errors.BackendWarning, match=r"cache directory .*file/cache is not writable.*temporary"):
        C = F.compile(cache_dir=wanted)
    assert float(C(2.0)) == 10.0
    assert not C.library.path.startswith(wanted)
    assert os.path.isfile(C.library.path)


def test_env_variable_sets_the_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path / "env-cache"))
    assert build.cache_dir() == str(tmp_path / "env-cache")
    x = sg.symbols("x")
    C = sg.Function("envdir", [x], [x - 3]).compile()
    assert C.library.path.startswith(str(tmp_path / "env-cache")) and float(C(1.0)) == -2.0


def test_large_code_is_split_into_translation_units_compiled_in_parallel(tmp_path):
    x = sg.symbols("x", 60)
    e = x
    for _ in range(30):
        e = sg.sin(e) + x
    F = sg.Function("split", [x], [e])
    C = F.compile(chunk_size=100, jobs=2, cache_dir=str(tmp_path))
    meta = json.load(open(C.library.path[:-3] + ".json"))
    assert len(meta["units"]) == 2
    v = np.linspace(-1, 1, 60)
    assert np.array_equal(C(v), F(v))
