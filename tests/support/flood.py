"""A flood of exports far above what spyglass can take, from several processes, over OTLP/HTTP and OTLP/gRPC,
while a prober asks the query API what a person would during an incident.

Every sender sends the same pre-encoded body again and again with fresh trace ids (the 8-byte prefix all its
trace ids share is replaced on each send, one ``bytes.replace``), so senders spend their time sending, and every
acknowledged span is a new span of a new trace. A sender that is refused waits what ``Retry-After`` (or gRPC's
``RetryInfo``) says, as the OpenTelemetry exporters do, then sends its next export.

Used by ``tests/e2e/test_flood.py`` and ``bench/flood.py``.
"""

from __future__ import annotations

import http.client
import multiprocessing
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import numpy as np
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

SERVICES = ["frontend", "checkout", "cart", "inventory", "payments"]
EXPORT_PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def export_template(spans: int, prefix: bytes, spans_per_trace: int = 10) -> bytes:
    """One export of ``spans`` spans in whole traces whose ids all start with the 8 bytes ``prefix``."""
    now_ns = time.time_ns()
    request = trace_service_pb2.ExportTraceServiceRequest()
    scopes = {}
    for service in SERVICES:
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.add(key="service.name", value=AnyValue(string_value=service))
        resource_spans.resource.attributes.add(key="host.name", value=AnyValue(string_value=f"{service}-1"))
        scopes[service] = resource_spans.scope_spans.add()
    rng = np.random.default_rng(int.from_bytes(prefix, "big") % 2**32)
    for trace in range(spans // spans_per_trace):
        trace_id = prefix + trace.to_bytes(8, "big")
        root_id = rng.bytes(8)
        for index in range(spans_per_trace):
            span = scopes[SERVICES[0] if index == 0 else SERVICES[1 + index % 4]].spans.add()
            span.trace_id = trace_id
            span.span_id = root_id if index == 0 else rng.bytes(8)
            if index:
                span.parent_span_id = root_id
            span.name = "GET /flood" if index == 0 else f"op-{index}"
            span.kind = 2 if index == 0 else 3
            span.start_time_unix_nano = now_ns - 1_000_000_000 + index * 1_000
            span.end_time_unix_nano = span.start_time_unix_nano + int(rng.integers(100_000, 5_000_000))
            span.attributes.add(key="customer.id", value=AnyValue(string_value=f"c{rng.integers(1000)}"))
    return cast(bytes, request.SerializeToString())


@dataclass
class SenderResult:
    """What one sender saw: per export, when it started (s since the flood began), how long its answer took,
    and how it was answered ("ok", "refused", or anything else, which is a failure)."""

    protocol: str
    started_s: list[float] = field(default_factory=list)
    latency_s: list[float] = field(default_factory=list)
    outcome: list[str] = field(default_factory=list)
    acked_trace_ids: list[bytes] = field(default_factory=list)
    retry_advice: set[str] = field(default_factory=set)


def _http_sender(port: int, template: bytes, prefix: bytes, t0: float, until: float) -> SenderResult:
    result = SenderResult("http")
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/x-protobuf"}
    while time.time() < until:
        nonce = os.urandom(8)
        started = time.time()
        try:
            connection.request("POST", "/v1/traces", body=template.replace(prefix, nonce), headers=headers)
            response = connection.getresponse()
            response.read()
            status = response.status
        except OSError as error:
            status, connection = -1, http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            result.retry_advice.add(f"error {error!r}")
        result.started_s.append(started - t0)
        result.latency_s.append(time.time() - started)
        if status == 200:
            result.outcome.append("ok")
            result.acked_trace_ids.append(nonce)
        elif status == 429:
            result.outcome.append("refused")
            advice = response.getheader("Retry-After") or ""
            result.retry_advice.add(advice)
            time.sleep(float(advice) if advice.isdigit() else 1.0)
        else:
            result.outcome.append(f"status {status}")
            time.sleep(0.1)
    return result


def _grpc_sender(address: str, template: bytes, prefix: bytes, t0: float, until: float) -> SenderResult:
    import grpc
    from google.rpc.error_details_pb2 import RetryInfo

    result = SenderResult("grpc")
    with grpc.insecure_channel(address) as channel:
        export = channel.unary_unary(
            EXPORT_PATH, request_serializer=lambda b: b, response_deserializer=lambda b: b
        )
        while time.time() < until:
            nonce = os.urandom(8)
            started = time.time()
            try:
                export(template.replace(prefix, nonce), timeout=30)
                outcome = "ok"
            except grpc.RpcError as error:
                code = error.code()
                outcome = "refused" if code == grpc.StatusCode.RESOURCE_EXHAUSTED else f"grpc {code}"
                trailing = dict(error.trailing_metadata() or ())
                delay_s = 0.1
                if "google.rpc.retryinfo-bin" in trailing:
                    delay = RetryInfo.FromString(trailing["google.rpc.retryinfo-bin"]).retry_delay
                    delay_s = delay.seconds + delay.nanos / 1e9
                    result.retry_advice.add(f"RetryInfo {delay_s:g}s")
            result.started_s.append(started - t0)
            result.latency_s.append(time.time() - started)
            result.outcome.append(outcome)
            if outcome == "ok":
                result.acked_trace_ids.append(nonce)
            else:
                time.sleep(delay_s)
    return result


def _sender_process(
    protocol: str, target: str, threads: int, spans: int, t0: float, until: float, out: Any
) -> None:
    """One sender process: ``threads`` senders (each its own body and connection), results to ``out``.

    Senders run at a lower priority: they stand for services on other machines, and on a machine shared with
    spyglass they must not take the cores its query API needs for themselves."""
    os.nice(10)
    results: list[SenderResult] = []
    lock = threading.Lock()

    def run() -> None:
        prefix = os.urandom(8)
        template = export_template(spans, prefix)
        if protocol == "http":
            sent = _http_sender(int(target), template, prefix, t0, until)
        else:
            sent = _grpc_sender(target, template, prefix, t0, until)
        with lock:
            results.append(sent)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.put(results)


@dataclass
class FloodReport:
    """What a flood offered and got, and how the query API answered meanwhile."""

    duration_s: float
    spans_per_export: int
    senders: list[SenderResult]
    query_latency_s: list[float]
    query_failures: list[str]
    query_paths: list[str] = field(default_factory=list)

    def exports(self, outcome: str | None = None) -> int:
        return sum(sum(1 for o in s.outcome if outcome is None or o == outcome) for s in self.senders)

    def failures(self) -> list[str]:
        return [o for s in self.senders for o in s.outcome if o not in ("ok", "refused")]

    def acked_spans(self) -> int:
        return self.exports("ok") * self.spans_per_export

    def export_latencies(self) -> np.ndarray:
        return np.array([x for s in self.senders for x in s.latency_s])

    def acked_trace_ids(self, spans_per_trace: int = 10) -> list[bytes]:
        """Every trace id of every acknowledged export."""
        traces = self.spans_per_export // spans_per_trace
        return [
            nonce + t.to_bytes(8, "big")
            for s in self.senders
            for nonce in s.acked_trace_ids
            for t in range(traces)
        ]

    def summary(self) -> dict[str, float]:
        latencies = self.export_latencies()
        queries = np.array(self.query_latency_s)
        by_protocol = {p: [s for s in self.senders if s.protocol == p] for p in ("http", "grpc")}
        figures: dict[str, float] = {
            "offered spans/s": self.exports() * self.spans_per_export / self.duration_s,
            "accepted spans/s": self.acked_spans() / self.duration_s,
            "refused spans/s": self.exports("refused") * self.spans_per_export / self.duration_s,
            "exports": self.exports(),
            "refused exports": self.exports("refused"),
            "failed exports": len(self.failures()),
            "export answer p50 ms": float(np.percentile(latencies, 50) * 1000) if len(latencies) else 0.0,
            "export answer p99 ms": float(np.percentile(latencies, 99) * 1000) if len(latencies) else 0.0,
            "export answer max ms": float(latencies.max() * 1000) if len(latencies) else 0.0,
            "queries": len(queries),
            "query p50 ms": float(np.percentile(queries, 50) * 1000) if len(queries) else 0.0,
            "query p99 ms": float(np.percentile(queries, 99) * 1000) if len(queries) else 0.0,
            "query max ms": float(queries.max() * 1000) if len(queries) else 0.0,
        }
        for path in sorted(set(self.query_paths)):
            asked = [x for x, p in zip(self.query_latency_s, self.query_paths, strict=True) if p == path]
            kind = "trace" if path.startswith("/api/v1/traces/") else path
            figures[f"query max ms {kind}"] = max(max(asked) * 1000, figures.get(f"query max ms {kind}", 0.0))
        for protocol, senders in by_protocol.items():
            answers = [x for s in senders for x in s.latency_s]
            if answers:
                figures[f"{protocol} answer max ms"] = max(answers) * 1000
                figures[f"{protocol} accepted exports"] = sum(s.outcome.count("ok") for s in senders)
                figures[f"{protocol} refused exports"] = sum(s.outcome.count("refused") for s in senders)
        return figures


def _probe_queries(
    api: str, until: float, latencies: list[float], failures: list[str], paths_asked: list[str]
) -> None:
    """Ask what a person asks during an incident, every 50 ms: services, a search, metrics, a trace."""
    paths = [
        "/api/v1/services",
        "/api/v1/traces?service=frontend&limit=20",
        "/api/v1/metrics?service=frontend",
    ]
    trace_path: str | None = None
    with httpx.Client(base_url=api, timeout=30) as client:
        step = 0
        while time.time() < until:
            path = trace_path if trace_path and step % 4 == 3 else paths[step % len(paths)]
            step += 1
            started = time.perf_counter()
            paths_asked.append(path.split("?")[0] if path.startswith("/api/v1/traces/") else path)
            try:
                response = client.get(path)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    failures.append(f"{path}: {response.status_code}")
                elif path.startswith("/api/v1/traces?"):
                    traces = response.json()["traces"]
                    if traces:
                        trace_path = f"/api/v1/traces/{traces[0]['trace_id']}"
            except httpx.HTTPError as error:
                latencies.append(time.perf_counter() - started)
                failures.append(f"{path}: {error!r}")
            time.sleep(0.05)


def flood(
    api: str,
    otlp_http_port: int,
    otlp_grpc: str,
    duration_s: float,
    http_processes: int = 3,
    grpc_processes: int = 3,
    threads_per_process: int = 16,
    spans_per_export: int = 1000,
) -> FloodReport:
    """Flood for ``duration_s`` seconds and report; the senders run in processes of their own."""
    context = multiprocessing.get_context("spawn")
    out: Any = context.Queue()
    start_at = time.time() + 3.0  # spawned interpreters need a moment to start
    until = start_at + duration_s
    processes = [
        context.Process(
            target=_sender_process,
            args=(protocol, target, threads_per_process, spans_per_export, start_at, until, out),
        )
        for protocol, target, count in (
            ("http", str(otlp_http_port), http_processes),
            ("grpc", otlp_grpc, grpc_processes),
        )
        for _ in range(count)
    ]
    for process in processes:
        process.start()
    query_latency: list[float] = []
    query_failures: list[str] = []
    query_paths: list[str] = []
    time.sleep(max(0.0, start_at - time.time()))
    _probe_queries(api, until, query_latency, query_failures, query_paths)
    senders: list[SenderResult] = []
    for _ in processes:
        try:
            senders.extend(out.get(timeout=duration_s + 120))
        except queue.Empty:
            break
    for process in processes:
        process.join(timeout=30)
        if process.is_alive():  # a sender left running would load the machine for the tests after this one
            process.kill()
            process.join(timeout=10)
    return FloodReport(duration_s, spans_per_export, senders, query_latency, query_failures, query_paths)
