"""Reading traces whole: what the store kept plus what the recall buffer still holds."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from spyglass.analysis.critical_path import COLUMNS as CRITICAL_PATH_COLUMNS
from spyglass.analysis.live import LiveData
from spyglass.model.equal_runs import equal_runs
from spyglass.model.schema import NO_SPANS, SPAN_SCHEMA
from spyglass.model.shared_spans import separate_shared_spans, span_keys
from spyglass.model.span_fingerprint import fingerprint
from spyglass.model.span_order import by_start
from spyglass.store.protocol import Store
from spyglass.store.span_predicates import as_schema

#: Up to this many traces are read by their ids (``Store.traces``); more with one scan of their time range.
FETCH_BY_ID = 20


def trace_spans(store: Store, live: LiveData | None, trace_id: bytes) -> pa.Table:
    """Every known span of a trace, stored or still buffered (``SPAN_SCHEMA``), one span per id: the children
    of a shared span's server half that were not yet decided (or came late) are put under it here."""
    # The live part first: a write landing between the two reads then leaves a span in both (the stored copy
    # is shown), never in neither; read the other way round, a trace written in two parts could show only the
    # first. The buffer's copies of a kept trace's decided spans stand for the stored ones when the store holds
    # exactly those (by count and ids): then only its summary is read.
    kept, buffered = live.live_trace_split(trace_id) if live is not None else (NO_SPANS, NO_SPANS)
    stored_or_none = store.trace_unless_held(trace_id, fingerprint(kept.column("span_id")))
    stored = by_start(kept) if stored_or_none is None else as_schema(stored_or_none, SPAN_SCHEMA)
    if buffered.num_rows == 0 and stored.num_rows == 0:
        buffered = kept  # kept, but the store failed to take it: the buffer still has it
    if buffered.num_rows == 0:
        return separate_shared_spans(stored)
    # Each span once, the stored copy first. A span is known by its id and kind, as an RPC's client and server
    # halves may share an id until they are decided.
    buffered = buffered.cast(SPAN_SCHEMA)
    if stored.num_rows:
        seen = pc.is_in(span_keys(buffered), value_set=span_keys(stored))
        buffered = buffered.filter(pc.invert(seen))
    return separate_shared_spans(pa.concat_tables([stored, buffered]))


def stored_traces(store: Store, trace_ids: Sequence[bytes]) -> dict[bytes, pa.Table]:
    """The stored spans (``SPAN_SCHEMA``) of each of several traces, read together (``Store.traces``), each by
    start time with its shared spans separated; traces the store lacks are left out. For answers that list
    whole traces found by a search, where the recall buffer is not asked (Jaeger's search)."""
    spans = separate_shared_spans(as_schema(store.traces(trace_ids), SPAN_SCHEMA))
    if spans.num_rows == 0:
        return {}
    order = pc.sort_indices(
        spans, sort_keys=[(key, "ascending") for key in ("trace_id", "start_ns", "span_id")]
    )
    spans = spans.take(order)
    ids = spans.column("trace_id").combine_chunks()
    _, firsts = equal_runs([ids])
    bounds = [*firsts.tolist(), len(ids)]
    return {
        ids[first].as_py(): spans.slice(first, end - first)
        for first, end in zip(bounds, bounds[1:], strict=False)
    }


def spans_of_traces(store: Store, summaries: pa.Table) -> pa.Table:
    """Every stored span (the critical path's ``COLUMNS`` and ``sample_weight``) of the traces ``find_traces``
    returned, one span per id (a child of a Zipkin shared server half stored after its trace was decided still
    names the shared id: it belongs under the server half)."""
    columns = [*CRITICAL_PATH_COLUMNS, "sample_weight"]
    if summaries.num_rows == 0:
        return pa.schema([_field(name) for name in columns]).empty_table()
    trace_ids = summaries.column("trace_id")
    if summaries.num_rows <= FETCH_BY_ID:
        spans = store.traces(trace_ids.to_pylist()).select(columns)
    else:
        # Every span of a trace starts within [trace start, trace start + duration].
        starts = summaries.column("start_ns")
        ends = pc.add(starts, summaries.column("duration_ns"))
        spans = store.scan(columns, int(pc.min(starts).as_py()), int(pc.max(ends).as_py()) + 1)
        spans = spans.filter(pc.is_in(spans.column("trace_id"), value_set=trace_ids.combine_chunks()))
    return separate_shared_spans(spans)


def _field(name: str) -> pa.Field:
    return SPAN_SCHEMA.field(name) if name in SPAN_SCHEMA.names else pa.field(name, pa.float64())
