"""Zipkin v1 JSON: v1 spans read as Zipkin's own converter reads them (the cases of its ``SpanConverterTest``),
and the decoded batch of a request as zipkin-js's default encoder (``JSON_V1``) writes it."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from spyglass.model.schema import UNKNOWN_SERVICE, SpanKind
from spyglass.model.shared_spans import server_half_id
from spyglass.receivers.decoders.result import DecodeError
from spyglass.receivers.decoders.zipkin_v1 import decode_zipkin_v1_json, v2_spans

FRONTEND = {"serviceName": "frontend", "ipv4": "172.17.0.13"}
BACKEND = {"serviceName": "backend", "ipv4": "192.168.99.101", "port": 9000}
KAFKA = {"serviceName": "kafka"}
T = 1472470996199000
IDS = {"traceId": "0000000000000001", "parentId": "0000000000000002", "id": "0000000000000003"}


def v1(
    *annotations: tuple[int, str, dict[str, Any] | None], binary: Any = (), **fields: Any
) -> dict[str, Any]:
    span: dict[str, Any] = {**IDS, "name": "get", **fields}
    if annotations:
        span["annotations"] = [{"timestamp": t, "value": v, "endpoint": e} for t, v, e in annotations]
    if binary:
        span["binaryAnnotations"] = [{"key": k, "value": v, "endpoint": e} for k, v, e in binary]
    return span


def v2(**fields: Any) -> dict[str, Any]:
    return {**IDS, "name": "get", **fields}


def test_a_client_span_takes_its_kind_times_tags_and_server_address() -> None:
    source = v1(
        (T, "cs", FRONTEND),
        (T + 39000, "ws", FRONTEND),
        (T + 204000, "wr", FRONTEND),
        (T + 207000, "cr", FRONTEND),
        binary=[
            ("http.path", "/api", FRONTEND),
            ("clnt/finagle.version", "6.45.0", FRONTEND),
            ("sa", True, BACKEND),
        ],
        timestamp=T,
        duration=207000,
    )
    assert v2_spans(source) == [
        v2(
            kind="CLIENT",
            timestamp=T,
            duration=207000,
            localEndpoint=FRONTEND,
            remoteEndpoint=BACKEND,
            # Wire times are kept as events when the span is no messaging span.
            annotations=[{"timestamp": T + 39000, "value": "ws"}, {"timestamp": T + 204000, "value": "wr"}],
            tags={"http.path": "/api", "clnt/finagle.version": "6.45.0"},
        )
    ]


def test_both_halves_of_an_rpc_in_one_span_come_apart_with_the_server_half_shared() -> None:
    source = v1(
        (T, "cs", FRONTEND),
        (T + 1000, "sr", BACKEND),
        (T + 206000, "ss", BACKEND),
        (T + 207000, "cr", FRONTEND),
        binary=[("http.path", "/api", BACKEND), ("sa", True, BACKEND), ("ca", True, FRONTEND)],
        timestamp=T,
        duration=207000,
    )
    client, server = v2_spans(source)
    assert client == v2(
        kind="CLIENT", timestamp=T, duration=207000, localEndpoint=FRONTEND, remoteEndpoint=BACKEND
    )
    assert server == v2(
        kind="SERVER",
        timestamp=T + 1000,
        duration=205000,
        localEndpoint=BACKEND,
        remoteEndpoint=FRONTEND,
        tags={"http.path": "/api"},
        shared=True,
    )


def test_a_loopback_call_still_has_two_halves() -> None:
    source = v1(
        (T, "cs", FRONTEND), (T + 1, "sr", FRONTEND), (T + 2, "ss", FRONTEND), (T + 3, "cr", FRONTEND)
    )
    kinds = [(span["kind"], span.get("shared", False), span["timestamp"]) for span in v2_spans(source)]
    assert kinds == [("CLIENT", False, T), ("SERVER", True, T + 1)]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param(
            v1((T, "sr", BACKEND), (T + 207000, "ss", BACKEND)),
            v2(kind="SERVER", timestamp=T, duration=207000, localEndpoint=BACKEND, shared=True),
            id="server-without-its-own-timestamp-is-shared",
        ),
        pytest.param(
            v1((T, "sr", BACKEND)),
            v2(kind="SERVER", timestamp=T, localEndpoint=BACKEND, shared=True),
            id="unfinished-server",
        ),
        pytest.param(
            v1((T, "cs", FRONTEND), (T + 39000, "ws", FRONTEND), timestamp=T),
            v2(
                kind="CLIENT",
                timestamp=T,
                localEndpoint=FRONTEND,
                annotations=[{"timestamp": T + 39000, "value": "ws"}],
            ),
            id="unfinished-client",
        ),
        pytest.param(
            v1((T, "cr", FRONTEND), binary=[("sa", True, BACKEND)]),
            v2(
                kind="CLIENT",
                localEndpoint=FRONTEND,
                remoteEndpoint=BACKEND,
                annotations=[{"timestamp": T, "value": "cr"}],
            ),
            id="late-client-end",
        ),
        pytest.param(
            v1(binary=[("lc", "", FRONTEND), ("sa", True, BACKEND)], timestamp=T, duration=207000),
            v2(timestamp=T, duration=207000, localEndpoint=FRONTEND, remoteEndpoint=BACKEND),
            id="local-span-with-server-address",
        ),
        pytest.param(
            v1(binary=[("ca", True, FRONTEND)]),
            v2(kind="SERVER", remoteEndpoint=FRONTEND),
            id="client-address-alone-is-a-server",
        ),
        pytest.param(
            v1((T, "sr", None), timestamp=T),
            v2(timestamp=T, annotations=[{"timestamp": T, "value": "sr"}]),
            id="core-annotation-without-endpoint-is-an-event",
        ),
        pytest.param(
            v1((T, "ms", FRONTEND), binary=[("ma", True, KAFKA)], timestamp=T, name="send"),
            v2(kind="PRODUCER", timestamp=T, localEndpoint=FRONTEND, remoteEndpoint=KAFKA, name="send"),
            id="producer",
        ),
        pytest.param(
            v1((T, "wr", BACKEND), (T + 5, "mr", BACKEND), binary=[("ma", True, KAFKA)], name="next"),
            v2(
                kind="CONSUMER",
                timestamp=T,
                duration=5,
                localEndpoint=BACKEND,
                remoteEndpoint=KAFKA,
                name="next",
            ),
            id="consumer-with-wire-receive",
        ),
    ],
)
def test_zipkins_own_cases(source: dict[str, Any], expected: dict[str, Any]) -> None:
    assert v2_spans(source) == [expected]


def test_finagles_client_socket_on_a_server_span_keeps_no_service_name() -> None:
    """Finagle writes the client's socket as ``ca`` under the server's own name: no loopback link is made."""
    socket = {**BACKEND, "port": 63840}
    source = v1(
        (T, "sr", BACKEND), (T + 5, "ss", BACKEND), binary=[("ca", True, socket), ("sa", True, BACKEND)]
    )
    (server,) = v2_spans(source)
    assert server["remoteEndpoint"] == {"ipv4": BACKEND["ipv4"], "port": 63840}


def test_a_request_as_zipkin_js_writes_it_decodes_to_the_tree_of_its_spans() -> None:
    """zipkin-js's ``JSON_V1``: 64-bit ids, a local root with only its endpoint, the client span with cs/cr and
    ``sa``, and the server half of a B3 join under the client's id, without timestamp and duration."""
    trace = "a0e1f2d3c4b5a697"
    root, client = "1111111111111111", "2222222222222222"
    body = [
        {"traceId": trace, "id": root, "name": "checkout", "timestamp": T, "duration": 9000,
         "binaryAnnotations": [{"key": "lc", "value": "frontend", "endpoint": {"serviceName": "frontend"}}]},
        {"traceId": trace, "parentId": root, "id": client, "name": "get", "timestamp": T + 100, "duration": 8000,
         "annotations": [{"value": "cs", "timestamp": T + 100, "endpoint": {"serviceName": "frontend"}},
                         {"value": "cr", "timestamp": T + 8100, "endpoint": {"serviceName": "frontend"}}],
         "binaryAnnotations": [{"key": "http.path", "value": "/api", "endpoint": {"serviceName": "frontend"}},
                               {"key": "sa", "value": True, "endpoint": {"serviceName": "backend", "port": 8081}}]},
        {"traceId": trace, "parentId": root, "id": client, "name": "get",
         "annotations": [{"value": "sr", "timestamp": T + 200, "endpoint": {"serviceName": "backend"}},
                         {"value": "ss", "timestamp": T + 7900, "endpoint": {"serviceName": "backend"}}],
         "binaryAnnotations": [{"key": "error", "value": "503", "endpoint": {"serviceName": "backend"}}]},
    ]  # fmt: skip
    result = decode_zipkin_v1_json(orjson.dumps(body))
    assert result.rejected_spans == 0
    spans = {row["name"] + " " + str(row["kind"]): row for row in result.batch.to_pylist()}
    assert set(spans) == {f"checkout {SpanKind.INTERNAL}", f"get {SpanKind.CLIENT}", f"get {SpanKind.SERVER}"}
    checkout, get, served = (
        spans[f"checkout {SpanKind.INTERNAL}"],
        spans[f"get {SpanKind.CLIENT}"],
        spans[f"get {SpanKind.SERVER}"],
    )
    assert checkout["trace_id"] == bytes(8) + bytes.fromhex(trace) and checkout["service"] == "frontend"
    assert (get["service"], get["parent_span_id"], get["start_ns"], get["duration_ns"]) == (
        "frontend",
        bytes.fromhex(root),
        (T + 100) * 1000,
        8_000_000,
    )
    assert dict(get["attributes"])["peer.service"] == "backend"
    # The shared server half gets an id of its own under the client half, timed by its own annotations.
    assert served["span_id"] == server_half_id(bytes.fromhex(client))
    assert served["parent_span_id"] == bytes.fromhex(client)
    assert (served["service"], served["start_ns"], served["duration_ns"]) == (
        "backend",
        (T + 200) * 1000,
        7_700_000,
    )
    assert served["status_message"] == "503"


