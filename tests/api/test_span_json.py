"""Distinct spans: each span once, by start then id, whether worked out in Python (a few spans) or in Arrow."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from spyglass.api import span_json
from spyglass.api.span_json import distinct_spans
from spyglass.model import span_order
from tests.support.spans import trace_batch


def _shuffled_with_repeats(seed: int) -> pa.Table:
    """A trace's spans out of order, some sent twice, some sharing an id (client and server halves), some
    starting at the same instant."""
    rng = random.Random(seed)
    batch, _ = trace_batch(1, spans_per_trace=rng.randint(1, 40))
    table = pa.Table.from_batches([batch])
    rows = list(range(table.num_rows))
    rows += [rng.randrange(table.num_rows) for _ in range(rng.randint(0, 10))]  # retried exports
    rng.shuffle(rows)
    table = table.take(pa.array(rows))
    if rng.random() < 0.5:  # equal starts, and one id on two kinds
        starts = [table.column("start_ns")[0].as_py()] * table.num_rows
        table = table.set_column(
            table.schema.get_field_index("start_ns"), "start_ns", pa.array(starts, pa.int64())
        )
        kinds = [rng.choice([2, 3]) for _ in range(table.num_rows)]
        table = table.set_column(table.schema.get_field_index("kind"), "kind", pa.array(kinds, pa.int8()))
    return table


@pytest.mark.parametrize("seed", range(40))
def test_few_spans_in_python_equal_the_arrow_path(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    table = _shuffled_with_repeats(seed)
    few = distinct_spans(table)
    keys = [(r["start_ns"], r["span_id"], r["service"], r["kind"]) for r in few.to_pylist()]
    assert len(keys) == len(set(keys))  # each span once
    assert set(keys) == {(r["start_ns"], r["span_id"], r["service"], r["kind"]) for r in table.to_pylist()}
    assert keys == sorted(keys, key=lambda key: key[:2])  # by start, then id
    monkeypatch.setattr(span_json, "FEW_SPANS", 0)  # Arrow's de-duplication
    monkeypatch.setattr(span_order, "FEW_SPANS", 0)  # and Arrow's sort
    assert few.to_pylist() == distinct_spans(table).to_pylist()


def test_an_ordered_distinct_trace_is_returned_as_it_is() -> None:
    batch, _ = trace_batch(1, spans_per_trace=5)
    table = pa.Table.from_batches([batch])
    assert distinct_spans(table) is table
