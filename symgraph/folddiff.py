"""Derivative Functions of folds: folds again (forward: state and tangent together; reverse: backwards).

For a fold ``R`` of body ``F`` (``s_{i+1}, e_i = F(s_i, u_i, p)``), the flat
derivative Functions that :mod:`symgraph.calldiff` asks for are built
without unrolling:

* **forward** ``R_jvp(x, tx) -> ty``: one fold of a body ``G`` whose state
  is ``[s, ts]`` (the state and its tangent, flat) and which calls ``F``
  and ``F``'s jvp; its per-step inputs are ``u_i`` and their tangents, its
  shared ones ``p`` and theirs; its per-step outputs the tangents of ``e_i``.
* **reverse** ``R_vjp(x, ybar) -> xbar``: the states ``s_1 .. s_n`` from a
  forward fold (all stored), then a fold over the steps in reverse order of
  a body ``H`` whose state is ``[lam, acc]``: the cotangent of the state
  and the running sum of the shared inputs' cotangents.  Step ``i`` pulls
  ``lam`` (plus the cotangents of ``e_i``) back through ``F``'s vjp at
  ``(s_i, u_i, p)``; the state part of the result plus the direct cotangent
  of ``s_i`` is the next ``lam``; the ``u_i`` part is a per-step output.
  At the end ``lam`` is the initial state's cotangent, ``acc`` the shared
  inputs'.

Both are specialized to the fold as a whole (every body operand and result
that has a derivative), not per call site: unused seeds are zeros.  Being
ordinary Functions that call folds, their own derivatives (Hessians) come
the same way.

>>> import numpy as np, symgraph as sg
>>> s, a = sg.symbols("s"), sg.symbols("a")
>>> R = sg.Function("step", [s, a], [a * s]).fold(3, shared=["a"], last=True)
>>> S0, A = sg.symbols("S0"), sg.symbols("A")
>>> g = sg.grad(R(S0, A), [S0, A])      # d(a^3 s0) = (a^3, 3 a^2 s0)
>>> sg.Function("g", [S0, A], [g])(2.0, 3.0)
array([27., 54.])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .expr import const
from .map import sizes

_ZERO = const(0.0)


def _flat(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=object).reshape(-1)


def _outs(value: Any) -> list:
    return list(value) if isinstance(value, tuple) else [value]


def _active(F: Any) -> tuple[tuple, tuple]:
    """Body results that depend on some operand, and operands some result depends on (flat)."""
    from . import calldiff

    rows = tuple(j for j, c in enumerate(calldiff.row_columns(F)) if c)
    cols = tuple(i for i, r in enumerate(calldiff.column_rows(F)) if r)
    return rows, cols


def _m_args(s: Any, x: np.ndarray) -> list:
    """The fold's arguments as arrays shaped like its inputs, cut out of its flat operands ``x``."""
    return [x[off:off + size].reshape(shape) for off, size, shape in
            zip(s.ins.offsets.tolist(), sizes(s.input_shapes()), s.input_shapes())]


def fold_derivative(R: Any, s: Any, mode: str, rows: tuple, cols: tuple) -> Any:
    """The flat ``R_jvp`` (mode ``"jvp"``) or ``R_vjp`` (``"vjp"``) of fold ``R`` with structure ``s``."""
    from .array import symbols
    from .function import Function

    x = symbols("x", s.n_operands)
    if mode == "jvp":
        tx = symbols("tx", len(cols))
        full = np.full(s.n_operands, _ZERO, dtype=object)
        full[list(cols)] = tx
        results = _jvp_results(R, s, x, full)
        out = results[list(rows)]
        return Function(f"{R.name}_jvp", [x, tx], [out], input_names=["x", "tx"], output_names=["ty"])
    ybar = symbols("ybar", len(rows))
    full = np.full(s.n_results, _ZERO, dtype=object)
    full[list(rows)] = ybar
    xbar = _vjp_operands(R, s, x, full)
    return Function(f"{R.name}_vjp", [x, ybar], [xbar[list(cols)]], input_names=["x", "ybar"],
                    output_names=["xbar"])


