"""Cluster-wide read views: the store and the satellite's live data as the API reads them, whole-cluster.

``ClusterStore`` implements the ``Store`` read verbs by asking this member's store and every peer's, then
merging (concatenate; newest first and ``limit`` for trace search; rollup rows summed by key; unions of
names). When every member writes to one shared store (ClickHouse), store reads stay local, or every row
would come back once per member. ``ClusterLive`` (``LiveData``) and ``ClusterRollups`` (``RollupReader``) do
the same for what never reached a store: the recall buffers and the aggregators' rows not yet written. All
three ask through one ``FanOut``. Writes, retention and storage figures always go to the local store: each
member expires its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from spyglass.cluster.peer_client import PeerClient
from spyglass.cluster.peer_reads import PeerReads
from spyglass.model.rollups import ROLLUP_SCHEMA, TRACE_SUMMARY_SCHEMA, merge_rollups
from spyglass.model.span_fingerprint import SpanFingerprint
from spyglass.satellite.pipeline import Satellite
from spyglass.store.attribute_cells import CELL_SPAN_COLUMNS, attribute_cells_of
from spyglass.store.call_rollups import CALL_SPAN_COLUMNS, call_rows
from spyglass.store.protocol import RollupQuery, ScanFilter, Store, TraceQuery
from spyglass.store.store_over import StoreOver
from spyglass.store.top_values import TopValues, with_last_part


def _concat(tables: list[pa.Table]) -> pa.Table:
    """Tables of one kind from several members; the local one first sets the schema."""
    if len(tables) == 1:
        return tables[0]
    schema = tables[0].schema
    return pa.concat_tables([t if t.schema == schema else t.cast(schema) for t in tables])


def merge_trace_summaries(summaries: pa.Table, limit: int) -> pa.Table:
    """Summaries from several members: one row per trace (a trace split across members during a membership
    change is summed), newest first, at most ``limit``."""
    if summaries.num_rows == 0:
        return summaries
    ids = summaries.column("trace_id")
    if pc.count_distinct(ids).as_py() < summaries.num_rows:
        ends = pc.add(summaries.column("start_ns"), summaries.column("duration_ns"))
        merged = (
            summaries.append_column("end_ns", ends)
            .group_by("trace_id", use_threads=False)
            .aggregate(
                [
                    ("root_service", "min"),
                    ("root_operation", "min"),
                    ("start_ns", "min"),
                    ("end_ns", "max"),
                    ("span_count", "sum"),
                    ("error_count", "sum"),
                    ("sample_weight", "max"),
                ]
            )
        )
        start = merged.column("start_ns_min")
        summaries = pa.table(
            {
                "trace_id": merged.column("trace_id"),
                "root_service": merged.column("root_service_min"),
                "root_operation": merged.column("root_operation_min"),
                "start_ns": start,
                "duration_ns": pc.subtract(merged.column("end_ns_max"), start),
                "span_count": merged.column("span_count_sum"),
                "error_count": merged.column("error_count_sum"),
                "sample_weight": merged.column("sample_weight_max"),
            }
        ).cast(summaries.schema)
    order = pc.sort_indices(summaries, sort_keys=[("start_ns", "descending"), ("trace_id", "ascending")])
    return summaries.take(order[:limit])


class FanOut:
    """Who a cluster-wide read asks besides this member: every reachable peer (``peers``), and for reads of
    the store ``store_peers``, which is nobody when every member writes the one shared store (its rows are
    all in the local read already). Peers that cannot answer are recorded as missing by the peer client."""

    def __init__(self, client: PeerClient, shared_store: bool) -> None:
        self.peers = PeerReads(client)
        self.store_peers = PeerReads(None) if shared_store else self.peers
        self.shared_store = shared_store


class ClusterStore(StoreOver):
    """``Store`` over the whole cluster; with a shared store, reads stay local. Writes, retention and storage
    figures are this member's own store's (``StoreOver``): each member expires and measures its own."""

    def __init__(self, local: Store, fan_out: FanOut) -> None:
        super().__init__(local)
        self.fan_out = fan_out

    # -- reads: every member ---------------------------------------------------------------------------

    def trace(self, trace_id: bytes) -> pa.Table:
        return _concat([self.local.trace(trace_id), *self.fan_out.store_peers.trace(trace_id)])

    def trace_unless_held(self, trace_id: bytes, held: SpanFingerprint) -> pa.Table | None:
        """``trace`` always: peers' stores may hold spans of it too."""
        return self.trace(trace_id)

    def traces(self, trace_ids: Sequence[bytes]) -> pa.Table:
        # Peers are asked trace by trace (their own stores each read one by one).
        remote = [part for trace_id in trace_ids for part in self.fan_out.store_peers.trace(trace_id)]
        return _concat([self.local.traces(trace_ids), *remote])

    def find_traces(self, query: TraceQuery) -> pa.Table:
        local = self.local.find_traces(query)
        remote = self.fan_out.store_peers.find_traces(query)
        if not remote:
            return local
        found = [f.cast(TRACE_SUMMARY_SCHEMA) for f in (local, *remote)]
        return merge_trace_summaries(_concat(found), query.limit)

    def scan(
        self, columns: list[str], start_ns: int, end_ns: int, filters: ScanFilter | None = None
    ) -> pa.Table:
        local = self.local.scan(columns, start_ns, end_ns, filters)
        return _concat([local, *self.fan_out.store_peers.scan(columns, start_ns, end_ns, filters)])

    def rollups(self, query: RollupQuery) -> pa.Table:
        local = self.local.rollups(query)
        remote = self.fan_out.store_peers.rollups(query)
        if not remote:
            return local
        return merge_rollups(_concat([t.cast(ROLLUP_SCHEMA) for t in (local, *remote)]))

    def attribute_cells(
        self,
        key: str,
        start_ns: int,
        end_ns: int,
        step_ns: int | None,
        filters: ScanFilter | None = None,
        top: TopValues | None = None,
    ) -> pa.Table:
        remote = self.fan_out.store_peers.scan(CELL_SPAN_COLUMNS, start_ns, end_ns, filters)
        theirs = [attribute_cells_of(spans, key, start_ns, step_ns) for spans in remote]
        return _concat(
            with_last_part(
                top,
                theirs,
                lambda chosen: self.local.attribute_cells(key, start_ns, end_ns, step_ns, filters, chosen),
            )
        )

    def calls(self, start_ns: int, end_ns: int) -> pa.Table:
        if self.fan_out.shared_store:  # one store holds every member's spans, and its call rollups
            return self.local.calls(start_ns, end_ns)
        # Members keep their own call rollups; peers are not asked for them: the window's spans, joined here.
        return call_rows(self.scan(CALL_SPAN_COLUMNS, start_ns, end_ns))

    def logs_for_traces(self, trace_ids: list[bytes], limit: int = 1000) -> pa.Table:
        # Logs stay where they arrived, whatever the store: always ask everyone.
        remote = self.fan_out.peers.logs_for_traces(trace_ids, limit)
        local = self.local.logs_for_traces(trace_ids, limit)
        if not remote:
            return local
        merged = _concat([local, *remote])
        return merged.take(pc.sort_indices(merged, sort_keys=[("time_ns", "ascending")])[:limit])

    def services(self) -> list[str]:
        names = set(self.local.services())
        for answer in self.fan_out.store_peers.services():
            names.update(answer)
        return sorted(names)

    def operations(self, service: str) -> list[tuple[str, int]]:
        pairs = set(self.local.operations(service))
        for answer in self.fan_out.store_peers.operations(service):
            pairs.update(answer)
        return sorted(pairs)

    def span_count(self) -> int:
        return self.local.span_count() + sum(self.fan_out.store_peers.span_counts())


