"""Issue 9 (hardening), the C backend: one regression test per reproducer of /work/shared/repro/hardening.

Each test asserts the correct behaviour against an oracle (the VM, a closed
form, the file system), not only that nothing crashes.
"""

from __future__ import annotations

import copy
import errno
import json
import multiprocessing
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import cffi
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import example, given, settings
from hypothesis import strategies as st

import symgraph as sg
from codegen import build
from codegen.c99 import generate, program
from codegen.export import export_c
from codegen.names import c_identifier

STRICT = ["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror"]
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "symgraph-cache"))


def ulps(a, b) -> np.ndarray:
    """Distance between float64 values in units in the last place (0 and -0 equal; inf one past the max)."""
    def ordered(v):
        i = np.asarray(v, dtype=np.float64).view(np.int64)
        return np.where(i < 0, -(i & 0x7FFFFFFFFFFFFFFF), i).astype(np.float64)
    return np.abs(ordered(a) - ordered(b))


def child(code: str, cache: str, timeout: float = 240, **popen) -> subprocess.CompletedProcess:
    env = dict(os.environ, SYMGRAPH_CACHE_DIR=cache)
    env.update(popen.pop("env", {}))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,
                          text=True, timeout=timeout, **popen)


# ---------------------------------------------------------------- item 4: out=

@pytest.fixture(scope="module")
def jac():
    x = sg.symbols("x", 3)
    J = sg.jacobian(np.array([x[0] * x[1], x[2]]), x)
    F = sg.Function("hard_jac", [x], [x * 2.0, J], output_names=["twice", "J"])
    return F, F.compile()


XV = np.array([1.0, 2.0, 3.0])


def test_sparse_out_with_the_same_shape_and_nnz_but_another_pattern_is_refused(jac):
    F, C = jac
    other = sp.csc_matrix((np.full(3, 7.0), ([1, 1, 0], [0, 1, 2])), shape=(2, 3))
    assert other.nnz == F(XV)[1].nnz and other.shape == (2, 3)
    with pytest.raises(sg.ShapeError, match=r"out\[1\] \('J'\): the csc_matrix has another sparsity pattern"):
        C(XV, out=[None, other])
    assert (other.data == 7.0).all()  # untouched
    same = F(XV)[1].copy()
    same.data[:] = 0.0
    got = C(XV, out=[None, same])
    assert got[1] is same and (same.toarray() == F(XV)[1].toarray()).all()


def test_out_is_validated_entirely_before_anything_is_written(jac):
    _, C = jac
    o0 = np.full(3, -1.0)
    with pytest.raises(sg.ShapeError, match=r"out\[1\] \('J'\): expected shape \(3,\), got \(5,\)"):
        C(XV, out=[o0, np.empty(5)])
    bad_pattern = sp.csc_matrix((np.zeros(3), ([1, 1, 0], [0, 1, 2])), shape=(2, 3))
    with pytest.raises(sg.ShapeError, match="another sparsity pattern"):
        C(XV, out=[o0, bad_pattern])
    with pytest.raises(sg.DTypeError):
        C(XV, out=(o0, np.empty(3, dtype=np.float32)))
    assert (o0 == -1.0).all()  # out[0] was valid, but nothing was written
    nz = np.empty(3)
    got = C(XV, out=[o0, nz])
    assert got[0] is o0 and (o0 == 2 * XV).all() and (nz == C(XV)[1].data).all()


# ---------------------------------------------------------------- item 5: re-entrant arguments

