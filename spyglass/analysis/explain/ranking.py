"""Ranking: the cause before where it shows. Where time went (an operation's own time, an uninstrumented peer it
waits on, where errors originate) ranks after why it went there when the why explains at least half as much;
on a tie, a mechanism names the cause more precisely than a value that merely travels with it, and both more
precisely than where the time went."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spyglass.analysis.explain.finding import Finding, Kind

if TYPE_CHECKING:
    from spyglass.analysis.explain.symptom import Windows

#: A request value switched an operation's change on when its requests hold at least this share of it.
CONCENTRATED_SHARE = 0.6
#: Order among findings of equal score.
KIND_PRECEDENCE = {
    Kind.N_PLUS_ONE: 0,
    Kind.SEQUENTIAL: 0,
    Kind.ERROR_SOURCE: 1,
    Kind.ATTRIBUTE: 1,
    Kind.OPERATION: 2,
}


def rank(findings: list[Finding], limit: int) -> list[Finding]:
    """The strongest ``limit`` findings, strongest first."""
    return sorted(findings, key=lambda f: (-round(f.score, 3), KIND_PRECEDENCE[f.kind]))[:limit]


def why_before_where(w: Windows, findings: list[Finding]) -> None:
    """An operation's own-time or error-source finding (or a peer named by its caller's operation) ranks just
    after the value that switched it on, when that value explains at least half as much: a place whose own
    spans in that service changed (a version on some instances, a node), or a request value (a customer, a
    flag, a large input) on whose requests that operation's growth is concentrated."""
    why: dict[str, float] = {}
    for f in findings:
        if f.kind == Kind.ATTRIBUTE and f.place:
            for service in f.why_services or (f.service,):
                why[service] = max(why.get(service, 0.0), f.score)
    requests = [
        f
        for f in findings
        if f.kind == Kind.ATTRIBUTE
        and not f.place
        and not f.where
        and f.evidence.get("compared_with") == "regression traces without it"
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
    x = "self_ns" if w.latency else "err::INT"
    row = w.q(
        f"""
        WITH marked AS (
            SELECT DISTINCT tix FROM attrs WHERE win = 1 AND service = $3 AND k = $4 AND v = $5
        ), per AS (
            SELECT tix, win, any_value(w) AS w, sum({x})::DOUBLE AS x FROM own
            WHERE service = $1 AND name = $2 GROUP BY ALL
        )
        SELECT sum(t.w * coalesce(p.x, 0)) FILTER (WHERE t.win = 0) / sum(t.w) FILTER (WHERE t.win = 0),
               sum(t.w * coalesce(p.x, 0)) FILTER (WHERE t.win = 1),
               sum(t.w) FILTER (WHERE t.win = 1),
               sum(t.w * coalesce(p.x, 0)) FILTER (WHERE t.win = 1 AND m.tix IS NOT NULL),
               sum(t.w) FILTER (WHERE t.win = 1 AND m.tix IS NOT NULL)
        FROM traces t LEFT JOIN per p USING (tix, win) LEFT JOIN marked m USING (tix)
        """,  # noqa: S608
        [where.service, where.operation, value.service, value.key, value.value],
    )[0]
    base, x1, w1, x_with, w_with = (float(v or 0.0) for v in row)
    total = x1 - w1 * base
    return total > 0 and (x_with - w_with * base) >= CONCENTRATED_SHARE * total