# ------------------------------------------------------------------ forward
def _tangent_fold(R: Any, s: Any) -> Any:
    """The fold of ``G(S2, u.., tu..) -> ([s', ts'], te..)``, built once per fold (cached on ``R``)."""
    from . import calldiff
    from .array import symbols
    from .call import call_function
    from .fold import fold_function
    from .function import Function

    def build() -> Any:
        body, m = s.body, s.m
        rows_b, cols_b = _active(body)
        D = calldiff.forward_function(body, rows_b, cols_b).function
        shapes, names = body.input_shapes, body.input_names
        S2 = symbols("S2", 2 * m)
        xs = [symbols(nm, tuple(sh)) if len(sh) else symbols(nm) for nm, sh in zip(names[1:], shapes[1:])]
        ts = [symbols(f"t_{nm}", tuple(sh)) if len(sh) else symbols(f"t_{nm}") for nm, sh in
              zip(names[1:], shapes[1:])]
        state = S2[:m].reshape(shapes[0])
        outs = _outs(call_function(body, [state] + xs))
        xflat = np.concatenate([S2[:m]] + [_flat(a) for a in xs])
        tflat = np.concatenate([S2[m:]] + [_flat(a) for a in ts])
        ty = np.full(s.outs.body_total, _ZERO, dtype=object)
        if cols_b:
            ty[list(rows_b)] = _flat(call_function(D, [xflat, tflat[list(cols_b)]]))
        outputs = [np.concatenate([_flat(outs[0]), ty[:m]])]
        for k in range(1, body.n_out):
            off, size = int(s.outs.body_offsets[k]), int(s.outs.sizes[k])
            outputs.append(ty[off:off + size].reshape(body.output_shapes[k]))
        G = Function(f"{body.name}_fjvp", [S2] + xs + ts, outputs,
                     input_names=["S2"] + [f"u{k}" for k in range(1, body.n_in)]
                     + [f"tu{k}" for k in range(1, body.n_in)])
        K = body.n_in - 1
        shared = [k for k in range(1, body.n_in) if s.shared[k]] + [K + k for k in range(1, body.n_in)
                                                                      if s.shared[k]]
        return fold_function(G, s.n, shared=shared, last=s.last)

    return calldiff._cached(R, "fold-jvp", build)


def _jvp_results(R: Any, s: Any, x: np.ndarray, tangents: np.ndarray) -> np.ndarray:
    """The tangents of all of ``R``'s results (flat) given its operands ``x`` and their ``tangents``."""
    from .call import call_function

    TF = _tangent_fold(R, s)
    m = s.m
    args, targs = _m_args(s, x), _m_args(s, tangents)
    S2 = np.concatenate([_flat(args[0]), _flat(targs[0])])
    outs = _outs(call_function(TF, [S2] + args[1:] + targs[1:]))
    states = np.asarray(outs[0], dtype=object)
    first = states[m:] if s.last else states[:, m:]
    return np.concatenate([_flat(first)] + [_flat(o) for o in outs[1:]])


