"""symgraph's file format (symgraph/serialize.py): round trips, pickling, the golden file, hostile input."""

from __future__ import annotations

import concurrent.futures
import copy
import multiprocessing
import os
import pickle
import shutil
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import symgraph as sg
from symgraph.custom import custom_jvp, custom_rules, custom_vjp, stop_gradient
from symgraph.function import function_to_data
from symgraph.serialize import (FORMAT_VERSION, MAGIC, STRUCTURE_LOADERS, called_scalar_limit, from_bytes, load,
                                save, to_bytes)
from symgraph.structured import StructuredFunction
from strategies import MAP_FLAGS, module_cache, random_graphs  # noqa: F401  (module_cache: a fixture)

HAVE_CC = any(shutil.which(c) for c in ("cc", "gcc", "clang", "tcc"))
GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "golden_v1.sgf")


# ------------------------------------------------------------------ helpers
def _same_plain(a, b) -> bool:
    """Deep equality of plain data (tuples, str, numbers, None, arrays: same dtype, shape and bits)."""
    stack = [(a, b)]
    while stack:
        u, v = stack.pop()
        if isinstance(u, np.ndarray) or isinstance(v, np.ndarray):
            if not (isinstance(u, np.ndarray) and isinstance(v, np.ndarray) and u.dtype == v.dtype
                    and u.shape == v.shape and u.tobytes() == v.tobytes()):
                return False
        elif isinstance(u, tuple) or isinstance(v, tuple):
            if not (isinstance(u, tuple) and isinstance(v, tuple) and len(u) == len(v)):
                return False
            stack.extend(zip(u, v))
        elif type(u) is not type(v) or u != v:
            return False
    return True


def _same_tape(T, U) -> None:
    """Two Tapes hold the same program: every array field bitwise, the callees by name in order."""
    for field in ("constants", "opcodes", "operands", "immediates", "call_callee", "call_offsets", "call_operands"):
        a, b = getattr(T, field), getattr(U, field)
        assert a.shape == b.shape and a.tobytes() == b.astype(a.dtype).tobytes(), field
    for a, b in zip(T.input_slots + T.output_slots, U.input_slots + U.output_slots):
        assert np.array_equal(a, b) and a.shape == b.shape
    assert tuple(T.symbol_names) == tuple(U.symbol_names)
    assert [c.name for c in T.callees] == [c.name for c in U.callees]


def _same_values(got, want) -> None:
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    assert len(got) == len(want)
    for u, w in zip(got, want):
        u = u.toarray() if hasattr(u, "toarray") else np.asarray(u)
        w = w.toarray() if hasattr(w, "toarray") else np.asarray(w)
        assert u.dtype == w.dtype and u.shape == w.shape
        assert u.tobytes() == w.tobytes() or np.array_equal(u, w, equal_nan=True)


def _round_trips(F):
    """The Function back from to_bytes, pickle, deepcopy and a file (through a fresh temp dir)."""
    return [from_bytes(to_bytes(F)), pickle.loads(pickle.dumps(F)), copy.deepcopy(F)]


def _args(F, rng):
    return [rng.uniform(0.2, 1.5, s) if s else float(rng.uniform(0.2, 1.5)) for s in F.input_shapes]


def _term():
    a, b, p = sg.symbols("a", 2), sg.symbols("b"), sg.symbols("p")
    return sg.Function("term", [a, b, p], [sg.sin(a) * b + p, sg.exp(a[0] * b) - p * a[1] ** 2])


def _step():
    s, u, a = sg.symbols("s", 2), sg.symbols("u"), sg.symbols("a")
    return sg.Function("step", [s, u, a], [s * a + u, s.sum()])


def _softplus_rule():
    y = sg.symbols("y")
    softplus = sg.Function("softplus", [y], [sg.log(1 + sg.exp(y))])
    return custom_jvp(softplus, lambda x, t: t / (1 + sg.exp(-x)), name="softplus_stable")


