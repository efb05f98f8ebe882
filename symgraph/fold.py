"""``F.fold(n)``: a recurrence ``state_{i+1} = F(state_i, u_i)`` over ``n`` steps, one node whatever ``n``.

``fold_function(F, n, shared, last)`` returns a
:class:`~symgraph.structured.StructuredFunction` named ``<F.name>_fold<n>``
with a :class:`FoldStructure`.  ``F``'s input 0 is the state and its output
0 the next state, of the same shape; its other inputs get a leading axis of
length ``n`` (row ``i`` is seen by step ``i``) unless listed in ``shared``
(by index or name: seen whole by every step).  The fold's inputs are the
initial state and the other inputs; its output 0 stacks the states after
each step, ``(n,) + state_shape``, or with ``last=True`` is only the final
state; its other outputs stack ``F``'s other outputs per step (CasADi's
``mapaccum``).

Nothing is unrolled: the VM runs ``F``'s program once per step (over all
points at once), the C backend emits a loop whose state lives in the work
array, and derivatives are folds again:

* forward: one fold of a body computing the state and its tangent together
  (``F`` and ``F``'s jvp), the tangents of per-step inputs per step;
* reverse: the states of a forward fold, then a fold over the steps in
  reverse whose state is the state's cotangent and the running sum of the
  shared inputs' cotangents, with the per-step inputs' cotangents as
  per-step outputs (every state is stored, none recomputed).

>>> import numpy as np, symgraph as sg
>>> s, u = sg.symbols("s"), sg.symbols("u")
>>> F = sg.Function("step", [s, u], [0.5 * s + u])
>>> R = F.fold(3)
>>> R.input_shapes, R.output_shapes
(((), (3,)), ((3,),))
>>> R(1.0, np.array([1.0, 2.0, 3.0])).tolist()
[1.5, 2.75, 4.375]
>>> float(F.fold(3, last=True)(1.0, np.array([1.0, 2.0, 3.0])))
4.375
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .errors import InvalidInputError, ShapeError
from .map import Layout, shared_flags, sizes

__all__ = ["fold_function", "FoldStructure"]


def fold_function(F: Any, n: int, shared: Sequence[int | str] | int | str = (), last: bool = False):
    """The Function iterating ``F`` over ``n`` steps (see the module docstring and ``Function.fold``).

    Raises:
        InvalidInputError: ``n`` not a positive int (bool refused); ``shared``
            naming a missing input, naming one twice, or naming the state
            (input 0); ``last`` not a bool; ``F`` without inputs or outputs,
            or with a sparse output.
        ShapeError: ``F``'s output 0 (the next state) is not shaped like its
            input 0 (the state).

    >>> import symgraph as sg
    >>> s, u = sg.symbols("s", 2), sg.symbols("u")
    >>> sg.Function("f", [s, u], [s[0] * u]).fold(4)
    Traceback (most recent call last):
      ...
    symgraph.errors.ShapeError: f.fold: output 0 (the next state, 'o0') has shape (), but input 0 (the state, 's') has shape (2,)
    """
    label = f"{F.name}.fold"
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise InvalidInputError(f"{label}: n must be a positive int, got {n!r}")
    if not isinstance(last, (bool, np.bool_)):
        raise InvalidInputError(f"{label}: last must be True or False, got {last!r}")
    if not F.n_in or not F.n_out:
        raise InvalidInputError(f"{label}: the body must take the state as input 0 and return the next state "
                                f"as output 0; {F.name} has {F.n_in} input(s) and {F.n_out} output(s)")
    if F.output_shapes[0] != F.input_shapes[0]:
        raise ShapeError(f"{label}: output 0 (the next state, {F.output_names[0]!r}) has shape "
                         f"{F.output_shapes[0]}, but input 0 (the state, {F.input_names[0]!r}) has shape "
                         f"{F.input_shapes[0]}")
    flags = shared_flags(F, shared, label)
    if flags[0]:
        raise InvalidInputError(f"{label}: input 0 ({F.input_names[0]!r}) is the state; it cannot be shared")
    for k, sp in enumerate(F.output_sparsity):
        if sp is not None:
            raise InvalidInputError(f"{label}: output {k} ({F.output_names[k]!r}) is sparse; fold takes dense "
                                    f"outputs (build F with that output .to_dense())")
    structure = FoldStructure(F, int(n), tuple(flags), bool(last))
    name = f"{F.name}_fold{int(n)}"
    if not structure.n_operands:  # a state of size 0 and nothing else: nothing to call it on
        raise InvalidInputError(f"{label}: the fold has no input scalars (a state of size 0?)")
    return structure.function(name)


class FoldStructure:
    """``body`` iterated over ``n`` steps: what a fold's call node computes (see the module docstring)."""

    kind = "fold"

    def __init__(self, body: Any, n: int, shared: tuple, last: bool) -> None:
        self.body, self.n, self.shared, self.last = body, n, tuple(shared), bool(last)
        self.children = (body,)
        self.m = sizes(body.input_shapes[:1])[0]  # state size
        # the state input is one copy (like a shared input), the other inputs one row per step
        self.ins = Layout(sizes(body.input_shapes), [False] + [not f for f in self.shared[1:]], n)
        self.outs = Layout(sizes(body.output_shapes), [not self.last] + [True] * (body.n_out - 1), n)
        self.n_operands, self.n_results = self.ins.total, self.outs.total

    def input_shapes(self) -> list[tuple]:
        shapes = self.body.input_shapes
        return [tuple(shapes[0])] + [tuple(s) if f else (self.n,) + tuple(s)
                                     for s, f in zip(shapes[1:], self.shared[1:])]

    def output_shapes(self) -> list[tuple]:
        shapes = self.body.output_shapes
        first = tuple(shapes[0]) if self.last else (self.n,) + tuple(shapes[0])
        return [first] + [(self.n,) + tuple(s) for s in shapes[1:]]

    def function(self, name: str) -> Any:
        """The StructuredFunction of this structure."""
        from .structured import StructuredFunction

        return StructuredFunction(name, self, self.input_shapes(), self.output_shapes(), self.body.input_names,
                                  self.body.output_names)

    def with_body(self, body: Any) -> "FoldStructure":
        return FoldStructure(body, self.n, self.shared, self.last)

    def to_data(self, index: dict) -> tuple:
        return ("fold", index[self.body], self.n, tuple(k for k, f in enumerate(self.shared) if f), self.last)

    def describe(self) -> str:
        return f"fold of {self.body.name} over {self.n} steps" + (", last state only" if self.last else "")

    # ------------------------------------------------------------ VM
    def vm_driver(self, columns: list, width: int) -> "FoldRun":
        return FoldRun(self, columns, width)

    # ------------------------------------------------------------ graph
    def step_args(self, state: Any, inputs: Sequence[np.ndarray], i: int) -> list:
        """The body's arguments at step ``i``: the state, row ``i`` of each per-step input, the shared ones."""
        return [state] + [arr if flag else arr[i] for arr, flag in zip(inputs[1:], self.shared[1:])]

    def expand(self, inputs: Sequence[np.ndarray]) -> list:
        """The unrolled outputs (flat): ``n`` chained calls of the body."""
        from .call import call_function

        F = self.body
        state = inputs[0]
        states, extras = [], [[] for _ in range(F.n_out - 1)]
        for i in range(self.n):
            outs = call_function(F, self.step_args(state, inputs, i))
            outs = list(outs) if F.n_out != 1 else [outs]
            state = np.asarray(outs[0], dtype=object)
            states.append(state)
            for k, o in enumerate(outs[1:]):
                extras[k].append(np.asarray(o, dtype=object))
        flat = list(state.reshape(-1)) if self.last else [e for st in states for e in st.reshape(-1).tolist()]
        for column in extras:
            flat.extend(e for value in column for e in value.reshape(-1).tolist())
        return flat

    def pattern(self) -> Any:
        """The Jacobian pattern (results by operands, flat), propagated step by step with sparse matrices."""
        import scipy.sparse as sp

        from .calldiff import jacobian_pattern
        from .sparsity import pattern

        body = jacobian_pattern(self.body).matrix.tocsr().astype(np.int64)
        n_ops, m = self.n_operands, self.m
        ins, outs = self.ins, self.outs
        state = sp.csr_matrix((np.ones(m, dtype=np.int64), (np.arange(m), np.arange(m))), shape=(m, n_ops))
        fixed = ins.encode(np.arange(m, ins.body_total), 0)  # shared inputs' columns (per-step ones vary)
        per_step = ins.per_instance[ins.group[np.arange(m, ins.body_total)]]
        rows, cols = [], []
        n_other = ins.body_total - m
        for i in range(self.n):
            where = np.where(per_step, ins.encode(np.arange(m, ins.body_total), i), fixed)
            unit = sp.csr_matrix((np.ones(n_other, dtype=np.int64), (np.arange(n_other), where)),
                                 shape=(n_other, n_ops))
            deps = (body @ sp.vstack([state, unit], format="csr")).tocsr()
            deps.data[:] = 1
            state = deps[:m]
            block = deps if not self.last else deps[m:]
            first = m if self.last else 0
            coo = block.tocoo()
            rows.append(outs.encode(coo.row + first, i))
            cols.append(coo.col)
        if self.last:
            coo = state.tocoo()
            rows.append(outs.encode(coo.row, 0))
            cols.append(coo.col)
        return pattern(np.concatenate(rows), np.concatenate(cols), (self.n_results, n_ops))

    def derivative(self, F: Any, mode: str, rows: tuple, cols: tuple) -> Any:
        """``F``'s flat derivative Function (``F`` has this structure); see :mod:`symgraph.folddiff`."""
        from .folddiff import fold_derivative

        return fold_derivative(F, self, mode, rows, cols)


