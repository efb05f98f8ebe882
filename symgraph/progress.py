"""Progress and logging of the slow phases: differentiate, optimize, generate, compile, load.

Every phase logs its size and time on the ``symgraph`` logger (DEBUG when it
starts, INFO when it ends, with the seconds it took), so
``logging.basicConfig(level=logging.INFO)`` shows where set-up time goes.
A phase expected to take longer than :data:`PROGRESS_SECONDS` also shows a
progress display on the terminal while it runs: a tqdm bar over the
expected seconds where tqdm is installed, else one plain line rewritten in
place.  Nothing is shown when stderr is not a terminal or when
``verbose=False`` (``verbose=True`` shows it even then).

Warnings raised deep inside symgraph (often in worker threads) point at the
user's line: :func:`warn` attributes them to the first frame outside the
symgraph and codegen packages, or to the call site recorded by
:func:`call_site` where the work runs in another thread.

>>> import logging
>>> with phase("optimize", "f", size=120) as p:
...     p.detail = "120 -> 80 ops"
>>> p.seconds >= 0.0
True
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import sys
import threading
import time
import warnings
from typing import Any, Iterator

logger = logging.getLogger("symgraph")

PROGRESS_SECONDS = 2.0  # phases expected to take longer show a progress display on a terminal
TICK_SECONDS = 0.5  # how often the display is refreshed
_PACKAGES = tuple(os.path.dirname(os.path.abspath(p)) + os.sep for p in (
    __file__, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "codegen", "x")))
_SITE: contextvars.ContextVar = contextvars.ContextVar("symgraph_call_site", default=None)


class Phase:
    """One running phase: its name, what it works on, its size, and (once done) its seconds."""

    def __init__(self, name: str, what: str, size: int | None, unit: str) -> None:
        self.name, self.what, self.size, self.unit = name, what, size, unit
        self.detail = ""
        self.seconds = 0.0

    def describe(self) -> str:
        """``"optimize f (1,200 ops)"``: the phase, its subject and size."""
        size = f" ({self.size:,} {self.unit})" if self.size is not None else ""
        return f"{self.name} {self.what}{size}".strip()


def show_progress(verbose: bool | None) -> bool:
    """Whether a progress display may be drawn: ``verbose``, or (None) stderr is a terminal.

    >>> show_progress(False)
    False
    """
    if verbose is not None:
        return bool(verbose)
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def phase(name: str, what: str = "", size: int | None = None, unit: str = "ops", expected: float | None = None,
          verbose: bool | None = None) -> Iterator[Phase]:
    """Time one phase, log it on the ``symgraph`` logger, show progress if it is expected to be slow.

    Args:
        name: the phase (``"optimize"``, ``"generate"``, ``"compile"``, ``"load"``, ``"differentiate"``).
        what: what it works on (a Function's name).
        size: its size (operations), logged.
        unit: the unit of ``size``.
        expected: estimated seconds; above :data:`PROGRESS_SECONDS` a progress display is
            drawn on a terminal (see :func:`show_progress`).
        verbose: False: never draw; True: always; None: on a terminal.

    The yielded :class:`Phase` takes a ``detail`` string for the closing log line.

    >>> with phase("generate", "g", size=10) as p:
    ...     pass
    >>> p.describe()
    'generate g (10 ops)'
    """
    current = Phase(name, what, size, unit)
    logger.debug("%s ...", current.describe())
    display = _Display(current, expected) if expected is not None and expected > PROGRESS_SECONDS \
        and show_progress(verbose) else None
    start = time.perf_counter()
    try:
        yield current
    finally:
        current.seconds = time.perf_counter() - start
        if display is not None:
            display.close()
        detail = f": {current.detail}" if current.detail else ""
        logger.info("%s took %.3f s%s", current.describe(), current.seconds, detail)


class _Display:
    """A progress display for one phase: tqdm over the expected seconds, else a plain line, ticking in a thread."""

    def __init__(self, current: Phase, expected: float) -> None:
        self.current, self.expected = current, expected
        self.start = time.perf_counter()
        self.stop = threading.Event()
        self.bar = None
        try:
            from tqdm import tqdm  # type: ignore[import-not-found]

            self.bar = tqdm(total=round(expected, 1), desc=f"symgraph: {current.describe()}", unit="s",
                            leave=False, file=sys.stderr,
                            bar_format="{desc}: {bar} {n:.0f}/{total:.0f} s (estimate)")
        except Exception:  # tqdm missing or unusable: a plain line
            self.bar = None
        self.thread = threading.Thread(target=self._tick, name="symgraph-progress", daemon=True)
        self.thread.start()

    def _tick(self) -> None:
        while not self.stop.wait(TICK_SECONDS):
            elapsed = time.perf_counter() - self.start
            if self.bar is not None:
                self.bar.n = min(elapsed, self.bar.total)
                self.bar.refresh()
            else:
                with contextlib.suppress(Exception):
                    sys.stderr.write(f"\rsymgraph: {self.current.describe()}: {elapsed:.0f} s of about "
                                     f"{self.expected:.0f} s (estimate) ")
                    sys.stderr.flush()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        if self.bar is not None:
            self.bar.close()
        else:
            with contextlib.suppress(Exception):
                sys.stderr.write(f"\rsymgraph: {self.current.describe()}: done in "
                                 f"{time.perf_counter() - self.start:.1f} s" + " " * 20 + "\n")
                sys.stderr.flush()


# ------------------------------------------------------------ warnings at the user's line
def _inside(filename: str) -> bool:
    path = os.path.abspath(filename)
    return path.startswith(_PACKAGES) or "concurrent" + os.sep + "futures" in path \
        or path.endswith(os.sep + "threading.py") or path.endswith(os.sep + "contextlib.py")


def user_frame() -> tuple[str, int, dict] | None:
    """``(filename, line, module globals)`` of the innermost frame outside symgraph, codegen and the
    thread machinery, or None (the stack is all symgraph: a worker thread).

    >>> user_frame()[0] != __file__
    True
    """
    frame = sys._getframe(1)
    while frame is not None:
        if not _inside(frame.f_code.co_filename):
            return frame.f_code.co_filename, frame.f_lineno, frame.f_globals
        frame = frame.f_back
    return None


@contextlib.contextmanager
def call_site() -> Iterator[Any]:
    """Record the user's line (:func:`user_frame`) for warnings raised meanwhile, in this context.

    Work handed to other threads keeps it when run in a copy of this
    context (``contextvars.copy_context().run``).

    >>> with call_site() as site:
    ...     site is None or len(site) == 3
    True
    """
    site = _SITE.get() or user_frame()
    token = _SITE.set(site)
    try:
        yield site
    finally:
        _SITE.reset(token)


def current_site() -> tuple[str, int, dict] | None:
    """The call site recorded by :func:`call_site` in this context, else the innermost user frame.

    >>> site = current_site()
    >>> site is None or isinstance(site[1], int)
    True
    """
    return _SITE.get() or user_frame()


def warn(message: str, category: type = UserWarning, site: tuple | None = None) -> None:
    """Issue a warning attributed to the user's line (``site``, the recorded call site or the stack).

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn("careful")
    >>> str(caught[0].message)
    'careful'
    """
    site = site or current_site()
    if site is None:
        warnings.warn(message, category, stacklevel=2)
        return
    filename, lineno, module_globals = site
    registry = module_globals.setdefault("__warningregistry__", {})
    # the module's globals let the warning show its source line; a script read from stdin has none to give
    source = module_globals if os.path.isfile(filename) else None
    try:
        warnings.warn_explicit(message, category, filename, lineno, module=module_globals.get("__name__"),
                               registry=registry, module_globals=source)
    except ImportError:  # a loader that cannot give the source
        warnings.warn_explicit(message, category, filename, lineno, module=module_globals.get("__name__"),
                               registry=registry)
