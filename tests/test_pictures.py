"""Pictures: DOT text (parsed back with pydot and networkx), SVG/PNG through Graphviz, spy, debugprint."""

import io
import shutil
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import symgraph as sg
from symgraph.errors import InvalidInputError, MissingToolError, OptionError, ShapeError, SymgraphError
from symgraph.pictures import draw, graph_summary, spy, to_dot
from symgraph.printing import debugprint

DOT = shutil.which("dot")
needs_dot = pytest.mark.skipif(DOT is None, reason="Graphviz's dot is not installed (apt-get install graphviz)")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# pydot's parser calls pyparsing names that newer pyparsing deprecates: not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated.*:DeprecationWarning")


def parse(text):
    """The pydot graph of ``text`` (one graph)."""
    pydot = pytest.importorskip("pydot", reason="pydot is needed to parse the DOT text")
    graphs = pydot.graph_from_dot_data(text)
    assert graphs is not None and len(graphs) == 1, text[:500]
    return graphs[0]


def nodes(graph):
    """``{name: label}`` of every node statement, clusters included (not the node/edge/graph defaults)."""
    found, stack = {}, [graph]
    while stack:
        g = stack.pop()
        for node in g.get_nodes():
            name = node.get_name().strip('"')
            if name not in ("node", "edge", "graph"):
                found[name] = (node.get_label() or "").strip('"')
        stack.extend(g.get_subgraphs())
    return found


def edges(graph):
    found, stack = [], [graph]
    while stack:
        g = stack.pop()
        found += [(e.get_source().strip('"'), e.get_destination().strip('"'), e.get("style")) for e in g.get_edges()]
        stack.extend(g.get_subgraphs())
    return found


def shared_example():
    x, y = sg.symbols("x"), sg.symbols("y")
    s = sg.sin(x * y)  # shared by three uses
    return sg.Function("f", [x, y], [s * s + sg.exp(s), s - 1.5], output_names=["a", "b"])


# ---------------------------------------------------------------- to_dot


def test_shared_nodes_drawn_once():
    F = shared_example()
    g = parse(to_dot(F))
    labels = sorted(nodes(g).values())
    # inputs x, y; constant 1.5; mul, sin, mul (s*s), exp, add, sub; outputs a, b: every Tape slot once
    assert labels == sorted(["x", "y", "1.5", "mul", "sin", "mul", "exp", "add", "sub", "a", "b"]), labels
    assert labels.count("sin") == 1
    # the sin node feeds mul (s*s, one edge though read twice), exp and sub
    names = {label: name for name, label in nodes(g).items() if label in ("sin", "exp", "sub")}
    out_of_sin = {d for s, d, _ in edges(g) if s == names["sin"]}
    assert len(out_of_sin) == 3 and names["exp"] in out_of_sin and names["sub"] in out_of_sin
    assert F.to_dot() == to_dot(F)


def test_node_count_matches_tape():
    x = sg.symbols("x", 4)
    F = sg.Function("g", [x], [sg.sin(x) * x[0], (x ** 2).sum()])
    g = parse(to_dot(F))
    tape = F.tape
    expected = F.n_in + len(tape.constants) + tape.n_instructions + F.n_out
    assert len(nodes(g)) == expected
    # edges from the vector input name the element they carry
    assert 'label="[3]"' in to_dot(F)


def test_networkx_reads_it():
    nx = pytest.importorskip("networkx")
    pytest.importorskip("pydot")
    text = to_dot(shared_example())
    G = nx.nx_pydot.read_dot(io.StringIO(text))
    labels = [d.get("label", "").strip('"') for _, d in G.nodes(data=True)]
    assert labels.count("sin") == 1 and "a" in labels and "b" in labels


