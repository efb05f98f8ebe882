"""from_casadi: CasADi SX Functions imported into symgraph agree with CasADi's own values and derivatives.

Oracle: CasADi's evaluation of the same Function and CasADi's own symbolic
derivatives (``f.jacobian()``, ``casadi.jacobian``, ``casadi.hessian``).
"""

import functools
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

ca = pytest.importorskip("casadi", reason="casadi is an optional extra: pip install 'symgraph[casadi]'")

import symgraph as sg  # noqa: E402
from symgraph.errors import InvalidInputError, MissingToolError, UnknownOpError  # noqa: E402
from symgraph.interop.casadi import OP_MAP, from_casadi  # noqa: E402
from strategies import module_cache  # noqa: E402,F401  (compiles into a cache of this module's own)

RTOL, ATOL = 1e-12, 1e-14


# ------------------------------------------------------------------ helpers

def casadi_values(f, args) -> list[np.ndarray]:
    """CasADi's outputs of f at args, as dense numpy arrays (CasADi's own n x m shapes)."""
    return [np.array(r.full()) for r in f.call([ca.DM(np.asarray(a, dtype=float)) for a in args])]


def symgraph_values(F, args) -> list[np.ndarray]:
    """symgraph's outputs of F at args, dense (sparse outputs densified)."""
    out = F(*args)
    out = out if F.n_out > 1 else (out,)
    return [o.toarray() if hasattr(o, "toarray") else np.asarray(o) for o in out]


def vec_index(sp) -> np.ndarray:
    """CasADi's vec (column-major) index of each symgraph element of a value with sparsity sp."""
    n, m = sp.size1(), sp.size2()
    if not sp.is_dense():
        rows, cols = sp.get_triplet()
        return np.asarray(rows) + n * np.asarray(cols)
    return np.arange(n * m).reshape(m, n).T.ravel()


def assert_same_values(f, F, args, rtol=RTOL):
    for k, (a, b) in enumerate(zip(casadi_values(f, args), symgraph_values(F, args))):
        sp = f.sparsity_out(k)
        a = a if not sp.is_dense() else a.reshape(b.shape)
        np.testing.assert_allclose(b, a, rtol=rtol, atol=ATOL, err_msg=f"output {k}")


def casadi_to_sg(args, f) -> list[np.ndarray]:
    """CasADi arguments (dense numpy, n x m) -> symgraph arguments (sparse inputs: their nonzeros)."""
    out = []
    for i, a in enumerate(args):
        sp = f.sparsity_in(i)
        a = np.asarray(a, dtype=float)
        out.append(a.reshape(-1, order="F")[vec_index(sp)] if not sp.is_dense()
                   else a.reshape(F_shape(sp)))
    return out


def F_shape(sp):
    n, m = sp.size1(), sp.size2()
    return () if (n, m) == (1, 1) else (n,) if m == 1 else (n, m)


def sg_jacobian_values(F, o, i, args) -> np.ndarray:
    """symgraph's Jacobian of output o with respect to input i at args (dense, symgraph element order)."""
    J = sg.jacobian(F.outputs[o], F.inputs[i])
    return sg.Function("J", list(F.inputs), [J])(*args).toarray()


def casadi_jacobian_values(f, o, i, args) -> np.ndarray:
    """CasADi's f.jacobian() block d out_o / d in_i at args, reordered to symgraph's element order."""
    jf = f.jacobian()
    res = jf.call(dict(zip([f.name_in(k) for k in range(f.n_in())], [ca.DM(np.asarray(a, float)) for a in args])))
    J = np.array(res[f"jac_{f.name_out(o)}_{f.name_in(i)}"].full())
    return J[np.ix_(vec_index(f.sparsity_out(o)), vec_index(f.sparsity_in(i)))]


def assert_same_jacobians(f, F, args_ca, args_sg=None, rtol=1e-11):
    args_sg = args_ca if args_sg is None else args_sg
    for o in range(f.n_out()):
        for i in range(f.n_in()):
            np.testing.assert_allclose(sg_jacobian_values(F, o, i, args_sg), casadi_jacobian_values(f, o, i, args_ca),
                                       rtol=rtol, atol=1e-12, err_msg=f"d output {o} / d input {i}")


