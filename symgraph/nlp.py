"""NLP: a nonlinear program stated once, solved with compiled exact callbacks.

``minimize f(x, p)  subject to  lbg <= g(x, p) <= ubg,  lbx <= x <= ubx``

:class:`NLP` builds, symbolically and once, the objective, its gradient, the
constraints, the sparse constraint Jacobian and the sparse lower triangle of
the Hessian of the Lagrangian ``sigma*f + lambda'g``, compiles them to C
(cached on disk, so a second process pays no compile) and exposes them as
fast callbacks that write into preallocated arrays in the fixed COO order
IPOPT expects.  Parameters ``p`` are Function inputs, so changing them
between solves never recompiles.

Solvers: :meth:`NLP.solve_ipopt` (cyipopt, optional extra ``ipopt``),
:meth:`NLP.scipy_minimize` (trust-constr, SLSQP, L-BFGS-B), and
:func:`symgraph.least_squares`.

>>> import numpy as np, symgraph as sg
>>> x = sg.symbols("x", 2)
>>> nlp = sg.NLP(x=x, f=(x[0] - 1) ** 2 + 10 * (x[1] + x[0]) ** 2, jit=False)
>>> sol = nlp.scipy_minimize([3.0, 3.0], method="L-BFGS-B")
>>> np.round(sol.x, 5).tolist()
[1.0, -1.0]
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from itertools import chain
from operator import attrgetter
from typing import Any

import numpy as np

from .array import as_expr_array, symbols
from .errors import DTypeError, FreeSymbolError, InvalidInputError, ShapeError, SymgraphError
from .expr import SYMBOL, building, free_symbols
from .function import Function
from .sparsity import Sparsity

_OP, _ARGS = attrgetter("op"), attrgetter("args")


@dataclass
class CallbackStats:
    """How often, and for how long, each callback ran."""

    calls: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)

    def record(self, name: str, seconds: float) -> None:
        """Count one call of callback ``name`` that took ``seconds``."""
        self.calls[name] = self.calls.get(name, 0) + 1
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    @property
    def total_seconds(self) -> float:
        """Time spent in all callbacks together."""
        return sum(self.seconds.values())


class NLP:
    """A nonlinear program with compiled, exact, sparse callbacks.

    Args:
        x: decision variables (a symbol or array of symbols; flattened).
        f: scalar objective.
        g: constraints (Expr or array; flattened), or None.
        p: parameters (symbol or array; flattened), or None.
        jit: compile the callbacks to C (default); False evaluates them in
            the numpy VM (no compiler needed, much slower).
        compile_options: passed to :meth:`Function.compile`; ``tier`` defaults to ``"auto"``
            here: the callbacks start on tcc's code and switch to the optimizing compiler's
            when its background build is done (see :mod:`codegen.runtime`).
        name: prefix of the generated functions.

    >>> import symgraph as sg
    >>> x, p = sg.symbols("x", 2), sg.symbols("p")
    >>> nlp = sg.NLP(x=x, f=(x[0] - p) ** 2 + x[1] ** 2, g=x[0] + x[1], p=p, jit=False)
    >>> nlp.n, nlp.m, nlp.jacobian_structure.nnz, nlp.hessian_structure.nnz
    (2, 1, 2, 2)
    """

    def __init__(self, x: Any, f: Any, g: Any = None, p: Any = None, *, jit: bool = True,
                 compile_options: dict | None = None, name: str = "nlp") -> None:
        with building():  # the whole set-up makes graph nodes and arrays: no cyclic-GC passes over them
            self._set_up(x, f, g, p, jit, compile_options, name)

    def _set_up(self, x: Any, f: Any, g: Any, p: Any, jit: bool, compile_options: dict | None, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidInputError(f"NLP name must be a non-empty str, got {name!r}")
        if compile_options is not None and not isinstance(compile_options, dict):
            raise InvalidInputError(f"NLP compile_options must be a dict of Function.compile options or None, "
                                    f"got {type(compile_options).__name__} {compile_options!r}")
        self.x = _flat_symbols(x, "x")
        self.p = _flat_symbols(p, "p") if p is not None else np.empty(0, dtype=object)
        f_arr = expr_array(f, "NLP objective f")
        if f_arr.size != 1:
            raise ShapeError(f"NLP objective f must be a scalar expression, got shape {f_arr.shape}")
        self.f = f_arr.reshape(())[()]
        self.g = expr_array(g, "NLP constraints g").reshape(-1) if g is not None else np.empty(0, dtype=object)
        self.n, self.m = len(self.x), len(self.g)
        _check_free(self.x, self.p, [self.f, *self.g])
        self.jit = jit
        self.stats = CallbackStats()
        self._p_value = np.zeros(len(self.p))
        self._name = name
        self._functions: dict | None = None
        options = dict(compile_options or {})
        options.setdefault("tier", "auto")  # IPOPT starts on tcc's code; the optimized code follows
        key = _set_up_key(self, options) if jit else None
        if key is not None and _load_set_up(self, key, options):
            return
        self._derive(name)
        if jit:
            self._eval = _compile_all(self._functions, options, self._finish_derive)
        else:
            self._finish_derive()
            self._eval = dict(self._functions)
        if key is not None:
            _store_set_up(self, key, options)

    @property
    def functions(self) -> dict:
        """The five callback Functions (``f``, ``grad_f``, ``g``, ``jac_g``, ``hess_l``).

        After a warm start (the whole set-up found in the cache) they are
        derived on first use: the compiled callbacks did not need them.
        """
        if self._functions is None:
            with _DERIVE_LOCK:
                if self._functions is None:
                    with building():
                        self._derive(self._name)
                self._finish_derive()
        return self._functions

    def _derive(self, name: str) -> None:
        """Differentiate and build the callback Functions (and the sparsity structures and sums)."""
        from .tiled import Triplets, tiled_derivatives
        from .progress import phase

        with building(), phase("differentiate", name, self.n + self.m, "variables and constraints") as step:
            sigma = symbols("sigma")
            lam = symbols("lambda", self.m)
            hessian_spec = (f"{name}_hess_l", [self.x, self.p, sigma, lam], ["x", "p", "sigma", "lambda"])
            t = tiled_derivatives(self.x, self.f, self.g, sigma, lam, hessian_spec)
            step.detail = "tiled (mapped terms)" if t.tiled else "general sparse AD"
            if not isinstance(t.hessian, Triplets):
                step.detail += ", the Hessian in a forked process"
        structures = self._functions is None and not hasattr(self, "tiled")  # a warm start keeps the cached ones
        if structures:
            # mapped terms give COO triplets instance by instance: a position may repeat (values add up)
            self.tiled = t.tiled
            # tiled values come instance by instance, so a position may repeat: each callback's values are
            # summed into the distinct positions (CSC order) by one precomputed bincount
            self.jacobian_structure, self._jacobian_sum = _distinct(t.jacobian.rows, t.jacobian.cols,
                                                                    (self.m, self.n))
            self._gradient_cols = t.gradient.cols
        xp = [self.x, self.p]
        names = ["x", "p"]
        functions = {
            "f": Function(f"{name}_f", xp, [self.f], input_names=names),
            "grad_f": (t.gradient.function(f"{name}_grad_f", xp, names, dense=t.gradient_dense) if t.tiled
                       else Function(f"{name}_grad_f", xp, [t.gradient_dense], input_names=names)),
            "g": _values_function(f"{name}_g", xp, self.g, names, t.operand_columns),
            "jac_g": t.jacobian.function(f"{name}_jac_g", xp, names),
        }

        def hessian() -> Function:  # waits for a forked child, where one builds the Hessian
            if structures:
                self.hessian_structure, self._hessian_sum = _distinct(t.hessian.rows, t.hessian.cols,
                                                                      (self.n, self.n))
            return t.hessian.function(*hessian_spec)

        if isinstance(t.hessian, Triplets):
            functions["hess_l"] = hessian()
        else:  # the set-up compiles the others first, then asks for it (see _compile_all)
            self._pending_hessian = hessian
        self._functions = functions

    def _finish_derive(self) -> None:
        """Take the Hessian from the forked child, where one builds it (:meth:`_derive`)."""
        pending = self.__dict__.pop("_pending_hessian", None)
        if pending is not None:
            with building():
                self._functions["hess_l"] = pending()

    # ------------------------------------------------------------ parameters
    def set_parameters(self, p: Any) -> None:
        """Set the parameter values used by the callbacks (no recompilation).

        >>> import symgraph as sg
        >>> x, p = sg.symbols("x", 1), sg.symbols("p")
        >>> nlp = sg.NLP(x=x, f=(x[0] - p) ** 2, p=p, jit=False)
        >>> nlp.set_parameters(3.0); float(nlp.objective([1.0]))
        4.0
        """
        value = real_values(p if p is not None else [], "NLP parameters p").reshape(-1)
        if value.shape != (len(self.p),):
            raise ShapeError(f"NLP parameters p: expected {len(self.p)} values, got {value.size}")
        self._p_value = value

    def check_x(self, x: Any) -> np.ndarray:
        """``x`` as a float vector of length n (shared by every solver adapter and callback).

        The checks of ``Function.__call__``: real numbers only (None, strings,
        complex numbers, dicts and other objects are a DTypeError), and the
        right count (a ShapeError).

        >>> import symgraph as sg
        >>> x = sg.symbols("x", 2)
        >>> sg.NLP(x=x, f=x.sum(), jit=False).check_x([1, 2]).tolist()
        [1.0, 2.0]
        """
        value = real_values(x, "NLP: x").reshape(-1)
        if value.shape != (self.n,):
            raise ShapeError(f"NLP: x must have {self.n} values, got {value.size}")
        return value

    def _timed(self, key: str, *args: Any):
        start = time.perf_counter()
        out = self._eval[key](*args)
        self.stats.record(key, time.perf_counter() - start)
        return out

    # ------------------------------------------------------------- callbacks
    def objective(self, x: Any) -> float:
        """f(x, p)."""
        return float(self._timed("f", self.check_x(x), self._p_value))

    def gradient(self, x: Any) -> np.ndarray:
        """Gradient of f at x (dense, length n)."""
        out = self._timed("grad_f", self.check_x(x), self._p_value)
        if not self.tiled:
            return out
        dense, values = out
        return dense + np.bincount(self._gradient_cols, values, minlength=self.n)

    def constraints(self, x: Any) -> np.ndarray:
        """g(x, p) (length m)."""
        return self._timed("g", self.check_x(x), self._p_value)

    def jacobian_values(self, x: Any) -> np.ndarray:
        """Nonzeros of dg/dx in :attr:`jacobian_structure` order."""
        return _summed(self._timed("jac_g", self.check_x(x), self._p_value), self._jacobian_sum)

    def hessian_values(self, x: Any, lam: Any, sigma: float = 1.0) -> np.ndarray:
        """Nonzeros of the lower triangle of the Hessian of ``sigma*f + lam'g``, in structure order."""
        if lam is None:
            raise DTypeError(f"NLP: lam (constraint multipliers) must be {self.m} real numbers, got None"
                             + ("; pass [] for an NLP without constraints" if self.m == 0 else ""))
        lam = real_values(lam, "NLP: lam").reshape(-1)
        if lam.shape != (self.m,):
            raise ShapeError(f"NLP: lambda must have {self.m} values, got {lam.size}")
        sigma = real_values(sigma, "NLP: sigma")
        if sigma.shape != ():
            raise ShapeError(f"NLP: sigma (objective factor) must be one real number, got shape {sigma.shape}")
        return _summed(self._timed("hess_l", self.check_x(x), self._p_value, float(sigma), lam), self._hessian_sum)

    def jacobian(self, x: Any):
        """dg/dx at x as a ``scipy.sparse.csr_matrix`` (m x n)."""
        import scipy.sparse as sp

        s = self.jacobian_structure
        return sp.csr_matrix((self.jacobian_values(x), (s.rows, s.cols)), shape=s.shape)

    def hessian(self, x: Any, lam: Any, sigma: float = 1.0):
        """The full symmetric Hessian of ``sigma*f + lam'g`` as a ``scipy.sparse.csr_matrix``."""
        return symmetric_from_lower(self.hessian_values(x, lam, sigma), self.hessian_structure)

    # --------------------------------------------------------------- solvers
    def solve_ipopt(self, x0: Any, lbx: Any = None, ubx: Any = None, lbg: Any = None, ubg: Any = None,
                    p: Any = None, options: dict | None = None) -> "NLPResult":
        """Solve with IPOPT through cyipopt; see :func:`symgraph.interop.ipopt.solve`."""
        from .interop.ipopt import solve

        return solve(self, x0, lbx, ubx, lbg, ubg, p, options)

    def scipy_minimize(self, x0: Any, bounds: Any = None, constraint_bounds: Any = None,
                       method: str = "trust-constr", p: Any = None, **kwargs: Any):
        """Solve with ``scipy.optimize.minimize``; see :func:`symgraph.interop.scipy.minimize`."""
        from .interop.scipy import minimize

        return minimize(self, x0, bounds, constraint_bounds, method, p, **kwargs)


