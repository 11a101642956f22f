"""spyglass's explain beside TraceRCA and MicroRank (RCAEval's published code) on the randomized fault corpus.

    bash bench/peers_setup.sh            # once: .venv-peers with rcaeval 1.8.1 and what its two modules import
    .venv/bin/python bench/explain_peers.py [--cases 100] [--seed 1] [--callee-side-only]

Case ``seed * 1,000,000 + k`` for k < N comes from ``tests/support/fault_corpus.case`` (as in explain_corpus.py);
healthy cases are skipped, since the peers always name a culprit, and so are faults the root never felt
(``Case.visible``; explain_corpus.py counts them apart too). The question all three answer is which
service is at fault: a method's ranking becomes its distinct services in order, and a case is a top-1 (top-3) hit
when a service of ``Case.culprits`` comes first (among the first three). spyglass's ranking is the ``service`` of
its findings; its cause-level accuracy (``answers_of`` against ``Case.expected``) is printed too. Times are per
case: explain_spans on the case's Arrow table; each peer's call on its pandas frame, in .venv-peers, through
bench/peers/run_peers.py (one process for all cases; reading the frame and starting up are not counted).

The peers get RCAEval's trace frame: traceID, spanID, parentSpanID, serviceName, methodName and operationName
(both the span name), startTime and duration in microseconds, for the traces whose root starts in the baseline or
the regression window; inject_time is the regression window's start in microseconds, and RCAEval calls a span
normal when startTime + duration < inject_time. Both read durations only, so on error-signal cases they get the
same frame with no status: those columns show what latency alone reveals there. RCAEval's versions, run as
published: TraceRCA flags a span when its duration is at least its operation's (service_span name) baseline mean
+ 3 sigma, and ranks operations by the harmonic mean of support and confidence; MicroRank runs its PageRank over
all baseline and all regression spans and ranks operations by the DStar2 spectrum. A client span counts for the
calling service, as in the Jaeger traces RCAEval ships. "raised" counts cases where a peer threw (a miss),
"empty" cases it ranked nothing. ``--callee-side-only`` drops, from the peers' frame only, the client spans of
calls into an instrumented service (a client span with a child), so a slow callee is not also its caller's slow
operation; calls to uninstrumented peers keep theirs. It shows how much of a peer's miss is that attribution
(MicroRank's call graph loses those edges with them).
"""

from __future__ import annotations

# First: spyglass sets numpy's CPU dispatch before numpy loads, as in `spyglass serve` (numpy_sort_dispatch).
import spyglass  # noqa: F401

# isort: split

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.explain_corpus import share  # noqa: E402
from spyglass.analysis.explain import ExplainRequest, explain_spans  # noqa: E402
from spyglass.model.schema import SpanKind  # noqa: E402
from tests.support.fault_corpus import answers_of, case, services_of  # noqa: E402

PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
PEERS_RUNNER = ROOT / "bench" / "peers" / "run_peers.py"
PEERS = {"tracerca": "TraceRCA", "microrank": "MicroRank"}
NS_PER_US = 1000


@dataclass
class Ranking:
    """One method's answer on one case: the services it names, in order, and what it cost."""

    services: list[str]
    ms: float
    error: str | None = None


@dataclass
class Scored:
    """A fault case as the table needs it, with each method's ranking."""

    seed: int
    signal: str
    culprits: frozenset[str]
    rankings: dict[str, Ranking]
    #: spyglass's cause-level top-1 and top-3: ``answer_of`` its findings against ``Case.expected``.
    cause_hits: tuple[bool, bool]

    def hit(self, method: str, k: int) -> bool:
        return any(s in self.culprits for s in self.rankings[method].services[:k])


def peer_frame(spans: pa.Table, request: ExplainRequest, callee_side_only: bool = False) -> pa.Table:
    """RCAEval's trace frame of the traces rooted in the baseline or the regression window.

    A trace belongs to the window its root starts in, as in explain; times go from nanoseconds to RCAEval's
    microseconds (Jaeger's unit, which its methods divide by 1,000 to get milliseconds).
    """
    if callee_side_only:
        has_child = pc.is_in(spans["span_id"], value_set=pc.unique(spans["parent_span_id"].drop_null()))
        spans = spans.filter(pc.invert(pc.and_(pc.equal(spans["kind"], int(SpanKind.CLIENT)), has_child)))
    roots = spans.filter(pc.is_null(spans["parent_span_id"]))
    start = roots["start_ns"]
    in_windows = pc.or_(
        pc.and_(pc.greater_equal(start, request.baseline_start_ns), pc.less(start, request.baseline_end_ns)),
        pc.and_(pc.greater_equal(start, request.start_ns), pc.less(start, request.end_ns)),
    )
    kept = spans.filter(pc.is_in(spans["trace_id"], value_set=roots.filter(in_windows)["trace_id"]))
    return pa.table(
        {
            "traceID": _hex(kept["trace_id"]),
            "spanID": _hex(kept["span_id"]),
            "parentSpanID": _hex(kept["parent_span_id"]),
            "serviceName": kept["service"],
            "methodName": kept["name"],
            "operationName": kept["name"],
            "startTime": pc.divide(kept["start_ns"], NS_PER_US),
            "duration": pc.divide(kept["duration_ns"], NS_PER_US),
        }
    )


def _hex(ids: pa.ChunkedArray) -> pa.Array:
    # Arrow has no hex kernel; a few thousand ids per case make this loop cheap next to either method.
    return pa.array([None if i is None else i.hex() for i in ids.to_pylist()], pa.string())


