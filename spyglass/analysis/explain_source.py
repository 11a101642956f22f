"""Where explain reads spans from: the recall buffer (100% of recent spans) for the time it covers, the store's
weighted sample before that. The result holds every known span of the traces starting in the two windows; from
a window holding many more than ``TRACES_PER_WINDOW`` of the symptom's traces, a uniform sample of whole traces
is read, weighed up by the share left out, so that explain's time stays bounded however long the window."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from spyglass.analysis.explain import COLUMNS, TRACES_PER_WINDOW, ExplainRequest, explain_spans
from spyglass.analysis.live import LiveData, window_spans
from spyglass.analysis.ownership import Ownership
from spyglass.store.protocol import TRACE_SHARE_SCALE, ScanFilter, Store

#: How long after its root started a trace's last span may start (reads go this far past a window).
TRACE_SLACK_NS = 60 * 10**9
_READ = [*COLUMNS, "sample_weight"]


def _ranges(req: ExplainRequest) -> list[tuple[int, int]]:
    """The two windows (plus slack for late child spans), merged where they overlap."""
    latest = 2**63 - 1  # the slack must not push a window past 64-bit nanoseconds
    spans = sorted(
        [
            (req.baseline_start_ns, min(req.baseline_end_ns + TRACE_SLACK_NS, latest)),
            (req.start_ns, min(req.end_ns + TRACE_SLACK_NS, latest)),
        ]
    )
    merged = [spans[0]]
    for start, end in spans[1:]:
        if start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _stored_share(store: Store, req: ExplainRequest, covered: int | None) -> float:
    """The share of stored traces worth reading: enough for ``TRACES_PER_WINDOW`` of the symptom's traces
    (their roots counted in the store, one column) in the fuller window, in whole millionths."""
    symptom = ScanFilter(service=req.service, operation=req.operation)
    most = 0
    for start, end in ((req.baseline_start_ns, req.baseline_end_ns), (req.start_ns, req.end_ns)):
        end = end if covered is None else min(end, covered)
        if start < end:
            parents = store.scan(["parent_span_id"], start, end, symptom).column(0)
            most = max(most, parents.null_count)
    if most <= TRACES_PER_WINDOW:
        return 1.0
    return max(1, round(TRACES_PER_WINDOW / most * TRACE_SHARE_SCALE)) / TRACE_SHARE_SCALE


def gather_spans(store: Store, live: LiveData | None, req: ExplainRequest) -> pa.Table:
    """Spans starting in either window (or shortly after): from the buffer since it covers, else the store."""
    covered = live.covered_since_ns if live is not None else None
    share = _stored_share(store, req, covered)
    sample = ScanFilter(trace_share=share) if share < 1.0 else None
    ranges = _ranges(req)
    # One snapshot of the buffer for both windows, and none when neither reaches the time it covers.
    needed = covered is not None and any(end > covered for _, end in ranges)
    snapshot = live.recent_spans() if live is not None and needed else None
    parts = [
        part
        for start, end in ranges
        for part in window_spans(store, live, COLUMNS, start, end, sample, snapshot)
    ]
    if not parts:
        return pa.table({name: [] for name in _READ})
    parts = [part.cast(_schema(part)) for part in parts]
    schema = max(parts, key=lambda p: p.num_rows).schema
    return pa.concat_tables([p.cast(schema) for p in parts])


def _schema(table: pa.Table) -> pa.Schema:
    fields = []
    for name in _READ:
        field = table.schema.field(name)
        # Store ids come back as variable binary, buffer ids as fixed: analysis compares them as blobs.
        kind = (
            pa.binary()
            if pa.types.is_binary(field.type) or pa.types.is_fixed_size_binary(field.type)
            else field.type
        )
        fields.append(pa.field(name, kind))
    return pa.schema(fields)


def explain(
    store: Store, live: LiveData | None, ownership: Ownership | None, req: ExplainRequest
) -> list[dict[str, Any]]:
    """Ranked findings for one symptom, reading spans from wherever they are most complete."""
    return explain_spans(gather_spans(store, live, req), req, ownership)
