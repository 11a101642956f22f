"""The symptom gate: explain says nothing changed unless the root's latency or failures moved beyond what two
samples of the same traffic differ by. Both windows are samples, so healthy pairs must pass about as rarely as
the gate's three standard errors promise, and a real shift must pass even in small windows."""

from __future__ import annotations

import random

from spyglass.analysis.explain.symptom import Windows
from tests.support.explain_workloads import S, windows_request, workload

REQUEST = windows_request("web", "GET /")


def changed(make: object, n: int, seed: int) -> bool:
    w = Windows(workload(make, n=n, seed=seed), REQUEST)
    try:
        return w.select_traces() and w.changed()
    finally:
        w.close()


def request(rng: random.Random, slow_share: float = 0.0) -> list[S]:
    """A request of a lognormal latency; ``slow_share`` of them take twice as long."""
    ms = rng.lognormvariate(3.0, 0.35) * (2.0 if rng.random() < slow_share else 1.0)
    return [S("web", "GET /", 0, ms + 1), S("web", "render", 0.5, ms, 0)]


def test_healthy_pairs_of_windows_rarely_pass_the_gate() -> None:
    """120 healthy pairs of 300 requests: at 3 standard errors of the difference of two samples, the four tests
    together pass about 1 pair in 100 by chance (1 of these 120 today)."""
    passed = [seed for seed in range(120) if changed(lambda rng, reg, i: request(rng), 300, seed)]
    assert len(passed) <= 2, passed


def test_a_third_of_requests_twice_as_slow_is_a_symptom_in_small_windows() -> None:
    """150 requests a window, a third of the regression's twice as slow: the p90 share moves by a noisy few
    requests, the ranks of the whole window plainly (the rank-sum test)."""
    shifted = [
        seed
        for seed in range(10)
        if changed(lambda rng, reg, i: request(rng, slow_share=1 / 3 if reg else 0.0), 150, seed)
    ]
    assert len(shifted) >= 9, shifted
