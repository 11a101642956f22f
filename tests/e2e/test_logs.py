"""OTLP logs from the real OpenTelemetry SDK (``logging`` bridged by ``LoggingHandler``) over HTTP and gRPC,
read back by trace id; logs without trace context are dropped; bad bodies, tokens and overload are answered."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import duckdb
import grpc
import httpx
import orjson
import pytest
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import LogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from spyglass.model.log_schema import LOG_SCHEMA
from spyglass.receivers.decoders.otlp_logs import decode_otlp_logs_json
from spyglass.store.duckdb_store import DuckDBStore
from tests.conftest import RunningServer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@contextmanager
def python_logger(service: str, exporter: LogRecordExporter) -> Iterator[logging.Logger]:
    """A stdlib logger whose records go through the SDK's ``LoggingHandler`` to ``exporter``, synchronously."""
    provider = LoggerProvider(
        resource=Resource.create({"service.name": service, "deployment.environment": "t"})
    )
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = logging.getLogger(f"spyglass.tests.{service}.{uuid.uuid4().hex[:8]}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = LoggingHandler(level=logging.DEBUG, logger_provider=provider)
    logger.addHandler(handler)
    try:
        yield logger
    finally:
        logger.removeHandler(handler)
        provider.shutdown()


def emit(logger: logging.Logger) -> tuple[str, str]:
    """Two records inside a span (they carry its ids), one outside (no trace context)."""
    tracer = TracerProvider().get_tracer("spyglass-tests")
    with tracer.start_as_current_span("POST /checkout") as span:
        logger.info("cart has %d items", 3, extra={"cart.items": 3})
        try:
            raise ValueError("card declined")
        except ValueError:
            logger.exception("payment failed")
    logger.warning("background job finished")
    context = span.get_span_context()
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def logs_of(spyglass: RunningServer, trace_id: str, **params: Any) -> list[dict[str, Any]]:
    spyglass.server.log_writer.flush()
    response = spyglass.get(f"/api/v1/traces/{trace_id}/logs", params=params)
    assert response.status_code == 200, response.text
    return cast("list[dict[str, Any]]", response.json()["logs"])


def test_http_exporter_logs_come_back_by_trace_id(spyglass: RunningServer) -> None:
    exporter = HttpLogExporter(endpoint=spyglass.otlp_http + "/v1/logs", compression=HttpCompression.Gzip)
    with python_logger("checkout", exporter) as logger:
        trace_id, span_id = emit(logger)
    logs = logs_of(spyglass, trace_id)
    assert [entry["body"] for entry in logs] == ["cart has 3 items", "payment failed"]
    info, error = logs
    assert info["trace_id"] == trace_id and info["span_id"] == span_id
    assert (info["severity"], info["severity_number"]) == ("INFO", 9)
    assert (error["severity"], error["severity_number"]) == ("ERROR", 17)
    assert info["attributes"]["cart.items"] == 3
    assert error["attributes"]["exception.type"] == "ValueError"
    assert info["service"] == "checkout" and info["resource"]["deployment.environment"] == "t"
    assert info["time_ns"] <= error["time_ns"]
    counters = spyglass.server.log_writer.counters
    assert (counters.stored, counters.dropped, counters.rejected) == (2, 1, 0)
    assert len(logs_of(spyglass, trace_id, limit=1)) == 1
    assert logs_of(spyglass, "0" * 31 + "1") == []
    assert spyglass.get("/api/v1/traces/nothex/logs").status_code == 400
    assert "/api/v1/traces/{trace_id}/logs" in spyglass.get("/openapi.json").json()["paths"]


def test_grpc_exporter_with_token(start_server: Any) -> None:
    spyglass = start_server(ingest_token="s3cret")
    anonymous = GrpcLogExporter(endpoint=spyglass.otlp_grpc, insecure=True, timeout=5)
    with python_logger("payments", anonymous) as logger:
        refused_trace, _ = emit(logger)
    exporter = GrpcLogExporter(
        endpoint=spyglass.otlp_grpc, insecure=True, timeout=5, headers=(("authorization", "Bearer s3cret"),)
    )
    with python_logger("payments", exporter) as logger:
        trace_id, span_id = emit(logger)
    assert logs_of(spyglass, refused_trace) == []
    logs = logs_of(spyglass, trace_id)
    assert [(entry["body"], entry["span_id"], entry["service"]) for entry in logs] == [
        ("cart has 3 items", span_id, "payments"),
        ("payment failed", span_id, "payments"),
    ]
    # The HTTP receiver asks for the same token.
    response = httpx.post(
        spyglass.otlp_http + "/v1/logs", content=b"{}", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401


def json_document(*records: dict[str, Any]) -> bytes:
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "web"}}]}
    return orjson.dumps(
        {"resourceLogs": [{"resource": resource, "scopeLogs": [{"logRecords": list(records)}]}]}
    )


