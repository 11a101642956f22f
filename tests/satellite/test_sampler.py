"""Dynamic sampling on synthetic traffic: the budget holds, and what explains is kept, with honest weights."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from spyglass.satellite.sampler import (
    DynamicSampler,
    KeepAllSampler,
    SamplingPolicy,
    _water_level,
    with_adjusted_counts,
)
from spyglass.satellite.trace_features import trace_features
from tests.support.spans import synthetic_traffic

OPERATIONS = {
    "GET /product": (0.6, 20.0, 0.4),
    "POST /checkout": (0.3, 120.0, 0.5),
    "GET /health": (0.1, 2.0, 0.2),
}


def run(sampler: DynamicSampler, traffic: pa.Table, batch_traces: int = 2000) -> pa.Table:
    """Feed whole traces in decision-sized batches, as the satellite does; return everything kept."""
    ids = trace_features(traffic).column("trace_id")
    kept = []
    for start in range(0, len(ids), batch_traces):
        chunk_ids = ids[start : start + batch_traces]
        chunk = traffic.filter(pc.is_in(traffic.column("trace_id"), value_set=chunk_ids))
        kept.append(sampler.decide(chunk))
    return pa.concat_tables(kept)


def per_trace(table: pa.Table) -> dict[bytes, dict[str, Any]]:
    features = trace_features(table)
    return {row["trace_id"]: row for row in features.to_pylist()}


def test_two_percent_keeps_errors_and_outliers_with_unbiased_weights() -> None:
    rng = np.random.default_rng(42)
    traffic = synthetic_traffic(
        rng,
        60_000,
        OPERATIONS,
        {"db timeout after 30ms": 0.003, "card declined": 0.001, "NullPointerException in Cart": 0.0005},
        slow_mode=("GET /product", 0.03, 8.0),
    )
    truth = per_trace(traffic)
    sampler = DynamicSampler(SamplingPolicy(sample_rate=0.02), seed=1)
    kept_spans = run(sampler, traffic)
    kept = per_trace(kept_spans)
    weights = {
        r["trace_id"]: r["sample_weight"]
        for r in kept_spans.group_by("trace_id")
        .aggregate([("sample_weight", "max")])
        .rename_columns(["trace_id", "sample_weight"])
        .to_pylist()
    }

    fraction = len(kept) / len(truth)
    assert 0.015 <= fraction <= 0.03, fraction
    # Kept traces are whole.
    assert all(kept[t]["span_count"] == truth[t]["span_count"] for t in kept)
    errors = [t for t, row in truth.items() if row["has_error"]]
    assert sum(t in kept for t in errors) / len(errors) >= 0.95
    for operation in OPERATIONS:
        durations = np.array([r["duration_ns"] for r in truth.values() if r["root_operation"] == operation])
        p99 = np.quantile(durations, 0.99)
        outliers = [
            t for t, r in truth.items() if r["root_operation"] == operation and r["duration_ns"] > p99
        ]
        share = sum(t in kept for t in outliers) / len(outliers)
        assert share >= 0.9, (operation, share)
    assert sum(weights.values()) == pytest.approx(len(truth), rel=0.10)
    # Weights estimate per-operation counts too, not only the total.
    for operation in OPERATIONS:
        true_count = sum(1 for r in truth.values() if r["root_operation"] == operation)
        estimate = sum(weights[t] for t, r in kept.items() if r["root_operation"] == operation)
        assert estimate == pytest.approx(true_count, rel=0.2), operation


def test_a_storm_of_one_error_does_not_starve_the_others() -> None:
    rng = np.random.default_rng(7)
    traffic = synthetic_traffic(
        rng, 30_000, OPERATIONS, {"connection refused": 0.2, "rare corruption": 0.001}
    )
    truth = per_trace(traffic)
    kept = per_trace(run(DynamicSampler(SamplingPolicy(sample_rate=0.02), seed=3), traffic))
    rare = [t for t, r in truth.items() if r["error_signature"] and "rare corruption" in r["error_signature"]]
    storm = [
        t for t, r in truth.items() if r["error_signature"] and "connection refused" in r["error_signature"]
    ]
    assert sum(t in kept for t in rare) / len(rare) >= 0.9
    assert sum(t in kept for t in storm) / len(storm) < 0.1
    assert len(kept) / len(truth) < 0.05


def test_every_latency_mode_is_represented() -> None:
    rng = np.random.default_rng(11)
    traffic = synthetic_traffic(
        rng, 40_000, {"GET /search": (1.0, 10.0, 0.1)}, {}, slow_mode=("GET /search", 0.01, 30.0)
    )
    truth = per_trace(traffic)
    kept = per_trace(run(DynamicSampler(SamplingPolicy(sample_rate=0.01), seed=5), traffic))
    slow = [t for t, r in truth.items() if r["duration_ns"] > 100_000_000]
    fast = [t for t, r in truth.items() if r["duration_ns"] <= 100_000_000]
    # The rare slow mode is kept far above the average rate; the common fast mode is still there.
    assert sum(t in kept for t in slow) / len(slow) > 0.3
    assert sum(t in kept for t in fast) > 50


def test_new_shapes_and_new_versions_are_kept() -> None:
    rng = np.random.default_rng(3)
    traffic = synthetic_traffic(rng, 10_000, OPERATIONS, {})
    sampler = DynamicSampler(SamplingPolicy(sample_rate=0.01), seed=2)
    run(sampler, traffic)
    fresh = synthetic_traffic(rng, 2, {"GET /brand-new": (1.0, 5.0, 0.1)}, {})
    assert trace_features(sampler.decide(fresh)).num_rows == 2
    deploy = synthetic_traffic(rng, 2, {"GET /product": (1.0, 20.0, 0.01)}, {})
    resource = pa.array(
        [[("service.name", "shop"), ("service.version", "2.0")]] * deploy.num_rows,
        deploy.schema.field("resource").type,
    )
    deploy = deploy.set_column(
        deploy.schema.get_field_index("resource"), deploy.schema.field("resource"), resource
    )
    assert trace_features(sampler.decide(deploy)).num_rows == 2


def test_rate_one_keeps_everything_with_weight_one() -> None:
    traffic = synthetic_traffic(np.random.default_rng(0), 500, OPERATIONS, {"x": 0.1})
    kept = DynamicSampler(SamplingPolicy(sample_rate=1.0), seed=0).decide(traffic)
    assert kept.num_rows == traffic.num_rows and set(kept.column("sample_weight").to_pylist()) == {1.0}
    assert KeepAllSampler().decide(traffic).num_rows == traffic.num_rows


def test_water_level() -> None:
    shares = np.array([0.5, 0.05, 0.01])
    cap = _water_level(shares, budget=0.11)
    assert cap == pytest.approx(0.05)
    assert np.minimum(shares, cap).sum() == pytest.approx(0.11)
    assert _water_level(shares, budget=1.0) == 0.5


def debug_and_head_sampled_traces(count: int, start_ns: int) -> tuple[pa.Table, list[bytes], list[bytes]]:
    """Ordinary-looking ``GET /product`` traces: ``count`` marked debug (Zipkin ``debug``, a Jaeger debug id or
    ``sampling.priority``) and ``count`` whose root was head-sampled at 25% (``ot=th:c``), child not."""
    from spyglass.model.builder import SpanBatchBuilder, encode_attributes

    builder = SpanBatchBuilder()
    debug_ids: list[bytes] = []
    sampled_ids: list[bytes] = []
    marks: list[dict[str, object]] = [
        {"zipkin.debug": True},
        {"jaeger-debug-id": "x1"},
        {"sampling.priority": 1},
    ]
    for i in range(2 * count):
        trace_id = (10**9 + i).to_bytes(16, "big")
        debug = i < count
        (debug_ids if debug else sampled_ids).append(trace_id)
        root = (2 * i + 1).to_bytes(8, "big")
        for child in (False, True):
            builder.add(
                trace_id=trace_id,
                span_id=(2 * i + 2).to_bytes(8, "big") if child else root,
                parent_span_id=root if child else None,
                trace_state=None if debug or child else "ot=th:c",
                service="web" if not child else "db",
                name="GET /product" if not child else "SELECT",
                kind=2 if not child else 3,
                start_ns=start_ns + i * 1_000_000 + child,
                duration_ns=20_000_000 // (1 + child),
                status_code=0,
                attributes=encode_attributes((marks[i % 3] if debug and child else {}).items()),
            )
    return pa.table(builder.finish()), debug_ids, sampled_ids


def test_debug_traces_are_always_kept_and_head_sampled_spans_weigh_their_adjusted_count() -> None:
    rng = np.random.default_rng(7)
    traffic = synthetic_traffic(rng, 20_000, OPERATIONS, {})
    extra, debug_ids, sampled_ids = debug_and_head_sampled_traces(300, 1_700_000_000_500_000_000)
    traffic = pa.concat_tables([traffic, extra.cast(traffic.schema)])
    kept = run(DynamicSampler(SamplingPolicy(sample_rate=0.01), seed=3), traffic)
    kept_ids = set(kept.column("trace_id").to_pylist())
    assert set(debug_ids) <= kept_ids  # every one, at 1%
    assert len(kept_ids) < 0.05 * 20_600
    # On the way to the store, a kept head-sampled trace's root weighs 4x its child (the trace's weight times
    # the root's count).
    stored = with_adjusted_counts(kept)
    assert set(sampled_ids) & kept_ids
    for trace in set(sampled_ids) & kept_ids:
        spans = stored.filter(pc.equal(stored.column("trace_id"), trace)).sort_by("start_ns")
        root, child = spans.column("sample_weight").to_pylist()
        assert root == pytest.approx(4 * child)
    everything = with_adjusted_counts(KeepAllSampler().decide(extra))
    weights = dict(
        zip(
            everything.column("trace_state").to_pylist(),
            everything.column("sample_weight").to_pylist(),
            strict=True,
        )
    )
    assert weights == {"ot=th:c": 4.0, None: 1.0}


def debug_everywhere_traces(
    count: int, rng: np.random.Generator, start_ns: int
) -> tuple[pa.Table, list[bytes]]:
    """``count`` traces of a service that marks every span debug, as OpenTelemetry's Python Zipkin exporter does
    (``debug`` for every sampled span): lognormal latencies, one in fifty failed. Returns the failed ones' ids."""
    from spyglass.model.builder import SpanBatchBuilder, encode_attributes

    builder = SpanBatchBuilder()
    failed: list[bytes] = []
    marked = encode_attributes([("zipkin.debug", True)])
    for i in range(count):
        trace_id = (7 * 10**9 + i).to_bytes(16, "big")
        error = i % 50 == 25
        if error:
            failed.append(trace_id)
        duration = int(20_000_000 * np.exp(rng.normal(0.0, 0.4)))
        for child in (False, True):
            builder.add(
                trace_id=trace_id,
                span_id=(2 * i + 1 + child).to_bytes(8, "big"),
                parent_span_id=(2 * i + 1).to_bytes(8, "big") if child else None,
                service="py-zipkin",
                name="GET /cart" if not child else "SELECT",
                kind=2 if not child else 3,
                start_ns=start_ns + i * 1_000_000 + child,
                duration_ns=duration // (1 + child),
                status_code=2 if error and child else 0,
                status_message="boom" if error and child else "",
                attributes=marked,
            )
    return pa.table(builder.finish()), failed


