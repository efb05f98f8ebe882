"""Taylor mode: the Taylor coefficients of ``t -> f(x + t v)`` as graphs.

:func:`taylor` propagates a *truncated Taylor series* through the graph: one
pass over the topological order (iterative, as every traversal here) gives
each node a list of ``order + 1`` coefficient Exprs ``[c0, c1, ..., cK]``
with ``node(x + t v) = c0 + c1 t + ... + cK t^K + O(t^(K+1))``.  Each op has
its own rule in Taylor arithmetic (Griewank & Walther, *Evaluating
Derivatives*, ch. 13):

* ``add``/``sub``/``neg`` act coefficientwise, ``mul`` is the Cauchy product
  and ``div`` its inverse recurrence;
* ``exp``, ``sin``/``cos``, ``sinh``/``cosh``, ``tan``, ``tanh`` and
  ``erfinv`` solve ``c' = D(c) a'`` order by order (``D`` the derivative,
  written with the series of ``c`` itself);
* functions whose derivative is a plain series of the operand (``log``,
  ``atan``, ``asin``, ``erf``, ...) integrate ``c' = f'(a) a'`` with
  ``f'(a)`` built from the rules above;
* ``pow`` with a constant exponent uses the recurrence of ``a c' = p a' c``,
  ``powi`` repeated squaring, a variable exponent ``exp(b log a)``;
* piecewise ops (``abs``, ``fmin``, ``if_else``, ...) follow the taken
  branch, and step functions (``sign``, ``floor``, comparisons, ...) have
  all coefficients beyond the value zero, as their derivatives in
  :mod:`symgraph.ad`.

Every rule costs O(K^2) nodes per node of ``f`` (O(K^3) for the few
special functions with closed-form derivatives of every order: ``lgamma``,
``digamma``, ``polygamma``), against the exponential growth of ``jvp``
nested K times.  Calls (:mod:`symgraph.call`) are expanded with
:func:`symgraph.inline` first.

>>> import numpy as np, symgraph as sg
>>> x = sg.symbols("x", 2)
>>> cs = taylor(sg.exp(x[0]) * x[1], x, [1.0, 0.0], 3)
>>> F = sg.Function("c", [x], cs)
>>> [round(float(c), 6) for c in F([0.0, 6.0])]  # 6 e^t = 6 + 6t + 3t^2 + t^3
[6.0, 6.0, 3.0, 1.0]
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .ad import _shape_result
from .errors import DifferentiationError, InvalidInputError, ShapeError
from .expr import CALL, CONST, Expr, apply, building, const, topological
from .ops import OPS

ZERO = const(0.0)
ONE = const(1.0)
Series = list  # list of order + 1 Exprs: the Taylor coefficients of one node


# ------------------------------------------------------------ scalar helpers
def _zero(e: Expr) -> bool:
    return e.op is CONST and e.data == 0.0


def _mul(a: Expr, b: Expr) -> Expr:
    """``a * b``, zero when either is the constant zero (coefficients are never nan-guarded)."""
    if _zero(a) or _zero(b):
        return ZERO
    return a * b


def _scale(s: float, e: Expr) -> Expr:
    return ZERO if s == 0.0 or _zero(e) else (e if s == 1.0 else const(s) * e)


def _sum(terms: list[Expr]) -> Expr:
    """Sum of the nonzero terms (the constant zero when none)."""
    out = None
    for t in terms:
        if not _zero(t):
            out = t if out is None else out + t
    return ZERO if out is None else out


def _op(name: str, *args: Any) -> Expr:
    return apply(OPS[name], *args)


# ------------------------------------------------------------ series helpers
def _constant(value: Expr, n: int) -> Series:
    return [value] + [ZERO] * (n - 1)


def _flat(s: Series) -> bool:
    """True if every coefficient beyond the value is zero."""
    return all(_zero(c) for c in s[1:])


def _cauchy(a: Series, b: Series, k: int) -> Expr:
    """Coefficient ``k`` of the product of series ``a`` and ``b``."""
    return _sum([_mul(a[j], b[k - j]) for j in range(k + 1)])


def _product(a: Series, b: Series) -> Series:
    return [_cauchy(a, b, k) for k in range(len(a))]


def _quotient(a: Series, b: Series, c0: Expr | None = None) -> Series:
    """Series of ``a / b``: ``c_k = (a_k - sum_{j>=1} b_j c_{k-j}) / b_0``."""
    c = [c0 if c0 is not None else a[0] / b[0]]
    for k in range(1, len(a)):
        rest = _sum([_mul(b[j], c[k - j]) for j in range(1, k + 1)])
        num = a[k] if _zero(rest) else a[k] - rest
        c.append(ZERO if _zero(num) else num / b[0])
    return c


def _sqrt(a: Series, c0: Expr | None = None) -> Series:
    """Series of ``sqrt(a)``: ``c_k = (a_k - sum_{0<j<k} c_j c_{k-j}) / (2 c_0)``."""
    c = [c0 if c0 is not None else _op("sqrt", a[0])]
    for k in range(1, len(a)):
        rest = _sum([_mul(c[j], c[k - j]) for j in range(1, k)])
        num = a[k] if _zero(rest) else a[k] - rest
        c.append(ZERO if _zero(num) else num / (2.0 * c[0]))
    return c


def _with(a: Series, d: Series, c0: Expr) -> Series:
    """``c' = d a'`` for a known series ``d`` of the derivative."""
    return _self_series(a, c0, lambda c, m: d[m])


def _shift(a: Series, value: float) -> Series:
    return [a[0] + value] + a[1:]


def _neg(a: Series) -> Series:
    return [ZERO if _zero(e) else -e for e in a]


def _scaled(s: float, a: Series) -> Series:
    return [_scale(s, e) for e in a]


def _exp(a: Series, c0: Expr | None = None) -> Series:
    """Series of ``exp(a)``: ``c' = c a'``."""
    return _self_series(a, c0 if c0 is not None else _op("exp", a[0]), lambda c, m: c[m])


def _log(a: Series, c0: Expr | None = None) -> Series:
    return _with(a, _quotient(_constant(ONE, len(a)), a), c0 if c0 is not None else _op("log", a[0]))


# ------------------------------------------------------------ per-op rules
def _self_series(a: Series, c0: Expr, dstep: Callable[[Series, int], Expr]) -> Series:
    """``c' = D a'`` where ``D_m = dstep(c, m)`` reads the coefficients ``c_0..c_m``.

    ``c_k = (1/k) sum_{j=1}^{k} j a_j D_{k-j}``; ``dstep`` is called with
    ``m = 0, 1, ...`` in order, after ``c_m`` exists, so ``D`` may be a
    series of ``c`` itself (exp, tan, ...) or a known series (:func:`_with`).
    """
    c = [c0]
    ds: list[Expr] = []
    for k in range(1, len(a)):
        ds.append(dstep(c, k - 1))
        c.append(_scale(1.0 / k, _sum([_mul(_scale(float(j), a[j]), ds[k - j]) for j in range(1, k + 1)])))
    return c


def _pair(a: Series, s0: Expr, c0: Expr, sign: float) -> tuple[Series, Series]:
    """``s' = c a'``, ``c' = sign * s a'``: sin/cos (sign -1) and sinh/cosh (sign +1)."""
    s, c = [s0], [c0]
    for k in range(1, len(a)):
        ss = _sum([_mul(_scale(float(j), a[j]), c[k - j]) for j in range(1, k + 1)])
        cc = _sum([_mul(_scale(float(j), a[j]), s[k - j]) for j in range(1, k + 1)])
        s.append(_scale(1.0 / k, ss))
        c.append(_scale(sign / k, cc))
    return s, c


def _square_step(delta: float, sign: float) -> Callable[[Series, int], Expr]:
    """``D = delta + sign * c^2`` (tan: 1 + c^2, tanh: 1 - c^2)."""
    def dstep(c: Series, m: int) -> Expr:
        sq = _cauchy(c, c, m)
        if m == 0:
            return const(delta) + sq if sign > 0 else const(delta) - sq
        return _scale(sign, sq)
    return dstep


def _erfinv_step() -> Callable[[Series, int], Expr]:
    """``D = sqrt(pi)/2 * exp(c^2)``: the exponential's own series grows with ``c``."""
    sq: Series = []
    e: Series = []

    def dstep(c: Series, m: int) -> Expr:
        sq.append(_cauchy(c, c, m))
        if m == 0:
            e.append(_op("exp", sq[0]))
        else:
            e.append(_scale(1.0 / m, _sum([_mul(_scale(float(j), sq[j]), e[m - j]) for j in range(1, m + 1)])))
        return _scale(math.sqrt(math.pi) / 2.0, e[m])
    return dstep


