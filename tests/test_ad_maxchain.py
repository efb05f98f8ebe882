"""Derivatives through long chains of 0/1-mask partials (left folds of fmax / fmin).

Regression test for issue 15 item 1 (``shared/repro/benchmark/r_fmax_grad.py``):
``sg.grad`` through ``functools.reduce(sg.fmax, x)`` was quadratic in the
fold's length (every step re-wrapped all the masks of the incoming adjoint).
It is linear now and its gradient graph is as small as a pairwise fold's.
Values are checked against complex step through the VM (the VM's complex
``fmin``/``fmax`` let the first operand win ties, the derivative convention).
"""

from __future__ import annotations

import time
from functools import reduce

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import symgraph as sg
from symgraph import ad
from strategies import complex_step_gradient, complex_step_jacobian

H = 1e-30


def _pairwise(op, xs):
    """Balanced fold: the same maxima as a left fold, log-depth."""
    xs = list(xs)
    while len(xs) > 1:
        nxt = [op(xs[i], xs[i + 1]) for i in range(0, len(xs) - 1, 2)]
        if len(xs) % 2:
            nxt.append(xs[-1])
        xs = nxt
    return xs[0]


def _logsumexp(x, fold=reduce):
    m = fold(sg.fmax, x)
    return m + sg.log(sum(sg.exp(xi - m) for xi in x))


@pytest.fixture(params=[ad._NEST, 0], ids=["nest-short-chains", "select-on-every-chain"])
def nest(request, monkeypatch):
    """Run a test as shipped, and with every mask chain selected on its condition (no nesting)."""
    monkeypatch.setattr(ad, "_NEST", request.param)
    return request.param


def _grad_seconds(n: int, repeats: int = 3) -> float:
    """Best time of ``sg.grad`` of a fresh n-long left fold of fmax (fold built outside the clock)."""
    best = float("inf")
    for _ in range(repeats):
        x = sg.symbols("x", n)
        f = reduce(sg.fmax, x)
        t = time.perf_counter()
        sg.grad(f, x)
        best = min(best, time.perf_counter() - t)
    return best


# ---------------------------------------------------------------- scaling
def test_grad_of_left_fmax_fold_builds_in_linear_time():
    small, large = _grad_seconds(5_000), _grad_seconds(20_000)
    # linear: ~4, quadratic (before the fix: 200 s at 10^4): 16
    assert large / small < 8, (small, large)


def test_left_fold_gradient_is_as_small_as_pairwise():
    n = 1000
    x = sg.symbols("x", n)
    for op in (sg.fmax, sg.fmin):
        left, pair = sg.grad(reduce(op, x), x), sg.grad(_pairwise(op, x), x)
        assert sg.count_ops(list(left)) == sg.count_ops(list(pair)) == 5 * n - 8
    left, pair = sg.grad(_logsumexp(x), x), sg.grad(_logsumexp(x, _pairwise), x)
    assert sg.count_ops(list(left)) == sg.count_ops(list(pair)) <= 11 * n


def test_gradient_of_fold_over_smooth_terms_is_linear_in_size():
    # the partial cos(x_k) meets a k-deep chain of masks: one selection on
    # the chain (a pure 0/1 product here), not k nested ones (was 505,495 ops at n = 1000)
    n = 1000
    x = sg.symbols("x", n)
    for fold in (reduce, _pairwise):
        g = sg.grad(fold(sg.fmax, sg.sin(x)), x)
        assert sg.count_ops(list(g)) <= 8 * n  # the fold itself is 2n of them
    g = sg.grad(reduce(sg.fmax, sg.sin(x)) * sg.exp(x[0]), x)
    assert sg.count_ops(list(g)) <= 9 * n


# ----------------------------------------------------------------- values
def test_fmax_and_fmin_folds_with_ties_match_complex_step(nest):
    x = sg.symbols("x", 9)
    v = np.array([1.0, 3.0, 3.0, 2.0, -1.0, 3.0, 0.5, -1.0, 2.0])  # ties for max and min
    for f in (reduce(sg.fmax, x), reduce(sg.fmin, x), reduce(sg.fmax, sg.sin(x) * x),
              reduce(sg.fmin, x * x) + reduce(sg.fmax, x) ** 2):
        got = sg.Function("g", [x], [sg.grad(f, x)])(v)
        np.testing.assert_allclose(got, complex_step_gradient(sg.Function("f", [x], [f]), v), rtol=1e-13, atol=0)
    g = sg.Function("g", [x], [sg.grad(reduce(sg.fmax, x), x)])(v)
    assert g.tolist() == [0, 1, 0, 0, 0, 0, 0, 0, 0]  # the first of the tied maxima wins
    g = sg.Function("g", [x], [sg.grad(reduce(sg.fmin, x), x)])(v)
    assert g.tolist() == [0, 0, 0, 0, 1, 0, 0, 0, 0]


def test_logsumexp_gradient_is_softmax_and_hessian_closed_form():
    n = 2000
    x = sg.symbols("x", n)
    f = _logsumexp(x)
    g = sg.grad(f, x)
    v = np.random.default_rng(0).normal(size=n) * 3
    s = np.exp(v - v.max())
    s /= s.sum()
    np.testing.assert_allclose(sg.Function("g", [x], [g])(v), s, rtol=1e-12, atol=1e-300)
    m = 12
    y = sg.symbols("y", m)
    H = sg.hessian(_logsumexp(y), y)
    w = v[:m]
    s = np.exp(w - w.max())
    s /= s.sum()
    np.testing.assert_allclose(sg.Function("H", [y], [H])(w).toarray(), np.diag(s) - np.outer(s, s),
                               rtol=1e-12, atol=1e-15)


