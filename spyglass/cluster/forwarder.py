"""Sends spans a satellite does not own to the satellite that does, over OTLP/HTTP, off the receive path.

One bounded queue and one sender thread per peer. Receivers only append Arrow batches (and are refused with
429 when a live peer's queue is full, as for the local intake); the sender joins what queued up into one
request, encodes it as OTLP protobuf, and POSTs it to the peer's API port. A failing peer is retried with
backoff for ``retry_for_s``; then it is reported down, and what was queued for it goes back to the router,
which now sends it to the traces' new owners. Nothing waits without bound and every span lost is counted.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
from urllib3.exceptions import HTTPError

from spyglass.cluster import http_pool
from spyglass.cluster.otlp_encoder import encode_otlp_proto
from spyglass.model.schema import SPAN_SCHEMA

log = logging.getLogger(__name__)

#: The header that marks spans forwarded by a peer: the receiving satellite keeps them, never forwards again.
FORWARDED_HEADER = "x-spyglass-forwarded"
#: Where forwarded spans go on a peer (its API port, the address ``--peers`` lists).
FORWARD_PATH = "/v1/traces"
#: One id per forwarded request, the same on every retry of it: the receiver takes a batch once.
BATCH_HEADER = "x-spyglass-batch"

#: Answers that mean "not now" (overloaded, or failing): sent again. Any other refusal means a bad request.
RETRY_STATUSES = frozenset({429, *range(500, 600)})

#: A peer is tried again after any error or a ``RETRY_STATUSES`` answer, backing off 0, 0.05, 0.1, 0.2, 0.4,
#: then 0.5 s, until the request's deadline (``retry_for_s``). POSTs are sent again even when the peer may have
#: taken them (a read timeout, a dropped answer): each carries its batch id (``BATCH_HEADER``), and the receiver
#: acknowledges a batch it already took without counting its spans again.
_FORWARD_RETRY = http_pool.PeerRetry(
    total=None,
    redirect=False,
    allowed_methods=None,
    status_forcelist=RETRY_STATUSES,
    backoff_factor=0.025,
    backoff_max=0.5,
    respect_retry_after_header=False,
    raise_on_status=False,
)


@dataclass
class ForwardCounters:
    """Forwarding health, per satellite, reported in ``/api/v1/status`` under ``cluster``."""

    spans_forwarded: int = 0
    spans_rerouted: int = 0
    spans_lost: int = 0
    requests_failed: int = 0


@dataclass(frozen=True)
class ForwarderSettings:
    """Bounds of forwarding: queued spans per peer, spans per request, how long to retry and wait."""

    max_queued_spans_per_peer: int = 100_000
    max_request_spans: int = 8_192
    retry_for_s: float = 3.0
    timeout_s: float = 10.0
    ingest_token: str | None = None


class _PeerSender:
    """The queue and sender thread of one peer."""

    def __init__(self, url: str, forwarder: Forwarder) -> None:
        self.url = url
        self.forwarder = forwarder
        self.queue: deque[pa.RecordBatch] = deque()
        self.queued_spans = 0
        self.condition = threading.Condition()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name=f"spyglass-forward {url}", daemon=True)

    def has_room(self, spans: int) -> bool:
        return self.queued_spans + spans <= self.forwarder.settings.max_queued_spans_per_peer

    def put(self, batch: pa.RecordBatch) -> bool:
        with self.condition:
            if self.stopping or not self.has_room(batch.num_rows):
                return False
            self.queue.append(batch)
            self.queued_spans += batch.num_rows
            self.condition.notify()
        return True

    def take_all(self) -> list[pa.RecordBatch]:
        with self.condition:
            batches = list(self.queue)
            self.queue.clear()
            self.queued_spans = 0
        return batches

    def _next_request(self, drain_deadline: float | None) -> list[pa.RecordBatch] | None:
        """Batches for one request (up to ``max_request_spans``), or None when it is time to stop."""
        limit = self.forwarder.settings.max_request_spans
        with self.condition:
            while not self.queue:
                if self.stopping:
                    return None
                self.condition.wait(0.5)
            if self.stopping and drain_deadline is not None and time.monotonic() > drain_deadline:
                return None
            taken: list[pa.RecordBatch] = []
            spans = 0
            while self.queue and (not taken or spans + self.queue[0].num_rows <= limit):
                batch = self.queue.popleft()
                taken.append(batch)
                spans += batch.num_rows
            self.queued_spans -= spans
        return taken

    def _run(self) -> None:
        drain_deadline: float | None = None
        while True:
            if self.stopping and drain_deadline is None:
                drain_deadline = time.monotonic() + self.forwarder.settings.retry_for_s
            batches = self._next_request(drain_deadline)
            if batches is None:
                break
            spans = pa.Table.from_batches(batches, schema=SPAN_SCHEMA)
            if self._send(encode_otlp_proto(spans), spans.num_rows):
                continue
            # Given up on this peer: it and everything queued for it go back to the router.
            self.forwarder.peer_failed(self.url, [*batches, *self.take_all()])

    def _send(self, body: bytes, spans: int) -> bool:
        """True when the spans are settled: sent, or refused as a bad request (counted lost, since sending
        them again cannot help). False when the peer did not take them within ``retry_for_s``."""
        settings = self.forwarder.settings
        headers = {
            "Content-Type": "application/x-protobuf",
            FORWARDED_HEADER: "1",
            BATCH_HEADER: os.urandom(16).hex(),
        }
        if settings.ingest_token:
            headers["Authorization"] = f"Bearer {settings.ingest_token}"
        retries = _FORWARD_RETRY.new(
            deadline=time.monotonic() + settings.retry_for_s,
            on_failure=lambda: self.forwarder.count(requests_failed=1),
        )
        try:
            response = http_pool.post(self.url + FORWARD_PATH, body, headers, settings.timeout_s, retries)
        except HTTPError as exc:
            log.debug("forwarding to %s failed: %s", self.url, http_pool.reason(exc))
            return False
        if response.status == 200:
            self.forwarder.count(spans_forwarded=spans)
            return True
        if response.status in RETRY_STATUSES:  # still failing at the deadline
            return False
        log.warning("peer %s refused forwarded spans: HTTP %s", self.url, response.status)
        self.forwarder.count(spans_lost=spans, requests_failed=1)
        return True


class Forwarder:
    """Per-peer bounded queues and senders. ``on_peer_failed(url, batches)`` is called from the sender thread
    when a peer stayed unreachable for ``retry_for_s``; it should mark the peer down and route the batches
    again."""

    def __init__(
        self,
        settings: ForwarderSettings,
        on_peer_failed: Callable[[str, list[pa.RecordBatch]], None],
    ) -> None:
        self.settings = settings
        self.counters = ForwardCounters()
        self._on_peer_failed = on_peer_failed
        self._senders: dict[str, _PeerSender] = {}
        self._lock = threading.Lock()
        self._started = False

    def _sender(self, url: str) -> _PeerSender:
        sender = self._senders.get(url)
        if sender is None:
            with self._lock:
                sender = self._senders.get(url)
                if sender is None:
                    sender = _PeerSender(url, self)
                    self._senders[url] = sender
                    if self._started:
                        sender.thread.start()
        return sender

    def has_room(self, url: str, spans: int) -> bool:
        return self._sender(url).has_room(spans)

    def send(self, url: str, batch: pa.RecordBatch) -> bool:
        """Queue spans for ``url``; False (and counted lost) when its queue is full."""
        if self._sender(url).put(batch):
            return True
        self.count(spans_lost=batch.num_rows)
        return False

    @property
    def queued_spans(self) -> int:
        return sum(s.queued_spans for s in list(self._senders.values()))

    def queued_by_peer(self) -> dict[str, int]:
        return {url: s.queued_spans for url, s in list(self._senders.items())}

    def count(
        self, spans_forwarded: int = 0, spans_rerouted: int = 0, spans_lost: int = 0, requests_failed: int = 0
    ) -> None:
        with self._lock:
            c = self.counters
            c.spans_forwarded += spans_forwarded
            c.spans_rerouted += spans_rerouted
            c.spans_lost += spans_lost
            c.requests_failed += requests_failed

    def peer_failed(self, url: str, batches: list[pa.RecordBatch]) -> None:
        self._on_peer_failed(url, batches)

    def start(self) -> None:
        with self._lock:
            self._started = True
            for sender in self._senders.values():
                sender.thread.start()

    def stop(self) -> None:
        """Send what is queued (each peer gets ``retry_for_s`` more at most), then stop the senders."""
        with self._lock:
            senders = list(self._senders.values())
        for sender in senders:
            with sender.condition:
                sender.stopping = True
                sender.condition.notify_all()
        for sender in senders:
            if sender.thread.is_alive():
                sender.thread.join(self.settings.retry_for_s * 2 + self.settings.timeout_s)
            lost = sum(b.num_rows for b in sender.take_all())
            if lost:
                self.count(spans_lost=lost)
