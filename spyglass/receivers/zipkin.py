"""Zipkin receiver: ``POST /api/v2/spans`` with a list of spans in JSON (string tags) or protobuf
(``zipkin.proto3.ListOfSpans``), and ``POST /api/v1/spans`` with a list of v1 spans in JSON (what zipkin-js's
HTTP transport sends unless told otherwise), compressed as any OTLP/HTTP body may be."""

from __future__ import annotations

from collections.abc import Callable

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from spyglass.receivers.decoders.result import DecodeResult
from spyglass.receivers.decoders.zipkin_json import decode_zipkin_json
from spyglass.receivers.decoders.zipkin_proto import decode_zipkin_proto
from spyglass.receivers.decoders.zipkin_v1 import decode_zipkin_v1_json
from spyglass.receivers.http_body import content_type
from spyglass.receivers.ingest import HTTP_STATUS, RETRY_AFTER_S, Outcome, ReceiverSettings, ingest

#: What Zipkin's reporters send JSON as (none, for some): Zipkin's own server reads them all as JSON.
_JSON_TYPES = ("application/json", "text/plain", "")


def create_zipkin_app(settings: ReceiverSettings) -> Starlette:
    """The Zipkin ingest application; answers 202 as Zipkin's own server does."""

    async def spans(request: Request) -> Response:
        media = content_type(request)
        if media == "application/x-protobuf":
            decode = decode_zipkin_proto
        elif media in _JSON_TYPES:
            decode = decode_zipkin_json
        else:
            return _error(
                415, "Content-Type must be application/json or application/x-protobuf (Zipkin v2 spans)"
            )
        return await _ingested(request, settings, decode)

    async def v1_spans(request: Request) -> Response:
        if content_type(request) not in _JSON_TYPES:
            # Zipkin's server also takes v1 Thrift here; its reporters all send JSON or v2 now.
            return _error(415, "Content-Type must be application/json (Zipkin v1 spans; Thrift is not read)")
        return await _ingested(request, settings, decode_zipkin_v1_json)

    return Starlette(
        routes=[
            Route("/api/v2/spans", spans, methods=["POST"]),
            Route("/api/v1/spans", v1_spans, methods=["POST"]),
        ],
        middleware=[
            Middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["POST"], allow_headers=["*"])
        ],
    )


async def _ingested(
    request: Request, settings: ReceiverSettings, decode: Callable[[bytes], DecodeResult]
) -> Response:
    """Zipkin's answer to a request: 202 once its spans are accepted."""
    result = await ingest(request, settings, decode)
    if result.outcome is Outcome.ACCEPTED:
        return Response(status_code=202)
    return _error(HTTP_STATUS[result.outcome], result.message)


def _error(status: int, message: str) -> Response:
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 429 else {}
    return Response(orjson.dumps({"error": message}), status, headers=headers, media_type="application/json")
