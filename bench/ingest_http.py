"""Ingest throughput: OTLP/HTTP protobuf in, through aggregator, recall buffer and sampler, DuckDB out.

First measures the receive-to-buffer path in this process on one core (decode, aggregate, pack into the recall
buffer: what every span costs), beside the decode ceiling (ptars alone, on the same bodies, in the same run) and
spyglass's own decode, each as a share of the ceiling. Then starts ``spyglass serve`` as its own process (so the load generator does
not share its interpreter), sends pre-encoded requests of 1000 spans from several connections, and prints:
spans/s accepted (HTTP 200), spans/s until every trace is decided (``traces_decided`` reaches the total) and
its kept spans are stored, bytes per span on the wire, and on disk.

    python bench/ingest_http.py --spans 500000 --sample-rate 1.0
    python bench/ingest_http.py --spans 500000 --sample-rate 0.05
    python bench/ingest_http.py --spans 100000 --receive-only
"""

from __future__ import annotations

# First: spyglass sets numpy's CPU dispatch before numpy loads, as in `spyglass serve` (numpy_sort_dispatch).
import spyglass  # noqa: F401

# isort: split

import argparse
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).parent))
from figures import Figure, record  # noqa: E402
from otlp_payloads import export_request, send_all  # noqa: E402
from serve_process import start_serve  # noqa: E402


@dataclass(frozen=True)
class ReceivePath:
    """Spans/s on one core (CPU time of this thread), each stage measured on the same bodies, interleaved."""

    ceiling: float  # ptars alone: request bytes -> Arrow, one row per span
    decode: float  # spyglass's decoder: request bytes -> ``SPAN_SCHEMA`` columns, validated
    receive_to_buffer: float  # decode + aggregate + pack into the recall buffer
    #: spyglass's decoder on ``TOGETHER`` exports at once, as a decode worker takes those waiting for it
    decode_together: float
    #: the same path as a busy server runs it: decoded ``TOGETHER`` at once, aggregated and packed ``GATHERED``
    #: exports at once, as the decide loop takes in what arrived during a round
    busy_receive_to_buffer: float


def receive_to_buffer(bodies: list[bytes], batch: int, rounds: int = 300) -> ReceivePath:
    """The receive-to-buffer path beside its ceilings, on this thread. Each round runs every stage on the
    same body one after another and adds up each stage's CPU time, so other load on the machine slows all
    stages alike and the ratios hold even when the absolute figures do not."""
    from otlp_payloads import ptars_decoder

    from spyglass.model.schema import SPAN_SCHEMA
    from spyglass.receivers.decoders.otlp_proto import decode_otlp_proto, decode_otlp_proto_many
    from spyglass.satellite.aggregator import Aggregator
    from spyglass.satellite.recall_buffer import RecallBuffer

    ceiling_decode = ptars_decoder()
    aggregator = Aggregator()
    buffer = RecallBuffer(max_bytes=1 << 40)
    busy_aggregator = Aggregator()
    busy_buffer = RecallBuffer(max_bytes=1 << 40)
    for body in bodies[:3]:  # warm up every stage
        ceiling_decode(body)
        decode_otlp_proto(body)
    ceiling_s = decode_s = path_s = together_s = busy_s = 0.0
    clock = time.thread_time
    for index in range(rounds):
        body = bodies[index % len(bodies)]
        group = [bodies[(index + k) % len(bodies)] for k in range(TOGETHER)]
        began = clock()
        ceiling_decode(body)
        decoded_at = clock()
        decode_otlp_proto(body)
        path_at = clock()
        decoded = decode_otlp_proto(body).batch
        aggregator.add(decoded)
        buffer.add(decoded, index)
        ended = clock()
        if index % TOGETHER == 0:
            decode_otlp_proto_many(group)
            together_s += clock() - ended
        if index % GATHERED == 0:
            gathered = [bodies[(index + k) % len(bodies)] for k in range(GATHERED)]
            busy_began = clock()
            answers = [
                answer
                for at in range(0, GATHERED, TOGETHER)
                for answer in decode_otlp_proto_many(gathered[at : at + TOGETHER])
            ]
            taken = pa.Table.from_batches([a.batch for a in answers], schema=SPAN_SCHEMA).combine_chunks()
            taken_batch = taken.to_batches()[0]
            busy_aggregator.add(taken_batch)
            busy_buffer.add(taken_batch, index)
            busy_s += clock() - busy_began
        ceiling_s += decoded_at - began
        decode_s += path_at - decoded_at
        path_s += ended - path_at
    spans = rounds * batch
    together_spans = len(range(0, rounds, TOGETHER)) * TOGETHER * batch
    busy_spans = len(range(0, rounds, GATHERED)) * GATHERED * batch
    return ReceivePath(
        spans / ceiling_s,
        spans / decode_s,
        spans / path_s,
        together_spans / together_s,
        busy_spans / busy_s,
    )


