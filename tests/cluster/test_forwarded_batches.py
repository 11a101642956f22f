"""A forwarded batch sent again (the forwarder did not hear back) is taken once: acknowledged, not counted twice."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import httpx

from spyglass.cluster.forwarder import BATCH_HEADER, FORWARD_PATH, FORWARDED_HEADER
from spyglass.cluster.otlp_encoder import encode_otlp_proto
from spyglass.receivers.forwarded import RecentBatches
from tests.conftest import RunningServer
from tests.support.spans import trace_batch


def forward(member: RunningServer, body: bytes, batch: str) -> httpx.Response:
    headers = {"Content-Type": "application/x-protobuf", FORWARDED_HEADER: "1", BATCH_HEADER: batch}
    return httpx.post(member.api + FORWARD_PATH, content=body, headers=headers, timeout=10)


def test_a_repeated_batch_is_acknowledged_and_not_ingested_again(
    start_cluster: Callable[..., tuple[list[RunningServer], Path]],
) -> None:
    (member,), _ = start_cluster(1)
    batch, _ = trace_batch(10, spans_per_trace=3)
    body = encode_otlp_proto(batch)
    for _ in range(3):  # the first try and two retries of one request
        assert forward(member, body, "a" * 32).status_code == 200
    member.wait_for(lambda s: s["spans_received"] >= 30)
    assert forward(member, body, "b" * 32).status_code == 200  # another request: taken again
    member.wait_for(lambda s: s["spans_received"] >= 60)
    member.flush()
    assert member.status()["spans_received"] == 60
    assert member.server.cluster is not None
    assert member.server.cluster.batches_repeated == 2
    assert member.server.cluster.spans_from_peers == 60


def test_recent_batches_remember_what_was_taken_and_forget_the_oldest() -> None:
    recent = RecentBatches(capacity=2)
    assert recent.begin("x") == "new"
    assert recent.begin("x") == "taking"  # a retry racing the first try is told to ask again
    recent.end("x", taken=True)
    assert recent.begin("x") == "taken"
    assert recent.begin("y") == "new"
    recent.end("y", taken=False)  # refused (overloaded, invalid): a retry must be taken
    assert recent.begin("y") == "new"
    recent.end("y", taken=True)
    for name in ("z", "w"):
        recent.begin(name)
        recent.end(name, taken=True)
    assert recent.begin("x") == "new"  # forgotten: only the last two are kept


def test_concurrent_repeats_take_a_batch_once() -> None:
    recent = RecentBatches()
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt() -> None:
        state = recent.begin("same")
        with lock:
            outcomes.append(state)

    threads = [threading.Thread(target=attempt) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("new") == 1 and outcomes.count("taking") == 15
