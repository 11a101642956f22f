"""Candidate causes from how operations did their work: where time went (an operation's own time), and the
mechanisms that say why (an n+1, calls made sequential, where errors originate)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from spyglass.analysis.explain.finding import MIN_SCORE, Finding, Kind
from spyglass.analysis.explain.numbers import clip, ms, rounded

if TYPE_CHECKING:
    from spyglass.analysis.explain.symptom import Windows

#: Calls of one child operation under one parent that make an n+1.
N_PLUS_ONE_CALLS = 5
#: Calls made sequential: the share of parent calls whose children overlap drops by at least this much.
SERIALIZED_SHARE = 0.1
#: Operation findings say where time went, attributes and structure say why: rank those first on a tie.
OPERATION_WEIGHT = 0.8


def operations(w: Windows) -> list[Finding]:
    """Where time went: own (exclusive) time per trace of a (service, operation) grew (latency), or the errors
    it originated did (it failed and none of its children did). A span failing because its child failed only
    passes the failure on: counting those would name every operation between the source and the root, the
    root's own failures (the symptom itself) first."""
    w0, w1 = w.per_trace(0), w.per_trace(1)
    spans = (
        "own"
        if w.latency
        else """(SELECT o.* REPLACE (o.err AND f.pid IS NULL AS err) FROM own o
                 LEFT JOIN (SELECT DISTINCT tix, parent_span_id AS pid FROM s WHERE err) f
                 ON f.tix = o.tix AND f.pid = o.span_id)"""
    )
    rows = w.q(
        f"""
        SELECT service, name,
            sum(w * self_ns) FILTER (WHERE win = 1) / {w1}, sum(w * self_ns) FILTER (WHERE win = 0) / {w0},
            sum(w) FILTER (WHERE win = 1) / {w1}, sum(w) FILTER (WHERE win = 0) / {w0},
            sum(w * err::INT) FILTER (WHERE win = 1) / {w1}, sum(w * err::INT) FILTER (WHERE win = 0) / {w0},
            quantile_cont(dur, 0.5) FILTER (WHERE win = 1), quantile_cont(dur, 0.5) FILTER (WHERE win = 0),
            quantile_cont(dur, 0.99) FILTER (WHERE win = 1), quantile_cont(dur, 0.99) FILTER (WHERE win = 0)
        FROM {spans} GROUP BY ALL
        """  # noqa: S608
    )
    # Per-trace second moments (traces without the operation count as zero), for the noise of each change.
    moments: dict[tuple[str, str, int], tuple[float, float, float]] = {}
    for service, name, win, xx, e in w.q(
        f"""
        WITH per AS (
            SELECT service, name, tix, win, any_value(w) AS w, sum(self_ns)::DOUBLE AS x,
                   max(err::INT) AS e
            FROM {spans} GROUP BY ALL
        )
        SELECT service, name, win, sum(w * x * x), sum(w * e) FROM per GROUP BY ALL
        """  # noqa: S608
    ):
        moments[(service, name, win)] = (xx or 0.0, e or 0.0, float(w.tot[win][0]))

    def noise(service: str, name: str, mean1: float, mean0: float) -> float:
        """2.5 standard errors of the difference of per-trace means (own time, or failing at all)."""
        total = 0.0
        for win, mean in ((1, mean1), (0, mean0)):
            xx, e, weight = moments.get((service, name, win), (0.0, 0.0, 1.0))
            if w.latency:
                var = max(xx / weight - mean**2, 0.0)
            else:
                rate = e / weight
                var = rate * (1 - rate)
            total += var / max(w.tot[win][5], 1)
        return 2.5 * math.sqrt(total)

    findings: list[Finding] = []
    for service, name, self1, self0, calls1, calls0, err1, err0, p50_1, p50_0, p99_1, p99_0 in rows:
        self1, self0, err1, err0 = self1 or 0.0, self0 or 0.0, err1 or 0.0, err0 or 0.0
        if w.latency:
            if w.dmean <= 0 or self1 - self0 <= noise(service, name, self1, self0):
                continue
            score = clip((self1 - self0) / w.dmean) * OPERATION_WEIGHT
        else:
            denominator = w.rate1 - w.rate0
            failing = [moments.get((service, name, win), (0.0, 0.0, 1.0)) for win in (1, 0)]
            f1, f0 = (e / weight for _, e, weight in failing)
            if f1 - f0 <= noise(service, name, f1, f0):
                continue
            score = clip((err1 - err0) / denominator) * 0.5 if denominator > 0 else 0.0
        if score < MIN_SCORE:
            continue
        findings.append(
            Finding(
                Kind.OPERATION,
                score,
                service,
                operation=name,
                evidence={
                    "regression": {
                        "own_ms_per_trace": ms(self1),
                        "calls_per_trace": rounded(calls1),
                        "errors_per_trace": rounded(err1),
                        "p50_ms": ms(p50_1),
                        "p99_ms": ms(p99_1),
                    },
                    "baseline": {
                        "own_ms_per_trace": ms(self0),
                        "calls_per_trace": rounded(calls0),
                        "errors_per_trace": rounded(err0),
                        "p50_ms": ms(p50_0),
                        "p99_ms": ms(p99_0),
                    },
                },
            )
        )
    return findings


