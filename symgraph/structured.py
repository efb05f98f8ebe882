"""Structured Functions: a map or a fold of a body Function, one node however many instances.

A :class:`StructuredFunction` is a :class:`~symgraph.Function` whose graph
is one call of itself on its own inputs: its ``outputs`` are the results of
that call node and its Tape is one ``call`` instruction plus the results.
What the call computes is described by its ``structure`` (a
:class:`~symgraph.map.MapStructure` or :class:`~symgraph.fold.FoldStructure`)
and never unrolled: the VM runs the body's program once per map (over
``n`` times the points) or once per fold step, the C backend emits a loop
around the body's static function, and derivatives are structured
Functions of the body's derivative Functions (:mod:`symgraph.calldiff`).
The unrolled graph (``n`` calls of the body) exists only where asked for:
``sg.inline`` and ``F.inline()`` expand it.

Every part of the system that looks inside a callee asks for its
structure first; the protocol a structure object provides:

* ``body``: the body Function; ``children``: the Functions it calls;
* ``vm_driver(columns, width)``: a driver that feeds the body's program
  (see :mod:`symgraph.vm`);
* ``pattern()``: the Jacobian pattern, results by operands, flat;
* ``derivative(F, mode, rows, cols)``: the derivative Function with the
  flat signature of :mod:`symgraph.calldiff`;
* ``expand(inputs)``: the unrolled outputs, flat, over ``inputs``;
* ``with_body(G)``: the same structure over another body (optimized copies);
* ``to_data(index)``: plain data naming the body by its position in a table.

>>> import numpy as np, symgraph as sg
>>> x = sg.symbols("x")
>>> M = sg.Function("sq", [x], [x * x]).map(3)
>>> isinstance(M, StructuredFunction), M.structure.kind, M.n_ops
(True, 'map', 4)
>>> M(np.array([1.0, 2.0, 3.0]))
array([1., 4., 9.])
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .expr import CALL, RESULT, building, intern_structural
from .function import Function

__all__ = ["StructuredFunction", "children", "structure_of"]


def structure_of(F: Any) -> Any:
    """``F``'s structure object, or None for an ordinary Function."""
    return getattr(F, "structure", None)


def children(F: Any) -> tuple:
    """The Functions that ``F`` calls: its body's for a structured Function, else its Tape's callees.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> F = sg.Function("f", [x], [x + 1])
    >>> [G.name for G in children(F.map(2))]
    ['f']
    """
    structure = structure_of(F)
    if structure is not None:
        return structure.children
    return tuple(F.tape.callees)


class StructuredFunction(Function):
    """A Function computed by a structure (map, fold) over a body; see the module docstring.

    Args:
        name: the Function's name.
        structure: the structure object (it fixes what the call computes).
        input_shapes, output_shapes: shapes of the inputs and outputs.
        input_names, output_names: their names.
    """

    def __init__(self, name: str, structure: Any, input_shapes: Sequence[tuple], output_shapes: Sequence[tuple],
                 input_names: Sequence[str], output_names: Sequence[str]) -> None:
        from .array import symbols

        self.structure = structure
        inputs = [symbols(nm, tuple(shape)) if len(shape) else symbols(nm) for nm, shape in zip(input_names, input_shapes)]
        flat = [s for arr in inputs for s in (arr.reshape(-1).tolist() if isinstance(arr, np.ndarray)
                                             else [arr])]
        with building():
            node = intern_structural(CALL, tuple(flat), self)
            outputs, j = [], 0
            for shape in output_shapes:
                size = int(np.prod(shape, dtype=np.int64))
                values = np.empty(size, dtype=object)
                values[:] = [intern_structural(RESULT, (node,), j + i) for i in range(size)]
                j += size
                outputs.append(values.reshape(tuple(shape)))
        super().__init__(name, inputs, outputs, input_names=input_names, output_names=output_names)
        self._expanded: list | None = None

    def optimize(self, level: int = 1) -> "StructuredFunction":
        """The same structure over the body optimized at ``level`` (``self`` at level 0)."""
        if not level:
            return self
        return self.structure.with_body(self.structure.body.optimize(level)).function(self.name)

    def expansion(self) -> list:
        """The unrolled outputs, flat (``n`` calls of the body over this Function's inputs), built once."""
        if self._expanded is None:
            self._expanded = self.structure.expand(self.inputs)
        return self._expanded

    def inline(self) -> Any:
        """The unrolled Function: the body's graph copied once per instance (or step), calls expanded."""
        from .call import inline_roots
        roots = inline_roots(self.expansion())
        outputs, k = [], 0
        for shape in self.output_shapes:
            size = int(np.prod(shape, dtype=np.int64))
            values = np.empty(size, dtype=object)
            values[:] = roots[k:k + size]
            k += size
            outputs.append(values.reshape(shape))
        return Function(self.name, list(self.inputs), outputs, input_names=self.input_names,
                        output_names=self.output_names)
