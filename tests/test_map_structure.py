"""Structured maps (MapStructure: one call node whatever n) against their unrolled form and the body.

Oracles: ``M.inline()`` (the map unrolled into n copies of the body's
graph), the body Function evaluated instance by instance, the C backend
against the VM, derivatives of the unrolled model (``sg.inline`` of the same
expression), complex step through the VM, and dependency sweeps over the
graphs of the flat derivative Functions for their precomputed
``known_pattern``.
"""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symgraph as sg
from symgraph import calldiff
from symgraph.sparsity import jacobian_sparsity
from symgraph.structured import StructuredFunction, children, structure_of
from strategies import complex_step_gradient, complex_step_jacobian, module_cache, random_graphs  # module_cache: autouse, a cache per module

HAVE_CC = shutil.which("cc") is not None or shutil.which("gcc") is not None
needs_cc = pytest.mark.skipif(not HAVE_CC, reason="no C compiler")

SHAPES = [(), (2,), (3,), (2, 2)]
SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5]


# ------------------------------------------------------------------ helpers
def outs(value) -> list:
    """A Function's result(s) as a list of arrays (sparse results as they come)."""
    return [v if hasattr(v, "toarray") else np.asarray(v) for v in (value if isinstance(value, tuple) else (value,))]


def assert_close(got, want, rtol=1e-13, atol=1e-300, what=""):
    """Equal within ``atol + rtol * |want|`` elementwise (``atol`` may be an array); NaN equals NaN, inf inf."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    with np.errstate(all="ignore"):
        ok = (got == want) | (np.isnan(got) & np.isnan(want))
        ok |= np.abs(got - want) <= atol + rtol * np.abs(want)
    bad = np.flatnonzero(~ok.reshape(-1))
    assert not bad.size, (f"{what}: {bad.size} of {ok.size} differ, first at {bad[:5].tolist()}: "
                          f"{got.reshape(-1)[bad[:5]]} != {want.reshape(-1)[bad[:5]]}")


def entries(sp) -> set:
    """The structural positions of a Sparsity or SparseExpr."""
    return set(zip(np.asarray(sp.rows).tolist(), np.asarray(sp.cols).tolist()))


def dense(sp) -> np.ndarray:
    return sp.toarray() if hasattr(sp, "toarray") else np.asarray(sp)


def sum_scale(terms: list) -> np.ndarray:
    """Per element, the sum of the magnitudes of the summed instance values (the rounding scale of a sum)."""
    with np.errstate(all="ignore"):
        return np.sum([np.abs(t) for t in terms], axis=0)


def instance_args(M, args, i):
    """The body's arguments of instance ``i`` of map ``M`` called on ``args``."""
    return [a if shared else a[i] for a, shared in zip(args, M.structure.shared)]


def check_against_body(M, args, got, rtol=1e-13):
    """``got`` (M's outputs at ``args``) equal the body run instance by instance (stacked or summed)."""
    s = M.structure
    per = [outs(s.body(*instance_args(M, args, i))) for i in range(s.n)]
    for k, how in enumerate(s.reduce):
        column = [p[k] for p in per]
        if how == "sum":
            assert_close(got[k], np.sum(column, axis=0), rtol=rtol, atol=rtol * sum_scale(column) + 1e-300,
                         what=f"summed output {k} vs the body")
        else:
            assert_close(got[k], np.stack(column), rtol=rtol, what=f"stacked output {k} vs the body")
    return per


def check_against_unrolled(M, args, got, rtol=1e-13):
    """``got`` equal the unrolled Function ``M.inline()`` at ``args``."""
    U = M.inline()
    assert U.tape.n_calls == 0 and U.input_shapes == M.input_shapes and U.output_shapes == M.output_shapes
    want = outs(U(*args))
    s = M.structure
    per = [outs(s.body(*instance_args(M, args, i))) for i in range(s.n)]
    for k, how in enumerate(s.reduce):
        atol = 1e-300 if how is None else rtol * sum_scale([p[k] for p in per]) + 1e-300
        assert_close(got[k], want[k], rtol=rtol, atol=atol, what=f"output {k} vs the unrolled model")


def random_args(M, rng, specials=False):
    """Values of M's inputs (uniform in [-2, 2], some set to special values when ``specials``)."""
    args = []
    for shape in M.input_shapes:
        a = rng.uniform(-2.0, 2.0, shape)
        if specials and a.size:
            mask = rng.random(a.shape) < 0.2
            a = np.where(mask, rng.choice(SPECIAL, a.shape), a)
        args.append(np.asarray(a, dtype=np.float64))
    return args


