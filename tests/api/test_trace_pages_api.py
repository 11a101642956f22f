"""``GET /api/v1/traces/{id}`` for traces of every size: small ones answer exactly as before; a 100,000-span one
streams slice by slice, and also comes as pages or as compact columns, never as one answer built whole."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import httpx
import orjson
import pyarrow as pa
import pytest

from spyglass.api.span_json import distinct_spans
from spyglass.api.trace_pages import STREAM_SLICE_SPANS, span_objects, stream_trace
from tests.conftest import RunningServer
from tests.support.big_trace import BigTrace, batch_job, server_with_batch_job
from tests.web.conftest import otlp_span, otlp_trace, send_otlp_json

SPAN_KEYS = {
    "trace_id",
    "span_id",
    "parent_span_id",
    "service",
    "name",
    "kind",
    "start_ns",
    "duration_ns",
    "status",
    "status_message",
    "attributes",
    "resource",
    "scope",
    "trace_state",
    "events",
    "links",
}


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, BigTrace]]:
    with server_with_batch_job(tmp_path_factory.mktemp("big-trace-api")) as running:
        yield running


def _small_trace(server: RunningServer) -> tuple[str, list[str]]:
    """Three spans sent over OTLP/JSON; their ids in start order."""
    trace_id = secrets.token_hex(16)
    ids = [secrets.token_hex(8) for _ in range(3)]
    start = time.time_ns() - 5_000_000_000
    spans = [
        otlp_span(
            trace_id, ids[0], None, "GET /<b>cart</b>", start, 30_000_000, {"note": "<i>x</i>"}, kind=2
        ),
        otlp_span(trace_id, ids[1], ids[0], "SELECT", start + 1_000_000, 5_000_000, kind=3, error=True),
        otlp_span(trace_id, ids[2], "00000000000000aa", "orphan", start + 2_000_000, 1_000_000),
    ]
    send_otlp_json(server, otlp_trace("cart", spans))
    server.wait_for(lambda s: s["spans_received"] == 3)
    server.flush()
    return trace_id, ids


def test_small_trace_answers_as_before(spyglass: RunningServer) -> None:
    trace_id, ids = _small_trace(spyglass)
    response = spyglass.get(f"/api/v1/traces/{trace_id}")
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(response.content))  # one plain answer
    body = response.json()
    assert set(body) == {"trace_id", "spans"} and body["trace_id"] == trace_id
    assert [s["span_id"] for s in body["spans"]] == ids
    assert all(set(s) == SPAN_KEYS for s in body["spans"])
    assert body["spans"][0]["name"] == "GET /<b>cart</b>" and body["spans"][0]["attributes"] == {
        "note": "<i>x</i>"
    }
    assert body["spans"][1]["status"] == "error" and body["spans"][1]["parent_span_id"] == ids[0]

    # The same spans as pages, as columns, and one by id.
    first = spyglass.get(f"/api/v1/traces/{trace_id}?limit=2").json()
    assert (first["span_count"], first["offset"], first["next_offset"]) == (3, 0, 2)
    rest = spyglass.get(f"/api/v1/traces/{trace_id}?offset=2&limit=2").json()
    assert rest["next_offset"] is None
    assert first["spans"] + rest["spans"] == body["spans"]

    columns = spyglass.get(f"/api/v1/traces/{trace_id}?format=columns&spans_up_to=3").json()
    assert columns["span_count"] == 3 and columns["spans"] == body["spans"]
    c, d = columns["columns"], columns["dictionaries"]
    assert c["span_id"] == ids
    assert c["parent_index"] == [-1, 0, -2]
    assert [columns["start_ns"] + offset for offset in c["start_offset_ns"]] == [
        s["start_ns"] for s in body["spans"]
    ]
    assert [d["name"][i] for i in c["name"]] == [s["name"] for s in body["spans"]]
    assert [d["status"][i] for i in c["status"]] == [s["status"] for s in body["spans"]]
    assert [d["kind"][i] for i in c["kind"]] == [s["kind"] for s in body["spans"]]
    assert "spans" not in spyglass.get(f"/api/v1/traces/{trace_id}?format=columns").json()

    one = spyglass.get(f"/api/v1/traces/{trace_id}?span_id={ids[1]}").json()
    assert one["spans"] == [body["spans"][1]]


def test_trace_parameters_are_checked(spyglass: RunningServer) -> None:
    trace_id, _ = _small_trace(spyglass)
    for query in ("format=xml", "span_id=xyz", "limit=0", "limit=10001", "offset=-1", "spans_up_to=20000"):
        response = spyglass.get(f"/api/v1/traces/{trace_id}?{query}")
        assert response.status_code == 400, query
    assert spyglass.get("/api/v1/traces/" + "0" * 31 + "1?format=columns").status_code == 404


def test_big_trace_streams_and_pages(big: tuple[RunningServer, BigTrace]) -> None:
    server, trace = big
    url = f"{server.api}/api/v1/traces/{trace.trace_id}"
    # The plain answer keeps its shape but is written slice by slice: no length known up front, many chunks.
    pieces = 0
    received = bytearray()
    started = time.perf_counter()
    with httpx.stream("GET", url, timeout=60) as response:
        assert response.status_code == 200
        assert "content-length" not in response.headers
        assert response.headers["transfer-encoding"] == "chunked"
        for piece in response.iter_raw():
            pieces += 1
            received += piece
    streamed_s = time.perf_counter() - started
    body = orjson.loads(received)
    assert set(body) == {"trace_id", "spans"} and len(body["spans"]) == trace.spans
    assert sum(s["parent_span_id"] is None for s in body["spans"]) == 1 and set(body["spans"][0]) == SPAN_KEYS
    assert pieces > 10

    # Pages of at most 10,000 spans, in the same order.
    started = time.perf_counter()
    middle = httpx.get(url, params={"offset": 50_000, "limit": 3}, timeout=60).json()
    assert middle["next_offset"] == 50_003 and middle["spans"] == body["spans"][50_000:50_003]
    page = httpx.get(url, params={"offset": trace.spans - 10_000, "limit": 10_000}, timeout=60).json()
    page_s = time.perf_counter() - started
    assert page["span_count"] == trace.spans and page["next_offset"] is None
    assert page["spans"] == body["spans"][-10_000:]

    # Columns: what a waterfall needs, a small fraction of the full answer.
    started = time.perf_counter()
    response = httpx.get(url, params={"format": "columns", "spans_up_to": 2_000}, timeout=60)
    columns_s = time.perf_counter() - started
    columns = response.json()
    assert columns["span_count"] == trace.spans and "spans" not in columns
    assert columns["columns"]["span_id"] == [s["span_id"] for s in body["spans"]]
    assert len(response.content) < len(received) / 5
    print(
        f"\n100,051-span trace: streamed {len(received) / 1e6:.1f} MB in {pieces} chunks, {streamed_s:.2f} s; "
        f"a 10,000-span page {page_s:.2f} s; columns {len(response.content) / 1e6:.1f} MB, {columns_s:.2f} s"
    )


def test_stream_converts_one_slice_at_a_time() -> None:
    """The stream's pieces are slices of spans: the whole answer never exists in the server as one object."""
    trace_id, batches = batch_job()
    spans = distinct_spans(pa.Table.from_batches(batches[:2]))
    pieces = list(stream_trace(trace_id, spans))
    assert len(pieces) == 2 + -(-spans.num_rows // STREAM_SLICE_SPANS)
    whole = orjson.loads(b"".join(pieces))
    assert whole == {"trace_id": trace_id.hex(), "spans": span_objects(spans)}
