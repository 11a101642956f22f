"""``POST /api/v1/explain``: from a symptom (a root operation, two windows, latency or errors) to its causes."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from spyglass.analysis.explain import ExplainRequest as Explain
from spyglass.analysis.explain_numbers import attach_exact_numbers
from spyglass.analysis.explain_source import explain
from spyglass.analysis.finding_context import attach_context
from spyglass.api.context import ApiContext
from spyglass.api.json_response import json_response
from spyglass.api.models import ErrorAnswer, ExplainRequest, ExplainResponse

CONTEXT_PER_FINDING = 5


def router(ctx: ApiContext) -> APIRouter:
    """Explain: from a symptom to its ranked causes, each with its numbers, examples, logs and events."""
    api = APIRouter(tags=["spyglass"], responses={400: {"model": ErrorAnswer}})

    @api.post(
        "/api/v1/explain", response_model=ExplainResponse, summary="Why a root operation got slow or failing"
    )
    def explain_route(body: ExplainRequest) -> Response:
        req = Explain(**body.model_dump())
        findings = explain(ctx.store, ctx.live, ctx.ownership, req)
        attach_context(ctx.store, ctx.live, findings, CONTEXT_PER_FINDING)
        symptom = attach_exact_numbers(ctx.store, ctx.rollups, ctx.live, req, findings)
        return json_response({"findings": findings, "symptom": symptom})

    return api
