"""Irregular copies in and out of calls as index tables (codegen/glue.py), against the numpy VM.

A map called on rows gathered by an index table (bundle adjustment:
``cams[cam_idx]``), or a Function listing a call's results in a permuted
order, used to be one C statement per scalar.  codegen/glue.py emits such
copies as ``static const`` tables read by one loop.  Oracles: the VM on the
same Function (equal up to libm's last bits: the copies themselves are exact), the
generated source (tables present, the same number of lines whatever the
number of instances), and copy_lines' own output run through a direct
reading of the C it emits.
"""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symgraph as sg
from strategies import module_cache  # noqa: F401  autouse: a cache per module
from codegen import glue
from codegen.c99 import generate

HAVE_CC = shutil.which("cc") is not None or shutil.which("gcc") is not None
needs_cc = pytest.mark.skipif(not HAVE_CC, reason="no C compiler")
FAST = {"compiler": "tcc"} if shutil.which("tcc") else {}  # hypothesis: many small builds


def _body() -> sg.Function:
    """A small residual of one camera (4) and one point (3): 2 outputs, every input used."""
    cam, pt = sg.symbols("cam", 4), sg.symbols("pt", 3)
    u = (pt[0] - cam[0]) / (pt[2] + 3.0 + cam[3] ** 2)
    v = sg.atan(pt[1] * cam[1]) + cam[2] * u
    return sg.Function("resid", [cam, pt], [[u * cam[2] - v, sg.sin(v) + pt[0]]])


def _unrolled(cams: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """The body written out per row, for the derivative oracle."""
    u = (pts[:, 0] - cams[:, 0]) / (pts[:, 2] + 3.0 + cams[:, 3] ** 2)
    v = np.array([sg.atan(a) for a in pts[:, 1] * cams[:, 1]], dtype=object) + cams[:, 2] * u
    return np.stack([u * cams[:, 2] - v, np.array([sg.sin(e) for e in v], dtype=object) + pts[:, 0]], axis=1)


def _problem(n: int, seed: int = 0, n_cams: int = 5, n_pts: int = 7):
    rng = np.random.default_rng(seed)
    cam_idx = rng.integers(0, n_cams, n)
    pt_idx = rng.integers(0, n_pts, n)
    cams, pts = sg.symbols("cams", (n_cams, 4)), sg.symbols("pts", (n_pts, 3))
    values = (rng.uniform(-1, 1, (n_cams, 4)), rng.uniform(-1, 1, (n_pts, 3)))
    return cams, pts, cam_idx, pt_idx, values


def _same(C, F, *args) -> None:
    got, want = C(*args), F(*args)
    got, want = (got, want) if isinstance(want, tuple) else ((got,), (want,))
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-13, atol=1e-15)  # libm vs numpy: ulps


# ------------------------------------------------------- 1. call-site operands and results


@needs_cc
def test_map_on_gathered_rows_with_repeats_equals_the_vm():
    cams, pts, ci, pi, values = _problem(300)
    r = _body().map(300)(sg.gather(cams, ci), sg.gather(pts, pi))
    F = sg.Function("g", [cams, pts], [r])
    src = F.c_code()
    assert "static const int g[300]" in src  # one row start per instance, for cams and for points
    assert "cw[0 + 4 * r + t] = arg[0][g[r] + 1 * t]" in src
    _same(F.compile(), F, *values)


@needs_cc
def test_results_listed_in_a_permuted_order_with_constants_between():
    cams, pts, ci, pi, values = _problem(200, seed=1)
    r = _body().map(200)(cams[ci], pts[pi]).reshape(-1)
    perm = np.random.default_rng(2).permutation(len(r))
    out = np.concatenate([r[perm][:150], [2.5, -1.0, 0.0], r[perm][150:], [7.0] * 9])
    F = sg.Function("p", [cams, pts], [out, r[perm[::-1]].reshape(20, 20)])
    src = F.c_code()
    assert src.count("res[0][") < 40 and src.count("res[1][") < 40  # tables, not 400 statements each
    _same(F.compile(), F, *values)


@needs_cc
def test_constants_and_infinities_mixed_into_the_operands():
    cams, pts, ci, pi, values = _problem(120, seed=3)
    A = sg.gather(cams, ci).copy()
    rng = np.random.default_rng(4)
    where = rng.random(A.shape) < 0.3
    A[where] = rng.choice([0.0, -0.0, 1.5, -2.0, float("inf"), -float("inf")], int(where.sum()))
    r = _body().map(120)(A, sg.gather(pts, pi))
    F = sg.Function("c", [cams, pts], [r])
    assert "static const double" in F.c_code()
    _same(F.compile(), F, *values)


