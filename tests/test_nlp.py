"""NLP callbacks, SciPy and IPOPT adapters: values vs complex step, structures, optima, bad input."""

import numpy as np
import pytest

import symgraph as sg



def have_cyipopt() -> bool:
    try:
        import cyipopt  # noqa: F401
    except ImportError:
        return False
    return True


needs_ipopt = pytest.mark.skipif(not have_cyipopt(), reason="cyipopt is not installed (pip install 'symgraph[ipopt]')")


def small_problem(jit=False):
    x, p = sg.symbols("x", 3), sg.symbols("p")
    f = sg.exp(x[0] * x[1]) + p * x[2] ** 2 + sg.sin(x[0]) * x[2]
    g = np.array([x[0] ** 2 + x[1] * x[2] - p, sg.log(1 + x[1] ** 2) * x[0]])
    return sg.NLP(x=x, f=f, g=g, p=p, jit=jit), (x, p, f, g)


def complex_step(fun, x, h=1e-30):
    """Jacobian of fun (R^n -> R^m, evaluated on complex numbers) by complex step."""
    x = np.asarray(x, dtype=float)
    cols = []
    for j in range(len(x)):
        xc = x.astype(complex)
        xc[j] += 1j * h
        cols.append(np.imag(np.atleast_1d(fun(xc))) / h)
    return np.column_stack(cols)


@pytest.fixture(scope="module")
def problem():
    return small_problem()


def test_callbacks_match_complex_step(problem):
    nlp, (x, p, f, g) = problem
    F = sg.Function("fg", [x, p], [f, g])
    point, pval = np.array([0.3, -0.7, 1.1]), 2.5
    nlp.set_parameters([pval])
    assert nlp.objective(point) == pytest.approx(float(F(point, pval)[0]), rel=1e-14)
    np.testing.assert_allclose(nlp.gradient(point), complex_step(lambda z: F(z, pval)[0], point)[0], rtol=1e-12)
    np.testing.assert_allclose(nlp.constraints(point), F(point, pval)[1], rtol=1e-14)
    np.testing.assert_allclose(nlp.jacobian(point).toarray(), complex_step(lambda z: F(z, pval)[1], point),
                               rtol=1e-12, atol=1e-14)


def test_hessian_is_lower_triangle_of_lagrangian_hessian(problem):
    nlp, (x, p, f, g) = problem
    point, lam, sigma = np.array([0.3, -0.7, 1.1]), np.array([0.4, -1.3]), 0.7
    nlp.set_parameters([2.5])
    s = nlp.hessian_structure
    assert np.all(s.rows >= s.cols)
    full = nlp.hessian(point, lam, sigma).toarray()
    np.testing.assert_allclose(full, full.T)
    G = sg.Function("grad_l", [x, p], [sg.grad(sigma * f + lam @ g, x)])
    expected = complex_step(lambda z: G(z, 2.5), point)
    np.testing.assert_allclose(full, expected, rtol=1e-10, atol=1e-12)


def test_structures_are_fixed_between_calls(problem):
    nlp, _ = problem
    first = (nlp.jacobian_structure.rows.copy(), nlp.hessian_structure.cols.copy())
    nlp.jacobian_values(np.ones(3))
    nlp.hessian_values(np.zeros(3), np.ones(2))
    assert np.array_equal(first[0], nlp.jacobian_structure.rows)
    assert np.array_equal(first[1], nlp.hessian_structure.cols)
    assert len(nlp.jacobian_values(np.ones(3))) == nlp.jacobian_structure.nnz


def test_compiled_callbacks_equal_vm():
    compiled, _ = small_problem(jit=True)
    reference, _ = small_problem(jit=False)
    point, lam = np.array([0.2, 0.5, -1.0]), np.array([1.0, 2.0])
    for nlp in (compiled, reference):
        nlp.set_parameters([1.5])
    np.testing.assert_allclose(compiled.gradient(point), reference.gradient(point), rtol=1e-14)
    np.testing.assert_allclose(compiled.jacobian_values(point), reference.jacobian_values(point), rtol=1e-14)
    np.testing.assert_allclose(compiled.hessian_values(point, lam, 0.5), reference.hessian_values(point, lam, 0.5),
                               rtol=1e-14)