# ------------------------------------------------------------------ one Function per op

R = (-3.0, 3.0)
NONZERO = ("nonzero", 0.2, 3.0)
POS = (0.1, 3.0)
UNIT = (-0.95, 0.95)
TIES = ("choice", -1.0, 0.0, 1.0, 2.0)
TRUTH = ("choice", 0.0, 1.0, -0.5, 2.0)

# CasADi op -> (CasADi expression of x, y; domain of x; domain of y; the symgraph op it becomes)
SPECS = {
    "OP_ADD": (lambda x, y: x + y, R, R, "add"),
    "OP_SUB": (lambda x, y: x - y, R, R, "sub"),
    "OP_MUL": (lambda x, y: x * y, R, R, "mul"),
    "OP_DIV": (lambda x, y: x / y, R, NONZERO, "div"),
    "OP_NEG": (lambda x, y: -x, R, R, "neg"),
    "OP_TWICE": (lambda x, y: 2 * x, R, R, "mul"),
    "OP_INV": (lambda x, y: 1 / x, NONZERO, R, "div"),
    "OP_POW": (lambda x, y: x ** y, POS, R, "pow"),
    "OP_CONSTPOW": (lambda x, y: x ** 2.5, POS, R, "pow"),
    "OP_SQ": (lambda x, y: x * x, R, R, "square"),
    "OP_SQRT": (lambda x, y: ca.sqrt(x), POS, R, "sqrt"),
    "OP_EXP": (lambda x, y: ca.exp(x), R, R, "exp"),
    "OP_LOG": (lambda x, y: ca.log(x), POS, R, "log"),
    "OP_EXPM1": (lambda x, y: ca.expm1(x), R, R, "expm1"),
    "OP_LOG1P": (lambda x, y: ca.log1p(x), POS, R, "log1p"),
    "OP_SIN": (lambda x, y: ca.sin(x), R, R, "sin"),
    "OP_COS": (lambda x, y: ca.cos(x), R, R, "cos"),
    "OP_TAN": (lambda x, y: ca.tan(x), (-1.3, 1.3), R, "tan"),
    "OP_ASIN": (lambda x, y: ca.asin(x), UNIT, R, "asin"),
    "OP_ACOS": (lambda x, y: ca.acos(x), UNIT, R, "acos"),
    "OP_ATAN": (lambda x, y: ca.atan(x), R, R, "atan"),
    "OP_ATAN2": (lambda x, y: ca.atan2(x, y), R, R, "atan2"),
    "OP_SINH": (lambda x, y: ca.sinh(x), R, R, "sinh"),
    "OP_COSH": (lambda x, y: ca.cosh(x), R, R, "cosh"),
    "OP_TANH": (lambda x, y: ca.tanh(x), R, R, "tanh"),
    "OP_ASINH": (lambda x, y: ca.asinh(x), R, R, "asinh"),
    "OP_ACOSH": (lambda x, y: ca.acosh(x), (1.05, 4.0), R, "acosh"),
    "OP_ATANH": (lambda x, y: ca.atanh(x), UNIT, R, "atanh"),
    "OP_ERF": (lambda x, y: ca.erf(x), R, R, "erf"),
    "OP_ERFINV": (lambda x, y: ca.erfinv(x), UNIT, R, "erfinv"),
    "OP_FABS": (lambda x, y: ca.fabs(x), R, R, "abs"),
    "OP_SIGN": (lambda x, y: ca.sign(x), TIES, R, "sign"),
    "OP_FLOOR": (lambda x, y: ca.floor(x), R, R, "floor"),
    "OP_CEIL": (lambda x, y: ca.ceil(x), R, R, "ceil"),
    "OP_FMIN": (lambda x, y: ca.fmin(x, y), R, R, "fmin"),
    "OP_FMAX": (lambda x, y: ca.fmax(x, y), R, R, "fmax"),
    "OP_FMOD": (lambda x, y: ca.fmod(x, y), R, NONZERO, "fmod"),
    "OP_HYPOT": (lambda x, y: ca.hypot(x, y), R, R, "hypot"),
    "OP_LT": (lambda x, y: x < y, TIES, TIES, "lt"),
    "OP_LE": (lambda x, y: x <= y, TIES, TIES, "le"),
    "OP_EQ": (lambda x, y: x == y, TIES, TIES, "eq"),
    "OP_NE": (lambda x, y: x != y, TIES, TIES, "ne"),
    "OP_NOT": (lambda x, y: ca.logic_not(x), TRUTH, R, "not"),
    "OP_AND": (lambda x, y: ca.logic_and(x, y), TRUTH, TRUTH, "and"),
    "OP_OR": (lambda x, y: ca.logic_or(x, y), TRUTH, TRUTH, "or"),
    "OP_IF_ELSE_ZERO": (lambda x, y: ca.if_else(x, y, 0), TRUTH, R, "if_else"),
    "OP_PRINTME": (lambda x, y: x.printme(y), R, R, "symbol"),
}
# CasADi's Python API builds no SX expression with these (they appear in expanded MX graphs)
NOT_BUILDABLE = {"OP_ASSIGN", "OP_LIFT"}


