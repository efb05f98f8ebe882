"""C emission (codegen.c99): determinism, names, constants, powers, liveness, chunking, derivatives."""

from __future__ import annotations

import math

import numpy as np
import pytest

import symgraph as sg
from codegen.c99 import c_constant, generate, program
from codegen.names import c_identifier, c_string


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "symgraph-cache"))


def bits(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).view(np.int64)


def model(name: str = "m"):
    x, y = sg.symbols("x", 3), sg.symbols("y")
    outs = [sg.sin(x) * y + x ** 3, sg.exp(x[0]) / (1 + x[1] ** 2), sg.atan2(y, x[2]) - sg.sign(x[0])]
    return sg.Function(name, [x, y], outs), (np.array([0.3, -1.2, 2.5]), 0.7)


def test_output_is_byte_identical_for_the_same_function_and_rebuilt_graphs():
    F1, _ = model()
    F2, _ = model()  # new symbols, same structure
    assert generate(F1) == generate(F1) == generate(F2)
    assert F1.c_source == F1.c_code() == generate(F1)
    assert generate(F1, chunk_size=2) != generate(F1)


def test_hostile_names_never_reach_the_source_verbatim():
    x = sg.symbols("x")
    hostile = 'f; system("x")'
    F = sg.Function(hostile, [x], [x * 2, x + 1], input_names=['a"); system("rm -rf /'],
                    output_names=["*/ system(1); /*", "ok"])
    src = generate(F)
    assert 'system("x")' not in src and 'system("rm' not in src and "*/ system" not in src
    assert c_identifier(hostile) == "sgx_f_system_x_0cb8ca2ff58cc4c9"
    assert "int sgx_f_system_x_0cb8ca2ff58cc4c9(const double *const *arg" in src
    C = F.compile()
    assert C(3.0) == (6.0, 4.0)


@pytest.mark.parametrize("name, expected", [("double", "sgf_double"), ("sin", "sgf_sin"), ("2fast", "sgf_2fast"),
                                            ("_x", "sgx_x_a01e47cb4cec0963"), ("rand", "sgf_rand"),
                                            ("a b-c", "sgx_a_b_c_1bd4f321276fb5b8"), ("x" * 100, None)])
def test_names_become_valid_unreserved_identifiers(name, expected):
    ident = c_identifier(name)
    assert ident.isidentifier() and ident.startswith(("sgf_", "sgx_")) and len(ident) <= 48 and "__" not in ident
    if expected is not None:
        assert ident == expected
    x = sg.symbols("x")
    F = sg.Function(name, [x], [x * 3])
    C = F.compile()
    assert float(C(2.0)) == 6.0
    assert float(C.batch(np.array([1.0, 2.0]))[1]) == 6.0  # batch calls the entry point internally


def test_c_strings_escape_everything_unusual():
    assert c_string('a"\\b\n?') == '"a\\042\\134b\\012\\077"'


@pytest.mark.parametrize("value", [0.1, -0.0, 0.0, 1 / 3, -2.5e-310, 5e-324, 1.7976931348623157e308,
                                   math.inf, -math.inf, 123456789.123456789, -1e-300])
def test_constants_round_trip_exactly(value):
    x = sg.symbols("x")
    F = sg.Function("c", [x], [x + sg.const(value), np.array(sg.const(value), dtype=object)])
    got = F.compile(optimize=0)(0.0)
    ref = F(0.0)
    assert bits(got[0]) == bits(ref[0]) and bits(got[1]) == bits(np.float64(value))
    assert c_constant(value) in generate(F)


def test_nan_constant():
    x = sg.symbols("x")
    F = sg.Function("n", [x], [x + sg.const(math.nan)])
    assert "NAN" in generate(F)
    assert math.isnan(F.compile()(1.0))


@pytest.mark.parametrize("n", [-5, -3, -2, -1, 0, 1, 2, 3, 4, 5, 7, 8, 13])
def test_small_integer_powers_become_multiplications(n):
    x = sg.symbols("x")
    F = sg.Function("p", [x], [sg.apply(sg.OPS["powi"], x, float(n))])
    src = generate(F)
    assert ("pow(" not in src) == (-2 <= n <= 4)  # larger |n|: pow(), as accurate as the VM's (see hardening)
    C = F.compile(optimize=0)
    for v in (0.7, -1.3, 2.0, 0.0, -0.0, 1e-200, 1e160, math.inf, -math.inf):
        got, ref = C(v), F(v)
        if math.isnan(ref):
            assert math.isnan(got)
        elif abs(ref) < np.finfo(float).tiny or math.isinf(ref):
            assert got == ref or abs(got) < np.finfo(float).tiny
        else:
            assert abs(got - ref) <= 1e-15 * abs(ref) * abs(n), (v, got, ref)


def test_multiplication_count_of_powers_is_logarithmic():
    x = sg.symbols("x")
    part = program(sg.Function("p", [x], [sg.apply(sg.OPS["powi"], x, 4.0)])).parts[0]
    assert part.count(" * ") == 2  # x^4 = (x^2)^2: two squarings
    part = program(sg.Function("p", [x], [sg.apply(sg.OPS["powi"], x, -2.0)])).parts[0]
    assert part.count(" * ") == 1 and "1.0 / v0" in part  # x^-2 = (1/x)^2: no overflow of x*x


