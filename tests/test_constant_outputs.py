"""Outputs made of constants and copied inputs (issue 15): loops, fills and tables in C, checked against the VM.

The C must equal the VM bit for bit (NaN entries: NaN; C's ``NAN`` need not
carry the VM's sign), write every entry (the exported code runs on buffers
pre-filled with a sentinel), compile with ``-pedantic -Werror``, and not
grow with the number of constant entries.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import scipy.sparse as sp

import symgraph as sg
from codegen import stores
from codegen.c99 import generate
from codegen.export import export_c

INF, NAN = float("inf"), float("nan")
STRICT = ["-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared"]
SENTINEL = 12345.0


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "symgraph-cache"))


def c(value: float) -> sg.Expr:
    return sg.const(value)


def rich_function() -> sg.Function:
    """Several outputs mixing runs, blocks, strides, copies, tables, fills and computed entries."""
    x, z, y = sg.symbols("x", 6), sg.symbols("z", 200), sg.symbols("y")
    rng = np.random.default_rng(7)
    A = np.full((40, 30), c(0.0), dtype=object)
    A[5:10, :] = x[0] * 0  # -0.0, folded at construction
    A[10:12, :], A[12, :], A[13:15, 3:20] = c(INF), c(-INF), c(NAN)
    A[np.arange(30), np.arange(30)] = c(2.5)  # a diagonal
    A[16:40, 29] = c(-1.25)  # a strided column
    A[20, 0:20] = z[0:20]  # a copied slice
    A[21, 0:20] = z[19::-1]  # reversed
    A[22:26, 0:4] = z[40:56].reshape(4, 4).T  # transposed
    A[1, 1:5] = [x[1] * 3.0, sg.sqrt(x[2]), x[3] + 0.25, x[4] * x[5]]
    A[2, :] = x[1] * x[2]  # one computed value at 30 places: a loop in a part
    cells = rng.permutation(13 * 30)[:80] + 27 * 30  # scattered, rows 27..39
    flat = A.reshape(-1)
    flat[cells[:40]] = [c(v) for v in rng.normal(size=40)]  # 40 distinct constants: a table
    flat[cells[40:]] = z[rng.permutation(200)[:40]]  # 40 scattered input elements: a table
    runs = np.array([c(0.0)] * 12 + [x[0] * 3.0] + [c(1.0)] * 9 + [x[0] * 0] * 3 + [z[5]] * 10, dtype=object)
    n_nz = 60
    values = [c(1.0)] * 20 + [x[2] * 2.0] + [c(-0.0)] * 10 + list(z[100:120]) + [c(INF)] * 9
    rows, cols = np.divmod(rng.permutation(50 * 50)[:n_nz], 50)
    S = sg.SparseExpr(rows, cols, values, (50, 50))
    outputs = [A, runs, S, c(NAN), x[0] * 0, z, np.zeros(0, dtype=object), y]
    return sg.Function("consts", [x, z, y], outputs)


def point(rng: np.random.Generator) -> list:
    return [rng.uniform(0.5, 2.0, 6), rng.normal(size=200), float(rng.normal())]


def dense(value) -> np.ndarray:
    if sp.issparse(value):
        return value.tocsc().data  # compressed-column order, as the C code stores it
    return np.asarray(value, dtype=np.float64).reshape(-1)


def assert_same(got, want) -> None:
    """Equal bit for bit, except that NaN only needs to be NaN."""
    got, want = dense(got), dense(want)
    assert got.shape == want.shape
    nan = np.isnan(want)
    assert (np.isnan(got) == nan).all()
    assert (got[~nan].view(np.int64) == want[~nan].view(np.int64)).all(), np.flatnonzero(got != want)


@pytest.fixture(scope="module")
def rich():
    return rich_function()


def test_the_source_uses_loops_fills_and_tables(rich):
    src = generate(rich)
    assert "for (long t = 0; t < 1200; ++t) res[0][t] = 0.0;" in src  # fill: 0.0 is scattered in A
    assert "res[0][124 + 31 * t] = 2.5;" in src  # the diagonal below the entries written later
    assert "res[0][509 + 30 * t] = (-1.25);" in src  # the strided column
    assert "res[0][630 + t] = arg[1][19 - t];" in src  # the reversed copy
    assert "res[0][660 + 30 * r + t] = arg[1][40 + r + 4 * t];" in src  # the transposed one
    assert "for (long t = 0; t < 30; ++t) res[0][60 + t] = v" in src  # a computed value, 30 times
    assert "res[at[t][0]][at[t][1]] = val[t];" in src  # scattered constants: one table
    assert "res[at[t][0]][at[t][1]] = arg[at[t][2]][at[t][3]];" in src  # scattered input elements: one table
    assert "blk[" not in src  # fewer than LOOP_BUDGET blocks: all loops
    assert "res[1][0 + t]" not in src and "for (long t = 0; t < 12; ++t) res[1][t] = 0.0;" in src
    assert "for (long t = 0; t < 200; ++t) res[5][t] = arg[1][t];" in src
    assert src.count("\n") < 700  # 1200 + 45 + 60 + 200 entries were as many statements


def test_compiled_matches_the_vm_bitwise_in_calls_out_and_batch(rich):
    F, C = rich, rich.compile()
    rng = np.random.default_rng(1)
    args = point(rng)
    for got, want in zip(C(*args), F(*args)):
        assert_same(got, want)
    out = [np.full(np.shape(w), SENTINEL) if not sp.issparse(w) else None for w in F(*args)]
    for got, want in zip(C(*args, out=out), F(*args)):
        assert_same(got, want)
    pts = [point(rng) for _ in range(3)]
    batch_args = [np.array([p[i] for p in pts]) for i in range(3)]
    for got, want in zip(C.batch(*batch_args), F.batch(*batch_args)):
        if not isinstance(got, np.ndarray):  # sparse outputs: one matrix per point
            assert len(got) == len(want) == 3
            for g, w in zip(got, want):
                assert_same(g, w)
        else:
            assert_same(got, want)


def run_exported(library: str, F: sg.Function, args: list) -> list[np.ndarray]:
    """Evaluate an exported, separately built library on output buffers full of a sentinel."""
    import cffi

    ffi = cffi.FFI()
    ffi.cdef(f"int sgf_{F.name}(const double *const *arg, double *const *res, double *w);"
             f"long sgf_{F.name}__work_size(void);")
    lib = ffi.dlopen(library)
    flat = [np.ascontiguousarray(a, dtype=np.float64).reshape(-1) for a in args]
    sizes = [dense(w).size for w in F(*args)]
    res = [np.full(max(1, n), SENTINEL) for n in sizes]
    work = np.zeros(max(1, getattr(lib, f"sgf_{F.name}__work_size")()))
    ptr = lambda a: ffi.cast("double *", a.ctypes.data)  # noqa: E731
    arg_p = ffi.new("double *[]", [ptr(a) for a in flat])
    res_p = ffi.new("double *[]", [ptr(r) for r in res])
    assert getattr(lib, f"sgf_{F.name}")(arg_p, res_p, ptr(work)) == 0
    return [r[:n] for r, n in zip(res, sizes)]


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
@pytest.mark.parametrize("budget", [stores.LOOP_BUDGET, 3])
def test_exported_code_is_pedantic_c99_and_writes_every_entry(rich, tmp_path, monkeypatch, budget):
    monkeypatch.setattr(stores, "LOOP_BUDGET", budget)  # 3: the blocks beyond it go to block tables
    paths = export_c(rich, str(tmp_path))
    source = open(paths["source"]).read()
    assert ("val[b];" in source and "arg[blk[b][5]]" in source) == (budget == 3)
    args = point(np.random.default_rng(2))
    want = rich(*args)
    compilers = [["gcc", *STRICT, "-ffp-contract=off"]] + ([["tcc", "-shared"]] if shutil.which("tcc") else [])
    for k, cmd in enumerate(compilers):
        library = str(tmp_path / f"lib{k}.so")
        done = subprocess.run([*cmd, paths["source"], "-o", library, "-lm"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        for got, ref in zip(run_exported(library, rich, args), want):
            assert_same(got, ref)


def sized_function(rows: int) -> sg.Function:
    """A rows x 100 output: 24 live entries, the rest constants (runs, a column, a row) and a copied input."""
    x, z = sg.symbols("x", 24), sg.symbols("z", rows)
    M = np.full((rows, 100), c(0.0), dtype=object)
    M[:, 1] = x[0] * 0
    M[:, 2] = c(1.0)
    M[rows // 2, :] = c(INF)
    M[:, 3] = z
    M.reshape(-1)[5 + 41 * np.arange(24)] = [sg.sqrt(v) for v in x]  # within the first 10 rows
    return sg.Function("sized", [x, z], [M, np.full(rows * 10, c(-2.0), dtype=object)])


def test_source_size_does_not_grow_with_constant_entries():
    small, large = generate(sized_function(10)), generate(sized_function(1000))
    assert len(large) - len(small) < 600  # only the numbers in loop bounds and shapes get longer
    assert len(large) < 20_000  # 10^5 + 10^4 entries, of which 24 computed


def test_same_graph_gives_the_same_source():
    assert generate(rich_function()) == generate(rich_function())


def cover(j: np.ndarray, m: np.ndarray) -> None:
    """The blocks of (j, m) tile the items in order and reproduce every position and source index."""
    at = 0
    for b in stores.blocks(j, m):
        assert b.first == at and b.size > 0
        r, t = np.divmod(np.arange(b.size), b.cols)
        assert (j[at:at + b.size] == b.j0 + b.js * r + t).all()
        assert (m[at:at + b.size] == b.m0 + b.ms * r + b.d * t).all()
        at += b.size
    assert at == len(j)


def test_blocks_reproduce_random_entries():
    rng = np.random.default_rng(3)
    for trial in range(200):
        n = int(rng.integers(1, 300))
        j = np.sort(rng.choice(400, size=min(n, 400), replace=False) if trial % 2 else
                    rng.choice(2000, size=n, replace=False))
        pieces = np.cumsum(rng.integers(0, 2, size=len(j)))  # affine pieces of source indices
        m = np.where(pieces % 3 == 0, 0, np.where(pieces % 3 == 1, j, 500 - 2 * j))
        cover(j, m)


@pytest.mark.parametrize("j, m, shape", [
    (np.arange(5, 105), np.zeros(100, int), [(1, 100)]),  # a run
    (np.arange(12).reshape(3, 4)[:, 1:].reshape(-1), np.zeros(9, int), [(3, 3)]),  # a rectangle
    (np.arange(10) * 11, np.zeros(10, int), [(10, 1)]),  # a diagonal
    (np.arange(20), np.arange(20)[::-1], [(1, 20)]),  # a reversed copy
    (np.arange(16), np.arange(16).reshape(4, 4).T.reshape(-1), [(4, 4)]),  # a transposed copy
])
def test_regular_patterns_are_one_block(j, m, shape):
    found = stores.blocks(j, m)
    assert [(b.rows, b.cols) for b in found] == shape
    cover(np.asarray(j), np.asarray(m))


def test_zero_outputs_and_constant_only_functions_compile():
    F = sg.Function("nothing", [sg.symbols("x", 2)], [])
    assert F.compile()(np.ones(2)) == ()
    G = sg.Function("only", [sg.symbols("x", 2)], [np.full(50, c(-0.0), dtype=object), c(INF)])
    for got, want in zip(G.compile()(np.ones(2)), G(np.ones(2))):
        assert_same(got, want)
