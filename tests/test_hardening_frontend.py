"""Issue 9 (hardening), front end: every reproducer of /work/shared/repro/hardening as a test.

from_sympy never evaluates text; NLP callbacks refuse None; printing is
linear in the graph; to_sympy converts any depth; Functions pickle; bad
arguments raise SymgraphErrors naming them; foreign Ops are refused; error
messages say what works.  Oracles: the VM, SymPy's own arithmetic, closed
forms, and hash-consing (text that reads back to the *same* node).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import multiprocessing
import pickle
import re
import time
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from sympy.codegen import cfunctions as cf

import symgraph as sg
import symgraph.interop.sympy as bridge
from symgraph.function import function_from_data, function_to_data
from symgraph.ops import OPS, SCALAR_OPS
from strategies import random_graphs


def _is_symgraph_error(exc: BaseException, builtin: type) -> bool:
    return isinstance(exc, sg.SymgraphError) and isinstance(exc, builtin)


# ------------------------------------------------------- 1. from_sympy input
PAYLOAD = "__import__('pathlib').Path('pwned').write_text('x') or t"


def test_from_sympy_refuses_a_string_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    t = sg.symbols("t")
    with pytest.raises(sg.SympyConversionError, match="got str") as info:
        sg.from_sympy(PAYLOAD, {"t": t})
    assert isinstance(info.value, ValueError)
    for bad in ([PAYLOAD], np.array([PAYLOAD], dtype=object), PAYLOAD.encode()):
        with pytest.raises(sg.SympyConversionError, match="str|bytes"):
            sg.from_sympy(bad, {"t": t})
    assert not (tmp_path / "pwned").exists()


def test_from_sympy_never_calls_sympify_hooks(tmp_path):
    """sympify would call an object's ``_sympy_``; from_sympy accepts SymPy objects only."""
    calls = []

    class Sneaky:
        def _sympy_(self):
            calls.append(1)
            return sp.Symbol("t")

    with pytest.raises(sg.SympyConversionError, match="Sneaky"):
        sg.from_sympy(Sneaky(), {"t": sg.symbols("t")})
    assert calls == []


@pytest.mark.parametrize("mapping, fragment", [
    ([("t", 1.0)], "mapping must be a dict"),
    ({5: 1.0}, "keys must be sympy.Symbol"),
    ({"t": "exp(1)"}, "mapping['t'] must be an Expr or a real number"),
    ({"t": sp.Symbol("u") + 1}, "mapping['t']"),
    ({"t": 1j}, "mapping['t']"),
    ({"t": None}, "mapping['t']"),
])
def test_from_sympy_checks_its_mapping(mapping, fragment):
    with pytest.raises(sg.SympyConversionError, match=re.escape(fragment)):
        sg.from_sympy(sp.Symbol("t") + 1, mapping)


def test_from_sympy_still_takes_sympy_objects_numbers_and_arrays():
    t = sg.symbols("t")
    T = sp.Symbol("t")
    assert sg.from_sympy(sp.sin(T) * 2, {T: t}) is 2 * sg.sin(t)
    assert sg.from_sympy(3, {}).value == 3.0 and sg.from_sympy(np.float64(0.5), {}).value == 0.5
    assert sg.from_sympy(sp.Rational(1, 4), {}).value == 0.25
    assert sg.from_sympy(T, {"t": 2.5}).value == 2.5  # a number in the mapping
    m = sg.from_sympy(sp.Matrix([[T, 1], [2, T ** 2]]), {"t": t})
    assert m.shape == (2, 2) and m[1, 1] is t ** 2 and m[0, 1].value == 1.0
    assert [e.value for e in sg.from_sympy([1, 2.0], {})] == [1.0, 2.0]


# ------------------------------------------------------ 6. NLP callbacks
@pytest.fixture(scope="module", params=[False, True], ids=["vm", "compiled"])
def nlp(request):
    x, p = sg.symbols("x", 2), sg.symbols("p")
    try:
        return sg.NLP(x=x, f=(x[0] - p) ** 2 + x[1] ** 2, g=x[0] * x[1], p=p, jit=request.param)
    except sg.CompilerNotFoundError:
        pytest.skip("no C compiler")


def test_nlp_callbacks_have_the_closed_form_values(nlp):
    nlp.set_parameters([1.5])
    x = [2.0, 3.0]
    assert nlp.objective(x) == (2.0 - 1.5) ** 2 + 9.0
    assert nlp.gradient(x).tolist() == [1.0, 6.0]
    assert nlp.constraints(x).tolist() == [6.0]
    assert nlp.jacobian(x).toarray().tolist() == [[3.0, 2.0]]
    assert nlp.hessian(x, [0.5], 2.0).toarray().tolist() == [[4.0, 0.5], [0.5, 4.0]]  # sigma * diag(2, 2) + lam * d2(x0 x1)


