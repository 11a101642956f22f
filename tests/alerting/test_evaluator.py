"""The evaluator on synthetic rollups, round by round: one notification when a pair starts firing, none while
it fires, one when it resolves; an alert still goes out when explain fails, saying so; a firing alert is
explained again, on the same healthy baseline, and keeps its last cause when a later explanation finds none."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pytest

from spyglass.alerting import evaluator as evaluator_module
from spyglass.alerting.alerts import AlertBook
from spyglass.alerting.evaluator import SloEvaluator
from spyglass.alerting.slo_catalog import SloCatalog
from spyglass.alerting.watch import SloWatch
from spyglass.analysis.live import LiveData
from spyglass.analysis.ownership import Ownership
from spyglass.analysis.slo import Slo
from spyglass.analysis.slo_explain import BurnExplained, ExplainSources
from spyglass.analysis.slo_meter import SloMeter
from spyglass.analysis.slo_windows import ExplainWindows
from spyglass.model.rollups import TRACE_SUMMARY_SCHEMA
from spyglass.store.duckdb_store import DuckDBStore
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


def _restarted(tmp_path: Path, rollups: TableRollups, recorder: Recorder) -> tuple[SloWatch, SloEvaluator]:
    """A server's SLO watch and evaluator over a data directory, as a (re)started server builds them."""
    book = AlertBook(path=tmp_path / "alerts.json")
    watch = SloWatch(SloCatalog([SLO], tmp_path / "slos.json"), SloMeter(rollups), book)
    sources = ExplainSources(
        cast("Store", BrokenStore()), cast("LiveData", None), rollups, Ownership({"shop": "shop-team"})
    )
    return watch, SloEvaluator(watch, sources, [recorder], interval_s=1.0)


def test_an_alert_open_across_a_restart_keeps_its_id_and_is_not_sent_twice(tmp_path: Path) -> None:
    rollups = TableRollups()
    rollups.add(rollup_rows(*[(NOW + s * SECOND_NS, 50.0, 10, 5) for s in range(0, 30, 10)]))
    before = Recorder()
    _, evaluator = _restarted(tmp_path, rollups, before)
    evaluator.evaluate(NOW + 30 * SECOND_NS)
    assert [a["state"] for a in before.sent] == ["firing"]
    fired = before.sent[0]

    # Restarted while the SLO still burns: the alert carries on under its id, nothing is announced again.
    after = Recorder()
    watch, evaluator = _restarted(tmp_path, rollups, after)
    assert [a["id"] for a in watch.alerts.recent()] == [fired["id"]]
    evaluator.evaluate(NOW + 35 * SECOND_NS)
    assert after.sent == []
    (open_alert,) = watch.alerts.open_alerts()
    assert (open_alert.id, open_alert.started_ns) == (fired["id"], fired["started_ns"])

    # The burn stops after another restart: it resolves under the id it fired with.
    rollups.add(rollup_rows((NOW + 40 * SECOND_NS, 50.0, 3000, 0)))
    last = Recorder()
    watch, evaluator = _restarted(tmp_path, rollups, last)
    evaluator.evaluate(NOW + 50 * SECOND_NS)
    assert [(a["id"], a["state"], a["resolved_ns"]) for a in last.sent] == [
        (fired["id"], "resolved", NOW + 50 * SECOND_NS)
    ]
    assert last.sent[0]["summary"].startswith("resolved: ")
    assert [(a["id"], a["state"]) for a in watch.alerts.recent()] == [(fired["id"], "resolved")]
    assert watch.alerts.open_alerts() == [] and watch.alerts.restored() == {}


def test_a_damaged_alerts_file_costs_the_history_not_the_server(tmp_path: Path) -> None:
    (tmp_path / "alerts.json").write_text("{not json", encoding="utf-8")
    watch, evaluator = _restarted(tmp_path, TableRollups(), Recorder())
    evaluator.evaluate(NOW)
    assert watch.alerts.recent() == []


