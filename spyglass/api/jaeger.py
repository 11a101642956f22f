"""Jaeger's query API shapes (``/api/...``), so Grafana's Jaeger data source and Jaeger clients work unchanged.

Jaeger speaks microseconds, ``{"data": ...}`` envelopes, typed tag lists and per-trace process tables. Every
error on these routes, whatever its status (400, 401, 404, 405, 500), is Jaeger's envelope too: ``data`` null and
``errors: [{"code", "msg"}]``, because Jaeger clients read the reason from there. The span status becomes the
tags Jaeger's own OTLP translator writes (``error=true``, ``otel.status_code``, ``otel.status_description``), and
a search for the tag ``error=true`` finds the traces with an error span, as it does in Jaeger's stores.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from spyglass.analysis.dependencies import COLUMNS as DEPENDENCY_COLUMNS
from spyglass.analysis.dependencies import dependency_edges
from spyglass.analysis.traces import trace_spans
from spyglass.api.context import ApiContext
from spyglass.api.json_response import json_response
from spyglass.api.params import BadRequest, go_duration_ns, optional_int
from spyglass.api.span_json import span_rows, span_to_json
from spyglass.model.schema import KIND_NAMES
from spyglass.store.protocol import TraceQuery

log = logging.getLogger(__name__)

MAX_LIMIT = 1_500
#: Traces a search returns when it names no limit (Jaeger's query service default).
DEFAULT_LIMIT = 100
_HOUR_US = 3_600 * 1_000_000
#: Integers beyond this are written as strings, as Jaeger does: JavaScript numbers lose their digits past it.
_JS_MAX_SAFE_INTEGER = 2**53 - 1
#: Tags that say a span failed, as Jaeger's stores index them: searching one finds the error spans.
_ERROR_TAGS = {("error", "true"), ("otel.status_code", "ERROR")}


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


def _tag(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int):
        safe = -_JS_MAX_SAFE_INTEGER <= value <= _JS_MAX_SAFE_INTEGER
        return {"key": key, "type": "int64", "value": value if safe else str(value)}
    if isinstance(value, float):
        return {"key": key, "type": "float64", "value": value}
    if isinstance(value, str):
        return {"key": key, "type": "string", "value": value}
    return {"key": key, "type": "string", "value": orjson.dumps(value).decode()}


def _span_tags(span: dict[str, Any]) -> list[dict[str, Any]]:
    """A span's attributes, then the tags Jaeger's OTLP translator derives from its other fields. An attribute
    with the key of a derived tag is left out, so no key appears twice (one ``error`` tag, never two)."""
    derived: list[dict[str, Any]] = [_tag("span.kind", span["kind"])]
    if span["status"] == "error":
        derived.append(_tag("otel.status_code", "ERROR"))
        derived.append(_tag("error", True))
        if span["status_message"]:
            derived.append(_tag("otel.status_description", span["status_message"]))
    elif span["status"] == "ok":
        derived.append(_tag("otel.status_code", "OK"))
    scope = span.get("scope") or {}
    if scope.get("name"):
        derived.append(_tag("otel.scope.name", scope["name"]))
    if scope.get("version"):
        derived.append(_tag("otel.scope.version", scope["version"]))
    if span.get("trace_state"):
        derived.append(_tag("w3c.tracestate", span["trace_state"]))
    taken = {tag["key"] for tag in derived}
    if span["status"] != "unset":
        taken.update(("error", "otel.status_code", "otel.status_description"))
    return [_tag(k, v) for k, v in span["attributes"].items() if k not in taken] + derived


def _log(event: dict[str, Any]) -> dict[str, Any]:
    """An event as a Jaeger log: its attributes, and its name as the field ``event`` unless one is there."""
    fields = [_tag(k, v) for k, v in event["attributes"].items()]
    if event["name"] and "event" not in event["attributes"]:
        fields.insert(0, _tag("event", event["name"]))
    return {"timestamp": event["time_ns"] // 1_000, "fields": fields}


def jaeger_trace(spans: list[dict[str, Any]]) -> dict[str, Any]:
    """API ``Span`` dicts of one trace -> one Jaeger trace object."""
    processes: dict[tuple[str, str], str] = {}
    process_table: dict[str, Any] = {}
    out = []
    for span in spans:
        resource = span["resource"]
        process_key = (span["service"], orjson.dumps(resource, option=orjson.OPT_SORT_KEYS).decode())
        if process_key not in processes:
            process_id = f"p{len(processes) + 1}"
            processes[process_key] = process_id
            process_table[process_id] = {
                "serviceName": span["service"],
                "tags": [_tag(k, v) for k, v in resource.items() if k != "service.name"],
            }
        tags = _span_tags(span)
        references = []
        if span["parent_span_id"]:
            references.append(
                {"refType": "CHILD_OF", "traceID": span["trace_id"], "spanID": span["parent_span_id"]}
            )
        references += [
            {"refType": "FOLLOWS_FROM", "traceID": link["trace_id"], "spanID": link["span_id"]}
            for link in span["links"]
        ]
        out.append(
            {
                "traceID": span["trace_id"],
                "spanID": span["span_id"],
                "operationName": span["name"],
                "references": references,
                "startTime": span["start_ns"] // 1_000,
                "duration": span["duration_ns"] // 1_000,
                "tags": tags,
                "logs": [_log(event) for event in span["events"]],
                "processID": processes[process_key],
                "warnings": None,
                "flags": 1,
            }
        )
    return {"traceID": spans[0]["trace_id"], "spans": out, "processes": process_table, "warnings": None}


def routes(ctx: ApiContext) -> list[Route]:
    def services(request: Request) -> Response:
        names = ctx.store.services()
        return envelope(names, total=len(names))

    def service_operations(request: Request) -> Response:
        names = sorted({name for name, _ in ctx.store.operations(request.path_params["service"])})
        return envelope(names, total=len(names))

    def operations(request: Request) -> Response:
        service = request.query_params.get("service")
        if not service:
            raise BadRequest("parameter 'service' is required")
        span_kind = request.query_params.get("spanKind") or None
        data = [
            {"name": name, "spanKind": KIND_NAMES.get(kind, "internal")}
            for name, kind in ctx.store.operations(service)
            if span_kind is None or KIND_NAMES.get(kind) == span_kind
        ]
        return envelope(data, total=len(data))

    def trace(request: Request) -> Response:
        trace_id = jaeger_trace_id(request.path_params["trace_id"])
        rows = span_rows(trace_spans(ctx.store, ctx.satellite, trace_id))
        if not rows:
            return error_envelope(404, "trace not found")
        return envelope([jaeger_trace([span_to_json(r) for r in rows])])

    def find(request: Request) -> Response:
        params = request.query_params
        trace_ids = [jaeger_trace_id(text, "traceID") for text in params.getlist("traceID")]
        if trace_ids:
            return _traces_by_id(ctx, trace_ids)
        service = params.get("service")
        if not service:
            raise BadRequest("parameter 'service' is required")
        tags = _search_tags(params.get("tags"), params.getlist("tag"))
        error = True if any((key, value) in _ERROR_TAGS for key, value in tags.items()) else None
        end_us = optional_int(params, "end") or time.time_ns() // 1_000
        lookback = params.get("lookback")
        start_us = optional_int(params, "start")
        if start_us is None:
            span_us = (
                go_duration_ns(lookback, "lookback") // 1_000
                if lookback and lookback != "custom"
                else _HOUR_US
            )
            start_us = end_us - span_us
        min_d, max_d = params.get("minDuration"), params.get("maxDuration")
        min_ns = go_duration_ns(min_d, "minDuration") if min_d else None
        max_ns = go_duration_ns(max_d, "maxDuration") if max_d else None
        if min_ns and max_ns and max_ns < min_ns:
            raise BadRequest("'maxDuration' should be greater than 'minDuration'")
        query = TraceQuery(
            service=service,
            operation=params.get("operation") or None,
            attributes=tuple((k, v) for k, v in tags.items() if (k, v) not in _ERROR_TAGS),
            min_duration_ns=min_ns,
            max_duration_ns=max_ns,
            error=error,
            start_ns=start_us * 1_000,
            end_ns=end_us * 1_000,
            limit=min(optional_int(params, "limit", minimum=1) or DEFAULT_LIMIT, MAX_LIMIT),
            match_any_span=True,
        )
        found = ctx.store.find_traces(query)
        traces = []
        for trace_id in found.column("trace_id").to_pylist():
            rows = span_rows(trace_spans(ctx.store, None, trace_id))
            if rows:
                traces.append(jaeger_trace([span_to_json(r) for r in rows]))
        return envelope(traces)

    def dependencies(request: Request) -> Response:
        end_ms = optional_int(request.query_params, "endTs") or time.time_ns() // 1_000_000
        lookback_ms = optional_int(request.query_params, "lookback") or 24 * 3_600_000
        edges = dependency_edges(
            ctx.store.scan(DEPENDENCY_COLUMNS, (end_ms - lookback_ms) * 1_000_000, end_ms * 1_000_000)
        )
        service = request.query_params.get("service")
        return envelope(
            [
                {"parent": e["parent"], "child": e["child"], "callCount": e["calls"]}
                for e in edges.to_pylist()
                if not service or service in (e["parent"], e["child"])
            ]
        )

    return [
        Route("/api/services", _jaeger_errors(services)),
        Route("/api/services/{service}/operations", _jaeger_errors(service_operations)),
        Route("/api/operations", _jaeger_errors(operations)),
        Route("/api/traces/{trace_id}", _jaeger_errors(trace)),
        Route("/api/traces", _jaeger_errors(find)),
        Route("/api/dependencies", _jaeger_errors(dependencies)),
    ]


def _jaeger_errors(handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
    """A handler whose refusals and failures are answered in Jaeger's error envelope."""

    @functools.wraps(handler)
    def endpoint(request: Request) -> Response:
        try:
            return handler(request)
        except BadRequest as error:
            return error_envelope(400, str(error))
        except Exception as error:
            log.exception("Jaeger API %s failed", request.url.path)
            return error_envelope(500, f"internal error: {type(error).__name__}")

    return endpoint


