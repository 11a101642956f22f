"""What a server shows of its store: ``/api/v1/status`` (``oldest_ns``, ``disk_bytes``, ``storage``) and the
storage families of ``/metrics``, before and after retention runs, on a real server."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from spyglass.model.retention import DAY_S
from tests.conftest import RunningServer
from tests.support.aged_traffic import DAY_NS, HOUR_NS, logs_for, stored, traffic


def samples(spyglass: RunningServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = spyglass.get("/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_status_and_metrics_show_the_store_and_what_retention_did(
    start_server: Callable[..., RunningServer],
) -> None:
    spyglass = start_server(retention_s=2 * DAY_S, rollup_retention_s=30 * DAY_S)
    now = time.time_ns()
    rng = np.random.default_rng(3)
    old, _ = traffic(now - 3 * DAY_NS, now - 3 * DAY_NS + HOUR_NS, 100, rng)
    recent, _ = traffic(now - HOUR_NS, now, 100, rng)
    store = spyglass.server.store
    for spans in (old, recent):
        store.write(stored(spans))
        store.write_logs(logs_for(spans))

    status = spyglass.status()
    storage = status["storage"]
    assert status["oldest_ns"] == storage["oldest_span_ns"] == int(old.column("start_ns")[0].as_py())
    assert status["disk_bytes"] == storage["disk_bytes"] > 0
    assert (storage["retention_s"], storage["rollup_retention_s"]) == (2 * DAY_S, 30 * DAY_S)
    assert storage["rollup_tiers"] == [
        {"after_s": 86_400, "bucket_s": 60},
        {"after_s": 604_800, "bucket_s": 3600},
    ]
    assert storage["spans_expired"] == 0 and storage["retention_passes"] == 0
    assert storage["last_pass_ns"] is None

    spyglass.server.retention.run_pass()  # what the worker's thread does every minute

    status = spyglass.status()
    storage = status["storage"]
    assert storage["spans_expired"] == old.num_rows
    assert storage["logs_expired"] == logs_for(old).num_rows
    assert storage["retention_passes"] == 1 and storage["last_pass_ns"] >= now
    assert status["oldest_ns"] == int(recent.column("start_ns")[0].as_py())
    assert storage["oldest_log_ns"] == status["oldest_ns"]
    # A file this small (under 64 MB) is never compacted; the figures say so.
    assert (storage["compactions"], storage["bytes_compacted"], storage["last_compaction_pause_s"]) == (
        0,
        0,
        0.0,
    )

    metrics = samples(spyglass)
    assert metrics[("spyglass_store_disk_bytes", ())] > 0
    assert (
        metrics[("spyglass_store_oldest_timestamp_seconds", (("data", "spans"),))]
        == status["oldest_ns"] / 1e9
    )
    assert metrics[("spyglass_retention_seconds", (("data", "spans"),))] == 2 * DAY_S
    assert metrics[("spyglass_retention_seconds", (("data", "rollups"),))] == 30 * DAY_S
    assert metrics[("spyglass_retention_deleted_rows_total", (("data", "spans"),))] == old.num_rows
    assert metrics[("spyglass_retention_passes_total", ())] == 1
    assert metrics[("spyglass_store_compactions_total", ())] == 0
    assert ("spyglass_store_oldest_timestamp_seconds", (("data", "rollups"),)) not in metrics  # none held yet
