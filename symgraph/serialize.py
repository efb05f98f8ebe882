"""Save and load Functions: symgraph's versioned binary file format (``.sgf``).

``save(F, path)`` / ``load(path)`` and ``to_bytes(F)`` / ``from_bytes(data)``
write and read a :class:`~symgraph.Function` (ordinary, structured, with
calls and custom derivative rules) in a self-contained binary format.
Pickling a Function (``pickle``, ``copy.deepcopy``, ``multiprocessing``)
goes through the same bytes.  Loading never executes anything from the
file: it holds only numbers, strings and arrays, every field is checked,
and anything malformed raises :class:`~symgraph.errors.SerializationError`.

>>> import numpy as np, symgraph as sg
>>> x = sg.symbols("x", 2)
>>> F = sg.Function("f", [x], [sg.sin(x) * x[1]])
>>> G = from_bytes(to_bytes(F))
>>> G.name, G.input_names, bool(np.all(G(np.array([0.5, 2.0])) == F(np.array([0.5, 2.0]))))
('f', ('x',), True)

File layout (format version 1; all integers little-endian)
-----------------------------------------------------------

::

    header   MAGIC (8 bytes: 89 'S' 'G' 'F' 0D 0A 1A 0A)
             u16 format version, u16 flags (0), u32 number of sections
    section  4-byte ASCII tag, u64 payload length, payload      (repeated)
    trailer  u32 CRC-32 (zlib.crc32) of every byte before it

Sections, in order: one ``META`` then one ``FUNC`` per table entry.  A tag
whose first letter is lowercase is optional: a reader that does not know it
skips it (room for additions that older readers may ignore); an unknown
upper-case tag is refused.  Each payload is one *value*:

* ``N`` None, ``T`` True, ``F`` False;
* ``i`` int64; ``f`` float64;
* ``s`` u32 byte length + UTF-8 text;
* ``t`` u32 count + that many values (a tuple);
* ``a`` an array: u8 dtype code (1 int8, 2 int16, 3 int32, 4 int64,
  5 float64), u8 ndim, ndim x u64 dims, then the C-order data.  Integer
  arrays are written in the narrowest of those types that holds them and
  read back as int64.

``META`` is ``("symgraph", FORMAT_VERSION, n_entries)``.  The ``FUNC``
entries form a table, callees before callers; the last one is the
Function saved.  An entry is ``(name, input_names, output_names,
output_sparsity, kind, body, rules)``:

* ``output_sparsity``: per output None (dense) or ``(rows, cols, (m, n))``;
* ``kind`` ``"tape"``: ``body`` is the Tape as
  :func:`symgraph.tape.tape_to_data` gives it (ops by *name*, so the op
  table can grow; calls name callees by their position in the table),
  except its symbol names: per input either one str ``base`` (the names
  are ``base[i,j...]`` as ``sg.symbols(base, shape)`` makes them) or the
  tuple of names;
* ``kind`` ``"structure"``: ``body`` is the structure record
  (``structure.to_data(index)``: ``("map", body, n, shared, reduce)``,
  ``("fold", body, n, shared, last)``, ...), rebuilt by
  ``STRUCTURE_LOADERS[record[0]]``;
* ``kind`` ``"stop_gradient"``: ``body`` is the number of scalars ``n``
  (the identity with a zero derivative of :func:`symgraph.custom.stop_gradient`);
* ``rules``: the user derivative rules of a ``"tape"`` entry made by
  ``custom_jvp``/``custom_vjp``, as ``(("jvp", position), ("vjp",
  position))`` (the given ones), each rule Function an earlier entry.

Version policy: ``FORMAT_VERSION`` changes when the layout above changes;
every later symgraph reads every earlier version (``tests/data`` keeps a
golden file of each), and a file of a newer version than the reader knows
is refused with a message saying so.  New optional data goes into
lower-case sections, which do not need a new version.

Limits on hostile input: every declared length or count is checked against
the bytes that remain before anything is allocated; values nest at most
``MAX_DEPTH`` deep; a structured Function called from a Tape may have at
most :func:`called_scalar_limit` scalars (legitimate files have far fewer:
their callers' operands are in the file).  Structured Functions are
rebuilt lazily, as in memory: a map over 10^12 instances loads in
microseconds (and evaluating it costs what it costs).

What comes back: an ordinary Function keeps the file's Tape as it is
(callees in the order of their first call, as when it was built), with
new input symbols of the saved names and its output graphs rebuilt over
them, one node per instruction; from ``LAZY_OUTPUTS`` instructions on,
the graphs are rebuilt when first read (evaluation and compilation read
only the Tape).  A structured Function is rebuilt by its structure's
loader over its loaded body, a Function with rules carries them again
(``custom_rules(G)``), and each Function of the table is made once, so
callees shared in the original are shared in the copy.
"""

