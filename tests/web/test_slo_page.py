"""The SLO page against a real server watching the demo's own SLOs (``spyglass/demo/slos.yaml``) while the demo
shop, in its own process, runs its zone-errors fault: each SLO's SLI chart, budget and burn rates, the alert
the burn opened, and the alert opening explain on its burning window with the findings it carries. Without SLOs
the page says how to define one."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from spyglass.demo import SLOS_FILE
from tests.conftest import RunningServer
from tests.support.demo_process import run_demo_process
from tests.web.conftest import screenshot

pytestmark = pytest.mark.timeout(120)

SCENARIO = "zone-errors"
BURNING_SLO = "checkout-succeeds"
RATE = 40.0
# The baseline is long enough that the burn reaches the slow pair's 6x some seconds into the fault, so that
# explain compares windows holding enough requests (as in tests/e2e/test_slo_alerts.py).
BASELINE_S = 20.0
FAULT_S = 20.0


@pytest.fixture(scope="module")
def burning(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, dict[str, Any]]]:
    """A server that watched the demo's SLOs through a healthy baseline and the fault, and its open alert."""
    from spyglass.server import SpyglassServer, loopback_config

    directory = tmp_path_factory.mktemp("slo-page")
    config = loopback_config(directory, decision_wait_s=0.3, slos_file=SLOS_FILE, slo_interval_s=1.0)
    instance = SpyglassServer(config)
    server = RunningServer(instance, instance.start_in_thread(), directory)
    try:
        run_demo_process(
            server.otlp_http,
            duration_s=BASELINE_S + FAULT_S,
            scenario=SCENARIO,
            rate_per_s=RATE,
            baseline_s=BASELINE_S,
            seed=7,
        )
        server.flush()
        deadline = time.monotonic() + 15
        while True:
            alerts = server.get("/api/v1/alerts").json()["alerts"]
            alerts = [a for a in alerts if a["state"] == "firing" and a["slo"]["id"] == BURNING_SLO]
            if alerts or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert alerts, server.get("/api/v1/slos").json()
        yield server, alerts[0]
    finally:
        instance.stop_thread()


def test_slo_page_shows_the_burn_and_its_alert_opens_explain(
    page: Any, burning: tuple[RunningServer, dict[str, Any]]
) -> None:
    server, alert = burning
    assert alert["findings"], alert["summary"]
    page.goto(server.api + "/slos")
    page.wait_for_selector("#slos section.card.slo .uplot")
    assert page.locator("#slos section.card.slo").count() == 2
    card = page.locator(f'#slos section.card.slo[data-slo="{BURNING_SLO}"]')
    card.locator(".uplot").wait_for()
    assert "burning" in (card.get_attribute("class") or "")
    # The chart is drawn from the series: SLI points, the objective, the burn.
    drawn = page.evaluate(
        """(name) => {
            const chart = window.__spyglass.charts.get(name);
            return chart ? [chart.data[0].length, chart.data[1].filter((v) => v !== null).length] : null;
        }""",
        f"slo:{BURNING_SLO}",
    )
    assert drawn is not None and drawn[0] >= 3 and drawn[1] >= 3, drawn
    budget = card.locator(".slo-budget").inner_text()
    assert re.search(r"Error budget left: -?\d+(\.\d)?%", budget), budget
    burn = card.locator("table.slo-burn").inner_text()
    assert "fast" in burn and "slow" in burn and "×" in burn and "firing" in burn, burn
    # The navigation counts the firing alerts (on a machine this busy the latency SLO may burn too); the alert
    # lists its findings.
    assert int(page.locator("#alerts-firing").inner_text(timeout=15_000)) >= 1
    item = page.locator(f'#alerts li.alert[data-alert="{alert["id"]}"]')
    assert item.get_attribute("data-state") == "firing"
    assert alert["findings"][0]["summary"] in item.locator(".alert-findings").inner_text()
    screenshot(page, "slos")

    # The alert opens explain on its burning window against its baseline: the same top finding.
    item.locator("a.alert-explain").click()
    page.wait_for_url(re.compile(r"/explain\?"))
    page.wait_for_selector("#findings li.finding")
    assert page.locator("#explain-service").input_value() == "frontend"
    assert page.locator("#explain-operation").input_value() == "POST /checkout"
    assert page.locator("#explain-signal").input_value() == "errors"
    top = alert["findings"][0]
    first = page.locator('#findings li.finding[data-rank="1"]')
    assert first.get_attribute("data-kind") == top["kind"]
    subject = first.locator(".subject").inner_text()
    named = f"{top['key']}={top['value']}" if top["kind"] == "attribute" else top["operation"]
    assert named in subject and top["service"] in subject, (subject, top)
    screenshot(page, "slo-alert-explain")


def test_slo_page_without_slos_says_how_to_define_one(
    page: Any, start_server: Callable[..., RunningServer]
) -> None:
    server = start_server()
    page.goto(server.api + "/slos")
    page.wait_for_selector("#no-slos")
    text = page.locator("#no-slos").inner_text()
    assert "--slos" in text and "POST /api/v1/slos" in text and "latency_ms" in text
    assert page.locator("#alerts li").count() == 0
    assert page.locator('header nav a[href="/slos"]').inner_text() == "SLOs"
    screenshot(page, "slos-none")
