"""User-given derivative rules: :func:`custom_jvp`, :func:`custom_vjp` and :func:`stop_gradient`.

A Function with a custom rule evaluates exactly like the Function it wraps
(the VM and the C backend run the same Tape: a call of it is a call of that
body), but a call node of it is differentiated with the user's rule instead
of its own graph.  The hook is the derivative Function that
:mod:`symgraph.calldiff` builds for a call (``F_jvp`` / ``F_vjp``): for a
Function carrying a ``derivative_rule`` it is built from the rule.

* A **jvp rule** takes ``(inputs..., tangents...)`` (tangents shaped like
  the inputs) and returns the output tangents (shaped like the outputs).
* A **vjp rule** takes ``(inputs..., outputs..., cotangents...)``
  (cotangents shaped like the outputs) and returns the input cotangents
  (shaped like the inputs).  The outputs are handed in so that the rule can
  reuse them (``x / norm``); in the derivative graph they are a call of the
  custom Function itself, so their own derivative uses the rule again.

A rule is a :class:`~symgraph.Function` with that signature or a Python
callable, traced once on fresh symbols when the rule is given (a scalar
input arrives as an Expr, an array input as an object array).  Shapes are
checked then, against the wrapped Function.

Where only one rule is given, the other mode is its transpose: a jvp rule
is linear in its tangents, so ``xbar = d<ybar, jvp(x, t)>/dt`` (a vjp of the
rule's graph w.r.t. its tangents, at ``t = 0``), and likewise a vjp rule
gives the jvp.  Higher derivatives differentiate the rule's own graph
(through these calls) normally, so Hessians work when the rule is itself
differentiable.

The Jacobian pattern of a call (sparsity, which operands and results a
derivative reads) is the wrapped Function's own, from its graph: entries of
the rule outside it are not seen.  :func:`symgraph.inline` copies the body
into the caller and so **drops the rule** (the inlined graph is
differentiated as written); saving a Function to a file (``sg.save``,
pickling) keeps the rule.

>>> import numpy as np, symgraph as sg
>>> x = sg.symbols("x")
>>> softplus = sg.Function("softplus", [x], [sg.log(1 + sg.exp(x))])
>>> stable = custom_jvp(softplus, lambda x, t: t / (1 + sg.exp(-x)))
>>> z = sg.symbols("z")
>>> g = sg.Function("g", [z], [sg.grad(stable(z), z)])
>>> float(g(1000.0)), float(sg.Function("n", [z], [sg.grad(softplus(z), z)])(1000.0))
(1.0, nan)
>>> float(stable(0.5)) == float(softplus(0.5))
True
"""

from __future__ import annotations

import inspect
import weakref
from typing import Any, Callable

import numpy as np

from .errors import ArgumentCountError, FreeSymbolError, InvalidInputError, ShapeError, SymgraphError
from .expr import CALL, Expr, const, intern_results, intern_structural

__all__ = ["custom_jvp", "custom_vjp", "stop_gradient", "custom_rules"]


# ------------------------------------------------------------------ public API
def custom_jvp(F: Any, jvp: Any, *, name: str | None = None) -> Any:
    """A Function that evaluates like ``F`` and is differentiated forward by ``jvp``.

    Args:
        F: the :class:`~symgraph.Function` to wrap (dense outputs).  If it
            already carries rules (from :func:`custom_vjp`), its vjp rule is kept.
        jvp: ``jvp(inputs..., tangents...) -> output tangents``, a Function
            with ``2 * F.n_in`` inputs and ``F.n_out`` outputs shaped like
            ``F``'s, or a Python callable building the same graphs.
        name: the new Function's name (default ``F``'s).

    Returns:
        A Function; reverse mode (``grad``, ``vjp``) transposes the rule.

    Raises:
        InvalidInputError: ``F`` is no Function, has a sparse output, or
            ``jvp`` is neither a Function nor callable.
        ArgumentCountError / ShapeError: the rule's inputs or outputs do not
            match ``F`` (naming which).

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> F = custom_jvp(sg.Function("f", [x], [x ** 3]), lambda x, t: 10 * t)   # a made-up rule
    >>> float(sg.Function("d", [x], [sg.grad(F(x), x)])(2.0))   # reverse mode: its transpose
    10.0
    """
    base, rules = _unwrap(F, "custom_jvp")
    rule = _rule_function(base, jvp, "jvp", "custom_jvp")
    return _wrap(base, dict(rules, jvp=rule), name)


