"""Rule set ``stabilize``: forms that lose less accuracy.

Default rules agree with the original wherever the original is accurate and
give the accurate value where the original cancels (``log(1 + 1e-17)`` is 0,
``log1p(1e-17)`` is 1e-17) or over/underflows spuriously
(``log(exp(1000))`` is inf, ``x`` is 1000).  They never turn a finite
result into NaN/inf, and keep signed zeros: ``log(1 + x)`` is +0.0 at
``x = -0.0`` where ``log1p(x)`` is -0.0, so the rewrite is ``0.0 + log1p(x)``
unless ``x`` cannot be -0.0 (the fold rules drop the ``0.0 +`` where the
user of the result does not see the sign of a zero).  Rules that can turn a
finite result into NaN (the log-sum-exp and softplus forms give NaN where
both exponents are the same infinity) or that cost extra operations are off
by default.

>>> import symgraph as sg
>>> x = sg.symbols("x")
>>> str(sg.simplify(sg.log(1 + x) + (sg.exp(x) - 1), rules="stabilize"))
'0 + log1p(x) + (0 + expm1(x))'
>>> str(sg.simplify(sg.log(1 + x) + (sg.exp(x) - 1)))  # with the fold rules
'log1p(x) + (0 + expm1(x))'
>>> str(sg.simplify(sg.log(1 + sg.exp(x)), rules="stabilize"))  # exp(x) is never -0.0
'log1p(exp(x))'
"""

from __future__ import annotations

from ..expr import never_negative_zero
from .analysis import nonneg
from .pattern import G, P, var
from .rules import rule, table

X, Y = var("x"), var("y")


def _keep_plus_zero(result, arg):
    """``0.0 + result``, where ``result`` is -0.0 exactly when ``arg`` is (log1p, expm1, identity) and the
    original form gives +0.0 there (``log(1 + -0.0)`` is ``log(1)``); plain ``result`` where ``arg`` can
    never be -0.0."""
    return result if never_negative_zero(arg) else 0.0 + result


def _lse(m):
    x, y = m.x, m.y
    return G.fmax(x, y) + G.log1p(G.exp(-G.abs(x - y)))


def _nonpos(x) -> bool:
    return x.op.name == "neg" and nonneg(x.args[0])


def _softplus(m):
    x = m.x
    return G.fmax(x, 0.0) + G.log1p(G.exp(-G.abs(x)))


RULES = table("stabilize", [
    rule("log1p", P.log(1.0 + X), lambda m: _keep_plus_zero(G.log1p(m.x), m.x),
         "log(1 + x) -> 0.0 + log1p(x); accurate for small x; same -inf at x = -1 and nan below; the "
         "+ 0.0 keeps log(1 + -0.0) = +0.0 (log1p(-0.0) is -0.0) and is left out where x cannot be -0.0"),
    rule("log1p-sub", P.log(1.0 - X), lambda m: _keep_plus_zero(G.log1p(-m.x), -m.x),
         "log(1 - x) -> 0.0 + log1p(-x); accurate for small x; + 0.0 as in log1p (x = +0.0)"),
    rule("expm1", P.exp(X) - 1.0, lambda m: _keep_plus_zero(G.expm1(m.x), m.x),
         "exp(x) - 1 -> 0.0 + expm1(x); accurate for small x; inf alike; the + 0.0 keeps exp(-0.0) - 1 = +0.0 "
         "(expm1(-0.0) is -0.0) and is left out where x cannot be -0.0"),
    rule("expm1-add", -1.0 + P.exp(X), lambda m: _keep_plus_zero(G.expm1(m.x), m.x),
         "exp(x) + (-1) -> 0.0 + expm1(x); as expm1"),
    rule("log-exp", P.log(P.exp(X)), lambda m: _keep_plus_zero(m.x, m.x),
         "log(exp(x)) -> 0.0 + x; exact, where the original loses digits to the rounding of exp(x) (all of "
         "them as exp(x) rounds to 1 or over/underflows: 0, inf, -inf); + 0.0 as in log1p"),
    rule("sqrt-square", P.sqrt(P.square(X)), lambda m: G.abs(m.x),
         "sqrt(x**2) -> abs(x); differs only where x**2 over/underflows (rewrite exact)"),
    rule("exp-log", P.exp(P.log(X)), lambda m: m.x,
         "exp(log(x)) -> x where x is structurally >= +0 (log of a negative is nan)", guard=lambda m: nonneg(m.x)),
    rule("square-sqrt", P.square(P.sqrt(X)), lambda m: m.x,
         "sqrt(x)**2 -> x where x is structurally >= +0 (sqrt of a negative is nan)", guard=lambda m: nonneg(m.x)),
    # ---- off by default
    rule("log-sum-exp", P.log(P.exp(X) + P.exp(Y)), _lse,
         "log(exp(a) + exp(b)) -> fmax(a, b) + log1p(exp(-|a - b|)); no overflow, but nan where a = b = +-inf "
         "and 3 more operations", default=False),
    rule("softplus", P.log1p(P.exp(X)), _softplus,
         "log1p(exp(x)) -> fmax(x, 0) + log1p(exp(-|x|)) unless x is structurally <= 0 (-abs(.), ...); "
         "no overflow for large x, 3 more operations", guard=lambda m: not _nonpos(m.x), default=False),
])
