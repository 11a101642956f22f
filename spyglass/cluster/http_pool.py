"""The one HTTP client through which cluster members talk to each other: peer queries and forwarded spans.

A single urllib3 ``PoolManager`` keeps connections alive per peer and checks that an idle one is still open
before reusing it; urllib3 opens every connection with Nagle's algorithm off (``TCP_NODELAY``), so small
requests and answers do not wait out the peer's delayed ACK (40 ms a round trip on Linux). Each caller
declares its own ``PeerRetry``: queries and forwarding do not fail the same way.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import urllib3
from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import HTTPError, MaxRetryError, NewConnectionError, ReadTimeoutError
from urllib3.response import BaseHTTPResponse
from urllib3.util import Retry, Timeout

log = logging.getLogger(__name__)

#: Idle connections kept per peer: as many as the peer client's fan-out threads, which may all ask one peer.
CONNECTIONS_PER_PEER = 32
#: Peers whose pools are kept; past it the least recently used peer's connections are closed.
MAX_PEERS = 256

#: Shared by every member in the process (tests run several), keyed by each peer's scheme, host and port.
POOL = urllib3.PoolManager(num_pools=MAX_PEERS, maxsize=CONNECTIONS_PER_PEER)


class PeerRetry(Retry):
    """urllib3's ``Retry`` plus what it cannot declare: a deadline (forwarding tries a peer for a time, not a
    number of tries, however fast each try fails), no second try after a read timeout (it would double the
    wait for a slow peer), and a callback per failed try (counted in ``/api/v1/status``)."""

    def __init__(
        self,
        *args: Any,
        deadline: float = math.inf,
        retry_read_timeouts: bool = True,
        on_failure: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        #: ``time.monotonic()`` past which no try starts.
        self.deadline = deadline
        self.retry_read_timeouts = retry_read_timeouts
        self.on_failure = on_failure

    def new(self, **kw: Any) -> Self:
        kw.setdefault("deadline", self.deadline)
        kw.setdefault("retry_read_timeouts", self.retry_read_timeouts)
        kw.setdefault("on_failure", self.on_failure)
        return super().new(**kw)

    def is_exhausted(self) -> bool:
        return super().is_exhausted() or time.monotonic() + self.get_backoff_time() > self.deadline

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        if self.on_failure is not None:
            self.on_failure()
        what = error if error is not None else f"HTTP {response.status if response else '?'}"
        log.debug("%s%s failed: %s", f"{_pool.host}:{_pool.port}" if _pool is not None else "", url, what)
        if isinstance(error, ReadTimeoutError) and not self.retry_read_timeouts:
            raise error  # as urllib3 does with an error it may not retry
        return super().increment(method, url, response, error, _pool, _stacktrace)


class _QuietPeerRetries(logging.Filter):
    """urllib3 warns at every retry after a connection error. Between peers that is routine, and a member
    that stays unreachable is reported once, by the membership; ``PeerRetry`` logs each failed try at debug."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.args, tuple) and record.args and isinstance(record.args[0], PeerRetry))


logging.getLogger("urllib3.connectionpool").addFilter(_QuietPeerRetries())


def post(
    url: str, body: bytes, headers: dict[str, str], timeout_s: float, retries: Retry
) -> BaseHTTPResponse:
    """POST ``body`` and read the whole answer (which frees the connection for the next request). Redirects
    are not followed: a peer never sends one. Raises urllib3's ``HTTPError`` when no answer came."""
    return POOL.urlopen(
        "POST",
        url,
        body=body,
        headers=headers,
        timeout=Timeout(connect=timeout_s, read=timeout_s),
        retries=retries,
        redirect=False,
    )


def reason(error: HTTPError) -> BaseException:
    """What went wrong on the last try, under urllib3's ``MaxRetryError``."""
    if isinstance(error, MaxRetryError) and error.reason is not None:
        return error.reason
    return error


def refused(error: HTTPError) -> bool:
    """The peer's host answered that nothing listens on its port (not a timeout, nor a name not found)."""
    cause = reason(error)
    return isinstance(cause, NewConnectionError) and isinstance(cause.__cause__, ConnectionRefusedError)
