"""Work in a forked child process: a second core for independent graph building.

Building derivative graphs is Python work, so threads cannot share it out;
a child made by ``fork`` starts at once with every graph node of its parent
(copy-on-write) and returns plain numpy data through a pipe.  ``sg.NLP``
uses it to build the Hessian of the Lagrangian (its AD and its Tape, most
of an unrolled model's set-up) while the parent builds the gradient, the
Jacobian and their code.

A fork is made only where it is safe and useful: Linux, at least two CPUs
available to this process, and no other thread running in it (a lock held
by another thread at the fork would stay held in the child forever).  It is
off when the environment variable ``SYMGRAPH_FORK`` is ``0``.  Otherwise,
and whenever the child fails for any reason, the work runs in the calling
process when its result is asked for, so results never depend on whether a
child was used.  The child returns only data (numpy arrays, numbers,
strings), never graph nodes, and leaves by ``os._exit``: no ``atexit``
handler, no flush of the parent's buffers.

>>> job = start(lambda: sum(range(10)))
>>> job.result()
45
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
from typing import Any, Callable

#: Set to "0" to never fork (the work then runs in the calling process).
ENVIRONMENT = "SYMGRAPH_FORK"


def available() -> bool:
    """Whether :func:`start` would fork now (Linux, two or more CPUs, no other thread, not switched off).

    >>> isinstance(available(), bool)
    True
    """
    if os.environ.get(ENVIRONMENT, "1") == "0" or not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        return False
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return cpus >= 2 and threading.active_count() == 1


class Job:
    """The result of a piece of work: from the forked child, or computed here on first ask."""

    def __init__(self, work: Callable[[], Any], pid: int | None = None, fd: int | None = None) -> None:
        self._work, self._pid, self._fd = work, pid, fd
        self.forked = pid is not None  # whether a child process was started for the work
        self._done = False
        self._value: Any = None

    def result(self) -> Any:
        """The work's value (waits for the child; runs the work here if there is none or it failed).

        An exception of the work itself is raised by running it here, so it
        is the same exception, with its traceback, as without a child.
        """
        if not self._done:
            value, ok = self._from_child() if self._pid is not None else (None, False)
            self._value = value if ok else self._work()
            self._done, self._work = True, None
        return self._value

    def _from_child(self) -> tuple[Any, bool]:
        try:
            with os.fdopen(self._fd, "rb") as pipe:
                data = pipe.read()
            _, status = os.waitpid(self._pid, 0)
            self._pid = None
        except BaseException:
            self.cancel()
            raise
        if status != 0 or not data:
            return None, False
        try:
            kind, value = pickle.loads(data)
        except Exception:  # noqa: BLE001 - a damaged answer: do the work here
            return None, False
        return value, kind == "ok"

    def cancel(self) -> None:
        """Stop the child (if any) and reap it."""
        pid, self._pid = self._pid, None
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass

    def __del__(self) -> None:  # an abandoned job leaves no process behind
        try:
            self.cancel()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def start(work: Callable[[], Any]) -> Job:
    """Run ``work`` (no arguments, returns picklable plain data) in a forked child where :func:`available`;
    else the returned job runs it when its result is asked for.

    >>> start(lambda: [1, 2]).result()
    [1, 2]
    """
    if not available():
        return Job(work)
    read, write = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read)
        os.close(write)
        return Job(work)
    if pid == 0:  # the child: do the work, send it, leave without any clean-up of the parent's
        code = 1
        try:
            os.close(read)
            try:
                payload = pickle.dumps(("ok", work()), protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException:  # noqa: BLE001 - the parent runs the work itself and sees the error
                payload = pickle.dumps(("failed", None))
            view = memoryview(payload)
            while view:
                view = view[os.write(write, view):]
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    return Job(work, pid, read)
