"""The `spyglass demo` command sends real traces to a running spyglass."""

from __future__ import annotations

import gc
import sys
import threading
import time

import pytest

from spyglass.cli import GIL_SWITCH_INTERVAL_S, freeze_startup_objects, hand_the_gil_over_sooner, main
from tests.conftest import RunningServer


def test_demo_command_feeds_a_server(spyglass: RunningServer) -> None:
    # 60 requests: checkout is 15% of the demo's traffic, so one run in 17,000 sends none (20 missed 1 in 26).
    assert main(["demo", "--otlp-endpoint", spyglass.otlp_http, "--duration", "2", "--rate", "30"]) == 0
    status = spyglass.wait_for(lambda s: s["spans_received"] > 50)
    assert status["spans_rejected"] == 0
    wanted = {"frontend", "checkout", "cart", "inventory"}
    # The last exports may still be on their way in when the first 50 spans are: look until every service shows.
    deadline = time.monotonic() + 15
    services: set[str] = set()
    while not wanted <= services and time.monotonic() < deadline:
        spyglass.flush()
        services = {s["name"] for s in spyglass.get("/api/v1/services").json()["services"]}
    assert wanted <= services


def test_a_serving_process_leaves_its_startup_objects_out_of_later_collections() -> None:
    made_at_startup = [[index] for index in range(10_000)]
    before = gc.get_freeze_count()
    freeze_startup_objects()
    try:
        assert gc.get_freeze_count() >= before + len(made_at_startup)
    finally:
        gc.unfreeze()


@pytest.mark.alone
def test_a_serving_process_hands_the_gil_over_within_its_switch_interval() -> None:
    """A thread back from a blocking call (a DuckDB statement, a socket write) has the GIL again within about
    the switch interval while another thread runs Python without a pause: with CPython's 5 ms it waited 5 ms."""
    default = sys.getswitchinterval()
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            sum(range(100))

    hand_the_gil_over_sooner()
    spinner = threading.Thread(target=busy)
    spinner.start()
    try:
        assert sys.getswitchinterval() == GIL_SWITCH_INTERVAL_S
        waits = []
        for _ in range(50):
            started = time.perf_counter()
            time.sleep(0.0001)  # gives the GIL up, as a blocking call does
            waits.append(time.perf_counter() - started)
        assert sorted(waits)[len(waits) // 2] < 0.0035
    finally:
        stop.set()
        spinner.join()
        sys.setswitchinterval(default)