def test_a_service_that_marks_every_trace_debug_is_sampled_like_any_other() -> None:
    """The mark tells none of its traces apart: that service's traces are sampled at the rate (its errors still
    all kept; before, all 6,000 were kept), while another service's few debug traces are all still kept."""
    rng = np.random.default_rng(11)
    traffic = synthetic_traffic(rng, 20_000, OPERATIONS, {})
    extra, debug_ids, _ = debug_and_head_sampled_traces(100, 1_700_000_000_500_000_000)
    everywhere, failed = debug_everywhere_traces(6_000, rng, 1_700_000_000_700_000_000)
    mixed = pa.concat_tables([traffic, extra.cast(traffic.schema), everywhere.cast(traffic.schema)])
    order = rng.permutation(mixed.num_rows // 2)  # every trace is two adjacent spans: shuffle whole traces
    mixed = mixed.take(pa.array(np.stack([2 * order, 2 * order + 1], axis=1).reshape(-1)))
    kept = run(DynamicSampler(SamplingPolicy(sample_rate=0.02), seed=5), mixed)
    kept_ids = set(kept.column("trace_id").to_pylist())
    assert set(debug_ids) <= kept_ids
    assert set(failed) <= kept_ids
    everywhere_kept = kept_ids & set(everywhere.column("trace_id").to_pylist())
    assert len(everywhere_kept) < 0.1 * 6_000, len(everywhere_kept)  # not all 6,000: about the rate
    weights = kept.filter(pc.equal(kept.column("service"), "py-zipkin")).column("sample_weight")
    assert pc.max(weights).as_py() > 10  # kept ones stand for the others


def test_only_the_first_traces_of_a_shape_are_novel_across_batches() -> None:
    rng = np.random.default_rng(4)
    sampler = DynamicSampler(SamplingPolicy(novelty_keeps=3), seed=1)
    first = trace_features(synthetic_traffic(rng, 2, {"GET /a": (1.0, 5.0, 0.1)}, {}))
    batch = pa.RecordBatch.from_arrays([c.combine_chunks() for c in first.columns], names=first.column_names)
    assert sampler._novel_shapes(batch).tolist() == [True, True]
    mixed = trace_features(
        synthetic_traffic(rng, 8, {"GET /a": (0.5, 5.0, 0.1), "GET /b": (0.5, 5.0, 0.1)}, {})
    )
    batch = pa.RecordBatch.from_arrays([c.combine_chunks() for c in mixed.columns], names=mixed.column_names)
    shapes = batch.column("shape").to_pylist()
    novel = sampler._novel_shapes(batch).tolist()
    a_shape = first.column("shape")[0].as_py()
    # One more trace of the known shape, the first three of the new one, in arrival order.
    expected_a = [True] + [False] * (shapes.count(a_shape) - 1)
    expected_b = [True, True, True] + [False] * (len(shapes) - shapes.count(a_shape) - 3)
    assert [n for n, s in zip(novel, shapes, strict=True) if s == a_shape] == expected_a
    assert [n for n, s in zip(novel, shapes, strict=True) if s != a_shape] == expected_b


def _root_spans(
    names: list[str], rng: np.random.Generator, start_ns: int = 1_700_000_000 * 10**9
) -> pa.Table:
    """One single-span trace per name, as a service whose span names carry ids (raw URL paths) sends them."""
    from spyglass.model.builder import SpanBatchBuilder

    builder = SpanBatchBuilder()
    for index, name in enumerate(names):
        builder.add(
            trace_id=rng.bytes(16),
            span_id=rng.bytes(8),
            parent_span_id=None,
            service="api",
            name=name,
            kind=2,
            start_ns=start_ns + index,
            duration_ns=int(rng.integers(10**5, 10**8)),
            status_code=0,
        )
    return pa.table(builder.finish())


def test_span_names_that_carry_ids_do_not_grow_memory_without_end() -> None:
    """Each root operation's latency history is a histogram; a name per request (``GET /users/123``) made one
    per trace, never forgotten. The busy operations keep theirs through such a flood."""
    from spyglass.satellite import sampler as sampler_module

    rng = np.random.default_rng(5)
    now = [0.0]
    sampler = DynamicSampler(SamplingPolicy(sample_rate=0.05), seed=2, clock=lambda: now[0])
    busy = ["GET /product", "POST /checkout"]
    kept = decided = 0
    for batch in range(12):
        names = [f"GET /users/{batch * 4000 + i}" for i in range(4000)] + busy * 500
        traces = _root_spans(names, rng)
        kept += sampler.decide(traces).num_rows
        decided += traces.num_rows
        assert len(sampler._latency) <= sampler_module._MAX_OPERATIONS
        assert all(name in "".join(sampler._latency) for name in busy)
    # Every trace of a never-seen name counts as new: those are rationed, and the budget holds.
    assert kept / decided < 0.15
    # A half-life later, the names seen once are forgotten; the busy ones stay.
    now[0] += sampler.policy.half_life_s + 1
    sampler.decide(_root_spans(busy * 10, rng))
    assert sorted(key.split("\x1f")[1] for key in sampler._latency) == sorted(busy)


def test_numbers_of_strata_start_over_once_too_many(monkeypatch: pytest.MonkeyPatch) -> None:
    from spyglass.satellite import sampler as sampler_module

    monkeypatch.setattr(sampler_module, "_MAX_REMEMBERED", 500)
    rng = np.random.default_rng(6)
    now = [0.0]
    sampler = DynamicSampler(SamplingPolicy(sample_rate=0.05), seed=3, clock=lambda: now[0])
    sampler.decide(_root_spans([f"op {i}" for i in range(800)], rng))
    assert len(sampler._ids) > 500
    now[0] += sampler.policy.half_life_s + 1
    kept = sampler.decide(_root_spans(["op 1"] * 100, rng))
    assert len(sampler._ids) < 10
    assert 0 < kept.num_rows <= 100
