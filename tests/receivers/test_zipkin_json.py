"""The Zipkin v2 JSON decoder, fed spans shaped as Brave and zipkin-js send them."""

from __future__ import annotations

from typing import Any, cast

import orjson
import pytest

from spyglass.model.attributes import typed_attributes
from spyglass.model.schema import SPAN_SCHEMA, UNKNOWN_SERVICE, SpanKind, StatusCode, ValueType
from spyglass.model.shared_spans import server_half_id
from spyglass.receivers.decoders.limits import (
    MAX_ATTRIBUTE_VALUE_BYTES,
    MAX_ATTRIBUTES_PER_SPAN,
    MAX_NAME_BYTES,
)
from spyglass.receivers.decoders.result import DecodeError, DecodeResult
from spyglass.receivers.decoders.zipkin_json import decode_zipkin_json

TRACE = "5b8efff798038103d269b633813fc60c"
TRACE64 = "d269b633813fc60c"
SPAN = "eee19b7ec3c1b174"
PARENT = "eee19b7ec3c1b173"
START_US = 1_700_000_000_000_000


def span(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "traceId": TRACE64,
        "id": SPAN,
        "name": "get /cart",
        "timestamp": START_US,
        "duration": 1500,
        "localEndpoint": {"serviceName": "frontend"},
    }
    base.update(fields)
    return {key: value for key, value in base.items() if value is not ...}


def decode(*spans: Any) -> DecodeResult:
    result = decode_zipkin_json(orjson.dumps(list(spans)))
    assert result.batch.schema.equals(SPAN_SCHEMA)
    result.batch.validate(full=True)
    return result


def only_row(zipkin_span: dict[str, Any]) -> dict[str, Any]:
    result = decode(zipkin_span)
    assert result.rejected_spans == 0 and result.error_message == ""
    (row,) = result.batch.to_pylist()
    return cast("dict[str, Any]", row)


def test_brave_client_span_maps_exactly() -> None:
    brave = {
        "traceId": TRACE,
        "parentId": PARENT,
        "id": SPAN,
        "kind": "CLIENT",
        "name": "get",
        "timestamp": START_US,
        "duration": 207,
        "localEndpoint": {"serviceName": "frontend", "ipv4": "192.168.99.1", "port": 8081},
        "remoteEndpoint": {"serviceName": "backend", "ipv4": "172.19.0.2", "port": 9000},
        "annotations": [
            {"timestamp": START_US + 50, "value": "ws"},
            {"timestamp": START_US + 190, "value": "wr"},
        ],
        "tags": {"http.method": "GET", "http.path": "/api", "http.status_code": "500", "error": "500"},
        "shared": True,
        "debug": True,
    }
    row = only_row(brave)
    assert row == {
        "trace_id": bytes.fromhex(TRACE),
        "span_id": bytes.fromhex(SPAN),
        "parent_span_id": bytes.fromhex(PARENT),
        "trace_state": None,
        "service": "frontend",
        "name": "get",
        "kind": SpanKind.CLIENT,
        "start_ns": START_US * 1000,
        "duration_ns": 207_000,
        "status_code": StatusCode.ERROR,
        "status_message": "500",
        "attributes": [
            ("http.method", "GET"),
            ("http.path", "/api"),
            ("http.status_code", "500"),
            ("peer.service", "backend"),
            ("net.peer.ip", "172.19.0.2"),
            ("net.peer.port", "9000"),
            ("zipkin.shared", "true"),
            ("zipkin.debug", "true"),
        ],
        "attribute_types": [
            ("net.peer.port", ValueType.INT),
            ("zipkin.shared", ValueType.BOOL),
            ("zipkin.debug", ValueType.BOOL),
        ],
        "resource": [
            ("service.name", "frontend"),
            ("net.host.ip", "192.168.99.1"),
            ("net.host.port", "8081"),
        ],
        "resource_types": [("net.host.port", ValueType.INT)],
        "scope_name": None,
        "scope_version": None,
        "events": [
            {"time_ns": (START_US + 50) * 1000, "name": "ws", "attributes": [], "attribute_types": []},
            {"time_ns": (START_US + 190) * 1000, "name": "wr", "attributes": [], "attribute_types": []},
        ],
        "links": [],
    }


