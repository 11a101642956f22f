"""Mixed traffic through a real server at --sample-rate 0.02: what is stored, what is kept, what is counted."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import numpy as np
import pyarrow.compute as pc

from spyglass.demo.synthetic import otlp_requests, synthetic_traffic
from spyglass.satellite.trace_features import trace_features
from tests.conftest import RunningServer

OPERATIONS = {
    "GET /product": (0.6, 20.0, 0.4),
    "POST /checkout": (0.3, 120.0, 0.5),
    "GET /health": (0.1, 2.0, 0.2),
}
ERRORS = {"db timeout after 30ms": 0.003, "card declined": 0.0015}


def test_two_percent_sampling_end_to_end(start_server: Callable[..., RunningServer]) -> None:
    spyglass: RunningServer = start_server(sample_rate=0.02, decision_wait_s=0.3)
    rng = np.random.default_rng(2024)
    start_ns = 1_790_000_000_000_000_000
    traffic = synthetic_traffic(
        rng, 40_000, OPERATIONS, ERRORS, slow_mode=("GET /product", 0.02, 8.0), start_ns=start_ns
    )
    traffic = traffic.sort_by([("start_ns", "ascending")])  # a trace's spans arrive together, as from SDKs
    with httpx.Client() as client:
        for body in otlp_requests(traffic, 1000):
            response = client.post(
                spyglass.otlp_http + "/v1/traces",
                content=body,
                headers={"Content-Type": "application/x-protobuf"},
            )
            assert response.status_code == 200, response.text
    spyglass.wait_for(lambda s: s["spans_received"] == traffic.num_rows, timeout_s=60)
    spyglass.flush()
    status = spyglass.status()

    truth = trace_features(traffic)
    n = truth.num_rows
    assert status["traces_decided"] == n
    stored = spyglass.get("/api/v1/traces", params={"limit": 20000, "start_ns": start_ns - 1}).json()[
        "traces"
    ]
    assert len(stored) == status["traces_kept"]
    assert 0.015 <= len(stored) / n <= 0.03, len(stored) / n
    stored_ids = {t["trace_id"] for t in stored}
    weights = sum(t["sample_weight"] for t in stored)
    assert abs(weights - n) / n <= 0.10, weights

    ids = [t.hex() for t in truth.column("trace_id").to_pylist()]
    errors = np.array(truth.column("has_error").to_pylist())
    kept = np.array([i in stored_ids for i in ids])
    assert kept[errors].mean() >= 0.95
    durations = truth.column("duration_ns").to_numpy()
    operations = np.array(truth.column("root_operation").to_pylist())
    for operation in OPERATIONS:
        of_op = operations == operation
        outliers = of_op & (durations > np.quantile(durations[of_op], 0.99))
        assert kept[outliers].mean() >= 0.90, operation

        # Metrics come from 100% of spans, not from the sample: exact counts, percentiles within 1%.
        metrics = spyglass.get(
            "/api/v1/metrics",
            params={
                "service": "shop",
                "operation": operation,
                "start_ns": start_ns - 1,
                "end_ns": start_ns + 10**12,
            },
        ).json()
        (group,) = metrics["groups"]
        root_spans = traffic.filter(
            pc.and_(pc.equal(traffic.column("service"), "shop"), pc.equal(traffic.column("name"), operation))
        )
        span_ms = np.sort(root_spans.column("duration_ns").to_numpy()) / 1e6
        assert group["count"] == len(span_ms)
        for key, q in (("p50_ms", 0.50), ("p99_ms", 0.99)):
            exact = span_ms[int(np.ceil(q * len(span_ms))) - 1]
            assert abs(group[key] - exact) <= 0.01 * exact, (operation, key, group[key], exact)
    db_errors = spyglass.get(
        "/api/v1/metrics", params={"service": "db", "start_ns": start_ns - 1, "end_ns": start_ns + 10**12}
    ).json()["groups"][0]
    assert db_errors["errors"] == int(errors.sum())
