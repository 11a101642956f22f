"""Three satellites on loopback make one cluster: each trace is decided whole by its owner and stored once,
any member answers for the whole cluster, and aggregates equal a single satellite's for the same traffic."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.trace import SpanKind

from tests.cluster.conftest import post_otlp, settle
from tests.cluster.workload import mixed_traces, requests
from tests.conftest import RunningServer
from tests.support.otel import record


def _flush(members: list[RunningServer]) -> None:
    for member in members:
        member.flush()


def test_one_trace_sent_to_three_satellites_is_stored_once_and_whole(
    start_cluster: Callable[..., tuple[list[RunningServer], Path]],
) -> None:
    members, _ = start_cluster(3)
    tracer, exporter, provider = record("shop", **{"service.version": "2.0"})
    with tracer.start_as_current_span("GET /checkout", kind=SpanKind.SERVER) as root:
        root.add_event("start", {"items": 3})
        for i in range(8):
            with tracer.start_as_current_span(f"step {i}", attributes={"i": i, "ratio": 0.5, "tags": ["a"]}):
                pass
    provider.shutdown()
    spans = list(exporter.get_finished_spans())
    trace_id = spans[0].context.trace_id.to_bytes(16, "big")
    # Each satellite receives a third of the trace's spans.
    for index, member in enumerate(members):
        post_otlp(member, encode_spans(spans[index::3]).SerializeToString())
    settle(members, len(spans))
    _flush(members)

    stored = [m.server.store.trace(trace_id).num_rows for m in members]
    assert sorted(stored) == [0, 0, len(spans)]
    owner = members[stored.index(len(spans))]
    assert owner.server.cluster is not None
    assert owner.server.cluster.membership.ring().owner_of(trace_id) == owner.api
    for member in members:
        body = member.get(f"/api/v1/traces/{trace_id.hex()}").json()
        assert len(body["spans"]) == len(spans)
        assert "partial" not in body
        root_span = next(s for s in body["spans"] if s["parent_span_id"] is None)
        assert root_span["events"][0]["attributes"] == {"items": 3}
        assert {
            s["attributes"].get("tags") == ["a"] for s in body["spans"] if s["name"] != "GET /checkout"
        } == {True}
        found = member.get("/api/v1/traces", params={"service": "shop", "limit": 100}).json()["traces"]
        assert [t["trace_id"] for t in found] == [trace_id.hex()]
        assert found[0]["span_count"] == len(spans)
    status = members[0].status()
    assert status["spans_received"] == len(spans)
    assert status["traces_decided"] == 1
    assert status["spans_stored"] == len(spans)
    assert len(status["cluster"]["by_member"]) == 3
    assert sum(m["spans_received"] for m in status["cluster"]["by_member"]) == len(spans)


def _metrics(member: RunningServer, start_ns: int, end_ns: int, **params: Any) -> Any:
    response = member.get("/api/v1/metrics", params={"start_ns": start_ns, "end_ns": end_ns, **params})
    assert response.status_code == 200, response.text
    return response.json()


def _counted(groups: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[float]]:
    """Groups without their rates, and the rates (of groups and of their series points). A rate divides by the
    time data covers, which begins at the first span a member saw itself: members differ there by a moment."""

    def strip(item: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in item.items() if k != "rate_per_s"}
        if "series" in out:
            out["series"] = [strip(point) for point in out["series"]]
        return out

    rates = [g["rate_per_s"] for g in groups]
    rates += [p["rate_per_s"] for g in groups for p in g.get("series", [])]
    return [strip(g) for g in groups], rates


def _same(got: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Counts, errors and percentiles exactly; rates within 5%: over the ~40 s the data covers, a member's first
    span may arrive up to a second after the single satellite's while the machine is loaded (CI saw 2.8%)."""
    (got_groups, got_rates), (want_groups, want_rates) = _counted(got), _counted(expected)
    assert got_groups == want_groups
    assert got_rates == pytest.approx(want_rates, rel=0.05)


