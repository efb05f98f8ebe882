"""``sg.external``: a user's C function as a native call node, with user-given derivatives.

The function is compiled into every program that calls it and run by the
compiled code; the numpy VM runs it through that compiled code too (the
external's own one-call Function compiled once, then ``batch`` over the
points), so values agree bitwise between ``F(...)`` and ``F.compile()``.

The C function has the signature::

    int NAME(const double *const *arg, double *const *res);

``arg[k]`` points to input ``k`` (its elements in C order), ``res[k]`` to
output ``k``, shaped as declared.  It returns 0 on success; any other value
makes every output of that evaluation NaN (so a failure is never a silent
number).  It must be pure (same inputs, same outputs) and thread-safe: calls
run in several threads and in batches.

It comes as ``source`` (C text defining ``NAME``; compiled with the
program, so it may ``#include`` standard headers; ``NAME`` itself must not
be ``static``, and its other functions should be) or as ``library`` (the path of a shared library that
exports ``NAME``: the generated code opens it with ``dlopen`` on first use,
by its absolute path, so the library must stay where it is).

Derivatives are the user's: ``jvp`` and/or ``vjp`` with the signatures of
:func:`symgraph.custom_jvp` / :func:`symgraph.custom_vjp` (Functions, which
may call externals themselves, or callables traced once), checked against
the declared shapes at definition.  Without either, differentiating a call
raises :class:`~symgraph.errors.DifferentiationError`; with one, the other
mode is its transpose.  The Jacobian pattern is dense unless ``pattern``
(a :class:`~symgraph.sparsity.Sparsity`, flat outputs by flat inputs) says
less.

>>> import numpy as np, symgraph as sg
>>> src = '''
... #include <math.h>
... int scaled_sin(const double *const *arg, double *const *res) {
...   for (int i = 0; i < 3; ++i) res[0][i] = arg[1][0] * sin(arg[0][i]);
...   return 0;
... }'''
>>> f = external("scaled_sin", [(3,), ()], [(3,)], source=src,
...              jvp=lambda x, a, tx, ta: a * sg.cos(x) * tx + sg.sin(x) * ta)
>>> x, a = sg.symbols("x", 3), sg.symbols("a")
>>> G = sg.Function("g", [x, a], [f(x, a).sum(), sg.grad(f(x, a).sum(), x)])
>>> v, g = G(np.zeros(3), 2.0)
>>> float(v), g.tolist()
(0.0, [2.0, 2.0, 2.0])
"""

from __future__ import annotations

import os
import re
from typing import Any, Sequence

import numpy as np

from .errors import DTypeError, InvalidInputError, ShapeError
from .native import NativeStructure, arrays_as_columns, columns_as_arrays

