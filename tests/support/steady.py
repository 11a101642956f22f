"""A steady, known request rate sent to a real server over OTLP/HTTP (JSON), as an instrumented service would."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import httpx

#: Spans are sent in small batches this often, so the traffic is steady at the scale a rate is read at.
SEND_INTERVAL_S = 0.1


@dataclass(frozen=True)
class SteadyFeed:
    spans: int
    first_start_ns: int
    last_start_ns: int


def feed_steady(
    otlp_http: str, rate_per_s: float, seconds: float, service: str = "shop", operation: str = "GET /checkout"
) -> SteadyFeed:
    """Send ``rate_per_s`` single-span SERVER traces per second for ``seconds``, each starting when it is sent."""
    sent = 0
    first_ns = last_ns = 0
    began = time.monotonic()
    with httpx.Client(timeout=10) as client:
        while (elapsed := time.monotonic() - began) < seconds:
            due = (
                int(elapsed * rate_per_s) + 1 - sent
            )  # the spans owed by now: no drift, whatever the latency
            if due > 0:
                now_ns = time.time_ns()
                spans = [_span(now_ns + i * 1000, operation) for i in range(due)]
                response = client.post(f"{otlp_http}/v1/traces", json=_request(service, spans))
                response.raise_for_status()
                first_ns = first_ns or now_ns
                last_ns = now_ns
                sent += due
            time.sleep(SEND_INTERVAL_S)
    return SteadyFeed(sent, first_ns, last_ns)


def _span(start_ns: int, operation: str) -> dict[str, object]:
    return {
        "traceId": os.urandom(16).hex(),
        "spanId": os.urandom(8).hex(),
        "name": operation,
        "kind": 2,  # SERVER: an entry span, what the services page counts
        "startTimeUnixNano": str(start_ns),
        "endTimeUnixNano": str(start_ns + 5_000_000),
    }


def _request(service: str, spans: list[dict[str, object]]) -> dict[str, object]:
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": spans}]}]}
