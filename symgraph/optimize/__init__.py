"""Graph optimizer: rewrite engine, rule sets, CSE, DCE (issue 5).

``F.optimize(level)`` (and ``F.compile(optimize=level)``) returns an
equivalent Function whose graph went through the rule sets ``stabilize``,
``fold``, ``canonicalize`` and ``specialize`` (:mod:`.rules`; every rule is
listed in docs/rules.md) to a fixed point.  Level 0 returns ``F``; level 1
runs the default rules (IEEE-safe); level 2 every rule, including identities
of real arithmetic such as reassociation and ``x - x -> 0``.  CSE: hash-consing
plus canonical operand order; DCE: the new Tape holds only what outputs reach.

>>> import symgraph as sg
>>> x = sg.symbols("x")
>>> F = sg.Function("f", [x], [x * 2])
>>> optimize_function(F, 0) is F
True
>>> G = sg.Function("g", [x], [sg.log(1 + x * x) * (x + x)]).optimize()
>>> G.n_ops, str(G.outputs[0][()])
(4, 'log1p(x**2) * (2 * x)')
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..errors import OptimizerOptionError
from ..expr import Expr, count_ops
from .engine import rewrite
from .report import OptimizeReport
from .rules import SET_NAMES, Rule, all_rules, rules_for_level, select

LEVEL2_PASSES = 12

__all__ = ["optimize_function", "simplify", "OptimizeReport", "Rule", "all_rules", "select", "SET_NAMES"]


def optimize_function(F, level: int = 1, rules: Any = None):
    """A new Function equivalent to ``F`` with an optimized graph; ``F`` itself at level 0.

    Same name, inputs, input/output names, shapes and sparsity.  The result
    carries ``.optimize_report`` (an :class:`OptimizeReport`, printable).
    ``rules`` (names as in :func:`select`) overrides the level's rules.

    >>> import symgraph as sg
    >>> x = sg.symbols("x", 2)
    >>> G = optimize_function(sg.Function("f", [x], [x[0] * x[1] + x[1] * x[0]]), 1)
    >>> G.n_ops, G.optimize_report.n_ops_before
    (2, 3)
    """
    from ..function import Function
    from ..sparse import SparseExpr

    if rules is None:
        if isinstance(level, bool) or not isinstance(level, int) or level not in (0, 1, 2):
            raise OptimizerOptionError(f"optimization level must be 0, 1 or 2, got {level!r}")
        if level == 0:
            return F
        chosen = rules_for_level(1)
    else:
        chosen = select(rules)
    if rules is None and _calls_only(F):
        return F  # nothing for a rule to match; callees are optimized where they are emitted (codegen)
    start = time.perf_counter()
    roots = [e for arr in F.outputs for e in arr.reshape(-1)]
    symbol_order = [s for arr in F.inputs for s in arr.reshape(-1)]
    new_roots, counts, passes = rewrite(roots, chosen, symbol_order, closed=True)  # a Function's inputs: all
    if rules is None and level == 2:
        # Level 2 (reassociation) starts from the level-1 fixed point and is bounded in passes; a
        # result that did not reach its fixed point is kept only if it has fewer operations.
        counts1 = counts
        new_roots2, counts2, passes2 = rewrite(new_roots, all_rules(), symbol_order, max_passes=LEVEL2_PASSES,
                                               closed=True)
        if passes2 < LEVEL2_PASSES or count_ops(new_roots2) < count_ops(new_roots):
            new_roots, passes = new_roots2, passes + passes2
            counts = counts1 + counts2
    rewrite_seconds = time.perf_counter() - start
    outputs, k = [], 0
    for arr, sparsity in zip(F.outputs, F.output_sparsity):
        size = arr.size
        values = np.empty(size, dtype=object)
        values[:] = new_roots[k:k + size]
        k += size
        if sparsity is None:
            outputs.append(values.reshape(arr.shape))
        else:
            rows, cols, shape = sparsity
            outputs.append(SparseExpr(rows, cols, values, shape))
    G = Function(F.name, list(F.inputs), outputs, input_names=F.input_names, output_names=F.output_names)
    G.optimize_report = OptimizeReport(F.name, level if rules is None else None, F.n_ops, G.n_ops,
                                       dict(counts), passes, time.perf_counter() - start, rewrite_seconds)
    return G


def _calls_only(F: Any) -> bool:
    """True when ``F``'s Tape holds only calls and their results (maps and their derivatives, glue)."""
    from ..expr import CALL, RESULT

    opcodes = F.tape.opcodes
    return bool(len(opcodes)) and bool(np.all((opcodes == CALL.code) | (opcodes == RESULT.code)))


def simplify(exprs: Any, rules: Any = None):
    """``exprs`` (an Expr, number, array or list of them, or a SparseExpr) rewritten with ``rules``.

    ``rules``: None (the default rules), ``"all"``, set names, rule names or
    :class:`Rule` objects (see :func:`select`).  Returns the same kind of
    object: an Expr for an Expr, a SparseExpr for a SparseExpr, else an
    object array of the input's shape.

    >>> import symgraph as sg
    >>> x, y = sg.symbols("x"), sg.symbols("y")
    >>> str(sg.simplify(-x * -y + sg.sqrt(sg.square(x))))
    'abs(x) + x * y'
    >>> sg.simplify([x - x, x / x], rules="all").tolist()
    [Expr(0), Expr(1)]
    """
    from ..array import as_expr_array
    from ..sparse import SparseExpr

    chosen = select(rules)
    if isinstance(exprs, Expr):
        (out,), _, _ = rewrite([exprs], chosen)
        return out
    if isinstance(exprs, SparseExpr):
        new, _, _ = rewrite(list(exprs.values), chosen)
        return SparseExpr(exprs.rows, exprs.cols, new, exprs.shape)
    arr = as_expr_array(exprs)
    new, _, _ = rewrite(list(arr.reshape(-1)), chosen)
    out = np.empty(arr.size, dtype=object)
    out[:] = new
    return out.reshape(arr.shape)


def n_ops(exprs: Any) -> int:
    """Operation nodes reachable from ``exprs`` (an Expr or an array of them).

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> n_ops([x + 1, (x + 1) * 2])
    2
    """
    from ..array import as_expr_array

    roots = [exprs] if isinstance(exprs, Expr) else list(as_expr_array(exprs).reshape(-1))
    return count_ops(roots)
