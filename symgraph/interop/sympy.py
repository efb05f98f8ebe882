"""SymPy bridge: :func:`to_sympy` and :func:`from_sympy`.

Every op with a SymPy counterpart maps through the op table's ``sympy``
entry; C-only functions (``expm1``, ``log1p``, ``log2``, ``log10``,
``hypot``, ``cbrt``) use :mod:`sympy.codegen.cfunctions`.  Comparisons and
logic, which are 0/1 numbers here, become ``Piecewise((1, cond), (0, True))``.
``fmod`` has no SymPy function and becomes ``a - b*sign(a/b)*floor(|a/b|)``.
SymPy's ``x**(1/3)`` is read as the *real* cube root ``cbrt``.

Both directions are iterative (no recursion over the expression).  SymPy's
own evaluation is recursive (``is_number``, assumptions), so a graph deeper
than :data:`EVALUATE_DEPTH` levels is built with ``evaluate=False``: the
result is structurally the graph itself, with every node's hash computed
bottom-up, and converts back with :func:`from_sympy` exactly.

:func:`from_sympy` takes SymPy objects and numbers only.  Strings are
refused: ``sympy.sympify`` parses them with Python's ``eval``, so text from
a file or a user would run arbitrary code.

>>> import symgraph as sg
>>> x = sg.symbols("x")
>>> s = sg.to_sympy(sg.sin(x) ** 2 + 1)
>>> s
sin(x)**2 + 1
>>> sg.from_sympy(s, {"x": x}) is sg.sin(x) ** 2 + 1
True
"""

from __future__ import annotations

import numbers
from typing import Any, Callable, Mapping

import numpy as np

from ..errors import SymgraphError, SympyConversionError
from ..expr import CALL, CONST, SYMBOL, Expr, apply, const, power, topological, _pymod
from ..ops import OPS

# Graphs deeper than this (longest operand chain) become unevaluated SymPy
# trees: SymPy's evaluation recurses about twice per level and would hit
# Python's recursion limit near 400 levels.
EVALUATE_DEPTH = 100


