"""Late spans follow their trace's decision; the memory forgets the oldest decisions past its bound."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from spyglass.satellite.decision_memory import DecisionMemory


def ids(*values: int) -> pa.Array:
    return pa.array([v.to_bytes(16, "big") for v in values], pa.binary(16))


def test_recall_kept_and_dropped() -> None:
    memory = DecisionMemory()
    memory.remember(ids(1, 2, 3), np.array([5.0, math.nan, 1.0]))
    found, weights = memory.recall(ids(2, 3, 4, 3))
    assert dict(zip(found.to_pylist(), weights.tolist(), strict=True)).keys() == {
        (2).to_bytes(16, "big"),
        (3).to_bytes(16, "big"),
    }
    by_id = dict(zip(found.to_pylist(), weights.tolist(), strict=True))
    assert math.isnan(by_id[(2).to_bytes(16, "big")]) and by_id[(3).to_bytes(16, "big")] == 1.0


def test_bound_forgets_oldest_rounds() -> None:
    memory = DecisionMemory(max_traces=4)
    memory.remember(ids(1, 2), np.ones(2))
    memory.remember(ids(3, 4), np.ones(2))
    memory.remember(ids(5, 6), np.ones(2))
    assert len(memory) == 4
    found, _ = memory.recall(ids(1, 2, 3, 5))
    assert sorted(found.to_pylist()) == [(3).to_bytes(16, "big"), (5).to_bytes(16, "big")]
