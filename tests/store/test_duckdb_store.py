"""What only the DuckDB store promises: a file that survives restarts and crashes, and readers beside a writer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.ipc
import pytest

from spyglass.model.schema import STORED_SPAN_SCHEMA
from spyglass.store import duckdb_store
from spyglass.store.duckdb_store import DuckDBStore
from spyglass.store.protocol import ScanFilter, TraceQuery, UnwritableRows

from .conftest import BASE_NS, SECOND, Corpus, make_trace, trace_id_of


def test_data_survives_close_and_reopen(tmp_path: Path, corpus: Corpus) -> None:
    path = tmp_path / "spyglass.duckdb"
    store = DuckDBStore(path)
    store.write(corpus.spans)
    store.close()
    store.close()  # closing twice is harmless

    reopened = DuckDBStore(path)
    try:
        assert reopened.span_count() == corpus.spans.num_rows
        first = corpus.traces[0].trace_id
        assert reopened.trace(first).equals(corpus.spans.slice(0, 6).sort_by("start_ns"))
        assert len(reopened.find_traces(TraceQuery(limit=100))) == len(corpus.traces)
        assert reopened.services() == ["frontend", "mobile-api", "notifier", "payment"]
        reopened.write(make_trace(trace_id_of("after reopen"), start_ns=BASE_NS + 99 * SECOND))
        assert reopened.span_count() == corpus.spans.num_rows + 6
        assert reopened.disk_bytes() > 0
    finally:
        reopened.close()


def test_a_file_from_a_newer_spyglass_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "spyglass.duckdb"
    DuckDBStore(path).close()

    with duckdb.connect(str(path)) as conn:
        conn.execute("UPDATE schema_version SET version = version + 1")
    with pytest.raises(RuntimeError, match="newer"):
        DuckDBStore(path)


def test_in_memory_store_for_tests(corpus: Corpus) -> None:
    store = DuckDBStore(":memory:")
    store.write(corpus.spans)
    assert store.span_count() == corpus.spans.num_rows
    assert store.disk_bytes() == 0
    store.close()


def test_write_accepts_a_record_batch_and_rejects_missing_columns(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "spyglass.duckdb")
    table = make_trace(trace_id_of("batch"))
    store.write(table.to_batches()[0])
    assert store.span_count() == 6
    with pytest.raises(ValueError, match="sample_weight"):
        store.write(table.drop_columns(["sample_weight"]))
    assert store.span_count() == 6
    store.close()


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    import pyarrow.ipc
    from spyglass.store.duckdb_store import DuckDBStore

    table = pyarrow.ipc.open_file(sys.argv[2]).read_all()
    store = DuckDBStore(sys.argv[1])
    for begin in range(0, table.num_rows, 6):
        store.write(table.slice(begin, 6))
    print("committed", flush=True)
    time.sleep(600)
    """
)


