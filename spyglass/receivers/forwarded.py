"""Spans another cluster member forwards to the owner of their trace: ``POST /v1/traces`` on the API port,
OTLP/HTTP protobuf marked with the forwarded header. They are this member's to keep, so they go straight into
its satellite and are never routed again; they need the ``--ingest-token`` like any receiver, and their own
in-flight bound (past it the forwarder is told 429 and sends again).

The forwarder sends a batch again when it did not hear back (a timeout, a dropped answer), though this member
may have taken it. Each request names its batch (``BATCH_HEADER``), and a batch already taken is acknowledged
without being ingested again, so retries never count spans twice; a batch still being taken is answered 429.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from spyglass.cluster.forwarder import BATCH_HEADER, FORWARD_PATH, FORWARDED_HEADER
from spyglass.receivers.decode_workers import DecodeThreads, DecodeWorkers
from spyglass.receivers.decoders.otlp_proto import decode_otlp_proto
from spyglass.receivers.ingest import HTTP_STATUS, Outcome, ReceiverSettings, ingest
from spyglass.receivers.otlp_http import PROTOBUF, error_response

if TYPE_CHECKING:
    from spyglass.cluster.node import ClusterNode

#: The in-flight bound of forwarded spans; past it peers are told 429 and send again (the forwarder retries).
PEER_INFLIGHT_BYTES = 64 * 1024 * 1024
PEER_EXPORTS_IN_FLIGHT = 16
#: Batch ids remembered: far more than a forwarder's retry window can produce (seconds of requests).
REMEMBERED_BATCHES = 65_536


class RecentBatches:
    """The ids of batches taken lately (and those being taken), oldest forgotten first."""

    def __init__(self, capacity: int = REMEMBERED_BATCHES) -> None:
        self.capacity = capacity
        self._taken: OrderedDict[str, None] = OrderedDict()
        self._taking: set[str] = set()
        self._lock = threading.Lock()

    def begin(self, batch: str) -> str:
        """``"new"`` (the caller takes it, then calls ``end``), ``"taken"`` or ``"taking"``."""
        with self._lock:
            if batch in self._taken:
                return "taken"
            if batch in self._taking:
                return "taking"
            self._taking.add(batch)
            return "new"

    def end(self, batch: str, taken: bool) -> None:
        with self._lock:
            self._taking.discard(batch)
            if taken:
                self._taken[batch] = None
                while len(self._taken) > self.capacity:
                    self._taken.popitem(last=False)


def forwarded_spans_route(node: ClusterNode, decode_pool: DecodeWorkers | None = None) -> Route:
    """The route the API port mounts when this satellite is a member of a cluster; ``decode_pool``: the
    receivers' decode workers (default: threads of this process)."""
    local = ReceiverSettings(
        node.satellite, node.max_body_bytes, node.ingest_token, decode_pool=decode_pool or DecodeThreads()
    ).bounded(PEER_INFLIGHT_BYTES, PEER_EXPORTS_IN_FLIGHT)

    recent = RecentBatches()

    async def forwarded_spans(request: Request) -> Response:
        """Spans a cluster member forwarded to their owner (OTLP protobuf, ``--ingest-token``).

        Only with the forwarding header; a batch id (``x-spyglass-batch``) seen before is acknowledged once
        more and not taken twice."""
        if request.headers.get(FORWARDED_HEADER) != "1":
            return error_response(
                404, "this is the query port: send spans to the OTLP ports", "application/json"
            )
        batch = request.headers.get(BATCH_HEADER, "")[:64]
        state = recent.begin(batch) if batch else "new"
        if state == "taken":
            node.batches_repeated += 1
            return Response(b"", 200, media_type=PROTOBUF)
        if state == "taking":
            return error_response(429, "this batch is being taken; ask again", PROTOBUF)
        result = None
        try:
            result = await ingest(request, local, decode_otlp_proto)
        finally:
            if batch:
                recent.end(batch, taken=result is not None and result.outcome is Outcome.ACCEPTED)
        if result.outcome is not Outcome.ACCEPTED:
            return error_response(HTTP_STATUS[result.outcome], result.message, PROTOBUF)
        node.spans_from_peers += result.accepted_spans
        return Response(b"", 200, media_type=PROTOBUF)  # an empty ExportTraceServiceResponse

    return Route(FORWARD_PATH, forwarded_spans, methods=["POST"])
