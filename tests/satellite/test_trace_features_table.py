"""Trace features (numpy and Arrow kernels) against the DuckDB SQL they replaced, on random span tables."""

from __future__ import annotations

import random
import re
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from spyglass.model.arrow_sql import query_arrow
from spyglass.model.schema import SPAN_SCHEMA
from spyglass.satellite.trace_features import FEATURE_COLUMNS, trace_features

# The rule as SQL: what trace_features computed before, kept as the oracle.
_FEATURES_SQL = """
SELECT trace_id,
       count(*) AS span_count,
       arg_min(service, (parent_span_id IS NOT NULL)::BIGINT * 4611686018427387904 + start_ns) AS root_service,
       arg_min(name, (parent_span_id IS NOT NULL)::BIGINT * 4611686018427387904 + start_ns) AS root_operation,
       max(start_ns + duration_ns) - min(start_ns) AS duration_ns,
       bool_or(status_code = 2) AS has_error,
       arg_max(service || ' ' || name || ': ' || regexp_replace(coalesce(left(status_message, 80), ''),
                                                                '[0-9]+', '#', 'g'),
               start_ns) FILTER (WHERE status_code = 2) AS error_signature,
       hash(list_sort(list_distinct(list(service || chr(31) || name)))) AS shape
FROM spans GROUP BY trace_id
ORDER BY min(start_ns), trace_id
"""

SERVICES = ["frontend", "cart", "sérvice", "服务", "db"]
NAMES = ["GET /", "op-1", "op-2", "SELECT", "ünïcode", "x"]
MESSAGES = [
    None,
    "",
    "timeout after 31ms",
    "timeout after 47ms",
    "error 1234 in 5678",
    "no digits here",
    "é" * 78 + "123456",  # the cut at 80 characters falls inside the number
    "x" * 79 + "42 and more",
    "ошибка 500: " + "данные " * 12 + "7",
    "a\u0301" * 45 + "9",  # combining marks: 80 code points, not 80 characters as seen
    "١٢٣ arabic-indic digits stay, 123 ascii ones fold",
    "🙂" * 85 + "1",
]
# service and name may hold nulls in this variant, to check that nulls are treated as SQL treats them.
NULLABLE_SCHEMA = SPAN_SCHEMA.set(
    SPAN_SCHEMA.get_field_index("service"), SPAN_SCHEMA.field("service").with_nullable(True)
).set(SPAN_SCHEMA.get_field_index("name"), SPAN_SCHEMA.field("name").with_nullable(True))


def random_spans(rng: random.Random, traces: int, with_nulls: bool = False) -> pa.Table:
    """Whole traces of random spans in ``SPAN_SCHEMA``: one root, several or none; start ties within and across
    traces; errors with long, non-ASCII and null messages."""
    base = rng.choice([1_700_000_000_000_000_000, 0, 5_000])
    rows: list[dict[str, object]] = []
    for _ in range(traces):
        # Ids that often share a prefix, so ordering ties on the first start are broken by the id's bytes.
        trace_id = bytes([rng.randint(0, 3)]) * rng.randint(0, 16)
        trace_id += rng.randbytes(16 - len(trace_id))
        roots = rng.choice(["one", "one", "none", "several", "all"])
        # Few pairs to draw from, often, so that traces share shapes with different span counts and orders.
        services = rng.sample(SERVICES, rng.choice([1, 1, 2, rng.randint(1, len(SERVICES))]))
        names = rng.sample(NAMES, rng.choice([1, 1, 2, rng.randint(1, len(NAMES))]))
        trace_start = base + rng.randint(0, 20) * 1000
        spans = rng.randint(1, 12)
        for index in range(spans):
            root = (
                (roots == "one" and index == 0)
                or (roots == "several" and rng.random() < 0.4)
                or roots == "all"
            )
            error = rng.random() < 0.25
            service: str | None = rng.choice(services)
            name: str | None = rng.choice(names)
            if with_nulls and rng.random() < 0.15:
                service = None
            if with_nulls and rng.random() < 0.15:
                name = None
            rows.append(
                {
                    "trace_id": trace_id,
                    "span_id": rng.randbytes(8),
                    "parent_span_id": None if root else rng.randbytes(8),
                    "service": service,
                    "name": name,
                    "kind": rng.randint(0, 5),
                    "start_ns": trace_start + rng.choice([0, 0, rng.randint(0, 5), rng.randint(0, 10_000)]),
                    "duration_ns": rng.choice([0, rng.randint(1, 1000), rng.randint(1, 10**9)]),
                    "status_code": 2 if error else rng.randint(0, 1),
                    "status_message": rng.choice(MESSAGES) if error or rng.random() < 0.1 else None,
                }
            )
    rng.shuffle(rows)  # spans of a trace arrive interleaved with others'
    schema = NULLABLE_SCHEMA if with_nulls else SPAN_SCHEMA
    columns = {
        field.name: pa.array([row.get(field.name) for row in rows], field.type)
        for field in schema
        if field.name not in ("events", "links")
    }
    columns["events"] = pa.array([[]] * len(rows), SPAN_SCHEMA.field("events").type)
    columns["links"] = pa.array([[]] * len(rows), SPAN_SCHEMA.field("links").type)
    return pa.table(columns, schema=schema)


