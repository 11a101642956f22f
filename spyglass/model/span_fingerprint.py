"""What a set of a trace's spans is, in two numbers: how many, and the exclusive or of their span ids (each read
as a little-endian 64-bit integer). A store keeps both in each trace's summary, written with every write; a
reader that holds copies of spans it knows were written (the recall buffer's kept traces) compares them with
the summary and, when they agree, answers from its copies without reading the spans again.

Span ids are random 64-bit numbers, so two different sets of the same size share a fingerprint only by a 1 in
2^64 chance; a span written twice is counted twice (its ids cancel out in the exclusive or, its count does not).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow as pa

from spyglass.model.schema import SPAN_ID


class SpanFingerprint(NamedTuple):
    """How many spans, and the exclusive or of their ids."""

    spans: int
    ids_xor: int


def span_id_numbers(span_ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Each span id (``SPAN_ID``, 8 bytes, no nulls) as an unsigned 64-bit integer, little-endian: a view of the
    column's bytes where it is one chunk."""
    if isinstance(span_ids, pa.ChunkedArray):
        span_ids = span_ids.combine_chunks() if span_ids.num_chunks != 1 else span_ids.chunk(0)
    if span_ids.type != SPAN_ID:
        span_ids = span_ids.cast(SPAN_ID)
    if len(span_ids) == 0:
        return np.zeros(0, dtype="<u8")
    data = span_ids.buffers()[1]
    assert data is not None  # a fixed-size binary array always has its values' buffer
    return np.frombuffer(data, dtype="<u8", count=len(span_ids), offset=span_ids.offset * 8)


def fingerprint(span_ids: pa.Array | pa.ChunkedArray) -> SpanFingerprint:
    """The fingerprint of the spans with these ids."""
    numbers = span_id_numbers(span_ids)
    return SpanFingerprint(len(numbers), int(np.bitwise_xor.reduce(numbers)) if len(numbers) else 0)
