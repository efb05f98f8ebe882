"""Numerics of the special-function ops: lgamma, digamma, polygamma, erfinv.

The op table (:mod:`symgraph.ops`) reads its numpy implementations and C99
helpers from here; both sides are written from the same constants, so the VM
and compiled C run the same algorithm where they do not call a library:

* ``lgamma`` (``log|Gamma(x)|``): C99's ``lgamma`` in C.  The VM uses
  ``scipy.special.gammaln`` except on ``(-1/4, 3.5)``, where gammaln is up
  to ~5e4 ulps off near the zeros at 1 and 2; there it sums the Taylor series
  of ``lgamma(1 + t)`` and ``lgamma(2 + t)`` (coefficients ``zeta(k)/k``).
  Below -1/4, log|Gamma| has zeros that gammaln (reflection) resolves only
  in absolute terms: within ~2 ulps of ``lgamma(1 - x)``.
* ``digamma`` and ``polygamma(n, x)``: our own algorithms, the same in
  numpy and C (below); ``polygamma`` takes integer orders ``0 <= n <= 100``.
* ``erfinv``: ``scipy.special.erfinv`` in the VM; in C a rough start and two
  Halley steps on ``erf`` (``erfc`` near +-1).

Complex inputs (complex-step differentiation) give ``f(Re z) + i Im z
f'(Re z)``: exact to first order in ``Im z``, which is all complex step
reads, and the real part is the real VM value bitwise.  These four are not
analytic continuations for large imaginary parts.

Special values (VM and C agree): ``lgamma`` is ``+inf`` at the poles
``0, -1, -2, ...`` and at ``+-inf``; ``digamma(+0) = -inf``,
``digamma(-0) = +inf``, nan at the negative integers and at ``-inf``;
``polygamma(n, x)`` (``n >= 1``) is ``(-1)**(n+1) inf`` at ``+0``, ``+inf``
at ``-0``, at the negative integers ``+inf`` for odd ``n`` and nan for even
``n`` (the two sides disagree), ``(-1)**(n+1) 0.0`` at ``+inf``, nan at
``-inf`` and for ``n`` not an integer in ``[0, 100]``; ``erfinv(+-1) =
+-inf``, nan for ``|x| > 1``, ``erfinv(-0.0) = -0.0``.

>>> import numpy as np
>>> float(digamma(np.float64(1.0)))  # -Euler's gamma
-0.5772156649015329
>>> float(polygamma(np.float64(1.0), np.float64(1.0)))  # pi**2 / 6
1.6449340668482264
"""

from __future__ import annotations

import math

import numpy as np
import scipy.special as _special

POLYGAMMA_MAX_ORDER = 100
SQRT_PI_OVER_2 = math.sqrt(math.pi) / 2.0

# Positive zero of digamma as a sum of two doubles, and the Taylor coefficients
# (-1)**(k+1) zeta(k + 1, x0) of digamma about it, k = 1..38 (|x - x0| <= 1/2).
_X0_HI, _X0_LO = 1.4616321449683622, 9.549995429965697e-17
_PSI_TAYLOR = (
    0.9676722454476212, -0.4427631689835921, 0.258499760955651,
    -0.16394270544240652, 0.10782405069126237, -0.07219956125645471,
    0.04880428816414311, -0.03316112647484736, 0.022597648232218104,
    -0.01542476590494896, 0.010538791616612175, -0.007204534386356869,
    0.004926781395729853, -0.003369801655439328, 0.002305126326734928,
    -0.0015769367714301972, 0.0010788252019162967, -0.0007380709389960052,
    0.000504953265834602, -0.0003454680251063077, 0.00023635601564027053,
    -0.00016170622091974803, 0.0001106337276874741, -7.569179582195066e-05,
    5.178575795222081e-05, -3.5430070947659604e-05, 2.424006611860132e-05,
    -1.6584242271854135e-05, 1.134638458466385e-05, -7.762817668462094e-06,
    5.3110609208898636e-06, -3.6336507898010456e-06, 2.486022733129538e-06,
    -1.7008538854332607e-06, 1.1636675363548843e-06, -7.96142543124197e-07,
    5.446941930669446e-07, -3.7266161283438227e-07,
)
# B_2j / (2j), j = 1..8: digamma's asymptotic series from x = 10 on.
_PSI_ASYM = (0.08333333333333333, -0.008333333333333333, 0.003968253968253968, -0.004166666666666667,
             0.007575757575757576, -0.021092796092796094, 0.08333333333333333, -0.4432598039215686)