from __future__ import annotations

import os
import re
import struct
import tempfile
import threading
import zlib
from typing import Any, Callable

import numpy as np

from .errors import NotPicklableError, OverwriteError, SerializationError, SymgraphError
from .function import Function

__all__ = ["save", "load", "to_bytes", "from_bytes", "STRUCTURE_LOADERS", "FORMAT_VERSION", "MAGIC"]

MAGIC = b"\x89SGF\r\n\x1a\n"
FORMAT_VERSION = 1
MAX_DEPTH = 32  # nesting of tuples in one value
_HEADER = struct.Struct("<8sHHI")
_SECTION = struct.Struct("<4sQ")
_CRC = struct.Struct("<I")
_I64, _F64, _U32, _U64 = struct.Struct("<q"), struct.Struct("<d"), struct.Struct("<I"), struct.Struct("<Q")
_INT_TYPES = (np.dtype("<i1"), np.dtype("<i2"), np.dtype("<i4"), np.dtype("<i8"))
_DTYPES = {1: _INT_TYPES[0], 2: _INT_TYPES[1], 3: _INT_TYPES[2], 4: _INT_TYPES[3], 5: np.dtype("<f8")}
_CODES = {dt: code for code, dt in _DTYPES.items()}
_ARRAY_NAME = re.compile(r"^(.*)\[[0-9,]+\]$", re.S)


# ------------------------------------------------------------------ public API
def to_bytes(F: Function) -> bytes:
    """``F`` in symgraph's file format (see the module docstring), as bytes.

    Raises :class:`~symgraph.errors.NotPicklableError` naming a Function
    the format cannot hold (a derivative rule or structure kind it does
    not know), rather than drop part of it.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> data = to_bytes(sg.Function("f", [x], [x + 1]))
    >>> data[:4], len(data) < 400
    (b'\\x89SGF', True)
    """
    if not isinstance(F, Function):
        raise SerializationError(f"to_bytes: expected a symgraph Function, got {type(F).__name__}")
    table = _table(F)
    index = {G: k for k, G in enumerate(table)}  # Functions hash by identity
    sections = [(b"META", _encode(("symgraph", FORMAT_VERSION, len(table))))]
    sections += [(b"FUNC", _encode(_entry(G, index))) for G in table]
    parts = [_HEADER.pack(MAGIC, FORMAT_VERSION, 0, len(sections))]
    for tag, payload in sections:
        parts.append(_SECTION.pack(tag, len(payload)))
        parts.append(payload)
    body = b"".join(parts)
    return body + _CRC.pack(zlib.crc32(body))


