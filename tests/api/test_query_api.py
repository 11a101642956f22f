"""Query API details beyond ingest round trips: dependencies, operations, OpenAPI, and the UI shell."""

from __future__ import annotations

from opentelemetry.trace import SpanKind, Status, StatusCode

from tests.conftest import RunningServer
from tests.support.otel import http_exporter, provider


def _call_chain(spyglass: RunningServer, fail: bool) -> None:
    frontend = provider("frontend", http_exporter(spyglass.otlp_http)).get_tracer("t")
    checkout = provider("checkout", http_exporter(spyglass.otlp_http)).get_tracer("t")
    with frontend.start_as_current_span("GET /", kind=SpanKind.SERVER):
        with frontend.start_as_current_span("call checkout", kind=SpanKind.CLIENT):
            with checkout.start_as_current_span("POST /checkout", kind=SpanKind.SERVER) as server:
                if fail:
                    server.set_status(Status(StatusCode.ERROR, "boom"))


def test_dependencies_from_parent_child_pairs(spyglass: RunningServer) -> None:
    for fail in (False, False, True):
        _call_chain(spyglass, fail)
    spyglass.wait_for(lambda s: s["spans_received"] == 9)
    spyglass.flush()
    edges = spyglass.get("/api/v1/dependencies").json()["edges"]
    assert len(edges) == 1
    edge = edges[0]
    assert (edge["parent"], edge["child"], edge["calls"], edge["errors"]) == ("frontend", "checkout", 3, 1)
    assert edge["p99_ms"] > 0
    jaeger = spyglass.get("/api/dependencies").json()["data"]
    assert jaeger == [{"parent": "frontend", "child": "checkout", "callCount": 3}]
    assert spyglass.get("/api/v1/dependencies", params={"start_ns": 2, "end_ns": 1}).status_code == 400


def test_operations_in_both_apis(spyglass: RunningServer) -> None:
    _call_chain(spyglass, False)
    spyglass.wait_for(lambda s: s["spans_received"] == 3)
    spyglass.flush()
    ops = spyglass.get("/api/v1/services/frontend/operations").json()["operations"]
    assert ops == [{"name": "GET /", "kind": "server"}, {"name": "call checkout", "kind": "client"}]
    jaeger = spyglass.get("/api/operations", params={"service": "frontend", "spanKind": "client"}).json()
    assert jaeger["data"] == [{"name": "call checkout", "spanKind": "client"}]


def test_openapi_and_ui_shell(spyglass: RunningServer) -> None:
    document = spyglass.get("/openapi.json").json()
    for path in ("/api/v1/status", "/api/v1/traces", "/api/v1/traces/{trace_id}", "/api/traces"):
        assert path in document["paths"]
    for page in ("/", "/traces/0123456789abcdef0123456789abcdef"):
        response = spyglass.get(page)
        assert response.status_code == 200 and "<title>spyglass</title>" in response.text
    bundle = spyglass.get("/static/dist/app.js")
    assert bundle.status_code == 200, "the web UI is not built (scripts/setup.sh builds it)"
    assert "innerHTML" not in bundle.text  # span values are only ever rendered as text


def test_uninstrumented_peers_are_edges_too(spyglass: RunningServer) -> None:
    tracer = provider("payments", http_exporter(spyglass.otlp_http)).get_tracer("t")
    with tracer.start_as_current_span("POST /charge", kind=SpanKind.SERVER):
        with tracer.start_as_current_span(
            "POST /score", kind=SpanKind.CLIENT, attributes={"peer.service": "fraud-api"}
        ):
            pass
        with tracer.start_as_current_span(
            "INSERT payments", kind=SpanKind.CLIENT, attributes={"db.system": "postgresql"}
        ) as db:
            db.set_status(Status(StatusCode.ERROR))
    spyglass.wait_for(lambda s: s["spans_received"] == 3)
    spyglass.flush()
    edges = {(e["parent"], e["child"]): e for e in spyglass.get("/api/v1/dependencies").json()["edges"]}
    assert set(edges) == {("payments", "fraud-api"), ("payments", "postgresql")}
    assert (
        edges[("payments", "postgresql")]["errors"] == 1
        and edges[("payments", "fraud-api")]["uninstrumented"]
    )


def test_compare_two_traces(spyglass: RunningServer) -> None:
    tracer = provider("checkout", http_exporter(spyglass.otlp_http)).get_tracer("t")
    ids = []
    for queries in (1, 6):
        with tracer.start_as_current_span("POST /checkout", kind=SpanKind.SERVER) as root:
            for _ in range(queries):
                with tracer.start_as_current_span("SELECT item", kind=SpanKind.CLIENT):
                    pass
        ids.append(format(root.get_span_context().trace_id, "032x"))
    spyglass.wait_for(lambda s: s["spans_received"] == 9)
    result = spyglass.get("/api/v1/compare", params={"a": ids[0], "b": ids[1]}).json()
    select = next(row for row in result["operations"] if row["operation"] == "SELECT item")
    assert (select["a"]["calls_per_trace"], select["b"]["calls_per_trace"]) == (1, 6)
    assert select["difference"]["calls_per_trace"] == 5
    own = [abs(row["difference"]["own_ms_per_trace"]) for row in result["operations"]]
    assert own == sorted(own, reverse=True)  # the largest difference in own time first
    assert spyglass.get("/api/v1/compare", params={"a": ids[0]}).status_code == 400
    assert spyglass.get("/api/v1/compare", params={"a": ids[0], "b": "f" * 32}).status_code == 400
