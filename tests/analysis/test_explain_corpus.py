"""Explain on a fixed 60-case slice of the randomized fault corpus: a guard against ranking changes that help
one kind of fault and hurt another. bench/explain_corpus.py measures the full figures on seeds of any size.

The slice is seed 4 (cases 4,000,000-4,000,059); the thresholds sit a few cases under what it scores today, so
a change that loses more than that fails here first.
"""

from __future__ import annotations

from functools import cache

import pytest

from spyglass.analysis.explain import explain_spans
from tests.support.fault_corpus import Answer, Case, answers_of, case

SLICE = range(4_000_000, 4_000_060)
QUIET_SCORE = 0.3


@cache
def outcome(seed: int) -> tuple[Case, list[set[Answer]], float]:
    c = case(seed)
    findings = explain_spans(c.spans, c.request)
    return c, [answers_of(f) for f in findings], max((f["score"] for f in findings), default=0.0)


@pytest.mark.parametrize("part", range(4))
def test_corpus_slice(part: int) -> None:
    """Split in four so that the parallel runner spreads it; each quarter must hold on its own."""
    top1 = top3 = faults = quiet = healthy = 0
    misses = []
    for seed in SLICE[part::4]:
        c, answers, best = outcome(seed)
        if c.healthy:
            healthy += 1
            quiet += best <= QUIET_SCORE
            continue
        if not c.visible:
            continue  # the root never felt it: nothing to explain
        faults += 1
        top1 += bool(answers) and bool(answers[0] & c.expected)
        top3 += any(a & c.expected for a in answers[:3])
        if not answers or not answers[0] & c.expected:
            misses.append((seed, c.kind, answers[:1]))
    assert top1 >= faults - 2, misses
    assert top3 >= faults - 1, misses
    assert quiet >= healthy - 1
