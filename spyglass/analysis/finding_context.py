"""The logs that matter: log records and span events of a finding's example traces, errors first.

A finding names a cause; its example traces show it; their logs and span events (exceptions, retries, cache
misses) are what a person reads next. Only those few traces are read, so this costs milliseconds.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from spyglass.analysis.live import LiveData
from spyglass.analysis.traces import trace_spans
from spyglass.model.attributes import typed_attributes
from spyglass.model.log_schema import log_record_json
from spyglass.store.protocol import Store

EVENT_COLUMNS = ["trace_id", "span_id", "service", "name", "status_code", "events"]


def example_events(
    store: Store, live: LiveData | None, trace_ids: list[bytes], limit: int
) -> list[dict[str, Any]]:
    """Span events of these traces: those of failed spans and exceptions first, then by time."""
    events: list[tuple[tuple[int, int], dict[str, Any]]] = []
    for trace_id in trace_ids:
        spans = trace_spans(store, live, trace_id).select(EVENT_COLUMNS)
        for span in spans.to_pylist():
            for event in span["events"] or []:
                failing = span["status_code"] == 2 or event["name"] == "exception"
                events.append(
                    (
                        (0 if failing else 1, event["time_ns"]),
                        {
                            "time_ns": event["time_ns"],
                            "trace_id": trace_id.hex(),
                            "span_id": span["span_id"].hex(),
                            "service": span["service"],
                            "operation": span["name"],
                            "name": event["name"],
                            "attributes": typed_attributes(event["attributes"], event["attribute_types"]),
                        },
                    )
                )
    events.sort(key=lambda item: item[0])
    return [event for _, event in events[:limit]]


def example_logs(store: Store, trace_ids: list[bytes], limit: int) -> pa.Table:
    """Log records of these traces, most severe first (``LOG_SCHEMA``)."""
    logs = store.logs_for_traces(trace_ids, limit=max(limit * 20, 100))
    if logs.num_rows == 0:
        return logs
    return logs.sort_by([("severity_number", "descending"), ("time_ns", "ascending")]).slice(0, limit)


def attach_context(store: Store, live: LiveData | None, findings: list[dict[str, Any]], limit: int) -> None:
    """Each finding (explain's JSON) gets the log records and span events of its regression examples, at most
    ``limit`` of each: the logs that matter."""
    for finding in findings:
        trace_ids = [bytes.fromhex(t) for t in finding.get("examples", {}).get("regression", [])]
        finding["logs"] = [log_record_json(row) for row in example_logs(store, trace_ids, limit).to_pylist()]
        finding["events"] = example_events(store, live, trace_ids, limit)
