"""Native callees: a call node whose work is numpy in the VM and hand-written C in the backend.

Some operations are not graphs of scalar ops at all: an LU factorization
with row exchanges, a Newton iteration that stops when it converges, a
binary search in a table.  A **native** Function is a
:class:`~symgraph.structured.StructuredFunction` whose ``structure`` (a
:class:`NativeStructure`, ``kind == "native"``) says what its call node
computes, in three ways that must agree:

* ``evaluate(columns, width)``: numpy, all points at once (the VM runs it
  for a call of the Function, instead of a body program);
* ``c_function(fname, callees)``: the text of one C function with the
  backend's callee signature ``void fname(const double *const *arg, double
  *const *res, double *w)`` and the number of doubles of ``w`` it needs;
  it may call the C functions of the Functions in ``children`` (by the names
  in ``callees``), which the backend emits first;
* ``make_rules(F)``: the derivative rules, as for :func:`symgraph.custom_jvp`
  / :func:`symgraph.custom_vjp` (a jvp rule ``(inputs..., tangents...) ->
  output tangents`` and/or a vjp rule ``(inputs..., outputs...,
  cotangents...) -> input cotangents``), built once, as graphs that may call
  native Functions again (the derivative of a solve is a solve): so
  derivatives of every order exist.  ``None`` refuses derivatives with a
  :class:`~symgraph.errors.DifferentiationError`.

The rest of the system treats the call like any structured call: it is
hash-consed, never folded or looked into by the optimizer, kept (not
expanded) by :func:`symgraph.inline`, and its Jacobian pattern is
``pattern()`` (dense unless a subclass knows better).

>>> import numpy as np, symgraph as sg
>>> from symgraph.linsolve import solve_function
>>> S = solve_function(3, ())
>>> A = np.array([[2.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 4.0]])
>>> np.allclose(S(A, np.ones(3)), np.linalg.solve(A, np.ones(3)))
True
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .errors import DifferentiationError, NotPicklableError
from .map import sizes
from .structured import StructuredFunction

__all__ = ["NativeStructure", "NativeFunction", "columns_as_arrays", "arrays_as_columns", "is_native", "load_native",
           "NATIVE_MODULES"]


class NativeStructure:
    """What a native call computes; subclasses fill in ``evaluate``, ``c_function`` and ``make_rules``.

    Args:
        input_shapes, output_shapes: the shapes of the Function's inputs and outputs.
        input_names, output_names: their names.

    >>> import numpy as np
    >>> class Twice(NativeStructure):
    ...     label = "twice"
    ...     def evaluate(self, columns, width):
    ...         return [2.0 * np.asarray(c) for c in columns]
    ...     def c_function(self, fname, callees):
    ...         return (f"void {fname}(const double *const *arg, double *const *res, double *w) "
    ...                 f"{{ (void)w; res[0][0] = 2.0 * arg[0][0]; }}\\n", 0)
    >>> T = Twice([()], [()], ["x"], ["y"]).function("twice")
    >>> float(T(1.5)), float(T.compile()(1.5))
    (3.0, 3.0)
    """

    kind = "native"
    children: tuple = ()
    body = None
    label = "native"

    def __init__(self, input_shapes: Sequence[tuple], output_shapes: Sequence[tuple],
                 input_names: Sequence[str], output_names: Sequence[str]) -> None:
        self.in_shapes = tuple(tuple(int(n) for n in s) for s in input_shapes)
        self.out_shapes = tuple(tuple(int(n) for n in s) for s in output_shapes)
        self.input_names, self.output_names = tuple(input_names), tuple(output_names)
        self.n_operands, self.n_results = sum(sizes(self.in_shapes)), sum(sizes(self.out_shapes))
        self._rule: Any = None

    # ------------------------------------------------------------ shapes
    def input_shapes(self) -> list[tuple]:
        return list(self.in_shapes)

    def output_shapes(self) -> list[tuple]:
        return list(self.out_shapes)

    def function(self, name: str) -> "NativeFunction":
        """The Function of this structure, called ``name``."""
        return NativeFunction(name, self, self.in_shapes, self.out_shapes, self.input_names, self.output_names)

    def with_body(self, body: Any) -> "NativeStructure":
        return self

    def describe(self) -> str:
        return self.label

    #: Whether a file may hold this kind (``to_data`` then describes it fully); a native whose
    #: ``to_data`` is only an identity (for cache keys) sets it False.
    savable = True

    def to_data(self, index: dict) -> tuple:
        """Plain data describing what the call computes: ``("native", kind, parameters...)``.

        It identifies the computation (the compiled-code cache hashes it); a
        file holds it where ``savable`` is True.  ``index`` maps each of
        ``children`` to its position in the file's Function table.
        """
        raise NotPicklableError(f"a native {self.label} cannot be saved to a file or pickled yet")

    # ------------------------------------------------------------ the three ways
    def evaluate(self, columns: list, width: int) -> list:
        """The flat result columns (one array of ``width`` values each) from the flat operand columns."""
        raise NotImplementedError

    def c_function(self, fname: str, callees: dict) -> tuple[str, int]:
        """The C function ``fname`` (callee signature) and the doubles of ``w`` it uses."""
        raise NotImplementedError

    def make_rules(self, F: Any) -> dict | None:
        """``{"jvp": Function, "vjp": Function}`` (either may be missing), or None: no derivatives."""
        return None

    # ------------------------------------------------------------ derivatives
    def pattern(self) -> Any:
        """The Jacobian pattern, results by operands (flat): dense by default."""
        from .sparsity import Sparsity

        r, c = self.n_results, self.n_operands
        return Sparsity(np.tile(np.arange(r, dtype=np.int64), c), np.repeat(np.arange(c, dtype=np.int64), r), (r, c))

    def rule(self, F: Any) -> Any:
        """The derivative rule object (built on first use), or None."""
        if self._rule is None:
            from .custom import _Rule

            rules = self.make_rules(F)
            self._rule = _Rule(rules) if rules else False
        return self._rule or None

    def derivative(self, F: Any, mode: str, rows: tuple, cols: tuple) -> Any:
        """The flat derivative Function of :mod:`symgraph.calldiff`, from the rules."""
        rule = self.rule(F)
        if rule is None:
            raise DifferentiationError(f"{F.name} ({self.describe()}) has no derivative rule; it cannot be "
                                       f"differentiated")
        return rule(F, mode, rows, cols)

    def expand(self, inputs: Sequence[np.ndarray]) -> list:
        raise NotImplementedError("a native call has no expansion")


class NativeFunction(StructuredFunction):
    """A Function computed by a :class:`NativeStructure`; see the module docstring.

    It is never optimized into something else (``optimize`` returns it) and
    never expanded (``inline`` keeps its call).

    >>> from symgraph.linsolve import solve_function
    >>> S = solve_function(9, ())
    >>> type(S).__name__, S.optimize() is S, S.structure.kind
    ('NativeFunction', True, 'native')
    """

    def optimize(self, level: int = 1) -> "NativeFunction":
        return self

    def expansion(self) -> list:
        return [s for arr in self.outputs for s in np.asarray(arr, dtype=object).reshape(-1).tolist()]

    @property
    def derivative_rule(self) -> Any:
        return self.structure.rule(self)


#: Native kinds a file may hold -> the module whose ``load_native(record, table, label)`` rebuilds them.
#: Only these modules are ever imported by a loader (a file names a kind, never a module).
NATIVE_MODULES = {"solve": "symgraph.linsolve", "slogdet": "symgraph.linsolve", "lookup": "symgraph.lookup",
                  "lookup_table": "symgraph.lookup", "rootfinder": "symgraph.rootfinder",
                  "solve_skipping_zeros": "symgraph.rootfinder"}


def load_native(record: Any, table: list, label: str) -> Any:
    """The native Function a ``("native", kind, ...)`` record describes (:data:`symgraph.serialize.STRUCTURE_LOADERS`).

    >>> load_native(("native", "solve", 3, ()), [], "record").name
    'solve3'
    >>> load_native(("native", "shell", 1), [], "record")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
      ...
    symgraph.errors.SerializationError: record: unknown native kind 'shell' (known: lookup, lookup_table, ...)
    """
    import importlib

    from .errors import SerializationError

    kind = record[1] if isinstance(record, tuple) and len(record) > 1 else None
    module = NATIVE_MODULES.get(kind) if type(kind) is str else None
    if module is None:
        raise SerializationError(f"{label}: unknown native kind {kind!r} (known: {', '.join(sorted(NATIVE_MODULES))})")
    return importlib.import_module(module).load_native(record, table, label)


def is_native(F: Any) -> bool:
    """Whether ``F`` is a native Function (its calls run numpy in the VM and hand-written C).

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> is_native(sg.rootfinder("r", sg.Function("g", [x], [x * x - 2.0]))), is_native(sg.Function("f", [x], [x]))
    (True, False)
    """
    s = getattr(F, "structure", None)
    return s is not None and s.kind == "native"


def columns_as_arrays(columns: list, shapes: Sequence[tuple], width: int) -> list[np.ndarray]:
    """The VM's flat operand ``columns`` as one ``(width, *shape)`` array per input.

    A column is an array of ``width`` values or a number (a constant operand).

    >>> [a.shape for a in columns_as_arrays([np.ones(4), 2.0, np.zeros(4)], [(), (2,)], 4)]
    [(4,), (4, 2)]
    """
    dtype = np.result_type(np.float64, *[np.asarray(c).dtype for c in columns]) if columns else np.float64
    arrays, k = [], 0
    for shape in shapes:
        size = int(np.prod(shape, dtype=np.int64))
        arr = np.empty((width, size), dtype=dtype)
        for j in range(size):
            arr[:, j] = columns[k + j]
        k += size
        arrays.append(arr.reshape((width,) + tuple(shape)))
    return arrays


def arrays_as_columns(arrays: Sequence[np.ndarray], width: int) -> list:
    """``(width, *shape)`` arrays as the VM's flat result columns (the inverse of :func:`columns_as_arrays`).

    >>> [c.tolist() for c in arrays_as_columns([np.array([[1.0, 2.0], [3.0, 4.0]])], 2)]
    [[1.0, 3.0], [2.0, 4.0]]
    """
    out: list = []
    for arr in arrays:
        flat = np.asarray(arr).reshape(width, -1)
        out.extend(flat[:, j] for j in range(flat.shape[1]))
    return out
