"""Reading HTTP request bodies safely: a size bound, an in-flight bound, chunked bodies, and gzip (every member)
without gzip bombs."""

from __future__ import annotations

import zlib
from collections.abc import Callable

from starlette.requests import Request

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


def content_encoding(request: Request) -> str:
    return request.headers.get("content-encoding", "identity").strip().lower()


def decompress(body: bytes, encoding: str, max_bytes: int) -> bytes:
    """Undo a ``Content-Encoding``; the output is bounded too, so a small bomb cannot expand to gigabytes.

    A gzip body may hold several members one after another (what ``cat a.gz b.gz`` gives, and what
    concatenating compressors send): every member is read, and ``max_bytes`` bounds their total.
    """
    if encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif encoding == "deflate":
        wbits = zlib.MAX_WBITS
    else:
        raise DecodeError(f"unsupported Content-Encoding {encoding!r} (use gzip, deflate or identity)")
    parts: list[bytes] = []
    size = 0
    remaining = body
    while True:
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(remaining, max_bytes - size + 1)
        except zlib.error as exc:
            raise DecodeError(f"invalid {encoding} body: {exc}") from None
        size += len(out)
        if size > max_bytes or inflater.unconsumed_tail:
            raise BodyTooLarge(f"decompressed body exceeds the limit of {max_bytes} bytes")
        if not inflater.eof:
            raise DecodeError(f"truncated {encoding} body")
        parts.append(out)
        remaining = inflater.unused_data
        if not remaining:
            return b"".join(parts)
        if wbits == zlib.MAX_WBITS:
            raise DecodeError(f"{len(remaining)} bytes after the end of the deflate stream")
        if remaining.strip(b"\x00") == b"":
            return b"".join(parts)  # gzip's own tools ignore zero padding after the last member
