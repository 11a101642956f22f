"""The store as readers see it: what it holds, and the kept spans the satellite's writer has not written yet.

The writer gathers kept spans for up to a second (``pipeline.WRITE_GATHER_S``), and the recall buffer may forget
decided traces before then under memory pressure. Reads over a window take the store's part of the window from
here (``analysis.live.window_spans``, metrics by an attribute that is not rolled up, explain), so a kept span is
in the store's part until it is written, and in it after. Its start is before the buffer's coverage once the
buffer forgot it, so it is never counted from both. Traces by id are read whole by ``Satellite.live_trace``;
summaries, rollups and logs are the store's alone.
"""

from __future__ import annotations

import pyarrow as pa

from spyglass.satellite.pipeline import Satellite
from spyglass.store.attribute_cells import ATTRIBUTE_CELL_SCHEMA, CELL_SPAN_COLUMNS, attribute_cells_of
from spyglass.store.protocol import ScanFilter, Store
from spyglass.store.store_over import StoreOver
from spyglass.store.top_values import TopValues, with_last_part


class StoreWithWaiting(StoreOver):
    """``Store`` over a store and the satellite writing to it: ``scan`` and ``attribute_cells`` add the kept
    spans still waiting for their write (read before the store, so a write landing between the two reads shows a
    span twice for that moment, never not at all); everything else is the store's."""

    def __init__(self, store: Store, satellite: Satellite) -> None:
        super().__init__(store)
        self.satellite = satellite

    def scan(
        self, columns: list[str], start_ns: int, end_ns: int, filters: ScanFilter | None = None
    ) -> pa.Table:
        waiting = self.satellite.waiting_spans(columns, start_ns, end_ns, filters)
        stored = self.local.scan(columns, start_ns, end_ns, filters)
        if waiting is None or waiting.num_rows == 0:
            return stored
        return pa.concat_tables([stored, waiting.cast(stored.schema)])

    def attribute_cells(
        self,
        key: str,
        start_ns: int,
        end_ns: int,
        step_ns: int | None,
        filters: ScanFilter | None = None,
        top: TopValues | None = None,
    ) -> pa.Table:
        waiting = self.satellite.waiting_spans(CELL_SPAN_COLUMNS, start_ns, end_ns, filters)
        if waiting is None or waiting.num_rows == 0:
            return self.local.attribute_cells(key, start_ns, end_ns, step_ns, filters, top)
        summed = attribute_cells_of(waiting, key, start_ns, step_ns)
        parts = with_last_part(
            top,
            [summed],
            lambda chosen: self.local.attribute_cells(key, start_ns, end_ns, step_ns, filters, chosen),
        )
        return pa.concat_tables([part.cast(ATTRIBUTE_CELL_SCHEMA) for part in parts])
