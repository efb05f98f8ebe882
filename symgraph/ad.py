"""Symbolic automatic differentiation: graphs in, derivative graphs out.

Every function here takes expression graphs and returns new expression
graphs built from the op table's partial derivatives (``Op.deriv``), so the
results can be evaluated, optimized, compiled and differentiated again.

* :func:`jvp` -- forward mode, one pass over the topological order carrying
  any number of tangent directions at once.
* :func:`vjp` -- reverse mode, one backward pass accumulating adjoints
  (any number of cotangent directions at once).
* :func:`grad` -- gradient of a scalar by one reverse sweep (cheap gradient).
* :func:`jacobian` -- sparse Jacobian: structural pattern, coloring,
  one compressed sweep per color, only structural nonzeros kept.
* :func:`hessian` -- sparse symmetric Hessian by forward-over-reverse with
  a star coloring; the full matrix or its lower triangle.

Conventions at kinks follow the op table's subgradients: ``abs'(0) = 0``,
``floor``/``sign``/comparisons have derivative 0, ``fmin``/``fmax`` give the
derivative of the first operand on ties.  ``if_else`` is differentiated as a
selection: tangents and adjoints flow only through the taken branch
(``if_else(c, t_a, t_b)``), so a NaN or inf derivative in the branch not
taken cannot leak into the result (no ``0 * inf``).

Graphs with calls (:mod:`symgraph.call`) keep their structure: the
derivative of a call node is a call of a derivative Function of its callee
(``F_jvp`` forward, ``F_vjp`` reverse, :mod:`symgraph.calldiff`), built once
and cached on the callee, so derivatives of derivatives are calls again.

>>> import numpy as np, symgraph as sg
>>> x = sg.symbols("x", 2)
>>> f = x[0] ** 2 * sg.sin(x[1])
>>> g = sg.grad(f, x)
>>> F = sg.Function("g", [x], [g])
>>> np.round(F([2.0, 0.0]), 6).tolist()
[0.0, 4.0]
"""

from __future__ import annotations

import functools
import threading
from operator import attrgetter
from typing import Any, Callable

import numpy as np

from .errors import ShapeError
from . import calldiff
from .expr import (ADD, CALL, CONST, DIV, IF_ELSE, MUL, NEG, RESULT, SUB, _TABLE_GET, Expr, _binary, _insert, apply,
                   building, const, topological)
from .ops import OP_LIST
from .sparse import SparseExpr
from .sparsity import (column_coloring, flat_exprs, jacobian_sparsity, row_coloring, star_coloring,
                       star_recovery, symbol_columns, symmetric)

ZERO = const(0.0)
_OP_OF = attrgetter("op")
ONE = const(1.0)
_MUL_CODE, _ADD_CODE = MUL.code, ADD.code


def _mul(a: Expr, b: Expr) -> Expr:
    return _binary(MUL, a, b)


def _add(a: Expr, b: Expr) -> Expr:
    return _binary(ADD, a, b)


def _neg(a: Expr) -> Expr:
    return apply(NEG, a)


# ops whose nodes act as masks in products (see _scale)
_MASKS = frozenset({IF_ELSE} | {op for op in OP_LIST if op.has("boolean")})
# The hot loops' fast paths.  A product of two nodes whose ops are _PLAIN (no constant, no
# mask) is what _scale builds by _product; a sum of two nodes whose ops are _SUMMABLE (no
# constant, no negation) is what _plus builds by _sum.  Everything else goes through them.
_PLAIN = frozenset(op for op in OP_LIST if op is not CONST and op not in _MASKS)
_SUMMABLE = frozenset(op for op in OP_LIST if op is not CONST and op is not NEG)

# Direction sets: dict direction -> Expr (zero directions are absent).
Dirs = dict


def _is_zero(p: Any) -> bool:
    if type(p) is Expr:
        return p.op is CONST and p.data == 0.0
    return p == 0.0


def _scale(p: Any, v: Expr) -> Expr:
    """``p * v`` (``p`` a partial: float or Expr) without building trivial products.

    Products of two constants are folded here in Python floats (IEEE, the
    same result as the op table's numpy folding, without its overhead):
    unit seeds make them frequent.  Selections stay outermost: a factor
    that is a mask (a 0/1-valued comparison, or ``if_else(c, w, 0)``)
    turns the product into ``if_else(c, p * w, 0)``, so a derivative that
    is nan or inf where the mask is 0 (the branch not taken) gives 0, not
    ``0 * inf = nan``.
    """
    if type(p) is Expr:  # the common cases first: the same nodes as below, looked up inline
        vop = v.op
        if vop in _PLAIN:
            pop = p.op
            if pop in _PLAIN:  # no constant, no mask: _product
                key = ((id(p) << 48 | id(v)) << 7) | _MUL_CODE
            elif pop is CONST and vop is not NEG and (vop is not MUL or v.args[0].op is not CONST):
                c = p.data
                if c == 1.0 or c == -1.0 or c == 0.0:
                    return _scale_general(p, v)
                key = ((id(p) << 48 | id(v)) << 7) | _MUL_CODE  # c * v as _binary makes it
            else:
                return _scale_general(p, v)
            node = _TABLE_GET(key)
            return node if node is not None else _insert(MUL, (p, v), key)
        if vop is CONST:
            if p.op is CONST:
                return const(p.data * v.data)
            if v.data == 1.0:
                return p
    return _scale_general(p, v)


def _scale_general(p: Any, v: Expr) -> Expr:
    """:func:`_scale` in full."""
    if type(p) is not Expr:
        if p == 1.0:
            return v
        if v.op is CONST:
            return const(p * v.data)
        p = const(p)
    elif v.op is CONST:
        if p.op is CONST:
            return const(p.data * v.data)
        if v.data == 1.0:
            return p
        p, v = v, p  # the constant first
    if (p.op in _MASKS and _is_mask(p)) or (v.op in _MASKS and _is_mask(v)):
        return _masked_product(p, v)
    if p.op is CONST:
        c = p.data
        if c == -1.0:
            return _neg(v)
        vop = v.op
        if vop is MUL and v.args[0].op is CONST:  # c * (d * w) -> (c*d) * w, as CasADi
            return _mul(const(c * v.args[0].data), v.args[1])
        if vop is NEG:  # c * -w -> (-c) * w
            return _mul(const(-c), v.args[0])
        return _mul(p, v)
    if v.op is CONST:
        return _mul(p, v)
    return _product(p, v)


