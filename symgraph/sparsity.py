"""Sparsity patterns and colorings: which outputs depend on which inputs.

:func:`jacobian_sparsity` finds the structural pattern of a Jacobian by
propagating dependency sets over the graph in topological order, without
building any derivative expression.  A dependency set is a pair
``(lo, bits)``: a Python int used as a bitset of input columns, shifted so
that bit 0 is column ``lo`` (local dependencies stay one machine word even
for input 10^6).  An operand propagates its set only where the op's partial
derivative is structurally nonzero (see :func:`nonzero_partials`), so
``floor``, ``sign``, comparisons and the condition of ``if_else`` stop
dependencies, exactly as symbolic differentiation does.  A result of a call
node depends on the operands that its row of the callee's own Jacobian
pattern reads (cached on the callee, :mod:`symgraph.calldiff`).

Colorings compress a sparse Jacobian into few directional derivatives:
:func:`column_coloring` (forward mode: structurally orthogonal columns,
greedy largest-first coloring of the column-intersection graph), :func:`row_coloring`
(reverse mode) and :func:`star_coloring` (symmetric Hessians: fewer colors,
each nonzero still recovered directly).

>>> import symgraph as sg
>>> x = sg.symbols("x", 3)
>>> s = jacobian_sparsity([x[0] * x[1], sg.sin(x[2])], x)
>>> s.rows.tolist(), s.cols.tolist(), s.shape
([0, 0, 1], [0, 1, 2], (2, 3))
>>> s.matrix.toarray().tolist()
[[1, 1, 0], [0, 0, 1]]
"""

from __future__ import annotations

from itertools import chain
from operator import attrgetter
from typing import Any, NamedTuple, Sequence

import numpy as np

from .expr import CONST, RESULT, SYMBOL, Expr, all_symbols, building, symbol, topological
from .ops import Op
from .sparse import sorted_unique


class _SparsityFields(NamedTuple):
    rows: np.ndarray
    cols: np.ndarray
    shape: tuple[int, int]


class Sparsity(_SparsityFields):
    """A structural sparsity pattern: nonzero ``(rows[k], cols[k])`` of a ``shape`` matrix.

    Positions are sorted column by column (CSC order), without duplicates.
    The constructor checks what it is given: ``shape`` two non-negative ints,
    ``rows`` and ``cols`` integer sequences of one length, every position
    inside the shape (ShapeError / DTypeError otherwise); they are stored as
    int64 arrays.

    >>> s = Sparsity(np.array([1, 0]), np.array([0, 1]), (2, 2))
    >>> s.nnz, s.matrix.toarray().tolist()
    (2, [[0, 1], [1, 0]])
    """

    __slots__ = ()

    def __new__(cls, rows: Any, cols: Any, shape: tuple[int, int]) -> "Sparsity":
        from .errors import ShapeError
        from .sparse import index_array, matrix_shape

        shape = matrix_shape(shape, "Sparsity")
        rows, cols = index_array(rows, "Sparsity", "rows"), index_array(cols, "Sparsity", "cols")
        if len(rows) != len(cols):
            raise ShapeError(f"Sparsity: rows and cols must have one length, got {len(rows)} and {len(cols)}")
        if len(rows) and (rows.min() < 0 or rows.max() >= shape[0] or cols.min() < 0 or cols.max() >= shape[1]):
            raise ShapeError(f"Sparsity: a position lies outside the shape {shape} (rows in "
                             f"[{rows.min()}, {rows.max()}], cols in [{cols.min()}, {cols.max()}])")
        return super().__new__(cls, rows, cols, shape)

    @property
    def nnz(self) -> int:
        """Number of structural nonzeros."""
        return len(self.rows)

    @property
    def matrix(self):
        """The pattern as a ``scipy.sparse.csc_matrix`` of int8 ones."""
        import scipy.sparse as sp

        return sp.csc_matrix((np.ones(self.nnz, dtype=np.int8), (self.rows, self.cols)), shape=self.shape)

    def transpose(self) -> "Sparsity":
        """The transposed pattern (CSC order again).

        >>> Sparsity(np.array([0]), np.array([2]), (1, 3)).transpose().shape
        (3, 1)
        """
        return pattern(self.cols, self.rows, (self.shape[1], self.shape[0]))


