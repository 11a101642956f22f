"""Admission at the door: what a receiver holds in flight is bounded, and checked before any decoding.

An export is admitted only while the receiver's exports in flight (being read, waiting for a decode worker, or
being decoded) stay under a count and their bodies under a byte bound, and while the sink has room. Anything
else is refused at once with 429 / RESOURCE_EXHAUSTED and retry advice, so a flood costs the reading of its
bodies and nothing more: no decoding, no memory past the bound, and no export waits longer than the work
already admitted ahead of it.

Bodies count as they arrive on the wire (compressed); what they decompress to is bounded per export by
``--max-body-bytes`` and, in total, by the number of decode workers.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable


class Ticket:
    """One admitted export: the bytes it holds, given back by ``release`` when it is answered."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self.nbytes = 0
        self._released = False

    def grow(self, nbytes: int) -> bool:
        """Count ``nbytes`` more of this export's body; False (nothing counted) when that passes the bound."""
        if not self._admission._grow(nbytes, held=self.nbytes):
            return False
        self.nbytes += nbytes
        return True

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._admission._leave(self.nbytes)


class Admission:
    """The in-flight bound of one receiver. Thread-safe: handlers on any thread may share one."""

    def __init__(self, max_bytes: int, max_exports: int, room: Callable[[], bool] = lambda: True) -> None:
        self.max_bytes = max_bytes
        self.max_exports = max_exports
        self._room = room
        self._lock = threading.Lock()
        self.bytes_in_flight = 0
        self.exports_in_flight = 0
        #: exports refused by this bound, for the status page
        self.refused = 0

    @classmethod
    def unbounded(cls) -> Admission:
        """No bound at all: what a receiver built without one (tests, embedding) admits."""
        return cls(sys.maxsize, sys.maxsize)

    def enter(self) -> Ticket | None:
        """Admit one more export, or None when it must be refused (the bound is reached, or the sink is full)."""
        with self._lock:
            full = self.exports_in_flight >= self.max_exports or self.bytes_in_flight >= self.max_bytes
            if full or not self._room():
                self.refused += 1
                return None
            self.exports_in_flight += 1
        return Ticket(self)

    def status(self) -> dict[str, int]:
        """What ``/api/v1/status`` shows of this bound."""
        return {
            "exports_refused": self.refused,
            "exports_in_flight": self.exports_in_flight,
            "bytes_in_flight": self.bytes_in_flight,
            "max_bytes_in_flight": self.max_bytes,
            "max_exports_in_flight": self.max_exports,
        }

    def _grow(self, nbytes: int, held: int) -> bool:
        with self._lock:
            # An export alone is admitted whatever its size: the body limit, not this bound, says what is too
            # large, and it must not be refused forever.
            if self.bytes_in_flight + nbytes > self.max_bytes and self.bytes_in_flight > held:
                self.refused += 1
                return False
            self.bytes_in_flight += nbytes
            return True

    def _leave(self, nbytes: int) -> None:
        with self._lock:
            self.exports_in_flight -= 1
            self.bytes_in_flight -= nbytes
