"""Jaeger's query API shapes (``/api/...``), so Grafana's Jaeger data source and Jaeger clients work unchanged.

Jaeger speaks microseconds, ``{"data": ...}`` envelopes, typed tag lists and per-trace process tables. Every
error on these routes, whatever its status (400, 401, 404, 405, 500), is Jaeger's envelope too: ``data`` null and
``errors: [{"code", "msg"}]``, because Jaeger clients read the reason from there. The span status becomes the
tags Jaeger's own OTLP translator writes (``error=true``, ``otel.status_code``, ``otel.status_description``), and
a search for the tag ``error=true`` finds the traces with an error span, as it does in Jaeger's stores.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import Field
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from spyglass.analysis.dependencies import dependency_edges
from spyglass.analysis.traces import stored_traces, trace_spans
from spyglass.api.context import ApiContext
from spyglass.api.jaeger_envelope import envelope, error_envelope
from spyglass.api.models import (
    JaegerDependenciesAnswer,
    JaegerErrorAnswer,
    JaegerNamesAnswer,
    JaegerOperationsAnswer,
    JaegerTracesAnswer,
)
from spyglass.api.params import (
    BLANK_IS_ABSENT,
    INT64_MAX,
    BadRequest,
    Limit,
    Operation,
    Service,
    Text,
    go_duration_ns,
)
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


class JaegerErrorsRoute(APIRoute):
    """A route whose failures are answered in Jaeger's error envelope (refusals already are, by the app's
    handlers), because Jaeger clients read the reason from there."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except (BadRequest, RequestValidationError, HTTPException):
                raise
            except Exception as error:
                log.exception("Jaeger API %s failed", request.url.path)
                return error_envelope(500, f"internal error: {type(error).__name__}")

        return endpoint


