"""SymPy bridge: :func:`to_sympy` and :func:`from_sympy`.

Every op with a SymPy counterpart maps through the op table's ``sympy``
entry; C-only functions (``expm1``, ``log1p``, ``log2``, ``log10``,
``hypot``, ``cbrt``) use :mod:`sympy.codegen.cfunctions`.  Comparisons and
logic, which are 0/1 numbers here, become ``Piecewise((1, cond), (0, True))``.
``fmod`` has no SymPy function and becomes ``a - b*sign(a/b)*floor(|a/b|)``.
SymPy's ``x**(1/3)`` is read as the *real* cube root ``cbrt``.

Both directions are iterative (no recursion over the expression).

>>> import symgraph as sg
>>> x = sg.symbols("x")
>>> s = sg.to_sympy(sg.sin(x) ** 2 + 1)
>>> s
sin(x)**2 + 1
>>> sg.from_sympy(s, {"x": x}) is sg.sin(x) ** 2 + 1
True
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from ..errors import SympyConversionError
from ..expr import CONST, SYMBOL, Expr, apply, const, power, walk, _pymod
from ..ops import OPS


def to_sympy(expr: Any, symbol_map: dict | None = None):
    """A SymPy expression (or array of them) equal to ``expr``.

    Symbols become real ``sympy.Symbol`` objects named after the symbol; two
    distinct symbols with one name get suffixes ``_1``, ``_2``...  Pass a dict
    as ``symbol_map`` to receive the Expr -> sympy.Symbol mapping used.

    >>> import symgraph as sg
    >>> x, y = sg.symbols("x"), sg.symbols("y")
    >>> sg.to_sympy(sg.atan2(y, x) * sg.log1p(x))
    atan2(y, x)*log1p(x)
    """
    import sympy as sp

    if isinstance(expr, (np.ndarray, list, tuple)):
        arr = np.asarray(expr, dtype=object)
        roots = [e if type(e) is Expr else const(e) for e in arr.reshape(-1)]
    else:
        arr, roots = None, [expr if type(expr) is Expr else const(expr)]
    symbol_map = {} if symbol_map is None else symbol_map
    names = {s.name for s in symbol_map.values()}
    out: dict[int, Any] = {}
    for node in walk(roots):
        if node.op is SYMBOL:
            if node not in symbol_map:
                symbol_map[node] = sp.Symbol(_fresh(node.data, names), real=True)
            out[id(node)] = symbol_map[node]
        elif node.op is CONST:
            out[id(node)] = _sympy_number(sp, node.data)
        else:
            out[id(node)] = node.op.sympy(sp, *[out[id(a)] for a in node.args])
    converted = [out[id(r)] for r in roots]
    if arr is None:
        return converted[0]
    result = np.empty(len(converted), dtype=object)
    result[:] = converted
    return result.reshape(arr.shape)


def _fresh(name: str, taken: set) -> str:
    candidate, k = name, 0
    while candidate in taken:
        k += 1
        candidate = f"{name}_{k}"
    taken.add(candidate)
    return candidate


def _sympy_number(sp, value: float):
    if value != value:
        return sp.nan
    if value in (float("inf"), float("-inf")):
        return sp.oo if value > 0 else -sp.oo
    return sp.Integer(int(value)) if value.is_integer() and abs(value) < 2**53 else sp.Float(value, 17)


def from_sympy(expr: Any, mapping: Mapping[Any, Any]):
    """A symgraph Expr (or array) equal to the SymPy expression ``expr``.

    ``mapping`` sends each SymPy symbol (by object or by name) to an Expr or
    number.  Unknown symbols or functions raise :class:`SympyConversionError`
    naming them.

    >>> import sympy, symgraph as sg
    >>> t = sg.symbols("t")
    >>> str(sg.from_sympy(sympy.exp(-sympy.Symbol("t")) * 3, {"t": t}))
    '3 * exp(-t)'
    """
    import sympy as sp

    if isinstance(expr, (np.ndarray, list, tuple)) or hasattr(expr, "tolist") and not isinstance(expr, sp.Basic):
        arr = np.asarray(expr.tolist() if hasattr(expr, "tolist") else expr, dtype=object)
        flat = [from_sympy(e, mapping) for e in arr.reshape(-1)]
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        return out.reshape(arr.shape)
    expr = sp.sympify(expr)
    by_name = {(k.name if isinstance(k, sp.Symbol) else k): v for k, v in mapping.items()}
    done: dict[Any, Expr] = {}
    stack = [expr]
    while stack:
        node = stack[-1]
        if node in done:
            stack.pop()
            continue
        pending = [a for a in _children(sp, node) if a not in done]
        if pending:
            stack.extend(pending)
            continue
        stack.pop()
        done[node] = _convert(sp, node, [done[a] for a in _children(sp, node)], by_name)
    return done[expr]


def _children(sp, node) -> tuple:
    if isinstance(node, sp.Piecewise):
        return tuple(x for pair in node.args for x in pair)
    if isinstance(node, (sp.Symbol, sp.Number, sp.NumberSymbol)) or node in (sp.true, sp.false):
        return ()
    return node.args


def _convert(sp, node, args: list, by_name: dict) -> Expr:
    if isinstance(node, sp.Symbol):
        if node.name not in by_name:
            raise SympyConversionError(f"SymPy symbol {node.name!r} is not in the mapping "
                                       f"(known: {sorted(map(str, by_name))})")
        return const(by_name[node.name]) if type(by_name[node.name]) is not Expr else by_name[node.name]
    if node is sp.true or node is sp.false:
        return const(1.0 if node is sp.true else 0.0)
    if isinstance(node, (sp.Number, sp.NumberSymbol)) or node in (sp.oo, -sp.oo, sp.nan, sp.zoo):
        if node.is_extended_real is False or node is sp.zoo:  # oo is extended real, not real
            raise SympyConversionError(f"SymPy number {node} is not real")
        return const(float(node))
    if isinstance(node, sp.Add):
        return _fold_left(lambda a, b: a + b, args)
    if isinstance(node, sp.Mul):
        return _mul(sp, node, args)
    if isinstance(node, sp.Pow):
        return _pow(sp, node, args)
    if isinstance(node, sp.Piecewise):
        return _piecewise(args)
    build = _function_builder(sp, node)
    if build is None:
        raise SympyConversionError(f"SymPy function {type(node).__name__!r} has no symgraph counterpart "
                                   f"(in {node})")
    return build(*args)


def _fold_left(fn: Callable, args: list) -> Expr:
    acc = args[0]
    for a in args[1:]:
        acc = fn(acc, a)
    return acc


def _mul(sp, node, args: list) -> Expr:
    # a * b**-1 reads as a / b, as SymPy prints it
    num, den = [], []
    for sym_arg, arg in zip(node.args, args):
        if isinstance(sym_arg, sp.Pow) and sym_arg.exp == -1 and arg.op is OPS["div"] and _is_one(arg.args[0]):
            den.append(arg.args[1])
        else:  # includes a reciprocal already folded to a constant (1/log(2))
            num.append(arg)
    top = _fold_left(lambda a, b: a * b, num) if num else const(1.0)
    return top / _fold_left(lambda a, b: a * b, den) if den else top


def _is_one(e: Expr) -> bool:
    return e.op is CONST and e.data == 1.0


def _pow(sp, node, args: list) -> Expr:
    base, exponent = args
    e = node.exp
    if e == sp.Rational(1, 2):
        return apply(OPS["sqrt"], base)
    if e == sp.Rational(-1, 2):
        return 1.0 / apply(OPS["sqrt"], base)
    if e == sp.Rational(1, 3):
        return apply(OPS["cbrt"], base)
    if e == -1:
        return 1.0 / base
    if node.base is sp.E:
        return apply(OPS["exp"], exponent)
    return power(base, exponent)


def _piecewise(args: list) -> Expr:
    pairs = list(zip(args[0::2], args[1::2]))
    last_value, last_cond = pairs[-1]
    if last_cond.op is CONST and last_cond.data != 0.0:  # (value, True) closes the chain
        result, pairs = last_value, pairs[:-1]
    else:  # SymPy leaves uncovered cases undefined
        result = const(float("nan"))
    for value, cond in reversed(pairs):
        result = apply(OPS["if_else"], cond, value, result)
    return result


def _function_builder(sp, node) -> Callable | None:
    from sympy.codegen import cfunctions as cf

    simple = {
        sp.sin: "sin", sp.cos: "cos", sp.tan: "tan", sp.asin: "asin", sp.acos: "acos",
        sp.atan: "atan", sp.atan2: "atan2", sp.sinh: "sinh", sp.cosh: "cosh", sp.tanh: "tanh",
        sp.asinh: "asinh", sp.acosh: "acosh", sp.atanh: "atanh", sp.erf: "erf", sp.erfc: "erfc",
        sp.exp: "exp", sp.Abs: "abs", sp.sign: "sign", sp.floor: "floor", sp.ceiling: "ceil",
        cf.expm1: "expm1", cf.log1p: "log1p", cf.log2: "log2", cf.log10: "log10", cf.Cbrt: "cbrt",
        cf.hypot: "hypot", sp.StrictLessThan: "lt", sp.LessThan: "le", sp.StrictGreaterThan: "gt",
        sp.GreaterThan: "ge", sp.Equality: "eq", sp.Unequality: "ne", sp.Not: "not",
    }
    head = type(node)
    if head in simple:
        op = OPS[simple[head]]
        return lambda *a: apply(op, *a)
    if head is sp.log:
        return lambda x, b=None: apply(OPS["log"], x) if b is None else apply(OPS["log"], x) / apply(OPS["log"], b)
    if head in (sp.Min, sp.Max):
        op = OPS["fmin" if head is sp.Min else "fmax"]
        return lambda *a: _fold_left(lambda p, q: apply(op, p, q), list(a))
    if head in (sp.And, sp.Or):
        op = OPS["and" if head is sp.And else "or"]
        return lambda *a: _fold_left(lambda p, q: apply(op, p, q), list(a))
    if head is sp.Mod:
        return _pymod
    if head is cf.exp2:
        return lambda x: power(2.0, x)
    if head is sp.ITE:  # SymPy's boolean if-then-else, from simplified Piecewise conditions
        return lambda c, a, b: apply(OPS["if_else"], c, a, b)
    return None
