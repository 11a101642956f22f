"""The satellite end to end on a real DuckDB store: intake bound, quiet decisions, memory bound, shutdown."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
from pytest import MonkeyPatch

from spyglass.satellite import pipeline
from spyglass.satellite.pipeline import Satellite, SatelliteSettings
from spyglass.satellite.recall_buffer import RecallBuffer
from spyglass.satellite.sampler import KeepAllSampler
from spyglass.store.duckdb_store import DuckDBStore
from tests.support.spans import in_traces, trace_batch


def _wait(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_traces_are_written_once_quiet(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "s.duckdb")
    satellite = Satellite(SatelliteSettings(decision_wait_s=0.1), store, KeepAllSampler())
    satellite.start()
    try:
        batch, ids = trace_batch(10)
        assert satellite.submit(batch)
        _wait(lambda: satellite.counters.spans_stored == 30)
        assert satellite.counters.traces_decided == 10 and satellite.counters.traces_kept == 10
        assert store.trace(ids[3]).num_rows == 3
        assert store.trace(ids[3]).column("sample_weight").to_pylist() == [1.0] * 3
    finally:
        satellite.stop()
        store.close()


def test_intake_bound_refuses_and_counts(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "s.duckdb")
    satellite = Satellite(SatelliteSettings(max_queued_spans=10), store, KeepAllSampler())
    batch, _ = trace_batch(4)  # 12 spans: more than the intake holds
    assert not satellite.submit(batch)
    assert satellite.counters.spans_rejected == 12
    store.close()


def test_memory_bound_holds_under_a_flood(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "s.duckdb")
    sample, _ = trace_batch(100)
    bound = RecallBuffer.packed_size(sample) * 4
    satellite = Satellite(
        SatelliteSettings(decision_wait_s=3600, recall_memory_bytes=bound), store, KeepAllSampler()
    )
    satellite.start()
    peak = 0
    try:
        for _ in range(40):
            batch, _ = trace_batch(100)
            while not satellite.submit(batch):
                time.sleep(0.01)
            peak = max(peak, satellite.buffer.nbytes)
            time.sleep(0.005)
        _wait(lambda: satellite.queued_spans == 0)
        assert 0 < peak <= satellite.buffer.peak_bytes <= bound
        satellite.flush()
        assert satellite.counters.spans_stored == 40 * 300
        assert store.span_count() == 40 * 300
    finally:
        satellite.stop()
        store.close()


def test_stop_writes_out_everything_buffered(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "s.duckdb")
    satellite = Satellite(SatelliteSettings(decision_wait_s=3600), store, KeepAllSampler())
    satellite.start()
    batch, ids = trace_batch(5)
    satellite.submit(batch)
    _wait(lambda: satellite.counters.spans_received == 15)
    assert satellite.counters.spans_stored == 0
    satellite.stop()
    assert store.span_count() == 15 and store.trace(ids[0]).num_rows == 3
    assert not satellite.submit(batch)
    store.close()


class _KeepOnly:
    """A sampler keeping exactly the given traces with weight 4 (to follow decisions in a test)."""

    def __init__(self, keep: set[bytes]) -> None:
        self.keep = keep

    def decide(self, traces: pa.Table) -> pa.Table:
        import pyarrow as pa
        import pyarrow.compute as pc

        from spyglass.satellite.sampler import with_weights

        ids = pc.unique(traces.column("trace_id").combine_chunks())
        kept = pa.array([i for i in ids.to_pylist() if i in self.keep], pa.binary(16))
        return with_weights(traces, kept, np.array([4.0] * len(kept)))


def test_late_spans_follow_their_traces_decision(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "s.duckdb")
    first, ids = trace_batch(2)
    satellite = Satellite(SatelliteSettings(decision_wait_s=0.05), store, _KeepOnly({ids[0]}))
    satellite.start()
    try:
        satellite.submit(first)
        _wait(lambda: satellite.counters.traces_decided == 2)
        late, _ = trace_batch(2)
        satellite.submit(in_traces(late, [ids[0]] * 3 + [ids[1]] * 3))
        _wait(lambda: satellite.counters.late_spans == 6)
        satellite.flush()
        assert store.trace(ids[0]).num_rows == 6
        assert set(store.trace(ids[0]).column("sample_weight").to_pylist()) == {4.0}
        assert store.trace(ids[1]).num_rows == 0
        assert satellite.counters.traces_decided == 2
    finally:
        satellite.stop()
        store.close()


def test_a_trace_is_read_whole_from_store_and_buffer_each_span_once(tmp_path: Path) -> None:
    """Once a kept trace is stored, a lookup reads its decided spans from the store alone; a dropped trace
    still shows from the buffer; spans that arrive later show from the buffer until they are decided."""
    from spyglass.analysis.traces import trace_spans

    store = DuckDBStore(tmp_path / "s.duckdb")
    first, ids = trace_batch(2)
    satellite = Satellite(SatelliteSettings(decision_wait_s=60), store, _KeepOnly({ids[0]}))
    satellite.start()
    try:
        satellite.submit(first)
        satellite.flush()
        assert store.trace(ids[0]).num_rows == 3
        assert satellite.live_trace(ids[0]).num_rows == 3  # retained for the live view
        assert satellite.live_trace(ids[0], skip_kept=True).num_rows == 0  # the store has them
        assert satellite.live_trace(ids[1], skip_kept=True).num_rows == 3  # dropped: only here
        late, _ = trace_batch(1)
        satellite.submit(in_traces(late, [ids[0]] * 3))
        _wait(lambda: satellite.buffer.undecided_spans == 3)
        whole = trace_spans(store, satellite, ids[0])
        assert whole.num_rows == 6 and len(set(whole.column("span_id").to_pylist())) == 6
        assert trace_spans(store, satellite, ids[1]).num_rows == 3
    finally:
        satellite.stop()
        store.close()


def test_a_backlog_is_taken_in_as_groups_of_bounded_size(tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    """A backlog is counted and packed in groups of about ``GROUP_SPANS``: one group of everything queued
    (200,000 spans) ran every per-span pass over arrays far larger than the caches, and was slower per span.
    No batch is split, and every span arrives."""
    monkeypatch.setattr(pipeline, "GROUP_SPANS", 20)
    store = DuckDBStore(tmp_path / "s.duckdb")
    satellite = Satellite(SatelliteSettings(decision_wait_s=0.1), store, KeepAllSampler())
    groups: list[int] = []
    buffer_group = satellite._buffer_group

    def counted(group: list[tuple[pa.RecordBatch, int]]) -> None:
        groups.append(sum(batch.num_rows for batch, _ in group))
        buffer_group(group)

    satellite._buffer_group = counted  # type: ignore[method-assign]
    backlog = [(trace_batch(3)[0], time.time_ns()) for _ in range(10)]  # 9 spans each
    satellite._take_in(backlog)
    assert groups == [27, 27, 27, 9]
    assert satellite.counters.spans_received == 90
    store.close()


def test_small_exports_are_taken_in_together(tmp_path: Path) -> None:
    """Counting and packing cost about a millisecond a call whatever the spans: exports arriving a millisecond
    apart are taken in a few rounds, not one each, and every span arrives."""
    store = DuckDBStore(tmp_path / "s.duckdb")
    satellite = Satellite(SatelliteSettings(decision_wait_s=0.1), store, KeepAllSampler())
    rounds: list[int] = []
    take_in = satellite._take_in

    def counted(pending: list[tuple[pa.RecordBatch, int]]) -> None:
        rounds.append(len(pending))
        take_in(pending)

    satellite._take_in = counted  # type: ignore[method-assign]
    satellite.start()
    try:
        for _ in range(30):
            batch, _ = trace_batch(3)
            assert satellite.submit(batch)
            time.sleep(0.001)
        _wait(lambda: satellite.counters.spans_stored == 30 * 9)
        assert sum(rounds) == 30
        assert len(rounds) <= 6, rounds
    finally:
        satellite.stop()
        store.close()


class _CountedWrites(DuckDBStore):
    """The real DuckDB store, noting the rows of each span write."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.writes: list[int] = []

    def write(self, spans: pa.Table) -> None:
        super().write(spans)
        self.writes.append(spans.num_rows)


