"""Where exports are decoded: in worker processes, so decoding uses every core.

The decoders (ptars, upb protobuf, orjson) hold the GIL while they work, so decode threads in the server's process
take turns on one core. ``DecodeProcesses`` runs decompression and decoding in ``--workers`` processes instead:
the server's process sends the body as received and gets the span (or log) batch back as Arrow IPC, one buffer
read without copying, and keeps only what needs its state (reading HTTP and gRPC, aggregating, buffering,
sampling, writing). ``DecodeThreads`` does the same on threads of this process, for embedding and tests.

Workers are forked from multiprocessing's fork server, which has the decoders imported already, so a worker
starts in milliseconds; the pool starts in the background when the server does. A worker never outlives the
server: the fork server ends when the server's process does, and a worker whose parent ends exits with it.
A worker that dies while decoding (a crash in native code) costs nothing accepted: the pool is replaced, the
exports it held are decoded once more, and one that stops a worker again is refused as undecodable.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol, TypeVar

import pyarrow as pa

from spyglass.background import BACKGROUND_NICENESS, yield_to_queries
from spyglass.receivers.decoders.result import DecodeError, DecodeResult
from spyglass.receivers.http_body import decompress

log = logging.getLogger(__name__)

#: What a decoder returns: a ``DecodeResult`` (spans) or its subclass for log records.
Decoded = TypeVar("Decoded", bound=DecodeResult)

#: Seconds between a worker's checks that the server's process is still there.
PARENT_CHECK_INTERVAL_S = 0.5


def decode_body(decode: Callable[[bytes], Decoded], body: bytes, encoding: str, max_bytes: int) -> Decoded:
    """Undo the content encoding (bounded by ``max_bytes``) and decode: the whole work of one export."""
    return decode(decompress(body, encoding, max_bytes))


class DecodeWorkers(Protocol):
    """Decodes exports off the event loop; ``decode`` must be a module-level function (workers may be processes)."""

    async def run(
        self, decode: Callable[[bytes], Decoded], body: bytes, encoding: str, max_bytes: int
    ) -> Decoded: ...

    def start(self) -> None:
        """Get ready to decode (start workers) without waiting for it."""

    def shutdown(self) -> None:
        """Stop the workers; what is being decoded finishes first."""


class DecodeThreads:
    """Decoding on threads of this process (``executor``; None: asyncio's default executor)."""

    def __init__(self, executor: Executor | None = None) -> None:
        self.executor = executor

    @classmethod
    def pool(cls, workers: int) -> DecodeThreads:
        """``workers`` threads at background priority."""
        return cls(
            ThreadPoolExecutor(workers, thread_name_prefix="spyglass-decode", initializer=yield_to_queries)
        )

    async def run(
        self, decode: Callable[[bytes], Decoded], body: bytes, encoding: str, max_bytes: int
    ) -> Decoded:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, decode_body, decode, body, encoding, max_bytes)

    def start(self) -> None:
        pass

    def shutdown(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True)


class DecodeProcesses:
    """Decoding in ``workers`` processes (see the module's docstring)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False
        #: pools replaced after a worker died, for the log and tests
        self.restarts = 0

    def start(self) -> None:
        """Start the pool on a thread of its own: the fork server's first start takes a second, and nothing
        should wait for it but the first export."""
        threading.Thread(target=self._started_pool, name="spyglass-decode-start", daemon=True).start()

    async def run(
        self, decode: Callable[[bytes], Decoded], body: bytes, encoding: str, max_bytes: int
    ) -> Decoded:
        for _ in range(2):
            pool = self._pool
            if pool is None:
                pool = await asyncio.to_thread(self._started_pool)
            try:
                future: Future[tuple[Decoded, bytes]] = pool.submit(
                    _decode_for_shipping, decode, body, encoding, max_bytes
                )
                shipped = await asyncio.wrap_future(future)
            except BrokenProcessPool:
                self._replace(pool)
                continue
            return _unship(shipped)
        raise DecodeError("decoding this export stopped the worker decoding it")

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _started_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise RuntimeError("the decode workers are shut down")
            if self._pool is None:
                pool = ProcessPoolExecutor(
                    self.workers,
                    mp_context=_fork_server(),
                    initializer=_worker_started,
                    initargs=(os.getpid(),),
                )
                # A first task launches every worker now (ProcessPoolExecutor starts them on first use).
                pool.submit(os.getpid)
                self._pool = pool
            return self._pool

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is not broken:
                return  # another export replaced it already
            self._pool = None
            self.restarts += 1
        log.warning("a decode worker died; starting new ones")
        broken.shutdown(wait=False, cancel_futures=True)


def _fork_server() -> multiprocessing.context.BaseContext:
    """multiprocessing's fork server, with the decoders imported before it forks a worker (when it is not
    running yet: it is one per process)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def _decode_for_shipping(
    decode: Callable[[bytes], Decoded], body: bytes, encoding: str, max_bytes: int
) -> tuple[Decoded, bytes]:
    """In a worker: decode, and send the batch apart as Arrow IPC (one buffer, read back without copying)."""
    result = decode_body(decode, body, encoding, max_bytes)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, result.batch.schema) as writer:
        writer.write_batch(result.batch)
    return dataclasses.replace(result, batch=_NO_BATCH), sink.getvalue().to_pybytes()


def _unship(shipped: tuple[Decoded, bytes]) -> Decoded:
    result, ipc = shipped
    with pa.ipc.open_stream(pa.py_buffer(ipc)) as reader:
        batch = reader.read_next_batch()
    return dataclasses.replace(result, batch=batch)


_NO_BATCH = pa.RecordBatch.from_pydict({})


def _worker_started(server_pid: int) -> None:
    """In a new worker: background priority, as decode threads have, and an end when the server's ends."""
    with contextlib.suppress(OSError):
        os.nice(BACKGROUND_NICENESS)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the server stops us
    _die_with_parent()
    parent = os.getppid()

    def watch() -> None:
        while True:
            threading.Event().wait(PARENT_CHECK_INTERVAL_S)
            if os.getppid() != parent or not _alive(server_pid):
                os._exit(0)

    threading.Thread(target=watch, name="spyglass-decode-watch", daemon=True).start()


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent (the fork server) ends, which it does with the server."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
