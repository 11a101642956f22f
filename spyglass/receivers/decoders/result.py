"""What a decoder returns, and the one error type it raises."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import pyarrow as pa

log = logging.getLogger(__name__)


class DecodeError(ValueError):
    """The payload cannot be accepted at all; the message names what is wrong (sent back as 400)."""


@dataclass(frozen=True)
class DecodeResult:
    """Accepted spans, and how many were rejected and why (an OTLP partial success)."""

    batch: pa.RecordBatch
    rejected_spans: int = 0
    error_message: str = ""


#: At most one logged traceback per this many seconds, so a flood of one odd body cannot flood the log.
_LOG_INTERVAL_S = 60.0
_log_lock = threading.Lock()
_last_logged = [float("-inf")]


def unforeseen(error: Exception, what: str) -> DecodeError:
    """The ``DecodeError`` for a failure no decoder check foresaw: the sender still gets a 400 naming it, and the
    log gets its traceback (at most one a minute), because it may be spyglass's bug rather than the sender's."""
    with _log_lock:
        now = time.monotonic()
        due = now - _last_logged[0] >= _LOG_INTERVAL_S
        if due:
            _last_logged[0] = now
    if due:
        log.warning("unforeseen failure decoding %s (answered 400)", what, exc_info=error)
    return DecodeError(f"cannot decode {what}: {type(error).__name__}: {error}")
