"""``F.map(n)``: a Function that runs ``F`` on ``n`` instances (first version, built on calls).

``map_function(F, n, shared, reduce)`` returns an ordinary
:class:`~symgraph.Function` named ``<F.name>_map<n>``.  Its inputs are
fresh symbol arrays with the names of ``F``'s inputs: a mapped input gains a
leading axis of length ``n``, a shared input (by index or name) keeps its
shape and every instance sees it whole.  Instance ``i`` is one call of ``F``
on row ``i`` of each mapped input and on the shared inputs; an output is the
stack of the instances' outputs (leading axis ``n``), or with
``reduce="sum"`` their sum (a pairwise tree, depth ``log2 n``).

Because the body is made of calls, calling the map on symbolic arrays gives
one call node (of the map), its derivatives are calls of the map's
derivative Functions whose bodies call ``F``'s, and the C backend emits
``F`` once and the map's body with ``n`` call sites.  The VM runs ``n``
calls, not one vectorized pass: a later map node (index tables, a loop)
replaces the body without changing this API.

>>> import numpy as np, symgraph as sg
>>> x, p = sg.symbols("x", 2), sg.symbols("p")
>>> F = sg.Function("f", [x, p], [p * x[0] * x[1]])
>>> M = F.map(3, shared=["p"])
>>> M.name, M.input_shapes, M.output_shapes
('f_map3', ((3, 2), ()), ((3,),))
>>> M(np.arange(6.0).reshape(3, 2), 2.0)
array([ 0., 12., 40.])
>>> float(F.map(3, shared=[1], reduce="sum")(np.arange(6.0).reshape(3, 2), 2.0))
52.0
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .errors import InvalidInputError

__all__ = ["map_function"]

REDUCTIONS = (None, "sum")


def map_function(F: Any, n: int, shared: Sequence[int | str] | int | str = (), reduce: Any = None):
    """The Function running ``F`` on ``n`` instances (see the module docstring and ``Function.map``).

    Raises:
        InvalidInputError: ``n`` not a positive int (bool refused); ``shared``
            naming a missing input or naming one twice; ``reduce`` not None,
            ``"sum"`` or a sequence of those (one per output); ``F`` has a
            sparse output (not mapped in this version: pass it dense).

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> F = sg.Function("f", [x], [x * x])
    >>> F.map(0)
    Traceback (most recent call last):
      ...
    symgraph.errors.InvalidInputError: f.map: n must be a positive int, got 0
    >>> F.map(2, shared=["y"])
    Traceback (most recent call last):
      ...
    symgraph.errors.InvalidInputError: f.map: shared names no input 'y' (inputs: 'x')
    """
    from .array import symbols
    from .call import call_function
    from .function import Function

    label = f"{F.name}.map"
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise InvalidInputError(f"{label}: n must be a positive int, got {n!r}")
    n = int(n)
    is_shared = _shared_flags(F, shared, label)
    reductions = _reductions(F, reduce, label)
    for k, sp in enumerate(F.output_sparsity):
        if sp is not None:
            raise InvalidInputError(f"{label}: output {k} ({F.output_names[k]!r}) is sparse; map takes dense "
                                    f"outputs in this version (build F with that output .to_dense())")
    inputs = [symbols(name, shape if flag else (n,) + shape)
              for name, shape, flag in zip(F.input_names, F.input_shapes, is_shared)]
    instances = []  # instances[i][k]: output k of instance i, an object array of F's output shape
    for i in range(n):
        args = [arr if flag else arr[i] for arr, flag in zip(inputs, is_shared)]
        outs = call_function(F, args)
        outs = list(outs) if F.n_out != 1 else [outs]
        instances.append([_object_array(o) for o in outs])
    outputs = []
    for k, (shape, how) in enumerate(zip(F.output_shapes, reductions)):
        column = [inst[k] for inst in instances]
        if how == "sum":
            outputs.append(_tree_sum(column))
        else:
            stacked = np.empty((n,) + shape, dtype=object)
            for i, value in enumerate(column):
                stacked[i, ...] = value
            outputs.append(stacked)
    return Function(f"{F.name}_map{n}", inputs, outputs, input_names=F.input_names, output_names=F.output_names)


def _shared_flags(F: Any, shared: Any, label: str) -> list[bool]:
    """One flag per input of ``F``: True for an input named (by index or name) in ``shared``."""
    if isinstance(shared, (str, int, np.integer)):
        shared = [shared]
    try:
        entries = list(shared)
    except TypeError:
        raise InvalidInputError(f"{label}: shared must be input indices or names, got {shared!r}") from None
    flags = [False] * F.n_in
    for entry in entries:
        if isinstance(entry, str):
            if entry not in F.input_names:
                known = ", ".join(repr(s) for s in F.input_names)
                raise InvalidInputError(f"{label}: shared names no input {entry!r} (inputs: {known})")
            k = F.input_names.index(entry)
        elif isinstance(entry, (int, np.integer)) and not isinstance(entry, bool):
            if not 0 <= entry < F.n_in:
                raise InvalidInputError(f"{label}: shared index {entry} is out of range; "
                                        f"{F.name} has {F.n_in} input(s)")
            k = int(entry)
        else:
            raise InvalidInputError(f"{label}: shared entries are input indices or names, got {entry!r}")
        if flags[k]:
            raise InvalidInputError(f"{label}: input {k} ({F.input_names[k]!r}) is named twice in shared")
        flags[k] = True
    return flags


def _reductions(F: Any, reduce: Any, label: str) -> list[Any]:
    """One reduction (None or "sum") per output of ``F``."""
    if reduce is None or isinstance(reduce, str):
        reduce = [reduce] * F.n_out
    else:
        try:
            reduce = list(reduce)
        except TypeError:
            raise InvalidInputError(f"{label}: reduce must be None, 'sum' or one of those per output, "
                                    f"got {reduce!r}") from None
        if len(reduce) != F.n_out:
            raise InvalidInputError(f"{label}: reduce has {len(reduce)} entries; expected one per output "
                                    f"({F.n_out})")
    for k, how in enumerate(reduce):
        if how not in REDUCTIONS or (how is not None and not isinstance(how, str)):
            raise InvalidInputError(f"{label}: reduce for output {k} ({F.output_names[k]!r}) must be None or "
                                    f"'sum', got {how!r}")
    return reduce


def _object_array(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    arr = np.empty((), dtype=object)
    arr[()] = value
    return arr


def _tree_sum(terms: list[np.ndarray]) -> np.ndarray:
    """Pairwise sum of ``terms`` (equal shapes), depth ceil(log2 len)."""
    while len(terms) > 1:
        paired = [terms[j] + terms[j + 1] for j in range(0, len(terms) - 1, 2)]
        if len(terms) % 2:
            paired.append(terms[-1])
        terms = paired
    return terms[0]
