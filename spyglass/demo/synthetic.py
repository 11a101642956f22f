"""Synthetic traffic as span tables, built with numpy: for sampling benchmarks and tests at scale.

Unlike the demo's real services, this makes hundreds of thousands of traces in a second, with the ground
truth (every trace's duration and error) known exactly, which is what measuring a sampler needs.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from spyglass.model.schema import ATTRIBUTE_TYPES, ATTRIBUTES, EVENT, LINK, SPAN_SCHEMA


def synthetic_traffic(
    rng: np.random.Generator,
    traces: int,
    operations: dict[str, tuple[float, float, float]],
    error_signatures: dict[str, float],
    slow_mode: tuple[str, float, float] | None = None,
    start_ns: int = 1_700_000_000_000_000_000,
) -> pa.Table:
    """Whole traces of two spans (a root and a db child), built with numpy, not one Python call per span.

    ``operations`` maps a root operation to (share of traffic, median ms, lognormal sigma); ``error_signatures``
    maps an error message to the fraction of traces failing with it; ``slow_mode`` = (operation, fraction,
    factor) adds a second latency mode. Columns beyond the span schema: none; ground truth comes from the spans.
    """
    names = list(operations)
    shares = np.array([operations[n][0] for n in names])
    op_index = rng.choice(len(names), size=traces, p=shares / shares.sum())
    medians = np.array([operations[n][1] for n in names])[op_index]
    sigmas = np.array([operations[n][2] for n in names])[op_index]
    duration_ms = medians * np.exp(rng.normal(0.0, sigmas))
    if slow_mode is not None:
        slow_op, fraction, factor = slow_mode
        slow = (op_index == names.index(slow_op)) & (rng.random(traces) < fraction)
        duration_ms[slow] *= factor
    duration = (duration_ms * 1e6).astype(np.int64)
    status = np.zeros(traces, dtype=np.int8)
    message = np.full(traces, None, dtype=object)
    draw = rng.random(traces)
    edge = 0.0
    for text, fraction in error_signatures.items():
        hit = (draw >= edge) & (draw < edge + fraction)
        status[hit] = 2
        message[hit] = text
        edge += fraction
    trace_ids = rng.bytes(16 * traces)
    span_ids = rng.bytes(16 * traces)
    starts = start_ns + np.arange(traces, dtype=np.int64) * 1_000_000
    roots = [span_ids[16 * i : 16 * i + 8] for i in range(traces)]
    children = [span_ids[16 * i + 8 : 16 * i + 16] for i in range(traces)]
    ids = [trace_ids[16 * i : 16 * i + 16] for i in range(traces)]
    empty_map: list[list[tuple[str, str]]] = [[] for _ in range(traces)]
    resource = [[("service.name", "shop"), ("service.version", "1.0")]] * traces + [
        [("service.name", "db"), ("service.version", "9.6")]
    ] * traces
    columns = {
        "trace_id": pa.array(ids + ids, pa.binary(16)),
        "span_id": pa.array(roots + children, pa.binary(8)),
        "parent_span_id": pa.array([None] * traces + roots, pa.binary(8)),
        "trace_state": pa.nulls(2 * traces, pa.string()),
        "service": pa.array(["shop"] * traces + ["db"] * traces),
        "name": pa.array([names[i] for i in op_index] + ["SELECT"] * traces),
        "kind": pa.array(np.concatenate([np.full(traces, 2), np.full(traces, 3)]).astype(np.int8)),
        "start_ns": pa.array(np.concatenate([starts, starts + 1000])),
        "duration_ns": pa.array(np.concatenate([duration, np.maximum(duration - 2000, 1)])),
        "status_code": pa.array(np.concatenate([np.zeros(traces, dtype=np.int8), status])),
        "status_message": pa.array([None] * traces + list(message), pa.string()),
        "attributes": pa.array(empty_map + empty_map, ATTRIBUTES),
        "attribute_types": pa.array(empty_map + empty_map, ATTRIBUTE_TYPES),
        "resource": pa.array(resource, ATTRIBUTES),
        "resource_types": pa.array(empty_map + empty_map, ATTRIBUTE_TYPES),
        "scope_name": pa.nulls(2 * traces, pa.string()),
        "scope_version": pa.nulls(2 * traces, pa.string()),
        "events": pa.array([[]] * (2 * traces), pa.list_(EVENT)),
        "links": pa.array([[]] * (2 * traces), pa.list_(LINK)),
    }
    return pa.table(columns).cast(SPAN_SCHEMA)


def otlp_requests(spans: pa.Table, spans_per_request: int = 1000) -> list[bytes]:
    """The table as OTLP protobuf export requests, one resource per service, as SDKs batch them."""
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans

    bodies = []
    for batch in spans.to_batches(max_chunksize=spans_per_request):
        request = trace_service_pb2.ExportTraceServiceRequest()
        scopes: dict[str, ScopeSpans] = {}
        for row in batch.to_pylist():
            scope = scopes.get(row["service"])
            if scope is None:
                resource_spans = request.resource_spans.add()
                for key, value in row["resource"]:
                    resource_spans.resource.attributes.add(key=key, value=AnyValue(string_value=value))
                if not any(key == "service.name" for key, _ in row["resource"]):
                    resource_spans.resource.attributes.add(
                        key="service.name", value=AnyValue(string_value=row["service"])
                    )
                scope = scopes[row["service"]] = resource_spans.scope_spans.add()
            span = scope.spans.add()
            span.trace_id = row["trace_id"]
            span.span_id = row["span_id"]
            if row["parent_span_id"]:
                span.parent_span_id = row["parent_span_id"]
            span.name = row["name"]
            span.kind = row["kind"]
            span.start_time_unix_nano = row["start_ns"]
            span.end_time_unix_nano = row["start_ns"] + row["duration_ns"]
            span.status.code = row["status_code"]
            if row["status_message"]:
                span.status.message = row["status_message"]
            for key, value in row["attributes"]:
                span.attributes.add(key=key, value=AnyValue(string_value=value))
        bodies.append(request.SerializeToString())
    return bodies