def test_rosenbrock_with_scipy_reaches_ones():
    n = 6
    x = sg.symbols("x", n)
    nlp = sg.NLP(x=x, f=np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2), jit=False)
    for method in ("trust-constr", "L-BFGS-B", "SLSQP"):
        sol = nlp.scipy_minimize(np.full(n, -0.5), method=method, options={"maxiter": 3000})
        np.testing.assert_allclose(sol.x, 1.0, atol=2e-3 if method == "SLSQP" else 1e-4)


def test_scipy_constrained_methods_agree():
    x = sg.symbols("x", 2)
    nlp = sg.NLP(x=x, f=(x[0] - 2) ** 2 + (x[1] - 1) ** 2, g=x[0] ** 2 + x[1] ** 2, jit=False)
    # minimize distance to (2, 1) on the unit disc: optimum (2, 1)/sqrt(5)
    tight = {"trust-constr": {"gtol": 1e-12, "xtol": 1e-14, "barrier_tol": 1e-12}, "SLSQP": {"ftol": 1e-12}}
    for method in ("trust-constr", "SLSQP"):
        sol = nlp.scipy_minimize([0.1, 0.1], constraint_bounds=(-np.inf, 1.0), method=method,
                                 options=tight[method])
        np.testing.assert_allclose(sol.x, np.array([2.0, 1.0]) / np.sqrt(5.0), atol=1e-5)


def test_scipy_mixed_and_free_constraint_rows():
    x = sg.symbols("x", 3)
    g = np.array([x[0] + x[1] + x[2], x[0] - x[1], x[2] ** 2])
    nlp = sg.NLP(x=x, f=((x - np.array([1.0, 2.0, 3.0])) ** 2).sum(), g=g, jit=False)
    # sum == 3 (equality), x0 - x1 >= 0 (inequality), third row unbounded (ignored)
    bounds = ([3.0, 0.0, -np.inf], [3.0, np.inf, np.inf])
    for method in ("SLSQP", "trust-constr"):
        sol = nlp.scipy_minimize(np.zeros(3), constraint_bounds=bounds, method=method,
                                 options={"ftol": 1e-12} if method == "SLSQP" else {"gtol": 1e-10, "xtol": 1e-14})
        # projection of (1, 2, 3) onto {sum = 3, x0 >= x1}: x0 = x1 = a, x2 = 3 - 2a,
        # minimizing (a-1)^2 + (a-2)^2 + 4a^2 gives a = 1/2
        # (trust-constr's barrier stays a little inside the active inequality)
        np.testing.assert_allclose(sol.x, [0.5, 0.5, 2.0], atol=1e-5 if method == "SLSQP" else 1e-4)


def test_least_squares_fits_exponential():
    a = sg.symbols("a", 2)
    t = np.linspace(0, 1, 20)
    data = 2.0 * np.exp(-1.5 * t)
    result = sg.least_squares(a[0] * np.exp(a[1] * t) - data, a, [1.0, 0.0], jit=False)
    np.testing.assert_allclose(result.x, [2.0, -1.5], rtol=1e-8)


@needs_ipopt
def test_hs071_with_ipopt():
    x = sg.symbols("x", 4)
    nlp = sg.NLP(x=x, f=x[0] * x[3] * (x[0] + x[1] + x[2]) + x[2],
                 g=np.array([x[0] * x[1] * x[2] * x[3], (x ** 2).sum()]), jit=False)
    sol = nlp.solve_ipopt([1.0, 5.0, 5.0, 1.0], lbx=1.0, ubx=5.0, lbg=[25.0, 40.0], ubg=[np.inf, 40.0])
    assert sol.success and sol["f"] == sol.f
    assert sol.f == pytest.approx(17.0140173, abs=1e-6)
    np.testing.assert_allclose(sol.x, [1.0, 4.74299963, 3.82114998, 1.37940829], rtol=1e-6)


