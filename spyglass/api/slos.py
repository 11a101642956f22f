"""``/api/v1/slos`` and ``/api/v1/alerts``: define, list, read and delete SLOs (each with its SLI, budget and burn
rates from 100% of spans), and read the alerts their burns opened."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Path
from starlette.responses import Response

from spyglass.alerting.slo_catalog import SloConflict
from spyglass.alerting.watch import SloWatch
from spyglass.analysis.slo import InvalidSlo, Slo, slo_from_fields
from spyglass.analysis.slo_series import series_step_s, slo_series
from spyglass.api.context import ApiContext
from spyglass.api.json_response import json_response
from spyglass.api.models import (
    AlertsAnswer,
    ErrorAnswer,
    SloAnswer,
    SloDeleted,
    SloRequest,
    SlosAnswer,
    SloSeriesAnswer,
)
from spyglass.api.params import BadRequest, EndNs, StartNs, StepS, window

SloId = Annotated[str, Path(description="The SLO's id")]
#: A series longer than this is refused (400), as ``/api/v1/metrics`` refuses one.
MAX_SERIES_POINTS = 5_000


def _with_numbers(watch: SloWatch, slo: Slo, now_ns: int) -> dict[str, Any]:
    return {**slo.definition(), **watch.meter.measure(slo, now_ns).status.as_json()}


def _not_found(slo_id: str) -> Response:
    return json_response({"error": f"no SLO with id {slo_id!r}"}, status=404)


def router(ctx: ApiContext) -> APIRouter:
    """SLOs (created through the API are kept in the data directory; the ``--slos`` file's are read-only) and
    the alerts of their burns."""
    api = APIRouter(tags=["spyglass"], responses={400: {"model": ErrorAnswer}})
    watch = ctx.slos
    missing: dict[int | str, dict[str, Any]] = {
        404: {"model": ErrorAnswer, "description": "No SLO with this id"}
    }

    @api.get(
        "/api/v1/slos", response_model=SlosAnswer, summary="Every SLO with its SLI, budget and burn rates"
    )
    def list_slos() -> Response:
        if watch is None:
            return json_response({"slos": []})
        slos = watch.catalog.all()
        measures = watch.meter.measure_all(slos, time.time_ns())
        return json_response(
            {"slos": [{**slo.definition(), **measures[slo.id].status.as_json()} for slo in slos]}
        )

    @api.post(
        "/api/v1/slos",
        response_model=SloAnswer,
        status_code=201,
        responses={409: {"model": ErrorAnswer, "description": "The id is taken"}},
        summary="Watch a new SLO (kept across restarts)",
    )
    def create_slo(body: SloRequest) -> Response:
        if watch is None:
            raise BadRequest("this server watches no SLOs")
        try:
            slo = slo_from_fields(body.model_dump(exclude_none=True))
        except InvalidSlo as error:
            raise BadRequest(str(error)) from None
        try:
            watch.catalog.add(slo)
        except SloConflict as error:
            return json_response({"error": str(error)}, status=409)
        return json_response(_with_numbers(watch, slo, time.time_ns()), status=201)

    @api.get("/api/v1/slos/{slo_id}", response_model=SloAnswer, responses=missing, summary="One SLO")
    def get_slo(slo_id: SloId) -> Response:
        slo = watch.catalog.get(slo_id) if watch is not None else None
        if watch is None or slo is None:
            return _not_found(slo_id)
        return json_response(_with_numbers(watch, slo, time.time_ns()))

    @api.get(
        "/api/v1/slos/{slo_id}/series",
        response_model=SloSeriesAnswer,
        responses=missing,
        summary="One SLO's SLI and burn rate step by step",
    )
    def get_series(
        slo_id: SloId, start_ns: StartNs = None, end_ns: EndNs = None, step_s: StepS = None
    ) -> Response:
        slo = watch.catalog.get(slo_id) if watch is not None else None
        if slo is None:
            return _not_found(slo_id)
        start, end = window(start_ns, end_ns)
        step = series_step_s(start, end, ctx.rollups.bucket_s, step_s)
        if (end - start) // (step * 1_000_000_000) > MAX_SERIES_POINTS:
            raise BadRequest(f"step_s={step} makes more than {MAX_SERIES_POINTS} points in the window")
        return json_response(slo_series(ctx.rollups, slo, start, end, step).as_json())

    @api.delete(
        "/api/v1/slos/{slo_id}",
        response_model=SloDeleted,
        responses={
            **missing,
            409: {"model": ErrorAnswer, "description": "Defined in the --slos file: remove it there"},
        },
        summary="Stop watching an SLO defined through the API",
    )
    def delete_slo(slo_id: SloId) -> Response:
        if watch is None:
            return _not_found(slo_id)
        try:
            slo = watch.catalog.remove(slo_id)
        except SloConflict as error:
            return json_response({"error": str(error)}, status=409)
        if slo is None:
            return _not_found(slo_id)
        watch.meter.forget(slo_id)
        return json_response({"deleted": slo_id})

    @api.get(
        "/api/v1/alerts", response_model=AlertsAnswer, summary="Open and recent alerts of SLOs, newest first"
    )
    def alerts() -> Response:
        if watch is None:
            return json_response({"alerts": [], "webhook": None})
        webhook = watch.webhook.status() if watch.webhook is not None else None
        return json_response({"alerts": watch.alerts.recent(), "webhook": webhook})

    return api
