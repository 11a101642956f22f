"""Decoding in worker processes: the same batches and the same errors as in the server's own process, a worker
that dies costs no accepted export, and no worker outlives its server, even one killed outright."""

from __future__ import annotations

import asyncio
import gzip
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from spyglass.receivers.decode_workers import DecodeProcesses, DecodeThreads, DecodeWorkers
from spyglass.receivers.decoders.otlp_logs import LogDecodeResult, decode_otlp_logs_proto
from spyglass.receivers.decoders.otlp_proto import decode_otlp_proto
from spyglass.receivers.decoders.result import DecodeError, DecodeResult
from spyglass.receivers.http_body import BodyTooLarge
from tests.support.flood import export_template
from tests.support.ports import free_ports

MAX_BYTES = 1 << 20


@pytest.fixture(scope="module")
def processes() -> Iterator[DecodeProcesses]:
    workers = DecodeProcesses(2)
    workers.start()
    yield workers
    workers.shutdown()


def _run(workers: DecodeWorkers, body: bytes, encoding: str = "identity") -> DecodeResult:
    return asyncio.run(workers.run(decode_otlp_proto, body, encoding, MAX_BYTES))


def _error(workers: DecodeWorkers, body: bytes, encoding: str = "identity") -> str:
    with pytest.raises(DecodeError) as caught:
        _run(workers, body, encoding)
    return f"{type(caught.value).__name__}: {caught.value}"


def _die(body: bytes) -> DecodeResult:
    """A decoder that takes its worker down, as a crash in native code would."""
    os._exit(3)


def test_processes_decode_what_threads_decode(processes: DecodeProcesses) -> None:
    body = export_template(200, b"decodewk")
    in_process = _run(DecodeThreads(), body)
    in_worker = _run(processes, gzip.compress(body), "gzip")
    assert in_worker.batch.num_rows == 200
    assert in_worker.batch.equals(in_process.batch, check_metadata=True)
    assert in_worker.batch.schema == in_process.batch.schema


def test_log_records_come_back_with_their_counts(processes: DecodeProcesses) -> None:
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

    request = logs_service_pb2.ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add().log_records
    records.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, time_unix_nano=1_700_000_000_000_000_000)
    records.add(time_unix_nano=1_700_000_000_000_000_000)  # no trace context: dropped, counted
    body = request.SerializeToString()
    result = asyncio.run(processes.run(decode_otlp_logs_proto, body, "identity", MAX_BYTES))
    assert isinstance(result, LogDecodeResult)
    assert (result.batch.num_rows, result.dropped_records) == (1, 1)
    assert result.batch.equals(decode_otlp_logs_proto(body).batch)


def test_bad_bodies_get_the_same_errors(processes: DecodeProcesses) -> None:
    threads = DecodeThreads()
    garbage = b"\xff\x00 not protobuf" * 10
    bomb = gzip.compress(b"\x00" * (MAX_BYTES + 1))
    for body, encoding in ((garbage, "identity"), (bomb, "gzip"), (b"abc", "gzip"), (b"x", "br")):
        assert _error(processes, body, encoding) == _error(threads, body, encoding)
    with pytest.raises(BodyTooLarge):
        _run(processes, bomb, "gzip")


def test_a_worker_that_dies_is_replaced(processes: DecodeProcesses) -> None:
    restarts = processes.restarts
    with pytest.raises(DecodeError, match="stopped the worker"):
        asyncio.run(processes.run(_die, b"", "identity", MAX_BYTES))
    assert processes.restarts >= restarts + 1
    assert _run(processes, export_template(10, b"afterdie")).batch.num_rows == 10


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                children = [int(c) for c in (task / "children").read_text().split()]
                found.update(children)
                pending.extend(children)
        except FileNotFoundError:
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
def test_no_worker_outlives_its_server(tmp_path: Path, stop: signal.Signals) -> None:
    api, grpc_port, http_port, zipkin = free_ports(4)
    process = subprocess.Popen(
        [sys.executable, "-m", "spyglass.cli", "serve", "--data-dir", str(tmp_path), "--workers", "2"]
        + ["--port", str(api), "--otlp-grpc-port", str(grpc_port), "--otlp-http-port", str(http_port)]
        + ["--zipkin-port", str(zipkin)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = httpx.post(
                    f"http://127.0.0.1:{http_port}/v1/traces",
                    content=export_template(10, b"outlives"),
                    headers={"content-type": "application/x-protobuf"},
                )
                if answer.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "spyglass serve did not start"
            time.sleep(0.1)
        workers = _descendants(process.pid)
        assert len(workers) >= 3  # the fork server and two decode workers
        process.send_signal(stop)
        process.wait(timeout=60)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in workers if _alive(pid)]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize(("workers", "kind"), [(1, DecodeThreads), (2, DecodeProcesses)])
def test_workers_1_starts_no_process(tmp_path: Path, workers: int, kind: type) -> None:
    from spyglass.server import SpyglassServer, loopback_config

    server = SpyglassServer(loopback_config(tmp_path, workers=workers))
    try:
        assert isinstance(server.decode_pool, kind)
    finally:
        server.decode_pool.shutdown()
        server.store.close()
