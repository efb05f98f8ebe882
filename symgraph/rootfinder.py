"""Nonlinear equations ``G(z, p) = 0`` solved for ``z`` as one graph node: Newton's method, implicit derivatives.

:func:`rootfinder` turns a residual Function ``G(z, p1, ..., pk) -> r``
(``z`` and ``r`` of the same size ``n``, any shapes; the parameters ``p1
... pk``, ``k >= 0``, of any shapes) into a native Function
(:mod:`symgraph.native`)::

    R(z0, p1, ..., pk) -> z              (status=False, the default)
    R(z0, p1, ..., pk) -> (z, status)    (status=True)

``z0`` (shaped like ``z``) is the initial guess.  ``R`` is an ordinary
Function: it is called on symbols in graphs, mapped, folded, evaluated by
the VM and compiled; each call is one node.

**The iteration** (the same in the VM, with numpy over all points at once
and a per-point convergence mask, and in C, with ``G``'s compiled C and the
C of the dense Jacobian ``dG/dz``, both emitted once as callees)::

    z = z0; r = G(z, p)
    repeat:
        if max|r| <= tol: converged, stop
        if max_iter Newton steps are done, or r is not finite: failed, stop
        dz = -(dG/dz)^-1 r                 LU with partial pivoting
        alpha = 1; halve alpha until |G(z + alpha dz)|^2 <= (1 - 2e-4 alpha) |r|^2
            (Armijo on |r|^2, at most 40 halvings, else failed, stop;
             line_search=False: always alpha = 1)
        (a step with max|dz| <= step_tol (1 + max|z|) is taken whole: converged, stop)
        z = z + alpha dz

**Status and failure.**  ``status`` is three numbers: ``[converged (1.0 or
0.0), Newton steps taken, max|r| at the returned z]``.  Where the iteration
did not converge, ``z`` is NaN (``on_failure="nan"``, the default) or the
last iterate (``on_failure="last"``): never a silent wrong answer.
:func:`check_status` raises :class:`ConvergenceError` for a status (one
point's or a batch's) that reports a failure; :func:`find_root` evaluates and
checks in one go.  (In complex arithmetic, the VM's complex step, one more
full Newton step is taken after convergence so the imaginary part is
resolved too.)

**Derivatives** (implicit function theorem, at the root, with ``J =
dG/dz`` and ``Gp = dG/dp``; none w.r.t. ``z0``, none of ``status``):
forward ``dz = -J^-1 (Gp dp)``, reverse ``lam = J^-T zbar``, ``pbar =
-Gp^T lam``.  The rules are graphs of ``J`` and ``Gp`` (``G``'s graph
differentiated and written out at the root, so zeros and constants of ``J``
stay visible), ``R`` itself and a linear solve (expanded up to
``linalg.MAX_EXPANDED_SIZE``, else a solve node like
:mod:`symgraph.linsolve`'s whose C skips zero multipliers), so their own
derivatives exist: Hessians through a rootfinder work.  The derivative
costs one linear solve with ``J`` at the root, not a differentiated
iteration.  One caveat of the call-node machinery: a derivative Function
of ``R`` (``R_vjp``) gets ``z`` by calling ``R`` on its operands, so a
gradient Function that calls it runs Newton once more; ``F.inline()`` of
the gradient Function makes that call the primal one (hash-consed), and
the gradient then costs the primal solve plus one linear solve.

**Cost.**  Each Newton step evaluates ``dG/dz`` densely (``n^2`` numbers)
and factors it by LU with partial pivoting; the C skips rows whose
multiplier is zero, so banded and block-sparse Jacobians cost about ``n``
times their fill-in rather than ``n^3 / 3``.  The VM runs the same
iteration with numpy over all points (dense LU).

>>> import numpy as np, symgraph as sg
>>> z, p = sg.symbols("z"), sg.symbols("p")
>>> G = sg.Function("cubic", [z, p], [z**3 + z - p])
>>> R = rootfinder("cubic_root", G)
>>> float(R(0.0, 10.0))                                  # 2^3 + 2 = 10
2.0
>>> q = sg.symbols("q")
>>> D = sg.Function("d", [q], [sg.grad(R(1.0, q), q)])   # dz/dp = 1 / (3 z^2 + 1)
>>> float(D(10.0)) == 1 / 13
True
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .errors import ConvergenceError  # noqa: F401 - raised here, defined with the others
from .errors import InvalidInputError, OptionError, ShapeError, SymgraphError
from .linsolve import _back_substitute, _SolveStructure, lu_factor_batch, lu_solve_c
from .native import NativeStructure, arrays_as_columns, columns_as_arrays

__all__ = ["rootfinder", "check_status", "find_root", "ConvergenceError", "STATUS_FIELDS", "load_native"]

#: what the entries of a status output mean
STATUS_FIELDS = ("converged", "iterations", "residual")

_ARMIJO = 1e-4  # sufficient decrease of |r|^2 / 2 along the Newton step: f(z + a dz) <= (1 - 2 c a) f(z)
_MAX_HALVINGS = 40


# ------------------------------------------------------------------ public API
def rootfinder(name: str, G: Any, *, tol: float = 1e-10, max_iter: int = 50, line_search: bool = True,
               step_tol: float = 0.0, status: bool = False, on_failure: str = "nan") -> Any:
    """The Function ``(z0, p1, ..., pk) -> z`` (or ``(z, status)``) solving ``G(z, p1, ..., pk) = 0`` by Newton.

    See the module docstring for the iteration, the status and the derivatives.

    Args:
        name: the new Function's name.
        G: the residual, a :class:`~symgraph.Function` whose first input is
            ``z`` and whose one (dense) output has ``z``'s size.
        tol: converged when ``max|G(z, p)| <= tol`` (absolute; ``z`` is then
            within about ``tol / |dG/dz|`` of the root).
        max_iter: at most this many Newton steps (``0``: only check ``z0``).
        line_search: backtrack on ``|G|^2`` (Armijo); ``False``: full steps.
        step_tol: also converged by a Newton step with ``max|dz| <= step_tol
            * (1 + max|z|)`` (taken whole, without line search: for residuals
            that rounding keeps above ``tol``); ``0`` (the default) turns
            this off.
        status: add the output ``status = [converged, iterations, residual]``.
        on_failure: ``"nan"``: ``z`` is NaN where not converged; ``"last"``:
            the last iterate.

    Raises:
        InvalidInputError: ``G`` is no Function, has no inputs, not one
            output, or a sparse output.
        ShapeError: ``G``'s output does not have ``z``'s size, or ``z`` is empty.
        OptionError: a bad ``name`` or option.

    >>> import numpy as np, symgraph as sg
    >>> z, A, b = sg.symbols("z", 2), sg.symbols("A", (2, 2)), sg.symbols("b", 2)
    >>> G = sg.Function("lin", [z, A, b], [A @ z - b])
    >>> R = rootfinder("lin_root", G, status=True)
    >>> zv, st = R(np.zeros(2), np.array([[2.0, 1.0], [1.0, 3.0]]), np.array([3.0, 4.0]))
    >>> zv.tolist(), st.tolist()
    ([1.0, 1.0], [1.0, 1.0, 0.0])
    """
    from .function import Function

    if not isinstance(name, str) or not name:
        raise OptionError(f"rootfinder: name must be a non-empty str, got {name!r}")
    if not isinstance(G, Function):
        raise InvalidInputError(f"rootfinder {name!r}: the residual must be a symgraph Function G(z, p...) -> r, "
                                f"got {type(G).__name__}")
    if G.n_in < 1 or G.n_out != 1:
        raise InvalidInputError(f"rootfinder {name!r}: the residual Function {G.name!r} must have inputs (z, p...) "
                                f"and exactly one output r; it has {G.n_in} input(s) and {G.n_out} output(s)")
    if G.output_sparsity[0] is not None:
        raise InvalidInputError(f"rootfinder {name!r}: the residual of {G.name!r} is a sparse output; "
                                f"give a dense one")
    z_shape, r_shape = tuple(G.input_shapes[0]), tuple(G.output_shapes[0])
    n, m = int(np.prod(z_shape, dtype=np.int64)), int(np.prod(r_shape, dtype=np.int64))
    if n == 0:
        raise ShapeError(f"rootfinder {name!r}: the unknown z (first input of {G.name!r}) is empty "
                         f"(shape {z_shape})")
    if m != n:
        raise ShapeError(f"rootfinder {name!r}: the residual of {G.name!r} has shape {r_shape} ({m} entries) but "
                         f"the unknown z has shape {z_shape} ({n} entries); they must have the same size")
    options = _options(name, tol, max_iter, line_search, step_tol, status, on_failure)
    return _RootfinderStructure(name, G, options).function(name)


def check_status(status: Any, name: str = "rootfinder") -> None:
    """Raise :class:`ConvergenceError` if ``status`` (``(3,)`` or a batch ``(N, 3)``) reports a failure.

    >>> check_status(np.array([1.0, 4.0, 1e-12]))
    >>> check_status(np.array([[1.0, 4.0, 1e-12], [0.0, 50.0, 0.3]]), "steady")
    Traceback (most recent call last):
    ...
    symgraph.errors.ConvergenceError: steady did not converge at 1 of 2 point(s) (first: point 1, 50 Newton steps, max|G| = 0.3)
    """
    st = np.asarray(status, dtype=np.float64)
    if st.ndim == 0 or st.shape[-1] != len(STATUS_FIELDS):
        raise ShapeError(f"check_status: a status has shape (3,) or (N, 3), got {st.shape}")
    flat = st.reshape(-1, len(STATUS_FIELDS))
    failed = np.flatnonzero(flat[:, 0] != 1.0)
    if failed.size:
        k = int(failed[0])
        where = f"point {k}, " if st.ndim > 1 else ""
        raise ConvergenceError(f"{name} did not converge at {failed.size} of {flat.shape[0]} point(s) "
                               f"(first: {where}{int(flat[k, 1])} Newton steps, max|G| = {flat[k, 2]:.3g})")


def find_root(R: Any, *args: Any) -> np.ndarray:
    """``z`` from a rootfinder Function made with ``status=True``, evaluated (VM) and checked.

    Batched arguments (a leading axis of points, as for ``Function.batch``)
    are accepted; any point that fails raises :class:`ConvergenceError`.

    >>> import symgraph as sg
    >>> z, p = sg.symbols("z"), sg.symbols("p")
    >>> R = rootfinder("sqrt", sg.Function("g", [z, p], [z * z - p]), status=True)
    >>> abs(float(find_root(R, 1.0, 2.0)) - 2 ** 0.5) < 1e-11
    True
    >>> find_root(R, 0.0, -1.0)
    Traceback (most recent call last):
    ...
    symgraph.errors.ConvergenceError: sqrt did not converge at 1 of 1 point(s) (first: 0 Newton steps, max|G| = 1)
    """
    s = getattr(R, "structure", None)
    if not isinstance(s, _RootfinderStructure) or not s.options["status"]:
        raise InvalidInputError(f"find_root: expected a rootfinder Function made with status=True, got {R!r}")
    batched = any(np.ndim(a) > len(shape) for a, shape in zip(args, R.input_shapes))
    z, st = R.batch(*args) if batched else R(*args)
    check_status(st, R.name)
    return z


# ------------------------------------------------------------------ options
def _options(name: str, tol: Any, max_iter: Any, line_search: Any, step_tol: Any, status: Any,
             on_failure: Any) -> dict:
    where = f"rootfinder {name!r}"
    for label, value, positive in (("tol", tol, True), ("step_tol", step_tol, False)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not math.isfinite(float(value)) or float(value) < 0 or (positive and float(value) == 0):
            raise OptionError(f"{where}: {label} must be a finite number {'> 0' if positive else '>= 0'}, "
                              f"got {value!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 0:
        raise OptionError(f"{where}: max_iter must be an int >= 0, got {max_iter!r}")
    for label, value in (("line_search", line_search), ("status", status)):
        if not isinstance(value, (bool, np.bool_)):
            raise OptionError(f"{where}: {label} must be True or False, got {value!r}")
    if on_failure not in ("nan", "last"):
        raise OptionError(f"{where}: on_failure must be 'nan' or 'last', got {on_failure!r}")
    return {"tol": float(tol), "max_iter": int(max_iter), "line_search": bool(line_search),
            "step_tol": float(step_tol), "status": bool(status), "on_failure": on_failure}


# ------------------------------------------------------------------ the structure
class _RootfinderStructure(NativeStructure):
    """``(z0, p...) -> z [, status]``: Newton on ``G(z, p...) = 0``; see the module docstring."""

    def __init__(self, name: str, G: Any, options: dict) -> None:
        from .ad import jacobian
        from .function import Function

        self.G, self.options, self.name = G, options, name
        self.z_shape = tuple(G.input_shapes[0])
        self.n = int(np.prod(self.z_shape, dtype=np.int64))
        self.p_shapes = [tuple(s) for s in G.input_shapes[1:]]
        z = np.asarray(G.inputs[0], dtype=object).reshape(-1)
        r = np.asarray(G.outputs[0], dtype=object).reshape(-1)
        #: dG/dz, dense (n, n), over G's own inputs; as a Function (row-major output) called by the VM and the C
        self.J = jacobian(r, z).to_dense()
        self.Jz = Function(f"{name}_dGdz", list(G.inputs), [self.J], input_names=list(G.input_names)).optimize()
        self.children = (G, self.Jz)
        outputs = [self.z_shape] + ([(len(STATUS_FIELDS),)] if options["status"] else [])
        names = ["z"] + (["status"] if options["status"] else [])
        super().__init__([self.z_shape] + self.p_shapes, outputs, ["z0"] + list(G.input_names[1:]), names)
        self.label = (f"rootfinder, Newton{' with line search' if options['line_search'] else ''} on "
                      f"{G.name}, n = {self.n}")
        self._programs: dict = {}

    @property
    def savable(self) -> bool:  # type: ignore[override]
        return _registered("rootfinder")

    def to_data(self, index: dict) -> tuple:
        """``("native", "rootfinder", name, G, options)``: ``G`` by ``index``; the Jacobian is rebuilt from it.

        (``index[self.Jz]`` only in the build cache's key, which must see the Jacobian's C.)
        """
        jz = () if isinstance(index[self.G], int) else (index[self.Jz],)
        return ("native", "rootfinder", self.name, index[self.G], tuple(sorted(self.options.items()))) + jz

    def pattern(self) -> Any:
        """``z`` depends on every parameter and not on ``z0``; ``status`` has no derivative."""
        from .sparsity import Sparsity

        n, n0 = self.n, self.n
        cols = np.arange(n0, self.n_operands, dtype=np.int64)
        return Sparsity(np.tile(np.arange(n, dtype=np.int64), cols.size), np.repeat(cols, n),
                        (self.n_results, self.n_operands))

    # ------------------------------------------------------------ numpy (the VM)
    def _run(self, F: Any, z: np.ndarray, ps: list) -> np.ndarray:
        from . import vm

        prog = self._programs.get(F)
        if prog is None:
            prog = self._programs[F] = vm.program(F.tape)
        return vm.run(F.tape, [z] + ps, prog)[0]

    def evaluate(self, columns: list, width: int) -> list:
        arrays = columns_as_arrays(columns, self.in_shapes, width)
        z0 = arrays[0].reshape(width, self.n)
        ps = [a.reshape(width, -1) for a in arrays[1:]]
        z, ok, steps, rn = self.newton(z0, ps)
        if self.options["on_failure"] == "nan":
            z[~ok] = np.nan
        out = [z.reshape((width,) + self.z_shape)]
        if self.options["status"]:
            out.append(np.stack([ok.astype(np.float64), steps.astype(np.float64), rn], axis=1).astype(z.dtype))
        return arrays_as_columns(out, width)

    def _residual(self, z: np.ndarray, ps: list, idx: np.ndarray) -> np.ndarray:
        return self._run(self.G, z, [p[idx] for p in ps])

    def _step(self, z: np.ndarray, r: np.ndarray, ps: list, idx: np.ndarray) -> np.ndarray:
        """The Newton steps ``-J^-1 r`` at the points ``idx``."""
        J = self._run(self.Jz, z, [p[idx] for p in ps]).reshape(-1, self.n, self.n)
        U, B, _ = lu_factor_batch(J, -r[:, :, None])
        return _back_substitute(U, B)[:, :, 0]

    def newton(self, z0: np.ndarray, ps: list) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The iteration on all points: ``(z, converged, steps, max|r|)``, each with a leading axis of points."""
        o = self.options
        N = z0.shape[0]
        dtype = np.result_type(np.float64, z0.dtype, *[p.dtype for p in ps])
        z = np.array(z0, dtype=dtype)
        ps = [np.asarray(p, dtype=dtype) for p in ps]
        everyone = np.arange(N)
        r = self._residual(z, ps, everyone) if N else np.zeros((0, self.n), dtype)
        f = np.sum(np.abs(r) ** 2, axis=1)
        rn = np.max(np.abs(r), axis=1)
        steps = np.zeros(N, dtype=np.int64)
        ok = np.zeros(N, dtype=bool)
        active = everyone
        with np.errstate(all="ignore"):
            while active.size:
                conv = rn[active] <= o["tol"]
                ok[active[conv]] = True
                go = ~conv & np.isfinite(rn[active]) & (steps[active] < o["max_iter"])
                active = active[go]
                if not active.size:
                    break
                dz = self._step(z[active], r[active], ps, active)
                good = np.all(np.isfinite(dz), axis=1)
                active, dz = active[good], dz[good]
                alpha = np.ones(active.size)
                small = np.zeros(active.size, dtype=bool)
                if o["step_tol"] > 0:  # a negligible step: taken whole, converged (rounding may defeat Armijo)
                    small = np.max(np.abs(dz), axis=1) <= o["step_tol"] * (1.0 + np.max(np.abs(z[active]), axis=1))
                pending = np.arange(active.size)  # positions in active still searching
                zt, rt, ft = z[active].copy(), r[active].copy(), f[active].copy()
                for _ in range(_MAX_HALVINGS + 1):
                    at = active[pending]
                    trial = z[at] + alpha[pending, None] * dz[pending]
                    rtrial = self._residual(trial, ps, at)
                    ftrial = np.sum(np.abs(rtrial) ** 2, axis=1)
                    accept = small[pending] | (ftrial <= (1.0 - 2.0 * _ARMIJO * alpha[pending]) * f[at]) \
                        if o["line_search"] else np.ones(pending.size, dtype=bool)
                    done = pending[accept]
                    zt[done], rt[done], ft[done] = trial[accept], rtrial[accept], ftrial[accept]
                    pending = pending[~accept]
                    if not pending.size:
                        break
                    alpha[pending] *= 0.5
                moved = np.ones(active.size, dtype=bool)
                moved[pending] = False  # line search failed: stop there, not converged
                active, small = active[moved], small[moved]
                z[active], r[active], f[active] = zt[moved], rt[moved], ft[moved]
                rn[active] = np.max(np.abs(r[active]), axis=1)
                steps[active] += 1
                ok[active[small]] = True
                active = active[~small]
            if np.iscomplexobj(z) and ok.any():  # complex step: resolve the imaginary part too
                at = np.flatnonzero(ok)
                z[at] = z[at] + self._step(z[at], r[at], ps, at)
        return z, ok, steps, rn.real.astype(np.float64)

    # ------------------------------------------------------------ C
    def c_function(self, fname: str, callees: dict) -> tuple[str, int]:
        o, n = self.options, self.n
        g, jz = callees[self.G], callees[self.Jz]
        n_in = 1 + len(self.p_shapes)
        plist = "".join(f", arg[{k}]" for k in range(1, n_in))
        tol, step_tol = repr(o["tol"]), repr(o["step_tol"])
        accept = (f"small || ft <= (1.0 - {2.0 * _ARMIJO!r} * alpha) * f" if o["line_search"] else "1")
        nan = o["on_failure"] == "nan"
        lines = [
            f"void {fname}(const double *const *arg, double *const *res, double *w) {{",
            f"  /* {self.label} */",
            f"  double *z = w, *r = w + {n}, *zt = w + {2 * n}, *rt = w + {3 * n}, *dz = w + {4 * n}, "
            f"*J = w + {5 * n}, *cw = w + {5 * n + n * n};",
            f"  const double *a[{n_in}] = {{z{plist}}};",
            "  double *q[1] = {r};",
            "  double f = 0.0, rn = 0.0;",
            "  long it = 0; int ok = 0;",
            f"  for (long i = 0; i < {n}; ++i) z[i] = arg[0][i];",
            f"  {g.name}(a, q, cw);",
            f"  for (long i = 0; i < {n}; ++i) {{ double v = fabs(r[i]); f += r[i] * r[i]; "
            "if (v != v || v > rn) rn = v; }",  # a NaN entry makes rn NaN
            "  for (;;) {",
            f"    if (rn <= {tol}) {{ ok = 1; break; }}",
            f"    if (!isfinite(rn) || it >= {o['max_iter']}) break;",
            "    a[0] = z; q[0] = J;",
            f"    {jz.name}(a, q, cw);",
            f"    for (long i = 0; i < {n}; ++i) dz[i] = -r[i];",
            *lu_solve_c(n, 1, "J", "dz", "    ", skip_zeros=True),
            "    int finite = 1;",
            f"    for (long i = 0; i < {n}; ++i) if (!isfinite(dz[i])) finite = 0;",
            "    if (!finite) break;",
            "    double zn = 0.0, dn = 0.0;",
            f"    for (long i = 0; i < {n}; ++i) {{ if (fabs(z[i]) > zn) zn = fabs(z[i]); "
            "if (fabs(dz[i]) > dn) dn = fabs(dz[i]); }",
            f"    int small = {step_tol} > 0.0 && dn <= {step_tol} * (1.0 + zn);",
            "    double alpha = 1.0, ft = 0.0; int found = 0;",
            f"    for (int h = 0; h <= {_MAX_HALVINGS}; ++h) {{",
            f"      for (long i = 0; i < {n}; ++i) zt[i] = z[i] + alpha * dz[i];",
            "      a[0] = zt; q[0] = rt;",
            f"      {g.name}(a, q, cw);",
            "      ft = 0.0;",
            f"      for (long i = 0; i < {n}; ++i) ft += rt[i] * rt[i];",
            f"      if ({accept}) {{ found = 1; break; }}",
            "      alpha *= 0.5;",
            "    }",
            "    if (!found) break;",
            f"    for (long i = 0; i < {n}; ++i) {{ z[i] = zt[i]; r[i] = rt[i]; }}",
            "    f = ft; rn = 0.0; ++it;",
            f"    for (long i = 0; i < {n}; ++i) {{ double v = fabs(r[i]); if (v != v || v > rn) rn = v; }}",
            "    if (small) { ok = 1; break; }",
            "  }",
            f"  for (long i = 0; i < {n}; ++i) res[0][i] = {'ok ? z[i] : NAN' if nan else 'z[i]'};",
        ]
        if o["status"]:
            lines += ["  if (res[1]) { res[1][0] = ok; res[1][1] = (double)it; res[1][2] = rn; }"]
        lines.append("}\n")
        return "\n".join(lines), 5 * n + n * n + max(g.work_size, jz.work_size)

    # ------------------------------------------------------------ derivatives
    def make_rules(self, F: Any) -> dict:
        """The jvp and vjp rules: ``G``'s Jacobians written out at the root (substituted, so their zeros and
        constants stay visible to the optimizer) and :func:`symgraph.linalg.solve`."""
        from .ad import jvp as jvp_of, vjp as vjp_of
        from .call import call_function
        from .function import Function
        from .substitution import substitute

        n, status, G = self.n, self.options["status"], self.G
        zeros_z = np.zeros(self.z_shape, dtype=object)
        zeros_z[...] = 0.0
        z0, tz0 = _symbols("z0", self.z_shape), _symbols("tz0", self.z_shape)
        ps = [_symbols(f"p{k}", s) for k, s in enumerate(self.p_shapes)]
        tps = [_symbols(f"tp{k}", s) for k, s in enumerate(self.p_shapes)]
        zs, zbar = _symbols("z", self.z_shape), _symbols("zbar", self.z_shape)
        st_in = [_symbols("status", (3,)), _symbols("statusbar", (3,))] if status else []
        extra_out = [np.zeros(3, dtype=object) + 0.0] if status else []
        vjp_inputs = [z0, *ps, zs] + st_in[:1] + [zbar] + st_in[1:]
        if not self.p_shapes:  # no parameters: z does not change
            return {"jvp": Function(f"{F.name}_jvp_rule", [z0, tz0], [zeros_z] + extra_out),
                    "vjp": Function(f"{F.name}_vjp_rule", vjp_inputs, [zeros_z])}
        old = [np.asarray(a, dtype=object) for a in G.inputs]
        r = np.asarray(G.outputs[0], dtype=object).reshape(-1)
        pflat = np.concatenate([a.reshape(-1) for a in old[1:]])

        out = call_function(F, [z0, *ps])
        zc = np.asarray(out[0] if status else out, dtype=object)
        J = np.asarray(substitute(self.J, old, [zc, *ps]), dtype=object).reshape(n, n)
        tflat = np.concatenate([t.reshape(-1) for t in tps])
        d = np.asarray(substitute(np.asarray(jvp_of(r, pflat, tflat), dtype=object), old, [zc, *ps]),
                       dtype=object).reshape(n)
        tz = _solve(J, -d).reshape(self.z_shape)
        jvp = Function(f"{F.name}_jvp_rule", [z0, *ps, tz0, *tps], [tz] + extra_out)

        Jr = np.asarray(substitute(self.J, old, [zs, *ps]), dtype=object).reshape(n, n)
        lam = _solve(Jr.T, zbar.reshape(n)).reshape(n)
        mu = _symbols("lam", (n,))
        pbar = -np.asarray(substitute(np.asarray(vjp_of(r, pflat, mu), dtype=object), old + [mu], [zs, *ps, lam]),
                           dtype=object).reshape(-1)
        pbars, k = [], 0
        for shape in self.p_shapes:
            size = int(np.prod(shape, dtype=np.int64))
            pbars.append(pbar[k:k + size].reshape(shape))
            k += size
        vjp = Function(f"{F.name}_vjp_rule", vjp_inputs, [zeros_z, *pbars])
        return {"jvp": jvp, "vjp": vjp}