def custom_vjp(F: Any, vjp: Any, *, name: str | None = None) -> Any:
    """A Function that evaluates like ``F`` and is differentiated in reverse by ``vjp``.

    Args:
        F: the :class:`~symgraph.Function` to wrap (dense outputs).  If it
            already carries rules (from :func:`custom_jvp`), its jvp rule is kept.
        vjp: ``vjp(inputs..., outputs..., cotangents...) -> input cotangents``,
            a Function with ``F.n_in + 2 * F.n_out`` inputs and ``F.n_in``
            outputs shaped like ``F``'s inputs, or a Python callable.
        name: the new Function's name (default ``F``'s).

    Returns:
        A Function; forward mode (``jvp``, forward Jacobians) transposes the rule.

    Raises:
        InvalidInputError / ArgumentCountError / ShapeError: as :func:`custom_jvp`.

    >>> import numpy as np, symgraph as sg
    >>> x = sg.symbols("x", 2)
    >>> norm = sg.Function("norm", [x], [sg.sqrt(x @ x)])
    >>> safe = custom_vjp(norm, lambda x, y, ybar: ybar * x / sg.if_else(y > 0, y, 1.0))
    >>> g = sg.Function("g", [x], [sg.grad(safe(x), x)])
    >>> np.asarray(g([0.0, 0.0])).tolist(), np.asarray(g([3.0, 4.0])).tolist()
    ([0.0, 0.0], [0.6, 0.8])
    """
    base, rules = _unwrap(F, "custom_vjp")
    rule = _rule_function(base, vjp, "vjp", "custom_vjp")
    return _wrap(base, dict(rules, vjp=rule), name)


def custom_rules(F: Any) -> dict:
    """The rules a Function carries: ``{"jvp": Function, "vjp": Function}`` (given ones only; ``{}`` for none).

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> sorted(custom_rules(custom_jvp(sg.Function("f", [x], [x]), lambda x, t: t)))
    ['jvp']
    """
    rule = getattr(F, "derivative_rule", None)
    return dict(rule.rules) if isinstance(rule, _Rule) else {}


def stop_gradient(x: Any) -> Any:
    """``x`` itself in value, with a zero derivative in every mode (elementwise on arrays).

    One call of an identity Function whose Jacobian pattern is empty: jvp,
    vjp, grad, jacobian (its pattern leaves it out) and hessian see no
    dependence.  Numbers are returned as they are; a SparseExpr keeps its
    pattern.  :func:`symgraph.inline` removes it (the derivative comes back).

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> f = x * stop_gradient(x)
    >>> g = sg.Function("g", [x], [f, sg.grad(f, x)])
    >>> [float(v) for v in g(3.0)]
    [9.0, 3.0]
    """
    from .sparse import SparseExpr

    if isinstance(x, SparseExpr):
        return SparseExpr(x.rows, x.cols, stop_gradient(x.values), x.shape)
    if isinstance(x, (bool, int, float, np.bool_, np.integer, np.floating)):
        return x
    from .array import as_expr_array

    arr = as_expr_array(x)
    if arr.size == 0:
        return arr
    S = _stop_function(arr.size)
    node = intern_structural(CALL, tuple(arr.reshape(-1).tolist()), S)
    out = np.empty(arr.size, dtype=object)
    out[:] = intern_results(node, 0, arr.size)
    return out[0] if arr.ndim == 0 else out.reshape(arr.shape)


