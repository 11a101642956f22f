"""A running copy of a demo service: a real HTTP server on a loopback port, traced by its own TracerProvider.

`ServiceInstance` is the small runtime every service is written against: it turns incoming HTTP requests into
SERVER spans (continuing the caller's W3C trace context), and gives handlers verbs for what services do: `call`
another service over HTTP (a CLIENT span, context injected), query a database (`sql`, `redis`: CLIENT spans with
db.* attributes), do some `work` (a sleep the active scenario may stretch or fail), and `fan_out` calls in
parallel. `Cluster` holds every instance and what they share.
"""

from __future__ import annotations

import contextvars
import http.client
import json
import logging
import queue
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import urlsplit

from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import Attributes

from spyglass.demo.connection_pool import Address, ConnectionPool
from spyglass.demo.scenarios import FaultSwitch, Site
from spyglass.demo.telemetry import (
    INSTRUMENTATION_SCOPE,
    PROPAGATOR,
    ExportHealth,
    ExportTarget,
    InstanceIdentity,
    make_tracer_provider,
)

log = logging.getLogger("spyglass.demo")

T = TypeVar("T")
Reply = tuple[int, dict[str, Any]]
Handler = Callable[["ServiceInstance", "Request"], Reply]
Worker = Callable[["ServiceInstance", threading.Event], None]

# A rare stall (a GC pause, a page fault) stretches any piece of work, as real services' tails show.
STALL_PROBABILITY = 0.003
LOOPBACK = "127.0.0.1"
# Every request costs its server a little (parsing, auth, serialization), so a slow host slows everything.
REQUEST_OVERHEAD_MS = 0.3


class HttpError(Exception):
    """Ends a request with this HTTP status; 5xx marks the server span as an error, 4xx does not."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Route:
    """One HTTP route of a demo service: method, path template and the handler that serves it."""

    method: str
    template: str
    handler: Handler


class Router:
    """Matches `METHOD /path` against route templates such as `/product/{id}`."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self._routes = [
            (route, re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", route.template) + "$"))
            for route in routes
        ]

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route, pattern in self._routes:
            found = pattern.match(path)
            if route.method == method and found:
                return route, found.groupdict()
        return None


@dataclass
class Request:
    """An incoming request, as a handler sees it; `span` is the request's SERVER span."""

    method: str
    path: str
    route: str
    params: dict[str, str]
    body: Any
    headers: Mapping[str, str]
    customer_id: str | None
    span: Span


@dataclass(frozen=True)
class Response:
    """A response from another service."""

    service: str
    status: int
    data: Any

    def expect_ok(self) -> Any:
        """The body when the call succeeded; a 4xx passes through, a 5xx becomes this service's 502."""
        if self.status < 400:
            return self.data
        message = self.data.get("error", "") if isinstance(self.data, dict) else ""
        if self.status < 500:
            raise HttpError(self.status, message or f"{self.service} answered {self.status}")
        raise HttpError(502, f"{self.service} failed with {self.status}: {message}".rstrip(": "))


@dataclass(frozen=True)
class OrderMessage:
    """A message on the in-process `orders` queue; `headers` carry the producer's trace context."""

    order_id: str
    customer_id: str | None
    amount_usd: float
    headers: dict[str, str] = field(default_factory=dict)


def simulate_work(
    faults: FaultSwitch, site: Site, base_ms: float, rng: random.Random, sigma: float = 0.3
) -> None:
    """Take about `base_ms` (lognormal), as stretched or failed by the active scenario at this site."""
    active = faults.active
    duration_ms = base_ms * rng.lognormvariate(0.0, sigma)
    if rng.random() < STALL_PROBABILITY:
        duration_ms *= rng.uniform(3.0, 6.0)
    time.sleep(duration_ms * active.latency_factor(site) / 1000.0)
    failure = active.failure(site)
    if failure is not None:
        raise failure


