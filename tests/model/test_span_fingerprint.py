"""A set of spans in two numbers: count and the exclusive or of the ids, however the ids' column is laid out."""

from __future__ import annotations

import functools
import operator

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from spyglass.model.schema import SPAN_ID
from spyglass.model.span_fingerprint import SpanFingerprint, fingerprint

_IDS = st.lists(st.binary(min_size=8, max_size=8), max_size=40)


def _expected(ids: list[bytes]) -> SpanFingerprint:
    return SpanFingerprint(
        len(ids), functools.reduce(operator.xor, (int.from_bytes(i, "big") for i in ids), 0)
    )


@given(_IDS, st.integers(0, 5), st.integers(1, 4))
def test_a_fingerprint_is_the_count_and_the_xor_of_the_ids(ids: list[bytes], skip: int, chunks: int) -> None:
    """Sliced arrays (an offset into the buffer) and chunked columns give the same numbers as the ids do."""
    column = pa.array([b"\0" * 8] * skip + ids, SPAN_ID).slice(skip)
    assert fingerprint(column) == _expected(ids)
    step = max(1, len(ids) // chunks)
    parts = [pa.array(ids[i : i + step], SPAN_ID) for i in range(0, len(ids), step)] or [
        pa.array([], SPAN_ID)
    ]
    assert fingerprint(pa.chunked_array(parts, SPAN_ID)) == _expected(ids)


@given(_IDS, st.binary(min_size=8, max_size=8), st.binary(min_size=8, max_size=8))
def test_sets_of_one_size_with_a_span_exchanged_differ(ids: list[bytes], one: bytes, other: bytes) -> None:
    if one == other:
        return
    assert fingerprint(pa.array([*ids, one], SPAN_ID)) != fingerprint(pa.array([*ids, other], SPAN_ID))


def test_a_span_written_twice_is_counted_twice() -> None:
    once = fingerprint(pa.array([b"a" * 8, b"b" * 8], SPAN_ID))
    twice = fingerprint(pa.array([b"a" * 8, b"b" * 8, b"b" * 8], SPAN_ID))
    assert twice.spans == 3 and twice != once
    assert fingerprint(pa.array([], SPAN_ID)) == SpanFingerprint(0, 0)