class FoldRun:
    """The VM's driver for one fold call: the body once per step, all points at once."""

    def __init__(self, s: FoldStructure, columns: list, width: int) -> None:
        self.s, self.columns, self.width = s, columns, width
        self.body = s.body
        self.body_width = width
        self.i = 0
        self.states: list = []
        self.extras: list = []

    def _step_columns(self, state: list) -> list:
        s, i = self.s, self.i
        out = list(state)
        for k in range(1, len(s.shared)):
            off, size = int(s.ins.offsets[k]), int(s.ins.sizes[k])
            if not s.shared[k]:
                off += i * size
            out.extend(self.columns[off:off + size])
        return out

    def start(self) -> list:
        return self._step_columns(self.columns[:self.s.m])

    def resume(self, values: list) -> list | None:
        m = self.s.m
        state = values[:m]
        if not self.s.last:
            self.states.append(state)
        else:
            self.states = [state]
        self.extras.append(values[m:])
        self.i += 1
        if self.i < self.s.n:
            return self._step_columns(state)
        return None

    def result(self) -> list:
        out = [v for state in self.states for v in state]
        s = self.s
        for k in range(1, s.body.n_out):
            off, size = int(s.outs.body_offsets[k]) - s.m, int(s.outs.sizes[k])
            for step in self.extras:
                out.extend(step[off:off + size])
        return out
