"""Serves the web UI: a single-page application built from ``ui/`` (TypeScript, bundled by esbuild) into
``static/dist`` (build output, not in git). Every UI path answers with the same shell, so ``/``, ``/traces/{id}`` and the other views
work as direct links; the client-side router picks the view."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
SHELL = STATIC_DIR / "dist" / "index.html"

#: Paths of the client-side router (ui/src/main.ts); each gets the shell.
UI_PATHS = (
    "/",
    "/services/{service}",
    "/search",
    "/traces/{trace_id}",
    "/map",
    "/explain",
    "/compare",
    "/critical-path",
    "/slos",
)

_NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>spyglass</title>
<h1>spyglass: the web UI is not built</h1>
<p>Run <code>bash scripts/setup.sh</code> (or <code>npm ci &amp;&amp; npm run build</code> in <code>ui/</code>).
The JSON API is up: <a href="/api/v1/services">/api/v1/services</a>.</p>"""


def web_routes() -> list[BaseRoute]:
    def shell(request: Request) -> Response:
        if not SHELL.is_file():
            # The API works without the UI; say how to build it rather than 404.
            return HTMLResponse(_NOT_BUILT, status_code=503)
        return FileResponse(SHELL, headers={"Cache-Control": "no-cache"})

    return [
        *(Route(path, shell) for path in UI_PATHS),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR, check_dir=False), name="static"),
    ]
