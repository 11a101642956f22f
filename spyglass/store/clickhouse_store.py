"""The ClickHouse store: spans in the OpenTelemetry Collector exporter's ``otel_traces``, for when one machine
is not enough, or when a Collector already ships spans to ClickHouse.

Writes are one Arrow insert per batch; materialized views summarize each insert per trace (whoever inserted:
spyglass or a Collector). Reads push filters, grouping and sums down to ClickHouse and get back Arrow tables
of exactly the protocol's schemas. Tables and their layout: ``spyglass.store.clickhouse_schema``.
"""

from __future__ import annotations

import pyarrow as pa
from clickhouse_connect.driver import exceptions as clickhouse_errors

from spyglass.model.log_schema import LOG_SCHEMA
from spyglass.model.rollups import ROLLUP_KEY, ROLLUP_SCHEMA, TRACE_SUMMARY_SCHEMA
from spyglass.model.schema import STORED_SPAN_SCHEMA
from spyglass.store.clickhouse_columns import (
    LOG_COLUMN_SQL,
    SPAN_COLUMN_SQL,
    hex_ids,
    logs_to_rows,
    select_list,
    spans_to_rows,
)
from spyglass.store.clickhouse_connection import ClickHouseConnection, connect
from spyglass.store.clickhouse_schema import LOGS, OPERATIONS, ROLLUPS, SPANS, SUMMARIES, migrate
from spyglass.store.protocol import RollupQuery, ScanFilter, TraceQuery, refusing_rows
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


def _attribute_match(params: Params, key: str, value: str) -> str:
    """Span or resource attribute ``key`` equals ``value``; a missing key never matches (not even ``''``)."""
    k, v = params(key, "String"), params(value, "String")
    if value == "":
        return f"((mapContains(SpanAttributes, {k}) AND SpanAttributes[{k}] = {v}) OR (mapContains(ResourceAttributes, {k}) AND ResourceAttributes[{k}] = {v}))"
    return f"(SpanAttributes[{k}] = {v} OR ResourceAttributes[{k}] = {v})"


CLICKHOUSE = Dialect(
    service="ServiceName",
    operation="SpanName",
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


class ClickHouseStore:
    """The ``Store`` protocol over a ClickHouse database (a server over HTTP, or chDB in-process).

    ``url`` is ``http://user:pass@host:8123/database`` (``https://`` too) or ``chdb://PATH[?database=NAME]``;
    the database defaults to ``default``, where the Collector's exporter writes. Opening creates or upgrades
    the tables (``clickhouse_schema.migrate``).
    """

    def __init__(self, url: str) -> None:
        self._conn: ClickHouseConnection = connect(url)
        self._closed = False
        try:
            migrate(self._conn)
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
        """All spans of one trace, by start time. The trace's summary bounds the time range read, so only the
        day partitions it spans are opened, and the TraceId bloom filter skips most granules in them."""
        params = NamedParams()
        trace_hex = params(bytes(trace_id).hex(), "String")
        sql = (
            f"WITH (SELECT (min(StartNs), max(MaxStartNs)) FROM {SUMMARIES} WHERE TraceId = {trace_hex}) AS bounds "  # noqa: S608
            f"SELECT {select_list(STORED_SPAN_SCHEMA.names, SPAN_COLUMN_SQL)} FROM {SPANS} "
            f"WHERE TraceId = {trace_hex} "
            "AND Timestamp >= fromUnixTimestamp64Nano(bounds.1) AND Timestamp <= fromUnixTimestamp64Nano(bounds.2) "
            "ORDER BY Timestamp, SpanId"
        )
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
        keys = "b_start, b_s, service, operation, kind, attr_key, attr_value, bin"
        # Fresh aliases (b_start, b_s): ClickHouse lets aliases shadow columns in WHERE, which must see the
        # stored bucket. Fixed fragments only; every value is a parameter.
        sql = (
            f"SELECT {bucket}, toString(service) AS service, toString(operation) AS operation, kind, "  # noqa: S608
            "toString(attr_key) AS attr_key, attr_value, bin, "
            "sum(`count`) AS total_count, sum(errors) AS total_errors "
            f"FROM {ROLLUPS} WHERE {' AND '.join(where)} GROUP BY {keys}"
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