# B_2j / (2j)!, j = 1..10: the asymptotic series of zeta(n + 1, a), from a = 10 + n on.
_ZETA_ASYM = (0.08333333333333333, -0.001388888888888889, 3.306878306878307e-05, -8.267195767195768e-07,
              2.08767569878681e-08, -5.284190138687493e-10, 1.3382536530684679e-11, -3.3896802963225827e-13,
              8.586062056277845e-15, -2.174868698558062e-16)
# erfinv's starting value |x| p(w), w = -log(1 - x*x): least-squares fits (relative error < 8e-4),
# in w below w = 5, in sqrt(w) above.
_ERFINV_LOW = (0.88627386, 0.23156356, 0.012530791, -0.0031698977, 0.00018998865)
_ERFINV_HIGH = (0.10111415, 0.74778006, 0.08457369, -0.011982527, 0.00062957909)
# lgamma(1 + t) = -gamma t + sum_k (-1)^k zeta(k)/k t^k and lgamma(2 + t) = (1 - gamma) t + sum_k
# (-1)^k (zeta(k) - 1)/k t^k: coefficients of t^0, t^1, ... (VM only; C calls libm's lgamma).
_K = np.arange(2, 41, dtype=np.float64)
_LGAMMA1 = np.concatenate([[0.0, -np.euler_gamma], (-1.0) ** _K[:27] * _special.zeta(_K[:27]) / _K[:27]])
_LGAMMA2 = np.concatenate([[0.0, 1.0 - np.euler_gamma], (-1.0) ** _K * _special.zetac(_K) / _K])


# ------------------------------------------------------------------ numpy
def _first_order(value, derivative, z):
    """``value + i Im(z) derivative`` (0 imaginary part where Im z == 0, even at poles)."""
    h = z.imag
    with np.errstate(all="ignore"):
        return value + 1j * np.where(h == 0, 0.0, h * derivative)


def _scalar_or_array(out: np.ndarray):
    return out[()] if out.ndim == 0 else out


def lgamma(x):
    """``log|Gamma(x)|`` elementwise (float64, or complex for complex step).

    >>> float(lgamma(np.float64(0.5)))  # log(sqrt(pi))
    0.5723649429247001
    """
    if np.iscomplexobj(x):
        x = np.asarray(x)
        return _first_order(lgamma(x.real), digamma(x.real), x)
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        out = np.asarray(_special.gammaln(x), dtype=np.float64).copy()
        out[x == -np.inf] = np.inf  # C99: lgamma(-inf) = +inf (scipy says -inf)
        small = (x > -0.25) & (x < 3.5) & (x != 0.0)
        if small.any():
            out[small] = _lgamma_small(x[small])
    return _scalar_or_array(out)


def _lgamma_small(x: np.ndarray) -> np.ndarray:
    """lgamma on (-1/4, 0) and (0, 3.5) from the Taylor series about 1 and 2 (relative accuracy
    near the zeros at 1 and 2; gammaln gave inf for a tiny negative x)."""
    poly = np.polynomial.polynomial.polyval
    out = np.empty_like(x)
    a = x < 0.75  # lgamma(x) = lgamma(2 + x) - log|x| - log(1 + x)
    out[a] = poly(x[a], _LGAMMA2) - (np.log(np.abs(x[a])) + np.log1p(x[a]))
    b = (x >= 0.75) & (x <= 1.25)
    out[b] = poly(x[b] - 1.0, _LGAMMA1)
    c = (x > 1.25) & (x < 2.75)
    out[c] = poly(x[c] - 2.0, _LGAMMA2)
    d = x >= 2.75  # lgamma(x) = log(x - 1) + lgamma(x - 1)
    out[d] = np.log(x[d] - 1.0) + poly(x[d] - 3.0, _LGAMMA2)
    return out


