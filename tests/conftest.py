"""Shared fixtures: a real spyglass server on loopback (every port chosen by the OS) with a real DuckDB file."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import httpx
import pytest

if TYPE_CHECKING:
    from spyglass.server import BoundPorts, SpyglassServer


@dataclass
class RunningServer:
    server: SpyglassServer
    ports: BoundPorts
    data_dir: Path

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports.api}"

    @property
    def otlp_http(self) -> str:
        return f"http://127.0.0.1:{self.ports.otlp_http}"

    @property
    def otlp_grpc(self) -> str:
        return f"127.0.0.1:{self.ports.otlp_grpc}"

    @property
    def zipkin(self) -> str:
        return f"http://127.0.0.1:{self.ports.zipkin}/api/v2/spans"

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.api + path, timeout=10, **kwargs)

    def status(self) -> dict[str, Any]:
        return cast("dict[str, Any]", self.get("/api/v1/status").json())

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float = 15.0
    ) -> dict[str, Any]:
        """Poll ``/api/v1/status`` until ``predicate`` holds."""
        deadline = time.monotonic() + timeout_s
        status = self.status()
        while not predicate(status):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting; last status {status}")
            time.sleep(0.05)
            status = self.status()
        return status

    def flush(self) -> None:
        """Decide every buffered trace now and wait until it is stored."""
        self.server.satellite.flush()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Start servers with config overrides; every one is stopped at the end of the test."""
    from spyglass.server import SpyglassServer, loopback_config

    started: list[SpyglassServer] = []

    def start(data_dir: Path | None = None, **overrides: Any) -> RunningServer:
        overrides.setdefault("decision_wait_s", 0.2)
        directory = data_dir or tmp_path / f"data{len(started)}"
        server = SpyglassServer(loopback_config(directory, **overrides))
        ports = server.start_in_thread()
        started.append(server)
        return RunningServer(server, ports, directory)

    yield start
    for server in started:
        server.stop_thread()


@pytest.fixture
def spyglass(start_server: Callable[..., RunningServer]) -> RunningServer:
    """One running server with default settings (decision wait 0.2 s)."""
    return start_server()
