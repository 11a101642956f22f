"""The forwarder never queues without bound, sends again to a busy peer, and hands a dead peer's spans back
for new owners."""

from __future__ import annotations

import logging
import threading
import time

import pyarrow as pa
import pytest

from spyglass.cluster.forwarder import FORWARD_PATH, FORWARDED_HEADER, Forwarder, ForwarderSettings
from tests.cluster.scripted_peer import Reply, ScriptedPeer, dead_url, scripted_peer
from tests.support.spans import trace_batch


def test_queue_is_bounded_per_peer_and_overflow_is_counted() -> None:
    forwarder = Forwarder(ForwarderSettings(max_queued_spans_per_peer=10), lambda url, batches: None)
    batch, _ = trace_batch(2, spans_per_trace=3)  # 6 spans
    url = dead_url()
    assert forwarder.has_room(url, 6)
    assert forwarder.send(url, batch)  # not started: stays queued
    assert not forwarder.has_room(url, 6)
    assert not forwarder.send(url, batch)
    assert forwarder.counters.spans_lost == 6
    assert forwarder.queued_spans == 6


def test_an_unreachable_peer_is_given_up_after_the_retry_window(caplog: pytest.LogCaptureFixture) -> None:
    handed_back: list[tuple[str, list[pa.RecordBatch]]] = []
    given_up = threading.Event()

    def failed(url: str, batches: list[pa.RecordBatch]) -> None:
        handed_back.append((url, batches))
        given_up.set()

    forwarder = Forwarder(ForwarderSettings(retry_for_s=0.3, timeout_s=1.0), failed)
    forwarder.start()
    url = dead_url()
    batch, _ = trace_batch(3)
    started = time.monotonic()
    assert forwarder.send(url, batch)
    assert given_up.wait(5.0)
    assert time.monotonic() - started < 1.0  # the window, not a count of tries, bounds the wait
    forwarder.stop()
    assert handed_back[0][0] == url
    assert sum(b.num_rows for b in handed_back[0][1]) == batch.num_rows
    assert forwarder.counters.requests_failed >= 2
    assert forwarder.counters.spans_forwarded == 0
    # Each failed try is a debug line, not one of urllib3's warnings.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("urllib3")]


def _forward_to(peer: ScriptedPeer, settings: ForwarderSettings) -> tuple[Forwarder, int, list[str]]:
    """Forward one batch to ``peer`` and stop (which waits for the send); the peers given up on."""
    given_up: list[str] = []
    forwarder = Forwarder(settings, lambda url, batches: given_up.append(url))
    forwarder.start()
    batch, _ = trace_batch(4)
    assert forwarder.send(peer.url, batch)
    deadline = time.monotonic() + 10.0
    while forwarder.queued_spans or not peer.received:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    forwarder.stop()
    return forwarder, batch.num_rows, given_up


def test_a_busy_peer_is_sent_the_spans_again_until_it_takes_them() -> None:
    with scripted_peer(Reply(status=503), Reply(status=429), Reply(status=200)) as peer:
        forwarder, spans, given_up = _forward_to(peer, ForwarderSettings(ingest_token="tok"))
    assert len(peer.received) == 3
    assert {r.path for r in peer.received} == {FORWARD_PATH}
    assert {r.headers[FORWARDED_HEADER] for r in peer.received} == {"1"}
    assert {r.headers["Authorization"] for r in peer.received} == {"Bearer tok"}
    assert len({r.body for r in peer.received}) == 1
    assert forwarder.counters.spans_forwarded == spans
    assert forwarder.counters.requests_failed == 2
    assert forwarder.counters.spans_lost == 0
    assert given_up == []


def test_a_peer_that_timed_out_is_sent_the_spans_again() -> None:
    """At least once: the peer may have taken the first copy (the trace view shows each span once)."""
    with scripted_peer(Reply(delay_s=0.5), Reply()) as peer:
        forwarder, spans, given_up = _forward_to(peer, ForwarderSettings(timeout_s=0.2, retry_for_s=2.0))
    assert len(peer.received) == 2
    assert forwarder.counters.spans_forwarded == spans
    assert forwarder.counters.requests_failed == 1
    assert given_up == []


def test_spans_a_peer_refuses_as_bad_are_counted_lost_and_not_sent_again() -> None:
    with scripted_peer(Reply(status=400, body=b"bad")) as peer:
        forwarder, spans, given_up = _forward_to(peer, ForwarderSettings())
    assert len(peer.received) == 1
    assert forwarder.counters.spans_lost == spans
    assert forwarder.counters.requests_failed == 1
    assert forwarder.counters.spans_forwarded == 0
    assert given_up == []


def test_a_peer_failing_past_the_window_is_given_up() -> None:
    with scripted_peer(Reply(status=500)) as peer:
        forwarder, _, given_up = _forward_to(peer, ForwarderSettings(retry_for_s=0.3))
    assert given_up == [peer.url]
    assert 2 <= len(peer.received) == forwarder.counters.requests_failed
    assert forwarder.counters.spans_forwarded == 0
