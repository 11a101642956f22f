"""Shapes shared by many answers: spans, log records, trace summaries, the error answer, and the bases every
model builds on (no undeclared key; a cluster's partial-answer marks on every top-level answer).

A key that an answer sometimes leaves out is typed ``X | MISSING = MISSING``: not required in the schema, and
not nullable unless the code really sends null.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import MISSING, BaseModel, ConfigDict, Field

#: Span kinds as the API names them (OTLP's ``unspecified`` is answered as ``internal``).
SpanKindName = Literal["internal", "server", "client", "producer", "consumer"]
#: Span status codes as the API names them.
StatusName = Literal["unset", "ok", "error"]
#: Attributes or a resource: keys to JSON values typed as sent (string, number, boolean, list, object).
Attributes = dict[str, Any]


class ApiModel(BaseModel):
    """Base of every answer model: a key the model does not declare is an error (``additionalProperties:
    false``), so the document and the code cannot drift apart silently. Subclasses inherit the setting."""

    model_config = ConfigDict(extra="forbid")


class Answer(ApiModel):
    """Base of every top-level answer. In a cluster, an answer that lacks some member's data says so."""

    partial: Literal[True] | MISSING = Field(
        default=MISSING, description="Present (true) only when some cluster member could not be asked"
    )
    missing_peers: list[str] | MISSING = Field(
        default=MISSING, description="With partial: the members (their URLs) whose data is missing"
    )


class ErrorAnswer(Answer):
    """A refusal or failure of a ``/api/v1`` route (400, 401, 404): the reason, naming the bad parameter."""

    error: str


class InstrumentationScope(ApiModel):
    """The instrumentation library that made a span (empty strings when the sender named none)."""

    name: str
    version: str


class SpanEvent(ApiModel):
    """A timestamped event inside a span (an exception, a retry, a cache miss)."""

    name: str
    time_ns: int = Field(description="ns since the epoch")
    attributes: Attributes


class SpanLink(ApiModel):
    """A link from a span to a span of another (or the same) trace."""

    trace_id: str = Field(description="32 lowercase hex characters")
    span_id: str = Field(description="16 lowercase hex characters")
    trace_state: str = Field(description="W3C tracestate of the linked span; empty when none")
    attributes: Attributes


class Span(ApiModel):
    """One span as the API gives it; ids are lowercase hex, times ns since the epoch."""

    trace_id: str = Field(description="32 lowercase hex characters")
    span_id: str = Field(description="16 lowercase hex characters")
    parent_span_id: str | None = Field(description="null at a root")
    service: str
    name: str = Field(description="The operation")
    kind: SpanKindName
    start_ns: int = Field(description="ns since the epoch")
    duration_ns: int = Field(description="ns")
    status: StatusName
    status_message: str = Field(description="Empty when the span has none")
    attributes: Attributes
    resource: Attributes
    scope: InstrumentationScope
    trace_state: str = Field(description="W3C tracestate; empty when none")
    events: list[SpanEvent]
    links: list[SpanLink]


class LogRecord(ApiModel):
    """One stored OTLP log record; only records carrying a trace id are kept."""

    time_ns: int = Field(description="The record's time (else its observed time), ns since the epoch")
    observed_time_ns: int = Field(description="ns since the epoch; 0 when the sender did not set it")
    trace_id: str = Field(description="32 lowercase hex characters")
    span_id: str | None = Field(description="null when the record names its trace but no span")
    severity: str = Field(description="Severity text, else the name of severity_number; empty when neither")
    severity_number: int = Field(description="OTLP SeverityNumber, 0 = unspecified")
    body: str | None = Field(description="Strings as sent, other bodies as JSON text; null when absent")
    attributes: Attributes
    resource: Attributes
    service: str
    scope: str = Field(description="Instrumentation scope name; empty when none")


class TraceSummary(ApiModel):
    """One trace found by a search."""

    trace_id: str = Field(description="32 lowercase hex characters")
    root_service: str | None = Field(description="null when the trace holds no root span (yet)")
    root_operation: str | None = Field(description="null when the trace holds no root span (yet)")
    start_ns: int = Field(description="ns since the epoch")
    duration_ns: int = Field(description="ns")
    span_count: int
    error: bool = Field(description="Whether any span of the trace failed")
    sample_weight: float = Field(description="How many traces this kept trace stands for")
