"""HS071, the classic IPOPT test problem, with compiled exact sparse callbacks.

min  x0*x3*(x0 + x1 + x2) + x2
s.t. x0*x1*x2*x3 >= 25,  x0^2 + x1^2 + x2^2 + x3^2 = 40,  1 <= x <= 5

Known optimum: f* = 17.0140173 at x* = (1, 4.743, 3.821, 1.379).
Run: python3 examples/hs071_ipopt.py   (needs cyipopt: pip install "symgraph[ipopt]")
"""

import numpy as np

import symgraph as sg


def main() -> float:
    x = sg.symbols("x", 4)
    f = x[0] * x[3] * (x[0] + x[1] + x[2]) + x[2]
    g = np.array([x[0] * x[1] * x[2] * x[3], (x ** 2).sum()])
    nlp = sg.NLP(x=x, f=f, g=g, name="hs071")
    sol = nlp.solve_ipopt([1.0, 5.0, 5.0, 1.0], lbx=1.0, ubx=5.0, lbg=[25.0, 40.0], ubg=[np.inf, 40.0])
    print(f"status: {sol.message}")
    print(f"f* = {sol.f:.7f} at x* = {np.round(sol.x, 4)} after {sol.iterations} iterations")
    print(f"constraint multipliers: {sol.lam_g}")
    assert abs(sol.f - 17.0140173) < 1e-6
    return sol.f


if __name__ == "__main__":
    main()