def pattern(rows: Any, cols: Any, shape: tuple[int, int]) -> Sparsity:
    """A :class:`Sparsity` from positions in any order (duplicates merged).

    >>> pattern([1, 0, 1], [0, 1, 0], (2, 2)).rows.tolist()
    [1, 0]
    """
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    cols = np.asarray(cols, dtype=np.int64).reshape(-1)
    shape = (int(shape[0]), int(shape[1]))
    key = sorted_unique(cols * max(shape[0], 1) + rows)
    return Sparsity(key % max(shape[0], 1), key // max(shape[0], 1), shape)


# ----------------------------------------------------- structural partials
_FLAGS: dict[Any, tuple[bool, ...]] = {}


def _is_zero(p: Any) -> bool:
    if type(p) is Expr:
        return p.op is CONST and p.data == 0.0
    return p == 0.0


def nonzero_partials(node: Expr) -> tuple[bool, ...]:
    """Per operand of ``node``, whether its partial derivative is structurally nonzero.

    Decided by the op table's own derivative rule, evaluated once on fresh
    symbols (with ``node``'s constant operands kept, since a constant can
    make a partial vanish: ``d pow(1, y)/dy = log(1)*r = 0``) and cached.
    Constant operands themselves are reported as False.  For a call node,
    an operand is live where some result's derivative reads it (the
    callee's Jacobian pattern, :mod:`symgraph.calldiff`); a result node's
    one operand (its call) is live where the result reads any operand.

    >>> import symgraph as sg
    >>> x, y = sg.symbols("x"), sg.symbols("y")
    >>> nonzero_partials(x * y), nonzero_partials(sg.floor(x)), nonzero_partials(sg.if_else(x, y, x))
    ((True, True), (False,), (False, True, True))
    """
    if node.op.has("structural"):
        return _structural_flags(node)
    return _flags(node)


def _flags(node: Expr) -> tuple[bool, ...]:
    """:func:`nonzero_partials` of a scalar node; KeyError for a call or result node."""
    args = node.args
    op = node.op
    for a in args:
        if a.op is CONST:
            key = (op,) + tuple(a if a.op is CONST else None for a in args)
            break
    else:
        key = op
    flags = _FLAGS.get(key)
    if flags is None:
        flags = _FLAGS[key] = _partial_flags(op, args)
    return flags


def _structural_flags(node: Expr) -> tuple[bool, ...]:
    """Call: per operand, whether any result's derivative reads it; result: whether it reads any operand."""
    from .calldiff import column_rows, row_columns

    if node.op is RESULT:
        return (bool(row_columns(node.args[0].data)[node.data]),)
    return tuple(a.op is not CONST and bool(rows) for a, rows in zip(node.args, column_rows(node.data)))


def _partial_flags(op: Op, args: tuple) -> tuple[bool, ...]:
    if op.has("structural"):  # a call or a result: no rule of its own (see dependencies)
        raise KeyError(op.name)
    if op.deriv is None or op.has("flat"):
        return (False,) * len(args)
    operands = [a if a.op is CONST else symbol(f"_a{k}") for k, a in enumerate(args)]
    with np.errstate(all="ignore"):
        partials = op.deriv(*operands, symbol("_r"))
    return tuple(a.op is not CONST and not _is_zero(p) for a, p in zip(args, partials))


def _plain_flags() -> dict[Op, tuple[bool, ...]]:
    """nonzero_partials of every scalar op on operands that are not constants (no call, no result)."""
    from .ops import OP_LIST

    return {op: _partial_flags(op, tuple(symbol(f"_a{k}") for k in range(op.arity)))
            for op in OP_LIST if op.arity > 0 and not op.has("structural")}


_PLAIN_FLAGS = _plain_flags()


# --------------------------------------------------- dependency propagation
_WIDE_BUDGET = 1 << 28  # bits of wide dependency sets kept before unused ones are dropped
_WIDE = 1 << 12         # a set wider than this many bits counts as wide


def dependencies(roots: Sequence[Expr], columns: dict[Expr, int],
                 order: list[Expr] | None = None) -> list[tuple[int, int] | None]:
    """Per root, its dependency set ``(lo, bits)`` over the symbols in ``columns`` (None if empty).

    ``columns`` maps symbols to column numbers; ``order`` may pass a
    precomputed :func:`~symgraph.expr.topological` order of ``roots``.

    >>> x, y = symbol("x"), symbol("y")
    >>> dependencies([x * y, y + 1, 2.0 + y * 0], {x: 0, y: 1})
    [(0, 3), (1, 1), None]
    """
    if order is None:
        order = topological(roots)
    masks: dict[Expr, tuple[int, int]] = {s: (j, 1) for s, j in columns.items()}
    get = masks.get
    plain = _PLAIN_FLAGS
    flags_of = _FLAGS.get
    wide_bits, wide = 0, []
    # Call and result nodes have no entry in `plain` and make `_flags` raise KeyError: the
    # loop stops there, the node is handled below, and the loop resumes after it (so the
    # scalar hot path has no check of its own).
    steps = enumerate(order)
    while True:
        try:
            for position, node in steps:
                args = node.args
                if not args:
                    continue
                if len(args) == 1:  # a unary node never has a constant operand (it would fold)
                    if plain[node.op][0]:
                        m = get(args[0])
                        if m is not None:
                            masks[node] = m
                    continue
                if len(args) == 2:
                    a, b = args
                    if a.op is CONST:  # one constant operand: the other's set or nothing
                        m = get(b)
                        if m is not None:
                            flags = flags_of((node.op, a, None))  # _flags' key, made inline
                            if (flags if flags is not None else _flags(node))[1]:
                                masks[node] = m
                        continue
                    if b.op is CONST:
                        m = get(a)
                        if m is not None:
                            flags = flags_of((node.op, None, b))
                            if (flags if flags is not None else _flags(node))[0]:
                                masks[node] = m
                        continue
                    fa, fb = plain[node.op]
                    m = get(a) if fa else None
                    mb = get(b) if fb else None
                    if mb is None or mb is m:
                        if m is not None:
                            masks[node] = m
                        continue
                    if m is None:
                        masks[node] = mb
                        continue
                else:
                    m = None
                    mb = None
                    for a, live in zip(args, _flags(node)):
                        ma = get(a) if live else None
                        if ma is None:
                            continue
                        if m is None or m is ma:
                            m = ma
                            continue
                        m = _union(m, ma)
                    if m is not None:
                        masks[node] = m
                        if m[1].bit_length() <= _WIDE:
                            continue
                        wide.append(node)
                        wide_bits += m[1].bit_length()
                    continue
                # union of two distinct sets m, mb (inline: the hot path)
                l1, b1 = m
                l2, b2 = mb
                if l1 == l2:
                    bits = b1 | b2
                    m = m if bits == b1 else (mb if bits == b2 else (l1, bits))
                elif l1 < l2:
                    m = (l1, b1 | (b2 << (l2 - l1)))
                else:
                    m = (l2, b2 | (b1 << (l1 - l2)))
                masks[node] = m
                width = m[1].bit_length()
                if width > _WIDE:
                    wide.append(node)
                    wide_bits += width
                    if wide_bits > _WIDE_BUDGET:
                        wide_bits, wide = _drop_unused(masks, wide, order, position, roots)
            break
        except KeyError:
            if not node.op.has("structural"):
                raise
        m = _structural_dependencies(node, get)
        if m is None:
            continue
        masks[node] = m
        if type(m) is tuple and m[1].bit_length() > _WIDE:
            wide.append(node)
            wide_bits += m[1].bit_length()
            if wide_bits > _WIDE_BUDGET:
                wide_bits, wide = _drop_unused(masks, wide, order, position, roots)
    return [get(r) if type(r) is Expr else None for r in roots]


def _structural_dependencies(node: Expr, get) -> Any:
    """The entry of a call or result node in a :func:`dependencies` pass (None: nothing).

    A call node records its operands' sets (a list, read only by its
    results); result ``j`` depends on the union of the sets of the operands
    that row ``j`` of the callee's Jacobian pattern reads (cached on the
    callee, :func:`symgraph.calldiff.row_columns`): exact per result, never
    a union over all operands.
    """
    from .calldiff import row_columns

    if node.op is RESULT:
        operand_sets = get(node.args[0])
        if operand_sets is None:
            return None
        m = None
        for i in row_columns(node.args[0].data)[node.data]:
            mi = operand_sets[i]
            if mi is not None:
                m = mi if m is None or m is mi else _union(m, mi)
        return m
    operand_sets = [get(a) for a in node.args]
    return operand_sets if any(m is not None for m in operand_sets) else None


def _union(m1: tuple[int, int], m2: tuple[int, int]) -> tuple[int, int]:
    """Union of two dependency sets ``(lo, bits)``."""
    (l1, b1), (l2, b2) = m1, m2
    if l1 > l2:
        (l1, b1), (l2, b2) = (l2, b2), (l1, b1)
    return (l1, b1 | (b2 << (l2 - l1)))


def _drop_unused(masks: dict, wide: list, order: list, position: int, roots: Sequence) -> tuple[int, list]:
    """Forget wide sets no later node (nor root) reads; keeps memory bounded on long sums."""
    needed = set(chain.from_iterable(map(attrgetter("args"), order[position + 1:])))
    needed.update(roots)
    keep = []
    for node in wide:
        if node in needed:
            keep.append(node)
        else:
            masks.pop(node, None)
    return sum(masks[n][1].bit_length() for n in keep), keep


def _bits(lo: int, bits: int) -> list[int]:
    """Column numbers in a dependency set, ascending."""
    if bits.bit_length() <= 64:
        out = []
        while bits:
            low = bits & -bits
            out.append(lo + low.bit_length() - 1)
            bits ^= low
        return out
    raw = np.frombuffer(bits.to_bytes((bits.bit_length() + 7) // 8, "little"), dtype=np.uint8)
    return (np.flatnonzero(np.unpackbits(raw, bitorder="little")) + lo).tolist()


def flat_exprs(value: Any, what: str) -> tuple[np.ndarray, list[Expr]]:
    """``value`` as an object array of Expr and its flat list (C order).

    ``what`` names the argument in the error raised for anything else.

    >>> arr, flat = flat_exprs([[1.0, symbol("y")]], "outputs")
    >>> arr.shape, [str(e) for e in flat]
    ((1, 2), ['1', 'y'])
    """
    from .array import as_expr_array
    from .errors import DifferentiationError

    try:
        arr = as_expr_array(value)
    except Exception as exc:
        raise DifferentiationError(f"{what} must be Exprs, numbers or arrays of them; got "
                                   f"{type(value).__name__} ({exc})") from None
    return arr, arr.reshape(-1).tolist()


def symbol_columns(inputs: Any) -> tuple[np.ndarray, dict[Expr, int]]:
    """Inputs as an object array and a symbol -> column map; refuses non-symbols and repeats.

    >>> import symgraph as sg
    >>> arr, cols = symbol_columns(sg.symbols("x", 2))
    >>> list(cols.values())
    [0, 1]
    """
    from .errors import DifferentiationError

    if isinstance(inputs, Expr):
        arr = np.array(inputs, dtype=object)
    else:
        arr = np.asarray(inputs, dtype=object)
    flat = arr.reshape(-1).tolist()
    if all_symbols(flat):  # the common case, checked in C
        columns: dict[Expr, int] = dict(zip(flat, range(len(flat))))  # Expr hashes by identity
        if len(columns) == len(flat):
            return arr, columns
    columns = {}
    for j, s in enumerate(flat):
        if type(s) is not Expr or s.op is not SYMBOL:
            shown = str(s) if type(s) is Expr else repr(s)
            where = f" at flat index {j}" if arr.ndim else ""
            raise DifferentiationError(f"can only differentiate with respect to symbols; the input{where} "
                                       f"is {shown[:80]}, expected a symbol made by sg.symbols")
        if s in columns:
            raise DifferentiationError(f"symbol {s.data!r} appears twice among the inputs (flat indices "
                                       f"{columns[s]} and {j}); expected distinct symbols")
        columns[s] = j
    return arr, columns


def jacobian_sparsity(outputs: Any, inputs: Any, order: list[Expr] | None = None) -> Sparsity:
    """Structural pattern of ``d outputs / d inputs`` (both flattened in C order).

    Entry ``(i, j)`` is present when output ``i`` depends on input ``j``
    through operations whose partial derivatives are not identically zero.
    No derivative expression is built; cost is one pass over the graph.

    >>> import symgraph as sg
    >>> x = sg.symbols("x", 4)
    >>> s = jacobian_sparsity(x[1:] * x[:-1] + sg.floor(x[0]), x)
    >>> s.matrix.toarray().tolist()
    [[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
    """
    _, roots = flat_exprs(outputs, "outputs")
    _, columns = symbol_columns(inputs)
    with building():
        deps = dependencies(roots, columns, order)
    rows: list[int] = []
    cols: list[int] = []
    for i, d in enumerate(deps):
        if d is not None:
            js = _bits(*d)
            cols.extend(js)
            rows.extend([i] * len(js))
    return pattern(rows, cols, (len(roots), len(columns)))


def hessian_sparsity(f: Any, x: Any) -> Sparsity:
    """Symmetric structural pattern of the Hessian of a scalar ``f``.

    It is the Jacobian pattern of the symbolic gradient graph (exactly the
    graph :func:`symgraph.hessian` sweeps), made symmetric.

    >>> import symgraph as sg
    >>> x = sg.symbols("x", 3)
    >>> hessian_sparsity(x[0] * x[1] + sg.exp(x[2]), x).matrix.toarray().tolist()
    [[0, 1, 0], [1, 0, 0], [0, 0, 1]]
    """
    from .ad import grad

    g = grad(f, x)
    s = jacobian_sparsity(g, x)
    return symmetric(s)


def symmetric(s: Sparsity) -> Sparsity:
    """The union of a square pattern with its transpose.

    >>> symmetric(Sparsity(np.array([1]), np.array([0]), (2, 2))).rows.tolist()
    [1, 0]
    """
    return pattern(np.concatenate([s.rows, s.cols]), np.concatenate([s.cols, s.rows]), s.shape)


# ----------------------------------------------------------------- coloring
def _intersection_edges(s: Sparsity) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of columns ``(a < b)`` sharing a row."""
    m = s.matrix.astype(np.int32)
    product = (m.T @ m).tocoo()
    keep = product.row < product.col
    return product.row[keep], product.col[keep]


def greedy_coloring(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Colors of vertices ``0..n-1`` of the graph with edges ``(a[k], b[k])``.

    Greedy coloring, largest degree first: vertices in decreasing order of
    degree (ties: lower vertex first), each given the least color none of its
    colored neighbours has.  The same colors as networkx's
    ``greedy_color(G, strategy="largest_first")`` on the simple graph of the
    edges (repeated edges once, a loop counting twice in the degree), without
    building the graph.

    >>> greedy_coloring(3, np.array([0, 1]), np.array([1, 2])).tolist()
    [1, 0, 1]
    """
    a, b = np.asarray(a, dtype=np.int64).reshape(-1), np.asarray(b, dtype=np.int64).reshape(-1)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    pairs = np.unique(lo * n + hi) if len(lo) else np.zeros(0, dtype=np.int64)
    lo, hi = pairs // n, pairs % n
    loop = lo == hi
    ends = np.concatenate([lo, hi[~loop]])  # each end of each edge; a loop once here ...
    others = np.concatenate([hi, lo[~loop]])
    degree = np.bincount(ends, minlength=n) + np.bincount(lo[loop], minlength=n)  # ... and twice in the degree
    order = np.argsort(-degree, kind="stable")
    by_end = np.argsort(ends, kind="stable")
    neighbours = others[by_end].tolist()
    start = np.searchsorted(ends[by_end], np.arange(n + 1)).tolist()
    colors = [-1] * n
    for u in order.tolist():
        taken = {colors[v] for v in neighbours[start[u]:start[u + 1]]}
        c = 0
        while c in taken:
            c += 1
        colors[u] = c
    return np.array(colors, dtype=np.int64)


def column_coloring(s: Sparsity) -> np.ndarray:
    """Colors of the columns of ``s`` so that columns of one color share no row.

    One forward sweep per color then yields every nonzero (compression of
    structurally orthogonal columns, as in Curtis-Powell-Reid).

    >>> s = pattern([0, 0, 1, 1], [0, 1, 1, 2], (2, 3))
    >>> column_coloring(s).tolist()
    [1, 0, 1]
    """
    return greedy_coloring(s.shape[1], *_intersection_edges(s))


def row_coloring(s: Sparsity) -> np.ndarray:
    """Colors of the rows of ``s`` so that rows of one color share no column (reverse sweeps).

    >>> row_coloring(pattern([0, 1, 2], [0, 0, 1], (3, 2))).tolist()
    [0, 1, 0]
    """
    return column_coloring(s.transpose())


def star_coloring(s: Sparsity) -> np.ndarray:
    """A star coloring of the adjacency graph of a symmetric pattern ``s``.

    Adjacent vertices get distinct colors and every path on four vertices
    uses at least three colors (Gebremedhin, Manne & Pothen 2005, greedy
    algorithm 1), so every nonzero of a symmetric matrix can be read
    directly from the compressed product ``H @ S``: either its column's
    color is unique in its row, or its row's color is unique in its column.

    >>> n = 6  # tridiagonal
    >>> i = np.arange(n - 1)
    >>> star_coloring(symmetric(pattern(i + 1, i, (n, n)))).max() + 1
    np.int64(3)
    """
    n = s.shape[0]
    off = s.rows != s.cols
    m = pattern(s.rows[off], s.cols[off], s.shape).matrix.tocsr()
    indptr, indices = m.indptr.tolist(), m.indices.tolist()
    adj = [indices[indptr[v]:indptr[v + 1]] for v in range(n)]
    color = [-1] * n
    forbidden = [-1] * (n + 1)
    degree = np.diff(m.indptr)
    for v in np.argsort(-degree, kind="stable").tolist():
        for w in adj[v]:
            cw = color[w]
            if cw >= 0:
                forbidden[cw] = v
        for w in adj[v]:
            cw = color[w]
            if cw < 0:
                for x in adj[w]:
                    cx = color[x]
                    if cx >= 0:
                        forbidden[cx] = v
            else:
                for x in adj[w]:
                    cx = color[x]
                    if x == v or cx < 0 or forbidden[cx] == v:
                        continue
                    for y in adj[x]:
                        if y != w and color[y] == cw:
                            forbidden[cx] = v
                            break
        c = 0
        while forbidden[c] == v:
            c += 1
        color[v] = c
    return np.asarray(color, dtype=np.int64)


def star_recovery(s: Sparsity, color: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where to read each nonzero of symmetric ``s`` in ``B = H @ S`` (S from ``color``).

    Returns ``(row, col)`` arrays: ``H[s.rows[k], s.cols[k]] == B[row[k], col[k]]``.
    Uses the column's color in the entry's row when it is unique there, else
    the row's color in the entry's column (symmetry), as a star coloring allows.

    >>> sym = symmetric(pattern([1, 2], [0, 1], (3, 3)))
    >>> r, c = star_recovery(sym, np.array([0, 1, 0]))
    >>> r.tolist(), c.tolist()
    ([0, 0, 2, 2], [1, 1, 1, 1])
    """
    ncol = int(color.max()) + 1 if len(color) else 1
    rows, cols = s.rows, s.cols
    # how many nonzeros of row i carry color c (the diagonal included)
    key = rows * ncol + color[cols]
    uniq, counts = np.unique(key, return_counts=True)
    count = counts[np.searchsorted(uniq, key)]
    direct = count == 1
    read_row = np.where(direct, rows, cols)
    read_col = np.where(direct, color[cols], color[rows])
    return read_row, read_col
