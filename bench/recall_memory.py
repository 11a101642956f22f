"""Resident memory per buffered span in the recall buffer, against the span's OTLP protobuf size.

Decodes realistic 1000-span OTLP requests (the same bodies the ingest benchmark sends) into the recall buffer
of a satellite whose decision wait never ends, and reads the process's resident set size before and after.

    python bench/recall_memory.py --spans 1000000
"""

from __future__ import annotations

import argparse
import gc
import random
import time

from otlp_payloads import export_request

from spyglass.receivers.decoders.otlp_proto import decode_otlp_proto
from spyglass.satellite.recall_buffer import RecallBuffer


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()

    rng = random.Random(3)
    now = time.time_ns()
    requests = args.spans // args.batch
    bodies = [export_request(args.batch, rng, now) for _ in range(requests)]
    wire = sum(len(b) for b in bodies) / (requests * args.batch)
    decode_otlp_proto(bodies[0])  # warm the decoder before measuring
    gc.collect()
    buffer = RecallBuffer(max_bytes=1 << 40)
    before = rss_bytes()
    started = time.perf_counter()
    arrow_bytes = 0
    for index, body in enumerate(bodies):
        batch = decode_otlp_proto(body).batch
        arrow_bytes += batch.nbytes
        buffer.add(batch, arrival_ns=index)
    elapsed = time.perf_counter() - started
    gc.collect()
    after = rss_bytes()
    spans = buffer.spans
    rows = [
        ("spans buffered", f"{spans:,}", "spans", f"{requests} requests of {args.batch}"),
        ("OTLP protobuf", f"{wire:.0f}", "bytes/span", "as sent on the wire, uncompressed"),
        (
            "decoded Arrow (transient)",
            f"{arrow_bytes / spans:.0f}",
            "bytes/span",
            "before the buffer packs it",
        ),
        (
            "recall buffer accounting",
            f"{buffer.nbytes / spans:.0f}",
            "bytes/span",
            "what --recall-memory-mb bounds",
        ),
        ("process RSS growth", f"{(after - before) / spans:.0f}", "bytes/span", "resident memory, after gc"),
        ("decode + buffer", f"{spans / elapsed:,.0f}", "spans/s", "one core, no server"),
    ]
    print(f"{'what':28} {'figure':>12} {'unit':10} conditions")
    for what, figure, unit, conditions in rows:
        print(f"{what:28} {figure:>12} {unit:10} {conditions}")


if __name__ == "__main__":
    main()