def from_bytes(data: bytes | bytearray | memoryview) -> Function:
    """The Function that :func:`to_bytes` wrote, validated; :class:`~symgraph.errors.SerializationError` if malformed.

    >>> import symgraph as sg
    >>> x = sg.symbols("x")
    >>> float(from_bytes(to_bytes(sg.Function("f", [x], [x * 3])))(2.0))
    6.0
    >>> from_bytes(b"not a symgraph file")
    Traceback (most recent call last):
      ...
    symgraph.errors.SerializationError: not a symgraph file: it does not start with the symgraph magic bytes (b'\\x89SGF\\r\\n\\x1a\\n'); got b'not a sy'
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SerializationError(f"from_bytes: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    entries = _read_file(data)
    table: list[Function] = []
    limit = called_scalar_limit(len(data))
    for k, record in enumerate(entries):
        table.append(_load_entry(record, table, k, limit))
    return table[-1]


def save(F: Function, path: str | os.PathLike, *, overwrite: bool = True) -> None:
    """Write ``F`` to the file ``path`` (atomically: a temporary file beside it, then renamed).

    ``overwrite=False`` raises :class:`~symgraph.errors.OverwriteError`
    if ``path`` exists.  ``F.save(path)`` is the same.

    >>> import os, tempfile, symgraph as sg
    >>> x = sg.symbols("x")
    >>> path = os.path.join(tempfile.mkdtemp(), "f.sgf")
    >>> save(sg.Function("f", [x], [x * x]), path)
    >>> float(load(path)(3.0))
    9.0
    """
    data = to_bytes(F)
    path = os.fspath(path)
    if not overwrite and os.path.exists(path):
        raise OverwriteError(f"save: {path!r} exists (pass overwrite=True to replace it)")
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".sgf-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(path: str | os.PathLike) -> Function:
    """The Function saved in the file ``path`` (:func:`from_bytes` of its bytes).

    A missing file raises ``FileNotFoundError`` naming it; a file that is
    not a valid symgraph file raises :class:`~symgraph.errors.SerializationError`
    naming it.

    >>> import os, tempfile, symgraph as sg
    >>> x = sg.symbols("x", 3)
    >>> path = os.path.join(tempfile.mkdtemp(), "m.sgf")
    >>> sg.Function("f", [x], [x.sum()]).save(path)
    >>> load(path).input_shapes
    ((3,),)
    """
    with open(os.fspath(path), "rb") as handle:
        data = handle.read()
    try:
        return from_bytes(data)
    except SerializationError as exc:
        raise SerializationError(f"{os.fspath(path)}: {exc}") from None


def called_scalar_limit(file_size: int) -> int:
    """The most input or output scalars a Function called from a Tape may have in a file of ``file_size`` bytes.

    ``64 * file_size + 2**20``: a caller's operands are in the file, and a
    limit keeps a forged map or fold from allocating its Tape's index
    arrays out of proportion to the file.

    >>> called_scalar_limit(0)
    1048576
    """
    return 64 * int(file_size) + (1 << 20)


# ------------------------------------------------------------------ writing
def _dependencies(G: Function) -> list:
    """What ``G``'s entry refers to: its callees (or structure's children) and its rule Functions."""
    from .custom import _Rule
    from .structured import children

    deps = list(children(G))
    structure = G.structure
    if structure is not None and structure.kind == "native":  # its rules are rebuilt from its structure
        return deps
    rule = getattr(G, "derivative_rule", None)
    if isinstance(rule, _Rule):
        deps += [rule.rules[mode] for mode in sorted(rule.rules)]
    return deps


def _table(F: Function) -> list:
    """Every Function ``F`` needs and ``F`` itself, each once, dependencies first (iterative post-order)."""
    from .call import callees_bottom_up

    return callees_bottom_up([F], _dependencies)


def _entry(G: Function, index: dict) -> tuple:
    """The ``FUNC`` record of ``G`` (see the module docstring)."""
    from .custom import _Rule, _ZeroRule
    from .function import _sparsity_data
    from .tape import tape_to_data

    structure = G.structure
    native = structure is not None and structure.kind == "native"  # its rules come with its structure
    rule = None if native else getattr(G, "derivative_rule", None)
    if native and not structure.savable:
        raise NotPicklableError(f"Function {G.name!r} ({structure.describe()}) cannot be saved to a file: it would "
                                f"carry code to compile")
    head = (G.name, tuple(G.input_names), tuple(G.output_names), _sparsity_data(G))
    if rule is not None and not isinstance(rule, (_Rule, _ZeroRule)) or rule is not None and structure is not None:
        raise NotPicklableError(f"Function {G.name!r} carries a derivative rule of type {type(rule).__name__}, "
                                f"which the symgraph file format cannot hold; saved without it, its derivatives "
                                f"would silently change")
    if isinstance(rule, _ZeroRule):
        return head + ("stop_gradient", int(G.tape.n_input_scalars), ())
    if structure is not None:
        try:
            record = structure.to_data(index)
        except NotPicklableError as exc:
            raise NotPicklableError(f"Function {G.name!r}: {exc}") from exc
        return head + ("structure", record, ())
    tape = tape_to_data(G.tape, index)
    tape = tape[:8] + (_compact_names(tape[8], tape[6]),) + tape[9:]
    rules = () if rule is None else tuple((mode, index[rule.rules[mode]]) for mode in sorted(rule.rules))
    return head + ("tape", tape, rules)


def _compact_names(names: tuple, input_slots: tuple) -> tuple:
    """Per input, ``base`` where its names are those ``sg.symbols(base, shape)`` gives, else the tuple of them."""
    from .tape import element_names

    out, start = [], 0
    for slots in input_slots:
        block = names[start:start + slots.size]
        start += slots.size
        base = None
        if block:
            match = _ARRAY_NAME.match(block[0]) if slots.ndim else None
            base = block[0] if not slots.ndim else (match[1] if match else None)
        out.append(base if base and tuple(element_names(base, slots.shape)) == block else block)
    return tuple(out)


def _encode(value: Any) -> bytes:
    """One value in the tagged encoding of the module docstring (values are shallow: recursion is bounded)."""
    parts: list[bytes] = []
    _put(value, parts)
    return b"".join(parts)


def _put(value: Any, parts: list) -> None:
    if value is None:
        parts.append(b"N")
    elif value is True or value is False or isinstance(value, np.bool_):
        parts.append(b"T" if value else b"F")
    elif isinstance(value, (int, np.integer)):
        parts.append(b"i" + _I64.pack(int(value)))
    elif isinstance(value, (float, np.floating)):
        parts.append(b"f" + _F64.pack(float(value)))
    elif isinstance(value, str):
        text = value.encode("utf-8", "surrogatepass")
        parts.append(b"s" + _U32.pack(len(text)) + text)
    elif isinstance(value, (tuple, list)):
        parts.append(b"t" + _U32.pack(len(value)))
        for v in value:
            _put(v, parts)
    elif isinstance(value, np.ndarray):
        arr = value
        if arr.dtype.kind in "iub":
            lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
            dtype = next(dt for dt in _INT_TYPES if np.iinfo(dt).min <= lo and hi <= np.iinfo(dt).max)
        elif arr.dtype.kind == "f":
            dtype = _DTYPES[5]
        else:
            raise SerializationError(f"to_bytes: cannot store an array of dtype {arr.dtype}")
        arr = arr.astype(dtype, order="C", copy=False)
        parts.append(b"a" + bytes([_CODES[dtype], arr.ndim]) + b"".join(_U64.pack(n) for n in arr.shape))
        parts.append(arr.tobytes())
    else:
        raise SerializationError(f"to_bytes: cannot store a {type(value).__name__}")


# ------------------------------------------------------------------ reading
def _read_file(data: bytes) -> list:
    """The ``FUNC`` records of a file, after checking magic, version, sections and checksum."""
    if data[:8] != MAGIC[:len(data[:8])]:
        raise SerializationError(f"not a symgraph file: it does not start with the symgraph magic bytes "
                                 f"({MAGIC!r}); got {data[:8]!r}")
    if len(data) < _HEADER.size + _CRC.size:
        raise SerializationError(f"truncated symgraph file: {len(data)} bytes, shorter than a header and "
                                 f"checksum ({_HEADER.size + _CRC.size})")
    magic, version, flags, n_sections = _HEADER.unpack_from(data, 0)
    if version > FORMAT_VERSION:
        raise SerializationError(f"symgraph file format version {version} was written by a newer symgraph; "
                                 f"this one reads versions 1 to {FORMAT_VERSION}")
    if version < 1:
        raise SerializationError(f"symgraph file format version {version} does not exist (versions start at 1)")
    if flags != 0:
        raise SerializationError(f"symgraph file: header flags must be 0 in version {version}, got {flags:#x}")
    end = len(data) - _CRC.size
    (crc,) = _CRC.unpack_from(data, end)
    if zlib.crc32(data[:end]) != crc:
        raise SerializationError("symgraph file is corrupted or truncated: its CRC-32 checksum does not match "
                                 "its contents")
    pos, sections = _HEADER.size, []
    if n_sections > (end - pos) // _SECTION.size:
        raise SerializationError(f"symgraph file declares {n_sections} sections, more than its "
                                 f"{end - pos} bytes can hold")
    for k in range(n_sections):
        if end - pos < _SECTION.size:
            raise SerializationError(f"symgraph file is truncated in the header of section {k}")
        tag, length = _SECTION.unpack_from(data, pos)
        pos += _SECTION.size
        if length > end - pos:
            raise SerializationError(f"symgraph file: section {k} ({tag!r}) declares {length} bytes, but only "
                                     f"{end - pos} remain")
        sections.append((tag, pos, pos + length))
        pos += length
    if pos != end:
        raise SerializationError(f"symgraph file has {end - pos} stray bytes after its {n_sections} sections")
    known = []
    for k, (tag, lo, hi) in enumerate(sections):
        if tag[:1].islower():
            continue  # an optional section this version does not know
        if tag not in (b"META", b"FUNC"):
            raise SerializationError(f"symgraph file: section {k} has unknown tag {tag!r} (this version knows "
                                     f"META and FUNC; a newer symgraph may have written it)")
        known.append((tag, _decode(data, lo, hi, f"section {k} ({tag.decode('ascii')})")))
    if not known or known[0][0] != b"META":
        raise SerializationError("symgraph file: the first section must be META")
    meta = known[0][1]
    entries = [value for tag, value in known[1:] if tag == b"FUNC"]
    if len(entries) != len(known) - 1:
        raise SerializationError("symgraph file: only one META section is allowed")
    if not (isinstance(meta, tuple) and len(meta) == 3 and meta[0] == "symgraph" and meta[1] == version
            and type(meta[2]) is int and meta[2] == len(entries) and entries):
        raise SerializationError(f"symgraph file: META must be ('symgraph', {version}, number of FUNC sections "
                                 f"(at least 1)), got {_shown(meta)} beside {len(entries)} FUNC section(s)")
    return entries


def _decode(data: bytes, pos: int, end: int, label: str) -> Any:
    """The one value in ``data[pos:end]`` (iterative: a stack of open tuples, at most ``MAX_DEPTH``)."""
    view = memoryview(data)
    stack: list[tuple[list, int]] = []  # (items so far, count declared)
    result: Any = None
    done = False

    def need(n: int, what: str) -> None:
        if n > end - pos:
            raise SerializationError(f"{label}: truncated: {what} needs {n} bytes at offset {pos}, but only "
                                     f"{end - pos} remain")

    while not done:
        need(1, "a value tag")
        tag = data[pos]
        pos += 1
        value: Any
        if tag == 0x4E:  # N
            value = None
        elif tag == 0x54:  # T
            value = True
        elif tag == 0x46:  # F
            value = False
        elif tag == 0x69:  # i
            need(8, "an int")
            (value,) = _I64.unpack_from(data, pos)
            pos += 8
        elif tag == 0x66:  # f
            need(8, "a float")
            (value,) = _F64.unpack_from(data, pos)
            pos += 8
        elif tag == 0x73:  # s
            need(4, "a string length")
            (n,) = _U32.unpack_from(data, pos)
            pos += 4
            need(n, "a string")
            try:
                value = str(view[pos:pos + n], "utf-8", "surrogatepass")
            except UnicodeDecodeError as exc:
                raise SerializationError(f"{label}: a string is not valid UTF-8 ({exc.reason})") from None
            pos += n
        elif tag == 0x61:  # a
            value, pos = _decode_array(data, pos, end, label)
        elif tag == 0x74:  # t
            need(4, "a tuple count")
            (n,) = _U32.unpack_from(data, pos)
            pos += 4
            need(n, f"a tuple of {n} values")  # every value takes at least one byte
            if n:
                if len(stack) >= MAX_DEPTH:
                    raise SerializationError(f"{label}: values nest deeper than {MAX_DEPTH} tuples")
                stack.append(([], n))
                continue
            value = ()
        else:
            raise SerializationError(f"{label}: unknown value tag {tag:#04x} at offset {pos - 1}")
        while True:  # hand the value to the innermost open tuple, closing full ones
            if not stack:
                result, done = value, True
                break
            items, n = stack[-1]
            items.append(value)
            if len(items) < n:
                break
            stack.pop()
            value = tuple(items)
    if pos != end:
        raise SerializationError(f"{label}: {end - pos} stray bytes after its value")
    return result


def _decode_array(data: bytes, pos: int, end: int, label: str) -> tuple[np.ndarray, int]:
    if end - pos < 2:
        raise SerializationError(f"{label}: truncated array header at offset {pos}")
    code, ndim = data[pos], data[pos + 1]
    pos += 2
    dtype = _DTYPES.get(code)
    if dtype is None:
        raise SerializationError(f"{label}: unknown array dtype code {code} (known: {sorted(_DTYPES)})")
    if ndim > 32:
        raise SerializationError(f"{label}: an array of {ndim} dimensions (at most 32)")
    if end - pos < 8 * ndim:
        raise SerializationError(f"{label}: truncated array shape at offset {pos}")
    shape = struct.unpack_from(f"<{ndim}Q", data, pos)
    pos += 8 * ndim
    size = 1
    for n in shape:
        size *= n
    if size * dtype.itemsize > end - pos or any(n > (1 << 40) for n in shape):
        raise SerializationError(f"{label}: an array of shape {shape} and dtype {dtype.name} needs "
                                 f"{size * dtype.itemsize} bytes, but only {end - pos} remain")
    arr = np.frombuffer(data, dtype=dtype, count=size, offset=pos).reshape(shape)
    pos += size * dtype.itemsize
    return (arr.astype(np.int64) if dtype.kind == "i" else arr.astype(np.float64)), pos


# ------------------------------------------------------------------ rebuilding
def _shown(value: Any) -> str:
    from .function import data_repr

    return data_repr(value)


def _load_map(record: Any, table: list, label: str) -> Function:
    """A map record (see :func:`symgraph.structured.structure_from_data`); a body without input scalars refused.

    ``map_function`` unrolls a map with nothing to call it on into ``n``
    constant instances: a forged ``n`` must not make that loop run.
    """
    from .structured import structure_from_data

    if isinstance(record, tuple) and len(record) == 5 and type(record[1]) is int and 0 <= record[1] < len(table):
        body = table[record[1]]
        if not any(int(np.prod(s, dtype=object)) for s in body.input_shapes):
            raise SerializationError(f"{label}: map body {body.name!r} has no input scalars, so its map is no "
                                     f"structured Function")
    return structure_from_data(record, table, label)


def _load_fold(record: Any, table: list, label: str) -> Function:
    """A fold record (see :func:`symgraph.structured.structure_from_data`)."""
    from .structured import structure_from_data

    return structure_from_data(record, table, label)


def _load_native(record: Any, table: list, label: str) -> Function:
    """A native record (a solve, a rootfinder...): see :func:`symgraph.native.load_native`."""
    from .native import load_native

    return load_native(record, table, label)


STRUCTURE_LOADERS: dict[str, Callable[[Any, list, str], Function]] = {"map": _load_map, "fold": _load_fold,
                                                                      "native": _load_native}
"""Structure kind -> ``loader(record, table, label)`` rebuilding the structured Function of a record.

