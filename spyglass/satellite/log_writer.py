"""Log records with trace context go straight to the store: a small bounded queue and one writer thread.

Logs are not sampled on their own: they are looked up by the trace ids of traces a person is looking at, so
each accepted batch is appended to the store as it is. The queue bound (in records) is what turns a flood into
429 / ``RESOURCE_EXHAUSTED`` instead of unbounded memory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

import pyarrow as pa

from spyglass.background import yield_to_queries
from spyglass.model.figures import LogCounters
from spyglass.satellite.store_writes import write_isolating
from spyglass.store.protocol import Store

log = logging.getLogger(__name__)

#: Batches drained per store write, at most: one transaction for many small exports.
_MAX_BATCHES_PER_WRITE = 256


class LogWriter:
    """Implements ``LogSink``: ``submit_logs`` queues, a thread writes; ``flush`` waits for what is queued."""

    def __init__(self, store: Store, max_queued_records: int = 100_000) -> None:
        self.store = store
        self.max_queued_records = max_queued_records
        self.counters = LogCounters()
        self._queue: deque[pa.RecordBatch] = deque()
        self._queued_records = 0
        self._in_flight = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    @property
    def queued_records(self) -> int:
        return self._queued_records

    def submit_logs(self, batch: pa.RecordBatch) -> bool:
        with self._cond:
            if self._stopping or self._queued_records + batch.num_rows > self.max_queued_records:
                return False
            self._queue.append(batch)
            self._queued_records += batch.num_rows
            self.counters.received += batch.num_rows
            self._cond.notify_all()
        return True

    def accepting_logs(self) -> bool:
        """Whether the queue has room for more: receivers refuse exports before decoding them when not."""
        return self._queued_records < self.max_queued_records and not self._stopping

    def count_logs(self, *, rejected: int = 0, dropped: int = 0) -> None:
        with self._cond:
            self.counters.rejected += rejected
            self.counters.dropped += dropped

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="spyglass-log-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Refuse new batches, write out every queued one, and end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until everything submitted so far is written (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._queue or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("log records still queued")
                self._cond.wait(remaining)

    def _run(self) -> None:
        yield_to_queries()
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    return
                batches = [
                    self._queue.popleft() for _ in range(min(len(self._queue), _MAX_BATCHES_PER_WRITE))
                ]
                self._in_flight = sum(b.num_rows for b in batches)
            try:
                self._write_with_retry(pa.Table.from_batches(batches))
            finally:
                with self._cond:
                    self._queued_records -= self._in_flight
                    self._in_flight = 0
                    self._cond.notify_all()

    def _write_with_retry(self, table: pa.Table) -> None:
        report = write_isolating(self.store.write_logs, table, "log records")
        self.counters.stored += report.written
        self.counters.unwritable += report.unwritable
        self.counters.write_failed += report.failed
        if report.unwritable or report.failed:
            self.counters.write_failures += 1
