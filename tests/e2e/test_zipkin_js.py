"""The Zipkin JS tracer (npm ``zipkin``, ``zipkin-transport-http``), used unchanged, against a real spyglass.

``js/zipkin_rpc.mjs`` traces one RPC between two tracers standing for two processes, over real HTTP with the
stock client and server instrumentation and B3 headers. With zipkin-js's default (``supportsJoin``) the server
records its half under the client's span id, marked ``shared``; its child span names that shared id as its
parent and is reported in an earlier request than the server span, the client span in a later one. spyglass must
still give every span its own id and the tree Jaeger's span-id uniquifier gives: client -> server half -> child,
in its own API, in the Jaeger API, in the critical path and in the dependency graph.

Needs ``node`` and the pinned packages: ``npm ci --prefix tests/e2e/js`` (see ``js/package.json``).
"""

from __future__ import annotations

import json
import random
import subprocess
import time
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from spyglass.model.schema import UNKNOWN_SERVICE
from spyglass.model.shared_spans import server_half_id
from tests.conftest import RunningServer

JS_DIR = Path(__file__).resolve().parent / "js"
SCRIPT = JS_DIR / "zipkin_rpc.mjs"
FRONTEND, BACKEND = "zipkin-frontend", "zipkin-backend"


def run_rpc(
    node: str, spyglass: RunningServer, join: bool, fail: bool, debug: bool = False, encoder: str = "v2"
) -> dict[str, Any]:
    """Run the Node script; returns the ids it printed (``trace_id``, ``root_id``, ``client_id``...). With
    ``encoder`` v1, zipkin-js sends its default, Zipkin v1 JSON, to ``/api/v1/spans``."""
    endpoint = spyglass.zipkin if encoder == "v2" else spyglass.zipkin.replace("/api/v2/", "/api/v1/")
    command = [node, str(SCRIPT), "--endpoint", endpoint, "--encoder", encoder]
    command += ["--join", "yes" if join else "no", "--fail", "yes" if fail else "no"]
    command += ["--debug", "yes" if debug else "no"]
    done = subprocess.run(command, cwd=JS_DIR, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"zipkin_rpc.mjs exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    sent = json.loads(done.stdout.strip().splitlines()[-1])
    assert sent["requests"] >= 3, sent  # the child, its server span, and the client side: apart
    return cast("dict[str, Any]", sent)


def stored_trace(spyglass: RunningServer, sent: dict[str, Any], spans: int = 4) -> dict[str, Any]:
    """The trace once every span is in and decided: ``{name-and-kind: span}`` from ``/api/v1``."""
    spyglass.wait_for(lambda s: s["spans_received"] + s["spans_rejected"] >= spans)
    spyglass.flush()
    response = spyglass.get(f"/api/v1/traces/{sent['trace_id']}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["trace_id"] == sent["trace_id"].rjust(32, "0")  # zipkin-js's 64-bit ids, padded
    return {f"{s['service']} {s['name']} {s['kind']}": s for s in body["spans"]}


@pytest.mark.parametrize("join", [True, False], ids=["b3-join-shared", "no-join"])
def test_one_span_per_id_and_the_tree_jaeger_gives(node: str, spyglass: RunningServer, join: bool) -> None:
    sent = run_rpc(node, spyglass, join=join, fail=False)
    assert sent["server_shared"] is join
    assert (sent["server_id"] == sent["client_id"]) is join  # what zipkin-js sent: one id for both halves
    spans = stored_trace(spyglass, sent)
    root = spans[f"{FRONTEND} checkout internal"]
    client = spans[f"{FRONTEND} get client"]
    server = spans[f"{BACKEND} get server"]
    child = spans[f"{BACKEND} select orders internal"]
    assert len(spans) == 4 and len({s["span_id"] for s in spans.values()}) == 4

    assert (root["span_id"], root["parent_span_id"]) == (sent["root_id"], None)
    assert (client["span_id"], client["parent_span_id"]) == (sent["client_id"], sent["root_id"])
    if join:
        # The server half has an id of its own, the same whichever request or receiver brings it.
        assert server["span_id"] == server_half_id(bytes.fromhex(sent["client_id"])).hex()
        assert server["attributes"]["zipkin.shared"] is True
    else:
        assert server["span_id"] == sent["server_id"]
    assert server["parent_span_id"] == client["span_id"]
    # The child named the shared id as its parent: it belongs under the server half, not the client half.
    assert (child["span_id"], child["parent_span_id"]) == (sent["db_id"], server["span_id"])

    jaeger = spyglass.get(f"/api/traces/{sent['trace_id']}")
    assert jaeger.status_code == 200, jaeger.text
    [trace] = jaeger.json()["data"]
    ids = [s["spanID"] for s in trace["spans"]]
    assert sorted(ids) == sorted(s["span_id"] for s in spans.values())
    parents = {s["spanID"]: [(r["refType"], r["spanID"]) for r in s["references"]] for s in trace["spans"]}
    assert parents[server["span_id"]] == [("CHILD_OF", client["span_id"])]
    assert parents[child["span_id"]] == [("CHILD_OF", server["span_id"])]
    assert parents[root["span_id"]] == []

    # One call from the frontend to the backend, however the backend's spans were parented on the wire.
    edges = spyglass.get("/api/dependencies").json()["data"]
    assert edges == [{"parent": FRONTEND, "child": BACKEND, "callCount": 1}]

    # The critical path runs through the server half into its child (under the client half, the child would
    # run beside the later-ending server half and never be on the path).
    contributions = spyglass.get(
        "/api/v1/critical-path", params={"service": FRONTEND, "operation": "checkout"}
    ).json()
    assert contributions["traces"] == 1
    on_path = {(c["service"], c["operation"]): c for c in contributions["contributions"]}
    assert on_path[(BACKEND, "select orders")]["p50_ms"] >= 15  # it sleeps 20 ms
    assert sum(c["share"] for c in on_path.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("join", [True, False], ids=["b3-join-shared", "no-join"])
def test_the_transports_default_v1_json_is_read_as_zipkin_reads_it(
    node: str, spyglass: RunningServer, join: bool
) -> None:
    """zipkin-js's transport with no encoder set sends Zipkin v1 JSON. Its RPC halves carry their endpoints in
    core annotations and come out as with v2: the client half, the server half under it (an id of its own when
    shared), the child under the server half. v1 puts endpoints on annotations only: a local span with none (the
    root) carries no service, as in Zipkin, and the failed child has its service from its ``error`` tag."""
    sent = run_rpc(node, spyglass, join=join, fail=True, encoder="v1")
    assert sent["server_shared"] is join
    spans = stored_trace(spyglass, sent)
    assert set(spans) == {
        f"{FRONTEND} get client",
        f"{BACKEND} get server",
        f"{UNKNOWN_SERVICE} checkout internal",
        f"{BACKEND} select orders internal",
    }
    root, client = spans[f"{UNKNOWN_SERVICE} checkout internal"], spans[f"{FRONTEND} get client"]
    server, child = spans[f"{BACKEND} get server"], spans[f"{BACKEND} select orders internal"]
    assert (root["span_id"], root["parent_span_id"]) == (sent["root_id"], None)
    assert (client["span_id"], client["parent_span_id"]) == (sent["client_id"], sent["root_id"])
    expected_server_id = server_half_id(bytes.fromhex(sent["client_id"])).hex() if join else sent["server_id"]
    assert (server["span_id"], server["parent_span_id"]) == (expected_server_id, client["span_id"])
    assert (child["span_id"], child["parent_span_id"]) == (sent["db_id"], server["span_id"])
    assert server["duration_ns"] < client["duration_ns"]  # each half timed by its own annotations
    assert (client["status"], client["status_message"]) == ("error", "503")
    assert (child["status"], child["status_message"]) == ("error", "connection refused")
    assert client["attributes"]["peer.service"] == BACKEND  # the "sa" address annotation
    assert client["attributes"]["http.path"] == server["attributes"]["http.path"]


def test_v1_thrift_is_refused_with_a_415_that_says_what_is_read(spyglass: RunningServer) -> None:
    v1 = spyglass.zipkin.replace("/api/v2/", "/api/v1/")
    response = httpx.post(v1, content=b"\x0c\x00", headers={"Content-Type": "application/x-thrift"})
    assert response.status_code == 415 and "application/json" in response.json()["error"]


def test_error_tags_show_once_and_error_search_finds_them(node: str, spyglass: RunningServer) -> None:
    """zipkin-js writes failures as ``error`` tags with text ("503", the exception's message). In the Jaeger
    view each failed span carries one ``error`` tag, Jaeger's boolean, with the text in
    ``otel.status_description``; a Jaeger search for ``error=true`` finds the failed trace only."""
    ok = run_rpc(node, spyglass, join=True, fail=False)
    failed = run_rpc(node, spyglass, join=True, fail=True)
    spans = stored_trace(spyglass, failed, spans=8)
    texts = {name: (s["status"], s["status_message"]) for name, s in spans.items()}
    assert texts == {
        f"{FRONTEND} checkout internal": ("unset", ""),
        f"{FRONTEND} get client": ("error", "503"),
        f"{BACKEND} get server": ("error", "503"),
        f"{BACKEND} select orders internal": ("error", "connection refused"),
    }
    assert all("error" not in s["attributes"] for s in spans.values())

    [trace] = spyglass.get(f"/api/traces/{failed['trace_id']}").json()["data"]
    for span in trace["spans"]:
        error_tags = [t for t in span["tags"] if t["key"] == "error"]
        descriptions = [t["value"] for t in span["tags"] if t["key"] == "otel.status_description"]
        if span["operationName"] == "checkout":
            assert error_tags == [] and descriptions == []
        else:
            assert error_tags == [{"key": "error", "type": "bool", "value": True}]
            assert descriptions == [
                "connection refused" if span["operationName"] == "select orders" else "503"
            ]

    now_us = time.time_ns() // 1_000
    window = {"start": now_us - 600_000_000, "end": now_us + 60_000_000}
    for service in (FRONTEND, BACKEND):
        found = spyglass.get(
            "/api/traces", params={"service": service, "tags": json.dumps({"error": "true"}), **window}
        ).json()
        assert [t["traceID"] for t in found["data"]] == [failed["trace_id"].rjust(32, "0")]
        every = spyglass.get("/api/traces", params={"service": service, **window}).json()["data"]
        assert {t["traceID"] for t in every} == {sent["trace_id"].rjust(32, "0") for sent in (ok, failed)}


def ordinary_traces(count: int, shape: list[dict[str, Any]], debug_every: int) -> list[dict[str, Any]]:
    """``count`` Zipkin v2 traces of one shape (a chain of the given spans' service, name, kind and offsets),
    their times spread around the given ones: the everyday traffic a 1% sampler drops almost all of. Every
    ``debug_every``-th trace is marked debug and otherwise alike."""
    kinds = {"client": "CLIENT", "server": "SERVER"}
    rng = random.Random(5)
    spans = []
    start_us = time.time_ns() // 1000 - 60_000_000
    origin = shape[0]["start_ns"]
    for t in range(count):
        trace_id = f"{0xD0000000 + t:032x}"
        stretch = rng.lognormvariate(0, 0.5)
        parent = None
        for depth, model in enumerate(shape):
            span_id = f"{(t << 8) + depth + 1:016x}"
            span: dict[str, Any] = {
                "traceId": trace_id,
                "id": span_id,
                "name": model["name"],
                "timestamp": start_us + t * 1000 + int((model["start_ns"] - origin) * stretch / 1000),
                "duration": max(1, int(model["duration_ns"] * stretch / 1000)),
                "localEndpoint": {"serviceName": model["service"]},
            }
            if model["kind"] in kinds:
                span["kind"] = kinds[model["kind"]]
            if parent:
                span["parentId"] = parent
            if t % debug_every == 0:
                span["debug"] = True
            spans.append(span)
            parent = span_id
    return spans


def test_debug_traces_are_kept_at_one_percent(node: str, start_server: Any) -> None:
    """At ``--sample-rate 0.01``, after hundreds of everyday traces of the same services and operations, every
    trace the Zipkin JS tracer marks debug is stored whole."""
    # The spans the JS tracer's trace is made of, as a server that keeps everything stores them.
    probe: RunningServer = start_server()
    sent = run_rpc(node, probe, join=True, fail=False)
    probe.wait_for(lambda s: s["spans_received"] >= 4)
    probe.flush()
    spans = probe.get(f"/api/v1/traces/{sent['trace_id']}").json()["spans"]
    shape = sorted(spans, key=lambda s: s["start_ns"])

    server: RunningServer = start_server(sample_rate=0.01, decision_wait_s=0.3)
    response = httpx.post(server.zipkin, json=ordinary_traces(400, shape, debug_every=20), timeout=30)
    assert response.status_code == 202, response.text
    server.wait_for(lambda s: s["traces_decided"] >= 400, timeout_s=30)
    server.flush()
    # What the store holds (a trace by id would also be found in the recall buffer, kept or not).
    search = {"service": FRONTEND, "start_ns": 0, "limit": 1000}
    stored = {t["trace_id"] for t in server.get("/api/v1/traces", params=search).json()["traces"]}
    assert {f"{0xD0000000 + t:032x}" for t in range(0, 400, 20)} <= stored
    assert len(stored) - 20 < 40, len(stored)  # the everyday traffic is sampled: at most a tenth of it kept

    # One everyday JS trace first: what is new about it (its peer, its attributes) is then known.
    run_rpc(node, server, join=True, fail=False)
    server.wait_for(lambda s: s["traces_decided"] >= 401, timeout_s=30)
    debug = [run_rpc(node, server, join=True, fail=False, debug=True) for _ in range(3)]
    server.wait_for(lambda s: s["traces_decided"] >= 404, timeout_s=30)
    server.flush()
    stored = {t["trace_id"] for t in server.get("/api/v1/traces", params=search).json()["traces"]}
    for sent in debug:
        assert sent["trace_id"].zfill(32) in stored  # 64-bit Zipkin ids come back as 128-bit ids
        response = server.get(f"/api/v1/traces/{sent['trace_id']}")
        assert response.status_code == 200, (sent, response.text)
        spans = response.json()["spans"]
        assert len(spans) == 4, spans
        assert all(s["attributes"].get("zipkin.debug") is True for s in spans), spans
