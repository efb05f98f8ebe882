"""Rule set ``canonicalize``: one spelling per value, so equal things meet.

Default rules are exact in IEEE arithmetic (bitwise, signed zeros kept):
operands of commutative ops sorted by a structural key (so ``a + b`` and
``b + a`` become one node: CSE beyond hash-consing), negations floated up
until they cancel against a sum or a constant, ``x + x -> 2*x``,
``x * x -> x**2``, and constant factors merged where the product is exact.

Rules that are identities only in real arithmetic are off by default
(``level=2`` or by name): flattening sums and products and collecting like
terms and powers (reassociation: rounding, overflow and cancellation
change), ``x - x -> 0`` and ``x / x -> 1`` (wrong for inf/nan/0),
``-(a - b) -> b - a`` (sign of a zero result).

>>> import symgraph as sg
>>> a, b = sg.symbols("a"), sg.symbols("b")
>>> sg.simplify((a + b) * (b + a), rules="canonicalize") is sg.square(a + b)
True
>>> str(sg.simplify(a * b * a / (b * 3), rules="all"))
'0.3333333333333333 * a**2'
"""

from __future__ import annotations

import math

from ..expr import CONST, Expr, const
from ..ops import OPS
from .analysis import power_of_two_exponent
from .pattern import G, Match, P, cst, var
from .rules import rule, table

X, Y, C, C1, C2 = var("x"), var("y"), cst("c"), cst("c1"), cst("c2")
ADD, SUB, NEG, MUL, DIV = OPS["add"], OPS["sub"], OPS["neg"], OPS["mul"], OPS["div"]
SQUARE, POWI = OPS["square"], OPS["powi"]
_SORTABLE = [op for op in OPS.values() if op.has("commutative") and op.arity == 2
             and op.name not in ("fmin", "fmax")]  # fmin/fmax: which zero wins a tie depends on order


def _unsorted(m: Match) -> bool:
    ctx = m.ctx
    x, y = ctx.current.args  # the node's own order, whichever variant matched
    if x.op is CONST or y.op is CONST:
        return False
    keys = ctx.keys
    kx, ky = keys.get(x), keys.get(y)
    if kx is None:
        kx = ctx.key(x)
    if ky is None:
        ky = ctx.key(y)
    return kx > ky


def _sort_rule(op) -> object:
    build = G[op.name]

    def swap(m: Match):
        x, y = m.ctx.current.args
        return build(y, x)

    return rule(f"sort-{op.name}", P[op.name](X, Y), swap,
                f"{op.name}(a, b) -> {op.name}(b, a) ordered by structural key (constants stay first); "
                "exact: IEEE " + ("add/mul are" if op.name in ("add", "mul") else "this op is") + " commutative",
                guard=_unsorted)


def _exact_factor(m: Match) -> bool:
    """c1 * (c2 * x) == (c1*c2) * x bitwise when c2 = 2**k, k >= 0 and |c1| >= 1."""
    k = power_of_two_exponent(abs(m.c2))
    return (k is not None and k >= 0 and math.isfinite(m.c1) and abs(m.c1) >= 1.0
            and math.isfinite(m.c1 * m.c2))


# ------------------------------------------------------------ sums, products
def _single(node: Expr, ctx) -> bool:
    return ctx.uses.get(node, 2) == 1  # nodes new in this pass: not known single-use


def _is_root(m: Match, inner_ops: tuple) -> bool:
    """The node being rewritten is not the single-use operand of another op of ``inner_ops``."""
    ctx = m.ctx
    old = ctx.node
    return not (ctx.uses.get(old, 0) == 1 and ctx.user_op.get(old) in inner_ops)


def _sum_terms(root: Expr, ctx) -> tuple[float, dict]:
    total, coef = 0.0, {}
    stack = [(root, 1.0)]
    while stack:
        n, c = stack.pop()
        op = n.op
        inside = n is root or _single(n, ctx)
        if op is CONST:
            total += c * n.data
        elif op is ADD and inside:
            stack += [(n.args[1], c), (n.args[0], c)]
        elif op is SUB and inside:
            stack += [(n.args[1], -c), (n.args[0], c)]
        elif op is NEG and inside:
            stack.append((n.args[0], -c))
        elif op is MUL and n.args[0].op is CONST and inside and n.args[1].op not in (ADD, SUB, NEG):
            stack.append((n.args[1], c * n.args[0].data))  # never distributes c over a sum
        else:
            coef[n] = coef.get(n, 0.0) + c
    return total, coef


def _ordered_add(a: Expr, b: Expr, ctx) -> Expr:
    """``a + b`` with operands in the order the sort-add rule wants (so it does not fire again)."""
    if a.op is not CONST and b.op is not CONST and ctx.key(a) > ctx.key(b):
        a, b = b, a
    return a + b


