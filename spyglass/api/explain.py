"""``POST /api/v1/explain``: from a symptom (a root operation, two windows, latency or errors) to its causes."""

from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from spyglass.analysis.explain import ExplainRequest
from spyglass.analysis.explain_numbers import attach_exact_numbers
from spyglass.analysis.explain_source import explain
from spyglass.analysis.finding_context import example_events, example_logs
from spyglass.api.context import ApiContext
from spyglass.api.json_response import json_response
from spyglass.api.params import INT64_MAX, BadRequest
from spyglass.api.v1 import log_to_json

_TIMES = ("start_ns", "end_ns", "baseline_start_ns", "baseline_end_ns")


def parse_explain(body: Any) -> ExplainRequest:
    """Validate the request body; every problem is a ``BadRequest`` naming the field."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    values: dict[str, Any] = {}
    for name in ("service", "operation"):
        value = body.get(name)
        if not isinstance(value, str) or not value:
            raise BadRequest(f"{name} must be a non-empty string")
        values[name] = value
    for name in _TIMES:
        value = body.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT64_MAX:
            raise BadRequest(f"{name} must be a non-negative 64-bit integer (ns since the epoch)")
        values[name] = value
    if values["start_ns"] >= values["end_ns"]:
        raise BadRequest("start_ns must be before end_ns")
    if values["baseline_start_ns"] >= values["baseline_end_ns"]:
        raise BadRequest("baseline_start_ns must be before baseline_end_ns")
    signal = body.get("signal", "latency")
    if signal not in ("latency", "errors"):
        raise BadRequest("signal must be 'latency' or 'errors'")
    return ExplainRequest(signal=signal, **values)


CONTEXT_PER_FINDING = 5


def _attach_context(ctx: ApiContext, findings: list[dict[str, Any]]) -> None:
    """Each finding gets the log records and span events of its regression examples (the logs that matter)."""
    for finding in findings:
        trace_ids = [bytes.fromhex(t) for t in finding.get("examples", {}).get("regression", [])]
        finding["logs"] = [
            log_to_json(row) for row in example_logs(ctx.store, trace_ids, CONTEXT_PER_FINDING).to_pylist()
        ]
        finding["events"] = example_events(ctx.store, ctx.satellite, trace_ids, CONTEXT_PER_FINDING)


def routes(ctx: ApiContext) -> list[Route]:
    async def explain_route(request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"null")
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("the body must be valid JSON") from None
        req = parse_explain(body)
        findings = await run_in_threadpool(explain, ctx.store, ctx.satellite.buffer, ctx.ownership, req)
        await run_in_threadpool(_attach_context, ctx, findings)
        satellite = ctx.satellite
        symptom = await run_in_threadpool(
            attach_exact_numbers, ctx.store, satellite.aggregator, satellite.buffer, req, findings
        )
        return json_response({"findings": findings, "symptom": symptom})

    return [Route("/api/v1/explain", explain_route, methods=["POST"])]
