"""Cluster throughput: OTLP/HTTP into a 3-satellite loopback cluster (spans forwarded to their trace's owner)
against one satellite, with each process's CPU and memory.

Every satellite is its own ``spyglass serve`` process with ``--peers`` listing all three. Clients send
pre-encoded requests of whole 10-span traces round-robin to the members, so about two thirds of the spans are
forwarded. Prints spans/s until every span is applied at its owner (``spans_received`` summed over the
cluster reaches the total) and until every trace is decided and stored, then CPU seconds and peak RSS per
process and per 100k spans. Also the forwarding encoder alone (Arrow -> OTLP protobuf) on one core.

    python bench/cluster.py --spans 300000
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from figures import Figure, record  # noqa: E402
from otlp_payloads import export_request, send_all  # noqa: E402
from serve_process import free_ports  # noqa: E402


def start_member(api: int, ports: list[int], peers: list[str], data_dir: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "spyglass.cli",
        "serve",
        "--data-dir",
        str(data_dir),
        "--port",
        str(api),
        "--otlp-grpc-port",
        str(ports[0]),
        "--otlp-http-port",
        str(ports[1]),
        "--zipkin-port",
        str(ports[2]),
        "--decision-wait",
        "1",
        "--recall-memory-mb",
        "512",
    ]
    if peers:
        command += ["--peers", ",".join(peers), "--advertise", f"http://127.0.0.1:{api}"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(bodies: list[bytes], members: int, connections: int, spans_per_request: int) -> dict[str, float]:
    total = len(bodies) * spans_per_request
    all_ports = free_ports(4 * members)
    apis = all_ports[:members]
    peers = [f"http://127.0.0.1:{api}" for api in apis] if members > 1 else []
    processes = []
    http_ports = []
    for index, api in enumerate(apis):
        ports = all_ports[members + 3 * index : members + 3 * index + 3]
        http_ports.append(ports[1])
        data_dir = Path(tempfile.mkdtemp(prefix="spyglass-bench-cluster-"))
        processes.append(start_member(api, ports, peers, data_dir))
    for api in apis:
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{api}/api/v1/status", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
    cpu_before = [cpu_seconds(p.pid) for p in processes]
    started = time.perf_counter()
    refused = send_all(bodies, http_ports, connections)
    accepted_s = time.perf_counter() - started
    status_url = f"http://127.0.0.1:{apis[0]}/api/v1/status"
    applied_s = None
    while True:
        status = httpx.get(status_url, timeout=30).json()
        if applied_s is None and status["spans_received"] >= total:
            applied_s = time.perf_counter() - started
        if status["traces_decided"] >= total // 10 and status["spans_stored"] >= total:
            break
        time.sleep(0.05)
    stored_s = time.perf_counter() - started
    cpu = [cpu_seconds(p.pid) - before for p, before in zip(processes, cpu_before, strict=True)]
    rss = [peak_rss_mb(p.pid) for p in processes]
    forwarded = status.get("cluster", {}).get("by_member", [])
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        process.wait(timeout=60)
    return {
        "accepted": total / accepted_s,
        "applied": total / (applied_s or stored_s),
        "stored": total / stored_s,
        "cpu_s": sum(cpu),
        "cpu_s_max": max(cpu),
        "rss_mb_max": max(rss),
        "refused": refused,
        "forwarded": sum(m.get("spans_forwarded", 0) for m in forwarded),
    }


def encoder_rate(bodies: list[bytes]) -> float:
    from spyglass.cluster.otlp_encoder import encode_otlp_proto
    from spyglass.receivers.decoders.otlp_proto import decode_otlp_proto

    batches = [decode_otlp_proto(b).batch for b in bodies[:50]]
    started = time.perf_counter()
    for batch in batches:
        encode_otlp_proto(batch)
    return sum(b.num_rows for b in batches) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=6)
    args = parser.parse_args()
    rng = random.Random(11)
    now = time.time_ns()
    bodies = [export_request(args.batch, rng, now) for _ in range(args.spans // args.batch)]
    total = len(bodies) * args.batch
    encode = encoder_rate(bodies)
    single = run(bodies, 1, args.connections, args.batch)
    cluster = run(bodies, 3, args.connections, args.batch)
    rows = [
        (
            "forwarding encoder (Arrow -> OTLP)",
            f"{encode:,.0f}",
            "spans/s",
            "one core, in process, 1000-span batches",
        )
    ]
    for name, result in (("1 satellite", single), ("3 satellites", cluster)):
        rows += [
            (
                f"{name}: accepted",
                f"{result['accepted']:,.0f}",
                "spans/s",
                f"{total:,} spans, {args.connections} clients",
            ),
            (
                f"{name}: applied at owner",
                f"{result['applied']:,.0f}",
                "spans/s",
                "spans_received reaches the total",
            ),
            (
                f"{name}: decided and stored",
                f"{result['stored']:,.0f}",
                "spans/s",
                "1 s decision wait, DuckDB",
            ),
            (
                f"{name}: CPU per 100k spans",
                f"{result['cpu_s'] / total * 100_000:.2f}",
                "CPU-s",
                f"all processes; busiest {result['cpu_s_max']:.1f} s of {result['cpu_s']:.1f} s",
            ),
            (f"{name}: peak RSS per process", f"{result['rss_mb_max']:.0f}", "MB", "largest member"),
            (f"{name}: 429 refusals", f"{result['refused']}", "requests", "retried by the client"),
        ]
    rows.append(("3 satellites: spans forwarded", f"{cluster['forwarded']:,.0f}", "spans", "to their owner"))
    print(f"{'what':40} {'figure':>12} {'unit':9} conditions ({os.cpu_count()} cores, all on loopback)")
    for what, figure, unit, conditions in rows:
        print(f"{what:40} {figure:>12} {unit:9} {conditions}")
    record(
        [
            Figure(
                "cluster",
                "3 satellites on these cores: decided and stored",
                cluster["stored"],
                "spans/s",
                ceiling=single["stored"],
                conditions="ceiling: one satellite, same spans",
            )
        ]
    )


if __name__ == "__main__":
    main()
