"""The recall buffer: recent spans, held as the Arrow batches they arrived in, until their trace is decided.

A trace is *quiet* when none of its spans arrived after a cutoff; quiet traces leave the buffer whole. The
buffer never holds per-span Python objects: every operation is a hash membership test over trace-id columns.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from spyglass.model.schema import SPAN_SCHEMA


@dataclass
class _Chunk:
    batch: pa.RecordBatch
    arrival_ns: int


class RecallBuffer:
    """Holds undecided spans, bounded in bytes; hands out whole traces that are quiet or must go early."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._chunks: list[_Chunk] = []
        self._bytes = 0
        self._spans = 0
        self.peak_bytes = 0  # high-water mark, so tests and /metrics can check the bound held
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return self._bytes

    @property
    def spans(self) -> int:
        return self._spans

    def add(self, batch: pa.RecordBatch, arrival_ns: int) -> None:
        """Take in a decoded batch that arrived at ``arrival_ns``."""
        if batch.num_rows == 0:
            return
        with self._lock:
            self._chunks.append(_Chunk(batch, arrival_ns))
            self._bytes += batch.nbytes
            self._spans += batch.num_rows
            self.peak_bytes = max(self.peak_bytes, self._bytes)

    def over_bound(self) -> bool:
        return self._bytes > self.max_bytes

    def take_quiet(self, cutoff_ns: int) -> pa.Table:
        """Remove and return every span of each trace none of whose spans arrived after ``cutoff_ns``."""
        with self._lock:
            old = [c for c in self._chunks if c.arrival_ns <= cutoff_ns]
            if not old:
                return SPAN_SCHEMA.empty_table()
            recent = [c for c in self._chunks if c.arrival_ns > cutoff_ns]
            old_table = pa.Table.from_batches([c.batch for c in old], schema=SPAN_SCHEMA)
            if recent:
                recent_ids = pa.chunked_array([c.batch.column("trace_id") for c in recent])
                still_active = pc.is_in(old_table.column("trace_id"), value_set=pc.unique(recent_ids))
                quiet = old_table.filter(pc.invert(still_active))
                carried = old_table.filter(still_active)
            else:
                quiet, carried = old_table, SPAN_SCHEMA.empty_table()
            kept = [_Chunk(b, old[-1].arrival_ns) for b in carried.combine_chunks().to_batches()]
            self._replace(kept + recent)
            return quiet

    def take_oldest(self, target_bytes: int) -> pa.Table:
        """Decide early: remove whole traces, oldest first, until the buffer holds at most ``target_bytes``."""
        with self._lock:
            freed = 0
            cut = 0
            while cut < len(self._chunks) and self._bytes - freed > target_bytes:
                freed += self._chunks[cut].batch.nbytes
                cut += 1
            if cut == 0:
                return SPAN_SCHEMA.empty_table()
            oldest_ids = pa.chunked_array([c.batch.column("trace_id") for c in self._chunks[:cut]])
            everything = pa.Table.from_batches([c.batch for c in self._chunks], schema=SPAN_SCHEMA)
            arrivals = [c.arrival_ns for c in self._chunks]
            leaving = pc.is_in(everything.column("trace_id"), value_set=pc.unique(oldest_ids))
            taken = everything.filter(leaving)
            rest = everything.filter(pc.invert(leaving)).combine_chunks()
            self._replace([_Chunk(b, arrivals[-1]) for b in rest.to_batches()] if rest.num_rows else [])
            return taken

    def take_all(self) -> pa.Table:
        """Remove and return everything (at shutdown)."""
        with self._lock:
            table = pa.Table.from_batches([c.batch for c in self._chunks], schema=SPAN_SCHEMA)
            self._replace([])
            return table

    def trace(self, trace_id: bytes) -> pa.Table:
        """Every buffered span of one trace (the live view of a trace not yet decided)."""
        with self._lock:
            batches = [c.batch for c in self._chunks]
        if not batches:
            return SPAN_SCHEMA.empty_table()
        table = pa.Table.from_batches(batches, schema=SPAN_SCHEMA)
        return table.filter(pc.equal(table.column("trace_id"), pa.scalar(trace_id, pa.binary(16))))

    def snapshot(self) -> pa.Table:
        """Everything buffered now, without removing it (for live queries)."""
        with self._lock:
            batches = [c.batch for c in self._chunks]
        return pa.Table.from_batches(batches, schema=SPAN_SCHEMA)

    def _replace(self, chunks: list[_Chunk]) -> None:
        self._chunks = chunks
        self._bytes = sum(c.batch.nbytes for c in chunks)
        self._spans = sum(c.batch.num_rows for c in chunks)
