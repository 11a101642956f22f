"""The numbers behind the web UI's overview pages, from rollups of 100% of spans: RED series per service, the
latency distribution over time, when each version appeared, and one trace's critical path. Plain functions of
tables; the API only hands them what it read."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spyglass.analysis.critical_path import span_critical_ns
from spyglass.model.arrow_numpy import as_numpy
from spyglass.model.cells import summed_by_bin
from spyglass.model.schema import ENTRY_KINDS
from spyglass.model.sketch import bucket_value, grouped_quantiles
from spyglass.store.protocol import ScanFilter, Store

VERSION_KEY = "service.version"
#: A version first seen this long after the service's first version of the window counts as deployed in it.
DEPLOY_AFTER_NS = 5 * 10**9
HEATMAP_ROWS = 40


def red_overview(
    rows: pa.Table,
    known_services: Iterable[str],
    owner_of: Callable[[str], str | None],
    start_ns: int,
    end_ns: int,
    step_s: int,
) -> dict[str, Any]:
    """Per service, RED series of its entry spans (server and consumer; all spans for a service that has
    none) from base rollup ``rows`` at ``step_s``, and its owning team."""
    step_ns = step_s * 10**9
    first_ns = start_ns - start_ns % step_ns
    n_steps = max(1, -(-(end_ns - first_ns) // step_ns))
    starts = [first_ns + i * step_ns for i in range(n_steps)]
    # Services as codes, not Python strings per row: an hour of rollups can be millions of rows.
    encoded = pc.dictionary_encode(rows.column("service").combine_chunks())
    coded = encoded.dictionary.to_pylist()
    names = sorted(coded)
    index = {name: i for i, name in enumerate(names)}
    service_of_code = np.array([index[name] for name in coded], dtype=np.int64)
    service_ids = service_of_code[as_numpy(encoded.indices, np.int64)]
    services = sorted(set(known_services) | set(names))
    result = []
    if rows.num_rows:
        entry = np.isin(as_numpy(rows.column("kind"), np.int64), ENTRY_KINDS)
        has_entry = np.bincount(service_ids, weights=entry, minlength=len(names)) > 0
        keep = entry | ~has_entry[service_ids]
        if not keep.all():
            rows, service_ids = rows.filter(pa.array(keep)), service_ids[keep]
    step = np.clip((as_numpy(rows.column("bucket_start_ns"), np.int64) - first_ns) // step_ns, 0, n_steps - 1)
    bins = as_numpy(rows.column("bin"), np.int64)
    counts = as_numpy(rows.column("count"), np.float64)
    errors = as_numpy(rows.column("errors"), np.float64)
    cell = service_ids * n_steps + step
    # Summed by cell and bin first, densely: the quantiles then sort a few thousand pairs, not every row's.
    ids, totals, values, _ = grouped_quantiles(*summed_by_bin(cell, bins, counts), (0.5, 0.99), ordered=True)
    cell_errors = np.bincount(cell, weights=errors, minlength=len(names) * n_steps)
    by_cell = {int(c): i for i, c in enumerate(ids.tolist())}
    whole_ids, whole_totals, whole_values, _ = grouped_quantiles(
        *summed_by_bin(service_ids, bins, counts), (0.5, 0.99), ordered=True
    )
    whole = {int(s): i for i, s in enumerate(whole_ids.tolist())}
    whole_errors = np.bincount(service_ids, weights=errors, minlength=len(names))
    for name in services:
        sid = index.get(name)
        series: list[dict[str, Any]] = []
        for s in range(n_steps):
            i = by_cell.get(sid * n_steps + s) if sid is not None else None
            if i is None:
                series.append(
                    {"start_ns": starts[s], "count": 0, "errors": 0, "p50_ms": None, "p99_ms": None}
                )
            else:
                series.append(
                    {
                        "start_ns": starts[s],
                        "count": int(totals[i]),
                        "errors": int(cell_errors[index[name] * n_steps + s]),
                        "p50_ms": float(values[i][0]) / 1e6,
                        "p99_ms": float(values[i][1]) / 1e6,
                    }
                )
        w = whole.get(sid) if sid is not None else None
        result.append(
            {
                "service": name,
                "owner": owner_of(name),
                "count": int(whole_totals[w]) if w is not None else 0,
                "errors": int(whole_errors[sid]) if sid is not None else 0,
                "p50_ms": float(whole_values[w][0]) / 1e6 if w is not None else None,
                "p99_ms": float(whole_values[w][1]) / 1e6 if w is not None else None,
                "series": series,
            }
        )
    return {"start_ns": start_ns, "end_ns": end_ns, "step_s": step_s, "services": result}


def latency_heatmap(rows: pa.Table, start_ns: int, end_ns: int, step_s: int) -> dict[str, Any]:
    """Span counts per (time step, latency band), bands log-spaced between the fastest and slowest sketch
    bins seen: the latency distribution over time, from 100% of spans."""
    step_ns = step_s * 10**9
    first_ns = start_ns - start_ns % step_ns
    n_steps = max(1, -(-(end_ns - first_ns) // step_ns))
    starts = [first_ns + i * step_ns for i in range(n_steps)]
    counts = as_numpy(rows.column("count"), np.float64)
    if rows.num_rows == 0 or counts.sum() == 0:
        return {"step_s": step_s, "starts_ns": starts, "edges_ms": [], "counts": [], "total": 0}
    values_ms = np.maximum(bucket_value(as_numpy(rows.column("bin"), np.int64)) / 1e6, 1e-3)
    low, high = float(values_ms.min()), float(values_ms.max())
    if high <= low * 1.01:
        high = low * 1.5
    edges = np.geomspace(low * 0.999, high * 1.001, HEATMAP_ROWS + 1)
    band = np.clip(np.searchsorted(edges, values_ms, side="right") - 1, 0, HEATMAP_ROWS - 1)
    step = np.clip((as_numpy(rows.column("bucket_start_ns"), np.int64) - first_ns) // step_ns, 0, n_steps - 1)
    grid = np.bincount(step * HEATMAP_ROWS + band, weights=counts, minlength=n_steps * HEATMAP_ROWS)
    grid = grid.reshape(n_steps, HEATMAP_ROWS)
    return {
        "step_s": step_s,
        "starts_ns": starts,
        "edges_ms": [round(float(e), 4) for e in edges],
        "counts": [[int(c) for c in row] for row in grid],
        "total": int(counts.sum()),
    }


def first_version_minutes(rows: pa.Table, start_ns: int, end_ns: int) -> list[tuple[str, str, int, int]]:
    """``(service, version, from, to)``: the first bucket each ``service.version`` was counted in, within the
    window, by the rollups (``rows``, key ``service.version``)."""
    rows = rows.filter(pc.greater(rows.column("count"), 0))
    first = (
        rows.group_by(["service", "attr_value", "bucket_s"])
        .aggregate([("bucket_start_ns", "min")])
        .to_pylist()
    )
    return [
        (
            row["service"],
            row["attr_value"],
            max(start_ns, row["bucket_start_ns_min"]),
            min(end_ns, row["bucket_start_ns_min"] + row["bucket_s"] * 10**9),
        )
        for row in first
        if row["attr_value"] != "__other__"
    ]


def deployments(minutes: list[tuple[str, str, int, int]], buffered: pa.Table, store: Store) -> dict[str, Any]:
    """When each ``service.version`` was first seen in the window: its first minute (``first_version_minutes``),
    then the spans of that minute (buffered and stored) the first span. A version first seen well after the
    service's first version is a deployment."""
    found: dict[tuple[str, str], int] = {}
    versioned = _buffered_versions(buffered)
    for name, version, minute_start, minute_end in minutes:
        seen = first_version_start(store, versioned, name, version, minute_start, minute_end)
        seen_ns = seen if seen is not None else minute_start
        found[(name, version)] = min(found.get((name, version), seen_ns), seen_ns)
    earliest: dict[str, int] = {}
    for (name, _), seen_ns in found.items():
        earliest[name] = min(earliest.get(name, seen_ns), seen_ns)
    result = [
        {
            "service": name,
            "version": version,
            "first_seen_ns": seen_ns,
            "deployed": seen_ns - earliest[name] > DEPLOY_AFTER_NS,
        }
        for (name, version), seen_ns in sorted(found.items(), key=lambda item: item[1])
    ]
    return {"key": VERSION_KEY, "versions": result}


