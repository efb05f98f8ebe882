"""Standalone export (F.export_c): -Werror clean C, and a demo whose printed results match the VM."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

import symgraph as sg
from codegen.export import demo_inputs, export_c
from strategies import compile_and_run

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
STRICT = ["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror"]


def function():
    x, y = sg.symbols("x", 3), sg.symbols("y")
    S = sg.SparseExpr([1, 0], [0, 1], [x[0] * y, sg.cos(x[2])], (2, 2))
    outs = [sg.sin(x) * y ** 3, sg.sign(x[0] - 1) + sg.fmod(x[1], 0.3), S, x[1], 2.5,
            sg.if_else(sg.lt(x[0], y), sg.exp(y), sg.log(x[2])) ** -2]
    return sg.Function('demo; system("x")', [x, y], outs,
                       output_names=["trig", "steps", "*/sparse", "copy", "constant", "branch"])


def flat(result) -> np.ndarray:
    if hasattr(result, "tocsc"):
        return result.tocsc().data  # compressed-column order, as the C code stores it
    return np.asarray(result, dtype=np.float64).reshape(-1)


def test_export_compiles_with_werror_and_the_demo_matches_the_vm(tmp_path):
    F = function()
    paths = F.export_c(str(tmp_path))
    ident = "sgx_demo_system_x_bcedcd22655f7cd2"  # not a plain name: its words and a hash (codegen/names.py)
    assert sorted(os.listdir(tmp_path)) == [ident + ".c", ident + ".h", ident + "__demo.c"]
    for path in paths.values():
        text = open(path).read()
        assert 'system("x")' not in text and "*/sparse" not in text
    printed = compile_and_run(paths, tmp_path, STRICT)
    ref = F(*demo_inputs(F))
    assert len(printed) == F.n_out
    for got, want in zip(printed, ref):
        np.testing.assert_allclose(got, flat(want), rtol=1e-15, atol=0)  # %.17g round-trips exactly


def test_demo_takes_inputs_from_its_command_line(tmp_path):
    F = function()
    paths = export_c(F, str(tmp_path), name="cli")
    values = [0.25, -1.5, 3.0, 0.7]
    printed = compile_and_run(paths, tmp_path, STRICT, values)
    ref = F(np.array(values[:3]), values[3])
    for got, want in zip(printed, ref):
        np.testing.assert_allclose(got, flat(want), rtol=1e-15, atol=0)


def test_large_export_with_many_parts_and_a_work_array(tmp_path):
    x = sg.symbols("x", 20)
    e = x
    with sg.building():
        for _ in range(150):
            e = sg.tanh(e) * 0.9 + x
    F = sg.Function("deep", [x], [e, e.sum()])
    assert F.n_ops > 2 * 2000
    paths = export_c(F, str(tmp_path))
    assert "sgf_deep__part1" in open(paths["source"]).read()
    printed = compile_and_run(paths, tmp_path, STRICT)
    ref = F(*demo_inputs(F))
    np.testing.assert_allclose(printed[0], ref[0], rtol=1e-14)
    np.testing.assert_allclose(printed[1], [ref[1]], rtol=1e-14)


def test_header_documents_the_interface(tmp_path):
    paths = function().export_c(str(tmp_path), "doc")
    header = open(paths["header"]).read()
    for needle in ("int sgf_doc(const double *const *arg, double *const *res, double *w);",
                   "int sgf_doc__batch(long n", "long sgf_doc__work_size(void);",
                   "const long *sgf_doc__sparsity_out(int i);",
                   "[0] x: 3 (dense)", "[2] __sparse: 2x2 (sparse, 2 nonzeros in compressed-column order)",
                   'extern "C"'):
        assert needle in header
    # the header alone compiles (C and C++-style include guard)
    probe = tmp_path / "probe.c"
    probe.write_text('#include "sgf_doc.h"\n#include "sgf_doc.h"\nint main(void) { return sgf_doc__n_in() - 2; }\n')
    done = subprocess.run(STRICT + [str(probe), paths["source"], "-o", str(tmp_path / "probe"), "-lm"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert subprocess.run([str(tmp_path / "probe")]).returncode == 0


def test_export_to_a_bad_directory_is_refused():
    with pytest.raises(sg.InvalidInputError, match="directory must be a path, got int"):
        export_c(function(), 3)