# ------------------------------------------------------------ the whole set-up, cached
NLP_ENTRY_VERSION = 1
# modules whose change changes the callbacks or the structures (beside codegen.runtime.code_fingerprint's)
_NLP_MODULES = ("nlp.py", "tiled.py", "ad.py", "assemble.py", "sparsity.py", "sparse.py", "calldiff.py",
                "structdiff.py", "map.py", "fold.py")
_DERIVE_LOCK = threading.Lock()
_CALLBACKS = ("f", "grad_f", "g", "jac_g", "hess_l")


def _set_up_key(nlp: "NLP", options: dict) -> str | None:
    """The cache key of the whole set-up (a hash of x, p, f, g as one Tape, the name and the compile options),
    or None where the set-up is not cached (``tier="fast"``, unusual options)."""
    import hashlib
    import json

    from codegen.runtime import check_options, code_fingerprint, function_digest

    checked = check_options(**options)
    if checked["tier"] not in ("auto", "best") or not isinstance(checked["compiler"], (str, type(None))):
        return None
    fg = Function(f"{nlp._name}_fg", [nlp.x, nlp.p], [np.asarray(nlp.f, dtype=object), nlp.g],
                  input_names=["x", "p"])
    header = [NLP_ENTRY_VERSION, nlp._name, code_fingerprint(), _module_fingerprint(), nlp.n, nlp.m, len(nlp.p),
              {k: v for k, v in sorted(checked.items()) if k not in ("verbose", "cache_dir")}]
    h = hashlib.sha256(json.dumps(header, default=str).encode())
    h.update(function_digest(fg).encode())
    return h.hexdigest()