def test_a_firing_alert_is_explained_again_against_the_baseline_it_opened_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def finding(value: str) -> dict[str, Any]:
        return {
            "kind": "attribute",
            "key": "zone",
            "value": value,
            "summary": f"zone {value}",
            "examples": {},
        }

    answers: Iterator[BurnExplained | Exception] = iter(
        [
            BurnExplained([finding("a")], {}, ["shop-web"], "shop-web"),
            BurnExplained([finding("b")], {}, ["shop-web"], "shop-web"),
            BurnExplained([], {}, ["shop-web"], "shop-web"),  # finds nothing: the last cause stays
            OSError("the store is gone"),  # fails: the last cause stays
        ]
    )
    asked: list[ExplainWindows] = []

    def explain_burn(sources: ExplainSources, slo: Slo, windows: ExplainWindows) -> BurnExplained:
        asked.append(windows)
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(evaluator_module, "explain_burn", explain_burn)
    rollups = TableRollups()
    rollups.add(rollup_rows(*[(NOW + s * SECOND_NS, 50.0, 10, 5) for s in range(0, 30, 10)]))
    watch = SloWatch(SloCatalog([SLO], tmp_path / "slos.json"), SloMeter(rollups), AlertBook())
    sources = ExplainSources(
        cast("Store", BrokenStore()), cast("LiveData", None), rollups, Ownership({"shop": "shop-team"})
    )
    recorder = Recorder()
    evaluator = SloEvaluator(watch, sources, [recorder], interval_s=1.0, reexplain_s=60.0)

    def shown() -> dict[str, Any]:
        (alert,) = watch.alerts.recent()
        return alert

    evaluator.evaluate(NOW + 30 * SECOND_NS)
    opened = shown()
    assert [f["value"] for f in opened["findings"]] == ["a"] and opened[
        "explained_ns"
    ] == NOW + 30 * SECOND_NS
    evaluator.evaluate(NOW + 60 * SECOND_NS)  # not due yet
    assert len(asked) == 1

    evaluator.evaluate(NOW + 95 * SECOND_NS)
    again = shown()
    assert [f["value"] for f in again["findings"]] == ["b"] and again["explained_ns"] == NOW + 95 * SECOND_NS
    first, second = asked
    # The burning window runs on to now from the burn's start; the baseline is the one found at the open.
    assert (second.start_ns, second.end_ns) == (first.start_ns, NOW + 95 * SECOND_NS)
    assert (second.baseline_start_ns, second.baseline_end_ns) == (
        first.baseline_start_ns,
        first.baseline_end_ns,
    )
    assert again["explained"]["end_ns"] == NOW + 95 * SECOND_NS

    evaluator.evaluate(NOW + 160 * SECOND_NS)  # finds nothing
    evaluator.evaluate(NOW + 230 * SECOND_NS)  # fails
    kept = shown()
    assert len(asked) == 4 and [f["value"] for f in kept["findings"]] == ["b"]
    assert kept["explain_error"] is None and kept["explained_ns"] == NOW + 230 * SECOND_NS
    assert [a["state"] for a in recorder.sent] == ["firing"]


def test_an_alert_explain_failed_on_is_tried_again_while_it_fires(tmp_path: Path) -> None:
    rollups = TableRollups()
    rollups.add(rollup_rows(*[(NOW + s * SECOND_NS, 50.0, 10, 5) for s in range(0, 30, 10)]))
    watch = SloWatch(SloCatalog([SLO], tmp_path / "slos.json"), SloMeter(rollups), AlertBook())
    ownership = Ownership({"shop": "shop-team"})
    sources = ExplainSources(cast("Store", BrokenStore()), cast("LiveData", None), rollups, ownership)
    recorder = Recorder()
    evaluator = SloEvaluator(watch, sources, [recorder], interval_s=1.0, reexplain_s=60.0)
    evaluator.evaluate(NOW + 30 * SECOND_NS)
    assert recorder.sent[0]["explain_error"] == "OSError: the store is gone"
    store = DuckDBStore(tmp_path / "spyglass.duckdb")  # the store is back, empty
    try:
        evaluator.sources = ExplainSources(store, cast("LiveData", None), rollups, ownership)
        evaluator.evaluate(NOW + 95 * SECOND_NS)
    finally:
        store.close()
    (alert,) = watch.alerts.recent()
    assert alert["explain_error"] is None and alert["explained_ns"] == NOW + 95 * SECOND_NS
    assert alert["findings"] == [] and "explain found no cause" in alert["summary"]
    assert [a["state"] for a in recorder.sent] == ["firing"]
