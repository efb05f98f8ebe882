"""The op table and the numpy VM against an independent oracle: Python's ``math``.

``MATH`` below is a reference implementation of every op written with the
``math`` module and plain Python floats, independent of ``symgraph/ops.py``.
``math`` raises ``ValueError``/``OverflowError`` where IEEE arithmetic (and
so the VM and C) gives nan or inf; each entry maps those to the IEEE value.
``DERIV`` holds closed-form partial derivatives, the oracle for complex-step
evaluation through the VM.  A new op without entries in both tables fails
:func:`test_reference_tables_cover_every_op`.
"""

from __future__ import annotations

import cmath
import itertools
import math

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import symgraph as sg
from symgraph.expr import topological
from symgraph.ops import OP_LIST, OPS, SCALAR_OPS
from strategies import points, random_graphs

INF, NAN = math.inf, math.nan


# ----------------------------------------------------------------- reference
def _odd_integer(y: float) -> bool:
    return math.isfinite(y) and y.is_integer() and y % 2 == 1


def _pow(x: float, y: float) -> float:
    try:
        return math.pow(x, y)
    except OverflowError:
        return -INF if x < 0 and _odd_integer(y) else INF
    except ValueError:
        if x == 0 and y < 0:  # pole: C99 pow(+-0, y<0)
            return math.copysign(INF, x) if _odd_integer(y) else INF
        return NAN  # negative base, non-integer exponent


def _div(a: float, b: float) -> float:
    try:
        return a / b
    except ZeroDivisionError:
        if a != a or a == 0:
            return NAN
        return math.copysign(INF, a) * math.copysign(1.0, b)


def _domain(fn, pole_at=None, pole_value=-INF):
    """``fn`` with ValueError -> nan (or ``pole_value`` at ``pole_at``), OverflowError -> inf."""

    def reference(x: float) -> float:
        try:
            return fn(x)
        except OverflowError:
            return INF
        except ValueError:
            if pole_at is not None and x == pole_at:
                return pole_value
            return NAN

    return reference


def _sinh(x: float) -> float:
    try:
        return math.sinh(x)
    except OverflowError:
        return math.copysign(INF, x)


def _atanh(x: float) -> float:
    try:
        return math.atanh(x)
    except ValueError:
        return math.copysign(INF, x) if abs(x) == 1 else NAN


def _round(fn):
    def reference(x: float) -> float:
        if not math.isfinite(x):
            return x
        r = float(fn(x))
        return math.copysign(r, x) if r == 0 else r  # floor(-0.0) = ceil(-0.5) = -0.0

    return reference


def _sign(x: float) -> float:
    if x != x:
        return NAN
    return 1.0 if x > 0 else (-1.0 if x < 0 else 0.0)


def _fmin(a: float, b: float) -> float:  # C fmin: a nan operand is ignored; a +-0 tie gives b (glibc)
    if a != a:
        return b
    if b != b:
        return a
    return b if b <= a else a


def _fmax(a: float, b: float) -> float:
    if a != a:
        return b
    if b != b:
        return a
    return b if b >= a else a


def _fmod(a: float, b: float) -> float:
    try:
        return math.fmod(a, b)
    except ValueError:
        return NAN


def _true(x: float) -> bool:  # C truth: nonzero (nan included) is true
    return x != 0


# Special functions from mpmath (30 digits), with the table's IEEE conventions at poles and infinities.
def _mp(fn, *args) -> float:
    with mpmath.workdps(30):
        return float(fn(*args))


def _lgamma(x: float) -> float:  # log|Gamma(x)|; C99: +inf at the poles and at +-inf
    if x != x:
        return NAN
    if math.isinf(x) or (x <= 0 and x.is_integer()):
        return INF
    return _mp(lambda v: mpmath.loggamma(v).real, x)


def _digamma(x: float) -> float:  # -inf at +0, +inf at -0, nan at the negative integers and -inf
    if x != x or x == -INF or (x < 0 and x.is_integer()):
        return NAN
    if x == INF or x == 0:
        return x if x == INF else -math.copysign(INF, x)
    return _mp(mpmath.digamma, x)


