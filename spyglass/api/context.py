"""What the API reads from: the store, the satellite's live view and counters. Built once by the server.

In a cluster, ``store``, ``live`` and ``rollups`` are the cluster-wide read views (``spyglass.cluster.views``),
so every handler answers for the whole cluster unchanged; ``satellite`` is always this member's own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from spyglass.analysis.live import LiveData, RollupReader
from spyglass.analysis.ownership import Ownership
from spyglass.model.figures import (
    AggregateFigures,
    LogCounters,
    RecallFigures,
    SatelliteCounters,
    StorageStatus,
)
from spyglass.store.protocol import Store

if TYPE_CHECKING:
    from spyglass.alerting.watch import SloWatch
    from spyglass.cluster.node import ClusterNode


class Member(Protocol):
    """What the API reads of this member's own satellite: its figures, for status and ``/metrics``."""

    @property
    def counters(self) -> SatelliteCounters: ...

    @property
    def queued_spans(self) -> int: ...

    def recall_figures(self) -> RecallFigures: ...

    def aggregate_figures(self) -> AggregateFigures: ...


@dataclass(frozen=True)
class ApiContext:
    """Everything a handler may read, built once by the server (the cluster-wide views when clustered)."""

    store: Store
    #: Recent spans not only in the store: a trace by id, recent spans, since when all are held.
    live: LiveData
    #: The rollups of 100% of spans, stored and pending.
    rollups: RollupReader
    #: This member's own satellite: its counters and figures for status and ``/metrics``.
    satellite: Member
    query_token: str | None = None
    ownership: Ownership = field(default_factory=Ownership)
    #: The log writer's counters (updated in place as it works); ``None`` when no logs are taken.
    log_counters: LogCounters | None = None
    cluster: ClusterNode | None = None
    #: Each receiver's in-flight figures (exports refused at the door, exports and bytes in flight), by name.
    ingest_status: Callable[[], dict[str, dict[str, int]]] = dict
    #: The SLOs watched, their measures and their alerts (``None``: no SLO routes answer anything but 404).
    slos: SloWatch | None = None
    #: This member's store on disk, its oldest data and what retention did (``None``: not reported).
    storage: Callable[[], StorageStatus] | None = None
