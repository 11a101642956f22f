"""Zipkin's protobuf encoding (``application/x-protobuf`` on ``/api/v2/spans``), made by protobufjs from
zipkin-api's own ``zipkin.proto`` (``js/zipkin_proto.mjs``), read as the same spans sent as JSON would be: a
64-bit trace id, a shared server half given its own id, IPv4 and IPv6 endpoints, tags, annotations, debug."""

from __future__ import annotations

import json
import subprocess
from typing import Any, cast

import httpx
import pytest

from spyglass.model.shared_spans import server_half_id
from tests.conftest import RunningServer
from tests.e2e.conftest import JS_DIR


def send(node: str, spyglass: RunningServer, gzip: bool) -> dict[str, Any]:
    command = [node, str(JS_DIR / "zipkin_proto.mjs"), "--endpoint", spyglass.zipkin]
    command += ["--gzip", "yes" if gzip else "no"]
    done = subprocess.run(command, cwd=JS_DIR, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"zipkin_proto.mjs exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return cast("dict[str, Any]", json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("gzip", [False, True])
def test_protobuf_spans_read_as_their_json_would(node: str, spyglass: RunningServer, gzip: bool) -> None:
    sent = send(node, spyglass, gzip)
    assert sent["status"] == 202, sent
    spyglass.wait_for(lambda s: s["spans_received"] >= 3)
    spyglass.flush()
    trace_id = sent["trace_id"].zfill(32)  # a 64-bit Zipkin id is the low half of a 128-bit one
    spans = spyglass.get(f"/api/v1/traces/{trace_id}").json()["spans"]
    by_kind = {s["kind"]: s for s in spans}
    client, server, child = by_kind["client"], by_kind["server"], by_kind["internal"]
    assert client["span_id"] == sent["client_id"] and client["parent_span_id"] is None
    # The shared server half gets its own id under the client half; its child moves under it.
    assert server["span_id"] == server_half_id(bytes.fromhex(sent["client_id"])).hex()
    assert server["parent_span_id"] == client["span_id"] and child["parent_span_id"] == server["span_id"]
    assert (client["service"], server["service"]) == ("proto-frontend", "proto-backend")
    assert client["resource"]["net.host.ip"] == "10.0.0.7" and client["resource"]["net.host.port"] == 8080
    assert server["resource"]["net.host.ip"] == "2001:db8::1"
    assert client["attributes"]["peer.service"] == "proto-backend"
    assert client["attributes"]["net.peer.ip"] == "2001:db8::1"
    assert client["attributes"]["http.status_code"] == "500" and client["attributes"]["zipkin.debug"] is True
    assert (client["status"], client["status_message"]) == ("error", "boom")
    assert client["start_ns"] == sent["now_us"] * 1000 and client["duration_ns"] == 12_000_000
    assert [(e["name"], e["time_ns"]) for e in client["events"]] == [("ws", (sent["now_us"] + 10) * 1000)]
    assert child["attributes"]["sql.query"] == "SELECT 1"


def test_a_body_that_is_not_a_list_of_spans_is_400(spyglass: RunningServer) -> None:
    headers = {"Content-Type": "application/x-protobuf"}
    response = httpx.post(spyglass.zipkin, content=b"\x0a\x05junk!", headers=headers)
    assert response.status_code == 400 and "Zipkin" in response.json()["error"], response.text
    response = httpx.post(spyglass.zipkin, content=b"<xml/>", headers={"Content-Type": "application/xml"})
    assert response.status_code == 415 and "application/x-protobuf" in response.json()["error"]