def test_liveness_keeps_the_work_array_small():
    x = sg.symbols("x")
    e = x
    with sg.building():
        for k in range(3000):
            e = sg.sin(e) + x
    F = sg.Function("chain", [x], [e])
    prog = program(F, chunk_size=100)
    assert len(prog.parts) == F.n_ops // 100
    # one value crosses each part boundary; a slot is free again once its reader part has run
    assert prog.work_size == 2
    C = F.compile(optimize=0, chunk_size=100)
    assert bits(C(0.3)) == bits(F(0.3))


def test_wide_sums_reuse_work_slots_across_parts():
    x = sg.symbols("x", 400)
    terms = [sg.cos(x[i]) * x[(i + 1) % 400] for i in range(400)]
    F = sg.Function("wide", [x], [np.array(terms, dtype=object), sum(terms)])
    prog = program(F, chunk_size=50)
    # the Tape computes all 400 terms before summing them: at most 400 terms + the partial sum are live
    assert prog.work_size <= 401 < F.n_ops
    C = F.compile(optimize=0, chunk_size=50)
    v = np.linspace(-1, 1, 400)
    got, ref = C(v), F(v)
    assert (bits(got[0]) == bits(ref[0])).all() and abs(got[1] - ref[1]) <= 1e-13 * abs(ref[1])


def test_metadata_functions_describe_the_function():
    x = sg.symbols("x", (2, 3))
    S = sg.SparseExpr([1, 0, 1], [0, 2, 2], [x[0, 0], x[1, 1], x[0, 2]], (2, 3))
    F = sg.Function("meta", [x], [x.sum(), S], output_names=["total", "sp"])
    C = F.compile()
    lib, ffi = C.library.lib, C.library.ffi
    ffi.cdef("int meta_n_in(void); int meta_n_out(void); const char *meta_name_out(int i);"
             "long meta_numel_in(int i); long meta_nnz_out(int i); int meta_ndim_in(int i);"
             "const long *meta_shape_in(int i); const long *meta_sparsity_out(int i);"
             .replace("meta_", "sgf_meta__"))
    lib = type("Lib", (), {name: getattr(lib, "sgf_meta__" + name[5:]) for name in
                           ("meta_n_in", "meta_n_out", "meta_name_out", "meta_numel_in", "meta_nnz_out",
                            "meta_ndim_in", "meta_shape_in", "meta_sparsity_out")})
    assert (lib.meta_n_in(), lib.meta_n_out()) == (1, 2)
    assert ffi.string(lib.meta_name_out(1)) == b"sp" and lib.meta_name_out(2) == ffi.NULL
    assert (lib.meta_numel_in(0), lib.meta_nnz_out(0), lib.meta_nnz_out(1)) == (6, 1, 3)
    assert lib.meta_ndim_in(0) == 2 and list(lib.meta_shape_in(0)[0:2]) == [2, 3]
    assert lib.meta_sparsity_out(0) == ffi.NULL
    ccs = list(lib.meta_sparsity_out(1)[0:2 + 4 + 3])
    ref = F(np.arange(6.0).reshape(2, 3))[1]
    assert ccs == [2, 3] + ref.indptr.tolist() + ref.indices.tolist()


def test_op_without_c_spelling_is_a_clear_error(monkeypatch):
    x = sg.symbols("x")
    F = sg.Function("s", [x], [sg.sin(x)])
    import dataclasses

    from symgraph.ops import OP_LIST
    broken = dataclasses.replace(sg.OPS["sin"], c=None)
    monkeypatch.setattr("codegen.c99.OP_LIST", tuple(broken if op is sg.OPS["sin"] else op for op in OP_LIST))
    with pytest.raises(sg.CompileError, match="op 'sin' has no C spelling"):
        generate(F)


def test_bad_chunk_size():
    F, _ = model()
    with pytest.raises(sg.OptionError, match="chunk_size must be a positive int, got 0"):
        generate(F, chunk_size=0)


def _ad_available():
    return all(hasattr(sg, n) for n in ("grad", "jacobian", "hessian"))


@pytest.mark.skipif(not _ad_available(), reason="symgraph.ad (sg.grad/jacobian/hessian) has not landed yet")
def test_compiled_jacobian_and_hessian_equal_the_vm():
    x, f, g = sg.models.luksan(12)
    lam = sg.symbols("lam", 10)
    J = sg.jacobian(g, x)
    H = sg.hessian(f + lam @ g, x, lower=True)
    F = sg.Function("derivs", [x, lam], [f, sg.grad(f, x), g, J, H])
    C = F.compile()
    xv, lv = np.linspace(-0.5, 1.5, 12), np.linspace(1.0, 2.0, 10)
    got, ref = C(xv, lv), F(xv, lv)
    assert abs(got[0] - ref[0]) <= 1e-14 * abs(ref[0])
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-14)
    np.testing.assert_allclose(got[2], ref[2], rtol=1e-14)
    for k in (3, 4):
        assert (got[k].indptr == ref[k].indptr).all() and (got[k].indices == ref[k].indices).all()
        np.testing.assert_allclose(got[k].data, ref[k].data, rtol=1e-14, atol=1e-300)
    # against an independent oracle too: complex step through the VM for one Jacobian column
    h = 1e-30
    e = np.zeros(12)
    e[3] = 1.0
    column = np.imag(sg.Function("g", [x], [g])(xv + 1j * h * e)) / h
    np.testing.assert_allclose(got[3].toarray()[:, 3], column, rtol=1e-13)
