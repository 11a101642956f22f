"""Reading HTTP request bodies safely: a size bound, an in-flight bound, chunked bodies, and every compression the
OpenTelemetry Collector's exporters send (gzip with every member, zstd, zlib, snappy, lz4) without bombs."""

from __future__ import annotations

import sys
import zlib
from collections.abc import Callable
from typing import Protocol

import cramjam
import lz4.frame
from starlette.requests import Request

if sys.version_info >= (3, 14):
    from compression.zstd import ZstdDecompressor, ZstdError
else:
    from backports.zstd import ZstdDecompressor, ZstdError

from spyglass.receivers.decoders.result import DecodeError


class BodyTooLarge(DecodeError):
    """The body, as sent or once decompressed, is larger than the configured bound."""


class Refused(Exception):
    """Reading this body would pass the receiver's in-flight bound: the export is refused (429)."""


async def read_body(request: Request, max_bytes: int, reserve: Callable[[int], bool]) -> bytes:
    """Read the whole body as sent (Content-Length or chunked), never past ``max_bytes``; ``reserve`` is asked
    for every chunk's bytes first, and ``Refused`` is raised when it says no. Decompress with ``decompress``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge(f"request body of {declared} bytes exceeds the limit of {max_bytes} bytes")
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge(f"request body exceeds the limit of {max_bytes} bytes")
        if not reserve(len(chunk)):
            raise Refused()
        parts.append(chunk)
    return b"".join(parts)


async def discard_body(request: Request, max_bytes: int) -> None:
    """Read what is left of a refused body without keeping it, so the client reads its answer on a connection
    it may reuse; past ``max_bytes`` it is left unread and the connection ends with the answer."""
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            return


def content_type(request: Request) -> str:
    """The request's media type, lower case and without its parameters (``charset``...); "" when it names none."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def content_encoding(request: Request) -> str:
    return request.headers.get("content-encoding", "identity").strip().lower()


#: What ``Content-Encoding`` may name, as the OpenTelemetry Collector's receivers read it (its exporters send
#: each, by the ``compression`` setting): ``deflate`` is zlib's format in HTTP, as in the Collector.
ENCODINGS = ("gzip", "zstd", "zlib", "deflate", "snappy", "x-snappy-framed", "lz4", "identity")
#: Frames (or gzip members) one body may hold: a client concatenates a few; a body of thousands of empty ones
#: would only cost a decompressor each.
MAX_FRAMES = 1024
#: Codings one ``Content-Encoding`` may stack: clients apply one, a proxy may add a second.
MAX_CODINGS = 4
#: How a framed snappy stream begins (its stream identifier chunk).
_SNAPPY_STREAM = b"\xff\x06\x00\x00sNaPpY"


class _Decompressor(Protocol):
    """One frame's (or gzip member's) streaming decompressor: zlib's, zstd's and lz4's alike."""

    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes | None: ...

    def decompress(self, data: bytes, max_length: int, /) -> bytes: ...


def decompress(body: bytes, encoding: str, max_bytes: int) -> bytes:
    """Undo a ``Content-Encoding``; the output is bounded too, so a small bomb cannot expand to gigabytes.

    A gzip body may hold several members one after another (what ``cat a.gz b.gz`` gives, and what
    concatenating compressors send), and a zstd or lz4 body several frames: every one is read, and
    ``max_bytes`` bounds their total. A header may name several codings, in the order they were applied
    (``gzip, gzip``, ``identity, zstd``: RFC 9110, 8.4): they are undone last first, each output bounded.
    """
    if "," in encoding:
        codings = [coding.strip() for coding in encoding.split(",")]
        if len(codings) > MAX_CODINGS:
            raise DecodeError(f"more than {MAX_CODINGS} codings in Content-Encoding {encoding!r}")
        for coding in reversed(codings):
            body = _undo(body, coding, max_bytes)
        return body
    return _undo(body, encoding, max_bytes)