def _buffered_versions(buffered: pa.Table) -> pa.Table:
    """``service``, ``version`` and ``start_ns`` of the buffered spans that carry a version (on the resource, else
    on the span): read once, then filtered per version."""
    values = pc.coalesce(
        pc.map_lookup(buffered.column("resource"), pa.scalar(VERSION_KEY), "first"),
        pc.map_lookup(buffered.column("attributes"), pa.scalar(VERSION_KEY), "first"),
    )
    table = pa.table(
        {"service": buffered.column("service"), "version": values, "start_ns": buffered.column("start_ns")}
    )
    return table.filter(pc.is_valid(table.column("version")))


def first_version_start(
    store: Store, versioned: pa.Table, service: str, version: str, start_ns: int, end_ns: int
) -> int | None:
    """The first span of ``service`` carrying ``version`` in the window, buffered (``versioned``, as
    ``_buffered_versions`` reads them) or stored."""
    candidates: list[int] = []
    stored = store.scan(
        ["start_ns"], start_ns, end_ns, ScanFilter(service=service, attributes=((VERSION_KEY, version),))
    )
    if stored.num_rows:
        candidates.append(int(pc.min(stored.column("start_ns")).as_py()))
    if versioned.num_rows:
        starts = versioned.column("start_ns")
        mask = pc.and_(
            pc.and_(
                pc.equal(versioned.column("service"), service), pc.equal(versioned.column("version"), version)
            ),
            pc.and_(pc.greater_equal(starts, start_ns), pc.less(starts, end_ns)),
        )
        hit = pc.min(pc.filter(starts, mask)).as_py()
        if hit is not None:
            candidates.append(int(hit))
    return min(candidates) if candidates else None


def critical_path_spans(spans: pa.Table) -> list[dict[str, Any]]:
    """The spans of one trace on its critical path, with their exclusive critical time (each span once)."""
    critical = span_critical_ns(spans)
    ids = spans.column("span_id").to_pylist()
    return [
        {"span_id": bytes(ids[i]).hex(), "critical_ns": int(critical[i])}
        for i in np.flatnonzero(critical > 0)
    ]