def n_plus_one(w: Windows) -> list[Finding]:
    """A child operation called at least ``N_PLUS_ONE_CALLS`` times under one parent (at the 90th percentile of
    parents) whose calls per trace grew by half."""
    if w.dmean <= 0:
        return []
    w0, w1 = w.per_trace(0), w.per_trace(1)
    rows = w.q(
        f"""
        WITH per_parent AS (
            SELECT k.tix, k.pid, k.service, k.name, count(*) AS calls, sum(k.dur) AS total
            FROM kids k GROUP BY ALL
        ), agg AS (
            SELECT p.service, p.name, t.win,
                   sum(t.w * p.calls) AS calls, sum(t.w * p.total) AS total,
                   max(p.calls) AS max_calls, quantile_cont(p.calls, 0.5) AS median_calls,
                   quantile_cont(p.calls, 0.9) AS p90_calls,
                   count(*) FILTER (WHERE p.calls >= {N_PLUS_ONE_CALLS}) AS repeated_parents
            FROM per_parent p JOIN traces t USING (tix) GROUP BY ALL
        )
        SELECT a1.service, a1.name, a1.calls / {w1}, coalesce(a0.calls, 0) / {w0},
               a1.total / {w1}, coalesce(a0.total, 0) / {w0}, a1.median_calls, a0.median_calls,
               a1.max_calls, a1.p90_calls
        FROM agg a1 LEFT JOIN agg a0 ON a0.service = a1.service AND a0.name = a1.name AND a0.win = 0
        WHERE a1.win = 1 AND a1.repeated_parents > 0
        """  # noqa: S608
    )
    findings: list[Finding] = []
    for service, name, calls1, calls0, total1, total0, med1, med0, max1, p90_1 in rows:
        if p90_1 < N_PLUS_ONE_CALLS or calls1 < 1.5 * calls0:
            continue
        score = clip((total1 - total0) / w.dmean)
        if score < MIN_SCORE:
            continue
        findings.append(
            Finding(
                Kind.N_PLUS_ONE,
                score,
                service,
                operation=name,
                evidence={
                    "regression": {
                        "calls_per_trace": rounded(calls1, 2),
                        "median_calls_per_parent": rounded(med1, 1),
                        "max_calls_per_parent": int(max1),
                        "ms_per_trace": ms(total1),
                    },
                    "baseline": {
                        "calls_per_trace": rounded(calls0, 2),
                        "median_calls_per_parent": rounded(med0, 1),
                        "ms_per_trace": ms(total0),
                    },
                },
            )
        )
    return findings


def sequential(w: Windows) -> list[Finding]:
    """A parent whose children overlapped in the baseline and run one after another now."""
    if w.dmean <= 0:
        return []
    w0, w1 = w.per_trace(0), w.per_trace(1)
    rows = w.q(
        f"""
        SELECT service, name,
            sum(w * overlap_ns) FILTER (WHERE win = 1) / {w1}, sum(w * overlap_ns) FILTER (WHERE win = 0) / {w0},
            avg(CASE WHEN overlap_ns > 0 THEN 1 ELSE 0 END) FILTER (WHERE win = 1),
            avg(CASE WHEN overlap_ns > 0 THEN 1 ELSE 0 END) FILTER (WHERE win = 0),
            quantile_cont(n_kids, 0.5) FILTER (WHERE win = 1)
        FROM own WHERE n_names >= 2 GROUP BY ALL
        """  # noqa: S608
    )
    findings: list[Finding] = []
    for service, name, ov1, ov0, share1, share0, kids in rows:
        ov1, ov0 = ov1 or 0.0, ov0 or 0.0
        score = clip((ov0 - ov1) / w.dmean)
        if score < MIN_SCORE or (share0 or 0.0) - (share1 or 0.0) < SERIALIZED_SHARE:
            continue  # one child that got slower loses overlap too; serialized calls stop overlapping
        findings.append(
            Finding(
                Kind.SEQUENTIAL,
                score,
                service,
                operation=name,
                evidence={
                    "regression": {
                        "overlapped_ms_per_trace": ms(ov1),
                        "share_of_calls_with_parallel_children": rounded(share1),
                        "median_children": rounded(kids, 1),
                    },
                    "baseline": {
                        "overlapped_ms_per_trace": ms(ov0),
                        "share_of_calls_with_parallel_children": rounded(share0),
                    },
                    "time_lost_ms_per_trace": ms(ov0 - ov1),
                },
            )
        )
    return findings


