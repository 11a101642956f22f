"""The Jaeger-compatible API as Jaeger clients read it: shapes checked against Jaeger's own fixtures, Jaeger's error
envelope on every route, the ``error`` tag search, one span per id for Zipkin's shared spans, and a Jaeger client
from PyPI (``jaeger-mcp``) driven against a real server."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from spyglass.model.shared_spans import server_half_id
from tests.conftest import RunningServer
from tests.support.otel import http_exporter, otlp_json, provider, record

FIXTURES = Path(__file__).resolve().parent / "fixtures"
NOW_US = time.time_ns() // 1_000
WINDOW = {"start": NOW_US - 3_600_000_000, "end": NOW_US + 3_600_000_000}


def load_fixture(name: str) -> Any:
    """A fixture file: JSON after ``//`` comment lines naming its source."""
    text = (FIXTURES / name).read_text()
    return json.loads("\n".join(line for line in text.splitlines() if not line.startswith("//")))


# -- shapes, against Jaeger's own fixtures --------------------------------------------------------------------

#: Keys Jaeger writes only when set (``omitempty`` in its UI model), absent from the fixtures' spans.
OPTIONAL_KEYS = {"span": {"flags": {"int"}}}


def json_type(value: Any) -> str:
    return {type(None): "null", bool: "bool", int: "int", float: "float", str: "str", list: "list"}.get(
        type(value), "object"
    )


