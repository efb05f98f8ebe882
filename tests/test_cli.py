"""The command line, run as ``python -m symgraph`` in a subprocess on real files."""

import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import symgraph as sg
from symgraph.cli import cache_entries, main

serialize = pytest.importorskip("symgraph.serialize", reason="symgraph.serialize (save/load) is not there yet")

DOT = shutil.which("dot")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def run(tmp_path):
    """Run ``symgraph ARGS`` in ``tmp_path`` with a private cache; ``(exit status, stdout, stderr)``."""
    cache = tmp_path / "cache"
    env = dict(os.environ, SYMGRAPH_CACHE_DIR=str(cache), MPLBACKEND="Agg")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")

    def go(*args, **extra):
        done = subprocess.run([sys.executable, "-m", "symgraph", *map(str, args)], cwd=tmp_path, env={**env, **extra},
                              capture_output=True, text=True, timeout=300)
        assert "Traceback" not in done.stderr, done.stderr
        return done.returncode, done.stdout, done.stderr

    go.cache = cache
    return go


def rosen(n=6):
    x, p = sg.symbols("x", n), sg.symbols("p")
    f = sum((x[i + 1] - x[i] ** 2) ** 2 for i in range(n - 1)) * p
    return sg.Function("rosen", [x, p], [f, sg.hessian(f, x), sg.grad(f, x)], output_names=["f", "H", "g"])


