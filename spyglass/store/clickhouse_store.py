"""The ClickHouse store: spans in the OpenTelemetry Collector exporter's ``otel_traces``, for when one machine
is not enough, or when a Collector already ships spans to ClickHouse.

Writes are one Arrow insert per batch; materialized views summarize each insert per trace (whoever inserted:
spyglass or a Collector). Reads push filters, grouping and sums down to ClickHouse and get back Arrow tables
of exactly the protocol's schemas. Tables and their layout: ``spyglass.store.clickhouse_schema``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from clickhouse_connect.driver import exceptions as clickhouse_errors

from spyglass.model.figures import StorageFigures
from spyglass.model.log_schema import LOG_SCHEMA
from spyglass.model.retention import HOUR_S, RetentionPolicy
from spyglass.model.rollups import ROLLUP_KEY, ROLLUP_SCHEMA, TRACE_SUMMARY_SCHEMA, merge_rollups
from spyglass.model.schema import NO_STORED_SPANS, STORED_SPAN_SCHEMA
from spyglass.model.span_fingerprint import SpanFingerprint
from spyglass.model.span_order import by_start
from spyglass.store.attribute_cells import CELL_SPAN_COLUMNS, attribute_cells_of
from spyglass.store.call_rollups import CALL_SPAN_COLUMNS, call_rows
from spyglass.store.clickhouse_columns import (
    LOG_COLUMN_SQL,
    SPAN_COLUMN_SQL,
    hex_ids,
    logs_to_rows,
    select_list,
    spans_to_rows,
)
from spyglass.store.clickhouse_connection import ClickHouseConnection, connect
from spyglass.store.clickhouse_schema import (
    LOGS,
    OPERATIONS,
    ROLLUPS,
    SPANS,
    SUMMARIES,
    apply_retention,
    migrate,
)
from spyglass.store.protocol import (
    ExpiringData,
    RetentionStep,
    RollupQuery,
    ScanFilter,
    TraceQuery,
    refusing_rows,
)
from spyglass.store.rollup_predicates import conform_rollups, rollup_conditions
from spyglass.store.span_predicates import (
    Dialect,
    NamedParams,
    Params,
    as_schema,
    conform,
    one_span_conditions,
    scan_conditions,
    scan_schema,
    summary_conditions,
)
from spyglass.store.top_values import TopValues

#: ClickHouse's errors about the rows written (DB-API classes), as against the server being away.
_ROW_ERRORS: tuple[type[BaseException], ...] = (
    clickhouse_errors.DataError,
    clickhouse_errors.IntegrityError,
    clickhouse_errors.ProgrammingError,
    clickhouse_errors.NotSupportedError,
    pa.ArrowException,
    ValueError,
    TypeError,
)

_SPAN_KIND_CODE = SPAN_COLUMN_SQL["kind"]

HOUR_NS = HOUR_S * 1_000_000_000
#: Partitions of day-partitioned tables (``toDate``) have ids ``YYYYMMDD``.
_DAY_PARTITION = re.compile(r"^\d{8}$")


class _Expiring:
    """How one kind of data is aged in ClickHouse: its table, the time expression (ns) a row expires by, the
    condition selecting rows before a ``{end:Int64}``, and the lightweight deletes that go with it."""

    def __init__(self, table: str, oldest: str, before_end: str, deletes: list[str], by_day: bool) -> None:
        self.table = table
        self.oldest = oldest
        self.before_end = before_end
        self.deletes = deletes
        self.by_day = by_day


_SPANS_BEFORE = "Timestamp < fromUnixTimestamp64Nano({end:Int64})"
_LOGS_BEFORE = "Timestamp < fromUnixTimestamp64Nano({end:Int64})"
_ROLLUPS_BEFORE = (
    "bucket_start_ns < {end:Int64} AND bucket_start_ns + toInt64(bucket_s) * 1000000000 <= {end:Int64}"
)
_EXPIRING = {
    # A partial summary row goes when every span it summarizes has (its latest start is before the end).
    "spans": _Expiring(
        SPANS,
        f"SELECT count() AS n, toUnixTimestamp64Nano(min(Timestamp)) AS oldest FROM {SPANS}",  # noqa: S608
        _SPANS_BEFORE,
        [
            f"DELETE FROM {SPANS} WHERE {_SPANS_BEFORE}",  # noqa: S608
            f"DELETE FROM {SUMMARIES} WHERE MaxStartNs < {{end:Int64}}",  # noqa: S608
        ],
        by_day=True,
    ),
    "logs": _Expiring(
        LOGS,
        f"SELECT count() AS n, toUnixTimestamp64Nano(min(Timestamp)) AS oldest FROM {LOGS}",  # noqa: S608
        _LOGS_BEFORE,
        [f"DELETE FROM {LOGS} WHERE {_LOGS_BEFORE}"],  # noqa: S608
        by_day=True,
    ),
    # Rollup rows age by their bucket's end.
    "rollups": _Expiring(
        ROLLUPS,
        f"SELECT count() AS n, min(bucket_start_ns + toInt64(bucket_s) * 1000000000) AS oldest FROM {ROLLUPS}",  # noqa: S608
        _ROLLUPS_BEFORE,
        [f"DELETE FROM {ROLLUPS} WHERE {_ROLLUPS_BEFORE}"],  # noqa: S608
        by_day=False,
    ),
}


def _attribute_match(params: Params, key: str, value: str) -> str:
    """Span or resource attribute ``key`` equals ``value``; a missing key never matches (not even ``''``)."""
    k, v = params(key, "String"), params(value, "String")
    if value == "":
        return f"((mapContains(SpanAttributes, {k}) AND SpanAttributes[{k}] = {v}) OR (mapContains(ResourceAttributes, {k}) AND ResourceAttributes[{k}] = {v}))"
    return f"(SpanAttributes[{k}] = {v} OR ResourceAttributes[{k}] = {v})"


CLICKHOUSE = Dialect(
    service="ServiceName",
    operation="SpanName",
    kind=_SPAN_KIND_CODE,
    duration="Duration",
    start=lambda op, placeholder: f"Timestamp {op} fromUnixTimestamp64Nano({placeholder})",
    attribute_match=_attribute_match,
    trace_hash="cityHash64(TraceId)",
    # ``root`` is the merged summary rows' min(Root): (0 when a root span was seen, start, service, name).
    root_service_is=lambda placeholder: f"root.1 = 0 AND root.3 = {placeholder}",
    root_operation_is=lambda placeholder: f"root.1 = 0 AND root.4 = {placeholder}",
    trace_duration="end_ns - start_ns",
    error_count="error_count",
    int64_of=lambda expression: f"toInt64({expression})",
    int64="Int64",
    uint64="UInt64",
    string="String",
)


def _spans_sql(traces: str, first_ns: str, last_ns: str) -> str:
    """The spans of the traces ``traces`` (a condition on TraceId) starting between two nanosecond times (SQL
    expressions): the time bounds open only the day partitions the traces span."""
    return (
        f"SELECT {select_list(STORED_SPAN_SCHEMA.names, SPAN_COLUMN_SQL)} FROM {SPANS} WHERE {traces} "  # noqa: S608
        f"AND Timestamp >= fromUnixTimestamp64Nano({first_ns}) AND Timestamp <= fromUnixTimestamp64Nano({last_ns})"
    )


class ClickHouseStore:
    """The ``Store`` protocol over a ClickHouse database (a server over HTTP, or chDB in-process).

    ``url`` is ``http://user:pass@host:8123/database`` (``https://`` too) or ``chdb://PATH[?database=NAME]``;
    the database defaults to ``default``, where the Collector's exporter writes. Opening creates or upgrades
    the tables (``clickhouse_schema.migrate``).
    """

    def __init__(self, url: str, retention: RetentionPolicy | None = None) -> None:
        self._conn: ClickHouseConnection = connect(url)
        self._closed = False
        #: Per target bucket size, where downsampling has merged every row before (see ``downsample_rollups``).
        self._downsampled_through: dict[int, int] = {}
        try:
            migrate(self._conn)
            if retention is not None:
                apply_retention(self._conn, retention)
        except BaseException:
            self._conn.close()
            raise

    @property
    def database(self) -> str:
        return self._conn.database

    # -- writes ------------------------------------------------------------------------------------------

    def write(self, spans: pa.Table) -> None:
        """Insert spans as ``otel_traces`` rows in one insert; the views summarize them in the same insert.

        Raises ``UnwritableRows`` when ClickHouse refuses what the rows hold."""
        with refusing_rows(_ROW_ERRORS):
            spans = conform(spans, STORED_SPAN_SCHEMA, "span table lacks stored columns")
            if spans.num_rows == 0:
                return
            self._conn.insert_arrow(SPANS, spans_to_rows(spans))

    def write_rollups(self, rows: pa.Table) -> None:
        """Append rollup rows as they are; ClickHouse sums equal keys in background merges."""
        rows = conform_rollups(rows)
        if rows.num_rows == 0:
            return
        self._conn.insert_arrow(ROLLUPS, rows)

    def write_logs(self, logs: pa.Table) -> None:
        """Insert log records as ``otel_logs`` rows; ``UnwritableRows`` as ``write``."""
        with refusing_rows(_ROW_ERRORS):
            logs = conform(logs, LOG_SCHEMA, "log table lacks columns")
            if logs.num_rows == 0:
                return
            self._conn.insert_arrow(LOGS, logs_to_rows(logs))

    # -- reads -------------------------------------------------------------------------------------------

    def trace(self, trace_id: bytes) -> pa.Table:
        """All spans of one trace (``traces`` of it alone), by start time."""
        return by_start(self.traces([trace_id]))

    def trace_unless_held(self, trace_id: bytes, held: SpanFingerprint) -> pa.Table | None:
        """``trace``, or None when the summary says the store holds exactly the ``held`` spans (by count and
        span ids, ``span_fingerprint``): then only the trace's summary rows are read. A summary written before
        it kept the fingerprint (or a span without a summary) never stands for the spans."""
        params = NamedParams()
        trace = params(bytes(trace_id).hex(), "String")
        found = self._conn.query_arrow(
            "SELECT min(StartNs) AS first, max(MaxStartNs) AS last, sum(SpanCount) AS spans, "  # noqa: S608
            "sum(XorSpanCount) AS fingerprinted, groupBitXor(SpanIdsXor) AS ids_xor "
            f"FROM {SUMMARIES} WHERE TraceId = {trace}",
            params.values,
        ).to_pylist()
        # An aggregate without GROUP BY answers one row, of zeros when no summary matched.
        summary = found[0]
        spans = int(summary["spans"])
        if not spans:
            return NO_STORED_SPANS
        if spans == int(summary["fingerprinted"]) and SpanFingerprint(spans, int(summary["ids_xor"])) == held:
            return None
        first, last = params(int(summary["first"]), "Int64"), params(int(summary["last"]), "Int64")
        return by_start(self._query_spans(_spans_sql(f"TraceId = {trace}", first, last), params))

    def traces(self, trace_ids: Sequence[bytes]) -> pa.Table:
        """All spans of several traces in one query: their summaries bound the time range read, so only the day
        partitions it spans are opened, and the TraceId bloom filter skips the granules in them that hold none
        of them."""
        wanted = list(dict.fromkeys(bytes(trace_id).hex() for trace_id in trace_ids))
        if not wanted:
            return NO_STORED_SPANS
        params = NamedParams()
        ids = params(wanted, "Array(String)")
        bounds = f"WITH (SELECT (min(StartNs), max(MaxStartNs)) FROM {SUMMARIES} WHERE TraceId IN {ids}) AS bounds "  # noqa: S608
        return self._query_spans(bounds + _spans_sql(f"TraceId IN {ids}", "bounds.1", "bounds.2"), params)

    def _query_spans(self, sql: str, params: NamedParams) -> pa.Table:
        return as_schema(self._conn.query_arrow(sql, params.values), STORED_SPAN_SCHEMA)

    def find_traces(self, query: TraceQuery) -> pa.Table:
        """Summaries of matching traces, newest first, merged by ``GROUP BY TraceId`` in ClickHouse.

        Summary rows are partial (one per trace per insert), so conditions on whole-trace values go in
        ``HAVING``; ``WHERE`` only narrows the traces considered, through ``TraceId IN`` sets that are
        supersets of the answer (the summaries are sorted by TraceId, so those sets prune granules).
        """
        limit = max(0, int(query.limit))
        if limit == 0:
            return TRACE_SUMMARY_SCHEMA.empty_table()
        params = NamedParams()
        candidates: list[str] = []
        having: list[str] = []
        span_window: list[str] = []
        if query.start_ns is not None or query.end_ns is not None:
            window = []
            if query.start_ns is not None:
                start = params(int(query.start_ns), "Int64")
                window.append(f"StartNs >= {start}")
                having.append(f"start_ns >= {start}")
                # Every span of a trace starts at or after the trace's start.
                span_window.append(f"Timestamp >= fromUnixTimestamp64Nano({start})")
            if query.end_ns is not None:
                end = params(int(query.end_ns), "Int64")
                window.append(f"StartNs < {end}")
                having.append(f"start_ns < {end}")
            in_window = f"SELECT TraceId FROM {SUMMARIES} WHERE {' AND '.join(window)}"  # noqa: S608
            candidates.append(f"TraceId IN ({in_window})")
            if query.end_ns is not None:
                latest = self._latest_span_start(in_window, params)
                if latest is None:
                    return TRACE_SUMMARY_SCHEMA.empty_table()
                span_window.append(f"Timestamp <= fromUnixTimestamp64Nano({params(latest, 'Int64')})")

        if query.match_any_span:
            # Jaeger semantics: one span of the trace carries the service, the operation and the duration.
            if query.max_duration_ns is not None and query.max_duration_ns < 0:
                return TRACE_SUMMARY_SCHEMA.empty_table()
            one_span = one_span_conditions(CLICKHOUSE, params, query)
            if one_span:
                candidates.append(_traces_with_span(one_span + span_window))
        # Whole-trace values exist only once the partial summary rows merge: HAVING.
        having += summary_conditions(CLICKHOUSE, params, query)
        for key, value in query.attributes:
            candidates.append(_traces_with_span([_attribute_match(params, key, value), *span_window]))

        where = f"WHERE {' AND '.join(candidates)} " if candidates else ""
        having_sql = f"HAVING {' AND '.join(having)} " if having else ""
        # Only fixed fragments are joined into the statement; every value is a bound parameter.
        sql = (
            f"SELECT {SPAN_COLUMN_SQL['trace_id']} AS trace_id, "  # noqa: S608
            "if(root.1 = 0, root.3, NULL) AS root_service, if(root.1 = 0, root.4, NULL) AS root_operation, "
            "start_ns, end_ns - start_ns AS duration_ns, span_count, error_count, sample_weight FROM ("
            "SELECT TraceId, min(StartNs) AS start_ns, max(EndNs) AS end_ns, "
            "toInt64(sum(SpanCount)) AS span_count, toInt64(sum(ErrorCount)) AS error_count, "
            "max(SampleWeight) AS sample_weight, min(Root) AS root "
            f"FROM {SUMMARIES} {where}GROUP BY TraceId {having_sql}"
            f"ORDER BY start_ns DESC, TraceId LIMIT {params(limit, 'UInt64')})"
        )
        return as_schema(self._conn.query_arrow(sql, params.values), TRACE_SUMMARY_SCHEMA)

    def _latest_span_start(self, in_window: str, params: NamedParams) -> int | None:
        """The latest span start of traces with a summary row in the window: an upper bound for the spans worth
        reading (over all rows of those traces, since a late span's row may start after the window)."""
        sql = f"SELECT maxOrNull(MaxStartNs) AS latest FROM {SUMMARIES} WHERE TraceId IN ({in_window})"  # noqa: S608
        latest = self._conn.query_arrow(sql, params.values).column("latest")[0].as_py()
        return None if latest is None else int(latest)

    def scan(
        self, columns: list[str], start_ns: int, end_ns: int, filters: ScanFilter | None = None
    ) -> pa.Table:
        """Stored spans starting in ``[start_ns, end_ns)``, only ``columns``, filtered in ClickHouse; names are
        checked against the schema because they are the one thing that cannot be a bound parameter."""
        schema = scan_schema(columns, SPAN_COLUMN_SQL)
        params = NamedParams()
        where = scan_conditions(CLICKHOUSE, params, start_ns, end_ns, filters)
        # Column expressions come from the schema (checked above); conditions are fixed fragments.
        sql = f"SELECT {select_list(columns, SPAN_COLUMN_SQL)} FROM {SPANS} WHERE {' AND '.join(where)}"  # noqa: S608
        return as_schema(self._conn.query_arrow(sql, params.values), schema)

    def rollups(self, query: RollupQuery) -> pa.Table:
        """Rollup rows whose bucket overlaps the query's window, summed by key in ClickHouse; base rows when
        ``attr_key`` is None; merged into epoch-aligned ``resolution_s`` buckets when given."""
        params = NamedParams()
        where = rollup_conditions(CLICKHOUSE, params, query)
        resolution_s = query.resolution_s
        if resolution_s is None:
            bucket = "bucket_start_ns AS b_start, bucket_s AS b_s"
        else:
            step_ns = params(int(resolution_s) * 10**9, "Int64")
            bucket = f"bucket_start_ns - bucket_start_ns % {step_ns} AS b_start, toInt32({params(int(resolution_s), 'Int32')}) AS b_s"
        keys = "b_start, b_s, service, operation, kind, attr_key, attr_value, b_bin"
        # Without bins (``by_bin``), one row per key at bin 0.
        b_bin = "bin AS b_bin" if query.by_bin else "toInt16(0) AS b_bin"
        # Fresh aliases (b_start, b_s): ClickHouse lets aliases shadow columns in WHERE, which must see the
        # stored bucket. Fixed fragments only; every value is a parameter.
        sql = (
            f"SELECT {bucket}, toString(service) AS service, toString(operation) AS operation, kind, "  # noqa: S608
            f"toString(attr_key) AS attr_key, attr_value, {b_bin}, "
            "sum(`count`) AS total_count, sum(errors) AS total_errors "
            f"FROM {ROLLUPS} WHERE {' AND '.join(where)} GROUP BY {keys} "
            # Downsampling cancels the rows it merged with negative ones: a key summing to nothing is no row.
            "HAVING total_count != 0 OR total_errors != 0"
        )
        result = self._conn.query_arrow(sql, params.values)
        renamed = result.rename_columns([*ROLLUP_KEY, "count", "errors"])
        return as_schema(renamed, ROLLUP_SCHEMA)

    def logs_for_traces(self, trace_ids: list[bytes], limit: int = 1000) -> pa.Table:
        """Log records of these traces, by time (then span id), at most ``limit``; the TraceId bloom filter
        skips the granules that hold none of them."""
        if not trace_ids or limit <= 0:
            return LOG_SCHEMA.empty_table()
        params = NamedParams()
        wanted = hex_ids(pa.array([bytes(t) for t in trace_ids], pa.binary(16))).to_pylist()
        sql = (
            f"SELECT {select_list(LOG_SCHEMA.names, LOG_COLUMN_SQL)} FROM {LOGS} "  # noqa: S608
            f"WHERE TraceId IN {params(wanted, 'Array(String)')} "
            f"ORDER BY Timestamp, SpanId, ObservedTimestamp LIMIT {params(int(limit), 'UInt64')}"
        )
        return as_schema(self._conn.query_arrow(sql, params.values), LOG_SCHEMA)

    def attribute_cells(
        self,
        key: str,
        start_ns: int,
        end_ns: int,
        step_ns: int | None,
        filters: ScanFilter | None = None,
        top: TopValues | None = None,
    ) -> pa.Table:
        """From the window's spans, summed here."""
        spans = self.scan(CELL_SPAN_COLUMNS, start_ns, end_ns, filters)
        return attribute_cells_of(spans, key, start_ns, step_ns, top)

    def calls(self, start_ns: int, end_ns: int) -> pa.Table:
        """Calls between services, from the window's spans joined here (no call rollups kept in ClickHouse)."""
        return call_rows(self.scan(CALL_SPAN_COLUMNS, start_ns, end_ns))

    def services(self) -> list[str]:
        """Every service seen in stored spans, sorted (from the operation catalog, not the spans)."""
        result = self._conn.query_arrow(
            f"SELECT DISTINCT toString(ServiceName) AS service FROM {OPERATIONS} ORDER BY service"  # noqa: S608
        )
        return [str(name) for name in result.column("service").to_pylist()]

    def operations(self, service: str) -> list[tuple[str, int]]:
        """``(operation, kind)`` pairs of one service, sorted."""
        kind = _SPAN_KIND_CODE
        result = self._conn.query_arrow(
            f"SELECT DISTINCT toString(SpanName) AS name, {kind} AS kind FROM {OPERATIONS} "  # noqa: S608
            "WHERE ServiceName = {service:String} ORDER BY name, kind",
            {"service": service},
        )
        return list(zip(result.column("name").to_pylist(), result.column("kind").to_pylist(), strict=True))

    def span_count(self) -> int:
        """How many spans are stored."""
        result = self._conn.query_arrow(f"SELECT count() AS n FROM {SPANS}")  # noqa: S608
        return int(result.column("n")[0].as_py())

    # -- retention -------------------------------------------------------------------------------------

    def expire(self, data: ExpiringData, before_ns: int, slice_ns: int) -> RetentionStep:
        """Delete the oldest slice of ``data`` older than ``before_ns``: day partitions wholly inside it are
        dropped (instant, and their disk freed at once), the rest goes by a lightweight DELETE (rows masked at
        once, their space freed as parts merge). Each DELETE touches every part holding such rows, so slices
        are at least an hour: steady retention costs ClickHouse at most one delete per table an hour."""
        if slice_ns <= 0:
            raise ValueError("slice_ns must be positive")
        expiring = _EXPIRING[data]
        found = self._conn.query_arrow(expiring.oldest)
        if int(found.column("n")[0].as_py() or 0) == 0:
            return RetentionStep(rows=0, more=False)
        oldest = int(found.column("oldest")[0].as_py())
        if oldest > before_ns or (data != "rollups" and oldest == before_ns):
            return RetentionStep(rows=0, more=False)
        end = min(before_ns, oldest + max(slice_ns, HOUR_NS))
        counted = self._conn.query_arrow(
            f"SELECT count() AS n FROM {expiring.table} WHERE {expiring.before_end}",  # noqa: S608
            {"end": end},
        )
        rows = int(counted.column("n")[0].as_py() or 0)
        if expiring.by_day:
            self._drop_days_before(expiring.table, end)
        for delete in expiring.deletes:
            self._conn.command(delete, {"end": end})
        return RetentionStep(rows=rows, more=end < before_ns)

    def _drop_days_before(self, table: str, end_ns: int) -> None:
        """Drop the day partitions (``YYYYMMDD``) of ``table`` whose whole day is before ``end_ns``. ``toDate``
        cuts days in the server's time zone (up to 14 h off UTC), so a partition goes only once the UTC day
        after it is also over; the DELETE that follows takes the rest."""
        end_day = np.datetime64(end_ns // 86_400_000_000_000 * 86_400, "s").astype("datetime64[D]")
        last_whole_day = end_day - np.timedelta64(1, "D")
        parts = self._conn.query_arrow(
            "SELECT DISTINCT partition_id FROM system.parts "
            "WHERE database = currentDatabase() AND table = {table:String} AND active",
            {"table": table},
        )
        for partition in parts.column("partition_id").to_pylist():
            if not _DAY_PARTITION.match(str(partition)):
                continue
            day = np.datetime64(f"{partition[:4]}-{partition[4:6]}-{partition[6:]}", "D")
            if day < last_whole_day:
                # The id was checked to be eight digits: it is no text from outside.
                self._conn.command(f"ALTER TABLE {table} DROP PARTITION ID '{partition}'")

    def downsample_rollups(self, before_ns: int, bucket_s: int, slice_ns: int) -> RetentionStep:
        """Merge the oldest slice of rollup rows finer than ``bucket_s`` into ``bucket_s`` buckets, in one
        insert: the merged rows, and the fine rows again with their counts negated. The table sums equal keys
        (``SummingMergeTree`` drops a key once it sums to zero) and every reader sums by key, so a reader sees a
        group's fine rows or its merged row, never both (one insert of fewer than ``max_insert_block_size``
        rows is one part, written atomically). Merged fine rows stay on disk until their parts merge, so the
        store remembers how far it got, and looks for the next fine rows that still count only after start
        and after a slice with none."""
        if bucket_s <= 0 or HOUR_S % bucket_s or slice_ns <= 0:
            raise ValueError("bucket_s must divide an hour and slice_ns be positive")
        bucket_ns = bucket_s * 1_000_000_000
        limit = before_ns - before_ns % bucket_ns
        start = self._downsampled_through.get(bucket_s)
        if start is None:
            start = self._next_fine_bucket(bucket_s, 0, limit)
            if start is None:
                self._downsampled_through[bucket_s] = limit
                return RetentionStep(rows=0, more=False)
        if start >= limit:
            return RetentionStep(rows=0, more=False)
        end = min(limit, start + max(bucket_ns, slice_ns - slice_ns % bucket_ns))
        fine = self._conn.query_arrow(
            "SELECT bucket_start_ns AS b_start, bucket_s AS b_s, toString(service) AS service, "  # noqa: S608
            "toString(operation) AS operation, kind, toString(attr_key) AS attr_key, attr_value, bin, "
            f"sum(`count`) AS total_count, sum(errors) AS total_errors FROM {ROLLUPS} "
            "WHERE bucket_s < {bucket_s:Int32} AND bucket_start_ns >= {start:Int64} AND bucket_start_ns < {end:Int64} "
            "GROUP BY b_start, b_s, service, operation, kind, attr_key, attr_value, bin "
            "HAVING total_count != 0 OR total_errors != 0",
            {"bucket_s": bucket_s, "start": start, "end": end},
        )
        fine = as_schema(fine.rename_columns([*ROLLUP_KEY, "count", "errors"]), ROLLUP_SCHEMA)
        if fine.num_rows:
            starts = fine.column("bucket_start_ns").to_numpy()
            coarse = fine.set_column(0, "bucket_start_ns", pa.array(starts - starts % bucket_ns, pa.int64()))
            coarse = coarse.set_column(1, "bucket_s", pa.array(np.full(fine.num_rows, bucket_s), pa.int32()))
            cancelled = (
                fine.set_column(8, "count", pc.negate(fine.column("count")))
                .set_column(9, "errors", pc.negate(fine.column("errors")))
                .cast(ROLLUP_SCHEMA)
            )
            together = pa.concat_tables([merge_rollups(coarse), cancelled])
            self._conn.insert_arrow(
                ROLLUPS, together, settings={"max_insert_block_size": together.num_rows + 1}
            )
        else:  # nothing left to merge here: skip to the next slice that has something, if any
            following = self._next_fine_bucket(bucket_s, end, limit)
            self._downsampled_through[bucket_s] = limit if following is None else following
            return RetentionStep(rows=0, more=following is not None)
        self._downsampled_through[bucket_s] = end
        return RetentionStep(rows=fine.num_rows, more=end < limit)

    def _next_fine_bucket(self, bucket_s: int, from_ns: int, limit_ns: int) -> int | None:
        """The start (aligned to ``bucket_s``) of the first target bucket in ``[from_ns, limit_ns)`` holding
        rows finer than ``bucket_s`` that still count (merged ones sum to nothing until their parts merge)."""
        found = self._conn.query_arrow(
            "SELECT count() AS n, min(b_start) AS first FROM ("  # noqa: S608
            "SELECT bucket_start_ns AS b_start, sum(`count`) AS total_count, sum(errors) AS total_errors "
            f"FROM {ROLLUPS} WHERE bucket_s < {{bucket_s:Int32}} AND bucket_start_ns >= {{start:Int64}} "
            "AND bucket_start_ns < {limit:Int64} "
            "GROUP BY b_start, bucket_s, service, operation, kind, attr_key, attr_value, bin "
            "HAVING total_count != 0 OR total_errors != 0)",
            {"bucket_s": bucket_s, "start": from_ns, "limit": limit_ns},
        )
        if int(found.column("n")[0].as_py() or 0) == 0:
            return None
        first = int(found.column("first")[0].as_py())
        return first - first % (bucket_s * 1_000_000_000)

    def reclaim_space(self) -> None:
        """Nothing to do: dropped partitions are freed at once, deleted rows when their parts merge."""

    def storage_figures(self) -> StorageFigures:
        """Active parts' bytes, and the oldest span, log record and rollup bucket."""
        oldest = self._conn.query_arrow(
            f"SELECT (SELECT if(count() = 0, NULL, toUnixTimestamp64Nano(min(Timestamp))) FROM {SPANS}) AS spans, "  # noqa: S608
            f"(SELECT if(count() = 0, NULL, toUnixTimestamp64Nano(min(Timestamp))) FROM {LOGS}) AS logs, "
            f"(SELECT if(count() = 0, NULL, min(bucket_start_ns)) FROM {ROLLUPS}) AS rollups"
        )

        def value(name: str) -> int | None:
            found = oldest.column(name)[0].as_py()
            return None if found is None else int(found)

        return StorageFigures(
            disk_bytes=self.disk_bytes(),
            free_bytes=0,
            oldest_span_ns=value("spans"),
            oldest_log_ns=value("logs"),
            oldest_rollup_ns=value("rollups"),
        )

    def disk_bytes(self) -> int:
        """Compressed bytes of every active part in the database, for benchmarks and status."""
        result = self._conn.query_arrow(
            "SELECT toInt64(sum(bytes_on_disk)) AS bytes FROM system.parts "
            "WHERE database = currentDatabase() AND active"
        )
        return int(result.column("bytes")[0].as_py() or 0)

    def close(self) -> None:
        """Release the connection (ClickHouse has already made every insert durable)."""
        if self._closed:
            return
        self._closed = True
        self._conn.close()


def _traces_with_span(conditions: list[str]) -> str:
    """A summaries condition: the trace has a span meeting every one of ``conditions`` (fixed fragments)."""
    return f"TraceId IN (SELECT TraceId FROM {SPANS} WHERE {' AND '.join(conditions)})"  # noqa: S608