``record`` is what the structure's ``to_data(index)`` wrote (its first
field is the kind), ``table`` the Functions loaded so far (the record
names its body and other Functions by position in it), ``label`` the
start of any error message.  A loader validates the record and raises
:class:`~symgraph.errors.SerializationError` starting with ``label``.
A module adding a structure kind registers its loader here.

>>> sorted(STRUCTURE_LOADERS)[:2]
['fold', 'map']
"""


def _load_entry(record: Any, table: list, k: int, limit: int) -> Function:
    """Entry ``k`` of the table (see the module docstring), validated against the entries before it."""
    label = f"entry {k}"
    if not (isinstance(record, tuple) and len(record) == 7):
        raise SerializationError(f"{label}: a FUNC record must be a 7-tuple (name, input_names, output_names, "
                                 f"output_sparsity, kind, body, rules), got {_shown(record)}")
    name, input_names, output_names, sparsity, kind, body, rules = record
    if not (type(name) is str and name):
        raise SerializationError(f"{label}: the name must be a non-empty str, got {_shown(name)}")
    label = f"{label} ({name!r})"
    for what, names in (("input", input_names), ("output", output_names)):
        if not (isinstance(names, tuple) and all(type(n) is str and n for n in names)):
            raise SerializationError(f"{label}: {what} names must be a tuple of non-empty str, got {_shown(names)}")
    if not isinstance(rules, tuple):
        raise SerializationError(f"{label}: rules must be a tuple, got {_shown(rules)}")
    if rules and kind != "tape":
        raise SerializationError(f"{label}: only a 'tape' entry carries derivative rules, this is {_shown(kind)}")
    try:
        if kind == "tape":
            F = _load_tape_entry(name, input_names, output_names, sparsity, body, table, label, limit, rules)
        elif kind == "structure":
            F = _load_structure_entry(name, input_names, output_names, sparsity, body, table, label)
        elif kind == "stop_gradient":
            F = _load_stop_gradient(name, input_names, output_names, sparsity, body, label, limit)
        else:
            raise SerializationError(f"{label}: unknown entry kind {_shown(kind)} (known: 'tape', 'structure', "
                                     f"'stop_gradient')")
    except SerializationError as exc:
        if str(exc).startswith("entry "):
            raise
        raise SerializationError(f"{label}: {exc}") from None  # from the Tape's or a record's own checks
    except (SymgraphError, TypeError, ValueError, IndexError, KeyError, OverflowError) as exc:
        raise SerializationError(f"{label} is inconsistent: {type(exc).__name__}: {exc}") from None
    return _with_rules(F, rules, table, label) if rules else F


def _load_tape_entry(name: str, input_names: tuple, output_names: tuple, sparsity: Any, tape: Any,
                     table: list, label: str, limit: int, rules: tuple) -> Function:
    from .tape import element_names, tape_from_data

    if not (isinstance(tape, tuple) and len(tape) == 13 and isinstance(tape[6], tuple)
            and all(isinstance(a, np.ndarray) for a in tape[6])):
        raise SerializationError(f"{label}: the Tape must be a 13-tuple with a tuple of input slot arrays")
    blocks, slots = tape[8], tape[6]
    if not (isinstance(blocks, tuple) and len(blocks) == len(slots)):
        raise SerializationError(f"{label}: the Tape needs one symbol-name block per input ({len(slots)})")
    names: list[str] = []
    for block, arr in zip(blocks, slots):
        if type(block) is str and block:
            names.extend(element_names(block, arr.shape))
        elif isinstance(block, tuple) and len(block) == arr.size:
            names.extend(block)
        else:
            raise SerializationError(f"{label}: a symbol-name block must be a base name or {arr.size} names, "
                                     f"got {_shown(block)}")
    callees = tape[10]
    if isinstance(callees, np.ndarray) and callees.ndim == 1 and callees.size:
        if callees.min() < 0 or callees.max() >= len(table):
            raise SerializationError(f"{label}: its calls name entries out of range (there are {len(table)} "
                                     f"before it)")
        for p in np.unique(callees).tolist():  # before tape_from_data makes the callees' Tapes
            G = table[p]
            for what, shapes in (("input", G.input_shapes), ("output", G.output_shapes)):
                count = sum(int(np.prod(s, dtype=object)) for s in shapes)
                if count > limit:
                    raise SerializationError(f"{label}: callee {G.name!r} has {count} {what} scalars, more than "
                                             f"a file of this size may call ({limit})")
    tape = _callees_in_call_order(tape_from_data(tape[:8] + (tuple(names),) + tape[9:], table))  # validated
    n_in, n_out = len(tape.input_slots), len(tape.output_slots)
    if not (isinstance(sparsity, tuple) and len(sparsity) == n_out and len(input_names) == n_in
            and len(output_names) == n_out):
        raise SerializationError(f"{label}: {len(input_names)} input names, {len(output_names)} output names and "
                                 f"{_shown(sparsity)} sparse patterns do not match the Tape's {n_in} inputs and "
                                 f"{n_out} outputs")
    patterns = tuple(_pattern(p, slots, f"{label}: output {k}")
                     for k, (p, slots) in enumerate(zip(sparsity, tape.output_slots)))
    cls = _RuleFunction if rules else Function if tape.n_instructions < LAZY_OUTPUTS else _LazyOutputsFunction
    return _function_of_tape(cls, name, tape, input_names, output_names, patterns)


def _function_of_tape(cls: type, name: str, tape: Any, input_names: tuple, output_names: tuple,
                      patterns: tuple) -> Function:
    """A Function over a validated Tape: new input symbols, the graph rebuilt once from the Tape.

    What ``Function(name, inputs, outputs)`` would give, without freezing
    the graph into a Tape again: the Tape is the file's.
    """
    from .expr import new_symbols
    from .function import _names

    F = cls.__new__(cls)
    F.name = name
    F.input_names = _names(input_names, list(input_names), "input")
    F.output_names = _names(output_names, list(output_names), "output")
    flat = np.empty(tape.n_input_scalars, dtype=object)
    flat[:] = new_symbols(list(tape.symbol_names))
    F.inputs = tuple(_gathered(flat, slots) for slots in tape.input_slots)
    F.output_sparsity = patterns
    F.tape = tape
    F._program = None
    if cls is not _LazyOutputsFunction:
        F.outputs = _outputs_of_tape(tape, F.inputs)
    return F


def _outputs_of_tape(tape: Any, inputs: tuple) -> tuple:
    """The output graphs of ``tape`` over the input symbol arrays ``inputs``, one node per instruction."""
    from .expr import building
    from .tape import tape_exprs

    with building():
        values = np.empty(tape.n_slots, dtype=object)
        values[:] = tape_exprs(tape, list(inputs))
    return tuple(_gathered(values, slots) for slots in tape.output_slots)


LAZY_OUTPUTS = 1 << 16
"""A loaded Tape of at least this many instructions gets its output graphs rebuilt on first use, not at load."""

_LAZY_LOCK = threading.Lock()


class _LazyOutputsFunction(Function):
    """A loaded Function of a large Tape: ``outputs`` (the graph) is rebuilt from the Tape when first read.

    Evaluating (the VM) and compiling a cached library read only the
    Tape; a model of millions of operations loads in the time its Tape
    takes to be checked.
    """

    @property
    def outputs(self) -> tuple:  # type: ignore[override]
        found = self.__dict__.get("_outputs")
        if found is None:
            with _LAZY_LOCK:
                found = self.__dict__.get("_outputs")
                if found is None:
                    found = self.__dict__["_outputs"] = _outputs_of_tape(self.tape, self.inputs)
        return found

    @property
    def n_out(self) -> int:
        return len(self.tape.output_slots)

    @property
    def output_shapes(self) -> tuple[tuple[int, ...], ...]:
        return tuple(s.shape if sp is None else sp[2] for s, sp in zip(self.tape.output_slots, self.output_sparsity))


def _gathered(values: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """The object array shaped like ``slots`` of ``values[slots]`` (0-d for a scalar)."""
    out = np.empty(slots.shape, dtype=object)
    out.reshape(-1)[:] = values[slots.reshape(-1)]
    return out


def _callees_in_call_order(tape: Any) -> Any:
    """``tape`` with its callees in the order of their first call, as :func:`~symgraph.tape.build_tape` numbers them.

    :func:`~symgraph.tape.tape_from_data` numbers them in table order; the
    order reaches the generated C, so a loaded Function keeps the original's.
    """
    import dataclasses

    if tape.n_calls == 0:
        return tape
    _, first = np.unique(tape.call_callee, return_index=True)
    order = np.argsort(first, kind="stable")
    renumber = np.empty(len(order), dtype=np.int64)
    renumber[order] = np.arange(len(order), dtype=np.int64)
    return dataclasses.replace(tape, callees=tuple(tape.callees[j] for j in order.tolist()),
                               call_callee=renumber[tape.call_callee])


def _pattern(pattern: Any, slots: np.ndarray, label: str) -> tuple | None:
    """A saved sparse pattern ``(rows, cols, (m, n))`` over the output's slots, checked; None for dense."""
    if pattern is None:
        return None
    if not (isinstance(pattern, tuple) and len(pattern) == 3 and isinstance(pattern[2], tuple)
            and len(pattern[2]) == 2 and all(type(n) is int and n >= 0 for n in pattern[2])):
        raise SerializationError(f"{label}: a sparse pattern must be (rows, cols, (m, n)), got {_shown(pattern)}")
    rows, cols, shape = pattern
    if not (isinstance(rows, np.ndarray) and isinstance(cols, np.ndarray) and rows.dtype.kind == cols.dtype.kind == "i"
            and rows.shape == cols.shape == slots.shape == (slots.size,)):
        raise SerializationError(f"{label}: sparse rows and cols must be integer arrays, one entry per nonzero "
                                 f"({slots.size})")
    if rows.size and (rows.min() < 0 or rows.max() >= shape[0] or cols.min() < 0 or cols.max() >= shape[1]):
        raise SerializationError(f"{label}: a sparse position lies outside the shape {shape}")
    order = np.lexsort((rows, cols))
    r, c = rows[order], cols[order]
    if np.any((r[1:] == r[:-1]) & (c[1:] == c[:-1])):
        raise SerializationError(f"{label}: a sparse pattern repeats a position")
    return rows.astype(np.int64), cols.astype(np.int64), shape


