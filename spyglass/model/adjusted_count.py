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

from typing import cast

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from spyglass.model.map_entries import map_entries

_FULL = 1 << 56
#: ``ot=th:`` inside a tracestate list member ``ot=...`` whose sub-keys are separated by ``;``.
_THRESHOLD = r"(?:^|,)[ \t]*ot=(?:[^,]*;)?th:(?P<th>[0-9a-f]{1,14})(?:[;, \t]|$)"
#: A sender cannot make one span count for more than this: a bound on what a hostile tracestate can inflate.
MAX_ADJUSTED_COUNT = float(1 << 32)

Weights = npt.NDArray[np.float64]


def threshold_count(threshold_hex: str) -> float:
    """The adjusted count of one ``th`` value (hex digits, trailing zeros omitted)."""
    return float(_counts_of_thresholds(pa.array([threshold_hex]))[0])


def adjusted_counts(trace_state: pa.Array | pa.ChunkedArray) -> Weights | None:
    """Each span's adjusted count from its ``tracestate``, or None when every span stands for itself (the
    common case, answered without parsing)."""
    if len(trace_state) == 0 or trace_state.null_count == len(trace_state):
        return None
    if isinstance(trace_state, pa.ChunkedArray):
        trace_state = trace_state.combine_chunks()
    if not pc.any(pc.match_substring(trace_state, "th:")).as_py():
        return None
    # A service writes a handful of distinct tracestates: each is parsed once, with no Python step per value
    # (a flood of distinct ones costs a hash and a regex pass, like any other string column).
    encoded = pc.dictionary_encode(trace_state)
    found = pc.extract_regex(encoded.dictionary, _THRESHOLD)
    valid = pc.is_valid(found).to_numpy(zero_copy_only=False)
    by_value = np.ones(len(encoded.dictionary), np.float64)
    if valid.any():
        thresholds = pc.struct_field(found, [0]).filter(pa.array(valid))
        by_value[valid] = _counts_of_thresholds(thresholds)
    counts = by_value[pc.fill_null(encoded.indices, 0).to_numpy(zero_copy_only=False)]
    counts[trace_state.is_null().to_numpy(zero_copy_only=False)] = 1.0
    return cast(Weights, counts)


_NIBBLE = np.zeros(256, np.uint64)
_NIBBLE[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16, dtype=np.uint64)
_PLACES = np.uint64(16) ** np.arange(13, -1, -1, dtype=np.uint64)


def _counts_of_thresholds(thresholds: pa.Array) -> Weights:
    """Adjusted counts of ``th`` values (1-14 lowercase hex digits), all at once: right-padded with zeros to 14
    digits, read as 56-bit integers."""
    padded = pc.utf8_rpad(thresholds, width=14, padding="0")
    offsets = np.frombuffer(padded.buffers()[1], np.int32)[padded.offset : padded.offset + len(padded) + 1]
    digits = np.frombuffer(padded.buffers()[2], np.uint8)[offsets[0] : offsets[-1]].reshape(-1, 14)
    threshold = (_NIBBLE[digits] * _PLACES).sum(axis=1, dtype=np.uint64)
    room = (np.uint64(_FULL) - threshold).astype(np.float64)
    return cast(Weights, np.minimum(float(_FULL) / room, MAX_ADJUSTED_COUNT))


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
#: The attributes that ask for a trace to be kept: Zipkin's debug flag, Jaeger's debug id, OpenTracing's
#: ``sampling.priority``.
_DEBUG_KEYS = pa.array(["zipkin.debug", "jaeger-debug-id", "sampling.priority"])


def forced_traces(spans: pa.Table) -> pa.Array:
    """Trace ids of traces with a span that asks to be kept whatever the sampling rate."""
    rows, keys, values = map_entries(spans.column("attributes"), _DEBUG_KEYS)
    if len(rows) == 0:  # as almost always: one pass over the keys, nothing more
        return pa.array([], spans.schema.field("trace_id").type)
    # A key repeated in one map counts by its first value, as a lookup of the map reads it.
    _, first = np.unique(rows * len(_DEBUG_KEYS) + keys, return_index=True)
    rows, keys, values = rows[first], keys[first], values.take(pa.array(first))
    zipkin = (keys == 0) & pc.is_in(values, value_set=_DEBUG_TRUE).to_numpy(zero_copy_only=False)
    jaeger = keys == 1
    # Any number above zero (text that is no number does not count).
    above_zero = pc.and_(
        pc.match_substring_regex(values, r"^[0-9]+(\.[0-9]*)?$"),
        pc.invert(pc.match_substring_regex(values, r"^0*(\.0*)?$")),
    ).to_numpy(zero_copy_only=False)
    forced = zipkin | jaeger | ((keys == 2) & above_zero)
    return pc.unique(spans.column("trace_id").take(pa.array(rows[forced])).combine_chunks())
