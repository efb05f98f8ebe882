"""Hypothesis strategies and oracles shared by the test suite.

Random graphs over the op table: a graph is built step by step, each step
applying a random op of the table to operands drawn from the symbols, earlier
nodes and interesting constants, so every op (and every new op added to the
table) is exercised.  Oracles: complex-step derivatives, and building and
running an exported demo with a real C compiler.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import strategies as st

import symgraph as sg
from symgraph.ops import SCALAR_OPS

OPERATIONS = list(SCALAR_OPS)  # call/result are structural, never drawn
INTERESTING = [0.0, -0.0, 1.0, -1.0, 0.5, 2.0, -3.0, 1e-8, 1e8, 3.141592653589793]


@dataclass
class RandomGraph:
    """Input symbols (scalars), output expressions, and the ops used."""

    inputs: list
    outputs: list
    ops: list

    def function(self, name: str = "rand") -> sg.Function:
        """The graph frozen as a Function of the scalar inputs."""
        return sg.Function(name, self.inputs, [np.array(self.outputs, dtype=object)])


@st.composite
def random_graphs(draw, max_inputs: int = 3, max_steps: int = 12, ops=None, smooth_only: bool = False):
    """A :class:`RandomGraph` with up to ``max_steps`` random operations."""
    ops = ops or [op for op in OPERATIONS if not (smooth_only and op.has("flat"))]
    n_in = draw(st.integers(1, max_inputs))
    inputs = [sg.symbols(f"v{i}") for i in range(n_in)]
    pool = list(inputs)
    used = []
    for _ in range(draw(st.integers(1, max_steps))):
        op = draw(st.sampled_from(ops))
        if op.name == "powi":
            operands = [draw(st.sampled_from(pool)), float(draw(st.integers(-4, 5)))]
        elif op.name == "polygamma":  # a constant integer order (the derivative of order n is n + 1)
            operands = [float(draw(st.integers(0, 3))), draw(st.sampled_from(pool))]
        else:
            operands = [draw(st.one_of(st.sampled_from(pool), st.sampled_from(INTERESTING).map(sg.const)))
                        if i else draw(st.sampled_from(pool)) for i in range(op.arity)]
        node = sg.apply(op, *operands)
        used.append(op.name)
        pool.append(node)
    n_out = draw(st.integers(1, min(3, len(pool))))
    outputs = pool[-n_out:]
    return RandomGraph(inputs, outputs, used)


def points(n_inputs: int, wide: bool = True):
    """Input values: ordinary reals, plus zeros, signs, huge and tiny values when ``wide``."""
    ordinary = st.floats(-3.0, 3.0, allow_nan=False, allow_infinity=False)
    special = st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e-300, -1e-300, 1e300, -1e300, 0.5, 1e-8])
    value = st.one_of(ordinary, special) if wide else ordinary
    return st.lists(value, min_size=n_inputs, max_size=n_inputs).map(lambda v: np.array(v, dtype=np.float64))


def complex_step_jacobian(F, x0: np.ndarray, h: float = 1e-30) -> np.ndarray:
    """Dense Jacobian of a vector function at ``x0`` by complex step (the oracle of AD tests)."""
    cols = []
    for k in range(len(x0)):
        xc = x0.astype(complex)
        xc[k] += h * 1j
        cols.append(np.imag(np.atleast_1d(F(xc))) / h)
    return np.column_stack(cols)


def complex_step_gradient(F, x0: np.ndarray, h: float = 1e-30) -> np.ndarray:
    """Gradient of a scalar function at ``x0`` by complex step."""
    out = np.empty(len(x0))
    for k in range(len(x0)):
        xc = x0.astype(complex)
        xc[k] += h * 1j
        out[k] = np.imag(F(xc)) / h
    return out


def compile_and_run(paths: dict, workdir, flags: list, args=()) -> list[list[float]]:
    """Compile an exported source alone (``flags`` must hold the compiler) and with its demo; run the demo.

    Returns the numbers of each output line the demo prints.
    """
    done = subprocess.run(flags + ["-c", paths["source"], "-o", str(workdir / "f.o")], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    exe = workdir / "demo"
    done = subprocess.run(flags + [paths["source"], paths["demo"], "-o", str(exe), "-lm"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    run = subprocess.run([str(exe), *map(repr, args)], capture_output=True, text=True, check=True)
    return [[float(v) for v in line.split(":", 1)[1].split()] for line in run.stdout.strip().splitlines()]


def logsumexp(v):
    """``log(sum(exp(v)))`` of a 1-D object array, shifted by its maximum (fmax chain)."""
    m = v[0]
    for e in v[1:]:
        m = sg.fmax(m, e)
    return m + sg.log(np.sum(sg.exp(v - m)))


def small_gmm(d: int, k: int, n: int, q_prior: bool = True):
    """``(inputs, objective)``: a GMM log likelihood as a map over points of a map over components.

    Inputs ``[alphas, means, qs, ls, points]``; the objective adds
    ``-n logsumexp(alphas)`` and a Wishart-like prior ``0.5 (sum exp(2 qs) + sum ls^2)``
    (without the ``qs`` term when ``q_prior`` is False).
    """
    rows, cols = np.tril_indices(d, -1)
    xi, alpha, mu, q, l = (sg.symbols("x", d), sg.symbols("alpha"), sg.symbols("mu", d), sg.symbols("q", d),
                           sg.symbols("l", len(rows)))
    z = xi - mu
    qz = sg.exp(q) * z
    for t, (i, j) in enumerate(zip(rows, cols)):
        qz[i] = qz[i] + l[t] * z[j]
    component = sg.Function("component", [xi, alpha, mu, q, l], [alpha + np.sum(q) - 0.5 * np.sum(qz * qz)])
    alphas, means, qs, ls = (sg.symbols("alphas", k), sg.symbols("means", (k, d)), sg.symbols("qs", (k, d)),
                             sg.symbols("ls", (k, len(rows))))
    per = component.map(k, shared=["x"])(xi, alphas, means, qs, ls)
    point = sg.Function("point", [xi, alphas, means, qs, ls], [logsumexp(per)])
    x = sg.symbols("points", (n, d))
    total = point.map(n, shared=[1, 2, 3, 4], reduce="sum")(x, alphas, means, qs, ls)
    prior = (np.sum(sg.exp(2 * qs)) if q_prior else 0) + np.sum(ls * ls)
    return [alphas, means, qs, ls, x], total - n * logsumexp(alphas) + 0.5 * prior


# Map options for a body of three inputs and two outputs: which inputs are shared, each output's
# reduce, and the instance count.
MAP_FLAGS = st.tuples(st.lists(st.booleans(), min_size=3, max_size=3),
                      st.lists(st.sampled_from([None, "sum"]), min_size=2, max_size=2), st.integers(1, 4))


@pytest.fixture(scope="module", autouse=True)
def module_cache(tmp_path_factory):
    """Each test module that imports this compiles into an empty cache of its own (SYMGRAPH_CACHE_DIR)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path_factory.mktemp("symgraph-cache")))
        yield
