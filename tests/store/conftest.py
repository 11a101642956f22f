"""Store fixtures: one ``store`` per backend, and realistic synthetic traces to put in it.

The conformance suite runs against every backend in ``BACKENDS``: DuckDB, ClickHouse in-process (chDB, one
engine per test process, one fresh database per test) and, when ``SPYGLASS_TEST_CLICKHOUSE_URL`` names a
server (``http://user:pass@host:8123``), ClickHouse on that server, again one fresh database per test.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa
import pytest

from spyglass.model.builder import SpanBatchBuilder, encode_attributes
from spyglass.model.schema import STORED_SPAN_SCHEMA, SpanKind, StatusCode
from spyglass.store.clickhouse_connection import connect
from spyglass.store.clickhouse_store import ClickHouseStore
from spyglass.store.duckdb_store import DuckDBStore
from spyglass.store.protocol import Store

CLICKHOUSE_SERVER_URL = os.environ.get("SPYGLASS_TEST_CLICKHOUSE_URL", "")
BACKENDS = ["duckdb", "clickhouse"] + (["clickhouse-server"] if CLICKHOUSE_SERVER_URL else [])

BASE_NS = 1_700_000_000_000_000_000
MS = 1_000_000
SECOND = 1_000_000_000


@functools.cache
def _chdb_directory() -> str:
    """The one chDB engine directory of this test process (chDB runs one engine path per process).

    A client kept open for the whole run keeps the engine up between tests (starting it costs ~0.2 s).
    """
    import clickhouse_connect

    directory = tempfile.mkdtemp(prefix="spyglass-chdb-")
    keeper = clickhouse_connect.get_client(interface="chdb", path=directory)

    def shut_down() -> None:
        keeper.close()
        shutil.rmtree(directory, ignore_errors=True)

    atexit.register(shut_down)
    return directory


def fresh_database() -> str:
    return f"spyglass_test_{uuid.uuid4().hex[:16]}"


def chdb_url(database: str | None = None) -> str:
    """A ``chdb://`` URL on this process's engine, in a new database unless one is named."""
    return f"chdb://{_chdb_directory()}?database={database or fresh_database()}"


def clickhouse_server_url(database: str | None = None) -> str:
    """``SPYGLASS_TEST_CLICKHOUSE_URL`` with a new database (unless one is named) as its path."""
    parts = urlsplit(CLICKHOUSE_SERVER_URL)
    return urlunsplit(parts._replace(path="/" + (database or fresh_database())))


def open_store(backend: str, directory: Path) -> Store:
    """A fresh, empty store of one backend, keeping its data under ``directory`` (or a new database)."""
    if backend == "duckdb":
        return DuckDBStore(directory / "spyglass.duckdb")
    if backend == "clickhouse":
        return ClickHouseStore(chdb_url())
    if backend == "clickhouse-server":
        return ClickHouseStore(clickhouse_server_url())
    raise ValueError(f"unknown store backend {backend!r}")


def discard_store(backend: str, opened: Store) -> None:
    """Close a store from ``open_store``, dropping a ClickHouse test database so the engine stays small."""
    opened.close()
    if isinstance(opened, ClickHouseStore):
        url = chdb_url(opened.database) if backend == "clickhouse" else clickhouse_server_url(opened.database)
        conn = connect(url)
        try:
            conn.command(f"DROP DATABASE IF EXISTS `{opened.database}` SYNC")
        finally:
            conn.close()


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = open_store(request.param, tmp_path)
    yield opened
    discard_store(request.param, opened)


def trace_id_of(seed: str) -> bytes:
    return hashlib.md5(seed.encode()).digest()


def span_id_of(trace_id: bytes, index: int) -> bytes:
    return hashlib.md5(trace_id + bytes([index])).digest()[:8]


def stored(batch: pa.RecordBatch, sample_weight: float = 1.0) -> pa.Table:
    """A span batch as the store takes it: with its ``sample_weight`` column."""
    table = pa.Table.from_batches([batch])
    weights = pa.array([sample_weight] * table.num_rows, pa.float64())
    return table.append_column(STORED_SPAN_SCHEMA.field("sample_weight"), weights).cast(STORED_SPAN_SCHEMA)


