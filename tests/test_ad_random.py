"""Property tests on random graphs over the whole op table.

* ``jacobian`` (compressed, either mode) equals the dense Jacobian from
  ``jvp`` with unit seeds and from ``vjp`` with unit cotangents;
* ``jacobian_sparsity`` equals the structural pattern of the dense symbolic
  Jacobian (built with *symbolic* seeds, so no constant folding can hide an
  entry): no missed nonzero, no extra one;
* ``hessian`` is symmetric, equals the Jacobian of the gradient, and its
  pattern covers every structural entry of that Jacobian.
"""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given, settings, strategies as st

import symgraph as sg
from strategies import points, random_graphs

EXAMPLES = 100


def _dense(rows: np.ndarray) -> np.ndarray:
    """Object array (k, m) from k direction results of shape (m,)."""
    return np.array(rows, dtype=object).reshape(len(rows), -1)


def _structural(arr: np.ndarray) -> np.ndarray:
    return np.vectorize(lambda e: not (e.is_const and e.value == 0.0), otypes=[bool])(arr)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    finite = np.isfinite(a) & np.isfinite(b)
    return bool(np.allclose(a[finite], b[finite], rtol=1e-7, atol=1e-7))


@settings(max_examples=EXAMPLES)
@given(graph=random_graphs(max_inputs=3, max_steps=10), data=st.data())
def test_jacobian_equals_jvp_and_vjp_unit_seeds(graph, data):
    x = np.array(graph.inputs, dtype=object)
    outs = np.array(graph.outputs, dtype=object)
    n, m = len(x), len(outs)
    J_fwd = sg.jacobian(outs, x, mode="forward")
    J_rev = sg.jacobian(outs, x, mode="reverse")
    J_auto = sg.jacobian(outs, x)
    JV = sg.jvp(outs, x, np.eye(n))  # (n, m): column j of J
    VJ = sg.vjp(outs, x, np.eye(m))  # (m, n): row i of J
    F = sg.Function("f", [x], [J_fwd, J_rev, J_auto, JV, VJ])
    x0 = data.draw(points(n, wide=False))
    jf, jr, ja, jv, vj = F(x0)
    jf, jr, ja = jf.toarray(), jr.toarray(), ja.toarray()
    # compression is exact: the very same expressions as unit seeds (bitwise equal)
    assert _same(jf, jv.T)
    assert _same(jr, vj)
    assert _same(ja, jf if J_auto.mode == "forward" else jr)
    assert _close(jv.T, vj)
    assert J_auto.n_colors == min(J_fwd.n_colors, J_rev.n_colors)


@settings(max_examples=EXAMPLES)
@given(graph=random_graphs(max_inputs=4, max_steps=14))
def test_sparsity_is_the_structural_pattern(graph):
    x = np.array(graph.inputs, dtype=object)
    outs = np.array(graph.outputs, dtype=object)
    n, m = len(x), len(outs)
    s = sg.symbols("s", n)
    dense_fwd = _dense(sg.jvp(outs, x, np.diag(s))).T  # symbolic seeds: no folding
    t = sg.symbols("t", m)
    dense_rev = _dense(sg.vjp(outs, x, np.diag(t)))
    pattern = sg.jacobian_sparsity(outs, x).matrix.toarray().astype(bool)
    assert (pattern == _structural(dense_fwd)).all()
    assert (pattern == _structural(dense_rev)).all()
    J = sg.jacobian(outs, x)
    assert J.nnz == pattern.sum()


@settings(max_examples=EXAMPLES)
@given(graph=random_graphs(max_inputs=4, max_steps=12), data=st.data())
def test_hessian_is_symmetric_jacobian_of_gradient(graph, data):
    x = np.array(graph.inputs, dtype=object)
    f = graph.outputs[-1]
    for o in graph.outputs[:-1]:
        f = f * 0.5 + o
    n = len(x)
    H = sg.hessian(f, x)
    Hl = sg.hessian(f, x, lower=True)
    g = sg.grad(f, x)
    JG = sg.jacobian(g, x)
    pattern = H.pattern().toarray().astype(bool)
    assert (pattern == pattern.T).all()
    assert (pattern | ~JG.pattern().toarray().astype(bool)).all()  # covers the Jacobian of the gradient
    s = sg.symbols("s", n)
    structural = _structural(_dense(sg.jvp(g, x, np.diag(s))))
    assert (pattern == (structural | structural.T)).all()
    F = sg.Function("h", [x], [H, Hl, JG])
    x0 = data.draw(points(n, wide=False))
    h, hl, jg = (a.toarray() for a in F(x0))
    assert _same(h, h.T)
    assert _same(np.tril(h), hl)
    assert _close(h, jg)
    assert _close(h, jg.T)


