"""Critical path on hand-computed traces: parallel, async, skewed, nested, rootless; and the aggregate shares."""

from __future__ import annotations

import os
import random

import numpy as np
import pyarrow as pa
import pytest

from spyglass.analysis.critical_path import critical_path, critical_path_contributions, span_critical_ns
from spyglass.model.builder import SpanBatchBuilder
from spyglass.model.schema import SpanKind

SERVER, CLIENT, INTERNAL = SpanKind.SERVER, SpanKind.CLIENT, SpanKind.INTERNAL
PRODUCER, CONSUMER = SpanKind.PRODUCER, SpanKind.CONSUMER
BASE = 1_700_000_000_000_000_000
MS = 1_000_000

# (span id, parent id or None, service, operation, kind, start ms, end ms)
Span = tuple[str, str | None, str, str, int, int, int]


def _sid(name: str) -> bytes:
    return name.encode().ljust(8, b"\0")[:8]


def build(*traces: list[Span], weights: list[float] | None = None) -> pa.Table:
    builder = SpanBatchBuilder()
    trace_ids = []
    for spans in traces:
        trace_id = os.urandom(16)
        trace_ids.append(trace_id)
        for span_id, parent, service, name, kind, start, end in spans:
            builder.add(
                trace_id=trace_id,
                span_id=_sid(span_id),
                parent_span_id=_sid(parent) if parent else None,
                service=service,
                name=name,
                kind=kind,
                start_ns=BASE + start * MS,
                duration_ns=(end - start) * MS,
            )
    table = pa.Table.from_batches([builder.finish()])
    if weights is not None:
        per_trace = dict(zip(trace_ids, weights, strict=True))
        column = [per_trace[t] for t in table.column("trace_id").to_pylist()]
        table = table.append_column("sample_weight", pa.array(column, pa.float64()))
    return table


