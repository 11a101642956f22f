"""Request bodies compressed as each ``Content-Encoding`` the OpenTelemetry Collector's exporters send, made by the
codecs' own libraries (not spyglass's code): one frame (or gzip member) per part where the format has frames."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable

import cramjam
import lz4.frame
from backports import zstd

MAKERS: dict[str, Callable[[list[bytes]], bytes]] = {
    "gzip": lambda parts: b"".join(gzip.compress(p) for p in parts),
    "zstd": lambda parts: b"".join(zstd.compress(p) for p in parts),
    "lz4": lambda parts: b"".join(lz4.frame.compress(p) for p in parts),
    "zlib": lambda parts: zlib.compress(b"".join(parts)),
    "deflate": lambda parts: zlib.compress(b"".join(parts)),
    "snappy": lambda parts: bytes(cramjam.snappy.compress_raw(b"".join(parts))),
    "x-snappy-framed": lambda parts: bytes(cramjam.snappy.compress(b"".join(parts))),
}
