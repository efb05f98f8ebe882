"""Loop rerolling in the C backend (codegen/reroll.py): repeated straight-line code becomes loops.

Oracles: the same Function compiled without rerolling (``program(..., loops=False)``), which must
give bitwise the same values (rerolling changes no floating-point operation, only where the code
of the repeated iterations lives), and the numpy VM.  Each test also checks that loops were
really emitted, so a finder that finds nothing cannot pass.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symgraph as sg
from codegen import build, c99, reroll
from codegen.runtime import CompiledFunction
from strategies import INTERESTING, OPERATIONS

LOOP = "for (long r = 1;"


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SYMGRAPH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "symgraph-cache"))


def compiled(F, loops: bool, chunk_size: int = c99.DEFAULT_CHUNK, flags=("-O1",)) -> CompiledFunction:
    """``F`` compiled as given (no optimizer), with or without rerolled loops."""
    prog = c99.program(F, chunk_size=chunk_size, loops=loops)
    units = c99.translation_units(prog, F, 1)
    library = build.build(units, prog.cdef, None, flags)
    return CompiledFunction(F, F, prog, library, tuple(flags))


def same(a, b) -> bool:
    """Bitwise equality of every output, NaNs equal."""
    for x, y in zip(a, b):
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        both_nan = np.isnan(x) & np.isnan(y)
        if not np.all(both_nan | (x.view(np.int64) == y.view(np.int64))):
            return False
    return True


def close_to_vm(F, C, args) -> None:
    for c, v in zip(C(*args), F(*args)):
        np.testing.assert_allclose(np.asarray(c, dtype=float), np.asarray(v, dtype=float), rtol=1e-13, atol=1e-300,
                                   equal_nan=True)


def check(F, args, chunk_size: int = c99.DEFAULT_CHUNK) -> str:
    """Rerolled and straight C agree bitwise, and with the VM; returns the rerolled source."""
    rolled, straight = compiled(F, True, chunk_size), compiled(F, False, chunk_size)
    assert same(rolled(*args), straight(*args))
    close_to_vm(F, rolled, args)
    assert LOOP not in straight.source
    return rolled.source


# ---------------------------------------------------------------- random repeated bodies

@st.composite
def repeated_models(draw):
    """A random scalar program applied to every row of X, with a running reduction over the rows.

    Every row's instance reads its own row (inputs step through ``arg[0]``), one shared parameter,
    constants, and the previous row's accumulator (a loop-carried value); its outputs are stored
    into consecutive entries.  Returns (Function, n).
    """
    ops = [op for op in OPERATIONS if op.name not in ("polygamma",)]
    width = draw(st.integers(1, 3))
    program = []
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(ops))
        picks = [draw(st.integers(0, 10 ** 6)) for _ in range(op.arity)]
        constants = [draw(st.sampled_from(INTERESTING)) for _ in range(op.arity)]
        program.append((op, picks, constants))
    n = draw(st.integers(5, 24))
    X, p = sg.symbols("X", (n, width)), sg.symbols("p")
    acc = sg.const(0.0)
    rows, accs = [], []
    for r in range(n):
        pool = [*X[r], p, acc]
        for op, picks, constants in program:
            if op.name == "powi":
                operands = [pool[picks[0] % len(pool)], float(picks[1] % 7 - 2)]
            else:
                operands = [pool[pick % len(pool)] if pick % 5 else sg.const(c) for pick, c in zip(picks, constants)]
                operands[0] = pool[picks[0] % len(pool)]
            pool.append(sg.apply(op, *operands))
        acc = pool[-1] + acc if draw(st.booleans()) else acc + pool[-1]
        rows.append(pool[-1])
        accs.append(acc)
    with np.errstate(all="ignore"):  # constants folded at build time may be inf * 0 (NaN, as the C computes)
        outputs = [np.array(rows, dtype=object), acc,
                   np.array(accs, dtype=object)[::-1] * np.array(rows, dtype=object)]
    return sg.Function("rep", [X, p], outputs), n, width


@settings(max_examples=40)
@given(repeated_models(), st.data())
def test_random_repeated_bodies_equal_the_straight_code_bitwise(model, data):
    F, n, width = model
    values = st.floats(-3, 3, allow_nan=False, allow_infinity=False) | st.sampled_from([0.0, -0.0, 1e300, -1e-300])
    X = np.array(data.draw(st.lists(values, min_size=n * width, max_size=n * width))).reshape(n, width)
    p = data.draw(values)
    check(F, (X, p))
    check(F, (X, p), chunk_size=7)  # loops cut by part boundaries, values crossing parts in w


def test_repeated_bodies_are_emitted_as_loops():
    """Most examples of the strategy have loops (the property test above would be vacuous otherwise)."""
    X, p = sg.symbols("X", (40, 2)), sg.symbols("p")
    acc = sg.const(0.0)
    rows = []
    for r in range(40):
        v = sg.sin(X[r, 0]) * p + X[r, 1] ** 2
        acc = acc + v
        rows.append(v)
    F = sg.Function("rep", [X, p], [np.array(rows, dtype=object), acc])
    source = check(F, (np.random.default_rng(0).standard_normal((40, 2)), 0.7))
    assert source.count(LOOP) >= 1
    assert c99.program(F).n_ops < c99.program(F, loops=False).n_ops / 3


# ---------------------------------------------------------------- the shapes issue 10 meets

def test_gradient_sums_of_a_mapped_model_with_shared_parameters():
    """GMM-like: per-parameter gradient sums res[k][j] = w[a+j] + ... over a map's results."""
    d, k, n = 6, 4, 30
    x, mu, q = sg.symbols("x", d), sg.symbols("mu", d), sg.symbols("q", d)
    z = (x - mu) * sg.exp(q)
    term = sg.Function("term", [x, mu, q], [np.sum(q) - 0.5 * np.sum(z * z)])
    mus, qs, X = sg.symbols("mus", (k, d)), sg.symbols("qs", (k, d)), sg.symbols("X", (n, d))
    comp = sg.Function("point", [x, mus, qs], [np.sum(term.map(k, shared=["x"])(x, mus, qs))])
    total = comp.map(n, shared=[1, 2], reduce="sum")(X, mus, qs)
    objective = total + 0.5 * np.sum(sg.exp(2 * qs)) + np.sum(mus * mus)
    F = sg.Function("gmmish", [mus, qs, X], [objective, sg.grad(objective, mus), sg.grad(objective, qs)])
    G = F.optimize(1)
    rng = np.random.default_rng(1)
    args = (rng.standard_normal((k, d)), 0.1 * rng.standard_normal((k, d)), rng.standard_normal((n, d)))
    source = check(G, args)
    assert source.count(LOOP) >= 1
    assert c99.program(G).n_ops < c99.program(G, loops=False).n_ops


