"""The evaluator on synthetic rollups, round by round: one notification when a pair starts firing, none while
it fires, one when it resolves; an alert still goes out when explain fails, saying so."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pyarrow as pa

from spyglass.alerting.alerts import AlertBook
from spyglass.alerting.evaluator import SloEvaluator
from spyglass.alerting.slo_catalog import SloCatalog
from spyglass.alerting.watch import SloWatch
from spyglass.analysis.live import LiveData
from spyglass.analysis.ownership import Ownership
from spyglass.analysis.slo import Slo
from spyglass.analysis.slo_explain import ExplainSources
from spyglass.analysis.slo_meter import SloMeter
from spyglass.model.rollups import TRACE_SUMMARY_SCHEMA
from spyglass.store.protocol import Store, TraceQuery
from tests.support.rollup_tables import SECOND_NS, TableRollups, rollup_rows

NOW = 1_700_000_000 * SECOND_NS
SLO = Slo("avail", "Checkout succeeds", "shop", "GET /checkout", objective=0.99, owner="shop-web")


class BrokenStore:
    """A store that holds no traces and cannot be scanned: explain fails on it."""

    def find_traces(self, query: TraceQuery) -> pa.Table:
        return TRACE_SUMMARY_SCHEMA.empty_table()

    def scan(self, *args: Any, **kwargs: Any) -> pa.Table:
        raise OSError("the store is gone")


class Recorder:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def notify(self, alert: dict[str, Any]) -> None:
        self.sent.append(alert)


def test_open_once_resolve_once_and_explain_failures_still_alert(tmp_path: Path) -> None:
    rollups = TableRollups()
    watch = SloWatch(SloCatalog([SLO], tmp_path / "slos.json"), SloMeter(rollups), AlertBook())
    sources = ExplainSources(
        cast("Store", BrokenStore()), cast("LiveData", None), rollups, Ownership({"shop": "shop-team"})
    )
    recorder = Recorder()
    evaluator = SloEvaluator(watch, sources, [recorder], interval_s=1.0)
    evaluator.evaluate(NOW)
    assert recorder.sent == []
    rollups.add(rollup_rows(*[(NOW + s * SECOND_NS, 50.0, 10, 5) for s in range(0, 30, 10)]))
    evaluator.evaluate(NOW + 30 * SECOND_NS)
    assert len(recorder.sent) == 1
    alert = recorder.sent[0]
    assert alert["state"] == "firing" and alert["findings"] == [] and alert["symptom"] is None
    assert alert["explain_error"] == "OSError: the store is gone"
    assert alert["routing_key"] == "shop-web" and "explain failed (OSError" in alert["summary"]
    for second in range(31, 40):
        evaluator.evaluate(NOW + second * SECOND_NS)
    assert len(recorder.sent) == 1
    rollups.add(rollup_rows((NOW + 40 * SECOND_NS, 50.0, 3000, 0)))
    evaluator.evaluate(NOW + 50 * SECOND_NS)
    assert [a["state"] for a in recorder.sent] == ["firing", "resolved"]
    assert recorder.sent[1]["id"] == alert["id"] and recorder.sent[1]["resolved_ns"] == NOW + 50 * SECOND_NS
    assert watch.alerts.open_alerts() == [] and watch.alerts.recent()[0]["state"] == "resolved"
