"""Safe C spellings of user-supplied names.

User names (Function, input and output names) reach C only through these
functions: :func:`c_identifier` for identifiers, :func:`c_string` for string
literals and :func:`c_comment` for comments.  Hostile names such as
``f; system("x")`` come out harmless.

>>> c_identifier('f; system("x")')
'f__system__x__'
>>> c_string('a"b')
'"a\\\\042b"'
"""

from __future__ import annotations

import hashlib
import re

# C99 keywords, names the generated code or the demo uses from the C library,
# and names reserved to the implementation are never produced.
C_KEYWORDS = frozenset("""
auto break case char const continue default do double else enum extern float for goto if inline int
long register restrict return short signed sizeof static struct switch typedef union unsigned void
volatile while _Bool _Complex _Imaginary bool true false asm typeof
""".split())
LIBRARY_NAMES = frozenset("""
main printf fprintf sprintf snprintf puts putchar fputs stdout stderr stdin strtod atof exit abort
malloc calloc free realloc memcpy memset strlen errno assert NULL EOF FILE size_t
sin cos tan asin acos atan atan2 sinh cosh tanh asinh acosh atanh exp exp2 expm1 log log2 log10 log1p
pow sqrt cbrt hypot erf erfc fabs floor ceil fmod fmin fmax trunc round lround nan isnan isinf
isfinite signbit copysign ldexp frexp modf INFINITY NAN HUGE_VAL sg_sign
fminf fmaxf fma nearbyint rint lrint remainder remquo scalbn ilogb logb tgamma lgamma nextafter fdim
rand srand time clock abs labs llabs div ldiv atoi atol strtol strtoul qsort bsearch getenv system
exit atexit open close read write fopen fclose fread fwrite scanf sscanf fscanf gets fgets putc getc
memmove memcmp strcpy strncpy strcat strcmp strncmp strchr strstr signal raise setjmp longjmp
""".split())
MAX_IDENTIFIER = 48  # well inside the 63 significant characters C99 guarantees


def c_identifier(name: str, fallback: str = "f") -> str:
    """A valid, non-reserved C identifier derived deterministically from ``name``.

    Characters outside ``[A-Za-z0-9_]`` become ``_``; a leading digit or
    underscore gets the prefix ``fallback``; keywords and C library names get
    a trailing ``_``; very long names are shortened with a hash suffix.

    >>> c_identifier("rosen"), c_identifier("2d"), c_identifier("double"), c_identifier("")
    ('rosen', 'f2d', 'double_', 'f')
    """
    text = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if not text or not (text[0].isalpha()):
        text = fallback + text
    if text in C_KEYWORDS or text in LIBRARY_NAMES:
        text += "_"
    if len(text) > MAX_IDENTIFIER:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        text = text[: MAX_IDENTIFIER - 11] + "_" + digest
    return text


_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.,[]-+ ")


def c_string(text: str) -> str:
    """A C string literal holding ``text`` (UTF-8), with every unusual byte octal-escaped.

    >>> c_string("x[0]"), c_string("é")
    ('"x[0]"', '"\\\\303\\\\251"')
    """
    parts = []
    for byte in text.encode("utf-8", "surrogatepass"):
        ch = chr(byte)
        parts.append(ch if ch in _PLAIN else f"\\{byte:03o}")
    return '"' + "".join(parts) + '"'


def c_comment(text: str, limit: int = 60) -> str:
    """``text`` reduced to characters that are safe inside a C block comment.

    >>> c_comment("x */ evil")
    'x __ evil'
    """
    text = "".join(ch if ch in _PLAIN else "_" for ch in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."
