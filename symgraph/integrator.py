"""``integrator``: ODE solutions ``x' = f(x, u, p)`` on a time grid as one fold.

``integrator(name, rhs, grid, method)`` turns a right-hand side Function
``rhs(x, u, p) -> xdot`` into the Function ``(x0, u, p) -> xs`` giving the
states at the ``N + 1`` grid points (``xs[0]`` is ``x0``).  ``u`` holds one
row per interval (piecewise constant controls, shape ``(N,) + u_shape``) and
``p`` is constant; an ``rhs`` of one input ``(x)`` or two ``(x, u)`` gives an
integrator of as many inputs, and ``controls=`` says which of ``rhs``'s
inputs after ``x`` are per interval (default: input 1, the ``u`` of
``(x, u, p)``; ``controls=()`` makes every input constant, e.g. ``rhs(x, p)``).

The trajectory is a fold (:mod:`symgraph.fold`) of one interval's step over
the ``N`` intervals, the interval itself a fold of ``steps_per_interval``
steps of the method, so it is a handful of nodes whatever ``N``: the VM runs
the step's program once per step, the C code is one loop (its size does not
depend on ``N`` for a uniform grid; a non-uniform grid's step sizes are one
per-interval input of the fold), and derivatives (forward and adjoint
sensitivities, Hessians) are the exact derivatives of the discrete scheme,
computed by fold's own rules.

Methods (``method=``):

* ``"rk4"``: the classical explicit Runge-Kutta method, order 4.
* ``"dopri5"``: Dormand-Prince 5(4), fixed step, order 5; with
  ``error=True`` a second output ``err`` of shape ``(N,) + x_shape`` holds,
  per interval, the sum over its steps of ``|x5 - x4|``, the embedded
  4th-order solution's difference (a local error estimate).
* ``"radau"``: Radau IIA collocation with ``stages`` (default 3) stages,
  order ``2 s - 1``, L-stable (stiff problems).
* ``"legendre"``: Gauss-Legendre collocation, order ``2 s``, A-stable,
  symplectic.

Collocation solves, at each step, the stage equations for the stage states
``X_i = x + h sum_j a_ij f(X_j, u, p)`` (``s * nx`` unknowns) with the
rootfinder (:mod:`symgraph.rootfinder`: Newton with a line search in C, from
the guess ``X_i = x``), whose derivative is the implicit one, so the
integrator's sensitivities are those of the exactly solved discrete scheme.
``newton`` passes options to the rootfinder (defaults
:data:`NEWTON_DEFAULTS`).  The next state is ``X_s`` for Radau IIA (stiffly
accurate) and ``x + h sum_j b_j f(X_j)`` for Gauss.  A step whose Newton
iteration fails gives NaN states from there on (the rootfinder's
``on_failure="nan"``), never a silently wrong trajectory.

**Adaptive steps** (``adaptive=True``, ``"dopri5"``, ``"radau"`` or
``"legendre"``): inside each interval the steps are chosen by an error
estimate, as an adaptive solver does.  Dormand-Prince uses its embedded
4th-order solution; the collocation methods use step doubling (one step of
``h`` against two of ``h / 2``, whose difference over ``2^p - 1`` estimates
the error of the latter, which is kept), and a step whose Newton iteration
failed counts as rejected, so the step shrinks until Newton converges.  A
step is accepted when ``sqrt(mean(e_i / (atol + rtol max(|x_i|,
|x_new_i|)))^2) <= 1``; the next ``h`` is the last times ``clip(0.9
err^(-1/q), 0.2, 5)`` (``q = 5`` for Dormand-Prince, ``p + 1`` for
collocation of order ``p``), the last step of an interval is shortened to
end on the grid point, and ``h`` carries over to the next interval.  A fold
has a fixed trip count, so each interval is a fold of ``max_steps`` attempts
(an attempt after the interval's end is a step of size 0, which costs no
Newton step): an interval that ``max_steps`` attempts do not finish gives
NaN states from there on.  Derivatives are those of the discrete scheme
**with the step sizes held fixed** (they pass through ``stop_gradient``;
which attempts were accepted is piecewise constant): the exact derivative of
the scheme on the steps the controller chose, not of the step choice itself
(which finite differences of the adaptive map include; the two differ by
about the tolerance, and both approximate the ODE's sensitivity to it).

Otherwise steps are fixed: the grid and ``steps_per_interval`` must
resolve the solution's fast transients.  L-stability lets Radau IIA take
steps far beyond the stiff time scale where the solution is smooth (Van der
Pol with mu = 1000: steps of 5 on its slow branch, ``h |lambda| ~ 1e4``), but
across a relaxation jump the steps must be about as short as the jump, as
an adaptive solver's are (``adaptive=True``, or a grid of the times an
adaptive solver chose).  A uniform grid's step is a
constant of the loop body; a non-uniform grid's ``N`` step sizes are a
table in the C code.

>>> import numpy as np, symgraph as sg
>>> from symgraph.integrator import integrator
>>> x, k = sg.symbols("x"), sg.symbols("k")
>>> decay = sg.Function("decay", [x, k], [-k * x])
>>> I = integrator("I", decay, np.linspace(0.0, 1.0, 11), "rk4", controls=())
>>> I.input_shapes, I.output_shapes
(((), ()), ((11,),))
>>> xs = I(1.0, 2.0)
>>> bool(abs(xs[-1] - np.exp(-2.0)) < 1e-5)
True
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from .array import symbols
from .errors import DTypeError, InvalidInputError, OptionError, ShapeError

__all__ = ["integrator", "tableau", "METHODS", "NEWTON_DEFAULTS", "NEWTON_OPTIONS"]

#: The rootfinder options of the collocation methods unless ``newton=`` says otherwise: an absolute
#: tolerance on the stage equations (in the state's units), and convergence on a full Newton step
#: below ``step_tol`` relative, where rounding keeps the residual of a stiff step above ``tol``.
NEWTON_DEFAULTS = {"tol": 1e-12, "step_tol": 1e-13, "max_iter": 50}
#: The rootfinder options ``newton=`` may set (its ``status`` and ``on_failure`` are the integrator's own).
NEWTON_OPTIONS = ("tol", "step_tol", "max_iter", "line_search")

#: The methods ``integrator`` knows, with their order (``s`` = stages).
METHODS = {"rk4": "explicit, order 4", "dopri5": "explicit Dormand-Prince 5(4), order 5",
           "radau": "Radau IIA collocation, order 2s-1", "legendre": "Gauss-Legendre collocation, order 2s"}

_DOPRI_A = [[],
            [1 / 5],
            [3 / 40, 9 / 40],
            [44 / 45, -56 / 15, 32 / 9],
            [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
            [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
            [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84]]
_DOPRI_B = [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0]
_DOPRI_B4 = [5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40]


@lru_cache(maxsize=None)
def _collocation_nodes(kind: str, s: int) -> tuple:
    """The ``s`` collocation points in ``(0, 1]`` of Radau IIA or Gauss-Legendre, increasing."""
    from numpy.polynomial import legendre as L

    # shifted Legendre polynomial P_s(2c - 1) as a Legendre series in (2c - 1)
    ps = np.zeros(s + 1)
    ps[s] = 1.0
    if kind == "radau":  # zeros of P_s - P_{s-1} (the right Radau points, c_s = 1)
        ps[s - 1] = -1.0
    roots = np.sort(np.real(L.legroots(ps)))
    return tuple((roots + 1.0) / 2.0)


@lru_cache(maxsize=None)
def _collocation_tableau(kind: str, s: int) -> tuple:
    c = np.array(_collocation_nodes(kind, s))
    A = np.zeros((s, s))
    b = np.zeros(s)
    for j in range(s):  # Lagrange basis polynomial l_j, integrated from 0
        others = np.delete(c, j)
        poly = np.poly1d(np.poly(others) / np.prod(c[j] - others))
        integral = poly.integ()
        b[j] = integral(1.0) - integral(0.0)
        A[:, j] = integral(c) - integral(0.0)
    return A, b, c


def tableau(method: str, stages: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Butcher tableau ``(A, b, c)`` of ``method`` (``stages`` used by the collocation methods).

    >>> from symgraph.integrator import tableau
    >>> A, b, c = tableau("radau", 2)
    >>> A.round(6).tolist(), b.round(6).tolist(), c.round(6).tolist()
    ([[0.416667, -0.083333], [0.75, 0.25]], [0.75, 0.25], [0.333333, 1.0])
    """
    method = _check_method(method)
    if method == "rk4":
        A = np.array([[0, 0, 0, 0], [0.5, 0, 0, 0], [0, 0.5, 0, 0], [0, 0, 1.0, 0]])
        return A, np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]), np.array([0, 0.5, 0.5, 1.0])
    if method == "dopri5":
        A = np.zeros((7, 7))
        for i, row in enumerate(_DOPRI_A):
            A[i, :len(row)] = row
        return A, np.array(_DOPRI_B), np.array([0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1, 1])
    s = _check_stages(stages)
    A, b, c = _collocation_tableau(method, s)
    return A.copy(), b.copy(), c.copy()


