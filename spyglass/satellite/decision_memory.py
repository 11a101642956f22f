"""Remembers recent sampling decisions, so spans that arrive after their trace was decided follow it.

A late span of a kept trace is stored with the trace's weight; a late span of a dropped trace is dropped
(it was still counted in the aggregates). Decisions are kept as Arrow columns per decision round and the
oldest rounds are forgotten past a bound, so memory stays fixed whatever the traffic.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class DecisionMemory:
    """Trace ids of recent decisions and, for kept ones, their weights (NaN for dropped)."""

    def __init__(self, max_traces: int = 1_000_000) -> None:
        self.max_traces = max_traces
        self._rounds: deque[tuple[pa.Array, np.ndarray]] = deque()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def remember(self, trace_ids: pa.Array, weights: np.ndarray) -> None:
        """Record one round of decisions: ``weights[i]`` is NaN when ``trace_ids[i]`` was dropped."""
        if len(trace_ids) == 0:
            return
        self._rounds.append((trace_ids, weights))
        self._size += len(trace_ids)
        while self._size > self.max_traces and len(self._rounds) > 1:
            forgotten, _ = self._rounds.popleft()
            self._size -= len(forgotten)

    def recall(self, trace_ids: pa.Array) -> tuple[pa.Array, np.ndarray]:
        """The ids among ``trace_ids`` already decided, with their weights (NaN: dropped)."""
        wanted = pc.unique(trace_ids)
        found_ids: list[pa.Array] = []
        found_weights: list[np.ndarray] = []
        for ids, weights in self._rounds:
            hit = pc.is_in(ids, value_set=wanted).to_numpy(zero_copy_only=False)
            if hit.any():
                found_ids.append(ids.filter(pa.array(hit)))
                found_weights.append(weights[hit])
        if not found_ids:
            return pa.array([], pa.binary(16)), np.zeros(0)
        return pa.concat_arrays(found_ids), np.concatenate(found_weights)
