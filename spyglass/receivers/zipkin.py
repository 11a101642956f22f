"""Zipkin v2 receiver: ``POST /api/v2/spans`` with a list of spans in JSON (string tags) or protobuf
(``zipkin.proto3.ListOfSpans``), compressed as any OTLP/HTTP body may be."""

from __future__ import annotations

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from spyglass.receivers.decoders.zipkin_json import decode_zipkin_json
from spyglass.receivers.decoders.zipkin_proto import decode_zipkin_proto
from spyglass.receivers.ingest import HTTP_STATUS, RETRY_AFTER_S, Outcome, ReceiverSettings, ingest


def create_zipkin_app(settings: ReceiverSettings) -> Starlette:
    """The Zipkin ingest application; answers 202 as Zipkin's own server does."""

    async def spans(request: Request) -> Response:
        content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if content_type == "application/x-protobuf":
            decode = decode_zipkin_proto
        elif content_type in ("application/json", "text/plain", ""):
            decode = decode_zipkin_json
        else:
            return _error(
                415, "Content-Type must be application/json or application/x-protobuf (Zipkin v2 spans)"
            )
        result = await ingest(request, settings, decode)
        if result.outcome is Outcome.ACCEPTED:
            return Response(status_code=202)
        return _error(HTTP_STATUS[result.outcome], result.message)

    return Starlette(
        routes=[Route("/api/v2/spans", spans, methods=["POST"])],
        middleware=[
            Middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["POST"], allow_headers=["*"])
        ],
    )


def _error(status: int, message: str) -> Response:
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 429 else {}
    return Response(orjson.dumps({"error": message}), status, headers=headers, media_type="application/json")
