"""Spans summed by the value of one attribute, a time step and a latency-sketch bin: what metrics grouped by an
attribute that is not rolled up are made of (``Store.attribute_cells``).

Reading every span of an hour with both attribute maps into Python to look one key up took 15-22 s at ten
million stored spans; the DuckDB store looks the key up and sums in SQL, so only the sums (a few hundred
thousand rows at most) leave it. Backends without that SQL, and the recall buffer, sum the same rows from spans
in Arrow (``attribute_cells_of``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from spyglass.model.arrow_numpy import as_numpy
from spyglass.model.schema import StatusCode
from spyglass.model.sketch import BIN_SQL, bucket_index

#: One row per value, step and bin: the spans' summed weights (the unsampled spans they stand for) and the
#: summed weights of those that failed. ``start_ns`` is the step's start (steps are aligned to the epoch), or the
#: window's start when the read asked for no steps.
ATTRIBUTE_CELL_SCHEMA = pa.schema(
    [
        pa.field("value", pa.string(), nullable=False),
        pa.field("start_ns", pa.int64(), nullable=False),
        pa.field("bin", pa.int16(), nullable=False),
        pa.field("weight", pa.float64(), nullable=False),
        pa.field("error_weight", pa.float64(), nullable=False),
    ]
)

#: The span columns ``attribute_cells_of`` reads.
CELL_SPAN_COLUMNS = ["attributes", "resource", "start_ns", "duration_ns", "status_code", "sample_weight"]


def attribute_cells_sql(conditions: list[str], step_ns: int | None) -> str:
    """DuckDB SQL of the ``ATTRIBUTE_CELL_SCHEMA`` rows of the stored spans meeting ``conditions``. Its
    parameters, in order: the key twice, the step (``step_ns``, or the window's start when None), then those of
    ``conditions``."""
    step = "start_ns - start_ns % ?" if step_ns is not None else "?::BIGINT"
    # Fixed fragments only: the key, the step and every value of the conditions are parameters.
    return (
        "SELECT value, step AS start_ns, bin, sum(sample_weight)::DOUBLE AS weight, "  # noqa: S608
        "coalesce(sum(sample_weight) FILTER (WHERE status_code = 2), 0)::DOUBLE AS error_weight "
        f"FROM (SELECT coalesce(attributes[?], resource[?]) AS value, {step} AS step, {BIN_SQL} AS bin, "
        f"sample_weight, status_code FROM spans WHERE {' AND '.join(conditions)}) "
        "WHERE value IS NOT NULL GROUP BY value, step, bin"
    )


def step_starts(
    start_ns: npt.NDArray[np.int64], window_start_ns: int, step_ns: int | None
) -> npt.NDArray[np.int64]:
    """Each span's step start, as ``ATTRIBUTE_CELL_SCHEMA`` keeps it."""
    if step_ns is None:
        return np.full(len(start_ns), window_start_ns, dtype=np.int64)
    return start_ns - start_ns % step_ns


def attribute_cells_of(spans: pa.Table, key: str, window_start_ns: int, step_ns: int | None) -> pa.Table:
    """``ATTRIBUTE_CELL_SCHEMA`` rows of ``spans`` (``CELL_SPAN_COLUMNS``) that carry ``key``, on the span or else
    on its resource."""
    values = pc.coalesce(
        pc.map_lookup(spans.column("attributes"), pa.scalar(key), "first"),
        pc.map_lookup(spans.column("resource"), pa.scalar(key), "first"),
    )
    carried = pc.is_valid(values)
    spans = spans.filter(carried)
    if spans.num_rows == 0:
        return ATTRIBUTE_CELL_SCHEMA.empty_table()
    labels = pc.filter(values, carried).combine_chunks().dictionary_encode()
    starts = step_starts(as_numpy(spans.column("start_ns"), np.int64), window_start_ns, step_ns)
    bins = bucket_index(as_numpy(spans.column("duration_ns"), np.int64)).astype(np.int64)
    weights = as_numpy(spans.column("sample_weight"), np.float64)
    failed = as_numpy(spans.column("status_code"), np.int64) == StatusCode.ERROR
    # One row per distinct (value, step, bin): group numbers from the value's code, the step's and the bin's.
    codes = as_numpy(labels.indices, np.int64)
    step_ids, step_of = np.unique(starts, return_inverse=True)
    low = int(bins.min())
    width = int(bins.max()) - low + 1
    cell = (codes * len(step_ids) + step_of.reshape(-1)) * width + (bins - low)
    distinct, cell_of = np.unique(cell, return_inverse=True)
    cell_of = cell_of.reshape(-1)
    summed = np.bincount(cell_of, weights=weights, minlength=len(distinct))
    errors = np.bincount(cell_of, weights=np.where(failed, weights, 0.0), minlength=len(distinct))
    value_code, rest = np.divmod(distinct, len(step_ids) * width)
    step_index, bin_offset = np.divmod(rest, width)
    return pa.table(
        {
            "value": labels.dictionary.take(pa.array(value_code)),
            "start_ns": pa.array(step_ids[step_index]),
            "bin": pa.array((bin_offset + low).astype(np.int16)),
            "weight": pa.array(summed),
            "error_weight": pa.array(errors),
        },
        schema=ATTRIBUTE_CELL_SCHEMA,
    )