@dataclass(frozen=True)
class TraceInfo:
    """What a synthetic trace was made of, so tests can compute the answer a query should give."""

    trace_id: bytes
    root_service: str
    root_operation: str
    start_ns: int
    duration_ns: int
    error: bool
    customer: str
    version: str
    sample_weight: float
    span_count: int = 6


def make_trace(
    trace_id: bytes,
    *,
    start_ns: int = BASE_NS,
    root_service: str = "frontend",
    root_operation: str = "GET /checkout",
    duration_ns: int = 100 * MS,
    error: bool = False,
    customer: str = "cust-1",
    version: str = "1.4.0",
    sample_weight: float = 1.0,
) -> pa.Table:
    """One realistic six-span trace: a web request that charges a payment and publishes a receipt.

    It carries every kind, typed span and resource attributes, an exception event when ``error``, a span link,
    trace state and scope, so round trips exercise every column. The root span covers the whole trace, so the
    trace duration is ``duration_ns``; only the payment span fails.
    """
    span = [span_id_of(trace_id, i) for i in range(6)]
    step = duration_ns // 10

    def resource(service: str, host: str) -> tuple[list[tuple[str, str]], list[tuple[str, int]]]:
        return encode_attributes(
            [
                ("service.name", service),
                ("service.version", version),
                ("host.name", host),
                ("process.pid", 4242),
            ]
        )

    builder = SpanBatchBuilder()
    builder.add(
        trace_id=trace_id,
        span_id=span[0],
        parent_span_id=None,
        trace_state="vendor=abc",
        service=root_service,
        name=root_operation,
        kind=SpanKind.SERVER,
        start_ns=start_ns,
        duration_ns=duration_ns,
        status_code=StatusCode.ERROR if error else StatusCode.UNSET,
        status_message="charge failed" if error else None,
        attributes=encode_attributes(
            [
                ("http.route", "/checkout"),
                ("http.status_code", 502 if error else 200),
                ("customer.id", customer),
                ("cart.items", ["sku-1", "sku-2"]),
                ("feature.flags", {"new_checkout": True}),
                ("sampled.ratio", 0.5),
                ("user.premium", True),
                ("request.signature", b"\x00\x01\xff"),
            ]
        ),
        resource=resource(root_service, f"{root_service}-1"),
        scope_name="opentelemetry.instrumentation.asgi",
        scope_version="0.48b0",
    )
    builder.add(
        trace_id=trace_id,
        span_id=span[1],
        parent_span_id=span[0],
        service=root_service,
        name="render cart",
        kind=SpanKind.INTERNAL,
        start_ns=start_ns + step,
        duration_ns=step,
        attributes=encode_attributes([("cart.size", 2)]),
        resource=resource(root_service, f"{root_service}-1"),
        events=[
            {
                "time_ns": start_ns + step + 10,
                "name": "cache miss",
                "attributes": [("cache.key", "cart:1")],
                "attribute_types": [],
            },
            {
                "time_ns": start_ns + step + 20,
                "name": "rendered",
                "attributes": [("bytes", "2048")],
                "attribute_types": [("bytes", 2)],
            },
        ],
    )
    builder.add(
        trace_id=trace_id,
        span_id=span[2],
        parent_span_id=span[0],
        service=root_service,
        name="POST /charge",
        kind=SpanKind.CLIENT,
        start_ns=start_ns + 3 * step,
        duration_ns=4 * step,
        status_code=StatusCode.ERROR if error else StatusCode.UNSET,
        attributes=encode_attributes([("peer.service", "payment"), ("http.method", "POST")]),
        resource=resource(root_service, f"{root_service}-1"),
    )
    builder.add(
        trace_id=trace_id,
        span_id=span[3],
        parent_span_id=span[2],
        service="payment",
        name="Charge",
        kind=SpanKind.SERVER,
        start_ns=start_ns + 3 * step + 5,
        duration_ns=4 * step - 10,
        status_code=StatusCode.ERROR if error else StatusCode.OK,
        status_message="card declined" if error else None,
        attributes=encode_attributes([("customer.id", customer), ("payment.amount", 12.5)]),
        resource=resource("payment", "payment-7"),
        scope_name="opentelemetry.instrumentation.grpc",
        scope_version="0.48b0",
        events=(
            [
                {
                    "time_ns": start_ns + 6 * step,
                    "name": "exception",
                    "attributes": [("exception.type", "CardDeclined"), ("exception.escaped", "true")],
                    "attribute_types": [("exception.escaped", 1)],
                }
            ]
            if error
            else None
        ),
    )
    builder.add(
        trace_id=trace_id,
        span_id=span[4],
        parent_span_id=span[3],
        service="payment",
        name="publish receipt",
        kind=SpanKind.PRODUCER,
        start_ns=start_ns + 6 * step,
        duration_ns=step // 2,
        attributes=encode_attributes([("messaging.system", "kafka")]),
        resource=resource("payment", "payment-7"),
    )
    builder.add(
        trace_id=trace_id,
        span_id=span[5],
        parent_span_id=span[4],
        service="notifier",
        name="receive receipt",
        kind=SpanKind.CONSUMER,
        start_ns=start_ns + 8 * step,
        duration_ns=step,
        attributes=encode_attributes([("messaging.system", "kafka")]),
        resource=resource("notifier", "notifier-2"),
        links=[
            {
                "trace_id": trace_id_of("upstream batch"),
                "span_id": b"\x01" * 8,
                "trace_state": "vendor=xyz",
                "attributes": [("link.reason", "batch"), ("link.index", "3")],
                "attribute_types": [("link.index", 2)],
            }
        ],
    )
    return stored(builder.finish(), sample_weight)


