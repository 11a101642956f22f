"""Jaeger's answer envelopes: ``{"data": ...}`` and the error shape Jaeger clients read the reason from."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from spyglass.api.json_response import json_response


def is_jaeger_path(path: str) -> bool:
    """Whether a request path belongs to the Jaeger-compatible API (``/api/...`` outside ``/api/v1``)."""
    return path.startswith("/api/") and not (path.startswith("/api/v1/") or path == "/api/v1")


def envelope(data: Any, total: int = 0, errors: list[dict[str, Any]] | None = None) -> Response:
    """Jaeger's ``structuredResponse``; ``total`` is set where Jaeger sets it (services and operations)."""
    return json_response({"data": data, "total": total, "limit": 0, "offset": 0, "errors": errors})


def error_envelope(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """A Jaeger error answer: no data, the status and the reason in ``errors``."""
    payload = {
        "data": None,
        "total": 0,
        "limit": 0,
        "offset": 0,
        "errors": [{"code": status, "msg": message}],
    }
    return json_response(payload, status=status, headers=headers)
