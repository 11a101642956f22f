"""Benchmark the stores side by side: write throughput, bytes per span, trace-by-id and search latency.

Spans are generated with numpy/pyarrow column operations (no Python loop per span), as realistic traces:
~10 spans per trace over 6 services and a dozen operations, span attributes (http.route, customer.id with many
values, http.status_code) and resource attributes (service.name, service.version, host.name). The same spans
go to each store: DuckDB (a file) and ClickHouse (in-process chDB on a directory, or a server with
``--clickhouse-url``), written in the same batches and asked the same queries.

    .venv/bin/python bench/query_store.py --spans 1000000 [--store duckdb|clickhouse|both]
"""

from __future__ import annotations

# First: spyglass sets numpy's CPU dispatch before numpy loads, as in `spyglass serve` (numpy_sort_dispatch).
import spyglass  # noqa: F401

# isort: split

import argparse
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spyglass.model.schema import (
    ATTRIBUTE_TYPES,
    ATTRIBUTES,
    EVENT,
    LINK,
    STORED_SPAN_SCHEMA,
    SpanKind,
    StatusCode,
    ValueType,
)
from spyglass.model.span_fingerprint import SpanFingerprint, fingerprint
from spyglass.store.clickhouse_connection import connect
from spyglass.store.clickhouse_store import ClickHouseStore
from spyglass.store.duckdb_store import DuckDBStore
from spyglass.store.protocol import Store, TraceQuery

SERVICES = ["frontend", "checkout", "cart", "payment", "inventory", "users"]
#: Two operations per service: (operation, http.route).
OPERATIONS = [
    ("GET /", "/"),
    ("GET /product/{id}", "/product/{id}"),
    ("POST /checkout", "/checkout"),
    ("PlaceOrder", "/orders"),
    ("GetCart", "/cart"),
    ("AddItem", "/cart/items"),
    ("Charge", "/charge"),
    ("Refund", "/refund"),
    ("CheckStock", "/stock"),
    ("ReserveStock", "/stock/reserve"),
    ("GetUser", "/users/{id}"),
    ("Authenticate", "/auth"),
]
CUSTOMERS = 20_000
HOSTS_PER_SERVICE = 4
VERSIONS = ["1.4.0", "1.4.1", "1.5.0"]
SPAN_ATTRIBUTE_KEYS = ["http.route", "customer.id", "http.status_code"]
RESOURCE_KEYS = ["service.name", "service.version", "host.name"]


def _map_array(offsets: np.ndarray, keys: pa.Array, items: pa.Array, map_type: pa.DataType) -> pa.Array:
    return pa.MapArray.from_arrays(pa.array(offsets, pa.int32()), keys, items, type=map_type)


def _interleave(columns: list[np.ndarray]) -> np.ndarray:
    """Row-major interleave: [a0, b0, c0, a1, b1, c1, ...]."""
    return np.stack(columns, axis=1).reshape(-1)


def _fixed_binary(raw: bytes, width: int) -> pa.Array:
    return pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(width), len(raw) // width, [None, pa.py_buffer(raw)]
    )