# ------------------------------------------------------------------ reverse
def _adjoint_folds(R: Any, s: Any) -> tuple[Any, Any]:
    """``(every-state forward fold, reverse fold of H)``, built once per fold (cached on ``R``)."""
    from . import calldiff
    from .array import symbols
    from .call import call_function
    from .fold import fold_function
    from .function import Function

    def build() -> tuple:
        body, m = s.body, s.m
        rows_b, cols_b = _active(body)
        D = calldiff.reverse_function(body, rows_b, cols_b).function
        shapes, names = body.input_shapes, body.input_names
        per_step = [k for k in range(1, body.n_in) if not s.shared[k]]
        shared = [k for k in range(1, body.n_in) if s.shared[k]]
        size = sizes(shapes)
        msh = sum(size[k] for k in shared)
        L = symbols("L", m + msh)
        sprev = symbols("sprev", m)
        xs = {k: symbols(names[k], tuple(shapes[k])) if len(shapes[k]) else symbols(names[k])
              for k in range(1, body.n_in)}
        ebars = [symbols(f"ebar{k}", tuple(body.output_shapes[k])) if len(body.output_shapes[k])
                 else symbols(f"ebar{k}") for k in range(1, body.n_out)]
        dnext = symbols("dnext", m)
        xflat = np.concatenate([sprev] + [_flat(xs[k]) for k in range(1, body.n_in)])
        yfull = np.concatenate([L[:m]] + [_flat(e) for e in ebars])
        xbar = np.full(len(xflat), _ZERO, dtype=object)
        if rows_b:
            xbar[list(cols_b)] = _flat(call_function(D, [xflat, yfull[list(rows_b)]]))
        offsets = s.ins.body_offsets.tolist()
        lam = xbar[:m] + dnext
        acc = L[m:] + (np.concatenate([xbar[offsets[k]:offsets[k] + size[k]] for k in shared]) if shared
                       else np.empty(0, dtype=object))
        outputs = [np.concatenate([lam, acc])]
        outputs += [xbar[offsets[k]:offsets[k] + size[k]].reshape(shapes[k]) for k in per_step]
        inputs = [L, sprev] + [xs[k] for k in per_step] + ebars + [dnext] + [xs[k] for k in shared]
        n_front = 2 + len(per_step) + len(ebars) + 1
        H = Function(f"{body.name}_fvjp", inputs, outputs,
                     input_names=["L", "sprev"] + [f"u{k}" for k in per_step] + [f"ebar{k}" for k in
                                                                                 range(1, body.n_out)]
                     + ["dnext"] + [f"p{k}" for k in shared])
        reverse = fold_function(H, s.n, shared=list(range(n_front, n_front + len(shared))), last=True)
        forward = R if not s.last else fold_function(body, s.n, shared=shared, last=False)
        return forward, reverse

    return calldiff._cached(R, "fold-vjp", build)


def _vjp_operands(R: Any, s: Any, x: np.ndarray, ybar: np.ndarray) -> np.ndarray:
    """The cotangents of all of ``R``'s operands (flat) given the cotangents ``ybar`` of all its results."""
    from .call import call_function

    forward, reverse = _adjoint_folds(R, s)
    body, m, n = s.body, s.m, s.n
    args = _m_args(s, x)
    states = np.asarray(_outs(call_function(forward, args))[0], dtype=object).reshape(n, m)
    sprev = np.concatenate([_flat(args[0]).reshape(1, m), states[:-1]])
    y0 = ybar[:s.outs.sizes[0] if s.last else n * m]
    if s.last:
        lam0, dnext = y0, np.full((n, m), _ZERO, dtype=object)
    else:
        y0 = y0.reshape(n, m)
        lam0 = y0[n - 1]
        dnext = np.concatenate([np.full((1, m), _ZERO, dtype=object), y0[:-1]])
    ebars = []
    for k in range(1, body.n_out):
        off, size = int(s.outs.offsets[k]), int(s.outs.sizes[k])
        ebars.append(ybar[off:off + n * size].reshape((n,) + tuple(body.output_shapes[k]))[::-1])
    per_step = [k for k in range(1, body.n_in) if not s.shared[k]]
    shared = [k for k in range(1, body.n_in) if s.shared[k]]
    msh = sum(int(s.ins.sizes[k]) for k in shared)
    L0 = np.concatenate([_flat(lam0), np.full(msh, _ZERO, dtype=object)])
    rev = [L0, sprev[::-1]] + [args[k][::-1] for k in per_step] + ebars + [dnext[::-1]] + [args[k] for k in shared]
    outs = _outs(call_function(reverse, rev))
    final = _flat(outs[0])
    xbar = np.full(s.n_operands, _ZERO, dtype=object)
    xbar[:m] = final[:m]
    at = m
    for k in shared:
        off, size = int(s.ins.offsets[k]), int(s.ins.sizes[k])
        xbar[off:off + size] = final[at:at + size]
        at += size
    for q, k in enumerate(per_step):
        off, size = int(s.ins.offsets[k]), int(s.ins.sizes[k])
        xbar[off:off + n * size] = _flat(np.asarray(outs[1 + q], dtype=object)[::-1])
    return xbar
