"""sparsity.greedy_coloring: the colors of networkx's largest-first greedy coloring, without networkx's graph."""

import networkx as nx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import symgraph as sg
from symgraph.models import luksan
from symgraph.sparsity import column_coloring, greedy_coloring, jacobian_sparsity, row_coloring


def networkx_colors(n, a, b):
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(zip(a.tolist(), b.tolist()))
    colors = nx.greedy_color(graph, strategy="largest_first")
    return np.array([colors[v] for v in range(n)], dtype=np.int64)


def proper(n, a, b, colors):
    off = a != b
    return bool(np.all(colors[a[off]] != colors[b[off]]))


@given(st.integers(1, 40), st.lists(st.tuples(st.integers(0, 39), st.integers(0, 39)), max_size=120))
def test_same_colors_as_networkx(n, edges):
    """Random graphs, with repeated edges (both ways round) and loops."""
    edges = [(i % n, j % n) for i, j in edges]
    a = np.array([i for i, _ in edges], dtype=np.int64)
    b = np.array([j for _, j in edges], dtype=np.int64)
    colors = greedy_coloring(n, a, b)
    assert colors.tolist() == networkx_colors(n, a, b).tolist()
    assert proper(n, a, b, colors)


@pytest.mark.parametrize("n", [10, 300])
def test_luksan_patterns(n):
    """The colorings sg.jacobian uses, on the Luksan constraints: as networkx's, and structurally orthogonal."""
    x, _, g = luksan(n)
    pat = jacobian_sparsity(list(g), x)
    cols, rows = column_coloring(pat), row_coloring(pat)
    dense = pat.matrix.toarray() != 0
    for k in range(cols.max() + 1):  # columns of one color share no row
        assert dense[:, cols == k].sum(axis=1).max() <= 1
    for k in range(rows.max() + 1):
        assert dense[rows == k].sum(axis=0).max() <= 1
    assert cols.max() + 1 == 3  # the pattern has 3 nonzeros in each row: 3 colors are needed and enough
    J = sg.jacobian(g, x)
    assert J.mode == "forward" and J.n_colors == 3


def test_edge_cases():
    assert greedy_coloring(0, np.zeros(0, int), np.zeros(0, int)).tolist() == []
    assert greedy_coloring(3, np.zeros(0, int), np.zeros(0, int)).tolist() == [0, 0, 0]
    # a star: the centre has the largest degree, so it is colored first
    centre = greedy_coloring(4, np.array([1, 2, 3]), np.array([0, 0, 0]))
    assert centre.tolist() == [0, 1, 1, 1]
    # ties in degree go to the lower vertex first (a path 0-1-2-3: 1 then 2, then 0 then 3)
    a, b = np.array([0, 1, 2]), np.array([1, 2, 3])
    assert greedy_coloring(4, a, b).tolist() == [1, 0, 1, 0] == networkx_colors(4, a, b).tolist()
