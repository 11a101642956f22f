"""Where a read of several traces looks: each trace's spans start within its summary's range, and ranges close
together are read as one.

A store reads a trace by its id within that range, so its zone maps skip the rest of the table. Several traces
could each be read apart, but each read has a fixed cost (in DuckDB, about 2 ms at 10M spans: planning, and
decompressing a vector of every column around the trace's rows), and a search's traces often started close
together. Scanning the id column between two ranges costs a few nanoseconds a span, so two ranges are read as
one when the spans starting between them are fewer than a read's worth (``SPANS_WORTH_A_READ``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: Spans whose ids one read scans for about what a read of its own costs: 2 ms of a DuckDB read against about
#: 7 ns a span to test the id column (20 traces of one search at 10M spans: 14 ms as one read, 41 ms apart).
SPANS_WORTH_A_READ = 200_000


@dataclass(frozen=True)
class TraceRange:
    """Traces whose spans all start in ``[start_ns, end_ns]`` (both ends included, as summaries keep them)."""

    trace_ids: tuple[bytes, ...]
    start_ns: int
    end_ns: int


def merged_ranges(found: Iterable[tuple[bytes, int, int]], spans_between: int | None) -> list[TraceRange]:
    """The ranges to read for traces ``(trace_id, first start, last start)``, oldest first, given about how
    many spans start between the first and last of them (``spans_between``; when None, only ranges that
    overlap merge). Two neighbours merge when the gap between them holds fewer than ``SPANS_WORTH_A_READ`` spans
    at the window's average density."""
    ordered = sorted(found, key=lambda trace: (trace[1], trace[2], trace[0]))
    if not ordered:
        return []
    first = ordered[0][1]
    last = max(end for _, _, end in ordered)
    if spans_between is None:
        widest_gap_ns = -1
    elif spans_between <= SPANS_WORTH_A_READ:
        widest_gap_ns = last - first  # the whole window scans for less than a read costs
    else:
        widest_gap_ns = (last - first) * SPANS_WORTH_A_READ // spans_between
    ranges: list[TraceRange] = []
    ids: list[bytes] = []
    start = end = ordered[0][1]
    for trace_id, trace_start, trace_end in ordered:
        if ids and trace_start - end > widest_gap_ns:
            ranges.append(TraceRange(tuple(ids), start, end))
            ids, start, end = [], trace_start, trace_end
        ids.append(trace_id)
        end = max(end, trace_end)
    ranges.append(TraceRange(tuple(ids), start, end))
    return ranges