_FINGERPRINT: list = []


def _module_fingerprint() -> str:
    import hashlib

    if not _FINGERPRINT:
        h = hashlib.blake2b(digest_size=32)
        here = os.path.dirname(os.path.abspath(__file__))
        for name in _NLP_MODULES:
            try:
                with open(os.path.join(here, name), "rb") as fh:
                    h.update(name.encode() + fh.read())
            except OSError:
                pass
        _FINGERPRINT.append(h.hexdigest())
    return _FINGERPRINT[0]


def _store_set_up(nlp: "NLP", key: str, options: dict) -> None:
    """Record the set-up (structures, sums, callback signatures and their function keys) beside the libraries."""
    from codegen import build
    from codegen.runtime import check_options, function_key

    checked = check_options(**options)
    arrays: list = []

    def put(a: Any) -> int | None:
        if a is None:
            return None
        arrays.append(np.asarray(a))
        return len(arrays) - 1

    def put_sum(how: tuple | None) -> list | None:
        return None if how is None else [put(how[0]), how[1]]

    callbacks = {}
    root = None
    for k in _CALLBACKS:
        F, C = nlp._functions[k], nlp._eval[k]
        root = os.path.dirname(C.library.path)
        callbacks[k] = {"key": function_key(F, checked, "best"), "name": F.name,
                        "input_shapes": [list(s) for s in F.input_shapes], "input_names": list(F.input_names),
                        "output_shapes": [list(s) for s in F.output_shapes], "output_names": list(F.output_names),
                        "sparsity": [None if sp is None else [put(sp[0]), put(sp[1]), list(sp[2])]
                                     for sp in F.output_sparsity]}
    meta = {"version": NLP_ENTRY_VERSION, "tiled": bool(nlp.tiled), "callbacks": callbacks,
            "jacobian": [put(nlp.jacobian_structure.rows), put(nlp.jacobian_structure.cols),
                         put_sum(nlp._jacobian_sum)],
            "hessian": [put(nlp.hessian_structure.rows), put(nlp.hessian_structure.cols), put_sum(nlp._hessian_sum)],
            "gradient_cols": put(nlp._gradient_cols), "tables": len(arrays)}
    if root is not None:
        build.store_entry(root, "nlp-" + key, meta, arrays)


