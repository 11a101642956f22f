"""Realistic OTLP export requests for benchmarks: pre-encoded, so clients spend their time sending."""

from __future__ import annotations

import http.client
import random
import threading
import time
from collections.abc import Callable

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

SERVICES = ["frontend", "checkout", "cart", "inventory", "payments", "shipping"]
ROUTES = ["/", "/product/{id}", "/cart", "/checkout", "/api/orders", "/api/stock"]


def export_request(spans: int, rng: random.Random, now_ns: int, spans_per_trace: int = 10) -> bytes:
    """One ``ExportTraceServiceRequest`` of ``spans`` spans in whole traces, grouped by service as SDKs send."""
    request = trace_service_pb2.ExportTraceServiceRequest()
    scopes = {}
    for service in SERVICES:
        resource_spans = request.resource_spans.add()
        for key, value in (
            ("service.name", service),
            ("service.version", f"1.{rng.randint(0, 3)}.0"),
            ("host.name", f"{service}-{rng.randint(1, 3)}"),
            ("deployment.environment", "prod"),
        ):
            resource_spans.resource.attributes.add(key=key, value=AnyValue(string_value=value))
        scope_spans = resource_spans.scope_spans.add()
        scope_spans.scope.name = "opentelemetry.instrumentation.http"
        scopes[service] = scope_spans
    for _ in range(spans // spans_per_trace):
        trace_id = rng.randbytes(16)
        start = now_ns - rng.randint(0, 5_000_000_000)
        root_id = rng.randbytes(8)
        for index in range(spans_per_trace):
            service = SERVICES[0] if index == 0 else rng.choice(SERVICES[1:])
            span = scopes[service].spans.add()
            span.trace_id = trace_id
            span.span_id = root_id if index == 0 else rng.randbytes(8)
            if index:
                span.parent_span_id = root_id
            span.name = f"GET {rng.choice(ROUTES)}" if index == 0 else f"op-{rng.randint(0, 11)}"
            span.kind = 2 if index == 0 else 3
            span.start_time_unix_nano = start + index * 1_000
            span.end_time_unix_nano = span.start_time_unix_nano + int(rng.lognormvariate(15, 1))
            span.attributes.add(key="http.route", value=AnyValue(string_value=rng.choice(ROUTES)))
            span.attributes.add(key="http.response.status_code", value=AnyValue(int_value=200))
            span.attributes.add(key="customer.id", value=AnyValue(string_value=f"c{rng.randint(1, 5000)}"))
            if rng.random() < 0.02:
                span.status.code = 2
    return request.SerializeToString()


def send_all(bodies: list[bytes], http_ports: list[int], connections: int) -> int:
    """POST every body to ``/v1/traces`` over ``connections`` keep-alive connections spread over the ports,
    retrying each 429 after a tenth of its Retry-After; returns how many times spyglass refused."""
    refused = [0]
    lock = threading.Lock()
    next_request = iter(range(len(bodies)))

    def client(port: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port)
        while True:
            with lock:
                index = next(next_request, None)
            if index is None:
                return
            while True:
                connection.request(
                    "POST",
                    "/v1/traces",
                    body=bodies[index],
                    headers={"Content-Type": "application/x-protobuf"},
                )
                response = connection.getresponse()
                response.read()
                if response.status == 200:
                    break
                with lock:
                    refused[0] += 1
                time.sleep(float(response.getheader("Retry-After", "1")) / 10)

    threads = [
        threading.Thread(target=client, args=(http_ports[i % len(http_ports)],)) for i in range(connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return refused[0]


def ingest_cpu_per_span(bodies: list[bytes], spans_per_body: int, rounds: int = 200) -> float:
    """CPU seconds per span of what every accepted span costs (decode, aggregate, pack into the recall buffer), on
    this thread: the ceiling other background work is compared with."""
    from spyglass.receivers.decoders.otlp_proto import decode_otlp_proto
    from spyglass.satellite.aggregator import Aggregator
    from spyglass.satellite.recall_buffer import RecallBuffer

    aggregator = Aggregator()
    buffer = RecallBuffer(max_bytes=1 << 40)
    started = time.thread_time()
    for index in range(rounds):
        decoded = decode_otlp_proto(bodies[index % len(bodies)]).batch
        aggregator.add(decoded)
        buffer.add(decoded, index)
    return (time.thread_time() - started) / (rounds * spans_per_body)


def ptars_decoder() -> Callable[[bytes], object]:
    """The decode ceiling: ptars alone turning an OTLP trace request into Arrow, flattened to one row per span
    (what any columnar receiver must at least do; spyglass's decoder starts from the same record)."""
    import pyarrow.compute as pc
    from ptars import HandlerPool

    descriptor = trace_service_pb2.ExportTraceServiceRequest.DESCRIPTOR
    handler = HandlerPool([descriptor.file]).get_for_message(descriptor)

    def decode(body: bytes) -> object:
        record = handler.list_to_record_batch([body])
        scopes = pc.list_flatten(record.column(0).flatten().field("scope_spans"))
        return pc.list_flatten(scopes.field("spans"))

    return decode