@st.composite
def bodies(draw, smooth_only=False, max_steps=8):
    """A body Function with 1-3 inputs of random shapes and 1-2 outputs built from a random graph."""
    shapes = draw(st.lists(st.sampled_from(SHAPES), min_size=1, max_size=3))
    names = [f"a{k}" for k in range(len(shapes))]
    inputs = [sg.symbols(nm, sh) if sh else sg.symbols(nm) for nm, sh in zip(names, shapes)]
    flat = [e for arr in inputs for e in np.asarray(arr, dtype=object).reshape(-1)]
    g = draw(random_graphs(max_inputs=3, max_steps=max_steps, smooth_only=smooth_only))
    chosen = np.array([flat[draw(st.integers(0, len(flat) - 1))] for _ in g.inputs], dtype=object)
    values = sg.substitute(np.array(g.outputs, dtype=object), np.array(g.inputs, dtype=object), chosen)
    values = np.asarray(values, dtype=object)
    outputs = [values if len(values) > 1 or draw(st.booleans()) else values.reshape(())]
    if draw(st.booleans()):  # a second output shaped like one of the inputs
        j = draw(st.integers(0, len(inputs) - 1))
        outputs.append(np.asarray(inputs[j] * values[-1] + 1.0, dtype=object))
    return sg.Function("body", inputs, outputs, input_names=names)


@st.composite
def maps(draw, smooth_only=False, max_steps=8):
    """``(M, F)``: a map of a random body with random shared and reduce flags, n in 1..6."""
    F = draw(bodies(smooth_only=smooth_only, max_steps=max_steps))
    shared = [k for k in range(F.n_in) if draw(st.booleans())]
    reduce = [draw(st.sampled_from([None, "sum"])) for _ in range(F.n_out)]
    n = draw(st.integers(1, 6))
    return F.map(n, shared=shared, reduce=reduce), F


# ------------------------------------------------------- 1. random bodies
@settings(max_examples=40)
@given(maps(), st.integers(0, 2 ** 32 - 1), st.integers(1, 3))
def test_random_maps_vm_equal_unrolled_body_c_and_batch(case, seed, n_points):
    M, F = case
    s = M.structure
    assert isinstance(M, StructuredFunction) and s.kind == "map" and s.body is F
    assert M.tape.n_calls == 1 and M.n_ops == 1 + s.n_results
    assert M.input_shapes == tuple(sh if f else (s.n,) + sh for sh, f in zip(F.input_shapes, s.shared))
    assert M.output_shapes == tuple(sh if r else (s.n,) + sh for sh, r in zip(F.output_shapes, s.reduce))
    rng = np.random.default_rng(seed)
    args = random_args(M, rng, specials=True)
    with np.errstate(all="ignore"):
        got = outs(M(*args))
        check_against_unrolled(M, args, got)
        check_against_body(M, args, got)
    # the tiled pattern holds every entry of the unrolled model's
    U = M.inline()
    swept = jacobian_sparsity(calldiff.flat_outputs(U), calldiff.flat_inputs(U))
    P = s.pattern()
    assert P.shape == swept.shape == (s.n_results, s.n_operands)
    assert entries(swept) <= entries(P)
    # batch: N points, each input batched or shared among the points at random
    batched = [bool(rng.integers(2)) for _ in args]
    batched[int(rng.integers(len(args)))] = True  # at least one input carries the N points
    pts = [random_args(M, rng) for _ in range(n_points)]
    bargs = [np.stack([p[k] for p in pts]) if b else args[k] for k, b in enumerate(batched)]
    point_args = [[p[k] if b else args[k] for k, b in enumerate(batched)] for p in pts]
    with np.errstate(all="ignore"):
        B = outs(M.batch(*bargs))
        for q, pa in enumerate(point_args):
            for k, v in enumerate(outs(M(*pa))):
                assert_close(B[k][q], v, what=f"batch point {q} output {k}")
    if not HAVE_CC:
        return
    C = M.compile(optimize=0)
    with np.errstate(all="ignore"):
        cvals = outs(C(*args))
        for k, (c, v) in enumerate(zip(cvals, got)):
            assert_close(c, v, rtol=1e-8, what=f"C output {k} vs VM")
        CB = outs(C.batch(*bargs))
        for q, pa in enumerate(point_args):
            for k, v in enumerate(outs(C(*pa))):
                assert_close(CB[k][q], v, rtol=0, what=f"C batch point {q} output {k}")


