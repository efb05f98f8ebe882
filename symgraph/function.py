"""Function: a graph frozen over named inputs and outputs.

``sg.Function(name, inputs, outputs)`` validates its inputs (distinct pure
symbols) and outputs (Exprs or numbers, any shape), freezes them into a
:class:`~symgraph.tape.Tape`, and evaluates through the numpy VM
(``F(*args)``, ``F.batch(*args)``) or compiled C (``F.compile()``).

>>> import numpy as np, symgraph as sg
>>> x, y = sg.symbols("x", 2), sg.symbols("y")
>>> F = sg.Function("f", [x, y], [x * y, x.sum()])
>>> F(np.array([1.0, 2.0]), 3.0)
(array([3., 6.]), np.float64(3.0))
>>> F.input_shapes, F.output_shapes, F.n_ops
(((2,), ()), ((2,), ()), 3)
"""

from __future__ import annotations

import itertools
import re
from typing import Any, Sequence

import numpy as np

from .array import as_expr_array
from .batch import SparseBatch, batch_arguments, csc_order
from .errors import (ArgumentCountError, DTypeError, InvalidInputError, NotPicklableError, SerializationError,
                     ShapeError, SymgraphError)
from .expr import SYMBOL, Expr, all_symbols, building, symbol
from .sparse import SparseExpr, to_scipy
from .tape import Tape, build_tape, input_positions, inputs_distinct, tape_exprs, tape_from_data, tape_to_data
from . import vm


