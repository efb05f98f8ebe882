"""CasADi bridge: :func:`from_casadi` imports a CasADi SX ``Function``.

The import reads CasADi's public instruction API (``n_instructions``,
``instruction_id``, ``instruction_input``, ``instruction_output``,
``instruction_constant``) in one pass over the instructions, keeping CasADi's
work vector as a Python list of symgraph Exprs, and builds every node with
the scalar paths of symgraph's elementwise builders (``sg.sin``, ``sg.pow``:
``apply(OPS[name], ...)`` and ``power``).  Nothing
recurses, so a Function of millions of instructions imports.

Shapes.  CasADi values are sparse matrices whose nonzeros are stored column
by column.  A *dense* CasADi input or output becomes a symgraph array:
``1x1`` is a scalar ``()``, an ``n x 1`` column is a vector ``(n,)`` and any
other ``n x m`` is a matrix ``(n, m)`` holding the same entries (pass the
same numpy arrays you would pass to CasADi).  A *sparse* input (fewer
nonzeros than entries) becomes a vector of its nonzeros, ``(nnz,)``, in
CasADi's nonzero order (column-major, as ``DM.nonzeros()``); a sparse output
becomes a :class:`~symgraph.SparseExpr` with CasADi's pattern, which
evaluates to a ``scipy.sparse.csc_matrix``, so Jacobian-shaped outputs keep
their sparsity.

Ops.  Every scalar op of CasADi's SX maps to the op symgraph has for it
(``OP_SQ`` is ``square``, ``OP_FABS`` is ``abs``, ``OP_CONSTPOW`` and
``OP_POW`` are ``pow``, ``OP_TWICE`` is ``2*x``, ``OP_INV`` is ``1/x``,
``OP_IF_ELSE_ZERO(c, x)`` is ``if_else(c, x, 0)``; ``OP_ASSIGN``,
``OP_LIFT`` and ``OP_PRINTME`` are their first operand, printing dropped).
``OP_COPYSIGN``, ``OP_REMAINDER`` and calls of non-inlined Functions
(``OP_CALL``) have no symgraph counterpart: importing a Function that uses
them raises :class:`~symgraph.errors.UnknownOpError` naming the op.

>>> import casadi, numpy as np
>>> x = casadi.SX.sym("x", 2)
>>> f = casadi.Function("f", [x], [casadi.sin(x[0]) * x[1], casadi.jacobian(x * x[0], x)], ["x"], ["v", "J"])
>>> F = from_casadi(f)
>>> F
Function(f: (x[2]) -> (v, J[2,2]), 3 ops)
>>> v, J = F(np.array([0.5, 2.0]))
>>> bool(np.isclose(v, float(f(np.array([0.5, 2.0]))[0]))), J.nnz
(True, 3)
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..array import symbols
from ..errors import InvalidInputError, MissingToolError, UnknownOpError
from ..expr import Expr, apply, building, const, power
from ..ops import OPS
from ..sparse import SparseExpr

INSTALL_HINT = "pip install 'symgraph[casadi]' (or pip install casadi)"

def _first(a: Expr, *rest: Expr) -> Expr:
    return a


def _scalar_builder(name: str) -> Callable[..., Expr]:
    """What ``sg.<name>`` does on scalar Exprs (without the builders' array checks)."""
    if name == "pow":
        return power  # square, powi or pow, as ``**`` picks
    op = OPS[name]
    return lambda *operands: apply(op, *operands)


def _twice(a: Expr) -> Expr:
    return apply(OPS["mul"], 2.0, a)


def _inv(a: Expr) -> Expr:
    return apply(OPS["div"], 1.0, a)


def _if_else_zero(c: Expr, a: Expr) -> Expr:
    return apply(OPS["if_else"], c, a, 0.0)


# CasADi op name -> how to build it: (arity, builder).  A builder is the
# name of a symgraph op (built as sg.<name> builds it) or a function of the operands.
OP_MAP: dict[str, tuple[int, str | Callable[..., Expr]]] = {
    "OP_ASSIGN": (1, _first), "OP_LIFT": (2, _first), "OP_PRINTME": (2, _first),
    "OP_ADD": (2, "add"), "OP_SUB": (2, "sub"), "OP_MUL": (2, "mul"), "OP_DIV": (2, "div"),
    "OP_NEG": (1, "neg"), "OP_TWICE": (1, _twice), "OP_INV": (1, _inv),
    "OP_POW": (2, "pow"), "OP_CONSTPOW": (2, "pow"), "OP_SQ": (1, "square"), "OP_SQRT": (1, "sqrt"),
    "OP_EXP": (1, "exp"), "OP_LOG": (1, "log"), "OP_EXPM1": (1, "expm1"), "OP_LOG1P": (1, "log1p"),
    "OP_SIN": (1, "sin"), "OP_COS": (1, "cos"), "OP_TAN": (1, "tan"),
    "OP_ASIN": (1, "asin"), "OP_ACOS": (1, "acos"), "OP_ATAN": (1, "atan"), "OP_ATAN2": (2, "atan2"),
    "OP_SINH": (1, "sinh"), "OP_COSH": (1, "cosh"), "OP_TANH": (1, "tanh"),
    "OP_ASINH": (1, "asinh"), "OP_ACOSH": (1, "acosh"), "OP_ATANH": (1, "atanh"),
    "OP_ERF": (1, "erf"), "OP_ERFINV": (1, "erfinv"),
    "OP_FABS": (1, "abs"), "OP_SIGN": (1, "sign"), "OP_FLOOR": (1, "floor"), "OP_CEIL": (1, "ceil"),
    "OP_FMIN": (2, "fmin"), "OP_FMAX": (2, "fmax"), "OP_FMOD": (2, "fmod"), "OP_HYPOT": (2, "hypot"),
    "OP_LT": (2, "lt"), "OP_LE": (2, "le"), "OP_EQ": (2, "eq"), "OP_NE": (2, "ne"),
    "OP_NOT": (1, "not"), "OP_AND": (2, "and"), "OP_OR": (2, "or"),
    "OP_IF_ELSE_ZERO": (2, _if_else_zero),
}
"""Every CasADi SX op the import maps: its arity and the symgraph builder (name) or function."""

_UNSUPPORTED_HINTS = {
    "OP_COPYSIGN": "symgraph has no copysign",
    "OP_REMAINDER": "symgraph has no IEEE remainder (sg.fmod is C's fmod)",
    "OP_CALL": "a call of a Function kept as a call (never_inline); build the CasADi Function with "
               "the callee inlined",
}


def _casadi():
    try:
        import casadi
    except ImportError:
        raise MissingToolError(f"from_casadi needs CasADi, which is not installed: {INSTALL_HINT}") from None
    return casadi


def _dispatch(casadi) -> tuple[dict[int, str], list]:
    """CasADi opcode -> name, and a table indexed by opcode of (arity, build) or None."""
    names = {getattr(casadi, n): n for n in dir(casadi) if n.startswith("OP_")}
    table: list = [None] * (max(names) + 1)
    for code, cname in names.items():
        entry = OP_MAP.get(cname)
        if entry is not None:
            arity, how = entry
            table[code] = (arity, _scalar_builder(how) if isinstance(how, str) else how)
    return names, table


def _shape(sp) -> tuple[int, ...]:
    """symgraph shape of a CasADi sparsity: () for 1x1, (n,) for a column, (n, m), or (nnz,) if sparse."""
    if not sp.is_dense():
        return (sp.nnz(),)
    n, m = sp.size1(), sp.size2()
    if n == 1 and m == 1:
        return ()
    return (n,) if m == 1 else (n, m)


def _check_function(f: Any, casadi) -> None:
    if not isinstance(f, casadi.Function):
        raise InvalidInputError(f"from_casadi takes a casadi.Function, got {type(f).__module__}."
                                f"{type(f).__qualname__}")
    if not f.is_a("SXFunction"):
        kind = f.class_name()
        raise InvalidInputError(f"from_casadi: {f.name()!r} is a CasADi {kind}, not an SXFunction; only SX "
                                f"Functions can be imported: pass f.expand(), the same Function in SX "
                                f"(for an MX Function built from scalar operations and calls of SX Functions)")
    if f.has_free():
        raise InvalidInputError(f"from_casadi: {f.name()!r} has free variables {f.get_free()}; "
                                "declare them as inputs of the CasADi Function")


def from_casadi(f: Any, *, name: str | None = None):
    """The symgraph :class:`~symgraph.Function` equal to a CasADi SX Function.

    Inputs and outputs keep CasADi's names and order; a dense ``n x 1``
    value has shape ``(n,)``, ``1 x 1`` is a scalar, another dense ``n x m``
    is an ``(n, m)`` matrix, a sparse input is the vector of its nonzeros in
    CasADi's (column-major) order, and a sparse output is a
    :class:`~symgraph.SparseExpr` with CasADi's pattern (a ``csc_matrix``
    when evaluated).

    Args:
        f: a ``casadi.Function`` of class SXFunction (an MX Function: pass
            ``f.expand()``).
        name: the new Function's name (default: CasADi's name).

    Raises:
        MissingToolError: CasADi is not installed.
        InvalidInputError: ``f`` is not a CasADi Function, is not an SX
            Function, or has free variables.
        UnknownOpError: ``f`` uses an op symgraph lacks (named by its
            CasADi name, e.g. ``OP_COPYSIGN``).

    >>> import casadi, numpy as np
    >>> x, p = casadi.SX.sym("x", 2), casadi.SX.sym("p")
    >>> f = casadi.Function("g", [x, p], [casadi.sumsqr(x) * p], ["x", "p"], ["r"])
    >>> F = from_casadi(f)
    >>> F.input_names, F.input_shapes, F.output_shapes
    (('x', 'p'), ((2,), ()), ((),))
    >>> float(F(np.array([1.0, 2.0]), 3.0))
    15.0
    """
    casadi = _casadi()
    _check_function(f, casadi)
    names, table = _dispatch(casadi)
    op_input, op_output, op_const = casadi.OP_INPUT, casadi.OP_OUTPUT, casadi.OP_CONST

    in_names = [f.name_in(i) for i in range(f.n_in())]
    out_names = [f.name_out(i) for i in range(f.n_out())]
    in_sp = [f.sparsity_in(i) for i in range(f.n_in())]
    out_sp = [f.sparsity_out(i) for i in range(f.n_out())]
    with building():
        inputs, in_nz = [], []
        for label, sp in zip(in_names, in_sp):
            shape = _shape(sp)
            arr = symbols(label, shape) if shape else symbols(label)
            inputs.append(arr)
            # CasADi's nonzeros of a dense matrix run down the columns
            in_nz.append([arr] if not shape else arr.ravel(order="F").tolist())
        out_nz = [[None] * sp.nnz() for sp in out_sp]

        work: list = [None] * f.sz_w()
        op_id, op_in, op_out = f.instruction_id, f.instruction_input, f.instruction_output
        for k in range(f.n_instructions()):
            code = op_id(k)
            if code == op_const:
                work[op_out(k)[0]] = const(f.instruction_constant(k))
            elif code == op_input:
                i, nz = op_in(k)
                work[op_out(k)[0]] = in_nz[i][nz]
            elif code == op_output:
                o, nz = op_out(k)
                out_nz[o][nz] = work[op_in(k)[0]]
            else:
                entry = table[code] if 0 <= code < len(table) else None
                if entry is None:
                    _refuse(f, names.get(code, f"opcode {code}"))
                arity, build = entry
                work[op_out(k)[0]] = build(*[work[j] for j in op_in(k)[:arity]])
        outputs = [_output(values, sp) for values, sp in zip(out_nz, out_sp)]
    return _function(name if name is not None else f.name(), inputs, outputs, in_names, out_names)


def _refuse(f: Any, op_name: str) -> None:
    hint = _UNSUPPORTED_HINTS.get(op_name, "symgraph has no such op")
    raise UnknownOpError(f"from_casadi: {f.name()!r} uses CasADi's {op_name}, which symgraph cannot import "
                         f"({hint}); supported: {', '.join(sorted(OP_MAP))}")


def _output(values: list, sp) -> Any:
    """A symgraph output from CasADi's nonzeros (column-major) and sparsity."""
    values = [const(0.0) if v is None else v for v in values]  # CasADi writes every nonzero; be safe
    n, m = sp.size1(), sp.size2()
    if not sp.is_dense():
        rows, cols = sp.get_triplet()
        return SparseExpr(rows, cols, values, (n, m))
    shape = _shape(sp)
    if not shape:
        return values[0]
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr if len(shape) == 1 else arr.reshape((m, n)).T


def _function(name: str, inputs: list, outputs: list, in_names: list, out_names: list):
    from ..function import Function

    return Function(name, inputs, outputs, input_names=in_names, output_names=out_names)
