"""Sparsity patterns and colorings."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import symgraph as sg
from symgraph.ops import SCALAR_OPS
from symgraph.sparsity import (Sparsity, column_coloring, dependencies, pattern, row_coloring,
                               star_coloring, star_recovery, symmetric)
from strategies import INTERESTING

OPS = list(SCALAR_OPS)


def _structural_jacobian(outs, x):
    s = sg.symbols("s", len(x))
    dense = np.array(sg.jvp(outs, x, np.diag(s)), dtype=object).reshape(len(x), -1).T
    return np.vectorize(lambda e: not (e.is_const and e.value == 0.0), otypes=[bool])(dense)


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_every_op_with_symbols_and_constants(op):
    """Pattern == structural symbolic Jacobian for op(symbols/constants in every position)."""
    x = sg.symbols("x", op.arity)
    choices = [[x[k], *[sg.const(c) for c in INTERESTING]] for k in range(op.arity)]
    if op.name == "powi":
        choices[1] = [sg.const(c) for c in (-3.0, -1.0, 0.0, 1.0, 2.0, 5.0)]
    for operands in itertools.product(*choices):
        node = sg.apply(op, *operands)
        got = sg.jacobian_sparsity([node], x).matrix.toarray().astype(bool)
        assert (got == _structural_jacobian([node], x)).all(), (op.name, str(node))


def test_luksan_patterns():
    n = 50
    x, f, g = sg.models.luksan(n)
    s = sg.jacobian_sparsity(g, x)
    i = np.arange(n - 2)
    assert s.shape == (n - 2, n) and s.nnz == 3 * (n - 2)
    expected = np.zeros((n - 2, n), dtype=np.int8)
    for k in range(3):
        expected[i, i + k] = 1
    assert (s.matrix.toarray() == expected).all()
    assert sg.jacobian_sparsity(f, x).nnz == n
    h = sg.hessian_sparsity(f, x).matrix.toarray()
    assert (h == (np.abs(np.subtract.outer(np.arange(n), np.arange(n))) <= 1)).all()


def test_csc_order_and_sparsity_api():
    x = sg.symbols("x", 3)
    s = sg.jacobian_sparsity([x[2] * x[0], x[1]], x)
    assert s.cols.tolist() == [0, 1, 2] and s.rows.tolist() == [0, 1, 0]
    rows, cols, shape = s
    assert shape == (2, 3) and isinstance(s, Sparsity)
    assert s.transpose().shape == (3, 2) and s.transpose().nnz == 3
    m = s.matrix
    assert m.format == "csc" and m.toarray().tolist() == [[1, 0, 1], [0, 1, 0]]


def test_long_sum_keeps_memory_bounded(monkeypatch):
    """A chain of sums makes ever wider sets; unused ones are dropped, results unchanged."""
    from symgraph import sparsity

    monkeypatch.setattr(sparsity, "_WIDE", 8)
    monkeypatch.setattr(sparsity, "_WIDE_BUDGET", 64)
    x = sg.symbols("x", 300)
    total = x[0]
    partial = []
    for i in range(1, 300):
        total = total + x[i] * x[i - 1]
        if i % 100 == 0:
            partial.append(total)
    calls = []
    drop = sparsity._drop_unused
    monkeypatch.setattr(sparsity, "_drop_unused", lambda *a: calls.append(1) or drop(*a))
    deps = dependencies(partial + [total], {s: j for j, s in enumerate(x)})
    assert [d[0] for d in deps] == [0, 0, 0]
    assert [d[1] for d in deps] == [(1 << 101) - 1, (1 << 201) - 1, (1 << 300) - 1]
    assert len(calls) > 10


def test_errors():
    x = sg.symbols("x", 2)
    with pytest.raises(sg.DifferentiationError, match="only differentiate with respect to symbols"):
        sg.jacobian_sparsity([x[0]], [x[0] + 1])
    with pytest.raises(sg.DifferentiationError, match="appears twice"):
        sg.jacobian_sparsity([x[0]], [x[1], x[1]])


# -------------------------------------------------------------- colorings
random_patterns = st.integers(1, 12).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(1, 12),
                        st.lists(st.tuples(st.integers(0, 11), st.integers(0, n - 1)), max_size=40)))


@settings(max_examples=100)
@given(random_patterns)
def test_column_and_row_colorings_are_structurally_orthogonal(case):
    n, m, entries = case
    entries = [(r % m, c) for r, c in entries]
    s = pattern([r for r, _ in entries], [c for _, c in entries], (m, n))
    cc = column_coloring(s)
    for r in range(m):
        colors = cc[s.cols[s.rows == r]]
        assert len(set(colors.tolist())) == len(colors)
    rc = row_coloring(s)
    for c in range(n):
        colors = rc[s.rows[s.cols == c]]
        assert len(set(colors.tolist())) == len(colors)


@settings(max_examples=100)
@given(random_patterns)
def test_star_coloring_recovers_every_symmetric_entry(case):
    n, _, entries = case
    entries = [(r % n, c) for r, c in entries]
    s = symmetric(pattern([r for r, _ in entries] + list(range(n)), [c for _, c in entries] + list(range(n)),
                          (n, n)))
    color = star_coloring(s)
    # a random symmetric matrix with this pattern, compressed by the coloring
    rng = np.random.default_rng(len(entries))
    values = rng.uniform(1, 2, s.nnz)
    Hm = np.zeros((n, n))
    Hm[s.rows, s.cols] = values
    Hm = Hm + Hm.T
    S = np.zeros((n, color.max() + 1))
    S[np.arange(n), color] = 1
    B = Hm @ S
    r, c = star_recovery(s, color)
    np.testing.assert_allclose(B[r, c], Hm[s.rows, s.cols], rtol=1e-15)
    # distance-1 coloring
    off = s.rows != s.cols
    assert (color[s.rows[off]] != color[s.cols[off]]).all()


def test_star_coloring_uses_few_colors_on_bands_and_arrows():
    n = 200
    i = np.arange(n - 1)
    tri = symmetric(pattern(np.r_[i + 1, np.arange(n)], np.r_[i, np.arange(n)], (n, n)))
    assert star_coloring(tri).max() + 1 == 3
    arrow = symmetric(pattern(np.arange(1, n), np.zeros(n - 1, int), (n, n)))
    assert star_coloring(arrow).max() + 1 == 2