def error_sources(w: Windows) -> list[Finding]:
    """The deepest failed span of each failed trace, aggregated to (service, operation)."""
    denominator = w.rate1 - w.rate0
    if denominator <= 0:
        return []
    w0, w1 = w.per_trace(0), w.per_trace(1)
    rows = w.q(
        f"""
        WITH failed_children AS (SELECT DISTINCT tix, parent_span_id AS pid FROM s WHERE err),
        origins AS (
            SELECT DISTINCT s.tix, s.win, s.w, s.service, s.name FROM s
            LEFT JOIN failed_children f ON f.tix = s.tix AND f.pid = s.span_id
            WHERE s.err AND s.sym AND f.pid IS NULL
        )
        SELECT service, name, sum(w) FILTER (WHERE win = 1) / {w1},
               coalesce(sum(w) FILTER (WHERE win = 0), 0) / {w0}
        FROM origins GROUP BY ALL
        """  # noqa: S608
    )
    findings: list[Finding] = []
    n1, n0 = max(w.tot[1][5], 1), max(w.tot[0][5], 1)
    for service, name, share1, share0 in rows:
        share1 = share1 or 0.0
        # Like every finding, outside the noise: 2.5 standard errors of the difference of two shares.
        se = math.sqrt(share1 * (1 - share1) / n1 + share0 * (1 - share0) / n0)
        if share1 - share0 <= 2.5 * se:
            continue
        score = clip((share1 - share0) / denominator)
        if score < MIN_SCORE:
            continue
        findings.append(
            Finding(
                Kind.ERROR_SOURCE,
                score,
                service,
                operation=name,
                evidence={
                    "regression": {"failed_traces_originating_here": rounded(share1)},
                    "baseline": {"failed_traces_originating_here": rounded(share0)},
                },
            )
        )
    return findings


# --- examples -------------------------------------------------------------------------------------------


def relabel_peers(w: Windows, findings: list[Finding]) -> None:
    """An operation whose own time is an uninstrumented peer's time is better named by its ``peer.service``."""
    for f in findings:
        if f.kind != Kind.OPERATION:
            continue
        peers = w.q(
            """SELECT attributes['peer.service'] AS peer, count(*) FROM s
               LEFT JOIN (SELECT DISTINCT tix, pid FROM kids) k ON k.tix = s.tix AND k.pid = s.span_id
               WHERE s.service = $1 AND s.name = $2 GROUP BY ALL""",
            [f.service, f.operation],
        )
        if len(peers) == 1 and peers[0][0]:
            # The peer's own spans would be children; an uninstrumented peer leaves the client span childless.
            (has_kids,) = w.q(
                """SELECT count(*) FROM kids k JOIN s p ON p.tix = k.tix AND p.span_id = k.pid
                   WHERE p.service = $1 AND p.name = $2""",
                [f.service, f.operation],
            )[0]
            if has_kids == 0:
                also = f.label
                f.kind, f.where = Kind.ATTRIBUTE, True
                f.key, f.value, f.operation = "peer.service", peers[0][0], None
                f.evidence = {**f.evidence, "also": [also]}


def per_trace_sql(w: Windows, mechanism: Finding) -> str:
    """SQL of a mechanism's measure per trace that reached its operation (``tix, win, w, x``; ``$1`` and ``$2``
    bind its service and operation): calls made sequential show in the parent's whole time, every other
    mechanism in the own time; errors in the failed spans."""
    x = ("dur" if mechanism.kind == Kind.SEQUENTIAL else "self_ns") if w.latency else "err::INT"
    return f"""SELECT tix, win, any_value(w) AS w, sum({x})::DOUBLE AS x FROM own
               WHERE service = $1 AND name = $2 GROUP BY ALL"""  # noqa: S608
