"""The query-side application on ``--port``: JSON API, Jaeger-compatible API, OpenAPI, and the web UI."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from spyglass.api import compare, critical_path, explain, jaeger, metrics, peer, prometheus, ui_support, v1
from spyglass.api.context import ApiContext
from spyglass.api.jaeger import error_envelope, is_jaeger_path
from spyglass.api.json_response import json_response
from spyglass.api.openapi import openapi_document
from spyglass.api.params import BadRequest
from spyglass.security import bearer_ok
from spyglass.web.routes import web_routes

_PROTECTED_PREFIXES = ("/api/", "/metrics")


class QueryTokenMiddleware(BaseHTTPMiddleware):
    """``--query-token``: API requests must carry ``Authorization: Bearer TOKEN``."""

    def __init__(self, app: object, token: str | None) -> None:
        super().__init__(app)  # type: ignore[arg-type]
        self.token = token

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if self.token and request.url.path.startswith(_PROTECTED_PREFIXES):
            if not bearer_ok(request.headers.get("authorization"), self.token):
                message, headers = "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"}
                if is_jaeger_path(request.url.path):
                    return error_envelope(401, message, headers)
                return json_response({"error": message}, status=401, headers=headers)
        return await call_next(request)


async def _bad_request(request: Request, exc: Exception) -> Response:
    if is_jaeger_path(request.url.path):
        return error_envelope(400, str(exc))
    return json_response({"error": str(exc)}, status=400)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and methods: Jaeger's envelope under the Jaeger API, Starlette's plain answer elsewhere."""
    assert isinstance(exc, HTTPException)
    if is_jaeger_path(request.url.path):
        return error_envelope(exc.status_code, exc.detail, dict(exc.headers or {}))
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)


def create_api_app(ctx: ApiContext, extra_routes: Sequence[BaseRoute] = ()) -> Starlette:
    """Assemble the routes of every resource into one application; ``extra_routes`` are mounted by the server
    beside them (the cluster's forwarded-span receiver, which is not the API's to know)."""

    def openapi(request: Request) -> Response:
        return json_response(openapi_document())

    middleware = [Middleware(QueryTokenMiddleware, token=ctx.query_token)] if ctx.query_token else []
    if ctx.cluster is not None:
        middleware.append(Middleware(peer.PartialAnswerMiddleware))
    return Starlette(
        routes=[
            *v1.routes(ctx),
            *critical_path.routes(ctx),
            *explain.routes(ctx),
            *metrics.routes(ctx),
            *prometheus.routes(ctx),
            *compare.routes(ctx),
            *ui_support.routes(ctx),
            *jaeger.routes(ctx),
            *peer.routes(ctx),
            *extra_routes,
            Route("/openapi.json", openapi),
            *web_routes(),
        ],
        middleware=middleware,
        exception_handlers={BadRequest: _bad_request, HTTPException: _http_error},
    )
