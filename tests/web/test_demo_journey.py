"""A person's way through the UI against a server fed by the demo's slow-version scenario: services, one
service's operation with the deployment marked, a breakdown by version, trace search, the slowest trace's
waterfall, explain on the spike dragged on the latency chart, compare, the service map and the critical path.

One test, in steps, so that the demo runs once; marked ``alone`` because explain judges latencies, which a
machine busy with other tests blurs (scripts/test.sh runs these after the parallel tests).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest

from tests.web.conftest import FedServer, screenshot

pytestmark = [pytest.mark.alone, pytest.mark.timeout(240)]

SYMPTOM_SERVICE = "frontend"
SYMPTOM_OPERATION = "GET /product/{id}"


def chart_point(page: Any, chart: str, x_s: float, y: float | None = None) -> tuple[float, float]:
    """Page coordinates of a value on a uPlot chart (the UI keeps its charts in ``window.__spyglass``), once
    the layout has settled (charts follow their container's width a frame after it changes)."""
    page.wait_for_load_state("networkidle")
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    left, top = page.evaluate(
        """([name, x, y]) => {
            const chart = window.__spyglass.charts.get(name);
            const rect = chart.over.getBoundingClientRect();
            const top = y === null ? rect.height / 2 : chart.valToPos(y, "y");
            return [rect.left + chart.valToPos(x, "x"), rect.top + top];
        }""",
        [chart, x_s, y],
    )
    return left, top


def test_journey_through_every_view(page: Any, fed_server: FedServer) -> None:
    api = fed_server.server.api
    demo = fed_server.demo
    assert demo.fault_started_ns is not None and demo.ended_ns is not None

    # Services: every demo service with its owner, and charts.
    page.goto(api + "/")
    page.wait_for_selector("#services tbody tr")
    for service in ("frontend", "inventory", "checkout", "payments"):
        assert page.locator(f'#services tr[data-service="{service}"]').count() == 1
    assert page.locator('#services tr[data-service="inventory"]').get_by_text("supply-team").is_visible()
    assert page.locator(".card .uplot").count() >= 8
    screenshot(page, "services")

    # Into frontend, then its product page operation: RED charts, heatmap, inventory's deployment marked.
    page.locator('#services a.service-name:text-is("frontend")').click()
    page.wait_for_url(re.compile(r"/services/frontend"))
    page.locator("table.operations a", has_text=SYMPTOM_OPERATION).first.click()
    page.wait_for_selector("#latency-chart .uplot")
    page.wait_for_selector("#heatmap .uplot")
    assert SYMPTOM_OPERATION in page.locator("#operation-title").inner_text()
    versions = page.locator(".versions").inner_text()
    assert "inventory 2.4.0" in versions and "deployed" in versions
    screenshot(page, "service-operation")

    # The checkout endpoint and frontend's call of the same name are two rows, each opening its own kind.
    page.goto(api + "/services/frontend")
    page.wait_for_selector("table.operations tbody tr")
    checkout = page.locator("table.operations tbody tr", has=page.locator("a", has_text="POST /checkout"))
    assert sorted(checkout.locator("td:nth-child(2)").all_inner_texts()) == ["client", "server"]
    checkout.filter(has=page.locator("td:nth-child(2)", has_text="client")).locator("a").first.click()
    page.wait_for_url(re.compile(r"kind=client"))
    page.wait_for_function("document.querySelector('#operation-title')?.innerText.startsWith('client')")

    # Break the stock query down by version: both versions, the new one slower.
    page.goto(api + "/services/inventory?operation=" + quote("SELECT stock"))
    page.wait_for_selector("#latency-chart .uplot")
    page.fill("#group-by", "service.version")
    page.click("form.inline button")
    page.wait_for_selector("table.breakdown tbody tr")
    rows = page.locator("table.breakdown tbody tr").all_inner_texts()
    assert any(r.startswith("2.4.0") for r in rows) and any(r.startswith("2.3.1") for r in rows), rows
    page.wait_for_selector("#breakdown-chart .uplot")
    screenshot(page, "service-breakdown")

    # Trace search for the symptom: the scatter; click the slowest dot to open its waterfall.
    page.goto(api + "/search?service=frontend&operation=" + quote(SYMPTOM_OPERATION) + "&limit=500")
    page.wait_for_selector("#scatter .uplot")
    # The dot to click is the highest one the page drew, and the trace it must open is the one the page
    # names as the slowest: both from the page's own answer (a second fetch could see traces decided since).
    slowest_href = page.locator("p", has_text="Slowest:").locator("a").get_attribute("href")
    assert slowest_href and slowest_href.startswith("/traces/")
    slowest_x, slowest_ms = page.evaluate(
        """() => {
            const [xs, ok, bad] = window.__spyglass.charts.get("scatter").data;
            let best = 0;
            const y = (i) => ok[i] ?? bad[i];
            for (let i = 1; i < xs.length; i++) if (y(i) > y(best)) best = i;
            return [xs[best], y(best)];
        }"""
    )
    screenshot(page, "search", full_page=False)
    x, y = chart_point(page, "scatter", slowest_x, slowest_ms)
    page.mouse.click(x, y)
    page.wait_for_url(re.compile(re.escape(slowest_href) + "$"))
    page.wait_for_selector("#waterfall .wf-row")
    labels = page.locator("#waterfall .wf-label").all_inner_texts()
    assert any("frontend" in text and SYMPTOM_OPERATION in text for text in labels)
    assert any("inventory" in text for text in labels)
    page.wait_for_selector("#critical-note:has-text('of')")
    assert page.locator('#waterfall .wf-row[data-critical="true"]').count() >= 2
    page.locator("#waterfall .wf-row", has_text="inventory").last.click()
    details = page.locator("#span-details").inner_text()
    assert "inventory" in details and "service.version" in details and "Resource" in details.title()
    screenshot(page, "trace")
    before = page.locator("#waterfall .wf-row").count()
    page.locator("#waterfall .wf-row").first.locator("button.toggle").click()
    assert page.locator("#waterfall .wf-row").count() == 1 < before
    page.locator("#waterfall .wf-row").first.locator("button.toggle").click()
    assert page.locator("#waterfall .wf-row").count() == before

    # Explain: drag across the fault window on the operation's latency chart.
    page.goto(api + "/services/frontend?operation=" + quote(SYMPTOM_OPERATION))
    page.wait_for_selector("#latency-chart .uplot")
    x0, y0 = chart_point(page, "latency", demo.fault_started_ns / 1e9)
    x1, _ = chart_point(page, "latency", demo.ended_ns / 1e9)
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, y0, steps=5)
    page.mouse.move(x1, y0, steps=5)
    page.mouse.up()
    page.wait_for_url(re.compile(r"/explain\?"))
    page.wait_for_selector("#findings li.finding, #view .empty, #view .error-box", timeout=60_000)
    # The UI must show the injected cause; how high explain ranks it is tests/e2e/test_explain_scenarios.py's
    # business (with windows this short, on a busy machine, a bystander sometimes ranks above it).
    findings = page.locator("#findings li.finding").all_inner_texts()
    view = page.locator("#view").inner_text()
    ranks = [i + 1 for i, text in enumerate(findings) if "service.version=2.4.0" in text]
    assert ranks, view[view.find("Regression") :][:3000]
    print(f"explain in the UI: service.version=2.4.0 ranked {ranks[0]} of {len(findings)}")
    cause = page.locator("#findings li.finding", has_text="service.version=2.4.0").first
    assert "supply-team" in cause.inner_text()
    assert cause.locator(".examples a").count() >= 2
    screenshot(page, "explain")

    # Compare the cause's example traces: regression against baseline.
    cause.get_by_text("compare them").click()
    page.wait_for_url(re.compile(r"/compare\?"))
    page.wait_for_selector("table.compare-ops tbody tr")
    assert "inventory" in page.locator("table.compare-ops").inner_text()
    screenshot(page, "compare")

    # The service map: instrumented services and the databases they call, laid out as SVG.
    page.goto(api + "/map")
    page.wait_for_selector("#service-map g.node")
    for name in ("frontend", "inventory", "postgres"):
        assert page.locator(f'#service-map g.node[data-service="{name}"]').count() == 1
    assert page.locator('#service-map g.edge[data-parent="frontend"][data-child="inventory"]').count() == 1
    assert "calls" in (page.locator("#service-map").text_content() or "")
    screenshot(page, "service-map")

    # The critical path of the symptom's requests: the stock query carries a large share.
    page.goto(api + "/critical-path?service=frontend&operation=" + quote(SYMPTOM_OPERATION))
    page.wait_for_selector("table.critical-path tbody tr")
    assert "SELECT stock" in page.locator("table.critical-path").inner_text()
    assert "×" in page.locator("table.critical-path").inner_text()
    screenshot(page, "critical-path")
