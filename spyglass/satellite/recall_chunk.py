"""How the recall buffer holds spans that arrived together: compact, and given back as ``SPAN_SCHEMA``.

Every span is buffered and few are ever read again, so a chunk is laid out for size, and converted back only
when its spans leave or a live query asks. Three things make it small:

- **Trace ids once per trace.** The chunk's distinct trace ids stay in the clear (every lookup and decision is a
  hash membership test on them); each span keeps only the index of its trace id.
- **Origins once.** The spans of one resource and scope repeat the same service, resource attributes and scope
  (a resource has hundreds of spans per export, listed together): they are kept once per run of equal ones,
  and each span keeps its index.
- **Attribute keys and text values once.** A span's attributes are kept as codes into the chunk's dictionaries
  of keys and of values, which repeat from span to span.
- **The rest compressed.** What remains is Arrow IPC messages, zstd-compressed together.

Runs are found by comparing each span's origin with the one before it, value by value (maps entry by entry, in
order), so two resources are never merged unless they are equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from spyglass.model.arrow_numpy import id_words, valid_mask
from spyglass.model.equal_runs import equal_runs
from spyglass.model.schema import SPAN_SCHEMA, TRACE_ID

__all__ = ["MAX_CHUNK_ROWS", "Chunk", "TraceIndex", "chunks_holding", "pack_spans", "pack_table"]

#: Spans in one chunk at most. A trace lookup decompresses the whole chunk that holds the trace (decoding only
#: its rows): 8,192 spans decompress in about a millisecond, where a decision round of 25,000 took seven, and
#: cost about 5% more bytes a span than chunks four times as large (``bench/recall_memory.py``).
MAX_CHUNK_ROWS = 8192

_CODEC = pa.Codec("zstd", compression_level=1)

#: The columns kept once per origin (resource and scope), in ``SPAN_SCHEMA`` order of appearance.
_ORIGIN_COLUMNS = ["service", "resource", "resource_types", "scope_name", "scope_version"]
_ORIGIN_SCHEMA = pa.schema([SPAN_SCHEMA.field(name) for name in _ORIGIN_COLUMNS])
#: Span attribute maps, kept as codes into the chunk's dictionaries of keys (and of text values), which repeat
#: from span to span; whether their values are coded too.
_CODED_MAPS = {"attributes": True, "attribute_types": False}
#: The columns kept per span: the span schema without trace ids and origins, plus their indices.
_SPAN_COLUMNS = [name for name in SPAN_SCHEMA.names if name != "trace_id" and name not in _ORIGIN_COLUMNS]
_CODES = pa.list_(pa.int32())


def _packed_fields(name: str) -> list[pa.Field]:
    field = SPAN_SCHEMA.field(name)
    if name not in _CODED_MAPS:
        return [field]
    values = _CODES if _CODED_MAPS[name] else pa.list_(field.type.item_type)
    return [pa.field(f"{name}.keys", _CODES), pa.field(f"{name}.values", values)]


_PACKED_SCHEMA = pa.schema(
    [
        pa.field("trace_index", pa.int32(), nullable=False),
        pa.field("origin_index", pa.int32(), nullable=False),
        *(field for name in _SPAN_COLUMNS for field in _packed_fields(name)),
    ]
)
#: The chunk's dictionaries, as one row of lists.
_DICTIONARY_SCHEMA = pa.schema(
    [
        pa.field(f"{name}.{part}", pa.list_(pa.string()))
        for name, coded_values in _CODED_MAPS.items()
        for part in (("keys", "values") if coded_values else ("keys",))
    ]
)


@dataclass(frozen=True)
class Chunk:
    """Spans that arrived together: their distinct trace ids in the clear, everything else compressed."""

    trace_ids: pa.Array  # distinct, ``binary(16)``
    payload: bytes  # the packed spans, the origins and the dictionaries: IPC messages, compressed together
    message_sizes: tuple[int, int, int]
    rows: int
    arrival_ns: int
    #: Once decided: which of ``trace_ids`` were kept (so stored), aligned with them; None while undecided.
    kept: np.ndarray | None = None
    #: The first and last start of its spans (None: not known), so a reader of some minutes skips the rest.
    starts: tuple[int, int] | None = None

    def may_start_in(self, windows: Sequence[tuple[int, int]]) -> bool:
        """Whether some span of the chunk may start in one of ``windows`` (``[from, to)`` each)."""
        if self.starts is None:
            return True
        first, last = self.starts
        return any(first < end and last >= start for start, end in windows)

    @property
    def nbytes(self) -> int:
        return len(self.payload) + int(self.trace_ids.nbytes) + (0 if self.kept is None else self.kept.nbytes)

    def unpack(self) -> pa.RecordBatch:
        """The chunk's spans as ``SPAN_SCHEMA``."""
        packed, origins, dictionaries = self._messages()
        return self._spans(packed, origins, dictionaries)

    def trace_at(self, index: int) -> pa.RecordBatch:
        """The spans of the chunk's ``index``-th distinct trace id, as ``SPAN_SCHEMA``, by start time (then span
        id). Only the trace's rows are decoded (decoding all of a chunk's spans was most of a trace lookup's
        time), and they are put in order while packed: taking the decoded spans again cost a lookup through the
        API about a tenth of its time."""
        packed, origins, dictionaries = self._messages()
        rows = np.flatnonzero(packed.column("trace_index").to_numpy() == index)
        starts = packed.column("start_ns").to_numpy()[rows]
        rows = rows[np.lexsort((id_words(packed.column("span_id"))[rows], starts))]
        return self._spans(packed.take(pa.array(rows)), origins, dictionaries)

    def _messages(self) -> tuple[pa.RecordBatch, pa.RecordBatch, pa.RecordBatch]:
        """The packed spans, the origins and the dictionaries, decompressed."""
        message = _CODEC.decompress(self.payload, decompressed_size=sum(self.message_sizes))
        spans_size, origins_size, _ = self.message_sizes
        packed = ipc.read_record_batch(message.slice(0, spans_size), _PACKED_SCHEMA)
        origins = ipc.read_record_batch(message.slice(spans_size, origins_size), _ORIGIN_SCHEMA)
        dictionaries = ipc.read_record_batch(message.slice(spans_size + origins_size), _DICTIONARY_SCHEMA)
        return packed, origins, dictionaries

    def _spans(
        self, packed: pa.RecordBatch, origins: pa.RecordBatch, dictionaries: pa.RecordBatch
    ) -> pa.RecordBatch:
        """Packed rows (all of the chunk's, or some) back as ``SPAN_SCHEMA``."""
        origin_index = packed.column("origin_index")
        columns = {name: origins.column(name).take(origin_index) for name in _ORIGIN_COLUMNS}
        columns["trace_id"] = self.trace_ids.take(packed.column("trace_index"))
        for name in _SPAN_COLUMNS:
            if name in _CODED_MAPS:
                columns[name] = _decoded_map(packed, dictionaries, name)
            else:
                columns[name] = packed.column(name)
        return pa.RecordBatch.from_arrays([columns[name] for name in SPAN_SCHEMA.names], schema=SPAN_SCHEMA)

    @cached_property
    def id_keys(self) -> np.ndarray:
        """A 32-bit key of each distinct trace id (``id_key``): a lookup compares these in numpy (a trace by id
        over millions of buffered ids in a fraction of a millisecond) before comparing whole ids."""
        ids = self.trace_ids
        words = np.frombuffer(ids.buffers()[1], dtype="<u8", count=2 * len(ids), offset=16 * ids.offset)
        return _keys_of(words[::2], words[1::2])

    def holds_at(self, index: int, trace_id: bytes) -> bool:
        """Whether the chunk's ``index``-th distinct trace id is ``trace_id`` (after the keys matched)."""
        return bool(self.trace_ids[index].as_py() == trace_id)

    def kept_at(self, index: int) -> bool:
        """Whether the chunk's ``index``-th distinct trace was decided and kept."""
        return self.kept is not None and bool(self.kept[index])

    def trace_mask(self, trace_ids: pa.Array) -> pa.Array | None:
        """Which distinct trace ids of this chunk are in ``trace_ids``, or None when none is."""
        found = pc.is_in(self.trace_ids, value_set=trace_ids)
        return found if found.true_count else None