# ------------------------------------------------------------------ the rules
class _Rule:
    """The ``derivative_rule`` of a custom Function: builds ``F_jvp`` / ``F_vjp`` for :mod:`symgraph.calldiff`.

    Called as ``rule(F, mode, rows, cols)`` with calldiff's flat
    ``(rows, cols)``; returns the derivative Function in calldiff's layout
    (inputs ``x`` flat and the seeds, one output).
    """

    __slots__ = ("rules", "_transposed", "__weakref__")

    def __init__(self, rules: dict) -> None:
        self.rules = rules
        self._transposed: dict = {}

    def __call__(self, F: Any, mode: str, rows: tuple, cols: tuple) -> Any:
        from .array import symbols
        from .calldiff import flat_inputs
        from .function import Function

        seeds = np.asarray(symbols("tx" if mode == "jvp" else "ybar", len(cols if mode == "jvp" else rows)),
                           dtype=object).reshape(-1)
        values = self.graph(F, mode, rows, cols, seeds)
        D = Function(f"{F.name}_{mode}", [flat_inputs(F), seeds], [values],
                     input_names=["x", "tx" if mode == "jvp" else "ybar"],
                     output_names=["ty" if mode == "jvp" else "xbar"])
        # Spliced into the caller on the call's own operands (symgraph/calldiff.py), not called: the rule's
        # call of F on x then IS the primal call (hash-consed), so a rootfinder or solve is not run twice.
        D.splice = True
        return D

    def graph(self, F: Any, mode: str, rows: tuple, cols: tuple, seeds: np.ndarray) -> np.ndarray:
        """What ``F_jvp`` / ``F_vjp`` computes, over ``F``'s own input symbols and the Exprs ``seeds`` (flat).

        Also read by :mod:`symgraph.structdiff` for the body of a map.
        """
        from .calldiff import flat_inputs

        x = list(flat_inputs(F))
        n_out = sum(a.size for a in F.outputs)
        full = [_ZERO] * (len(x) if mode == "jvp" else n_out)
        for p, i in enumerate(cols if mode == "jvp" else rows):
            full[i] = seeds[p]
        flat = self._forward(F, x, full) if mode == "jvp" else self._reverse(F, x, full)
        picked = rows if mode == "jvp" else cols
        values = np.empty(len(picked), dtype=object)
        values[:] = [flat[i] for i in picked]
        return values

    def _forward(self, F: Any, x: list, t: list) -> list:
        rule = self.rules.get("jvp")
        if rule is not None:
            return _call(rule, x + t)
        # the transpose of the vjp rule: ty = d<xbar(ybar), t>/dybar, at ybar = 0
        T = self._transpose(F, "vjp")
        n_out = sum(a.size for a in F.outputs)
        return _call(T, x + _outputs(F, x) + [_ZERO] * n_out + t)

    def _reverse(self, F: Any, x: list, ybar: list) -> list:
        rule = self.rules.get("vjp")
        if rule is not None:
            return _call(rule, x + _outputs(F, x) + ybar)
        # the transpose of the jvp rule: xbar = d<ybar, ty(t)>/dt, at t = 0
        T = self._transpose(F, "jvp")
        return _call(T, x + [_ZERO] * len(x) + ybar)

    def _transpose(self, F: Any, mode: str) -> Any:
        """The rule of ``mode`` with its seeds' transpose: a Function ``(rule's inputs..., seeds) -> flat``."""
        T = self._transposed.get(mode)
        if T is None:
            T = self._transposed[mode] = _transpose(self.rules[mode], F, mode)
        return T


_ZERO = const(0.0)


def _transpose(rule: Any, F: Any, mode: str) -> Any:
    """``(rule inputs..., s) -> d<s, rule(...)>/d(rule's seed inputs)``, flat: the linear map's transpose.

    A jvp rule's seeds are its last ``F.n_in`` inputs (the tangents), a vjp
    rule's its last ``F.n_out`` (the cotangents); the rule is linear in
    them, so the result does not depend on where they are taken.
    """
    from .ad import vjp
    from .array import symbols
    from .calldiff import flat_outputs
    from .expr import building
    from .function import Function

    n_seed_inputs = F.n_in if mode == "jvp" else F.n_out
    seed_inputs = rule.inputs[len(rule.inputs) - n_seed_inputs:]
    seed_flat = np.concatenate([a.reshape(-1) for a in seed_inputs])
    y = flat_outputs(rule)
    s = np.asarray(symbols("s", len(y)), dtype=object).reshape(-1)
    with building():
        bar = vjp(y, seed_flat, s)
    bar = np.asarray(bar, dtype=object).reshape(-1)
    return Function(f"{rule.name}_T", list(rule.inputs) + [s], [bar])


def _call(G: Any, operands: list) -> list:
    """The flat results of a call of ``G`` on its flat ``operands`` (Exprs)."""
    node = intern_structural(CALL, tuple(operands), G)
    return list(intern_results(node, 0, sum(a.size for a in G.outputs)))