def test_carried_chain_and_values_read_after_the_loop():
    """A running sum read later in reverse order: carried values, and middle values kept in an array."""
    n = 50
    x = sg.symbols("x", n)
    s, sums = sg.const(0.0), []
    for i in range(n):
        s = s + sg.cos(x[i])
        sums.append(s)
    later = [sums[i] * sums[n - 1 - i] for i in range(n)]
    F = sg.Function("chain", [x], [np.array(later, dtype=object), sg.fmax(s, x[0])])
    source = check(F, (np.linspace(-2, 2, n),))
    assert LOOP in source and "double e" in source  # the spilled middle values


def test_elementwise_model_with_powers_and_helpers():
    n = 64
    x, y = sg.symbols("x", n), sg.symbols("y", n)
    F = sg.Function("elem", [x, y], [x ** 3 * y - 1 / (x * x + 1), sg.tanh(y) ** -2 + sg.atan2(x, y)])
    rng = np.random.default_rng(2)
    source = check(F, (rng.standard_normal(n), rng.standard_normal(n)))
    assert LOOP in source


def test_the_same_graph_gives_the_same_c():
    x = sg.symbols("x", 30)
    F = sg.Function("det", [x], [sg.sin(x) * x])
    assert c99.generate(F) == c99.generate(F)