def _product(a: Expr, b: Expr) -> Expr:
    """``a * b`` for two non-constant nodes: :func:`symgraph.expr._binary`'s lookup, its checks skipped
    (with no constant operand there is nothing to simplify or reorder)."""
    key = ((id(a) << 48 | id(b)) << 7) | _MUL_CODE
    node = _TABLE_GET(key)
    return node if node is not None else _insert(MUL, (a, b), key)


def _sum(a: Expr, b: Expr) -> Expr:
    """``a + b`` for two non-constant nodes, as :func:`_product`."""
    key = ((id(a) << 48 | id(b)) << 7) | _ADD_CODE
    node = _TABLE_GET(key)
    return node if node is not None else _insert(ADD, (a, b), key)


def _is_const_zero(e: Expr) -> bool:
    return e.op is CONST and e.data == 0.0


def _is_mask(e: Expr) -> bool:
    """A 0/1 comparison, or a selection with one branch the constant 0."""
    if e.op is IF_ELSE:
        return _is_const_zero(e.args[1]) or _is_const_zero(e.args[2])
    return e.op.has("boolean")


# Mask chains.  A masked derivative is a chain of selections around an inner
# factor: ``if_else(c1, if_else(c2, w, 0), 0)`` (a mask may also sit in the
# else-branch, ``if_else(c, 0, w)``, or be a bare 0/1 comparison, whose inner
# factor is 1).  Along a left fold of ``fmax`` the adjoint carries one mask per
# step, so the chain of step k is k deep: products must never walk it.  Each
# sweep memoizes, per mask node, its chain's depth and inner factor, and, on
# demand, its *condition*: one node whose truth says whether all its masks pass.
_MEMO = threading.local()  # .chains: {mask: (depth, inner)}, .conds: {mask: (node, positive)}


def _memoized_masks(sweep: Callable) -> Callable:
    """Run ``sweep`` with mask chains memoized (nested sweeps share the outer memo)."""
    @functools.wraps(sweep)
    def run(*args, **kwargs):
        if getattr(_MEMO, "chains", None) is not None:
            return sweep(*args, **kwargs)
        _MEMO.chains, _MEMO.conds = {}, {}
        try:
            return sweep(*args, **kwargs)
        finally:
            _MEMO.chains = _MEMO.conds = None
    return run


def _memo(name: str) -> dict:
    """The current sweep's memo (a throwaway dict outside any sweep)."""
    memo = getattr(_MEMO, name, None)
    return memo if memo is not None else {}


def _unmask(e: Expr) -> tuple[Expr | None, bool, Expr]:
    """One mask level of ``e``: ``(condition, then, rest)``; condition None if ``e`` is no mask."""
    op = e.op
    if op is IF_ELSE:
        c, a, b = e.args
        if _is_const_zero(b):
            return c, True, a
        if _is_const_zero(a):
            return c, False, b
    elif op.has("boolean"):
        return e, True, ONE
    return None, True, e


def _mask_chain(e: Expr) -> tuple[int, Expr]:
    """``(depth, inner)``: how many masks wrap ``e``'s inner factor, and that factor.

    Amortized O(1) inside a sweep: the walk stops at the first memoized node.

    >>> import symgraph as sg
    >>> x, y = sg.symbols("x"), sg.symbols("y")
    >>> d, w = _mask_chain(sg.if_else(x > 0, sg.if_else(y < 1, sg.sin(x), 0), 0))
    >>> d, str(w)
    (2, 'sin(x)')
    """
    memo = _memo("chains")
    path = []
    while True:
        hit = memo.get(e)
        if hit is not None:
            depth, inner = hit
            break
        c, _, rest = _unmask(e)
        if c is None:
            depth, inner = 0, e
            break
        path.append(e)
        e = rest
    for node in reversed(path):
        depth += 1
        memo[node] = (depth, inner)
    return depth, inner


def _condition(e: Expr) -> tuple[Expr, bool]:
    """``(node, positive)``: every mask of ``e``'s chain passes iff ``node`` is true (false if not positive).

    One new selection per mask above the innermost one, whose own condition
    is used as is (an else-mask gives a negative polarity, so no ``not``
    node is needed); memoized, so the chains of a fold share their nodes.

    >>> import symgraph as sg
    >>> x, y = sg.symbols("x"), sg.symbols("y")
    >>> node, positive = _condition(sg.if_else(x > 0, sg.if_else(y < 1, 0, sg.sin(x)), 0))
    >>> str(node), positive
    ('if_else(x > 0, y < 1, 1)', False)
    """
    memo = _memo("conds")
    path = []
    while True:
        hit = memo.get(e)
        if hit is not None:
            node, positive = hit
            break
        c, then, rest = _unmask(e)
        if _unmask(rest)[0] is None:  # the innermost mask
            node, positive = c, then
            memo[e] = (node, positive)
            break
        path.append((e, c, then))
        e = rest
    other = ZERO if positive else ONE  # the value that fails the test
    for e, c, then in reversed(path):
        node = _select(c, node, other) if then else _select(c, other, node)
        memo[e] = (node, positive)
    return node, positive


_NEST = 3  # chains up to this depth are nested around a product, longer ones selected on once


def _wrap(mask: Expr, depth: int, inner: Expr, x: Expr) -> Expr:
    """``x`` under the masks of ``mask``'s chain (``depth`` of them, around ``inner``).

    A short chain is nested around ``x`` as is (as many new nodes as masks).
    A longer one becomes one selection: on the chain itself if it is a pure
    0/1 product (``inner`` is 1), else on its memoized condition, so the
    cost does not grow with the chain.
    """
    if depth <= _NEST:
        levels = []
        for _ in range(depth):
            c, then, mask = _unmask(mask)
            levels.append((c, then))
        for c, then in reversed(levels):
            x = _select(c, x, ZERO) if then else _select(c, ZERO, x)
        return x
    if inner is ONE:
        return _select(mask, x, ZERO)
    node, positive = _condition(mask)
    return _select(node, x, ZERO) if positive else _select(node, ZERO, x)


def _masked_product(p: Expr, v: Expr) -> Expr:
    """``p * v`` with the masks of either factor pulled outside (O(1) amortized in a sweep).

    Mathematically the product of the two inner factors under the masks of
    both chains.  When one inner factor is 1 (a 0/1 partial such as
    ``fmax``'s ``a >= b``), the other factor is kept whole and only the
    first one's masks are put around it: along a fold of ``fmax`` each step
    adds one selection around the incoming adjoint, never rebuilding it.
    """
    dp, ip = _mask_chain(p)
    dv, iv = _mask_chain(v)
    if ip is ONE and (iv is not ONE or dp <= dv):
        return _wrap(p, dp, ip, v)
    if iv is ONE:
        return _wrap(v, dv, iv, p)
    return _wrap(p, dp, ip, _wrap(v, dv, iv, _scale(ip, iv)))


