"""``decode_zipkin_proto``: a span in Zipkin's protobuf encoding decodes exactly as the same span in Zipkin's JSON,
and no body makes it fail with anything but ``DecodeError``."""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from spyglass.model.schema import SpanKind
from spyglass.receivers.decoders.result import DecodeError, DecodeResult
from spyglass.receivers.decoders.zipkin_json import decode_zipkin_json
from spyglass.receivers.decoders.zipkin_proto import ListOfSpans, decode_zipkin_proto

START_US = 1_700_000_000_000_000
KINDS = {0: None, 1: "CLIENT", 2: "SERVER", 3: "PRODUCER", 4: "CONSUMER"}

endpoints = st.fixed_dictionaries(
    {},
    optional={
        "service_name": st.text(max_size=12),
        "ipv4": st.binary(min_size=4, max_size=4),
        "ipv6": st.binary(min_size=16, max_size=16),
        "port": st.integers(0, 70_000),
    },
)
spans = st.fixed_dictionaries(
    {
        "trace_id": st.sampled_from([8, 16]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
        "id": st.binary(min_size=8, max_size=8),
        "timestamp": st.integers(START_US, START_US + 10**9),
    },
    optional={
        "parent_id": st.binary(min_size=8, max_size=8),
        "kind": st.sampled_from(sorted(KINDS)),
        "name": st.text(max_size=20),
        "duration": st.integers(0, 10**7),
        "local_endpoint": endpoints,
        "remote_endpoint": endpoints,
        "annotations": st.lists(
            st.fixed_dictionaries({"timestamp": st.integers(START_US, START_US + 10**6), "value": st.text()}),
            max_size=3,
        ),
        "tags": st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=4),
        "debug": st.booleans(),
        "shared": st.booleans(),
    },
)


def as_json(span: dict[str, Any]) -> dict[str, Any]:
    """The span as Zipkin's JSON writes it: hex ids, text addresses, defaults left out."""
    import ipaddress

    out: dict[str, Any] = {
        "traceId": span["trace_id"].hex(),
        "id": span["id"].hex(),
        "timestamp": span["timestamp"],
    }
    if span.get("parent_id"):
        out["parentId"] = span["parent_id"].hex()
    if KINDS.get(span.get("kind", 0)):
        out["kind"] = KINDS[span["kind"]]
    if span.get("name"):
        out["name"] = span["name"]
    if span.get("duration"):
        out["duration"] = span["duration"]
    for field, key in (("local_endpoint", "localEndpoint"), ("remote_endpoint", "remoteEndpoint")):
        if field in span:
            endpoint = span[field]
            json: dict[str, Any] = {}
            if endpoint.get("service_name"):
                json["serviceName"] = endpoint["service_name"]
            if "ipv4" in endpoint:
                json["ipv4"] = str(ipaddress.IPv4Address(endpoint["ipv4"]))
            if "ipv6" in endpoint:
                json["ipv6"] = str(ipaddress.IPv6Address(endpoint["ipv6"]))
            if endpoint.get("port"):
                json["port"] = endpoint["port"]
            out[key] = json
    if span.get("annotations"):
        out["annotations"] = span["annotations"]
    if span.get("tags"):
        out["tags"] = span["tags"]
    for flag in ("debug", "shared"):
        if span.get(flag):
            out[flag] = True
    return out


def outcome(decode: Any, body: bytes) -> tuple[str, Any]:
    try:
        result = decode(body)
    except DecodeError as error:
        return "refused", str(error).split(": ", 1)[-1]
    assert isinstance(result, DecodeResult)
    rows = pa.Table.from_batches([result.batch]).to_pylist()
    for row in rows:  # a protobuf map has no order: tags are compared as sets
        row["attributes"] = sorted(row["attributes"])
        row["attribute_types"] = sorted(row["attribute_types"])
    return "taken", (rows, result.rejected_spans)


@settings(max_examples=300, deadline=None)
@given(st.lists(spans, min_size=1, max_size=4))
def test_a_protobuf_span_decodes_as_its_json(generated: list[dict[str, Any]]) -> None:
    body = ListOfSpans(spans=generated).SerializeToString()  # type: ignore[call-arg]
    assert outcome(decode_zipkin_proto, body) == outcome(
        decode_zipkin_json, orjson.dumps([as_json(span) for span in generated])
    )


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_body_is_spans_or_a_decode_error(body: bytes) -> None:
    try:
        result = decode_zipkin_proto(body)
    except DecodeError as error:
        assert str(error)
    else:
        assert isinstance(result, DecodeResult)


def test_an_empty_list_is_taken() -> None:
    assert decode_zipkin_proto(b"").batch.num_rows == 0


def test_a_kind_number_zipkin_does_not_name_keeps_the_span_as_its_json_kind_name_would() -> None:
    """proto3 enums are open: a later Zipkin's kind reaches an older reader as a number, kept as text."""
    span = {"trace_id": b"\x01" * 16, "id": b"\x02" * 8, "timestamp": START_US, "kind": 7}
    rows = pa.Table.from_batches([decode_zipkin_proto(ListOfSpans(spans=[span]).SerializeToString()).batch])  # type: ignore[call-arg]
    row = rows.to_pylist()[0]
    assert row["kind"] == SpanKind.INTERNAL
    assert ("zipkin.kind", "7") in row["attributes"]
