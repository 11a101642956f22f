"""What every finding carries besides its own measure: the symptom's numbers in both windows (so a finding can be
read alone), how many traces were analyzed, and example traces to open."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from spyglass.analysis.explain.finding import Finding, Kind
from spyglass.analysis.explain.numbers import ms, rounded

if TYPE_CHECKING:
    from spyglass.analysis.explain.symptom import Windows

#: Example traces per window.
EXAMPLES = 3


def attach(w: Windows, f: Finding) -> None:
    """The symptom's numbers in both windows, and example traces."""
    f.examples = examples(w, f)
    if w.threshold_ns is not None:
        f.evidence["slow_threshold_ms"] = ms(w.threshold_ns)
    for win, side in ((1, "regression"), (0, "baseline")):
        weight, _, _, p50, p99, count = w.tot[win]
        numbers = f.evidence.setdefault(side, {})
        numbers["requests"] = rounded(weight, 1)
        # Requests are weighted estimates when the window held more traces than explain reads.
        numbers["traces_analyzed"] = int(count)
        numbers["symptom_share"] = rounded(w.rate1 if win else w.rate0)
        numbers["root_p50_ms"] = ms(p50)
        numbers["root_p99_ms"] = ms(p99)


def examples(w: Windows, finding: Finding) -> dict[str, list[str]]:
    """Trace ids to open: the regression's traces with the finding that show the symptom most, the baseline's
    with it that do not (or, for a value new in the regression, healthy baseline traces)."""
    if finding.place:
        source = "SELECT tix FROM span_x JOIN res_kv USING (rid) WHERE k = $1 AND v = $2"
        params: list[Any] = [finding.key, finding.value]
    elif finding.kind == Kind.ATTRIBUTE:
        source = "SELECT tix FROM attrs WHERE service = $1 AND k = $2 AND v = $3"
        params = [finding.service, finding.key, finding.value]
    else:
        source = "SELECT tix FROM s WHERE service = $1 AND name = $2"
        params = [finding.service, finding.operation]
    rows = w.q(
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
        (ids,) = w.q(
            f"SELECT list(trace_id ORDER BY sym, root_dur)[1:{EXAMPLES}] FROM traces WHERE win = 0"  # noqa: S608
        )[0]
        found[0] = [bytes(t).hex() for t in ids or []]
    return {"regression": found.get(1, []), "baseline": found.get(0, [])}
