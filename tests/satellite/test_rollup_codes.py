"""Rollup codes: merging raw codes into rows counts each code as often as it came (or by its weight)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from spyglass.satellite.rollup_codes import (
    MAX_TAIL_ROWS,
    TAIL_PER_ROW,
    TAIL_ROWS,
    Bucket,
    merge_rows,
    reduce_raw,
)


def naive_rows(raw: np.ndarray, weights: np.ndarray | None) -> dict[int, tuple[int, int]]:
    """Row code -> (count, errors), summed one code at a time."""
    counts: Counter[int] = Counter()
    errors: Counter[int] = Counter()
    for at, code in enumerate(raw.tolist()):
        weight = 1 if weights is None else int(weights[at])
        counts[code >> 1] += weight
        errors[code >> 1] += weight * (code & 1)
    return {row: (counts[row], errors[row]) for row in counts}


def as_dict(rows: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[int, tuple[int, int]]:
    codes, counts, errors = rows
    assert (np.diff(codes) > 0).all(), "rows are sorted and distinct"
    return {int(c): (int(n), int(e)) for c, n, e in zip(codes, counts, errors, strict=True)}


@pytest.mark.parametrize("seed", range(12))
def test_reduce_raw_counts_every_code(seed: int) -> None:
    rng = np.random.default_rng(seed)
    distinct = rng.integers(1, 5000)
    pool = rng.integers(0, 1 << 62, distinct)
    raw = pool[rng.integers(0, distinct, rng.integers(1, 20_000))]
    weights = rng.integers(1, 40, raw.size) if seed % 2 else None
    assert as_dict(reduce_raw(raw, weights)) == naive_rows(raw, weights)


def test_reduce_raw_of_nothing_is_no_rows() -> None:
    assert all(part.size == 0 for part in reduce_raw(np.empty(0, np.int64)))


def test_a_bucket_compacted_in_steps_equals_one_reduction() -> None:
    rng = np.random.default_rng(7)
    pool = rng.integers(0, 1 << 50, 3000)
    parts = [pool[rng.integers(0, pool.size, rng.integers(1, 4000))] for _ in range(30)]
    bucket = Bucket(0, 10, 0.0)
    merged = reduce_raw(parts[0])
    for at, part in enumerate(parts):
        bucket.add(part)
        if at % 7 == 6:
            bucket.compact()
        if at:
            merged = merge_rows(merged, reduce_raw(part))
    everything = np.concatenate(parts)
    assert as_dict(bucket.compact()) == naive_rows(everything, None) == as_dict(merged)


def test_a_big_bucket_merges_less_often_within_a_bound() -> None:
    """A merge passes over every row a bucket holds: a bucket collects raw codes in proportion to its rows
    before merging them (at least ``TAIL_ROWS``), never more than ``MAX_TAIL_ROWS``; what it counts is the
    same whenever it merges."""
    rng = np.random.default_rng(11)
    bucket = Bucket(0, 60, 0.0)
    assert bucket.tail_limit() == TAIL_ROWS
    many = rng.choice(1 << 50, size=TAIL_ROWS // 2, replace=False)
    bucket.add(many)
    bucket.compact()
    assert bucket.tail_limit() == min(MAX_TAIL_ROWS, TAIL_PER_ROW * many.size) > TAIL_ROWS
    more = many[rng.integers(0, many.size, bucket.tail_limit() - 1)]
    bucket.add(more)
    assert bucket.tail_size == more.size, "not merged before the limit"
    bucket.add(more[:1])
    assert bucket.tail_size == 0, "merged at the limit"
    assert as_dict(bucket.rows) == naive_rows(np.concatenate([many, more, more[:1]]), None)
    huge = Bucket(0, 60, 0.0)
    huge.rows = (np.arange(MAX_TAIL_ROWS, dtype=np.int64), *(np.ones(MAX_TAIL_ROWS, np.int64),) * 2)
    assert huge.tail_limit() == MAX_TAIL_ROWS