@pytest.mark.parametrize("call", ["objective", "gradient", "constraints", "jacobian_values", "jacobian"])
@pytest.mark.parametrize("x, fragment", [
    ([1.0, None], "element [1] is NoneType None"),
    ([None, 2.0], "element [0] is NoneType None"),
    (None, "got None"),
    (["1", "2"], "dtype <U1"),
    ([1j, 2.0], "complex"),
    ({"a": 1.0}, "dict"),
])
def test_nlp_callbacks_refuse_none_strings_complex_and_dicts(nlp, call, x, fragment):
    with pytest.raises(sg.DTypeError, match=re.escape(fragment)) as info:
        getattr(nlp, call)(x)
    assert "NLP: x" in str(info.value) and _is_symgraph_error(info.value, TypeError)


@pytest.mark.parametrize("args, fragment", [
    (([1.0, 2.0], None), "lam (constraint multipliers) must be 1 real numbers, got None"),
    (([1.0, 2.0], [None]), "NLP: lam"),
    (([1.0, 2.0], ["0.5"]), "NLP: lam"),
    (([1.0, 2.0], [0.5], None), "NLP: sigma"),
    (([1.0, 2.0], [0.5], "2"), "NLP: sigma"),
    (([1.0, 2.0], [0.5], 1j), "NLP: sigma"),
    (([1.0, None], [0.5]), "NLP: x"),
])
def test_nlp_hessian_refuses_missing_multipliers(nlp, args, fragment):
    for call in (nlp.hessian, nlp.hessian_values):
        with pytest.raises(sg.DTypeError, match=re.escape(fragment)):
            call(*args)


def test_nlp_parameters_refuse_non_numbers(nlp):
    for bad in ("3", [None], 1j, {"p": 1}):
        with pytest.raises(sg.DTypeError, match="NLP parameters p"):
            nlp.set_parameters(bad)


# ---------------------------------------------------------- 9. printing
def _recurrence(steps: int):
    x = sg.symbols("x", 3)
    e = x[0]
    for _ in range(steps):
        e = sg.sin(e * x[1]) + sg.exp(-e * x[2] * 1e-3)
    return x, e


def _read_back(text: str, **symbols) -> sg.Expr:
    """Evaluate printed text over the symbols and sg builders: ``@k = ...`` lines become assignments."""
    ns = {name: getattr(sg, name) for name in sg.__all__}
    ns.update(nan=math.nan, inf=math.inf, abs=abs, **symbols)
    *definitions, last = text.splitlines()
    for line in definitions:
        name, body = line.split(" = ", 1)
        assert re.fullmatch(r"@\d+", name), line
        ns["_" + name[1:]] = eval(re.sub(r"@(\d+)", r"_\1", body), {}, ns)  # noqa: S307 - our own text
    return eval(re.sub(r"@(\d+)", r"_\1", last), {}, ns)  # noqa: S307 - our own printed text


def test_print_of_a_shared_recurrence_is_short_and_reads_back_to_the_same_node():
    x, e = _recurrence(30)
    assert sg.count_ops([e]) == 210
    start = time.perf_counter()
    text = str(e)
    assert time.perf_counter() - start < 1.0
    lines = text.splitlines()
    assert len(lines) == 30 and len(text) < 3000
    assert lines[0].startswith("@1 = sin(x[0] * x[1]) + exp(") and lines[-1].startswith("sin(@29 * x[1])")
    assert _read_back(text, x=x) is e  # hash-consing: the text names exactly this graph


def test_print_is_linear_in_the_graph():
    x, e = _recurrence(3000)  # 21,000 nodes; inline text would have ~2**3000 characters
    n = sg.count_ops([e])
    start = time.perf_counter()
    text = str(e)
    assert time.perf_counter() - start < 5.0
    assert len(text) < 60 * n
    assert repr(e).startswith("Expr(") and len(repr(e)) < 220


def test_print_of_rk4_steps_is_small():
    """Three RK4 steps of a pendulum (the issue's 72 MB / 26 s string)."""
    q = sg.symbols("q", 2)
    h = 0.1

    def rhs(s):
        return np.array([s[1], -sg.sin(s[0])], dtype=object)

    s = q
    for _ in range(3):
        k1 = rhs(s)
        k2 = rhs(s + h / 2 * k1)
        k3 = rhs(s + h / 2 * k2)
        k4 = rhs(s + h * k3)
        s = s + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    start = time.perf_counter()
    text = str(s[0])
    assert time.perf_counter() - start < 1.0 and len(text) < 20_000
    assert _read_back(text, q=q) is s[0]