def golden_function(stop: bool = True):
    """What tests/data/golden_v1.sgf holds: a call, a map with reduce, a fold, a sparse output, custom rules.

    g(X[4, 2], s0[2], U[3], q) -> (total, states[3, 2], J sparse [4, 4], r):
    ``total`` sums a map (shared ``q``, second output summed) of ``term``;
    ``states`` folds ``step`` over U; ``J`` is the sparse Jacobian of
    ``sin(X[:, 0]) * X[:, 1]`` in ``X[:, 0]``; ``r`` calls a custom-jvp
    softplus and uses stop_gradient.
    """
    X, s0, U, q = sg.symbols("X", (4, 2)), sg.symbols("s0", 2), sg.symbols("U", 3), sg.symbols("q")
    first, total = _term().map(4, shared=["p"], reduce=(None, "sum"))(X, X[:, 0], q)
    states, _ = _step().fold(3, shared=["a"])(s0, U, q)
    J = sg.jacobian(sg.sin(X[:, 0]) * X[:, 1], X[:, 0])
    r = _softplus_rule()(q) * 2 + q * (stop_gradient(q) if stop else q)
    return sg.Function("golden", [X, s0, U, q], [first.sum() * total, states, J, r],
                       output_names=["total", "states", "J", "r"])


GOLDEN_ARGS = (np.arange(8.0).reshape(4, 2) / 10, np.array([1.0, -0.5]), np.array([0.1, 0.2, 0.3]), 0.7)


# ------------------------------------------------------------------ round trips
@given(random_graphs(max_inputs=3, max_steps=14))
def test_random_graphs_round_trip_to_the_same_tape(graph):
    F = graph.function()
    for G in _round_trips(F):
        assert _same_plain(function_to_data(G), function_to_data(F))
        _same_tape(G.tape, F.tape)
        assert G.listing(None) == F.listing(None)
        assert to_bytes(G) == to_bytes(F)  # a loaded Function saves to the same bytes


@settings(max_examples=6)
@given(random_graphs(max_inputs=3, max_steps=10))
@pytest.mark.skipif(not HAVE_CC, reason="no C compiler")
def test_random_graphs_compile_to_bitwise_equal_results(graph):
    F = graph.function()
    G = from_bytes(to_bytes(F))
    x = np.linspace(-1.3, 2.1, len(F.inputs))
    with np.errstate(all="ignore"):
        _same_values(G.compile()(*x), F.compile()(*x))
        _same_values(G(*x), F(*x))


@settings(max_examples=40)
@given(MAP_FLAGS, st.integers(1, 3), st.booleans())
def test_maps_with_shared_and_reduce_nested_and_called_round_trip(flags, outer, called):
    shared, reduce, n = flags
    a, b, p = sg.symbols("a", 2), sg.symbols("b"), sg.symbols("p")
    body = sg.Function("body3", [a, b, p], [sg.sin(a) * b + p, sg.exp(a[0] * b) - p * a[1] ** 2])
    M = body.map(n, shared=[k for k in range(3) if shared[k]], reduce=reduce)
    if outer > 1:
        M = M.map(outer)
    F = M
    if called:
        ins = [sg.symbols(f"i{k}", s) for k, s in enumerate(M.input_shapes)]
        outs = M(*ins)
        outs = list(outs) if isinstance(outs, tuple) else [outs]
        F = sg.Function("caller", ins, [np.asarray(o, dtype=object).sum() * 2 for o in outs])
    rng = np.random.default_rng(n)
    args = _args(F, rng)
    for G in _round_trips(F):
        assert type(G) is type(F)
        assert _same_plain(function_to_data(G), function_to_data(F))
        _same_tape(G.tape, F.tape)
        _same_values(G(*args), F(*args))
        if not called:
            assert isinstance(G, StructuredFunction)
            assert (G.structure.n, G.structure.shared, G.structure.reduce) == \
                (M.structure.n, M.structure.shared, M.structure.reduce)


@pytest.mark.parametrize("last", [False, True])
def test_folds_round_trip(last):
    R = _step().fold(4, shared=["a"], last=last)
    args = (np.array([1.0, -0.5]), np.array([0.1, 0.2, 0.3, 0.4]), 0.9)
    for G in _round_trips(R):
        assert isinstance(G, StructuredFunction) and G.structure.kind == "fold"
        assert (G.structure.n, G.structure.shared, G.structure.last) == (4, R.structure.shared, last)
        assert _same_plain(function_to_data(G), function_to_data(R))
        _same_values(G(*args), R(*args))


