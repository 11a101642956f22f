"""What only the ClickHouse store promises: it reads a table the OpenTelemetry Collector's exporter filled,
its migrations are idempotent, values reach ClickHouse only as bound parameters, and a spyglass server runs on
it end to end. Runs on chDB in-process (and on ``SPYGLASS_TEST_CLICKHOUSE_URL`` too where it makes sense)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import httpx
import pyarrow as pa
import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind as OtelSpanKind
from opentelemetry.trace import Status, StatusCode

from spyglass.model.schema import STORED_SPAN_SCHEMA, SpanKind
from spyglass.model.span_fingerprint import fingerprint
from spyglass.store.clickhouse_columns import hex_ids
from spyglass.store.clickhouse_connection import ClickHouseConnection, connect, parse_url
from spyglass.store.clickhouse_schema import _SUMMARY_SELECT, SCHEMA_VERSION, SUMMARIES, VERSIONS
from spyglass.store.clickhouse_store import ClickHouseStore
from spyglass.store.protocol import ScanFilter, TraceQuery
from tests.conftest import RunningServer
from tests.support.otel import http_exporter, provider

from .conftest import (
    BASE_NS,
    CLICKHOUSE_SERVER_URL,
    MS,
    SECOND,
    Corpus,
    chdb_url,
    clickhouse_server_url,
    fresh_database,
    make_trace,
    trace_id_of,
)

URL_MAKERS = [chdb_url] + ([clickhouse_server_url] if CLICKHOUSE_SERVER_URL else [])


@pytest.fixture(params=URL_MAKERS, ids=lambda maker: "chdb" if maker is chdb_url else "server")
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A URL naming a fresh database, dropped afterwards."""
    database = fresh_database()
    url: str = request.param(database)
    yield url
    conn = connect(url)
    try:
        conn.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")
    finally:
        conn.close()


@pytest.fixture
def raw(database_url: str) -> Iterator[ClickHouseConnection]:
    """A plain connection to the database, for doing what a Collector (or a person with a SQL shell) does."""
    conn = connect(database_url)
    yield conn
    conn.close()


# The exporter's table as a Collector creates it: no spyglass column, no spyglass table.
COLLECTOR_TABLE = """
CREATE TABLE otel_traces (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(T64, ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (Timestamp DateTime64(9), Name LowCardinality(String), Attributes Map(LowCardinality(String), String)) CODEC(ZSTD(1)),
    Links Nested (TraceId String, SpanId String, TraceState String, Attributes Map(LowCardinality(String), String)) CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1
) ENGINE = MergeTree
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp), Timestamp)
"""
COLLECTOR_INSERT = """
INSERT INTO otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind, ServiceName,
    ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration, StatusCode, StatusMessage,
    `Events.Timestamp`, `Events.Name`, `Events.Attributes`,
    `Links.TraceId`, `Links.SpanId`, `Links.TraceState`, `Links.Attributes`)
VALUES
"""
TRACE_A = "5b8efff798038103d269b633813fc60c"
TRACE_B = "0af7651916cd43dd8448eb211c80319c"


def collector_rows(trace_id: str, start_s: int, *, kind: str, server_kind: str, error: str) -> str:
    """Three spans of one trace as the exporter writes them (string kinds and statuses, hex ids, '' = absent)."""
    return f"""
    (toDateTime64('2023-11-14 22:13:{start_s:02d}.000000000', 9, 'UTC'), '{trace_id}', 'eee19b7ec3c1b174', '', '',
     'GET /orders', '{server_kind}', 'shop', {{'service.name': 'shop', 'host.name': 'shop-1'}}, 'otel.js', '1.2',
     {{'http.route': '/orders', 'customer.id': 'c-9'}}, 250000000, 'Unset', '',
     [toDateTime64('2023-11-14 22:13:{start_s:02d}.100000000', 9, 'UTC')], ['cache miss'], [{{'key': 'orders:1'}}],
     [], [], [], []),
    (toDateTime64('2023-11-14 22:13:{start_s:02d}.010000000', 9, 'UTC'), '{trace_id}', '1111111111111111',
     'eee19b7ec3c1b174', 'k=v', 'SELECT orders', '{kind}', 'shop', {{'service.name': 'shop'}}, '', '',
     {{'db.system': 'postgresql'}}, 200000000, '{error}', 'timeout',
     [], [], [], ['{TRACE_B}'], ['2222222222222222'], [''], [{{'reason': 'retry'}}]),
    (toDateTime64('2023-11-14 22:13:{start_s:02d}.020000000', 9, 'UTC'), '{trace_id}', '3333333333333333',
     '1111111111111111', '', 'query', 'Internal', 'postgres', {{'service.name': 'postgres'}}, '', '',
     {{}}, 1000, 'Ok', '', [], [], [], [], [], [], [])"""