def test_small_expressions_print_as_before():
    x, y = sg.symbols("x"), sg.symbols("y")
    assert str(sg.sin(x) * y) == "sin(x) * y"
    assert str(x * y + x * y) == "x * y + x * y"  # shared, but small: inline
    assert str(sg.sin(x + y) / (x + y)) == "sin(x + y) / (x + y)"
    assert sg.expr.to_str(x + y, limit=3) == "x +..."


def test_printed_definitions_need_no_parentheses_around_names():
    x, y = sg.symbols("x"), sg.symbols("y")
    e = sg.sin(x * y) + sg.cos(x * y) + sg.tanh(x - y)
    for _ in range(12):
        e = e * e - e / 3  # e is used three times: the inline text triples per step
    text = str(e)
    assert not re.search(r"\(@\d+\)", text) and len(text.splitlines()) == 13
    assert text.splitlines()[-1] == "@12 * @12 - @12 / 3"
    assert _read_back(text, x=x, y=y) is e


# ---------------------------------------------------------- 10. to_sympy depth
def _sympy_value(expr, values: dict) -> float:
    """SymPy's own value of ``expr`` at exact rationals (30 digits)."""
    exact = {s: sp.Rational(Fraction(v)) for s, v in values.items()}
    expr = expr.replace(cf.Cbrt, lambda a: sp.real_root(a, 3))
    result = sp.N(expr.subs(exact), 30)
    if result.is_real is False or result.has(sp.zoo, sp.nan) or not result.is_number:
        return math.nan
    return float(result)


def test_to_sympy_of_a_10000_deep_chain():
    x = sg.symbols("x")
    e = x
    for _ in range(10_000):
        e = sg.sin(e)
    mapping: dict = {}
    s = sg.to_sympy(e, mapping)  # no RecursionError
    node = s
    for _ in range(10_000):
        assert isinstance(node, sp.sin)
        node = node.args[0]
    assert node is mapping[x]
    assert hash(s) == hash(s)  # hashes were computed bottom-up: no recursion here either
    assert sg.from_sympy(s, {"x": x}) is e  # and back to the very same node


def _node(op, *operands):
    """``op`` applied to operands; ops with an integer operand get a constant there."""
    if op.name == "powi":
        return sg.apply(op, operands[0], 3.0)
    if op.name == "polygamma":
        return sg.apply(op, 1.0, operands[0])
    return sg.apply(op, *operands[: op.arity])


def _round_trips(op) -> bool:
    """Whether from_sympy reads ``op``'s SymPy form back (test_sympy_bridge checks which do)."""
    a, b, c = sg.symbols("a"), sg.symbols("b"), sg.symbols("c")
    mapping: dict = {}
    try:
        sg.from_sympy(sg.to_sympy(_node(op, a, b, c), mapping), {v: k for k, v in mapping.items()})
    except sg.SympyConversionError:
        return False
    return True


ROUND_TRIP_OPS = [op for op in SCALAR_OPS if _round_trips(op)]


def test_from_sympy_of_a_deep_unevaluated_sympy_tree():
    """A tree built with evaluate=False has no hashes yet: from_sympy must not ask for one."""
    X = sp.Symbol("x")
    tree = X
    for k in range(10_000):
        tree = sp.sin(tree, evaluate=False) if k % 2 else sp.Add(tree, sp.Integer(1), evaluate=False)
    x = sg.symbols("x")
    e = sg.from_sympy(tree, {"x": x})
    want = 0.3
    for k in range(10_000):
        want = math.sin(want) if k % 2 else want + 1.0
    assert sg.count_ops([e]) == 10_000 and float(sg.Function("f", [x], [e])(0.3)) == want


def test_to_sympy_of_a_deep_graph_over_every_op_keeps_the_vm_values():
    rng = np.random.default_rng(5)
    x, y = sg.symbols("x"), sg.symbols("y")
    ops = ROUND_TRIP_OPS
    assert len(ops) >= 45
    e = x
    with sg.building():
        for k in range(2000):
            op = ops[k % len(ops)]
            others = [[y, sg.const(0.5), x][rng.integers(3)] for _ in range(op.arity - 1)]
            args = [e, *others]
            if op.name not in ("powi", "polygamma"):
                rng.shuffle(args)
            node = _node(op, *args)
            e = sg.tanh(node) + 0.25 * y
    s = sg.to_sympy(e)
    back = sg.from_sympy(s, {"x": x, "y": y})
    F = sg.Function("f", [x, y], [e, back])
    for p in [(0.3, 0.7), (-0.4, 1.3), (1.1, -0.2)]:
        want, got = F(*p)
        assert got == pytest.approx(want, rel=1e-12, abs=1e-14) or (want != want and got != got)


