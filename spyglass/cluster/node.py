"""One satellite's membership of a cluster: routing and forwarding of spans, the cluster read views, and the
background upkeep (re-reading the peers file, probing members found down). Built by the server when
``--peers`` or ``--peers-file`` is given."""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

from spyglass.cluster.forwarder import Forwarder, ForwarderSettings
from spyglass.cluster.membership import Membership
from spyglass.cluster.peer_client import PeerClient
from spyglass.cluster.peer_reads import PeerReads
from spyglass.cluster.routing import RoutingSink
from spyglass.cluster.views import ClusterLive, ClusterRollups, ClusterStore, FanOut
from spyglass.satellite.pipeline import Satellite
from spyglass.store.protocol import Store

log = logging.getLogger(__name__)

#: Seconds between looks at the peers file and probes of members found down.
UPKEEP_INTERVAL_S = 1.0


class ClusterNode:
    """Everything cluster-specific of one satellite; the server wires ``sink`` to the receivers and the
    views to the API."""

    def __init__(
        self,
        satellite: Satellite,
        store: Store,
        *,
        peers: tuple[str, ...] = (),
        peers_file: Path | None = None,
        self_url: str = "",
        shared_store: bool = False,
        forward: bool = True,
        ingest_token: str | None = None,
        query_token: str | None = None,
        forwarder_settings: ForwarderSettings | None = None,
        peer_timeout_s: float = 5.0,
        max_body_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self.satellite = satellite
        self.store = store
        #: What the API port's ``/v1/traces`` needs to take spans forwarded by peers.
        self.ingest_token = ingest_token
        self.max_body_bytes = max_body_bytes
        self.membership = Membership(peers, self_url, peers_file)
        self.forwarder = Forwarder(
            forwarder_settings or ForwarderSettings(ingest_token=ingest_token), self._peer_failed
        )
        self.router = RoutingSink(satellite, self.membership, self.forwarder)
        #: What receivers submit to: the router, or the satellite itself when something upstream (OpenTelemetry
        #: Collectors' load-balancing exporter) already sends every trace to one satellite.
        self.sink = self.router if forward else satellite
        self.forward = forward
        self.peers = PeerClient(self.membership, query_token, peer_timeout_s)
        self.shared_store = shared_store
        fan_out = FanOut(self.peers, shared_store)
        self.store_view = ClusterStore(store, fan_out)
        self.live_view = ClusterLive(satellite, fan_out)
        self.rollups_view = ClusterRollups(satellite, fan_out)
        self.spans_from_peers = 0
        #: Forwarded batches received again (a retry after a lost answer), acknowledged and not ingested twice.
        self.batches_repeated = 0
        self._stop = threading.Event()
        self._upkeep: threading.Thread | None = None

    def _peer_failed(self, url: str, batches: list[Any]) -> None:
        self.router.reroute(url, batches)

    def start(self, self_url: str | None = None) -> None:
        if self_url is not None and not self.membership.self_url:
            self.membership.set_self_url(self_url)
        configured = self.membership.configured
        if configured and self.membership.self_url not in configured:
            log.warning(
                "this satellite (%s) is not among the cluster's members %s: it owns no traces",
                self.membership.self_url,
                ", ".join(configured),
            )
        self.forwarder.start()
        self._upkeep = threading.Thread(target=self._upkeep_loop, name="spyglass-cluster", daemon=True)
        self._upkeep.start()

    def stop(self) -> None:
        """Send what is queued for peers (a few seconds at most), then stop."""
        self._stop.set()
        if self._upkeep is not None:
            self._upkeep.join(5.0)
        self.forwarder.stop()
        self.peers.close()

    def _upkeep_loop(self) -> None:
        while not self._stop.wait(UPKEEP_INTERVAL_S):
            try:
                self.membership.poll()
                for url in self.membership.down:
                    if self.peers.ping(url):
                        self.membership.mark_up(url)
            except Exception:  # upkeep must outlive any one bad round
                log.exception("cluster upkeep failed")

    def status(self, local: dict[str, Any]) -> dict[str, Any]:
        """``/api/v1/status`` for the cluster: the API reference's fields summed over the members, and per
        member."""
        local = {**local, "cluster_member": self._member_extras()}
        answers = PeerReads(self.peers).statuses()
        members = [local, *answers]
        total = _sum_status(members)
        total["version"] = local.get("version")
        total.update(_cluster_storage(members, self.shared_store))
        configured = self.membership.configured
        answered = {m["cluster_member"]["url"] for m in members}
        total["cluster"] = {
            "self": self.membership.self_url,
            "members": list(configured),
            "down": sorted(self.membership.down),
            "missing": sorted(set(configured) - answered),
            "forwarding": self.forward,
            "by_member": [
                {
                    **m["cluster_member"],
                    "spans_received": m.get("spans_received"),
                    "spans_rejected": m.get("spans_rejected"),
                    "traces_decided": m.get("traces_decided"),
                    "traces_kept": m.get("traces_kept"),
                    "spans_stored": m.get("spans_stored"),
                    "recall": m.get("recall"),
                }
                for m in sorted(members, key=lambda m: str(m["cluster_member"]["url"]))
            ],
        }
        total.pop("cluster_member", None)
        return total

    def local_status_extras(self) -> dict[str, Any]:
        return self._member_extras()

    def _member_extras(self) -> dict[str, Any]:
        ring = self.membership.ring()
        return {
            "url": self.membership.self_url,
            "owns_traces": ring.self_index is not None,
            "ring": list(ring.members),
            "spans_from_peers": self.spans_from_peers,
            "batches_repeated": self.batches_repeated,
            "forward_queued_spans": self.forwarder.queued_spans,
            **asdict(self.forwarder.counters),
        }


#: Storage figures that are instants or settings, not amounts: the cluster's is the earliest, the latest, the
#: largest or this member's, never a sum.
_EARLIEST = ("oldest_span_ns", "oldest_log_ns", "oldest_rollup_ns")
_LATEST = ("last_pass_ns", "longest_step_s", "last_compaction_copy_s", "last_compaction_pause_s")


def _cluster_storage(members: list[dict[str, Any]], shared_store: bool) -> dict[str, Any]:
    """``oldest_ns``, ``disk_bytes`` and ``storage`` for the cluster. Each member expires and measures its own
    store: amounts add up, the oldest data is the earliest any member holds. With one shared store every
    member measures the same database, so this member's figures are the cluster's."""
    local = members[0]
    if shared_store or local.get("storage") is None:
        return {key: local.get(key) for key in ("oldest_ns", "disk_bytes", "storage")}
    reports = [m["storage"] for m in members if isinstance(m.get("storage"), dict)]
    storage = dict(local["storage"])
    for key in local["storage"]:
        values = [r[key] for r in reports if r.get(key) is not None]
        if key in _EARLIEST:
            storage[key] = min(values, default=None)
        elif key in _LATEST:
            storage[key] = max(values, default=None)
        elif key.endswith(
            ("_bytes", "_expired", "_downsampled", "_steps", "_passes", "compactions", "_compacted")
        ):
            storage[key] = sum(values)
    oldest = [m["oldest_ns"] for m in members if m.get("oldest_ns") is not None]
    return {
        "oldest_ns": min(oldest, default=None),
        "disk_bytes": storage["disk_bytes"],
        "storage": storage,
    }


def _sum_status(statuses: list[dict[str, Any]]) -> dict[str, Any]:
    """Numbers summed key by key (nested objects too); other values taken from the first status."""
    total: dict[str, Any] = {}
    for status in statuses:
        for key, value in status.items():
            if isinstance(value, bool) or value is None or isinstance(value, str | list):
                total.setdefault(key, value)
            elif isinstance(value, int | float):
                total[key] = (total.get(key) or 0) + value  # None: a member without it
            elif isinstance(value, dict):
                total[key] = (
                    _sum_status([total[key], value]) if isinstance(total.get(key), dict) else dict(value)
                )
    return total
