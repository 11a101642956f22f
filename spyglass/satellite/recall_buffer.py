"""The recall buffer: recent spans, grouped by the time they arrived, until their trace is decided and after.

A trace is *quiet* when none of its spans arrived after a cutoff; quiet traces leave the undecided region
whole, to be decided. Decided traces, kept or not, then stay in a second region as long as memory allows, so
that the last minutes of traffic can be looked at in full (any trace, and grouped by any attribute); that
region gives way first whenever room is needed.

Memory is the point of this class. Each chunk (``recall_chunk``) keeps its distinct trace ids in the clear
(every decision and lookup is a hash membership test on them), each resource and scope once, and the rest of
its spans as one zstd-compressed Arrow IPC message: about 55 bytes a span, against about 150 for the OTLP
encoding and 380 for the decoded Arrow. Chunks are decompressed only when spans leave, or for a live query, and
always given back as ``SPAN_SCHEMA``.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spyglass.model.arrow_numpy import as_numpy
from spyglass.model.schema import NO_SPANS, SPAN_SCHEMA, TRACE_ID
from spyglass.satellite.decided_index import DecidedIndex
from spyglass.satellite.recall_chunk import Chunk, TraceIndex, pack_table


def _table(chunks: list[Chunk]) -> pa.Table:
    return pa.Table.from_batches([c.unpack() for c in chunks], schema=SPAN_SCHEMA)


def _decided(chunks: list[Chunk], kept_ids: pa.Array) -> list[Chunk]:
    """The chunks marked with which of their traces were kept: one membership test for all of them (a test
    per chunk hashed every kept id again for each)."""
    if not chunks:
        return chunks
    kept = pc.is_in(pa.concat_arrays([c.trace_ids for c in chunks]), value_set=kept_ids)
    marks = np.split(kept.to_numpy(zero_copy_only=False), np.cumsum([len(c.trace_ids) for c in chunks[:-1]]))
    return [dataclasses.replace(chunk, kept=mark) for chunk, mark in zip(chunks, marks, strict=True)]


class RecallBuffer:
    """Holds undecided spans, bounded in bytes; hands out whole traces that are quiet or must go early."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._chunks: list[Chunk] = []  # undecided
        self._decided: deque[Chunk] = deque()  # decided, kept for live queries, oldest first
        # Taken out to be decided, until ``retain_decided`` (or ``end_decision``): still visible to live queries,
        # so a trace is never in neither the buffer nor the store while the sampler looks at it.
        self._deciding: pa.Table | None = None
        # Where ``_deciding`` came from, in its row order, when ``take_quiet`` took it: per chunk it left, the
        # chunk itself when every span of it left (so retaining need not compress it again), or else how many of
        # its spans did.
        self._deciding_parts: list[Chunk | int] = []
        self._bytes = 0
        self._spans = 0
        self._decided_bytes = 0
        self._decided_spans = 0
        self.peak_bytes = 0  # high-water mark, so tests and /metrics can check the bound held
        # Every span that arrived after this is still here (decided or not): since start, until one is forgotten.
        self._complete_since_ns = time.time_ns()
        self._lock = threading.Lock()
        # One change of the undecided chunks at a time, taken before ``_lock``: ``take_quiet`` unpacks and packs
        # again without ``_lock`` (0.6 ms a thousand spans, which every trace lookup waited for), sure that the
        # chunks it read are still the ones it replaces.
        self._changing = threading.Lock()
        # The decided chunks by trace id, kept up as they come and go; the few undecided ones are indexed again
        # after each change of ``_undecided_version`` (``_undecided_index`` is built for one).
        self._decided_index = DecidedIndex()
        self._undecided_version = 0
        self._undecided_index: tuple[int, TraceIndex] | None = None

    @property
    def nbytes(self) -> int:
        """Bytes held, undecided and decided: what ``max_bytes`` bounds."""
        return self._bytes + self._decided_bytes

    @property
    def spans(self) -> int:
        """Spans held, undecided and decided."""
        return self._spans + self._decided_spans

    @property
    def undecided_spans(self) -> int:
        return self._spans

    @property
    def covered_since_ns(self) -> int:
        """Arrival time after which the buffer holds every span that arrived, decided or not."""
        return self._complete_since_ns

    @staticmethod
    def packed_size(batch: pa.RecordBatch) -> int:
        """What a batch would cost in the buffer (for callers making room before ``add``)."""
        return sum(chunk.nbytes for chunk in pack_table(batch, 0))

    def add(self, batch: pa.RecordBatch, arrival_ns: int) -> None:
        """Take in a decoded batch that arrived at ``arrival_ns``."""
        if batch.num_rows:
            self.add_chunks(pack_table(batch, arrival_ns))

    def add_chunks(self, chunks: list[Chunk]) -> None:
        with self._changing, self._lock:
            self._undecided_version += 1
            for chunk in chunks:
                self._chunks.append(chunk)
                self._bytes += chunk.nbytes
                self._spans += chunk.rows
            self.peak_bytes = max(self.peak_bytes, self.nbytes)

    def over_bound(self) -> bool:
        return self.nbytes > self.max_bytes

    def retain_decided(self, spans: pa.Table, decided_ns: int, kept_ids: pa.Array | None = None) -> None:
        """Keep decided traces (kept or dropped) for live queries, while memory allows; ``kept_ids`` are the
        traces that were kept (none when None), which a lookup that read the store can pass over."""
        if self._bytes >= self.max_bytes * 0.9:
            # Undecided spans fill the bound: these would be forgotten at once, so do not spend the compression.
            # Decided ones give way to them, oldest first: a buffer full of older decided traces keeps the newest.
            with self._lock:
                self._complete_since_ns = max(self._complete_since_ns, decided_ns)
                self._deciding = None
                self._deciding_parts = []
            return
        with self._lock:
            parts = self._deciding_parts if spans is self._deciding else []
        chunks = self._repacked(spans, parts, decided_ns) if parts else pack_table(spans, decided_ns)
        chunks = _decided(chunks, pa.array([], TRACE_ID) if kept_ids is None else kept_ids)
        with self._lock:
            self._deciding = None
            self._deciding_parts = []
            for chunk in chunks:
                self._decided.append(chunk)
                self._decided_index.append(chunk)
                self._decided_bytes += chunk.nbytes
                self._decided_spans += chunk.rows
            self._evict_decided(self.max_bytes)
            self.peak_bytes = max(self.peak_bytes, self.nbytes)

    @staticmethod
    def _repacked(spans: pa.Table, parts: list[Chunk | int], decided_ns: int) -> list[Chunk]:
        """The decided spans as chunks: each chunk that left whole as it was, the rest packed again."""
        chunks: list[Chunk] = []
        offset = 0
        for part in parts:
            if isinstance(part, Chunk):
                chunks.append(dataclasses.replace(part, arrival_ns=decided_ns))
                offset += part.rows
            elif part:
                chunks.extend(pack_table(spans.slice(offset, part), decided_ns))
                offset += part
        return chunks

    def make_room(self, incoming_bytes: int) -> bool:
        """Forget decided traces, oldest first, so ``incoming_bytes`` more fit; False if undecided spans alone
        leave too little room (then the caller decides the oldest undecided traces early)."""
        with self._lock:
            self._evict_decided(self.max_bytes - incoming_bytes)
            return self.nbytes + incoming_bytes <= self.max_bytes

    def _evict_decided(self, target_bytes: int) -> None:
        while self._decided and self.nbytes > target_bytes:
            chunk = self._decided.popleft()
            self._decided_index.forget_oldest()
            self._complete_since_ns = max(self._complete_since_ns, chunk.arrival_ns)
            self._decided_bytes -= chunk.nbytes
            self._decided_spans -= chunk.rows

    def take_quiet(self, cutoff_ns: int) -> pa.Table:
        """Remove and return every span of each trace none of whose spans arrived after ``cutoff_ns``. Lookups
        go on meanwhile: they see the spans in their chunks until the quiet ones move to being decided."""
        with self._changing:
            with self._lock:
                chunks = list(self._chunks)
            old = [c for c in chunks if c.arrival_ns <= cutoff_ns]
            if not old:
                return NO_SPANS
            recent = [c for c in chunks if c.arrival_ns > cutoff_ns]
            old_table = _table(old)
            parts: list[Chunk | int] = list(old)
            if recent:
                # A set lookup takes repeated ids as they are: no distinct pass first.
                recent_ids = pa.chunked_array([c.trace_ids for c in recent]).combine_chunks()
                still_active = pc.is_in(old_table.column("trace_id"), value_set=recent_ids)
                if not pc.any(still_active).as_py():
                    # Exports usually hold whole traces: nothing to split, and a filter copies every column.
                    quiet, carried = old_table, NO_SPANS
                else:
                    quiet = old_table.filter(pc.invert(still_active))
                    carried = old_table.filter(still_active).combine_chunks()
                if carried.num_rows:
                    active = as_numpy(still_active, bool)
                    starts = np.cumsum([0] + [c.rows for c in old[:-1]])
                    active_rows = np.add.reduceat(active, starts).tolist()
                    parts = [c if n == 0 else c.rows - n for c, n in zip(old, active_rows, strict=True)]
            else:
                quiet, carried = old_table, NO_SPANS
            kept = pack_table(carried, old[-1].arrival_ns)
            with self._lock:
                self._replace(kept + recent)
                self._deciding = quiet
                self._deciding_parts = parts
            return quiet

    def take_oldest(self, target_bytes: int) -> pa.Table:
        """Decide early: remove whole undecided traces, oldest first, until they hold at most ``target_bytes``."""
        with self._changing, self._lock:
            freed = 0
            cut = 0
            while cut < len(self._chunks) and self._bytes - freed > target_bytes:
                freed += self._chunks[cut].nbytes
                cut += 1
            if cut == 0:
                return NO_SPANS
            leaving_ids = pc.unique(pa.chunked_array([c.trace_ids for c in self._chunks[:cut]]))
            taken: list[pa.Table] = [_table(self._chunks[:cut])]
            rest: list[Chunk] = []
            for chunk in self._chunks[cut:]:
                if chunk.trace_mask(leaving_ids) is None:
                    rest.append(chunk)
                    continue
                spans = chunk.unpack()
                leaving = pc.is_in(spans.column("trace_id"), value_set=leaving_ids)
                taken.append(pa.Table.from_batches([spans.filter(leaving)]))
                staying = spans.filter(pc.invert(leaving))
                rest.extend(pack_table(staying, chunk.arrival_ns))
            self._replace(rest)
            self._deciding = pa.concat_tables(taken)
            self._deciding_parts = []
            return self._deciding

    def take_all(self) -> pa.Table:
        """Remove and return every undecided span (at shutdown)."""
        with self._changing, self._lock:
            table = _table(self._chunks)
            self._replace([])
            self._deciding = table
            self._deciding_parts = []
            return table

    def end_decision(self) -> None:
        """The spans last taken are decided and retained, stored or dropped: no longer shown as deciding."""
        with self._lock:
            self._deciding = None
            self._deciding_parts = []

    def trace(self, trace_id: bytes, skip_kept: bool = False) -> pa.Table:
        """Every buffered span of one trace, decided or not (the live view of a recent trace). With
        ``skip_kept``, decided spans of a kept trace are left out: the caller found the trace in the store,
        which holds them, and unpacking their chunk was a fifth of a trace lookup through the API."""
        hits, deciding = self._trace_hits(trace_id)
        if skip_kept:
            hits = [(chunk, at) for chunk, at in hits if not chunk.kept_at(at)]
        return _with_deciding(_unpacked(hits), deciding, trace_id)

    def trace_split(self, trace_id: bytes) -> tuple[pa.Table, pa.Table]:
        """``trace``, in two parts: the decided spans of a kept trace (copies of what was written to the
        store), and the others (undecided, being decided, or decided and dropped)."""
        hits, deciding = self._trace_hits(trace_id)
        kept = [(chunk, at) for chunk, at in hits if chunk.kept_at(at)]
        others = [(chunk, at) for chunk, at in hits if not chunk.kept_at(at)]
        return _unpacked(kept), _with_deciding(_unpacked(others), deciding, trace_id)

    def _trace_hits(self, trace_id: bytes) -> tuple[list[tuple[Chunk, int]], pa.Table | None]:
        """The chunks holding spans of the trace (each with the trace's place in it), and the table being
        decided."""
        with self._lock:
            if self._undecided_index is None or self._undecided_index[0] != self._undecided_version:
                self._undecided_index = (self._undecided_version, TraceIndex(list(self._chunks)))
            undecided = self._undecided_index[1]
            hits = self._decided_index.find(trace_id)
            deciding = self._deciding
        return hits + undecided.find(trace_id), deciding

    def snapshot(
        self,
        include_decided: bool = True,
        newest: int | None = None,
        starting: Sequence[tuple[int, int]] | None = None,
    ) -> pa.Table:
        """Everything buffered now, without removing it (live queries over 100% of recent spans); with
        ``newest``, only the newest whole chunks that hold at least that many spans, when there are more (a full
        buffer is millions of spans: unpacking them all takes seconds); with ``starting``, of those, the chunks
        that may hold a span starting in one of these windows (the others may be left out, unpacked)."""
        with self._lock:
            chunks = [*self._decided, *self._chunks] if include_decided else list(self._chunks)
            deciding = self._deciding if include_decided else None
        if newest is not None:
            held = 0 if deciding is None else deciding.num_rows
            first = len(chunks)
            while first > 0 and held < newest:
                first -= 1
                held += chunks[first].rows
            chunks = chunks[first:]
        if starting is not None:
            chunks = [chunk for chunk in chunks if chunk.may_start_in(starting)]
        table = _table(chunks)
        if deciding is None or deciding.num_rows == 0:
            return table
        return pa.concat_tables([table, deciding])

    def _replace(self, chunks: list[Chunk]) -> None:
        self._undecided_version += 1
        self._chunks = chunks
        self._bytes = sum(c.nbytes for c in chunks)
        self._spans = sum(c.rows for c in chunks)


def _unpacked(hits: list[tuple[Chunk, int]]) -> pa.Table:
    """The spans of one trace in each of these chunks."""
    return pa.Table.from_batches([chunk.trace_at(at) for chunk, at in hits], schema=SPAN_SCHEMA)


def _with_deciding(found: pa.Table, deciding: pa.Table | None, trace_id: bytes) -> pa.Table:
    """``found`` and the trace's spans in the table being decided."""
    if deciding is None or deciding.num_rows == 0:
        return found
    mine = deciding.filter(pc.equal(deciding.column("trace_id"), pa.scalar(trace_id, TRACE_ID)))
    return pa.concat_tables([found, mine]) if mine.num_rows else found
