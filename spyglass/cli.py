"""The ``spyglass`` command: ``serve`` runs the system, ``demo`` sends it realistic traffic, ``openapi`` prints
the query API's contract."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Sequence

from spyglass import __version__
from spyglass.config import ConfigError, add_serve_flags, serve_config_from_args
from spyglass.demo.scenarios import SCENARIOS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spyglass", description="Distributed tracing that explains.")
    parser.add_argument("--version", action="version", version=f"spyglass {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run spyglass: receivers, satellite, store, API and UI")
    add_serve_flags(serve, os.environ)
    demo = commands.add_parser("demo", help="run demo services that send traces to spyglass")
    env = os.environ
    demo.add_argument(
        "--otlp-endpoint",
        default=env.get("SPYGLASS_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
        help="OTLP/HTTP endpoint (env SPYGLASS_OTLP_ENDPOINT)",
    )
    demo.add_argument(
        "--duration",
        type=float,
        # A string default is converted by ``type`` only when ``demo`` is parsed: a bad value is demo's 2.
        default=env.get("SPYGLASS_DURATION") or None,
        help="seconds to run; forever when unset (env SPYGLASS_DURATION)",
    )
    demo.add_argument(
        "--scenario",
        default=env.get("SPYGLASS_SCENARIO", "healthy"),
        choices=sorted(SCENARIOS),
        help="healthy, or a fault injected after a healthy baseline (env SPYGLASS_SCENARIO)",
    )
    demo.add_argument(
        "--rate",
        type=float,
        default=env.get("SPYGLASS_RATE") or "20",
        help="requests per second into the demo's front end (env SPYGLASS_RATE)",
    )
    commands.add_parser(
        "openapi", help="print the query API's OpenAPI document (what /openapi.json serves) and exit"
    )
    return parser


def _openapi() -> int:
    """The document of a default server, built without listening anywhere: the UI's types come from it."""
    import json
    import tempfile
    from pathlib import Path

    from spyglass.config import ServeConfig
    from spyglass.server import SpyglassServer

    with tempfile.TemporaryDirectory(prefix="spyglass-openapi-") as data_dir:
        server = SpyglassServer(ServeConfig(data_dir=Path(data_dir)))
        try:
            document = server.api_app().openapi()
        finally:
            server.decode_pool.shutdown()
            server.store.close()
    print(json.dumps(document, indent=2, ensure_ascii=False))
    return 0


def freeze_startup_objects() -> None:
    """Leave what starting made (modules, the apps and their routes, about 140,000 objects) out of every later
    garbage collection of this process. A full collection walked them all: a 90 ms stop of every thread of a
    serving process, queries and exports alike, against under 2 ms without them (measured after 1M spans). They
    live as long as the process, so nothing is lost; startup's garbage is collected first."""
    gc.collect()
    gc.freeze()


#: How long a thread holding the GIL keeps it while another waits for it (CPython's default: 5 ms). A request's
#: thread gives it up at every DuckDB statement and socket write, and waits to have it back while the receivers'
#: loop and the satellite's threads run: a trace by id at 10M stored spans while 20,000 spans/s arrived took
#: 8.5-8.7 ms p50 at 0.5 ms against 10.9-11.0 at 5 (two servers on one file, asked in turn; idle, the same).
#: Ingest end to end measured the same either way (``bench/ingest_e2e.py``, both rates and protocols, alternated).
GIL_SWITCH_INTERVAL_S = 0.0005


def hand_the_gil_over_sooner() -> None:
    """A serving process's threads take turns with the GIL every ``GIL_SWITCH_INTERVAL_S``.

    The demo's process too: its dozen services share one interpreter, and each request's threads give the GIL
    up at every socket call. At 5 ms they waited behind the span exporters' encoding, so the demo's latencies
    were the interpreter's queue more than the services' work: on a machine whose both cores were busy, the
    product page's p50 was 42 ms at 5 ms and 23 ms at 0.5 ms."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


def _serve(args: argparse.Namespace) -> int:
    from spyglass.server import SpyglassServer

    hand_the_gil_over_sooner()
    config = serve_config_from_args(args)
    server = SpyglassServer(config)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, server.request_stop)
        task = asyncio.create_task(server.serve())
        while server.ports is None and not task.done():
            await asyncio.sleep(0.05)
        if server.ports is not None:
            ports = server.ports
            print(
                f"spyglass {__version__} serving: UI and API http://{config.host}:{ports.api}/ | "
                f"OTLP gRPC {config.host}:{ports.otlp_grpc} | OTLP HTTP http://{config.host}:{ports.otlp_http} | "
                f"Zipkin http://{config.host}:{ports.zipkin}/api/v2/spans | data {config.data_dir}",
                flush=True,
            )
            freeze_startup_objects()
        await task

    asyncio.run(main())
    return 0


def _demo(args: argparse.Namespace) -> int:
    from spyglass.demo.runner import run_demo

    hand_the_gil_over_sooner()
    stats = run_demo(
        otlp_endpoint=args.otlp_endpoint,
        duration_s=args.duration,
        scenario=args.scenario,
        rate_per_s=args.rate,
    )
    print(f"demo finished: {stats}", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        args = _parser().parse_args(argv)
        if args.command == "serve":
            return _serve(args)
        if args.command == "openapi":
            return _openapi()
        return _demo(args)
    except ConfigError as exc:
        print(f"spyglass: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
