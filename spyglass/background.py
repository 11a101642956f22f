"""Background work yields the CPU to the people asking questions.

Under a flood every core is busy with ingest; a person's query must still answer in well under a second. The
threads that decode, aggregate, decide and write run at a lower CPU priority than the query API, so when they
compete for a core the query wins it, and ingest takes whatever is left (which, without queries, is all of it).
"""

from __future__ import annotations

import contextlib
import os
import threading

#: How much lower than the query API background threads run (``nice`` steps; Linux gives them ~1/3 of a core
#: against a busy thread at 5 steps, whole cores when nothing else wants them).
BACKGROUND_NICENESS = 5


def yield_to_queries() -> None:
    """Lower the calling thread's CPU priority (a thread is its own task on Linux; elsewhere, nothing)."""
    with contextlib.suppress(AttributeError, OSError, PermissionError):
        thread_id = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, thread_id)
        os.setpriority(os.PRIO_PROCESS, thread_id, min(19, current + BACKGROUND_NICENESS))
