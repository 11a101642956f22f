"""Reading one trace whole: what the store kept plus what the recall buffer still holds."""

from __future__ import annotations

from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from spyglass.model.schema import SPAN_SCHEMA
from spyglass.model.shared_spans import separate_shared_spans
from spyglass.store.protocol import Store


class LiveView(Protocol):
    """Recent, undecided spans (the satellite's recall buffer)."""

    def live_trace(self, trace_id: bytes) -> pa.Table: ...


def trace_spans(store: Store, live: LiveView | None, trace_id: bytes) -> pa.Table:
    """Every known span of a trace, stored or still buffered (``SPAN_SCHEMA``), one span per id: the children
    of a shared span's server half that were not yet decided (or came late) are put under it here."""
    stored = store.trace(trace_id).select(SPAN_SCHEMA.names).cast(SPAN_SCHEMA)
    buffered = live.live_trace(trace_id) if live is not None else SPAN_SCHEMA.empty_table()
    if buffered.num_rows == 0:
        return separate_shared_spans(stored)
    # A kept trace stays in the buffer after it is written: each span once, the stored copy first. A span is
    # known by its id and kind, as an RPC's client and server halves may share an id until they are decided.
    buffered = buffered.cast(SPAN_SCHEMA)
    if stored.num_rows:
        seen = pc.is_in(_span_keys(buffered), value_set=_span_keys(stored))
        buffered = buffered.filter(pc.invert(seen))
    return separate_shared_spans(pa.concat_tables([stored, buffered]))


def _span_keys(spans: pa.Table) -> pa.Array:
    """``span_id`` with the span's kind appended, one binary value per span."""
    kinds = pc.cast(pc.cast(spans.column("kind"), pa.uint8()), pa.string())
    return pc.binary_join_element_wise(
        pc.cast(spans.column("span_id"), pa.binary()), pc.cast(kinds, pa.binary()), b"/"
    ).combine_chunks()
