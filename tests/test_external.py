"""sg.external: a user's C function (source or shared library) as a call node with user-given derivatives."""

import os
import pickle
import shutil
import subprocess

import numpy as np
import pytest

import symgraph as sg
from symgraph.external import external

POLAR = """
#include <math.h>
int polar(const double *const *arg, double *const *res) {
  double r = arg[0][0], t = arg[0][1];
  res[0][0] = r * cos(t);
  res[0][1] = r * sin(t);
  return 0;
}
"""


def _polar(**rules):
    return external("polar", [(2,)], [(2,)], source=POLAR, **rules)


def _jvp(x, t):
    r, a = x[0], x[1]
    return np.array([sg.cos(a) * t[0] - r * sg.sin(a) * t[1], sg.sin(a) * t[0] + r * sg.cos(a) * t[1]])


def _vjp(x, y, ybar):
    r, a = x[0], x[1]
    return np.array([sg.cos(a) * ybar[0] + sg.sin(a) * ybar[1], -r * sg.sin(a) * ybar[0] + r * sg.cos(a) * ybar[1]])


def _exact(x):
    r, a = x
    return np.array([r * np.cos(a), r * np.sin(a)])


@pytest.mark.parametrize("rules", [{"jvp": _jvp}, {"vjp": _vjp}, {"jvp": _jvp, "vjp": _vjp}])
def test_values_and_derivatives_of_a_source_external(rules):
    P = _polar(**rules)
    x = sg.symbols("x", 2)
    y = P(x)
    f = y[0] * y[1] + y[0]
    F = sg.Function("f", [x], [y, sg.jacobian(y, x), sg.grad(f, x), sg.hessian(f, x)])
    pt = np.array([1.5, 0.7])
    vm, c = F(pt), F.compile()(pt)
    np.testing.assert_allclose(vm[0], _exact(pt), rtol=1e-15)
    J = np.array([[np.cos(0.7), -1.5 * np.sin(0.7)], [np.sin(0.7), 1.5 * np.cos(0.7)]])
    np.testing.assert_allclose(vm[1].toarray(), J, rtol=1e-14)
    g = lambda z: _exact(z)[0] * _exact(z)[1] + _exact(z)[0]  # noqa: E731
    h = 1e-6
    fd = np.array([(g(pt + e) - g(pt - e)) / (2 * h) for e in np.eye(2) * h])
    np.testing.assert_allclose(vm[2], fd, rtol=1e-8)
    fd2 = np.array([(F(pt + e)[2] - F(pt - e)[2]) / (2 * h) for e in np.eye(2) * h])
    np.testing.assert_allclose(vm[3].toarray(), fd2, rtol=1e-6, atol=1e-8)
    for a, b in zip(vm, c):
        a, b = (a.toarray(), b.toarray()) if hasattr(a, "toarray") else (a, b)
        np.testing.assert_array_equal(a, b)      # the VM runs the same compiled C


def test_a_map_of_an_external_and_batches():
    P = _polar(jvp=_jvp)
    M = P.map(4)
    X = sg.symbols("X", (4, 2))
    F = sg.Function("m", [X], [M(X), sg.grad((M(X) ** 2).sum(), X)])
    pts = np.random.default_rng(0).uniform(0.5, 2.0, (4, 2))
    Y, G = F.compile()(pts)
    np.testing.assert_allclose(Y, np.array([_exact(p) for p in pts]), rtol=1e-15)
    np.testing.assert_allclose(G[:, 0], 2 * pts[:, 0], rtol=1e-14)       # |y|^2 = r^2
    np.testing.assert_allclose(G[:, 1], 0.0, atol=1e-14)
    np.testing.assert_allclose(P.batch(pts), Y, rtol=1e-15)


