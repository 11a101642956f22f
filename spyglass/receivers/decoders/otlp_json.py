"""OTLP/JSON ``ExportTraceServiceRequest`` bodies -> validated span batches.

OTLP JSON is the protobuf JSON mapping with hex ids; how its fields and values are read (either spelling of a
field name, 64-bit integers as strings or numbers, attributes, ``AnyValue``) is in ``otlp_json_values``, which
the logs decoder shares.

A request whose shape is wrong is refused whole (``DecodeError``); a span that is well-formed but invalid (bad
id, impossible times, runaway nesting) is dropped and counted, and the rest are accepted (partial success).
Paths in messages are built only once something is wrong, so a valid span costs little more than its dict
lookups.
"""

from __future__ import annotations

from typing import Any

from spyglass.model.builder import AttributePairs, SpanBatchBuilder, TypePairs
from spyglass.model.schema import SpanKind, StatusCode
from spyglass.receivers.decoders.limits import (
    ENDED_BEFORE_START,
    MAX_ATTRIBUTE_VALUE_BYTES,
    MAX_NAME_BYTES,
    SPAN_ID_BYTES,
    TRACE_ID_BYTES,
    RejectedSpans,
    finish_batch,
    is_zero_hex,
    load_json,
    parse_hex_id,
    preview,
    time_in_range,
    time_problem,
    truncate_utf8,
)
from spyglass.receivers.decoders.otlp_json_values import (
    NO_ATTRIBUTES,
    as_integer,
    as_list,
    as_string,
    get_field,
    id_problem,
    parse_attributes,
    parse_scope,
    request_scopes,
)
from spyglass.receivers.decoders.result import (
    DecodeResult,
    Problem,
    RequestMalformed,
    SpanRejected,
    only_decode_errors,
)

__all__ = ["decode_otlp_json"]

_KIND_NAMES: dict[str, int] = {f"SPAN_KIND_{kind.name}": kind.value for kind in SpanKind}
_STATUS_NAMES: dict[str, int] = {f"STATUS_CODE_{code.name}": code.value for code in StatusCode}


@only_decode_errors("OTLP JSON")
def decode_otlp_json(body: bytes) -> DecodeResult:
    """Decode an OTLP/JSON trace export request; raises ``DecodeError`` if nothing in it can be accepted."""
    request = load_json(body, dict, "a JSON object (ExportTraceServiceRequest)")
    builder = SpanBatchBuilder()
    total = 0
    rejected = RejectedSpans()
    for where, scope, spans, service, resource, resource_problem in request_scopes(
        request,
        resources=("resourceSpans", "resource_spans"),
        # Exporters from before OTLP 0.15 called scopes "instrumentation libraries".
        scopes=("scopeSpans", "scope_spans", "instrumentationLibrarySpans"),
        items=("spans",),
    ):
        total += len(spans)
        if resource_problem:
            rejected.add_many(len(spans), resource_problem)
            continue
        try:
            scope_name, scope_version = parse_scope(_scope_of(scope))
        except Problem as problem:
            raise problem.at(where) from None
        for k, span in enumerate(spans):
            try:
                repaired = _add_span(builder, span, service, resource, scope_name, scope_version)
            except Problem as problem:
                rejected.add(problem.at(f"{where}.spans[{k}]"))
            else:
                if repaired:
                    rejected.note(f"{where}.spans[{k}]", repaired)
    return finish_batch(builder, total, rejected)


def _scope_of(scope_span: dict[str, Any]) -> Any:
    scope = scope_span.get("scope")
    return scope_span.get("instrumentationLibrary") if scope is None else scope


def _required_id(obj: dict[str, Any], camel: str, snake: str, size: int) -> bytes:
    """The id at ``camel`` (or ``snake``); without a valid one the span is rejected."""
    value = obj.get(camel)
    if value is None:
        value = obj.get(snake)
    raw = parse_hex_id(value, size)
    if raw is None:
        raise SpanRejected(id_problem(value, size), camel)
    return raw


def _enum(value: Any, names: dict[str, int], field: str, size: int) -> int:
    if value is None:
        return 0
    if type(value) is int:
        number = value
    elif type(value) is str and value in names:
        return names[value]
    elif type(value) is str:
        raise SpanRejected(f"unknown value {preview(value)}", field)
    else:
        raise RequestMalformed(f"expected an integer enum value, got {preview(value)}", field)
    if not 0 <= number < size:
        raise SpanRejected(f"unknown value {number}", field)
    return number