def _polygamma(n: float, x: float) -> float:  # integer orders 0..100, else nan
    if n != n or x != x or not (n.is_integer() and 0 <= n <= 100):
        return NAN
    if n == 0:
        return _digamma(x)
    sign = 1.0 if int(n) % 2 else -1.0  # (-1)**(n+1)
    if x == INF:
        return sign * 0.0
    if x == -INF:
        return NAN
    if x == 0:  # psi^(n)(x) ~ (-1)**(n+1) n! / x**(n+1)
        return INF if math.copysign(1, x) < 0 else sign * INF
    if x < 0 and x.is_integer():  # the two sides agree (+inf) for odd n only
        return INF if int(n) % 2 else NAN
    return _mp(mpmath.polygamma, int(n), x)


def _erfinv(x: float) -> float:
    if x != x or abs(x) > 1:
        return NAN
    if abs(x) == 1 or x == 0:
        return math.copysign(INF, x) if x else x
    return _mp(mpmath.erfinv, x)


MATH = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": _div,
    "neg": lambda a: -a,
    "pow": _pow,
    "powi": _pow,
    "square": lambda a: a * a,
    "sqrt": _domain(math.sqrt),
    "cbrt": math.cbrt,
    "exp": _domain(math.exp),
    "expm1": _domain(math.expm1),
    "log": _domain(math.log, 0.0),
    "log1p": _domain(math.log1p, -1.0),
    "log2": _domain(math.log2, 0.0),
    "log10": _domain(math.log10, 0.0),
    "sin": _domain(math.sin),
    "cos": _domain(math.cos),
    "tan": _domain(math.tan),
    "asin": _domain(math.asin),
    "acos": _domain(math.acos),
    "atan": math.atan,
    "atan2": math.atan2,
    "sinh": _sinh,
    "cosh": _domain(math.cosh),
    "tanh": math.tanh,
    "asinh": math.asinh,
    "acosh": _domain(math.acosh),
    "atanh": _atanh,
    "erf": math.erf,
    "erfc": math.erfc,
    "abs": math.fabs,
    "sign": _sign,
    "floor": _round(math.floor),
    "ceil": _round(math.ceil),
    "fmin": _fmin,
    "fmax": _fmax,
    "fmod": _fmod,
    "hypot": lambda a, b: math.hypot(a, b),
    "lt": lambda a, b: float(a < b),
    "le": lambda a, b: float(a <= b),
    "gt": lambda a, b: float(a > b),
    "ge": lambda a, b: float(a >= b),
    "eq": lambda a, b: float(a == b),
    "ne": lambda a, b: float(a != b),
    "not": lambda a: float(not _true(a)),
    "and": lambda a, b: float(_true(a) and _true(b)),
    "or": lambda a, b: float(_true(a) or _true(b)),
    "if_else": lambda c, a, b: a if _true(c) else b,
    "lgamma": _lgamma,
    "digamma": _digamma,
    "polygamma": _polygamma,
    "erfinv": _erfinv,
}


def _trunc(q: float) -> float:
    return float(math.trunc(q))