class Function:
    """A frozen graph with inputs and outputs, callable on numbers.

    Args:
        name: the function's name (sanitized before it reaches any C code).
        inputs: a list of inputs, each an Expr symbol or an array of distinct
            symbols (a single symbol or array is taken as one input).
        outputs: a list of outputs, each an Expr, a number, or an array of them.
        input_names, output_names: optional names; by default an input made
            by ``sg.symbols("x", n)`` is called ``x``, outputs ``o0, o1, ...``.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> F = sg.Function("sq", [x], [x * x])
    >>> float(F(3.0))
    9.0
    """

    structure: Any = None  # a StructuredFunction's map or fold (symgraph/structured.py)

    def __init__(self, name: str, inputs: Any, outputs: Any,
                 input_names: Sequence[str] | None = None,
                 output_names: Sequence[str] | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidInputError(f"Function name must be a non-empty str, got {name!r}")
        self.name = name
        self.inputs = tuple(_check_input(k, v) for k, v in enumerate(_as_list(inputs)))
        positions = input_positions(self.inputs)  # the Tape's too, below
        if not inputs_distinct(positions, [a.size for a in self.inputs]):
            _check_distinct(self.inputs)  # raises, naming the repeated symbol
        outputs = _as_list(outputs)
        # output_sparsity[k] is None for a dense output, else (rows, cols, shape)
        # of a SparseExpr output, whose Tape output slots are its nonzeros in order.
        self.output_sparsity = tuple((v.rows, v.cols, v.shape) if isinstance(v, SparseExpr) else None
                                     for v in outputs)
        self.outputs = tuple(v.values if isinstance(v, SparseExpr) else as_expr_array(v) for v in outputs)
        defaults = ([_default_input_name(k, v) for k, v in enumerate(self.inputs)] if input_names is None
                    else [f"i{k}" for k in range(len(self.inputs))])  # names given: no scan of every symbol
        self.input_names = _names(input_names, defaults, "input")
        self.output_names = _names(output_names, [f"o{k}" for k in range(len(self.outputs))], "output")
        with building():  # millions of live nodes make the cyclic GC's passes costly
            self.tape: Tape = build_tape(self.inputs, self.outputs, positions, distinct=True)
        self._program: vm.Program | None = None

    # ------------------------------------------------------------ metadata
    @property
    def n_in(self) -> int:
        """Number of inputs."""
        return len(self.inputs)

    @property
    def n_out(self) -> int:
        """Number of outputs."""
        return len(self.outputs)

    @property
    def input_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Shape of each input."""
        return tuple(a.shape for a in self.inputs)

    @property
    def output_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Shape of each output (the matrix shape for a sparse output)."""
        return tuple(a.shape if sp is None else sp[2] for a, sp in zip(self.outputs, self.output_sparsity))

    @property
    def n_ops(self) -> int:
        """Number of operations (instructions) on the Tape.

        A call counts as one, and each of its results that is used as one
        more; the callee's own operations are not counted (``F.inline().n_ops``
        counts them as copied in).
        """
        return self.tape.n_instructions

    def listing(self, limit: int | None = 200) -> str:
        """The Tape as readable text (first ``limit`` instructions).

        >>> import symgraph as sg
        >>> x = sg.symbols("x")
        >>> print(sg.Function("f", [x], [x + 1]).listing())
        @0 = input 0 [] (x)
        @1 = 1
        @2 = add(@1, @0)
        output 0 [] = @2
        """
        return self.tape.listing(limit)

    def __repr__(self) -> str:
        ins = ", ".join(_signature(n, s) for n, s in zip(self.input_names, self.input_shapes))
        outs = ", ".join(_signature(n, s) for n, s in zip(self.output_names, self.output_shapes))
        return f"Function({self.name}: ({ins}) -> ({outs}), {self.n_ops} ops)"

    __str__ = __repr__

    # ------------------------------------------------------------ pickling
    def __reduce__(self):
        """Pickle (and ``copy.deepcopy``) through symgraph's file format (:func:`symgraph.serialize.to_bytes`)."""
        from .serialize import from_bytes, to_bytes

        return from_bytes, (to_bytes(self),)

    # ---------------------------------------------------------- evaluation
    def __call__(self, *args: Any):
        """Evaluate at one point in the numpy VM: arrays shaped like the inputs.

        Returns one array (a numpy scalar for a scalar output) per output, as
        a tuple when there are several outputs.

        On symbolic arguments (an Expr, or arrays and lists holding Exprs) it
        returns the outputs as the results of one call node instead, shaped
        the same way (see :func:`symgraph.call.call_function`):

        >>> import symgraph as sg
        >>> x, y = sg.symbols("x"), sg.symbols("y")
        >>> F = sg.Function("f", [x], [sg.sin(x) * x])
        >>> print(F(y + 1) * 2)
        2 * f(1 + y)[0]
        """
        if any(_holds_expr(a) for a in args):
            from .call import call_function

            return call_function(self, args)
        flat = self._flat_args(args, batch=False)
        results = vm.run(self.tape, flat, self._vm_program())
        return self._pack([self._shape_result(k, r[0]) for k, r in enumerate(results)])

    def _shape_result(self, k: int, flat: np.ndarray):
        sparsity = self.output_sparsity[k]
        if sparsity is None:
            return flat.reshape(self.output_shapes[k])
        return to_scipy(flat, *sparsity)

    def batch(self, *args: Any):
        """Evaluate N points at once in one vectorized pass.

        Each argument has a leading axis of length N, or the input's own shape
        to share one value among all points (a parameter).  Each output gets a
        leading axis of length N; a sparse output comes back as one
        :class:`~symgraph.batch.SparseBatch` (an ``(N, nnz)`` array of
        nonzeros and the pattern they share; ``.to_list()`` gives N
        ``csc_matrix``).  ``C.batch`` of the compiled Function returns the
        same types in the same layout.

        >>> import numpy as np, symgraph as sg
        >>> x, a = sg.symbols("x"), sg.symbols("a")
        >>> sg.Function("f", [x, a], [a * x]).batch(np.arange(3.0), 2.0)
        array([0., 2., 4.])
        """
        if len(args) != self.n_in:
            raise ArgumentCountError(f"{self.name} takes {self.n_in} argument(s) "
                                     f"({', '.join(self.input_names)}), got {len(args)}")
        arrays, batched, n = batch_arguments(self, args, self._batch_argument)
        flat = [arr.reshape(n if b else 1, int(np.prod(shape, dtype=np.int64)))
                for arr, b, shape in zip(arrays, batched, self.input_shapes)]
        flat = [a if a.shape[0] == n else np.broadcast_to(a, (n, a.shape[1])) for a in flat]
        results = vm.run(self.tape, flat, self._vm_program())
        return self._pack([r.reshape((n,) + shape) if sp is None else _sparse_batch(r, sp)
                           for r, shape, sp in zip(results, self.output_shapes, self.output_sparsity)])

    def _batch_argument(self, k: int, value: Any) -> np.ndarray:
        return as_number_array(f"{self.name}: argument {k} ({self.input_names[k]!r})", value)

    def output_pattern(self, k: int):
        """The sparsity pattern of output ``k`` as a ``csc_matrix`` of ones, or None for a dense output.

        Its ``indices`` and ``indptr`` are those of every result of that output
        (a call's ``csc_matrix``, a batch's :class:`~symgraph.batch.SparseBatch`).

        >>> import symgraph as sg
        >>> x = sg.symbols("x", 2)
        >>> F = sg.Function("f", [x], [sg.jacobian(x * x, x), x])
        >>> F.output_pattern(0).indices.tolist(), F.output_pattern(1)
        ([0, 1], None)
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not -self.n_out <= k < self.n_out:
            raise InvalidInputError(f"{self.name}: output_pattern(k) needs an output index in "
                                    f"[0, {self.n_out}), got {k!r}")
        sparsity = self.output_sparsity[k]
        if sparsity is None:
            return None
        import scipy.sparse as sp

        _, indices, indptr, shape = csc_order(sparsity)
        return sp.csc_matrix((np.ones(len(indices)), indices, indptr), shape=shape)

    def _vm_program(self) -> vm.Program:
        if self._program is None:
            self._program = vm.program(self.tape)
        return self._program

    def _pack(self, results: list):
        results = [r[()] if isinstance(r, np.ndarray) and r.ndim == 0 else r for r in results]
        return results[0] if len(results) == 1 else tuple(results)

    def _flat_args(self, args: Sequence[Any], batch: bool) -> list[np.ndarray]:
        if len(args) != self.n_in:
            raise ArgumentCountError(f"{self.name} takes {self.n_in} argument(s) "
                                     f"({', '.join(self.input_names)}), got {len(args)}")
        flat, n = [], None
        for k, (value, shape) in enumerate(zip(args, self.input_shapes)):
            arr = check_argument(self, k, value, shape, batch)
            if batch:
                if n is not None and arr.shape[0] != n:
                    raise ShapeError(f"{self.name}: argument {k} ({self.input_names[k]!r}) has {arr.shape[0]} "
                                     f"points, but earlier arguments have {n}")
                n = arr.shape[0]
            # explicit leading size: -1 is ambiguous for an empty input (shape (0,))
            flat.append(arr.reshape(1 if not batch else arr.shape[0], int(np.prod(shape, dtype=np.int64))))
        return flat

    # ------------------------------------------------------------ backends
    def optimize(self, level: int = 1) -> "Function":
        """A new, equivalent Function with a simplified graph (level 0: unchanged).

        >>> import symgraph as sg
        >>> x = sg.symbols("x")
        >>> sg.Function("f", [x], [x + x]).optimize().n_ops <= 1
        True
        """
        from .optimize import optimize_function

        return optimize_function(self, level)

    def map(self, n: int, shared: Any = (), reduce: Any = None) -> "Function":
        """A Function running this one on ``n`` instances (:func:`symgraph.map.map_function`).

        Mapped inputs and outputs gain a leading axis of length ``n``; inputs in
        ``shared`` (indices or names) are seen whole by every instance;
        ``reduce="sum"`` (or one of None/"sum" per output) sums an output over
        the instances.  Built from ``n`` calls of this Function.

        >>> import numpy as np, symgraph as sg
        >>> x = sg.symbols("x")
        >>> F = sg.Function("sq", [x], [x * x])
        >>> F.map(3)(np.array([1.0, 2.0, 3.0]))
        array([1., 4., 9.])
        >>> float(F.map(3, reduce="sum")(np.array([1.0, 2.0, 3.0])))
        14.0
        """
        from .map import map_function

        return map_function(self, n, shared, reduce)

    def fold(self, n: int, shared: Any = (), last: bool = False) -> "Function":
        """A Function iterating this one over ``n`` steps (:func:`symgraph.fold.fold_function`).

        Input 0 is the state and output 0 the next state (same shape); the
        other inputs get a leading axis of length ``n`` (row ``i`` for step
        ``i``) unless named in ``shared``.  The fold returns every state after
        each step (leading axis ``n``), or only the last with ``last=True``,
        and the other outputs stacked per step.  One node whatever ``n``.

        >>> import numpy as np, symgraph as sg
        >>> s, u = sg.symbols("s"), sg.symbols("u")
        >>> sg.Function("f", [s, u], [s + u]).fold(3)(0.0, np.array([1.0, 2.0, 3.0]))
        array([1., 3., 6.])
        """
        from .fold import fold_function

        return fold_function(self, n, shared, last)

    def expansion(self) -> list:
        """The output scalars, flat, as :func:`symgraph.inline` expands a call of this Function.

        For an ordinary Function its own outputs; a structured one (map,
        fold) gives its unrolled body instead.
        """
        return [e for arr in self.outputs for e in arr.reshape(-1).tolist()]

    def inline(self) -> "Function":
        """This Function with every call expanded (:func:`symgraph.inline`); ``self`` if it has none.

        Same name, inputs, input/output names, shapes and sparsity.

        >>> import symgraph as sg
        >>> x, y = sg.symbols("x"), sg.symbols("y")
        >>> F = sg.Function("f", [x], [sg.sin(x)])
        >>> G = sg.Function("g", [y], [F(y) + F(2 * y)])
        >>> G.n_ops, G.inline().n_ops
        (6, 4)
        >>> str(G.inline().outputs[0][()])
        'sin(y) + sin(2 * y)'
        """
        if not self.tape.n_calls:
            return self
        from .call import inline_roots

        roots = inline_roots([e for arr in self.outputs for e in arr.reshape(-1).tolist()])
        outputs, k = [], 0
        for arr, sparsity in zip(self.outputs, self.output_sparsity):
            values = np.empty(arr.size, dtype=object)
            values[:] = roots[k:k + arr.size]
            k += arr.size
            outputs.append(values.reshape(arr.shape) if sparsity is None else SparseExpr(*sparsity[:2], values,
                                                                                         sparsity[2]))
        return Function(self.name, list(self.inputs), outputs, input_names=self.input_names,
                        output_names=self.output_names)

    def compile(self, *, target: str = "c", **options: Any):
        """Compile to C (see :mod:`codegen.runtime`); same call signature as ``F``.

        Each distinct callee of a call is emitted once, as a static C function
        (optimized once at the same level), whatever the number of calls.
        The cache is looked up first, by a hash of the Tape and the options,
        so a warm start skips optimizing and generating C.  ``tier="auto"``
        returns tcc's code at once and switches to the optimizing compiler's
        when its background build is done; ``"best"`` (default) and ``"fast"``
        pin one.
        ``target="cuda"`` compiles for a GPU (``batch`` over many points) and
        ``target="cuda-host"`` the same CUDA source for the CPU (see
        :mod:`codegen.cuda_runtime`).
        """
        if target in ("cuda", "cuda-host"):
            from codegen.cuda_runtime import compile_cuda

            return compile_cuda(self, target, **options)
        if target != "c":
            from .errors import OptionError

            raise OptionError(f"compile(): unknown target {target!r}; the targets are 'c' (default), 'cuda', 'cuda-host'")
        from codegen.runtime import compile_function

        return compile_function(self, **options)

    def c_code(self, **options: Any) -> str:
        """The C99 source of this Function (see :mod:`codegen.c99`); each callee is one static C function."""
        from codegen.c99 import generate

        return generate(self, **options)

    @property
    def c_source(self) -> str:
        """The C99 source of this Function with default options."""
        return self.c_code()

    def export_c(self, directory: str, name: str | None = None, optimize: int = 1,
                 overwrite: bool = False) -> dict:
        """Write standalone ``NAME.c``, ``NAME.h`` and ``NAME__demo.c`` into ``directory``.

        ``NAME`` is the C identifier of ``name`` (default ``self.name``), e.g.
        ``sgf_f`` for ``f``.  The graph is optimized first at level ``optimize``
        (as ``compile`` does; 0 exports it as given).  Existing files are not
        replaced (``OverwriteError``) unless ``overwrite=True``.  Returns the
        paths as ``{"source": ..., "header": ..., "demo": ...}``.

        >>> import os, tempfile, symgraph as sg
        >>> x = sg.symbols("x")
        >>> paths = sg.Function("f", [x], [x * x]).export_c(tempfile.mkdtemp())
        >>> os.path.basename(paths["header"])
        'sgf_f.h'
        """
        from codegen.c99 import export_c

        return export_c(self, directory, name, optimize, overwrite)

    # ------------------------------------------- files, pictures, printing
    def save(self, path: Any, **options: Any) -> None:
        """Write this Function to ``path`` in symgraph's file format (see :func:`symgraph.serialize.save`)."""
        from .serialize import save

        return save(self, path, **options)

    def to_bytes(self) -> bytes:
        """This Function in symgraph's file format, as bytes (see :func:`symgraph.serialize.to_bytes`)."""
        from .serialize import to_bytes

        return to_bytes(self)

    def draw(self, path: Any, **options: Any) -> Any:
        """Draw this Function's graph to an SVG/PNG file through Graphviz (see :func:`symgraph.pictures.draw`)."""
        from .pictures import draw

        return draw(self, path, **options)

    def to_dot(self, **options: Any) -> str:
        """This Function's graph as Graphviz DOT text (see :func:`symgraph.pictures.to_dot`)."""
        from .pictures import to_dot

        return to_dot(self, **options)

    def debugprint(self, **options: Any) -> Any:
        """A PyTensor-style text dump of the graph, each shared node once (see :func:`symgraph.printing.debugprint`)."""
        from .printing import debugprint

        return debugprint(self, **options)


FUNCTION_FORMAT = 3  # version of function_to_data's layout (1: no callees; 2: no structured Functions)


def function_to_data(F: Function) -> tuple:
    """``F`` as plain data (str, ints, bools, None, tuples, numpy arrays): what a pickle of ``F`` holds.

    ``("symgraph.Function", FUNCTION_FORMAT, name, input_names, output_names,
    tape, output_sparsity, callees, structure)``:

    * ``tape``: the Tape as :func:`~symgraph.tape.tape_to_data`, or None when
      ``F`` is structured (a map or fold: its Tape is a call of itself, so
      it is described by ``structure`` instead);
    * ``output_sparsity``: per output, None (dense) or ``(rows, cols, shape)``;
    * ``callees``: every Function that ``F`` needs, directly or through other
      callees or as the body of a structure, each once, callees before their
      callers, as ``(name, input_names, output_names, tape, output_sparsity,
      structure)`` (the same fields as ``F``'s own); the Tapes' calls and the
      structures' bodies refer to positions in this list;
    * ``structure``: None for an ordinary Function, else the structure's
      ``to_data(index)``: ``("map", body, n, shared, reduce)`` or ``("fold",
      body, n, shared, last)`` with ``body`` a position in ``callees``
      (see :func:`symgraph.structured.structure_from_data`).

    Exactly one of ``tape`` and ``structure`` is None in each entry.

    >>> import symgraph as sg
    >>> x = sg.symbols("x", 2)
    >>> data = function_to_data(sg.Function("f", [x], [x * 2]))
    >>> data[:5], data[7], data[8]
    (('symgraph.Function', 3, 'f', ('x',), ('o0',)), (), None)
    >>> data = function_to_data(sg.Function("f", [x], [x * 2]).map(3))
    >>> data[2], data[5], data[8], [entry[0] for entry in data[7]]
    ('f_map3', None, ('map', 0, 3, (False,), (None,)), ['f'])
    """
    from .call import callees_bottom_up
    from .structured import children

    table = callees_bottom_up(list(children(F)))  # a structured F's body (and its callees), else F's callees
    index = {G: k for k, G in enumerate(table)}  # Functions hash by identity
    callees = tuple(_entry(G, index) for G in table)
    name, input_names, output_names, tape, sparsity, structure = _entry(F, index)
    return ("symgraph.Function", FUNCTION_FORMAT, name, input_names, output_names, tape, sparsity, callees,
            structure)


def _entry(F: Function, index: dict) -> tuple:
    """``(name, input_names, output_names, tape, output_sparsity, structure)`` of ``F`` (see function_to_data)."""
    if getattr(F, "derivative_rule", None) is not None:  # the format has no place for it: refuse, never drop it
        raise NotPicklableError(
            f"Function {F.name!r} carries a user derivative rule (sg.custom_jvp, sg.custom_vjp or "
            f"sg.stop_gradient), which this format cannot hold; saved without it, its derivatives would "
            f"silently change. Save it with sg.save / sg.to_bytes (or pickle it), which keep the rule")
    structure = F.structure
    tape = tape_to_data(F.tape, index) if structure is None else None
    return (F.name, tuple(F.input_names), tuple(F.output_names), tape, _sparsity_data(F),
            None if structure is None else structure.to_data(index))


def _sparsity_data(F: Function) -> tuple:
    return tuple(None if sp is None else (sp[0].astype(np.int64), sp[1].astype(np.int64),
                                          (int(sp[2][0]), int(sp[2][1])))
                 for sp in F.output_sparsity)


_RECORD_LAYOUTS = {1: (7, 0), 2: (8, 5), FUNCTION_FORMAT: (9, 6)}  # version: (record length, callee entry length)


def function_from_data(data: object) -> Function:
    """The Function that :func:`function_to_data` describes; what unpickling calls.

    The data is validated first (:func:`~symgraph.tape.tape_from_data`;
    :func:`~symgraph.structured.structure_from_data`; names, counts and
    sparse patterns here) and anything malformed raises
    :class:`~symgraph.errors.SerializationError`; nothing in it is executed.
    The graph is rebuilt from the Tape with ``sg.apply``, one node per
    instruction in order (no recursion), over new input symbols with the
    saved names, so the result is a complete Function: its ``inputs`` and
    ``outputs`` can be differentiated, optimized and compiled.  Callees are
    rebuilt first, each once, so the calls of the result (and of its
    callees) share them.  A structured entry (map, fold) is rebuilt by
    ``map_function`` / ``fold_function`` over its already rebuilt body, so
    it comes back as a :class:`~symgraph.structured.StructuredFunction` with
    the same structure.  Versions 1 (before calls) and 2 (before
    structured Functions) are read too.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> G = function_from_data(function_to_data(sg.Function("f", [x], [sg.sin(x)])))
    >>> str(G.outputs[0][()]), float(G(0.0))
    ('sin(x)', 0.0)
    >>> M = function_from_data(function_to_data(sg.Function("f", [x], [sg.sin(x)]).map(2)))
    >>> M.structure.kind, M.structure.body.name
    ('map', 'f')
    """
    if not (isinstance(data, tuple) and len(data) in (7, 8, 9) and data[0] == "symgraph.Function"):
        raise SerializationError(f"not a symgraph Function record (expected a 7-, 8- or 9-tuple starting with "
                                 f"'symgraph.Function', got {type(data).__name__})")
    version = data[1]
    layout = _RECORD_LAYOUTS.get(version) if isinstance(version, int) and not isinstance(version, bool) else None
    if layout is None or layout[0] != len(data):
        raise SerializationError(f"Function format version {version!r} is not supported as a {len(data)}-tuple "
                                 f"(this symgraph reads versions 1, 2 and {FUNCTION_FORMAT}, as 7-, 8- and "
                                 f"9-tuples)")
    size = layout[1]
    records = data[7] if len(data) > 7 else ()
    if not isinstance(records, tuple) or not all(isinstance(r, tuple) and len(r) == size for r in records):
        fields = "name, input_names, output_names, tape, output_sparsity" + (", structure" if size == 6 else "")
        raise SerializationError(f"Function record: callees must be a tuple of {size}-tuples ({fields})")
    table: list[Function] = []
    for k, record in enumerate(records):  # callees before callers: each may call only earlier ones
        structure = record[5] if size == 6 else None
        table.append(_function_from_entry(*record[:5], structure, table, f"Function record: callee {k}"))
    structure = data[8] if len(data) == 9 else None
    return _function_from_entry(*data[2:7], structure, table, "Function record")


def _function_from_entry(name: Any, input_names: Any, output_names: Any, tape_data: Any, sparsity: Any,
                         structure: Any, callees: Sequence[Function], label: str) -> Function:
    """One entry of a Function record: from its Tape, or (structured) from its structure record."""
    if not isinstance(name, str) or not name:
        raise SerializationError(f"{label}: the name must be a non-empty str, got {data_repr(name)}")
    label = f"{label} ({name!r})"
    if structure is None:
        if tape_data is None:
            raise SerializationError(f"{label}: has neither a Tape nor a structure")
        return _function_from_parts(name, input_names, output_names, tape_data, sparsity, callees)
    if tape_data is not None:
        raise SerializationError(f"{label}: a structured Function is stored by its structure alone, "
                                 f"but a Tape is given too")
    from .structured import structure_from_data

    return rebuilt_as_saved(structure_from_data(structure, callees, label), name, input_names, output_names,
                            sparsity, label)


def rebuilt_as_saved(F: Function, name: Any, input_names: Any, output_names: Any, sparsity: Any,
                     label: str) -> Function:
    """A structured Function rebuilt from its record, checked against the saved names and sparsity, named ``name``.

    Raises SerializationError (starting with ``label``) where the record
    gives other names or sparsity than the saved ones.
    """
    for what, saved, rebuilt in (("input names", input_names, F.input_names),
                                 ("output names", output_names, F.output_names),
                                 ("output sparsity", sparsity, _sparsity_data(F))):
        if not _same_data(saved, tuple(rebuilt)):
            raise SerializationError(f"{label}: saved {what} {data_repr(saved)}, but its structure gives "
                                     f"{data_repr(tuple(rebuilt))}")
    return F if F.name == name else F.structure.function(name)


def _same_data(saved: Any, rebuilt: tuple) -> bool:
    """Whether ``saved`` (from a record) equals ``rebuilt``: tuples of str, None or sparse patterns."""
    if not (isinstance(saved, tuple) and len(saved) == len(rebuilt)):
        return False
    for a, b in zip(saved, rebuilt):
        if isinstance(b, tuple):  # a sparse pattern (rows, cols, shape)
            if not (isinstance(a, tuple) and len(a) == 3 and all(isinstance(v, np.ndarray) for v in a[:2])
                    and np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]):
                return False
        elif not (type(a) is type(b) and a == b):
            return False
    return True


