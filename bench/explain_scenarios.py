"""Explain accuracy on the demo shop's faults, end to end: top-1 and top-3 over every scenario and variant.

    .venv/bin/python bench/explain_scenarios.py [--seeds 7,8] [--record DIR]
    .venv/bin/python bench/explain_scenarios.py --replay DIR

Each run starts a real spyglass server on loopback, drives the demo's real services at it (a healthy baseline,
then the fault), and asks explain for the symptom through the same path as the API. Besides the seven demo
scenarios it runs *variants*: the same kinds of fault put elsewhere (another service's version, another host,
a milder factor, another zone), which explain's tuning never saw. ``--record`` keeps each run's explain input
(the spans of both windows, as Parquet, with the request) so that ranking changes can be replayed offline in
seconds with ``--replay``, on exactly the same data.
"""

from __future__ import annotations

# First: spyglass sets numpy's CPU dispatch before numpy loads, as in `spyglass serve` (numpy_sort_dispatch).
import spyglass  # noqa: F401

# isort: split

import argparse
import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from spyglass.analysis.explain import ExplainRequest, explain_spans
from spyglass.analysis.explain_source import gather_spans
from spyglass.demo.runner import run_demo
from spyglass.demo.scenarios import (
    SCENARIOS,
    ExpectedFinding,
    HeavyCustomer,
    NoisyHost,
    Scenario,
    SlowUpstream,
    SlowVersion,
    Symptom,
    ZoneErrors,
)
from spyglass.server import SpyglassServer, loopback_config

BASELINE_S = 9.0
FAULT_S = 9.0
RATE = 40.0


def _variant(
    base: type[Scenario],
    name: str,
    symptom: Symptom | None = None,
    expected: tuple[ExpectedFinding, ...] | None = None,
    **params: Any,
) -> Scenario:
    """``base`` with other parameters, its own name, and the symptom and cause those parameters imply."""
    overrides: dict[str, Any] = {"name": name}
    if symptom is not None:
        overrides["symptom"] = symptom
    if expected is not None:
        overrides["expected"] = expected
    factor = params.pop("factor", None)
    scenario: Scenario = type(base.__name__ + "Variant", (base,), overrides)(**params)
    if factor is not None:
        scenario.factor = factor  # type: ignore[attr-defined]
    return scenario


VARIANTS: tuple[Scenario, ...] = (
    _variant(
        SlowVersion,
        "slow-version-cart",
        Symptom("frontend", "GET /product/{id}", "latency"),
        (ExpectedFinding("attribute", "cart", key="service.version", value="3.3.0"),),
        service="cart",
        version="3.3.0",
        operation="load cart",
    ),
    _variant(SlowVersion, "slow-version-3x", factor=3.0),
    _variant(
        NoisyHost,
        "noisy-inventory-host",
        expected=(ExpectedFinding("attribute", "inventory", key="host.name", value="inventory-2"),),
        host="inventory-2",
        factor=5.0,
    ),
    _variant(SlowUpstream, "slow-upstream-4x", factor=4.0),
    _variant(HeavyCustomer, "heavy-customer-fifth", share=0.2),
    _variant(
        ZoneErrors,
        "zone-errors-b",
        # payments has one instance in us-east-1b: its host names the cause as well as the zone does.
        expected=(
            ExpectedFinding("attribute", "payments", key="cloud.availability_zone", value="us-east-1b"),
            ExpectedFinding("attribute", "payments", key="host.name", value="payments-2"),
            ExpectedFinding("error_source", "payments", operation="authorize card"),
        ),
        zone="us-east-1b",
    ),
)


def record(scenarios: list[Scenario], seeds: list[int], out: Path | None) -> list[tuple[str, pa.Table, dict]]:
    """Run each scenario once per seed through one real server; return (and optionally save) explain's input."""
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        server = SpyglassServer(loopback_config(Path(tmp), decision_wait_s=0.3))
        ports = server.start_in_thread()
        try:
            for scenario in scenarios:
                assert scenario.symptom is not None
                for seed in seeds:
                    stats = run_demo(
                        f"http://127.0.0.1:{ports.otlp_http}",
                        duration_s=BASELINE_S + FAULT_S,
                        scenario=scenario,
                        rate_per_s=RATE,
                        baseline_s=BASELINE_S,
                        seed=seed,
                    )
                    server.satellite.flush()
                    assert stats.fault_started_ns is not None and stats.ended_ns is not None
                    symptom = scenario.symptom
                    req = ExplainRequest(
                        symptom.service,
                        symptom.operation,
                        stats.fault_started_ns,
                        stats.ended_ns,
                        stats.started_ns,
                        stats.fault_started_ns,
                        symptom.signal,
                    )
                    spans = gather_spans(server.store, server.satellite.buffer, req)
                    meta = {"req": asdict(req), "expected": [asdict(e) for e in scenario.expected]}
                    name = f"{scenario.name}.seed{seed}"
                    runs.append((name, spans, meta))
                    if out is not None:
                        out.mkdir(parents=True, exist_ok=True)
                        pq.write_table(spans, out / f"{name}.parquet")
                        (out / f"{name}.json").write_text(json.dumps(meta))
        finally:
            server.stop_thread()
    return runs


def replay(directory: Path) -> list[tuple[str, pa.Table, dict]]:
    return [
        (path.stem, pq.read_table(path.with_suffix(".parquet")), json.loads(path.read_text()))
        for path in sorted(directory.glob("*.json"))
    ]


def evaluate(runs: list[tuple[str, pa.Table, dict]]) -> None:
    top1 = top3 = 0
    for name, spans, meta in runs:
        expected = [ExpectedFinding(**e) for e in meta["expected"]]
        started = time.perf_counter()
        findings = explain_spans(spans, ExplainRequest(**meta["req"]))
        elapsed = time.perf_counter() - started
        rank = next((i + 1 for i, f in enumerate(findings) if any(e.matches(f) for e in expected)), None)
        top1 += rank == 1
        top3 += rank is not None and rank <= 3
        first = findings[0] if findings else {}
        named = f"{first.get('kind')} {first.get('service')} {first.get('key') or first.get('operation')}"
        value = f"={first['value']}" if first.get("value") else ""
        print(f"  {name:32s} rank {rank!s:5s} {elapsed:5.2f} s   first: {named}{value}")
    print(f"accuracy over {len(runs)} demo runs: top-1 {top1}/{len(runs)}, top-3 {top3}/{len(runs)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--seeds", default="7,8", help="comma-separated demo seeds; each scenario runs once per seed"
    )
    parser.add_argument(
        "--only", default="", help="comma-separated scenario names (default: all and variants)"
    )
    parser.add_argument("--record", type=Path, help="save each run's explain input here")
    parser.add_argument("--replay", type=Path, help="evaluate saved runs instead of running the demo")
    args = parser.parse_args()
    if args.replay:
        evaluate(replay(args.replay))
        return
    scenarios = [s for s in SCENARIOS.values() if s.has_fault] + list(VARIANTS)
    if args.only:
        wanted = set(args.only.split(","))
        scenarios = [s for s in scenarios if s.name in wanted]
    evaluate(record(scenarios, [int(s) for s in args.seeds.split(",")], args.record))


if __name__ == "__main__":
    main()