@pytest.mark.skipif(not HAVE_CC, reason="no C compiler")
def test_structured_functions_compile_to_bitwise_equal_results():
    F = golden_function()
    G = from_bytes(to_bytes(F))
    _same_values(G.compile()(*GOLDEN_ARGS), F.compile()(*GOLDEN_ARGS))


def test_sparse_outputs_and_names_survive():
    x = sg.symbols("x", 3)
    F = sg.Function("f", [x], [sg.hessian((x * x).sum() * x[0], x), x], input_names=["state"],
                    output_names=["H", "copy"])
    G = from_bytes(to_bytes(F))
    assert (G.input_names, G.output_names) == (("state",), ("H", "copy"))
    assert all(np.array_equal(u, v) for u, v in zip(G.output_sparsity[0][:2], F.output_sparsity[0][:2]))
    assert G.output_sparsity[0][2] == (3, 3) and G.output_sparsity[1] is None
    _same_values(G(np.array([1.0, 2.0, 3.0])), F(np.array([1.0, 2.0, 3.0])))


def test_symbol_names_that_are_not_the_default_ones_survive():
    a, b = sg.symbols("a"), sg.symbols("b")
    F = sg.Function("f", [np.array([a, b], dtype=object)], [a * b])
    G = from_bytes(to_bytes(F))
    assert tuple(G.tape.symbol_names) == ("a", "b") and G.input_names == F.input_names
    names = sg.symbols("x[weird]", (2, 2))
    F = sg.Function("g", [names], [names.sum()])
    assert tuple(from_bytes(to_bytes(F)).tape.symbol_names) == tuple(F.tape.symbol_names)


def test_shared_callees_stay_shared():
    x = sg.symbols("x")
    inner = sg.Function("inner", [x], [sg.sin(x)])
    y = sg.symbols("y", 2)
    F = sg.Function("outer", [y], [inner(y[0]) + inner(y[1]) * inner.map(2)(y).sum()])
    G = from_bytes(to_bytes(F))
    _same_tape(G.tape, F.tape)
    callees = G.tape.callees
    assert {c.name for c in callees} == {"inner", "inner_map2"}
    body = next(c for c in callees if c.name == "inner_map2").structure.body
    assert body is next(c for c in callees if c.name == "inner")


# ------------------------------------------------------------------ custom rules
def test_custom_jvp_and_stop_gradient_keep_their_rules():
    stable = _softplus_rule()
    z = sg.symbols("z")
    caller = sg.Function("caller", [z], [stable(z) * 2 + z * stop_gradient(z)])
    for F in (stable, caller):
        for G in _round_trips(F):
            gradient = sg.Function("d", [z], [sg.grad(G(z), z)])
            want = sg.Function("d", [z], [sg.grad(F(z), z)])
            assert float(gradient(1000.0)) == float(want(1000.0))  # the rule: no overflow to nan
            assert float(gradient(0.3)) == float(want(0.3))
    G = from_bytes(to_bytes(stable))
    assert sorted(custom_rules(G)) == ["jvp"] and G.name == "softplus_stable"
    assert float(sg.Function("d", [z], [sg.grad(G(z), z)])(1000.0)) == 1.0
    loaded_stop = from_bytes(to_bytes(caller)).tape.callees
    assert stop_gradient(z).args[0].data in loaded_stop  # the one stop_gradient Function per size


def test_custom_vjp_and_both_rules_keep_their_rules():
    x = sg.symbols("x", 2)
    norm = sg.Function("norm", [x], [sg.sqrt(x @ x)])
    safe = custom_vjp(norm, lambda x, y, ybar: ybar * x / sg.if_else(y > 0, y, 1.0))
    both = custom_jvp(safe, lambda x, t: (x @ t) / sg.if_else(sg.sqrt(x @ x) > 0, sg.sqrt(x @ x), 1.0))
    for F, modes in ((safe, ["vjp"]), (both, ["jvp", "vjp"])):
        G = pickle.loads(pickle.dumps(F))
        assert sorted(custom_rules(G)) == modes
        gradient = sg.Function("g", [x], [sg.grad(G(x), x)])
        assert np.asarray(gradient(np.zeros(2))).tolist() == [0.0, 0.0]
        assert np.allclose(gradient(np.array([3.0, 4.0])), [0.6, 0.8], rtol=1e-15)
        t = sg.symbols("t", 2)
        tangent = sg.Function("j", [x, t], [sg.jvp(G(x), x, t)])
        assert np.isclose(float(tangent(np.array([3.0, 4.0]), np.array([1.0, 0.0]))), 0.6, rtol=1e-15)


