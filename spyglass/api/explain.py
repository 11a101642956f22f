"""``POST /api/v1/explain``: from a symptom (a root operation, two windows, latency or errors) to its causes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from spyglass.analysis.explain import ExplainRequest as Explain
from spyglass.analysis.explain_numbers import attach_exact_numbers
from spyglass.analysis.explain_source import explain
from spyglass.analysis.finding_context import example_events, example_logs
from spyglass.api.context import ApiContext
from spyglass.api.json_response import json_response
from spyglass.api.models import ErrorAnswer, ExplainRequest, ExplainResponse
from spyglass.api.v1 import log_to_json

CONTEXT_PER_FINDING = 5


def _attach_context(ctx: ApiContext, findings: list[dict[str, Any]]) -> None:
    """Each finding gets the log records and span events of its regression examples (the logs that matter)."""
    for finding in findings:
        trace_ids = [bytes.fromhex(t) for t in finding.get("examples", {}).get("regression", [])]
        finding["logs"] = [
            log_to_json(row) for row in example_logs(ctx.store, trace_ids, CONTEXT_PER_FINDING).to_pylist()
        ]
        finding["events"] = example_events(ctx.store, ctx.live, trace_ids, CONTEXT_PER_FINDING)


def router(ctx: ApiContext) -> APIRouter:
    """Explain: from a symptom to its ranked causes, each with its numbers, examples, logs and events."""
    api = APIRouter(tags=["spyglass"], responses={400: {"model": ErrorAnswer}})

    @api.post(
        "/api/v1/explain", response_model=ExplainResponse, summary="Why a root operation got slow or failing"
    )
    def explain_route(body: ExplainRequest) -> Response:
        req = Explain(**body.model_dump())
        findings = explain(ctx.store, ctx.live, ctx.ownership, req)
        _attach_context(ctx, findings)
        symptom = attach_exact_numbers(ctx.store, ctx.rollups, ctx.live, req, findings)
        return json_response({"findings": findings, "symptom": symptom})

    return api
