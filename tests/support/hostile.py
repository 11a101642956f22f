"""Hostile request bodies for every ingest format, valid traces (with recorded ids) to mix in, and the client
that sends both to a running spyglass and checks that no valid trace was lost.

Seeded ``random``, not hypothesis: a fuzz of tens of thousands of bodies must be fast and the same on every run,
so each body is a pure function of (seed, format, index, base time); a failure names the kind and index that
reproduces it (``HostileBodies(fmt, seed, now_ns).body(index)``).
"""

from __future__ import annotations

import base64
import gzip
import math
import random
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol, cast

import grpc
import httpx
import orjson
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from tests.support.compressions import MAKERS

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

#: The body formats: OTLP traces and logs (protobuf, shared by HTTP and gRPC, and JSON), Zipkin v2 JSON.
FORMATS = ("traces_proto", "traces_json", "logs_proto", "logs_json", "zipkin")


@dataclass(frozen=True)
class Endpoint:
    """One ingest endpoint: how its requests travel and which body format they carry."""

    name: str
    fmt: str
    transport: str  # "http" or "grpc"
    path: str  # URL path under the OTLP HTTP base, or the gRPC method

    @property
    def content_type(self) -> str:
        return PROTOBUF if self.fmt.endswith("_proto") else JSON

    @property
    def logs(self) -> bool:
        return self.fmt.startswith("logs")


ENDPOINTS: dict[str, Endpoint] = {
    e.name: e
    for e in (
        Endpoint("otlp-http-traces-proto", "traces_proto", "http", "/v1/traces"),
        Endpoint("otlp-http-traces-json", "traces_json", "http", "/v1/traces"),
        Endpoint("otlp-http-logs-proto", "logs_proto", "http", "/v1/logs"),
        Endpoint("otlp-http-logs-json", "logs_json", "http", "/v1/logs"),
        Endpoint(
            "otlp-grpc-traces",
            "traces_proto",
            "grpc",
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        ),
        Endpoint(
            "otlp-grpc-logs",
            "logs_proto",
            "grpc",
            "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        ),
        Endpoint("zipkin", "zipkin", "http", "/api/v2/spans"),
    )
}

# -- protobuf wire format by hand: what the official encoders refuse to write -------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _tag(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (a message, string or bytes)."""
    return _tag(number, 2) + _varint(len(payload)) + payload


def _deep_any_value(depth: int, kvlist: bool) -> bytes:
    """An ``AnyValue`` holding arrays (or kvlists) ``depth`` levels deep; protobuf's own encoder stops at 100."""
    value = _field(1, b"bottom")
    for _ in range(depth):
        if kvlist:
            value = _field(6, _field(1, _field(1, b"k") + _field(2, value)))
        else:
            value = _field(5, _field(1, value))
    return value


def _trace_request_bytes(resource: resource_pb2.Resource, spans: list[bytes]) -> bytes:
    """An ``ExportTraceServiceRequest`` around already-serialized (possibly doctored) spans."""
    scope = common_pb2.InstrumentationScope(name="fuzz", version="1").SerializeToString()
    scope_spans = _field(1, scope) + b"".join(_field(2, span) for span in spans)
    return _field(1, _field(1, resource.SerializeToString()) + _field(2, scope_spans))


def _logs_request_bytes(resource: resource_pb2.Resource, records: list[bytes]) -> bytes:
    scope = common_pb2.InstrumentationScope(name="fuzz", version="1").SerializeToString()
    scope_logs = _field(1, scope) + b"".join(_field(2, record) for record in records)
    return _field(1, _field(1, resource.SerializeToString()) + _field(2, scope_logs))


# -- valid bodies (official encoders: opentelemetry.proto messages, OTLP JSON per the spec, Zipkin v2) -------


def _any(value: Any) -> common_pb2.AnyValue:
    if isinstance(value, bool):
        return common_pb2.AnyValue(bool_value=value)
    if isinstance(value, int):
        return common_pb2.AnyValue(int_value=value)
    if isinstance(value, float):
        return common_pb2.AnyValue(double_value=value)
    if isinstance(value, bytes):
        return common_pb2.AnyValue(bytes_value=value)
    if isinstance(value, list):
        return common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=[_any(v) for v in value]))
    return common_pb2.AnyValue(string_value=str(value))


def _attributes(pairs: dict[str, Any]) -> list[common_pb2.KeyValue]:
    return [common_pb2.KeyValue(key=key, value=_any(value)) for key, value in pairs.items()]


def _resource(service: str, **extra: Any) -> resource_pb2.Resource:
    return resource_pb2.Resource(attributes=_attributes({"service.name": service, **extra}))


def _new_id(rng: random.Random, size: int) -> bytes:
    while True:
        raw = rng.randbytes(size)
        if any(raw):
            return raw


@dataclass(frozen=True)
class ExpectedSpan:
    span_id: str
    parent_span_id: str | None
    name: str


@dataclass(frozen=True)
class ExpectedLog:
    span_id: str
    body: str
    severity_number: int