def test_a_mapped_custom_body_keeps_its_rule():
    stable = _softplus_rule()
    M = stable.map(3, reduce="sum")
    x = sg.symbols("x", 3)
    for G in _round_trips(M):
        g = sg.Function("g", [x], [sg.grad(G(x), x)])
        assert np.all(np.asarray(g(np.array([1000.0, 0.0, -1000.0]))) == [1.0, 0.5, 0.0])


# ------------------------------------------------------------------ processes
def test_a_spawned_pool_and_a_process_pool_evaluate_a_loaded_function(tmp_path):
    path = tmp_path / "g.sgf"
    save(golden_function(), path)
    G = load(path)
    want = G(*GOLDEN_ARGS)
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        got = pool.apply(G, GOLDEN_ARGS)
    _same_values(got, want)
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as executor:
        got = executor.submit(G, *GOLDEN_ARGS).result()
        twice = list(executor.map(G, *[[a, a] for a in GOLDEN_ARGS]))
    _same_values(got, want)
    for result in twice:
        _same_values(result, want)


# ------------------------------------------------------------------ the golden file
def test_the_golden_file_loads_with_the_values_it_was_saved_with():
    G = load(GOLDEN)
    F = golden_function()
    assert (G.name, G.input_names, G.output_names) == ("golden", F.input_names, ("total", "states", "J", "r"))
    total, states, J, r = G(*GOLDEN_ARGS)
    X, s0, U, q = GOLDEN_ARGS
    first = np.sin(X) * X[:, :1] + q  # term(a = X[i], b = X[i, 0], p = q)
    second = np.exp(X[:, 0] * X[:, 0]) - q * X[:, 1] ** 2
    assert np.isclose(total, first.sum() * second.sum(), rtol=1e-14)
    s, want_states = s0.copy(), []
    for u in U:
        s = s * q + u
        want_states.append(s)
    assert np.allclose(states, want_states, rtol=1e-15)
    assert np.allclose(J.toarray(), np.diag(np.cos(X[:, 0]) * X[:, 1]), rtol=1e-15)
    assert np.isclose(r, 2 * np.log1p(np.exp(q)) + q * q, rtol=1e-15)
    _same_values(G(*GOLDEN_ARGS), F(*GOLDEN_ARGS))
    assert sorted(custom_rules(next(c for c in G.tape.callees if c.name == "softplus_stable"))) == ["jvp"]
    z = sg.symbols("z")
    stable = next(c for c in G.tape.callees if c.name == "softplus_stable")
    assert float(sg.Function("d", [z], [sg.grad(stable(z), z)])(1000.0)) == 1.0


def test_the_golden_file_is_what_this_version_writes():
    with open(GOLDEN, "rb") as handle:
        data = handle.read()
    assert data[:8] == MAGIC and struct.unpack_from("<H", data, 8)[0] == 1
    if FORMAT_VERSION == 1:  # a later version writes its own layout; it must still read this one
        assert to_bytes(load(GOLDEN)) == data


# ------------------------------------------------------------------ bad input
def _reseal(data: bytes) -> bytes:
    """``data`` with its CRC-32 trailer recomputed (so a corruption reaches the checks behind it)."""
    body = data[:-4]
    return body + struct.pack("<I", zlib.crc32(body))


def _outcome(data: bytes) -> None:
    """from_bytes either gives a Function or raises SerializationError; nothing else."""
    try:
        G = from_bytes(data)
    except sg.SerializationError as exc:
        assert str(exc)
        return
    assert isinstance(G, sg.Function)


