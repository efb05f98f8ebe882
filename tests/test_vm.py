"""The numpy VM: vectorized batches, slot liveness, dtypes, a real model against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

import symgraph as sg
from symgraph import vm
from symgraph.models import luksan_constraints, luksan_objective


def test_run_on_flat_inputs():
    x, y = sg.symbols("x", 2), sg.symbols("y")
    F = sg.Function("f", [x, y], [x * y, x[0] - y])
    out = vm.run(F.tape, [np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[10.0], [20.0]])])
    assert len(out) == 2 and out[0].shape == (2, 2) and out[1].shape == (2, 1)
    np.testing.assert_array_equal(out[0], [[10.0, 20.0], [60.0, 80.0]])
    np.testing.assert_array_equal(out[1], [[-9.0], [-17.0]])
    prog = vm.program(F.tape)
    again = vm.run(F.tape, [np.array([[1.0, 2.0]]), np.array([[10.0]])], prog)
    np.testing.assert_array_equal(again[0], [[10.0, 20.0]])


def test_one_numpy_call_per_instruction_whatever_the_batch_size():
    x, f, g = sg.models.luksan(20)
    F = sg.Function("luksan", [x], [f, g])
    calls = [0]

    def counting(fn):
        def wrapped(*args):
            calls[0] += 1
            return fn(*args)

        return wrapped

    prog = [(counting(fn), out, args, dead) for fn, out, args, dead in vm.program(F.tape)]
    for n in (1, 1000):
        calls[0] = 0
        pts = np.random.default_rng(n).normal(size=(n, 20))
        out = vm.run(F.tape, [pts], prog)
        assert calls[0] == F.n_ops  # never a Python loop over points
        assert out[0].shape == (n, 1) and out[1].shape == (n, 18)


def test_slots_die_after_their_last_use():
    x, f, g = sg.models.luksan(8)
    F = sg.Function("luksan", [x], [f, g])
    tape, prog = F.tape, vm.program(F.tape)
    outputs = {s for slots in tape.output_slots for s in slots.ravel().tolist()}
    dead_at = {}
    for i, (_, out, args, dead) in enumerate(prog):
        for s in dead:
            assert s not in dead_at and s not in outputs and s >= tape.n_input_scalars
            dead_at[s] = i
    for i, (_, out, args, _) in enumerate(prog):
        for a in args:  # no slot is read after it was freed
            assert dead_at.get(a, len(prog)) >= i
    # every instruction result that is not an output dies somewhere
    results = {out for _, out, _, _ in prog}
    assert results - outputs <= set(dead_at)
    # the live set stays small for a long chain: replay the frees
    live, peak = set(), 0
    for _, out, _, dead in prog:
        live.add(out)
        live -= set(dead)
        peak = max(peak, len(live))
    assert peak < len(prog) // 2


def test_luksan_model_against_numpy_on_floats():
    """The traced model evaluated by the VM == the same numpy code on floats."""
    n = 30
    x, f, g = sg.models.luksan(n)
    F = sg.Function("luksan", [x], [f, g])
    pts = np.random.default_rng(0).uniform(-2, 2, size=(50, n))
    fb, gb = F.batch(pts)
    for k in range(len(pts)):
        assert fb[k] == pytest.approx(luksan_objective(pts[k]), rel=1e-14)
        np.testing.assert_allclose(gb[k], luksan_constraints(pts[k]), rtol=1e-13, atol=1e-13)
        fk, gk = F(pts[k])
        assert fk == fb[k]
        np.testing.assert_array_equal(gk, gb[k])


def _rosenbrock_gradient(p: np.ndarray) -> np.ndarray:
    """Closed form gradient of sum(100*(x[i-1]**2 - x[i])**2 + (x[i-1] - 1)**2)."""
    a, b = p[:-1], p[1:]
    grad = np.zeros_like(p)
    r = a * a - b
    grad[:-1] += 400 * r * a + 2 * (a - 1)
    grad[1:] += -200 * r
    return grad


def test_complex_step_gradient_of_luksan_through_the_vm():
    n = 12
    x, f, _ = sg.models.luksan(n)
    F = sg.Function("f", [x], [f])
    p = np.random.default_rng(1).uniform(-1.5, 1.5, n)
    h = 1e-30
    z = np.tile(p.astype(np.complex128), (n, 1)) + 1j * h * np.eye(n)  # one seed per point of the batch
    grad = F.batch(z).imag / h
    np.testing.assert_allclose(grad, _rosenbrock_gradient(p), rtol=1e-13, atol=1e-12)


def test_nan_and_inf_inputs_propagate():
    x = sg.symbols("x")
    F = sg.Function("f", [x], [x + 1, 1 / x, sg.log(x), sg.if_else(x, 1.0, 2.0)])
    got = F.batch(np.array([math.nan, math.inf, 0.0, -1.0]))
    assert math.isnan(got[0][0]) and got[0][1] == math.inf
    assert got[1][2] == math.inf and got[1][1] == 0.0
    assert got[2][2] == -math.inf and math.isnan(got[2][3])
    assert got[3].tolist() == [1.0, 1.0, 2.0, 1.0]  # nan counts as true


def test_result_dtype_follows_inputs():
    x = sg.symbols("x")
    F = sg.Function("f", [x], [x < 1, 2.0])
    assert F.batch(np.array([0.0, 2.0])).__class__ is tuple
    lt, c = F.batch(np.array([0.0 + 1j, 2.0]))
    assert lt.dtype == np.complex128 and lt.tolist() == [1.0, 0.0] and c.tolist() == [2.0, 2.0]


def test_large_batch_matches_numpy_vectorized_formula():
    x, y = sg.symbols("x"), sg.symbols("y")
    F = sg.Function("f", [x, y], [sg.atan2(y, x) * sg.hypot(x, y) + sg.erf(x) - sg.fmod(y, 0.3)])
    rng = np.random.default_rng(2)
    xs, ys = rng.normal(size=100_000), rng.normal(size=100_000)
    import scipy.special

    want = np.arctan2(ys, xs) * np.hypot(xs, ys) + scipy.special.erf(xs) - np.fmod(ys, 0.3)
    np.testing.assert_array_equal(F.batch(xs, ys), want)
