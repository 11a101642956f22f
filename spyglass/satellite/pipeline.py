"""The satellite: receivers hand it span batches; it buffers, decides and writes kept traces to the store.

Three stages, each bounded, so overload turns into an explicit refusal at the receivers instead of memory
growth: an intake queue (bounded in spans; ``submit`` says no when it is full), the recall buffer (bounded in
bytes; traces are decided early when it is full) and the write queue (bounded in tables; when the store lags,
deciding waits, the intake fills, and receivers answer 429 / RESOURCE_EXHAUSTED). The writer gathers kept spans
into large writes (``WRITE_ROWS``), which the store takes at about half the cost a span.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spyglass.background import yield_to_queries
from spyglass.model.figures import AggregateFigures, RecallFigures, SatelliteCounters
from spyglass.model.schema import NO_SPANS, SPAN_SCHEMA, STORED_SPAN_SCHEMA, TRACE_ID, in_window
from spyglass.model.shared_spans import separate_shared_spans, span_keys
from spyglass.satellite.aggregator import Aggregator, RollupRows
from spyglass.satellite.decision_memory import DecisionMemory
from spyglass.satellite.recall_buffer import RecallBuffer
from spyglass.satellite.recall_chunk import pack_table
from spyglass.satellite.rollup_reader import LocalRollups
from spyglass.satellite.sampler import Sampler, with_adjusted_counts, with_weights
from spyglass.satellite.store_writes import write_isolating
from spyglass.store.duckdb_store import ROW_GROUP_ROWS
from spyglass.store.protocol import ScanFilter, Store

log = logging.getLogger(__name__)

#: How often the decide loop hands closed rollup buckets to the writer.
ROLLUP_DRAIN_INTERVAL_S = 1.0
#: The decide loop takes the intake in once it holds this many spans, or this long after it began to fill.
GATHER_SPANS = 16_384
GATHER_S = 0.05
#: Kept spans the writer gathers into store writes of a multiple of this many while they keep coming: DuckDB's row
#: group. A write of whole row groups commits them compressed into the database file, not into the write-ahead
#: log first and again at the next checkpoint: storing four million spans through this writer took 6.7 against
#: 16.4 CPU-µs a span in writes of 16,384. The rest of a gathering waits for the next: a part row group between
#: whole ones makes the next checkpoint rewrite those after it.
WRITE_ROWS = ROW_GROUP_ROWS
#: The longest kept spans wait in the writer for more to write with (a trace is read from the recall buffer
#: meanwhile; a flush or a stop writes at once).
WRITE_GATHER_S = 1.0
#: The writer waits only while kept spans come fast enough to fill ``WRITE_ROWS`` in about that time (this many
#: came in the last ``WRITE_GATHER_S``); slower, as at a low sample rate, each table is written as it comes:
#: waiting would only add latency.
GATHER_FLOW_ROWS = WRITE_ROWS * 3 // 4
#: How often a writer holding gathered spans looks whether more can come: with nothing queued or undecided (a
#: burst ended), it writes them instead of waiting out ``WRITE_GATHER_S``.
GATHER_POLL_S = 0.1
#: Put in the write queue by ``flush``: write what is gathered now.
_WRITE_NOW = "write now"
#: A backlog is counted and packed in groups of about this many spans: one group of everything queued (up to
#: 200,000 spans) ran each per-span pass over arrays far larger than the caches, and cost about 12% more CPU.
GROUP_SPANS = 65_536


@dataclass(frozen=True)
class SatelliteSettings:
    """The satellite's knobs, taken from the validated configuration."""

    decision_wait_s: float = 5.0
    recall_memory_bytes: int = 256 * 1024 * 1024
    max_queued_spans: int = 200_000
    max_pending_writes: int = 8
    #: Attribute keys rolled up per value besides the defaults (``--aggregate-attributes``).
    aggregate_attributes: tuple[str, ...] = ()