@needs_cc
def test_operands_from_the_work_array_and_locals():
    # computed values gathered into a map's operands; small parts make them cross into w
    cams, pts, ci, pi, values = _problem(150, seed=5)
    S, P = sg.sin(cams) * 2.0, sg.cos(pts) - pts
    r = _body().map(150)(sg.gather(S, ci), sg.gather(P, pi))
    extra = sg.exp(r[:, 0]) * r[:, 1]  # a computed use of the results as well
    F = sg.Function("w", [cams, pts], [r, extra])
    for chunk in (7, 2000):
        src = generate(F, chunk_size=chunk)
        assert re.search(r"= w\[g\[t\]\];", src) or chunk == 2000  # work slots gathered by a table
        _same(F.compile(chunk_size=chunk), F, *values)


@needs_cc
def test_gathered_inputs_on_a_non_glue_tape_several_calls():
    # two calls of the map and other ops: call-site copies (operand_copies) and result stores from w
    cams, pts, ci, pi, values = _problem(100, seed=6)
    M = _body().map(100)
    r1 = M(cams[ci], pts[pi])
    r2 = M(cams[ci[::-1]], 0.5 * pts[pi])
    F = sg.Function("two", [cams, pts], [r1.reshape(-1)[::-1], r2 + r1])
    _same(F.compile(), F, *values)


# ------------------------------------------------------- 2. the C size does not grow with n


