"""Calls between services (``Store.calls``) and newest-first searches, on every backend."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from spyglass.analysis.dependencies import dependency_edges
from spyglass.model.shared_spans import separate_shared_spans
from spyglass.store.call_rollups import (
    CALL_SCHEMA,
    CALL_SPAN_COLUMNS,
    PEER_FROM_ATTRIBUTES,
    PEER_KEYS,
    call_inputs,
    call_rows,
)
from spyglass.store.duckdb_store import (
    DuckDBStore,
    first_slice_width,
    newest_first_slices,
    next_of,
    next_slice_width,
)
from spyglass.store.protocol import Store, TraceQuery

from .conftest import BASE_NS, MS, SECOND, Corpus, make_trace, trace_id_of

MINUTE = 60 * SECOND


def sorted_calls(table: pa.Table) -> list[dict[str, object]]:
    return sorted(table.to_pylist(), key=lambda row: (row["parent"], row["child"], row["bin"]))


def test_calls_are_the_window_spans_calls(populated: Store, corpus: Corpus) -> None:
    start, end = BASE_NS - BASE_NS % MINUTE, BASE_NS + 10 * MINUTE
    calls = populated.calls(start, end)
    assert calls.schema.equals(CALL_SCHEMA)
    assert sorted_calls(calls) == sorted_calls(call_rows(corpus.spans.select(CALL_SPAN_COLUMNS)))
    edges = {(e["parent"], e["child"]): e for e in dependency_edges(calls).to_pylist()}
    # Every trace: frontend or mobile-api calls payment (instrumented), payment's producer reaches notifier.
    weights = sum(t.sample_weight for t in corpus.traces)
    assert edges[("payment", "notifier")]["calls"] == round(weights)
    client_pairs = [pair for pair in edges if pair[1] == "payment"]
    assert sum(edges[pair]["calls"] for pair in client_pairs) == round(weights)
    assert not any(e["uninstrumented"] for e in edges.values())
    assert all(e["p99_ms"] > 0 for e in edges.values())
    assert populated.calls(BASE_NS - 10 * MINUTE, BASE_NS - 5 * MINUTE).num_rows == 0


def test_a_peer_without_a_child_is_an_uninstrumented_edge(store: Store) -> None:
    spans = make_trace(trace_id_of("lonely client"), start_ns=BASE_NS, duration_ns=200 * MS)
    # Without the payment server span, the client span names its peer: an edge to an uninstrumented peer.
    kept = spans.filter(pc.not_equal(spans.column("service"), "payment"))
    store.write(kept)
    edges = dependency_edges(store.calls(BASE_NS - MINUTE, BASE_NS + MINUTE)).to_pylist()
    assert [(e["parent"], e["child"], e["calls"], e["uninstrumented"]) for e in edges] == [
        ("frontend", "payment", 1, True)
    ]


def test_expiring_spans_expires_their_calls(store: Store) -> None:
    for minute in range(0, 180, 30):
        store.write(make_trace(trace_id_of(f"m{minute}"), start_ns=BASE_NS + minute * MINUTE))
    while store.expire("spans", BASE_NS + 90 * MINUTE, 30 * MINUTE).more:
        pass
    assert store.calls(BASE_NS - MINUTE, BASE_NS + 89 * MINUTE).num_rows == 0
    assert store.calls(BASE_NS + 90 * MINUTE, BASE_NS + 200 * MINUTE).num_rows > 0


def test_searches_read_newest_slices_first_and_find_the_same(store: Store) -> None:
    """Matches dense in old traces and sparse in new ones: the answer spans several slices of the window."""
    expected = []
    for i in range(200):
        customer = "cust-x" if i < 150 or i % 25 == 0 else "cust-y"
        trace_id = trace_id_of(f"slice-{i}")
        store.write(make_trace(trace_id, start_ns=BASE_NS + i * SECOND, customer=customer))
        if customer == "cust-x":
            expected.append(trace_id)
    expected.reverse()
    for limit in (1, 3, 10, 40, 1000):
        query = TraceQuery(attributes=(("customer.id", "cust-x"),), limit=limit)
        assert store.find_traces(query).column("trace_id").to_pylist() == expected[:limit]
        windowed = TraceQuery(
            attributes=(("customer.id", "cust-x"),),
            start_ns=BASE_NS + 10 * SECOND,
            end_ns=BASE_NS + 180 * SECOND,
            limit=limit,
        )
        inside = [trace_id_of(f"slice-{i}") for i in range(179, 9, -1) if i < 150 or i % 25 == 0]
        assert store.find_traces(windowed).column("trace_id").to_pylist() == inside[:limit]


def test_newest_first_slices_cover_the_window_once() -> None:
    """As a search that finds nothing walks them."""
    for start, end in ((0, 1), (0, 64), (5, 1000), (0, 3_600 * SECOND)):
        walk = newest_first_slices(start, end, 20)
        slices = [next(walk)]
        while (window := next_of(walk, 0)) is not None:
            slices.append(window)
        assert slices[0][1] == end and slices[-1][0] == start
        assert all(a[0] == b[1] for a, b in zip(slices, slices[1:], strict=False))
        assert len(slices) <= 8


def test_a_slice_after_one_that_found_traces_is_sized_for_the_rest() -> None:
    window = (0, 64_000)
    first = first_slice_width(*window)
    assert first == 1_000
    # 5 found in the first 1,000: 15 more want 3,000 at that rate, twice that with the margin, at most 4x.
    assert next_slice_width(*window, first, first, 5, 15) == 4_000
    assert next_slice_width(*window, first, first, 10, 5) == 1_000
    # Never narrower than the first slice; nothing found yet: twice the last.
    assert next_slice_width(*window, first, first, 19, 1) == first
    assert next_slice_width(*window, 8_000, 15_000, 0, 20) == 16_000


def test_a_version_3_file_gets_call_rollups_from_its_spans(tmp_path: Path, corpus: Corpus) -> None:
    path = tmp_path / "old.duckdb"
    store = DuckDBStore(path)
    store.write(corpus.spans)
    expected = sorted_calls(store.calls(BASE_NS - MINUTE, BASE_NS + 10 * MINUTE))
    store.close()
    with duckdb.connect(str(path)) as connection:  # as a file from before call rollups
        connection.execute("DROP TABLE call_rollups")
        connection.execute("UPDATE schema_version SET version = 3")
    reopened = DuckDBStore(path)
    try:
        assert sorted_calls(reopened.calls(BASE_NS - MINUTE, BASE_NS + 10 * MINUTE)) == expected
    finally:
        reopened.close()


def test_small_writes_are_merged_into_one_row_per_minute_key_and_bin(
    tmp_path: Path, corpus: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    import spyglass.store.duckdb_store as duckdb_store

    monkeypatch.setattr(duckdb_store, "CALL_ROWS_BEFORE_MERGE", 20)
    store = DuckDBStore(tmp_path / "merged.duckdb")
    try:
        for begin in range(0, corpus.spans.num_rows, 6):  # one trace a write
            store.write(corpus.spans.slice(begin, 6))
        window = (BASE_NS - MINUTE, BASE_NS + 10 * MINUTE)
        assert sorted_calls(store.calls(*window)) == sorted_calls(call_rows(corpus.spans))
        stored = store._conn.execute("SELECT count(*) FROM call_rollups").fetchall()[0][0]
        distinct = store._conn.execute(
            "SELECT count(*) FROM (SELECT DISTINCT bucket_start_ns, parent, child, uninstrumented, bin "
            "FROM call_rollups)"
        ).fetchall()[0][0]
        assert stored < corpus.spans.num_rows // 6 * 3  # merged, not one row per call
        assert stored - distinct < 20  # at most the rows written since the last merge repeat a key
    finally:
        store.close()


def test_late_spans_complete_the_calls_of_spans_written_before(store: Store) -> None:
    """A trace written in parts (late spans, in either order): its calls are those of the whole trace."""
    whole = []
    for index, split in enumerate(([0, 1, 2], [3, 4, 5], [2, 5], [0])):
        trace = make_trace(trace_id_of(f"late-{index}"), start_ns=BASE_NS + index * SECOND)
        whole.append(trace)
        rows = pa.array(range(trace.num_rows))
        first = pc.is_in(rows, value_set=pa.array(split))
        store.write(trace.filter(first))
        store.write(trace.filter(pc.invert(first)))
    expected = call_rows(pa.concat_tables(whole).select(CALL_SPAN_COLUMNS))
    got = store.calls(BASE_NS - MINUTE, BASE_NS + 10 * MINUTE)
    key = [(name, "ascending") for name in ["parent", "child", "uninstrumented", "bin"]]
    assert (
        got.select(["parent", "child", "uninstrumented", "bin"])
        .sort_by(key)
        .equals(expected.select(["parent", "child", "uninstrumented", "bin"]).sort_by(key))
    )
    assert sorted(round(c, 9) for c in got.column("calls").to_pylist()) == sorted(
        expected.column("calls").to_pylist()
    )


def _with_shared_server_half(trace: pa.Table) -> pa.Table:
    """``make_trace`` as Zipkin's B3 join records it: the payment server half shares the client's span id and
    parent, and the server's own child names that shared id as its parent."""
    span_ids = trace.column("span_id").to_pylist()
    parents = trace.column("parent_span_id").to_pylist()
    client, server, child = 2, 3, 4  # frontend POST /charge, payment Charge, payment publish receipt
    span_ids[server], parents[server] = span_ids[client], parents[client]
    parents[child] = span_ids[client]
    trace = trace.set_column(
        trace.schema.get_field_index("span_id"),
        "span_id",
        pa.array(span_ids, trace.schema.field("span_id").type),
    )
    field = trace.schema.field("parent_span_id")
    return trace.set_column(
        trace.schema.get_field_index("parent_span_id"), field, pa.array(parents, field.type)
    )


