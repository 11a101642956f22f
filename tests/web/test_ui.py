"""The UI's guarantees that need no demo: values from spans are text, never markup; a 2,000-span trace renders
within a time budget; UI routes answer with the shell when opened directly."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from spyglass.web.routes import SHELL
from tests.conftest import RunningServer
from tests.web.conftest import otlp_span, otlp_trace, screenshot, send_otlp_json

HOSTILE_NAME = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
HOSTILE_SERVICE = "<b>evil-svc</b>"
RENDER_BUDGET_MS = 2_000


def _ids() -> tuple[str, str]:
    return secrets.token_hex(16), secrets.token_hex(8)


def test_span_values_render_as_text(page: Any, start_server: Callable[..., RunningServer]) -> None:
    server = start_server()
    trace_id, root_id = _ids()
    start = time.time_ns() - 5_000_000_000
    spans = [
        otlp_span(trace_id, root_id, None, HOSTILE_NAME, start, 40_000_000, {"note": "<i>x</i>"}, kind=2),
        otlp_span(trace_id, secrets.token_hex(8), root_id, "child <u>op</u>", start + 1_000_000, 10_000_000),
    ]
    send_otlp_json(server, otlp_trace(HOSTILE_SERVICE, spans, {"service.namespace": "<script>team</script>"}))
    server.wait_for(lambda s: s["spans_received"] == 2)
    server.flush()

    page.goto(server.api + f"/traces/{trace_id}")
    page.wait_for_selector("#waterfall .wf-row")
    assert page.get_by_text(HOSTILE_NAME, exact=True).first.is_visible()
    page.locator("#waterfall .wf-row").first.click()
    assert page.locator("#span-details").get_by_text("<i>x</i>", exact=True).is_visible()
    screenshot(page, "xss-trace")
    page.goto(server.api + "/")
    page.wait_for_selector("#services tbody tr")
    assert page.get_by_text(HOSTILE_SERVICE, exact=True).first.is_visible()
    assert page.get_by_text("<script>team</script>", exact=True).first.is_visible()
    page.goto(server.api + "/search")
    page.wait_for_selector("table.traces")
    assert page.locator("table.traces").get_by_text(HOSTILE_NAME).count() == 1
    assert page.evaluate("window.__xss") is None
    assert page.locator("#view script, #view img, #view b, #view i, #view u").count() == 0


def test_spans_whose_parents_form_a_cycle_are_shown(
    page: Any, start_server: Callable[..., RunningServer]
) -> None:
    """Every span of a trace whose parents form a cycle (A under B under A, no root) and of one that is its own
    parent has a row: each cycle hangs from its earliest span."""
    server = start_server()
    trace_id = secrets.token_hex(16)
    a, b, c, own = (secrets.token_hex(8) for _ in range(4))
    start = time.time_ns() - 5_000_000_000
    spans = [
        otlp_span(trace_id, a, b, "first of the cycle", start, 30_000_000),
        otlp_span(trace_id, b, a, "second of the cycle", start + 1_000_000, 20_000_000),
        otlp_span(trace_id, c, b, "under the cycle", start + 2_000_000, 5_000_000),
        otlp_span(trace_id, own, own, "its own parent", start + 3_000_000, 1_000_000),
    ]
    send_otlp_json(server, otlp_trace("loops", spans))
    server.wait_for(lambda s: s["spans_received"] == 4)
    server.flush()
    page.goto(server.api + f"/traces/{trace_id}")
    page.wait_for_selector("[data-rendered=true] #waterfall .wf-row")
    labels = page.locator("#waterfall .wf-row .wf-label").all_inner_texts()
    assert len(labels) == 4, labels
    for name in ("first of the cycle", "second of the cycle", "under the cycle", "its own parent"):
        assert any(name in label for label in labels), (name, labels)


def _big_trace(n_spans: int) -> tuple[str, list[dict[str, Any]]]:
    """A root with 40 children, each with its own chain of grandchildren: n_spans in all, several services."""
    trace_id, root_id = _ids()
    start = time.time_ns() - 10_000_000_000
    spans = [otlp_span(trace_id, root_id, None, "GET /report", start, 900_000_000, kind=2)]
    parents = [root_id]
    i = 1
    while len(spans) < n_spans:
        parent = parents[(i - 1) % len(parents)] if i > 40 else root_id
        span_id = secrets.token_hex(8)
        offset = (i * 7_919) % 800_000_000
        spans.append(
            otlp_span(
                trace_id,
                span_id,
                parent,
                f"query {i}",
                start + offset,
                50_000_000 - offset // 20,
                {"db.statement": f"SELECT {i}"},
                kind=3,
                error=i % 97 == 0,
            )
        )
        if i <= 40:
            parents.append(span_id)
        i += 1
    return trace_id, spans


def test_two_thousand_span_trace_renders_fast(page: Any, start_server: Callable[..., RunningServer]) -> None:
    server = start_server()
    trace_id, spans = _big_trace(2_000)
    send_otlp_json(server, otlp_trace("report", spans))
    server.wait_for(lambda s: s["spans_received"] == 2_000)
    server.flush()

    page.goto(server.api + "/")  # load the bundle once, so the budget measures the view, not the download
    started = time.perf_counter()
    page.goto(server.api + f"/traces/{trace_id}")
    page.wait_for_selector("[data-rendered=true] #waterfall .wf-row")
    elapsed_ms = (time.perf_counter() - started) * 1000
    view_ms = int(page.evaluate("document.body.dataset.traceRenderMs"))
    assert view_ms < RENDER_BUDGET_MS, f"the waterfall took {view_ms} ms in the page"
    assert elapsed_ms < RENDER_BUDGET_MS * 2, f"navigation to a drawn waterfall took {elapsed_ms:.0f} ms"
    assert "2000 spans" in page.locator(".trace-summary").inner_text()
    # Only the rows in view exist; scrolling to the end brings the last ones in.
    assert page.locator("#waterfall .wf-row").count() < 200
    page.eval_on_selector("#waterfall", "el => { el.scrollTop = el.scrollHeight; }")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#waterfall .wf-row')].some(r => r.style.top === `${1999 * 24}px`)"
    )
    screenshot(page, "trace-2000-spans", full_page=False)
    page.eval_on_selector("#waterfall", "el => { el.scrollTop = 0; }")
    page.locator("#waterfall .wf-row").first.locator("button.toggle").click()
    assert page.locator("#waterfall .wf-row").count() == 1


def test_ui_routes_serve_the_shell(start_server: Callable[..., RunningServer]) -> None:
    server = start_server()
    for path in (
        "/",
        "/traces/0123456789abcdef0123456789abcdef",
        "/services/frontend",
        "/search",
        "/map",
        "/slos",
    ):
        response = server.get(path)
        assert response.status_code == 200 and "<title>spyglass</title>" in response.text, path
    assert server.get("/no-such-view").status_code == 404
    bundle = SHELL.parent / "app.js"
    assert server.get("/static/dist/app.js").status_code == 200
    script = bundle.read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
        assert sink not in script, sink
