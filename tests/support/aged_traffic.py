"""Synthetic traffic at any time in the past, built column by column (fast enough for days of it in a test):
whole traces of four spans over four services, with attributes and resources as instrumented services send
them, and log records tied to them."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from spyglass.model.log_schema import LOG_SCHEMA
from spyglass.model.schema import SPAN_SCHEMA, STORED_SPAN_SCHEMA
from spyglass.satellite.aggregator import Aggregator
from spyglass.store.protocol import Store

SECOND_NS = 10**9
HOUR_NS = 3600 * SECOND_NS
DAY_NS = 24 * HOUR_NS
#: A day boundary, so that rollup tiers (minutes, hours) align with the simulated days.
EPOCH_DAY_NS = 1_700_000_000 * SECOND_NS // DAY_NS * DAY_NS

#: (service, operation, kind) of a trace's four spans: the root first.
SHAPE = [
    ("frontend", "GET /checkout", 2),
    ("cart", "get cart", 2),
    ("cart", "SELECT cart", 3),
    ("payments", "charge", 2),
]
ROOT_SERVICE, ROOT_OPERATION, _ = SHAPE[0]


def _ids(rng: np.random.Generator, count: int, width: int) -> pa.Array:
    return pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(width), count, [None, pa.py_buffer(rng.bytes(count * width))]
    )


def _maps(keys: list[str], values: list[npt.NDArray[np.str_] | list[str]], count: int) -> pa.Array:
    """One ``MAP<string,string>`` per row with the same keys on every row."""
    width = len(keys)
    offsets = pa.array(np.arange(0, (count + 1) * width, width, dtype=np.int32))
    key_column = pa.array(np.tile(np.array(keys, dtype=object), count), pa.string())
    value_column = pa.array(
        np.stack([np.asarray(v, dtype=object) for v in values], axis=1).reshape(-1), pa.string()
    )
    return pa.MapArray.from_arrays(offsets, key_column, value_column)


def traffic(
    start_ns: int, end_ns: int, traces: int, rng: np.random.Generator
) -> tuple[pa.Table, npt.NDArray[np.int64]]:
    """``traces`` traces starting uniformly in ``[start_ns, end_ns)`` as ``SPAN_SCHEMA`` spans in start order,
    and the root spans' durations (ns), from which the truth about their latency is computed."""
    spans_per_trace = len(SHAPE)
    count = traces * spans_per_trace
    trace_starts = np.sort(rng.integers(start_ns, end_ns, traces))
    # Latency with a body and a tail: a p99 well above the median, as real services have.
    root_ms = rng.lognormal(mean=np.log(80.0), sigma=0.6, size=traces)
    root_ns = (root_ms * 1e6).astype(np.int64)
    shares = np.array([1.0, 0.3, 0.2, 0.4])
    durations = (root_ns[:, None] * shares[None, :]).astype(np.int64).reshape(-1)
    offsets = np.array([0, 1_000_000, 2_000_000, 40_000_000])
    starts = (trace_starts[:, None] + offsets[None, :]).reshape(-1)
    trace_ids = _ids(rng, traces, 16).take(pa.array(np.repeat(np.arange(traces), spans_per_trace)))
    span_ids = _ids(rng, count, 8)
    roots = np.arange(traces) * spans_per_trace
    parent_index = np.repeat(roots, spans_per_trace)
    is_root = np.tile(np.arange(spans_per_trace) == 0, traces)
    parents = pc.if_else(
        pa.array(is_root), pa.scalar(None, pa.binary(8)), span_ids.take(pa.array(parent_index))
    )
    errors = rng.random(count) < 0.01
    services = np.array([s for s, _, _ in SHAPE], dtype=object)[np.tile(np.arange(spans_per_trace), traces)]
    names = np.array([n for _, n, _ in SHAPE], dtype=object)[np.tile(np.arange(spans_per_trace), traces)]
    kinds = np.array([k for _, _, k in SHAPE], dtype=np.int8)[np.tile(np.arange(spans_per_trace), traces)]
    customers = np.char.add("c", rng.integers(0, 500, count).astype(str))
    hosts = np.char.add(services.astype(str), np.char.add("-", rng.integers(0, 4, count).astype(str)))
    table = pa.table(
        {
            "trace_id": trace_ids,
            "span_id": span_ids,
            "parent_span_id": parents,
            "trace_state": pa.nulls(count, pa.string()),
            "service": pa.array(services, pa.string()),
            "name": pa.array(names, pa.string()),
            "kind": pa.array(kinds, pa.int8()),
            "start_ns": pa.array(starts, pa.int64()),
            "duration_ns": pa.array(durations, pa.int64()),
            "status_code": pa.array(np.where(errors, 2, 0).astype(np.int8), pa.int8()),
            "status_message": pa.nulls(count, pa.string()),
            "attributes": _maps(["http.route", "customer.id"], [names.astype(str), customers], count),
            "attribute_types": pa.nulls(count, SPAN_SCHEMA.field("attribute_types").type),
            "resource": _maps(
                ["service.name", "host.name", "service.version"],
                [services.astype(str), hosts, ["1.4.2"] * count],
                count,
            ),
            "resource_types": pa.nulls(count, SPAN_SCHEMA.field("resource_types").type),
            "scope_name": pa.array(["io.opentelemetry.http"] * count, pa.string()),
            "scope_version": pa.nulls(count, pa.string()),
            "events": pa.nulls(count, SPAN_SCHEMA.field("events").type),
            "links": pa.nulls(count, SPAN_SCHEMA.field("links").type),
        }
    ).cast(SPAN_SCHEMA)
    return table, root_ns


def stored(spans: pa.Table) -> pa.Table:
    """Spans as the satellite writes a kept trace: with its sample weight (1: everything kept)."""
    weights = pa.array(np.ones(spans.num_rows), pa.float64())
    return spans.append_column(STORED_SPAN_SCHEMA.field("sample_weight"), weights).cast(STORED_SPAN_SCHEMA)


def logs_for(spans: pa.Table, every: int = 8) -> pa.Table:
    """One log record for every ``every``-th span, at its start, carrying its trace and span id."""
    chosen = spans.take(pa.array(np.arange(0, spans.num_rows, every)))
    count = chosen.num_rows
    columns = {
        "time_ns": chosen.column("start_ns"),
        "observed_time_ns": chosen.column("start_ns"),
        "trace_id": chosen.column("trace_id"),
        "span_id": chosen.column("span_id"),
        "severity_number": pa.array(np.full(count, 9, np.int8)),
        "severity_text": pa.array(["INFO"] * count, pa.string()),
        "body": pa.array(["cart loaded"] * count, pa.string()),
        "service": chosen.column("service"),
    }
    return pa.table(
        {field.name: columns.get(field.name, pa.nulls(count, field.type)) for field in LOG_SCHEMA}
    ).cast(LOG_SCHEMA)


def write_as_the_satellite(store: Store, aggregator: Aggregator, spans: pa.Table) -> None:
    """Spans written as the satellite writes them: kept (``stored``), their logs (``logs_for``), and the rollups
    the aggregator drains from them."""
    store.write(stored(spans))
    store.write_logs(logs_for(spans))
    aggregator.add(spans)
    rows = aggregator.drain(final=True)
    with aggregator.publishing(rows):
        store.write_rollups(rows)
