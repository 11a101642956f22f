"""The span sink receivers use in a cluster: each span goes to the satellite owning its trace.

It splits every decoded batch by owner (one vectorized hash of the ``trace_id`` column), hands this
satellite's share to the local satellite and queues the rest for the owners, so that every trace is
buffered, counted and decided whole by one satellite. Overload keeps its meaning: the request is refused
(429) before anything of it is accepted when the local intake or a live owner's queue is full.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa

from spyglass.cluster.forwarder import Forwarder
from spyglass.cluster.membership import Membership
from spyglass.receivers.sink import SpanSink

log = logging.getLogger(__name__)


class RoutingSink:
    """``SpanSink`` that routes by trace owner; ``local`` is this satellite's own sink."""

    def __init__(self, local: SpanSink, membership: Membership, forwarder: Forwarder) -> None:
        self.local = local
        self.membership = membership
        self.forwarder = forwarder

    def submit(self, batch: pa.RecordBatch) -> bool:
        return self._route(batch, refuse_when_full=True)

    def count_rejected(self, spans: int) -> None:
        self.local.count_rejected(spans)

    def accepting(self) -> bool:
        return self.local.accepting()

    def reroute(self, failed_url: str, batches: list[pa.RecordBatch]) -> None:
        """A peer stopped answering: mark it down, and send what was queued for it to the new owners."""
        self.membership.mark_down(failed_url)
        for batch in batches:
            if self._route(batch, refuse_when_full=False):
                self.forwarder.count(spans_rerouted=batch.num_rows)
            else:
                self.forwarder.count(spans_lost=batch.num_rows)

    def _route(self, batch: pa.RecordBatch, refuse_when_full: bool) -> bool:
        ring = self.membership.ring()
        me = ring.self_index
        if len(ring.members) == 1 and me == 0:
            return self.local.submit(batch)
        owners = ring.owners(batch.column("trace_id"))
        counts = np.bincount(owners, minlength=len(ring.members))
        if refuse_when_full:
            for index, spans in enumerate(counts.tolist()):
                if spans and index != me and not self.forwarder.has_room(ring.members[index], spans):
                    return False
        if me is not None and counts[me]:
            mine = batch if counts[me] == batch.num_rows else batch.filter(pa.array(owners == me))
            if not self.local.submit(mine):
                return False
        for index, spans in enumerate(counts.tolist()):
            if spans and index != me:
                self.forwarder.send(ring.members[index], batch.filter(pa.array(owners == index)))
        return True
