"""The OpenAPI description of the JSON API, served at ``/openapi.json``."""

from __future__ import annotations

from typing import Any

from spyglass import __version__


def _param(
    name: str, kind: str = "string", where: str = "query", required: bool = False, description: str = ""
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required,
        "schema": {"type": kind},
        "description": description,
    }


_SPAN = {
    "type": "object",
    "properties": {
        "trace_id": {"type": "string"},
        "span_id": {"type": "string"},
        "parent_span_id": {"type": ["string", "null"]},
        "service": {"type": "string"},
        "name": {"type": "string"},
        "kind": {"type": "string", "enum": ["server", "client", "internal", "producer", "consumer"]},
        "start_ns": {"type": "integer"},
        "duration_ns": {"type": "integer"},
        "status": {"type": "string", "enum": ["unset", "ok", "error"]},
        "status_message": {"type": "string"},
        "attributes": {"type": "object"},
        "resource": {"type": "object"},
        "events": {"type": "array", "items": {"type": "object"}},
        "links": {"type": "array", "items": {"type": "object"}},
    },
}
_TRACE_SUMMARY = {
    "type": "object",
    "properties": {
        "trace_id": {"type": "string"},
        "root_service": {"type": ["string", "null"]},
        "root_operation": {"type": ["string", "null"]},
        "start_ns": {"type": "integer"},
        "duration_ns": {"type": "integer"},
        "span_count": {"type": "integer"},
        "error": {"type": "boolean"},
        "sample_weight": {"type": "number"},
    },
}

_LOG_RECORD = {
    "type": "object",
    "properties": {
        "time_ns": {"type": "integer"},
        "observed_time_ns": {"type": "integer"},
        "trace_id": {"type": "string"},
        "span_id": {"type": ["string", "null"]},
        "severity": {"type": "string", "description": "severity text, else the name of severity_number"},
        "severity_number": {"type": "integer"},
        "body": {"type": ["string", "null"], "description": "non-string bodies as JSON text"},
        "attributes": {"type": "object"},
        "resource": {"type": "object"},
        "service": {"type": "string"},
        "scope": {"type": "string"},
    },
}

_METRIC_FIELDS = {
    "count": {"type": "integer"},
    "errors": {"type": "integer"},
    "p50_ms": {"type": ["number", "null"]},
    "p90_ms": {"type": ["number", "null"]},
    "p99_ms": {"type": ["number", "null"]},
    "max_ms": {"type": ["number", "null"]},
}
_METRIC_GROUP = {
    "type": "object",
    "properties": {
        "key": {"type": "string"},
        **_METRIC_FIELDS,
        "series": {
            "type": "array",
            "description": "with step_s: one point per step, empty steps included",
            "items": {"type": "object", "properties": {"start_ns": {"type": "integer"}, **_METRIC_FIELDS}},
        },
    },
}
_METRICS = {
    "type": "object",
    "properties": {
        "groups": {"type": "array", "items": {"$ref": "#/components/schemas/MetricGroup"}},
        "estimated": {
            "type": "boolean",
            "description": "true when grouped by an attribute without rollups: from buffered and weighted "
            "stored spans",
        },
        "group_by": {"type": "string"},
        "step_s": {"type": "integer", "description": "the step used: a whole number of rollup buckets"},
        "start_ns": {"type": "integer"},
        "end_ns": {"type": "integer"},
    },
}


_FINDING: dict[str, Any] = {
    "type": "object",
    "required": ["kind", "score", "summary", "service", "owner", "evidence", "examples"],
    "properties": {
        "kind": {
            "type": "string",
            "enum": ["attribute", "operation", "n_plus_one", "sequential", "error_source"],
        },
        "score": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "description": "share of the symptom explained",
        },
        "summary": {"type": "string"},
        "service": {"type": "string"},
        "operation": {"type": "string", "description": "operation, n_plus_one, sequential, error_source"},
        "key": {"type": "string", "description": "attribute findings"},
        "value": {"type": "string", "description": "attribute findings"},
        "owner": {"type": ["string", "null"], "description": "the team owning the service"},
        "evidence": {"type": "object", "description": "numbers for the regression and baseline windows"},
        "examples": {
            "type": "object",
            "properties": {
                "regression": {"type": "array", "items": {"type": "string"}},
                "baseline": {"type": "array", "items": {"type": "string"}},
            },
        },
    },
}
_EXPLAIN: dict[str, Any] = {
    "post": {
        "summary": "Explain a symptom: ranked likely causes of a root operation's latency or errors change",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": [
                            "service",
                            "operation",
                            "start_ns",
                            "end_ns",
                            "baseline_start_ns",
                            "baseline_end_ns",
                        ],
                        "properties": {
                            "service": {"type": "string"},
                            "operation": {"type": "string"},
                            "start_ns": {"type": "integer"},
                            "end_ns": {"type": "integer"},
                            "baseline_start_ns": {"type": "integer"},
                            "baseline_end_ns": {"type": "integer"},
                            "signal": {"type": "string", "enum": ["latency", "errors"], "default": "latency"},
                        },
                    }
                }
            },
        },
        "responses": {
            "200": {
                "description": "findings, most likely cause first; empty when nothing changed",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {"findings": {"type": "array", "items": _FINDING}},
                        }
                    }
                },
            },
            "400": {"description": "a field is missing or malformed"},
            "401": {"description": "the query token is required"},
        },
    }
}


