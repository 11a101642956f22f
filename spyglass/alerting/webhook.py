"""Alerts POSTed as JSON to ``--alert-webhook``: a bounded queue and one thread of its own, retrying with
exponential backoff, so a slow or absent receiver never holds up the evaluator, ingest or a query.

Notifications go out in the order they were queued (a resolution never overtakes its firing). A receiver's
2xx is delivered; a connection error, a timeout, 408, 429 or 5xx is tried again after 1, 2, 4 ... seconds (at
most ``max_backoff_s``) until ``max_attempts``; any other answer (400, 404...) says retrying cannot help, and
the notification is given up at once. When the queue is full, the new notification is dropped and counted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

import orjson
import urllib3
from urllib3.exceptions import HTTPError
from urllib3.util import Timeout

from spyglass.background import yield_to_queries

log = logging.getLogger(__name__)

#: Statuses that may succeed when tried again.
RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass
class WebhookCounters:
    """What the sender did, for ``GET /api/v1/alerts``."""

    queued: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    dropped: int = 0


class WebhookSender:
    """Queues notifications and POSTs them from its own thread (``start``/``stop``)."""

    def __init__(
        self,
        url: str,
        *,
        max_queued: int = 256,
        max_attempts: int = 10,
        first_backoff_s: float = 1.0,
        max_backoff_s: float = 120.0,
        timeout_s: float = 10.0,
    ) -> None:
        self.url = url
        self.max_queued = max_queued
        self.max_attempts = max_attempts
        self.first_backoff_s = first_backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout = Timeout(connect=timeout_s, read=timeout_s)
        self.counters = WebhookCounters()
        self._pool = urllib3.PoolManager(num_pools=2, maxsize=1)
        self._queue: deque[bytes] = deque()
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def notify(self, alert: dict[str, Any]) -> None:
        """Queue one notification; never blocks (a full queue drops it, and says so in the log)."""
        body = orjson.dumps(alert)
        with self._cond:
            if len(self._queue) >= self.max_queued:
                self.counters.dropped += 1
                log.warning(
                    "alert webhook queue full (%d): alert %s not sent", self.max_queued, alert.get("id")
                )
                return
            self._queue.append(body)
            self.counters.queued = len(self._queue)
            self._cond.notify()

    def status(self) -> dict[str, int]:
        with self._cond:
            return asdict(self.counters)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="spyglass-alert-webhook", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop retrying and end the thread; what is still queued is not sent (and is counted dropped)."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
        with self._cond:
            if self._queue:
                log.warning("alert webhook stopping with %d notifications unsent", len(self._queue))
            self.counters.dropped += len(self._queue)
            self._queue.clear()
            self.counters.queued = 0
        self._pool.clear()

    def _run(self) -> None:
        yield_to_queries()
        while not self._stopping.is_set():
            with self._cond:
                while not self._queue and not self._stopping.is_set():
                    self._cond.wait()
                if self._stopping.is_set():
                    return
                body = self._queue[0]
            delivered = self._deliver(body)
            with self._cond:
                if not delivered and self._stopping.is_set():
                    return  # still queued: ``stop`` counts it unsent
                if self._queue:  # (``stop`` may have cleared it while a slow POST ran)
                    self._queue.popleft()
                self.counters.queued = len(self._queue)
                if delivered:
                    self.counters.delivered += 1
                else:
                    self.counters.failed += 1

    def _deliver(self, body: bytes) -> bool:
        """POST until delivered, given up, or stopping; waits between tries wake at ``stop``."""
        backoff_s = self.first_backoff_s
        for attempt in range(1, self.max_attempts + 1):
            outcome = self._post(body)
            if outcome is None:
                return True
            retry = outcome.startswith("retry")
            if not retry or attempt == self.max_attempts:
                log.error("alert webhook %s gave up after %d tries: %s", self.url, attempt, outcome)
                return False
            with self._cond:
                self.counters.retried += 1
            log.info("alert webhook %s: %s; trying again in %.0f s", self.url, outcome, backoff_s)
            if self._stopping.wait(backoff_s):
                return False
            backoff_s = min(backoff_s * 2, self.max_backoff_s)
        return False

    def _post(self, body: bytes) -> str | None:
        """``None`` when delivered, else why not (starting with ``retry`` when another try may succeed)."""
        started = time.monotonic()
        try:
            response = self._pool.request(
                "POST",
                self.url,
                body=body,
                headers={"Content-Type": "application/json", "User-Agent": "spyglass-alerts"},
                timeout=self.timeout,
                retries=False,
                redirect=False,
            )
        except HTTPError as error:
            return f"retry: no answer after {time.monotonic() - started:.1f} s ({error})"
        if 200 <= response.status < 300:
            return None
        kind = "retry" if response.status in RETRIED_STATUSES else "refused"
        return f"{kind}: HTTP {response.status}"
