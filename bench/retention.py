"""Retention's cost: the CPU the retention worker's passes take (expire spans and logs, expire and downsample
rollups, the checkpoint that makes freed space reusable) against what ingest costs at 50,000 spans/s.

A DuckDB store is filled with ``--minutes`` of simulated traffic at ``--rate`` spans/s (realistic OTLP requests
from ``otlp_payloads``, decoded once and re-timed; every span stored, as ``--sample-rate 1`` does; one log
record per ten spans), counted by the real aggregator and written as the satellite writes. The policy is scaled
to the simulated window so that every job has work in the steady state (spans and logs kept ``--minutes``/2,
rollups in minutes after 2 minutes and in 10-minute buckets after 5, instead of after a day and a week). Then
``--rounds`` times: one more simulated minute is written and a pass runs, as the worker runs one a minute;
the pass's process CPU (all threads, DuckDB's included; nothing else runs meanwhile) is what is measured.

Expiring spans and logs costs in proportion to the rows deleted (mostly the trace summaries' primary-key
index), so it is scaled to the spans stored at 50,000 spans/s: all of them at ``--sample-rate 1``, 5% at
``--sample-rate 0.05``. Merging rollups costs in proportion to the rollup rows, which grow with the number of
operations and latency bins, not with the rate (at this rate a bucket already holds most of its bins), so it
is taken as measured. The checkpoint that makes deleted space reusable is measured on a minute's deletions
alone (the minute's writes were checkpointed before: that is ingest's cost) and scaled like the deletions.
Ingest's CPU per span is measured in the same run, as ``bench/ingest_http.py``'s receive-to-buffer path does.

With ``--compaction SPANS`` it measures instead what giving the freed space back costs: a store of that many
spans (as above) has its older half expired and checkpointed, then ``DuckDBStore.compact`` copies the live rows
into a fresh file while a writer goes on at ``--rate`` spans/s (a write a second) and a reader searches in a
loop; printed are the copy's time, how long writes waited for the swap (the writer's lock held), and the
longest a write and a search took meanwhile.

    python bench/retention.py [--rate 10000] [--minutes 20] [--rounds 5]
    python bench/retention.py --compaction 5000000 [--rate 10000]
"""

from __future__ import annotations

# First: spyglass sets numpy's CPU dispatch before numpy loads, as in `spyglass serve` (numpy_sort_dispatch).
import spyglass  # noqa: F401

# isort: split

import argparse
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from figures import Figure, record  # noqa: E402
from otlp_payloads import export_request, ingest_cpu_per_span  # noqa: E402

from spyglass.model.retention import RetentionPolicy, RollupTier  # noqa: E402
from spyglass.model.schema import STORED_SPAN_SCHEMA  # noqa: E402
from spyglass.receivers.decoders.otlp_proto import decode_otlp_proto  # noqa: E402
from spyglass.satellite.aggregator import Aggregator  # noqa: E402
from spyglass.satellite.retention import RetentionWorker  # noqa: E402
from spyglass.store.duckdb_store import DuckDBStore  # noqa: E402
from spyglass.store.protocol import TraceQuery  # noqa: E402
from tests.support.aged_traffic import logs_for  # noqa: E402

SECOND = 1_000_000_000
MINUTE = 60 * SECOND
INGEST_RATE = 50_000
DISTINCT_BODIES = 40
BATCH = 1000
#: Years: a policy that never expires that kind of data (to measure the other kind's jobs alone).
NEVER_S = 100 * 365 * 86_400


