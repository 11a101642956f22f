"""Rollup rows as ``int64`` codes: one code packs a row's series (service, operation, kind), attribute key, value,
sketch bin and error flag, so a time bucket accumulates plain integer arrays and merges them with a sort and a
segmented sum (several times faster than a hash group-by over the same columns), and filters by series or key
without decoding."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from spyglass.model.equal_runs import run_starts
from spyglass.model.rollups import ROLLUP_SCHEMA
from spyglass.model.sketch import BIN_DTYPE

OTHER_VALUE = "__other__"
#: Value used by rows of keys a flood folded away; also the reserved value ids below.
EMPTY_VALUE_ID = 0


OTHER_VALUE_ID = 1


# Row code layout, low bits first: error flag (1), sketch bin + 1 (13), value id (20), key (5), series (24).
BIN_BITS = 13
VALUE_BITS = 20
KEY_BITS = 5
SERIES_BITS = 24
VALUE_SHIFT = BIN_BITS
KEY_SHIFT = VALUE_SHIFT + VALUE_BITS
SERIES_SHIFT = KEY_SHIFT + KEY_BITS
MAX_KEYS = (1 << KEY_BITS) - 1  # key 0 is the base rollup
MAX_SERIES = 1 << SERIES_BITS
MAX_VALUES = 1 << VALUE_BITS
NAMES_MARGIN = 1 << 18
#: Series (service, operation, kind) one ``Names`` holds before the aggregator starts another, closing every
#: open bucket: span names that carry ids (raw URL paths) add a series per request, and the id space alone
#: would let them take gigabytes over days. 200,000 series are about 80 MB.
SERIES_RENEW_AT = 200_000

#: Raw codes a bucket collects before merging them into its sorted rows: at least ``TAIL_ROWS``, and
#: ``TAIL_PER_ROW`` times the rows it holds, as a merge passes over all of them (so a big bucket merges less
#: often: aggregating 16,000-span batches of one minute, whose attribute bucket grows to 300,000 rows, 0.54-0.61
#: against 0.61-0.76 µs a span), but never more than ``MAX_TAIL_ROWS`` (8 MB of codes: bounds memory between drains).
TAIL_ROWS = 1 << 18
TAIL_PER_ROW = 4
MAX_TAIL_ROWS = 1 << 20


Codes = npt.NDArray[np.int64]
#: A bucket's merged rows: sorted distinct row codes, their counts and their errors.
Rows = tuple[Codes, Codes, Codes]


def reduce_raw(raw: Codes, weights: Codes | None = None) -> Rows:
    """Raw codes (error flag in the low bit) -> sorted distinct row codes, their counts and their errors. A
    code counts once, or by its weight (the spans a head-sampled span stands for). Sums need no stable order,
    so the sorts are numpy's fastest (vectorized quicksort), not merge sorts."""
    if raw.size == 0:
        return EMPTY_ROWS
    if weights is None:
        ordered = np.sort(raw)
        starts = run_starts(ordered)
        multiplicity = np.diff(np.append(starts, ordered.size))
    else:
        order = np.argsort(raw)
        ordered = raw[order]
        starts = run_starts(ordered)
        multiplicity = np.add.reduceat(weights[order], starts)
    distinct = ordered[starts]
    rows = distinct >> 1
    with_error = multiplicity * (distinct & 1)
    row_starts = run_starts(rows)
    return (
        rows[row_starts],
        np.add.reduceat(multiplicity, row_starts),
        np.add.reduceat(with_error, row_starts),
    )


def merge_rows(a: Rows, b: Rows) -> Rows:
    """Merge two sorted row sets: ``b``'s rows found in ``a`` add to its counts, the others are inserted in
    order (a binary search per row of ``b`` and one linear insert, no sort)."""
    if a[0].size == 0:
        return b
    if b[0].size == 0:
        return a
    position = np.searchsorted(a[0], b[0])
    found = position < a[0].size
    found[found] = a[0][position[found]] == b[0][found]
    counts, errors = a[1].copy(), a[2].copy()
    # Each row of ``a`` is found at most once (both sets are distinct), so plain indexed adds are exact.
    counts[position[found]] += b[1][found]
    errors[position[found]] += b[2][found]
    new = ~found
    if not new.any():
        return a[0], counts, errors
    at = position[new]
    return (
        np.insert(a[0], at, b[0][new]),
        np.insert(counts, at, b[1][new]),
        np.insert(errors, at, b[2][new]),
    )


EMPTY_ROWS: Rows = (
    np.empty(0, np.int64),
    np.empty(0, np.int64),
    np.empty(0, np.int64),
)


