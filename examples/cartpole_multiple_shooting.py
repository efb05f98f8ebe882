"""Cart-pole swing-up by direct multiple shooting: one interval Function, mapped over the intervals.

A cart (mass m1) on a rail carries a pole (mass m2, length l) hanging down;
a horizontal force u on the cart must swing the pole up and bring the cart
to rest a distance D away at time T, with least effort ``integral u^2``.
States q = (cart position, pole angle, their rates); the angle is 0 hanging
down and pi upright (the model of M. Kelly, "An introduction to trajectory
optimization", SIAM Review 2017).

The interval Function takes the state at the start of one shooting interval
and its constant control and integrates with RK4 substeps; ``F.map(N)``
applies it to all N intervals at once (one call node, one loop in C), so
the model and its derivatives do not grow with N. The continuity gaps
``F(X[k], U[k]) - X[k+1]`` are the equality constraints of the NLP.

Run: python3 examples/cartpole_multiple_shooting.py [N]   (default N = 50; needs cyipopt)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

import symgraph as sg

CART_MASS, POLE_MASS, POLE_LENGTH, GRAVITY = 1.0, 0.3, 0.5, 9.81
DISTANCE, HORIZON, FORCE_MAX, RAIL = 1.0, 2.0, 20.0, 2.0


def dynamics(q: np.ndarray, u):
    """Time derivative of the cart-pole state ``q = (x, theta, dx, dtheta)`` under force ``u``."""
    _, theta, dx, dtheta = q
    s, c = np.sin(theta), np.cos(theta)
    denominator = CART_MASS + POLE_MASS * s * s
    ddx = (POLE_LENGTH * POLE_MASS * s * dtheta * dtheta + u + POLE_MASS * GRAVITY * c * s) / denominator
    ddtheta = -(POLE_LENGTH * POLE_MASS * c * s * dtheta * dtheta + u * c
                + (CART_MASS + POLE_MASS) * GRAVITY * s) / (POLE_LENGTH * denominator)
    return np.array([dx, dtheta, ddx, ddtheta], dtype=object)


def rk4(rhs, q: np.ndarray, u, dt: float, substeps: int = 4) -> np.ndarray:
    """``substeps`` classical Runge-Kutta steps of ``q' = rhs(q, u)`` over a time ``dt``."""
    h = dt / substeps
    for _ in range(substeps):
        k1 = rhs(q, u)
        k2 = rhs(q + h / 2 * k1, u)
        k3 = rhs(q + h / 2 * k2, u)
        k4 = rhs(q + h * k3, u)
        q = q + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return q


def interval_function(dt: float, substeps: int = 4) -> sg.Function:
    """The state at the end of one shooting interval of length ``dt`` from its start ``q`` and control ``u``."""
    q, u = sg.symbols("q", 4), sg.symbols("u")
    return sg.Function("cartpole_interval", [q, u], [rk4(dynamics, q, u, dt, substeps)],
                       input_names=["q", "u"], output_names=["q_next"])


@dataclass
class ShootingProblem:
    """The multiple-shooting NLP: decision vector ``w = (X.ravel(), U)``, objective, constraints, bounds."""

    n: int
    w: np.ndarray
    f: object
    g: np.ndarray
    lbx: np.ndarray
    ubx: np.ndarray
    x0: np.ndarray

    def states(self, w: np.ndarray) -> np.ndarray:
        """The (n+1, 4) node states of a solution vector."""
        return w[: 4 * (self.n + 1)].reshape(self.n + 1, 4)


def build(n: int = 50, mapped: bool = True, substeps: int = 4) -> ShootingProblem:
    """The swing-up over ``n`` intervals; ``mapped=False`` writes every interval out (the unrolled model)."""
    dt = HORIZON / n
    with sg.building():
        X = sg.symbols("X", (n + 1, 4))
        U = sg.symbols("U", n)
        if mapped:
            ends = interval_function(dt, substeps).map(n)(X[:-1], U)
        else:
            ends = np.array([rk4(dynamics, X[k], U[k], dt, substeps) for k in range(n)], dtype=object)
        gaps = ends - X[1:]
        g = np.concatenate([X[0], gaps.reshape(-1), X[n] - np.array([DISTANCE, np.pi, 0.0, 0.0])])
        f = dt * np.sum(U * U)
    w = np.concatenate([X.reshape(-1), U])
    lbx = np.concatenate([np.tile([-RAIL, -np.inf, -np.inf, -np.inf], n + 1), np.full(n, -FORCE_MAX)])
    ubx = -lbx
    s = np.linspace(0.0, 1.0, n + 1)  # straight-line guess from hanging to upright
    guess = np.column_stack([DISTANCE * s, np.pi * s, np.full(n + 1, DISTANCE / HORIZON),
                             np.full(n + 1, np.pi / HORIZON)])
    x0 = np.concatenate([guess.ravel(), np.zeros(n)])
    return ShootingProblem(n, w, f, g, lbx, ubx, x0)


def solve(problem: ShootingProblem, name: str = "cartpole", options: dict | None = None):
    """Set up the NLP (compiled callbacks) and solve it with IPOPT; returns (nlp, result)."""
    nlp = sg.NLP(x=problem.w, f=problem.f, g=problem.g, name=name)
    sol = nlp.solve_ipopt(problem.x0, lbx=problem.lbx, ubx=problem.ubx, lbg=0.0, ubg=0.0,
                          options=options or {"print_level": 0, "sb": "yes"})
    return nlp, sol


def main(n: int = 50) -> float:
    problem = build(n)
    _, sol = solve(problem, name=f"cartpole{n}")
    final = problem.states(sol.x)[-1]
    violation = np.abs(sol.g).max()
    print(f"N = {n}: {sol.message}; effort {sol.f:.6f} after {sol.iterations} iterations; "
          f"max |gap| {violation:.1e}; final cart {final[0]:.6f}, pole angle {final[1]:.6f}")
    assert sol.success and violation < 1e-6
    return sol.f


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