@pytest.fixture
def files(tmp_path):
    F = rosen()
    serialize.save(F, tmp_path / "rosen.sgf")
    x, p = sg.symbols("x", 2), sg.symbols("p")
    body = sg.Function("body", [x, p], [p * x[0] * x[1], sg.sin(x)])
    serialize.save(body.map(1000, shared=["p"]), tmp_path / "map.sgf")
    (tmp_path / "garbage.sgf").write_bytes(b"this is not a symgraph file")
    good = (tmp_path / "rosen.sgf").read_bytes()
    (tmp_path / "truncated.sgf").write_bytes(good[: len(good) // 2])
    return F


def one_error_line(code, out, err, *words):
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("symgraph: error: "), err
    for word in words:
        assert word in lines[0], (word, lines[0])


# ---------------------------------------------------------------- info


def test_info(run, files):
    code, out, err = run("info", "rosen.sgf")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "Function rosen"
    assert "  x: (6,)" in lines and "  p: scalar" in lines and "  f: scalar" in lines and "  g: (6,)" in lines
    H = files.output_sparsity[1]
    assert f"  H: (6, 6), sparse, nnz {len(H[0])}" in lines
    assert f"operations: {files.n_ops}" in lines


def test_info_json_agrees_with_the_api(run, files):
    code, out, err = run("info", "rosen.sgf", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["name"] == "rosen"
    assert data["inputs"] == [{"name": "x", "shape": [6]}, {"name": "p", "shape": []}]
    assert [o["name"] for o in data["outputs"]] == ["f", "H", "g"]
    assert data["outputs"][1] == {"name": "H", "shape": [6, 6], "sparse": True,
                                  "nnz": int(files.output_pattern(1).nnz)}
    assert data["operations"] == files.n_ops == sum(data["op_counts"].values())
    counts = np.bincount(files.tape.opcodes, minlength=len(sg.ops.OP_LIST))
    assert data["op_counts"] == {sg.ops.OP_LIST[k].name: int(c) for k, c in enumerate(counts) if c}


def test_info_of_a_map(run, files):
    code, out, err = run("info", "map.sgf")
    assert code == 0
    assert "Function body_map1000 (map of body over 1000 instances)" in out
    assert "  x: (1000, 2)" in out and "  o1: (1000, 2)" in out
    assert "  body: 4 operations" in out
    data = json.loads(run("info", "map.sgf", "--json")[1])
    assert data["functions_called"] == [{"name": "body", "kind": "function", "operations": 4}]


def test_debugprint(run, files):
    code, out, err = run("debugprint", "rosen.sgf", "--limit", "5")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "rosen: (x (6,), p) -> (f, H (6, 6), g (6,))" and lines[-1] == "... (cut at limit=5 lines)"
    code, out, _ = run("debugprint", "map.sgf")
    assert "results 0..999 of call body_map1000" in out and "x (1000, 2) [id 0..1999]" in out


# ---------------------------------------------------------------- export


def test_export_compiles_and_runs(run, files, tmp_path):
    code, out, err = run("export", "rosen.sgf", "--out", "c")
    assert code == 0, err
    paths = dict(line.split(": ", 1) for line in out.splitlines())
    assert sorted(paths) == ["demo", "header", "source"]
    for p in paths.values():
        assert (tmp_path / p).is_file()
    assert paths["source"].endswith("sgf_rosen.c")
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the exported demo")
    exe = tmp_path / "demo"
    subprocess.run([cc, "-std=c99", "-o", str(exe), str(tmp_path / paths["source"]),
                    str(tmp_path / paths["demo"]), "-lm"], check=True, capture_output=True, timeout=120)
    demo = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60, check=True).stdout
    from codegen.export import demo_inputs

    f = files(*demo_inputs(files))[0]
    assert repr(float(f)) in demo or f"{float(f):.17g}" in demo or f"{float(f):.6g}" in demo, demo[:500]
    # a second export refuses to overwrite, unless asked
    one_error_line(*run("export", "rosen.sgf", "--out", "c"), "already exist", "--overwrite")
    code, _, _ = run("export", "rosen.sgf", "--out", "c", "--overwrite", "--name", "r2", "--optimize", "0")
    assert code == 0 and (tmp_path / "c" / "sgf_r2.c").is_file()


# ---------------------------------------------------------------- draw, spy


@pytest.mark.skipif(DOT is None, reason="Graphviz's dot is not installed (apt-get install graphviz)")
def test_draw_svg_and_png(run, files, tmp_path):
    code, out, err = run("draw", "rosen.sgf", "--out", "graph.svg")
    assert code == 0 and out.strip() == "graph.svg", err
    root = ET.parse(tmp_path / "graph.svg").getroot()
    assert root.tag.endswith("svg")
    code, out, err = run("draw", "map.sgf", "--out", "map.png")
    assert code == 0, err
    assert (tmp_path / "map.png").read_bytes()[:8] == PNG_MAGIC
    code, _, _ = run("draw", "rosen.sgf", "--out", "small.dot", "--max-nodes", "5")
    assert code == 0 and "more than max_nodes=5" in (tmp_path / "small.dot").read_text()


def test_draw_without_graphviz(run, files, tmp_path):
    code, out, err = run("draw", "rosen.sgf", "--out", "graph.svg", PATH=str(tmp_path / "empty"))
    assert not (tmp_path / "graph.svg").exists()
    one_error_line(code, out, err, "apt-get install graphviz")


def test_spy(run, files, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is needed for spy (symgraph[plot])")
    code, out, err = run("spy", "rosen.sgf", "--output", "H", "--out", "h.png")
    assert code == 0, err
    assert (tmp_path / "h.png").read_bytes()[:8] == PNG_MAGIC
    code, out, err = run("spy", "rosen.sgf", "--output", "1", "--out", "h.svg")
    assert code == 0, err
    assert ET.parse(tmp_path / "h.svg").getroot().tag.endswith("svg")
    code, _, err = run("spy", "rosen.sgf", "--output", "g", "--out", "g.png")  # a dense output: one column
    assert code == 0, err
    one_error_line(*run("spy", "rosen.sgf", "--output", "7", "--out", "x.png"), "out of range", "3 output")
    one_error_line(*run("spy", "rosen.sgf", "--output", "nope", "--out", "x.png"), "no output 'nope'", "f, H, g")
    one_error_line(*run("spy", "rosen.sgf", "--output", "H", "--out", "x.txt"), "suffix")


def test_spy_positions_of_a_dense_output(files):
    from symgraph.cli import _output_positions

    s = _output_positions(files, 2)  # the gradient: every entry depends on x
    assert s.shape == (6, 1) and s.nnz == 6
    s = _output_positions(files, 1)
    assert s.nnz == files.output_pattern(1).nnz


# ---------------------------------------------------------------- cache


def fill_cache(run):
    code, _, err = run("info", "rosen.sgf")  # no cache written by info
    assert code == 0
    cache = run.cache
    env = dict(os.environ, SYMGRAPH_CACHE_DIR=str(cache))
    script = ("import symgraph as sg\n"
              "x = sg.symbols('x')\n"
              "sg.Function('f', [x], [sg.sin(x) * x]).compile()\n")
    subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True, timeout=300)
    return cache


def test_cache_info_and_clear(run, files, tmp_path):
    code, out, _ = run("cache", "info")
    assert code == 0 and f"directory: {run.cache}" in out and "entries: 0" in out
    cache = fill_cache(run)
    (cache / "notes.txt").write_text("mine")
    fresh = cache / ".probe-fresh"
    fresh.write_text("")
    mine = cache_entries(str(cache))
    libraries = [k for k, names in mine.items() if any(n.endswith(".so") for n in names)]
    assert len(libraries) >= 1
    code, out, _ = run("cache", "info")
    size = sum(os.path.getsize(cache / n) for names in mine.values() for n in names)
    entries = [k for k, names in mine.items() if k and any(not n.endswith(".lock") for n in names)]
    assert f"entries: {len(entries)} " in out and f"size: {size} bytes" in out
    assert "other files: 1" in out
    code, out, _ = run("cache", "clear")
    assert code == 0 and f"removed {len(entries)} entries" in out
    left = sorted(os.listdir(cache))
    assert left == [".probe-fresh", "notes.txt"]  # not ours, or being written now: kept
    code, out, _ = run("cache", "info")
    assert "entries: 0" in out


def test_cache_clear_keeps_entries_being_built(run, tmp_path):
    fcntl = pytest.importorskip("fcntl")
    cache = run.cache
    cache.mkdir()
    busy, idle = "b" * 64, "c" * 64
    for key in (busy, idle):
        (cache / f"{key}.so").write_bytes(b"x")
        (cache / f"{key}.lock").write_bytes(b"")
    (cache / f"build-{busy}-123").mkdir()
    with open(cache / f"{busy}.lock", "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        code, out, _ = run("cache", "clear")
    assert code == 0 and "removed 1 entries" in out and "1 being built now, kept" in out
    assert sorted(os.listdir(cache)) == [f"{busy}.lock", f"{busy}.so", f"build-{busy}-123"]


def test_cache_dir_option_and_old_temporary_files(run, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    old = other / ".fn-tmp-abc"
    old.write_text("")
    past = time.time() - 7200
    os.utime(old, (past, past))
    (other / ("d" * 64 + ".json")).write_text("{}")
    code, out, _ = run("cache", "clear", "--dir", other)
    assert code == 0 and "removed 1 entries" in out and os.listdir(other) == []


def test_cache_path_is_a_file(run, tmp_path):
    (tmp_path / "file").write_text("")
    one_error_line(*run("cache", "info", "--dir", tmp_path / "file"), "not a directory")


# ---------------------------------------------------------------- errors: one line, status 2


@pytest.mark.parametrize("args, words", [
    (["frobnicate"], ["invalid choice", "frobnicate"]),
    ([], ["no command given"]),
    (["info"], ["required", "FILE"]),
    (["info", "missing.sgf"], ["no such file", "missing.sgf"]),
    (["info", "garbage.sgf"], ["garbage.sgf", "not a symgraph file"]),
    (["info", "truncated.sgf"], ["truncated.sgf"]),
    (["info", "."], ["is a directory"]),
    (["info", "rosen.sgf", "--bogus"], ["unrecognized arguments", "--bogus"]),
    (["draw", "rosen.sgf"], ["required", "--out"]),
    (["draw", "rosen.sgf", "--out", "g.txt"], ["format"]),
    (["draw", "rosen.sgf", "--out", "g.svg", "--max-nodes", "0"], ["max-nodes", ">= 1"]),
    (["export", "rosen.sgf", "--out", "c", "--optimize", "x"], ["optimizer level"]),
    (["debugprint", "rosen.sgf", "--limit", "-2"], ["limit"]),
    (["spy", "rosen.sgf", "--out", "x.png"], ["required", "--output"]),
    (["cache", "wipe"], ["invalid choice", "wipe"]),
])
def test_errors_are_one_line(run, files, args, words):
    one_error_line(*run(*args), *words)


def test_export_into_a_file_path(run, files, tmp_path):
    (tmp_path / "taken").write_text("")
    one_error_line(*run("export", "rosen.sgf", "--out", "taken"), "not a directory")


def test_help_and_version(run):
    code, out, err = run("--help")
    assert code == 0 and err == ""
    for command in ("info", "export", "draw", "spy", "cache", "debugprint"):
        assert command in out
    code, out, _ = run("info", "--help")
    assert code == 0 and "--json" in out
    code, out, _ = run("--version")
    assert code == 0 and out.startswith("symgraph ")


def test_main_in_process(capsys, tmp_path):
    assert main(["info", str(tmp_path / "none.sgf")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file" in err
    serialize.save(rosen(3), tmp_path / "r.sgf")
    assert main(["info", str(tmp_path / "r.sgf")]) == 0
    assert "Function rosen" in capsys.readouterr().out


def test_info_draw_and_debugprint_of_native_nodes(run, tmp_path):
    A, b, p = sg.symbols("A", (10, 10)), sg.symbols("b", 10), sg.symbols("p")
    z = sg.symbols("z")
    R = sg.rootfinder("cr", sg.Function("c", [z, p], [z ** 3 + z - p]))
    grid = np.linspace(0.0, 1.0, 300)
    S = sg.interpolant("s", "linear", grid, grid ** 2)
    y = R(1.0, p) + S(p)
    sg.Function("mix", [A, b, p], [sg.linalg.solve(A, b), y, sg.grad(y, p)]).save(tmp_path / "mix.sgf")
    code, out, err = run("info", "mix.sgf")
    assert code == 0, err
    assert "solve10 x1: linear solve, LU with partial pivoting, n = 10" in out
    assert "cr x1: rootfinder, Newton with line search on c, n = 1" in out
    data = json.loads(run("info", "mix.sgf", "--json")[1])
    natives = {f["name"]: f for f in data["functions_called"] if f["kind"] == "native"}
    assert {"solve10", "cr", "s"} <= set(natives) and "body" not in natives["cr"]
    code, out, err = run("draw", "mix.sgf", "--out", "mix.svg")
    assert code == 0 and (tmp_path / "mix.svg").stat().st_size > 0, err
    code, out, err = run("debugprint", "mix.sgf")
    assert code == 0 and "calls s_table" in out, err
