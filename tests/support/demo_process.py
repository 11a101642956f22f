"""The demo shop in its own process, as the services spyglass watches always are.

Run inside the test process, the shop's threads share one interpreter lock with the server under test: whenever the
server decodes, decides or writes, every demo request waits, so the latencies explain compares drift with the
server's own work (a healthy baseline measured 11 ms at the median on a fresh server and 34 ms on one that had seen
two scenarios). In its own process the shop only competes for CPU, as a real service on the same machine would.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

from spyglass.demo.runner import DemoStats

ROOT = Path(__file__).resolve().parents[2]

_CHILD = """
import dataclasses, json, sys
from spyglass.cli import hand_the_gil_over_sooner
from spyglass.demo.runner import run_demo
hand_the_gil_over_sooner()  # as `spyglass demo` does
endpoint, scenario, duration, rate, baseline, seed = sys.argv[1:]
stats = run_demo(endpoint, duration_s=float(duration), scenario=scenario, rate_per_s=float(rate),
                 baseline_s=float(baseline), seed=int(seed))
print("STATS " + json.dumps(dataclasses.asdict(stats)), flush=True)
"""


def run_demo_process(
    otlp_endpoint: str,
    *,
    duration_s: float,
    scenario: str,
    rate_per_s: float,
    baseline_s: float,
    seed: int,
) -> DemoStats:
    """Run the demo for ``duration_s`` in a child process and return what it did (as ``run_demo`` does)."""
    args = [otlp_endpoint, scenario, str(duration_s), str(rate_per_s), str(baseline_s), str(seed)]
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=duration_s + 120,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("STATS ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"demo process failed ({done.returncode}): {done.stderr[-2000:]}")
    fields = json.loads(lines[-1].removeprefix("STATS "))
    # JSON keys are strings; the status counts are keyed by int.
    fields["responses_by_status"] = {int(k): v for k, v in fields["responses_by_status"].items()}
    known = {f.name for f in dataclasses.fields(DemoStats)}
    return DemoStats(**{k: v for k, v in fields.items() if k in known})
