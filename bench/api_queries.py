"""Query latency through the HTTP API: ``spyglass serve`` in its own process, fed the same spans over OTLP/HTTP,
then each of the UI's and the API's reads asked in turn, one request at a time, on one kept-alive connection.

Prints p50 and p99 per route and the answer's size. With ``--compare DIR`` the same spans go to a server run
from another checkout too (``DIR`` holds a ``spyglass`` package, e.g. a ``git worktree`` of an older commit),
queried the same way in the same run, and each route's latency is printed beside it with the ratio:

    python bench/api_queries.py --spans 200000
    git worktree add /tmp/before HEAD~5 && python bench/api_queries.py --compare /tmp/before
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from otlp_payloads import export_request, send_all  # noqa: E402
from serve_process import Served, start_serve  # noqa: E402

SPREAD_NS = 30 * 60 * 10**9
MINUTE_NS = 60 * 10**9


def start_server(checkout: Path | None) -> Served:
    return start_serve(
        "--decision-wait", "1", "--recall-memory-mb", "512", checkout=checkout, prefix="spyglass-bench-api-"
    )


def feed(server: Served, bodies: list[bytes], spans: int) -> None:
    """Send every body and wait until every trace is decided and stored."""
    send_all(bodies, [server.otlp_http_port], 4)
    traces = spans // 10
    while True:
        status = server.status()
        if status["traces_decided"] >= traces and status["spans_stored"] >= status["traces_kept"] * 10:
            return
        time.sleep(0.1)


def questions(server: Served, end_ns: int) -> list[tuple[str, str, dict[str, Any], dict[str, Any] | None]]:
    """(label, path, query, JSON body) of every read measured; ids come from the server's own answers."""
    start_ns = end_ns - SPREAD_NS
    window = {"start_ns": start_ns, "end_ns": end_ns}
    found = httpx.get(
        server.api + "/api/v1/traces", params={**window, "service": "frontend", "limit": 50}, timeout=60
    ).json()["traces"]
    trace_id = found[0]["trace_id"]
    operation = found[0]["root_operation"]
    explain = {
        "service": "frontend",
        "operation": operation,
        "baseline_start_ns": start_ns,
        "baseline_end_ns": start_ns + SPREAD_NS // 2,
        "start_ns": start_ns + SPREAD_NS // 2,
        "end_ns": end_ns,
    }
    us = {"start": start_ns // 1000, "end": end_ns // 1000}
    return [
        ("trace by id", f"/api/v1/traces/{trace_id}", {}, None),
        ("trace, columns", f"/api/v1/traces/{trace_id}", {"format": "columns", "spans_up_to": 1000}, None),
        ("search, 20 newest", "/api/v1/traces", {**window, "service": "frontend"}, None),
        ("search, attribute", "/api/v1/traces", {**window, "attr": "customer.id:c42", "limit": 20}, None),
        ("search, slow errors", "/api/v1/traces", {**window, "error": "true", "min_duration_ms": 5}, None),
        ("metrics, window", "/api/v1/metrics", window, None),
        (
            "metrics, by service, 1 min",
            "/api/v1/metrics",
            {**window, "group_by": "service", "step_s": 60},
            None,
        ),
        ("metrics, by version", "/api/v1/metrics", {**window, "group_by": "service.version"}, None),
        ("services overview", "/api/v1/ui/services", window, None),
        ("latency heatmap", "/api/v1/ui/latency-heatmap", {**window, "service": "frontend"}, None),
        ("deployments", "/api/v1/ui/deployments", window, None),
        ("dependencies", "/api/v1/dependencies", window, None),
        (
            "critical path",
            "/api/v1/critical-path",
            {**window, "service": "frontend", "operation": operation},
            None,
        ),
        ("explain", "/api/v1/explain", {}, explain),
        ("jaeger search", "/api/traces", {**us, "service": "frontend", "limit": 20}, None),
        ("status", "/api/v1/status", {}, None),
    ]


def measure(
    server: Served, asked: list[tuple[str, str, dict[str, Any], dict[str, Any] | None]], repeats: int
) -> dict[str, tuple[float, float, int]]:
    """label -> (p50 ms, p99 ms, answer bytes), asked round-robin so drift hits every route alike."""
    times: dict[str, list[float]] = {label: [] for label, *_ in asked}
    sizes: dict[str, int] = {}
    with httpx.Client(base_url=server.api, timeout=120) as client:
        for round_index in range(repeats + 2):
            for label, path, params, body in asked:
                started = time.perf_counter()
                if body is None:
                    response = client.get(path, params=params)
                else:
                    response = client.post(path, json=body)
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    raise RuntimeError(f"{label}: {response.status_code} {response.text[:200]}")
                if round_index >= 2:  # the first two rounds warm caches
                    times[label].append(elapsed)
                sizes[label] = len(response.content)
    return {label: (statistics.median(values), _p99(values), sizes[label]) for label, values in times.items()}


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def run(checkout: Path | None, bodies: list[bytes], spans: int, end_ns: int, repeats: int) -> Any:
    server = start_server(checkout)
    try:
        started = time.perf_counter()
        feed(server, bodies, spans)
        fed_s = time.perf_counter() - started
        return measure(server, questions(server, end_ns), repeats), fed_s
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=30, help="measured requests per route")
    parser.add_argument(
        "--compare", type=Path, help="another checkout to measure the same way beside this one"
    )
    args = parser.parse_args()

    rng = random.Random(11)
    end_ns = time.time_ns()
    batches = args.spans // 1000
    # Spread over the last half hour, oldest first, as a service would have sent them.
    bodies = [
        export_request(1000, rng, end_ns - SPREAD_NS + (i + 1) * SPREAD_NS // batches) for i in range(batches)
    ]
    spans = batches * 1000
    this, fed_this = run(None, bodies, spans, end_ns, args.repeats)
    other, fed_other = run(args.compare, bodies, spans, end_ns, args.repeats) if args.compare else (None, 0.0)

    print(f"\n{spans:,} spans over 30 minutes, {args.repeats} requests a route, one at a time")
    print(
        f"fed and stored in {fed_this:.1f} s" + (f" (the other checkout: {fed_other:.1f} s)" if other else "")
    )
    header = f"{'route':<28} {'p50 ms':>8} {'p99 ms':>8} {'bytes':>10}"
    if other:
        header += f"   {'other p50':>9} {'other p99':>9}  {'p50 this/other':>14}"
    print(header)
    for label, (p50, p99, size) in this.items():
        line = f"{label:<28} {p50:>8.1f} {p99:>8.1f} {size:>10,}"
        if other:
            o50, o99, _ = other[label]
            line += f"   {o50:>9.1f} {o99:>9.1f}  {p50 / o50:>14.2f}"
        print(line)


if __name__ == "__main__":
    main()
