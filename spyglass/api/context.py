"""What the API reads from: the store, the satellite's live view and counters. Built once by the server.

In a cluster, ``store`` and ``satellite`` are the cluster-wide read views (``spyglass.cluster.views``), so
every handler answers for the whole cluster unchanged; ``own_satellite`` is this member's own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa

from spyglass.analysis.live import LiveSpans
from spyglass.analysis.metrics import LiveRollups
from spyglass.analysis.ownership import Ownership
from spyglass.satellite.log_writer import LogWriter
from spyglass.satellite.pipeline import Satellite, SatelliteCounters
from spyglass.store.protocol import Store

if TYPE_CHECKING:
    from spyglass.cluster.node import ClusterNode


class LiveBuffer(LiveSpans, Protocol):
    """The recall buffer as the API reads it."""

    @property
    def spans(self) -> int: ...

    @property
    def nbytes(self) -> int: ...

    @property
    def undecided_spans(self) -> int: ...

    @property
    def max_bytes(self) -> int: ...

    @property
    def peak_bytes(self) -> int: ...


class SatelliteView(Protocol):
    """The satellite as the API reads it: ``Satellite`` itself, or the cluster-wide view."""

    @property
    def counters(self) -> SatelliteCounters: ...

    @property
    def queued_spans(self) -> int: ...

    @property
    def buffer(self) -> LiveBuffer: ...

    @property
    def aggregator(self) -> LiveRollups: ...

    def live_trace(self, trace_id: bytes) -> pa.Table: ...


@dataclass(frozen=True)
class ApiContext:
    """Everything a handler may read, built once by the server (the cluster-wide views when clustered)."""

    store: Store
    satellite: SatelliteView
    query_token: str | None = None
    ownership: Ownership = field(default_factory=Ownership)
    log_writer: LogWriter | None = None
    cluster: ClusterNode | None = None
    #: Each receiver's in-flight figures (exports refused at the door, exports and bytes in flight), by name.
    ingest_status: Callable[[], dict[str, dict[str, int]]] = dict

    @property
    def own_satellite(self) -> Satellite:
        """This member's own satellite (what ``/metrics`` and peers' requests report)."""
        if self.cluster is not None:
            return self.cluster.satellite
        assert isinstance(self.satellite, Satellite)
        return self.satellite
