"""The core's bulk paths (large maps, many symbols) give what the element-by-element paths gave."""

import numpy as np
import pytest

import symgraph as sg
from symgraph import expr as E
from symgraph.map import Layout
from symgraph.tape import InputNames, build_tape, element_names, input_positions, tape_from_data, tape_to_data


def test_input_names_stand_for_the_tuple_of_element_names():
    names = InputNames([("x", (2, 3)), ("p", ()), ("e", (0,)), ("y", (2,))])
    full = tuple(element_names("x", (2, 3)) + ["p"] + element_names("y", (2,)))
    assert len(names) == len(full) == 9
    assert [names[i] for i in range(9)] == list(full)
    assert [names[-i] for i in range(1, 10)] == [full[-i] for i in range(1, 10)]
    assert names[2:5] == full[2:5] and tuple(names) == full and names == full and full == names
    assert names != full[:-1] and names != list(full)
    with pytest.raises(IndexError):
        names[9]
    with pytest.raises(TypeError):
        hash(names)


def test_a_map_tape_names_its_inputs_as_before():
    x = sg.symbols("x")
    M = sg.Function("sq", [x], [x * x]).map(3)
    tape = M.tape
    assert isinstance(tape.symbol_names, InputNames)
    assert tuple(tape.symbol_names) == ("x[0]", "x[1]", "x[2]")
    assert "@1 = input 0 [1] (x[1])" in M.listing()
    data = tape_to_data(tape)
    assert data[8] == ("x[0]", "x[1]", "x[2]")
    assert tuple(tape_from_data(data, [M]).symbol_names) == ("x[0]", "x[1]", "x[2]")


def test_symbols_are_named_and_distinct_in_any_shape():
    x = sg.symbols("x", (2, 3, 2))
    assert [s.name for s in x.reshape(-1)] == element_names("x", (2, 3, 2))
    assert x[1, 2, 0].name == "x[1,2,0]" and len({id(s) for s in x.reshape(-1)}) == 12
    assert sg.symbols("y", ())[()].name == "y[]" and sg.symbols("z", (0, 2)).shape == (0, 2)
    assert all(s.is_symbol and s.args == () for s in sg.symbols("w", 5))


def test_as_expr_array_converts_numbers_in_place_even_in_a_strided_view():
    a = np.array([[1.0, sg.symbols("x")], [2, 3]], dtype=object)
    assert sg.array.as_expr_array(a) is a and all(type(v) is E.Expr for v in a.reshape(-1))
    b = np.array([[1.0, 2.0], [3.0, sg.symbols("y")]], dtype=object)
    view = b.T
    out = sg.array.as_expr_array(view)
    assert out is view and all(type(v) is E.Expr for v in out.reshape(-1)) and str(b[0, 1]) == "2"


def test_results_made_in_bulk_are_the_interned_ones():
    x = sg.symbols("x", 3)
    F = sg.Function("f", [x], [x * 2, x.sum()])
    r1, s1 = F(x + 1)
    call = r1[0].args[0]
    again = E.intern_results(call, 0, 4)
    assert all(a is b for a, b in zip(again, list(r1) + [s1]))
    part = E.intern_results(call, 2, 1)  # found, not made again
    assert part[0] is r1[2] and [e.data for e in again] == [0, 1, 2, 3]


def test_free_symbols_in_the_order_of_the_walk():
    x, y, z = sg.symbols("x"), sg.symbols("y"), sg.symbols("z")
    e = [sg.sin(y * x) + z, x * 2, z]
    walk = [n for n in E.topological(E._roots(e, "t")) if n.op is E.SYMBOL]
    assert E.free_symbols(e) == walk and [s.name for s in walk] == ["y", "x", "z"]


def test_structured_optimize_is_made_once_per_level():
    x = sg.symbols("x")
    M = sg.Function("f", [x], [x + x]).map(4)
    assert M.optimize() is M.optimize(1) and M.optimize(0) is M
    assert M.optimize(2) is M.optimize(2) and M.optimize(2) is not M.optimize(1)
    with pytest.raises(sg.errors.SymgraphError):
        M.optimize(True)
    np.testing.assert_allclose(M.optimize()(np.arange(4.0)), 2 * np.arange(4.0))


def test_layout_encode_decode_round_trip():
    L = Layout([2, 3, 1, 0, 2], [True, False, True, True, False], 5)
    rng = np.random.default_rng(0)
    body, inst = rng.integers(0, 8, 200), rng.integers(0, 5, 200)
    flat = L.encode(body, inst)
    b2, i2 = L.decode(flat)
    assert np.array_equal(b2, body) and np.array_equal(np.where(i2 < 0, inst, i2), inst)
    shared = ~L.per_instance[L.group[body]]
    assert np.all(i2[shared] == -1) and np.array_equal(L.encode(body, 0)[shared], flat[shared])


def test_a_large_input_array_changed_in_place_is_frozen_with_its_new_symbols():
    n = 1 << 15
    x = sg.symbols("x", n)
    F = sg.Function("f", [x], [x[1:] * x[:-1]])
    assert input_positions([x])[0] is input_positions([x])[0]  # remembered
    y = sg.symbols("y")
    x[5] = y
    G = sg.Function("g", [x], [x[5] * 2])
    assert G.tape.output_slots[0].tolist() == G.tape.n_input_scalars + 1 and G.tape.symbol_names[5] == "y"
    v = np.arange(n, dtype=float)
    assert float(G(v)) == 10.0 and float(F(v)[4]) == 20.0
    with pytest.raises(sg.errors.InvalidInputError, match="appears twice"):
        sg.Function("h", [x, np.array([y], dtype=object)], [y])


def test_build_tape_with_repeated_input_symbols_keeps_the_last_place():
    x = sg.symbols("x", 3)
    inputs = [x, np.array([x[0]], dtype=object)]
    tape = build_tape(inputs, [np.array([x[0] + x[1]], dtype=object)])
    assert tape.input_slots[0].tolist() == [3, 1, 2] and tape.input_slots[1].tolist() == [3]
    assert tape.operands[0, :2].tolist() in ([3, 1], [1, 3])
