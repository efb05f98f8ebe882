"""Quick start: build a model with numpy code, freeze it, evaluate it.

Run: python3 examples/quickstart.py
"""

import numpy as np

import symgraph as sg


def main() -> None:
    x = sg.symbols("x", 4)
    f = np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)  # chained Rosenbrock
    F = sg.Function("rosenbrock", [x], [f])
    print(F)
    x0 = np.array([1.2, 1.0, 0.8, 0.5])
    print("f(x0) =", float(F(x0)))
    print("f at the optimum (1, 1, 1, 1) =", float(F(np.ones(4))))
    points = np.random.default_rng(0).normal(size=(5, 4))
    print("f at 5 points in one vectorized call:", F.batch(points))


if __name__ == "__main__":
    main()