# Closed-form partial derivatives (away from kinks), one tuple entry per operand.
DERIV = {
    "add": lambda a, b: (1.0, 1.0),
    "sub": lambda a, b: (1.0, -1.0),
    "mul": lambda a, b: (b, a),
    "div": lambda a, b: (1 / b, -a / b**2),
    "neg": lambda a: (-1.0,),
    "pow": lambda a, b: (b * a ** (b - 1), math.log(a) * a**b if a > 0 else 0.0),
    "powi": lambda a, n: (n * a ** (n - 1), 0.0),
    "square": lambda a: (2 * a,),
    "sqrt": lambda a: (0.5 / math.sqrt(a),),
    "cbrt": lambda a: (1 / (3 * math.cbrt(a) ** 2),),
    "exp": lambda a: (math.exp(a),),
    "expm1": lambda a: (math.exp(a),),
    "log": lambda a: (1 / a,),
    "log1p": lambda a: (1 / (1 + a),),
    "log2": lambda a: (1 / (a * math.log(2)),),
    "log10": lambda a: (1 / (a * math.log(10)),),
    "sin": lambda a: (math.cos(a),),
    "cos": lambda a: (-math.sin(a),),
    "tan": lambda a: (1 / math.cos(a) ** 2,),
    "asin": lambda a: (1 / math.sqrt(1 - a * a),),
    "acos": lambda a: (-1 / math.sqrt(1 - a * a),),
    "atan": lambda a: (1 / (1 + a * a),),
    "atan2": lambda y, x: (x / (x * x + y * y), -y / (x * x + y * y)),
    "sinh": lambda a: (math.cosh(a),),
    "cosh": lambda a: (math.sinh(a),),
    "tanh": lambda a: (1 / math.cosh(a) ** 2,),
    "asinh": lambda a: (1 / math.sqrt(a * a + 1),),
    "acosh": lambda a: (1 / math.sqrt(a * a - 1),),
    "atanh": lambda a: (1 / (1 - a * a),),
    "erf": lambda a: (2 / math.sqrt(math.pi) * math.exp(-a * a),),
    "erfc": lambda a: (-2 / math.sqrt(math.pi) * math.exp(-a * a),),
    "abs": lambda a: (_sign(a),),
    "sign": lambda a: (0.0,),
    "floor": lambda a: (0.0,),
    "ceil": lambda a: (0.0,),
    "fmin": lambda a, b: (1.0, 0.0) if a <= b else (0.0, 1.0),
    "fmax": lambda a, b: (1.0, 0.0) if a >= b else (0.0, 1.0),
    "fmod": lambda a, b: (1.0, -_trunc(a / b)),
    "hypot": lambda a, b: (a / math.hypot(a, b), b / math.hypot(a, b)),
    "lt": lambda a, b: (0.0, 0.0),
    "le": lambda a, b: (0.0, 0.0),
    "gt": lambda a, b: (0.0, 0.0),
    "ge": lambda a, b: (0.0, 0.0),
    "eq": lambda a, b: (0.0, 0.0),
    "ne": lambda a, b: (0.0, 0.0),
    "not": lambda a: (0.0,),
    "and": lambda a, b: (0.0, 0.0),
    "or": lambda a, b: (0.0, 0.0),
    "if_else": lambda c, a, b: (0.0, 1.0, 0.0) if _true(c) else (0.0, 0.0, 1.0),
    "lgamma": lambda a: (_digamma(a),),
    "digamma": lambda a: (_polygamma(1.0, a),),
    "polygamma": lambda n, a: (0.0, _polygamma(n + 1.0, a)),
    "erfinv": lambda a: (math.sqrt(math.pi) / 2 * math.exp(_erfinv(a) ** 2),),
}


def _kink(name: str, args: tuple) -> bool:
    """True where op ``name`` is not differentiable (complex step need not agree there)."""
    if name == "abs":
        return args[0] == 0
    if name in ("fmin", "fmax", "fmod"):
        a, b = args
        return a == b if name != "fmod" else (b == 0 or (a / b).is_integer())
    if name == "hypot":
        return args == (0.0, 0.0)
    if name in ("floor", "ceil"):
        return args[0].is_integer()
    if name in ("sqrt", "cbrt", "log", "log2", "log10"):
        return args[0] == 0
    if name == "pow":
        return args[0] <= 0
    if name in ("asin", "acos", "atanh"):
        return abs(args[0]) >= 1
    if name == "acosh":
        return args[0] <= 1
    if name == "atan2":
        return args == (0.0, 0.0) or (args[0] == 0 and args[1] < 0)  # branch cut
    return False


def reference(name: str, *args: float) -> float:
    """``MATH[name]`` on Python floats, always returning a float."""
    return float(MATH[name](*[float(a) for a in args]))


