"""One span per id: the server half of a shared span (B3 "join") under the client half, its children under it."""

from __future__ import annotations

import pyarrow as pa

from spyglass.model.builder import SpanBatchBuilder
from spyglass.model.schema import SpanKind
from spyglass.model.shared_spans import separate_shared_spans, server_half_id

TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
OTHER_TRACE = bytes.fromhex("0000000000000000d269b633813fc60c")
ROOT = bytes.fromhex("00000000000000a1")
SHARED = bytes.fromhex("eee19b7ec3c1b174")
CHILD = bytes.fromhex("00000000000000c1")
START_NS = 1_700_000_000_000_000_000

Span = tuple[bytes, bytes, bytes | None, str, SpanKind]


def table(*spans: Span, chunks: int = 1) -> pa.Table:
    """Spans ``(trace_id, span_id, parent_span_id, service, kind)``, in ``chunks`` record batches."""
    batches = []
    per_chunk = -(-len(spans) // chunks)
    for first in range(0, len(spans), per_chunk):
        builder = SpanBatchBuilder()
        for trace_id, span_id, parent, service, kind in spans[first : first + per_chunk]:
            builder.add(
                trace_id=trace_id,
                span_id=span_id,
                parent_span_id=parent,
                service=service,
                name="op",
                kind=int(kind),
                start_ns=START_NS,
                duration_ns=1_000,
            )
        batches.append(builder.finish())
    return pa.Table.from_batches(batches)


def tree(spans: pa.Table) -> list[tuple[bytes, bytes | None, str]]:
    return [(r["span_id"], r["parent_span_id"], r["service"]) for r in spans.to_pylist()]


def test_a_trace_without_shared_ids_is_returned_as_it_is() -> None:
    spans = table(
        (TRACE, ROOT, None, "frontend", SpanKind.SERVER),
        (TRACE, SHARED, ROOT, "frontend", SpanKind.CLIENT),
        (TRACE, CHILD, SHARED, "backend", SpanKind.SERVER),
    )
    assert separate_shared_spans(spans) is spans
    assert separate_shared_spans(spans.slice(0, 0)).num_rows == 0


def test_children_of_a_marked_server_half_move_under_it() -> None:
    """As the Zipkin decoder leaves them: the server half already has its own id and the client half as its
    parent, but its children still name the shared id. Those in the server's service move under the server
    half; a span of another service naming the shared id stays under the client half."""
    half = server_half_id(SHARED)
    spans = table(
        (TRACE, CHILD, SHARED, "backend", SpanKind.INTERNAL),  # reported before its server half
        (TRACE, ROOT, None, "frontend", SpanKind.INTERNAL),
        (TRACE, SHARED, ROOT, "frontend", SpanKind.CLIENT),
        (TRACE, half, SHARED, "backend", SpanKind.SERVER),
        (TRACE, bytes.fromhex("00000000000000c2"), SHARED, "frontend", SpanKind.INTERNAL),
        chunks=2,
    )
    assert tree(separate_shared_spans(spans)) == [
        (CHILD, half, "backend"),
        (ROOT, None, "frontend"),
        (SHARED, ROOT, "frontend"),
        (half, SHARED, "backend"),
        (bytes.fromhex("00000000000000c2"), SHARED, "frontend"),
    ]


def test_unmarked_halves_sharing_the_client_id_are_separated() -> None:
    """A Zipkin join relayed as OTLP (a Collector's Zipkin receiver keeps both halves under one id): the SERVER
    span sharing a CLIENT span's id in the same trace is given the derived id, as the decoder would have."""
    half = server_half_id(SHARED)
    spans = table(
        (TRACE, ROOT, None, "frontend", SpanKind.SERVER),
        (TRACE, SHARED, ROOT, "frontend", SpanKind.CLIENT),
        (TRACE, SHARED, ROOT, "backend", SpanKind.SERVER),
        (TRACE, CHILD, SHARED, "backend", SpanKind.CLIENT),
    )
    separated = separate_shared_spans(spans)
    assert tree(separated) == [
        (ROOT, None, "frontend"),
        (SHARED, ROOT, "frontend"),
        (half, SHARED, "backend"),
        (CHILD, half, "backend"),
    ]
    assert separate_shared_spans(separated) is separated  # nothing left to do: the same on every read


def test_a_root_client_half_gives_its_server_half_a_parent() -> None:
    half = server_half_id(SHARED)
    spans = table(
        (TRACE, SHARED, None, "browser", SpanKind.CLIENT),
        (TRACE, SHARED, None, "api", SpanKind.SERVER),
    )
    assert tree(separate_shared_spans(spans)) == [(SHARED, None, "browser"), (half, SHARED, "api")]


def test_ids_shared_across_traces_or_between_other_kinds_are_left_alone() -> None:
    spans = table(
        (TRACE, SHARED, ROOT, "frontend", SpanKind.CLIENT),
        (OTHER_TRACE, SHARED, ROOT, "backend", SpanKind.SERVER),  # the same id in another trace
        (TRACE, CHILD, None, "a", SpanKind.SERVER),
        (TRACE, CHILD, None, "a", SpanKind.SERVER),  # a retried export: the same span twice
        (TRACE, ROOT, None, "a", SpanKind.PRODUCER),
        (TRACE, ROOT, None, "b", SpanKind.CONSUMER),
    )
    assert separate_shared_spans(spans) is spans


def test_the_server_half_id_is_a_fixed_function_of_the_shared_id() -> None:
    assert server_half_id(SHARED) == server_half_id(bytes(SHARED))
    assert server_half_id(SHARED) != SHARED and len(server_half_id(SHARED)) == 8
    ids = {server_half_id(i.to_bytes(8, "big")) for i in range(1, 10_000)}
    assert len(ids) == 9_999 and bytes(8) not in ids
