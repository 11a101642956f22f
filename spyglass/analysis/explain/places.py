"""Where spans ran (resource values: a version, a pod, a node, a host, a zone) judged by the spans that ran there.

A resource value describes the process that ran a span, not the request: a node is slow for every service it
hosts, and a new version can only be a cause if the spans of the service that carries it changed. So a place is
scored by the change in its own spans' own (exclusive) time, or in the errors those spans originate, compared
with spans of the same operation that ran elsewhere (or, for a value new in the regression on every instance,
with the same operation in the baseline), summed across every service that carries it. That one measure is why
an unrelated rollout scores nothing, why a node outranks each of its pods, and why a zone outranks its hosts only
when more than one of them got slower.

A value present in every span of an operation in both windows says nothing about that operation: the same
circumstance was there before, when it was fine.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import duckdb

from spyglass.analysis.explain.finding import MIN_SCORE, Finding, Kind
from spyglass.analysis.explain.keys import SHARED_PLACE_KEYS, key_rank, skip_key
from spyglass.analysis.explain.numbers import clip, ms, rounded
from spyglass.analysis.ownership import OWNER_ATTRIBUTES

if TYPE_CHECKING:
    from spyglass.analysis.explain.symptom import Windows

#: Significance of a place's summed excess, in standard errors.
NOISE_SE = 2.5
#: Spans needed on each side of a comparison inside one operation.
MIN_SPANS = 3
#: A value new on every instance of a service (a full rollout) has nothing to be compared with but the
#: baseline; the time of its calls counts at this weight, below what the callees' own findings say.
ROLLOUT_SUBTREE_WEIGHT = 0.7
#: A shared place (a host, a node, a zone) that is the only home of the one service that changed, and of no
#: other seen, cannot be told apart from that service by its spans: named beside the service's own finding, at
#: this weight below what it explains, never instead of it.
SOLE_HOME_TRUST = 0.5
#: A service is named among a place's evidence when it holds at least this share of the excess.
SERVICE_SHARE = 0.1


@dataclass
class Moments:
    """Weighted sums of a per-span measure ``x`` over a set of spans."""

    n: float = 0.0
    x: float = 0.0
    xx: float = 0.0
    c: int = 0

    def __post_init__(self) -> None:
        """SQL sums over no rows are NULL: they count as zero."""
        self.n, self.x, self.xx, self.c = self.n or 0.0, self.x or 0.0, self.xx or 0.0, self.c or 0

    def minus(self, other: Moments) -> Moments:
        return Moments(self.n - other.n, self.x - other.x, self.xx - other.xx, self.c - other.c)

    @property
    def mean(self) -> float:
        return self.x / self.n if self.n > 0 else 0.0

    @property
    def var(self) -> float:
        return max(self.xx / self.n - self.mean**2, 0.0) if self.n > 0 else 0.0

    def se2(self) -> float:
        """Squared standard error of the mean."""
        return self.var / max(self.c, 1)


@dataclass(frozen=True)
class Term:
    """One operation's part of what a place explains: its value, its variance, and how many regression spans
    it measured (two places holding the same spans of an operation measure the same part of the symptom)."""

    value: float
    variance: float
    spans: int


@dataclass
class Place:
    """One resource value's evidence: its own spans' excess, per trace of the regression, across services."""

    key: str
    value: str
    excess: float = 0.0
    variance: float = 0.0
    spans: float = 0.0
    contrast: bool = False
    by_service: dict[str, float] = field(default_factory=dict)
    mean_with: float = 0.0
    mean_without: float | None = None
    mean_before: float | None = None
    resources: frozenset[int] = frozenset()
    #: The change of operations that ran only there, before and after: it counts once the place has shown
    #: its effect where it can be compared (a node slow for the services it shares with other nodes is slow
    #: for the service that lives on it alone too).
    echo: float = 0.0
    echo_variance: float = 0.0
    #: Each service's echo and its variance: a place that is the whole home of several services that all
    #: changed, and not of everything, is their common factor even where nothing compares within an operation.
    echo_by_service: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: Whether the place ran every span of the regression (then it says nothing a global change would not).
    everywhere: bool = False
    #: A rollout known only by its calls' time: trusted at ``ROLLOUT_SUBTREE_WEIGHT``.
    via_calls: bool = False
    #: Each term of the total (an excess or echo of one operation of one service): nested places are compared
    #: term by term, as two places holding the same spans of an operation explain the same part of the symptom.
    terms: dict[tuple[str, str, str], Term] = field(default_factory=dict)

    @property
    def trust(self) -> float:
        if self.sole_home():
            return SOLE_HOME_TRUST
        return ROLLOUT_SUBTREE_WEIGHT if self.via_calls else 1.0

    @property
    def se(self) -> float:
        return math.sqrt(self.variance)

    @property
    def total(self) -> float:
        """What the place explains: its measured excess and the echo of the operations living there alone."""
        return self.excess + self.echo

    def significant(self) -> bool:
        if self.excess > 0 and self.excess > NOISE_SE * self.se:
            return True
        return self.common_home() or self.sole_home()

    def sole_home(self) -> bool:
        """A host, node or zone where one service lives whole, which changed beyond noise, and nothing else
        seen runs: nothing compares within an operation, and the spans cannot say whether the service or the
        place it runs on got slower. Named as the alternative it is, after the service's own finding."""
        if (
            self.key not in SHARED_PLACE_KEYS
            or self.everywhere
            or self.excess
            or len(self.echo_by_service) != 1
        ):
            return False
        ((echo, variance),) = self.echo_by_service.values()
        return echo > 0 and echo > NOISE_SE * math.sqrt(variance)

    def common_home(self) -> bool:
        """The whole home of at least two services that each changed beyond noise, and not of every span."""
        changed = [
            s for s, (e, var) in self.echo_by_service.items() if e > 0 and e > NOISE_SE * math.sqrt(var)
        ]
        return (
            not self.everywhere and len(changed) >= 2 and self.echo > NOISE_SE * math.sqrt(self.echo_variance)
        )

    def services(self) -> list[str]:
        """Services holding a real share of the excess, most first."""
        total = sum(v for v in self.by_service.values() if v > 0) or 1.0
        ranked = sorted(self.by_service.items(), key=lambda kv: -kv[1])
        return [s for s, v in ranked if v / total >= SERVICE_SHARE]