# ------------------------------------------------------- 2. derivatives
def _body():
    """F(a[2], b, p[2]) -> (o0[2], o1): smooth, every input reaching both outputs."""
    a, b, p = sg.symbols("a", 2), sg.symbols("b"), sg.symbols("p", 2)
    return sg.Function("body", [a, b, p], [sg.sin(a) * b + p[0] * a[::-1],
                                          sg.exp(a[0] * b) * p[1] - sg.log(1 + a[1] ** 2) * p[0] + b * b * b],
                       input_names=["a", "b", "p"])


N_X = 7
IDX = np.array([[0, 1], [1, 1], [2, 0], [5, 2]])  # gathers with repeats (X[1] three times, X[0] twice...)


def _model(shared, reduce):
    """``(X, M, y, f)``: the map called on gathered entries of X with constants among the operands."""
    n = len(IDX)
    M = _body().map(n, shared=shared, reduce=reduce)
    X = sg.symbols("X", N_X)
    a = X[IDX]
    b = X[3] if "b" in shared else np.array([X[1], 0.5, X[1] * X[2], X[6]], dtype=object)
    p = np.array([X[4], 1.5], dtype=object) if "p" in shared else \
        np.array([[X[4], 1.5], [X[0], X[4]], [-2.0, X[3]], [X[4], X[4]]], dtype=object)
    y = np.concatenate([np.asarray(o, dtype=object).reshape(-1) for o in outs(M(a, b, p))])
    w = np.arange(1, len(y) + 1) / len(y)
    f = np.sum(w * y) + 0.5 * np.sum(y * y) + y[0] * y[-1]
    return X, M, y, f


CONFIGS = [((), None), ((), "sum"), (("p",), (None, "sum")), (("p",), ("sum", None)),
           (("b", "p"), "sum"), (("b",), (None, "sum"))]


def _x0():
    return np.random.default_rng(11).uniform(-0.9, 0.9, N_X)


@pytest.mark.parametrize("shared, reduce", CONFIGS)
def test_jvp_vjp_grad_of_a_gathered_map_equal_the_unrolled_and_complex_step(shared, reduce):
    X, M, y, f = _model(shared, reduce)
    yu, fu = sg.inline(y), sg.inline(f)
    assert sg.Function("yu", [X], [yu]).tape.n_calls == 0
    x0 = _x0()
    Y = sg.Function("y", [X], [y])
    assert Y.tape.n_calls == 1
    assert_close(Y(x0), sg.Function("yu", [X], [yu])(x0), rtol=1e-13, atol=1e-14, what="y")
    Jcs = complex_step_jacobian(Y, x0)
    tX, ybar = sg.symbols("tX", N_X), sg.symbols("ybar", len(y))
    rng = np.random.default_rng(2)
    t0, c0 = rng.normal(size=N_X), rng.normal(size=len(y))
    # forward
    G = sg.Function("jvp", [X, tX], [sg.jvp(y, X, tX)])
    Gu = sg.Function("jvpu", [X, tX], [sg.jvp(yu, X, tX)])
    assert G.tape.n_calls >= 1
    assert_close(G(x0, t0), Gu(x0, t0), rtol=1e-10, atol=1e-10, what="jvp vs unrolled")
    assert_close(G(x0, t0), Jcs @ t0, rtol=1e-9, atol=1e-9, what="jvp vs complex step")
    # reverse
    V = sg.Function("vjp", [X, ybar], [sg.vjp(y, X, ybar)])
    Vu = sg.Function("vjpu", [X, ybar], [sg.vjp(yu, X, ybar)])
    assert V.tape.n_calls >= 1
    assert_close(V(x0, c0), Vu(x0, c0), rtol=1e-10, atol=1e-10, what="vjp vs unrolled")
    assert_close(V(x0, c0), c0 @ Jcs, rtol=1e-9, atol=1e-9, what="vjp vs complex step")
    # gradient
    Fn = sg.Function("f", [X], [f])
    g = sg.Function("g", [X], [sg.grad(f, X)])(x0)
    assert_close(g, sg.Function("gu", [X], [sg.grad(fu, X)])(x0), rtol=1e-10, atol=1e-10, what="grad vs unrolled")
    assert_close(g, complex_step_gradient(Fn, x0), rtol=1e-9, atol=1e-9, what="grad vs complex step")