def same(got: float, want: float, rel: float = 1e-12, zero_sign: bool = True) -> bool:
    """IEEE agreement: nan with nan, equal infinities, else relative ``rel``.

    Zeros must carry the same sign (it decides 1/x, atan2, ... later on).
    """
    got, want = float(got), float(want)
    if want != want or got != got:
        return want != want and got != got
    if math.isinf(want) or math.isinf(got):
        return got == want
    if want == 0 or got == 0:
        return got == want and (not zero_sign or math.copysign(1, got) == math.copysign(1, want))
    return abs(got - want) <= rel * abs(want)


# ------------------------------------------------------------- table checks
OPERATIONS = list(SCALAR_OPS)


def test_reference_tables_cover_every_op():
    names = {op.name for op in OPERATIONS}
    assert names - set(MATH) == set(), "ops without a math reference in this test"
    assert names - set(DERIV) == set(), "ops without a closed-form derivative in this test"
    assert set(MATH) - names == set() and set(DERIV) - names == set(), "reference for a removed op"
    for op in OPERATIONS:
        args = [2.0 if op.name == "acosh" else 0.5] * op.arity  # each entry takes exactly arity operands
        assert isinstance(reference(op.name, *args), float) and len(DERIV[op.name](*args)) == op.arity
        with pytest.raises(TypeError):
            MATH[op.name](*args, 2.0)


def test_issue_op_list_is_complete():
    wanted = ("add sub mul div neg pow powi square sqrt cbrt exp expm1 log log1p log2 log10 sin cos tan "
              "asin acos atan atan2 sinh cosh tanh asinh acosh atanh erf erfc abs sign floor ceil fmin "
              "fmax fmod hypot lt le gt ge eq ne not and or if_else").split()
    assert set(wanted) <= set(OPS)
    assert [op.code for op in OP_LIST] == list(range(len(OP_LIST)))
    assert all(OPS[name].code == OP_LIST.index(OPS[name]) for name in OPS)


def _libm():
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("m")
    if name is None:
        pytest.skip("no C math library to compare with")
    lib = ctypes.CDLL(name)
    for fn in ("fmin", "fmax", "fmod", "hypot", "atan2", "pow", "cbrt", "expm1", "log1p", "erfc", "lgamma"):
        getattr(lib, fn).restype = ctypes.c_double
        getattr(lib, fn).argtypes = [ctypes.c_double] * (1 if fn in ("cbrt", "expm1", "log1p", "erfc", "lgamma") else 2)
    return lib


def test_reference_agrees_with_the_c_math_library():
    """The compiled backend calls libm: the reference must be C's semantics, signed zeros included."""
    lib = _libm()
    for name in ("fmin", "fmax", "fmod", "hypot", "atan2", "pow"):
        for a, b in itertools.product(SPECIAL, repeat=2):
            assert same(getattr(lib, name)(a, b), reference(name, a, b)), (name, a, b)
    for name in ("cbrt", "expm1", "log1p", "erfc", "lgamma"):
        for a in SPECIAL:
            assert same(getattr(lib, name)(a), reference(name, a)), (name, a)


def test_self_check_of_the_reference():
    # the oracle itself, on values whose answers are known exactly
    assert reference("pow", -0.0, -3.0) == -INF and reference("pow", 0.0, -2.0) == INF
    assert math.isnan(reference("pow", -8.0, 1 / 3)) and reference("pow", -2.0, 3.0) == -8.0
    assert reference("pow", -10.0, 401.0) == -INF and reference("pow", 10.0, 400.0) == INF
    assert reference("div", 1.0, -0.0) == -INF and math.isnan(reference("div", 0.0, 0.0))
    assert reference("log", 0.0) == -INF and math.isnan(reference("log", -1.0))
    assert reference("log1p", -1.0) == -INF and reference("atanh", -1.0) == -INF
    assert math.copysign(1, reference("ceil", -0.5)) == -1 and reference("floor", -INF) == -INF
    assert reference("sinh", -1000.0) == -INF and reference("exp", 1000.0) == INF
    assert reference("if_else", NAN, 1.0, 2.0) == 1.0 and reference("not", NAN) == 0.0
    assert same(1.0, 1.0 + 1e-13) and not same(1.0, 1.0 + 1e-11) and not same(0.0, -0.0)
    assert same(NAN, NAN) and not same(NAN, 1.0) and not same(INF, 1e308)