def test_map_of_1000_is_a_small_graph():
    x, p = sg.symbols("x", 2), sg.symbols("p")
    body = sg.Function("body", [x, p], [p * x[0] * x[1]])
    M = body.map(1000, shared=["p"])
    X, q = sg.symbols("X", (1000, 2)), sg.symbols("q")
    G = sg.Function("g", [X, q], [M(X, q).sum() * 0 + M(X, 2 * q)[0]])
    for F in (M, G):
        text = to_dot(F)
        g = parse(text)
        assert len(nodes(g)) < 40, len(nodes(g))
        assert "map of body over 1000 instances" in text
    labels = list(nodes(parse(to_dot(M))).values())
    assert labels.count("mul") == 2  # the body once: p * x0, * x1
    # a call of the map points at the map's cluster, which points at the body's
    dashed = [e for e in edges(parse(to_dot(G))) if e[2] == "dashed"]
    assert len(dashed) >= 2


def test_callee_drawn_once_as_cluster():
    y = sg.symbols("y")
    h = sg.Function("h", [y], [sg.exp(y) * y])
    x = sg.symbols("x", 3)
    G = sg.Function("g", [x], [h(x[0]) + h(x[1]) + h(x[2])])
    g = parse(to_dot(G))
    clusters = [s for s in g.get_subgraphs() if s.get_name().startswith("cluster_")]
    assert len(clusters) == 1 and clusters[0].get_label().strip('"') == "h"
    labels = list(nodes(g).values())
    assert labels.count("call h") == 3 and labels.count("exp") == 1


def test_fold_cluster():
    s, u = sg.symbols("s"), sg.symbols("u")
    Fo = sg.Function("step", [s, u], [s * u + 1]).fold(50)
    text = to_dot(Fo)
    parse(text)
    assert "fold of step over 50 steps" in text


def test_summary_above_max_nodes():
    x = sg.symbols("x", 120)
    e = x[0]
    for k in range(1, 120):
        e = sg.sin(e) * x[k]
    F = sg.Function("big", [x], [e, x.sum()])
    full = parse(to_dot(F, max_nodes=10_000))
    assert len(nodes(full)) == 1 + 3 * 119 + 2
    text = to_dot(F, max_nodes=100)
    g = parse(text)
    assert len(nodes(g)) <= 10
    assert "more than max_nodes=100" in text
    facts = graph_summary(F)
    assert facts.op_counts == {"add": 119, "mul": 119, "sin": 119}
    assert facts.cones == (238, 119)
    assert graph_summary(F, max_cones=1).cones == (238,) and graph_summary(F, max_cones=0).cones == ()
    with pytest.raises(OptionError, match="max_cones"):
        graph_summary(F, max_cones=-1)
    assert "cone: 238 ops" in text and "sin: 119" in text


def test_summary_of_a_huge_graph_is_quick():
    import time

    x = sg.symbols("x", 2000)
    F = sg.Function("wide", [x], [sg.sin(x) * x[::-1] + 1.0])
    start = time.perf_counter()
    text = to_dot(F)
    assert time.perf_counter() - start < 10
    assert len(parse(text).get_nodes()) < 30
    assert "summary" in text


def test_bad_arguments():
    F = shared_example()
    with pytest.raises(InvalidInputError, match="expected a symgraph Function"):
        to_dot("f")
    for bad in (0, -3, 2.5, True, "10"):
        with pytest.raises(OptionError, match="max_nodes"):
            to_dot(F, max_nodes=bad)
    with pytest.raises(OptionError, match="format"):
        draw(F, "graph.txt")
    with pytest.raises(OptionError, match="format"):
        draw(F, "graph.svg", format="jpeg")
    with pytest.raises(OptionError, match="timeout"):
        draw(F, "graph.svg", timeout=0)


def test_quoting_of_odd_names():
    x = sg.symbols('a"b\\c')
    F = sg.Function('we"ird\nname', [x], [x + 1], output_names=['o"ut'])
    g = parse(to_dot(F))
    assert 'o\\"ut' in nodes(g).values()


# ---------------------------------------------------------------- draw


