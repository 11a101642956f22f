"""The home page's RED overview on random rollups: per service, entry spans only (all spans for a service with no
entry span), the same answer whether the rows come per operation or already summed by service and kind (what the
DuckDB store hands over), checked against a plain-Python count."""

from __future__ import annotations

import random
from collections import defaultdict

import pyarrow as pa
import pytest

from spyglass.analysis.ui_views import red_overview
from spyglass.model.rollups import ROLLUP_SCHEMA
from spyglass.model.schema import ENTRY_KINDS

STEP_S = 40
START_NS = 1_800_000_000 * 10**9
END_NS = START_NS + 3600 * 10**9


def _random_rows(rng: random.Random) -> pa.Table:
    services = [f"svc-{i}" for i in range(rng.randint(1, 6))]
    rows = []
    for service in services:
        # Some services have no server or consumer spans at all: all their spans count.
        kinds = rng.sample([0, 1, 2, 3, 4, 5], rng.randint(1, 3))
        for operation in [f"op-{j}" for j in range(rng.randint(1, 4))]:
            for _ in range(rng.randint(1, 40)):
                count = rng.randint(1, 50)
                rows.append(
                    {
                        "bucket_start_ns": START_NS + rng.randrange(360) * 10 * 10**9,
                        "bucket_s": 10,
                        "service": service,
                        "operation": operation,
                        "kind": rng.choice(kinds),
                        "attr_key": "",
                        "attr_value": "",
                        "bin": rng.randint(100, 400),
                        "count": count,
                        "errors": rng.randint(0, count),
                    }
                )
    return pa.Table.from_pylist(rows, schema=ROLLUP_SCHEMA)


def _summed(rows: pa.Table) -> pa.Table:
    """The rows as a store answering ``group_by=("service", "kind")`` gives them: operations summed away."""
    keys = ["bucket_start_ns", "bucket_s", "service", "kind", "bin"]
    sums = rows.group_by(keys).aggregate([("count", "sum"), ("errors", "sum")])
    return pa.table(
        {
            "bucket_start_ns": sums.column("bucket_start_ns"),
            "bucket_s": sums.column("bucket_s"),
            "service": sums.column("service"),
            "operation": pa.array([""] * sums.num_rows),
            "kind": sums.column("kind"),
            "attr_key": pa.array([""] * sums.num_rows),
            "attr_value": pa.array([""] * sums.num_rows),
            "bin": sums.column("bin"),
            "count": sums.column("count_sum"),
            "errors": sums.column("errors_sum"),
        }
    ).cast(ROLLUP_SCHEMA)


def _expected_counts(rows: pa.Table) -> dict[str, tuple[int, int, dict[int, tuple[int, int]]]]:
    """Per service: spans, errors, and per step (spans, errors), counted row by row."""
    listed = rows.to_pylist()
    with_entry = {r["service"] for r in listed if r["kind"] in ENTRY_KINDS}
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    steps: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    first_ns = START_NS - START_NS % (STEP_S * 10**9)
    for row in listed:
        if row["service"] in with_entry and row["kind"] not in ENTRY_KINDS:
            continue
        step = (row["bucket_start_ns"] - first_ns) // (STEP_S * 10**9)
        for part in (totals[row["service"]], steps[row["service"]][step]):
            part[0] += row["count"]
            part[1] += row["errors"]
    return {
        service: (total[0], total[1], {s: (c, e) for s, (c, e) in steps[service].items()})
        for service, total in totals.items()
    }


@pytest.mark.parametrize("seed", range(12))
def test_overview_counts_entry_spans_per_service_and_step_whatever_the_rows_form(seed: int) -> None:
    rng = random.Random(seed)
    rows = _random_rows(rng)
    known = ["idle-service"]  # known to the store, no spans in the window: listed with nothing
    answer = red_overview(rows, known, lambda s: None, START_NS, END_NS, STEP_S)
    assert red_overview(_summed(rows), known, lambda s: None, START_NS, END_NS, STEP_S) == answer
    shuffled = rows.take(pa.array(rng.sample(range(rows.num_rows), rows.num_rows)))
    assert red_overview(shuffled, known, lambda s: None, START_NS, END_NS, STEP_S) == answer

    expected = _expected_counts(rows)
    by_service = {entry["service"]: entry for entry in answer["services"]}
    assert sorted(by_service) == sorted([*expected, "idle-service"])
    assert by_service["idle-service"]["count"] == 0
    assert all(point["count"] == 0 for point in by_service["idle-service"]["series"])
    for service, (count, errors, steps) in expected.items():
        entry = by_service[service]
        assert (entry["count"], entry["errors"]) == (count, errors), service
        series = entry["series"]
        assert len(series) == 90
        got = {i: (p["count"], p["errors"]) for i, p in enumerate(series) if p["count"]}
        assert got == steps, service
        assert all((p["p50_ms"] is None) == (p["count"] == 0) for p in series)


def test_no_rows_lists_known_services_with_nothing() -> None:
    answer = red_overview(ROLLUP_SCHEMA.empty_table(), ["a", "b"], lambda s: None, START_NS, END_NS, STEP_S)
    assert [entry["service"] for entry in answer["services"]] == ["a", "b"]
    assert all(entry["count"] == 0 and entry["p50_ms"] is None for entry in answer["services"])
