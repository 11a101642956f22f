"""Hostile-input fuzz of every ingest endpoint, interleaved with valid traces, against ``spyglass serve``.

Starts ``spyglass serve`` as its own process (``--sample-rate 1.0``), and for each endpoint in turn sends the
hostile bodies of ``tests/support/hostile.py`` from several connections, one valid export after every
``--valid-every`` of them. Then waits until every acknowledged valid trace (or log) is given back by the query
API, stops the server with SIGTERM, starts it again on the same data directory and asks again. Prints, per
endpoint: hostile bodies sent, their answers by status, answers that must not happen (5xx, dropped
connections), valid exports acknowledged / found live / found after the restart, seconds and bodies/s.

    python bench/ingest_fuzz.py --bodies 20000
    python bench/ingest_fuzz.py --bodies 2000 --endpoints zipkin,otlp-grpc-traces
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.serve_process import free_ports  # noqa: E402
from tests.support.hostile import ENDPOINTS, FuzzReport, missing_exports, run_fuzz  # noqa: E402


@dataclass(frozen=True)
class Server:
    process: subprocess.Popen[bytes]
    api_port: int
    grpc_port: int
    http_port: int
    zipkin_port: int

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def otlp_http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def otlp_grpc(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def zipkin(self) -> str:
        return f"http://127.0.0.1:{self.zipkin_port}/api/v2/spans"

    def status(self) -> dict:
        return httpx.get(self.api + "/api/v1/status", timeout=10).json()

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=120)


def start_server(data_dir: Path, max_body_bytes: int) -> Server:
    api, grpc_port, http_port, zipkin = free_ports(4)
    process = subprocess.Popen(
        [sys.executable, "-m", "spyglass.cli", "serve", "--data-dir", str(data_dir)]
        + ["--port", str(api), "--otlp-grpc-port", str(grpc_port), "--otlp-http-port", str(http_port)]
        + ["--zipkin-port", str(zipkin), "--sample-rate", "1.0", "--decision-wait", "0.2"]
        + ["--max-body-bytes", str(max_body_bytes)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = Server(process, api, grpc_port, http_port, zipkin)
    deadline = time.monotonic() + 60
    while True:
        try:
            server.status()
            return server
        except httpx.HTTPError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"spyglass serve did not start (exit code {process.poll()})") from None
            time.sleep(0.1)


def wait_until_decided(server: Server, timeout_s: float = 60.0) -> None:
    """Until nothing is queued or undecided: what the in-process tests get from ``flush()``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = server.status()
        if status.get("spans_queued", 0) == 0 and status["recall"].get("undecided_spans", 0) == 0:
            return
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bodies", type=int, default=20_000, help="hostile bodies per endpoint")
    parser.add_argument(
        "--endpoints", default=",".join(ENDPOINTS), help="comma-separated, of: " + ", ".join(ENDPOINTS)
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=4, help="client connections per endpoint")
    parser.add_argument(
        "--valid-every", type=int, default=20, help="one valid export after this many hostile"
    )
    parser.add_argument("--max-body-bytes", type=int, default=4 * 1024 * 1024)
    args = parser.parse_args()
    endpoints = [name.strip() for name in args.endpoints.split(",") if name.strip()]
    unknown = [name for name in endpoints if name not in ENDPOINTS]
    if unknown:
        parser.error(f"unknown endpoints {unknown}; choose from {list(ENDPOINTS)}")

    data_dir = Path(tempfile.mkdtemp(prefix="spyglass-fuzz-"))
    server = start_server(data_dir, args.max_body_bytes)
    reports: list[FuzzReport] = []
    live: dict[str, list[str]] = {}
    for name in endpoints:
        report = run_fuzz(
            server, name, args.bodies, args.seed, args.threads, args.valid_every, args.max_body_bytes
        )
        reports.append(report)
    wait_until_decided(server)
    for report in reports:
        live[report.endpoint] = missing_exports(server.api, report.acknowledged, wait_s=30)
    exit_code = server.stop()
    restarted = start_server(data_dir, args.max_body_bytes)
    after = {report.endpoint: missing_exports(restarted.api, report.acknowledged) for report in reports}
    restarted.stop()

    print(
        f"{'endpoint':24} {'hostile':>8} {'answers by status':58} {'bad':>4} {'valid ack/sent':>15} "
        f"{'live':>6} {'restart':>7} {'seconds':>8} {'bodies/s':>8}"
    )
    for report in reports:
        answers = " ".join(f"{status}:{count}" for status, count in sorted(report.answers.items()))
        acknowledged = len(report.acknowledged)
        print(
            f"{report.endpoint:24} {report.hostile_sent:8,} {answers:58} {len(report.violations):4} "
            f"{acknowledged:>7}/{report.valid_sent:<7} {acknowledged - len(live[report.endpoint]):6} "
            f"{acknowledged - len(after[report.endpoint]):7} {report.seconds:8.1f} "
            f"{report.hostile_sent / report.seconds:8.0f}"
        )
    total_bodies = sum(r.hostile_sent + r.valid_sent for r in reports)
    total_s = sum(r.seconds for r in reports)
    print(
        f"conditions: {os.cpu_count()} cores, spyglass serve in its own process, {args.threads} connections, "
        f"seed {args.seed}, --max-body-bytes {args.max_body_bytes}; {total_bodies:,} requests in {total_s:.0f} s; "
        f"first server exited {exit_code}"
    )
    for report in reports:
        problems = report.violations[:5] + report.refused_valid[:5]
        problems += live[report.endpoint][:5] + [f"after restart: {p}" for p in after[report.endpoint][:5]]
        for problem in problems:
            print(f"  {report.endpoint}: {problem[:300]}")


if __name__ == "__main__":
    main()
