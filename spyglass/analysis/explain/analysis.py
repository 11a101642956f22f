"""Explain: from a symptom (a root operation got slower or fails more) to its most likely causes.

The traces whose root is the symptom's ``(service, operation)`` are taken from a regression and a baseline
window. Each trace is marked as showing the symptom (latency: its root is slower than the baseline's p90;
errors: its root failed). Candidate causes are then scored by the share of the symptom's growth they explain:

- ``attribute`` from a span attribute (what the request carried: a customer, a flag, a size): a (service, key,
  value) compared across whole traces, those with it against those without (in the regression, or in the
  baseline when every regression trace carries it), minus the same contrast in the baseline. Values selecting
  (nearly) the same traces are folded into one finding. Outcomes, destinations and values constant on their
  operations are never candidates.
- ``attribute`` from a resource value (where spans ran: a version, node, zone): judged by the spans that ran
  there, across every service carrying it (``places.py``).
- ``operation``: own (exclusive) time per trace of a (service, operation) grew (latency), or its errors did.
- ``n_plus_one``: a child operation called >= 5 times under one parent whose calls per trace grew.
- ``sequential``: a parent whose children overlapped in the baseline and ran one after another now.
- ``error_source``: the deepest failed span of each failed trace, aggregated to (service, operation).

Everything is DuckDB over Arrow, so it is a few hash joins and group-bys whatever the number of spans.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from spyglass.analysis.explain import places as place_evidence
from spyglass.analysis.explain.keys import is_destination
from spyglass.analysis.outcomes import is_outcome
from spyglass.analysis.ownership import Ownership
from spyglass.model.schema import TREE_COLUMNS

#: Columns the analysis reads (``sample_weight`` is added as 1.0 when the source has none).
COLUMNS = TREE_COLUMNS
MAX_FINDINGS = 10
MIN_SCORE = 0.05
#: A latency trace is slow when its root is slower than this quantile of the baseline's roots.
SLOW_QUANTILE = 0.9
#: Calls of one child operation under one parent that make an n+1.
N_PLUS_ONE_CALLS = 5
#: Calls made sequential: the share of parent calls whose children overlap drops by at least this much.
SERIALIZED_SHARE = 0.1
#: Two attribute values whose regression traces overlap this much (Jaccard) are one cause.
FOLD_JACCARD = 0.9
#: A value whose traces lie inside another's and that explains at least this share of its score is the
#: sharper name for the same cause (a customer inside its tier).
SUBSET_SHARE = 0.75
#: Operation findings say where time went, attributes and structure say why: rank those first on a tie.
OPERATION_WEIGHT = 0.8
#: A value present in every regression trace has no contrast inside the regression: trust it less.
NO_CONTRAST_WEIGHT = 0.7
#: Order among findings of equal score.
KIND_PRECEDENCE = {"n_plus_one": 0, "sequential": 0, "error_source": 1, "attribute": 1, "operation": 2}
EXAMPLES = 3
#: Traces of one window explain reads at most (about): beyond, a fixed pseudo-random subset of the window's
#: traces (chosen by trace id, so the same call gives the same answer) stands for the rest, each weighed up by
#: the share left out. Twenty thousand traces estimate a share of 1% within a tenth of itself; reading ten
#: million spans would not say more, only later.
TRACES_PER_WINDOW = 10_000

#: Fold preference: the more general / causal name first; keys not listed come after these.
KEY_PREFERENCE = (
    "service.version",
    "deployment.id",
    "k8s.deployment.name",
    "peer.service",
    "customer.id",
    "enduser.id",
    "tenant.id",
    "cloud.availability_zone",
    "cloud.region",
    "host.name",
    "k8s.node.name",
    "host.id",
    "k8s.pod.name",
    "container.id",
    "service.instance.id",
)
#: Keys that name what was deployed: a new value everywhere (a full rollout) is still a strong cause.
DEPLOY_KEYS = {"service.version", "deployment.id", "k8s.deployment.name", "deployment.environment"}
#: Keys never worth reporting: they describe the symptom itself or are per-request identifiers / times.
SKIP_KEYS = {
    "service.name",
    "telemetry.sdk.name",
    "telemetry.sdk.language",
    "telemetry.sdk.version",
    "process.pid",
    "thread.id",
    "thread.name",
}
SKIP_SUFFIXES = (".time", ".timestamp", "_ns", "_ms", ".id_hash")


@dataclass(frozen=True)
class ExplainRequest:
    service: str
    operation: str
    start_ns: int
    end_ns: int
    baseline_start_ns: int
    baseline_end_ns: int
    signal: Literal["latency", "errors"] = "latency"


def req_signal_latency(req: ExplainRequest) -> bool:
    return req.signal == "latency"


def _key_rank(key: str) -> int:
    return KEY_PREFERENCE.index(key) if key in KEY_PREFERENCE else len(KEY_PREFERENCE)


def _skip_key(key: str) -> bool:
    return key in SKIP_KEYS or key.endswith(SKIP_SUFFIXES)


def _ms(ns: float | None) -> float | None:
    return None if ns is None or (isinstance(ns, float) and math.isnan(ns)) else round(ns / 1e6, 3)


def _r(x: float | None, digits: int = 4) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), digits)


def _clip(x: float) -> float:
    return 0.0 if math.isnan(x) else min(1.0, max(0.0, x))


@dataclass
class _Group(place_evidence.Moments):
    """Weighted moments of the per-trace symptom value over a set of traces, with ``s``, the weighted count of
    those traces showing the symptom."""

    s: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.s = self.s or 0.0

    def minus(self, other: place_evidence.Moments) -> _Group:
        s = other.s if isinstance(other, _Group) else 0.0
        return _Group(self.n - other.n, self.x - other.x, self.xx - other.xx, self.c - other.c, self.s - s)


def _value_gap(a1: _Group, a0: _Group, t1: _Group, t0: _Group) -> tuple[float, _Group, bool] | None:
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


class _Analysis:
    """One explain computation over one span table (spans of both windows, any extra spans are ignored)."""

    def __init__(self, spans: pa.Table, req: ExplainRequest) -> None:
        self.req = req
        self.db = duckdb.connect()
        if "sample_weight" not in spans.column_names:
            spans = spans.append_column("sample_weight", pa.array([1.0] * spans.num_rows, pa.float64()))
        self.spans = spans.select([*COLUMNS, "sample_weight"])
        self.db.register("raw", self.spans)

    def close(self) -> None:
        self.db.close()

    def q(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.db.execute(sql, params or []).fetchall()

    # --- traces and the symptom ----------------------------------------------------------------------------

    def select_traces(self) -> bool:
        r = self.req
        self.db.execute(
            """
            CREATE TEMP TABLE roots AS
            SELECT trace_id,
                   CASE WHEN start_ns >= $rs AND start_ns < $re THEN 1 ELSE 0 END AS win,
                   duration_ns AS root_dur, status_code = 2 AS root_err,
                   greatest(sample_weight, 1e-9) AS w, start_ns AS root_start
            FROM raw
            WHERE parent_span_id IS NULL AND service = $svc AND name = $op
              AND ((start_ns >= $rs AND start_ns < $re) OR (start_ns >= $bs AND start_ns < $be))
            QUALIFY row_number() OVER (PARTITION BY trace_id ORDER BY start_ns) = 1
            """,
            {
                "rs": r.start_ns,
                "re": r.end_ns,
                "bs": r.baseline_start_ns,
                "be": r.baseline_end_ns,
                "svc": r.service,
                "op": r.operation,
            },
        )
        counts = dict(self.q("SELECT win, count(*) FROM roots GROUP BY win"))
        if counts.get(0, 0) < 2 or counts.get(1, 0) < 2:
            return False
        self.kept = {win: min(1.0, TRACES_PER_WINDOW / n) for win, n in counts.items()}
        if min(self.kept.values()) < 1.0:
            self._subsample()
        if self.req.signal == "latency":
            (threshold,) = self.q(
                "SELECT quantile_cont(root_dur, $1) FROM roots WHERE win = 0", [SLOW_QUANTILE]
            )[0]
            self.threshold_ns: float | None = float(threshold)
            sym = f"root_dur > {int(threshold)}"
            # Winsorized: one stuck request must not outweigh a hundred slower ones.
            (cap,) = self.q("SELECT 3 * quantile_cont(root_dur, 0.99) FROM roots WHERE win = 0")[0]
            y = f"least(root_dur, {int(cap)})::DOUBLE"
        else:
            self.threshold_ns = None
            sym = "root_err"
            y = "root_err::DOUBLE"
        self.db.execute(
            f"""CREATE TEMP TABLE traces AS
            SELECT row_number() OVER (ORDER BY root_start, trace_id) AS tix, trace_id, win, w, root_dur,
                   root_err, {sym} AS sym, {y} AS y
            FROM roots"""  # noqa: S608
        )
        self._trace_spans()
        rows = self.q(
            """SELECT win, sum(w), sum(w * sym::INT), sum(w * y) / sum(w),
                      quantile_cont(root_dur, 0.5), quantile_cont(root_dur, 0.99), count(*)
               FROM traces GROUP BY win"""
        )
        self.tot = {win: (wsum, ssum, mean, p50, p99, n) for win, wsum, ssum, mean, p50, p99, n in rows}
        w0, s0 = self.tot[0][0], self.tot[0][1]
        w1, s1 = self.tot[1][0], self.tot[1][1]
        self.rate0, self.rate1 = s0 / w0, s1 / w1
        self.excess = s1 - w1 * self.rate0  # symptom traces beyond the baseline's rate, in the regression
        # Mean root latency growth (or the median's, when the tail hides a shift of the whole distribution).
        self.dmean = max(self.tot[1][2] - self.tot[0][2], self.tot[1][3] - self.tot[0][3])
        (above,) = self.q(
            f"SELECT avg((root_dur > {self.tot[0][3]})::INT) FROM traces WHERE win = 1"  # noqa: S608
        )[0]
        self.above_median = float(above)
        # The growth of the per-trace symptom value (latency: mean root duration; errors: failure rate).
        self.delta = self.dmean if req_signal_latency(self.req) else self.rate1 - self.rate0
        # The same growth measured as attribute gaps are (winsorized means), so that a value carried by every
        # slower request explains all of it, however long the slowest of them took.
        ydelta = self.tot[1][2] - self.tot[0][2]
        self.ydelta = ydelta if req_signal_latency(self.req) and ydelta > 0 else self.delta
        return True

    def _subsample(self) -> None:
        """Keep about ``TRACES_PER_WINDOW`` traces of each window, uniformly by a hash of the trace id (equal
        weights within a window keep every standard error honest), each weighed up by the share left out. The
        hash is salted: a store that already sampled by the trace id's plain hash stays uniformly sampled."""
        scale = 1_000_000
        self.db.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE roots AS
            SELECT * REPLACE (w / CASE win WHEN 1 THEN $k1 ELSE $k0 END AS w) FROM roots
            WHERE hash(trace_id, 'explain') % {scale} < CASE win WHEN 1 THEN $k1 ELSE $k0 END * {scale}
            """,  # noqa: S608
            {"k0": self.kept.get(0, 1.0), "k1": self.kept.get(1, 1.0)},
        )

    def _trace_spans(self) -> None:
        """``s``: every span of the chosen traces with its trace's columns. Joined in Arrow and read in place:
        DuckDB would convert (and copy) every span's attribute maps to join them."""
        traces = self.db.sql("SELECT trace_id, tix, win, w, sym, y FROM traces").to_arrow_table()
        ids = self.spans.column("trace_id")
        at = pc.index_in(ids, value_set=traces.column("trace_id").cast(ids.type))
        keep = pc.is_valid(at)
        spans, at = self.spans.filter(keep), at.filter(keep)
        start, dur = spans.column("start_ns"), spans.column("duration_ns")
        columns = {name: traces.column(name).take(at) for name in ("tix", "win", "w", "sym", "y")}
        columns |= {name: spans.column(name) for name in ("span_id", "parent_span_id", "service", "name")}
        columns |= {
            "start_ns": start,
            "dur": dur,
            "end_ns": pc.add(start, dur),
            "err": pc.equal(spans.column("status_code"), 2),
            "attributes": spans.column("attributes"),
            "resource": spans.column("resource"),
        }
        self.s = pa.table(columns)
        self.db.register("s", self.s)

    def resources(self, services: set[str]) -> pa.Table:
        """The distinct resources of these services' spans (where owners are learned from)."""
        return self.db.sql(
            """SELECT service, any_value(resource) AS resource FROM s WHERE list_contains($1, service)
               GROUP BY service, hash(resource)""",
            params=[sorted(services)],
        ).to_arrow_table()

    def changed(self) -> bool:
        n1 = self.tot[1][5]
        # The symptom rate must grow beyond noise: a few standard errors of the baseline rate, and >= 3 points.
        noise = 3 * math.sqrt(max(self.rate0 * (1 - self.rate0), 0.01) / max(n1, 1))
        if self.rate1 - self.rate0 > max(0.03, noise) and self.excess > 0:
            return True
        if self.req.signal != "latency" or self.dmean <= 0:
            return False
        # Latency: most regression requests slower than the baseline's median is a shift too.
        shift = 0.5 + max(0.1, 3 * 0.5 / math.sqrt(max(n1, 1)))
        if self.above_median > shift:
            return True
        # And a tail: a few requests (one slow host of twenty) much slower moves the mean well beyond its
        # standard error while the share above the baseline's p90 stays within noise.
        ((var0, var1),) = self.q(
            "SELECT var_samp(y) FILTER (WHERE win = 0), var_samp(y) FILTER (WHERE win = 1) FROM traces"
        )
        se = math.sqrt((var0 or 0.0) / max(self.tot[0][5], 1) + (var1 or 0.0) / max(n1, 1))
        if se > 0 and (self.tot[1][2] - self.tot[0][2]) > 3 * se:
            return True
        # Or a few requests far beyond anything the baseline did: the p99 spike a person sees on the chart.
        ((far0, far1),) = self.q(
            f"""SELECT count(*) FILTER (WHERE win = 0), count(*) FILTER (WHERE win = 1) FROM traces
                WHERE root_dur > 2 * {float(self.tot[0][4])}"""  # noqa: S608
        )
        n0 = max(self.tot[0][5], 1)
        return far1 >= 4 and far1 / max(n1, 1) > 3 * (far0 + 1) / n0

    # --- attributes -----------------------------------------------------------------------------------------

    def attributes(self) -> list[dict[str, Any]]:
        # Each service's own share of the trace: the time inside the requests it served (its entry spans).
        # A fault local to one service stands out there long before it does in the root's noisy latency.
        self.db.execute(
            f"""
            CREATE TEMP TABLE entry AS
            SELECT c.tix, c.service, {"sum(c.dur)" if self.req.signal == "latency" else "bool_or(c.err)::INT"}::DOUBLE AS ys
            FROM s c LEFT JOIN s p ON p.tix = c.tix AND p.span_id = c.parent_span_id
            WHERE p.span_id IS NULL OR p.service <> c.service
            GROUP BY ALL
            """  # noqa: S608
        )
        # Only requests of the service's usual shape (the same set of operations) are compared: otherwise a
        # value that marks the requests doing the slow work at all (its query text, a 200 against the 404s
        # that skip it) would pass for a cause of that work getting slower.
        self.db.execute(
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
        self.db.execute(
            """
            CREATE TEMP TABLE attrs AS
            SELECT DISTINCT tix, win, w, sym, y, ys, service, k, v FROM (
                SELECT tix, win, w, sym, y, service, unnest(map_keys(attributes)) AS k,
                       unnest(map_values(attributes)) AS v FROM s
            ) JOIN entry_w USING (tix, service)
            """
        )
        s1 = self.tot[1][1]
        min_support = max(2.0, 0.02 * s1)

        def stats(y: str) -> str:
            return ", ".join(
                f"sum(w) FILTER ({where}), sum(w * {y}) FILTER ({where}), sum(w * {y} * {y}) FILTER ({where}), "
                f"count(*) FILTER ({where}), sum(w * sym::INT) FILTER ({where})"
                for where in (f"WHERE win = {win} AND {y} IS NOT NULL" for win in (1, 0))
            )

        # Latency at the root is compared among requests of the service's usual shape too (a 200 against the
        # 404s that skip the work is not a cause); failures change a request's shape, so errors take them all.
        usual_y = "(CASE WHEN ys IS NOT NULL THEN y END)" if self.req.signal == "latency" else "y"
        # Compared within the traces that went through the same service: a value of a service that only some
        # requests reach must not be blamed for what reaching that service costs.
        rows = self.db.execute(
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
        w1 = self.tot[1][0]
        candidates = []
        for row in rows:
            service, key, value = row[:3]
            if _skip_key(key) or value is None or is_destination(key):
                continue  # where a call went is measured by the call's own time (operations), not here
            a1, a0, v1, v0, t1, t0, u1, u0 = (_Group(*row[i : i + 5]) for i in range(3, 43, 5))
            # The root's latency first; the service's own share when the root's noise hides a local change.
            found = _value_gap(a1, a0, t1, t0)
            measured_on = "the symptom's root spans"
            growth = self.ydelta
            if found is None:
                growth = self.delta
                found = _value_gap(v1, v0, u1, u0)
                measured_on = (
                    f"the time inside {service}" if self.req.signal == "latency" else f"errors in {service}"
                )
                a1, a0, t1, t0 = v1, v0, u1, u0
            if found is None:
                continue
            gap, reference, contrast = found
            r1, r0 = t1.minus(a1), t0.minus(a0)
            raw = (a1.n / w1) * gap / growth
            score = _clip(raw)
            if not contrast and key not in DEPLOY_KEYS:
                score *= NO_CONTRAST_WEIGHT
                raw *= NO_CONTRAST_WEIGHT
            if score < MIN_SCORE:
                continue
            candidates.append(
                {
                    "kind": "attribute",
                    "score": score,
                    "raw_score": raw,
                    "service": service,
                    "key": key,
                    "value": value,
                    "evidence": {
                        "regression": {
                            "traces": _r(a1.n, 1),
                            "symptom_share_with": _r(a1.s / a1.n if a1.n else None),
                            "symptom_share_without": _r(r1.s / r1.n if r1.n > 0 else None),
                            "share_of_symptom_traces": _r(a1.s / s1 if s1 else None),
                            **self._mean_fields(a1.mean, reference.mean if contrast else None),
                        },
                        "baseline": {
                            "traces": _r(a0.n, 1),
                            "symptom_share_with": _r(a0.s / a0.n if a0.n else None),
                            "symptom_share_without": _r(r0.s / r0.n if r0.n > 0 else None),
                            **self._mean_fields(a0.mean if a0.c else None, r0.mean if r0.c else None),
                        },
                        "compared_with": "regression traces without it" if contrast else "baseline traces",
                        "measured_on": measured_on,
                    },
                }
            )
        candidates.sort(key=lambda f: -f["score"])
        return self._fold(self._drop_operation_constants(candidates[:60]))

    def _drop_operation_constants(self, candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A value on every span of each operation that carries it (``rpc.system=grpc``, a fixed route's
        method) only says that the request reached that operation: structure, told by the operation's own
        findings, never a circumstance of the request."""
        if not candidates:
            return candidates
        self.db.register(
            "cand_kv",
            pa.table(
                {
                    "i": list(range(len(candidates))),
                    "service": [c["service"] for c in candidates],
                    "k": [c["key"] for c in candidates],
                    "v": [c["value"] for c in candidates],
                }
            ),
        )
        constant = {
            i
            for (i,) in self.q(
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
        self.db.unregister("cand_kv")
        return [c for i, c in enumerate(candidates) if i not in constant]

    def _mean_fields(self, with_value: float | None, without: float | None) -> dict[str, Any]:
        if self.req.signal == "latency":
            return {"mean_ms_with": _ms(with_value), "mean_ms_without": _ms(without)}
        return {"error_rate_with": _r(with_value), "error_rate_without": _r(without)}

    def _fold(self, candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Merge values selecting (nearly) the same regression traces into one finding with the best name."""
        if not candidates:
            return []
        self.db.register(
            "cand",
            pa.table(
                {
                    "i": list(range(len(candidates))),
                    "service": [c["service"] for c in candidates],
                    "k": [c["key"] for c in candidates],
                    "v": [c["value"] for c in candidates],
                }
            ),
        )
        sets: list[set[int]] = [set() for _ in candidates]
        for i, tix in self.q(
            "SELECT c.i, a.tix FROM attrs a JOIN cand c USING (service, k, v) WHERE a.win = 1"
        ):
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
        outcome_only = [all(is_outcome(candidates[i]["key"]) for i in group) for group in groups]
        for gi, outer in enumerate(groups):
            for gj, inner in enumerate(groups):
                if gi == gj or gj in absorbed or gi in absorbed:
                    continue
                if outcome_only[gj] and not outcome_only[gi]:
                    continue  # an outcome never absorbs a circumstance: it is the zone's errors, not their cause
                a, b = sets[inner[0]], sets[outer[0]]
                if len(a) < len(b) and len(a & b) >= 0.9 * len(a):
                    # Unclipped: two values that both "explain all of it" may still differ twofold.
                    if candidates[inner[0]]["raw_score"] >= SUBSET_SHARE * candidates[outer[0]]["raw_score"]:
                        extra[gj].extend(outer + extra[gi])
                        absorbed.add(gi)
                        break
        # A value that other services carry without being slow there (the zone of one slow host) is a broader
        # name than the cause: among one service's names for the same traces, prefer one slow wherever it occurs.
        carriers: dict[tuple[str, str], set[str]] = {}
        for service, key, value in self.q(
            "SELECT DISTINCT a.service, a.k, a.v FROM attrs a JOIN (SELECT DISTINCT k, v FROM cand) c "
            "USING (k, v) WHERE a.win = 1"
        ):
            carriers.setdefault((key, value), set()).add(service)
        slow_on: dict[tuple[str, str], set[str]] = {}
        for c in candidates:
            slow_on.setdefault((c["key"], c["value"]), set()).add(c["service"])

        def broader(c: dict[str, Any]) -> bool:
            pair = (c["key"], c["value"])
            return bool(carriers.get(pair, set()) - slow_on[pair])

        folded = []
        for index, group in enumerate(groups):
            if index in absorbed or outcome_only[index]:
                continue  # how requests ended is the symptom, never its cause
            named = [candidates[i] for i in group]
            members = named + [candidates[i] for i in extra[index]]
            precise = {c["service"] for c in named if not broader(c) and not is_outcome(c["key"])}
            best = min(
                named,
                key=lambda c: (
                    is_outcome(c["key"]),
                    c["service"] in precise and broader(c),
                    _key_rank(c["key"]),
                    c["service"] != self.req.service,
                    -c["score"],
                ),
            )
            finding = {k: v for k, v in best.items() if k != "raw_score"}
            finding["score"] = max(c["score"] for c in members)
            others = [f"{c['service']} {c['key']}={c['value']}" for c in members if c is not best]
            if others:
                finding["evidence"] = {**best["evidence"], "also": others[:10]}
            folded.append(finding)
        return folded

    def places(self) -> list[dict[str, Any]]:
        """Resource values (where spans ran), judged by their own spans across every service that carries them."""
        latency = req_signal_latency(self.req)
        growth = self.dmean if latency else self.rate1 - self.rate0
        if growth <= 0:
            return []
        place_evidence.span_measure(self.db, self.req.signal)
        found = place_evidence.places(self.db, float(self.tot[1][0]), _skip_key)
        findings = []
        for place, parts in place_evidence.narrowest(found, _key_rank):
            score = _clip(place.total / growth) * place.trust
            if score < MIN_SCORE:
                continue
            services = place.services() or [max(place.by_service, key=lambda k: place.by_service[k])]
            with_share, without_share = self._symptom_shares(place.key, place.value)
            unit = _ms if latency else (lambda x: _r(x, 4))
            measure = "ms" if latency else "errors_originated_per_span"
            findings.append(
                {
                    "kind": "attribute",
                    "score": score,
                    "service": services[0],
                    "key": place.key,
                    "value": place.value,
                    "evidence": {
                        "regression": {
                            "spans": _r(place.spans, 1),
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
                    "why_services": services,
                    "place": True,
                }
            )
        return findings

    def _symptom_shares(self, key: str, value: str) -> tuple[float | None, float | None]:
        """Share of the regression's requests showing the symptom, with a span that ran at the place and
        without one: what a person checks first."""
        row = self.q(
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
        return _r(row[0]), _r(row[1])

    # --- operations, structure ------------------------------------------------------------------------------

    def build_structure(self) -> None:
        # Children clipped to their parent; their union is what the parent did not do itself.
        self.db.execute(
            """
            CREATE TEMP TABLE kids AS
            SELECT c.tix, c.parent_span_id AS pid, c.service, c.name, c.dur,
                   greatest(c.start_ns, p.start_ns) AS cs, least(c.end_ns, p.end_ns) AS ce
            FROM s c JOIN s p ON c.tix = p.tix AND c.parent_span_id = p.span_id
            """
        )
        self.db.execute(
            """
            CREATE TEMP TABLE cover AS
            SELECT tix, pid, count(*) AS n_kids, count(DISTINCT name) AS n_names,
                   sum(greatest(ce - cs, 0)) AS kid_total,
                   sum(greatest(0, ce - greatest(cs, coalesce(prev_end, cs)))) AS covered
            FROM (
                SELECT *, max(ce) OVER (PARTITION BY tix, pid ORDER BY cs, ce
                                        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end
                FROM kids WHERE ce > cs
            ) GROUP BY tix, pid
            """
        )
        self.db.execute(
            """
            CREATE TEMP TABLE own AS
            SELECT s.tix, s.win, s.w, s.sym, s.service, s.name, s.span_id, s.parent_span_id, s.dur, s.err,
                   s.resource,
                   greatest(s.dur - coalesce(c.covered, 0), 0) AS self_ns,
                   coalesce(c.kid_total - c.covered, 0) AS overlap_ns, coalesce(c.n_kids, 0) AS n_kids,
                   coalesce(c.n_names, 0) AS n_names
            FROM s LEFT JOIN cover c ON c.tix = s.tix AND c.pid = s.span_id
            """
        )

    def _per_trace(self, win: int) -> float:
        return float(self.tot[win][0])

    def operations(self) -> list[dict[str, Any]]:
        w0, w1 = self._per_trace(0), self._per_trace(1)
        rows = self.q(
            f"""
            SELECT service, name,
                sum(w * self_ns) FILTER (WHERE win = 1) / {w1}, sum(w * self_ns) FILTER (WHERE win = 0) / {w0},
                sum(w) FILTER (WHERE win = 1) / {w1}, sum(w) FILTER (WHERE win = 0) / {w0},
                sum(w * err::INT) FILTER (WHERE win = 1) / {w1}, sum(w * err::INT) FILTER (WHERE win = 0) / {w0},
                quantile_cont(dur, 0.5) FILTER (WHERE win = 1), quantile_cont(dur, 0.5) FILTER (WHERE win = 0),
                quantile_cont(dur, 0.99) FILTER (WHERE win = 1), quantile_cont(dur, 0.99) FILTER (WHERE win = 0)
            FROM own GROUP BY ALL
            """  # noqa: S608
        )
        # Per-trace second moments (traces without the operation count as zero), for the noise of each change.
        moments: dict[tuple[str, str, int], tuple[float, float, float]] = {}
        for service, name, win, xx, e in self.q(
            """
            WITH per AS (
                SELECT service, name, tix, win, any_value(w) AS w, sum(self_ns)::DOUBLE AS x,
                       max(err::INT) AS e
                FROM own GROUP BY ALL
            )
            SELECT service, name, win, sum(w * x * x), sum(w * e) FROM per GROUP BY ALL
            """
        ):
            moments[(service, name, win)] = (xx or 0.0, e or 0.0, float(self.tot[win][0]))

        def noise(service: str, name: str, mean1: float, mean0: float) -> float:
            """2.5 standard errors of the difference of per-trace means (own time, or failing at all)."""
            total = 0.0
            for win, mean in ((1, mean1), (0, mean0)):
                xx, e, weight = moments.get((service, name, win), (0.0, 0.0, 1.0))
                if self.req.signal == "latency":
                    var = max(xx / weight - mean**2, 0.0)
                else:
                    rate = e / weight
                    var = rate * (1 - rate)
                total += var / max(self.tot[win][5], 1)
            return 2.5 * math.sqrt(total)

        findings = []
        for service, name, self1, self0, calls1, calls0, err1, err0, p50_1, p50_0, p99_1, p99_0 in rows:
            self1, self0, err1, err0 = self1 or 0.0, self0 or 0.0, err1 or 0.0, err0 or 0.0
            if self.req.signal == "latency":
                if self.dmean <= 0 or self1 - self0 <= noise(service, name, self1, self0):
                    continue
                score = _clip((self1 - self0) / self.dmean) * OPERATION_WEIGHT
            else:
                denominator = self.rate1 - self.rate0
                failing = [moments.get((service, name, win), (0.0, 0.0, 1.0)) for win in (1, 0)]
                f1, f0 = (e / weight for _, e, weight in failing)
                if f1 - f0 <= noise(service, name, f1, f0):
                    continue
                score = _clip((err1 - err0) / denominator) * 0.5 if denominator > 0 else 0.0
            if score < MIN_SCORE:
                continue
            findings.append(
                {
                    "kind": "operation",
                    "score": score,
                    "service": service,
                    "operation": name,
                    "evidence": {
                        "regression": {
                            "own_ms_per_trace": _ms(self1),
                            "calls_per_trace": _r(calls1),
                            "errors_per_trace": _r(err1),
                            "p50_ms": _ms(p50_1),
                            "p99_ms": _ms(p99_1),
                        },
                        "baseline": {
                            "own_ms_per_trace": _ms(self0),
                            "calls_per_trace": _r(calls0),
                            "errors_per_trace": _r(err0),
                            "p50_ms": _ms(p50_0),
                            "p99_ms": _ms(p99_0),
                        },
                    },
                }
            )
        return findings

    def n_plus_one(self) -> list[dict[str, Any]]:
        if self.dmean <= 0:
            return []
        w0, w1 = self._per_trace(0), self._per_trace(1)
        rows = self.q(
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
        findings = []
        for service, name, calls1, calls0, total1, total0, med1, med0, max1, p90_1 in rows:
            if p90_1 < N_PLUS_ONE_CALLS or calls1 < 1.5 * calls0:
                continue
            score = _clip((total1 - total0) / self.dmean)
            if score < MIN_SCORE:
                continue
            findings.append(
                {
                    "kind": "n_plus_one",
                    "score": score,
                    "service": service,
                    "operation": name,
                    "evidence": {
                        "regression": {
                            "calls_per_trace": _r(calls1, 2),
                            "median_calls_per_parent": _r(med1, 1),
                            "max_calls_per_parent": int(max1),
                            "ms_per_trace": _ms(total1),
                        },
                        "baseline": {
                            "calls_per_trace": _r(calls0, 2),
                            "median_calls_per_parent": _r(med0, 1),
                            "ms_per_trace": _ms(total0),
                        },
                    },
                }
            )
        return findings

    def sequential(self) -> list[dict[str, Any]]:
        if self.dmean <= 0:
            return []
        w0, w1 = self._per_trace(0), self._per_trace(1)
        rows = self.q(
            f"""
            SELECT service, name,
                sum(w * overlap_ns) FILTER (WHERE win = 1) / {w1}, sum(w * overlap_ns) FILTER (WHERE win = 0) / {w0},
                avg(CASE WHEN overlap_ns > 0 THEN 1 ELSE 0 END) FILTER (WHERE win = 1),
                avg(CASE WHEN overlap_ns > 0 THEN 1 ELSE 0 END) FILTER (WHERE win = 0),
                quantile_cont(n_kids, 0.5) FILTER (WHERE win = 1)
            FROM own WHERE n_names >= 2 GROUP BY ALL
            """  # noqa: S608
        )
        findings = []
        for service, name, ov1, ov0, share1, share0, kids in rows:
            ov1, ov0 = ov1 or 0.0, ov0 or 0.0
            score = _clip((ov0 - ov1) / self.dmean)
            if score < MIN_SCORE or (share0 or 0.0) - (share1 or 0.0) < SERIALIZED_SHARE:
                continue  # one child that got slower loses overlap too; serialized calls stop overlapping
            findings.append(
                {
                    "kind": "sequential",
                    "score": score,
                    "service": service,
                    "operation": name,
                    "evidence": {
                        "regression": {
                            "overlapped_ms_per_trace": _ms(ov1),
                            "share_of_calls_with_parallel_children": _r(share1),
                            "median_children": _r(kids, 1),
                        },
                        "baseline": {
                            "overlapped_ms_per_trace": _ms(ov0),
                            "share_of_calls_with_parallel_children": _r(share0),
                        },
                        "time_lost_ms_per_trace": _ms(ov0 - ov1),
                    },
                }
            )
        return findings

    def error_sources(self) -> list[dict[str, Any]]:
        denominator = self.rate1 - self.rate0
        if denominator <= 0:
            return []
        w0, w1 = self._per_trace(0), self._per_trace(1)
        rows = self.q(
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
        findings = []
        for service, name, share1, share0 in rows:
            share1 = share1 or 0.0
            score = _clip((share1 - share0) / denominator)
            if score < MIN_SCORE:
                continue
            findings.append(
                {
                    "kind": "error_source",
                    "score": score,
                    "service": service,
                    "operation": name,
                    "evidence": {
                        "regression": {"failed_traces_originating_here": _r(share1)},
                        "baseline": {"failed_traces_originating_here": _r(share0)},
                    },
                }
            )
        return findings

    # --- examples -------------------------------------------------------------------------------------------

    def examples(self, finding: dict[str, Any]) -> dict[str, list[str]]:
        if finding.get("place"):
            source = "SELECT tix FROM span_x JOIN res_kv USING (rid) WHERE k = $1 AND v = $2"
            params: list[Any] = [finding["key"], finding["value"]]
        elif finding["kind"] == "attribute":
            source = "SELECT tix FROM attrs WHERE service = $1 AND k = $2 AND v = $3"
            params = [finding["service"], finding["key"], finding["value"]]
        else:
            source = "SELECT tix FROM s WHERE service = $1 AND name = $2"
            params = [finding["service"], finding["operation"]]
        rows = self.q(
            f"""
            SELECT win, list(trace_id ORDER BY sym DESC, root_dur DESC)[1:{EXAMPLES}] FROM (
                SELECT DISTINCT t.win, t.trace_id, t.root_dur,
                       CASE WHEN t.win = 1 THEN t.sym ELSE NOT t.sym END AS sym
                FROM traces t WHERE t.tix IN ({source})
            ) GROUP BY win
            """,  # noqa: S608
            params,
        )
        found = {win: [bytes(t).hex() for t in ids] for win, ids in rows}
        if not found.get(0):  # new in the regression: show healthy baseline requests to compare with
            (ids,) = self.q(
                f"SELECT list(trace_id ORDER BY sym, root_dur)[1:{EXAMPLES}] FROM traces WHERE win = 0"  # noqa: S608
            )[0]
            found[0] = [bytes(t).hex() for t in ids or []]
        return {"regression": found.get(1, []), "baseline": found.get(0, [])}


def _summary(f: dict[str, Any], req: ExplainRequest) -> str:
    symptom = f"{req.service} {req.operation}"
    what = "slower" if req.signal == "latency" else "failing"
    pct = f"{f['score'] * 100:.0f}%"
    ev = f.get("evidence", {})
    reg, base = ev.get("regression", {}), ev.get("baseline", {})
    if f["kind"] == "attribute" and "services" in ev:
        where = ", ".join(ev["services"][:3]) + (" and more" if len(ev["services"]) > 3 else "")
        if req.signal == "latency":
            return (
                f"Spans with {f['key']}={f['value']} (in {where}) took {reg.get('ms_with')} ms "
                f"against {reg.get('ms_without') if reg.get('ms_without') is not None else base.get('ms_with')} ms "
                f"{'elsewhere' if reg.get('ms_without') is not None else 'before'}: {pct} of the {symptom} latency growth."
            )
        return (
            f"Spans with {f['key']}={f['value']} (in {where}) originate errors in "
            f"{_pct(reg.get('errors_originated_per_span_with'))} of their calls: {pct} of the new {symptom} failures."
        )
    if f["kind"] == "attribute":
        return (
            f"Traces through {f['service']} with {f['key']}={f['value']} explain {pct} of the {what} "
            f"{symptom} traces ({_pct(reg.get('symptom_share_with'))} of them are {what}, against "
            f"{_pct(reg.get('symptom_share_without') if reg.get('symptom_share_without') is not None else base.get('symptom_share_without'))} without it)."
        )
    if f["kind"] == "operation":
        if req.signal == "latency":
            return (
                f"{f['service']} '{f['operation']}' own time grew from {base.get('own_ms_per_trace')} to "
                f"{reg.get('own_ms_per_trace')} ms per {symptom} request ({pct} of the latency growth)."
            )
        return (
            f"{f['service']} '{f['operation']}' errors grew from {base.get('errors_per_trace')} to "
            f"{reg.get('errors_per_trace')} per {symptom} request."
        )
    if f["kind"] == "n_plus_one":
        return (
            f"{f['service']} calls '{f['operation']}' {reg.get('calls_per_trace')} times per {symptom} request "
            f"(was {base.get('calls_per_trace')}): an n+1 pattern costing {pct} of the latency growth."
        )
    if f["kind"] == "sequential":
        return (
            f"{f['service']} '{f['operation']}' now runs its independent calls one after another, losing "
            f"{ev.get('time_lost_ms_per_trace')} ms of overlap per request ({pct} of the latency growth)."
        )
    return (
        f"Errors of {symptom} originate in {f['service']} '{f['operation']}' "
        f"({_pct(reg.get('failed_traces_originating_here'))} of requests now, "
        f"{_pct(base.get('failed_traces_originating_here'))} before)."
    )


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.0f}%"


def _relabel_peer(findings: list[dict[str, Any]], a: _Analysis) -> None:
    """An operation whose own time is an uninstrumented peer's time is better named by its ``peer.service``."""
    for f in findings:
        if f["kind"] != "operation":
            continue
        peers = a.q(
            """SELECT attributes['peer.service'] AS peer, count(*) FROM s
               LEFT JOIN (SELECT DISTINCT tix, pid FROM kids) k ON k.tix = s.tix AND k.pid = s.span_id
               WHERE s.service = $1 AND s.name = $2 GROUP BY ALL""",
            [f["service"], f["operation"]],
        )
        if len(peers) == 1 and peers[0][0]:
            # The peer's own spans would be children; an uninstrumented peer leaves the client span childless.
            (has_kids,) = a.q(
                """SELECT count(*) FROM kids k JOIN s p ON p.tix = k.tix AND p.span_id = k.pid
                   WHERE p.service = $1 AND p.name = $2""",
                [f["service"], f["operation"]],
            )[0]
            if has_kids == 0:
                f["where"] = True
                f["kind"] = "attribute"
                f["key"], f["value"] = "peer.service", peers[0][0]
                f["evidence"] = {
                    **f["evidence"],
                    "also": [f"{f['service']} operation '{f.pop('operation')}'"],
                }


def explain_spans(
    spans: pa.Table, req: ExplainRequest, ownership: Ownership | None = None, limit: int = MAX_FINDINGS
) -> list[dict[str, Any]]:
    """Ranked findings for the symptom, from the spans of both windows (``SPAN_SCHEMA`` columns, optionally
    ``sample_weight``). Empty when the symptom did not change."""
    if spans.num_rows == 0:
        return []
    a = _Analysis(spans, req)
    try:
        if not a.select_traces() or not a.changed():
            return []
        a.build_structure()
        findings = a.attributes() + a.places()
        operations = a.operations()
        if req.signal == "latency":
            structural = a.n_plus_one() + a.sequential()
        else:
            structural = a.error_sources()
        named = {(f["service"], f["operation"]) for f in structural}
        findings += structural + [o for o in operations if (o["service"], o["operation"]) not in named]
        _relabel_peer(findings, a)
        _why_before_where(findings, a)
        findings = _fold_into_structure(findings, a)
        findings = _dedupe(findings)
        # On a tie, a mechanism (repeated or serialized calls) names the cause more precisely than an attribute
        # that merely travels with it, and both more precisely than where the time went.
        findings.sort(key=lambda f: (-round(f["score"], 3), KIND_PRECEDENCE.get(f["kind"], 1)))
        findings = findings[:limit]
        if ownership is not None:
            ownership.learn(a.resources({f["service"] for f in findings}))
        for f in findings:
            f["score"] = round(f["score"], 4)
            f["summary"] = _summary(f, req)
            f["owner"] = ownership.owner(f["service"]) if ownership is not None else None
            f["examples"] = a.examples(f)
            f.pop("place", None)
            if a.threshold_ns is not None:
                f["evidence"]["slow_threshold_ms"] = _ms(a.threshold_ns)
            f["evidence"]["regression"]["requests"] = _r(a.tot[1][0], 1)
            f["evidence"]["baseline"]["requests"] = _r(a.tot[0][0], 1)
            # Requests are weighted estimates when the window held more traces than explain reads.
            f["evidence"]["regression"]["traces_analyzed"] = int(a.tot[1][5])
            f["evidence"]["baseline"]["traces_analyzed"] = int(a.tot[0][5])
            f["evidence"]["regression"]["symptom_share"] = _r(a.rate1)
            f["evidence"]["baseline"]["symptom_share"] = _r(a.rate0)
            f["evidence"]["regression"]["root_p50_ms"] = _ms(a.tot[1][3])
            f["evidence"]["baseline"]["root_p50_ms"] = _ms(a.tot[0][3])
            f["evidence"]["regression"]["root_p99_ms"] = _ms(a.tot[1][4])
            f["evidence"]["baseline"]["root_p99_ms"] = _ms(a.tot[0][4])
        return [_ordered(f) for f in findings]
    finally:
        a.close()


def _why_before_where(findings: list[dict[str, Any]], a: _Analysis) -> None:
    """Where the time went (an operation's own time, an uninstrumented peer it waits on) ranks after why it
    went there, when the why explains at least half as much: a place whose own spans in that service got
    slower (a version on some instances, a node), or a request value (a customer, a flag, a large input) on
    whose requests that operation's growth is concentrated."""
    why: dict[str, float] = {}
    for f in findings:
        if f["kind"] == "attribute" and f.get("place"):
            for service in f.get("why_services") or [f["service"]]:
                why[service] = max(why.get(service, 0.0), f["score"])
    requests = [
        f
        for f in findings
        if f["kind"] == "attribute"
        and not f.get("place")
        and not f.get("where")
        and f["evidence"].get("compared_with") == "regression traces without it"
    ]
    for f in findings:
        if f["kind"] in ("operation", "error_source") or f.get("where"):
            best = why.get(f["service"], 0.0)
            for v in requests:
                if v["score"] > best and v["score"] >= 0.5 * f["score"] and _concentrated(a, f, v):
                    best = v["score"]
            if best >= 0.5 * f["score"]:
                f["score"] = min(f["score"], best * 0.99)
    for f in findings:
        f.pop("where", None)
        f.pop("why_services", None)


#: A request value switched an operation's change on when its requests hold at least this share of it.
CONCENTRATED_SHARE = 0.6


def _concentrated(a: _Analysis, where: dict[str, Any], value: dict[str, Any]) -> bool:
    """Whether the operation's growth (own time, or errors) happened on the requests carrying the value."""
    if not where.get("operation"):
        return False  # a peer named by its caller's operation: no operation left to look into
    x = "self_ns" if req_signal_latency(a.req) else "err::INT"
    row = a.q(
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
        [where["service"], where["operation"], value["service"], value["key"], value["value"]],
    )[0]
    base, x1, w1, x_with, w_with = (float(v or 0.0) for v in row)
    total = x1 - w1 * base
    return total > 0 and (x_with - w_with * base) >= CONCENTRATED_SHARE * total


def _fold_into_structure(findings: list[dict[str, Any]], a: _Analysis) -> list[dict[str, Any]]:
    """An attribute carried only by the spans of an operation a structural finding names, and by nearly all of
    them (the n+1 query's statement, say), is that finding seen twice: tell it once, as the structure. A value
    on some of its spans only (the route that fails, the region) says which of them, and stays a finding."""
    structural = {
        (f["service"], f["operation"]): f
        for f in findings
        if f["kind"] in ("n_plus_one", "sequential", "error_source")
    }
    if not structural:
        return findings
    kept = []
    for f in findings:
        # Where processes ran (a place) is never an alias of one operation.
        if (
            f["kind"] == "attribute"
            and not f.get("place")
            and f["service"] in {service for service, _ in structural}
        ):
            ops = a.q(
                """SELECT name, count(*) FILTER (WHERE attributes[$2] = $3 OR resource[$2] = $3), count(*)
                   FROM s WHERE win = 1 AND service = $1 GROUP BY name
                   HAVING count(*) FILTER (WHERE attributes[$2] = $3 OR resource[$2] = $3) > 0""",
                [f["service"], f["key"], f["value"]],
            )
            alias = len(ops) == 1 and ops[0][1] >= 0.9 * ops[0][2]
            target = structural.get((f["service"], ops[0][0])) if alias else None
            if target is not None:
                also = target["evidence"].setdefault("also", [])
                also.append(f"{f['service']} {f['key']}={f['value']}")
                continue
        kept.append(f)
    return kept


def _dedupe(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same attribute named twice (folded candidate and relabelled peer): keep the higher score."""
    best: dict[tuple[Any, ...], dict[str, Any]] = {}
    for f in findings:
        key = (f["kind"], f["service"], f.get("key"), f.get("value"), f.get("operation"))
        if key not in best or best[key]["score"] < f["score"]:
            best[key] = f
    return list(best.values())


def _ordered(f: dict[str, Any]) -> dict[str, Any]:
    head = [
        "kind",
        "score",
        "summary",
        "service",
        "operation",
        "key",
        "value",
        "owner",
        "evidence",
        "examples",
    ]
    return {k: f[k] for k in head if k in f} | {k: v for k, v in f.items() if k not in head}