def digamma(x):
    """digamma (psi), the derivative of lgamma, elementwise; the C helper's algorithm.

    >>> float(digamma(np.float64(-0.5)))  # psi(1.5) + 2
    0.03648997397857651
    """
    if np.iscomplexobj(x):
        x = np.asarray(x)
        return _first_order(digamma(x.real), polygamma(1.0, x.real), x)
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        out = _digamma_real(x)
    return _scalar_or_array(out)


def _digamma_real(x: np.ndarray) -> np.ndarray:
    y = np.zeros_like(x)
    neg = x <= 0.0
    t = _distance_to_nearest_integer(x)
    u = np.abs(t)  # pi cot(pi u), from tan(pi (1/2 - u)) above 1/4: exactly 0 at the half-integers
    cot = np.where(u <= 0.25, math.pi / np.tan(math.pi * u), math.pi * np.tan(math.pi * (0.5 - u)))
    y = np.where(neg, -np.copysign(cot, t), y)  # psi(x) = psi(1 - x) - pi cot(pi x)
    v = np.where(neg, 1.0 - x, x)
    low = v < _X0_HI - 0.5  # psi(v) = psi(v + 1) - 1/v
    y = np.where(low, y - 1.0 / v, y)
    v = np.where(low, v + 1.0, v)
    big = v >= 10.0
    z = 1.0 / (v * v)
    p = z * _horner(z, _PSI_ASYM)
    asym = y + ((np.log(v) - 0.5 / v) - p)
    for _ in range(9):  # psi(v) = psi(v - 1) + 1/(v - 1) down into [x0 - 1/2, x0 + 1/2]
        step = ~big & (v > _X0_HI + 0.5)
        v = np.where(step, v - 1.0, v)
        y = np.where(step, y + 1.0 / v, y)
    d = (v - _X0_HI) - _X0_LO
    out = np.where(big, asym, y + d * _horner(d, _PSI_TAYLOR))
    out[x == np.inf] = np.inf
    out[(neg & (t == 0.0)) | (x == -np.inf)] = np.nan  # negative integers (the sides disagree)
    zero = x == 0.0
    out[zero] = np.copysign(np.inf, -x[zero])  # psi(+0) = -inf, psi(-0) = +inf
    out[np.isnan(x)] = np.nan
    return out


def _horner(x, coefficients):
    """sum_k c[k] x**k, evaluated from the highest coefficient down (as the C code does)."""
    p = np.full_like(x, coefficients[-1])
    for c in coefficients[-2::-1]:
        p = c + x * p
    return p


def polygamma(n, x):
    """polygamma(n, x), the n-th derivative of digamma, for integer ``0 <= n <= 100`` (else nan).

    >>> float(polygamma(np.float64(2.0), np.float64(1.0)))  # -2 zeta(3)
    -2.4041138063191885
    """
    if np.iscomplexobj(x) or np.iscomplexobj(n):
        x, n = np.asarray(x), np.asarray(n).real
        return _first_order(polygamma(n, x.real), polygamma(n + 1.0, x.real), x)
    n, x = np.broadcast_arrays(np.asarray(n, dtype=np.float64), np.asarray(x, dtype=np.float64))
    out = np.full(x.shape, np.nan)
    with np.errstate(all="ignore"):
        zero = n == 0.0
        out[zero] = _digamma_real(x[zero])
        for order in np.unique(n[(n >= 1.0) & (n <= POLYGAMMA_MAX_ORDER) & (n == np.floor(n))]):
            at = n == order
            out[at] = _polygamma_real(int(order), x[at])
    return _scalar_or_array(out)