Lookback = Annotated[str | None, Query(description="A Go duration (1h, 30m), or custom to use start")]
GoDuration = Annotated[str | None, Query(description="A Go duration: 100ms, 1.5s, 1h30m")]
Microseconds = Annotated[
    Annotated[int, Field(ge=-INT64_MAX // 1_000, le=INT64_MAX // 1_000)] | None,
    BLANK_IS_ABSENT,
    Query(description="µs since the epoch"),
]
Milliseconds = Annotated[
    Annotated[int, Field(ge=0, le=INT64_MAX // 1_000_000)] | None,
    BLANK_IS_ABSENT,
    Query(description="ms (since the epoch for endTs)"),
]


def router(ctx: ApiContext) -> APIRouter:
    """The Jaeger query API's routes, answered in Jaeger's shapes."""
    api = APIRouter(
        route_class=JaegerErrorsRoute, tags=["jaeger"], responses={400: {"model": JaegerErrorAnswer}}
    )

    @api.get("/api/services", response_model=JaegerNamesAnswer, summary="Jaeger: services")
    def services() -> Response:
        names = ctx.store.services()
        return envelope(names, total=len(names))

    @api.get(
        "/api/services/{service}/operations",
        response_model=JaegerNamesAnswer,
        summary="Jaeger: a service's operations",
    )
    def service_operations(service: str) -> Response:
        names = sorted({name for name, _ in ctx.store.operations(service)})
        return envelope(names, total=len(names))

    @api.get(
        "/api/operations", response_model=JaegerOperationsAnswer, summary="Jaeger: operations with span kinds"
    )
    def operations(service: Service = None, spanKind: Text = None) -> Response:  # noqa: N803 (Jaeger's name)
        if not service:
            raise BadRequest("parameter 'service' is required")
        data = [
            {"name": name, "spanKind": KIND_NAMES.get(kind, "internal")}
            for name, kind in ctx.store.operations(service)
            if spanKind is None or KIND_NAMES.get(kind) == spanKind
        ]
        return envelope(data, total=len(data))

    @api.get(
        "/api/traces/{trace_id}",
        response_model=JaegerTracesAnswer,
        responses={404: {"model": JaegerErrorAnswer}},
        summary="Jaeger: one trace",
    )
    def trace(trace_id: str) -> Response:
        rows = span_rows(trace_spans(ctx.store, ctx.live, jaeger_trace_id(trace_id)))
        if not rows:
            return error_envelope(404, "trace not found")
        return envelope([jaeger_trace([span_to_json(r) for r in rows])])

    @api.get(
        "/api/traces", response_model=JaegerTracesAnswer, summary="Jaeger: search traces, or fetch by traceID"
    )
    def find(
        service: Service = None,
        operation: Operation = None,
        tags: Annotated[str | None, Query(description="A JSON object of tag values")] = None,
        tag: Annotated[list[str], Query(description="key:value, repeatable (Jaeger UI)")] = [],  # noqa: B006
        start: Microseconds = None,
        end: Microseconds = None,
        lookback: Lookback = None,
        minDuration: GoDuration = None,  # noqa: N803 (Jaeger's name)
        maxDuration: GoDuration = None,  # noqa: N803
        limit: Limit = None,
        traceID: Annotated[list[str], Query(description="Trace ids to fetch, repeatable")] = [],  # noqa: B006, N803
    ) -> Response:
        trace_ids = [jaeger_trace_id(text, "traceID") for text in traceID]
        if trace_ids:
            return _traces_by_id(ctx, trace_ids)
        if not service:
            raise BadRequest("parameter 'service' is required")
        wanted = _search_tags(tags, tag)
        error = True if any((key, value) in _ERROR_TAGS for key, value in wanted.items()) else None
        end_us = end or time.time_ns() // 1_000
        start_us = start
        if start_us is None:
            span_us = (
                go_duration_ns(lookback, "lookback") // 1_000
                if lookback and lookback != "custom"
                else _HOUR_US
            )
            start_us = end_us - span_us
        min_ns = go_duration_ns(minDuration, "minDuration") if minDuration else None
        max_ns = go_duration_ns(maxDuration, "maxDuration") if maxDuration else None
        if min_ns and max_ns and max_ns < min_ns:
            raise BadRequest("'maxDuration' should be greater than 'minDuration'")
        query = TraceQuery(
            service=service,
            operation=operation,
            attributes=tuple((k, v) for k, v in wanted.items() if (k, v) not in _ERROR_TAGS),
            min_duration_ns=min_ns,
            max_duration_ns=max_ns,
            error=error,
            start_ns=start_us * 1_000,
            end_ns=end_us * 1_000,
            limit=min(limit or DEFAULT_LIMIT, MAX_LIMIT),
            match_any_span=True,
        )
        found = ctx.store.find_traces(query).column("trace_id").to_pylist()
        stored = stored_traces(ctx.store, found)
        traces = []
        for found_id in found:
            rows = span_rows(stored[found_id]) if found_id in stored else []
            if rows:
                traces.append(jaeger_trace([span_to_json(r) for r in rows]))
        return envelope(traces)

    @api.get(
        "/api/dependencies", response_model=JaegerDependenciesAnswer, summary="Jaeger: service dependencies"
    )
    def dependencies(
        endTs: Milliseconds = None, lookback: Milliseconds = None, service: Service = None
    ) -> Response:  # noqa: N803
        end_ms = endTs or time.time_ns() // 1_000_000
        lookback_ms = lookback or 24 * 3_600_000
        edges = dependency_edges(ctx.store.calls((end_ms - lookback_ms) * 1_000_000, end_ms * 1_000_000))
        return envelope(
            [
                {"parent": e["parent"], "child": e["child"], "callCount": e["calls"]}
                for e in edges.to_pylist()
                if not service or service in (e["parent"], e["child"])
            ]
        )

    return api


def _traces_by_id(ctx: ApiContext, trace_ids: list[bytes]) -> Response:
    """``/api/traces?traceID=...``: the traces found, and for each one missing an error naming it (200), as
    Jaeger answers the UI's trace comparison."""
    traces: list[dict[str, Any]] = []
    missing: list[dict[str, Any]] = []
    for trace_id in trace_ids:
        rows = span_rows(trace_spans(ctx.store, ctx.live, trace_id))
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