# CasADi's own erfinv is an approximation good to a few 1e-6 (symgraph's is accurate to an ulp or two:
# see test_erfinv_is_more_accurate_than_casadis)
LOOSE = {"OP_ERFINV": 1e-5}


def test_erfinv_is_more_accurate_than_casadis():
    from scipy.special import erf, erfinv

    f = op_function("OP_ERFINV")[0]
    F = from_casadi(f)
    xs = np.random.default_rng(3).uniform(-0.95, 0.95, 50)
    ours = np.array([float(F(a, 0.0)) for a in xs])
    np.testing.assert_allclose(ours, erfinv(xs), rtol=4e-16 * 8)
    np.testing.assert_allclose(erf(ours), xs, rtol=1e-15, atol=1e-16)


def draw(domain, rng, n):
    if domain[0] == "choice":
        return rng.choice(np.array(domain[1:]), n)
    if domain[0] == "nonzero":
        return rng.uniform(domain[1], domain[2], n) * rng.choice([-1.0, 1.0], n)
    return rng.uniform(domain[0], domain[1], n)


def op_function(op_name):
    build, dx, dy, sg_op = SPECS[op_name]
    x, y = ca.SX.sym("x"), ca.SX.sym("y")
    return ca.Function(op_name.lower(), [x, y], [build(x, y)], ["x", "y"], ["r"]), dx, dy, sg_op


def test_every_mapped_op_is_tested():
    assert set(SPECS) | NOT_BUILDABLE == set(OP_MAP)


@pytest.mark.parametrize("op_name", sorted(SPECS))
def test_op_values_and_derivatives(op_name, capfd):
    f, dx, dy, sg_op = op_function(op_name)
    ids = {f.instruction_id(k) for k in range(f.n_instructions())}
    assert getattr(ca, op_name) in ids  # the CasADi Function really holds the op under test
    F = from_casadi(f)
    assert F.name == f.name() and F.input_names == ("x", "y") and F.output_names == ("r",)
    assert F.input_shapes == ((), ()) and F.output_shapes == ((),)
    assert F.outputs[0].item().op.name == sg_op
    rng = np.random.default_rng(sorted(SPECS).index(op_name))
    xs, ys = draw(dx, rng, 25), draw(dy, rng, 25)
    rtol = LOOSE.get(op_name, RTOL)
    for a, b in zip(xs, ys):
        assert_same_values(f, F, [a, b], rtol=rtol)
        assert_same_jacobians(f, F, [a, b], rtol=max(rtol, 1e-11))
    capfd.readouterr()  # OP_PRINTME prints in CasADi's evaluation


