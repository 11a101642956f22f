"""Spans summed by the value of one attribute, a time step and a latency-sketch bin: what metrics grouped by an
attribute that is not rolled up are made of (``Store.attribute_cells``).

Reading every span of an hour with both attribute maps into Python to look one key up took 15-22 s at ten
million stored spans. The DuckDB store reads a key's codes from its slot column when it has one
(``attribute_slots``) and sums them here (``summed_cells``); otherwise it looks the key up and sums in SQL, so
only the sums leave it. Backends without that SQL, and the recall buffer, sum the same rows from spans in Arrow
(``attribute_cells_of``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from spyglass.model.arrow_numpy import as_numpy
from spyglass.model.schema import StatusCode
from spyglass.model.sketch import BIN_SQL, bucket_index
from spyglass.store.top_values import TopValues

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


def attribute_cells_of(
    spans: pa.Table, key: str, window_start_ns: int, step_ns: int | None, top: TopValues | None = None
) -> pa.Table:
    """``ATTRIBUTE_CELL_SCHEMA`` rows of ``spans`` (``CELL_SPAN_COLUMNS``) that carry ``key``, on the span or else
    on its resource; with ``top``, its values not kept summed as one (these spans the last part read, if ``top``
    has not chosen yet)."""
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
            "outcome": pa.array(
                bucket_index(as_numpy(spans.column("duration_ns"), np.int64)).astype(np.int32) * 2
                + (as_numpy(spans.column("status_code"), np.int64) == StatusCode.ERROR)
            ),
            "sample_weight": spans.column("sample_weight"),
        }
    )
    return summed_cells(coded, labels.dictionary, window_start_ns, step_ns, top)


def code_totals(
    batches: Iterable[pa.RecordBatch], values: int, weight: float | None
) -> npt.NDArray[np.float64]:
    """The summed weight of each of ``values`` codes in the batches' column ``code`` (their ``sample_weight``, or
    ``weight`` each): what choosing the busiest values needs before summing by bin (``TopValues``)."""
    totals = np.zeros(values)
    for batch in batches:
        weights = None if weight is not None else as_numpy(batch.column("sample_weight"), np.float64)
        totals += np.bincount(as_numpy(batch.column("code"), np.intp), weights, values)[:values]
    return totals * (weight if weight is not None else 1.0)


def read_with_totals(
    reader: pa.RecordBatchReader, values: int, weight: float | None
) -> tuple[pa.Table, npt.NDArray[np.float64]]:
    """The spans of ``reader`` (columns as ``summed_cells`` takes them) and ``code_totals`` of them, summed batch
    by batch while DuckDB makes the next: summing after the read took 15 ms more at ten million spans."""
    batches: list[pa.RecordBatch] = []

    def kept() -> Iterator[pa.RecordBatch]:
        for batch in reader:
            batches.append(batch)
            yield batch

    totals = code_totals(kept(), values, weight)
    return pa.Table.from_batches(batches, reader.schema), totals


#: Above this many (value, step, bin) cells, counting into a dense array would take more memory than sorting.
_DENSE_CELLS = 1 << 23


def summed_cells(
    spans: pa.Table,
    dictionary: pa.Array,
    window_start_ns: int,
    step_ns: int | None,
    top: TopValues | None = None,
    weight: float | None = None,
    totals: npt.NDArray[np.float64] | None = None,
) -> pa.Table:
    """``ATTRIBUTE_CELL_SCHEMA`` rows of spans given as columns ``code`` (of each one's value, into
    ``dictionary``), ``outcome`` (its latency-sketch bin times two, plus one if it failed), ``sample_weight`` (or
    ``weight`` for every span) and, with a step, ``start_ns``. With ``top``, values it does not keep are summed
    as one (these spans choosing, if it has not yet, as the last part read), from the codes' ``totals`` when they
    were summed as the spans were read (``read_with_totals``).

    Each span's cell number is computed batch by batch into one array: at ten million spans every whole-length
    temporary is tens of MB to fault in, and a query made six of them (half its time, and most of its spread).
    A span's value and outcome become its cell's number by two table lookups (values folded by ``top`` share a
    number; only the bins used are numbered when the range is wide), and cells are counted densely when they
    fit. Failures are cells of their own, so that no pass looks for them.
    """
    if spans.num_rows == 0:
        return ATTRIBUTE_CELL_SCHEMA.empty_table()
    low, high = (int(x.as_py()) >> 1 for x in pc.min_max(spans.column("outcome")).values())
    codes = int(pc.max(spans.column("code")).as_py()) + 1
    lightest, each = _weights(spans, weight)
    value_of = np.arange(codes, dtype=np.int64)
    if top is not None and top.needs_totals(codes):
        uniform = lightest if each is None else None
        by_code = code_totals(spans.to_batches(), codes, uniform) if totals is None else totals[:codes]
        kept = top.choose(dictionary.slice(0, codes), by_code)
        if kept is not None:
            value_of, dictionary = top.recode(dictionary.slice(0, codes), kept)
    values = int(value_of.max()) + 1
    origin, steps = window_start_ns, 1
    if step_ns is not None:
        first, last = (int(x.as_py()) for x in pc.min_max(spans.column("start_ns")).values())
        origin = first - first % step_ns
        steps = (last - origin) // step_ns + 1
    # A bin's number in its step: its offset from the lowest, or its rank among those used when the range is
    # too wide for a dense count (zero durations sit two thousand bins below a millisecond).
    bin_of = np.arange(high - low + 1, dtype=np.int64)
    bin_values = None
    if values * steps * len(bin_of) * 2 > _DENSE_CELLS:
        bin_values = np.unique(pc.unique(spans.column("outcome")).to_numpy().astype(np.int64) >> 1)
        bin_of[bin_values - low] = np.arange(len(bin_values))
    width = len(bin_of) if bin_values is None else len(bin_values)
    size = values * steps * width * 2
    # Without renumbered bins, an outcome is its cell's offset: added, not looked up.
    first_cell = value_of * (steps * width * 2) - (2 * low if bin_values is None else 0)
    # A table of int32 when cells fit: numpy's take from it is three times as fast as from int64 into ``out``.
    value_table = first_cell.astype(np.int32 if size + 4 * abs(low) < 2**31 else np.int64)
    outcome_table = None
    if bin_values is not None:
        # Read by the outcomes as they are, modulo the table's length (they may be negative).
        outcomes = np.arange(2 * low, 2 * high + 2, dtype=np.int64)
        outcome_table = np.empty_like(outcomes)
        outcome_table[outcomes % len(outcomes)] = bin_of[(outcomes >> 1) - low] * 2 + (outcomes & 1)
    dense = size <= _DENSE_CELLS
    cell = np.empty(spans.num_rows, np.int64)

    at = 0
    for batch in spans.to_batches():
        out = cell[at : at + batch.num_rows]
        out[:] = np.take(value_table, as_numpy(batch.column("code"), np.intp))
        outcome = as_numpy(batch.column("outcome"), np.int32)
        out += outcome if outcome_table is None else np.take(outcome_table, outcome, mode="wrap")
        if step_ns is not None:
            out += (as_numpy(batch.column("start_ns"), np.int64) - origin) // step_ns * (width * 2)
        at += batch.num_rows
    if dense:
        pairs = (
            np.bincount(cell, minlength=size) if each is None else np.bincount(cell, each, size)
        ).reshape(-1, 2)
        both = pairs[:, 0] + pairs[:, 1]  # numpy's sum along a short axis took three times as long
        distinct = np.flatnonzero(both)
        summed, errors = both[distinct], pairs[distinct, 1]
    else:
        outcome_cells, cell_of = np.unique(cell, return_inverse=True)
        sums = np.bincount(cell_of.reshape(-1), weights=each, minlength=len(outcome_cells))
        whole = outcome_cells >> 1
        starts = np.flatnonzero(np.concatenate([[True], whole[1:] != whole[:-1]]))
        distinct = whole[starts]
        summed = np.add.reduceat(sums, starts)
        errors = np.add.reduceat(sums * (outcome_cells & 1), starts)
    scale = lightest if each is None else 1.0
    value_code, rest = np.divmod(distinct, steps * width)
    step_index, bin_offset = np.divmod(rest, width)
    return pa.table(
        {
            "value": pa.DictionaryArray.from_arrays(pa.array(value_code.astype(np.int32)), dictionary),
            "start_ns": pa.array(origin + step_index * (step_ns or 0)),
            "bin": pa.array(
                (bin_offset + low if bin_values is None else bin_values[bin_offset]).astype(np.int16)
            ),
            "weight": pa.array(np.asarray(summed * scale, np.float64)),
            "error_weight": pa.array(np.asarray(errors * scale, np.float64)),
        },
        schema=ATTRIBUTE_CELL_SCHEMA,
    )


def _weights(spans: pa.Table, weight: float | None) -> tuple[float, npt.NDArray[np.float64] | None]:
    """The least weight, and every span's when they differ. Most stores keep every span with one weight: then
    spans are counted, not summed (a third faster)."""
    if weight is not None:
        return weight, None
    weights = spans.column("sample_weight")
    # numpy's min and max over each chunk: Arrow's min_max of doubles took 39 ms at ten million.
    chunks = [as_numpy(chunk, np.float64) for chunk in weights.chunks if len(chunk)]
    lightest, heaviest = min(float(c.min()) for c in chunks), max(float(c.max()) for c in chunks)
    return lightest, None if lightest == heaviest else as_numpy(weights, np.float64)
