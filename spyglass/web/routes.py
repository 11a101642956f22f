"""Serves the web UI: one page application whose routes (``/``, ``/traces/{id}``) all load the same shell."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"


def web_routes() -> list[BaseRoute]:
    def shell(request: Request) -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    return [
        Route("/", shell),
        Route("/traces/{trace_id}", shell),
        Route("/services/{service}", shell),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