class _SkippingSolveStructure(_SolveStructure):
    """The solve node of :mod:`symgraph.linsolve` whose C skips zero multipliers (sparse Jacobians at a root)."""

    def __init__(self, n: int, rhs: tuple) -> None:
        super().__init__(n, rhs)
        self.label = self.label.replace("LU with partial pivoting", "LU with partial pivoting, zero rows skipped")

    @property
    def savable(self) -> bool:  # type: ignore[override]
        return _registered("solve_skipping_zeros")

    def to_data(self, index: dict) -> tuple:
        return ("native", "solve_skipping_zeros", self.n, self.rhs)

    def c_function(self, fname: str, callees: dict) -> tuple[str, int]:
        n, k = self.n, self.k
        lines = [f"void {fname}(const double *const *arg, double *const *res, double *w) {{",
                 f"  /* {self.label} */",
                 "  double *x = res[0];",
                 f"  for (long i = 0; i < {n * n}; ++i) w[i] = arg[0][i];",
                 f"  for (long i = 0; i < {n * k}; ++i) x[i] = arg[1][i];",
                 *lu_solve_c(n, k, "w", "x", "  ", skip_zeros=True),
                 "}\n"]
        return "\n".join(lines), n * n


_SKIPPING_SOLVES: dict = {}


def _solve(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``A^-1 b`` in a graph (``b`` a vector): expanded for small ``n``, else a solve node skipping zeros in C."""
    from .call import call_function
    from .linalg import MAX_EXPANDED_SIZE, solve

    n = A.shape[0]
    if n <= MAX_EXPANDED_SIZE:
        return np.asarray(solve(A, b), dtype=object)
    return np.asarray(call_function(_skipping_solve_function(n), [A, b]), dtype=object)


def _skipping_solve_function(n: int) -> Any:
    """The native ``(A, b) -> A^-1 b`` (``b`` a vector) whose C skips zero multipliers; one per ``n``."""
    F = _SKIPPING_SOLVES.get(n)
    if F is None:
        F = _SKIPPING_SOLVES.setdefault(n, _SkippingSolveStructure(n, ()).function(f"solve{n}_skipping_zeros"))
    return F


def _registered(kind: str) -> bool:
    """Whether :data:`symgraph.native.NATIVE_MODULES` sends ``kind`` here (a file may then hold it)."""
    from . import native

    return getattr(native, "NATIVE_MODULES", {}).get(kind) == __name__


def load_native(record: Any, table: list, label: str) -> Any:
    """The Function of a ``("native", "rootfinder", ...)`` or ``("native", "solve_skipping_zeros", n, rhs)`` record.

    ``record`` is what ``to_data`` wrote, ``table`` the Functions loaded
    before it (the residual among them); anything else raises
    :class:`~symgraph.errors.SerializationError` starting with ``label``.

    >>> import symgraph as sg
    >>> z, p = sg.symbols("z"), sg.symbols("p")
    >>> G = sg.Function("g", [z, p], [z * z - p])
    >>> R = load_native(("native", "rootfinder", "sq", 0, (("max_iter", 20), ("tol", 1e-12))), [G], "record")
    >>> R.name, abs(float(R(1.0, 4.0)) - 2.0) < 1e-12
    ('sq', True)
    >>> load_native(("native", "rootfinder", "sq", 5, ()), [G], "record")
    Traceback (most recent call last):
    ...
    symgraph.errors.SerializationError: record: a native rootfinder record is ('native', 'rootfinder', name, residual, options) with the residual an earlier Function of the file and options (name, value) pairs; got ('native', 'rootfinder', 'sq', 5, ())
    """
    from .errors import SerializationError
    from .function import Function, data_repr

    if record[1] == "solve_skipping_zeros":
        if len(record) == 4 and type(record[2]) is int and 1 <= record[2] <= 4096 and record[3] == ():
            return _skipping_solve_function(record[2])
        raise SerializationError(f"{label}: a native solve_skipping_zeros record is ('native', "
                                 f"'solve_skipping_zeros', n, ()) with 1 <= n <= 4096; got {data_repr(record)}")
    ok = (len(record) == 5 and type(record[2]) is str and record[2] and type(record[3]) is int
          and 0 <= record[3] < len(table) and isinstance(table[record[3]], Function) and isinstance(record[4], tuple)
          and all(isinstance(o, tuple) and len(o) == 2 and o[0] in _OPTION_NAMES for o in record[4]))
    if not ok:
        raise SerializationError(f"{label}: a native rootfinder record is ('native', 'rootfinder', name, residual, "
                                 f"options) with the residual an earlier Function of the file and options (name, "
                                 f"value) pairs; got {data_repr(record)}")
    try:
        return rootfinder(record[2], table[record[3]], **dict(record[4]))
    except SymgraphError as exc:
        raise SerializationError(f"{label}: {exc}") from exc


_OPTION_NAMES = ("tol", "max_iter", "line_search", "step_tol", "status", "on_failure")


def _symbols(name: str, shape: tuple) -> np.ndarray:
    from .array import symbols

    return np.asarray(symbols(name, shape), dtype=object)
