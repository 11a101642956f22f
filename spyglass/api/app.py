"""The query-side application on ``--port``: JSON API, Jaeger-compatible API, OpenAPI, and the web UI.

FastAPI builds ``/openapi.json`` from the routes' declared parameters and the response models in
``spyglass.api.models``; handlers still answer with orjson-rendered bodies (``json_response``), so a big trace
costs no model validation on its way out, and ``tests/api/test_openapi.py`` checks real answers against the
document instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from spyglass import __version__
from spyglass.api import (
    compare,
    critical_path,
    explain,
    jaeger,
    metrics,
    peer,
    prometheus,
    slos,
    ui_support,
    v1,
)
from spyglass.api.context import ApiContext
from spyglass.api.params import BadRequest
from spyglass.api.refusals import bad_request, http_error, invalid_parameters, refusal
from spyglass.security import bearer_ok
from spyglass.web.routes import web_routes

_PROTECTED_PREFIXES = ("/api/", "/metrics")
OPENAPI_PATH = "/openapi.json"


class QueryTokenMiddleware(BaseHTTPMiddleware):
    """``--query-token``: API requests must carry ``Authorization: Bearer TOKEN``."""

    def __init__(self, app: object, token: str | None) -> None:
        super().__init__(app)  # type: ignore[arg-type]
        self.token = token

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if self.token and request.url.path.startswith(_PROTECTED_PREFIXES):
            if not bearer_ok(request.headers.get("authorization"), self.token):
                headers = {"WWW-Authenticate": "Bearer"}
                return refusal(request, 401, "missing or wrong bearer token", headers)
        return await call_next(request)


def create_api_app(ctx: ApiContext, extra_routes: Sequence[BaseRoute] = ()) -> FastAPI:
    """Assemble the routes of every resource into one application; ``extra_routes`` are mounted by the server
    beside them (the cluster's forwarded-span receiver, which is not the API's to know, and stays a lean
    Starlette route: the document describes it from its docstring)."""
    app = FastAPI(
        title="spyglass",
        version=__version__,
        summary="Distributed tracing that explains: the JSON API, the Jaeger-compatible API and /metrics",
        openapi_url=OPENAPI_PATH,
        docs_url=None,
        redoc_url=None,
        # spyglass must never trace its own queries into whatever OpenTelemetry provider its process holds.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
        exception_handlers={
            BadRequest: bad_request,
            RequestValidationError: invalid_parameters,
            HTTPException: http_error,
        },
    )
    # The last added is the outermost: the token is checked before anything else runs.
    if ctx.cluster is not None:
        app.add_middleware(peer.PartialAnswerMiddleware)
    if ctx.query_token:
        app.add_middleware(QueryTokenMiddleware, token=ctx.query_token)
    for module in (v1, critical_path, explain, metrics, slos, prometheus, compare, ui_support, jaeger):
        app.include_router(module.router(ctx))
    plain = [*peer.routes(ctx), *extra_routes]
    app.router.routes.extend([*plain, *web_routes()])
    schema_of_routes = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = _without_422s(schema_of_routes())
            for route in plain:
                if isinstance(route, Route):
                    document["paths"][route.path] = _plain_route_description(route)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _without_422s(document: dict[str, Any]) -> dict[str, Any]:
    """FastAPI documents a 422 for every route with parameters; spyglass refuses with a 400 (``ErrorAnswer``
    or Jaeger's envelope, declared on each router), so the 422 and its schemas would describe nothing."""
    for item in document.get("paths", {}).values():
        for operation in item.values():
            operation.get("responses", {}).pop("422", None)
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return document


def _plain_route_description(route: Route) -> dict[str, Any]:
    """An OpenAPI path item for a route FastAPI does not build: the cluster's own binary protocol."""
    summary, _, description = (route.endpoint.__doc__ or route.path).strip().partition("\n")
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in route.param_convertors
    ]
    operation = {
        "tags": ["cluster"],
        "summary": summary.strip(),
        "description": " ".join(description.split()),
        "parameters": parameters,
        "responses": {"200": {"description": "Arrow IPC stream or JSON, by verb"}},
    }
    return {method.lower(): operation for method in sorted((route.methods or set()) - {"HEAD"})}