def to_sympy(expr: Any, symbol_map: dict | None = None):
    """A SymPy expression (or array of them) equal to ``expr``.

    Symbols become real ``sympy.Symbol`` objects named after the symbol; two
    distinct symbols with one name get suffixes ``_1``, ``_2``...  Pass a dict
    as ``symbol_map`` to receive the Expr -> sympy.Symbol mapping used (entries
    already in it are reused).  Graphs deeper than :data:`EVALUATE_DEPTH`
    levels come back unevaluated (``evaluate=False``), so any depth converts.
    Calls of Functions are inlined first (:func:`symgraph.inline`); the value
    is kept, but user derivative rules (``sg.custom_jvp``, ``custom_vjp``,
    ``stop_gradient``) do not survive: SymPy differentiates the expression
    as written.

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
    symbol_map = _check_symbol_map(sp, symbol_map)
    order = topological(roots)
    if any(n.op is CALL for n in order):  # SymPy has no calls: expand them (sg.inline)
        from ..call import inline_roots

        roots = inline_roots(roots)
        order = topological(roots)
        kept = next((n for n in order if n.op is CALL), None)  # a native call (a solve...) has no formula
        if kept is not None:
            from ..errors import SympyConversionError

            raise SympyConversionError(f"to_sympy: {kept.data.name} ({kept.data.structure.describe()}) is a native "
                                       f"call with no closed form in SymPy")
    converted = None
    if _depth(order) <= EVALUATE_DEPTH:
        try:
            with sp.evaluate(True):
                converted = _build_sympy(sp, order, roots, symbol_map)
        except RecursionError:  # the caller's own stack was already deep
            converted = None
    if converted is None:
        converted = _build_sympy(sp, order, roots, symbol_map, raw=True)
    if arr is None:
        return converted[0]
    result = np.empty(len(converted), dtype=object)
    result[:] = converted
    return result.reshape(arr.shape)


def _check_symbol_map(sp, symbol_map: Any) -> dict:
    if symbol_map is None:
        return {}
    if not isinstance(symbol_map, dict):
        raise SympyConversionError(f"to_sympy: symbol_map must be a dict (filled with Expr symbol -> "
                                   f"sympy.Symbol) or None, got {type(symbol_map).__name__} {symbol_map!r}")
    for key, value in symbol_map.items():
        if type(key) is not Expr or key.op is not SYMBOL or not isinstance(value, sp.Symbol):
            raise SympyConversionError(f"to_sympy: symbol_map entries must map a symgraph symbol to a "
                                       f"sympy.Symbol, got {key!r}: {value!r}")
    return symbol_map


def _depth(order: list) -> int:
    """Longest operand chain of a topologically ordered node list."""
    depth: dict[int, int] = {}
    deepest = 0
    for node in order:
        d = 1 + max([depth[id(a)] for a in node.args], default=-1)
        depth[id(node)] = d
        deepest = d if d > deepest else deepest
    return deepest


def _build_sympy(sp, order: list, roots: list, symbol_map: dict, raw: bool = False) -> list:
    """SymPy counterparts of ``roots``; ``raw`` builds each node without any SymPy evaluation."""
    names = {s.name for s in symbol_map.values()}
    out: dict[int, Any] = {}
    for node in order:
        if node.op is SYMBOL:
            if node not in symbol_map:
                symbol_map[node] = sp.Symbol(_fresh(node.data, names), real=True)
            out[id(node)] = symbol_map[node]
        elif node.op is CONST:
            out[id(node)] = _sympy_number(sp, node.data)
        else:
            args = [out[id(a)] for a in node.args]
            if raw:
                built = _raw_apply(sp, node.op, args)
                hash(built)  # cached on the node: hashing the result later never recurses
            else:
                built = node.op.sympy(sp, *args)
            out[id(node)] = built
    return [out[id(r)] for r in roots]


_TEMPLATES: dict[str, Any] = {}


def _raw_apply(sp, op, args: list):
    """``op``'s SymPy form over ``args`` with no evaluation at all.

    The op table's SymPy form is built once on dummy symbols (the template)
    and instantiated structurally: each template node is re-created from its
    class and new arguments without running SymPy's constructors, whose
    checks (``is_number``, assumptions, ``has``, sorting) recurse over the
    whole operand tree.  An op whose form needs its operands' values
    (``powi``'s integer exponent) is built with ``evaluate=False``.
    """
    if op.name not in _TEMPLATES:
        dummies = [sp.Dummy(f"a{k}", real=True) for k in range(op.arity)]
        try:
            with sp.evaluate(True):
                _TEMPLATES[op.name] = (dummies, op.sympy(sp, *dummies))
        except (TypeError, ValueError):
            _TEMPLATES[op.name] = None
    template = _TEMPLATES[op.name]
    if template is None:
        with sp.evaluate(False):
            return op.sympy(sp, *args)
    dummies, body = template
    return _instantiate(sp, body, dict(zip(dummies, args)))


def _instantiate(sp, body, values: dict):
    # Recursion over a template (a few nodes), never over the graph.
    if body in values:
        return values[body]
    if not body.args or isinstance(body, sp.Atom) or not body.has(*values):
        return body
    from sympy.core.basic import Basic
    from sympy.core.operations import AssocOp, LatticeOp

    args = tuple(_instantiate(sp, a, values) for a in body.args)
    cls = type(body)
    if issubclass(cls, AssocOp) and not issubclass(cls, LatticeOp):  # Add, Mul
        return cls._from_args(args, body.is_commutative)
    node = Basic.__new__(cls, *args)
    if issubclass(cls, LatticeOp):  # And, Or, Min, Max keep their operand set
        node._argset = frozenset(args)
    try:  # a fact SymPy asks of every operand; computed here, one level deep
        node.is_commutative
    except AttributeError:  # a slot the class's constructor fills (Pow)
        node.is_commutative = body.is_commutative
    return node


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
        return sp.S.Infinity if value > 0 else sp.S.NegativeInfinity
    return sp.Integer(int(value)) if value.is_integer() and abs(value) < 2**53 else sp.Float(value, 17)


def from_sympy(expr: Any, mapping: Mapping[Any, Any]):
    """A symgraph Expr (or array) equal to the SymPy expression ``expr``.

    ``expr`` is a SymPy object (``sympy.Basic``, a SymPy matrix), a real
    number, or a list/array of them; strings are refused with
    :class:`SympyConversionError` (SymPy would parse them with Python's
    ``eval``).  ``mapping`` sends each SymPy symbol (by object or by name) to
    an Expr or real number.  Unknown symbols or functions raise
    :class:`SympyConversionError` naming them.

    >>> import sympy, symgraph as sg
    >>> t = sg.symbols("t")
    >>> str(sg.from_sympy(sympy.exp(-sympy.Symbol("t")) * 3, {"t": t}))
    '3 * exp(-t)'
    """
    import sympy as sp

    by_name = _check_mapping(sp, mapping)
    if isinstance(expr, sp.MatrixBase) or isinstance(expr, (np.ndarray, list, tuple)):
        arr = np.asarray(expr.tolist() if isinstance(expr, sp.MatrixBase) else expr, dtype=object)
        flat = [_from_sympy_scalar(sp, e, by_name) for e in arr.reshape(-1)]
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        return out.reshape(arr.shape)
    return _from_sympy_scalar(sp, expr, by_name)


def _check_mapping(sp, mapping: Any) -> dict[str, Expr]:
    """``{symbol name: Expr}`` from the user's mapping, or a SympyConversionError."""
    if not isinstance(mapping, Mapping):
        raise SympyConversionError(f"from_sympy: mapping must be a dict from SymPy symbols (or their names) "
                                   f"to Exprs or real numbers, got {type(mapping).__name__}")
    by_name: dict[str, Expr] = {}
    for key, value in mapping.items():
        if isinstance(key, sp.Symbol):
            name = key.name
        elif isinstance(key, str):
            name = key
        else:
            raise SympyConversionError(f"from_sympy: mapping keys must be sympy.Symbol objects or str names, "
                                       f"got {type(key).__name__} {key!r}")
        if type(value) is Expr:
            by_name[name] = value
            continue
        if isinstance(value, (str, bytes, sp.Basic)) and not isinstance(value, sp.Number):
            value_ok = False
        else:
            value_ok = True
            try:
                by_name[name] = const(value)
            except SymgraphError:
                value_ok = False
        if not value_ok:
            raise SympyConversionError(f"from_sympy: mapping[{name!r}] must be an Expr or a real number, "
                                       f"got {type(value).__name__} {value!r}")
    return by_name


def _from_sympy_scalar(sp, expr: Any, by_name: dict[str, Expr]) -> Expr:
    if not isinstance(expr, sp.Basic):
        if isinstance(expr, (numbers.Real, np.number, np.bool_)) and not isinstance(expr, (str, bytes)):
            try:
                return const(expr)
            except SymgraphError as exc:
                raise SympyConversionError(f"from_sympy: {exc}") from None
        shown = repr(expr) if len(repr(expr)) <= 80 else repr(expr)[:77] + "..."
        raise SympyConversionError(f"from_sympy takes a SymPy expression (sympy.Basic) or a real number, got "
                                   f"{type(expr).__name__} {shown}; strings are not parsed (SymPy's parser "
                                   "runs Python eval on them): build the expression from SymPy objects")
    # Keyed by id: a SymPy node's hash is computed recursively the first time
    # it is asked for, which a deep unevaluated tree cannot afford.
    done: dict[int, Expr] = {}
    stack = [expr]
    while stack:
        node = stack[-1]
        if id(node) in done:
            stack.pop()
            continue
        pending = [a for a in _children(sp, node) if id(a) not in done]
        if pending:
            stack.extend(pending)
            continue
        stack.pop()
        done[id(node)] = _convert(sp, node, [done[id(a)] for a in _children(sp, node)], by_name)
    return done[id(expr)]


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
        return by_name[node.name]
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
        sp.loggamma: "lgamma", sp.erfinv: "erfinv",
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
    if head is sp.polygamma:  # polygamma(0, x) is SymPy's digamma
        return lambda n, x: (apply(OPS["digamma"], x) if n.op is CONST and n.data == 0.0
                             else apply(OPS["polygamma"], n, x))
    if head is sp.re:  # re(loggamma(x)) = log|Gamma(x)|: how to_sympy writes lgamma
        return _real_part
    return None


def _real_part(a: Expr) -> Expr:
    if a.op in (OPS["lgamma"], OPS["digamma"], OPS["polygamma"]):  # real-valued for real x
        return a
    raise SympyConversionError(f"SymPy re() of {a} has no symgraph counterpart (only of loggamma, polygamma)")
