"""The recall buffer hands out whole traces once quiet, or early when memory runs short."""

from __future__ import annotations

import threading
import time

import pyarrow as pa
import pytest

from spyglass.satellite import recall_buffer
from spyglass.satellite.recall_buffer import RecallBuffer
from spyglass.satellite.recall_chunk import MAX_CHUNK_ROWS, Chunk
from tests.support.spans import in_traces, trace_batch


def test_quiet_traces_leave_whole_and_active_ones_stay() -> None:
    buffer = RecallBuffer(max_bytes=10**9)
    old, old_ids = trace_batch(3)
    buffer.add(old, arrival_ns=100)
    # A late span of the first trace arrives after the cutoff: that trace stays, whole.
    late, _ = trace_batch(1)
    late = in_traces(late, [old_ids[0]] * late.num_rows)
    buffer.add(late, arrival_ns=300)
    quiet = buffer.take_quiet(cutoff_ns=200)
    assert set(quiet.column("trace_id").to_pylist()) == set(old_ids[1:])
    assert quiet.num_rows == 6
    assert buffer.spans == 6
    assert buffer.trace(old_ids[0]).num_rows == 6
    rest = buffer.take_quiet(cutoff_ns=400)
    assert rest.num_rows == 6 and set(rest.column("trace_id").to_pylist()) == {old_ids[0]}
    assert buffer.spans == 0 and buffer.nbytes == 0


def test_quiet_traces_none_of_which_is_active_leave_as_they_were() -> None:
    """The usual round: recent exports hold other traces. Every quiet span leaves, whole chunks are retained
    without packing again, and the recent traces stay."""
    old, old_ids = trace_batch(5)
    recent, recent_ids = trace_batch(4)
    buffer = RecallBuffer(max_bytes=10**9)
    buffer.add(old, arrival_ns=1)
    buffer.add(recent, arrival_ns=5)
    packed = buffer._chunks[0]
    quiet = buffer.take_quiet(cutoff_ns=2)
    assert quiet.to_pylist() == pa.Table.from_batches([old]).to_pylist()
    buffer.retain_decided(quiet, decided_ns=3)
    assert buffer._decided[0].payload is packed.payload
    assert buffer.undecided_spans == recent.num_rows
    assert buffer.trace(recent_ids[0]).num_rows == 3 and buffer.trace(old_ids[0]).num_rows == 3


def test_lookups_go_on_while_quiet_traces_are_unpacked(monkeypatch: pytest.MonkeyPatch) -> None:
    """``take_quiet`` unpacks the quiet chunks (0.6 ms a thousand spans) without the lock that lookups take:
    while it does, a lookup answers at once and finds the trace's spans where they were; after it, the quiet
    trace is being decided and the active one stays."""
    old, old_ids = trace_batch(3)
    late, _ = trace_batch(1)
    late = in_traces(late, [old_ids[0]] * late.num_rows)
    buffer = RecallBuffer(max_bytes=10**9)
    buffer.add(old, arrival_ns=100)
    buffer.add(late, arrival_ns=300)
    unpacking, resume = threading.Event(), threading.Event()
    unpack = recall_buffer._table

    def slow_unpack(chunks: list[Chunk]) -> pa.Table:
        unpacking.set()
        assert resume.wait(10)
        return unpack(chunks)

    monkeypatch.setattr(recall_buffer, "_table", slow_unpack)
    taken: list[pa.Table] = []
    taker = threading.Thread(target=lambda: taken.append(buffer.take_quiet(cutoff_ns=200)))
    taker.start()
    try:
        assert unpacking.wait(10)
        found: list[int] = []
        lookup = threading.Thread(target=lambda: found.append(buffer.trace(old_ids[1]).num_rows))
        lookup.start()
        lookup.join(5)
        assert found == [3], "a lookup waited for the unpacking"
        assert buffer.trace(old_ids[0]).num_rows == 6
    finally:
        resume.set()
        taker.join(10)
    assert set(taken[0].column("trace_id").to_pylist()) == set(old_ids[1:])
    assert buffer.trace(old_ids[1]).num_rows == 3  # being decided: still seen
    assert buffer.undecided_spans == 6 and buffer.trace(old_ids[0]).num_rows == 6