def span_measure(db: duckdb.DuckDBPyConnection, signal: str) -> None:
    """``span_x``: every span of the chosen traces with its measures. ``x``: own time, or the errors it
    originated (it failed and none of its children did: the deepest failure, where errors come from). ``xc``,
    for comparing spans of one operation across places: the whole time of a service's entry spans (a version
    whose queries got heavier is slow in its calls, not in itself; what its callees do to every instance alike
    cancels out in the comparison), the originated errors for errors."""
    if signal == "latency":
        x = "o.self_ns::DOUBLE"
        xc = "CASE WHEN p.span_id IS NULL OR p.service <> o.service THEN o.dur::DOUBLE END"
        failed = ""
    else:
        x = xc = "(o.err AND f.pid IS NULL)::INT::DOUBLE"
        failed = """LEFT JOIN (SELECT DISTINCT tix, parent_span_id AS pid FROM s WHERE err) f
                    ON f.tix = o.tix AND f.pid = o.span_id"""
    db.execute(
        f"""
        CREATE TEMP TABLE span_x AS
        SELECT o.tix, o.win, o.w, o.service, o.name, {x} AS x, {xc} AS xc, o.rid
        FROM own o LEFT JOIN s p ON p.tix = o.tix AND p.span_id = o.parent_span_id {failed}
        """  # noqa: S608
    )


#: Weighted moments of both measures over a set of spans, in SQL.
_MOMENTS = """sum(w), sum(w * x), sum(w * x * x), count(*),
              sum(w) FILTER (WHERE xc IS NOT NULL), sum(w * xc), sum(w * xc * xc), count(xc)"""


def _moments(row: tuple[float, ...]) -> tuple[Moments, Moments]:
    n, x, xx, c, ne, xe, xxe, ce = row
    return Moments(n, x, xx, int(c)), Moments(ne, xe, xxe, int(ce))