def test_zipkin_js_server_span_keeps_string_tags_as_strings() -> None:
    zipkin_js = {
        "traceId": TRACE64,
        "id": SPAN,
        "name": "post /orders",
        "kind": "SERVER",
        "timestamp": START_US,
        "duration": 3021,
        "localEndpoint": {"serviceName": "orders-api", "ipv6": "2001:db8::c001", "port": 0},
        "remoteEndpoint": {"ipv4": "10.0.0.3"},
        "tags": {
            "http.status_code": "200",
            "http.url": "http://orders/api?x=1",
            "retries": "0",
            "ok": "true",
        },
    }
    row = only_row(zipkin_js)
    assert row["kind"] == SpanKind.SERVER and row["parent_span_id"] is None
    assert typed_attributes(row["attributes"], row["attribute_types"]) == {
        "http.status_code": "200",
        "http.url": "http://orders/api?x=1",
        "retries": "0",
        "ok": "true",
        "net.peer.ip": "10.0.0.3",
    }
    assert row["resource"] == [("service.name", "orders-api"), ("net.host.ip", "2001:db8::c001")]
    assert row["status_code"] == StatusCode.UNSET and row["status_message"] is None


def test_64_bit_trace_ids_are_left_padded_to_128_bits() -> None:
    row = only_row(span(traceId=TRACE64))
    assert row["trace_id"] == bytes(8) + bytes.fromhex(TRACE64)
    assert row["trace_id"].hex() == "0" * 16 + TRACE64
    assert only_row(span(traceId="0" * 16 + TRACE64))["trace_id"] == row["trace_id"]
    # The high half may be zero, the low half too, as long as the id is not all zero.
    assert only_row(span(traceId=TRACE64 + "0" * 16))["trace_id"] == bytes.fromhex(TRACE64) + bytes(8)
    assert only_row(span(traceId=TRACE64.upper()))["trace_id"] == row["trace_id"]


def test_defaults_for_missing_fields() -> None:
    row = only_row(
        {"traceId": TRACE, "id": SPAN, "timestamp": START_US}  # no name, kind, duration, endpoints, tags
    )
    assert row["name"] == "" and row["kind"] == SpanKind.INTERNAL and row["duration_ns"] == 0
    assert row["service"] == UNKNOWN_SERVICE and row["resource"] == [] and row["attributes"] == []
    assert row["events"] == [] and row["status_code"] == StatusCode.UNSET
    row = only_row(
        span(localEndpoint={"ipv4": "10.1.1.1"}, parentId="0000000000000000", shared=False, debug=False)
    )
    assert row["service"] == UNKNOWN_SERVICE and row["resource"] == [("net.host.ip", "10.1.1.1")]
    assert row["parent_span_id"] is None and row["attributes"] == []


def test_a_negative_duration_is_read_as_0_as_zipkin_reads_it() -> None:
    result = decode(span(duration=-1), span(id="00000000000000bb", duration=-250))
    assert result.rejected_spans == 0 and result.batch.column("duration_ns").to_pylist() == [0, 0]


def test_kinds() -> None:
    for name in ("CLIENT", "SERVER", "PRODUCER", "CONSUMER"):
        assert only_row(span(kind=name))["kind"] == SpanKind[name]
        assert only_row(span(kind=name.lower()))["kind"] == SpanKind[name]  # lax clients


def test_a_kind_zipkin_does_not_know_keeps_the_span_as_internal_with_its_text() -> None:
    """Zipkin's own server refuses the request; the Collector's and Jaeger's Zipkin receivers keep the span."""
    row = only_row(span(kind="SIDEWAYS"))
    assert row["kind"] == SpanKind.INTERNAL and ("zipkin.kind", "SIDEWAYS") in row["attributes"]


def test_service_names_are_kept_as_sent() -> None:
    assert only_row(span(localEndpoint={"serviceName": "Frontend-API"}))["service"] == "Frontend-API"


def test_error_tag_with_empty_value_still_marks_the_span_failed() -> None:
    row = only_row(span(tags={"error": ""}))
    assert row["status_code"] == StatusCode.ERROR and row["status_message"] is None
    assert row["attributes"] == []


