"""Two traces, or two sets of traces, side by side: structure, timing and behaviour, differences first.

Structure is which operations ran and how many times per trace; timing is each operation's own time per trace;
behaviour is the attribute values the traces carried (span and resource). Each side is averaged over its
traces, so one trace compares with one, or a slow set with a fast set, the same way.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from spyglass.analysis.self_time import with_self_time
from spyglass.model.arrow_sql import query_arrow
from spyglass.model.schema import TREE_COLUMNS

_OPERATIONS_SQL = """
SELECT service, name AS operation,
       count(*) / ? AS calls_per_trace,
       sum(self_ns) / ? / 1e6 AS own_ms_per_trace,
       count(*) FILTER (WHERE status_code = 2) / ? AS errors_per_trace
FROM side GROUP BY service, name
"""

_ATTRIBUTES_SQL = """
WITH pairs AS (
    SELECT DISTINCT trace_id, k AS key, v AS value
    FROM (SELECT trace_id, unnest(map_keys(attributes)) AS k, unnest(map_values(attributes)) AS v FROM side
          UNION ALL
          SELECT trace_id, unnest(map_keys(resource)), unnest(map_values(resource)) FROM side)
)
SELECT key, value, count(*) / ? AS share_of_traces FROM pairs GROUP BY key, value
"""


def _side(spans: pa.Table) -> tuple[pa.Table, pa.Table, int]:
    traces = len(spans.column("trace_id").unique()) if spans.num_rows else 0
    divisor = max(1, traces)
    side = with_self_time(spans.select(TREE_COLUMNS))
    operations = query_arrow(_OPERATIONS_SQL, [divisor] * 3, side=side)
    attributes = query_arrow(_ATTRIBUTES_SQL, [divisor], side=side)
    return operations, attributes, traces


def compare_traces(a: pa.Table, b: pa.Table, max_rows: int = 100) -> dict[str, Any]:
    """``{"a": {"traces"}, "b": {"traces"}, "operations": [...], "attributes": [...]}``, largest differences first.

    An operation row says, for each side, calls, own milliseconds and errors per trace; an attribute row says
    the share of each side's traces that carried the value.
    """
    ops_a, attrs_a, traces_a = _side(a)
    ops_b, attrs_b, traces_b = _side(b)
    operations: dict[tuple[str, str], dict[str, Any]] = {}
    for side, table in (("a", ops_a), ("b", ops_b)):
        for row in table.to_pylist():
            entry = operations.setdefault(
                (row["service"], row["operation"]), {"service": row["service"], "operation": row["operation"]}
            )
            entry[side] = {
                "calls_per_trace": round(row["calls_per_trace"], 3),
                "own_ms_per_trace": round(row["own_ms_per_trace"], 3),
                "errors_per_trace": round(row["errors_per_trace"], 3),
            }
    empty = {"calls_per_trace": 0.0, "own_ms_per_trace": 0.0, "errors_per_trace": 0.0}
    for entry in operations.values():
        entry.setdefault("a", dict(empty))
        entry.setdefault("b", dict(empty))
        entry["difference"] = {key: round(entry["b"][key] - entry["a"][key], 3) for key in empty}
        entry["only_in"] = "a" if entry["b"] == empty else "b" if entry["a"] == empty else None
    operation_rows = sorted(
        operations.values(),
        key=lambda e: (
            e["only_in"] is None,
            -abs(e["difference"]["own_ms_per_trace"]),
            -abs(e["difference"]["calls_per_trace"]),
            -abs(e["difference"]["errors_per_trace"]),
        ),
    )
    shares: dict[tuple[str, str], dict[str, float]] = {}
    for side, table in (("a", attrs_a), ("b", attrs_b)):
        for row in table.to_pylist():
            shares.setdefault((row["key"], row["value"]), {"a": 0.0, "b": 0.0})[side] = round(
                row["share_of_traces"], 3
            )
    attribute_rows: list[dict[str, Any]] = [
        {
            "key": key,
            "value": value,
            "a": share["a"],
            "b": share["b"],
            "difference": round(share["b"] - share["a"], 3),
        }
        for (key, value), share in shares.items()
        if share["a"] != share["b"]
    ]
    attribute_rows.sort(key=lambda r: (-abs(float(r["difference"])), str(r["key"]), str(r["value"])))
    return {
        "a": {"traces": traces_a},
        "b": {"traces": traces_b},
        "operations": operation_rows[:max_rows],
        "attributes": attribute_rows[:max_rows],
    }
