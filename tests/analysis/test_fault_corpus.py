"""The fault corpus generator itself: deterministic, covering every fault kind, and honest about its answers.

Explain's accuracy on the corpus is measured by bench/explain_corpus.py, not asserted here.
"""

from __future__ import annotations

from collections import Counter
from functools import cache

import duckdb
import pytest

from tests.support.fault_corpus import FAULT_KINDS, Case, case

SEEDS = range(200)
CHECKED = range(0, 200, 5)


@cache
def cached(seed: int) -> Case:
    return case(seed)


def test_same_seed_same_case() -> None:
    a, b = case(7), case(7)
    assert a.spans.equals(b.spans)
    assert (a.request, a.expected, a.kind, a.services) == (b.request, b.expected, b.kind, b.services)
    assert not case(8).spans.equals(a.spans)


def test_every_fault_kind_and_healthy_windows_appear() -> None:
    kinds = Counter(case_kind(seed) for seed in SEEDS)
    assert set(kinds) == {*FAULT_KINDS, "healthy"}
    assert 15 <= kinds["healthy"] <= 55


def case_kind(seed: int) -> str:
    return cached(seed).kind if seed in CHECKED else case(seed, traces_per_window=20).kind


@pytest.mark.parametrize("seed", CHECKED)
def test_case_shape(seed: int) -> None:
    c = cached(seed)
    assert 4 <= len(c.services) <= 20
    assert c.healthy == (c.kind == "healthy") == (not c.expected)
    db = duckdb.connect()
    db.register("spans", c.spans)
    roots = db.execute(
        "SELECT count(*) FROM spans WHERE parent_span_id IS NULL AND service = $1 AND name = $2",
        [c.request.service, c.request.operation],
    ).fetchone()
    assert roots is not None and roots[0] == 600
    # every regression window carries an unrelated deploy: a version absent from the baseline
    new_versions = db.execute(
        """SELECT count(DISTINCT resource['service.version']) FROM spans WHERE start_ns >= $1
           AND resource['service.version'] NOT IN (SELECT DISTINCT resource['service.version'] FROM spans
                                                   WHERE start_ns < $1)""",
        [c.request.start_ns],
    ).fetchone()
    assert new_versions is not None and new_versions[0] >= 1


@pytest.mark.parametrize("seed", CHECKED)
def test_expected_cause_is_in_the_regression_and_changed_there(seed: int) -> None:
    """Each answer is carried by regression spans, and those spans show the change the fault claims."""
    c = cached(seed)
    if c.healthy:
        return
    db = duckdb.connect()
    db.register("spans", c.spans)
    db.execute(
        """CREATE TABLE s AS SELECT s.*, s.start_ns >= $1 AS reg, r.duration_ns AS root_dur,
                  r.status_code = 2 AS root_err
           FROM spans s JOIN (SELECT trace_id, duration_ns, status_code FROM spans WHERE parent_span_id IS NULL) r
           USING (trace_id)""",
        [c.request.start_ns],
    )
    errors = c.request.signal == "errors"
    changed = []
    for kind, a, b in sorted(c.expected):
        if kind == "attribute":
            where = "coalesce(attributes[$1], resource[$1]) = $2"
            present = db.execute(f"SELECT count(*) FROM s WHERE reg AND {where}", [a, b]).fetchone()
            assert present is not None and present[0] > 0, (kind, a, b)
            # the traces carrying the value: slower or failing more than in the baseline (or than all
            # baseline traces, when the value is new)
            # the symptom as explain defines it: a failed root, or a root slower than the baseline's p90
            p90 = db.execute("SELECT quantile_disc(root_dur, 0.9) FROM s WHERE NOT reg").fetchone()
            assert p90 is not None
            metric = "avg(root_err::INT)" if errors else f"avg((root_dur > {p90[0]})::INT)"
            row = db.execute(
                f"""WITH t AS (SELECT DISTINCT trace_id, reg, root_dur, root_err FROM s WHERE {where})
                    SELECT (SELECT {metric} FROM t WHERE reg),
                           coalesce((SELECT {metric} FROM t WHERE NOT reg),
                                    (SELECT {metric} FROM (SELECT DISTINCT trace_id, root_dur, root_err
                                                           FROM s WHERE NOT reg)))""",
                [a, b],
            ).fetchone()
        elif kind == "n_plus_one":
            row = db.execute(
                """WITH calls AS (SELECT reg, parent_span_id, count(*) AS n FROM s
                                  WHERE service = $1 AND name = $2 GROUP BY ALL)
                   SELECT max(n) FILTER (WHERE reg), coalesce(max(n) FILTER (WHERE NOT reg), 0) FROM calls""",
                [a, b],
            ).fetchone()
        elif kind == "sequential":
            row = db.execute(
                """WITH kids AS (SELECT k.reg, k.parent_span_id, k.span_id, k.start_ns, k.start_ns + k.duration_ns AS end_ns
                                 FROM s k JOIN s p ON p.span_id = k.parent_span_id
                                 WHERE p.service = $1 AND p.name = $2 AND k.kind <> 4),
                        overlap AS (SELECT x.reg, x.parent_span_id,
                                           bool_or(x.start_ns < y.end_ns AND y.start_ns < x.end_ns) AS o
                                    FROM kids x JOIN kids y ON x.parent_span_id = y.parent_span_id
                                     AND x.span_id < y.span_id GROUP BY ALL)
                   -- reversed: the share of parents with overlapping children falls
                   SELECT avg(o::INT) FILTER (WHERE NOT reg), avg(o::INT) FILTER (WHERE reg) FROM overlap""",
                [a, b],
            ).fetchone()
        else:  # operation / error_source: the operation's own spans got slower or fail more
            metric = "avg((status_code = 2)::INT)" if errors else "avg(duration_ns)"
            row = db.execute(
                f"SELECT {metric} FILTER (WHERE reg), {metric} FILTER (WHERE NOT reg) FROM s "
                "WHERE service = $1 AND name = $2",
                [a, b],
            ).fetchone()
        assert row is not None and row[0] is not None, (kind, a, b)
        if kind == "attribute":
            changed.append(row[0] >= (row[1] or 0) + 0.04)
        else:
            changed.append(row[0] > (row[1] or 0) * (1.0 if errors or kind == "sequential" else 1.2))
    # with two acceptable names for one cause (the node and the pod it runs) both must hold; with a decoy,
    # the decoy is not an answer
    assert all(changed), (c.description, sorted(c.expected), changed)


@pytest.mark.parametrize("seed", CHECKED)
def test_faults_make_a_symptom_and_healthy_windows_do_not(seed: int) -> None:
    c = cached(seed)
    regression, baseline = c.symptom_share
    if c.healthy:
        assert regression - baseline < 0.08, c.description
    else:
        assert regression - baseline >= 0.04, c.description


@pytest.mark.parametrize("seed", CHECKED)
def test_every_fault_names_its_culprit_services(seed: int) -> None:
    """Service-level methods are judged on the services the fault changed; an unrelated full deploy never
    lands on the one service a fault changes."""
    c = cached(seed)
    assert bool(c.culprits) == (not c.healthy)
    assert c.culprits <= set(c.services)
    if len(c.culprits) == 1:
        deployed = c.description.split("unrelated deploy ")[1].split(" ")[0]
        assert deployed not in c.culprits
