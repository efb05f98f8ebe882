"""Expr: immutable, hash-consed scalar nodes of an expression graph.

Building the same operation on the same operands twice returns the *same*
object (hash-consing), so structurally equal subgraphs are shared and graph
equality is identity.  Cheap local simplifications happen at construction:
constant folding, ``x - 0``, ``x + (-0.0)``, ``x * 1``, ``x * 0 -> 0``,
``x / 1``, ``0 / x -> 0``, ``-(-x)``, ``x ** 1``, ``x ** 0`` and trivial
``if_else``.  All are exact in IEEE arithmetic except two: ``x * 0 -> 0``
and ``0 / x -> 0`` drop NaN/inf propagation and the sign of the zero (as
CasADi and SymPy do); derivative sparsity relies on them.  Their zero is
``-0.0``, which vanishes exactly from sums, so ``A @ x`` has no term for a
zero entry of ``A``.  ``x + 0.0`` is ``x`` only where ``x`` can never be
``-0.0`` (``-0.0 + 0.0`` is ``+0.0``).

Symbols are *not* interned: every ``symbol("x")`` is a new, distinct variable
(as in CasADi); the name is only a label.

Nothing here recurses over a graph: :func:`walk` and printing use explicit
stacks, so chains of millions of nodes are fine.

>>> from symgraph.expr import symbol
>>> x = symbol("x")
>>> (x + 1) * 2 is (x + 1) * 2
True
>>> str(x * 1 - 0), str(x + 0), str(abs(x) + 0), str(x * 0 + 2 * x)
('x', '0 + x', 'abs(x)', '2 * x')
"""

from __future__ import annotations

import collections
import contextlib
import gc
import itertools
import math
import numbers
import operator
import sys
import threading
from typing import Any, Iterator

import numpy as np

from . import ops
from .errors import (ArityError, DTypeError, InvalidOpError, NonNumericConstantError, NotPicklableError,
                     SymbolicBoolError)
from .ops import OPS, Op

SYMBOL, CONST = OPS["symbol"], OPS["const"]
ADD, SUB, MUL, DIV, NEG = OPS["add"], OPS["sub"], OPS["mul"], OPS["div"], OPS["neg"]
POW, POWI, SQUARE, IF_ELSE = OPS["pow"], OPS["powi"], OPS["square"], OPS["if_else"]
CALL, RESULT = OPS["call"], OPS["result"]  # structural nodes: see symgraph/call.py


