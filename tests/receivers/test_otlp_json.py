"""The OTLP/JSON decoder: bodies written by hand as SDKs send them, and bodies made from the real protobuf messages."""

from __future__ import annotations

import base64
import math
from typing import Any, cast

import orjson
import pytest
from google.protobuf.json_format import MessageToDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from spyglass.model.attributes import typed_attributes
from spyglass.model.builder import encode_attributes
from spyglass.model.schema import SPAN_SCHEMA, UNKNOWN_SERVICE, ValueType
from spyglass.receivers.decoders.limits import (
    MAX_ATTRIBUTE_VALUE_BYTES,
    MAX_ATTRIBUTES_PER_SPAN,
    MAX_NAME_BYTES,
    MAX_NESTING_DEPTH,
)
from spyglass.receivers.decoders.otlp_json import decode_otlp_json
from spyglass.receivers.decoders.result import DecodeError, DecodeResult

TRACE = "5b8efff798038103d269b633813fc60c"
SPAN = "eee19b7ec3c1b174"
PARENT = "eee19b7ec3c1b173"
START = 1_700_000_000_000_000_000


def body(*spans: dict[str, Any], resource: list[dict[str, Any]] | None = None, scope: Any = None) -> bytes:
    """One resource, one scope, these spans: the shape every SDK exporter sends."""
    resource_attrs = resource if resource is not None else [attr("service.name", {"stringValue": "checkout"})]
    scope_spans: dict[str, Any] = {"spans": list(spans)}
    if scope is not None:
        scope_spans["scope"] = scope
    return orjson.dumps(
        {"resourceSpans": [{"resource": {"attributes": resource_attrs}, "scopeSpans": [scope_spans]}]}
    )


def attr(key: str, value: Any) -> dict[str, Any]:
    return {"key": key, "value": value}


def span(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "traceId": TRACE,
        "spanId": SPAN,
        "name": "GET /cart",
        "kind": 2,
        "startTimeUnixNano": str(START),
        "endTimeUnixNano": str(START + 1_500_000),
    }
    base.update(fields)
    return {key: value for key, value in base.items() if value is not ...}


def decode(data: bytes) -> DecodeResult:
    result = decode_otlp_json(data)
    assert result.batch.schema.equals(SPAN_SCHEMA)
    result.batch.validate(full=True)
    return result


def only_row(data: bytes) -> dict[str, Any]:
    result = decode(data)
    assert result.rejected_spans == 0 and result.error_message == ""
    rows = result.batch.to_pylist()
    assert len(rows) == 1
    return cast("dict[str, Any]", rows[0])


# -- field mapping ----------------------------------------------------------------------------------------------


