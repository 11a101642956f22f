"""`spyglass demo`: a small shop of real HTTP services emitting real OpenTelemetry traces, with faults to explain.

Start with `spyglass.demo.runner.run_demo`; the faults live in `spyglass.demo.scenarios.SCENARIOS`.
"""

from pathlib import Path

#: The demo shop's SLOs, on its front end's checkout (``scripts/demo.sh`` starts spyglass with ``--slos`` on it).
SLOS_FILE = Path(__file__).with_name("slos.yaml")
