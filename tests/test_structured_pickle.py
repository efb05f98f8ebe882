"""Pickling structured Functions (maps) and Functions that call them: round trips, values, tampered records."""

from __future__ import annotations

import copy
import multiprocessing
import pickle
import shutil
import sys

import numpy as np
import pytest

import symgraph as sg
from symgraph.function import FUNCTION_FORMAT, function_from_data, function_to_data
from symgraph.structured import StructuredFunction, structure_from_data

HAVE_CC = any(shutil.which(c) for c in ("cc", "gcc", "clang", "tcc"))


def _term():
    """F(a[2], b, p) -> (vector[2], scalar): two outputs, a parameter to share."""
    a, b, p = sg.symbols("a", 2), sg.symbols("b"), sg.symbols("p")
    return sg.Function("term", [a, b, p], [sg.sin(a) * b + p, sg.exp(a[0] * b) - p * a[1] ** 2])


def _point(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n, 2)), rng.uniform(-1, 1, n), 0.7


def _square():
    x = sg.symbols("x")
    return sg.Function("sq", [x], [x * x + 1])


def _caller(n=4):
    """g(A, B, q): a Function calling a map (shared p, summed second output) and using its results."""
    M = _term().map(n, shared=["p"], reduce=(None, "sum"))
    A, B, q = sg.symbols("A", (n, 2)), sg.symbols("B", n), sg.symbols("q")
    first, total = M(A, B, q)
    return sg.Function("g", [A, B, q], [first.sum() * total, total + q]), M


def _assert_same_values(got, want):
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    assert len(got) == len(want)
    for u, w in zip(got, want):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(w))


def _assert_same_structure(loaded, original):
    assert type(loaded) is type(original)
    assert (loaded.name, loaded.input_names, loaded.output_names) == \
        (original.name, original.input_names, original.output_names)
    assert loaded.input_shapes == original.input_shapes and loaded.output_shapes == original.output_shapes
    assert loaded.n_ops == original.n_ops
    s, t = loaded.structure, original.structure
    if t is None:
        assert s is None
        return
    assert (s.kind, s.n, s.shared, s.reduce) == (t.kind, t.n, t.shared, t.reduce)
    _assert_same_structure(s.body, t.body)


# ------------------------------------------------------------- round trips
@pytest.mark.parametrize("copier", [lambda F: pickle.loads(pickle.dumps(F)), copy.deepcopy],
                         ids=["pickle", "deepcopy"])
def test_a_top_level_map_loads_as_the_same_map(copier):
    M = _square().map(3)
    L = copier(M)
    assert isinstance(L, StructuredFunction) and L.structure.kind == "map"
    _assert_same_structure(L, M)
    assert L.tape.callees == (L,) and L.structure.body is not M.structure.body
    X = np.array([0.5, -2.0, 3.0])
    _assert_same_values(L(X), M(X))


def test_a_map_with_shared_inputs_and_reductions():
    M = _term().map(5, shared=[2], reduce=(None, "sum"))
    L = pickle.loads(pickle.dumps(M))
    _assert_same_structure(L, M)
    assert L.structure.shared == (False, False, True) and L.structure.reduce == (None, "sum")
    args = _point(5, seed=1)
    _assert_same_values(L(*args), M(*args))
    batch = (np.stack([_point(5, s)[0] for s in range(3)]), np.stack([_point(5, s)[1] for s in range(3)]), 0.3)
    _assert_same_values(L.batch(*batch), M.batch(*batch))


def test_a_map_of_a_map_keeps_both_levels():
    M = _square().map(3, reduce="sum").map(4)
    data = function_to_data(M)
    assert data[1] == FUNCTION_FORMAT == 3 and data[5] is None and data[8][0] == "map"
    assert [entry[0] for entry in data[7]] == ["sq", "sq_map3"]  # body before the map over it
    L = pickle.loads(pickle.dumps(M))
    _assert_same_structure(L, M)
    inner = L.structure.body
    assert isinstance(inner, StructuredFunction) and inner.structure.reduce == ("sum",)
    X = np.arange(12.0).reshape(4, 3) / 7
    _assert_same_values(L(X), M(X))
    _assert_same_values(L.inline()(X), M(X))


def test_a_function_calling_a_map_loads_with_one_shared_map_callee():
    G, M = _caller()
    L = pickle.loads(pickle.dumps(G))
    assert L.listing() == G.listing()
    (callee,) = L.tape.callees
    _assert_same_structure(callee, M)
    args = _point(4, seed=2)
    _assert_same_values(L(*args), G(*args))


def test_the_same_body_is_loaded_once_for_the_map_and_a_direct_call():
    F = _square()
    M = F.map(3)
    x, y = sg.symbols("x", 3), sg.symbols("y")
    G = sg.Function("g", [x, y], [M(x).sum() + F(y)])
    L = pickle.loads(pickle.dumps(G))
    maps = [C for C in L.tape.callees if C.structure is not None]
    plain = [C for C in L.tape.callees if C.structure is None]
    assert len(maps) == 1 and len(plain) == 1 and maps[0].structure.body is plain[0]
    _assert_same_values(L(np.array([1.0, 2.0, 3.0]), 0.5), G(np.array([1.0, 2.0, 3.0]), 0.5))


