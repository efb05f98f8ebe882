"""Rule set ``fold``: identities, idempotence and annihilators that IEEE allows.

Constant folding itself (every op with constant operands), ``x - 0``,
``x * 1``, ``x * 0``, ``x ** 0``, ``-(-x)`` and trivial ``if_else`` happen
when the engine rebuilds a node through ``sg.apply`` (see docs/design.md,
core); the rules below are the folds construction does not do.  All are
exact: the result is bitwise the original's, NaN, inf and signed zeros
included.  ``0.0 + x`` (what construction keeps of ``x + 0.0`` where ``x``
may be -0.0, and what some stabilize rules produce) only turns -0.0 into
+0.0, so it is ``x`` under ops that do not see the sign of a zero.

>>> import symgraph as sg
>>> x = sg.symbols("x")
>>> str(sg.simplify(sg.abs(-sg.abs(x)), rules="fold"))
'abs(x)'
"""

from __future__ import annotations

from ..expr import never_negative_zero
from .analysis import boolean, integer_valued, nonneg
from .pattern import G, P, lit, var
from .rules import rule, table

X, Y, Z, C = var("x"), var("y"), var("z"), var("c")
PLUS_ZERO = lit(0.0) + X
# f(-0.0) == f(+0.0), bitwise (C and numpy): even functions at 0, and log's -inf.
_SIGN_BLIND = ("exp", "cos", "cosh", "square", "abs", "log", "log2", "log10", "erfc", "acos", "sign")


def _plus_zero_rule(name: str):
    build = G[name]
    return rule(f"plus-zero-{name}", P[name](PLUS_ZERO), lambda m: build(m.x),
                f"{name}(0.0 + x) -> {name}(x); exact: {name}(-0.0) is {name}(+0.0)")

RULES = table("fold", [
    rule("fmin-self", P.fmin(X, X), lambda m: m.x, "fmin(x, x) -> x; exact (nan stays nan)"),
    rule("fmax-self", P.fmax(X, X), lambda m: m.x, "fmax(x, x) -> x; exact"),
    rule("abs-abs", P.abs(P.abs(X)), lambda m: G.abs(m.x), "abs(abs(x)) -> abs(x); exact"),
    rule("abs-neg", P.abs(-X), lambda m: G.abs(m.x), "abs(-x) -> abs(x); exact"),
    rule("abs-nonneg", P.abs(X), lambda m: m.x,
         "abs(x) -> x where x is structurally >= +0 (square, exp, abs, cosh, hypot, ...); exact",
         guard=lambda m: nonneg(m.x)),
    rule("square-neg", P.square(-X), lambda m: G.square(m.x), "(-x)**2 -> x**2; exact"),
    rule("square-abs", P.square(P.abs(X)), lambda m: G.square(m.x), "abs(x)**2 -> x**2; exact"),
    rule("floor-integer", P.floor(X), lambda m: m.x,
         "floor(x) -> x where x is integer-valued (floor, ceil, sign, comparisons); exact",
         guard=lambda m: integer_valued(m.x)),
    rule("ceil-integer", P.ceil(X), lambda m: m.x,
         "ceil(x) -> x where x is integer-valued; exact", guard=lambda m: integer_valued(m.x)),
    rule("sign-sign", P.sign(P.sign(X)), lambda m: G.sign(m.x), "sign(sign(x)) -> sign(x); exact"),
    rule("not-not", P["not"](P["not"](X)), lambda m: m.x,
         "not(not(x)) -> x where x is 0/1-valued (comparison, logic); exact",
         guard=lambda m: boolean(m.x)),
    rule("and-self", P["and"](X, X), lambda m: m.x, "x and x -> x where x is 0/1-valued; exact",
         guard=lambda m: boolean(m.x)),
    rule("or-self", P["or"](X, X), lambda m: m.x, "x or x -> x where x is 0/1-valued; exact",
         guard=lambda m: boolean(m.x)),
    rule("if-else-not", P.if_else(P["not"](C), Y, Z), lambda m: G.if_else(m.c, m.z, m.y),
         "if_else(not c, a, b) -> if_else(c, b, a); exact (nan counts as true in both)"),
    rule("powi-one", P.powi(X, 1.0), lambda m: m.x, "powi(x, 1) -> x; exact"),
    rule("pow-one", P.pow(X, 1.0), lambda m: m.x, "pow(x, 1) -> x; exact (pow(nan, 1) is nan)"),
    rule("cos-neg", P.cos(-X), lambda m: G.cos(m.x), "cos(-x) -> cos(x); even function, libm is symmetric"),
    rule("cosh-neg", P.cosh(-X), lambda m: G.cosh(m.x), "cosh(-x) -> cosh(x); even function"),
    rule("plus-zero-add", PLUS_ZERO + Y, lambda m: m.x + m.y,
         "(0.0 + x) + y -> x + y where y cannot be -0.0 (see expr.never_negative_zero); exact: the sums differ "
         "only at x = y = -0.0", guard=lambda m: never_negative_zero(m.y)),
    *(_plus_zero_rule(name) for name in _SIGN_BLIND),
])

