"""Ridge regression: the solution's sensitivity to the regularisation, exactly.

The ridge estimate ``w(theta) = (X'X + theta I)^{-1} X'y`` depends on the
regularisation theta. Differentiating the solve (``sg.linalg.solve``, LU with
partial pivoting written as a graph) gives ``dw/dtheta``, which implicit
differentiation predicts in closed form: ``-(X'X + theta I)^{-1} w``.
The script compiles w, dw/dtheta and the validation loss with its gradient
to C, checks the derivative against the closed form and finite differences,
and picks theta by a few Newton steps on the validation loss.

Run: python examples/ridge_sensitivity.py
"""

import numpy as np

import symgraph as sg

rng = np.random.default_rng(0)
n_train, n_valid, n_features = 40, 20, 5
true_w = rng.normal(size=n_features)
X_train, X_valid = rng.normal(size=(n_train, n_features)), rng.normal(size=(n_valid, n_features))
y_train = X_train @ true_w + 0.5 * rng.normal(size=n_train)
y_valid = X_valid @ true_w + 0.5 * rng.normal(size=n_valid)

theta = sg.symbols("theta")
K = X_train.T @ X_train + theta * np.eye(n_features)
w = sg.linalg.solve(K, X_train.T @ y_train)                 # w(theta), a graph
dw = np.array([sg.grad(wi, theta) for wi in w])              # dw/dtheta
residual = X_valid @ w - y_valid
loss = residual @ residual / n_valid                         # validation loss
dloss = sg.grad(loss, theta)
d2loss = sg.grad(dloss, theta)
C = sg.Function("ridge", [theta], [w, dw, loss, dloss, d2loss]).compile()

# dw/dtheta against the implicit-function closed form and central differences
t0 = 3.0
w0, dw0, *_ = C(t0)
closed = -np.linalg.solve(X_train.T @ X_train + t0 * np.eye(n_features), w0)
h = 1e-5
central = (C(t0 + h)[0] - C(t0 - h)[0]) / (2 * h)
print(f"dw/dtheta at theta = {t0}: {np.round(dw0, 6)}")
print(f"  vs closed form -(X'X + theta I)^-1 w: max difference {np.max(np.abs(dw0 - closed)):.1e}")
print(f"  vs central differences:             max difference {np.max(np.abs(dw0 - central)):.1e}")
assert np.allclose(dw0, closed, rtol=1e-10, atol=1e-14)
assert np.allclose(dw0, central, rtol=1e-5, atol=1e-9)

# choose theta by Newton's method on the validation loss (in log theta to keep it positive)
s = np.log(t0)
for step in range(20):
    t = np.exp(s)
    _, _, value, g, H = C(t)
    g_s, H_s = g * t, H * t * t + g * t                      # chain rule for theta = exp(s)
    s_new = s - g_s / H_s if H_s > 0 else s - 0.5 * np.sign(g_s)
    print(f"  step {step}: theta = {t:.6f}, validation loss = {float(value):.6f}, d/dtheta = {float(g):.2e}")
    if abs(s_new - s) < 1e-10:
        break
    s = s_new
t_best = float(np.exp(s))
grid = np.exp(np.linspace(np.log(1e-3), np.log(1e3), 400))
losses = [float(C(t)[2]) for t in grid]
print(f"best theta by Newton: {t_best:.6f} (loss {float(C(t_best)[2]):.6f}); "
      f"best of a 400-point log grid: {grid[int(np.argmin(losses))]:.6f} (loss {min(losses):.6f})")
assert float(C(t_best)[2]) <= min(losses) + 1e-9