def _add_span(
    builder: SpanBatchBuilder,
    span: Any,
    service: str,
    resource: tuple[AttributePairs, TypePairs],
    scope_name: str,
    scope_version: str,
) -> str | None:
    """Add one span to ``builder``; what was repaired in it, if anything."""
    if type(span) is not dict:
        raise RequestMalformed(f"expected a span object, got {preview(span)}")
    get = span.get

    trace_id = _required_id(span, "traceId", "trace_id", TRACE_ID_BYTES)
    span_id = _required_id(span, "spanId", "span_id", SPAN_ID_BYTES)
    value = get("parentSpanId")
    if value is None:
        value = get("parent_span_id")
    parent_span_id = None
    if value:
        parent_span_id = parse_hex_id(value, SPAN_ID_BYTES)
        if parent_span_id is None and not is_zero_hex(value):  # an all-zero parent means a root span
            raise SpanRejected(id_problem(value, SPAN_ID_BYTES), "parentSpanId")

    value = get("startTimeUnixNano")
    start_ns = as_integer(get("start_time_unix_nano") if value is None else value, "startTimeUnixNano")
    value = get("endTimeUnixNano")
    end_ns = as_integer(get("end_time_unix_nano") if value is None else value, "endTimeUnixNano")
    problem = time_problem(start_ns, end_ns)
    if problem:
        raise SpanRejected(problem, "startTimeUnixNano" if problem[0] == "s" else "endTimeUnixNano")
    repaired = None
    if end_ns < start_ns:
        repaired, end_ns = ENDED_BEFORE_START, start_ns

    name = get("name")
    if type(name) is not str:
        name = as_string(name, "name", MAX_NAME_BYTES)
    elif len(name) * 4 > MAX_NAME_BYTES:
        name = truncate_utf8(name, MAX_NAME_BYTES)
    kind = get("kind")
    if type(kind) is not int or not 0 <= kind <= 5:
        kind = _enum(kind, _KIND_NAMES, "kind", len(SpanKind))

    status_code = 0
    status_message = None
    status = get("status")
    if status is not None:
        if type(status) is not dict:
            raise RequestMalformed(f"expected an object, got {preview(status)}", "status")
        status_code = _enum(status.get("code"), _STATUS_NAMES, "status.code", len(StatusCode))
        status_message = as_string(status.get("message"), "status.message", MAX_ATTRIBUTE_VALUE_BYTES)

    value = get("traceState")
    if value is None:
        value = get("trace_state")
    trace_state = as_string(value, "traceState", MAX_ATTRIBUTE_VALUE_BYTES) if value is not None else None

    attributes = get("attributes")
    attributes = NO_ATTRIBUTES if attributes is None else parse_attributes(attributes, "attributes")
    events = get("events")
    links = get("links")

    builder.add(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_span_id,
        service=service,
        name=name,
        kind=kind,
        start_ns=start_ns,
        duration_ns=end_ns - start_ns,
        status_code=status_code,
        status_message=status_message,
        trace_state=trace_state,
        attributes=attributes,
        resource=resource,
        scope_name=scope_name,
        scope_version=scope_version,
        events=None if events is None else _events(events),
        links=None if links is None else _links(links),
    )
    return repaired


def _events(events: Any) -> list[dict[str, Any]]:
    decoded = []
    for i, event in enumerate(as_list(events, "events")):
        try:
            if type(event) is not dict:
                raise RequestMalformed(f"expected an object, got {preview(event)}")
            value = event.get("timeUnixNano")
            time_ns = as_integer(event.get("time_unix_nano") if value is None else value, "timeUnixNano")
            if not time_in_range(time_ns):
                raise SpanRejected(f"time {time_ns} ns is before the epoch or absurdly late", "timeUnixNano")
            attributes, attribute_types = parse_attributes(event.get("attributes"), "attributes")
            decoded.append(
                {
                    "time_ns": time_ns,
                    "name": as_string(event.get("name"), "name", MAX_NAME_BYTES),
                    "attributes": attributes,
                    "attribute_types": attribute_types,
                }
            )
        except Problem as problem:
            raise problem.at(f"events[{i}]") from None
    return decoded


def _links(links: Any) -> list[dict[str, Any]]:
    decoded = []
    for i, link in enumerate(as_list(links, "links")):
        try:
            if type(link) is not dict:
                raise RequestMalformed(f"expected an object, got {preview(link)}")
            trace_id = _required_id(link, "traceId", "trace_id", TRACE_ID_BYTES)
            span_id = _required_id(link, "spanId", "span_id", SPAN_ID_BYTES)
            trace_state = as_string(
                get_field(link, "traceState", "trace_state"), "traceState", MAX_ATTRIBUTE_VALUE_BYTES
            )
            attributes, attribute_types = parse_attributes(link.get("attributes"), "attributes")
            decoded.append(
                {
                    "trace_id": trace_id,
                    "span_id": span_id,
                    "trace_state": trace_state or None,
                    "attributes": attributes,
                    "attribute_types": attribute_types,
                }
            )
        except Problem as problem:
            raise problem.at(f"links[{i}]") from None
    return decoded
