"""The ClickHouse store's tables, and the migrations that bring a database up to them.

Spans live in ``otel_traces`` in the layout of the OpenTelemetry Collector's ClickHouse exporter (hex ids,
``'Server'``/``'Error'`` strings, ``Events``/``Links`` nested columns, the same engine, partitions and sort key),
so a table a Collector fills is one spyglass reads, and a table spyglass fills is one Grafana's ClickHouse
plugin reads. spyglass's own facts about a span (its sample weight, the JSON types of non-string attribute
values) are extra columns with defaults that mean "what a Collector would have written": weight 1.0, every
value a string. They are added with ``ADD COLUMN IF NOT EXISTS``, a metadata-only change, so an existing
Collector table gains them without a rewrite and the Collector's inserts (which name their columns) still work.

Everything else is spyglass's own: a per-trace summary table and an operation catalog filled by materialized
views on ``otel_traces`` (so spans a Collector writes are summarized too), the rollups of 100% of spans, and
``otel_logs`` in the exporter's layout for log records correlated with traces.
"""

from __future__ import annotations

from spyglass.model.retention import RetentionPolicy
from spyglass.store.clickhouse_connection import ClickHouseConnection

#: Bumped whenever the statements below change; ``_MIGRATIONS[v]`` upgrades a database from version ``v``.
SCHEMA_VERSION = 2

SPANS = "otel_traces"
TRACE_ID_TS = "otel_traces_trace_id_ts"
SUMMARIES = "spyglass_trace_summaries"
OPERATIONS = "spyglass_operations"
ROLLUPS = "spyglass_rollups"
LOGS = "otel_logs"
VERSIONS = "spyglass_schema_version"

_MAP = "Map(LowCardinality(String), String)"
_TYPES = "Map(LowCardinality(String), Int8)"

# The exporter's table, column for column (exporter/clickhouseexporter/internal/sqltemplates/traces_table.sql,
# bloom-filter variant), with spyglass's extra columns at the end.
_CREATE_SPANS = f"""
CREATE TABLE IF NOT EXISTS {SPANS} (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes {_MAP} CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes {_MAP} CODEC(ZSTD(1)),
    Duration UInt64 CODEC(T64, ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes {_MAP}
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes {_MAP}
    ) CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1
) ENGINE = MergeTree
PARTITION BY toDate(Timestamp)
PRIMARY KEY (ServiceName, SpanName, toDateTime(Timestamp))
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1
"""

# spyglass's columns on otel_traces. Event and link types are plain arrays beside the nested columns (not
# inside them), so a Collector insert that leaves them empty is still valid; readers pad them to size.
_SPAN_EXTRAS = [
    "SampleWeight Float64 DEFAULT 1 CODEC(ZSTD(1))",
    f"SpanAttributeTypes {_TYPES} CODEC(ZSTD(1))",
    f"ResourceAttributeTypes {_TYPES} CODEC(ZSTD(1))",
    f"EventAttributeTypes Array({_TYPES}) CODEC(ZSTD(1))",
    f"LinkAttributeTypes Array({_TYPES}) CODEC(ZSTD(1))",
]

# The exporter's trace-id lookup (first and last span second of each trace), kept for tools that use it.
_CREATE_TRACE_ID_TS = f"""
CREATE TABLE IF NOT EXISTS {TRACE_ID_TS} (
    TraceId String CODEC(ZSTD(1)),
    Start SimpleAggregateFunction(min, DateTime) CODEC(ZSTD(1)),
    End SimpleAggregateFunction(max, DateTime) CODEC(ZSTD(1))
) ENGINE = AggregatingMergeTree
PARTITION BY toStartOfWeek(Start)
ORDER BY (TraceId)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1
"""
_CREATE_TRACE_ID_TS_MV = f"""
CREATE MATERIALIZED VIEW IF NOT EXISTS {TRACE_ID_TS}_mv TO {TRACE_ID_TS}
AS SELECT TraceId, min(Timestamp) AS Start, max(Timestamp) AS End
FROM {SPANS}
WHERE TraceId != ''
GROUP BY TraceId
"""  # noqa: S608