# ---------------------------------------------------------------- checks

def _check_method(method: Any) -> str:
    if not isinstance(method, str) or method.lower() not in METHODS:
        raise InvalidInputError(f"integrator: unknown method {method!r}; expected one of {sorted(METHODS)}")
    return method.lower()


def _check_stages(stages: Any) -> int:
    if isinstance(stages, bool) or not isinstance(stages, (int, np.integer)) or not 1 <= stages <= 9:
        raise OptionError(f"integrator: stages must be an int from 1 to 9, got {stages!r}")
    return int(stages)


def _check_grid(grid: Any) -> np.ndarray:
    try:
        t = np.asarray(grid)
    except Exception as exc:  # ragged lists
        raise InvalidInputError(f"integrator: grid must be a 1-D array of times, got {grid!r}") from exc
    if t.dtype.kind not in "iuf":
        raise DTypeError(f"integrator: grid must hold real numbers, got dtype {t.dtype}")
    if t.ndim != 1 or t.size < 2:
        raise ShapeError(f"integrator: grid must be 1-D with at least 2 times, got shape {t.shape}")
    t = t.astype(float)
    bad = np.flatnonzero(~np.isfinite(t))
    if bad.size:
        raise InvalidInputError(f"integrator: grid[{bad[0]}] is {float(t[bad[0]])}; the grid must be finite")
    dt = np.diff(t)
    bad = np.flatnonzero(dt <= 0)
    if bad.size:
        i = int(bad[0])
        raise InvalidInputError(f"integrator: grid must be strictly increasing, but grid[{i}] = {float(t[i])!r} "
                                f">= grid[{i + 1}] = {float(t[i + 1])!r}")
    return t