@pytest.fixture(scope="module")
def small_file():
    s, u = sg.symbols("s"), sg.symbols("u")
    x = sg.symbols("x", 2)
    body = sg.Function("b", [s, u], [s * u + 1])
    F = sg.Function("small", [x], [body.map(2, reduce="sum")(x, x) + sg.sin(x[0]), sg.jacobian(x * x, x)])
    return to_bytes(F)


def test_every_truncation_raises_serialization_error(small_file):
    for n in range(len(small_file)):
        with pytest.raises(sg.SerializationError):
            from_bytes(small_file[:n])
        _outcome(_reseal(small_file[:n]) if n >= 4 else small_file[:n])


@given(st.data())
def test_bit_flips_and_insertions_give_a_function_or_serialization_error(small_file, data):
    raw = bytearray(small_file)
    for _ in range(data.draw(st.integers(1, 4))):
        if data.draw(st.booleans()):
            k = data.draw(st.integers(0, len(raw) - 1))
            raw[k] ^= 1 << data.draw(st.integers(0, 7))
        else:
            k = data.draw(st.integers(0, len(raw)))
            raw[k:k] = bytes(data.draw(st.lists(st.integers(0, 255), min_size=1, max_size=9)))
    with pytest.raises(sg.SerializationError):  # the checksum catches every change
        from_bytes(bytes(raw)) if bytes(raw) != small_file else from_bytes(b"")
    _outcome(_reseal(bytes(raw)))  # and behind it, the checks of every field


@given(st.data())
def test_huge_declared_counts_are_refused_without_allocating(small_file, data):
    """Overwrite a 4- or 8-byte field at a random place with a huge count, then reseal."""
    raw = bytearray(small_file[:-4])
    width = data.draw(st.sampled_from([4, 8]))
    k = data.draw(st.integers(0, len(raw) - width))
    value = data.draw(st.sampled_from([2**31 - 1, 2**32 - 1, 2**40, 2**62, 2**64 - 1]))
    raw[k:k + width] = (value % (1 << 8 * width)).to_bytes(width, "little")
    _outcome(_reseal(bytes(raw) + b"\0\0\0\0"))


