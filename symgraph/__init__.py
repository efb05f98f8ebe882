"""symgraph: symbolic expression graphs, exact derivatives, fast C.

>>> import numpy as np, symgraph as sg
>>> x = sg.symbols("x", 2)
>>> f = sg.Function("f", [x], [sg.sin(x[0]) * x[1]])
>>> round(float(f(np.array([0.5, 2.0]))), 6)
0.958851
"""

from __future__ import annotations

from .errors import (ArgumentCountError, ArityError, CompileError, DifferentiationError, DTypeError,
                     FreeSymbolError, InvalidInputError, NonNumericConstantError, ShapeError,
                     SymbolicBoolError, SymgraphError, SympyConversionError, MissingSolverError,
                     OptimizerOptionError, CompilerNotFoundError, BackendWarning, OptionError,
                     OverwriteError, UnknownOpError, InvalidOpError, SerializationError, NotPicklableError,
                     MissingToolError, ConvergenceError)
from .expr import Expr, apply, building, collect, const, count_ops, free_symbols, symbol, walk
from .array import as_expr_array, builder, symbols
from .function import Function
from . import call  # call nodes: F(x) on symbols (symgraph/call.py)
from .call import inline
from .sparse import SparseExpr
from .interop.sympy import from_sympy, to_sympy
from .ops import OP_LIST, OPS, Op
from . import models
from .optimize import OptimizeReport, simplify
from .nlp import NLP, NLPResult
from .interop.scipy import least_squares
from .ad import grad, hessian, jacobian, jvp, value_and_grad, vjp
from .substitution import substitute
from .sparsity import Sparsity, hessian_sparsity, jacobian_sparsity
from .gather import IndexOutOfRangeError, gather  # sg.gather: numpy take with the index table checked
from .hoist import hoist  # sg.hoist: instance-independent work of map bodies computed once
from .taylor import taylor  # sg.taylor: Taylor-mode coefficients along a direction
from . import linalg  # sg.linalg: solve, inv, det, slogdet, logdet, cholesky on symbolic matrices
from .custom import custom_jvp, custom_rules, custom_vjp, stop_gradient  # user derivative rules
from .interpolant import interpolant  # sg.interpolant: expanded linear (1-D/N-D) and cubic spline interpolants
from .external import external  # sg.external: a user's C function as a call node with user-given derivatives
from .rootfinder import check_status, find_root, rootfinder  # sg.rootfinder: Newton in C, implicit derivatives
from .integrator import integrator  # sg.integrator: RK and collocation on fold, exact sensitivities
from .interop.casadi import from_casadi  # sg.from_casadi: a CasADi SX Function as a symgraph Function
from .pictures import draw, spy, to_dot  # Graphviz pictures of graphs, sparsity plots (symgraph/pictures.py)
from .printing import debugprint  # PyTensor-style text dump of a Function's graph
from .serialize import from_bytes, load, save, to_bytes  # symgraph's file format (symgraph/serialize.py)
from . import dask  # symgraph.dask: C.batch over dask arrays, map_solve on a dask.distributed cluster

# Elementwise builders, one per op of the table (sg.sin, sg.atan2, sg.if_else, ...).
add, sub, mul, div, neg = (builder(n) for n in ("add", "sub", "mul", "div", "neg"))
pow, square, sqrt, cbrt = (builder(n) for n in ("pow", "square", "sqrt", "cbrt"))  # noqa: A001
exp, expm1, log, log1p, log2, log10 = (builder(n) for n in ("exp", "expm1", "log", "log1p", "log2", "log10"))
sin, cos, tan, asin, acos, atan, atan2 = (builder(n) for n in ("sin", "cos", "tan", "asin", "acos", "atan", "atan2"))
sinh, cosh, tanh, asinh, acosh, atanh = (builder(n) for n in ("sinh", "cosh", "tanh", "asinh", "acosh", "atanh"))
erf, erfc, abs, sign, floor, ceil = (builder(n) for n in ("erf", "erfc", "abs", "sign", "floor", "ceil"))  # noqa: A001
fmin, fmax, fmod, hypot, mod = (builder(n) for n in ("fmin", "fmax", "fmod", "hypot", "mod"))
lt, le, gt, ge, eq, ne = (builder(n) for n in ("lt", "le", "gt", "ge", "eq", "ne"))
logical_not, logical_and, logical_or = (builder(n) for n in ("not", "and", "or"))
if_else = builder("if_else")
# numpy spellings
arcsin, arccos, arctan, arctan2 = asin, acos, atan, atan2
arcsinh, arccosh, arctanh = asinh, acosh, atanh
# special functions: ops, plus small graphs over them (symgraph/special.py); scipy spellings
lgamma, digamma, polygamma, erfinv = (builder(n) for n in ("lgamma", "digamma", "polygamma", "erfinv"))
from .special import multigammaln, trigamma  # noqa: E402
gammaln, psi = lgamma, digamma

__all__ = [
    "Expr", "Function", "SparseExpr", "Op", "OPS", "OP_LIST", "symbols", "symbol", "const", "apply", "walk", "building",
    "free_symbols", "count_ops", "collect", "as_expr_array", "to_sympy", "from_sympy",
    "add", "sub", "mul", "div", "neg", "pow", "square", "sqrt", "cbrt", "exp", "expm1", "log",
    "log1p", "log2", "log10", "sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh",
    "tanh", "asinh", "acosh", "atanh", "erf", "erfc", "abs", "sign", "floor", "ceil", "fmin", "fmax",
    "fmod", "hypot", "mod", "lt", "le", "gt", "ge", "eq", "ne", "logical_not", "logical_and",
    "logical_or", "if_else", "arcsin", "arccos", "arctan", "arctan2", "arcsinh", "arccosh", "arctanh",
    "lgamma", "digamma", "polygamma", "erfinv", "trigamma", "multigammaln", "gammaln", "psi",
    "SymgraphError", "ArgumentCountError", "ArityError", "CompileError", "DifferentiationError",
    "DTypeError", "FreeSymbolError", "InvalidInputError", "NonNumericConstantError", "ShapeError",
    "SymbolicBoolError", "SympyConversionError", "NLP", "NLPResult", "least_squares", "MissingSolverError",
    "CompilerNotFoundError", "BackendWarning", "OptionError", "OverwriteError",
    "UnknownOpError", "InvalidOpError", "SerializationError", "NotPicklableError",
    "jvp", "vjp", "grad", "value_and_grad", "jacobian", "hessian", "substitute", "inline", "jacobian_sparsity", "hessian_sparsity", "Sparsity",
    "simplify", "OptimizeReport", "OptimizerOptionError",
    "gather", "IndexOutOfRangeError", "hoist", "taylor", "linalg", "custom_jvp", "custom_vjp", "custom_rules", "stop_gradient", "interpolant",
    "external", "rootfinder", "check_status", "find_root", "ConvergenceError", "integrator", "from_casadi", "to_dot", "draw", "spy", "debugprint", "MissingToolError",
    "save", "load", "to_bytes", "from_bytes", "dask",
]