@pytest.mark.parametrize("shared, reduce", CONFIGS)
@pytest.mark.parametrize("mode", ["auto", "forward", "reverse"])
def test_jacobian_of_a_gathered_map_never_misses_an_entry(shared, reduce, mode):
    X, M, y, f = _model(shared, reduce)
    yu = sg.inline(y)
    x0 = _x0()
    J = sg.jacobian(y, X, mode=mode)
    Ju = sg.jacobian(yu, X)
    assert J.shape == Ju.shape == (len(y), N_X)
    assert entries(Ju) <= entries(J), f"missed entries {sorted(entries(Ju) - entries(J))}"
    Jv = dense(sg.Function("J", [X], [J])(x0))
    assert_close(Jv, dense(sg.Function("Ju", [X], [Ju])(x0)), rtol=1e-10, atol=1e-10, what="jacobian vs unrolled")
    Jcs = complex_step_jacobian(sg.Function("y", [X], [y]), x0)
    assert_close(Jv, Jcs, rtol=1e-9, atol=1e-9, what="jacobian vs complex step")
    nz = set(zip(*np.nonzero(Jcs)))
    assert {(int(i), int(j)) for i, j in nz} <= entries(J)


@pytest.mark.parametrize("shared, reduce", CONFIGS)
def test_hessian_of_a_gathered_map_equals_the_unrolled_and_complex_step(shared, reduce):
    X, M, y, f = _model(shared, reduce)
    fu = sg.inline(f)
    x0 = _x0()
    H = sg.hessian(f, X)
    Hu = sg.hessian(fu, X)
    assert entries(Hu) <= entries(H), f"missed entries {sorted(entries(Hu) - entries(H))}"
    HF = sg.Function("H", [X], [H])
    assert HF.tape.n_calls >= 1
    Hv = dense(HF(x0))
    assert_close(Hv, dense(sg.Function("Hu", [X], [Hu])(x0)), rtol=1e-10, atol=1e-10, what="hessian vs unrolled")
    assert_close(Hv, Hv.T, rtol=1e-12, atol=1e-12, what="hessian symmetric")
    gradF = sg.Function("g", [X], [sg.grad(f, X)])
    assert_close(Hv, complex_step_jacobian(gradF, x0), rtol=1e-8, atol=1e-8, what="hessian vs complex step")
    # finite differences of the gradient, independent of complex arithmetic
    h = 1e-6
    fd = np.column_stack([(gradF(x0 + h * e) - gradF(x0 - h * e)) / (2 * h) for e in np.eye(N_X)])
    assert_close(Hv, fd, rtol=1e-5, atol=1e-5, what="hessian vs finite differences")
    # every flat derivative Function built on the way carries a correct precomputed pattern
    check_known_patterns(M)


@settings(max_examples=25)
@given(maps(smooth_only=True, max_steps=6), st.integers(0, 2 ** 32 - 1))
def test_random_map_derivatives_equal_the_unrolled(case, seed):
    M, F = case
    X = sg.symbols("X", M.structure.n_operands)
    args, k = [], 0
    for shape in M.input_shapes:
        size = int(np.prod(shape, dtype=np.int64))
        args.append(X[k:k + size].reshape(shape))
        k += size
    y = np.concatenate([np.asarray(o, dtype=object).reshape(-1) for o in outs(M(*args))])
    f = np.sum(y * np.linspace(0.5, 1.5, len(y)))
    yu, fu = sg.inline(y), sg.inline(f)
    x0 = np.random.default_rng(seed).uniform(-1.5, 1.5, len(X))
    J, Ju = sg.jacobian(y, X), sg.jacobian(yu, X)
    assert entries(Ju) <= entries(J), f"missed entries {sorted(entries(Ju) - entries(J))}"
    H, Hu = sg.hessian(f, X), sg.hessian(fu, X)
    assert entries(Hu) <= entries(H), f"missed entries {sorted(entries(Hu) - entries(H))}"
    with np.errstate(all="ignore"):
        got = [dense(v) for v in outs(sg.Function("d", [X], [J, sg.grad(f, X), H])(x0))]
        want = [dense(v) for v in outs(sg.Function("du", [X], [Ju, sg.grad(fu, X), Hu])(x0))]
    for name, a, b in zip(["jacobian", "grad", "hessian"], got, want):
        both = np.isfinite(a) & np.isfinite(b)
        scale = 1e-8 * max(1.0, float(np.max(np.abs(b[both]), initial=0.0)))
        assert_close(a[both], b[both], rtol=1e-8, atol=scale, what=f"{name} vs unrolled")
    check_known_patterns(M)


