"""Standard test models, built with plain numpy code on symbol arrays.

Used by the examples, the benchmarks and the tests, so every part of the
project measures the same thing.

>>> import symgraph as sg
>>> x, f, g = luksan(5)
>>> x.shape, g.shape
((5,), (3,))
"""

from __future__ import annotations

import numpy as np

from .array import symbols
from .expr import building


def luksan_objective(x: np.ndarray):
    """Chained Rosenbrock objective ``sum(100*(x[i-1]**2 - x[i])**2 + (x[i-1] - 1)**2)``.

    Works on symbol arrays and on float arrays alike.

    >>> float(luksan_objective(np.ones(4)))
    0.0
    """
    a, b = x[:-1], x[1:]
    return np.sum(100 * (a**2 - b) ** 2 + (a - 1) ** 2)


def luksan_constraints(x: np.ndarray):
    """Luksan-Vlcek constraints, one per i in ``0 .. N-3``.

    ``3*x[i+1]**3 + 2*x[i+2] - 5 + sin(x[i+1]-x[i+2])*sin(x[i+1]+x[i+2])
    + 4*x[i+1] - x[i]*exp(x[i]-x[i+1]) - 3``

    >>> luksan_constraints(np.zeros(3)).tolist()
    [-8.0]
    """
    u, v, w = x[:-2], x[1:-1], x[2:]
    return (3 * v**3 + 2 * w - 5 + np.sin(v - w) * np.sin(v + w) + 4 * v
            - u * np.exp(u - v) - 3)


def luksan(n: int):
    """Symbols ``x`` (n,), objective ``f`` and constraints ``g`` (n-2,) of the Luksan problem.

    >>> x, f, g = luksan(3)
    >>> str(g[0])[:20]
    '3 * x[1]**3 + 2 * x['
    """
    with building():
        x = symbols("x", n)
        return x, luksan_objective(x), luksan_constraints(x)


def luksan_mapped(n: int):
    """The Luksan problem written with maps: ``(x, f, g)`` as :func:`luksan`, one call node each.

    One term Function mapped over the n-1 terms (``reduce="sum"``) and one
    constraint Function mapped over the n-2 constraints, on slices of x.

    >>> import symgraph as sg
    >>> x, f, g = luksan_mapped(4)
    >>> float(sg.Function("f", [x], [f])(np.ones(4))), g.shape
    (0.0, (2,))
    """
    from .function import Function

    a, b = symbols("a"), symbols("b")
    term = Function("luksan_term", [a, b], [luksan_objective(np.array([a, b], dtype=object))])
    u, v, w = symbols("u"), symbols("v"), symbols("w")
    con = Function("luksan_con", [u, v, w], [luksan_constraints(np.array([u, v, w], dtype=object))[0]])
    with building():
        x = symbols("x", n)
        f = term.map(n - 1, reduce="sum")(x[:-1], x[1:])
        g = con.map(n - 2)(x[:-2], x[1:-1], x[2:])
    return x, f, g
