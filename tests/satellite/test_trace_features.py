"""Trace features against SQL stating the same rule, on random span tables."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from spyglass.model.arrow_sql import query_arrow
from spyglass.model.schema import ATTRIBUTES
from spyglass.satellite.trace_features import trace_attribute_values

# The rule as SQL: a span's own value of a key, else its resource's; distinct per trace.
_ORACLE = """
SELECT DISTINCT trace_id, k AS key, coalesce(attributes[k], resource[k]) AS value
FROM spans, (SELECT unnest(?::VARCHAR[]) AS k)
WHERE coalesce(attributes[k], resource[k]) IS NOT NULL
"""

KEYS = ["service.version", "host.name", "http.route", "zone"]


def _map(rng: random.Random) -> list[tuple[str, str | None]] | None:
    if rng.random() < 0.1:
        return None
    names = rng.sample([*KEYS, "other", "customer.id", "a.b"], rng.randint(0, 5))
    return [(name, None if rng.random() < 0.1 else f"v{rng.randint(0, 3)}") for name in names]


def _spans(rng: random.Random, rows: int) -> pa.Table:
    return pa.table(
        {
            "trace_id": pa.array([bytes([rng.randint(0, 6)]) * 16 for _ in range(rows)], pa.binary(16)),
            "attributes": pa.array([_map(rng) for _ in range(rows)], ATTRIBUTES),
            "resource": pa.array([_map(rng) for _ in range(rows)], ATTRIBUTES),
        }
    )


def _as_set(table: pa.Table) -> set[tuple[bytes, str, str]]:
    return set(zip(*(table.column(name).to_pylist() for name in ("trace_id", "key", "value")), strict=True))


@pytest.mark.parametrize("seed", range(30))
def test_values_follow_the_rule_on_random_spans(seed: int) -> None:
    rng = random.Random(seed)
    spans = _spans(rng, rng.randint(0, 60))
    # Sliced and in several chunks, as batches arrive.
    cut = rng.randint(0, spans.num_rows)
    spans = pa.concat_tables([spans.slice(0, cut), spans.slice(cut)])
    if spans.num_rows > 2:
        spans = spans.slice(1, spans.num_rows - 2)
    keys = rng.sample(KEYS, rng.randint(0, len(KEYS)))
    found = trace_attribute_values(spans, keys)
    expected = query_arrow(_ORACLE, [keys], spans=spans) if keys else found.slice(0, 0)
    assert found.num_rows == len(_as_set(found))
    assert _as_set(found) == _as_set(expected)


def test_the_spans_own_value_hides_its_resources() -> None:
    spans = pa.table(
        {
            "trace_id": pa.array([b"a" * 16, b"b" * 16], pa.binary(16)),
            "attributes": pa.array([[("host.name", "own")], [("host.name", None)]], ATTRIBUTES),
            "resource": pa.array([[("host.name", "res")], [("host.name", "res")]], ATTRIBUTES),
        }
    )
    assert _as_set(trace_attribute_values(spans, ["host.name"])) == {
        (b"a" * 16, "host.name", "own"),
        (b"b" * 16, "host.name", "res"),
    }


def _first_carriers(spans: pa.Table, keys: list[str]) -> dict[tuple[str, str], list[bytes]]:
    """Per (key, value), the traces carrying it in the order of their first span carrying it (the rule in
    Python, row by row)."""
    order: dict[tuple[str, str], list[bytes]] = {}
    rows = zip(
        *(spans.column(name).to_pylist() for name in ("trace_id", "attributes", "resource")), strict=True
    )
    for trace, own, resource in rows:
        own_values = {k: v for k, v in (own or []) if v is not None}
        resource_values = {k: v for k, v in (resource or []) if v is not None}
        for key in keys:
            value = own_values.get(key, resource_values.get(key))
            carriers = order.setdefault((key, value), []) if value is not None else None
            if carriers is not None and trace not in carriers:
                carriers.append(trace)
    return order


@pytest.mark.parametrize("seed", range(20))
def test_traces_come_in_the_order_their_spans_came(seed: int) -> None:
    """The sampler keeps the first traces carrying a new value: the order of the answer is part of it."""
    rng = random.Random(seed)
    spans = _spans(rng, rng.randint(1, 80))
    keys = rng.sample(KEYS, rng.randint(1, len(KEYS)))
    found = trace_attribute_values(spans, keys)
    carriers: dict[tuple[str, str], list[bytes]] = {}
    for trace, key, value in zip(
        *(found.column(n).to_pylist() for n in ("trace_id", "key", "value")), strict=True
    ):
        carriers.setdefault((key, value), []).append(trace)
    assert carriers == _first_carriers(spans, keys)