# ---------------------------------------------------------------- the finder itself

def test_find_loops_rejects_what_a_loop_cannot_read():
    m = 12
    key = np.zeros(m, dtype=np.int64)
    # each instruction reads the value two before it: two iterations back, not a loop of period 1
    arr = np.full((m, 1), reroll.LOCAL, dtype=np.int64)
    idx = (100 + np.arange(m) - 2)[:, None]
    loops = reroll.find_loops(key, arr, idx, 1, 100, np.full(m, -1), min_saved=2)
    assert all(lp.period != 1 for lp in loops)
    # a different constant per instruction is no loop
    arr = np.full((m, 1), reroll.CONST, dtype=np.int64)
    assert reroll.find_loops(key, arr, np.arange(m)[:, None], 1, 100, np.full(m, -1), min_saved=2) == []
    # the same constant is
    loops = reroll.find_loops(key, arr, np.zeros((m, 1), dtype=np.int64), 1, 100, np.full(m, -1), min_saved=2)
    assert [(lp.start, lp.period, lp.count) for lp in loops] == [(0, 1, m)]


def test_find_loops_spills_values_read_after_the_loop():
    m = 10
    key = np.zeros(m, dtype=np.int64)
    arr = np.full((m, 1), reroll.ARRAY0, dtype=np.int64)
    idx = np.arange(m)[:, None]
    last = np.full(m, -1)
    last[4] = 20  # read by an instruction after the loop
    (loop,) = reroll.find_loops(key, arr, idx, 1, 100, last, min_saved=2)
    assert (loop.period, loop.count, loop.spilled) == (1, m, (0,))


def _plain_savings(key, arr, idx, periods):
    """The loop search written plainly, row by row (the reference for reroll._savings)."""
    m = len(key)
    saved = np.zeros((len(periods), m), dtype=np.int64)
    for row, L in enumerate(periods):
        def matches(i):
            return key[i] >= 0 and key[i] == key[i + L] and np.array_equal(arr[i], arr[i + L])
        run = 0
        for i in range(m - 2 * L - 1, -1, -1):
            regular = matches(i) and matches(i + L) and np.array_equal(idx[i + L] - idx[i], idx[i + 2 * L] - idx[i + L])
            run = run + 1 if regular else 0
            saved[row, i] = (run // L) * L
    return saved


def test_savings_match_a_plain_search():
    rng = np.random.default_rng(2)
    for _ in range(60):
        m, P = int(rng.integers(8, 120)), int(rng.integers(1, 5))
        key = np.where(rng.random(m) < 0.05, -1 - np.arange(m), np.arange(m) % P)
        arr = np.tile(rng.integers(-1, 4, (P, 3)), (m // P + 1, 1))[:m]
        arr[rng.random((m, 3)) < 0.02] = 7
        idx = (np.arange(m)[:, None] // P) * rng.integers(-2, 3, (1, 3)) + np.tile(rng.integers(0, 9, (P, 3)), (m // P + 1, 1))[:m]
        idx[rng.random((m, 3)) < 0.02] += 1
        periods = list(range(1, max(2, m // 4)))
        assert np.array_equal(reroll._savings(key, arr, idx, periods), _plain_savings(key, arr, idx, periods))


def test_row_ids_are_equal_exactly_for_equal_rows():
    rng = np.random.default_rng(3)
    rows = rng.integers(-3, 3, (500, 4)) * np.array([1, 10**12, 1, 7])  # a wide column is renumbered
    ids = reroll.row_ids(rows)
    same = (rows[:, None, :] == rows[None, :, :]).all(axis=2)
    assert np.array_equal(ids[:, None] == ids[None, :], same)