def _one_minus_sq(a: Series) -> Series:
    """Series of ``(1 - a)(1 + a)`` (the accurate form near |a| = 1, as the op table's partials)."""
    return _product(_shift(_neg(a), 1.0), _shift(a, 1.0))


def _by_derivative(name: str, a: Series) -> Series | None:
    """Series of the operand-only derivative ``f'(a)`` for the ops integrated by :func:`_with`."""
    n = len(a)
    one = _constant(ONE, n)
    if name == "log":
        return _quotient(one, a)
    if name == "log1p":
        return _quotient(one, _shift(a, 1.0))
    if name == "log2":
        return _scaled(1.0 / math.log(2.0), _quotient(one, a))
    if name == "log10":
        return _scaled(1.0 / math.log(10.0), _quotient(one, a))
    if name == "atan":
        return _quotient(one, _shift(_product(a, a), 1.0))
    if name in ("asin", "acos"):
        d = _quotient(one, _sqrt(_one_minus_sq(a)))
        return d if name == "asin" else _neg(d)
    if name == "asinh":
        return _quotient(one, _sqrt(_shift(_product(a, a), 1.0)))
    if name == "acosh":
        return _quotient(one, _sqrt(_product(_shift(a, -1.0), _shift(a, 1.0))))
    if name == "atanh":
        return _quotient(one, _one_minus_sq(a))
    if name in ("erf", "erfc"):
        k = 2.0 / math.sqrt(math.pi) * (1.0 if name == "erf" else -1.0)
        return _scaled(k, _exp(_neg(_product(a, a))))
    return None


