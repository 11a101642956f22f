"""Explain accuracy on the randomized fault corpus: unseen topologies, one seeded fault (or none) per case.

    .venv/bin/python bench/explain_corpus.py [--cases 200] [--seed 1]

Case ``seed * 1,000,000 + k`` for k < N (so two seeds never share a case) comes from ``tests/support/fault_corpus.case``; explain runs in process on its spans.
Per fault kind and overall: the cause ranked first (top-1), the cause in the first three (top-3), and for healthy
windows the share whose findings all score <= 0.3 (quiet). Faults the root never felt (the generator could not
make them visible) are counted apart: there is nothing to explain. Then explain's median and worst time, and the first
misses with what ranked first, to look at.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from figures import Figure, record  # noqa: E402

from spyglass.analysis.explain import explain_spans  # noqa: E402
from tests.support.fault_corpus import VISIBLE_GROWTH, answer_of, answers_of, case  # noqa: E402

QUIET_SCORE = 0.3


def _first(findings: list[dict[str, Any]]) -> str:
    if not findings:
        return "(no finding)"
    f = findings[0]
    return f"{answer_of(f)} {f['score']:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--misses", type=int, default=10)
    args = parser.parse_args()

    rows: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    quiet: list[bool] = []
    times_ms: list[float] = []
    build_ms: list[float] = []
    misses: list[tuple[int, str, str, str, str]] = []
    invisible = 0
    for k in range(args.cases):
        seed = args.seed * 1_000_000 + k
        t0 = time.perf_counter()
        c = case(seed)
        t1 = time.perf_counter()
        findings = explain_spans(c.spans, c.request)
        t2 = time.perf_counter()
        build_ms.append((t1 - t0) * 1e3)
        times_ms.append((t2 - t1) * 1e3)
        if c.healthy:
            ok = all(f["score"] <= QUIET_SCORE for f in findings)
            quiet.append(ok)
            if not ok:
                misses.append((seed, "healthy", "-", _first(findings), c.description))
            continue
        if not c.visible:
            invisible += 1
            continue
        answers = [answers_of(f) for f in findings]
        top1 = bool(answers) and bool(answers[0] & c.expected)
        top3 = any(a & c.expected for a in answers[:3])
        rows[c.kind].append((top1, top3))
        if not top1:
            misses.append(
                (seed, c.kind, " | ".join(map(str, sorted(c.expected))), _first(findings), c.description)
            )

    print(f"explain on the fault corpus: {args.cases} cases from seed {args.seed}, 300 traces per window")
    print(f"{'fault kind':<18} {'cases':>5} {'top-1':>7} {'top-3':>7}")
    every = [r for kind_rows in rows.values() for r in kind_rows]
    for kind in sorted(rows):
        r = rows[kind]
        print(f"{kind:<18} {len(r):>5} {share(x for x, _ in r):>7} {share(y for _, y in r):>7}")
    print(
        f"{'all faults':<18} {len(every):>5} {share(x for x, _ in every):>7} {share(y for _, y in every):>7}"
    )
    print(
        f"{'healthy (quiet)':<18} {len(quiet):>5} {share(quiet):>7}  (no finding scored above {QUIET_SCORE})"
    )
    print(
        f"{'invisible faults':<18} {invisible:>5}  (the root's symptom share grew less than "
        f"{VISIBLE_GROWTH['latency']:.0%} / {VISIBLE_GROWTH['errors']:.0%}: nothing to explain, not counted)"
    )
    top1_all = sum(x for x, _ in every) / max(len(every), 1)
    top3_all = sum(y for _, y in every) / max(len(every), 1)
    conditions = f"{args.cases} cases, seed {args.seed}"
    record(
        [
            Figure(
                "explain_corpus", "cause named first", top1_all * 100, "%", at_least=95, conditions=conditions
            ),
            Figure(
                "explain_corpus",
                "cause in the top 3",
                top3_all * 100,
                "%",
                at_least=99,
                conditions=conditions,
            ),
            Figure(
                "explain_corpus",
                "healthy windows quiet",
                sum(quiet) / max(len(quiet), 1) * 100,
                "%",
                at_least=98,
                conditions=conditions,
            ),
            Figure("explain_corpus", "explain time, median", statistics.median(times_ms), "ms"),
        ]
    )
    print()
    print(f"{'what':<24} {'figure':>8} unit")
    print(f"{'explain time, median':<24} {statistics.median(times_ms):>8.0f} ms")
    print(f"{'explain time, worst':<24} {max(times_ms):>8.0f} ms")
    print(f"{'case build, median':<24} {statistics.median(build_ms):>8.0f} ms")
    print(f"{'case build, worst':<24} {max(build_ms):>8.0f} ms")
    print()
    print(
        f"first {min(args.misses, len(misses))} of {len(misses)} misses (seed, kind, expected, ranked first):"
    )
    for seed, kind, expected, first, description in misses[: args.misses]:
        print(f"  {seed:>5} {kind:<16} expected {expected}")
        print(f"        ranked first {first}")
        print(f"        fault: {description}")


def share(values: Any) -> str:
    """A share of true values as a percentage, '-' for none."""
    values = list(values)
    return f"{100 * sum(values) / len(values):.0f}%" if values else "-"


if __name__ == "__main__":
    main()
