"""The default store: one embedded DuckDB file, zero setup, good for one machine.

Spans live in one columnar ``spans`` table exactly as the Arrow batch gives them; a ``traces`` table keeps one
summary row per trace, upserted on every write, so searches touch 1 row per trace instead of ~10 per trace and
a trace lookup knows which time range (hence which row groups) of ``spans`` to read. Rollups (aggregates of
100% of spans) live in a ``rollups`` table, one row per group and bucket with its sketch as parallel lists.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import threading
import time
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spyglass.model.arrow_numpy import as_numpy
from spyglass.model.equal_runs import equal_runs
from spyglass.model.figures import StorageFigures
from spyglass.model.log_schema import LOG_SCHEMA
from spyglass.model.rollups import (
    ATTRIBUTE_BUCKET_S,
    BASE_BUCKET_S,
    ROLLUP_KEY,
    ROLLUP_SCHEMA,
    TRACE_SUMMARY_SCHEMA,
)
from spyglass.model.schema import NO_STORED_SPANS, STORED_SPAN_SCHEMA, StatusCode
from spyglass.model.shared_spans import separate_shared_spans
from spyglass.model.sketch import BIN_SQL
from spyglass.model.span_fingerprint import SpanFingerprint, span_id_numbers
from spyglass.model.span_order import by_start
from spyglass.store import duckdb_coarse_rollups as coarse
from spyglass.store.attribute_cells import (
    ATTRIBUTE_CELL_SCHEMA,
    attribute_cells_sql,
    read_with_totals,
    summed_cells,
)
from spyglass.store.attribute_slots import (
    BIN_COLUMN,
    OUTCOME_COLUMN,
    SLOT_CODE_READ_TYPE,
    SLOT_COLUMN_TYPE,
    SLOT_TABLES,
    AttributeSlots,
    Slot,
    SlotPlan,
    slot_column,
)
from spyglass.store.call_rollups import (
    CALL_BUCKET_S,
    CALL_KEY,
    CALL_SCHEMA,
    CALL_SPAN_COLUMNS,
    PEER_FROM_ATTRIBUTES,
    call_inputs,
    call_rows_sql,
)
from spyglass.store.duckdb_coarse_rollups import coarse_part
from spyglass.store.duckdb_compaction import (
    COMPACTING_SUFFIX,
    SwappableConnection,
    copy_live_rows,
    remove_leftovers,
)
from spyglass.store.protocol import (
    Compaction,
    ExpiringData,
    RetentionStep,
    RollupQuery,
    ScanFilter,
    TraceQuery,
    refusing_rows,
)
from spyglass.store.rollup_merge import merge_bin_lists
from spyglass.store.rollup_predicates import conform_rollups, rollup_conditions
from spyglass.store.span_predicates import (
    Dialect,
    Params,
    PositionalParams,
    as_schema,
    conform,
    one_span_conditions,
    scan_conditions,
    scan_schema,
    summary_conditions,
)
from spyglass.store.top_values import TopValues, with_last_part
from spyglass.store.trace_ranges import merged_ranges

_log = logging.getLogger(__name__)

#: Bumped whenever the tables below change; ``_MIGRATIONS[v]`` upgrades a file from version ``v``.
SCHEMA_VERSION = 8
#: Rows in each batch of a slot's read (DuckDB's row group): its codes are summed while DuckDB makes the next.
_CELL_READ_ROWS = 122_880

_MAP_TEXT = "MAP(VARCHAR, VARCHAR)"
_MAP_TYPES = "MAP(VARCHAR, TINYINT)"
_EVENT = f"STRUCT(time_ns BIGINT, name VARCHAR, attributes {_MAP_TEXT}, attribute_types {_MAP_TYPES})"
_LINK = (
    "STRUCT(trace_id BLOB, span_id BLOB, trace_state VARCHAR, "
    f"attributes {_MAP_TEXT}, attribute_types {_MAP_TYPES})"
)

# Aggregates of 100% of spans, appended as the satellite drains them; readers sum by key. ROLLUP_SCHEMA has one
# row per sketch bin; here a group's bins of one write share one row (bins, counts, errors as parallel lists),
# which halved the bytes on disk against one row per bin (bench/aggregate.py). No primary key: an upsert would
# cost far more than summing the few duplicate keys (late spans) at read time.
_CREATE_ROLLUPS = """CREATE TABLE IF NOT EXISTS rollups (
    bucket_start_ns BIGINT NOT NULL,
    bucket_s INTEGER NOT NULL,
    service VARCHAR NOT NULL,
    operation VARCHAR NOT NULL,
    kind TINYINT NOT NULL,
    attr_key VARCHAR NOT NULL,
    attr_value VARCHAR NOT NULL,
    bins SMALLINT[] NOT NULL,
    counts BIGINT[] NOT NULL,
    errors BIGINT[] NOT NULL
)"""
# Sorted by group so that runs of equal values compress (RLE, dictionaries); bins sorted inside each list.
_INSERT_ROLLUPS = """
INSERT INTO rollups
SELECT bucket_start_ns, bucket_s, service, operation, kind, attr_key, attr_value,
       list(bin ORDER BY bin), list(count ORDER BY bin), list(errors ORDER BY bin)
FROM incoming_rollups
GROUP BY bucket_start_ns, bucket_s, service, operation, kind, attr_key, attr_value
ORDER BY bucket_start_ns, bucket_s, service, operation, kind, attr_key, attr_value
"""
# Log records that carry trace context (LOG_SCHEMA), looked up by trace id; appended as received.
_CREATE_LOGS = f"""CREATE TABLE IF NOT EXISTS logs (
    time_ns BIGINT NOT NULL,
    observed_time_ns BIGINT NOT NULL,
    trace_id BLOB NOT NULL,
    span_id BLOB,
    severity_number TINYINT NOT NULL,
    severity_text VARCHAR,
    body VARCHAR,
    attributes {_MAP_TEXT},
    attribute_types {_MAP_TYPES},
    resource {_MAP_TEXT},
    resource_types {_MAP_TYPES},
    service VARCHAR NOT NULL,
    scope_name VARCHAR
)"""
# Calls between services per minute, summed from each write (``spyglass.store.call_rollups``): the service graph
# reads these instead of joining every span of its window with its parent.
_CREATE_CALL_ROLLUPS = """CREATE TABLE IF NOT EXISTS call_rollups (
    bucket_start_ns BIGINT NOT NULL,
    parent VARCHAR NOT NULL,
    child VARCHAR NOT NULL,
    uninstrumented BOOLEAN NOT NULL,
    bin SMALLINT NOT NULL,
    calls DOUBLE NOT NULL,
    errors DOUBLE NOT NULL
)"""
_INSERT_CALL_ROLLUPS = "INSERT INTO call_rollups BY NAME " + call_rows_sql("incoming_calls")
# A late write's calls: those of its traces' spans, stored and new, less those of the stored ones.
_ADD_CALLS_AFTER = "INSERT INTO call_rollups BY NAME " + call_rows_sql("calls_after")
_TAKE_CALLS_BEFORE = (
    "INSERT INTO call_rollups BY NAME SELECT * REPLACE (-calls AS calls, -errors AS errors) "  # noqa: S608
    f"FROM ({call_rows_sql('calls_before')})"
)
_CALL_SPANS = pa.schema([STORED_SPAN_SCHEMA.field(name) for name in CALL_SPAN_COLUMNS])
# Each write adds rows for the minutes its spans started in; once this many are added, the minutes touched since
# are merged into one row per key and bin, so an hour stays some 10^5 rows however small the writes.
CALL_ROWS_BEFORE_MERGE = 100_000
_CALLS_IN_MINUTES = "bucket_start_ns >= $first AND bucket_start_ns <= $last"
_MERGED_CALLS = f"""
SELECT bucket_start_ns, parent, child, uninstrumented, bin, sum(calls) AS calls, sum(errors) AS errors
FROM call_rollups WHERE {_CALLS_IN_MINUTES}
GROUP BY ALL HAVING abs(sum(calls)) > 1e-6 ORDER BY bucket_start_ns, parent, child, uninstrumented, bin
"""  # noqa: S608 (fixed text)
_MIGRATIONS: dict[int, list[str]] = {
    1: [_CREATE_ROLLUPS],
    2: [_CREATE_LOGS],
    # A file from before call rollups gets them from the spans it holds.
    3: [
        _CREATE_CALL_ROLLUPS,
        "INSERT INTO call_rollups BY NAME " + call_rows_sql("spans", PEER_FROM_ATTRIBUTES),
    ],
    # The ten-minute rollups (created with every table) start empty and cover time from the next write on.
    4: [],
    # Attribute slots (``attribute_slots``) cover the spans written from the upgrade on.
    5: [
        f"ALTER TABLE spans ADD COLUMN IF NOT EXISTS {BIN_COLUMN} SMALLINT",
        *SLOT_TABLES,
    ],
    # Spans written from the upgrade on keep their outcome; older ones are read from their bin and status.
    6: [f"ALTER TABLE spans ADD COLUMN IF NOT EXISTS {OUTCOME_COLUMN} SMALLINT"],
    # Older summaries have none (NULL stays NULL as writes merge): their traces are always read from the spans.
    7: ["ALTER TABLE traces ADD COLUMN IF NOT EXISTS span_ids_xor UBIGINT"],
}

_CREATE_TABLES = [
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    # Column for column the STORED_SPAN_SCHEMA; ids are BLOB because DuckDB has no fixed-size binary.
    f"""CREATE TABLE IF NOT EXISTS spans (
        trace_id BLOB NOT NULL,
        span_id BLOB NOT NULL,
        parent_span_id BLOB,
        trace_state VARCHAR,
        service VARCHAR NOT NULL,
        name VARCHAR NOT NULL,
        kind TINYINT NOT NULL,
        start_ns BIGINT NOT NULL,
        duration_ns BIGINT NOT NULL,
        status_code TINYINT NOT NULL,
        status_message VARCHAR,
        attributes {_MAP_TEXT},
        attribute_types {_MAP_TYPES},
        resource {_MAP_TEXT},
        resource_types {_MAP_TYPES},
        scope_name VARCHAR,
        scope_version VARCHAR,
        events {_EVENT}[],
        links {_LINK}[],
        sample_weight DOUBLE NOT NULL,
        {BIN_COLUMN} SMALLINT,
        {OUTCOME_COLUMN} SMALLINT
    )""",
    # max_start_ns bounds the spans a trace lookup reads, so zone maps on spans.start_ns prune row groups.
    """CREATE TABLE IF NOT EXISTS traces (
        trace_id BLOB PRIMARY KEY,
        root_service VARCHAR,
        root_operation VARCHAR,
        start_ns BIGINT NOT NULL,
        end_ns BIGINT NOT NULL,
        max_start_ns BIGINT NOT NULL,
        span_count BIGINT NOT NULL,
        error_count BIGINT NOT NULL,
        sample_weight DOUBLE NOT NULL,
        -- with span_count, the trace's stored spans in two numbers (``span_fingerprint``)
        span_ids_xor UBIGINT
    )""",
    # services() and operations() are asked often (Jaeger UI dropdowns): answer them without scanning spans.
    """CREATE TABLE IF NOT EXISTS operations (
        service VARCHAR NOT NULL,
        name VARCHAR NOT NULL,
        kind TINYINT NOT NULL,
        PRIMARY KEY (service, name, kind)
    )""",
    _CREATE_ROLLUPS,
    _CREATE_LOGS,
    # The same columns, a row per group and ten minutes (``duckdb_coarse_rollups``).
    _CREATE_ROLLUPS.replace("EXISTS rollups (", "EXISTS coarse_rollups (", 1),
    coarse.CREATE_SPAN,
    *SLOT_TABLES,
]
# Created apart: a file migrated from version 3 fills it from its spans first (``_MIGRATIONS[3]``).
_CREATE_LATER = [_CREATE_CALL_ROLLUPS]

#: A column the incoming spans carry for their summaries only: each span id as a 64-bit number
#: (``span_fingerprint``), whose exclusive or the trace's summary keeps.
_SPAN_NUMBER = "span_number"
# No ORDER BY: a row group holds ~12 writes, so sorting inside one write does not tighten its start_ns zone
# map, and it cost ~20% of the insert time (measured with bench/query_store.py).
_INSERT_SPANS = f"INSERT INTO spans BY NAME SELECT * EXCLUDE ({_SPAN_NUMBER}) FROM incoming_spans"  # noqa: S608
#: The columns of a stored span (``STORED_SPAN_SCHEMA``), as a select list: the table has the slots' too.
_SPAN_COLUMNS = ", ".join(STORED_SPAN_SCHEMA.names)

#: Trace ids a write looks up in the summaries as a list of values, each in their primary key (about 11 µs an id);
#: past this many, joining them with a scan of the summaries costs less (about 18 ms at a million traces).
_INDEXED_LOOKUPS = 1000
#: Ranges one statement of ``traces`` reads, as many SELECTs under UNION ALL (its text and plan grow with them).
_READS_PER_STATEMENT = 64

# Existing root fields win (a root is written once); a late root fills them in. Times and counts merge.
_UPSERT_TRACES = f"""
INSERT INTO traces
SELECT
    trace_id,
    arg_min(service, start_ns) FILTER (WHERE parent_span_id IS NULL),
    arg_min(name, start_ns) FILTER (WHERE parent_span_id IS NULL),
    min(start_ns),
    max(start_ns + duration_ns),
    max(start_ns),
    count(*),
    count(*) FILTER (WHERE status_code = 2),
    max(sample_weight),
    bit_xor({_SPAN_NUMBER})
