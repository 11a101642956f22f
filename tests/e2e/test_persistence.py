"""Kept traces survive a restart, a kill -9 after they were committed, and a graceful stop with traces buffered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

import httpx
from opentelemetry.trace import SpanKind

from tests.support.otel import http_exporter, provider
from tests.support.ports import free_ports


class ServeProcess:
    """``spyglass serve`` as a separate process, exactly as a user starts it."""

    def __init__(self, data_dir: Path, decision_wait_s: float) -> None:
        api, grpc_port, http_port, zipkin = free_ports(4)
        self.api = f"http://127.0.0.1:{api}"
        self.otlp_http = f"http://127.0.0.1:{http_port}"
        env = {**os.environ, "SPYGLASS_DECISION_WAIT": str(decision_wait_s)}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "spyglass.cli",
                "serve",
                "--data-dir",
                str(data_dir),
                "--port",
                str(api),
                "--otlp-grpc-port",
                str(grpc_port),
                "--otlp-http-port",
                str(http_port),
                "--zipkin-port",
                str(zipkin),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.api + "/api/v1/status", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = self.process.stdout.read().decode() if self.process.stdout else ""
                raise AssertionError(f"spyglass serve did not start:\n{output}")
            time.sleep(0.1)

    def status(self) -> dict[str, Any]:
        return cast("dict[str, Any]", httpx.get(self.api + "/api/v1/status", timeout=5).json())

    def send_trace(self, name: str) -> str:
        tracer_provider = provider("durable", http_exporter(self.otlp_http))
        with tracer_provider.get_tracer("t").start_as_current_span(name, kind=SpanKind.SERVER) as span:
            pass
        tracer_provider.shutdown()
        return format(span.get_span_context().trace_id, "032x")

    def trace_names(self, trace_id: str) -> list[str]:
        response = httpx.get(f"{self.api}/api/v1/traces/{trace_id}", timeout=5)
        return [s["name"] for s in response.json()["spans"]] if response.status_code == 200 else []

    def stop(self, sig: int) -> None:
        self.process.send_signal(sig)
        self.process.wait(timeout=30)


def test_committed_traces_survive_kill_9(tmp_path: Path) -> None:
    first = ServeProcess(tmp_path, decision_wait_s=0.1)
    try:
        trace_id = first.send_trace("committed before the crash")
        deadline = time.monotonic() + 15
        while first.status()["spans_stored"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        first.stop(signal.SIGKILL)
    second = ServeProcess(tmp_path, decision_wait_s=0.1)
    try:
        assert second.trace_names(trace_id) == ["committed before the crash"]
        found = httpx.get(second.api + "/api/v1/traces", params={"service": "durable"}).json()["traces"]
        assert [t["trace_id"] for t in found] == [trace_id]
    finally:
        second.stop(signal.SIGTERM)


def test_graceful_stop_writes_out_buffered_traces(tmp_path: Path) -> None:
    first = ServeProcess(tmp_path, decision_wait_s=600)
    try:
        trace_id = first.send_trace("still buffered at shutdown")
        deadline = time.monotonic() + 15
        while first.status()["recall"]["spans"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert first.status()["spans_stored"] == 0
    finally:
        first.stop(signal.SIGTERM)
    assert first.process.returncode == 0
    second = ServeProcess(tmp_path, decision_wait_s=600)
    try:
        assert second.trace_names(trace_id) == ["still buffered at shutdown"]
    finally:
        second.stop(signal.SIGTERM)
