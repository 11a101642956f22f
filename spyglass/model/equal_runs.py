"""Runs of equal rows: spans that arrived together repeat their resource and scope row after row, so keeping
(or converting) such a value once per run instead of once per span saves most of its cost. Used by the recall
buffer's chunks (origins kept once) and the DuckDB store's writes (resources converted once).

Rows are compared value by value (maps entry by entry, in order), so two rows are never put in one run unless
they are equal.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from spyglass.model.arrow_numpy import as_numpy, valid_mask
from spyglass.model.map_entries import own_entries


def equal_runs(columns: list[pa.Array]) -> tuple[np.ndarray, np.ndarray]:
    """Each row's run index (``int32``), and the first row of each run: a run is rows equal to the row before
    them in every one of ``columns`` (arrays of the same length)."""
    n = len(columns[0]) if columns else 0
    same = np.ones(max(0, n - 1), dtype=bool)
    for column in columns:
        if isinstance(column, pa.MapArray):
            same &= _same_maps(column)
        else:
            same &= _same_values(column)
    starts = np.ones(n, dtype=bool)
    starts[1:] = ~same
    return np.cumsum(starts, dtype=np.int32) - 1, np.flatnonzero(starts)


def run_starts(values: np.ndarray) -> npt.NDArray[np.intp]:
    """Where each run of equal adjacent values of a numpy array starts (the first value always does): one
    comparison pass. ``np.diff`` with ``prepend`` copied the array and subtracted, 15 times as slow."""
    change = np.empty(values.size, dtype=bool)
    if values.size:
        change[0] = True
        np.not_equal(values[1:], values[:-1], out=change[1:])
    return np.flatnonzero(change)


def _same_values(values: pa.Array) -> np.ndarray:
    """Whether each value after the first equals the one before it (two nulls are equal)."""
    if len(values) < 2 or values.null_count == len(values):
        return np.ones(max(0, len(values) - 1), dtype=bool)
    equal = pc.equal(values.slice(1), values.slice(0, len(values) - 1))
    same = _filled(equal)
    if values.null_count:
        valid = valid_mask(values)
        same |= ~valid[1:] & ~valid[:-1]
    return same


def _same_maps(maps: pa.MapArray) -> np.ndarray:
    """Whether each map after the first has the same entries, in the same order, as the one before it."""
    n = len(maps)
    if n < 2:
        return np.ones(max(0, n - 1), dtype=bool)
    bounds = np.frombuffer(maps.buffers()[1], np.int32, count=n + 1, offset=maps.offset * 4)
    counts = np.diff(bounds)
    valid = valid_mask(maps)
    same = (counts[1:] == counts[:-1]) & (valid[1:] == valid[:-1])
    first, last = int(bounds[0]), int(bounds[-1])
    if last == first:
        return np.asarray(same, dtype=bool)
    keys, items = own_entries(maps)
    row_of_entry = np.repeat(np.arange(n), counts)
    width = int(counts[0])
    if (counts == width).all():
        # Every map has as many entries: each entry is compared with the one ``width`` entries earlier.
        equal = _filled(pc.equal(keys.slice(width), keys.slice(0, len(keys) - width)))
        equal &= _same_at(items, width)
        rows = row_of_entry[width:]
    else:
        entries = np.flatnonzero(np.repeat(np.concatenate([[False], same]), counts))
        earlier = pa.array(entries - counts[row_of_entry[entries]])
        later = pa.array(entries)
        same_items = _filled(pc.equal(items.take(later), items.take(earlier)))
        if items.null_count:
            item_valid = valid_mask(items)
            same_items |= ~item_valid[entries] & ~item_valid[entries - counts[row_of_entry[entries]]]
        equal = _filled(pc.equal(keys.take(later), keys.take(earlier))) & same_items
        rows = row_of_entry[entries]
    mismatched = np.bincount(rows[~equal], minlength=n)
    return np.asarray(same & (mismatched[1:] == 0), dtype=bool)


def _same_at(values: pa.Array, shift: int) -> np.ndarray:
    """Whether each value from ``shift`` on equals the one ``shift`` earlier (two nulls are equal)."""
    equal = _filled(pc.equal(values.slice(shift), values.slice(0, len(values) - shift)))
    if values.null_count:
        valid = valid_mask(values)
        equal |= ~valid[shift:] & ~valid[:-shift]
    return equal


def _filled(mask: pa.Array) -> np.ndarray:
    """A boolean Arrow array as numpy, null as false."""
    if mask.null_count == 0:
        return as_numpy(mask, bool)
    return as_numpy(pc.fill_null(mask, False), bool)