def _outputs(F: Any, x: list) -> list:
    """``F``'s flat outputs as results of a call of ``F`` itself on ``x`` (their derivatives use its rule)."""
    return _call(F, x)


# ------------------------------------------------------------------ wrapping
def _unwrap(F: Any, where: str) -> tuple[Any, dict]:
    """``F`` and the rules it already carries; InvalidInputError for no Function or a sparse output."""
    from .function import Function

    if not isinstance(F, Function):
        raise InvalidInputError(f"{where}: expected a symgraph Function to wrap, got {type(F).__name__}")
    if getattr(F, "structure", None) is not None:
        raise InvalidInputError(f"{where}: Function {F.name!r} is a map or fold; wrap its body instead")
    if F.n_in == 0 or F.n_out == 0:
        raise InvalidInputError(f"{where}: Function {F.name!r} has no inputs or no outputs "
                                f"(inputs {F.input_shapes}, outputs {F.output_shapes}); a derivative rule needs "
                                f"something to differentiate")
    if any(sp is not None for sp in F.output_sparsity):
        raise InvalidInputError(f"{where}: Function {F.name!r} has a sparse output; custom rules need dense "
                                f"outputs")
    return F, custom_rules(F)


def _wrap(F: Any, rules: dict, name: str | None) -> Any:
    """A new Function over ``F``'s graph carrying ``rules``."""
    from .function import Function

    G = Function(F.name if name is None else name, list(F.inputs), list(F.outputs),
                 input_names=F.input_names, output_names=F.output_names)
    G.derivative_rule = _Rule(rules)
    G.known_pattern = _rule_pattern(F, rules)
    return G


