"""One span per id in every trace, where an RPC's client and server halves were recorded under one span id.

Zipkin's B3 "join" (the default of Brave and zipkin-js) has the server record its half of an RPC under the span
id the client chose, marked ``shared``, and the server's own children name that shared id as their parent.
Everything keyed by span id (the waterfall, the critical path, dependency edges, Jaeger's UI) needs one span per
id, so, as Jaeger's span-id uniquifier and Zipkin's own tree builder do:

- the server half gets an id of its own, derived from the shared id (``server_half_id``), so that every
  receiver, every retry and every cluster member derives the same one without coordination; its parent becomes
  the client half (the shared id). The Zipkin decoder does this for spans marked ``shared``;
  ``separate_shared_spans`` does it for halves that arrive unmarked with the client's id (a Zipkin feed relayed
  as OTLP by a Collector);
- the spans of the server's service that name the shared id as their parent are the server's children, and
  become children of the server half. That needs the whole trace (children often arrive in another request
  than their server half), so ``separate_shared_spans`` runs when a trace is decided, before it is stored, and
  when a trace is read.

Everything here is columnar: one pass over the id columns finds the rare rows to change, and only those are
touched from Python.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spyglass.model.arrow_numpy import as_numpy, id_words, valid_mask
from spyglass.model.schema import SPAN_ID, SpanKind

# splitmix64's constants: a bijection on 64-bit words that scatters neighbouring ids far apart.
_GAMMA = 0x9E3779B97F4A7C15
_MIX_1 = 0xBF58476D1CE4E5B9
_MIX_2 = 0x94D049BB133111EB
_SERVER = int(SpanKind.SERVER)
_CLIENT = int(SpanKind.CLIENT)
_NO_ROWS = np.zeros(0, dtype=np.int64)


def server_half_id(shared_span_id: bytes) -> bytes:
    """The id the server half of a shared span gets: a fixed function of the shared id, never zero."""
    return mix_words(np.frombuffer(shared_span_id, dtype=">u8").astype(np.uint64)).astype(">u8").tobytes()


def mix_words(words: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer over uint64 words (numpy wraps uint64 arithmetic modulo 2**64): neighbouring
    words land far apart. An id of zero is invalid, so zero becomes one."""
    with np.errstate(over="ignore"):
        z = words + np.uint64(_GAMMA)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(_MIX_1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(_MIX_2)
        z ^= z >> np.uint64(31)
    z[z == 0] = 1
    return z


def separate_shared_spans(spans: pa.Table) -> pa.Table:
    """``spans`` (whole traces, any columns including ``trace_id``, ``span_id``, ``parent_span_id``, ``kind``
    and ``service``) with every shared span id separated as described above; the same table when there is
    nothing to change, which is almost always."""
    if spans.num_rows == 0:
        return spans
    parent_col = spans.column("parent_span_id").combine_chunks()
    span_ids = id_words(spans.column("span_id").combine_chunks())
    parent_ids = id_words(parent_col)
    has_parent = valid_mask(parent_col)
    kinds = np.asarray(spans.column("kind").to_numpy(), dtype=np.int64)

    renamed = _unmarked_server_halves(spans, span_ids, kinds)
    parent_ids[renamed] = span_ids[renamed]
    has_parent[renamed] = True
    span_ids[renamed] = mix_words(span_ids[renamed])

    adopted = _children_of_server_halves(spans, span_ids, parent_ids, has_parent)
    parent_ids[adopted] = mix_words(parent_ids[adopted])

    if len(renamed) == 0 and len(adopted) == 0:
        return spans
    spans = spans.set_column(spans.schema.get_field_index("span_id"), "span_id", _id_column(span_ids, None))
    return spans.set_column(
        spans.schema.get_field_index("parent_span_id"), "parent_span_id", _id_column(parent_ids, has_parent)
    )


def _unmarked_server_halves(spans: pa.Table, span_ids: np.ndarray, kinds: np.ndarray) -> np.ndarray:
    """Rows of SERVER spans that have the id of a CLIENT span of the same trace."""
    servers = np.flatnonzero(kinds == _SERVER)
    client_rows = np.flatnonzero(kinds == _CLIENT)
    if len(servers) == 0 or len(client_rows) == 0:
        return _NO_ROWS
    servers = servers[_is_in(span_ids[servers], span_ids[client_rows])]
    if len(servers) == 0:
        return _NO_ROWS
    client_rows = client_rows[_is_in(span_ids[client_rows], span_ids[servers])]
    clients = set(zip(_trace_ids(spans, client_rows), span_ids[client_rows].tolist(), strict=True))
    pairs = zip(servers.tolist(), _trace_ids(spans, servers), span_ids[servers].tolist(), strict=True)
    return np.array([row for row, trace, span in pairs if (trace, span) in clients], dtype=np.int64)


def _children_of_server_halves(
    spans: pa.Table, span_ids: np.ndarray, parent_ids: np.ndarray, has_parent: np.ndarray
) -> np.ndarray:
    """Rows naming a shared id as their parent, in the service of that id's server half, in the same trace."""
    halves = np.flatnonzero(has_parent & (span_ids == mix_words(parent_ids)))
    if len(halves) == 0:
        return _NO_ROWS
    candidates = np.flatnonzero(has_parent & _is_in(parent_ids, parent_ids[halves]))
    candidates = np.setdiff1d(candidates, halves, assume_unique=True)
    if len(candidates) == 0:
        return _NO_ROWS
    half_service = {
        (trace, shared): service
        for trace, shared, service in zip(
            _trace_ids(spans, halves), parent_ids[halves].tolist(), _services(spans, halves), strict=True
        )
    }
    rows = zip(
        candidates.tolist(),
        _trace_ids(spans, candidates),
        parent_ids[candidates].tolist(),
        _services(spans, candidates),
        strict=True,
    )
    return np.array(
        [row for row, trace, parent, service in rows if half_service.get((trace, parent)) == service],
        dtype=np.int64,
    )


def _is_in(words: np.ndarray, others: np.ndarray) -> np.ndarray:
    """``numpy.isin`` by hashing: a decision round's ids, a hundred thousand, in a fifth of the time it sorts."""
    found = pc.is_in(pa.array(words, pa.uint64()), value_set=pa.array(others, pa.uint64()))
    return as_numpy(found, bool)


def _trace_ids(spans: pa.Table, rows: np.ndarray) -> list[bytes]:
    return cast("list[bytes]", spans.column("trace_id").take(pa.array(rows, pa.int64())).to_pylist())


def _services(spans: pa.Table, rows: np.ndarray) -> list[str]:
    return cast("list[str]", spans.column("service").take(pa.array(rows, pa.int64())).to_pylist())


def _id_column(words: np.ndarray, valid: np.ndarray | None) -> pa.Array:
    """uint64 words back to a binary(8) id column, null where ``valid`` is False."""
    data = pa.py_buffer(words.astype(">u8").tobytes())
    if valid is None or valid.all():
        return pa.Array.from_buffers(SPAN_ID, len(words), [None, data])
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little").tobytes())
    return pa.Array.from_buffers(SPAN_ID, len(words), [bitmap, data], null_count=int((~valid).sum()))


def span_keys(spans: pa.Table) -> pa.Array:
    """One binary value per span that tells spans apart within a trace: its id with its kind appended, as an
    RPC's client and server halves may share an id until their trace is decided. For dropping the second copy
    of a span read from two places."""
    kinds = pc.cast(pc.cast(spans.column("kind"), pa.uint8()), pa.string())
    return pc.binary_join_element_wise(
        pc.cast(spans.column("span_id"), pa.binary()), pc.cast(kinds, pa.binary()), b"/"
    ).combine_chunks()