# ------------------------------------------------------- 3. known_pattern
def check_known_patterns(M) -> int:
    """Every flat derivative Function cached for map ``M`` (and for the maps inside them, any order):
    its ``known_pattern`` holds the pattern swept from its graph and from its unrolled graph.

    Returns how many were checked."""
    seen, stack, checked = set(), [M], 0
    while stack:
        G = stack.pop()
        if G in seen:
            continue
        seen.add(G)
        stack.extend(children(G))
        for value in calldiff.cached(G).values():
            D = value.function if isinstance(value, calldiff.Derivative) else value
            stack.append(D)
            if isinstance(value, calldiff.Derivative) and structure_of(G) is not None:
                check_known_pattern(D)
                checked += 1
    return checked


def check_known_pattern(D):
    known = D.known_pattern
    x, y = calldiff.flat_inputs(D), calldiff.flat_outputs(D)
    swept = jacobian_sparsity(y, x)
    unrolled = jacobian_sparsity(sg.inline(y), x)
    assert known.shape == swept.shape == (len(y), len(x))
    assert entries(swept) <= entries(known), f"{D.name}: known_pattern misses {sorted(entries(swept) - entries(known))}"
    # no wider than the sweep through the call of the mapped wrapper either (same tiled pattern, picked)
    assert entries(known) == entries(swept), f"{D.name}: known_pattern adds {sorted(entries(known) - entries(swept))}"
    assert entries(unrolled) <= entries(known), \
        f"{D.name}: known_pattern misses {sorted(entries(unrolled) - entries(known))} of the unrolled graph"


def _subset(rng, items, full=False):
    """A sorted non-empty random subset of ``items`` (all of them when ``full``)."""
    items = sorted(items)
    if full or len(items) < 2:
        return tuple(items)
    return tuple(sorted(rng.choice(items, size=int(rng.integers(1, len(items) + 1)), replace=False).tolist()))


def derivative_requests(M, rng, count):
    """``(build, mode, rows, cols)`` as calldiff's sweeps ask them of map ``M`` (its documented contract):
    forward, ``rows`` among the results that ``cols`` reach; reverse, ``cols`` among the operands that
    reach ``rows``.  The first of each mode is the full one."""
    s = M.structure
    col_rows, row_cols = calldiff.column_rows(M), calldiff.row_columns(M)
    out = []
    for k in range(count + 1):
        cols = _subset(rng, range(s.n_operands), full=not k)
        reached = set().union(*(col_rows[c] for c in cols))
        if reached:
            out.append((calldiff.forward_function, "jvp", _subset(rng, reached, full=not k), cols))
        rows = _subset(rng, range(s.n_results), full=not k)
        reaching = set().union(*(row_cols[r] for r in rows))
        if reaching:
            out.append((calldiff.reverse_function, "vjp", rows, _subset(rng, reaching, full=not k)))
    return out


@pytest.mark.parametrize("shared, reduce", CONFIGS)
def test_known_pattern_of_flat_derivative_functions(shared, reduce):
    M = _body().map(3, shared=shared, reduce=reduce)
    s = M.structure
    U = M.inline()
    # the tiled pattern is the unrolled model's
    swept = jacobian_sparsity(calldiff.flat_outputs(U), calldiff.flat_inputs(U))
    assert entries(s.pattern()) == entries(swept)
    Jdense = swept.matrix.toarray()
    rng = np.random.default_rng(5)
    x0 = rng.uniform(-0.9, 0.9, s.n_operands)
    Jnum = complex_step_jacobian(lambda v: np.concatenate([o.reshape(-1) for o in outs(U(*split(M, v)))]), x0)
    assert np.all(Jdense[Jnum != 0])  # the sweep is an oracle here: it holds every numerical nonzero
    requests = derivative_requests(M, rng, 6)
    assert len(requests) >= 10
    for build, mode, rows, cols in requests:
        D = build(M, rows, cols)
        assert D.rows == rows and D.cols == cols
        check_known_pattern(D.function)
        # values: the slice of the unrolled Jacobian applied to random seeds
        block = Jnum[np.ix_(rows, cols)]
        seeds = rng.normal(size=len(cols) if mode == "jvp" else len(rows))
        want = block @ seeds if mode == "jvp" else seeds @ block
        assert_close(D.function(x0, seeds), want, rtol=1e-10, atol=1e-12, what=f"{mode} {rows} {cols}")
        # second order: a jvp of the derivative Function (its graph calls a map of the body's
        # derivative; that map's own derivative Functions are checked by check_known_patterns)
        Df = D.function
        n_z, n_w = s.n_operands + len(seeds), Df.outputs[0].size
        D2 = calldiff.forward_function(Df, tuple(range(n_w)), tuple(range(n_z)))
        z0, tz = np.concatenate([x0, seeds]), rng.normal(size=n_z)
        cs = np.imag(Df(x0 + 1e-30j * tz[:s.n_operands], seeds + 1e-30j * tz[s.n_operands:])) / 1e-30
        assert_close(D2.function(z0, tz), cs, rtol=1e-9, atol=1e-12, what=f"second order {mode}")
    assert check_known_patterns(M) > 0