def test_memory_bound_decides_oldest_traces_first() -> None:
    first, first_ids = trace_batch(50)
    second, second_ids = trace_batch(50)
    buffer = RecallBuffer(max_bytes=RecallBuffer.packed_size(first) + RecallBuffer.packed_size(second) // 2)
    buffer.add(first, arrival_ns=1)
    buffer.add(second, arrival_ns=2)
    assert buffer.over_bound()
    taken = buffer.take_oldest(buffer.max_bytes * 3 // 4)
    assert set(taken.column("trace_id").to_pylist()) == set(first_ids)
    assert not buffer.over_bound()
    # While the sampler decides them, taken traces stay visible to live queries; then they are gone.
    assert set(buffer.snapshot().column("trace_id").to_pylist()) == set(first_ids) | set(second_ids)
    assert buffer.trace(first_ids[0]).num_rows == 3
    assert set(buffer.snapshot(include_decided=False).column("trace_id").to_pylist()) == set(second_ids)
    buffer.end_decision()
    assert set(buffer.snapshot().column("trace_id").to_pylist()) == set(second_ids)


def test_take_all_empties_the_buffer() -> None:
    buffer = RecallBuffer(max_bytes=10**9)
    batch, _ = trace_batch(4)
    buffer.add(batch, arrival_ns=1)
    assert buffer.take_all().num_rows == 12
    assert buffer.spans == 0 and buffer.take_all().num_rows == 0


def test_buffered_spans_cost_less_than_their_decoded_arrow_form() -> None:
    batch, ids = trace_batch(200)
    buffer = RecallBuffer(max_bytes=10**9)
    buffer.add(batch, arrival_ns=1)
    assert buffer.nbytes < batch.nbytes / 2
    assert buffer.trace(ids[7]).to_pylist() == [r for r in batch.to_pylist() if r["trace_id"] == ids[7]]
    assert buffer.snapshot().to_pylist() == batch.to_pylist()


def test_decided_traces_stay_visible_until_room_is_needed() -> None:
    first, first_ids = trace_batch(50)
    second, second_ids = trace_batch(50)
    size = RecallBuffer.packed_size(first)
    buffer = RecallBuffer(max_bytes=int(size * 2.5))
    buffer.add(first, arrival_ns=1)
    decided = buffer.take_quiet(cutoff_ns=1)
    buffer.retain_decided(decided, decided_ns=2)
    assert buffer.undecided_spans == 0 and buffer.spans == 150
    assert buffer.trace(first_ids[0]).num_rows == 3  # decided, still there for a person to look at
    assert buffer.snapshot(include_decided=False).num_rows == 0
    created = buffer.covered_since_ns
    # New spans need the room: the decided ones give way, the undecided never do.
    assert buffer.make_room(size)
    buffer.add(second, arrival_ns=3)
    assert buffer.make_room(size)
    assert buffer.trace(first_ids[0]).num_rows == 0
    assert buffer.covered_since_ns == max(created, 2)  # what arrived before the forgotten chunk is incomplete
    assert buffer.trace(second_ids[0]).num_rows == 3
    assert not buffer.make_room(size * 3)
    assert buffer.peak_bytes <= buffer.max_bytes


def test_decided_chunks_that_left_whole_are_kept_as_packed() -> None:
    whole, whole_ids = trace_batch(20)
    split, split_ids = trace_batch(20)
    buffer = RecallBuffer(max_bytes=10**9)
    buffer.add(whole, arrival_ns=1)
    buffer.add(split, arrival_ns=2)
    # A late span of one trace of the second chunk keeps that trace undecided: the chunk leaves in part.
    buffer.add(in_traces(split.slice(0, 1), [split_ids[0]]), arrival_ns=5)
    packed = buffer._chunks[0]
    quiet = buffer.take_quiet(cutoff_ns=2)
    assert quiet.num_rows == whole.num_rows + split.num_rows - 3
    buffer.retain_decided(quiet, decided_ns=3)
    assert buffer._decided[0].payload is packed.payload  # not compressed again
    decided = pa.Table.from_batches([c.unpack() for c in buffer._decided])
    assert decided.to_pylist() == quiet.to_pylist()
    assert buffer.trace(split_ids[0]).num_rows == 4 and buffer.undecided_spans == 4
    assert buffer.spans == whole.num_rows + split.num_rows + 1


def test_a_large_batch_is_held_in_bounded_chunks_and_found_whole() -> None:
    """A trace lookup decompresses the chunk that holds the trace: chunks stay small, and a trace whose spans
    fall in several chunks (of one batch, or later ones) is found whole, before and after changes."""
    batch, ids = trace_batch(MAX_CHUNK_ROWS // 3 + 10)  # three spans a trace: more than one chunk's worth
    buffer = RecallBuffer(max_bytes=10**9)
    buffer.add(batch, arrival_ns=1)
    assert len(buffer._chunks) == 2 and all(c.rows <= MAX_CHUNK_ROWS for c in buffer._chunks)
    straddling = ids[MAX_CHUNK_ROWS // 3]  # its spans are rows 8190..8192: both chunks
    assert buffer.trace(straddling).num_rows == 3
    buffer.add(in_traces(batch.slice(0, 1), [ids[0]]), arrival_ns=5)
    assert buffer.trace(ids[0]).num_rows == 4
    buffer.retain_decided(buffer.take_quiet(cutoff_ns=2), decided_ns=3)
    assert all(c.rows <= MAX_CHUNK_ROWS for c in [*buffer._chunks, *buffer._decided])
    assert buffer.trace(ids[0]).num_rows == 4 and buffer.trace(straddling).num_rows == 3
    assert buffer.trace(ids[-1]).to_pylist() == [r for r in batch.to_pylist() if r["trace_id"] == ids[-1]]
    assert buffer.trace(bytes(16)).num_rows == 0
    buffer.make_room(buffer.max_bytes)  # every decided chunk forgotten
    assert buffer.trace(straddling).num_rows == 0 and buffer.trace(ids[0]).num_rows == 4  # undecided: kept


def test_a_lookup_that_read_the_store_passes_over_only_the_kept_decided_spans() -> None:
    """Decided spans of a kept trace are in the store; the undecided ones, those still being decided and a
    dropped trace's are only here, so a lookup that read the store still gets them."""
    batch, ids = trace_batch(20)
    buffer = RecallBuffer(max_bytes=10**9)
    buffer.add(batch, arrival_ns=1)
    buffer.retain_decided(
        buffer.take_quiet(cutoff_ns=2), decided_ns=3, kept_ids=pa.array(ids[:2], pa.binary(16))
    )
    buffer.add(in_traces(batch.slice(0, 1), [ids[0]]), arrival_ns=5)
    assert buffer.trace(ids[0]).num_rows == 4 and buffer.trace(ids[0], skip_kept=True).num_rows == 1
    assert buffer.trace(ids[1]).num_rows == 3 and buffer.trace(ids[1], skip_kept=True).num_rows == 0
    assert buffer.trace(ids[2], skip_kept=True).to_pylist() == buffer.trace(ids[2]).to_pylist()
    assert buffer.trace(ids[2]).num_rows == 3  # dropped: only here
    deciding = buffer.take_quiet(cutoff_ns=10)  # the late span is being decided: still visible
    assert buffer.trace(ids[0], skip_kept=True).num_rows == 1
    buffer.retain_decided(deciding, decided_ns=11)  # kept ids not given: none kept
    assert buffer.trace(ids[0], skip_kept=True).num_rows == 1


def test_a_read_of_the_newest_spans_unpacks_only_the_newest_chunks() -> None:
    buffer = RecallBuffer(max_bytes=10**9)
    batches = [trace_batch(10, spans_per_trace=3) for _ in range(5)]  # 30 spans each, oldest first
    for arrival, (batch, _) in enumerate(batches):
        buffer.add(batch, arrival_ns=arrival + 1)
    buffer.retain_decided(buffer.take_quiet(cutoff_ns=2), decided_ns=3)  # the two oldest are decided
    newest_ids = {i for _, ids in batches[3:] for i in ids}
    assert set(buffer.snapshot(newest=31).column("trace_id").to_pylist()) == newest_ids  # whole chunks
    assert buffer.snapshot(newest=30).num_rows == 30
    assert buffer.snapshot(newest=10**6).num_rows == buffer.snapshot().num_rows == 150
    # Undecided chunks are the newest; decided ones come before them, newest first.
    assert buffer.snapshot(newest=120).num_rows == 120
    assert buffer.snapshot(include_decided=False, newest=10**6).num_rows == 90


def test_a_read_of_some_minutes_unpacks_only_the_chunks_that_may_start_in_them() -> None:
    """``starting``: a chunk whose spans all start outside every window is left packed; every span starting in
    a window still comes, decided or not."""
    minute = 60 * 10**9
    buffer = RecallBuffer(max_bytes=10**9)
    batches = [trace_batch(10, start_ns=1_700_000_000_000_000_000 + k * minute) for k in range(5)]
    for arrival, (batch, _) in enumerate(batches):
        buffer.add(batch, arrival_ns=arrival + 1)
    buffer.retain_decided(buffer.take_quiet(cutoff_ns=2), decided_ns=3)  # the two oldest are decided
    every = buffer.snapshot()
    starts = every.column("start_ns").to_pylist()
    for windows in (
        [(min(starts) + minute, min(starts) + 2 * minute)],
        [(0, 1), (max(starts), max(starts) + 1)],
        [],
    ):
        got = buffer.snapshot(starting=windows)
        wanted = [s for s in starts if any(lo <= s < hi for lo, hi in windows)]
        inside = [s for s in got.column("start_ns").to_pylist() if any(lo <= s < hi for lo, hi in windows)]
        assert sorted(inside) == sorted(wanted)
        assert got.num_rows == (30 if windows else 0)  # one chunk of the five at most
    assert buffer.snapshot(newest=30, starting=[(0, 2**62)]).num_rows == 30


def test_a_buffer_full_of_decided_traces_keeps_the_newest_decided_ones() -> None:
    """Decided traces give way to newer ones, oldest first: a buffer that older decided traces fill still takes
    each round just decided (it once passed over every round while at 90% of its bound, as a full buffer
    always is, keeping the old ones instead). Only undecided spans filling the bound leave a round out."""
    first, _ = trace_batch(4)
    bound = RecallBuffer.packed_size(first) * 20
    buffer = RecallBuffer(max_bytes=bound)
    rounds: list[list[bytes]] = []
    for serial in range(100):
        batch, ids = trace_batch(4)
        buffer.make_room(RecallBuffer.packed_size(batch))  # as the satellite does before it adds
        buffer.add(batch, arrival_ns=serial)
        rounds.append(ids)
        # Each round decides what arrived three rounds before: the two since are still undecided.
        buffer.retain_decided(buffer.take_quiet(serial - 3), serial)
        assert buffer.nbytes <= bound
        if serial >= 3:
            assert all(buffer.trace(trace_id).num_rows == 3 for trace_id in rounds[serial - 3]), serial
    assert buffer.trace(rounds[0][0]).num_rows == 0

    crowded = RecallBuffer(max_bytes=bound)
    while crowded.nbytes < 0.9 * bound:  # undecided spans, arrived after the cutoff below
        crowded.add(trace_batch(4)[0], arrival_ns=50)
    late, late_ids = trace_batch(4)
    crowded.add(late, arrival_ns=10)
    decided_ns = time.time_ns() + 10**12
    crowded.retain_decided(crowded.take_quiet(cutoff_ns=20), decided_ns=decided_ns)
    assert crowded.trace(late_ids[0]).num_rows == 0 and crowded.covered_since_ns == decided_ns
