"""Which attribute keys name a call's destination (the service, host or URL a client span talks to).

A value naming the callee says where time or errors went, never why, so it is never compared across traces:
an instrumented callee's own spans say it more precisely (its operation, its version, its host), and an
uninstrumented peer is named by the calls' own time, through the client operation that waits on it.
"""

from __future__ import annotations

#: Destination keys of the OpenTelemetry semantic conventions (old and new names), Zipkin and OpenTracing.
DESTINATION_KEYS = frozenset(
    {
        "server.address",
        "server.port",
        "server.socket.address",
        "server.socket.domain",
        "network.peer.address",
        "network.peer.port",
        "net.peer.name",
        "net.peer.ip",
        "net.peer.port",
        "net.sock.peer.addr",
        "net.sock.peer.name",
        "net.sock.peer.port",
        "peer.service",
        "peer.hostname",
        "peer.address",
        "peer.ipv4",
        "peer.ipv6",
        "peer.port",
        "http.host",
        "http.url",
        "url.full",
        "url.domain",
        "rpc.service",
        "rpc.method",
        "messaging.destination.name",
        "messaging.destination",
    }
)


def is_destination(key: str) -> bool:
    """True for a key naming what a call went to."""
    return key in DESTINATION_KEYS
