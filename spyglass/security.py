"""Bearer-token checks shared by the receivers and the API (``--ingest-token`` / ``--query-token``)."""

from __future__ import annotations

import hmac


def bearer_ok(authorization: str | None, token: str | None) -> bool:
    """True when no token is required, or the ``Authorization`` value is ``Bearer <token>``."""
    if token is None:
        return True
    if not authorization:
        return False
    scheme, _, value = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())
