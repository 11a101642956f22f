"""``spyglass serve`` as its own process for benchmarks (so load generators do not share its interpreter): on
free loopback ports, with a fresh data directory, waited for until it answers. With ``logged``, its output goes to a
log beside the data directory (``Served.log``, not counted in the directory's bytes): a failed request can be
traced."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

# The checkout root, for the tests' support code (benches run as scripts from bench/).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.ports import free_ports  # noqa: E402


@dataclass
class Served:
    """A running ``spyglass serve``: its process, data directory and ports."""

    process: subprocess.Popen[bytes]
    data_dir: Path
    api_port: int
    otlp_grpc_port: int
    otlp_http_port: int

    @property
    def log(self) -> Path:
        """Where the server's output goes: beside its data directory."""
        return self.data_dir.with_name(self.data_dir.name + ".log")

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def status(self) -> dict[str, Any]:
        answer: dict[str, Any] = httpx.get(self.api + "/api/v1/status", timeout=10).json()
        return answer

    def stop(self, timeout_s: float = 120.0) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=timeout_s)


def start_serve(
    *flags: str,
    checkout: Path | None = None,
    prefix: str = "spyglass-bench-",
    logged: bool = False,
    data_dir: Path | None = None,
) -> Served:
    """``spyglass serve`` with ``flags`` besides the data directory and ports; ``checkout`` runs the package of
    another checkout (its directory on ``PYTHONPATH`` and as the working directory); ``data_dir`` serves the
    data an earlier server left (a new temporary directory unless given)."""
    data_dir = data_dir if data_dir is not None else Path(tempfile.mkdtemp(prefix=prefix))
    api, grpc_port, http_port, zipkin = free_ports(4)
    env = dict(os.environ)
    log = data_dir.with_name(data_dir.name + ".log").open("wb") if logged else subprocess.DEVNULL
    if checkout is not None:
        env["PYTHONPATH"] = str(checkout)
    process = subprocess.Popen(
        [sys.executable, "-m", "spyglass.cli", "serve", "--data-dir", str(data_dir), "--port", str(api)]
        + [
            "--otlp-grpc-port",
            str(grpc_port),
            "--otlp-http-port",
            str(http_port),
            "--zipkin-port",
            str(zipkin),
        ]
        + list(flags),
        cwd=str(checkout) if checkout is not None else None,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    if not isinstance(log, int):
        log.close()  # the server holds its own
    served = Served(process, data_dir, api, grpc_port, http_port)
    deadline = time.monotonic() + 60
    while True:
        try:
            served.status()
            return served
        except httpx.HTTPError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("spyglass serve did not start") from None
            time.sleep(0.1)