FROM incoming_spans
GROUP BY trace_id
ON CONFLICT (trace_id) DO UPDATE SET
    root_service = coalesce(traces.root_service, excluded.root_service),
    root_operation = coalesce(traces.root_operation, excluded.root_operation),
    start_ns = least(traces.start_ns, excluded.start_ns),
    end_ns = greatest(traces.end_ns, excluded.end_ns),
    max_start_ns = greatest(traces.max_start_ns, excluded.max_start_ns),
    span_count = traces.span_count + excluded.span_count,
    error_count = traces.error_count + excluded.error_count,
    sample_weight = greatest(traces.sample_weight, excluded.sample_weight),
    span_ids_xor = xor(traces.span_ids_xor, excluded.span_ids_xor)
"""  # noqa: S608 (fixed text)

#: The same summaries when none of the incoming traces is stored yet.
_INSERT_TRACES = _UPSERT_TRACES[: _UPSERT_TRACES.index("ON CONFLICT")]

_UPSERT_OPERATIONS = """
INSERT INTO operations SELECT DISTINCT service, name, kind FROM incoming_spans
ON CONFLICT DO NOTHING
"""

# Retention. Each statement takes the slice's end; rows older than the slice's start are gone already, so a plain
# upper bound selects the slice (and catches late rows written below it). Zone maps on the time column skip the
# row groups above it. A trace summary goes with the trace's last span.
_OLDEST = {
    "spans": "SELECT min(start_ns) FROM spans",
    "logs": "SELECT min(time_ns) FROM logs",
    # Rollup rows age by their bucket's end, so a coarse bucket is never deleted before its last second expired.
    "rollups": "SELECT min(bucket_start_ns + bucket_s::BIGINT * 1000000000) FROM rollups",
}
_EXPIRE: dict[str, list[str]] = {
    "spans": [
        "DELETE FROM spans WHERE start_ns < $end",
        "DELETE FROM traces WHERE max_start_ns < $end",
        f"DELETE FROM call_rollups WHERE bucket_start_ns + {CALL_BUCKET_S * 1_000_000_000} <= $end",  # noqa: S608
    ],
    "logs": ["DELETE FROM logs WHERE time_ns < $end"],
    "rollups": [
        "DELETE FROM rollups WHERE bucket_start_ns < $end "
        "AND bucket_start_ns + bucket_s::BIGINT * 1000000000 <= $end"
    ],
}

_SUMMARY_COLUMNS = (
    "t.trace_id, t.root_service, t.root_operation, t.start_ns, t.end_ns - t.start_ns AS duration_ns, "
    "t.span_count, t.error_count, t.sample_weight"
)


# One attribute pair matches a span on its span attributes or its resource (text compare).
def _attribute_match(params: Params, key: str, value: str) -> str:
    """Span or resource attribute ``key`` equals ``value``. The value among the map's values first: a list
    compare is about twice as fast as a map lookup, which then runs on the few rows left. Positional
    placeholders: every use of a value is a parameter of its own, in the order of the text."""

    def in_map(column: str) -> str:
        holds = f"list_contains(map_values({column}), {params(value, 'VARCHAR')})"
        return f"({holds} AND {column}[{params(key, 'VARCHAR')}] = {params(value, 'VARCHAR')})"

    return f"({in_map('attributes')} OR {in_map('resource')})"


DUCKDB = Dialect(
    service="service",
    operation="name",
    kind="kind",
    duration="duration_ns",
    start=lambda op, placeholder: f"start_ns {op} {placeholder}",
    attribute_match=_attribute_match,
    trace_hash="hash(trace_id)",
    root_service_is=lambda placeholder: f"t.root_service = {placeholder}",
    root_operation_is=lambda placeholder: f"t.root_operation = {placeholder}",
    trace_duration="t.end_ns - t.start_ns",
    error_count="t.error_count",
    int64_of=lambda expression: f"{expression}::BIGINT",
    int64="BIGINT",
    uint64="UBIGINT",
    string="VARCHAR",
)


#: The newest slice a span-reading search asks first is this share of its window; no slice is narrower.
FIRST_SLICE_DIVISOR = 64
#: A slice after one that found traces is sized to find the rest at the rate seen so far, times this margin.
SLICE_MARGIN = 2.0


def newest_first_slices(start_ns: int, end_ns: int, wanted: int) -> Generator[tuple[int, int], int, None]:
    """``[start_ns, end_ns)`` walked in adjacent slices from the newest, for a search that wants ``wanted``
    traces: each slice is sent back how many it found, and the walk ends once the window is read or enough
    were found. The first slice is 1/64 of the window, each next one ``next_slice_width`` (twice the last
    while nothing is found: a search that finds nothing reads the window about once)."""
    width, upper, read_ns, matched = first_slice_width(start_ns, end_ns), end_ns, 0, 0
    while upper > start_ns and wanted > 0:
        lower = max(start_ns, upper - width)
        found = yield lower, upper
        read_ns, matched, wanted = read_ns + upper - lower, matched + found, wanted - found
        width = next_slice_width(start_ns, end_ns, upper - lower, read_ns, matched, wanted)
        upper = lower


def next_of(walk: Generator[tuple[int, int], int, None], found: int) -> tuple[int, int] | None:
    """The walk's next slice after telling it what the last one found; None when it has ended."""
    try:
        return walk.send(found)
    except StopIteration:
        return None


