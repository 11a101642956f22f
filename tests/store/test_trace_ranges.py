"""Ranges a read of several traces looks in: every trace in exactly one, merged only across cheap gaps."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from spyglass.store.trace_ranges import SPANS_WORTH_A_READ, TraceRange, merged_ranges

traces = st.lists(
    st.tuples(st.binary(min_size=16, max_size=16), st.integers(0, 10**6), st.integers(0, 10**5)).map(
        lambda t: (t[0], t[1], t[1] + t[2])
    ),
    max_size=40,
    unique_by=lambda t: t[0],
)


def _widest_gap(found: list[tuple[bytes, int, int]], spans_between: int | None) -> int:
    if spans_between is None:
        return -1
    first = min(start for _, start, _ in found)
    last = max(end for _, _, end in found)
    if spans_between <= SPANS_WORTH_A_READ:
        return last - first
    return (last - first) * SPANS_WORTH_A_READ // spans_between


@given(traces, st.one_of(st.none(), st.integers(0, 10**9)))
def test_every_trace_is_in_one_range_that_covers_it(
    found: list[tuple[bytes, int, int]], spans_between: int | None
) -> None:
    ranges = merged_ranges(found, spans_between)

    where = {trace_id: r for r in ranges for trace_id in r.trace_ids}
    assert sum(len(r.trace_ids) for r in ranges) == len(found) == len(where)
    for trace_id, start, end in found:
        assert where[trace_id].start_ns <= start <= end <= where[trace_id].end_ns
    for earlier, later in zip(ranges, ranges[1:], strict=False):
        # Oldest first, apart, and each gap wider than what merging allows.
        assert later.start_ns - earlier.end_ns > max(-1, _widest_gap(found, spans_between))
    for r in ranges:  # a range is no wider than its own traces
        own = [(s, e) for t, s, e in found if t in r.trace_ids]
        assert r.start_ns == min(s for s, _ in own) and r.end_ns == max(e for _, e in own)


def test_few_spans_between_read_as_one_and_many_apart() -> None:
    found = [(b"a" * 16, 0, 10), (b"b" * 16, 1_000, 1_010), (b"c" * 16, 100_000, 100_000)]

    assert merged_ranges(found, 1_000) == [TraceRange((b"a" * 16, b"b" * 16, b"c" * 16), 0, 100_000)]
    # 100M spans across 100,000 ns: 200,000 spans in every 200 ns, so only gaps under 200 ns merge.
    assert merged_ranges(found, 100_000_000) == [
        TraceRange((b"a" * 16,), 0, 10),
        TraceRange((b"b" * 16,), 1_000, 1_010),
        TraceRange((b"c" * 16,), 100_000, 100_000),
    ]
    # 20M spans: gaps under 1,000 ns merge, so a and b (990 ns apart) read together.
    assert merged_ranges(found, 20_000_000) == [
        TraceRange((b"a" * 16, b"b" * 16), 0, 1_010),
        TraceRange((b"c" * 16,), 100_000, 100_000),
    ]


def test_overlapping_ranges_merge_even_when_density_is_unknown() -> None:
    found = [(b"a" * 16, 0, 500), (b"b" * 16, 100, 200), (b"c" * 16, 501, 600)]
    assert merged_ranges(found, None) == [
        TraceRange((b"a" * 16, b"b" * 16), 0, 500),
        TraceRange((b"c" * 16,), 501, 600),
    ]
    assert merged_ranges([], None) == []
