"""Cluster-wide read views: the store and the satellite's live data as the API reads them, whole-cluster.

``ClusterStore`` implements the ``Store`` read verbs by asking this member's store and every peer's, then
merging (concatenate; newest first and ``limit`` for trace search; rollup rows summed by key; unions of
names). When every member writes to one shared store (ClickHouse), store reads stay local, or every row
would come back once per member. ``ClusterSatellite`` does the same for the live data that never reaches a
store: the recall buffers and the aggregators' rows not yet written. Writes always go to the local store.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from spyglass.cluster.peer_client import PeerClient
from spyglass.model.rollups import ROLLUP_SCHEMA, TRACE_SUMMARY_SCHEMA, merge_rollups
from spyglass.satellite.pipeline import Satellite, SatelliteCounters
from spyglass.store.protocol import ScanFilter, Store, TraceQuery


def _concat(tables: list[pa.Table]) -> pa.Table:
    """Tables of one kind from several members; the local one first sets the schema."""
    if len(tables) == 1:
        return tables[0]
    schema = tables[0].schema
    return pa.concat_tables([t if t.schema == schema else t.cast(schema) for t in tables])


def query_args(query: TraceQuery) -> dict[str, Any]:
    return asdict(query)


def query_from_args(args: dict[str, Any]) -> TraceQuery:
    values = dict(args)
    values["attributes"] = tuple((str(k), str(v)) for k, v in values.get("attributes", ()))
    return TraceQuery(**values)


def filter_args(filters: ScanFilter | None) -> dict[str, Any] | None:
    return asdict(filters) if filters is not None else None


def filter_from_args(args: dict[str, Any] | None) -> ScanFilter | None:
    if args is None:
        return None
    values = dict(args)
    values["attributes"] = tuple((str(k), str(v)) for k, v in values.get("attributes", ()))
    return ScanFilter(**values)


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


class ClusterStore:
    """``Store`` over the whole cluster; ``shared`` when all members write one store (store reads stay local)."""

    def __init__(self, local: Store, peers: PeerClient, shared: bool) -> None:
        self.local = local
        self.peers = peers
        self.shared = shared
        self._capture = threading.local()

    def _fan_out(self, verb: str, args: dict[str, Any]) -> list[Any]:
        return [] if self.shared else self.peers.ask_all(verb, args)

    # -- writes: this member's own store --------------------------------------------------------------

    def write(self, spans: pa.Table) -> None:
        self.local.write(spans)

    def write_rollups(self, rows: pa.Table) -> None:
        self.local.write_rollups(rows)

    def write_logs(self, logs: pa.Table) -> None:
        self.local.write_logs(logs)

    def close(self) -> None:
        self.local.close()

    # -- reads: every member ---------------------------------------------------------------------------

    def trace(self, trace_id: bytes) -> pa.Table:
        return _concat(
            [self.local.trace(trace_id), *self._fan_out("store.trace", {"trace_id": trace_id.hex()})]
        )

    def find_traces(self, query: TraceQuery) -> pa.Table:
        found = [self.local.find_traces(query), *self._fan_out("store.find_traces", query_args(query))]
        if len(found) == 1:
            return found[0]
        return merge_trace_summaries(_concat([f.cast(TRACE_SUMMARY_SCHEMA) for f in found]), query.limit)

    def scan(
        self, columns: list[str], start_ns: int, end_ns: int, filters: ScanFilter | None = None
    ) -> pa.Table:
        args = {"columns": columns, "start_ns": start_ns, "end_ns": end_ns, "filters": filter_args(filters)}
        return _concat(
            [self.local.scan(columns, start_ns, end_ns, filters), *self._fan_out("store.scan", args)]
        )

    def rollups(
        self,
        start_ns: int,
        end_ns: int,
        *,
        service: str | None = None,
        operation: str | None = None,
        attr_key: str | None = None,
        resolution_s: int | None = None,
    ) -> pa.Table:
        args = {
            "start_ns": start_ns,
            "end_ns": end_ns,
            "service": service,
            "operation": operation,
            "attr_key": attr_key,
            "resolution_s": resolution_s,
        }
        local = self.local.rollups(**args)  # type: ignore[arg-type]
        captured: dict[str, Any] | None = getattr(self._capture, "args", None)
        if (
            captured is not None
        ):  # inside ClusterAggregator.read_consistent: local only, remember the question
            captured.update(args)
            return local
        remote = self._fan_out("store.rollups", args)
        if not remote:
            return local
        return merge_rollups(_concat([local.cast(ROLLUP_SCHEMA), *[r.cast(ROLLUP_SCHEMA) for r in remote]]))

    @contextlib.contextmanager
    def local_rollups(self, captured: dict[str, Any]) -> Iterator[None]:
        """Within: ``rollups`` reads only this member's store and records its arguments in ``captured``."""
        self._capture.args = captured
        try:
            yield
        finally:
            self._capture.args = None

    def logs_for_traces(self, trace_ids: list[bytes], limit: int = 1000) -> pa.Table:
        args = {"trace_ids": [t.hex() for t in trace_ids], "limit": limit}
        logs = [
            self.local.logs_for_traces(trace_ids, limit),
            *self.peers.ask_all("store.logs_for_traces", args),
        ]
        if len(logs) == 1:
            return logs[0]
        merged = _concat(logs)  # logs stay where they arrived, whatever the store: always ask everyone
        return merged.take(pc.sort_indices(merged, sort_keys=[("time_ns", "ascending")])[:limit])

    def services(self) -> list[str]:
        names = set(self.local.services())
        for answer in self._fan_out("store.services", {}):
            names.update(answer["services"])
        return sorted(names)

    def operations(self, service: str) -> list[tuple[str, int]]:
        pairs = set(self.local.operations(service))
        for answer in self._fan_out("store.operations", {"service": service}):
            pairs.update((str(name), int(kind)) for name, kind in answer["operations"])
        return sorted(pairs)

    def span_count(self) -> int:
        return self.local.span_count() + sum(int(a["count"]) for a in self._fan_out("store.span_count", {}))


