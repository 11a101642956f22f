"""SLOs through the API of a real server: defined, listed with their numbers from 100% of spans, refused with
the bad field named, kept across a restart; file-defined ones are read-only; a burn opens one alert, delivered
to a real webhook receiver, that resolves when the burn stops."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer
from tests.support.webhook_receiver import webhook_receiver

CHECKOUT = {"service": "shop", "operation": "GET /checkout"}


def send(server: RunningServer, ok: int, failed: int = 0, duration_ms: float = 5.0) -> None:
    """``ok + failed`` single-span traces of the shop's checkout, starting now, over OTLP/HTTP JSON."""
    now_ns = time.time_ns()
    spans = [
        {
            "traceId": os.urandom(16).hex(),
            "spanId": os.urandom(8).hex(),
            "name": CHECKOUT["operation"],
            "kind": 2,
            "startTimeUnixNano": str(now_ns + i * 1000),
            "endTimeUnixNano": str(now_ns + i * 1000 + int(duration_ms * 1e6)),
            "status": {"code": 2 if i < failed else 0},
        }
        for i in range(ok + failed)
    ]
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": CHECKOUT["service"]}}]}
    body = {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": spans}]}]}
    before = server.status()["spans_received"]
    assert httpx.post(server.otlp_http + "/v1/traces", json=body).status_code == 200
    server.wait_for(lambda s: s["spans_received"] >= before + ok + failed)


def post(server: RunningServer, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.api + "/api/v1/slos", json=body, timeout=10)


def test_create_list_get_delete_with_exact_numbers(start_server: Callable[..., RunningServer]) -> None:
    server = start_server()
    send(server, ok=95, failed=5, duration_ms=5.0)
    send(server, ok=100, duration_ms=900.0)
    errors = post(server, {"name": "Checkout succeeds", **CHECKOUT, "objective": 0.99})
    assert errors.status_code == 201, errors.text
    created = errors.json()
    assert (
        created["id"] == "checkout-succeeds" and created["kind"] == "errors" and created["period_days"] == 28
    )
    assert created["requests"] == 200 and created["bad_requests"] == 5
    assert created["sli"] == pytest.approx(0.975)
    # 5 bad of the 2 the period allows (1% of 200).
    assert created["budget_remaining"] == pytest.approx(1 - 5 / 2)
    assert created["burn_rates"] == pytest.approx({"5m": 2.5, "30m": 2.5, "1h": 2.5, "6h": 2.5})
    latency = post(
        server,
        {"name": "Checkout fast", **CHECKOUT, "objective": 0.9, "latency_ms": 300, "owner": "shop-web"},
    )
    assert latency.status_code == 201, latency.text
    assert latency.json()["bad_requests"] == 100 and latency.json()["sli"] == pytest.approx(0.5)
    listed = server.get("/api/v1/slos").json()["slos"]
    assert [slo["id"] for slo in listed] == ["checkout-succeeds", "checkout-fast"]
    one = server.get("/api/v1/slos/checkout-fast").json()
    assert one["owner"] == "shop-web" and one["defined_in"] == "api" and one["latency_ms"] == 300
    assert httpx.delete(server.api + "/api/v1/slos/checkout-fast").json() == {"deleted": "checkout-fast"}
    assert server.get("/api/v1/slos/checkout-fast").status_code == 404
    assert httpx.delete(server.api + "/api/v1/slos/checkout-fast").status_code == 404


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"objective": 1.5}, "objective must be < 1"),
        ({"objective": 0}, "objective must be > 0"),
        ({"kind": "cpu"}, "kind must be 'latency' or 'errors'"),
        ({"kind": "latency"}, "latency_ms is required for a latency SLO"),
        ({"latency_ms": -5}, "latency_ms must be > 0"),
        ({"service": ""}, "service must be a non-empty string"),
        ({"period_days": 0}, "period_days must be >= 1"),
        ({"objectve": 0.9}, "unknown field 'objectve'"),
    ],
)
def test_a_bad_slo_is_a_400_naming_the_field(
    spyglass: RunningServer, change: dict[str, Any], names: str
) -> None:
    response = post(spyglass, {"name": "n", **CHECKOUT, "objective": 0.99, **change})
    assert response.status_code == 400
    assert names in response.json()["error"]


def test_a_taken_id_is_a_409(spyglass: RunningServer) -> None:
    assert post(spyglass, {"name": "n", **CHECKOUT, "objective": 0.99}).status_code == 201
    again = post(spyglass, {"name": "N", **CHECKOUT, "objective": 0.9})
    assert again.status_code == 409 and "'n' is already defined" in again.json()["error"]


