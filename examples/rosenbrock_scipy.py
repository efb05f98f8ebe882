"""Rosenbrock with SciPy: exact compiled gradient and Hessian for trust-constr.

Run: python3 examples/rosenbrock_scipy.py
"""

import numpy as np

import symgraph as sg


def main(n: int = 10) -> np.ndarray:
    x = sg.symbols("x", n)
    f = np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)
    nlp = sg.NLP(x=x, f=f, name="rosenbrock")
    x0 = np.where(np.arange(n) % 2 == 0, -1.2, 1.0)
    for method in ("trust-constr", "L-BFGS-B"):
        sol = nlp.scipy_minimize(x0, method=method, options={"maxiter": 5000})
        print(f"{method:>12}: f = {sol.fun:.3e} after {sol.nit} iterations, "
              f"max |x - 1| = {np.abs(sol.x - 1).max():.2e}")
    assert np.allclose(sol.x, 1.0, atol=1e-4), sol.x
    return sol.x


if __name__ == "__main__":
    main()