def _plus(a: Expr, b: Expr) -> Expr:
    """``a + b``, folding two constants in Python floats, ``a + -w`` as ``a - w``."""
    if a.op is CONST:
        if b.op is CONST:
            return const(a.data + b.data)
    elif b.op is not CONST and b.op is not NEG and a.op is not NEG:
        return _sum(a, b)
    if b.op is NEG:  # a + -w -> a - w, as CasADi
        return _binary(SUB, a, b.args[0])
    if a.op is NEG:
        return _binary(SUB, b, a.args[0])
    return _add(a, b)


def _select(c: Expr, a: Expr, b: Expr) -> Expr:
    """``if_else(c, a, b)`` as one graph node (simplified at construction)."""
    return apply(IF_ELSE, c, a, b)


# ------------------------------------------------------------------- calls
# A call node is no value: in its place each sweep keeps what its results need,
# and its derivative is a call of a derivative Function of the callee (built once
# per callee, mode and live operands/results, cached on it: symgraph/calldiff.py).
# Forward: the call node holds a calldiff.CallTangents (one F_jvp call per
# direction), from which each result takes its own tangents.  Reverse: every
# result of a call comes before the call in the reverse order, so the results
# gather their adjoints into a dict {result index: adjoint} kept in the call's
# place, and the call pulls them back through one F_vjp call per direction.  The
# sweeps reach this code only for ops without a derivative rule of their own
# (call and result), so graphs without calls never pay for it.
class _Wanted:
    """Per call node of a topological order, the indices of its results there (found on first use)."""

    __slots__ = ("order", "rows")

    def __init__(self, order: list[Expr]) -> None:
        self.order, self.rows = order, None

    def __call__(self, call: Expr) -> list[int]:
        if self.rows is None:
            self.rows = {}
            for node in self.order:
                if node.op is RESULT:
                    self.rows.setdefault(node.args[0], []).append(node.data)
        return self.rows.get(call, [])


def _forward_structural(node: Expr, tangents: dict, wanted: _Wanted) -> None:
    if node.op is RESULT:
        t = tangents[node.args[0]].of(node.data)
        if t:
            tangents[node] = t
        return
    calls = calldiff.forward(node, [tangents.get(a) for a in node.args], wanted(node))
    if calls is not None:
        tangents[node] = calls


def _reverse_structural(node: Expr, bar: Any, adjoints: dict, active: set, forwarded: dict | None) -> None:
    if node.op is RESULT:
        call = node.args[0]
        if call in active:
            adjoints.setdefault(call, {})[node.data] = bar
        return
    for a, dirs in calldiff.reverse(node, bar, active, forwarded):
        acc = adjoints.get(a)
        if acc is None:
            adjoints[a] = dirs
            continue
        for k, v in dirs.items():
            prev = acc.get(k)
            acc[k] = v if prev is None else _plus(prev, v)


def _gradient_structural(node: Expr, bar: Any, adjoints: dict, active: set,
                         valued: dict | None) -> list[tuple[Expr, Expr]]:
    if node.op is RESULT:
        call = node.args[0]
        if call in active:
            adjoints.setdefault(call, {})[node.data] = bar
        return []
    return calldiff.reverse_single(node, bar, active, valued)


# ------------------------------------------------------------------ sweeps
# The per-direction inner loops of the sweeps (_scaled, _accumulate, and the same code inline in
# gradient_sweep) build the same nodes as _scale and _plus term by term; the common cases are
# looked up in the intern table inline:
#   p * v for two _PLAIN nodes is the product node (what _scale builds by _product);
#   c * v for a constant c other than 0, 1, -1 and a _PLAIN v that is no negation and no
#   c' * w is the product node (what _binary builds for _scale); p * 1 is p;
#   1.0 * v is v; -1.0 * v is -v, and prev + (-1.0) * v is prev - v (what _plus makes of
#   prev + -v, without the negation node in between) for a _PLAIN v that is no negation;
#   prev + term for two _SUMMABLE nodes is the sum node (what _plus builds by _sum).
# tests/test_ad_speed_paths.py checks each against the general rules.
_SUB_CODE, _NEG_CODE = SUB.code, NEG.code


def _const_partials() -> dict:
    """Ops whose partials are numbers whatever the operands (add: (1.0, 1.0), floor: (0.0,)), by op.

    Read from the op table's own rules, on symbols and on constants alike, so
    the sweeps can skip calling a rule whose answer is known.
    """
    from .expr import symbol

    out = {}
    for op in OP_LIST:
        if op.arity <= 0 or op.deriv is None or op.has("structural"):
            continue
        found = []
        for operands in ([symbol(f"_a{k}") for k in range(op.arity)], [const(0.5 + k) for k in range(op.arity)]):
            try:
                found.append(tuple(op.deriv(*operands, symbol("_r"))))
            except Exception:  # a rule that needs more than this: leave it to the rule
                found.append(None)
        first = found[0]
        if first is not None and all(type(p) is float for p in first) and all(f == first for f in found):
            out[op] = first
    return out


_CONST_PARTIALS = _const_partials()


def _partials(node: Expr) -> tuple:
    """The op table's partial derivatives of ``node`` (by operand)."""
    known = _CONST_PARTIALS.get(node.op)
    return known if known is not None else node.op.deriv(*node.args, node)


def _scaled(p: Any, dirs: Dirs) -> Dirs:
    """``{k: p * dirs[k]}``: :func:`_scale` on every direction (a new dict)."""
    if type(p) is Expr:
        if p.op in _PLAIN:
            out = {}
            high = id(p) << 48
            plain, get, mul_code = _PLAIN, _TABLE_GET, _MUL_CODE
            for k, v in dirs.items():
                if v.op in plain:
                    key = ((high | id(v)) << 7) | mul_code
                    node = get(key)
                    out[k] = node if node is not None else _insert(MUL, (p, v), key)
                elif v is ONE:  # a unit seed
                    out[k] = p
                else:
                    out[k] = _scale(p, v)
            return out
        if p.op is CONST and p.data != 1.0 and p.data != -1.0 and p.data != 0.0:
            # c * v as _scale makes it: the product node, unless v is a negation or c' * w
            out = {}
            high = id(p) << 48
            plain, get, mul_code = _PLAIN, _TABLE_GET, _MUL_CODE
            for k, v in dirs.items():
                vop = v.op
                if vop in plain and vop is not NEG and (vop is not MUL or v.args[0].op is not CONST):
                    key = ((high | id(v)) << 7) | mul_code
                    node = get(key)
                    out[k] = node if node is not None else _insert(MUL, (p, v), key)
                elif v is ONE:  # c * 1 folds to c
                    out[k] = p
                else:
                    out[k] = _scale(p, v)
            return out
    elif p == 1.0:
        return dict(dirs)
    elif p == -1.0:  # -v: the negation node (as _scale makes it through _neg) for a plain v
        out = {}
        plain, get, neg_code = _PLAIN, _TABLE_GET, _NEG_CODE
        for k, v in dirs.items():
            vop = v.op
            if vop in plain and vop is not NEG:
                key = id(v) << 7 | neg_code
                node = get(key)
                out[k] = node if node is not None else _insert(NEG, (v,), key)
            else:
                out[k] = _scale(p, v)
        return out
    return {k: _scale(p, v) for k, v in dirs.items()}