def test_reads_a_table_the_collector_filled(raw: ClickHouseConnection, database_url: str) -> None:
    raw.command(COLLECTOR_TABLE)
    # One trace in the current exporter's strings, one in an older exporter's enum names.
    raw.command(
        COLLECTOR_INSERT + collector_rows(TRACE_A, 10, kind="Client", server_kind="Server", error="Error")
    )
    raw.command(
        COLLECTOR_INSERT
        + collector_rows(
            TRACE_B, 20, kind="SPAN_KIND_CLIENT", server_kind="SPAN_KIND_SERVER", error="STATUS_CODE_ERROR"
        )
    )
    start_ns = 1_699_999_990_000_000_000  # 2023-11-14 22:13:10 UTC

    store = ClickHouseStore(database_url)  # adds its columns and tables, and summarizes the existing spans
    try:
        assert store.span_count() == 6
        summaries = store.find_traces(TraceQuery()).to_pylist()
        assert [(s["trace_id"].hex(), s["root_service"], s["root_operation"]) for s in summaries] == [
            (TRACE_B, "shop", "GET /orders"),
            (TRACE_A, "shop", "GET /orders"),
        ]
        assert summaries[1] == {
            "trace_id": bytes.fromhex(TRACE_A),
            "root_service": "shop",
            "root_operation": "GET /orders",
            "start_ns": start_ns,
            "duration_ns": 250 * MS,
            "span_count": 3,
            "error_count": 1,
            "sample_weight": 1.0,  # no spyglass column was written: every stored trace stands for itself
        }

        for trace_hex in (TRACE_A, TRACE_B):
            spans = store.trace(bytes.fromhex(trace_hex))
            assert spans.schema.equals(STORED_SPAN_SCHEMA)
            rows = spans.to_pylist()
            assert [r["kind"] for r in rows] == [SpanKind.SERVER, SpanKind.CLIENT, SpanKind.INTERNAL]
            assert [r["status_code"] for r in rows] == [0, 2, 1]
            root, client, leaf = rows
            assert root["parent_span_id"] is None and client["parent_span_id"] == bytes.fromhex(
                "eee19b7ec3c1b174"
            )
            assert root["trace_state"] is None and client["trace_state"] == "k=v"
            assert root["status_message"] is None and client["status_message"] == "timeout"
            assert root["scope_name"] == "otel.js" and client["scope_name"] is None
            assert dict(root["attributes"]) == {"http.route": "/orders", "customer.id": "c-9"}
            assert root["attribute_types"] == [] and root["resource_types"] == []  # every value a string
            assert root["events"] == [
                {
                    "time_ns": root["start_ns"] + 100 * MS,
                    "name": "cache miss",
                    "attributes": [("key", "orders:1")],
                    "attribute_types": [],
                }
            ]
            assert client["links"] == [
                {
                    "trace_id": bytes.fromhex(TRACE_B),
                    "span_id": bytes.fromhex("2222222222222222"),
                    "trace_state": None,
                    "attributes": [("reason", "retry")],
                    "attribute_types": [],
                }
            ]
            assert leaf["duration_ns"] == 1000 and {r["sample_weight"] for r in rows} == {1.0}
            # The backfilled summary keeps the fingerprint of the Collector's hex span ids.
            assert (
                store.trace_unless_held(bytes.fromhex(trace_hex), fingerprint(spans.column("span_id")))
                is None
            )

        assert store.services() == ["postgres", "shop"]
        assert store.operations("shop") == [
            ("GET /orders", SpanKind.SERVER),
            ("SELECT orders", SpanKind.CLIENT),
        ]
        found = store.find_traces(TraceQuery(attributes=(("customer.id", "c-9"),), error=True))
        assert sorted(t.hex() for t in found.column("trace_id").to_pylist()) == sorted([TRACE_A, TRACE_B])
        assert store.find_traces(TraceQuery(service="postgres")).num_rows == 0
        scanned = store.scan(
            ["name", "duration_ns"], start_ns, start_ns + 60 * SECOND, ScanFilter(service="shop")
        )
        assert sorted(scanned.column("name").to_pylist()) == ["GET /orders"] * 2 + ["SELECT orders"] * 2

        # The Collector keeps writing after spyglass opened the table: the views summarize its inserts too.
        later = "1a2b3c4d5e6f708192a3b4c5d6e7f809"
        raw.command(
            COLLECTOR_INSERT + collector_rows(later, 40, kind="Client", server_kind="Server", error="Ok")
        )
        newest = store.find_traces(TraceQuery(limit=1)).to_pylist()[0]
        assert newest["trace_id"].hex() == later and newest["error_count"] == 0 and newest["span_count"] == 3
        assert store.trace(bytes.fromhex(later)).num_rows == 3
        later_ids = store.trace(bytes.fromhex(later)).column("span_id")
        assert store.trace_unless_held(bytes.fromhex(later), fingerprint(later_ids)) is None
    finally:
        store.close()