def _polygamma_real(n: int, x: np.ndarray) -> np.ndarray:
    s = n + 1.0
    sign = 1.0 if n % 2 else -1.0  # (-1)**(n + 1)
    nfact = _factorial(2, n + 1)  # n!
    out = np.full(x.shape, np.nan)
    pos = x > 0.0
    out[pos] = sign * _zeta_nfact(n, nfact, x[pos], 0.0)
    out[x == np.inf] = sign * 0.0
    zero = x == 0.0
    out[zero] = np.where(np.signbit(x[zero]), np.inf, sign * np.inf)
    neg = (x < 0.0) & np.isfinite(x)
    t = _distance_to_nearest_integer(x)
    out[neg & (t == 0.0)] = np.inf if n % 2 else np.nan
    neg &= t != 0.0
    if neg.any():
        xs, ts = x[neg], t[neg]
        m = ts - xs  # x = t - m exactly, m >= 0 an integer
        acc = np.zeros_like(xs)
        near = m <= 64.0
        if near.any():  # sum_k (k - t)^-s, k = m..1, two-sum corrected
            tn, mn, sums = ts[near], m[near], np.zeros(near.sum())
            for k in range(int(mn.max(initial=0.0)), 0, -1):
                hi = k - tn
                bb = hi - k
                err = (k - (hi - bb)) + (-tn - bb)
                sums = np.where(k <= mn, sums + np.power(hi, -s) * (1.0 - s * err / hi), sums)
            acc[near] = sums * nfact
        far = ~near
        if far.any():
            tf = ts[far]
            hi = 1.0 - tf
            bb = hi - 1.0
            err = (1.0 - (hi - bb)) + (-tf - bb)
            acc[far] = _zeta_nfact(n, nfact, hi, err) - _zeta_nfact(n, nfact, 1.0 - xs[far], 0.0)
        if n % 2 == 0:
            acc = -acc
        zeta = np.empty_like(ts)
        above = ts > 0.0
        zeta[above] = _zeta_nfact(n, nfact, ts[above], 0.0)
        tb = ts[~above]  # zeta(s, t) = t^-s + zeta(s, 1 + t), 1 + t two-sum corrected
        hi = 1.0 + tb
        bb = hi - 1.0
        err = (1.0 - (hi - bb)) + (tb - bb)
        zeta[~above] = nfact * np.power(tb, -s) + _zeta_nfact(n, nfact, hi, err)
        out[neg] = sign * (acc + zeta)
    return out


def _distance_to_nearest_integer(x: np.ndarray) -> np.ndarray:
    """x - round(x), exactly, in [-1/2, 1/2] for x < 2**52 in magnitude (0 beyond: all integers).

    floor(x + 1/2) is the nearest integer even where x + 1/2 rounds (|x| < 1/4), unlike
    x - floor(x), which rounds to 1 for a tiny negative x.
    """
    return np.where(np.abs(x) < 2.0**52, x - np.floor(x + 0.5), 0.0)


def _factorial(lo: int, hi: int) -> float:
    """lo * (lo+1) * ... * (hi-1) as C's running double product computes it (rounded from 23! on)."""
    f = 1.0
    for j in range(lo, hi):
        f *= j
    return f