# One row per trace per insert, merged in the background and summed at read (GROUP BY TraceId): what a trace
# search reads instead of ~10 span rows per trace. Root is the min of (is-not-root, start, service, name), so
# it is the earliest root span when the trace has one, and its first element says whether it does.
# SpanIdsXor is the exclusive or of the span ids read as big-endian 64-bit numbers (``span_fingerprint``), over
# the XorSpanCount spans written since the summaries kept it: where that equals SpanCount, the two numbers are
# the trace's fingerprint (summaries written before schema version 2 leave it short for good).
_SUMMARY_SELECT = f"""
SELECT
    TraceId,
    min(toUnixTimestamp64Nano(Timestamp)) AS StartNs,
    max(toUnixTimestamp64Nano(Timestamp) + toInt64(Duration)) AS EndNs,
    max(toUnixTimestamp64Nano(Timestamp)) AS MaxStartNs,
    toUInt64(count()) AS SpanCount,
    toUInt64(countIf(StatusCode IN ('Error', 'STATUS_CODE_ERROR'))) AS ErrorCount,
    max(SampleWeight) AS SampleWeight,
    min(tuple(toUInt8(ParentSpanId != ''), toUnixTimestamp64Nano(Timestamp),
              toString(ServiceName), toString(SpanName))) AS Root,
    groupBitXor(reinterpretAsUInt64(reverse(unhex(SpanId)))) AS SpanIdsXor,
    toUInt64(count()) AS XorSpanCount
FROM {SPANS}
WHERE TraceId != ''
GROUP BY TraceId
"""  # noqa: S608 (table names are the constants above; no value is ever part of these statements)
_SUMMARY_FINGERPRINT = [
    "SpanIdsXor SimpleAggregateFunction(groupBitXor, UInt64) CODEC(ZSTD(1))",
    "XorSpanCount SimpleAggregateFunction(sum, UInt64) CODEC(T64, ZSTD(1))",
]
_CREATE_SUMMARIES = f"""
CREATE TABLE IF NOT EXISTS {SUMMARIES} (
    TraceId String CODEC(ZSTD(1)),
    StartNs SimpleAggregateFunction(min, Int64) CODEC(Delta(8), ZSTD(1)),
    EndNs SimpleAggregateFunction(max, Int64) CODEC(Delta(8), ZSTD(1)),
    MaxStartNs SimpleAggregateFunction(max, Int64) CODEC(Delta(8), ZSTD(1)),
    SpanCount SimpleAggregateFunction(sum, UInt64) CODEC(T64, ZSTD(1)),
    ErrorCount SimpleAggregateFunction(sum, UInt64) CODEC(T64, ZSTD(1)),
    SampleWeight SimpleAggregateFunction(max, Float64) CODEC(ZSTD(1)),
    Root SimpleAggregateFunction(min, Tuple(UInt8, Int64, String, String)) CODEC(ZSTD(1)),
    {_SUMMARY_FINGERPRINT[0]},
    {_SUMMARY_FINGERPRINT[1]},
    INDEX idx_start StartNs TYPE minmax GRANULARITY 1
) ENGINE = AggregatingMergeTree
ORDER BY (TraceId)
"""
_CREATE_SUMMARIES_MV = (
    f"CREATE MATERIALIZED VIEW IF NOT EXISTS {SUMMARIES}_mv TO {SUMMARIES} AS {_SUMMARY_SELECT}"
)

# The services and operations seen, for the Jaeger UI's dropdowns, without a DISTINCT over every span.
_OPERATIONS_SELECT = f"SELECT DISTINCT ServiceName, SpanName, SpanKind FROM {SPANS}"  # noqa: S608
_CREATE_OPERATIONS = f"""
CREATE TABLE IF NOT EXISTS {OPERATIONS} (
    ServiceName LowCardinality(String),
    SpanName LowCardinality(String),
    SpanKind LowCardinality(String)
) ENGINE = ReplacingMergeTree
ORDER BY (ServiceName, SpanName, SpanKind)
"""
_CREATE_OPERATIONS_MV = (
    f"CREATE MATERIALIZED VIEW IF NOT EXISTS {OPERATIONS}_mv TO {OPERATIONS} AS {_OPERATIONS_SELECT}"
)