def test_an_unreadable_v1_span_is_rejected_alone_and_named_by_its_place() -> None:
    good = v1((T, "cs", FRONTEND), (T + 5, "cr", FRONTEND))
    no_time = v1(binary=[]) | {"annotations": [{"value": "cs", "endpoint": FRONTEND}]}
    no_key = v1((T, "sr", BACKEND)) | {"binaryAnnotations": [{"value": "x"}]}
    result = decode_zipkin_v1_json(orjson.dumps([good, no_time, no_key]))
    assert (result.batch.num_rows, result.rejected_spans) == (1, 2)
    assert result.error_message.startswith("spans[1].annotations[0]: must have an integer timestamp")
    with pytest.raises(DecodeError, match=r"spans\[0\]\.timestamp: expected an integer"):
        decode_zipkin_v1_json(orjson.dumps([v1(timestamp="soon")]))


@pytest.mark.parametrize("body", [b"{}", b"[1]", b"not json", b'[{"traceId": 5}]'])
def test_a_request_of_the_wrong_shape_is_refused(body: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_zipkin_v1_json(body)


def test_a_span_without_endpoints_is_kept_under_the_unknown_service() -> None:
    result = decode_zipkin_v1_json(orjson.dumps([v1(timestamp=T, duration=5)]))
    assert result.batch.column("service").to_pylist() == [UNKNOWN_SERVICE]
