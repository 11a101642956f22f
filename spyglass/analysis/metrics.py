"""RED metrics (rate, errors, latency percentiles) for any window, grouped and over time.

Answers come from the rollups of 100% of spans (stored rows plus the aggregator's rows not yet stored), never
from the sample, so counts are exact and percentiles within the sketch's accuracy. Only a group-by on an
attribute nobody aggregates falls back to spans: the recall buffer (100% of recent, undecided spans) plus the
stored spans weighted by ``sample_weight``; such answers are marked ``estimated``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from spyglass.analysis.live import LiveData, RollupReader, coverage_split, window_spans
from spyglass.model.arrow_numpy import as_numpy
from spyglass.model.cells import summed_by_bin
from spyglass.model.rollups import COARSE_ROLLUP_S
from spyglass.model.schema import StatusCode
from spyglass.model.sketch import grouped_quantiles
from spyglass.store.attribute_cells import ATTRIBUTE_CELL_SCHEMA, CELL_SPAN_COLUMNS, attribute_cells_of
from spyglass.store.protocol import RollupQuery, ScanFilter, Store
from spyglass.store.top_values import TopValues, busiest, with_last_part

QUANTILES = (0.5, 0.9, 0.99)
#: Group-bys answered from base rollup columns rather than from an attribute.
COLUMN_GROUPS = {"service": "service", "service.name": "service", "operation": "operation"}


#: Rates never divide by less than this, so one span that just arrived is not read as a burst.
MIN_COVERED_S = 1.0
#: Finding where data begins reads the window in at most this many coarse buckets, then one of them finely.
COVERAGE_COARSE_STEPS = 60


@dataclass(frozen=True)
class Coverage:
    """The part of a window that data covers. Rates divide counts by its length, not the window's: a server
    that started a minute ago shows its traffic's real rate, not that minute spread over fifteen."""

    start_ns: int
    end_ns: int

    @property
    def seconds(self) -> float:
        return max(MIN_COVERED_S, (self.end_ns - self.start_ns) / 1e9)

    def rate(self, count: float) -> float:
        """Per second over the covered time."""
        return count / self.seconds

    def as_json(self) -> dict[str, Any]:
        return {"covered_start_ns": self.start_ns, "covered_end_ns": self.end_ns, "covered_s": self.seconds}


def data_coverage(rollups: RollupReader, start_ns: int, end_ns: int, now_ns: int) -> Coverage:
    """From where data begins in ``[start_ns, end_ns)`` to the window's end (never past now).

    Data begins at the window's start when this process has counted spans since before it (the common case:
    no read). Otherwise at the earliest rollup bucket holding spans in the window, stored or live (so data
    kept from before a restart counts), made exact by the first span this process counted when that falls
    in the same bucket. Quiet spells inside the covered time count as covered: a service that stopped
    answering should show a falling rate.
    """
    end = max(start_ns, min(end_ns, now_ns))
    first_span_ns = rollups.first_span_ns
    if first_span_ns is not None and first_span_ns <= start_ns:
        return Coverage(start_ns, end)
    bucket_s = rollups.bucket_s
    coarse_s = max(1, math.ceil((end - start_ns) / 1e9 / COVERAGE_COARSE_STEPS / bucket_s)) * bucket_s
    # Data usually begins in the window's first coarse step (a store kept from before a restart): look there
    # first. Found there, it is the earliest of the whole window too, since every later row starts later.
    first_step_end = min(end, start_ns + coarse_s * 10**9)
    begin = _first_bucket_ns(rollups, start_ns, first_step_end, coarse_s)
    if begin is None and first_step_end < end:
        begin = _first_bucket_ns(rollups, start_ns, end, coarse_s)
    if begin is not None and begin > start_ns and coarse_s > bucket_s:
        begin = _first_bucket_ns(rollups, begin, min(end, begin + coarse_s * 10**9), bucket_s) or begin
    if begin is None:
        return Coverage(start_ns, end)
    if first_span_ns is not None and begin <= first_span_ns < begin + bucket_s * 10**9:
        begin = first_span_ns
    return Coverage(min(end, max(start_ns, begin)), end)