# Aggregates of 100% of spans (ROLLUP_SCHEMA, one row per sketch bin). Background merges sum rows of equal
# key; readers still sum by key, since merges are eventual. Sorted by attribute key then time, so a window of
# base rollups reads one contiguous range.
_CREATE_ROLLUPS = f"""
CREATE TABLE IF NOT EXISTS {ROLLUPS} (
    bucket_start_ns Int64 CODEC(Delta(8), ZSTD(1)),
    bucket_s Int32,
    service LowCardinality(String),
    operation LowCardinality(String),
    kind Int8,
    attr_key LowCardinality(String),
    attr_value String CODEC(ZSTD(1)),
    bin Int16,
    `count` Int64 CODEC(T64, ZSTD(1)),
    errors Int64 CODEC(T64, ZSTD(1))
) ENGINE = SummingMergeTree((`count`, errors))
ORDER BY (attr_key, bucket_start_ns, service, operation, kind, bucket_s, attr_value, bin)
"""

# The exporter's logs table (logs_table.sql), plus spyglass's observed time and attribute types.
_CREATE_LOGS = f"""
CREATE TABLE IF NOT EXISTS {LOGS} (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TimestampTime DateTime DEFAULT toDateTime(Timestamp),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    TraceFlags UInt8,
    SeverityText LowCardinality(String) CODEC(ZSTD(1)),
    SeverityNumber UInt8,
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    Body String CODEC(ZSTD(1)),
    ResourceSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes {_MAP} CODEC(ZSTD(1)),
    ScopeSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion LowCardinality(String) CODEC(ZSTD(1)),
    ScopeAttributes {_MAP} CODEC(ZSTD(1)),
    LogAttributes {_MAP} CODEC(ZSTD(1)),
    EventName String CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_key mapKeys(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_value mapValues(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_body Body TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8
) ENGINE = MergeTree
PARTITION BY toDate(TimestampTime)
PRIMARY KEY (ServiceName, TimestampTime)
ORDER BY (ServiceName, TimestampTime, Timestamp)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1
"""
_LOG_EXTRAS = [
    "ObservedTimestamp DateTime64(9) DEFAULT 0 CODEC(Delta(8), ZSTD(1))",
    f"LogAttributeTypes {_TYPES} CODEC(ZSTD(1))",
    f"ResourceAttributeTypes {_TYPES} CODEC(ZSTD(1))",
]


def _add_columns(table: str, columns: list[str]) -> str:
    """One ALTER for all of them: each ALTER is a metadata commit (~10 ms), not a rewrite."""
    return f"ALTER TABLE {table} " + ", ".join(f"ADD COLUMN IF NOT EXISTS {column}" for column in columns)


_MIGRATIONS: dict[int, list[str]] = {
    0: [
        _CREATE_SPANS,
        _add_columns(SPANS, _SPAN_EXTRAS),
        _CREATE_TRACE_ID_TS,
        _CREATE_TRACE_ID_TS_MV,
        _CREATE_SUMMARIES,
        _CREATE_SUMMARIES_MV,
        _CREATE_OPERATIONS,
        _CREATE_OPERATIONS_MV,
        _CREATE_ROLLUPS,
        _CREATE_LOGS,
        _add_columns(LOGS, _LOG_EXTRAS),
    ],
    # The summaries keep their spans' fingerprint: the view is made again to fill it (a Collector's insert in
    # between is not summarized; spyglass's own writes wait for the migration).
    1: [
        _add_columns(SUMMARIES, _SUMMARY_FINGERPRINT),
        f"DROP VIEW IF EXISTS {SUMMARIES}_mv",
        _CREATE_SUMMARIES_MV,
    ],
}


