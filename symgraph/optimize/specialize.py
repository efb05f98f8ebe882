"""Rule set ``specialize``: cheaper spellings of powers and divisions.

Small integer powers become squarings and multiplications (as the C backend
emits them anyway; shared squares are then computed once), ``pow`` with
special exponents becomes ``powi``, ``square`` or ``sqrt``, and division by a
power of two becomes multiplication by its exact reciprocal.  Default rules
agree with the original to 3 ulps with the same NaN, inf and signed zeros:
a product of n factors is n - 1 roundings, so only ``x**3`` and ``x**4`` are
multiplied out by default (``x**16`` that way is 12 ulps off; ``pow(x, 200)``
as ``powi`` in C over 100).  Guards keep ``pow(x, 0.5) -> sqrt(x)`` to
operands that are structurally >= +0 (``pow(-0.0, 0.5)`` is +0 but
``sqrt(-0.0)`` is -0; ``pow(-inf, 0.5)`` is inf, ``sqrt(-inf)`` nan).
Larger powers, ``pow(x, 1/3) -> cbrt(x)`` and division by any constant are
level 2.

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
MAX_EXPAND = 4  # default: x**3 and x**4 by multiplications are within 3 ulps of the correctly rounded power
MAX_EXPAND_ANY = 16


def _power(x, n: int):
    return x if n == 1 else (G.square(x) if n == 2 else G.powi(x, float(n)))


def _expand(m):
    n = int(m.c)
    half = _power(m.x, n // 2)
    out = G.square(half)
    return out * m.x if n % 2 else out


def _int_exponent(m) -> bool:
    return float(m.c).is_integer() and abs(m.c) <= 1 << 30 and m.c not in (0.0, 1.0)


def _small_int_exponent(m) -> bool:
    """n = -1 (then 1/x, exact) or 3 <= n <= MAX_EXPAND: powi is multiplied out (also by the C backend)."""
    return m.c == -1.0 or (float(m.c).is_integer() and 3 <= m.c <= MAX_EXPAND)


RULES = table("specialize", [
    rule("pow-two", P.pow(X, 2.0), lambda m: G.square(m.x), "pow(x, 2) -> x*x; exact (both correctly rounded)"),
    rule("pow-int", P.pow(X, C), lambda m: G.powi(m.x, m.c),
         f"pow(x, n) -> powi(x, n) for n = -1 or 3 <= n <= {MAX_EXPAND}; within 3 ulps (powi is multiplied out "
         "in C and by powi-expand; pow(x, -1) is 1/x exactly)",
         guard=_small_int_exponent),
    rule("powi-two", P.powi(X, 2.0), lambda m: G.square(m.x), "powi(x, 2) -> x*x; exact"),
    rule("powi-minus-one", P.powi(X, -1.0), lambda m: 1.0 / m.x,
         "powi(x, -1) -> 1/x; pow(x, -1) is correctly rounded, so equal; inf at +-0 alike"),
    rule("powi-expand", P.powi(X, C), _expand,
         f"powi(x, n) -> x*x*x, square(x*x) for n = 3, {MAX_EXPAND}; within 3 ulps (n - 1 roundings), "
         "overflow alike (the C backend emits these multiplications anyway)",
         guard=lambda m: float(m.c).is_integer() and 3 <= m.c <= MAX_EXPAND),
    rule("pow-half", P.pow(X, 0.5), lambda m: G.sqrt(m.x),
         "pow(x, 0.5) -> sqrt(x) where x is structurally >= +0; within 1 ulp",
         guard=lambda m: nonneg(m.x)),

    rule("div-pow2", X / C, lambda m: (1.0 / m.c) * m.x,
         "x / c -> (1/c) * x where c = +-2**k in the normal range; exact (same real number, one rounding)",
         guard=lambda m: power_of_two_exponent(abs(m.c)) is not None
         and abs(power_of_two_exponent(abs(m.c))) <= 1021),
    # ---- off by default
    rule("pow-int-any", P.pow(X, C), lambda m: G.powi(m.x, m.c),
         "pow(x, n) -> powi(x, n) for any integer constant n; the C backend multiplies powi out, so the error "
         "grows with |n| (over 100 ulps at n = 200), and 1/x**n overflows where x**-n is still a subnormal",
         guard=_int_exponent, default=False),
    rule("powi-expand-any", P.powi(X, C), _expand,
         f"powi(x, n) -> square(powi(x, n//2)) [* x] for 3 <= n <= {MAX_EXPAND_ANY}; within n - 1 ulps "
         "(12 measured at n = 16), overflow alike",
         guard=lambda m: float(m.c).is_integer() and 3 <= m.c <= MAX_EXPAND_ANY, default=False),
    rule("pow-third", P.pow(X, 1.0 / 3.0), lambda m: G.cbrt(m.x),
         "pow(x, 1/3) -> cbrt(x) where x is structurally >= +0 (pow of a negative is nan, cbrt is not); the "
         "exponent is the double nearest 1/3, so the two differ by up to 111 ulps for large or tiny x",
         guard=lambda m: nonneg(m.x), default=False),
    rule("powi-expand-negative", P.powi(X, C), lambda m: 1.0 / G.powi(m.x, -m.c),
         "powi(x, -n) -> 1 / powi(x, n) for n >= 2; x**n may overflow where x**-n is a subnormal",
         guard=lambda m: float(m.c).is_integer() and m.c <= -2, default=False),
    rule("pow-half-any", P.pow(X, 0.5), lambda m: G.sqrt(m.x),
         "pow(x, 0.5) -> sqrt(x) for any x; differs at -0 (sign) and -inf (nan vs inf)", default=False),
    rule("div-const", X / C, lambda m: (1.0 / m.c) * m.x,
         "x / c -> (1/c) * x for any finite nonzero c; 1/c is rounded: within 1 ulp, may over/underflow differently",
         guard=lambda m: m.c != 0.0 and abs(m.c) < float("inf"), default=False),
])