def _accumulate(acc: Dirs, p: Any, dirs: Dirs) -> None:
    """``acc[k] += p * dirs[k]`` for every direction k (a missing entry counts as 0)."""
    plain, summable, table_get, get = _PLAIN, _SUMMABLE, _TABLE_GET, acc.get
    if type(p) is Expr:
        pop = p.op
        if pop in plain:
            scalar = False
        elif pop is CONST and p.data != 1.0 and p.data != -1.0 and p.data != 0.0:
            scalar = True  # c * v is the product node unless v is a negation or c' * w (see _scale)
        else:
            for k, v in dirs.items():
                term = _scale(p, v)
                prev = get(k)
                acc[k] = term if prev is None else _plus(prev, term)
            return
        high = id(p) << 48
        for k, v in dirs.items():
            vop = v.op
            if vop in plain and (not scalar or (vop is not NEG and (vop is not MUL or v.args[0].op is not CONST))):
                key = ((high | id(v)) << 7) | _MUL_CODE
                term = table_get(key)
                if term is None:
                    term = _insert(MUL, (p, v), key)
            elif v is ONE:  # p * 1 is p (c * 1 folds to c)
                term = p
            else:
                term = _scale(p, v)
            prev = get(k)
            if prev is None:
                acc[k] = term
            elif prev.op in summable and term.op in summable:
                key = ((id(prev) << 48 | id(term)) << 7) | _ADD_CODE
                node = table_get(key)
                acc[k] = node if node is not None else _insert(ADD, (prev, term), key)
            else:
                acc[k] = _plus(prev, term)
        return
    one, minus = p == 1.0, p == -1.0
    for k, v in dirs.items():
        prev = get(k)
        if minus and v.op in plain and v.op is not NEG:
            if prev is None:  # -v (as _scale makes it through _neg)
                key = id(v) << 7 | _NEG_CODE
                node = table_get(key)
                acc[k] = node if node is not None else _insert(NEG, (v,), key)
                continue
            if prev.op is CONST:
                acc[k] = _binary(SUB, prev, v)
                continue
            key = ((id(prev) << 48 | id(v)) << 7) | _SUB_CODE
            node = table_get(key)
            acc[k] = node if node is not None else _insert(SUB, (prev, v), key)
            continue
        term = v if one else _scale(p, v)
        if prev is None:
            acc[k] = term
        elif prev.op in summable and term.op in summable:
            key = ((id(prev) << 48 | id(term)) << 7) | _ADD_CODE
            node = table_get(key)
            acc[k] = node if node is not None else _insert(ADD, (prev, term), key)
        else:
            acc[k] = _plus(prev, term)


@_memoized_masks
def forward_sweep(order: list[Expr], seeds: dict[Expr, Dirs]) -> dict[Expr, Dirs]:
    """Tangents of every node of ``order`` (a topological order) given tangents of symbols.

    ``seeds`` maps symbols to ``{direction: tangent}``; the result maps
    each node with a nonzero tangent to its ``{direction: tangent}`` (a
    call node, which is no value, to the :class:`~symgraph.calldiff.CallTangents`
    its results read).

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> t = forward_sweep(sg.expr.topological([x * x]), {x: {0: ONE, 1: sg.const(2.0)}})
    >>> {k: str(v) for k, v in t[x * x].items()}
    {0: 'x + x', 1: '2 * x + 2 * x'}
    """
    tangents: dict[Expr, Dirs] = dict(seeds)
    get = tangents.get
    scaled, accumulate, known = _scaled, _accumulate, _CONST_PARTIALS
    wanted = _Wanted(order)  # which results of each call the graph reads (only looked up at calls)
    for node in order:
        args = node.args
        if not args:
            continue
        if len(args) == 1:
            t = get(args[0])
            if t is None:
                continue
            rule = known.get(node.op)
            if rule is None:
                deriv = node.op.deriv
                if deriv is None:  # a call or a result: the only ops without a rule of their own
                    _forward_structural(node, tangents, wanted)
                    continue
                rule = deriv(args[0], node)
            (p,) = rule
            if (p.op is CONST and p.data == 0.0) if type(p) is Expr else p == 0.0:
                continue
            tangents[node] = scaled(p, t)
            continue
        if len(args) == 2:  # the common case, unrolled
            a, b = args
            ta, tb = get(a), get(b)
            if ta is None and tb is None:
                continue
            rule = known.get(node.op)
            if rule is None:
                deriv = node.op.deriv
                if deriv is None:  # a call
                    _forward_structural(node, tangents, wanted)
                    continue
                rule = deriv(a, b, node)
            pa, pb = rule
            if tb is None or ((pb.op is CONST and pb.data == 0.0) if type(pb) is Expr else pb == 0.0):
                if ta is None or ((pa.op is CONST and pa.data == 0.0) if type(pa) is Expr else pa == 0.0):
                    continue
                out = scaled(pa, ta)
            elif ta is None or ((pa.op is CONST and pa.data == 0.0) if type(pa) is Expr else pa == 0.0):
                out = scaled(pb, tb)  # what accumulating into no terms gives
            else:
                out = scaled(pa, ta)
                accumulate(out, pb, tb)
            if out:
                tangents[node] = out
            continue
        ts = [get(a) for a in args]
        if not any(ts):
            continue
        out: Dirs = {}
        if node.op is IF_ELSE:
            c = args[0]
            ta, tb = ts[1] or {}, ts[2] or {}
            for k in sorted(ta.keys() | tb.keys()):
                out[k] = _select(c, ta.get(k, ZERO), tb.get(k, ZERO))
        elif node.op is CALL:
            _forward_structural(node, tangents, wanted)
            continue
        else:
            rule = node.op.deriv(*args, node)
            for t, p in zip(ts, rule):
                if t and not _is_zero(p):
                    _accumulate(out, p, t)
        if out:
            tangents[node] = out
    return tangents