def _ordered_mul(a: Expr, b: Expr, ctx) -> Expr:
    """``a * b`` with operands in sort-mul order."""
    if a.op is not CONST and b.op is not CONST and ctx.key(a) > ctx.key(b):
        a, b = b, a
    return a * b


def _canonical_sum(m: Match) -> Expr | None:
    """Constant first, then positive terms, then negative terms subtracted, each group in key order;
    a sum with only negative terms is ``-(t1 + t2 + ...)`` (so no rule rewrites the result again)."""
    node, ctx = m.node, m.ctx
    total, coef = _sum_terms(node, ctx)
    terms = sorted(((t, c) for t, c in coef.items() if c != 0.0), key=lambda tc: ctx.key(tc[0]))
    pos = [t if c == 1.0 else c * t for t, c in terms if c > 0]
    neg = [t if c == -1.0 else -c * t for t, c in terms if c < 0]
    if total == 0.0 and not pos and neg:
        return _negated_sum(node, neg, ctx)
    acc = const(total) if total != 0.0 or not (pos or neg) else None
    for t in pos:
        acc = t if acc is None else _ordered_add(acc, t, ctx)
    for t in neg:
        acc = acc - t
    return None if acc is node else acc


def _negated_sum(node: Expr, neg: list, ctx) -> Expr | None:
    acc = None
    for t in neg:
        acc = t if acc is None else _ordered_add(acc, t, ctx)
    out = -acc
    return None if out is node else out


def _product_factors(root: Expr, ctx) -> tuple[float, dict]:
    coefficient, power = 1.0, {}
    stack = [(root, 1)]
    while stack:
        n, e = stack.pop()
        op = n.op
        inside = n is root or _single(n, ctx)
        if op is CONST:
            coefficient *= n.data ** e
        elif op is MUL and inside:
            stack += [(n.args[1], e), (n.args[0], e)]
        elif op is DIV and inside:
            stack += [(n.args[1], -e), (n.args[0], e)]
        elif op is NEG and inside:
            coefficient = -coefficient
            stack.append((n.args[0], e))
        elif op is SQUARE and inside:
            stack.append((n.args[0], 2 * e))
        elif op is POWI and inside and abs(n.args[1].data) <= 64:
            stack.append((n.args[0], e * int(n.args[1].data)))
        else:
            power[n] = power.get(n, 0) + e
    return coefficient, power


