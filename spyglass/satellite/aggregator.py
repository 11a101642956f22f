"""The aggregator: every accepted span, before any sampling, counted into rollups (``ROLLUP_SCHEMA``).

Per span it adds one *base* row (10 s bucket by span start; service, operation, kind; latency-sketch bin) and
one *attribute* row per explaining attribute the span carries (60 s bucket; the same plus key and value).
Nothing loops over spans in Python: a row is one ``int64`` code (``rollup_codes``), and each time bucket
accumulates codes. Merging is a sort (numpy's radix/tim sorts) and a segmented sum, which measured several times
faster than a hash group-by over the same columns (``pyarrow`` or DuckDB), because most rows are distinct until
many spans have accumulated. Attribute values are bounded per key (``max_values_per_key``, default 200; which
values stay apart is ``tracked_values``); closed buckets also fold into per-operation totals for Prometheus
(``red_totals``).

A bucket is handed out by ``drain`` once it is closed: ``close_grace_s`` after its end by the wall clock, or
``bucket_s + close_grace_s`` after its first span arrived (so clock-skewed spans do not pin memory). Draining
each bucket about once, rather than every second, makes ~10x fewer base rows and ~60x fewer attribute rows.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spyglass.model.adjusted_count import adjusted_counts, whole_counts
from spyglass.model.arrow_numpy import as_numpy
from spyglass.model.figures import RedTotals
from spyglass.model.map_entries import carried_entries
from spyglass.model.rollups import (
    ATTRIBUTE_BUCKET_S,
    BASE_BUCKET_S,
    ROLLUP_SCHEMA,
    concat_rollups,
    filter_rollups,
    merge_rollups,
)
from spyglass.model.schema import StatusCode
from spyglass.model.sketch import bucket_index
from spyglass.satellite.red_totals import add_totals, copy_totals
from spyglass.satellite.rollup_codes import (
    KEY_SHIFT,
    MAX_KEYS,
    OTHER_VALUE_ID,
    SERIES_SHIFT,
    VALUE_SHIFT,
    Bucket,
    Codes,
    Names,
    Rows,
    decode_rows,
    select_rows,
)
from spyglass.satellite.tracked_values import KeyValues, top_values

#: The attributes that most often explain a change: version, infrastructure, dependency, route, status.
DEFAULT_ATTRIBUTE_KEYS: tuple[str, ...] = (
    "service.version",
    "host.name",
    "cloud.availability_zone",
    "cloud.region",
    "k8s.pod.name",
    "k8s.node.name",
    "peer.service",
    "http.route",
    "http.response.status_code",
    "http.status_code",
    "db.system",
    "deployment.environment",
)


#: Pending state copied under the lock: (bucket start, bucket_s, rows, names) per bucket, and drained tables.
_Snapshot = tuple[list[tuple[int, int, Rows, Names]], list[pa.Table]]
#: Tries of the optimistic consistent read before keeping the writer out.
_OPTIMISTIC_READS = 5


@dataclass(frozen=True)
class RollupRows:
    """Drained rollup rows on their way to the store (a write-queue item distinct from span tables)."""

    rows: pa.Table


class Aggregator:
    """Rollups of 100% of spans. ``add`` is called by the satellite's decide thread for every accepted batch;
    ``drain``, ``pending`` and ``totals`` may be called from any thread (one lock guards the state)."""

    def __init__(
        self,
        extra_keys: Sequence[str] = (),
        *,
        bucket_s: int = BASE_BUCKET_S,
        attribute_bucket_s: int = ATTRIBUTE_BUCKET_S,
        max_values_per_key: int = 200,
        close_grace_s: float = 10.0,
        rebalance_interval_s: float = 60.0,
        wall_clock_ns: Callable[[], int] = time.time_ns,
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        keys = list(dict.fromkeys([*DEFAULT_ATTRIBUTE_KEYS, *extra_keys]))
        if len(keys) > MAX_KEYS:
            raise ValueError(f"at most {MAX_KEYS} attribute keys can be aggregated, got {len(keys)}")
        if "" in keys:
            raise ValueError("an attribute key must not be empty")
        if bucket_s <= 0 or attribute_bucket_s <= 0 or max_values_per_key <= 0:
            raise ValueError("bucket sizes and max_values_per_key must be positive")
        self.attribute_keys: tuple[str, ...] = tuple(keys)
        self.bucket_s = bucket_s
        self.attribute_bucket_s = attribute_bucket_s
        self.max_values_per_key = max_values_per_key
        self.close_grace_s = close_grace_s
        self.rebalance_interval_s = rebalance_interval_s
        self._wall_clock_ns = wall_clock_ns
        self._monotonic_s = monotonic_s
        self._key_array = pa.array(keys, pa.string())
        self._key_names = pa.array(["", *keys], pa.string())  # by key code (0 = base)
        self._key_values = [KeyValues() for _ in keys]
        self._names = Names()
        self._buckets: dict[tuple[int, int], Bucket] = {}
        self._closing: list[tuple[Bucket, Names]] = []  # popped by drain, not yet decoded
        self._in_flight: dict[int, pa.Table] = {}  # drained, not yet written to the store
        self._retry: list[pa.Table] = []  # a store write failed: handed out again by the next drain
        self._totals: dict[tuple[str, str], RedTotals] = {}
        self._next_rebalance_s = monotonic_s() + rebalance_interval_s
        self._lock = threading.Lock()
        self._rng = np.random.default_rng()  # rounds fractional adjusted counts, unbiased
        self._publish_lock = threading.Lock()  # held by the writer while it writes drained rows
        self._publish_generation = 0  # odd while drained rows are being written (a sequence lock)
        self.spans_aggregated = 0
        #: The earliest span start counted by this process (None before the first span): where the data this
        #: process observed begins, so rates can divide by the time data covers rather than a nominal window.
        self.first_span_ns: int | None = None

    # -- the decide thread's side ------------------------------------------------------------------------

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Count a batch of spans (``SPAN_SCHEMA``) into the rollups."""
        n = batch.num_rows
        if n == 0:
            return
        start_ns = as_numpy(batch.column("start_ns"), np.int64)
        bins = bucket_index(as_numpy(batch.column("duration_ns"), np.int64)).astype(np.int64) + 1
        errors = (as_numpy(batch.column("status_code"), np.int64) == StatusCode.ERROR).astype(np.int64)
        kinds = as_numpy(batch.column("kind"), np.int64) & 7
        services = _dictionary(batch.column("service"))
        operations = _dictionary(batch.column("name"))
        n_operations = max(1, len(operations[1]))
        local_series = (services[0] * n_operations + operations[0]) * 8 + kinds
        series_codes, series_of_span, _ = _distinct(local_series, max(1, len(services[1])) * n_operations * 8)
        attribute_spans, attribute_keys, attribute_values = carried_entries(batch, self._key_array)
        # Head-sampled spans count as the spans they stand for (``tracestate`` ``ot=th``).
        adjusted = adjusted_counts(batch.column("trace_state"))
        weights = None if adjusted is None else whole_counts(adjusted, self._rng)

        with self._lock:
            if self._names.full():
                self._close_all_for_new_names()
            names = self._names
            service_names, operation_names = services[1], operations[1]
            sids = np.fromiter(
                (
                    names.series(
                        service_names[(c >> 3) // n_operations],
                        operation_names[(c >> 3) % n_operations],
                        c & 7,
                    )
                    for c in series_codes.tolist()
                ),
                dtype=np.int64,
                count=series_codes.size,
            )
            span_series = sids[series_of_span] << SERIES_SHIFT
            base = ((span_series | bins) << 1) | errors
            self._add_to_buckets(start_ns, self.bucket_s, base, weights)
            if attribute_spans.size:
                value_ids = self._value_ids(attribute_keys, attribute_values)
                codes = (
                    span_series[attribute_spans]
                    | (attribute_keys + 1) << KEY_SHIFT
                    | value_ids << VALUE_SHIFT
                    | bins[attribute_spans]
                ) << 1 | errors[attribute_spans]
                self._add_to_buckets(
                    start_ns[attribute_spans],
                    self.attribute_bucket_s,
                    codes,
                    None if weights is None else weights[attribute_spans],
                )
            self.spans_aggregated += n
            earliest = int(start_ns.min())
            if self.first_span_ns is None or earliest < self.first_span_ns:
                self.first_span_ns = earliest
            if self._monotonic_s() >= self._next_rebalance_s:
                self._rebalance()
                self._next_rebalance_s = self._monotonic_s() + self.rebalance_interval_s

    def _value_ids(self, keys: Codes, values: pa.Array) -> Codes:
        """Interned value id of each (key, value) pair, or ``__other__``'s for values not tracked. One Python
        step per distinct pair of the batch, not per span."""
        encoded = _dictionary(values)
        texts = encoded[1]
        width = max(1, len(texts))
        pairs, pair_of_row, pair_counts = _distinct(
            keys * width + encoded[0], len(self.attribute_keys) * width
        )
        names = self._names
        cap = self.max_values_per_key
        ids = np.empty(pairs.size, dtype=np.int64)
        for j, (pair, count) in enumerate(zip(pairs.tolist(), pair_counts.tolist(), strict=True)):
            key, index = divmod(pair, width)
            text = texts[index]
            state = self._key_values[key]
            tracked = state.tracked.get(text)
            if tracked is not None:
                state.tracked[text] = tracked + count
                ids[j] = names.value(text)
            elif len(state.tracked) < cap:
                state.tracked[text] = float(count)
                ids[j] = names.value(text)
            else:
                state.candidates[text] = state.candidates.get(text, 0.0) + count
                if len(state.candidates) > 8 * cap:
                    state.candidates = top_values(state.candidates, 2 * cap)
                ids[j] = OTHER_VALUE_ID
        return ids[pair_of_row]

    def _add_to_buckets(
        self, start_ns: Codes, bucket_s: int, codes: Codes, weights: Codes | None = None
    ) -> None:
        width_ns = bucket_s * 1_000_000_000
        starts = start_ns - start_ns % width_ns
        first = starts[0]
        if (starts == first).all():
            self._bucket(int(first), bucket_s).add(codes, weights)
            return
        lowest = int(starts.min())
        distinct, which, _ = _distinct(
            (starts - lowest) // width_ns, int(starts.max() - lowest) // width_ns + 1
        )
        order = np.argsort(which, kind="stable")
        bounds = np.searchsorted(which[order], np.arange(distinct.size + 1))
        for i, bucket in enumerate(distinct.tolist()):
            part = order[bounds[i] : bounds[i + 1]]
            self._bucket(lowest + bucket * width_ns, bucket_s).add(
                codes[part], None if weights is None else weights[part]
            )

    def _bucket(self, start_ns: int, bucket_s: int) -> Bucket:
        bucket = self._buckets.get((start_ns, bucket_s))
        if bucket is None:
            bucket = Bucket(start_ns, bucket_s, self._monotonic_s())
            self._buckets[(start_ns, bucket_s)] = bucket
        return bucket

    def _rebalance(self) -> None:
        for state in self._key_values:
            state.rebalance(self.max_values_per_key)

    def _close_all_for_new_names(self) -> None:
        """An id space is about to overflow: close every bucket under the old names and start new ones."""
        for bucket in self._buckets.values():
            self._count_totals(bucket, self._names)
            self._closing.append((bucket, self._names))
        self._buckets = {}
        self._names = Names()

    # -- readers' side -----------------------------------------------------------------------------------

    def drain(self, final: bool = False) -> pa.Table:
        """Remove and return the rows of every closed bucket (all buckets when ``final``), merged by key.
        Called by one thread (the satellite's decide loop).

        Until ``publishing`` confirms them written, the returned rows stay visible to ``pending``.
        """
        now_ns = self._wall_clock_ns()
        now_s = self._monotonic_s()
        grace_ns = int(self.close_grace_s * 1e9)
        with self._lock:
            for key, bucket in list(self._buckets.items()):
                closed = bucket.end_ns + grace_ns <= now_ns or (
                    now_s - bucket.first_seen_s >= bucket.bucket_s + self.close_grace_s
                )
                if final or closed:
                    del self._buckets[key]
                    self._count_totals(bucket, self._names)
                    self._closing.append((bucket, self._names))
            closing = list(self._closing)
            retry = list(self._retry)
        parts = [_decode(bucket, names, self._key_names) for bucket, names in closing]
        parts.extend(retry)
        rows = concat_rollups(parts)
        if retry or _has_duplicate_buckets(closing):
            rows = merge_rollups(rows)
        with self._lock:
            closed_ids = {id(bucket) for bucket, _ in closing}
            self._closing = [entry for entry in self._closing if id(entry[0]) not in closed_ids]
            retried_ids = {id(table) for table in retry}
            self._retry = [table for table in self._retry if id(table) not in retried_ids]
            if rows.num_rows:
                self._in_flight[id(rows)] = rows
        return rows

    @contextlib.contextmanager
    def publishing(self, rows: pa.Table) -> Iterator[None]:
        """Wrap the store write of drained ``rows``: queries see them exactly once throughout (pending until
        the write is done, stored after). If the write raises, the rows come back in the next ``drain``."""
        with self._publish_lock:
            with self._lock:
                self._publish_generation += 1
            try:
                yield
            except BaseException:
                with self._lock:
                    if self._in_flight.pop(id(rows), None) is not None:
                        self._retry.append(rows)
                    self._publish_generation += 1
                raise
            with self._lock:
                self._in_flight.pop(id(rows), None)
                self._publish_generation += 1

    def read_consistent(
        self,
        read_stored: Callable[[], pa.Table],
        start_ns: int | None = None,
        end_ns: int | None = None,
        *,
        service: str | None = None,
        operation: str | None = None,
        attr_key: str | None = None,
        kinds: tuple[int, ...] = (),
    ) -> pa.Table:
        """Stored rollups (``read_stored()``) plus the matching ``pending`` rows, read so that no row is
        counted twice or missed while a drained table is being written.

        Optimistic, so that a slow query never holds up the writer: the store is read between two looks at
        the publish generation, and the pending rows are taken at the second look; if a write overlapped the
        read, it is read again, and after a few tries the writer is kept out while reading.
        """
        filters = (start_ns, end_ns, service, operation, attr_key, False, kinds)
        for _ in range(_OPTIMISTIC_READS):
            with self._lock:
                generation = self._publish_generation
            if generation % 2 == 0:
                stored = read_stored()
                with self._lock:
                    snapshot = (
                        self._snapshot(start_ns, end_ns) if self._publish_generation == generation else None
                    )
                if snapshot is not None:
                    return concat_rollups(
                        [stored.cast(ROLLUP_SCHEMA), self._decode_snapshot(snapshot, *filters)]
                    )
            time.sleep(0.005)
        with self._publish_lock:
            stored = read_stored()
            with self._lock:
                snapshot = self._snapshot(start_ns, end_ns)
        return concat_rollups([stored.cast(ROLLUP_SCHEMA), self._decode_snapshot(snapshot, *filters)])

    def pending(
        self,
        start_ns: int | None = None,
        end_ns: int | None = None,
        *,
        service: str | None = None,
        operation: str | None = None,
        attr_key: str | None = None,
        all_keys: bool = False,
        kinds: tuple[int, ...] = (),
    ) -> pa.Table:
        """Rows not yet in the store, without removing them; optionally only those overlapping a window,
        of one service/operation, and of one attribute key (``None``: base rows; ``all_keys``: every row).

        Rows may repeat keys (open buckets, drained tables awaiting their write): callers sum by key.
        """
        with self._lock:
            snapshot = self._snapshot(start_ns, end_ns)
        return self._decode_snapshot(
            snapshot, start_ns, end_ns, service, operation, attr_key, all_keys, kinds
        )

    def _snapshot(self, start_ns: int | None, end_ns: int | None) -> _Snapshot:
        """Under the lock: the pending state overlapping a window (arrays are never mutated in place)."""
        buckets = [
            (bucket.start_ns, bucket.bucket_s, bucket.compact(), self._names)
            for bucket in self._buckets.values()
            if _overlaps(bucket.start_ns, bucket.end_ns, start_ns, end_ns)
        ]
        buckets += [
            (bucket.start_ns, bucket.bucket_s, bucket.compact(), names)
            for bucket, names in self._closing
            if _overlaps(bucket.start_ns, bucket.end_ns, start_ns, end_ns)
        ]
        return buckets, [*self._in_flight.values(), *self._retry]

    def _decode_snapshot(
        self,
        snapshot: _Snapshot,
        start_ns: int | None,
        end_ns: int | None,
        service: str | None,
        operation: str | None,
        attr_key: str | None,
        all_keys: bool,
        kinds: tuple[int, ...] = (),
    ) -> pa.Table:
        if attr_key is None:
            key_code: int | None = 0
        elif attr_key in self.attribute_keys:
            key_code = self.attribute_keys.index(attr_key) + 1
        else:
            return ROLLUP_SCHEMA.empty_table()
        if all_keys:
            key_code = None
        buckets, tables = snapshot
        parts = []
        for bucket_start, bucket_s, rows, names in buckets:
            mask = select_rows(rows[0], names, key_code, service, operation, kinds)
            if mask is not None:
                rows = (rows[0][mask], rows[1][mask], rows[2][mask])
            parts.append(decode_rows(bucket_start, bucket_s, rows, names, self._key_names))
        for table in tables:
            parts.append(
                filter_rollups(
                    table,
                    start_ns,
                    end_ns,
                    service=service,
                    operation=operation,
                    attr_key=None if all_keys else (attr_key or ""),
                    kinds=kinds,
                )
            )
        return concat_rollups(parts)

    def totals(self) -> list[RedTotals]:
        """Spans, errors and latency histogram per (service, operation) since start, pending spans included."""
        with self._lock:
            merged = {key: copy_totals(value) for key, value in self._totals.items()}
            for bucket in self._buckets.values():
                if bucket.bucket_s == self.bucket_s:
                    add_totals(merged, bucket.compact(), self._names)
        return sorted(merged.values(), key=lambda t: (t.service, t.operation))

    def tracked_values(self, key: str) -> list[str]:
        """The values of ``key`` currently kept apart (the rest fold into ``__other__``)."""
        with self._lock:
            return sorted(self._key_values[self.attribute_keys.index(key)].tracked)

    @property
    def pending_buckets(self) -> int:
        return len(self._buckets)

    def _count_totals(self, bucket: Bucket, names: Names) -> None:
        if bucket.bucket_s == self.bucket_s:
            add_totals(self._totals, bucket.compact(), names)


# -- helpers ---------------------------------------------------------------------------------------------


def _dictionary(column: pa.Array | pa.ChunkedArray) -> tuple[Codes, list[str]]:
    """Dictionary codes (int64) and the distinct strings of a string column."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    encoded = pc.dictionary_encode(column)
    return (
        as_numpy(encoded.indices, np.int64),
        encoded.dictionary.to_pylist(),
    )


#: Above this many possible codes, ``_distinct`` sorts rather than counting into a table.
_MAX_COUNTING_TABLE = 1 << 16


def _distinct(codes: Codes, bound: int) -> tuple[Codes, Codes, Codes]:
    """What ``np.unique(codes, return_inverse=True, return_counts=True)`` returns, for codes in
    ``0..bound-1``: counted into a table when it is small (no sort), else sorted."""
    if bound > max(_MAX_COUNTING_TABLE, 4 * codes.size):
        return np.unique(codes, return_inverse=True, return_counts=True)  # type: ignore[no-any-return]
    counts = np.bincount(codes, minlength=bound)
    present = np.flatnonzero(counts)
    index_of = np.zeros(bound, dtype=np.int64)
    index_of[present] = np.arange(present.size)
    return present.astype(np.int64), index_of[codes], counts[present]


def _overlaps(begin: int, end: int, start_ns: int | None, end_ns: int | None) -> bool:
    return (end_ns is None or begin < end_ns) and (start_ns is None or end > start_ns)


def _decode(bucket: Bucket, names: Names, key_names: pa.Array) -> pa.Table:
    return decode_rows(bucket.start_ns, bucket.bucket_s, bucket.compact(), names, key_names)


def _has_duplicate_buckets(closing: list[tuple[Bucket, Names]]) -> bool:
    keys = [(bucket.start_ns, bucket.bucket_s) for bucket, _ in closing]
    return len(set(keys)) != len(keys)