def migrate(conn: ClickHouseConnection) -> int:
    """Create or upgrade spyglass's tables in ``conn``'s database; returns the version it found (0: new).

    Every statement is idempotent (``IF NOT EXISTS``), so a migration interrupted half-way is simply run again.
    When ``otel_traces`` already held spans (a Collector filled it) before spyglass's views existed, those
    spans are summarized once, so searches see them too; spans a Collector writes during that one-off
    backfill may be counted twice in their trace's summary.
    """
    conn.command(
        f"CREATE TABLE IF NOT EXISTS {VERSIONS} (version UInt32, applied_at DateTime DEFAULT now()) "
        "ENGINE = MergeTree ORDER BY version"
    )
    found = _current_version(conn)
    if found > SCHEMA_VERSION:
        raise RuntimeError(
            f"ClickHouse database {conn.database!r} has spyglass schema version {found}, newer than this "
            f"spyglass ({SCHEMA_VERSION}); upgrade spyglass"
        )
    if found == SCHEMA_VERSION:
        return found
    had_summaries = _exists(conn, SUMMARIES)
    for version in range(found, SCHEMA_VERSION):
        for statement in _MIGRATIONS[version]:
            conn.command(statement)
    if not had_summaries:
        _backfill(conn)
    conn.command(
        f"INSERT INTO {VERSIONS} (version) VALUES ({{version:UInt32}})",  # noqa: S608
        {"version": SCHEMA_VERSION},
    )
    return found


def retention_ttls(policy: RetentionPolicy) -> dict[str, str]:
    """Each table's TTL expression for a retention policy (its numbers are validated integers, not text from
    outside). Spans, their summaries and logs age by their time; rollup rows by their bucket's end."""
    keep_s, rollups_s = int(policy.retention_s), int(policy.rollup_retention_s)
    return {
        SPANS: f"toDateTime(Timestamp) + toIntervalSecond({keep_s})",
        TRACE_ID_TS: f"Start + toIntervalSecond({keep_s})",
        SUMMARIES: f"toDateTime(intDiv(MaxStartNs, 1000000000)) + toIntervalSecond({keep_s})",
        LOGS: f"TimestampTime + toIntervalSecond({keep_s})",
        ROLLUPS: (
            "toDateTime(intDiv(bucket_start_ns, 1000000000) + toInt64(bucket_s)) "
            f"+ toIntervalSecond({rollups_s})"
        ),
    }


def apply_retention(conn: ClickHouseConnection, policy: RetentionPolicy) -> None:
    """Set every table's TTL to the policy, so ClickHouse deletes expired rows by itself in its merges (day
    partitions of spans and logs are dropped whole: ``ttl_only_drop_parts``), whether or not spyglass runs; the
    retention worker's ``expire`` deletes sooner. Replaces a TTL a Collector's exporter set on its tables. Parts
    already written are not rewritten for it (``materialize_ttl_after_modify = 0``): start stays quick, and
    the worker deletes their expired rows."""
    for table, ttl in retention_ttls(policy).items():
        conn.command(f"ALTER TABLE {table} MODIFY TTL {ttl}", settings={"materialize_ttl_after_modify": 0})


def _current_version(conn: ClickHouseConnection) -> int:
    table = conn.query_arrow(f"SELECT toInt64(max(version)) AS version FROM {VERSIONS}")  # noqa: S608
    return int(table.column("version")[0].as_py() or 0)


def _exists(conn: ClickHouseConnection, table: str) -> bool:
    found = conn.query_arrow(
        "SELECT count() AS n FROM system.tables WHERE database = currentDatabase() AND name = {name:String}",
        {"name": table},
    )
    return int(found.column("n")[0].as_py()) > 0


def _backfill(conn: ClickHouseConnection) -> None:
    """Summarize spans that were in ``otel_traces`` before the views that summarize new inserts existed."""
    spans = conn.query_arrow(f"SELECT count() AS n FROM {SPANS}")  # noqa: S608
    if int(spans.column("n")[0].as_py()) == 0:
        return
    conn.command(f"INSERT INTO {SUMMARIES} {_SUMMARY_SELECT}")
    conn.command(f"INSERT INTO {OPERATIONS} {_OPERATIONS_SELECT}")
