"""Decoders: request bodies in, validated span batches out. Nothing here knows about servers or storage."""

from spyglass.receivers.decoders.result import DecodeError, DecodeResult

__all__ = ["DecodeError", "DecodeResult"]