# ------------------------------------------------------- every op, every value
SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.5, 3.0, 1e-8, -1e-300, 1e300, -1e300,
           700.0, -750.0, math.pi / 2, INF, -INF, NAN]
SPECIAL3 = [0.0, -0.0, 1.0, -2.5, 1e300, INF, -INF, NAN]


def _grid(op):
    if op.name == "powi":
        return [(x, float(n)) for x in SPECIAL for n in range(-4, 6)]
    values = {1: SPECIAL, 2: SPECIAL, 3: SPECIAL3}[op.arity]
    return list(itertools.product(values, repeat=op.arity))


def _op_function(op):
    """F(v) = op(v0, v1, ...) with fresh symbol operands (powi: constant exponent)."""
    if op.name == "powi":
        x = sg.symbols("x")
        return x, lambda n: sg.Function("powi", [x], [sg.apply(op, x, n)])
    v = sg.symbols("v", op.arity)
    return v, sg.Function(op.name, [v], [sg.apply(op, *v)])


@pytest.mark.parametrize("name", [op.name for op in OPERATIONS])
def test_every_op_on_special_values(name):
    """All operand combinations of signed zeros, infinities, nan, huge and tiny values."""
    op = OPS[name]
    if name == "powi":
        _, make = _op_function(op)
        grid, values = [], []
        for n in range(-4, 6):
            grid += [(x, float(n)) for x in SPECIAL]
            values += make(float(n)).batch(np.array(SPECIAL)).tolist()
    else:
        grid = _grid(op)
        _, F = _op_function(op)
        values = F.batch(np.array(grid)).tolist()
    bad = [(args, v, reference(name, *args)) for args, v in zip(grid, values)
           if not same(v, reference(name, *args))]
    assert not bad, f"{name}: VM != math at {len(bad)} points, e.g. (args, vm, math) {bad[:5]}"


@pytest.mark.parametrize("name", [op.name for op in OPERATIONS])
def test_constant_folding_agrees_with_math(name):
    """Construction folds constant operands through the table; the folded value is IEEE's."""
    op = OPS[name]
    for args in _grid(op)[::7]:
        folded = sg.apply(op, *args)
        assert folded.is_const, (name, args)
        assert same(folded.value, reference(name, *args)), (name, args, folded.value)


# ------------------------------------------------- random graphs vs math
def _math_values(order, env):
    """Evaluate nodes (topological order) with MATH from the values already in env."""
    for node in order:
        if node not in env:
            env[node] = node.value if node.is_const else reference(node.op.name, *[env[a] for a in node.args])
    return env


def _vm_all_nodes(graph, pts):
    """VM values of every node of the graph at each point (batch evaluation)."""
    order = topological(graph.outputs)
    nodes = [n for n in order if not n.is_symbol]
    F = sg.Function("every_node", graph.inputs, [np.array(nodes, dtype=object)])
    vals = F.batch(*[pts[:, i] for i in range(len(graph.inputs))])
    return order, nodes, F, vals


def _biased(op):
    """Random graphs in which about half the steps apply ``op`` (the rest any op)."""
    return random_graphs(max_steps=10, ops=[op] * len(OPERATIONS) + OPERATIONS)


@pytest.mark.parametrize("name", [op.name for op in OPERATIONS])
def test_random_graphs_reach_the_op(name):
    """The graphs of the property below do contain nodes of the op they are about."""
    op = OPS[name]
    seen = []

    @settings(max_examples=12, database=None)
    @given(_biased(op))
    def probe(graph):
        seen.append(any(n.op is op for n in topological(graph.outputs)))

    probe()
    assert sum(seen) >= 3, f"{name}: in {sum(seen)} of {len(seen)} graphs"


