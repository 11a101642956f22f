"""The forwarder never queues without bound, and hands a dead peer's spans back for new owners."""

from __future__ import annotations

import socket
import threading

import pyarrow as pa

from spyglass.cluster.forwarder import Forwarder, ForwarderSettings
from tests.support.spans import trace_batch


def _dead_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    return f"http://127.0.0.1:{port}"


def test_queue_is_bounded_per_peer_and_overflow_is_counted() -> None:
    forwarder = Forwarder(ForwarderSettings(max_queued_spans_per_peer=10), lambda url, batches: None)
    batch, _ = trace_batch(2, spans_per_trace=3)  # 6 spans
    url = _dead_url()
    assert forwarder.has_room(url, 6)
    assert forwarder.send(url, batch)  # not started: stays queued
    assert not forwarder.has_room(url, 6)
    assert not forwarder.send(url, batch)
    assert forwarder.counters.spans_lost == 6
    assert forwarder.queued_spans == 6


def test_an_unreachable_peer_is_given_up_after_the_retry_window() -> None:
    handed_back: list[tuple[str, list[pa.RecordBatch]]] = []
    given_up = threading.Event()

    def failed(url: str, batches: list[pa.RecordBatch]) -> None:
        handed_back.append((url, batches))
        given_up.set()

    forwarder = Forwarder(ForwarderSettings(retry_for_s=0.3, timeout_s=1.0), failed)
    forwarder.start()
    url = _dead_url()
    batch, _ = trace_batch(3)
    assert forwarder.send(url, batch)
    assert given_up.wait(5.0)
    forwarder.stop()
    assert handed_back[0][0] == url
    assert sum(b.num_rows for b in handed_back[0][1]) == batch.num_rows
    assert forwarder.counters.requests_failed >= 2
    assert forwarder.counters.spans_forwarded == 0