def run_peers(manifest: list[dict[str, object]], workdir: Path) -> dict[str, dict[str, Ranking]]:
    """Every case through both peers in one .venv-peers process; their rankings by case seed."""
    manifest_path, results_path = workdir / "manifest.json", workdir / "results.json"
    manifest_path.write_text(json.dumps({"cases": manifest}))
    subprocess.run([str(PEERS_PYTHON), str(PEERS_RUNNER), str(manifest_path), str(results_path)], check=True)
    results = json.loads(results_path.read_text())["results"]
    return {
        seed: {m: Ranking(r["services"], r["ms"], r["error"]) for m, r in by_method.items()}
        for seed, by_method in results.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--callee-side-only",
        action="store_true",
        help="peers get no client span of calls into an instrumented service",
    )
    args = parser.parse_args()
    if not PEERS_PYTHON.exists():
        raise SystemExit("no .venv-peers: run bash bench/peers_setup.sh first")

    scored: list[Scored] = []
    healthy = invisible = 0
    with tempfile.TemporaryDirectory(prefix="explain-peers-") as tmp:
        workdir = Path(tmp)
        manifest: list[dict[str, object]] = []
        for k in range(args.cases):
            seed = args.seed * 1_000_000 + k
            c = case(seed)
            if c.healthy:
                healthy += 1
                continue
            if not c.visible:
                invisible += 1
                continue
            started = time.perf_counter()
            findings = explain_spans(c.spans, c.request)
            ms = (time.perf_counter() - started) * 1e3
            services = list(dict.fromkeys(s for f in findings for s in services_of(f)))
            answers = [answers_of(f) for f in findings]
            cause_hits = (
                answers[:1] != [] and bool(answers[0] & c.expected),
                any(a & c.expected for a in answers[:3]),
            )
            scored.append(
                Scored(seed, c.request.signal, c.culprits, {"spyglass": Ranking(services, ms)}, cause_hits)
            )

            frame_path = workdir / f"{seed}.csv"
            pa_csv.write_csv(peer_frame(c.spans, c.request, args.callee_side_only), frame_path)
            manifest.append(
                {"seed": seed, "frame": str(frame_path), "inject_time_us": c.request.start_ns // NS_PER_US}
            )
        print(f"running TraceRCA and MicroRank on {len(manifest)} cases in .venv-peers ...", file=sys.stderr)
        peer_rankings = run_peers(manifest, workdir)
        for s in scored:
            s.rankings.update(peer_rankings[str(s.seed)])

    _print_table(args, scored, healthy, invisible)


def _print_table(args: argparse.Namespace, scored: list[Scored], healthy: int, invisible: int) -> None:
    latency = [s for s in scored if s.signal == "latency"]
    errors = [s for s in scored if s.signal == "errors"]
    print(
        f"service-level root cause on the fault corpus: {len(scored)} fault cases of {args.cases} from seed "
        f"{args.seed} ({healthy} healthy and {invisible} the root never felt skipped), 300 traces per window"
    )
    print("a hit: a culprit service among the first 1 / 3 distinct services the method ranks")
    if args.callee_side_only:
        print("peers' frame: --callee-side-only (no client span of calls into an instrumented service)")
    print(
        f"{'method':<10} {'cases':>5} {'top-1':>6} {'top-3':>6}   {f'latency ({len(latency)})':>14}"
        f"   {f'errors ({len(errors)})':>13}   {'raised':>6} {'empty':>5} {'median':>8}"
    )
    print(
        f"{'':<10} {'':>5} {'':>6} {'':>6}   {'top-1  top-3':>14}   {'top-1  top-3':>13}   {'':>6} {'':>5} {'ms/case':>8}"
    )
    for method, label in (("spyglass", "spyglass"), *PEERS.items()):
        raised = sum(s.rankings[method].error is not None for s in scored)
        empty = sum(not s.rankings[method].services for s in scored)
        median_ms = statistics.median(s.rankings[method].ms for s in scored) if scored else 0.0
        print(
            f"{label:<10} {len(scored):>5} {share(s.hit(method, 1) for s in scored):>6} "
            f"{share(s.hit(method, 3) for s in scored):>6}   "
            f"{share(s.hit(method, 1) for s in latency):>7}{share(s.hit(method, 3) for s in latency):>7}   "
            f"{share(s.hit(method, 1) for s in errors):>6}{share(s.hit(method, 3) for s in errors):>7}   "
            f"{raised:>6} {empty:>5} {median_ms:>8.0f}"
        )
    print()
    print(
        f"spyglass at the cause level (answers_of against expected): top-1 {share(s.cause_hits[0] for s in scored)}, "
        f"top-3 {share(s.cause_hits[1] for s in scored)}"
    )
    elsewhere = sum(s.cause_hits[0] and not s.hit("spyglass", 1) for s in scored)
    print(
        f"  in {elsewhere} cases its first finding is the right cause but its service is no culprit: e.g. a "
        "customer, input size or flag, reported on the service whose spans carry that attribute"
    )
    print(
        "TraceRCA and MicroRank read span durations only: on the error-signal cases they got the same frame, "
        "with no status."
    )
    for method, label in PEERS.items():
        errors_seen = [(s.seed, s.rankings[method].error) for s in scored if s.rankings[method].error]
        for seed, error in errors_seen[:3]:
            print(f"{label} raised on case {seed}: {error}")


if __name__ == "__main__":
    main()
