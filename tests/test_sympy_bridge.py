"""The SymPy bridge: to_sympy / from_sympy for every op, checked by SymPy's own arithmetic.

Oracle: SymPy evaluates the converted expression at exact rational points
with 30 significant digits; the VM must agree to 1e-12.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, strategies as st
from sympy.codegen import cfunctions as cf

import symgraph as sg
from symgraph.expr import topological
from symgraph.ops import OPS, SCALAR_OPS
from strategies import points, random_graphs

OPERATIONS = list(SCALAR_OPS)
POINTS = [(0.3, -0.7, 1.3), (-0.45, 0.8, -2.2), (1.7, 2.5, 0.0), (0.9, -1.1, 0.6), (2.5, 0.3, -0.9)]


def sympy_value(expr, values: dict) -> float:
    """SymPy's own high-precision value of ``expr`` at exact rationals of the float ``values``."""
    exact = {s: sp.Rational(Fraction(v)) for s, v in values.items()}
    expr = expr.replace(cf.Cbrt, lambda a: sp.real_root(a, 3))  # SymPy's Cbrt has no evalf
    result = sp.N(expr.subs(exact), 30)
    if result.is_real is False or result.has(sp.zoo, sp.nan) or not result.is_number:
        return math.nan
    return float(result)


def _node(op, syms):
    if op.name == "polygamma":  # a constant integer order
        return sg.apply(op, 2.0, syms[0])
    return sg.apply(op, syms[0], 3.0) if op.name == "powi" else sg.apply(op, *syms[: op.arity])


@pytest.mark.parametrize("name", [op.name for op in OPERATIONS])
def test_to_sympy_of_every_op_has_the_vm_value(name):
    op = OPS[name]
    syms = [sg.symbols(s) for s in "abc"]
    e = _node(op, syms)
    mapping = {}
    s = sg.to_sympy(e, mapping)
    assert set(mapping) <= set(syms)
    F = sg.Function("f", syms, [e])
    compared = 0
    for p in POINTS:
        got = float(F(*p))
        if not math.isfinite(got):
            continue
        want = sympy_value(s, {mapping[k]: v for k, v in zip(syms, p) if k in mapping})
        assert got == pytest.approx(want, rel=1e-12, abs=1e-300), (name, p, s)
        compared += 1
    assert compared >= 2, name


NOT_IDENTICAL = {
    "sub": "SymPy has no subtraction: a - b reads back as a + -b",
    "fmod": "no SymPy fmod: written with sign/floor/Abs",
    "not": "a number as a condition becomes Ne(a, 0)",
    "and": "a number as a condition becomes Ne(a, 0)",
    "or": "a number as a condition becomes Ne(a, 0)",
    "if_else": "a number as a condition becomes Ne(a, 0)",
}


@pytest.mark.parametrize("name", [op.name for op in OPERATIONS])
def test_round_trip_of_every_op(name):
    op = OPS[name]
    syms = [sg.symbols(s) for s in "abc"]
    e = _node(op, syms)
    mapping = {}
    back = sg.from_sympy(sg.to_sympy(e, mapping), {v: k for k, v in mapping.items()})
    if name not in NOT_IDENTICAL:
        assert back is e, (name, str(back))
    F = sg.Function("f", syms, [e, back])
    for p in POINTS + [(0.0, 0.0, 0.0), (-0.0, 2.0, -1.0)]:
        a, b = F(*p)
        assert a == pytest.approx(b, rel=1e-13, abs=1e-15) or (math.isnan(a) and math.isnan(b)), (name, p)


def test_comparisons_in_conditions_round_trip_exactly():
    x, y, z = sg.symbols("x"), sg.symbols("y"), sg.symbols("z")
    for e in (sg.if_else(x < y, x, z), sg.logical_and(x < y, sg.ge(z, 1)), sg.logical_not(sg.eq(x, y)),
              sg.logical_or(sg.ne(x, 0), y > z), sg.if_else(sg.logical_and(x < 1, y < 1), z, -z)):
        mapping = {}
        back = sg.from_sympy(sg.to_sympy(e, mapping), {v: k for k, v in mapping.items()})
        F = sg.Function("f", [x, y, z], [e, back])
        for p in ((0.0, 1.0, 2.0), (1.0, 0.0, 0.5), (2.0, 2.0, 1.0), (0.5, 0.2, -3.0)):
            a, b = F(*p)
            assert a == b, (str(e), p)


