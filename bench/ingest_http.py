"""Ingest throughput: OTLP/HTTP protobuf in, through aggregator, recall buffer and sampler, DuckDB out.

First measures the receive-to-buffer path in this process on one core (decode, aggregate, pack into the recall
buffer: what every span costs). Then starts ``spyglass serve`` as its own process (so the load generator does
not share its interpreter), sends pre-encoded requests of 1000 spans from several connections, and prints:
spans/s accepted (HTTP 200), spans/s until every trace is decided (``traces_decided`` reaches the total) and
its kept spans are stored, bytes per span on the wire, and on disk.

    python bench/ingest_http.py --spans 500000 --sample-rate 1.0
    python bench/ingest_http.py --spans 500000 --sample-rate 0.05
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from otlp_payloads import export_request, send_all  # noqa: E402
from serve_process import start_serve  # noqa: E402


def receive_to_buffer(bodies: list[bytes], batch: int, rounds: int = 200) -> float:
    """Spans/s through decode, aggregation and the recall buffer, on this thread."""
    from spyglass.receivers.decoders.otlp_proto import decode_otlp_proto
    from spyglass.satellite.aggregator import Aggregator
    from spyglass.satellite.recall_buffer import RecallBuffer

    aggregator = Aggregator()
    buffer = RecallBuffer(max_bytes=1 << 40)
    started = time.perf_counter()
    for index in range(rounds):
        decoded = decode_otlp_proto(bodies[index % len(bodies)]).batch
        aggregator.add(decoded)
        buffer.add(decoded, index)
    return rounds * batch / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=500_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--sample-rate", type=float, default=1.0)
    args = parser.parse_args()

    rng = random.Random(7)
    now = time.time_ns()
    requests_total = args.spans // args.batch
    # Every request distinct: repeating bodies would repeat trace ids, and the sampler would see late spans.
    bodies = [export_request(args.batch, rng, now) for _ in range(requests_total)]
    receive_path = receive_to_buffer(bodies, args.batch)
    server = start_serve(
        "--decision-wait", "1", "--recall-memory-mb", "512", "--sample-rate", str(args.sample_rate)
    )
    data_dir = server.data_dir
    http_port = server.otlp_http_port
    status_url = server.api + "/api/v1/status"

    started = time.perf_counter()
    refused = [send_all(bodies, [http_port], args.connections)]
    sent = [len(bodies) * args.batch]
    accepted_s = time.perf_counter() - started
    total = sent[0]
    traces_total = total // 10  # the payloads hold traces of 10 spans
    while True:
        status = httpx.get(status_url).json()
        if status["traces_decided"] >= traces_total and status["spans_stored"] >= status["traces_kept"] * 10:
            break
        time.sleep(0.05)
    stored_s = time.perf_counter() - started
    status = httpx.get(status_url).json()
    server.stop(timeout_s=60)
    disk = sum(f.stat().st_size for f in data_dir.iterdir())
    wire = sum(len(b) for b in bodies) / (len(bodies) * args.batch)

    rows = [
        (
            "receive-to-buffer path",
            f"{receive_path:,.0f}",
            "spans/s",
            "one core, in process: decode + aggregate + buffer",
        ),
        (
            "spans sent",
            f"{total:,}",
            "spans",
            f"{requests_total} requests of {args.batch}, {args.connections} clients",
        ),
        ("accepted (HTTP 200)", f"{total / accepted_s:,.0f}", "spans/s", "receive + decode + queue"),
        (
            "end to end",
            f"{total / stored_s:,.0f}",
            "spans/s",
            f"all traces decided, kept ones stored; --sample-rate {args.sample_rate}, 1 s decision wait",
        ),
        (
            "traces kept",
            f"{status['traces_kept'] / max(1, status['traces_decided']):.3f}",
            "fraction",
            f"{status['traces_kept']:,} of {status['traces_decided']:,}",
        ),
        ("429 refusals", f"{refused[0]}", "requests", "retried by the client"),
        ("OTLP protobuf on the wire", f"{wire:.0f}", "bytes/span", "uncompressed"),
        (
            "DuckDB on disk",
            f"{disk / max(1, status['spans_stored']):.0f}",
            "bytes/span",
            f"{disk / 1e6:.1f} MB",
        ),
    ]
    print(f"{'what':28} {'figure':>12} {'unit':10} conditions ({os.cpu_count()} cores)")
    for what, figure, unit, conditions in rows:
        print(f"{what:28} {figure:>12} {unit:10} {conditions}")


if __name__ == "__main__":
    main()