def _zeta_nfact(n: int, nfact: float, a: np.ndarray, a_lo) -> np.ndarray:
    """n! zeta(n + 1, a + a_lo) for a > 0: terms up to 10 + n, then the asymptotic series."""
    s = n + 1.0
    out = np.empty_like(a)
    big = a >= 10.0 + n
    out[big] = _zeta_asym(n, a[big])
    small = ~big
    if small.any():
        a_s = a[small]
        lo = a_lo[small] if np.ndim(a_lo) else a_lo
        count = np.ceil(10.0 + n - a_s)
        total = np.zeros_like(a_s)
        for k in range(int(count.max()) - 1, -1, -1):  # smallest terms first
            hi = a_s + k
            bb = hi - a_s
            err = (a_s - (hi - bb)) + (k - bb) + lo
            total = np.where(k < count, total + np.power(hi, -s) * (1.0 - s * err / hi), total)
        out[small] = nfact * total + _zeta_asym(n, a_s + count)
    return out


def _zeta_asym(n: int, a: np.ndarray) -> np.ndarray:
    """n! zeta(n + 1, a), a >= 10 + n: (n-1)! a^-n (1 + n/(2a) + sum_j B_2j/(2j)! (n)_2j / a^2j),
    scaled through frexp/ldexp so that a^-n cannot underflow before the end."""
    z = 1.0 / (a * a)
    term = np.ones_like(a)
    terms = []
    for j, b in enumerate(_ZETA_ASYM):
        term = term * ((n + 2.0 * j) * (n + 2.0 * j + 1.0) * z)
        terms.append(b * term)
    total = np.zeros_like(a)
    for t in reversed(terms):
        total = total + t
    f = _factorial(2, n)  # (n - 1)!
    m, e = np.frexp(a)
    return np.ldexp(f * np.power(m, -float(n)) * (1.0 + (0.5 * n / a + total)), -n * e)


def erfinv(x):
    """Inverse error function elementwise (scipy.special.erfinv for real inputs).

    >>> float(erfinv(np.float64(0.5)))
    0.4769362762044699
    """
    if np.iscomplexobj(x):
        x = np.asarray(x)
        y = erfinv(x.real)
        with np.errstate(all="ignore"):
            return _first_order(y, SQRT_PI_OVER_2 * np.exp(np.square(y)), x)
    x = np.asarray(x, dtype=np.float64)
    return _scalar_or_array(np.where(x == 0.0, x, _special.erfinv(x)))  # scipy drops -0.0's sign


# ---------------------------------------------------------------------- C
def _c_list(values) -> str:
    return ", ".join(repr(float(v)) for v in values)


def _c_horner(var: str, coefficients) -> str:
    text = repr(float(coefficients[-1]))
    for c in coefficients[-2::-1]:
        text = f"{float(c)!r} + {var} * ({text})"
    return text


C_DIGAMMA = f"""\
#ifndef SG_DIGAMMA_DEFINED
#define SG_DIGAMMA_DEFINED
/* digamma (psi): reflection below 0, recurrence into [x0 - 1/2, x0 + 1/2] below 10 and a Taylor
   series there about the positive zero x0 = 1.4616..., asymptotic series from 10 on.
   psi(+0) = -inf, psi(-0) = +inf; nan at the negative integers and at -inf. */
static double sg_digamma(double x) {{
  static const double c[{len(_PSI_TAYLOR)}] = {{{_c_list(_PSI_TAYLOR)}}};
  const double x0_hi = {_X0_HI!r}, x0_lo = {_X0_LO!r};
  double y = 0.0, d, p, z, t, u;
  int k;
  if (x != x || x == INFINITY) return x;
  if (x <= 0.0) {{
    if (x == 0.0) return copysign(INFINITY, -x);
    if (x <= -4503599627370496.0) return NAN;  /* -inf, and integers from -2^52 down */
    t = x - floor(x + 0.5);            /* exact, in [-1/2, 1/2]; 0 at the poles */
    if (t == 0.0) return NAN;
    u = fabs(t);                       /* pi cot(pi u), exactly 0 at the half-integers */
    u = u <= 0.25 ? 3.141592653589793 / tan(3.141592653589793 * u)
                  : 3.141592653589793 * tan(3.141592653589793 * (0.5 - u));
    y = -copysign(u, t);
    x = 1.0 - x;                       /* psi(x) = psi(1 - x) - pi cot(pi x) */
  }}
  if (x < x0_hi - 0.5) {{               /* psi(x) = psi(x + 1) - 1/x */
    y -= 1.0 / x;
    x += 1.0;
  }}
  if (x >= 10.0) {{                     /* log(x) - 1/(2x) - sum_j B_2j / (2j x^2j) */
    z = 1.0 / (x * x);
    p = z * ({_c_horner("z", _PSI_ASYM)});
    return y + ((log(x) - 0.5 / x) - p);
  }}
  while (x > x0_hi + 0.5) {{            /* psi(x) = psi(x - 1) + 1/(x - 1) */
    x -= 1.0;
    y += 1.0 / x;
  }}
  d = (x - x0_hi) - x0_lo;             /* x - x0_hi is exact here */
  p = c[{len(_PSI_TAYLOR) - 1}];
  for (k = {len(_PSI_TAYLOR) - 2}; k >= 0; k--) p = c[k] + d * p;
  return y + d * p;
}}
#endif"""

