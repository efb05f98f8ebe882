"""Maps with shared inputs: values, derivatives and Jacobian patterns (issue 10, the ADBench GMM case).

A shared input (a parameter every instance sees whole) makes the
cotangent of that parameter a sum over instances, and the pattern of that
cotangent dense against the mapped inputs.  Guarded here:

* the gradients w.r.t. several parameter groups (one ``sg.grad`` each)
  make one call of the map's vjp, pulled back to every operand;
* values and gradients of a GMM-like objective (a map over components with
  the point shared, inside a map over points with the parameters shared,
  ``reduce="sum"``) equal the unrolled model (``sg.inline``), complex step
  and, compiled, the VM;
* the pattern of a map (the body's tiled, put in CSC order by counting) and
  of its flat derivative Functions (read from the wrapper body's pattern,
  rows picked) equal the patterns swept from their graphs and from the
  unrolled graphs, for random shared/reduce flags and random row and column
  subsets;
* a gradient never builds those flat patterns (they are dense, parameters
  by points), and builds them right when asked;
* the mapped derivative wrapper of a plain body is the derivative graph
  itself (no inner call, so C copies nothing per instance); a map whose
  body is a map still calls the inner flat derivative.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symgraph as sg
from symgraph import calldiff
from symgraph.map import csc_pattern
from symgraph.sparsity import jacobian_sparsity, pattern
from strategies import MAP_FLAGS, complex_step_gradient, module_cache, small_gmm  # module_cache: autouse, a cache per module

HAVE_CC = shutil.which("cc") is not None or shutil.which("gcc") is not None
needs_cc = pytest.mark.skipif(not HAVE_CC, reason="no C compiler")


def entries(sp) -> set:
    """The structural positions of a Sparsity or SparseExpr."""
    return set(zip(np.asarray(sp.rows).tolist(), np.asarray(sp.cols).tolist()))


def flat(values) -> np.ndarray:
    return np.concatenate([np.asarray(v, dtype=object).reshape(-1) for v in values])


# ------------------------------------------------------------ a small GMM
D_, K_, N_ = 3, 2, 5  # dimension, components, points


def gmm():
    """``(inputs, objective)`` of the small GMM (tests/strategies.py)."""
    return small_gmm(D_, K_, N_, q_prior=True)


def gmm_point(seed=0):
    rng = np.random.default_rng(seed)
    n_l = D_ * (D_ - 1) // 2
    return [rng.uniform(-1, 1, K_), rng.uniform(-1, 1, (K_, D_)), 0.3 * rng.uniform(-1, 1, (K_, D_)),
            0.3 * rng.uniform(-1, 1, (K_, n_l)), rng.uniform(-1, 1, (N_, D_))]


def test_gmm_gradients_equal_the_unrolled_model_and_complex_step():
    inputs, f = gmm()
    grads = [sg.grad(f, v) for v in inputs[:4]]  # one gradient per parameter, as bench/structure.py does
    F = sg.Function("gmm", inputs, [f, *grads])
    assert F.tape.n_calls >= 2
    U = sg.Function("gmm_u", inputs, [sg.inline(f), *[sg.grad(sg.inline(f), v) for v in inputs[:4]]])
    assert U.tape.n_calls == 0
    args = gmm_point()
    got, want = F(*args), U(*args)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    # complex step over all parameters at once
    theta0 = np.concatenate([a.reshape(-1) for a in args[:4]])
    objective = sg.Function("objective", [flat(inputs[:4]), inputs[4]], [f])
    cs = complex_step_gradient(lambda th: objective(th, args[4].astype(th.dtype)), theta0)
    np.testing.assert_allclose(np.concatenate([g.reshape(-1) for g in got[1:]]), cs, rtol=1e-10, atol=1e-12)


def test_gradients_per_parameter_group_share_one_pass_over_the_points():
    """Four ``sg.grad`` sweeps (one per parameter group) make one call of the map's vjp, not four."""
    inputs, f = gmm()
    (call,) = [node for node in sg.expr.topological([f]) if node.op is sg.expr.CALL]
    F = sg.Function("gmm", inputs, [f, *[sg.grad(f, v) for v in inputs[:4]]])
    assert F.tape.n_calls == 2  # the objective's map and one vjp map
    vjps = [key for key in calldiff.cached(call.data) if key[0] == "vjp"]
    assert len(vjps) == 1 and len(vjps[0][2]) == call.data.structure.n_operands  # every operand pulled back
    # a gradient w.r.t. the points alone reuses the same derivative call
    G = sg.Function("gmm_x", inputs, [f, *[sg.grad(f, v) for v in inputs]])
    assert G.tape.n_calls == 2
    for a, b in zip(G(*gmm_point(1))[1:5], F(*gmm_point(1))[1:]):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-14)