@given(random_graphs(max_steps=8, ops=[op for op in OPERATIONS if op.name != "fmod"]), st.data())
def test_round_trip_of_random_graphs_keeps_values(graph, data):
    """VM(from_sympy(to_sympy(g))) == VM(g) wherever g is finite (SymPy may reorder sums).

    Tolerance 1e-9 times the largest intermediate magnitude: SymPy's
    canonical reordering changes rounding, as much as a sum's terms allow.
    """
    mapping = {}
    converted = sg.to_sympy(np.array(graph.outputs, dtype=object), mapping)
    if any(c.has(sp.zoo, sp.nan) for c in converted):
        return  # x / 0 is SymPy's complex infinity: not representable in a real graph
    back = sg.from_sympy(converted, {v: k for k, v in mapping.items()})
    order = [n for n in topological(graph.outputs) if not n.is_symbol]
    F = sg.Function("f", graph.inputs, [np.array(order, dtype=object), np.array(graph.outputs, dtype=object)])
    G = sg.Function("g", graph.inputs, [back])
    for _ in range(3):
        p = data.draw(points(len(graph.inputs), wide=False))
        inner, want = F(*p)
        if not np.isfinite(inner).all() or (np.abs(inner) > 1e6).any():
            continue
        scale = max(1.0, float(np.abs(inner).max(initial=0.0)), float(np.abs(p).max()))
        got = G(*p)
        assert np.allclose(got, want, rtol=0, atol=1e-9 * scale), ([str(o) for o in graph.outputs], converted, p,
                                                                  got, want)


# --------------------------------------------------------------- from_sympy
@pytest.fixture
def t():
    return sp.Symbol("t", real=True), sg.symbols("t")


def test_from_sympy_of_sympy_built_expressions(t):
    st_, tg = t
    exprs = [
        sp.sin(st_) ** 2 + sp.exp(-st_) / 2,
        sp.sqrt(st_**2 + 1) - 1 / sp.sqrt(st_**2 + 2),
        sp.Rational(2, 3) * st_**5 - sp.pi * st_ + sp.E,
        sp.atan2(st_, 2) * sp.cosh(st_) + sp.erfc(st_),
        sp.Abs(st_ - 1) + sp.sign(st_) + sp.floor(3 * st_) + sp.ceiling(st_ / 2),
        sp.Mod(st_, sp.Rational(3, 4)),
        sp.log(st_**2 + 1, 2) + sp.log(st_**2 + 3, 10),
        sp.Min(st_, 1, st_**2) + sp.Max(st_, -1, sp.cos(st_)),
        cf.expm1(st_) + cf.log1p(st_**2) + cf.hypot(st_, 2) + cf.log2(st_**2 + 1) + cf.log10(st_**2 + 1),
        2**st_ + st_**-2 + (st_**2 + 1) ** sp.Rational(3, 2),
        cf.exp2(st_) - sp.tanh(st_) * sp.asinh(st_) + sp.atan(st_),
    ]
    for expr in exprs:
        e = sg.from_sympy(expr, {"t": tg})
        F = sg.Function("f", [tg], [e])
        for v in (0.37, -1.3, 2.2):
            assert float(F(v)) == pytest.approx(sympy_value(expr, {st_: v}), rel=1e-12), (expr, v)


def test_piecewise_becomes_if_else(t):
    st_, tg = t
    pw = sp.Piecewise((st_, st_ < 0), (st_**2, st_ < 1), (1, True))
    e = sg.from_sympy(pw, {st_: tg})
    assert e.op.name == "if_else" and e.args[0] is (tg < 0) and e.args[1] is tg
    inner = e.args[2]
    assert inner.op.name == "if_else" and inner.args[0] is (tg < 1) and inner.args[2] is sg.const(1.0)
    F = sg.Function("f", [tg], [e])
    assert F.batch(np.array([-2.0, 0.5, 3.0])).tolist() == [-2.0, 0.25, 1.0]
    partial = sg.from_sympy(sp.Piecewise((st_, st_ > 0)), {st_: tg})  # undefined elsewhere: nan
    got = sg.Function("g", [tg], [partial]).batch(np.array([2.0, -2.0]))
    assert got[0] == 2.0 and math.isnan(got[1])
    both = sg.from_sympy(sp.Piecewise((1, sp.And(st_ > 0, st_ < 2)), (0, True)), {st_: tg})
    assert sg.Function("h", [tg], [both]).batch(np.array([-1.0, 1.0, 3.0])).tolist() == [0.0, 1.0, 0.0]


def test_min_max_and_relationals(t):
    st_, tg = t
    u = sp.Symbol("u", real=True)
    ug = sg.symbols("u")
    m = {"t": tg, "u": ug}
    assert sg.from_sympy(sp.Min(st_, u), m) is sg.fmin(tg, ug) or sg.from_sympy(sp.Min(st_, u), m) is sg.fmin(ug, tg)
    three = sg.from_sympy(sp.Max(st_, u, 0), m)
    F = sg.Function("f", [tg, ug], [three])
    assert F(-1.0, -2.0) == 0.0 and F(3.0, -2.0) == 3.0 and F(-1.0, 5.0) == 5.0
    for rel, name in ((sp.Lt, "lt"), (sp.Le, "le"), (sp.Gt, "gt"), (sp.Ge, "ge"), (sp.Eq, "eq"), (sp.Ne, "ne")):
        e = sg.from_sympy(rel(st_, u), m)
        assert e.op.name == name and set(e.args) == {tg, ug}, name
    assert sg.from_sympy(sp.Not(st_ < u), m).op.name in ("not", "ge")
    assert sg.from_sympy(sp.Or(st_ < u, st_ > 2), m).op.name == "or"
    assert sg.from_sympy(sp.true, m) is sg.const(1.0) and sg.from_sympy(sp.false, m) is sg.const(0.0)