def _load_set_up(nlp: "NLP", key: str, options: dict) -> bool:
    """Set ``nlp`` up from the cache (structures and the optimized callbacks); False where anything is missing."""
    from codegen import build
    from codegen.runtime import _from_entry, check_options

    from .progress import phase

    found = build.load_entry("nlp-" + key, check_options(**options)["cache_dir"])
    if found is None:
        return False
    meta, arrays = found
    checked = check_options(**options)
    try:
        with phase("load", nlp._name, len(_CALLBACKS), "callbacks"):
            get = (lambda i: None if i is None else arrays[i])

            def get_sum(how):
                return None if how is None else (get(how[0]), how[1])

            compiled = {}
            for k in _CALLBACKS:
                c = meta["callbacks"][k]
                stub = _Signature(nlp, k, c, get)
                C = _from_entry(stub, checked, "best", c["key"])
                if C is None:
                    return False
                compiled[k] = C
            jac, hess = meta["jacobian"], meta["hessian"]
            structures = (Sparsity(get(jac[0]), get(jac[1]), (nlp.m, nlp.n)), get_sum(jac[2]),
                          Sparsity(get(hess[0]), get(hess[1]), (nlp.n, nlp.n)), get_sum(hess[2]))
            gradient_cols = get(meta["gradient_cols"])
            tiled = bool(meta["tiled"])
    except (KeyError, IndexError, TypeError, ValueError):
        return False
    for C in compiled.values():  # first calls map code pages and bind symbols (as _compile_all does)
        C(*[np.zeros(shape) for shape in C.function.input_shapes])
    nlp.jacobian_structure, nlp._jacobian_sum, nlp.hessian_structure, nlp._hessian_sum = structures
    nlp._gradient_cols, nlp.tiled, nlp._eval = gradient_cols, tiled, compiled
    return True


