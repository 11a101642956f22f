"""Asking the other satellites of the cluster for their local data (``/api/v1/peer/...``), all at once.

Answers come back as Arrow IPC streams (tables) or JSON. A peer that is down, or slower than the timeout,
is left out and named in the request's ``partial`` record, so a query answers with what the rest know
instead of hanging; a peer refusing connections is also reported down to the membership (ownership moves
off it until it answers again).
"""

from __future__ import annotations

import contextvars
import logging
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.ipc as ipc
from urllib3.exceptions import HTTPError

from spyglass.cluster import http_pool
from spyglass.cluster.membership import Membership
from spyglass.cluster.peer_reads import Verb

log = logging.getLogger(__name__)

ARROW_STREAM = "application/vnd.apache.arrow.stream"
PEER_PREFIX = "/api/v1/peer/"
_IPC_OPTIONS = ipc.IpcWriteOptions(compression="lz4")

#: One more try only when a kept-alive connection broke under the request (the peer closed it as it was
#: reused); peer reads are safe to repeat. A refused connection or a timeout is an answer in itself.
_QUERY_RETRY = http_pool.PeerRetry(
    total=1,
    connect=0,
    redirect=False,
    allowed_methods=None,
    respect_retry_after_header=False,
    retry_read_timeouts=False,
)


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
        self._pool = ThreadPoolExecutor(
            max_workers=http_pool.CONNECTIONS_PER_PEER, thread_name_prefix="spyglass-peer-query"
        )

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
        try:
            response = http_pool.post(peer + PEER_PREFIX + verb, body, headers, self.timeout_s, _QUERY_RETRY)
        except HTTPError as exc:
            if http_pool.refused(exc):
                self.membership.mark_down(peer)
            raise PeerUnavailable(f"{peer}: {http_pool.reason(exc)}") from None
        payload = response.data
        if response.status != 200:
            raise PeerUnavailable(f"{peer}: HTTP {response.status} {payload[:200]!r}")
        if response.headers.get("Content-Type", "").startswith(ARROW_STREAM):
            return ipc_to_table(payload)
        return orjson.loads(payload)

    def ping(self, peer: str) -> bool:
        try:
            self.ask(peer, Verb.PING, b"{}")
        except PeerUnavailable:
            return False
        return True
