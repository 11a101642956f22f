"""The symptom: which traces of the two windows explain looks at, which of them show the symptom, how much it
grew, and the span tables every candidate cause is measured on.

The traces whose root is the symptom's ``(service, operation)`` are taken from a regression and a baseline
window. Each trace is marked as showing the symptom (latency: its root is slower than the baseline's p90;
errors: its root failed). Everything is DuckDB over Arrow, so it is a few hash joins and group-bys whatever the
number of spans; a window holding more than ``TRACES_PER_WINDOW`` traces is read as a uniform sample of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spyglass.model.adjusted_count import span_weights
from spyglass.model.schema import TREE_COLUMNS

#: Columns explain reads (``sample_weight`` is added as 1.0 when the source has none).
COLUMNS = TREE_COLUMNS
#: A latency trace is slow when its root is slower than this quantile of the baseline's roots.
SLOW_QUANTILE = 0.9
#: Traces of one window explain reads at most (about): beyond, a fixed pseudo-random subset of the window's
#: traces (chosen by trace id, so the same call gives the same answer) stands for the rest, each weighed up by
#: the share left out. Ten thousand traces estimate a share of 1% within a fifth of itself; reading ten
#: million spans would not say more, only later.
TRACES_PER_WINDOW = 10_000


@dataclass(frozen=True)
class ExplainRequest:
    """What to explain: a root operation, the regression and baseline windows, and whether it got slower or fails more."""

    service: str
    operation: str
    start_ns: int
    end_ns: int
    baseline_start_ns: int
    baseline_end_ns: int
    signal: Literal["latency", "errors"] = "latency"


class Windows:
    """The two windows' traces in one DuckDB connection, for one explain computation (spans outside the
    windows' traces are ignored). Tables, built in order: ``roots`` and ``traces`` (one row per trace, ``tix``
    its number, ``win`` 1 for the regression, ``w`` its weight, ``sym`` whether it shows the symptom, ``y`` its
    symptom value), ``s`` (their spans), then ``kids``, ``cover`` and ``own`` (each span with its own time)."""

    def __init__(self, spans: pa.Table, req: ExplainRequest) -> None:
        self.req = req
        self.db = duckdb.connect()
        if "sample_weight" not in spans.column_names:
            weights = (
                span_weights(spans.column("trace_state"))
                if "trace_state" in spans.column_names
                else pa.array(np.ones(spans.num_rows), pa.float64())
            )
            spans = spans.append_column("sample_weight", weights)
        self.spans = spans.select([*COLUMNS, "sample_weight"])
        self.db.register("raw", self.spans)

    @property
    def latency(self) -> bool:
        return self.req.signal == "latency"

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
        kept = {win: min(1.0, TRACES_PER_WINDOW / n) for win, n in counts.items()}
        if min(kept.values()) < 1.0:
            self._subsample(kept)
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
        # The growth of the per-trace symptom value (latency: mean root duration; errors: failure rate).
        self.delta = self.dmean if self.latency else self.rate1 - self.rate0
        # The same growth measured as attribute gaps are (winsorized means), so that a value carried by every
        # slower request explains all of it, however long the slowest of them took.
        ydelta = self.tot[1][2] - self.tot[0][2]
        self.ydelta = ydelta if self.latency and ydelta > 0 else self.delta
        return True

    def _subsample(self, kept: dict[int, float]) -> None:
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
            {"k0": kept[0], "k1": kept[1]},
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
            "rid": _resource_ids(spans.column("resource")),
        }
        self.s = pa.table(columns)
        self.db.register("s", self.s)
        # ``res``: each distinct resource (a process) once, by its ``rid``.
        first = np.unique(self.s.column("rid").to_numpy(), return_index=True)[1]
        self.db.register("res", self.s.select(["rid", "resource"]).take(pa.array(first)))

    def resources(self, services: set[str]) -> pa.Table:
        """The distinct resources of these services' spans (where owners are learned from)."""
        return self.db.sql(
            """SELECT service, resource FROM (SELECT DISTINCT service, rid FROM s WHERE list_contains($1, service))
               JOIN res USING (rid)""",
            params=[sorted(services)],
        ).to_arrow_table()

    def changed(self) -> bool:
        n0, n1 = max(self.tot[0][5], 1), max(self.tot[1][5], 1)
        # The symptom rate must grow beyond noise, and by >= 3 points. Both windows are samples: the regression's
        # rate varies by its own count, and the threshold it is measured against (the baseline's p90, or its
        # failure rate) by the baseline's, so the difference's standard error holds both.
        both = 1 / n0 + 1 / n1
        noise = 3 * math.sqrt(max(self.rate0 * (1 - self.rate0), 0.01) * both)
        if self.rate1 - self.rate0 > max(0.03, noise) and self.excess > 0:
            return True
        if self.req.signal != "latency" or self.dmean <= 0:
            return False
        # Latency: the regression's requests slower as a whole (a third of them twice as slow moves the p90
        # share little): a rank-sum test of the two windows' root durations, beyond 3 standard errors.
        if self.rank_sum_z() > 3:
            return True
        # And a tail: a few requests (one slow host of twenty) much slower moves the mean well beyond its
        # standard error while the share above the baseline's p90 stays within noise.
        ((var0, var1),) = self.q(
            "SELECT var_samp(y) FILTER (WHERE win = 0), var_samp(y) FILTER (WHERE win = 1) FROM traces"
        )
        se = math.sqrt((var0 or 0.0) / n0 + (var1 or 0.0) / n1)
        if se > 0 and (self.tot[1][2] - self.tot[0][2]) > 3 * se:
            return True
        # Or a few requests far beyond anything the baseline did: the p99 spike a person sees on the chart.
        ((far0, far1),) = self.q(
            f"""SELECT count(*) FILTER (WHERE win = 0), count(*) FILTER (WHERE win = 1) FROM traces
                WHERE root_dur > 2 * {float(self.tot[0][4])}"""  # noqa: S608
        )
        return bool(far1 >= 4 and far1 / n1 > 3 * (far0 + 1) / n0)

    def rank_sum_z(self) -> float:
        """The Mann-Whitney rank-sum statistic of the regression's root durations against the baseline's, in
        standard errors (ties take their average rank): positive when the regression's requests took longer."""
        n0, n1 = self.tot[0][5], self.tot[1][5]
        if n0 < 2 or n1 < 2:
            return 0.0
        ((ranks,),) = self.q(
            """SELECT sum(rk) FILTER (WHERE win = 1) FROM (
                   SELECT win, rank() OVER (ORDER BY root_dur) + (count(*) OVER (PARTITION BY root_dur) - 1) / 2 AS rk
                   FROM traces)"""
        )
        expected = n1 * (n0 + n1 + 1) / 2
        return float((float(ranks) - expected) / math.sqrt(n0 * n1 * (n0 + n1 + 1) / 12))

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
                   s.rid,
                   greatest(s.dur - coalesce(c.covered, 0), 0) AS self_ns,
                   coalesce(c.kid_total - c.covered, 0) AS overlap_ns, coalesce(c.n_kids, 0) AS n_kids,
                   coalesce(c.n_names, 0) AS n_names
            FROM s LEFT JOIN cover c ON c.tix = s.tix AND c.pid = s.span_id
            """
        )

    def per_trace(self, win: int) -> float:
        """The weighted number of traces of a window (1: regression, 0: baseline)."""
        return float(self.tot[win][0])


def _resource_ids(resources: pa.ChunkedArray) -> pa.Array:
    """A small integer per distinct resource map (spans of one process share it), computed in Arrow: DuckDB
    would convert every span's map to hash it."""
    rows = []
    for chunk in resources.chunks:
        entries = pc.binary_join_element_wise(
            chunk.keys, chunk.items.cast(pa.string()), "\x1f", null_handling="replace", null_replacement=""
        )
        rows.append(pc.binary_join(pa.ListArray.from_arrays(chunk.offsets, entries), "\x1e"))
    if not rows:
        return pa.array([], pa.int32())
    return pc.dictionary_encode(pa.concat_arrays(rows)).indices
