"""The C backend of symgraph: C99 emission, compilation with a disk cache, fast calls, export.

* :mod:`codegen.c99` -- Tape -> C99 source (``F.c_code()``, ``F.c_source``).
* :mod:`codegen.build` -- compile with the system C compiler, cache, load with cffi.
* :mod:`codegen.runtime` -- :class:`~codegen.runtime.CompiledFunction` (``F.compile()``).
* :mod:`codegen.export` -- standalone ``NAME.c``/``NAME.h``/``NAME_demo.c`` (``F.export_c(dir)``).

It reads only a Function's Tape and the op table; ``symgraph`` never imports it at import time.

>>> import symgraph as sg
>>> x = sg.symbols("x")
>>> float(sg.Function("twice", [x], [2 * x]).compile()(4.0))
8.0
"""

from __future__ import annotations

from .c99 import generate, program
from .export import export_c
from .runtime import CompiledFunction, compile_function

__all__ = ["generate", "program", "export_c", "CompiledFunction", "compile_function"]