def test_a_version_1_database_reads_its_older_traces_from_their_spans(
    raw: ClickHouseConnection, database_url: str
) -> None:
    """Summaries written before they kept their span ids' fingerprint never stand for the spans, nor after a
    later write adds to them; traces written after the upgrade do."""
    old, new = trace_id_of("old"), trace_id_of("new")
    old_spans = make_trace(old)
    store = ClickHouseStore(database_url)
    store.write(old_spans.slice(0, 5))
    store.close()
    # As schema version 1 left it: the view without the fingerprint, the summaries without its columns.
    raw.command(f"DROP VIEW {SUMMARIES}_mv")
    raw.command(f"ALTER TABLE {SUMMARIES} DROP COLUMN SpanIdsXor, DROP COLUMN XorSpanCount")
    version_1_select = _SUMMARY_SELECT.replace(
        ",\n    groupBitXor(reinterpretAsUInt64(reverse(unhex(SpanId)))) AS SpanIdsXor,\n"
        "    toUInt64(count()) AS XorSpanCount",
        "",
    )
    assert "SpanIdsXor" not in version_1_select
    raw.command(f"CREATE MATERIALIZED VIEW {SUMMARIES}_mv TO {SUMMARIES} AS {version_1_select}")
    raw.command(f"TRUNCATE TABLE {VERSIONS}")
    raw.command(f"INSERT INTO {VERSIONS} (version) VALUES (1)")

    reopened = ClickHouseStore(database_url)
    try:
        answer = reopened.trace_unless_held(old, fingerprint(old_spans.slice(0, 5).column("span_id")))
        assert answer is not None and answer.num_rows == 5
        reopened.write(old_spans.slice(5))
        reopened.write(make_trace(new, start_ns=BASE_NS + SECOND))
        held_old = fingerprint(old_spans.column("span_id"))
        answer = reopened.trace_unless_held(old, held_old)
        assert answer is not None and answer.num_rows == 6
        assert reopened.trace_unless_held(new, fingerprint(reopened.trace(new).column("span_id"))) is None
        assert reopened.find_traces(TraceQuery(limit=10)).num_rows == 2  # the view summarizes again
    finally:
        reopened.close()


def test_spyglass_rows_are_the_exporter_layout(raw: ClickHouseConnection, database_url: str) -> None:
    """What spyglass writes reads as a Collector's rows would (for Grafana's ClickHouse plugin and SQL users)."""
    trace_id = trace_id_of("exporter layout")
    store = ClickHouseStore(database_url)
    try:
        store.write(make_trace(trace_id, error=True))
    finally:
        store.close()
    rows = raw.query_arrow(
        "SELECT TraceId, SpanId, ParentSpanId, SpanKind, StatusCode, ServiceName, SpanAttributes['customer.id'] AS customer, "
        "`Events.Name` AS events, `Links.TraceId` AS links, SampleWeight "
        "FROM otel_traces ORDER BY Timestamp"
    ).to_pylist()
    assert rows[0]["TraceId"] == trace_id.hex() and len(rows[0]["SpanId"]) == 16
    assert rows[0]["ParentSpanId"] == "" and rows[1]["ParentSpanId"] == rows[0]["SpanId"]
    assert [r["SpanKind"] for r in rows] == ["Server", "Internal", "Client", "Server", "Producer", "Consumer"]
    assert rows[0]["StatusCode"] == "Error" and rows[4]["StatusCode"] == "Unset"
    assert rows[0]["customer"] == "cust-1" and rows[1]["events"] == ["cache miss", "rendered"]
    assert rows[5]["links"] == [trace_id_of("upstream batch").hex()]
    lookup = raw.query_arrow("SELECT TraceId FROM otel_traces_trace_id_ts").column("TraceId").to_pylist()
    assert lookup == [trace_id.hex()]  # the exporter's trace-id lookup table is kept up to date