def test_a_shared_library_external(tmp_path):
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler to build the test library")
    src = tmp_path / "polar.c"
    src.write_text(POLAR)
    lib = tmp_path / "libpolar.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O2", str(src), "-o", str(lib), "-lm"], check=True)
    P = external("polar", [(2,)], [(2,)], library=lib, vjp=_vjp)
    x = sg.symbols("x", 2)
    F = sg.Function("f", [x], [P(x), sg.grad(P(x)[0], x)])
    pt = np.array([2.0, 0.3])
    for got in (F(pt), F.compile()(pt)):
        np.testing.assert_allclose(got[0], _exact(pt), rtol=1e-15)
        np.testing.assert_allclose(got[1], [np.cos(0.3), -2.0 * np.sin(0.3)], rtol=1e-14)
    assert str(lib) in F.c_code()


def test_a_failing_call_gives_nan_outputs():
    src = """int half(const double *const *a, double *const *r) {
      if (a[0][0] < 0) return 1;
      r[0][0] = 0.5 * a[0][0]; return 0; }"""
    H = external("half", [()], [()], source=src)
    assert float(H(3.0)) == 1.5 and np.isnan(H(-1.0))
    C = H.compile()
    assert float(C(3.0)) == 1.5 and np.isnan(C(-1.0))


def test_no_rule_means_no_derivatives():
    P = _polar()
    x = sg.symbols("x", 2)
    with pytest.raises(sg.DifferentiationError, match="polar .*external C function polar.*no derivative rule"):
        sg.grad(P(x)[0], x)


def test_rules_whose_shapes_disagree_are_refused():
    x, t = sg.symbols("x", 2), sg.symbols("t", 3)
    with pytest.raises(sg.ShapeError, match="jvp rule of 'polar'.*input 1 must have shape \\(2,\\)"):
        _polar(jvp=sg.Function("bad", [x, t], [x]))
    with pytest.raises(sg.ArgumentCountError, match="vjp rule of 'polar'.*must take 3 inputs"):
        _polar(vjp=sg.Function("bad", [x, sg.symbols("y", 2)], [x]))


def test_bad_definitions_raise_clearly(tmp_path):
    with pytest.raises(sg.InvalidInputError, match="C identifier"):
        external("not a name", [()], [()], source="int f(){return 0;}")
    with pytest.raises(sg.InvalidInputError, match="exactly one of source= .* and library="):
        external("f", [()], [()])
    with pytest.raises(sg.InvalidInputError, match="does not mention a function g"):
        external("g", [()], [()], source="int f(const double *const *a, double *const *r) { return 0; }")
    with pytest.raises(sg.InvalidInputError, match="does not exist"):
        external("f", [()], [()], library=tmp_path / "missing.so")
    with pytest.raises(sg.ShapeError, match="input 0 shape must be a tuple of positive ints"):
        external("polar", [(0,)], [(2,)], source=POLAR)
    with pytest.raises(sg.InvalidInputError, match="at least one output"):
        external("polar", [(2,)], [], source=POLAR)


def test_broken_source_fails_at_compile_with_the_compiler_message():
    B = external("broken", [()], [()], source="int broken(const double *const *a, double *const *r) { oops; }")
    with pytest.raises(sg.CompileError, match="oops"):
        B.compile()


def test_what_an_external_cannot_do():
    P = _polar(jvp=_jvp)
    with pytest.raises(sg.DTypeError, match="complex step"):
        P(np.array([1.0 + 1e-30j, 0.5]))
    with pytest.raises(sg.NotPicklableError):
        pickle.dumps(P)
    x = sg.symbols("x", 2)
    with pytest.raises(sg.CompileError, match="runs only on the host"):
        sg.Function("f", [x], [P(x)]).compile(target="cuda-host")


def test_two_externals_of_one_name_in_one_program_do_not_clash():
    one = external("f", [()], [()], source="int f(const double *const *a, double *const *r) { r[0][0] = 1; return 0; }")
    two = external("f", [()], [()], source="int f(const double *const *a, double *const *r) { r[0][0] = 2; return 0; }")
    x = sg.symbols("x")
    G = sg.Function("g", [x], [one(x) + 10 * two(x)])
    assert float(G.compile()(0.0)) == 21.0 and float(G(0.0)) == 21.0
