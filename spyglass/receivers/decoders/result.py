"""What a decoder returns, the one error type it raises, and the guard that makes every failure that error."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import pyarrow as pa

log = logging.getLogger(__name__)

_Params = ParamSpec("_Params")
_Result = TypeVar("_Result")


class DecodeError(ValueError):
    """The payload cannot be accepted at all; the message names what is wrong (sent back as 400)."""


@dataclass(frozen=True)
class DecodeResult:
    """Accepted spans, and how many were rejected and why (an OTLP partial success)."""

    batch: pa.RecordBatch
    rejected_spans: int = 0
    error_message: str = ""


class Problem(Exception):
    """Something wrong at a path inside a request; the path grows as the exception climbs out of the decoder.

    Paths are only built once something is wrong, so valid spans pay nothing for good error messages.
    """

    def __init__(self, what: str, where: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.where = where

    def at(self, prefix: str) -> Problem:
        """Put ``prefix`` (a field name or ``[index]``) in front of the path, and return the same problem."""
        if not self.where:
            self.where = prefix
        elif self.where.startswith("["):
            self.where = prefix + self.where
        else:
            self.where = f"{prefix}.{self.where}"
        return self

    def message(self) -> str:
        return f"{self.where}: {self.what}" if self.where else self.what


class RequestMalformed(Problem):
    """The request's shape or types are wrong: refuse all of it."""


class SpanRejected(Problem):
    """One span is invalid: drop it and keep the others."""


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


def only_decode_errors(
    what: str,
) -> Callable[[Callable[_Params, _Result]], Callable[_Params, _Result]]:
    """Make a decoder raise nothing but ``DecodeError``, so the receiver answers 400, never 500, whatever it is
    sent: a ``Problem`` becomes one with its path, any other failure one naming ``what`` (see ``unforeseen``).

    It wraps a whole request, never a span, so it costs one call per request.
    """

    def guard(decode: Callable[_Params, _Result]) -> Callable[_Params, _Result]:
        @functools.wraps(decode)
        def guarded(*args: _Params.args, **kwargs: _Params.kwargs) -> _Result:
            try:
                return decode(*args, **kwargs)
            except DecodeError:
                raise
            except Problem as problem:
                raise DecodeError(problem.message()) from None
            except Exception as error:
                raise unforeseen(error, what) from None

        return guarded

    return guard