def test_every_truncation_of_the_structured_and_custom_golden_file():
    with open(GOLDEN, "rb") as handle:
        data = handle.read()
    for n in range(0, len(data), max(1, len(data) // 400)):
        _outcome(_reseal(data[:n]) if n >= 4 else data[:n])


def _header(version=FORMAT_VERSION, flags=0, sections=0) -> bytes:
    return MAGIC + struct.pack("<HHI", version, flags, sections)


def _sealed(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize("data, message", [
    (b"", "shorter than a header"),
    (b"\x89SG", "shorter than a header"),
    (MAGIC + b"\x01\x00", "truncated symgraph file: 10 bytes"),
    (b"PK\x03\x04 a zip file", "magic"),
    (_sealed(_header(version=FORMAT_VERSION + 1)), "newer symgraph"),
    (_sealed(_header(version=0)), "does not exist"),
    (_sealed(_header(flags=1)), "flags"),
    (_sealed(_header(sections=1)), "declares 1 sections"),
    (_sealed(_header(sections=1) + struct.pack("<4sQ", b"META", 2**60)), "declares 1152921504606846976 bytes"),
    (_sealed(_header(sections=1) + struct.pack("<4sQ", b"JUNK", 1) + b"N"), "unknown tag"),
    (_sealed(_header(sections=0)), "META"),
    (_sealed(_header(sections=1) + struct.pack("<4sQ", b"META", 1) + b"N"), "META must be"),
    (_sealed(_header(sections=1) + struct.pack("<4sQ", b"META", 5) + b"t\xff\xff\xff\xff"), "tuple of 4294967295"),
    (_sealed(_header(sections=1) + struct.pack("<4sQ", b"META", 1) + b"Z"), "unknown value tag"),
    (_sealed(_header(sections=1) + struct.pack("<4sQ", b"META", 2) + b"NN"), "stray bytes"),
    (_sealed(_header(sections=1) + struct.pack("<4sQ", b"META", 201) + b"t\x01\x00\x00\x00" * 40 + b"N"),
     "nest deeper"),
    (_sealed(_header(sections=1) + struct.pack("<4sQ", b"META", 20) + b"a\x04\x01" + struct.pack("<Q", 2**40)
             + b"\0" * 9), "needs 8796093022208 bytes"),
    (_sealed(_header(sections=1) + struct.pack("<4sQ", b"META", 7) + b"s\x02\x00\x00\x00\xff\xfe"), "UTF-8"),
])
def test_malformed_files_raise_clear_serialization_errors(data, message):
    with pytest.raises(sg.SerializationError, match=message):
        from_bytes(data)


def test_a_corrupted_file_names_the_checksum(small_file):
    bad = bytearray(small_file)
    bad[len(bad) // 2] ^= 0x10
    with pytest.raises(sg.SerializationError, match="CRC-32"):
        from_bytes(bytes(bad))


def _entries(data: bytes):
    """The decoded records of a file (a test-only reader of the layout)."""
    from symgraph.serialize import _read_file

    return _read_file(data)


def _file(records) -> bytes:
    from symgraph.serialize import _encode

    sections = [(b"META", _encode(("symgraph", 1, len(records))))] + [(b"FUNC", _encode(r)) for r in records]
    body = _header(sections=len(sections)) + b"".join(struct.pack("<4sQ", t, len(p)) + p for t, p in sections)
    return _sealed(body)


def test_tampered_records_raise_serialization_errors_naming_the_entry():
    x = sg.symbols("x")
    records = _entries(to_bytes(sg.Function("f", [x], [x * x]).map(3)))
    body, mapped = records
    tape = list(body[5])
    cases = {
        "unknown op": [body[:5] + (tuple(tape[:2] + [("no_such_op",)] + tape[3:]),) + body[6:], mapped],
        "operand out of range": [body[:5] + (tuple(tape[:4] + [np.full_like(tape[4], 7)] + tape[5:]),) + body[6:],
                                 mapped],
        "unknown kind": [body, mapped[:4] + ("python",) + mapped[5:]],
        "unknown structure": [body, mapped[:5] + (("scan", 0, 3, (False,), (None,)),) + mapped[6:]],
        "body out of range": [body, mapped[:5] + (("map", 5, 3, (False,), (None,)),) + mapped[6:]],
        "bad names": [body, mapped[:1] + (("x", "y"),) + mapped[2:]],
        "short record": [body[:3], mapped],
        "rule on a map": [body, mapped[:6] + ((("jvp", 0),),)],
        "huge stop_gradient": [("stop_gradient", ("s",), ("o0",), (None,), "stop_gradient", 2**60, ())],
    }
    for what, bad in cases.items():
        with pytest.raises(sg.SerializationError, match=r"entry \d") as info:
            from_bytes(_file(bad))
        assert "Traceback" not in str(info.value), what
    assert from_bytes(_file(records)).structure.n == 3


def test_a_forged_huge_map_loads_lazily_and_a_caller_of_one_is_refused():
    x = sg.symbols("x")
    body, mapped = _entries(to_bytes(sg.Function("f", [x], [x * x]).map(3)))
    huge = mapped[:5] + (("map", 0, 10**15, (True,), (None,)),) + mapped[6:]
    G = from_bytes(_file([body, huge]))  # nothing of size n is made
    assert G.structure.n == 10**15 and G.output_shapes == ((10**15,),) and G.name == "f_map3"
    y = sg.symbols("y")
    caller = _entries(to_bytes(sg.Function("c", [y], [sg.Function("f", [x], [x * x]).map(2, shared=[0])(y)[0]])))
    assert [r[0] for r in caller] == ["f", "f_map2", "c"]
    forged = [caller[0], caller[1][:5] + (("map", 0, 10**15, (True,), (None,)),) + caller[1][6:], caller[2]]
    with pytest.raises(sg.SerializationError, match="more than a file of this size may call"):
        from_bytes(_file(forged))
    assert called_scalar_limit(10) < 10**15


def test_a_map_with_no_input_scalars_is_refused_before_unrolling():
    e = sg.symbols("e", 0)
    body = sg.Function("k", [e], [sg.const(2.0)])
    x = sg.symbols("x")
    records = _entries(to_bytes(sg.Function("f", [x], [x * x]).map(3)))
    forged = [_entries(to_bytes(body))[0], records[1][:5] + (("map", 0, 10**12, (False,), (None,)),) + records[1][6:]]
    with pytest.raises(sg.SerializationError, match="no input scalars"):
        from_bytes(_file(forged))


def test_structure_loaders_are_a_registry(monkeypatch):
    calls = []
    original = STRUCTURE_LOADERS["map"]

    def counting(record, table, label):
        calls.append(record[0])
        return original(record, table, label)

    monkeypatch.setitem(STRUCTURE_LOADERS, "map", counting)
    x = sg.symbols("x")
    assert from_bytes(to_bytes(sg.Function("f", [x], [x * x]).map(2))).structure.n == 2 and calls == ["map"]
    monkeypatch.delitem(STRUCTURE_LOADERS, "map")
    with pytest.raises(sg.SerializationError, match="unknown structure kind 'map'"):
        from_bytes(to_bytes(sg.Function("f", [x], [x * x]).map(2)))


def test_a_structure_that_cannot_be_saved_names_the_function():
    class Opaque:
        kind = "opaque"
        children = ()

        def to_data(self, index):
            raise sg.NotPicklableError("an opaque structure cannot be saved")

    x = sg.symbols("x")
    M = sg.Function("f", [x], [x * x]).map(2)
    F = copy.copy(M)
    F.__dict__ = dict(M.__dict__, structure=Opaque(), name="opaque_fn")
    with pytest.raises(sg.NotPicklableError, match="'opaque_fn': an opaque structure"):
        to_bytes(F)
    with pytest.raises(sg.NotPicklableError, match="'opaque_fn'"):
        pickle.dumps(F)


def test_an_unknown_derivative_rule_is_refused_not_dropped():
    x = sg.symbols("x")
    F = sg.Function("f", [x], [x * x])
    F.derivative_rule = lambda *a: None
    with pytest.raises(sg.NotPicklableError, match="'f' carries a derivative rule"):
        to_bytes(F)


def test_files_save_load_and_refuse_to_overwrite(tmp_path):
    x = sg.symbols("x")
    F = sg.Function("f", [x], [x + 1])
    path = tmp_path / "f.sgf"
    F.save(path)
    assert float(load(str(path))(1.0)) == 2.0 and sorted(os.listdir(tmp_path)) == ["f.sgf"]
    with pytest.raises(sg.OverwriteError, match="f.sgf"):
        save(F, path, overwrite=False)
    save(sg.Function("g", [x], [x + 2]), path)
    assert load(path).name == "g"
    with pytest.raises(FileNotFoundError, match="missing.sgf"):
        load(tmp_path / "missing.sgf")
    (tmp_path / "bad.sgf").write_bytes(b"garbage")
    with pytest.raises(sg.SerializationError, match="bad.sgf"):
        load(tmp_path / "bad.sgf")
    with pytest.raises(sg.SerializationError, match="expected bytes"):
        from_bytes("text")
    with pytest.raises(sg.SerializationError, match="expected a symgraph Function"):
        to_bytes(x)


def test_a_large_tape_loads_with_its_graph_made_on_first_use():
    from symgraph.serialize import LAZY_OUTPUTS

    x, f, g = sg.models.luksan(LAZY_OUTPUTS // 25 + 100)
    F = sg.Function("luksan", [x], [f, g])
    assert F.n_ops >= LAZY_OUTPUTS
    G = from_bytes(to_bytes(F))
    assert "_outputs" not in G.__dict__ and G.output_shapes == F.output_shapes and G.n_out == 2
    _same_tape(G.tape, F.tape)
    point = np.linspace(0.5, 1.5, x.size)
    _same_values(G(point), F(point))
    assert "_outputs" not in G.__dict__  # evaluation reads the Tape only
    grad = sg.Function("grad", [G.inputs[0]], [sg.grad(G.outputs[0][()], G.inputs[0])])
    want = sg.Function("grad", [x], [sg.grad(f, x)])
    assert np.array_equal(grad(point), want(point))
    assert str(G.outputs[1][7]) == str(g[7])
