"""Spans another cluster member forwards to the owner of their trace: ``POST /v1/traces`` on the API port,
OTLP/HTTP protobuf marked with the forwarded header. They are this member's to keep, so they go straight into
its satellite and are never routed again; they need the ``--ingest-token`` like any receiver, and their own
in-flight bound (past it the forwarder is told 429 and sends again)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from spyglass.cluster.forwarder import FORWARD_PATH, FORWARDED_HEADER
from spyglass.receivers.decoders.otlp_proto import decode_otlp_proto
from spyglass.receivers.ingest import HTTP_STATUS, Outcome, ReceiverSettings, ingest
from spyglass.receivers.otlp_http import PROTOBUF, error_response

if TYPE_CHECKING:
    from spyglass.cluster.node import ClusterNode

PEER_INFLIGHT_BYTES = 64 * 1024 * 1024
PEER_EXPORTS_IN_FLIGHT = 16


def forwarded_spans_route(node: ClusterNode) -> Route:
    """The route the API port mounts when this satellite is a member of a cluster."""
    local = ReceiverSettings(node.satellite, node.max_body_bytes, node.ingest_token).bounded(
        PEER_INFLIGHT_BYTES, PEER_EXPORTS_IN_FLIGHT
    )

    async def forwarded_spans(request: Request) -> Response:
        if request.headers.get(FORWARDED_HEADER) != "1":
            return error_response(
                404, "this is the query port: send spans to the OTLP ports", "application/json"
            )
        result = await ingest(request, local, decode_otlp_proto)
        if result.outcome is not Outcome.ACCEPTED:
            return error_response(HTTP_STATUS[result.outcome], result.message, PROTOBUF)
        node.spans_from_peers += result.accepted_spans
        return Response(b"", 200, media_type=PROTOBUF)  # an empty ExportTraceServiceResponse

    return Route(FORWARD_PATH, forwarded_spans, methods=["POST"])