class Satellite:
    """Owns the intake queue, the recall buffer, the decision loop and the store writer.

    Readers see it through ``LiveData`` (a trace, recent spans, since when it holds them), ``rollups`` (a
    ``RollupReader``) and its figures; the buffer and the aggregator stay its own."""

    def __init__(self, settings: SatelliteSettings, store: Store, sampler: Sampler) -> None:
        self.settings = settings
        self.store = store
        self.sampler = sampler
        self.buffer = RecallBuffer(settings.recall_memory_bytes)
        # 100% of spans, before sampling; rollups drained once a second
        self.aggregator = Aggregator(extra_keys=settings.aggregate_attributes)
        self.rollups = LocalRollups(store, self.aggregator)
        self.decisions = DecisionMemory()
        self.counters = SatelliteCounters()
        self._intake: deque[tuple[pa.RecordBatch, int]] = deque()
        self._queued_spans = 0
        self._intake_lock = threading.Condition()
        self._writes: queue.Queue[pa.Table | RollupRows | str | None] = queue.Queue(
            maxsize=settings.max_pending_writes
        )
        # Kept spans from their decision until the store has them, in the order the writer writes them: read by
        # ``live_trace`` and ``waiting_spans``, as the recall buffer may forget them before (and a gathering may
        # be written in parts).
        self._unwritten: deque[pa.Table] = deque()
        self._unwritten_lock = threading.Lock()
        self._stopping = threading.Event()
        self._flush_requests: list[threading.Event] = []
        self._threads: list[threading.Thread] = []
        self._tick_s = max(0.05, min(1.0, settings.decision_wait_s / 4))

    # -- receivers' side -------------------------------------------------------------------------------

    def submit(self, batch: pa.RecordBatch) -> bool:
        """Queue a decoded batch; False (refuse with 429) when the intake is full or the satellite stops."""
        n = batch.num_rows
        with self._intake_lock:
            if self._stopping.is_set() or self._queued_spans + n > self.settings.max_queued_spans:
                self.counters.spans_rejected += n
                return False
            self._intake.append((batch, time.time_ns()))
            self._queued_spans += n
            self._intake_lock.notify()
        return True

    def accepting(self) -> bool:
        """Whether the intake has room for more: receivers refuse exports before decoding them when not."""
        return self._queued_spans < self.settings.max_queued_spans and not self._stopping.is_set()

    def count_rejected(self, spans: int) -> None:
        """Record spans a receiver refused as invalid."""
        with self._intake_lock:
            self.counters.spans_rejected += spans

    @property
    def queued_spans(self) -> int:
        return self._queued_spans

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        for target, name in ((self._decide_loop, "spyglass-decide"), (self._write_loop, "spyglass-write")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop taking spans, decide everything still buffered, write it, and wait for the writer."""
        with self._intake_lock:
            self._stopping.set()
            self._intake_lock.notify_all()
        for thread in self._threads:
            thread.join()
        self._threads.clear()

    def flush(self, timeout_s: float = 10.0) -> None:
        """Decide every buffered trace now and wait until it is written (tests and shutdown)."""
        done = threading.Event()
        with self._intake_lock:
            if not self._threads:  # not running: decide here
                done.set()
            else:
                self._flush_requests.append(done)
                self._intake_lock.notify()
        if not self._threads:
            self._decide(self.buffer.take_all())
        elif not done.wait(timeout_s):
            raise TimeoutError("the satellite did not flush in time")
        else:
            self._writes.put(_WRITE_NOW)
        self._writes.join()

    # -- live view -------------------------------------------------------------------------------------

    def live_trace(self, trace_id: bytes, skip_kept: bool = False) -> pa.Table:
        """Spans of a recent trace from the recall buffer, whether it was kept or not, and the kept spans the
        store does not have yet; with ``skip_kept``, only those of the decided spans of a kept trace (the caller
        reads the store, which has the rest)."""
        return _and_waiting(self.buffer.trace(trace_id, skip_kept), self._unwritten_spans(trace_id))

    def live_trace_split(self, trace_id: bytes) -> tuple[pa.Table, pa.Table]:
        """``live_trace`` in two parts: the buffer's decided spans of a kept trace (copies of what was written
        to the store, or is being written), and the others with the kept spans the store does not have yet
        (``live_trace(skip_kept=True)``: those may be among the copies too)."""
        kept, others = self.buffer.trace_split(trace_id)
        return kept, _and_waiting(others, self._unwritten_spans(trace_id))

    def waiting_spans(
        self, columns: list[str], start_ns: int, end_ns: int, filters: ScanFilter | None = None
    ) -> pa.Table | None:
        """``columns`` (of ``STORED_SPAN_SCHEMA``; ``sample_weight`` is the weight the store will hold) of the
        kept spans not stored yet, starting in ``[start_ns, end_ns)`` and of ``filters``' service, operation
        and kinds; None when ``filters`` asks what only a store answers (attributes, a share of the traces)."""
        if filters is not None and (filters.attributes or filters.trace_share is not None):
            return None
        schema = pa.schema([STORED_SPAN_SCHEMA.field(name) for name in columns])
        with self._unwritten_lock:
            tables = list(self._unwritten)
        if not tables:
            return schema.empty_table()
        # Only the columns read or filtered on: the maps of spans outside the window are never copied.
        needed = list(dict.fromkeys([*columns, "start_ns", "service", "name", "kind"]))
        read = pa.schema([STORED_SPAN_SCHEMA.field(name) for name in needed])
        spans = pa.concat_tables([t.select(needed).cast(read) for t in tables])
        where = filters or ScanFilter()
        mask = in_window(spans, start_ns, end_ns, where.service, where.operation, where.kinds)
        spans = spans.select(columns)
        # A window that holds them all (the usual read of the last minutes): nothing copied.
        return spans if pc.all(mask, skip_nulls=False).as_py() else spans.filter(mask)

    def _unwritten_spans(self, trace_id: bytes) -> pa.Table:
        with self._unwritten_lock:
            tables = list(self._unwritten)
        wanted = pa.scalar(trace_id, TRACE_ID)
        found = [t.filter(pc.equal(t.column("trace_id"), wanted)) for t in tables]
        found = [t for t in found if t.num_rows]
        return pa.concat_tables(found) if found else NO_SPANS

    def recent_spans(
        self,
        include_decided: bool = True,
        newest: int | None = None,
        starting: Sequence[tuple[int, int]] | None = None,
    ) -> pa.Table:
        """Every span the recall buffer holds (``SPAN_SCHEMA``), or about the ``newest`` many."""
        return self.buffer.snapshot(include_decided, newest, starting)

    @property
    def covered_since_ns(self) -> int:
        """The recall buffer holds every span that arrived since this instant."""
        return self.buffer.covered_since_ns

    def recall_figures(self) -> RecallFigures:
        buffer = self.buffer
        return RecallFigures(
            buffer.spans, buffer.nbytes, buffer.undecided_spans, buffer.max_bytes, buffer.peak_bytes
        )

    def aggregate_figures(self) -> AggregateFigures:
        aggregator = self.aggregator
        return AggregateFigures(aggregator.spans_aggregated, aggregator.pending_buckets, aggregator.totals())

    # -- the decision loop -----------------------------------------------------------------------------

    def _decide_loop(self) -> None:
        yield_to_queries()
        next_tick = time.monotonic() + self._tick_s
        next_rollup_drain = time.monotonic() + ROLLUP_DRAIN_INTERVAL_S
        while True:
            with self._intake_lock:
                while not self._intake and not self._stopping.is_set() and not self._flush_requests:
                    if not self._intake_lock.wait(timeout=max(0.0, next_tick - time.monotonic())):
                        break
                self._gather(next_tick)
                pending = list(self._intake)
                self._intake.clear()
                stopping = self._stopping.is_set()
                flushes, self._flush_requests = self._flush_requests, []
            if pending:
                self._take_in(pending)
            if flushes:
                # Everything queued before the request is in the buffer now: decide it all, in this thread.
                self._decide(self.buffer.take_all())
                for done in flushes:
                    done.set()
            if stopping:
                self._decide(self.buffer.take_all())
                self._queue_rollups(final=True)
                self._writes.put(None)
                return
            if time.monotonic() >= next_tick:
                cutoff = time.time_ns() - int(self.settings.decision_wait_s * 1e9)
                self._decide(self.buffer.take_quiet(cutoff))
                next_tick = time.monotonic() + self._tick_s
            if time.monotonic() >= next_rollup_drain:
                self._queue_rollups()
                next_rollup_drain = time.monotonic() + ROLLUP_DRAIN_INTERVAL_S

    def _gather(self, next_tick: float) -> None:
        """With a few spans in the intake, wait a little for more (under the intake lock): counting and packing
        cost about a millisecond a call whatever the spans, so a round per small export (100 spans) took most of
        the decide thread at 23,000 spans/s. Never past the next tick, a flush or a stop."""
        if not self._intake:
            return
        deadline = min(time.monotonic() + GATHER_S, next_tick)
        # Everything queued is in the intake now: this thread alone takes spans out of the count.
        while (
            self._queued_spans < min(GATHER_SPANS, self.settings.max_queued_spans // 2)
            and not self._stopping.is_set()
            and not self._flush_requests
            and self._intake_lock.wait(timeout=max(0.0, deadline - time.monotonic()))
        ):
            pass

    def _take_in(self, pending: list[tuple[pa.RecordBatch, int]]) -> None:
        """Count every span in the aggregates and buffer it, what arrived since the last round in a few large
        groups (one compression of many small batches packs far better than many of one each, and one
        aggregation of many small exports costs a fifth of one each)."""
        # Decoded Arrow compresses about 4x: this keeps a chunk near an eighth of the bound at most.
        chunk_limit = max(1, self.buffer.max_bytes // 2)
        group: list[tuple[pa.RecordBatch, int]] = []
        group_bytes = group_spans = 0
        for batch, arrival_ns in pending:
            if group and (group_bytes + batch.nbytes > chunk_limit or group_spans >= GROUP_SPANS):
                self._buffer_group(group)
                group, group_bytes, group_spans = [], 0, 0
            group.append((batch, arrival_ns))
            group_bytes += batch.nbytes
            group_spans += batch.num_rows
        self._buffer_group(group)

    def _buffer_group(self, group: list[tuple[pa.RecordBatch, int]]) -> None:
        spans = pa.Table.from_batches([batch for batch, _ in group], schema=SPAN_SCHEMA).combine_chunks()
        if spans.num_rows == 0:
            return
        batch = spans.to_batches()[0]
        self.aggregator.add(batch)
        chunks = pack_table(batch, max(arrival for _, arrival in group))  # before the buffer's lock
        self._make_room(sum(chunk.nbytes for chunk in chunks))
        self.buffer.add_chunks(chunks)
        if self.buffer.over_bound():  # one batch alone exceeds the whole bound
            self._decide(self.buffer.take_oldest(0))
        with self._intake_lock:
            self._queued_spans -= spans.num_rows
            self.counters.spans_received += spans.num_rows

    def _make_room(self, incoming_bytes: int) -> None:
        """Forget decided traces first, then decide the oldest undecided early, so the buffer stays under its
        bound with the next chunk in it."""
        if self.buffer.make_room(incoming_bytes):
            return
        bound = self.buffer.max_bytes
        self._decide(self.buffer.take_oldest(max(0, min(bound * 3 // 4, bound - incoming_bytes))))
        self.buffer.make_room(incoming_bytes)  # what that decision retained gives way too

    def _decide(self, spans: pa.Table) -> None:
        try:
            self._decide_taken(spans)
        finally:
            self.buffer.end_decision()

    def _decide_taken(self, spans: pa.Table) -> None:
        if spans.num_rows == 0:
            return
        spans = self._route_late_spans(spans)
        if spans.num_rows == 0:
            return
        # Whole traces are here: the one moment a server half's children can all be found (they often
        # arrive in another request than their server half), before anything is stored.
        spans = separate_shared_spans(spans)
        decided = _unique_ids(spans)
        kept = self.sampler.decide(spans)
        kept_traces = kept.group_by("trace_id").aggregate([("sample_weight", "max")])
        weights = np.full(len(decided), np.nan)
        position = pc.index_in(kept_traces.column("trace_id"), value_set=decided).to_numpy(
            zero_copy_only=False
        )
        weights[position] = kept_traces.column("sample_weight_max").to_numpy()
        self.decisions.remember(decided, weights)
        # Waiting for the store before the buffer marks them kept: a lookup passing over kept spans finds them.
        # Queued whatever retaining does: every table counted as waiting is written, in that order.
        to_write = self._unwritten_push(with_adjusted_counts(kept)) if kept.num_rows else None
        try:
            self.buffer.retain_decided(spans, time.time_ns(), kept_traces.column("trace_id").combine_chunks())
        finally:
            self.counters.traces_decided += len(decided)
            if to_write is not None:
                self.counters.traces_kept += kept_traces.num_rows
                self._writes.put(to_write)

    def _route_late_spans(self, spans: pa.Table) -> pa.Table:
        """Spans of traces decided earlier follow that decision; the rest are returned to be decided."""
        late_ids, late_weights = self.decisions.recall(_unique_ids(spans))
        if len(late_ids) == 0:
            return spans
        is_late = pc.is_in(spans.column("trace_id"), value_set=late_ids)
        late = spans.filter(is_late)
        self.counters.late_spans += late.num_rows
        kept = ~np.isnan(late_weights)
        if kept.any():
            late_kept = with_weights(late, late_ids.filter(pa.array(kept)), late_weights[kept])
            self._writes.put(self._unwritten_push(with_adjusted_counts(late_kept)))
        return spans.filter(pc.invert(is_late))

    def _unwritten_push(self, spans: pa.Table) -> pa.Table:
        """Count ``spans`` as waiting for the store until the writer has written them; they are then put in the
        write queue, whose span tables are written in the same order."""
        with self._unwritten_lock:
            self._unwritten.append(spans)
        return spans

    def _unwritten_pop(self, rows: int) -> None:
        """The first ``rows`` waiting spans are written (or given up on, and counted so)."""
        with self._unwritten_lock:
            while rows > 0 and self._unwritten:
                head = self._unwritten[0]
                if head.num_rows <= rows:
                    self._unwritten.popleft()
                    rows -= head.num_rows
                else:
                    self._unwritten[0] = head.slice(rows)
                    rows = 0

    def _write_loop(self) -> None:
        """Write what the decide loop queues. Kept spans are gathered while they keep coming and written in
        whole ``WRITE_ROWS``; the rest is written after ``WRITE_GATHER_S``, once nothing more can come, or at a
        flush or the end (a queued table counts as done once it is written, so ``flush`` waits for it).
        Rollups are written as they come."""
        yield_to_queries()
        gathered: list[pa.Table] = []
        deadline = 0.0
        # (when, rows) of the span tables taken in the last WRITE_GATHER_S, and their rows
        arrivals: deque[tuple[float, int]] = deque()
        arrived_rows = 0
        while True:
            try:
                wait = min(GATHER_POLL_S, max(0.0, deadline - time.monotonic())) if gathered else None
                item = self._writes.get(timeout=wait)
            except queue.Empty:
                if time.monotonic() >= deadline or self._nothing_coming():
                    self._write_gathered(gathered)
                continue
            if isinstance(item, pa.Table):
                now = time.monotonic()
                arrivals.append((now, item.num_rows))
                arrived_rows += item.num_rows
                while arrivals[0][0] < now - WRITE_GATHER_S:
                    arrived_rows -= arrivals.popleft()[1]
                if not gathered:
                    deadline = now + WRITE_GATHER_S
                gathered.append(item)
                if arrived_rows < GATHER_FLOW_ROWS or now >= deadline:
                    self._write_gathered(gathered)
                elif sum(t.num_rows for t in gathered) >= WRITE_ROWS:
                    self._write_whole_row_groups(gathered)
                    deadline = now + WRITE_GATHER_S
                continue
            try:
                if isinstance(item, RollupRows):
                    self._write_rollups(item.rows)
                    continue
                self._write_gathered(gathered)  # a flush, or the end
                if item is None:
                    return
            finally:
                self._writes.task_done()

    def _nothing_coming(self) -> bool:
        """No span queued or undecided: no kept table can come before new spans arrive."""
        return self._queued_spans == 0 and self.buffer.undecided_spans == 0

    def _write_whole_row_groups(self, gathered: list[pa.Table]) -> None:
        """Write the most whole ``WRITE_ROWS`` the gathered tables hold; what is left stays gathered, as one
        table still owed one ``task_done``."""
        table = pa.concat_tables(gathered)
        whole = table.num_rows - table.num_rows % WRITE_ROWS
        rest = table.slice(whole)
        try:
            self._write_with_retry(table.slice(0, whole))
        finally:
            for _ in range(len(gathered) - (1 if rest.num_rows else 0)):
                self._writes.task_done()
            gathered[:] = [rest] if rest.num_rows else []

    def _write_gathered(self, gathered: list[pa.Table]) -> None:
        """Write the gathered span tables as one, then count each done and forget them."""
        if not gathered:
            return
        try:
            self._write_with_retry(gathered[0] if len(gathered) == 1 else pa.concat_tables(gathered))
        finally:
            for _ in gathered:
                self._writes.task_done()
            gathered.clear()

    # -- aggregator hooks ------------------------------------------------------------------------------

    def _queue_rollups(self, final: bool = False) -> None:
        """Hand the aggregator's closed buckets (all of them when ``final``) to the writer."""
        rows = self.aggregator.drain(final=final)
        if rows.num_rows:
            self._writes.put(RollupRows(rows))

    def _write_rollups(self, rows: pa.Table) -> None:
        """Store drained rollups; on failure the aggregator keeps them and hands them out at the next drain."""
        try:
            with self.aggregator.publishing(rows):
                self.store.write_rollups(rows)
        except Exception:
            self.counters.write_failures += 1
            log.exception("rollup write failed; it is retried at the next drain")

    def _write_with_retry(self, table: pa.Table) -> None:
        """Accepted spans are not dropped on a transient store error, nor for another span's bad value."""
        try:
            report = write_isolating(self.store.write, table, "spans")
        finally:
            self._unwritten_pop(table.num_rows)
        self.counters.spans_stored += report.written
        self.counters.spans_unwritable += report.unwritable
        self.counters.spans_write_failed += report.failed
        if report.unwritable or report.failed:
            self.counters.write_failures += 1


def _and_waiting(buffered: pa.Table, waiting: pa.Table) -> pa.Table:
    """Spans from the buffer and the kept spans waiting for the store (``STORED_SPAN_SCHEMA``): between its
    decision and the buffer marking it kept, a span is in both, and is taken once."""
    if waiting.num_rows == 0:
        return buffered
    if buffered.num_rows:
        waiting = waiting.filter(pc.invert(pc.is_in(span_keys(waiting), value_set=span_keys(buffered))))
    return pa.concat_tables([buffered, waiting.select(SPAN_SCHEMA.names).cast(SPAN_SCHEMA)])


def _unique_ids(spans: pa.Table) -> pa.Array:
    return pc.unique(spans.column("trace_id").combine_chunks())