class _LoopbackServer(ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A caller that went away mid-response (shutdown, timeout) is not worth a traceback on stderr.
        log.debug("demo server %s: error serving %s", self.server_address, client_address, exc_info=True)


def _serve(
    handle: Callable[[BaseHTTPRequestHandler], None], name: str
) -> tuple[_LoopbackServer, threading.Thread]:
    """Start an HTTP/1.1 keep-alive server on an OS-chosen loopback port that passes every request to `handle`."""

    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 30  # idle keep-alive connections are closed after this
        disable_nagle_algorithm = True  # headers and body are two writes: Nagle + delayed ACK would add 40 ms

        def do_GET(self) -> None:
            handle(self)

        do_POST = do_PUT = do_DELETE = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = _LoopbackServer((LOOPBACK, 0), _Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=name, daemon=True
    )
    thread.start()
    return server, thread


def read_json_body(http_request: BaseHTTPRequestHandler) -> Any:
    length = int(http_request.headers.get("Content-Length") or 0)
    raw = http_request.rfile.read(length) if length else b""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def write_json(http_request: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
    body = json.dumps(payload).encode()
    http_request.send_response(status)
    http_request.send_header("Content-Type", "application/json")
    http_request.send_header("Content-Length", str(len(body)))
    http_request.end_headers()
    http_request.wfile.write(body)


def exception_type(error: BaseException) -> str:
    module = type(error).__module__
    return (
        f"{module}.{type(error).__qualname__}"
        if module and module != "builtins"
        else type(error).__qualname__
    )


class ServiceInstance:
    """One instance of a service: HTTP server, TracerProvider and resource of its own, and the verbs handlers use."""

    def __init__(
        self,
        cluster: Cluster,
        identity: InstanceIdentity,
        index: int,
        routes: Sequence[Route],
        workers: Sequence[Worker] = (),
    ) -> None:
        self.cluster = cluster
        self.identity = identity
        self.index = index
        self.router = Router(routes)
        self.state: dict[str, Any] = {}  # what the service keeps in memory (caches); guard it with `lock`
        self.lock = threading.Lock()
        self.provider = make_tracer_provider(identity, cluster.export_target, cluster.health)
        self.retired_providers: list[TracerProvider] = []
        self.tracer = self.provider.get_tracer(INSTRUMENTATION_SCOPE, identity.version)
        self._fan_out_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix=f"{identity.host}-fanout")
        self.server, self._server_thread = _serve(self.handle, name=f"demo-{identity.host}")
        self._stopping = threading.Event()
        self._workers = [
            threading.Thread(
                target=worker, args=(self, self._stopping), name=f"{identity.host}-worker", daemon=True
            )
            for worker in workers
        ]
        for thread in self._workers:
            thread.start()

    @property
    def service(self) -> str:
        return self.identity.service

    @property
    def address(self) -> Address:
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    @property
    def rng(self) -> random.Random:
        return self.cluster.rng

    def providers(self) -> list[TracerProvider]:
        return [*self.retired_providers, self.provider]

    # --- serving -------------------------------------------------------------------------------------------

    def handle(self, http_request: BaseHTTPRequestHandler) -> None:
        """Serve one request inside a SERVER span that continues the caller's trace (and baggage)."""
        method = http_request.command
        path = urlsplit(http_request.path).path
        body = read_json_body(http_request)
        found = self.router.match(method, path)
        if found is None:
            write_json(http_request, 404, {"error": f"no route for {method} {path}"})
            return
        route, params = found
        headers = {key.lower(): value for key, value in http_request.headers.items()}
        token = otel_context.attach(PROPAGATOR.extract(headers))
        try:
            customer = baggage.get_baggage("customer.id")
            customer_id = str(customer) if customer is not None else None
            attributes: dict[str, Any] = {
                "http.request.method": method,
                "http.route": route.template,
                "url.path": path,
                "url.scheme": "http",
                "server.address": self.address[0],
                "server.port": self.address[1],
                "client.address": str(http_request.client_address[0]),
                "network.protocol.version": "1.1",
            }
            if "user-agent" in headers:
                attributes["user_agent.original"] = headers["user-agent"]
            if customer_id is not None:
                attributes["customer.id"] = customer_id
            with self.tracer.start_as_current_span(
                f"{method} {route.template}",
                kind=SpanKind.SERVER,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                request = Request(method, path, route.template, params, body, headers, customer_id, span)
                status, payload = self._dispatch(route, request)
                span.set_attribute("http.response.status_code", status)
                write_json(http_request, status, payload)
        finally:
            otel_context.detach(token)

    def _dispatch(self, route: Route, request: Request) -> Reply:
        span = request.span
        try:
            self.work(route.template, REQUEST_OVERHEAD_MS)
            return route.handler(self, request)
        except HttpError as error:
            if error.status >= 500:
                span.set_status(Status(StatusCode.ERROR, error.message))
                span.set_attribute("error.type", str(error.status))
            return error.status, {"error": error.message}
        except Exception as error:
            status = int(getattr(error, "http_status", 500))
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            span.set_attribute("error.type", exception_type(error))
            return status, {"error": str(error)}

    # --- the verbs handlers use ----------------------------------------------------------------------------

    def site(self, operation: str) -> Site:
        customer = baggage.get_baggage("customer.id")
        return Site(
            service=self.identity.service,
            operation=operation,
            host=self.identity.host,
            zone=self.identity.zone,
            version=self.identity.version,
            customer_id=str(customer) if customer is not None else None,
        )

    def work(self, operation: str, base_ms: float, sigma: float = 0.3) -> None:
        """Spend about `base_ms` on `operation` (no span of its own; wrap it in `span` for one)."""
        simulate_work(self.cluster.faults, self.site(operation), base_ms, self.rng, sigma)

    def span(
        self, name: str, attributes: Attributes = None, kind: SpanKind = SpanKind.INTERNAL
    ) -> AbstractContextManager[Span]:
        return self.tracer.start_as_current_span(name, kind=kind, attributes=attributes)

    def sql(
        self,
        operation: str,
        table: str,
        statement: str,
        base_ms: float,
        rows: int | None = None,
        error: Exception | None = None,
    ) -> None:
        """A PostgreSQL query: a CLIENT span named `{operation} {table}` with db.* attributes."""
        name = f"{operation} {table}"
        attributes: dict[str, Any] = {
            "db.system": "postgresql",
            "db.system.name": "postgresql",
            "db.name": "shop",
            "db.namespace": "shop",
            "db.statement": statement,
            "db.query.text": statement,
            "db.operation.name": operation,
            "db.collection.name": table,
            "server.address": "postgres-primary.shop.internal",
            "server.port": 5432,
            "peer.service": "postgres",
        }
        with self.span(name, attributes, kind=SpanKind.CLIENT) as span:
            self.work(name, base_ms)
            if error is not None:
                raise error
            if rows is not None:
                span.set_attribute("db.response.returned_rows", rows)

    def redis(self, command: str, key: str, base_ms: float) -> None:
        """A Redis command: a CLIENT span named after the command, with db.* attributes."""
        attributes: dict[str, Any] = {
            "db.system": "redis",
            "db.system.name": "redis",
            "db.statement": f"{command} {key}",
            "db.query.text": f"{command} {key}",
            "db.operation.name": command,
            "server.address": "redis-cart.shop.internal",
            "server.port": 6379,
            "peer.service": "redis",
        }
        with self.span(command, attributes, kind=SpanKind.CLIENT):
            self.work(command, base_ms)

    def call(
        self, service: str, method: str, route: str, path: str | None = None, body: Any = None
    ) -> Response:
        """Call one instance of `service` over HTTP in a CLIENT span; the trace context goes in the headers."""
        path = path or route
        address = self.cluster.pick(service)
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "server.address": address[0],
            "server.port": address[1],
            "url.full": f"http://{address[0]}:{address[1]}{path}",
            "url.template": route,
            "peer.service": service,
        }
        with self.tracer.start_as_current_span(
            f"{method} {route}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            headers = {
                "Content-Type": "application/json",
                "User-Agent": f"{self.identity.service}/{self.identity.version} python-http.client",
            }
            PROPAGATOR.inject(headers)
            data = json.dumps(body).encode() if body is not None else None
            try:
                status, raw = self.cluster.pool.request(address, method, path, data, headers)
            except (OSError, http.client.HTTPException) as error:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
                span.set_attribute("error.type", exception_type(error))
                raise HttpError(502, f"{service} unreachable: {error}") from error
            span.set_attribute("http.response.status_code", status)
            if status >= 400:
                span.set_status(Status(StatusCode.ERROR, f"{service} answered {status}"))
                span.set_attribute("error.type", str(status))
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = None
        return Response(service, status, payload)

    def fan_out(self, operation: str, calls: Sequence[Callable[[], T]]) -> list[T]:
        """Run independent calls in parallel threads (each in the current trace context), or in sequence when
        the active scenario says this operation runs them one after another."""
        if len(calls) < 2 or self.cluster.faults.active.runs_in_sequence(self.site(operation)):
            return [call() for call in calls]
        futures = [self._fan_out_pool.submit(contextvars.copy_context().run, call) for call in calls]
        wait_all(futures)
        return [future.result() for future in futures]

    # --- lifecycle -----------------------------------------------------------------------------------------

    def redeploy(self, version: str) -> None:
        """Replace this instance by a new one of another version on the same host (new provider and resource)."""
        identity = self.identity.upgraded(version, f"{self.identity.host}-{self.rng.getrandbits(24):06x}")
        provider = make_tracer_provider(identity, self.cluster.export_target, self.cluster.health)
        self.retired_providers.append(self.provider)
        self.provider = provider
        self.tracer = provider.get_tracer(INSTRUMENTATION_SCOPE, version)
        self.identity = identity
        log.info("redeployed %s on %s as version %s", identity.service, identity.host, version)

    def stop_workers(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._workers:
            thread.join(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._fan_out_pool.shutdown(wait=False, cancel_futures=True)


class UninstrumentedService:
    """A dependency that emits no spans at all (a vendor API); its callers' CLIENT spans are all that is seen."""

    def __init__(
        self, cluster: Cluster, name: str, host: str, zone: str, base_ms: float, reply: Callable[[], Any]
    ):
        self.cluster = cluster
        self.site = Site(service=name, operation="*", host=host, zone=zone, version="unknown")
        self._base_ms = base_ms
        self._reply = reply
        self.server, self._server_thread = _serve(self.handle, name=f"demo-{host}")

    @property
    def service(self) -> str:
        return self.site.service

    @property
    def address(self) -> Address:
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    def handle(self, http_request: BaseHTTPRequestHandler) -> None:
        read_json_body(http_request)
        try:
            simulate_work(self.cluster.faults, self.site, self._base_ms, self.cluster.rng, sigma=0.4)
        except Exception as error:
            write_json(http_request, int(getattr(error, "http_status", 500)), {"error": str(error)})
            return
        write_json(http_request, 200, self._reply())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Cluster:
    """Every running instance, how to reach each service, and what they share: the fault switch, the
    connection pool, the export health counters and the `orders` message queue."""

    def __init__(
        self, export_target: ExportTarget, faults: FaultSwitch, health: ExportHealth, rng: random.Random
    ) -> None:
        self.export_target = export_target
        self.faults = faults
        self.health = health
        self.rng = rng
        self.pool = ConnectionPool()
        self.order_queue: queue.Queue[OrderMessage] = queue.Queue(maxsize=2000)
        self.instances: dict[str, list[ServiceInstance]] = {}
        self.upstreams: list[UninstrumentedService] = []
        self._addresses: dict[str, list[Address]] = {}

    def add_instance(self, instance: ServiceInstance) -> None:
        self.instances.setdefault(instance.service, []).append(instance)
        self._addresses.setdefault(instance.service, []).append(instance.address)

    def add_upstream(self, upstream: UninstrumentedService) -> None:
        self.upstreams.append(upstream)
        self._addresses.setdefault(upstream.service, []).append(upstream.address)

    def pick(self, service: str) -> Address:
        """Client-side load balancing: a random instance of the service."""
        return self.rng.choice(self._addresses[service])

    def addresses(self, service: str) -> list[Address]:
        return list(self._addresses.get(service, []))

    def all_instances(self) -> Iterator[ServiceInstance]:
        for instances in self.instances.values():
            yield from instances

    def providers(self) -> list[TracerProvider]:
        return [provider for instance in self.all_instances() for provider in instance.providers()]

    def redeploy(self, versions: Mapping[str, Mapping[int, str]]) -> None:
        for service, by_index in versions.items():
            for index, version in by_index.items():
                self.instances[service][index].redeploy(version)

    def close(self) -> None:
        """Stop workers, then servers; the caller shuts the providers down afterwards to flush their spans."""
        for instance in self.all_instances():
            instance.stop_workers()
        self.pool.close()
        # Each server notices a shutdown request within its poll interval: close them all at once.
        servers: list[ServiceInstance | UninstrumentedService] = [*self.all_instances(), *self.upstreams]
        closers = [
            threading.Thread(target=server.close, name="demo-server-close", daemon=True) for server in servers
        ]
        for thread in closers:
            thread.start()
        for thread in closers:
            thread.join(5.0)
