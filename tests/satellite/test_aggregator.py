"""The aggregator: exact counts per group and bucket, sketches equal to the durations', bounded attribute
values under a flood, bucket closing, and rows visible exactly once while they travel to the store."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from spyglass.model.builder import SpanBatchBuilder, encode_attributes
from spyglass.model.rollups import ROLLUP_SCHEMA, filter_rollups, merge_rollups
from spyglass.model.sketch import sketch_of
from spyglass.satellite.aggregator import Aggregator
from spyglass.satellite.rollup_codes import OTHER_VALUE

BASE_NS = 1_700_000_040_000_000_000  # a multiple of 60 s
SECOND = 1_000_000_000


@dataclass
class Clock:
    """Injected wall clock and monotonic clock, moved by hand."""

    wall_ns: int = BASE_NS
    mono_s: float = 1000.0

    def advance(self, seconds: float) -> None:
        self.wall_ns += int(seconds * SECOND)
        self.mono_s += seconds


@dataclass
class Span:
    service: str = "svc"
    name: str = "op"
    kind: int = 2
    start_ns: int = BASE_NS
    duration_ns: int = 1_000_000
    status_code: int = 0
    attributes: dict[str, Any] = field(default_factory=dict)
    resource: dict[str, Any] = field(default_factory=dict)


def batch_of(spans: list[Span]) -> pa.RecordBatch:
    builder = SpanBatchBuilder()
    for i, span in enumerate(spans):
        builder.add(
            trace_id=i.to_bytes(16, "big"),
            span_id=(i + 1).to_bytes(8, "big"),
            parent_span_id=None,
            service=span.service,
            name=span.name,
            kind=span.kind,
            start_ns=span.start_ns,
            duration_ns=span.duration_ns,
            status_code=span.status_code,
            attributes=encode_attributes(span.attributes.items()),
            resource=encode_attributes(span.resource.items()),
        )
    return builder.finish()


def aggregator(clock: Clock | None = None, **kwargs: Any) -> Aggregator:
    clock = clock or Clock()
    return Aggregator(wall_clock_ns=lambda: clock.wall_ns, monotonic_s=lambda: clock.mono_s, **kwargs)


def sums(rows: pa.Table, *keys: str) -> dict[tuple[Any, ...], tuple[int, int]]:
    grouped = rows.group_by(list(keys)).aggregate([("count", "sum"), ("errors", "sum")]).to_pylist()
    return {tuple(r[k] for k in keys): (r["count_sum"], r["errors_sum"]) for r in grouped}


def base(rows: pa.Table) -> pa.Table:
    return rows.filter(pc.equal(rows.column("attr_key"), ""))


def test_counts_errors_and_sketches_are_exact_per_group_and_bucket() -> None:
    rng = np.random.default_rng(3)
    spans = []
    expected_durations: dict[tuple[int, str, str, int], list[int]] = {}
    expected_errors: Counter[tuple[int, str, str, int]] = Counter()
    for _ in range(3000):
        service = str(rng.choice(["cart", "checkout", "web"]))
        name = str(rng.choice(["GET /", "POST /pay", "query"]))
        kind = int(rng.choice([2, 3]))
        start = BASE_NS + int(rng.integers(0, 35 * SECOND))
        duration = int(rng.lognormal(15, 1.2))
        error = bool(rng.random() < 0.1)
        spans.append(Span(service, name, kind, start, duration, 2 if error else int(rng.choice([0, 1]))))
        key = (start - start % (10 * SECOND), service, name, kind)
        expected_durations.setdefault(key, []).append(duration)
        expected_errors[key] += error
    agg = aggregator()
    for begin in range(0, len(spans), 700):  # batches of uneven size spanning several buckets
        agg.add(batch_of(spans[begin : begin + 700]))
    rows = agg.drain(final=True)
    assert rows.schema == ROLLUP_SCHEMA
    assert rows.num_rows == merge_rollups(rows).num_rows  # merged by key
    got = base(rows)
    assert set(got.column("bucket_s").to_pylist()) == {10}
    for key, durations in expected_durations.items():
        bucket, service, name, kind = key
        mask = pc.and_(
            pc.and_(pc.equal(got["bucket_start_ns"], bucket), pc.equal(got["service"], service)),
            pc.and_(pc.equal(got["operation"], name), pc.equal(got["kind"], kind)),
        )
        group = got.filter(mask).sort_by("bin")
        bins, counts = sketch_of(durations)
        assert group.column("bin").to_pylist() == bins.tolist()
        assert group.column("count").to_pylist() == counts.tolist()
        assert sum(group.column("errors").to_pylist()) == expected_errors[key]
    assert sum(got.column("count").to_pylist()) == 3000
    assert agg.drain(final=True).num_rows == 0  # drained rows are gone


def test_attribute_rows_span_attribute_wins_over_resource_and_untracked_keys_are_ignored() -> None:
    spans = [
        Span(
            start_ns=BASE_NS + 5 * SECOND,
            attributes={"http.route": "/a", "host.name": "from-span", "customer.id": "c1"},
            resource={"host.name": "from-resource", "service.version": "1.0"},
        ),
        Span(
            start_ns=BASE_NS + 65 * SECOND,
            status_code=2,
            attributes={"http.status_code": 500, "http.response.status_code": 500, "team": "x"},
            resource={"service.version": "2.0", "host.name": "h2"},
        ),
    ]
    agg = aggregator(extra_keys=["team"])
    agg.add(batch_of(spans))
    rows = agg.drain(final=True)
    attributes = rows.filter(pc.not_equal(rows.column("attr_key"), ""))
    assert set(attributes.column("bucket_s").to_pylist()) == {60}
    assert sums(attributes, "bucket_start_ns", "attr_key", "attr_value") == {
        (BASE_NS, "http.route", "/a"): (1, 0),
        (BASE_NS, "host.name", "from-span"): (1, 0),
        (BASE_NS, "service.version", "1.0"): (1, 0),
        (BASE_NS + 60 * SECOND, "http.status_code", "500"): (1, 1),
        (BASE_NS + 60 * SECOND, "http.response.status_code", "500"): (1, 1),
        (BASE_NS + 60 * SECOND, "team", "x"): (1, 1),
        (BASE_NS + 60 * SECOND, "service.version", "2.0"): (1, 1),
        (BASE_NS + 60 * SECOND, "host.name", "h2"): (1, 1),
    }
    assert "team" in agg.attribute_keys and "customer.id" not in agg.attribute_keys


def test_a_flood_of_distinct_values_stays_within_the_bound_and_folds_into_other() -> None:
    clock = Clock()
    agg = aggregator(clock, max_values_per_key=20)
    heavy = [Span(resource={"k8s.pod.name": f"steady-{i % 5}"}) for i in range(500)]
    agg.add(batch_of(heavy))
    for round_ in range(20):
        flood = [Span(resource={"k8s.pod.name": f"pod-{round_}-{i}"}) for i in range(1000)]
        agg.add(batch_of(flood + heavy[:50]))
        clock.advance(5)  # several rebalances happen during the flood
    rows = agg.drain(final=True)
    pods = rows.filter(pc.equal(rows.column("attr_key"), "k8s.pod.name"))
    by_value = sums(pods, "attr_value")
    assert len(by_value) <= 20 + 1
    assert len(agg.tracked_values("k8s.pod.name")) <= 20
    for i in range(5):  # heavy hitters tracked from the start: exact
        assert by_value[(f"steady-{i}",)] == (100 + 20 * 10, 0)
    assert sum(count for count, _ in by_value.values()) == 500 + 20 * 1050
    assert by_value[(OTHER_VALUE,)][0] >= 20 * 1000 - 15


def test_a_new_heavy_value_displaces_a_faded_one_at_the_next_rebalance() -> None:
    clock = Clock()
    agg = aggregator(clock, max_values_per_key=3, rebalance_interval_s=60)
    agg.add(batch_of([Span(resource={"service.version": v}) for v in ("1", "2", "3")]))
    late = batch_of([Span(resource={"service.version": "4"}) for _ in range(50)])
    agg.add(late)
    assert agg.tracked_values("service.version") == ["1", "2", "3"]
    clock.advance(61)
    agg.add(late)  # the rebalance runs after this batch is counted
    assert "4" in agg.tracked_values("service.version")
    assert len(agg.tracked_values("service.version")) == 3
    agg.add(late)
    versions = sums(
        agg.drain(final=True).filter(pc.equal(pc.field("attr_key"), "service.version")), "attr_value"
    )
    assert versions[("4",)] == (50, 0) and versions[(OTHER_VALUE,)] == (100, 0)


def test_buckets_are_drained_once_closed() -> None:
    clock = Clock(wall_ns=BASE_NS + 12 * SECOND)
    agg = aggregator(clock, close_grace_s=5)
    agg.add(batch_of([Span(start_ns=BASE_NS + 1 * SECOND), Span(start_ns=BASE_NS + 11 * SECOND)]))
    assert agg.drain().num_rows == 0  # the first 10 s bucket ends at +10 s, closes at +15 s
    clock.advance(4)
    drained = agg.drain()
    assert base(drained).column("bucket_start_ns").to_pylist() == [BASE_NS]
    assert drained.filter(pc.not_equal(drained.column("attr_key"), "")).num_rows == 0
    assert sum(base(agg.pending()).column("count").to_pylist()) == 2  # in flight + still open
    # Spans stamped far in the future (clock skew) still leave after bucket_s + grace of arrival.
    agg.add(batch_of([Span(start_ns=BASE_NS + 3600 * SECOND)]))
    clock.advance(14)
    assert BASE_NS + 3600 * SECOND not in base(agg.drain()).column("bucket_start_ns").to_pylist()
    clock.advance(2)
    assert BASE_NS + 3600 * SECOND in base(agg.drain()).column("bucket_start_ns").to_pylist()


def test_drained_rows_stay_visible_until_written_and_come_back_when_the_write_fails() -> None:
    agg = aggregator()
    agg.add(batch_of([Span(), Span(status_code=2)]))
    drained = agg.drain(final=True)
    assert sums(base(agg.pending()), "service") == {("svc",): (2, 1)}
    with pytest.raises(RuntimeError), agg.publishing(drained):
        raise RuntimeError("store down")
    assert sums(base(agg.pending()), "service") == {("svc",): (2, 1)}
    again = agg.drain()
    assert sums(base(again), "service") == {("svc",): (2, 1)}
    stored: list[pa.Table] = []
    with agg.publishing(again):
        stored.append(again)
    assert agg.pending().num_rows == 0
    both = agg.read_consistent(lambda: pa.concat_tables(stored), attr_key=None)
    assert sums(base(both), "service") == {("svc",): (2, 1)}


def test_pending_filters_by_window_series_and_key() -> None:
    agg = aggregator()
    agg.add(
        batch_of(
            [
                Span(service="a", name="x", resource={"host.name": "h"}),
                Span(service="b", name="y", start_ns=BASE_NS + 120 * SECOND),
            ]
        )
    )
    assert sums(agg.pending(service="a"), "service") == {("a",): (1, 0)}
    assert sums(agg.pending(operation="y"), "operation") == {("y",): (1, 0)}
    assert sums(agg.pending(BASE_NS + 60 * SECOND, BASE_NS + 180 * SECOND), "service") == {("b",): (1, 0)}
    assert sums(agg.pending(attr_key="host.name"), "attr_value") == {("h",): (1, 0)}
    assert agg.pending(attr_key="not.tracked").num_rows == 0


def test_pending_filters_by_span_kind_in_open_and_drained_buckets() -> None:
    clock = Clock()
    agg = aggregator(clock, close_grace_s=0)
    kinds = [2, 3, 3, 1, 0, 5]
    agg.add(batch_of([Span(kind=k, resource={"host.name": "h"}) for k in kinds]))
    clock.advance(120)
    drained = agg.drain()  # drained, not yet written: still pending
    assert drained.num_rows > 0
    agg.add(batch_of([Span(kind=k, start_ns=BASE_NS + 180 * SECOND) for k in kinds]))  # an open bucket
    for wanted in [(2,), (3,), (0, 1), (2, 5), (4,)]:
        expected = 2 * sum(k in wanted for k in kinds)
        assert sum(agg.pending(kinds=wanted).column("count").to_pylist()) == expected
        assert set(agg.pending(kinds=wanted).column("kind").to_pylist()) <= set(wanted)
        by_host = agg.pending(attr_key="host.name", kinds=wanted)
        assert sum(by_host.column("count").to_pylist()) == expected // 2
    assert sum(agg.pending().column("count").to_pylist()) == 2 * len(kinds)


def test_totals_for_prometheus_count_everything_since_start() -> None:
    agg = aggregator()
    agg.add(batch_of([Span(duration_ns=2_000_000), Span(duration_ns=200_000_000, status_code=2)]))
    agg.drain(final=True)
    agg.add(batch_of([Span(duration_ns=2_000_000)]))
    (totals,) = agg.totals()
    assert (totals.service, totals.operation, totals.count, totals.errors) == ("svc", "op", 3, 1)
    assert abs(totals.duration_sum_s - 0.204) < 0.204 * 0.005
    assert sum(totals.buckets) == 3  # every span is under the largest bound
    assert totals.buckets[1] == 2 and totals.buckets[7] == 1  # (1 ms, 2.5 ms] and (100 ms, 250 ms]


def test_concurrent_readers_see_every_span_exactly_once_at_the_end() -> None:
    agg = aggregator()
    batch = batch_of([Span(start_ns=BASE_NS + i * SECOND, resource={"host.name": "h"}) for i in range(200)])
    stored: list[pa.Table] = []
    done = threading.Event()

    def write_loop() -> None:
        while not done.is_set():
            rows = agg.drain()
            if rows.num_rows:
                with agg.publishing(rows):
                    stored.append(rows)
            agg.pending(all_keys=True)
            agg.totals()

    writer = threading.Thread(target=write_loop)
    writer.start()
    for _ in range(100):
        agg.add(batch)
    done.set()
    writer.join()
    last = agg.drain(final=True)
    with agg.publishing(last):
        stored.append(last)
    everything = pa.concat_tables(stored)
    assert sum(base(everything).column("count").to_pylist()) == 20_000
    assert (
        sum(
            agg.read_consistent(
                lambda: filter_rollups(everything, attr_key="host.name"), attr_key="host.name"
            )
            .column("count")
            .to_pylist()
        )
        == 20_000
    )


def test_reads_overlapping_slow_writes_count_every_row_exactly_once() -> None:
    clock = Clock(wall_ns=BASE_NS)
    agg = aggregator(clock, close_grace_s=0)
    agg.add(batch_of([Span(start_ns=BASE_NS + i * 10 * SECOND) for i in range(60)]))
    store: list[pa.Table] = []
    done = threading.Event()

    def writer() -> None:
        for _ in range(60):
            clock.wall_ns += 10 * SECOND  # one more bucket closes (by the wall clock) each time
            rows = agg.drain()
            with agg.publishing(rows):
                time.sleep(0.002)  # a slow store
                if rows.num_rows:
                    store.append(rows)
        done.set()

    def read_stored() -> pa.Table:
        tables = list(store)
        time.sleep(0.001)  # a slow query, overlapping writes
        return pa.concat_tables(tables) if tables else ROLLUP_SCHEMA.empty_table()

    thread = threading.Thread(target=writer)
    thread.start()
    reads = 0
    while not done.is_set():
        assert sum(agg.read_consistent(read_stored).column("count").to_pylist()) == 60
        reads += 1
    thread.join()
    assert reads > 0 and len(store) == 60


def test_head_sampled_spans_count_as_the_spans_they_stand_for() -> None:
    """One operation served by three routes: one head-sampled at 10% (``ot=th:e666666666666``), one at 25%
    (``th:c``), one not at all. Counts, errors and percentiles of the operation, and the count of each route,
    are the true ones; unweighted, the 10% route would be a tenth of its size and the percentiles wrong."""
    rng = np.random.default_rng(5)
    routes = {  # tracestate, keep probability, median latency (ns)
        "/fast": ("ot=th:e666666666666", 0.1, 1e6),
        "/slow": ("vendor=x,ot=rv:00000000000000;th:c", 0.25, 20e6),
        "/mid": (None, 1.0, 5e6),
    }
    truth: dict[str, list[int]] = {route: [] for route in routes}
    true_errors = 0
    builder = SpanBatchBuilder()
    for i in range(60_000):
        route = str(rng.choice(list(routes)))
        state, keep, median = routes[route]
        duration = int(median * rng.lognormal(0, 0.3))
        error = bool(rng.random() < 0.05)
        truth[route].append(duration)
        true_errors += error
        # Systematic head sampling (every 10th, every 4th), so each sample holds its share exactly.
        if (len(truth[route]) - 1) % round(1 / keep):
            continue
        builder.add(
            trace_id=i.to_bytes(16, "big"),
            span_id=(i + 1).to_bytes(8, "big"),
            parent_span_id=None,
            trace_state=state,
            service="shop",
            name="GET",
            kind=2,
            start_ns=BASE_NS,
            duration_ns=duration,
            status_code=2 if error else 0,
            attributes=encode_attributes({"http.route": route}.items()),
        )
    agg = aggregator()
    agg.add(builder.finish())
    rows = agg.drain(final=True)
    for route, durations in truth.items():
        got = rows.filter(
            pc.and_(pc.equal(rows["attr_key"], "http.route"), pc.equal(rows["attr_value"], route))
        )
        assert sum(got.column("count").to_pylist()) == pytest.approx(len(durations), rel=0.01), route
    ops = base(rows).sort_by("bin")
    assert sum(ops.column("count").to_pylist()) == pytest.approx(60_000, rel=0.01)
    assert sum(ops.column("errors").to_pylist()) == pytest.approx(true_errors, rel=0.15)
    everything = np.concatenate([np.array(d) for d in truth.values()])
    cumulative = np.cumsum(ops.column("count").to_numpy())
    for q in (0.25, 0.5, 0.9):
        estimate = int(ops.column("bin").to_numpy()[np.searchsorted(cumulative, q * cumulative[-1])])
        true_bin = int(sketch_of([int(np.quantile(everything, q))])[0][0])
        assert abs(estimate - true_bin) <= 3, (q, estimate, true_bin)  # within a few sketch bins


def test_span_names_that_carry_ids_renew_the_names_and_lose_no_span(monkeypatch: pytest.MonkeyPatch) -> None:
    """A series per request (raw URL paths as span names) must not grow the interned names for days: past
    ``SERIES_RENEW_AT`` every open bucket closes under the old names and new ones start; counts stay exact."""
    from spyglass.satellite import rollup_codes

    monkeypatch.setattr(rollup_codes, "SERIES_RENEW_AT", 50)
    agg = aggregator()
    sent: Counter[str] = Counter()
    for batch in range(10):
        names = [f"GET /users/{batch * 30 + i}" for i in range(30)] + ["GET /product"] * 5
        sent.update(names)
        agg.add(batch_of([Span(name=name) for name in names]))
        assert len(agg._names.services) <= 50 + 35
    rows = base(agg.drain(final=True))
    assert sums(rows, "operation") == {(name,): (count, 0) for name, count in sent.items()}


def test_prometheus_totals_fold_past_their_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    from spyglass.satellite import red_totals

    monkeypatch.setattr(red_totals, "MAX_TOTALS", 20)
    agg = aggregator()
    agg.add(batch_of([Span(service=f"svc{i % 3}", name=f"GET /users/{i}") for i in range(100)]))
    agg.drain(final=True)
    totals = agg.totals()
    assert len(totals) <= 2 * 20 + 1
    assert sum(t.count for t in totals) == 100
    assert {t.operation for t in totals} >= {OTHER_VALUE}