def places(
    db: duckdb.DuckDBPyConnection, regression_weight: float, skip: Callable[[str], bool], limit: int = 200
) -> list[Place]:
    """Significant places, strongest first; ``skip(key)`` names keys never worth reporting."""
    groups: dict[tuple[str, str, int], tuple[Moments, Moments]] = {}
    for service, name, win, *sums in db.execute(
        f"SELECT service, name, win, {_MOMENTS} FROM span_x GROUP BY ALL"  # noqa: S608
    ).fetchall():
        groups[(service, name, win)] = _moments(tuple(sums))
    db.execute(
        """
        CREATE TEMP TABLE res_kv AS
        SELECT rid, unnest(map_keys(resource)) AS k, unnest(map_values(resource)) AS v
        FROM res
        """
    )
    rows = db.execute(
        f"""
        SELECT k, v, service, name, win, {_MOMENTS}
        FROM span_x JOIN res_kv USING (rid) WHERE v IS NOT NULL
        GROUP BY ALL
        """  # noqa: S608
    ).fetchall()
    per_value: dict[tuple[str, str], dict[tuple[str, str, int], tuple[Moments, Moments]]] = defaultdict(dict)
    for key, value, service, name, win, *sums in rows:
        if not skip(key):
            per_value[(key, value)][(service, name, win)] = _moments(tuple(sums))

    regression_spans = sum(m.n for (_, _, win), (m, _) in groups.items() if win == 1)
    found = []
    for (key, value), carried in per_value.items():
        place = _score(key, value, carried, groups, regression_weight)
        if place is None:
            continue
        covered = sum(m.n for (_, _, win), (m, _) in carried.items() if win == 1)
        place.everywhere = covered >= 0.999 * regression_spans
        if place.significant():
            found.append(place)
    found.sort(key=lambda p: -p.excess)
    found = found[:limit]
    if found:
        carriers: dict[tuple[str, str], set[int]] = defaultdict(set)
        wanted = {(p.key, p.value) for p in found}
        for rid, key, value in db.execute("SELECT rid, k, v FROM res_kv").fetchall():
            if (key, value) in wanted:
                carriers[(key, value)].add(rid)
        for p in found:
            p.resources = frozenset(carriers[(p.key, p.value)])
    return found


