"""Aggregator throughput and rollup volume.

1. Spans/s through ``Aggregator.add`` on realistic 1000-span batches (OTLP requests from ``otlp_payloads``,
   decoded by the protobuf decoder; six services, ~70 operations, five tracked attributes per span), beside
   the ceiling of decoding the same requests (ptars alone, and spyglass's decoder); then with every span
   head-sampled (``ot=th`` in its ``tracestate``, weighed by its adjusted count), and with a distinct
   ``tracestate`` on every span.
2. Rollup rows and bytes on disk (DuckDB, after checkpoint) per minute of simulated traffic at several rates,
   draining once a second as the satellite does, against the naive policy of draining every open bucket
   every second.

    python bench/aggregate.py [--batches 300] [--rates 1000,10000,100000]
"""

from __future__ import annotations

# First: spyglass sets numpy's CPU dispatch before numpy loads, as in `spyglass serve` (numpy_sort_dispatch).
import spyglass  # noqa: F401

# isort: split

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).parent))
from otlp_payloads import export_request, ptars_decoder  # noqa: E402

from spyglass.receivers.decoders.otlp_proto import decode_otlp_proto  # noqa: E402
from spyglass.satellite.aggregator import Aggregator  # noqa: E402
from spyglass.store.duckdb_store import DuckDBStore  # noqa: E402
from spyglass.store.protocol import RollupQuery  # noqa: E402

SECOND = 1_000_000_000


def requests(count: int, now_ns: int) -> list[bytes]:
    rng = random.Random(7)
    return [export_request(1000, rng, now_ns) for _ in range(count)]


def throughput(samples: list[pa.RecordBatch], rounds: int) -> float:
    aggregator = Aggregator()
    aggregator.add(samples[0])
    began = time.perf_counter()
    for i in range(rounds):
        aggregator.add(samples[i % len(samples)])
        if i % 100 == 99:
            aggregator.drain()  # as the satellite does once a second
    elapsed = time.perf_counter() - began
    return rounds * 1000 / elapsed


def flooded(batch: pa.RecordBatch, round_: int) -> pa.RecordBatch:
    """The batch with a distinct ``host.name`` on every span: the worst case for the bounded value tables."""
    n = batch.num_rows
    field = batch.schema.field("resource")
    hosts = pa.MapArray.from_arrays(
        pa.array(np.arange(n + 1, dtype=np.int32)),
        pa.array(["host.name"] * n),
        pa.array([f"host-{round_}-{i}" for i in range(n)]),
        type=field.type,
    )
    return batch.set_column(batch.schema.get_field_index("resource"), field, hosts)


def with_tracestate(batch: pa.RecordBatch, states: list[str]) -> pa.RecordBatch:
    index = batch.schema.get_field_index("trace_state")
    return batch.set_column(index, batch.schema.field(index), pa.array(states, pa.string()))


def decode_throughput(bodies: list[bytes], rounds: int) -> tuple[float, float]:
    """The ceilings: ptars alone turning the same OTLP requests into Arrow, and spyglass's decoder turning them
    into span columns (interleaved, so other load on the machine slows both alike)."""
    ceiling_decode = ptars_decoder()
    ptars_s = spyglass_s = 0.0
    for i in range(rounds):
        body = bodies[i % len(bodies)]
        began = time.thread_time()
        ceiling_decode(body)
        middle = time.thread_time()
        decode_otlp_proto(body)
        ptars_s += middle - began
        spyglass_s += time.thread_time() - middle
    return rounds * 1000 / ptars_s, rounds * 1000 / spyglass_s


def flood_throughput(samples: list[pa.RecordBatch], rounds: int) -> float:
    flood = [flooded(samples[i % len(samples)], i) for i in range(rounds)]
    aggregator = Aggregator()
    began = time.perf_counter()
    for batch in flood:
        aggregator.add(batch)
    return rounds * 1000 / (time.perf_counter() - began)


def restamped(batch: pa.RecordBatch, now_ns: int, rng: np.random.Generator) -> pa.RecordBatch:
    """The batch as if its spans started in the last two seconds before ``now_ns``."""
    starts = now_ns - rng.integers(0, 2 * SECOND, batch.num_rows)
    index = batch.schema.get_field_index("start_ns")
    return batch.set_column(index, batch.schema.field(index), pa.array(starts, pa.int64()))


