"""Synthetic traces of a small shop for explain: a known cause injected in a regression window.

Each trace is a list of ``S`` spans; ``shop`` makes one (api -> db query on one of three hosts in parallel with
a cache get, then render) with switches for the causes explain must find. Tests and ``bench/explain.py`` use it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from spyglass.analysis.explain import ExplainRequest
from spyglass.model.builder import SpanBatchBuilder, encode_attributes

MS = 1_000_000
BASE_T0 = 1_700_000_000 * 10**9
REG_T0 = BASE_T0 + 100 * 10**9
#: The windows ``windows_request`` asks about: each holds a ``workload`` of up to 600 traces (100 ms apart).
WINDOW_NS = 60 * 10**9


def windows_request(service: str, operation: str, signal: str = "latency") -> ExplainRequest:
    """Explain the root ``(service, operation)`` over a ``workload``'s regression window against its baseline."""
    return ExplainRequest(
        service=service,
        operation=operation,
        start_ns=REG_T0,
        end_ns=REG_T0 + WINDOW_NS,
        baseline_start_ns=BASE_T0,
        baseline_end_ns=BASE_T0 + WINDOW_NS,
        signal=signal,  # type: ignore[arg-type]
    )


@dataclass
class S:
    """One span of a synthetic trace; ``parent`` indexes an earlier span of the same trace."""

    service: str
    name: str
    start_ms: float
    dur_ms: float
    parent: int | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    resource: dict[str, Any] = field(default_factory=dict)
    error: bool = False


def build(traces: list[tuple[int, list[S]]]) -> pa.Table:
    builder = SpanBatchBuilder()
    rng = random.Random(1)
    for start_ns, spans in traces:
        trace_id = rng.getrandbits(128).to_bytes(16, "big")
        ids = [rng.getrandbits(64).to_bytes(8, "big") for _ in spans]
        for i, span in enumerate(spans):
            resource = {
                "service.name": span.service,
                "service.namespace": f"{span.service}-team",
                **span.resource,
            }
            builder.add(
                trace_id=trace_id,
                span_id=ids[i],
                parent_span_id=None if span.parent is None else ids[span.parent],
                service=span.service,
                name=span.name,
                kind=2,
                start_ns=start_ns + int(span.start_ms * MS),
                duration_ns=int(span.dur_ms * MS),
                status_code=2 if span.error else 0,
                attributes=encode_attributes(span.attrs.items()),
                resource=encode_attributes(resource.items()),
            )
    return pa.Table.from_batches([builder.finish()])


def workload(make: Any, n: int = 300, seed: int = 3) -> pa.Table:
    """``n`` baseline and ``n`` regression traces from ``make(rng, regression, i) -> [S, ...]``."""
    rng = random.Random(seed)
    traces = []
    for regression, t0 in ((False, BASE_T0), (True, REG_T0)):
        for i in range(n):
            traces.append((t0 + i * 100 * MS, make(rng, regression, i)))
    return build(traces)


def shop(
    rng: random.Random,
    regression: bool,
    i: int,
    *,
    slow_host: str | None = None,
    slow_version: str | None = None,
    render_extra: float = 0.0,
    queries: int = 1,
    sequential: bool = False,
    fail_zone: str | None = None,
) -> list[S]:
    """api GET /x -> (db query on one of 3 hosts || cache get), then render; a customer on the root."""
    host = rng.choice(["db-1", "db-2", "db-3"])
    zone = {"db-1": "zone-a", "db-2": "zone-b", "db-3": "zone-b"}[host]
    version = slow_version if (regression and slow_version and host == "db-2") else "1.0"
    db_ms = rng.uniform(8, 12)
    if regression and slow_host == host:
        db_ms *= 4
    if regression and slow_version and version == slow_version:
        db_ms *= 4
    cache_ms = rng.uniform(6, 9)
    render_ms = rng.uniform(2, 3) + (render_extra if regression else 0.0)
    failing = bool(regression and fail_zone == zone and rng.random() < 0.9)
    n_queries = queries if regression else 1
    query_ms = db_ms / n_queries if n_queries == 1 else 2.0
    db_total = query_ms * n_queries + 1
    if regression and sequential:
        cache_start = 1 + db_total
        children_end = cache_start + cache_ms
    else:
        cache_start = 1.0
        children_end = 1 + max(db_total, cache_ms)
    root_ms = children_end + render_ms + 1
    resource = {"host.name": host, "service.version": version, "cloud.availability_zone": zone}
    spans = [
        S(
            "api",
            "GET /x",
            0,
            root_ms,
            attrs={"customer.id": f"c{rng.randint(1, 5)}", "request.id": f"r{i}{regression}"},
            error=failing,
        ),
        S("db", "query", 1, db_total, 0, resource=resource, error=failing),
        S("cache", "get", cache_start, cache_ms, 0),
        S("api", "render", children_end, render_ms, 0),
    ]
    for q in range(n_queries):
        spans.append(
            S(
                "db",
                "SELECT row",
                1.5 + q * query_ms,
                query_ms * 0.9,
                1,
                resource=resource,
                error=failing and q == n_queries - 1,
            )
        )
    return spans
