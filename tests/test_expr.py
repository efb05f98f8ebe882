"""Expr nodes: hash-consing, construction-time simplification, printing, bool/float, collection."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import given, strategies as st

import symgraph as sg
import symgraph.expr as E
from symgraph.expr import topological
from symgraph.ops import OP_LIST, OPS, SCALAR_OPS
from strategies import points, random_graphs


@pytest.fixture
def xyz():
    return sg.symbols("x"), sg.symbols("y"), sg.symbols("z")


# ------------------------------------------------------------ hash-consing
def test_same_construction_gives_same_object(xyz):
    x, y, z = xyz
    assert (x + 1) * 2 is (x + 1) * 2
    assert sg.sin(x) * sg.cos(y) is sg.sin(x) * sg.cos(y)
    assert sg.atan2(y, x) is sg.apply(OPS["atan2"], y, x)
    assert sg.if_else(x < y, x, z) is sg.if_else(x < y, x, z)
    assert x ** 3 is x ** 3 and x ** 0.5 is x ** 0.5
    assert sg.atan2(y, x) is not sg.atan2(x, y)  # operand order matters
    assert x - y is not y - x
    # the shared subgraph is one node: 2 ops (sin, add), not 3
    s = sg.sin(x)
    assert sg.count_ops([s + sg.sin(x)]) == 2


def test_constants_are_interned_by_value():
    assert sg.const(3) is sg.const(3.0) is sg.const(np.float64(3)) is sg.const(np.int32(3))
    assert sg.const(True) is sg.const(1.0) is sg.const(np.True_)
    assert sg.const(np.array(2.5)) is sg.const(2.5)
    assert sg.const(float("nan")) is sg.const(np.nan) is sg.const(-float("nan"))
    assert sg.const(math.inf) is not sg.const(-math.inf)
    assert sg.const(sg.const(4)) is sg.const(4)


def test_signed_zero_constants_differ():
    pos, neg = sg.const(0.0), sg.const(-0.0)
    assert pos is not neg and neg is sg.const(np.float64(-0.0))
    assert math.copysign(1.0, neg.value) == -1.0 and math.copysign(1.0, pos.value) == 1.0
    assert str(neg) == "-0.0" and str(pos) == "0"
    x = sg.symbols("x")
    F = sg.Function("f", [x], [x / pos, x / neg])
    assert F(1.0) == (math.inf, -math.inf)


def test_symbols_are_distinct_even_with_one_name():
    a, b = sg.symbols("x"), sg.symbols("x")
    assert a is not b and a.name == b.name == "x"
    assert a + 1 is not b + 1
    assert a.is_symbol and not a.is_const and not (a + 1).is_symbol
    assert {a: 1, b: 2}[a] == 1  # hashes by identity
    F = sg.Function("f", [a, b], [a - b])
    assert float(F(5.0, 2.0)) == 3.0


# --------------------------------------------------------- simplification
def test_additive_and_multiplicative_identities(xyz):
    x, _, _ = xyz
    assert x + (-0.0) is x and -0.0 + x is x and x - 0 is x and x - 0.0 is x  # exact in IEEE
    assert -0.0 - x is -x
    # x + 0.0 and 0.0 - x are not x and -x at x = -0.0 and +0.0: kept (IEEE), unless x cannot be that zero
    assert x + 0 is not x and 0 + x is x + 0.0 and x - (-0.0) is 0.0 + x and (0 - x) is not -x
    assert sg.abs(x) + 0 is sg.abs(x) and 0 - -sg.abs(x) is sg.abs(x)
    F = sg.Function("f", [x], [sg.const(0.0) + x, x - (-0.0), 0.0 - x, x + (-0.0), x - 0.0, -0.0 - x])
    for v in (-0.0, 0.0):
        got = [float(o) for o in F(v)]
        ieee = [0.0 + v, v - (-0.0), 0.0 - v, v + (-0.0), v - 0.0, -0.0 - v]
        assert [math.copysign(1.0, g) for g in got] == [math.copysign(1.0, e) for e in ieee], (v, got)
    assert x * 1 is x and 1 * x is x and x * 1.0 is x
    assert x / 1 is x
    assert x ** 1 is x and sg.pow(x, 1) is x
    assert (x * -1) is -x and (-1 * x) is -x and x / -1 is -x


def test_absorbing_zero_drops_nan_propagation(xyz):
    x, y, _ = xyz
    zero = sg.const(-0.0)  # the zero that vanishes exactly from sums
    assert x * 0 is zero and 0 * x is zero and x * -0.0 is zero
    assert 0 / x is zero and -0.0 / x is zero
    assert x * 0 + x is x and 1 * x + 0 * y is x and 0 * x - y is -y  # zero terms drop out of sums, exactly
    F = sg.Function("f", [x], [x * 0, 0 / x])
    assert [float(v) for v in F(math.inf)] == [0.0, 0.0]  # documented: not IEEE's nan
    assert math.copysign(1.0, float(F(2.0)[0])) == -1.0  # documented: IEEE gives +0.0
    assert float(F(0.0)[1]) == 0.0  # documented: IEEE 0/0 is nan
    assert x ** 0 is sg.const(1.0) and sg.apply(OPS["powi"], x, 0) is sg.const(1.0)


def test_double_negation(xyz):
    x, y, _ = xyz
    assert -(-x) is x and -(-(-x)) is -x
    assert -(-(x + y)) is x + y
    assert +x is x


def test_constant_folding(xyz):
    x, _, _ = xyz
    assert (sg.const(2) + 3) is sg.const(5)
    assert sg.sin(sg.const(0.0)) is sg.const(0.0)
    assert sg.exp(sg.const(1.0)).value == math.exp(1.0)
    assert sg.atan2(1.0, -1.0).value == math.atan2(1.0, -1.0)
    assert sg.if_else(1.0, 2.0, 3.0).value == 2.0
    assert sg.log(sg.const(-1.0)).value != sg.log(sg.const(-1.0)).value  # nan, folded
    assert sg.const(1.0) / 0.0 is sg.const(math.inf)
    assert (sg.const(2) ** 10).value == 1024.0
    assert sg.floor(sg.const(-0.5)) is sg.const(-1.0)
    # partially constant graphs fold the constant part only
    e = x * (sg.const(2) * 3)
    assert e.op.name == "mul" and e.args[0] is sg.const(6.0) and e.args[1] is x
    for op in SCALAR_OPS:
        assert sg.apply(op, *[0.5] * op.arity).is_const, op.name


def test_powers_choose_square_powi_pow(xyz):
    x, y, _ = xyz
    assert (x ** 2).op.name == "square" and (x ** 3).op.name == "powi" and (x ** -2).op.name == "powi"
    assert (x ** 2.5).op.name == "pow" and (x ** y).op.name == "pow" and (2 ** x).op.name == "pow"
    assert (x ** 3).args[1] is sg.const(3)


def test_if_else_trivial_cases(xyz):
    x, y, z = xyz
    assert sg.if_else(1, x, y) is x and sg.if_else(0, x, y) is y and sg.if_else(-0.0, x, y) is y
    assert sg.if_else(math.nan, x, y) is x  # nan counts as true, as in C
    assert sg.if_else(z, x, x) is x
    c = x < y
    assert sg.if_else(c, 1, 0) is c
    assert sg.if_else(c, 0, 1) is sg.logical_not(c)
    nb = sg.if_else(z, 1, 0)  # z is not 0/1-valued: must stay a branch
    assert nb.op.name == "if_else"
    assert sg.if_else(c, x, y).args == (c, x, y)


def test_constants_first_in_commutative_ops(xyz):
    x, y, _ = xyz
    for op in OP_LIST:
        if op.has("commutative") and op.arity == 2:
            node = sg.apply(op, x, 2.5)
            assert node.args[0] is sg.const(2.5) and node.args[1] is x, op.name
            assert sg.apply(op, 2.5, x) is node, op.name
    assert (x - 2).args == (x, sg.const(2.0))  # not commutative: order kept
    assert (x / 2).args[0] is x and sg.atan2(x, 2).args[0] is x and (x < 2).args[0] is x


def test_simplifications_agree_with_the_unsimplified_value():
    """Every construction-time rewrite keeps the value (on finite nonzero inputs)."""
    x = sg.symbols("x")
    cases = [x + 0, 0 + x, x - 0, 0 - x, x * 1, 1 * x, x / 1, x * -1, -1 * x, x / -1, -(-x), x ** 1,
             x ** 0, sg.if_else(x < 1, 1, 0), sg.if_else(x < 1, 0, 1)]
    want = [lambda v: v + 0, lambda v: 0 + v, lambda v: v - 0, lambda v: 0 - v, lambda v: v, lambda v: v,
            lambda v: v, lambda v: -v, lambda v: -v, lambda v: -v, lambda v: v, lambda v: v,
            lambda v: 1.0, lambda v: float(v < 1), lambda v: float(not v < 1)]
    F = sg.Function("f", [x], [np.array(cases, dtype=object)])
    for v in (-2.5, 0.5, 3.0, 1e300):
        np.testing.assert_array_equal(F(v), [w(v) for w in want])


# ------------------------------------------------------------------ printing
def _printing_cases(x, y, z):
    return [
        (x + y + z, "x + y + z"),
        (x + (y + z), "x + (y + z)"),  # the text parses back to this very graph
        (x + (y - z), "x + (y - z)"),
        ((x + y) - z, "x + y - z"),
        (x * (y * z), "x * (y * z)"),
        (x - (y - z), "x - (y - z)"),
        ((x - y) - z, "x - y - z"),
        (x - (y + z), "x - (y + z)"),
        (x * (y + z), "x * (y + z)"),
        ((x + y) * z, "(x + y) * z"),
        (x / (y * z), "x / (y * z)"),
        ((x / y) / z, "x / y / z"),
        (x / y * z, "x / y * z"),
        (x * (y / z), "x * (y / z)"),
        (x / (y / z), "x / (y / z)"),
        (x ** y ** z, "x**y**z"),  # right-associative
        ((x ** y) ** z, "(x**y)**z"),
        (x ** (y ** 2), "x**y**2"),
        ((x ** y) ** 2, "(x**y)**2"),
        (x ** 3, "x**3"),
        ((x + y) ** 2, "(x + y)**2"),
        (-x ** 2, "-x**2"),
        ((-x) ** 2, "(-x)**2"),
        ((-x) ** y, "(-x)**y"),
        (-(x ** y), "-x**y"),
        (2 ** x, "2**x"),
        (sg.const(-2.0) ** x, "(-2)**x"),
        (-(x + y), "-(x + y)"),
        (-(x * y), "-(x * y)"),
        (-x * y, "-x * y"),
        (x - -y, "x - -y"),
        (x * -y, "x * -y"),
        (x / -y, "x / -y"),
        (x * -2, "-2 * x"),
        (x + -2, "-2 + x"),
        (x - 2, "x - 2"),
        (x * 3.5, "3.5 * x"),
        (x + 1e-8, "1e-08 + x"),
        (x * 1e20, "1e+20 * x"),
        (x < y, "x < y"),
        (sg.le(x, y), "x <= y"),
        (sg.gt(x, y), "x > y"),
        (sg.ge(x, y), "x >= y"),
        (sg.eq(x, y), "x == y"),
        (sg.ne(x, y), "x != y"),
        (sg.lt(x < y, z), "(x < y) < z"),  # no chained comparison
        (sg.lt(x, y < z), "x < (y < z)"),
        (x + 1 < 2 * y, "1 + x < 2 * y"),
        ((x < y) * 2, "2 * (x < y)"),
        (-(x < y), "-(x < y)"),
        (sg.sin(x + y), "sin(x + y)"),
        (sg.atan2(y, x), "atan2(y, x)"),
        (sg.if_else(x < y, x, y), "if_else(x < y, x, y)"),
        (abs(x - y), "abs(x - y)"),
        (x % y, "x - floor(x / y) * y"),
        (x // y, "floor(x / y)"),
        (x + float("inf"), "inf + x"),
        (x * float("nan"), "nan * x"),
        (sg.const(-0.0) / x, "-0.0"),  # 0 / x folds to -0.0 (construction, documented)
    ]


def test_str_minimal_parentheses():
    cases = _printing_cases(sg.symbols("x"), sg.symbols("y"), sg.symbols("z"))
    bad = [(want, str(e)) for e, want in cases if str(e) != want]
    assert not bad


def test_repr_and_format(xyz):
    x, y, _ = xyz
    assert repr(x) == "Expr(x)" and repr(sg.const(2.5)) == "Expr(2.5)"
    assert repr(sg.sin(x) + y) == "Expr(sin(x) + y)"
    assert f"{x + 1:>8}" == "   1 + x"
    big = x
    for k in range(200):
        big = big * (k + 2) + y
    text = repr(big)
    assert text.startswith("Expr(") and text.endswith("...)") and len(text) < 260


def test_str_parses_back_to_the_same_graph():
    """``eval(str(e))`` over the symbols and sg builders rebuilds the very same node."""
    x, y, z = sg.symbols("x"), sg.symbols("y"), sg.symbols("z")
    ns = _namespace([x, y, z])
    for e, text in _printing_cases(x, y, z):
        assert sg.const(eval(str(e), {}, ns)) is e, text  # noqa: S307 - our own printed text


def _namespace(symbols):
    ns = {name: getattr(sg, name) for name in sg.__all__}
    ns.update({s.name: s for s in symbols}, nan=math.nan, inf=math.inf, abs=abs)
    return ns


PRINTABLE = [op for op in SCALAR_OPS if op.name not in ("not", "and", "or")]  # no Python spelling


@given(random_graphs(max_steps=10, ops=PRINTABLE), st.data())
def test_str_reads_back_as_python_with_the_same_value(graph, data):
    """``eval(str(e))`` builds a graph with the same values: parentheses and precedence are right.

    (Not always the same node: ``sg.apply`` can build ``pow(x, 3)`` or
    ``powi(x, 2)``, which read back through ``**`` as ``powi``/``square``.)
    """
    p = data.draw(points(len(graph.inputs)))
    ns = _namespace(graph.inputs)
    back = [eval(str(out), {}, ns) for out in graph.outputs]  # noqa: S307 - our own printed text
    F = graph.function()
    G = sg.Function("back", graph.inputs, [np.array(back, dtype=object)])
    for value, again, out in zip(F(*p), G(*p), graph.outputs):
        assert (value == again and math.copysign(1, value) == math.copysign(1, again)) or (
            value != value and again != again), (str(out), p, value, again)


# --------------------------------------------------------- bool and float
def test_bool_of_symbolic_comparison_raises_naming_if_else(xyz):
    x, y, _ = xyz
    with pytest.raises(sg.SymbolicBoolError, match=r"sg\.if_else") as info:
        if x < y:
            pass
    assert isinstance(info.value, TypeError) and isinstance(info.value, sg.SymgraphError)
    assert "x < y" in str(info.value)
    with pytest.raises(sg.SymbolicBoolError, match="if_else"):
        bool(x)
    with pytest.raises(sg.SymbolicBoolError, match="if_else"):
        max(x, y)
    with pytest.raises(sg.SymbolicBoolError):
        _ = x in [y]  # `in` compares with ==, which builds a node
    assert x in [x]  # identity short-cut of `in`
    with pytest.raises(sg.SymbolicBoolError, match=r"sg\.lt"):
        _ = sg.symbols("v", 3) < 1  # numpy asks bool() of each element
    assert bool(sg.const(2.0)) and not bool(sg.const(0.0)) and bool(sg.const(math.nan))


def test_comparison_operators_build_nodes(xyz):
    x, y, _ = xyz
    for e, name in ((x < y, "lt"), (x <= y, "le"), (x > y, "gt"), (x >= y, "ge"), (x == y, "eq"),
                    (x != y, "ne"), (1 < x, "gt"), (1 == x, "eq")):
        assert type(e) is sg.Expr and e.op.name == name
    assert (1 < x).args == (x, sg.const(1.0))  # reflected: x > 1


def test_float_of_constants_and_symbols(xyz):
    x, _, _ = xyz
    assert float(sg.const(2.5)) == 2.5 and float(sg.const(3) * 2) == 6.0
    assert math.isnan(float(sg.const(math.nan)))
    assert sg.const(4).value == 4.0 and x.name == "x"
    with pytest.raises(sg.SymbolicBoolError, match="x"):
        float(x + 1)
    with pytest.raises(AttributeError, match="only constants"):
        _ = x.value
    with pytest.raises(AttributeError, match="only symbols"):
        _ = sg.const(1).name


def test_nodes_are_immutable(xyz):
    x, y, _ = xyz
    e = x + y
    with pytest.raises(AttributeError, match="immutable"):
        e.args = (y, x)
    with pytest.raises(AttributeError, match="immutable"):
        e.op = OPS["sub"]
    with pytest.raises(AttributeError, match="immutable"):
        del e.data
    with pytest.raises(AttributeError):
        e.extra = 1  # __slots__: no new attributes
    with pytest.raises(TypeError):
        sg.Expr()
    with pytest.raises(TypeError, match="picklable"):
        pickle.dumps(e)
    assert e.args == (x, y) and e.op is OPS["add"] and e.data is None


def test_python_numbers_and_numpy_scalars_on_either_side(xyz):
    x, _, _ = xyz
    for k in (2, 2.0, np.float64(2), np.int64(2), np.float32(2)):
        assert x * k is 2 * x and k * x is 2 * x, type(k)
        assert x + k is k + x and (k - x).args == (sg.const(2.0), x) and (k / x).args[0] is sg.const(2.0)
        assert type(k ** x) is sg.Expr and (k ** x).op.name == "pow"
    assert type(np.float64(2) < x) is sg.Expr and (np.float64(2) < x).args == (sg.const(2.0), x)


def test_mod_and_floordiv_follow_python(xyz):
    x, y, _ = xyz
    F = sg.Function("f", [x, y], [x % y, x // y, 7.5 % x, 7.5 // x])
    for a, b in ((7.5, 2.0), (-7.5, 2.0), (7.5, -2.0), (-7.5, -2.0), (3.0, 0.7)):
        got = F(a, b)
        assert got[0] == pytest.approx(a % b, rel=1e-15, abs=1e-15) and got[1] == a // b
        assert got[2] == pytest.approx(7.5 % a, abs=1e-15) and got[3] == 7.5 // a


# ---------------------------------------------------------------- traversal
def test_topological_order_operands_first(xyz):
    x, y, _ = xyz
    f = sg.sin(x * y) + x * y
    order = topological([f])
    position = {n: i for i, n in enumerate(order)}
    assert len(order) == len(set(order)) == 5
    for n in order:
        assert all(position[a] < position[n] for a in n.args)
    assert [s.name for s in sg.free_symbols([f])] == ["x", "y"]
    assert sg.count_ops([f]) == 3 and sg.count_ops([x]) == 0


# ---------------------------------------------------------------- collection
def test_collect_frees_dead_nodes_and_keeps_live_ones():
    x = sg.symbols("x")
    keep = sg.sin(x) + 1
    inner = sg.exp(sg.cos(x * 3))  # cos(3*x) is referenced only as an operand
    sg.collect()
    before = len(E._TABLE)
    junk = [sg.cos(x + (k + 0.5)) for k in range(2000)]
    assert len(E._TABLE) >= before + 4000 or len(E._TABLE) < before  # an automatic sweep may have run
    del junk
    dropped = sg.collect()
    assert dropped >= 4000
    assert len(E._TABLE) <= before
    assert sg.sin(x) + 1 is keep and keep.args[1] is sg.sin(x)
    assert sg.cos(x * 3) is inner.args[0] and sg.exp(sg.cos(x * 3)) is inner
    assert sg.collect() == 0  # nothing left to drop
    F = sg.Function("f", [x], [keep, inner])
    assert F(0.0) == (1.0, math.exp(1.0))