def test_an_argument_that_calls_the_same_compiled_function_while_converted():
    u, v, s = sg.symbols("u", 2), sg.symbols("v", 2), sg.symbols("s")
    F = sg.Function("hard_reenter", [u, v, s], [u + 10 * v + s, s * 2.0])
    C = F.compile()

    class Lazy:  # computed on demand by the same compiled function
        def __init__(self, scalar=False):
            self.scalar = scalar

        def __array__(self, dtype=None, copy=None):
            got = C(np.array([100.0, 200.0]), np.zeros(2), 0.5)
            return np.asarray(got[1] if self.scalar else got[0])

    a = np.array([1.0, 2.0])
    for args in [(a, Lazy(), 3.0), (Lazy(), a, Lazy(scalar=True)), (a, a, Lazy(scalar=True))]:
        ref = F(*args)
        got = C(*args)
        assert (got[0] == ref[0]).all() and got[1] == ref[1]
        o = (np.empty(2), np.empty(()))
        C(*args, out=o)
        assert (o[0] == ref[0]).all() and o[1] == ref[1]
    assert (C(a, a, 1.0)[0] == F(a, a, 1.0)[0]).all()  # the buffers are intact afterwards


# ---------------------------------------------------------------- item 7: integer powers

POWERS = sorted(set(range(-40, 41)) | {-2048, -1025, -1024, -1023, -513, -512, -100, -64, 64, 100, 127, 128,
                                      255, 256, 511, 512, 513, 1000, 1023, 1024, 1025, 2048} - {0, 1})


@pytest.fixture(scope="module")
def powers():
    x = sg.symbols("x")
    F = sg.Function("hard_powers", [x], [np.array([sg.apply(sg.OPS["powi"], x, float(n)) for n in POWERS],
                                                  dtype=object)])
    return F, F.compile(optimize=0)


@settings(max_examples=120)
@given(x=st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.floats(0.5, 2.0),
                   st.floats(0.999, 1.001), st.floats(-2.0, -0.5)),
       n=st.sampled_from(POWERS))
@example(x=1.0004385113714864, n=1024)
@example(x=1.0004385113714864, n=-1024)
@example(x=2.0, n=-1024)
@example(x=1e160, n=-2)
def test_compiled_integer_powers_are_within_a_few_ulps_of_the_vm(powers, x, n):
    F, C = powers
    k = POWERS.index(n)
    got, ref = C(x)[k], F(x)[k]
    assert ulps(got, ref) <= 3, (x, n, got, ref)


def test_the_powers_of_the_reproducer_are_exact_to_the_vm(powers):
    F, C = powers
    k = POWERS.index(-1024)
    assert C(2.0)[k] == F(2.0)[k] == 2.0 ** -1024  # 5.56e-309, not 0 from 1/(2**1024)
    assert ulps(C(1.0004385113714864)[POWERS.index(1024)], 1.0004385113714864 ** 1024) <= 1


# ---------------------------------------------------------------- item 8: -ffast-math stays local

def test_a_fast_math_function_does_not_change_floating_point_for_the_process(tmp_path):
    done = child("""
        import numpy as np, symgraph as sg
        x = sg.symbols("x")
        F = sg.Function("tiny", [x], [x / 1e10])
        C = F.compile()
        fast = [sg.Function("fm" + str(k), [x], [x * 2.0 + k]).compile(flags=flags)
                for k, flags in enumerate([("-O2", "-ffast-math"), ("-Ofast",), ("-O2", "-funsafe-math-optimizations")])]
        assert [float(f(1.5)) for f in fast] == [3.0, 4.0, 5.0]
        assert np.float64(1e-310) / 1e10 == 1e-320, "numpy flushes subnormals"
        assert float(F(1e-310)) == 1e-320 and float(C(1e-310)) == 1e-320, "VM or C flushes subnormals"
        print("ok")
    """, str(tmp_path))
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_fast_math_is_compiled_in_but_linked_out():
    cc = build.Compiler("/usr/bin/gcc", "gcc", "?")
    compile_step, link = build.compile_commands(["a.c"], cc, ["-Ofast", "-ffast-math", "-mpc64"], "lib.so")
    assert "-ffast-math" in compile_step and "-Ofast" in compile_step and "-c" in compile_step
    assert not {"-ffast-math", "-Ofast", "-mpc64"} & set(link) and "-shared" in link


# ---------------------------------------------------------------- item 11: no outputs