def test_api_slos_survive_a_restart_and_file_slos_are_read_only(
    start_server: Callable[..., RunningServer], tmp_path: Path
) -> None:
    slos = tmp_path / "slos.yaml"
    slos.write_text("- {name: From the file, service: shop, operation: GET /checkout, objective: 0.999}\n")
    first = start_server(data_dir=tmp_path / "data", slos_file=slos)
    assert post(first, {"name": "Posted", **CHECKOUT, "objective": 0.9, "latency_ms": 100}).status_code == 201
    refused = httpx.delete(first.api + "/api/v1/slos/from-the-file")
    assert refused.status_code == 409 and str(slos) in refused.json()["error"]
    first.server.stop_thread()
    second = start_server(data_dir=tmp_path / "data", slos_file=slos)
    listed = second.get("/api/v1/slos").json()["slos"]
    assert [(s["id"], s["defined_in"]) for s in listed] == [("from-the-file", str(slos)), ("posted", "api")]
    assert listed[1]["latency_ms"] == 100


def test_a_burn_opens_one_alert_and_resolves_it(start_server: Callable[..., RunningServer]) -> None:
    with webhook_receiver() as receiver:
        server = start_server(slo_interval_s=0.2, alert_webhook=receiver.url)
        created = post(server, {"name": "Checkout", **CHECKOUT, "objective": 0.99, "owner": "shop-web"})
        assert created.status_code == 201
        send(server, ok=30, failed=30)
        firing = receiver.wait_for(1)[0]
        assert firing["state"] == "firing" and firing["resolved_ns"] is None
        assert firing["slo"]["id"] == "checkout" and set(firing["pairs_firing"]) == {"fast", "slow"}
        assert firing["burn_rates"]["5m"] == pytest.approx(50.0)
        assert firing["routing_key"] == "shop-web" and firing["owners"] == ["shop-web"]
        assert firing["explained"]["signal"] == "errors" and firing["explained"]["end_ns"] > 0
        assert firing["budget_burnt"] == pytest.approx(30 / 0.6)
        time.sleep(1.0)  # still firing: nothing more is sent
        assert len(receiver.received()) == 1
        listed = server.get("/api/v1/alerts").json()
        assert [a["id"] for a in listed["alerts"]] == [firing["id"]] and listed["alerts"][0][
            "state"
        ] == "firing"
        send(server, ok=1000)
        resolved = receiver.wait_for(2)[1]
        assert resolved["id"] == firing["id"] and resolved["state"] == "resolved"
        assert resolved["resolved_ns"] >= firing["started_ns"]
        answer = server.get("/api/v1/alerts").json()
        assert answer["alerts"][0]["state"] == "resolved"
        assert answer["webhook"] == {"queued": 0, "delivered": 2, "retried": 0, "failed": 0, "dropped": 0}


def test_deleting_a_burning_slo_resolves_its_alert(start_server: Callable[..., RunningServer]) -> None:
    with webhook_receiver() as receiver:
        server = start_server(slo_interval_s=0.2, alert_webhook=receiver.url)
        assert post(server, {"name": "Checkout", **CHECKOUT, "objective": 0.99}).status_code == 201
        send(server, ok=10, failed=30)
        firing = receiver.wait_for(1)[0]
        assert httpx.delete(server.api + "/api/v1/slos/checkout").status_code == 200
        resolved = receiver.wait_for(2)[1]
        assert (resolved["id"], resolved["state"]) == (firing["id"], "resolved")


def test_series_counts_each_step_as_the_slo_does(start_server: Callable[..., RunningServer]) -> None:
    server = start_server()
    send(server, ok=90, failed=10, duration_ms=5.0)
    send(server, ok=50, duration_ms=900.0)
    assert post(server, {"name": "Fast", **CHECKOUT, "objective": 0.9, "latency_ms": 300}).status_code == 201
    now_ns = time.time_ns()
    window = {"start_ns": now_ns - 600 * 10**9, "end_ns": now_ns + 60 * 10**9}
    answer = server.get("/api/v1/slos/fast/series", params={**window, "step_s": 60}).json()
    assert answer["slo_id"] == "fast" and answer["objective"] == 0.9 and answer["step_s"] == 60
    points = answer["points"]
    assert [p["start_ns"] % (60 * 10**9) for p in points] == [0] * len(points)
    assert points[0]["start_ns"] <= window["start_ns"] < points[0]["start_ns"] + 60 * 10**9
    assert points[-1]["start_ns"] < window["end_ns"] <= points[-1]["start_ns"] + 60 * 10**9
    assert sum(p["requests"] for p in points) == 150 and sum(p["bad_requests"] for p in points) == 50
    busy = [p for p in points if p["requests"]]
    assert all(p["sli"] == pytest.approx(1 - p["bad_requests"] / p["requests"]) for p in busy)
    assert all(p["sli"] is None and p["burn_rate"] is None for p in points if not p["requests"])
    # The default step gives about 90 points; a step finer than the rollups is rounded up to whole buckets.
    assert len(server.get("/api/v1/slos/fast/series", params=window).json()["points"]) <= 91
    assert server.get("/api/v1/slos/fast/series", params={**window, "step_s": 3}).json()["step_s"] == 10
    assert server.get("/api/v1/slos/nothing/series").status_code == 404
    day = {"start_ns": now_ns - 86_400 * 10**9, "end_ns": now_ns}
    assert server.get("/api/v1/slos/fast/series", params={**day, "step_s": 10}).status_code == 400
