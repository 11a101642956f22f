"""Where explain reads from: a window with more traces than explain reads is sampled, whole traces, weighed up."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from spyglass.analysis import explain_source
from spyglass.analysis.explain import ExplainRequest, explain_spans, symptom
from spyglass.analysis.ownership import Ownership
from spyglass.store.duckdb_store import DuckDBStore
from tests.support.explain_workloads import BASE_T0, MS, REG_T0, shop, workload

TRACES = 800  # per window
CAP = 200


def request() -> ExplainRequest:
    return ExplainRequest(
        "api", "GET /x", REG_T0, REG_T0 + TRACES * 100 * MS, BASE_T0, BASE_T0 + TRACES * 100 * MS
    )


@pytest.fixture
def capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(explain_source, "TRACES_PER_WINDOW", CAP)
    monkeypatch.setattr(symptom, "TRACES_PER_WINDOW", CAP)


def spans() -> pa.Table:
    table = workload(lambda rng, reg, i: shop(rng, reg, i, slow_host="db-2"), n=TRACES)
    return table.append_column("sample_weight", pa.array([1.0] * table.num_rows, pa.float64()))


def check(findings: list[dict[str, object]]) -> None:
    top = findings[0]
    assert (top["kind"], top["key"], top["value"]) == ("attribute", "host.name", "db-2"), findings[:3]
    for window in ("regression", "baseline"):
        evidence = top["evidence"][window]  # type: ignore[index]
        assert evidence["traces_analyzed"] <= 1.3 * CAP, evidence
        assert abs(evidence["requests"] - TRACES) <= 0.15 * TRACES, evidence  # weighed up to the whole window


def test_a_store_window_larger_than_explain_reads_is_sampled_by_whole_traces(
    capped: None, tmp_path: Path
) -> None:
    store = DuckDBStore(tmp_path / "spans.duckdb")
    try:
        store.write(spans())
        read = explain_source.gather_spans(store, None, request())
        per_trace = read.group_by("trace_id").aggregate([("span_id", "count")]).column(1).to_pylist()
        full = spans().group_by("trace_id").aggregate([("span_id", "count")]).column(1).to_pylist()
        assert len(per_trace) < 0.5 * len(full) and sorted(set(per_trace)) == sorted(set(full))
        check(explain_source.explain(store, None, Ownership(), request()))
    finally:
        store.close()


def test_spans_in_memory_beyond_the_cap_are_sampled_by_explain_itself(capped: None) -> None:
    check(explain_spans(spans(), request()))


def test_a_window_under_the_cap_is_read_whole(tmp_path: Path) -> None:
    findings = explain_spans(spans(), request())
    assert findings[0]["evidence"]["regression"]["traces_analyzed"] == TRACES
