"""``as_schema``: a backend's query result as exactly the promised schema, casting only what differs."""

from __future__ import annotations

import pyarrow as pa
import pytest

from spyglass.store.span_predicates import as_schema

SCHEMA = pa.schema(
    [
        pa.field("trace_id", pa.binary(16), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("attributes", pa.map_(pa.string(), pa.string())),
        pa.field("links", pa.list_(pa.struct([pa.field("span_id", pa.binary(8))]))),
    ]
)


def backend_result(names: list[str | None]) -> pa.Table:
    """As DuckDB hands it over: variable binary ids, its own list item name, columns in another order."""
    n = len(names)
    return pa.table(
        {
            "links": pa.array(
                [[{"span_id": b"\x01" * 8}]] * n,
                pa.list_(pa.field("l", pa.struct([("span_id", pa.binary())]))),
            ),
            "name": pa.array(names, pa.string()),
            "trace_id": pa.array([b"\x02" * 16] * n, pa.binary()),
            "attributes": pa.array([[("k", "v")]] * n, pa.map_(pa.string(), pa.string())),
        }
    )


def test_a_result_becomes_the_schema_with_the_values_it_had() -> None:
    result = backend_result(["a", "b"])
    table = as_schema(result, SCHEMA)
    assert table.schema.equals(SCHEMA)
    assert table.to_pylist() == result.select(SCHEMA.names).cast(SCHEMA).to_pylist()
    assert table.column("links").to_pylist() == [[{"span_id": b"\x01" * 8}]] * 2


def test_a_table_already_of_the_schema_is_returned_as_it_is() -> None:
    table = as_schema(backend_result(["a"]), SCHEMA)
    assert as_schema(table, SCHEMA) is table


def test_a_null_in_a_column_the_schema_says_is_never_null_is_refused() -> None:
    with pytest.raises(ValueError, match="name"):
        as_schema(backend_result(["a", None]), SCHEMA)
