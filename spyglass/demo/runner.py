"""`spyglass demo`: start the shop, drive traffic at it, switch the scenario's fault on after a baseline.

`run_demo` blocks until the duration passes, `stop_event` is set or Ctrl-C; `Demo` is the same thing for callers
that want to start it, do something while it runs, and stop it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field

from spyglass.demo.instance import Cluster
from spyglass.demo.scenarios import SCENARIOS, FaultSwitch, Scenario
from spyglass.demo.services import start_shop
from spyglass.demo.telemetry import ExportHealth, ExportTarget, quiet_exporter_logs, shutdown_providers
from spyglass.demo.traffic import TrafficCounts, TrafficGenerator

log = logging.getLogger("spyglass.demo")

DEFAULT_BASELINE_S = 30.0


@dataclass
class DemoStats:
    """What a demo run did. Times are ns since the epoch; `fault_started_ns` is None until a fault starts."""

    scenario: str
    started_ns: int
    ended_ns: int | None = None
    fault_started_ns: int | None = None
    requests_sent: int = 0
    errors: int = 0
    requests_dropped: int = 0
    responses_by_status: dict[int, int] = field(default_factory=dict)
    spans_exported: int = 0
    spans_failed_export: int = 0
    frontend_urls: list[str] = field(default_factory=list)


class Demo:
    """The shop, its shoppers and the scenario's fault timer, started and stopped together."""

    def __init__(
        self,
        otlp_endpoint: str = "http://127.0.0.1:4318",
        scenario: str | Scenario = "healthy",
        rate_per_s: float = 20.0,
        baseline_s: float = DEFAULT_BASELINE_S,
        seed: int | None = None,
        ingest_token: str | None = None,
    ) -> None:
        if isinstance(scenario, str) and scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; choose one of: {', '.join(SCENARIOS)}")
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        self.scenario: Scenario = SCENARIOS[scenario] if isinstance(scenario, str) else scenario
        self.baseline_s = max(0.0, baseline_s)
        self.faults = FaultSwitch(self.scenario)
        self.health = ExportHealth(otlp_endpoint)
        self._rng = random.Random(seed)
        self._rate_per_s = rate_per_s
        self._otlp_endpoint = otlp_endpoint
        self._export_target = ExportTarget(otlp_endpoint, ingest_token)
        self._counts = TrafficCounts()
        self._started_ns = 0
        self._ended_ns: int | None = None
        self._cluster: Cluster | None = None
        self._traffic: TrafficGenerator | None = None
        self._stopping = threading.Event()
        self._fault_timer: threading.Thread | None = None
        self._exit_stack = ExitStack()
        self._stopped = False

    def start(self) -> None:
        self._started_ns = time.time_ns()
        self._exit_stack.enter_context(quiet_exporter_logs())
        cluster = Cluster(self._export_target, self.faults, self.health, self._rng)
        self._cluster = cluster
        try:
            start_shop(cluster)
            self._traffic = TrafficGenerator(
                cluster.addresses("frontend"), self._rate_per_s, self.faults, self._rng, self._counts
            )
            self._traffic.start()
        except BaseException:
            self.stop()
            raise
        log.info(
            "demo shop running (scenario %s, %.0f requests/s, frontend %s), exporting spans to %s",
            self.scenario.name,
            self._rate_per_s,
            ", ".join(self.stats().frontend_urls),
            self._otlp_endpoint,
        )
        if self.scenario.has_fault:
            log.info(
                "fault '%s' starts in %.0f s: %s", self.scenario.name, self.baseline_s, self.scenario.cause
            )
            self._fault_timer = threading.Thread(
                target=self._start_fault_later, name="demo-fault", daemon=True
            )
            self._fault_timer.start()

    def _start_fault_later(self) -> None:
        if self._stopping.wait(self.baseline_s) or self._cluster is None:
            return
        # The fault's start time is taken before the rollout, so no span of a new version predates it.
        self.faults.turn_on()
        self._cluster.redeploy(self.scenario.redeploys())
        log.info("fault on: %s", self.scenario.cause)

    def stop(self) -> DemoStats:
        """Stop traffic, let in-flight work finish, close the servers, flush and shut down every provider."""
        if self._stopped:
            return self.stats()
        self._stopped = True
        self._stopping.set()
        try:
            if self._fault_timer is not None:
                self._fault_timer.join()
            if self._traffic is not None:
                self._traffic.stop()
            if self._cluster is not None:
                self._cluster.close()
                self.health.closing()
                shutdown_providers(self._cluster.providers())
        finally:
            self._ended_ns = time.time_ns()
            self._exit_stack.close()
        stats = self.stats()
        log.info(
            "demo stopped: %d requests, %d errors, %d spans exported, %d spans not exported",
            stats.requests_sent,
            stats.errors,
            stats.spans_exported,
            stats.spans_failed_export,
        )
        return stats

    def stats(self) -> DemoStats:
        counts = self._counts
        with counts.lock:
            stats = DemoStats(
                scenario=self.scenario.name,
                started_ns=self._started_ns,
                ended_ns=self._ended_ns,
                fault_started_ns=self.faults.started_ns,
                requests_sent=counts.requests_sent,
                errors=counts.errors,
                requests_dropped=counts.dropped,
                responses_by_status=dict(counts.by_status),
            )
        stats.spans_exported = self.health.spans_exported
        stats.spans_failed_export = self.health.spans_failed
        if self._cluster is not None:
            stats.frontend_urls = [
                f"http://{host}:{port}" for host, port in self._cluster.addresses("frontend")
            ]
        return stats


def run_demo(
    otlp_endpoint: str = "http://127.0.0.1:4318",
    duration_s: float | None = None,
    scenario: str | Scenario = "healthy",
    rate_per_s: float = 20.0,
    stop_event: threading.Event | None = None,
    *,
    baseline_s: float = DEFAULT_BASELINE_S,
    seed: int | None = None,
    ingest_token: str | None = None,
) -> DemoStats:
    """Run the demo shop sending traces to `otlp_endpoint` for `duration_s` seconds (None: until `stop_event`
    is set or Ctrl-C), switching the scenario's fault on after `baseline_s` seconds of healthy traffic.
    `ingest_token` is sent as `Authorization: Bearer` when spyglass runs with `--ingest-token`."""
    demo = Demo(otlp_endpoint, scenario, rate_per_s, baseline_s, seed, ingest_token)
    stop_event = stop_event or threading.Event()
    deadline = None if duration_s is None else time.monotonic() + duration_s
    demo.start()
    try:
        while not stop_event.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            stop_event.wait(0.5 if remaining is None else min(0.5, remaining))
    except KeyboardInterrupt:
        log.info("interrupted; stopping the demo")
    finally:
        stats = demo.stop()
    return stats
