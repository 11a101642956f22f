"""What each overview page of the web UI needs, read from where it lives: the rollups of 100% of spans (stored
and pending), the recall buffer's recent spans and the store; the numbers are worked out in
``spyglass.analysis.ui_views``. The API's handlers only translate HTTP to these calls."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from spyglass.analysis.critical_path import COLUMNS as CRITICAL_PATH_COLUMNS
from spyglass.analysis.live import LiveData, RollupReader
from spyglass.analysis.metrics import data_coverage, with_rates
from spyglass.analysis.ownership import Ownership
from spyglass.analysis.traces import trace_spans
from spyglass.analysis.ui_views import (
    VERSION_KEY,
    critical_path_spans,
    deployments,
    first_version_minutes,
    latency_heatmap,
    red_overview,
)
from spyglass.model.rollups import COARSE_ROLLUP_S, ROLLUP_SCHEMA, concat_rollups
from spyglass.model.schema import ENTRY_KINDS, SpanKind, of_kinds
from spyglass.store.protocol import RollupQuery, ScanFilter, Store

#: Owners are learned from the stored spans of a window's last minute, for services the buffer does not hold.
OWNER_LOOKBACK_NS = 60 * 10**9
#: How many of the recall buffer's newest spans the pages read (a full buffer is millions: seconds to unpack).
RECENT_SPANS = 200_000
#: Owners are read again from recent spans at most this often, unless a service not looked for yet appears.
RELEARN_OWNERS_NS = 30 * 10**9


@dataclass(frozen=True)
class UiSources:
    """Where the overview pages read from (in a cluster, the cluster-wide views)."""

    store: Store
    live: LiveData
    rollups: RollupReader
    ownership: Ownership


def _base_rollups(
    rollups: RollupReader,
    start_ns: int,
    end_ns: int,
    step_s: int,
    service: str | None = None,
    operation: str | None = None,
    group_by: tuple[str, ...] = (),
    kinds: tuple[int, ...] = (),
) -> pa.Table:
    """Base rollups at ``step_s``, told apart by ``group_by`` only (a store may sum the other keys away: an
    hour of every service's operations at 10M spans is millions of rows, one per service and kind far fewer)."""
    return rollups.read(
        RollupQuery(start_ns, end_ns, service, operation, resolution_s=step_s, group_by=group_by, kinds=kinds)
    )


def service_overview(
    sources: UiSources, start_ns: int, end_ns: int, step_s: int, now_ns: int | None = None
) -> dict[str, Any]:
    """The home page in one request; rates (``rate_per_s``) divide by the time data covers (``covered_s``),
    not the window's length."""
    if now_ns is None:
        now_ns = time.time_ns()
    rows = _entry_rollups(sources.rollups, start_ns, end_ns, step_s)
    _learn_owners(sources, end_ns)
    store, ownership = sources.store, sources.ownership
    overview = red_overview(rows, store.services(), ownership.owner, start_ns, end_ns, step_s)
    return with_rates(overview, data_coverage(sources.rollups, start_ns, end_ns, now_ns))


def _entry_rollups(rollups: RollupReader, start_ns: int, end_ns: int, step_s: int) -> pa.Table:
    """The base rollups ``red_overview`` keeps, told apart by service and kind: the entry spans (server and
    consumer) of services that have any in the window, every span of those that have none. Which services have
    entry spans comes first from the sums alone (no latency bins); then the entry spans' bins, and the other
    kinds' only when some service has no entry span. A service's calls to others usually outnumber its entry
    spans, and the page read all of their bins to drop them."""
    whole_s = math.ceil((end_ns - start_ns) / 1e9 / COARSE_ROLLUP_S + 1) * COARSE_ROLLUP_S
    seen = rollups.read(
        RollupQuery(start_ns, end_ns, resolution_s=whole_s, group_by=("service", "kind"), by_bin=False)
    )
    seen = seen.filter(pc.greater(seen.column("count"), 0))
    entry = of_kinds(seen.column("kind"), ENTRY_KINDS)
    with_entry = set(pc.filter(seen.column("service"), entry).to_pylist())
    without = sorted(set(seen.column("service").to_pylist()) - with_entry)
    group_by = ("service", "kind")
    parts = [_base_rollups(rollups, start_ns, end_ns, step_s, group_by=group_by, kinds=ENTRY_KINDS)]
    if without:
        others = tuple(kind for kind in range(len(SpanKind)) if kind not in ENTRY_KINDS)
        rest = _base_rollups(rollups, start_ns, end_ns, step_s, group_by=group_by, kinds=others)
        parts.append(rest.filter(pc.is_in(rest.column("service"), pa.array(without, pa.string()))))
    return concat_rollups([part.cast(ROLLUP_SCHEMA) for part in parts])


def _learn_owners(sources: UiSources, end_ns: int) -> None:
    """Owners come from resources (``service.namespace``, ``team``...): learn them from the recall buffer's
    newest spans (``RECENT_SPANS``), and for services those lack, from their stored spans of the window's last
    minute. Owners rarely change: a page refreshed every few seconds looks again only for a service it has not
    looked for yet, or after ``RELEARN_OWNERS_NS`` (reading the whole buffer on each request was half of the
    home page's time when some service names no owner)."""
    store, ownership = sources.store, sources.ownership
    services = store.services()
    now_ns = time.monotonic_ns()
    unknown = [service for service in services if ownership.owner(service) is None]
    if now_ns - ownership.learned_at_ns < RELEARN_OWNERS_NS and ownership.looked_for.issuperset(unknown):
        return
    ownership.learned_at_ns = now_ns
    ownership.looked_for = set(services)
    recent = sources.live.recent_spans(include_decided=True, newest=RECENT_SPANS)
    if recent.num_rows:
        ownership.learn(recent.select(["service", "resource"]))
    for service in services:
        if ownership.owner(service) is None:
            found = store.scan(
                ["service", "resource"], end_ns - OWNER_LOOKBACK_NS, end_ns, ScanFilter(service=service)
            )
            if found.num_rows:
                ownership.learn(found.slice(0, 1))


def heatmap(
    sources: UiSources,
    start_ns: int,
    end_ns: int,
    step_s: int,
    service: str | None,
    operation: str | None,
    kinds: tuple[int, ...] = (),
) -> dict[str, Any]:
    rows = _base_rollups(
        sources.rollups, start_ns, end_ns, step_s, service=service, operation=operation, kinds=kinds
    )
    return latency_heatmap(rows, start_ns, end_ns, step_s)


def versions(sources: UiSources, start_ns: int, end_ns: int, service: str | None) -> dict[str, Any]:
    # The first minute of each version needs counts only, not their latency bins.
    rows = sources.rollups.read(RollupQuery(start_ns, end_ns, service, attr_key=VERSION_KEY, by_bin=False))
    minutes = first_version_minutes(rows, start_ns, end_ns)
    # The buffer's newest spans sharpen when a version now rolling out first appeared; a version first seen
    # earlier is found among stored spans (the sampler keeps the first traces of a new value) or by its minute.
    # Only the buffer's chunks of those minutes are unpacked: after a burst of ingest, the newest 200,000 spans
    # were 200 ms of a 370 ms answer at 10M stored spans, for versions all first seen an hour before.
    windows = sorted({(minute_start, minute_end) for _, _, minute_start, minute_end in minutes})
    buffered = sources.live.recent_spans(include_decided=True, newest=RECENT_SPANS, starting=windows)
    return deployments(minutes, buffered, sources.store)


def trace_critical_path(sources: UiSources, trace_id: bytes) -> dict[str, Any] | None:
    """The spans on one trace's critical path with their exclusive critical time, for the waterfall."""
    spans = trace_spans(sources.store, sources.live, trace_id).select(CRITICAL_PATH_COLUMNS)
    if spans.num_rows == 0:
        return None
    # A recent kept trace is both stored and still buffered: the walk needs each span once.
    spans = spans.group_by(CRITICAL_PATH_COLUMNS, use_threads=False).aggregate([])
    return {"trace_id": trace_id.hex(), "spans": critical_path_spans(spans)}