def data_repr(value: Any) -> str:
    """``value`` from a record, for an error message: a short repr of plain data, else its type's name."""
    plain = isinstance(value, (tuple, str, int, float, type(None))) and not isinstance(value, np.ndarray)
    text = repr(value) if plain else type(value).__name__
    return text if len(text) <= 80 else text[:77] + "..."


def _function_from_parts(name: Any, input_names: Any, output_names: Any, tape_data: Any, sparsity: Any,
                         callees: Sequence[Function]) -> Function:
    tape = tape_from_data(tape_data, callees)
    if not (isinstance(sparsity, tuple) and len(sparsity) == len(tape.output_slots)
            and isinstance(input_names, tuple) and len(input_names) == len(tape.input_slots)
            and isinstance(output_names, tuple) and len(output_names) == len(tape.output_slots)):
        raise SerializationError("Function record: the input/output names and sparse patterns do not match "
                                 "the Tape's inputs and outputs")
    try:
        with building():
            symbols = [symbol(n) for n in tape.symbol_names]
            flat = np.empty(len(symbols), dtype=object)
            flat[:] = symbols
            inputs = [flat[slots] if slots.ndim else flat[int(slots)] for slots in tape.input_slots]
            values = np.empty(tape.n_slots, dtype=object)
            values[:] = tape_exprs(tape, [flat])
            outputs: list[Any] = []
            for slots, pattern in zip(tape.output_slots, sparsity):
                if pattern is None:
                    outputs.append(values[slots])
                    continue
                if not (isinstance(pattern, tuple) and len(pattern) == 3 and slots.ndim == 1):
                    raise SerializationError("Function record: a sparse output must be (rows, cols, shape) "
                                             "over a 1-d list of slots")
                rows, cols, shape = pattern
                if not (isinstance(rows, np.ndarray) and isinstance(cols, np.ndarray)):
                    raise SerializationError("Function record: sparse rows and cols must be integer arrays")
                outputs.append(SparseExpr(rows, cols, values[slots], shape))
            return Function(name, inputs, outputs, input_names=input_names, output_names=output_names)
    except SerializationError:
        raise
    except (SymgraphError, TypeError, ValueError, IndexError) as exc:  # inconsistent names, shapes, patterns
        raise SerializationError(f"Function record is inconsistent: {exc}") from None


