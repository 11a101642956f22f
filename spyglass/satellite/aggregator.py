"""The aggregator: every accepted span, before any sampling, counted into rollups (``ROLLUP_SCHEMA``).

Per span it adds one *base* row (10 s bucket by span start; service, operation, kind; latency-sketch bin) and
one *attribute* row per explaining attribute the span carries (60 s bucket; the same plus key and value).
Nothing loops over spans in Python: a row is one ``int64`` code packing its series (service, operation, kind),
attribute key, value, sketch bin and error flag, and each time bucket accumulates codes. Merging is a sort
(numpy's radix/tim sorts) and a segmented sum, which measured several times faster than a hash group-by over
the same columns (``pyarrow`` or DuckDB), because most rows are distinct until many spans have accumulated.

Attribute values are bounded per key (``max_values_per_key``, default 200): the first values seen are tracked
until the table is full; after that, new values fold into ``__other__`` and count as candidates, and once a
minute (counts halving each time, so that old traffic fades) a candidate that clearly outweighs the weakest
tracked value takes its place. The set of values per key changes only at those moments, so a flood of
distinct values can never add more than ``max_values_per_key`` values to a minute of rollups.

A bucket is handed out by ``drain`` once it is closed: ``close_grace_s`` after its end by the wall clock, or
``bucket_s + close_grace_s`` after its first span arrived (so clock-skewed spans do not pin memory). Draining
each bucket about once, rather than every second, makes ~10x fewer base rows and ~60x fewer attribute rows.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from spyglass.model.adjusted_count import adjusted_counts, whole_counts
from spyglass.model.rollups import ROLLUP_KEY, ROLLUP_SCHEMA
from spyglass.model.schema import StatusCode
from spyglass.model.sketch import BIN_DTYPE, bucket_index, bucket_value

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
OTHER_VALUE = "__other__"
#: Value used by rows of keys a flood folded away; also the reserved value ids below.
_EMPTY_VALUE_ID = 0
_OTHER_VALUE_ID = 1

# Row code layout, low bits first: error flag (1), sketch bin + 1 (13), value id (20), key (5), series (24).
_BIN_BITS = 13
_VALUE_BITS = 20
_KEY_BITS = 5
_SERIES_BITS = 24
_VALUE_SHIFT = _BIN_BITS
_KEY_SHIFT = _VALUE_SHIFT + _VALUE_BITS
_SERIES_SHIFT = _KEY_SHIFT + _KEY_BITS
_MAX_KEYS = (1 << _KEY_BITS) - 1  # key 0 is the base rollup
_MAX_SERIES = 1 << _SERIES_BITS
_MAX_VALUES = 1 << _VALUE_BITS
_NAMES_MARGIN = 1 << 18

#: Raw codes a bucket collects before merging them into its sorted rows (bounds memory between drains).
_TAIL_ROWS = 1 << 18
#: A candidate value must have at least this (decayed) count to displace a tracked one.
_MIN_PROMOTION_COUNT = 4.0
#: Upper bounds (seconds) of the Prometheus latency histogram.
HISTOGRAM_BOUNDS_S: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

Codes = npt.NDArray[np.int64]
#: Pending state copied under the lock: (bucket start, bucket_s, rows, names) per bucket, and drained tables.
_Snapshot = tuple[list[tuple[int, int, tuple[Codes, Codes, Codes], "_Names"]], list[pa.Table]]
#: Tries of the optimistic consistent read before keeping the writer out.
_OPTIMISTIC_READS = 5


@dataclass(frozen=True)
class RollupRows:
    """Drained rollup rows on their way to the store (a write-queue item distinct from span tables)."""

    rows: pa.Table


@dataclass
class RedTotals:
    """Spans, errors and latency of one (service, operation) since the process started."""

    service: str
    operation: str
    count: int = 0
    errors: int = 0
    duration_sum_s: float = 0.0  # from sketch bin values: within the sketch's relative accuracy
    #: Spans with duration <= each of ``HISTOGRAM_BOUNDS_S`` (not cumulative; +Inf is ``count``).
    buckets: list[int] = field(default_factory=lambda: [0] * len(HISTOGRAM_BOUNDS_S))


def _reduce_raw(raw: Codes, weights: Codes | None = None) -> tuple[Codes, Codes, Codes]:
    """Raw codes (error flag in the low bit) -> sorted distinct row codes, their counts and their errors. A
    code counts once, or by its weight (the spans a head-sampled span stands for)."""
    if weights is None:
        ordered = np.sort(raw)
        starts = np.flatnonzero(np.diff(ordered, prepend=ordered[0] - 1))
        multiplicity = np.diff(np.append(starts, ordered.size))
    else:
        order = np.argsort(raw, kind="stable")
        ordered = raw[order]
        starts = np.flatnonzero(np.diff(ordered, prepend=ordered[0] - 1))
        multiplicity = np.add.reduceat(weights[order], starts)
    distinct = ordered[starts]
    rows = distinct >> 1
    with_error = multiplicity * (distinct & 1)
    row_starts = np.flatnonzero(np.diff(rows, prepend=rows[0] - 1))
    return (
        rows[row_starts],
        np.add.reduceat(multiplicity, row_starts),
        np.add.reduceat(with_error, row_starts),
    )


def _merge_rows(a: tuple[Codes, Codes, Codes], b: tuple[Codes, Codes, Codes]) -> tuple[Codes, Codes, Codes]:
    """Merge two sorted row sets; a stable sort of two sorted runs is a linear merge (timsort)."""
    if a[0].size == 0:
        return b
    if b[0].size == 0:
        return a
    rows = np.concatenate([a[0], b[0]])
    order = np.argsort(rows, kind="stable")
    rows = rows[order]
    counts = np.concatenate([a[1], b[1]])[order]
    errors = np.concatenate([a[2], b[2]])[order]
    starts = np.flatnonzero(np.diff(rows, prepend=rows[0] - 1))
    return rows[starts], np.add.reduceat(counts, starts), np.add.reduceat(errors, starts)


_EMPTY_ROWS: tuple[Codes, Codes, Codes] = (
    np.empty(0, np.int64),
    np.empty(0, np.int64),
    np.empty(0, np.int64),
)


class _Bucket:
    """One time bucket: sorted distinct row codes with counts and errors, plus raw codes not merged yet."""

    __slots__ = ("start_ns", "bucket_s", "first_seen_s", "rows", "tail", "weights", "tail_size")

    def __init__(self, start_ns: int, bucket_s: int, first_seen_s: float) -> None:
        self.start_ns = start_ns
        self.bucket_s = bucket_s
        self.first_seen_s = first_seen_s
        self.rows = _EMPTY_ROWS
        self.tail: list[Codes] = []
        self.weights: list[Codes | None] = []  # per tail part: None when each code counts once
        self.tail_size = 0

    def add(self, raw: Codes, weights: Codes | None = None) -> None:
        self.tail.append(raw)
        self.weights.append(weights)
        self.tail_size += raw.size
        if self.tail_size >= _TAIL_ROWS:
            self.compact()

    def compact(self) -> tuple[Codes, Codes, Codes]:
        """Merge the tail in; returns the rows (new arrays each time, so readers may keep them)."""
        if self.tail:
            weights = None
            if any(part is not None for part in self.weights):
                weights = np.concatenate(
                    [
                        np.ones(raw.size, np.int64) if part is None else part
                        for raw, part in zip(self.tail, self.weights, strict=True)
                    ]
                )
            self.rows = _merge_rows(self.rows, _reduce_raw(np.concatenate(self.tail), weights))
            self.tail = []
            self.weights = []
            self.tail_size = 0
        return self.rows

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.bucket_s * 1_000_000_000


class _Names:
    """Interned strings the row codes refer to: series (service, operation, kind) and attribute values.

    Append-only; when an id space would overflow the aggregator starts a new ``_Names`` (old buckets keep
    theirs), so a reference held by a reader stays valid.
    """

    def __init__(self) -> None:
        self.series_ids: dict[tuple[str, str, int], int] = {}
        self.services: list[str] = []
        self.operations: list[str] = []
        self.kinds: list[int] = []
        self.value_ids: dict[str, int] = {"": _EMPTY_VALUE_ID, OTHER_VALUE: _OTHER_VALUE_ID}
        self.values: list[str] = ["", OTHER_VALUE]

    def series(self, service: str, operation: str, kind: int) -> int:
        key = (service, operation, kind)
        sid = self.series_ids.get(key)
        if sid is None:
            sid = len(self.services)
            self.series_ids[key] = sid
            self.services.append(service)
            self.operations.append(operation)
            self.kinds.append(kind)
        return sid

    def value(self, text: str) -> int:
        vid = self.value_ids.get(text)
        if vid is None:
            vid = len(self.values)
            self.value_ids[text] = vid
            self.values.append(text)
        return vid

    def full(self) -> bool:
        """Near an id space's end: one more batch might not fit (a batch adds at most its spans' count)."""
        return (
            len(self.services) >= _MAX_SERIES - _NAMES_MARGIN
            or len(self.values) >= _MAX_VALUES - _NAMES_MARGIN
        )


@dataclass
class _KeyValues:
    """The values of one attribute key: tracked ones (with decayed counts) and candidates folded away."""

    tracked: dict[str, float] = field(default_factory=dict)
    candidates: dict[str, float] = field(default_factory=dict)


def _top(counts: dict[str, float], n: int) -> dict[str, float]:
    return dict(sorted(counts.items(), key=lambda item: -item[1])[:n])


class Aggregator:
    """Rollups of 100% of spans. ``add`` is called by the satellite's decide thread for every accepted batch;
    ``drain``, ``pending`` and ``totals`` may be called from any thread (one lock guards the state)."""

    def __init__(
        self,
        extra_keys: Sequence[str] = (),
        *,
        bucket_s: int = 10,
        attribute_bucket_s: int = 60,
        max_values_per_key: int = 200,
        close_grace_s: float = 10.0,
        rebalance_interval_s: float = 60.0,
        wall_clock_ns: Callable[[], int] = time.time_ns,
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        keys = list(dict.fromkeys([*DEFAULT_ATTRIBUTE_KEYS, *extra_keys]))
        if len(keys) > _MAX_KEYS:
            raise ValueError(f"at most {_MAX_KEYS} attribute keys can be aggregated, got {len(keys)}")
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
        self._key_values = [_KeyValues() for _ in keys]
        self._names = _Names()
        self._buckets: dict[tuple[int, int], _Bucket] = {}
        self._closing: list[tuple[_Bucket, _Names]] = []  # popped by drain, not yet decoded
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
        start_ns = _int64s(batch.column("start_ns"))
        bins = bucket_index(_int64s(batch.column("duration_ns"))).astype(np.int64) + 1
        errors = (_int64s(batch.column("status_code")) == StatusCode.ERROR).astype(np.int64)
        kinds = _int64s(batch.column("kind")) & 7
        services = _dictionary(batch.column("service"))
        operations = _dictionary(batch.column("name"))
        n_operations = max(1, len(operations[1]))
        local_series = (services[0] * n_operations + operations[0]) * 8 + kinds
        series_codes, series_of_span = np.unique(local_series, return_inverse=True)
        attribute_spans, attribute_keys, attribute_values = self._attribute_pairs(batch)
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
            span_series = sids[series_of_span] << _SERIES_SHIFT
            base = ((span_series | bins) << 1) | errors
            self._add_to_buckets(start_ns, self.bucket_s, base, weights)
            if attribute_spans.size:
                value_ids = self._value_ids(attribute_keys, attribute_values)
                codes = (
                    span_series[attribute_spans]
                    | (attribute_keys + 1) << _KEY_SHIFT
                    | value_ids << _VALUE_SHIFT
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

    def _attribute_pairs(self, batch: pa.RecordBatch | pa.Table) -> tuple[Codes, Codes, pa.Array]:
        """(span index, key index, value) of every tracked key a span carries; a span attribute wins over
        the resource attribute of the same key."""
        span_pairs = _map_pairs(batch.column("attributes"), self._key_array)
        resource_pairs = _map_pairs(batch.column("resource"), self._key_array)
        if resource_pairs[0].size and span_pairs[0].size:
            k = len(self.attribute_keys)
            on_span = np.zeros(batch.num_rows * k, dtype=bool)
            on_span[span_pairs[0] * k + span_pairs[1]] = True
            keep = ~on_span[resource_pairs[0] * k + resource_pairs[1]]
            if not keep.all():
                resource_pairs = (
                    resource_pairs[0][keep],
                    resource_pairs[1][keep],
                    resource_pairs[2].filter(pa.array(keep)),
                )
        spans = np.concatenate([span_pairs[0], resource_pairs[0]])
        keys = np.concatenate([span_pairs[1], resource_pairs[1]])
        values = pa.concat_arrays([span_pairs[2], resource_pairs[2]])
        return spans, keys, values

    def _value_ids(self, keys: Codes, values: pa.Array) -> Codes:
        """Interned value id of each (key, value) pair, or ``__other__``'s for values not tracked. One Python
        step per distinct pair of the batch, not per span."""
        encoded = _dictionary(values)
        texts = encoded[1]
        width = max(1, len(texts))
        pairs, pair_of_row, pair_counts = np.unique(
            keys * width + encoded[0], return_inverse=True, return_counts=True
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
                    state.candidates = _top(state.candidates, 2 * cap)
                ids[j] = _OTHER_VALUE_ID
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
        distinct, which = np.unique(starts, return_inverse=True)
        order = np.argsort(which, kind="stable")
        bounds = np.searchsorted(which[order], np.arange(distinct.size + 1))
        for i, bucket_start in enumerate(distinct.tolist()):
            part = order[bounds[i] : bounds[i + 1]]
            self._bucket(bucket_start, bucket_s).add(codes[part], None if weights is None else weights[part])

    def _bucket(self, start_ns: int, bucket_s: int) -> _Bucket:
        bucket = self._buckets.get((start_ns, bucket_s))
        if bucket is None:
            bucket = _Bucket(start_ns, bucket_s, self._monotonic_s())
            self._buckets[(start_ns, bucket_s)] = bucket
        return bucket

    def _rebalance(self) -> None:
        """Halve every count (old traffic fades), then let candidates that clearly outweigh the weakest
        tracked values take their places."""
        for state in self._key_values:
            state.tracked = {value: count / 2 for value, count in state.tracked.items()}
            state.candidates = {v: c / 2 for v, c in state.candidates.items() if c / 2 >= 0.5}
            if not state.candidates:
                continue
            rising = sorted(state.candidates.items(), key=lambda item: -item[1])
            weakest = sorted(state.tracked.items(), key=lambda item: item[1])
            for (new_value, new_count), (old_value, old_count) in zip(rising, weakest, strict=False):
                if new_count <= max(2 * old_count, _MIN_PROMOTION_COUNT):
                    break
                del state.tracked[old_value]
                del state.candidates[new_value]
                state.tracked[new_value] = new_count
                state.candidates[old_value] = old_count
            state.candidates = _top(state.candidates, 2 * self.max_values_per_key)

    def _close_all_for_new_names(self) -> None:
        """An id space is about to overflow: close every bucket under the old names and start new ones."""
        for bucket in self._buckets.values():
            self._count_totals(bucket, self._names)
            self._closing.append((bucket, self._names))
        self._buckets = {}
        self._names = _Names()

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
        rows = _concat(parts)
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
    ) -> pa.Table:
        """Stored rollups (``read_stored()``) plus the matching ``pending`` rows, read so that no row is
        counted twice or missed while a drained table is being written.

        Optimistic, so that a slow query never holds up the writer: the store is read between two looks at
        the publish generation, and the pending rows are taken at the second look; if a write overlapped the
        read, it is read again, and after a few tries the writer is kept out while reading.
        """
        filters = (start_ns, end_ns, service, operation, attr_key, False)
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
                    return _concat([stored.cast(ROLLUP_SCHEMA), self._decode_snapshot(snapshot, *filters)])
            time.sleep(0.005)
        with self._publish_lock:
            stored = read_stored()
            with self._lock:
                snapshot = self._snapshot(start_ns, end_ns)
        return _concat([stored.cast(ROLLUP_SCHEMA), self._decode_snapshot(snapshot, *filters)])

    def pending(
        self,
        start_ns: int | None = None,
        end_ns: int | None = None,
        *,
        service: str | None = None,
        operation: str | None = None,
        attr_key: str | None = None,
        all_keys: bool = False,
    ) -> pa.Table:
        """Rows not yet in the store, without removing them; optionally only those overlapping a window,
        of one service/operation, and of one attribute key (``None``: base rows; ``all_keys``: every row).

        Rows may repeat keys (open buckets, drained tables awaiting their write): callers sum by key.
        """
        with self._lock:
            snapshot = self._snapshot(start_ns, end_ns)
        return self._decode_snapshot(snapshot, start_ns, end_ns, service, operation, attr_key, all_keys)

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
            mask = _select(rows[0], names, key_code, service, operation)
            if mask is not None:
                rows = (rows[0][mask], rows[1][mask], rows[2][mask])
            parts.append(_decode_rows(bucket_start, bucket_s, rows, names, self._key_names))
        for table in tables:
            parts.append(
                filter_rollups(
                    table,
                    start_ns,
                    end_ns,
                    service=service,
                    operation=operation,
                    attr_key=None if all_keys else (attr_key or ""),
                )
            )
        return _concat(parts)

    def totals(self) -> list[RedTotals]:
        """Spans, errors and latency histogram per (service, operation) since start, pending spans included."""
        with self._lock:
            merged = {key: _copy_totals(value) for key, value in self._totals.items()}
            for bucket in self._buckets.values():
                if bucket.bucket_s == self.bucket_s:
                    _add_totals(merged, bucket.compact(), self._names)
        return sorted(merged.values(), key=lambda t: (t.service, t.operation))

    def tracked_values(self, key: str) -> list[str]:
        """The values of ``key`` currently kept apart (the rest fold into ``__other__``)."""
        with self._lock:
            return sorted(self._key_values[self.attribute_keys.index(key)].tracked)

    @property
    def pending_buckets(self) -> int:
        return len(self._buckets)

    def _count_totals(self, bucket: _Bucket, names: _Names) -> None:
        if bucket.bucket_s == self.bucket_s:
            _add_totals(self._totals, bucket.compact(), names)


# -- helpers ---------------------------------------------------------------------------------------------


def _int64s(column: pa.Array | pa.ChunkedArray) -> Codes:
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.int64)


def _dictionary(column: pa.Array | pa.ChunkedArray) -> tuple[Codes, list[str]]:
    """Dictionary codes (int64) and the distinct strings of a string column."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    encoded = pc.dictionary_encode(column)
    return (
        np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64),
        encoded.dictionary.to_pylist(),
    )