def _load_structure_entry(name: str, input_names: tuple, output_names: tuple, sparsity: Any, record: Any,
                          table: list, label: str) -> Function:
    from .function import rebuilt_as_saved

    if not (isinstance(record, tuple) and record and type(record[0]) is str):
        raise SerializationError(f"{label}: a structure record must be a tuple starting with its kind, got "
                                 f"{_shown(record)}")
    loader = STRUCTURE_LOADERS.get(record[0])
    if loader is None:
        raise SerializationError(f"{label}: unknown structure kind {record[0]!r} (this symgraph knows "
                                 f"{', '.join(sorted(STRUCTURE_LOADERS))})")
    return rebuilt_as_saved(loader(record, table, label), name, input_names, output_names, sparsity, label)


def _load_stop_gradient(name: str, input_names: tuple, output_names: tuple, sparsity: Any, n: Any,
                        label: str, limit: int) -> Function:
    from .custom import _stop_function

    if not (type(n) is int and 0 < n <= limit):
        raise SerializationError(f"{label}: a stop_gradient entry needs a number of scalars from 1 to {limit}, "
                                 f"got {_shown(n)}")
    S = _stop_function(n)
    if (name, input_names, output_names, sparsity) != (S.name, S.input_names, S.output_names, (None,)):
        raise SerializationError(f"{label}: a stop_gradient entry must be named {S.name!r} with input names "
                                 f"{S.input_names}, output names {S.output_names} and a dense output")
    return S


