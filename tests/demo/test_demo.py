"""The demo shop against a tiny real OTLP/HTTP receiver on loopback: real services, real exporters, real spans."""

from __future__ import annotations

import gzip
import socket
import statistics
import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from spyglass.alerting.slo_catalog import read_slo_file
from spyglass.demo import SLOS_FILE
from spyglass.demo.runner import run_demo
from spyglass.demo.scenarios import SCENARIOS, Scenario

SERVER, CLIENT, PRODUCER, CONSUMER = (
    ProtoSpan.SPAN_KIND_SERVER,
    ProtoSpan.SPAN_KIND_CLIENT,
    ProtoSpan.SPAN_KIND_PRODUCER,
    ProtoSpan.SPAN_KIND_CONSUMER,
)
STATUS_ERROR = 2


def python_value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [python_value(item) for item in value.array_value.values]
    return getattr(value, which) if which else None


@dataclass
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: int
    start_ns: int
    end_ns: int
    status_code: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    links: list[tuple[str, str]]

    @property
    def service(self) -> str:
        return str(self.resource["service.name"])

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


@dataclass
class Collector:
    """Records every span POSTed to it as OTLP/HTTP protobuf."""

    spans: list[ReceivedSpan] = field(default_factory=list)
    authorizations: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    endpoint: str = ""

    def add(self, request: ExportTraceServiceRequest) -> None:
        received = []
        for resource_spans in request.resource_spans:
            resource = {kv.key: python_value(kv.value) for kv in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        ReceivedSpan(
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex() or None,
                            name=span.name,
                            kind=span.kind,
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            status_code=span.status.code,
                            attributes={kv.key: python_value(kv.value) for kv in span.attributes},
                            resource=resource,
                            events=[
                                (event.name, {kv.key: python_value(kv.value) for kv in event.attributes})
                                for event in span.events
                            ],
                            links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
                        )
                    )
        with self.lock:
            self.spans.extend(received)

    def take(self) -> list[ReceivedSpan]:
        with self.lock:
            spans, self.spans = self.spans, []
        return spans


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    recorded = Collector()

    class Receiver(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.path != "/v1/traces":
                self._reply(404, b"")
                return
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            recorded.authorizations.add(self.headers.get("Authorization", ""))
            recorded.add(request)
            self._reply(200, ExportTraceServiceResponse().SerializeToString())

        def _reply(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    recorded.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    yield recorded
    server.shutdown()
    server.server_close()


def by_trace(spans: list[ReceivedSpan]) -> dict[str, list[ReceivedSpan]]:
    traces: dict[str, list[ReceivedSpan]] = defaultdict(list)
    for span in spans:
        traces[span.trace_id].append(span)
    return traces


def children(spans: list[ReceivedSpan], parent: ReceivedSpan) -> list[ReceivedSpan]:
    return [span for span in spans if span.parent_span_id == parent.span_id]


@pytest.fixture(scope="module")
def healthy(collector: Collector) -> tuple[Any, list[ReceivedSpan]]:
    collector.take()
    stats = run_demo(collector.endpoint, duration_s=3.0, rate_per_s=20.0, seed=7)
    return stats, collector.take()


def test_healthy_run_sends_traffic_and_exports_every_span(healthy: tuple[Any, list[ReceivedSpan]]) -> None:
    stats, spans = healthy
    assert stats.scenario == "healthy"
    assert stats.fault_started_ns is None
    assert stats.requests_sent >= 30
    assert stats.started_ns < stats.ended_ns
    assert stats.spans_failed_export == 0
    assert stats.spans_exported == len(spans) > 300


def test_the_demo_slos_parse_and_watch_root_operations_the_shop_serves(
    healthy: tuple[Any, list[ReceivedSpan]],
) -> None:
    slos = read_slo_file(SLOS_FILE)
    assert {slo.kind for slo in slos} == {"latency", "errors"}
    _, spans = healthy
    roots = {(s.service, s.name) for s in spans if s.parent_span_id is None and s.kind == SERVER}
    for slo in slos:
        assert (slo.service, slo.operation) in roots, (slo.id, sorted(roots))


def test_services_carry_their_resource(healthy: tuple[Any, list[ReceivedSpan]]) -> None:
    _, spans = healthy
    services = {span.service for span in spans}
    assert {"frontend", "cart", "inventory", "checkout", "payments", "email"} <= services
    assert "fraud-api" not in services  # uninstrumented: only its callers' CLIENT spans show it
    for span in spans:
        for key in ("service.version", "service.namespace", "host.name", "cloud.availability_zone"):
            assert span.resource.get(key), (span.service, key)
        assert span.resource["deployment.environment"] == "production"
    hosts: dict[str, set[str]] = defaultdict(set)
    for span in spans:
        hosts[span.service].add(span.resource["host.name"])
    assert len(hosts["frontend"]) == 2 and len(hosts["cart"]) == 3 and len(hosts["inventory"]) == 3
    namespaces = {span.service: span.resource["service.namespace"] for span in spans}
    assert namespaces["payments"] == "payments-team" and namespaces["frontend"] == "shop-web"


def test_trace_context_crosses_every_http_hop(healthy: tuple[Any, list[ReceivedSpan]]) -> None:
    _, spans = healthy
    by_id = {span.span_id: span for span in spans}
    remote_servers = [span for span in spans if span.kind == SERVER and span.parent_span_id]
    assert len(remote_servers) > 50
    for server in remote_servers:
        client = by_id[server.parent_span_id or ""]
        assert client.kind == CLIENT and client.trace_id == server.trace_id
        assert client.service != server.service
        assert client.attributes["peer.service"] == server.service
        assert client.start_ns <= server.start_ns
    roots = [span for span in spans if span.parent_span_id is None]
    assert {root.service for root in roots} == {"frontend", "email"}
    widest = max(len({span.service for span in trace}) for trace in by_trace(spans).values())
    assert widest >= 5  # a checkout: frontend, checkout, cart, inventory, payments
    assert 2.0 < statistics.median(root.duration_ms for root in roots) < 80.0


def test_spans_have_realistic_content(healthy: tuple[Any, list[ReceivedSpan]]) -> None:
    _, spans = healthy
    frontend_roots = [span for span in spans if span.service == "frontend" and span.parent_span_id is None]
    assert {root.name for root in frontend_roots} >= {
        "GET /",
        "GET /product/{id}",
        "POST /cart",
        "POST /checkout",
    }
    for root in frontend_roots:
        assert root.attributes["customer.id"].startswith("cust-")
        assert root.attributes["enduser.id"].startswith(root.attributes["customer.id"])
        assert isinstance(root.attributes["http.response.status_code"], int)
        assert root.attributes["http.route"] == root.name.split(" ", 1)[1]
    db_spans = [span for span in spans if "db.system" in span.attributes]
    assert {span.attributes["db.system"] for span in db_spans} == {"postgresql", "redis"}
    assert all(span.kind == CLIENT and span.attributes["db.statement"] for span in db_spans)
    fraud_calls = [span for span in spans if span.attributes.get("peer.service") == "fraud-api"]
    assert fraud_calls and all(span.kind == CLIENT and span.service == "payments" for span in fraud_calls)
    assert any(name == "cache miss" for span in spans for name, _ in span.events)
    values = [value for span in spans for value in span.attributes.values()]
    assert any(isinstance(value, bool) for value in values)
    assert any(isinstance(value, int) and not isinstance(value, bool) for value in values)
    assert any(isinstance(value, float) for value in values)
    assert any(isinstance(value, list) and value and isinstance(value[0], str) for value in values)
    # Client errors (404 stale product links, 409 out of stock) mark the calling CLIENT span as an error.
    stats = healthy[0]
    failed_responses = sum(count for status, count in stats.responses_by_status.items() if status >= 400)
    assert failed_responses == 0 or any(span.status_code == STATUS_ERROR for span in spans)


def test_frontend_calls_run_in_parallel_and_checkout_in_sequence(
    healthy: tuple[Any, list[ReceivedSpan]],
) -> None:
    _, spans = healthy
    overlapping = 0
    for trace in by_trace(spans).values():
        for root in (
            span for span in trace if span.name == "GET /product/{id}" and span.parent_span_id is None
        ):
            calls = sorted((c for c in children(trace, root) if c.kind == CLIENT), key=lambda c: c.start_ns)
            if len(calls) == 2 and calls[1].start_ns < calls[0].end_ns:
                overlapping += 1
    assert overlapping > 0
    checkouts = [span for span in spans if span.service == "checkout" and span.kind == SERVER]
    assert checkouts
    for checkout in checkouts:
        trace = by_trace(spans)[checkout.trace_id]
        steps = sorted(children(trace, checkout), key=lambda c: c.start_ns)
        assert all(earlier.end_ns <= later.start_ns for earlier, later in zip(steps, steps[1:], strict=False))


def test_async_email_is_a_new_trace_linked_to_the_checkout(healthy: tuple[Any, list[ReceivedSpan]]) -> None:
    _, spans = healthy
    by_id = {(span.trace_id, span.span_id): span for span in spans}
    consumers = [span for span in spans if span.kind == CONSUMER]
    assert consumers
    for consumer in consumers:
        assert consumer.service == "email" and consumer.parent_span_id is None
        (link,) = consumer.links
        producer = by_id[link]
        assert producer.kind == PRODUCER and producer.service == "checkout"
        assert producer.trace_id != consumer.trace_id


def run_fault(collector: Collector, scenario: str, **options: Any) -> tuple[Any, list[ReceivedSpan]]:
    collector.take()
    collector.authorizations.clear()
    stats = run_demo(
        collector.endpoint,
        duration_s=4.0,
        scenario=scenario,
        rate_per_s=40.0,
        baseline_s=1.0,
        seed=11,
        **options,
    )
    assert stats.fault_started_ns is not None
    return stats, collector.take()


def test_n_plus_one_fault_repeats_the_price_query_per_item(collector: Collector) -> None:
    stats, spans = run_fault(collector, "n-plus-one")
    traces = by_trace(spans)
    after = []
    for checkout in (span for span in spans if span.service == "checkout" and span.kind == SERVER):
        queries = [c for c in children(traces[checkout.trace_id], checkout) if c.name == "SELECT products"]
        if checkout.end_ns < stats.fault_started_ns:
            assert len(queries) == 1
        elif checkout.start_ns > stats.fault_started_ns:
            assert len(queries) == checkout.attributes["cart.items"] >= 20
            after.append(checkout)
    assert after


def test_zone_errors_fault_fails_payments_in_one_zone(collector: Collector) -> None:
    stats, spans = run_fault(collector, "zone-errors", ingest_token="s3cret")
    assert collector.authorizations == {"Bearer s3cret"}
    failed = [span for span in spans if span.service == "payments" and span.status_code == STATUS_ERROR]
    assert failed
    for span in failed:
        # A request already in payments when the fault switched on fails too: it checks the fault as it works.
        assert span.end_ns >= stats.fault_started_ns
        assert span.resource["cloud.availability_zone"] == "us-east-1c"
        if span.kind == SERVER:
            assert span.attributes["http.response.status_code"] == 503
        exceptions = [attributes for name, attributes in span.events if name == "exception"]
        assert exceptions and exceptions[0]["exception.type"] == "gateway.errors.ServiceUnavailable"
    assert {span.name for span in failed} == {"POST /charge", "authorize card"}
    assert stats.errors > 0
    failed_roots = [s for s in spans if s.parent_span_id is None and s.status_code == STATUS_ERROR]
    assert failed_roots and {root.name for root in failed_roots} == {"POST /checkout"}


def test_slow_version_fault_redeploys_and_slows_the_stock_query(collector: Collector) -> None:
    stats, spans = run_fault(collector, "slow-version")
    stock_queries = [span for span in spans if span.name == "SELECT stock"]
    versions = {span.resource["service.version"] for span in stock_queries}
    assert versions == {"2.3.1", "2.4.0"}
    slow = [span.duration_ms for span in stock_queries if span.resource["service.version"] == "2.4.0"]
    fast = [span.duration_ms for span in stock_queries if span.resource["service.version"] == "2.3.1"]
    assert all(
        span.start_ns >= stats.fault_started_ns
        for span in stock_queries
        if span.resource["service.version"] == "2.4.0"
    )
    assert statistics.median(slow) > 3 * statistics.median(fast)
    upgraded = {
        span.resource["host.name"] for span in stock_queries if span.resource["service.version"] == "2.4.0"
    }
    assert upgraded == {"inventory-2", "inventory-3"}


def test_demo_keeps_going_when_spyglass_is_not_running() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    stats = run_demo(f"http://127.0.0.1:{closed_port}", duration_s=1.5, rate_per_s=20.0)
    assert stats.requests_sent > 5
    assert stats.spans_exported == 0 and stats.spans_failed_export > 0


def test_every_scenario_is_described() -> None:
    assert set(SCENARIOS) >= {
        "healthy",
        "slow-version",
        "n-plus-one",
        "noisy-host",
        "heavy-customer",
        "sequential-calls",
        "slow-upstream",
        "zone-errors",
    }
    for name, scenario in SCENARIOS.items():
        assert isinstance(scenario, Scenario) and scenario.name == name
        assert scenario.description and scenario.cause
        assert scenario.has_fault == (name != "healthy")
        if scenario.has_fault:
            assert scenario.symptom is not None and scenario.expected
    with pytest.raises(ValueError, match="unknown scenario"):
        run_demo(duration_s=0.1, scenario="no-such-scenario")
