"""Services that head-sample before they export (OpenTelemetry's consistent probability sampling, ``ot=th`` in
``tracestate``), sent by the OpenTelemetry SDK to a real server: every aggregate shows the true traffic.

Three services, 6,000 requests each: ``storefront`` keeps 10%, ``ledger`` 25%, ``auditor`` everything (no
threshold at all). Both of the first two call a shared ``accounts`` service, which follows its caller's decision,
so its spans carry two different counts: the fast calls from ``storefront`` (two per request) stand for 10 spans
each, the slow ones from ``ledger`` for 4. Unweighted, ``accounts`` would look like 2,700 calls, mostly slow."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import numpy as np
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests.conftest import RunningServer
from tests.support.consistent_sampling import ConsistentProbabilitySampler, EvenTraceIds

N = 6000
SPREAD_S = 100.0
KEEP = {"storefront": 0.1, "ledger": 0.25, "auditor": 1.0}
ROOTS = {"storefront": "GET /cart", "ledger": "POST /entry", "auditor": "GET /audit"}


@dataclass
class Truth:
    """What really happened, before any sampling."""

    requests: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    #: The errors the kept spans stand for: what any weighting of the sample can know (the true count +- luck).
    sampled_errors: dict[str, float] = field(default_factory=dict)
    plans: dict[str, int] = field(default_factory=dict)
    account_ms: list[float] = field(default_factory=list)
    regression_requests: int = 0


def provider(service: str, endpoint: str, offset: int) -> TracerProvider:
    keep = KEEP[service] if service in KEEP else None
    sampler = ParentBased(ALWAYS_ON) if keep in (None, 1.0) else ConsistentProbabilitySampler(keep)
    tracer_provider = TracerProvider(
        resource=Resource.create({"service.name": service}),
        sampler=sampler,
        id_generator=EvenTraceIds(offset),
    )
    exporter = OTLPSpanExporter(endpoint=endpoint + "/v1/traces")
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=100_000))
    return tracer_provider


def send_traffic(endpoint: str, start_ns: int) -> Truth:
    """Each service's requests spread over ``SPREAD_S``; in the second half, storefront's ``pro`` plan requests
    take 4x longer (the regression explain must weigh)."""
    providers = {name: provider(name, endpoint, i << 40) for i, name in enumerate([*KEEP, "accounts"])}
    # ``accounts`` follows its caller, whatever sampler it has.
    accounts = providers["accounts"].get_tracer("accounts")
    rng = np.random.default_rng(11)
    truth = Truth()
    step = int(SPREAD_S * 1e9 / N)
    for service in KEEP:
        tracer = providers[service].get_tracer(service)
        truth.requests[service] = N
        truth.errors[service] = 0
        truth.sampled_errors[service] = 0.0
        for i in range(N):
            begin = start_ns + i * step + int(rng.integers(0, step // 2))
            error = i % 20 == 7
            plan = "pro" if i % 3 == 0 else "free"
            base_ms = {"storefront": 8.0, "ledger": 40.0, "auditor": 3.0}[service]
            slow = service == "storefront" and plan == "pro" and i >= N // 2
            duration_ms = base_ms * float(rng.lognormal(0, 0.25)) * (4.0 if slow else 1.0)
            end = begin + int(duration_ms * 1e6)
            root = tracer.start_span(
                ROOTS[service], kind=SpanKind.SERVER, start_time=begin, attributes={"plan": plan}
            )
            context = trace.set_span_in_context(root)
            # storefront calls accounts twice per request (fast), ledger once (slow).
            for _ in range({"storefront": 2, "ledger": 1, "auditor": 0}[service]):
                account_ms = (2.0 if service == "storefront" else 20.0) * float(rng.lognormal(0, 0.1))
                child = accounts.start_span(
                    "GET /account", context=context, kind=SpanKind.SERVER, start_time=begin
                )
                child.end(end_time=begin + int(account_ms * 1e6))
                truth.account_ms.append(account_ms)
            if service == "storefront":
                query = tracer.start_span(
                    "SELECT carts",
                    context=context,
                    kind=SpanKind.CLIENT,
                    start_time=begin,
                    attributes={"db.system": "postgresql"},
                )
                query.end(end_time=begin + int(duration_ms * 0.5e6))
                truth.plans[plan] = truth.plans.get(plan, 0) + 1
                truth.regression_requests += i >= N // 2
            if error:
                root.set_status(Status(StatusCode.ERROR, "declined"))
                truth.errors[service] += 1
                truth.sampled_errors[service] += root.is_recording() / KEEP[service]
            root.end(end_time=end)
    for tracer_provider in providers.values():
        tracer_provider.force_flush()
        tracer_provider.shutdown()
    return truth


def test_head_sampled_services_show_their_true_traffic(start_server: Callable[..., RunningServer]) -> None:
    server = start_server(sample_rate=1.0, decision_wait_s=0.3)
    start_ns = time.time_ns() - int((SPREAD_S + 30) * 1e9)
    end_ns = start_ns + int((SPREAD_S + 5) * 1e9)
    truth = send_traffic(server.otlp_http, start_ns)
    expected_spans = sum(round(N * keep) for keep in KEEP.values()) + round(N * 0.1) * 3 + round(N * 0.25)
    server.wait_for(lambda s: s["spans_received"] >= expected_spans, timeout_s=60)
    server.flush()
    window = {"start_ns": start_ns, "end_ns": end_ns}

    def metrics(**params: Any) -> list[dict[str, Any]]:
        response = server.get("/api/v1/metrics", params={**window, **params})
        assert response.status_code == 200, response.text
        return cast("list[dict[str, Any]]", response.json()["groups"])

    # Counts and errors of each service's requests: the true ones, from 10% and 25% samples.
    for service, operation in ROOTS.items():
        (group,) = metrics(service=service, operation=operation)
        assert group["count"] == pytest.approx(truth.requests[service], rel=0.02), service
        assert group["errors"] == pytest.approx(truth.sampled_errors[service], rel=0.01), service
        assert group["errors"] == pytest.approx(truth.errors[service], rel=0.1), service
    # The shared service: calls and percentiles from spans of two different counts. Two thirds of the calls are
    # fast, so the true median is a fast call's; in the unweighted sample five of nine are slow.
    (accounts,) = metrics(service="accounts", operation="GET /account")
    assert accounts["count"] == pytest.approx(3 * N, rel=0.02)
    for key, q in (("p50_ms", 0.5), ("p90_ms", 0.9)):
        true_ms = float(np.quantile(truth.account_ms, q))
        assert accounts[key] == pytest.approx(true_ms, rel=0.05), (key, accounts, true_ms)
    assert accounts["rate_per_s"] == pytest.approx(3 * N / SPREAD_S, rel=0.05)
    # A group-by on an attribute no rollup tracks (answered from stored spans, by their weights).
    plans = {
        g["key"]: g["count"] for g in metrics(service="storefront", operation="GET /cart", group_by="plan")
    }
    assert plans == pytest.approx(truth.plans, rel=0.02)
    # The dependency graph.
    edges = server.get("/api/v1/dependencies", params=window).json()["edges"]
    calls = {(e["parent"], e["child"]): e["calls"] for e in edges}
    assert calls[("storefront", "accounts")] == pytest.approx(2 * N, rel=0.02)
    assert calls[("ledger", "accounts")] == pytest.approx(N, rel=0.02)
    assert calls[("storefront", "postgresql")] == pytest.approx(N, rel=0.02)
    # A stored storefront trace stands for 10 (kept by spyglass with probability 1, by the service with 0.1).
    found = server.get("/api/v1/traces", params={**window, "service": "storefront", "limit": 5}).json()[
        "traces"
    ]
    assert [t["sample_weight"] for t in found] == pytest.approx([10.0] * 5, rel=1e-6)

    # Explain: storefront's pro plan got slow in the second half; its evidence counts true requests.
    middle = start_ns + int(SPREAD_S / 2 * 1e9)
    response = httpx.post(
        server.api + "/api/v1/explain",
        json={
            "service": "storefront",
            "operation": "GET /cart",
            "start_ns": middle,
            "end_ns": end_ns,
            "baseline_start_ns": start_ns,
            "baseline_end_ns": middle,
            "signal": "latency",
        },
        timeout=60,
    )
    assert response.status_code == 200, response.text
    top = response.json()["findings"][0]
    assert (top["key"], top["value"]) == ("plan", "pro"), top
    requests = top["evidence"]["regression"]["requests"]
    assert requests == pytest.approx(truth.regression_requests, rel=0.03), top["evidence"]
