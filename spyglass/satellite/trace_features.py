"""One row per trace, computed from its spans in one columnar pass: what the sampler decides on.

Features: the root (the span without a parent, else the earliest), the trace's duration, whether it failed and
the signature of the error where it originates (the latest-starting error span, with numbers in its message
folded so ``timeout after 31ms`` and ``timeout after 47ms`` are one signature), and its *shape* (a hash of the
distinct service/operation pairs it touched).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from spyglass.model.arrow_sql import query_arrow

FEATURE_COLUMNS = [
    "trace_id",
    "parent_span_id",
    "service",
    "name",
    "start_ns",
    "duration_ns",
    "status_code",
    "status_message",
]

_FEATURES_SQL = """
SELECT trace_id,
       count(*) AS span_count,
       arg_min(service, (parent_span_id IS NOT NULL)::BIGINT * 4611686018427387904 + start_ns) AS root_service,
       arg_min(name, (parent_span_id IS NOT NULL)::BIGINT * 4611686018427387904 + start_ns) AS root_operation,
       max(start_ns + duration_ns) - min(start_ns) AS duration_ns,
       bool_or(status_code = 2) AS has_error,
       arg_max(service || ' ' || name || ': ' || regexp_replace(coalesce(left(status_message, 80), ''),
                                                                '[0-9]+', '#', 'g'),
               start_ns) FILTER (WHERE status_code = 2) AS error_signature,
       hash(list_sort(list_distinct(list(service || chr(31) || name)))) AS shape
FROM spans GROUP BY trace_id
ORDER BY min(start_ns), trace_id
"""


def trace_features(spans: pa.Table) -> pa.Table:
    """Per-trace features of a table of whole traces (``SPAN_SCHEMA`` columns)."""
    return query_arrow(_FEATURES_SQL, spans=spans.select(FEATURE_COLUMNS))


def trace_attribute_values(spans: pa.Table, keys: list[str]) -> pa.Table:
    """Distinct ``(trace_id, key, value)`` for the given attribute keys, a span's own attribute first, else its
    resource's. Read from the maps' flat key and value columns in one pass each: SQL
    looking every key up in every span's two maps was a sixth of the server's CPU at 5% sampling."""
    wanted = pa.array(keys, pa.string())
    own_rows, own_keys, own_values = _entries(spans.column("attributes"), wanted)
    res_rows, res_keys, res_values = _entries(spans.column("resource"), wanted)
    # A resource value stands only for a key the span has no value of its own for.
    inherited = ~np.isin(res_rows * len(keys) + res_keys, own_rows * len(keys) + own_keys)
    rows = np.concatenate([own_rows, res_rows[inherited]])
    key_codes = np.concatenate([own_keys, res_keys[inherited]])
    values = pa.concat_arrays([own_values, res_values.filter(pa.array(inherited))])
    order = np.argsort(rows, kind="stable")
    found = pa.table(
        {
            "trace_id": spans.column("trace_id").take(pa.array(rows[order])),
            "key": wanted.take(pa.array(key_codes[order])),
            "value": values.take(pa.array(order)),
        }
    )
    distinct = found.group_by(["trace_id", "key", "value"], use_threads=False).aggregate([])
    return distinct.select(["trace_id", "key", "value"])


def _entries(
    maps: pa.ChunkedArray | pa.Array, wanted: pa.Array
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], pa.Array]:
    """The entries of ``maps`` whose key is one of ``wanted`` and whose value is not null: their row, their
    key's position in ``wanted``, their value."""
    column = maps.combine_chunks() if isinstance(maps, pa.ChunkedArray) else maps
    offsets = column.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
    first, last = int(offsets[0]), int(offsets[-1])
    keys = column.keys.slice(first, last - first)
    items = column.items.slice(first, last - first)
    rows = np.repeat(np.arange(len(column), dtype=np.int64), np.diff(offsets))
    codes = pc.index_in(keys, value_set=wanted)
    chosen = pc.and_(pc.is_valid(codes), pc.is_valid(items))
    chosen_np = chosen.to_numpy(zero_copy_only=False)
    return (
        rows[chosen_np],
        codes.filter(chosen).to_numpy(zero_copy_only=False).astype(np.int64),
        items.filter(chosen),
    )