def first_slice_width(start_ns: int, end_ns: int) -> int:
    return max(1, (end_ns - start_ns) // FIRST_SLICE_DIVISOR)


def next_slice_width(
    start_ns: int, end_ns: int, last_width: int, read_ns: int, found: int, wanted: int
) -> int:
    """The width of the next (older) slice of ``[start_ns, end_ns)``, after ``read_ns`` of it gave ``found``
    traces and ``wanted`` more are needed. Nothing found yet: twice the last, so a search that finds nothing
    reads the window about once. Otherwise enough for the rest at the rate seen, with a margin (up to four
    times the last, never below the first): a value found a few times in the first slice is then mostly
    done in the second instead of the third or fourth."""
    if found == 0:
        return 2 * last_width
    expected = math.ceil(wanted * read_ns / found * SLICE_MARGIN)
    return max(first_slice_width(start_ns, end_ns), min(4 * last_width, expected))


#: The columns a resource repeats on each of its spans.
_RESOURCE_COLUMNS = ("resource", "resource_types")


def with_shared_resources(spans: pa.Table) -> pa.Table:
    """``spans`` with each resource column dictionary-encoded by runs of spans with the same resource (an export
    lists a resource's spans together): DuckDB then converts each run's maps once instead of once per span. Taking
    the resource maps in was the costliest column of a write (1.55 of 2.65 µs of CPU per span for four entries,
    0.15 this way)."""
    columns = {name: spans.column(name) for name in _RESOURCE_COLUMNS}
    if any(column.null_count for column in columns.values()) or spans.num_rows < 2:
        return spans
    shared: dict[str, list[pa.Array]] = {name: [] for name in _RESOURCE_COLUMNS}
    offset = 0
    for length in [len(chunk) for chunk in columns["resource"].chunks]:
        parts = [columns[name].slice(offset, length).combine_chunks() for name in _RESOURCE_COLUMNS]
        run_of_row, first_rows = equal_runs(parts)
        indices, firsts = pa.array(run_of_row), pa.array(first_rows)
        for name, part in zip(_RESOURCE_COLUMNS, parts, strict=True):
            shared[name].append(pa.DictionaryArray.from_arrays(indices, part.take(firsts)))
        offset += length
    for name in _RESOURCE_COLUMNS:
        index = spans.column_names.index(name)
        spans = spans.set_column(index, name, pa.chunked_array(shared[name]))
    return spans


def _newest_start(cur: duckdb.DuckDBPyConnection) -> int | None:
    """The newest start of the stored spans: a slot created now covers the spans starting after it."""
    newest = cur.execute("SELECT max(start_ns) FROM spans").fetchall()[0][0]
    return None if newest is None else int(newest)


def _write_slot_changes(cur: duckdb.DuckDBPyConnection, plan: SlotPlan) -> None:
    """The slots, values and retirements of a write, into the registry's tables (in the write's transaction)."""
    for slot in plan.new_slots:
        # Fixed text: the column's name is the slot's number.
        cur.execute(
            f"ALTER TABLE spans ADD COLUMN IF NOT EXISTS {slot_column(slot.index)} {SLOT_COLUMN_TYPE}"
        )
    if plan.new_slots:
        cur.executemany(
            "INSERT INTO attribute_slots VALUES (?, ?, ?, false)",
            [[slot.index, slot.key, slot.covers_after_ns] for slot in plan.new_slots],
        )
    if plan.new_values:
        rows = pa.table(
            {
                "slot": pa.array([row[0] for row in plan.new_values], pa.int16()),
                "code": pa.array([row[1] for row in plan.new_values], pa.int32()),
                "value": pa.array([row[2] for row in plan.new_values], pa.string()),
            }
        )
        cur.register("incoming_slot_values", rows)
        try:
            cur.execute("INSERT INTO attribute_slot_values SELECT * FROM incoming_slot_values")
        finally:
            cur.unregister("incoming_slot_values")
    for index in plan.retired:
        cur.execute("UPDATE attribute_slots SET retired = true WHERE slot = ?", [index])
        cur.execute("DELETE FROM attribute_slot_values WHERE slot = ?", [index])


def _no_span_carries(cur: duckdb.DuckDBPyConnection, query: TraceQuery) -> bool:
    """Whether some attribute value a search asks is one that no span it could match carries, by the key's slot
    registry: a slot codes every value its key takes, a span's own and its resource's alike, in every span
    written since the slot was made, and those are the spans starting after ``covers_after_ns``
    (``attribute_slots``). Read in the search's snapshot, where a write's values commit with its spans. Without
    it, a search for a value nobody has reads the maps of every span in the window (0.4-0.7 s at 10M spans)."""
    for key, value in query.attributes:
        rows = cur.execute(
            "SELECT covers_after_ns, EXISTS (SELECT 1 FROM attribute_slot_values v "
            "WHERE v.slot = s.slot AND v.value = ?) FROM attribute_slots s WHERE s.key = ? AND NOT s.retired",
            [value, key],
        ).fetchall()
        if not rows:
            continue
        covers_after_ns, coded = rows[0]
        # A trace starts in the window, and so does every span of it the search reads.
        covered = covers_after_ns is None or (query.start_ns is not None and query.start_ns > covers_after_ns)
        if covered and not coded:
            return True
    return False


def _trace_has_span(conditions: list[str]) -> str:
    """A ``traces t`` condition: some span of the trace meets every one of ``conditions`` (fixed fragments)."""
    return f"t.trace_id IN (SELECT trace_id FROM spans WHERE {' AND '.join(conditions)})"  # noqa: S608


#: The key columns of a stored rollup row besides its bucket, in order, each with what stands in for it when a
#: reader sums over it.
_SUMMED_KEY = {"service": "''", "operation": "''", "kind": "0::TINYINT", "attr_key": "''", "attr_value": "''"}


def _told_apart(query: RollupQuery) -> tuple[str, ...]:
    """The key columns a rollup read keeps apart: the bucket's, and what the reader groups by (all by default)."""
    if query.group_by is None:
        return tuple(ROLLUP_KEY[:-1])
    return ("bucket_start_ns", "bucket_s", *(name for name in _SUMMED_KEY if name in query.group_by))


def _key_columns(told_apart: tuple[str, ...]) -> str:
    """The key columns of a rollup SELECT: those told apart by name, constants standing in for the ones the
    reader sums over (not read at all)."""
    return ", ".join(
        name if name in told_apart else f"{constant} AS {name}" for name, constant in _SUMMED_KEY.items()
    )


def _sums_many_rows_into_each(query: RollupQuery) -> bool:
    """Whether a read should sum its bin lists in DuckDB (``_summed_by_bin``) rather than in numpy: when it tells
    only some keys apart and each step it asks for spans at least four stored buckets. Then the answer is far
    smaller than the lists (an hour of ``http.route`` in one step at 10M spans: 80 against 134 ms in numpy; the
    heatmap's 40 s steps of 10 s rows: 144 against 222). Where a step is one stored bucket (an attribute by the
    minute, versions as stored) numpy sums faster (249 against 308 ms, 297 against 499)."""
    if query.group_by is None or query.resolution_s is None:
        return False
    stored_s = ATTRIBUTE_BUCKET_S if query.attr_key is not None else BASE_BUCKET_S
    return query.resolution_s >= 4 * stored_s


def _summed_by_bin(lists_sql: str, told_apart: tuple[str, ...]) -> str:
    """Rows of ``lists_sql`` (key columns and bin lists) summed by the told-apart keys and bin, in DuckDB,
    grouped by those few columns only (grouped by every key column it was ten times slower than numpy)."""
    keys = ", ".join(told_apart)
    # Fixed fragments only: the column names come from ``_told_apart``, the values stay parameters.
    return (
        f"SELECT bucket_start_ns, bucket_s, {_key_columns(told_apart)}, bin, sum(count)::BIGINT AS count, "  # noqa: S608
        f"sum(errors)::BIGINT AS errors FROM (SELECT {keys}, unnest(bins) AS bin, unnest(counts) AS count, "
        f"unnest(errors) AS errors FROM ({lists_sql})) GROUP BY {keys}, bin ORDER BY {keys}, bin"
    )


def _summed_over_bins(lists_sql: str, told_apart: tuple[str, ...]) -> str:
    """Rows of ``lists_sql`` summed by the told-apart keys, every bin into one row at bin 0: only each list's
    sums are read, never the bins (a version's first minute over an hour at 10M spans: 28,000 rows of sums
    instead of 4.9 million of bins)."""
    keys = ", ".join(told_apart)
    # Fixed fragments only: the column names come from ``_told_apart``, the values stay parameters.
    return (
        f"SELECT bucket_start_ns, bucket_s, {_key_columns(told_apart)}, 0::SMALLINT AS bin, "  # noqa: S608
        "sum(list_sum(counts))::BIGINT AS count, sum(list_sum(errors))::BIGINT AS errors "
        f"FROM ({lists_sql}) GROUP BY {keys} ORDER BY {keys}"
    )


def _rollback(cur: duckdb.DuckDBPyConnection) -> None:
    """Roll back without hiding the error that got us here (the transaction may already be aborted)."""
    with contextlib.suppress(duckdb.Error):
        cur.execute("ROLLBACK")


#: DuckDB's errors about the rows written, as against the file or the machine (``OperationalError``: I/O, memory).
_ROW_ERRORS: tuple[type[BaseException], ...] = (
    duckdb.DataError,
    duckdb.IntegrityError,
    duckdb.ProgrammingError,
    duckdb.NotSupportedError,
    pa.ArrowException,
    ValueError,
    TypeError,
)

_COLUMN_SQL = {name: '"' + name + '"' for name in STORED_SPAN_SCHEMA.names}

# Compaction (``duckdb_compaction``): when free blocks are more than this share of a file at least this large
# (smaller files are not worth a copy), ``reclaim_space`` copies the live rows into a fresh file.
COMPACT_FREE_SHARE = 0.25
COMPACT_MIN_BYTES = 64 * 2**20
#: Writes replayed onto the copy outside the writer's lock, in rounds, before the last ones under it.
_CATCH_UP_ROUNDS = 3
#: Times the swap is tried: taking the writer's lock, a write recorded since the last catch-up sends it back to
#: catch up without the lock (the last try replays it under the lock).
_SWAP_ATTEMPTS = 5
#: A round this short (writes) ends the catch-up: the rest is replayed under the lock.
_FEW_WRITES = 4
#: Rows of the writes recorded during a copy held in memory at most; beyond, the compaction is given up.
MAX_REPLAY_ROWS = 2_000_000
#: How long the exchange of the files waits for queries still reading the old one before it is given up.
SWAP_READER_WAIT_S = 2.0
#: DuckDB's row group. A write of at least this many rows puts its whole row groups compressed into the file when
#: it commits, not into the write-ahead log (which a checkpoint then writes again): the satellite gathers kept
#: spans into writes this large when they come fast.
ROW_GROUP_ROWS = 122_880
#: Spans written that way before the store checkpoints. A checkpoint rewrites what was written straight into the
#: file since the last one and frees the first copy for later writes: this bounds that free space (about 45 bytes
#: a span, 90 MB) and the work left to the checkpoint at close, as DuckDB's log size bounds it for small writes.
CHECKPOINT_AFTER_DIRECT_ROWS = 2_000_000


class DuckDBStore:
    """The ``Store`` protocol over one DuckDB file. One writer at a time; any number of concurrent readers.

    Every call opens its own cursor (a cheap DuckDB connection to the same database), so readers in other
    threads never wait for the writer; writes are serialized by a lock so the summary upserts never conflict.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        memory_limit_mb: int = 1024,
        threads: int = 2,
        checkpoint_threshold_mb: int = 256,
        compact_free_share: float = COMPACT_FREE_SHARE,
        compact_min_bytes: int = COMPACT_MIN_BYTES,
    ) -> None:
        self.path = str(path)
        self._options: dict[str, Any] = {
            "memory_limit_mb": memory_limit_mb,
            "threads": threads,
            "checkpoint_threshold_mb": checkpoint_threshold_mb,
        }
        self.compact_free_share = compact_free_share
        self.compact_min_bytes = compact_min_bytes
        # A larger WAL before each checkpoint than DuckDB's 16 MB default: checkpoints then write whole row
        # groups, which made writes ~40% faster and the file ~25% smaller; the cost is a longer WAL replay
        # after a crash.
        config: dict[str, Any] = {
            "memory_limit": f"{int(memory_limit_mb)}MB",
            "threads": int(threads),
            "checkpoint_threshold": f"{int(checkpoint_threshold_mb)}MB",
        }
        self._config = config
        if self.path != ":memory:":
            remove_leftovers(self.path)
        self._conn = SwappableConnection(duckdb.connect(self.path, config=config))
        self._write_lock = threading.Lock()
        #: Retention's deletions and merges and compaction, one at a time (all run in the retention thread).
        self._maintenance_lock = threading.Lock()
        #: During a compaction's copy, the writes committed since its snapshot, to replay onto the copy.
        self._replay: list[tuple[str, pa.Table]] | None = None
        self._replay_rows = 0
        #: ``expire`` deleted rows since the last ``reclaim_space``: only then is a compaction considered.
        self._expired_since_reclaim = False
        #: Span rows written straight into the file (past the write-ahead log) since the last checkpoint.
        self._direct_rows = 0
        #: Per kind of data, where retention's last slice ended: everything older is deleted.
        self._expired_through: dict[str, int] = {}
        #: The first and last minute holding call rows written since they were last merged, and how many.
        self._unmerged_calls: tuple[int, int] | None = None
        self._unmerged_call_rows = 0
        self._closed = False
        try:
            self._create_schema()
            #: The attribute slots the file holds (``attribute_slots``); changed under the writer's lock.
            self._slots = self._load_slots()
        except BaseException:
            self._conn.close()
            raise

    # -- schema ------------------------------------------------------------------------------------------

    def _create_schema(self) -> None:
        """Create the tables if absent and bring an older file up to ``SCHEMA_VERSION``."""
        with self._conn.cursor() as cur:
            cur.execute("BEGIN TRANSACTION")
            try:
                for statement in _CREATE_TABLES:
                    cur.execute(statement)
                version = cur.execute("SELECT max(version) FROM schema_version").fetchall()[0][0]
                if version is None:
                    for statement in _CREATE_LATER:
                        cur.execute(statement)
                    cur.execute("INSERT INTO schema_version VALUES (?)", [SCHEMA_VERSION])
                elif version > SCHEMA_VERSION:
                    raise RuntimeError(
                        f"{self.path} has store schema version {version}, newer than this spyglass "
                        f"({SCHEMA_VERSION}); upgrade spyglass"
                    )
                else:
                    while version < SCHEMA_VERSION:
                        for statement in _MIGRATIONS[version]:
                            cur.execute(statement)
                        version += 1
                    cur.execute("UPDATE schema_version SET version = ?", [SCHEMA_VERSION])
                cur.execute("COMMIT")
            except BaseException:
                _rollback(cur)
                raise

    def _load_slots(self) -> AttributeSlots:
        with self._conn.cursor() as cur:
            slots = cur.execute("SELECT slot, key, covers_after_ns, retired FROM attribute_slots").fetchall()
            values = cur.execute("SELECT slot, code, value FROM attribute_slot_values").fetchall()
        return AttributeSlots.from_rows(slots, values)

    # -- writes ------------------------------------------------------------------------------------------

    def write(self, spans: pa.Table) -> None:
        """Append spans and merge their trace summaries in one transaction; committed (WAL) on return.

        Raises ``UnwritableRows`` when DuckDB refuses what the rows hold (nothing of them is written then)."""
        with refusing_rows(_ROW_ERRORS):
            spans = conform(spans, STORED_SPAN_SCHEMA, "span table lacks stored columns", cast=False)
            if spans.num_rows == 0:
                return
            if spans.num_rows >= ROW_GROUP_ROWS:
                # From chunks of unequal sizes DuckDB inserts in parallel and merges the partial row groups, which
                # the next checkpoint rewrites (four writes of 245,760 spans: 121 of 257 blocks left free); from
                # one chunk it appends whole row groups in order, which stay where they were written (none free).
                spans = spans.combine_chunks()
            with self._write_lock, self._conn.cursor() as cur:
                cur.execute("BEGIN TRANSACTION")
                try:
                    incoming = with_shared_resources(spans)
                    plan = self._slots.plan(incoming, lambda: _newest_start(cur))
                    for name, column in plan.columns.items():
                        incoming = incoming.append_column(name, column)
                    incoming = incoming.append_column(
                        _SPAN_NUMBER, pa.array(span_id_numbers(incoming.column("span_id")), pa.uint64())
                    )
                    cur.register("incoming_spans", incoming)
                    _write_slot_changes(cur, plan)
                    stored = self._stored_calls_of_incoming(cur, spans)
                    cur.execute(_INSERT_SPANS)
                    calls = self._insert_calls(cur, spans, stored)
                    # No incoming trace is stored (the usual write: whole traces, once): nothing to merge, and a
                    # plain insert costs 4-8 ms where the upsert's conflict handling took 28 at a million traces.
                    cur.execute(_UPSERT_TRACES if stored is not None else _INSERT_TRACES)
                    cur.execute(_UPSERT_OPERATIONS)
                    cur.execute("COMMIT")
                except BaseException:
                    _rollback(cur)
                    raise
                finally:
                    cur.unregister("incoming_spans")
                self._slots.apply(plan)
                self._record("write", spans)
                self._note_calls(cur, spans, calls)
                if spans.num_rows >= ROW_GROUP_ROWS:
                    self._checkpoint_direct_writes(cur, spans.num_rows)

    def _checkpoint_direct_writes(self, cur: duckdb.DuckDBPyConnection, rows: int) -> None:
        """Count rows written straight into the file; checkpoint past ``CHECKPOINT_AFTER_DIRECT_ROWS`` (under the
        writer's lock). The spans are committed already: a failed checkpoint is logged, and tried again after
        the next such write, never failing this one (it would be retried and its spans written twice)."""
        self._direct_rows += rows
        if self._direct_rows < CHECKPOINT_AFTER_DIRECT_ROWS:
            return
        try:
            cur.execute("CHECKPOINT").fetchall()
        except duckdb.Error:
            _log.warning("a checkpoint after large writes failed; tried again after the next", exc_info=True)
            return
        self._direct_rows = 0

    @staticmethod
    def _stored_calls_of_incoming(cur: duckdb.DuckDBPyConnection, spans: pa.Table) -> pa.Table | None:
        """The stored spans (``CALL_SPAN_COLUMNS``) of the incoming traces that have some stored already (late
        spans); None when none has (the usual write: whole traces, once). The summaries bound the span starts.
        Up to a thousand ids are looked up as a list of values, which DuckDB answers from the summaries' primary
        key (300 ids: 6 ms at a million traces, where joining them with the summaries scanned those in 19)."""
        ids = pc.unique(spans.column("trace_id"))
        if len(ids) <= _INDEXED_LOOKUPS:
            wanted, params = ", ".join("?" * len(ids)), [bytes(trace_id) for trace_id in ids.to_pylist()]
        else:
            wanted, params = "SELECT trace_id FROM incoming_spans", []
        first, last, count = cur.execute(
            "SELECT min(start_ns), max(max_start_ns), count(*) FROM traces "  # noqa: S608 (placeholders)
            f"WHERE trace_id IN ({wanted})",
            params,
        ).fetchall()[0]
        if not count:
            return None
        columns = ", ".join(CALL_SPAN_COLUMNS)
        stored = cur.sql(
            f"SELECT {columns} FROM spans WHERE start_ns BETWEEN ? AND ? "  # noqa: S608 (fixed names)
            "AND trace_id IN (SELECT trace_id FROM incoming_spans)",
            params=[int(first), int(last)],
        ).to_arrow_table()
        return as_schema(stored, _CALL_SPANS)

    @staticmethod
    def _insert_calls(cur: duckdb.DuckDBPyConnection, spans: pa.Table, stored: pa.Table | None) -> int:
        """Add the calls the incoming spans make; rows added. A late span can complete a call with a span
        written before (its parent, its child), or make a client's call instrumented: for traces partly stored,
        the calls of all their spans are added and those counted when the stored part was written are taken
        away (rows of negative weight), so the sums stay those of the whole traces."""
        if stored is None:
            cur.register("incoming_calls", call_inputs(spans))
            try:
                return int(cur.execute(_INSERT_CALL_ROLLUPS).fetchall()[0][0])
            finally:
                cur.unregister("incoming_calls")
        incoming = as_schema(spans.select(CALL_SPAN_COLUMNS), _CALL_SPANS)
        # A late child of a Zipkin shared server half names the shared id (the client half) as its parent: the
        # whole trace is read with one span per id, as when it was decided and as readers see it.
        after = as_schema(separate_shared_spans(pa.concat_tables([stored, incoming])), _CALL_SPANS)
        cur.register("calls_after", call_inputs(after))
        cur.register("calls_before", call_inputs(as_schema(separate_shared_spans(stored), _CALL_SPANS)))
        try:
            added = cur.execute(_ADD_CALLS_AFTER).fetchall()
            taken = cur.execute(_TAKE_CALLS_BEFORE).fetchall()
        finally:
            cur.unregister("calls_after")
            cur.unregister("calls_before")
        return int(added[0][0]) + int(taken[0][0])

    def _note_calls(self, cur: duckdb.DuckDBPyConnection, spans: pa.Table, rows: int) -> None:
        """Remember the minutes a write added call rows to; merge them once ``CALL_ROWS_BEFORE_MERGE`` rows were
        added (under the writer's lock, in one transaction: a reader sees the rows before or after)."""
        if rows == 0:
            return
        bucket_ns = CALL_BUCKET_S * 1_000_000_000
        span_starts = pc.min_max(spans.column("start_ns")).as_py()
        first = span_starts["min"] - span_starts["min"] % bucket_ns
        last = span_starts["max"] - span_starts["max"] % bucket_ns
        if self._unmerged_calls is not None:
            first, last = min(first, self._unmerged_calls[0]), max(last, self._unmerged_calls[1])
        self._unmerged_calls = (first, last)
        self._unmerged_call_rows += rows
        if self._unmerged_call_rows < CALL_ROWS_BEFORE_MERGE:
            return
        minutes = {"first": first, "last": last}
        try:
            self._merge_calls(cur, minutes)
        except duckdb.Error:
            # The spans are committed already: a failed merge must not fail their write (it would be retried
            # and the spans written twice). The rows stay as written, summed at read; the next merge retries.
            _log.warning("merging call rollups failed; they stay unmerged", exc_info=True)
            return
        self._unmerged_calls, self._unmerged_call_rows = None, 0

    @staticmethod
    def _merge_calls(cur: duckdb.DuckDBPyConnection, minutes: dict[str, int]) -> None:
        """One row per key and bin for the call rows of these minutes, in one transaction."""
        cur.execute("BEGIN TRANSACTION")
        try:
            merged = cur.sql(_MERGED_CALLS, params=minutes).to_arrow_table()
            cur.execute(f"DELETE FROM call_rollups WHERE {_CALLS_IN_MINUTES}", minutes)  # noqa: S608
            cur.register("merged_calls", merged)
            try:
                cur.execute("INSERT INTO call_rollups BY NAME SELECT * FROM merged_calls")
            finally:
                cur.unregister("merged_calls")
            cur.execute("COMMIT")
        except BaseException:
            _rollback(cur)
            raise

    def write_rollups(self, rows: pa.Table) -> None:
        """Append rollup rows, one stored row per group with its bins as lists."""
        rows = conform_rollups(rows)
        if rows.num_rows == 0:
            return
        starts = rows.column("bucket_start_ns")
        oldest, newest = int(pc.min(starts).as_py()), int(pc.max(starts).as_py())
        with self._write_lock, self._conn.cursor() as cur:
            cur.register("incoming_rollups", rows)
            cur.execute("BEGIN TRANSACTION")
            try:
                cur.execute(_INSERT_ROLLUPS)
                coarse.after_write(cur, oldest, newest, time.time_ns())
                cur.execute("COMMIT")
            except BaseException:
                _rollback(cur)
                raise
            finally:
                cur.unregister("incoming_rollups")
            self._record("write_rollups", rows)

    def write_logs(self, logs: pa.Table) -> None:
        """Append log records (``LOG_SCHEMA``) in one statement; ``UnwritableRows`` as ``write``."""
        with refusing_rows(_ROW_ERRORS):
            logs = conform(logs, LOG_SCHEMA, "log table lacks columns")
            if logs.num_rows == 0:
                return
            with self._write_lock, self._conn.cursor() as cur:
                cur.register("incoming_logs", logs)
                try:
                    cur.execute("INSERT INTO logs BY NAME SELECT * FROM incoming_logs")
                finally:
                    cur.unregister("incoming_logs")
                self._record("write_logs", logs)

    def _record(self, verb: str, rows: pa.Table) -> None:
        """Under the writer's lock, once a write committed: keep it for the compaction under way to replay onto
        its copy (the same call, in the same order, makes the same rows, call sums and summaries)."""
        if self._replay is None:
            return
        self._replay.append((verb, rows))
        self._replay_rows += rows.num_rows
        if self._replay_rows > MAX_REPLAY_ROWS:
            self._replay = None  # the compaction sees it and gives up

    # -- reads -------------------------------------------------------------------------------------------

    def logs_for_traces(self, trace_ids: list[bytes], limit: int = 1000) -> pa.Table:
        """Log records of these traces, by time (then span id), at most ``limit``. No index: a scan of the
        trace_id column, which DuckDB does at hundreds of millions of rows a second."""
        if not trace_ids or limit <= 0:
            return LOG_SCHEMA.empty_table()
        wanted = pa.table({"trace_id": pa.array([bytes(t) for t in trace_ids], pa.binary())})
        with self._conn.cursor() as cur:
            cur.register("wanted_traces", wanted)
            try:
                result = cur.sql(
                    "SELECT * FROM logs WHERE trace_id IN (SELECT trace_id FROM wanted_traces) "
                    "ORDER BY time_ns, span_id NULLS FIRST, observed_time_ns LIMIT ?",
                    params=[int(limit)],
                ).to_arrow_table()
            finally:
                cur.unregister("wanted_traces")
        return as_schema(result, LOG_SCHEMA)

    def trace(self, trace_id: bytes) -> pa.Table:
        """All spans of one trace (``traces`` of it alone), by start time: ordered here, not by DuckDB, as an
        ORDER BY made the read about twice as slow (a sort operator and its buffers for a few rows)."""
        return by_start(self.traces([trace_id]))

    def trace_unless_held(self, trace_id: bytes, held: SpanFingerprint) -> pa.Table | None:
        """``trace``, or None when the summary says the store holds exactly the ``held`` spans: then only the
        summary is read (0.4 ms at 10M spans, where reading the spans takes another 3-4)."""
        with self._conn.cursor() as cur:
            found = cur.execute(
                "SELECT trace_id, start_ns, max_start_ns, span_count, span_ids_xor FROM traces WHERE trace_id = ?",
                [bytes(trace_id)],
            ).fetchall()
            if not found:
                return NO_STORED_SPANS
            trace, start_ns, max_start_ns, spans, ids_xor = found[0]
            if ids_xor is not None and SpanFingerprint(spans, ids_xor) == held:
                return None
            return by_start(self._spans_of(cur, [(trace, start_ns, max_start_ns)]))

    def traces(self, trace_ids: Sequence[bytes]) -> pa.Table:
        """All spans of several traces, in one statement: each trace's summary bounds where its spans start,
        and ranges with few spans between them are read as one (``trace_ranges``). A search's 20 traces at 10M
        spans: 14 ms, against 82 ms one by one."""
        wanted = list(dict.fromkeys(bytes(trace_id) for trace_id in trace_ids))
        with self._conn.cursor() as cur:
            found: list[tuple[bytes, int, int]] = []
            for first in range(0, len(wanted), _INDEXED_LOOKUPS):
                chunk = wanted[first : first + _INDEXED_LOOKUPS]
                found += cur.execute(
                    "SELECT trace_id, start_ns, max_start_ns FROM traces "  # noqa: S608 (placeholders only)
                    f"WHERE trace_id IN ({', '.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
            return self._spans_of(cur, found)

    @staticmethod
    def _spans_of(cur: duckdb.DuckDBPyConnection, found: list[tuple[bytes, int, int]]) -> pa.Table:
        """The spans of traces ``(trace_id, first start, last start)`` from their summaries, unordered."""
        if not found:
            return NO_STORED_SPANS
        spans_between = None
        if len(found) > 1:
            # About how many spans start across the traces' window: the summaries' counts, by their zone maps.
            spans_between = cur.execute(
                "SELECT sum(span_count) FROM traces WHERE start_ns BETWEEN ? AND ?",
                [min(start for _, start, _ in found), max(end for _, _, end in found)],
            ).fetchall()[0][0]
        ranges = merged_ranges(found, None if spans_between is None else int(spans_between))
        parts: list[pa.Table] = []
        for first in range(0, len(ranges), _READS_PER_STATEMENT):
            selects, params = [], []
            for part in ranges[first : first + _READS_PER_STATEMENT]:
                marks = ", ".join("?" * len(part.trace_ids))
                # The span columns only, not the latency bins and attribute slots beside them (33 more
                # columns to read: 3.7 against 3.4 ms p50 for a trace at 10M spans).
                selects.append(
                    f"SELECT {_SPAN_COLUMNS} FROM spans "  # noqa: S608 (fixed columns, placeholders)
                    f"WHERE trace_id IN ({marks}) AND start_ns BETWEEN ? AND ?"
                )
                params += [*part.trace_ids, part.start_ns, part.end_ns]
            parts.append(
                as_schema(
                    cur.sql(" UNION ALL ".join(selects), params=params).to_arrow_table(),
                    STORED_SPAN_SCHEMA,
                )
            )
        # One statement's table as it is (a lookup by id): a concatenation costs a tenth of a millisecond.
        return parts[0] if len(parts) == 1 else pa.concat_tables(parts)

    def find_traces(self, query: TraceQuery) -> pa.Table:
        """Summaries of matching traces, newest first. A search that reads spans (an attribute, Jaeger's
        one-span conditions) asks the newest slice of the window first and older, wider slices only while it
        lacks ``limit`` traces: the slices partition the traces by start, so the newest ``limit`` of the
        first slices are the newest of all. Every value, attribute keys included, is a bound parameter."""
        limit = max(0, int(query.limit))
        reads_spans = bool(query.attributes) or (
            query.match_any_span and bool(one_span_conditions(DUCKDB, PositionalParams(), query))
        )
        found: list[pa.Table] = [TRACE_SUMMARY_SCHEMA.empty_table()]
        with self._conn.cursor() as cur:
            cur.execute("BEGIN TRANSACTION")  # every slice from one snapshot; nothing is written
            try:
                bounds = self._start_bounds(cur, query.start_ns, query.end_ns)
                if bounds is None or limit == 0 or _no_span_carries(cur, query):
                    return found[0]
                first, end = bounds[0], bounds[1] + 1
                if reads_spans:
                    slices = newest_first_slices(first, end, limit)
                    window = next(slices, None)
                    while window is not None:
                        part = self._find_in_slice(cur, query, *window, limit)
                        found.append(part)
                        limit -= part.num_rows
                        window = next_of(slices, part.num_rows)
                else:
                    found.append(self._find_in_slice(cur, query, first, end, limit))
            finally:
                _rollback(cur)
        return pa.concat_tables(found)

    @staticmethod
    def _start_bounds(
        cur: duckdb.DuckDBPyConnection, start_ns: int | None, end_ns: int | None
    ) -> tuple[int, int] | None:
        """The first and last trace start in the window (zone maps on ``traces.start_ns``); None when none."""
        sql = "SELECT min(start_ns), max(start_ns) FROM traces WHERE true"
        params: list[Any] = []
        if start_ns is not None:
            sql += " AND start_ns >= ?"
            params.append(start_ns)
        if end_ns is not None:
            sql += " AND start_ns < ?"
            params.append(end_ns)
        first, last = cur.execute(sql, params).fetchall()[0]
        return None if first is None else (int(first), int(last))

    @staticmethod
    def _find_in_slice(
        cur: duckdb.DuckDBPyConnection, query: TraceQuery, start_ns: int, end_ns: int, limit: int
    ) -> pa.Table:
        """The newest ``limit`` matching traces starting in ``[start_ns, end_ns)``."""
        latest = cur.execute(
            "SELECT max(max_start_ns) FROM traces WHERE start_ns >= ? AND start_ns < ?", [start_ns, end_ns]
        ).fetchall()[0][0]
        if latest is None:
            return TRACE_SUMMARY_SCHEMA.empty_table()
        params = PositionalParams()
        where = [f"t.start_ns >= {params(start_ns, 'BIGINT')}", f"t.start_ns < {params(end_ns, 'BIGINT')}"]

        def span_window() -> list[str]:
            """The span starts worth reading, for a subquery (every span of a trace starts at or after the
            trace's start, and at most at the latest span start of the slice's traces)."""
            return [
                f"start_ns >= {params(start_ns, 'BIGINT')}",
                f"start_ns <= {params(int(latest), 'BIGINT')}",
            ]

        if query.match_any_span:
            one_span = one_span_conditions(DUCKDB, params, query)
            if one_span:
                where.append(_trace_has_span(one_span + span_window()))
        where += summary_conditions(DUCKDB, params, query)
        for key, value in query.attributes:
            where.append(_trace_has_span([_attribute_match(params, key, value), *span_window()]))
        # Only the fixed fragments above are joined into the statement; every value is a parameter.
        sql = (
            f"SELECT {_SUMMARY_COLUMNS} FROM traces t WHERE {' AND '.join(where)} "  # noqa: S608
            f"ORDER BY t.start_ns DESC, t.trace_id LIMIT {params(limit, 'BIGINT')}"
        )
        return as_schema(cur.sql(sql, params=params.values).to_arrow_table(), TRACE_SUMMARY_SCHEMA)

    def scan(
        self, columns: list[str], start_ns: int, end_ns: int, filters: ScanFilter | None = None
    ) -> pa.Table:
        """Stored spans starting in ``[start_ns, end_ns)``, only ``columns``; names are checked against the
        schema because they are the one thing that cannot be a bound parameter."""
        schema = scan_schema(columns, _COLUMN_SQL)
        params = PositionalParams()
        where = scan_conditions(DUCKDB, params, start_ns, end_ns, filters)
        selected = ", ".join(_COLUMN_SQL[name] for name in columns)
        conditions = " AND ".join(where)
        # Column names come from the schema (checked above), conditions are fixed fragments with parameters.
        sql = f"SELECT {selected} FROM spans WHERE {conditions}"  # noqa: S608
        with self._conn.cursor() as cur:
            result = cur.sql(sql, params=params.values).to_arrow_table()
        return result.rename_columns(columns).cast(schema)

    def attribute_cells(
        self,
        key: str,
        start_ns: int,
        end_ns: int,
        step_ns: int | None,
        filters: ScanFilter | None = None,
        top: TopValues | None = None,
    ) -> pa.Table:
        """From the key's slot where it covers the window (``attribute_slots``); before that, and for a key without
        one, looked up in the maps and summed in SQL, so that only the sums leave DuckDB."""
        slot = self._slots.readable(key)
        covered_from = start_ns
        if slot is None:
            covered_from = end_ns
        elif slot.covers_after_ns is not None:
            covered_from = min(end_ns, max(start_ns, slot.covers_after_ns + 1))
        in_maps = None
        if start_ns < covered_from:
            in_maps = self._cells_in_maps(key, start_ns, covered_from, start_ns, step_ns, filters)
        if slot is None or covered_from >= end_ns:
            cells = ATTRIBUTE_CELL_SCHEMA.empty_table() if in_maps is None else in_maps
            return cells if top is None else top.settle(cells)
        parts = with_last_part(
            top,
            [] if in_maps is None else [in_maps],
            lambda chosen: self._cells_in_slot(
                slot, covered_from, end_ns, start_ns, step_ns, filters, chosen
            ),
        )
        if len(parts) == 1:
            return parts[0]
        # A cell may have spans on both sides of the slot's start: one row for it, as a single read gives.
        both = pa.concat_tables(parts).unify_dictionaries()
        summed = both.group_by(["value", "start_ns", "bin"], use_threads=False).aggregate(
            [("weight", "sum"), ("error_weight", "sum")]
        )
        return as_schema(summed.rename_columns(ATTRIBUTE_CELL_SCHEMA.names), ATTRIBUTE_CELL_SCHEMA)

    def _cells_in_maps(
        self,
        key: str,
        start_ns: int,
        end_ns: int,
        window_ns: int,
        step_ns: int | None,
        filters: ScanFilter | None,
    ) -> pa.Table:
        params = PositionalParams()
        where = scan_conditions(DUCKDB, params, start_ns, end_ns, filters)
        values = [key, key, step_ns if step_ns is not None else window_ns, *params.values]
        with self._conn.cursor() as cur:
            result = cur.sql(attribute_cells_sql(where, step_ns), params=values).to_arrow_table()
        return as_schema(result, ATTRIBUTE_CELL_SCHEMA)

    def _cells_in_slot(
        self,
        slot: Slot,
        start_ns: int,
        end_ns: int,
        window_ns: int,
        step_ns: int | None,
        filters: ScanFilter | None,
        top: TopValues | None,
    ) -> pa.Table:
        """The slot's codes and the spans' outcomes (bin and failure) read, summed in numpy: at ten million spans,
        about 30 ms to read against 260 for looking the key up in the maps, and summing 2 million (value, bin)
        cells in SQL took a second more. Weights are read only when they differ: DuckDB knows their least and
        greatest in a millisecond, and reading a column of ones took 27 ms."""
        params = PositionalParams()
        where = " AND ".join(scan_conditions(DUCKDB, params, start_ns, end_ns, filters))
        column = slot_column(slot.index)
        # Codes are handed over as narrow as they fit (``SLOT_CODE_READ_TYPE``); filters test the column as stored.
        code = f"{column}::{SLOT_CODE_READ_TYPE}"
        start = ", start_ns" if step_ns is not None else ""
        # Column names are the slot's (a number) and fixed ones; conditions are fixed fragments with parameters.
        chosen = f"FROM spans WHERE {where} AND {column} IS NOT NULL"
        # Spans written before their outcome was kept (schema 6 and older) have it computed; a window without
        # them skips that part by DuckDB's statistics, as a column that has no nulls.
        computed = (
            f"coalesce({BIN_COLUMN}, {BIN_SQL}) * 2 + (status_code = {int(StatusCode.ERROR)})::SMALLINT"
        )
        with self._conn.cursor() as cur:
            # One snapshot for all: a write may code new values, or retire the slot, in between.
            cur.execute("BEGIN TRANSACTION")
            try:
                retired = cur.execute(
                    "SELECT retired FROM attribute_slots WHERE slot = ?", [slot.index]
                ).fetchall()
                coded = cur.sql(
                    "SELECT code, value FROM attribute_slot_values WHERE slot = ? ORDER BY code",
                    params=[slot.index],
                ).to_arrow_table()
                lightest, heaviest = cur.execute(
                    f"SELECT min(sample_weight), max(sample_weight) {chosen}",  # noqa: S608
                    params.values,
                ).fetchall()[0]
                codes = as_numpy(coded.column("code"), np.int64)
                if retired != [(False,)] or not np.array_equal(codes, np.arange(len(codes))):
                    # Retired since the registry in memory was read (its values are gone): the maps have it.
                    return self._cells_in_maps(slot.key, start_ns, end_ns, window_ns, step_ns, filters)
                weight = float(lightest) if lightest == heaviest and lightest is not None else None
                weights = "" if weight is not None else ", sample_weight"
                read = cur.sql(
                    f"SELECT {code} AS code{start}, {OUTCOME_COLUMN} AS outcome{weights} {chosen} "  # noqa: S608
                    f"AND {OUTCOME_COLUMN} IS NOT NULL UNION ALL SELECT {code} AS code{start}, "
                    f"({computed})::SMALLINT AS outcome{weights} {chosen} AND {OUTCOME_COLUMN} IS NULL",
                    params=params.values * 2,
                ).to_arrow_reader(_CELL_READ_ROWS)
                if top is not None and top.needs_totals(len(codes)):
                    spans, totals = read_with_totals(read, len(codes), weight)
                else:
                    spans, totals = read.read_all(), None
            finally:
                _rollback(cur)
        dictionary = coded.column("value").combine_chunks()
        return summed_cells(spans, dictionary, window_ns, step_ns, top, weight, totals)

    def rollups(self, query: RollupQuery) -> pa.Table:
        """Rollup rows whose bucket overlaps the query's window, summed by key; base rows when ``attr_key`` is
        None; merged into ``resolution_s`` buckets when given (an hour of base rollups at 100k spans/s: 0.35 s
        instead of 8 s, because the sum happens here rather than on 8M rows in Python). Steps of whole ten
        minutes read the ten-minute rows where they cover the window (``duckdb_coarse_rollups``)."""
        with self._conn.cursor() as cur:
            cur.execute("BEGIN TRANSACTION")  # the covered span and both tables from one snapshot
            try:
                part = coarse_part(cur, query)
                params: list[Any] = []
                if part is None:
                    sql = self._rollup_select("rollups", query, params)
                else:
                    inside = dataclasses.replace(query, start_ns=part[0], end_ns=part[1])
                    # Fine rows before and after the coarse part as two plain ranges of starts, which the scan
                    # applies before it reads the bin lists (as one "not inside" condition it read the lists of
                    # every row of the key and filtered after: 108 against 46 ms, an hour of http.route at 10M
                    # spans). Coarse rows start on ten minutes, as ``inside`` does: overlapping it is starting in it.
                    sql = " UNION ALL ".join(
                        [
                            self._rollup_select("rollups", query, params, starts=(None, part[0])),
                            self._rollup_select("rollups", query, params, starts=(part[1], None)),
                            self._rollup_select("coarse_rollups", inside, params),
                        ]
                    )
                told_apart = _told_apart(query)
                if not query.by_bin:
                    return as_schema(
                        cur.sql(_summed_over_bins(sql, told_apart), params=params).to_arrow_table(),
                        ROLLUP_SCHEMA,
                    )
                if _sums_many_rows_into_each(query):
                    return as_schema(
                        cur.sql(_summed_by_bin(sql, told_apart), params=params).to_arrow_table(),
                        ROLLUP_SCHEMA,
                    )
                rows = cur.sql(sql, params=params).to_arrow_table()
            finally:
                _rollback(cur)
        return merge_bin_lists(rows, told_apart)

    @staticmethod
    def _rollup_select(
        table: str,
        query: RollupQuery,
        params: list[Any],
        starts: tuple[int | None, int | None] = (None, None),
    ) -> str:
        """The SELECT of one table's rows for ``rollups``, its values appended to ``params`` in text order;
        only rows starting in ``[starts)`` (either end open when None)."""
        where_params = PositionalParams()
        where = rollup_conditions(DUCKDB, where_params, query)
        bucket = "bucket_start_ns, bucket_s"
        if query.resolution_s is not None:
            # The bucket comes first in the text, so its values go before the conditions'.
            bucket = "bucket_start_ns - bucket_start_ns % ? AS bucket_start_ns, ?::INTEGER AS bucket_s"
            params.extend([query.resolution_s * 10**9, query.resolution_s])
        params.extend(where_params.values)
        if starts[0] is not None:
            where.append("bucket_start_ns >= ?")
            params.append(starts[0])
        if starts[1] is not None:
            where.append("bucket_start_ns < ?")
            params.append(starts[1])
        keys = _key_columns(_told_apart(query))
        # Fixed fragments only; every value is a parameter. The caller sums the lists by key and bin, in numpy
        # (``rollup_merge``) or around this SELECT in DuckDB (``_summed_by_bin``).
        return (
            f"SELECT {bucket}, {keys}, bins, counts, errors "  # noqa: S608
            f"FROM {table} WHERE {' AND '.join(where)}"
        )

    def calls(self, start_ns: int, end_ns: int) -> pa.Table:
        """Calls between services in the minutes overlapping ``[start_ns, end_ns)``, summed (``CALL_SCHEMA``)."""
        keys = ", ".join(CALL_KEY)
        sql = (
            f"SELECT {keys}, sum(calls) AS calls, sum(errors) AS errors FROM call_rollups "  # noqa: S608
            f"WHERE bucket_start_ns < ? AND bucket_start_ns > ? GROUP BY {keys} "
            # Calls of a late trace's first write that its later spans took back sum to about nothing.
            "HAVING sum(calls) > 1e-6"
        )
        params = [int(end_ns), int(start_ns) - CALL_BUCKET_S * 1_000_000_000]
        with self._conn.cursor() as cur:
            result = cur.sql(sql, params=params).to_arrow_table()
        return as_schema(result, CALL_SCHEMA)

    def services(self) -> list[str]:
        """Every service seen in stored spans, sorted."""
        with self._conn.cursor() as cur:
            rows = cur.execute("SELECT DISTINCT service FROM operations ORDER BY service").fetchall()
        return [row[0] for row in rows]

    def operations(self, service: str) -> list[tuple[str, int]]:
        """``(operation, kind)`` pairs of one service, sorted."""
        with self._conn.cursor() as cur:
            rows = cur.execute(
                "SELECT name, kind FROM operations WHERE service = ? ORDER BY name, kind", [service]
            ).fetchall()
        return [(row[0], int(row[1])) for row in rows]

    def span_count(self) -> int:
        """How many spans are stored."""
        with self._conn.cursor() as cur:
            return int(cur.execute("SELECT count(*) FROM spans").fetchall()[0][0])

    # -- retention -------------------------------------------------------------------------------------

    def expire(self, data: ExpiringData, before_ns: int, slice_ns: int) -> RetentionStep:
        """Delete the oldest ``slice_ns`` of ``data`` older than ``before_ns`` in one transaction. It holds the
        writer's lock (a span write waits at most one slice; readers never wait, DuckDB reads a snapshot); the
        space is reusable after the next checkpoint (``reclaim_space``). Where the last slice ended is kept, so
        a step costs its delete only (the oldest row is looked up after start and after an empty slice); rows
        written later below it are caught by the next slice's plain upper bound."""
        if slice_ns <= 0:
            raise ValueError("slice_ns must be positive")
        with self._maintenance_lock, self._write_lock, self._conn.cursor() as cur:
            oldest = self._expired_through.get(data)
            if oldest is None:
                found = cur.execute(_OLDEST[data]).fetchall()[0][0]
                if found is None:
                    return RetentionStep(rows=0, more=False)
                # Rollup rows go when their bucket has ended by the slice's end, so the oldest end is itself due.
                oldest = int(found) - (1 if data == "rollups" else 0)
            if oldest >= before_ns:
                return RetentionStep(rows=0, more=False)
            end = min(before_ns, oldest + slice_ns)
            cur.execute("BEGIN TRANSACTION")
            try:
                deleted = [cur.execute(sql, {"end": end}).fetchall()[0][0] for sql in _EXPIRE[data]]
                if data == "rollups":
                    coarse.give_up_before(cur, end)
                cur.execute("COMMIT")
            except BaseException:
                _rollback(cur)
                raise
            if deleted[0]:
                self._expired_through[data] = end
                self._expired_since_reclaim = True
            else:  # a gap in the data: the next step looks the oldest row up and skips it
                self._expired_through.pop(data, None)
        return RetentionStep(rows=int(deleted[0]), more=end < before_ns)

    def downsample_rollups(self, before_ns: int, bucket_s: int, slice_ns: int) -> RetentionStep:
        """Merge the oldest slice of rollup rows finer than ``bucket_s`` into ``bucket_s`` buckets. The merge
        (the costly part) reads a snapshot without the writer's lock; then one transaction under it deletes the
        slice's rows and inserts the merged ones, so a reader's snapshot holds one or the other. Should rows
        have been written into the slice meanwhile (a late export), the merge is redone in that transaction."""
        if bucket_s <= 0 or 3600 % bucket_s or slice_ns <= 0:
            raise ValueError("bucket_s must divide an hour and slice_ns be positive")
        with self._maintenance_lock:
            return self._downsample_slice(before_ns, bucket_s, slice_ns)

    def _downsample_slice(self, before_ns: int, bucket_s: int, slice_ns: int) -> RetentionStep:
        bucket_ns = bucket_s * 1_000_000_000
        # Only whole target buckets that ended before the cutoff are merged.
        limit = before_ns - before_ns % bucket_ns
        with self._conn.cursor() as cur:
            oldest = cur.execute(
                "SELECT min(bucket_start_ns) FROM rollups WHERE bucket_s < ? AND bucket_start_ns < ?",
                [bucket_s, limit],
            ).fetchall()[0][0]
            if oldest is None:
                return RetentionStep(rows=0, more=False)
            start = int(oldest) - int(oldest) % bucket_ns
            end = min(limit, start + max(bucket_ns, slice_ns - slice_ns % bucket_ns))
            window = {"bucket_s": bucket_s, "start": start, "end": end}
            cur.execute("BEGIN TRANSACTION")  # the count and the merge from one snapshot; nothing written
            try:
                merged, read = self._merged_slice(cur, window, bucket_ns)
            finally:
                _rollback(cur)
        with self._write_lock, self._conn.cursor() as cur:
            cur.execute("BEGIN TRANSACTION")
            try:
                if self._slice_rows(cur, window) != read:
                    merged, read = self._merged_slice(cur, window, bucket_ns)
                deleted = cur.execute(f"DELETE FROM rollups WHERE {coarse.SLICE_TO_MERGE}", window)  # noqa: S608
                rows = int(deleted.fetchall()[0][0])
                cur.register("merged_rollups", merged)
                try:
                    cur.execute("INSERT INTO rollups SELECT * FROM merged_rollups")
                finally:
                    cur.unregister("merged_rollups")
                coarse.give_up_before(cur, end)
                cur.execute("COMMIT")
            except BaseException:
                _rollback(cur)
                raise
        return RetentionStep(rows=rows, more=end < limit)

    @staticmethod
    def _slice_rows(cur: duckdb.DuckDBPyConnection, window: dict[str, int]) -> int:
        """Stored rows in a downsampling slice. Rows are only ever appended there (retention, which alone
        deletes, runs in one thread), so an unchanged count means unchanged rows."""
        sql = f"SELECT count(*) FROM rollups WHERE {coarse.SLICE_TO_MERGE}"  # noqa: S608
        return int(cur.execute(sql, window).fetchall()[0][0])

    @staticmethod
    def _merged_slice(
        cur: duckdb.DuckDBPyConnection, window: dict[str, int], bucket_ns: int
    ) -> tuple[pa.Table, int]:
        """A slice's rows merged into its target buckets, and how many stored rows that read (in the caller's
        transaction, so both come from one snapshot)."""
        rows = DuckDBStore._slice_rows(cur, window)
        merged = cur.sql(coarse.MERGED_SLICE, params={**window, "bucket_ns": bucket_ns}).to_arrow_table()
        return merged, rows

    def reclaim_space(self) -> Compaction | None:
        """Checkpoint: deletions reach the file and their blocks join the free list, which the next writes fill
        before the file grows (and a free tail is truncated). Under the writer's lock, as DuckDB checkpoints only
        with no write in flight. Then, if ``expire`` deleted rows since the last call and the free blocks are
        more than ``compact_free_share`` of a file of at least ``compact_min_bytes``, ``compact`` gives them
        back. Only after expiry: expired data is what the file need no longer hold, while the blocks that
        downsampling (fewer rows for the same time) or a checkpoint's rewrite frees are taken by the next writes."""
        if self.path == ":memory:":
            return None
        with self._write_lock, self._conn.cursor() as cur:
            cur.execute("CHECKPOINT").fetchall()
            self._direct_rows = 0
            block_bytes, blocks, free_blocks = cur.execute(
                "SELECT block_size, total_blocks, free_blocks FROM pragma_database_size()"
            ).fetchall()[0]
            expired, self._expired_since_reclaim = self._expired_since_reclaim, False
        if (
            not expired
            or int(block_bytes) * int(blocks) < self.compact_min_bytes
            or free_blocks <= blocks * self.compact_free_share
        ):
            return None
        return self.compact()

    def _checkpoint(self) -> None:
        with self._write_lock, self._conn.cursor() as cur:
            cur.execute("CHECKPOINT").fetchall()
            self._direct_rows = 0

    def compact(self) -> Compaction | None:
        """Copy the live rows into a fresh file that replaces this one (``duckdb_compaction``): the file shrinks
        to what it holds. The copy reads a snapshot without the writer's lock; the writes committed meanwhile are
        replayed onto it, and the lock is held for the exchange of the files alone (and any write that came in
        since the last catch-up). None for an in-memory store, or when given up (a query still reading the old
        file after ``SWAP_READER_WAIT_S``, more than ``MAX_REPLAY_ROWS`` written meanwhile, an error): the
        store's file is then kept as it was."""
        if self.path == ":memory:":
            return None
        with self._maintenance_lock:
            fresh_path = self.path + COMPACTING_SUFFIX
            remove_leftovers(self.path)
            bytes_before = self.disk_bytes()
            replay: DuckDBStore | None = None
            try:
                started = time.perf_counter()
                DuckDBStore(fresh_path, **self._options).close()  # the same tables, indexes and version
                unmerged: list[Any] = []

                def start_recording() -> None:
                    self._replay, self._replay_rows = [], 0
                    unmerged[:] = [self._unmerged_calls, self._unmerged_call_rows]

                with self._conn.cursor() as cur:
                    copy_live_rows(cur, fresh_path, self._write_lock, start_recording)
                copy_s = time.perf_counter() - started
                replay = DuckDBStore(fresh_path, **self._options)
                # The copy's call rows are those of the snapshot: its writes merge them when this store would.
                replay._unmerged_calls, replay._unmerged_call_rows = unmerged
                self._catch_up(replay)
                # Both logs small when the lock is taken: closing a file checkpoints what its log holds.
                replay._checkpoint()
                self._checkpoint()
                pause_s: float | None = None
                for attempt in range(_SWAP_ATTEMPTS):
                    self._catch_up(replay)
                    with self._write_lock:
                        if self._replay and attempt + 1 < _SWAP_ATTEMPTS:
                            continue  # a write came in meanwhile: replayed without the lock first
                        pause_s = self._swap_in(replay, fresh_path)
                        break
            except (duckdb.Error, OSError):
                _log.warning("compaction failed; the store's file is kept as it was", exc_info=True)
                return None
            finally:
                with self._write_lock:
                    self._replay = None
                if replay is not None:
                    with contextlib.suppress(duckdb.Error):
                        replay.close()
                remove_leftovers(self.path)
        if pause_s is None:
            return None
        compaction = Compaction(bytes_before, self.disk_bytes(), copy_s, pause_s)
        _log.info("store compacted: %s", compaction)
        return compaction

    def _swap_in(self, replay: DuckDBStore, fresh_path: str) -> float | None:
        """Under the writer's lock: the last writes onto the copy, then the copy in place of the file and its
        connection in place of this one. How long it took, or None when given up."""
        paused = time.perf_counter()
        if self._closed or not self._replay_to(replay, self._replay):
            return None
        calls = (replay._unmerged_calls, replay._unmerged_call_rows)
        replay.close()  # checkpoints: the copy has no log of its own
        if not self._conn.swap(lambda: self._reopen(fresh_path), SWAP_READER_WAIT_S):
            _log.info("compaction given up: a query kept the old file past %s s", SWAP_READER_WAIT_S)
            return None
        if os.path.exists(fresh_path):  # the old file was reopened (``_reopen``)
            return None
        self._unmerged_calls, self._unmerged_call_rows = calls
        self._slots = self._load_slots()  # the copy's, which its replayed writes may have numbered otherwise
        return time.perf_counter() - paused

    def _catch_up(self, replay: DuckDBStore) -> None:
        """Replay the writes recorded so far onto the copy without the writer's lock, in rounds until a round
        finds few (writes go on meanwhile): the lock is then held for the last few alone."""
        for _ in range(_CATCH_UP_ROUNDS):
            with self._write_lock:
                recorded, self._replay = self._replay, ([] if self._replay is not None else None)
            if recorded is None or not self._replay_to(replay, recorded) or len(recorded) < _FEW_WRITES:
                return

    def _replay_to(self, replay: DuckDBStore, recorded: list[tuple[str, pa.Table]] | None) -> bool:
        """Make the recorded writes on the copy; False when the recording was given up. Span writes are made as
        one, and log writes as one: a write's cost is mostly its own (a 20-span write cost as much as 20 of
        them), and the replay has to outpace the writes still coming. One span write makes what the writes
        one after the other made (rows, operations; summaries and call sums merge by min, max and sum, and a
        late trace's calls are those of its whole trace either way), but for a trace with roots in two writes,
        where the earliest root names it. Rollup writes are made one by one, in order."""
        if recorded is None:
            _log.info("compaction given up: more than %s rows written during the copy", MAX_REPLAY_ROWS)
            return False
        batched: dict[str, list[pa.Table]] = {"write": [], "write_logs": []}
        for verb, rows in recorded:
            if verb in batched:
                batched[verb].append(rows)
            else:
                getattr(replay, verb)(rows)
        for verb, tables in batched.items():
            if tables:
                getattr(replay, verb)(pa.concat_tables(tables, promote_options="permissive"))
        return True

    def _reopen(self, fresh_path: str) -> duckdb.DuckDBPyConnection:
        """With the old file closed: the copy takes its name, unless the old file's write-ahead log was left
        (replayed onto the copy it would corrupt it; the old file is reopened then), and is opened."""
        wal = Path(self.path + ".wal")
        if wal.exists() and wal.stat().st_size == 0:
            wal.unlink()  # nothing in it
        if wal.exists():
            _log.warning("compaction given up: %s was left after the checkpoint", wal)
        else:
            try:
                os.replace(fresh_path, self.path)
            except OSError:
                _log.warning("compaction given up: the copy could not replace the file", exc_info=True)
        return duckdb.connect(self.path, config=self._config)

    def storage_figures(self) -> StorageFigures:
        """Bytes on disk, the free blocks among them, and the oldest span, log record and rollup bucket."""
        with self._conn.cursor() as cur:
            oldest = cur.execute(
                "SELECT (SELECT min(start_ns) FROM spans), (SELECT min(time_ns) FROM logs), "
                "(SELECT min(bucket_start_ns) FROM rollups)"
            ).fetchall()[0]
            size = cur.execute("SELECT block_size, free_blocks FROM pragma_database_size()").fetchall()
        free_bytes = int(size[0][0]) * int(size[0][1]) if size and self.path != ":memory:" else 0
        return StorageFigures(
            disk_bytes=self.disk_bytes(),
            free_bytes=free_bytes,
            oldest_span_ns=None if oldest[0] is None else int(oldest[0]),
            oldest_log_ns=None if oldest[1] is None else int(oldest[1]),
            oldest_rollup_ns=None if oldest[2] is None else int(oldest[2]),
        )

    def disk_bytes(self) -> int:
        """Bytes on disk (database file plus its write-ahead log), for benchmarks and status."""
        if self.path == ":memory:":
            return 0
        total = 0
        for name in (self.path, self.path + ".wal"):
            try:
                total += Path(name).stat().st_size
            except FileNotFoundError:
                pass
        return total

    def close(self) -> None:
        """Checkpoint and release the file (DuckDB checkpoints the WAL into the file on close)."""
        if self._closed:
            return
        with self._write_lock:
            self._closed = True
            self._conn.close()
