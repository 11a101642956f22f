"""Asking the other satellites of the cluster for their local data (``/api/v1/peer/...``), all at once.

Answers come back as Arrow IPC streams (tables) or JSON. A peer that is down, or slower than the timeout,
is left out and named in the request's ``partial`` record, so a query answers with what the rest know
instead of hanging; a peer refusing connections is also reported down to the membership (ownership moves
off it until it answers again).
"""

from __future__ import annotations

import contextvars
import http.client
import logging
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
import pyarrow as pa
import pyarrow.ipc as ipc

from spyglass.cluster.membership import Membership

log = logging.getLogger(__name__)

ARROW_STREAM = "application/vnd.apache.arrow.stream"
PEER_PREFIX = "/api/v1/peer/"
_IPC_OPTIONS = ipc.IpcWriteOptions(compression="lz4")


@dataclass
class PartialAnswer:
    """Peers that did not contribute to the answer of one API request."""

    missing: set[str] = field(default_factory=set)


#: Set per API request by ``spyglass.api.peer.PartialAnswerMiddleware``; fan-outs record missing peers here.
current_partial: contextvars.ContextVar[PartialAnswer | None] = contextvars.ContextVar(
    "spyglass_partial_answer", default=None
)


def table_to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema, options=_IPC_OPTIONS) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def ipc_to_table(body: bytes) -> pa.Table:
    return ipc.open_stream(pa.py_buffer(body)).read_all()


def connect_without_delay(connection: http.client.HTTPConnection) -> None:
    """Connect now, with Nagle's algorithm off: small requests and answers otherwise wait out the peer's
    delayed ACK (40 ms a round trip on Linux)."""
    connection.connect()
    if connection.sock is not None:
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class PeerUnavailable(Exception):
    """A peer could not answer: down, too slow, or it failed."""


class PeerClient:
    """Synchronous fan-out to every other configured member, in parallel, each with a timeout."""

    def __init__(
        self, membership: Membership, query_token: str | None = None, timeout_s: float = 5.0
    ) -> None:
        self.membership = membership
        self.query_token = query_token
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="spyglass-peer-query")
        self._connections = threading.local()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def ask_all(self, verb: str, args: dict[str, Any] | None = None) -> list[Any]:
        """Each reachable peer's answer to ``verb`` (a table or JSON); peers left out are recorded as missing."""
        peers = self.membership.peers
        if not peers:
            return []
        down = self.membership.down
        partial = current_partial.get()
        asked = [p for p in peers if p not in down]
        missing = [p for p in peers if p in down]
        body = orjson.dumps(args or {})
        futures = {self._pool.submit(self.ask, peer, verb, body): peer for peer in asked}
        done, not_done = wait(futures, timeout=self.timeout_s + 1.0)
        answers = []
        for future in done:
            try:
                answers.append(future.result())
            except PeerUnavailable:
                missing.append(futures[future])
        missing.extend(futures[f] for f in not_done)
        if missing:
            log.debug("peers left out of %s: %s", verb, missing)
            if partial is not None:
                partial.missing.update(missing)
        return answers

    def ask(self, peer: str, verb: str, body: bytes) -> Any:
        """One peer's answer; ``PeerUnavailable`` when there is none."""
        headers = {"Content-Type": "application/json"}
        if self.query_token:
            headers["Authorization"] = f"Bearer {self.query_token}"
        path = urlsplit(peer).path.rstrip("/") + PEER_PREFIX + verb
        for attempt in range(2):  # a kept-alive connection the peer closed fails once: reconnect
            try:
                connection = self._connection(peer)
                connection.request("POST", path, body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
                break
            except ConnectionRefusedError as exc:
                self._drop(peer)
                self.membership.mark_down(peer)
                raise PeerUnavailable(f"{peer}: {exc}") from None
            except (OSError, http.client.HTTPException) as exc:
                self._drop(peer)
                if attempt or isinstance(exc, TimeoutError):
                    raise PeerUnavailable(f"{peer}: {exc}") from None
        if response.status != 200:
            raise PeerUnavailable(f"{peer}: HTTP {response.status} {payload[:200]!r}")
        if response.getheader("Content-Type", "").startswith(ARROW_STREAM):
            return ipc_to_table(payload)
        return orjson.loads(payload)

    def ping(self, peer: str) -> bool:
        try:
            self.ask(peer, "ping", b"{}")
        except PeerUnavailable:
            return False
        return True

    def _connection(self, peer: str) -> http.client.HTTPConnection:
        pool: dict[str, http.client.HTTPConnection] = self._connections.__dict__.setdefault("by_peer", {})
        connection = pool.get(peer)
        if connection is None:
            parts = urlsplit(peer)
            host = parts.hostname or "127.0.0.1"
            factory: Callable[..., http.client.HTTPConnection] = (
                http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
            )
            connection = factory(
                host, parts.port or (443 if parts.scheme == "https" else 80), timeout=self.timeout_s
            )
            connect_without_delay(connection)
            pool[peer] = connection
        return connection

    def _drop(self, peer: str) -> None:
        pool: dict[str, http.client.HTTPConnection] = self._connections.__dict__.setdefault("by_peer", {})
        connection = pool.pop(peer, None)
        if connection is not None:
            connection.close()
