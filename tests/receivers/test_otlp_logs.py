"""The OTLP logs decoders (protobuf via ptars, and JSON): SDK records, every body kind, validation, fuzzing."""

from __future__ import annotations

import base64
import copy
import json
import logging
import random
from typing import Any

import orjson
import pyarrow.compute as pc
import pytest
from google.protobuf.json_format import MessageToDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs, SeverityNumber
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ResourceProto
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from spyglass.model.attributes import typed_attributes
from spyglass.model.log_schema import LOG_SCHEMA, severity_name
from spyglass.receivers.decoders.limits import MAX_ATTRIBUTE_VALUE_BYTES, MAX_TIME_NS
from spyglass.receivers.decoders.otlp_logs import (
    LogDecodeResult,
    decode_otlp_logs_json,
    decode_otlp_logs_proto,
)
from spyglass.receivers.decoders.result import DecodeError
from spyglass.satellite.log_writer import LogWriter

TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN = bytes.fromhex("eee19b7ec3c1b174")
NOW = 1_700_000_000_000_000_000
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def request_of(*records: LogRecord, service: str = "checkout") -> logs_service_pb2.ExportLogsServiceRequest:
    resource = ResourceProto(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service))])
    return logs_service_pb2.ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(resource=resource, scope_logs=[ScopeLogs(log_records=list(records))])]
    )


def as_json(request: logs_service_pb2.ExportLogsServiceRequest) -> dict[str, Any]:
    """OTLP/JSON as the spec writes it: the protobuf JSON mapping with hex ids."""
    document: dict[str, Any] = MessageToDict(request)
    for resource_logs in document.get("resourceLogs", []):
        for scope_logs in resource_logs.get("scopeLogs", []):
            for record in scope_logs.get("logRecords", []):
                for key in ("traceId", "spanId"):
                    if key in record:
                        record[key] = base64.b64decode(record[key]).hex()
    return document


def both(request: logs_service_pb2.ExportLogsServiceRequest) -> tuple[LogDecodeResult, LogDecodeResult]:
    """Decode through both paths and check they agree exactly."""
    proto = check(decode_otlp_logs_proto(request.SerializeToString()))
    from_json = check(decode_otlp_logs_json(orjson.dumps(as_json(request))))
    assert proto.batch.to_pylist() == from_json.batch.to_pylist()
    assert (proto.rejected_spans, proto.dropped_records) == (
        from_json.rejected_spans,
        from_json.dropped_records,
    )
    return proto, from_json


def check(result: Any) -> LogDecodeResult:
    """Everything a log decoder promises about a result it returns."""
    assert isinstance(result, LogDecodeResult)
    batch = result.batch
    assert batch.schema.equals(LOG_SCHEMA)
    batch.validate(full=True)
    assert result.rejected_spans >= 0 and result.dropped_records >= 0
    assert (result.rejected_spans > 0) == bool(result.error_message)
    if batch.num_rows:
        assert batch.column("trace_id").null_count == 0
        assert bytes(16) not in batch.column("trace_id").to_pylist()
        assert bytes(8) not in batch.column("span_id").to_pylist()
        assert pc.min(batch.column("time_ns")).as_py() > 0
        assert pc.max(batch.column("time_ns")).as_py() < MAX_TIME_NS
        assert pc.min(batch.column("severity_number")).as_py() >= 0
    return result


def sdk_request() -> tuple[logs_service_pb2.ExportLogsServiceRequest, str, str]:
    """Records made by the real SDK through the ``logging`` bridge: two inside a span, one outside."""
    # The SDK's in-memory log exporter leaves its __init__ unannotated.
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    provider = LoggerProvider(
        resource=Resource.create({"service.name": "checkout", "service.version": "1.2"})
    )
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = logging.getLogger("spyglass.tests.logs.unit")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = LoggingHandler(level=logging.DEBUG, logger_provider=provider)
    logger.addHandler(handler)
    try:
        with TracerProvider().get_tracer("t").start_as_current_span("charge") as span:
            logger.warning("card declined for order %s", 42, extra={"order.id": 42, "retry": True})
            logger.debug("retrying")
        logger.info("startup complete")  # no trace context: spyglass drops it
    finally:
        logger.removeHandler(handler)
        provider.shutdown()
    context = span.get_span_context()
    return encode_logs(exporter.get_finished_logs()), f"{context.trace_id:032x}", f"{context.span_id:016x}"