def _map_pairs(maps: pa.Array | pa.ChunkedArray, keys: pa.Array) -> tuple[Codes, Codes, pa.Array]:
    """(row index, index in ``keys``, value) of every entry of a map column whose key is in ``keys``."""
    if isinstance(maps, pa.ChunkedArray):
        maps = maps.combine_chunks()
    entries = maps.view(pa.list_(pa.struct([maps.type.key_field, maps.type.item_field])))
    flat = pc.list_flatten(entries)
    if len(flat) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), pa.array([], pa.string())
    parents = pc.list_parent_indices(entries)
    entry_keys, entry_values = flat.flatten()
    key_index = pc.index_in(entry_keys, value_set=keys)
    wanted = pc.and_(pc.is_valid(key_index), pc.is_valid(entry_values))
    return (
        np.asarray(parents.filter(wanted).to_numpy(zero_copy_only=False), dtype=np.int64),
        np.asarray(key_index.filter(wanted).to_numpy(zero_copy_only=False), dtype=np.int64),
        entry_values.filter(wanted),
    )


def _overlaps(begin: int, end: int, start_ns: int | None, end_ns: int | None) -> bool:
    return (end_ns is None or begin < end_ns) and (start_ns is None or end > start_ns)


def _select(
    rows: Codes, names: _Names, key_code: int | None, service: str | None, operation: str | None
) -> npt.NDArray[np.bool_] | None:
    """Mask of rows of one key and series matching the filters, computed on the codes (no decoding)."""
    mask = None
    if key_code is not None:
        mask = ((rows >> _KEY_SHIFT) & _MAX_KEYS) == key_code
    if service is not None or operation is not None:
        wanted = np.fromiter(
            (
                (service is None or s == service) and (operation is None or o == operation)
                for s, o in zip(names.services, names.operations, strict=True)
            ),
            dtype=bool,
            count=len(names.services),
        )
        matches = wanted[rows >> _SERIES_SHIFT]
        mask = matches if mask is None else mask & matches
    return mask


