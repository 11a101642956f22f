"""Browser fixtures: Debian's chromium driven by Playwright (never a downloaded browser), and a spyglass server
fed by the real demo shop, shared by the tests of a module."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from spyglass.demo.runner import DemoStats
from spyglass.web.routes import SHELL
from tests.conftest import RunningServer
from tests.support.demo_process import run_demo_process

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
VIEWPORT = {"width": 1400, "height": 1000}

# Short windows, as in tests/e2e/test_explain_scenarios.py: enough traces on each side for explain. The
# baseline runs longer than the fault: explain compares the fault with the equally long window just before it,
# which then leaves out the demo's first seconds (cold connection pools, noisy latencies).
BASELINE_S = 24.0
FAULT_S = 16.0
RATE = 40.0


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: run scripts/setup.sh"
    assert SHELL.is_file(), "the web UI is not built: run scripts/setup.sh (npm ci && npm run build in ui/)"
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page; JavaScript errors fail the test (a view that throws is a broken view)."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, errors


def screenshot(page: Any, name: str, full_page: bool = True) -> Path:
    """Write ``artifacts/screenshots/NAME.png`` (one per view, for people to look at)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


@dataclass
class FedServer:
    server: RunningServer
    demo: DemoStats


@pytest.fixture(scope="module")
def fed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FedServer]:
    """A real server that has seen the slow-version scenario: a healthy baseline, then inventory 2.4.0 rolled out
    to two of its instances with a 5x slower stock query."""
    from spyglass.server import SpyglassServer, loopback_config

    directory = tmp_path_factory.mktemp("web-data")
    instance = SpyglassServer(loopback_config(directory, decision_wait_s=0.3))
    ports = instance.start_in_thread()
    server = RunningServer(instance, ports, directory)
    try:
        stats = run_demo_process(
            server.otlp_http,
            duration_s=BASELINE_S + FAULT_S,
            scenario="slow-version",
            rate_per_s=RATE,
            baseline_s=BASELINE_S,
            seed=7,
        )
        server.flush()
        assert stats.fault_started_ns is not None and stats.ended_ns is not None
        yield FedServer(server, stats)
    finally:
        instance.stop_thread()


def send_otlp_json(server: RunningServer, body: dict[str, Any]) -> None:
    response = httpx.post(server.otlp_http + "/v1/traces", json=body, timeout=30)
    assert response.status_code == 200, response.text


def otlp_trace(
    service: str, spans: list[dict[str, Any]], resource: dict[str, str] | None = None
) -> dict[str, Any]:
    """An OTLP JSON request of one resource; ``spans`` are OTLP JSON span objects."""
    attrs = [{"key": "service.name", "value": {"stringValue": service}}]
    attrs += [{"key": k, "value": {"stringValue": v}} for k, v in (resource or {}).items()]
    return {"resourceSpans": [{"resource": {"attributes": attrs}, "scopeSpans": [{"spans": spans}]}]}


def otlp_span(
    trace_id: str,
    span_id: str,
    parent: str | None,
    name: str,
    start_ns: int,
    duration_ns: int,
    attributes: dict[str, str] | None = None,
    kind: int = 1,
    error: bool = False,
) -> dict[str, Any]:
    span: dict[str, Any] = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": name,
        "kind": kind,
        "startTimeUnixNano": str(start_ns),
        "endTimeUnixNano": str(start_ns + duration_ns),
        "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in (attributes or {}).items()],
    }
    if parent:
        span["parentSpanId"] = parent
    if error:
        span["status"] = {"code": 2, "message": "failed"}
    return span
