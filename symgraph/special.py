"""Special functions built from the op table's ``lgamma`` and ``polygamma``.

``sg.lgamma``, ``sg.digamma``, ``sg.polygamma`` and ``sg.erfinv`` are ops
(one node each, see :mod:`symgraph.ops`); this module adds the two that are
small graphs over them: ``trigamma`` and ``multigammaln``.

>>> import numpy as np, symgraph as sg
>>> a = sg.symbols("a")
>>> F = sg.Function("f", [a], [sg.multigammaln(a, 3), sg.trigamma(a)])
>>> [round(float(v), 10) for v in F(2.5)]
[1.8809954616, 0.4903577561]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .array import builder
from .errors import InvalidInputError

_LGAMMA = builder("lgamma")
_POLYGAMMA = builder("polygamma")


def trigamma(x: Any) -> Any:
    """``polygamma(1, x)``, the derivative of digamma, elementwise.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> str(sg.trigamma(x))
    'polygamma(1, x)'
    >>> round(float(sg.Function("t", [x], [sg.trigamma(x)])(1.0)), 12)  # pi**2 / 6
    1.644934066848
    """
    return _POLYGAMMA(1.0, x)


def multigammaln(a: Any, d: int) -> Any:
    """Log of the multivariate gamma function of dimension ``d``, as ``scipy.special.multigammaln``.

    ``log Gamma_d(a) = d (d - 1)/4 log(pi) + sum_{j=0}^{d-1} lgamma(a - j/2)``,
    a sum of ``d`` ``lgamma`` nodes, so it differentiates and compiles like any
    graph (the normalizer of the Wishart and inverse-Wishart densities).  ``a``
    is an Expr, a number or an array (elementwise); ``d`` a constant integer
    ``>= 1``.  Gamma_d is defined for ``a > (d - 1)/2``: a numeric ``a`` below
    that raises, as SciPy does; a symbolic one gives the sum's value there.

    >>> import numpy as np, scipy.special, symgraph as sg
    >>> nu = sg.symbols("nu")
    >>> F = sg.Function("wishart_norm", [nu], [sg.multigammaln(nu / 2, 4)])
    >>> bool(np.isclose(F(7.0), scipy.special.multigammaln(3.5, 4), rtol=1e-14))
    True
    >>> sg.multigammaln(sg.symbols("x", 3), 2).shape
    (3,)
    """
    if isinstance(d, bool) or not isinstance(d, (int, np.integer, float, np.floating)) or \
            not float(d).is_integer() or d < 1:
        raise InvalidInputError(f"multigammaln: d must be an integer >= 1 (the dimension), got {d!r}")
    d = int(d)
    numbers = np.asarray(a, dtype=object) if not hasattr(a, "op") else None
    if numbers is not None and all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                                   for v in numbers.reshape(-1)):
        if (np.asarray(numbers, dtype=np.float64) <= 0.5 * (d - 1)).any():
            raise InvalidInputError(f"multigammaln: a must be > (d - 1)/2 = {0.5 * (d - 1)}, got {a!r}")
    if isinstance(a, (list, tuple)):
        a = np.asarray(a, dtype=object)
    total = _LGAMMA(a)
    for j in range(1, d):
        total = total + _LGAMMA(a - 0.5 * j)
    return 0.25 * d * (d - 1) * math.log(math.pi) + total if d > 1 else total