def _decode(bucket: _Bucket, names: _Names, key_names: pa.Array) -> pa.Table:
    return _decode_rows(bucket.start_ns, bucket.bucket_s, bucket.compact(), names, key_names)


def _decode_rows(
    bucket_start_ns: int,
    bucket_s: int,
    rows: tuple[Codes, Codes, Codes],
    names: _Names,
    key_names: pa.Array,
) -> pa.Table:
    codes, counts, errors = rows
    n = codes.size
    series = pa.array(codes >> _SERIES_SHIFT)
    services = pa.array(names.services, pa.string())
    operations = pa.array(names.operations, pa.string())
    kinds = np.asarray(names.kinds, dtype=np.int8)
    return pa.Table.from_arrays(
        [
            pa.array(np.full(n, bucket_start_ns, dtype=np.int64)),
            pa.array(np.full(n, bucket_s, dtype=np.int32)),
            services.take(series),
            operations.take(series),
            pa.array(kinds[codes >> _SERIES_SHIFT] if n else np.empty(0, np.int8)),
            key_names.take(pa.array((codes >> _KEY_SHIFT) & _MAX_KEYS)),
            pa.array(names.values, pa.string()).take(pa.array((codes >> _VALUE_SHIFT) & (_MAX_VALUES - 1))),
            pa.array(((codes & ((1 << _BIN_BITS) - 1)) - 1).astype(BIN_DTYPE)),
            pa.array(counts.astype(np.int64)),
            pa.array(errors.astype(np.int64)),
        ],
        schema=ROLLUP_SCHEMA,
    )