def _get(summary: str, params: list[dict[str, Any]], schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": params,
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": schema}}},
                "400": {"description": "a parameter is malformed"},
                "401": {"description": "the query token is required"},
            },
        }
    }


def openapi_document() -> dict[str, Any]:
    obj = {"type": "object"}
    window = [_param("start_ns", "integer"), _param("end_ns", "integer")]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "spyglass",
            "version": __version__,
            "description": "Distributed tracing that explains. Ids are lowercase hex, times nanoseconds.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Span": _SPAN,
                "TraceSummary": _TRACE_SUMMARY,
                "MetricGroup": _METRIC_GROUP,
                "LogRecord": _LOG_RECORD,
            },
        },
        "paths": {
            "/api/v1/status": _get("Ingest, sampling and storage counters", [], obj),
            "/api/v1/services": _get("Services seen", [], obj),
            "/api/v1/services/{service}/operations": _get(
                "Operations of a service", [_param("service", where="path", required=True)], obj
            ),
            "/api/v1/traces/{trace_id}": _get(
                "One trace, every span (streamed above 5,000 spans); or one page, one span, or the columnar form",
                [
                    _param("trace_id", where="path", required=True),
                    _param("offset", "integer", description="first span of a page (spans in start order)"),
                    _param("limit", "integer", description="spans in a page, at most 10000"),
                    _param("span_id", description="only this span"),
                    _param("format", description="spans (default) or columns: one list per column"),
                    _param(
                        "spans_up_to", "integer", description="columns: full spans too if at most this many"
                    ),
                ],
                {
                    "type": "object",
                    "properties": {
                        "trace_id": {"type": "string"},
                        "spans": {"type": "array", "items": {"$ref": "#/components/schemas/Span"}},
                        "span_count": {"type": "integer", "description": "pages and columns"},
                        "offset": {"type": "integer", "description": "pages"},
                        "next_offset": {
                            "type": ["integer", "null"],
                            "description": "pages; null after the last",
                        },
                        "start_ns": {"type": "integer", "description": "columns: the trace's first start"},
                        "dictionaries": {
                            "type": "object",
                            "description": "columns: service, name, kind and status values the columns index",
                        },
                        "columns": {
                            "type": "object",
                            "description": "columns: span_id, parent_index (-1 root, -2 parent not held), "
                            "start_offset_ns, duration_ns, service, name, kind, status",
                        },
                    },
                },
            ),
            "/api/v1/traces/{trace_id}/logs": _get(
                "Log records of one trace (OTLP logs carrying its trace id), oldest first",
                [_param("trace_id", where="path", required=True), _param("limit", "integer")],
                {
                    "type": "object",
                    "properties": {
                        "logs": {"type": "array", "items": {"$ref": "#/components/schemas/LogRecord"}}
                    },
                },
            ),
            "/api/v1/traces": _get(
                "Search traces",
                [
                    _param("service"),
                    _param("operation"),
                    _param("attr", description="KEY:VALUE, repeatable; matches any span of the trace"),
                    _param("min_duration_ms", "number"),
                    _param("max_duration_ms", "number"),
                    _param("error", "boolean"),
                    *window,
                    _param("limit", "integer"),
                ],
                {
                    "type": "object",
                    "properties": {
                        "traces": {"type": "array", "items": {"$ref": "#/components/schemas/TraceSummary"}}
                    },
                },
            ),
            "/api/v1/critical-path": _get(
                "Critical path of the traces whose root is this operation: each operation's share, Amdahl's bound",
                [
                    _param("service", required=True, description="root span's service"),
                    _param("operation", required=True, description="root span's operation"),
                    *window,
                    _param("limit", "integer", description="traces analyzed, newest first (max 20000)"),
                ],
                {
                    "type": "object",
                    "properties": {
                        "traces": {"type": "integer"},
                        "contributions": {
                            "type": "array",
                            "description": "largest share first",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "service": {"type": "string"},
                                    "operation": {"type": "string"},
                                    "share": {
                                        "type": "number",
                                        "description": "fraction of the total critical-path time spent in "
                                        "this operation's own time (weighted by sample_weight)",
                                    },
                                    "p50_ms": {"type": "number"},
                                    "p99_ms": {"type": "number"},
                                    "max_speedup": {
                                        "type": ["number", "null"],
                                        "description": "Amdahl's bound 1 / (1 - share); null when share is 1",
                                    },
                                },
                            },
                        },
                    },
                },
            ),
            "/api/v1/compare": _get(
                "Two traces or two sets side by side: operations (calls, own time, errors) and attributes",
                [
                    _param("a", required=True, description="trace ids, comma-separated"),
                    _param("b", required=True, description="trace ids, comma-separated"),
                ],
                obj,
            ),
            "/api/v1/traces/{trace_id}/critical-path": _get(
                "The spans on one trace's critical path, each with its exclusive critical time",
                [_param("trace_id", where="path", required=True)],
                {
                    "type": "object",
                    "properties": {
                        "trace_id": {"type": "string"},
                        "spans": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "span_id": {"type": "string"},
                                    "critical_ns": {"type": "integer"},
                                },
                            },
                        },
                    },
                },
            ),
            "/api/v1/ui/services": _get(
                "For the web UI: each service's owner and RED series of its entry (server, consumer) spans",
                [*window, _param("step_s", "integer")],
                obj,
            ),
            "/api/v1/ui/latency-heatmap": _get(
                "For the web UI: span counts per time step and log-spaced latency band, from 100% of spans",
                [_param("service"), _param("operation"), *window, _param("step_s", "integer")],
                obj,
            ),
            "/api/v1/ui/deployments": _get(
                "For the web UI: when each service.version was first seen; deployed=true when it appeared after "
                "the service's first version of the window",
                [_param("service"), *window],
                obj,
            ),
            "/api/v1/peer/{verb}": {
                "post": {
                    "summary": "Cluster members only (--peers): one member's local data for a cluster-wide query. "
                    "verb is one of ping, status, store.trace, store.find_traces, store.scan, store.rollups, "
                    "store.logs_for_traces, store.services, store.operations, store.span_count, live.trace, "
                    "live.snapshot, live.coverage, live.rollups; the body is a JSON object of its arguments; "
                    "tables come back as Arrow IPC streams. 400 for malformed arguments, 404 for an unknown verb.",
                    "parameters": [
                        {"name": "verb", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
                    "responses": {
                        "200": {
                            "description": "OK",
                            "content": {"application/vnd.apache.arrow.stream": {}, "application/json": {}},
                        },
                        "400": {"description": "malformed arguments"},
                        "404": {"description": "unknown verb, or not a cluster member"},
                    },
                }
            },
            "/api/operations": _get(
                "Jaeger: operations with span kinds",
                [_param("service", required=True), _param("spanKind")],
                obj,
            ),
            "/metrics": {
                "get": {
                    "summary": "Prometheus text: spyglass's health and span-derived RED metrics",
                    "responses": {"200": {"description": "OK", "content": {"text/plain": {}}}},
                }
            },
            "/api/v1/dependencies": _get("Service graph edges", window, obj),
            "/api/v1/explain": _EXPLAIN,
            "/api/v1/metrics": _get(
                "RED metrics from 100% of spans: counts exact, percentiles within 1%",
                [
                    _param("service"),
                    _param("operation"),
                    *window,
                    _param(
                        "group_by",
                        description="service, operation, or an attribute key (span or resource); keys "
                        "without rollups are estimated",
                    ),
                    _param("step_s", "integer", description="adds a series per group with this step"),
                ],
                _METRICS,
            ),
            "/api/services": _get("Jaeger: services", [], obj),
            "/api/services/{service}/operations": _get(
                "Jaeger: operations", [_param("service", where="path", required=True)], obj
            ),
            "/api/traces": _get(
                "Jaeger: find traces (errors, as on every Jaeger route, in Jaeger's envelope: "
                '{"data": null, "errors": [{"code", "msg"}]})',
                [
                    _param("service", description="required unless traceID is given"),
                    _param("traceID", description="repeatable: these traces, and an error for each missing"),
                    _param("operation"),
                    _param(
                        "tags", description='a JSON object; {"error": "true"} finds traces with an error span'
                    ),
                    _param("tag", description="repeatable key:value"),
                    _param("limit", "integer"),
                    _param("start", "integer"),
                    _param("end", "integer"),
                    _param("minDuration"),
                    _param("maxDuration"),
                    _param("lookback"),
                ],
                obj,
            ),
            "/api/traces/{trace_id}": _get(
                "Jaeger: one trace", [_param("trace_id", where="path", required=True)], obj
            ),
            "/api/dependencies": _get(
                "Jaeger: dependencies",
                [_param("endTs", "integer"), _param("lookback", "integer"), _param("service")],
                obj,
            ),
        },
    }