def _sparse_batch(values: np.ndarray, sparsity: tuple) -> SparseBatch:
    """The ``(N, nnz)`` values of a sparse output (in its own order) as a SparseBatch in CSC order."""
    perm, indices, indptr, shape = csc_order(sparsity)
    return SparseBatch(values[:, perm], indices, indptr, shape)


def check_argument(F: Function, k: int, value: Any, shape: tuple, batch: bool) -> np.ndarray:
    """Argument ``k`` of ``F`` as a float64/complex128 array, or a clear error.

    Shared by the VM and compiled functions, so both refuse the same input.
    """
    label = f"{F.name}: argument {k} ({F.input_names[k]!r})"
    arr = as_number_array(label, value)
    if batch:
        if arr.ndim != len(shape) + 1 or arr.shape[1:] != shape:
            raise ShapeError(f"{label}: expected shape (N,) + {shape} for a batch, got {arr.shape}")
    elif arr.shape != shape:
        raise ShapeError(f"{label}: expected shape {shape}, got {arr.shape}")
    return arr


def as_number_array(label: str, value: Any) -> np.ndarray:
    """``value`` as a float64 or complex128 array, or a :class:`~symgraph.errors.DTypeError` starting with ``label``.

    >>> as_number_array("f: argument 0", [1, 2]).dtype
    dtype('float64')
    """
    if isinstance(value, int) and not isinstance(value, bool):  # beyond int64 numpy makes an object array
        try:
            value = float(value)
        except OverflowError:
            raise DTypeError(f"{label}: expected a real number that fits in a float64, got an int of "
                             f"{value.bit_length()} bits") from None
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise DTypeError(f"{label}: cannot convert {type(value).__name__} to an array ({exc})") from None
    if arr.dtype.kind not in "biufc":
        raise DTypeError(dtype_message(label, arr))
    return arr.astype(np.complex128 if arr.dtype.kind == "c" else np.float64, copy=False)


