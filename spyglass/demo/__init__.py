"""`spyglass demo`: a small shop of real HTTP services emitting real OpenTelemetry traces, with faults to explain.

Start with `spyglass.demo.runner.run_demo`; the faults live in `spyglass.demo.scenarios.SCENARIOS`.
"""