def _has_duplicate_buckets(closing: list[tuple[_Bucket, _Names]]) -> bool:
    keys = [(bucket.start_ns, bucket.bucket_s) for bucket, _ in closing]
    return len(set(keys)) != len(keys)


def _concat(tables: list[pa.Table]) -> pa.Table:
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return ROLLUP_SCHEMA.empty_table()
    return pa.concat_tables(tables).combine_chunks() if len(tables) > 1 else tables[0]


def merge_rollups(rows: pa.Table) -> pa.Table:
    """Rows with the same key summed into one (``ROLLUP_KEY``)."""
    if rows.num_rows == 0:
        return ROLLUP_SCHEMA.empty_table()
    merged = rows.group_by(ROLLUP_KEY, use_threads=False).aggregate([("count", "sum"), ("errors", "sum")])
    return (
        merged.rename_columns([*ROLLUP_KEY, "count", "errors"])
        .select(ROLLUP_SCHEMA.names)
        .cast(ROLLUP_SCHEMA)
    )


def filter_rollups(
    rows: pa.Table,
    start_ns: int | None = None,
    end_ns: int | None = None,
    *,
    service: str | None = None,
    operation: str | None = None,
    attr_key: str | None = "",
) -> pa.Table:
    """Rows whose bucket overlaps ``[start_ns, end_ns)``, of one service/operation/key (``None``: any)."""
    conditions = []
    if end_ns is not None:
        conditions.append(pc.less(rows.column("bucket_start_ns"), end_ns))
    if start_ns is not None:
        bucket_end = pc.add(
            rows.column("bucket_start_ns"),
            pc.multiply(rows.column("bucket_s").cast(pa.int64()), 1_000_000_000),
        )
        conditions.append(pc.greater(bucket_end, start_ns))
    for name, wanted in (("service", service), ("operation", operation), ("attr_key", attr_key)):
        if wanted is not None:
            conditions.append(pc.equal(rows.column(name), wanted))
    if not conditions:
        return rows
    mask = conditions[0]
    for condition in conditions[1:]:
        mask = pc.and_(mask, condition)
    return rows.filter(mask)