class TraceIndex:
    """Where trace ids are among a set of chunks: every chunk's id keys in one array, so that a lookup is
    one numpy comparison however many chunks there are (one per chunk cost about 10 microseconds each, and a
    buffer of millions of spans holds thousands of chunks); whole ids are compared only where keys match."""

    def __init__(self, chunks: list[Chunk]) -> None:
        self.chunks = chunks
        keys = [chunk.id_keys for chunk in chunks]
        self.keys = np.concatenate(keys) if keys else np.empty(0, np.uint32)
        self.starts = np.cumsum([0, *(len(k) for k in keys)])

    def find(self, trace_id: bytes) -> list[tuple[Chunk, int]]:
        """Each chunk holding spans of the trace, with the trace's index among that chunk's distinct ids."""
        hits = np.flatnonzero(self.keys == np.uint32(id_key(trace_id)))
        return chunks_holding(self.chunks, self.starts, hits.tolist(), trace_id)


def chunks_holding(
    chunks: Sequence[Chunk],
    starts: Sequence[int] | np.ndarray,
    positions: list[int],
    trace_id: bytes,
    first: int = 0,
) -> list[tuple[Chunk, int]]:
    """Of the places where ``trace_id``'s key was found among the keys of ``chunks`` laid end to end (chunk ``i``'s
    from ``starts[i]``), those where the whole id is ``trace_id``: each chunk, from the ``first``-th on, with the
    id's index among its distinct ids."""
    found = []
    for position in positions:
        at = int(np.searchsorted(starts, position, side="right")) - 1
        chunk, index = chunks[at], position - int(starts[at])
        if at >= first and chunk.holds_at(index, trace_id):
            found.append((chunk, index))
    return found


