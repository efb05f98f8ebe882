"""Every bad input of the core raises a clear symgraph error.

Each case asserts the exact class, that it subclasses both ``SymgraphError``
and the builtin a Python user would catch, and that the message names the
offending thing (and, where it applies, what was expected and what was given).
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symgraph as sg

BUILTIN = {
    sg.FreeSymbolError: ValueError, sg.InvalidInputError: ValueError, sg.ArgumentCountError: TypeError,
    sg.ShapeError: ValueError, sg.DTypeError: TypeError, sg.NonNumericConstantError: TypeError,
    sg.SympyConversionError: ValueError, sg.ArityError: TypeError, sg.SymbolicBoolError: TypeError,
}


def raises(cls, *fragments):
    """pytest.raises for ``cls`` whose message contains every fragment (literally)."""
    import re

    pattern = "".join(f"(?=.*{re.escape(f)})" for f in fragments)
    return pytest.raises(cls, match=re.compile(pattern, re.S))


def check(info):
    err = info.value
    assert isinstance(err, sg.SymgraphError) and isinstance(err, BUILTIN[type(err)]), type(err)


def test_error_classes_subclass_the_matching_builtin():
    for cls, builtin in BUILTIN.items():
        assert issubclass(cls, sg.SymgraphError) and issubclass(cls, builtin), cls
    assert issubclass(sg.CompileError, RuntimeError) and issubclass(sg.DifferentiationError, ValueError)


@pytest.fixture
def xyz():
    return sg.symbols("x", 2), sg.symbols("y"), sg.symbols("z")


@pytest.fixture
def F(xyz):
    x, y, _ = xyz
    return sg.Function("f", [x, y], [x * y])


# ------------------------------------------------------------ free symbols
def test_free_symbols_are_named(xyz):
    x, y, z = xyz
    with raises(sg.FreeSymbolError, "'y'", "'z'", "2 symbol(s)", "not inputs") as info:
        sg.Function("f", [x], [x * y + z])
    check(info)
    w = sg.symbols("w", 12)
    with raises(sg.FreeSymbolError, "12 symbol(s)", "'w[0]'", "'w[9]'", "...") as info:
        sg.Function("g", [x], [w.sum()])
    check(info)
    with raises(sg.FreeSymbolError, "'y'") as info:  # also inside sparse outputs
        sg.Function("h", [x], [sg.SparseExpr([0], [0], [y], (1, 1))])
    check(info)


# ------------------------------------------------------------ bad inputs
@pytest.mark.parametrize("bad, shown", [
    (lambda x, y: [x + 1], "input 0 at [0] is 1 + x[0]"),
    (lambda x, y: [y, np.array([x[0], 2.0], dtype=object)], "input 1 at [1] is 2.0"),
    (lambda x, y: [2.0], "input 0 is 2.0"),
    (lambda x, y: ["x"], "input 0 is 'x'"),
    (lambda x, y: [sg.sin(y)], "input 0 is sin(y)"),
    (lambda x, y: [None], "input 0 is None"),
])
def test_inputs_that_are_not_pure_symbols(xyz, bad, shown):
    x, y, _ = xyz
    with raises(sg.InvalidInputError, shown, "not a pure symbol") as info:
        sg.Function("f", bad(x, y), [y])
    check(info)


def test_repeated_input_symbols(xyz):
    x, y, _ = xyz
    with raises(sg.InvalidInputError, "'x[0]'", "twice", "input 0 at [0]", "input 0 at [1]") as info:
        sg.Function("f", [np.array([x[0], x[0]])], [1.0])
    check(info)
    with raises(sg.InvalidInputError, "'x[1]'", "twice", "input 1") as info:
        sg.Function("f", [x, x[1]], [1.0])
    check(info)
    with raises(sg.InvalidInputError, "'y'", "twice") as info:
        sg.Function("f", [y, y], [y])
    check(info)


def test_bad_function_and_io_names(xyz):
    _, y, z = xyz
    with raises(sg.InvalidInputError, "Function name", "''") as info:
        sg.Function("", [y], [y])
    check(info)
    with raises(sg.InvalidInputError, "input_names", "1 non-empty str", "['a', 'b']") as info:
        sg.Function("f", [y], [y], input_names=["a", "b"])
    check(info)
    with raises(sg.InvalidInputError, "input_names", "distinct", "['a', 'a']") as info:
        sg.Function("f", [y, z], [y], input_names=["a", "a"])
    check(info)
    with raises(sg.InvalidInputError, "output_names", "['']") as info:
        sg.Function("f", [y], [y], output_names=[""])
    check(info)


# -------------------------------------------------------- bad arguments
def test_wrong_number_of_arguments(F):
    with raises(sg.ArgumentCountError, "f takes 2 argument(s)", "(x, y)", "got 1") as info:
        F([1.0, 2.0])
    check(info)
    with raises(sg.ArgumentCountError, "got 3") as info:
        F([1.0, 2.0], 1.0, 2.0)
    check(info)
    with raises(sg.ArgumentCountError, "got 0") as info:
        F.batch()
    check(info)


@pytest.mark.parametrize("args, fragments", [
    (([1.0, 2.0, 3.0], 1.0), ("argument 0 ('x')", "expected shape (2,)", "got (3,)")),
    (([1.0, 2.0], [1.0]), ("argument 1 ('y')", "expected shape ()", "got (1,)")),
    (([[1.0, 2.0]], 1.0), ("argument 0 ('x')", "expected shape (2,)", "got (1, 2)")),
])
def test_wrong_shapes(F, args, fragments):
    with raises(sg.ShapeError, *fragments) as info:
        F(*args)
    check(info)


def test_wrong_batch_shapes(F):
    with raises(sg.ShapeError, "argument 0 ('x')", "(N,) + (2,) for a batch, or (2,) for a value shared by all "
                "points", "got (3,)") as info:
        F.batch(np.ones(3), np.ones(1))
    check(info)
    with raises(sg.ShapeError, "argument 1 ('y')", "4 points", "argument 0 ('x') has 3") as info:
        F.batch(np.ones((3, 2)), np.ones(4))
    check(info)


@pytest.mark.parametrize("value, fragments", [
    (np.array(["a", "b"]), ("argument 0 ('x')", "expected real numbers", "dtype <U1")),
    (None, ("argument 0 ('x')", "expected real numbers", "dtype object")),
    ([1.0, [2.0]], ("argument 0 ('x')", "cannot convert list")),
    ("ab", ("argument 0 ('x')", "expected real numbers", "<U2")),
    (np.array(["2001-01-01", "2002-01-01"], dtype="datetime64[D]"), ("argument 0 ('x')", "datetime64")),
])
def test_wrong_dtypes(F, value, fragments):
    with raises(sg.DTypeError, *fragments) as info:
        F(value, 1.0)
    check(info)


def test_symbolic_arguments_make_a_call_but_not_in_a_batch(F):
    s = sg.symbols("s")
    assert sg.call.is_result(F(np.array([s, 1.0]), 1.0)[0])  # symbolic: a call node (tests/test_calls.py)
    with raises(sg.DTypeError, "argument 0 ('x')", "dtype object", "call the Function itself") as info:
        F.batch(np.array([[s, 1.0]]), np.ones(1))
    check(info)


def test_wrong_dtype_of_a_later_argument(F):
    with raises(sg.DTypeError, "argument 1 ('y')", "dtype object") as info:
        F([1.0, 2.0], np.array(1.0, dtype=object))
    check(info)
    with raises(sg.DTypeError, "argument 1 ('y')") as info:
        F.batch(np.ones((2, 2)), ["a", "b"])
    check(info)


# ------------------------------------------------- non-numeric constants
@pytest.mark.parametrize("value, fragments", [
    ("a", ("'a'", "str", "real number")),
    (None, ("None", "NoneType", "real number")),
    (1j, ("complex constant 1j", "real")),
    (np.complex128(2 + 1j), ("complex constant", "(2+1j)")),
    ([1, 2], ("[1, 2]", "list")),
    ({"k": 1}, ("{'k': 1}", "dict")),
    (np.datetime64("2001-01-01"), ("datetime64",)),
])
def test_non_numeric_constants(xyz, value, fragments):
    x, y, _ = xyz
    for build in (lambda: y + value, lambda: value * y, lambda: sg.const(value), lambda: sg.atan2(y, value)
                  if not isinstance(value, list) else sg.const(value)):
        with raises(sg.NonNumericConstantError, *fragments) as info:
            build()
        check(info)


def test_non_numeric_outputs(xyz):
    _, y, _ = xyz
    for value, shown in (("a", "'a'"), (None, "None"), (1j, "1j")):
        with raises(sg.NonNumericConstantError, shown) as info:
            sg.Function("f", [y], [value])
        check(info)
        with raises(sg.NonNumericConstantError, shown) as info:
            sg.Function("f", [y], [np.array([y, value], dtype=object)])
        check(info)


# ------------------------------------------------------ misc construction
def test_arity_errors(xyz):
    _, y, z = xyz
    with raises(sg.ArityError, "sin takes 1 operand(s)", "got 2") as info:
        sg.apply(sg.OPS["sin"], y, z)
    check(info)
    with raises(sg.ArityError, "if_else takes 3", "got 2") as info:
        sg.if_else(y, z)
    check(info)


def test_bad_symbol_shapes():
    for shape, shown in ((-1, "-1"), (2.5, "2.5"), ((2, "a"), "(2, 'a')")):
        with raises(sg.ShapeError, "symbols('x')", shown) as info:
            sg.symbols("x", shape)
        check(info)


def test_symbolic_truth_values(xyz):
    _, y, z = xyz
    with raises(sg.SymbolicBoolError, "y < z", "sg.if_else") as info:
        bool(y < z)
    check(info)
    with raises(sg.SymbolicBoolError, "sin(y)", "float") as info:
        float(sg.sin(y))
    check(info)


def test_sparse_expr_shapes(xyz):
    _, y, z = xyz
    with raises(sg.ShapeError, "one length", "1, 2, 1") as info:
        sg.SparseExpr([0], [0, 1], [y], (2, 2))
    check(info)
    with raises(sg.ShapeError, "outside the shape (2, 2)") as info:
        sg.SparseExpr([0, 3], [0, 0], [y, z], (2, 2))
    check(info)
    with raises(sg.ShapeError, "duplicate") as info:
        sg.SparseExpr([0, 0], [1, 1], [y, z], (2, 2))
    check(info)


# ------------------------------------------------------------- from_sympy
def test_unknown_names_in_from_sympy(xyz):
    _, y, _ = xyz
    q = sp.Symbol("q")
    with raises(sg.SympyConversionError, "symbol 'q'", "not in the mapping", "known: ['y']") as info:
        sg.from_sympy(q + 1, {"y": y})
    check(info)
    with raises(sg.SympyConversionError, "function 'gamma'", "gamma(y)") as info:
        sg.from_sympy(sp.gamma(sp.Symbol("y")), {"y": y})
    check(info)
    with raises(sg.SympyConversionError, "function 'f'") as info:
        sg.from_sympy(sp.Function("f")(sp.Symbol("y")), {"y": y})
    check(info)
    with raises(sg.SympyConversionError, "zoo", "not real") as info:
        sg.from_sympy(sp.zoo, {})
    check(info)
