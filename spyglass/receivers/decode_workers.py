"""Where exports are decoded: in worker processes, so decoding uses every core.

The decoders (ptars, upb protobuf, orjson) hold the GIL while they work, so decode threads in the server's process
take turns on one core. ``DecodeProcesses`` runs decompression and decoding in ``--workers`` processes instead:
the server's process sends the body as received and gets the span (or log) batch back as Arrow IPC, one buffer
read without copying, and keeps only what needs its state (reading HTTP and gRPC, aggregating, buffering,
sampling, writing). ``DecodeThreads`` does the same on threads of this process, for embedding and tests.

Workers are forked from multiprocessing's fork server, which has the decoders imported already, so a worker
starts in milliseconds; the pool starts in the background when the server does. A worker never outlives the
server: the fork server ends when the server's process does, and a worker whose parent ends exits with it.
Exports that wait together for a worker are decoded together (``DecodeProcesses``). A worker that dies while
decoding (a crash in native code) costs nothing accepted: the pool is replaced, the exports in flight are
decoded once more, one at a time, and one that stops a worker again is refused as undecodable.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import functools
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Protocol, TypeVar, cast

import pyarrow as pa

from spyglass.background import BACKGROUND_NICENESS, yield_to_queries
from spyglass.receivers.decoders.otlp_proto import decode_otlp_proto, decode_otlp_proto_many
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


#: At most this many exports, and this many bytes of them, go to a worker at once.
MAX_BATCH_EXPORTS = 32
MAX_BATCH_BYTES = 16 * 1024 * 1024


@dataclass
class _Export:
    """One export waiting for a worker, and where its answer goes."""

    decode: Callable[[bytes], DecodeResult]
    body: bytes
    encoding: str
    max_bytes: int
    answer: Future[DecodeResult] = field(default_factory=Future)
    #: Workers that died while it was being decoded; at two it is refused.
    crashes: int = 0

    def work(self) -> tuple[Callable[[bytes], DecodeResult], bytes, str, int]:
        return self.decode, self.body, self.encoding, self.max_bytes


class DecodeProcesses:
    """Decoding in ``workers`` processes (see the module's docstring).

    A worker takes every export waiting when it frees up (up to ``MAX_BATCH_EXPORTS``): most of decoding a
    small export is per call (1.7 ms of 10 spans, 3 of 1,000), and exports decoded together pay it once
    (``decode_otlp_proto_many``). An idle server decodes each export as it comes, without waiting for more."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._waiting: deque[_Export] = deque()
        self._busy = 0  # batches handed to the pool and not answered yet
        self._suspect_running = False
        self._starting = False
        self._queue_lock = threading.Lock()
        #: pools replaced after a worker died, for the log and tests
        self.restarts = 0
        #: batches handed to workers and the exports in them, for tests and benchmarks
        self.batches = 0
        self.batched_exports = 0

    def start(self) -> None:
        """Start the pool on a thread of its own: the fork server's first start takes a second, and nothing
        should wait for it but the first export."""
        threading.Thread(target=self._started_pool, name="spyglass-decode-start", daemon=True).start()

    async def run(
        self, decode: Callable[[bytes], Decoded], body: bytes, encoding: str, max_bytes: int
    ) -> Decoded:
        export = _Export(decode, body, encoding, max_bytes)
        with self._queue_lock:
            self._waiting.append(export)
        self._dispatch()
        return cast(Decoded, await asyncio.wrap_future(export.answer))

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        self._refuse_waiting(RuntimeError("the decode workers are shut down"))

    def _dispatch(self) -> None:
        """Hand what waits to the workers that are free, each taking all it can (any thread may call this)."""
        pool = self._pool
        if pool is None:
            self._start_then_dispatch()
            return
        while True:
            with self._queue_lock:
                if not self._waiting or self._busy >= self.workers or self._suspect_running:
                    return
                if self._waiting[0].crashes and self._busy:
                    return  # a suspect is decoded with nothing else in flight: a crash is then its own
                batch = self._next_batch()
                self._suspect_running = bool(batch[0].crashes)
                self._busy += 1
                self.batches += 1
                self.batched_exports += len(batch)
            try:
                future = pool.submit(_decode_batch, [export.work() for export in batch])
            except BrokenProcessPool:
                self._batch_failed(batch, pool)
                continue
            except RuntimeError as error:  # shut down meanwhile
                self._finished(batch)
                for export in batch:
                    export.answer.set_exception(error)
                continue
            future.add_done_callback(functools.partial(self._batch_done, batch, pool))

    def _next_batch(self) -> list[_Export]:
        """The waiting exports one worker takes (under the queue lock): all up to the bounds, or a suspect (an
        export in flight when a worker died) alone."""
        first = self._waiting.popleft()
        batch, size = [first], len(first.body)
        if first.crashes:
            return batch
        while self._waiting and len(batch) < MAX_BATCH_EXPORTS:
            following = self._waiting[0]
            if following.crashes or size + len(following.body) > MAX_BATCH_BYTES:
                break
            batch.append(self._waiting.popleft())
            size += len(following.body)
        return batch

    def _batch_done(self, batch: list[_Export], pool: ProcessPoolExecutor, future: Future[_Shipped]) -> None:
        try:
            answers = future.result()
        except BrokenProcessPool:
            self._batch_failed(batch, pool)
        except BaseException as error:  # noqa: BLE001 (handed to every export's caller)
            self._finished(batch)
            for export in batch:
                export.answer.set_exception(error)
        else:
            self._finished(batch)
            for export, answer in zip(batch, answers, strict=True):
                if isinstance(answer, BaseException):
                    export.answer.set_exception(answer)
                else:
                    export.answer.set_result(_unship(answer))
        self._dispatch()

    def _finished(self, batch: list[_Export]) -> None:
        with self._queue_lock:
            self._busy -= 1
            if batch[0].crashes:
                self._suspect_running = False

    def _batch_failed(self, batch: list[_Export], pool: ProcessPoolExecutor) -> None:
        """A worker died: a new pool. A worker's death fails every batch in flight, so each of their exports is
        a suspect, decoded again alone with nothing else in flight (first in line); a suspect that takes a worker
        down that way did it, and is refused. So a crashing export costs only itself."""
        self._replace(pool)
        self._finished(batch)
        again = []
        for export in batch:
            export.crashes += 1
            if export.crashes >= 2:
                export.answer.set_exception(
                    DecodeError("decoding this export stopped the worker decoding it")
                )
            else:
                again.append(export)
        with self._queue_lock:
            self._waiting.extendleft(reversed(again))

    def _start_then_dispatch(self) -> None:
        """The pool is not started yet: start it on a thread (the first start takes a second), then dispatch."""
        with self._queue_lock:
            if self._starting:
                return
            self._starting = True

        def start() -> None:
            try:
                self._started_pool()
            except RuntimeError as error:
                self._refuse_waiting(error)
                return
            finally:
                with self._queue_lock:
                    self._starting = False
            self._dispatch()

        threading.Thread(target=start, name="spyglass-decode-start", daemon=True).start()

    def _refuse_waiting(self, error: Exception) -> None:
        with self._queue_lock:
            waiting, self._waiting = list(self._waiting), deque()
        for export in waiting:
            export.answer.set_exception(error)

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
                return  # another batch replaced it already
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


#: What a worker sends back for one export: its answer with the batch apart as Arrow IPC (one buffer, read back
#: without copying), or the error it raised.
_Answer = tuple[DecodeResult, bytes] | BaseException
_Shipped = list[_Answer]

#: Decoders of one export with a variant decoding several in one pass (each answered as alone).
_TOGETHER: dict[
    Callable[[bytes], DecodeResult], Callable[[list[bytes]], list[DecodeResult | DecodeError]]
] = {
    decode_otlp_proto: decode_otlp_proto_many,
}


def _decode_batch(exports: list[tuple[Callable[[bytes], DecodeResult], bytes, str, int]]) -> _Shipped:
    """In a worker: every export's content encoding undone, then decoded, together where a decoder can."""
    answers: list[DecodeResult | BaseException | None] = [None] * len(exports)
    together: dict[Callable[[list[bytes]], list[DecodeResult | DecodeError]], list[tuple[int, bytes]]] = {}
    for index, (decode, body, encoding, max_bytes) in enumerate(exports):
        many = _TOGETHER.get(decode)
        try:
            if many is None:
                answers[index] = decode_body(decode, body, encoding, max_bytes)
            else:
                together.setdefault(many, []).append((index, decompress(body, encoding, max_bytes)))
        except Exception as error:  # noqa: BLE001 (the export's own answer; the others go on)
            answers[index] = error
    for many, items in together.items():
        for (index, _), answer in zip(items, many([body for _, body in items]), strict=True):
            answers[index] = answer
    return [
        _shipped(cast(DecodeResult | BaseException, answer)) for answer in answers
    ]  # each export answered


def _shipped(answer: DecodeResult | BaseException) -> _Answer:
    if isinstance(answer, BaseException):
        return answer
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, answer.batch.schema) as writer:
        writer.write_batch(answer.batch)
    return dataclasses.replace(answer, batch=_NO_BATCH), sink.getvalue().to_pybytes()


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