def _killed_once_committed(script: str, path: Path, spans: pa.Table) -> None:
    """Run ``script`` (a writer of ``spans`` into the store at ``path``) in a process of its own, and kill -9 it
    once it says its writes are committed."""
    spans_file = path.with_name("spans.arrow")
    with pyarrow.ipc.new_file(spans_file, spans.schema) as writer:
        writer.write_table(spans)
    writer_process = subprocess.Popen(
        [sys.executable, "-c", script, str(path), str(spans_file)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer_process.stdout is not None
        assert writer_process.stdout.readline().strip() == "committed"
    finally:
        os.kill(writer_process.pid, signal.SIGKILL)
        writer_process.wait(timeout=30)
    assert writer_process.returncode == -signal.SIGKILL


def test_committed_writes_survive_kill_9(tmp_path: Path, corpus: Corpus) -> None:
    path = tmp_path / "spyglass.duckdb"
    _killed_once_committed(KILLED_WRITER, path, corpus.spans)
    assert Path(str(path) + ".wal").exists()  # nothing was checkpointed: recovery replays the WAL

    store = DuckDBStore(path)
    try:
        assert store.span_count() == corpus.spans.num_rows
        got = store.scan(list(STORED_SPAN_SCHEMA.names), BASE_NS, BASE_NS + 100 * SECOND)
        key = [("start_ns", "ascending"), ("span_id", "ascending")]
        assert got.sort_by(key).equals(corpus.spans.sort_by(key))
        summaries = store.find_traces(TraceQuery(limit=100)).to_pylist()
        assert [s["trace_id"] for s in summaries] == corpus.ids()
        assert all(s["span_count"] == 6 for s in summaries)
    finally:
        store.close()


ONE_WRITE = textwrap.dedent(
    """
    import sys, time
    import pyarrow.ipc
    from spyglass.store.duckdb_store import DuckDBStore

    store = DuckDBStore(sys.argv[1])
    store.write(pyarrow.ipc.open_file(sys.argv[2]).read_all())
    print("committed", flush=True)
    time.sleep(600)
    """
)


def _copies(spans: pa.Table, rows: int) -> pa.Table:
    """At least ``rows`` spans: copies of ``spans``, each copy's traces under ids of their own (the copy's number
    in the first eight bytes)."""
    copies = -(-rows // spans.num_rows)
    tiled = pa.concat_tables([spans] * copies).combine_chunks()
    ids = np.frombuffer(tiled.column("trace_id").chunk(0).buffers()[1], dtype=np.uint8).reshape(-1, 16).copy()
    ids[:, :8] = np.repeat(np.arange(copies, dtype=">u8"), spans.num_rows).view(np.uint8).reshape(-1, 8)
    column = pa.array([row.tobytes() for row in ids], STORED_SPAN_SCHEMA.field("trace_id").type)
    return tiled.set_column(tiled.schema.get_field_index("trace_id"), "trace_id", column)


def test_a_write_of_whole_row_groups_skips_the_log_and_survives_kill_9(
    tmp_path: Path, corpus: Corpus
) -> None:
    """A write past DuckDB's row group (as the satellite gathers them) commits its row groups straight into the
    file, with only their place in the write-ahead log, where the spans themselves take about 180 bytes each. It
    is as durable: a kill -9 right after the commit loses nothing."""
    path = tmp_path / "spyglass.duckdb"
    spans = _copies(corpus.spans, duckdb_store.ROW_GROUP_ROWS + 1000)
    _killed_once_committed(ONE_WRITE, path, spans)
    # 16 bytes a span, mostly the trace summaries (a trace of six spans each); through the log: over 190.
    assert Path(str(path) + ".wal").stat().st_size < 60 * spans.num_rows

    store = DuckDBStore(path)
    try:
        assert store.span_count() == spans.num_rows
        copies = spans.num_rows // corpus.spans.num_rows
        summaries = store.find_traces(TraceQuery(limit=100_000))
        assert summaries.num_rows == copies * len(corpus.traces)
        for trace_id in spans.column("trace_id").to_pylist()[:: spans.num_rows // 7]:
            assert store.trace(trace_id).num_rows == 6
    finally:
        store.close()


def test_the_store_checkpoints_after_enough_rows_written_past_the_log(
    tmp_path: Path, corpus: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint rewrites what went straight into the file since the last one, freeing the first copy for
    later writes: one every ``CHECKPOINT_AFTER_DIRECT_ROWS`` such rows bounds that free space. Small writes
    (the write-ahead log's) do not count."""
    monkeypatch.setattr(duckdb_store, "ROW_GROUP_ROWS", 100)
    monkeypatch.setattr(duckdb_store, "CHECKPOINT_AFTER_DIRECT_ROWS", 250)
    path = tmp_path / "spyglass.duckdb"
    wal = Path(str(path) + ".wal")
    spans = _copies(corpus.spans, 900)
    store = DuckDBStore(path)
    try:
        store.write(spans.slice(0, 60))  # small: not counted
        store.write(spans.slice(60, 120))
        store.write(spans.slice(180, 120))
        assert wal.exists() and wal.stat().st_size > 0  # 240 rows counted: no checkpoint yet
        store.write(spans.slice(300, 120))  # 360: a checkpoint empties the log
        assert not wal.exists() or wal.stat().st_size == 0
        store.write(spans.slice(420, 120))
        assert wal.stat().st_size > 0  # counting starts again
        assert store.span_count() == 540
    finally:
        store.close()


def test_readers_run_while_one_thread_writes(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "spyglass.duckdb")
    traces = [make_trace(trace_id_of(f"concurrent-{i}"), start_ns=BASE_NS + i * SECOND) for i in range(60)]
    committed: list[bytes] = []  # appended only after write returns
    done = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for table in traces:
                store.write(table)
                committed.append(table.column("trace_id")[0].as_py())
        except BaseException as error:  # reported by the test thread
            errors.append(error)
        finally:
            done.set()

    def reader() -> None:
        try:
            reads = 0
            while not done.is_set() or reads < 5:
                known = list(committed)
                count = store.span_count()
                assert count >= 6 * len(known)
                if known:
                    assert store.trace(known[-1]).num_rows == 6
                    assert store.trace(known[0]).num_rows == 6
                found = store.find_traces(TraceQuery(service="frontend", limit=1000))
                assert found.num_rows >= len(known)
                store.scan(
                    ["trace_id", "duration_ns"],
                    BASE_NS,
                    BASE_NS + 100 * SECOND,
                    ScanFilter(service="payment"),
                )
                store.services()
                reads += 1
        except BaseException as error:  # reported by the test thread
            errors.append(error)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert store.span_count() == 6 * len(traces)
    assert store.find_traces(TraceQuery(limit=1000)).num_rows == len(traces)
    store.close()


def test_concurrent_writers_are_serialized(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "spyglass.duckdb")
    shared = trace_id_of("shared")
    whole = make_trace(shared)
    errors: list[BaseException] = []

    def write_one(index: int) -> None:
        try:
            store.write(whole.slice(index, 1))  # every thread upserts the same summary row
        except BaseException as error:  # reported by the test thread
            errors.append(error)

    threads = [threading.Thread(target=write_one, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    (summary,) = store.find_traces(TraceQuery()).to_pylist()
    assert summary["span_count"] == 6 and summary["root_service"] == "frontend"
    assert store.trace(shared).equals(whole.sort_by("start_ns"))
    store.close()


def test_settings_come_from_the_constructor(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "spyglass.duckdb", memory_limit_mb=256, threads=1)
    with store._conn.cursor() as cur:
        settings = dict(
            cur.execute(
                "SELECT name, value FROM duckdb_settings() WHERE name IN ('threads', 'memory_limit')"
            ).fetchall()
        )
    assert settings["threads"] == "1"
    assert settings["memory_limit"].startswith(("244", "256"))
    store.close()


def test_stored_types_are_the_schema_types(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "spyglass.duckdb")
    store.write(make_trace(trace_id_of("types")))
    got = store.scan(["trace_id", "span_id", "parent_span_id", "events", "links"], BASE_NS, BASE_NS + SECOND)
    assert got.schema.field("trace_id").type == pa.binary(16)
    assert got.schema.field("links").type == STORED_SPAN_SCHEMA.field("links").type
    store.close()


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "spyglass.duckdb")
    table = make_trace(trace_id_of("bad"))
    services = table.column("service").to_pylist()
    services[-1] = None  # violates NOT NULL after the other spans were inserted
    bad = table.set_column(
        table.schema.get_field_index("service"), "service", pa.array(services, pa.string())
    )
    with pytest.raises(UnwritableRows):
        store.write(bad)
    assert store.span_count() == 0
    assert store.find_traces(TraceQuery()).num_rows == 0
    store.write(table)  # the store is still usable
    assert store.span_count() == 6
    store.close()


@pytest.mark.parametrize("seed", range(4))
def test_resources_converted_once_per_run_are_stored_exactly(tmp_path: Path, seed: int) -> None:
    """A write hands DuckDB each run of equal resources once (``with_shared_resources``); what is stored is
    still every span's own resource: runs broken by another resource, the same entries in another order, empty
    maps, a resource seen again later, and chunks of the two resource columns that do not line up."""
    import random

    rng = random.Random(seed)
    resources = [
        [("service.name", "web"), ("host.name", "web-1")],
        [("host.name", "web-1"), ("service.name", "web")],  # the same entries, another order
        [("service.name", "web"), ("host.name", "web-2")],
        [],
        [("service.name", "db"), ("k8s.pod.name", "<script>x</script>"), ("service.version", "1.2")],
    ]
    rows = []
    for _ in range(300):
        resource = rng.choice(resources)
        for _ in range(rng.randint(1, 40)):
            rows.append(resource)
    base = pa.concat_tables(
        [
            make_trace(trace_id_of(f"runs-{seed}-{i}"), start_ns=BASE_NS + i * SECOND)
            for i in range(-(-len(rows) // 6))
        ]
    ).slice(0, len(rows))
    resource = pa.array(rows, STORED_SPAN_SCHEMA.field("resource").type)
    types = pa.array(
        [[(key, 1) for key, _ in r] for r in rows], STORED_SPAN_SCHEMA.field("resource_types").type
    )
    cut = rng.randint(1, len(rows) - 1)
    spans = base.set_column(
        base.column_names.index("resource"),
        "resource",
        pa.chunked_array([resource.slice(0, cut), resource.slice(cut)]),
    )
    spans = spans.set_column(
        spans.column_names.index("resource_types"), "resource_types", pa.chunked_array([types])
    )
    store = DuckDBStore(tmp_path / "runs.duckdb")
    try:
        store.write(spans)
        got = store.scan(
            ["span_id", "resource", "resource_types"], BASE_NS - SECOND, BASE_NS + 10**6 * SECOND
        )
        by_id = {row["span_id"]: row for row in got.to_pylist()}
        assert len(by_id) == len(rows) == spans.num_rows
        for row in spans.select(["span_id", "resource", "resource_types"]).to_pylist():
            assert by_id[row["span_id"]] == row
    finally:
        store.close()


@pytest.mark.parametrize("indexed_lookups", [1000, 3])
def test_a_write_merges_the_summaries_of_stored_traces_among_new_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, indexed_lookups: int
) -> None:
    """A write looks its traces up among the stored summaries (as a list of values, or by a join past
    ``_INDEXED_LOOKUPS`` of them): the new ones are inserted, the stored ones merged, whichever way they were
    found."""
    monkeypatch.setattr(duckdb_store, "_INDEXED_LOOKUPS", indexed_lookups)
    store = DuckDBStore(tmp_path / "s.duckdb")
    traces = [make_trace(trace_id_of(f"t{i}"), start_ns=BASE_NS + i * SECOND) for i in range(8)]
    store.write(pa.concat_tables([trace.slice(0, 4) for trace in traces[:4]]))  # four traces, partly
    # Their rest, and four new traces.
    store.write(pa.concat_tables([trace.slice(4) for trace in traces[:4]] + traces[4:]))
    summaries = {row["trace_id"]: row for row in store.find_traces(TraceQuery()).to_pylist()}
    assert len(summaries) == 8
    for trace in traces:
        summary = summaries[trace.column("trace_id")[0].as_py()]
        assert summary["span_count"] == 6 and summary["root_service"] == "frontend"
        assert store.trace(summary["trace_id"]).num_rows == 6
    store.close()


def test_a_version_7_file_reads_its_older_traces_from_their_spans(tmp_path: Path) -> None:
    """Summaries written before they kept their span ids' fingerprint never stand for the spans, nor after a
    later write adds to them; traces written after the upgrade do."""
    from spyglass.model.span_fingerprint import fingerprint

    path = tmp_path / "seven.duckdb"
    store = DuckDBStore(path)
    old, new = trace_id_of("old"), trace_id_of("new")
    old_spans = make_trace(old)
    store.write(old_spans.slice(0, 5))
    store.close()
    with duckdb.connect(str(path)) as connection:  # as schema version 7 wrote it
        connection.execute("ALTER TABLE traces DROP COLUMN span_ids_xor")
        connection.execute("UPDATE schema_version SET version = 7")
    reopened = DuckDBStore(path)
    try:
        reopened.write(old_spans.slice(5))
        reopened.write(make_trace(new, start_ns=BASE_NS + SECOND))
        assert reopened.trace_unless_held(old, fingerprint(old_spans.column("span_id"))).num_rows == 6  # type: ignore[union-attr]
        assert reopened.trace_unless_held(new, fingerprint(reopened.trace(new).column("span_id"))) is None
    finally:
        reopened.close()