def test_cluster_aggregates_and_traces_equal_a_single_satellite(
    start_cluster: Callable[..., tuple[list[RunningServer], Path]],
    start_server: Callable[..., RunningServer],
) -> None:
    members, _ = start_cluster(3)
    single = start_server()
    spans, trace_ids = mixed_traces(400, seed=3)
    bodies = requests(spans, per_request=97)  # cut across traces: most traces reach several satellites
    for index, body in enumerate(bodies):
        post_otlp(members[index % 3], body)
        post_otlp(single, body)
    settle(members, spans.num_rows)
    settle([single], spans.num_rows)
    _flush(members)
    single.flush()

    start_ns = int(spans.column("start_ns").to_numpy().min()) - 60 * 10**9
    end_ns = int(spans.column("start_ns").to_numpy().max()) + 60 * 10**9
    groupings: list[dict[str, Any]] = [
        {},
        {"group_by": "service"},
        {"group_by": "operation"},
        {"group_by": "service.version"},
        {"group_by": "customer.id"},  # not rolled up: every member's spans, summed where they are
        {"group_by": "customer.id", "step_s": 10},
    ]
    for params in groupings:
        expected = _metrics(single, start_ns, end_ns, **params)
        for member in members:
            _same(_metrics(member, start_ns, end_ns, **params)["groups"], expected["groups"])
    series = _metrics(single, start_ns, end_ns, step_s=10, service="checkout")
    _same(_metrics(members[1], start_ns, end_ns, step_s=10, service="checkout")["groups"], series["groups"])
    assert expected["groups"] and series["groups"][0]["count"] > 0

    # The same traces are stored, each whole and once.
    query = {"start_ns": start_ns, "end_ns": end_ns, "limit": 20000}
    found_single = {
        t["trace_id"]: t["span_count"] for t in single.get("/api/v1/traces", params=query).json()["traces"]
    }
    found_cluster = {
        t["trace_id"]: t["span_count"]
        for t in members[2].get("/api/v1/traces", params=query).json()["traces"]
    }
    assert found_cluster == found_single
    assert len(found_single) == len(trace_ids)
    assert sum(m.server.store.span_count() for m in members) == spans.num_rows
    status = members[0].status()
    assert status["spans_received"] == single.status()["spans_received"] == spans.num_rows
    assert status["traces_decided"] == len(trace_ids)
    assert members[0].get("/api/v1/services").json() == single.get("/api/v1/services").json()