class _Signature:
    """A callback's signature (name, shapes, names, output sparsity) standing in for its Function after a
    warm start; anything else (evaluating, pickling, the Tape) derives the real Function first."""

    def __init__(self, nlp: "NLP", key: str, meta: dict, get: Any) -> None:
        self._nlp, self._key = nlp, key
        self.name = meta["name"]
        self.input_shapes = tuple(tuple(int(n) for n in s) for s in meta["input_shapes"])
        self.output_shapes = tuple(tuple(int(n) for n in s) for s in meta["output_shapes"])
        self.input_names = tuple(meta["input_names"])
        self.output_names = tuple(meta["output_names"])
        self.output_sparsity = tuple(None if sp is None else (get(sp[0]), get(sp[1]), tuple(sp[2]))
                                     for sp in meta["sparsity"])
        self.n_in, self.n_out = len(self.input_shapes), len(self.output_shapes)

    def resolve(self) -> Function:
        """The real Function (derived on first use)."""
        return self._nlp.functions[self._key]

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__") or attr in ("_nlp", "_key"):
            raise AttributeError(attr)
        return getattr(self.resolve(), attr)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __reduce__(self):
        return self.resolve().__reduce__()

    def __repr__(self) -> str:
        return f"Function({self.name}: derived on first use)"


