"""Adjusted counts from ``tracestate`` (OTEP 235 thresholds) and the spans that ask to be kept."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spyglass.model.adjusted_count import (
    MAX_ADJUSTED_COUNT,
    adjusted_counts,
    forced_traces,
    span_weights,
    threshold_count,
)
from spyglass.model.builder import SpanBatchBuilder, encode_attributes
from spyglass.model.schema import ATTRIBUTES


def threshold_of(probability: float) -> str:
    """The ``th`` value a consistent probability sampler writes for a keep probability (the specification's
    rounding to 14 hex digits, trailing zeros dropped)."""
    threshold = round((1 - probability) * 2**56)
    return f"{threshold:014x}".rstrip("0") or "0"


@pytest.mark.parametrize(
    ("probability", "count"),
    [(1.0, 1.0), (0.5, 2.0), (0.25, 4.0), (0.1, 10.0), (0.01, 100.0), (2**-20, 2**20)],
)
def test_a_threshold_counts_for_the_inverse_of_its_probability(probability: float, count: float) -> None:
    assert threshold_count(threshold_of(probability)) == pytest.approx(count, rel=1e-9)


def test_the_specification_examples() -> None:
    # OTEP 235's table: th:8 is 50%, th:c 25%, th:e666666666666 (rounded) about 10%, th:0 keeps everything.
    states = pa.array(["ot=th:8", "ot=th:c", "ot=th:e666666666666", "ot=th:0", None])
    assert adjusted_counts(states) == pytest.approx([2.0, 4.0, 10.0, 1.0, 1.0], rel=1e-9)


def test_the_threshold_is_found_among_other_members_and_sub_keys() -> None:
    states = pa.array(
        [
            "vendor=abc,ot=th:c",
            "ot=rv:0123456789abcd;th:c",
            "ot=th:c;rv:0123456789abcd, other=1",
            "congo=t61rcWkgMzE,  ot=th:8",
            "xot=th:c",  # another member's key ending in ot
            "ot=xth:c",  # a sub-key ending in th
            "ot=th:C",  # the specification's hex is lower case
            "ot=th:123456789abcdef",  # 15 digits
            "ot=th:",
            "ot=p:3",  # an older draft's key: not a threshold
        ]
    )
    assert adjusted_counts(states) == pytest.approx([4, 4, 4, 2, 1, 1, 1, 1, 1, 1])


def test_no_threshold_is_answered_without_parsing() -> None:
    assert adjusted_counts(pa.array([None, None], pa.string())) is None
    assert adjusted_counts(pa.array(["a=b", None])) is None
    assert span_weights(pa.array(["a=b", None])).to_pylist() == [1.0, 1.0]
    chunked = pa.chunked_array([pa.array(["ot=th:8"]), pa.array([None], pa.string())])
    assert span_weights(chunked).to_pylist() == [2.0, 1.0]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(st.none(), st.text(max_size=60), st.from_regex(r"ot=th:[0-9a-f]{1,16}", fullmatch=True))
    )
)
def test_any_tracestate_gives_a_count_between_one_and_the_bound(states: list[str | None]) -> None:
    counts = span_weights(pa.array(states, pa.string())).to_numpy()
    assert counts.shape == (len(states),)
    assert ((counts >= 1.0) & (counts <= MAX_ADJUSTED_COUNT)).all()


def test_whole_counts_are_unbiased() -> None:
    from spyglass.model.adjusted_count import whole_counts

    counts = np.full(200_000, 1 / 0.3)
    whole = whole_counts(counts, np.random.default_rng(1))
    assert set(np.unique(whole).tolist()) == {3, 4}
    assert whole.mean() == pytest.approx(1 / 0.3, rel=0.005)
    assert whole_counts(np.array([10.0, 4.0, 1.0]), np.random.default_rng(2)).tolist() == [10, 4, 1]


def test_debug_spans_force_their_trace() -> None:
    builder = SpanBatchBuilder()
    attributes: list[dict[str, object]] = [
        {"zipkin.debug": True},
        {"zipkin.debug": False},
        {"jaeger-debug-id": "abc"},
        {"sampling.priority": 1},
        {"sampling.priority": 0},
        {"sampling.priority": "high"},
        {},
    ]
    for i, attrs in enumerate(attributes):
        builder.add(
            trace_id=i.to_bytes(16, "big"),
            span_id=(i + 1).to_bytes(8, "big"),
            parent_span_id=None,
            service="s",
            name="op",
            kind=2,
            start_ns=1,
            duration_ns=1,
            status_code=0,
            attributes=encode_attributes(attrs.items()),
        )
    forced = sorted(int.from_bytes(t, "big") for t in forced_traces(pa.table(builder.finish())).to_pylist())
    assert forced == [0, 2, 3]


def _forced_by_lookup(spans: pa.Table) -> set[bytes]:
    """The rule as three map lookups (each map's first value of a key), for the random spans below."""
    attributes = spans.column("attributes")

    def first(key: str) -> pa.ChunkedArray:
        return pc.map_lookup(attributes, pa.scalar(key), "first")

    zipkin = pc.is_in(first("zipkin.debug"), value_set=pa.array(["true", "1"]))
    priority = first("sampling.priority")
    above_zero = pc.and_kleene(
        pc.match_substring_regex(priority, r"^[0-9]+(\.[0-9]*)?$"),
        pc.invert(pc.match_substring_regex(priority, r"^0*(\.0*)?$")),
    )
    forced = pc.or_kleene(pc.or_kleene(zipkin, pc.is_valid(first("jaeger-debug-id"))), above_zero)
    return set(spans.column("trace_id").filter(pc.fill_null(forced, False)).to_pylist())


@pytest.mark.parametrize("seed", range(25))
def test_forced_traces_match_the_rule_on_random_maps(seed: int) -> None:
    """Null values, numbers as text, other keys: the answer is the lookups'. (Every decoder keeps one value per
    key of a map, the last sent, so no map here repeats a key.)"""
    rng = random.Random(seed)
    keys = ["zipkin.debug", "jaeger-debug-id", "sampling.priority", "other", "http.route"]
    values = ["true", "1", "0", "false", "2.5", "0.0", "00", "high", "", "7", "-1", None]

    def random_map() -> list[tuple[str, str | None]] | None:
        if rng.random() < 0.05:
            return None
        return [(key, rng.choice(values)) for key in rng.sample(keys, rng.randint(0, 4))]

    rows = rng.randint(0, 50)
    spans = pa.table(
        {
            "trace_id": pa.array([bytes([rng.randint(0, 20)]) * 16 for _ in range(rows)], pa.binary(16)),
            "attributes": pa.array([random_map() for _ in range(rows)], ATTRIBUTES),
        }
    )
    if rows > 4:
        spans = pa.concat_tables([spans.slice(1, 2), spans.slice(3)])  # sliced and chunked, as batches come
    found = forced_traces(spans).to_pylist()
    assert len(found) == len(set(found))
    assert set(found) == _forced_by_lookup(spans)
