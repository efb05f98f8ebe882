"""Optimal control by direct multiple shooting: a rocket that must climb and stop, with least effort.

States (height h, velocity v, mass m), thrust u. Dynamics
h' = v,  v' = (u - 0.05 v^2) / m - g0,  m' = -0.01 u^2,
integrated with RK4 on each of N shooting intervals. Decision variables are
the states at every node and the controls; continuity of the shooting
intervals is a set of equality constraints. Minimize sum u^2 to reach
h = 10, v = 0 at T = 10 s with 0 <= u <= 3 and m >= 0.5.

One interval is a Function (RK4 substeps inside) of its start state and
control; ``F.map(N)`` runs it on all intervals at once, called on the node
states ``X[:-1]`` and controls ``U``, so the graph, its derivatives and the
generated C hold the interval once instead of N times.

Run: python3 examples/rocket_ocp_ipopt.py   (needs cyipopt)
"""

import numpy as np

import symgraph as sg

G0 = 1.0


def dynamics(state: np.ndarray, u) -> np.ndarray:
    """Time derivative of (height, velocity, mass) under thrust ``u``."""
    h, v, m = state
    return np.array([v, (u - 0.05 * v ** 2) / m - G0, -0.01 * u ** 2], dtype=object)


def rk4(state: np.ndarray, u, dt: float, substeps: int = 4) -> np.ndarray:
    """``substeps`` classical Runge-Kutta steps of the dynamics over a time ``dt``."""
    h = dt / substeps
    for _ in range(substeps):
        k1 = dynamics(state, u)
        k2 = dynamics(state + h / 2 * k1, u)
        k3 = dynamics(state + h / 2 * k2, u)
        k4 = dynamics(state + h * k3, u)
        state = state + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return state


def interval(dt: float) -> sg.Function:
    """The state at the end of one interval of length ``dt`` from its start ``state`` and thrust ``u``."""
    state, u = sg.symbols("state", 3), sg.symbols("u")
    return sg.Function("rocket_interval", [state, u], [rk4(state, u, dt)])


def main(n: int = 40, horizon: float = 10.0) -> float:
    dt = horizon / n
    X = sg.symbols("X", (n + 1, 3))
    U = sg.symbols("U", n)
    gaps = interval(dt).map(n)(X[:-1], U) - X[1:]
    g = np.concatenate([X[0] - np.array([0.0, 0.0, 1.0]), gaps.reshape(-1), [X[n, 0] - 10.0, X[n, 1]]])
    f = np.sum(U ** 2) * dt
    w = np.concatenate([X.reshape(-1), U])
    nlp = sg.NLP(x=w, f=f, g=g, name="rocket")
    lbx = np.concatenate([np.tile([-np.inf, -np.inf, 0.5], n + 1), np.zeros(n)])
    ubx = np.concatenate([np.tile([np.inf, np.inf, np.inf], n + 1), np.full(n, 3.0)])
    x0 = np.concatenate([np.column_stack([np.linspace(0, 10, n + 1), np.ones(n + 1), np.ones(n + 1)]).ravel(),
                         np.full(n, 1.5)])
    sol = nlp.solve_ipopt(x0, lbx=lbx, ubx=ubx)
    states = sol.x[: 3 * (n + 1)].reshape(n + 1, 3)
    print(f"{sol.message}: fuel-effort {sol.f:.5f} after {sol.iterations} iterations; "
          f"final h = {states[-1, 0]:.6f}, v = {states[-1, 1]:.2e}, mass left {states[-1, 2]:.4f}")
    assert sol.success and abs(states[-1, 0] - 10.0) < 1e-6 and np.abs(sol.g).max() < 1e-6
    return sol.f


if __name__ == "__main__":
    main()