@pytest.mark.parametrize(
    ("tags", "status", "message"),
    [
        # Brave and zipkin-js: the error tag's text is the description.
        ({"error": "connection refused"}, StatusCode.ERROR, "connection refused"),
        ({"error": "true"}, StatusCode.ERROR, None),
        ({"error": "TRUE"}, StatusCode.ERROR, None),
        # The OpenTelemetry mapping: "error" only for ERROR; a boolean false is no error.
        ({"error": "false"}, StatusCode.UNSET, None),
        (
            {"otel.status_code": "ERROR", "error": "inventory unavailable"},
            StatusCode.ERROR,
            "inventory unavailable",
        ),
        ({"otel.status_code": "ERROR", "error": ""}, StatusCode.ERROR, None),
        ({"otel.status_code": "OK"}, StatusCode.OK, None),
        # Older OpenTelemetry exporters, and the Collector: otel.status_description.
        ({"otel.status_code": "ERROR", "otel.status_description": "timeout"}, StatusCode.ERROR, "timeout"),
        ({"otel.status_code": "STATUS_CODE_ERROR"}, StatusCode.ERROR, None),
        ({"otel.status_code": "OK", "otel.status_description": "ignored"}, StatusCode.OK, None),
        # Zipkin treats any span with an error tag as failed, whatever otel.status_code says.
        ({"otel.status_code": "OK", "error": "late failure"}, StatusCode.ERROR, "late failure"),
        ({"otel.status_code": "bogus"}, StatusCode.UNSET, None),
    ],
)
def test_status_tags_become_the_status_and_only_the_status(
    tags: dict[str, str], status: StatusCode, message: str | None
) -> None:
    """The OpenTelemetry Zipkin mapping read backwards, as the Collector's Zipkin receiver does: the tags that
    carry the status are not also attributes, so every API shows the failure once."""
    row = only_row(span(tags={**tags, "http.path": "/cart"}))
    assert (row["status_code"], row["status_message"]) == (status, message)
    assert row["attributes"] == [("http.path", "/cart")]


def test_the_server_half_of_a_shared_span_gets_its_own_id_under_the_client_half() -> None:
    """B3 "join": the server records its half under the client's span id, marked shared. Stored, it has an id
    of its own (the same whichever request or receiver brings it) and the client half as its parent."""
    client = span(id=SPAN, parentId=PARENT, kind="CLIENT", localEndpoint={"serviceName": "frontend"})
    server = span(id=SPAN, parentId=PARENT, kind="SERVER", shared=True, localEndpoint={"serviceName": "cart"})
    client_row, server_row = decode(client, server).batch.to_pylist()
    assert (client_row["span_id"], client_row["parent_span_id"]) == (
        bytes.fromhex(SPAN),
        bytes.fromhex(PARENT),
    )
    assert server_row["span_id"] == server_half_id(bytes.fromhex(SPAN)) != bytes.fromhex(SPAN)
    assert server_row["parent_span_id"] == bytes.fromhex(SPAN)
    assert dict(server_row["attributes"])["zipkin.shared"] == "true"
    (alone,) = decode(server).batch.to_pylist()
    assert alone["span_id"] == server_row["span_id"]
    # A root client half: the server half's parent is still the client half.
    (root_server,) = decode(span(id=SPAN, kind="SERVER", shared=True)).batch.to_pylist()
    assert root_server["parent_span_id"] == bytes.fromhex(SPAN)


def test_only_a_shared_server_half_is_renamed() -> None:
    unshared = only_row(span(id=SPAN, parentId=PARENT, kind="SERVER", shared=False))
    assert (unshared["span_id"], unshared["parent_span_id"]) == (bytes.fromhex(SPAN), bytes.fromhex(PARENT))
    client = only_row(span(id=SPAN, parentId=PARENT, kind="CLIENT", shared=True))
    assert client["span_id"] == bytes.fromhex(SPAN)


def test_tags_win_over_attributes_derived_from_other_fields() -> None:
    row = only_row(span(tags={"peer.service": "from-tag"}, remoteEndpoint={"serviceName": "from-endpoint"}))
    assert row["attributes"] == [("peer.service", "from-tag")] and row["attribute_types"] == []


def test_lax_clients_numeric_tags_become_text() -> None:
    row = only_row(span(tags={"n": 5, "f": 0.5, "b": False}))
    assert row["attributes"] == [("n", "5"), ("f", "0.5"), ("b", "false")] and row["attribute_types"] == []


def test_empty_list_is_accepted() -> None:
    result = decode_zipkin_json(b"[]")
    assert (
        result.batch.num_rows == 0 and result.rejected_spans == 0 and result.batch.schema.equals(SPAN_SCHEMA)
    )


def test_html_in_names_and_tags_is_kept_verbatim() -> None:
    script = "<script>alert('x')</script>"
    row = only_row(span(name=script, localEndpoint={"serviceName": script}, tags={script: script}))
    assert row["name"] == script and row["service"] == script and row["attributes"] == [(script, script)]


