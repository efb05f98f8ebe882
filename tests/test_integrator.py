"""sg.integrator: orders of convergence against the matrix exponential, exact discrete sensitivities
(finite differences, complex step, closed forms), VM against C, C size independent of the step count,
stiff problems against scipy's Radau, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.linalg import expm
from strategies import module_cache  # noqa: F401  (each module compiles into a cache of its own)

import symgraph as sg
from symgraph.errors import DTypeError, InvalidInputError, OptionError, ShapeError
from symgraph.integrator import integrator, tableau

RNG = np.random.default_rng(7)
A3 = RNG.normal(size=(3, 3)) * 0.7 - np.eye(3)
X0 = np.array([1.0, -0.5, 0.3])
ORDERS = [("rk4", 4, 4), ("dopri5", 4, 5), ("radau", 1, 1), ("radau", 2, 3), ("radau", 3, 5),
          ("legendre", 1, 2), ("legendre", 2, 4), ("legendre", 3, 6)]


def linear_rhs():
    x = sg.symbols("x", 3)
    return sg.Function("lin", [x], [A3 @ x])


def forced_rhs():
    """x' = A x + B u + p: one control, one constant."""
    x, u, p = sg.symbols("x", 3), sg.symbols("u"), sg.symbols("p", 3)
    B = np.array([1.0, 0.0, -1.0])
    return sg.Function("forced", [x, u, p], [A3 @ x + B * u + p]), B


def vdp_rhs(mu):
    x = sg.symbols("x", 2)
    return sg.Function("vdp", [x], [np.array([x[1], mu * (1 - x[0] ** 2) * x[1] - x[0]], dtype=object)])


def jac_function(I, args, wrt):
    """A Function (args...) -> d xs / d args[wrt] (dense, rows: flat xs)."""
    syms = [sg.symbols(f"a{k}", np.shape(a)) for k, a in enumerate(args)]
    xs = np.asarray(I(*syms), dtype=object).reshape(-1)
    return sg.Function("J", syms, [sg.jacobian(xs, syms[wrt]).to_dense()])


# ---------------------------------------------------------------- tableaus, orders

@pytest.mark.parametrize("method,stages", [(m, s) for m, s, _ in ORDERS])
def test_tableau_consistent(method, stages):
    A, b, c = tableau(method, stages)
    np.testing.assert_allclose(A.sum(axis=1), c, atol=1e-14)
    assert abs(b.sum() - 1.0) < 1e-14
    if method == "radau":
        assert c[-1] == pytest.approx(1.0) and np.allclose(A[-1], b)  # stiffly accurate
    if method in ("rk4", "dopri5"):
        assert np.all(np.triu(A) == 0.0)  # explicit


@pytest.mark.parametrize("method,stages,order", ORDERS)
def test_linear_ode_order_against_expm(method, stages, order):
    rhs, exact = linear_rhs(), expm(A3) @ X0
    errors = []
    for n in (4, 8, 16):
        xs = integrator("I", rhs, np.linspace(0.0, 1.0, n + 1), method, stages=stages)(X0)
        assert xs.shape == (n + 1, 3)
        np.testing.assert_array_equal(xs[0], X0)
        errors.append(np.abs(xs[-1] - exact).max())
    rates = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(rates > order - 0.3) and np.all(rates < order + 0.6), (errors, rates)


@pytest.mark.parametrize("method", ["rk4", "dopri5", "radau", "legendre"])
def test_controls_constants_nonuniform_grid_against_expm(method):
    rhs, B = forced_rhs()
    grid = np.array([0.0, 0.1, 0.35, 0.5, 0.9, 1.0])
    u = np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    p = np.array([0.2, -0.1, 0.05])
    # exact: per interval, the augmented system [x; 1]' = [[A, B u + p], [0, 0]] [x; 1]
    x, want = X0, [X0]
    for k in range(5):
        M = np.zeros((4, 4))
        M[:3, :3], M[:3, 3] = A3, B * u[k] + p
        x = (expm(M * (grid[k + 1] - grid[k])) @ np.append(x, 1.0))[:3]
        want.append(x)
    I = integrator("I", rhs, grid, method, steps_per_interval=16)
    assert I.input_names == ("x0", "u", "p") and I.input_shapes == ((3,), (5,), (3,))
    np.testing.assert_allclose(I(X0, u, p), np.array(want), rtol=0, atol=1e-8)