@pytest.mark.parametrize("name", [op.name for op in SCALAR_OPS])
def test_unevaluated_conversion_of_every_op_has_the_vm_value(monkeypatch, name):
    """Deep graphs are built without SymPy evaluation: each op's form must still be right."""
    monkeypatch.setattr(bridge, "EVALUATE_DEPTH", 0)
    op = OPS[name]
    a, b, c = sg.symbols("a"), sg.symbols("b"), sg.symbols("c")
    inner = a * a + b  # an operand that is itself an expression
    e = _node(op, inner, c, b)
    mapping: dict = {}
    s = sg.to_sympy(e, mapping)
    F = sg.Function("f", [a, b, c], [e])
    compared = 0
    for p in [(0.3, -0.7, 1.3), (-0.45, 0.8, -2.2), (1.7, 2.5, 0.0), (0.9, -1.1, 0.6), (2.5, 0.3, -0.9)]:
        got = float(F(*p))
        if not math.isfinite(got):
            continue
        want = _sympy_value(s, {mapping[k]: v for k, v in zip((a, b, c), p) if k in mapping})
        assert got == pytest.approx(want, rel=1e-12, abs=1e-300), (name, p, s)
        compared += 1
    assert compared >= 2


@given(random_graphs(max_steps=8, ops=ROUND_TRIP_OPS))
def test_unevaluated_conversion_of_random_graphs_round_trips(graph):
    saved = bridge.EVALUATE_DEPTH
    bridge.EVALUATE_DEPTH = 0
    try:
        mapping: dict = {}
        s = sg.to_sympy(np.array(graph.outputs, dtype=object), mapping)
    finally:
        bridge.EVALUATE_DEPTH = saved
    back = sg.from_sympy(s, {v: k for k, v in mapping.items()})
    F = sg.Function("f", graph.inputs, [np.array(graph.outputs, dtype=object), back])
    p = [0.3, -0.7, 1.3][: len(graph.inputs)]
    want, got = F(*p)
    for w, g in zip(want, got):
        assert (w != w and g != g) or g == pytest.approx(w, rel=1e-9, abs=1e-12)


# ---------------------------------------------------------- 15. pickling
@pytest.fixture(scope="module")
def rich():
    """A Function with vector, matrix and scalar inputs, a sparse Jacobian, a constant and an input as outputs."""
    x, A, t = sg.symbols("x", 3), sg.symbols("A", (2, 3)), sg.symbols("t")
    y = A @ sg.sin(x) * t + sg.if_else(x[0] < t, x[1] ** 3, -0.0)
    J = sg.jacobian(y, x)
    F = sg.Function("rich", [x, A, t], [y, J, sg.const(2.5), x[2], x.sum() ** 2],
                    output_names=["y", "J", "c", "x2", "s"])
    args = (np.array([0.3, -1.2, 2.0]), np.arange(6.0).reshape(2, 3) - 2.5, 0.7)
    return F, args


def _same(a, b) -> bool:
    a = a.toarray() if hasattr(a, "toarray") else np.asarray(a)
    b = b.toarray() if hasattr(b, "toarray") else np.asarray(b)
    return a.shape == b.shape and np.array_equal(a, b) and np.array_equal(np.signbit(a), np.signbit(b))


def test_pickled_function_gives_identical_values(rich):
    F, args = rich
    G = pickle.loads(pickle.dumps(F))
    assert (G.name, G.input_names, G.output_names) == (F.name, F.input_names, F.output_names)
    assert G.input_shapes == F.input_shapes and G.output_shapes == F.output_shapes
    assert all(_same(a, b) for a, b in zip(F(*args), G(*args)))
    batch = [np.stack([a, a * 0.5]) for a in map(np.asarray, args)]
    assert all(_same(np.asarray([m.toarray() for m in a]) if isinstance(a, list) else a,
                     np.asarray([m.toarray() for m in b]) if isinstance(b, list) else b)
               for a, b in zip(F.batch(*batch), G.batch(*batch)))
    # the same program, so the same C (and a compile cache hit)
    for f, g in zip(function_to_data(F)[5], function_to_data(G)[5]):
        if isinstance(f, np.ndarray):
            assert np.array_equal(f, g, equal_nan=True)
        elif isinstance(f, tuple) and f and isinstance(f[0], np.ndarray):
            assert all(np.array_equal(u, v) for u, v in zip(f, g))
        else:
            assert f == g
    assert F.c_code() == G.c_code()