def active_nodes(order: list[Expr], symbols) -> set:
    """Nodes of ``order`` that depend on any of ``symbols`` (activity analysis).

    >>> import symgraph as sg
    >>> x, y = sg.symbols("x"), sg.symbols("y")
    >>> len(active_nodes(sg.expr.topological([x * y, y + 1]), [x]))
    2
    """
    symbols = set(symbols)
    leaves = [node for node in order if not node.args]
    if all(node.op is CONST or node in symbols for node in leaves):
        # no other free symbol: every node but the constants depends on the inputs
        active = set(order)
        active.difference_update([node for node in leaves if node.op is CONST])
        return active | symbols
    active = symbols
    add, isdisjoint = active.add, active.isdisjoint
    for node in order:
        if not isdisjoint(node.args):  # an operand is active (a leaf has none)
            add(node)
    return active


@_memoized_masks
def reverse_sweep(order: list[Expr], seeds: list[tuple[Expr, Dirs]], active: set,
                  forwarded: dict | None = None) -> dict[Expr, Dirs]:
    """Adjoints by one backward pass over ``order`` (a topological order).

    ``seeds`` lists ``(node, {direction: cotangent})`` (repeated nodes
    accumulate); only nodes in ``active`` receive adjoints.  Returns the
    adjoints of the leaves (symbols) reached.  With a dict ``forwarded``,
    a map call whose vjp needs its forward values is pulled back through
    a forward call that also saves them and a backward call that reads
    them; ``forwarded`` gets ``{primal call: forward call}``, and the
    caller reads the primal results from the forward call instead
    (:func:`symgraph.calldiff.reverse`).

    >>> import symgraph as sg
    >>> x, y = sg.symbols("x"), sg.symbols("y")
    >>> f = x * y
    >>> adj = reverse_sweep(sg.expr.topological([f]), [(f, {0: ONE})], {x, y, f})
    >>> str(adj[x][0]), str(adj[y][0])
    ('y', 'x')
    """
    adjoints: dict[Expr, Dirs] = {}
    for node, dirs in seeds:
        if node not in active:
            continue
        acc = adjoints.setdefault(node, {})
        for k, v in dirs.items():
            prev = acc.get(k)
            acc[k] = v if prev is None else _plus(prev, v)
    pop, get = adjoints.pop, adjoints.get
    scaled, accumulate, known = _scaled, _accumulate, _CONST_PARTIALS
    for node in reversed(order):
        args = node.args
        if not args:
            continue
        bar = pop(node, None)
        if not bar:
            continue
        if node.op is IF_ELSE:
            c = args[0]
            for position in (1, 2):
                a = args[position]
                if a not in active:
                    continue
                acc = adjoints.setdefault(a, {})
                for k, v in bar.items():
                    term = _select(c, v, ZERO) if position == 1 else _select(c, ZERO, v)
                    prev = acc.get(k)
                    acc[k] = term if prev is None else _plus(prev, term)
            continue
        partials = known.get(node.op)
        if partials is None:
            deriv = node.op.deriv
            if deriv is None:  # a call or a result: the only ops without a rule of their own
                _reverse_structural(node, bar, adjoints, active, forwarded)
                continue
            partials = deriv(*args, node)
        for a, p in zip(args, partials):
            if a not in active or ((p.op is CONST and p.data == 0.0) if type(p) is Expr else p == 0.0):
                continue
            acc = get(a)
            if acc is None:
                adjoints[a] = scaled(p, bar)
            else:
                accumulate(acc, p, bar)
    return adjoints


@_memoized_masks
def gradient_sweep(order: list[Expr], f: Expr, active: set, valued: dict | None = None) -> dict[Expr, Expr]:
    """Adjoints of the leaves for the single cotangent 1 on ``f`` (the gradient).

    :func:`reverse_sweep` specialized to one direction (plain Exprs, no dicts).
    With a dict ``valued`` (:func:`value_and_grad`), the vjp of a map call
    also returns the call's own results, and ``valued`` gets ``{call: its
    vjp call}`` (:func:`symgraph.calldiff.reverse_single`).

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> f = sg.sin(x) * x
    >>> str(gradient_sweep(sg.expr.topological([f]), f, {x, sg.sin(x), f})[x])
    'sin(x) + cos(x) * x'
    """
    adjoints: dict[Expr, Expr] = {f: ONE} if f in active else {}
    pop, get = adjoints.pop, adjoints.get
    scale, plus = _scale, _plus
    plain, summable, table_get, insert, known = _PLAIN, _SUMMABLE, _TABLE_GET, _insert, _CONST_PARTIALS
    mul_code, add_code, sub_code = _MUL_CODE, _ADD_CODE, _SUB_CODE
    for node in reversed(order):
        args = node.args
        if not args:
            continue
        bar = pop(node, None)
        if bar is None:
            continue
        op = node.op
        if op is IF_ELSE:
            c = args[0]
            contributions = [(args[1], _select(c, bar, ZERO)), (args[2], _select(c, ZERO, bar))]
        elif op.deriv is None:  # a call or a result: the only ops without a rule of their own
            contributions = _gradient_structural(node, bar, adjoints, active, valued)
        else:
            partials = known.get(op)
            if partials is None:
                partials = op.deriv(*args, node)
            bar_plain = bar.op in plain
            for a, p in zip(args, partials):
                if a not in active:
                    continue
                prev = get(a)
                # term = p * bar (as _scale), then adjoints[a] = prev + term (as _plus)
                if type(p) is Expr:
                    if p.op in plain and bar_plain:
                        key = ((id(p) << 48 | id(bar)) << 7) | mul_code
                        term = table_get(key)
                        if term is None:
                            term = insert(MUL, (p, bar), key)
                    elif p.op is CONST and p.data == 0.0:
                        continue
                    else:
                        term = scale(p, bar)
                elif p == 1.0:
                    term = bar
                elif p == 0.0:
                    continue
                elif p == -1.0 and prev is not None and bar_plain and bar.op is not NEG:
                    if prev.op is CONST:  # prev + -bar is prev - bar (as _plus)
                        adjoints[a] = _binary(SUB, prev, bar)
                        continue
                    key = ((id(prev) << 48 | id(bar)) << 7) | sub_code
                    node = table_get(key)
                    adjoints[a] = node if node is not None else insert(SUB, (prev, bar), key)
                    continue
                else:
                    term = scale(p, bar)
                if prev is None:
                    adjoints[a] = term
                elif prev.op in summable and term.op in summable:
                    key = ((id(prev) << 48 | id(term)) << 7) | add_code
                    node = table_get(key)
                    adjoints[a] = node if node is not None else insert(ADD, (prev, term), key)
                else:
                    adjoints[a] = plus(prev, term)
            continue
        for a, term in contributions:
            if a not in active:
                continue
            prev = get(a)
            adjoints[a] = term if prev is None else plus(prev, term)
    return adjoints


