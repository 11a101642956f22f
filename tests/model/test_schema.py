"""The span schema's shared filters: kinds by name (``internal`` takes spans that name none) and the filter of a
window read over spans held in memory."""

from __future__ import annotations

import pyarrow as pa

from spyglass.model.schema import KIND_CODES, SpanKind, in_window, of_kinds


def spans() -> pa.Table:
    return pa.table(
        {
            "start_ns": pa.array([10, 20, 30, 40, 50], pa.int64()),
            "service": ["a", "a", "b", "a", "a"],
            "name": ["GET", "POST", "GET", "GET", "GET"],
            "kind": pa.array([2, 3, 2, 0, 1], pa.int8()),
        }
    )


def test_the_window_is_half_open_and_each_unset_filter_takes_any() -> None:
    assert in_window(spans(), 20, 50).to_pylist() == [False, True, True, True, False]
    assert in_window(spans(), 0, 100, service="a").to_pylist() == [True, True, False, True, True]
    assert in_window(spans(), 0, 100, service="a", operation="GET").to_pylist() == [
        True,
        False,
        False,
        True,
        True,
    ]
    internal = KIND_CODES["internal"]
    assert in_window(spans(), 0, 100, kinds=internal).to_pylist() == [False, False, False, True, True]
    assert in_window(spans(), 0, 100, "a", "GET", (int(SpanKind.SERVER),)).to_pylist() == [
        True,
        False,
        False,
        False,
        False,
    ]


def test_of_kinds_reads_rollup_and_span_kind_columns_alike() -> None:
    assert of_kinds(pa.array([1, 2, 3], pa.int8()), (2, 3)).to_pylist() == [False, True, True]
    assert of_kinds(pa.chunked_array([[0], [1]], pa.int8()), (0, 1)).to_pylist() == [True, True]