class Expr:
    """A scalar node: an op applied to operand nodes, a symbol or a constant.

    Do not construct directly; use :func:`symbol`, :func:`const`, operators
    and the ``sg.<op>`` builders.

    Attributes:
        op: the :class:`~symgraph.ops.Op` of this node.
        args: operand nodes (empty for symbols and constants).
        data: the name of a symbol, the float value of a constant, the callee
            Function of a call node, the output index of a result node
            (symgraph/call.py), else None.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> e = sg.sin(x) / x
    >>> e.op.name, e.args[1] is x
    ('div', True)
    """

    __slots__ = ("op", "args", "data")

    def __new__(cls, *args, **kwargs):
        raise TypeError("Expr nodes are made by sg.symbols, sg.const, operators and sg.<op> builders")

    # -- identity: hash-consing makes structural equality object identity
    __hash__ = object.__hash__

    def __setattr__(self, name, value):
        raise AttributeError("Expr nodes are immutable")

    def __delattr__(self, name):
        raise AttributeError("Expr nodes are immutable")

    def __reduce__(self):
        raise NotPicklableError(
            "an Expr is not picklable (nor copyable) on its own: nodes are hash-consed per process. "
            "Pickle a Function of it instead, pickle.dumps(sg.Function('f', [x], [expr])); the loaded "
            "Function's .inputs and .outputs hold the rebuilt symbols and expressions")

    # -- queries
    @property
    def is_symbol(self) -> bool:
        """True for a free variable made by :func:`symbol`."""
        return self.op is SYMBOL

    @property
    def is_const(self) -> bool:
        """True for a numeric constant."""
        return self.op is CONST

    @property
    def name(self) -> str:
        """The name of a symbol.

        >>> symbol("v").name
        'v'
        """
        if self.op is not SYMBOL:
            raise AttributeError(f"only symbols have a name; this is a {self.op.name} node")
        return self.data

    @property
    def value(self) -> float:
        """The value of a constant.

        >>> const(2).value
        2.0
        """
        if self.op is not CONST:
            raise AttributeError(f"only constants have a value; this is a {self.op.name} node")
        return self.data

    def __float__(self) -> float:
        if self.op is CONST:
            return self.data
        raise SymbolicBoolError(
            f"cannot convert symbolic expression {_short(self)} to float. To store expressions in an "
            "array, make it an object array (np.zeros(n, dtype=object), np.empty(n, dtype=object)); "
            "numpy functions that need numbers (np.interp, ...) cannot take expressions: build the "
            "same with symgraph builders (sg.if_else, sg.fmin, sg.fmax, ...); to get a number, "
            "freeze the expression into sg.Function and call it")

    def __bool__(self) -> bool:
        if self.op is CONST:
            return self.data != 0.0
        raise SymbolicBoolError(
            f"the truth value of symbolic expression {_short(self)} is unknown until evaluated; "
            "use sg.if_else(cond, a, b) for a branch inside the graph (and sg.lt/sg.le/... for "
            "elementwise comparisons of arrays)")

    # -- arithmetic operators (numbers on either side)
    def __add__(self, other):
        return _binary(ADD, self, other)

    def __radd__(self, other):
        return _binary(ADD, other, self)

    def __sub__(self, other):
        return _binary(SUB, self, other)

    def __rsub__(self, other):
        return _binary(SUB, other, self)

    def __mul__(self, other):
        return _binary(MUL, self, other)

    def __rmul__(self, other):
        return _binary(MUL, other, self)

    def __truediv__(self, other):
        return _binary(DIV, self, other)

    def __rtruediv__(self, other):
        return _binary(DIV, other, self)

    def __pow__(self, other):
        return power(self, other) if not isinstance(other, np.ndarray) else NotImplemented

    def __rpow__(self, other):
        return power(other, self) if not isinstance(other, np.ndarray) else NotImplemented

    def __mod__(self, other):  # Python semantics: result has the sign of the divisor
        return NotImplemented if isinstance(other, np.ndarray) else _pymod(self, other)

    def __rmod__(self, other):
        return NotImplemented if isinstance(other, np.ndarray) else _pymod(other, self)

    def __floordiv__(self, other):
        return NotImplemented if isinstance(other, np.ndarray) else apply(OPS["floor"], self / other)

    def __rfloordiv__(self, other):
        return NotImplemented if isinstance(other, np.ndarray) else apply(OPS["floor"], other / self)

    def __neg__(self):
        return _unary(NEG, self)

    def __pos__(self):
        return self

    def __abs__(self):
        return apply(OPS["abs"], self)

    def __floor__(self):  # math.floor, and np.floor on object arrays (numpy calls math.floor)
        return apply(OPS["floor"], self)

    def __ceil__(self):
        return apply(OPS["ceil"], self)

    # -- comparisons build 0/1-valued nodes
    def __lt__(self, other):
        return _binary(OPS["lt"], self, other)

    def __le__(self, other):
        return _binary(OPS["le"], self, other)

    def __gt__(self, other):
        return _binary(OPS["gt"], self, other)

    def __ge__(self, other):
        return _binary(OPS["ge"], self, other)

    def __eq__(self, other):
        return _binary(OPS["eq"], self, other)

    def __ne__(self, other):
        return _binary(OPS["ne"], self, other)

    # -- numpy: ufuncs on Expr scalars and object arrays of Expr
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        from .array import ufunc_builder

        build = ufunc_builder(ufunc) if method == "__call__" and not kwargs else None
        if build is None:
            return NotImplemented
        return build(*inputs)

    # -- printing
    def __str__(self) -> str:
        return to_str(self)

    def __repr__(self) -> str:
        return f"Expr({_short(self, 200)})"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


_set_op, _set_args, _set_data = Expr.op.__set__, Expr.args.__set__, Expr.data.__set__
_object_new = object.__new__


def _make(op: Op, args: tuple, data: Any = None) -> Expr:
    node = _object_new(Expr)
    _set_op(node, op)
    _set_args(node, args)
    _set_data(node, data)
    return node


# numpy calls these by name when a ufunc meets an object array of Expr.
def _method(name):
    op = OPS[name]
    if op.arity == 1:
        def method(self):
            return _unary(op, self)
    else:
        def method(self, *others):
            return apply(op, self, *others)

    method.__name__ = name
    return method


for _numpy_name, _op_name in {
    "sin": "sin", "cos": "cos", "tan": "tan", "arcsin": "asin", "arccos": "acos",
    "arctan": "atan", "arctan2": "atan2", "sinh": "sinh", "cosh": "cosh", "tanh": "tanh",
    "arcsinh": "asinh", "arccosh": "acosh", "arctanh": "atanh", "exp": "exp",
    "expm1": "expm1", "log": "log", "log1p": "log1p", "log2": "log2", "log10": "log10",
    "sqrt": "sqrt", "cbrt": "cbrt", "square": "square", "sign": "sign", "floor": "floor",
    "ceil": "ceil", "hypot": "hypot", "fmod": "fmod", "fabs": "abs", "erf": "erf", "erfc": "erfc",
}.items():
    setattr(Expr, _numpy_name, _method(_op_name))