def test_a_late_child_of_a_shared_server_half_is_no_call_of_the_client(store: Store) -> None:
    """Decided traces are stored with one span per id; a child of the server half arriving after that still
    names the shared id (the client half's), and must not count as a second call from the client's service."""
    raw = _with_shared_server_half(make_trace(trace_id_of("shared-late")))
    child = pc.equal(pa.array(range(raw.num_rows)), 4)
    store.write(separate_shared_spans(raw.filter(pc.invert(child))))
    store.write(raw.filter(child))
    expected = call_rows(separate_shared_spans(raw).select(CALL_SPAN_COLUMNS))
    got = store.calls(BASE_NS - MINUTE, BASE_NS + 10 * MINUTE)
    assert sorted_calls(got) == sorted_calls(expected)
    edges = {(row["parent"], row["child"]) for row in got.to_pylist() if row["calls"] > 1e-9}
    assert ("frontend", "payment") in edges and ("frontend", "notifier") not in edges


@pytest.mark.parametrize("seed", range(5))
def test_the_peer_looked_up_in_arrow_is_duckdbs(seed: int) -> None:
    """``call_inputs`` finds the peer a client span names in Arrow; stored spans (a migration) find it with
    ``PEER_FROM_ATTRIBUTES`` in DuckDB: both agree on random maps (keys missing, empty values, null and empty
    maps, unrelated keys, maps sliced out of a larger table)."""
    import random

    rng = random.Random(seed)
    keys = [*PEER_KEYS, "http.route", "peer", "db.name", ""]
    maps: list[list[tuple[str, str]] | None] = []
    for _ in range(400):
        if rng.random() < 0.1:
            maps.append(None)
            continue
        chosen = rng.sample(keys, rng.randint(0, 5))
        maps.append([(key, rng.choice(["", "db", "payments", "10.0.0.1", "<b>x</b>"])) for key in chosen])
    attributes = pa.array(maps, pa.map_(pa.string(), pa.string()))
    n = len(maps)
    spans = pa.table(
        {
            "trace_id": pa.array([bytes([i % 256]) * 16 for i in range(n)], pa.binary(16)),
            "span_id": pa.array([i.to_bytes(8, "big") for i in range(n)], pa.binary(8)),
            "parent_span_id": pa.nulls(n, pa.binary(8)),
            "service": pa.array(["web"] * n),
            "kind": pa.array([3] * n, pa.int8()),
            "status_code": pa.array([0] * n, pa.int8()),
            "start_ns": pa.array(range(n), pa.int64()),
            "duration_ns": pa.array([1000] * n, pa.int64()),
            "attributes": attributes,
            "sample_weight": pa.array([1.0] * n),
        }
    ).slice(7, n - 20)
    found = call_inputs(spans).column("peer").to_pylist()
    with duckdb.connect() as connection:
        connection.register("spans", spans)
        rows = connection.execute(f"SELECT {PEER_FROM_ATTRIBUTES} FROM spans s ORDER BY start_ns").fetchall()
    expected = [row[0] for row in rows]
    assert found == expected
    assert any(value is None for value in found) and any(value == "" for value in found)
