"""Ingest end to end, by ``--workers``: OTLP/HTTP and OTLP/gRPC protobuf in, every trace decided and the kept
ones stored, through a real ``spyglass serve`` in its own process.

For each combination of ``--workers``, ``--sample-rate`` and protocol, a fresh server takes the same
pre-encoded requests (``bench/otlp_payloads.py``, 1000 spans each, every trace distinct) from a sender process
of its own, and the table shows: spans/s accepted (200 / OK), spans/s end to end (until every trace is decided
and every kept span stored, less the decision wait, which is latency, not work), both as a share of the decode
ceiling of the same bodies (ptars alone, one core, measured in this run), and the CPU the server (with its decode
processes) and the sender spent. The machine's load average is printed with it: on a shared machine only the
ratios travel.

    python bench/ingest_e2e.py                              # --workers 1,2 x --sample-rate 0.05,1.0 x http,grpc
    python bench/ingest_e2e.py --workers 2 --sample-rate 0.05 --protocols http --repeat 3

``measure_e2e`` is the measuring function, for other benchmarks to import.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from figures import Figure, record  # noqa: E402
from otlp_payloads import export_request, ptars_decoder, send_all  # noqa: E402
from serve_process import start_serve  # noqa: E402

EXPORT_PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
SPANS_PER_TRACE = 10  # what export_request makes


@dataclass(frozen=True)
class E2EFigures:
    """One server's run: what it took, how fast, and whose CPU it cost."""

    protocol: str
    workers: int
    sample_rate: float
    spans: int
    accepted_per_s: float
    end_to_end_per_s: float
    refusals: int
    server_cpu_s: float
    #: of which the server's own process (receiving, aggregating, buffering, deciding, writing): the decode
    #: processes spent the rest
    main_cpu_s: float
    sender_cpu_s: float
    elapsed_s: float
    traces_kept: int
    traces_decided: int


@dataclass(frozen=True)
class Ceilings:
    """Spans/s on one core (CPU time of this thread) of the same bodies: ptars alone, and spyglass's decoder."""

    ptars: float
    decode: float


def decode_ceilings(bodies: list[bytes], spans_per_body: int, rounds: int = 60) -> Ceilings:
    """Both decoders on the same bodies, interleaved, so load on the machine slows both alike."""
    from spyglass.receivers.decoders.otlp_proto import decode_otlp_proto

    ceiling = ptars_decoder()
    for body in bodies[:3]:
        ceiling(body)
        decode_otlp_proto(body)
    ptars_s = decode_s = 0.0
    clock = time.thread_time
    for index in range(rounds):
        body = bodies[index % len(bodies)]
        began = clock()
        ceiling(body)
        middle = clock()
        decode_otlp_proto(body)
        ptars_s += middle - began
        decode_s += clock() - middle
    spans = rounds * spans_per_body
    return Ceilings(spans / ptars_s, spans / decode_s)