def _compile_all(functions: dict[str, Function], options: dict, finish: Any = None) -> dict:
    """Compile the callbacks side by side: the C compiler runs outside the GIL.

    The workers run in copies of this context, so their warnings (the tcc
    notice, a failed background build) point at the user's ``sg.NLP(...)`` line.
    ``finish()``, if given, adds the callbacks still being derived (the
    Hessian from a forked child) once the others are on their way; while it
    waits this process imports the solver (cyipopt), which the first solve
    would otherwise pay for.
    """
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    from .progress import call_site

    with call_site(), ThreadPoolExecutor(max_workers=min(5, os.cpu_count() or 1)) as pool:
        futures = {key: pool.submit(contextvars.copy_context().run, F.compile, **options)
                   for key, F in functions.items()}
        if finish is not None and len(functions) < len(_CALLBACKS):
            _import_solver()
            finish()
            futures.update({key: pool.submit(contextvars.copy_context().run, F.compile, **options)
                            for key, F in functions.items() if key not in futures})
        compiled = {key: futures[key].result() for key in _CALLBACKS if key in futures}
    for C in compiled.values():  # first calls map code pages and bind symbols: pay that here,
        C(*[np.zeros(shape) for shape in C.function.input_shapes])  # not in the solver's loop
    return compiled


def _import_solver() -> None:
    """Import cyipopt now, where installed (about a second, mostly scipy.optimize), while a child works."""
    import importlib.util

    if importlib.util.find_spec("cyipopt") is not None:
        try:
            import cyipopt  # noqa: F401
        except Exception:  # noqa: BLE001 - the solve itself reports a broken install
            pass


