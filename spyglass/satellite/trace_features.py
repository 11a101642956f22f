"""One row per trace, computed from its spans in one columnar pass: what the sampler decides on.

Features: the root (the span without a parent, else the earliest), the trace's duration, whether it failed and
the signature of the error where it originates (the latest-starting error span, with numbers in its message
folded so ``timeout after 31ms`` and ``timeout after 47ms`` are one signature), and its *shape* (a hash of the
distinct service/operation pairs it touched).

Computed with numpy and Arrow kernels rather than SQL: a DuckDB group-by was the largest single cost of the
server's decision thread. Strings are built only for the few error signatures and distinct pairs.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from spyglass.model.arrow_numpy import as_numpy, valid_mask
from spyglass.model.map_entries import carried_entries
from spyglass.model.shared_spans import mix_words

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

FEATURES_SCHEMA = pa.schema(
    [
        pa.field("trace_id", pa.binary()),
        pa.field("span_count", pa.int64()),
        pa.field("root_service", pa.string()),
        pa.field("root_operation", pa.string()),
        pa.field("duration_ns", pa.int64()),
        pa.field("has_error", pa.bool_()),
        pa.field("error_signature", pa.string()),
        pa.field("shape", pa.uint64()),
    ]
)

_SIGNATURE_MESSAGE_CHARS = 80
_PARENT_WEIGHT = 1 << 62  # a span with a parent ranks after every root, as in the SQL this replaced


def trace_features(spans: pa.Table) -> pa.Table:
    """Per-trace features of a table of whole traces (``SPAN_SCHEMA`` columns), ``FEATURES_SCHEMA`` rows in order
    of the traces' first start, then trace id. A null service or name counts as absent: the root's service is
    that of the first root-ordered span having one, and a null pair is no part of the shape."""
    if spans.num_rows == 0:
        return FEATURES_SCHEMA.empty_table()
    ids = spans.column("trace_id").combine_chunks().dictionary_encode()
    trace = ids.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    traces = len(ids.dictionary)
    service = spans.column("service").combine_chunks()
    name = spans.column("name").combine_chunks()
    start = spans.column("start_ns").to_numpy()
    end = start + spans.column("duration_ns").to_numpy()
    has_parent = pc.is_valid(spans.column("parent_span_id")).to_numpy(zero_copy_only=False)
    error = spans.column("status_code").to_numpy() == 2

    # Spans grouped by trace, each trace's roots first, earliest first: the root heads its trace's run. Two
    # unstable sorts of one key each (the second by trace, then rank in the first) cost a third of a lexsort.
    by_root_key = np.argsort(has_parent.astype(np.int64) * _PARENT_WEIGHT + start)
    rank = np.empty(len(trace), dtype=np.int64)
    rank[by_root_key] = np.arange(len(trace))
    order = np.argsort(trace * len(trace) + rank)
    counts = np.bincount(trace, minlength=traces)
    first = np.cumsum(counts) - counts
    first_start = np.minimum.reduceat(start[order], first)
    duration = np.maximum.reduceat(end[order], first) - first_start
    has_error = np.zeros(traces, dtype=bool)
    has_error[trace[error]] = True

    # The error signature is built only for each failed trace's latest-starting error span.
    service_ok, name_ok = valid_mask(service), valid_mask(name)
    signed = np.flatnonzero(error & service_ok & name_ok)
    by_start = signed[np.lexsort((start[signed], trace[signed]))]
    last = np.ones(len(by_start), dtype=bool)
    last[:-1] = trace[by_start][1:] != trace[by_start][:-1]
    latest = by_start[last]
    signature_rows = np.full(traces, -1, dtype=np.int64)
    signature_rows[trace[latest]] = np.arange(len(latest))
    rows = pa.array(latest)
    message = pc.utf8_slice_codeunits(
        spans.column("status_message").combine_chunks().take(rows), 0, _SIGNATURE_MESSAGE_CHARS
    )
    signatures = pc.binary_join_element_wise(
        service.take(rows),
        " ",
        name.take(rows),
        ": ",
        pc.replace_substring_regex(pc.fill_null(message, ""), "[0-9]+", "#"),
        "",
    )

    ranked = pc.sort_indices(
        pa.table({"start": first_start, "trace_id": ids.dictionary}),
        sort_keys=[("start", "ascending"), ("trace_id", "ascending")],
    ).to_numpy()
    return pa.table(
        [
            ids.dictionary.take(pa.array(ranked)).cast(pa.binary()),
            pa.array(counts[ranked].astype(np.int64)),
            service.take(_first_valid(order, first, counts, service_ok, ranked)),
            name.take(_first_valid(order, first, counts, name_ok, ranked)),
            pa.array(duration[ranked]),
            pa.array(has_error[ranked]),
            signatures.take(_nullable_index(signature_rows[ranked])),
            pa.array(_shapes(trace, traces, service, name, service_ok & name_ok)[ranked]),
        ],
        schema=FEATURES_SCHEMA,
    )


def _nullable_index(rows: npt.NDArray[np.int64]) -> pa.Array:
    """``rows`` as take indices, -1 standing for null."""
    return pa.array(rows, mask=rows < 0)


def _first_valid(
    order: npt.NDArray[np.int64],
    first: npt.NDArray[np.int64],
    counts: npt.NDArray[np.int64],
    valid: npt.NDArray[np.bool_],
    ranked: npt.NDArray[np.int64],
) -> pa.Array:
    """Per trace (in ``ranked`` order), the first span in ``order`` whose value is valid, or null: SQL's
    ``arg_min`` passes over null values."""
    if valid.all():
        return pa.array(order[first[ranked]])
    position = np.where(valid[order], np.arange(len(order)), len(order))
    chosen = np.minimum.reduceat(position, first)
    found = chosen < first + counts
    rows = np.where(found, order[np.minimum(chosen, len(order) - 1)], -1)
    return _nullable_index(rows[ranked])


def _shapes(
    trace: npt.NDArray[np.int64],
    traces: int,
    service: pa.Array,
    name: pa.Array,
    valid: npt.NDArray[np.bool_],
) -> npt.NDArray[np.uint64]:
    """Per trace, the sum (mod 2**64) of a mixed hash of each distinct (service, name) pair it has: depends on
    the set of pairs only, and is equal for equal sets within one process (Python's string hashes are salted
    per process). Only the call's distinct pairs are hashed in Python."""
    services = service.dictionary_encode()
    names = name.dictionary_encode()
    width = len(names.dictionary)
    codes = (
        pc.fill_null(services.indices, 0).to_numpy().astype(np.int64) * width
        + pc.fill_null(names.indices, 0).to_numpy()
    )[valid]
    pairs = pa.array(codes).dictionary_encode()
    distinct = pairs.dictionary.to_numpy()
    pair_hash = mix_words(
        np.array(
            [
                hash(pair)
                for pair in zip(
                    services.dictionary.take(pa.array(distinct // max(width, 1))).to_pylist(),
                    names.dictionary.take(pa.array(distinct % max(width, 1))).to_pylist(),
                    strict=True,
                )
            ],
            dtype=np.int64,
        ).view(np.uint64)
    )
    # Each (trace, pair) once, grouped by trace.
    count = max(len(distinct), 1)
    keys = np.sort(trace[valid] * count + pairs.indices.to_numpy())
    keys = keys[np.append(True, keys[1:] != keys[:-1])] if len(keys) else keys
    owners = keys // count
    shapes = np.zeros(traces, dtype=np.uint64)
    if len(keys):
        starts = np.flatnonzero(np.append(True, owners[1:] != owners[:-1]))
        shapes[owners[starts]] = np.add.reduceat(pair_hash[keys % count], starts)
    return shapes


def trace_attribute_values(spans: pa.Table, keys: list[str]) -> pa.Table:
    """Distinct ``(trace_id, key, value)`` for the given attribute keys, a span's own attribute first, else its
    resource's, in the order of the first span carrying each. Read from the maps' flat key and value columns in
    one pass each: SQL looking every key up in every span's two maps was a seventh of the server's CPU at 5%
    sampling. Everything after is integer codes (a span's trace, the key, the value), taken back to ids and
    text only for the distinct triples."""
    wanted = pa.array(keys, pa.string())
    width = max(1, len(keys))
    rows, key_codes, carried = carried_entries(spans, wanted)
    values = carried.dictionary_encode()
    distinct_values = max(1, len(values.dictionary))
    trace_ids = spans.column("trace_id").combine_chunks().dictionary_encode()
    traces = _codes(trace_ids)  # one per span row
    # Each (trace, key, value) once, as a number; Arrow's hash keeps them in the order they first appear, and
    # the entries are put in span order first (own values before the resource's within a span).
    order = np.argsort(rows, kind="stable")
    triple = (traces[rows] * width + key_codes) * distinct_values + _codes(values)
    distinct = pc.unique(pa.array(triple[order])).to_numpy()
    trace_and_key, value = np.divmod(distinct, distinct_values)
    trace, key = np.divmod(trace_and_key, width)
    return pa.table(
        {
            "trace_id": trace_ids.dictionary.take(pa.array(trace)),
            "key": wanted.take(pa.array(key)),
            "value": values.dictionary.take(pa.array(value)),
        }
    )


def _codes(encoded: pa.DictionaryArray) -> npt.NDArray[np.int64]:
    return as_numpy(encoded.indices, np.int64)
