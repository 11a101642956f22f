"""A flood far above capacity against ``spyglass serve`` in its own process: offered, accepted and refused rates,
how long exports waited for their answer, how queries answered meanwhile, and whether every acknowledged span
was stored.

Senders (``--http-processes`` + ``--grpc-processes`` processes of ``--threads`` senders each, at a lower CPU
priority, as services on other machines would be) send exports of ``--spans-per-export`` spans with fresh trace
ids as fast as they are answered, waiting what the retry advice says after a refusal. The decode rate of the same
body on one core, measured in the same run, is printed beside the accepted rate as its ceiling.

    python bench/flood.py --seconds 60
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.figures import Figure, record  # noqa: E402
from bench.serve_process import start_serve  # noqa: E402
from tests.support.flood import export_template, flood  # noqa: E402


def decode_ceiling(spans_per_export: int, rounds: int = 200) -> float:
    """Spans/s the protobuf decoder alone turns the flood's body into a span batch, on this thread."""
    from spyglass.receivers.decoders.otlp_proto import decode_otlp_proto

    body = export_template(spans_per_export, os.urandom(8))
    started = time.perf_counter()
    for _ in range(rounds):
        decode_otlp_proto(body)
    return rounds * spans_per_export / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--http-processes", type=int, default=3)
    parser.add_argument("--grpc-processes", type=int, default=3)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--spans-per-export", type=int, default=1000)
    parser.add_argument("--sample-rate", type=float, default=1.0)
    args = parser.parse_args()

    ceiling = decode_ceiling(args.spans_per_export)
    server = start_serve(
        "--decision-wait", "1", "--sample-rate", str(args.sample_rate), prefix="spyglass-flood-"
    )
    api_url, http_port, grpc_port = server.api, server.otlp_http_port, server.otlp_grpc_port
    report = flood(
        api_url,
        http_port,
        f"127.0.0.1:{grpc_port}",
        args.seconds,
        http_processes=args.http_processes,
        grpc_processes=args.grpc_processes,
        threads_per_process=args.threads,
        spans_per_export=args.spans_per_export,
    )
    acked = report.acked_spans()
    deadline = time.monotonic() + 120
    status = httpx.get(api_url + "/api/v1/status").json()
    while status["spans_stored"] < acked and time.monotonic() < deadline:
        time.sleep(0.5)
        status = httpx.get(api_url + "/api/v1/status").json()
    server.stop()

    figures = report.summary()
    print(
        f"flood of {args.seconds:g} s: {args.http_processes} HTTP + {args.grpc_processes} gRPC sender processes "
        f"x {args.threads} threads, {args.spans_per_export} spans per export, sample rate {args.sample_rate}"
    )
    print(f"{'what':48s} {'figure':>14s}")
    print(f"{'decode ceiling (one core, same body)':48s} {ceiling:>14,.0f} spans/s")
    for name, value in figures.items():
        print(f"{name:48s} {value:>14,.1f}")
    print(f"{'accepted / decode ceiling':48s} {figures['accepted spans/s'] / ceiling:>14.2f}")
    print(f"{'acknowledged spans':48s} {acked:>14,}")
    print(f"{'spans received (status)':48s} {status['spans_received']:>14,}")
    print(f"{'spans stored (status)':48s} {status['spans_stored']:>14,}")
    print(f"{'failures (not 200/429, not OK/RESOURCE_EXHAUSTED)':48s} {len(report.failures()):>14,}")
    conditions = f"{args.seconds:g} s, sample rate {args.sample_rate}"
    record(
        [
            Figure(
                "flood",
                "accepted under a flood",
                figures["accepted spans/s"],
                "spans/s",
                ceiling=ceiling,
                conditions=conditions,
            ),
            Figure(
                "flood", "acknowledged spans not stored", acked - status["spans_stored"], "spans", at_most=0
            ),
            Figure("flood", "failed requests", len(report.failures()), "requests", at_most=0),
        ]
    )


if __name__ == "__main__":
    main()