def _compose(a: Series, derivs: list[Expr]) -> Series:
    """``sum_m derivs[m] / m! * (a - a_0)^m``: composition with known derivatives at ``a_0``.

    ``derivs[0]`` is the value; costs O(K^3) nodes (powers of the increment).
    """
    n = len(a)
    h = [ZERO] + a[1:]
    c = [derivs[0]] + [ZERO] * (n - 1)
    power = h
    for m in range(1, n):
        w = 1.0 / math.factorial(m)
        for k in range(m, n):
            c[k] = _sum([c[k], _mul(_scale(w, derivs[m]), power[k])])
        power = _product(power, h)
    return c


def _polygamma_derivs(node: Expr, order: Any, x: Expr, n: int) -> list[Expr]:
    return [node] + [_op("polygamma", order + float(m), x) for m in range(1, n)]


def _powi(a: Series, exponent: float) -> Series:
    """``a ** n`` for an integer constant ``n`` by repeated squaring (no division by ``a_0``)."""
    n = int(abs(exponent))
    result = _constant(ONE, len(a))
    base = a
    while n:
        if n & 1:
            result = _product(result, base)
        n >>= 1
        if n:
            base = _product(base, base)
    if exponent < 0:
        result = _quotient(_constant(ONE, len(a)), result)
    return result


def _pow_const(a: Series, p: float, c0: Expr) -> Series:
    """``a ** p`` for a constant ``p``: ``k a_0 c_k = sum_{j=1}^{k} (p j - (k - j)) a_j c_{k-j}``."""
    c = [c0]
    for k in range(1, len(a)):
        terms = [_mul(_scale(p * j - (k - j), a[j]), c[k - j]) for j in range(1, k + 1)]
        s = _sum(terms)
        c.append(ZERO if _zero(s) else s / (float(k) * a[0]))
    return c


def _select(cond: Expr, a: Series, b: Series, node: Expr) -> Series:
    out = [node]
    for ak, bk in zip(a[1:], b[1:]):
        out.append(ZERO if _zero(ak) and _zero(bk) else _op("if_else", cond, ak, bk))
    return out


_STEP = frozenset({"sign", "floor", "ceil", "lt", "le", "gt", "ge", "eq", "ne", "not", "and", "or"})


