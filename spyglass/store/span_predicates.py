"""What the DuckDB and ClickHouse stores share: turning span and trace-summary filters into SQL conditions
with bound parameters, checking asked-for column names, and conforming tables to a schema. Each backend only
spells its SQL (a ``Dialect``: column names, the attribute match, the trace-id hash, casts, placeholder
syntax). What they share about rollups is in ``spyglass.store.rollup_predicates``.

Only fixed fragments ever go into the SQL text; every value goes through a ``Params`` placeholder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa

from spyglass.model.schema import STORED_SPAN_SCHEMA
from spyglass.store.protocol import TRACE_SHARE_SCALE, ScanFilter, TraceQuery


class Params(Protocol):
    """Collects a bound value and returns its placeholder in the backend's syntax."""

    def __call__(self, value: Any, kind: str) -> str: ...


class PositionalParams:
    """``?`` placeholders, values in the order they appear in the SQL text (DuckDB)."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any, kind: str) -> str:
        self.values.append(value)
        return "?"


class NamedParams:
    """``{name:Type}`` placeholders, values by name (ClickHouse)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def __call__(self, value: Any, kind: str) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"{{{name}:{kind}}}"


@dataclass(frozen=True)
class Dialect:
    """How one backend spells span and trace-summary conditions. Type names are the backend's, for typed
    placeholders."""

    service: str
    operation: str
    #: The span kind as its ``SpanKind`` code.
    kind: str
    duration: str
    #: The span start compared (``>=``, ``<``) with a placeholder holding ns since the epoch.
    start: Callable[[str, str], str]
    #: Span or resource attribute ``key`` equals ``value``.
    attribute_match: Callable[[Params, str, str], str]
    trace_hash: str
    #: A trace summary's root span has the service (then the operation) in the placeholder.
    root_service_is: Callable[[str], str]
    root_operation_is: Callable[[str], str]
    #: A trace summary's whole duration (ns) and its count of error spans.
    trace_duration: str
    error_count: str
    #: An expression cast to a signed 64-bit integer.
    int64_of: Callable[[str], str]
    int64: str
    uint64: str
    string: str


def span_conditions(
    dialect: Dialect,
    params: Params,
    *,
    service: str | None = None,
    operation: str | None = None,
    min_duration_ns: int | None = None,
    max_duration_ns: int | None = None,
    attributes: Iterable[tuple[str, str]] = (),
    trace_share: float | None = None,
    kinds: tuple[int, ...] = (),
) -> list[str]:
    """Conditions on single spans, in the order given (so positional placeholders line up)."""
    where: list[str] = []
    if service is not None:
        where.append(f"{dialect.service} = {params(service, dialect.string)}")
    if operation is not None:
        where.append(f"{dialect.operation} = {params(operation, dialect.string)}")
    if kinds:
        where.append(kind_in(dialect.kind, dialect, params, kinds))
    if min_duration_ns is not None:
        where.append(f"{dialect.duration} >= {params(max(0, int(min_duration_ns)), dialect.uint64)}")
    if max_duration_ns is not None:
        where.append(f"{dialect.duration} <= {params(int(max_duration_ns), dialect.int64)}")
    for key, value in attributes:
        where.append(dialect.attribute_match(params, key, value))
    if trace_share is not None:
        share = params(round(trace_share * TRACE_SHARE_SCALE), dialect.uint64)
        where.append(f"{dialect.trace_hash} % {TRACE_SHARE_SCALE} < {share}")
    return where


def kind_in(column: str, dialect: Dialect, params: Params, kinds: Iterable[int]) -> str:
    """``column`` (a span kind as its ``SpanKind`` code) is one of ``kinds``, each a parameter."""
    return f"{column} IN ({', '.join(params(int(kind), dialect.int64) for kind in kinds)})"


def window_conditions(dialect: Dialect, params: Params, start_ns: int, end_ns: int) -> list[str]:
    """Spans starting in ``[start_ns, end_ns)``."""
    return [
        dialect.start(">=", params(int(start_ns), dialect.int64)),
        dialect.start("<", params(int(end_ns), dialect.int64)),
    ]