@dataclass(frozen=True)
class ValidExport:
    """One valid export whose trace id is recorded, and what the API must give back for it."""

    index: int
    fmt: str
    trace_id: str
    service: str
    spans: tuple[ExpectedSpan, ...]
    logs: tuple[ExpectedLog, ...]
    payload: bytes  # the body before any Content-Encoding
    content_type: str
    #: how it travels: "identity", "gzip", "gzip-members" (several gzip members, legal per RFC 1952), or over
    #: HTTP another compression a Collector sends ("zstd" in three frames, "lz4", "snappy", "x-snappy-framed");
    #: over gRPC "gzip" is the call's own compression
    encoding: str

    def http_request(self) -> tuple[bytes, dict[str, str]]:
        headers = {"Content-Type": self.content_type}
        if self.encoding == "identity":
            return self.payload, headers
        cut = [0, len(self.payload) // 3, 2 * len(self.payload) // 3, len(self.payload)]
        thirds = [self.payload[a:b] for a, b in zip(cut, cut[1:], strict=False)]
        if self.encoding == "gzip":
            headers["Content-Encoding"] = "gzip"
            return gzip.compress(self.payload, mtime=0), headers
        if self.encoding == "gzip-members":
            headers["Content-Encoding"] = "gzip"
            return b"".join(gzip.compress(third, mtime=0) for third in thirds), headers
        headers["Content-Encoding"] = self.encoding
        return MAKERS[self.encoding](thirds), headers


def _span_tree(
    rng: random.Random, trace_id: bytes, now_ns: int, count: int, prefix: str, index: int
) -> list[trace_pb2.Span]:
    """``count`` spans of one trace: a server root and children, each child of an earlier span."""
    start = now_ns - rng.randrange(1, 60 * 10**9)
    spans: list[trace_pb2.Span] = []
    for k in range(count):
        parent = spans[rng.randrange(k)] if k else None
        begin = start + k * 1000
        span = trace_pb2.Span(
            trace_id=trace_id,
            span_id=_new_id(rng, 8),
            parent_span_id=parent.span_id if parent else b"",
            name=f"{prefix}-{index}-op{k}",
            kind=trace_pb2.Span.SPAN_KIND_SERVER
            if k == 0
            else rng.choice(
                [
                    trace_pb2.Span.SPAN_KIND_SERVER,
                    trace_pb2.Span.SPAN_KIND_CLIENT,
                    trace_pb2.Span.SPAN_KIND_INTERNAL,
                ]
            ),
            start_time_unix_nano=begin,
            end_time_unix_nano=begin + rng.randrange(1000, 50_000_000),
            attributes=_attributes(
                {"fuzz.index": index, "http.route": "/checkout", "retry": rng.random() < 0.5, "ratio": 0.25}
            ),
        )
        if rng.random() < 0.3:
            span.events.add(name="exception", time_unix_nano=begin + 1, attributes=_attributes({"n": k}))
        if rng.random() < 0.2:
            span.status.code = trace_pb2.Status.STATUS_CODE_ERROR
            span.status.message = "boom"
        spans.append(span)
    return spans


def _trace_request(resource: resource_pb2.Resource, spans: list[trace_pb2.Span]) -> Message:
    request = trace_service_pb2.ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add(resource=resource)
    resource_spans.scope_spans.add(
        scope=common_pb2.InstrumentationScope(name="fuzz", version="1"), spans=spans
    )
    return request


def _log_records(
    rng: random.Random,
    trace_id: bytes,
    span_ids: list[bytes],
    now_ns: int,
    count: int,
    prefix: str,
    index: int,
) -> list[logs_pb2.LogRecord]:
    records = []
    for k in range(count):
        severity = rng.choice([5, 9, 13, 17])
        records.append(
            logs_pb2.LogRecord(
                time_unix_nano=now_ns - rng.randrange(1, 60 * 10**9),
                observed_time_unix_nano=now_ns,
                severity_number=severity,  # type: ignore[arg-type]
                body=common_pb2.AnyValue(string_value=f"{prefix}-{index}-log{k}"),
                attributes=_attributes({"fuzz.index": index, "cart.items": k}),
                trace_id=trace_id,
                span_id=rng.choice(span_ids),
                flags=1,
            )
        )
    return records


def _logs_request(resource: resource_pb2.Resource, records: list[logs_pb2.LogRecord]) -> Message:
    request = logs_service_pb2.ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add(resource=resource)
    resource_logs.scope_logs.add(
        scope=common_pb2.InstrumentationScope(name="fuzz", version="1"), log_records=records
    )
    return request


def _hex_ids(items: list[dict[str, Any]], keys: tuple[str, ...]) -> None:
    for item in items:
        for key in keys:
            if key in item:
                item[key] = base64.b64decode(item[key]).hex()


def otlp_json(request: Message) -> dict[str, Any]:
    """OTLP/JSON as the spec writes it: protobuf's JSON mapping (camelCase, int64 as strings, enums as numbers)
    with hex ids instead of base64."""
    document: dict[str, Any] = MessageToDict(request, use_integers_for_enums=True)
    for resource_spans in document.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            spans = scope_spans.get("spans", [])
            _hex_ids(spans, ("traceId", "spanId", "parentSpanId"))
            for span in spans:
                _hex_ids(span.get("links", []), ("traceId", "spanId"))
    for resource_logs in document.get("resourceLogs", []):
        for scope_logs in resource_logs.get("scopeLogs", []):
            _hex_ids(scope_logs.get("logRecords", []), ("traceId", "spanId"))
    return document


def _zipkin_spans(spans: list[trace_pb2.Span], service: str) -> list[dict[str, Any]]:
    """The same spans as Zipkin v2 JSON: microseconds, string tags, the local endpoint's service."""
    kinds = {2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
    out = []
    for span in spans:
        item: dict[str, Any] = {
            "traceId": span.trace_id.hex(),
            "id": span.span_id.hex(),
            "name": span.name,
            "timestamp": span.start_time_unix_nano // 1000,
            "duration": max(1, (span.end_time_unix_nano - span.start_time_unix_nano) // 1000),
            "localEndpoint": {"serviceName": service, "ipv4": "10.1.2.3", "port": 8080},
            "tags": {kv.key: str(MessageToDict(kv.value).popitem()[1]) for kv in span.attributes},
        }
        if span.parent_span_id:
            item["parentId"] = span.parent_span_id.hex()
        if span.kind in kinds:
            item["kind"] = kinds[span.kind]
        if span.kind == 3:
            item["remoteEndpoint"] = {"serviceName": "db", "ipv6": "::1", "port": 5432}
        if span.events:
            item["annotations"] = [
                {"timestamp": e.time_unix_nano // 1000, "value": e.name} for e in span.events
            ]
        if span.status.code == trace_pb2.Status.STATUS_CODE_ERROR:
            item["tags"]["error"] = span.status.message
        out.append(item)
    return out


class ValidTraces:
    """Valid exports for one format, each with a fresh trace id: export ``index`` is the same on every run with
    the same seed, service and time (the service names the endpoint, so endpoints never share a trace id)."""

    def __init__(self, fmt: str, seed: int, service: str, now_ns: int, transport: str = "http") -> None:
        assert fmt in FORMATS, fmt
        self.fmt = fmt
        self.seed = seed
        self.service = service
        self.now_ns = now_ns
        self.transport = transport

    def export(self, index: int) -> ValidExport:
        rng = random.Random(f"valid:{self.seed}:{self.fmt}:{self.service}:{index}")
        trace_id = _new_id(rng, 16)
        spans = _span_tree(rng, trace_id, self.now_ns, rng.randint(2, 5), "valid", index)
        expected_spans = tuple(
            ExpectedSpan(s.span_id.hex(), s.parent_span_id.hex() or None, s.name) for s in spans
        )
        resource = _resource(self.service, **{"host.name": f"fuzz-{index % 7}"})
        logs: tuple[ExpectedLog, ...] = ()
        if self.fmt.startswith("logs"):
            records = _log_records(
                rng, trace_id, [s.span_id for s in spans], self.now_ns, rng.randint(1, 4), "valid", index
            )
            logs = tuple(
                ExpectedLog(r.span_id.hex(), r.body.string_value, int(r.severity_number)) for r in records
            )
            expected_spans = ()
            request = _logs_request(resource, records)
        else:
            request = _trace_request(resource, spans)
        if self.fmt.endswith("_proto"):
            payload = request.SerializeToString()
        elif self.fmt == "zipkin":
            payload = orjson.dumps(_zipkin_spans(spans, self.service))
        else:
            payload = orjson.dumps(otlp_json(request))
        roll = rng.random()
        if self.transport == "grpc":
            encoding = "gzip" if roll < 0.1 else "identity"
        elif roll >= 0.2 and roll < 0.32:
            encoding = ("zstd", "lz4", "snappy", "x-snappy-framed")[int((roll - 0.2) / 0.03)]
        else:
            encoding = "gzip" if roll < 0.1 else "gzip-members" if roll < 0.2 else "identity"
        content_type = PROTOBUF if self.fmt.endswith("_proto") else JSON
        return ValidExport(
            index,
            self.fmt,
            trace_id.hex(),
            self.service,
            expected_spans,
            logs,
            payload,
            content_type,
            encoding,
        )


# -- hostile bodies --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostileBody:
    kind: str
    content: bytes
    #: Content-Type and Content-Encoding for HTTP (absent: the endpoint's own type); ignored over gRPC
    headers: dict[str, str] = field(default_factory=dict)
    #: sent with chunked transfer encoding (HTTP only)
    chunked: bool = False


HOSTILE_STRINGS = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(document.domain)>',
    "javascript:alert(1)",
    "'; DROP TABLE spans; --",
    "' OR '1'='1",
    "1; DELETE FROM logs WHERE 1=1; --",
    "x' UNION SELECT * FROM traces --",
    "\x00",
    "nul\x00in\x00the\x00middle",
    "\u202ereversed\u202c",
    "\ufeffbom",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 🚀 👩‍👩‍👧",
    "",
    " ",
    "\n\r\t\x1b[31m",
    "%s%s%n%x",
    "${jndi:ldap://127.0.0.1/x}",
    "../../../../etc/passwd",
    "\\",
    '"',
    "{{7*7}}",
    "NaN",
    "null",
    "-0",
    "9223372036854775808",
    "ö" * 5000,
)

#: Three bytes that are not UTF-8 (lone surrogates as CESU-8/WTF-8 write them, overlong forms, bytes never
#: valid); they replace a three-byte placeholder in an encoded body so lengths and offsets stay right.
BAD_UTF8 = (
    b"\xed\xa0\x80",
    b"\xed\xbf\xbf",
    b"\xff\xfe\xfd",
    b"\xc0\xaf\x41",
    b"\xf8\x88\x80",
    b"\x80\x80\x80",
)
#: Lone surrogates and broken escapes as JSON writes them (six or twelve characters).
BAD_JSON_ESCAPES = (b"\\ud800", b"\\udfff", b"\\udc00\\ud800", b"\\ud800\\u0041", b"\\uDBFF")
_PLACEHOLDER = "\x07\x07\x07"
_JSON_PLACEHOLDER = b"\\u0007\\u0007\\u0007"
_RAW_JSON = (
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"1e400",
    b"-1e400",
    b"99999999999999999999999999999999",
    b"-9223372036854775809",
    b"18446744073709551616",
    b"1.0e-400",
    b"-0",
    b"0x10",
    b"01",
    b"undefined",
    b"'single'",
)


def _huge_string(rng: random.Random) -> str:
    """Over the 64 KiB attribute value limit (up to ~300 KB), in one- to four-byte characters."""
    unit = rng.choice(["x", "é", "€", "🚀", "<script>", "'; --"])
    size = rng.randint(64 * 1024 + 1, 300 * 1024)
    return unit * (size // len(unit.encode()) + 1)


def _hostile_string(rng: random.Random) -> str:
    if rng.random() < 0.03:
        return _huge_string(rng)
    return rng.choice(HOSTILE_STRINGS)


def _bad_id(rng: random.Random) -> bytes:
    return rng.choice(
        [
            b"",
            b"\x00" * 16,
            b"\x00" * 8,
            rng.randbytes(1),
            rng.randbytes(7),
            rng.randbytes(9),
            rng.randbytes(15),
        ]
        + [rng.randbytes(17), rng.randbytes(32), rng.randbytes(4096), b"\xff" * 16]
    )


def _hostile_scalar(rng: random.Random, descriptor: FieldDescriptor) -> Any:
    kind = descriptor.type
    if kind == FieldDescriptor.TYPE_STRING:
        return _hostile_string(rng)
    if kind == FieldDescriptor.TYPE_BYTES:
        return _bad_id(rng)
    if kind in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64):
        return rng.choice([-(2**63), 2**63 - 1, -1, 0, 1, 2**62])
    if kind in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return rng.choice([0, 1, 2**64 - 1, 2**63, 2**63 - 1, 2**62, 2**62 - 1])
    if kind in (
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_ENUM,
    ):
        return rng.choice([-(2**31), 2**31 - 1, -1, 0, 7, 99])
    if kind in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return rng.choice([0, 1, 2**32 - 1, 2**31])
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return rng.choice([math.nan, math.inf, -math.inf, 1.7976931348623157e308, -0.0, 5e-324])
    if kind == FieldDescriptor.TYPE_BOOL:
        return rng.random() < 0.5
    raise AssertionError(f"unexpected field type {kind}")


def _scalar_slots(message: Message, out: list[tuple[Message, FieldDescriptor]]) -> None:
    """Every singular scalar field of ``message`` and of the messages it holds (set or not)."""
    for descriptor in message.DESCRIPTOR.fields:
        if descriptor.message_type is not None:
            if descriptor.is_repeated:
                for item in getattr(message, descriptor.name):
                    _scalar_slots(item, out)
            elif message.HasField(descriptor.name):
                _scalar_slots(getattr(message, descriptor.name), out)
        elif not descriptor.is_repeated:
            out.append((message, descriptor))


def _json_slots(node: Any, out: list[tuple[Any, Any]]) -> None:
    """Every (container, key or index) of a decoded JSON document, containers and leaves alike."""
    if isinstance(node, dict):
        for key, value in node.items():
            out.append((node, key))
            _json_slots(value, out)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out.append((node, index))
            _json_slots(value, out)


def _json_type(value: Any) -> str:
    return "number" if type(value) in (int, float) else type(value).__name__


def _gzip_members(payload: bytes, count: int) -> bytes:
    cuts = sorted({0, len(payload), *(len(payload) * k // count for k in range(1, count))})
    return b"".join(gzip.compress(payload[a:b], mtime=0) for a, b in zip(cuts, cuts[1:], strict=False))


@lru_cache(maxsize=4)
def _gzip_bomb(expanded_bytes: int) -> bytes:
    """Zeros that expand past ``expanded_bytes``: a few KiB on the wire."""
    return gzip.compress(b"\x00" * expanded_bytes, compresslevel=9, mtime=0)


class _Template:
    """A fresh, valid-looking request (with its own random ids, never a recorded valid trace's) to mutate."""

    def __init__(self, fmt: str, rng: random.Random, now_ns: int, max_body_bytes: int) -> None:
        self.fmt = fmt
        self.rng = rng
        self.max_body_bytes = max_body_bytes
        trace_id = _new_id(rng, 16)
        service = rng.choice(["checkout", "fuzz-hostile", "<b>svc</b>", "db'; --"])
        self.resource = _resource(service, **{"host.name": "h", "k8s.pod.uid": rng.randbytes(4).hex()})
        self.spans = _span_tree(rng, trace_id, now_ns, rng.randint(1, 4), "hostile", 0)
        for span in self.spans:
            if rng.random() < 0.3:
                span.links.add(
                    trace_id=_new_id(rng, 16), span_id=_new_id(rng, 8), attributes=_attributes({"l": 1})
                )
        self.records = _log_records(
            rng, trace_id, [s.span_id for s in self.spans], now_ns, rng.randint(1, 3), "h", 0
        )
        self.service = service

    @property
    def logs(self) -> bool:
        return self.fmt.startswith("logs")

    def message(self) -> Message:
        if self.logs:
            return _logs_request(self.resource, self.records)
        return _trace_request(self.resource, self.spans)

    def document(self) -> Any:
        """The template as a JSON document (OTLP JSON or Zipkin); only for the JSON formats."""
        if self.fmt == "zipkin":
            return _zipkin_spans(self.spans, self.service)
        return otlp_json(self.message())

    def items(self) -> list[Message]:
        """The spans or log records (the messages the doctored-bytes kinds append raw fields to)."""
        return list(self.records) if self.logs else list(self.spans)

    def encode(self) -> bytes:
        if self.fmt.endswith("_proto"):
            return cast(bytes, self.message().SerializeToString())
        return orjson.dumps(self.document())

    def raw_request(self, items: list[bytes]) -> bytes:
        if self.logs:
            return _logs_request_bytes(self.resource, items)
        return _trace_request_bytes(self.resource, items)


Kind = Callable[[_Template], HostileBody | bytes]


def _body(
    kind: str, content: bytes, content_type: str | None = None, content_encoding: str | None = None
) -> HostileBody:
    headers = {"Content-Type": content_type, "Content-Encoding": content_encoding}
    return HostileBody(kind, content, {name: value for name, value in headers.items() if value is not None})


# Byte-level kinds: any format.


def k_empty(t: _Template) -> bytes:
    return b""


def k_random_bytes(t: _Template) -> bytes:
    return t.rng.randbytes(t.rng.choice([1, 2, 5, 16, 100, 1000, 10_000]))


def k_truncated(t: _Template) -> bytes:
    body = t.encode()
    return body[: t.rng.randrange(1, len(body))]


def k_bit_flipped(t: _Template) -> bytes:
    body = bytearray(t.encode())
    for _ in range(t.rng.choice([1, 1, 2, 4, 16])):
        position = t.rng.randrange(len(body) * 8)
        body[position // 8] ^= 1 << (position % 8)
    return bytes(body)


def k_spliced(t: _Template) -> bytes:
    """Random bytes written over or inserted into a valid body."""
    body = t.encode()
    at = t.rng.randrange(len(body))
    junk = t.rng.randbytes(t.rng.randint(1, 32))
    end = at + (len(junk) if t.rng.random() < 0.5 else 0)
    return body[:at] + junk + body[end:]


def k_duplicated(t: _Template) -> bytes:
    """A valid body twice in a row (protobuf: a legal merge, repeating every span; JSON: trailing garbage)."""
    body = t.encode()
    return body + body


def k_nul_bytes(t: _Template) -> bytes:
    """NUL bytes inside and around a body."""
    body = t.encode()
    at = t.rng.randrange(len(body) + 1)
    return t.rng.choice([body[:at] + b"\x00" + body[at:], b"\x00" * t.rng.randint(1, 64), body + b"\x00"])


def k_bad_utf8(t: _Template) -> bytes:
    """A string field (name, key, value, service...) holding bytes that are not UTF-8: lone surrogates..."""
    if t.fmt.endswith("_proto"):
        message = t.message()
        slots: list[tuple[Message, FieldDescriptor]] = []
        _scalar_slots(message, slots)
        strings = [(m, d) for m, d in slots if d.type == FieldDescriptor.TYPE_STRING]
        owner, descriptor = t.rng.choice(strings)
        setattr(owner, descriptor.name, "bad" + _PLACEHOLDER + "name")
        return cast(bytes, message.SerializeToString()).replace(_PLACEHOLDER.encode(), t.rng.choice(BAD_UTF8))
    document = t.document()
    slots2: list[tuple[Any, Any]] = []
    _json_slots(document, slots2)
    strings2 = [(c, k) for c, k in slots2 if isinstance(c[k], str)]
    container, key = t.rng.choice(strings2)
    if isinstance(container, dict) and t.rng.random() < 0.3:
        container[_PLACEHOLDER] = container.pop(key)  # the key itself, not its value
    else:
        container[key] = "bad" + _PLACEHOLDER + "name"
    replacement = t.rng.choice(BAD_UTF8 + BAD_JSON_ESCAPES)
    return orjson.dumps(document).replace(_JSON_PLACEHOLDER, replacement)


# Protobuf kinds.


def k_proto_field_values(t: _Template) -> bytes:
    """One to eight fields anywhere set to hostile values: ids of wrong lengths or all zero, NaN and infinite
    doubles, int64 extremes, times at 0 or 2**64-1, unknown enum numbers, script and SQL in strings."""
    message = t.message()
    for _ in range(t.rng.choice([1, 1, 2, 3, 8])):
        slots: list[tuple[Message, FieldDescriptor]] = []
        _scalar_slots(message, slots)
        owner, descriptor = t.rng.choice(slots)
        setattr(owner, descriptor.name, _hostile_scalar(t.rng, descriptor))
    return cast(bytes, message.SerializeToString())


def k_proto_garbage_ids(t: _Template) -> bytes:
    """Trace, span or parent ids of the wrong length, or all zero, on one or more spans (records, links)."""
    for item in t.rng.sample(t.items(), t.rng.randint(1, len(t.items()))):
        names = ["trace_id", "span_id"] + ([] if t.logs else ["parent_span_id"])
        setattr(item, t.rng.choice(names), _bad_id(t.rng))
        if not t.logs and item.links and t.rng.random() < 0.3:
            setattr(item.links[0], t.rng.choice(["trace_id", "span_id"]), _bad_id(t.rng))
    return t.encode()


def _kv(key: bytes, value: bytes) -> bytes:
    return _field(1, key) + _field(2, value)


def k_proto_repeated_keys(t: _Template) -> bytes:
    """The same attribute key two or more times on one span, record, resource, event or link, with values of
    the same or different types (legal on the wire)."""
    key = t.rng.choice([b"http.route", b"fuzz.index", b"service.name", b"k", b""])
    values = [_field(1, b"one"), _tag(3, 0) + _varint(2), _tag(2, 0) + b"\x01", _field(1, b"three")]
    repeats = b"".join(
        _field(9 if not t.logs else 6, _kv(key, t.rng.choice(values)))
        for _ in range(t.rng.choice([2, 2, 3, 50]))
    )
    items = [item.SerializeToString() for item in t.items()]
    where = t.rng.random()
    if where < 0.6:
        at = t.rng.randrange(len(items))
        items[at] += repeats
        return t.raw_request(items)
    # On the resource (Resource.attributes is field 1): a second service.name, or another key twice.
    doctored = t.resource.SerializeToString() + b"".join(
        _field(1, _kv(key, value)) for value in (_field(1, b"a"), _field(1, b"b"))
    )
    scope = common_pb2.InstrumentationScope(name="fuzz").SerializeToString()
    scoped = _field(1, scope) + b"".join(_field(2, item) for item in items)
    return _field(1, _field(1, doctored) + _field(2, scoped))


def k_proto_huge_values(t: _Template) -> bytes:
    """Attribute values, keys, names and bodies over 64 KiB."""
    huge = _huge_string(t.rng)
    item = t.rng.choice(t.items())
    target = t.rng.random()
    if target < 0.5:
        item.attributes.add(key="big", value=common_pb2.AnyValue(string_value=huge))
    elif target < 0.6:
        item.attributes.add(key="bytes", value=common_pb2.AnyValue(bytes_value=huge.encode()))
    elif target < 0.7:
        item.attributes.add(key=huge, value=common_pb2.AnyValue(int_value=1))
    elif target < 0.85:
        t.resource.attributes[0].value.string_value = huge  # service.name
    elif t.logs:
        item.body.string_value = huge
    else:
        item.name = huge
    return cast(bytes, t.message().SerializeToString())


def k_proto_deep_nesting(t: _Template) -> bytes:
    """An array or kvlist attribute value (or log body) 100 or more levels deep."""
    depth = t.rng.choice([17, 100, 100, 1000])
    value = _deep_any_value(depth, kvlist=t.rng.random() < 0.5)
    items = [item.SerializeToString() for item in t.items()]
    at = t.rng.randrange(len(items))
    if t.logs and t.rng.random() < 0.5:
        items[at] += _field(5, value)  # the body
    else:
        items[at] += _field(9 if not t.logs else 6, _kv(b"deep", value))
    return t.raw_request(items)


def k_proto_many(t: _Template) -> bytes:
    """Thousands of spans (records), or of attributes on one, or empty ones."""
    roll = t.rng.random()
    if roll < 0.4:
        item = t.items()[0]
        for n in range(t.rng.choice([1025, 3000])):
            item.attributes.add(key=f"a{n}", value=common_pb2.AnyValue(int_value=n))
        return t.encode()
    if roll < 0.7:
        blank = b""  # a span or record with no field set at all
        return t.raw_request([blank] * t.rng.choice([1, 100, 2000]))
    item = t.items()[0].SerializeToString()
    return t.raw_request([item] * t.rng.choice([2, 500]))


def k_proto_wire_types(t: _Template) -> bytes:
    """Fields with the wrong wire type, unknown fields, overlong varints, lengths past the end, groups."""
    items = [item.SerializeToString() for item in t.items()]
    at = t.rng.randrange(len(items))
    junk = t.rng.choice(
        [
            _tag(5, 0) + _varint(7),  # name as a varint
            _tag(1, 1) + b"\x01" * 8,  # trace id as fixed64
            _tag(7, 2) + _varint(3) + b"abc",  # start time as bytes
            _tag(999, 2) + _varint(4) + b"junk",  # unknown field: legal
            _tag(12345, 0) + _varint(2**63),  # unknown varint: legal
            _tag(9, 2) + _varint(10_000) + b"short",  # length past the end
            _tag(5, 0) + b"\xff" * 11,  # an eleven-byte varint
            _tag(2, 3) + _tag(2, 4),  # an empty group
            _tag(0, 0) + b"\x00",  # field number 0
            _tag(5, 6) + b"x",  # wire type 6 does not exist
        ]
    )
    items[at] += junk
    return t.raw_request(items)


def k_proto_structure(t: _Template) -> bytes:
    """Requests whose nesting is empty or wrong: no resource, no scope, a span where a resource goes."""
    item = t.items()[0].SerializeToString()
    return t.rng.choice(
        [
            _field(1, b""),  # one empty ResourceSpans
            _field(1, _field(2, b"")) * 3,
            _field(1, _field(2, _field(2, b""))),  # one empty span
            _field(1, _field(1, item)),  # a span as the resource
            _field(1, item),  # a span as the ResourceSpans
            _field(2, item),  # an unknown top-level field
            _field(1, _field(2, _field(2, item) + _field(1, item))),  # a span as the scope
        ]
    )


# JSON kinds (OTLP JSON and Zipkin).


def _dumps_with_raw(document: Any, raw: list[bytes]) -> bytes:
    """JSON text with ``raw`` tokens (NaN, 1e400, ...) written where placeholders ``"\\u0007RAW<n>"`` stand."""
    text = orjson.dumps(document)
    for n, token in enumerate(raw):
        text = text.replace(b'"\\u0007RAW%d"' % n, token)
    return text


def _wrong_value(rng: random.Random, old: Any, raw: list[bytes]) -> Any:
    choices: list[Any] = [None, True, False, 0, -1, 3.5, "", "text", [], {}, [None], {"": None}, [[[]]]]
    choices += [rng.choice(HOSTILE_STRINGS), 2**64 - 1, -(2**63)]
    value = rng.choice([c for c in choices if _json_type(c) != _json_type(old)] + ["RAW"] * 3)
    if value == "RAW":
        raw.append(rng.choice(_RAW_JSON))
        return f"\x07RAW{len(raw) - 1}"
    return value


def k_json_wrong_types(t: _Template) -> bytes:
    """One to ten values anywhere replaced by another JSON type (a number for a string, an object for a list,
    null, NaN, 1e400...)."""
    document = t.document()
    raw: list[bytes] = []
    for _ in range(t.rng.choice([1, 1, 2, 3, 10])):
        slots: list[tuple[Any, Any]] = []
        _json_slots(document, slots)
        if not slots:
            break
        container, key = t.rng.choice(slots)
        container[key] = _wrong_value(t.rng, container[key], raw)
    if t.rng.random() < 0.1:
        document = _wrong_value(t.rng, document, raw)
    return _dumps_with_raw(document, raw)


def k_json_hostile_strings(t: _Template) -> bytes:
    """Strings anywhere (names, keys, values, service) replaced with script, SQL, NUL, huge text..."""
    document = t.document()
    slots: list[tuple[Any, Any]] = []
    _json_slots(document, slots)
    strings = [(c, k) for c, k in slots if isinstance(c[k], str)]
    for _ in range(t.rng.choice([1, 2, 5])):
        container, key = t.rng.choice(strings)
        if isinstance(container, dict) and t.rng.random() < 0.2:
            container[_hostile_string(t.rng)] = container.get(key)
        else:
            container[key] = _hostile_string(t.rng)
    return orjson.dumps(document)


_ID_KEYS = {"traceId", "spanId", "parentSpanId", "id", "parentId"}
_NUMBER_KEYS = {
    "startTimeUnixNano",
    "endTimeUnixNano",
    "timeUnixNano",
    "observedTimeUnixNano",
    "intValue",
    "timestamp",
    "duration",
    "severityNumber",
    "kind",
    "droppedAttributesCount",
    "flags",
    "port",
}
_BAD_HEX = (
    "zz" * 16,
    "0" * 32,
    "0" * 16,
    "0123456789ABCDEF0123456789ABCDEF",
    "0123456789abcdef0123456789abcde",
    "0123456789abcdef0123456789abcdef0",
    "0123456789abcdef" * 4,
    "AQIDBAUGBwgJCgsMDQ4PEA==",  # base64, as protobuf's own JSON mapping writes bytes
    "01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10",
    "０１２３４５６７８９ａｂｃｄｅｆ０１２３４５６７８９ａｂｃｄｅｆ",
    "٠١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦٧٨٩٠١٢٣٤٥٦٧٨٩٠١",
    "-123456789abcdef",
    "",
    "0x0123456789abcdef",
)
_BAD_INT_STRINGS = (
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "99999999999999999999999999999999999999",
    "9" * 5000,
    "-1",
    "1e9",
    "1.5",
    "0x10",
    " 12",
    "12 ",
    "+5",
    "",
    "١٢٣",
    "NaN",
    "Infinity",
    "1_000",
)


def k_json_ids_and_numbers(t: _Template) -> bytes:
    """Ids that are not 32 (16) lowercase hex digits; int64 fields as overflowing, signed, float, hex or
    non-ASCII-digit strings, or as out-of-range JSON numbers."""
    document = t.document()
    slots: list[tuple[Any, Any]] = []
    _json_slots(document, slots)
    targets = [(c, k) for c, k in slots if isinstance(c, dict) and k in _ID_KEYS | _NUMBER_KEYS]
    raw: list[bytes] = []
    for _ in range(t.rng.choice([1, 1, 3])):
        container, key = t.rng.choice(targets)
        if key in _ID_KEYS:
            container[key] = t.rng.choice(_BAD_HEX)
        elif t.rng.random() < 0.7:
            container[key] = t.rng.choice(_BAD_INT_STRINGS)
        else:
            raw.append(t.rng.choice(_RAW_JSON[:9]))
            container[key] = f"\x07RAW{len(raw) - 1}"
    return _dumps_with_raw(document, raw)


def _otlp_attribute_lists(document: Any) -> list[list[Any]]:
    """Every OTLP ``attributes`` list in a document (resources, spans, records, events, links)."""
    found = []
    slots: list[tuple[Any, Any]] = []
    _json_slots(document, slots)
    for container, key in slots:
        if key == "attributes" and isinstance(container[key], list):
            found.append(container[key])
    return found


def k_json_repeated_keys(t: _Template) -> bytes:
    """The same attribute key twice in an OTLP attribute list, or the same object key twice in the JSON text
    (Zipkin tags, ``traceId``...)."""
    document = t.document()
    lists = _otlp_attribute_lists(document) if t.fmt != "zipkin" else []
    if lists and t.rng.random() < 0.6:
        target = t.rng.choice(lists)
        key = t.rng.choice([target[0]["key"], "dup"]) if target else "dup"
        for value in t.rng.sample([{"stringValue": "a"}, {"intValue": "2"}, {"boolValue": True}, {}], 2):
            target.append({"key": key, "value": value})
        return orjson.dumps(document)
    text = orjson.dumps(document)
    key = t.rng.choice([b'"traceId":', b'"name":', b'"tags":{', b'"attributes":[', b'"spanId":', b'"id":'])
    at = text.find(key)
    if at < 0:
        return text.replace(b"{", b'{"dup":1,"dup":"two",', 1)
    if key.endswith(b"{"):
        return text[: at + len(key)] + b'"k":"1","k":"2","k":{"x":[]},' + text[at + len(key) :]
    return text[:at] + key + b'"0123456789abcdef0123456789abcdef",' + text[at:]


def k_json_huge_values(t: _Template) -> bytes:
    huge = _huge_string(t.rng)
    document = t.document()
    if t.fmt == "zipkin":
        span = t.rng.choice(document)
        target = t.rng.choice(["tag", "key", "name", "service", "annotation"])
        if target == "tag":
            span["tags"]["big"] = huge
        elif target == "key":
            span["tags"][huge] = "v"
        elif target == "name":
            span["name"] = huge
        elif target == "service":
            span["localEndpoint"]["serviceName"] = huge
        else:
            span.setdefault("annotations", []).append({"timestamp": span["timestamp"], "value": huge})
        return orjson.dumps(document)
    lists = _otlp_attribute_lists(document)
    attributes = t.rng.choice(lists)
    choice = t.rng.random()
    if choice < 0.6:
        attributes.append({"key": "big", "value": {"stringValue": huge}})
    elif choice < 0.75:
        attributes.append({"key": "b", "value": {"bytesValue": base64.b64encode(huge.encode()).decode()}})
    else:
        attributes.append({"key": huge, "value": {"intValue": "1"}})
    return orjson.dumps(document)


def _deep_json_value(depth: int, kvlist: bool) -> bytes:
    value = b'{"stringValue":"bottom"}'
    for _ in range(depth):
        if kvlist:
            value = b'{"kvlistValue":{"values":[{"key":"k","value":' + value + b"}]}}"
        else:
            value = b'{"arrayValue":{"values":[' + value + b"]}}"
    return value


def k_json_deep_nesting(t: _Template) -> bytes:
    """Array/kvlist values 100 levels deep (OTLP), nested objects as Zipkin tags, or runaway brackets."""
    roll = t.rng.random()
    if roll < 0.15:
        opener = t.rng.choice([b"[", b"{", b'{"a":'])
        return opener * t.rng.choice([100, 1000, 100_000])
    document = t.document()
    marker = "\x07DEEP"
    if t.fmt == "zipkin":
        t.rng.choice(document)["tags"]["deep"] = marker
        deep = b'"x"'
        for _ in range(t.rng.choice([100, 300])):
            deep = b'{"a":[' + deep + b"]}"
    else:
        t.rng.choice(_otlp_attribute_lists(document)).append({"key": "deep", "value": marker})
        if t.logs and t.rng.random() < 0.5:
            record = document["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
            record["body"] = marker
        deep = _deep_json_value(t.rng.choice([17, 100, 100, 400]), kvlist=t.rng.random() < 0.5)
    return orjson.dumps(document).replace(b'"\\u0007DEEP"', deep)


def k_json_syntax(t: _Template) -> bytes:
    """Texts that are not (quite) JSON, or are JSON of the wrong shape."""
    body = t.encode()
    return t.rng.choice(
        [
            b"{not json",
            b"[]",
            b"{}",
            b"null",
            b"1",
            b'"text"',
            b"[null]",
            b"[[]]",
            b"[{}]",
            b'{"resourceSpans":null}',
            b'{"resourceSpans":{}}',
            b'{"resourceLogs":[null]}',
            b'{"resourceSpans":[{"scopeSpans":[{"spans":[{}]}]}]}',
            b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[{}]}]}]}',
            b"\xef\xbb\xbf" + body,  # a byte order mark
            body.replace(b'"', b"'"),
            body + b",",
            body[:-1] + b",]" if body.endswith(b"]") else body[:-1] + b",}",
            b"/* comment */" + body,
            body.replace(b":", b" : ", 3),
            body.replace(b"\n", b"") + b"\n" * 3,
            b'[{"traceId":"0123456789abcdef0123456789abcdef","id":"0123456789abcdef","name":"x","timestamp":"soon"}]',
        ]
    )


# HTTP-only kinds: headers.


def k_http_encoding(t: _Template) -> HostileBody:
    """Content-Encoding lies and oddities: not gzip, gzip of garbage, truncated, trailing bytes, deflate,
    unknown codings; multi-member gzip (legal); small bodies that expand past the limit; the other compressions
    a Collector sends, broken alike (``_other_compression``)."""
    body = t.encode()
    rng = t.rng
    roll = rng.randrange(13)
    if roll == 0:
        return _body("gzip-not-gzip", body, content_encoding="gzip")
    if roll == 1:
        return _body(
            "gzip-of-garbage",
            gzip.compress(rng.randbytes(rng.choice([1, 100, 5000]))),
            content_encoding="gzip",
        )
    if roll == 2:
        packed = gzip.compress(body)
        return _body("gzip-truncated", packed[: rng.randrange(1, len(packed))], content_encoding="gzip")
    if roll == 3:
        trailer = rng.choice([rng.randbytes(rng.randint(1, 64)), b"\x00" * 16, b"\x1f\x8b"])
        return _body("gzip-trailing-bytes", gzip.compress(body) + trailer, content_encoding="gzip")
    if roll == 4:
        return _body(
            "gzip-multi-member", _gzip_members(body, rng.choice([2, 3, 10])), content_encoding="gzip"
        )
    if roll == 5:
        return _body(
            "gzip-multi-member-garbage",
            gzip.compress(body) + gzip.compress(rng.randbytes(50)),
            content_encoding="gzip",
        )
    if roll == 6:
        return _body("deflate", zlib.compress(body), content_encoding=rng.choice(["deflate", "gzip"]))
    if roll == 7:
        coding = rng.choice(["br", "zstd", "gzip, gzip", "GZIP", "x-gzip", "identity", "compress", "*", ""])
        content = gzip.compress(body) if "gzip" in coding.lower() else body
        return _body("content-encoding-odd", content, content_encoding=coding)
    if roll == 8:
        return _body("gzip-of-gzip", gzip.compress(gzip.compress(body)), content_encoding="gzip")
    if roll == 9:
        return _body("gzip-bad-crc", gzip.compress(body)[:-8] + b"\x00" * 8, content_encoding="gzip")
    if roll == 10 and rng.random() < 0.1:
        return _body("gzip-bomb", _gzip_bomb(t.max_body_bytes + 1024 * 1024), content_encoding="gzip")
    if roll == 11:
        return _other_compression(t, body)
    return _body("gzip-empty", rng.choice([b"", gzip.compress(b"")]), content_encoding="gzip")


def _other_compression(t: _Template, body: bytes) -> HostileBody:
    """zstd, lz4 and snappy (as a Collector may send them) broken in the ways gzip is: not compressed, cut
    short, bits flipped, another coding's bytes, garbage inside, a bomb; or whole, valid or in many frames."""
    rng = t.rng
    coding = rng.choice(["zstd", "lz4", "snappy", "x-snappy-framed"])
    packed = MAKERS[coding]([body])
    how = rng.randrange(8)
    if how == 0:
        return _body(f"{coding}-not-{coding}", body, content_encoding=coding)
    if how == 1:
        return _body(f"{coding}-truncated", packed[: rng.randrange(1, len(packed))], content_encoding=coding)
    if how == 2:
        flipped = bytearray(packed)
        for _ in range(rng.randint(1, 4)):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        return _body(f"{coding}-bit-flipped", bytes(flipped), content_encoding=coding)
    if how == 3:
        other = rng.choice([c for c in MAKERS if c != coding])
        return _body(f"{other}-sent-as-{coding}", MAKERS[other]([body]), content_encoding=coding)
    if how == 4:
        return _body(f"{coding}-of-garbage", MAKERS[coding]([rng.randbytes(200)]), content_encoding=coding)
    if how == 5 and rng.random() < 0.2:
        bomb = MAKERS[coding]([b"\0" * (t.max_body_bytes + 1024 * 1024)])
        return _body(f"{coding}-bomb", bomb, content_encoding=coding)
    if how == 6:
        pieces = [body[i : i + 7] for i in range(0, len(body), 7)] or [b""]
        return _body(f"{coding}-many-frames", MAKERS[coding](pieces), content_encoding=coding)
    return _body(f"{coding}-valid", packed, content_encoding=coding)


def k_http_content_type(t: _Template) -> HostileBody:
    body = t.encode()
    rng = t.rng
    proto = t.fmt.endswith("_proto")
    choices = [
        "text/plain",
        "application/xml",
        "text/html; charset=utf-8",
        "multipart/form-data; boundary=x",
        "application/json; charset=utf-8",
        "application/x-protobuf; charset=binary",
        "APPLICATION/JSON",
        "application/protobuf",
        JSON if proto else PROTOBUF,  # the other format's type over this body
        "application/json;;;",
        "a" * 5000,
        "",
    ]
    return _body("content-type", body, content_type=rng.choice(choices))


def k_http_chunked(t: _Template) -> HostileBody:
    """A valid-looking body sent in chunks (no Content-Length)."""
    return HostileBody("chunked", t.encode(), {}, chunked=True)


def k_oversize(t: _Template) -> bytes:
    """Just over the body limit, as sent."""
    limit = t.max_body_bytes
    return b"\x0a" + _varint(limit) + b"\x00" * limit


#: Kinds by format, with weights (expensive kinds are rare).
_COMMON: list[tuple[Kind, float]] = [
    (k_empty, 1),
    (k_random_bytes, 4),
    (k_truncated, 4),
    (k_bit_flipped, 6),
    (k_spliced, 3),
    (k_duplicated, 1),
    (k_nul_bytes, 2),
    (k_bad_utf8, 4),
    (k_oversize, 0.02),
]
_PROTO: list[tuple[Kind, float]] = [
    (k_proto_field_values, 10),
    (k_proto_garbage_ids, 4),
    (k_proto_repeated_keys, 4),
    (k_proto_huge_values, 1.5),
    (k_proto_deep_nesting, 3),
    (k_proto_many, 1),
    (k_proto_wire_types, 3),
    (k_proto_structure, 2),
]
_JSON: list[tuple[Kind, float]] = [
    (k_json_wrong_types, 10),
    (k_json_hostile_strings, 4),
    (k_json_ids_and_numbers, 6),
    (k_json_repeated_keys, 4),
    (k_json_huge_values, 1.5),
    (k_json_deep_nesting, 3),
    (k_json_syntax, 3),
]
_HTTP: list[tuple[Kind, float]] = [(k_http_encoding, 5), (k_http_content_type, 2), (k_http_chunked, 1)]


class HostileBodies:
    """Hostile bodies for one format: body ``index`` is the same on every run with the same seed and time."""

    def __init__(
        self, fmt: str, seed: int, now_ns: int, transport: str = "http", max_body_bytes: int = 4 * 1024 * 1024
    ) -> None:
        assert fmt in FORMATS, fmt
        self.fmt = fmt
        self.seed = seed
        self.now_ns = now_ns
        self.transport = transport
        self.max_body_bytes = max_body_bytes
        kinds = _COMMON + (_PROTO if fmt.endswith("_proto") else _JSON)
        if transport == "http":
            kinds = kinds + _HTTP
        self.kinds = [kind for kind, _ in kinds]
        self.weights = [weight for _, weight in kinds]

    def body(self, index: int) -> HostileBody:
        rng = random.Random(f"hostile:{self.seed}:{self.fmt}:{self.transport}:{index}")
        kind = rng.choices(self.kinds, self.weights)[0]
        template = _Template(self.fmt, rng, self.now_ns, self.max_body_bytes)
        made = kind(template)
        if isinstance(made, HostileBody):
            return made
        return HostileBody(kind.__name__.removeprefix("k_").replace("_", "-"), made)


# -- sending them, and checking what was kept --------------------------------------------------------------


class IngestAddresses(Protocol):
    """Where a running spyglass listens (``tests.conftest.RunningServer`` is one)."""

    @property
    def otlp_http(self) -> str: ...

    @property
    def otlp_grpc(self) -> str: ...

    @property
    def zipkin(self) -> str: ...


#: Answers a hostile body may get: legal (2xx), refused (400), too large (413), wrong type (415), overloaded.
ALLOWED_HTTP = {400, 413, 415, 429}
ALLOWED_GRPC = {"OK", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"}
#: How long a valid export is retried while the server answers 429 / RESOURCE_EXHAUSTED.
RETRY_BUDGET_S = 120.0


@dataclass
class FuzzReport:
    endpoint: str
    hostile_sent: int = 0
    valid_sent: int = 0
    answers: Counter[str] = field(default_factory=Counter)  # hostile answers by status
    kinds: Counter[str] = field(default_factory=Counter)  # hostile bodies by kind
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)  # hostile bodies by (kind, status)
    violations: list[str] = field(default_factory=list)  # hostile answers that must not happen
    acknowledged: list[ValidExport] = field(default_factory=list)
    refused_valid: list[str] = field(default_factory=list)  # valid exports never acknowledged
    retries: int = 0  # 429s / RESOURCE_EXHAUSTED a valid export was retried after
    seconds: float = 0.0

    def violation_summary(self, limit: int = 15) -> str:
        by_kind = Counter(v.split(" ", 1)[0] for v in self.violations)
        return f"{len(self.violations)} violations by kind {dict(by_kind)}; first: " + "\n".join(
            self.violations[:limit]
        )


def _preview(content: bytes) -> str:
    return repr(content[:60]) + (f"...({len(content)} bytes)" if len(content) > 60 else "")


class _Sender:
    """One client thread's connection: an httpx client (keep-alive) or a gRPC channel."""

    def __init__(self, target: IngestAddresses, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        if endpoint.transport == "grpc":
            self.channel = grpc.insecure_channel(
                target.otlp_grpc,
                options=[
                    ("grpc.max_send_message_length", 64 * 1024 * 1024),
                ],
            )
            self.call = self.channel.unary_unary(
                endpoint.path, request_serializer=lambda b: b, response_deserializer=lambda b: b
            )
        else:
            self.client = httpx.Client(timeout=60)
            base = target.zipkin.removesuffix(endpoint.path) if endpoint.fmt == "zipkin" else target.otlp_http
            self.url = base + endpoint.path

    def close(self) -> None:
        if self.endpoint.transport == "grpc":
            self.channel.close()
        else:
            self.client.close()

    def http(
        self, content: bytes, headers: dict[str, str], chunked: bool
    ) -> tuple[str, httpx.Response | None]:
        sent: bytes | Iterator[bytes] = content
        if chunked:
            sent = iter([content[i : i + 1000] for i in range(0, len(content), 1000)] or [b""])
        try:
            response = self.client.post(self.url, content=sent, headers=headers)
        except httpx.TimeoutException as error:
            return f"timeout ({type(error).__name__})", None
        except httpx.TransportError as error:
            return f"dropped connection ({type(error).__name__}: {error})", None
        return str(response.status_code), response

    def grpc(self, content: bytes, compressed: bool = False) -> tuple[str, grpc.RpcError | bytes]:
        try:
            reply = self.call(
                content,
                timeout=60,
                compression=grpc.Compression.Gzip if compressed else grpc.Compression.NoCompression,
            )
        except grpc.RpcError as error:
            return error.code().name, error
        return "OK", reply

    def hostile(self, body: HostileBody) -> str:
        if self.endpoint.transport == "grpc":
            return self.grpc(body.content)[0]
        headers = {"Content-Type": self.endpoint.content_type, **body.headers}
        return self.http(body.content, headers, body.chunked)[0]

    def valid(self, export: ValidExport, report: FuzzReport, lock: threading.Lock) -> None:
        """Send until acknowledged, waiting as told on 429 / RESOURCE_EXHAUSTED; anything else is a failure."""
        deadline = time.monotonic() + RETRY_BUDGET_S
        while True:
            wait_s = 1.0
            reason = ""
            if self.endpoint.transport == "grpc":
                status, reply = self.grpc(export.payload, compressed=export.encoding == "gzip")
                if isinstance(reply, grpc.RpcError):
                    reason = f"{status} {reply.details()}"
                if status == "OK":
                    assert isinstance(reply, bytes)
                    problem = _rejected_in_reply(self.endpoint, reply)
                    if problem is None:
                        with lock:
                            report.acknowledged.append(export)
                        return
                    status = reason = problem
                elif status == "RESOURCE_EXHAUSTED":
                    assert isinstance(reply, grpc.RpcError)
                    advice = dict(reply.trailing_metadata() or ()).get("retry-after")
                    wait_s = float(advice) if advice else 1.0
            else:
                content, headers = export.http_request()
                status, response = self.http(content, headers, chunked=False)
                reason = status if response is None else f"{status} {response.text[:300]}"
                if response is not None and response.status_code in (200, 202):
                    problem = _rejected_in_reply(self.endpoint, response.content)
                    if problem is None:
                        with lock:
                            report.acknowledged.append(export)
                        return
                    status = reason = problem
                elif response is not None and response.status_code == 429:
                    wait_s = float(response.headers.get("retry-after", "1"))
            if status not in ("429", "RESOURCE_EXHAUSTED") or time.monotonic() + wait_s > deadline:
                with lock:
                    report.refused_valid.append(
                        f"valid #{export.index} ({export.encoding}) trace {export.trace_id}: {reason or status}"
                    )
                return
            with lock:
                report.retries += 1
            time.sleep(wait_s)


def _rejected_in_reply(endpoint: Endpoint, reply: bytes) -> str | None:
    """Why an acknowledged valid export was still not wholly accepted (a partial success), or None."""
    if endpoint.fmt == "zipkin":
        return None
    if endpoint.content_type == JSON and endpoint.transport == "http":
        partial = orjson.loads(reply or b"{}").get("partialSuccess")
        if partial and (
            partial.get("rejectedSpans", "0") != "0" or partial.get("rejectedLogRecords", "0") != "0"
        ):
            return f"partial success {partial}"
        return None
    message = (
        logs_service_pb2.ExportLogsServiceResponse()
        if endpoint.logs
        else trace_service_pb2.ExportTraceServiceResponse()
    )
    message.ParseFromString(reply)
    rejected = (
        message.partial_success.rejected_log_records
        if endpoint.logs
        else message.partial_success.rejected_spans
    )
    return f"partial success {message.partial_success}" if rejected else None


def run_fuzz(
    target: IngestAddresses,
    endpoint_name: str,
    hostile_count: int,
    seed: int = 1,
    threads: int = 4,
    valid_every: int = 20,
    max_body_bytes: int = 4 * 1024 * 1024,
) -> FuzzReport:
    """Send ``hostile_count`` hostile bodies to one endpoint from ``threads`` connections, one valid export after
    every ``valid_every`` of them; record every answer a hostile body must not get, and the acknowledged valid
    exports."""
    endpoint = ENDPOINTS[endpoint_name]
    now_ns = time.time_ns()
    hostile = HostileBodies(endpoint.fmt, seed, now_ns, endpoint.transport, max_body_bytes)
    valid = ValidTraces(endpoint.fmt, seed, f"fuzz-{endpoint.name}", now_ns, endpoint.transport)
    report = FuzzReport(endpoint.name)
    lock = threading.Lock()
    total = hostile_count + hostile_count // valid_every

    def work(first: int) -> None:
        sender = _Sender(target, endpoint)
        answers: Counter[str] = Counter()
        outcomes: Counter[tuple[str, str]] = Counter()
        problems: list[str] = []
        try:
            for position in range(first, total, threads):
                valid_index, offset = divmod(position, valid_every + 1)
                if offset == valid_every:
                    sender.valid(valid.export(valid_index), report, lock)
                    continue
                index = position - valid_index
                body = hostile.body(index)
                status = sender.hostile(body)
                answers[status] += 1
                outcomes[body.kind, status] += 1
                ok = (
                    status in ALLOWED_GRPC
                    if endpoint.transport == "grpc"
                    else status.isdigit() and (200 <= int(status) < 300 or int(status) in ALLOWED_HTTP)
                )
                if not ok:
                    problems.append(
                        f"{body.kind} #{index}: {status}; body {_preview(body.content)} {body.headers}"
                    )
        except Exception as error:  # a bug of this client, not the server: still fail the run, and say so
            problems.append(f"client-error in thread {first}: {error!r}")
        finally:
            sender.close()
            with lock:
                report.answers.update(answers)
                report.outcomes.update(outcomes)
                report.kinds.update(kind for kind, _ in outcomes.elements())
                report.violations.extend(problems)

    started = time.perf_counter()
    workers = [threading.Thread(target=work, args=(n,), name=f"fuzz-{n}") for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    report.seconds = time.perf_counter() - started
    report.hostile_sent = sum(report.answers.values())
    report.valid_sent = total - report.hostile_sent
    report.acknowledged.sort(key=lambda export: export.index)
    report.violations.sort()
    return report


def _span_problem(export: ValidExport, answer: httpx.Response) -> str | None:
    if answer.status_code == 404:
        return "not found"
    if answer.status_code != 200:
        return f"answered {answer.status_code}: {answer.text[:200]}"
    got = {
        (s["span_id"], s["parent_span_id"], s["name"], s["service"], s["attributes"].get("fuzz.index"))
        for s in answer.json()["spans"]
    }
    index: Any = str(export.index) if export.fmt == "zipkin" else export.index  # Zipkin tags are strings
    want = {(s.span_id, s.parent_span_id, s.name, export.service, index) for s in export.spans}
    if got != want:
        return f"{len(want - got)} of {len(want)} spans missing or different, {len(got - want)} unexpected"
    return None


def _log_problem(export: ValidExport, answer: httpx.Response) -> str | None:
    if answer.status_code != 200:
        return f"answered {answer.status_code}: {answer.text[:200]}"
    got = {
        (entry["span_id"], entry["body"], entry["severity_number"], entry["service"])
        for entry in answer.json()["logs"]
    }
    want = {(log.span_id, log.body, log.severity_number, export.service) for log in export.logs}
    if got != want:
        return (
            f"{len(want - got)} of {len(want)} log records missing or different, {len(got - want)} unexpected"
        )
    return None


def _export_problems(api: str, exports: list[ValidExport], threads: int) -> dict[int, str]:
    """What is wrong with each export the API does not give back whole, by export index."""
    problems: dict[int, str] = {}
    lock = threading.Lock()

    def check(share: list[ValidExport]) -> None:
        with httpx.Client(base_url=api, timeout=30) as client:
            for export in share:
                if export.logs:
                    problem = _log_problem(export, client.get(f"/api/v1/traces/{export.trace_id}/logs"))
                else:
                    problem = _span_problem(export, client.get(f"/api/v1/traces/{export.trace_id}"))
                if problem is not None:
                    with lock:
                        problems[export.index] = problem

    workers = [threading.Thread(target=check, args=(exports[n::threads],)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return problems


def missing_exports(api: str, exports: list[ValidExport], threads: int = 4, wait_s: float = 0.0) -> list[str]:
    """Which acknowledged exports the query API does not give back whole (``GET /api/v1/traces/{id}``, or
    ``/logs`` for log exports); with ``wait_s``, ask again for the missing ones until then."""
    deadline = time.monotonic() + wait_s
    pending = list(exports)
    while True:
        problems = _export_problems(api, pending, threads)
        pending = [export for export in pending if export.index in problems]
        if not pending or time.monotonic() >= deadline:
            return [
                f"valid #{e.index} ({e.encoding}) trace {e.trace_id}: {problems[e.index]}" for e in pending
            ]
        time.sleep(0.5)


def unstored_exports(store: Any, exports: list[ValidExport]) -> list[str]:
    """Which acknowledged span exports are not wholly in ``store`` (a ``spyglass.store.protocol.Store``).

    The live API also answers from the recall buffer, so a trace whose store write was lost still looks whole
    there until the buffer lets it go; asking the store says so at once, and names the cause.
    """
    problems = []
    for export in exports:
        if export.logs:
            continue
        stored = set(store.trace(bytes.fromhex(export.trace_id)).column("span_id").to_pylist())
        wanted = {bytes.fromhex(span.span_id) for span in export.spans}
        if stored != wanted:
            problems.append(
                f"valid #{export.index} ({export.encoding}) trace {export.trace_id}: "
                f"{len(wanted - stored)} of {len(wanted)} spans not in the store"
            )
    return problems