class ClusterLive:
    """Every member's recall buffer as one ``LiveData``."""

    def __init__(self, satellite: Satellite, fan_out: FanOut) -> None:
        self.local = satellite
        self.fan_out = fan_out

    @property
    def covered_since_ns(self) -> int:
        """Every member's buffer holds all it received since its own time; all of them since the latest."""
        return max([self.local.covered_since_ns, *self.fan_out.peers.live_coverage()])

    def recent_spans(
        self,
        include_decided: bool = True,
        newest: int | None = None,
        starting: Sequence[tuple[int, int]] | None = None,
    ) -> pa.Table:
        # Peers send their newest spans whatever their starts: more than needed, as the contract allows.
        remote = self.fan_out.peers.live_spans(include_decided, newest)
        return _concat([self.local.recent_spans(include_decided, newest, starting), *remote])

    def live_trace_split(self, trace_id: bytes) -> tuple[pa.Table, pa.Table]:
        """This member's kept copies; the peers' kept spans are read from the store (their count and ids are
        not asked of them, so a trace with spans on several members is read from the store)."""
        kept, others = self.local.live_trace_split(trace_id)
        return kept, _concat([others, *self.fan_out.peers.live_trace(trace_id, True)])


class ClusterRollups:
    """Every member's rollups as one ``RollupReader``: each member reads its own store and pending rows
    consistently and answers for itself, so no row is counted twice while a member writes a drain. With a
    shared store, this member's read holds every stored row, and peers send only their pending rows."""

    def __init__(self, satellite: Satellite, fan_out: FanOut) -> None:
        self.local = satellite.rollups
        self.fan_out = fan_out

    @property
    def attribute_keys(self) -> tuple[str, ...]:
        return self.local.attribute_keys

    @property
    def bucket_s(self) -> int:
        return self.local.bucket_s

    @property
    def attribute_bucket_s(self) -> int:
        return self.local.attribute_bucket_s

    @property
    def first_span_ns(self) -> int | None:
        # This member's own: where it began observing. Data older than that is found in the (cluster) store.
        return self.local.first_span_ns

    def read(self, query: RollupQuery) -> pa.Table:
        remote = self.fan_out.peers.live_rollups(query, include_stored=not self.fan_out.shared_store)
        return _concat([t.cast(ROLLUP_SCHEMA) for t in (self.local.read(query), *remote)])
