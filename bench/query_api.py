"""Queries as users see them, at a size: ``spyglass serve`` (``--sample-rate 1.0``, so every span is stored) is
fed N spans over OTLP/HTTP protobuf, spread over the last hour, then the API is asked, one request at a time:

- a trace by id (a different known trace each time). The server still holds these traces in its recall buffer,
  whose copies answer for the store's spans; so the same trace ids are asked again of a server started afresh
  on the same data (an empty buffer: how traces older than the buffer are read), and read at the store alone,
  in the same run, so the path's cost around the store shows;
- a search by root service plus a span attribute (``customer.id``, 5,000 values) over the hour;
- ``/api/v1/metrics`` over the hour grouped by an attribute (rolled up ones, and one that is not);
- the dependency graph over the hour;
- the web UI's home page (every service's RED series), latency heatmap and deployments over the hour;
- bytes on disk per span.

The first call of each query after ingest is reported apart (cold), the rest as p50 / p99.

Those calls come one right after another. A user's come seconds apart, and then a query may cost more: memory
freed after the last one must be touched again. On the 2-core VM spyglass is measured on, touching memory freed
a few seconds earlier cost 5-7.5 µs a page against 0.45 µs within a second (100 MB with numpy), and DuckDB's
worker threads give freed memory back to the system 0.5 s after they go idle (``malloc_trim``). So a trace by id
and the metrics by ``customer.id`` are asked again, ``--pause-s`` apart (3 s unless told), and shown beside.

A running server takes spans in while it is asked, so a trace by id is asked once more while new spans arrive
(``ARRIVING_SPANS_PER_S``, a fifth of what this server stores at most): the recall buffer, full after the ingest,
then changes between lookups, as it does in service.

    .venv/bin/python bench/query_api.py --spans 300000        # a couple of minutes
    .venv/bin/python bench/query_api.py --spans 10000000      # the issue's size
    .venv/bin/python bench/query_api.py --spans 300000 --checkout /tmp/q_before   # another checkout
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import shutil
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

sys.path.insert(0, str(Path(__file__).parent))
from figures import Figure, record  # noqa: E402
from otlp_payloads import export_request, send_all  # noqa: E402
from serve_process import Served, start_serve  # noqa: E402

HOUR_NS = 3600 * 10**9
SPANS_PER_BODY = 1000
#: Traces whose ids are asked for, taken from the bodies sent (one per sampled body).
ASKED_TRACES = 400
CUSTOMERS = 5000


def _bodies_of(task: tuple[int, int, int, int]) -> list[bytes]:
    """Bodies ``first..first+count`` of the run, each covering its own few seconds of the hour, oldest first."""
    first, count, batches, end_ns = task
    out = []
    for index in range(first, first + count):
        rng = random.Random(index)
        out.append(export_request(SPANS_PER_BODY, rng, end_ns - HOUR_NS + (index + 1) * HOUR_NS // batches))
    return out


def make_bodies(batches: int, end_ns: int) -> list[bytes]:
    """Every body, generated on every core (10M spans take ~2 minutes on one)."""
    chunk = 200
    tasks = [(first, min(chunk, batches - first), batches, end_ns) for first in range(0, batches, chunk)]
    with multiprocessing.Pool() as pool:
        parts = pool.map(_bodies_of, tasks)
    return [body for part in parts for body in part]


def known_traces(bodies: list[bytes], rng: random.Random) -> list[bytes]:
    """Trace ids spread over the whole hour, read back from the bodies sent."""
    ids = []
    for index in sorted(rng.sample(range(len(bodies)), min(ASKED_TRACES, len(bodies)))):
        request = trace_service_pb2.ExportTraceServiceRequest.FromString(bodies[index])
        spans = request.resource_spans[0].scope_spans[0].spans
        ids.append(bytes(spans[rng.randrange(len(spans))].trace_id))
    rng.shuffle(ids)
    return ids


def feed(server: Served, bodies: list[bytes], spans: int) -> float:
    """Send every body, wait until every span is stored; spans/s end to end."""
    started = time.perf_counter()
    send_all(bodies, [server.otlp_http_port], 4)
    while server.status()["spans_stored"] < spans:
        time.sleep(0.2)
    return spans / (time.perf_counter() - started)


@dataclass
class Timings:
    """One query's cold first call and its later calls, in ms."""

    cold_ms: float | None
    warm_ms: list[float]
    answer_bytes: int

    @property
    def p50(self) -> float:
        return statistics.median(self.warm_ms)

    @property
    def p99(self) -> float:
        ordered = sorted(self.warm_ms)
        return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def timed(client: httpx.Client, requests: list[tuple[str, dict[str, Any]]], budget_s: float) -> Timings:
    """Ask each request in turn; the first is the cold call. Stops early once ``budget_s`` is spent (with at
    least 5 later calls), so a slow query does not hold the run for long."""
    samples, size = [], 0
    began = time.perf_counter()
    for path, params in requests:
        started = time.perf_counter()
        response = client.get(path, params=params)
        samples.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")
        size = len(response.content)
        if len(samples) > 5 and time.perf_counter() - began > budget_s:
            break
    return Timings(samples[0], samples[1:], size)


