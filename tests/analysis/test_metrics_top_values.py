"""``/api/v1/metrics`` grouped by an attribute that is not rolled up, past the group limit: the quietest values are
folded as the store sums them (``top_values``), chosen over the store's part of the window and the recall
buffer's together. The answer equals summing every value over both parts first and folding after, on randomized
spans of a real DuckDB store behind a real satellite whose buffer holds the window's end."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pyarrow as pa
import pytest

from spyglass.analysis import metrics
from spyglass.analysis.metrics import MetricsQuery, query_metrics
from spyglass.model.builder import SpanBatchBuilder
from spyglass.model.schema import StatusCode
from spyglass.satellite.aggregator import Aggregator
from spyglass.satellite.pipeline import Satellite, SatelliteSettings
from spyglass.satellite.rollup_reader import LocalRollups
from spyglass.satellite.sampler import KeepAllSampler
from spyglass.satellite.waiting_view import StoreWithWaiting
from spyglass.store.duckdb_store import DuckDBStore
from tests.store.conftest import stored

KEY = "user.id"


def spans(rng: random.Random, count: int, start_ns: int, spread_ns: int) -> pa.RecordBatch:
    """Spans of users drawn unevenly (a few busy, many rare, ties likely), on the span or on its resource."""
    builder = SpanBatchBuilder()
    for _ in range(count):
        user = ("user.id", f"u{min(int(rng.paretovariate(0.8)), 60)}")
        on_span = rng.random() < 0.7
        builder.add(
            trace_id=rng.randbytes(16),
            span_id=rng.randbytes(8),
            parent_span_id=None,
            service="api",
            name=rng.choice(["GET /a", "POST /b"]),
            kind=2,
            start_ns=start_ns + rng.randrange(spread_ns),
            duration_ns=int(rng.lognormvariate(15, 1.2)),
            status_code=StatusCode.ERROR if rng.random() < 0.1 else StatusCode.UNSET,
            attributes=([user] if on_span else [], []),
            resource=([("service.name", "api"), *([] if on_span else [user])], []),
        )
    return builder.finish()


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("step_s", [None, 60])
def test_folded_as_the_store_sums_equals_folded_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, step_s: int | None
) -> None:
    rng = random.Random(seed)
    store = DuckDBStore(tmp_path / "s.duckdb")
    satellite = Satellite(SatelliteSettings(decision_wait_s=600.0), store, KeepAllSampler())
    satellite.start()
    try:
        now = time.time_ns()
        hour = 3600 * 10**9
        for write in range(4):
            store.write(stored(spans(rng, 400, now - hour + write * 10 * 60 * 10**9, 10 * 60 * 10**9), 2.0))
        assert satellite.submit(spans(rng, 600, satellite.covered_since_ns + 10**9, 60 * 10**9))
        deadline = time.monotonic() + 10
        while satellite.recent_spans().num_rows < 600:  # taken in by the satellite's thread
            assert time.monotonic() < deadline
            time.sleep(0.01)
        query = MetricsQuery(
            now - hour, satellite.covered_since_ns + 120 * 10**9, group_by=KEY, step_s=step_s
        )
        view, rollups = StoreWithWaiting(store, satellite), LocalRollups(store, Aggregator())
        monkeypatch.setattr(metrics, "MAX_GROUPS", 10**6)
        cells, _ = metrics._span_cells(view, satellite, query, KEY, step_s)
        every_value = len(set(cells.labels.to_pylist()))
        monkeypatch.setattr(metrics, "MAX_GROUPS", 12)
        folded_after = metrics.summarize(cells, query.start_ns, query.end_ns, step_s, exact=False)
        answer = query_metrics(view, rollups, satellite, query)
    finally:
        satellite.stop()
        store.close()
    assert every_value > 20 and answer["estimated"] is True  # the buffer holds only the end of the window
    assert answer["groups"] == folded_after
    assert [g["key"] for g in answer["groups"]].count("__other__") == 1 and len(answer["groups"]) == 12
