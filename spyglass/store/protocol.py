"""The store interface every backend implements (DuckDB by default, ClickHouse when one machine is not enough).

Analysis and the API read only through these verbs and get Arrow tables back, so they never care which
backend answered.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal, Protocol

import pyarrow as pa

from spyglass.model.figures import StorageFigures
from spyglass.model.span_fingerprint import SpanFingerprint
from spyglass.store.top_values import TopValues


class UnwritableRows(ValueError):
    """The store refuses these rows for what they hold: writing the same rows again will fail again.

    Writers isolate such rows instead of retrying (``spyglass.satellite.store_writes``); every other error out of
    a write is taken as transient and retried.
    """


@contextmanager
def refusing_rows(row_errors: tuple[type[BaseException], ...]) -> Iterator[None]:
    """Turn a backend's errors about the data written (DB-API's DataError, IntegrityError, ProgrammingError,
    NotSupportedError; Arrow's conversion errors) into ``UnwritableRows``."""
    try:
        yield
    except row_errors as error:
        raise UnwritableRows(f"{type(error).__name__}: {error}") from error


@dataclass(frozen=True)
class TraceQuery:
    """A trace search. ``service``/``operation`` match the root span; ``attributes`` match any span of the
    trace, on its span attributes or its resource; durations are of the whole trace; ``start_ns`` (inclusive)
    and ``end_ns`` (exclusive) bound the trace's start."""

    service: str | None = None
    operation: str | None = None
    attributes: tuple[tuple[str, str], ...] = ()
    min_duration_ns: int | None = None
    max_duration_ns: int | None = None
    error: bool | None = None
    start_ns: int | None = None
    end_ns: int | None = None
    limit: int = 20
    #: Jaeger semantics: when set, one span of the trace must carry ``service``, ``operation`` and the
    #: duration bounds together (durations are then that span's), and each attribute may be on any span.
    match_any_span: bool = False


@dataclass(frozen=True)
class RollupQuery:
    """A question to the rollups: rows whose bucket overlaps ``[start_ns, end_ns)``, base rows
    (``attr_key=None``) or one attribute's, optionally of one service or operation (and of some span kinds),
    merged to ``resolution_s`` buckets (``None``: as stored)."""

    start_ns: int
    end_ns: int
    service: str | None = None
    operation: str | None = None
    attr_key: str | None = None
    resolution_s: int | None = None
    #: The key columns the asker tells apart (besides the bucket), when it sums over the others: a store may
    #: then answer with those others summed away (empty strings and zeros), far fewer rows. None: every key.
    group_by: tuple[str, ...] | None = None
    #: False when the asker needs each key's count and errors only, not their latency bins (when a version was
    #: first seen): a store may then answer one row per key, ``bin`` 0 standing for all of them, and need not
    #: read the bin lists. A hint, as ``group_by`` is: rows by bin answer it as rightly.
    by_bin: bool = True
    #: Only rows of these span kinds (``SpanKind`` codes); empty: every kind. A client's call and the server
    #: span answering it often share a name: an operation's requests are its server spans alone.
    kinds: tuple[int, ...] = ()


@dataclass(frozen=True)
class ScanFilter:
    """Equality filters for ``scan``: column or ``attributes[key]`` / ``resource[key]`` values."""

    service: str | None = None
    operation: str | None = None
    attributes: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    #: Keep only the traces whose id hashes into this share of the hash range: a uniform sample of whole
    #: traces, the same on every call (explain reads a bounded number of traces from a long window this way).
    trace_share: float | None = None
    #: Only spans of these kinds (``SpanKind`` codes); empty: every kind.
    kinds: tuple[int, ...] = ()


#: What ``Store.expire`` deletes: spans (with the summaries of traces none of whose spans remain), log records,
#: or rollup rows.
ExpiringData = Literal["spans", "logs", "rollups"]


@dataclass(frozen=True)
class RetentionStep:
    """What one short retention transaction did: the oldest slice of some data, deleted or merged."""

    #: Rows deleted (``expire``), or stored rows merged into coarser ones (``downsample_rollups``)
    rows: int
    #: Older data than the cutoff remains after this step: call again (with a pause between, to yield)
    more: bool


@dataclass(frozen=True)
class Compaction:
    """What rewriting a store's file to give the space of deleted rows back to the filesystem did."""

    #: Bytes on disk before and after
    bytes_before: int
    bytes_after: int
    #: The copy of the live rows, from a snapshot: nothing waits for it
    copy_s: float
    #: How long writes waited (the last writes replayed onto the copy, its checkpoint, the files exchanged);
    #: queries wait for the exchange alone
    pause_s: float


#: The resolution of ``ScanFilter.trace_share`` (shares are whole millionths of the hash range).
TRACE_SHARE_SCALE = 1_000_000


