"""Tiled NLP derivatives (symgraph/tiled.py) against the same model written unrolled.

Every model here is built twice: once with maps (``F.map(n, ...)(...)``, so
``sg.NLP`` tiles the mapped pieces: ``nlp.tiled`` is True) and once with the
body applied instance by instance as plain expressions (no map: the general
sparse AD, ``nlp.tiled`` is False).  The oracle is the unrolled NLP: on
random points (x, lambda, sigma, p) objective, gradient, constraints,
Jacobian and full symmetric Hessian must agree (the values are summed in a
different order, hence the 1e-10 tolerances).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import symgraph as sg
from strategies import random_graphs
from symgraph.ops import SCALAR_OPS

TOL = dict(rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------ helpers
def values(nlp: sg.NLP, x: np.ndarray, lam: np.ndarray, sigma: float, p: np.ndarray | None) -> dict:
    """Every callback of ``nlp`` at one point, dense."""
    if p is not None:
        nlp.set_parameters(p)
    return {"f": nlp.objective(x), "gradient": nlp.gradient(x), "g": nlp.constraints(x),
            "jacobian": nlp.jacobian(x).toarray(), "hessian": nlp.hessian(x, lam, sigma).toarray()}


def assert_same(tiled: sg.NLP, plain: sg.NLP, seeds=(0, 1, 2), scale: float = 1.0, tol: dict = TOL) -> None:
    """``tiled`` and ``plain`` agree on random points: x in [-scale, scale], lambda, p normal, sigma in [0.5, 2]."""
    assert tiled.n == plain.n and tiled.m == plain.m and len(tiled.p) == len(plain.p)
    for seed in seeds:
        rng = np.random.default_rng(seed)
        x = rng.uniform(-scale, scale, tiled.n)
        lam = rng.normal(size=tiled.m)
        sigma = float(rng.uniform(0.5, 2.0))
        p = rng.normal(size=len(tiled.p)) if len(tiled.p) else None
        a, b = values(tiled, x, lam, sigma, p), values(plain, x, lam, sigma, p)
        for key in a:
            np.testing.assert_allclose(a[key], b[key], err_msg=f"{key} (seed {seed})", **tol)
    # the tiled structure is a lower triangle with positions in range
    s = tiled.hessian_structure
    assert np.all(s.rows >= s.cols) and np.all(s.rows < tiled.n) and np.all(s.cols >= 0)
    j = tiled.jacobian_structure
    assert np.all((j.rows >= 0) & (j.rows < tiled.m) & (j.cols >= 0) & (j.cols < tiled.n))


def nlp_pair(x, f_map, g_map, f_plain, g_plain, p=None, jit=False, tiled=True, name="t"):
    """The mapped and the unrolled NLP; ``tiled`` is what the mapped one must report."""
    with sg.building():
        a = sg.NLP(x=x, f=f_map, g=g_map, p=p, jit=jit, name=f"{name}_map")
        b = sg.NLP(x=x, f=f_plain, g=g_plain, p=p, jit=jit, name=f"{name}_plain")
    if tiled is not None:
        assert a.tiled is tiled
    assert b.tiled is False
    return a, b


def mapped_and_unrolled(body, in_shapes, n, operands, shared=(), reduce=None, name="body"):
    """``body`` over ``n`` instances: (map call result, the same written instance by instance).

    ``body`` takes one array (or scalar) per input and returns one array (or
    scalar) of outputs; operands have a leading axis ``n`` unless shared.
    """
    ins = [sg.symbols(f"{name}_in{k}", shape) if shape else sg.symbols(f"{name}_in{k}")
           for k, shape in enumerate(in_shapes)]
    F = sg.Function(name, ins, [np.asarray(body(*ins), dtype=object)])
    mapped = F.map(n, shared=list(shared), reduce=reduce)(*operands)
    per = [np.asarray(body(*[op if k in shared else op[i] for k, op in enumerate(operands)]), dtype=object)
           for i in range(n)]
    unrolled = np.sum(np.array(per, dtype=object), axis=0) if reduce == "sum" else np.array(per, dtype=object)
    return np.asarray(mapped, dtype=object), unrolled


def luksan_pair(n: int, jit: bool = False):
    x, f, g = sg.models.luksan_mapped(n)
    xu, fu, gu = sg.models.luksan(n)
    with sg.building():
        a = sg.NLP(x=x, f=f, g=g, jit=jit, name=f"tl_map{n}")
        b = sg.NLP(x=xu, f=fu, g=gu, jit=jit, name=f"tl_plain{n}")
    return a, b


def positions(structure) -> set:
    return set(zip(structure.rows.tolist(), structure.cols.tolist()))


# ------------------------------------------------------------------ Luksan
@pytest.mark.parametrize("n", [3, 4, 9])
def test_luksan_values(n):
    a, b = luksan_pair(n)
    assert a.tiled and not b.tiled
    assert_same(a, b)


def test_luksan_values_compiled():
    a, b = luksan_pair(6, jit=True)
    assert a.tiled
    assert_same(a, b, seeds=(3, 4))


def test_luksan_structure_positions_match_unrolled():
    a, b = luksan_pair(12)
    assert a.tiled
    # the tiled triplets repeat positions (neighbouring terms share variables); the NLP sums them onto
    # distinct positions in CSC order: the unrolled structure exactly
    for mine, theirs in ((a.jacobian_structure, b.jacobian_structure), (a.hessian_structure, b.hessian_structure)):
        assert mine.rows.tolist() == theirs.rows.tolist() and mine.cols.tolist() == theirs.cols.tolist()
    s = a.hessian_structure
    assert np.all(s.rows >= s.cols)
    assert len(set(zip(s.rows.tolist(), s.cols.tolist()))) == s.nnz
    assert a._hessian_sum[1] is not None and len(a._hessian_sum[0]) > s.nnz  # repeats were there, and summed
    assert a.jacobian_structure.shape == (10, 12) and s.shape == (12, 12)


def have_cyipopt() -> bool:
    try:
        import cyipopt  # noqa: F401  (only whether it imports)
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not have_cyipopt(), reason="cyipopt is not importable: IPOPT solves cannot run")
def test_luksan_solve_ipopt_same_optimum_and_iterations():
    a, b = luksan_pair(20)
    options = {"print_level": 0, "sb": "yes", "tol": 1e-10}
    x0 = np.full(20, 3.0)
    ra = a.solve_ipopt(x0, lbg=0.0, ubg=0.0, options=options)
    rb = b.solve_ipopt(x0, lbg=0.0, ubg=0.0, options=options)
    assert ra.success and rb.success
    assert ra.f == pytest.approx(rb.f, rel=1e-8, abs=1e-10)
    assert ra.iterations == rb.iterations
    np.testing.assert_allclose(ra.x, rb.x, rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------------ cart-pole style shooting
def small_dynamics(q, u):
    """A made-up nonlinear two-state system with one control: several outputs, all coupled."""
    pos, vel = q[0], q[1]
    return np.array([pos + 0.1 * vel + 0.01 * sg.sin(pos) * u,
                     vel + 0.1 * (u * sg.cos(pos) - vel * vel * pos) + 0.02 * sg.exp(0.3 * vel)], dtype=object)


def shooting(X: np.ndarray, U: np.ndarray, mapped: bool):
    N = len(U)
    with sg.building():
        if mapped:
            q, u = sg.symbols("q", 2), sg.symbols("u")
            ends = sg.Function("interval", [q, u], [small_dynamics(q, u)]).map(N)(X[:-1], U)
        else:
            ends = np.array([small_dynamics(X[k], U[k]) for k in range(N)], dtype=object)
        gaps = ends - X[1:]
        g = np.concatenate([X[0] - np.array([0.0, 0.5]), gaps.reshape(-1), X[N] - np.array([1.0, 0.0])])
        f = 0.1 * np.sum(U * U) + np.sum(X[:, 1] ** 2)
    return f, g


def shooting_pair(N: int, **options):
    X, U = sg.symbols("X", (N + 1, 2)), sg.symbols("U", N)
    (f, g), (fu, gu) = shooting(X, U, True), shooting(X, U, False)
    return nlp_pair(np.concatenate([X.reshape(-1), U]), f, g, fu, gu, **options)


@pytest.mark.parametrize("N", [1, 5])
def test_shooting_constraints(N):
    a, b = shooting_pair(N)
    assert_same(a, b)
    assert positions(a.jacobian_structure) >= positions(b.jacobian_structure)


def test_shooting_constraints_compiled():
    a, b = shooting_pair(4, jit=True, name="tshoot")
    assert_same(a, b, seeds=(5,))


# ------------------------------------------------------------------ coefficients
def two_outputs(a, b):
    return np.array([sg.sin(a) * b * b, a * sg.exp(b) + a * a * b], dtype=object)


def one_output(a, b, c):
    return sg.cos(a * b) + c * c * a


def test_coefficients_in_objective_and_constraints():
    n = 5
    x = sg.symbols("x", n + 2)
    with sg.building():
        M, Mu = mapped_and_unrolled(two_outputs, [(), ()], n, [x[:-2], x[1:-1]], name="two")
        O, Ou = mapped_and_unrolled(one_output, [(), (), ()], n, [x[:-2], x[1:-1], x[2:]], reduce="sum",
                                    name="one")
        f = 0.5 * np.sum(M[:, 0]) + 3 * O - np.sum(M[:, 1]) / 4
        fu = 0.5 * np.sum(Mu[:, 0]) + 3 * Ou - np.sum(Mu[:, 1]) / 4
        g = np.concatenate([2 * M[:, 1], -M[:, 0] / 3.0, [x[0] * x[1]]])
        gu = np.concatenate([2 * Mu[:, 1], -Mu[:, 0] / 3.0, [x[0] * x[1]]])
    a, b = nlp_pair(x, f, g, fu, gu)
    assert_same(a, b)


def test_result_in_objective_and_constraints_with_different_coefficients():
    n = 4
    x = sg.symbols("x", n + 1)
    with sg.building():
        M, Mu = mapped_and_unrolled(two_outputs, [(), ()], n, [x[:-1], x[1:]])
        f = 0.5 * np.sum(M[:, 0]) - 2 * np.sum(M[:, 1])
        fu = 0.5 * np.sum(Mu[:, 0]) - 2 * np.sum(Mu[:, 1])
        # M[:, 0] in f (0.5) and in g (-3); M[:, 1] in g only for some instances
        g = np.concatenate([-3 * M[:, 0], M[:2, 1] * 7])
        gu = np.concatenate([-3 * Mu[:, 0], Mu[:2, 1] * 7])
    a, b = nlp_pair(x, f, g, fu, gu)
    assert_same(a, b)


def test_same_result_in_two_constraint_rows():
    n = 4
    x = sg.symbols("x", n + 1)
    with sg.building():
        M, Mu = mapped_and_unrolled(two_outputs, [(), ()], n, [x[:-1], x[1:]])
        g = np.concatenate([M[:, 0], 2 * M[:, 0] + M[:, 1], [M[1, 1] - M[2, 0]]])
        gu = np.concatenate([Mu[:, 0], 2 * Mu[:, 0] + Mu[:, 1], [Mu[1, 1] - Mu[2, 0]]])
    a, b = nlp_pair(x, np.sum(M[:, 1]), g, np.sum(Mu[:, 1]), gu)
    assert_same(a, b)


def test_non_uniform_coefficients_fall_back():
    n = 5
    x = sg.symbols("x", n + 1)
    with sg.building():
        M, Mu = mapped_and_unrolled(two_outputs, [(), ()], n, [x[:-1], x[1:]])
        c = np.arange(1.0, n + 1)
        f = np.sum(c * M[:, 0]) + M[0, 1] + 2 * M[3, 1]   # different per instance; M[:, 1] not in every instance
        fu = np.sum(c * Mu[:, 0]) + Mu[0, 1] + 2 * Mu[3, 1]
        g = c * M[:, 1] - M[:, 0]                        # non-uniform in g, uniform -1 on M[:, 0]
        gu = c * Mu[:, 1] - Mu[:, 0]
    a, b = nlp_pair(x, f, g, fu, gu)
    assert_same(a, b)


def test_all_pieces_non_uniform_still_right():
    n = 3
    x = sg.symbols("x", n + 1)
    with sg.building():
        M, Mu = mapped_and_unrolled(two_outputs, [(), ()], n, [x[:-1], x[1:]])
        c = np.array([1.0, -2.0, 0.5])
        f, fu = np.sum(c * M[:, 0]), np.sum(c * Mu[:, 0])
        g, gu = c * M[:, 1], c * Mu[:, 1]
    a, b = nlp_pair(x, f, g, fu, gu, tiled=None)  # tiled, though every piece went back to the remainder
    assert_same(a, b)


def test_results_also_used_nonlinearly():
    # linear pieces are tiled; the same results inside products and sines go through the remainder
    n = 4
    x = sg.symbols("x", n + 1)
    with sg.building():
        M, Mu = mapped_and_unrolled(two_outputs, [(), ()], n, [x[:-1], x[1:]])
        f = np.sum(M[:, 0]) + M[1, 1] ** 2 + M[0, 0] * M[2, 1]
        fu = np.sum(Mu[:, 0]) + Mu[1, 1] ** 2 + Mu[0, 0] * Mu[2, 1]
        g = np.array([M[0, 1] * x[2], sg.sin(M[3, 0]) + M[3, 1]])
        gu = np.array([Mu[0, 1] * x[2], sg.sin(Mu[3, 0]) + Mu[3, 1]])
    a, b = nlp_pair(x, f, g, fu, gu)
    assert_same(a, b)


# ------------------------------------------------------------------ shared inputs
def with_parameters(a, b, p):
    return np.array([p[0] * sg.sin(a * b) + p[1] * a * a * b, sg.exp(p[2] * a) * b - p[0] * p[1]], dtype=object)


@pytest.mark.parametrize("reduce", [None, "sum"])
def test_shared_parameter_vector(reduce):
    n = 5
    x, p = sg.symbols("x", n + 1), sg.symbols("p", 3)
    with sg.building():
        M, Mu = mapped_and_unrolled(with_parameters, [(), (), (3,)], n, [x[:-1], x[1:], p], shared=[2],
                                    reduce=reduce)
        if reduce is None:
            f, fu = np.sum(M[:, 0]) * 2, np.sum(Mu[:, 0]) * 2
            g, gu = M[:, 1] - p[0], Mu[:, 1] - p[0]
        else:
            f, fu = M[0] + p[1] * x[0], Mu[0] + p[1] * x[0]
            g, gu = np.array([3 * M[1]]), np.array([3 * Mu[1]])
    a, b = nlp_pair(x, f, g, fu, gu, p=p)
    assert_same(a, b)


def global_and_local(z, a, b):
    return np.array([z[0] * a * a + sg.sin(z[1] * b) * a, z[0] * z[1] * b + sg.cos(a - z[0])], dtype=object)


@pytest.mark.parametrize("reduce", [None, "sum"])
def test_shared_variables_in_x(reduce):
    n = 4
    x = sg.symbols("x", n + 1)
    z = sg.symbols("z", 2)
    with sg.building():
        M, Mu = mapped_and_unrolled(global_and_local, [(2,), (), ()], n, [z, x[:-1], x[1:]], shared=[0],
                                    reduce=reduce)
        w = np.concatenate([x, z])
        if reduce is None:
            f, fu = 0.5 * np.sum(M[:, 0]), 0.5 * np.sum(Mu[:, 0])
            g, gu = M[:, 1], Mu[:, 1]
        else:
            f, fu = 0.5 * M[0], 0.5 * Mu[0]
            g, gu = np.array([M[1], z[0] - z[1]]), np.array([Mu[1], z[0] - z[1]])
    a, b = nlp_pair(w, f, g, fu, gu)
    assert_same(a, b)
    # every instance adds into the (z, z) block and into (x_i, z): repeated positions summed
    s = a.hessian_structure
    assert len(positions(s)) == s.nnz and a._hessian_sum[1] is not None and len(a._hessian_sum[0]) > s.nnz


def test_shared_variables_in_x_compiled():
    n = 3
    x, z = sg.symbols("x", n + 1), sg.symbols("z", 2)
    with sg.building():
        M, Mu = mapped_and_unrolled(global_and_local, [(2,), (), ()], n, [z, x[:-1], x[1:]], shared=[0])
        w = np.concatenate([x, z])
    a, b = nlp_pair(w, np.sum(M[:, 0]), M[:, 1], np.sum(Mu[:, 0]), Mu[:, 1], jit=True, name="tglobal")
    assert_same(a, b, seeds=(6,))


# ------------------------------------------------------------------ operands not in x
def test_operands_constant_or_functions_of_parameters():
    n = 4
    x, p = sg.symbols("x", n), sg.symbols("p", 2)
    data = np.linspace(-1.0, 1.0, n)
    with sg.building():
        # slot a: a constant table, slot b: x, slot c: a function of p only
        M, Mu = mapped_and_unrolled(one_output, [(), (), ()], n, [data, x, p[0] * data + sg.exp(p[1])])
        f, fu = np.sum(M), np.sum(Mu)
        g, gu = M * 2 + x, Mu * 2 + x
    a, b = nlp_pair(x, f, g, fu, gu, p=p)
    assert_same(a, b)


@pytest.mark.parametrize("only", [True, False])
def test_operands_functions_of_x_fall_back(only):
    n = 4
    x = sg.symbols("x", n + 1)
    with sg.building():
        M, Mu = mapped_and_unrolled(two_outputs, [(), ()], n, [x[:-1] ** 2, sg.sin(x[1:])], name="fx")
        f, fu = np.sum(M[:, 0]), np.sum(Mu[:, 0])
        g, gu = M[:, 1], Mu[:, 1]
        if not only:  # beside a tileable map
            O, Ou = mapped_and_unrolled(two_outputs, [(), ()], n, [x[:-1], x[1:]], name="ok")
            f, fu = f + np.sum(O[:, 1]), fu + np.sum(Ou[:, 1])
            g, gu = g + O[:, 0], gu + Ou[:, 0]
    a, b = nlp_pair(x, f, g, fu, gu, tiled=not only)
    assert_same(a, b)


# ------------------------------------------------------------------ body input names
def test_body_input_named_w0():
    # the Hessian's weight inputs are named apart from the body's own (a body input 'w0' once clashed)
    x = sg.symbols("x", 3)
    w0, b = sg.symbols("w0"), sg.symbols("b")
    F = sg.Function("F", [w0, b], [sg.sin(w0 * b) * w0])
    with sg.building():
        M = F.map(2)(x[:-1], x[1:])
        Mu = np.array([sg.sin(x[i] * x[i + 1]) * x[i] for i in range(2)], dtype=object)
    a, b = nlp_pair(x, np.sum(M), 2 * M, np.sum(Mu), 2 * Mu)
    assert_same(a, b)


# ------------------------------------------------------------------ one variable in two slots
def coupled(a, b):
    return np.array([a * a * b + sg.sin(a * b), a * sg.exp(b) - b * b * b], dtype=object)


def test_variable_in_two_slots_of_one_instance():
    x = sg.symbols("x", 4)
    idx1 = np.array([0, 1, 2, 2, 3, 1])
    idx2 = np.array([0, 2, 2, 1, 0, 1])   # instances 0, 2 and 5 see one variable in both slots
    n = len(idx1)
    with sg.building():
        M, Mu = mapped_and_unrolled(coupled, [(), ()], n, [x[idx1], x[idx2]])
        f, fu = np.sum(M[:, 0]), np.sum(Mu[:, 0])
        g, gu = 1.5 * M[:, 1], 1.5 * Mu[:, 1]
    a, b = nlp_pair(x, f, g, fu, gu)
    assert_same(a, b)


def test_variable_in_two_slots_objective_only_diagonal():
    # the body's only second derivative is the mixed one: the diagonal gets 2 * d2/dadb
    x = sg.symbols("x", 2)
    a_, b_ = sg.symbols("a"), sg.symbols("b")
    F = sg.Function("prod", [a_, b_], [a_ * b_])
    with sg.building():
        f = F.map(2, reduce="sum")(x[[0, 1]], x[[0, 0]])
    nlp = sg.NLP(x=x, f=f, jit=False)
    assert nlp.tiled
    H = nlp.hessian(np.array([0.3, -0.2]), [], 1.0).toarray()
    np.testing.assert_allclose(H, [[2.0, 1.0], [1.0, 0.0]], **TOL)
    np.testing.assert_allclose(nlp.gradient(np.array([0.3, -0.2])), [2 * 0.3 - 0.2, 0.3], **TOL)


# ------------------------------------------------------------------ sums
def test_reduced_result_in_constraints_and_instance_results_summed_in_objective():
    n = 5
    x = sg.symbols("x", n + 1)
    with sg.building():
        S, Su = mapped_and_unrolled(two_outputs, [(), ()], n, [x[:-1], x[1:]], reduce="sum", name="red")
        M, Mu = mapped_and_unrolled(coupled, [(), ()], n, [x[1:], x[:-1]], name="per")
        # S[0] in f and in g: the Hessian weight of the reduced entry is 0.5 * sigma + lambda_0
        f = np.sum(M[:, 0]) + np.sum(M[:, 1]) / 2 + 0.5 * S[0]
        fu = np.sum(Mu[:, 0]) + np.sum(Mu[:, 1]) / 2 + 0.5 * Su[0]
        g = np.array([S[0], 2 * S[1] - x[0], S[1] / 5])   # S[1] in two rows
        gu = np.array([Su[0], 2 * Su[1] - x[0], Su[1] / 5])
    a, b = nlp_pair(x, f, g, fu, gu)
    assert_same(a, b)


def test_reduced_result_in_objective_and_constraint():
    n = 4
    x = sg.symbols("x", n + 1)
    with sg.building():
        S, Su = mapped_and_unrolled(two_outputs, [(), ()], n, [x[:-1], x[1:]], reduce="sum", name="red2")
        f, fu = 0.5 * S[0] - S[1], 0.5 * Su[0] - Su[1]
        g, gu = np.array([3 * S[0], x[1] ** 2]), np.array([3 * Su[0], x[1] ** 2])
    a, b = nlp_pair(x, f, g, fu, gu)
    assert_same(a, b)


# ------------------------------------------------------------------ nested maps, folds in the body
def test_nested_map_in_body():
    n, k = 3, 2
    x = sg.symbols("x", (n, k))
    y = sg.symbols("y", n)
    inner_u, inner_v = sg.symbols("iu"), sg.symbols("iv")
    inner = sg.Function("inner", [inner_u, inner_v], [sg.sin(inner_u) * inner_v + inner_u * inner_u])

    def outer_body(row, s):
        return np.sum(inner.map(k)(row, np.full(k, s, dtype=object))) * s

    def outer_plain(row, s):
        return sum(sg.sin(row[j]) * s + row[j] * row[j] for j in range(k)) * s

    with sg.building():
        row, s = sg.symbols("row", k), sg.symbols("s")
        F = sg.Function("outer", [row, s], [outer_body(row, s)])
        M = F.map(n)(x, y)
        Mu = np.array([outer_plain(x[i], y[i]) for i in range(n)], dtype=object)
        w = np.concatenate([x.reshape(-1), y])
    a, b = nlp_pair(w, np.sum(M), M[:2] * 2, np.sum(Mu), Mu[:2] * 2)
    assert_same(a, b)


def test_fold_in_body():
    n, steps = 3, 3
    x = sg.symbols("x", n)
    c = sg.symbols("c", n)
    s_, u_ = sg.symbols("s"), sg.symbols("u")
    step = sg.Function("step", [s_, u_], [s_ + 0.1 * sg.sin(s_ * u_)])
    with sg.building():
        a_, b_ = sg.symbols("a"), sg.symbols("b")
        F = sg.Function("rollout", [a_, b_], [step.fold(steps, shared=[1], last=True)(a_, b_) ** 2])
        M = F.map(n)(x, c)
        Mu = []
        for i in range(n):
            s = x[i]
            for _ in range(steps):
                s = s + 0.1 * sg.sin(s * c[i])
            Mu.append(s ** 2)
        Mu = np.array(Mu, dtype=object)
        w = np.concatenate([x, c])
    a, b = nlp_pair(w, 0.5 * np.sum(M), M - c, 0.5 * np.sum(Mu), Mu - c)
    assert_same(a, b)


# ------------------------------------------------------------------ random bodies
SMOOTH = [op for op in SCALAR_OPS if op.name in ("add", "sub", "mul", "neg", "sin", "cos", "tanh", "square")]


@st.composite
def random_tiled_models(draw):
    """A random body, n, operands, coefficients: (x, p, f, g, f unrolled, g unrolled).

    Each body input reads x through an index table with repeats, or one x
    entry shared by every instance, or a constant table, or the parameter p
    (shared); coefficients are uniform over the instances or not.
    """
    graph = draw(random_graphs(max_inputs=3, max_steps=6, ops=SMOOTH))
    n_in, n_out = len(graph.inputs), len(graph.outputs)
    n = draw(st.integers(1, 4))
    n_x = draw(st.integers(1, 5))
    x, p = sg.symbols("x", n_x), sg.symbols("p", 1)
    operands, shared = [], []
    for k in range(n_in):
        kind = draw(st.sampled_from(["table", "table", "shared x", "constants", "p"]))
        if kind == "table":
            operands.append(x[np.array(draw(st.lists(st.integers(0, n_x - 1), min_size=n, max_size=n)))])
        elif kind == "shared x":
            operands.append(x[draw(st.integers(0, n_x - 1))])
        elif kind == "constants":
            operands.append(np.array(draw(st.lists(st.sampled_from([-1.0, 0.5, 2.0]), min_size=n, max_size=n))))
        else:
            operands.append(p[0])
        if kind in ("shared x", "p"):
            shared.append(k)
    coefficient = st.sampled_from([1.0, -1.0, 0.5, 2.0, -3.0])
    uniform = draw(st.booleans())

    def coefficients():
        return np.full(n, draw(coefficient)) if uniform else np.array([draw(coefficient) for _ in range(n)])

    f_coef, g_coef = [coefficients() for _ in range(n_out)], [coefficients() for _ in range(n_out)]
    in_f = [draw(st.booleans()) for _ in range(n_out)]
    in_g = [draw(st.booleans()) for _ in range(n_out)]
    reduce = draw(st.sampled_from([None, "sum"]))
    pair_row = draw(st.booleans())

    def body(*u):
        return np.array(sg.substitute(graph.outputs, graph.inputs, list(u)), dtype=object)

    with sg.building():
        M, Mu = mapped_and_unrolled(body, [()] * n_in, n, operands, shared=shared, reduce=reduce, name="rnd")
        M, Mu = M.reshape(-1, n_out), Mu.reshape(-1, n_out)
        count = len(M)   # n, or 1 when reduced
        f, fu = sg.const(0.0), sg.const(0.0)
        g, gu = [x[0] * 1.0], [x[0] * 1.0]
        for r in range(n_out):
            if in_f[r]:
                f, fu = f + np.sum(f_coef[r][:count] * M[:, r]), fu + np.sum(f_coef[r][:count] * Mu[:, r])
            if in_g[r]:
                g.extend((g_coef[r][:count] * M[:, r]).tolist())
                gu.extend((g_coef[r][:count] * Mu[:, r]).tolist())
        if pair_row:  # one row reading two instances (or one instance twice)
            g.append(M[0, 0] - 2 * M[-1, 0])
            gu.append(Mu[0, 0] - 2 * Mu[-1, 0])
    return x, p, f, np.array(g, dtype=object), fu, np.array(gu, dtype=object)


@given(random_tiled_models(), st.integers(0, 2**16))
def test_random_bodies_tiled_equals_unrolled(model, seed):
    x, p, f, g, fu, gu = model
    with sg.building():
        a = sg.NLP(x=x, f=f, g=g, p=p, jit=False, name="rnd_map")
        b = sg.NLP(x=x, f=fu, g=gu, p=p, jit=False, name="rnd_plain")
    assert not b.tiled
    assert_same(a, b, seeds=(seed,), tol=dict(rtol=1e-9, atol=1e-9))


# ------------------------------------------------------------------ sg.jacobian of mapped outputs
def test_sg_jacobian_of_mapped_outputs_is_tiled_and_equals_unrolled():
    x, p = sg.symbols("x", 6), sg.symbols("p")
    u = sg.symbols("u", 3)
    F = sg.Function("F", [u, p], [[sg.sin(u[0] * u[1]) + p * u[2], u[0] * u[2] ** 2]])
    with sg.building():
        idx = np.array([[0, 1, 2], [2, 3, 3], [5, 0, 4], [1, 1, 1]])  # repeats inside and across instances
        y = F.map(4, shared=[1])(x[idx], p).reshape(-1)
        total = F.map(4, shared=[1], reduce="sum")(x[idx], p)
        outs = np.concatenate([y, total, [2 * y[3] - x[5]]])
        yu = np.array([F.inline()(x[r], p) for r in idx], dtype=object).reshape(-1)
        outs_u = np.concatenate([yu, np.sum(yu.reshape(4, 2), axis=0), [2 * yu[3] - x[5]]])
    J = sg.jacobian(outs, x)
    Ju = sg.jacobian(outs_u, x, tiled=False)
    assert J.mode == "tiled" and J.n_colors == 0 and Ju.mode != "tiled"
    assert sorted(zip(J.rows.tolist(), J.cols.tolist())) == sorted(zip(Ju.rows.tolist(), Ju.cols.tolist()))
    G, Gu = sg.Function("J", [x, p], [J]), sg.Function("Ju", [x, p], [Ju])
    xv = np.random.default_rng(3).uniform(-1, 1, 6)
    np.testing.assert_allclose(G(xv, 0.7).toarray(), Gu(xv, 0.7).toarray(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(G.compile()(xv, 0.7).toarray(), Gu(xv, 0.7).toarray(), rtol=1e-12, atol=1e-12)


def test_sg_jacobian_tiled_with_a_result_in_two_rows_falls_back_without_looping():
    x = sg.symbols("x", 3)
    u = sg.symbols("u", 2)
    F = sg.Function("F", [u], [u[0] * u[1]])
    r = F.map(2)(np.stack([x[:-1], x[1:]], axis=1))
    J = sg.jacobian(np.array([r[0], r[0] + r[1], 3 * r[1]], dtype=object), x)
    expected = np.array([[2.0, 1.0, 0.0], [2.0, 4.0, 2.0], [0.0, 9.0, 6.0]])
    np.testing.assert_allclose(sg.Function("J", [x], [J])(np.array([1.0, 2.0, 3.0])).toarray(), expected)


def test_tiled_jacobian_function_with_the_variables_not_first():
    from symgraph.tiled import tiled_jacobian
    import scipy.sparse as sp

    x, p = sg.symbols("x", 4), sg.symbols("p")
    u = sg.symbols("u", 2)
    F = sg.Function("F", [u, p], [u[0] * u[1] * p + u[1] ** 2])
    y = F.map(3, shared=[1])(np.stack([x[:-1], x[1:]], axis=1), p)
    T = tiled_jacobian(y, x)
    xv = np.array([0.5, -1.0, 2.0, 0.25])
    expected = sg.Function("J", [x, p], [sg.jacobian(y, x, tiled=False)])(xv, 3.0).toarray()
    for inputs, args in (([x, p], (xv, 3.0)), ([p, x], (3.0, xv))):  # x first, then x after p
        J = T.function("J", inputs)
        got = sp.coo_matrix((J(*args), (T.rows, T.cols)), shape=(3, 4)).toarray()
        np.testing.assert_allclose(got, expected, rtol=1e-14)


# ------------------------------------------------------------------ bulk paths (operand runs, known slots)
def test_operand_columns_follow_runs_and_fall_back_past_many_runs():
    from symgraph.tiled import _Variables

    x, p = sg.symbols("x", 300), sg.symbols("p", 2)
    V = _Variables(x)
    ops = tuple(x[5:40]) + (p[0],) + tuple(x[:3]) + (sg.const(2.0), x[299], x[0]) + tuple(x[200:50:-1])
    expected = [k for k in range(5, 40)] + [-1, 0, 1, 2, -1, 299, 0] + list(range(200, 50, -1))
    assert V.columns(ops).tolist() == expected  # the reversed slice: one run per operand, then looked up
    assert V.columns(()).tolist() == []


def test_stray_symbol_among_map_operands_is_named():
    x, y = sg.symbols("x", 5), sg.symbols("y", 4)
    a, b = sg.symbols("a"), sg.symbols("b")
    F = sg.Function("F", [a, b], [a * b])
    with pytest.raises(sg.FreeSymbolError, match="'y\\[0\\]', 'y\\[1\\]'"):
        sg.NLP(x=x, f=x.sum(), g=F.map(4)(x[:-1], y), jit=False)
    with pytest.raises(sg.FreeSymbolError, match="'y\\[2\\]'"):
        sg.NLP(x=x, f=F.map(4, reduce="sum")(x[:-1], x[1:] + y[2] * x[0]), jit=False)


def test_constraints_mixing_results_other_rows_and_numbers():
    n = 6
    x = sg.symbols("x", n + 1)
    with sg.building():
        M, Mu = mapped_and_unrolled(two_outputs, [(), ()], n, [x[:-1], x[1:]])
        g = np.concatenate([M[:, 0], [x[0] * x[1], 3 * M[2, 1] - x[3]], M[3:, 1], [2.0]])
        gu = np.concatenate([Mu[:, 0], [x[0] * x[1], 3 * Mu[2, 1] - x[3]], Mu[3:, 1], [2.0]])
    a, b = nlp_pair(x, np.sum(M[:, 1]), g, np.sum(Mu[:, 1]), gu)
    assert_same(a, b)


def test_hessian_function_with_multipliers_elsewhere_among_the_inputs():
    from symgraph.tiled import tiled_derivatives
    import scipy.sparse as sp

    x, f, g = sg.models.luksan_mapped(7)
    sigma, lam = sg.symbols("sigma"), sg.symbols("lambda", len(g))
    with sg.building():
        t = tiled_derivatives(x, f, g, sigma, lam)
    rng = np.random.default_rng(5)
    xv, lv = rng.uniform(-1, 1, 7), rng.normal(size=len(g))
    H0 = t.hessian.function("H0", [x, sigma, lam])
    H1 = t.hessian.function("H1", [lam, sigma, x])  # x not first: every known slot looked up again
    lam2 = sg.symbols("lambda", len(g))  # equal names, other symbols: lambda is not among the inputs
    rows, cols = t.hessian.rows, t.hessian.cols
    dense = [sp.coo_matrix((H(*args), (rows, cols)), shape=(7, 7)).toarray()
             for H, args in ((H0, (xv, 1.5, lv)), (H1, (lv, 1.5, xv)))]
    np.testing.assert_allclose(dense[0], dense[1], rtol=1e-14)
    with pytest.raises(sg.FreeSymbolError):
        t.hessian.function("H2", [x, sigma, lam2])


def test_split_terms_visits_a_shared_sum_once_per_node():
    """A sum whose terms are shared 60 levels deep has 2^60 paths: each node is visited once, coefficients add up."""
    import time

    from symgraph.tiled import split_terms

    x, y = sg.symbols("x"), sg.symbols("y")
    r = sg.Function("f", [x], [x * x]).map(2)([x, y])
    e = r[0] - sg.sin(x) / 4
    for _ in range(60):
        e = e + 0.5 * e
    start = time.perf_counter()
    mapped, rest = split_terms(e)
    assert time.perf_counter() - start < 5.0
    assert len(mapped) == 1 and mapped[0][1] is r[0] and mapped[0][0] == pytest.approx(1.5 ** 60, rel=1e-12)
    assert len(rest) == 1 and rest[0][0] == pytest.approx(-(1.5 ** 60) / 4, rel=1e-12)