def chunked(rng: random.Random, table: pa.Table) -> pa.Table:
    """The same rows in several chunks, some of them slices, as batches arrive."""
    if table.num_rows == 0:
        return table
    pieces = []
    cut = 0
    while cut < table.num_rows:
        size = rng.randint(1, max(1, table.num_rows // 3))
        pieces.append(table.slice(cut, size))
        cut += size
    return pa.concat_tables(pieces)


def oracle(table: pa.Table) -> pa.Table:
    return query_arrow(_FEATURES_SQL, spans=table.select(FEATURE_COLUMNS))


def _signature(row: dict[str, Any]) -> str | None:
    if row["service"] is None or row["name"] is None:
        return None
    message = re.sub("[0-9]+", "#", str(row["status_message"] or "")[:80])
    return f"{row['service']} {row['name']}: {message}"


def _tied(spans: pa.Table) -> dict[bytes, dict[str, set[object]]]:
    """Per trace, every value SQL's arg_min / arg_max may pick when the best spans tie."""
    by_trace: dict[bytes, list[dict[str, Any]]] = {}
    for row in spans.select(FEATURE_COLUMNS).to_pylist():
        by_trace.setdefault(row["trace_id"], []).append(row)
    tied: dict[bytes, dict[str, set[object]]] = {}
    for trace_id, rows in by_trace.items():
        options: dict[str, set[object]] = {}
        for column, field in (("root_service", "service"), ("root_operation", "name")):
            keyed = [((r["parent_span_id"] is not None), r["start_ns"], r[field]) for r in rows]
            keyed = [k for k in keyed if k[2] is not None]
            best = min((k[:2] for k in keyed), default=None)
            options[column] = {k[2] for k in keyed if k[:2] == best} or {None}
        signed = [(r["start_ns"], _signature(r)) for r in rows if r["status_code"] == 2]
        signed = [s for s in signed if s[1] is not None]
        latest = max((s[0] for s in signed), default=None)
        options["error_signature"] = {s[1] for s in signed if s[0] == latest} or {None}
        tied[trace_id] = options
    return tied


def assert_same_features(spans: pa.Table, found: pa.Table, expected: pa.Table) -> None:
    """Every column but shape as the oracle's (a tie may be broken either way), in the same row order."""
    assert found.schema == expected.schema
    assert found.column_names == expected.column_names
    for column in ("trace_id", "span_count", "duration_ns", "has_error"):
        assert found.column(column).to_pylist() == expected.column(column).to_pylist(), column
    tied = _tied(spans)
    for column in ("root_service", "root_operation", "error_signature"):
        ours, theirs = found.column(column).to_pylist(), expected.column(column).to_pylist()
        for trace_id, mine, sql in zip(found.column("trace_id").to_pylist(), ours, theirs, strict=True):
            if mine != sql:
                assert {mine, sql} <= tied[trace_id][column], (column, mine, sql)


def assert_same_partition(found: list[int], expected: list[int]) -> None:
    """Equal shapes exactly where the oracle's shapes are equal."""
    assert len(found) == len(expected)
    pairs = set(zip(found, expected, strict=True))
    assert len({f for f, _ in pairs}) == len(pairs) == len({e for _, e in pairs})


@pytest.mark.parametrize("seed", range(60))
def test_features_follow_the_sql_on_random_spans(seed: int) -> None:
    rng = random.Random(seed)
    first = chunked(rng, random_spans(rng, rng.randint(1, 40)))
    second = chunked(rng, random_spans(rng, rng.randint(0, 40)))
    if rng.random() < 0.5 and first.num_rows > 2:
        first = first.slice(1, first.num_rows - 2)  # traces cut short are traces all the same
    if rng.random() < 0.2:
        second = second.filter(pc.not_equal(second.column("status_code"), 2))  # no error to sign
    found = [trace_features(first), trace_features(second)]
    expected = [oracle(first), oracle(second)]
    for spans, ours, theirs in zip([first, second], found, expected, strict=True):
        assert_same_features(spans, ours, theirs)
    # Shapes partition traces as the oracle's do, within a call and across two calls.
    assert_same_partition(
        found[0].column("shape").to_pylist() + found[1].column("shape").to_pylist(),
        expected[0].column("shape").to_pylist() + expected[1].column("shape").to_pylist(),
    )


@pytest.mark.parametrize("seed", range(20))
def test_a_traces_shape_is_the_same_whatever_the_batch(seed: int) -> None:
    rng = random.Random(1000 + seed)
    spans = random_spans(rng, rng.randint(1, 30))
    whole = trace_features(spans)
    # The same spans reordered and re-chunked, and each trace alone.
    shuffled = spans.take(pa.array(rng.sample(range(spans.num_rows), spans.num_rows)))
    again = trace_features(chunked(rng, shuffled))
    shapes = dict(zip(whole.column("trace_id").to_pylist(), whole.column("shape").to_pylist(), strict=True))
    assert dict(
        zip(again.column("trace_id").to_pylist(), again.column("shape").to_pylist(), strict=True)
    ) == (shapes)
    for trace_id in rng.sample(sorted(shapes), min(5, len(shapes))):
        alone = spans.filter(pc.equal(spans.column("trace_id"), pa.scalar(trace_id, pa.binary(16))))
        assert trace_features(alone).column("shape").to_pylist() == [shapes[trace_id]]


@pytest.mark.parametrize("seed", range(20))
def test_null_services_and_names_count_as_sql_counts_them(seed: int) -> None:
    rng = random.Random(2000 + seed)
    spans = chunked(rng, random_spans(rng, rng.randint(1, 30), with_nulls=True))
    found, expected = trace_features(spans), oracle(spans)
    assert_same_features(spans, found, expected)
    assert_same_partition(found.column("shape").to_pylist(), expected.column("shape").to_pylist())


def test_an_empty_table_gives_an_empty_table_of_the_same_schema() -> None:
    empty = SPAN_SCHEMA.empty_table()
    found, expected = trace_features(empty), oracle(empty)
    assert found.num_rows == 0
    assert found.schema == expected.schema


def test_a_root_span_wins_over_an_earlier_child_and_the_latest_error_names_the_trace() -> None:
    trace_id = b"t" * 16
    rows = [
        # service, name, parent, start, status, message
        ("cart", "child", b"p" * 8, 100, 2, "late 12 error"),
        ("front", "GET /", None, 200, 0, None),
        ("db", "SELECT", b"p" * 8, 300, 2, "timeout after 31ms"),
    ]
    spans = pa.table(
        {
            "trace_id": pa.array([trace_id] * 3, pa.binary(16)),
            "parent_span_id": pa.array([r[2] for r in rows], pa.binary(8)),
            "service": [r[0] for r in rows],
            "name": [r[1] for r in rows],
            "start_ns": pa.array([r[3] for r in rows], pa.int64()),
            "duration_ns": pa.array([50, 500, 10], pa.int64()),
            "status_code": pa.array([r[4] for r in rows], pa.int8()),
            "status_message": [r[5] for r in rows],
        }
    )
    row = trace_features(spans).to_pylist()[0]
    assert (row["root_service"], row["root_operation"]) == ("front", "GET /")
    assert row["duration_ns"] == 600
    assert row["error_signature"] == "db SELECT: timeout after #ms"
    assert row["span_count"] == 3 and row["has_error"]
