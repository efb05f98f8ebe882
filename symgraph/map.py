"""``F.map(n)``: one node that runs ``F`` on ``n`` instances.

``map_function(F, n, shared, reduce)`` returns a
:class:`~symgraph.structured.StructuredFunction` named ``<F.name>_map<n>``
with a :class:`MapStructure`.  Its inputs have the names of ``F``'s inputs:
a mapped input gains a leading axis of length ``n``, a shared input (by
index or name) keeps its shape and every instance sees it whole.  Instance
``i`` is ``F`` on row ``i`` of each mapped input and on the shared inputs;
an output is the stack of the instances' outputs (leading axis ``n``), or
with ``reduce="sum"`` their sum.

Nothing is unrolled: calling the map on symbols is one call node whatever
``n``; the VM runs ``F``'s program once over ``n`` times the points (each
mapped operand column is the instances' columns laid end to end, a shared
one is repeated); the C backend emits ``F`` once and the map as a loop over
instances with pointer arithmetic into the argument arrays; derivatives are
maps of ``F``'s derivative Functions (forward: the tangents of shared
inputs are shared; reverse: the cotangents of summed outputs are shared and
those of shared inputs summed over instances), so they stay one node too.
The Jacobian pattern is ``F``'s pattern tiled over the instances.
``sg.inline`` expands a map into ``n`` calls of ``F``.

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

__all__ = ["map_function", "MapStructure", "csc_pattern"]

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
    label = f"{F.name}.map"
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise InvalidInputError(f"{label}: n must be a positive int, got {n!r}")
    is_shared = shared_flags(F, shared, label)
    reductions = _reductions(F, reduce, label)
    for k, sp in enumerate(F.output_sparsity):
        if sp is not None:
            raise InvalidInputError(f"{label}: output {k} ({F.output_names[k]!r}) is sparse; map takes dense "
                                    f"outputs in this version (build F with that output .to_dense())")
    structure = MapStructure(F, int(n), tuple(is_shared), tuple(reductions))
    if not structure.n_operands:  # nothing to call it on: the instances are constants
        return _unrolled_function(structure, f"{F.name}_map{int(n)}")
    return structure.function(f"{F.name}_map{int(n)}")


def shared_flags(F: Any, shared: Any, label: str) -> list[bool]:
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


def sizes(shapes: Sequence[tuple]) -> list[int]:
    """The number of scalars of each shape.

    >>> sizes([(), (2, 3), (0,)])
    [1, 6, 0]
    """
    return [int(np.prod(s, dtype=np.int64)) for s in shapes]


class Layout:
    """Where the scalars of a structured Function's inputs (or outputs) sit, per body input (or output).

    ``sizes[k]``: scalars of body input ``k``; ``per_instance[k]``: whether it
    has one copy per instance (mapped) or one in all (shared / summed);
    ``body_offsets[k]``: its first scalar among the body's flat scalars;
    ``offsets[k]``: its first scalar among the structured Function's.
    """

    def __init__(self, sizes: Sequence[int], per_instance: Sequence[bool], n: int) -> None:
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.per_instance = np.asarray(per_instance, dtype=bool)
        self.n = n
        self.body_offsets = np.concatenate([[0], np.cumsum(self.sizes)])[:-1].astype(np.int64)
        total = np.where(self.per_instance, n * self.sizes, self.sizes)
        self.offsets = np.concatenate([[0], np.cumsum(total)])[:-1].astype(np.int64)
        self.total = int(total.sum())
        self.body_total = int(self.sizes.sum())
        # per body scalar: its group and position in the group
        self.group = np.repeat(np.arange(len(self.sizes)), self.sizes)
        self.within = np.arange(self.body_total, dtype=np.int64) - self.body_offsets[self.group]
        # per body scalar: its flat position in instance 0 and the stride between instances (0 if shared)
        self._base = self.offsets[self.group] + self.within
        self._stride = np.where(self.per_instance[self.group], self.sizes[self.group], 0)

    def decode(self, positions: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(body position, instance)`` of flat positions (instance -1 for a shared scalar)."""
        positions = np.asarray(positions, dtype=np.int64)
        k = np.searchsorted(self.offsets, positions, side="right") - 1
        inside = positions - self.offsets[k]
        size = np.maximum(self.sizes[k], 1)
        mapped = self.per_instance[k]
        instance = np.where(mapped, inside // size, -1)
        body = self.body_offsets[k] + np.where(mapped, inside % size, inside)
        return body, instance

    def encode(self, body: Any, instance: Any) -> np.ndarray:
        """The flat positions of body scalars ``body`` in ``instance`` (ignored for shared ones)."""
        body = np.asarray(body, dtype=np.int64)
        return self._base[body] + np.asarray(instance, dtype=np.int64) * self._stride[body]


class MapStructure:
    """``body`` run on ``n`` instances: what a map's call node computes (see the module docstring).

    ``shared[k]``: body input ``k`` is seen whole by every instance;
    ``reduce[k]``: None (stack output ``k``) or ``"sum"`` (sum it over instances).
    """

    kind = "map"

    def __init__(self, body: Any, n: int, shared: tuple, reduce: tuple) -> None:
        self.body, self.n, self.shared, self.reduce = body, n, tuple(shared), tuple(reduce)
        self.children = (body,)
        self.ins = Layout(sizes(body.input_shapes),
                          [not f for f in self.shared], n)
        self.outs = Layout(sizes(body.output_shapes),
                           [r is None for r in self.reduce], n)
        self.n_operands, self.n_results = self.ins.total, self.outs.total

    # ------------------------------------------------------------ shapes
    def input_shapes(self) -> list[tuple]:
        return [tuple(s) if f else (self.n,) + tuple(s) for s, f in zip(self.body.input_shapes, self.shared)]

    def output_shapes(self) -> list[tuple]:
        return [tuple(s) if r else (self.n,) + tuple(s) for s, r in zip(self.body.output_shapes, self.reduce)]

    def function(self, name: str) -> Any:
        """The StructuredFunction of this structure."""
        from .structured import StructuredFunction

        return StructuredFunction(name, self, self.input_shapes(), self.output_shapes(), self.body.input_names,
                                  self.body.output_names)

    def with_body(self, body: Any) -> "MapStructure":
        return MapStructure(body, self.n, self.shared, self.reduce)

    def to_data(self, index: dict) -> tuple:
        return ("map", index[self.body], self.n, self.shared, self.reduce)

    def describe(self) -> str:
        return f"map of {self.body.name} over {self.n} instances"

    # ------------------------------------------------------------ VM
    def vm_driver(self, columns: list, width: int) -> "MapRun":
        return MapRun(self, columns, width)

    # ------------------------------------------------------------ graph
    def expand(self, inputs: Sequence[np.ndarray]) -> list:
        """The unrolled outputs (flat): ``n`` calls of the body on the rows of ``inputs``."""
        from .call import call_function

        F = self.body
        instances = []
        for i in range(self.n):
            args = [arr if flag else arr[i] for arr, flag in zip(inputs, self.shared)]
            outs = call_function(F, args)
            outs = list(outs) if F.n_out != 1 else [outs]
            instances.append([_object_array(o) for o in outs])
        flat: list = []
        for k, how in enumerate(self.reduce):
            column = [inst[k] for inst in instances]
            if how == "sum":
                flat.extend(_object_array(_tree_sum(column)).reshape(-1).tolist())
            else:
                for value in column:
                    flat.extend(value.reshape(-1).tolist())
        return flat

    def pattern(self) -> Any:
        """The Jacobian pattern (results by operands, flat): the body's pattern tiled over instances.

        A body entry between a stacked result and a mapped operand, a stacked
        result and a shared operand, or a summed result and a mapped operand
        gives one entry per instance; between a summed result and a shared
        operand, one in all.  No two of these coincide, so the positions are
        only put in CSC order (:func:`csc_pattern`), never uniqued.
        """
        from .calldiff import jacobian_pattern

        P = jacobian_pattern(self.body)
        r, c = np.asarray(P.rows, dtype=np.int64), np.asarray(P.cols, dtype=np.int64)
        tiled = self.outs.per_instance[self.outs.group[r]] | self.ins.per_instance[self.ins.group[c]]
        inst = np.arange(self.n, dtype=np.int64)
        rt, ct = r[tiled], c[tiled]
        rows = np.concatenate([self.outs.encode(r[~tiled], 0),
                               self.outs.encode(np.repeat(rt, self.n), np.tile(inst, len(rt)))])
        cols = np.concatenate([self.ins.encode(c[~tiled], 0),
                               self.ins.encode(np.repeat(ct, self.n), np.tile(inst, len(ct)))])
        return csc_pattern(rows, cols, (self.n_results, self.n_operands))

    def derivative(self, F: Any, mode: str, rows: tuple, cols: tuple) -> Any:
        """``F``'s flat derivative Function (``F`` has this structure); see :mod:`symgraph.structdiff`."""
        from .structdiff import map_derivative

        return map_derivative(F, self, mode, rows, cols)


class MapRun:
    """The VM's driver for one map call: the body once over ``n`` times the points."""

    def __init__(self, s: MapStructure, columns: list, width: int) -> None:
        self.s, self.columns, self.width = s, columns, width
        self.body = s.body
        self.body_width = s.n * width

    def start(self) -> list:
        s, n, width = self.s, self.s.n, self.width
        out = []
        for k, shared in enumerate(s.shared):
            off, m = int(s.ins.offsets[k]), int(s.ins.sizes[k])
            if shared:
                out.extend(c if np.ndim(c) == 0 else np.tile(c, n) for c in self.columns[off:off + m])
            elif m:
                block = stacked(self.columns[off:off + n * m], width).reshape(n, m, width)
                out.extend(block[:, j, :].reshape(-1) for j in range(m))
        self.columns = None
        return out

    def resume(self, values: list) -> list | None:
        self.values = values
        return None

    def result(self) -> list:
        s, n, width = self.s, self.s.n, self.width
        values = self.values
        dtype = np.result_type(np.float64, *[getattr(v, "dtype", np.float64) for v in values])
        out: list = []
        for k, how in enumerate(s.reduce):
            off, p = int(s.outs.body_offsets[k]), int(s.outs.sizes[k])
            block = np.empty((n, p, width), dtype=dtype)
            for j in range(p):
                block[:, j, :] = np.broadcast_to(values[off + j], (n * width,)).reshape(n, width)
            if how == "sum":
                out.extend(block.sum(axis=0))
            else:
                out.extend(block.reshape(n * p, width))
        return out


def csc_pattern(rows: Any, cols: Any, shape: tuple[int, int]) -> Any:
    """The :class:`~symgraph.sparsity.Sparsity` of positions ``(rows, cols)`` (repeats merged), in CSC order.

    Sorted by counting through ``scipy.sparse`` (linear in the entries and
    the columns), where ``sparsity.pattern`` sorts keys with ``np.unique``:
    the tiled patterns of maps have millions of entries.

    >>> p = csc_pattern([1, 0, 1, 1], [0, 1, 0, 2], (2, 3))
    >>> p.rows.tolist(), p.cols.tolist()
    ([1, 0, 1], [0, 1, 2])
    """
    import scipy.sparse as sp

    from .sparsity import Sparsity

    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    cols = np.asarray(cols, dtype=np.int64).reshape(-1)
    shape = (int(shape[0]), int(shape[1]))
    m = sp.csc_matrix((np.ones(len(rows), dtype=bool), (rows, cols)), shape=shape)  # repeats merged: True
    return Sparsity(m.indices.astype(np.int64), np.repeat(np.arange(shape[1], dtype=np.int64), np.diff(m.indptr)),
                    shape)


def stacked(columns: Sequence[Any], width: int) -> np.ndarray:
    """``columns`` (arrays of ``width`` values or scalars) as rows of one ``(len, width)`` array."""
    dtype = np.result_type(np.float64, *{getattr(c, "dtype", np.dtype(np.float64)) for c in columns})
    out = np.empty((len(columns), width), dtype=dtype)
    for r, c in enumerate(columns):
        out[r] = c
    return out


def _unrolled_function(structure: MapStructure, name: str) -> Any:
    """A map with no operand scalars, as an ordinary Function of its (constant) instances."""
    from .function import Function

    F = structure.body
    flat = structure.expand([np.empty(s, dtype=object) for s in structure.input_shapes()])
    outputs, k = [], 0
    for shape in structure.output_shapes():
        size = int(np.prod(shape, dtype=np.int64))
        values = np.empty(size, dtype=object)
        values[:] = flat[k:k + size]
        k += size
        outputs.append(values.reshape(shape))
    return Function(name, [np.empty(s, dtype=object) for s in structure.input_shapes()], outputs,
                    input_names=F.input_names, output_names=F.output_names)