def _score(
    key: str,
    value: str,
    carried: dict[tuple[str, str, int], tuple[Moments, Moments]],
    groups: dict[tuple[str, str, int], tuple[Moments, Moments]],
    regression_weight: float,
) -> Place | None:
    """Sum, over the operations whose regression spans carry the value, of how much more its spans took than
    comparable spans, per regression trace."""
    place = Place(key, value)
    with_n = with_x = without_n = without_x = before_n = before_x = 0.0
    empty = (Moments(), Moments())
    echo_n = echo_x = echo_before_n = echo_before_x = 0.0
    for (service, name, win), (p1, p1c) in carried.items():
        if win != 1:
            continue
        (g1, g1c), (g0, g0c) = groups.get((service, name, 1), empty), groups.get((service, name, 0), empty)
        if g0.c < MIN_SPANS or p1.c < 1:
            continue  # an operation new in the regression has nothing to compare with
        p0, p0c = carried.get((service, name, 0), empty)
        if g1.c - p1.c >= MIN_SPANS:  # spans of the operation ran elsewhere too: compare with them
            if p1c.c == 0:
                continue  # inner spans of a service: its entry spans hold their time
            p1, p0, g1, g0 = p1c, p0c, g1c, g0c
            r1, r0 = g1.minus(p1), g0.minus(p0)
            gap, var = p1.mean - r1.mean, p1.se2() + r1.se2()
            if p0.c >= MIN_SPANS and r0.c >= MIN_SPANS:  # the same contrast in the baseline is structure
                gap -= p0.mean - r0.mean
                var += p0.se2() + r0.se2()
            if p0.c >= MIN_SPANS:  # and a place that was there before must itself have got slower
                growth = p1.mean - p0.mean
                if growth < gap:
                    gap, var = growth, p1.se2() + p0.se2()
            place.contrast = True
            without_n, without_x = without_n + r1.n, without_x + r1.x
        elif p0.c == 0:  # new everywhere it runs (a rollout): its own spans' own time against the baseline's
            gap, var = p1.mean - g0.mean, p1.se2() + g0.se2()
            if p1c.c and g0c.c >= MIN_SPANS:
                # Or, trusted less, its whole time: its calls may have got heavier, or its callees slower
                # by themselves, which their own findings tell first.
                whole = p1c.mean - g0c.mean
                if ROLLOUT_SUBTREE_WEIGHT * whole > gap:
                    gap, var = whole, p1c.se2() + g0c.se2()
                    place.via_calls = True
        else:  # on every span of the operation before and after: no evidence by itself, but its echo
            contribution = p1.n * (p1.mean - g0.mean) / regression_weight
            variance = (p1.n / regression_weight) ** 2 * (p1.se2() + g0.se2())
            place.echo += contribution
            place.echo_variance += variance
            place.terms[("echo", service, name)] = Term(contribution, variance, p1.c)
            place.by_service[service] = place.by_service.get(service, 0.0) + contribution
            e, v = place.echo_by_service.get(service, (0.0, 0.0))
            place.echo_by_service[service] = (e + contribution, v + variance)
            echo_n, echo_x = echo_n + p1.n, echo_x + p1.x
            echo_before_n, echo_before_x = echo_before_n + g0.n, echo_before_x + g0.x
            continue
        contribution = p1.n * gap / regression_weight
        variance = (p1.n / regression_weight) ** 2 * var
        place.excess += contribution
        place.variance += variance
        place.terms[("excess", service, name)] = Term(contribution, variance, p1.c)
        place.spans += p1.n
        place.by_service[service] = place.by_service.get(service, 0.0) + contribution
        with_n, with_x = with_n + p1.n, with_x + p1.x
        before_n, before_x = before_n + p0.n, before_x + p0.x
    if place.spans == 0:
        if not place.echo_by_service or echo_n <= 0:
            return None
        # Known by its echo alone: its spans now against the same operations before.
        place.spans, place.mean_with = echo_n, echo_x / echo_n
        place.mean_before = echo_before_x / echo_before_n if echo_before_n > 0 else None
        return place
    place.mean_with = with_x / with_n
    place.mean_without = without_x / without_n if without_n > 0 else None
    place.mean_before = before_x / before_n if before_n > 0 else None
    return place


def narrowest(found: list[Place], rank: Callable[[str], int]) -> list[tuple[Place, list[Place]]]:
    """Each place that names a cause, with the places it stands for (its parts, or the broader places that only
    echo it). Of nested places, the narrowest that explains as much as every broader place containing it, within
    the noise of what the broader one adds (``_beyond``), wins: a node whose pods are all slow, a host alone in
    an otherwise healthy zone, a version new on one instance; of places carried by the same processes, the key
    ``rank`` puts first."""
    kept: list[tuple[Place, list[Place]]] = []
    taken: set[int] = set()
    for i, p in enumerate(found):  # strongest first
        if i in taken:
            continue
        members = [
            j
            for j, q in enumerate(found)
            if j not in taken and (q.resources <= p.resources or p.resources <= q.resources)
        ]
        family = [found[j] for j in members]

        def echoes(q: Place, family: list[Place] = family) -> bool:
            """What each broader place explains beyond ``q`` is within noise."""
            for b in family:
                if q.resources <= b.resources and b is not q:
                    extra, se = _beyond(b, q)
                    if extra > NOISE_SE * se:
                        return False
            return True

        chosen = min(
            (q for q in family if echoes(q)), key=lambda q: (len(q.resources), rank(q.key)), default=None
        )
        if chosen is None:  # no place explains as much as all that contain it: the one explaining most
            chosen = max(family, key=lambda q: q.total)
        taken.update(members)
        kept.append((chosen, [q for q in family if q is not chosen]))
    return kept


