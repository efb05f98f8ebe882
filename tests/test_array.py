"""Arrays of expressions: symbols(), numpy ufunc tracing, sg.<op> builders.

Oracle for tracing: the *same* numpy code run on float arrays.  A model
traced on symbols, frozen and evaluated in the VM must give what numpy gives.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import symgraph as sg
from symgraph.ops import OPS, SCALAR_OPS


# ------------------------------------------------------------------ symbols
def test_symbols_scalar_vector_matrix():
    x = sg.symbols("x")
    assert type(x) is sg.Expr and x.is_symbol and x.name == "x"
    v = sg.symbols("v", 3)
    assert isinstance(v, np.ndarray) and v.dtype == object and v.shape == (3,)
    assert [s.name for s in v] == ["v[0]", "v[1]", "v[2]"]
    m = sg.symbols("m", (2, 3))
    assert m.shape == (2, 3) and m[1, 2].name == "m[1,2]"
    assert len({id(s) for s in m.ravel()}) == 6 and all(s.is_symbol for s in m.ravel())
    assert sg.symbols("t", np.int64(2)).shape == (2,)
    assert sg.symbols("e", 0).shape == (0,) and sg.symbols("e", (2, 0)).shape == (2, 0)
    assert sg.symbols("v", 3)[0] is not v[0]  # a new call makes new symbols


def test_symbol_arrays_as_function_inputs_keep_their_name():
    m = sg.symbols("m", (2, 3))
    F = sg.Function("f", [m], [m.sum(axis=0)])
    assert F.input_names == ("m",) and F.input_shapes == ((2, 3),) and F.output_shapes == ((3,),)
    np.testing.assert_array_equal(F(np.arange(6.0).reshape(2, 3)), [3.0, 5.0, 7.0])


# ---------------------------------------------------------- numpy tracing
A = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])

MODELS = {
    "sin*exp": lambda v: np.sin(v) * np.exp(-v),
    "arctan2": lambda v: np.arctan2(v, v[::-1] + 2),
    "hypot": lambda v: np.hypot(v, 1.0),
    "A@v": lambda v: A @ v,
    "v@A.T": lambda v: v @ A.T,
    "v@v": lambda v: v @ v,
    "sum": lambda v: v.sum(),
    "np.sum": lambda v: np.sum(v),
    "sum axis": lambda v: np.sum(v[:, None] * A.T, axis=0),
    "outer": lambda v: np.outer(v, v),
    "broadcast": lambda v: v[:, None] * v[None, :] + np.array([1.0, 2.0, 3.0])[None, :] - v[:, None],
    "float64*v": lambda v: np.float64(2.5) * v + np.float32(0.5) + np.int64(3),
    "v*float64 array": lambda v: v * np.array([1.0, 2.0, 3.0]) - np.array([1.0, 2.0, 3.0]) / (v + 3.5),
    "abs": lambda v: np.abs(v - 1),
    "v**3, v**0.5": lambda v: v**3 + np.abs(v) ** 0.5,
    "sqrt": lambda v: np.sqrt(v * v + 1),
    "square, power": lambda v: np.square(v) + np.power(np.abs(v), 2.5),
    "cumsum": lambda v: np.cumsum(v),
    "prod": lambda v: np.prod(v),
    "mean": lambda v: np.mean(v),
    "norm": lambda v: np.linalg.norm(v),
    "dot": lambda v: np.dot(A, v),
    "einsum": lambda v: np.einsum("ij,j->i", A, v),
    "fmod, remainder, %, //": lambda v: np.fmod(v, 0.7) + np.remainder(v, 0.7) + v % 0.3 + v // 0.7,
    "neg, pos, reciprocal": lambda v: -(+v) + 1 / v,
    "trace of outer": lambda v: np.trace(np.outer(v, v)),
    "diff": lambda v: np.diff(v),
    "log family": lambda v: np.log(v * v + 1) + np.log10(v * v + 2) + np.log2(v * v + 3) + np.log1p(v * v),
    "exp family": lambda v: np.expm1(v) + np.exp(v / 2),
    "cbrt, floor, ceil": lambda v: np.cbrt(v) + np.floor(v) + np.ceil(3 * v),
    "trig": lambda v: np.tan(v) + np.arctan(v) + np.arcsin(v / 3) + np.arccos(v / 3) + np.cos(v),
    "hyperbolic": lambda v: np.sinh(v) + np.cosh(v) + np.tanh(v) + np.arcsinh(v) + np.arccosh(v * v + 1)
    + np.arctanh(v / 3),
    "reshape, transpose": lambda v: (np.outer(v, v).T.reshape(9)[::2]),
}

POINTS = [np.array([0.3, -1.2, 2.0]), np.array([-0.4, 0.9, 1.1]), np.array([1.5, 2.5, -2.9])]


@pytest.mark.parametrize("name", list(MODELS))
def test_numpy_model_code_traces(name):
    model = MODELS[name]
    v = sg.symbols("v", 3)
    traced = model(v)
    assert isinstance(traced, (sg.Expr, np.ndarray))
    if isinstance(traced, np.ndarray):
        assert traced.dtype == object and all(type(e) is sg.Expr for e in traced.ravel())
    F = sg.Function("model", [v], [traced])
    for p in POINTS:
        want = model(p)
        got = F(p)
        assert np.shape(got) == np.shape(want)
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    batch = F.batch(np.array(POINTS))
    np.testing.assert_allclose(batch, np.array([model(p) for p in POINTS]), rtol=1e-13, atol=1e-15)


def test_ufuncs_give_the_nodes_the_builders_give():
    v, w = sg.symbols("v", 3), sg.symbols("w", 3)
    for ufunc, name in ((np.sin, "sin"), (np.exp, "exp"), (np.arctan2, "atan2"), (np.hypot, "hypot"),
                        (np.sqrt, "sqrt"), (np.log1p, "log1p"), (np.cbrt, "cbrt"), (np.fmod, "fmod"),
                        (np.floor, "floor"), (np.ceil, "ceil"), (np.tanh, "tanh")):
        args = (v, w)[:ufunc.nin]
        got = ufunc(*args)
        want = getattr(sg, name)(*args)
        assert got.shape == (3,) and all(g is h for g, h in zip(got, want)), name
        assert all(g.op is OPS[name] for g in got), name
    # numpy's object loop squares by multiplying; the value is the same
    assert np.square(v)[0] is v[0] * v[0] and (v**2)[0] is sg.square(v[0])


def test_ufuncs_on_scalar_expr_dispatch_to_the_table():
    x, y = sg.symbols("x"), sg.symbols("y")
    assert np.sin(x) is sg.sin(x) and np.arctan2(y, x) is sg.atan2(y, x)
    assert np.maximum(x, y) is sg.fmax(x, y) and np.minimum(x, y) is sg.fmin(x, y)  # nan-ignoring
    assert np.fmin(x, 2.0) is sg.fmin(x, 2.0) and np.sign(x) is sg.sign(x)
    assert np.less(x, y) is (x < y) and np.equal(x, y).op.name == "eq"
    assert np.logical_and(x, y) is sg.logical_and(x, y) and np.logical_not(x) is sg.logical_not(x)
    assert np.float_power(x, y) is x ** y and np.power(x, 2) is x ** 2 and np.positive(x) is x
    assert np.remainder(x, y) is x % y and np.absolute(x) is abs(x) and np.negative(x) is -x
    assert np.add(2.0, x) is x + 2 and np.float64(2.0) + x is x + 2 and np.float64(2.0) * x is 2 * x
    assert type(np.float64(2.0) < x) is sg.Expr and type(np.float64(2.0) ** x) is sg.Expr
    with pytest.raises(TypeError):
        np.exp2(x)  # not an op of the table
    assert np.add.reduce([x, y]) is x + y  # reductions run on object arrays


def test_comparisons_and_branches_on_arrays():
    v = sg.symbols("v", 4)
    c = sg.lt(v, 1.0)
    assert c.shape == (4,) and all(e.op.name == "lt" for e in c)
    f = sg.if_else(c, v * 2, -v)
    g = sg.if_else(sg.logical_and(sg.ge(v, -1), sg.le(v, 1)), 1.0, 0.0)
    h = sg.fmax(sg.fmin(v, 1.0), -1.0)  # clip, since np.clip/np.maximum ask bool() of elements
    F = sg.Function("f", [v], [f, g, h, sg.eq(v, 0.5), sg.ne(v, 0.5), sg.gt(v, 0)])
    p = np.array([-2.0, 0.5, 1.0, 3.0])
    got = F(p)
    np.testing.assert_array_equal(got[0], np.where(p < 1, 2 * p, -p))
    np.testing.assert_array_equal(got[1], ((p >= -1) & (p <= 1)).astype(float))
    np.testing.assert_array_equal(got[2], np.clip(p, -1, 1))
    np.testing.assert_array_equal(got[3], (p == 0.5).astype(float))
    np.testing.assert_array_equal(got[4], (p != 0.5).astype(float))
    np.testing.assert_array_equal(got[5], (p > 0).astype(float))
    # numeric masks are fine too
    mask = np.array([True, False, True, False])
    k = sg.if_else(mask, v, 0.0)
    assert k[0] is v[0] and k[1] is sg.const(0.0)


def test_numpy_comparisons_of_object_arrays_explain_what_to_use():
    v = sg.symbols("v", 2)
    with pytest.raises(sg.SymbolicBoolError, match=r"sg\.lt"):
        _ = v < 1
    with pytest.raises(sg.SymbolicBoolError, match="if_else"):
        np.maximum(v, 0.0)  # numpy's object loop compares elements with bool()


# -------------------------------------------------------------- builders
BUILDER_OF = {"not": "logical_not", "and": "logical_and", "or": "logical_or"}


def _builder(op):
    return getattr(sg, BUILDER_OF.get(op.name, op.name))


@pytest.mark.parametrize("op", [op for op in SCALAR_OPS if op.name != "powi"], ids=lambda op: op.name)
def test_builder_for_every_op_on_scalars_lists_and_arrays(op):
    build = _builder(op)
    syms = [sg.symbols(f"a{k}") for k in range(op.arity)]
    scalar = build(*syms)
    if op.name == "pow":
        assert scalar is syms[0] ** syms[1]
    else:
        assert scalar is sg.apply(op, *syms)
    # numbers fold to the constant numpy computes
    assert build(*[0.25] * op.arity).is_const
    # lists and arrays, broadcast like numpy: (2, 1) with (3,) -> (2, 3)
    col = sg.symbols("c", (2, 1))
    row = sg.symbols("r", 3)
    operands = [col, row, 0.5][: op.arity]
    out = build(*operands)
    assert isinstance(out, np.ndarray) and out.shape == ((2, 3) if op.arity > 1 else (2, 1))
    for (i, j), e in np.ndenumerate(out if op.arity > 1 else np.broadcast_to(out, (2, 1))):
        elems = [col[i, 0], row[j], 0.5][: op.arity] if op.arity > 1 else [col[i, 0]]
        assert e is build(*elems), (op.name, i, j)
    as_list = build(*[[s, s] for s in syms])
    assert isinstance(as_list, np.ndarray) and as_list.shape == (2,) and as_list[0] is scalar


def test_every_op_has_a_builder():
    missing = [op.name for op in SCALAR_OPS if op.name != "powi" and not hasattr(sg, BUILDER_OF.get(op.name, op.name))]
    assert not missing
    assert sg.arctan2 is sg.atan2 and sg.arcsinh is sg.asinh


def test_builders_on_zero_dimensional_operands_give_exprs():
    x = sg.symbols("x")
    assert sg.sin(np.array(x, dtype=object)) is sg.sin(x)
    assert sg.atan2(np.float64(1.0), x) is sg.atan2(1.0, x)
    assert type(sg.hypot(np.array(2.0), x)) is sg.Expr


def test_mod_and_pow_builders():
    v = sg.symbols("v", 2)
    F = sg.Function("f", [v], [sg.mod(v, 0.75), sg.pow(v, 3), sg.pow(2.0, v)])
    p = np.array([-1.3, 2.2])
    got = F(p)
    np.testing.assert_allclose(got[0], np.mod(p, 0.75), rtol=1e-15)
    np.testing.assert_allclose(got[1], p**3, rtol=1e-15)
    np.testing.assert_allclose(got[2], 2.0**p, rtol=1e-15)
    assert sg.pow(v, 2)[0].op.name == "square"


def test_builder_arity_is_checked():
    x = sg.symbols("x")
    with pytest.raises(sg.ArityError, match="atan2 takes 2"):
        sg.atan2(x)
    with pytest.raises(sg.ArityError, match="sin takes 1"):
        sg.sin(x, x)
    with pytest.raises(sg.ArityError, match="2 operand"):
        sg.apply(OPS["add"], x)


def test_as_expr_array():
    x = sg.symbols("x")
    arr = sg.as_expr_array([[1, x], [np.float64(2.5), x + 1]])
    assert arr.shape == (2, 2) and arr[0, 0] is sg.const(1.0) and arr[0, 1] is x
    assert sg.as_expr_array(x).shape == () and sg.as_expr_array(x)[()] is x
    assert sg.as_expr_array(3.0)[()] is sg.const(3.0)


def test_sum_of_many_terms_is_a_left_fold_with_exact_value():
    v = sg.symbols("v", 1000)
    s = v.sum()
    F = sg.Function("s", [v], [s])
    p = np.linspace(-1, 1, 1000) ** 3
    assert float(F(p)) == math.fsum(p) or abs(float(F(p)) - math.fsum(p)) < 1e-13
    assert sg.count_ops([s]) == 999
