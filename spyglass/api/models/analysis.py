"""Answers that analyze many spans: RED metrics, explain (request, findings, symptom), the critical path of one
kind of request, and two traces or sets compared."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import MISSING, BaseModel, ConfigDict, Field, model_validator

from spyglass.api.models.common import Answer, ApiModel, Attributes, LogRecord

#: Nanoseconds since the epoch in a request body: a non-negative 64-bit integer, given as a JSON integer.
BodyNs = Annotated[int, Field(strict=True, ge=0, le=2**63 - 1, description="ns since the epoch")]
#: What explain explains: a root operation got slower, or fails more.
Signal = Literal["latency", "errors"]
#: What a finding names (``spyglass.analysis.explain.finding.Kind``).
FindingKind = Literal["attribute", "operation", "n_plus_one", "sequential", "error_source"]

# --- GET /api/v1/metrics ---------------------------------------------------------------------------------


class MetricPoint(ApiModel):
    """One step of a RED series: spans starting in ``[start_ns, start_ns + step_s)``."""

    start_ns: int = Field(description="The step's start, ns since the epoch")
    count: int
    errors: int
    p50_ms: float | None = Field(description="null when the step holds no span")
    p90_ms: float | None | MISSING = Field(
        default=MISSING, description="Absent in /api/v1/ui/services series"
    )
    p99_ms: float | None
    max_ms: float | None | MISSING = Field(
        default=MISSING, description="Absent in /api/v1/ui/services series"
    )
    rate_per_s: float = Field(description="count per second of the part of the step that data covers")


class MetricGroup(ApiModel):
    """RED numbers of one group over the whole window."""

    key: str = Field(
        description="The group's value (service, operation, attribute value), or the filter, or all"
    )
    count: int
    errors: int
    p50_ms: float | None = Field(description="null when the group holds no span")
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    rate_per_s: float | MISSING = Field(
        default=MISSING, description="count per second of the time data covers (absent in explain's numbers)"
    )
    series: list[MetricPoint] | MISSING = Field(
        default=MISSING, description="With step_s: one point per step, empty steps included"
    )


class Metrics(Answer):
    """``GET /api/v1/metrics``: RED metrics from the rollups of 100% of spans, busiest group first."""

    groups: list[MetricGroup]
    estimated: bool = Field(
        description="true when grouped by an attribute without rollups: from buffered and weighted stored spans"
    )
    start_ns: int
    end_ns: int
    group_by: str | MISSING = Field(default=MISSING, description="Only when the request grouped")
    step_s: int | MISSING = Field(
        default=MISSING, description="With series: the step used, a whole number of rollup buckets"
    )
    covered_start_ns: int = Field(description="Where data begins in the window, ns since the epoch")
    covered_end_ns: int = Field(description="The window's end, or now if earlier")
    covered_s: float = Field(description="The covered time rates divide by, s (at least 1)")


# --- POST /api/v1/explain --------------------------------------------------------------------------------


class ExplainRequest(BaseModel):
    """What to explain: a root operation, the regression and baseline windows, latency or errors. Keys beyond
    these are ignored."""

    model_config = ConfigDict(extra="ignore")

    service: str = Field(strict=True, min_length=1, description="The root span's service")
    operation: str = Field(strict=True, min_length=1, description="The root span's operation")
    start_ns: BodyNs
    end_ns: BodyNs
    baseline_start_ns: BodyNs
    baseline_end_ns: BodyNs
    signal: Signal = "latency"

    @model_validator(mode="after")
    def windows_are_ordered(self) -> Self:
        if self.start_ns >= self.end_ns:
            raise ValueError("start_ns must be before end_ns")
        if self.baseline_start_ns >= self.baseline_end_ns:
            raise ValueError("baseline_start_ns must be before baseline_end_ns")
        return self


class EvidenceNumbers(ApiModel):
    """A finding's measures in one window. Which keys appear depends on the finding's kind and the signal;
    ``*_with`` / ``*_without``: among the traces (or spans) carrying the finding's value and the others."""

    traces: float | MISSING = Field(default=MISSING, description="Traces with the value (weighted)")
    spans: float | MISSING = Field(default=MISSING, description="Spans that ran at the place (weighted)")
    symptom_share_with: float | None | MISSING = MISSING
    symptom_share_without: float | None | MISSING = MISSING
    share_of_symptom_traces: float | None | MISSING = MISSING
    mean_ms_with: float | None | MISSING = MISSING
    mean_ms_without: float | None | MISSING = MISSING
    error_rate_with: float | None | MISSING = MISSING
    error_rate_without: float | None | MISSING = MISSING
    own_ms_per_request_with: float | None | MISSING = MISSING
    own_ms_per_request_without: float | None | MISSING = MISSING
    ms_per_request_with: float | None | MISSING = MISSING
    ms_per_request_without: float | None | MISSING = MISSING
    share_of_growth: float | None | MISSING = Field(
        default=MISSING, description="Share of the mechanism's growth held by requests with the value"
    )
    ms_with: float | None | MISSING = MISSING
    ms_without: float | None | MISSING = MISSING
    errors_originated_per_span_with: float | None | MISSING = MISSING
    errors_originated_per_span_without: float | None | MISSING = MISSING
    excess_per_trace: float | None | MISSING = Field(
        default=MISSING, description="What the place adds per trace (ms, or errors)"
    )
    own_ms_per_trace: float | None | MISSING = MISSING
    calls_per_trace: float | None | MISSING = MISSING
    errors_per_trace: float | None | MISSING = MISSING
    p50_ms: float | None | MISSING = MISSING
    p99_ms: float | None | MISSING = MISSING
    median_calls_per_parent: float | None | MISSING = MISSING
    max_calls_per_parent: int | MISSING = MISSING
    ms_per_trace: float | None | MISSING = MISSING
    overlapped_ms_per_trace: float | None | MISSING = MISSING
    share_of_calls_with_parallel_children: float | None | MISSING = MISSING
    median_children: float | None | MISSING = MISSING
    failed_traces_originating_here: float | None | MISSING = Field(
        default=MISSING, description="Share of failed traces whose deepest failed span is this operation"
    )


