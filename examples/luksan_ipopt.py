"""The Luksan-Vlcek problem (chained Rosenbrock with N-2 nonlinear equality constraints) with IPOPT.

Run: python3 examples/luksan_ipopt.py [N]   (default N = 1000; needs cyipopt)
"""

import sys
import time

import numpy as np

import symgraph as sg


def main(n: int = 1000) -> float:
    start = time.perf_counter()
    x, f, g = sg.models.luksan(n)
    nlp = sg.NLP(x=x, f=f, g=g, name=f"luksan{n}")
    setup = time.perf_counter() - start
    x0 = np.where(np.arange(n) % 2 == 0, -1.2, 1.0)
    start = time.perf_counter()
    sol = nlp.solve_ipopt(x0)
    solve = time.perf_counter() - start
    print(f"N = {n}: {sol.message}; f* = {sol.f:.10g}, max |g| = {np.abs(sol.g).max():.1e}, "
          f"{sol.iterations} iterations")
    print(f"set-up (symbolic + compile) {setup:.2f} s, solve {solve:.2f} s, "
          f"in callbacks {sol.stats['callback_seconds']:.3f} s")
    assert sol.success and np.abs(sol.g).max() < 1e-6
    return sol.f


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
