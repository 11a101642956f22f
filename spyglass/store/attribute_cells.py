"""Spans summed by the value of one attribute, a time step and a latency-sketch bin: what metrics grouped by an
attribute that is not rolled up are made of (``Store.attribute_cells``).

Reading every span of an hour with both attribute maps into Python to look one key up took 15-22 s at ten
million stored spans. The DuckDB store reads a key's codes from its slot column when it has one
(``attribute_slots``) and sums them here (``summed_cells``); otherwise it looks the key up and sums in SQL, so
only the sums leave it. Backends without that SQL, and the recall buffer, sum the same rows from spans in Arrow
(``attribute_cells_of``).
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
#: summed weights of those that failed. ``value`` is dictionary-encoded (a slot's codes index its values);
#: ``start_ns`` is the step's start (steps are aligned to the epoch), or the window's start when the read asked
#: for no steps.
ATTRIBUTE_CELL_SCHEMA = pa.schema(
    [
        pa.field("value", pa.dictionary(pa.int32(), pa.string()), nullable=False),
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
    starts = as_numpy(spans.column("start_ns"), np.int64)
    return summed_cells(
        as_numpy(labels.indices, np.int64),
        labels.dictionary,
        starts - starts % step_ns if step_ns is not None else None,
        window_start_ns,
        bucket_index(as_numpy(spans.column("duration_ns"), np.int64)),
        as_numpy(spans.column("sample_weight"), np.float64),
        as_numpy(spans.column("status_code"), np.int64) == StatusCode.ERROR,
    )


#: Above this many (value, step, bin) cells, counting into a dense array would take more memory than sorting.
_DENSE_CELLS = 1 << 23


def summed_cells(
    codes: npt.NDArray[np.int64],
    dictionary: pa.Array,
    step_starts: npt.NDArray[np.int64] | None,
    window_start_ns: int,
    bins: npt.NDArray[np.int16],
    weights: npt.NDArray[np.float64],
    failed: npt.NDArray[np.bool_],
) -> pa.Table:
    """``ATTRIBUTE_CELL_SCHEMA`` rows of spans given as each one's value (a code into ``dictionary``), step start
    (None: all in the window's one step), bin, weight and whether it failed."""
    if len(codes) == 0:
        return ATTRIBUTE_CELL_SCHEMA.empty_table()
    if step_starts is None:
        step_ids, step_of = np.array([window_start_ns], np.int64), np.zeros(len(codes), np.int64)
    else:
        step_ids, step_of = np.unique(step_starts, return_inverse=True)
        step_of = step_of.reshape(-1)
    wide_bins = bins.astype(np.int64)
    low = int(wide_bins.min())
    width = int(wide_bins.max()) - low + 1
    value_count = int(codes.max()) + 1
    cell = (codes * len(step_ids) + step_of) * width + (wide_bins - low)
    size = value_count * len(step_ids) * width
    # Most stores keep every span with one weight: counting without weights is a third faster.
    same_weight = bool(weights.size) and bool((weights == weights[0]).all())
    if size <= _DENSE_CELLS:
        counted = np.bincount(cell, minlength=size)
        summed = counted * weights[0] if same_weight else np.bincount(cell, weights, minlength=size)
        errors = np.bincount(cell[failed], weights[failed], minlength=size)
        distinct = np.flatnonzero(counted)
        summed, errors = summed[distinct], errors[distinct]
    else:
        distinct, cell_of = np.unique(cell, return_inverse=True)
        cell_of = cell_of.reshape(-1)
        summed = np.bincount(cell_of, weights=weights, minlength=len(distinct))
        errors = np.bincount(cell_of[failed], weights=weights[failed], minlength=len(distinct))
    value_code, rest = np.divmod(distinct, len(step_ids) * width)
    step_index, bin_offset = np.divmod(rest, width)
    return pa.table(
        {
            "value": pa.DictionaryArray.from_arrays(pa.array(value_code.astype(np.int32)), dictionary),
            "start_ns": pa.array(step_ids[step_index]),
            "bin": pa.array((bin_offset + low).astype(np.int16)),
            "weight": pa.array(summed.astype(np.float64, copy=False)),
            "error_weight": pa.array(errors),
        },
        schema=ATTRIBUTE_CELL_SCHEMA,
    )