class WindowEvidence(EvidenceNumbers):
    """A finding's measures in one window, with the symptom's own numbers there (so a finding reads alone)."""

    requests: float | None = Field(description="Requests of the symptom in the window (weighted estimate)")
    traces_analyzed: int = Field(description="Traces explain read in the window")
    symptom_share: float | None = Field(description="Share of the requests showing the symptom")
    root_p50_ms: float | None
    root_p99_ms: float | None


class EvidenceSince(ApiModel):
    """The value that switched a mechanism on, with its own numbers."""

    service: str
    key: str
    value: str
    regression: EvidenceNumbers | MISSING = MISSING
    baseline: EvidenceNumbers | MISSING = MISSING


class EvidenceThrough(ApiModel):
    """The operation (or error source) a value's effect works through, with its own numbers."""

    kind: Literal["operation", "error_source"]
    service: str
    operation: str
    regression: EvidenceNumbers | MISSING = MISSING
    baseline: EvidenceNumbers | MISSING = MISSING


class ExactNumbers(ApiModel):
    """For a value of a tracked attribute (version, host, zone...): its counts from 100% of spans."""

    regression: MetricGroup | None = Field(description="null when the value was not seen in the window")
    baseline: MetricGroup | None = Field(description="null when the value was not seen in the window")


class Evidence(ApiModel):
    """The numbers a finding is read with, in the regression and baseline windows and beside them."""

    regression: WindowEvidence
    baseline: WindowEvidence
    slow_threshold_ms: float | None | MISSING = Field(
        default=MISSING,
        description="Latency: a request slower than this (the baseline's p90) shows the symptom",
    )
    compared_with: str | MISSING = Field(
        default=MISSING, description="What the value's traces are set against"
    )
    measured_on: str | MISSING = Field(default=MISSING, description="What the numbers measure")
    services: list[str] | MISSING = Field(
        default=MISSING, description="A place: the services whose spans ran there"
    )
    time_lost_ms_per_trace: float | None | MISSING = Field(
        default=MISSING, description="Sequential: parallel time lost per trace, ms"
    )
    also: list[str] | MISSING = Field(default=MISSING, description="Other names of this same cause")
    since: EvidenceSince | MISSING = MISSING
    through: EvidenceThrough | MISSING = MISSING
    exact: ExactNumbers | MISSING = MISSING