def with_rates(result: dict[str, Any], coverage: Coverage) -> dict[str, Any]:
    """``rate_per_s`` on every group (``count`` over the covered time) and on every series point (its count
    over the part of its step that data covers), plus the covered span itself, so every rate the UI shows
    has one meaning. ``result`` is ``query_metrics``'s or the services overview's answer (groups under
    ``groups`` or ``services``); it is changed in place and returned."""
    step_s = result.get("step_s")
    for group in result.get("groups", result.get("services", [])):
        group["rate_per_s"] = coverage.rate(group["count"])
        if step_s is not None:
            for point in group.get("series", []):
                point["rate_per_s"] = step_rate(point["count"], point["start_ns"], step_s, coverage)
    result.update(coverage.as_json())
    return result


def step_rate(count: float, step_start_ns: int, step_s: int, coverage: Coverage) -> float:
    """One step's count per second of the part of the step data covers (a whole step once data covers it)."""
    covered_ns = min(step_start_ns + step_s * 10**9, coverage.end_ns) - max(step_start_ns, coverage.start_ns)
    if covered_ns <= 0:
        return count / step_s
    return count / max(MIN_COVERED_S, covered_ns / 1e9)


def _first_bucket_ns(rollups: RollupReader, start_ns: int, end_ns: int, resolution_s: int) -> int | None:
    # Whether any span is there, by bucket: every key column may be summed away.
    rows = rollups.read(RollupQuery(start_ns, end_ns, resolution_s=resolution_s, group_by=(), by_bin=False))
    rows = rows.filter(pc.greater(rows.column("count"), 0))
    if rows.num_rows == 0:
        return None
    first = int(pc.min(rows.column("bucket_start_ns")).as_py())
    # Live rows come at the aggregator's own bucket size: align them as the store aligned its rows.
    return first - first % (resolution_s * 10**9)


@dataclass(frozen=True)
class MetricsQuery:
    """``start_ns`` inclusive, ``end_ns`` exclusive; ``step_s`` asks for a series per group."""

    start_ns: int
    end_ns: int
    service: str | None = None
    operation: str | None = None
    group_by: str | None = None
    step_s: int | None = None
    #: Only spans of these kinds (``SpanKind`` codes); empty: every kind.
    kinds: tuple[int, ...] = ()


@dataclass(frozen=True)
class _Cells:
    """What the summary needs, whatever the source: a label per row, a time, a sketch bin, weights."""

    labels: pa.Array
    times_ns: npt.NDArray[np.int64]
    bins: npt.NDArray[np.int64]
    counts: npt.NDArray[np.float64]
    errors: npt.NDArray[np.float64]