@dataclass(frozen=True)
class Corpus:
    """Thirty traces one second apart with varied roots, durations, errors, customers and versions."""

    traces: list[TraceInfo]
    spans: pa.Table

    def ids(self, predicate: Callable[[TraceInfo], bool] | None = None) -> list[bytes]:
        """Ids of the traces matching ``predicate``, newest first, as ``find_traces`` orders them."""
        chosen = [t for t in self.traces if predicate is None or predicate(t)]
        return [t.trace_id for t in sorted(chosen, key=lambda t: t.start_ns, reverse=True)]


def make_corpus(count: int = 30) -> Corpus:
    infos: list[TraceInfo] = []
    tables: list[pa.Table] = []
    for i in range(count):
        info = TraceInfo(
            trace_id=trace_id_of(f"trace-{i}"),
            root_service="frontend" if i % 2 == 0 else "mobile-api",
            root_operation="GET /checkout" if i % 3 == 0 else "GET /cart",
            start_ns=BASE_NS + i * SECOND,
            duration_ns=(i + 1) * 10 * MS,
            error=i % 5 == 0,
            customer=f"cust-{i % 4}",
            version="1.4.0" if i < count // 2 else "1.5.0",
            sample_weight=1.0 if i % 2 == 0 else 4.0,
        )
        infos.append(info)
        tables.append(
            make_trace(
                info.trace_id,
                start_ns=info.start_ns,
                root_service=info.root_service,
                root_operation=info.root_operation,
                duration_ns=info.duration_ns,
                error=info.error,
                customer=info.customer,
                version=info.version,
                sample_weight=info.sample_weight,
            )
        )
    return Corpus(traces=infos, spans=pa.concat_tables(tables))


@pytest.fixture(scope="session")
def corpus() -> Corpus:
    return make_corpus()


@pytest.fixture
def populated(store: Store, corpus: Corpus) -> Store:
    """The store holding the corpus, written in three batches as the sampler would."""
    rows = corpus.spans.num_rows
    third = (rows // 3) // 6 * 6  # whole traces of six spans
    for begin, end in ((0, third), (third, 2 * third), (2 * third, rows)):
        store.write(corpus.spans.slice(begin, end - begin))
    return store