# ------------------------------------------------------------- directions
def _directions(value: Any, shape: tuple, what: str, against: str) -> tuple[bool, list[list[Expr]]]:
    """Seeds shaped ``shape`` (one direction) or ``(k,) + shape`` (k directions), flattened."""
    from .array import as_expr_array

    arr = as_expr_array(value)
    if arr.shape == shape:
        return True, [arr.reshape(-1).tolist()]
    if arr.ndim == len(shape) + 1 and arr.shape[1:] == shape:
        return False, [row.reshape(-1).tolist() for row in arr]
    raise ShapeError(f"{what} must have the shape of the {against} {shape} (one direction) or "
                     f"(k,) + {shape} (k directions), got shape {arr.shape}")


def _shape_result(values: list[Expr], shape: tuple, scalar: bool):
    if scalar:
        return values[0]
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out.reshape(shape)


def _stack(results: list[list[Expr]], shape: tuple) -> np.ndarray:
    out = np.empty((len(results), int(np.prod(shape, dtype=np.int64))), dtype=object)
    for k, row in enumerate(results):
        out[k, :] = row
    return out.reshape((len(results),) + shape)


def jvp(outputs: Any, inputs: Any, tangents: Any):
    """Forward mode: the directional derivative ``J @ t`` of ``outputs`` along ``tangents``.

    ``inputs`` is a symbol or an array of distinct symbols; ``tangents``
    (numbers or Exprs) has the shape of ``inputs`` for one direction, or
    ``(k,) + inputs.shape`` for k directions computed in one pass.  The
    result has the shape of ``outputs`` (``(k,) + outputs.shape`` for k
    directions); an Expr for a scalar output and one direction.

    >>> import symgraph as sg
    >>> x = sg.symbols("x", 2)
    >>> str(jvp(x[0] * x[1], x, [1.0, 0.0]))
    'x[1]'
    >>> [str(e) for e in jvp(x[0] * x[1], x, [[1, 0], [0, 1]])]
    ['x[1]', 'x[0]']
    """
    out_arr, roots = flat_exprs(outputs, "jvp outputs")
    in_arr, columns = symbol_columns(inputs)
    single, dirs = _directions(tangents, in_arr.shape, "jvp tangents", "inputs")
    seeds: dict[Expr, Dirs] = {}
    symbols = list(columns)
    for k, row in enumerate(dirs):
        for s, t in zip(symbols, row):
            if not _is_zero(t):
                seeds.setdefault(s, {})[k] = t
    with building():
        tan = forward_sweep(topological(roots), seeds)
        results = [[tan.get(r, {}).get(k, ZERO) for r in roots] for k in range(len(dirs))]
    if single:
        return _shape_result(results[0], out_arr.shape, isinstance(outputs, Expr))
    return _stack(results, out_arr.shape)


def vjp(outputs: Any, inputs: Any, cotangents: Any):
    """Reverse mode: ``c @ J``, the cotangent ``cotangents`` pulled back to ``inputs``.

    ``cotangents`` has the shape of ``outputs`` for one direction, or
    ``(k,) + outputs.shape`` for k directions computed in one backward pass.
    The result has the shape of ``inputs`` (``(k,) + inputs.shape``); an
    Expr for a single symbol and one direction.

    >>> import symgraph as sg
    >>> x = sg.symbols("x", 2)
    >>> [str(e) for e in vjp([x[0] * x[1], x[0]], x, [1.0, 2.0])]
    ['2 + x[1]', 'x[0]']
    """
    return vjp_forwarding(outputs, inputs, cotangents, None)


def vjp_forwarding(outputs: Any, inputs: Any, cotangents: Any, forwarded: dict | None,
                   order: list | None = None):
    """:func:`vjp`, and with a dict ``forwarded`` its map calls split into a forward and a backward call.

    ``forwarded`` receives ``{primal map call: forward call}`` (see
    :func:`reverse_sweep`): the forward call computes the primal results at
    the same positions, and the residuals the backward call reads after
    them.  The returned graph still reads the primal calls' results; the
    caller replaces them with the forward calls' (as
    :mod:`symgraph.structdiff` does inside a map's derivative), so each
    instance runs its forward once.  ``order``, if given, is
    ``topological`` of the flattened ``outputs`` (made already elsewhere).

    >>> import symgraph as sg
    >>> x = sg.symbols("x", 2)
    >>> [str(e) for e in vjp_forwarding(x[0] * x[1], x, 1.0, {})]
    ['x[1]', 'x[0]']
    """
    out_arr, roots = flat_exprs(outputs, "vjp outputs")
    in_arr, columns = symbol_columns(inputs)
    single, dirs = _directions(cotangents, out_arr.shape, "vjp cotangents", "outputs")
    with building():
        order = topological(roots) if order is None else order
        active = active_nodes(order, columns)
        seeds = [(r, {k: row[i] for k, row in enumerate(dirs) if not _is_zero(row[i])})
                 for i, r in enumerate(roots)]
        adj = reverse_sweep(order, seeds, active, forwarded)
        results = [[adj.get(s, {}).get(k, ZERO) for s in columns] for k in range(len(dirs))]
    if single:
        return _shape_result(results[0], in_arr.shape, isinstance(inputs, Expr))
    return _stack(results, in_arr.shape)


def _scalar(f: Any, who: str) -> Expr:
    if type(f) is Expr:
        return f
    arr, flat = flat_exprs(f, f"{who} f")
    if arr.ndim != 0:
        raise ShapeError(f"{who} needs a scalar function f, got an array of shape {arr.shape}; "
                         "use sg.jacobian for vector-valued functions")
    return flat[0]


def grad(f: Any, x: Any):
    """Gradient of the scalar ``f`` with respect to ``x``, shaped like ``x``.

    One reverse sweep: its graph has at most a few times the operations of
    ``f`` (cheap gradient principle).  Symbols ``f`` does not use get 0.

    >>> import symgraph as sg
    >>> x = sg.symbols("x", 3)
    >>> [str(e) for e in grad(x[0] * x[1] + sg.exp(x[0]), x)]
    ['exp(x[0]) + x[1]', 'x[0]', '0']
    """
    f = _scalar(f, "grad")
    in_arr, columns = symbol_columns(x)
    with building():
        order = topological([f])
        adj = gradient_sweep(order, f, active_nodes(order, columns))
        values = [adj.get(s, ZERO) for s in columns]
    return _shape_result(values, in_arr.shape, isinstance(x, Expr))


