"""A decoder failure nobody foresaw is still a 400 for the sender, and a logged traceback for the operator."""

from __future__ import annotations

import logging

import pytest

from spyglass.receivers.decoders import result
from spyglass.receivers.decoders.result import DecodeError, unforeseen


def test_an_unforeseen_failure_is_a_decode_error_logged_at_most_once_a_minute(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(result, "_last_logged", [float("-inf")])
    with caplog.at_level(logging.WARNING, logger=result.__name__):
        for _ in range(100):
            error = unforeseen(KeyError("resource"), "OTLP JSON")
    assert isinstance(error, DecodeError)
    assert str(error) == "cannot decode OTLP JSON: KeyError: 'resource'"
    logged = [r for r in caplog.records if "unforeseen" in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None
