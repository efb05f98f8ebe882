"""A map Function on the GPU with one thread per instance: the map's body as the kernel grid.

``M = body.map(n, shared=..., reduce=...)`` compiled for CUDA evaluates, at
each of N points, ``n`` independent instances of ``body``.  Emitted as one
Function (:mod:`codegen.cuda`), each thread would run all ``n`` instances of
its point (unrolled, or a loop when they are many): N threads for N * n
instances.  :class:`CudaMapFunction` instead compiles the *body* and runs
its kernel over the N * n instances, one thread each:

* a mapped argument ``(N, n) + s`` is the body's batch ``(N * n,) + s``
  (a reshape: no copy for the usual layouts), and of shape ``(n,) + s`` (the
  same instances at every point) it is repeated over the points;
* an argument the map shares between instances (``shared=``) is, when it
  is one value for every point, the body's shared argument: every thread
  reads the same array (stride 0, served by the cache), not a copy per
  instance; given per point, ``(N,) + s``, it is repeated over the instances;
* stacked outputs come back as ``(N, n) + s`` (a reshape of the body's
  ``(N * n,) + s``), summed ones (``reduce="sum"``) are the sum over the
  instance axis on the device (numpy's / CuPy's order of summation: within
  rounding of the CPU's sequential sum, not bitwise).

Everything else (layouts, device arrays, chunking, errors) is the body's
:class:`~codegen.cuda_runtime.CudaFunction` or
:class:`~codegen.cuda_runtime.CudaHostFunction`.

>>> import numpy as np, symgraph as sg
>>> x, p = sg.symbols("x", 2), sg.symbols("p")
>>> M = sg.Function("t", [x, p], [sg.sin(x) * p]).map(3, shared=["p"])
>>> grid_body(M).name, grid_body(sg.Function("f", [x], [x]))
('t', None)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from symgraph.batch import batch_arguments
from symgraph.errors import ShapeError

__all__ = ["CudaMapFunction", "grid_body"]


def grid_body(F: Any) -> Any:
    """The body Function whose kernel grid evaluates ``F`` (a map without sparse outputs), else None.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> body = sg.Function("sq", [x], [x * x])
    >>> grid_body(body.map(4)) is body, grid_body(body.fold(4))
    (True, None)
    """
    structure = getattr(F, "structure", None)
    if structure is None or structure.kind != "map":
        return None
    if any(sp is not None for sp in F.output_sparsity) or any(sp is not None for sp in structure.body.output_sparsity):
        return None
    return structure.body


class CudaMapFunction:
    """A map Function evaluated with one GPU thread per instance (see the module docstring).

    ``batch(*args, shared=(), **options)`` takes and returns what the map's
    own :meth:`~codegen.cuda_runtime.CudaFunction.batch` would (same shapes,
    options ``out``, ``layout``, ``chunk_points``); ``M(*args)`` is one point.

    Attributes:
        function: the map Function; ``body``: the compiled body (its ``program``,
        ``source``, ``work_size``, ``compile_seconds`` ... are this Function's).
    """

    def __init__(self, F: Any, body: Any) -> None:
        self.function = F
        self.body = body
        self.structure = F.structure
        self.name = F.name
        self.target = body.target
        self._single = F.n_out == 1

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("function", "body", "structure"):
            raise AttributeError(name)
        return getattr(self.body, name)  # program, source, work_size, compiler, cache_hit, ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.function!r}, one thread per instance of {self.structure.body.name})"

    def _xp(self) -> Any:
        return self.body._cupy if self.target == "cuda" else np

    def batch(self, *args: Any, shared: Any = (), **options: Any):
        """Evaluate N points of the map, one thread per point and instance.

        >>> import numpy as np, symgraph as sg
        >>> x, p = sg.symbols("x"), sg.symbols("p")
        >>> M = sg.Function("t", [x, p], [x * p]).map(3, shared=["p"], reduce="sum")
        >>> H = M.compile(target="cuda-host")                      # doctest: +SKIP
        >>> H.batch(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), 2.0).tolist()   # doctest: +SKIP
        [12.0, 30.0]
        """
        from .cuda_runtime import _BatchBase

        F, body, s = self.function, self.body, self.structure
        shared_k = _BatchBase._check_options(self, shared, options.get("layout", "soa"),
                                             options.get("out", "device" if self.target == "cuda" else "host"))
        convert = body._device_argument if self.target == "cuda" else body._host_argument
        arrays, batched, N = batch_arguments(F, args, convert)
        for k in shared_k:
            if batched[k]:
                raise ShapeError(f"{self.name}: argument {k} ({F.input_names[k]!r}) is listed in shared=, so it "
                                 f"must have the input's shape {F.input_shapes[k]}, got {tuple(arrays[k].shape)}")
        xp = self._xp()
        n = s.n
        inner, inner_shared = [], []
        for k, (a, b, shape) in enumerate(zip(arrays, batched, s.body.input_shapes)):
            shape = tuple(shape)
            if s.shared[k]:  # one value per instance: the body's shared argument, or repeated per instance
                if b:
                    inner.append(xp.repeat(xp.asarray(a), n, axis=0))
                else:
                    inner.append(a)
                    inner_shared.append(k)
            elif b:  # (N, n) + shape: the body's N * n points
                inner.append(a.reshape((N * n,) + shape))
            else:  # (n,) + shape, the same at every point
                whole = xp.asarray(a)
                inner.append(whole if N == 1 else xp.broadcast_to(whole, (N, n) + shape).reshape((N * n,) + shape))
        if len(inner_shared) == len(inner):  # nothing varies per instance (every input shared): still N * n rows
            inner[0] = xp.broadcast_to(xp.asarray(inner[0]), (N * n,) + tuple(s.body.input_shapes[0]))
            inner_shared = inner_shared[1:]
        results = body.batch(*inner, shared=inner_shared, **options)
        results = list(results) if isinstance(results, tuple) else [results]
        out = []
        for r, shape, reduced in zip(results, s.body.output_shapes, s.reduce):
            r = r.reshape((N, n) + tuple(shape))
            out.append(r.sum(axis=1) if reduced is not None else r)
        return out[0] if self._single else tuple(out)

    def __call__(self, *args: Any):
        """One point (a batch of one, on the host): what ``F(*args)`` returns."""
        results = self.batch(*args, out="host") if self.target == "cuda" else self.batch(*args)
        results = [results] if self._single else list(results)
        one = [np.asarray(r[0]) for r in results]
        one = [v[()] if v.ndim == 0 else v for v in one]
        return one[0] if self._single else tuple(one)