@needs_cc
def test_gmm_gradient_compiled_equals_the_vm():
    inputs, f = gmm()
    F = sg.Function("gmm", inputs, [f, *[sg.grad(f, v) for v in inputs[:4]]])
    args = gmm_point(3)
    for a, b in zip(F.compile()(*args), F(*args)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------ patterns
def tiled_by_unique(M) -> set:
    """The map's pattern the slow way: the unrolled map's graph swept for dependencies."""
    U = M.inline()
    return entries(jacobian_sparsity(calldiff.flat_outputs(U), calldiff.flat_inputs(U)))


def body(n_in: int = 3):
    """F(a[2], b, p[2]) -> (o0[2], o1) with every input reaching both outputs (one entry not: o0[1] ~ p[0])."""
    a, b, p = sg.symbols("a", 2), sg.symbols("b"), sg.symbols("p", 2)
    return sg.Function("body", [a, b, p], [np.array([sg.sin(a[0]) * b + p[0] * a[1], a[1] * p[1]], dtype=object),
                                          sg.exp(a[0] * b) * p[1] + b * b],
                       input_names=["a", "b", "p"])


@settings(max_examples=30)
@given(MAP_FLAGS)
def test_map_pattern_equals_the_unrolled_sweep(flags):
    shared, reduce, n = flags
    M = body().map(n, shared=[k for k, s in enumerate(shared) if s], reduce=reduce)
    P = M.structure.pattern()
    assert P.shape == (M.structure.n_results, M.structure.n_operands)
    assert entries(P) == tiled_by_unique(M)
    # CSC order, no repeats
    key = np.asarray(P.cols) * P.shape[0] + np.asarray(P.rows)
    assert np.all(np.diff(key) > 0)


@settings(max_examples=60)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 4)), max_size=40))
def test_csc_pattern_equals_the_sorted_unique_pattern(positions):
    rows = [r for r, _ in positions]
    cols = [c for _, c in positions]
    got, want = csc_pattern(rows, cols, (7, 5)), pattern(rows, cols, (7, 5))
    assert got.shape == want.shape
    assert got.rows.tolist() == want.rows.tolist() and got.cols.tolist() == want.cols.tolist()


def test_csc_pattern_merges_many_repeats_of_one_position():
    """A summed result can read one operand through many paths: 256 repeats are one entry (no counter wraps)."""
    got = csc_pattern([2] * 256 + [0], [1] * 256 + [1], (3, 2))
    assert got.rows.tolist() == [0, 2] and got.cols.tolist() == [1, 1]


def _subset(rng, n):
    k = int(rng.integers(1, n + 1))
    return tuple(sorted(rng.choice(n, size=k, replace=False).tolist()))


@settings(max_examples=30)
@given(MAP_FLAGS, st.integers(0, 2 ** 32 - 1), st.sampled_from(["jvp", "vjp"]))
def test_flat_derivative_patterns_equal_the_swept_and_unrolled(flags, seed, mode):
    shared, reduce, n = flags
    M = body().map(n, shared=[k for k, s in enumerate(shared) if s], reduce=reduce)
    s = M.structure
    rng = np.random.default_rng(seed)
    rows, cols = _subset(rng, s.n_results), _subset(rng, s.n_operands)
    # only what calldiff would pass: rows reached by the columns (forward), columns read by the rows (reverse)
    P = s.pattern().matrix.toarray().astype(bool)
    if mode == "jvp":
        rows = tuple(r for r in rows if P[r, list(cols)].any())
        build = calldiff.forward_function
    else:
        cols = tuple(c for c in cols if P[list(rows), c].any())
        build = calldiff.reverse_function
    if not rows or not cols:
        return
    D = build(M, rows, cols).function
    assert D._known is None  # built on first access only
    known = D.known_pattern
    x, y = calldiff.flat_inputs(D), calldiff.flat_outputs(D)
    assert known.shape == (len(y), len(x))
    assert entries(known) == entries(jacobian_sparsity(y, x))
    assert entries(jacobian_sparsity(sg.inline(y), x)) <= entries(known)
    key = np.asarray(known.cols) * known.shape[0] + np.asarray(known.rows)
    assert np.all(np.diff(key) > 0)


