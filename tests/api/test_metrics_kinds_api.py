"""``kind`` on ``/api/v1/metrics`` and the latency heatmap: a service's endpoint and its own call to another
service often share a name (``POST /checkout`` served, then ``POST /checkout`` asked of the checkout service).
Without ``kind`` both are counted, as ever; with it, only spans of that kind, from stored and pending rollups
and from spans alike. Sent by the real OTel SDK over OTLP/HTTP."""

from __future__ import annotations

import time
from typing import Any, cast

import numpy as np
import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from spyglass.store.protocol import RollupQuery
from tests.conftest import RunningServer
from tests.support.otel import http_exporter

MINUTE = 60 * 1_000_000_000
SHARED = "POST /checkout"


def send(spyglass: RunningServer, starts: list[int], rng: np.random.Generator) -> dict[str, Any]:
    """Each request: a SERVER span, under it a CLIENT span of the same name (slower, failing one time in five)
    and an INTERNAL span; every span carries a tier. Returns what was sent, by kind."""
    provider = TracerProvider(resource=Resource.create({"service.name": "front"}))
    provider.add_span_processor(
        BatchSpanProcessor(
            http_exporter(spyglass.otlp_http), max_queue_size=100_000, max_export_batch_size=500
        )
    )
    tracer = provider.get_tracer("kinds-test")
    sent: dict[str, Any] = {"server": [], "client": [], "internal": [], "client_errors": 0, "tiers": {}}
    for i, start in enumerate(starts):
        tier = "gold" if i % 3 == 0 else "silver"
        served = int(rng.integers(20_000_000, 40_000_000))
        called = int(rng.integers(2_000_000, 15_000_000))
        server = tracer.start_span(SHARED, kind=SpanKind.SERVER, start_time=start, attributes={"tier": tier})
        inside = trace.set_span_in_context(server)
        client = tracer.start_span(
            SHARED, context=inside, kind=SpanKind.CLIENT, start_time=start + 1_000, attributes={"tier": tier}
        )
        if i % 5 == 0:
            client.set_status(Status(StatusCode.ERROR, "declined"))
            sent["client_errors"] += 1
        client.end(end_time=start + 1_000 + called)
        render = tracer.start_span(
            "render", context=inside, start_time=start + 2_000, attributes={"tier": tier}
        )
        render.end(end_time=start + 3_000_000)
        server.end(end_time=start + served)
        sent["server"].append(served)
        sent["client"].append(called)
        sent["internal"].append(2_998_000)
        sent["tiers"][tier] = sent["tiers"].get(tier, 0) + 1
    provider.force_flush()
    provider.shutdown()
    return sent


@pytest.fixture(scope="module")
def starts() -> list[int]:
    """Two minutes of requests ten minutes ago (stored rollups by the time of asking) and a few seconds ago
    (still pending in the aggregator)."""
    now = time.time_ns()
    base = now - now % MINUTE - 10 * MINUTE
    return [base + i * 400_000_000 for i in range(300)] + [now - 3_000_000_000 + i for i in range(40)]


@pytest.fixture
def loaded(spyglass: RunningServer, starts: list[int]) -> tuple[RunningServer, dict[str, Any], int]:
    sent = send(spyglass, starts, np.random.default_rng(5))
    spyglass.wait_for(lambda s: s["spans_received"] == 3 * len(starts))
    base = starts[0]
    deadline = time.monotonic() + 10
    while spyglass.server.store.rollups(RollupQuery(base, base + 2 * MINUTE, service="front")).num_rows == 0:
        assert time.monotonic() < deadline, "rollups never reached the store"
        time.sleep(0.1)
    return spyglass, sent, base


def metrics(spyglass: RunningServer, **params: Any) -> dict[str, Any]:
    response = spyglass.get("/api/v1/metrics", params=params)
    assert response.status_code == 200, response.text
    return cast("dict[str, Any]", response.json())


def p99_ms(durations: list[int]) -> float:
    ordered = np.sort(durations)
    return float(ordered[max(0, int(np.ceil(0.99 * len(ordered))) - 1)] / 1e6)


def test_an_operation_of_one_kind_counts_only_those_spans(loaded: Any) -> None:
    spyglass, sent, _ = loaded
    both = metrics(spyglass, service="front", operation=SHARED)["groups"][0]
    assert both["count"] == len(sent["server"]) + len(sent["client"])  # no kind: every span, as before
    for kind in ("server", "client"):
        (group,) = metrics(spyglass, service="front", operation=SHARED, kind=kind)["groups"]
        assert group["key"] == f"front/{SHARED}"
        assert group["count"] == len(sent[kind])
        assert group["errors"] == (sent["client_errors"] if kind == "client" else 0)
        assert abs(group["p99_ms"] - p99_ms(sent[kind])) <= 0.01 * p99_ms(sent[kind])
    assert metrics(spyglass, service="front", operation=SHARED, kind="consumer")["groups"][0]["count"] == 0


def test_grouped_and_series_answers_take_the_kind(loaded: Any) -> None:
    spyglass, sent, base = loaded
    by_operation = metrics(spyglass, service="front", group_by="operation", kind="server")["groups"]
    assert {g["key"]: g["count"] for g in by_operation} == {SHARED: len(sent["server"])}
    internal = metrics(spyglass, service="front", group_by="operation", kind="internal")["groups"]
    assert {g["key"]: g["count"] for g in internal} == {"render": len(sent["internal"])}
    window = {"start_ns": base, "end_ns": base + 3 * MINUTE}
    series = metrics(spyglass, service="front", operation=SHARED, kind="client", step_s=60, **window)
    assert sum(p["count"] for p in series["groups"][0]["series"]) == 300


def test_an_attribute_read_from_spans_takes_the_kind(loaded: Any) -> None:
    spyglass, sent, _ = loaded
    spyglass.flush()  # every trace decided and stored: buffered + stored then covers each span once
    body = metrics(spyglass, service="front", group_by="tier", kind="client")
    assert body["estimated"] is True
    assert {g["key"]: g["count"] for g in body["groups"]} == sent["tiers"]
    everything = metrics(spyglass, service="front", group_by="tier")
    assert {g["key"]: g["count"] for g in everything["groups"]} == {
        k: 3 * n for k, n in sent["tiers"].items()
    }


def test_the_heatmap_takes_the_kind(loaded: Any) -> None:
    spyglass, sent, base = loaded
    window = {"start_ns": base, "end_ns": time.time_ns(), "step_s": 60}

    def total(**params: str) -> int:
        response = spyglass.get("/api/v1/ui/latency-heatmap", params={**window, "service": "front", **params})
        assert response.status_code == 200, response.text
        return int(response.json()["total"])

    assert total(operation=SHARED, kind="server") == len(sent["server"])
    assert total(operation=SHARED) == len(sent["server"]) + len(sent["client"])


@pytest.mark.parametrize("kind", ["SERVER", "span", "2", "server,client"])
def test_an_unknown_kind_is_400(spyglass: RunningServer, kind: str) -> None:
    for path in ("/api/v1/metrics", "/api/v1/ui/latency-heatmap"):
        response = spyglass.get(path, params={"kind": kind})
        assert response.status_code == 400, (path, response.text)
        assert "kind" in response.text
