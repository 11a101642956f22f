"""A 100,000-span batch-job trace built with spyglass's own column builder and fed to a running server's
satellite in chunks, for the big-trace tests of the waterfall and the trace API.

Shape: ``run nightly-batch`` (service batch) -> 50 ``process chunk N`` -> 20 ``fetch page`` (service db) each
-> 99 ``handle <b>record</b> R`` (service worker) each: 1 + 50 + 1,000 + 98,949 spans. Record names carry
markup, which must stay text.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from spyglass.model.builder import SpanBatchBuilder, encode_attributes
from spyglass.model.schema import SpanKind, StatusCode
from tests.conftest import RunningServer

CHUNKS = 50
PAGES_PER_CHUNK = 20
RECORDS_PER_PAGE = 99
SPANS = 1 + CHUNKS * (1 + PAGES_PER_CHUNK * (1 + RECORDS_PER_PAGE))
RECORD_NAME = "handle <b>record</b>"
MS = 1_000_000


@dataclass
class BigTrace:
    trace_id: str
    spans: int


def batch_job(chunk_spans: int = 10_000) -> tuple[bytes, list[pa.RecordBatch]]:
    """The trace's spans as record batches of about ``chunk_spans`` spans, as a receiver would hand them on."""
    trace_id = secrets.token_bytes(16)
    t0 = time.time_ns() - 120 * 10**9
    batches: list[pa.RecordBatch] = []
    builder = SpanBatchBuilder()
    root = secrets.token_bytes(8)
    builder.add(
        trace_id=trace_id,
        span_id=root,
        parent_span_id=None,
        service="batch",
        name="run nightly-batch",
        kind=SpanKind.INTERNAL,
        start_ns=t0,
        duration_ns=CHUNKS * 1_000 * MS,
    )
    n = 1
    for chunk in range(CHUNKS):
        chunk_id, chunk_start = secrets.token_bytes(8), t0 + chunk * 1_000 * MS
        builder.add(
            trace_id=trace_id,
            span_id=chunk_id,
            parent_span_id=root,
            service="batch",
            name=f"process chunk {chunk}",
            kind=SpanKind.INTERNAL,
            start_ns=chunk_start,
            duration_ns=990 * MS,
        )
        for page in range(PAGES_PER_CHUNK):
            page_id, page_start = secrets.token_bytes(8), chunk_start + page * 49 * MS
            builder.add(
                trace_id=trace_id,
                span_id=page_id,
                parent_span_id=chunk_id,
                service="db",
                name="fetch page",
                kind=SpanKind.CLIENT,
                start_ns=page_start,
                duration_ns=48 * MS,
            )
            for record in range(RECORDS_PER_PAGE):
                n += 1
                builder.add(
                    trace_id=trace_id,
                    span_id=secrets.token_bytes(8),
                    parent_span_id=page_id,
                    service="worker",
                    name=f"{RECORD_NAME} {record}",
                    kind=SpanKind.INTERNAL,
                    start_ns=page_start + record * 480_000,
                    duration_ns=400_000,
                    status_code=StatusCode.ERROR if n % 997 == 0 else StatusCode.UNSET,
                    attributes=encode_attributes([("record.id", n), ("note", "<i>x</i>")]),
                )
            n += 1
            if len(builder) >= chunk_spans:
                batches.append(builder.finish())
                builder = SpanBatchBuilder()
        n += 1
    if len(builder):
        batches.append(builder.finish())
    return trace_id, batches


def feed_batch_job(server: RunningServer) -> BigTrace:
    """Hand the trace to the server's satellite chunk by chunk (waiting while its intake is full) and store it."""
    trace_id, batches = batch_job()
    for batch in batches:
        while not server.server.satellite.submit(batch):
            time.sleep(0.05)
    server.flush()
    total = sum(batch.num_rows for batch in batches)
    assert total == SPANS
    return BigTrace(trace_id.hex(), total)


@contextmanager
def server_with_batch_job(directory: Path) -> Iterator[tuple[RunningServer, BigTrace]]:
    """A real server on loopback holding the stored 100,000-span trace, stopped on leaving."""
    from spyglass.server import SpyglassServer, loopback_config

    instance = SpyglassServer(loopback_config(directory, decision_wait_s=0.3))
    ports = instance.start_in_thread()
    try:
        server = RunningServer(instance, ports, directory)
        yield server, feed_batch_job(server)
    finally:
        instance.stop_thread()
