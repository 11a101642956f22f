"""Calls between services, summed per minute as they are written, so the service graph over an hour reads a
few thousand sums instead of joining every span of the hour with its parent (at ten million spans that join
took seconds; Tempo's service graphs and Jaeger's dependency jobs aggregate ahead for the same reason).

A call is an edge of the graph: a span in one service whose parent is in another (both sides instrumented),
or a client or producer span with no child in another service but naming its peer (``peer.service``, else
``db.system``, else ``server.address`` / ``net.peer.name``): an uninstrumented dependency. Each call counts by
its span's ``sample_weight``; its duration goes into a bin of the latency sketch (``spyglass.model.sketch``),
so a p99 over any merge of minutes is within the sketch's 0.5%.

The DuckDB store sums the calls of each write into ``call_rollups`` rows (the spans of a kept trace are written
together); a backend without them computes the same rows from a window's spans (``call_rows``).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from spyglass.model.arrow_sql import query_arrow
from spyglass.model.schema import STORED_SPAN_SCHEMA
from spyglass.model.shared_spans import separate_shared_spans
from spyglass.model.sketch import BIN_SQL

#: Calls are summed per minute of their (child) span's start.
CALL_BUCKET_S = 60

#: The stored-span columns a call is made of.
CALL_SPAN_COLUMNS = [
    "trace_id",
    "span_id",
    "parent_span_id",
    "service",
    "kind",
    "status_code",
    "start_ns",
    "duration_ns",
    "attributes",
    "sample_weight",
]

#: The stored rows: one per minute, service pair, kind of edge and latency bin, with weighted calls and errors.
#: ``Store.calls`` answers the same without the minute, summed over its window (``CALL_SCHEMA``).
_KEY_FIELDS = [
    pa.field("parent", pa.string(), nullable=False),
    pa.field("child", pa.string(), nullable=False),
    pa.field("uninstrumented", pa.bool_(), nullable=False),
    pa.field("bin", pa.int16(), nullable=False),
]
_SUM_FIELDS = [
    pa.field("calls", pa.float64(), nullable=False),
    pa.field("errors", pa.float64(), nullable=False),
]
CALL_SCHEMA = pa.schema([*_KEY_FIELDS, *_SUM_FIELDS])
CALL_KEY = [field.name for field in _KEY_FIELDS]

#: Where a client span names the dependency it calls, most telling first.
PEER_KEYS = ("peer.service", "db.system", "server.address", "net.peer.name")

#: The same lookup in SQL over stored spans (a migration's: its rows were written before ``call_inputs``).
PEER_FROM_ATTRIBUTES = "coalesce(" + ", ".join(f"s.attributes['{key}']" for key in PEER_KEYS) + ")"

#: What ``call_rows_sql`` reads: a call's span columns, its attributes replaced by the peer they name.
CALL_INPUT_SCHEMA = pa.schema(
    [field for field in STORED_SPAN_SCHEMA if field.name in CALL_SPAN_COLUMNS and field.name != "attributes"]
    + [pa.field("peer", pa.string())]
)


def call_inputs(spans: pa.Table) -> pa.Table:
    """Spans (``CALL_SPAN_COLUMNS``) as the calls SQL reads them (``CALL_INPUT_SCHEMA``): the peer each names
    looked up here, in Arrow. DuckDB reading the attribute maps to look it up was two thirds of what the calls
    of a write cost (1.7 of 2.5 microseconds of CPU per span), most of it taking the maps in from Arrow."""
    attributes = spans.column("attributes")
    peer = pc.coalesce(*(pc.map_lookup(attributes, pa.scalar(key), "first") for key in PEER_KEYS))
    columns = [spans.column(name) for name in CALL_INPUT_SCHEMA.names[:-1]]
    table = pa.Table.from_arrays([*columns, peer], names=CALL_INPUT_SCHEMA.names)
    return table if table.schema == CALL_INPUT_SCHEMA else table.cast(CALL_INPUT_SCHEMA)


def call_rows_sql(source: str, peer: str = "s.peer") -> str:
    """SQL (DuckDB) of the ``CALL_SCHEMA`` rows of the spans in the relation ``source`` (a fixed name), which
    holds ``CALL_INPUT_SCHEMA`` (or, with ``peer=PEER_FROM_ATTRIBUTES``, the stored spans themselves)."""
    return f"""
WITH instrumented AS (
    SELECT c.start_ns, p.service AS parent, c.service AS child, c.status_code, c.duration_ns,
           c.sample_weight AS w, p.span_id, p.trace_id
    FROM {source} c JOIN {source} p ON c.trace_id = p.trace_id AND c.parent_span_id = p.span_id
    WHERE c.service <> p.service
),
peers AS (
    SELECT s.start_ns, s.service AS parent, {peer} AS child, s.status_code, s.duration_ns,
           s.sample_weight AS w
    FROM {source} s
    WHERE s.kind IN (3, 4) AND {peer} IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM instrumented i WHERE i.trace_id = s.trace_id AND i.span_id = s.span_id)
),
calls AS (
    SELECT start_ns, parent, child, status_code, duration_ns, w, false AS uninstrumented FROM instrumented
    UNION ALL
    SELECT start_ns, parent, child, status_code, duration_ns, w, true FROM peers WHERE child <> parent
)
SELECT start_ns - start_ns % {CALL_BUCKET_S * 1_000_000_000} AS bucket_start_ns, parent, child, uninstrumented,
       {BIN_SQL} AS bin, sum(w)::DOUBLE AS calls,
       coalesce(sum(w) FILTER (WHERE status_code = 2), 0)::DOUBLE AS errors
FROM calls
GROUP BY ALL
"""  # noqa: S608 (fixed names and numbers only)


def call_rows(spans: pa.Table) -> pa.Table:
    """``CALL_SCHEMA`` rows of some spans (``CALL_SPAN_COLUMNS``), summed over them: for a backend that keeps
    no call rollups (a parent or child outside the spans given is not seen, as with any join of a window). Read
    with one span per id (a late child of a Zipkin shared server half still names the client half's id)."""
    keys = ", ".join(CALL_KEY)
    sql = (
        f"SELECT {keys}, sum(calls) AS calls, sum(errors) AS errors "  # noqa: S608 (fixed text)
        f"FROM ({call_rows_sql('spans')}) GROUP BY {keys}"
    )
    rows = query_arrow(sql, spans=call_inputs(separate_shared_spans(spans.select(CALL_SPAN_COLUMNS))))
    return rows.select(CALL_SCHEMA.names).cast(CALL_SCHEMA)