class Bucket:
    """One time bucket: sorted distinct row codes with counts and errors, plus raw codes not merged yet."""

    __slots__ = ("start_ns", "bucket_s", "first_seen_s", "rows", "tail", "weights", "tail_size")

    def __init__(self, start_ns: int, bucket_s: int, first_seen_s: float) -> None:
        self.start_ns = start_ns
        self.bucket_s = bucket_s
        self.first_seen_s = first_seen_s
        self.rows = EMPTY_ROWS
        self.tail: list[Codes] = []
        self.weights: list[Codes | None] = []  # per tail part: None when each code counts once
        self.tail_size = 0

    def add(self, raw: Codes, weights: Codes | None = None) -> None:
        self.tail.append(raw)
        self.weights.append(weights)
        self.tail_size += raw.size
        if self.tail_size >= self.tail_limit():
            self.compact()

    def tail_limit(self) -> int:
        """Raw codes held before they are merged (``TAIL_ROWS``)."""
        return min(MAX_TAIL_ROWS, max(TAIL_ROWS, TAIL_PER_ROW * self.rows[0].size))

    def compact(self) -> Rows:
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
            self.rows = merge_rows(self.rows, reduce_raw(np.concatenate(self.tail), weights))
            self.tail = []
            self.weights = []
            self.tail_size = 0
        return self.rows

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.bucket_s * 1_000_000_000


class Names:
    """Interned strings the row codes refer to: series (service, operation, kind) and attribute values.

    Append-only; when an id space would overflow the aggregator starts a new ``Names`` (old buckets keep
    theirs), so a reference held by a reader stays valid.
    """

    def __init__(self) -> None:
        self.series_ids: dict[tuple[str, str, int], int] = {}
        self.services: list[str] = []
        self.operations: list[str] = []
        self.kinds: list[int] = []
        self.value_ids: dict[str, int] = {"": EMPTY_VALUE_ID, OTHER_VALUE: OTHER_VALUE_ID}
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
        """Near an id space's end (one more batch might not fit: a batch adds at most its spans' count), or
        holding ``SERIES_RENEW_AT`` series."""
        return (
            len(self.services) >= min(SERIES_RENEW_AT, MAX_SERIES - NAMES_MARGIN)
            or len(self.values) >= MAX_VALUES - NAMES_MARGIN
        )


def select_rows(
    rows: Codes,
    names: Names,
    key_code: int | None,
    service: str | None,
    operation: str | None,
    kinds: tuple[int, ...] = (),
) -> npt.NDArray[np.bool_] | None:
    """Mask of rows of one key and series matching the filters (``kinds`` empty: any), computed on the codes
    (no decoding)."""
    mask = None
    if key_code is not None:
        mask = ((rows >> KEY_SHIFT) & MAX_KEYS) == key_code
    if service is not None or operation is not None or kinds:
        wanted = np.fromiter(
            (
                (service is None or s == service)
                and (operation is None or o == operation)
                and (not kinds or k in kinds)
                for s, o, k in zip(names.services, names.operations, names.kinds, strict=True)
            ),
            dtype=bool,
            count=len(names.services),
        )
        matches = wanted[rows >> SERIES_SHIFT]
        mask = matches if mask is None else mask & matches
    return mask


def decode_rows(
    bucket_start_ns: int,
    bucket_s: int,
    rows: Rows,
    names: Names,
    key_names: pa.Array,
) -> pa.Table:
    codes, counts, errors = rows
    n = codes.size
    series = pa.array(codes >> SERIES_SHIFT)
    services = pa.array(names.services, pa.string())
    operations = pa.array(names.operations, pa.string())
    kinds = np.asarray(names.kinds, dtype=np.int8)
    return pa.Table.from_arrays(
        [
            pa.array(np.full(n, bucket_start_ns, dtype=np.int64)),
            pa.array(np.full(n, bucket_s, dtype=np.int32)),
            services.take(series),
            operations.take(series),
            pa.array(kinds[codes >> SERIES_SHIFT] if n else np.empty(0, np.int8)),
            key_names.take(pa.array((codes >> KEY_SHIFT) & MAX_KEYS)),
            pa.array(names.values, pa.string()).take(pa.array((codes >> VALUE_SHIFT) & (MAX_VALUES - 1))),
            pa.array(((codes & ((1 << BIN_BITS) - 1)) - 1).astype(BIN_DTYPE)),
            pa.array(counts.astype(np.int64)),
            pa.array(errors.astype(np.int64)),
        ],
        schema=ROLLUP_SCHEMA,
    )