def _rule(node: Expr, series: list[Series]) -> Series:
    """Taylor series of ``node`` from its operands' series (the per-op table of this module)."""
    name = node.op.name
    n = len(series[0])
    if name in _STEP:
        return _constant(node, n)
    if name == "add":
        a, b = series
        return [node] + [_sum([x, y]) for x, y in zip(a[1:], b[1:])]
    if name == "sub":
        a, b = series
        return [node] + [_sum([x, ZERO if _zero(y) else -y]) for x, y in zip(a[1:], b[1:])]
    if name == "neg":
        return [node] + _neg(series[0][1:])
    if name == "mul":
        return [node] + _product(*series)[1:]
    if name == "div":
        return _quotient(series[0], series[1], node)
    if name == "square":
        return [node] + _product(series[0], series[0])[1:]
    if name == "sqrt":
        return _sqrt(series[0], node)
    if name == "cbrt":
        return _pow_const(series[0], 1.0 / 3.0, node)
    if name == "exp":
        return _exp(series[0], node)
    if name == "expm1":
        return [node] + _exp(series[0])[1:]
    if name in ("sin", "cos"):
        a = series[0]
        s, c = _pair(a, _op("sin", a[0]) if name == "cos" else node, _op("cos", a[0]) if name == "sin" else node, -1.0)
        return s if name == "sin" else c
    if name in ("sinh", "cosh"):
        a = series[0]
        s, c = _pair(a, _op("sinh", a[0]) if name == "cosh" else node,
                     _op("cosh", a[0]) if name == "sinh" else node, 1.0)
        return s if name == "sinh" else c
    if name == "tan":
        return _self_series(series[0], node, _square_step(1.0, 1.0))
    if name == "tanh":
        return _self_series(series[0], node, _square_step(1.0, -1.0))
    if name == "erfinv":
        return _self_series(series[0], node, _erfinv_step())
    d = _by_derivative(name, series[0])
    if d is not None:
        return _with(series[0], d, node)
    if name == "powi":
        return [node] + _powi(series[0], float(node.args[1].data))[1:]
    if name == "pow":
        a, b = series
        if node.args[1].op is CONST and _flat(b):
            return _pow_const(a, float(node.args[1].data), node)
        return _exp(_product(b, _log(a)), node)
    if name == "abs":
        sg = _op("sign", node.args[0])
        return [node] + [_mul(sg, e) for e in series[0][1:]]
    if name == "if_else":
        return _select(node.args[0], series[1], series[2], node)
    if name in ("fmin", "fmax"):
        a, b = node.args
        return _select(_op("le" if name == "fmin" else "ge", a, b), series[0], series[1], node)
    if name == "fmod":
        a, b = node.args
        q = (node - a) / b  # minus the integer quotient, the op table's d/db
        return [node] + [_sum([x, _mul(q, y)]) for x, y in zip(series[0][1:], series[1][1:])]
    if name == "hypot":
        a, b = series
        return _sqrt(_sum_series(_product(a, a), _product(b, b)), node)
    if name == "atan2":
        y, x = series
        r2 = _sum_series(_product(x, x), _product(y, y))
        num = _sum_series(_product(x, _derivative(y)), _neg(_product(y, _derivative(x))))
        dc = _quotient(num, r2)
        return [node] + [_scale(1.0 / k, dc[k - 1]) for k in range(1, n)]
    if name == "lgamma":
        x = node.args[0]
        return _compose(series[0], [node, _op("digamma", x)] + [_op("polygamma", float(m), x) for m in range(1, n - 1)])
    if name == "digamma":
        x = node.args[0]
        return _compose(series[0], [node] + [_op("polygamma", float(m), x) for m in range(1, n)])
    if name == "polygamma":
        order, x = node.args
        if not _flat(series[0]):
            raise DifferentiationError("taylor: polygamma(n, a) needs a constant order n; its order "
                                       f"{order} varies along the direction")
        return _compose(series[1], _polygamma_derivs(node, order, x, n))
    raise DifferentiationError(f"taylor: no Taylor rule for op {name!r} (node {str(node)[:60]})")


def _sum_series(a: Series, b: Series) -> Series:
    return [_sum([x, y]) for x, y in zip(a, b)]


def _derivative(a: Series) -> Series:
    """Series of ``da/dt`` (one coefficient shorter; padded with zero to keep the length)."""
    return [_scale(float(m + 1), a[m + 1]) for m in range(len(a) - 1)] + [ZERO]


# ------------------------------------------------------------ the sweep
def taylor_sweep(order: list[Expr], seeds: dict[Expr, Series], n: int) -> dict[Expr, Series]:
    """Series of every node of ``order`` (topological) whose operands' series are not all flat.

    Nodes absent from the result are constant along the direction (series
    ``[node, 0, ..., 0]``).

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> s = taylor_sweep(topological([x * x]), {x: [x, ONE, ZERO]}, 3)
    >>> [str(e) for e in s[x * x]]
    ['x * x', 'x + x', '1']
    """
    out: dict[Expr, Series] = dict(seeds)
    get = out.get
    for node in order:
        args = node.args
        if not args or node in out:
            continue
        found = [get(a) for a in args]
        if all(s is None for s in found):
            continue
        if node.op.has("structural"):
            raise DifferentiationError(f"taylor: the graph holds a call node ({str(node)[:60]}); expand "
                                       "calls with sg.inline(f) before taking Taylor coefficients")
        series = [s if s is not None else _constant(a, n) for s, a in zip(found, args)]
        result = _rule(node, series)
        if not _flat(result):
            out[node] = result
    return out