def test_sdk_records_keep_trace_context_and_drop_the_rest() -> None:
    request, trace_id, span_id = sdk_request()
    proto, _ = both(request)
    assert (proto.rejected_spans, proto.dropped_records, proto.error_message) == (0, 1, "")
    rows = proto.batch.to_pylist()
    assert [r["body"] for r in rows] == ["card declined for order 42", "retrying"]
    assert {r["trace_id"].hex() for r in rows} == {trace_id}
    assert {r["span_id"].hex() for r in rows} == {span_id}
    warning = rows[0]
    assert (warning["severity_number"], warning["severity_text"]) == (13, "WARN")
    assert rows[1]["severity_number"] == 5
    assert warning["service"] == "checkout" and warning["scope_name"] == "spyglass.tests.logs.unit"
    attributes = typed_attributes(warning["attributes"], warning["attribute_types"])
    assert attributes["order.id"] == 42 and attributes["retry"] is True
    assert typed_attributes(warning["resource"], warning["resource_types"])["service.version"] == "1.2"
    assert warning["time_ns"] > 0 and warning["observed_time_ns"] >= warning["time_ns"] - 10**9


def test_every_body_kind() -> None:
    nested = AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key="a", value=AnyValue(int_value=1))]))
    bodies = [
        AnyValue(string_value="plain"),
        AnyValue(int_value=-7),
        AnyValue(bool_value=False),
        AnyValue(double_value=0.5),
        AnyValue(bytes_value=b"\x00\xff"),
        AnyValue(array_value=ArrayValue(values=[AnyValue(string_value="x"), nested])),
        AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key="user", value=AnyValue(string_value="bo"))])),
        None,
    ]
    records = [
        LogRecord(time_unix_nano=NOW + i, trace_id=TRACE, span_id=SPAN, body=body)
        if body is not None
        else LogRecord(time_unix_nano=NOW + i, trace_id=TRACE)
        for i, body in enumerate(bodies)
    ]
    proto, _ = both(request_of(*records))
    assert [r["body"] for r in proto.batch.to_pylist()] == [
        "plain",
        "-7",
        "false",
        "0.5",
        '"AP8="',
        '["x",{"a":1}]',
        '{"user":"bo"}',
        None,
    ]
    assert proto.batch.column("span_id").to_pylist()[-1] is None


def test_ids_and_times() -> None:
    records = [
        LogRecord(
            time_unix_nano=NOW, trace_id=TRACE, span_id=bytes(8), body=AnyValue(string_value="no span")
        ),
        LogRecord(observed_time_unix_nano=NOW + 5, trace_id=TRACE, body=AnyValue(string_value="observed")),
        LogRecord(time_unix_nano=NOW, trace_id=bytes(16), body=AnyValue(string_value="zero trace: dropped")),
        LogRecord(time_unix_nano=NOW, body=AnyValue(string_value="no trace: dropped")),
        LogRecord(time_unix_nano=NOW, trace_id=TRACE[:5], body=AnyValue(string_value="bad trace")),
        LogRecord(time_unix_nano=NOW, trace_id=TRACE, span_id=SPAN[:3]),
        LogRecord(trace_id=TRACE, body=AnyValue(string_value="no time at all")),
        LogRecord(time_unix_nano=2**63, trace_id=TRACE),
        LogRecord(
            time_unix_nano=NOW,
            trace_id=TRACE,
            severity_number=SeverityNumber.ValueType(99),
            severity_text="x" * 10_000,
        ),
    ]
    proto, _ = both(request_of(*records))
    rows = proto.batch.to_pylist()
    assert [r["body"] for r in rows] == ["no span", "observed", None]
    assert rows[0]["span_id"] is None
    assert (rows[1]["time_ns"], rows[1]["observed_time_ns"]) == (NOW + 5, NOW + 5)
    assert rows[2]["severity_number"] == 0 and len(rows[2]["severity_text"]) == 4096
    assert (proto.rejected_spans, proto.dropped_records) == (4, 2)
    assert proto.error_message.startswith("log record 4") or "logRecords[4]" in proto.error_message


def test_json_messages_name_the_record() -> None:
    document = as_json(
        request_of(LogRecord(time_unix_nano=NOW, trace_id=TRACE), LogRecord(time_unix_nano=NOW))
    )
    document["resourceLogs"][0]["scopeLogs"][0]["logRecords"].append({"traceId": "xyz", "timeUnixNano": "1"})
    result = check(decode_otlp_logs_json(orjson.dumps(document)))
    assert (result.batch.num_rows, result.rejected_spans, result.dropped_records) == (1, 1, 1)
    assert "resourceLogs[0].scopeLogs[0].logRecords[2].traceId" in result.error_message
    # snake_case names, enum names and int64 as numbers are accepted too.
    snake = {
        "resource_logs": [
            {
                "scope_logs": [
                    {
                        "log_records": [
                            {
                                "trace_id": TRACE.hex(),
                                "time_unix_nano": NOW,
                                "severity_number": "SEVERITY_NUMBER_ERROR2",
                            }
                        ]
                    }
                ]
            }
        ]
    }
    row = check(decode_otlp_logs_json(orjson.dumps(snake))).batch.to_pylist()[0]
    assert (row["severity_number"], row["service"], row["time_ns"]) == (18, "unknown_service", NOW)
    assert severity_name(18) == "ERROR" and severity_name(0) == ""


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"\xff\x00garbage", "invalid OTLP protobuf"),
        (request_of(LogRecord(time_unix_nano=NOW, trace_id=b"short")).SerializeToString(), "traceId"),
        (request_of(LogRecord(trace_id=TRACE)).SerializeToString(), "timeUnixNano"),
    ],
)
def test_proto_refusals(body: bytes, fragment: str) -> None:
    with pytest.raises(DecodeError, match=fragment):
        decode_otlp_logs_proto(body)


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        (b"{", "invalid JSON"),
        (b"[]", "expected a JSON object"),
        (b'{"resourceLogs": {}}', "resourceLogs"),
        (b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [7]}]}]}', r"logRecords\[0\]"),
        (b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "00"}]}]}]}', "traceId"),
    ],
)
def test_json_refusals(document: bytes, fragment: str) -> None:
    with pytest.raises(DecodeError, match=fragment):
        decode_otlp_logs_json(document)