# ------------------------------------------------------------------ interning
_COMMUTATIVE = frozenset(op for op in OPS.values() if op.has("commutative"))
# The intern table maps an int key to the node.  The key packs the opcode and
# the ids of the operands, (((id(a) << 48) | id(b)) << 7) | opcode: ints never
# call Expr.__eq__ (which builds a symbolic node), are not tracked by the
# garbage collector, and cost less memory than tuples.  An id cannot be
# reused while its node is an operand of an interned node, so keys are exact.
# Call and result nodes have tuple keys (see intern_structural).
_TABLE: dict[Any, Expr] = {}
_TABLE_GET, _TABLE_SETDEFAULT = _TABLE.get, _TABLE.setdefault
_SWEEP_AT = [1 << 16]  # table size that triggers the next sweep of dead nodes
_CONSTS: dict[Any, Expr] = {}


def _const_key(value: float):
    if value == 0.0:
        return (0.0, math.copysign(1.0, value))  # keep -0.0 apart from 0.0
    if value != value:
        return "nan"
    return value


def const(value: Any) -> Expr:
    """The constant node for a real number (interned by value; -0.0 and 0.0 differ).

    >>> const(3) is const(3.0)
    True
    >>> const(-0.0) is const(0.0)
    False
    """
    kind = type(value)
    if (kind is float or kind is int) and value:  # fast path: nonzero Python numbers
        node = _CONSTS.get(value)  # 3 and 3.0 are one key
        if node is not None:
            return node
    elif kind is Expr:
        return value
    value = _as_float(value)
    key = _const_key(value)
    node = _CONSTS.get(key)
    if node is None:
        node = _CONSTS.setdefault(key, _make(CONST, (), value))
    return node


def _as_float(value: Any) -> float:
    """A real number (bool, int, float, numpy real scalar or 0-d array, numbers.Real) as a float."""
    if isinstance(value, (np.datetime64, np.timedelta64)):  # timedelta64 is a numpy integer
        raise NonNumericConstantError(f"cannot use {value!r} in an expression: dates and time spans are not "
                                      "real numbers; convert first, e.g. span / np.timedelta64(1, 's')")
    if isinstance(value, np.ndarray):
        if value.ndim == 0 and value.dtype.kind in "biuf":
            return float(value)
        if value.ndim:
            raise NonNumericConstantError(
                f"cannot use an array of shape {value.shape} as one value in an expression (an element of a "
                "list or array is itself an array: arrays of different lengths in one list?); join arrays "
                "with np.concatenate([a, b]) (or np.stack), or pick one element")
    elif isinstance(value, (numbers.Real, np.bool_)) and not isinstance(value, (str, bytes)):
        try:
            return float(value)
        except OverflowError:
            raise DTypeError(f"cannot use the integer {_int_text(value)} as a constant: it does not fit a "
                             "float64 (largest about 1.8e308); Function arguments refuse it too") from None
    if isinstance(value, (complex, np.complexfloating)):
        raise NonNumericConstantError(f"complex constant {value!r} cannot enter a graph; "
                                      "graphs are real (complex numbers are only for evaluation)")
    raise NonNumericConstantError(f"cannot use {value!r} of type {type(value).__name__} in an "
                                  "expression; expected an Expr or a real number")


def _int_text(value: Any) -> str:
    if isinstance(value, int) and value.bit_length() > 64:
        return f"of {value.bit_length()} bits"
    return repr(value)


def symbol(name: str) -> Expr:
    """A new free variable; each call gives a distinct symbol.

    >>> a, b = symbol("a"), symbol("a")
    >>> a is b
    False
    """
    if not isinstance(name, str) or not name:
        raise NonNumericConstantError(f"a symbol name must be a non-empty str, got {name!r}")
    return _make(SYMBOL, (), name)


def new_symbols(names: list[str]) -> list[Expr]:
    """New distinct symbols, one per name: :func:`symbol` in bulk (the loops run in C).

    The names are taken as given (non-empty str, as :func:`symbol` checks);
    ``sg.symbols`` makes its arrays through here.

    >>> [s.name for s in new_symbols(["a", "b"])]
    ['a', 'b']
    """
    n = len(names)
    nodes = list(map(_object_new, itertools.repeat(Expr, n)))
    _consume(map(_set_op, nodes, itertools.repeat(SYMBOL, n)))
    _consume(map(_set_args, nodes, itertools.repeat((), n)))
    _consume(map(_set_data, nodes, names))
    return nodes


