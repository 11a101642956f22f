"""Clusters of real satellites on loopback: every port chosen by the OS, members listed in a peers file."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer


def write_peers(path: Path, urls: list[str]) -> None:
    """Rewrite the peers file with a fresh modification time (what ``--peers-file`` watches)."""
    path.write_text("# spyglass cluster members\n" + "\n".join(urls) + "\n")
    stamp = time.time_ns()
    os.utime(path, ns=(stamp, stamp))


def join(members: list[RunningServer], peers_file: Path) -> None:
    """List every member in the peers file and have each one read it now (instead of at its next poll)."""
    write_peers(peers_file, [m.api for m in members])
    for member in members:
        assert member.server.cluster is not None
        member.server.cluster.membership.poll()


def settle(members: list[RunningServer], spans: int, timeout_s: float = 20.0) -> None:
    """Wait until the cluster has applied ``spans`` spans and nothing waits to be forwarded."""
    deadline = time.monotonic() + timeout_s
    while True:
        received = sum(m.server.satellite.counters.spans_received for m in members)
        queued = sum(m.server.cluster.forwarder.queued_spans for m in members if m.server.cluster)
        if received >= spans and queued == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"cluster applied {received} of {spans} spans ({queued} queued to forward)")
        time.sleep(0.05)


def post_otlp(member: RunningServer, body: bytes) -> None:
    response = httpx.post(
        member.otlp_http + "/v1/traces",
        content=body,
        headers={"Content-Type": "application/x-protobuf"},
        timeout=10,
    )
    assert response.status_code == 200, response.text


@pytest.fixture
def start_cluster(
    start_server: Callable[..., RunningServer], tmp_path: Path
) -> Iterator[Callable[..., tuple[list[RunningServer], Path]]]:
    """Start ``n`` satellites sharing one peers file, then make them one cluster."""

    def start(n: int = 3, **overrides: Any) -> tuple[list[RunningServer], Path]:
        peers_file = tmp_path / "peers.txt"
        write_peers(peers_file, [])
        members = [start_server(peers_file=peers_file, **overrides) for _ in range(n)]
        join(members, peers_file)
        return members, peers_file

    yield start
