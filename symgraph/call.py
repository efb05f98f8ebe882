"""Call nodes: a Function called on symbolic arguments is one node with several outputs.

``F(x_sym, u_sym)`` (or :func:`call_function`) does not copy ``F``'s graph
into the caller's.  It builds one ``call`` node and one ``result`` node per
scalar of ``F``'s outputs:

* ``call.args`` are the operand scalars: ``F``'s inputs flattened in order
  (C order within an input), numbers turned into constants;
  ``call.data`` is the callee, the frozen Function ``F`` itself (a strong
  reference; the callee is identified by object identity).
* ``result.args == (call,)`` and ``result.data == j``, the flat index over
  ``F``'s output scalars, output after output (C order within a dense
  output, the nonzeros in pattern order for a sparse one).

A call node is not a value: it is only ever the operand of its results.
Both are hash-consed like every node: the same callee on the same operands
is the same call, and its j-th result the same result node.  Construction
never folds or looks through them (a call on constants stays a call), and
the optimizer treats them as opaque.  :func:`symgraph.inline` expands calls
where the graph of the callee is wanted.

>>> import numpy as np, symgraph as sg
>>> x = sg.symbols("x", 2)
>>> F = sg.Function("f", [x], [x * 2, x.sum()])
>>> y = sg.symbols("y")
>>> twice, total = F([y, 1.0])
>>> print(total)
f(y, 1)[2]
>>> is_result(total), result_index(total), callee(total) is F
(True, 2, True)
>>> F([y, 1.0])[1] is total                   # hash-consed: the same call, the same result
True
>>> G = sg.Function("g", [y], [twice[0] * total])
>>> print(G.listing())
@0 = input 0 [] (y)
@1 = 1
@2 = call f(@0, @1)
@3 = result 0 of @2
@4 = result 2 of @2
@5 = mul(@3, @4)
output 0 [] = @5
>>> float(G(3.0)), float(G.inline()(3.0))
(24.0, 24.0)
"""

from __future__ import annotations

import weakref
from typing import Any, Sequence

import numpy as np

from .errors import ArgumentCountError, ArityError, InvalidInputError, NonNumericConstantError, ShapeError
from .expr import CALL, RESULT, Expr, apply, const, intern_results, intern_structural

__all__ = ["call_function", "is_call", "is_result", "callee", "result_index", "rebuild_call", "rebuild",
           "result_node", "n_results", "output_sizes", "split_operands", "output_position", "inline",
           "inline_roots", "CALL", "RESULT"]


def call_function(F: Any, args: Sequence[Any]) -> Any:
    """``F``'s outputs on symbolic ``args``, as results of one call node (what ``F(*args)`` returns on Exprs).

    Args:
        F: a :class:`~symgraph.Function`.
        args: one value per input of ``F``, shaped like it: Exprs, numbers
            (they become constants), or arrays and nested lists of them.

    Returns:
        Shaped like ``F``'s outputs: an Expr for a scalar output, an object
        array for an array output, a :class:`~symgraph.SparseExpr` (same
        pattern) for a sparse output; a tuple when ``F`` has several outputs.
        A Function with no input scalars is constant: its own output graphs
        are returned (there is nothing to call it on).

    Raises:
        ArgumentCountError: not one argument per input.
        ShapeError: an argument's shape is not its input's (naming it).
        NonNumericConstantError: an element is neither an Expr nor a real number.

    >>> import symgraph as sg
    >>> x, y = sg.symbols("x", 3), sg.symbols("y", 3)
    >>> F = sg.Function("norm2", [x], [x @ x])
    >>> print(call_function(F, [y]))
    norm2(y[0], y[1], y[2])[0]
    >>> call_function(F, [y[:2]])
    Traceback (most recent call last):
      ...
    symgraph.errors.ShapeError: norm2: argument 0 ('x'): expected shape (3,), got (2,)
    """
    operands = _operands(F, args)
    if not operands:
        outputs = [arr if sp is None else _sparse(sp, arr) for arr, sp in zip(F.outputs, F.output_sparsity)]
    else:
        node = intern_structural(CALL, operands, F)
        outputs, j = [], 0
        for shape, sp, size in zip(F.output_shapes, F.output_sparsity, output_sizes(F)):
            values = np.empty(size, dtype=object)
            values[:] = intern_results(node, j, size)
            j += size
            outputs.append(values.reshape(shape) if sp is None else _sparse(sp, values))
    outputs = [o[()] if isinstance(o, np.ndarray) and o.ndim == 0 else o for o in outputs]
    return outputs[0] if len(outputs) == 1 else tuple(outputs)


