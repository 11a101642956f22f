"""What every decoder answer must say of itself, for the tests that decode generated or mangled bodies."""

from __future__ import annotations

from spyglass.receivers.decoders.result import DecodeResult


def check_message(result: DecodeResult) -> None:
    """A rejection always says why; a message with nothing rejected is a warning (OTLP's partial success), which
    only a span kept as lasting 0 gives."""
    if result.rejected_spans:
        assert result.error_message, "a rejection must say why"
    elif result.error_message:
        assert "kept with duration 0" in result.error_message, result.error_message
