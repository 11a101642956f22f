"""Ranking: the cause before where it shows. Where time went (an operation's own time, an uninstrumented peer it
waits on, where errors originate) ranks after why it went there when the why explains at least half as much;
on a tie, a mechanism names the cause more precisely than a value that merely travels with it, and both more
precisely than where the time went. A mechanism and the value that switched it on are one cause, told once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spyglass.analysis.explain.candidates import switching_value
from spyglass.analysis.explain.finding import MECHANISMS, Finding, Kind
from spyglass.analysis.explain.mechanisms import per_trace_sql

if TYPE_CHECKING:
    from spyglass.analysis.explain.symptom import Windows

#: A request value switched an operation's change on when its requests hold at least this share of it.
CONCENTRATED_SHARE = 0.6
#: A mechanism and the value that switched it on are told as one finding when the weaker explains at least
#: this share of what the stronger does (a sliver of a big change is a detail of it, or another cause).
TOLD_AS_ONE = 0.25
#: Mechanisms whose switching value is looked for among the requests that reached them.
REFINED = 5
#: Order among findings of equal score.
KIND_PRECEDENCE = {
    Kind.N_PLUS_ONE: 0,
    Kind.SEQUENTIAL: 0,
    Kind.ERROR_SOURCE: 1,
    Kind.ATTRIBUTE: 1,
    Kind.OPERATION: 2,
}


def _order(f: Finding) -> tuple[float, int, float, str, str, str, str]:
    """Strongest first; among equals, by kind, then by what each explains before clipping (two values that both
    explain all of the symptom may differ twofold), then by name, so the same spans give the same order every
    run."""
    return (
        -round(f.score, 3),
        KIND_PRECEDENCE[f.kind],
        -round(max(f.raw_score, f.score), 3),
        f.service,
        f.operation or "",
        f.key or "",
        f.value or "",
    )


def rank(findings: list[Finding], limit: int) -> list[Finding]:
    """The strongest ``limit`` findings, strongest first."""
    return sorted(findings, key=_order)[:limit]


def tell_once(w: Windows, findings: list[Finding]) -> list[Finding]:
    """A mechanism (an n+1, calls made sequential, an operation's own time, where errors originate) and the value
    that switched it on (a place whose spans in that service changed, or a request value on whose requests the
    mechanism's growth sits) are one cause, told as one finding. A repeated or serialized call names it (what to
    fix), with the value in ``since`` ("n+1 in orders since flag=on"); otherwise the value names it (why before
    where), with the operation or error source it works through in ``through``. The finding scores the larger
    of the two."""
    values = [f for f in findings if f.kind == Kind.ATTRIBUTE and not f.where]
    mechanisms = [f for f in findings if f.kind in MECHANISMS or f.kind == Kind.OPERATION]
    pairs = []
    for m in mechanisms:
        for v in values:
            weaker, stronger = sorted((m.score, v.score))
            if weaker < TOLD_AS_ONE * stronger:
                continue
            if m.service in v.why_services if v.place else _switched_by_request(v) and _concentrated(w, m, v):
                pairs.append((m, v))
    pairs.sort(key=lambda p: (-max(p[0].score, p[1].score), -min(p[0].score, p[1].score)))
    told: set[int] = set()
    for m, v in pairs:
        if id(m) in told or id(v) in told:
            continue
        told.update((id(m), id(v)))
        _tell(m, v)
    # A mechanism whose value was too small to stand out among every symptom request: look for it among the
    # requests that reached the mechanism's operation (strongest mechanisms first, a few at most).
    for m in sorted((m for m in mechanisms if id(m) not in told), key=_order)[:REFINED]:
        found = switching_value(w, m)
        if found is None:
            continue
        same = [
            f for f in findings if f.kind == Kind.ATTRIBUTE and (f.key, f.value) == (found.key, found.value)
        ]
        if any(id(f) in told for f in same):
            continue  # the value already tells another mechanism
        for other in same:  # the same value found across traces: one finding
            found.score = max(found.score, other.score)
            other.score = -1.0
        findings.append(found)
        told.update((id(m), id(found)))
        _tell(m, found)
    return [f for f in findings if f.score >= 0]


def _tell(m: Finding, v: Finding) -> None:
    """One finding for a mechanism and its value: the head scores the larger of the two, the other half is
    named in its evidence with its own numbers (so both can be checked) and dropped (a negative score)."""
    head, part = (m, v) if m.kind in (Kind.N_PLUS_ONE, Kind.SEQUENTIAL) else (v, m)
    head.score = max(m.score, v.score)
    numbers = {side: part.evidence[side] for side in ("regression", "baseline") if side in part.evidence}
    if head is m:
        head.evidence["since"] = {"service": v.service, "key": v.key, "value": v.value, **numbers}
    else:
        head.evidence["through"] = {
            "kind": str(m.kind),
            "service": m.service,
            "operation": m.operation,
            **numbers,
        }
    also = [a for a in part.evidence.get("also", []) if a != head.label]
    if also:
        head.evidence["also"] = [*head.evidence.get("also", []), *also]
    part.score = -1.0


def _switched_by_request(v: Finding) -> bool:
    """A request value measured against requests without it (one on every request says nothing of which)."""
    return v.evidence.get("compared_with") == "regression traces without it"


def why_before_where(w: Windows, findings: list[Finding]) -> None:
    """An operation's own-time or error-source finding (or a peer named by its caller's operation) ranks just
    after the value that switched it on, when that value explains at least half as much: a place whose own
    spans in that service changed (a version on some instances, a node), or a request value (a customer, a
    flag, a large input) on whose requests that operation's growth is concentrated."""
    why: dict[str, float] = {}
    for f in findings:
        if f.kind == Kind.ATTRIBUTE and f.place:
            for service in f.why_services:
                why[service] = max(why.get(service, 0.0), f.score)
    requests = [
        f
        for f in findings
        if f.kind == Kind.ATTRIBUTE and not f.place and not f.where and _switched_by_request(f)
    ]
    for f in findings:
        if f.kind in (Kind.OPERATION, Kind.ERROR_SOURCE) or f.where:
            best = why.get(f.service, 0.0)
            for v in requests:
                if v.score > best and v.score >= 0.5 * f.score and _concentrated(w, f, v):
                    best = v.score
            if best >= 0.5 * f.score:
                f.score = min(f.score, best * 0.99)