__all__ = ["external"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def external(name: str, input_shapes: Sequence[Any], output_shapes: Sequence[Any], *, source: str | None = None,
             library: Any = None, jvp: Any = None, vjp: Any = None, pattern: Any = None,
             input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None) -> Any:
    """A Function that calls the user's C function ``name`` (see the module docstring).

    Args:
        name: the C function's name (a C identifier); also the Function's name.
        input_shapes, output_shapes: one shape per argument / result array
            (``()`` for a scalar).
        source: C text defining ``name`` (exactly one of ``source`` and ``library``).
        library: path of a shared library exporting ``name``.
        jvp, vjp: derivative rules (as for ``sg.custom_jvp`` / ``sg.custom_vjp``), or None.
        pattern: the Jacobian pattern (flat outputs by flat inputs), default dense.
        input_names, output_names: names of the inputs and outputs.

    Returns:
        A Function usable like any other: called on symbols (one native call
        node), evaluated (VM: through the compiled code), compiled, mapped.

    Raises:
        InvalidInputError: a bad name, both or neither of source/library, a missing library.
        ShapeError: a bad shape, or a rule whose shapes disagree with the declared ones.

    >>> import numpy as np
    >>> twice = external("twice", [(2,)], [(2,)], source=(
    ...     "int twice(const double *const *a, double *const *r) { r[0][0] = 2 * a[0][0]; "
    ...     "r[0][1] = 2 * a[0][1]; return 0; }"))
    >>> twice(np.array([1.0, 2.5])).tolist()
    [2.0, 5.0]
    """
    from .custom import _rule_function

    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise InvalidInputError(f"external: name must be a C identifier (the C function's name), got {name!r}")
    if (source is None) == (library is None):
        raise InvalidInputError(f"external {name!r}: give exactly one of source= (C text) and library= (a shared "
                                f"library path)")
    if source is not None and not isinstance(source, str):
        raise InvalidInputError(f"external {name!r}: source must be C text (str), got {type(source).__name__}")
    if source is not None and not re.search(r"\b" + name + r"\s*\(", source):
        raise InvalidInputError(f"external {name!r}: the source does not mention a function {name}(...)")
    if library is not None:
        try:
            library = os.path.abspath(os.fspath(library))
        except TypeError:
            raise InvalidInputError(f"external {name!r}: library must be a path, got {library!r}") from None
        if not os.path.isfile(library):
            raise InvalidInputError(f"external {name!r}: library {library} does not exist")
        if '"' in library or "\\" in library or "\n" in library:
            raise InvalidInputError(f"external {name!r}: library path {library!r} has characters C strings "
                                    f"cannot hold plainly")
    ins = [_shape(s, name, "input", k) for k, s in enumerate(_sequence(input_shapes, name, "input_shapes"))]
    outs = [_shape(s, name, "output", k) for k, s in enumerate(_sequence(output_shapes, name, "output_shapes"))]
    if not outs:
        raise InvalidInputError(f"external {name!r}: needs at least one output")
    in_names = list(input_names) if input_names is not None else [f"i{k}" for k in range(len(ins))]
    out_names = list(output_names) if output_names is not None else [f"o{k}" for k in range(len(outs))]
    structure = _ExternalStructure(name, ins, outs, in_names, out_names, source, library)
    F = structure.function(name)
    structure.owner = F
    rules = {}
    for mode, rule in (("jvp", jvp), ("vjp", vjp)):
        if rule is not None:
            rules[mode] = _rule_function(F, rule, mode, "external")
    structure.rules = rules
    if pattern is not None:
        structure.given_pattern = _checked_pattern(pattern, structure, name)
    return F


def _sequence(value: Any, name: str, what: str) -> list:
    if not isinstance(value, (list, tuple)):
        raise ShapeError(f"external {name!r}: {what} must be a list of shapes, got {value!r}")
    return list(value)


def _shape(s: Any, name: str, kind: str, k: int) -> tuple:
    shape = (s,) if isinstance(s, (int, np.integer)) and not isinstance(s, bool) else s
    if not isinstance(shape, (tuple, list)) or not all(
            isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1 for n in shape):
        raise ShapeError(f"external {name!r}: {kind} {k} shape must be a tuple of positive ints, got {s!r}")
    return tuple(int(n) for n in shape)


def _checked_pattern(pattern: Any, s: "_ExternalStructure", name: str) -> Any:
    from .sparsity import Sparsity

    if not isinstance(pattern, Sparsity) or tuple(pattern.shape) != (s.n_results, s.n_operands):
        raise ShapeError(f"external {name!r}: pattern must be a Sparsity of shape ({s.n_results}, {s.n_operands}) "
                         f"(flat outputs by flat inputs), got {pattern!r}")
    return pattern


class _ExternalStructure(NativeStructure):
    """A user's C function; see the module docstring."""

    device = False  # the user's C is host code: no CUDA target
    savable = False  # a file holding C to compile later would carry code: not saved

    def to_data(self, index: dict) -> tuple:
        return ("native", "external", self.cname, self.source, self.library, self.in_shapes, self.out_shapes)

    def __init__(self, cname: str, ins: list, outs: list, in_names: list, out_names: list,
                 source: str | None, library: str | None) -> None:
        super().__init__(ins, outs, in_names, out_names)
        self.cname, self.source, self.library = cname, source, library
        self.label = f"external C function {cname}" + (f" from {library}" if library else "")
        self.rules: dict = {}
        self.given_pattern = None
        self.owner: Any = None
        self._compiled: Any = None

    def make_rules(self, F: Any) -> dict | None:
        return self.rules or None

    def pattern(self) -> Any:
        return self.given_pattern if self.given_pattern is not None else super().pattern()

    def evaluate(self, columns: list, width: int) -> list:
        arrays = columns_as_arrays(columns, self.in_shapes, width)
        if any(np.iscomplexobj(a) for a in arrays):
            raise DTypeError(f"external {self.cname}: a C function takes real numbers; complex step through it is "
                             f"not possible (differentiate with its jvp/vjp rules)")
        if self._compiled is None:
            self._compiled = self.owner.compile()
        out = self._compiled.batch(*arrays)
        return arrays_as_columns(list(out) if len(self.out_shapes) > 1 else [out], width)

    def c_function(self, fname: str, callees: dict) -> tuple[str, int]:
        # The text must start with the function (the backend prefixes "static " or a visibility macro), so
        # the user's source comes after it, its function renamed by the preprocessor to a name unique to
        # this program (two externals called "f" do not clash), declared at block scope before the call.
        n_in, n_out = len(self.in_shapes), len(self.out_shapes)
        sizes = [int(np.prod(s, dtype=np.int64)) for s in self.out_shapes]
        fail = [f"    for (long j = 0; j < {p}; ++j) res[{k}][j] = NAN;" for k, p in enumerate(sizes)]
        user = f"{fname}__user"
        lines = [f"void {fname}(const double *const *arg, double *const *res, double *w) {{",
                 f"  /* {self.label}: {n_in} input(s), {n_out} output(s) */", "  (void)w;"]
        if self.library is not None:
            lines += ["  extern void *dlopen(const char *, int);",
                      "  extern void *dlsym(void *, const char *);",
                      "  static int (*volatile call)(const double *const *, double *const *) = 0;",
                      "  if (!call) {",
                      f"    void *lib = dlopen(\"{self.library}\", 2 /* RTLD_NOW */);",
                      f"    if (lib) call = (int (*)(const double *const *, double *const *))dlsym(lib, "
                      f"\"{self.cname}\");",
                      "  }",
                      "  if (!call) {", *fail, "    return;", "  }",
                      "  if (call(arg, res) != 0) {", *fail, "  }", "}\n"]
            return "\n".join(lines), 0
        lines += [f"  int {user}(const double *const *, double *const *);",
                  f"  if ({user}(arg, res) != 0) {{", *fail, "  }", "}",
                  f"/* {self.label}: the user's source, {self.cname} renamed {user} */",
                  f"#define {self.cname} {user}", self.source.strip(), f"#undef {self.cname}\n"]
        return "\n".join(lines), 0