def value_and_grad(f: Any, x: Any):
    """``(f, gradient of f)`` with respect to ``x``, or to each of a list or tuple ``x`` of symbol arrays.

    Like ``(f, grad(f, x))`` (or ``(f, [grad(f, v) for v in x])``), in one
    reverse sweep, and the value is read from the derivative where that
    saves work, as JAX's ``value_and_grad`` does: a map call's vjp runs
    the map's body forward on every instance anyway, so it also returns
    the map's results, and the value reads them there instead of from the
    map call itself, which then is not computed at all.  (Not where the
    vjp's seeds read the map's own results, as in ``log(sum of a map)``:
    there the value keeps the map call.)  Equal in value to the separate
    ``f`` and ``grad``; the gradients are the same graphs as ``grad``'s up
    to that choice of calls.

    >>> import numpy as np, symgraph as sg
    >>> x, p = sg.symbols("x"), sg.symbols("p", 2)
    >>> M = sg.Function("f", [x, p], [p[0] * sg.sin(p[1] * x)]).map(3, shared=["p"], reduce="sum")
    >>> X = sg.symbols("X", 3)
    >>> value, (gp, gX) = value_and_grad(M(X, p) + p[0], [p, X])
    >>> G = sg.Function("g", [X, p], [value, gp, gX])
    >>> [node.data.name for node in sg.expr.topological([value]) if node.op is CALL]    # no call of M itself
    ['f_vjp_w_valued_map3']
    >>> v, g, _ = G(np.array([0.1, 0.2, 0.3]), np.array([2.0, 1.5]))
    >>> bool(np.isclose(v, 2 + 2 * np.sum(np.sin(1.5 * np.array([0.1, 0.2, 0.3])))))
    True
    """
    f = _scalar(f, "value_and_grad")
    several = isinstance(x, (list, tuple))
    parts = [symbol_columns(v) for v in (x if several else [x])]
    columns = [c for _, cols in parts for c in cols]
    with building():
        order = topological([f])
        valued: dict = {}
        adj = gradient_sweep(order, f, active_nodes(order, columns), valued)
        flat = [[adj.get(c, ZERO) for c in cols] for _, cols in parts]
        roots = calldiff.read_values([f] + [e for values in flat for e in values], valued)
    value, rest = roots[0], roots[1:]
    grads, start = [], 0
    for (arr, cols), v in zip(parts, x if several else [x]):
        grads.append(_shape_result(rest[start:start + len(cols)], arr.shape, isinstance(v, Expr)))
        start += len(cols)
    return value, (type(x)(grads) if several else grads[0])


# --------------------------------------------------------------- jacobian
def _colors(color: np.ndarray | None, used: np.ndarray | None = None) -> int:
    """Number of colors among the ``used`` vertices (all if None)."""
    if color is None:
        return 0
    if used is not None:
        color = color[used]
    return len(np.unique(color))


def jacobian(outputs: Any, inputs: Any, mode: str = "auto", *, tiled: bool = True) -> SparseExpr:
    """Sparse Jacobian ``d outputs / d inputs`` holding only structural nonzeros.

    Outputs and inputs are flattened (C order): the result is a
    ``(outputs.size, inputs.size)`` :class:`~symgraph.SparseExpr` with
    nonzeros in column-major (CSC) order.  The pattern comes from
    :func:`~symgraph.sparsity.jacobian_sparsity`; columns (forward mode) or
    rows (reverse mode) are colored greedily, largest degree first (as networkx) in the
    intersection graph, the mode with fewer colors is used (``mode`` =
    ``"forward"`` or ``"reverse"`` forces one), and one compressed sweep per
    color (all colors in a single pass) yields the nonzeros.  The result
    carries ``.mode`` and ``.n_colors``.  Outputs that are results of maps
    on the inputs (or on values independent of them) are *tiled* instead
    (``mode == "tiled"``, no colors): the body's Jacobian is mapped once and
    its values placed by index (:mod:`symgraph.tiled`); ``tiled=False``
    turns that off.

    >>> import numpy as np, symgraph as sg
    >>> x = sg.symbols("x", 3)
    >>> J = jacobian(x[1:] * x[:-1], x)
    >>> J.shape, J.nnz, J.mode, J.n_colors
    ((2, 3), 4, 'forward', 2)
    >>> sg.Function("J", [x], [J])(np.array([1.0, 2.0, 3.0])).toarray().tolist()
    [[2.0, 1.0, 0.0], [0.0, 3.0, 2.0]]
    """
    from .errors import DifferentiationError

    if mode not in ("auto", "forward", "reverse"):
        raise DifferentiationError(f"jacobian mode must be 'auto', 'forward' or 'reverse', got {mode!r}")
    out_arr, roots = flat_exprs(outputs, "jacobian outputs")
    in_arr, columns = symbol_columns(inputs)
    with building():
        order = topological(roots)
    # only a graph with result nodes can hold a mapped piece (one pass in C to rule it out)
    if (mode == "auto" and tiled and RESULT in set(map(_OP_OF, order)) and _map_piece_reached(roots)
            and not _custom_map_reached(roots)):
        J = _tiled_jacobian(roots, in_arr, len(roots))
        if J is not None:
            return J
    with building():
        pat = jacobian_sparsity(roots, in_arr, order)
        used_cols, used_rows = np.unique(pat.cols), np.unique(pat.rows)  # only these are seeded
        fwd = column_coloring(pat) if mode != "reverse" else None
        n_fwd = _colors(fwd, used_cols)
        # a row coloring needs at least as many colors as the longest column has nonzeros
        longest_column = int(np.bincount(pat.cols, minlength=1).max())
        skip_reverse = mode == "forward" or (mode == "auto" and n_fwd <= longest_column)
        rev = row_coloring(pat) if not skip_reverse else None
        n_rev = _colors(rev, used_rows)
        if mode == "auto":
            mode = "forward" if rev is None or n_fwd <= n_rev else "reverse"
        symbols = list(columns)
        rows, cols = pat.rows.tolist(), pat.cols.tolist()
        empty: Dirs = {}
        if mode == "forward":
            color = fwd.tolist()
            tan = forward_sweep(order, {symbols[j]: {color[j]: ONE} for j in used_cols.tolist()})
            values = [tan.get(roots[i], empty).get(color[j], ZERO) for i, j in zip(rows, cols)]
            n_colors = n_fwd
        else:
            color = rev.tolist()
            active = active_nodes(order, columns)
            adj = reverse_sweep(order, [(roots[i], {color[i]: ONE}) for i in used_rows.tolist()], active)
            values = [adj.get(symbols[j], empty).get(color[i], ZERO) for i, j in zip(rows, cols)]
            n_colors = n_rev
        J = SparseExpr(pat.rows, pat.cols, values, pat.shape)
    J.mode, J.n_colors = mode, n_colors
    return J


