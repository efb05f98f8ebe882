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

import threading
from typing import Any, Sequence

import numpy as np

from .errors import InvalidInputError
from .expr import CALL, building, intern_results, intern_structural
from .function import Function
from .map import sizes

__all__ = ["StructuredFunction", "children", "structure_of"]

_LAZY_LOCK = threading.Lock()


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
        # The Tape (one call, then one result per output scalar) is laid out with numpy: no Expr is made
        # until someone asks for ``inputs``/``outputs`` (they are built lazily, over the same slots).
        from .function import _names

        if not isinstance(name, str) or not name:
            raise InvalidInputError(f"Function name must be a non-empty str, got {name!r}")
        self.structure = structure
        self.name = name
        self._input_shapes = tuple(tuple(int(n) for n in s) for s in input_shapes)
        self._output_shapes = tuple(tuple(int(n) for n in s) for s in output_shapes)
        self.input_names = _names(input_names, [f"i{k}" for k in range(len(input_shapes))], "input")
        self.output_names = _names(output_names, [f"o{k}" for k in range(len(output_shapes))], "output")
        self.output_sparsity = (None,) * len(output_shapes)
        self._tape: Any = None
        self._optimized: dict[int, "StructuredFunction"] = {}
        self._program = None
        self._lazy_inputs: tuple | None = None
        self._lazy_outputs: tuple | None = None
        self._expanded: list | None = None

    @property
    def tape(self) -> Any:
        """The Tape: one call of this Function on all its input scalars, then one result each (made on first use)."""
        if self._tape is None:
            from .tape import structured_tape

            with _LAZY_LOCK:  # callbacks compile in threads: every caller gets the one Tape
                if self._tape is None:
                    self._tape = structured_tape(self, self.input_names, self._input_shapes, self._output_shapes)
        return self._tape

    @property
    def n_in(self) -> int:
        return len(self._input_shapes)

    @property
    def n_out(self) -> int:
        return len(self._output_shapes)

    @property
    def input_shapes(self) -> tuple[tuple[int, ...], ...]:
        return self._input_shapes

    @property
    def output_shapes(self) -> tuple[tuple[int, ...], ...]:
        return self._output_shapes

    @property
    def inputs(self) -> tuple:
        """The input symbol arrays (made on first use)."""
        from .array import symbols

        if self._lazy_inputs is None:
            self._lazy_inputs = tuple(symbols(nm, shape) if shape else np.array(symbols(nm), dtype=object)
                                      for nm, shape in zip(self.input_names, self._input_shapes))
        return self._lazy_inputs

    @property
    def outputs(self) -> tuple:
        """The outputs: results of one call of this Function on its own inputs (made on first use)."""
        if self._lazy_outputs is None:
            flat = [s for arr in self.inputs for s in arr.reshape(-1).tolist()]
            with building():
                node = intern_structural(CALL, tuple(flat), self)
                outputs, j = [], 0
                for shape, size in zip(self._output_shapes, sizes(self._output_shapes)):
                    values = np.empty(size, dtype=object)
                    values[:] = intern_results(node, j, size)
                    j += size
                    outputs.append(values.reshape(shape))
            self._lazy_outputs = tuple(outputs)
        return self._lazy_outputs

    def optimize(self, level: int = 1) -> "StructuredFunction":
        """The same structure over the body optimized at ``level`` (``self`` at level 0).

        Made once per level: every compile of a caller asks again.

        >>> import symgraph as sg
        >>> x = sg.symbols("x")
        >>> M = sg.Function("f", [x], [x + x]).map(3)
        >>> M.optimize() is M.optimize(), M.optimize(0) is M
        (True, True)
        """
        if not level:
            return self
        found = self._optimized.get(level) if type(level) is int else None  # True is 1, but refused below
        if found is None:
            found = self.structure.with_body(self.structure.body.optimize(level)).function(self.name)
            found = self._optimized.setdefault(level, found)  # a thread that made it first wins
        return found

    def expansion(self) -> list:
        """The unrolled outputs, flat (``n`` calls of the body over this Function's inputs), built once.

        ``inline()`` (inherited) and ``sg.inline`` expand a structured call through it.
        """
        if self._expanded is None:
            self._expanded = self.structure.expand(self.inputs)
        return self._expanded



