"""How many spans each received span stands for, when the service head-sampled before exporting.

OpenTelemetry's consistent probability sampling (OTEP 235) writes the rejection threshold into the span's
``tracestate`` as ``ot=th:T`` (1 to 14 hex digits, trailing zeros dropped): a span was kept when its trace's
56-bit randomness was at least ``T``, so it was kept with probability ``(2^56 - T) / 2^56`` and stands for
``2^56 / (2^56 - T)`` spans. A span without a valid threshold stands for itself. Every aggregate weighs spans by
this count, so a service that head-samples at 10% still shows its true request rate.

A span that asks to be kept whatever the sampling rate (a Zipkin ``debug`` span, a Jaeger debug id, an
OpenTracing ``sampling.priority`` above zero) is *forced*: the sampler keeps its trace.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

_FULL = 1 << 56
#: ``ot=th:`` inside a tracestate list member ``ot=...`` whose sub-keys are separated by ``;``.
_THRESHOLD = r"(?:^|,)[ \t]*ot=(?:[^,]*;)?th:(?P<th>[0-9a-f]{1,14})(?:[;, \t]|$)"
#: A sender cannot make one span count for more than this: a bound on what a hostile tracestate can inflate.
MAX_ADJUSTED_COUNT = float(1 << 32)

Weights = npt.NDArray[np.float64]


def threshold_count(threshold_hex: str) -> float:
    """The adjusted count of one ``th`` value (hex digits, trailing zeros omitted)."""
    threshold = int(threshold_hex.ljust(14, "0"), 16)
    return min(_FULL / (_FULL - threshold), MAX_ADJUSTED_COUNT)


def adjusted_counts(trace_state: pa.Array | pa.ChunkedArray) -> Weights | None:
    """Each span's adjusted count from its ``tracestate``, or None when every span stands for itself (the
    common case, answered without parsing)."""
    if len(trace_state) == 0 or trace_state.null_count == len(trace_state):
        return None
    if isinstance(trace_state, pa.ChunkedArray):
        trace_state = trace_state.combine_chunks()
    if not pc.any(pc.match_substring(trace_state, "th:")).as_py():
        return None
    found = pc.extract_regex(trace_state, _THRESHOLD)
    valid = pc.is_valid(found)
    if not pc.any(valid).as_py():
        return None
    encoded = pc.dictionary_encode(pc.struct_field(found, [0]).filter(valid))
    by_value = np.array([threshold_count(text) for text in encoded.dictionary.to_pylist()], np.float64)
    counts = np.ones(len(trace_state), np.float64)
    counts[np.flatnonzero(valid.to_numpy(zero_copy_only=False))] = by_value[
        encoded.indices.to_numpy(zero_copy_only=False)
    ]
    return counts


def span_weights(trace_state: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Adjusted counts as a float64 column (ones when no span was head-sampled)."""
    counts = adjusted_counts(trace_state)
    return pa.array(np.ones(len(trace_state)) if counts is None else counts, pa.float64())


def whole_counts(counts: Weights, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """Adjusted counts as whole numbers for integer counters, rounded up or down at random in proportion to the
    fraction, so every total stays unbiased (10% and 25% sampling give exact 10 and 4)."""
    floor = np.floor(counts)
    return (floor + (rng.random(counts.size) < counts - floor)).astype(np.int64)


_DEBUG_TRUE = pa.array(["true", "1"])


def forced_traces(spans: pa.Table) -> pa.Array:
    """Trace ids of traces with a span that asks to be kept whatever the sampling rate."""
    attributes = spans.column("attributes")
    zipkin = pc.is_in(pc.map_lookup(attributes, pa.scalar("zipkin.debug"), "first"), value_set=_DEBUG_TRUE)
    jaeger = pc.is_valid(pc.map_lookup(attributes, pa.scalar("jaeger-debug-id"), "first"))
    # OpenTracing's ``sampling.priority``: any number above zero (text that is no number does not count).
    priority = pc.map_lookup(attributes, pa.scalar("sampling.priority"), "first")
    above_zero = pc.and_kleene(
        pc.match_substring_regex(priority, r"^[0-9]+(\.[0-9]*)?$"),
        pc.invert(pc.match_substring_regex(priority, r"^0*(\.0*)?$")),
    )
    forced = pc.or_kleene(pc.or_kleene(zipkin, jaeger), above_zero)
    return pc.unique(spans.column("trace_id").filter(pc.fill_null(forced, False)))