def _map_piece_reached(roots: list) -> bool:
    """Whether a result of a map call is reached from ``roots`` through ``+``, ``-``, negation and
    products and quotients by constants.

    Only then can :mod:`symgraph.tiled` find a mapped piece to tile (it looks
    through the same ops, as a tree); this walk visits each node once, so an
    unstructured graph (a long chain of sums, an unrolled integrator) costs
    one linear pass instead of a walk over every path.

    >>> import symgraph as sg
    >>> x = sg.symbols("x", 2)
    >>> F = sg.Function("f", [x[0]], [x[0] ** 2])
    >>> _map_piece_reached([x[0] * x[1] + 1]), _map_piece_reached([2 * F.map(2)(x)[1] - x[0]])
    (False, True)
    """
    from .tiled import _is_map_call

    seen: set[int] = set()
    stack = [r for r in roots if type(r) is Expr]
    while stack:
        node = stack.pop()
        key = id(node)
        if key in seen:
            continue
        seen.add(key)
        op = node.op
        if op is ADD or op is SUB:
            stack.extend(node.args)
        elif op is NEG:
            stack.append(node.args[0])
        elif op is MUL:
            a, b = node.args
            if a.op is CONST:
                stack.append(b)
            elif b.op is CONST:
                stack.append(a)
        elif op is DIV:
            if node.args[1].op is CONST:
                stack.append(node.args[0])
        elif op is RESULT and _is_map_call(node.args[0]):
            return True
    return False


def _custom_map_reached(roots: list) -> bool:
    """Whether a root, or an operand of one, is a result of a map whose body carries a user-given rule.

    Tiling differentiates a map's body graph itself, which would bypass the
    rule (:mod:`symgraph.custom`): such Jacobians take the colored sweeps,
    which call the rule.  Looks two levels down (a result, or a sum or
    multiple of results), as far as tiling finds mapped pieces in practice.

    >>> import symgraph as sg
    >>> _custom_map_reached([sg.sin(sg.symbols("x"))])
    False
    """
    for root in roots:
        if type(root) is not Expr:
            continue
        for node in (root,) + tuple(root.args):
            if node.op is RESULT:
                structure = getattr(node.args[0].data, "structure", None)
                body = getattr(structure, "body", None)
                if getattr(body, "derivative_rule", None) is not None:
                    return True
    return False


def _tiled_jacobian(roots: list, in_arr: np.ndarray, n_rows: int) -> SparseExpr | None:
    """The Jacobian through :func:`symgraph.tiled.tiled_jacobian` when outputs are mapped results, else None.

    Mapped bodies are differentiated once and their values placed by index;
    repeated positions (a variable shared by instances) are summed here, and
    the nonzeros put in CSC order.  ``mode`` is ``"tiled"``, ``n_colors`` 0.
    """
    from .tiled import tiled_jacobian

    x = in_arr.reshape(-1)
    T = tiled_jacobian(np.array(roots, dtype=object), x)
    if T is None:
        return None
    with building():
        rows, cols, values = T.rows, T.cols, T.values()
        key = cols * n_rows + rows
        order = np.argsort(key, kind="stable")
        key, values = key[order], values[order]
        starts = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
        ends = np.concatenate([starts[1:], [len(key)]])
        summed = values[starts].copy()
        for k in np.flatnonzero(ends - starts > 1).tolist():  # repeated positions add up
            total = values[starts[k]]
            for v in values[starts[k] + 1:ends[k]].tolist():
                total = total + v
            summed[k] = total
        J = SparseExpr(key[starts] % n_rows if n_rows else key[starts], key[starts] // max(n_rows, 1), summed,
                       (n_rows, len(x)))
    J.mode, J.n_colors = "tiled", 0
    return J


def hessian(f: Any, x: Any, lower: bool = False) -> SparseExpr:
    """Sparse symmetric Hessian of the scalar ``f`` with respect to ``x`` (flattened).

    Forward-over-reverse: the gradient graph is built by one reverse sweep,
    its Jacobian pattern (made symmetric) is star-colored, and one
    compressed forward sweep per color (all in a single pass) gives
    ``H @ S``, from which each nonzero is read directly.  Entries ``(i, j)``
    and ``(j, i)`` share one expression.  ``lower=True`` returns only the
    lower triangle (``row >= col``, what IPOPT asks for).  Nonzeros are in
    column-major order; the result carries ``.mode == "star"`` and ``.n_colors``.

    >>> import numpy as np, symgraph as sg
    >>> x = sg.symbols("x", 2)
    >>> H = hessian(x[0] ** 2 * x[1], x)
    >>> sg.Function("H", [x], [H])(np.array([3.0, 5.0])).toarray().tolist()
    [[10.0, 6.0], [6.0, 0.0]]
    >>> hessian(x[0] ** 2 * x[1], x, lower=True).nnz
    2
    """
    f = _scalar(f, "hessian")
    in_arr, columns = symbol_columns(x)
    n = len(columns)
    symbols = list(columns)
    with building():
        order_f = topological([f])
        adj = gradient_sweep(order_f, f, active_nodes(order_f, columns))
        g = [adj.get(s, ZERO) for s in symbols]
        del adj, order_f
        order = topological(g)
        pat = symmetric(jacobian_sparsity(g, in_arr, order))
        color = star_coloring(pat)
        low = pat.rows >= pat.cols
        read_row, read_col = star_recovery(pat, color)
        colors = color.tolist()
        tan = forward_sweep(order, {symbols[j]: {colors[j]: ONE} for j in np.unique(pat.cols).tolist()})
        empty: Dirs = {}
        lower_values = [tan.get(g[r], empty).get(c, ZERO)
                        for r, c in zip(read_row[low].tolist(), read_col[low].tolist())]
        lrows, lcols = pat.rows[low], pat.cols[low]
        if lower:
            H = SparseExpr(lrows, lcols, lower_values, (n, n))
        else:
            # the full pattern (CSC order): upper entries reuse their mirror's expression
            lower_keys = lcols * n + lrows  # sorted: CSC order
            mirror = np.searchsorted(lower_keys, np.minimum(pat.rows, pat.cols) * n
                                     + np.maximum(pat.rows, pat.cols))
            values = [lower_values[k] for k in mirror.tolist()]
            H = SparseExpr(pat.rows, pat.cols, values, (n, n))
    H.mode, H.n_colors = "star", _colors(color, np.unique(pat.cols))
    return H