def test_json_partial_success_and_drops(spyglass: RunningServer) -> None:
    trace_id = "5b8efff798038103d269b633813fc60c"
    body = json_document(
        {"traceId": trace_id, "spanId": "eee19b7ec3c1b174", "timeUnixNano": "1700000000000000001",
         "body": {"kvlistValue": {"values": [{"key": "user", "value": {"stringValue": "bo"}}]}}},
        {"traceId": "abc", "timeUnixNano": "1700000000000000002"},
        {"timeUnixNano": "1700000000000000003", "body": {"stringValue": "no trace"}},
    )  # fmt: skip
    response = httpx.post(
        spyglass.otlp_http + "/v1/logs", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text
    partial = response.json()["partialSuccess"]
    assert partial["rejectedLogRecords"] == "1"
    assert (
        "traceId" in partial["errorMessage"] and "1 log records without a trace id" in partial["errorMessage"]
    )
    logs = logs_of(spyglass, trace_id)
    assert [(entry["body"], entry["span_id"], entry["service"]) for entry in logs] == [
        ('{"user":"bo"}', "eee19b7ec3c1b174", "web")
    ]
    # Only untraced records: accepted (a warning, nothing rejected), nothing stored.
    response = httpx.post(
        spyglass.otlp_http + "/v1/logs",
        content=json_document({"timeUnixNano": "1"}),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200
    assert response.json()["partialSuccess"]["rejectedLogRecords"] == "0"
    # CORS for browsers, as on /v1/traces.
    preflight = httpx.options(
        spyglass.otlp_http + "/v1/logs",
        headers={"Origin": "http://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == "*"


def test_malformed_bodies_are_refused(spyglass: RunningServer) -> None:
    url = spyglass.otlp_http + "/v1/logs"
    response = httpx.post(url, content=b"\xff\x00garbage", headers={"Content-Type": "application/x-protobuf"})
    assert response.status_code == 400
    assert "invalid OTLP protobuf" in status_pb2.Status.FromString(response.content).message
    response = httpx.post(url, content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "invalid JSON" in response.json()["message"]
    response = httpx.post(
        url, content=json_document({"traceId": "zz"}), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400 and "traceId" in response.json()["message"]
    assert httpx.post(url, content=b"x", headers={"Content-Type": "text/plain"}).status_code == 415

    with grpc.insecure_channel(spyglass.otlp_grpc) as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            request_serializer=lambda data: data,
            response_deserializer=logs_service_pb2.ExportLogsServiceResponse.FromString,
        )
        with pytest.raises(grpc.RpcError) as refused:
            export(b"\xff\x00garbage", timeout=5)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert export(b"", timeout=5) == logs_service_pb2.ExportLogsServiceResponse()


def test_overload_is_429_with_retry_advice(spyglass: RunningServer) -> None:
    spyglass.server.log_writer.max_queued_records = 0
    response = httpx.post(
        spyglass.otlp_http + "/v1/logs",
        content=json_document({"traceId": "5b8efff798038103d269b633813fc60c", "timeUnixNano": "5"}),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 429 and response.headers["Retry-After"] == "1"


def test_store_roundtrip_and_migration(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    store = DuckDBStore(path)
    store.close()
    with duckdb.connect(str(path)) as conn:  # make it a file from before logs existed (schema version 2)
        conn.execute("DROP TABLE logs")
        conn.execute("UPDATE schema_version SET version = 2")
    store = DuckDBStore(path)
    try:
        trace_id = bytes.fromhex("5b8efff798038103d269b633813fc60c")
        batch = decode_otlp_logs_json(
            json_document(
                {"traceId": trace_id.hex(), "timeUnixNano": "20", "body": {"stringValue": "second"}},
                {"traceId": trace_id.hex(), "timeUnixNano": "10", "body": {"intValue": "7"}},
                {"traceId": "11" * 16, "timeUnixNano": "15"},
            )
        ).batch
        store.write_logs(batch)
        got = store.logs_for_traces([trace_id], 100)
        assert got.schema.equals(LOG_SCHEMA)
        assert got.column("body").to_pylist() == ["7", "second"]
        assert store.logs_for_traces([trace_id, bytes.fromhex("11" * 16)], 100).num_rows == 3
        assert store.logs_for_traces([], 100).num_rows == 0
    finally:
        store.close()


def test_status_counts_logs(spyglass: RunningServer) -> None:
    status = spyglass.status()
    assert set(status["logs"]) == {
        "received",
        "rejected",
        "dropped",
        "stored",
        "write_failures",
        "unwritable",
        "write_failed",
    }
