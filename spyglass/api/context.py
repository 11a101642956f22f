"""What the API reads from: the store, the satellite's live view and counters. Built once by the server."""

from __future__ import annotations

from dataclasses import dataclass, field

from spyglass.analysis.ownership import Ownership
from spyglass.satellite.log_writer import LogWriter
from spyglass.satellite.pipeline import Satellite
from spyglass.store.protocol import Store


@dataclass(frozen=True)
class ApiContext:
    store: Store
    satellite: Satellite
    query_token: str | None = None
    ownership: Ownership = field(default_factory=Ownership)
    log_writer: LogWriter | None = None
