"""jvp / vjp / grad / jacobian / hessian: values, shapes, conventions, errors, op counts."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import symgraph as sg
from strategies import complex_step_jacobian

H = 1e-30


# ------------------------------------------------------------------ basics
def test_grad_shape_and_values_match_closed_form():
    x = sg.symbols("x", (2, 2))
    f = sg.sin(x[0, 0]) * x[1, 1] ** 3 + sg.exp(x[0, 1] * x[1, 0])
    g = sg.grad(f, x)
    assert g.shape == (2, 2)
    v = np.array([[0.3, -1.2], [0.7, 2.0]])
    got = sg.Function("g", [x], [g])(v)
    a, b, c, d = v.ravel()
    want = [[np.cos(a) * d**3, c * np.exp(b * c)], [b * np.exp(b * c), 3 * np.sin(a) * d**2]]
    np.testing.assert_allclose(got, want, rtol=1e-14)


def test_grad_of_scalar_symbol_returns_expr():
    y = sg.symbols("y")
    assert str(sg.grad(y * y, y)) == "y + y"
    assert sg.grad(3.0, y).value == 0.0


def test_jvp_vjp_several_directions_match_dense_jacobian():
    x = sg.symbols("x", 3)
    out = np.array([[x[0] * x[1], sg.sin(x[2])], [x[2] / x[0], sg.hypot(x[0], x[1])]])
    x0 = np.array([0.7, -1.3, 2.1])
    J = complex_step_jacobian(sg.Function("f", [x], [out.reshape(-1)]), x0)
    T = np.array([[1.0, 0, 0], [0, 2.0, 0], [0.5, 0.5, -1]])
    jv = sg.jvp(out, x, T)  # 3 directions in one pass
    assert jv.shape == (3, 2, 2)
    got = sg.Function("jv", [x], [jv])(x0).reshape(3, 4)
    np.testing.assert_allclose(got, T @ J.T, rtol=1e-13)
    C = np.arange(8.0).reshape(2, 2, 2) - 3
    vj = sg.vjp(out, x, C)
    assert vj.shape == (2, 3)
    got = sg.Function("vj", [x], [vj])(x0)
    np.testing.assert_allclose(got, C.reshape(2, 4) @ J, rtol=1e-13)


def test_symbolic_tangents_give_directional_derivative_graph():
    x, v = sg.symbols("x", 2), sg.symbols("v", 2)
    f = x[0] ** 2 * x[1]
    d = sg.jvp(f, x, v)
    F = sg.Function("d", [x, v], [d])
    assert float(F([2.0, 3.0], [1.0, 10.0])) == pytest.approx(2 * 2 * 3 * 1 + 4 * 10)


def test_symbols_not_in_expression_give_zero():
    x, z = sg.symbols("x", 2), sg.symbols("z")
    f = sg.sin(x[0])
    assert sg.grad(f, z).value == 0.0
    J = sg.jacobian([f, x[1]], [z])
    assert J.nnz == 0 and J.shape == (2, 1)
    assert sg.hessian(f, [z]).nnz == 0
    assert sg.jvp(f, z, 1.0).value == 0.0
    assert sg.vjp(f, z, 1.0).value == 0.0


# -------------------------------------------------------------- jacobian
def test_jacobian_luksan_pattern_colors_and_values():
    n = 40
    x, f, g = sg.models.luksan(n)
    J = sg.jacobian(g, x)
    assert J.shape == (n - 2, n) and J.nnz == 3 * (n - 2)
    assert J.n_colors == 3 and J.mode in ("forward", "reverse")
    i = np.arange(n - 2)
    assert set(zip(J.rows.tolist(), J.cols.tolist())) == set(zip(np.repeat(i, 3).tolist(),
                                                                 (i[:, None] + np.arange(3)).ravel().tolist()))
    F = sg.Function("J", [x], [J])
    x0 = np.linspace(-1, 1.5, n)
    Jv = F(x0)
    assert sp.issparse(Jv)
    np.testing.assert_allclose(Jv.toarray(), complex_step_jacobian(sg.Function("g", [x], [g]), x0), rtol=1e-12)
    # same pattern and nonzero order every call
    Jw = F(x0 * 0)
    assert (Jw.indices == Jv.indices).all() and (Jw.indptr == Jv.indptr).all()


def test_jacobian_modes_agree_and_choose_fewer_colors():
    x = sg.symbols("x", 6)
    # one dense row and a diagonal: columns all conflict (6 colors), rows only 2
    outs = [x.sum() ** 2] + [sg.sin(x[i]) for i in range(6)]
    J = sg.jacobian(outs, x)
    assert J.mode == "reverse" and J.n_colors == 2
    Jf = sg.jacobian(outs, x, mode="forward")
    assert Jf.mode == "forward" and Jf.n_colors == 7 - 1
    x0 = np.linspace(0.1, 0.9, 6)
    a = sg.Function("a", [x], [J])(x0).toarray()
    b = sg.Function("b", [x], [Jf])(x0).toarray()
    np.testing.assert_allclose(a, b, rtol=1e-14)
    np.testing.assert_allclose(a, complex_step_jacobian(sg.Function("f", [x], [np.array(outs)]), x0), rtol=1e-13)


def test_jacobian_of_outputs_that_are_inputs_or_constants():
    x = sg.symbols("x", 3)
    J = sg.jacobian([x[2], 5.0, x[0] * 2], x)
    assert J.to_dense().tolist() == [[sg.const(0), sg.const(0), sg.const(1)],
                                     [sg.const(0)] * 3, [sg.const(2), sg.const(0), sg.const(0)]]


def test_sparsity_matches_luksan_structure_and_stops_at_flat_ops():
    x = sg.symbols("x", 4)
    outs = [sg.floor(x[0]) * x[1], sg.if_else(x[2] > 0, x[3], 1.0), sg.sign(x[0]) + x[2] ** 0.5]
    s = sg.jacobian_sparsity(outs, x)
    assert s.matrix.toarray().tolist() == [[0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]]
    assert sp.issparse(s.matrix) and s.nnz == 3


def test_constant_operands_that_kill_a_partial():
    y = sg.symbols("y", 2)
    outs = [sg.pow(1.0, y[0]), sg.atan2(y[1], 0.0) + y[0]]
    s = sg.jacobian_sparsity(outs, y)
    assert s.matrix.toarray().tolist() == [[0, 0], [1, 0]]
    assert sg.jacobian(outs, y).nnz == 1


# ---------------------------------------------------------------- hessian
def test_hessian_full_and_lower_of_lagrangian():
    n = 30
    x, f, g = sg.models.luksan(n)
    lam, sigma = sg.symbols("lam", n - 2), sg.symbols("sigma")
    L = sigma * f + (lam * g).sum()
    Hf = sg.hessian(L, x)
    Hl = sg.hessian(L, x, lower=True)
    assert Hl.nnz == n + (n - 1)  # tridiagonal
    assert Hf.nnz == 2 * Hl.nnz - n
    assert Hf.n_colors == 3 and Hf.mode == "star"
    assert (Hl.rows >= Hl.cols).all()
    rng = np.random.default_rng(0)
    x0, l0, s0 = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n - 2), 0.7
    Hv = sg.Function("H", [x, lam, sigma], [Hf])(x0, l0, s0).toarray()
    Lv = sg.Function("H", [x, lam, sigma], [Hl])(x0, l0, s0).toarray()
    np.testing.assert_array_equal(Hv, Hv.T)
    np.testing.assert_array_equal(np.tril(Hv), Lv)
    G = sg.Function("g", [x, lam, sigma], [sg.grad(L, x)])
    np.testing.assert_allclose(Hv, complex_step_jacobian(lambda v: G(v, l0, s0), x0), rtol=1e-11, atol=1e-12)


def test_hessian_dense_block_uses_symmetry():
    x = sg.symbols("x", 5)
    f = sg.exp(x.sum()) + x[0] * x[4]
    H = sg.hessian(f, x)
    assert H.nnz == 25 and H.n_colors == 5
    x0 = np.linspace(-0.3, 0.2, 5)
    Hv = sg.Function("H", [x], [H])(x0).toarray()
    want = np.full((5, 5), np.exp(x0.sum()))
    want[0, 4] += 1
    want[4, 0] += 1
    np.testing.assert_allclose(Hv, want, rtol=1e-14)


def test_arrowhead_hessian_needs_few_star_colors():
    n = 50
    x = sg.symbols("x", n)
    f = (x[0] * x[1:]).sum() + (x**4).sum()
    H = sg.hessian(f, x)
    assert H.nnz == n + 2 * (n - 1)
    assert H.n_colors == 2  # distance-2 coloring would need n colors
    x0 = np.linspace(0.5, 1.5, n)
    Hv = sg.Function("H", [x], [H])(x0).toarray()
    want = np.diag(12 * x0**2)
    want[0, 1:] += 1
    want[1:, 0] += 1
    np.testing.assert_allclose(Hv, want, rtol=1e-14)


# ------------------------------------------------------------ higher order
def test_third_derivatives_closed_form():
    x = sg.symbols("x", 2)
    f = x[0] ** 5 * x[1] + sg.sin(x[1]) * x[0] ** 2
    H = sg.hessian(f, x)
    T = sg.jacobian(H.values, x)  # d(H_ij)/dx_k for each stored H entry
    F = sg.Function("T", [x], [T])
    a, b = 0.8, -0.6
    got = F(np.array([a, b])).toarray()
    want = {  # third partials by (i, j, k)
        (0, 0, 0): 60 * a**2 * b, (0, 0, 1): 20 * a**3 + 2 * np.cos(b),
        (0, 1, 1): -2 * a * np.sin(b), (1, 1, 1): -a**2 * np.cos(b),
    }

    def third(i, j, k):
        key = tuple(sorted((i, j, k)))
        return want.get(key, 0.0)

    for e, (i, j) in enumerate(zip(H.rows.tolist(), H.cols.tolist())):
        for k in range(2):
            assert got[e, k] == pytest.approx(third(i, j, k), rel=1e-13, abs=1e-14)


def test_jacobian_of_grad_equals_hessian():
    x = sg.symbols("x", 3)
    f = sg.log1p(x[0] ** 2) * sg.atan(x[1] * x[2]) + sg.cbrt(x[2]) * x[0]
    x0 = np.array([0.4, -1.1, 2.3])
    Hv = sg.Function("H", [x], [sg.hessian(f, x)])(x0).toarray()
    Jv = sg.Function("J", [x], [sg.jacobian(sg.grad(f, x), x)])(x0).toarray()
    np.testing.assert_allclose(Hv, Jv, rtol=1e-14)


# -------------------------------------------------------------- conventions
def _d(f, x, at):
    return float(sg.Function("d", [x], [sg.grad(f, x)])(at))


def test_abs_sign_floor_conventions():
    x = sg.symbols("x")
    assert _d(abs(x), x, 0.0) == 0.0
    assert _d(abs(x), x, -2.0) == -1.0
    assert _d(sg.sign(x) * 3, x, 0.5) == 0.0
    assert _d(sg.floor(x) + x, x, 2.0) == 1.0
    assert sg.hessian(abs(x) * 1.0, [x]).nnz == 0  # abs'' = 0 by convention, structurally


def test_fmin_fmax_first_operand_wins_ties():
    x, y = sg.symbols("x"), sg.symbols("y")
    G = sg.Function("g", [[x, y]], [sg.grad(sg.fmin(x, y), [x, y]), sg.grad(sg.fmax(x, y), [x, y])])
    gmin, gmax = G(np.array([1.0, 1.0]))
    assert gmin.tolist() == [1.0, 0.0] and gmax.tolist() == [1.0, 0.0]
    gmin, gmax = G(np.array([2.0, 1.0]))
    assert gmin.tolist() == [0.0, 1.0] and gmax.tolist() == [1.0, 0.0]


def test_if_else_derivative_ignores_branch_not_taken():
    x = sg.symbols("x")
    f = sg.if_else(x > 0, sg.sqrt(x), -x)  # sqrt' = inf at 0 and nan below
    assert _d(f, x, -2.0) == -1.0
    assert _d(f, x, 4.0) == 0.25
    v = sg.vjp(f, x, 1.0)
    assert float(sg.Function("v", [x], [v])(-1.0)) == -1.0
    t = sg.jvp(f, x, 1.0)
    assert float(sg.Function("t", [x], [t])(-1.0)) == -1.0
    H = sg.hessian(f, [x])
    assert sg.Function("h", [x], [H])(-3.0).toarray()[0, 0] == 0.0
    assert sg.Function("h", [x], [H])(4.0).toarray()[0, 0] == pytest.approx(-0.25 / 8)


def test_derivatives_of_derivatives_of_nonsmooth_ops():
    x = sg.symbols("x", 2)
    f = sg.fmax(x[0] * x[1], abs(x[0])) ** 2
    g = sg.grad(f, x)
    J = sg.jacobian(g, x)
    F = sg.Function("J", [x], [J])
    # x0*x1 > |x0|: f = (x0 x1)^2
    a, b = 1.5, 2.0
    np.testing.assert_allclose(F(np.array([a, b])).toarray(), [[2 * b * b, 4 * a * b], [4 * a * b, 2 * a * a]])
    # |x0| wins: f = x0^2
    np.testing.assert_allclose(F(np.array([-1.5, 2.0])).toarray(), [[2.0, 0.0], [0.0, 0.0]])


# -------------------------------------------------------------- op counts
def _gmm(n, k):
    x = sg.symbols("x", n)
    mu = sg.symbols("mu", k)
    s = sg.symbols("s", k)
    total = 0
    for i in range(n):
        z = [-(x[i] - mu[j]) ** 2 * sg.exp(s[j]) + s[j] for j in range(k)]
        m = z[0]
        for zj in z[1:]:
            m = sg.fmax(m, zj)
        total = total + m + sg.log(sum(sg.exp(zj - m) for zj in z))
    return np.concatenate([x, mu, s]), total


def _product_chain(n):
    x = sg.symbols("x", n)
    f = x[0]
    for i in range(1, n):
        f = f * x[i] if i % 2 else f / (1 + x[i] ** 2)
    return x, f


MODELS = {
    "luksan objective": lambda: sg.models.luksan(200)[:2],
    "luksan lagrangian": lambda: _lagrangian(200),
    "gmm log-sum-exp": lambda: _gmm(30, 4),
    "product/quotient chain": lambda: _product_chain(300),
    "trig sum": lambda: (lambda x: (x, (sg.sin(x) * sg.cos(x[::-1]) / (1 + x * x)).sum()))(sg.symbols("x", 100)),
}


def _lagrangian(n):
    x, f, g = sg.models.luksan(n)
    lam = sg.symbols("lam", n - 2)
    return np.concatenate([x, lam]), f + (lam * g).sum()


@pytest.mark.parametrize("name", list(MODELS))
def test_cheap_gradient_principle(name):
    x, f = MODELS[name]()
    g = sg.grad(f, x)
    n_f = sg.Function("f", [x], [f]).n_ops
    n_g = sg.Function("g", [x], [g]).n_ops
    assert n_g <= 4 * n_f, (name, n_f, n_g)
    # and the gradient is right (complex step on a few coordinates)
    F, G = sg.Function("f", [x], [f]), sg.Function("g", [x], [g])
    x0 = np.random.default_rng(1).uniform(0.2, 0.9, x.size)
    gv = G(x0)
    for k in (0, x.size // 2, x.size - 1):
        xc = x0.astype(complex)
        xc[k] += H * 1j
        assert gv[k] == pytest.approx(np.imag(F(xc)) / H, rel=1e-11, abs=1e-13)


# ------------------------------------------------------------------ errors
def test_errors_name_what_was_wrong():
    x = sg.symbols("x", 2)
    f = x[0] * x[1]
    with pytest.raises(sg.DifferentiationError, match="only differentiate with respect to symbols"):
        sg.grad(f, [x[0], x[0] * 2])
    with pytest.raises(sg.DifferentiationError, match="only differentiate with respect to symbols"):
        sg.jacobian([f], [1.0])
    with pytest.raises(sg.DifferentiationError, match="appears twice"):
        sg.jacobian([f], [x[0], x[0]])
    with pytest.raises(sg.ShapeError, match=r"tangents must have the shape of the inputs \(2,\).*got shape \(3,\)"):
        sg.jvp(f, x, [1.0, 2.0, 3.0])
    with pytest.raises(sg.ShapeError, match=r"cotangents must have the shape of the outputs \(2,\)"):
        sg.vjp(x * 2, x, [[1.0, 2.0, 3.0]])
    with pytest.raises(sg.ShapeError, match=r"grad needs a scalar function f, got an array of shape \(2,\)"):
        sg.grad(x * 2, x)
    with pytest.raises(sg.ShapeError, match=r"hessian needs a scalar function"):
        sg.hessian(x, x)
    with pytest.raises(sg.DifferentiationError, match="mode must be"):
        sg.jacobian(x, x, mode="sideways")
    with pytest.raises(sg.DifferentiationError, match="must be Exprs, numbers or arrays"):
        sg.jacobian(["a"], x)
    assert issubclass(sg.DifferentiationError, ValueError) and issubclass(sg.ShapeError, ValueError)


def test_results_are_ordinary_graphs_for_functions():
    x = sg.symbols("x", 3)
    f = (x[:-1] * sg.exp(x[1:])).sum()
    H = sg.hessian(f, x, lower=True)
    F = sg.Function("nlp", [x], [f, sg.grad(f, x), sg.jacobian(sg.grad(f, x), x), H])
    outs = F(np.array([0.1, 0.2, 0.3]))
    assert len(outs) == 4 and sp.issparse(outs[2]) and sp.issparse(outs[3])
    np.testing.assert_allclose(np.tril(outs[2].toarray()), outs[3].toarray(), rtol=1e-15)


def test_empty_cases():
    x = sg.symbols("x", 2)
    J = sg.jacobian([], x)
    assert J.shape == (0, 2) and J.nnz == 0 and J.n_colors == 0
    H = sg.hessian(x[0] + 3 * x[1], x)
    assert H.nnz == 0 and H.n_colors == 0
    assert sg.jvp(x[0] * x[1], x, np.zeros((0, 2))).shape == (0,)
    assert sg.vjp(x * 2, x, np.zeros((0, 2))).shape == (0, 2)
    assert sg.Function("J", [x], [J])(np.ones(2)).shape == (0, 2)


def test_selection_with_both_branches_active_feeds_later_ops():
    x = sg.symbols("x", 2)
    sel = sg.if_else(x[0] > 0, x[0] * x[1], x[1] * x[1])
    f = sg.sin(sel) * sel
    F = sg.Function("f", [x], [f])
    outs = [sg.grad(f, x), sg.jvp(f, x, [1.0, -2.0]), sg.jacobian([f, sel], x), sg.hessian(f, x)]
    G = sg.Function("g", [x], outs)
    for x0 in (np.array([0.7, -1.2]), np.array([-0.4, 0.9])):
        g, jv, J, Hm = G(x0)
        cs = complex_step_jacobian(F, x0)[0]
        np.testing.assert_allclose(g, cs, rtol=1e-13)
        assert jv == pytest.approx(cs @ [1.0, -2.0], rel=1e-13)
        np.testing.assert_allclose(J.toarray()[0], cs, rtol=1e-13)
        Gf = sg.Function("gr", [x], [sg.grad(f, x)])
        np.testing.assert_allclose(Hm.toarray(), complex_step_jacobian(Gf, x0), rtol=1e-12)
