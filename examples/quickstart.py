"""Quick start: a model in plain numpy code, its exact derivatives as graphs, compiled to C.

Run: python3 examples/quickstart.py
"""

import numpy as np

import symgraph as sg


def main() -> None:
    # 1. A model, written as ordinary numpy code on an array of symbols.
    x = sg.symbols("x", 5)
    f = np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)      # chained Rosenbrock
    g = x[1:] * sg.exp(x[:-1]) - sg.sin(x[1:])                              # some constraints

    # 2. Exact derivatives, built symbolically: a gradient, and sparse Jacobian/Hessian.
    grad_f = sg.grad(f, x)
    jac_g = sg.jacobian(g, x)            # SparseExpr: only structural nonzeros
    hess_f = sg.hessian(f, x)
    print(f"Jacobian of g: {jac_g.shape}, {jac_g.nnz} nonzeros; Hessian of f: {hess_f.nnz} nonzeros")

    # 3. Freeze into a Function, evaluate in the numpy VM and compiled to C.
    F = sg.Function("model", [x], [f, grad_f, jac_g, hess_f],
                    output_names=["f", "grad", "jac_g", "hess_f"])
    print(F)
    x0 = np.array([1.2, 1.0, 0.8, 0.5, -0.3])
    f_vm, grad_vm, jac_vm, hess_vm = F(x0)
    C = F.compile()                      # C99 through cffi, cached on disk
    f_c, grad_c, jac_c, hess_c = C(x0)
    print("f(x0)          =", float(f_c))
    print("grad f(x0)     =", grad_c)
    print("dg/dx(x0)      =\n", jac_c.toarray())
    print("compiled C == numpy VM:", bool(np.allclose(grad_c, grad_vm, rtol=1e-14)
                                          and np.allclose(hess_c.toarray(), hess_vm.toarray(), rtol=1e-14)))

    # 4. Check the gradient against complex-step differentiation through the VM.
    h = 1e-30
    fd = [F(x0 + 1j * h * np.eye(5)[k])[0].imag / h for k in range(5)]
    print("max |grad - complex step| =", np.abs(grad_c - fd).max())


if __name__ == "__main__":
    main()
