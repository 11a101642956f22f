"""Candidate causes from what requests carried: a (service, key, value) of a span attribute compared across
whole traces, those with it against those without (in the regression, or in the baseline when every regression
trace carries it), minus the same contrast in the baseline. Outcomes, destinations and values constant on their
operations are never candidates; values selecting (nearly) the same traces are folded into one finding."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from spyglass.analysis.explain.finding import MIN_SCORE, Finding, Kind, values_table
from spyglass.analysis.explain.folding import fold_same_traces
from spyglass.analysis.explain.keys import DEPLOY_KEYS, is_destination, key_rank, skip_key
from spyglass.analysis.explain.mechanisms import per_trace_sql
from spyglass.analysis.explain.numbers import clip, ms, rounded
from spyglass.analysis.explain.places import Moments
from spyglass.analysis.explain.symptom import Windows
from spyglass.analysis.outcomes import is_outcome

#: A value present in every regression trace has no contrast inside the regression: trust it less.
NO_CONTRAST_WEIGHT = 0.7


@dataclass
class _Group(Moments):
    """Weighted moments of the per-trace symptom value over a set of traces, with ``s``, the weighted count of
    those traces showing the symptom."""

    s: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.s = self.s or 0.0

    def minus(self, other: Moments) -> _Group:
        s = other.s if isinstance(other, _Group) else 0.0
        return _Group(self.n - other.n, self.x - other.x, self.xx - other.xx, self.c - other.c, self.s - s)


def value_gap(a1: _Group, a0: _Group, t1: _Group, t0: _Group) -> tuple[float, _Group, bool] | None:
    """How much more symptom the traces carrying a value show than those without it, beyond the same contrast
    in the baseline; with the group compared against and whether the regression itself had a contrast.
    None when the difference is within noise (2.5 standard errors) or there is nothing to compare."""
    r1, r0 = t1.minus(a1), t0.minus(a0)
    contrast = r1.c >= 5 and r1.n >= 0.05 * t1.n
    if contrast:
        gap, se = a1.mean - r1.mean, math.sqrt(a1.var / max(a1.c, 1) + r1.var / max(r1.c, 1))
        if a0.c >= 3 and r0.c >= 3:  # the same contrast in the baseline is structure, not change
            gap -= a0.mean - r0.mean
            se = math.sqrt(se**2 + a0.var / a0.c + r0.var / r0.c)
        elif a0.c >= 3:  # nearly every baseline trace had it: it must have grown more than the rest
            gap = (a1.mean - a0.mean) - (t1.mean - t0.mean)
            se = math.sqrt(a1.var / max(a1.c, 1) + a0.var / a0.c)
        reference = r1
    elif r0.c >= 3 and a0.c < 3:
        gap = a1.mean - r0.mean
        se = math.sqrt(a1.var / max(a1.c, 1) + r0.var / r0.c)
        reference = r0
    else:
        return None  # on every trace through the service in both windows: it explains nothing
    if gap <= 0 or gap < 2.5 * se:
        return None
    return gap, reference, contrast


def request_values(w: Windows) -> list[Finding]:
    """Values requests carried, as candidates: each (service, key, value) compared across whole traces."""
    # Each service's own share of the trace: the time inside the requests it served (its entry spans).
    # A fault local to one service stands out there long before it does in the root's noisy latency.
    w.db.execute(
        f"""
        CREATE TEMP TABLE entry AS
        SELECT c.tix, c.service, {"sum(c.dur)" if w.req.signal == "latency" else "bool_or(c.err)::INT"}::DOUBLE AS ys
        FROM s c LEFT JOIN s p ON p.tix = c.tix AND p.span_id = c.parent_span_id
        WHERE p.span_id IS NULL OR p.service <> c.service
        GROUP BY ALL
        """  # noqa: S608
    )
    # Only requests of the service's usual shape (the same set of operations) are compared: otherwise a
    # value that marks the requests doing the slow work at all (its query text, a 200 against the 404s
    # that skip it) would pass for a cause of that work getting slower.
    w.db.execute(
        """
        CREATE TEMP TABLE entry_w AS
        WITH shapes AS (
            SELECT tix, service, hash(list_sort(list(DISTINCT name))) AS shape FROM s GROUP BY ALL
        ), usual AS (SELECT service, mode(shape) AS shape FROM shapes GROUP BY ALL)
        SELECT e.tix, e.service,
               CASE WHEN sh.shape = u.shape THEN least(e.ys, coalesce(cap.c, e.ys)) END AS ys
        FROM entry e JOIN shapes sh USING (tix, service) JOIN usual u USING (service)
        LEFT JOIN (
            SELECT e.service, 3 * quantile_cont(e.ys, 0.99) AS c
            FROM entry e JOIN traces t USING (tix) WHERE t.win = 0 GROUP BY ALL
        ) cap USING (service)
        """
    )
    w.db.execute(
        """
        CREATE TEMP TABLE attrs AS
        SELECT DISTINCT tix, win, w, sym, y, ys, service, k, v FROM (
            SELECT tix, win, w, sym, y, service, unnest(map_keys(attributes)) AS k,
                   unnest(map_values(attributes)) AS v FROM s
        ) JOIN entry_w USING (tix, service)
        """
    )
    s1 = w.tot[1][1]
    min_support = max(2.0, 0.02 * s1)

    def stats(y: str) -> str:
        return ", ".join(
            f"sum(w) FILTER ({where}), sum(w * {y}) FILTER ({where}), sum(w * {y} * {y}) FILTER ({where}), "
            f"count(*) FILTER ({where}), sum(w * sym::INT) FILTER ({where})"
            for where in (f"WHERE win = {win} AND {y} IS NOT NULL" for win in (1, 0))
        )

    # Latency at the root is compared among requests of the service's usual shape too (a 200 against the
    # 404s that skip the work is not a cause); failures change a request's shape, so errors take them all.
    usual_y = "(CASE WHEN ys IS NOT NULL THEN y END)" if w.req.signal == "latency" else "y"
    # Compared within the traces that went through the same service: a value of a service that only some
    # requests reach must not be blamed for what reaching that service costs.
    rows = w.db.execute(
        f"""
        WITH per_trace AS (
            SELECT DISTINCT tix, win, w, sym, y, service FROM s
        ), through AS (
            SELECT service, {stats(usual_y)}, {stats("ys")}
            FROM per_trace JOIN entry_w USING (tix, service) GROUP BY service
        ), vals AS (
            SELECT service, k, v, {stats(usual_y)}, {stats("ys")}
            FROM attrs GROUP BY service, k, v
            HAVING sum(w * sym::INT) FILTER (WHERE win = 1) >= $1
        )
        SELECT vals.*, through.* EXCLUDE (service) FROM vals JOIN through USING (service)
        """,  # noqa: S608
        [min_support],
    ).fetchall()
    w1 = w.tot[1][0]
    candidates: list[Finding] = []
    for row in rows:
        service, key, value = row[:3]
        if skip_key(key) or value is None or is_destination(key):
            continue  # where a call went is measured by the call's own time (operations), not here
        a1, a0, v1, v0, t1, t0, u1, u0 = (_Group(*row[i : i + 5]) for i in range(3, 43, 5))
        # The root's latency first; the service's own share when the root's noise hides a local change.
        found = value_gap(a1, a0, t1, t0)
        measured_on = "the symptom's root spans"
        growth = w.ydelta
        if found is None:
            growth = w.delta
            found = value_gap(v1, v0, u1, u0)
            measured_on = (
                f"the time inside {service}" if w.req.signal == "latency" else f"errors in {service}"
            )
            a1, a0, t1, t0 = v1, v0, u1, u0
        if found is None:
            continue
        gap, reference, contrast = found
        r1, r0 = t1.minus(a1), t0.minus(a0)
        raw = (a1.n / w1) * gap / growth
        score = clip(raw)
        if not contrast and key not in DEPLOY_KEYS:
            score *= NO_CONTRAST_WEIGHT
            raw *= NO_CONTRAST_WEIGHT
        if score < MIN_SCORE:
            continue
        candidates.append(
            Finding(
                Kind.ATTRIBUTE,
                score,
                service,
                raw_score=raw,
                key=key,
                value=value,
                evidence={
                    "regression": {
                        "traces": rounded(a1.n, 1),
                        "symptom_share_with": rounded(a1.s / a1.n if a1.n else None),
                        "symptom_share_without": rounded(r1.s / r1.n if r1.n > 0 else None),
                        "share_of_symptom_traces": rounded(a1.s / s1 if s1 else None),
                        **_mean_fields(w, a1.mean, reference.mean if contrast else None),
                    },
                    "baseline": {
                        "traces": rounded(a0.n, 1),
                        "symptom_share_with": rounded(a0.s / a0.n if a0.n else None),
                        "symptom_share_without": rounded(r0.s / r0.n if r0.n > 0 else None),
                        **_mean_fields(w, a0.mean if a0.c else None, r0.mean if r0.c else None),
                    },
                    "compared_with": "regression traces without it" if contrast else "baseline traces",
                    "measured_on": measured_on,
                },
            )
        )
    candidates.sort(
        key=lambda f: (-f.score, f.service, f.key or "", f.value or "")
    )  # the same order every run
    return fold_same_traces(w, _drop_operation_constants(w, candidates[:60]))


def _drop_operation_constants(w: Windows, candidates: list[Finding]) -> list[Finding]:
    """A value on every span of each operation that carries it (``rpc.system=grpc``, a fixed route's
    method) only says that the request reached that operation: structure, told by the operation's own
    findings, never a circumstance of the request."""
    if not candidates:
        return candidates
    w.db.register("cand_kv", values_table(candidates))
    constant = {
        i
        for (i,) in w.q(
            """
            WITH per_op AS (
                SELECT c.i, s.name, count(*) FILTER (WHERE s.attributes[c.k] = c.v) AS carried,
                       count(*) AS spans
                FROM cand_kv c JOIN s USING (service) GROUP BY ALL
            )
            SELECT i FROM per_op WHERE carried > 0 GROUP BY i HAVING min(carried / spans) >= 0.99
            """
        )
    }
    w.db.unregister("cand_kv")
    return [c for i, c in enumerate(candidates) if i not in constant]


def _mean_fields(w: Windows, with_value: float | None, without: float | None) -> dict[str, Any]:
    if w.req.signal == "latency":
        return {"mean_ms_with": ms(with_value), "mean_ms_without": ms(without)}
    return {"error_rate_with": rounded(with_value), "error_rate_without": rounded(without)}


#: A value switched a mechanism on when its requests hold at least this share of the mechanism's growth.
SWITCHED_SHARE = 0.6


def switching_value(w: Windows, mechanism: Finding) -> Finding | None:
    """The request value that switched a mechanism on, looked for among the requests that reached its operation.

    A cohort whose requests fail at one operation may be too small to stand out among every failing request of
    the window (other failures, baseline noise), yet its requests hold nearly all of that operation's new
    failures: judged on the mechanism's own measure, among the requests that reached it, with the same
    baseline contrast as every request value, it is plain. The value must hold ``SWITCHED_SHARE`` of the
    growth; of those, the sharpest (largest difference) names it. Scored the mechanism's score times the share
    it holds."""
    if mechanism.operation is None:
        return None
    per = per_trace_sql(w, mechanism)
    sql = f"WITH per AS ({per}) SELECT {_MOMENTS_BY_WINDOW} FROM per"  # noqa: S608
    totals = w.q(sql, [mechanism.service, mechanism.operation])
    t1, t0 = _Group(*totals[0][0:4]), _Group(*totals[0][4:8])
    growth = t1.x - t1.n * t0.mean
    if growth <= 0:
        return None
    # Only values holding ``SWITCHED_SHARE`` of the growth can switch it on: the rest (every customer and
    # request id of a busy operation, tens of thousands) is left in SQL.
    rows = w.q(
        f"""
        WITH per AS ({per}), vals AS (
            SELECT DISTINCT a.tix, a.service, a.k, a.v FROM attrs a JOIN per USING (tix) WHERE a.v IS NOT NULL
        )
        SELECT service, k, v, {_MOMENTS_BY_WINDOW} FROM vals JOIN per USING (tix) GROUP BY ALL
        HAVING sum(w * x) FILTER (WHERE win = 1) - sum(w) FILTER (WHERE win = 1) * $3 >= $4
        """,  # noqa: S608
        [mechanism.service, mechanism.operation, t0.mean, SWITCHED_SHARE * growth],
    )
    passing = []
    for service, key, value, *sums in rows:
        if skip_key(key) or is_destination(key) or is_outcome(key):
            continue
        a1, a0 = _Group(*sums[0:4]), _Group(*sums[4:8])
        found = value_gap(a1, a0, t1, t0)
        if found is None or not found[2]:
            continue  # a value on every request through the operation does not say which
        held = (a1.x - a1.n * t0.mean) / growth
        if held >= SWITCHED_SHARE:
            gap, reference, _ = found
            passing.append((gap, service, key, value, a1, a0, reference, held))
    passing.sort(key=lambda p: (-p[0], key_rank(p[2]), p[1], p[2], p[3]))
    # A value on every span of the operations carrying it (a query's text) marks the request's shape, not it.
    probes = [
        Finding(Kind.ATTRIBUTE, 0.0, service, {}, key=key, value=value)
        for _, service, key, value, *_ in passing[:20]
    ]
    kept = {(f.service, f.key, f.value) for f in _drop_operation_constants(w, probes)}
    best = next((p for p in passing if (p[1], p[2], p[3]) in kept), None)
    if best is None:
        return None
    _, _, key, value, a1, a0, reference, held = best
    held = min(held, 1.0)
    r0 = t0.minus(a0)
    unit, measure = (ms, "own_ms_per_request") if w.latency else (rounded, "error_rate")
    if mechanism.kind == Kind.SEQUENTIAL and w.latency:
        measure = "ms_per_request"
    return Finding(
        Kind.ATTRIBUTE,
        mechanism.score * held,
        mechanism.service,
        key=key,
        value=value,
        evidence={
            "regression": {
                "traces": rounded(a1.n, 1),
                f"{measure}_with": unit(a1.mean),
                f"{measure}_without": unit(reference.mean),
                "share_of_growth": rounded(held),
            },
            "baseline": {
                "traces": rounded(a0.n, 1),
                f"{measure}_with": unit(a0.mean if a0.c else None),
                f"{measure}_without": unit(r0.mean if r0.c else None),
            },
            "compared_with": f"requests through {mechanism.service} '{mechanism.operation}' without it",
            "measured_on": f"{mechanism.service} '{mechanism.operation}'",
        },
    )


#: Weighted moments of ``x`` over traces, regression then baseline, in SQL (a ``_Group`` without ``s``).
_MOMENTS_BY_WINDOW = ", ".join(
    f"sum(w) FILTER (WHERE win = {win}), sum(w * x) FILTER (WHERE win = {win}), "
    f"sum(w * x * x) FILTER (WHERE win = {win}), count(*) FILTER (WHERE win = {win})"
    for win in (1, 0)
)