@pytest.mark.parametrize("name", [op.name for op in OPERATIONS])
@settings(max_examples=12)
@given(data=st.data())
def test_random_graphs_match_math(name, data):
    """Every node of a random graph (rich in op ``name``), at extreme and ordinary points.

    Each node is compared with ``MATH`` applied to the VM's own operand
    values (1e-12 relative, identical nan/inf/signed zero), so an op that is
    wrong anywhere in the graph is caught, and a one-ulp difference between
    libm and numpy (numpy's SIMD tanh, scipy's erf) cannot be amplified by a
    later cancellation into a false alarm.  The outputs are also compared
    with a straightforward end-to-end ``math`` evaluation from the inputs;
    it must agree at 1e-12 unless some node rounded differently from libm.
    """
    graph = data.draw(_biased(OPS[name]))
    pts = np.array(data.draw(st.lists(points(len(graph.inputs)), min_size=1, max_size=4)))
    order, nodes, F, vals = _vm_all_nodes(graph, pts)
    for p, row in zip(pts, vals):
        vm = dict(zip(graph.inputs, p.tolist()))
        vm.update(zip(nodes, row.tolist()))
        rounding = False
        for node in nodes:
            if node.is_const:
                continue
            args = [vm[a] for a in node.args]
            want = reference(node.op.name, *args)
            assert same(vm[node], want), (f"{node.op.name}{tuple(args)}: VM {vm[node]!r}, "
                                          f"math {want!r} in {sg.expr.to_str(node, 300)}")
            rounding = rounding or vm[node] != want and not (vm[node] != vm[node] and want != want)
        straight = _math_values(order, dict(zip(graph.inputs, p.tolist())))
        if not rounding:
            for out in graph.outputs:
                vm_out = vm[out] if not out.is_symbol else straight[out]
                assert same(vm_out, straight[out]), (sg.expr.to_str(out, 300), p, vm_out, straight[out])


@given(random_graphs(max_steps=10), st.data())
def test_batch_equals_per_point(graph, data):
    pts = np.array(data.draw(st.lists(points(len(graph.inputs)), min_size=1, max_size=5)))
    F = graph.function()
    columns = [pts[:, i] for i in range(len(graph.inputs))]
    batch = F.batch(*columns)
    assert batch.shape == (len(pts), len(graph.outputs))
    for row, p in zip(batch, pts):
        single = F(*p)
        assert single.shape == (len(graph.outputs),)
        np.testing.assert_array_equal(single, row)  # bitwise, nan where nan


# ---------------------------------------------------------- complex step
H = 1e-30
INTERIOR = [0.3, -0.7, 1.3, 2.2, -2.9, 0.05]


def _interior(name: str, arity: int):
    if name == "powi":
        return [(x, float(n)) for x in INTERIOR for n in (-3, 3, 4)]
    if name == "if_else":
        return [(c, a, b) for c in (0.0, 2.0) for a, b in ((0.3, -1.7), (2.2, 0.05))]
    if name == "polygamma":  # a constant integer order
        return [(float(n), x) for x in INTERIOR for n in (0, 1, 2)]
    pts = [p for p in itertools.product(INTERIOR, repeat=arity) if not _kink(name, p)]
    if name in ("sqrt", "log", "log1p", "log2", "log10", "pow", "acosh"):
        pts = [tuple(abs(v) + 1.0 for v in p[:1]) + p[1:] for p in pts]
    return pts


@pytest.mark.parametrize("name", [op.name for op in OPERATIONS])
def test_complex_step_matches_closed_form_derivative(name):
    """Im F(x + i h e_k) / h through the VM equals the closed-form partial k."""
    op = OPS[name]
    v, F = _op_function(op)
    for args in _interior(name, op.arity):
        if name == "powi":
            F1, args_in = F(args[1]), [args[0]]
        else:
            F1, args_in = F, list(args)
        want = DERIV[name](*args)
        for k in range(len(args_in)):
            z = np.array(args_in, dtype=np.complex128)
            z[k] += H * 1j
            got = F1(z if name != "powi" else z[0])
            assert np.iscomplexobj(got)
            assert same(got.real, reference(name, *args), 1e-13), (name, args, got)
            assert same(got.imag / H, want[k], 1e-10, zero_sign=False), (name, args, k, got.imag / H, want[k])


