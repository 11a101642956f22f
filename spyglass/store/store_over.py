"""A ``Store`` that answers every call from another one: the base of views over a store, which change only the
calls they answer differently (the satellite's waiting spans added to window reads, a cluster's reads)."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from spyglass.model.figures import StorageFigures
from spyglass.model.span_fingerprint import SpanFingerprint
from spyglass.store.protocol import (
    Compaction,
    ExpiringData,
    RetentionStep,
    RollupQuery,
    ScanFilter,
    Store,
    TraceQuery,
)
from spyglass.store.top_values import TopValues


class StoreOver:
    """``Store`` that is ``local`` in every call."""

    def __init__(self, local: Store) -> None:
        self.local = local

    def write(self, spans: pa.Table) -> None:
        self.local.write(spans)

    def trace(self, trace_id: bytes) -> pa.Table:
        return self.local.trace(trace_id)

    def trace_unless_held(self, trace_id: bytes, held: SpanFingerprint) -> pa.Table | None:
        return self.local.trace_unless_held(trace_id, held)

    def traces(self, trace_ids: Sequence[bytes]) -> pa.Table:
        return self.local.traces(trace_ids)

    def find_traces(self, query: TraceQuery) -> pa.Table:
        return self.local.find_traces(query)

    def scan(
        self, columns: list[str], start_ns: int, end_ns: int, filters: ScanFilter | None = None
    ) -> pa.Table:
        return self.local.scan(columns, start_ns, end_ns, filters)

    def attribute_cells(
        self,
        key: str,
        start_ns: int,
        end_ns: int,
        step_ns: int | None,
        filters: ScanFilter | None = None,
        top: TopValues | None = None,
    ) -> pa.Table:
        return self.local.attribute_cells(key, start_ns, end_ns, step_ns, filters, top)

    def calls(self, start_ns: int, end_ns: int) -> pa.Table:
        return self.local.calls(start_ns, end_ns)

    def write_rollups(self, rows: pa.Table) -> None:
        self.local.write_rollups(rows)

    def rollups(self, query: RollupQuery) -> pa.Table:
        return self.local.rollups(query)

    def write_logs(self, logs: pa.Table) -> None:
        self.local.write_logs(logs)

    def logs_for_traces(self, trace_ids: list[bytes], limit: int = 1000) -> pa.Table:
        return self.local.logs_for_traces(trace_ids, limit)

    def services(self) -> list[str]:
        return self.local.services()

    def operations(self, service: str) -> list[tuple[str, int]]:
        return self.local.operations(service)

    def span_count(self) -> int:
        return self.local.span_count()

    def expire(self, data: ExpiringData, before_ns: int, slice_ns: int) -> RetentionStep:
        return self.local.expire(data, before_ns, slice_ns)

    def downsample_rollups(self, before_ns: int, bucket_s: int, slice_ns: int) -> RetentionStep:
        return self.local.downsample_rollups(before_ns, bucket_s, slice_ns)

    def reclaim_space(self) -> Compaction | None:
        return self.local.reclaim_space()

    def storage_figures(self) -> StorageFigures:
        return self.local.storage_figures()

    def close(self) -> None:
        self.local.close()
