"""The decided chunks' index finds what a scan of every held chunk finds, as chunks come and go."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spyglass.satellite import decided_index
from spyglass.satellite.decided_index import DecidedIndex
from spyglass.satellite.recall_buffer import RecallBuffer
from spyglass.satellite.recall_chunk import Chunk, id_key
from tests.support.spans import in_traces, trace_batch


def _chunk(ids: list[bytes]) -> Chunk:
    return Chunk(pa.array(list(dict.fromkeys(ids)), pa.binary(16)), b"", (0, 0, 0), 0, 0)


def _sharing_keys(rng: random.Random) -> list[bytes]:
    """Trace ids whose 32-bit keys some other id shares: among 400,000 random ids, some 18 pairs by chance."""
    ids = [rng.randbytes(16) for _ in range(400_000)]
    keys = _chunk(ids).id_keys
    values, counts = np.unique(keys, return_counts=True)
    shared = set(values[counts > 1].tolist())
    return [trace_id for trace_id, key in zip(ids, keys.tolist(), strict=True) if key in shared]


_RNG = random.Random(17)
#: Ids told apart only by their whole bytes, and ordinary ones.
_SHARING = _sharing_keys(_RNG)
_POOL = _SHARING + [_RNG.randbytes(16) for _ in range(40)] + [bytes(8) + _RNG.randbytes(8) for _ in range(20)]


def _scanned(held: list[Chunk], trace_id: bytes) -> list[tuple[int, int]]:
    return [
        (id(chunk), index)
        for chunk in held
        for index, value in enumerate(chunk.trace_ids.to_pylist())
        if value == trace_id
    ]


def test_some_ids_share_a_key() -> None:
    assert len(_SHARING) >= 2
    assert len({id_key(trace_id) for trace_id in _SHARING}) < len(_SHARING)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.lists(st.sampled_from(_POOL), min_size=1, max_size=12).map(lambda ids: ("append", ids)),
            st.just(("forget", [])),
        ),
        max_size=80,
    ),
    st.integers(min_value=1, max_value=40),
)
def test_finds_what_a_scan_of_the_held_chunks_finds(
    steps: list[tuple[str, list[bytes]]], segment_keys: int
) -> None:
    """Whatever the order of new chunks and forgotten ones, and however small the segments (so that many are
    sealed and the oldest is partly forgotten), each id is found in exactly the held chunks that hold it, at its
    index there: ids that share a key with another included."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(decided_index, "SEGMENT_KEYS", segment_keys)
        index = DecidedIndex()
        held: list[Chunk] = []
        for action, ids in steps:
            if action == "append":
                chunk = _chunk(ids)
                index.append(chunk)
                held.append(chunk)
            elif held:
                index.forget_oldest()
                held.pop(0)
            for trace_id in _POOL[:: max(1, len(_POOL) // 25)] + _SHARING:
                found = [(id(chunk), at) for chunk, at in index.find(trace_id)]
                assert found == _scanned(held, trace_id)


def test_chunks_forgotten_before_their_segment_fills_stay_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    """The newest segment has lost its oldest chunks when it fills and is sealed: the sealed segment holds only
    the others, and later forgetting goes on from the right chunk."""
    monkeypatch.setattr(decided_index, "SEGMENT_KEYS", 8)
    index = DecidedIndex()
    chunks = [_chunk(_POOL[2 * n : 2 * n + 2]) for n in range(8)]
    for chunk in chunks[:3]:
        index.append(chunk)
    index.forget_oldest()  # the first of three: not yet half, so not copied down
    for chunk in chunks[3:6]:
        index.append(chunk)  # 2 + 3 chunks of 2 ids held: 10, sealed
    held = chunks[1:6]
    for trace_id in _POOL[:16]:
        assert [(id(c), at) for c, at in index.find(trace_id)] == _scanned(held, trace_id)
    index.forget_oldest()
    index.append(chunks[6])
    held = chunks[2:7]
    for trace_id in _POOL[:16]:
        assert [(id(c), at) for c, at in index.find(trace_id)] == _scanned(held, trace_id)


def test_a_full_buffer_finds_held_traces_and_not_forgotten_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the recall buffer: decided traces are found while held, and not once the bound forgot them,
    across many sealed segments; undecided ones are found too."""
    monkeypatch.setattr(decided_index, "SEGMENT_KEYS", 16)
    first, first_ids = trace_batch(4)
    buffer = RecallBuffer(max_bytes=RecallBuffer.packed_size(first) * 12)
    decided: list[list[bytes]] = []
    for serial in range(60):
        batch, ids = trace_batch(4)
        buffer.add(batch, arrival_ns=serial)
        buffer.make_room(0)
        quiet = buffer.take_quiet(serial)
        buffer.retain_decided(quiet, serial, pa.array(ids[:2], pa.binary(16)))
        decided.append(ids)
    held = {trace_id for trace_id in buffer.snapshot().column("trace_id").to_pylist()}
    assert decided[0][0] not in held and decided[-1][0] in held
    for ids in decided:
        for position, trace_id in enumerate(ids):
            assert buffer.trace(trace_id).num_rows == (3 if trace_id in held else 0)
            # Kept ones are passed over when the caller read the store.
            expected = 3 if trace_id in held and position >= 2 else 0
            assert buffer.trace(trace_id, skip_kept=True).num_rows == expected
    late, _ = trace_batch(1)
    buffer.add(in_traces(late, [decided[-1][3]] * late.num_rows), arrival_ns=100)
    assert buffer.trace(decided[-1][3]).num_rows == 3 + late.num_rows
    assert buffer.trace(first_ids[0]).num_rows == 0