def by_span(spans: list[Span]) -> dict[str, int]:
    """Each span's critical time in ms, by span id (rows shuffled to show row order does not matter)."""
    table = build(spans)
    order = list(range(table.num_rows))
    random.Random(7).shuffle(order)
    table = table.take(pa.array(order))
    critical = span_critical_ns(table)
    ids = [sid.rstrip(b"\0").decode() for sid in table.column("span_id").to_pylist()]
    return {span_id: int(ns) // MS for span_id, ns in zip(ids, critical, strict=True)}


def test_sequential_children() -> None:
    spans: list[Span] = [
        ("a", None, "web", "GET /", SERVER, 0, 100),
        ("b", "a", "web", "load", INTERNAL, 10, 40),
        ("c", "a", "web", "render", INTERNAL, 50, 90),
    ]
    assert by_span(spans) == {"a": 30, "b": 30, "c": 40}


def test_back_to_back_children_both_count() -> None:
    spans: list[Span] = [
        ("a", None, "web", "GET /", SERVER, 0, 100),
        ("b", "a", "web", "one", INTERNAL, 0, 50),
        ("c", "a", "web", "two", INTERNAL, 50, 100),
    ]
    assert by_span(spans) == {"a": 0, "b": 50, "c": 50}


def test_parallel_children_only_last_finishing_chain() -> None:
    spans: list[Span] = [
        ("a", None, "web", "GET /", SERVER, 0, 100),
        ("b", "a", "web", "short", CLIENT, 10, 60),
        ("c", "a", "web", "long", CLIENT, 10, 90),
    ]
    assert by_span(spans) == {"a": 20, "b": 0, "c": 80}
    # The cursor skips children overlapping a critical one, and resumes with those ending before its start.
    spans = [
        ("a", None, "web", "GET /", SERVER, 0, 100),
        ("b", "a", "web", "fetch", CLIENT, 10, 80),
        ("c", "a", "web", "side", CLIENT, 20, 50),
        ("d", "a", "web", "tail", CLIENT, 85, 95),
        ("e", "a", "web", "head", CLIENT, 2, 8),
    ]
    assert by_span(spans) == {"a": 14, "b": 70, "c": 0, "d": 10, "e": 6}


def test_async_children_are_clipped_or_ignored() -> None:
    spans: list[Span] = [
        ("a", None, "web", "GET /", SERVER, 0, 100),
        ("x", "a", "web", "publish", PRODUCER, 20, 50),
        ("y", "x", "worker", "consume", CONSUMER, 40, 200),  # outlives its parent: clipped to [40, 50]
        ("w", "a", "worker", "later", CONSUMER, 110, 300),  # starts after the root ended: nothing
        ("z", "w", "worker", "nested", INTERNAL, 120, 130),
    ]
    assert by_span(spans) == {"a": 70, "x": 20, "y": 10, "w": 0, "z": 0}
    spans = [
        ("a", None, "web", "GET /", SERVER, 0, 100),
        ("w", "a", "web", "fire and forget", INTERNAL, 60, 160),
    ]
    assert by_span(spans) == {"a": 60, "w": 40}


def test_skewed_server_span_is_centered_in_its_client() -> None:
    spans: list[Span] = [
        ("r", None, "frontend", "GET /", SERVER, 0, 100),
        ("c", "r", "frontend", "call backend", CLIENT, 10, 90),
        # The backend's clock is 480 ms ahead: shifted to [20, 80], its own children with it.
        ("s", "c", "backend", "POST /api", SERVER, 500, 560),
        ("d", "s", "backend", "SELECT", CLIENT, 510, 530),
    ]
    assert by_span(spans) == {"r": 20, "c": 20, "s": 40, "d": 20}
    # Behind instead of ahead: same result.
    spans[2:] = [
        ("s", "c", "backend", "POST /api", SERVER, -300, -240),
        ("d", "s", "backend", "SELECT", CLIENT, -290, -270),
    ]
    assert by_span(spans) == {"r": 20, "c": 20, "s": 40, "d": 20}


def test_skewed_span_longer_than_its_client_is_clipped() -> None:
    spans: list[Span] = [
        ("r", None, "frontend", "GET /", SERVER, 0, 100),
        ("c", "r", "frontend", "call backend", CLIENT, 10, 90),
        ("s", "c", "backend", "POST /api", SERVER, 0, 200),  # longer than the client: clipped to [10, 90]
    ]
    assert by_span(spans) == {"r": 20, "c": 0, "s": 80}


def test_nested_depth_three() -> None:
    spans: list[Span] = [
        ("r", None, "web", "GET /", SERVER, 0, 100),
        ("a", "r", "web", "handler", INTERNAL, 10, 90),
        ("b", "a", "web", "query", CLIENT, 20, 80),
        ("c", "b", "db", "SELECT", SERVER, 30, 70),
        ("d", "b", "web", "retry", INTERNAL, 25, 60),  # parallel to c, ends first: off the path
    ]
    assert by_span(spans) == {"r": 20, "a": 20, "b": 20, "c": 40, "d": 0}


def test_trace_without_its_root() -> None:
    spans: list[Span] = [
        ("x", "gone", "api", "handle", SERVER, 10, 90),  # earliest orphan: the root
        ("y", "x", "api", "load", INTERNAL, 20, 50),
        ("o", "lost", "api", "cache", CLIENT, 30, 40),  # orphan inside the root: its child, parallel to y
        ("p", "lost", "api", "audit", CLIENT, 80, 200),  # orphan outside the root: ignored
        ("q", "p", "api", "write", INTERNAL, 85, 88),
    ]
    assert by_span(spans) == {"x": 50, "y": 30, "o": 0, "p": 0, "q": 0}
    # An orphan inside the root's window after the other children is on the path.
    spans[2] = ("o", "lost", "api", "cache", CLIENT, 60, 70)
    assert by_span(spans) == {"x": 40, "y": 30, "o": 10, "p": 0, "q": 0}


def test_parent_cycles_and_self_parents_are_ignored() -> None:
    spans: list[Span] = [
        ("r", None, "web", "GET /", SERVER, 0, 100),
        ("m", "n", "web", "m", INTERNAL, 10, 20),
        ("n", "m", "web", "n", INTERNAL, 30, 40),
        ("s", "s", "web", "self", INTERNAL, 50, 60),  # a self-parent is an orphan inside the root
    ]
    assert by_span(spans) == {"r": 90, "m": 0, "n": 0, "s": 10}


def test_per_trace_table_by_operation() -> None:
    trace: list[Span] = [
        ("a", None, "web", "GET /", SERVER, 0, 100),
        ("b", "a", "db", "SELECT", CLIENT, 10, 30),
        ("c", "a", "db", "SELECT", CLIENT, 40, 80),
        ("d", "a", "db", "SELECT", CLIENT, 45, 50),
    ]
    table = critical_path(build(trace))
    assert table.column_names == ["trace_id", "service", "operation", "critical_ns"]
    rows = [(r["service"], r["operation"], r["critical_ns"] // MS) for r in table.to_pylist()]
    assert rows == [("db", "SELECT", 60), ("web", "GET /", 40)]
    assert critical_path(build()).num_rows == 0


def _share_trace(a_own: int, total: int) -> list[Span]:
    """Root A for ``total`` ms with one child B covering all but ``a_own`` ms."""
    return [
        ("a", None, "front", "A", SERVER, 0, total),
        ("b", "a", "back", "B", CLIENT, a_own // 2, total - (a_own - a_own // 2)),
    ]


def test_aggregate_matches_amdahl_hand_computation() -> None:
    # A owns 15 of 100 ms and 30 of 200 ms: 45 of 300 ms is 15%, B has 85%.
    result = critical_path_contributions(build(_share_trace(15, 100), _share_trace(30, 200)))
    assert result["traces"] == 2
    b, a = result["contributions"]
    assert (b["service"], b["operation"], a["service"], a["operation"]) == ("back", "B", "front", "A")
    assert b["share"] == pytest.approx(0.85) and a["share"] == pytest.approx(0.15)
    assert a["max_speedup"] == pytest.approx(1 / 0.85) == pytest.approx(1.176, abs=1e-3)
    assert b["max_speedup"] == pytest.approx(6.667, abs=1e-3)
    assert (a["p50_ms"], a["p99_ms"]) == (15.0, 30.0)
    assert (b["p50_ms"], b["p99_ms"]) == (85.0, 170.0)


def test_aggregate_weights_traces_by_sample_weight() -> None:
    traces = (_share_trace(10, 100), _share_trace(50, 100))
    a = critical_path_contributions(build(*traces))["contributions"][1]
    assert a["share"] == pytest.approx(60 / 200)  # 30%
    weighted = critical_path_contributions(build(*traces, weights=[3.0, 1.0]))["contributions"]
    assert [c["operation"] for c in weighted] == ["B", "A"]
    assert weighted[1]["share"] == pytest.approx((3 * 10 + 50) / 400)  # 20%
    assert weighted[1]["p50_ms"] == 10.0  # three quarters of the weight has A at 10 ms


def test_aggregate_single_operation_has_no_finite_bound() -> None:
    result = critical_path_contributions(build([("a", None, "web", "GET /", SERVER, 0, 10)]))
    assert result["contributions"] == [
        {
            "service": "web",
            "operation": "GET /",
            "share": 1.0,
            "p50_ms": 10.0,
            "p99_ms": 10.0,
            "max_speedup": None,
        }
    ]
    assert critical_path_contributions(build()) == {"traces": 0, "contributions": []}


def test_random_traces_partition_the_root_duration() -> None:
    """Per trace, the critical times are non-negative and add up to the root's duration."""
    rng = random.Random(1)
    traces = []
    for _ in range(200):
        spans: list[Span] = [("s0", None, "svc0", "root", SERVER, 0, 1000)]
        for i in range(1, rng.randint(1, 30)):
            parent = spans[rng.randrange(len(spans))]
            start = rng.randint(parent[5] - 50, parent[6])
            end = start + rng.randint(0, 400)
            kind = rng.choice([SERVER, CLIENT, INTERNAL, CONSUMER])
            spans.append((f"s{i}", parent[0], f"svc{rng.randint(0, 3)}", f"op{i % 5}", kind, start, end))
        traces.append(spans)
    table = build(*traces)
    critical = span_critical_ns(table)
    assert (critical >= 0).all()
    per_trace = critical_path(table)
    totals: dict[bytes, int] = {}
    for row in per_trace.to_pylist():
        totals[row["trace_id"]] = totals.get(row["trace_id"], 0) + row["critical_ns"]
    assert len(totals) == 200 and set(totals.values()) == {1000 * MS}
    assert np.isclose(sum(c["share"] for c in critical_path_contributions(table)["contributions"]), 1.0)


def test_traces_far_apart_in_time() -> None:
    """Windows too wide for one int64 sort key fall back to ranks of the end times, same answer."""
    spans: list[Span] = [
        ("a", None, "web", "GET /", SERVER, 0, 100),
        ("b", "a", "web", "fetch", CLIENT, 10, 80),
        ("c", "a", "web", "side", CLIENT, 20, 50),
        ("d", "a", "web", "tail", CLIENT, 85, 95),
    ]
    near = build(spans, spans)
    far = pa.concat_tables(
        [build(spans), build([(*s[:5], s[5] - BASE // MS, s[6] - BASE // MS) for s in spans])]
    )
    for table in (near, far):
        assert sorted(span_critical_ns(table) // MS) == [0, 0, 10, 10, 20, 20, 70, 70]