class Traffic:
    """Decoded requests re-timed to any second, with fresh trace and span ids (so traces stay distinct)."""

    def __init__(self, bodies: list[bytes], base_ns: int) -> None:
        self.batches = [pa.Table.from_batches([decode_otlp_proto(b).batch]) for b in bodies]
        self.base_ns = base_ns
        self.rng = np.random.default_rng(5)
        self.index = 0

    def at(self, second_ns: int) -> pa.Table:
        batch = self.batches[self.index % len(self.batches)]
        self.index += 1
        starts = pc.add(batch.column("start_ns"), second_ns - self.base_ns)
        distinct = pc.unique(batch.column("trace_id"))
        fresh = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(16), len(distinct), [None, pa.py_buffer(self.rng.bytes(16 * len(distinct)))]
        )
        trace_ids = fresh.take(pc.index_in(batch.column("trace_id"), value_set=distinct))
        batch = batch.set_column(batch.schema.get_field_index("start_ns"), "start_ns", starts)
        return batch.set_column(batch.schema.get_field_index("trace_id"), "trace_id", trace_ids)


def as_stored(spans: pa.Table) -> pa.Table:
    weights = pa.array(np.ones(spans.num_rows), pa.float64())
    return spans.append_column(STORED_SPAN_SCHEMA.field("sample_weight"), weights).cast(STORED_SPAN_SCHEMA)