def _gathering_satellite(
    tmp_path: Path, monkeypatch: MonkeyPatch, write_rows: int, gather_s: float
) -> tuple[_CountedWrites, Satellite]:
    """A started satellite over a store that notes its writes, gathering ``write_rows`` at a time for up to
    ``gather_s`` once 100 rows came within that time."""
    monkeypatch.setattr(pipeline, "WRITE_ROWS", write_rows)
    monkeypatch.setattr(pipeline, "GATHER_FLOW_ROWS", 100)
    monkeypatch.setattr(pipeline, "WRITE_GATHER_S", gather_s)
    store = _CountedWrites(tmp_path / "s.duckdb")
    satellite = Satellite(SatelliteSettings(decision_wait_s=0.05), store, KeepAllSampler())
    satellite.start()
    return store, satellite


def test_kept_spans_coming_fast_are_written_together(tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    """Kept spans are gathered into writes of whole ``WRITE_ROWS`` while they come fast enough to fill one within
    ``WRITE_GATHER_S``: DuckDB writes whole row groups straight into its file. Every span is written once."""
    store, satellite = _gathering_satellite(tmp_path, monkeypatch, 300, 5.0)
    try:
        ids: list[bytes] = []
        for _ in range(40):  # 30 spans every 20 ms: the decide loop hands over a table a tick
            batch, batch_ids = trace_batch(10)
            ids += batch_ids
            assert satellite.submit(batch)
            time.sleep(0.02)
        _wait(lambda: satellite.counters.spans_stored == 1200)
        assert sum(store.writes) == 1200
        assert len(store.writes) <= 6 and max(store.writes) >= 300, store.writes
        # Whole row groups; smaller writes only before the flow is fast enough and at the end of a gathering.
        assert all(rows % 300 == 0 for rows in store.writes if rows >= 300), store.writes
        assert {store.trace(trace_id).num_rows for trace_id in ids} == {3}
    finally:
        satellite.stop()
        store.close()


def test_kept_spans_coming_slowly_are_written_as_they_come(tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    """Too few kept spans to fill a large write soon (a low sample rate, a quiet hour): waiting would only add
    latency, so each decision's spans are written at once."""
    store, satellite = _gathering_satellite(tmp_path, monkeypatch, pipeline.WRITE_ROWS, 5.0)
    try:
        batch, _ = trace_batch(10)
        assert satellite.submit(batch)
        began = time.monotonic()
        _wait(lambda: satellite.counters.spans_stored == 30)
        assert time.monotonic() - began < 2.5
        assert store.writes == [30]
    finally:
        satellite.stop()
        store.close()


def test_gathered_spans_are_written_once_nothing_more_can_come(
    tmp_path: Path, monkeypatch: MonkeyPatch
) -> None:
    """The end of a burst: with no span queued or undecided, gathered spans are written without waiting out
    ``WRITE_GATHER_S``."""
    store, satellite = _gathering_satellite(tmp_path, monkeypatch, 10**9, 30.0)
    try:
        for _ in range(20):
            assert satellite.submit(trace_batch(200)[0])
            time.sleep(0.02)
        began = time.monotonic()
        _wait(lambda: satellite.counters.spans_stored == 12_000)
        assert time.monotonic() - began < 10
        assert max(store.writes) > 600, store.writes  # gathered: more than one decision's spans a write
    finally:
        satellite.stop()
        store.close()


def test_a_flush_and_a_stop_write_what_is_gathered_at_once(tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    """Gathered spans do not wait out ``WRITE_GATHER_S`` when someone waits for them: a flush (tests, the
    API's readers of what was just sent) writes them at once, and so does a stop."""
    monkeypatch.setattr(
        Satellite, "_nothing_coming", lambda self: False
    )  # as if more spans were on their way
    store, satellite = _gathering_satellite(tmp_path, monkeypatch, 10**9, 30.0)
    try:
        for _ in range(20):
            assert satellite.submit(trace_batch(200)[0])  # 600 spans a tick: fast enough to gather
            time.sleep(0.02)
        _wait(lambda: satellite.counters.traces_decided == 4000)
        time.sleep(0.2)
        assert satellite.counters.spans_stored == 0  # gathered, waiting for more
        began = time.monotonic()
        satellite.flush()
        assert time.monotonic() - began < 5 and satellite.counters.spans_stored == 12_000
        assert satellite.submit(trace_batch(200)[0])
        _wait(lambda: satellite.counters.traces_decided == 4200)
    finally:
        satellite.stop()
        store.close()
    assert sum(store.writes) == 12_600


def test_a_trace_is_read_whole_while_its_gathering_is_written_in_parts(
    tmp_path: Path, monkeypatch: MonkeyPatch
) -> None:
    """A gathering is written in whole ``WRITE_ROWS`` and the rest waits, so a trace can be half stored; and the
    recall buffer may forget decided traces before they are stored. A lookup reads what waits for the store
    too: every trace whole, each span once."""
    from spyglass.analysis.traces import trace_spans

    monkeypatch.setattr(Satellite, "_nothing_coming", lambda self: False)  # the rest waits for more
    store, satellite = _gathering_satellite(tmp_path, monkeypatch, 300, 30.0)
    try:
        batch, ids = trace_batch(60, spans_per_trace=7)  # 420 spans: 300 written, 120 gathered
        assert satellite.submit(batch)
        _wait(lambda: satellite.counters.spans_stored == 300)
        stored = [store.trace(trace_id).num_rows for trace_id in ids]
        split = ids[stored.index(6)]  # six spans written, the seventh gathered
        waiting = ids[-1]
        assert store.trace(waiting).num_rows == 0
        for trace_id in (split, waiting, ids[0]):
            whole = trace_spans(store, satellite, trace_id)
            assert whole.num_rows == 7 and len(set(whole.column("span_id").to_pylist())) == 7
        satellite.buffer.make_room(satellite.buffer.max_bytes)  # forget every decided trace
        assert satellite.buffer.spans == 0
        for trace_id in (split, waiting, ids[0]):
            assert trace_spans(store, satellite, trace_id).num_rows == 7
        satellite.flush()
        assert satellite.live_trace(waiting, skip_kept=True).num_rows == 0  # written: the store has it
        assert trace_spans(store, satellite, waiting).num_rows == 7
    finally:
        satellite.stop()
        store.close()


def test_spans_both_buffered_and_waiting_for_the_store_are_read_once(tmp_path: Path) -> None:
    """Between a decision and the buffer marking its traces kept, their spans are in both places."""
    store = DuckDBStore(tmp_path / "s.duckdb")
    satellite = Satellite(SatelliteSettings(), store, KeepAllSampler())
    try:
        batch, ids = trace_batch(2)
        satellite.buffer.add(batch, time.time_ns())
        satellite._unwritten_push(pa.Table.from_batches([batch]))
        assert satellite.live_trace(ids[0]).num_rows == 3
        assert satellite.live_trace(ids[1], skip_kept=True).num_rows == 3
    finally:
        store.close()


def test_kept_spans_are_written_even_if_retaining_them_fails(
    tmp_path: Path, monkeypatch: MonkeyPatch
) -> None:
    """Every table counted as waiting for the store is queued, whatever happens to its copy in the buffer: the
    writer writes them in order, and a trace lookup reads what waits."""
    import pytest

    def failing(*args: object, **kwargs: object) -> None:
        raise RuntimeError("retaining failed")

    store = DuckDBStore(tmp_path / "s.duckdb")
    satellite = Satellite(SatelliteSettings(decision_wait_s=60), store, KeepAllSampler())
    satellite.start()
    try:
        monkeypatch.setattr(satellite.buffer, "retain_decided", failing)
        batch, ids = trace_batch(3)
        with pytest.raises(RuntimeError, match="retaining failed"):
            satellite._decide(pa.Table.from_batches([batch]))
        satellite._writes.put(pipeline._WRITE_NOW)
        satellite._writes.join()
        assert [store.trace(trace_id).num_rows for trace_id in ids] == [3, 3, 3]
        assert not satellite._unwritten
    finally:
        satellite.stop()
        store.close()