def objects_by_role(response: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every object of a ``/api/traces`` answer by what it is: envelope, trace, span, reference, tag, log,
    process."""
    roles: dict[str, list[dict[str, Any]]] = {"envelope": [response]}
    for trace in response["data"] or []:
        roles.setdefault("trace", []).append(trace)
        for span in trace["spans"]:
            roles.setdefault("span", []).append(span)
            roles.setdefault("reference", []).extend(span["references"])
            roles.setdefault("tag", []).extend(span["tags"])
            for log in span["logs"]:
                roles.setdefault("log", []).append(log)
                roles.setdefault("tag", []).extend(log["fields"])
        for process in trace["processes"].values():
            roles.setdefault("process", []).append(process)
            roles.setdefault("tag", []).extend(process["tags"])
    return roles


def jaeger_shapes() -> tuple[dict[str, dict[str, set[str]]], dict[str, set[str]]]:
    """From Jaeger's fixtures: each role's keys with the JSON types seen under them, and each tag type's value
    types."""
    envelope = load_fixture("jaeger_otlp2jaeger_out.jsonc")
    ui_trace = load_fixture("jaeger_ui_01.jsonc")
    shapes: dict[str, dict[str, set[str]]] = {}
    value_types: dict[str, set[str]] = {}
    for response in (envelope, {**envelope, "data": [ui_trace]}):
        for role, objects in objects_by_role(response).items():
            for obj in objects:
                for key, value in obj.items():
                    shapes.setdefault(role, {}).setdefault(key, set()).add(json_type(value))
                if role == "tag":
                    value_types.setdefault(obj["type"], set()).add(json_type(obj["value"]))
    return shapes, value_types


def assert_jaeger_shape(response: dict[str, Any]) -> None:
    """Every object has exactly the keys Jaeger's has, each value of a JSON type Jaeger writes there, and each
    tag value the JSON type Jaeger writes for its tag type."""
    shapes, value_types = jaeger_shapes()
    for role, objects in objects_by_role(response).items():
        expected = shapes[role] | OPTIONAL_KEYS.get(role, {})
        required = set(shapes[role])
        for obj in objects:
            assert required <= set(obj) <= set(expected), (role, sorted(obj), sorted(expected))
            for key, value in obj.items():
                assert json_type(value) in expected[key], (role, key, value)
            if role == "tag":
                assert json_type(obj["value"]) in value_types[obj["type"]], obj
    for trace in response["data"] or []:
        assert set(trace["processes"]) == {span["processID"] for span in trace["spans"]}
        ids = [span["spanID"] for span in trace["spans"]]
        assert len(ids) == len(set(ids)), "Jaeger's adjusters leave one span per id"
        for span in trace["spans"]:
            assert len(span["traceID"]) == 32 and len(span["spanID"]) == 16
            assert all(r["refType"] in ("CHILD_OF", "FOLLOWS_FROM") for r in span["references"])
            assert all(len(r["traceID"]) == 32 and len(r["spanID"]) == 16 for r in span["references"])
            keys = [tag["key"] for tag in span["tags"]]
            assert len(keys) == len(set(keys)), f"a tag key twice: {keys}"


def send_checkout(spyglass: RunningServer) -> str:
    """One trace with every attribute type, an event, a link, a failed child and a number past 2**53."""
    tracer = provider("checkout", http_exporter(spyglass.otlp_http), **{"host.name": "node-1"}).get_tracer(
        "shop", "2.1"
    )
    with tracer.start_as_current_span("warmup") as warmup:
        pass
    with tracer.start_as_current_span(
        "POST /checkout",
        kind=SpanKind.SERVER,
        links=[Link(warmup.get_span_context(), {"reason": "retry"})],
        attributes={
            "http.route": "/checkout",
            "http.response.status_code": 200,
            "cart.total": 12.5,
            "cart.vip": True,
            "cart.items": ["a", "b"],
            "cart.token": 2**60,
        },
    ) as root:
        root.add_event("cache miss", {"key": "cart:1", "attempt": 2})
        with tracer.start_as_current_span("charge", kind=SpanKind.CLIENT) as charge:
            charge.set_attribute("error", "card declined")  # OpenTracing style, beside the status
            charge.set_attribute("span.kind", "client")
            charge.set_status(Status(StatusCode.ERROR, "card declined"))
    return format(root.get_span_context().trace_id, "032x")


def test_answers_have_the_shape_of_jaeger_fixtures(spyglass: RunningServer) -> None:
    trace_id = send_checkout(spyglass)
    spyglass.wait_for(lambda s: s["spans_received"] == 3)
    spyglass.flush()

    by_id = spyglass.get(f"/api/traces/{trace_id}").json()
    assert_jaeger_shape(by_id)
    assert (by_id["total"], by_id["limit"], by_id["offset"], by_id["errors"]) == (0, 0, 0, None)
    found = spyglass.get("/api/traces", params={"service": "checkout", **WINDOW}).json()
    assert_jaeger_shape(found)
    assert trace_id in [t["traceID"] for t in found["data"]] and len(found["data"]) == 2  # and the linked one

    [trace] = by_id["data"]
    spans = {span["operationName"]: span for span in trace["spans"]}
    tags = {key: {t["key"]: t for t in spans[key]["tags"]} for key in spans}
    root = tags["POST /checkout"]
    assert root["cart.token"] == {"key": "cart.token", "type": "int64", "value": str(2**60)}
    assert root["http.response.status_code"]["value"] == 200 and root["cart.vip"]["value"] is True
    assert root["otel.scope.name"]["value"] == "shop" and root["span.kind"]["value"] == "server"
    assert [r["refType"] for r in spans["POST /checkout"]["references"]] == ["FOLLOWS_FROM"]
    [log] = spans["POST /checkout"]["logs"]
    assert log["fields"][0] == {"key": "event", "type": "string", "value": "cache miss"}
    # The failed span: one error tag (Jaeger's boolean), its text once, in otel.status_description.
    charge = tags["charge"]
    assert charge["error"] == {"key": "error", "type": "bool", "value": True}
    assert charge["otel.status_description"]["value"] == "card declined"
    assert charge["span.kind"]["value"] == "client"
    process = trace["processes"][spans["charge"]["processID"]]
    assert (
        process["serviceName"] == "checkout"
        and {"key": "host.name", "type": "string", "value": "node-1"} in (process["tags"])
    )

    services = spyglass.get("/api/services").json()
    assert services == {"data": ["checkout"], "total": 1, "limit": 0, "offset": 0, "errors": None}


# -- errors: Jaeger's envelope on every route ----------------------------------------------------------------


def assert_jaeger_error(response: httpx.Response, status: int, text: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body == {
        "data": None,
        "total": 0,
        "limit": 0,
        "offset": 0,
        "errors": [{"code": status, "msg": body["errors"][0]["msg"]}],
    }
    assert text in body["errors"][0]["msg"], body


@pytest.mark.parametrize(
    ("path", "params", "status", "text"),
    [
        ("/api/traces/not-hex", {}, 400, "hex"),
        ("/api/traces/" + "f" * 33, {}, 400, "hex"),
        ("/api/traces/" + "ab" * 16, {}, 404, "trace not found"),
        ("/api/traces/abc", {}, 404, "trace not found"),  # short ids are left-padded, as Jaeger does
        ("/api/traces", {}, 400, "parameter 'service' is required"),
        ("/api/traces", {"service": "s", "tags": "{not json"}, 400, "tags"),
        ("/api/traces", {"service": "s", "tags": "[1]"}, 400, "tags"),
        ("/api/traces", {"service": "s", "tag": "novalue"}, 400, "tag"),
        ("/api/traces", {"service": "s", "limit": "many"}, 400, "limit"),
        ("/api/traces", {"service": "s", "start": "yesterday"}, 400, "start"),
        ("/api/traces", {"service": "s", "minDuration": "fast"}, 400, "minDuration"),
        ("/api/traces", {"service": "s", "minDuration": "2s", "maxDuration": "1s"}, 400, "maxDuration"),
        ("/api/traces", {"traceID": "xyz"}, 400, "traceID"),
        ("/api/operations", {}, 400, "parameter 'service' is required"),
        ("/api/dependencies", {"endTs": "now"}, 400, "endTs"),
        ("/api/dependencies", {"lookback": "1h"}, 400, "lookback"),
        ("/api/no-such-route", {}, 404, "Not Found"),
        ("/api/traces/" + "ab" * 16 + "/extra", {}, 404, "Not Found"),
    ],
)
def test_every_jaeger_error_is_jaegers_envelope(
    spyglass: RunningServer, path: str, params: dict[str, str], status: int, text: str
) -> None:
    assert_jaeger_error(spyglass.get(path, params=params), status, text)


def test_methods_and_tokens_are_refused_in_the_envelope_too(start_server: Any) -> None:
    spyglass = start_server(query_token="q-secret")
    assert_jaeger_error(httpx.get(spyglass.api + "/api/services"), 401, "bearer token")
    authorized = {"Authorization": "Bearer q-secret"}
    response = httpx.post(spyglass.api + "/api/traces", headers=authorized)
    assert_jaeger_error(response, 405, "Method Not Allowed")
    assert "GET" in response.headers["allow"]
    assert httpx.get(spyglass.api + "/api/services", headers=authorized).json()["data"] == []
    # spyglass's own API keeps its own error shape.
    own = httpx.get(spyglass.api + "/api/v1/traces/not-hex", headers=authorized)
    assert own.status_code == 400 and set(own.json()) == {"error"}
    assert httpx.get(spyglass.api + "/api/v1/services").json() == {"error": "missing or wrong bearer token"}
    assert httpx.get(spyglass.api + "/api/v1/nope", headers=authorized).status_code == 404


def test_trace_ids_in_search_answer_found_and_missing(spyglass: RunningServer) -> None:
    """The Jaeger UI's trace comparison: ``/api/traces?traceID=a&traceID=b`` without a service."""
    trace_id = send_checkout(spyglass)
    spyglass.wait_for(lambda s: s["spans_received"] == 3)
    missing = "cd" * 16
    response = spyglass.get("/api/traces", params=[("traceID", trace_id), ("traceID", missing)])
    assert response.status_code == 200, response.text
    body = response.json()
    assert [t["traceID"] for t in body["data"]] == [trace_id]
    assert body["errors"] == [{"msg": "trace not found", "traceID": missing}]


# -- the error tag ---------------------------------------------------------------------------------------------


def send_requests(spyglass: RunningServer) -> dict[str, str]:
    """Three traces of one service: a failure deep in a child, one at the root, and a healthy one."""
    tracer = provider("orders", http_exporter(spyglass.otlp_http)).get_tracer("t")
    ids = {}
    for name in ("child-fails", "root-fails", "healthy"):
        with tracer.start_as_current_span(
            "GET /orders", kind=SpanKind.SERVER, attributes={"case": name}
        ) as root:
            with tracer.start_as_current_span("SELECT orders", kind=SpanKind.CLIENT) as query:
                if name == "child-fails":
                    query.set_status(Status(StatusCode.ERROR, "deadlock"))
            if name == "root-fails":
                root.set_status(Status(StatusCode.ERROR))
        ids[name] = format(root.get_span_context().trace_id, "032x")
    spyglass.wait_for(lambda s: s["spans_received"] == 6)
    spyglass.flush()
    return ids


def search(spyglass: RunningServer, *params: tuple[str, str]) -> set[str]:
    response = spyglass.get("/api/traces", params=[("service", "orders"), *WINDOW.items(), *params])
    assert response.status_code == 200, response.text
    return {trace["traceID"] for trace in response.json()["data"]}


def test_a_search_answers_each_trace_as_it_is_read_by_id(spyglass: RunningServer) -> None:
    """A search reads its traces' spans together (``Store.traces``); each must be the trace ``/api/traces/{id}``
    answers."""
    ids = send_requests(spyglass)
    found = spyglass.get("/api/traces", params={"service": "orders", **WINDOW}).json()["data"]
    assert sorted(t["traceID"] for t in found) == sorted(ids.values())
    for trace in found:
        [alone] = spyglass.get(f"/api/traces/{trace['traceID']}").json()["data"]
        assert trace == alone
    assert (
        len(spyglass.get("/api/traces", params={"service": "orders", "limit": 2, **WINDOW}).json()["data"])
        == 2
    )


def test_error_tag_search_finds_traces_with_an_error_span(spyglass: RunningServer) -> None:
    """As in Jaeger's stores, where an error status is the tag ``error=true``: the Jaeger UI's and Grafana's
    ``error=true`` search finds every trace with a failed span, wherever that span is."""
    ids = send_requests(spyglass)
    failed = {ids["child-fails"], ids["root-fails"]}
    assert search(spyglass, ("tags", json.dumps({"error": "true"}))) == failed
    assert search(spyglass, ("tags", json.dumps({"error": True}))) == failed
    assert search(spyglass, ("tag", "error:true")) == failed
    assert search(spyglass, ("tags", json.dumps({"otel.status_code": "ERROR"}))) == failed
    assert search(spyglass, ("tags", json.dumps({"error": "true", "case": "root-fails"}))) == {
        ids["root-fails"]
    }
    assert search(spyglass, ("tags", json.dumps({"error": "true", "case": "healthy"}))) == set()
    assert search(spyglass, ("tags", json.dumps({"error": "false"}))) == set()  # no span has that tag
    assert search(spyglass) == set(ids.values())


# -- shared spans (Zipkin B3 join) -----------------------------------------------------------------------------

TRACE = "5b8efff798038103d269b633813fc60c"
ROOT, SHARED, CHILD = "00000000000000a1", "eee19b7ec3c1b174", "00000000000000c1"


def zipkin(span_id: str, name: str, service: str, parent: str | None, **fields: Any) -> dict[str, Any]:
    start_us = NOW_US - 1_000_000
    span = {"traceId": TRACE, "id": span_id, "name": name, "localEndpoint": {"serviceName": service}}
    span |= {"timestamp": start_us + fields.pop("at_us", 0), "duration": fields.pop("duration_us", 1000)}
    return span | ({"parentId": parent} if parent else {}) | fields


def post_zipkin(spyglass: RunningServer, *spans: dict[str, Any]) -> None:
    response = httpx.post(spyglass.zipkin, json=list(spans))
    assert response.status_code == 202, response.text


def tree(spyglass: RunningServer) -> dict[tuple[str, str], tuple[str, str | None]]:
    """``{(service, name): (span_id, parent_span_id)}`` from ``/api/v1``, after checking Jaeger's view agrees."""
    spans = spyglass.get(f"/api/v1/traces/{TRACE}").json()["spans"]
    [trace] = spyglass.get(f"/api/traces/{TRACE}").json()["data"]
    jaeger = {
        (s["spanID"], next((r["spanID"] for r in s["references"] if r["refType"] == "CHILD_OF"), None))
        for s in trace["spans"]
    }
    assert jaeger == {(s["span_id"], s["parent_span_id"]) for s in spans}
    assert len({s["span_id"] for s in spans}) == len(spans)
    # A search answers the trace as it is read by id (once stored: a search reads only the store).
    found = spyglass.get("/api/traces", params={"service": "web", **WINDOW}).json()["data"]
    assert [t["traceID"] for t in found] in ([], [TRACE])
    if found:
        assert found == [trace]
    return {(s["service"], s["name"]): (s["span_id"], s["parent_span_id"]) for s in spans}


def test_shared_spans_arriving_apart_make_one_tree(spyglass: RunningServer) -> None:
    """The server's child arrives first (naming the shared id), then the server half (marked shared), then the
    client half: before the trace is decided and after, both APIs show client -> server half -> child."""
    half = server_half_id(bytes.fromhex(SHARED)).hex()
    post_zipkin(spyglass, zipkin(CHILD, "select", "cart", SHARED, at_us=200, duration_us=300))
    post_zipkin(
        spyglass,
        zipkin(SHARED, "get /cart", "cart", ROOT, kind="SERVER", shared=True, at_us=100, duration_us=600),
    )
    post_zipkin(
        spyglass,
        zipkin(ROOT, "checkout", "web", None, duration_us=1000),
        zipkin(SHARED, "get /cart", "web", ROOT, kind="CLIENT", at_us=50, duration_us=700),
    )
    spyglass.wait_for(lambda s: s["spans_received"] == 4)
    expected = {
        ("web", "checkout"): (ROOT, None),
        ("web", "get /cart"): (SHARED, ROOT),
        ("cart", "get /cart"): (half, SHARED),
        ("cart", "select"): (CHILD, half),
    }
    live = tree(spyglass)
    assert live == expected
    spyglass.flush()
    stored = tree(spyglass)
    assert stored == live
    # In the store itself: the critical path (read from stored spans) walks into the child.
    contributions = spyglass.get(
        "/api/v1/critical-path",
        params={"service": "web", "operation": "checkout", "start_ns": 0, "end_ns": time.time_ns() + 10**12},
    ).json()["contributions"]
    assert ("cart", "select") in {(c["service"], c["operation"]) for c in contributions}
    assert spyglass.get("/api/dependencies").json()["data"] == [
        {"parent": "web", "child": "cart", "callCount": 1}
    ]


def test_halves_relayed_as_otlp_under_one_id_are_separated(spyglass: RunningServer) -> None:
    """A Zipkin join that reached spyglass as OTLP (a Collector's Zipkin receiver keeps both halves under the
    client's id, unmarked): the SERVER span sharing a CLIENT span's id gets the id the Zipkin receiver gives."""
    tracer, exporter, _ = record("web")
    with tracer.start_as_current_span("checkout", kind=SpanKind.SERVER):
        with tracer.start_as_current_span("get /cart", kind=SpanKind.CLIENT):
            pass
    root, client = sorted(exporter.get_finished_spans(), key=lambda s: s.start_time or 0)
    document = otlp_json([root, client])
    spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    trace_id, shared_id = spans[1]["traceId"], spans[1]["spanId"]
    server = {**spans[1], "name": "get /cart", "kind": 2}
    child = {**spans[1], "spanId": CHILD, "parentSpanId": shared_id, "name": "select", "kind": 3}
    document["resourceSpans"].append(
        {
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "cart"}}]},
            "scopeSpans": [{"spans": [server, child]}],
        }
    )
    response = httpx.post(spyglass.otlp_http + "/v1/traces", json=document)
    assert response.status_code == 200, response.text
    spyglass.wait_for(lambda s: s["spans_received"] == 4)
    spyglass.flush()
    half = server_half_id(bytes.fromhex(shared_id)).hex()
    stored = {
        (s["service"], s["name"]): (s["span_id"], s["parent_span_id"])
        for s in spyglass.get(f"/api/v1/traces/{trace_id}").json()["spans"]
    }
    assert stored[("web", "get /cart")] == (shared_id, spans[0]["spanId"])
    assert stored[("cart", "get /cart")] == (half, shared_id)
    assert stored[("cart", "select")] == (CHILD, half)


