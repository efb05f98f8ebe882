"""Rule set ``specialize``: cheaper spellings of powers and divisions.

Integer powers become squarings and multiplications (as the C backend emits
them anyway; shared squares are then computed once), ``pow`` with special
exponents becomes ``powi``, ``square``, ``sqrt`` or ``cbrt``, and division by
a power of two becomes multiplication by its exact reciprocal.  Default
rules agree with the original to a few ulps with the same NaN/inf; guards
keep ``pow(x, 0.5) -> sqrt(x)`` to operands that are structurally >= +0
(``pow(-0.0, 0.5)`` is +0 but ``sqrt(-0.0)`` is -0; ``pow(-inf, 0.5)`` is inf,
``sqrt(-inf)`` nan).

>>> import symgraph as sg
>>> x = sg.symbols("x")
>>> str(sg.simplify(sg.apply(sg.OPS["pow"], x, 4.0) / 8, rules="specialize"))
'0.125 * (x**2)**2'
"""

from __future__ import annotations

from .analysis import nonneg, power_of_two_exponent
from .pattern import G, P, cst, var
from .rules import rule, table

X, C = var("x"), cst("c")
MAX_EXPAND = 16


def _power(x, n: int):
    return x if n == 1 else (G.square(x) if n == 2 else G.powi(x, float(n)))


def _expand(m):
    n = int(m.c)
    half = _power(m.x, n // 2)
    out = G.square(half)
    return out * m.x if n % 2 else out


def _int_exponent(m) -> bool:
    return float(m.c).is_integer() and abs(m.c) <= 1 << 30 and m.c not in (0.0, 1.0)


RULES = table("specialize", [
    rule("pow-two", P.pow(X, 2.0), lambda m: G.square(m.x), "pow(x, 2) -> x*x; exact (both correctly rounded)"),
    rule("pow-int", P.pow(X, C), lambda m: G.powi(m.x, m.c),
         "pow(x, n) -> powi(x, n) for an integer constant n; same numpy/libm function in the VM",
         guard=_int_exponent),
    rule("powi-two", P.powi(X, 2.0), lambda m: G.square(m.x), "powi(x, 2) -> x*x; exact"),
    rule("powi-minus-one", P.powi(X, -1.0), lambda m: 1.0 / m.x,
         "powi(x, -1) -> 1/x; pow(x, -1) is correctly rounded, so equal; inf at +-0 alike"),
    rule("powi-expand", P.powi(X, C), _expand,
         f"powi(x, n) -> square(powi(x, n//2)) [* x] for 3 <= n <= {MAX_EXPAND}; within n ulps, "
         "overflow alike (the C backend emits these multiplications anyway)",
         guard=lambda m: float(m.c).is_integer() and 3 <= m.c <= MAX_EXPAND),
    rule("pow-half", P.pow(X, 0.5), lambda m: G.sqrt(m.x),
         "pow(x, 0.5) -> sqrt(x) where x is structurally >= +0; within 1 ulp",
         guard=lambda m: nonneg(m.x)),
    rule("pow-third", P.pow(X, 1.0 / 3.0), lambda m: G.cbrt(m.x),
         "pow(x, 1/3) -> cbrt(x) where x is structurally >= +0 (pow of a negative is nan, cbrt is not)",
         guard=lambda m: nonneg(m.x)),
    rule("div-pow2", X / C, lambda m: (1.0 / m.c) * m.x,
         "x / c -> (1/c) * x where c = +-2**k in the normal range; exact (same real number, one rounding)",
         guard=lambda m: power_of_two_exponent(abs(m.c)) is not None
         and abs(power_of_two_exponent(abs(m.c))) <= 1021),
    # ---- off by default
    rule("powi-expand-negative", P.powi(X, C), lambda m: 1.0 / G.powi(m.x, -m.c),
         "powi(x, -n) -> 1 / powi(x, n) for n >= 2; x**n may overflow where x**-n is a subnormal",
         guard=lambda m: float(m.c).is_integer() and m.c <= -2, default=False),
    rule("pow-half-any", P.pow(X, 0.5), lambda m: G.sqrt(m.x),
         "pow(x, 0.5) -> sqrt(x) for any x; differs at -0 (sign) and -inf (nan vs inf)", default=False),
    rule("div-const", X / C, lambda m: (1.0 / m.c) * m.x,
         "x / c -> (1/c) * x for any finite nonzero c; 1/c is rounded: within 1 ulp, may over/underflow differently",
         guard=lambda m: m.c != 0.0 and abs(m.c) < float("inf"), default=False),
])