def dtype_message(label: str, arr: np.ndarray) -> str:
    """Why ``arr`` cannot be evaluated: its dtype and, for an object array, the first element
    that is not a real number (symbolic expressions get a note on calling the Function itself).

    >>> import numpy as np
    >>> print(dtype_message("f: argument 0", np.array([1.0, None])))
    f: argument 0: expected real numbers, got an array of dtype object (element [1] is NoneType None)
    """
    text = f"{label}: expected real numbers, got an array of dtype {arr.dtype}"
    if arr.dtype.kind != "O":
        return text
    for index, v in np.ndenumerate(arr):
        if type(v) is Expr:
            return (text + " holding symbolic expressions: this evaluates numbers only; call the Function "
                    "itself on the expressions, F(x), to get its outputs as a symbolic call node")
        if not isinstance(v, (float, np.floating, np.bool_, bool)) or isinstance(v, (str, bytes)):
            try:
                shown = repr(v)
            except ValueError:  # an int too long for repr
                shown = "..."
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            where = f" {list(index)}" if arr.ndim else ""
            return text + f" (element{where} is {type(v).__name__} {shown})"
    return text


def _holds_expr(value: Any) -> bool:
    """True if ``value`` is an Expr or SparseExpr, or an object array or (nested) list/tuple holding an Expr."""
    if type(value) is Expr or isinstance(value, SparseExpr):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype == object and any(type(v) is Expr for v in value.reshape(-1).tolist())
    if not isinstance(value, (list, tuple)):
        return False
    stack = [value]
    while stack:
        for v in stack.pop():
            if type(v) is Expr or (isinstance(v, np.ndarray) and _holds_expr(v)):
                return True
            if isinstance(v, (list, tuple)):
                stack.append(v)
    return False


