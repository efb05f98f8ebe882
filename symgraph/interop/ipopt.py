"""IPOPT through cyipopt: an adapter exposing an :class:`~symgraph.nlp.NLP`'s callbacks.

cyipopt is optional (``pip install "symgraph[ipopt]"`` installs
``cyipopt-wheels``, which bundles IPOPT).  The adapter hands IPOPT the
compiled callbacks and the fixed COO structures; IPOPT's own ``inf``
convention (|bound| >= 1e19) applies, and ``numpy.inf`` bounds work.

>>> import symgraph as sg
>>> x = sg.symbols("x", 2)
>>> nlp = sg.NLP(x=x, f=(x[0] - 1) ** 2 + (x[1] - 2) ** 2, g=x[0] + x[1], jit=False)
>>> adapter = IpoptAdapter(nlp)
>>> [r.tolist() for r in adapter.jacobianstructure()]
[[0, 0], [0, 1]]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import MissingSolverError, ShapeError
from ..nlp import NLP, NLPResult, real_values


class IpoptAdapter:
    """The object cyipopt calls: objective, gradient, constraints, jacobian(+structure), hessian(+structure)."""

    def __init__(self, nlp: NLP) -> None:
        self.nlp = nlp
        self.iterations = 0

    def objective(self, x: np.ndarray) -> float:
        """f(x)."""
        return self.nlp.objective(x)

    def gradient(self, x: np.ndarray) -> np.ndarray:
        """Gradient of f."""
        return self.nlp.gradient(x)

    def constraints(self, x: np.ndarray) -> np.ndarray:
        """g(x)."""
        return self.nlp.constraints(x)

    def jacobian(self, x: np.ndarray) -> np.ndarray:
        """Jacobian nonzeros in :meth:`jacobianstructure` order."""
        return self.nlp.jacobian_values(x)

    def jacobianstructure(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols) of the Jacobian nonzeros."""
        s = self.nlp.jacobian_structure
        return s.rows, s.cols

    def hessian(self, x: np.ndarray, lagrange: np.ndarray, obj_factor: float) -> np.ndarray:
        """Lower-triangle nonzeros of the Hessian of ``obj_factor*f + lagrange'g``."""
        return self.nlp.hessian_values(x, lagrange, obj_factor)

    def hessianstructure(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols) of the lower-triangle Hessian nonzeros."""
        s = self.nlp.hessian_structure
        return s.rows, s.cols

    def intermediate(self, alg_mod, iter_count, *args) -> bool:
        """Record the iteration count; never stops the solver."""
        self.iterations = int(iter_count)
        return True


def bounds_vector(value: Any, size: int, default: float, what: str) -> np.ndarray:
    """``value`` as a float vector of ``size`` (a scalar broadcasts; None gives ``default``).

    >>> bounds_vector(None, 2, 0.0, "lbg").tolist()
    [0.0, 0.0]
    """
    if value is None:
        return np.full(size, default)
    arr = real_values(value, what)
    if arr.ndim == 0:
        return np.full(size, float(arr))
    arr = arr.reshape(-1)
    if arr.size != size:
        raise ShapeError(f"{what} must have {size} values (or be a scalar), got {arr.size}")
    return arr


def solve(nlp: NLP, x0: Any, lbx: Any = None, ubx: Any = None, lbg: Any = None, ubg: Any = None,
          p: Any = None, options: dict | None = None) -> NLPResult:
    """Solve ``nlp`` with IPOPT.

    Defaults: no bounds on x, equality constraints ``g == 0`` (``lbg = ubg = 0``),
    IPOPT quiet (``print_level 0``; pass ``options={"print_level": 5}`` to see it).
    Returns an :class:`NLPResult` with ``x``, ``f``, ``g``, ``lam_g``, ``lam_x``
    (upper minus lower bound multipliers), ``status``, ``message``, ``success``,
    ``iterations`` and ``stats`` (callback counts and seconds).
    """
    try:
        import cyipopt
    except ImportError:
        raise MissingSolverError("IPOPT needs cyipopt: pip install 'symgraph[ipopt]' "
                                 "(it installs cyipopt-wheels, which bundles IPOPT)") from None
    n, m = nlp.n, nlp.m
    x0 = nlp.check_x(x0)
    if p is not None:
        nlp.set_parameters(p)
    lb, ub = bounds_vector(lbx, n, -np.inf, "lbx"), bounds_vector(ubx, n, np.inf, "ubx")
    cl, cu = bounds_vector(lbg, m, 0.0, "lbg"), bounds_vector(ubg, m, 0.0, "ubg")
    adapter = IpoptAdapter(nlp)
    problem = cyipopt.Problem(n=n, m=m, problem_obj=adapter, lb=lb, ub=ub, cl=cl, cu=cu)
    settings = {"sb": "yes", "print_level": 0}
    settings.update(options or {})
    for key, value in settings.items():
        problem.add_option(key, value)
    before = dict(nlp.stats.seconds)
    x, info = problem.solve(x0)
    spent = {k: v - before.get(k, 0.0) for k, v in nlp.stats.seconds.items()}
    return NLPResult(
        x=x, f=float(info["obj_val"]), g=np.asarray(info["g"]), lam_g=np.asarray(info["mult_g"]),
        lam_x=np.asarray(info["mult_x_U"]) - np.asarray(info["mult_x_L"]), status=int(info["status"]),
        message=info["status_msg"].decode() if isinstance(info["status_msg"], bytes) else info["status_msg"],
        success=int(info["status"]) in (0, 1), iterations=adapter.iterations,
        stats={"callback_seconds": sum(spent.values()), "callback_seconds_by_name": spent},
    )