def _sparse(sparsity: tuple, values: np.ndarray):
    from .sparse import SparseExpr

    rows, cols, shape = sparsity
    return SparseExpr(rows, cols, values, shape)


def _operands(F: Any, args: Sequence[Any]) -> tuple[Expr, ...]:
    """The operand scalars of a call of ``F`` on ``args``, checked against ``F``'s inputs."""
    from .sparse import SparseExpr

    args = list(args)
    if len(args) != F.n_in:
        raise ArgumentCountError(f"{F.name} takes {F.n_in} argument(s) ({', '.join(F.input_names)}), "
                                 f"got {len(args)}")
    operands: list[Expr] = []
    for k, (value, shape) in enumerate(zip(args, F.input_shapes)):
        label = f"{F.name}: argument {k} ({F.input_names[k]!r})"
        if isinstance(value, SparseExpr):
            raise ShapeError(f"{label}: expected a dense array of shape {shape}, got a SparseExpr of shape "
                             f"{value.shape}; pass value.to_dense()")
        if type(value) is Expr:
            arr = np.empty((), dtype=object)
            arr[()] = value
        else:
            try:
                arr = np.array(value, dtype=object)  # a copy: the caller's array is never written
            except ValueError as exc:  # ragged nesting
                raise ShapeError(f"{label}: expected shape {shape}, got a ragged sequence ({exc})") from None
        if arr.shape != shape:
            raise ShapeError(f"{label}: expected shape {shape}, got {arr.shape}")
        flat = arr.reshape(-1).tolist()
        if set(map(type, flat)) <= {Expr}:  # the common case, checked in C
            operands.extend(flat)
            continue
        for index, v in enumerate(flat):
            if type(v) is not Expr:
                try:
                    v = const(v)
                except NonNumericConstantError as exc:
                    where = f" at flat index {index}" if arr.ndim else ""
                    raise NonNumericConstantError(f"{label}{where}: {exc}") from None
            operands.append(v)
    return tuple(operands)


def is_call(e: Any) -> bool:
    """True for a call node.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> r = sg.Function("f", [x], [x + 1])(x)
    >>> is_call(r), is_call(r.args[0])
    (False, True)
    """
    return type(e) is Expr and e.op is CALL


def is_result(e: Any) -> bool:
    """True for a result node (an output scalar of a call).

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> is_result(sg.Function("f", [x], [x + 1])(x)), is_result(x + 1)
    (True, False)
    """
    return type(e) is Expr and e.op is RESULT


def callee(e: Expr) -> Any:
    """The Function a call node calls (for a result node: its call's callee).

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> F = sg.Function("f", [x], [x + 1])
    >>> callee(F(x)) is F
    True
    """
    if is_result(e):
        e = e.args[0]
    if not is_call(e):
        raise InvalidInputError(f"callee takes a call or result node, got {_shown(e)}")
    return e.data


def result_index(e: Expr) -> int:
    """The flat index ``j`` over the callee's output scalars that result node ``e`` reads.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> a, b = sg.Function("f", [x], [x + 1, [x, 2 * x]])(x)
    >>> result_index(a), [result_index(e) for e in b]
    (0, [1, 2])
    """
    if not is_result(e):
        raise InvalidInputError(f"result_index takes a result node, got {_shown(e)}")
    return e.data


def n_results(F: Any) -> int:
    """Number of output scalars of Function ``F`` (a sparse output counts its nonzeros): a call's results.

    >>> import symgraph as sg
    >>> x = sg.symbols("x", 2)
    >>> n_results(sg.Function("f", [x], [x, x.sum()]))
    3
    """
    try:
        return _N_RESULTS[F]
    except (KeyError, TypeError):  # TypeError: an object that takes no weak reference (not cached)
        pass
    n = sum(output_sizes(F))
    try:
        _N_RESULTS[F] = n  # a Function's outputs are frozen: counted once
    except TypeError:
        pass
    return n


_N_RESULTS: "weakref.WeakKeyDictionary[Any, int]" = weakref.WeakKeyDictionary()


