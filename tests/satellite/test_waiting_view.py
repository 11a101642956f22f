"""``StoreWithWaiting``: reads over a window count the kept spans the writer has not written yet, once, on a real
DuckDB store behind a real satellite whose writer holds part of a gathering."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pytest import MonkeyPatch

from spyglass.analysis.live import window_spans
from spyglass.satellite import pipeline
from spyglass.satellite.pipeline import Satellite, SatelliteSettings
from spyglass.satellite.sampler import KeepAllSampler
from spyglass.satellite.waiting_view import StoreWithWaiting
from spyglass.store.duckdb_store import DuckDBStore
from spyglass.store.protocol import ScanFilter
from tests.support.spans import trace_batch

START = 1_700_000_000_000_000_000
WINDOW = (START - 10**9, START + 10**9)


@pytest.fixture
def holding(tmp_path: Path, monkeypatch: MonkeyPatch) -> Iterator[tuple[DuckDBStore, Satellite]]:
    """A satellite that has written 300 of 420 kept spans and holds the rest, its buffer emptied of them."""
    monkeypatch.setattr(pipeline, "WRITE_ROWS", 300)
    monkeypatch.setattr(pipeline, "GATHER_FLOW_ROWS", 100)
    monkeypatch.setattr(pipeline, "WRITE_GATHER_S", 30.0)
    monkeypatch.setattr(Satellite, "_nothing_coming", lambda self: False)
    store = DuckDBStore(tmp_path / "s.duckdb")
    satellite = Satellite(SatelliteSettings(decision_wait_s=0.05), store, KeepAllSampler())
    satellite.start()
    try:
        assert satellite.submit(trace_batch(60, spans_per_trace=7, start_ns=START)[0])
        deadline = time.monotonic() + 10
        while satellite.counters.spans_stored < 300:
            assert time.monotonic() < deadline, "the first row group was not written"
            time.sleep(0.01)
        satellite.buffer.make_room(satellite.buffer.max_bytes)  # the buffer forgets every decided trace
        yield store, satellite
    finally:
        satellite.stop()
        store.close()


def test_a_window_counts_every_kept_span_once_while_part_waits(
    holding: tuple[DuckDBStore, Satellite],
) -> None:
    store, satellite = holding
    view = StoreWithWaiting(store, satellite)
    assert sum(t.num_rows for t in window_spans(store, satellite, ["span_id"], *WINDOW)) == 300  # the gap
    parts = window_spans(view, satellite, ["span_id"], *WINDOW)
    spans = pa.concat_tables([p.cast(parts[0].schema) for p in parts])
    assert spans.num_rows == 420 and pc.count_distinct(spans.column("span_id")).as_py() == 420
    assert pc.sum(spans.column("sample_weight")).as_py() == 420
    satellite.flush()
    assert sum(t.num_rows for t in window_spans(view, satellite, ["span_id"], *WINDOW)) == 420  # all stored


def test_metrics_by_an_attribute_count_the_waiting_spans(holding: tuple[DuckDBStore, Satellite]) -> None:
    store, satellite = holding
    view = StoreWithWaiting(store, satellite)
    cells = view.attribute_cells("tier", *WINDOW, None)
    assert pc.sum(cells.column("weight")).as_py() == 420
    assert pc.sum(store.attribute_cells("tier", *WINDOW, None).column("weight")).as_py() == 300


def test_filters_apply_to_the_waiting_spans(holding: tuple[DuckDBStore, Satellite]) -> None:
    store, satellite = holding
    view = StoreWithWaiting(store, satellite)
    assert view.scan(["span_id"], *WINDOW, ScanFilter(service="other")).num_rows == 0
    roots = view.scan(["span_id"], *WINDOW, ScanFilter(operation="root", kinds=(2,)))
    assert roots.num_rows == 60
    # What only a store answers (an attribute, a share of the traces) reads the store alone.
    assert view.scan(["span_id"], *WINDOW, ScanFilter(attributes=(("tier", "gold"),))).num_rows == 300
