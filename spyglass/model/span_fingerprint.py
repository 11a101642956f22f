"""What a set of a trace's spans is, in two numbers: how many, and the exclusive or of their span ids (each read
as a big-endian 64-bit integer). A store keeps both in each trace's summary, written with every write; a
reader that holds copies of spans it knows were written (the recall buffer's kept traces) compares them with
the summary and, when they agree, answers from its copies without reading the spans again.

Span ids are random 64-bit numbers, so two different sets of the same size share a fingerprint only by a 1 in
2^64 chance; a span written twice is counted twice (its ids cancel out in the exclusive or, its count does not).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from spyglass.model.arrow_numpy import id_words
from spyglass.model.schema import SPAN_ID


class SpanFingerprint(NamedTuple):
    """How many spans, and the exclusive or of their ids."""

    spans: int
    ids_xor: int


def span_id_numbers(span_ids: pa.Array | pa.ChunkedArray) -> npt.NDArray[np.uint64]:
    """Each span id (``SPAN_ID``, 8 bytes, no nulls) as an unsigned 64-bit integer, its bytes read big-endian."""
    if isinstance(span_ids, pa.ChunkedArray):
        span_ids = span_ids.combine_chunks() if span_ids.num_chunks != 1 else span_ids.chunk(0)
    return id_words(span_ids if span_ids.type == SPAN_ID else span_ids.cast(SPAN_ID))


def fingerprint(span_ids: pa.Array | pa.ChunkedArray) -> SpanFingerprint:
    """The fingerprint of the spans with these ids."""
    numbers = span_id_numbers(span_ids)
    return SpanFingerprint(len(numbers), int(np.bitwise_xor.reduce(numbers)) if len(numbers) else 0)
