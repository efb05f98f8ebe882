"""SciPy adapters: ``scipy.optimize.minimize`` and ``least_squares`` with compiled exact derivatives.

>>> import numpy as np, symgraph as sg
>>> x = sg.symbols("x", 2)
>>> r = sg.least_squares(np.array([x[0] - 1, 10 * (x[1] - x[0] ** 2)]), x, [0.0, 0.0], jit=False)
>>> np.round(r.x, 6).tolist()
[1.0, 1.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidInputError, ShapeError
from ..nlp import NLP, _check_free, _flat_symbols, expr_array, real_values
from .ipopt import bounds_vector

METHODS = ("trust-constr", "SLSQP", "L-BFGS-B")


def minimize(nlp: NLP, x0: Any, bounds: Any = None, constraint_bounds: Any = None,
             method: str = "trust-constr", p: Any = None, **kwargs: Any):
    """``scipy.optimize.minimize`` on ``nlp`` with exact gradient, sparse Jacobian and Hessian.

    ``bounds``: None or ``(lb, ub)`` (scalars or vectors).  ``constraint_bounds``:
    ``(lbg, ubg)``; default equality ``g == 0``.  ``method``: trust-constr (uses
    the sparse Hessian of the Lagrangian), SLSQP (dense Jacobian) or L-BFGS-B
    (bounds only).  Other keyword arguments go to scipy.  Returns scipy's
    ``OptimizeResult``.
    """
    from scipy.optimize import Bounds
    from scipy.optimize import minimize as scipy_minimize

    if method not in METHODS:
        raise InvalidInputError(f"method must be one of {METHODS}, got {method!r}")
    if p is not None:
        nlp.set_parameters(p)
    x0 = nlp.check_x(x0)
    n, m = nlp.n, nlp.m
    options: dict[str, Any] = {"fun": nlp.objective, "x0": x0, "jac": nlp.gradient, "method": method}
    if bounds is not None:
        lb, ub = bounds
        options["bounds"] = Bounds(bounds_vector(lb, n, -np.inf, "lower bounds"),
                                   bounds_vector(ub, n, np.inf, "upper bounds"))
    if m:
        if method == "L-BFGS-B":
            raise InvalidInputError("L-BFGS-B handles bounds only; this NLP has constraints g "
                                    "(use trust-constr or SLSQP)")
        lbg, ubg = constraint_bounds if constraint_bounds is not None else (0.0, 0.0)
        lbg, ubg = bounds_vector(lbg, m, 0.0, "lbg"), bounds_vector(ubg, m, 0.0, "ubg")
        options["constraints"] = _constraints(nlp, lbg, ubg, method)
    if method == "trust-constr":
        no_multipliers = np.zeros(m)
        options["hess"] = lambda x: nlp.hessian(x, no_multipliers, 1.0)
    options.update(kwargs)
    return scipy_minimize(**options)


def _constraints(nlp: NLP, lbg: np.ndarray, ubg: np.ndarray, method: str) -> list:
    """NonlinearConstraints for scipy: rows with no bound at all are left out; for
    SLSQP, equality rows (lbg == ubg) and inequality rows are separate
    constraints, as SLSQP wants."""
    from scipy.optimize import NonlinearConstraint

    groups = [np.flatnonzero(np.isfinite(lbg) | np.isfinite(ubg))]
    if method == "SLSQP":
        rows = groups[0]
        equal = lbg[rows] == ubg[rows]
        groups = [rows[equal], rows[~equal]]
    constraints = []
    for rows in groups:
        if len(rows) == 0:
            continue
        if method == "trust-constr":
            constraints.append(NonlinearConstraint(
                lambda x, r=rows: nlp.constraints(x)[r], lbg[rows], ubg[rows],
                jac=lambda x, r=rows: nlp.jacobian(x)[r],
                hess=lambda x, v, r=rows: nlp.hessian(x, _scatter(v, r, nlp.m), 0.0)))
        else:
            constraints.append(NonlinearConstraint(
                lambda x, r=rows: nlp.constraints(x)[r], lbg[rows], ubg[rows],
                jac=lambda x, r=rows: nlp.jacobian(x)[r].toarray()))
    return constraints


def _scatter(values: np.ndarray, rows: np.ndarray, m: int) -> np.ndarray:
    full = np.zeros(m)
    full[rows] = values
    return full


def least_squares(residuals: Any, x: Any, x0: Any, p: Any = None, p_value: Any = None,
                  bounds: Any = None, jit: bool = True, compile_options: dict | None = None,
                  **kwargs: Any):
    """``scipy.optimize.least_squares`` on symbolic residuals, with a compiled sparse Jacobian.

    Args:
        residuals: Expr or array of residual expressions (flattened).
        x: the unknowns (symbol array); ``x0`` their start values.
        p, p_value: optional parameter symbols and their values.
        bounds: None or ``(lb, ub)``.
        jit: compile to C (default) or evaluate in the numpy VM.
        kwargs: passed to scipy (e.g. ``method``, ``x_scale``, ``loss``).

    Returns scipy's ``OptimizeResult`` (``.x``, ``.cost``, ``.jac`` sparse, ...).
    """
    from scipy.optimize import least_squares as scipy_least_squares
    import scipy.sparse as sp

    from ..ad import jacobian
    from ..function import Function

    xs = _flat_symbols(x, "x")
    ps = _flat_symbols(p, "p") if p is not None else np.empty(0, dtype=object)
    r = expr_array(residuals, "least_squares residuals").reshape(-1)
    _check_free(xs, ps, list(r))
    J = jacobian(r, xs)
    R = Function("lsq_residuals", [xs, ps], [r])
    JV = Function("lsq_jacobian", [xs, ps], [J.values])
    if jit:
        R, JV = R.compile(**(compile_options or {})), JV.compile(**(compile_options or {}))
    pv = real_values(p_value if p_value is not None else [], "least_squares: p_value").reshape(-1)
    if pv.shape != (len(ps),):
        raise ShapeError(f"least_squares: p_value must have {len(ps)} values, got {pv.size}")
    x0 = real_values(x0, "least_squares: x0").reshape(-1)
    if x0.shape != (len(xs),):
        raise ShapeError(f"least_squares: x0 must have {len(xs)} values, got {x0.size}")
    shape = (len(r), len(xs))
    rows, cols = J.rows, J.cols
    options: dict[str, Any] = {"method": "trf"}
    if bounds is not None:
        options["bounds"] = (bounds_vector(bounds[0], len(xs), -np.inf, "lower bounds"),
                             bounds_vector(bounds[1], len(xs), np.inf, "upper bounds"))
    options.update(kwargs)
    dense = options["method"] == "lm"

    def jac(v):
        m = sp.csr_matrix((JV(v, pv), (rows, cols)), shape=shape)
        return m.toarray() if dense else m
    return scipy_least_squares(lambda v: R(v, pv), x0, jac=jac, **options)
