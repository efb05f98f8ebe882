"""Stiff Van der Pol (mu = 1000) with the Radau IIA collocation integrator, and its sensitivities.

``integrator`` turns the right-hand side ``x' = f(x, mu)`` into one Function
``(x0, mu) -> xs`` over a time grid: a fold of Radau IIA steps (3 stages,
order 5) whose stage equations the rootfinder solves, compiled to a C loop.
The script integrates across the first relaxation jump on the steps scipy's
adaptive Radau chose, checks the result against ``scipy.integrate.solve_ivp``
at tight tolerances, and differentiates the final state with respect to
``x0`` and ``mu`` (the exact derivative of the discrete scheme, by implicit
differentiation of each step), compared with central differences.  Then it
lets the integrator choose its own steps (``adaptive=True``: step doubling,
a failed Newton iteration rejects the step) over two jumps.

Run: python examples/vanderpol_integrator.py
"""

import time

import numpy as np
from scipy.integrate import solve_ivp

import symgraph as sg
from symgraph.integrator import integrator

mu, T = 1000.0, 1000.0
x, m = sg.symbols("x", 2), sg.symbols("mu")
vdp = sg.Function("vdp", [x, m], [np.array([x[1], m * (1 - x[0] ** 2) * x[1] - x[0]], dtype=object)])


def f(t, y):
    return [y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]]


x0 = np.array([2.0, 0.0])
reference = solve_ivp(f, (0, T), x0, method="Radau", rtol=1e-10, atol=1e-12).y[:, -1]
grid = solve_ivp(f, (0, T), x0, method="Radau", rtol=1e-6, atol=1e-9).t   # scipy's adaptive steps

I = integrator("vdp_radau", vdp, grid, "radau", stages=3, controls=())     # (x0, mu) -> xs
X0, MU = sg.symbols("X0", 2), sg.symbols("MU")
xT = I(X0, MU)[-1]
sens = sg.Function("sens", [X0, MU], [xT, sg.jacobian(xT, np.append(X0, MU)).to_dense()])

start = time.perf_counter()
C = sens.compile()
print(f"{grid.size - 1} Radau steps, compiled in {time.perf_counter() - start:.2f} s")
start = time.perf_counter()
final, J = C(x0, mu)
print(f"x(T) and d x(T) / d(x0, mu) in {(time.perf_counter() - start) * 1e3:.2f} ms")
print("x(T)      ", final, " solve_ivp:", reference)
assert np.allclose(final, reference, rtol=1e-6, atol=1e-8)

# Central differences of the same compiled scheme.  Across the jump x(T) is very sensitive to its
# arguments (a shifted jump), so differences agree only to about 1e-3; complex step through the VM
# (slower) agrees to 1e-6.
states = I.compile()
fd = np.zeros((2, 3))
for k, h in enumerate([1e-7, 1e-7, 1e-4]):
    e = np.zeros(3)
    e[k] = h
    fd[:, k] = (states(x0 + e[:2], mu + e[2])[-1] - states(x0 - e[:2], mu - e[2])[-1]) / (2 * h)
print("d x(T)/d(x0, mu)\n", J)
print("central differences\n", fd)
assert np.allclose(J, fd, rtol=2e-3, atol=1e-9)

# Its own steps: 25 output intervals over two relaxation jumps, at most 200 attempts each.
T2 = 2500.0
out = np.linspace(0.0, T2, 26)
reference = solve_ivp(f, (0, T2), x0, method="Radau", rtol=1e-9, atol=1e-11, t_eval=out).y.T
A = integrator("vdp_adaptive", vdp, out, "radau", controls=(), adaptive=True, rtol=1e-6, atol=1e-9, max_steps=200)
xs = A.compile()(x0, mu)
print(f"adaptive Radau IIA, rtol 1e-6: max error over 25 output times {np.abs(xs - reference).max():.1e}")
assert np.abs(xs - reference).max() < 1e-4