def all_symbols(values: list) -> bool:
    """True if every entry of ``values`` is a symbol node (checked in C, without a Python loop per entry).

    >>> x = symbol("x")
    >>> all_symbols([x, symbol("y")]), all_symbols([x, x + 1]), all_symbols([x, 2.0]), all_symbols([])
    (True, False, False, True)
    """
    if not set(map(type, values)) <= {Expr}:
        return False
    return set(map(_OP_OF, values)) <= {SYMBOL}


_OP_OF = operator.attrgetter("op")
_consume = collections.deque(maxlen=0).extend


def _coerce(x: Any) -> Expr:
    return x if type(x) is Expr else const(x)


def _binary(op: Op, a: Any, b: Any):
    """Operator entry point: the hot path of graph construction."""
    if type(a) is not Expr:
        if isinstance(a, np.ndarray):
            return NotImplemented  # let numpy broadcast elementwise
        a = const(a)
    if type(b) is not Expr:
        if isinstance(b, np.ndarray):
            return NotImplemented
        b = const(b)
    if a.op is CONST or b.op is CONST:  # every binary simplification needs a constant
        simplified = _simplify_binary(op, a, b)
        if simplified is not None:
            return simplified
        if b.op is CONST and op in _COMMUTATIVE:
            a, b = b, a  # constants first in commutative ops: 2*x, never x*2
    key = ((id(a) << 48 | id(b)) << 7) | op.code
    node = _TABLE_GET(key)  # _intern, inlined: a hit allocates nothing
    return node if node is not None else _insert(op, (a, b), key)


def _unary(op: Op, a: Any) -> Expr:
    """Unary entry point (methods called by numpy ufuncs, sg builders)."""
    if type(a) is not Expr:
        a = const(a)
    if a.op is CONST:
        return _fold(op, (a,))
    if op is NEG and a.op is NEG:
        return a.args[0]
    return _intern(op, (a,), id(a) << 7 | op.code)


def _intern(op: Op, args: tuple, key: int) -> Expr:
    node = _TABLE_GET(key)
    return node if node is not None else _insert(op, args, key)


def _insert(op: Op, args: tuple, key: int) -> Expr:
    node = _object_new(Expr)  # _make, inlined on the hot path
    _set_op(node, op)
    _set_args(node, args)
    _set_data(node, None)
    node = _TABLE_SETDEFAULT(key, node)  # another thread may have won the race
    if len(_TABLE) >= _SWEEP_AT[0]:
        collect()
    return node


def _key(op: Op, args: tuple) -> int:
    key = 0
    for a in args:
        key = key << 48 | id(a)
    return key << 7 | op.code


def intern_structural(op: Op, args: tuple, data: Any) -> Expr:
    """The interned call or result node (symgraph/call.py makes them; nothing here simplifies them).

    A call's key is the tuple of the ids of its callee (``data``, kept alive
    by the node) and its operands (a map's call may have millions); a result's is the pair of its call's id
    and its index.  Only these two ops go through here, so their keys never meet another op's (ints), and
    never each other's: a call's first id is a Function's, a result's an Expr's, both alive.  A pair
    hashes well where an int key packing ``j`` above the opcode bits would not: the results of one call
    would share their low bits, so a million of them would crowd a few hundred slots of the table.
    """
    if op is CALL:  # a tuple: packing thousands of operand ids into one int would be quadratic
        key = (id(data), *map(id, args))
    elif op is RESULT:
        key = (id(args[0]), data)
    else:
        raise InvalidOpError(f"intern_structural makes call and result nodes, not {op.name}")
    node = _TABLE_GET(key)
    if node is None:
        node = _TABLE_SETDEFAULT(key, _make(op, args, data))
        if len(_TABLE) >= _SWEEP_AT[0]:
            collect()
    return node


def intern_results(call: Expr, start: int, count: int) -> list[Expr]:
    """The result nodes ``start .. start+count-1`` of ``call`` (as :func:`intern_structural`, in bulk).

    >>> import symgraph as sg
    >>> from symgraph.expr import intern_results  # the package's module (a doctest runner may load a copy)
    >>> x = sg.symbols("x")
    >>> r = sg.Function("f", [x], [[x, 2 * x]])(x)
    >>> intern_results(r[0].args[0], 0, 2) == list(r)
    True
    """
    args = (call,)
    get, setdefault = _TABLE_GET, _TABLE_SETDEFAULT
    keys = list(zip(itertools.repeat(id(call), count), range(start, start + count)))  # see intern_structural
    found = list(map(get, keys))
    if count and set(map(type, found)) == {type(None)}:  # a new call: all made in bulk, the loops in C
        n = count
        nodes = list(map(_object_new, itertools.repeat(Expr, n)))
        _consume(map(_set_op, nodes, itertools.repeat(RESULT, n)))
        _consume(map(_set_args, nodes, itertools.repeat(args, n)))
        _consume(map(_set_data, nodes, range(start, start + count)))
        out = list(map(setdefault, keys, nodes))
        if len(_TABLE) >= _SWEEP_AT[0]:
            collect()
        return out
    out = []
    append = out.append
    for key, node in zip(keys, found):
        j = key[1]
        if node is None:
            node = _object_new(Expr)
            _set_op(node, RESULT)
            _set_args(node, args)
            _set_data(node, j)
            node = setdefault(key, node)
        append(node)
    if len(_TABLE) >= _SWEEP_AT[0]:
        collect()
    return out