def _rule_pattern(F: Any, rules: dict) -> Any:
    """The Jacobian pattern of a call of the custom Function: ``F``'s own, joined with what the rules read.

    A rule may give a derivative where ``F``'s graph has none (a
    straight-through ``floor``): the pattern must include it, or sparse
    Jacobians and the sweeps, which skip what the pattern leaves out,
    would drop it. Output tangent j reads tangent i in a jvp rule; input
    cotangent i reads cotangent j in a vjp rule: both give entry (j, i).

    >>> import symgraph as sg
    >>> x, t = sg.symbols("x", 2), sg.symbols("t", 2)
    >>> F = sg.Function("fl", [x], [sg.floor(x)])
    >>> _rule_pattern(F, {"jvp": sg.Function("j", [x, t], [t])}).nnz    # floor's own pattern is empty
    2
    """
    from .calldiff import flat_inputs, flat_outputs, jacobian_pattern
    from .sparsity import Sparsity, jacobian_sparsity

    own = jacobian_pattern(F)
    rows, cols = [own.rows], [own.cols]
    for mode, rule in rules.items():
        n_seed = F.n_in if mode == "jvp" else F.n_out
        seeds = np.concatenate([a.reshape(-1) for a in rule.inputs[len(rule.inputs) - n_seed:]])
        reads = jacobian_sparsity(flat_outputs(rule), seeds)  # rule outputs by seed inputs
        r, c = (reads.rows, reads.cols) if mode == "jvp" else (reads.cols, reads.rows)
        rows.append(np.asarray(r, dtype=np.int64))
        cols.append(np.asarray(c, dtype=np.int64))
    n_out, n_in = len(flat_outputs(F)), len(flat_inputs(F))
    key = np.unique(np.concatenate(cols) * max(n_out, 1) + np.concatenate(rows))
    return Sparsity(key % max(n_out, 1), key // max(n_out, 1), (n_out, n_in))


def _rule_function(F: Any, rule: Any, mode: str, where: str) -> Any:
    """The rule as a Function, its signature checked against ``F``."""
    from .function import Function

    ins = [("x", s) for s in F.input_shapes]
    if mode == "jvp":
        ins += [("t", s) for s in F.input_shapes]
        outs = list(F.output_shapes)
        expected = "(inputs..., tangents...) -> output tangents"
    else:
        ins += [("y", s) for s in F.output_shapes] + [("ybar", s) for s in F.output_shapes]
        outs = list(F.input_shapes)
        expected = "(inputs..., outputs..., cotangents...) -> input cotangents"
    label = f"{where}: the {mode} rule of {F.name!r}, {expected},"
    if isinstance(rule, Function):
        _check_function(rule, ins, outs, label)
    elif not callable(rule):
        raise InvalidInputError(f"{label} must be a Function or a callable, got {type(rule).__name__}")
    else:
        rule = _trace(F, rule, ins, outs, mode, label)
    _check_linear(F, rule, mode, label)
    return rule


def _check_linear(F: Any, rule: Any, mode: str, label: str) -> None:
    """InvalidInputError where the rule is visibly not linear in its seeds (tangents or cotangents).

    The other mode is the rule's transpose, which only a linear rule has:
    ``t * t`` would give ``jvp = t**2`` but ``grad = 0``, ``t + 1`` a
    nonzero jvp along a zero tangent.  Checked by evaluation at one seeded
    random point (inputs in ``[0.5, 1.5]``, seeds ``s1``, ``s2``):
    ``r(0) = 0``, ``r(s1 + s2) = r(s1) + r(s2)`` and ``r(-s1) = -r(s1)``.
    Points where ``F`` or the rule is not finite (or fails) are not judged.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> try:
    ...     custom_jvp(sg.Function("f", [x], [x ** 3]), lambda x, t: t * t)
    ... except sg.InvalidInputError as e:
    ...     print(str(e)[:99])
    custom_jvp: the jvp rule of 'f', (inputs..., tangents...) -> output tangents, must be linear in its
    """
    rng = np.random.default_rng(20261126)
    n_seed = F.n_in if mode == "jvp" else F.n_out
    xs = [rng.uniform(0.5, 1.5, s) if s else float(rng.uniform(0.5, 1.5)) for s in F.input_shapes]

    def draw() -> list:
        return [rng.standard_normal(s) if s else float(rng.standard_normal()) for s in rule.input_shapes[-n_seed:]]

    s1, s2 = draw(), draw()
    try:
        with np.errstate(all="ignore"):
            fixed = list(xs)
            if mode == "vjp":
                ys = F(*xs)
                fixed += list(ys) if F.n_out > 1 else [ys]

            def r(seeds: list) -> np.ndarray:
                out = rule(*fixed, *seeds)
                out = list(out) if rule.n_out > 1 else [out]
                return np.concatenate([np.ravel(np.asarray(o, dtype=float)) for o in out])

            zero = r([np.zeros_like(np.asarray(a)) if np.ndim(a) else 0.0 for a in s1])
            r1, r2 = r(s1), r(s2)
            r12 = r([np.asarray(a) + b for a, b in zip(s1, s2)])
            rneg = r([-np.asarray(a) if np.ndim(a) else -a for a in s1])
    except Exception:  # noqa: BLE001 - a point the rule cannot be evaluated at is not judged
        return
    every = np.concatenate([zero, r1, r2, r12, rneg])
    if not np.all(np.isfinite(every)):
        return
    tol = 1e-7 * max(1.0, float(np.max(np.abs(every))))
    seed = "tangents" if mode == "jvp" else "cotangents"
    for what, got, want in (("r(0) != 0", zero, 0.0 * zero), ("r(t1 + t2) != r(t1) + r(t2)", r12, r1 + r2),
                            ("r(-t) != -r(t)", rneg, -r1)):
        diff = float(np.max(np.abs(got - want), initial=0.0))
        if diff > tol:
            raise InvalidInputError(f"{label} must be linear in its {seed}, but {what} at a test point "
                                    f"(max difference {diff:.3g}); the other mode is its transpose, "
                                    f"which only a linear rule has")


def _check_function(rule: Any, ins: list, outs: list, label: str) -> None:
    if rule.n_in != len(ins):
        raise ArgumentCountError(f"{label} must take {len(ins)} inputs, Function {rule.name!r} takes {rule.n_in}")
    for k, ((_, want), got) in enumerate(zip(ins, rule.input_shapes)):
        if tuple(got) != tuple(want):
            raise ShapeError(f"{label} input {k} must have shape {want}, Function {rule.name!r} has {got}")
    if rule.n_out != len(outs):
        raise ArgumentCountError(f"{label} must return {len(outs)} outputs, Function {rule.name!r} returns "
                                 f"{rule.n_out}")
    for k, (want, got, sp) in enumerate(zip(outs, rule.output_shapes, rule.output_sparsity)):
        if sp is not None:
            raise ShapeError(f"{label} output {k} must be dense, Function {rule.name!r} gives a sparse one")
        if tuple(got) != tuple(want):
            raise ShapeError(f"{label} output {k} must have shape {want}, Function {rule.name!r} gives {got}")


def _trace(F: Any, rule: Callable, ins: list, outs: list, mode: str, label: str) -> Any:
    """Call ``rule`` on fresh symbols shaped ``ins`` and freeze it into a Function (shapes checked)."""
    from .array import as_expr_array, symbols
    from .function import Function

    args = [symbols(f"{F.name}_{prefix}{k}", shape if shape else None) for k, (prefix, shape) in enumerate(ins)]
    try:
        inspect.signature(rule).bind(*args)
    except TypeError as exc:
        raise ArgumentCountError(f"{label} must accept {len(ins)} positional arguments ({exc})") from None
    except ValueError:  # no signature to read (a builtin): the call itself tells
        pass
    result = rule(*args)
    if len(outs) == 1 and not isinstance(result, (tuple, list)):
        result = [result]
    elif len(outs) == 1 and isinstance(result, list) and len(result) != 1:
        result = [result]  # one array output given as a list of scalars
    if not isinstance(result, (tuple, list)):
        raise ArgumentCountError(f"{label} must return {len(outs)} values (a tuple), got one "
                                 f"{type(result).__name__}")
    if len(result) != len(outs):
        raise ArgumentCountError(f"{label} must return {len(outs)} values, got {len(result)}")
    values = []
    for k, (v, want) in enumerate(zip(result, outs)):
        try:
            arr = as_expr_array(v)
        except SymgraphError as exc:
            raise InvalidInputError(f"{label} value {k} must be Exprs or numbers (dense), got "
                                    f"{type(v).__name__} ({exc})") from None
        if arr.shape != tuple(want):
            if arr.shape != ():
                raise ShapeError(f"{label} value {k} must have shape {tuple(want)}, got {arr.shape}")
            arr = np.full(want, arr[()], dtype=object)  # a scalar (such as 0) stands for every element
        values.append(arr)
    arrays = [np.asarray(a, dtype=object) for a in args]
    try:
        return Function(f"{F.name}_{mode}_rule", arrays, values)
    except FreeSymbolError as exc:
        raise FreeSymbolError(f"{label} reads symbols it is not given ({exc}); pass them as inputs of "
                              f"the wrapped Function, or make them constants") from None


# ------------------------------------------------------------------ stop_gradient
_STOP: "dict[int, Any]" = {}


class _ZeroRule:
    """The ``derivative_rule`` of stop_gradient's Function: zero in both modes (never needed: empty pattern)."""

    def __call__(self, F: Any, mode: str, rows: tuple, cols: tuple) -> Any:
        from .array import symbols
        from .calldiff import flat_inputs
        from .function import Function

        seeds = np.asarray(symbols("s", len(cols) if mode == "jvp" else len(rows)), dtype=object).reshape(-1)
        return Function(f"{F.name}_{mode}", [flat_inputs(F), seeds], [self.graph(F, mode, rows, cols, seeds)])

    def graph(self, F: Any, mode: str, rows: tuple, cols: tuple, seeds: np.ndarray) -> np.ndarray:
        """Zeros, one per result (jvp: ``rows``, vjp: ``cols``)."""
        return np.full(len(rows) if mode == "jvp" else len(cols), _ZERO, dtype=object)


def _stop_function(n: int) -> Any:
    """The identity Function on ``n`` scalars with an empty Jacobian pattern (one per size)."""
    S = _STOP.get(n)
    if S is None:
        from .array import symbols
        from .function import Function
        from .sparsity import Sparsity

        s = np.asarray(symbols("s", n), dtype=object).reshape(-1)
        S = Function("stop_gradient", [s], [s.copy()])
        S.known_pattern = Sparsity(np.empty(0, np.int64), np.empty(0, np.int64), (n, n))
        S.derivative_rule = _ZeroRule()
        S = _STOP.setdefault(n, S)
    return S