def test_empty_requests_accept_nothing() -> None:
    assert check(decode_otlp_logs_proto(b"")).batch.num_rows == 0
    assert check(decode_otlp_logs_json(b"{}")).batch.num_rows == 0


def test_long_bodies_are_truncated() -> None:
    body = AnyValue(string_value="é" * MAX_ATTRIBUTE_VALUE_BYTES)
    proto, _ = both(request_of(LogRecord(time_unix_nano=NOW, trace_id=TRACE, body=body)))
    assert len(proto.batch.column("body")[0].as_py().encode()) <= MAX_ATTRIBUTE_VALUE_BYTES


def test_log_writer_refuses_past_its_bound() -> None:
    class NoStore:
        def write_logs(self, table: Any) -> None:
            raise AssertionError("not started: nothing is written")

    batch = decode_otlp_logs_proto(sdk_request()[0].SerializeToString()).batch
    writer = LogWriter(NoStore(), max_queued_records=3)  # type: ignore[arg-type]
    assert writer.submit_logs(batch) is True
    assert writer.submit_logs(batch) is False  # 2 + 2 > 3: the receiver answers 429
    assert writer.queued_records == 2 and writer.counters.received == 2


# -- fuzzing: whatever the bytes, a LogDecodeResult or a DecodeError ---------------------------------------


def outcome(decoder: Any, data: bytes) -> None:
    try:
        result = decoder(data)
    except DecodeError as error:
        assert str(error)
        assert not str(error).startswith("cannot decode"), str(error)
        return
    check(result)


@FUZZ
@given(st.binary(max_size=2048))
def test_fuzz_proto_bytes(data: bytes) -> None:
    outcome(decode_otlp_logs_proto, data)


@FUZZ
@given(st.binary(max_size=512))
def test_fuzz_json_bytes(data: bytes) -> None:
    outcome(decode_otlp_logs_json, data)


_VALID_REQUEST = request_of(
    LogRecord(
        time_unix_nano=NOW,
        observed_time_unix_nano=NOW + 1,
        trace_id=TRACE,
        span_id=SPAN,
        severity_number=SeverityNumber.SEVERITY_NUMBER_INFO,
        severity_text="INFO",
        body=AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key="k", value=AnyValue(int_value=3))])),
        attributes=[KeyValue(key="user", value=AnyValue(string_value="bo"))],
    ),
    LogRecord(time_unix_nano=NOW, trace_id=TRACE, body=AnyValue(string_value="second")),
)
_VALID_PROTO = _VALID_REQUEST.SerializeToString()
_VALID_JSON = as_json(_VALID_REQUEST)
_REPLACEMENTS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=True),
    st.text(max_size=40),
    st.sampled_from(["", "0" * 32, TRACE.hex(), "SEVERITY_NUMBER_WARN", "NaN", "-1"]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(
        st.sampled_from(["stringValue", "intValue", "kvlistValue", "values", "x"]), st.integers()
    ),
)


@FUZZ
@given(
    st.lists(st.tuples(st.integers(0, len(_VALID_PROTO) - 1), st.integers(0, 255)), min_size=1, max_size=6)
)
def test_fuzz_mutated_proto(flips: list[tuple[int, int]]) -> None:
    data = bytearray(_VALID_PROTO)
    for index, value in flips:
        data[index] = value
    outcome(decode_otlp_logs_proto, bytes(data))


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


_JSON_PATHS = _paths(_VALID_JSON)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(_JSON_PATHS), _REPLACEMENTS), min_size=1, max_size=4), st.randoms())
def test_fuzz_mutated_json(mutations: list[tuple[tuple[Any, ...], Any]], rnd: random.Random) -> None:
    document = copy.deepcopy(_VALID_JSON)
    for path, replacement in mutations:
        node: Any = document
        try:
            for step in path[:-1]:
                node = node[step]
            if rnd.random() < 0.2 and isinstance(node, dict):
                node.pop(path[-1], None)
            else:
                node[path[-1]] = replacement
        except (KeyError, IndexError, TypeError):
            continue
    outcome(decode_otlp_logs_json, json.dumps(document).encode())  # stdlib: big ints, NaN