def test_every_field_maps_exactly() -> None:
    data = body(
        span(
            parentSpanId=PARENT,
            traceState="vendor=abc,other=1",
            name="POST /checkout",
            kind=3,
            attributes=[
                attr("http.method", {"stringValue": "POST"}),
                attr("http.status_code", {"intValue": "502"}),
                attr("retry", {"boolValue": True}),
                attr("ratio", {"doubleValue": 0.25}),
                attr("tags", {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": 2}]}}),
                attr("ctx", {"kvlistValue": {"values": [attr("user", {"stringValue": "u1"})]}}),
                attr("blob", {"bytesValue": base64.b64encode(b"\x00\x01\xff").decode()}),
            ],
            events=[
                {
                    "timeUnixNano": str(START + 10),
                    "name": "exception",
                    "attributes": [attr("exception.type", {"stringValue": "ValueError"})],
                }
            ],
            links=[
                {
                    "traceId": "0af7651916cd43dd8448eb211c80319c",
                    "spanId": "b7ad6b7169203331",
                    "traceState": "k=v",
                    "attributes": [attr("why", {"stringValue": "retry"})],
                }
            ],
            status={"code": 2, "message": "upstream failed"},
            flags=257,
            droppedAttributesCount=3,
        ),
        resource=[
            attr("service.name", {"stringValue": "checkout"}),
            attr("service.version", {"stringValue": "1.4.2"}),
            attr("host.cpu.count", {"intValue": 8}),
        ],
        scope={"name": "opentelemetry.instrumentation.flask", "version": "0.48b0", "attributes": []},
    )
    row = only_row(data)
    assert row == {
        "trace_id": bytes.fromhex(TRACE),
        "span_id": bytes.fromhex(SPAN),
        "parent_span_id": bytes.fromhex(PARENT),
        "trace_state": "vendor=abc,other=1",
        "service": "checkout",
        "name": "POST /checkout",
        "kind": 3,
        "start_ns": START,
        "duration_ns": 1_500_000,
        "status_code": 2,
        "status_message": "upstream failed",
        "attributes": [
            ("http.method", "POST"),
            ("http.status_code", "502"),
            ("retry", "true"),
            ("ratio", "0.25"),
            ("tags", '["a",2]'),
            ("ctx", '{"user":"u1"}'),
            ("blob", "AAH/"),
        ],
        "attribute_types": [
            ("http.status_code", ValueType.INT),
            ("retry", ValueType.BOOL),
            ("ratio", ValueType.DOUBLE),
            ("tags", ValueType.ARRAY),
            ("ctx", ValueType.KVLIST),
            ("blob", ValueType.BYTES),
        ],
        "resource": [("service.name", "checkout"), ("service.version", "1.4.2"), ("host.cpu.count", "8")],
        "resource_types": [("host.cpu.count", ValueType.INT)],
        "scope_name": "opentelemetry.instrumentation.flask",
        "scope_version": "0.48b0",
        "events": [
            {
                "time_ns": START + 10,
                "name": "exception",
                "attributes": [("exception.type", "ValueError")],
                "attribute_types": [],
            }
        ],
        "links": [
            {
                "trace_id": bytes.fromhex("0af7651916cd43dd8448eb211c80319c"),
                "span_id": bytes.fromhex("b7ad6b7169203331"),
                "trace_state": "k=v",
                "attributes": [("why", "retry")],
                "attribute_types": [],
            }
        ],
    }
    assert typed_attributes(row["attributes"], row["attribute_types"]) == {
        "http.method": "POST",
        "http.status_code": 502,
        "retry": True,
        "ratio": 0.25,
        "tags": ["a", 2],
        "ctx": {"user": "u1"},
        "blob": "AAH/",
    }


def test_minimal_span_gets_defaults() -> None:
    row = only_row(
        orjson.dumps(
            {
                "resourceSpans": [
                    {
                        "scopeSpans": [
                            {
                                "spans": [
                                    {
                                        "traceId": TRACE,
                                        "spanId": SPAN,
                                        "startTimeUnixNano": START,
                                        "endTimeUnixNano": START,
                                    }
                                ]
                            }
                        ]
                    }
                ]
            }
        )
    )
    assert row["service"] == UNKNOWN_SERVICE
    assert row["name"] == "" and row["kind"] == 0 and row["duration_ns"] == 0
    assert row["parent_span_id"] is None and row["trace_state"] is None
    assert row["status_code"] == 0 and row["status_message"] is None
    assert row["attributes"] == [] and row["resource"] == [] and row["events"] == [] and row["links"] == []
    assert row["scope_name"] is None and row["scope_version"] is None


def test_attributes_are_encoded_as_encode_attributes_does() -> None:
    values: list[tuple[str, Any]] = [
        ("s", "text"),
        ("i", -(2**63)),
        ("big", 2**63 - 1),
        ("zero", 0),
        ("f", 1e300),
        ("whole", 2.0),
        ("t", False),
        ("b", b"\x00\xfe"),
        ("arr", [1, "x", True, 2.5, None]),
        ("kv", {"a": [1, {"b": None}]}),
    ]

    def any_value(value: Any) -> dict[str, Any]:
        if value is None:
            return {}
        if isinstance(value, bool):
            return {"boolValue": value}
        if isinstance(value, int):
            return {"intValue": str(value)}
        if isinstance(value, float):
            return {"doubleValue": value}
        if isinstance(value, bytes):
            return {"bytesValue": base64.b64encode(value).decode()}
        if isinstance(value, list):
            return {"arrayValue": {"values": [any_value(v) for v in value]}}
        if isinstance(value, dict):
            return {"kvlistValue": {"values": [attr(k, any_value(v)) for k, v in value.items()]}}
        return {"stringValue": value}

    row = only_row(body(span(attributes=[attr(k, any_value(v)) for k, v in values])))
    assert (row["attributes"], row["attribute_types"]) == encode_attributes(values)


def test_int64_as_numbers_or_strings_and_snake_case_names() -> None:
    snake = {
        "resource_spans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"string_value": "legacy"}}]},
                "scope_spans": [
                    {
                        "scope": {"name": "lib"},
                        "spans": [
                            {
                                "trace_id": TRACE,
                                "span_id": SPAN,
                                "parent_span_id": PARENT,
                                "trace_state": "a=b",
                                "name": "op",
                                "kind": "SPAN_KIND_CONSUMER",
                                "start_time_unix_nano": START,
                                "end_time_unix_nano": str(START + 7),
                                "attributes": [
                                    {"key": "n", "value": {"int_value": 5}},
                                    {"key": "d", "value": {"double_value": "NaN"}},
                                    {
                                        "key": "arr",
                                        "value": {"array_value": {"values": [{"bool_value": True}]}},
                                    },
                                ],
                                "events": [{"time_unix_nano": START + 1, "name": "e"}],
                                "links": [{"trace_id": TRACE, "span_id": PARENT, "trace_state": "x=y"}],
                                "status": {"code": "STATUS_CODE_OK"},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    row = only_row(orjson.dumps(snake))
    assert row["service"] == "legacy" and row["scope_name"] == "lib"
    assert row["parent_span_id"] == bytes.fromhex(PARENT) and row["trace_state"] == "a=b"
    assert row["kind"] == 5 and row["status_code"] == 1
    assert (row["start_ns"], row["duration_ns"]) == (START, 7)
    assert row["attributes"] == [("n", "5"), ("d", "nan"), ("arr", "[true]")]
    assert row["events"][0]["time_ns"] == START + 1
    assert row["links"][0]["span_id"] == bytes.fromhex(PARENT) and row["links"][0]["trace_state"] == "x=y"


def test_root_span_parent_forms() -> None:
    for parent in ("", None, "0000000000000000"):
        assert only_row(body(span(parentSpanId=parent)))["parent_span_id"] is None
    assert only_row(body(span(parentSpanId=PARENT.upper())))["parent_span_id"] == bytes.fromhex(PARENT)


def test_unknown_fields_nulls_and_empty_values_are_ignored() -> None:
    row = only_row(
        body(
            span(
                futureField={"x": [1, 2]},
                status=None,
                attributes=[
                    attr("empty", {}),
                    {"key": "no value"},
                    attr("null", {"stringValue": None}),
                    attr("kept", {"stringValue": "v", "futureValue": 1}),
                ],
            )
        )
    )
    assert row["attributes"] == [("kept", "v")]


def test_duplicate_keys_keep_the_last_value() -> None:
    row = only_row(
        body(
            span(
                attributes=[
                    attr("k", {"intValue": 1}),
                    attr("other", {"stringValue": "o"}),
                    attr("k", {"stringValue": "last"}),
                ]
            )
        )
    )
    assert row["attributes"] == [("k", "last"), ("other", "o")] and row["attribute_types"] == []


def test_empty_requests_are_fine() -> None:
    for data in (b"{}", b'{"resourceSpans": []}', b'{"resourceSpans": [{"scopeSpans": [{"spans": []}]}]}'):
        result = decode(data)
        assert result.batch.num_rows == 0 and result.rejected_spans == 0


def test_html_and_sql_in_names_are_kept_verbatim() -> None:
    name = "<script>alert('x')</script> '; DROP TABLE spans; --"
    row = only_row(
        body(
            span(name=name, attributes=[attr("q", {"stringValue": name})]),
            resource=[attr("service.name", {"stringValue": "<b>svc</b>"})],
        )
    )
    assert row["name"] == name and row["service"] == "<b>svc</b>" and row["attributes"] == [("q", name)]


# -- limits -----------------------------------------------------------------------------------------------------


def test_huge_values_and_names_are_truncated_on_character_boundaries() -> None:
    euro = "€" * 30_000  # 90 000 bytes of three-byte characters
    row = only_row(
        body(
            span(
                name="n" * (MAX_NAME_BYTES - 1) + "€",
                attributes=[attr("sql", {"stringValue": euro}), attr("k" * 5000, {"stringValue": "v"})],
                events=[{"timeUnixNano": START, "name": "é" * 3000}],
            ),
            resource=[attr("service.name", {"stringValue": "s" * 10_000})],
        )
    )
    value = dict(row["attributes"])["sql"]
    assert value == "€" * (MAX_ATTRIBUTE_VALUE_BYTES // 3)
    assert len(value.encode()) <= MAX_ATTRIBUTE_VALUE_BYTES
    assert row["name"] == "n" * (MAX_NAME_BYTES - 1)
    assert row["service"] == "s" * MAX_NAME_BYTES
    assert ("k" * MAX_NAME_BYTES, "v") in row["attributes"]
    assert row["events"][0]["name"] == "é" * (MAX_NAME_BYTES // 2)


def test_attributes_past_the_limit_are_dropped() -> None:
    attributes = [attr(f"k{i}", {"intValue": i}) for i in range(MAX_ATTRIBUTES_PER_SPAN + 500)]
    row = only_row(body(span(attributes=attributes)))
    assert len(row["attributes"]) == MAX_ATTRIBUTES_PER_SPAN
    assert row["attributes"][-1] == (f"k{MAX_ATTRIBUTES_PER_SPAN - 1}", str(MAX_ATTRIBUTES_PER_SPAN - 1))


def nested(depth: int) -> dict[str, Any]:
    """An AnyValue with ``depth`` arrays and kvlists around a string."""
    value: dict[str, Any] = {"stringValue": "bottom"}
    for level in range(depth):
        if level % 2:
            value = {"arrayValue": {"values": [value]}}
        else:
            value = {"kvlistValue": {"values": [attr("k", value)]}}
    return value


def test_nesting_up_to_the_limit_is_accepted_and_deeper_rejects_the_span() -> None:
    row = only_row(body(span(attributes=[attr("deep", nested(MAX_NESTING_DEPTH))])))
    assert dict(row["attribute_types"])["deep"] in (ValueType.ARRAY, ValueType.KVLIST)

    too_deep = span(spanId="00000000000000aa", attributes=[attr("deep", nested(MAX_NESTING_DEPTH + 1))])
    result = decode(body(span(), too_deep))
    assert result.batch.num_rows == 1 and result.rejected_spans == 1
    assert (
        "spans[1].attributes[0].value" in result.error_message
        and "nested deeper than 16" in result.error_message
    )


def test_hostile_nesting_fails_cleanly() -> None:
    # 300 arrays (900 JSON levels): orjson parses it, and the depth limit stops the decoder long before
    # Python's stack could be at risk.
    levels = 300
    deep = b'{"arrayValue":{"values":[' * levels + b'{"stringValue":"x"}' + b"]}}" * levels
    data = body(span(attributes=[attr("deep", {"stringValue": "PLACEHOLDER"})]))
    data = data.replace(b'{"stringValue":"PLACEHOLDER"}', deep)
    with pytest.raises(DecodeError, match="nested deeper"):
        decode_otlp_json(data)
    # Past orjson's own limit the body is not even parsed.
    with pytest.raises(DecodeError, match="invalid JSON"):
        decode_otlp_json(b'{"resourceSpans":' + b"[" * 100_000 + b"]" * 100_000 + b"}")


def test_deep_nesting_in_the_resource_rejects_its_spans() -> None:
    bad = orjson.loads(body(span(), resource=[attr("deep", nested(MAX_NESTING_DEPTH + 1))]))
    good = orjson.loads(body(span()))
    request = {"resourceSpans": good["resourceSpans"] + bad["resourceSpans"]}
    result = decode(orjson.dumps(request))
    assert result.batch.num_rows == 1 and result.rejected_spans == 1
    assert result.error_message.startswith("resourceSpans[1].resource.attributes[0].value")


# -- validation -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"traceId": "xyz"}, "traceId: expected 32 hex characters, got 'xyz'"),
        ({"traceId": "0" * 32}, "traceId: all-zero id is invalid"),
        ({"traceId": TRACE[:-1] + "g"}, "traceId: expected 32 hex characters"),
        ({"traceId": " " + TRACE[1:]}, "traceId: expected 32 hex characters"),
        ({"traceId": base64.b64encode(bytes.fromhex(TRACE)).decode()}, "traceId: expected 32 hex characters"),
        ({"traceId": ...}, "traceId: missing"),
        ({"spanId": "0" * 16}, "spanId: all-zero id is invalid"),
        ({"spanId": SPAN + "00"}, "spanId: expected 16 hex characters"),
        ({"spanId": 12}, "spanId: expected 16 hex characters, got 12"),
        ({"parentSpanId": "abc"}, "parentSpanId: expected 16 hex characters, got 'abc'"),
        ({"startTimeUnixNano": "-5"}, "startTimeUnixNano: start time -5 is not after the epoch"),
        ({"startTimeUnixNano": ...}, "startTimeUnixNano: start time 0"),
        ({"endTimeUnixNano": str(2**64 - 1)}, "endTimeUnixNano: end time 18446744073709551615 is absurdly"),
        ({"endTimeUnixNano": 1e30}, "endTimeUnixNano"),
        (
            {"startTimeUnixNano": str(2**62)},
            "startTimeUnixNano: start time 4611686018427387904 is absurdly far",
        ),
        (
            {"startTimeUnixNano": "9" * 40},
            "startTimeUnixNano: start time (more than 30 digits) is absurdly far",
        ),
        ({"kind": 9}, "kind: unknown value 9"),
        ({"kind": "SPAN_KIND_WEIRD"}, "kind: unknown value 'SPAN_KIND_WEIRD'"),
        ({"status": {"code": 7}}, "status.code: unknown value 7"),
        (
            {"attributes": [attr("n", {"intValue": str(2**63)})]},
            "attributes[0].value.intValue: 9223372036854775808",
        ),
        (
            {"attributes": [attr("b", {"bytesValue": "!!!"})]},
            "attributes[0].value.bytesValue: invalid base64",
        ),
        ({"events": [{"timeUnixNano": "-1", "name": "e"}]}, "events[0].timeUnixNano"),
        ({"links": [{"traceId": TRACE, "spanId": "nope"}]}, "links[0].spanId: expected 16 hex characters"),
    ],
)
def test_invalid_spans_are_rejected_and_the_rest_accepted(fields: dict[str, Any], reason: str) -> None:
    good = span()
    bad = span(**fields)
    result = decode(body(good, bad, span(spanId="00000000000000bb")))
    assert result.batch.num_rows == 2 and result.rejected_spans == 1
    assert result.error_message.startswith("resourceSpans[0].scopeSpans[0].spans[1].")
    assert reason in result.error_message
    assert "(1 of 3 spans rejected)" in result.error_message
    assert result.batch.column("span_id").to_pylist() == [
        bytes.fromhex(SPAN),
        bytes.fromhex("00000000000000bb"),
    ]

    with pytest.raises(DecodeError) as refused:
        decode_otlp_json(body(bad))
    assert reason in str(refused.value) and "(1 of 1 spans rejected)" in str(refused.value)


def test_a_span_that_ended_before_it_started_is_kept_lasting_0_with_a_warning() -> None:
    """A wall clock stepped back between a span's start and end, or an end never set: the span is kept with
    duration 0, and the answer is a partial success rejecting nothing, which OTLP reads as a warning."""
    result = decode(
        body(span(), span(endTimeUnixNano=str(START - 5)), span(spanId="0" * 15 + "b", endTimeUnixNano="0"))
    )
    assert result.batch.num_rows == 3 and result.rejected_spans == 0
    assert result.batch.column("duration_ns").to_pylist()[1:] == [0, 0]
    assert result.batch.column("start_ns").to_pylist() == [START] * 3
    assert result.error_message == (
        "resourceSpans[0].scopeSpans[0].spans[1]: endTimeUnixNano before startTimeUnixNano: kept with duration 0"
        " (2 of 3 spans)"
    )
    rejected = decode(body(span(endTimeUnixNano=str(START - 5)), span(traceId="xyz")))
    assert rejected.rejected_spans == 1 and "traceId" in rejected.error_message  # a rejection is told first


def test_when_every_span_is_rejected_the_first_reason_is_given() -> None:
    with pytest.raises(
        DecodeError,
        match=r"^resourceSpans\[0\]\.scopeSpans\[0\]\.spans\[0\]\.traceId: expected 32 hex .*'xyz'",
    ):
        decode_otlp_json(body(span(traceId="xyz"), span(spanId="0" * 16)))


def test_partial_success_counts_across_resources_and_scopes() -> None:
    request = {
        "resourceSpans": [
            {"scopeSpans": [{"spans": [span(), span(traceId="bad")]}, {"spans": [span(spanId="1" * 16)]}]},
            {
                "scopeSpans": [
                    {"spans": [span(spanId="0"), span(spanId="2" * 16), span(startTimeUnixNano="0")]}
                ]
            },
        ]
    }
    result = decode(orjson.dumps(request))
    assert result.batch.num_rows == 3 and result.rejected_spans == 3
    assert result.error_message.startswith("resourceSpans[0].scopeSpans[0].spans[1].traceId")
    assert "(3 of 6 spans rejected)" in result.error_message


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "invalid JSON"),
        (b"{not json", "invalid JSON"),
        (b"\xff\xfe", "invalid JSON"),
        (b"[]", "expected a JSON object"),
        (b"null", "expected a JSON object"),
        (b'{"resourceSpans": "nope"}', "resourceSpans: expected an array, got 'nope'"),
        (b'{"resourceSpans": [7]}', "resourceSpans[0]: expected an object, got 7"),
        (b'{"resourceSpans": [{"scopeSpans": {}}]}', "resourceSpans[0].scopeSpans: expected an array"),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": "x"}]}]}',
            "resourceSpans[0].scopeSpans[0].spans: expected",
        ),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [[]]}]}]}',
            "spans[0]: expected a span object, got an array",
        ),
        (b'{"resourceSpans": [{"resource": []}]}', "resourceSpans[0].resource: expected an object"),
        (
            b'{"resourceSpans": [{"resource": {"attributes": {}}}]}',
            "resourceSpans[0].resource.attributes: expected",
        ),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"scope": {"name": 1}}]}]}',
            "scopeSpans[0].scope.name: expected a",
        ),
    ],
)
def test_malformed_requests_are_refused_naming_the_problem(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError) as refused:
        decode_otlp_json(data)
    assert message in str(refused.value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"startTimeUnixNano": "abc"}, "spans[0].startTimeUnixNano: expected an integer, got 'abc'"),
        ({"endTimeUnixNano": True}, "spans[0].endTimeUnixNano: expected an integer, got true"),
        ({"endTimeUnixNano": 1.5}, "spans[0].endTimeUnixNano: expected an integer, got 1.5"),
        ({"name": ["x"]}, "spans[0].name: expected a string, got an array"),
        ({"kind": 2.0}, "spans[0].kind: expected an integer enum value"),
        ({"status": "ERROR"}, "spans[0].status: expected an object"),
        ({"traceState": 5}, "spans[0].traceState: expected a string"),
        ({"attributes": "a=b"}, "spans[0].attributes: expected an array, got 'a=b'"),
        ({"attributes": [["k", "v"]]}, "spans[0].attributes[0]: expected a KeyValue object"),
        ({"attributes": [{"key": 1, "value": {}}]}, "spans[0].attributes[0].key: expected a string, got 1"),
        ({"attributes": [attr("k", "v")]}, "spans[0].attributes[0].value: expected an AnyValue object"),
        (
            {"attributes": [attr("k", {"intValue": "x"})]},
            "spans[0].attributes[0].value.intValue: expected an int",
        ),
        (
            {"attributes": [attr("k", {"boolValue": "true"})]},
            "attributes[0].value.boolValue: expected true or false",
        ),
        (
            {"attributes": [attr("k", {"stringValue": 5})]},
            "attributes[0].value.stringValue: expected a string",
        ),
        (
            {"attributes": [attr("k", {"doubleValue": "fast"})]},
            "attributes[0].value.doubleValue: expected a number",
        ),
        (
            {"attributes": [attr("k", {"arrayValue": []})]},
            "attributes[0].value.arrayValue: expected an object",
        ),
        (
            {"attributes": [attr("k", {"arrayValue": {"values": [1]}})]},
            "attributes[0].value.arrayValue.values[0].value: expected an AnyValue object, got 1",
        ),
        ({"events": {}}, "spans[0].events: expected an array"),
        ({"events": [{"timeUnixNano": "now"}]}, "spans[0].events[0].timeUnixNano: expected an integer"),
        ({"links": [5]}, "spans[0].links[0]: expected an object"),
    ],
)
def test_wrong_types_inside_a_span_refuse_the_request(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(DecodeError) as refused:
        decode_otlp_json(body(span(), span(**fields)))
    assert message.replace("spans[0]", "spans[1]") in str(refused.value)


def test_messages_do_not_echo_huge_values() -> None:
    with pytest.raises(DecodeError) as refused:
        decode_otlp_json(body(span(traceId="A" * 100_000)))
    assert len(str(refused.value)) < 300


# -- bodies made from the real protobuf messages ---------------------------------------------------------------


def to_otlp_json(request: ExportTraceServiceRequest, **options: Any) -> bytes:
    """``MessageToDict`` writes ids as base64; the OTLP spec wants hex."""
    document = MessageToDict(request, **options)
    id_keys = {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}

    def fix(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in id_keys and isinstance(value, str):
                    node[key] = base64.b64decode(value).hex()
                else:
                    fix(value)
        elif isinstance(node, list):
            for item in node:
                fix(item)

    fix(document)
    return orjson.dumps(document)


def kv(key: str, value: AnyValue) -> KeyValue:
    return KeyValue(key=key, value=value)


def sample_request() -> ExportTraceServiceRequest:
    root = Span(
        trace_id=bytes.fromhex(TRACE),
        span_id=bytes.fromhex(PARENT),
        name="GET /",
        kind=Span.SPAN_KIND_SERVER,
        start_time_unix_nano=START,
        end_time_unix_nano=START + 2_000,
        attributes=[
            kv("http.route", AnyValue(string_value="/")),
            kv("http.status_code", AnyValue(int_value=200)),
            kv("weights", AnyValue(array_value=ArrayValue(values=[AnyValue(double_value=0.5)]))),
            kv("raw", AnyValue(bytes_value=b"\x01\x02")),
        ],
        events=[
            Span.Event(time_unix_nano=START + 5, name="started", attributes=[kv("n", AnyValue(int_value=1))])
        ],
        status=Status(code=Status.STATUS_CODE_OK),
    )
    child = Span(
        trace_id=bytes.fromhex(TRACE),
        span_id=bytes.fromhex(SPAN),
        parent_span_id=bytes.fromhex(PARENT),
        trace_state="congo=t61rcWkgMzE",
        name="SELECT",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=START + 10,
        end_time_unix_nano=START + 1_010,
        attributes=[
            kv(
                "db",
                AnyValue(
                    kvlist_value=KeyValueList(
                        values=[
                            kv("system", AnyValue(string_value="postgresql")),
                            kv("ok", AnyValue(bool_value=True)),
                        ]
                    )
                ),
            )
        ],
        links=[
            Span.Link(trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319c"), span_id=bytes.fromhex(SPAN))
        ],
        status=Status(code=Status.STATUS_CODE_ERROR, message="timeout"),
    )
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=[kv("service.name", AnyValue(string_value="frontend"))]),
                scope_spans=[
                    ScopeSpans(
                        scope=InstrumentationScope(name="otel.flask", version="1.0"), spans=[root, child]
                    )
                ],
            )
        ]
    )


