"""Reading a time window from the two places spans live: the recall buffer, which holds every span since it
began covering (decided or not), and the store's weighted sample before that.

Split at one instant (the buffer's coverage), a span is read from one source only: buffered spans count by
their adjusted count (what their service's head sampling dropped), stored ones by their ``sample_weight``. Used by
explain and by group-bys on attributes no rollup tracks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from spyglass.model.adjusted_count import span_weights
from spyglass.model.schema import in_window
from spyglass.store.protocol import RollupQuery, ScanFilter, Store


class LiveData(Protocol):
    """What the satellite holds that the store may not yet: 100% of recent spans (undecided and, while memory
    allows, decided), read by trace or as a whole, and since when it holds all of them. The satellite itself,
    or in a cluster every member's read as one."""

    @property
    def covered_since_ns(self) -> int:
        """Every span that arrived since this instant is held (older ones only in the store)."""
        ...

    def recent_spans(
        self,
        include_decided: bool = True,
        newest: int | None = None,
        starting: Sequence[tuple[int, int]] | None = None,
    ) -> pa.Table:
        """Every held span (``SPAN_SCHEMA``); undecided ones only unless ``include_decided``; with ``newest``,
        at least that many of the most recent (whole chunks), not all (for a reader that needs a sample of
        what is happening now, not every span); with ``starting``, only the spans starting in one of these
        ``[from, to)`` windows are needed (others may come too, but a holder need not unpack them)."""
        ...

    def live_trace_split(self, trace_id: bytes) -> tuple[pa.Table, pa.Table]:
        """The held spans of one trace in two parts: the decided spans of a kept trace this reader holds copies
        of as they were written to the store, and every other held span of the trace."""
        ...


class RollupReader(Protocol):
    """The rollups of 100% of spans: stored rows and the rows not yet stored, read as one."""

    @property
    def attribute_keys(self) -> tuple[str, ...]:
        """Attributes rolled up per value, besides service and operation."""
        ...

    @property
    def bucket_s(self) -> int: ...

    @property
    def attribute_bucket_s(self) -> int: ...

    @property
    def first_span_ns(self) -> int | None:
        """When this process began counting spans (older data is found in the store)."""
        ...

    def read(self, query: RollupQuery) -> pa.Table:
        """The rows answering ``query`` (``ROLLUP_SCHEMA``), stored and pending, each row counted once."""
        ...


def coverage_split(live: LiveData | None, start_ns: int, end_ns: int) -> int:
    """Where the window stops being read from the store and starts being read from the buffer."""
    if live is None:
        return end_ns
    return min(max(live.covered_since_ns, start_ns), end_ns)


def window_spans(
    store: Store,
    live: LiveData | None,
    columns: list[str],
    start_ns: int,
    end_ns: int,
    where: ScanFilter | None = None,
    snapshot: pa.Table | None = None,
) -> list[pa.Table]:
    """The spans starting in ``[start_ns, end_ns)``: ``columns`` and ``sample_weight``, as one table per source
    (callers cast them alike). ``where`` narrows both sources by service, operation and kinds; its ``trace_share``
    samples stored traces only, weighed up by the share left out. ``snapshot`` reuses a buffer snapshot."""
    if where is not None and where.attributes:
        raise ValueError("window_spans filters by service and operation only")
    split = coverage_split(live, start_ns, end_ns)
    read = [*columns, "sample_weight"]
    parts: list[pa.Table] = []
    if start_ns < split:
        stored = store.scan(read, start_ns, split, where)
        if where is not None and where.trace_share is not None and where.trace_share < 1.0:
            weight = pc.divide(stored.column("sample_weight"), where.trace_share)
            stored = stored.set_column(read.index("sample_weight"), "sample_weight", weight)
        parts.append(stored.select(read))
    if live is not None and split < end_ns:
        buffered = live.recent_spans(include_decided=True) if snapshot is None else snapshot
        asked = where or ScanFilter()
        buffered = buffered.filter(
            in_window(buffered, split, end_ns, asked.service, asked.operation, asked.kinds)
        )
        weights = span_weights(buffered.column("trace_state"))
        parts.append(buffered.select(columns).append_column("sample_weight", weights))
    return parts
