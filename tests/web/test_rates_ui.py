"""The services page shows a service's request rate over the time data covers: a server fed 20 requests/s for a
few seconds shows about 20/s at once, in Debian's chromium."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from tests.conftest import RunningServer
from tests.support.steady import feed_steady
from tests.web.conftest import screenshot

RATE_PER_S = 20.0


def test_services_page_shows_the_true_rate_right_away(
    page: Any, start_server: Callable[..., RunningServer]
) -> None:
    server = start_server()
    feed = feed_steady(server.otlp_http, RATE_PER_S, 4.0)
    server.wait_for(lambda status: status["spans_received"] >= feed.spans)

    asked_ns = time.time_ns()
    page.goto(server.api + "/")  # the default range: the last 15 minutes
    row = page.locator('#services tbody tr[data-service="shop"]')
    row.wait_for()
    shown = row.locator("td").nth(2).inner_text()
    answered_ns = time.time_ns()
    screenshot(page, "services-rate")
    match = re.fullmatch(r"([\d.]+)/s", shown.strip())
    assert match, shown
    # The rate divides by the time from the first span to the page's request: on a busy machine the page may
    # come a second after the feed stopped, and the rate of the data then includes that quiet second.
    fastest = feed.spans / ((asked_ns - feed.first_start_ns) / 1e9)
    slowest = feed.spans / ((answered_ns - feed.first_start_ns) / 1e9)
    assert 0.85 * min(slowest, RATE_PER_S) - 0.5 <= float(match.group(1)) <= 1.15 * fastest + 0.5, (
        shown,
        slowest,
        fastest,
    )
    assert "data covers" in page.locator("#view p.muted").first.inner_text()