def apply(op: Op, *operands: Any) -> Expr:
    """The node ``op(*operands)``, simplified locally and interned.

    >>> from symgraph.ops import OPS
    >>> x = symbol("x")
    >>> apply(OPS["mul"], x, 1) is x
    True
    >>> apply(OPS["add"], 2, 3).value
    5.0
    """
    if id(op) not in _TABLE_OP_IDS:
        _refuse_op(op)
    n = len(operands)
    if n != op.arity:
        raise ArityError(f"{op.name} takes {op.arity} operand(s), got {n}")
    if n == 1:
        a = operands[0]
        if type(a) is Expr and a.op is not CONST and (op is not NEG or a.op is not NEG):
            key = id(a) << 7 | op.code  # _unary's lookup, inline (derivative rules build through here)
            node = _TABLE_GET(key)
            return node if node is not None else _insert(op, (a,), key)
        return _unary(op, a)
    if n == 2:
        return _binary(op, *operands)
    args = tuple([x if type(x) is Expr else const(x) for x in operands])
    simplified = _simplify(op, args)
    if simplified is not None:
        return simplified
    return _intern(op, args, _key(op, args))


ops._APPLY = apply
_TABLE_OP_IDS = frozenset(id(op) for op in OPS.values() if not op.has("structural"))


def _refuse_op(op: Any):
    if op is CALL or op is RESULT:
        raise InvalidOpError(f"apply does not build {op.name} nodes: call a Function on symbolic arguments, "
                             "F(x, u), to get its outputs as a call node; symgraph.call.rebuild(node, operands) "
                             "rebuilds a call or result node on new operands")
    if isinstance(op, str):
        how = f"sg.apply(sg.OPS[{op!r}], ...) or sg.{op}(...)" if op in OPS else "an op of sg.OPS"
        raise InvalidOpError(f"apply takes an Op record of the op table, not the name {op!r}; use {how}")
    if isinstance(op, Op):
        raise InvalidOpError(f"apply got {op!r}, which is not the op table's own record (sg.OPS[name]): "
                             "user-defined ops are not supported yet (they need a numpy, C, derivative and "
                             "SymPy rule in the table); build the expression from existing ops instead")
    raise InvalidOpError(f"apply takes an Op of sg.OPS (e.g. sg.OPS['sin']), got {type(op).__name__} {op!r}")


def collect() -> int:
    """Forget interned nodes nobody references any more; returns how many.

    The intern table holds strong references, so it is swept whenever it has
    grown fourfold since the last sweep.  A pass in reverse creation order
    frees whole dead subgraphs: a node is always created after its operands,
    so dropping a parent releases its operands before they are visited.  A
    dead call node is the exception: it releases its callee Function, which
    may hold nodes newer than the call (its cached derivative Functions), so
    the sweep runs again while a pass dropped a call.

    >>> isinstance(collect(), int)
    True
    """
    dropped = 0
    getrefcount = sys.getrefcount
    again = True
    while again:
        again = False
        for key in reversed(list(_TABLE)):
            node = _TABLE[key]
            # references: the table, `node`, getrefcount's argument
            if getrefcount(node) <= 3:
                again = again or node.op is CALL
                del _TABLE[key]
                dropped += 1
            del node
    _SWEEP_AT[0] = max(1 << 16, 4 * len(_TABLE))
    return dropped


def _is(x: Expr, value: float) -> bool:
    return x.op is CONST and x.data == value


def _signbit(value: float) -> bool:
    return math.copysign(1.0, value) < 0.0


# Ops whose result is never -0.0 (nor -0.0 turned up by rounding), whatever the operands:
# square(-0) = abs(-0) = +0, exp/cosh/erfc/hypot/acos/acosh are >= +0, log(x) is zero only at
# x = 1 (+0), sign(-0) is +0 (see ops), comparisons and logic are 0.0 or 1.0.
_NEVER_NEGATIVE_ZERO = frozenset(op for op in OPS.values() if op.has("boolean") or op.name in (
    "square", "abs", "exp", "cosh", "erfc", "hypot", "acos", "acosh", "log", "log2", "log10", "sign"))


