"""Helpers that produce spans the way real clients do: the OpenTelemetry SDK and its exporters."""

from __future__ import annotations

import base64
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer


def provider(service: str, exporter: SpanExporter, **resource: Any) -> TracerProvider:
    """A tracer provider for one service exporting synchronously (so a test knows when spans left)."""
    tracer_provider = TracerProvider(resource=Resource.create({"service.name": service, **resource}))
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return tracer_provider


def http_exporter(base_url: str, gzip: bool = False, token: str | None = None) -> HttpSpanExporter:
    return HttpSpanExporter(
        endpoint=f"{base_url}/v1/traces",
        compression=HttpCompression.Gzip if gzip else HttpCompression.NoCompression,
        headers={"Authorization": f"Bearer {token}"} if token else None,
    )


def grpc_exporter(address: str, gzip: bool = False, token: str | None = None) -> GrpcSpanExporter:
    from grpc import Compression as GrpcCompression

    return GrpcSpanExporter(
        endpoint=address,
        insecure=True,
        compression=GrpcCompression.Gzip if gzip else GrpcCompression.NoCompression,
        headers=(("authorization", f"Bearer {token}"),) if token else None,
    )


def record(service: str, **resource: Any) -> tuple[Tracer, InMemorySpanExporter, TracerProvider]:
    """A tracer whose finished spans are kept in memory (to send them by hand, e.g. as OTLP JSON)."""
    exporter = InMemorySpanExporter()
    tracer_provider = provider(service, exporter, **resource)
    return tracer_provider.get_tracer("spyglass-tests", "1.0"), exporter, tracer_provider


def otlp_json(spans: list[ReadableSpan]) -> dict[str, Any]:
    """OTLP/JSON as the spec writes it: protobuf JSON mapping with hex (not base64) ids."""
    document: dict[str, Any] = MessageToDict(encode_spans(spans))
    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
                for link in span.get("links", []):
                    for key in ("traceId", "spanId"):
                        link[key] = base64.b64decode(link[key]).hex()
    return document