def _line_count(n: int, jac: bool) -> tuple[int, int]:
    cams, pts, ci, pi, _ = _problem(n, seed=n, n_cams=4, n_pts=max(4, n // 3))
    r = _body().map(n)(sg.gather(cams, ci), sg.gather(pts, pi))
    outputs = [sg.jacobian(r.reshape(-1), np.concatenate([cams.ravel(), pts.ravel()])).values] if jac else [r]
    src = generate(sg.Function("size", [cams, pts], outputs))
    return len(src.splitlines()), len(src)


@pytest.mark.parametrize("jac", [False, True], ids=["values", "jacobian"])
def test_source_has_the_same_lines_for_n_and_10n(jac):
    (small, small_chars), (large, large_chars) = _line_count(300, jac), _line_count(3000, jac)
    assert small == large
    assert large_chars < 12 * small_chars  # only the tables' data grows


# ------------------------------------------------------- 3. derivatives through the tables


@needs_cc
def test_jacobian_of_a_gathered_map_equals_the_unrolled_one_compiled():
    cams, pts, ci, pi, values = _problem(60, seed=8)
    unknowns = np.concatenate([cams.ravel(), pts.ravel()])
    r = _body().map(60)(sg.gather(cams, ci), sg.gather(pts, pi)).reshape(-1)
    u = _unrolled(cams[ci], pts[pi]).reshape(-1)
    J, Ju = sg.jacobian(r, unknowns), sg.jacobian(u, unknowns)
    F = sg.Function("j", [cams, pts], [J.values, r])
    Fu = sg.Function("ju", [cams, pts], [Ju.values, u])
    jv, rv = F.compile()(*values)
    juv, ruv = Fu(*values)
    np.testing.assert_allclose(rv, ruv, rtol=1e-13, atol=1e-14)
    dense = np.zeros((len(r), len(unknowns)))
    dense[J.rows, J.cols] = jv
    dense_u = np.zeros_like(dense)
    dense_u[Ju.rows, Ju.cols] = juv
    np.testing.assert_allclose(dense, dense_u, rtol=1e-12, atol=1e-13)


# ------------------------------------------------------- 4. random tables (hypothesis)


@needs_cc
@settings(max_examples=25, deadline=None)
@given(st.integers(1, 60), st.integers(0, 2**32 - 1), st.sampled_from(["repeats", "permutation", "sorted"]),
       st.booleans())
def test_random_index_tables_and_output_orders(n, seed, kind, permute_out):
    rng = np.random.default_rng(seed)
    n_cams, n_pts = int(rng.integers(1, 9)), max(n, 1)
    cams, pts = sg.symbols("cams", (n_cams, 4)), sg.symbols("pts", (n_pts, 3))
    ci = rng.integers(0, n_cams, n)
    pi = {"repeats": rng.integers(0, n_pts, n), "permutation": rng.permutation(n_pts)[:n],
          "sorted": np.sort(rng.integers(0, n_pts, n))}[kind]
    r = _body().map(n)(sg.gather(cams, ci), sg.gather(pts, pi)).reshape(-1)
    out = r[rng.permutation(len(r))] if permute_out else r
    F = sg.Function("h", [cams, pts], [out])
    _same(F.compile(**FAST), F, rng.uniform(-1, 1, (n_cams, 4)), rng.uniform(-1, 1, (n_pts, 3)))


def _run(lines: list[str], target: np.ndarray, arrays: dict) -> np.ndarray:
    """Execute the copy statements copy_lines emits, read as Python (tables, loops, statements)."""
    out = target.copy()
    env = {**arrays, "out": out}
    code = "\n".join(lines)
    code = re.sub(r"static const (?:int|long long|double) (\w+)\[\d+\](?:\[2\])? = \{(.*?)\};",
                  lambda m: f"{m.group(1)} = [{m.group(2).replace('{', '[').replace('}', ']')}]", code)
    code = code.replace("(-1.0 / 0.0)", "-inf").replace("INFINITY", "inf")
    code = re.sub(r"for \(long (\w) = 0; \1 < (\d+); \+\+\1\)", r"for \1 in range(\2):", code)
    py = []
    for line in code.splitlines():
        line = line.strip().strip("{}").strip().rstrip(";").rstrip("}").strip().rstrip(";")
        depth = 0
        for part in re.split(r"(?<=:) ", line):
            py.append("    " * depth + part.strip())
            depth += 1
    exec("from math import inf\n" + "\n".join(p for p in py if p), env)  # noqa: S102
    return out


@settings(deadline=None)
@given(st.integers(0, 300), st.integers(0, 2**32 - 1), st.sampled_from(["rows", "any", "mixed", "scatter"]))
def test_copy_lines_does_what_it_says(n, seed, kind):
    rng = np.random.default_rng(seed)
    arrays = {"a": rng.uniform(-1, 1, 50), "b": rng.uniform(-1, 1, 40)}
    constants = ["2.5", "(-0.5)", "0.0", "(-INFINITY)"]
    values = [2.5, -0.5, 0.0, -np.inf]
    if kind == "rows":
        L = int(rng.integers(1, 6))
        starts = rng.integers(0, 50 - L + 1, max(1, n // L))
        index = (starts[:, None] + np.arange(L)).reshape(-1)
        source = np.zeros(len(index), dtype=np.int64)
        dst = np.arange(len(index)) + int(rng.integers(0, 5))
    else:
        source = rng.integers(0, 3, n) if kind != "scatter" else np.zeros(n, dtype=np.int64)
        index = np.where(source == 0, rng.integers(0, 50, n), np.where(source == 1, rng.integers(0, 40, n),
                                                                        rng.integers(0, 4, n)))
        if kind == "scatter":
            index = np.arange(n) % 50
        dst = rng.permutation(400)[:n] if kind in ("any", "scatter") else np.arange(n)
    # source 2 is the constants (len(arrays) == 2)
    lines = glue.copy_lines("out", dst, source, index, ["a", "b"], constants)
    for line in lines:  # nothing per scalar beyond the budget: statements are few, tables hold the rest
        assert len(line) < 200 or "static const" in line
    assert sum("static const" not in line for line in lines) <= 3 * glue.BUDGET
    want = np.full(410, np.nan)
    for d, s, i in zip(dst.tolist(), source.tolist(), index.tolist()):
        want[d] = arrays["a"][i] if s == 0 else arrays["b"][i] if s == 1 else values[i]
    got = _run(lines, np.full(410, np.nan), {"a": arrays["a"], "b": arrays["b"]})
    np.testing.assert_array_equal(got, want)


# ------------------------------------------------------- 5. the cost rule


def test_regular_runs_stay_loops_and_short_ones_statements():
    lines = glue.copy_lines("cw", np.arange(9), np.zeros(9, int), np.array([0, 1, 2, 3, 4, 5, 9, 7, 5]), ["x"], [])
    assert lines == ["  for (long t = 0; t < 6; ++t) cw[0 + t] = x[0 + 1 * t];",
                     "  cw[6] = x[9];", "  cw[7] = x[7];", "  cw[8] = x[5];"]
    short = glue.copy_lines("cw", np.arange(3), np.zeros(3, int), np.array([5, 0, 7]), ["x"], [])
    assert short == ["  cw[0] = x[5];", "  cw[1] = x[0];", "  cw[2] = x[7];"]


def test_irregular_stretch_is_one_table_with_int_or_long_long_entries():
    idx = np.array([5, 0, 7, 3, 3, 1, 9, 2, 8, 4])
    lines = glue.copy_lines("cw", np.arange(10), np.zeros(10, int), idx, ["x"], [])
    assert lines[0] == "  { static const int g[10] = {5, 0, 7, 3, 3, 1, 9, 2, 8, 4};"
    assert lines[1] == "    for (long t = 0; t < 10; ++t) cw[0 + t] = x[g[t]]; }"
    big = glue.copy_lines("cw", np.arange(10), np.zeros(10, int), idx + 2**31, ["x"], [])
    assert big[0].startswith("  { static const long long g[10] = {2147483653,")


def test_long_runs_inside_a_table_stay_loops():
    idx = np.concatenate([[9, 3, 7, 1, 4, 8, 2, 6, 11, 0, 5, 10], np.arange(100, 200), [5, 0, 3, 3, 2, 7, 7, 1, 12, 4]])
    lines = glue.copy_lines("cw", np.arange(len(idx)), np.zeros(len(idx), int), idx, ["x"], [])
    assert "  for (long t = 0; t < 100; ++t) cw[12 + t] = x[100 + 1 * t];" in lines
    assert "  { static const int g[12] = {9, 3, 7, 1, 4, 8, 2, 6, 11, 0, 5, 10};" in lines
    assert "  { static const int g[10] = {5, 0, 3, 3, 2, 7, 7, 1, 12, 4};" in lines
    assert len(lines) == 5


def test_budget_sends_scattered_results_to_one_scatter_table():
    rng = np.random.default_rng(0)
    whole = glue.result_copies([(0, int(p), 500 + t) for t, p in enumerate(rng.permutation(100))], "w")
    assert len(whole) == 2 and whole[1].endswith("res[0][0 + t] = w[g[t]]; }")  # a gather: every position
    spread = glue.result_copies([(0, int(p), 500 + t) for t, p in enumerate(rng.permutation(400)[:100])], "w")
    assert len(spread) == 2 and spread[1].endswith("res[0][g[t]] = w[500 + t]; }")  # a scatter: every result


@pytest.mark.parametrize("n", [0, 1])
def test_nothing_or_one_copy(n):
    lines = glue.copy_lines("cw", np.arange(n), np.zeros(n, int), np.arange(n), ["x"], [])
    assert lines == [] if n == 0 else lines == ["  cw[0] = x[0];"]


def test_contiguous_operand_groups_are_passed_by_pointer_not_copied():
    # a nested map whose body reads the whole parameter vector: the inner call gets a pointer into it
    p, u = sg.symbols("p", 40), sg.symbols("u")
    inner = sg.Function("inner", [p, u], [sg.sin(p[:20] @ p[20:]) * u])
    x, q = sg.symbols("x", 3), sg.symbols("q", 40)
    outer = sg.Function("outer", [q, x], [inner.map(3, shared=[0], reduce="sum")(q, x)])
    M = outer.map(5, shared=[0])
    X, Q = sg.symbols("X", (5, 3)), sg.symbols("Q", 40)
    F = sg.Function("f", [Q, X], [M(Q, X)])
    C = F.compile()
    assert "arg[0] + 0" in C.source  # the parameters: one pointer, no loop copying 40 values per instance
    qv, xv = np.random.default_rng(1).uniform(-1, 1, 40), np.random.default_rng(2).uniform(-1, 1, (5, 3))
    np.testing.assert_array_equal(C(qv, xv), F(qv, xv))


def _greedy_groups(ok: np.ndarray, labels: np.ndarray) -> list[tuple[int, int]]:
    """The groups of stores.progressions, item by item: from the left, a group runs to the end of its chain."""
    n = len(ok) + 1
    groups, a = [], 0
    while a < n:
        b = a
        while b < n - 1 and ok[b] and (b == a or (ok[b - 1] and np.array_equal(labels[b - 1], labels[b]))):
            b += 1
        groups.append((a, b - a + 1))
        a = b + 1
    return groups


@settings(deadline=None, max_examples=300)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 2), st.integers(0, 1)), max_size=40))
def test_progressions_match_the_greedy_walk(edges):
    # progressions finds its groups with numpy (no loop over items): the same as walking the items
    from codegen import stores

    ok = np.array([e[0] for e in edges], dtype=bool)
    labels = np.array([e[1:] for e in edges], dtype=np.int64).reshape(len(edges), 2)
    assert stores.progressions(ok, labels) == _greedy_groups(ok, labels)
    assert stores.progressions(ok, labels[:, :1]) == _greedy_groups(ok, labels[:, :1])


def test_call_site_operands_as_arrays_plan_like_their_texts():
    # the call site builds its operands as arrays; operand_copies reads the same operands from their C texts
    texts = ["v7", "arg[1][4]", "arg[1][5]", "2.0", "w[3]", "e12_0[2]", "arg[0][0]", "2.0", "w[4]", "w[5]", "w[6]"]
    names: list = []
    array, index, constants = glue.parse_operands(texts, names)
    plain = {0: "v7"}
    assert glue.operand_table_copies("cw", array, index, names, constants, plain) == glue.operand_copies("cw", texts)
    assert glue.pointer_run(array[8:11], index[8:11], names, len(names)) == "w + 4"
    assert glue.contiguous_run(texts[8:11]) == "w + 4" and glue.contiguous_run(texts[4:6]) is None