def _as_list(value: Any) -> list:
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _check_input(k: int, value: Any) -> np.ndarray:
    arr = np.asarray(value, dtype=object) if not isinstance(value, Expr) else np.array(value, dtype=object)
    if all_symbols(arr.reshape(-1).tolist()):  # the common case, checked in C
        return arr
    for index, v in np.ndenumerate(arr):
        if type(v) is not Expr or v.op is not SYMBOL:
            where = f"input {k}" + (f" at {list(index)}" if arr.ndim else "")
            shown = str(v) if type(v) is Expr else repr(v)
            raise InvalidInputError(f"{where} is {shown}, not a pure symbol; "
                                    "Function inputs must be symbols made by sg.symbols")
    return arr


def _check_distinct(inputs: Sequence[np.ndarray]) -> None:
    flat = list(itertools.chain.from_iterable(arr.reshape(-1).tolist() for arr in inputs))
    if len(set(map(id, flat))) == len(flat):  # the common case, checked in C
        return
    seen: dict[int, tuple[int, tuple]] = {}
    for k, arr in enumerate(inputs):
        for index, sym in np.ndenumerate(arr):
            if id(sym) in seen:
                k0, i0 = seen[id(sym)]
                raise InvalidInputError(f"symbol {sym.data!r} appears twice among the inputs "
                                        f"(input {k0} at {list(i0)} and input {k} at {list(index)})")
            seen[id(sym)] = (k, index)