def query_metrics(
    store: Store, rollups: RollupReader, live: LiveData | None, query: MetricsQuery
) -> dict[str, Any]:
    """``{"groups": [...], "estimated": bool, ...}`` as ``GET /api/v1/metrics`` returns it."""
    group_by = query.group_by
    column = COLUMN_GROUPS.get(group_by) if group_by is not None else None
    estimated = group_by is not None and column is None and group_by not in rollups.attribute_keys
    attr_key = group_by if group_by is not None and column is None else None
    if estimated:
        resolution_s = 1
    else:
        resolution_s = rollups.attribute_bucket_s if attr_key else rollups.bucket_s
    step_s = None
    if query.step_s is not None:
        # A series cannot be finer than the rollup buckets: round the step up to a whole number of them.
        step_s = max(1, math.ceil(query.step_s / resolution_s)) * resolution_s
    if estimated:
        assert group_by is not None
        cells, complete = _span_cells(store, live, query, group_by, step_s)
        estimated = not complete
    else:
        # The store sums its buckets into steps (or into the whole window) before handing rows over; a whole
        # window in a multiple of ten minutes, which a store may answer from ten-minute rows.
        window_s = math.lcm(rollups.bucket_s, rollups.attribute_bucket_s, COARSE_ROLLUP_S)
        merge_s = step_s or (math.ceil((query.end_ns - query.start_ns) / 1e9 / window_s) + 1) * window_s
        # Only the label is told apart: the store may sum over every other key column before answering.
        label = column or ("attr_value" if attr_key else None)
        told_apart = (label,) if label else ()
        rows = rollups.read(
            RollupQuery(
                query.start_ns,
                query.end_ns,
                query.service,
                query.operation,
                attr_key,
                merge_s,
                told_apart,
                kinds=query.kinds,
            )
        )
        cells = _rollup_cells(rows, column, default_key(query) if group_by is None else None)
    groups = summarize(cells, query.start_ns, query.end_ns, step_s, exact=not estimated)
    if group_by is None and not groups:
        groups = [_empty_group(default_key(query), query, step_s)]
    result: dict[str, Any] = {
        "groups": groups,
        "estimated": estimated,
        "start_ns": query.start_ns,
        "end_ns": query.end_ns,
    }
    if group_by is not None:
        result["group_by"] = group_by
    if step_s is not None:
        result["step_s"] = step_s
    return result


def default_key(query: MetricsQuery) -> str:
    """The key of the single group when nothing is grouped: the filter itself, or ``all``."""
    if query.service and query.operation:
        return f"{query.service}/{query.operation}"
    return query.service or query.operation or "all"


def _rollup_cells(rows: pa.Table, column: str | None, constant: str | None) -> _Cells:
    if constant is not None:
        labels = pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows.num_rows, np.int32)), [constant])
    else:
        labels = rows.column(column or "attr_value").combine_chunks()
    return _Cells(
        labels=labels,
        times_ns=as_numpy(rows.column("bucket_start_ns"), np.int64),
        bins=as_numpy(rows.column("bin"), np.int64),
        counts=as_numpy(rows.column("count"), np.float64),
        errors=as_numpy(rows.column("errors"), np.float64),
    )


def _span_cells(
    store: Store, live: LiveData | None, query: MetricsQuery, key: str, step_s: int | None
) -> tuple[_Cells, bool]:
    """Spans of the window carrying ``key`` (span attribute first, else resource), weighted and summed by value,
    step and bin: the buffer since it covers (summed here), the store before (summed by the store,
    ``Store.attribute_cells``). Exact when the buffer covers the window."""
    where = ScanFilter(service=query.service, operation=query.operation, kinds=query.kinds)
    split = coverage_split(live, query.start_ns, query.end_ns)
    step_ns = step_s * 1_000_000_000 if step_s is not None else None
    # The values named are chosen over the whole window: the buffer's part, read first, is counted before the
    # store's is summed with the quietest values folded (``top_values``).
    top = TopValues(MAX_GROUPS, OTHER_GROUP)
    buffered_parts = []
    if split < query.end_ns:
        columns = [c for c in CELL_SPAN_COLUMNS if c != "sample_weight"]
        for buffered in window_spans(store, live, columns, split, query.end_ns, where):
            buffered_parts.append(attribute_cells_of(buffered, key, query.start_ns, step_ns))
    parts = []
    if query.start_ns < split:
        parts = with_last_part(
            top,
            buffered_parts,
            lambda chosen: store.attribute_cells(key, query.start_ns, split, step_ns, where, chosen),
        )
    elif buffered_parts:
        parts.append(top.settle(pa.concat_tables([p.cast(ATTRIBUTE_CELL_SCHEMA) for p in buffered_parts])))
    filled = [part.cast(ATTRIBUTE_CELL_SCHEMA) for part in parts if part.num_rows]
    cells = pa.concat_tables(filled) if filled else ATTRIBUTE_CELL_SCHEMA.empty_table()
    return (
        _Cells(
            labels=cells.column("value").combine_chunks(),
            times_ns=as_numpy(cells.column("start_ns"), np.int64),
            bins=as_numpy(cells.column("bin"), np.int64),
            counts=as_numpy(cells.column("weight"), np.float64),
            errors=as_numpy(cells.column("error_weight"), np.float64),
        ),
        live is not None and split == query.start_ns,
    )