@needs_gcc
def test_a_function_without_outputs_compiles_batches_and_exports(tmp_path):
    x = sg.symbols("x", 2)
    F = sg.Function("hard_noout", [x], [])
    C = F.compile()
    assert C(np.ones(2)) == () == F(np.ones(2))
    assert C(np.ones(2), out=()) == ()
    assert C.batch(np.ones((3, 2))) == () == F.batch(np.ones((3, 2)))
    with pytest.raises(sg.ArgumentCountError):
        C(np.ones(2), out=[None])
    paths = export_c(F, str(tmp_path))
    exe = str(tmp_path / "demo")
    done = subprocess.run(STRICT + [paths["source"], paths["demo"], "-o", exe, "-lm"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    run = subprocess.run([exe], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout == ""
    G = sg.Function("hard_noin", [], [np.array([2.5, -1.0], dtype=object)])
    assert (G.compile()() == G()).all() and (G.compile().batch() == G.batch()).all()


# ---------------------------------------------------------------- item 12: build failures

def fresh_function(tag: str) -> sg.Function:
    """A Function no other test compiles (its constant is unique), so nothing is cached."""
    x = sg.symbols("x")
    return sg.Function(f"hard_{tag}", [x], [x * (1.0 + (hash(tag) % 1000003) / 1e7)])


def test_a_compiler_that_writes_nothing_is_a_compile_error(tmp_path):
    with pytest.raises(sg.CompileError, match=r"exited with status 0 but wrote no library .*is .*true a C compiler"):
        fresh_function("true").compile(compiler="/bin/true", cache_dir=str(tmp_path))
    assert not [n for n in os.listdir(tmp_path) if n.startswith("build-")]


def test_a_full_disk_while_writing_sources_is_a_compile_error(tmp_path, monkeypatch):
    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(build, "_write_text", full)
    with pytest.raises(sg.CompileError, match=r"cannot write the C source .*\.c: No space left on device "
                                              r"\(the disk or quota is full\); the symgraph cache directory is"):
        fresh_function("full").compile(cache_dir=str(tmp_path))
    assert not [n for n in os.listdir(tmp_path) if n.startswith("build-")]


def test_a_full_disk_while_keeping_failed_sources_still_reports_the_compiler_error(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copytree", full)
    with pytest.raises(sg.CompileError, match=r"(?s)failed with exit status.*no-such-option.*"
                                              r"could not be kept .*No space left"):
        fresh_function("fullcopy").compile(flags=("-fno-such-option",), cache_dir=str(tmp_path))


@pytest.mark.parametrize("entry", [".so", ".json"])
def test_a_cache_entry_that_is_a_directory_is_a_compile_error(tmp_path, entry):
    F = fresh_function("dir" + entry)
    path = F.compile(cache_dir=str(tmp_path)).library.path
    for suffix in (".so", ".json"):
        os.remove(path[:-3] + suffix)
    os.makedirs(os.path.join(path[:-3] + entry, "something"))
    build.clear_memory_cache()
    with pytest.raises(sg.CompileError, match=rf"cache entry .*{entry} is a directory, not a file.*remove it"):
        F.compile(cache_dir=str(tmp_path))


def test_a_cache_dir_removed_while_compiling_is_rebuilt_once_then_reported(tmp_path, monkeypatch):
    real = build._run_compiler
    removals = []

    def remove_first(units, cc, flags, jobs, work, root, key):
        if not removals:
            removals.append(root)
            shutil.rmtree(root)
        return real(units, cc, flags, jobs, work, root, key)

    cache = tmp_path / "cache"
    monkeypatch.setattr(build, "_run_compiler", remove_first)
    C = fresh_function("vanish").compile(cache_dir=str(cache))
    assert removals == [str(cache)] and C.library.source == "compiled" and os.path.isfile(C.library.path)
    assert float(C(2.0)) == float(C.function(2.0))

    def remove_always(units, cc, flags, jobs, work, root, key):
        shutil.rmtree(root)
        return real(units, cc, flags, jobs, work, root, key)

    monkeypatch.setattr(build, "_run_compiler", remove_always)
    with pytest.raises(sg.CompileError, match=r"cache directory .*cache was removed while a library was being built"):
        fresh_function("vanish2").compile(cache_dir=str(cache))


# ---------------------------------------------------------------- item 13: names

CLASHING = ["sinf", "expf", "double_t", "float_t", "isnormal", "fpclassify", "signbit", "HUGE_VALF", "NAN",
            "INFINITY", "M_PI", "FP_NAN", "math_errhandling", "wchar_t", "size_t", "int8_t", "FILE", "errno",
            "remove", "rename", "perror", "EXIT_SUCCESS", "EOF", "div_t", "abs", "main", "printf", "stdout",
            "SG_PART", "sg_sign", "sign", "arg", "res", "w", "v0", "double", "int", "auto", "restrict",
            "model", "MODEL", "model_H", "a-b", "a_b", "_x", "__init__", "x__y", "é", "f; system(\"x\")"]


@needs_gcc
def test_no_legal_name_clashes_with_c_headers_cffi_or_each_other(tmp_path):
    x = sg.symbols("x")
    # every name's code in one translation unit, after the headers the code or a user may include
    text = ["#include <stdio.h>", "#include <stdlib.h>", "#include <stddef.h>", "#include <stdint.h>",
            "#include <wchar.h>", "#include <errno.h>", "#include <string.h>", "#include <math.h>"]
    idents = set()
    for k, name in enumerate(CLASHING):
        F = sg.Function(name, [x], [sg.sin(x) * (k + 1)])
        prog = program(F)
        idents.add(prog.name)
        cffi.FFI().cdef(prog.cdef)  # raw cffi.CDefError for wchar_t before
        text.append(generate(F))
        text.append(prog.declarations)  # its header again: the guard makes it a no-op
    assert len(idents) == len(CLASHING)  # injective
    unit = tmp_path / "all.c"
    unit.write_text("\n".join(text))
    done = subprocess.run(STRICT + ["-c", str(unit), "-o", str(tmp_path / "all.o")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[:3000]


@pytest.mark.parametrize("name, options", [("sinf", {}), ("wchar_t", {}), ("isnormal", {}),
                                           ("SG_PART", {"jobs": 2, "chunk_size": 3})])
def test_names_of_c_library_symbols_and_internal_macros_compile_and_run(name, options):
    x = sg.symbols("x", 4)
    e = x
    for _ in range(3):
        e = sg.cos(e) * 1.5 + x
    F = sg.Function(name, [x], [e, e.sum()])
    C = F.compile(**options)
    v = np.linspace(-1.0, 1.0, 4)
    got, ref = C(v), F(v)
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-15)
    if options:
        assert len(json.load(open(C.library.path[:-3] + ".json"))["units"]) == 2


@given(st.text(min_size=1, max_size=70), st.text(min_size=1, max_size=70))
def test_identifiers_are_valid_reserved_by_nobody_and_injective(a, b):
    ia, ib = c_identifier(a), c_identifier(b)
    for ident in (ia, ib):
        assert ident.isascii() and ident.isidentifier() and len(ident) <= 48
        assert ident.startswith(("sgf_", "sgx_")) and "__" not in ident and not ident.endswith("_")
    assert (ia == ib) == (a == b)
    assert c_identifier(a) == ia  # deterministic


@needs_gcc
def test_exports_of_different_names_never_share_files_or_guards(tmp_path):
    x = sg.symbols("x")
    paths = {name: sg.Function(name, [x], [x + k]).export_c(str(tmp_path))
             for k, name in enumerate(["model", "MODEL", "a-b", "a_b", "remove", "x_demo", "x"])}
    files = [p for ps in paths.values() for p in ps.values()]
    assert len(set(files)) == len(files) == len(os.listdir(tmp_path))
    # all headers in one program, with every source: no guard, symbol or file collides
    probe = tmp_path / "probe.c"
    includes = "".join(f'#include "{os.path.basename(ps["header"])}"\n' for ps in paths.values())
    probe.write_text("#include <stdio.h>\n#include <stdlib.h>\n" + includes +
                     "int main(void) {\n  double in = 2.0, out = 0.0;\n  const double *arg[1] = {&in};\n"
                     "  double *res[1] = {&out};\n  sgf_remove(arg, res, 0);\n  remove(\"nothing-here\");\n"
                     "  return out == 6.0 && sgf_MODEL__n_in() == 1 ? EXIT_SUCCESS : EXIT_FAILURE;\n}\n")
    sources = [ps["source"] for ps in paths.values()]
    exe = str(tmp_path / "probe")
    done = subprocess.run(STRICT + [str(probe), *sources, "-o", exe, "-lm"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[:3000]
    assert subprocess.run([exe]).returncode == 0
    # the demo of a libc-named Function builds and prints the VM's value
    demo = str(tmp_path / "demo")
    done = subprocess.run(STRICT + [paths["remove"]["source"], paths["remove"]["demo"], "-o", demo, "-lm"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    printed = subprocess.run([demo, "0.25"], capture_output=True, text=True, check=True).stdout
    assert float(printed.split(":")[1]) == 0.25 + 4


def test_generated_c_is_byte_identical_for_the_same_graph():
    def make():
        x = sg.symbols("x", 3)
        return sg.Function("a-b", [x], [x ** 7 + x ** -2 + sg.sign(x)])
    assert generate(make()) == generate(make())


# ---------------------------------------------------------------- item 14: cache edge cases

def readonly_runner():
    """A command prefix that runs a child without the capabilities that bypass file permissions."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot make a directory read-only for a child")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--inh-caps=-all", "--"]


def test_a_read_only_cache_is_read_and_misses_go_to_a_temporary_dir_removed_at_exit(tmp_path):
    prefix = readonly_runner()
    cache, tmp = tmp_path / "ro", tmp_path / "tmp"
    cache.mkdir()
    tmp.mkdir()
    x = sg.symbols("x")
    path = sg.Function("hard_ro", [x], [x * 3.5]).compile(cache_dir=str(cache)).library.path
    os.chmod(cache, 0o555)
    os.chmod(tmp_path, 0o755)
    os.chmod(tmp, 0o777)
    code = textwrap.dedent("""
        import json, warnings
        import symgraph as sg
        x = sg.symbols("x")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            hit = sg.Function("hard_ro", [x], [x * 3.5]).compile()
            miss = sg.Function("hard_ro_miss", [x], [x * 4.5]).compile()
        print(json.dumps({"hit": [hit.library.source, hit.library.path, float(hit(2.0))],
                          "miss": [miss.library.source, miss.library.path, float(miss(2.0))],
                          "warnings": [str(w.message) for w in caught]}))
    """)
    env = dict(os.environ, SYMGRAPH_CACHE_DIR=str(cache), TMPDIR=str(tmp))
    try:
        done = subprocess.run(prefix + [sys.executable, "-c", code], env=env, capture_output=True, text=True,
                              timeout=240)
    finally:
        os.chmod(cache, 0o755)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["hit"] == ["disk", path, 7.0]  # the valid entry of the read-only cache was used
    assert out["miss"][0] == "compiled" and out["miss"][2] == 9.0
    assert out["miss"][1].startswith(str(tmp)) and len(out["warnings"]) == 1
    assert "is not writable" in out["warnings"][0] and "removed at exit" in out["warnings"][0]
    assert os.listdir(tmp) == []  # the temporary cache went away with the process
    libraries = sorted(n for n in os.listdir(cache) if not n.startswith(build.ENTRY_PREFIX))  # not fn-KEY.npz entries
    assert libraries == sorted(os.path.basename(path)[:-3] + s for s in (".so", ".json", ".lock"))


def test_build_dirs_of_a_killed_compile_are_removed_by_the_next_build(tmp_path):
    fcntl = pytest.importorskip("fcntl")
    cache = tmp_path / "cache"
    slow = tmp_path / "slowcc"
    slow.write_text('#!/bin/sh\ncase "$1" in --version) echo "slow 1.0";; *) exec sleep 60;; esac\n')
    slow.chmod(0o755)
    proc = subprocess.Popen([sys.executable, "-c", "import symgraph as sg; x = sg.symbols('x'); "
                             f"sg.Function('hard_killed', [x], [x + 1]).compile(compiler={str(slow)!r})"],
                            env=dict(os.environ, SYMGRAPH_CACHE_DIR=str(cache)), start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (cache.is_dir() and [n for n in os.listdir(cache) if n.startswith("build-")]):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the compile and its "compiler"
        proc.wait()
    stale = [n for n in os.listdir(cache) if n.startswith("build-")]
    assert len(stale) == 1
    # a build dir whose key is being built right now (its lock is held) is kept
    busy_key = "f" * 64
    busy = cache / f"build-{busy_key}-busy"
    busy.mkdir()
    with open(cache / f"{busy_key}.lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        C = fresh_function("after_kill").compile(cache_dir=str(cache))
        assert float(C(1.0)) == float(C.function(1.0))
    left = sorted(n for n in os.listdir(cache) if n.startswith("build-"))
    assert left == [busy.name]


# ---------------------------------------------------------------- item 15: pickling

def _function_pickles() -> bool:
    x = sg.symbols("x")
    try:
        pickle.dumps(sg.Function("probe", [x], [x]))
        return True
    except Exception:
        return False


needs_function_pickle = pytest.mark.skipif(not _function_pickles(), reason="Function is not picklable yet")


@needs_function_pickle
def test_a_compiled_function_pickles_as_its_function_and_options(tmp_path):
    x = sg.symbols("x", 2)
    F = sg.Function("hard_pickle", [x], [sg.sin(x) * x[1], x.sum()])
    C = F.compile(flags=("-O1",), cache_dir=str(tmp_path), chunk_size=50)
    v = np.array([0.25, -1.5])
    for D in (pickle.loads(pickle.dumps(C)), copy.deepcopy(C), copy.copy(C)):
        assert type(D) is type(C) and D.options == C.options and D.flags == ("-O1",)
        assert D.library.key == C.library.key and D.cache_hit  # no compiler ran
        got, ref = D(v), C(v)
        assert (got[0] == ref[0]).all() and got[1] == ref[1]
    assert len(pickle.dumps(C)) < 20_000  # the Function, not the library


@needs_function_pickle
def test_a_compiled_function_crosses_a_spawned_process(tmp_path):
    x = sg.symbols("x")
    C = sg.Function("hard_spawn", [x], [sg.exp(x) - x]).compile(cache_dir=str(tmp_path))
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        got = pool.map(C, [0.5, 2.0])
    assert got == [C(0.5), C(2.0)]


# ---------------------------------------------------------------- item 16: bad values and options

@pytest.fixture(scope="module")
def small():
    a, b = sg.symbols("a"), sg.symbols("b", 2)
    F = sg.Function("hard_small", [a, b], [a * b])
    return F, F.compile()


@pytest.mark.parametrize("value", [10 ** 400, -(10 ** 400), 2 ** 1024], ids=["1e400", "-1e400", "2**1024"])
def test_ints_beyond_float64_are_refused_alike_by_the_vm_and_c(small, value):
    F, C = small
    for f in (F, C):
        with pytest.raises(sg.DTypeError, match=r"argument 0 \('a'\): expected a real number that fits in a "
                                                r"float64, got an int of \d+ bits"):
            f(value, np.ones(2))


def test_large_ints_that_fit_are_converted_alike(small):
    F, C = small
    for value in (2 ** 53 + 1, 2 ** 64, 2 ** 70, -(2 ** 100), 2 ** 1023):
        assert (C(value, np.ones(2)) == F(value, np.ones(2))).all()
        assert (C(value, np.ones(2)) == float(value)).all()


BAD_OPTIONS = [
    ("flags", 123), ("flags", "-O2"), ("flags", ["-O2", 3]), ("flags", [""]), ("jobs", "a"), ("jobs", 2.5),
    ("jobs", 0), ("jobs", True), ("name", 123), ("name", ""), ("compile_budget", "a"), ("compile_budget", -1),
    ("compile_budget", 0), ("compile_budget", float("nan")), ("compile_budget", True),
    ("cache_dir", 123), ("cache_dir", ""), ("compiler", 5), ("compiler", ""), ("optimize", "x"),
    ("optimize", -1), ("optimize", True), ("chunk_size", 0), ("chunk_size", 2.0), ("auto_tcc", "yes"),
]


@pytest.mark.parametrize("option, value", BAD_OPTIONS)
def test_bad_compile_options_are_named_even_when_the_function_is_cached(small, option, value):
    F, _ = small  # compiled already: a memory hit must not skip the checks
    with pytest.raises(sg.OptionError, match=rf"\b{option} must be .*got {__import__('re').escape(repr(value))}"):
        F.compile(**{option: value})
    assert issubclass(sg.OptionError, TypeError) and issubclass(sg.OptionError, ValueError)


def test_an_unknown_compile_option_is_named(small):
    with pytest.raises(sg.OptionError, match=r"compile\(\) has no option 'jbos'; the options are optimize, "):
        small[0].compile(jbos=2)


@pytest.mark.parametrize("options, error, match", [
    ({"name": 123}, sg.OptionError, "name must be a non-empty str"),
    ({"optimize": "x"}, sg.OptionError, "optimize must be an optimizer level"),
    ({"overwrite": "yes"}, sg.OptionError, "overwrite must be True or False"),
])
def test_bad_export_options(small, tmp_path, options, error, match):
    with pytest.raises(error, match=match):
        export_c(small[0], str(tmp_path), **options)
    assert os.listdir(tmp_path) == []


def test_export_refuses_to_overwrite_unless_asked(small, tmp_path):
    F, _ = small
    paths = F.export_c(str(tmp_path))
    with open(paths["header"], "w") as fh:
        fh.write("/* mine */\n")
    sources = {p: open(p).read() for p in paths.values()}
    os.remove(paths["demo"])
    with pytest.raises(sg.OverwriteError, match=r"sgf_hard_small\.c, .*sgf_hard_small\.h already exist; "
                                                r"pass overwrite=True"):
        F.export_c(str(tmp_path))
    assert not os.path.exists(paths["demo"])  # nothing was written
    assert open(paths["header"]).read() == "/* mine */\n" and issubclass(sg.OverwriteError, FileExistsError)
    again = export_c(F, str(tmp_path), overwrite=True)
    assert again == paths and open(paths["header"]).read() != "/* mine */\n"
    assert open(paths["source"]).read() == sources[paths["source"]]
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in paths.values())


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX ownership and modes only")
def test_a_cache_others_can_write_is_never_loaded_from(tmp_path):
    # A library in the cache runs its code when loaded: a directory where another user could plant
    # KEY.so (its key is predictable from the source) is refused, and the entry is built privately.
    shared = tmp_path / "shared"
    shared.mkdir()
    x = sg.symbols("x")
    F = sg.Function("hard_shared", [x], [x * 5.5])
    path = F.compile(cache_dir=str(shared)).library.path
    assert build.untrusted_reason(str(shared)) is None
    os.chmod(shared, 0o777)
    build.clear_memory_cache()
    with pytest.warns(sg.BackendWarning, match="writable by other users"):
        again = F.compile(cache_dir=str(shared))
    assert again.library.source == "compiled" and again.library.path != path
    assert not again.library.path.startswith(str(shared)) and float(again(2.0)) == 11.0
    os.chmod(shared, 0o755)
    build.clear_memory_cache()
    assert F.compile(cache_dir=str(shared)).library.path == path  # private again: read as before


def test_a_new_cache_directory_is_private(tmp_path):
    fresh = tmp_path / "fresh" / "cache"
    x = sg.symbols("x")
    sg.Function("hard_private", [x], [x * 6.5]).compile(cache_dir=str(fresh))
    assert os.stat(fresh).st_mode & 0o077 == 0