def test_if_else_becomes_if_else_with_both_branches():
    c, a, b = ca.SX.sym("c"), ca.SX.sym("a"), ca.SX.sym("b")
    f = ca.Function("sel", [c, a, b], [ca.if_else(c, a, b)])
    F = from_casadi(f)
    for args in ([1.0, 2.0, 3.0], [0.0, 2.0, 3.0], [-0.5, 2.0, 3.0], [0.0, np.inf, 3.0]):
        assert_same_values(f, F, args)
        assert_same_jacobians(f, F, args)


# ------------------------------------------------------------------ models built in CasADi

def robot_arm(links: int = 3):
    """Planar arm: joint angles q, link lengths L -> tip position p (2,) and its Jacobian dp/dq (2 x links)."""
    q, L = ca.SX.sym("q", links), ca.SX.sym("L", links)
    angle, px, py = 0, 0, 0
    for i in range(links):
        angle = angle + q[i]
        px, py = px + L[i] * ca.cos(angle), py + L[i] * ca.sin(angle)
    p = ca.vertcat(px, py)
    return ca.Function("arm", [q, L], [p, ca.jacobian(p, q)], ["q", "L"], ["p", "J"])


def test_robot_arm_values_and_derivatives():
    f = robot_arm(3)
    F = from_casadi(f)
    assert F.input_shapes == ((3,), (3,)) and F.output_shapes == ((2,), (2, 3))
    rng = np.random.default_rng(0)
    for _ in range(10):
        q, L = rng.uniform(-np.pi, np.pi, 3), rng.uniform(0.5, 2.0, 3)
        assert_same_values(f, F, [q, L])
        assert_same_jacobians(f, F, [q, L])  # includes d J / d q, the second derivatives
    # closed form: stretched straight along x, the tip is at sum(L), dp_y/dq_0 = sum(L)
    p, J = F(np.zeros(3), np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(p, [6.0, 0.0])
    np.testing.assert_allclose(J[1], [6.0, 5.0, 3.0])


def test_robot_arm_hessian_matches_casadi():
    f = robot_arm(2)
    F = from_casadi(f)
    q_ca, L_ca = f.sx_in(0), f.sx_in(1)
    tip_x = f(q_ca, L_ca)[0][0]
    H_ca = ca.Function("H", [q_ca, L_ca], [ca.hessian(tip_x, q_ca)[0]])
    H = sg.hessian(F.outputs[0][0], F.inputs[0])
    H_sg = sg.Function("H", list(F.inputs), [H])
    q, L = np.array([0.3, -1.1]), np.array([1.5, 0.7])
    np.testing.assert_allclose(H_sg(q, L).toarray(), np.array(H_ca(q, L).full()), rtol=1e-12, atol=1e-14)


def luksan_casadi(n: int):
    """The Luksan model (symgraph.models) in CasADi SX: f, g, the gradient of f and the sparse Jacobian of g."""
    x = ca.SX.sym("x", n)
    a, b = x[:-1], x[1:]
    f = ca.sum1(100 * (a ** 2 - b) ** 2 + (a - 1) ** 2)
    u, v, w = x[:-2], x[1:-1], x[2:]
    g = 3 * v ** 3 + 2 * w - 5 + ca.sin(v - w) * ca.sin(v + w) + 4 * v - u * ca.exp(u - v) - 3
    return ca.Function("luksan", [x], [f, g, ca.gradient(f, x), ca.jacobian(g, x)],
                       ["x"], ["f", "g", "grad_f", "jac_g"])


def test_luksan_values_match_casadi_and_symgraph_model():
    n = 30
    f = luksan_casadi(n)
    F = from_casadi(f)
    assert F.output_shapes == ((), (n - 2,), (n,), (n - 2, n))
    rows, cols = f.sparsity_out(3).get_triplet()
    assert F.output_sparsity[3][0].tolist() == list(rows) and F.output_sparsity[3][1].tolist() == list(cols)
    rng = np.random.default_rng(1)
    x0 = rng.uniform(-1.0, 1.0, n)
    assert_same_values(f, F, [x0])
    jac = F(x0)[3]
    assert jac.format == "csc" and jac.nnz == f.sparsity_out(3).nnz() == 3 * (n - 2)
    # against symgraph's own Luksan model
    xs, fs, gs = sg.models.luksan(n)
    own = sg.Function("own", [xs], [fs, gs])(x0)
    np.testing.assert_allclose(F(x0)[0], own[0], rtol=1e-13)
    np.testing.assert_allclose(F(x0)[1], own[1], rtol=1e-13, atol=1e-13)


def test_luksan_derivatives_match_casadi():
    n = 12
    f = luksan_casadi(n)
    F = from_casadi(f)
    x0 = np.random.default_rng(2).uniform(-1.0, 1.0, n)
    assert_same_jacobians(f, F, [x0])  # includes second derivatives (d grad_f / dx, d jac_g / dx)
    x = F.inputs[0]
    grad = sg.Function("g", [x], [sg.grad(F.outputs[0].item(), x)])(x0)
    np.testing.assert_allclose(grad, F(x0)[2], rtol=1e-12)
    Jg = sg.jacobian(F.outputs[1], x)
    Jg_values = sg.Function("J", [x], [Jg])(x0)
    assert Jg_values.nnz == f.sparsity_out(3).nnz()  # the same sparsity as CasADi's jacobian
    np.testing.assert_allclose(Jg_values.toarray(), F(x0)[3].toarray(), rtol=1e-12, atol=1e-13)
    H_ca = ca.Function("H", [f.sx_in(0)], [ca.hessian(f(f.sx_in(0))[0], f.sx_in(0))[0]])
    H = sg.Function("H", [x], [sg.hessian(F.outputs[0].item(), x)])(x0)
    np.testing.assert_allclose(H.toarray(), np.array(H_ca(x0).full()), rtol=1e-12, atol=1e-12)


def rk4_casadi(steps: int = 20, dt: float = 0.05):
    """A damped, driven pendulum integrated by unrolled RK4 in CasADi SX: (x0, p) -> x(T)."""
    x0, p = ca.SX.sym("x0", 2), ca.SX.sym("p", 2)

    def rhs(s):
        return ca.vertcat(s[1], -ca.sin(s[0]) - p[0] * s[1] + p[1])

    s = x0
    for _ in range(steps):
        k1 = rhs(s)
        k2 = rhs(s + dt / 2 * k1)
        k3 = rhs(s + dt / 2 * k2)
        k4 = rhs(s + dt * k3)
        s = s + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return ca.Function("rk4", [x0, p], [s], ["x0", "p"], ["xf"])


@functools.lru_cache(maxsize=None)
def rk4_pair():
    f = rk4_casadi()
    return f, from_casadi(f)


@given(st.lists(st.floats(-2.0, 2.0), min_size=4, max_size=4))
def test_rk4_values_and_derivatives(point):
    f, F = rk4_pair()
    args = [np.array(point[:2]), np.array(point[2:])]
    assert_same_values(f, F, args)
    assert_same_jacobians(f, F, args)


def test_rk4_against_closed_forms():
    F = rk4_pair()[1]
    np.testing.assert_array_equal(F(np.zeros(2), np.array([0.3, 0.0])), [0.0, 0.0])  # at rest stays at rest
    # a tiny constant torque u, no damping: x'' = -sin x + u ~ -x + u, so x(t) = u (1 - cos t), x'(t) = u sin t
    u, T = 1e-6, 1.0
    np.testing.assert_allclose(F(np.zeros(2), np.array([0.0, u])), [u * (1 - np.cos(T)), u * np.sin(T)],
                               rtol=1e-6)


# ------------------------------------------------------------------ shapes and sparsity

def test_dense_matrix_input_and_output_keep_their_entries():
    A, v = ca.SX.sym("A", 2, 3), ca.SX.sym("v", 1, 3)
    f = ca.Function("mat", [A, v], [A.T * 2, A @ v.T, v * 3], ["A", "v"], ["At2", "Av", "v3"])
    F = from_casadi(f)
    assert F.input_shapes == ((2, 3), (1, 3)) and F.output_shapes == ((3, 2), (2,), (1, 3))
    A0, v0 = np.arange(6.0).reshape(2, 3), np.array([[1.0, -2.0, 0.5]])
    At2, Av, v3 = F(A0, v0)
    np.testing.assert_array_equal(At2, 2 * A0.T)
    np.testing.assert_allclose(Av, A0 @ v0.ravel())
    np.testing.assert_array_equal(v3, 3 * v0)
    assert_same_values(f, F, [A0, v0])
    assert_same_jacobians(f, F, [A0, v0])


def test_sparse_input_is_the_vector_of_its_nonzeros():
    S = ca.SX.sym("S", ca.Sparsity.lower(3))
    f = ca.Function("low", [S], [ca.mtimes(S, S.T), ca.sum1(ca.sum2(S))], ["S"], ["SSt", "total"])
    F = from_casadi(f)
    assert F.input_shapes == ((6,),)
    assert F.output_shapes[0] == (3, 3) and F.output_sparsity[0] is None  # S S^T of a lower factor is dense
    L = np.tril(np.arange(1.0, 10.0).reshape(3, 3))
    nz = L.reshape(-1, order="F")[vec_index(f.sparsity_in(0))]
    np.testing.assert_array_equal(nz, ca.project(ca.DM(L), ca.Sparsity.lower(3)).nonzeros())
    SSt, total = F(nz)
    np.testing.assert_allclose(SSt, L @ L.T)
    assert float(total) == L.sum()
    assert_same_jacobians(f, F, [L], [nz])


def test_sparse_output_keeps_casadi_pattern_and_order():
    x = ca.SX.sym("x", 3)
    out = ca.SX(ca.Sparsity.triplet(3, 3, [2, 0, 1], [0, 1, 2]))
    out[2, 0], out[0, 1], out[1, 2] = x[0] * x[1], ca.sin(x[2]), 5.0
    f = ca.Function("sp", [x], [out, ca.SX(2, 2)], ["x"], ["M", "Z"])
    F = from_casadi(f)
    M, Z = F(np.array([2.0, 3.0, 0.5]))
    expected = np.zeros((3, 3))
    expected[2, 0], expected[0, 1], expected[1, 2] = 6.0, np.sin(0.5), 5.0
    np.testing.assert_allclose(M.toarray(), expected)
    assert M.nnz == 3 and Z.nnz == 0 and Z.shape == (2, 2)
    assert_same_values(f, F, [np.array([2.0, 3.0, 0.5])])


def test_scalars_empty_and_constant_outputs():
    x, e = ca.SX.sym("x"), ca.SX.sym("e", 0, 0)
    f = ca.Function("c", [x, e], [ca.DM([1.0, 2.0]), x, ca.SX.zeros(2)], ["x", "e"], ["k", "same", "zeros"])
    F = from_casadi(f, name="renamed")
    assert F.name == "renamed" and F.input_shapes == ((), (0, 0))
    k, same, zeros = F(4.0, np.zeros((0, 0)))
    np.testing.assert_array_equal(k, [1.0, 2.0])
    assert float(same) == 4.0
    np.testing.assert_array_equal(zeros, [0.0, 0.0])


# ------------------------------------------------------------------ backends

def test_compiled_c_matches_vm_on_imported_functions():
    for f, args in ((robot_arm(3), [np.array([0.1, 0.2, -0.3]), np.array([1.0, 0.5, 0.25])]),
                    (luksan_casadi(10), [np.linspace(-1.0, 1.0, 10)]),
                    (rk4_casadi(5), [np.array([0.4, -0.2]), np.array([0.1, 0.3])])):
        F = from_casadi(f)
        C = F.compile()
        vm = symgraph_values(F, args)
        out = C(*args)
        out = out if F.n_out > 1 else (out,)
        for a, b in zip(vm, out):
            np.testing.assert_allclose(b.toarray() if hasattr(b, "toarray") else b, a, rtol=1e-13, atol=1e-15)


# ------------------------------------------------------------------ random programs

# Smooth away from ties of fmin/fmax (distinct inputs; hypot and atan2 kept off the origin): at a kink the
# derivative conventions differ (CasADi splits a tie of fmin 1/2 : 1/2, symgraph gives it to the first operand).
# smooth ops only: fmin/fmax differ from CasADi at ties by design (CasADi halves the derivative),
# and a random program ties them easily (fmin(x, x + x) at x = 0); they are checked per op above
SMOOTH = [lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: ca.sin(a),
          lambda a, b: ca.cos(b), lambda a, b: ca.tanh(a), lambda a, b: ca.atan(a), lambda a, b: ca.erf(b),
          lambda a, b: ca.hypot(a, 1 + b * b), lambda a, b: ca.atan2(a, 2 + ca.cos(b)),
          lambda a, b: -a, lambda a, b: 2 * a, lambda a, b: a * a,
          lambda a, b: ca.exp(ca.sin(a)), lambda a, b: ca.sqrt(1 + b * b)]


@given(st.lists(st.tuples(st.integers(0, len(SMOOTH) - 1), st.integers(0, 99), st.integers(0, 99)),
                min_size=1, max_size=15),
       st.lists(st.floats(-2.0, 2.0), min_size=3, max_size=3))
def test_random_programs_match_casadi(program, point):
    assume(len(set(point)) == 3)
    x = ca.SX.sym("x", 3)
    values = [x[0], x[1], x[2]]
    for op, i, j in program:
        values.append(SMOOTH[op](values[i % len(values)], values[j % len(values)]))
    f = ca.Function("rand", [x], [ca.vertcat(values[-1], values[-2])], ["x"], ["y"])
    F = from_casadi(f)
    assert_same_values(f, F, [np.array(point)])
    assert_same_jacobians(f, F, [np.array(point)])


# ------------------------------------------------------------------ bad input

def test_mx_function_is_refused_with_expand_hint():
    x = ca.MX.sym("x", 2)
    f = ca.Function("m", [x], [ca.sin(x) * 2])
    with pytest.raises(InvalidInputError, match=r"MXFunction.*f\.expand\(\)"):
        from_casadi(f)
    F = from_casadi(f.expand())  # the advice works
    assert_same_values(f, F, [np.array([0.3, 0.4])])


@pytest.mark.parametrize("op_name, build", [("OP_COPYSIGN", lambda x, y: ca.copysign(x, y)),
                                            ("OP_REMAINDER", lambda x, y: ca.remainder(x, y))])
def test_unsupported_op_is_named(op_name, build):
    x, y = ca.SX.sym("x"), ca.SX.sym("y")
    f = ca.Function("bad", [x, y], [ca.sin(x) + build(x, y)])
    with pytest.raises(UnknownOpError, match=op_name):
        from_casadi(f)


def test_call_of_non_inlined_function_is_refused():
    x = ca.SX.sym("x", 2)
    g = ca.Function("g", [x], [ca.sin(x)], {"never_inline": True})
    f = ca.Function("h", [x], [g(x) * 2])
    with pytest.raises(UnknownOpError, match="OP_CALL"):
        from_casadi(f)


def test_free_variables_are_refused():
    x, y = ca.SX.sym("x"), ca.SX.sym("y")
    f = ca.Function("free", [x], [x * y], {"allow_free": True})
    with pytest.raises(InvalidInputError, match="free variables"):
        from_casadi(f)


@pytest.mark.parametrize("bad", [None, 3.0, "f", "symgraph", ca.SX.sym("x")])
def test_not_a_casadi_function(bad):
    if bad == "symgraph":
        t = sg.symbols("t")
        bad = sg.Function("s", [t], [t])
    with pytest.raises(InvalidInputError, match="casadi.Function"):
        from_casadi(bad)


def test_missing_casadi_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "casadi", None)  # import casadi now raises ImportError
    with pytest.raises(MissingToolError, match=r"pip install 'symgraph\[casadi\]'"):
        from_casadi(object())


def test_symgraph_imports_without_casadi():
    code = ("import sys; sys.modules['casadi'] = None\n"
            "import symgraph, symgraph.interop.casadi as m\n"
            "try:\n    m.from_casadi(None)\nexcept symgraph.SymgraphError as e:\n    print(type(e).__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "MissingToolError"
