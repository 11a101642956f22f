"""Limits every decoder enforces, and the small checks they share, so that all formats accept the same spans;
also how the JSON span decoders load a body and count the spans they reject.

Values past a size limit are truncated rather than refused (a long SQL statement should not cost the whole
span); things that make a span meaningless (bad ids, impossible times, runaway nesting) reject that span.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from spyglass.model.builder import SpanBatchBuilder
from spyglass.receivers.decoders.result import DecodeError, DecodeResult, Problem, SpanRejected

#: String attribute values (and bytes values) longer than this are cut, on a UTF-8 character boundary.
MAX_ATTRIBUTE_VALUE_BYTES = 64 * 1024
#: Attributes past this many on one span (or resource, event, link) are dropped.
MAX_ATTRIBUTES_PER_SPAN = 1024
#: Array and kvlist values nested deeper than this reject the span.
MAX_NESTING_DEPTH = 16
#: Span, service, event and scope names, and attribute keys, are cut to this many bytes.
MAX_NAME_BYTES = 4096
#: Names and values of at most this many characters cannot exceed their byte limits (4 bytes a character at
#: most), so they need no check.
SHORT_NAME_CHARS = MAX_NAME_BYTES // 4
SHORT_VALUE_CHARS = MAX_ATTRIBUTE_VALUE_BYTES // 4
#: Times at or after this (2106-02-07, 2**32 s) are absurd. It is where ClickHouse's ``DateTime`` ends, which keys
#: its span table: a span starting later than that (2**62 ns, in 2116, was the bound) wrapped around in the key,
#: and reads by time, a trace's included, then passed over it. The bound also keeps int64 arithmetic safe.
MAX_TIME_NS = 2**32 * 10**9

TRACE_ID_BYTES = 16
SPAN_ID_BYTES = 8


def truncate_utf8(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` bytes of UTF-8, never splitting a character."""
    # A character is at most 4 bytes, so short strings need no encoding at all (the common case).
    if len(text) * 4 <= max_bytes:
        return text
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", "ignore")


def parse_hex_id(text: Any, size: int) -> bytes | None:
    """The id spelled by exactly ``2 * size`` hex digits, or None if ``text`` is anything else or all zero.

    All-zero ids are invalid in W3C trace context and OTLP, so they are refused here too; a caller that reads
    an all-zero *parent* id as "no parent" checks for that itself.
    """
    if type(text) is not str or len(text) != 2 * size:
        return None
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        return None
    # fromhex skips spaces between bytes, which would make the result short.
    if len(raw) != size or not any(raw):
        return None
    return raw


def is_valid_id(raw: bytes, size: int) -> bool:
    """True if binary ``raw`` (as protobuf carries ids) is ``size`` bytes and not all zero."""
    return len(raw) == size and any(raw)


def is_zero_hex(text: Any) -> bool:
    """True for a non-empty string of zeros: some exporters write a root span's parent id that way."""
    return type(text) is str and text != "" and text.strip("0") == ""


#: What the sender is told of a span that ended before it started, which is kept lasting 0: a wall clock stepped
#: back between its start and end (the SDKs that time spans by the wall clock, Python's among them, send such
#: spans), or an end never set. Zipkin's own server keeps a negative duration as 0 too.
ENDED_BEFORE_START = "endTimeUnixNano before startTimeUnixNano: kept with duration 0"


def time_problem(start_ns: int, end_ns: int) -> str | None:
    """Why a span with these times cannot be accepted, or None if they are plausible (an end before the start is
    the caller's to repair: ``ENDED_BEFORE_START``).

    The reason starts with "start" when the start time itself is wrong, so callers can name the field.
    """
    if start_ns <= 0:
        return f"start time {_number(start_ns)} is not after the epoch"
    if start_ns >= MAX_TIME_NS:
        return f"start time {_number(start_ns)} is absurdly far in the future"
    if end_ns >= MAX_TIME_NS:
        return f"end time {_number(end_ns)} is absurdly far in the future"
    return None


def _number(value: int) -> str:
    return str(value) if -(10**30) < value < 10**30 else f"{'-' if value < 0 else ''}(more than 30 digits)"