def output_sizes(F: Any) -> list[int]:
    """The number of result scalars of each output of ``F``, from its shapes and patterns (no output Expr made).

    >>> import symgraph as sg
    >>> x = sg.symbols("x", 2)
    >>> output_sizes(sg.Function("f", [x], [x, x.sum()]))
    [2, 1]
    """
    return [int(np.prod(shape, dtype=np.int64)) if sp is None else len(sp[0])
            for shape, sp in zip(F.output_shapes, F.output_sparsity)]


def split_operands(flat: Sequence[Any], shapes: Sequence[tuple]) -> list[np.ndarray]:
    """Flat operands as one object array per input shape, in order (what a call of a Function takes).

    >>> [a.shape for a in split_operands(list(range(7)), [(2, 3), ()])]
    [(2, 3), ()]
    """
    out, start = [], 0
    for shape in shapes:
        size = int(np.prod(shape, dtype=np.int64))
        values = np.empty(size, dtype=object)
        values[:] = list(flat[start:start + size])
        out.append(values.reshape(shape))
        start += size
    return out


def output_position(F: Any, j: int) -> tuple[int, int]:
    """``(k, i)``: result ``j`` of a call of ``F`` is flat element ``i`` of output ``k``
    (the ``i``-th nonzero of a sparse output).

    >>> import symgraph as sg
    >>> x = sg.symbols("x", 2)
    >>> output_position(sg.Function("f", [x], [x, x.sum()]), 2)
    (1, 0)
    """
    start = 0
    for k, size in enumerate(output_sizes(F)):
        if start <= j < start + size:
            return k, j - start
        start += size
    raise InvalidInputError(f"{F.name} has {start} output scalar(s); result index {j!r} is out of range")


def result_node(call: Expr, j: int) -> Expr:
    """Result ``j`` of call node ``call`` (interned; ``j`` checked against the callee's outputs).

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> a, b = sg.Function("f", [x], [x + 1, x - 1])(x)
    >>> result_node(a.args[0], 1) is b
    True
    """
    if not is_call(call):
        raise InvalidInputError(f"result_node takes a call node, got {_shown(call)}")
    if isinstance(j, bool) or not isinstance(j, (int, np.integer)) or not 0 <= j < n_results(call.data):
        raise InvalidInputError(f"{call.data.name} has {n_results(call.data)} output scalar(s); "
                                f"result index {j!r} is out of range")
    return intern_structural(RESULT, (call,), int(j))


def rebuild_call(node: Expr, new_args: Sequence[Any]) -> Expr:
    """The call of ``node``'s callee on ``new_args`` (same count; numbers become constants).

    ``node`` itself when nothing changed.  Passes that rebuild graphs
    (optimizer, substitution, AD) call this, or :func:`rebuild`, for call nodes.

    >>> import symgraph as sg
    >>> x, y = sg.symbols("x"), sg.symbols("y")
    >>> F = sg.Function("f", [x], [sg.sin(x)])
    >>> rebuild_call(F(x).args[0], [y]) is F(y).args[0]
    True
    """
    if not is_call(node):
        raise InvalidInputError(f"rebuild_call takes a call node, got {_shown(node)}")
    if len(new_args) != len(node.args):
        raise ArityError(f"this call of {node.data.name} has {len(node.args)} operand(s), got {len(new_args)}")
    args = tuple([a if type(a) is Expr else const(a) for a in new_args])
    if all(a is b for a, b in zip(args, node.args)):
        return node
    return intern_structural(CALL, args, node.data)


def rebuild(node: Expr, new_args: Sequence[Any]) -> Expr:
    """``node``'s operation on ``new_args``: :func:`~symgraph.apply` for a scalar op, a call of the
    same callee for a call, the same output of the new call for a result.

    >>> import symgraph as sg
    >>> x, y = sg.symbols("x"), sg.symbols("y")
    >>> F = sg.Function("f", [x], [sg.sin(x), sg.cos(x)])
    >>> c = F(x)[1]
    >>> rebuild(c, [rebuild(c.args[0], [y])]) is F(y)[1], str(rebuild(x + 1, [y, 2]))
    (True, '2 + y')
    """
    op = node.op
    if op is CALL:
        return rebuild_call(node, new_args)
    if op is RESULT:
        if len(new_args) != 1:
            raise ArityError(f"a result node has one operand (its call), got {len(new_args)}")
        new_call = new_args[0]
        if type(new_call) is Expr and new_call.op is CALL and new_call.data is node.args[0].data:
            return intern_structural(RESULT, (new_call,), node.data)  # same callee: the index is valid
        return result_node(new_call, node.data)
    return apply(op, *new_args)