class ClusterBuffer:
    """Every member's recall buffer, read as one."""

    def __init__(self, satellite: Satellite, peers: PeerClient) -> None:
        self.local = satellite.buffer
        self.peers = peers

    @property
    def covered_since_ns(self) -> int:
        """Every member's buffer holds all it received since its own time; all of them since the latest."""
        answers = self.peers.ask_all("live.coverage", {})
        return max([self.local.covered_since_ns, *(int(a["covered_since_ns"]) for a in answers)])

    def snapshot(self, include_decided: bool = True) -> pa.Table:
        remote = self.peers.ask_all("live.snapshot", {"include_decided": include_decided})
        return _concat([self.local.snapshot(include_decided), *remote])

    # this member's own figures (status reports the cluster's from each member's status)
    @property
    def spans(self) -> int:
        return self.local.spans

    @property
    def nbytes(self) -> int:
        return self.local.nbytes

    @property
    def undecided_spans(self) -> int:
        return self.local.undecided_spans

    @property
    def max_bytes(self) -> int:
        return self.local.max_bytes

    @property
    def peak_bytes(self) -> int:
        return self.local.peak_bytes


class ClusterAggregator:
    """Every member's rollups (stored and not yet stored), each read consistently by its own member."""

    def __init__(self, satellite: Satellite, store: ClusterStore, peers: PeerClient) -> None:
        self.local = satellite.aggregator
        self.store = store
        self.peers = peers

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

    def read_consistent(
        self,
        read_stored: Callable[[], pa.Table],
        start_ns: int | None = None,
        end_ns: int | None = None,
        *,
        service: str | None = None,
        operation: str | None = None,
        attr_key: str | None = None,
    ) -> pa.Table:
        """This member's stored + pending rows read consistently (``read_stored`` answering from the local
        store only), plus each peer's own consistent read of the same question. With a shared store, peers
        send only their pending rows: the stored ones are already in the local read."""
        captured: dict[str, Any] = {}

        def read_local() -> pa.Table:
            with self.store.local_rollups(captured):
                return read_stored()

        local = self.local.read_consistent(
            read_local, start_ns, end_ns, service=service, operation=operation, attr_key=attr_key
        )
        question = captured or {
            "start_ns": start_ns,
            "end_ns": end_ns,
            "service": service,
            "operation": operation,
            "attr_key": attr_key,
            "resolution_s": None,
        }
        remote = self.peers.ask_all("live.rollups", {**question, "stored": not self.store.shared})
        return _concat([local.cast(ROLLUP_SCHEMA), *[r.cast(ROLLUP_SCHEMA) for r in remote]])


class ClusterSatellite:
    """The satellite as the API reads it, cluster-wide: live traces, buffers and aggregates of every member."""

    def __init__(self, satellite: Satellite, store: ClusterStore, peers: PeerClient) -> None:
        self.local = satellite
        self.peers = peers
        self.buffer = ClusterBuffer(satellite, peers)
        self.aggregator = ClusterAggregator(satellite, store, peers)

    @property
    def counters(self) -> SatelliteCounters:
        return self.local.counters

    @property
    def queued_spans(self) -> int:
        return self.local.queued_spans

    def live_trace(self, trace_id: bytes) -> pa.Table:
        remote = self.peers.ask_all("live.trace", {"trace_id": trace_id.hex()})
        return _concat([self.local.live_trace(trace_id), *remote])