def _beyond(broad: Place, narrow: Place) -> tuple[float, float]:
    """What a broad place explains beyond a narrower one inside it, and the standard error of that, term by term.
    A term both hold over the same regression spans adds nothing, whatever their comparisons (an instance
    measured against its own baseline, the version new on it against none): the same spans are no more of the
    symptom. One where the broad place holds more spans of the operation adds the difference, with the variance
    of those spans (the difference of nested variances). One only either holds adds its value (or takes it
    away) with its own variance: the broad place's other parts."""
    extra = variance = 0.0
    for key in broad.terms.keys() | narrow.terms.keys():
        b, n = broad.terms.get(key), narrow.terms.get(key)
        if b is not None and n is not None:
            if b.spans != n.spans:
                extra += b.value - n.value
                variance += abs(b.variance - n.variance)
        elif b is not None:
            extra += b.value
            variance += b.variance
        elif n is not None:
            extra -= n.value
            variance += n.variance
    return extra, math.sqrt(variance)


def place_findings(w: Windows) -> list[Finding]:
    """Resource values (where spans ran), judged by their own spans across every service that carries them."""
    latency = w.latency
    growth = w.delta
    if growth <= 0:
        return []
    span_measure(w.db, w.req.signal)
    found = places(w.db, float(w.tot[1][0]), _not_a_place)
    findings: list[Finding] = []
    for place, parts in narrowest(found, key_rank):
        # Trust scales the clipped share: a rollout known only by its calls never explains all of it.
        score = clip(place.total / growth) * place.trust
        raw = place.total / growth * place.trust
        if score < MIN_SCORE:
            continue
        services = place.services() or [max(place.by_service, key=lambda k: place.by_service[k])]
        with_share, without_share = _symptom_shares(w, place.key, place.value)
        unit = ms if latency else rounded
        measure = "ms" if latency else "errors_originated_per_span"
        findings.append(
            Finding(
                Kind.ATTRIBUTE,
                score,
                services[0],
                key=place.key,
                value=place.value,
                raw_score=raw,
                place=True,
                # A sole home cannot be told from its service: it says why of nothing, it ranks beside it.
                why_services=() if place.sole_home() else tuple(services),
                evidence={
                    "regression": {
                        "spans": rounded(place.spans, 1),
                        f"{measure}_with": unit(place.mean_with),
                        f"{measure}_without": unit(place.mean_without),
                        "excess_per_trace": unit(place.total),
                        "symptom_share_with": with_share,
                        "symptom_share_without": without_share,
                    },
                    "baseline": {f"{measure}_with": unit(place.mean_before)},
                    "services": services,
                    "compared_with": (
                        "spans of the same operations elsewhere"
                        if place.contrast
                        else "the same operations in the baseline"
                    ),
                    "measured_on": (
                        "the time of the service entry spans that ran there (own time against the baseline "
                        "for a value new on every instance)"
                        if latency
                        else "the errors originating in the spans that ran there"
                    ),
                    **({"also": [f"{p.key}={p.value}" for p in parts][:10]} if parts else {}),
                },
            )
        )
    return findings


def _symptom_shares(w: Windows, key: str, value: str) -> tuple[float | None, float | None]:
    """Share of the regression's requests showing the symptom, with a span that ran at the place and
    without one: what a person checks first."""
    row = w.q(
        """
        WITH there AS (
            SELECT DISTINCT tix FROM span_x JOIN res_kv USING (rid) WHERE win = 1 AND k = $1 AND v = $2
        )
        SELECT sum(t.w * t.sym::INT) FILTER (WHERE h.tix IS NOT NULL) / sum(t.w) FILTER (WHERE h.tix IS NOT NULL),
               sum(t.w * t.sym::INT) FILTER (WHERE h.tix IS NULL) / sum(t.w) FILTER (WHERE h.tix IS NULL)
        FROM traces t LEFT JOIN there h USING (tix) WHERE t.win = 1
        """,
        [key, value],
    )[0]
    return rounded(row[0]), rounded(row[1])


def _not_a_place(key: str) -> bool:
    """Keys never worth reporting, and those naming who owns a service (``service.namespace``, ``team``): they
    group services by owner, they do not say where a span ran."""
    return skip_key(key) or key in OWNER_ATTRIBUTES
