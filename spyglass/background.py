"""Background work yields the CPU to the people asking questions.

Under a flood every core is busy with ingest; a person's query must still answer in well under a second. The
threads that decode, aggregate, decide and write run at a lower CPU priority than the query API, so when they
compete for a core the query wins it, and ingest takes whatever is left (which, without queries, is all of it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

#: How much lower than the query API background threads run (``nice`` steps; Linux gives them ~1/3 of a core
#: against a busy thread at 5 steps, whole cores when nothing else wants them).
BACKGROUND_NICENESS = 5


def yield_to_queries() -> None:
    """Lower the calling thread's CPU priority (a thread is its own task on Linux; elsewhere, nothing)."""
    with contextlib.suppress(AttributeError, OSError, PermissionError):
        thread_id = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, thread_id)
        os.setpriority(os.PRIO_PROCESS, thread_id, min(19, current + BACKGROUND_NICENESS))


class Periodic:
    """Runs ``work`` every ``interval_s`` seconds on a thread of its own at background priority, until
    ``stop``; a round that fails is logged and the next one runs. ``stopping`` lets a long round end early."""

    def __init__(self, name: str, interval_s: float, work: Callable[[], object], what: str) -> None:
        self.name = name
        self.interval_s = interval_s
        self.work = work
        self.what = what
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        yield_to_queries()
        while not self.stopping.wait(self.interval_s):
            try:
                self.work()
            except Exception:  # a bad round must not end the work
                log.exception("%s failed", self.what)
