"""Jaeger's query API shapes (``/api/...``), so Grafana's Jaeger data source and Jaeger clients work unchanged.

Jaeger speaks microseconds, ``{"data": ...}`` envelopes, typed tag lists and per-trace process tables.
"""

from __future__ import annotations

import time
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
from spyglass.api.span_json import parse_trace_id, span_rows, span_to_json
from spyglass.model.schema import KIND_NAMES
from spyglass.store.protocol import TraceQuery

MAX_LIMIT = 1_500
_HOUR_US = 3_600 * 1_000_000


def _envelope(data: Any, status: int = 200, error: str | None = None) -> Response:
    payload: dict[str, Any] = {
        "data": data,
        "total": len(data) if isinstance(data, list) else 0,
        "limit": 0,
        "offset": 0,
        "errors": None,
    }
    if error:
        payload["errors"] = [{"code": status, "msg": error}]
    return json_response(payload, status=status)


def _tag(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int):
        return {"key": key, "type": "int64", "value": value}
    if isinstance(value, float):
        return {"key": key, "type": "float64", "value": value}
    if isinstance(value, str):
        return {"key": key, "type": "string", "value": value}
    return {"key": key, "type": "string", "value": orjson.dumps(value).decode()}


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
        tags = [_tag(k, v) for k, v in span["attributes"].items()]
        tags.append(_tag("span.kind", span["kind"]))
        if span["status"] == "error":
            tags.append(_tag("error", True))
            tags.append(_tag("otel.status_code", "ERROR"))
            if span["status_message"]:
                tags.append(_tag("otel.status_description", span["status_message"]))
        elif span["status"] == "ok":
            tags.append(_tag("otel.status_code", "OK"))
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
                "logs": [
                    {
                        "timestamp": event["time_ns"] // 1_000,
                        "fields": [_tag("event", event["name"])]
                        + [_tag(k, v) for k, v in event["attributes"].items()],
                    }
                    for event in span["events"]
                ],
                "processID": processes[process_key],
                "warnings": None,
                "flags": 1,
            }
        )
    return {"traceID": spans[0]["trace_id"], "spans": out, "processes": process_table, "warnings": None}


def routes(ctx: ApiContext) -> list[Route]:
    def services(request: Request) -> Response:
        return _envelope(ctx.store.services())

    def service_operations(request: Request) -> Response:
        return _envelope(sorted({name for name, _ in ctx.store.operations(request.path_params["service"])}))

    def operations(request: Request) -> Response:
        service = request.query_params.get("service", "")
        span_kind = request.query_params.get("spanKind") or None
        data = [
            {"name": name, "spanKind": KIND_NAMES.get(kind, "internal")}
            for name, kind in ctx.store.operations(service)
            if span_kind is None or KIND_NAMES.get(kind) == span_kind
        ]
        return _envelope(data)

    def trace(request: Request) -> Response:
        trace_id = parse_trace_id(request.path_params["trace_id"])
        if trace_id is None:
            return _envelope(None, 400, "trace id must be 16 or 32 hex characters")
        rows = span_rows(trace_spans(ctx.store, ctx.satellite, trace_id))
        if not rows:
            return _envelope(None, 404, "trace not found")
        return _envelope([jaeger_trace([span_to_json(r) for r in rows])])

    def find(request: Request) -> Response:
        params = request.query_params
        service = params.get("service")
        if not service:
            raise BadRequest("parameter 'service' is required")
        try:
            tags = orjson.loads(params.get("tags") or "{}")
        except orjson.JSONDecodeError:
            raise BadRequest("tags must be a JSON object of string values") from None
        if not isinstance(tags, dict):
            raise BadRequest("tags must be a JSON object of string values")
        tags.update(_logfmt_tags(params.getlist("tag")))
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
        query = TraceQuery(
            service=service,
            operation=params.get("operation") or None,
            attributes=tuple((str(k), _tag_text(v)) for k, v in tags.items()),
            min_duration_ns=go_duration_ns(min_d, "minDuration") if min_d else None,
            max_duration_ns=go_duration_ns(max_d, "maxDuration") if max_d else None,
            start_ns=start_us * 1_000,
            end_ns=end_us * 1_000,
            limit=min(optional_int(params, "limit", minimum=1) or 20, MAX_LIMIT),
            match_any_span=True,
        )
        found = ctx.store.find_traces(query)
        traces = []
        for trace_id in found.column("trace_id").to_pylist():
            rows = span_rows(trace_spans(ctx.store, None, trace_id))
            if rows:
                traces.append(jaeger_trace([span_to_json(r) for r in rows]))
        return _envelope(traces)

    def dependencies(request: Request) -> Response:
        end_ms = optional_int(request.query_params, "endTs") or time.time_ns() // 1_000_000
        lookback_ms = optional_int(request.query_params, "lookback") or 24 * 3_600_000
        edges = dependency_edges(
            ctx.store.scan(DEPENDENCY_COLUMNS, (end_ms - lookback_ms) * 1_000_000, end_ms * 1_000_000)
        )
        return _envelope(
            [{"parent": e["parent"], "child": e["child"], "callCount": e["calls"]} for e in edges.to_pylist()]
        )

    return [
        Route("/api/services", services),
        Route("/api/services/{service}/operations", service_operations),
        Route("/api/operations", operations),
        Route("/api/traces/{trace_id}", trace),
        Route("/api/traces", find),
        Route("/api/dependencies", dependencies),
    ]


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
            raise BadRequest(f"tag must be key:value, got {raw!r}")
        out[key] = value
    return out
