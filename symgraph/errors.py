"""Every exception symgraph raises on bad input.

Each class subclasses :class:`SymgraphError` *and* the builtin a Python user
would expect (``ValueError`` for bad values and shapes, ``TypeError`` for bad
types), so ``except ValueError`` keeps working around symgraph calls.

>>> import symgraph as sg
>>> issubclass(sg.ShapeError, ValueError) and issubclass(sg.ShapeError, sg.SymgraphError)
True
"""

from __future__ import annotations


class SymgraphError(Exception):
    """Base class of every error symgraph raises on purpose."""


class NonNumericConstantError(SymgraphError, TypeError):
    """A value that is neither an expression nor a real number entered a graph."""


class SymbolicBoolError(SymgraphError, TypeError):
    """``bool()`` was asked of a symbolic expression (e.g. ``if x < y:``)."""


class ArityError(SymgraphError, TypeError):
    """An operation was applied to the wrong number of operands."""


class InvalidInputError(SymgraphError, ValueError):
    """A Function input is not a pure symbol, or a symbol is repeated."""


class FreeSymbolError(SymgraphError, ValueError):
    """An output depends on symbols that are not among the Function's inputs."""


class ArgumentCountError(SymgraphError, TypeError):
    """A Function was called with the wrong number of arguments."""


class ShapeError(SymgraphError, ValueError):
    """An argument or operand has the wrong shape."""


class DTypeError(SymgraphError, TypeError):
    """An argument has a dtype that cannot be evaluated (object, string, ...)."""


class SympyConversionError(SymgraphError, ValueError):
    """A SymPy expression uses a function or symbol symgraph cannot map."""


class DifferentiationError(SymgraphError, ValueError):
    """A derivative was requested with respect to something that is not a symbol, or with mismatched seeds."""


class CompileError(SymgraphError, RuntimeError):
    """The C compiler failed or is missing; the message carries its output."""


class MissingSolverError(SymgraphError, ImportError):
    """An optional solver package (e.g. cyipopt) is not installed."""


class OptimizerOptionError(SymgraphError, ValueError):
    """An optimizer option (level, rule or rule-set name) is not recognised."""


class OptionError(SymgraphError, TypeError, ValueError):
    """An option of ``compile``/``export_c`` has the wrong type or value (``jobs="a"``, ``flags=123``)."""


class OverwriteError(SymgraphError, FileExistsError):
    """``export_c`` would replace an existing file (pass ``overwrite=True`` to allow it)."""


class CompilerNotFoundError(CompileError):
    """No usable C compiler was found (the numpy VM still works without one)."""


class UnknownOpError(SymgraphError, KeyError):
    """An op name that is not in the op table (``sg.builder("nope")``)."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


class InvalidOpError(SymgraphError, TypeError):
    """``sg.apply`` got something that is not one of the op table's own ``Op`` records."""


class SerializationError(SymgraphError, ValueError):
    """A pickled or saved Function is malformed: wrong format or version, unknown op,
    operand out of range, inconsistent shapes."""


class NotPicklableError(SymgraphError, TypeError):
    """An object that cannot be pickled on its own (a bare Expr: pickle a Function of it)."""


class ConvergenceError(SymgraphError, ArithmeticError):
    """A rootfinder did not converge (raised by ``check_status`` and ``find_root`` of :mod:`symgraph.rootfinder`)."""


class MissingToolError(MissingSolverError):
    """An optional tool is not installed: Graphviz's ``dot``, matplotlib, casadi, dask (the message says how to get it)."""


class BackendWarning(UserWarning):
    """A note from the C backend: a fallback was taken (cache dir, compiler choice)."""


class CudaUnavailableError(CompileError):
    """``compile(target="cuda")`` cannot run here: CuPy, a CUDA GPU or a CUDA compiler (NVRTC, nvcc) is missing."""


class DeviceError(SymgraphError, ValueError):
    """A device array is on another GPU than the CUDA Function's, or cannot be read (DLPack), or no such GPU."""


class BatchMemoryError(SymgraphError, MemoryError):
    """A batch's arrays do not fit in device (or host) memory, and cannot be cut into chunks."""


class IndexOutOfRangeError(SymgraphError, IndexError):
    """An index table holds an index outside the axis it selects from (``sg.gather``).

    The message names the argument, the first bad position in it, the bad
    value and the valid range.
    """
