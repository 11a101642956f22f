"""Every ``Content-Encoding`` the OpenTelemetry Collector's exporters send (its ``compression`` setting), made by
the codecs' own libraries: read whole (every frame), bounded before it can expand, and refused with a reason
when broken."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spyglass.receivers.decoders.result import DecodeError
from spyglass.receivers.http_body import ENCODINGS, MAX_FRAMES, BodyTooLarge, decompress
from tests.support.compressions import MAKERS

DATA = b"resourceSpans " * 5_000


@pytest.mark.parametrize("encoding", sorted(MAKERS))
def test_each_encoding_is_read_whole(encoding: str) -> None:
    parts = [DATA, b"", DATA[:7]]
    assert decompress(MAKERS[encoding](parts), encoding, len(DATA) + 7) == DATA + DATA[:7]


def test_snappy_is_read_framed_or_as_a_block() -> None:
    """The Collector sent framed snappy as ``snappy`` before it had ``x-snappy-framed``, and reads both."""
    assert decompress(MAKERS["x-snappy-framed"]([DATA]), "snappy", len(DATA)) == DATA


@pytest.mark.parametrize("encoding", sorted(MAKERS))
def test_each_encoding_is_bounded_before_it_expands(encoding: str) -> None:
    bomb = MAKERS[encoding]([b"\0" * (4 << 20)])
    assert len(bomb) < 1 << 20
    with pytest.raises(BodyTooLarge, match="exceeds the limit of 65536 bytes"):
        decompress(bomb, encoding, 65536)
    with pytest.raises(BodyTooLarge):
        decompress(MAKERS[encoding]([DATA]), encoding, len(DATA) - 1)


@pytest.mark.parametrize("encoding", sorted(MAKERS))
def test_broken_bodies_are_refused_naming_the_encoding(encoding: str) -> None:
    whole = MAKERS[encoding]([DATA])
    for broken in (b"not compressed at all", whole[: len(whole) // 2]):
        with pytest.raises(DecodeError, match=encoding):
            decompress(broken, encoding, 1 << 20)


@pytest.mark.parametrize("encoding", ["gzip", "zstd", "lz4"])
def test_a_body_of_thousands_of_frames_is_refused(encoding: str) -> None:
    many = MAKERS[encoding]([b"x"] * (MAX_FRAMES + 1))
    with pytest.raises(DecodeError, match="frames in one body"):
        decompress(many, encoding, 1 << 20)
    assert decompress(MAKERS[encoding]([b"x"] * MAX_FRAMES), encoding, 1 << 20) == b"x" * MAX_FRAMES


def test_a_corrupt_snappy_frame_fails_its_checksum() -> None:
    framed = bytearray(MAKERS["x-snappy-framed"]([DATA]))
    framed[-1] ^= 1
    with pytest.raises(DecodeError, match="x-snappy-framed"):
        decompress(bytes(framed), "x-snappy-framed", 1 << 20)


@pytest.mark.parametrize("inner", sorted(MAKERS))
def test_stacked_codings_are_undone_last_first(inner: str) -> None:
    """``Content-Encoding: zstd, gzip`` names the codings in the order applied: gzip was applied last."""
    twice = MAKERS["gzip"]([MAKERS[inner]([DATA])])
    assert decompress(twice, f"{inner}, gzip", len(DATA)) == DATA
    assert decompress(twice, f" identity ,{inner} ,GZIP ".lower().strip(), len(DATA)) == DATA
    with pytest.raises(BodyTooLarge):  # each layer's output is bounded
        decompress(twice, f"{inner}, gzip", len(DATA) - 1)
    if inner != "gzip":  # named the other way round: the outer layer is not the inner coding's
        with pytest.raises(DecodeError, match=inner):
            decompress(twice, f"gzip, {inner}", len(DATA))


def test_stacked_bombs_are_bounded_at_every_layer() -> None:
    bomb = MAKERS["gzip"]([MAKERS["gzip"]([b"\0" * (16 << 20)])])
    assert len(bomb) < 64 << 10
    with pytest.raises(BodyTooLarge, match="exceeds the limit of 65536 bytes"):
        decompress(bomb, "gzip, gzip", 65536)
    with pytest.raises(DecodeError, match="more than 4 codings"):
        decompress(bomb, ", ".join(["gzip"] * 5), 65536)
    with pytest.raises(DecodeError, match="unsupported Content-Encoding 'br'"):
        decompress(bomb, "br, gzip", 1 << 30)


def test_unknown_encodings_are_refused_listing_the_known() -> None:
    with pytest.raises(DecodeError, match="unsupported Content-Encoding 'br'.*zstd.*snappy.*lz4"):
        decompress(b"x", "br", 100)
    assert set(MAKERS) < set(ENCODINGS)


@settings(max_examples=300, deadline=None)
@given(
    encoding=st.sampled_from(sorted(MAKERS)),
    body=st.binary(max_size=300),
    cut=st.integers(0, 64),
    flips=st.lists(st.integers(0, 10_000), max_size=3),
)
def test_any_body_is_bytes_within_the_bound_or_a_decode_error(
    encoding: str, body: bytes, cut: int, flips: list[int]
) -> None:
    """Random bytes, and real bodies cut short or with bits flipped: never anything but the bounded bytes or a
    ``DecodeError`` (a 400 or 413), whatever the codec's library makes of them."""
    for candidate in (body, _mangled(MAKERS[encoding]([body, DATA[:cut]]), flips)):
        try:
            out = decompress(candidate, encoding, 4096)
        except DecodeError:
            continue
        assert len(out) <= 4096


def _mangled(body: bytes, flips: list[int]) -> bytes:
    mangled = bytearray(body)
    for at in flips:
        if mangled:
            mangled[at % len(mangled)] ^= 1 << (at % 8)
    return bytes(mangled)