class NLPResult(dict):
    """A solver's answer: keys are also attributes (``sol["x"]`` and ``sol.x``).

    >>> r = NLPResult(x=[1.0], f=2.0)
    >>> r.f == r["f"]
    True
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _values_function(name: str, inputs: list, values: np.ndarray, names: list, columns: dict | None = None
                     ) -> Function:
    """``Function(name, inputs, [values])``, laid out from its calls (no Tape walk over each result) when the
    values are mostly results of calls, as the constraints of a mapped model are.

    ``columns``: per call node, its operands' columns in x (the first input), where known (-1 elsewhere).
    """
    from .assemble import assembled_function, pieces_of

    split = pieces_of(values, columns) if len(values) > 1000 else None
    if split is None:
        return Function(name, inputs, [values], input_names=names)
    pieces, calls = split
    return assembled_function(name, inputs, [pieces], calls, input_names=names)


def _distinct(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> tuple[Sparsity, tuple | None]:
    """The pattern of COO positions without repeats, and how to sum values onto it (None: nothing repeats).

    >>> s, how = _distinct(np.array([1, 0, 1]), np.array([0, 0, 0]), (2, 1))
    >>> s.rows.tolist(), _summed(np.array([1.0, 2.0, 3.0]), how).tolist()
    ([0, 1], [2.0, 4.0])
    """
    height = max(shape[0], 1)
    key = cols * height + rows
    if len(key) < 2 or np.all(key[1:] > key[:-1]):
        return Sparsity(rows, cols, shape), None
    order = np.argsort(key, kind="stable")
    ordered = key[order]
    new = np.concatenate([[True], ordered[1:] != ordered[:-1]])
    distinct = ordered[new]
    inverse = np.empty(len(key), dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    pattern = Sparsity(distinct % height, distinct // height, shape)
    if len(distinct) == len(key):  # no repeats, another order: a permutation
        return pattern, (order, None)
    return pattern, (inverse.astype(np.intp, copy=False), len(distinct))


def _summed(values: np.ndarray, how: tuple | None) -> np.ndarray:
    """``values`` put in the order of, and summed onto, the distinct positions as ``how`` says (:func:`_distinct`)."""
    if how is None:
        return values
    index, size = how
    if size is None:
        return values[index]
    return np.bincount(index, weights=values, minlength=size)


def symmetric_from_lower(values: np.ndarray, structure: Sparsity):
    """Full symmetric ``csr_matrix`` from lower-triangle nonzeros.

    >>> s = Sparsity(np.array([0, 1]), np.array([0, 0]), (2, 2))
    >>> symmetric_from_lower(np.array([2.0, 3.0]), s).toarray().tolist()
    [[2.0, 3.0], [3.0, 0.0]]
    """
    import scipy.sparse as sp

    rows, cols = structure.rows, structure.cols
    off = rows != cols
    all_rows = np.concatenate([rows, cols[off]])
    all_cols = np.concatenate([cols, rows[off]])
    return sp.csr_matrix((np.concatenate([values, values[off]]), (all_rows, all_cols)), shape=structure.shape)


def real_values(value: Any, label: str) -> np.ndarray:
    """``value`` as a float64 array of real numbers, or a DTypeError starting with ``label``.

    As :func:`~symgraph.function.check_argument`, but complex numbers are
    refused too (solvers work in real arithmetic); None, strings, dicts and
    other objects never turn into NaN.

    >>> real_values([1, 2.5], "x").tolist()
    [1.0, 2.5]
    >>> real_values([1.0, None], "x")
    Traceback (most recent call last):
    ...
    symgraph.errors.DTypeError: x: expected real numbers, got an array of dtype object (element [1] is NoneType None)
    """
    from .function import dtype_message

    if value is None:
        raise DTypeError(f"{label}: expected real numbers, got None")
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise DTypeError(f"{label}: cannot convert {type(value).__name__} to an array ({exc})") from None
    if arr.dtype.kind == "c":
        raise DTypeError(f"{label}: expected real numbers, got complex values (solvers work in real arithmetic)")
    if arr.dtype.kind not in "biuf":
        raise DTypeError(dtype_message(label, arr))
    return arr.astype(np.float64)


def expr_array(value: Any, what: str) -> np.ndarray:
    """:func:`~symgraph.array.as_expr_array` whose errors name ``what`` (the argument)."""
    try:
        return as_expr_array(value)
    except SymgraphError as exc:
        raise type(exc)(f"{what}: {exc}") from None


def _flat_symbols(value: Any, what: str) -> np.ndarray:
    if isinstance(value, (list, tuple)) and any(isinstance(v, np.ndarray) and v.ndim for v in value):
        try:
            arr = as_expr_array(value).reshape(-1)
        except SymgraphError:
            raise InvalidInputError(
                f"NLP {what} must be one symbol array; to use several arrays of different shapes, join "
                f"them first: {what}=np.concatenate([a.ravel() for a in arrays]) (and split the solution "
                "the same way)") from None
    else:
        arr = expr_array(value, f"NLP {what}").reshape(-1)
    ops = np.fromiter(map(id, map(_OP, arr.tolist())), dtype=np.int64, count=len(arr))
    for k in np.flatnonzero(ops != id(SYMBOL))[:1].tolist():
        raise InvalidInputError(f"NLP {what}[{k}] is {arr[k]}, not a symbol; {what} must be made by sg.symbols")
    if len(set(arr.tolist())) != len(arr):
        raise InvalidInputError(f"NLP {what} repeats a symbol")
    return arr


def _check_free(x: np.ndarray, p: np.ndarray, exprs: list) -> None:
    """A FreeSymbolError naming (in first-visit order) the symbols ``exprs`` use that are neither in x nor in p."""
    known = set(x.tolist())
    known.update(p.tolist())
    if _reaches_unknown(exprs, known):
        stray = [s for s in free_symbols(exprs) if s not in known]
        names = ", ".join(repr(s.name) for s in stray[:10])
        raise FreeSymbolError(f"NLP objective/constraints depend on symbol(s) {names} that are neither "
                              "in x nor in p")


def _reaches_unknown(roots: list, known: set) -> bool:
    """Whether a symbol outside ``known`` is reachable from the Exprs ``roots``.

    Walks the graph level by level with set operations, so the operands of a
    call (a million gathered entries of x) are checked in bulk, not one by
    one; the order of the walk does not matter for a yes/no answer.

    >>> from symgraph.expr import symbol
    >>> x, y = symbol("x"), symbol("y")
    >>> _reaches_unknown([x * 2 + 1], {x}), _reaches_unknown([x * y], {x})
    (False, True)
    """
    seen = set(known)
    frontier = set(roots) - seen
    while frontier:
        if SYMBOL in set(map(_OP, frontier)):
            return True
        seen |= frontier
        frontier = set(chain.from_iterable(map(_ARGS, frontier))) - seen
    return False
