"""Arrays of expressions: numpy object arrays of :class:`~symgraph.expr.Expr`.

:func:`symbols` makes named symbol arrays; every op of the table has an
elementwise builder here (``sg.sin``, ``sg.atan2``, ``sg.if_else``, ...) that
accepts scalars, Exprs, lists and arrays alike and broadcasts like numpy.
numpy's own ufuncs (``np.sin(x)``, ``np.arctan2``, ``x @ A``, ``x.sum()``)
also work on such arrays, so plain numpy model code can be traced.

>>> import numpy as np, symgraph as sg
>>> x = sg.symbols("x", 3)
>>> str(np.sin(x).sum())
'sin(x[0]) + sin(x[1]) + sin(x[2])'
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .expr import Expr, apply, new_symbols, power, symbol, _pymod, _unary
from .ops import OPS, SCALAR_OPS


def symbols(name: str, shape: int | tuple[int, ...] | None = None):
    """One symbol, or a numpy object array of distinct symbols ``name[i, j]``.

    >>> import symgraph as sg
    >>> sg.symbols("x").name
    'x'
    >>> [s.name for s in sg.symbols("x", (2, 2)).ravel()]
    ['x[0,0]', 'x[0,1]', 'x[1,0]', 'x[1,1]']
    """
    if not isinstance(name, str) or not name:
        from .errors import InvalidInputError

        raise InvalidInputError(f"symbols: name must be a non-empty str, got {type(name).__name__} {name!r}")
    if shape is None:
        return symbol(name)
    given = shape
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape) if hasattr(shape, "__iter__") else None
    if shape is None or any(not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0 for n in shape):
        from .errors import ShapeError

        raise ShapeError(f"symbols({name!r}): shape must be an int or a tuple of non-negative ints, got {given!r}")
    from .tape import element_names

    out = np.empty(int(np.prod(shape, dtype=np.int64)), dtype=object)
    out[:] = new_symbols(element_names(name, shape) if shape else [f"{name}[]"])
    return out.reshape(shape)


def _elementwise(build: Callable[..., Expr], nin: int, name: str, doc: str) -> Callable[..., Any]:
    vectorized = np.frompyfunc(build, nin, 1)

    def builder(*operands):
        if len(operands) != nin:
            from .errors import ArityError

            raise ArityError(f"{name} takes {nin} operand(s), got {len(operands)}")
        if any(isinstance(o, (np.ndarray, list, tuple)) for o in operands):
            # an object array; all-0-d operands give a bare Expr, as numpy ufuncs give scalars
            arrays = [_as_object(o) for o in operands]
            try:
                np.broadcast_shapes(*[a.shape for a in arrays])
            except ValueError:
                from .errors import ShapeError

                raise ShapeError(f"sg.{name}: operand shapes {', '.join(str(a.shape) for a in arrays)} do not "
                                 "broadcast together (numpy rules: trailing axes equal or 1)") from None
            return vectorized(*arrays)
        return build(*operands)

    builder.__name__ = name
    builder.__qualname__ = name
    builder.__doc__ = doc
    return builder


def _as_object(x: Any):
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (list, tuple)):
        return np.asarray(x, dtype=object)
    scalar = np.empty((), dtype=object)  # an Expr must not reach numpy bare, or
    scalar[()] = x                       # numpy would ask its __array_ufunc__
    return scalar


def _op_builder(op_name: str, public: str | None = None) -> Callable[..., Any]:
    op = OPS[op_name]
    public = public or op_name
    doc = (f"Elementwise ``{op.name}`` on Exprs, numbers or arrays (broadcasting).\n\n"
           f"{op.doc or op.name}.\n\n"
           f">>> import symgraph as sg\n"
           f">>> x = sg.symbols('x', 2)\n"
           f">>> sg.{public}({', '.join(['x'] * op.arity)}).shape\n"
           f"(2,)\n")
    build = (lambda a: _unary(op, a)) if op.arity == 1 else (lambda *a: apply(op, *a))
    return _elementwise(build, op.arity, public, doc)


# Elementwise builders for every op of the table (scalar or array operands).
_BUILDERS = {name: _op_builder(name) for name, op in OPS.items() if op in SCALAR_OPS and name != "powi"}
_BUILDERS["pow"] = _elementwise(power, 2, "pow", "Elementwise ``a ** b`` (square/powi/pow chosen as ``**`` does).\n\n"
                                ">>> import symgraph as sg\n>>> str(sg.pow(sg.symbols('x'), 3))\n'x**3'\n")
_BUILDERS["mod"] = _elementwise(_pymod, 2, "mod", "Elementwise Python ``a % b`` (sign of b).\n\n"
                                ">>> import symgraph as sg\n>>> str(sg.mod(sg.symbols('x'), 2))\n'x - floor(x / 2) * 2'\n")


def builder(name: str) -> Callable[..., Any]:
    """The elementwise builder of op ``name`` (``"sin"``, ``"if_else"``, ...).

    >>> str(builder("sin")(symbol("x")))
    'sin(x)'
    """
    found = _BUILDERS.get(name) if isinstance(name, str) else None
    if found is None:
        from .errors import UnknownOpError

        raise UnknownOpError(f"builder: no op named {name!r}; known: {', '.join(sorted(_BUILDERS))}")
    return found


_UFUNCS: dict[Any, str] = {
    np.add: "add", np.subtract: "sub", np.multiply: "mul", np.divide: "div",
    np.negative: "neg", np.power: "pow", np.float_power: "pow", np.square: "square",
    np.sqrt: "sqrt", np.cbrt: "cbrt", np.exp: "exp", np.expm1: "expm1", np.log: "log",
    np.log1p: "log1p", np.log2: "log2", np.log10: "log10", np.sin: "sin", np.cos: "cos",
    np.tan: "tan", np.arcsin: "asin", np.arccos: "acos", np.arctan: "atan",
    np.arctan2: "atan2", np.sinh: "sinh", np.cosh: "cosh", np.tanh: "tanh",
    np.arcsinh: "asinh", np.arccosh: "acosh", np.arctanh: "atanh", np.absolute: "abs",
    np.fabs: "abs", np.sign: "sign", np.floor: "floor", np.ceil: "ceil", np.fmin: "fmin",
    np.fmax: "fmax", np.minimum: "fmin", np.maximum: "fmax", np.fmod: "fmod",
    np.hypot: "hypot", np.less: "lt", np.less_equal: "le", np.greater: "gt",
    np.greater_equal: "ge", np.equal: "eq", np.not_equal: "ne", np.logical_not: "not",
    np.logical_and: "and", np.logical_or: "or", np.remainder: "mod",
}


def ufunc_builder(ufunc: Any) -> Callable[..., Any] | None:
    """The builder numpy's ``ufunc`` maps to on Exprs, or None if unsupported.

    ``np.minimum``/``np.maximum`` map to ``fmin``/``fmax`` (nan operands are
    ignored rather than propagated).

    >>> ufunc_builder(np.arctan2).__name__
    'atan2'
    """
    if ufunc is np.positive:
        return lambda a: a
    name = _UFUNCS.get(ufunc)
    return None if name is None else _BUILDERS[name]


def as_expr_array(value: Any) -> np.ndarray:
    """``value`` (Expr, number, nested list or array) as an object array of Expr.

    >>> as_expr_array([1, symbol("x")]).dtype
    dtype('O')
    """
    from .expr import const

    arr = np.asarray(value, dtype=object) if not isinstance(value, Expr) else np.array(value, dtype=object)
    flat = arr.reshape(-1).tolist()
    if set(map(type, flat)) <= {Expr}:  # the common case, checked in C
        return arr
    others = [i for i, v in enumerate(flat) if type(v) is not Expr]
    arr.flat[others] = [const(flat[i]) for i in others]  # written into arr itself, as before
    return arr
