"""explain on synthetic span tables: one test per finding kind, folding, ownership, and no change."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pytest

from spyglass.analysis.explain import ExplainRequest, explain_spans
from spyglass.analysis.ownership import Ownership
from spyglass.api.explain import parse_explain
from spyglass.api.params import BadRequest
from spyglass.model.builder import SpanBatchBuilder, encode_attributes

MS = 1_000_000
BASE_T0 = 1_700_000_000 * 10**9
REG_T0 = BASE_T0 + 100 * 10**9


@dataclass
class S:
    """One span of a synthetic trace; ``parent`` indexes an earlier span of the same trace."""

    service: str
    name: str
    start_ms: float
    dur_ms: float
    parent: int | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    resource: dict[str, Any] = field(default_factory=dict)
    error: bool = False


def build(traces: list[tuple[int, list[S]]]) -> pa.Table:
    builder = SpanBatchBuilder()
    rng = random.Random(1)
    for start_ns, spans in traces:
        trace_id = rng.getrandbits(128).to_bytes(16, "big")
        ids = [rng.getrandbits(64).to_bytes(8, "big") for _ in spans]
        for i, span in enumerate(spans):
            resource = {"service.name": span.service, "service.namespace": f"{span.service}-team", **span.resource}
            builder.add(
                trace_id=trace_id,
                span_id=ids[i],
                parent_span_id=None if span.parent is None else ids[span.parent],
                service=span.service,
                name=span.name,
                kind=2,
                start_ns=start_ns + int(span.start_ms * MS),
                duration_ns=int(span.dur_ms * MS),
                status_code=2 if span.error else 0,
                attributes=encode_attributes(span.attrs.items()),
                resource=encode_attributes(resource.items()),
            )
    return pa.Table.from_batches([builder.finish()])


def workload(make: Any, n: int = 300, seed: int = 3) -> pa.Table:
    """``n`` baseline and ``n`` regression traces from ``make(rng, regression, i) -> [S, ...]``."""
    rng = random.Random(seed)
    traces = []
    for regression, t0 in ((False, BASE_T0), (True, REG_T0)):
        for i in range(n):
            traces.append((t0 + i * 100 * MS, make(rng, regression, i)))
    return build(traces)


def request(signal: str = "latency") -> ExplainRequest:
    return ExplainRequest(
        service="api",
        operation="GET /x",
        start_ns=REG_T0,
        end_ns=REG_T0 + 60 * 10**9,
        baseline_start_ns=BASE_T0,
        baseline_end_ns=BASE_T0 + 60 * 10**9,
        signal=signal,  # type: ignore[arg-type]
    )


def shop(
    rng: random.Random,
    regression: bool,
    i: int,
    *,
    slow_host: str | None = None,
    slow_version: str | None = None,
    render_extra: float = 0.0,
    queries: int = 1,
    sequential: bool = False,
    fail_zone: str | None = None,
) -> list[S]:
    """api GET /x -> (db query on one of 3 hosts || cache get), then render; a customer on the root."""
    host = rng.choice(["db-1", "db-2", "db-3"])
    zone = {"db-1": "zone-a", "db-2": "zone-b", "db-3": "zone-b"}[host]
    version = slow_version if (regression and slow_version and host == "db-2") else "1.0"
    db_ms = rng.uniform(8, 12)
    if regression and slow_host == host:
        db_ms *= 4
    if regression and slow_version and version == slow_version:
        db_ms *= 4
    cache_ms = rng.uniform(6, 9)
    render_ms = rng.uniform(2, 3) + (render_extra if regression else 0.0)
    failing = bool(regression and fail_zone == zone and rng.random() < 0.9)
    n_queries = queries if regression else 1
    query_ms = db_ms / n_queries if n_queries == 1 else 2.0
    db_total = query_ms * n_queries + 1
    if regression and sequential:
        cache_start = 1 + db_total
        children_end = cache_start + cache_ms
    else:
        cache_start = 1.0
        children_end = 1 + max(db_total, cache_ms)
    root_ms = children_end + render_ms + 1
    resource = {"host.name": host, "service.version": version, "cloud.availability_zone": zone}
    spans = [
        S("api", "GET /x", 0, root_ms, attrs={"customer.id": f"c{rng.randint(1, 5)}", "request.id": f"r{i}{regression}"}, error=failing),
        S("db", "query", 1, db_total, 0, resource=resource, error=failing),
        S("cache", "get", cache_start, cache_ms, 0),
        S("api", "render", children_end, render_ms, 0),
    ]
    for q in range(n_queries):
        spans.append(S("db", "SELECT row", 1.5 + q * query_ms, query_ms * 0.9, 1, resource=resource,
                       error=failing and q == n_queries - 1))
    return spans


def first(findings: list[dict[str, Any]]) -> tuple[Any, ...]:
    f = findings[0]
    return (f["kind"], f["service"], f.get("key") or f.get("operation"), f.get("value"))


def test_attribute_names_the_slow_host() -> None:
    spans = workload(lambda rng, reg, i: shop(rng, reg, i, slow_host="db-2"))
    findings = explain_spans(spans, request())
    assert first(findings) == ("attribute", "db", "host.name", "db-2"), findings[:3]
    top = findings[0]
    assert 0.5 < top["score"] <= 1
    assert top["evidence"]["regression"]["symptom_share_with"] > top["evidence"]["regression"]["symptom_share_without"]
    assert len(top["examples"]["regression"]) == 3 and top["examples"]["baseline"]
    assert all(len(t) == 32 for t in top["examples"]["regression"])
    # request.id is unique per trace: never a finding
    assert not any(f.get("key") == "request.id" for f in findings)


def test_coincident_attributes_fold_into_the_version() -> None:
    spans = workload(lambda rng, reg, i: shop(rng, reg, i, slow_version="2.0"))
    findings = explain_spans(spans, request())
    assert first(findings) == ("attribute", "db", "service.version", "2.0"), findings[:3]
    assert "db host.name=db-2" in findings[0]["evidence"]["also"]
    assert not any(f.get("key") == "host.name" and f.get("value") == "db-2" for f in findings)


def test_operation_own_time() -> None:
    spans = workload(lambda rng, reg, i: shop(rng, reg, i, render_extra=15.0))
    findings = explain_spans(spans, request())
    assert first(findings) == ("operation", "api", "render", None), findings[:3]
    reg, base = findings[0]["evidence"]["regression"], findings[0]["evidence"]["baseline"]
    assert reg["own_ms_per_trace"] - base["own_ms_per_trace"] == pytest.approx(15, abs=1)


def test_n_plus_one() -> None:
    spans = workload(lambda rng, reg, i: shop(rng, reg, i, queries=20))
    findings = explain_spans(spans, request())
    assert first(findings) == ("n_plus_one", "db", "SELECT row", None), findings[:3]
    evidence = findings[0]["evidence"]
    assert evidence["regression"]["calls_per_trace"] == pytest.approx(20)
    assert evidence["baseline"]["calls_per_trace"] == pytest.approx(1)


def test_sequential() -> None:
    spans = workload(lambda rng, reg, i: shop(rng, reg, i, sequential=True))
    findings = explain_spans(spans, request())
    assert first(findings) == ("sequential", "api", "GET /x", None), findings[:3]
    assert findings[0]["evidence"]["time_lost_ms_per_trace"] > 4


def test_error_source_and_zone() -> None:
    spans = workload(lambda rng, reg, i: shop(rng, reg, i, fail_zone="zone-a"))
    findings = explain_spans(spans, request("errors"))
    kinds = {(f["kind"], f["service"], f.get("key") or f.get("operation"), f.get("value")) for f in findings[:2]}
    assert ("attribute", "db", "cloud.availability_zone", "zone-a") in kinds or (
        "attribute", "db", "host.name", "db-1") in kinds, findings[:3]
    assert ("error_source", "db", "SELECT row", None) in kinds, findings[:3]
    source = next(f for f in findings if f["kind"] == "error_source")
    assert source["evidence"]["regression"]["failed_traces_originating_here"] > 0.2


def test_ownership_on_every_finding() -> None:
    spans = workload(lambda rng, reg, i: shop(rng, reg, i, slow_host="db-2", render_extra=3.0))
    ownership = Ownership({"api": "edge-team"})
    findings = explain_spans(spans, request(), ownership)
    assert findings
    for f in findings:
        expected = "edge-team" if f["service"] == "api" else f"{f['service']}-team"
        assert f["owner"] == expected
        assert f["summary"] and f["summary"].endswith(".")


def test_nothing_changed_means_no_findings() -> None:
    spans = workload(lambda rng, reg, i: shop(rng, reg, i))
    assert explain_spans(spans, request()) == []
    assert explain_spans(spans, request("errors")) == []
    assert explain_spans(spans.slice(0, 0), request()) == []


def test_parse_explain_rejects_bad_bodies() -> None:
    good = {"service": "api", "operation": "GET /x", "start_ns": 10, "end_ns": 20,
            "baseline_start_ns": 0, "baseline_end_ns": 10, "signal": "errors"}
    assert parse_explain(good).signal == "errors"
    for bad in ([], {**good, "service": ""}, {**good, "end_ns": 5}, {**good, "signal": "cpu"},
                {k: v for k, v in good.items() if k != "baseline_end_ns"}, {**good, "start_ns": "10"}):
        with pytest.raises(BadRequest):
            parse_explain(bad)