def _dual(order, values, seed):
    """Forward-mode derivative of every node along ``seed`` (math values and DERIV)."""
    dot = {}
    for node in order:
        if node.is_symbol:
            dot[node] = seed.get(node, 0.0)
        elif node.is_const:
            dot[node] = 0.0
        else:
            args = [values[a] for a in node.args]
            partials = DERIV[node.op.name](*args)
            dot[node] = math.fsum(p * dot[a] for p, a in zip(partials, node.args) if dot[a] != 0.0)
    return dot


def _smooth_everywhere(order, values) -> bool:
    for node in order:
        if node.args:
            args = tuple(values[a] for a in node.args)
            if not all(math.isfinite(a) for a in args) or _kink(node.op.name, args):
                return False
            if node.op.name in ("fmod", "div", "tan", "atanh") and abs(values[node]) > 1e8:
                return False
        if not math.isfinite(values[node]) or abs(values[node]) > 1e100:
            return False
    return True


@given(random_graphs(max_steps=10), st.data())
def test_complex_step_of_random_graphs(graph, data):
    """Complex step through the VM == forward-mode chain rule over the math oracle."""
    p = data.draw(points(len(graph.inputs), wide=False))
    order = topological(graph.outputs)
    values = _math_values(order, dict(zip(graph.inputs, p.tolist())))
    if not _smooth_everywhere(order, values):
        return
    F = graph.function()
    for k, sym in enumerate(graph.inputs):
        try:
            dot = _dual(order, values, {sym: 1.0})
        except (ZeroDivisionError, OverflowError, ValueError):  # derivative undefined or huge
            continue
        if not all(math.isfinite(dot[o]) and abs(dot[o]) < 1e100 for o in graph.outputs):
            continue
        z = p.astype(np.complex128)
        z[k] += H * 1j
        got = F(*z)
        for out, g in zip(graph.outputs, got):
            assert same(g.imag / H, dot[out], 1e-8, zero_sign=False) or abs(g.imag / H - dot[out]) < 1e-12, (
                sg.expr.to_str(out, 300), p, k, g.imag / H, dot[out])


def test_complex_inputs_return_complex_and_real_part_is_the_value():
    x = sg.symbols("x", 2)
    F = sg.Function("f", [x], [sg.exp(x[0]) * sg.atan2(x[1], x[0]) + sg.hypot(x[0], x[1])])
    z = np.array([0.4 + 1e-30j, -1.2 + 0j])
    got = F(z)
    assert got.dtype == np.complex128
    assert same(got.real, float(F(z.real)))
    a, b = 0.4, -1.2
    want = math.exp(a) * math.atan2(b, a) + math.exp(a) * (-b / (a * a + b * b)) + a / math.hypot(a, b)
    assert same(got.imag / 1e-30, want, 1e-12)


def test_cmath_agrees_for_analytic_ops():
    """The complex numpy implementations are the analytic continuations (vs cmath)."""
    pairs = {"exp": cmath.exp, "log": cmath.log, "sin": cmath.sin, "cos": cmath.cos, "tan": cmath.tan,
             "sinh": cmath.sinh, "cosh": cmath.cosh, "tanh": cmath.tanh, "sqrt": cmath.sqrt,
             "asin": cmath.asin, "acos": cmath.acos, "atan": cmath.atan, "asinh": cmath.asinh,
             "acosh": cmath.acosh, "atanh": cmath.atanh, "log10": cmath.log10}
    z = [0.3 + 0.2j, -0.7 + 0.1j, 1.5 - 0.4j]
    for name, ref in pairs.items():
        got = OPS[name].np(np.array(z))
        for g, w in zip(got, z):
            assert abs(g - ref(w)) <= 1e-13 * abs(ref(w)), (name, w, g, ref(w))