def test_log_with_base(t):
    st_, tg = t
    b = sp.Symbol("b", positive=True)
    bg = sg.symbols("b")
    e = sg.from_sympy(sp.log(st_, b), {"t": tg, "b": bg})
    F = sg.Function("f", [tg, bg], [e])
    assert float(F(8.0, 2.0)) == pytest.approx(3.0, rel=1e-15)
    e2 = sg.from_sympy(sp.log(st_, 2), {"t": tg})
    assert float(sg.Function("g", [tg], [e2])(1024.0)) == pytest.approx(10.0, rel=1e-15)


def test_numbers_and_cube_roots(t):
    st_, tg = t
    assert sg.from_sympy(sp.pi, {}) is sg.const(math.pi) and sg.from_sympy(sp.E, {}) is sg.const(math.e)
    assert sg.from_sympy(sp.Rational(1, 3), {}).value == 1 / 3 and sg.from_sympy(sp.oo, {}).value == math.inf
    assert sg.from_sympy(-sp.oo, {}).value == -math.inf and math.isnan(sg.from_sympy(sp.nan, {}).value)
    assert sg.from_sympy(sp.Float("2.5"), {}) is sg.const(2.5) and sg.from_sympy(7, {}) is sg.const(7.0)
    cube = sg.from_sympy(st_ ** sp.Rational(1, 3), {"t": tg})
    assert cube is sg.cbrt(tg)  # read as the real cube root
    assert float(sg.Function("f", [tg], [cube])(-8.0)) == -2.0
    assert sg.from_sympy(1 / st_, {"t": tg}) is 1.0 / tg and sg.from_sympy(sp.exp(st_), {"t": tg}) is sg.exp(tg)


def test_mapping_by_symbol_or_name_and_to_numbers(t):
    st_, tg = t
    assert sg.from_sympy(st_ + 1, {st_: tg}) is tg + 1
    assert sg.from_sympy(st_ + 1, {"t": tg}) is tg + 1
    assert sg.from_sympy(st_ * 2, {"t": 3.5}) is sg.const(7.0)


def test_to_sympy_symbols_and_name_clashes():
    a1, a2 = sg.symbols("a"), sg.symbols("a")
    mapping = {}
    s = sg.to_sympy(a1 - a2, mapping)
    assert mapping[a1].name == "a" and mapping[a2].name == "a_1" and mapping[a1].is_real
    assert s == mapping[a1] - mapping[a2]
    assert float(sg.to_sympy(sg.const(2.5))) == 2.5 and sg.to_sympy(sg.const(3)) == sp.Integer(3)
    assert sg.to_sympy(sg.const(math.inf)) is sp.oo and sg.to_sympy(sg.const(math.nan)) is sp.nan
    assert sg.to_sympy(2.0) == 2


def test_arrays_both_ways():
    v = sg.symbols("v", (2, 2))
    mapping = {}
    s = sg.to_sympy(v * 2, mapping)
    assert isinstance(s, np.ndarray) and s.shape == (2, 2) and s[1, 0] == 2 * mapping[v[1, 0]]
    back = sg.from_sympy(sp.Matrix(s.tolist()), {k.name: e for e, k in mapping.items()})
    assert back.shape == (2, 2) and all(b is e for b, e in zip(back.ravel(), (v * 2).ravel()))
    assert sg.from_sympy([mapping[v[0, 0]], 1], {mapping[v[0, 0]]: v[0, 0]})[0] is v[0, 0]


def test_unknown_symbols_and_functions_are_named(t):
    st_, tg = t
    with pytest.raises(sg.SympyConversionError, match="'w'") as info:
        sg.from_sympy(st_ + sp.Symbol("w"), {"t": tg})
    assert isinstance(info.value, ValueError) and "known: ['t']" in str(info.value)
    with pytest.raises(sg.SympyConversionError, match="gamma"):
        sg.from_sympy(sp.gamma(st_), {"t": tg})
    with pytest.raises(sg.SympyConversionError, match="besselj"):
        sg.from_sympy(sp.besselj(1, st_), {"t": tg})
    with pytest.raises(sg.SympyConversionError, match="ImaginaryUnit"):
        sg.from_sympy(st_ + sp.I, {"t": tg})
    with pytest.raises(sg.SympyConversionError, match="zoo is not real"):
        sg.from_sympy(st_ + sp.zoo, {"t": tg})
