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
    coded = pa.table(
        {
            "code": labels.indices,
            "start_ns": spans.column("start_ns"),
            "bin": pa.array(bucket_index(as_numpy(spans.column("duration_ns"), np.int64))),
            "sample_weight": spans.column("sample_weight"),
            "failed": pc.equal(spans.column("status_code"), StatusCode.ERROR),
        }
    )
    return summed_cells(coded, labels.dictionary, window_start_ns, step_ns)


#: Above this many (value, step, bin) cells, counting into a dense array would take more memory than sorting.
_DENSE_CELLS = 1 << 23


def summed_cells(
    spans: pa.Table, dictionary: pa.Array, window_start_ns: int, step_ns: int | None
) -> pa.Table:
    """``ATTRIBUTE_CELL_SCHEMA`` rows of spans given as columns ``code`` (of each one's value, into
    ``dictionary``), ``bin``, ``sample_weight``, ``failed`` and, with a step, ``start_ns``.

    Each span's cell number is computed batch by batch into one array: at ten million spans every whole-length
    temporary is tens of MB to fault in, and a query made six of them (half its time, and most of its spread).
    """
    if spans.num_rows == 0:
        return ATTRIBUTE_CELL_SCHEMA.empty_table()
    low, high = (int(x.as_py()) for x in pc.min_max(spans.column("bin")).values())
    values = int(pc.max(spans.column("code")).as_py()) + 1
    origin, steps = window_start_ns, 1
    if step_ns is not None:
        first, last = (int(x.as_py()) for x in pc.min_max(spans.column("start_ns")).values())
        origin = first - first % step_ns
        steps = (last - origin) // step_ns + 1
    width = high - low + 1
    bin_values, rank = None, None
    if values * steps * width > _DENSE_CELLS:
        # Bins used are far fewer than the range (zero durations sit two thousand bins below a millisecond):
        # number those used, so that the cells fit a dense count.
        bin_values = np.sort(pc.unique(spans.column("bin")).to_numpy().astype(np.int64))
        rank = np.zeros(width, np.int64)
        rank[bin_values - low] = np.arange(len(bin_values))
        width = len(bin_values)
    cell = np.empty(spans.num_rows, np.int64)
    failed: list[npt.NDArray[np.int64]] = []
    at = 0
    for batch in spans.to_batches():
        rows = batch.num_rows
        out = cell[at : at + rows]
        bins = as_numpy(batch.column("bin"), np.int64) - low
        np.multiply(as_numpy(batch.column("code"), np.int64), steps * width, out=out)
        if step_ns is not None:
            out += (as_numpy(batch.column("start_ns"), np.int64) - origin) // step_ns * width
        out += bins if rank is None else rank[bins]
        failed.append(np.flatnonzero(as_numpy(batch.column("failed"), np.bool_)) + at)
        at += rows
    size = values * steps * width
    weights = spans.column("sample_weight")
    # numpy's min and max over each chunk: Arrow's min_max of doubles took 39 ms at ten million.
    chunks = [as_numpy(chunk, np.float64) for chunk in weights.chunks if len(chunk)]
    lightest, heaviest = min(float(c.min()) for c in chunks), max(float(c.max()) for c in chunks)
    # Most stores keep every span with one weight: then spans are counted, not summed (a third faster).
    each = None if lightest == heaviest else as_numpy(weights, np.float64)
    if size <= _DENSE_CELLS:
        counted = np.bincount(cell, minlength=size)
        distinct = np.flatnonzero(counted)
        summed = counted[distinct] * lightest if each is None else np.bincount(cell, each, size)[distinct]
    else:
        distinct, cell_of = np.unique(cell, return_inverse=True)
        summed = np.bincount(cell_of.reshape(-1), weights=each, minlength=len(distinct)) * (
            lightest if each is None else 1.0
        )
    # Failures are few: their cells are found among the distinct ones, not counted over the whole range.
    failing = np.concatenate(failed)
    failed_cells, failed_of = np.unique(cell[failing], return_inverse=True)
    errors = np.zeros(len(distinct))
    failed_weights = np.full(len(failing), lightest) if each is None else each[failing]
    errors[np.searchsorted(distinct, failed_cells)] = np.bincount(failed_of.reshape(-1), failed_weights)
    value_code, rest = np.divmod(distinct, steps * width)
    step_index, bin_offset = np.divmod(rest, width)
    return pa.table(
        {
            "value": pa.DictionaryArray.from_arrays(pa.array(value_code.astype(np.int32)), dictionary),
            "start_ns": pa.array(origin + step_index * (step_ns or 0)),
            "bin": pa.array(
                (bin_offset + low if bin_values is None else bin_values[bin_offset]).astype(np.int16)
            ),
            "weight": pa.array(summed.astype(np.float64, copy=False)),
            "error_weight": pa.array(errors),
        },
        schema=ATTRIBUTE_CELL_SCHEMA,
    )