def _shown(e: Any) -> str:
    if type(e) is Expr:
        return f"a {e.op.name} node"
    return f"{type(e).__name__} {e!r}"[:80]


# ------------------------------------------------------------------- inlining
def inline(exprs: Any):
    """``exprs`` with every call expanded into its callee's graph (nested calls too).

    Accepts what :func:`~symgraph.substitute` accepts (an Expr or number, an
    array, a :class:`~symgraph.SparseExpr`, nested lists/tuples of them) and
    returns the same structure.  The result of a call becomes the callee's
    output graph with its input symbols replaced by the call's operands,
    built through the ordinary construction path (:func:`~symgraph.substitute`),
    so it is the very node that building the model inline would give.  Each
    callee is expanded once (callees before callers) and each call once; no
    recursion, at any nesting depth.

    >>> import symgraph as sg
    >>> x, y = sg.symbols("x"), sg.symbols("y")
    >>> F = sg.Function("f", [x], [sg.sin(x) * x])
    >>> G = sg.Function("g", [x], [F(x + 1) * 2])
    >>> e = G(y)
    >>> print(e)
    g(y)[0]
    >>> print(inline(e))
    2 * (sin(1 + y) * (1 + y))
    >>> inline(e) is 2 * (sg.sin(y + 1) * (y + 1))
    True
    """
    from .substitution import _collect, _rebuild_structure

    roots: list[Expr] = []
    _collect(exprs, roots)
    return _rebuild_structure(exprs, inline_roots(roots))


def inline_roots(roots: Sequence[Expr]) -> list[Expr]:
    """:func:`inline` of a flat list of Exprs."""
    from .expr import building, topological

    roots = list(roots)
    with building():
        order = topological(roots)
        if not any(n.op is CALL for n in order):
            return roots
        expanded: dict[Any, list[Expr]] = {}  # callee Function -> its outputs, inlined, over its own inputs
        for G in callees_bottom_up([n.data for n in order if n.op is CALL]):
            flat = G.expansion()  # a native Function's is a call of itself: kept, only its operands change
            native = getattr(G, "structure", None) is not None and G.structure.kind == "native"
            expanded[G] = flat if native else _expand(flat, topological(flat), expanded)
        return _expand(roots, order, expanded)


def callees_bottom_up(direct: list, dependencies: Any = None) -> list:
    """The given callees and everything they call, once each, callees before callers (iterative).

    ``dependencies(F)`` gives what ``F`` needs first (default: the Functions
    it calls, :func:`children`).

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> inner = sg.Function("inner", [x], [x * x])
    >>> outer = sg.Function("outer", [x], [inner(x) + 1])
    >>> [F.name for F in callees_bottom_up([outer])]
    ['inner', 'outer']
    """
    deps = children if dependencies is None else dependencies
    table: list = []
    seen: set = set()
    for F in direct:
        if F in seen:
            continue
        seen.add(F)
        stack = [(F, iter(deps(F)))]
        while stack:
            G, pending = stack[-1]
            for C in pending:
                if C not in seen:
                    seen.add(C)
                    stack.append((C, iter(deps(C))))
                    break
            else:
                stack.pop()
                table.append(G)
    return table


def children(F: Any) -> tuple:
    """The Functions ``F`` calls (see :func:`symgraph.structured.children`)."""
    from .structured import children as of

    return of(F)


def _expand(roots: list[Expr], order: list[Expr], expanded: dict) -> list[Expr]:
    """``roots`` (walked in ``order``) with each call replaced by its callee's ``expanded`` outputs."""
    from .substitution import _rebuild

    done: dict[Expr, Any] = {}  # node -> its inlined node (a call: the list of its inlined outputs)
    get = done.get
    for node in order:
        args = node.args
        if not args:
            continue
        op = node.op
        if op is CALL:
            F = node.data
            inputs = [s for arr in F.inputs for s in arr.reshape(-1).tolist()]
            done[node] = _rebuild(expanded[F], dict(zip(inputs, [get(a, a) for a in args])))
        elif op is RESULT:
            done[node] = done[args[0]][node.data]
        else:
            new_args = [get(a, a) for a in args]
            if any(a is not b for a, b in zip(args, new_args)):
                done[node] = apply(op, *new_args)
    return [get(r, r) for r in roots]
