"""SLO evaluation cost: the CPU one evaluation round takes for N SLOs over a DuckDB store holding the rollups
of M spans, as a share of what ingest costs at 50,000 spans/s.

M spans (realistic OTLP requests from ``otlp_payloads``: six services, root operations ``GET <route>``) are
spread over the last ``--hours`` hours, counted by the aggregator and written to a DuckDB store as the satellite
does (the last seconds stay pending in the aggregator, read through ``LocalRollups`` as the server reads them).
N SLOs on the root operations (half latency, half errors; none burning, so no explain runs) are evaluated by
the server's own ``SloEvaluator``: a first round (which reads each SLO's whole period, as once an hour), steady
rounds (the fresh minutes only), and a refresh round (the settled six hours again, every ``REFRESH_S``); the
CPU share is given for steady rounds and all in.
Ingest's CPU per span is measured in the same run on the same requests, as ``bench/ingest_http.py``'s
receive-to-buffer path does: decode, aggregate, pack into the recall buffer, on one thread.

    python bench/slo_eval.py [--slos 20] [--spans 1000000] [--hours 6] [--interval 30]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from figures import Figure, record  # noqa: E402
from otlp_payloads import ROUTES, export_request, ingest_cpu_per_span  # noqa: E402

from spyglass.alerting.alerts import AlertBook  # noqa: E402
from spyglass.alerting.evaluator import SloEvaluator  # noqa: E402
from spyglass.alerting.slo_catalog import SloCatalog  # noqa: E402
from spyglass.alerting.watch import SloWatch  # noqa: E402
from spyglass.analysis.ownership import Ownership  # noqa: E402
from spyglass.analysis.slo import slo_from_fields  # noqa: E402
from spyglass.analysis.slo_explain import ExplainSources  # noqa: E402
from spyglass.analysis.slo_meter import REFRESH_S, SloMeter  # noqa: E402
from spyglass.receivers.decoders.otlp_proto import decode_otlp_proto  # noqa: E402
from spyglass.satellite.aggregator import Aggregator  # noqa: E402
from spyglass.satellite.rollup_reader import LocalRollups  # noqa: E402
from spyglass.store.duckdb_store import DuckDBStore  # noqa: E402

SECOND = 1_000_000_000
INGEST_RATE = 50_000
#: Requests encoded per distinct body (encoding is slow in Python; bodies are reused with shifted times).
DISTINCT_BODIES = 50


def fill(store: DuckDBStore, aggregator: Aggregator, spans: int, hours: float, now_ns: int) -> float:
    """Count ``spans`` spans spread over the last ``hours`` into the aggregator, writing drained rows to the
    store; the last 20 s stay pending (the satellite drains closed buckets every second, so about that much
    is pending in a server). Returns the seconds it took."""
    rng = random.Random(7)
    requests = spans // 1000
    window_ns = int(hours * 3600 * SECOND)
    began = time.perf_counter()
    pending_from = now_ns - 20 * SECOND
    for i in range(requests):
        at = now_ns - window_ns + (i * window_ns) // requests
        body = export_request(1000, rng, at)
        aggregator.add(decode_otlp_proto(body).batch)
        if (i % 50 == 49 or i == requests - 1) and at < pending_from:
            rows = aggregator.drain(final=True)
            with aggregator.publishing(rows):
                store.write_rollups(rows)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--slos", type=int, default=20)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--hours", type=float, default=6.0)
    parser.add_argument("--interval", type=float, default=30.0, help="--slo-interval, seconds")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    now = time.time_ns()
    rng = random.Random(11)
    ingest_bodies = [export_request(1000, rng, now) for _ in range(DISTINCT_BODIES)]
    cpu_per_span = ingest_cpu_per_span(ingest_bodies, 1000)

    data_dir = Path(tempfile.mkdtemp(prefix="spyglass-bench-slo-"))
    store = DuckDBStore(data_dir / "spyglass.duckdb")
    aggregator = Aggregator()
    fill_s = fill(store, aggregator, args.spans, args.hours, now)
    rollups = LocalRollups(store, aggregator)
    slos = [
        slo_from_fields(
            {
                "id": f"slo-{i}",
                "name": f"slo {i}",
                "service": "frontend",
                "operation": f"GET {ROUTES[i % len(ROUTES)]}",
                "objective": 0.9,
                **({"latency_ms": 50.0 + i} if i % 2 == 0 else {}),
            }
        )
        for i in range(args.slos)
    ]
    watch = SloWatch(SloCatalog(slos, data_dir / "slos.json"), SloMeter(rollups), AlertBook())
    sources = ExplainSources(store, None, rollups, Ownership())  # type: ignore[arg-type]  # no SLO burns
    evaluator = SloEvaluator(watch, sources, [], args.interval)

    def one_round(later_s: float = 0.0) -> tuple[float, float]:
        cpu, wall = time.process_time(), time.perf_counter()
        evaluator.evaluate(time.time_ns() + int(later_s * SECOND))
        return time.process_time() - cpu, time.perf_counter() - wall

    first_cpu, first_wall = one_round()
    steady = [one_round() for _ in range(args.rounds)]
    steady_cpu = sorted(c for c, _ in steady)[len(steady) // 2]
    steady_wall = sorted(w for _, w in steady)[len(steady) // 2]
    # REFRESH_S later, every SLO reads its settled six hours again (late spans); once an hour, its whole period.
    refresh_cpu, refresh_wall = one_round(REFRESH_S)
    requests = sum(
        watch.meter.measure(slo, time.time_ns()).status.period.total for slo in slos[: len(ROUTES)]
    )
    ingest_cpu_per_s = INGEST_RATE * cpu_per_span
    share = steady_cpu / args.interval / ingest_cpu_per_s
    per_second = (
        steady_cpu / args.interval
        + max(0.0, refresh_cpu - steady_cpu) / REFRESH_S
        + max(0.0, first_cpu - refresh_cpu) / 3600
    )
    store.close()

    rows = [
        ("ingest CPU per span", f"{cpu_per_span * 1e6:.2f}", "µs", "decode + aggregate + buffer, one thread"),
        ("ingest CPU at 50k spans/s", f"{ingest_cpu_per_s:.2f}", "cores", "the same path, 50,000 spans/s"),
        ("rollups filled", f"{args.spans:,}", "spans", f"over {args.hours:g} h, in {fill_s:.0f} s"),
        ("root requests the SLOs see", f"{requests:,.0f}", "requests", f"{len(ROUTES)} root operations"),
        ("first round", f"{first_cpu * 1e3:.0f}", "ms CPU", f"{args.slos} SLOs, whole periods read once"),
        ("first round, wall", f"{first_wall * 1e3:.0f}", "ms", ""),
        ("steady round", f"{steady_cpu * 1e3:.1f}", "ms CPU", f"{args.slos} SLOs, median of {args.rounds}"),
        ("steady round, wall", f"{steady_wall * 1e3:.1f}", "ms", ""),
        ("per SLO", f"{steady_cpu / args.slos * 1e3:.2f}", "ms CPU", "one round"),
        (
            "refresh round",
            f"{refresh_cpu * 1e3:.0f}",
            "ms CPU",
            f"every {REFRESH_S} s: settled 6 h read again",
        ),
        ("refresh round, wall", f"{refresh_wall * 1e3:.0f}", "ms", ""),
        (
            "share of ingest CPU, steady rounds",
            f"{share * 100:.3f}",
            "%",
            f"a round every {args.interval:g} s against ingest at 50k spans/s",
        ),
        (
            "share of ingest CPU, all in",
            f"{per_second / ingest_cpu_per_s * 100:.3f}",
            "%",
            f"with refreshes every {REFRESH_S} s and periods read hourly",
        ),
        ("alerts opened", f"{len(watch.alerts.open_alerts())}", "", "none burn, so explain never runs"),
    ]
    width = max(len(r[0]) for r in rows)
    for what, figure, unit, conditions in rows:
        print(f"{what:<{width}}  {figure:>12} {unit:<8} {conditions}")
    record(
        [
            Figure(
                "slo_eval",
                f"{args.slos} SLOs, share of ingest CPU at 50k spans/s (all in)",
                per_second / ingest_cpu_per_s * 100,
                "%",
                conditions="refreshes and period reads included",
            )
        ]
    )


if __name__ == "__main__":
    main()