def test_steps_per_interval_is_a_finer_grid():
    rhs, _ = forced_rhs()
    u, p = np.array([1.0, -1.0, 2.0]), np.array([0.1, 0.2, 0.3])
    coarse = integrator("c", rhs, np.linspace(0, 1.5, 4), "rk4", steps_per_interval=3)(X0, u, p)
    fine = integrator("f", rhs, np.linspace(0, 1.5, 10), "rk4")(X0, np.repeat(u, 3), p)
    np.testing.assert_allclose(coarse, fine[::3], rtol=1e-13, atol=1e-14)


def test_rhs_forms_and_controls_option():
    x, k = sg.symbols("x"), sg.symbols("k")
    f = sg.Function("decay", [x, k], [-k * x])
    const = integrator("c", f, np.linspace(0, 1, 5), "rk4", controls=(), steps_per_interval=10)
    assert const.input_shapes == ((), ())
    ctrl = integrator("u", f, np.linspace(0, 1, 5), "rk4", steps_per_interval=10)  # input 1 is a control by default
    assert ctrl.input_shapes == ((), (4,))
    np.testing.assert_allclose(const(1.0, 2.0), ctrl(1.0, np.full(4, 2.0)), rtol=1e-15)
    named = integrator("n", f, np.linspace(0, 1, 5), "rk4", controls=["k"])
    assert named.input_shapes == ((), (4,))
    np.testing.assert_allclose(const(1.0, 2.0), np.exp(-2.0 * np.linspace(0, 1, 5)), rtol=1e-6)


def test_dopri5_error_estimate():
    x = sg.symbols("x")
    f = sg.Function("decay", [x], [-x])
    A, _, _ = tableau("dopri5")
    b4 = np.array([5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40])
    for h in (0.2, 0.1):
        xs, err = integrator("I", f, [0.0, h], "dopri5", error=True)(1.0)
        assert err.shape == (1,)
        # the embedded 4th-order solution of x' = -x: the stability polynomial with weights b4
        K = []
        for i in range(7):
            K.append(-(1.0 + h * sum(A[i, j] * K[j] for j in range(i))))
        x4 = 1.0 + h * float(np.dot(b4, K))
        assert err[0] == pytest.approx(abs(xs[-1] - x4), rel=1e-9)
        assert err[0] == pytest.approx(abs(np.exp(-h) - x4), rel=0.15)  # x5 is far more accurate


# ---------------------------------------------------------------- sensitivities