class _RuleFunction(Function):
    """A loaded Function with user derivative rules; its Jacobian pattern is made when first asked for.

    ``custom_jvp`` computes the pattern at once; a loader does not (a
    forged fold of 10^12 steps would make that a hang).
    """

    _known: Any = None

    @property
    def known_pattern(self) -> Any:
        if self._known is None:
            from .custom import _rule_pattern

            # the pattern of the graph without its rules (as custom_jvp reads it from the Function it wraps)
            plain = Function(self.name, list(self.inputs), list(self.outputs), input_names=self.input_names,
                             output_names=self.output_names)
            self._known = _rule_pattern(plain, self.derivative_rule.rules)
        return self._known


def _with_rules(F: Function, rules: tuple, table: list, label: str) -> Function:
    """``F`` carrying the rules of ``rules`` (``(mode, position)`` pairs), each checked as ``custom_jvp`` does."""
    from .custom import _check_function, _Rule

    found: dict = {}
    for item in rules:
        if not (isinstance(item, tuple) and len(item) == 2 and item[0] in ("jvp", "vjp") and item[0] not in found
                and type(item[1]) is int and 0 <= item[1] < len(table)):
            raise SerializationError(f"{label}: a rule must be ('jvp' or 'vjp', position of an earlier entry), "
                                     f"each mode once, got {_shown(item)}")
        found[item[0]] = table[item[1]]
    if F.n_in == 0 or F.n_out == 0 or any(sp is not None for sp in F.output_sparsity):
        raise SerializationError(f"{label}: a Function with derivative rules needs inputs and dense outputs")
    for mode, rule in found.items():
        ins = [("x", s) for s in F.input_shapes]
        ins += ([("t", s) for s in F.input_shapes] if mode == "jvp"
                else [("y", s) for s in F.output_shapes] * 2)
        outs = list(F.output_shapes if mode == "jvp" else F.input_shapes)
        try:
            _check_function(rule, ins, outs, f"{label}: its {mode} rule")
        except SymgraphError as exc:
            raise SerializationError(str(exc)) from None
    F.derivative_rule = _Rule(found)
    return F
