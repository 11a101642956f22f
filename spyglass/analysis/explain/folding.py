"""Folding: one cause told once. Values naming (nearly) the same traces become one finding with the best name,
a sharper value inside a broader one wins, and a value that only marks the spans of a mechanism's operation is
that mechanism seen twice."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spyglass.analysis.explain.finding import MECHANISMS, Finding, values_table
from spyglass.analysis.explain.keys import key_rank
from spyglass.analysis.outcomes import is_outcome

if TYPE_CHECKING:
    from spyglass.analysis.explain.symptom import Windows

#: Two attribute values whose regression traces overlap this much (Jaccard) are one cause.
FOLD_JACCARD = 0.9
#: A value whose traces lie inside another's and that explains at least this share of its score is the
#: sharper name for the same cause (a customer inside its tier).
SUBSET_SHARE = 0.75
#: How many folded names a finding lists under ``also``.
ALSO = 10


def fold_same_traces(w: Windows, candidates: list[Finding]) -> list[Finding]:
    """Merge request values selecting (nearly) the same regression traces into one finding with the best name;
    names of how requests ended (outcomes) never survive on their own."""
    if not candidates:
        return []
    w.db.register("cand", values_table(candidates))
    sets: list[set[int]] = [set() for _ in candidates]
    for i, tix in w.q("SELECT c.i, a.tix FROM attrs a JOIN cand c USING (service, k, v) WHERE a.win = 1"):
        sets[i].add(tix)
    groups: list[list[int]] = []
    for i in range(len(candidates)):
        for group in groups:
            head = group[0]
            inter = len(sets[i] & sets[head])
            union = len(sets[i] | sets[head]) or 1
            if inter / union >= FOLD_JACCARD:
                group.append(i)
                break
        else:
            groups.append([i])
    # A value whose traces are a subset of another's, explaining about as much, is the sharper name.
    absorbed: set[int] = set()
    extra: list[list[int]] = [[] for _ in groups]
    outcome_only = [all(is_outcome(candidates[i].key or "") for i in group) for group in groups]
    for gi, outer in enumerate(groups):
        for gj, inner in enumerate(groups):
            if gi == gj or gj in absorbed or gi in absorbed:
                continue
            if outcome_only[gj] and not outcome_only[gi]:
                continue  # an outcome never absorbs a circumstance: it is the zone's errors, not their cause
            a, b = sets[inner[0]], sets[outer[0]]
            if len(a) < len(b) and len(a & b) >= 0.9 * len(a):
                # Unclipped: two values that both "explain all of it" may still differ twofold.
                if candidates[inner[0]].raw_score >= SUBSET_SHARE * candidates[outer[0]].raw_score:
                    extra[gj].extend(outer + extra[gi])
                    absorbed.add(gi)
                    break
    # A value that other services carry without being slow there (the zone of one slow host) is a broader
    # name than the cause: among one service's names for the same traces, prefer one slow wherever it occurs.
    carriers: dict[tuple[str, str], set[str]] = {}
    for service, key, value in w.q(
        "SELECT DISTINCT a.service, a.k, a.v FROM attrs a JOIN (SELECT DISTINCT k, v FROM cand) c "
        "USING (k, v) WHERE a.win = 1"
    ):
        carriers.setdefault((key, value), set()).add(service)
    w.db.unregister("cand")
    slow_on: dict[tuple[str, str], set[str]] = {}
    for c in candidates:
        slow_on.setdefault(_pair(c), set()).add(c.service)

    def broader(c: Finding) -> bool:
        return bool(carriers.get(_pair(c), set()) - slow_on[_pair(c)])

    folded = []
    for index, group in enumerate(groups):
        if index in absorbed or outcome_only[index]:
            continue  # how requests ended is the symptom, never its cause
        named = [candidates[i] for i in group]
        members = named + [candidates[i] for i in extra[index]]
        precise = {c.service for c in named if not broader(c) and not is_outcome(c.key or "")}
        best = min(
            named,
            key=lambda c: (
                is_outcome(c.key or ""),
                c.service in precise and broader(c),
                key_rank(c.key or ""),
                c.service != w.req.service,
                -c.score,
            ),
        )
        best.score = max(c.score for c in members)
        others = [c.label for c in members if c is not best]
        if others:
            best.evidence = {**best.evidence, "also": others[:ALSO]}
        folded.append(best)
    return folded


def _pair(f: Finding) -> tuple[str, str]:
    return (f.key or "", f.value or "")


def fold_into_mechanisms(w: Windows, findings: list[Finding]) -> list[Finding]:
    """A request value carried only by the spans of an operation a mechanism names, and by nearly all of them
    (the n+1 query's statement, say), is that mechanism seen twice: tell it once, as the mechanism. A value on
    some of its spans only (the route that fails, the region) says which of them, and stays a finding."""
    mechanisms = {(f.service, f.operation): f for f in findings if f.kind in MECHANISMS}
    if not mechanisms:
        return findings
    services = {service for service, _ in mechanisms}
    kept = []
    for f in findings:
        # Where processes ran (a place) is never an alias of one operation.
        if f.key is not None and not f.place and f.service in services:
            ops = w.q(
                """SELECT name, count(*) FILTER (WHERE attributes[$2] = $3 OR resource[$2] = $3), count(*)
                   FROM s WHERE win = 1 AND service = $1 GROUP BY name
                   HAVING count(*) FILTER (WHERE attributes[$2] = $3 OR resource[$2] = $3) > 0""",
                [f.service, f.key, f.value],
            )
            alias = len(ops) == 1 and ops[0][1] >= 0.9 * ops[0][2]
            target = mechanisms.get((f.service, ops[0][0])) if alias else None
            if target is not None:
                target.evidence.setdefault("also", []).append(f.label)
                continue
        kept.append(f)
    return kept


def dedupe(findings: list[Finding]) -> list[Finding]:
    """The same finding named twice (a folded candidate and a relabelled peer): keep the higher score."""
    best: dict[tuple[str | None, ...], Finding] = {}
    for f in findings:
        if f.identity not in best or best[f.identity].score < f.score:
            best[f.identity] = f
    return list(best.values())