def test_rk4_sensitivity_is_the_discrete_propagator():
    n, T = 6, 0.9
    h = T / n
    I = integrator("I", linear_rhs(), np.linspace(0, T, n + 1), "rk4")
    J = jac_function(I, [X0], 0)(X0).reshape(n + 1, 3, 3)
    hA = h * A3
    step = np.eye(3) + hA + hA @ hA / 2 + hA @ hA @ hA / 6 + hA @ hA @ hA @ hA / 24
    for k in range(n + 1):
        np.testing.assert_allclose(J[k], np.linalg.matrix_power(step, k), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("method,stages", [("rk4", 4), ("dopri5", 4), ("radau", 3), ("legendre", 2)])
def test_sensitivities_against_complex_step_and_fd(method, stages):
    mu = 2.0
    x, p = sg.symbols("x", 2), sg.symbols("p", 2)
    f = sg.Function("vdpp", [x, p], [np.array([x[1], p[0] * (1 - x[0] ** 2) * x[1] - p[1] * x[0]], dtype=object)])
    grid = np.linspace(0, 1.2, 7)
    I = integrator("I", f, grid, method, stages=stages, controls=(), steps_per_interval=2)
    x0, pv = np.array([1.5, -0.3]), np.array([mu, 1.3])
    for wrt in (0, 1):
        J = jac_function(I, [x0, pv], wrt)(x0, pv)
        cs, fd = np.zeros_like(J), np.zeros_like(J)
        for k in range(2):
            args = [x0.astype(complex), pv.astype(complex)]
            args[wrt][k] += 1e-30j
            cs[:, k] = np.imag(I(*args).reshape(-1)) / 1e-30
            hi, lo = [x0.copy(), pv.copy()], [x0.copy(), pv.copy()]
            hi[wrt][k] += 1e-6
            lo[wrt][k] -= 1e-6
            fd[:, k] = (I(*hi) - I(*lo)).reshape(-1) / 2e-6
        np.testing.assert_allclose(J, cs, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(J, fd, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("method", ["rk4", "radau"])
def test_adjoint_gradient_and_hessian(method):
    x, p = sg.symbols("x", 2), sg.symbols("p", 2)
    f = sg.Function("f", [x, p], [np.array([-p[0] * x[0] + x[1] ** 2, -p[1] * x[1] * x[0]], dtype=object)])
    I = integrator("I", f, np.linspace(0, 1, 5), method, controls=(), stages=2)
    X, P = sg.symbols("X", 2), sg.symbols("P", 2)
    xs = I(X, P)
    loss = (xs[-1] ** 2).sum() + xs[2, 0]
    z = np.concatenate([X, P])
    G = sg.Function("g", [X, P], [loss, sg.grad(loss, z), sg.hessian(loss, z).to_dense()])
    x0, pv = np.array([1.0, 0.5]), np.array([0.7, 1.1])
    value, g, H = G(x0, pv)

    def parts(v):
        return G(v[:2], v[2:])

    v0 = np.concatenate([x0, pv])
    for k in range(4):
        e = np.zeros(4)
        e[k] = 1e-6
        fd_g = (parts(v0 + e)[0] - parts(v0 - e)[0]) / 2e-6
        fd_h = (parts(v0 + e)[1] - parts(v0 - e)[1]) / 2e-6
        assert g[k] == pytest.approx(fd_g, rel=1e-6, abs=1e-8)
        np.testing.assert_allclose(H[:, k], fd_h, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(H, H.T, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- compiled code

@pytest.mark.parametrize("method", ["rk4", "dopri5", "radau", "legendre"])
def test_vm_against_c(method):
    rhs, _ = forced_rhs()
    grid = np.linspace(0, 1, 6) if method != "dopri5" else np.array([0, 0.1, 0.3, 0.35, 0.8, 1.0])
    I = integrator("I", rhs, grid, method, steps_per_interval=2, stages=2)
    u, p = np.linspace(-1, 1, 5), np.array([0.1, 0.0, -0.2])
    np.testing.assert_allclose(I.compile()(X0, u, p), I(X0, u, p), rtol=1e-12, atol=1e-13)
    J = jac_function(I, [X0, u, p], 2)
    np.testing.assert_allclose(J.compile()(X0, u, p), J(X0, u, p), rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("method", ["rk4", "radau"])
def test_c_size_independent_of_steps(method):
    rhs = vdp_rhs(5.0)
    lines = []
    for n in (10, 1000):
        I = integrator("I", rhs, np.linspace(0, 1, n + 1), method, steps_per_interval=3)
        assert I.n_ops == 1 + 2 * n  # one fold call and its results
        lines.append(len(I.c_code().splitlines()))
    assert lines[0] == lines[1]


# ---------------------------------------------------------------- stiff problems

def test_stiff_van_der_pol_mu_1000():
    mu, T = 1000.0, 500.0
    ref = solve_ivp(lambda t, y: [y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]], (0, T), [2.0, 0.0],
                    method="Radau", rtol=1e-10, atol=1e-12, t_eval=np.linspace(0, T, 101))
    I = integrator("vdp", vdp_rhs(mu), np.linspace(0, T, 101), "radau", stages=3)
    xs = I(np.array([2.0, 0.0]))
    # 1e-7 absolute: the first step (h = 5) crosses the initial layer of width 1 / mu
    np.testing.assert_allclose(xs, ref.y.T, rtol=1e-7, atol=2e-7)
    np.testing.assert_allclose(xs[2:], ref.y.T[2:], rtol=1e-7, atol=1e-9)
    # the explicit method blows up at this step size (h |lambda| ~ 1e4)
    with np.errstate(all="ignore"):
        bad = integrator("vdp_rk4", vdp_rhs(mu), np.linspace(0, T, 101), "rk4")(np.array([2.0, 0.0]))
    assert not np.all(np.abs(bad[-1]) < 10)


def test_stiff_robertson():
    y, k = sg.symbols("y", 3), sg.symbols("k", 3)
    f = sg.Function("rober", [y, k], [np.array([-k[0] * y[0] + k[1] * y[1] * y[2],
                                                k[0] * y[0] - k[1] * y[1] * y[2] - k[2] * y[1] ** 2,
                                                k[2] * y[1] ** 2], dtype=object)])
    kv = np.array([0.04, 1e4, 3e7])
    grid = np.concatenate([[0.0], np.geomspace(1e-5, 1e5, 120)])
    ref = solve_ivp(lambda t, y: [-kv[0] * y[0] + kv[1] * y[1] * y[2],
                                  kv[0] * y[0] - kv[1] * y[1] * y[2] - kv[2] * y[1] ** 2, kv[2] * y[1] ** 2],
                    (0, grid[-1]), [1.0, 0.0, 0.0], method="Radau", rtol=1e-10, atol=1e-14, t_eval=grid)
    xs = integrator("rober", f, grid, "radau", stages=3, controls=())(np.array([1.0, 0.0, 0.0]), kv)
    scale = np.abs(ref.y.T).max(axis=0)
    assert np.all(np.abs(xs - ref.y.T) <= 1e-5 * scale)
    np.testing.assert_allclose(xs.sum(axis=1), 1.0, rtol=1e-12)  # the linear invariant is kept exactly
    np.testing.assert_allclose(xs[-1], ref.y[:, -1], rtol=1e-6)


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("grid,cls,words", [
    ([0.0, 1.0, 0.5], InvalidInputError, "strictly increasing"),
    ([0.0, 1.0, 1.0], InvalidInputError, "grid[1] = 1.0 >= grid[2] = 1.0"),
    ([0.0, np.nan, 1.0], InvalidInputError, "grid[1] is nan"),
    ([0.0, np.inf], InvalidInputError, "finite"),
    ([0.0], ShapeError, "at least 2"),
    ([[0.0, 1.0]], ShapeError, "1-D"),
    (["a", "b"], DTypeError, "real numbers"),
])
def test_bad_grid(grid, cls, words):
    with pytest.raises(cls, match=None) as info:
        integrator("I", linear_rhs(), grid)
    assert words in str(info.value)


def test_bad_rhs_and_options():
    x, u = sg.symbols("x", 2), sg.symbols("u")
    grid = np.linspace(0, 1, 3)
    with pytest.raises(ShapeError, match=r"output 0 .* shape \(\).* input 0 .* shape \(2,\)"):
        integrator("I", sg.Function("f", [x], [x[0]]), grid)
    with pytest.raises(InvalidInputError, match="rhs must be a symgraph Function"):
        integrator("I", lambda x: -x, grid)
    f = sg.Function("f", [x, u], [x * u])
    with pytest.raises(InvalidInputError, match="unknown method 'euler'"):
        integrator("I", f, grid, "euler")
    with pytest.raises(OptionError, match="steps_per_interval must be a positive int, got 0"):
        integrator("I", f, grid, steps_per_interval=0)
    with pytest.raises(OptionError, match="stages must be an int from 1 to 9, got 0"):
        integrator("I", f, grid, "radau", stages=0)
    with pytest.raises(OptionError, match="error=True needs the embedded pair"):
        integrator("I", f, grid, "rk4", error=True)
    with pytest.raises(OptionError, match="newton options are for the collocation methods"):
        integrator("I", f, grid, "rk4", newton={"tol": 1e-9})
    with pytest.raises(OptionError, match=r"unknown newton option\(s\) \['on_failure'\]"):
        integrator("I", f, grid, "radau", newton={"on_failure": "last"})
    with pytest.raises(OptionError, match="tol"):  # the rootfinder checks the values
        integrator("I", f, grid, "radau", newton={"tol": -1.0})
    with pytest.raises(OptionError, match="newton must be a dict"):
        integrator("I", f, grid, "radau", newton=3)
    with pytest.raises(InvalidInputError, match="controls names 'v'"):
        integrator("I", f, grid, controls=["v"])
    with pytest.raises(InvalidInputError, match="input 0 is the state"):
        integrator("I", f, grid, controls=[0])
    with pytest.raises(InvalidInputError, match="name must be a non-empty str"):
        integrator("", f, grid)
    I = integrator("I", f, grid)
    with pytest.raises(ShapeError):
        I(np.zeros(2), np.zeros(3))  # u needs one row per interval (2)


def test_van_der_pol_jump_on_adaptive_grid_and_failure_is_nan():
    """Across a relaxation jump: fine on the steps scipy's Radau chose; too long a step gives NaN, not garbage."""
    mu, T = 1000.0, 1000.0
    f = lambda t, y: [y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]]  # noqa: E731
    ref = solve_ivp(f, (0, T), [2.0, 0.0], method="Radau", rtol=1e-10, atol=1e-12).y[:, -1]
    grid = solve_ivp(f, (0, T), [2.0, 0.0], method="Radau", rtol=1e-6, atol=1e-9).t
    xs = integrator("vdp", vdp_rhs(mu), grid, "radau").compile()(np.array([2.0, 0.0]))
    assert xs[-1, 0] < -1.5  # past the jump (x goes from about +1 to -2 near t = 807)
    np.testing.assert_allclose(xs[-1], ref, rtol=1e-6, atol=1e-8)
    coarse = integrator("vdp", vdp_rhs(mu), np.linspace(0, T, 1001), "radau").compile()(np.array([2.0, 0.0]))
    bad = np.flatnonzero(np.isnan(coarse).any(axis=1))
    assert bad.size and 780 < bad[0] < 830 and np.isnan(coarse[bad[0]:]).all()
    assert np.all(np.isfinite(coarse[:bad[0]])) and np.all(np.abs(coarse[:bad[0], 0]) < 2.1)


# ---------------------------------------------------------------- adaptive steps

def adaptive_vdp(rtol, max_steps=200, grid=np.linspace(0, 10, 11)):
    x, m = sg.symbols("x", 2), sg.symbols("mu")
    f = sg.Function("vdp", [x, m], [np.array([x[1], m * (1 - x[0] ** 2) * x[1] - x[0]], dtype=object)])
    return integrator("A", f, grid, "dopri5", controls=(), adaptive=True, rtol=rtol, atol=rtol * 1e-2,
                      max_steps=max_steps)


def test_adaptive_accuracy_follows_the_tolerance_vm_and_c():
    grid = np.array([0.0, 0.5, 2.0, 3.0, 6.0, 10.0])
    ref = solve_ivp(lambda t, y: [y[1], 5 * (1 - y[0] ** 2) * y[1] - y[0]], (0, 10), [2.0, 0.0], method="DOP853",
                    rtol=1e-13, atol=1e-13, t_eval=grid).y.T
    errors = []
    for rtol in (1e-4, 1e-6, 1e-8):
        I = adaptive_vdp(rtol, grid=grid)
        xs = I.compile()(np.array([2.0, 0.0]), 5.0)
        np.testing.assert_allclose(I(np.array([2.0, 0.0]), 5.0), xs, rtol=1e-10, atol=1e-12)
        errors.append(np.abs(xs - ref).max())
    assert errors[0] < 1e-2 and errors[1] < 1e-4 and errors[2] < 1e-6
    assert errors[0] > 10 * errors[1] > 100 * errors[2]


def test_adaptive_too_few_attempts_gives_nan_and_c_size_fixed():
    xs = adaptive_vdp(1e-8, max_steps=20)(np.array([2.0, 0.0]), 5.0)
    bad = np.flatnonzero(np.isnan(xs).any(axis=1))
    assert bad.size and np.isnan(xs[bad[0]:]).all() and np.isfinite(xs[:bad[0]]).all()
    sizes = [len(adaptive_vdp(1e-6, 50, np.linspace(0, 1, n + 1)).c_code().splitlines()) for n in (5, 500)]
    assert sizes[0] == sizes[1]


def test_adaptive_derivative_holds_the_steps_fixed():
    I = adaptive_vdp(1e-8)
    X0, P = sg.symbols("X0", 2), sg.symbols("P")
    xT = I(X0, P)[-1]
    v0 = np.array([2.0, 0.0, 5.0])
    J = sg.Function("J", [X0, P], [sg.jacobian(xT, np.append(X0, P)).to_dense()]).compile()(v0[:2], v0[2])
    S = I.compile()
    fd = np.zeros((2, 3))
    for k, h in enumerate((1e-6, 1e-6, 1e-5)):
        e = np.zeros(3)
        e[k] = h
        fd[:, k] = (S((v0 + e)[:2], (v0 + e)[2])[-1] - S((v0 - e)[:2], (v0 - e)[2])[-1]) / (2 * h)
    # the adaptive map's differences include the step choice; the frozen-step derivative differs by ~ the tolerance
    np.testing.assert_allclose(J, fd, rtol=1e-5, atol=1e-7)


def test_adaptive_bad_options():
    x = sg.symbols("x")
    f = sg.Function("f", [x], [-x])
    grid = [0.0, 1.0]
    with pytest.raises(OptionError, match="adaptive=True needs an error estimate: method 'dopri5', 'radau' or"):
        integrator("I", f, grid, "rk4", adaptive=True)
    with pytest.raises(OptionError, match="neither error=True nor steps_per_interval"):
        integrator("I", f, grid, "dopri5", adaptive=True, steps_per_interval=2)
    with pytest.raises(OptionError, match="rtol must be a finite number >= 0, got -1"):
        integrator("I", f, grid, "dopri5", adaptive=True, rtol=-1.0)
    with pytest.raises(OptionError, match="cannot both be 0"):
        integrator("I", f, grid, "dopri5", adaptive=True, rtol=0.0, atol=0.0)
    with pytest.raises(OptionError, match="max_steps must be a positive int, got 0"):
        integrator("I", f, grid, "dopri5", adaptive=True, max_steps=0)
    with pytest.raises(OptionError, match="rtol, max_steps set the adaptive steps; pass adaptive=True"):
        integrator("I", f, grid, "dopri5", rtol=1e-8, max_steps=10)
    with pytest.raises(OptionError, match="adaptive must be True or False"):
        integrator("I", f, grid, "dopri5", adaptive="yes")


@pytest.mark.parametrize("method", ["rk4", "radau"])
def test_batch_and_map_over_initial_states(method):
    x, m = sg.symbols("x", 2), sg.symbols("mu")
    f = sg.Function("vdp", [x, m], [np.array([x[1], m * (1 - x[0] ** 2) * x[1] - x[0]], dtype=object)])
    I = integrator("I", f, np.linspace(0, 2, 9), method, controls=())
    X, mus = np.array([[2.0, 0.0], [1.0, 0.5], [0.1, -1.0]]), np.array([1.0, 2.0, 3.0])
    one = np.array([I(X[k], mus[k]) for k in range(3)])
    np.testing.assert_allclose(I.batch(X, mus), one, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(I.compile().batch(X, mus), one, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(I.map(3)(X, mus), one, rtol=1e-14, atol=1e-15)


def test_adaptive_radau_crosses_van_der_pol_jumps():
    """mu = 1000 over two relaxation jumps with 30 output intervals: step doubling, Newton failures rejected."""
    mu, T = 1000.0, 3000.0
    grid = np.linspace(0, T, 31)
    ref = solve_ivp(lambda t, y: [y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]], (0, T), [2.0, 0.0], method="Radau",
                    rtol=1e-10, atol=1e-12, t_eval=grid).y.T
    for rtol, bound in ((1e-6, 5e-5), (1e-8, 1e-6)):
        I = integrator("vdp", vdp_rhs(mu), grid, "radau", adaptive=True, rtol=rtol, atol=rtol * 1e-3, max_steps=200)
        xs = I.compile()(np.array([2.0, 0.0]))
        assert np.abs(xs - ref).max() < bound
    assert np.sum(np.abs(np.diff(np.sign(xs[:, 0]))) > 0) >= 2  # x changed sign twice: two jumps


def test_adaptive_radau_robertson_and_derivative():
    y, k = sg.symbols("y", 3), sg.symbols("k", 3)
    f = sg.Function("rober", [y, k], [np.array([-k[0] * y[0] + k[1] * y[1] * y[2],
                                                k[0] * y[0] - k[1] * y[1] * y[2] - k[2] * y[1] ** 2,
                                                k[2] * y[1] ** 2], dtype=object)])
    kv = np.array([0.04, 1e4, 3e7])
    grid = np.concatenate([[0.0], np.geomspace(1e-4, 1e5, 19)])
    ref = solve_ivp(lambda t, y: [-kv[0] * y[0] + kv[1] * y[1] * y[2],
                                  kv[0] * y[0] - kv[1] * y[1] * y[2] - kv[2] * y[1] ** 2, kv[2] * y[1] ** 2],
                    (0, grid[-1]), [1.0, 0.0, 0.0], method="Radau", rtol=1e-10, atol=1e-14, t_eval=grid).y.T
    I = integrator("rober", f, grid, "radau", controls=(), adaptive=True, rtol=1e-6, atol=1e-12, max_steps=100)
    xs = I.compile()(np.array([1.0, 0.0, 0.0]), kv)
    assert np.all(np.abs(xs - ref) <= 1e-6 * np.abs(ref).max(axis=0))
    # frozen-step derivative of the final state w.r.t. the rate constants against central differences
    K = sg.symbols("K", 3)
    yT = I(np.array([1.0, 0.0, 0.0]), K)[-1]
    J = sg.Function("J", [K], [sg.jacobian(yT, K).to_dense()]).compile()(kv)
    S = I.compile()
    fd = np.column_stack([(S(np.array([1.0, 0.0, 0.0]), kv + e)[-1] - S(np.array([1.0, 0.0, 0.0]), kv - e)[-1])
                          / (2 * e.max()) for e in np.diag(kv * 1e-6)])
    np.testing.assert_allclose(J, fd, rtol=1e-4, atol=1e-6 * np.abs(J).max())


@pytest.mark.parametrize("method", ["rk4", "radau"])
def test_matrix_state_and_extra_rhs_outputs(method):
    """A state of shape (3, 3) (X' = A X, so X(t) = expm(A t) X0); rhs outputs after the first are ignored."""
    X = sg.symbols("X", (3, 3))
    f = sg.Function("mat", [X], [A3 @ X, (X ** 2).sum()])
    I = integrator("I", f, np.linspace(0, 1, 5), method, steps_per_interval=8)
    assert I.input_shapes == ((3, 3),) and I.output_shapes == ((5, 3, 3),)
    X0 = np.eye(3) + 0.1 * np.arange(9.0).reshape(3, 3)
    xs = I(X0)
    for k, t in enumerate(np.linspace(0, 1, 5)):
        np.testing.assert_allclose(xs[k], expm(A3 * t) @ X0, rtol=0, atol=1e-7)


def test_dopri5_error_estimate_sums_over_the_steps_of_an_interval():
    rhs, _ = forced_rhs()
    u, p = np.array([1.0, -1.0]), np.array([0.1, 0.2, 0.3])
    xs2, err2 = integrator("c", rhs, np.linspace(0, 1, 3), "dopri5", steps_per_interval=2, error=True)(X0, u, p)
    xs1, err1 = integrator("f", rhs, np.linspace(0, 1, 5), "dopri5", error=True)(X0, np.repeat(u, 2), p)
    np.testing.assert_allclose(xs2, xs1[::2], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(err2, err1[0::2] + err1[1::2], rtol=1e-12, atol=1e-20)
    assert err2.shape == (2, 3) and np.all(err2 > 0)
