"""Endpoints the web UI needs beyond the API reference's contract: a service overview with owners, a latency
heatmap, deployments (new ``service.version`` values), and one trace's critical path.

Each answer comes from what the API already reads: the rollups of 100% of spans (stored plus not yet stored),
the recall buffer, and the store; the math lives in ``spyglass.analysis`` and ``spyglass.model.sketch``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from spyglass.analysis.critical_path import COLUMNS as CRITICAL_PATH_COLUMNS
from spyglass.analysis.critical_path import span_critical_ns
from spyglass.analysis.metrics import data_coverage, with_rates
from spyglass.analysis.traces import trace_spans
from spyglass.api.context import ApiContext
from spyglass.api.json_response import json_response
from spyglass.api.params import MAX_STEP_S, BadRequest, optional_int
from spyglass.api.span_json import hex_id, parse_trace_id
from spyglass.api.v1 import window
from spyglass.model.schema import SpanKind
from spyglass.model.sketch import bucket_value, grouped_quantiles
from spyglass.store.protocol import ScanFilter

#: Span kinds that are a service's own entry points: their rate, errors and latency are the service's RED.
ENTRY_KINDS = (int(SpanKind.SERVER), int(SpanKind.CONSUMER))
VERSION_KEY = "service.version"
#: A version first seen this long after the service's first version of the window counts as deployed in it.
DEPLOY_AFTER_NS = 5 * 10**9
HEATMAP_ROWS = 40
OWNER_LOOKBACK_NS = 60 * 10**9
MAX_STEPS = 2_000


def _step_s(request: Request, start_ns: int, end_ns: int, bucket_s: int) -> int:
    """The requested step rounded up to whole rollup buckets, refused when it makes too many points."""
    wanted = optional_int(request.query_params, "step_s", minimum=1, maximum=MAX_STEP_S) or bucket_s
    step_s = max(1, math.ceil(wanted / bucket_s)) * bucket_s
    if (end_ns - start_ns) // (step_s * 10**9) > MAX_STEPS:
        raise BadRequest(f"step_s={step_s} makes more than {MAX_STEPS} points in the window")
    return step_s


def _base_rollups(ctx: ApiContext, start_ns: int, end_ns: int, step_s: int, **filters: Any) -> pa.Table:
    aggregator = ctx.satellite.aggregator
    return aggregator.read_consistent(
        lambda: ctx.store.rollups(start_ns, end_ns, resolution_s=step_s, **filters),
        start_ns,
        end_ns,
        **filters,
    )


def _np(column: pa.ChunkedArray | pa.Array, dtype: type[np.generic]) -> npt.NDArray[Any]:
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=dtype)


def service_overview(
    ctx: ApiContext, start_ns: int, end_ns: int, step_s: int, now_ns: int | None = None
) -> dict[str, Any]:
    """Per service, RED series of its entry spans (server and consumer; all spans for a service that has
    none), and its owning team: the home page in one request. Rates (``rate_per_s``) divide by the time data
    covers (``covered_s``), not the window's length."""
    if now_ns is None:
        now_ns = time.time_ns()
    rows = _base_rollups(ctx, start_ns, end_ns, step_s)
    _learn_owners(ctx, end_ns)
    step_ns = step_s * 10**9
    first_ns = start_ns - start_ns % step_ns
    n_steps = max(1, -(-(end_ns - first_ns) // step_ns))
    starts = [first_ns + i * step_ns for i in range(n_steps)]
    services = sorted(set(ctx.store.services()) | set(rows.column("service").to_pylist()))
    result = []
    if rows.num_rows:
        service_col = rows.column("service").to_pylist()
        kind = _np(rows.column("kind"), np.int64)
        entry = np.isin(kind, ENTRY_KINDS)
        has_entry = {s for s, e in zip(service_col, entry.tolist(), strict=True) if e}
        keep = np.array([e or s not in has_entry for s, e in zip(service_col, entry.tolist(), strict=True)])
        rows = rows.filter(pa.array(keep))
    names = sorted(set(rows.column("service").to_pylist()))
    index = {name: i for i, name in enumerate(names)}
    service_ids = np.array([index[s] for s in rows.column("service").to_pylist()], dtype=np.int64)
    step = np.clip((_np(rows.column("bucket_start_ns"), np.int64) - first_ns) // step_ns, 0, n_steps - 1)
    bins = _np(rows.column("bin"), np.int64)
    counts = _np(rows.column("count"), np.float64)
    errors = _np(rows.column("errors"), np.float64)
    cell = service_ids * n_steps + step
    ids, totals, values, _ = grouped_quantiles(cell, bins, counts, (0.5, 0.99))
    cell_errors = np.bincount(cell, weights=errors, minlength=len(names) * n_steps)
    by_cell = {int(c): i for i, c in enumerate(ids.tolist())}
    whole_ids, whole_totals, whole_values, _ = grouped_quantiles(service_ids, bins, counts, (0.5, 0.99))
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
                "owner": ctx.ownership.owner(name),
                "count": int(whole_totals[w]) if w is not None else 0,
                "errors": int(whole_errors[sid]) if sid is not None else 0,
                "p50_ms": float(whole_values[w][0]) / 1e6 if w is not None else None,
                "p99_ms": float(whole_values[w][1]) / 1e6 if w is not None else None,
                "series": series,
            }
        )
    overview = {"start_ns": start_ns, "end_ns": end_ns, "step_s": step_s, "services": result}
    return with_rates(overview, data_coverage(ctx.store, ctx.satellite.aggregator, start_ns, end_ns, now_ns))


def _learn_owners(ctx: ApiContext, end_ns: int) -> None:
    """Owners come from resources (``service.namespace``, ``team``...): learn them from the recall buffer's
    recent spans, and for services it does not hold, from their stored spans of the window's last minute
    (bounded, so a service that never names an owner costs little on every request)."""
    recent = ctx.satellite.buffer.snapshot(include_decided=True)
    if recent.num_rows:
        ctx.ownership.learn(recent.select(["service", "resource"]))
    for service in ctx.store.services():
        if ctx.ownership.owner(service) is None:
            found = ctx.store.scan(
                ["service", "resource"], end_ns - OWNER_LOOKBACK_NS, end_ns, ScanFilter(service=service)
            )
            if found.num_rows:
                ctx.ownership.learn(found.slice(0, 1))


def latency_heatmap(
    ctx: ApiContext, start_ns: int, end_ns: int, step_s: int, service: str | None, operation: str | None
) -> dict[str, Any]:
    """Span counts per (time step, latency band), bands log-spaced between the fastest and slowest sketch
    bins seen: the latency distribution over time, from 100% of spans."""
    rows = _base_rollups(ctx, start_ns, end_ns, step_s, service=service, operation=operation)
    step_ns = step_s * 10**9
    first_ns = start_ns - start_ns % step_ns
    n_steps = max(1, -(-(end_ns - first_ns) // step_ns))
    starts = [first_ns + i * step_ns for i in range(n_steps)]
    counts = _np(rows.column("count"), np.float64)
    if rows.num_rows == 0 or counts.sum() == 0:
        return {"step_s": step_s, "starts_ns": starts, "edges_ms": [], "counts": [], "total": 0}
    values_ms = np.maximum(bucket_value(_np(rows.column("bin"), np.int64)) / 1e6, 1e-3)
    low, high = float(values_ms.min()), float(values_ms.max())
    if high <= low * 1.01:
        high = low * 1.5
    edges = np.geomspace(low * 0.999, high * 1.001, HEATMAP_ROWS + 1)
    band = np.clip(np.searchsorted(edges, values_ms, side="right") - 1, 0, HEATMAP_ROWS - 1)
    step = np.clip((_np(rows.column("bucket_start_ns"), np.int64) - first_ns) // step_ns, 0, n_steps - 1)
    grid = np.bincount(step * HEATMAP_ROWS + band, weights=counts, minlength=n_steps * HEATMAP_ROWS)
    grid = grid.reshape(n_steps, HEATMAP_ROWS)
    return {
        "step_s": step_s,
        "starts_ns": starts,
        "edges_ms": [round(float(e), 4) for e in edges],
        "counts": [[int(c) for c in row] for row in grid],
        "total": int(counts.sum()),
    }


def deployments(ctx: ApiContext, start_ns: int, end_ns: int, service: str | None) -> dict[str, Any]:
    """When each ``service.version`` of a service was first seen in the window: the minute rollups find the
    minute, then the spans of that minute (buffered and stored) the first span. A version first seen well
    after the service's first version is a deployment."""
    aggregator = ctx.satellite.aggregator
    rows = aggregator.read_consistent(
        lambda: ctx.store.rollups(start_ns, end_ns, service=service, attr_key=VERSION_KEY),
        start_ns,
        end_ns,
        service=service,
        attr_key=VERSION_KEY,
    )
    rows = rows.filter(pc.greater(rows.column("count"), 0))
    first = (
        rows.group_by(["service", "attr_value", "bucket_s"])
        .aggregate([("bucket_start_ns", "min")])
        .to_pylist()
    )
    buffered = ctx.satellite.buffer.snapshot(include_decided=True)
    found: dict[tuple[str, str], int] = {}
    for row in first:
        name, version = row["service"], row["attr_value"]
        if version == "__other__":
            continue
        minute_start = max(start_ns, row["bucket_start_ns_min"])
        minute_end = min(end_ns, row["bucket_start_ns_min"] + row["bucket_s"] * 10**9)
        seen = _first_start(ctx, buffered, name, version, minute_start, minute_end)
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


def _first_start(
    ctx: ApiContext, buffered: pa.Table, service: str, version: str, start_ns: int, end_ns: int
) -> int | None:
    candidates: list[int] = []
    stored = ctx.store.scan(
        ["start_ns"], start_ns, end_ns, ScanFilter(service=service, attributes=((VERSION_KEY, version),))
    )
    if stored.num_rows:
        candidates.append(int(pc.min(stored.column("start_ns")).as_py()))
    if buffered.num_rows:
        values = pc.coalesce(
            pc.map_lookup(buffered.column("resource"), pa.scalar(VERSION_KEY), "first"),
            pc.map_lookup(buffered.column("attributes"), pa.scalar(VERSION_KEY), "first"),
        )
        starts = buffered.column("start_ns")
        mask = pc.and_(
            pc.and_(pc.equal(buffered.column("service"), service), pc.equal(values, version)),
            pc.and_(pc.greater_equal(starts, start_ns), pc.less(starts, end_ns)),
        )
        hit = pc.min(pc.filter(starts, mask.fill_null(False))).as_py()
        if hit is not None:
            candidates.append(int(hit))
    return min(candidates) if candidates else None


def trace_critical_path(ctx: ApiContext, trace_id: bytes) -> dict[str, Any] | None:
    """The spans on one trace's critical path with their exclusive critical time, for the waterfall."""
    spans = trace_spans(ctx.store, ctx.satellite, trace_id).select(CRITICAL_PATH_COLUMNS)
    if spans.num_rows == 0:
        return None
    # A recent kept trace is both stored and still buffered: the walk needs each span once.
    spans = spans.group_by(CRITICAL_PATH_COLUMNS, use_threads=False).aggregate([])
    critical = span_critical_ns(spans)
    ids = spans.column("span_id").to_pylist()
    on_path = [
        {"span_id": hex_id(ids[i]), "critical_ns": int(critical[i])} for i in np.flatnonzero(critical > 0)
    ]
    return {"trace_id": trace_id.hex(), "spans": on_path}


def routes(ctx: ApiContext) -> list[Route]:
    async def overview(request: Request) -> Response:
        start_ns, end_ns = window(request)
        step_s = _step_s(request, start_ns, end_ns, ctx.satellite.aggregator.bucket_s)
        return json_response(await run_in_threadpool(service_overview, ctx, start_ns, end_ns, step_s))

    async def heatmap(request: Request) -> Response:
        start_ns, end_ns = window(request)
        step_s = _step_s(request, start_ns, end_ns, ctx.satellite.aggregator.bucket_s)
        params = request.query_params
        answer = await run_in_threadpool(
            latency_heatmap,
            ctx,
            start_ns,
            end_ns,
            step_s,
            params.get("service") or None,
            params.get("operation") or None,
        )
        return json_response(answer)

    async def versions(request: Request) -> Response:
        start_ns, end_ns = window(request)
        service = request.query_params.get("service") or None
        return json_response(await run_in_threadpool(deployments, ctx, start_ns, end_ns, service))

    async def critical(request: Request) -> Response:
        trace_id = parse_trace_id(request.path_params["trace_id"])
        if trace_id is None:
            raise BadRequest("trace_id must be 32 lowercase hex characters")
        answer = await run_in_threadpool(trace_critical_path, ctx, trace_id)
        if answer is None:
            return json_response({"error": "trace not found"}, status=404)
        return json_response(answer)

    return [
        Route("/api/v1/ui/services", overview),
        Route("/api/v1/ui/latency-heatmap", heatmap),
        Route("/api/v1/ui/deployments", versions),
        Route("/api/v1/traces/{trace_id}/critical-path", critical),
    ]
