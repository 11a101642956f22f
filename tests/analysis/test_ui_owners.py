"""The home page learns owners from recent spans without reading the whole recall buffer on every request: again
only for a service it has not looked for yet, or once a while has passed (a real satellite and DuckDB store)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from spyglass.analysis.ownership import Ownership
from spyglass.analysis.ui_answers import RELEARN_OWNERS_NS, UiSources, service_overview
from spyglass.model.builder import SpanBatchBuilder, encode_attributes
from spyglass.satellite.pipeline import Satellite, SatelliteSettings
from spyglass.satellite.sampler import KeepAllSampler
from spyglass.store.duckdb_store import DuckDBStore


class CountedReads:
    """The satellite as the overview reads it, counting how often the whole buffer is read."""

    def __init__(self, satellite: Satellite) -> None:
        self.satellite = satellite
        self.reads = 0

    def recent_spans(
        self,
        include_decided: bool = True,
        newest: int | None = None,
        starting: Sequence[tuple[int, int]] | None = None,
    ) -> pa.Table:
        self.reads += 1
        return self.satellite.recent_spans(include_decided, newest, starting)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.satellite, name)


def _spans(service: str, team: str | None) -> pa.RecordBatch:
    builder = SpanBatchBuilder()
    resource = [("service.name", service)] + ([("team", team)] if team else [])
    for _ in range(3):
        builder.add(
            trace_id=os.urandom(16),
            span_id=os.urandom(8),
            parent_span_id=None,
            service=service,
            name="GET /",
            kind=2,
            start_ns=time.time_ns() - 5 * 10**9,
            duration_ns=1_000_000,
            status_code=0,
            resource=encode_attributes(resource),
        )
    return builder.finish()


def test_owners_are_looked_for_again_only_for_new_services_or_after_a_while(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "owners.duckdb")
    satellite = Satellite(SatelliteSettings(decision_wait_s=0.1), store, KeepAllSampler())
    satellite.start()
    try:
        live = CountedReads(satellite)
        ownership = Ownership()
        sources = UiSources(store, live, satellite.rollups, ownership)  # type: ignore[arg-type]

        def overview() -> dict[str, str | None]:
            end = time.time_ns()
            answer = service_overview(sources, end - 3600 * 10**9, end, 60)
            return {entry["service"]: entry["owner"] for entry in answer["services"]}

        assert satellite.submit(_spans("web", "web-team")) and satellite.submit(_spans("quiet", None))
        satellite.flush()
        assert overview() == {"quiet": None, "web": "web-team"}
        assert live.reads == 1
        # "quiet" names no owner: it was looked for, and is not looked for again on every request.
        overview()
        overview()
        assert live.reads == 1

        assert satellite.submit(_spans("late", "late-team"))
        satellite.flush()
        assert overview()["late"] == "late-team"  # a service not looked for yet is, at once
        assert live.reads == 2

        ownership.learned_at_ns -= RELEARN_OWNERS_NS  # a while later: everything is looked for again
        assert satellite.submit(_spans("quiet", "quiet-team"))
        satellite.flush()
        assert overview()["quiet"] == "quiet-team"
        assert live.reads == 3
    finally:
        satellite.stop()
        store.close()