#: Exports a busy decode worker takes at once in the bench's figure of decoding together.
TOGETHER = 4
#: Exports of 1,000 spans the decide loop takes in at once when busy (it gathers up to 16,384 spans a round).
GATHERED = 16


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=500_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--sample-rate", type=float, default=1.0)
    parser.add_argument(
        "--receive-only", action="store_true", help="measure the in-process receive-to-buffer path only"
    )
    args = parser.parse_args()

    rng = random.Random(7)
    now = time.time_ns()
    requests_total = args.spans // args.batch
    # Every request distinct: repeating bodies would repeat trace ids, and the sampler would see late spans.
    bodies = [export_request(args.batch, rng, now) for _ in range(requests_total)]
    receive_path = receive_to_buffer(bodies, args.batch)
    if args.receive_only:
        print_rows(receive_rows(receive_path))
        record(receive_figures(receive_path))
        return
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
        *receive_rows(receive_path),
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
    print_rows(rows)
    conditions = f"{total:,} spans, --sample-rate {args.sample_rate}"
    record(
        [
            *(receive_figures(receive_path) if args.sample_rate == 1.0 else []),
            Figure(
                "ingest_http",
                f"OTLP/HTTP accepted, --sample-rate {args.sample_rate}",
                total / accepted_s,
                "spans/s",
                ceiling=receive_path.ceiling,
                conditions=conditions,
            ),
            Figure(
                "ingest_http",
                f"OTLP/HTTP end to end, --sample-rate {args.sample_rate}",
                total / stored_s,
                "spans/s",
                at_least=150_000 if args.sample_rate <= 0.05 else 100_000,
                ceiling=receive_path.ceiling,
                conditions=conditions + ", 1 s decision wait",
            ),
        ]
    )


def receive_figures(path: ReceivePath) -> list[Figure]:
    """The receive-to-buffer figures for bench/all.py's table, against the ptars ceiling of the same bodies."""
    return [
        Figure("ingest_http", "spyglass decode, one core", path.decode, "spans/s", ceiling=path.ceiling),
        Figure(
            "ingest_http",
            f"spyglass decode, {TOGETHER} exports together, one core",
            path.decode_together,
            "spans/s",
            ceiling=path.ceiling,
        ),
        receive_to_buffer_figure(
            "receive-to-buffer, one core",
            path.receive_to_buffer,
            path.ceiling,
            "one export at a time, as an idle server",
        ),
        receive_to_buffer_figure(
            "receive-to-buffer as a busy server runs it, one core",
            path.busy_receive_to_buffer,
            path.ceiling,
            f"{TOGETHER} exports decoded together, {GATHERED} aggregated and packed together",
        ),
    ]


def receive_to_buffer_figure(name: str, value: float, ceiling: float, how: str) -> Figure:
    """A receive-to-buffer figure against its target, half the ptars decode ceiling of the same bodies."""
    return Figure(
        "ingest_http",
        name,
        value,
        "spans/s",
        at_least=0.5 * ceiling,
        ceiling=ceiling,
        conditions=f"target: half the ptars decode ceiling; {how}",
    )


def receive_rows(path: ReceivePath) -> list[tuple[str, str, str, str]]:
    """The receive-to-buffer path and its ceilings, each with its share of the ceiling."""
    return [
        (
            "decode ceiling (ptars)",
            f"{path.ceiling:,.0f}",
            "spans/s",
            "one core: request -> Arrow, no checks",
        ),
        (
            "spyglass decode",
            f"{path.decode:,.0f}",
            "spans/s",
            f"{path.decode / path.ceiling:.2f} of the ceiling: -> SPAN_SCHEMA, validated",
        ),
        (
            f"decode, {TOGETHER} together",
            f"{path.decode_together:,.0f}",
            "spans/s",
            f"{path.decode_together / path.ceiling:.2f} of the ceiling: as a busy decode worker takes them",
        ),
        (
            "receive-to-buffer path",
            f"{path.receive_to_buffer:,.0f}",
            "spans/s",
            f"{path.receive_to_buffer / path.ceiling:.2f} of the ceiling: decode + aggregate + recall buffer",
        ),
        (
            "receive-to-buffer, busy",
            f"{path.busy_receive_to_buffer:,.0f}",
            "spans/s",
            f"{path.busy_receive_to_buffer / path.ceiling:.2f} of the ceiling: the same, {TOGETHER} exports "
            f"decoded together, {GATHERED} taken in together",
        ),
    ]


def print_rows(rows: list[tuple[str, str, str, str]]) -> None:
    print(f"{'what':28} {'figure':>12} {'unit':10} conditions ({os.cpu_count()} cores)")
    for what, figure, unit, conditions in rows:
        print(f"{what:28} {figure:>12} {unit:10} {conditions}")


if __name__ == "__main__":
    main()