def spaced(
    client: httpx.Client, requests: dict[str, list[tuple[str, dict[str, Any]]]], pause_s: float
) -> dict[str, Timings]:
    """Each label's requests asked in turn with the others', ``pause_s`` before each: as a user asks. None is
    cold (every query was asked before), so every call is counted."""
    samples: dict[str, list[float]] = {label: [] for label in requests}
    sizes: dict[str, int] = {}
    for turn in range(max(len(asked) for asked in requests.values())):
        for label, asked in requests.items():
            if turn >= len(asked):
                continue
            path, params = asked[turn]
            time.sleep(pause_s)
            started = time.perf_counter()
            response = client.get(path, params=params)
            samples[label].append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")
            sizes[label] = len(response.content)
    return {label: Timings(None, taken, sizes[label]) for label, taken in samples.items()}


#: Calls of each query asked ``--pause-s`` apart.
SPACED_CALLS = 12
#: Spans a second sent while a trace by id is asked ``ARRIVING_CALLS`` times, ``ARRIVING_PAUSE_S`` apart.
ARRIVING_SPANS_PER_S = 20_000
ARRIVING_CALLS = 60
ARRIVING_PAUSE_S = 0.1


#: Bodies made for that: enough for the two seconds before the first call, and the calls with room to spare.
ARRIVING_BODIES = (
    int((2 + ARRIVING_CALLS * (ARRIVING_PAUSE_S + 0.1)) * ARRIVING_SPANS_PER_S) // SPANS_PER_BODY
)


def while_arriving(
    server: Served, client: httpx.Client, trace_ids: list[str], bodies: list[bytes]
) -> tuple[Timings, int]:
    """A trace by id asked while ``bodies`` are sent, ``ARRIVING_SPANS_PER_S`` spans a second, on another
    thread; the sending goes on until every call is answered. Also how many spans were sent."""
    done = threading.Event()
    sent = [0]

    def send() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.otlp_http_port}", timeout=60) as sender:
            began = time.perf_counter()
            for index, body in enumerate(bodies):
                if done.is_set():
                    return
                due = began + index * SPANS_PER_BODY / ARRIVING_SPANS_PER_S
                time.sleep(max(0.0, due - time.perf_counter()))
                sender.post("/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"})
                sent[0] += SPANS_PER_BODY

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    time.sleep(2)  # the arrivals under way: decided and retained, the buffer evicting its oldest
    try:
        timings = spaced(
            client, {"arriving": [(f"/api/v1/traces/{i}", {}) for i in trace_ids]}, ARRIVING_PAUSE_S
        )
    finally:
        done.set()
        sender.join()
    return timings["arriving"], sent[0]


