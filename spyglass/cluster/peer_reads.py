"""The reads one cluster member asks of the others, declared once: each verb, its arguments and its answer's
type. ``PeerReads`` asks them of every peer with typed methods; ``spyglass.api.peer`` answers them with one
handler per ``Verb`` (a test checks the two cover the same verbs), and both sides encode and decode the
arguments with the functions here, so no verb's string or argument names are kept in step by hand.
"""

from __future__ import annotations

from dataclasses import asdict
from enum import StrEnum
from typing import TYPE_CHECKING, Any, cast

import pyarrow as pa

from spyglass.store.protocol import RollupQuery, ScanFilter, TraceQuery

if TYPE_CHECKING:
    from spyglass.cluster.peer_client import PeerClient


class Verb(StrEnum):
    """``POST /api/v1/peer/{verb}``: what a member asks of another."""

    PING = "ping"
    STATUS = "status"
    STORE_TRACE = "store.trace"
    STORE_FIND_TRACES = "store.find_traces"
    STORE_SCAN = "store.scan"
    STORE_ROLLUPS = "store.rollups"
    STORE_LOGS_FOR_TRACES = "store.logs_for_traces"
    STORE_SERVICES = "store.services"
    STORE_OPERATIONS = "store.operations"
    STORE_SPAN_COUNT = "store.span_count"
    LIVE_TRACE = "live.trace"
    LIVE_SPANS = "live.snapshot"
    LIVE_COVERAGE = "live.coverage"
    LIVE_ROLLUPS = "live.rollups"


def trace_query_args(query: TraceQuery) -> dict[str, Any]:
    return asdict(query)


def trace_query_from(args: dict[str, Any]) -> TraceQuery:
    values = dict(args)
    values["attributes"] = tuple((str(k), str(v)) for k, v in values.get("attributes", ()))
    return TraceQuery(**values)


def scan_args(columns: list[str], start_ns: int, end_ns: int, filters: ScanFilter | None) -> dict[str, Any]:
    return {
        "columns": columns,
        "start_ns": start_ns,
        "end_ns": end_ns,
        "filters": asdict(filters) if filters is not None else None,
    }


def scan_filter_from(args: dict[str, Any] | None) -> ScanFilter | None:
    if args is None:
        return None
    values = dict(args)
    values["attributes"] = tuple((str(k), str(v)) for k, v in values.get("attributes", ()))
    values["kinds"] = tuple(int(kind) for kind in values.get("kinds", ()))
    return ScanFilter(**values)


def rollup_query_args(query: RollupQuery, include_stored: bool | None = None) -> dict[str, Any]:
    args = asdict(query)
    # Hints that spare work, not part of the question: a peer answering every key and bin is as right.
    args.pop("group_by", None)
    args.pop("by_bin", None)
    if include_stored is not None:
        args["stored"] = include_stored
    return args


def rollup_query_from(args: dict[str, Any]) -> tuple[RollupQuery, bool]:
    """The question, and whether the asker wants the answering member's stored rows too."""
    values = dict(args)
    include_stored = bool(values.pop("stored", True))
    values["kinds"] = tuple(int(kind) for kind in values.get("kinds", ()))
    return RollupQuery(**values), include_stored


class PeerReads:
    """Every reachable peer's answer to one read, typed; peers left out are recorded by the client as
    missing (the API then marks its answer partial). ``none`` stands for no peers at all: the reads of the
    store when every member writes the same shared store (its rows are all in the local read)."""

    def __init__(self, client: PeerClient | None) -> None:
        self.client = client

    def _ask(self, verb: Verb, args: dict[str, Any] | None = None) -> list[Any]:
        return [] if self.client is None else self.client.ask_all(verb, args or {})

    def _tables(self, verb: Verb, args: dict[str, Any]) -> list[pa.Table]:
        """Answers that are Arrow tables (the peer client decodes the IPC stream)."""
        return self._ask(verb, args)

    # -- the store ------------------------------------------------------------------------------------

    def trace(self, trace_id: bytes) -> list[pa.Table]:
        return self._tables(Verb.STORE_TRACE, {"trace_id": trace_id.hex()})

    def find_traces(self, query: TraceQuery) -> list[pa.Table]:
        return self._tables(Verb.STORE_FIND_TRACES, trace_query_args(query))

    def scan(
        self, columns: list[str], start_ns: int, end_ns: int, filters: ScanFilter | None
    ) -> list[pa.Table]:
        return self._tables(Verb.STORE_SCAN, scan_args(columns, start_ns, end_ns, filters))

    def rollups(self, query: RollupQuery) -> list[pa.Table]:
        return self._tables(Verb.STORE_ROLLUPS, rollup_query_args(query))

    def logs_for_traces(self, trace_ids: list[bytes], limit: int) -> list[pa.Table]:
        return self._tables(
            Verb.STORE_LOGS_FOR_TRACES, {"trace_ids": [t.hex() for t in trace_ids], "limit": limit}
        )

    def services(self) -> list[list[str]]:
        return [list(map(str, answer["services"])) for answer in self._ask(Verb.STORE_SERVICES)]

    def operations(self, service: str) -> list[list[tuple[str, int]]]:
        answers = self._ask(Verb.STORE_OPERATIONS, {"service": service})
        return [[(str(name), int(kind)) for name, kind in answer["operations"]] for answer in answers]

    def span_counts(self) -> list[int]:
        return [int(answer["count"]) for answer in self._ask(Verb.STORE_SPAN_COUNT)]

    # -- live data ------------------------------------------------------------------------------------

    def live_trace(self, trace_id: bytes, skip_kept: bool = False) -> list[pa.Table]:
        return self._tables(Verb.LIVE_TRACE, {"trace_id": trace_id.hex(), "skip_kept": skip_kept})

    def live_spans(self, include_decided: bool, newest: int | None = None) -> list[pa.Table]:
        return self._tables(Verb.LIVE_SPANS, {"include_decided": include_decided, "newest": newest})

    def live_coverage(self) -> list[int]:
        return [int(answer["covered_since_ns"]) for answer in self._ask(Verb.LIVE_COVERAGE)]

    def live_rollups(self, query: RollupQuery, include_stored: bool) -> list[pa.Table]:
        return self._tables(Verb.LIVE_ROLLUPS, rollup_query_args(query, include_stored))

    # -- the members themselves -----------------------------------------------------------------------

    def statuses(self) -> list[dict[str, Any]]:
        return cast("list[dict[str, Any]]", self._ask(Verb.STATUS))