def _power(base: Expr, e: int, ctx) -> Expr:
    """base**e spelled as powi-expand spells it (squarings and multiplications for 3 <= e <= 16)."""
    if e == 1:
        return base
    if e == 2:
        return G.square(base)
    if 3 <= e <= 16:
        sq = G.square(_power(base, e // 2, ctx))
        return _ordered_mul(sq, base, ctx) if e % 2 else sq
    return G.powi(base, float(e))


def _canonical_product(m: Match) -> Expr | None:
    node, ctx = m.node, m.ctx
    coefficient, power = _product_factors(node, ctx)
    factors = sorted(((b, e) for b, e in power.items() if e != 0), key=lambda be: ctx.key(be[0]))
    num = den = None
    for b, e in factors:
        f = _power(b, abs(e), ctx)
        if e > 0:
            num = f if num is None else _ordered_mul(num, f, ctx)
        else:
            den = f if den is None else _ordered_mul(den, f, ctx)
    out = const(coefficient) if num is None else coefficient * num
    if den is not None:
        out = out / den
    return None if out is node else out


RULES = table("canonicalize", [
    *(_sort_rule(op) for op in _SORTABLE),
    rule("add-neg", X + -Y, lambda m: m.x - m.y, "a + (-b) -> a - b (also (-b) + a); exact: IEEE defines a - b as a + (-b)"),
    rule("sub-neg", X - -Y, lambda m: m.x + m.y, "a - (-b) -> a + b; exact"),
    rule("mul-neg-neg", -X * -Y, lambda m: m.x * m.y, "(-a) * (-b) -> a * b; exact"),
    rule("mul-const-neg", C * -X, lambda m: -m.c * m.x, "c * (-x) -> (-c) * x; exact"),
    rule("neg-mul-const", -(C * X), lambda m: -m.c * m.x, "-(c * x) -> (-c) * x; exact"),
    rule("mul-neg", -X * Y, lambda m: -(m.x * m.y), "(-a) * b -> -(a * b) for non-constant b; exact (floats negations up)",
         guard=lambda m: m.y.op is not CONST),
    rule("div-neg-neg", -X / -Y, lambda m: m.x / m.y, "(-a) / (-b) -> a / b; exact"),
    rule("div-const-neg", C / -X, lambda m: -m.c / m.x, "c / (-x) -> (-c) / x; exact"),
    rule("div-neg-const", -X / C, lambda m: m.x / -m.c, "(-x) / c -> x / (-c); exact"),
    rule("neg-div-const", -(X / C), lambda m: m.x / -m.c, "-(x / c) -> x / (-c); exact"),
    rule("neg-const-div", -(C / X), lambda m: -m.c / m.x, "-(c / x) -> (-c) / x; exact"),
    rule("div-neg-num", -X / Y, lambda m: -(m.x / m.y), "(-a) / b -> -(a / b); exact"),
    rule("div-neg-den", X / -Y, lambda m: -(m.x / m.y), "a / (-b) -> -(a / b); exact"),
    rule("add-neg-multiple", X + C * Y, lambda m: m.x - (-m.c) * m.y,
         "a + c*b -> a - (-c)*b for c < 0; exact ((-c)*b is -(c*b) exactly); meets a shared (-c)*b",
         guard=lambda m: m.c < 0),
    rule("sub-neg-multiple", X - C * Y, lambda m: m.x + (-m.c) * m.y,
         "a - c*b -> a + (-c)*b for c < 0; exact", guard=lambda m: m.c < 0),
    rule("add-self", X + X, lambda m: 2.0 * m.x, "x + x -> 2 * x; exact (doubling is exact, overflow alike)"),
    rule("mul-self", X * X, lambda m: G.square(m.x), "x * x -> x**2; exact (square is x*x)"),
    rule("mul-const-exact", C1 * (C2 * X), lambda m: (m.c1 * m.c2) * m.x,
         "c1 * (c2 * x) -> (c1*c2) * x where c2 = 2**k (k >= 0) and |c1| >= 1; exact (c2*x is exact, overflow alike)",
         guard=_exact_factor),
    # ---- off by default: identities of real arithmetic only
    rule("mul-const-const", C1 * (C2 * X), lambda m: (m.c1 * m.c2) * m.x,
         "c1 * (c2 * x) -> (c1*c2) * x; reassociates (rounding, overflow of c2*x)", default=False),
    rule("sub-self", X - X, lambda m: 0.0, "x - x -> 0; wrong for x = +-inf or nan (gives nan)", default=False),
    rule("div-self", X / X, lambda m: 1.0, "x / x -> 1; wrong for x = 0, +-inf or nan (gives nan)", default=False),
    rule("mul-div-cancel", (X * Y) / Y, lambda m: m.x, "(x * y) / y -> x; wrong for y = 0, +-inf, nan and on overflow",
         default=False),
    rule("neg-sub", -(X - Y), lambda m: m.y - m.x, "-(a - b) -> b - a; wrong sign of zero when a == b", default=False),
    rule("sub-neg-left", -X - Y, lambda m: -(m.x + m.y), "(-a) - b -> -(a + b); wrong sign of zero when a == -b",
         default=False),
    rule("sum-canonical", X + Y, lambda m: _canonical_sum(_with_node(m)),
         "a + b -> canonical sum: flatten a sum tree (add, sub, neg, const * x through single-use nodes), collect like terms and "
         "constants, sort terms; reassociates (rounding, cancellation, overflow)", default=False, needs_uses=True,
         guard=lambda m: _is_root(m, ("add", "sub", "neg"))),
    rule("sum-canonical-sub", X - Y, lambda m: _canonical_sum(_with_node(m)),
         "a - b -> canonical sum, as sum-canonical (at a sub root)", default=False, needs_uses=True, guard=lambda m: _is_root(m, ("add", "sub", "neg"))),
    rule("sum-canonical-neg", -X, lambda m: _canonical_sum(_with_node(m)),
         "-(a + b) -> canonical sum, as sum-canonical (at a neg root over a sum)", default=False, needs_uses=True,
         guard=lambda m: m.x.op in (ADD, SUB) and _is_root(m, ("add", "sub", "neg"))),
    rule("product-canonical", X * Y, lambda m: _canonical_product(_with_node(m)),
         "a * b -> canonical product: flatten a product tree (mul, div, neg, square, powi through single-use nodes), collect powers and "
         "constant factors, sort factors; reassociates (rounding, overflow, x/x -> 1)", default=False, needs_uses=True,
         guard=lambda m: _is_root(m, ("mul", "div"))),
    rule("product-canonical-div", X / Y, lambda m: _canonical_product(_with_node(m)),
         "a / b -> canonical product, as product-canonical (at a div root)", default=False, needs_uses=True, guard=lambda m: _is_root(m, ("mul", "div"))),
])


def _with_node(m: Match) -> Match:
    m["node"] = m.ctx.current
    return m