class FindingExamples(ApiModel):
    """Trace ids to open: the regression's showing the finding most, the baseline's to compare with."""

    regression: list[str]
    baseline: list[str]


class FindingEvent(ApiModel):
    """A span event of one of a finding's example traces (events of failed spans and exceptions first)."""

    time_ns: int = Field(description="ns since the epoch")
    trace_id: str
    span_id: str
    service: str
    operation: str
    name: str
    attributes: Attributes


class Finding(ApiModel):
    """One likely cause of the symptom, with the share of the symptom's growth it explains."""

    kind: FindingKind
    score: float = Field(ge=0, le=1, description="Share of the symptom's growth explained, 0 to 1")
    summary: str = Field(description="One sentence")
    service: str
    operation: str | MISSING = Field(default=MISSING, description="Findings naming an operation")
    key: str | MISSING = Field(
        default=MISSING, description="Attribute findings: the attribute or resource key"
    )
    value: str | MISSING = Field(default=MISSING, description="Attribute findings: its value")
    owner: str | None = Field(description="The team owning the service, when its resource names one")
    evidence: Evidence
    examples: FindingExamples
    logs: list[LogRecord] = Field(description="Log records of the regression examples, most severe first")
    events: list[FindingEvent] = Field(description="Span events of the regression examples")


class Symptom(ApiModel):
    """The symptom in numbers from 100% of spans, in both windows."""

    service: str
    operation: str
    regression: MetricGroup
    baseline: MetricGroup


class ExplainResponse(Answer):
    """``POST /api/v1/explain``: findings, most likely cause first (empty when nothing changed), and the
    symptom's numbers."""

    findings: list[Finding]
    symptom: Symptom


# --- GET /api/v1/critical-path ---------------------------------------------------------------------------


class Contribution(ApiModel):
    """One operation's part of the critical path of the analyzed traces."""

    service: str
    operation: str
    share: float = Field(description="Share of all critical-path time that is this operation's (weighted)")
    p50_ms: float = Field(description="Its critical time per trace, over the traces holding it, ms")
    p99_ms: float
    max_speedup: float | None = Field(
        description="Amdahl's bound on the request from making it free, 1 / (1 - share); null when share is 1"
    )


class CriticalPathAnswer(Answer):
    """``GET /api/v1/critical-path``: where the time of one kind of request goes, largest share first."""

    traces: int = Field(description="Traces analyzed")
    contributions: list[Contribution]


# --- GET /api/v1/compare ---------------------------------------------------------------------------------


class CompareSide(ApiModel):
    """One operation's numbers on one side, averaged per trace of that side."""

    calls_per_trace: float
    own_ms_per_trace: float
    errors_per_trace: float


class CompareSet(ApiModel):
    """One side of a comparison."""

    traces: int


class CompareOperation(ApiModel):
    """One operation on both sides; ``difference`` is b minus a."""

    service: str
    operation: str
    a: CompareSide
    b: CompareSide
    difference: CompareSide
    only_in: Literal["a", "b"] | None = Field(description="The side it ran on when only one; else null")


class CompareAttribute(ApiModel):
    """An attribute value carried by a different share of each side's traces."""

    key: str
    value: str
    a: float = Field(description="Share of a's traces carrying it")
    b: float = Field(description="Share of b's traces carrying it")
    difference: float = Field(description="b minus a")


class CompareResponse(Answer):
    """``GET /api/v1/compare``: two traces or two sets side by side, largest differences first."""

    a: CompareSet
    b: CompareSet
    operations: list[CompareOperation]
    attributes: list[CompareAttribute]