def test_loaded_function_is_a_full_function_its_derivatives_agree(rich):
    F, args = rich
    G = pickle.loads(pickle.dumps(F))
    assert G.inputs[0][0] is not F.inputs[0][0] and G.inputs[0][0].name == "x[0]"

    def gradient_function(H):
        s = H.outputs[4][()]
        return sg.Function("g", list(H.inputs), [sg.grad(s, H.inputs[0]), sg.hessian(s, H.inputs[0])])

    assert all(_same(a, b) for a, b in zip(gradient_function(F)(*args), gradient_function(G)(*args)))
    y_f, y_g = F.outputs[0], G.outputs[0]
    dF = sg.Function("d", list(F.inputs), [sg.jacobian(y_f, F.inputs[1])])
    dG = sg.Function("d", list(G.inputs), [sg.jacobian(y_g, G.inputs[1])])
    assert _same(dF(*args), dG(*args))


def test_deepcopy_of_a_function(rich):
    F, args = rich
    G = copy.deepcopy(F)
    assert G is not F and all(_same(a, b) for a, b in zip(F(*args), G(*args)))
    holder = copy.deepcopy({"model": F, "other": [1, 2]})
    assert holder["model"].output_names == F.output_names


def test_a_spawned_process_pool_evaluates_a_pickled_function():
    x = sg.symbols("x")
    F = sg.Function("f", [x], [sg.sin(x) * x])
    points = [0.25, 1.5]
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        results = pool.map(F, points)
    assert [float(r) for r in results] == [float(F(p)) for p in points]


def test_pickling_a_bare_expr_says_to_pickle_a_function():
    x = sg.symbols("x")
    for action in (pickle.dumps, copy.deepcopy):
        with pytest.raises(sg.NotPicklableError, match=r"Function") as info:
            action(sg.sin(x))
        assert isinstance(info.value, TypeError) and "export a Function" not in str(info.value)


def _corrupt(data: tuple, where: str, value):
    """A copy of function_to_data's tuple with one field replaced (``tape.K`` for Tape fields)."""
    data = list(data)
    if where.startswith("tape."):
        tape = list(data[5])
        tape[int(where[5:])] = value(tape[int(where[5:])]) if callable(value) else value
        data[5] = tuple(tape)
    else:
        data[int(where)] = value(data[int(where)]) if callable(value) else value
    return tuple(data)


def _replace_row(arr: np.ndarray, row: int, col: int, value) -> np.ndarray:
    arr = arr.copy()
    arr[row, col] = value
    return arr


