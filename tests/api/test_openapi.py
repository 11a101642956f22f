"""``/openapi.json`` is generated from the code and describes what the server really answers: every route the
query port serves is in it, and every route's real answers (200s and refusals, from a server fed by the
OpenTelemetry SDK) validate against the schema the document gives for that status."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from jsonschema import Draft202012Validator
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from starlette.routing import Mount

from tests.conftest import RunningServer
from tests.support.otel import http_exporter, provider

MINUTE_NS = 60 * 10**9
#: Routes of the web UI (HTML for the browser) and its static files: not the API, so not in the document.
UI_ROUTES = {"/", "/services/{service}", "/search", "/traces/{trace_id}", "/map", "/explain", "/compare"}
UI_ROUTES |= {"/critical-path", "/slos", "/static"}


@dataclass
class Fed:
    """A server with a baseline minute and a slower, failing regression minute of ``checkout`` behind
    ``frontend``, a deploy between them, span events, links and correlated logs."""

    server: RunningServer
    t0: int
    trace_ids: list[str] = field(default_factory=list)
    span_id: str = ""


def _feed(server: RunningServer) -> Fed:
    t0 = (time.time_ns() - 10 * MINUTE_NS) // MINUTE_NS * MINUTE_NS
    fed = Fed(server, t0)
    providers = {
        version: (
            provider("frontend", http_exporter(server.otlp_http), **{"service.version": "1.0"}),
            provider("checkout", http_exporter(server.otlp_http), **{"service.version": version}),
        )
        for version in ("1.0", "2.0")
    }
    previous = None
    for i in range(120):
        regression = i >= 60
        frontend, checkout = providers["2.0" if regression else "1.0"]
        start = t0 + i * MINUTE_NS // 60
        work_ns = (40 if regression else 10) * 10**6 + (i % 7) * 10**5
        links: list[Link] = [Link(previous)] if previous is not None else []
        with frontend.get_tracer("t").start_as_current_span(
            "GET /checkout", kind=SpanKind.SERVER, start_time=start, end_on_exit=False, links=links
        ) as root:
            with checkout.get_tracer("t").start_as_current_span(
                "POST /pay", kind=SpanKind.SERVER, start_time=start + 10**6, end_on_exit=False
            ) as child:
                child.add_event("charge", {"amount": i}, timestamp=start + 2 * 10**6)
                if regression and i % 3 == 0:
                    child.set_status(Status(StatusCode.ERROR, "card declined"))
                child.end(end_time=start + 10**6 + work_ns)
            root.end(end_time=start + 2 * 10**6 + work_ns)
        previous = root.get_span_context()
        fed.trace_ids.append(f"{root.get_span_context().trace_id:032x}")
        fed.span_id = f"{child.get_span_context().span_id:016x}"
    for frontend, checkout in providers.values():
        frontend.force_flush()
        checkout.force_flush()
    server.wait_for(lambda s: s["spans_received"] == 240)
    _send_logs(server, fed.trace_ids[-1], t0)
    server.flush()
    return fed


def _send_logs(server: RunningServer, trace_id: str, t0: int) -> None:
    body = {
        "resourceLogs": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
                "scopeLogs": [
                    {
                        "scope": {"name": "payments"},
                        "logRecords": [
                            {
                                "timeUnixNano": str(t0 + 61 * MINUTE_NS // 60),
                                "severityNumber": 17,
                                "body": {"stringValue": "card declined"},
                                "traceId": trace_id,
                                "attributes": [{"key": "card", "value": {"stringValue": "visa"}}],
                            }
                        ],
                    }
                ],
            }
        ]
    }
    assert httpx.post(server.otlp_http + "/v1/logs", json=body).status_code == 200


#: A read-only SLO (the probes try to delete it), which the fed spans do not burn.
SLOS_FILE = "- {name: Checkout, service: frontend, operation: GET /checkout, objective: 0.5}\n"
#: An SLO the fed regression minute burns (its requests take 40 ms, not 10), posted once every span is stored:
#: its alert, explained, is among the answers checked.
BURNING = {
    "name": "Burning",
    "service": "frontend",
    "operation": "GET /checkout",
    "objective": 0.99,
    "latency_ms": 20,
}


def _wait_for_an_alert(server: RunningServer, timeout_s: float = 30.0) -> None:
    assert httpx.post(server.api + "/api/v1/slos", json=BURNING).status_code == 201
    deadline = time.monotonic() + timeout_s
    while not server.get("/api/v1/alerts").json()["alerts"]:
        assert time.monotonic() < deadline, "the fed burn opened no alert"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fed]:
    from spyglass.server import SpyglassServer, loopback_config

    directory = tmp_path_factory.mktemp("openapi")
    (directory / "slos.yaml").write_text(SLOS_FILE)
    config = loopback_config(
        directory / "data", decision_wait_s=0.2, slos_file=directory / "slos.yaml", slo_interval_s=0.3
    )
    server = SpyglassServer(config)
    ports = server.start_in_thread()
    try:
        fed = _feed(RunningServer(server, ports, Path(server.config.data_dir)))
        _wait_for_an_alert(fed.server)
        yield fed
    finally:
        server.stop_thread()


@pytest.fixture(scope="module")
def document(fed: Fed) -> dict[str, Any]:
    response = fed.server.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _probes(fed: Fed) -> list[tuple[str, str, str, dict[str, Any], Any, int]]:
    """(method, documented path, real path, query, JSON body, expected status) for every route."""
    t0, trace_id, span_id = fed.t0, fed.trace_ids[-1], fed.span_id
    window = {"start_ns": t0, "end_ns": t0 + 2 * MINUTE_NS}
    explain = {
        "service": "frontend",
        "operation": "GET /checkout",
        "baseline_start_ns": t0,
        "baseline_end_ns": t0 + MINUTE_NS,
        "start_ns": t0 + MINUTE_NS,
        "end_ns": t0 + 2 * MINUTE_NS,
    }
    slo = {
        "name": "Probe",
        "service": "frontend",
        "operation": "GET /checkout",
        "objective": 0.9,
        "latency_ms": 20,
    }
    one = "/api/v1/traces/{trace_id}"
    us = {"start": t0 // 1000, "end": (t0 + 2 * MINUTE_NS) // 1000}
    return [
        ("get", "/api/v1/status", "/api/v1/status", {}, None, 200),
        ("get", "/api/v1/services", "/api/v1/services", {}, None, 200),
        (
            "get",
            "/api/v1/services/{service}/operations",
            "/api/v1/services/checkout/operations",
            {},
            None,
            200,
        ),
        ("get", one, f"/api/v1/traces/{trace_id}", {}, None, 200),
        ("get", one, f"/api/v1/traces/{trace_id}", {"format": "columns"}, None, 200),
        ("get", one, f"/api/v1/traces/{trace_id}", {"format": "columns", "spans_up_to": 100}, None, 200),
        ("get", one, f"/api/v1/traces/{trace_id}", {"offset": 0, "limit": 1}, None, 200),
        ("get", one, f"/api/v1/traces/{trace_id}", {"span_id": span_id}, None, 200),
        ("get", one, "/api/v1/traces/" + "0" * 31 + "1", {}, None, 404),
        ("get", one, "/api/v1/traces/nothex", {}, None, 400),
        ("get", one, f"/api/v1/traces/{trace_id}", {"format": "xml"}, None, 400),
        ("get", "/api/v1/traces/{trace_id}/logs", f"/api/v1/traces/{trace_id}/logs", {}, None, 200),
        (
            "get",
            "/api/v1/traces/{trace_id}/critical-path",
            f"/api/v1/traces/{trace_id}/critical-path",
            {},
            None,
            200,
        ),
        (
            "get",
            "/api/v1/traces",
            "/api/v1/traces",
            {**window, "service": "checkout", "error": "true"},
            None,
            200,
        ),
        ("get", "/api/v1/traces", "/api/v1/traces", {"limit": "-1"}, None, 400),
        ("get", "/api/v1/dependencies", "/api/v1/dependencies", window, None, 200),
        ("get", "/api/v1/metrics", "/api/v1/metrics", window, None, 200),
        ("get", "/api/v1/metrics", "/api/v1/metrics", {**window, "group_by": "service.version"}, None, 200),
        (
            "get",
            "/api/v1/metrics",
            "/api/v1/metrics",
            {**window, "group_by": "service", "step_s": 30},
            None,
            200,
        ),
        ("get", "/api/v1/metrics", "/api/v1/metrics", {"step_s": "0"}, None, 400),
        ("post", "/api/v1/explain", "/api/v1/explain", {}, explain, 200),
        ("post", "/api/v1/explain", "/api/v1/explain", {}, {**explain, "signal": "errors"}, 200),
        ("post", "/api/v1/explain", "/api/v1/explain", {}, {**explain, "signal": "cpu"}, 400),
        (
            "get",
            "/api/v1/critical-path",
            "/api/v1/critical-path",
            {**window, "service": "frontend", "operation": "GET /checkout"},
            None,
            200,
        ),
        ("get", "/api/v1/critical-path", "/api/v1/critical-path", {}, None, 400),
        ("get", "/api/v1/slos", "/api/v1/slos", {}, None, 200),
        ("post", "/api/v1/slos", "/api/v1/slos", {}, slo, 201),
        ("post", "/api/v1/slos", "/api/v1/slos", {}, slo, 409),
        ("post", "/api/v1/slos", "/api/v1/slos", {}, {**slo, "objective": 1.5}, 400),
        ("get", "/api/v1/slos/{slo_id}", "/api/v1/slos/probe", {}, None, 200),
        ("get", "/api/v1/slos/{slo_id}", "/api/v1/slos/nothing", {}, None, 404),
        (
            "get",
            "/api/v1/slos/{slo_id}/series",
            "/api/v1/slos/checkout/series",
            {**window, "step_s": 30},
            None,
            200,
        ),
        ("get", "/api/v1/slos/{slo_id}/series", "/api/v1/slos/nothing/series", {}, None, 404),
        ("get", "/api/v1/slos/{slo_id}/series", "/api/v1/slos/checkout/series", {"step_s": "0"}, None, 400),
        ("delete", "/api/v1/slos/{slo_id}", "/api/v1/slos/checkout", {}, None, 409),
        ("delete", "/api/v1/slos/{slo_id}", "/api/v1/slos/probe", {}, None, 200),
        ("delete", "/api/v1/slos/{slo_id}", "/api/v1/slos/probe", {}, None, 404),
        ("get", "/api/v1/alerts", "/api/v1/alerts", {}, None, 200),
        (
            "get",
            "/api/v1/compare",
            "/api/v1/compare",
            {"a": fed.trace_ids[0], "b": ",".join(fed.trace_ids[-3:])},
            None,
            200,
        ),
        ("get", "/api/v1/compare", "/api/v1/compare", {"a": "zz"}, None, 400),
        ("get", "/api/v1/ui/services", "/api/v1/ui/services", window, None, 200),
        (
            "get",
            "/api/v1/ui/latency-heatmap",
            "/api/v1/ui/latency-heatmap",
            {**window, "service": "checkout"},
            None,
            200,
        ),
        ("get", "/api/v1/ui/deployments", "/api/v1/ui/deployments", window, None, 200),
        ("get", "/metrics", "/metrics", {}, None, 200),
        ("get", "/api/services", "/api/services", {}, None, 200),
        ("get", "/api/services/{service}/operations", "/api/services/checkout/operations", {}, None, 200),
        ("get", "/api/operations", "/api/operations", {"service": "checkout"}, None, 200),
        ("get", "/api/operations", "/api/operations", {}, None, 400),
        ("get", "/api/traces/{trace_id}", f"/api/traces/{trace_id}", {}, None, 200),
        ("get", "/api/traces/{trace_id}", "/api/traces/" + "0" * 31 + "1", {}, None, 404),
        (
            "get",
            "/api/traces",
            "/api/traces",
            {**us, "service": "checkout", "tags": '{"error":"true"}'},
            None,
            200,
        ),
        ("get", "/api/traces", "/api/traces", {"traceID": [trace_id, "0" * 32]}, None, 200),
        ("get", "/api/traces", "/api/traces", {"service": "checkout", "minDuration": "soon"}, None, 400),
        (
            "get",
            "/api/dependencies",
            "/api/dependencies",
            {"endTs": (t0 + 2 * MINUTE_NS) // 10**6},
            None,
            200,
        ),
    ]


def _schema(document: dict[str, Any], method: str, path: str, status: int, media: str) -> dict[str, Any]:
    responses = document["paths"][path][method]["responses"]
    assert str(status) in responses, (
        f"{method.upper()} {path} answers {status}, which the document does not list"
    )
    content = responses[str(status)].get("content", {})
    assert media in content, (
        f"{method.upper()} {path} {status} answers {media}; the document lists {list(content)}"
    )
    return {**content[media]["schema"], "components": document["components"]}


def test_every_route_the_query_port_serves_is_in_the_document(fed: Fed, document: dict[str, Any]) -> None:
    app = fed.server.server.api_app()
    served = set()
    for route in iter_route_contexts(app.routes):
        path = route.path
        if path is None or path in UI_ROUTES or path == "/openapi.json":
            continue
        assert not isinstance(route.original_route, Mount), f"a mount at {path} the test cannot enumerate"
        methods = set(route.methods or {"GET"}) - {"HEAD"}
        served |= {(method.lower(), path) for method in methods}
    assert len(served) > 20
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert served - documented == set(), "served but not described"
    assert documented - served == set(), "described but not served"


def test_every_documented_route_is_probed(fed: Fed, document: dict[str, Any]) -> None:
    probed = {(method, path) for method, path, *_ in _probes(fed)}
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert documented - probed == set(), "a documented route without a probe here: add one"


def test_real_answers_validate_against_the_document(fed: Fed, document: dict[str, Any]) -> None:
    found_causes = alert_causes = 0
    for method, path, real, query, body, status in _probes(fed):
        response = httpx.request(method, fed.server.api + real, params=query, json=body, timeout=30)
        where = f"{method.upper()} {real} {query or ''}"
        assert response.status_code == status, (where, response.text[:500])
        if path == "/metrics":
            _schema(document, method, path, status, "text/plain")
            continue
        schema = _schema(document, method, path, status, "application/json")
        answer = response.json()
        errors = sorted(Draft202012Validator(schema).iter_errors(answer), key=lambda e: list(e.absolute_path))
        assert not errors, (where, [f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:5]])
        if path == "/api/v1/explain" and status == 200:
            found_causes += len(answer["findings"])
        if path == "/api/v1/alerts":
            alert_causes += sum(len(alert["findings"]) for alert in answer["alerts"])
    assert found_causes > 0, "explain found nothing, so its findings' shape went unchecked"
    assert alert_causes > 0, "the alert explained nothing, so its findings' shape went unchecked"


def test_the_document_is_valid_openapi_with_no_422s(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert "422" not in operation["responses"], f"{method} {path}: refusals are 400s"
            assert operation.get("summary"), f"{method} {path} has no summary"
    names = set(document["components"]["schemas"])
    assert not {"HTTPValidationError", "ValidationError"} & names
