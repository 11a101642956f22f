"""The critical path of traces: which operations' own time the end-to-end latency was actually waiting on.

The walk is the standard one (Jaeger's critical path, Uber's CRISP): start at the root with a cursor at its end;
the child that finished last before the cursor is critical, recurse into it, move the cursor to its start, and
carry on with the children that ended before the new cursor. The gaps the cursor crosses without a child are
the parent's own (exclusive) critical time. Children running in parallel with a critical child are skipped, so
only the last-finishing chain counts.

Before the walk every span's window is made consistent with its parent's:

- **Clock skew** (as Jaeger's clock-skew adjuster): a SERVER span under a CLIENT span that does not lie inside the
  client (another host's clock) but is not longer than it is shifted to the middle of the client span, the
  network time split evenly between request and response. Its descendants in the same service move with it.
  Anything else that sticks out is clipped.
- **Async children**: a child is clipped to its parent's (clipped) window; a child that starts at or after its
  parent's end (FOLLOWS_FROM-like work) or ends before the parent starts contributes nothing, nor does its
  subtree.
- **Missing parents**: the root is the span without a parent (the earliest one if several); without one, the
  earliest span whose parent is missing. Other orphans become children of the root when they lie inside its
  window and are ignored otherwise. Spans on parent cycles never reach the root and are ignored.

Everything is vectorized over all traces at once with numpy: parents are resolved by sorting, windows are
adjusted level by level (one pass per tree depth), and each parent's chain of critical children is found in
rounds of ``searchsorted`` (one round per critical child of the busiest parent), so a million spans take
about a second and no Python code runs per span.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spyglass.model.arrow_numpy import as_numpy, valid_mask
from spyglass.model.equal_runs import run_starts
from spyglass.model.schema import SpanKind

#: The span columns the analysis reads (``sample_weight`` is used too when present).
COLUMNS = ["trace_id", "span_id", "parent_span_id", "service", "name", "kind", "start_ns", "duration_ns"]

CRITICAL_PATH_SCHEMA = pa.schema(
    [
        pa.field("trace_id", pa.binary(16)),
        pa.field("service", pa.string()),
        pa.field("operation", pa.string()),
        pa.field("critical_ns", pa.int64()),
    ]
)

_I64 = np.int64


def span_critical_ns(spans: pa.Table) -> np.ndarray:
    """Each span's exclusive critical-path time in ns (0 off the path), aligned with the table's rows."""
    return _CriticalPath(spans).critical_ns


def critical_path(spans: pa.Table) -> pa.Table:
    """Per trace, the critical-path time by ``(service, operation)``: ``trace_id, service, operation,
    critical_ns``, only operations on the path, by trace then largest first. Per trace the sum is the root's
    duration."""
    cp = _CriticalPath(spans)
    if cp.n == 0:
        return CRITICAL_PATH_SCHEMA.empty_table()
    groups = cp.trace_operation_sums()
    keep = groups.critical > 0
    order = np.lexsort((-groups.critical[keep], groups.trace[keep]))
    first_row = cp.first_row_of_trace[groups.trace[keep][order]]
    op = groups.op[keep][order]
    return pa.table(
        {
            "trace_id": spans.column("trace_id").take(pa.array(first_row)),
            "service": cp.op_service.take(pa.array(op)),
            "operation": cp.op_name.take(pa.array(op)),
            "critical_ns": pa.array(groups.critical[keep][order], pa.int64()),
        },
        schema=CRITICAL_PATH_SCHEMA,
    )


def critical_path_contributions(spans: pa.Table) -> dict[str, Any]:
    """Aggregate over the traces in ``spans``: ``{"traces": N, "contributions": [...]}``.

    A contribution is ``service, operation, share, p50_ms, p99_ms, max_speedup``, largest share first:

    - ``share``: the operation's critical-path time over the total critical-path time of all the traces (the
      sum of their roots' durations), each trace weighted by its ``sample_weight`` when that column is present;
      the shares add up to 1.
    - ``p50_ms``/``p99_ms``: the (weighted) quantiles of the operation's critical time per trace, over the
      traces that contain the operation (0 in those where it ran off the critical path).
    - ``max_speedup``: Amdahl's bound on the whole request from making this operation free, ``1 / (1 -
      share)``; ``null`` when the operation is the whole critical path (the bound is infinite, which JSON
      cannot carry).

    Operations that never were on the critical path are left out.
    """
    cp = _CriticalPath(spans)
    if cp.n == 0:
        return {"traces": 0, "contributions": []}
    groups = cp.trace_operation_sums()
    weight = cp.trace_weight[groups.trace]
    n_ops = len(cp.op_service)
    op_total = np.bincount(groups.op, weights=groups.critical * weight, minlength=n_ops)
    grand_total = float(op_total.sum())
    p50, p99 = _weighted_quantiles(groups.op, groups.critical.astype(np.float64), weight, n_ops, (0.5, 0.99))
    services = cp.op_service.to_pylist()
    names = cp.op_name.to_pylist()
    contributions = []
    for op in np.argsort(-op_total, kind="stable"):
        if op_total[op] <= 0:
            continue
        share = float(op_total[op] / grand_total)
        contributions.append(
            {
                "service": services[op],
                "operation": names[op],
                "share": share,
                "p50_ms": float(p50[op]) / 1e6,
                "p99_ms": float(p99[op]) / 1e6,
                "max_speedup": None if share >= 1.0 - 1e-12 else 1.0 / (1.0 - share),
            }
        )
    return {"traces": cp.n_traces, "contributions": contributions}


class _TraceOperationSums:
    """One row per (trace, operation) present in the trace: the critical ns summed over its spans."""

    def __init__(self, trace: np.ndarray, op: np.ndarray, critical: np.ndarray) -> None:
        self.trace = trace
        self.op = op
        self.critical = critical


class _CriticalPath:
    """The computation; arrays are in trace-sorted row order unless named otherwise."""

    def __init__(self, spans: pa.Table) -> None:
        self.n = spans.num_rows
        self.critical_ns = np.zeros(self.n, dtype=_I64)
        self.n_traces = 0
        if self.n == 0:
            return
        trace_words = _fixed_binary_words(spans.column("trace_id"), 2)
        self.order = np.lexsort((trace_words[:, 1], trace_words[:, 0]))
        tw = trace_words[self.order]
        new_trace = np.empty(self.n, dtype=bool)
        new_trace[0] = True
        new_trace[1:] = (tw[1:, 0] != tw[:-1, 0]) | (tw[1:, 1] != tw[:-1, 1])
        self.trace = np.cumsum(new_trace) - 1
        self.n_traces = int(self.trace[-1]) + 1
        self.first_row_of_trace = self.order[np.flatnonzero(new_trace)]

        self.start = as_numpy(spans.column("start_ns"), _I64)[self.order]
        self.duration = np.maximum(as_numpy(spans.column("duration_ns"), _I64)[self.order], 0)
        self.kind = as_numpy(spans.column("kind"), np.int8)[self.order]
        service = pc.dictionary_encode(spans.column("service").combine_chunks())
        name = pc.dictionary_encode(spans.column("name").combine_chunks())
        service_idx = as_numpy(service.indices, _I64)
        name_idx = as_numpy(name.indices, _I64)
        pair, op = np.unique(service_idx * max(len(name.dictionary), 1) + name_idx, return_inverse=True)
        self.op = op.reshape(-1)[self.order]
        self.service = service_idx[self.order]
        n_names = max(len(name.dictionary), 1)
        self.op_service = service.dictionary.take(pa.array(pair // n_names))
        self.op_name = name.dictionary.take(pa.array(pair % n_names))

        if "sample_weight" in spans.column_names:
            weights = as_numpy(spans.column("sample_weight"), np.float64)[self.order]
            self.trace_weight = np.nan_to_num(weights[np.flatnonzero(new_trace)], nan=1.0)
        else:
            self.trace_weight = np.ones(self.n_traces)

        parent = self._resolve_parents(spans)
        root = self._choose_roots(parent)
        self._adopt_orphans(parent, root)
        critical_sorted = self._walk(parent, root)
        self.critical_ns[self.order] = critical_sorted
        self.critical_sorted = critical_sorted

    def _resolve_parents(self, spans: pa.Table) -> np.ndarray:
        """Row of each span's parent in the same trace, -1 when it has none or it is missing."""
        span_id = _fixed_binary_words(spans.column("span_id"), 1)[self.order, 0]
        parent_col = spans.column("parent_span_id").combine_chunks()
        parent_id = _fixed_binary_words(parent_col, 1)[self.order, 0]
        has_parent = valid_mask(parent_col)[self.order]
        # Exact ranks of every id (span and parent ids together), so (trace, id) fits one int64 key.
        unique_ids, rank = np.unique(np.concatenate([span_id, parent_id]), return_inverse=True)
        rank = rank.reshape(-1)
        span_rank, parent_rank = rank[: self.n], rank[self.n :]
        m = len(unique_ids) + 1
        keys = self.trace * m + span_rank
        by_key = np.argsort(keys, kind="stable")
        sorted_keys = keys[by_key]
        wanted = self.trace * m + parent_rank  # rows are in trace order, so these queries are nearly sorted
        at = np.minimum(np.searchsorted(sorted_keys, wanted), self.n - 1)
        found = has_parent & (sorted_keys[at] == wanted)
        parent = np.where(found, by_key[at], -1)
        parent[parent == np.arange(self.n)] = -1  # a span that names itself as parent
        self.has_parent_id = has_parent
        return parent

    def _choose_roots(self, parent: np.ndarray) -> np.ndarray:
        """Per trace, the row of its root: parentless first, then parent missing, then any; earliest wins."""
        priority = np.where(~self.has_parent_id, 0, np.where(parent < 0, 1, 2))
        seg = run_starts(self.trace)
        candidate = priority == np.minimum.reduceat(priority, seg)[self.trace]
        start = np.where(candidate, self.start, np.iinfo(_I64).max)
        candidate &= start == np.minimum.reduceat(start, seg)[self.trace]
        duration = np.where(candidate, self.duration, -1)
        candidate &= duration == np.maximum.reduceat(duration, seg)[self.trace]
        rows = np.flatnonzero(candidate)
        root = rows[run_starts(self.trace[rows])]
        parent[root] = -1
        return root

    def _adopt_orphans(self, parent: np.ndarray, root: np.ndarray) -> None:
        """Orphans inside their trace root's window become its children; the others stay unreachable."""
        orphan = parent < 0
        orphan[root] = False
        rows = np.flatnonzero(orphan)
        trace_root = root[self.trace[rows]]
        inside = (self.start[rows] >= self.start[trace_root]) & (
            self.start[rows] + self.duration[rows] <= self.start[trace_root] + self.duration[trace_root]
        )
        parent[rows[inside]] = trace_root[inside]

    def _walk(self, parent: np.ndarray, root: np.ndarray) -> np.ndarray:
        n = self.n
        start, end = self.start, self.start + self.duration
        # Children lists (CSR over rows sorted by parent).
        child_rows = np.flatnonzero(parent >= 0)
        child_rows = child_rows[np.argsort(parent[child_rows], kind="stable")]
        child_count = np.bincount(parent[child_rows], minlength=n)
        child_ptr = np.concatenate(([0], np.cumsum(child_count)))

        delta = np.zeros(n, dtype=_I64)
        clip_s = start.copy()
        clip_e = end.copy()
        reached = np.zeros(n, dtype=bool)
        reached[root] = True
        levels = [root]
        frontier = root
        while len(frontier):
            kids = _gather(child_rows, child_ptr, frontier)
            if len(kids) == 0:
                break
            p = parent[kids]
            own_delta = np.where(self.service[kids] == self.service[p], delta[p], 0)
            skew_pair = (self.kind[kids] == SpanKind.SERVER) & (self.kind[p] == SpanKind.CLIENT)
            p_start, p_end = start[p] + delta[p], end[p] + delta[p]
            fits = (start[kids] >= p_start) & (end[kids] <= p_end)
            centered = p_start + (self.duration[p] - self.duration[kids]) // 2 - start[kids]
            skew = np.where(fits | (self.duration[kids] > self.duration[p]), 0, centered)
            d = np.where(skew_pair, skew, own_delta)
            s, e = start[kids] + d, end[kids] + d
            alive = (s < clip_e[p]) & (e > clip_s[p])
            kids, s, e, d, p = kids[alive], s[alive], e[alive], d[alive], p[alive]
            delta[kids] = d
            clip_s[kids] = np.maximum(s, clip_s[p])
            clip_e[kids] = np.minimum(e, clip_e[p])
            reached[kids] = True
            levels.append(kids)
            frontier = kids

        selected = self._select_critical_children(parent, reached, clip_s, clip_e)
        length = clip_e - clip_s
        covered = np.bincount(parent[selected], weights=length[selected], minlength=n).astype(_I64)
        own = length - covered
        on_path = np.zeros(n, dtype=bool)
        on_path[root] = True
        is_selected = np.zeros(n, dtype=bool)
        is_selected[selected] = True
        for level in levels[1:]:
            on_path[level] = is_selected[level] & on_path[parent[level]]
        return np.where(on_path, own, 0)

    def _select_critical_children(
        self, parent: np.ndarray, reached: np.ndarray, clip_s: np.ndarray, clip_e: np.ndarray
    ) -> np.ndarray:
        """Rows that are a critical child of their parent: from the parent's end backwards, the child that
        ended last at or before the cursor, then the cursor moves to that child's start."""
        rows = np.flatnonzero(reached & (parent >= 0))
        if len(rows) == 0:
            return rows
        # Children grouped by parent, latest end first, the longer first on equal ends. The sort key is one
        # int64 (parent, end descending): ends are measured back from the latest end, which fits unless the
        # window is enormous; then ends are replaced by their ranks.
        p = parent[rows]
        last = int(clip_e[rows].max())
        back = last - clip_e[rows]
        span = int(back.max()) + 2
        if (int(p.max()) + 1) * span >= 2**62:
            ends = np.unique(back)
            back, span = np.searchsorted(ends, back), len(ends) + 2
        else:
            ends = None
        composite = p * span + back
        by = np.lexsort((clip_s[rows], composite))
        rows, p, composite = rows[by], p[by], composite[by]
        parents, seg_lo = np.unique(p, return_index=True)
        seg_hi = np.append(seg_lo[1:], len(rows))
        cursor = clip_e[parents]
        pos = seg_lo
        chosen = []
        while len(parents):
            # The first child at or after ``pos`` whose end is at or before the cursor.
            cursor_back = last - cursor
            if ends is not None:
                cursor_back = np.searchsorted(ends, cursor_back)
            j = np.maximum(np.searchsorted(composite, parents * span + cursor_back), pos)
            ok = j < seg_hi
            parents, j, seg_hi = parents[ok], j[ok], seg_hi[ok]
            chosen.append(rows[j])
            cursor = clip_s[rows[j]]
            pos = j + 1
        return np.concatenate(chosen) if chosen else rows[:0]

    def trace_operation_sums(self) -> _TraceOperationSums:
        n_ops = len(self.op_service)
        keys, inverse = np.unique(self.trace * n_ops + self.op, return_inverse=True)
        sums = np.bincount(inverse.reshape(-1), weights=self.critical_sorted, minlength=len(keys))
        return _TraceOperationSums(keys // n_ops, keys % n_ops, np.rint(sums).astype(_I64))


def _gather(values: np.ndarray, ptr: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """Concatenate the CSR segments ``values[ptr[i]:ptr[i+1]]`` of ``nodes``."""
    lo, hi = ptr[nodes], ptr[nodes + 1]
    counts = hi - lo
    total = int(counts.sum())
    if total == 0:
        return values[:0]
    offsets = np.repeat(lo - np.cumsum(counts) + counts, counts)
    return values[offsets + np.arange(total)]


def _weighted_quantiles(
    group: np.ndarray, value: np.ndarray, weight: np.ndarray, n_groups: int, qs: tuple[float, ...]
) -> list[np.ndarray]:
    """Per group, the smallest value whose cumulative weight reaches ``q`` of the group's weight."""
    order = np.lexsort((value, group))
    g, v, w = group[order], value[order], weight[order]
    cum = np.cumsum(w)
    group_total = np.bincount(g, weights=w, minlength=n_groups)
    group_end = np.cumsum(group_total)
    before = group_end - group_total  # cumulative weight before each group
    out = []
    for q in qs:
        target = before + q * group_total
        # First row of the group whose cumulative weight reaches the target (a small epsilon for rounding).
        idx = np.searchsorted(cum, target - 1e-9 * np.maximum(group_total, 1e-300), side="left")
        idx = np.minimum(idx, len(v) - 1)
        result = np.where(group_total > 0, v[idx], 0.0)
        out.append(result)
    return out


def _fixed_binary_words(column: pa.ChunkedArray | pa.Array, words: int) -> np.ndarray:
    """A fixed-size binary column as ``(rows, words)`` big-endian uint64 (null rows are zeros)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(array)
    data = array.buffers()[1]
    if data is None or n == 0:
        return np.zeros((n, words), dtype=np.uint64)
    raw = np.frombuffer(data, dtype=">u8", count=(array.offset + n) * words)
    out = raw.reshape(-1, words)[array.offset :].astype(np.uint64)
    if array.null_count:
        out[~valid_mask(array)] = 0
    return out