def test_migrations_are_idempotent_and_newer_schemas_refused(
    raw: ClickHouseConnection, database_url: str, corpus: Corpus
) -> None:
    store = ClickHouseStore(database_url)
    store.write(corpus.spans)
    store.close()

    def tables() -> list[tuple[str, str]]:
        result = raw.query_arrow(
            "SELECT name, toString(groupArray(type)) AS types FROM "
            "(SELECT table AS name, type FROM system.columns WHERE database = currentDatabase() ORDER BY name, position) "
            "GROUP BY name ORDER BY name"
        )
        return list(zip(result.column("name").to_pylist(), result.column("types").to_pylist(), strict=True))

    before = tables()
    for _ in range(2):
        reopened = ClickHouseStore(database_url)
        try:
            assert reopened.span_count() == corpus.spans.num_rows
            assert reopened.find_traces(TraceQuery(limit=100)).num_rows == len(corpus.traces)
            summary = reopened.find_traces(TraceQuery(limit=1)).to_pylist()[0]
            assert summary["span_count"] == 6  # no backfill ran again: nothing counted twice
        finally:
            reopened.close()
    assert tables() == before
    versions = raw.query_arrow(f"SELECT version FROM {VERSIONS}").column("version").to_pylist()
    assert versions == [SCHEMA_VERSION]

    raw.command(f"INSERT INTO {VERSIONS} (version) VALUES ({SCHEMA_VERSION + 1})")
    with pytest.raises(RuntimeError, match="newer"):
        ClickHouseStore(database_url)


