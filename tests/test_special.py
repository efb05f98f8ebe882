"""The special-function ops lgamma, digamma, polygamma, erfinv, and sg.multigammaln.

Oracles: mpmath at 30 digits (accuracy in ulps), scipy.special (an
independent double implementation), the other backend (compiled C vs the
numpy VM, identical NaN/inf/signed zero), complex step and finite
differences (derivatives), recurrence identities (property tests), SymPy's
own evaluation, and scipy.stats.wishart (the Wishart log density).
"""

from __future__ import annotations

import math
import shutil
import subprocess

import mpmath
import numpy as np
import pytest
import scipy.special as sps
import sympy as sp
from hypothesis import given, strategies as st

import symgraph as sg

INF, NAN = math.inf, math.nan
H = 1e-30  # complex step


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "symgraph-cache"))


def ulps(got, want) -> np.ndarray:
    """|got - want| in units of the last place of ``want`` (0 where both are the same NaN/inf/zero)."""
    got, want = np.broadcast_arrays(np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64))
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    with np.errstate(all="ignore"):
        spacing = np.spacing(np.abs(want))
        return np.where(same, 0.0, np.abs(got - want) / np.where(spacing > 0, spacing, 5e-324))


def identical(a, b) -> np.ndarray:
    """Bitwise equal, all NaNs equal (so +0.0 != -0.0)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return (np.isnan(a) & np.isnan(b)) | (a.view(np.int64) == b.view(np.int64))


def mp_values(fn, xs, *head) -> np.ndarray:
    with mpmath.workdps(30):
        return np.array([float(fn(*head, mpmath.mpf(float(x)))) for x in xs])


RNG = np.random.default_rng(20240515)
NEGATIVE = np.concatenate([RNG.uniform(-30, -0.01, 300), -np.arange(1, 30) + 0.5,
                           -np.arange(1, 6) + 1e-9, -np.arange(1, 6) - 1e-9, [-1e5 - 0.25, -123456.75]])
POSITIVE = np.concatenate([RNG.uniform(0.01, 3.5, 300), RNG.uniform(3.5, 50, 100), 10 ** RNG.uniform(-300, -2, 40),
                           10 ** RNG.uniform(2, 300, 40), 1 + 10.0 ** -np.arange(4, 16), 2 - 10.0 ** -np.arange(4, 16),
                           [1.4616321449683622, 1.0, 2.0, 0.5, 2.5, 10.0, 9.999999999999998]])
UNIT = np.concatenate([RNG.uniform(-1, 1, 400), 1 - 10 ** RNG.uniform(-16, -1, 80), -1 + 10 ** RNG.uniform(-16, -1, 80),
                       10 ** RNG.uniform(-310, -1, 40), [0.5, -0.5, 0.9999999999999999, 5e-324]])


def _unary(name: str) -> sg.Function:
    x = sg.symbols("x")
    return sg.Function(name, [x], [sg.builder(name)(x)])


# ----------------------------------------------------------- VM accuracy
def test_lgamma_vm_is_accurate_on_the_positive_axis_and_near_its_zeros():
    want = mp_values(lambda v: mpmath.loggamma(v).real, POSITIVE)
    got = _unary("lgamma").batch(POSITIVE)
    assert ulps(got, want).max() <= 4
    # gammaln itself is far off near 1 and 2 (what the VM's series replaces there)
    near = POSITIVE[(np.abs(POSITIVE - 1) < 1e-3) | (np.abs(POSITIVE - 2) < 1e-3)]
    assert ulps(sps.gammaln(near), mp_values(lambda v: mpmath.loggamma(v).real, near)).max() > 1000
    assert ulps(_unary("lgamma").batch(near), mp_values(lambda v: mpmath.loggamma(v).real, near)).max() <= 2


def test_lgamma_vm_on_the_negative_axis_agrees_with_gammaln():
    """Below 0 the VM is gammaln (reflection): within 3 ulps of the reflected term lgamma(1 - x)."""
    want = mp_values(lambda v: mpmath.loggamma(v).real, NEGATIVE)
    got = _unary("lgamma").batch(NEGATIVE)
    # within 3 ulps of the largest of the terms log(pi/|sin(pi x)|), lgamma(1 - x) that cancel
    scale = np.abs(want) + np.abs(mp_values(lambda v: mpmath.loggamma(v).real, 1 - NEGATIVE)) + 1
    assert (np.abs(got - want) <= 3 * np.spacing(scale)).all()
    tiny = np.array([-1e-300, -5e-324, -1e-20])
    assert ulps(_unary("lgamma").batch(tiny), -np.log(-tiny)).max() <= 1  # gammaln said inf for -5e-324


def test_digamma_vm_against_mpmath_and_scipy():
    f = _unary("digamma")
    got = f.batch(POSITIVE)
    assert ulps(got, mp_values(mpmath.digamma, POSITIVE)).max() <= 4
    assert ulps(got, sps.psi(POSITIVE)).max() <= 6
    # below 0 (reflection): within 4 ulps of the terms psi(1 - x) and pi cot(pi x) that cancel
    got = f.batch(NEGATIVE)
    scale = np.abs(sps.psi(1 - NEGATIVE)) + np.abs(np.pi / np.tan(np.pi * NEGATIVE))
    assert (np.abs(got - mp_values(mpmath.digamma, NEGATIVE)) <= 4 * np.spacing(scale)).all()
    away = np.abs(NEGATIVE - np.round(NEGATIVE)) > 0.05  # scipy loses digits near the poles
    assert (np.abs(got - sps.psi(NEGATIVE)) <= 8 * np.spacing(scale))[away].all()
    assert ulps(f(-0.999999999), sps.psi(-0.999999999)) > 1e6  # (scipy: -999999925.5, not -1000000027.9)


@pytest.mark.parametrize("n", [1, 2, 3, 6, 25, 100])
def test_polygamma_vm_against_mpmath_and_scipy(n):
    x = sg.symbols("x")
    F = sg.Function("pg", [x], [sg.polygamma(float(n), x)])
    pts = np.concatenate([POSITIVE[::3], NEGATIVE[::3]])
    got = F.batch(pts)
    want = mp_values(mpmath.polygamma, pts, n)
    bound = 8 if n < 25 else 16  # n! as a running product of doubles
    if n % 2:  # odd orders: no zeros, relative accuracy everywhere
        assert ulps(got, want).max() <= bound
    else:  # even orders have zeros below 0: there within a few ulps of the terms that cancel
        pos = pts > 0
        assert ulps(got[pos], want[pos]).max() <= bound
        t = pts[~pos] - np.round(pts[~pos])
        with np.errstate(all="ignore"):
            scale = math.factorial(n) * (np.abs(t) ** -(n + 1.0) + 2 * sps.zeta(n + 1, 0.5))
            ok = np.abs(got[~pos] - want[~pos]) <= 8 * np.spacing(scale)
        assert (ok | identical(got[~pos], want[~pos])).all()
    finite = np.isfinite(want) & (np.abs(want) < 1e300) & (pts > 0)  # scipy: no underflow scaling, poles differ
    assert ulps(got[finite], sps.polygamma(n, pts[finite])).max() <= 4 * bound


def test_polygamma_large_arguments_do_not_underflow_early():
    """n! zeta(n+1, x) is scaled: (n-1)!/x^n is representable although x^-n alone underflows."""
    x = sg.symbols("x")
    F = sg.Function("pg", [x], [sg.polygamma(100.0, x)])
    pts = np.array([1e4, 3e4, 5e4])
    want = mp_values(mpmath.polygamma, pts, 100)
    assert (want != 0).all() and ulps(F.batch(pts), want).max() <= 16
    assert (sps.polygamma(100, pts) == 0).any()  # scipy's product underflows to 0 here


def test_erfinv_vm_against_mpmath_and_scipy():
    got = _unary("erfinv").batch(UNIT)
    assert ulps(got, mp_values(mpmath.erfinv, UNIT)).max() <= 2
    assert ulps(got, sps.erfinv(UNIT)).max() == 0  # the VM is scipy's, with -0.0 kept


# --------------------------------------------------------- special values
SPECIALS = [
    # (op, operands, value): poles, infinities, nan, signed zeros
    ("lgamma", (0.0,), INF), ("lgamma", (-0.0,), INF), ("lgamma", (-3.0,), INF), ("lgamma", (INF,), INF),
    ("lgamma", (-INF,), INF), ("lgamma", (NAN,), NAN), ("lgamma", (1.0,), 0.0), ("lgamma", (2.0,), 0.0),
    ("lgamma", (-1e300,), INF),
    ("digamma", (0.0,), -INF), ("digamma", (-0.0,), INF), ("digamma", (-1.0,), NAN), ("digamma", (-1e300,), NAN),
    ("digamma", (INF,), INF), ("digamma", (-INF,), NAN), ("digamma", (NAN,), NAN),
    ("digamma", (-4503599627370496.0,), NAN), ("digamma", (-0.5,), 0.03648997397857652),
    ("polygamma", (1.0, 0.0), INF), ("polygamma", (2.0, 0.0), -INF), ("polygamma", (2.0, -0.0), INF),
    ("polygamma", (1.0, -2.0), INF), ("polygamma", (2.0, -2.0), NAN), ("polygamma", (3.0, -7.0), INF),
    ("polygamma", (1.0, INF), 0.0), ("polygamma", (2.0, INF), -0.0), ("polygamma", (1.0, -INF), NAN),
    ("polygamma", (0.5, 1.0), NAN), ("polygamma", (-1.0, 1.0), NAN), ("polygamma", (101.0, 1.0), NAN),
    ("polygamma", (NAN, 1.0), NAN), ("polygamma", (1.0, NAN), NAN), ("polygamma", (INF, 1.0), NAN),
    ("polygamma", (0.0, 0.0), -INF), ("polygamma", (-0.0, -0.0), INF), ("polygamma", (3.0, 1e300), 0.0),
    ("polygamma", (2.0, 1e300), -0.0), ("polygamma", (1.0, -1e-300), INF), ("polygamma", (2.0, -1e-300), INF),
    ("erfinv", (0.0,), 0.0), ("erfinv", (-0.0,), -0.0), ("erfinv", (1.0,), INF), ("erfinv", (-1.0,), -INF),
    ("erfinv", (1.0000000000000002,), NAN), ("erfinv", (-INF,), NAN), ("erfinv", (NAN,), NAN),
    ("erfinv", (5e-324,), 5e-324),
]


def _specials_function():
    v = sg.symbols("v", 2)
    outs = [sg.apply(sg.OPS[name], *v[: len(args)]) for name, args, _ in SPECIALS]
    return v, outs


def test_special_values_in_the_vm_and_constant_folding():
    for name, args, value in SPECIALS:
        v = sg.symbols("v", len(args))
        got = sg.Function("f", [v], [sg.apply(sg.OPS[name], *v)])(np.array(args))
        assert identical(got, value), (name, args, got, value)
        folded = sg.apply(sg.OPS[name], *args)
        assert folded.is_const and identical(folded.value, value), (name, args, folded)


def _compiled_pair(compiler=None):
    """One Function of every op over many points, compiled once: (VM values, C values, labels)."""
    x = sg.symbols("x")
    ops = [("lgamma", None), ("digamma", None), ("erfinv", None)] + [("polygamma", float(n)) for n in (0, 1, 2, 3, 7)]
    outs = [sg.apply(sg.OPS[name], x) if n is None else sg.apply(sg.OPS[name], n, x) for name, n in ops]
    F = sg.Function("special", [x], [np.array(outs, dtype=object)])
    C = F.compile(compiler=compiler)
    pts = np.concatenate([POSITIVE, NEGATIVE, UNIT, [0.0, -0.0, INF, -INF, NAN, -1e300, 1e300, -4503599627370496.0,
                                                     -1e-300, 1e-300, -3.0, -2.5, -0.49999999999999994]])
    return F.batch(pts), C.batch(pts), ops, pts


@pytest.mark.parametrize("compiler", ["gcc", "tcc"])
@pytest.mark.filterwarnings("ignore:.*encountered:RuntimeWarning")  # inf - inf in the comparisons
def test_compiled_c_agrees_with_the_vm(compiler):
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} not installed")
    vm, c, ops, pts = _compiled_pair(compiler)
    special = ~np.isfinite(vm) | ~np.isfinite(c) | (vm == 0) | (c == 0)
    assert identical(vm[special], c[special]).all(), "NaN/inf/signed zero differ"
    for k, (name, n) in enumerate(ops):
        label = name if n is None else f"{name}({n:g})"
        u = ulps(c[:, k], vm[:, k])
        if name == "lgamma":  # C is libm's lgamma; the VM's gammaln resolves zeros below 0 only absolutely
            neg = pts < 0
            assert u[~neg].max() <= 4, label
            scale = np.abs(sps.gammaln(1 - pts[neg])) + np.abs(vm[neg, k]) + 1
            ok = np.abs(c[neg, k] - vm[neg, k]) <= 3 * np.spacing(scale)
            assert (ok | identical(c[neg, k], vm[neg, k])).all(), label
        elif n == 2.0:  # even order: zeros below 0; there compare with the cancelling terms
            neg = pts < 0
            assert u[~neg].max() <= 4, label
            t = pts[neg] - np.round(pts[neg])
            scale = np.abs(vm[neg, k]) + 2 * (np.abs(t) ** -3.0 + 2 * sps.zeta(3, 0.5))
            ok = np.abs(c[neg, k] - vm[neg, k]) <= 4 * np.spacing(scale)
            assert (ok | identical(c[neg, k], vm[neg, k])).all(), label
        else:
            assert u.max() <= 4, (label, u.max(), pts[np.argmax(u)])


def test_generated_c_is_strict_c99_with_helpers_emitted_once():
    """digamma and polygamma both in one file: polygamma's copy of sg_digamma is skipped by its guard."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    x = sg.symbols("x")
    F = sg.Function("both", [x], [sg.digamma(x), sg.polygamma(2.0, x), sg.erfinv(x), sg.lgamma(x)])
    src = F.c_code()
    assert src.count("static double sg_digamma(") == 2 and src.count("#ifndef SG_DIGAMMA_DEFINED") == 2
    only_sin = sg.Function("s", [x], [sg.sin(x)]).c_code()
    assert "sg_digamma" not in only_sin and "sg_erfinv" not in only_sin
    run = subprocess.run(["gcc", "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-Wno-unused-function",
                          "-fsyntax-only", "-x", "c", "-"], input=src, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


# ----------------------------------------------------------- derivatives
def _complex_step(F, x0: np.ndarray) -> np.ndarray:
    out = []
    for k in range(len(x0)):
        z = x0.astype(complex)
        z[k] += H * 1j
        out.append(np.imag(F(z)) / H)
    return np.array(out).T


CASES = [  # (builder, points): negative non-integers, near poles, large arguments
    (sg.lgamma, [-2.5, -0.3, -3.9999, 1e-6, 0.7, 1.0, 2.0, 4.5, 150.0]),
    (sg.digamma, [-2.5, -0.3, -1.0001, 0.2, 1.4616321449683622, 7.5, 80.0]),
    (lambda x: sg.polygamma(2.0, x), [-2.7, -0.4, 0.3, 3.3, 25.0]),
    (sg.erfinv, [-0.999, -0.3, 1e-8, 0.5, 0.9999999]),
]


@pytest.mark.parametrize("k", range(len(CASES)))
def test_first_and_second_derivatives_match_complex_step(k):
    build, pts = CASES[k]
    x = sg.symbols("x", 1)
    f = build(x[0])
    F = sg.Function("f", [x], [f])
    G = sg.Function("g", [x], [sg.grad(f, x)])
    Hs = sg.Function("h", [x], [sg.hessian(f, x).to_dense()])
    for p in pts:
        x0 = np.array([p])
        g = G(x0)
        np.testing.assert_allclose(g, _complex_step(F, x0), rtol=1e-13, err_msg=f"grad at {p}")
        np.testing.assert_allclose(Hs(x0).reshape(1), _complex_step(G, x0).reshape(1), rtol=1e-12,
                                   err_msg=f"hessian at {p}")
        # and against a central difference of the gradient, with a step well inside the distance to
        # the nearest pole (or to +-1 for erfinv): ~1e-8 accurate
        edge = 1 - abs(p) if build is sg.erfinv else (abs(p - round(p)) if p < 0.5 else p)
        step = 1e-4 * min(1.0, edge) * max(1.0, abs(p))
        fd = (G(x0 + step) - G(x0 - step)) / (2 * step)
        np.testing.assert_allclose(Hs(x0).reshape(1), fd.reshape(1), rtol=2e-5, err_msg=f"fd hessian at {p}")


def test_derivatives_are_the_next_order():
    x = sg.symbols("x")
    assert sg.grad(sg.lgamma(x), [x])[0] is sg.digamma(x)
    assert sg.grad(sg.digamma(x), [x])[0] is sg.polygamma(1.0, x) is sg.trigamma(x)
    assert sg.grad(sg.polygamma(3.0, x), [x])[0] is sg.polygamma(4.0, x)
    third = sg.grad(sg.grad(sg.grad(sg.lgamma(x), [x])[0], [x])[0], [x])[0]
    assert third is sg.polygamma(2.0, x)
    assert float(sg.Function("t", [x], [third])(1.0)) == pytest.approx(-2 * float(mpmath.zeta(3)), rel=1e-15)


def test_complex_step_convention_is_first_order_and_keeps_the_real_value():
    """f(x + ih) = f(x) + i h f'(x): the real part is the real VM value bitwise, at negative x too."""
    for name, deriv in (("lgamma", sps.psi), ("digamma", lambda v: sps.polygamma(1, v)),
                        ("erfinv", lambda v: np.sqrt(np.pi) / 2 * np.exp(sps.erfinv(v) ** 2))):
        pts = np.array([-2.5, -0.3, 0.4, 3.7]) if name != "erfinv" else np.array([-0.9, -0.3, 0.4, 0.99])
        F = _unary(name)
        z = F.batch(pts + 1e-20j)
        assert identical(z.real, F.batch(pts)).all(), name
        np.testing.assert_allclose(z.imag / 1e-20, deriv(pts), rtol=1e-13, err_msg=name)
    # at a pole the imaginary part of an unperturbed input stays 0, not 0 * inf
    assert _unary("lgamma")(np.complex128(-2.0)).imag == 0.0


# ---------------------------------------------------- identities (hypothesis)
@given(st.floats(-40, 40, allow_nan=False).filter(lambda v: v != round(v) and abs(v - round(v)) > 1e-6),
       st.integers(1, 4))
def test_recurrences_hold(x, n):
    """lgamma(x+1) - lgamma(x) = log|x|, psi(x+1) - psi(x) = 1/x, psi_n(x+1) - psi_n(x) = (-1)^n n!/x^(n+1)."""
    x = (x + 1.0) - 1.0  # so that x + 1 is exact
    v = sg.symbols("v")
    F = sg.Function("r", [v], [sg.lgamma(v), sg.digamma(v), sg.polygamma(float(n), v)])
    (l0, d0, p0), (l1, d1, p1) = F(x), F(x + 1.0)
    x1 = x
    scale = abs(l0) + abs(l1) + abs(math.log(abs(x1))) + 1
    assert abs((l1 - l0) - math.log(abs(x1))) <= 1e-13 * scale
    assert abs((d1 - d0) - 1 / x1) <= 1e-13 * (abs(d0) + abs(d1) + abs(1 / x1) + 1)
    term = (-1) ** n * math.factorial(n) / x1 ** (n + 1)
    assert abs((p1 - p0) - term) <= 1e-12 * (abs(p0) + abs(p1) + abs(term))


@given(st.floats(-1, 1, exclude_min=True, exclude_max=True))
def test_erf_of_erfinv_is_the_identity(y):
    v = sg.symbols("v")
    F = sg.Function("e", [v], [sg.erf(sg.erfinv(v)), sg.erfc(sg.erfinv(v))])
    e, ec = F(y)
    assert abs(e - y) <= 2 * np.spacing(abs(y)) + 1e-300 or abs(ec - (1 - y)) <= 4 * np.spacing(1 - y)


# ------------------------------------------------------------------ SymPy
def test_sympy_forms_and_round_trip():
    x = sg.symbols("x")
    for e, want in ((sg.lgamma(x), "re(loggamma(x))"), (sg.digamma(x), "polygamma(0, x)"),
                    (sg.polygamma(2.0, x), "polygamma(2, x)"), (sg.erfinv(x), "erfinv(x)")):
        mapping: dict = {}
        s = sg.to_sympy(e, mapping)
        assert str(s) == want
        assert sg.from_sympy(s, {v: k for k, v in mapping.items()}) is e
        for p in (-2.5, 0.3) if e.op.name != "erfinv" else (-0.7, 0.3):
            value = float(sp.N(s.subs(mapping[x], sp.Rational(p)), 30))
            assert float(sg.Function("f", [x], [e])(p)) == pytest.approx(value, rel=1e-13)
    y = sp.Symbol("y", real=True)
    assert sg.from_sympy(sp.digamma(y), {y: x}) is sg.digamma(x)  # SymPy spells it polygamma(0, y)
    assert sg.from_sympy(sp.loggamma(y), {y: x}) is sg.lgamma(x)
    assert sg.from_sympy(sp.diff(sp.loggamma(y), y, 2), {y: x}) is sg.trigamma(x)
    with pytest.raises(sg.SympyConversionError, match="re"):
        sg.from_sympy(sp.re(sp.Symbol("z")), {"z": x})  # only re() of (log)gamma functions
    assert sg.to_sympy(sg.polygamma(0.5, x)) is sp.nan  # not an order: nan, as the op


# ------------------------------------------------------------ multigammaln
@pytest.mark.parametrize("d", [1, 2, 3, 5, 8])
def test_multigammaln_matches_scipy(d):
    a = sg.symbols("a", 4)
    F = sg.Function("m", [a], [sg.multigammaln(a, d)])
    a0 = np.array([0.5 * d + 0.01, 0.5 * d + 1.3, 7.25, 120.0])
    np.testing.assert_allclose(F(a0), [sps.multigammaln(v, d) for v in a0], rtol=1e-14)
    g = sg.Function("g", [a], [sg.grad(sg.multigammaln(a, d).sum(), a)])(a0)
    np.testing.assert_allclose(g, [sum(sps.psi(v - j / 2) for j in range(d)) for v in a0], rtol=1e-13)


def test_multigammaln_arguments():
    assert sg.multigammaln(3.5, 4).value == pytest.approx(sps.multigammaln(3.5, 4), rel=1e-15)
    assert str(sg.multigammaln(sg.symbols("a"), 1)) == "lgamma(a)"
    assert sg.multigammaln([2.0, 3.0], 2).shape == (2,)
    for bad in (0, -1, 2.5, "3", True, None):
        with pytest.raises(sg.InvalidInputError, match="d must be an integer"):
            sg.multigammaln(sg.symbols("a"), bad)
    with pytest.raises(sg.InvalidInputError, match=r"\(d - 1\)/2"):
        sg.multigammaln(1.0, 3)  # Gamma_3 needs a > 1, as scipy.special.multigammaln
    with pytest.raises(ValueError):
        sps.multigammaln(1.0, 3)


def test_gmm_wishart_log_prior_term():
    """log Wishart(Lambda | W, nu) of a GMM precision matrix (Lambda = L L^T, L lower triangular),
    with nu and L symbolic: value vs scipy.stats.wishart, gradient (digamma through multigammaln)
    vs complex step, and compiled C vs the VM."""
    from scipy.stats import wishart

    D = 3
    W = np.array([[2.0, 0.3, 0.1], [0.3, 1.5, -0.2], [0.1, -0.2, 1.0]])
    Winv = np.linalg.inv(W)
    nu = sg.symbols("nu")
    l_entries = sg.symbols("l", D * (D + 1) // 2)
    L = np.zeros((D, D), dtype=object)
    L[np.tril_indices(D)] = l_entries
    L = sg.as_expr_array(L)
    Lam = L @ L.T
    logdet = 2 * sum(sg.log(L[i, i]) for i in range(D))
    logp = ((nu - D - 1) / 2 * logdet - np.trace(Winv @ Lam) / 2 - nu * D / 2 * math.log(2)
            - nu / 2 * math.log(np.linalg.det(W)) - sg.multigammaln(nu / 2, D))
    x = np.concatenate([[nu], l_entries])
    F = sg.Function("wishart", [x], [logp, sg.grad(logp, x)])
    l0 = np.array([1.2, 0.3, 0.9, -0.4, 0.2, 1.1])
    x0 = np.concatenate([[5.5], l0])
    L0 = np.zeros((D, D))
    L0[np.tril_indices(D)] = l0
    value, grad = F(x0)
    assert value == pytest.approx(wishart(df=5.5, scale=W).logpdf(L0 @ L0.T), rel=1e-13)
    F0 = sg.Function("wishart0", [x], [logp])
    np.testing.assert_allclose(grad, _complex_step(F0, x0), rtol=1e-12)
    assert grad[0] == pytest.approx(0.5 * np.linalg.slogdet(L0 @ L0.T)[1] - D / 2 * math.log(2)
                                    - 0.5 * math.log(np.linalg.det(W))
                                    - 0.5 * sum(sps.psi(5.5 / 2 - j / 2) for j in range(D)), rel=1e-13)
    C = F.compile()
    c_value, c_grad = C(x0)
    assert c_value == pytest.approx(value, rel=1e-14) and np.allclose(c_grad, grad, rtol=1e-14, atol=0)