def _check_rhs(rhs: Any, controls: Any) -> tuple[bool, ...]:
    """Validate ``rhs``; return, per input after ``x``, whether it is a per-interval control."""
    from .function import Function
    from .structured import StructuredFunction

    if not isinstance(rhs, (Function, StructuredFunction)):
        raise InvalidInputError(f"integrator: rhs must be a symgraph Function (x, u, p) -> xdot, "
                                f"got {type(rhs).__name__}")
    if not 1 <= rhs.n_in or rhs.n_out < 1:
        raise InvalidInputError(f"integrator: rhs {rhs.name} must take the state as input 0 and return its "
                                f"derivative as output 0; it has {rhs.n_in} input(s), {rhs.n_out} output(s)")
    if rhs.output_shapes[0] != rhs.input_shapes[0]:
        raise ShapeError(f"integrator: rhs {rhs.name}'s output 0 ({rhs.output_names[0]!r}, xdot) has shape "
                         f"{rhs.output_shapes[0]}, but its input 0 ({rhs.input_names[0]!r}, the state x) has "
                         f"shape {rhs.input_shapes[0]}")
    if rhs.output_sparsity[0] is not None:
        raise InvalidInputError(f"integrator: rhs {rhs.name}'s output 0 is sparse; give it dense (.to_dense())")
    if int(np.prod(rhs.input_shapes[0])) == 0:
        raise ShapeError(f"integrator: rhs {rhs.name}'s state has size 0 (shape {rhs.input_shapes[0]})")
    n_other = rhs.n_in - 1
    if controls is None:
        chosen = {1} if n_other else set()
    else:
        items = [controls] if isinstance(controls, (int, str, np.integer)) else list(controls)
        chosen = set()
        for item in items:
            if isinstance(item, str):
                if item not in rhs.input_names:
                    raise InvalidInputError(f"integrator: controls names {item!r}, which is not an input of "
                                            f"{rhs.name} (inputs {list(rhs.input_names)})")
                item = rhs.input_names.index(item)
            if isinstance(item, bool) or not isinstance(item, (int, np.integer)) or not 1 <= item < rhs.n_in:
                raise InvalidInputError(f"integrator: controls must name inputs 1..{rhs.n_in - 1} of "
                                        f"{rhs.name} (input 0 is the state), got {item!r}")
            chosen.add(int(item))
    return tuple(k in chosen for k in range(1, rhs.n_in))