CORRUPTIONS = {
    "not a record": lambda d: ("symgraph.Function",),
    "wrong header": lambda d: _corrupt(d, "0", "os.system"),
    "future version": lambda d: _corrupt(d, "1", 99),
    "unknown op": lambda d: _corrupt(d, "tape.2", lambda names: ("system",) + names[1:]),
    "leaf op as instruction": lambda d: _corrupt(d, "tape.2", lambda names: ("const",) + names[1:]),
    "forward reference": lambda d: _corrupt(d, "tape.4", lambda ops: _replace_row(ops, 0, 0, 10**6)),
    "negative operand": lambda d: _corrupt(d, "tape.4", lambda ops: _replace_row(ops, 0, 0, -5)),
    "missing operand": lambda d: _corrupt(d, "tape.4", lambda ops: _replace_row(ops, 0, 0, -1)),
    "extra operand": lambda d: _corrupt(d, "tape.4", lambda ops: _replace_row(ops, 0, 2, 0)),
    "float codes": lambda d: _corrupt(d, "tape.3", lambda codes: codes.astype(float)),
    "code out of range": lambda d: _corrupt(d, "tape.3", lambda codes: codes + 100),
    "object constants": lambda d: _corrupt(d, "tape.5", lambda c: c.astype(object)),
    "operands wrong shape": lambda d: _corrupt(d, "tape.4", lambda ops: ops[:, :2]),
    "input slots out of order": lambda d: _corrupt(d, "tape.6", lambda s: (s[0][::-1],) + s[1:]),
    "too few symbol names": lambda d: _corrupt(d, "tape.8", lambda names: names[:-1]),
    "symbol name not str": lambda d: _corrupt(d, "tape.8", lambda names: (3,) + names[1:]),
    "output slot out of range": lambda d: _corrupt(d, "tape.7", lambda s: (s[0] + 10**6,) + s[1:]),
    "names do not match": lambda d: _corrupt(d, "3", ("x",)),
    "duplicate output names": lambda d: _corrupt(d, "4", ("a", "a", "b", "c", "d")),
    "sparse pattern outside": lambda d: _corrupt(d, "6", lambda sp_: (None, (sp_[1][0] + 50,) + sp_[1][1:])
                                                 + sp_[2:]),
    "sparse pattern wrong length": lambda d: _corrupt(d, "6", lambda sp_: (None, (sp_[1][0][:1], sp_[1][1][:1],
                                                                                  sp_[1][2])) + sp_[2:]),
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_corrupted_function_data_raises_serialization_error(rich, kind):
    F, _ = rich
    bad = CORRUPTIONS[kind](function_to_data(F))
    with pytest.raises(sg.SerializationError) as info:
        function_from_data(bad)
    assert _is_symgraph_error(info.value, ValueError)


class _Reducer:
    """Pickles as a call of the real reducer on chosen data (what a corrupted file holds)."""

    def __init__(self, data):
        self.data = data

    def __reduce__(self):
        return function_from_data, (self.data,)


def test_corrupted_pickle_raises_serialization_error(rich):
    F, args = rich
    assert _same(pickle.loads(pickle.dumps(_Reducer(function_to_data(F))))(*args)[0], F(*args)[0])
    blob = pickle.dumps(_Reducer(CORRUPTIONS["unknown op"](function_to_data(F))))
    with pytest.raises(sg.SerializationError, match="unknown op"):
        pickle.loads(blob)


# ------------------------------------------- 16. bad arguments, one table
X2 = sg.symbols("x", 2)
T = sg.symbols("t")
NLP_VM = sg.NLP(x=X2, f=X2[0] ** 2 + X2[1] ** 2, jit=False)

BAD_ARGUMENTS = [
    ("const(10**400)", lambda: sg.const(10**400), sg.DTypeError, TypeError, "does not fit a float64"),
    ("const(-10**400)", lambda: sg.const(-(10**400)), sg.DTypeError, TypeError, "bits"),
    ("const(timedelta64)", lambda: sg.const(np.timedelta64(1)), sg.NonNumericConstantError, TypeError,
     "time spans"),
    ("const(datetime64)", lambda: sg.const(np.datetime64("2020-01-01")), sg.NonNumericConstantError,
     TypeError, "dates"),
    ("const(0-d timedelta array)", lambda: sg.const(np.array(np.timedelta64(3, "s"))),
     sg.NonNumericConstantError, TypeError, "timedelta64"),
    ("const(str)", lambda: sg.const("1.0"), sg.NonNumericConstantError, TypeError, "type str"),
    ("const(bytes)", lambda: sg.const(b"1"), sg.NonNumericConstantError, TypeError, "type bytes"),
    ("const(complex)", lambda: sg.const(1 + 2j), sg.NonNumericConstantError, TypeError, "complex"),
    ("const(None)", lambda: sg.const(None), sg.NonNumericConstantError, TypeError, "NoneType"),
    ("const(array)", lambda: sg.const(np.ones(2)), sg.NonNumericConstantError, TypeError, "np.concatenate"),
    ("symbols(None, 3)", lambda: sg.symbols(None, 3), sg.InvalidInputError, ValueError, "name must be"),
    ("symbols('', 3)", lambda: sg.symbols("", 3), sg.InvalidInputError, ValueError, "name must be"),
    ("symbols shape True", lambda: sg.symbols("x", True), sg.ShapeError, ValueError, "shape"),
    ("atan2 shapes", lambda: sg.atan2(X2, [1, 2, 3]), sg.ShapeError, ValueError, "(2,), (3,)"),
    ("if_else shapes", lambda: sg.if_else(X2, [[1, 2, 3]], 0), sg.ShapeError, ValueError, "broadcast"),
    ("builder('nope')", lambda: sg.builder("nope"), sg.UnknownOpError, KeyError, "no op named 'nope'"),
    ("builder(3)", lambda: sg.builder(3), sg.UnknownOpError, KeyError, "no op named 3"),
    ("apply('sin', t)", lambda: sg.apply("sin", T), sg.InvalidOpError, TypeError, "sg.OPS['sin']"),
    ("apply(None, t)", lambda: sg.apply(None, T), sg.InvalidOpError, TypeError, "NoneType"),
    ("SparseExpr negative shape", lambda: sg.SparseExpr([0], [0], [T], (-1, 2)), sg.ShapeError, ValueError,
     "non-negative ints"),
    ("SparseExpr float shape", lambda: sg.SparseExpr([0], [0], [T], (2.5, 2)), sg.ShapeError, ValueError,
     "non-negative ints"),
    ("SparseExpr float rows", lambda: sg.SparseExpr([0.7], [0], [T], (2, 2)), sg.DTypeError, TypeError,
     "rows must be integer"),
    ("SparseExpr float cols", lambda: sg.SparseExpr([0], [1.0], [T], (2, 2)), sg.DTypeError, TypeError,
     "cols must be integer"),
    ("Sparsity negative shape", lambda: sg.Sparsity([0], [0], (2, -2)), sg.ShapeError, ValueError,
     "non-negative ints"),
    ("Sparsity float rows", lambda: sg.Sparsity([0.5], [0], (2, 2)), sg.DTypeError, TypeError,
     "rows must be integer"),
    ("Sparsity lengths", lambda: sg.Sparsity([0, 1], [0], (2, 2)), sg.ShapeError, ValueError, "one length"),
    ("Sparsity row range", lambda: sg.Sparsity([2], [0], (2, 2)), sg.ShapeError, ValueError, "outside the shape"),
    ("Sparsity col range", lambda: sg.Sparsity([0], [-1], (2, 2)), sg.ShapeError, ValueError,
     "outside the shape"),
    ("Sparsity 1-d shape", lambda: sg.Sparsity([0], [0], 3), sg.ShapeError, ValueError, "pair"),
    ("count_ops(Expr int)", lambda: sg.count_ops(5), sg.NonNumericConstantError, TypeError, "count_ops"),
    ("free_symbols(str)", lambda: sg.free_symbols("x"), sg.NonNumericConstantError, TypeError,
     "free_symbols"),
    ("walk(dict)", lambda: sg.walk({T: 1}), sg.NonNumericConstantError, TypeError, "walk"),
    ("count_ops([str])", lambda: sg.count_ops([T, "x"]), sg.NonNumericConstantError, TypeError,
     "str 'x' among the roots"),
    ("NLP f str", lambda: sg.NLP(x=X2, f="x", jit=False), sg.NonNumericConstantError, TypeError,
     "NLP objective f"),
    ("NLP f dict", lambda: sg.NLP(x=X2, f={}, jit=False), sg.NonNumericConstantError, TypeError,
     "NLP objective f"),
    ("NLP g complex", lambda: sg.NLP(x=X2, f=X2[0], g=[1j], jit=False), sg.NonNumericConstantError, TypeError,
     "NLP constraints g"),
    ("NLP x str", lambda: sg.NLP(x="x", f=X2[0], jit=False), sg.NonNumericConstantError, TypeError, "NLP x"),
    ("NLP name", lambda: sg.NLP(x=X2, f=X2[0], name=5, jit=False), sg.InvalidInputError, ValueError,
     "NLP name"),
    ("NLP compile_options", lambda: sg.NLP(x=X2, f=X2[0], jit=False, compile_options=5), sg.InvalidInputError,
     ValueError, "compile_options"),
    ("NLP objective strings", lambda: NLP_VM.objective(["1", "2"]), sg.DTypeError, TypeError, "NLP: x"),
    ("NLP x0 complex", lambda: NLP_VM.scipy_minimize([1j, 0.0]), sg.DTypeError, TypeError, "complex"),
    ("NLP bounds strings", lambda: NLP_VM.scipy_minimize([0.0, 0.0], bounds=("a", "b")), sg.DTypeError,
     TypeError, "lower bounds"),
    ("least_squares x0 str", lambda: sg.least_squares(X2 - 1, X2, ["a", "b"], jit=False), sg.DTypeError,
     TypeError, "least_squares: x0"),
    ("least_squares x0 complex", lambda: sg.least_squares(X2 - 1, X2, [1j, 0], jit=False), sg.DTypeError,
     TypeError, "complex"),
    ("least_squares x0 None", lambda: sg.least_squares(X2 - 1, X2, [None, 0], jit=False), sg.DTypeError,
     TypeError, "NoneType"),
    ("least_squares p_value dict", lambda: sg.least_squares(X2 - T, X2, [0, 0], p=T, p_value={}, jit=False),
     sg.DTypeError, TypeError, "p_value"),
    ("least_squares residuals str", lambda: sg.least_squares("x", X2, [0, 0], jit=False),
     sg.NonNumericConstantError, TypeError, "least_squares residuals"),
    ("to_sympy symbol_map=5", lambda: sg.to_sympy(T, symbol_map=5), sg.SympyConversionError, ValueError,
     "symbol_map must be a dict"),
    ("to_sympy symbol_map values", lambda: sg.to_sympy(T, symbol_map={T: "t"}), sg.SympyConversionError,
     ValueError, "symbol_map entries"),
    ("from_sympy(str)", lambda: sg.from_sympy("t", {"t": T}), sg.SympyConversionError, ValueError, "got str"),
]


@pytest.mark.parametrize("call, error, builtin, fragment", [row[1:] for row in BAD_ARGUMENTS],
                         ids=[row[0] for row in BAD_ARGUMENTS])
def test_bad_arguments_raise_symgraph_errors_naming_them(call, error, builtin, fragment):
    with pytest.raises(error) as info:
        call()
    assert _is_symgraph_error(info.value, builtin)
    assert fragment in str(info.value)


def test_good_arguments_next_to_the_bad_ones_still_work():
    assert sg.const(True).value == 1.0 and sg.const(np.bool_(False)).value == 0.0
    assert sg.const(10**300).value == 1e300 and sg.const(Fraction(1, 4)).value == 0.25
    assert sg.const(np.array(2, dtype=np.int8)).value == 2.0
    assert sg.count_ops(T * T) == 1 and sg.count_ops(np.array([[T + 1, T * 2]])) == 2
    assert sg.free_symbols(sg.SparseExpr([0], [0], [T * 2], (1, 1))) == [T]
    s = sg.Sparsity(np.array([1, 0], dtype=np.int32), [0, 1], (np.int64(2), 2))
    assert s.rows.dtype == np.int64 and s.shape == (2, 2) and isinstance(s.shape[0], int)
    assert sg.Sparsity([], [], (0, 3)).nnz == 0
    assert pickle.loads(pickle.dumps(s)).rows.tolist() == [1, 0]
    assert sg.SparseExpr(np.array([1], dtype=np.uint8), [0], [T], (2, 1)).rows.tolist() == [1]


# ---------------------------------------------------------- 17. foreign Ops
def test_apply_refuses_a_hand_made_op():
    t = sg.symbols("t")
    copied = dataclasses.replace(OPS["sin"])
    made = sg.Op("twice", 1, lambda a: 2 * a, "2 * {0}", lambda a, r: (2.0,), None)
    for op in (copied, made):
        with pytest.raises(sg.InvalidOpError, match="user-defined ops are not supported yet") as info:
            sg.apply(op, t)
        assert _is_symgraph_error(info.value, TypeError)
    assert sg.apply(OPS["sin"], t) is sg.sin(t)  # the table's own record still works
    assert float(sg.Function("f", [t], [sg.apply(OPS["sin"], t)])(0.5)) == math.sin(0.5)


# ---------------------------------------------------------- messages
def test_storing_an_expression_in_a_float_array_says_dtype_object():
    x = sg.symbols("x")
    a = np.zeros(3)
    with pytest.raises(sg.SymbolicBoolError, match=r"dtype=object") as info:
        a[0] = x
    assert "evaluate it through a Function" not in str(info.value)
    with pytest.raises(sg.SymbolicBoolError, match=r"sg\.if_else"):
        np.interp(x, [0.0, 1.0], [0.0, 1.0])
    b = np.zeros(3, dtype=object)
    b[0] = x  # what the message recommends works
    assert b[0] is x


def test_nlp_with_several_x_arrays_points_to_concatenate():
    X, U = sg.symbols("X", 3), sg.symbols("U", 2)
    with pytest.raises(sg.InvalidInputError, match=r"np\.concatenate"):
        sg.NLP(x=[X, U], f=X.sum() + U.sum(), jit=False)
    nlp = sg.NLP(x=np.concatenate([X, U]), f=(X ** 2).sum() + U.sum(), jit=False)  # the advice works
    assert nlp.n == 5


def test_calling_a_function_on_symbols_makes_a_call_and_batch_says_so():
    x, y = sg.symbols("x", 2), sg.symbols("y", 2)

    def model(v):
        return sg.sin(v).sum()

    F = sg.Function("f", [x], [model(x)])
    with pytest.raises(sg.DTypeError, match=r"evaluates numbers only; call the Function itself") as info:
        F.batch(np.array([y]))
    assert "F(x)" in str(info.value)
    assert sg.call.callee(F(y)) is F  # the advice works: a call node
    G = sg.Function("g", [y], [F(y)])
    assert float(G([0.5, 1.0])) == float(F([0.5, 1.0]))