def split(M, v):
    """A flat vector of M's operand scalars as M's arguments."""
    args, k = [], 0
    for shape in M.input_shapes:
        size = int(np.prod(shape, dtype=np.int64))
        args.append(np.asarray(v[k:k + size]).reshape(shape))
        k += size
    return args


@settings(max_examples=40)
@given(maps(max_steps=6), st.integers(0, 2 ** 32 - 1))
def test_random_known_patterns_and_tiled_pattern(case, seed):
    M, F = case
    s = M.structure
    U = M.inline()
    swept = jacobian_sparsity(calldiff.flat_outputs(U), calldiff.flat_inputs(U))
    assert entries(swept) <= entries(s.pattern())
    rng = np.random.default_rng(seed)
    for build, mode, rows, cols in derivative_requests(M, rng, 1):
        check_known_pattern(build(M, rows, cols).function)


# ------------------------------------------------------- 4. nested structure
def _inner():
    """inner(x[2], q) -> (scalar, x[2]-shaped)."""
    x, q = sg.symbols("x", 2), sg.symbols("q")
    return sg.Function("inner", [x, q], [q * sg.sin(x[0]) * x[1] + sg.exp(-x[1] ** 2), x * q + x[0] * x[1]],
                       input_names=["x", "q"])


def _map_of_map_summed():
    return _inner().map(3, shared=["q"], reduce=("sum", None)).map(2, shared=["q"], reduce="sum")


def _map_of_map_inner_q_mapped():
    return _inner().map(3, reduce=(None, "sum")).map(2, shared=["q"], reduce=("sum", None))


def _map_of_a_body_with_a_call():
    z, c = sg.symbols("z", 2), sg.symbols("c")
    H = sg.Function("h", [z, c], [sg.cos(z[0] * c) + z[1] ** 3])
    x, q = sg.symbols("x", 2), sg.symbols("q")
    first, second = _inner()(x, q)
    G = sg.Function("g", [x, q], [first * H(second, q) + H(x, 2.0), second * H(x[::-1], q)],
                    input_names=["x", "q"])
    return G.map(4, shared=["q"], reduce=(None, "sum"))


def _mapped_function_holding_a_map():
    Mi = _inner().map(3, shared=["q"], reduce=("sum", None))
    Y, r = sg.symbols("Y", (3, 2)), sg.symbols("r")
    s1, v1 = Mi(Y, r)
    s2, _ = Mi(Y[::-1], r * 2)
    outer = sg.Function("outer", [Y, r], [s1 * r + np.sum(v1 ** 2), sg.cos(s2) * v1[0]], input_names=["Y", "r"])
    return outer.map(2, shared=["r"], reduce="sum")


NESTED = [_map_of_map_summed, _map_of_map_inner_q_mapped, _map_of_a_body_with_a_call, _mapped_function_holding_a_map]


@pytest.mark.parametrize("build", NESTED, ids=lambda b: b.__name__.strip("_"))
def test_nested_values_vm_c_unrolled(build):
    M = build()
    s = M.structure
    assert isinstance(M, StructuredFunction) and M.tape.n_calls == 1 and M.n_ops == 1 + s.n_results
    U = M.inline()
    assert U.tape.n_calls == 0  # every level unrolled
    rng = np.random.default_rng(3)
    args = random_args(M, rng)
    got = outs(M(*args))
    check_against_unrolled(M, args, got)
    check_against_body(M, args, got)
    swept = jacobian_sparsity(calldiff.flat_outputs(U), calldiff.flat_inputs(U))
    assert entries(swept) == entries(s.pattern())
    # complex values through the VM (what complex step runs on)
    cargs = [a + 1j * rng.uniform(-0.5, 0.5, np.shape(a)) for a in args]
    for k, (c, u) in enumerate(zip(outs(M(*cargs)), outs(U(*cargs)))):
        assert np.iscomplexobj(c) and np.any(np.imag(c) != 0)
        assert_close(c, u, rtol=1e-13, atol=1e-14, what=f"complex output {k}")
    if HAVE_CC:
        C = M.compile()
        for k, (c, v) in enumerate(zip(outs(C(*args)), got)):
            assert_close(c, v, rtol=1e-12, atol=1e-14, what=f"C output {k}")