def generate_traces(
    n_spans: int, seed: int = 7, start_ns: int = 1_700_000_000_000_000_000, window_s: float = 3600.0
) -> tuple[pa.Table, np.ndarray]:
    """Build about ``n_spans`` spans of realistic traces, whole traces in time order, as one table; also
    returns the offset of each trace's first row (for cutting write batches at trace boundaries)."""
    rng = np.random.default_rng(seed)
    spans_per_trace = rng.integers(4, 17, size=max(1, n_spans // 10))  # mean 10
    n_traces = len(spans_per_trace)
    n = int(spans_per_trace.sum())
    trace_offsets = np.concatenate([[0], np.cumsum(spans_per_trace)[:-1]])
    trace_of_span = np.repeat(np.arange(n_traces), spans_per_trace)
    position = np.arange(n) - trace_offsets[trace_of_span]
    is_root = position == 0

    trace_ids_raw = rng.bytes(16 * n_traces)
    trace_ids = _fixed_binary(trace_ids_raw, 16).take(pa.array(trace_of_span))
    span_ids = _fixed_binary(rng.bytes(8 * n), 8)
    # Parent: an earlier span of the same trace, so the trace is a tree rooted at position 0.
    parent_position = np.floor(rng.random(n) * position).astype(np.int64)
    parent_index = trace_offsets[trace_of_span] + parent_position
    parent_span_ids = span_ids.take(pa.array(parent_index, mask=is_root))

    # Roots are mostly in frontend, children anywhere; two operations per service.
    service_index = rng.integers(0, len(SERVICES), size=n)
    service_index[is_root] = np.where(rng.random(int(is_root.sum())) < 0.7, 0, 1)
    operation_index = service_index * 2 + rng.integers(0, 2, size=n)
    kind = rng.choice(
        np.array([SpanKind.SERVER, SpanKind.CLIENT, SpanKind.INTERNAL], dtype=np.int8),
        size=n,
        p=[0.45, 0.45, 0.1],
    )
    kind[is_root] = SpanKind.SERVER

    trace_start = start_ns + np.sort(rng.integers(0, int(window_s * 1e9), size=n_traces))
    span_offset_ns = position * rng.integers(200_000, 2_000_000, size=n)
    start = trace_start[trace_of_span] + span_offset_ns
    duration = rng.lognormal(mean=np.log(5e6), sigma=1.0, size=n).astype(np.int64) + 10_000
    is_error = rng.random(n) < 0.02
    status_code = np.where(is_error, StatusCode.ERROR, StatusCode.UNSET).astype(np.int8)

    # One customer per trace, carried by every span of it.
    customer_of_trace = rng.integers(0, CUSTOMERS, size=n_traces)
    customer = customer_of_trace[trace_of_span]
    http_status = np.where(is_error, 500, 200)

    text_pool = pa.array(
        [route for _, route in OPERATIONS]
        + [f"cust-{i:05d}" for i in range(CUSTOMERS)]
        + ["200", "500"]
        + SERVICES
        + VERSIONS
        + [f"{service}-{h}" for service in SERVICES for h in range(HOSTS_PER_SERVICE)],
        pa.string(),
    )
    base_customer = len(OPERATIONS)
    base_status = base_customer + CUSTOMERS
    base_service = base_status + 2
    base_version = base_service + len(SERVICES)
    base_host = base_version + len(VERSIONS)
    key_pool = pa.array(SPAN_ATTRIBUTE_KEYS + RESOURCE_KEYS, pa.string())

    attribute_values = text_pool.take(
        pa.array(
            _interleave(
                [
                    operation_index,
                    base_customer + customer,
                    base_status + (http_status == 500).astype(np.int64),
                ]
            )
        )
    )
    attribute_keys = key_pool.take(pa.array(np.tile(np.arange(3), n)))
    attributes = _map_array(np.arange(0, 3 * n + 1, 3), attribute_keys, attribute_values, ATTRIBUTES)
    attribute_types = _map_array(
        np.arange(0, n + 1),
        key_pool.take(pa.array(np.full(n, 2))),
        pa.array(np.full(n, ValueType.INT, dtype=np.int8)),
        ATTRIBUTE_TYPES,
    )
    version = (service_index + trace_of_span // 5000) % len(VERSIONS)
    host = service_index * HOSTS_PER_SERVICE + rng.integers(0, HOSTS_PER_SERVICE, size=n)
    resource = _map_array(
        np.arange(0, 3 * n + 1, 3),
        key_pool.take(pa.array(np.tile(np.arange(3, 6), n))),
        text_pool.take(
            pa.array(_interleave([base_service + service_index, base_version + version, base_host + host]))
        ),
        ATTRIBUTES,
    )
    empty_types = _map_array(
        np.zeros(n + 1, dtype=np.int64), pa.array([], pa.string()), pa.array([], pa.int8()), ATTRIBUTE_TYPES
    )

    # Error spans carry one exception event.
    event_rows = np.flatnonzero(is_error)
    n_events = len(event_rows)
    event_offsets = np.concatenate([[0], np.cumsum(is_error)])
    exception_keys = pa.array(["exception.type", "exception.message"])
    events_struct = pa.StructArray.from_arrays(
        [
            pa.array(start[event_rows] + duration[event_rows] // 2, pa.int64()),
            pa.array(np.full(n_events, "exception", dtype=object), pa.string()),
            _map_array(
                np.arange(0, 2 * n_events + 1, 2),
                exception_keys.take(pa.array(np.tile([0, 1], n_events))),
                pa.array(
                    np.tile(np.array(["TimeoutError", "upstream timed out"], dtype=object), n_events),
                    pa.string(),
                ),
                ATTRIBUTES,
            ),
            _map_array(
                np.zeros(n_events + 1, dtype=np.int64),
                pa.array([], pa.string()),
                pa.array([], pa.int8()),
                ATTRIBUTE_TYPES,
            ),
        ],
        fields=list(EVENT),
    )
    events = pa.ListArray.from_arrays(
        pa.array(event_offsets, pa.int32()), events_struct, type=pa.list_(EVENT)
    )

    # 1% of spans link to the trace before theirs (a batch consumer, say).
    has_link = (rng.random(n) < 0.01) & ~is_root
    link_rows = np.flatnonzero(has_link)
    n_links = len(link_rows)
    links_struct = pa.StructArray.from_arrays(
        [
            _fixed_binary(trace_ids_raw, 16).take(pa.array(np.maximum(trace_of_span[link_rows] - 1, 0))),
            span_ids.take(pa.array(trace_offsets[np.maximum(trace_of_span[link_rows] - 1, 0)])),
            pa.nulls(n_links, pa.string()),
            _map_array(
                np.zeros(n_links + 1, dtype=np.int64),
                pa.array([], pa.string()),
                pa.array([], pa.string()),
                ATTRIBUTES,
            ),
            _map_array(
                np.zeros(n_links + 1, dtype=np.int64),
                pa.array([], pa.string()),
                pa.array([], pa.int8()),
                ATTRIBUTE_TYPES,
            ),
        ],
        fields=list(LINK),
    )
    links = pa.ListArray.from_arrays(
        pa.array(np.concatenate([[0], np.cumsum(has_link)]), pa.int32()), links_struct, type=pa.list_(LINK)
    )

    services = pa.array(SERVICES, pa.string()).take(pa.array(service_index))
    table = pa.Table.from_arrays(
        [
            trace_ids,
            span_ids,
            parent_span_ids,
            pa.nulls(n, pa.string()),
            services,
            pa.array([op for op, _ in OPERATIONS], pa.string()).take(pa.array(operation_index)),
            pa.array(kind, pa.int8()),
            pa.array(start, pa.int64()),
            pa.array(duration, pa.int64()),
            pa.array(status_code, pa.int8()),
            pc.if_else(pa.array(is_error), "upstream timed out", pa.scalar(None, pa.string())),
            attributes,
            attribute_types,
            resource,
            empty_types,
            pa.array(np.full(n, "io.opentelemetry.instrumentation", dtype=object), pa.string()),
            pa.array(np.full(n, "2.1.0", dtype=object), pa.string()),
            events,
            links,
            pa.array(np.ones(n), pa.float64()),
        ],
        schema=STORED_SPAN_SCHEMA,
    )
    return table, trace_offsets


def write_batches(table: pa.Table, trace_offsets: np.ndarray, batch_spans: int) -> Iterator[pa.Table]:
    """Slices of about ``batch_spans`` spans that never split a trace, as the sampler writes whole traces."""
    cuts = trace_offsets[np.searchsorted(trace_offsets, np.arange(batch_spans, table.num_rows, batch_spans))]
    bounds = [0, *sorted(set(cuts.tolist())), table.num_rows]
    for begin, end in zip(bounds[:-1], bounds[1:], strict=True):
        if end > begin:
            yield table.slice(begin, end - begin)


def _percentiles_ms(samples_s: list[float]) -> tuple[float, float]:
    values = np.array(samples_s) * 1e3
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


@dataclass(frozen=True)
class Figure:
    """One measured figure of one store."""

    what: str
    value: str
    unit: str
    conditions: str


def measure(
    name: str,
    open_store: Callable[[], Store],
    reopen_store: Callable[[Store], Store],
    disk_bytes: Callable[[Store], int],
    table: pa.Table,
    trace_offsets: np.ndarray,
    batch_spans: int,
    seed: int,
) -> list[Figure]:
    """Write ``table`` to a fresh store in batches, then time trace lookups and searches; same queries for all."""
    n_spans, n_traces = table.num_rows, len(trace_offsets)
    store = open_store()
    began = time.perf_counter()
    for batch in write_batches(table, trace_offsets, batch_spans):
        store.write(batch)
    write_s = time.perf_counter() - began
    store = reopen_store(store)
    bytes_per_span = disk_bytes(store) / n_spans

    rng = np.random.default_rng(seed + 1)
    trace_ids = table.column("trace_id").take(pa.array(trace_offsets)).to_pylist()
    by_id: list[float] = []
    held: list[tuple[bytes, SpanFingerprint]] = []
    for index in rng.integers(0, n_traces, size=200):
        began = time.perf_counter()
        found = store.trace(trace_ids[index])
        by_id.append(time.perf_counter() - began)
        assert found.num_rows > 0, f"{name}: trace not found"
        held.append((trace_ids[index], fingerprint(found.column("span_id"))))
    # What a lookup costs the store when the recall buffer holds the trace's copies: the summary alone.
    by_summary: list[float] = []
    for trace_id, copies in held:
        began = time.perf_counter()
        unread = store.trace_unless_held(trace_id, copies)
        by_summary.append(time.perf_counter() - began)
        assert unread is None, f"{name}: the copies did not stand for the stored spans"

    def timed(queries: list[TraceQuery]) -> tuple[list[float], float]:
        samples, hits = [], 0
        for query in queries:
            began = time.perf_counter()
            hits += store.find_traces(query).num_rows
            samples.append(time.perf_counter() - began)
        return samples, hits / len(queries)

    customers = rng.integers(0, CUSTOMERS, size=50)
    by_attribute, hits_attribute = timed(
        [
            TraceQuery(service="frontend", attributes=(("customer.id", f"cust-{c:05d}"),), limit=20)
            for c in customers
        ]
    )
    by_resource, hits_resource = timed(
        [
            TraceQuery(
                service="checkout", attributes=(("host.name", f"cart-{c % HOSTS_PER_SERVICE}"),), limit=20
            )
            for c in customers
        ]
    )
    by_service, hits_service = timed([TraceQuery(service=SERVICES[c % 2], limit=20) for c in customers])
    window_start = int(table.column("start_ns")[0].as_py())
    windowed, hits_windowed = timed(
        [
            TraceQuery(
                service="frontend",
                attributes=(("customer.id", f"cust-{c:05d}"),),
                start_ns=window_start + 2_400 * 10**9,
                end_ns=window_start + 3_000 * 10**9,
                limit=20,
            )
            for c in customers
        ]
    )
    wide, hits_wide = timed([TraceQuery(service="frontend", limit=20_000) for _ in range(10)])
    graph: list[float] = []
    for _ in range(10):
        began = time.perf_counter()
        edges = store.calls(window_start, int(table.column("start_ns")[-1].as_py()) + 1)
        graph.append(time.perf_counter() - began)
    store.close()

    def pair(samples: list[float], digits: int) -> str:
        p50, p99 = _percentiles_ms(samples)
        return f"{p50:.{digits}f} / {p99:.{digits}f}"

    return [
        Figure("write", f"{n_spans / write_s:,.0f}", "spans/s", f"batches of ~{batch_spans:,} spans"),
        Figure("stored size", f"{bytes_per_span:,.1f}", "bytes/span", "on disk after close"),
        Figure("trace by id p50 / p99", pair(by_id, 2), "ms", "200 random known ids"),
        Figure(
            "trace by id, copies held p50 / p99",
            pair(by_summary, 2),
            "ms",
            "the same ids; the summary read alone (trace_unless_held), as when the recall buffer answers",
        ),
        Figure(
            "search service + span attribute p50 / p99",
            pair(by_attribute, 1),
            "ms",
            f"customer.id, 50 queries, limit 20, {hits_attribute:.1f} hits avg",
        ),
        Figure(
            "search service + resource attribute p50 / p99",
            pair(by_resource, 1),
            "ms",
            f"host.name, 50 queries, limit 20, {hits_resource:.1f} hits avg",
        ),
        Figure(
            "search service + attribute, 10 min window p50 / p99",
            pair(windowed, 1),
            "ms",
            f"50 queries, limit 20, {hits_windowed:.1f} hits avg",
        ),
        Figure(
            "search service alone p50 / p99",
            pair(by_service, 1),
            "ms",
            f"50 queries, limit 20, {hits_service:.1f} hits avg",
        ),
        Figure(
            "search service alone, limit 20000 p50 / p99",
            pair(wide, 1),
            "ms",
            f"10 queries, {hits_wide:.0f} hits avg",
        ),
        Figure(
            "calls between services, whole window p50 / p99",
            pair(graph, 1),
            "ms",
            f"Store.calls (the dependency graph's rows): {edges.num_rows:,} rows, 10 queries",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=1_000_000, help="spans to generate and write")
    parser.add_argument(
        "--store", choices=["duckdb", "clickhouse", "both"], default="both", help="which stores to measure"
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="where to put the stores' files (default: temp)"
    )
    parser.add_argument(
        "--clickhouse-url",
        default=None,
        help="a ClickHouse server (http://user:pass@host:8123/database) instead of in-process chDB",
    )
    parser.add_argument("--batch-spans", type=int, default=10_000, help="spans per write")
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads")
    parser.add_argument("--memory-limit-mb", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="spyglass-bench-") as temp_dir:
        data_dir = args.data_dir or Path(temp_dir)
        data_dir.mkdir(parents=True, exist_ok=True)

        began = time.perf_counter()
        table, trace_offsets = generate_traces(args.spans, seed=args.seed)
        generate_s = time.perf_counter() - began
        n_spans, n_traces = table.num_rows, len(trace_offsets)

        results: dict[str, list[Figure]] = {}
        if args.store in ("duckdb", "both"):
            path = data_dir / "spyglass.duckdb"
            for stale in (path, Path(str(path) + ".wal")):
                stale.unlink(missing_ok=True)

            def open_duckdb() -> Store:
                return DuckDBStore(path, memory_limit_mb=args.memory_limit_mb, threads=args.threads)

            def reopen_duckdb(store: Store) -> Store:
                store.close()  # checkpoint, so the file size is what stays on disk
                return open_duckdb()

            def duckdb_bytes(store: Store) -> int:
                assert isinstance(store, DuckDBStore)
                return store.disk_bytes()

            results["duckdb"] = measure(
                "duckdb",
                open_duckdb,
                reopen_duckdb,
                duckdb_bytes,
                table,
                trace_offsets,
                args.batch_spans,
                args.seed,
            )
        if args.store in ("clickhouse", "both"):
            # A new database each run, so every run writes to empty tables.
            database = f"spyglass_bench_{uuid.uuid4().hex[:12]}"
            if args.clickhouse_url:
                url = urlunsplit(urlsplit(args.clickhouse_url)._replace(path="/" + database))
            else:
                url = f"chdb://{data_dir / 'clickhouse'}?database={database}"

            def open_clickhouse() -> Store:
                return ClickHouseStore(url)

            def reopen_clickhouse(store: Store) -> Store:
                store.close()
                return ClickHouseStore(url)

            def clickhouse_bytes(store: Store) -> int:
                assert isinstance(store, ClickHouseStore)
                return store.disk_bytes()

            results["clickhouse"] = measure(
                "clickhouse",
                open_clickhouse,
                reopen_clickhouse,
                clickhouse_bytes,
                table,
                trace_offsets,
                args.batch_spans,
                args.seed,
            )
            conn = connect(url)
            conn.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")
            conn.close()

    header = ("what", *results, "unit", "conditions")
    stores = list(results.values())
    rows = [
        (
            "generate spans (numpy/pyarrow)",
            *[f"{n_spans / generate_s:,.0f}"] * len(stores),
            "spans/s",
            f"{n_spans:,} spans, {n_traces:,} traces",
        )
    ]
    for index, figure in enumerate(stores[0]):
        rows.append(
            (figure.what, *[figures[index].value for figures in stores], figure.unit, figure.conditions)
        )
    conditions = {
        "duckdb": f"DuckDB {args.threads} threads",
        "clickhouse": args.clickhouse_url or "chDB in-process",
    }
    rows.append(("store", *[conditions[name] for name in results], "", ""))
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