C_POLYGAMMA = C_DIGAMMA + f"""
#ifndef SG_POLYGAMMA_DEFINED
#define SG_POLYGAMMA_DEFINED
/* n! zeta(n + 1, a) for a >= 10 + n: (n-1)! a^-n (1 + n/(2a) + sum_j B_2j/(2j)! n(n+1)...(n+2j-1)
   / a^2j), scaled by 2^(-n e) (a = m 2^e) so that a^-n cannot underflow before the end. */
static double sg_polygamma_asym(int n, double a) {{
  static const double b[{len(_ZETA_ASYM)}] = {{{_c_list(_ZETA_ASYM)}}};
  double t[{len(_ZETA_ASYM)}], z = 1.0 / (a * a), term = 1.0, sum = 0.0, f = 1.0, m;
  int j, e;
  for (j = 0; j < {len(_ZETA_ASYM)}; j++) {{
    term *= (n + 2.0 * j) * (n + 2.0 * j + 1.0) * z;
    t[j] = b[j] * term;
  }}
  for (j = {len(_ZETA_ASYM) - 1}; j >= 0; j--) sum += t[j];
  for (j = 2; j < n; j++) f *= j;      /* (n - 1)! */
  m = frexp(a, &e);
  return ldexp(f * pow(m, -n) * (1.0 + (0.5 * n / a + sum)), -n * e);
}}

/* n! zeta(n + 1, a + a_lo) for a > 0 (a_lo: a tiny correction to a, or 0): the terms
   n! (a + k)^-(n+1) below 10 + n, two-sum corrected, then the asymptotic series. */
static double sg_polygamma_zeta(int n, double nfact, double a, double a_lo) {{
  double s = n + 1.0, sum = 0.0, hi, bb, err;
  int k, count;
  if (a >= 10.0 + n) return sg_polygamma_asym(n, a);
  count = (int) ceil(10.0 + n - a);
  for (k = count - 1; k >= 0; k--) {{  /* smallest terms first */
    hi = a + k;
    bb = hi - a;
    err = (a - (hi - bb)) + (k - bb) + a_lo;
    sum += pow(hi, -s) * (1.0 - s * err / hi);
  }}
  return nfact * sum + sg_polygamma_asym(n, a + count);
}}

/* polygamma(n, x), the n-th derivative of digamma, for integer 0 <= n <= {POLYGAMMA_MAX_ORDER} (else nan):
   (-1)^(n+1) n! zeta(n + 1, x) for x > 0.  Below 0, with t = x - round(x): the terms between x
   and t summed (more than 64: a difference of two zetas), plus zeta(n + 1, t).  Poles: +inf at
   -0.0, (-1)^(n+1) inf at +0.0; at the negative integers +inf for odd n, nan for even n. */
static double sg_polygamma(double n, double x) {{
  double nfact = 1.0, sign, s, t, m, acc = 0.0, hi, bb, err, z;
  int k, ni;
  if (n != n || x != x) return NAN;
  if (n == 0.0) return sg_digamma(x);
  if (!(n >= 1.0 && n <= {float(POLYGAMMA_MAX_ORDER)!r}) || n != floor(n)) return NAN;
  ni = (int) n;
  s = n + 1.0;
  sign = (ni & 1) ? 1.0 : -1.0;        /* (-1)^(n+1) */
  if (x == INFINITY) return sign * 0.0;
  if (x == -INFINITY) return NAN;
  for (k = 2; k <= ni; k++) nfact *= k;
  if (x > 0.0) return sign * sg_polygamma_zeta(ni, nfact, x, 0.0);
  if (x == 0.0) return copysign(1.0, x) < 0.0 ? INFINITY : sign * INFINITY;
  if (x <= -4503599627370496.0) return (ni & 1) ? INFINITY : NAN;  /* integers from -2^52 down */
  t = x - floor(x + 0.5);              /* exact, in [-1/2, 1/2] */
  if (t == 0.0) return (ni & 1) ? INFINITY : NAN;
  m = t - x;                           /* exact: x = t - m, m >= 0 an integer */
  if (m <= 64.0) {{
    for (k = (int) m; k >= 1; k--) {{   /* sum_k (k - t)^-s, two-sum corrected */
      hi = k - t;
      bb = hi - k;
      err = (k - (hi - bb)) + (-t - bb);
      acc += pow(hi, -s) * (1.0 - s * err / hi);
    }}
    acc *= nfact;
  }} else {{
    hi = 1.0 - t;
    bb = hi - 1.0;
    err = (1.0 - (hi - bb)) + (-t - bb);
    acc = sg_polygamma_zeta(ni, nfact, hi, err) - sg_polygamma_zeta(ni, nfact, 1.0 - x, 0.0);
  }}
  if (!(ni & 1)) acc = -acc;           /* (t - k)^-s = (-1)^s (k - t)^-s */
  if (t > 0.0) {{
    z = sg_polygamma_zeta(ni, nfact, t, 0.0);
  }} else {{                             /* zeta(s, t) = t^-s + zeta(s, 1 + t), two-sum corrected */
    hi = 1.0 + t;
    bb = hi - 1.0;
    err = (1.0 - (hi - bb)) + (t - bb);
    z = nfact * pow(t, -s) + sg_polygamma_zeta(ni, nfact, hi, err);
  }}
  return sign * (acc + z);
}}
#endif"""

