"""Instruction scheduling: a valid topological order, same values, fewer values crossing parts."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import symgraph as sg
from symgraph import vm
from symgraph.schedule import locality_order, permuted, scheduled
from strategies import points, random_graphs


def is_topological(tape) -> bool:
    first = tape.first_instruction_slot
    for i, row in enumerate(tape.operands.tolist()):
        if any(a >= first + i for a in row):
            return False
    return True


@given(random_graphs(max_steps=20), st.data())
def test_scheduled_tape_is_topological_and_equal(graph, data):
    F = graph.function()
    T = scheduled(F.tape)
    assert is_topological(T)
    assert sorted(locality_order(F.tape).tolist()) == list(range(F.tape.n_instructions))
    x = data.draw(points(len(graph.inputs)))
    flat = [np.array([[v]]) for v in x]
    np.testing.assert_array_equal(vm.run(T, flat)[0], vm.run(F.tape, flat)[0])


def test_locality_order_groups_by_index():
    x, f, g = sg.models.luksan(60)
    F = sg.Function("luksan", [x], [f, sg.grad(f, x), g])
    T = scheduled(F.tape)
    # values live across a 200-instruction window: far fewer after scheduling
    def crossing(tape, width=200):
        first = tape.first_instruction_slot
        rows = tape.operands
        idx = np.arange(tape.n_instructions)[:, None]
        used = (rows >= first) & ((idx - (rows - first)) > width)
        return int(used.sum())
    assert crossing(T) * 2 < crossing(F.tape)
    v = np.linspace(-1, 1, 60)
    for a, b in zip(vm.run(T, [v[None, :]]), vm.run(F.tape, [v[None, :]])):
        np.testing.assert_array_equal(a, b)


def test_permuted_renumbers_outputs():
    x = sg.symbols("x")
    T = sg.Function("f", [x], [sg.sin(x), sg.cos(x) * 2]).tape
    P = permuted(T, np.array([1, 2, 0]))
    assert is_topological(P)
    out = vm.run(P, [np.array([[0.5]])])
    np.testing.assert_allclose([out[0][0, 0], out[1][0, 0]], [np.sin(0.5), 2 * np.cos(0.5)])
