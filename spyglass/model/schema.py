"""The columnar span batch: the one unit that moves through spyglass.

Every receiver decodes into this Arrow schema and every later stage (satellite, store, analysis) takes and
returns tables of it, so no stage ever needs one Python object per span.

Attributes are two maps side by side: ``attributes`` holds every value as text (strings as they are, numbers
and booleans in their canonical text, arrays and kvlists as JSON, bytes as base64), so that filters and
group-bys compare plain strings; ``attribute_types`` records the type of each value that is *not* a string, so
the API can give every value back with its JSON type. Most attributes are strings, so the type map is usually
empty and costs almost nothing.
"""

from __future__ import annotations

from enum import IntEnum

import pyarrow as pa
import pyarrow.compute as pc


class ValueType(IntEnum):
    """Type of an attribute value, as kept in the ``*_types`` maps (strings are implicit)."""

    STRING = 0
    BOOL = 1
    INT = 2
    DOUBLE = 3
    ARRAY = 4
    KVLIST = 5
    BYTES = 6


class SpanKind(IntEnum):
    """OTLP span kinds, numbered as on the wire."""

    UNSPECIFIED = 0
    INTERNAL = 1
    SERVER = 2
    CLIENT = 3
    PRODUCER = 4
    CONSUMER = 5


class StatusCode(IntEnum):
    """OTLP status codes, numbered as on the wire."""

    UNSET = 0
    OK = 1
    ERROR = 2


KIND_NAMES: dict[int, str] = {
    SpanKind.UNSPECIFIED: "internal",
    SpanKind.INTERNAL: "internal",
    SpanKind.SERVER: "server",
    SpanKind.CLIENT: "client",
    SpanKind.PRODUCER: "producer",
    SpanKind.CONSUMER: "consumer",
}
#: The codes each kind name stands for (``internal`` takes in spans that name no kind).
KIND_CODES: dict[str, tuple[int, ...]] = {
    name: tuple(sorted(code for code, named in KIND_NAMES.items() if named == name))
    for name in dict.fromkeys(KIND_NAMES.values())
}


def of_kinds(kinds: pa.Array | pa.ChunkedArray, wanted: tuple[int, ...]) -> pa.Array | pa.ChunkedArray:
    """Which rows of a ``kind`` column (spans or rollups) are of one of the ``wanted`` kinds."""
    return pc.is_in(kinds, value_set=pa.array(wanted, kinds.type))


def in_window(
    spans: pa.Table,
    start_ns: int,
    end_ns: int,
    service: str | None = None,
    operation: str | None = None,
    kinds: tuple[int, ...] = (),
) -> pa.ChunkedArray:
    """Which spans started in ``[start_ns, end_ns)`` and are of the service, operation (span name) and kinds
    asked for (each unset: any): the filter of a window read, for spans held in memory as a store reads them."""
    starts = spans.column("start_ns")
    mask = pc.and_(pc.greater_equal(starts, start_ns), pc.less(starts, end_ns))
    if service is not None:
        mask = pc.and_(mask, pc.equal(spans.column("service"), service))
    if operation is not None:
        mask = pc.and_(mask, pc.equal(spans.column("name"), operation))
    if kinds:
        mask = pc.and_(mask, of_kinds(spans.column("kind"), kinds))
    return mask


#: The kinds of a service's own entry points: SERVER spans answer its requests, CONSUMER spans take them off a
#: queue. Their rate, errors and latency are the service's (or the operation's) RED.
ENTRY_KINDS: tuple[int, ...] = (int(SpanKind.SERVER), int(SpanKind.CONSUMER))
STATUS_NAMES: dict[int, str] = {StatusCode.UNSET: "unset", StatusCode.OK: "ok", StatusCode.ERROR: "error"}

UNKNOWN_SERVICE = "unknown_service"

TRACE_ID = pa.binary(16)
SPAN_ID = pa.binary(8)
ATTRIBUTES = pa.map_(pa.string(), pa.string())
ATTRIBUTE_TYPES = pa.map_(pa.string(), pa.int8())

EVENT = pa.struct(
    [
        pa.field("time_ns", pa.int64()),
        pa.field("name", pa.string()),
        pa.field("attributes", ATTRIBUTES),
        pa.field("attribute_types", ATTRIBUTE_TYPES),
    ]
)
LINK = pa.struct(
    [
        pa.field("trace_id", TRACE_ID),
        pa.field("span_id", SPAN_ID),
        pa.field("trace_state", pa.string()),
        pa.field("attributes", ATTRIBUTES),
        pa.field("attribute_types", ATTRIBUTE_TYPES),
    ]
)

SPAN_SCHEMA = pa.schema(
    [
        pa.field("trace_id", TRACE_ID, nullable=False),
        pa.field("span_id", SPAN_ID, nullable=False),
        pa.field("parent_span_id", SPAN_ID),  # null at a root
        pa.field("trace_state", pa.string()),
        pa.field("service", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("kind", pa.int8(), nullable=False),
        pa.field("start_ns", pa.int64(), nullable=False),
        pa.field("duration_ns", pa.int64(), nullable=False),
        pa.field("status_code", pa.int8(), nullable=False),
        pa.field("status_message", pa.string()),
        pa.field("attributes", ATTRIBUTES),
        pa.field("attribute_types", ATTRIBUTE_TYPES),
        pa.field("resource", ATTRIBUTES),
        pa.field("resource_types", ATTRIBUTE_TYPES),
        pa.field("scope_name", pa.string()),
        pa.field("scope_version", pa.string()),
        pa.field("events", pa.list_(EVENT)),
        pa.field("links", pa.list_(LINK)),
    ]
)

#: The columns that describe a trace's tree, timing, outcome and attributes: what trace analyses read.
TREE_COLUMNS = [
    "trace_id",
    "span_id",
    "parent_span_id",
    "service",
    "name",
    "start_ns",
    "duration_ns",
    "status_code",
    "attributes",
    "resource",
]

#: The store's spans: the span batch plus how many traces the kept trace stands for.
STORED_SPAN_SCHEMA = SPAN_SCHEMA.append(pa.field("sample_weight", pa.float64(), nullable=False))

#: No spans, in each schema: tables are immutable, so one of each is shared. Making one anew takes 0.15-0.3 ms
#: (the nested columns), a tenth of a trace lookup's Python path and a cost in every round of the decide loop.
NO_SPANS = SPAN_SCHEMA.empty_table()
NO_STORED_SPANS = STORED_SPAN_SCHEMA.empty_table()
