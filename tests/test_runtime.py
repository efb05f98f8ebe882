"""CompiledFunction: calls, batch, out=, sparse outputs, threads, bad input, compiler choice."""

from __future__ import annotations

import shutil
import threading
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import symgraph as sg
from symgraph.batch import SparseBatch


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "symgraph-cache"))


def bits(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).view(np.int64)


@pytest.fixture(scope="module")
def mixed():
    x, y = sg.symbols("x", (2, 2)), sg.symbols("y")
    S = sg.SparseExpr([2, 0, 1], [1, 1, 0], [x[0, 0] * y, sg.sin(x[1, 1]), x[0, 1] - y], (3, 2))
    F = sg.Function("mixed", [x, y], [x * y, (x ** 2).sum(), S], output_names=["scaled", "sq", "sp"])
    return F, F.compile()


ARGS = (np.array([[0.5, -1.0], [2.0, 3.0]]), 1.5)


def test_same_results_and_types_as_the_vm(mixed):
    F, C = mixed
    got, ref = C(*ARGS), F(*ARGS)
    assert type(got) is tuple and len(got) == 3
    assert got[0].shape == (2, 2) and (bits(got[0]) == bits(ref[0])).all()
    assert type(got[1]) is type(ref[1]) is np.float64 and got[1] == ref[1]
    assert sp.isspmatrix_csc(got[2]) or got[2].format == "csc"
    assert (got[2].indptr == ref[2].indptr).all() and (got[2].indices == ref[2].indices).all()
    assert (bits(got[2].data) == bits(ref[2].data)).all() and got[2].shape == (3, 2)


def test_results_are_fresh_arrays(mixed):
    _, C = mixed
    first = C(*ARGS)
    C(np.zeros((2, 2)), 0.0)
    assert first[0][1, 1] == 4.5 and first[2].data.sum() != 0.0


def test_lists_ints_and_numpy_scalars_are_converted(mixed):
    F, C = mixed
    got = C([[1, 2], [3, 4]], 2)
    ref = F(np.array([[1.0, 2.0], [3.0, 4.0]]), 2.0)
    assert (got[0] == ref[0]).all() and got[1] == ref[1]
    assert C(np.float32(np.array(ARGS[0])), np.float64(1.5))[1] == F(*ARGS)[1]


def test_batch_equals_the_vm(mixed):
    F, C = mixed
    xs = np.random.default_rng(0).normal(size=(5, 2, 2))
    ys = np.linspace(-1, 1, 5)
    got, ref = C.batch(xs, ys), F.batch(xs, ys)
    assert got[0].shape == (5, 2, 2) and (bits(got[0]) == bits(ref[0])).all()
    assert (bits(got[1]) == bits(ref[1])).all()
    assert type(got[2]) is type(ref[2]) is SparseBatch and got[2].shape == ref[2].shape == (5, 3, 2)
    assert (bits(got[2].data) == bits(ref[2].data)).all()
    assert (got[2].indices == ref[2].indices).all() and (got[2].indptr == ref[2].indptr).all()
    assert all((a != b).nnz == 0 and (a.indices == b.indices).all() for a, b in zip(got[2], ref[2]))
    empty = C.batch(np.zeros((0, 2, 2)), np.zeros(0))
    assert empty[0].shape == (0, 2, 2) and empty[2].data.shape == (0, 3) and empty[2].to_list() == []


def test_out_arguments_are_filled_and_returned(mixed):
    F, C = mixed
    a, b = np.empty((2, 2)), np.empty(())
    nz = np.empty(3)
    got = C(*ARGS, out=(a, b, nz))
    ref = F(*ARGS)
    assert got[0] is a and (a == ref[0]).all() and b[()] == ref[1] and (nz == ref[2].data).all()
    mat = ref[2].copy()
    mat.data[:] = 0.0
    got = C(*ARGS, out=[None, None, mat])
    assert got[2] is mat and (mat.data == ref[2].data).all() and got[1] == ref[1]


@pytest.mark.parametrize("out, error, match", [
    ((np.empty((2, 2)),), sg.ArgumentCountError, "out= must hold 3 array"),
    ((np.empty((3, 2)), None, None), sg.ShapeError, r"out\[0\] \('scaled'\): expected shape \(2, 2\), got \(3, 2\)"),
    ((np.empty((2, 2), dtype=np.float32), None, None), sg.DTypeError, "expected a writeable float64"),
    ((None, None, np.empty(4)), sg.ShapeError, r"out\[2\] \('sp'\): expected shape \(3,\), got \(4,\)"),
])
def test_bad_out_arguments(mixed, out, error, match):
    _, C = mixed
    with pytest.raises(error, match=match):
        C(*ARGS, out=out)


