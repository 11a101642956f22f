"""OTLP ``ExportLogsServiceRequest`` bodies (protobuf or JSON) -> log record batches (``LOG_SCHEMA``).

spyglass keeps the logs that matter for traces: a record without trace context (no trace id, or an all-zero
one) is *dropped* and counted, which is policy, not an error. A record that claims trace context but is
invalid (a trace id of the wrong size, a span id of the wrong size, impossible times, runaway nesting) is
*rejected* (an OTLP partial success), and a request whose every traced record is rejected, or whose shape is
wrong, is refused whole (``DecodeError``, a 400 / ``INVALID_ARGUMENT``).

The protobuf path is columnar like ``otlp_proto``: ptars turns the request into one nested Arrow record and the
attribute maps, ids and times are handled by Arrow compute; only array/kvlist/bytes values go through Python.
It shares those pieces with ``otlp_proto`` through ``otlp_proto_columns``; the JSON path shares the OTLP JSON
span decoder's value and attribute parsing through ``otlp_json_values``.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf.message import DecodeError as ProtobufDecodeError
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.common.v1 import common_pb2

from spyglass.model.log_schema import LOG_SCHEMA, MAX_SEVERITY_NUMBER, empty_log_batch
from spyglass.receivers.decoders.limits import (
    MAX_ATTRIBUTE_VALUE_BYTES,
    MAX_NAME_BYTES,
    MAX_TIME_NS,
    SPAN_ID_BYTES,
    TRACE_ID_BYTES,
    is_zero_hex,
    load_json,
    parse_hex_id,
    preview,
    truncate_utf8,
)
from spyglass.receivers.decoders.otlp_json_values import (
    as_integer,
    as_string,
    get_field,
    id_problem,
    parse_any_value,
    parse_attributes,
    parse_scope,
    request_scopes,
)
from spyglass.receivers.decoders.otlp_proto_columns import (
    MAX_TIME,
    ZERO_TIME,
    NestedTooDeep,
    RequestParser,
    RowRejections,
    attribute_maps,
    empty_to_null,
    json_ready_array,
    json_ready_value,
    service_names,
    truncate_strings,
)
from spyglass.receivers.decoders.result import (
    DecodeError,
    DecodeResult,
    Problem,
    RequestMalformed,
    SpanRejected,
    only_decode_errors,
)

__all__ = ["LogDecodeResult", "decode_otlp_logs_json", "decode_otlp_logs_proto"]


@dataclass(frozen=True)
class LogDecodeResult(DecodeResult):
    """Kept log records (``batch``, ``LOG_SCHEMA``); ``rejected_spans`` counts rejected *records* (the field
    is shared with span decoding); ``dropped_records`` counts records without trace context, not kept."""

    dropped_records: int = 0


def _finish(batch: pa.RecordBatch, rejected: int, dropped: int, first_problem: str) -> LogDecodeResult:
    if rejected:
        summary = f"{first_problem} ({rejected} of {batch.num_rows + rejected} log records with a trace id rejected)"
        if batch.num_rows == 0:
            raise DecodeError(summary)
        return LogDecodeResult(batch, rejected, summary, dropped)
    return LogDecodeResult(batch, 0, "", dropped)


# -- protobuf ----------------------------------------------------------------------------------------------

_parse_request = RequestParser(logs_service_pb2.ExportLogsServiceRequest, "scope_logs", "log_records")
_ZERO_TRACE = pa.scalar(b"\x00" * TRACE_ID_BYTES, pa.binary())
_ZERO_SPAN = pa.scalar(b"\x00" * SPAN_ID_BYTES, pa.binary())


@only_decode_errors("OTLP log data")
def decode_otlp_logs_proto(body: bytes) -> LogDecodeResult:
    """Decode a protobuf OTLP logs export; raise ``DecodeError`` when it cannot be accepted at all."""
    resources, scopes, records, record_scope, record_resource = _parse_request(body)
    n = len(records)
    if n == 0:
        return LogDecodeResult(empty_log_batch())

    trace_id = records.field("trace_id")
    trace_len = pc.binary_length(trace_id)
    untraced = pc.or_(pc.equal(trace_len, 0), pc.equal(trace_id, _ZERO_TRACE))
    untraced_np = pc.fill_null(untraced, True).to_numpy(zero_copy_only=False)
    reasons = RowRejections(n, "log record", exempt=untraced_np)
    reasons.check(pc.equal(trace_len, TRACE_ID_BYTES), "traceId must be 16 bytes")
    span_id = records.field("span_id")
    span_len = pc.binary_length(span_id)
    reasons.check(pc.or_(pc.equal(span_len, 0), pc.equal(span_len, SPAN_ID_BYTES)), "spanId must be 8 bytes")
    has_span = pc.and_(pc.equal(span_len, SPAN_ID_BYTES), pc.not_equal(span_id, _ZERO_SPAN))

    observed = records.field("observed_time_unix_nano")
    when = records.field("time_unix_nano")
    when = pc.if_else(pc.greater(when, ZERO_TIME), when, observed)
    reasons.check(
        pc.and_(pc.greater(when, ZERO_TIME), pc.less(when, MAX_TIME)),
        "timeUnixNano (or observedTimeUnixNano) unset or out of range",
    )
    reasons.check(pc.less(observed, MAX_TIME), "observedTimeUnixNano out of range")

    resource_attrs = resources.field("resource").field("attributes")
    resource_values, resource_types = attribute_maps(resource_attrs)
    services = service_names(resource_values)
    attributes, attribute_types = attribute_maps(records.field("attributes"), reasons=reasons)
    severity = records.field("severity_number")
    severity = pc.if_else(
        pc.and_(pc.greater_equal(severity, 0), pc.less_equal(severity, MAX_SEVERITY_NUMBER)), severity, 0
    )
    scope = scopes.field("scope")
    columns: dict[str, pa.Array] = {
        "time_ns": pc.cast(when, pa.int64(), safe=False),
        "observed_time_ns": pc.cast(observed, pa.int64(), safe=False),
        "trace_id": trace_id,
        "span_id": pc.if_else(has_span, span_id, pa.scalar(None, pa.binary())),
        "severity_number": pc.cast(severity, pa.int8(), safe=False),
        "severity_text": empty_to_null(truncate_strings(records.field("severity_text"), MAX_NAME_BYTES)),
        "body": _bodies(records.field("body"), reasons),
        "attributes": attributes,
        "attribute_types": attribute_types,
        "resource": pc.take(resource_values, record_resource),
        "resource_types": pc.take(resource_types, record_resource),
        "service": pc.take(services, record_resource),
        "scope_name": empty_to_null(
            truncate_strings(pc.take(scope.field("name"), record_scope), MAX_NAME_BYTES)
        ),
    }
    valid = reasons.valid_mask()
    kept = valid & ~untraced_np
    dropped = int(np.count_nonzero(untraced_np))
    rejected = n - dropped - int(np.count_nonzero(kept))
    table = pa.table({name: columns[name] for name in LOG_SCHEMA.names})
    if not kept.all():
        table = table.filter(pa.array(kept))
    batch = table.cast(LOG_SCHEMA, safe=False).combine_chunks().to_batches()
    return _finish(batch[0] if batch else empty_log_batch(), rejected, dropped, reasons.first())


def _bodies(body: pa.StructArray, reasons: RowRejections) -> pa.Array:
    """Body ``AnyValue`` -> text: strings as they are, scalars in their canonical text, the rest as JSON.

    An empty body is null: ClickHouse's ``otel_logs`` keeps both as ``''``, so only null reads back the same
    from every store.
    """
    fields = {field.name: array for field, array in zip(body.type, body.flatten(), strict=True)}
    s, b, i, d = (fields[name] for name in ("string_value", "bool_value", "int_value", "double_value"))
    text = pc.coalesce(s, pc.cast(i, pa.string()), pc.if_else(b, "true", "false"), pc.cast(d, pa.string()))
    arrays, kvlists, raw = fields["array_value"], fields["kvlist_value"], fields["bytes_value"]
    rare = pc.or_(pc.or_(pc.is_valid(arrays), pc.is_valid(kvlists)), pc.is_valid(raw))
    if pc.any(rare).as_py():
        texts = text.to_pylist()
        for index in np.flatnonzero(rare.to_numpy(zero_copy_only=False)):
            try:
                value: Any
                if raw[index].is_valid:
                    value = base64.b64encode(raw[index].as_py()).decode("ascii")
                elif arrays[index].is_valid:
                    value = json_ready_array(arrays[index]["values"].as_py())
                else:
                    value = {
                        kv["key"]: json_ready_value(common_pb2.AnyValue.FromString(kv["value"] or b""), 1)
                        for kv in kvlists[index]["values"].as_py()
                    }
                texts[index] = orjson.dumps(value).decode()
            except (NestedTooDeep, ProtobufDecodeError, RecursionError, ValueError, TypeError) as exc:
                texts[index] = None
                reasons.reject(int(index), f"body {exc or 'nested too deeply'}")
        text = pa.array(texts, pa.string())
    return empty_to_null(truncate_strings(text, MAX_ATTRIBUTE_VALUE_BYTES))


# -- JSON --------------------------------------------------------------------------------------------------

_SEVERITY_NAMES = {
    f"SEVERITY_NUMBER_{name}{'' if k == 1 else k}": (level * 4) + k
    for level, name in enumerate(("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"))
    for k in range(1, 5)
}
_SEVERITY_NAMES["SEVERITY_NUMBER_UNSPECIFIED"] = 0


@only_decode_errors("OTLP JSON logs")
def decode_otlp_logs_json(body: bytes) -> LogDecodeResult:
    """Decode an OTLP/JSON logs export; raise ``DecodeError`` when it cannot be accepted at all."""
    request = load_json(body, dict, "a JSON object (ExportLogsServiceRequest)")
    rows: list[dict[str, Any]] = []
    rejected = dropped = 0
    first_problem = ""
    for where, scope, records, service, resource, resource_problem in request_scopes(
        request,
        resources=("resourceLogs", "resource_logs"),
        scopes=("scopeLogs", "scope_logs"),
        items=("logRecords", "log_records"),
    ):
        try:
            scope_name, _ = parse_scope(scope.get("scope"))
        except Problem as problem:
            raise problem.at(where) from None
        for k, item in enumerate(records):
            try:
                row = _log_record(item)
                if row is None:
                    dropped += 1
                    continue
                if resource_problem:
                    raise SpanRejected(resource_problem)
            except SpanRejected as problem:
                rejected += 1
                if not first_problem:
                    first_problem = resource_problem or problem.at(f"{where}.logRecords[{k}]").message()
                continue
            except RequestMalformed as problem:
                raise problem.at(f"{where}.logRecords[{k}]") from None
            row["service"] = service
            row["resource"], row["resource_types"] = resource
            row["scope_name"] = scope_name or None
            rows.append(row)
    batch = pa.RecordBatch.from_pylist(rows, schema=LOG_SCHEMA) if rows else empty_log_batch()
    return _finish(batch, rejected, dropped, first_problem)


def _log_record(item: Any) -> dict[str, Any] | None:
    """One ``LogRecord`` object -> a row, or None when it carries no trace context (dropped, not an error)."""
    if type(item) is not dict:
        raise RequestMalformed(f"expected a LogRecord object, got {preview(item)}")
    value = get_field(item, "traceId", "trace_id")
    if value is None or value == "" or (is_zero_hex(value) and len(value) == 2 * TRACE_ID_BYTES):
        return None
    trace_id = parse_hex_id(value, TRACE_ID_BYTES)
    if trace_id is None:
        raise SpanRejected(id_problem(value, TRACE_ID_BYTES), "traceId")
    value = get_field(item, "spanId", "span_id")
    span_id = None
    if value is not None and value != "" and not (is_zero_hex(value) and len(value) == 2 * SPAN_ID_BYTES):
        span_id = parse_hex_id(value, SPAN_ID_BYTES)
        if span_id is None:
            raise SpanRejected(id_problem(value, SPAN_ID_BYTES), "spanId")
    time_ns = as_integer(get_field(item, "timeUnixNano", "time_unix_nano"), "timeUnixNano")
    observed_ns = as_integer(
        get_field(item, "observedTimeUnixNano", "observed_time_unix_nano"), "observedTimeUnixNano"
    )
    if not 0 <= observed_ns < MAX_TIME_NS:
        raise SpanRejected(f"{observed_ns} is out of range", "observedTimeUnixNano")
    if time_ns == 0:
        time_ns = observed_ns
    if not 0 < time_ns < MAX_TIME_NS:
        raise SpanRejected("unset or out of range (and no observedTimeUnixNano)", "timeUnixNano")
    attributes, attribute_types = parse_attributes(item.get("attributes"), "attributes")
    body = item.get("body")
    return {
        "time_ns": time_ns,
        "observed_time_ns": observed_ns,
        "trace_id": trace_id,
        "span_id": span_id,
        "severity_number": _severity(get_field(item, "severityNumber", "severity_number")),
        "severity_text": as_string(
            get_field(item, "severityText", "severity_text"), "severityText", MAX_NAME_BYTES
        )
        or None,
        "body": None if body is None else _body_text(body),
        "attributes": attributes,
        "attribute_types": attribute_types,
    }


def _severity(value: Any) -> int:
    if value is None:
        return 0
    if type(value) is int:
        return value if 0 <= value <= MAX_SEVERITY_NUMBER else 0
    if type(value) is str:
        return _SEVERITY_NAMES.get(value, 0)
    raise RequestMalformed(f"expected an integer enum value, got {preview(value)}", "severityNumber")


def _body_text(body: Any) -> str | None:
    try:
        value = parse_any_value(body, 0)
    except Problem as problem:
        raise problem.at("body") from None
    if value is None:
        return None
    if type(value) is str:
        return truncate_utf8(value, MAX_ATTRIBUTE_VALUE_BYTES) or None  # empty is null, as in _bodies
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is int:
        return str(value)
    if type(value) is float:
        return repr(value)
    if type(value) is bytes:
        value = base64.b64encode(value).decode("ascii")
    return truncate_utf8(orjson.dumps(value).decode(), MAX_ATTRIBUTE_VALUE_BYTES)
