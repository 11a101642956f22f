"""Refusals as the API answers them: a 400 whose message names the parameter and its bound, in spyglass's
``{"error": ...}`` shape or, under the Jaeger-compatible routes, Jaeger's error envelope."""

from __future__ import annotations

from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from spyglass.api.jaeger_envelope import error_envelope, is_jaeger_path
from spyglass.api.json_response import json_response
from spyglass.api.params import INT64_MAX

_MAX_SHOWN = 40


def refusal(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """One refusal in the shape of the API the request was for."""
    if is_jaeger_path(request.url.path):
        return error_envelope(status, message, headers)
    return json_response({"error": message}, status=status, headers=headers)


async def bad_request(request: Request, exc: Exception) -> Response:
    """A ``BadRequest`` raised by a handler: its message already names what is wrong."""
    return refusal(request, 400, str(exc))


async def invalid_parameters(request: Request, exc: Exception) -> Response:
    """FastAPI's validation errors (a 422 by default) as the 400 spyglass has always answered."""
    assert isinstance(exc, RequestValidationError)
    return refusal(request, 400, "; ".join(describe(error) for error in exc.errors()[:3]))


async def http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and methods: Jaeger's envelope under the Jaeger API, a plain answer elsewhere."""
    assert isinstance(exc, HTTPException)
    if is_jaeger_path(request.url.path):
        return error_envelope(exc.status_code, exc.detail, dict(exc.headers or {}))
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)


def describe(error: Any) -> str:
    """One pydantic error as a sentence that names the parameter (or body field) and the bound it broke."""
    location = [str(part) for part in error.get("loc", ()) if part not in ("query", "path", "body", "header")]
    name = location[0] if location else "the body"
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    shown = _shown(error.get("input"))
    if kind == "missing":
        return f"{name} is required"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{name} must be an integer, got {shown}"
    if kind in ("float_parsing", "float_type", "finite_number"):
        return f"{name} must be a finite number, got {shown}"
    if kind in ("bool_parsing", "bool_type"):
        return f"{name} must be true or false, got {shown}"
    if kind == "greater_than_equal":
        return f"{name} must be >= {ctx.get('ge')}, got {shown}"
    if kind == "greater_than":
        return f"{name} must be > {ctx.get('gt')}, got {shown}"
    if kind == "less_than":
        return f"{name} must be < {ctx.get('lt')}, got {shown}"
    if kind == "extra_forbidden":
        return f"unknown field {name!r}"
    if kind == "less_than_equal" and ctx.get("le") == INT64_MAX:
        return f"{name} must fit a 64-bit integer (at most {INT64_MAX}), got {shown}"
    if kind == "less_than_equal":
        return f"{name} must be at most {ctx.get('le')}, got {shown}"
    if kind == "string_pattern_mismatch" and ":" in str(ctx.get("pattern", "")):
        return f"{name} must be KEY:VALUE, got {shown}"
    if kind == "string_too_short":
        return f"{name} must be a non-empty string"
    if kind == "literal_error":
        return f"{name} must be {ctx.get('expected')}, got {shown}"
    if kind == "json_invalid":
        return "the body must be valid JSON"
    if kind in ("model_attributes_type", "dict_type", "model_type"):
        return "the body must be a JSON object"
    if kind == "value_error":
        return str(error.get("msg", "")).removeprefix("Value error, ")
    return f"{name}: {error.get('msg', 'invalid')}, got {shown}"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "…"
