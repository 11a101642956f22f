"""The home page reads only the rollup bins it shows (the entry spans of services that have any, every span of
the others) and answers exactly as from every row: random services, kinds, times and durations, some rollups
stored and some still pending in the aggregator (a real satellite and DuckDB store)."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from spyglass.analysis.ownership import Ownership
from spyglass.analysis.ui_answers import UiSources, service_overview
from spyglass.analysis.ui_views import red_overview
from spyglass.model.builder import SpanBatchBuilder, encode_attributes
from spyglass.satellite.pipeline import Satellite, SatelliteSettings
from spyglass.satellite.sampler import KeepAllSampler
from spyglass.store.duckdb_store import DuckDBStore
from spyglass.store.protocol import RollupQuery

SECOND = 10**9
#: Each service's span kinds: entry spans and calls, calls and internal work only, messages both ways.
KINDS = {"web": (2, 3, 3, 3, 1), "batch": (3, 1, 1), "worker": (5, 4, 3), "cron": (0, 1)}


def _batch(rng: random.Random, now_ns: int, spans: int) -> object:
    builder = SpanBatchBuilder()
    for _ in range(spans):
        service = rng.choice(sorted(KINDS))
        builder.add(
            trace_id=os.urandom(16),
            span_id=os.urandom(8),
            parent_span_id=None,
            service=service,
            name=rng.choice(["GET /", "work", "call"]),
            kind=rng.choice(KINDS[service]),
            # Most of an hour ago (stored rollups), some in the last seconds (pending ones).
            start_ns=now_ns - rng.choice([rng.randrange(3500), rng.randrange(5)]) * SECOND,
            duration_ns=int(rng.lognormvariate(15, 1.5)),
            status_code=2 if rng.random() < 0.05 else 0,
            resource=encode_attributes([("service.name", service)]),
        )
    return builder.finish()


def _without_rates(services: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The answer as ``red_overview`` gives it, before ``with_rates`` adds each rate."""
    return [
        {
            **{k: v for k, v in entry.items() if k != "rate_per_s"},
            "series": [{k: v for k, v in p.items() if k != "rate_per_s"} for p in entry["series"]],
        }
        for entry in services
    ]


@pytest.mark.parametrize("seed", [3, 4])
def test_the_overview_is_what_every_row_gives(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    store = DuckDBStore(tmp_path / "overview.duckdb")
    satellite = Satellite(SatelliteSettings(decision_wait_s=0.1), store, KeepAllSampler())
    satellite.start()
    try:
        now = time.time_ns()
        for _ in range(4):
            assert satellite.submit(_batch(rng, now, 2_000))  # type: ignore[arg-type]
        satellite.flush()
        deadline = time.monotonic() + 10
        while store.rollups(RollupQuery(now - 3600 * SECOND, now - 60 * SECOND)).num_rows == 0:
            assert time.monotonic() < deadline, "rollups never reached the store"
            time.sleep(0.1)
        sources = UiSources(store, satellite, satellite.rollups, Ownership())  # type: ignore[arg-type]
        for start, step_s in ((now - 3600 * SECOND, 40), (now - 1800 * SECOND, 60), (now - 300 * SECOND, 10)):
            end = now + SECOND
            got = service_overview(sources, start, end, step_s, now_ns=end)
            every_row = satellite.rollups.read(
                RollupQuery(start, end, resolution_s=step_s, group_by=("service", "kind"))
            )
            want = red_overview(every_row, store.services(), sources.ownership.owner, start, end, step_s)
            assert _without_rates(got["services"]) == want["services"]
            counts = {entry["service"]: entry["count"] for entry in got["services"]}
            assert all(counts[name] > 0 for name in KINDS), counts
    finally:
        satellite.stop()
        store.close()
