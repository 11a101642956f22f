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
from collections.abc import Callable, Iterator
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


Export = tuple[Callable[[bytes], DecodeResult], bytes]


async def _all(workers: DecodeProcesses, exports: list[Export]) -> list[DecodeResult | BaseException]:
    """Every export sent at once, as many connections would; each answer, or the error it raised."""
    calls = [workers.run(decode, body, "identity", MAX_BYTES) for decode, body in exports]
    return list(await asyncio.gather(*calls, return_exceptions=True))


def test_exports_waiting_together_are_decoded_together_and_answered_apart(processes: DecodeProcesses) -> None:
    """While the workers are busy, what waits goes to the next free one in one batch; each export still gets
    its own answer: its spans, or its own 400."""
    bodies = [
        export_template(rows, f"batch{index:03d}".encode()[:8])
        for index, rows in enumerate([20, 1, 300] * 20)
    ]
    garbage = b"\xff\x00 not protobuf" * 5
    exports: list[Export] = [(decode_otlp_proto, body) for body in bodies]
    exports.insert(17, (decode_otlp_proto, garbage))
    batches, batched = processes.batches, processes.batched_exports
    answers = asyncio.run(_all(processes, exports))
    assert processes.batched_exports - batched == len(exports)
    assert processes.batches - batches < len(exports)  # some were decoded together
    for (_, body), answer in zip(exports, answers, strict=True):
        if body is garbage:
            assert (
                isinstance(answer, DecodeError)
                and str(answer) == _error(DecodeThreads(), garbage).split(": ", 1)[1]
            )
            continue
        assert isinstance(answer, DecodeResult)
        assert answer.batch.equals(decode_otlp_proto(body).batch)


def test_an_export_that_kills_its_worker_in_a_batch_costs_only_itself(processes: DecodeProcesses) -> None:
    good: list[Export] = [
        (decode_otlp_proto, export_template(30, f"good{i:04d}".encode())) for i in range(12)
    ]
    exports: list[Export] = [*good[:4], (_die, b""), *good[4:9], (_die, b""), *good[9:]]
    answers = asyncio.run(_all(processes, exports))
    for (decode, _), answer in zip(exports, answers, strict=True):
        if decode is _die:
            assert isinstance(answer, DecodeError) and "stopped the worker" in str(answer)
        else:
            assert isinstance(answer, DecodeResult) and answer.batch.num_rows == 30
