"""What explain knows about attribute keys: which never make a finding, which name a call's destination, and
which name a cause best when several name the same traces.

A value naming the callee (the service, host or URL a client span talks to) says where time or errors went,
never why, so it is never compared across traces: an instrumented callee's own spans say it more precisely
(its operation, its version, its host), and an uninstrumented peer is named by the calls' own time, through
the client operation that waits on it.
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


#: When values name the same traces, the more general / causal name first; keys not listed come after these.
KEY_PREFERENCE = (
    "service.version",
    "deployment.id",
    "k8s.deployment.name",
    "peer.service",
    "customer.id",
    "enduser.id",
    "tenant.id",
    "cloud.availability_zone",
    "cloud.region",
    "host.name",
    "k8s.node.name",
    "host.id",
    "k8s.pod.name",
    "container.id",
    "service.instance.id",
)
#: Places other processes could share (a machine, a node, a zone): one slow by itself slows whatever runs there.
#: A process's own identity (its pod, container, instance id) is not among them: it is the service itself.
SHARED_PLACE_KEYS = frozenset(
    {"host.name", "host.id", "k8s.node.name", "cloud.availability_zone", "cloud.region"}
)
#: Keys that name what was deployed: a new value on every instance (a full rollout) keeps its full score.
DEPLOY_KEYS = frozenset({"service.version", "deployment.id", "k8s.deployment.name", "deployment.environment"})
#: Keys never worth reporting: they describe the symptom itself or are per-request identifiers / times.
SKIP_KEYS = frozenset(
    {
        "service.name",
        "telemetry.sdk.name",
        "telemetry.sdk.language",
        "telemetry.sdk.version",
        "process.pid",
        "thread.id",
        "thread.name",
    }
)
SKIP_SUFFIXES = (".time", ".timestamp", "_ns", "_ms", ".id_hash")


def key_rank(key: str) -> int:
    """Lower names a cause better (``KEY_PREFERENCE``)."""
    return KEY_PREFERENCE.index(key) if key in KEY_PREFERENCE else len(KEY_PREFERENCE)


def skip_key(key: str) -> bool:
    """True for a key that never makes a finding."""
    return key in SKIP_KEYS or key.endswith(SKIP_SUFFIXES)
