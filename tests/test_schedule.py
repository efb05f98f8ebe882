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


def reference_locality_order(tape):
    """The list schedule written plainly: smallest (lowest input slot reached, position) among the ready."""
    import heapq

    n, first, n_in = tape.n_instructions, tape.first_instruction_slot, tape.n_input_scalars
    users, waiting, key = [[] for _ in range(n)], [0] * n, [tape.n_slots] * n
    for i, row in enumerate(tape.operand_rows()):
        for a in row:
            if a >= first:
                key[i] = min(key[i], key[a - first])
                users[a - first].append(i)
                waiting[i] += 1
            elif 0 <= a < n_in:
                key[i] = min(key[i], a)
    ready = [(key[i], i) for i in range(n) if not waiting[i]]
    heapq.heapify(ready)
    order = []
    while ready:
        _, i = heapq.heappop(ready)
        order.append(i)
        for u in users[i]:
            waiting[u] -= 1
            if not waiting[u]:
                heapq.heappush(ready, (key[u], u))
    return order


@given(random_graphs(max_steps=20))
def test_locality_order_is_the_plain_list_schedule(graph):
    tape = graph.function().tape
    assert locality_order(tape).tolist() == reference_locality_order(tape)


def test_locality_order_with_calls_and_repeated_operands():
    x = sg.symbols("x", 3)
    inner = sg.Function("inner", [x], [x * x, x.sum()])
    y = sg.symbols("y", 4)
    sq, total = inner(y[1:] * y[0])
    out = sg.Function("outer", [y], [sq * total + y[3] * y[3], inner([y[2], y[2], y[0]])[1]])
    assert locality_order(out.tape).tolist() == reference_locality_order(out.tape)
    empty = sg.Function("id", [y], [y]).tape
    assert locality_order(empty).tolist() == [] == reference_locality_order(empty)