def time_in_range(time_ns: int) -> bool:
    """True if an event (annotation) time is plausible: not before the epoch, not absurdly late."""
    return 0 <= time_ns < MAX_TIME_NS


#: One escape sequence of a JSON text, from its backslash: a surrogate pair, a lone surrogate, or anything else
#: (an escaped backslash is consumed whole, so the ``u`` after it is not read as an escape).
_ESCAPE = re.compile(
    rb"\\(?P<pair>u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|\\(?P<lone>u[dD][89a-fA-F][0-9a-fA-F]{2})"
    rb"|\\."
)


def _replace_lone(match: re.Match[bytes]) -> bytes:
    return b"\\ufffd" if match.group("lone") else match.group(0)


def parse_json(body: bytes) -> Any:
    """The JSON value in ``body``, as orjson reads it, except that an escaped lone surrogate (``"\\ud83d"``)
    reads as U+FFFD, the replacement character. JavaScript's ``JSON.stringify`` writes one for a string cut
    inside a surrogate pair (an emoji cut by an SDK's attribute length limit or by an application's ``slice``),
    and Python's ``json.dumps`` does the same; RFC 8259 leaves such text legal, and the Collector's and Jaeger's Go
    decoders read it as U+FFFD. Refusing it would lose every span of the request for one character.
    ``DecodeError`` for anything else that is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        if "surrogate" not in str(error) or b"\\" not in body:
            raise DecodeError(f"invalid JSON: {error}") from None
    try:
        return orjson.loads(_ESCAPE.sub(_replace_lone, body))
    except orjson.JSONDecodeError as error:
        raise DecodeError(f"invalid JSON: {error}") from None


def load_json(body: bytes, expected: type[dict[str, Any]] | type[list[Any]], what: str) -> Any:
    """The JSON document in ``body`` (``parse_json``); ``DecodeError`` when it is not JSON, or not of type
    ``expected`` (``what`` names the document expected, in the message)."""
    document = parse_json(body)
    if type(document) is not expected:
        raise DecodeError(f"expected {what}, got {preview(document)}")
    return document


def preview(value: Any, max_chars: int = 40) -> str:
    """A short description of a received JSON value, for error messages that must not echo a huge payload."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str | bytes):
        text = repr(value[: max_chars + 1])
        return text if len(value) <= max_chars else text[:-1] + "..." + text[-1]
    text = repr(value)
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


class RejectedSpans:
    """The spans of one request that were rejected: how many, and the first one's problem (for the answer)."""

    def __init__(self) -> None:
        self.count = 0
        self.first_problem = ""
        self.noted = 0
        self.first_note = ""

    def add(self, problem: Problem) -> None:
        """Count the span ``problem`` rejects; a problem that is not a span's (``RequestMalformed``) is raised
        on, as it refuses the whole request."""
        if not isinstance(problem, SpanRejected):
            raise problem
        self.count += 1
        if not self.first_problem:
            self.first_problem = problem.message()

    def note(self, where: str, message: str) -> None:
        """Count an accepted span whose value spyglass repaired, for the warning in the answer."""
        self.noted += 1
        self.first_note = self.first_note or f"{where}: {message}"

    def add_many(self, count: int, message: str) -> None:
        """Count ``count`` spans rejected for one reason (say, the resource they share)."""
        self.count += count
        self.first_problem = self.first_problem or message


def finish_batch(builder: SpanBatchBuilder, total: int, rejected: RejectedSpans) -> DecodeResult:
    """The decoder's answer: all spans (with a warning when some were repaired), a partial success, or
    ``DecodeError`` when every span was rejected."""
    if rejected.count:
        summary = f"{rejected.first_problem} ({rejected.count} of {total} spans rejected)"
        if rejected.count >= total:
            raise DecodeError(summary)
        return DecodeResult(builder.finish(), rejected.count, summary)
    if rejected.noted:
        # Nothing rejected and a message: a warning, in OTLP's partial success.
        return DecodeResult(builder.finish(), 0, f"{rejected.first_note} ({rejected.noted} of {total} spans)")
    return DecodeResult(builder.finish())