def test_huge_values_are_truncated() -> None:
    row = only_row(
        span(
            name="ü" * 5000,
            localEndpoint={"serviceName": "s" * 9000},
            tags={"sql": "€" * 30_000, "error": "x" * 100_000},
            annotations=[{"timestamp": START_US, "value": "v" * 10_000}],
        )
    )
    assert row["name"] == "ü" * (MAX_NAME_BYTES // 2)
    assert row["service"] == "s" * MAX_NAME_BYTES
    assert dict(row["attributes"])["sql"] == "€" * (MAX_ATTRIBUTE_VALUE_BYTES // 3)
    assert row["status_message"] == "x" * MAX_ATTRIBUTE_VALUE_BYTES
    assert row["events"][0]["name"] == "v" * MAX_NAME_BYTES


def test_tags_past_the_limit_are_dropped() -> None:
    tags = {f"t{i}": str(i) for i in range(MAX_ATTRIBUTES_PER_SPAN + 10)}
    row = only_row(span(tags=tags, remoteEndpoint={"serviceName": "db"}))
    assert len(row["attributes"]) == MAX_ATTRIBUTES_PER_SPAN
    assert "peer.service" not in dict(row["attributes"])


@pytest.mark.parametrize(
    ("fields", "trace_id", "span_id", "parent_id"),
    [
        # Clients that print an id as a number drop its leading zeros; Zipkin reads them as if present.
        (
            {"traceId": "a1b2", "id": "c3", "parentId": "7"},
            "0" * 28 + "a1b2",
            "0" * 14 + "c3",
            "0" * 15 + "7",
        ),
        ({"traceId": TRACE[1:]}, "0" + TRACE[1:], SPAN, None),  # 31 digits: a 128-bit id
        ({"traceId": TRACE64[3:]}, "0" * 19 + TRACE64[3:], SPAN, None),  # 13 digits: a 64-bit id
        ({"parentId": "0"}, "0" * 16 + TRACE64, SPAN, None),  # a zero parent, however short, marks a root
    ],
)
def test_ids_with_fewer_digits_are_read_zero_padded(
    fields: dict[str, Any], trace_id: str, span_id: str, parent_id: str | None
) -> None:
    row = only_row(span(**fields))
    assert row["trace_id"].hex() == trace_id and row["span_id"].hex() == span_id
    assert (row["parent_span_id"].hex() if row["parent_span_id"] else None) == parent_id


def test_float_and_string_microseconds_are_accepted() -> None:
    row = only_row(span(timestamp=float(START_US) + 0.5, duration="12"))
    assert row["start_ns"] == START_US * 1000 + 500 and row["duration_ns"] == 12_000


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"traceId": "xyz"}, "traceId: expected 16 or 32 hex characters, got 'xyz'"),
        ({"traceId": TRACE + "00"}, "traceId: expected 16 or 32 hex characters"),
        ({"traceId": TRACE[:20] + "x"}, "traceId: expected 16 or 32 hex characters"),
        ({"traceId": "000"}, "traceId: all-zero id is invalid"),
        ({"traceId": "0" * 16}, "traceId: all-zero id is invalid"),
        ({"traceId": "0" * 32}, "traceId: all-zero id is invalid"),
        ({"traceId": ...}, "traceId: missing"),
        ({"traceId": 42}, "traceId: expected 16 or 32 hex characters, got 42"),
        ({"id": "0" * 16}, "id: all-zero id is invalid"),
        ({"id": SPAN + "1"}, "id: expected 16 hex characters"),
        ({"id": "0"}, "id: all-zero id is invalid"),
        ({"id": TRACE}, "id: expected 16 hex characters"),
        ({"parentId": "x"}, "parentId: expected 16 hex characters, got 'x'"),
        ({"timestamp": ...}, "timestamp: missing"),
        ({"timestamp": 0}, "timestamp: start time 0 is not after the epoch"),
        ({"timestamp": -5}, "timestamp: start time -5000 is not after the epoch"),
        ({"timestamp": 2**62 // 1000 + 1}, "timestamp: start time 4611686018427388000 is absurdly far"),
        ({"duration": 2**62 // 1000}, "duration: end time"),
        ({"annotations": [{"value": "ws"}]}, "annotations[0].timestamp: missing"),
        ({"annotations": [{"timestamp": -1, "value": "ws"}]}, "annotations[0].timestamp: time -1000 ns"),
    ],
)
def test_invalid_spans_are_rejected_and_the_rest_accepted(fields: dict[str, Any], reason: str) -> None:
    result = decode(span(), span(**fields), span(id="00000000000000bb"))
    assert result.batch.num_rows == 2 and result.rejected_spans == 1
    assert result.error_message.startswith(f"spans[1].{reason}"), result.error_message
    assert result.error_message.endswith("(1 of 3 spans rejected)")
    assert result.batch.column("span_id").to_pylist() == [
        bytes.fromhex(SPAN),
        bytes.fromhex("00000000000000bb"),
    ]

    with pytest.raises(DecodeError) as refused:
        decode_zipkin_json(orjson.dumps([span(**fields)]))
    assert str(refused.value).startswith(f"spans[0].{reason}")


def test_when_every_span_is_rejected_the_first_reason_is_given() -> None:
    with pytest.raises(
        DecodeError, match=r"^spans\[0\]\.id: all-zero id is invalid \(2 of 2 spans rejected\)$"
    ):
        decode_zipkin_json(orjson.dumps([span(id="0" * 16), span(traceId="xyz")]))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "invalid JSON"),
        (b"[{", "invalid JSON"),
        (b'{"traceId": "x"}', "expected a JSON array of Zipkin v2 spans, got an object"),
        (b"null", "expected a JSON array"),
        (b"[1]", "spans[0]: expected a span object, got 1"),
        (
            orjson.dumps([span(timestamp="soon")]),
            "spans[0].timestamp: expected an integer number of microseconds",
        ),
        (
            orjson.dumps([span(duration=True)]),
            "spans[0].duration: expected an integer number of microseconds",
        ),
        (orjson.dumps([span(), span(name=5)]), "spans[1].name: expected a string, got 5"),
        (orjson.dumps([span(kind=2)]), "spans[0].kind: expected a string, got 2"),
        (orjson.dumps([span(tags=["a"])]), "spans[0].tags: expected an object of string values"),
        (orjson.dumps([span(tags={"a": {"b": 1}})]), "spans[0].tags.a: expected a string, got an object"),
        (orjson.dumps([span(tags={"a": None})]), "spans[0].tags.a: expected a string, got null"),
        (orjson.dumps([span(localEndpoint="frontend")]), "spans[0].localEndpoint: expected an object"),
        (
            orjson.dumps([span(localEndpoint={"serviceName": 1})]),
            "spans[0].localEndpoint.serviceName: expected a",
        ),
        (
            orjson.dumps([span(remoteEndpoint={"port": "80"})]),
            "spans[0].remoteEndpoint.port: expected an integer",
        ),
        (
            orjson.dumps([span(remoteEndpoint={"ipv4": ["x"]})]),
            "spans[0].remoteEndpoint.ipv4: expected a string",
        ),
        (orjson.dumps([span(annotations={})]), "spans[0].annotations: expected an array"),
        (orjson.dumps([span(annotations=["ws"])]), "spans[0].annotations[0]: expected an object"),
        (
            orjson.dumps([span(annotations=[{"timestamp": 1, "value": 2}])]),
            "spans[0].annotations[0].value: expected",
        ),
        (orjson.dumps([span(shared="yes")]), "spans[0].shared: expected true or false"),
        (orjson.dumps([span(debug=1)]), "spans[0].debug: expected true or false"),
    ],
)
def test_malformed_requests_are_refused_naming_the_problem(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError) as refused:
        decode_zipkin_json(data)
    assert message in str(refused.value)


def test_endpoints_are_decoded_once_per_distinct_endpoint_but_each_span_keeps_its_own() -> None:
    spans = [
        span(id=f"{i + 1:016x}", localEndpoint={"serviceName": f"svc{i % 3}", "port": 80 + i % 3})
        for i in range(9)
    ]
    rows = decode(*spans).batch.to_pylist()
    assert [row["service"] for row in rows] == [f"svc{i % 3}" for i in range(9)]
    assert [dict(row["resource"])["net.host.port"] for row in rows] == [str(80 + i % 3) for i in range(9)]


def test_ports_out_of_range_are_dropped() -> None:
    row = only_row(span(localEndpoint={"serviceName": "a", "port": 70000}, remoteEndpoint={"port": -1}))
    assert row["resource"] == [("service.name", "a")] and row["attributes"] == []