def minute_of_traffic(samples: list[pa.RecordBatch], rate: int, naive: bool) -> tuple[int, int, float, float]:
    """(rollup rows, bytes on disk, aggregator seconds, seconds to read the minute's base and
    ``service.version`` rollups back) for 60 s of traffic at ``rate`` spans/s."""
    clock = {"wall": 1_800_000_000 * SECOND, "mono": 0.0}
    aggregator = Aggregator(wall_clock_ns=lambda: clock["wall"], monotonic_s=lambda: clock["mono"])
    rng = np.random.default_rng(1)
    per_second = max(1, rate // 1000)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "rollups.duckdb"
        empty = Path(directory) / "empty.duckdb"
        DuckDBStore(empty).close()
        store = DuckDBStore(path)
        rows = 0
        busy_s = 0.0
        for second in range(60):
            for b in range(per_second):
                clock["wall"] += SECOND // per_second
                clock["mono"] += 1 / per_second
                batch = restamped(samples[(second * per_second + b) % len(samples)], clock["wall"], rng)
                began = time.perf_counter()
                aggregator.add(batch)
                busy_s += time.perf_counter() - began
            drained = aggregator.drain(final=naive)
            rows += drained.num_rows
            store.write_rollups(drained)
        drained = aggregator.drain(final=True)  # what is still open after the minute
        rows += drained.num_rows
        store.write_rollups(drained)
        began = time.perf_counter()
        start_ns = 1_800_000_000 * SECOND - 10 * SECOND
        store.rollups(RollupQuery(start_ns, clock["wall"] + SECOND))
        store.rollups(RollupQuery(start_ns, clock["wall"] + SECOND, attr_key="service.version"))
        read_s = time.perf_counter() - began
        store.close()
        size = path.stat().st_size - empty.stat().st_size
    return rows, size, busy_s, read_s


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--rates", default="1000,10000,100000")
    args = parser.parse_args()

    bodies = requests(50, time.time_ns())
    samples = [decode_otlp_proto(body).batch for body in bodies]
    ceiling, spyglass_decode = decode_throughput(bodies, args.batches)
    rate = throughput(samples, args.batches)
    print(f"{'what':<58} {'figure':>14}  unit")
    print(f"{'ceiling: ptars decoding the same 1000-span OTLP requests':<58} {ceiling:>14,.0f}  spans/s")
    print(f"{'spyglass decoding them into span columns':<58} {spyglass_decode:>14,.0f}  spans/s")
    print(f"{'aggregator add() on 1000-span OTLP batches, one thread':<58} {rate:>14,.0f}  spans/s")
    sampled = [with_tracestate(b, ["vendor=1,ot=th:e666666666666"] * b.num_rows) for b in samples]
    head = throughput(sampled, args.batches)
    print(f"{'same, every span head-sampled at 10% (ot=th tracestate)':<58} {head:>14,.0f}  spans/s")
    distinct = [
        with_tracestate(b, [f"v={j}{k},ot=th:{(j * 1000 + k) % 2**40:x}" for k in range(b.num_rows)])
        for j, b in enumerate(samples)
    ]
    varied = throughput(distinct, args.batches)
    print(f"{'same, a distinct tracestate on every span':<58} {varied:>14,.0f}  spans/s")
    print(
        f"{'aggregator speed over the decode ceiling (plain/head/distinct)':<58} "
        f"{rate / ceiling:>6.2f} / {head / ceiling:.2f} / {varied / ceiling:.2f}"
    )
    flood = flood_throughput(samples, min(args.batches, 200))
    print(f"{'same, every span with a never-seen host.name (flood)':<58} {flood:>14,.0f}  spans/s")
    for spans_per_s in (int(r) for r in args.rates.split(",")):
        for naive in (False, True):
            rows, size, busy_s, read_s = minute_of_traffic(samples, spans_per_s, naive)
            policy = "drain every open bucket each second" if naive else "drain closed buckets"
            label = f"{spans_per_s:,} spans/s, {policy}"
            print(f"{'rollup rows per minute, ' + label:<58} {rows:>14,}  rows")
            print(f"{'rollup bytes on disk per minute, ' + label:<58} {size:>14,}  bytes")
            print(f"{'bytes per rollup row on disk, ' + label:<58} {size / max(rows, 1):>14.1f}  B/row")
            if not naive:
                print(f"{'aggregator CPU, ' + label:<58} {busy_s / 60 * 100:>13.1f}%  of one core")
                print(
                    f"{'read back the minute (base + service.version), ' + label:<58} {read_s * 1e3:>14.1f}  ms"
                )
    print("conditions: one core, 6 services, ~70 operations, lognormal durations, 5 tracked attributes/span;")
    print("disk bytes are the DuckDB file growth after checkpoint (256 KiB block granularity)")


if __name__ == "__main__":
    main()