@pytest.mark.parametrize("args, error, match", [
    ((ARGS[0],), sg.ArgumentCountError, r"mixed takes 2 argument\(s\) \(x, y\), got 1"),
    ((np.zeros((2, 3)), 1.0), sg.ShapeError, r"argument 0 \('x'\): expected shape \(2, 2\), got \(2, 3\)"),
    ((np.zeros(4), 1.0), sg.ShapeError, r"expected shape \(2, 2\), got \(4,\)"),
    ((ARGS[0], np.zeros(1)), sg.ShapeError, r"argument 1 \('y'\): expected shape \(\), got \(1,\)"),
    ((ARGS[0], 1.0 + 2.0j), sg.DTypeError, "is complex; compiled functions evaluate float64 only"),
    ((ARGS[0].astype(complex), 1.0), sg.DTypeError, "use the VM"),
    ((ARGS[0], "abc"), sg.DTypeError, "expected real numbers"),
    (([[1, 2], [3]], 1.0), sg.DTypeError, "cannot convert"),
])
def test_bad_input_is_refused_before_c(mixed, args, error, match):
    F, C = mixed
    with pytest.raises(error, match=match):
        C(*args)


def test_bad_batch_input(mixed):
    _, C = mixed
    with pytest.raises(sg.ShapeError, match=r"argument 1 \('y'\) has 2 points, but argument 0 \('x'\) has 3"):
        C.batch(np.zeros((3, 2, 2)), np.zeros(2))
    with pytest.raises(sg.ShapeError, match=r"expected shape \(N,\) \+ \(2, 2\) for a batch, or \(2, 2\) for a "
                                            r"value shared by all points, got \(2, 3\)"):
        C.batch(np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(sg.DTypeError, match="complex"):
        C.batch(np.zeros((1, 2, 2)), np.zeros(1, dtype=complex))


def test_threads_each_get_their_own_buffers():
    x = sg.symbols("x", 50)
    e = x
    for _ in range(20):
        e = sg.sin(e) * 1.1 + x
    F = sg.Function("heavy", [x], [e, e.sum()])
    C = F.compile(chunk_size=200)  # several parts: the work array is used
    assert C.work_size > 0
    inputs = [np.linspace(-1, 1, 50) * (k + 1) for k in range(8)]
    expected = [C(v) for v in inputs]
    failures = []

    def worker(k):
        for _ in range(300):
            got = C(inputs[k])
            if not (bits(got[0]) == bits(expected[k][0])).all():
                failures.append(k)
                return

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert (bits(expected[3][0]) == bits(F(inputs[3])[0])).all()


def test_optimize_option():
    x = sg.symbols("x")
    F = sg.Function("o", [x], [x * 2 + sg.sin(x)])
    assert F.compile(optimize=0)(0.5) == F(0.5)
    assert abs(F.compile(optimize=1)(0.5) - F(0.5)) <= 1e-15
    for bad in (-1, 1.5, True, "1"):
        with pytest.raises(sg.OptionError, match="optimize must be an optimizer level"):
            F.compile(optimize=bad)


def test_missing_compiler_is_a_clear_error_and_the_vm_still_works(monkeypatch, tmp_path):
    x = sg.symbols("x")
    F = sg.Function("nocc", [x], [x + 1])
    with pytest.raises(sg.CompileError, match="no C compiler found .*no-such-cc"):
        F.compile(compiler="no-such-cc")
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    with pytest.raises(sg.errors.CompilerNotFoundError, match=r"looked for cc, gcc, clang.*numpy VM, F\(\.\.\.\)"):
        F.compile()
    assert F(1.0) == 2.0


def test_compiler_error_carries_its_message_and_the_kept_source(tmp_path):
    x = sg.symbols("x")
    F = sg.Function("badflag", [x], [x + 1])
    with pytest.raises(sg.CompileError, match=r"(?s)failed with exit status.*no-such-option.*kept in (\S+)") as info:
        F.compile(flags=("-fno-such-option",), cache_dir=str(tmp_path))
    kept = str(info.value).rsplit("kept in ", 1)[1].strip()
    assert any(p.endswith(".c") for p in __import__("os").listdir(kept))
    with pytest.raises(sg.OptionError, match="flags must be a sequence of str"):
        F.compile(flags="-O2")


tcc = pytest.mark.skipif(shutil.which("tcc") is None,
                         reason="tcc (Tiny C Compiler) is not installed: apt-get install tcc")


@tcc
def test_tcc_tier_matches_the_vm(mixed):
    F, _ = mixed
    C = F.compile(compiler="tcc")
    assert "tcc" in C.compiler
    got, ref = C(*ARGS), F(*ARGS)
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-14)
    assert (got[2].data == ref[2].data).all()


@tcc
def test_automatic_tcc_for_code_over_the_compile_budget_says_so():
    x = sg.symbols("x", 3)
    F = sg.Function("big", [x], [sg.exp(x) * x.sum()])
    with pytest.warns(sg.errors.BackendWarning, match=r"big: \d+ operations: building them with .* would take "
                                                      r"about .*more than compile_budget=1e-09 s.*compiler='cc'"):
        C = F.compile(compile_budget=1e-9)
    assert "tcc" in C.compiler
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "tcc" not in F.compile(compile_budget=1e-9, auto_tcc=False).compiler
        assert "tcc" not in F.compile(compile_budget=1e-9, compiler="cc").compiler


def test_repr_and_source(mixed):
    F, C = mixed
    assert repr(C).startswith("CompiledFunction(mixed:")
    assert "int sgf_mixed(const double *const *arg" in C.source
