"""The entries of a map column (span attributes, resources) whose key is one of a few: found in the map's flat key
column with one hash lookup, each entry's row read from the offsets. Looking each key up in every row's map
(``map_lookup``) is a pass over all entries per key; the aggregator, the sampler and the debug-flag check each
want several keys at once."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from spyglass.model.arrow_numpy import valid_mask

__all__ = ["MapEntries", "carried_entries", "map_entries", "own_entries"]

#: (row of each entry, index of its key in the keys asked for, its value): entries with a null value left out.
MapEntries = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], pa.Array]


def own_entries(maps: pa.MapArray) -> tuple[pa.Array, pa.Array]:
    """The keys and the items of the entries of ``maps`` itself: a slice's ``keys`` and ``items`` are its whole
    parent's (reading them whole made a write's key scan read every earlier write of its batch)."""
    bounds = maps.offsets
    first, last = bounds[0].as_py(), bounds[-1].as_py()
    return maps.keys.slice(first, last - first), maps.items.slice(first, last - first)


def map_entries(maps: pa.Array | pa.ChunkedArray, keys: pa.Array) -> MapEntries:
    """Every entry of ``maps`` whose key is in ``keys`` and whose value is not null, in row order (and map order
    within a row)."""
    if isinstance(maps, pa.ChunkedArray):
        maps = maps.combine_chunks()
    bounds = maps.offsets.to_numpy()
    first, last = int(bounds[0]), int(bounds[-1])
    if last == first:
        return np.empty(0, np.int64), np.empty(0, np.int64), pa.array([], maps.type.item_type)
    entry_keys, entry_values = own_entries(maps)
    key_index = pc.index_in(entry_keys, value_set=keys)
    wanted = valid_mask(key_index)
    if entry_values.null_count:
        wanted &= valid_mask(entry_values)
    rows = np.repeat(np.arange(len(maps), dtype=np.int64), np.diff(bounds))
    found = np.frombuffer(key_index.buffers()[1], np.int32, count=len(key_index), offset=key_index.offset * 4)
    if wanted.all():
        return rows, found.astype(np.int64), entry_values
    return rows[wanted], found[wanted].astype(np.int64), entry_values.filter(pa.array(wanted))


def carried_entries(spans: pa.Table | pa.RecordBatch, keys: pa.Array) -> MapEntries:
    """The values of ``keys`` each span carries: its own attribute, else its resource's (a resource value stands
    only for a key the span has no value of its own for); the span's own entries first, then the resource's."""
    own = map_entries(spans.column("attributes"), keys)
    resource = map_entries(spans.column("resource"), keys)
    if resource[0].size and own[0].size:
        width = len(keys)
        has_own = np.zeros(spans.num_rows * width, dtype=bool)
        has_own[own[0] * width + own[1]] = True
        inherited = ~has_own[resource[0] * width + resource[1]]
        if not inherited.all():
            resource = resource[0][inherited], resource[1][inherited], resource[2].filter(pa.array(inherited))
    return (
        np.concatenate([own[0], resource[0]]),
        np.concatenate([own[1], resource[1]]),
        pa.concat_arrays([own[2], resource[2]]),
    )