def test_derivatives_through_a_loaded_map_call():
    G, _ = _caller()
    L = pickle.loads(pickle.dumps(G))
    args = _point(4, seed=3)

    def gradient(H):
        flat = np.concatenate([H.inputs[0].reshape(-1), H.inputs[1], [H.inputs[2][()]]])
        s = H.outputs[0][()]
        return sg.Function("d", list(H.inputs), [sg.grad(s, flat), sg.hessian(s, flat)])

    dG, dL = gradient(G), gradient(L)
    g, h = dG(*args)
    gl, hl = dL(*args)
    np.testing.assert_array_equal(gl, g)
    np.testing.assert_array_equal(hl.toarray(), h.toarray())
    # the derivative Function itself calls derivative maps: it round-trips too
    D = pickle.loads(pickle.dumps(dG))
    assert any(C.structure is not None for C in D.tape.callees)
    gd, hd = D(*args)
    np.testing.assert_array_equal(gd, g)
    np.testing.assert_array_equal(hd.toarray(), h.toarray())


@pytest.mark.skipif(not HAVE_CC, reason="no C compiler")
def test_a_loaded_map_compiles_to_the_same_values():
    G, M = _caller()
    args = _point(4, seed=4)
    for original in (G, M):
        L = pickle.loads(pickle.dumps(original))
        try:
            got, want = L.compile()(*args), original.compile()(*args)
        except sg.CompilerNotFoundError:
            pytest.skip("no C compiler")
        for u, w in zip(got, want):
            np.testing.assert_array_equal(u, w)
        for u, w in zip(got, original(*args)):
            np.testing.assert_allclose(u, w, rtol=1e-13, atol=1e-15)
        assert L.c_code() == original.c_code()


def test_a_renamed_map_keeps_its_name():
    M = _square().map(3)
    data = function_to_data(M)
    L = function_from_data(data[:2] + ("my_map",) + data[3:])
    assert L.name == "my_map" and L.structure.kind == "map" and L.structure.n == 3


def test_format_2_data_still_loads():
    x, y = sg.symbols("x", 2), sg.symbols("y", 2)
    F = sg.Function("f", [x], [sg.sin(x) * 2])
    G = sg.Function("g", [y], [F(y).sum()])
    data = function_to_data(G)
    v2 = ("symgraph.Function", 2) + data[2:7] + (tuple(entry[:5] for entry in data[7]),)
    L = function_from_data(v2)
    assert L.listing() == G.listing() and float(L(np.array([0.1, 0.2]))) == float(G(np.array([0.1, 0.2])))


def test_a_spawned_process_evaluates_a_pickled_function_calling_a_map():
    M = _square().map(3, reduce="sum")
    x = sg.symbols("x", 3)
    G = sg.Function("g", [x], [M(x) * 2])
    points = [np.array([0.0, 1.0, 2.0]), np.array([-1.0, 0.5, 3.0])]
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        results = pool.map(G, points)
    assert [float(r) for r in results] == [float(G(p)) for p in points]


# ---------------------------------------------------------- tampered records
def _with(data: tuple, **fields) -> tuple:
    """``data`` (a top-level record) with fields replaced; ``structure.K`` replaces item K of the structure."""
    data = list(data)
    names = {"version": 1, "name": 2, "input_names": 3, "output_names": 4, "tape": 5, "sparsity": 6,
             "callees": 7, "structure": 8}
    for key, value in fields.items():
        if key.startswith("structure_"):
            record = list(data[8])
            record[int(key[len("structure_"):])] = value
            data[8] = tuple(record)
        else:
            data[names[key]] = value
    return tuple(data)


_MAP = function_to_data(_term().map(3, shared=[2], reduce=(None, "sum")))
_NESTED = function_to_data(_square().map(3).map(2))

