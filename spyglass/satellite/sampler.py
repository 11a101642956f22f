"""Sampling decisions: given the spans of decided traces, which to keep and what each kept one stands for.

A sampler is a pure function of the traces and live statistics, so it is tested with synthetic traces and no
server. Every sampler returns the kept spans with a ``sample_weight`` column: the number of traces each kept
trace represents, so that sums over stored traces estimate the totals.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pyarrow as pa

from spyglass.model.schema import STORED_SPAN_SCHEMA


class Sampler(Protocol):
    """Decides which of a set of whole, quiet traces go to the store."""

    def decide(self, traces: pa.Table) -> pa.Table:
        """Return the spans of kept traces (``STORED_SPAN_SCHEMA``, with ``sample_weight``)."""
        ...


class KeepAllSampler:
    """Keeps every trace with weight 1.0: the behaviour of ``--sample-rate 1.0``."""

    def decide(self, traces: pa.Table) -> pa.Table:
        weights = pa.array(np.ones(traces.num_rows, dtype=np.float64))
        return traces.append_column("sample_weight", weights).cast(STORED_SPAN_SCHEMA)