@needs_dot
def test_draw_svg(tmp_path):
    F = shared_example()
    path = tmp_path / "f.svg"
    assert F.draw(path) == str(path)
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    texts = [t.text for t in root.iter() if t.tag.endswith("text")]
    assert texts.count("sin") == 1 and "a" in texts


@needs_dot
def test_draw_png_and_explicit_format(tmp_path):
    F = shared_example()
    path = draw(F, tmp_path / "f.png")
    with open(path, "rb") as fh:
        assert fh.read(8) == PNG_MAGIC
    other = draw(F, tmp_path / "picture", format="SVG")
    ET.parse(other)


def test_draw_dot_text_needs_no_graphviz(tmp_path):
    F = shared_example()
    path = draw(F, tmp_path / "f.dot", max_nodes=5)
    assert open(path).read() == to_dot(F, max_nodes=5)


def test_draw_without_graphviz(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot on PATH
    with pytest.raises(MissingToolError, match="apt-get install graphviz") as info:
        draw(shared_example(), tmp_path / "f.svg")
    assert isinstance(info.value, SymgraphError) and isinstance(info.value, ImportError)
    assert not (tmp_path / "f.svg").exists()


def test_draw_reports_a_failing_dot(tmp_path, monkeypatch):
    fake = tmp_path / "dot"
    fake.write_text("#!/bin/sh\necho 'Error: syntax error in line 1' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(InvalidInputError, match="dot failed.*syntax error"):
        draw(shared_example(), tmp_path / "f.svg")


@needs_dot
def test_draw_into_missing_directory(tmp_path):
    with pytest.raises(InvalidInputError, match="cannot write"):
        draw(shared_example(), tmp_path / "nope" / "f.svg")


# ---------------------------------------------------------------- spy


@pytest.fixture
def plt():
    matplotlib = pytest.importorskip("matplotlib", reason="matplotlib is needed for spy (symgraph[plot])")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def hessian_example(n=30):
    x = sg.symbols("x", n)
    f = sum((x[i + 1] - x[i] ** 2) ** 2 for i in range(n - 1)) + x[0] * x[n - 1]
    return x, sg.hessian(f, x)


def test_spy_hessian_points(plt):
    x, H = hessian_example()
    ax = spy(H)
    xy = ax.lines[0].get_xydata()
    assert len(xy) == H.nnz
    # the points are (col, row) of the nonzeros: tridiagonal plus the two corners
    points = {(int(c), int(r)) for c, r in xy}
    assert points == set(zip(H.cols.tolist(), H.rows.tolist()))
    assert (29, 0) in points and (0, 29) in points and (5, 5) in points and (7, 5) not in points
    assert ax.get_title() == f"30 x 30, nnz = {H.nnz}"
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # row 0 at the top


def test_spy_inputs_agree(plt):
    x, H = hessian_example(12)
    F = sg.Function("H", [x], [H])
    as_scipy = F(np.linspace(0.1, 1.0, 12))
    pattern = sg.sparsity.Sparsity(H.rows, H.cols, H.shape) if hasattr(sg, "sparsity") else None
    forms = [H, as_scipy, as_scipy.toarray(), F.output_pattern(0), H.to_dense()]
    if pattern is not None:
        forms.append(pattern)
    expected = set(zip(H.cols.tolist(), H.rows.tolist()))
    for form in forms:
        fig, ax = plt.subplots()
        assert spy(form, ax=ax, markersize=2) is ax
        assert {(int(c), int(r)) for c, r in ax.lines[0].get_xydata()} == expected, type(form)
        assert ax.lines[0].get_markersize() == 2


def test_spy_large_pattern_is_an_image(plt):
    import scipy.sparse as sp

    A = sp.random(3000, 3000, density=0.03, random_state=0, format="csr")
    ax = spy(A)
    assert not ax.lines and len(ax.images) == 1
    assert ax.get_title() == f"3000 x 3000, nnz = {A.nnz}"


def test_spy_bad_input(plt):
    with pytest.raises(ShapeError, match="2-D"):
        spy(np.ones(3))
    with pytest.raises(InvalidInputError, match="Sparsity, SparseExpr"):
        spy("pattern")


def test_spy_without_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    with pytest.raises(MissingToolError, match=r"pip install \"symgraph\[plot\]\""):
        spy(np.eye(3))


# ---------------------------------------------------------------- debugprint


def test_debugprint_shared_once():
    F = shared_example()
    text = debugprint(F)
    lines = text.splitlines()
    assert lines[0] == "f: (x, y) -> (a, b)"
    sin = [l for l in lines if "sin [id" in l]
    assert len(sin) == 4  # printed once in full, then referred to by s * s, exp(s) and s - 1.5
    assert sum("(see above)" not in l for l in sin) == 1
    full = next(i for i, l in enumerate(lines) if "sin [id" in l and "(see above)" not in l)
    assert "mul [id" in lines[full + 1]  # its operand, indented below it
    assert lines[full + 1].index("mul") > lines[full].index("sin")
    assert F.debugprint() == text
    assert "b = sub [id" in text and "1.5 [id" in text


def test_debugprint_ids_are_tape_slots():
    x = sg.symbols("x")
    F = sg.Function("f", [x], [sg.sin(x) + 1])
    # @0 = x, @1 = 1, @2 = sin(@0), @3 = add(@1, @2)
    expected = ["o0 = add [id 3]", "├─ 1 [id 1]", "└─ sin [id 2]", "   └─ x [id 0]"]
    assert debugprint(F).splitlines()[1:] == expected


def test_debugprint_calls_and_maps():
    x, p = sg.symbols("x", 2), sg.symbols("p")
    body = sg.Function("body", [x, p], [p * x[0] * x[1]])
    M = body.map(1000, shared=["p"])
    X, q = sg.symbols("X", (1000, 2)), sg.symbols("q")
    G = sg.Function("g", [X, q], [M(X, q)])
    text = debugprint(G)
    assert len(text.splitlines()) < 30
    assert "results 0..999 of call body_map1000 (map of body over 1000 instances; shared: p)" in text
    assert "X (1000, 2) [id 0..1999]" in text
    assert "Functions called" in text and "body: (x (2,), p) -> (o0)" in text
    assert text.count("body: (x") == 1  # the body listed once


def test_debugprint_deep_chain():
    z = sg.symbols("z")
    e = z
    for i in range(100_000):
        e = sg.sin(e) if i % 2 else e * z
    F = sg.Function("chain", [z], [e])
    text = debugprint(F)
    lines = text.splitlines()
    assert sum(" [id " in l and ("sin" in l or "mul" in l) and "(see" not in l and "(continued below)" not in l
               for l in lines) == 100_000
    assert max(map(len, lines)) < 200  # bounded width: continued as new roots
    assert sum(l.startswith("(continued) ") for l in lines) > 1000


def test_debugprint_limit_and_file():
    z = sg.symbols("z")
    e = z
    for _ in range(1000):
        e = sg.sin(e)
    F = sg.Function("chain", [z], [e])
    out = io.StringIO()
    text = debugprint(F, limit=10, file=out)
    assert out.getvalue() == text + "\n"
    lines = text.splitlines()
    assert len(lines) == 11 and lines[-1] == "... (cut at limit=10 lines)"


def test_debugprint_sparse_output_names():
    x = sg.symbols("x", 3)
    F = sg.Function("J", [x], [sg.jacobian(sg.sin(x) * x[0], x)])
    text = debugprint(F)
    assert "o0[0,0] = " in text and "o0[2,0] = " in text and "o0[0,1]" not in text


def test_debugprint_bad_options():
    F = shared_example()
    with pytest.raises(InvalidInputError):
        debugprint(42)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(OptionError, match="limit"):
            debugprint(F, limit=bad)
        with pytest.raises(OptionError, match="max_depth"):
            debugprint(F, max_depth=bad)
    with pytest.raises(OptionError, match="file"):
        debugprint(F, file="out.txt")
