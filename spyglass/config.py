"""spyglass's configuration: one frozen object, built once from flags and ``SPYGLASS_*`` variables, validated.

No other module reads the environment; everything is passed down from here.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class ConfigError(ValueError):
    """A flag or environment value is invalid; the message says which and why."""


@dataclass(frozen=True)
class ServeConfig:
    """Everything ``spyglass serve`` needs to start."""

    data_dir: Path = Path("./spyglass-data")
    host: str = "127.0.0.1"
    port: int = 8686
    otlp_grpc_port: int = 4317
    otlp_http_port: int = 4318
    zipkin_port: int = 9411
    sample_rate: float = 1.0
    decision_wait_s: float = 5.0
    recall_memory_mb: int = 256
    store: str = "duckdb"
    clickhouse_url: str | None = None
    ingest_token: str | None = None
    query_token: str | None = None
    peers: tuple[str, ...] = field(default_factory=tuple)
    advertise: str | None = None
    #: A file listing the members (one URL a line), re-read when it changes; instead of ``peers``.
    peers_file: Path | None = None
    #: ``forward``: satellites send spans to their trace's owner; ``upstream``: something in front (Collectors'
    #: load-balancing exporter) already sends each trace to one satellite, so spans stay where they arrive.
    span_routing: str = "forward"
    max_body_bytes: int = 32 * 1024 * 1024
    max_queued_spans: int = 200_000
    #: Threads that decode exports off the event loop; 0: one per core.
    workers: int = 0
    #: Bytes of export bodies each receiver holds in flight (read, or waiting for or in decoding) before it
    #: refuses more with 429 / RESOURCE_EXHAUSTED.
    max_inflight_bytes: int = 64 * 1024 * 1024
    owners_file: Path | None = None
    aggregate_attributes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def decode_workers(self) -> int:
        return self.workers or os.cpu_count() or 1

    def validate(self) -> ServeConfig:
        for name in ("port", "otlp_grpc_port", "otlp_http_port", "zipkin_port"):
            value = getattr(self, name)
            if not 0 <= value <= 65535:
                raise ConfigError(f"--{name.replace('_', '-')} must be a port number, got {value}")
        if not 0.0 < self.sample_rate <= 1.0:
            raise ConfigError(f"--sample-rate must be in (0, 1], got {self.sample_rate}")
        if self.decision_wait_s < 0:
            raise ConfigError(f"--decision-wait must be >= 0 seconds, got {self.decision_wait_s}")
        if self.recall_memory_mb < 1:
            raise ConfigError(f"--recall-memory-mb must be >= 1, got {self.recall_memory_mb}")
        if self.workers < 0:
            raise ConfigError(f"--workers must be >= 0 (0: one per core), got {self.workers}")
        if self.max_inflight_bytes < 1:
            raise ConfigError(f"--max-inflight-bytes must be >= 1, got {self.max_inflight_bytes}")
        if self.store not in ("duckdb", "clickhouse"):
            raise ConfigError(f"--store must be duckdb or clickhouse, got {self.store!r}")
        if self.owners_file is not None and not Path(self.owners_file).is_file():
            raise ConfigError(f"--owners: no such file {self.owners_file}")
        if self.store == "clickhouse" and not self.clickhouse_url:
            raise ConfigError("--store clickhouse needs --clickhouse-url")
        clickhouse_schemes = ("http://", "https://", "chdb://")
        if self.store == "clickhouse" and not str(self.clickhouse_url).startswith(clickhouse_schemes):
            raise ConfigError(
                "--clickhouse-url must be http://user:pass@host:8123/database, https://... or chdb://PATH, "
                f"got {self.clickhouse_url!r}"
            )
        self._validate_cluster()
        return self

    def _validate_cluster(self) -> None:
        if self.peers and self.peers_file is not None:
            raise ConfigError("give the cluster's members with --peers or --peers-file, not both")
        if self.peers_file is not None and not Path(self.peers_file).is_file():
            raise ConfigError(f"--peers-file: no such file {self.peers_file}")
        if self.span_routing not in ("forward", "upstream"):
            raise ConfigError(f"--span-routing must be forward or upstream, got {self.span_routing!r}")
        for url in (*self.peers, *([self.advertise] if self.advertise else [])):
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"cluster member URLs must start with http:// or https://, got {url!r}")
        # A defaulted address missing from the list is allowed (the satellite then owns no traces and forwards
        # all, as one leaving the cluster does; it warns at start); a wrong --advertise is a mistake.
        if self.peers and self.advertise and self.advertised_url not in self.peers:
            raise ConfigError(
                f"this satellite's URL {self.advertised_url} is not in --peers; set --advertise to the URL "
                "by which the others reach it, as written in --peers"
            )

    @property
    def clustered(self) -> bool:
        return bool(self.peers) or self.peers_file is not None

    @property
    def advertised_url(self) -> str:
        return (self.advertise or f"http://{self.host}:{self.port}").rstrip("/")


def _env_name(flag: str) -> str:
    return "SPYGLASS_" + flag.lstrip("-").replace("-", "_").upper()


def add_serve_flags(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    """Register ``serve``'s flags; each defaults to its ``SPYGLASS_<FLAG>`` environment variable."""
    defaults = ServeConfig()

    def flag(name: str, kind: type, default: object, help_text: str) -> None:
        raw = env.get(_env_name(name))
        if raw not in (None, ""):
            try:
                default = kind(raw)
            except ValueError:
                raise ConfigError(f"{_env_name(name)}={raw!r} is not a valid {name}") from None
        parser.add_argument(
            name,
            type=kind,
            default=default,
            help=f"{help_text} (env {_env_name(name)})",
        )

    flag("--data-dir", Path, defaults.data_dir, "where the embedded store keeps its files")
    flag("--host", str, defaults.host, "interface to listen on; loopback unless you choose otherwise")
    flag("--port", int, defaults.port, "query API and web UI port")
    flag("--otlp-grpc-port", int, defaults.otlp_grpc_port, "OTLP/gRPC ingest port")
    flag("--otlp-http-port", int, defaults.otlp_http_port, "OTLP/HTTP ingest port")
    flag("--zipkin-port", int, defaults.zipkin_port, "Zipkin v2 ingest port")
    flag("--sample-rate", float, defaults.sample_rate, "target fraction of traces kept in the store")
    flag("--decision-wait", float, defaults.decision_wait_s, "seconds of quiet before a trace is decided")
    flag("--recall-memory-mb", int, defaults.recall_memory_mb, "memory bound of the recall buffer")
    flag("--store", str, defaults.store, "duckdb (embedded) or clickhouse")
    flag("--clickhouse-url", str, None, "ClickHouse URL for --store clickhouse")
    flag("--ingest-token", str, None, "bearer token receivers require")
    flag("--query-token", str, None, "bearer token the API requires")
    flag("--peers", str, "", "query API URLs of every satellite of the cluster, comma-separated")
    flag("--advertise", str, None, "this satellite's URL as written in --peers")
    flag("--peers-file", Path, None, "file listing the cluster's members, one URL a line; re-read on change")
    flag("--span-routing", str, defaults.span_routing, "forward (to each trace's owner) or upstream")
    flag("--max-body-bytes", int, defaults.max_body_bytes, "largest accepted request body, after gzip")
    flag("--max-queued-spans", int, defaults.max_queued_spans, "intake bound before refusing with 429")
    flag(
        "--workers", int, defaults.workers, "threads that decode exports off the event loop; 0: one per core"
    )
    flag(
        "--max-inflight-bytes",
        int,
        defaults.max_inflight_bytes,
        "bytes of export bodies each receiver holds in flight before refusing with 429",
    )
    flag("--aggregate-attributes", str, "", "extra attribute keys to roll up per value, comma-separated")
    flag("--owners", Path, None, 'JSON file {"service": "team"} naming owners explain reports')


