"""Large index and value tables as run-time data of JIT builds (codegen/stores.py ``Tables``, glue.py, c99.py).

``F.compile()`` generates the program with ``runtime_tables=True``: a table
of the Function's own code with at least ``RUNTIME_TABLE_MIN`` entries is not
C source but an array the CompiledFunction keeps and passes after the
inputs.  Oracles: the VM on the same Function (calls, batch, threads,
Jacobians), the source itself (the same text at n and 4n up to the digits
of n; no table data), a second Function with other index data sharing the
library, and the standalone export (inline tables, no run-time arguments).
"""

from __future__ import annotations

import re
import shutil
import threading

import numpy as np
import pytest

import symgraph as sg
from codegen import glue, stores
from codegen.c99 import program, single_file
from codegen.export import demo_inputs
from strategies import compile_and_run, module_cache  # module_cache: autouse, a cache per module

needs_cc = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler")
MIN = stores.RUNTIME_TABLE_MIN


def _body() -> sg.Function:
    """A small residual of one camera (4) and one point (3), with a weight: 2 outputs."""
    cam, pt, w = sg.symbols("cam", 4), sg.symbols("pt", 3), sg.symbols("w")
    u = (pt[0] - cam[0]) / (pt[2] + 3.0 + cam[3] ** 2)
    v = sg.atan(pt[1] * cam[1]) + cam[2] * u
    return sg.Function("resid", [cam, pt, w], [[w * (u * cam[2] - v), sg.sin(v) + pt[0]]])


def _model(n: int, seed: int, n_cams: int = 7, n_pts: int | None = None, jacobian: bool = False):
    """The bundle-adjustment-like map over ``n`` observations gathered by random camera and point indices."""
    rng = np.random.default_rng(seed)
    n_pts = n_pts or max(5, n // 4)
    cams, pts, w = sg.symbols("cams", (n_cams, 4)), sg.symbols("pts", (n_pts, 3)), sg.symbols("w", n)
    ci, pi = rng.integers(0, n_cams, n), rng.integers(0, n_pts, n)
    r = _body().map(n)(sg.gather(cams, ci), sg.gather(pts, pi), w)
    outputs = [r]
    if jacobian:
        outputs.append(sg.jacobian(r.reshape(-1), np.concatenate([cams.ravel(), pts.ravel()])))
    F = sg.Function(f"ba{n}", [cams, pts, w], outputs)
    values = (rng.uniform(-1, 1, (n_cams, 4)), rng.uniform(-1, 1, (n_pts, 3)), rng.uniform(0.5, 2, n))
    return F, values


def _same(got, want) -> None:
    got, want = (got, want) if isinstance(want, tuple) else ((got,), (want,))
    for g, w in zip(got, want):
        g = g.toarray() if hasattr(g, "toarray") else np.asarray(g)
        w = w.toarray() if hasattr(w, "toarray") else np.asarray(w)
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-15)  # libm vs numpy: ulps


# ------------------------------------------------------- 1. values, Jacobians, batch and threads


@needs_cc
def test_gathers_by_large_random_tables_equal_the_vm_and_are_not_in_the_source():
    F, values = _model(2000, seed=1, jacobian=True)
    C = F.compile()
    assert len(C.tables) >= 2 and all(len(a) >= MIN for a in C.tables)
    assert {a.dtype.name for a in C.tables} <= {"int32", "int64", "float64"}
    assert "static const int g[2000]" not in C.source and f"arg[{F.n_in}]" in C.source
    assert "static const int g[2000]" in F.c_code(optimize=1)  # the standalone C keeps them inline
    _same(C(*values), F(*values))


@needs_cc
def test_batch_calls_pass_the_tables_with_batched_and_shared_arguments():
    F, values = _model(600, seed=2)
    C = F.compile()
    assert C.tables
    rng = np.random.default_rng(3)
    cams = values[0] + 0.1 * rng.standard_normal((4,) + values[0].shape)
    got = C.batch(cams, values[1], values[2])  # one argument batched, two shared
    want = F.batch(cams, values[1], values[2])
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    for p in range(4):
        np.testing.assert_allclose(got[p], C(cams[p], values[1], values[2]), rtol=0, atol=0)


@needs_cc
def test_threads_share_the_tables():
    F, values = _model(800, seed=4)
    C = F.compile()
    want = F(*values)
    errors = []

    def work(k):
        try:
            scale = 1.0 + 0.01 * k
            got = C(values[0] * scale, values[1], values[2])
            np.testing.assert_allclose(got, F(values[0] * scale, values[1], values[2]), rtol=1e-13, atol=1e-15)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    np.testing.assert_allclose(C(*values), want, rtol=1e-13, atol=1e-15)


@needs_cc
def test_scattered_constants_and_copied_inputs_as_run_time_tables():
    # operands mixing gathered inputs with many distinct constants, and outputs that copy inputs
    # and constants at scattered places: double tables and the entry point's store tables
    n = 700
    rng = np.random.default_rng(5)
    y = sg.symbols("y", 300)
    A = sg.gather(y, rng.integers(0, 300, n)).astype(object)
    where = rng.random(n) < 0.5
    A[where] = rng.uniform(-3, 3, int(where.sum()))
    M = sg.Function("sq", [x := sg.symbols("x")], [x * x + 1.0]).map(n)
    r = M(A)
    perm = rng.permutation(2 * n)
    mixed = np.concatenate([r, y[rng.integers(0, 300, n)]])[perm].astype(object)
    spots = rng.random(2 * n) < 0.3
    mixed[spots] = rng.uniform(-5, 5, int(spots.sum()))
    F = sg.Function("mix", [y], [mixed])
    C = F.compile()
    assert any(a.dtype == np.float64 for a in C.tables)
    assert len(C.source) < 40_000
    values = rng.uniform(-1, 1, 300)
    _same(C(values), F(values))