class Store(Protocol):
    """Where kept traces live. Writes come whole from the satellite; reads return Arrow tables."""

    def write(self, spans: pa.Table) -> None:
        """Append spans (``STORED_SPAN_SCHEMA``) durably; returns once committed. Spans are not deduplicated:
        the satellite writes each kept trace once."""
        ...

    def trace(self, trace_id: bytes) -> pa.Table:
        """All stored spans of one trace (``STORED_SPAN_SCHEMA``), empty when unknown."""
        ...

    def trace_unless_held(self, trace_id: bytes, held: SpanFingerprint) -> pa.Table | None:
        """``trace``, or None when the store knows it holds exactly the spans ``held`` describes (copies of
        what was written, such as the recall buffer's kept traces), which then answer instead. A store that
        cannot tell reads the spans."""
        ...

    def traces(self, trace_ids: Sequence[bytes]) -> pa.Table:
        """All stored spans of several traces (``STORED_SPAN_SCHEMA``) in no particular order, read together
        (a search's traces: one by one, they cost a read each); unknown ids add nothing."""
        ...

    def find_traces(self, query: TraceQuery) -> pa.Table:
        """Trace summaries (``TRACE_SUMMARY_SCHEMA``) matching the query, newest first, at most ``limit``."""
        ...

    def scan(
        self, columns: list[str], start_ns: int, end_ns: int, filters: ScanFilter | None = None
    ) -> pa.Table:
        """Stored spans whose start is in ``[start_ns, end_ns)``, only the named columns, for analysis."""
        ...

    def attribute_cells(
        self,
        key: str,
        start_ns: int,
        end_ns: int,
        step_ns: int | None,
        filters: ScanFilter | None = None,
        top: TopValues | None = None,
    ) -> pa.Table:
        """Stored spans starting in ``[start_ns, end_ns)`` that carry attribute ``key`` (on the span, else on its
        resource), summed by value, step (``step_ns``; None: the whole window) and latency-sketch bin
        (``spyglass.store.attribute_cells.ATTRIBUTE_CELL_SCHEMA``). ``filters`` names a service and operation.
        With ``top``, the values it does not keep may be summed as its ``other`` value (``top_values``): these
        spans are the last part of the window read, and choose which are kept if ``top`` has not yet."""
        ...

    def calls(self, start_ns: int, end_ns: int) -> pa.Table:
        """Calls between services (``spyglass.store.call_rollups.CALL_SCHEMA``: service pair, kind of edge,
        latency bin, weighted calls and errors) of the spans starting in the window, summed over it. A backend
        that sums calls per minute as it writes (DuckDB) answers for the minutes overlapping the window."""
        ...

    def write_rollups(self, rows: pa.Table) -> None:
        """Append aggregate rows (``ROLLUP_SCHEMA``) durably; rows may repeat keys already stored (they add)."""
        ...

    def rollups(self, query: RollupQuery) -> pa.Table:
        """Rollup rows (``ROLLUP_SCHEMA``) whose bucket overlaps ``[start_ns, end_ns)``, merged by key.

        ``attr_key=None`` selects the base rows (``attr_key == ""``); a key selects that attribute's rows.
        ``resolution_s`` merges the selected buckets into epoch-aligned buckets of that many seconds (a
        multiple of the stored bucket sizes), so long windows come back as few rows; ValueError when it is not
        positive.
        """
        ...

    def write_logs(self, logs: pa.Table) -> None:
        """Append log records (``spyglass.model.log_schema.LOG_SCHEMA``) durably; not deduplicated."""
        ...

    def logs_for_traces(self, trace_ids: list[bytes], limit: int = 1000) -> pa.Table:
        """Stored log records (``LOG_SCHEMA``) of these traces, oldest first, at most ``limit``."""
        ...

    def services(self) -> list[str]:
        """Every service name seen in stored spans, sorted."""
        ...

    def operations(self, service: str) -> list[tuple[str, int]]:
        """``(operation, kind)`` pairs of one service, sorted."""
        ...

    def span_count(self) -> int:
        """How many spans are stored."""
        ...

    def expire(self, data: ExpiringData, before_ns: int, slice_ns: int) -> RetentionStep:
        """Delete the oldest ``slice_ns`` of ``data`` older than ``before_ns`` in one short transaction, so a
        write or a query never waits long: spans by their start (and the summaries of traces whose last span
        started before the slice's end), log records by their time, rollup rows whose bucket ended by then.
        A backend may delete in coarser slices than asked (ClickHouse: whole hours, whole day partitions)."""
        ...

    def downsample_rollups(self, before_ns: int, bucket_s: int, slice_ns: int) -> RetentionStep:
        """Merge the oldest ``slice_ns`` of rollup rows stored in buckets finer than ``bucket_s`` (which must
        divide an hour) and ended before ``before_ns`` into epoch-aligned ``bucket_s`` buckets, summing counts
        and errors per key and sketch bin (merging the sketches, so quantiles keep their accuracy). Readers see
        the rows of a group either before or after, never both: totals stay exact throughout."""
        ...

    def reclaim_space(self) -> Compaction | None:
        """Make the space of deleted rows reusable by the next writes (DuckDB: a checkpoint; ClickHouse's
        background merges do it on their own). A backend whose file only grows (DuckDB) also gives the space
        back when it is a large share of the file, by copying the live rows into a fresh file, and says so."""
        ...

    def storage_figures(self) -> StorageFigures:
        """Bytes on disk and the oldest data held, for status and ``/metrics``."""
        ...

    def close(self) -> None:
        """Flush and release the backend."""
        ...
