"""This member's rollups as analysis reads them: the store's rows and the aggregator's rows not yet written,
read so that a drain being written meanwhile is counted once (``Aggregator.read_consistent``)."""

from __future__ import annotations

import pyarrow as pa

from spyglass.model.rollups import ROLLUP_SCHEMA
from spyglass.satellite.aggregator import Aggregator
from spyglass.store.protocol import RollupQuery, Store


class LocalRollups:
    """The ``RollupReader`` of one satellite: its own store and its own aggregator."""

    def __init__(self, store: Store, aggregator: Aggregator) -> None:
        self.store = store
        self.aggregator = aggregator

    @property
    def attribute_keys(self) -> tuple[str, ...]:
        return self.aggregator.attribute_keys

    @property
    def bucket_s(self) -> int:
        return self.aggregator.bucket_s

    @property
    def attribute_bucket_s(self) -> int:
        return self.aggregator.attribute_bucket_s

    @property
    def first_span_ns(self) -> int | None:
        return self.aggregator.first_span_ns

    def read(self, query: RollupQuery, include_stored: bool = True) -> pa.Table:
        """Stored and pending rows answering ``query``; only the pending ones unless ``include_stored`` (a
        cluster member whose peers read the same shared store themselves)."""

        def read_stored() -> pa.Table:
            return self.store.rollups(query) if include_stored else ROLLUP_SCHEMA.empty_table()

        return self.aggregator.read_consistent(
            read_stored,
            query.start_ns,
            query.end_ns,
            service=query.service,
            operation=query.operation,
            attr_key=query.attr_key,
            kinds=query.kinds,
        )