HOSTILE = [
    "{p0:String}",
    "{p1:Int64}') OR 1=1 --",
    "back\\slash\\'",
    "tab\tnew\nline\rcr",
    "nul\x00byte",
    "\\N",
    "'; DROP DATABASE default; --",
    '`backtick` "quote"',
    "ユニコード ✓",
    "%s %(x)s $1 ?",
    "",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_are_bound_not_spliced(database_url: str, value: str) -> None:
    store = ClickHouseStore(database_url)
    try:
        trace_id = trace_id_of("hostile " + value)
        store.write(
            make_trace(trace_id, root_service=value or "svc", root_operation=value or "op", customer=value)
        )
        store.write(make_trace(trace_id_of("plain"), start_ns=BASE_NS + SECOND))

        def ids(**query: Any) -> list[bytes]:
            return cast(
                "list[bytes]",
                store.find_traces(TraceQuery(limit=100, **query)).column("trace_id").to_pylist(),
            )

        assert ids(service=value or "svc", operation=value or "op") == [trace_id]
        assert ids(attributes=(("customer.id", value),)) == [trace_id]
        assert ids(attributes=((value, value),)) == []
        assert ids(service=value + "x") == []
        window = (BASE_NS, BASE_NS + 10 * SECOND)
        assert (
            store.scan(["span_id"], *window, ScanFilter(attributes=(("customer.id", value),))).num_rows == 2
        )
        assert store.scan(["span_id"], *window, ScanFilter(service=value + "'")).num_rows == 0
        assert (value or "svc") in store.services()
        assert store.operations(value + "\x00") == []
        assert store.trace(trace_id).column("service").to_pylist()[0] == (value or "svc")
        assert store.span_count() == 12
    finally:
        store.close()


def test_logs_keep_exporter_layout_and_round_trip(raw: ClickHouseConnection, database_url: str) -> None:
    from spyglass.model.log_schema import LOG_SCHEMA

    trace_id = trace_id_of("logs")
    logs = pa.Table.from_pylist(
        [
            {
                "time_ns": BASE_NS + 5,
                "observed_time_ns": BASE_NS + 9,
                "trace_id": trace_id,
                "span_id": b"\x01" * 8,
                "severity_number": 17,
                "severity_text": "ERROR",
                "body": "payment failed",
                "attributes": [("attempt", "2")],
                "attribute_types": [("attempt", 2)],
                "resource": [("service.name", "payment")],
                "resource_types": [],
                "service": "payment",
                "scope_name": "app",
            }
        ],
        schema=LOG_SCHEMA,
    )
    store = ClickHouseStore(database_url)
    try:
        store.write_logs(logs)
        assert store.logs_for_traces([trace_id]).equals(logs)
    finally:
        store.close()
    row = raw.query_arrow(
        "SELECT TraceId, SpanId, SeverityText, SeverityNumber, Body FROM otel_logs"
    ).to_pylist()
    assert row == [
        {
            "TraceId": trace_id.hex(),
            "SpanId": "01" * 8,
            "SeverityText": "ERROR",
            "SeverityNumber": 17,
            "Body": "payment failed",
        }
    ]


def test_hex_ids_handle_nulls_and_slices() -> None:
    ids = pa.array([b"\x00" * 8, None, bytes(range(8)), b"\xff" * 8], pa.binary(8))
    assert hex_ids(ids).to_pylist() == ["00" * 8, "", "0001020304050607", "ff" * 8]
    assert hex_ids(ids.slice(2)).to_pylist() == ["0001020304050607", "ff" * 8]
    assert hex_ids(pa.array([], pa.binary(16))).to_pylist() == []
    many = pa.array([i.to_bytes(16, "big") for i in range(1000)], pa.binary(16))
    assert hex_ids(many).to_pylist() == [i.to_bytes(16, "big").hex() for i in range(1000)]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "http://localhost:8123",
            {"host": "localhost", "port": 8123, "database": "default", "username": "default"},
        ),
        (
            "https://bob:p%40ss@ch.example.com/traces",
            {
                "host": "ch.example.com",
                "port": 8443,
                "database": "traces",
                "username": "bob",
                "password": "p@ss",
            },
        ),
        ("http://h:9000/?database=otel", {"port": 9000, "database": "otel"}),
        ("chdb:///var/lib/spyglass/ch", {"path": "/var/lib/spyglass/ch", "database": "default"}),
        ("chdb://data/ch?database=spyglass", {"path": "data/ch", "database": "spyglass", "scheme": "chdb"}),
    ],
)
def test_urls(url: str, expected: dict[str, Any]) -> None:
    parsed = parse_url(url)
    assert {key: getattr(parsed, key) for key in expected} == expected


