"""Peer queries answer with what the reachable members know: a slow or dead peer is left out and named, a
refusing one is reported down, and connections to peers are kept alive with Nagle's algorithm off."""

from __future__ import annotations

import socket

import pyarrow as pa
import pytest

from spyglass.cluster import http_pool
from spyglass.cluster.membership import Membership
from spyglass.cluster.peer_client import (
    ARROW_STREAM,
    PEER_PREFIX,
    PartialAnswer,
    PeerClient,
    PeerUnavailable,
    current_partial,
    table_to_ipc,
)
from tests.cluster.scripted_peer import Reply, dead_url, scripted_peer

SELF = "http://127.0.0.1:1"


def _ask_all(client: PeerClient, verb: str) -> tuple[list[object], set[str]]:
    partial = PartialAnswer()
    token = current_partial.set(partial)
    try:
        return client.ask_all(verb, {"x": 1}), partial.missing
    finally:
        current_partial.reset(token)


def test_answers_are_json_or_arrow_and_connections_are_kept_alive_without_nagle() -> None:
    table = pa.table({"n": [1, 2, 3]})
    with scripted_peer(
        Reply(body=b'{"ok": true}'), Reply(body=table_to_ipc(table), content_type=ARROW_STREAM)
    ) as peer:
        client = PeerClient(Membership([SELF, peer.url], SELF), query_token="secret", timeout_s=5.0)
        assert client.ask(peer.url, "status", b"{}") == {"ok": True}
        for _ in range(3):
            assert client.ask(peer.url, "store.scan", b"{}").equals(table)
        client.close()
    assert [r.path for r in peer.received] == [PEER_PREFIX + "status"] + [PEER_PREFIX + "store.scan"] * 3
    assert {r.headers["Authorization"] for r in peer.received} == {"Bearer secret"}
    assert len({r.client_port for r in peer.received}) == 1  # one connection, kept alive
    pool = http_pool.POOL.connection_from_url(peer.url)
    idle = [c for c in pool.pool.queue if c is not None and c.sock is not None]  # type: ignore[union-attr]
    assert idle and all(c.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for c in idle)


def test_a_slow_peer_is_left_out_named_and_asked_only_once() -> None:
    with scripted_peer(Reply(body=b"[1]")) as fast, scripted_peer(Reply(body=b"[2]", delay_s=1.0)) as slow:
        membership = Membership([SELF, fast.url, slow.url], SELF)
        client = PeerClient(membership, timeout_s=0.3)
        answers, missing = _ask_all(client, "status")
        client.close()
    assert answers == [[1]]
    assert missing == {slow.url}
    assert len(slow.received) == 1  # a timeout is not tried again: it would double the wait
    assert membership.down == frozenset()  # slow is not down


def test_a_peer_refusing_connections_is_left_out_and_reported_down() -> None:
    dead = dead_url()
    with scripted_peer(Reply(body=b"[1]")) as alive:
        membership = Membership([SELF, alive.url, dead], SELF)
        client = PeerClient(membership, timeout_s=2.0)
        answers, missing = _ask_all(client, "status")
        assert membership.down == {dead}
        # Once down, it is not asked, but still named as missing.
        assert _ask_all(client, "status") == ([[1]], {dead})
        assert not client.ping(dead)
        client.close()
    assert answers == [[1]]
    assert missing == {dead}


def test_a_connection_dropped_under_a_request_is_tried_once_more() -> None:
    with scripted_peer(Reply(drop=True), Reply(body=b'{"n": 2}')) as peer:
        membership = Membership([SELF, peer.url], SELF)
        client = PeerClient(membership, timeout_s=2.0)
        assert client.ask(peer.url, "status", b"{}") == {"n": 2}
    assert len(peer.received) == 2
    with scripted_peer(Reply(drop=True)) as peer:
        membership = Membership([SELF, peer.url], SELF)
        client = PeerClient(membership, timeout_s=2.0)
        with pytest.raises(PeerUnavailable):
            client.ask(peer.url, "status", b"{}")
    assert len(peer.received) == 2  # one more try, not more
    assert membership.down == frozenset()


def test_a_peer_answering_an_error_is_left_out_but_not_down() -> None:
    with scripted_peer(Reply(status=503, body=b"busy")) as peer:
        membership = Membership([SELF, peer.url], SELF)
        client = PeerClient(membership, timeout_s=2.0)
        answers, missing = _ask_all(client, "status")
        client.close()
    assert (answers, missing) == ([], {peer.url})
    assert len(peer.received) == 1
    assert membership.down == frozenset()
