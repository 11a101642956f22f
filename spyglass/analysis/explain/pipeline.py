"""Explain, start to end: from a symptom (a root operation got slower or fails more) to its most likely causes.

1. ``symptom``: the traces of both windows, which show the symptom, how much it grew; nothing more when it did
   not change beyond noise.
2. Candidates, each scored by the share of the symptom's growth it explains, measured the same way for every
   kind, and shown only when its evidence is outside the baseline's noise:
   ``candidates`` (what requests carried), ``places`` (where spans ran, judged by those spans) and
   ``mechanisms`` (where time went, and how: n+1, sequential calls, where errors originate).
3. ``ranking`` and ``folding``: the cause before where it shows; one cause told once (a mechanism and the
   value that switched it on are one finding).
4. ``evidence`` and ``summary``: the numbers a finding is read with, example traces, one sentence.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from spyglass.analysis.explain import evidence
from spyglass.analysis.explain.candidates import request_values
from spyglass.analysis.explain.finding import Finding
from spyglass.analysis.explain.folding import dedupe, fold_into_mechanisms
from spyglass.analysis.explain.mechanisms import (
    error_sources,
    n_plus_one,
    operations,
    relabel_peers,
    sequential,
)
from spyglass.analysis.explain.places import place_findings
from spyglass.analysis.explain.ranking import rank, tell_once, why_before_where
from spyglass.analysis.explain.summary import summary
from spyglass.analysis.explain.symptom import ExplainRequest, Windows
from spyglass.analysis.ownership import Ownership

MAX_FINDINGS = 10


def explain_spans(
    spans: pa.Table, req: ExplainRequest, ownership: Ownership | None = None, limit: int = MAX_FINDINGS
) -> list[dict[str, Any]]:
    """Ranked findings for the symptom as the API shows them, from the spans of both windows (``SPAN_SCHEMA``
    columns, optionally ``sample_weight``). Empty when the symptom did not change."""
    return [f.to_json() for f in findings(spans, req, ownership, limit)]


def findings(
    spans: pa.Table, req: ExplainRequest, ownership: Ownership | None = None, limit: int = MAX_FINDINGS
) -> list[Finding]:
    """Ranked, typed findings for the symptom."""
    if spans.num_rows == 0:
        return []
    w = Windows(spans, req)
    try:
        if not w.select_traces() or not w.changed():
            return []
        w.build_structure()
        found = request_values(w) + place_findings(w)
        mechanisms = n_plus_one(w) + sequential(w) if w.latency else error_sources(w)
        named = {(f.service, f.operation) for f in mechanisms}
        found += mechanisms + [o for o in operations(w) if (o.service, o.operation) not in named]
        relabel_peers(w, found)
        why_before_where(w, found)
        found = rank(tell_once(w, dedupe(fold_into_mechanisms(w, found))), limit)
        if ownership is not None:
            ownership.learn(w.resources({f.service for f in found}))
        for f in found:
            f.summary = summary(f, req)
            f.owner = ownership.owner(f.service) if ownership is not None else None
            evidence.attach(w, f)
        return found
    finally:
        w.close()