@pytest.mark.parametrize("build", NESTED, ids=lambda b: b.__name__.strip("_"))
def test_nested_gradient_and_hessian(build):
    M = build()
    X = sg.symbols("X", M.structure.n_operands)
    y = np.concatenate([np.asarray(o, dtype=object).reshape(-1) for o in outs(M(*split(M, X)))])
    f = np.sum(y * np.linspace(0.5, 1.5, len(y))) + 0.5 * np.sum(y * y)
    fu = sg.inline(f)
    x0 = np.random.default_rng(4).uniform(-0.9, 0.9, len(X))
    g, H = sg.grad(f, X), sg.hessian(f, X)
    gu, Hu = sg.grad(fu, X), sg.hessian(fu, X)
    assert entries(Hu) <= entries(H), f"missed entries {sorted(entries(Hu) - entries(H))}"
    D = sg.Function("d", [X], [g, H])
    Du = sg.Function("du", [X], [gu, Hu])
    assert D.tape.n_calls >= 1 and Du.tape.n_calls == 0
    gv, Hv = D(x0)
    guv, Huv = Du(x0)
    assert_close(gv, guv, rtol=1e-10, atol=1e-10, what="grad vs unrolled")
    assert_close(dense(Hv), dense(Huv), rtol=1e-10, atol=1e-10, what="hessian vs unrolled")
    Fn = sg.Function("f", [X], [f])
    assert_close(gv, complex_step_gradient(Fn, x0), rtol=1e-9, atol=1e-9, what="grad vs complex step")
    gradF = sg.Function("g", [X], [g])
    assert_close(dense(Hv), complex_step_jacobian(gradF, x0), rtol=1e-8, atol=1e-8, what="hessian vs complex step")
    if HAVE_CC:  # derivative maps (maps of wrappers of the body's derivatives) as C loops
        gc, Hc = D.compile()(x0)
        assert_close(gc, gv, rtol=1e-12, atol=1e-12, what="C grad")
        assert_close(dense(Hc), dense(Hv), rtol=1e-12, atol=1e-12, what="C hessian")
    assert check_known_patterns(M) > 0


# ------------------------------------------------------- 5. complex inputs
@pytest.mark.parametrize("shared, reduce", CONFIGS)
def test_complex_inputs_through_the_vm(shared, reduce):
    M = _body().map(4, shared=shared, reduce=reduce)
    rng = np.random.default_rng(6)
    args = [a + 1j * rng.uniform(-1, 1, np.shape(a)) for a in random_args(M, rng)]
    got, want = outs(M(*args)), outs(M.inline()(*args))
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == np.complex128 and np.any(np.imag(g) != 0)
        assert_close(g, w, rtol=1e-13, atol=1e-14, what=f"complex output {k}")
    check_against_body(M, args, got)
    # complex step through the map: d/dx of every output along a direction, against the sparse Jacobian
    X = sg.symbols("X", M.structure.n_operands)
    y = np.concatenate([np.asarray(o, dtype=object).reshape(-1) for o in outs(M(*split(M, X)))])
    x0, t = rng.uniform(-1, 1, len(X)), rng.normal(size=len(X))
    Y = sg.Function("y", [X], [y])
    cs = np.imag(Y(x0 + 1e-30j * t)) / 1e-30
    J = dense(sg.Function("J", [X], [sg.jacobian(y, X)])(x0))
    assert_close(cs, J @ t, rtol=1e-12, atol=1e-12, what="complex step vs jacobian")
    # a batch of complex points
    B = outs(M.batch(*[np.stack([a, 2 * a]) for a in args]))
    for k, v in enumerate(outs(M(*[2 * a for a in args]))):
        assert_close(B[k][1], v, rtol=1e-13, what=f"complex batch output {k}")


# ------------------------------------------------------- 6. scale
def _small():
    x, p = sg.symbols("x", 2), sg.symbols("p")
    return sg.Function("small", [x, p], [p * x[0] * x[1], sg.sin(x) * p], input_names=["x", "p"])