def test_jacobian_jvp_vjp_of_running_maxima_match_complex_step(nest):
    n = 12
    x = sg.symbols("x", n)
    terms = sg.sin(x) + 0.1 * x * x
    running = [terms[0]]
    for k in range(1, n):
        op = sg.fmax if k % 3 else sg.fmin
        running.append(op(running[-1], terms[k]))
    out = np.array(running, dtype=object) * sg.exp(x[0])
    v = np.linspace(-2.0, 3.0, n)
    v[5] = v[2]  # a tie
    want = complex_step_jacobian(sg.Function("f", [x], [out]), v)
    for mode in ("forward", "reverse"):
        J = sg.jacobian(out, x, mode=mode)
        np.testing.assert_allclose(sg.Function("J", [x], [J])(v).toarray(), want, rtol=1e-13, atol=1e-15)
    T = np.arange(2.0 * n).reshape(2, n) - n
    jv = sg.Function("jv", [x], [sg.jvp(out, x, T)])(v)
    np.testing.assert_allclose(jv, T @ want.T, rtol=1e-12, atol=1e-12)
    C = np.cos(np.arange(2.0 * n)).reshape(2, n)
    vj = sg.Function("vj", [x], [sg.vjp(out, x, C)])(v)
    np.testing.assert_allclose(vj, C @ want, rtol=1e-12, atol=1e-12)


def test_hessian_through_long_chain_matches_complex_step_of_gradient(nest):
    n = 40
    x = sg.symbols("x", n)
    f = reduce(sg.fmax, sg.sin(x) * x) * sg.cos(x[0]) + _logsumexp(x[:10])
    G = sg.Function("g", [x], [sg.grad(f, x)])
    v = np.linspace(-3.0, 3.0, n)
    H = sg.Function("H", [x], [sg.hessian(f, x)])(v).toarray()
    np.testing.assert_allclose(H, complex_step_jacobian(G, v), rtol=1e-12, atol=1e-14)


def test_derivative_not_taken_stays_masked_through_deep_chains(nest):
    # sqrt'(0) = inf on the terms the maximum does not select: the product
    # sits under the chain's masks, so it gives 0, never 0 * inf = nan
    x = sg.symbols("x", 8)
    v = np.array([4.0, 0.0, 1.0, 0.0, 9.0, 0.0, 2.0, 0.0])
    for f, scale in ((reduce(sg.fmax, sg.sqrt(x)), 1.0), (reduce(sg.fmax, sg.sqrt(x)) * sg.exp(x[0]), np.exp(4.0))):
        got = sg.Function("g", [x], [sg.grad(f, x)])(v)
        want = np.zeros(8)
        want[4] = scale / 6.0
        want[0] += 3.0 * np.exp(4.0) if scale != 1.0 else 0.0
        np.testing.assert_allclose(got, want, rtol=1e-14)


def test_folds_of_hand_written_selections_match_complex_step(nest):
    # acc = if_else(t > acc, t, acc): the running value sits in the else
    # branch, so the adjoint carries a chain of else-masks if_else(c, 0, .)
    n = 30
    x = sg.symbols("x", n)
    terms = sg.sin(3.0 * x) * x
    for then_first in (True, False):
        acc = terms[0]
        for t in terms[1:]:
            acc = sg.if_else(t > acc, t, acc) if then_first else sg.if_else(acc >= t, acc, t)
        f = acc * sg.exp(x[0]) + acc
        g = sg.grad(f, x)
        assert sg.count_ops(list(g)) <= 16 * n  # linear (nested masks: 1,260 ops at n = 30, 15,840 at 120)
        v = np.round(np.linspace(-2.0, 2.0, n), 1)
        v[7] = v[3]  # a tie
        got = sg.Function("g", [x], [g])(v)
        np.testing.assert_allclose(got, complex_step_gradient(sg.Function("f", [x], [f]), v), rtol=1e-13, atol=1e-15)


@settings(max_examples=60)
@given(data=st.data())
def test_random_min_max_folds_match_complex_step(data):
    n = data.draw(st.integers(2, 10))
    x = sg.symbols("x", n)
    unary = [lambda e: e, sg.sin, lambda e: e * e, sg.exp, lambda e: 2.0 * e + 1.0]
    terms = [data.draw(st.sampled_from(unary))(xi) for xi in x]
    ops = data.draw(st.lists(st.sampled_from([sg.fmax, sg.fmin]), min_size=n - 1, max_size=n - 1))
    acc = terms[0]
    for op, t in zip(ops, terms[1:]):
        acc = op(acc, t)
    f = acc * data.draw(st.sampled_from([1.0, x[0], sg.sin(x[-1])]))
    v = np.array(data.draw(st.lists(st.integers(-2, 2), min_size=n, max_size=n)), dtype=float) * 0.5  # many ties
    got = sg.Function("g", [x], [sg.grad(f, x)])(v)
    np.testing.assert_allclose(got, complex_step_gradient(sg.Function("f", [x], [f]), v), rtol=1e-12, atol=1e-14)