def _process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of one process, from ``/proc``; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process and every live descendant, from ``/proc``."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        total += _process_cpu_s(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def _send_grpc(bodies: list[bytes], address: str, connections: int) -> int:
    """Every body to ``TraceService/Export`` from ``connections`` threads on one channel each, retrying a
    refusal after a tenth of a second; returns the refusals."""
    import threading

    import grpc

    refused = [0]
    lock = threading.Lock()
    next_request = iter(range(len(bodies)))

    def client() -> None:
        with grpc.insecure_channel(address) as channel:
            export = channel.unary_unary(EXPORT_PATH)
            while True:
                with lock:
                    index = next(next_request, None)
                if index is None:
                    return
                while True:
                    try:
                        export(bodies[index], timeout=60)
                        break
                    except grpc.RpcError as error:
                        if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                            raise
                        with lock:
                            refused[0] += 1
                        time.sleep(0.1)

    threads = [threading.Thread(target=client) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return refused[0]


def _sender(protocol: str, bodies: list[bytes], port: int, connections: int, out: Connection) -> None:
    """The load generator's process: sends everything, reports (refusals, wall s, its own CPU s)."""
    os.nice(5)  # a client on another machine, in effect: the server wins a contended core
    began, cpu_began = time.perf_counter(), time.process_time()
    if protocol == "http":
        refused = send_all(bodies, [port], connections)
    else:
        refused = _send_grpc(bodies, f"127.0.0.1:{port}", connections)
    out.send((refused, time.perf_counter() - began, time.process_time() - cpu_began))


def measure_e2e(
    bodies: list[bytes],
    spans_per_body: int,
    *,
    protocol: str = "http",
    workers: int = 2,
    sample_rate: float = 0.05,
    connections: int = 4,
    decision_wait_s: float = 1.0,
    extra_flags: tuple[str, ...] = (),
    checkout: Path | None = None,
) -> E2EFigures:
    """Start ``spyglass serve --workers W --sample-rate R``, send ``bodies`` over ``protocol`` ("http" or
    "grpc") from a process of its own, and time acceptance and the end of deciding and storing; ``checkout``
    runs another checkout's server (``start_serve``'s)."""
    flags = (
        "--workers",
        str(workers),
        "--sample-rate",
        str(sample_rate),
        "--decision-wait",
        str(decision_wait_s),
        "--recall-memory-mb",
        "512",
        *extra_flags,
    )
    server = start_serve(*flags, checkout=checkout, prefix="spyglass-e2e-")
    try:
        port = server.otlp_http_port if protocol == "http" else server.otlp_grpc_port
        total = len(bodies) * spans_per_body
        traces_total = total // SPANS_PER_TRACE
        receiving, sending = multiprocessing.get_context("fork").Pipe(duplex=False)
        sender = multiprocessing.get_context("fork").Process(
            target=_sender, args=(protocol, bodies, port, connections, sending)
        )
        cpu_began = _tree_cpu_s(server.process.pid)
        main_cpu_began = _process_cpu_s(server.process.pid)
        began = time.perf_counter()
        sender.start()
        refused, sent_s, sender_cpu_s = receiving.recv()
        sender.join()
        accepted_s = time.perf_counter() - began
        while True:
            status = server.status()
            decided = status["traces_decided"] >= traces_total
            if decided and status["spans_stored"] >= status["traces_kept"] * SPANS_PER_TRACE:
                break
            time.sleep(0.02)
        done_s = time.perf_counter() - began
        server_cpu_s = _tree_cpu_s(server.process.pid) - cpu_began
        main_cpu_s = _process_cpu_s(server.process.pid) - main_cpu_began
    finally:
        server.stop(timeout_s=120)
    return E2EFigures(
        protocol=protocol,
        workers=workers,
        sample_rate=sample_rate,
        spans=total,
        accepted_per_s=total / accepted_s,
        end_to_end_per_s=total / max(accepted_s, done_s - decision_wait_s),
        refusals=refused,
        server_cpu_s=server_cpu_s,
        main_cpu_s=main_cpu_s,
        sender_cpu_s=sender_cpu_s,
        elapsed_s=done_s,
        traces_kept=status["traces_kept"],
        traces_decided=status["traces_decided"],
    )


def load_average() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=600_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", default="1,2", help="comma-separated --workers values")
    parser.add_argument("--sample-rate", default="0.05,1.0", help="comma-separated --sample-rate values")
    parser.add_argument("--protocols", default="http,grpc")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--compare", type=Path, help="another checkout (e.g. git archive HEAD): its server too, row after row"
    )
    args = parser.parse_args()

    rng = random.Random(11)
    now = time.time_ns()
    bodies = [export_request(args.batch, rng, now) for _ in range(args.spans // args.batch)]
    wire = sum(map(len, bodies)) / (len(bodies) * args.batch)
    print(
        f"{len(bodies)} requests of {args.batch} spans ({wire:.0f} B/span), {args.connections} connections, "
        f"{os.cpu_count()} cores; load average before: {load_average()}"
    )
    header = (
        f"{'code':6} {'proto':5} {'W':>2} {'rate':>5} {'accepted/s':>11} {'e2e/s':>9} {'ceiling/s':>10} "
        f"{'acc/ceil':>8} {'e2e/ceil':>8} {'429s':>5} {'server cpu':>10} {'us/span':>7} {'main':>5} {'sender cpu':>10} {'load':>14}"
    )
    print(header)
    for _ in range(args.repeat):
        for workers in (int(w) for w in args.workers.split(",")):
            for rate in (float(r) for r in args.sample_rate.split(",")):
                for protocol in args.protocols.split(","):
                    for code, checkout in (("this", None), ("other", args.compare)):
                        if code == "other" and checkout is None:
                            continue
                        ceiling = decode_ceilings(bodies, args.batch).ptars
                        figures = measure_e2e(
                            bodies,
                            args.batch,
                            protocol=protocol,
                            workers=workers,
                            sample_rate=rate,
                            connections=args.connections,
                            checkout=checkout,
                        )
                        print(
                            f"{code:6} {protocol:5} {workers:>2} {rate:>5g} {figures.accepted_per_s:>11,.0f} "
                            f"{figures.end_to_end_per_s:>9,.0f} {ceiling:>10,.0f} "
                            f"{figures.accepted_per_s / ceiling:>8.2f} {figures.end_to_end_per_s / ceiling:>8.2f} "
                            f"{figures.refusals:>5} {figures.server_cpu_s:>9.1f}s {figures.server_cpu_s / figures.spans * 1e6:>7.1f} "
                            f"{figures.main_cpu_s / figures.spans * 1e6:>5.1f} "
                            f"{figures.sender_cpu_s:>9.1f}s "
                            f"{load_average():>14}",
                            flush=True,
                        )
                        if code == "this":
                            record(
                                [
                                    Figure(
                                        "ingest_e2e",
                                        f"{protocol} end to end, --workers {workers}, --sample-rate {rate:g}",
                                        figures.end_to_end_per_s,
                                        "spans/s",
                                        at_least=(150_000 if rate <= 0.05 else 100_000)
                                        if workers > 1
                                        else None,
                                        ceiling=ceiling,
                                        conditions=f"accepted {figures.accepted_per_s:,.0f}/s",
                                    )
                                ]
                            )
    print(
        "ceiling: ptars alone turning the same bodies into Arrow on one core (CPU time), measured before each row; "
        "e2e: until every trace is decided and every kept span stored, less the 1 s decision wait; "
        "cpu: the server with its decode processes, and the sender process, over the run; us/span: the server's "
        "CPU per span, main: of which its own process's (the decode processes spent the rest)"
    )


if __name__ == "__main__":
    main()