C_ERFINV = f"""\
#ifndef SG_ERFINV_DEFINED
#define SG_ERFINV_DEFINED
/* inverse error function: a start y = |x| p(w), w = -log(1 - x^2), then two Halley steps on
   erf(y) = |x| (from |x| = 1/2 on in the form erfc(y) = 1 - |x|, which is exact there).
   erfinv(+-1) = +-inf, nan for |x| > 1, erfinv(-0.0) = -0.0. */
static double sg_erfinv(double x) {{
  double a = fabs(x), w, y, f, u;
  int i;
  if (!(a < 1.0)) return a == 1.0 ? copysign(INFINITY, x) : NAN;
  if (a == 0.0) return x;
  w = -log((1.0 - a) * (1.0 + a));
  if (w < 5.0) {{
    y = a * ({_c_horner("w", _ERFINV_LOW)});
  }} else {{
    w = sqrt(w);
    y = a * ({_c_horner("w", _ERFINV_HIGH)});
  }}
  for (i = 0; i < 2; i++) {{            /* y -= u / (1 + y u), u = f / f' */
    f = a < 0.5 ? erf(y) - a : (1.0 - a) - erfc(y);
    u = f / ({2.0 / math.sqrt(math.pi)!r} * exp(-y * y));
    y -= u / (1.0 + y * u);
  }}
  return copysign(y, x);
}}
#endif"""