def scan_conditions(
    dialect: Dialect, params: Params, start_ns: int, end_ns: int, filters: ScanFilter | None
) -> list[str]:
    """``Store.scan``'s spans: starting in ``[start_ns, end_ns)`` and passing ``filters``, in that order."""
    where = window_conditions(dialect, params, start_ns, end_ns)
    if filters is not None:
        where += span_conditions(
            dialect,
            params,
            service=filters.service,
            operation=filters.operation,
            attributes=filters.attributes,
            trace_share=filters.trace_share,
            kinds=filters.kinds,
        )
    return where


def one_span_conditions(dialect: Dialect, params: Params, query: TraceQuery) -> list[str]:
    """``TraceQuery.match_any_span`` (Jaeger semantics): what one span of the trace must carry together, the
    service, the operation and the duration bounds. Empty when the query asks none of them."""
    return span_conditions(
        dialect,
        params,
        service=query.service,
        operation=query.operation,
        min_duration_ns=query.min_duration_ns,
        max_duration_ns=query.max_duration_ns,
    )


def summary_conditions(dialect: Dialect, params: Params, query: TraceQuery) -> list[str]:
    """Conditions on a trace's summary: its root span's service and operation and the whole trace's duration
    (unless ``match_any_span`` puts those on one span), and whether it has errors; in the text's order."""
    where: list[str] = []
    if not query.match_any_span:
        if query.service is not None:
            where.append(dialect.root_service_is(params(query.service, dialect.string)))
        if query.operation is not None:
            where.append(dialect.root_operation_is(params(query.operation, dialect.string)))
        if query.min_duration_ns is not None:
            where.append(f"{dialect.trace_duration} >= {params(int(query.min_duration_ns), dialect.int64)}")
        if query.max_duration_ns is not None:
            where.append(f"{dialect.trace_duration} <= {params(int(query.max_duration_ns), dialect.int64)}")
    if query.error is True:
        where.append(f"{dialect.error_count} > 0")
    elif query.error is False:
        where.append(f"{dialect.error_count} = 0")
    return where


def scan_schema(columns: list[str], known: Mapping[str, str]) -> pa.Schema:
    """The stored schema of the asked-for columns. Column names are the one thing that cannot be a bound
    parameter: only the schema's are accepted (``known`` maps each to the backend's SQL for it)."""
    if not columns:
        raise ValueError("scan needs at least one column")
    unknown = [name for name in columns if name not in known]
    if unknown:
        raise ValueError(f"unknown span columns: {', '.join(map(repr, unknown))}")
    return pa.schema([STORED_SPAN_SCHEMA.field(name) for name in columns])


def conform(
    table: pa.Table | pa.RecordBatch, schema: pa.Schema, missing_message: str, cast: bool = True
) -> pa.Table:
    """A table of exactly ``schema``'s columns (in order, cast unless told not to); ValueError naming any
    missing column."""
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    missing = [name for name in schema.names if name not in table.column_names]
    if missing:
        raise ValueError(f"{missing_message}: {', '.join(missing)}")
    table = table.select(schema.names)
    return table.cast(schema) if cast else table


def as_schema(result: pa.Table, schema: pa.Schema) -> pa.Table:
    """A query result as exactly the promised schema: column order, field nullability, map and struct field
    names (which the backends name their own way). Only columns of another type are cast: a trace is a few
    rows, and casting all twenty columns of it was a tenth of a lookup by id."""
    if result.column_names != schema.names:
        result = result.select(schema.names)
    if result.schema.equals(schema):
        return result
    columns = []
    for column, field in zip(result.columns, schema, strict=True):
        if not field.nullable and column.null_count:
            raise ValueError(f"Casting field {field.name!r} with null values to non-nullable")
        columns.append(column if column.type.equals(field.type) else column.cast(field.type))
    return pa.Table.from_arrays(columns, schema=schema)