def test_a_map_over_100000_instances_is_one_call_node():
    n = 100_000
    M = _small().map(n, shared=["p"], reduce=("sum", None))
    s = M.structure
    assert M.tape.n_calls == 1 and s.n == n
    assert s.n_results == 1 + 2 * n and s.n_operands == 2 * n + 1
    assert M.n_ops == 1 + s.n_results
    P = s.pattern()  # tiled with numpy: (sum | all x, p) + (each sin(x) * p | its x, p)
    assert P.shape == (1 + 2 * n, 2 * n + 1) and P.nnz == (2 * n + 1) + 2 * (2 * n)
    S = _small().map(n, shared=["p"], reduce="sum")
    assert S.n_ops == 1 + S.structure.n_results == 1 + 3
    X = np.random.default_rng(7).uniform(-1, 1, (n, 2))
    total, stacked = M(X, 0.5)
    np.testing.assert_allclose(total, 0.5 * np.sum(X[:, 0] * X[:, 1]), rtol=1e-12)
    np.testing.assert_allclose(stacked, np.sin(X) * 0.5, rtol=1e-15)
    total2, stacked2 = S(X, 0.5)
    np.testing.assert_allclose(total2, total, rtol=1e-12)
    np.testing.assert_allclose(stacked2, np.sum(np.sin(X) * 0.5, axis=0), rtol=1e-12)


def test_c_source_size_does_not_depend_on_n():
    # codegen/glue.py: the copies in and out of the map's call are loops, so only digits differ
    small = _small().map(10, shared=["p"], reduce="sum").c_code()
    large = _small().map(100_000, shared=["p"], reduce="sum").c_code()
    assert "for (long i = 0; i < 100000; ++i)" in large
    assert len(large) - len(small) < 1000, (len(small), len(large))
    assert re.sub(r"\d+", "#", large) == re.sub(r"\d+", "#", small)


def test_c_loop_source_is_the_same_for_any_n():
    # the loop function of the map itself has a fixed size: only the digits of n differ
    def loop(src):
        start = src.index("/* map of small over")
        return src[start:src.index("\n}\n", start)]

    small = loop(_small().map(10, shared=["p"], reduce=("sum", None)).c_code())
    large = loop(_small().map(2_000, shared=["p"], reduce=("sum", None)).c_code())
    assert large.replace("2000", "10") == small


# ------------------------------------------------------- 7. bad input
@pytest.mark.parametrize("n", [0, -1, 2.0, 1.5, True, False, "3", None, np.float64(3.0)])
def test_bad_n_is_refused(n):
    with pytest.raises(sg.InvalidInputError, match=r"small\.map: n must be a positive int, got"):
        _small().map(n)


def test_numpy_int_n_is_accepted():
    M = _small().map(np.int64(3), shared=["p"])
    assert M.structure.n == 3 and type(M.structure.n) is int and M.input_shapes == ((3, 2), ())


@pytest.mark.parametrize("shared, message", [
    (["q"], r"small\.map: shared names no input 'q' \(inputs: 'x', 'p'\)"),
    ("y", r"shared names no input 'y'"),
    ([2], r"shared index 2 is out of range; small has 2 input"),
    ([-1], r"shared index -1 is out of range"),
])
def test_shared_naming_a_missing_input(shared, message):
    with pytest.raises(sg.InvalidInputError, match=message):
        _small().map(3, shared=shared)


def test_wrong_leading_axis_names_the_argument():
    M = _small().map(3, shared=["p"])
    for X in (sg.symbols("X", (4, 2)), np.zeros((4, 2)), np.zeros((2,)), np.zeros((3, 2, 1))):
        with pytest.raises(sg.ShapeError, match=r"small_map3: argument 0 \('x'\): expected shape \(3, 2\)"):
            M(X, 1.0)
    for p in (sg.symbols("P", 3), np.zeros(3)):  # a shared input keeps the body's shape
        with pytest.raises(sg.ShapeError, match=r"argument 1 \('p'\): expected shape \(\)"):
            M(np.zeros((3, 2)), p)
    Mp = _small().map(3)  # p mapped: needs its leading axis
    with pytest.raises(sg.ShapeError, match=r"argument 1 \('p'\): expected shape \(3,\)"):
        Mp(sg.symbols("X", (3, 2)), sg.symbols("q"))
    with pytest.raises(sg.ShapeError, match=r"argument 0 \('x'\)"):
        M.batch(np.zeros((2, 4, 2)), 1.0)
    assert issubclass(sg.ShapeError, ValueError)


def test_sparse_body_outputs_are_refused():
    x = sg.symbols("x", 2)
    F = sg.Function("sp", [x], [x * 2, sg.hessian(x[0] * x[1] ** 2, x)], output_names=["v", "H"])
    with pytest.raises(sg.InvalidInputError, match=r"sp\.map: output 1 \('H'\) is sparse"):
        F.map(2)
    with pytest.raises(sg.InvalidInputError, match=r"sp\.map: output 1 \('H'\) is sparse"):
        F.map(2, reduce="sum")
