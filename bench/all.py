"""Every benchmark at its stated size, one after another, and one table of their headline figures.

    .venv/bin/python bench/all.py                 # the stated sizes: about an hour and a half on 2 cores
    .venv/bin/python bench/all.py --quick         # smaller sizes, to check the table builds (minutes)
    .venv/bin/python bench/all.py --only ingest_http,recall_memory

Each benchmark runs as its own process (so none shares an interpreter or a page cache warm-up with another),
with its full output kept in ``--out`` (one file per run); the table gives each figure, its target where the
project states one, whether it is met, and its ratio to the ceiling measured in the same run (machines differ
threefold: quote ratios). Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from figures import FIGURES_FILE_ENV, Figure, read  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


@dataclass(frozen=True)
class Run:
    """One benchmark invocation: its script, the stated arguments, and smaller ones for ``--quick``."""

    name: str
    script: str
    args: tuple[str, ...]
    quick: tuple[str, ...]
    #: Runs only when this path exists under the checkout (the peers' own environment).
    needs: str | None = None


def runs(seed: int) -> list[Run]:
    """The benchmarks in the order they run, at the sizes the README quotes."""
    corpus = ("--seed", str(seed))
    return [
        Run("ingest_http", "ingest_http.py", ("--spans", "500000"), ("--spans", "50000")),
        Run(
            "ingest_http_sampled",
            "ingest_http.py",
            ("--spans", "500000", "--sample-rate", "0.05"),
            ("--spans", "50000", "--sample-rate", "0.05"),
        ),
        Run(
            "ingest_e2e",
            "ingest_e2e.py",
            ("--spans", "400000"),
            ("--spans", "50000", "--workers", "2", "--protocols", "http"),
        ),
        Run("aggregate", "aggregate.py", ("--rates", "1000"), ("--rates", "1000")),
        Run("recall_memory", "recall_memory.py", ("--spans", "1000000"), ("--spans", "100000")),
        Run(
            "recall_lookup",
            "recall_lookup.py",
            ("--recall-memory-mb", "512"),
            ("--recall-memory-mb", "32", "--lookups", "50"),
        ),
        Run("flood", "flood.py", ("--seconds", "60"), ("--seconds", "5")),
        Run("cluster", "cluster.py", ("--spans", "300000"), ("--spans", "30000")),
        Run("query_store", "query_store.py", ("--spans", "1000000"), ("--spans", "100000")),
        Run("query_api", "query_api.py", ("--spans", "10000000"), ("--spans", "300000")),
        Run("explain", "explain.py", ("--spans", "1000000"), ("--spans", "100000")),
        Run("explain_10m", "explain.py", ("--spans", "10000000"), ("--spans", "200000")),
        Run("explain_corpus", "explain_corpus.py", ("--cases", "300", *corpus), ("--cases", "20", *corpus)),
        Run(
            "explain_peers",
            "explain_peers.py",
            ("--cases", "100", *corpus),
            ("--cases", "10", *corpus),
            needs=".venv-peers",
        ),
        Run("sampling_quality", "sampling_quality.py", (), ("--traces", "20000")),
        Run(
            "slo_eval",
            "slo_eval.py",
            ("--slos", "20", "--spans", "200000", "--hours", "6", "--rounds", "3"),
            ("--slos", "5", "--spans", "50000", "--hours", "1", "--rounds", "1"),
        ),
        Run("retention", "retention.py", (), ("--rounds", "1")),
    ]


def run_one(run: Run, quick: bool, figures_file: Path, out_dir: Path) -> tuple[int, float]:
    """Run one benchmark, its output into ``out_dir``; returns its exit code and seconds taken."""
    args = run.quick if quick else run.args
    log = out_dir / f"{run.name}.txt"
    env = {**os.environ, FIGURES_FILE_ENV: str(figures_file), "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    with log.open("w") as out:
        code = subprocess.call(
            [sys.executable, str(BENCH / run.script), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    return code, time.monotonic() - started


def table(figures: list[Figure]) -> str:
    """The one table: benchmark, figure, value, target, met, share of the same-run ceiling, conditions."""
    header = ("bench", "figure", "value", "unit", "target", "met", "of ceiling", "conditions")
    rows = [header]
    for f in figures:
        met = {None: "", True: "yes", False: "NO"}[f.met]
        share = f"{f.of_ceiling:.2f}" if f.of_ceiling is not None else ""
        value = f"{f.value:,.0f}" if abs(f.value) >= 100 else f"{f.value:.3g}"
        rows.append((f.bench, f.name, value, f.unit, f.target, met, share, f.conditions))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    lines = []
    for row in rows:
        cells = [
            cell.ljust(w) if i != 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=False))
        ]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes: checks the table, not the figures"
    )
    parser.add_argument("--only", default="", help="comma-separated benchmark names (default: all)")
    parser.add_argument("--seed", type=int, default=41, help="fault corpus seed (pick one never tuned on)")
    parser.add_argument("--out", type=Path, default=None, help="directory for each benchmark's full output")
    args = parser.parse_args()

    chosen = runs(args.seed)
    if args.only:
        wanted = {name.strip() for name in args.only.split(",") if name.strip()}
        unknown = wanted - {r.name for r in chosen}
        if unknown:
            parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
        chosen = [r for r in chosen if r.name in wanted]
    out_dir = args.out or Path(tempfile.mkdtemp(prefix="spyglass-bench-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    figures_file = out_dir / "figures.jsonl"
    figures_file.unlink(missing_ok=True)
    failed = []
    print(f"{len(chosen)} benchmarks, output in {out_dir}", flush=True)
    for run in chosen:
        if run.needs and not (ROOT / run.needs).exists():
            print(
                f"  {run.name:22s} skipped: {run.needs} is missing (bench/peers_setup.sh makes it)",
                flush=True,
            )
            continue
        code, seconds = run_one(run, args.quick, figures_file, out_dir)
        print(
            f"  {run.name:22s} {'ok' if code == 0 else f'FAILED ({code})':12s} {seconds:7.0f} s", flush=True
        )
        if code != 0:
            failed.append(run.name)
    figures = read(str(figures_file)) if figures_file.exists() else []
    print()
    print(table(figures))
    missed = [f for f in figures if f.met is False]
    if missed:
        print(f"\n{len(missed)} figure(s) miss their target")
    if failed:
        print(f"failed: {', '.join(failed)} (see {out_dir})")
        sys.exit(1)


if __name__ == "__main__":
    main()