def _undo(body: bytes, encoding: str, max_bytes: int) -> bytes:
    """Undo one coding (``decompress``)."""
    if encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "x-gzip"):
        return _frames(body, lambda: zlib.decompressobj(16 + zlib.MAX_WBITS), encoding, max_bytes, zlib.error)
    if encoding in ("deflate", "zlib"):
        return _frames(body, zlib.decompressobj, encoding, max_bytes, zlib.error, one=True)
    if encoding == "zstd":
        return _frames(body, ZstdDecompressor, encoding, max_bytes, ZstdError)
    if encoding == "lz4":
        return _frames(body, lz4.frame.LZ4FrameDecompressor, encoding, max_bytes, RuntimeError)
    if encoding == "x-snappy-framed" or (encoding == "snappy" and body.startswith(_SNAPPY_STREAM)):
        # The Collector sent framed snappy as "snappy" before it had "x-snappy-framed", and reads both so.
        return _snappy_framed(body, encoding, max_bytes)
    if encoding == "snappy":
        return _snappy_block(body, max_bytes)
    raise DecodeError(f"unsupported Content-Encoding {encoding!r} (use one of {', '.join(ENCODINGS)})")


def _frames(
    body: bytes,
    start: Callable[[], _Decompressor],
    encoding: str,
    max_bytes: int,
    error: type[Exception],
    one: bool = False,
) -> bytes:
    """Every frame (or member) of ``body`` decompressed, ``max_bytes`` at most in all; with ``one``, nothing may
    follow the first."""
    parts: list[bytes] = []
    size = 0
    remaining = body
    while True:
        if len(parts) == MAX_FRAMES:
            raise DecodeError(f"more than {MAX_FRAMES} {encoding} frames in one body")
        frame = start()
        try:
            out = frame.decompress(remaining, max_bytes - size + 1)
        except error as exc:
            raise DecodeError(f"invalid {encoding} body: {exc}") from None
        size += len(out)
        if size > max_bytes:
            raise BodyTooLarge(f"decompressed body exceeds the limit of {max_bytes} bytes")
        if not frame.eof:
            raise DecodeError(f"truncated {encoding} body")
        parts.append(out)
        remaining = frame.unused_data or b""
        if not remaining:
            return b"".join(parts)
        if one:
            raise DecodeError(f"{len(remaining)} bytes after the end of the {encoding} stream")
        if encoding in ("gzip", "x-gzip") and remaining.strip(b"\x00") == b"":
            return b"".join(parts)  # gzip's own tools ignore zero padding after the last member


def _snappy_block(body: bytes, max_bytes: int) -> bytes:
    """A snappy block: its length, which it states first, is checked before anything is decompressed."""
    try:
        if cramjam.snappy.decompress_raw_len(body) > max_bytes:
            raise BodyTooLarge(f"decompressed body exceeds the limit of {max_bytes} bytes")
        return bytes(cramjam.snappy.decompress_raw(body))
    except cramjam.DecompressionError as exc:
        raise DecodeError(f"invalid snappy body: {exc}") from None


def _snappy_framed(body: bytes, encoding: str, max_bytes: int) -> bytes:
    """A framed snappy stream: its chunks' headers are walked first, so the bound holds before the library
    decompresses (and checks every chunk's checksum)."""
    if not body.startswith(_SNAPPY_STREAM):
        raise DecodeError(f"invalid {encoding} body: no stream identifier")
    view = memoryview(body)
    at = size = 0
    while at < len(body):
        kind, length = body[at], int.from_bytes(body[at + 1 : at + 4], "little")
        chunk_end = at + 4 + length
        if chunk_end > len(body):
            raise DecodeError(f"truncated {encoding} body")
        if kind in (0x00, 0x01) and length < 4:
            raise DecodeError(f"invalid {encoding} body: a data chunk of {length} bytes")
        if kind == 0x00:  # after its checksum, a snappy block, which states its length first
            try:
                size += cramjam.snappy.decompress_raw_len(view[at + 8 : chunk_end])
            except cramjam.DecompressionError as exc:
                raise DecodeError(f"invalid {encoding} body: {exc}") from None
        elif kind == 0x01:  # after its checksum, the data itself
            size += length - 4
        elif 0x02 <= kind <= 0x7F:
            raise DecodeError(f"invalid {encoding} body: reserved chunk type {kind:#04x}")
        if size > max_bytes:
            raise BodyTooLarge(f"decompressed body exceeds the limit of {max_bytes} bytes")
        at = chunk_end
    try:
        return bytes(cramjam.snappy.decompress(body))
    except cramjam.DecompressionError as exc:
        raise DecodeError(f"invalid {encoding} body: {exc}") from None