@needs_ipopt
def test_parameter_change_moves_solution_without_recompiling():
    from codegen.build import STATS

    x, p = sg.symbols("x", 2), sg.symbols("p", 2)
    nlp = sg.NLP(x=x, f=(x[0] - p[0]) ** 2 + (x[1] - p[1]) ** 2 + sg.exp(x[0] - x[1]), g=x[0] + x[1], p=p)
    compiles = STATS["compiles"]
    a = nlp.solve_ipopt([0.0, 0.0], p=[1.0, 0.0])
    b = nlp.solve_ipopt([0.0, 0.0], p=[3.0, -1.0])
    assert STATS["compiles"] == compiles, "a parameter change must not run the compiler"
    # optimum on x0 + x1 = 0: x = (t, -t) with 2(t - p0) + 2(t + p1) + 2 exp(2t) = 0
    for sol, (p0, p1) in ((a, (1.0, 0.0)), (b, (3.0, -1.0))):
        t = sol.x[0]
        assert sol.x[1] == pytest.approx(-t, abs=1e-9)
        assert 2 * (t - p0) + 2 * (t + p1) + 2 * np.exp(2 * t) == pytest.approx(0.0, abs=1e-7)
    assert a.x[0] != pytest.approx(b.x[0], abs=1e-3)
    again = sg.NLP(x=x, f=(x[0] - p[0]) ** 2 + (x[1] - p[1]) ** 2 + sg.exp(x[0] - x[1]), g=x[0] + x[1], p=p)
    assert STATS["compiles"] == compiles, "the same NLP again is a cache hit"
    np.testing.assert_allclose(again.solve_ipopt([0.0, 0.0], p=[3.0, -1.0]).x, b.x, rtol=1e-12)


@needs_ipopt
def test_ipopt_bad_bounds_and_start():
    x = sg.symbols("x", 2)
    nlp = sg.NLP(x=x, f=x[0] ** 2 + x[1] ** 2, g=x[0] + x[1], jit=False)
    with pytest.raises(sg.ShapeError, match="lbg must have 1 values"):
        nlp.solve_ipopt([0.0, 0.0], lbg=[0.0, 1.0])
    with pytest.raises(sg.ShapeError, match="ubx must have 2 values"):
        nlp.solve_ipopt([0.0, 0.0], ubx=[1.0, 2.0, 3.0])
    with pytest.raises(sg.ShapeError, match="x must have 2 values, got 1"):
        nlp.solve_ipopt([0.0])


def test_bad_input():
    x, y = sg.symbols("x", 2), sg.symbols("y")
    with pytest.raises(sg.ShapeError, match="scalar"):
        sg.NLP(x=x, f=x * 2, jit=False)
    with pytest.raises(sg.FreeSymbolError, match="'y'"):
        sg.NLP(x=x, f=x[0] ** 2, g=x[1] - y, jit=False)
    with pytest.raises(sg.InvalidInputError, match="not a symbol"):
        sg.NLP(x=[x[0] + 1, x[1]], f=x[0] ** 2, jit=False)
    nlp = sg.NLP(x=x, f=x[0] ** 2 + x[1] ** 2, g=x[0] + x[1], jit=False)
    with pytest.raises(sg.ShapeError, match="x must have 2 values, got 3"):
        nlp.objective([1.0, 2.0, 3.0])
    with pytest.raises(sg.ShapeError, match="lbg must have 1 values"):
        from symgraph.interop.ipopt import bounds_vector
        bounds_vector([1.0, 2.0], 1, 0.0, "lbg")
    with pytest.raises(sg.ShapeError, match="parameters"):
        nlp.set_parameters([1.0])
    with pytest.raises(sg.InvalidInputError, match="L-BFGS-B"):
        nlp.scipy_minimize([0.0, 0.0], method="L-BFGS-B")
