"""A recall buffer chunk gives back exactly the spans it was given, whatever their resources and scopes."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spyglass.model.schema import SPAN_SCHEMA
from spyglass.satellite.recall_chunk import Chunk, TraceIndex, pack_spans

_MAPS = pa.map_(pa.string(), pa.string())
_TYPES = pa.map_(pa.string(), pa.int8())


def _spans(
    resources: Sequence[Sequence[tuple[str, str | None]] | None], scopes: Sequence[str | None]
) -> pa.RecordBatch:
    """One span per resource given (in order), with the matching scope name."""
    n = len(resources)
    rng = random.Random(n)
    return pa.RecordBatch.from_pydict(
        {
            "trace_id": [bytes([i % 3 + 1]) * 16 for i in range(n)],
            "span_id": [rng.randbytes(8) for _ in range(n)],
            "parent_span_id": [None] * n,
            "trace_state": [None] * n,
            "service": ["svc" if r is None or len(r) % 2 else "other" for r in resources],
            "name": [f"op-{i % 4}" for i in range(n)],
            "kind": [2] * n,
            "start_ns": [rng.randint(1, 4) for _ in range(n)],  # out of order, and equal ones
            "duration_ns": [10] * n,
            "status_code": [0] * n,
            "status_message": [None] * n,
            "attributes": pa.array(
                [r if r is None else [*r, ("k", str(i))] for i, r in enumerate(resources)], _MAPS
            ),
            "attribute_types": pa.array(
                [None if r is None else [(k, 3) for k, v in r if v == "a"] for r in reversed(resources)],
                _TYPES,
            ),
            "resource": pa.array(resources, _MAPS),
            "resource_types": pa.array(
                [None if r is None else [(k, 2) for k, v in r if v and v.isdigit()] for r in resources],
                _TYPES,
            ),
            "scope_name": scopes,
            "scope_version": [None if s is None else "1" for s in scopes],
            "events": [[] for _ in range(n)],
            "links": [[] for _ in range(n)],
        },
        schema=SPAN_SCHEMA,
    )


def test_runs_of_one_resource_are_kept_once_and_given_back_per_span() -> None:
    host_a = [("service.name", "svc"), ("host.name", "a")]
    host_b = [("service.name", "svc"), ("host.name", "b")]
    # Equal lengths, different values; an empty map beside a null one; a resource seen again after another.
    resources = [host_a, host_a, host_b, host_b, [], None, None, host_a, [("x", "")], [("", "x")]]
    scopes = ["s", "s", "s", None, None, None, None, "s", "t", "t"]
    batch = _spans(resources, scopes)
    chunk = pack_spans(batch, arrival_ns=1)
    assert chunk.unpack().equals(batch)
    assert len(chunk.trace_ids) == 3


_TEXT = st.sampled_from(["", "a", "b", "ab", "é"])
_MAP = st.none() | st.lists(st.tuples(_TEXT, st.none() | _TEXT), max_size=3)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_MAP, st.none() | _TEXT), min_size=1, max_size=30))
def test_any_resources_and_scopes_come_back_exactly(
    rows: list[tuple[list[tuple[str, str | None]] | None, str | None]],
) -> None:
    batch = _spans([r for r, _ in rows], [s for _, s in rows])
    assert pack_spans(batch, arrival_ns=1).unpack().equals(batch)


def test_a_slice_of_a_batch_packs_as_itself() -> None:
    resources = [[("h", str(i // 3))] for i in range(12)]
    batch = _spans(resources, ["s"] * 12).slice(4, 5)
    assert pack_spans(batch, arrival_ns=1).unpack().equals(batch)


def _index_of(chunk: Chunk, trace_id: bytes) -> int | None:
    found = TraceIndex([chunk]).find(trace_id)
    return found[0][1] if found else None


def _trace(chunk: Chunk, trace_id: bytes) -> pa.RecordBatch | None:
    index = _index_of(chunk, trace_id)
    return None if index is None else chunk.trace_at(index)


def test_a_chunk_finds_the_trace_ids_it_holds_by_their_keys() -> None:
    """The key test never misses an id the chunk holds (whatever slice of its ids it keeps) and rules out ids it
    does not hold."""
    ids = pa.array([bytes([i]) * 16 for i in range(1, 40)], pa.binary(16))
    chunk = Chunk(ids.slice(5, 20), b"", (0, 0, 0), 0, 0)
    held = ids.slice(5, 20).to_pylist()
    assert [_index_of(chunk, trace_id) for trace_id in held] == list(range(20))
    assert not any(
        _index_of(chunk, trace_id) is not None for trace_id in ids.to_pylist() if trace_id not in held
    )


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(_MAP, st.none() | _TEXT), min_size=1, max_size=30))
def test_one_trace_of_a_chunk_comes_back_as_its_rows_of_the_whole(
    rows: list[tuple[list[tuple[str, str | None]] | None, str | None]],
) -> None:
    """``trace_at`` decodes only the trace's rows, and they are those ``unpack`` gives, by start time then span id;
    an id the chunk does not hold, even one sharing its first 8 bytes with a held one, gives None."""
    batch = _spans([r for r, _ in rows], [s for _, s in rows])
    chunk = pack_spans(batch, arrival_ns=1)
    whole = chunk.unpack()
    for trace_id in {bytes([i % 3 + 1]) * 16 for i in range(len(rows))}:
        mine = whole.filter(pc.equal(whole.column("trace_id"), pa.scalar(trace_id, pa.binary(16))))
        in_order = pc.sort_indices(mine, sort_keys=[("start_ns", "ascending"), ("span_id", "ascending")])
        assert _trace(chunk, trace_id) == mine.take(in_order)
    assert _trace(chunk, bytes([1]) * 8 + bytes([9]) * 8) is None
    assert _trace(chunk, bytes([7]) * 16) is None


def test_64_bit_trace_ids_are_told_apart_by_their_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Zipkin and Jaeger clients send 64-bit trace ids, stored with eight leading zero bytes: a lookup among
    100,000 of them compares whole ids for the one it asks (and for the rare key shared by chance), not for
    every 64-bit id buffered."""
    rng = random.Random(7)
    short = [bytes(8) + rng.randbytes(8) for _ in range(100_000)]
    halves = [bytes([i % 256]) * 16 for i in range(256)]  # equal halves, as in hand-made ids
    chunks = [
        Chunk(pa.array(part, pa.binary(16)), b"", (0, 0, 0), 0, 0)
        for part in (short[:50_000], short[50_000:], halves)
    ]
    index = TraceIndex(chunks)
    compared = 0
    holds_at = Chunk.holds_at

    def counting(self: Chunk, at: int, trace_id: bytes) -> bool:
        nonlocal compared
        compared += 1
        return holds_at(self, at, trace_id)

    monkeypatch.setattr(Chunk, "holds_at", counting)
    for asked in [*rng.sample(short, 200), *halves[:50]]:
        found = index.find(asked)
        assert len(found) == 1 and found[0][0].trace_ids[found[0][1]].as_py() == asked
    assert compared < 260  # one each, and a key shared by chance now and then
    assert index.find(bytes(8) + rng.randbytes(8)) == []
    assert len(set(index.keys[-256:].tolist())) == 256