#: Groups an answer lists at most: the busiest, the rest summed into one ``__other__`` group, as the rollups fold
#: a key's values past their bound. Grouped by a key with a value per request (an id in an attribute or in span
#: names), an answer would otherwise hold a group per request: a million dicts and a JSON of hundreds of MB.
MAX_GROUPS = 1000
OTHER_GROUP = "__other__"


def summarize(
    cells: _Cells, start_ns: int, end_ns: int, step_s: int | None, *, exact: bool
) -> list[dict[str, Any]]:
    """One summary per label (busiest first), each with a dense series of steps when ``step_s`` is given; past
    ``MAX_GROUPS`` labels, the quietest are summed as one ``__other__`` group."""
    if len(cells.labels) == 0:
        return []
    encoded = (
        cells.labels if isinstance(cells.labels, pa.DictionaryArray) else cells.labels.dictionary_encode()
    )
    names = encoded.dictionary.to_pylist()
    group = as_numpy(encoded.indices.fill_null(-1), np.int64)
    names, group = _fold_quietest(names, group, cells.counts)
    ids, totals, values, maxima = grouped_quantiles(
        *summed_by_bin(group, cells.bins, cells.counts), QUANTILES, ordered=True
    )
    errors = np.bincount(group[group >= 0], weights=cells.errors[group >= 0], minlength=len(names))
    summaries = {
        int(gid): _summary(totals[i], errors[gid], values[i], maxima[i], exact)
        for i, gid in enumerate(ids.tolist())
        if gid >= 0
    }
    if step_s is not None:
        step_ns = step_s * 1_000_000_000
        first_ns = start_ns - start_ns % step_ns
        n_steps = max(1, -(-(end_ns - first_ns) // step_ns))
        step = np.clip((cells.times_ns - first_ns) // step_ns, 0, n_steps - 1)
        cell_ids = np.where(group >= 0, group * n_steps + step, -1)
        c_ids, c_totals, c_values, c_maxima = grouped_quantiles(
            *summed_by_bin(cell_ids, cells.bins, cells.counts), QUANTILES, ordered=True
        )
        valid = cell_ids >= 0
        c_errors = np.bincount(cell_ids[valid], weights=cells.errors[valid], minlength=len(names) * n_steps)
        points = _step_points(c_ids, c_totals, c_errors, c_values, c_maxima, len(names) * n_steps, exact)
        starts = [first_ns + s * step_ns for s in range(n_steps)]
        for gid, summary in summaries.items():
            summary["series"] = [
                {"start_ns": start, **point}
                for start, point in zip(starts, points[gid * n_steps : (gid + 1) * n_steps], strict=True)
            ]
    groups = [{"key": names[gid], **summary} for gid, summary in summaries.items()]
    groups.sort(key=lambda g: (-g["count"], str(g["key"])))
    return groups


def _fold_quietest(
    names: list[Any], group: npt.NDArray[np.int64], counts: npt.NDArray[np.float64]
) -> tuple[list[Any], npt.NDArray[np.int64]]:
    """The labels and each cell's label number, the quietest labels past ``MAX_GROUPS`` renumbered as one
    ``__other__`` (``top_values.busiest``: the same choice a store folds by as it sums)."""
    if len(names) <= MAX_GROUPS:
        return names, group
    present = group >= 0
    totals = np.asarray(
        np.bincount(group[present], weights=counts[present], minlength=len(names)), np.float64
    )
    kept = busiest(pa.array(names), totals, MAX_GROUPS, OTHER_GROUP)
    if kept is None:
        return names, group
    other = names.index(OTHER_GROUP) if OTHER_GROUP in names else len(names)
    renumbered = np.full(len(names) + 1, other, dtype=np.int64)
    renumbered[kept] = kept
    renumbered[-1] = -1  # group -1 (no label) stays without one
    return [*names, OTHER_GROUP] if other == len(names) else names, renumbered[group]


def _step_points(
    ids: npt.NDArray[np.int64],
    totals: npt.NDArray[np.float64],
    errors: npt.NDArray[Any],
    values: npt.NDArray[np.float64],
    maxima: npt.NDArray[np.float64],
    cells: int,
    exact: bool,
) -> list[dict[str, Any]]:
    """``_summary`` of every (label, step) cell, ``cells`` of them, with the arithmetic done on arrays (a
    series by the minute of 5,000 labels is 310,000 points: one Python call each took two seconds)."""
    count = np.zeros(cells)
    latency = np.full((cells, len(QUANTILES) + 1), np.nan)
    count[ids] = totals
    latency[ids, :-1] = values
    latency[ids, -1] = maxima
    rounded = np.round(latency / 1e6, 6)
    as_ms = [[None if math.isnan(v) else v for v in row] for row in rounded.tolist()]
    counts = count.astype(np.int64) if exact else np.round(count)
    failed = errors[:cells].astype(np.int64) if exact else np.round(errors[:cells])
    return [
        {
            "count": int(c),
            "errors": int(e),
            "p50_ms": ms[0],
            "p90_ms": ms[1],
            "p99_ms": ms[2],
            "max_ms": ms[3],
        }
        for c, e, ms in zip(counts.tolist(), failed.tolist(), as_ms, strict=True)
    ]


def _summary(
    count: float, errors: float, values: npt.NDArray[np.float64] | None, maximum: float | None, exact: bool
) -> dict[str, Any]:
    def ms(value_ns: float | None) -> float | None:
        if value_ns is None or math.isnan(value_ns):
            return None
        return round(float(value_ns) / 1e6, 6)

    p = [None, None, None] if values is None else [ms(v) for v in values.tolist()]
    return {
        "count": int(count) if exact else round(float(count)),
        "errors": int(errors) if exact else round(float(errors)),
        "p50_ms": p[0],
        "p90_ms": p[1],
        "p99_ms": p[2],
        "max_ms": ms(maximum),
    }


def exact_window_summary(
    spans: pa.Table, service: str, operation: str, start_ns: int, end_ns: int
) -> dict[str, Any]:
    """Count, errors and exact latency percentiles of one operation's spans starting in the window: for
    windows shorter than a rollup bucket, from spans the recall buffer holds in full."""
    starts = spans.column("start_ns")
    chosen = spans.filter(
        pc.and_(
            pc.and_(pc.equal(spans.column("service"), service), pc.equal(spans.column("name"), operation)),
            pc.and_(pc.greater_equal(starts, start_ns), pc.less(starts, end_ns)),
        )
    )
    durations = as_numpy(chosen.column("duration_ns"), np.float64)
    errors = int(pc.sum(pc.equal(chosen.column("status_code"), int(StatusCode.ERROR))).as_py() or 0)
    if not durations.size:
        return _summary(0.0, 0.0, None, None, True)
    return _summary(durations.size, errors, np.quantile(durations, QUANTILES), float(durations.max()), True)


def _empty_group(key: str, query: MetricsQuery, step_s: int | None) -> dict[str, Any]:
    group: dict[str, Any] = {"key": key, **_summary(0.0, 0.0, None, None, True)}
    if step_s is not None:
        step_ns = step_s * 1_000_000_000
        first_ns = query.start_ns - query.start_ns % step_ns
        n_steps = max(1, -(-(query.end_ns - first_ns) // step_ns))
        group["series"] = [
            {"start_ns": first_ns + s * step_ns, **_summary(0.0, 0.0, None, None, True)}
            for s in range(n_steps)
        ]
    return group