def write_minute(
    store: DuckDBStore, aggregator: Aggregator, traffic: Traffic, minute_ns: int, rate: int
) -> int:
    """One simulated minute: spans and logs written every 10 s, rollups drained as the satellite does."""
    written = 0
    for ten in range(6):
        tables = []
        for second in range(10):
            at = minute_ns + (ten * 10 + second) * SECOND
            for _ in range(max(1, rate // BATCH)):
                spans = traffic.at(at)
                aggregator.add(spans)
                tables.append(spans)
        spans = pa.concat_tables(tables)
        store.write(as_stored(spans))
        store.write_logs(logs_for(spans, every=10))
        rows = aggregator.drain(final=True)
        with aggregator.publishing(rows):
            store.write_rollups(rows)
        written += spans.num_rows
    return written


def timed(action: Callable[[], object]) -> tuple[float, float]:
    """(process CPU s, wall s) of calling ``action``."""
    cpu, wall = time.process_time(), time.perf_counter()
    action()
    return time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=10_000, help="simulated spans/s, every one stored")
    parser.add_argument("--minutes", type=int, default=20, help="simulated minutes in the store before")
    parser.add_argument("--rounds", type=int, default=5, help="steady passes, one simulated minute apart")
    parser.add_argument(
        "--compaction", type=int, default=0, help="measure a compaction of a store this many spans"
    )
    args = parser.parse_args()
    if args.compaction:
        measure_compaction(args.compaction, args.rate)
        return

    rng = random.Random(11)
    # A simulated clock on an hour boundary, far enough back that nothing collides with now.
    base = (time.time_ns() - 30 * 86_400 * SECOND) // (3600 * SECOND) * (3600 * SECOND)
    bodies = [export_request(BATCH, rng, base) for _ in range(DISTINCT_BODIES)]
    cpu_per_span = ingest_cpu_per_span(bodies, BATCH)
    traffic = Traffic(bodies, base)

    data_dir = Path(tempfile.mkdtemp(prefix="spyglass-bench-retention-"))
    # No compaction: what a pass and its checkpoint cost is measured here (``--compaction`` measures that).
    store = DuckDBStore(data_dir / "spyglass.duckdb", compact_min_bytes=2**62)
    aggregator = Aggregator()
    began = time.perf_counter()
    filled = sum(
        write_minute(store, aggregator, traffic, base + m * MINUTE, args.rate) for m in range(args.minutes)
    )
    fill_s = time.perf_counter() - began
    store.reclaim_space()
    keep_s = args.minutes * 30
    tiers = (RollupTier(after_s=120, bucket_s=60), RollupTier(after_s=300, bucket_s=600))
    spans_worker = RetentionWorker(
        store, RetentionPolicy(retention_s=keep_s, rollup_retention_s=NEVER_S, rollup_tiers=())
    )
    rollups_worker = RetentionWorker(
        store, RetentionPolicy(retention_s=NEVER_S, rollup_retention_s=keep_s * 2, rollup_tiers=tiers)
    )
    now = base + args.minutes * MINUTE
    catch_up_cpu, catch_up_wall = timed(
        lambda: (spans_worker.run_pass(now, reclaim=False), rollups_worker.run_pass(now, reclaim=True))
    )
    size_before = store.disk_bytes()
    spans_cpu: list[float] = []
    rollups_cpu: list[float] = []
    checkpoint_cpu: list[float] = []
    for _ in range(args.rounds):
        write_minute(store, aggregator, traffic, now, args.rate)
        now += MINUTE
        store.reclaim_space()  # what the minute's writes cost a checkpoint is ingest's, not retention's
        spans_cpu.append(timed(partial(spans_worker.run_pass, now, reclaim=False))[0])
        rollups_cpu.append(timed(partial(rollups_worker.run_pass, now, reclaim=False))[0])
        checkpoint_cpu.append(timed(store.reclaim_space)[0])
    size_after = store.disk_bytes()
    spans_per_minute = float(np.median(spans_cpu))
    rollups_per_minute = float(np.median(rollups_cpu))
    checkpoint_per_minute = float(np.median(checkpoint_cpu))
    ingest_cpu_per_s = INGEST_RATE * cpu_per_span

    def retention_per_s(stored_fraction: float) -> float:
        """Cores retention takes at 50k spans/s received, of which ``stored_fraction`` are stored (sampled)."""
        scale = INGEST_RATE * stored_fraction / args.rate
        # A checkpoint every RECLAIM_INTERVAL_S holds that many minutes of deletions: the same work in one go.
        return (spans_per_minute * scale + rollups_per_minute + checkpoint_per_minute * scale) / 60

    counters = spans_worker.counters, rollups_worker.counters
    store.close()

    rows = [
        ("ingest CPU per span", f"{cpu_per_span * 1e6:.2f}", "µs", "decode + aggregate + buffer, one thread"),
        ("ingest CPU at 50k spans/s", f"{ingest_cpu_per_s:.2f}", "cores", "the same path, 50,000 spans/s"),
        (
            "store filled",
            f"{filled:,}",
            "spans",
            f"{args.minutes} simulated min at {args.rate:,}/s, every span stored, {fill_s:.0f} s",
        ),
        (
            "catch-up pass",
            f"{catch_up_cpu:.2f}",
            "s CPU",
            f"half the store expired, {catch_up_wall:.1f} s wall",
        ),
        (
            "expire spans + logs, a minute's",
            f"{spans_per_minute * 1e3:.0f}",
            "ms CPU",
            f"{args.rate * 60:,} spans, median of {args.rounds}",
        ),
        (
            "expire + downsample rollups",
            f"{rollups_per_minute * 1e3:.0f}",
            "ms CPU",
            "a minute's, as measured",
        ),
        (
            "checkpoint of a minute's deletions",
            f"{checkpoint_per_minute * 1e3:.0f}",
            "ms CPU",
            "the writes' own checkpointed before",
        ),
        (
            "retention at 50k spans/s, all stored",
            f"{retention_per_s(1.0):.4f}",
            "cores",
            f"{retention_per_s(1.0) / ingest_cpu_per_s * 100:.2f}% of ingest's CPU (--sample-rate 1)",
        ),
        (
            "retention at 50k spans/s, 5% stored",
            f"{retention_per_s(0.05):.4f}",
            "cores",
            f"{retention_per_s(0.05) / ingest_cpu_per_s * 100:.2f}% of ingest's CPU (--sample-rate 0.05)",
        ),
        (
            "longest step",
            f"{max(c.longest_step_s for c in counters) * 1e3:.0f}",
            "ms",
            "one step, the merge outside the writer's lock included",
        ),
        (
            "steps",
            f"{sum(c.steps for c in counters):,}",
            "",
            f"over {sum(c.passes for c in counters)} passes",
        ),
        (
            "file",
            f"{size_before / 1e6:.0f} -> {size_after / 1e6:.0f}",
            "MB",
            f"after the catch-up, and {args.rounds} minutes of traffic and retention later",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    for what, figure, unit, conditions in rows:
        print(f"{what:<{width}}  {figure:>14} {unit:<8} {conditions}")
    record(
        [
            Figure(
                "retention",
                f"retention at 50k spans/s, {share:.0%} stored, share of ingest CPU",
                retention_per_s(share) / ingest_cpu_per_s * 100,
                "%",
            )
            for share in (1.0, 0.05)
        ]
    )


def measure_compaction(spans: int, rate: int) -> None:
    """A store of ``spans`` spans, its older half expired, compacted while a writer and a reader go on."""
    rng = random.Random(11)
    base = (time.time_ns() - 30 * 86_400 * SECOND) // (3600 * SECOND) * (3600 * SECOND)
    traffic = Traffic([export_request(BATCH, rng, base) for _ in range(DISTINCT_BODIES)], base)
    data_dir = Path(tempfile.mkdtemp(prefix="spyglass-bench-compaction-"))
    store = DuckDBStore(data_dir / "spyglass.duckdb", compact_min_bytes=2**62)
    aggregator = Aggregator()
    minutes = max(2, -(-spans // (rate * 60)))
    began = time.perf_counter()
    filled = sum(write_minute(store, aggregator, traffic, base + m * MINUTE, rate) for m in range(minutes))
    fill_s = time.perf_counter() - began
    store.reclaim_space()
    now = base + minutes * MINUTE
    worker = RetentionWorker(
        store, RetentionPolicy(retention_s=minutes * 30, rollup_retention_s=NEVER_S, rollup_tiers=())
    )
    worker.run_pass(now, reclaim=True)
    before = store.storage_figures()

    done = threading.Event()
    write_s: list[float] = []
    search_s: list[float] = []

    def write() -> None:
        second = now
        while not done.is_set():
            batch = pa.concat_tables([traffic.at(second) for _ in range(max(1, rate // BATCH))])
            began = time.perf_counter()
            store.write(as_stored(batch))
            write_s.append(time.perf_counter() - began)
            second += SECOND
            done.wait(max(0.0, 1.0 - write_s[-1]))

    def search() -> None:
        while not done.is_set():
            began = time.perf_counter()
            store.find_traces(TraceQuery(start_ns=now - 5 * MINUTE, limit=20))
            search_s.append(time.perf_counter() - began)
            done.wait(0.05)

    threads = [threading.Thread(target=write), threading.Thread(target=search)]
    for thread in threads:
        thread.start()
    time.sleep(2.0)
    writes_before, searches_before = len(write_s), len(search_s)
    compaction = store.compact()
    writes_during, searches_during = write_s[writes_before:], search_s[searches_before:]
    done.set()
    for thread in threads:
        thread.join()
    live = store.span_count()
    store.close()
    if compaction is None:
        print("the compaction was given up (see the log)")
        return
    rows = [
        ("store filled", f"{filled:,}", "spans", f"{minutes} simulated min at {rate:,}/s, {fill_s:.0f} s"),
        (
            "after expiry",
            f"{live:,}",
            "spans",
            f"older half expired; {len(writes_during)} writes during the copy",
        ),
        (
            "file",
            f"{compaction.bytes_before / 1e6:.0f} -> {compaction.bytes_after / 1e6:.0f}",
            "MB",
            f"{before.free_bytes / 1e6:.0f} MB of free blocks before",
        ),
        ("copy", f"{compaction.copy_s:.2f}", "s", "a snapshot, no lock held"),
        ("writes waited", f"{compaction.pause_s * 1e3:.0f}", "ms", "the last writes replayed, the swap"),
        ("longest write", f"{max(writes_during, default=0) * 1e3:.0f}", "ms", f"{rate:,} spans, during"),
        ("longest search", f"{max(searches_during, default=0) * 1e3:.0f}", "ms", "during the compaction"),
    ]
    width = max(len(r[0]) for r in rows)
    for what, figure, unit, conditions in rows:
        print(f"{what:<{width}}  {figure:>14} {unit:<8} {conditions}")


if __name__ == "__main__":
    main()
