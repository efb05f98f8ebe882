"""THE op table: every operation symgraph knows, defined exactly once.

An :class:`Op` record holds everything about one operation: its name and
arity, a numpy implementation (which works on float64 *and* complex128 arrays,
so complex-step differentiation runs through the VM), its C99 spelling, its
partial derivatives written with graph operations (so derivatives are graphs
and can be differentiated again), its SymPy counterpart, and its properties.
The VM, the C emitter, AD, the SymPy bridge and the rewriter all read this
table; adding an op is one entry here plus its tests.

Near the edges of their domains the inverse trigonometric and hyperbolic
partials use ``(1 - a)*(1 + a)`` rather than ``1 - a*a``, which would lose
all digits as ``|a| -> 1``.

Partial derivatives follow CasADi's convention: ``deriv(*args, r)`` receives
the operand expressions and the result expression ``r`` and returns one
partial per operand (an Expr or a plain number).  Subgradient conventions at
kinks are documented on the op (``fmin``: the first operand wins ties, ...).

>>> from symgraph import ops
>>> ops.OPS["sin"].arity, ops.OPS["sin"].c
(1, 'sin({0})')
>>> import numpy as np
>>> float(ops.OPS["atan2"].np(np.float64(1.0), np.float64(1.0)))  # pi/4
0.7853981633974483
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import scipy.special as _special

from . import specfun as _sf

# Set by symgraph.expr at import time: apply(op, *operands) -> Expr.  The
# derivative rules below build graph nodes through it, so this module has no
# import-time dependency on expr.py.
_APPLY: Callable[..., Any] | None = None


@dataclass(frozen=True, eq=False)
class Op:
    """One operation of the table.

    Attributes:
        name: unique name, also the name of the ``sg.<name>`` builder.
        arity: number of operands (0 for leaves, -1 for any number: a call).
        np: numpy implementation over arrays (float64 and complex128).
        c: C99 spelling as a ``str.format`` template over operand names
           (``"sin({0})"``), or None where the emitter has a special rule.
        deriv: ``deriv(*operands, result) -> tuple`` of partial derivatives.
        sympy: ``sympy(sp, *operands)`` building the SymPy counterpart.
        infix: operator symbol when printed infix (``"+"``), else None.
        prec: printing precedence (higher binds tighter).
        props: algebraic and numeric properties (see PROPERTIES).
        identity: value ``e`` with ``op(x, e) == x`` (right identity), if any.
        doc: one line on domain and conventions.
    """

    name: str
    arity: int
    np: Callable[..., Any] | None
    c: str | None
    deriv: Callable[..., tuple] | None
    sympy: Callable[..., Any] | None
    infix: str | None = None
    prec: int = 9
    props: frozenset = field(default_factory=frozenset)
    identity: float | None = None
    doc: str = ""
    code: int = -1  # position in OP_LIST (the opcode on a Tape), set below

    def __repr__(self) -> str:
        return f"Op({self.name})"

    def has(self, prop: str) -> bool:
        """True if the op carries property ``prop``.

        >>> OPS["add"].has("commutative")
        True
        """
        return prop in self.props


PROPERTIES = {
    "commutative": "op(a, b) == op(b, a)",
    "associative": "op(op(a, b), c) == op(a, op(b, c)) in exact arithmetic",
    "exact": "correctly rounded in IEEE arithmetic: VM and C agree bitwise",
    "boolean": "result is always 0.0 or 1.0",
    "flat": "derivative is zero wherever it exists (floor, sign, comparisons)",
    "leaf": "no operands: a symbol or a constant",
    "structural": "a call or result node (symgraph/call.py): no numpy, C, derivative or SymPy rule of its own",
}


def _g(name: str) -> Callable[..., Any]:
    """Graph builder for op ``name`` (resolved when called, after expr loaded)."""

    def build(*operands):
        return _APPLY(OPS[name], *operands)

    build.__name__ = name
    return build


sqrt, exp, log, cos, sin, cosh, sinh = map(_g, ("sqrt", "exp", "log", "cos", "sin", "cosh", "sinh"))
square, powi, pow_, sign = map(_g, ("square", "powi", "pow", "sign"))
le, ge, lnot, if_else = map(_g, ("le", "ge", "not", "if_else"))
digamma, polygamma = map(_g, ("digamma", "polygamma"))


# ---------------------------------------------------------------- numpy side
# Real inputs take numpy's own ufuncs.  Complex inputs (complex step) follow
# the complex-step conventions: comparisons, kinks and rounding look at the
# real part only, smooth functions are analytic continuations.

def _re(x):
    return x.real if np.iscomplexobj(x) else x


def _bool(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _np_sign(x):
    return np.sign(_re(x)) + 0.0  # + 0.0 turns -0.0 into 0.0, as C's sg_sign


def _np_abs(x):
    if np.iscomplexobj(x):
        return np.where(x.real < 0, -x, x)
    return np.abs(x)


def _np_cbrt(x):
    if np.iscomplexobj(x):
        return np.where(x.real < 0, -((-x) ** (1.0 / 3.0)), x ** (1.0 / 3.0))
    return np.cbrt(x)


# fmin/fmax on a tie between -0.0 and 0.0: real inputs return the second
# operand, as C's fmin/fmax do (glibc, x86 minsd), so the VM and compiled C
# agree bitwise; np.fmin returns either zero depending on the array length
# (SIMD body vs scalar tail).  Complex inputs (complex step) let the first
# operand win ties, the derivative convention of the table.
def _np_fmin(a, b):
    if np.iscomplexobj(a) or np.iscomplexobj(b):
        ar, br = _re(a), _re(b)
        return np.where(np.isnan(ar) | (br < ar), b, a)
    return np.where(np.isnan(a) | (b <= a), b, a)


def _np_fmax(a, b):
    if np.iscomplexobj(a) or np.iscomplexobj(b):
        ar, br = _re(a), _re(b)
        return np.where(np.isnan(ar) | (br > ar), b, a)
    return np.where(np.isnan(a) | (b >= a), b, a)


def _np_fmod(a, b):
    if np.iscomplexobj(a) or np.iscomplexobj(b):
        ar, br = _re(a), _re(b)
        r = np.fmod(ar, br)  # the real part is exactly C's fmod
        n = np.round((ar - r) / br)  # the integer quotient trunc(a/b) behind r
        return r + ((a - ar) - n * (b - br))
    return np.fmod(a, b)


def _np_hypot(a, b):
    if np.iscomplexobj(a) or np.iscomplexobj(b):
        return np.sqrt(a * a + b * b)
    return np.hypot(a, b)


def _np_atan2(y, x):
    if not (np.iscomplexobj(y) or np.iscomplexobj(x)):
        return np.arctan2(y, x)
    yr, xr = _re(y), _re(x)
    # Real part from arctan2; the imaginary perturbation from arctan of the
    # ratio that is bounded in this quadrant (complex-step conventions).
    with np.errstate(all="ignore"):
        along_x = np.arctan(y / x) - np.arctan(yr / xr)
        along_y = np.arctan(xr / yr) - np.arctan(x / y)
    return np.arctan2(yr, xr) + np.where(np.abs(xr) >= np.abs(yr), along_x, along_y)


def _np_pow(a, b):
    # numpy turns a scalar exponent of 0.5 into sqrt (pow(-0.0, .5) = -0.0,
    # pow(-inf, .5) = nan); C's pow gives +0.0 and +inf.  A materialized
    # exponent array keeps numpy on its true pow loop, which matches C.
    shape = np.broadcast_shapes(np.shape(a), np.shape(b))
    if not shape:
        return np.power(np.array([a]), np.array([b]))[0]
    return np.power(a, np.array(np.broadcast_to(b, shape)))


def _np_floor(x):
    return np.floor(_re(x))


def _np_ceil(x):
    return np.ceil(_re(x))


def _np_powi(x, n):
    return np.power(x, _re(n))


def _cmp(ufunc):
    def compare(a, b):
        return _bool(ufunc(_re(a), _re(b)))

    compare.__name__ = ufunc.__name__
    return compare


def _np_not(x):
    return _bool(_re(x) == 0)


def _np_and(a, b):
    return _bool((_re(a) != 0) & (_re(b) != 0))


def _np_or(a, b):
    return _bool((_re(a) != 0) | (_re(b) != 0))


def _np_if_else(c, a, b):
    return np.where(_re(c) != 0, a, b)


def _np_erf(x):
    return _special.erf(x)


# Real erfc is the C library's (math.erfc calls libm's erfc), the function compiled code calls, so
# the VM and C agree bitwise.  scipy.special.erfc is up to ~500 ulps off for x > 10 (exp(-x*x)
# with a rounded x*x) and flushes its subnormal results to 0 (erfc(27) is 5.2e-319, not 0).
# Complex inputs (complex step) take scipy's complex erfc, which is accurate there too.
_LIBM_ERFC = np.frompyfunc(math.erfc, 1, 1)


def _np_erfc(x):
    if np.iscomplexobj(x):
        return _special.erfc(x)
    out = _LIBM_ERFC(x)
    return np.float64(out) if np.ndim(out) == 0 else out.astype(np.float64)


# ---------------------------------------------------------------- sympy side

def _sp_bool(sp, x):
    """A SymPy boolean for a symgraph truth value (nonzero is true; nan too, as in C)."""
    # A real sympy.Symbol is also a Boolean subclass: numbers must be compared with 0.
    return x if isinstance(x, sp.logic.boolalg.Boolean) and not isinstance(x, sp.Expr) else sp.Ne(x, 0)


def _sp_indicator(sp, cond):
    return sp.Piecewise((sp.Integer(1), cond), (sp.Integer(0), True))


def _sp_cmp(name):
    def convert(sp, a, b):
        rel = {"lt": sp.Lt, "le": sp.Le, "gt": sp.Gt, "ge": sp.Ge, "eq": sp.Eq, "ne": sp.Ne}[name]
        return _sp_indicator(sp, rel(a, b))

    return convert


def _sp_cfun(name):
    def convert(sp, *a):
        from sympy.codegen import cfunctions

        return getattr(cfunctions, name)(*a)

    return convert


def _sp_polygamma(sp, n, a):
    # a numeric order becomes a SymPy Integer (as powi's exponent); orders outside 0..100 are nan
    if n.is_Number:
        k = float(n)
        if not (k.is_integer() and 0 <= k <= _sf.POLYGAMMA_MAX_ORDER):
            return sp.nan
        n = sp.Integer(int(k))
    return sp.polygamma(n, a)


def _sp_fmod(sp, a, b):
    q = a / b
    return a - b * sp.sign(q) * sp.floor(sp.Abs(q))


LN2 = math.log(2.0)
LN10 = math.log(10.0)
TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)

_EXACT = frozenset({"exact"})
_FLAT = frozenset({"flat"})
_BOOL = frozenset({"flat", "boolean", "exact"})
_CA = frozenset({"commutative", "associative", "exact"})


def _table() -> list[Op]:
    """The ops in a fixed order (their index is their opcode on a Tape)."""
    leaf = frozenset({"leaf"})
    return [
        Op("symbol", 0, None, None, None, None, props=leaf, doc="a free variable"),
        Op("const", 0, None, None, None, None, props=leaf, doc="a float64 constant"),
        # arithmetic
        Op("add", 2, np.add, "{0} + {1}", lambda a, b, r: (1.0, 1.0), lambda sp, a, b: a + b,
           infix="+", prec=1, props=_CA, identity=0.0, doc="a + b"),
        Op("sub", 2, np.subtract, "{0} - {1}", lambda a, b, r: (1.0, -1.0), lambda sp, a, b: a - b,
           infix="-", prec=1, props=_EXACT, identity=0.0, doc="a - b"),
        Op("mul", 2, np.multiply, "{0} * {1}", lambda a, b, r: (b, a), lambda sp, a, b: a * b,
           infix="*", prec=2, props=_CA, identity=1.0,
           doc="a * b; x*0 folds to -0.0 at construction, dropping NaN/inf propagation and the sign of the zero "
               "(as CasADi, SymPy; see docs/design.md)"),
        Op("div", 2, np.divide, "{0} / {1}", lambda a, b, r: (1.0 / b, -r / b), lambda sp, a, b: a / b,
           infix="/", prec=2, props=_EXACT, identity=1.0, doc="a / b; IEEE inf/nan at b == 0"),
        Op("neg", 1, np.negative, "-{0}", lambda a, r: (-1.0,), lambda sp, a: -a,
           infix="-", prec=3, props=_EXACT, doc="-a"),
        Op("pow", 2, _np_pow, "pow({0}, {1})",
           lambda a, b, r: (b * pow_(a, b - 1.0), log(a) * r), lambda sp, a, b: a**b,
           infix="**", prec=4, doc="a ** b for real b; nan for a < 0 and non-integer b"),
        Op("powi", 2, _np_powi, None,
           lambda a, n, r: (n * powi(a, n - 1.0), 0.0), lambda sp, a, n: a ** sp.Integer(int(n)),
           infix="**", prec=4, doc="a ** n for a constant integer n; C emits multiplications"),
        Op("square", 1, np.square, "{0} * {0}", lambda a, r: (2.0 * a,), lambda sp, a: a**2,
           props=_EXACT, doc="a * a"),
        Op("sqrt", 1, np.sqrt, "sqrt({0})", lambda a, r: (0.5 / r,), lambda sp, a: sp.sqrt(a),
           props=_EXACT, doc="nan for a < 0; derivative inf at 0"),
        Op("cbrt", 1, _np_cbrt, "cbrt({0})", lambda a, r: (1.0 / (3.0 * square(r)),),
           _sp_cfun("Cbrt"), doc="real cube root, defined for all a; derivative inf at 0"),
        # exponentials and logarithms
        Op("exp", 1, np.exp, "exp({0})", lambda a, r: (r,), lambda sp, a: sp.exp(a)),
        Op("expm1", 1, np.expm1, "expm1({0})", lambda a, r: (exp(a),), _sp_cfun("expm1"),
           doc="exp(a) - 1, accurate for small a"),
        Op("log", 1, np.log, "log({0})", lambda a, r: (1.0 / a,), lambda sp, a: sp.log(a),
           doc="nan for a < 0, -inf at 0"),
        Op("log1p", 1, np.log1p, "log1p({0})", lambda a, r: (1.0 / (1.0 + a),), _sp_cfun("log1p"),
           doc="log(1 + a), accurate for small a; nan for a < -1"),
        Op("log2", 1, np.log2, "log2({0})", lambda a, r: (1.0 / (a * LN2),), _sp_cfun("log2")),
        Op("log10", 1, np.log10, "log10({0})", lambda a, r: (1.0 / (a * LN10),), _sp_cfun("log10")),
        # trigonometry
        Op("sin", 1, np.sin, "sin({0})", lambda a, r: (cos(a),), lambda sp, a: sp.sin(a)),
        Op("cos", 1, np.cos, "cos({0})", lambda a, r: (-sin(a),), lambda sp, a: sp.cos(a)),
        Op("tan", 1, np.tan, "tan({0})", lambda a, r: (1.0 + square(r),), lambda sp, a: sp.tan(a)),
        Op("asin", 1, np.arcsin, "asin({0})", lambda a, r: (1.0 / sqrt((1.0 - a) * (1.0 + a)),),
           lambda sp, a: sp.asin(a), doc="nan outside [-1, 1]"),
        Op("acos", 1, np.arccos, "acos({0})", lambda a, r: (-1.0 / sqrt((1.0 - a) * (1.0 + a)),),
           lambda sp, a: sp.acos(a), doc="nan outside [-1, 1]"),
        Op("atan", 1, np.arctan, "atan({0})", lambda a, r: (1.0 / (1.0 + square(a)),),
           lambda sp, a: sp.atan(a)),
        Op("atan2", 2, _np_atan2, "atan2({0}, {1})", _atan2_deriv, lambda sp, y, x: sp.atan2(y, x),
           doc="angle of (x=b, y=a); derivative undefined (nan) at the origin"),
        # hyperbolic
        Op("sinh", 1, np.sinh, "sinh({0})", lambda a, r: (cosh(a),), lambda sp, a: sp.sinh(a)),
        Op("cosh", 1, np.cosh, "cosh({0})", lambda a, r: (sinh(a),), lambda sp, a: sp.cosh(a)),
        Op("tanh", 1, np.tanh, "tanh({0})", lambda a, r: (1.0 - square(r),), lambda sp, a: sp.tanh(a)),
        Op("asinh", 1, np.arcsinh, "asinh({0})", lambda a, r: (1.0 / sqrt(square(a) + 1.0),),
           lambda sp, a: sp.asinh(a)),
        Op("acosh", 1, np.arccosh, "acosh({0})", lambda a, r: (1.0 / sqrt((a - 1.0) * (a + 1.0)),),
           lambda sp, a: sp.acosh(a), doc="nan for a < 1"),
        Op("atanh", 1, np.arctanh, "atanh({0})", lambda a, r: (1.0 / ((1.0 - a) * (1.0 + a)),),
           lambda sp, a: sp.atanh(a), doc="nan outside [-1, 1], inf at +-1"),
        # special functions
        Op("erf", 1, _np_erf, "erf({0})", lambda a, r: (TWO_OVER_SQRT_PI * exp(-square(a)),),
           lambda sp, a: sp.erf(a)),
        Op("erfc", 1, _np_erfc, "erfc({0})", lambda a, r: (-TWO_OVER_SQRT_PI * exp(-square(a)),),
           lambda sp, a: sp.erfc(a)),
        # non-smooth
        Op("abs", 1, _np_abs, "fabs({0})", lambda a, r: (sign(a),), lambda sp, a: sp.Abs(a),
           props=_EXACT, doc="|a|; subgradient sign(a), 0 at a == 0"),
        Op("sign", 1, _np_sign, "sg_sign({0})", lambda a, r: (0.0,), lambda sp, a: sp.sign(a),
           props=frozenset({"flat", "exact"}), doc="-1, 0 or 1 (0 for -0.0), nan for nan"),
        Op("floor", 1, _np_floor, "floor({0})", lambda a, r: (0.0,), lambda sp, a: sp.floor(a),
           props=frozenset({"flat", "exact"}), doc="derivative 0 (also at the jumps)"),
        Op("ceil", 1, _np_ceil, "ceil({0})", lambda a, r: (0.0,), lambda sp, a: sp.ceiling(a),
           props=frozenset({"flat", "exact"}), doc="derivative 0 (also at the jumps)"),
        Op("fmin", 2, _np_fmin, "fmin({0}, {1})", lambda a, b, r: (le(a, b), lnot(le(a, b))),
           lambda sp, a, b: sp.Min(a, b), props=_EXACT,
           doc="minimum ignoring a nan operand (C fmin); the first operand wins ties in derivatives "
               "(not marked commutative: reordering would change ties and the sign of a zero result)"),
        Op("fmax", 2, _np_fmax, "fmax({0}, {1})", lambda a, b, r: (ge(a, b), lnot(ge(a, b))),
           lambda sp, a, b: sp.Max(a, b), props=_EXACT,
           doc="maximum ignoring a nan operand (C fmax); the first operand wins ties in derivatives "
               "(not marked commutative, as fmin)"),
        Op("fmod", 2, _np_fmod, "fmod({0}, {1})", lambda a, b, r: (1.0, (r - a) / b), _sp_fmod,
           props=_EXACT, doc="C fmod: a - trunc(a/b)*b, sign of a; nan for b == 0; d/db = -(a - r)/b, "
                             "the exact integer quotient (a rounded a/b can be off by one)"),
        Op("hypot", 2, _np_hypot, "hypot({0}, {1})", lambda a, b, r: (a / r, b / r),
           _sp_cfun("hypot"), props=frozenset({"commutative"}),
           doc="sqrt(a*a + b*b) without overflow; derivative nan at the origin"),
        # comparisons and logic: 0.0/1.0 values, zero derivative
        Op("lt", 2, _cmp(np.less), "{0} < {1}", _zero2, _sp_cmp("lt"), infix="<", prec=0, props=_BOOL),
        Op("le", 2, _cmp(np.less_equal), "{0} <= {1}", _zero2, _sp_cmp("le"), infix="<=", prec=0, props=_BOOL),
        Op("gt", 2, _cmp(np.greater), "{0} > {1}", _zero2, _sp_cmp("gt"), infix=">", prec=0, props=_BOOL),
        Op("ge", 2, _cmp(np.greater_equal), "{0} >= {1}", _zero2, _sp_cmp("ge"), infix=">=", prec=0, props=_BOOL),
        Op("eq", 2, _cmp(np.equal), "{0} == {1}", _zero2, _sp_cmp("eq"), infix="==", prec=0,
           props=_BOOL | {"commutative"}),
        Op("ne", 2, _cmp(np.not_equal), "{0} != {1}", _zero2, _sp_cmp("ne"), infix="!=", prec=0,
           props=_BOOL | {"commutative"}),
        Op("not", 1, _np_not, "!{0}", lambda a, r: (0.0,),
           lambda sp, a: _sp_indicator(sp, sp.Not(_sp_bool(sp, a))), props=_BOOL,
           doc="1 where a == 0 else 0 (nan counts as true, as in C)"),
        Op("and", 2, _np_and, "{0} && {1}", _zero2,
           lambda sp, a, b: _sp_indicator(sp, sp.And(_sp_bool(sp, a), _sp_bool(sp, b))),
           props=_BOOL | {"commutative"}, doc="1 where both are nonzero"),
        Op("or", 2, _np_or, "{0} || {1}", _zero2,
           lambda sp, a, b: _sp_indicator(sp, sp.Or(_sp_bool(sp, a), _sp_bool(sp, b))),
           props=_BOOL | {"commutative"}, doc="1 where either is nonzero"),
        Op("if_else", 3, _np_if_else, "{0} ? {1} : {2}",
           lambda c, a, b, r: (0.0, if_else(c, 1.0, 0.0), if_else(c, 0.0, 1.0)),
           lambda sp, c, a, b: sp.Piecewise((a, _sp_bool(sp, c)), (b, True)),
           doc="a where c != 0 else b (nan counts as true); derivative follows the taken branch"),
        # special functions (appended after the original table: earlier opcodes keep their numbers);
        # numerics in symgraph/specfun.py; complex inputs give f(Re z) + i Im(z) f'(Re z)
        Op("lgamma", 1, _sf.lgamma, "lgamma({0})", lambda a, r: (digamma(a),),
           lambda sp, a: sp.re(sp.loggamma(a)),
           doc="log|Gamma(a)| (C99 lgamma); +inf at the poles 0, -1, -2, ... and at +-inf"),
        Op("digamma", 1, _sf.digamma, "sg_digamma({0})", lambda a, r: (polygamma(1.0, a),),
           lambda sp, a: sp.polygamma(0, a),
           doc="psi(a) = d lgamma/da; -inf at +0, +inf at -0, nan at the negative integers and -inf"),
        Op("polygamma", 2, _sf.polygamma, "sg_polygamma({0}, {1})",
           lambda n, a, r: (0.0, polygamma(n + 1.0, a)), _sp_polygamma,
           doc="polygamma(n, a), the n-th derivative of digamma, for a constant integer 0 <= n <= 100 "
               "(else nan); derivative 0 in n; poles: see symgraph.specfun"),
        Op("erfinv", 1, _sf.erfinv, "sg_erfinv({0})", lambda a, r: (_sf.SQRT_PI_OVER_2 * exp(square(r)),),
           lambda sp, a: sp.erfinv(a), doc="inverse of erf on (-1, 1); +-inf at +-1, nan outside [-1, 1]"),
        # structural ops (symgraph/call.py), like symbol/const special entries with no numpy, C, derivative
        # or SymPy rule: the VM, optimizer, AD and printers handle them by name.  Not scalar operations
        # (SCALAR_OPS leaves them out); call has any number of operands (arity -1).
        Op("call", -1, None, None, None, None, props=frozenset({"structural"}),
           doc="a call of a Function (data: the callee) on its input scalars (operands, in order); "
               "its value is all the callee's output scalars, read only by result nodes"),
        Op("result", 1, None, None, None, None, props=frozenset({"structural"}),
           doc="output scalar number data (flat over the callee's outputs) of its operand, a call node"),
    ]


def _zero2(a, b, r):
    return (0.0, 0.0)


def _atan2_deriv(y, x, r):
    inv = 1.0 / (square(x) + square(y))
    return (x * inv, -y * inv)


OP_LIST: tuple[Op, ...] = tuple(_table())
for _code, _op in enumerate(OP_LIST):
    object.__setattr__(_op, "code", _code)
assert len(OP_LIST) < 128  # opcodes fit the 7 low bits of an intern key (expr.py)
OPS: dict[str, Op] = {op.name: op for op in OP_LIST}
OPCODE: dict[Op, int] = {op: code for code, op in enumerate(OP_LIST)}
# The scalar operations: every op with operands and its own numpy, C, derivative and SymPy rule
# (what elementwise builders, random graphs and op-by-op tests range over).
SCALAR_OPS: tuple[Op, ...] = tuple(op for op in OP_LIST if op.arity > 0 and not op.has("structural"))

# Ops that the C emitter needs a helper function for (C99 has no sign()).
C_HELPERS: dict[str, str] = {
    "sign": "static double sg_sign(double x) { return x > 0 ? 1.0 : (x < 0 ? -1.0 : (x == x ? 0.0 : x)); }",
    # Guarded by #ifndef, so that polygamma's copy of sg_digamma and digamma's own may both appear.
    "digamma": _sf.C_DIGAMMA,
    "polygamma": _sf.C_POLYGAMMA,
    "erfinv": _sf.C_ERFINV,
}
