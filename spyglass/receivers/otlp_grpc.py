"""OTLP/gRPC receiver: ``TraceService/Export`` (and ``LogsService/Export``), raw bytes to the columnar decoders.

The request is not parsed into protobuf objects first: the handler's deserializer is the identity, and the
bytes go to the same ptars decoder as OTLP/HTTP. gzip (the exporters' ``compression=gzip``) is undone by gRPC.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn, cast

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from grpc import aio
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from spyglass.receivers.decode_workers import Decoded
from spyglass.receivers.decoders.otlp_logs import decode_otlp_logs_proto
from spyglass.receivers.decoders.otlp_proto import decode_otlp_proto
from spyglass.receivers.decoders.result import DecodeError
from spyglass.receivers.ingest import (
    BUSY,
    RETRY_AFTER_S,
    IngestResult,
    Outcome,
    ReceiverSettings,
    accept,
)
from spyglass.receivers.logs import accept_logs
from spyglass.receivers.sink import LogSink
from spyglass.security import bearer_ok

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"


def _identity(data: bytes) -> bytes:
    return data


def _serialize(
    response: trace_service_pb2.ExportTraceServiceResponse | logs_service_pb2.ExportLogsServiceResponse,
) -> bytes:
    return cast(bytes, response.SerializeToString())


#: Retry advice in the form OTLP/gRPC exporters read (``google.rpc.RetryInfo`` in trailing metadata).
_RETRY_METADATA = (
    ("google.rpc.retryinfo-bin", RetryInfo(retry_delay=Duration(seconds=RETRY_AFTER_S)).SerializeToString()),
    ("retry-after", str(RETRY_AFTER_S)),
)


async def _refuse_busy(context: aio.ServicerContext, message: str) -> NoReturn:
    context.set_trailing_metadata(_RETRY_METADATA)
    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, message)
    raise AssertionError("abort returns only by raising")


async def _admit(
    context: aio.ServicerContext,
    settings: ReceiverSettings,
    request: bytes,
    decode: Callable[[bytes], Decoded],
    hand_over: Callable[[Decoded], IngestResult],
) -> IngestResult:
    """What both export services do: authenticate, admit (before decoding), decode off the event loop, hand
    over, and answer the errors (INVALID_ARGUMENT for bad input; RESOURCE_EXHAUSTED with retry advice, as
    OTLP says, for overload)."""
    metadata = dict(context.invocation_metadata() or ())
    if not bearer_ok(metadata.get("authorization"), settings.ingest_token):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
    ticket = settings.admission.enter()
    if ticket is None:
        await _refuse_busy(context, BUSY.message)
    try:
        if not ticket.grow(len(request)):
            await _refuse_busy(context, BUSY.message)
        decoded = await settings.decode_pool.run(decode, request, "identity", settings.max_body_bytes)
    except DecodeError as exc:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    finally:
        ticket.release()
    result = hand_over(decoded)
    if result.outcome is Outcome.OVERLOADED:
        await _refuse_busy(context, result.message)
    return result


class TraceServiceHandler:
    """Implements ``Export`` for raw request bytes."""

    def __init__(self, settings: ReceiverSettings) -> None:
        self.settings = settings

    async def export(
        self, request: bytes, context: aio.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        result = await _admit(
            context, self.settings, request, decode_otlp_proto, lambda d: accept(d, self.settings)
        )
        response = trace_service_pb2.ExportTraceServiceResponse()
        if result.rejected_spans or result.message:
            response.partial_success.rejected_spans = result.rejected_spans
            response.partial_success.error_message = result.message
        return response


class LogsServiceHandler:
    """Implements ``LogsService/Export`` for raw request bytes; records without trace context are dropped."""

    def __init__(self, settings: ReceiverSettings, sink: LogSink) -> None:
        self.settings = settings
        self.sink = sink

    async def export(
        self, request: bytes, context: aio.ServicerContext
    ) -> logs_service_pb2.ExportLogsServiceResponse:
        result = await _admit(
            context, self.settings, request, decode_otlp_logs_proto, lambda d: accept_logs(d, self.sink)
        )
        response = logs_service_pb2.ExportLogsServiceResponse()
        if result.rejected_spans or result.message:
            response.partial_success.rejected_log_records = result.rejected_spans
            response.partial_success.error_message = result.message
        return response


def create_grpc_server(
    settings: ReceiverSettings,
    address: str,
    logs: LogSink | None = None,
    logs_settings: ReceiverSettings | None = None,
) -> tuple[aio.Server, int]:
    """An asyncio gRPC server with the trace service (and the logs service, given a log sink, admitting by
    ``logs_settings`` as ``create_otlp_http_app``) bound to ``address``; returns it and the bound port."""
    server = aio.server(
        options=[
            ("grpc.max_receive_message_length", settings.max_body_bytes),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
        ],
        maximum_concurrent_rpcs=256,
    )
    handler = TraceServiceHandler(settings)
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE,
                {
                    "Export": grpc.unary_unary_rpc_method_handler(
                        handler.export, request_deserializer=_identity, response_serializer=_serialize
                    )
                },
            ),
        )
    )
    if logs is not None:
        logs_handler = LogsServiceHandler(logs_settings or settings.with_room(logs.accepting_logs), logs)
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    LOGS_SERVICE,
                    {
                        "Export": grpc.unary_unary_rpc_method_handler(
                            logs_handler.export,
                            request_deserializer=_identity,
                            response_serializer=_serialize,
                        )
                    },
                ),
            )
        )
    port = server.add_insecure_port(address)
    return server, port
