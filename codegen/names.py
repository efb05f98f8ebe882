"""Safe C spellings of user-supplied names.

User names (Function, input and output names) reach C only through these
functions: :func:`c_identifier` for identifiers, :func:`c_string` for string
literals and :func:`c_comment` for comments.  Hostile names such as
``f; system("x")`` come out harmless.

Identifiers are collision-free by construction, not by a list of names to
avoid (see docs/design.md, "C backend: names"):

* every identifier made from a user name starts with ``sgf_`` (a name made of
  ASCII letters and digits in ``_``-separated words, e.g. ``rosen`` ->
  ``sgf_rosen``) or ``sgx_`` (any other name: its letters and digits plus a
  hash of the whole name), prefixes that no C or POSIX header, cffi or our own
  helpers (``sg_*``, ``SG_*``, ``SYMGRAPH_*``) use;
* such an identifier never contains ``__``, so the symbols of one Function,
  ``ID`` and ``ID__SUFFIX`` (:func:`c_symbol`), never equal those of another,
  even when several exported Functions are linked into one program;
* distinct names give distinct identifiers (``a_b``, ``a-b``, ``A_B`` differ).

>>> c_identifier("rosen"), c_identifier("my_model2")
('sgf_rosen', 'sgf_my_model2')
>>> c_identifier('f; system("x")')
'sgx_f_system_x_0cb8ca2ff58cc4c9'
>>> c_symbol("sgf_rosen", "batch")
'sgf_rosen__batch'
>>> c_string('a"b')
'"a\\\\042b"'
"""

from __future__ import annotations

import hashlib
import re

PLAIN_PREFIX = "sgf_"  # names that are '_'-separated words of ASCII letters and digits, kept as they are
HASHED_PREFIX = "sgx_"  # every other name: its words, then a hash of the whole name
MAX_IDENTIFIER = 48  # well inside the 63 significant characters C99 guarantees
_HASH_DIGITS = 16
_PLAIN = re.compile(r"[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*")
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]+")


def c_identifier(name: str) -> str:
    """The C identifier of ``name``: deterministic, valid, reserved by no header, injective.

    A name made of ``_``-separated words of ASCII letters and digits (and short
    enough) becomes ``sgf_NAME``; any other name becomes ``sgx_WORDS_HASH``,
    with ``WORDS`` its letters and digits (``_``-joined, shortened) and ``HASH``
    the first 16 hex digits of the SHA-256 of its UTF-8 bytes.  The result never
    contains ``__`` and never ends in ``_``.

    >>> c_identifier("double"), c_identifier("sinf"), c_identifier("2d"), c_identifier("MODEL")
    ('sgf_double', 'sgf_sinf', 'sgf_2d', 'sgf_MODEL')
    >>> c_identifier("a-b"), c_identifier("_x")
    ('sgx_a_b_d44362d67d921091', 'sgx_x_a01e47cb4cec0963')
    """
    if not isinstance(name, str):
        raise TypeError(f"a C name must be made from a str, got {type(name).__name__}")
    if _PLAIN.fullmatch(name) and len(PLAIN_PREFIX) + len(name) <= MAX_IDENTIFIER:
        return PLAIN_PREFIX + name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_DIGITS]
    room = MAX_IDENTIFIER - len(HASHED_PREFIX) - _HASH_DIGITS - 1
    words = _NOT_ALNUM.sub("_", name).strip("_")[:room].rstrip("_")
    return f"{HASHED_PREFIX}{words}_{digest}" if words else HASHED_PREFIX + digest


def c_symbol(identifier: str, suffix: str) -> str:
    """The C symbol ``identifier__suffix`` (one of the Function's entry points or internal names).

    >>> c_symbol("sgf_f", "part0")
    'sgf_f__part0'
    """
    return f"{identifier}__{suffix}"


def header_guard(identifier: str) -> str:
    """The include guard of the header of ``identifier``: unique per identifier, outside every user namespace.

    >>> header_guard("sgf_model"), header_guard("sgf_MODEL")
    ('SYMGRAPH_H_sgf_model', 'SYMGRAPH_H_sgf_MODEL')
    """
    return "SYMGRAPH_H_" + identifier


_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.,[]-+ ")


def c_string(text: str) -> str:
    """A C string literal holding ``text`` (UTF-8), with every unusual byte octal-escaped.

    >>> c_string("x[0]"), c_string("é")
    ('"x[0]"', '"\\\\303\\\\251"')
    """
    parts = []
    for byte in text.encode("utf-8", "surrogatepass"):
        ch = chr(byte)
        parts.append(ch if ch in _SAFE else f"\\{byte:03o}")
    return '"' + "".join(parts) + '"'


def c_comment(text: str, limit: int = 60) -> str:
    """``text`` reduced to characters that are safe inside a C block comment.

    >>> c_comment("x */ evil")
    'x __ evil'
    """
    text = "".join(ch if ch in _SAFE else "_" for ch in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."