def never_negative_zero(x: Expr) -> bool:
    """True if ``x`` can never evaluate to ``-0.0`` (decided from its op and its operands' ops; False: not known).

    ``0.0 + x`` is ``x`` exactly when this holds, so construction drops the
    addition only then.

    >>> x = symbol("x")
    >>> never_negative_zero(x * x), never_negative_zero(x), never_negative_zero(const(-0.0))
    (False, False, False)
    >>> never_negative_zero(apply(OPS["square"], x)), never_negative_zero(0.0 + x)
    (True, True)
    """
    op = x.op
    if op is ADD:  # a + b is -0.0 only if both are (round to nearest)
        return _no_negative_zero(x.args[0]) or _no_negative_zero(x.args[1])
    if op is SUB:  # a - b is -0.0 only if a is -0.0 and b is +0.0
        return _no_negative_zero(x.args[0]) or _no_positive_zero(x.args[1])
    if op is NEG:
        return _no_positive_zero(x.args[0])
    return _no_negative_zero(x)


def _no_negative_zero(x: Expr) -> bool:
    op = x.op
    if op is CONST:
        return not (x.data == 0.0 and _signbit(x.data))
    if op is POWI:  # an even power is >= +0
        return x.args[1].data % 2.0 == 0.0
    return op in _NEVER_NEGATIVE_ZERO


def _no_positive_zero(x: Expr) -> bool:
    if x.op is CONST:
        return not (x.data == 0.0 and not _signbit(x.data))
    return x.op is NEG and _no_negative_zero(x.args[0])


def never_positive_zero(x: Expr) -> bool:
    """True if ``x`` can never evaluate to ``+0.0`` (``-abs(y)``, ``-square(y)``, nonzero constants).

    ``0.0 - x`` is ``-x`` exactly when this holds.

    >>> x = symbol("x")
    >>> never_positive_zero(-apply(OPS["abs"], x)), never_positive_zero(-x)
    (True, False)
    """
    if x.op is NEG:
        arg = x.args[0]
        return arg.op is not NEG and never_negative_zero(arg)  # -(-y) is folded away: depth 2 at most
    return _no_positive_zero(x)


# What x * 0 and 0 / x fold to.  IEEE gives NaN for inf * 0, nan * 0, 0 / 0 and 0 / nan, and a
# zero with the sign of x otherwise; the fold keeps neither, because derivative sparsity relies on
# it (a structurally zero partial removes its term).  It is -0.0, the zero that vanishes exactly
# from a sum (s + -0.0 is s for every s, -0.0 + 0.0 being +0.0), so zero terms drop out of matrix
# products, np.sum and derivative accumulation without leaving a 0 + s node.
_STRUCTURAL_ZERO = const(-0.0)


def _simplify_binary(op: Op, a: Expr, b: Expr) -> Expr | None:
    """Local simplifications of ``op(a, b)`` when an operand is constant.

    Exact in IEEE arithmetic (signed zeros, inf and NaN kept) except
    ``x * 0`` and ``0 / x``, which fold to -0.0.  A zero operand of ``+`` and ``-``
    is dropped only where that is exact: ``x + (-0.0)`` and ``x - 0.0`` are
    ``x``, but ``x + 0.0`` turns ``x = -0.0`` into ``+0.0``, so it is ``x``
    only if ``x`` can never be ``-0.0``; ``0.0 - x`` is not ``-x`` (at
    ``x = +0.0``), ``-0.0 - x`` is.
    """
    a_const, b_const = a.op is CONST, b.op is CONST
    if a_const and b_const:
        return _fold(op, (a, b))
    # exactly one operand is constant from here on
    if op is MUL:  # the most frequent: c * x
        c = a.data if a_const else b.data
        if c == 0.0:
            return _STRUCTURAL_ZERO  # not IEEE (see _STRUCTURAL_ZERO)
        if c == 1.0:
            return b if a_const else a  # 1 * x, x * 1
        if c == -1.0:
            return apply(NEG, b if a_const else a)
        return None
    if op is ADD:
        if b_const:
            a, b = b, a
        if a.data == 0.0 and (_signbit(a.data) or never_negative_zero(b)):
            return b  # -0.0 + x is x; +0.0 + x is x unless x is -0.0
        return None
    if op is SUB:
        if b_const and b.data == 0.0:
            if not _signbit(b.data) or never_negative_zero(a):
                return a  # x - 0.0 is x
            return _binary(ADD, const(0.0), a)  # x - (-0.0) is 0.0 + x
        if a_const and a.data == 0.0 and (_signbit(a.data) or never_positive_zero(b)):
            return apply(NEG, b)  # -0.0 - x is -x; +0.0 - x is -x unless x is +0.0
        return None
    if b_const and b.data == op.identity:
        return a  # x / 1
    if op is DIV:
        if a_const and a.data == 0.0:
            return _STRUCTURAL_ZERO  # not IEEE (see _STRUCTURAL_ZERO)
        return apply(NEG, a) if b_const and b.data == -1.0 else None
    if (op is POW or op is POWI) and b_const and b.data == 0.0:
        return const(1.0)
    return None