# ---------------------------------------------------------------- steps

def _flat(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=object).reshape(-1)


def _rhs_at(rhs: Any, x: np.ndarray, args: Sequence[np.ndarray], shape: tuple) -> np.ndarray:
    out = rhs(np.asarray(x, dtype=object).reshape(shape), *args)
    if rhs.n_out > 1:
        out = out[0]
    return _flat(out)


def _explicit_step(rhs, method, x, h, args, shape, error):
    """One explicit Runge-Kutta step from ``x`` (flat): the next state and, if asked, ``|x5 - x4|``."""
    A, b, _ = tableau(method)
    K = []
    for i in range(len(b)):
        xi = x
        for j in range(i):
            if A[i, j] != 0.0:
                xi = xi + (h * A[i, j]) * K[j]
        K.append(_rhs_at(rhs, xi, args, shape))
    nxt = x
    for j, bj in enumerate(b):
        if bj != 0.0:
            nxt = nxt + (h * bj) * K[j]
    if not error:
        return nxt, None
    diff = sum((h * (bj - b4)) * K[j] for j, (bj, b4) in enumerate(zip(b, _DOPRI_B4)) if bj != b4)
    return nxt, np.array([abs(d) for d in diff], dtype=object)


def _collocation_step(rhs, method, stages, x, h, args, shape, newton):
    """One collocation step: solve for the stage states with the rootfinder, then the next state."""
    from .function import Function

    A, b, _ = tableau(method, stages)
    s, nx = len(b), x.size
    # the stage equations as a residual Function G(z, x, h, args...) -> r
    Z = symbols("Z", s * nx)
    xs, hs = symbols("x0", nx), symbols("h")
    arg_syms = [symbols(f"a{k}", np.shape(a)) for k, a in enumerate(args)]
    Zr = Z.reshape(s, nx)
    F = [_rhs_at(rhs, Zr[j], arg_syms, shape) for j in range(s)]
    res = []
    for i in range(s):
        acc = xs
        for j in range(s):
            acc = acc + (hs * A[i, j]) * F[j]
        res.append(Zr[i] - acc)
    G = Function(f"{rhs.name}_{method}{s}", [Z, xs, hs] + arg_syms, [np.concatenate(res)])
    solve = _stage_solver(G, newton)
    guess = np.concatenate([x] * s)
    Zsol = _flat(solve(guess, x, h, *args)).reshape(s, nx)
    if method == "radau":
        return Zsol[-1]
    nxt = x
    for j in range(s):
        nxt = nxt + (h * b[j]) * _rhs_at(rhs, Zsol[j], args, shape)
    return nxt


