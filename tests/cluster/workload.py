"""A mixed workload for cluster tests: several services and operations, errors, attributes, events, links."""

from __future__ import annotations

import random
import time

import pyarrow as pa

from spyglass.cluster.otlp_encoder import encode_otlp_proto
from spyglass.model.builder import SpanBatchBuilder, encode_attributes

SERVICES = ["frontend", "checkout", "cart", "payments"]


def mixed_traces(traces: int, seed: int, start_ns: int | None = None) -> tuple[pa.Table, list[bytes]]:
    """``traces`` whole traces of 2 to 6 spans each, spans of one trace spread over services."""
    rng = random.Random(seed)
    base = start_ns if start_ns is not None else time.time_ns() - 30 * 10**9
    builder = SpanBatchBuilder()
    ids = []
    for t in range(traces):
        trace_id = rng.randbytes(16)
        ids.append(trace_id)
        root = rng.randbytes(8)
        start = base + t * 1_000_000
        for s in range(rng.randint(2, 6)):
            service = SERVICES[0] if s == 0 else rng.choice(SERVICES[1:])
            version = f"1.{rng.randint(0, 2)}"
            error = rng.random() < 0.05
            builder.add(
                trace_id=trace_id,
                span_id=root if s == 0 else rng.randbytes(8),
                parent_span_id=None if s == 0 else root,
                service=service,
                name="GET /home" if s == 0 else rng.choice(["SELECT", "charge", "get_cart"]),
                kind=2 if s == 0 else 3,
                start_ns=start + s * 1000,
                duration_ns=int(rng.lognormvariate(15, 1)),
                status_code=2 if error else 0,
                status_message="boom" if error else None,
                attributes=encode_attributes([("customer.id", f"c{rng.randint(1, 20)}"), ("retries", s)]),
                resource=encode_attributes([("service.name", service), ("service.version", version)]),
                scope_name="tests",
                events=[
                    {"time_ns": start, "name": "hello", "attributes": [("n", "1")], "attribute_types": []}
                ]
                if s == 1
                else [],
            )
    return pa.Table.from_batches([builder.finish()]), ids


def requests(spans: pa.Table, per_request: int) -> list[bytes]:
    """The spans as OTLP protobuf requests of ``per_request`` spans, cut without regard to traces."""
    return [encode_otlp_proto(batch) for batch in spans.to_batches(max_chunksize=per_request)]
