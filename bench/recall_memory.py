"""Resident memory per buffered span in the recall buffer, against the span's OTLP protobuf size; and the whole
server's resident memory under a flood, against its ``--recall-memory-mb``.

Decodes realistic 1000-span OTLP requests (the same bodies the ingest benchmark sends) into the recall buffer
of a satellite whose decision wait never ends, and reads the process's resident set size before and after.

With ``--flood SECONDS``, starts ``spyglass serve --recall-memory-mb MB`` for each MB of ``--recall-memory-mb``
and floods it over OTLP/HTTP and gRPC (as ``flood.py`` does) while reading its resident set size every 0.2 s:
the peak beyond the bound is the constant the server needs besides the recall buffer.

    python bench/recall_memory.py --spans 1000000
    python bench/recall_memory.py --flood 60 --recall-memory-mb 32,128
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import threading
import time
from pathlib import Path

from figures import Figure, record
from otlp_payloads import export_request

from spyglass.receivers.decoders.otlp_proto import decode_otlp_proto
from spyglass.satellite.recall_buffer import RecallBuffer


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def process_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def flood_rss(
    seconds: float, recall_memory_mb: int, processes: int, checkout: Path | None = None
) -> tuple[int, int, dict[str, int]]:
    """(peak RSS, RSS after start, recall figures at the end) of a server flooded for ``seconds``."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.serve_process import start_serve
    from tests.support.flood import flood

    server = start_serve(
        "--decision-wait",
        "1",
        "--recall-memory-mb",
        str(recall_memory_mb),
        checkout=checkout,
        prefix="spyglass-rss-",
    )
    pid = server.process.pid
    idle = process_rss_bytes(pid)
    peak = [idle]
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], process_rss_bytes(pid))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        flood(
            server.api,
            server.otlp_http_port,
            f"127.0.0.1:{server.otlp_grpc_port}",
            seconds,
            http_processes=processes,
            grpc_processes=processes,
        )
        recall = server.status()["recall"]
    finally:
        done.set()
        watcher.join()
        server.stop()
    return peak[0], idle, recall


def flood_main(args: argparse.Namespace) -> None:
    print(
        f"{'--recall-memory-mb':>18} {'idle RSS MB':>12} {'peak RSS MB':>12} {'peak - bound MB':>16} recall at end"
    )
    for megabytes in (int(mb) for mb in args.recall_memory_mb.split(",")):
        peak, idle, recall = flood_rss(args.flood, megabytes, args.processes, args.checkout)
        print(
            f"{megabytes:>18} {idle / 2**20:>12.0f} {peak / 2**20:>12.0f} {peak / 2**20 - megabytes:>16.0f} "
            f"{recall.get('spans', 0):,} spans in {recall.get('bytes', 0) / 2**20:.0f} MB"
        )
        record(
            [
                Figure(
                    "recall_memory",
                    f"peak RSS under a flood beyond --recall-memory-mb {megabytes}",
                    peak / 2**20 - megabytes,
                    "MB",
                    conditions=f"{args.flood:g} s flood",
                )
            ]
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--flood", type=float, default=0, help="flood a server this many seconds instead")
    parser.add_argument("--recall-memory-mb", default="32,128", help="bounds to flood with, comma-separated")
    parser.add_argument("--processes", type=int, default=2, help="HTTP and as many gRPC sender processes")
    parser.add_argument("--checkout", type=Path, help="flood the server of another checkout instead")
    args = parser.parse_args()
    if args.flood:
        flood_main(args)
        return

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
    record(
        [
            Figure(
                "recall_memory",
                "recall buffer, resident per span",
                (after - before) / spans,
                "bytes/span",
                at_most=60,
                ceiling=wire,
                conditions=f"{spans:,} spans; ceiling: OTLP protobuf size",
            )
        ]
    )


if __name__ == "__main__":
    main()
