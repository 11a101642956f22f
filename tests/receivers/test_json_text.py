"""JSON text as the decoders read it: orjson's reading, except that escaped lone surrogates read as U+FFFD."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spyglass.receivers.decoders.limits import parse_json
from spyglass.receivers.decoders.otlp_json import decode_otlp_json
from spyglass.receivers.decoders.result import DecodeError
from spyglass.receivers.decoders.zipkin_json import decode_zipkin_json

HIGH = [0xD800, 0xD83D, 0xDBFF]
LOW = [0xDC00, 0xDE00, 0xDFFF]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (rb'"\ud800"', "\ufffd"),
        (rb'"a\udfffb"', "a\ufffdb"),
        (rb'"\uDBFF"', "\ufffd"),
        (rb'"\udc00\ud800"', "\ufffd\ufffd"),  # a low half, then a high half: neither is a pair
        (rb'"\ud800\u0041"', "\ufffdA"),
        (rb'"\ud83d\ude00 \ud83d"', "\U0001f600 \ufffd"),  # the pair stays, the lone half does not
        (rb'"\\ud800"', "\\ud800"),  # an escaped backslash, then plain text
        (rb'"\\\ud800"', "\\\ufffd"),  # an escaped backslash, then a lone half
        (rb'{"\ud800": ["\udfff", 1]}', {"\ufffd": ["\ufffd", 1]}),  # keys too
    ],
)
def test_lone_surrogates_read_as_the_replacement_character(text: bytes, expected: object) -> None:
    assert parse_json(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        b'"\xed\xa0\x80"',  # a surrogate written as raw bytes (CESU-8): not UTF-8, so not JSON
        b"1e400",
        rb'"\ud800" x',
        rb'"\ud800',
        rb'"\ud80"',
        b"[" * 2000 + b"]" * 2000,
    ],
)
def test_what_is_not_json_is_still_refused(text: bytes) -> None:
    with pytest.raises(DecodeError, match="invalid JSON"):
        parse_json(text)


@given(st.lists(st.one_of(st.text(max_size=8), st.sampled_from(HIGH + LOW)), max_size=12))
def test_any_mix_reads_as_python_reads_it_with_lone_halves_replaced(parts: list[str | int]) -> None:
    """The reference: Python's json module reads lone surrogates as themselves; replacing each with U+FFFD
    must give what ``parse_json`` gives."""
    text = "".join(chr(part) if isinstance(part, int) else part for part in parts)
    body = json.dumps({"s": text}).encode()  # ensure_ascii escapes every surrogate, paired or not
    reference = json.loads(body)["s"].encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    assert parse_json(body) == {"s": reference}


def _otlp_body(name_escape: bytes) -> bytes:
    """An OTLP/JSON export of one span whose name ends in ``name_escape``, as JSON text."""
    span = {
        "traceId": random.Random(1).randbytes(16).hex(),
        "spanId": "00f067aa0ba902b7",
        "name": "cart PLACEHOLDER",
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000001000000",
    }
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]}
    document = {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": [span]}]}]}
    return json.dumps(document).encode().replace(b"PLACEHOLDER", name_escape)


def test_an_otlp_export_with_a_cut_emoji_is_taken_whole() -> None:
    decoded = decode_otlp_json(_otlp_body(rb"\ud83d"))
    assert decoded.batch.num_rows == 1
    assert decoded.batch.column("name").to_pylist() == ["cart \ufffd"]


def test_a_zipkin_report_with_a_cut_emoji_is_taken_whole() -> None:
    body = (
        b'[{"traceId":"463ac35c9f6413ad","id":"72485a3953bb6124","name":"get \\ud83d",'
        b'"timestamp":1700000000000000,"duration":10,"localEndpoint":{"serviceName":"shop"},'
        b'"tags":{"note":"\\ude00 left"}}]'
    )
    decoded = decode_zipkin_json(body)
    assert decoded.batch.num_rows == 1
    assert decoded.batch.column("name").to_pylist() == ["get \ufffd"]
    assert ("note", "\ufffd left") in decoded.batch.column("attributes").to_pylist()[0]