def id_key(trace_id: bytes) -> int:
    """The 32-bit key ``Chunk.id_keys`` holds for a trace id, from both of its halves: 64-bit ids (their first 8
    bytes zero, as Zipkin and Jaeger clients send them) are told apart as well as 128-bit ones, where a key of the
    first bytes alone was the same for all of them. Comparing 32-bit keys reads half the memory of 8-byte ones."""
    words = np.frombuffer(trace_id[:16].ljust(16, b"\0"), dtype="<u8")
    return int(_keys_of(words[:1], words[1:])[0])


#: An odd 64-bit constant (the golden ratio's): multiplying by it spreads the second half over every bit, so ids
#: whose halves are equal or related still get distinct keys.
_SPREAD = np.uint64(0x9E3779B97F4A7C15)


def _keys_of(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    mixed = first ^ (second * _SPREAD)  # arrays: uint64 products wrap, as intended
    return (mixed ^ (mixed >> np.uint64(32))).astype(np.uint32)


def pack_table(spans: pa.Table | pa.RecordBatch, arrival_ns: int) -> list[Chunk]:
    """Pack spans (``SPAN_SCHEMA``) into chunks of at most ``MAX_CHUNK_ROWS`` (slices of one batch: no copy)."""
    if isinstance(spans, pa.RecordBatch):
        batches = [spans.slice(offset, MAX_CHUNK_ROWS) for offset in range(0, spans.num_rows, MAX_CHUNK_ROWS)]
    else:
        batches = spans.combine_chunks().to_batches(max_chunksize=MAX_CHUNK_ROWS)
    return [pack_spans(batch, arrival_ns) for batch in batches if batch.num_rows]


def pack_spans(spans: pa.RecordBatch, arrival_ns: int) -> Chunk:
    """Pack a batch of spans (``SPAN_SCHEMA``) into a chunk."""
    traces = pc.dictionary_encode(spans.column("trace_id"))
    # A copy, so the chunk does not keep the decoder's whole request buffers alive.
    trace_ids = pa.concat_arrays([traces.dictionary.cast(TRACE_ID)])
    origin_index, first_rows = _origins(spans)
    first = pa.array(first_rows)
    origins = pa.RecordBatch.from_arrays(
        [spans.column(name).take(first) for name in _ORIGIN_COLUMNS], schema=_ORIGIN_SCHEMA
    )
    columns = [traces.indices.cast(pa.int32()), pa.array(origin_index)]
    dictionaries: list[pa.Array] = []
    for name in _SPAN_COLUMNS:
        if name in _CODED_MAPS:
            columns.extend(_coded_map(spans.column(name), _CODED_MAPS[name], dictionaries))
        else:
            columns.append(spans.column(name))
    packed = pa.RecordBatch.from_arrays(columns, schema=_PACKED_SCHEMA)
    one_row = [pa.ListArray.from_arrays(pa.array([0, len(d)], pa.int32()), d) for d in dictionaries]
    messages = [
        packed.serialize(),
        origins.serialize(),
        pa.RecordBatch.from_arrays(one_row, schema=_DICTIONARY_SCHEMA).serialize(),
    ]
    payload = _CODEC.compress(b"".join(messages), asbytes=True)
    sizes = (messages[0].size, messages[1].size, messages[2].size)
    span_starts = pc.min_max(spans.column("start_ns"))
    starts = (span_starts["min"].as_py(), span_starts["max"].as_py())
    return Chunk(
        trace_ids, payload, sizes, spans.num_rows, arrival_ns, starts=None if None in starts else starts
    )


def _coded_map(maps: pa.MapArray, code_values: bool, dictionaries: list[pa.Array]) -> list[pa.Array]:
    """A map column as a list of key codes and a list of values (or value codes) per row; the dictionaries
    are appended to ``dictionaries``."""
    bounds = np.frombuffer(maps.buffers()[1], np.int32, count=len(maps) + 1, offset=maps.offset * 4)
    first, last = int(bounds[0]), int(bounds[-1])
    row_offsets = pa.array(bounds - first)
    mask = pa.array(~valid_mask(maps)) if maps.null_count else None
    keys = pc.dictionary_encode(maps.keys.slice(first, last - first))
    items = maps.items.slice(first, last - first)
    dictionaries.append(keys.dictionary)
    if code_values:
        items = pc.dictionary_encode(items)
        dictionaries.append(items.dictionary)
        items = items.indices
    return [
        pa.ListArray.from_arrays(row_offsets, keys.indices, mask=mask),
        pa.ListArray.from_arrays(row_offsets, items, mask=mask),
    ]


def _decoded_map(packed: pa.RecordBatch, dictionaries: pa.RecordBatch, name: str) -> pa.Array:
    """The map column ``name`` from its codes (the inverse of ``_coded_map``)."""
    key_codes = packed.column(f"{name}.keys")
    values = packed.column(f"{name}.values")
    keys = dictionaries.column(f"{name}.keys").flatten().take(key_codes.flatten())
    items = values.flatten()
    if _CODED_MAPS[name]:
        items = dictionaries.column(f"{name}.values").flatten().take(items)
    bounds = key_codes.offsets.to_numpy()
    mask = key_codes.is_null() if key_codes.null_count else None
    return pa.MapArray.from_arrays(
        pa.array(bounds - bounds[0]), keys, items, type=SPAN_SCHEMA.field(name).type, mask=mask
    )


def _origins(spans: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
    """Each span's origin index, and the first span of each origin: a run of spans with equal service,
    resource and scope. A decoded export lists its spans by resource and scope, so runs are long; a resource
    seen again in a later run is kept again, which costs little as long as runs are long."""
    return equal_runs([spans.column(name) for name in _ORIGIN_COLUMNS])