def serve_config_from_args(args: argparse.Namespace) -> ServeConfig:
    """Build and validate the configuration from parsed ``serve`` arguments."""
    peers = tuple(p.strip().rstrip("/") for p in (args.peers or "").split(",") if p.strip())
    return ServeConfig(
        data_dir=args.data_dir,
        host=args.host,
        port=args.port,
        otlp_grpc_port=args.otlp_grpc_port,
        otlp_http_port=args.otlp_http_port,
        zipkin_port=args.zipkin_port,
        sample_rate=args.sample_rate,
        decision_wait_s=args.decision_wait,
        recall_memory_mb=args.recall_memory_mb,
        store=args.store,
        clickhouse_url=args.clickhouse_url,
        ingest_token=args.ingest_token or None,
        query_token=args.query_token or None,
        peers=peers,
        advertise=args.advertise.rstrip("/") if args.advertise else None,
        peers_file=args.peers_file,
        span_routing=args.span_routing,
        max_body_bytes=args.max_body_bytes,
        max_queued_spans=args.max_queued_spans,
        workers=args.workers,
        max_inflight_bytes=args.max_inflight_bytes,
        owners_file=args.owners,
        aggregate_attributes=tuple(
            k.strip() for k in (args.aggregate_attributes or "").split(",") if k.strip()
        ),
    ).validate()


def parse_serve_args(argv: Sequence[str], env: Mapping[str, str] | None = None) -> ServeConfig:
    """Convenience for tests and embedding: flags (and environment) to a validated config."""
    parser = argparse.ArgumentParser(prog="spyglass serve")
    add_serve_flags(parser, os.environ if env is None else env)
    return serve_config_from_args(parser.parse_args(list(argv)))