def _copy_totals(totals: RedTotals) -> RedTotals:
    return RedTotals(
        totals.service,
        totals.operation,
        totals.count,
        totals.errors,
        totals.duration_sum_s,
        list(totals.buckets),
    )


_HISTOGRAM_BOUNDS_NS = np.asarray(HISTOGRAM_BOUNDS_S) * 1e9


def _add_totals(
    totals: dict[tuple[str, str], RedTotals], rows: tuple[Codes, Codes, Codes], names: _Names
) -> None:
    """Fold base rows into per-(service, operation) totals: one Python step per series, not per row."""
    codes, counts, errors = rows
    base = ((codes >> _KEY_SHIFT) & _MAX_KEYS) == 0
    codes, counts, errors = codes[base], counts[base], errors[base]
    if codes.size == 0:
        return
    series = codes >> _SERIES_SHIFT
    distinct, which = np.unique(series, return_inverse=True)
    durations_s = bucket_value((codes & ((1 << _BIN_BITS) - 1)) - 1) / 1e9
    bound_index = np.searchsorted(_HISTOGRAM_BOUNDS_NS / 1e9, durations_s, side="left")
    n_bounds = len(HISTOGRAM_BOUNDS_S) + 1
    histogram = np.bincount(
        which * n_bounds + bound_index, weights=counts, minlength=distinct.size * n_bounds
    )
    histogram = histogram.reshape(distinct.size, n_bounds)
    span_counts = np.bincount(which, weights=counts, minlength=distinct.size)
    error_counts = np.bincount(which, weights=errors, minlength=distinct.size)
    sums = np.bincount(which, weights=counts * durations_s, minlength=distinct.size)
    for i, sid in enumerate(distinct.tolist()):
        key = (names.services[sid], names.operations[sid])
        entry = totals.get(key)
        if entry is None:
            entry = totals[key] = RedTotals(*key)
        entry.count += int(span_counts[i])
        entry.errors += int(error_counts[i])
        entry.duration_sum_s += float(sums[i])
        for j in range(len(HISTOGRAM_BOUNDS_S)):
            entry.buckets[j] += int(histogram[i, j])
