"""Writing accepted data to the store without dropping it on a transient error: retry with backoff."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

ATTEMPTS = 8


def write_with_retry(write: Callable[[], None], what: str) -> bool:
    """Call ``write`` until it succeeds, backing off from 50 ms to 2 s; False (logged loudly) after
    ``ATTEMPTS`` failures."""
    delay_s = 0.05
    for attempt in range(ATTEMPTS):
        try:
            write()
            return True
        except Exception:
            log.exception("writing %s failed (attempt %d), retrying", what, attempt + 1)
            time.sleep(delay_s)
            delay_s = min(delay_s * 2, 2.0)
    log.error("giving up on writing %s after repeated store failures", what)
    return False
