"""OpenTelemetry's consistent probability sampling (OTEP 235) as an OpenTelemetry SDK sampler, for tests of what
spyglass makes of head-sampled traffic. The SDK for Python ships no such sampler; this follows the specification:
a root is kept when the 56 random bits of its trace id are at least the threshold, and writes ``ot=th:`` into the
span's ``tracestate``; children follow their parent and inherit its tracestate."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, get_current_span
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

_RANDOM_BITS = 56
_FULL = 1 << _RANDOM_BITS


def threshold_hex(probability: float) -> str:
    """The ``th`` value for a keep probability: 14 hex digits with trailing zeros dropped ("0" keeps all)."""
    threshold = round((1 - probability) * _FULL)
    return f"{threshold:014x}".rstrip("0") or "0"


class ConsistentProbabilitySampler(Sampler):
    """Keeps a root span with ``probability``, consistently with every other service's threshold."""

    def __init__(self, probability: float) -> None:
        self.probability = probability
        self.threshold = round((1 - probability) * _FULL)
        self.th = threshold_hex(probability)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        parent = get_current_span(parent_context).get_span_context()
        if parent.is_valid:
            decision = Decision.RECORD_AND_SAMPLE if parent.trace_flags.sampled else Decision.DROP
            return SamplingResult(decision, attributes, parent.trace_state)
        if trace_id & (_FULL - 1) < self.threshold:
            return SamplingResult(Decision.DROP, None, trace_state)
        state = (trace_state or TraceState()).add("ot", f"th:{self.th}")
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, state)

    def get_description(self) -> str:
        return f"ConsistentProbabilitySampler{{{self.probability}}}"


class EvenTraceIds(RandomIdGenerator):
    """Trace ids whose 56 random bits step through [0, 2^56) by the golden ratio: any threshold then keeps its
    share of N traces to within one, so a test measures spyglass's weighting, not the luck of the draw."""

    def __init__(self, offset: int = 0) -> None:
        self._i = offset

    def generate_trace_id(self) -> int:
        self._i += 1
        randomness = int(((self._i * 0.6180339887498949) % 1.0) * _FULL)
        return (self._i << 64) | randomness
