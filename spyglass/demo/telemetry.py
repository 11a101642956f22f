"""OpenTelemetry for the demo: one TracerProvider per service instance, exporting OTLP/HTTP to spyglass.

Each instance gets its own provider and resource, as if it were its own process; the global provider is never
set. Export failures (spyglass not running yet) are counted and reported as one rate-limited warning instead of
an error per batch per instance, and never stop the demo.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger("spyglass.demo")

PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
EXPORT_SCHEDULE_DELAY_MS = 500
EXPORT_TIMEOUT_S = 3.0
INSTRUMENTATION_SCOPE = "spyglass.demo"

# The OTLP exporter's loggers: they log an error per failed batch, which with a dozen instances is a flood.
_EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.common.http",
)


@dataclass(frozen=True)
class InstanceIdentity:
    """Who an instance is: the resource attributes every span it emits carries."""

    service: str
    namespace: str
    version: str
    host: str
    zone: str
    instance_id: str
    environment: str = "production"
    region: str = "us-east-1"

    def resource(self) -> Resource:
        return Resource.create(
            {
                "service.name": self.service,
                "service.namespace": self.namespace,
                "service.version": self.version,
                "service.instance.id": self.instance_id,
                "host.name": self.host,
                "cloud.provider": "aws",
                "cloud.platform": "aws_ec2",
                "cloud.region": self.region,
                "cloud.availability_zone": self.zone,
                "deployment.environment": self.environment,
                "deployment.environment.name": self.environment,
            }
        )

    def upgraded(self, version: str, instance_id: str) -> InstanceIdentity:
        return replace(self, version=version, instance_id=instance_id)


class ExportHealth:
    """Counts spans exported and lost across every instance; warns at most once per interval while failing."""

    def __init__(self, endpoint: str, warn_interval_s: float = 15.0) -> None:
        self.endpoint = endpoint
        self.spans_exported = 0
        self.spans_failed = 0
        self._warn_interval_s = warn_interval_s
        self._last_warning = float("-inf")
        self._lock = threading.Lock()
        self._last_export_ok = True
        self._closing = False
        self._exporters: list[TolerantExporter] = []

    def watch(self, exporter: TolerantExporter) -> None:
        with self._lock:
            self._exporters.append(exporter)

    def closing(self) -> None:
        """The demo is shutting down: if spyglass is unreachable, stop trying (and retrying) so that shutdown
        is quick; if it is reachable, the final flush proceeds."""
        self._closing = True
        if self.give_up:
            with self._lock:
                exporters = list(self._exporters)
            for exporter in exporters:
                exporter.shutdown()

    @property
    def give_up(self) -> bool:
        return self._closing and not self._last_export_ok

    def record(self, span_count: int, ok: bool) -> None:
        with self._lock:
            self._last_export_ok = ok
            if ok:
                self.spans_exported += span_count
                return
            self.spans_failed += span_count
            now = time.monotonic()
            if now - self._last_warning < self._warn_interval_s:
                return
            self._last_warning = now
            failed = self.spans_failed
        log.warning(
            "could not export spans to %s (%d lost so far); is spyglass running? the demo keeps going",
            self.endpoint,
            failed,
        )


class TolerantExporter(SpanExporter):
    """Wraps an exporter so that no failure escapes, and every outcome is counted in `ExportHealth`."""

    def __init__(self, inner: SpanExporter, health: ExportHealth) -> None:
        self._inner = inner
        self._health = health
        self._shut_down = False
        health.watch(self)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._health.give_up or self._shut_down:
            self._health.record(len(spans), False)
            return SpanExportResult.FAILURE
        try:
            result = self._inner.export(spans)
        except Exception:  # the demo must survive anything the exporter does
            log.debug("span export raised", exc_info=True)
            result = SpanExportResult.FAILURE
        self._health.record(len(spans), result is SpanExportResult.SUCCESS)
        return result

    def shutdown(self) -> None:
        if self._shut_down:
            return
        self._shut_down = True
        try:
            self._inner.shutdown()
        except Exception:
            log.debug("exporter shutdown raised", exc_info=True)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


@dataclass(frozen=True)
class ExportTarget:
    """Where the demo sends its spans: spyglass's OTLP/HTTP base URL, and its ingest token if it needs one."""

    otlp_endpoint: str
    ingest_token: str | None = None

    @property
    def traces_url(self) -> str:
        return f"{self.otlp_endpoint.rstrip('/')}/v1/traces"

    @property
    def headers(self) -> dict[str, str] | None:
        # None lets the exporter read OTEL_EXPORTER_OTLP_(TRACES_)HEADERS, as any OpenTelemetry SDK would.
        return {"Authorization": f"Bearer {self.ingest_token}"} if self.ingest_token else None


def make_tracer_provider(
    identity: InstanceIdentity, target: ExportTarget, health: ExportHealth
) -> TracerProvider:
    """A provider of its own for one instance, batching spans to `{otlp_endpoint}/v1/traces`."""
    provider = TracerProvider(resource=identity.resource(), shutdown_on_exit=False)
    exporter = OTLPSpanExporter(endpoint=target.traces_url, headers=target.headers, timeout=EXPORT_TIMEOUT_S)
    processor = BatchSpanProcessor(
        TolerantExporter(exporter, health),
        schedule_delay_millis=EXPORT_SCHEDULE_DELAY_MS,
        max_queue_size=8192,
        max_export_batch_size=512,
    )
    provider.add_span_processor(processor)
    return provider


def shutdown_providers(providers: Sequence[TracerProvider], timeout_s: float = 10.0) -> None:
    """Flush and shut down every provider, in parallel so that an unreachable endpoint costs one timeout."""
    threads = [
        threading.Thread(target=provider.shutdown, name="demo-provider-shutdown", daemon=True)
        for provider in providers
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        log.warning("some span exporters did not finish flushing within %.0f s", timeout_s)


class _OncePerInterval(logging.Filter):
    """Lets each distinct log message template through at most once per interval."""

    def __init__(self, interval_s: float) -> None:
        super().__init__()
        self._interval_s = interval_s
        self._last: dict[object, float] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(record.msg, float("-inf")) < self._interval_s:
                return False
            self._last[record.msg] = now
            return True


@contextmanager
def quiet_exporter_logs(interval_s: float = 60.0) -> Iterator[None]:
    """While the demo runs, let the OTLP exporter log each kind of failure once a minute, not once per batch."""
    loggers = [logging.getLogger(name) for name in _EXPORTER_LOGGERS]
    log_filter = _OncePerInterval(interval_s)
    for logger in loggers:
        logger.addFilter(log_filter)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(log_filter)
