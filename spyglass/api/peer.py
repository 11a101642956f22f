"""What satellites of one cluster ask each other on the API port: local reads for cluster-wide queries
(``POST /api/v1/peer/{verb}``, Arrow IPC or JSON back). Spans forwarded to their owner arrive on the same port
(``spyglass.receivers.forwarded``). Peer reads answer from this member's own store and satellite only, so a
query never bounces around the cluster. ``/api/v1/peer/`` sits behind ``--query-token``; forwarded spans need
the ``--ingest-token``, like any receiver.

``PartialAnswerMiddleware`` marks answers that lack some member's data: ``"partial": true`` and
``"missing_peers"`` in JSON objects, and an ``X-Spyglass-Partial`` header.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pyarrow as pa
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spyglass.api.context import ApiContext
from spyglass.api.json_response import json_response
from spyglass.api.v1 import local_status
from spyglass.cluster.node import ClusterNode
from spyglass.cluster.peer_client import (
    ARROW_STREAM,
    PEER_PREFIX,
    PartialAnswer,
    current_partial,
    table_to_ipc,
)
from spyglass.cluster.peer_reads import Verb, rollup_query_from, scan_filter_from, trace_query_from


def _arrow(table: pa.Table) -> Response:
    return Response(table_to_ipc(table), media_type=ARROW_STREAM)


def _count(value: object) -> int | None:
    """A peer's optional positive count (``newest``): None when absent or not a positive integer."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _verbs(ctx: ApiContext, node: ClusterNode) -> dict[Verb, Callable[[dict[str, Any]], Response]]:
    """One answer per ``Verb``, from this member's own store and satellite (never the cluster views)."""
    store = node.store
    satellite = node.satellite

    def live_rollups(args: dict[str, Any]) -> Response:
        """Stored and pending rows read consistently; pending only when the store is shared, since the
        asking member reads the shared store itself."""
        query, include_stored = rollup_query_from(args)
        return _arrow(satellite.rollups.read(query, include_stored))

    def status(args: dict[str, Any]) -> Response:
        storage = ctx.storage() if ctx.storage is not None else None
        own = local_status(satellite, ctx.log_counters, ctx.ingest_status(), storage)
        return json_response({**own, "cluster_member": node.local_status_extras()})

    def scan(args: dict[str, Any]) -> Response:
        filters = scan_filter_from(args.get("filters"))
        return _arrow(store.scan(args["columns"], args["start_ns"], args["end_ns"], filters))

    def logs(args: dict[str, Any]) -> Response:
        trace_ids = [bytes.fromhex(t) for t in args["trace_ids"]]
        return _arrow(store.logs_for_traces(trace_ids, int(args["limit"])))

    def operations(args: dict[str, Any]) -> Response:
        return json_response({"operations": [list(pair) for pair in store.operations(args["service"])]})

    return {
        Verb.PING: lambda args: json_response({"url": node.membership.self_url}),
        Verb.STATUS: status,
        Verb.STORE_TRACE: lambda args: _arrow(store.trace(bytes.fromhex(args["trace_id"]))),
        Verb.STORE_FIND_TRACES: lambda args: _arrow(store.find_traces(trace_query_from(args))),
        Verb.STORE_SCAN: scan,
        Verb.STORE_ROLLUPS: lambda args: _arrow(store.rollups(rollup_query_from(args)[0])),
        Verb.STORE_LOGS_FOR_TRACES: logs,
        Verb.STORE_SERVICES: lambda args: json_response({"services": store.services()}),
        Verb.STORE_OPERATIONS: operations,
        Verb.STORE_SPAN_COUNT: lambda args: json_response({"count": store.span_count()}),
        Verb.LIVE_TRACE: lambda args: _arrow(
            satellite.live_trace(bytes.fromhex(args["trace_id"]), bool(args.get("skip_kept", False)))
        ),
        Verb.LIVE_SPANS: lambda args: _arrow(
            satellite.recent_spans(bool(args.get("include_decided", True)), _count(args.get("newest")))
        ),
        Verb.LIVE_COVERAGE: lambda args: json_response({"covered_since_ns": satellite.covered_since_ns}),
        Verb.LIVE_ROLLUPS: live_rollups,
    }


#: What a peer request with missing, mistyped or out-of-range arguments raises on its way to the store.
_MALFORMED = (KeyError, TypeError, ValueError, OverflowError, AttributeError, pa.ArrowException)


def routes(ctx: ApiContext) -> list[Route]:
    """Peer routes; none unless this satellite is a member of a cluster."""
    node = ctx.cluster
    if node is None:
        return []
    verbs = {verb.value: handler for verb, handler in _verbs(ctx, node).items()}
    missing = {verb.value for verb in Verb} - set(verbs)
    assert not missing, f"peer verbs without an answer: {sorted(missing)}"

    async def peer_read(request: Request) -> Response:
        """A cluster member's local read for a cluster-wide query (``--query-token``).

        The body is the verb's arguments as a JSON object; tables come back as Arrow IPC streams."""
        handler = verbs.get(request.path_params["verb"])
        if handler is None:
            return json_response(
                {"error": f"unknown peer request {request.path_params['verb']!r}"}, status=404
            )
        try:
            args = orjson.loads(await request.body() or b"{}")
        except orjson.JSONDecodeError:
            return json_response({"error": "the body must be a JSON object"}, status=400)
        if not isinstance(args, dict):
            return json_response({"error": "the body must be a JSON object"}, status=400)
        try:
            response: Response = await run_in_threadpool(handler, args)
        except _MALFORMED as error:
            # Peers send well-formed requests; anything else is a caller's mistake, answered as one.
            name = request.path_params["verb"]
            return json_response({"error": f"malformed {name} request: {error!r}"[:500]}, status=400)
        return response

    return [Route(PEER_PREFIX + "{verb}", peer_read, methods=["POST"])]


class PartialAnswerMiddleware:
    """Collects, per API request, the peers a cluster-wide read had to leave out, and says so in the answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not scope["path"].startswith("/api/")
            or scope["path"].startswith(PEER_PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        partial = PartialAnswer()
        token = current_partial.set(partial)
        start: Message | None = None
        chunks: list[bytes] = []

        async def send_marked(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and partial.missing:
                start = message  # held until the body is complete, to be marked
                return
            if start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            assert start is not None
            await _send_partial(send, start, b"".join(chunks), sorted(partial.missing))

        try:
            await self.app(scope, receive, send_marked)
        finally:
            current_partial.reset(token)


async def _send_partial(send: Send, start: Message, body: bytes, missing: list[str]) -> None:
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
    content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
    if content_type.startswith(b"application/json"):
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            document = None
        if isinstance(document, dict):
            document["partial"] = True
            document["missing_peers"] = missing
            body = orjson.dumps(document)
    headers.append((b"content-length", str(len(body)).encode()))
    headers.append((b"x-spyglass-partial", ",".join(missing).encode()))
    await send({**start, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