@pytest.mark.parametrize(
    "url",
    [
        "tcp://localhost:9000",
        "http:///nohost",
        "http://h/bad-name",
        "http://h/x;drop",
        "chdb://",
        "chdb://d?database=a.b",
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        parse_url(url)


def test_a_server_on_clickhouse_ingests_and_answers(start_server: Callable[..., RunningServer]) -> None:
    """OTLP/HTTP in, API out, with ``--store clickhouse --clickhouse-url chdb://...``."""
    database = fresh_database()
    spyglass = start_server(store="clickhouse", clickhouse_url=chdb_url(database), decision_wait_s=0.1)
    tracer = provider("checkout", http_exporter(spyglass.otlp_http), **{"service.version": "3.1"}).get_tracer(
        "t"
    )
    with tracer.start_as_current_span(
        "POST /pay", kind=OtelSpanKind.SERVER, attributes={"order.items": 3}
    ) as root:
        with tracer.start_as_current_span("charge card", kind=OtelSpanKind.CLIENT) as child:
            child.set_status(Status(StatusCode.ERROR, "declined"))
    trace_id = format(root.get_span_context().trace_id, "032x")

    spyglass.wait_for(lambda s: s["spans_received"] >= 2)
    spyglass.flush()
    spyglass.wait_for(lambda s: s["spans_stored"] >= 2)

    trace = spyglass.get(f"/api/v1/traces/{trace_id}").json()
    by_name = {span["name"]: span for span in trace["spans"]}
    assert by_name["POST /pay"]["attributes"]["order.items"] == 3  # the JSON type survives ClickHouse
    assert by_name["POST /pay"]["resource"]["service.version"] == "3.1"
    assert by_name["charge card"]["status"] == "error" and by_name["charge card"]["kind"] == "client"
    found = spyglass.get("/api/v1/traces", params={"service": "checkout", "error": "true"}).json()["traces"]
    assert [(t["trace_id"], t["root_operation"], t["span_count"]) for t in found] == [
        (trace_id, "POST /pay", 2)
    ]
    assert spyglass.get("/api/v1/services").json() == {"services": [{"name": "checkout"}]}
    jaeger = spyglass.get(f"/api/traces/{trace_id}").json()["data"][0]
    assert len(jaeger["spans"]) == 2
    assert httpx.get(spyglass.api + "/api/v1/traces/" + "0" * 31 + "1", timeout=10).status_code == 404

    # The spans are in ClickHouse, in the exporter's table, for any other tool to read.
    conn = connect(chdb_url(database))
    try:
        stored = conn.query_arrow(
            "SELECT count() AS n FROM otel_traces WHERE TraceId = {t:String}", {"t": trace_id}
        )
        assert stored.column("n").to_pylist() == [2]
    finally:
        conn.close()


def test_analysis_reads_clickhouse(start_server: Callable[..., RunningServer]) -> None:
    """Explain, critical path, dependencies and metrics on spans that live only in ClickHouse (they started
    before the server did, so the recall buffer does not cover them): the same answers as on DuckDB."""
    database = fresh_database()
    spyglass = start_server(store="clickhouse", clickhouse_url=chdb_url(database), decision_wait_s=0.1)
    ms = 1_000_000
    t0 = (time.time_ns() - 3_600 * 10**9) // (60_000 * ms) * (60_000 * ms)  # an hour ago, minute-aligned
    tracers = {
        version: provider(
            "cart", http_exporter(spyglass.otlp_http), **{"service.version": version}
        ).get_tracer("t")
        for version in ("1.0", "2.0")
    }
    for phase, start in (("baseline", t0), ("regression", t0 + 120_000 * ms)):
        for i in range(60):
            version = "2.0" if phase == "regression" and i % 2 == 0 else "1.0"
            begin = start + i * 500 * ms
            duration = (90 if version == "2.0" else 10) * ms
            root = tracers[version].start_span("GET /cart", kind=OtelSpanKind.SERVER, start_time=begin)
            with trace.use_span(root):
                tracers[version].start_span(
                    "SELECT cart",
                    kind=OtelSpanKind.CLIENT,
                    start_time=begin + ms,
                    attributes={"db.system": "redis"},
                ).end(end_time=begin + duration - ms)
            root.end(end_time=begin + duration)
    spyglass.wait_for(lambda s: s["spans_received"] == 240)
    spyglass.flush()
    spyglass.wait_for(lambda s: s["spans_stored"] == 240)

    body = {
        "service": "cart",
        "operation": "GET /cart",
        "signal": "latency",
        "baseline_start_ns": t0,
        "baseline_end_ns": t0 + 60_000 * ms,
        "start_ns": t0 + 120_000 * ms,
        "end_ns": t0 + 180_000 * ms,
    }
    answer = httpx.post(spyglass.api + "/api/v1/explain", json=body, timeout=60).json()
    top = answer["findings"][0]
    assert (top["kind"], top.get("key"), top.get("value")) == ("attribute", "service.version", "2.0"), top
    assert answer["symptom"]["regression"]["count"] == 60 and answer["symptom"]["baseline"]["count"] == 60

    window = {"start_ns": t0, "end_ns": t0 + 180_000 * ms}
    path = spyglass.get(
        "/api/v1/critical-path", params={"service": "cart", "operation": "GET /cart", **window}
    )
    shares = {c["operation"]: c["share"] for c in path.json()["contributions"]}
    assert path.json()["traces"] == 120 and shares["SELECT cart"] > 0.8
    edges = spyglass.get("/api/v1/dependencies", params=window).json()["edges"]
    assert [(e["parent"], e["child"], e["calls"]) for e in edges] == [("cart", "redis", 120)]
    groups = spyglass.get(
        "/api/v1/metrics",
        params={"service": "cart", "operation": "GET /cart", "group_by": "service.version", **window},
    ).json()["groups"]
    counts = {g["key"]: g["count"] for g in groups}
    assert counts == {"1.0": 90, "2.0": 30}
    assert next(g for g in groups if g["key"] == "2.0")["p50_ms"] == pytest.approx(90, rel=0.01)