def _simplify(op: Op, args: tuple) -> Expr | None:
    """Local simplifications of unary and ternary ops; None if none applies."""
    if all(a.op is CONST for a in args):
        return _fold(op, args)
    if op is NEG:
        return args[0].args[0] if args[0].op is NEG else None
    if op is IF_ELSE:
        c, a, b = args
        if c.op is CONST:
            return a if c.data != 0.0 else b  # nan counts as true
        if a is b:
            return a
        if c.op.has("boolean") and a.op is CONST and b.op is CONST:  # c is 0.0 or 1.0 (never -0.0)
            if a.data == 1.0 and b.data == 0.0 and not _signbit(b.data):
                return c
            if a.data == 0.0 and not _signbit(a.data) and b.data == 1.0:
                return apply(OPS["not"], c)
    return None


def _fold(op: Op, args: tuple) -> Expr:
    """The constant ``op(*args)``: Python float arithmetic where it is IEEE
    double arithmetic already (add, sub, mul, neg, div by nonzero), else the
    op's numpy implementation, so folding always agrees with the VM."""
    fast = _FAST_FOLD.get(op.name)
    if fast is not None and not (op is DIV and args[1].data == 0.0):
        return const(fast(*[a.data for a in args]))
    values = [np.float64(a.data) for a in args]
    with np.errstate(all="ignore"):
        return const(float(op.np(*values)))


_FAST_FOLD = {"add": float.__add__, "sub": float.__sub__, "mul": float.__mul__,
              "div": float.__truediv__, "neg": float.__neg__}


def power(base: Any, exponent: Any) -> Expr:
    """``base ** exponent``: square for 2, powi for other integer constants, else pow.

    >>> x = symbol("x")
    >>> (x ** 2).op.name, (x ** 3).op.name, (x ** 0.5).op.name
    ('square', 'powi', 'pow')
    """
    base, exponent = _coerce(base), _coerce(exponent)
    if exponent.op is CONST and base.op is not CONST:
        n = exponent.data
        if n == 1.0:
            return base
        if n == 2.0:
            return _unary(SQUARE, base)
        if n.is_integer() and abs(n) <= 1 << 30:
            return _binary(POWI, base, exponent)
    return _binary(POW, base, exponent)


def _pymod(a: Any, b: Any) -> Expr:
    a, b = _coerce(a), _coerce(b)
    return a - apply(OPS["floor"], a / b) * b


_PAUSE = {"depth": 0, "was_enabled": False}
_PAUSE_LOCK = threading.Lock()


@contextlib.contextmanager
def building():
    """Pause Python's cyclic garbage collector while a large graph is built.

    Graph nodes never form reference cycles, yet every node is tracked by the
    cyclic collector, whose repeated passes over millions of live nodes cost
    two to three times the construction itself.  Inside this block the
    collector is paused (reference counting still frees everything); it is
    restored on exit.  Reentrant; symgraph's own bulk builders use it.

    On exit the objects made inside join the collector's oldest generation
    (``gc.freeze()`` then ``gc.unfreeze()``, two list splices) instead of
    all being traversed by the first young collection after the block: a
    graph built in bulk is long-lived, and that one pass costs about a fifth
    of the time of a large symbolic Hessian.  Skipped where the program has
    frozen objects of its own (``gc.get_freeze_count()``), which unfreezing
    would release.

    >>> import symgraph as sg
    >>> with sg.building():
    ...     x = sg.symbols("x", 1000)
    ...     f = (x * x).sum()
    >>> sg.count_ops([f])
    1999
    """
    with _PAUSE_LOCK:
        if _PAUSE["depth"] == 0:
            _PAUSE["was_enabled"] = gc.isenabled()
            gc.disable()
        _PAUSE["depth"] += 1
    try:
        yield
    finally:
        with _PAUSE_LOCK:
            _PAUSE["depth"] -= 1
            if _PAUSE["depth"] == 0 and _PAUSE["was_enabled"]:
                if gc.get_freeze_count() == 0:
                    gc.freeze()  # everything tracked moves to the permanent generation ...
                    gc.unfreeze()  # ... and from there into the oldest one, with no traversal
                gc.enable()