@settings(max_examples=30)
@given(graph=random_graphs(max_inputs=2, max_steps=6), data=st.data())
def test_third_derivatives_are_symmetric(graph, data):
    x = np.array(graph.inputs, dtype=object)
    f = graph.outputs[-1]
    n = len(x)
    H = sg.hessian(f, x)
    T = sg.jacobian(H.to_dense().reshape(-1), x)  # (n*n, n)
    x0 = data.draw(points(n, wide=False))
    t = sg.Function("t", [x], [T])(x0).toarray().reshape(n, n, n)
    for perm in [(1, 0, 2), (0, 2, 1), (2, 1, 0)]:
        assert _close(t, t.transpose(perm))


SELECTION_OPS = [sg.OPS[name] for name in ("if_else", "fmin", "fmax", "abs", "lt", "mul", "add", "sub", "div",
                                           "sin", "exp", "sqrt", "square")]


@settings(max_examples=EXAMPLES)
@given(graph=random_graphs(max_inputs=3, max_steps=12, ops=SELECTION_OPS), data=st.data())
def test_selections_and_kinks_forward_reverse_hessian_agree(graph, data):
    x = np.array(graph.inputs, dtype=object)
    outs = np.array(graph.outputs, dtype=object)
    n, m = len(x), len(outs)
    f = outs.sum()
    F = sg.Function("f", [x], [sg.jacobian(outs, x, mode="forward"), sg.jacobian(outs, x, mode="reverse"),
                               sg.jvp(outs, x, np.eye(n)), sg.vjp(outs, x, np.eye(m)), sg.hessian(f, x),
                               sg.jacobian(sg.grad(f, x), x)])
    x0 = data.draw(points(n, wide=False))
    jf, jr, jv, vj, h, jg = F(x0)
    assert _same(jf.toarray(), jv.T) and _same(jr.toarray(), vj)
    assert _close(jv.T, vj)
    assert _close(h.toarray(), jg.toarray())


SMOOTH_UNARY = ["sin", "exp", "tanh", "square", "atan", "neg"]
BINARY = ["mul", "add", "sub", "div", "fmin", "fmax", "hypot"]


@st.composite
def selections(draw):
    """f(x) = u(if_else(cond, left, right) <op> w): both branches depend on the inputs."""
    x = sg.symbols("x", 3)

    def term():
        a, b = draw(st.sampled_from(list(x))), draw(st.sampled_from(list(x)))
        return sg.apply(sg.OPS[draw(st.sampled_from(BINARY))], sg.apply(sg.OPS[draw(st.sampled_from(SMOOTH_UNARY))], a), b)

    cond = sg.apply(sg.OPS[draw(st.sampled_from(["lt", "le", "gt"]))], draw(st.sampled_from(list(x))), term())
    sel = sg.if_else(cond, term(), term())
    inner = sg.apply(sg.OPS[draw(st.sampled_from(BINARY))], sel, term())
    return x, sg.apply(sg.OPS[draw(st.sampled_from(SMOOTH_UNARY))], inner)


KINKS = ("fmin", "fmax", "lt", "le", "gt")


def _at_a_tie(x, f, x0) -> bool:
    """Whether some kink of ``f`` (fmin, fmax, comparison) has equal operands at ``x0``.

    There the derivative is one-sided and complex step is no oracle: it breaks
    the tie by the second-order real part (sin(ih) * ih = -h**2 < 0).
    """
    gaps = [a - b if e.op.name in KINKS else sg.abs(a) + sg.abs(b)  # hypot's kink is the origin
            for e in sg.walk(f) if e.op.name in KINKS + ("hypot",) for a, b in [e.args]]
    if not gaps:
        return False
    values = sg.Function("kinks", [x], [np.array(gaps, dtype=object)])(x0)
    return bool(np.any(np.abs(values) <= 1e-12))


def _moderate_points(n: int):
    """Points whose nonzero coordinates are far above the complex step h = 1e-30 (h**2 must not matter)."""
    value = st.one_of(st.just(0.0), st.floats(1e-6, 3.0), st.floats(-3.0, -1e-6))
    return st.lists(value, min_size=n, max_size=n).map(lambda v: np.array(v, dtype=np.float64))


@settings(max_examples=EXAMPLES)
@given(case=selections(), data=st.data())
def test_selection_graphs_against_complex_step(case, data):
    x, f = case
    F = sg.Function("f", [x], [f])
    G = sg.Function("g", [x], [sg.grad(f, x), sg.jvp(f, x, np.eye(3)), sg.hessian(f, x),
                               sg.jacobian(sg.grad(f, x), x)])
    x0 = data.draw(_moderate_points(3))
    assume(not _at_a_tie(x, f, x0))
    g, jv, h, jg = G(x0)
    cs = np.array([np.imag(F(x0 + 1e-30j * e)) / 1e-30 for e in np.eye(3)])
    assert _close(g, cs) and _close(jv, cs)
    assert _close(h.toarray(), jg.toarray())