_ARRAY_NAME = re.compile(r"^(.*)\[[0-9,]+\]$")


def _default_input_name(k: int, arr: np.ndarray) -> str:
    """``x`` when every element is named ``x[...]`` (as ``sg.symbols("x", shape)`` names them), else ``i<k>``."""
    if arr.ndim == 0:
        return arr[()].data
    names = [s.data for s in arr.reshape(-1).tolist()]
    first = _ARRAY_NAME.match(names[0]) if names else None
    if first is None:
        return f"i{k}"
    base = first[1]
    text = "\n".join(names)
    if text.count("\n") != len(names) - 1:  # a name holds a line break: one regex match per name
        bases = {(_ARRAY_NAME.match(s) or [None, None])[1] for s in names}
        return bases.pop() if len(bases) == 1 and None not in bases else f"i{k}"
    # one match over all the names, a line each: the same test as _ARRAY_NAME per name, with one base
    element = re.escape(base) + r"\[[0-9,]+\]"
    return base if re.fullmatch(f"(?:{element}\n)*+{element}", text) else f"i{k}"


def _names(given: Sequence[str] | None, default: list[str], kind: str) -> tuple[str, ...]:
    if given is None:
        return tuple(default if len(set(default)) == len(default) else
                     [f"{kind[0]}{k}" for k in range(len(default))])
    given = list(given)
    if len(given) != len(default) or not all(isinstance(g, str) and g for g in given):
        raise InvalidInputError(f"{kind}_names must be {len(default)} non-empty str, got {given!r}")
    if len(set(given)) != len(given):
        raise InvalidInputError(f"{kind}_names must be distinct, got {given!r}")
    return tuple(given)


def _signature(name: str, shape: tuple) -> str:
    return name + (f"[{','.join(map(str, shape))}]" if shape else "")