def _stage_solver(G: Any, newton: dict) -> Any:
    """The rootfinder ``(z0, *params) -> z`` solving ``G(z, *params) = 0`` (implicit derivatives)."""
    from .rootfinder import rootfinder

    options = dict(NEWTON_DEFAULTS)
    options.update(newton)
    return rootfinder(f"{G.name}_solve", G, **options)


# ---------------------------------------------------------------- public

def integrator(name: str, rhs: Any, grid: Any, method: str = "rk4", *, steps_per_interval: int = 1,
               stages: int = 3, controls: Any = None, error: bool = False, newton: dict | None = None,
               adaptive: bool = False, rtol: float | None = None, atol: float | None = None,
               max_steps: int | None = None) -> Any:
    """The Function ``(x0, u, p) -> xs`` integrating ``x' = rhs(x, u, p)`` over ``grid`` (module docstring).

    Args:
        name: the Function's name.
        rhs: a Function whose input 0 is the state ``x`` and output 0 its
            time derivative (same shape); its other inputs are passed through.
        grid: the ``N + 1`` times, strictly increasing and finite.
        method: ``"rk4"``, ``"dopri5"``, ``"radau"`` or ``"legendre"``.
        steps_per_interval: steps of the method per grid interval.
        stages: collocation stages ``s`` (``"radau"``, ``"legendre"``).
        controls: which inputs of ``rhs`` after ``x`` are piecewise constant
            (one row per interval); default input 1 (``u``).
        error: with ``"dopri5"``, add the error estimate output ``err``.
        newton: options for the rootfinder of the collocation methods.
        adaptive: choose the steps inside each interval by an error
            estimate (``"dopri5"``, ``"radau"``, ``"legendre"``; see
            "Adaptive steps" in the module docstring); ``steps_per_interval``
            must then be 1.
        rtol, atol: the adaptive error tolerances (default ``1e-6``, ``1e-9``).
        max_steps: adaptive step attempts per interval, the loop's trip
            count (default 100).

    Returns:
        A Function of ``x0`` (the state's shape) and ``rhs``'s other inputs
        (controls with a leading axis ``N``), with output ``xs`` of shape
        ``(N + 1,) + x_shape`` (and ``err``, ``(N,) + x_shape``).

    Raises:
        InvalidInputError: unknown method; grid not strictly increasing or
            not finite; ``rhs`` not a Function or ``controls`` naming no input.
        ShapeError: grid not 1-D with two times or more; ``rhs``'s output 0
            not shaped like its input 0.
        DTypeError: a grid that is not real numbers.
        OptionError: bad ``steps_per_interval``, ``stages``, ``error``,
            ``newton``, ``adaptive``, ``rtol``, ``atol`` or ``max_steps``.

    >>> import numpy as np, symgraph as sg
    >>> from symgraph.integrator import integrator
    >>> x, u = sg.symbols("x", 2), sg.symbols("u")
    >>> osc = sg.Function("osc", [x, u], [np.array([x[1], -x[0] + u], dtype=object)])
    >>> I = integrator("osc_int", osc, np.linspace(0.0, np.pi, 5), "dopri5", steps_per_interval=4)
    >>> I.input_shapes, I.output_shapes
    (((2,), (4,)), ((5, 2),))
    >>> xs = I(np.array([1.0, 0.0]), np.zeros(4))
    >>> bool(np.allclose(xs[-1], [-1.0, 0.0], atol=1e-6))
    True
    >>> bad = integrator("bad", osc, [0.0, 1.0, 1.0])
    Traceback (most recent call last):
      ...
    symgraph.errors.InvalidInputError: integrator: grid must be strictly increasing, but grid[1] = 1.0 >= grid[2] = 1.0
    """
    from .function import Function

    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"integrator: name must be a non-empty str, got {name!r}")
    method = _check_method(method)
    if isinstance(steps_per_interval, bool) or not isinstance(steps_per_interval, (int, np.integer)) \
            or steps_per_interval < 1:
        raise OptionError(f"integrator: steps_per_interval must be a positive int, got {steps_per_interval!r}")
    M = int(steps_per_interval)
    collocation = method in ("radau", "legendre")
    if collocation:
        stages = _check_stages(stages)
    if not isinstance(error, (bool, np.bool_)):
        raise OptionError(f"integrator: error must be True or False, got {error!r}")
    if error and method != "dopri5":
        raise OptionError(f"integrator: error=True needs the embedded pair method='dopri5', not {method!r}")
    if newton is None:
        newton = {}
    if not isinstance(newton, dict):
        raise OptionError(f"integrator: newton must be a dict of rootfinder options, got {newton!r}")
    if newton and not collocation:
        raise OptionError(f"integrator: newton options are for the collocation methods, not {method!r}")
    unknown = sorted(set(newton) - set(NEWTON_OPTIONS))
    if unknown:
        raise OptionError(f"integrator: unknown newton option(s) {unknown}; expected some of {list(NEWTON_OPTIONS)}")
    if not isinstance(adaptive, (bool, np.bool_)):
        raise OptionError(f"integrator: adaptive must be True or False, got {adaptive!r}")
    given = [k for k, v in (("rtol", rtol), ("atol", atol), ("max_steps", max_steps)) if v is not None]
    if given and not adaptive:
        raise OptionError(f"integrator: {', '.join(given)} set the adaptive steps; pass adaptive=True "
                          f"(method='dopri5') with them")
    rtol = 1e-6 if rtol is None else rtol
    atol = 1e-9 if atol is None else atol
    max_steps = 100 if max_steps is None else max_steps
    if adaptive:
        if method == "rk4":
            raise OptionError("integrator: adaptive=True needs an error estimate: method 'dopri5', 'radau' or "
                              "'legendre', not 'rk4'")
        if error or M != 1:
            raise OptionError("integrator: adaptive=True chooses its own steps; it takes neither error=True nor "
                              f"steps_per_interval (got error={error!r}, steps_per_interval={M})")
        for label, tol in (("rtol", rtol), ("atol", atol)):
            if isinstance(tol, bool) or not isinstance(tol, (int, float, np.floating, np.integer)) \
                    or not np.isfinite(tol) or tol < 0:
                raise OptionError(f"integrator: {label} must be a finite number >= 0, got {tol!r}")
        if rtol == 0 and atol == 0:
            raise OptionError("integrator: rtol and atol cannot both be 0")
        if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
            raise OptionError(f"integrator: max_steps must be a positive int, got {max_steps!r}")
    t = _check_grid(grid)
    is_control = _check_rhs(rhs, controls)
    N = t.size - 1
    dt = np.diff(t)
    uniform = bool(np.allclose(dt, (t[-1] - t[0]) / N, rtol=1e-10, atol=0.0))  # linspace rounding
    shape = tuple(rhs.input_shapes[0])
    nx = int(np.prod(shape))
    other_shapes = [tuple(s) for s in rhs.input_shapes[1:]]

    if adaptive:
        return _adaptive_integrator(name, rhs, t, shape, other_shapes, is_control, float(rtol), float(atol),
                                    int(max_steps), uniform, method, stages, newton)

    # one step of the method: (x, [h], args...) -> x_next [, err]
    xsym = symbols("x", nx)
    hsym = symbols("h")
    args = [symbols(f"arg{k}", s) for k, s in enumerate(other_shapes)]
    if collocation:
        nxt, err = _collocation_step(rhs, method, stages, xsym, hsym, args, shape, newton), None
    else:
        nxt, err = _explicit_step(rhs, method, xsym, hsym, args, shape, error)
    step = Function(f"{name}_step", [xsym, hsym] + args, [nxt] + ([err] if error else []))

    # one interval: M steps of size h / M; a uniform grid's h is a constant of the body (the C does not grow with N)
    xi, hi = symbols("x", nx), symbols("h")
    ai = [symbols(f"arg{k}", s) for k, s in enumerate(other_shapes)]
    h_int = float((t[-1] - t[0]) / N) if uniform else hi
    if M == 1:
        outs = step(xi, h_int, *ai)
        outs = list(outs) if error else [outs]
        x_end = _flat(outs[0])
        err_end = _flat(outs[1]) if error else None
    else:
        inner = step.fold(M, shared=list(range(1, step.n_in)), last=True)
        outs = inner(xi, h_int / M, *ai)
        outs = list(outs) if error else [outs]
        x_end = _flat(outs[0])
        err_end = np.asarray(outs[1], dtype=object).reshape(M, nx).sum(axis=0) if error else None
    interval_in = [xi] + ([] if uniform else [hi]) + ai
    interval = Function(f"{name}_interval", interval_in, [x_end] + ([err_end] if error else []))
    per_step = ([] if uniform else [True]) + list(is_control)
    shared = [k + 1 for k, f in enumerate(per_step) if not f]
    traj = interval.fold(N, shared=shared)

    # the integrator: (x0, controls with a leading N, constants) -> xs
    X0 = symbols("x0", shape)
    user = _user_inputs(rhs, other_shapes, is_control, N)
    call_args = [_flat(X0)] + ([] if uniform else [np.asarray(dt, dtype=float)]) + user
    outs = traj(*call_args)
    outs = list(outs) if error else [outs]
    states = np.asarray(outs[0], dtype=object).reshape((N,) + shape)
    xs = np.concatenate([np.asarray(X0, dtype=object).reshape((1,) + shape), states], axis=0)
    result = [xs] + ([np.asarray(outs[1], dtype=object).reshape((N,) + shape)] if error else [])
    return Function(name, [X0] + user, result, input_names=_input_names(rhs),
                    output_names=["xs"] + (["err"] if error else []))


