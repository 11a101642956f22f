"""Where trace ids are among the recall buffer's decided chunks, kept up as chunks come and go.

A full buffer holds millions of spans in thousands of chunks, nearly all of them decided, and while spans arrive
its chunks change every few milliseconds: new decided chunks at one end, the oldest forgotten at the other.
Indexing every chunk again for each lookup after a change (``TraceIndex``) cost 5 ms a lookup at 11M buffered
spans (``bench/recall_lookup.py``), more than the store's part of a trace by id. Here the decided chunks are
indexed in segments of about ``SEGMENT_KEYS`` trace ids: a segment, once full, is sorted once and never changes,
so a lookup is two binary searches per segment, and the newest, unfilled one is scanned as it grows. Forgetting
the oldest chunk only moves where the first segment starts; the segment goes once all its chunks are gone.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from spyglass.satellite.recall_chunk import Chunk, chunks_holding, id_key

#: Trace ids a segment holds before it is sealed (sorted). Fewer make more segments to search per lookup (a
#: binary search each); more make the unsealed one, scanned whole, longer: at 11M buffered spans, about 20.
SEGMENT_KEYS = 65_536


class _Sealed:
    """Chunks whose keys are sorted together once: a lookup is two binary searches, then whole ids compared."""

    def __init__(self, chunks: list[Chunk]) -> None:
        self.chunks = chunks
        keys = np.concatenate([chunk.id_keys for chunk in chunks]).astype(np.uint64)
        # Key and place in one word, sorted in place: ordered by key, then place, as a stable argsort orders
        # them, in 1.9 ms for 65,536 ids against 7.2 (the buffer's lookups wait for it).
        packed = (keys << np.uint64(32)) | np.arange(len(keys), dtype=np.uint64)
        packed.sort()
        # 8 bytes a trace id, its key and its place: under a byte a buffered span at ten spans a trace.
        self.keys = (packed >> np.uint64(32)).astype(np.uint32)
        self.order = (packed & np.uint64(0xFFFF_FFFF)).astype(np.int32)
        self.starts = np.cumsum([0, *(len(chunk.id_keys) for chunk in chunks)])

    def find(self, key: int, trace_id: bytes, first_held: int) -> list[tuple[Chunk, int]]:
        wanted = np.uint32(key)
        low = int(np.searchsorted(self.keys, wanted, side="left"))
        high = int(np.searchsorted(self.keys, wanted, side="right"))
        return chunks_holding(self.chunks, self.starts, self.order[low:high].tolist(), trace_id, first_held)


class _Growing:
    """The newest decided chunks, their keys appended to one array as they come (doubling its room), scanned.
    Forgetting the oldest moves where the live ones start, and they are copied down once half are forgotten."""

    def __init__(self) -> None:
        self.chunks: list[Chunk] = []
        self._keys = np.empty(1024, np.uint32)
        self._starts = [0]
        #: Chunks at the start of ``chunks`` that are forgotten.
        self._first = 0

    @property
    def held(self) -> list[Chunk]:
        return self.chunks[self._first :]

    @property
    def size(self) -> int:
        """Trace ids of the held chunks."""
        return self._starts[-1] - self._starts[self._first]

    def append(self, chunk: Chunk) -> None:
        keys = chunk.id_keys
        begin = self._starts[-1]
        end = begin + len(keys)
        if end > len(self._keys):
            grown = np.empty(max(end, 2 * len(self._keys)), np.uint32)
            grown[:begin] = self._keys[:begin]
            self._keys = grown
        self._keys[begin:end] = keys
        self.chunks.append(chunk)
        self._starts.append(end)

    def drop_oldest(self) -> None:
        self._first += 1
        if self._first * 2 > len(self.chunks):
            held = self.held
            self.chunks, self._starts, self._first = [], [0], 0
            for chunk in held:
                self.append(chunk)

    def find(self, key: int, trace_id: bytes) -> list[tuple[Chunk, int]]:
        first = self._starts[self._first]
        hits = np.flatnonzero(self._keys[first : self._starts[-1]] == np.uint32(key)) + first
        return chunks_holding(self.chunks, self._starts, hits.tolist(), trace_id)


class DecidedIndex:
    """The decided chunks in the order they were decided, oldest first, indexed by trace id. Not thread-safe:
    the recall buffer calls it under its lock."""

    def __init__(self) -> None:
        self._sealed: deque[_Sealed] = deque()
        #: How many chunks at the start of the oldest sealed segment are forgotten already.
        self._forgotten = 0
        self._growing = _Growing()

    def append(self, chunk: Chunk) -> None:
        """A chunk decided after every other one held."""
        self._growing.append(chunk)
        if self._growing.size >= SEGMENT_KEYS:
            self._sealed.append(_Sealed(self._growing.held))
            self._growing = _Growing()

    def forget_oldest(self) -> None:
        """The oldest chunk held is forgotten."""
        if not self._sealed:
            self._growing.drop_oldest()
            return
        self._forgotten += 1
        if self._forgotten == len(self._sealed[0].chunks):
            self._sealed.popleft()
            self._forgotten = 0

    def find(self, trace_id: bytes) -> list[tuple[Chunk, int]]:
        """Each held chunk with spans of the trace, and the trace's index among that chunk's distinct ids."""
        key = id_key(trace_id)
        found: list[tuple[Chunk, int]] = []
        for number, segment in enumerate(self._sealed):
            found += segment.find(key, trace_id, self._forgotten if number == 0 else 0)
        return found + self._growing.find(key, trace_id)