# ------------------------------------------------------------------ traversal
_EMIT = object()  # stack marker: the entry below it is complete


def topological(roots, leaves: set | frozenset | None = None) -> list[Expr]:
    """Every node reachable from ``roots`` once, operands before users.

    Iterative depth-first post-order (operands left to right), deterministic
    for a given graph.  A node is expanded once; an entry found on the stack
    after its expansion is skipped, so a DAG is never walked twice.  Nodes in
    ``leaves`` are emitted without visiting their operands.

    >>> x = symbol("x")
    >>> [str(n) for n in topological([x * 2 + x])]
    ['2', 'x', '2 * x', '2 * x + x']
    """
    order: list[Expr] = []
    emit = order.append
    expanded: set[Expr] = set()  # Expr hashes by identity, so sets are exact
    expand = expanded.add
    for root in roots:
        if root in expanded:
            continue
        stack = [root]
        push, pop = stack.append, stack.pop
        while stack:
            node = pop()
            if node is _EMIT:
                emit(pop())
                continue
            # Expand node, then its first operand, and so on: what pushing the operands (last
            # first) and popping the first one again would do, without that push and pop.
            while node not in expanded:
                expand(node)
                args = node.args
                if not args or (leaves is not None and node in leaves):
                    emit(node)
                    break
                push(node)
                push(_EMIT)
                if len(args) == 2:
                    if args[1] not in expanded:
                        push(args[1])
                else:
                    for a in args[:0:-1]:
                        if a not in expanded:
                            push(a)
                node = args[0]
    return order


def walk(roots) -> Iterator[Expr]:
    """Iterate :func:`topological` order: every node once, operands first.

    >>> x = symbol("x")
    >>> [str(n) for n in walk([x * 2 + x])]
    ['2', 'x', '2 * x', '2 * x + x']
    """
    return iter(topological(_roots(roots, "walk")))


def free_symbols(roots) -> list[Expr]:
    """Symbols reachable from ``roots``, in first-visit order.

    ``roots``: an Expr, or a list, tuple or array of Exprs (or numbers).

    >>> x, y = symbol("x"), symbol("y")
    >>> [s.name for s in free_symbols([x * y + 1])]
    ['x', 'y']
    """
    # The leaves of :func:`topological`'s walk in the order it emits them: the same depth-first
    # walk without the post-order bookkeeping (a leaf is emitted when first popped).
    seen: set[Expr] = set()
    mark = seen.add
    out: list[Expr] = []
    for root in _roots(roots, "free_symbols"):
        if root in seen:
            continue
        stack = [root]
        push, pop = stack.append, stack.pop
        while stack:
            node = pop()
            if node in seen:
                continue
            mark(node)
            args = node.args
            if args:
                for a in reversed(args):
                    if a not in seen:
                        push(a)
            elif node.op is SYMBOL:
                out.append(node)
    return out


def count_ops(roots) -> int:
    """Number of operation nodes (not symbols or constants) reachable from roots.

    ``roots``: an Expr, or a list, tuple or array of Exprs (or numbers).

    >>> x = symbol("x")
    >>> count_ops([x * x + x * x])
    2
    >>> count_ops(x * x)
    1
    """
    return sum(1 for n in topological(_roots(roots, "count_ops")) if n.args)


def _roots(roots: Any, what: str) -> list[Expr]:
    """``roots`` as a flat list of Expr: one Expr, a SparseExpr, or an iterable of Exprs,
    numbers and arrays of them; anything else is a NonNumericConstantError naming it."""
    if type(roots) is Expr:
        return [roots]
    values = getattr(roots, "values", None)
    if isinstance(values, np.ndarray) and hasattr(roots, "rows"):  # a SparseExpr
        roots = values
    if isinstance(roots, (str, bytes, dict)) or not hasattr(roots, "__iter__"):
        raise NonNumericConstantError(f"{what} takes an Expr or a list/array of Exprs, got "
                                      f"{type(roots).__name__} {roots!r}")
    out: list[Expr] = []
    for item in roots:
        if type(item) is Expr:
            out.append(item)
            continue
        flat = (np.asarray(item, dtype=object).reshape(-1) if isinstance(item, (np.ndarray, list, tuple))
                else (item,))
        for v in flat:
            if type(v) is not Expr:
                try:
                    v = const(v)
                except NonNumericConstantError:
                    raise NonNumericConstantError(f"{what}: {type(v).__name__} {v!r} among the roots is not "
                                                  "an Expr or a real number") from None
            out.append(v)
    return out


# ------------------------------------------------------------------- printing
# The printer is symgraph/printing.py (it reads this module's names, hence the
# import at the end): inline text, or shared subexpressions named once.
from .printing import short as _short, to_str  # noqa: E402