@pytest.mark.parametrize(
    "options",
    [{}, {"use_integers_for_enums": True}, {"preserving_proto_field_name": True}],
    ids=["camelCase-enum-names", "integer-enums", "snake_case"],
)
def test_bodies_from_protobuf_json_format(options: dict[str, Any]) -> None:
    result = decode(to_otlp_json(sample_request(), **options))
    assert result.rejected_spans == 0
    assert result.batch.to_pylist() == expected_rows(sample_request())
    root, child = result.batch.to_pylist()
    assert root["attributes"] == [
        ("http.route", "/"),
        ("http.status_code", "200"),
        ("weights", "[0.5]"),
        ("raw", "AQI="),
    ]
    assert child["attributes"] == [("db", '{"system":"postgresql","ok":true}')]
    assert (child["kind"], child["status_code"], child["status_message"]) == (3, 2, "timeout")
    assert child["links"][0]["trace_id"] == bytes.fromhex("0af7651916cd43dd8448eb211c80319c")


def python_value(value: AnyValue, nested: bool = False) -> Any:
    """An independent reading of an ``AnyValue`` proto, as the decoder should read its JSON."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode() if nested else value.bytes_value
    if which == "array_value":
        return [python_value(v, True) for v in value.array_value.values]
    if which == "kvlist_value":
        return {item.key: python_value(item.value, True) for item in value.kvlist_value.values}
    return getattr(value, which)


def depth(value: AnyValue) -> int:
    which = value.WhichOneof("value")
    if which == "array_value":
        return 1 + max((depth(v) for v in value.array_value.values), default=0)
    if which == "kvlist_value":
        return 1 + max((depth(item.value) for item in value.kvlist_value.values), default=0)
    return 0


def expected_attributes(items: Any) -> tuple[list[Any], list[Any]]:
    values = {}
    for item in items:
        value = python_value(item.value)
        if value is not None:
            values[item.key] = value
    text, types = encode_attributes(values.items())
    return text, types


def expected_rows(request: ExportTraceServiceRequest) -> list[dict[str, Any]]:
    rows = []
    for resource_spans in request.resource_spans:
        resource = expected_attributes(resource_spans.resource.attributes)
        service = dict(resource[0]).get("service.name") or UNKNOWN_SERVICE
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                rows.append(
                    {
                        "trace_id": s.trace_id,
                        "span_id": s.span_id,
                        "parent_span_id": s.parent_span_id or None,
                        "trace_state": s.trace_state or None,
                        "service": service,
                        "name": s.name,
                        "kind": s.kind,
                        "start_ns": s.start_time_unix_nano,
                        "duration_ns": s.end_time_unix_nano - s.start_time_unix_nano,
                        "status_code": s.status.code,
                        "status_message": s.status.message or None,
                        "attributes": expected_attributes(s.attributes)[0],
                        "attribute_types": expected_attributes(s.attributes)[1],
                        "resource": resource[0],
                        "resource_types": resource[1],
                        "scope_name": scope_spans.scope.name or None,
                        "scope_version": scope_spans.scope.version or None,
                        "events": [
                            {
                                "time_ns": e.time_unix_nano,
                                "name": e.name,
                                "attributes": expected_attributes(e.attributes)[0],
                                "attribute_types": expected_attributes(e.attributes)[1],
                            }
                            for e in s.events
                        ],
                        "links": [
                            {
                                "trace_id": link.trace_id,
                                "span_id": link.span_id,
                                "trace_state": link.trace_state or None,
                                "attributes": expected_attributes(link.attributes)[0],
                                "attribute_types": expected_attributes(link.attributes)[1],
                            }
                            for link in s.links
                        ],
                    }
                )
    return rows


def any_values() -> st.SearchStrategy[AnyValue]:
    scalars = st.one_of(
        st.text(max_size=8).map(lambda v: AnyValue(string_value=v)),
        st.booleans().map(lambda v: AnyValue(bool_value=v)),
        st.integers(-(2**63), 2**63 - 1).map(lambda v: AnyValue(int_value=v)),
        st.floats(allow_nan=False).map(lambda v: AnyValue(double_value=v)),
        st.binary(max_size=8).map(lambda v: AnyValue(bytes_value=v)),
        st.just(AnyValue()),
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=3).map(lambda vs: AnyValue(array_value=ArrayValue(values=vs))),
            st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), children), max_size=3).map(
                lambda kvs: AnyValue(kvlist_value=KeyValueList(values=[kv(k, v) for k, v in kvs]))
            ),
        ),
        max_leaves=8,
    )


key_values = st.lists(
    st.builds(kv, st.sampled_from(["a", "b", "service.name", "k.x"]), any_values()), max_size=5
)
ids16 = st.binary(min_size=16, max_size=16).filter(any)
ids8 = st.binary(min_size=8, max_size=8).filter(any)


@st.composite
def proto_spans(draw: st.DrawFn) -> Span:
    start = draw(st.integers(1, 2**61))
    return Span(
        trace_id=draw(ids16),
        span_id=draw(ids8),
        parent_span_id=draw(st.one_of(st.just(b""), ids8)),
        trace_state=draw(st.sampled_from(["", "a=b"])),
        name=draw(st.text(max_size=10)),
        kind=draw(st.sampled_from(Span.SpanKind.values())),
        start_time_unix_nano=start,
        end_time_unix_nano=start + draw(st.integers(0, 10**12)),
        attributes=draw(key_values),
        events=draw(
            st.lists(
                st.builds(
                    Span.Event,
                    time_unix_nano=st.integers(0, 2**61),
                    name=st.text(max_size=5),
                    attributes=key_values,
                ),
                max_size=2,
            )
        ),
        links=draw(
            st.lists(st.builds(Span.Link, trace_id=ids16, span_id=ids8, attributes=key_values), max_size=2)
        ),
        status=Status(
            code=draw(st.sampled_from(Status.StatusCode.values())), message=draw(st.text(max_size=5))
        ),
    )


proto_requests = st.builds(
    ExportTraceServiceRequest,
    resource_spans=st.lists(
        st.builds(
            ResourceSpans,
            resource=st.builds(Resource, attributes=key_values),
            scope_spans=st.lists(
                st.builds(
                    ScopeSpans,
                    scope=st.builds(
                        InstrumentationScope, name=st.text(max_size=5), version=st.text(max_size=5)
                    ),
                    spans=st.lists(proto_spans(), max_size=3),
                ),
                max_size=2,
            ),
        ),
        max_size=2,
    ),
)


def too_deep(request: ExportTraceServiceRequest) -> bool:
    def attributes(items: Any) -> bool:
        return any(depth(item.value) > MAX_NESTING_DEPTH for item in items)

    for resource_spans in request.resource_spans:
        if attributes(resource_spans.resource.attributes):
            return True
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                if attributes(s.attributes) or any(attributes(e.attributes) for e in s.events):
                    return True
                if any(attributes(link.attributes) for link in s.links):
                    return True
    return False


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    proto_requests,
    st.sampled_from([{}, {"use_integers_for_enums": True}, {"preserving_proto_field_name": True}]),
)
def test_any_protobuf_request_decodes_to_what_it_says(
    request: ExportTraceServiceRequest, options: dict[str, bool]
) -> None:
    if too_deep(request):
        return
    result = decode(to_otlp_json(request, **options))
    assert result.rejected_spans == 0
    rows = result.batch.to_pylist()
    expected = expected_rows(request)
    assert len(rows) == len(expected)
    for row, want in zip(rows, expected, strict=True):
        assert row == want


def test_special_doubles() -> None:
    row = only_row(
        body(
            span(
                attributes=[
                    attr("inf", {"doubleValue": "Infinity"}),
                    attr("minf", {"doubleValue": "-Infinity"}),
                    attr("int", {"doubleValue": 3}),
                ]
            )
        )
    )
    values = dict(row["attributes"])
    assert math.isinf(float(values["inf"])) and values["minf"] == "-inf" and values["int"] == "3.0"


def test_real_sdk_spans_decode_as_the_protobuf_decoder_reads_them() -> None:
    """The same SDK spans, as OTLP/JSON and as protobuf, make the same batch (one model, two encodings)."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.trace import Link, SpanKind, StatusCode

    from spyglass.receivers.decoders.otlp_proto import decode_otlp_proto
    from tests.support.otel import otlp_json, record

    tracer, exporter, tracer_provider = record("payments", **{"service.version": "2.0", "host.cpu.count": 4})
    with tracer.start_as_current_span(
        "POST /pay",
        kind=SpanKind.SERVER,
        attributes={"http.status_code": 201, "ok": True, "tags": ["a", "b"]},
    ) as root:
        root.add_event("charged", {"amount": 12.5, "currency": "EUR"})
        with tracer.start_as_current_span(
            "<script>x</script>",
            kind=SpanKind.CLIENT,
            links=[Link(root.get_span_context(), {"why": "retry"})],
        ) as child:
            child.set_status(StatusCode.ERROR, "card declined")
    tracer_provider.shutdown()
    spans = list(exporter.get_finished_spans())

    from_json = decode(orjson.dumps(otlp_json(spans)))
    from_proto = decode_otlp_proto(encode_spans(spans).SerializeToString())
    assert from_json.rejected_spans == 0
    assert from_json.batch.to_pylist() == from_proto.batch.to_pylist()
    rows = {row["name"]: row for row in from_json.batch.to_pylist()}
    sdk_root = next(s for s in spans if s.name == "POST /pay")
    assert rows["POST /pay"]["trace_id"] == sdk_root.context.trace_id.to_bytes(16, "big")
    assert sdk_root.end_time is not None and sdk_root.start_time is not None
    assert rows["POST /pay"]["duration_ns"] == sdk_root.end_time - sdk_root.start_time
    assert rows["<script>x</script>"]["parent_span_id"] == sdk_root.context.span_id.to_bytes(8, "big")
    assert rows["<script>x</script>"]["service"] == "payments"