def _concentrated(w: Windows, where: Finding, value: Finding) -> bool:
    """Whether the operation's growth (own time, or errors) happened on the requests carrying the value."""
    if where.operation is None:
        return False  # a peer named by its caller's operation: no operation left to look into
    row = w.q(
        f"""
        WITH marked AS (  -- a request carries the value wherever a span of it shows the value
            SELECT DISTINCT tix FROM attrs WHERE win = 1 AND k = $3 AND v = $4
        ), per AS ({per_trace_sql(w, where)})
        SELECT sum(t.w * coalesce(p.x, 0)) FILTER (WHERE t.win = 0) / sum(t.w) FILTER (WHERE t.win = 0),
               sum(t.w * coalesce(p.x, 0)) FILTER (WHERE t.win = 1),
               sum(t.w) FILTER (WHERE t.win = 1),
               sum(t.w * coalesce(p.x, 0)) FILTER (WHERE t.win = 1 AND m.tix IS NOT NULL),
               sum(t.w) FILTER (WHERE t.win = 1 AND m.tix IS NOT NULL)
        FROM traces t LEFT JOIN per p USING (tix, win) LEFT JOIN marked m USING (tix)
        """,  # noqa: S608
        [where.service, where.operation, value.key, value.value],
    )[0]
    base, x1, w1, x_with, w_with = (float(v or 0.0) for v in row)
    total = x1 - w1 * base
    return total > 0 and (x_with - w_with * base) >= CONCENTRATED_SHARE * total