def _check_order(order: Any) -> int:
    if isinstance(order, (bool, np.bool_)) or not isinstance(order, (int, np.integer)) or order < 0:
        raise InvalidInputError(f"taylor: order must be a non-negative integer, got {order!r}")
    return int(order)


def _direction(v: Any, shape: tuple) -> list[Expr]:
    from .array import as_expr_array

    try:
        arr = as_expr_array(v)
    except Exception as exc:
        raise InvalidInputError(f"taylor: the direction v must be numbers or Exprs, got "
                                f"{type(v).__name__} ({exc})") from None
    if arr.shape != shape:
        raise ShapeError(f"taylor: the direction v must have the shape of x {shape}, got shape {arr.shape}")
    return arr.reshape(-1).tolist()


def taylor(f: Any, x: Any, v: Any, order: int, *, derivatives: bool = False) -> list:
    """Taylor coefficients ``[c0, c1, ..., c_order]`` of ``t -> f(x + t v)`` at ``t = 0``.

    ``c_k = (1/k!) d^k/dt^k f(x + t v)`` at ``t = 0`` (so ``c0 = f(x)``,
    ``c1`` is the jvp along ``v``, ``c2 = v^T H v / 2``); with
    ``derivatives=True`` the list holds the derivatives ``k! c_k``
    themselves.  ``f`` is an Expr, a number or an array of Exprs (and numbers); ``x``
    a symbol or an array of distinct symbols; ``v`` numbers or Exprs with
    the shape of ``x`` (Exprs in ``v`` are taken as fixed, not moved with
    ``t``; so are symbols of ``f`` not in ``x``).  Each entry has the shape
    of ``f`` (an Expr for a scalar ``f``, a number included).

    Built by Taylor arithmetic per op in one pass over the graph (see the
    module doc), so the graph grows about quadratically with ``order``.
    Calls are expanded (:func:`symgraph.inline`) first; calls of Functions
    with a custom derivative rule (``custom_jvp``, ``custom_vjp``,
    ``stop_gradient``) raise DifferentiationError, as expanding them would
    drop the rule.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> C = sg.Function("c", [x], taylor(x ** 3, x, 1.0, 3))  # (2 + t)^3
    >>> [float(c) for c in C(2.0)]
    [8.0, 12.0, 6.0, 1.0]
    >>> F = sg.Function("d", [x], taylor(sg.sin(x), x, 1.0, 4, derivatives=True))
    >>> [round(float(d), 6) for d in F(0.0)]  # sin, cos, -sin, -cos, sin at 0
    [0.0, 1.0, -0.0, -1.0, 0.0]
    """
    from .call import inline_roots
    from .sparsity import flat_exprs, symbol_columns

    n = _check_order(order) + 1
    out_arr, roots = flat_exprs(f, "taylor f")
    in_arr, columns = symbol_columns(x)
    dirs = _direction(v, in_arr.shape)
    with building():
        _refuse_custom_rules(roots)
        roots = inline_roots(roots)
        seeds = {s: [s, d] + [ZERO] * (n - 2) for s, d in zip(columns, dirs) if not _zero(d) and n > 1}
        series = taylor_sweep(topological(roots), seeds, n)
        coeffs = [[series[r][k] if r in series else (r if k == 0 else ZERO) for r in roots] for k in range(n)]
        if derivatives:
            coeffs = [[_scale(float(math.factorial(k)), e) for e in row] for k, row in enumerate(coeffs)]
    return [_shape_result(row, out_arr.shape, out_arr.ndim == 0) for row in coeffs]


def _refuse_custom_rules(roots: list[Expr]) -> None:
    """DifferentiationError where a called Function (at any depth) carries a derivative rule.

    Calls are inlined before the sweep, which would drop the rule of a
    ``custom_jvp``/``custom_vjp`` Function or a ``stop_gradient`` and give the
    coefficients of the body as written: refused instead of silently wrong.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> try:
    ...     taylor(x * sg.stop_gradient(x), x, 1.0, 2)
    ... except sg.DifferentiationError as e:
    ...     print(str(e)[:68])
    taylor: f calls Function 'stop_gradient', which carries a derivative
    """
    from .call import callees_bottom_up

    called = callees_bottom_up([n.data for n in topological(roots) if n.op is CALL])
    for G in called:
        if getattr(G, "derivative_rule", None) is not None:
            raise DifferentiationError(
                f"taylor: f calls Function {G.name!r}, which carries a derivative rule (custom_jvp, custom_vjp "
                f"or stop_gradient); Taylor mode expands calls and would drop the rule, so it is not supported "
                f"there yet: nest sg.jvp along v instead")
