"""Zipkin v2 JSON (``POST /api/v2/spans``: a list of spans) -> validated span batches.

Zipkin's model maps onto OTLP's as the OpenTelemetry Zipkin exporter and the Collector's Zipkin receiver map it:
times are microseconds, the local endpoint is the resource (``service.name``, ``net.host.ip``,
``net.host.port``), the remote endpoint becomes ``peer.service`` / ``net.peer.ip`` / ``net.peer.port``, tags
(always strings) are attributes, and annotations are events. The status is read from the tags the OpenTelemetry
Zipkin mapping writes, which then are not kept as attributes (the status holds them, once): an ``error`` tag
makes the status ERROR with the tag's text as its description (``"true"`` and ``""`` carry no text, ``"false"``
is no error), and ``otel.status_code`` / ``otel.status_description`` (older exporters) set the code and text.

The server half of a shared span (B3 "join": ``shared`` set, the client's span id) gets an id of its own and the
client half as its parent (``spyglass.model.shared_spans``), so that no two spans of a trace have one id.

As in the OTLP decoder, a request of the wrong shape is refused whole, and an invalid span is dropped and counted.
"""

from __future__ import annotations

from typing import Any, cast

import orjson

from spyglass.model.builder import AttributePairs, SpanBatchBuilder, TypePairs
from spyglass.model.schema import UNKNOWN_SERVICE, SpanKind, StatusCode, ValueType
from spyglass.model.shared_spans import server_half_id
from spyglass.receivers.decoders.limits import (
    MAX_ATTRIBUTE_VALUE_BYTES,
    MAX_ATTRIBUTES_PER_SPAN,
    MAX_NAME_BYTES,
    SHORT_NAME_CHARS,
    SHORT_VALUE_CHARS,
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
from spyglass.receivers.decoders.result import (
    DecodeResult,
    Problem,
    RequestMalformed,
    SpanRejected,
    only_decode_errors,
)

__all__ = ["decode_zipkin_json", "decode_zipkin_spans"]

_KINDS: dict[str, int] = {name: int(SpanKind[name]) for name in ("CLIENT", "SERVER", "PRODUCER", "CONSUMER")}
_INTERNAL = int(SpanKind.INTERNAL)
_CLIENT = int(SpanKind.CLIENT)
_UNSET = int(StatusCode.UNSET)
_ERROR = int(StatusCode.ERROR)
#: ``otel.status_code`` values (as the OpenTelemetry mapping writes them, and as older exporters did).
_STATUS_CODES = {
    "OK": int(StatusCode.OK),
    "ERROR": _ERROR,
    "UNSET": _UNSET,
    "STATUS_CODE_OK": int(StatusCode.OK),
    "STATUS_CODE_ERROR": _ERROR,
    "STATUS_CODE_UNSET": _UNSET,
}
#: Tags that carry the status; the status keeps them, so they are not attributes too.
_STATUS_TAGS = ("error", "otel.status_code", "otel.status_description")
_ZERO_HIGH_BITS = bytes(8)
_NO_ATTRIBUTES: tuple[AttributePairs, TypePairs] = ([], [])

Resource = tuple[str, tuple[AttributePairs, TypePairs]]


@only_decode_errors("Zipkin JSON")
def decode_zipkin_json(body: bytes) -> DecodeResult:
    """Decode a Zipkin v2 JSON list of spans; raises ``DecodeError`` if nothing in it can be accepted."""
    return decode_zipkin_spans(load_json(body, list, "a JSON array of Zipkin v2 spans"))


def decode_zipkin_spans(
    spans: list[Any], rejected: RejectedSpans | None = None, labels: list[str] | None = None
) -> DecodeResult:
    """Zipkin v2 spans as JSON reads them (the protobuf and v1 encodings are read into the same shape first),
    each accepted or rejected with its reason; raises a ``Problem`` when the request itself is malformed.
    ``rejected`` holds the request's spans refused before (v1 spans that could not be read), and ``labels`` say
    where each span was in the request (``spans[i]`` when they are the request's own)."""
    builder = SpanBatchBuilder()
    # Most requests come from one process talking to few peers: decode each distinct endpoint once.
    local_endpoints: dict[Any, Resource] = {}
    remote_endpoints: dict[Any, list[tuple[str, Any]]] = {}
    if rejected is None:
        rejected = RejectedSpans()
    refused_before = rejected.count
    for i, span in enumerate(spans):
        try:
            _add_span(builder, span, local_endpoints, remote_endpoints)
        except Problem as problem:
            rejected.add(problem.at(f"spans[{i}]" if labels is None else labels[i]))
    return finish_batch(builder, len(spans) + refused_before, rejected)


def _add_span(
    builder: SpanBatchBuilder,
    span: Any,
    local_endpoints: dict[Any, Resource],
    remote_endpoints: dict[Any, list[tuple[str, Any]]],
) -> None:
    if type(span) is not dict:
        raise RequestMalformed(f"expected a span object, got {preview(span)}")
    get = span.get

    value = get("traceId")
    padded = _zero_padded(value, 32)
    if type(padded) is str and len(padded) == 16:
        trace_id = parse_hex_id(padded, 8)
        if trace_id is not None:
            trace_id = _ZERO_HIGH_BITS + trace_id  # a 64-bit trace id is the low half of a 128-bit one
    else:
        trace_id = parse_hex_id(padded, TRACE_ID_BYTES)
    if trace_id is None:
        raise SpanRejected(_id_problem(value, (16, 32)), "traceId")
    value = get("id")
    span_id = parse_hex_id(_zero_padded(value, 16), SPAN_ID_BYTES)
    if span_id is None:
        raise SpanRejected(_id_problem(value, (16,)), "id")
    value = get("parentId")
    parent_span_id = None
    if value:
        parent_span_id = parse_hex_id(_zero_padded(value, 16), SPAN_ID_BYTES)
        if parent_span_id is None and not is_zero_hex(value):  # an all-zero parent means a root span
            raise SpanRejected(_id_problem(value, (16,)), "parentId")

    value = get("timestamp")
    if value is None:
        raise SpanRejected("missing (spans without a start time cannot be placed)", "timestamp")
    start_ns = value * 1000 if type(value) is int else _micros_to_ns(value, "timestamp")
    value = get("duration")
    duration_ns = (
        0 if value is None else value * 1000 if type(value) is int else _micros_to_ns(value, "duration")
    )
    if duration_ns < 0:
        duration_ns = 0  # as Zipkin's own server reads it
    problem = time_problem(start_ns, start_ns + duration_ns)
    if problem:
        raise SpanRejected(problem, "timestamp" if problem[0] == "s" else "duration")

    name = get("name")
    if type(name) is not str:
        if name is not None:
            raise RequestMalformed(f"expected a string, got {preview(name)}", "name")
        name = ""
    elif len(name) > SHORT_NAME_CHARS:
        name = truncate_utf8(name, MAX_NAME_BYTES)
    value = get("kind")
    other_kind = None
    if value is None:
        kind = _INTERNAL
    elif type(value) is not str:
        raise RequestMalformed(f"expected a string, got {preview(value)}", "kind")
    else:
        # Lax clients write "server"; a kind Zipkin does not know is kept as text, the span as an internal one
        # (as the Collector's and Jaeger's Zipkin receivers keep it; Zipkin's own server refuses the request).
        found = _KINDS.get(value.upper())
        if found is None:
            kind, other_kind = _INTERNAL, truncate_utf8(value, MAX_NAME_BYTES)
        else:
            kind = found

    value = get("localEndpoint")
    if value is None:
        service, resource = UNKNOWN_SERVICE, _NO_ATTRIBUTES
    else:
        service, resource = _local_endpoint(value, local_endpoints)

    texts: dict[str, str] = {}
    types: dict[str, int] = {}
    value = get("tags")
    if value is not None:
        _tags(value, texts)
    value = get("remoteEndpoint")
    if value is not None:
        for key, attribute in _remote_endpoint(value, remote_endpoints):
            _derived(texts, types, key, attribute)
    if other_kind is not None:
        _derived(texts, types, "zipkin.kind", other_kind)
    for field in ("shared", "debug"):
        value = get(field)
        if value is not None and type(value) is not bool:
            raise RequestMalformed(f"expected true or false, got {preview(value)}", field)
        if value:
            _derived(texts, types, f"zipkin.{field}", True)
            if field == "shared" and kind != _CLIENT:
                parent_span_id, span_id = span_id, server_half_id(span_id)

    status_code, status_message = _UNSET, None
    if "error" in texts or "otel.status_code" in texts or "otel.status_description" in texts:
        status_code, status_message = _status(texts)

    value = get("annotations")
    builder.add(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_span_id,
        service=service,
        name=name,
        kind=kind,
        start_ns=start_ns,
        duration_ns=duration_ns,
        status_code=status_code,
        status_message=status_message,
        attributes=(list(texts.items()), list(types.items())) if texts else _NO_ATTRIBUTES,
        resource=resource,
        events=None if value is None else _annotations(value),
    )


def _status(texts: dict[str, str]) -> tuple[int, str | None]:
    """The status the tags carry, taking those tags out of ``texts``: an ``error`` tag wins over
    ``otel.status_code`` (Zipkin treats any span with one as failed), its text is the description."""
    error, code_text, description = (texts.pop(key, None) for key in _STATUS_TAGS)
    code = _STATUS_CODES.get((code_text or "").upper(), _UNSET)
    if error is not None and error.lower() != "false":
        code = _ERROR
        if error and error.lower() != "true":
            description = error
    if code != _ERROR:
        description = None  # OTLP: only an error has a description
    return code, description or None


def _zero_padded(value: Any, most: int) -> Any:
    """An id of fewer hex digits than ``most`` padded with leading zeros to 16 digits, or past 16 to 32, as
    Zipkin's own server and the Go Zipkin model read it (clients that print an id as a number drop its leading
    zeros: ``a1b2`` is ``000000000000a1b2``). Anything else is returned as it is, for the caller to judge."""
    if type(value) is not str or not 0 < len(value) < most or len(value) == 16:
        return value
    return value.rjust(16 if len(value) < 16 else 32, "0")


def _id_problem(value: Any, lengths: tuple[int, ...]) -> str:
    if value is None:
        return "missing"
    if is_zero_hex(value) and len(value) <= max(lengths):
        return "all-zero id is invalid"
    return f"expected {' or '.join(map(str, lengths))} hex characters, got {preview(value)}"


def _micros_to_ns(value: Any, field: str) -> int:
    """A Zipkin time or duration (integer microseconds; also a float or a decimal string) in nanoseconds."""
    kind = type(value)
    if kind is int:
        return cast(int, value * 1000)
    if kind is float:
        # orjson never yields NaN or infinity; whole and fractional microseconds apart keep every digit.
        whole = int(value)
        return cast(int, whole * 1000 + round((value - whole) * 1000))
    if kind is str:
        try:
            return int(value) * 1000
        except ValueError:
            pass
    raise RequestMalformed(f"expected an integer number of microseconds, got {preview(value)}", field)


def _tags(tags: Any, texts: dict[str, str]) -> None:
    if type(tags) is not dict:
        raise RequestMalformed(f"expected an object of string values, got {preview(tags)}", "tags")
    for key, value in tags.items():
        if type(value) is not str:
            # Zipkin tags are strings; numbers and booleans from lax clients keep their JSON text.
            if type(value) in (int, float, bool):
                value = orjson.dumps(value).decode()
            else:
                raise RequestMalformed(f"expected a string, got {preview(value)}", f"tags.{key}")
        elif len(value) > SHORT_VALUE_CHARS:
            value = truncate_utf8(value, MAX_ATTRIBUTE_VALUE_BYTES)
        if len(key) > SHORT_NAME_CHARS:
            key = truncate_utf8(key, MAX_NAME_BYTES)
        if len(texts) < MAX_ATTRIBUTES_PER_SPAN or key in texts:
            texts[key] = value


def _derived(texts: dict[str, str], types: dict[str, int], key: str, value: Any) -> None:
    """Add an attribute derived from a Zipkin field (typed, unlike tags), unless a tag already set it."""
    if key in texts or len(texts) >= MAX_ATTRIBUTES_PER_SPAN:
        return
    if type(value) is str:
        texts[key] = value
    elif type(value) is bool:
        texts[key] = "true" if value else "false"
        types[key] = ValueType.BOOL
    else:
        texts[key] = str(value)
        types[key] = ValueType.INT


def _endpoint(endpoint: Any, field: str) -> tuple[str | None, str | None, int | None]:
    """``(serviceName, ip, port)`` of a Zipkin endpoint; the IPv4 address is preferred when both are given."""
    if type(endpoint) is not dict:
        raise RequestMalformed(f"expected an object, got {preview(endpoint)}", field)
    values: list[Any] = []
    for key, limit in (("serviceName", MAX_NAME_BYTES), ("ipv4", 64), ("ipv6", 64)):
        value = endpoint.get(key)
        if value is not None and type(value) is not str:
            raise RequestMalformed(f"expected a string, got {preview(value)}", f"{field}.{key}")
        values.append(truncate_utf8(value, limit) if value else None)
    port = endpoint.get("port")
    if port is not None and type(port) is not int:
        raise RequestMalformed(f"expected an integer, got {preview(port)}", f"{field}.port")
    if port is not None and not 0 < port <= 65535:
        port = None  # Zipkin writes 0 for "unknown"
    return values[0], values[1] or values[2], port


def _endpoint_key(endpoint: Any) -> Any:
    if type(endpoint) is not dict:
        return None
    try:
        key = (endpoint.get("serviceName"), endpoint.get("ipv4"), endpoint.get("ipv6"), endpoint.get("port"))
        hash(key)
    except TypeError:
        return None
    return key


def _local_endpoint(endpoint: Any, cache: dict[Any, Resource]) -> Resource:
    key = _endpoint_key(endpoint)
    cached = cache.get(key) if key is not None else None
    if cached is not None:
        return cached
    service, ip, port = _endpoint(endpoint, "localEndpoint")
    texts: dict[str, str] = {"service.name": service} if service else {}
    types: dict[str, int] = {}
    if ip:
        texts["net.host.ip"] = ip
    if port is not None:
        texts["net.host.port"] = str(port)
        types["net.host.port"] = ValueType.INT
    resource: Resource = (service or UNKNOWN_SERVICE, (list(texts.items()), list(types.items())))
    if key is not None:
        cache[key] = resource
    return resource


def _remote_endpoint(endpoint: Any, cache: dict[Any, list[tuple[str, Any]]]) -> list[tuple[str, Any]]:
    key = _endpoint_key(endpoint)
    cached = cache.get(key) if key is not None else None
    if cached is not None:
        return cached
    service, ip, port = _endpoint(endpoint, "remoteEndpoint")
    attributes: list[tuple[str, Any]] = []
    if service:
        attributes.append(("peer.service", service))
    if ip:
        attributes.append(("net.peer.ip", ip))
    if port is not None:
        attributes.append(("net.peer.port", port))
    if key is not None:
        cache[key] = attributes
    return attributes


def _annotations(annotations: Any) -> list[dict[str, Any]]:
    if type(annotations) is not list:
        raise RequestMalformed(f"expected an array, got {preview(annotations)}", "annotations")
    events = []
    for i, annotation in enumerate(annotations):
        where = f"annotations[{i}]"
        if type(annotation) is not dict:
            raise RequestMalformed(f"expected an object, got {preview(annotation)}", where)
        value = annotation.get("timestamp")
        if value is None:
            raise SpanRejected("missing", f"{where}.timestamp")
        time_ns = _micros_to_ns(value, f"{where}.timestamp")
        if not time_in_range(time_ns):
            raise SpanRejected(
                f"time {time_ns} ns is before the epoch or absurdly late", f"{where}.timestamp"
            )
        name = annotation.get("value")
        if type(name) is not str:
            raise RequestMalformed(f"expected a string, got {preview(name)}", f"{where}.value")
        events.append(
            {
                "time_ns": time_ns,
                "name": truncate_utf8(name, MAX_NAME_BYTES),
                "attributes": [],
                "attribute_types": [],
            }
        )
    return events