def test_a_gradient_builds_no_flat_pattern_and_one_is_built_when_asked():
    """The cotangent of a shared parameter is dense against the points: a gradient must not tile it."""
    x, p = sg.symbols("x", 2), sg.symbols("p", 30)
    F = sg.Function("f", [x, p], [sg.log(1 + np.sum(p * p) * x[0] ** 2) + np.sum(p) * x[1]])
    n = 2000
    M = F.map(n, shared=["p"], reduce="sum")
    X, P = sg.symbols("X", (n, 2)), sg.symbols("P", 30)
    g = sg.grad(M(X, P), P)
    flats = [v.function for v in calldiff.cached(M).values() if isinstance(v, calldiff.Derivative)]
    assert flats and all(D._known is None and D.pattern_source is not None for D in flats)
    G = sg.Function("g", [X, P], [g])
    assert G.tape.n_calls >= 1
    rng = np.random.default_rng(0)
    x0, p0 = rng.uniform(-1, 1, (n, 2)), rng.uniform(-1, 1, 30)
    Gi = sg.Function("gi", [x, p], [sg.grad(F.outputs[0], p)])
    want = np.sum(Gi.batch(x0, np.tile(p0, (n, 1))), axis=0)
    np.testing.assert_allclose(G(x0, p0), want, rtol=1e-10, atol=1e-10)
    D = flats[0]
    known = D.known_pattern  # asked: built now, kept
    assert D._known is known and D.pattern_source is None
    # the gradient pulls back to every operand (X too, widened): pbar[j], the last 30 rows, reads every x
    # (2n columns), every p and the seed: dense
    assert known.shape[0] == 2 * n + 30
    assert int(np.count_nonzero(np.asarray(known.rows) >= 2 * n)) == 30 * (2 * n + 30 + 1)


# ------------------------------------------------------------ the wrapper
def test_the_mapped_wrapper_of_a_plain_body_calls_nothing():
    F = body()
    M = F.map(4, shared=["p"], reduce="sum")
    X = sg.symbols("X", (4, 2))
    b, p = sg.symbols("b", 4), sg.symbols("p", 2)
    y = flat(M(X, b, p))
    sg.grad(np.sum(y * y), p)
    sg.jvp(y, p, np.ones(2))
    wrappers = [v for k, v in calldiff.cached(M).items() if k[0] == "mapped"]
    assert len(wrappers) == 2
    for W in wrappers:
        assert W.structure.body.tape.n_calls == 0, W.structure.body.listing()


def test_map_derivatives_call_the_mapped_wrapper_itself():
    """No call of a flat derivative Function (whose glue copies every operand into one ``x``) at any level."""
    from symgraph.call import callees_bottom_up
    from symgraph.structdiff import FlatDerivative

    inputs, f = gmm()
    F = sg.Function("gmm", inputs, [f, *[sg.grad(f, v) for v in inputs[:4]]])
    direct = [node.data for node in sg.expr.topological(list(flat(F.outputs))) if node.op is sg.expr.CALL]
    callees = callees_bottom_up(direct)
    assert not [G.name for G in callees if isinstance(G, FlatDerivative)]
    assert sum(getattr(G, "structure", None) is not None for G in callees) >= 4  # both maps, both vjp wrappers
    args = gmm_point(2)
    U = sg.Function("gmm_u", inputs, [sg.inline(f), *[sg.grad(sg.inline(f), v) for v in inputs[:4]]])
    for a, b in zip(F(*args), U(*args)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shared_outer", [(), (1,)])
def test_a_map_of_a_map_with_shared_inputs_differentiates_like_the_unrolled(shared_outer):
    """The inner map is the outer map's body itself: its wrapper holds the one call of the inner flat vjp."""
    x, w = sg.symbols("x", 2), sg.symbols("w", 2)
    F = sg.Function("f", [x, w], [sg.sin(x[0] * w[0]) + x[1] * w[1] ** 2])
    inner = F.map(3, shared=["w"], reduce="sum")
    outer = inner.map(2, shared=list(shared_outer), reduce="sum")
    X = sg.symbols("X", (2, 3, 2))
    W = sg.symbols("W", 2) if shared_outer else sg.symbols("W", (2, 2))
    f = outer(X, W) ** 2
    G = sg.Function("g", [X, W], [sg.grad(f, W), sg.grad(f, X)])
    Gu = sg.Function("gu", [X, W], [sg.grad(sg.inline(f), W), sg.grad(sg.inline(f), X)])
    rng = np.random.default_rng(5)
    args = [rng.uniform(-1, 1, (2, 3, 2)), rng.uniform(-1, 1, W.shape)]
    for a, b in zip(G(*args), Gu(*args)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    wrappers = [v for k, v in calldiff.cached(outer).items() if k[0] == "mapped"]
    assert wrappers and all(Wm.structure.body.tape.n_calls == 1 for Wm in wrappers)
    fw = sg.Function("fw", [W], [sg.substitute(f, X, args[0])])
    np.testing.assert_allclose(G(*args)[0].reshape(-1), complex_step_gradient(
        lambda v: fw(v.reshape(W.shape)), args[1].reshape(-1)), rtol=1e-10, atol=1e-12)
