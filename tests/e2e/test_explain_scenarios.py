"""Each demo scenario through the real pipeline: explain must name the injected cause first."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from spyglass.demo.scenarios import SCENARIOS
from tests.conftest import RunningServer
from tests.support.demo_process import run_demo_process

# Latency scenarios need the machine to themselves: scripts/test.sh runs the `alone` tests after the rest.
pytestmark = [pytest.mark.timeout(1200), pytest.mark.alone]

#: The demo's first seconds (a new process, servers starting, connections opening) are not its baseline.
WARMUP_S = 3.0
BASELINE_S = 9.0
FAULT_S = 9.0
RATE = 40.0
FAULTS = [name for name, scenario in SCENARIOS.items() if scenario.has_fault]


def run_scenario(
    server: RunningServer, name: str, seed: int, stretch: float = 1.0
) -> tuple[list[dict[str, Any]], dict[str, Any], float]:
    """Baseline and fault windows (``stretch`` times the usual length), then explain on them: its findings, the
    symptom's own numbers and how long explain took."""
    scenario = SCENARIOS[name]
    stats = run_demo_process(
        server.otlp_http,
        duration_s=WARMUP_S + (BASELINE_S + FAULT_S) * stretch,
        scenario=name,
        rate_per_s=RATE,
        baseline_s=WARMUP_S + BASELINE_S * stretch,
        seed=seed,
    )
    server.flush()
    assert stats.fault_started_ns is not None and scenario.symptom is not None
    symptom = scenario.symptom
    started = time.perf_counter()
    response = httpx.post(
        server.api + "/api/v1/explain",
        json={
            "service": symptom.service,
            "operation": symptom.operation,
            "start_ns": stats.fault_started_ns,
            "end_ns": stats.ended_ns,
            "baseline_start_ns": stats.started_ns + int(WARMUP_S * 1e9),
            "baseline_end_ns": stats.fault_started_ns,
            "signal": symptom.signal,
        },
        timeout=60,
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    answer = response.json()
    return answer["findings"], answer["symptom"], elapsed


def test_each_scenario_cause_is_named_first(start_server: Callable[..., RunningServer]) -> None:
    """One server, the scenarios one after another (in parallel they would starve each other of CPU and the
    demo's latencies would be noise); each gets its own baseline and fault windows.

    The injected cause must be the first finding of every scenario. A scenario whose first finding is another
    gets up to three more runs with a fresh baseline, another seed and windows twice as long. The demo's
    services are real, so a window of fifty to a hundred and fifty requests on a busy two-core machine can be
    noisy: a shift of a third of the checkouts sits near three standard errors there. On a machine at half its
    speed, the faults (a few milliseconds of work each) stood out of the noise in 10 first runs of 14, and on
    the CI machine a host's 20 ms more on a third of the product pages was inside the noise three times of
    three. Every run is printed, with the symptom's numbers when explain saw no change in it.
    """
    server = start_server(decision_wait_s=0.3)
    failures = []
    for name in FAULTS:
        expected = SCENARIOS[name].expected
        for seed, stretch in ((7, 1.0), (11, 2.0), (13, 2.0), (17, 2.0)):
            findings, symptom, elapsed = run_scenario(server, name, seed, stretch)
            brief = [
                (f["kind"], f.get("service"), f.get("key") or f.get("operation"), f.get("value"), f["score"])
                for f in findings[:3]
            ]
            print(f"{name} (seed {seed}): {brief}")
            if not findings:
                print(f"  no change found in the symptom: {symptom}")
            if findings and any(e.matches(findings[0]) for e in expected):
                break
        else:
            failures.append(f"{name}: {brief}")
            continue
        top = findings[0]
        assert top["owner"], top
        assert top["examples"]["regression"] and top["examples"]["baseline"], top
        assert 0 <= top["score"] <= 1 and top["summary"], top
        assert elapsed < 10, f"{name}: explain took {elapsed:.1f} s"
    assert not failures, failures


def test_explain_rejects_malformed_requests(start_server: Callable[..., RunningServer]) -> None:
    server = start_server()
    url = server.api + "/api/v1/explain"
    good = {
        "service": "a",
        "operation": "b",
        "start_ns": 10,
        "end_ns": 20,
        "baseline_start_ns": 0,
        "baseline_end_ns": 10,
        "signal": "latency",
    }
    assert httpx.post(url, json=good).json()["findings"] == []
    assert httpx.post(url, json={**good, "signal": "cpu"}).status_code == 400
    assert httpx.post(url, json={k: v for k, v in good.items() if k != "end_ns"}).status_code == 400
    assert httpx.post(url, content=b"{not json").status_code == 400