def measure_api(
    server: Served,
    trace_ids: list[bytes],
    end_ns: int,
    repeats: int,
    budget_s: float,
    pause_s: float,
    arriving: list[bytes],
) -> tuple[dict[str, Timings], int]:
    """Each query of the issue, asked ``repeats`` times after its cold call (different ids and values); then
    some apart, and a trace by id while ``arriving`` is sent. Also how many spans that sent."""
    rng = random.Random(5)
    window = {"start_ns": end_ns - HOUR_NS, "end_ns": end_ns}
    ids = [trace_ids[i % len(trace_ids)].hex() for i in range(repeats + 1)]
    customers = [f"c{rng.randint(1, CUSTOMERS)}" for _ in range(repeats + 1)]
    few = max(10, repeats // 5)
    asked: dict[str, list[tuple[str, dict[str, Any]]]] = {
        "trace by id": [(f"/api/v1/traces/{i}", {}) for i in ids],
        "search service + attribute": [
            ("/api/v1/traces", {**window, "service": "frontend", "attr": f"customer.id:{c}", "limit": 20})
            for c in customers
        ],
        "search service + attribute nobody has": [
            ("/api/v1/traces", {**window, "service": "frontend", "attr": "customer.id:c0", "limit": 20})
            for _ in range(few + 1)
        ],
        "jaeger search service + tag": [
            (
                "/api/traces",
                {
                    "start": window["start_ns"] // 1000,
                    "end": end_ns // 1000,
                    "service": "frontend",
                    "tags": f'{{"customer.id":"{c}"}}',
                    "limit": 20,
                },
            )
            for c in customers
        ],
        "metrics by service.version": [
            ("/api/v1/metrics", {**window, "group_by": "service.version"}) for _ in range(few + 1)
        ],
        "metrics by http.route": [
            ("/api/v1/metrics", {**window, "group_by": "http.route"}) for _ in range(few + 1)
        ],
        "metrics by customer.id (not rolled up)": [
            ("/api/v1/metrics", {**window, "group_by": "customer.id"}) for _ in range(min(few, 10) + 1)
        ],
        "dependencies": [("/api/v1/dependencies", window) for _ in range(few + 1)],
        "jaeger dependencies": [
            ("/api/dependencies", {"endTs": end_ns // 10**6, "lookback": HOUR_NS // 10**6})
            for _ in range(few + 1)
        ],
        # The web UI's pages over the hour, at the step the UI asks for an hour (``ui/src/state.ts``).
        "ui home page (service overview)": [
            ("/api/v1/ui/services", {**window, "step_s": UI_STEP_S}) for _ in range(min(few, 10) + 1)
        ],
        "ui latency heatmap": [
            ("/api/v1/ui/latency-heatmap", {**window, "step_s": UI_STEP_S}) for _ in range(min(few, 10) + 1)
        ],
        "ui deployments": [("/api/v1/ui/deployments", window) for _ in range(min(few, 10) + 1)],
    }
    # Ids not asked above, so that no trace is read twice.
    unasked = [trace_ids[(repeats + 1 + i) % len(trace_ids)].hex() for i in range(SPACED_CALLS)]
    apart: dict[str, list[tuple[str, dict[str, Any]]]] = {
        f"trace by id, {pause_s:g} s apart": [(f"/api/v1/traces/{i}", {}) for i in unasked],
        f"metrics by customer.id, {pause_s:g} s apart": [
            ("/api/v1/metrics", {**window, "group_by": "customer.id"}) for _ in range(SPACED_CALLS)
        ],
    }
    # Neither asked above nor apart.
    later = [
        trace_ids[(repeats + 1 + SPACED_CALLS + i) % len(trace_ids)].hex() for i in range(ARRIVING_CALLS)
    ]
    with httpx.Client(base_url=server.api, timeout=600) as client:
        answers = {label: timed(client, requests, budget_s) for label, requests in asked.items()}
        answers.update(spaced(client, apart, pause_s))
        label = f"trace by id, {ARRIVING_SPANS_PER_S:,} spans/s arriving"
        answers[label], sent = while_arriving(server, client, later, arriving)
        return answers, sent


#: The row of a trace by id asked of a server whose recall buffer holds none of the traces.
RESTARTED = "trace by id, from the store (restarted)"


def measure_restarted(data_dir: Path, trace_ids: list[bytes], repeats: int, checkout: Path | None) -> Timings:
    """The same trace lookups through the API of a server started afresh on the data (empty recall buffer)."""
    server = start_serve(*SERVE_FLAGS, checkout=checkout, data_dir=data_dir)
    try:
        requests: list[tuple[str, dict[str, Any]]] = [
            (f"/api/v1/traces/{trace_ids[index % len(trace_ids)].hex()}", {}) for index in range(repeats + 1)
        ]
        with httpx.Client(base_url=server.api, timeout=600) as client:
            return timed(client, requests, budget_s=600)
    finally:
        server.stop()


def measure_store(data_dir: Path, trace_ids: list[bytes], repeats: int) -> Timings:
    """The same trace lookups at the store alone, in this process, once the server has let the file go."""
    from spyglass.store.duckdb_store import DuckDBStore

    store = DuckDBStore(data_dir / "spyglass.duckdb")
    try:
        samples = []
        for index in range(repeats + 1):
            started = time.perf_counter()
            found = store.trace(trace_ids[index % len(trace_ids)])
            samples.append((time.perf_counter() - started) * 1000)
            assert found.num_rows > 0, "a sent trace is not stored"
    finally:
        store.close()
    return Timings(samples[0], samples[1:], 0)


def disk_bytes(data_dir: Path) -> int:
    return sum(path.stat().st_size for path in data_dir.rglob("*") if path.is_file())


#: How the measured server runs: every span stored, a 512 MB recall buffer.
SERVE_FLAGS = (
    "--sample-rate",
    "1.0",
    "--decision-wait",
    "1",
    "--recall-memory-mb",
    "512",
    "--retention",
    "7d",
)

#: The chart step the web UI asks for when it shows an hour (about 90 points).
UI_STEP_S = 40

TARGETS_MS: dict[str, float] = {
    "trace by id": 10,
    "search service + attribute": 100,
    "metrics by service.version": 200,
    "metrics by http.route": 200,
    "metrics by customer.id (not rolled up)": 200,
    "dependencies": 200,
}


def report(
    spans: int,
    ingest_rate: float,
    api: dict[str, Timings],
    store: Timings,
    bytes_served: int,
    bytes_closed: int,
    arrived: int,
) -> None:
    print(f"\n{spans:,} spans over an hour, all stored; ingested end to end at {ingest_rate:,.0f} spans/s")
    print(f"{'figure':<42} {'target':>9} {'cold ms':>9} {'p50 ms':>8} {'p99 ms':>8} {'n':>5} {'bytes':>9}")
    rows: list[tuple[str, Timings]] = [*api.items(), ("trace by id, at the store alone", store)]
    for label, t in rows:
        target = TARGETS_MS.get(label)
        mark = "" if target is None else ("  ok" if t.p99 <= target else "  MISSED")
        cold = "" if t.cold_ms is None else f"{t.cold_ms:.1f}"
        print(
            f"{label:<42} {'' if target is None else f'{target:.0f} ms':>9} {cold:>9} {t.p50:>8.1f} "
            f"{t.p99:>8.1f} {len(t.warm_ms):>5} {t.answer_bytes:>9,}{mark}"
        )
    path_p50 = api[RESTARTED].p50 - store.p50
    print(f"{'trace by id from the store: the path around it, p50':<42} {'':>9} {'':>9} {path_p50:>8.1f}")
    print(
        f"bytes on disk per span: {bytes_served / spans:,.1f} while serving, "
        f"{bytes_closed / (spans + arrived):,.1f} after shutdown (data directory, WAL included; with the "
        f"{arrived:,} spans that arrived while asked)"
    )
    conditions = f"{spans:,} spans"
    record(
        [
            *(
                Figure(
                    "query_api",
                    f"{label}, p99",
                    t.p99,
                    "ms",
                    at_most=TARGETS_MS.get(label),
                    conditions=conditions,
                )
                for label, t in rows
            ),
            Figure(
                "query_api",
                "bytes on disk per span, serving",
                bytes_served / spans,
                "bytes",
                conditions=conditions,
            ),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=200, help="warm calls of trace by id and search")
    parser.add_argument("--budget-s", type=float, default=60.0, help="at most this long per query, about")
    parser.add_argument("--pause-s", type=float, default=3.0, help="between the calls asked as a user asks")
    parser.add_argument("--keep-data", action="store_true", help="leave the data directory for a look")
    parser.add_argument("--checkout", type=Path, help="run spyglass from another checkout")
    args = parser.parse_args()
    if args.checkout is not None:  # the store-level figure reads the file with the same code
        sys.path.insert(0, str(args.checkout))

    end_ns = time.time_ns()
    batches = max(1, args.spans // SPANS_PER_BODY)
    spans = batches * SPANS_PER_BODY
    began = time.perf_counter()
    bodies = make_bodies(batches, end_ns)
    trace_ids = known_traces(bodies, random.Random(3))
    print(f"generated {spans:,} spans in {time.perf_counter() - began:.0f} s", flush=True)

    server = start_serve(
        *SERVE_FLAGS,
        checkout=args.checkout,
        prefix="spyglass-bench-query-api-",
        logged=True,
    )
    stopped = False
    failed = True
    try:
        ingest_rate = feed(server, bodies, spans)
        del bodies
        print(f"stored in the server at {ingest_rate:,.0f} spans/s", flush=True)
        bytes_served = disk_bytes(server.data_dir)
        # New spans for the arriving part, after the hour's last: sent for as long as it lasts.
        arriving = _bodies_of((batches, ARRIVING_BODIES, batches, end_ns))
        api, sent = measure_api(
            server, trace_ids, end_ns, args.repeats, args.budget_s, args.pause_s, arriving
        )
        server.stop()
        stopped = True
        bytes_closed = disk_bytes(server.data_dir)
        api[RESTARTED] = measure_restarted(server.data_dir, trace_ids, args.repeats, args.checkout)
        store = measure_store(server.data_dir, trace_ids, args.repeats)
        failed = False
    finally:
        if not stopped:
            server.stop()
        if args.keep_data:
            print(f"data directory kept: {server.data_dir}")
        else:
            shutil.rmtree(server.data_dir, ignore_errors=True)
        if failed:
            print(f"the server's log: {server.log}")
        else:
            server.log.unlink(missing_ok=True)
    report(spans, ingest_rate, api, store, bytes_served, bytes_closed, sent)


if __name__ == "__main__":
    main()
