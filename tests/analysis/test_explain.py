"""explain on synthetic span tables: one test per finding kind, folding, ownership, and no change."""

from __future__ import annotations

from typing import Any

import pytest

from spyglass.analysis.explain import ExplainRequest, explain_spans
from spyglass.analysis.ownership import Ownership
from tests.support.explain_workloads import S, shop, windows_request, workload


def request(signal: str = "latency") -> ExplainRequest:
    return windows_request("api", "GET /x", signal)


def first(findings: list[dict[str, Any]]) -> tuple[Any, ...]:
    f = findings[0]
    return (f["kind"], f["service"], f.get("key") or f.get("operation"), f.get("value"))


def test_attribute_names_the_slow_host() -> None:
    spans = workload(lambda rng, reg, i: shop(rng, reg, i, slow_host="db-2"))
    findings = explain_spans(spans, request())
    assert first(findings) == ("attribute", "db", "host.name", "db-2"), findings[:3]
    top = findings[0]
    assert 0.5 < top["score"] <= 1
    assert (
        top["evidence"]["regression"]["symptom_share_with"]
        > top["evidence"]["regression"]["symptom_share_without"]
    )
    assert len(top["examples"]["regression"]) == 3 and top["examples"]["baseline"]
    assert all(len(t) == 32 for t in top["examples"]["regression"])
    # request.id is unique per trace: never a finding
    assert not any(f.get("key") == "request.id" for f in findings)


def test_coincident_attributes_fold_into_the_version() -> None:
    spans = workload(lambda rng, reg, i: shop(rng, reg, i, slow_version="2.0"))
    findings = explain_spans(spans, request())
    assert first(findings) == ("attribute", "db", "service.version", "2.0"), findings[:3]
    assert "host.name=db-2" in findings[0]["evidence"]["also"]
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
    top = findings[0]
    assert (top["kind"], top["service"], top["key"], top["value"]) in {
        ("attribute", "db", "cloud.availability_zone", "zone-a"),
        ("attribute", "db", "host.name", "db-1"),
    }, findings[:3]
    # The zone switched the errors on where they start: one finding, with the error source's numbers.
    source = top["evidence"]["through"]
    assert (source["kind"], source["service"], source["operation"]) == ("error_source", "db", "SELECT row")
    assert source["regression"]["failed_traces_originating_here"] > 0.2


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


def test_full_rollout_of_a_slow_version_in_single_span_traces() -> None:
    """Every request is one span; in the regression every instance runs 2.0, which makes each request 9x
    slower. The version is the cause (the operation's own time is where it shows, and ranks after it)."""

    def one_span(rng: Any, regression: bool, i: int) -> list[S]:
        version = "2.0" if regression else "1.9"
        dur = rng.lognormvariate(2.3, 0.3) * (9.0 if regression else 1.0)
        host = f"api-{i % 3 + 1}"
        return [S("api", "GET /x", 0.0, dur, resource={"service.version": version, "host.name": host})]

    findings = explain_spans(workload(one_span), request())
    assert first(findings) == ("attribute", "api", "service.version", "2.0"), findings[:3]
    assert findings[0]["score"] > 0.8


def test_a_slow_uninstrumented_peer_is_named_by_its_peer_service() -> None:
    """The calls to a peer that sends no spans of its own (a vendor's API) are childless client spans: the
    finding names the peer, and its sentence gives the calls' own time (it said "n/a": it read the numbers a
    request value has)."""

    def with_vendor(rng: Any, regression: bool, i: int) -> list[S]:
        vendor_ms = rng.uniform(4, 6) * (5.0 if regression else 1.0)
        render_ms = rng.uniform(2, 3)
        return [
            S("api", "GET /x", 0.0, 1 + vendor_ms + render_ms + 1),
            S("api", "POST /score", 1.0, vendor_ms, 0, attrs={"peer.service": "fraud-api"}),
            S("api", "render", 1 + vendor_ms, render_ms, 0),
        ]

    findings = explain_spans(workload(with_vendor), request())
    assert first(findings) == ("attribute", "api", "peer.service", "fraud-api"), findings[:3]
    sentence = findings[0]["summary"]
    assert "n/a" not in sentence and "None" not in sentence, sentence
    assert "fraud-api" in sentence and "POST /score" in sentence, sentence
    reg, base = findings[0]["evidence"]["regression"], findings[0]["evidence"]["baseline"]
    assert reg["own_ms_per_trace"] == pytest.approx(25, rel=0.1)
    assert base["own_ms_per_trace"] == pytest.approx(5, rel=0.1)
    assert f"from {base['own_ms_per_trace']} to {reg['own_ms_per_trace']} ms" in sentence, sentence