def _adaptive_integrator(name, rhs, t, shape, other_shapes, is_control, rtol, atol, max_steps, uniform, method,
                         stages, newton):
    """Steps chosen by an error estimate: a fold of ``max_steps`` attempts per interval."""
    from .array import builder
    from .custom import stop_gradient
    from .expr import const
    from .function import Function

    fmax, fmin, if_else, le, lt, sqrt = (builder(n) for n in ("fmax", "fmin", "if_else", "le", "lt", "sqrt"))
    logical_and, logical_not = builder("and"), builder("not")

    N, nx = t.size - 1, int(np.prod(shape))
    dt = np.diff(t)
    # one attempt: z = [x, tau (time done in the interval), h (the step to try)]
    z, H = symbols("z", nx + 2), symbols("H")
    args = [symbols(f"arg{k}", s) for k, s in enumerate(other_shapes)]
    x, tau, h = z[:nx], z[nx], z[nx + 1]
    remaining = H - tau
    done = le(remaining, H * 1e-12)
    # the step tried (0 once the interval is done: a collocation step of size 0 needs no Newton step);
    # step sizes are not differentiated
    hs = stop_gradient(if_else(done, 0.0, fmin(h, remaining)))
    if method == "dopri5":
        new, diff = _explicit_step(rhs, "dopri5", x, hs, args, shape, True)
        exponent = 1 / 5  # the error of the embedded 4th-order solution
    else:  # step doubling: one step of hs against two of hs / 2 (Richardson's estimate of the latter's error)
        order = 2 * stages - 1 if method == "radau" else 2 * stages
        xa, ha = symbols("x", nx), symbols("h")
        aa = [symbols(f"arg{k}", s) for k, s in enumerate(other_shapes)]
        step = Function(f"{name}_step", [xa, ha] + aa,
                        [_collocation_step(rhs, method, stages, xa, ha, aa, shape, newton)])
        full = _flat(step(x, hs, *args))
        new = _flat(step(_flat(step(x, hs / 2, *args)), hs / 2, *args))
        diff = (new - full) / (2.0 ** order - 1)
        exponent = 1 / (order + 1)
    scaled = [d / (atol + rtol * fmax(abs(a), abs(b))) for d, a, b in zip(diff, x, new)]
    errn = sqrt(sum(e * e for e in scaled) / nx)  # NaN where a Newton iteration failed: rejected, h / 5
    accept = logical_and(logical_not(done), le(errn, 1.0))
    errc = if_else(le(errn, 1e300), fmax(errn, 1e-10), 1e300)  # NaN (a failed Newton iteration): shrink
    factor = fmin(5.0, fmax(0.2, 0.9 * errc ** -exponent))
    nxt = [if_else(accept, a, b) for a, b in zip(new, x)]
    nxt += [if_else(accept, tau + hs, tau), stop_gradient(if_else(done, h, hs * factor))]
    attempt = Function(f"{name}_attempt", [z, H] + args, [np.array(nxt, dtype=object)])
    attempts = attempt.fold(max_steps, shared=list(range(1, attempt.n_in)), last=True)

    # one interval: [x, h] -> [x at its end (NaN if max_steps attempts did not reach it), next h]
    xh, Hi = symbols("xh", nx + 1), symbols("H")
    ai = [symbols(f"arg{k}", s) for k, s in enumerate(other_shapes)]
    H_int = float((t[-1] - t[0]) / N) if uniform else Hi
    zf = _flat(attempts(np.concatenate([xh[:nx], [const(0.0)], xh[nx:]]), H_int, *ai))
    finished = logical_not(lt(zf[nx], H_int * (1 - 1e-9)))
    x_end = [if_else(finished, v, float("nan")) for v in zf[:nx]]
    interval = Function(f"{name}_interval", [xh] + ([] if uniform else [Hi]) + ai,
                        [np.array(x_end + [zf[nx + 1]], dtype=object)])
    per_step = ([] if uniform else [True]) + list(is_control)
    traj = interval.fold(N, shared=[k + 1 for k, f in enumerate(per_step) if not f])

    X0 = symbols("x0", shape)
    user = _user_inputs(rhs, other_shapes, is_control, N)
    start = np.concatenate([_flat(X0), [const(float(dt[0]))]])
    out = np.asarray(traj(start, *([] if uniform else [dt]), *user), dtype=object).reshape(N, nx + 1)
    states = out[:, :nx].reshape((N,) + shape)
    xs = np.concatenate([np.asarray(X0, dtype=object).reshape((1,) + shape), states], axis=0)
    return Function(name, [X0] + user, [xs], input_names=_input_names(rhs), output_names=["xs"])


def _user_inputs(rhs, other_shapes, is_control, N):
    user = []
    for k, (s, ctrl) in enumerate(zip(other_shapes, is_control)):
        label = rhs.input_names[k + 1]
        user.append(symbols(label if label.isidentifier() else f"arg{k}", ((N,) + s) if ctrl else s))
    return user


def _input_names(rhs):
    names_in = [rhs.input_names[0] + "0" if rhs.input_names[0].isidentifier() else "x0"] + \
        [rhs.input_names[k] for k in range(1, rhs.n_in)]
    return _unique(names_in)


def _unique(names: list) -> list:
    seen, out = set(), []
    for k, n in enumerate(names):
        n = n if n not in seen else f"i{k}"
        seen.add(n)
        out.append(n)
    return out
