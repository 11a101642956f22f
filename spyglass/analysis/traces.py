"""Reading one trace whole: what the store kept plus what the recall buffer still holds."""

from __future__ import annotations

from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from spyglass.model.schema import SPAN_SCHEMA
from spyglass.store.protocol import Store


class LiveView(Protocol):
    """Recent, undecided spans (the satellite's recall buffer)."""

    def live_trace(self, trace_id: bytes) -> pa.Table: ...


def trace_spans(store: Store, live: LiveView | None, trace_id: bytes) -> pa.Table:
    """Every known span of a trace, stored or still buffered (``SPAN_SCHEMA``)."""
    stored = store.trace(trace_id).select(SPAN_SCHEMA.names).cast(SPAN_SCHEMA)
    if live is None:
        return stored
    buffered = live.live_trace(trace_id)
    if buffered.num_rows == 0:
        return stored
    # A kept trace stays in the buffer after it is written: each span once, the stored copy first.
    buffered = buffered.cast(SPAN_SCHEMA)
    if stored.num_rows:
        seen = pc.is_in(buffered.column("span_id"), value_set=stored.column("span_id").combine_chunks())
        buffered = buffered.filter(pc.invert(seen))
    return pa.concat_tables([stored, buffered])
