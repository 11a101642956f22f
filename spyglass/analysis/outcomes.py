"""Which attribute keys describe an outcome (what happened to a request) rather than a circumstance (where it
ran, who sent it, what it carried, what it called).

An outcome is never a cause: the failing requests of a bad zone are a subset of that zone's requests, so a
finding named ``http.response.status_code=500`` would always look like the sharper name for the zone's fault.
The semantic conventions name outcomes in a few regular ways, old and new, so they are recognised by shape as
well as by name.
"""

from __future__ import annotations

#: Outcome keys of the OpenTelemetry semantic conventions (old and new names), Zipkin and OpenTracing.
OUTCOME_KEYS = frozenset(
    {
        "error",
        "otel.status_code",
        "otel.status_description",
        "http.status_code",
        "http.response.status_code",
        "http.status_text",
        "rpc.grpc.status_code",
        "rpc.connect_rpc.error_code",
        "rpc.jsonrpc.error_code",
        "rpc.jsonrpc.error_message",
        "db.response.status_code",
        "grpc.status_code",
        "status.code",
        "status.message",
        "response.status",
        "sampling.priority",
    }
)
_PREFIXES = ("exception.", "error.", "otel.status")
_SUFFIXES = (
    ".status_code",
    ".error_code",
    ".error_type",
    ".error_message",
    ".status_description",
    ".status_text",
)


def is_outcome(key: str) -> bool:
    """True for a key that says how a request ended (a status, an error, an exception), never why."""
    return key in OUTCOME_KEYS or key.startswith(_PREFIXES) or key.endswith(_SUFFIXES)