HOSTILE = {
    "unknown kind": _with(_MAP, structure_0="eval"),
    "kind not a str": _with(_MAP, structure_0=print),
    "structure too short": _with(_MAP, structure=("map", 0, 3, (False, False, True))),
    "structure not a tuple": _with(_MAP, structure=["map", 0, 3, (False, False, True), (None, "sum")]),
    "body index past the table": _with(_MAP, structure_1=1),
    "body index negative": _with(_MAP, structure_1=-1),
    "body index a bool": _with(_MAP, structure_1=False),
    "body index a float": _with(_MAP, structure_1=0.0),
    "body not before it": _with(_NESTED, callees=(_NESTED[7][0], _NESTED[7][1][:5] + (("map", 1, 3, (False,),
                                                                                      (None,)),))),
    "n zero": _with(_MAP, structure_2=0),
    "n negative": _with(_MAP, structure_2=-3),
    "n a bool": _with(_MAP, structure_2=True),
    "n a float": _with(_MAP, structure_2=3.0),
    "n a str": _with(_MAP, structure_2="3"),
    "shared too short": _with(_MAP, structure_3=(False, True)),
    "shared too long": _with(_MAP, structure_3=(False, False, True, True)),
    "shared not bools": _with(_MAP, structure_3=(0, 0, 1)),
    "shared a list": _with(_MAP, structure_3=[False, False, True]),
    "shared indices out of range": _with(_MAP, structure_3=(3,)),
    "shared indices repeated": _with(_MAP, structure_3=(2, 2)),
    "shared indices negative": _with(_MAP, structure_3=(-1,)),
    "shared flags and indices mixed": _with(_MAP, structure_3=(False, 1, True)),
    "reduce too short": _with(_MAP, structure_4=(None,)),
    "reduce unknown": _with(_MAP, structure_4=(None, "max")),
    "reduce not a str": _with(_MAP, structure_4=(None, 1)),
    "input names mismatch": _with(_MAP, input_names=("a", "b", "q")),
    "output names mismatch": _with(_MAP, output_names=("o0",)),
    "sparsity mismatch": _with(_MAP, sparsity=(None,)),
    "sparse output claimed": _with(_MAP, sparsity=(None, (np.zeros(1, np.int64), np.zeros(1, np.int64), (1, 1)))),
    "tape and structure": _with(_MAP, tape=function_to_data(_term())[5]),
    "neither tape nor structure": _with(_MAP, structure=None),
    "empty name": _with(_MAP, name=""),
    "callee entries of format 2": _with(_MAP, callees=tuple(e[:5] for e in _MAP[7])),
    "format 2 with a structure": ("symgraph.Function", 2) + _MAP[2:8],
    "nested structure tampered": _with(_NESTED, callees=(_NESTED[7][0], _NESTED[7][1][:5] + (("map", 0, 0, (False,),
                                                                                             (None,)),))),
    "nested entry with both": _with(_NESTED, callees=(_NESTED[7][0], _NESTED[7][0][:5] + (("map", 0, 3, (False,),
                                                                                          (None,)),))),
    "fold last not a bool": _with(_MAP, structure=("fold", 0, 3, (False, False, True), "yes")),
}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_tampered_structure_records_raise_serialization_error(kind):
    with pytest.raises(sg.SerializationError) as info:
        function_from_data(HOSTILE[kind])
    assert isinstance(info.value, ValueError) and "Function record" in str(info.value)


def test_errors_name_what_is_wrong():
    cases = {
        "unknown kind": "unknown structure kind 'eval'",
        "body index past the table": "position of an earlier Function",
        "n zero": "n must be a positive int, got 0",
        "shared too short": "3 bool(s)",
        "reduce unknown": "'max'",
        "input names mismatch": "saved input names ('a', 'b', 'q'), but its structure gives",
        "tape and structure": "a Tape is given too",
    }
    for kind, text in cases.items():
        with pytest.raises(sg.SerializationError, match=None) as info:
            function_from_data(HOSTILE[kind])
        assert text in str(info.value), (kind, str(info.value))


def test_a_tampered_pickle_is_refused_without_running_anything():
    class Reducer:
        def __init__(self, data):
            self.data = data

        def __reduce__(self):
            return function_from_data, (self.data,)

    assert pickle.loads(pickle.dumps(Reducer(_MAP))).structure.kind == "map"
    with pytest.raises(sg.SerializationError, match="positive int"):
        pickle.loads(pickle.dumps(Reducer(HOSTILE["n negative"])))


def test_shared_may_be_stored_as_indices():
    M = _term().map(3, shared=[2], reduce=(None, "sum"))
    L = function_from_data(_with(function_to_data(M), structure_3=(2,)))
    _assert_same_structure(L, M)


def test_a_fold_record_needs_symgraph_fold(monkeypatch):
    x = sg.symbols("x")
    F = sg.Function("step", [x], [x * 0.5])
    monkeypatch.setitem(sys.modules, "symgraph.fold", None)  # as in a symgraph without folds
    with pytest.raises(sg.SerializationError, match="symgraph.fold"):
        structure_from_data(("fold", 0, 3, (False,), True), [F], "record")


def test_a_fold_round_trips_and_a_tampered_one_is_refused():
    pytest.importorskip("symgraph.fold")
    from symgraph.fold import fold_function

    s, u, a = sg.symbols("s", 2), sg.symbols("u"), sg.symbols("a")
    F = sg.Function("step", [s, u, a], [s * a + u, s.sum()])
    for last in (False, True):
        R = fold_function(F, 4, shared=["a"], last=last)
        L = pickle.loads(pickle.dumps(R))
        assert isinstance(L, StructuredFunction) and L.structure.kind == "fold"
        assert (L.name, L.structure.n, L.structure.shared, L.structure.last) == \
            (R.name, R.structure.n, R.structure.shared, R.structure.last)
        args = (np.array([1.0, -0.5]), np.array([0.1, 0.2, 0.3, 0.4]), 0.9)
        _assert_same_values(L(*args), R(*args))
        data = function_to_data(R)
        for bad in (_with(data, structure_4="yes"), _with(data, structure_2=0), _with(data, structure_3=(0,)),
                    _with(data, structure_3=(5,))):
            with pytest.raises(sg.SerializationError):
                function_from_data(bad)