def _traces_by_id(ctx: ApiContext, trace_ids: list[bytes]) -> Response:
    """``/api/traces?traceID=...``: the traces found, and for each one missing an error naming it (200), as
    Jaeger answers the UI's trace comparison."""
    traces: list[dict[str, Any]] = []
    missing: list[dict[str, Any]] = []
    for trace_id in trace_ids:
        rows = span_rows(trace_spans(ctx.store, ctx.satellite, trace_id))
        if rows:
            traces.append(jaeger_trace([span_to_json(r) for r in rows]))
        else:
            missing.append({"msg": "trace not found", "traceID": trace_id.hex()})
    return envelope(traces, errors=missing or None)


def jaeger_trace_id(text: str, name: str = "trace id") -> bytes:
    """A trace id as Jaeger reads one: 1 to 32 hex digits, left-padded with zeros to 128 bits."""
    digits = text.strip().lower()
    if not 1 <= len(digits) <= 32 or any(c not in "0123456789abcdef" for c in digits):
        raise BadRequest(f"{name} must be 1 to 32 hex characters, got {text[:40]!r}")
    return bytes.fromhex(digits.zfill(32))


def _search_tags(tags_json: str | None, logfmt: list[str]) -> dict[str, str]:
    """The ``tags`` (a JSON object) and ``tag`` (``key:value``) parameters as one map of text values."""
    try:
        tags = orjson.loads(tags_json or "{}")
    except orjson.JSONDecodeError:
        raise BadRequest("malformed 'tags' parameter: expected a JSON object of string values") from None
    if not isinstance(tags, dict):
        raise BadRequest("malformed 'tags' parameter: expected a JSON object of string values")
    out = {str(k): _tag_text(v) for k, v in tags.items()}
    out.update(_logfmt_tags(logfmt))
    return out


def _tag_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _logfmt_tags(values: list[str]) -> dict[str, str]:
    """Jaeger UI also sends ``tag=key:value`` pairs."""
    out = {}
    for raw in values:
        key, sep, value = raw.partition(":")
        if not sep:
            raise BadRequest(f"malformed 'tag' parameter, expecting key:value, received: {raw!r}")
        out[key] = value
    return out
