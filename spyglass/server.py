"""``spyglass serve``: wires receivers -> satellite -> store -> API and runs every listener in one event loop.

``SpyglassServer`` can also run in a background thread with port 0 everywhere, which is how tests and
benchmarks start a real server on loopback and learn the ports it bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass, replace
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from spyglass.alerting.alerts import ALERTS_FILE_NAME, AlertBook
from spyglass.alerting.evaluator import LogNotifier, Notifier, SloEvaluator
from spyglass.alerting.slo_catalog import STORE_FILE_NAME, SloCatalog, read_slo_file
from spyglass.alerting.watch import SloWatch
from spyglass.alerting.webhook import WebhookSender
from spyglass.analysis.live import LiveData, RollupReader
from spyglass.analysis.ownership import Ownership
from spyglass.analysis.slo import InvalidSlo, Slo
from spyglass.analysis.slo_explain import ExplainSources
from spyglass.analysis.slo_meter import SloMeter
from spyglass.api.app import create_api_app
from spyglass.api.context import ApiContext
from spyglass.cluster.node import ClusterNode
from spyglass.config import ConfigError, ServeConfig
from spyglass.receivers.admission import Admission
from spyglass.receivers.decode_workers import DecodeProcesses, DecodeThreads, DecodeWorkers
from spyglass.receivers.forwarded import forwarded_spans_route
from spyglass.receivers.ingest import ReceiverSettings
from spyglass.receivers.otlp_grpc import create_grpc_server
from spyglass.receivers.otlp_http import create_otlp_http_app
from spyglass.receivers.zipkin import create_zipkin_app
from spyglass.satellite.log_writer import LogWriter
from spyglass.satellite.pipeline import Satellite, SatelliteSettings
from spyglass.satellite.retention import RetentionWorker
from spyglass.satellite.sampler import DynamicSampler, KeepAllSampler, SamplingPolicy
from spyglass.satellite.waiting_view import StoreWithWaiting
from spyglass.store.protocol import Store

log = logging.getLogger(__name__)

#: Exports a receiver holds in flight per decode worker before refusing more. Many services' small exports at
#: once are normal (a fleet's batch processors firing together), so the count is generous; the byte bound
#: (--max-inflight-bytes) is what keeps a flood of large exports from waiting longer than a few seconds.
EXPORTS_IN_FLIGHT_PER_WORKER = 16


@dataclass(frozen=True)
class BoundPorts:
    """The ports actually listened on (differs from the config when it asked for port 0)."""

    api: int
    otlp_grpc: int
    otlp_http: int
    zipkin: int


def open_store(config: ServeConfig) -> Store:
    """The configured store backend."""
    if config.store == "duckdb":
        from spyglass.store.duckdb_store import DuckDBStore

        Path(config.data_dir).mkdir(parents=True, exist_ok=True)
        return DuckDBStore(Path(config.data_dir) / "spyglass.duckdb")
    if config.store == "clickhouse" and config.clickhouse_url:
        # http(s)://user:pass@host:8123/database reaches a server; chdb://PATH runs ClickHouse in-process.
        from spyglass.store.clickhouse_connection import ChdbMissingError
        from spyglass.store.clickhouse_store import ClickHouseStore

        try:
            return ClickHouseStore(config.clickhouse_url, retention=config.retention_policy)
        except (ValueError, ChdbMissingError) as error:
            raise ConfigError(f"--clickhouse-url: {error}") from error
    raise ConfigError(f"--store {config.store} needs --clickhouse-url")


def _read_slos(config: ServeConfig) -> list[Slo]:
    """The SLOs of ``--slos``, or a ``ConfigError`` naming the bad one and its field."""
    if config.slos_file is None:
        return []
    try:
        return read_slo_file(config.slos_file)
    except InvalidSlo as error:
        raise ConfigError(f"--slos: {error}") from error


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signals alone: spyglass stops all its listeners together, then flushes."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio turns Nagle off only on sockets that say they are TCP, and with Nagle on,
    # a response written as headers then body waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _serve_apart(server: uvicorn.Server, sock: socket.socket) -> threading.Thread:
    """Run ``server`` on ``sock`` on a new event loop in a thread of its own; it ends when ``should_exit``."""

    def run() -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except Exception:
            log.exception("the query API stopped")

    thread = threading.Thread(target=run, name="spyglass-api", daemon=True)
    thread.start()
    return thread


class SpyglassServer:
    """One spyglass process: store, satellite, receivers and API."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        # A bad --slos file stops the start before anything is opened.
        file_slos = _read_slos(config)
        self.store = open_store(config)
        self.satellite = Satellite(
            SatelliteSettings(
                decision_wait_s=config.decision_wait_s,
                recall_memory_bytes=config.recall_memory_mb * 1024 * 1024,
                max_queued_spans=config.max_queued_spans,
                aggregate_attributes=config.aggregate_attributes,
            ),
            self.store,
            KeepAllSampler()
            if config.sample_rate >= 1.0
            else DynamicSampler(SamplingPolicy(config.sample_rate)),
        )
        # What readers take as the store: its spans and the kept ones still waiting for their write.
        self.read_store: Store = StoreWithWaiting(self.store, self.satellite)
        # In a cluster, receivers hand spans to the router, which sends each to the satellite owning its trace.
        self.cluster = (
            ClusterNode(
                self.satellite,
                self.read_store,
                peers=config.peers,
                peers_file=config.peers_file,
                self_url=config.advertise or "",
                shared_store=config.store == "clickhouse",
                forward=config.span_routing == "forward",
                ingest_token=config.ingest_token,
                query_token=config.query_token,
                max_body_bytes=config.max_body_bytes,
            )
            if config.clustered
            else None
        )
        sink = self.cluster.sink if self.cluster is not None else self.satellite
        # Decoding runs in these processes (started with the server), never on the event loop that answers
        # queries and gRPC, and on every core: the decoders hold the GIL, so threads of this process could not.
        # One worker gains nothing from a process of its own: it is a thread here, and no process is started.
        workers = config.decode_workers
        self.decode_pool: DecodeWorkers = DecodeProcesses(workers) if workers > 1 else DecodeThreads.pool(1)
        self.receiver_settings = ReceiverSettings(
            sink, config.max_body_bytes, config.ingest_token, decode_pool=self.decode_pool
        )
        # --retention and --rollup-retention, applied to this member's own store in small steps.
        self.retention = RetentionWorker(self.store, config.retention_policy)
        # OTLP logs with trace context: straight to the store through a bounded queue (429 when it is full).
        self.log_writer = LogWriter(self.store, max_queued_records=config.max_queued_spans)
        # What the API and the SLO evaluator read: the cluster-wide views when clustered, this member's own else.
        self.store_view: Store = self.cluster.store_view if self.cluster is not None else self.read_store
        self.live_view: LiveData = self.cluster.live_view if self.cluster is not None else self.satellite
        self.rollups_view: RollupReader = (
            self.cluster.rollups_view if self.cluster is not None else self.satellite.rollups
        )
        self.ownership = Ownership.from_file(config.owners_file)
        self.slo_watch, self.slo_evaluator = self._watch_slos(file_slos)
        self.admissions: dict[str, Admission] = {}
        self.ports: BoundPorts | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def api_app(self) -> FastAPI:
        """The query port's application: the cluster-wide views when clustered, this member's own otherwise."""
        config = self.config
        return create_api_app(
            ApiContext(
                store=self.store_view,
                live=self.live_view,
                rollups=self.rollups_view,
                satellite=self.satellite,
                query_token=config.query_token,
                ownership=self.ownership,
                log_counters=self.log_writer.counters,
                cluster=self.cluster,
                ingest_status=self.ingest_status,
                slos=self.slo_watch,
                storage=self.retention.status,
            ),
            [forwarded_spans_route(self.cluster, self.decode_pool)] if self.cluster is not None else [],
        )

    def _watch_slos(self, file_slos: list[Slo]) -> tuple[SloWatch, SloEvaluator]:
        """The SLOs of ``--slos`` and of the API, their alerts, and the evaluator that watches them (started
        with the server), delivering to the log and ``--alert-webhook``."""
        config = self.config
        catalog = SloCatalog(file_slos, Path(config.data_dir) / STORE_FILE_NAME)
        webhook = WebhookSender(config.alert_webhook) if config.alert_webhook else None
        alerts = AlertBook(path=Path(config.data_dir) / ALERTS_FILE_NAME)
        watch = SloWatch(catalog, SloMeter(self.rollups_view), alerts, webhook)
        notifiers: list[Notifier] = [LogNotifier(), *([webhook] if webhook is not None else [])]
        sources = ExplainSources(self.store_view, self.live_view, self.rollups_view, self.ownership)
        return watch, SloEvaluator(
            watch, sources, notifiers, config.slo_interval_s, reexplain_s=config.alert_reexplain_s
        )

    async def serve(self) -> None:
        """Run until ``request_stop``; then stop listening, write out the recall buffer, close the store."""
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        config = self.config
        sockets = {
            name: _listen(config.host, port)
            for name, port in (
                ("api", config.port),
                ("otlp_http", config.otlp_http_port),
                ("zipkin", config.zipkin_port),
            )
        }
        grpc_server, grpc_port = create_grpc_server(
            self._admitting("otlp_grpc"),
            f"{config.host}:{config.otlp_grpc_port}",
            logs=self.log_writer,
            logs_settings=self._admitting("otlp_grpc_logs", self.log_writer.accepting_logs),
        )
        apps = {
            "api": self.api_app(),
            "otlp_http": create_otlp_http_app(
                self._admitting("otlp_http"),
                logs=self.log_writer,
                logs_settings=self._admitting("otlp_http_logs", self.log_writer.accepting_logs),
            ),
            "zipkin": create_zipkin_app(self._admitting("zipkin")),
        }
        servers = [
            _QuietServer(
                uvicorn.Config(
                    apps[name],
                    log_level="warning",
                    access_log=False,
                    lifespan="off",
                    timeout_keep_alive=30,
                    h11_max_incomplete_event_size=64 * 1024,
                )
            )
            for name in sockets
        ]
        self.decode_pool.start()
        self.satellite.start()
        if self.cluster is not None:
            api_port = sockets["api"].getsockname()[1]
            self.cluster.start(self_url=config.advertise or f"http://{config.host}:{api_port}")
        self.log_writer.start()
        if self.slo_watch.webhook is not None:
            self.slo_watch.webhook.start()
        self.slo_evaluator.start()
        self.retention.start()
        await grpc_server.start()
        # The query API runs on an event loop of its own thread: a query waits for nothing ingest does on its
        # loop (reading bodies, answering gRPC), so a flood of exports cannot queue the people looking.
        api_server = servers[0]
        api_thread = _serve_apart(api_server, sockets["api"])
        tasks = [
            asyncio.create_task(s.serve(sockets=[sock]))
            for s, sock in zip(servers[1:], list(sockets.values())[1:], strict=True)
        ]
        self.ports = BoundPorts(
            api=sockets["api"].getsockname()[1],
            otlp_grpc=grpc_port,
            otlp_http=sockets["otlp_http"].getsockname()[1],
            zipkin=sockets["zipkin"].getsockname()[1],
        )
        while not all(s.started for s in servers):
            await asyncio.sleep(0.01)
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await grpc_server.stop(grace=2.0)
            for server in servers:
                server.should_exit = True
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.to_thread(api_thread.join)
            await asyncio.to_thread(self.retention.stop)
            await asyncio.to_thread(self.slo_evaluator.stop)
            if self.slo_watch.webhook is not None:
                await asyncio.to_thread(self.slo_watch.webhook.stop)
            if self.cluster is not None:
                await asyncio.to_thread(self.cluster.stop)
            await asyncio.to_thread(self.satellite.stop)
            await asyncio.to_thread(self.log_writer.stop)
            await asyncio.to_thread(self.decode_pool.shutdown)
            self.store.close()

    def _admitting(self, name: str, room: Callable[[], bool] | None = None) -> ReceiverSettings:
        """Receiver settings with an in-flight bound of their own: each receiver admits apart. ``room``: whether
        its sink takes more (default: the satellite's intake)."""
        settings = self.receiver_settings.bounded(
            self.config.max_inflight_bytes, EXPORTS_IN_FLIGHT_PER_WORKER * self.config.decode_workers, room
        )
        self.admissions[name] = settings.admission
        return settings

    def ingest_status(self) -> dict[str, dict[str, int]]:
        """Each receiver's in-flight bound and what it refused, for ``/api/v1/status``."""
        return {name: admission.status() for name, admission in self.admissions.items()}

    def request_stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)

    # -- background mode, for tests and benchmarks -------------------------------------------------------

    def start_in_thread(self, timeout_s: float = 20.0) -> BoundPorts:
        def run() -> None:
            try:
                asyncio.run(self.serve())
            except BaseException as exc:  # surfaced to the caller of start_in_thread
                self._error = exc
                self._ready.set()

        self._thread = threading.Thread(target=run, name="spyglass-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s) or self.ports is None:
            raise RuntimeError(f"spyglass did not start: {self._error!r}")
        return self.ports

    def stop_thread(self, timeout_s: float = 30.0) -> None:
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout_s)


def loopback_config(data_dir: Path, **overrides: object) -> ServeConfig:
    """A config with every port chosen by the OS, for tests and benchmarks."""
    base = ServeConfig(data_dir=data_dir, port=0, otlp_grpc_port=0, otlp_http_port=0, zipkin_port=0)
    return replace(base, **overrides).validate()  # type: ignore[arg-type]
