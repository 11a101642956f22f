"""Numbers from 100% of spans next to explain's sample-based evidence: the symptom in both windows, and for an
attribute finding on a tracked key (version, host, zone...), that value's own counts (``evidence.exact``)."""

from __future__ import annotations

from typing import Any

from spyglass.analysis.explain import ExplainRequest
from spyglass.analysis.live import LiveData, RollupReader
from spyglass.analysis.metrics import (
    MetricsQuery,
    exact_window_summary,
    query_metrics,
)
from spyglass.store.protocol import Store


def _exact(
    store: Store,
    rollups: RollupReader,
    live: LiveData,
    start_ns: int,
    end_ns: int,
    service: str,
    operation: str | None = None,
    group_by: str | None = None,
) -> list[dict[str, Any]]:
    query = MetricsQuery(start_ns, end_ns, service=service, operation=operation, group_by=group_by)
    groups: list[dict[str, Any]] = query_metrics(store, rollups, live, query)["groups"]
    return groups


def attach_exact_numbers(
    store: Store,
    rollups: RollupReader,
    live: LiveData,
    req: ExplainRequest,
    findings: list[dict[str, Any]],
) -> dict[str, Any]:
    """Numbers from 100% of spans (the aggregator's rollups), next to the sample-based evidence: the symptom
    itself, and for attribute findings on a tracked key (version, host, zone...), that value's own counts."""
    windows = {
        "regression": (req.start_ns, req.end_ns),
        "baseline": (req.baseline_start_ns, req.baseline_end_ns),
    }
    symptom: dict[str, Any] = {}
    bucket_ns = rollups.bucket_s * 1_000_000_000
    short = min(end - start for start, end in windows.values()) < 3 * bucket_ns
    if short and live.covered_since_ns <= min(start for start, _ in windows.values()):
        # Windows of a few seconds would be rounded out to whole rollup buckets (both the same bucket, even):
        # the recall buffer holds every span of them, so count those exactly instead.
        spans = live.recent_spans()
        for name, (start, end) in windows.items():
            symptom[name] = {
                "key": req.service,
                **exact_window_summary(spans, req.service, req.operation, start, end),
            }
    else:
        for name, (start, end) in windows.items():
            groups = _exact(store, rollups, live, start, end, service=req.service, operation=req.operation)
            symptom[name] = groups[0] if groups else None
    tracked = set(rollups.attribute_keys)
    for finding in findings:
        if finding["kind"] != "attribute" or finding.get("key") not in tracked:
            continue
        exact: dict[str, Any] = {}
        for name, (start, end) in windows.items():
            groups = _exact(
                store, rollups, live, start, end, service=finding["service"], group_by=finding["key"]
            )
            exact[name] = next((g for g in groups if g["key"] == finding["value"]), None)
        finding.setdefault("evidence", {})["exact"] = exact
    return {"service": req.service, "operation": req.operation, **symptom}