# -- a Jaeger client from PyPI ---------------------------------------------------------------------------------


def test_jaeger_mcp_reads_spyglass_as_it_reads_jaeger(spyglass: RunningServer) -> None:
    """``jaeger-mcp``'s in-process client (its ``JaegerClient`` facade over the Jaeger query HTTP API), unchanged:
    services, search with the error tag, a trace with its tree and error flags, the critical path, and the
    dependency graph."""
    import jaeger_mcp  # a dev dependency (pyproject.toml): missing, the test fails rather than skips
    from jaeger_mcp.client import JaegerHTTPClient

    ids = send_requests(spyglass)
    client = jaeger_mcp.JaegerClient(JaegerHTTPClient(url=spyglass.api, retry_attempts=0, cache_ttl=0))
    assert client.list_services() == ["orders"]
    found = client.search_traces(
        "orders", tags={"error": "true"}, time_from=WINDOW["start"], time_to=WINDOW["end"]
    )
    assert {t.trace_id for t in found} == {ids["child-fails"], ids["root-fails"]}
    assert all(t.errors_count == 1 and t.span_count == 2 for t in found)

    trace = client.get_trace(ids["child-fails"])
    by_name = {span.operation: span for span in trace.spans}
    assert trace.root_operation == "GET /orders" and trace.root_service == "orders"
    assert by_name["SELECT orders"].parent_span_id == by_name["GET /orders"].span_id
    assert by_name["SELECT orders"].error and not by_name["GET /orders"].error
    assert by_name["SELECT orders"].tags["otel.status_description"] == "deadlock"
    path = client.critical_path(ids["child-fails"])
    assert path["critical_path"] and path["total_duration_us"] >= 0

    post_zipkin(
        spyglass,
        zipkin(ROOT, "checkout", "web", None, duration_us=1000),
        zipkin(SHARED, "get /cart", "web", ROOT, kind="CLIENT", at_us=50, duration_us=700),
        zipkin(SHARED, "get /cart", "cart", ROOT, kind="SERVER", shared=True, at_us=100, duration_us=600),
        zipkin(CHILD, "select", "cart", SHARED, at_us=200, duration_us=300),
    )
    spyglass.wait_for(lambda s: s["spans_received"] == 10)
    spyglass.flush()
    joined = client.get_trace(TRACE)
    assert len({span.span_id for span in joined.spans}) == 4
    server = next(s for s in joined.spans if s.service_name == "cart" and s.operation == "get /cart")
    select = next(s for s in joined.spans if s.operation == "select")
    assert (server.parent_span_id, select.parent_span_id) == (SHARED, server.span_id)
    edges = {(e.parent, e.child): e.call_count for e in client.get_dependencies()}
    assert edges == {("web", "cart"): 1}

    with pytest.raises(httpx.HTTPStatusError) as refused:
        client.get_trace("ab" * 16)
    assert refused.value.response.status_code == 404
