"""A trace by id in the recall buffer, as the API's trace lookup asks it, in a full buffer that changes between
lookups (as it does while spans arrive) and in one that stands still.

Every trace lookup through the API asks the recall buffer too (a recent trace may have spans there that the
store lacks). A full buffer is millions of spans in thousands of chunks, and while spans arrive, chunks come and
go every few milliseconds. The buffer is filled through the satellite's own steps (``add``, ``take_quiet``,
``retain_decided``) with realistic 1000-span OTLP requests, kept traces marked as the sampler marks them; then
each lookup follows one more request taken in and decided (the buffer evicting its oldest chunks to stay in its
bound), or none.

    .venv/bin/python bench/recall_lookup.py --recall-memory-mb 512
"""

from __future__ import annotations

# First: spyglass sets numpy's CPU dispatch before numpy loads, as in `spyglass serve` (numpy_sort_dispatch).
import spyglass  # noqa: F401

# isort: split

import argparse
import random
import statistics
import threading
import time

import pyarrow as pa
import pyarrow.compute as pc
from figures import Figure, record
from otlp_payloads import export_request

from spyglass.receivers.decoders.otlp_proto import decode_otlp_proto
from spyglass.satellite.recall_buffer import RecallBuffer

#: Distinct requests generated; the fill and the churn cycle through them with fresh trace ids.
BODIES = 200
SPANS_PER_REQUEST = 1000


def _fresh_ids(batch: pa.RecordBatch, serial: int) -> pa.RecordBatch:
    """The batch with its trace ids made unique to ``serial`` (the last 4 bytes), so every request is new."""
    ids = batch.column("trace_id")
    suffix = serial.to_bytes(4, "big")
    fresh = pa.array([value[:12] + suffix for value in ids.to_pylist()], ids.type)
    return batch.set_column(batch.schema.get_field_index("trace_id"), "trace_id", fresh)


def _take_in(buffer: RecallBuffer, batch: pa.RecordBatch, serial: int) -> list[bytes]:
    """One request through the satellite's steps: buffered, decided (every trace kept, as ``query_api.py``'s
    server keeps them), retained."""
    buffer.add(batch, arrival_ns=serial)
    buffer.make_room(0)
    quiet = buffer.take_quiet(serial)
    ids = pc.unique(quiet.column("trace_id"))
    buffer.retain_decided(quiet, serial, ids)
    return list(ids.to_pylist())


def _timed(
    buffer: RecallBuffer, trace_ids: list[bytes], churn: list[pa.RecordBatch] | None, first: int
) -> list[float]:
    samples = []
    for index, trace_id in enumerate(trace_ids):
        if churn is not None:
            _take_in(buffer, churn[index % len(churn)], first + index)
        started = time.perf_counter()
        found = buffer.trace(trace_id, skip_kept=True)
        samples.append((time.perf_counter() - started) * 1000)
        # Kept, so passed over (the store has it); asked whole, it is there.
        if found.num_rows or (churn is None and buffer.trace(trace_id).num_rows == 0):
            raise RuntimeError("a buffered trace was not found as it should be")
    return samples


#: Spans a second the deciding thread takes in, in rounds of ``ROUND_S``, as the satellite's decision ticks.
DECIDING_SPANS_PER_S = 50_000
ROUND_S = 0.25


def _timed_while_deciding(
    buffer: RecallBuffer, trace_ids: list[bytes], batches: list[pa.RecordBatch], first: int
) -> list[float]:
    """Lookups 5 ms apart while another thread takes ``DECIDING_SPANS_PER_S`` in and decides them round by
    round, as the satellite's decide thread does beside the API's: what a lookup waits for the buffer's lock."""
    stop = threading.Event()
    per_round = max(1, int(DECIDING_SPANS_PER_S * ROUND_S) // SPANS_PER_REQUEST)

    def decide() -> None:
        serial, began, rounds = first, time.perf_counter(), 0
        while not stop.is_set():
            group = pa.Table.from_batches(
                [_fresh_ids(batches[(serial + i) % len(batches)], serial + i) for i in range(per_round)]
            ).combine_chunks()
            buffer.make_room(RecallBuffer.packed_size(group.to_batches()[0]))
            buffer.add(group.to_batches()[0], arrival_ns=serial + per_round)
            quiet = buffer.take_quiet(serial)  # the last round's requests
            buffer.retain_decided(quiet, serial, pc.unique(quiet.column("trace_id")))
            serial += per_round
            rounds += 1
            stop.wait(max(0.0, began + rounds * ROUND_S - time.perf_counter()))

    thread = threading.Thread(target=decide)
    thread.start()
    try:
        samples = []
        for trace_id in trace_ids:
            started = time.perf_counter()
            buffer.trace(trace_id, skip_kept=True)
            samples.append((time.perf_counter() - started) * 1000)
            time.sleep(0.005)
        return samples
    finally:
        stop.set()
        thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recall-memory-mb", type=int, default=512)
    parser.add_argument("--lookups", type=int, default=300)
    args = parser.parse_args()

    rng = random.Random(11)
    now = time.time_ns()
    batches = [decode_otlp_proto(export_request(SPANS_PER_REQUEST, rng, now)).batch for _ in range(BODIES)]
    buffer = RecallBuffer(max_bytes=args.recall_memory_mb << 20)
    began = time.perf_counter()
    serial = 0
    recent: list[bytes] = []
    # Fill until the buffer evicts: it is full, and stays so.
    while buffer.nbytes < buffer.max_bytes * 0.85:
        recent = _take_in(buffer, _fresh_ids(batches[serial % BODIES], serial), serial)[-50:] + recent[:2000]
        serial += 1
    filled_s = time.perf_counter() - began
    spans, chunks = buffer.spans, serial
    print(
        f"filled {buffer.nbytes / 2**20:,.0f} MB: {spans:,} spans from {chunks:,} requests in {filled_s:.0f} s"
    )

    wanted = [recent[rng.randrange(len(recent))] for _ in range(args.lookups)]
    churn = [_fresh_ids(batches[index % BODIES], 10**6 + index) for index in range(args.lookups)]
    still = _timed(buffer, wanted, None, 0)
    changing = _timed(buffer, wanted, churn, serial)
    deciding = _timed_while_deciding(buffer, wanted * 4, batches, serial + 10**6)

    def p99(samples: list[float]) -> float:
        ordered = sorted(samples)
        return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]

    print(f"{'trace by id in the recall buffer':<52} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for label, samples in (
        ("a buffer that stands still", still),
        ("a buffer taking a request between", changing),
        (f"while another thread decides {DECIDING_SPANS_PER_S:,} spans/s", deciding),
    ):
        print(f"{label:<52} {statistics.median(samples):>8.3f} {p99(samples):>8.3f} {max(samples):>8.3f}")
    record(
        [
            Figure(
                "recall_lookup",
                "trace by id in a full recall buffer taking spans in, p50",
                statistics.median(changing),
                "ms",
                conditions=f"{spans:,} spans buffered ({args.recall_memory_mb} MB)",
            ),
            Figure(
                "recall_lookup",
                f"trace by id in a full recall buffer while another thread decides "
                f"{DECIDING_SPANS_PER_S:,} spans/s, p99",
                p99(deciding),
                "ms",
                conditions=f"{spans:,} spans buffered ({args.recall_memory_mb} MB)",
            ),
        ]
    )


if __name__ == "__main__":
    main()
