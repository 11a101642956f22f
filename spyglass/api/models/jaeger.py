"""Jaeger's query API shapes (``/api/...``): ``{"data", "total", "limit", "offset", "errors"}`` envelopes,
microsecond times, typed tag lists and per-trace process tables, as Grafana and Jaeger clients read them."""

from __future__ import annotations

from typing import Literal

from pydantic import MISSING, Field

from spyglass.api.models.common import Answer, ApiModel, SpanKindName


class JaegerTag(ApiModel):
    """A typed key-value pair (a span attribute, a resource attribute, a log field)."""

    key: str
    type: Literal["bool", "int64", "float64", "string"]
    value: bool | int | float | str = Field(
        description="int64 values beyond 2^53 are strings; lists and maps are JSON text (type string)"
    )


class JaegerLog(ApiModel):
    """A span event as a Jaeger log: its name is the field ``event``."""

    timestamp: int = Field(description="µs since the epoch")
    fields: list[JaegerTag]


class JaegerReference(ApiModel):
    """A span's parent (CHILD_OF) or a link (FOLLOWS_FROM)."""

    refType: Literal["CHILD_OF", "FOLLOWS_FROM"]  # noqa: N815 (Jaeger's name)
    traceID: str  # noqa: N815
    spanID: str  # noqa: N815


class JaegerProcess(ApiModel):
    """A service and resource of a trace's spans."""

    serviceName: str  # noqa: N815
    tags: list[JaegerTag] = Field(description="The resource, without service.name")


class JaegerSpan(ApiModel):
    """A span in Jaeger's shape; status, kind and scope become tags as Jaeger's OTLP translator writes them."""

    traceID: str = Field(description="32 lowercase hex characters")  # noqa: N815
    spanID: str = Field(description="16 lowercase hex characters")  # noqa: N815
    operationName: str  # noqa: N815
    references: list[JaegerReference]
    startTime: int = Field(description="µs since the epoch")  # noqa: N815
    duration: int = Field(description="µs")
    tags: list[JaegerTag]
    logs: list[JaegerLog]
    processID: str = Field(description="A key of the trace's processes")  # noqa: N815
    warnings: None
    flags: int


class JaegerTrace(ApiModel):
    """One trace: its spans and the processes they name."""

    traceID: str  # noqa: N815
    spans: list[JaegerSpan]
    processes: dict[str, JaegerProcess] = Field(description="By processID (p1, p2...)")
    warnings: None


class JaegerError(ApiModel):
    """One error of a Jaeger answer: a refusal or failure (``code``), or a trace asked by id and not found
    (``traceID``)."""

    code: int | MISSING = Field(default=MISSING, description="The HTTP status")
    msg: str
    traceID: str | MISSING = Field(default=MISSING, description="The trace not found")  # noqa: N815


class JaegerEnvelope(Answer):
    """Jaeger's ``structuredResponse`` around ``data``."""

    total: int = Field(description="Items in data for services and operations; else 0")
    limit: int
    offset: int


class JaegerNamesAnswer(JaegerEnvelope):
    """``GET /api/services`` and ``GET /api/services/{service}/operations``: names, sorted."""

    data: list[str]
    errors: None


class JaegerOperation(ApiModel):
    """An operation with the kind of its spans."""

    name: str
    spanKind: SpanKindName  # noqa: N815


class JaegerOperationsAnswer(JaegerEnvelope):
    """``GET /api/operations?service=``: a service's operations."""

    data: list[JaegerOperation]
    errors: None


class JaegerTracesAnswer(JaegerEnvelope):
    """``GET /api/traces/{trace_id}`` and ``GET /api/traces``: the traces found; with ``traceID``, an error for
    each trace not found (answered 200)."""

    data: list[JaegerTrace]
    errors: list[JaegerError] | None


class JaegerDependency(ApiModel):
    """Calls from one service to another."""

    parent: str
    child: str
    callCount: int  # noqa: N815


class JaegerDependenciesAnswer(JaegerEnvelope):
    """``GET /api/dependencies``: the service graph."""

    data: list[JaegerDependency]
    errors: None


class JaegerErrorAnswer(JaegerEnvelope):
    """Every refusal or failure under the Jaeger routes (400, 401, 404, 405, 500): no data, the reason in
    ``errors``."""

    data: None
    errors: list[JaegerError]
