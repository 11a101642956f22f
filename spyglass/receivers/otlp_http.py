"""OTLP/HTTP receiver: ``POST /v1/traces`` (and ``/v1/logs``) with protobuf or JSON bodies, compressed, chunked, CORS.

Responses follow the OTLP/HTTP spec: the body is encoded like the request (protobuf or JSON); a partial
success names the rejected spans; errors carry a ``google.rpc.Status``; overload is 429 with Retry-After.
"""

from __future__ import annotations

import orjson
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from spyglass.receivers.decoders.otlp_json import decode_otlp_json
from spyglass.receivers.decoders.otlp_logs import decode_otlp_logs_json, decode_otlp_logs_proto
from spyglass.receivers.decoders.otlp_proto import decode_otlp_proto
from spyglass.receivers.http_body import content_type
from spyglass.receivers.ingest import (
    HTTP_STATUS,
    RETRY_AFTER_S,
    IngestResult,
    Outcome,
    ReceiverSettings,
    ingest,
)
from spyglass.receivers.logs import ingest_logs
from spyglass.receivers.sink import LogSink

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


def _media_type(request: Request) -> str | None:
    media = content_type(request)
    if media in (PROTOBUF, "application/protobuf"):
        return PROTOBUF
    if media == JSON:
        return JSON
    return None


def _response(result: IngestResult, media_type: str) -> Response:
    if result.outcome is Outcome.ACCEPTED:
        if media_type == JSON:
            payload: dict[str, object] = {}
            if result.rejected_spans or result.message:
                payload["partialSuccess"] = {
                    "rejectedSpans": str(result.rejected_spans),
                    "errorMessage": result.message,
                }
            return Response(orjson.dumps(payload), 200, media_type=JSON)
        response = trace_service_pb2.ExportTraceServiceResponse()
        if result.rejected_spans or result.message:
            response.partial_success.rejected_spans = result.rejected_spans
            response.partial_success.error_message = result.message
        return Response(response.SerializeToString(), 200, media_type=PROTOBUF)
    return error_response(HTTP_STATUS[result.outcome], result.message, media_type)


def _logs_response(result: IngestResult, media_type: str) -> Response:
    """As ``_response``, for ``/v1/logs``: a message without rejections is a warning (dropped records)."""
    if result.outcome is not Outcome.ACCEPTED:
        return error_response(HTTP_STATUS[result.outcome], result.message, media_type)
    if media_type == JSON:
        payload: dict[str, object] = {}
        if result.rejected_spans or result.message:
            payload["partialSuccess"] = {
                "rejectedLogRecords": str(result.rejected_spans),
                "errorMessage": result.message,
            }
        return Response(orjson.dumps(payload), 200, media_type=JSON)
    response = logs_service_pb2.ExportLogsServiceResponse()
    if result.rejected_spans or result.message:
        response.partial_success.rejected_log_records = result.rejected_spans
        response.partial_success.error_message = result.message
    return Response(response.SerializeToString(), 200, media_type=PROTOBUF)


def error_response(status: int, message: str, media_type: str) -> Response:
    """An OTLP error: a ``google.rpc.Status`` with the reason, plus Retry-After when retrying can help."""
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status in (429, 503) else {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    grpc_code = {400: 3, 401: 16, 413: 8, 415: 3, 429: 8}.get(status, 2)
    if media_type == PROTOBUF:
        body = status_pb2.Status(code=grpc_code, message=message).SerializeToString()
    else:
        body = orjson.dumps({"code": grpc_code, "message": message})
    return Response(body, status, headers=headers, media_type=media_type)


def create_otlp_http_app(
    settings: ReceiverSettings, logs: LogSink | None = None, logs_settings: ReceiverSettings | None = None
) -> Starlette:
    """The OTLP/HTTP ingest application; ``/v1/logs`` when a log sink is given, admitting by
    ``logs_settings`` (default: ``settings``' bounds, counted apart, and the log sink's room)."""

    async def traces(request: Request) -> Response:
        media_type = _media_type(request)
        if media_type is None:
            return error_response(
                415, "Content-Type must be application/x-protobuf or application/json", JSON
            )
        decode = decode_otlp_proto if media_type == PROTOBUF else decode_otlp_json
        return _response(await ingest(request, settings, decode), media_type)

    if logs_settings is None:
        logs_settings = settings.with_room(logs.accepting_logs) if logs is not None else settings

    async def log_records(request: Request) -> Response:
        media_type = _media_type(request)
        if media_type is None:
            return error_response(
                415, "Content-Type must be application/x-protobuf or application/json", JSON
            )
        assert logs is not None
        decode = decode_otlp_logs_proto if media_type == PROTOBUF else decode_otlp_logs_json
        return _logs_response(await ingest_logs(request, logs_settings, logs, decode), media_type)

    routes = [Route("/v1/traces", traces, methods=["POST"])]
    if logs is not None:
        routes.append(Route("/v1/logs", log_records, methods=["POST"]))
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=["*"],
                allow_methods=["POST", "OPTIONS"],
                allow_headers=["*"],
                max_age=3600,
            )
        ],
    )