# ------------------------------------------------------- 2. the source does not grow with n


def _digitless(text: str) -> str:
    return re.sub(r"\d+", "0", text)


@needs_cc
@pytest.mark.parametrize("jacobian", [False, True], ids=["values", "jacobian"])
def test_source_is_the_same_for_n_and_4n_up_to_the_digits_of_n(jacobian):
    small, _ = _model(500, seed=6, n_cams=5, n_pts=100, jacobian=jacobian)
    large, values = _model(2000, seed=7, n_cams=5, n_pts=400, jacobian=jacobian)
    a, b = (program(F.optimize(1), runtime_tables=True) for F in (small, large))
    sa, sb = single_file(a, small), single_file(b, large)
    assert _digitless(sa) == _digitless(sb)
    assert abs(len(sa) - len(sb)) < 400  # only the digits of n and of the table lengths differ
    assert [x.dtype for x in a.tables] == [x.dtype for x in b.tables]
    assert sum(len(x) for x in b.tables) > 3.5 * sum(len(x) for x in a.tables)
    C = large.compile()
    _same(C(*values), large(*values))


@needs_cc
def test_two_functions_differing_only_in_index_data_share_one_library():
    F1, values = _model(400, seed=8, n_cams=6, n_pts=100)
    F2, _ = _model(400, seed=9, n_cams=6, n_pts=100)  # the same shapes, other indices
    F2 = sg.Function(F1.name, F2.inputs, F2.outputs)
    C1, C2 = F1.compile(), F2.compile()
    assert C1.source == C2.source and C1.library.key == C2.library.key
    assert not all(np.array_equal(a, b) for a, b in zip(C1.tables, C2.tables))
    _same(C1(*values), F1(*values))
    _same(C2(*values), F2(*values))


def test_row_starts_in_arithmetic_progression_are_a_strided_loop():
    # results of a map whose rows are spaced wider than they are long: no table
    n = 1000
    x = sg.symbols("x", 3)
    B = sg.Function("b", [x], [[x[0] * x[1], x[1] + x[2], x[2] * 3.0, sg.sin(x[0])]])
    X = sg.symbols("X", (n, 3))
    r = B.map(n)(X)
    F = sg.Function("aff", [X], [r[:, :3]])
    p = program(F, runtime_tables=True)
    assert not p.tables and not any("static const" in part for part in p.parts)
    assert re.search(r"res\[0\]\[0 \+ 3 \* r \+ t\] = cw\[\d+ \+ 4 \* r \+ 1 \* t\]", single_file(p, F))


# ------------------------------------------------------- 3. pieces


def test_tables_choose_int32_int64_or_double():
    t = stores.Tables(3, minimum=4)
    assert t.pointer("g", np.arange(5)) == "const int *g = (const int *)arg[3];"
    assert t.pointer("g", np.array([0, 2 ** 31])) == "const long long *g = (const long long *)arg[4];"
    assert t.pointer("h", np.array([0.5, -np.inf])) == "const double *h = (const double *)arg[5];"
    assert [a.dtype.name for a in t.arrays] == ["int32", "int64", "float64"]
    assert not any(a.flags.writeable for a in t.arrays)


def test_copy_lines_with_tables_keeps_large_ones_out_of_the_text():
    rng = np.random.default_rng(10)
    n = 2 * MIN
    rows = rng.integers(0, 1000, n)
    src = (3 * rows[:, None] + np.arange(3)).reshape(-1)
    tables = stores.Tables(2)
    lines = glue.copy_lines("cw", np.arange(3 * n), np.zeros(3 * n, int), src, ["arg[0]"], [], tables=tables)
    assert lines[0] == "  { const int *g = (const int *)arg[2];"
    assert len(tables.arrays) == 1 and tables.arrays[0].tolist() == (3 * rows).tolist()
    big = glue.copy_lines("cw", np.arange(n), np.zeros(n, int), rows + 2 ** 33, ["arg[0]"], [], tables=tables)
    assert big[0] == "  { const long long *g = (const long long *)arg[3];"
    assert tables.arrays[1].dtype == np.int64 and int(tables.arrays[1][0]) == int(rows[0]) + 2 ** 33
    small = glue.copy_lines("cw", np.arange(12), np.zeros(12, int), rng.permutation(12), ["arg[0]"], [],
                            tables=tables)
    assert small[0].startswith("  { static const int g[12] = {") and len(tables.arrays) == 2


def test_affine_step():
    assert glue.affine_step(np.array([5])) == 0
    assert glue.affine_step(np.array([9, 6, 3, 0])) == -3
    assert glue.affine_step(np.array([0, 1, 3])) is None


# ------------------------------------------------------- 4. standalone C keeps its tables


@needs_cc
def test_export_keeps_inline_tables_and_its_demo_matches_the_vm(tmp_path):
    F, _ = _model(400, seed=11, n_cams=4, n_pts=120)
    paths = F.export_c(str(tmp_path))
    source = open(paths["source"]).read()
    assert "static const int g[400]" in source and f"arg[{F.n_in}]" not in source
    printed = compile_and_run(paths, tmp_path, ["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O1"])
    want = np.asarray(F(*demo_inputs(F))).reshape(-1)
    np.testing.assert_allclose(printed[0], want, rtol=1e-15, atol=0)  # %.17g round-trips


@needs_cc
def test_large_sparsity_patterns_stay_out_of_jit_builds_only():
    F, values = _model(300, seed=12, jacobian=True)
    G = F.optimize(1)
    jit, export = program(G, runtime_tables=True), program(G)
    assert "__sparsity_out1[]" not in jit.entry and "__sparsity_out1[]" in export.entry
    C = F.compile()
    _same(C(*values), F(*values))
