"""The in-flight bound every receiver checks before decoding."""

from __future__ import annotations

import gzip
from collections.abc import Callable

import httpx

from spyglass.receivers.admission import Admission
from spyglass.receivers.http_body import decompress
from tests.conftest import RunningServer


def test_exports_past_the_count_bound_are_refused_until_one_is_answered() -> None:
    admission = Admission(max_bytes=1_000, max_exports=2)
    first, second = admission.enter(), admission.enter()
    assert first is not None and second is not None
    assert admission.enter() is None
    first.release()
    first.release()  # a second release gives back nothing more
    third = admission.enter()
    assert third is not None and admission.exports_in_flight == 2
    assert admission.refused == 1


def test_bytes_past_the_bound_are_refused_but_an_export_alone_is_never_refused_for_its_size() -> None:
    admission = Admission(max_bytes=100, max_exports=10)
    big = admission.enter()
    assert big is not None
    assert big.grow(60) and big.grow(60)  # alone: its size is the body limit's business, not this bound's
    other = admission.enter()
    assert other is None  # the bound is reached: nothing more is admitted
    big.release()
    small, late = admission.enter(), admission.enter()
    assert small is not None and late is not None
    assert small.grow(70)
    assert not late.grow(40)  # would pass the bound while another export holds bytes
    assert admission.bytes_in_flight == 70
    small.release()
    late.release()
    assert admission.bytes_in_flight == 0 and admission.exports_in_flight == 0


def test_a_full_sink_refuses_before_anything_is_read() -> None:
    room = [True]
    admission = Admission(max_bytes=100, max_exports=10, room=lambda: room[0])
    assert admission.enter() is not None
    room[0] = False
    assert admission.enter() is None and admission.exports_in_flight == 1


def test_every_gzip_member_is_read_and_the_bound_applies_to_their_total() -> None:
    body = gzip.compress(b"abc") + gzip.compress(b"def") + gzip.compress(b"")
    assert decompress(body, "gzip", 6) == b"abcdef"
    try:
        decompress(body, "gzip", 5)
    except ValueError as error:
        assert "exceeds" in str(error)
    else:
        raise AssertionError("the bound applies to all members together")


def test_a_refused_export_is_429_with_retry_advice_and_counted(
    start_server: Callable[..., RunningServer],
) -> None:
    spyglass: RunningServer = start_server()
    spyglass.server.satellite.stop()  # a satellite that stops takes nothing more: its intake has no room
    body = b"\x0a\x00"  # an empty ResourceSpans: legal, holds no span
    headers = {"Content-Type": "application/x-protobuf"}
    with httpx.Client() as client:
        assert (
            client.post(spyglass.otlp_http + "/v1/traces", content=body, headers=headers).status_code == 429
        )
        response = client.post(spyglass.otlp_http + "/v1/traces", content=body, headers=headers)
        assert response.status_code == 429 and response.headers["Retry-After"] == "1"
    status = spyglass.status()
    assert status["ingest"]["otlp_http"]["exports_refused"] == 2
    assert status["ingest"]["otlp_http"]["exports_in_flight"] == 0
