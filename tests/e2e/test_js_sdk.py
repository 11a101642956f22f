"""The OpenTelemetry JavaScript SDK's stock exporters, used unchanged, against a real spyglass server.

``js/send_traces.mjs`` builds one trace (SERVER root -> CLIENT child -> INTERNAL grandchild with an event and
an ERROR status) and exports it with the OTLP/HTTP protobuf exporter, the OTLP/HTTP JSON exporter (each with
and without gzip) or the Zipkin exporter. The Node exporters send chunked bodies (and gzip when asked), as they
do by default; spyglass must take them as they are. The test then reads the trace back through the query API
and the Jaeger-compatible API.

Needs ``node`` and the pinned packages: ``npm ci --prefix tests/e2e/js`` (see ``js/package.json``).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from tests.conftest import RunningServer

JS_DIR = Path(__file__).resolve().parent / "js"
SCRIPT = JS_DIR / "send_traces.mjs"
SERVICE = "js-checkout"

ROOT_NAME = "GET /checkout/{id}"
CLIENT_NAME = "GET inventory"
INTERNAL_NAME = "parse inventory response"
#: The internal span's one attribute: "sold out " and the high half of a surrogate pair, as ``slice`` cuts it.
#: Every exporter's encoding of that half (JSON's ``"\\ud83d"`` escape, protobuf.js's UTF-8) reads as U+FFFD.
INTERNAL_NOTE = "sold out \ufffd"

# The root span's attributes as the SDK sets them: OTLP keeps every JSON type.
ROOT_ATTRIBUTES: dict[str, Any] = {
    "http.request.method": "GET",
    "http.route": "/checkout/{id}",
    "url.path": "/checkout/42",
    "http.response.status_code": 200,
    "server.port": 8080,
    "app.cache_hit": False,
    "app.authenticated": True,
    "app.load_factor": 0.75,
    "app.feature_flags": ["new-cart", "fast-pay"],
    "app.retry_delays_ms": [10, 20, 40],
}
CLIENT_ATTRIBUTES: dict[str, Any] = {
    "http.request.method": "GET",
    "server.address": "inventory.internal",
    "server.port": 9000,
    "http.response.status_code": 503,
}
# The same through the Zipkin exporter: every tag is a string, arrays joined with commas, and the exporter copies
# the resource attributes into every span's tags.
RESOURCE_TAGS = {"service.name": SERVICE, "service.version": "1.4.2", "deployment.environment.name": "e2e"}
ZIPKIN_ROOT_TAGS = {
    "http.request.method": "GET",
    "http.route": "/checkout/{id}",
    "url.path": "/checkout/42",
    "http.response.status_code": "200",
    "server.port": "8080",
    "app.cache_hit": "false",
    "app.authenticated": "true",
    "app.load_factor": "0.75",
    "app.feature_flags": "new-cart,fast-pay",
    "app.retry_delays_ms": "10,20,40",
    **RESOURCE_TAGS,
}
ZIPKIN_CLIENT_TAGS = {
    "http.request.method": "GET",
    "server.address": "inventory.internal",
    "server.port": "9000",
    "http.response.status_code": "503",
    **RESOURCE_TAGS,
}


def send_trace(node: str, protocol: str, endpoint: str, gzip: bool) -> dict[str, Any]:
    """Run the Node script; returns ``{"trace_id", "span_ids": [root, client, internal]}``."""
    command = [node, str(SCRIPT), "--protocol", protocol, "--endpoint", endpoint, "--service", SERVICE]
    command += ["--gzip", "yes" if gzip else "no"]
    done = subprocess.run(command, cwd=JS_DIR, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, (
        f"send_traces.mjs exited {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"send_traces.mjs printed nothing\nstderr: {done.stderr}"
    sent = json.loads(lines[-1])
    assert len(sent["trace_id"]) == 32 and len(sent["span_ids"]) == 3, sent
    return cast("dict[str, Any]", sent)


def assert_nested(child: dict[str, Any], parent: dict[str, Any]) -> None:
    """The child starts and ends within its parent, with 5 ms of slack: the JS SDK takes span start times
    from ``Date.now()`` (millisecond precision) and end times from the performance clock, so a child can
    appear to end a millisecond or two after its parent on a loaded machine."""
    slack = 5_000_000
    assert child["start_ns"] >= parent["start_ns"] - slack
    assert child["start_ns"] + child["duration_ns"] <= parent["start_ns"] + parent["duration_ns"] + slack


CASES = [
    pytest.param("proto", False, id="otlp-proto"),
    pytest.param("proto", True, id="otlp-proto-gzip"),
    pytest.param("json", False, id="otlp-json"),
    pytest.param("json", True, id="otlp-json-gzip"),
    pytest.param("zipkin", False, id="zipkin"),
]


@pytest.mark.parametrize(("protocol", "gzip"), CASES)
def test_js_sdk_trace_round_trip(node: str, spyglass: RunningServer, protocol: str, gzip: bool) -> None:
    zipkin = protocol == "zipkin"
    endpoint = spyglass.zipkin if zipkin else spyglass.otlp_http + "/v1/traces"
    sent = send_trace(node, protocol, endpoint, gzip)
    trace_id = sent["trace_id"]
    root_id, client_id, internal_id = sent["span_ids"]

    status = spyglass.wait_for(lambda s: s["spans_received"] + s["spans_rejected"] >= 3)
    assert status["spans_rejected"] == 0, status
    spyglass.flush()

    response = spyglass.get(f"/api/v1/traces/{trace_id}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["trace_id"] == trace_id
    spans = {span["span_id"]: span for span in body["spans"]}
    assert set(spans) == {root_id, client_id, internal_id}, body
    root, client, internal = spans[root_id], spans[client_id], spans[internal_id]

    for span in (root, client, internal):
        assert span["trace_id"] == trace_id
        assert span["service"] == SERVICE
        assert span["duration_ns"] > 0
        assert span["links"] == []
        assert span["resource"]["service.name"] == SERVICE
        if zipkin:
            assert all(isinstance(value, str) for value in span["attributes"].values()), span["attributes"]
        else:
            assert span["resource"]["service.version"] == "1.4.2"
            assert span["resource"]["deployment.environment.name"] == "e2e"

    assert root["parent_span_id"] is None
    assert client["parent_span_id"] == root_id
    assert internal["parent_span_id"] == client_id
    assert_nested(client, root)
    assert_nested(internal, client)

    assert (root["name"], root["kind"]) == (ROOT_NAME, "server")
    assert (client["name"], client["kind"]) == (CLIENT_NAME, "client")
    assert (internal["name"], internal["kind"]) == (INTERNAL_NAME, "internal")

    if zipkin:
        assert root["attributes"] == ZIPKIN_ROOT_TAGS
        assert client["attributes"] == ZIPKIN_CLIENT_TAGS
        assert internal["attributes"] == {"app.note": INTERNAL_NOTE, **RESOURCE_TAGS}
    else:
        assert root["attributes"] == ROOT_ATTRIBUTES
        # == treats 200 == 200.0 and True == 1: check the JSON types themselves.
        types = {key: type(value) for key, value in root["attributes"].items()}
        assert types == {key: type(value) for key, value in ROOT_ATTRIBUTES.items()}
        assert [type(v) for v in root["attributes"]["app.retry_delays_ms"]] == [int, int, int]
        assert client["attributes"] == CLIENT_ATTRIBUTES
        assert type(client["attributes"]["server.port"]) is int
        assert internal["attributes"] == {"app.note": INTERNAL_NOTE}

    for span in (root, client):
        assert span["status"] == "unset"
        assert span["events"] == []
    assert internal["status"] == "error"
    assert internal["status_message"] == "inventory unavailable"
    [event] = internal["events"]
    assert event["name"] == "cache.miss"
    assert internal["start_ns"] <= event["time_ns"] <= internal["start_ns"] + internal["duration_ns"]
    if zipkin:
        assert event["attributes"] == {}  # Zipkin annotations carry no attributes
    else:
        assert event["attributes"] == {"cache.key": "sku:1234", "cache.attempt": 2}
        assert type(event["attributes"]["cache.attempt"]) is int

    jaeger = spyglass.get(f"/api/traces/{trace_id}")
    assert jaeger.status_code == 200, jaeger.text
    [jaeger_trace] = jaeger.json()["data"]
    assert jaeger_trace["traceID"] == trace_id
    assert len(jaeger_trace["spans"]) == 3
    assert {span["spanID"] for span in jaeger_trace["spans"]} == {root_id, client_id, internal_id}
    assert {p["serviceName"] for p in jaeger_trace["processes"].values()} == {SERVICE}

    services = spyglass.get("/api/v1/services").json()["services"]
    assert SERVICE in {service["name"] for service in services}


def test_otlp_http_cors_preflight_for_browsers(spyglass: RunningServer) -> None:
    """What a browser sends before the JS SDK's fetch/XHR export from a web page on another origin."""
    origin = "http://localhost:3000"
    url = spyglass.otlp_http + "/v1/traces"
    preflight = httpx.options(
        url,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
        timeout=10,
    )
    assert preflight.status_code in (200, 204), (preflight.status_code, preflight.text)
    assert preflight.headers.get("access-control-allow-origin") in ("*", origin), preflight.headers
    allowed_methods = preflight.headers.get("access-control-allow-methods", "")
    assert "POST" in [m.strip().upper() for m in allowed_methods.split(",")], preflight.headers
    allowed_headers = preflight.headers.get("access-control-allow-headers", "")
    assert allowed_headers.strip() == "*" or "content-type" in [
        h.strip().lower() for h in allowed_headers.split(",")
    ], preflight.headers

    # The export that follows the preflight is answered with the CORS header too, or the browser drops it.
    export = httpx.post(
        url, content=b"{}", headers={"Origin": origin, "Content-Type": "application/json"}, timeout=10
    )
    assert export.status_code == 200, export.text
    assert export.headers.get("access-control-allow-origin") in ("*", origin), export.headers