def structure_from_data(record: Any, table: Sequence[Any], label: str) -> Function:
    """The structured Function a structure record describes (``structure.to_data(index)``), validated.

    ``record`` is ``("map", body, n, shared, reduce)`` or ``("fold", body, n,
    shared, last)``: ``body`` the position of the body Function in ``table``
    (the Functions loaded so far, so it comes before the record's own
    entry), ``n`` a positive int, ``shared`` one bool per body input or
    the increasing indices of the shared inputs (maps write the first,
    folds the second), ``reduce`` one of None/"sum" per body output,
    ``last`` a bool.  The
    Function is rebuilt by :func:`~symgraph.map.map_function` (or
    :func:`symgraph.fold.fold_function`, imported only for a fold record)
    over ``table[body]``, under the name that gives it; anything else raises
    :class:`~symgraph.errors.SerializationError` starting with ``label``.
    Nothing in the record is executed.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> F = sg.Function("f", [x], [x * x])
    >>> structure_from_data(("map", 0, 3, (False,), ("sum",)), [F], "record").structure.reduce
    ('sum',)
    >>> structure_from_data(("map", 0, 3, (False, True), (None,)), [F], "record")
    Traceback (most recent call last):
      ...
    symgraph.errors.SerializationError: record: map shared must be a tuple of 1 bool(s) (one per input of f) or of increasing input indices below 1, got (False, True)
    """
    from .errors import SerializationError, SymgraphError
    from .function import data_repr as _shown

    if not (isinstance(record, tuple) and len(record) == 5):
        shown = f"a {len(record)}-tuple" if isinstance(record, tuple) else _shown(record)
        raise SerializationError(f"{label}: a structure record must be a 5-tuple ('map' or 'fold', body, n, "
                                 f"shared, reduce or last), got {shown}")
    if not (type(record[0]) is str and record[0] in ("map", "fold")):
        raise SerializationError(f"{label}: unknown structure kind {_shown(record[0])} (known: 'map', 'fold')")
    kind, body, n, shared, extra = record
    if isinstance(body, bool) or not isinstance(body, (int, np.integer)) or not 0 <= body < len(table):
        raise SerializationError(f"{label}: {kind} body must be the position of an earlier Function (0 to "
                                 f"{len(table) - 1}), got {_shown(body)}")
    F = table[int(body)]
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise SerializationError(f"{label}: {kind} n must be a positive int, got {_shown(n)}")
    indices = _shared_indices(shared, F.n_in)
    if indices is None:
        raise SerializationError(f"{label}: {kind} shared must be a tuple of {F.n_in} bool(s) (one per input of "
                                 f"{F.name}) or of increasing input indices below {F.n_in}, got {_shown(shared)}")
    try:
        if kind == "map":
            from .map import map_function

            if not (isinstance(extra, tuple) and len(extra) == F.n_out
                    and all(how is None or (type(how) is str and how == "sum") for how in extra)):
                raise SerializationError(f"{label}: map reduce must be a tuple of {F.n_out} None or 'sum' (one "
                                         f"per output of {F.name}), got {_shown(extra)}")
            G = map_function(F, int(n), shared=indices, reduce=list(extra))
        else:
            if type(extra) is not bool:
                raise SerializationError(f"{label}: fold last must be a bool, got {_shown(extra)}")
            try:
                from .fold import fold_function
            except ModuleNotFoundError as exc:
                if exc.name != f"{__package__}.fold":
                    raise
                raise SerializationError(f"{label}: a fold record needs symgraph.fold, which this version of "
                                         f"symgraph lacks") from None
            G = fold_function(F, int(n), shared=indices, last=extra)
    except SerializationError:
        raise
    except (SymgraphError, TypeError, ValueError) as exc:  # a body the structure does not accept
        raise SerializationError(f"{label}: the {kind} record does not describe a valid {kind}: {exc}") from None
    if structure_of(G) is None:
        raise SerializationError(f"{label}: the {kind} of {F.name} has no operand scalars, so it is not a "
                                 f"structured Function")
    return G


def _shared_indices(shared: Any, n_in: int) -> list[int] | None:
    """The shared input indices a record's ``shared`` gives (flags or increasing indices), None if malformed."""
    if not isinstance(shared, tuple):
        return None
    if shared and all(type(f) is bool for f in shared):
        return [k for k, flag in enumerate(shared) if flag] if len(shared) == n_in else None
    if not all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in shared):
        return None
    indices = [int(k) for k in shared]
    if any(not 0 <= k < n_in for k in indices) or any(a >= b for a, b in zip(indices, indices[1:])):
        return None
    return indices
