"""Parameter estimation: fit a damped oscillator, integrated by unrolled RK4, to noisy data.

The model x'' + c x' + k x = 0 is integrated symbolically with RK4, so the
residuals and their exact sparse Jacobian are graphs compiled to C;
``sg.least_squares`` hands them to ``scipy.optimize.least_squares``.
Run: python3 examples/ode_fit_least_squares.py
"""

import numpy as np

import symgraph as sg


def rk4_step(rhs, state, dt):
    k1 = rhs(state)
    k2 = rhs(state + dt / 2 * k1)
    k3 = rhs(state + dt / 2 * k2)
    k4 = rhs(state + dt * k3)
    return state + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def simulate(params, x0, dt, steps):
    c, k = params
    rhs = lambda s: np.array([s[1], -c * s[1] - k * s[0]], dtype=object)  # noqa: E731
    states = [np.asarray(x0, dtype=object)]
    for _ in range(steps):
        states.append(rk4_step(rhs, states[-1], dt))
    return np.array([s[0] for s in states], dtype=object)


def main() -> np.ndarray:
    truth = np.array([0.3, 4.0])  # damping c, stiffness k
    dt, steps = 0.05, 200
    rng = np.random.default_rng(1)
    clean = simulate(truth, [1.0, 0.0], dt, steps).astype(float)
    data = clean + 0.01 * rng.normal(size=clean.shape)

    theta = sg.symbols("theta", 2)
    residuals = simulate(theta, [1.0, 0.0], dt, steps) - data
    result = sg.least_squares(residuals, theta, x0=[1.0, 2.0], bounds=([0.0, 0.0], [10.0, 20.0]))
    print(f"estimated (c, k) = {np.round(result.x, 4)}, truth = {truth}, cost = {result.cost:.3e}, "
          f"{result.nfev} residual evaluations")
    assert np.allclose(result.x, truth, rtol=0.02), result.x
    return result.x


if __name__ == "__main__":
    main()