def test_killing_a_satellite_loses_only_its_undecided_traces(
    start_cluster: Callable[..., tuple[list[RunningServer], Path]],
    start_server: Callable[..., RunningServer],
) -> None:
    members, peers_file = start_cluster(3, decision_wait_s=60.0)
    ring = members[0].server.cluster.membership.ring()  # type: ignore[union-attr]
    decided, decided_ids = mixed_traces(150, seed=5)
    for index, body in enumerate(requests(decided, per_request=50)):
        post_otlp(members[index % 3], body)
    settle(members, decided.num_rows)
    _flush(members)
    undecided, undecided_ids = mixed_traces(150, seed=6)
    for index, body in enumerate(requests(undecided, per_request=50)):
        post_otlp(members[index % 3], body)
    settle(members, decided.num_rows + undecided.num_rows)

    victim, survivors = members[2], members[:2]
    # A crash: the victim's memory (its undecided traces) is gone; what it stored stays in its file.
    victim.server.satellite.buffer.take_all()
    victim.server.stop_thread()

    owned_by_victim = {t for t in decided_ids + undecided_ids if ring.owner_of(t) == victim.api}
    assert 0 < len(owned_by_victim) < 300
    # Answers say which member is missing rather than failing or hanging.
    search = survivors[0].get("/api/v1/traces", params={"limit": 20000, "start_ns": 0})
    body = search.json()
    assert body["partial"] is True and body["missing_peers"] == [victim.api]
    assert search.headers["x-spyglass-partial"] == victim.api
    status = survivors[1].status()
    assert status["cluster"]["missing"] == [victim.api]

    _flush(survivors)
    query = {"limit": 20000, "start_ns": 0}
    found = {
        t["trace_id"]: t["span_count"]
        for t in survivors[0].get("/api/v1/traces", params=query).json()["traces"]
    }
    counts = _span_counts(decided) | _span_counts(undecided)
    for trace_id in decided_ids + undecided_ids:
        if trace_id in owned_by_victim:  # stored by the victim (unavailable now) or undecided there (lost)
            assert trace_id.hex() not in found
        else:
            assert found[trace_id.hex()] == counts[trace_id]
    gone = next(iter(owned_by_victim))
    missing = survivors[1].get(f"/api/v1/traces/{gone.hex()}")
    assert missing.status_code == 404 and missing.json()["partial"] is True
    kept = next(t for t in undecided_ids if t not in owned_by_victim)
    assert len(survivors[1].get(f"/api/v1/traces/{kept.hex()}").json()["spans"]) == counts[kept]

    # New traffic: the victim's share now goes to the survivors.
    before = sum(s.server.satellite.counters.spans_received for s in survivors)
    later, later_ids = mixed_traces(60, seed=7)
    for index, body in enumerate(requests(later, per_request=40)):
        post_otlp(survivors[index % 2], body)
    settle(survivors, before + later.num_rows)
    _flush(survivors)
    assert sum(s.server.store.trace(t).num_rows for s in survivors for t in later_ids) == later.num_rows

    # The victim comes back on its address and file: what it had decided is there again, its undecided is not.
    revived = start_server(
        data_dir=victim.data_dir, port=victim.ports.api, peers_file=peers_file, decision_wait_s=60.0
    )
    assert revived.api == victim.api
    for survivor in survivors:
        _wait_up(survivor, victim.api)
    query = {"limit": 20000, "start_ns": 0}
    found_ids = {t["trace_id"] for t in survivors[0].get("/api/v1/traces", params=query).json()["traces"]}
    lost = {t.hex() for t in undecided_ids if t in owned_by_victim}
    assert lost and not lost & found_ids
    assert {t.hex() for t in decided_ids} <= found_ids
    assert {t.hex() for t in undecided_ids} - lost <= found_ids


def _span_counts(spans: Any) -> dict[bytes, int]:
    ids = spans.column("trace_id").to_pylist()
    return {t: ids.count(t) for t in set(ids)}


def _wait_up(member: RunningServer, url: str, timeout_s: float = 10.0) -> None:
    import time

    cluster = member.server.cluster
    assert cluster is not None
    deadline = time.monotonic() + timeout_s
    while url in cluster.membership.down:
        assert time.monotonic() < deadline, f"{url} still down"
        time.sleep(0.1)


@pytest.mark.parametrize(
    "verb",
    [
        "store.trace",
        "store.find_traces",
        "store.scan",
        "store.rollups",
        "store.operations",
        "store.logs_for_traces",
        "live.trace",
        "live.rollups",
        "unknown",
    ],
)
def test_malformed_peer_requests_are_400_never_500(
    start_cluster: Callable[..., tuple[list[RunningServer], Path]], verb: str
) -> None:
    """Peers send well-formed requests; whoever else holds the query token gets a 400 for garbage."""
    (member,), _ = start_cluster(1)
    for args in (
        {},
        {"trace_id": "zz"},
        {"trace_id": 5},
        {"columns": ["'; DROP TABLE spans; --"], "start_ns": 0, "end_ns": 1},
        {"start_ns": "x", "end_ns": None},
        {"service": ["a"], "limit": -5},
        {"start_ns": 10**30, "end_ns": 10**31},
        {"bogus": 1},
    ):
        response = httpx.post(member.api + "/api/v1/peer/" + verb, json=args, timeout=10)
        assert response.status_code in (200, 400, 404), (verb, args, response.status_code, response.text)
    assert member.get("/api/v1/status").status_code == 200
