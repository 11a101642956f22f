"""A randomized, seeded corpus of explain cases: unseen topologies, each with one injected fault (or none).

``case(seed)`` draws a topology (4-20 services with random names, fan-out, async edges, uninstrumented peers,
old or new semantic conventions per service, HTTP or gRPC shapes, pods on nodes in zones in regions or hosts in
zones, customers, cohorts, flags and request sizes), then a fault of a random kind and strength, and returns the
spans of a baseline and a regression window with the request to explain and the causes that count as right.
Every regression window also carries an unrelated deploy (a new ``service.version`` that changes nothing) and
a new bystander value, so that "what is new" alone never names the cause.

Expected causes are *answers*: ``("attribute", key, value)`` (any service: the same node or zone is one cause
wherever it is carried) or ``(kind, service, operation)`` for ``operation``, ``n_plus_one``, ``sequential`` and
``error_source``. ``answers_of(finding)`` turns an explain finding into the same shape.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from spyglass.analysis.explain import ExplainRequest
from spyglass.model.schema import SPAN_SCHEMA

MS = 1_000_000
BASE_T0 = 1_700_000_000 * 10**9
WINDOW_NS = 60 * 10**9
REG_T0 = BASE_T0 + 2 * WINDOW_NS
TRACES_PER_WINDOW = 300

SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5
INT_TYPE = 2  # ValueType.INT in the attribute type map

FAULT_KINDS = (
    "version_canary",
    "version_rollout",
    "slow_node",
    "slow_host",
    "slow_zone",
    "heavy_customer",
    "large_input",
    "slow_upstream",
    "slow_peer",
    "failing_upstream",
    "failing_peer",
    "n_plus_one",
    "sequential",
    "zone_errors",
    "cohort_errors",
    "two_changes",
)
ERROR_KINDS = {"failing_upstream", "failing_peer", "zone_errors", "cohort_errors"}
HEALTHY_SHARE = 1 / 6
#: Growth of the share of roots showing the symptom that makes a fault visible at the root.
VISIBLE_GROWTH = {"errors": 0.05, "latency": 0.08}

Answer = tuple[str, str, str]

SYLLABLES = "ka ri to mu ne sa lo vi de pa zu mi ro ta ki bo lu fa ge hi jo na pe so ru we xi ya tor lin vex dra".split()
WORDS = (
    "cart order price stock ledger quote invoice search rank index media thumb auth session profile "
    "ship route notify mail feed graph score audit batch report tax fraud coupon wallet"
).split()
TABLES = "users orders items prices accounts events sessions carts payments rows".split()
DB_SYSTEMS = ("postgresql", "mysql", "redis", "mongodb", "cassandra")
CUSTOMER_KEYS = ("customer.id", "tenant.id", "enduser.id", "app.account_id")
COHORT_KEYS = ("user.cohort", "app.segment", "tenant.tier", "app.plan")
SIZE_KEYS = ("order.items", "batch.size", "request.items", "query.terms", "app.payload_items")
SEMCONV = {
    "old": {
        "method": "http.method",
        "status": "http.status_code",
        "address": "net.peer.name",
        "statement": "db.statement",
    },
    "new": {
        "method": "http.request.method",
        "status": "http.response.status_code",
        "address": "server.address",
        "statement": "db.query.text",
    },
}


@dataclass
class Case:
    """One explain problem: both windows' spans, the request, and the answers that name its cause."""

    seed: int
    kind: str
    spans: pa.Table
    request: ExplainRequest
    expected: frozenset[Answer]
    services: list[str]
    healthy: bool
    description: str

    @property
    def visible(self) -> bool:
        """Whether the fault reached the symptom: a fault the root never felt (a slowed branch off the
        critical path) leaves nothing to explain, even after the generator strengthened it three times."""
        grew = self.symptom_share[0] - self.symptom_share[1]
        return not self.healthy and grew >= VISIBLE_GROWTH[self.request.signal]

    #: The services whose own spans the fault changed (empty when healthy): the service-level answer.
    culprits: frozenset[str] = frozenset()
    #: Share of regression roots showing the symptom (slower than the baseline's p90, or failed) and the same
    #: share in the baseline: how strong the generated symptom is.
    symptom_share: tuple[float, float] = (0.0, 0.0)


def answer_of(finding: dict[str, Any]) -> Answer:
    """An explain finding in the shape of ``Case.expected``."""
    if finding["kind"] == "attribute":
        return ("attribute", str(finding["key"]), str(finding["value"]))
    return (finding["kind"], finding["service"], finding.get("operation") or "")


def answers_of(finding: dict[str, Any]) -> set[Answer]:
    """Every cause a finding names: itself, and the other half of a mechanism told with the value that
    switched it on (``evidence.since`` / ``evidence.through``)."""
    answers = {answer_of(finding)}
    evidence = finding.get("evidence", {})
    if "since" in evidence:
        answers.add(answer_of({"kind": "attribute", **evidence["since"]}))
    if "through" in evidence:
        answers.add(answer_of(evidence["through"]))
    return answers


def services_of(finding: dict[str, Any]) -> list[str]:
    """The services a finding names, its own first."""
    evidence = finding.get("evidence", {})
    parts = [evidence[k]["service"] for k in ("since", "through") if k in evidence]
    return list(dict.fromkeys([str(finding["service"]), *parts]))


# --- topology -------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Instance:
    service: str
    resource: dict[str, str]
    zone: str
    infra: dict[str, str]  # the hierarchy keys only (pod/node/zone/region or host/zone, instance id)


@dataclass(eq=False)
class Peer:
    """An uninstrumented dependency: a client span with no server child."""

    op: str
    attrs: list[tuple[str, str]]
    ms: float
    answers: frozenset[Answer]


@dataclass(eq=False)
class Edge:
    mode: str  # "sync" | "async" | "peer"
    p: float  # probability that a request makes the call
    node: Node | None = None
    peer: Peer | None = None
    client_op: str = ""
    client_attrs: list[tuple[str, str]] = field(default_factory=list)


@dataclass(eq=False)
class Service:
    name: str
    style: str
    grpc: bool
    version: str
    instances: list[Instance]
    tags_customer: bool
    bystander: tuple[str, list[str]]


@dataclass(eq=False)
class Node:
    """One operation of one service in the call tree, with its children in stages (parallel inside a stage)."""

    service: Service
    op: str
    attrs: list[tuple[str, str]]
    own_ms: float
    stages: list[list[Edge]]
    depth: int
    error_rate: float
    consumer: bool = False

    def leaf(self) -> bool:
        return not any(self.stages)


@dataclass
class Topology:
    services: list[Service]
    nodes: list[Node]
    root: Node
    customer_key: str
    customers: list[str]
    customer_weights: list[float]
    cohort_key: str
    cohorts: list[str]
    size_key: str
    flag_key: str
    peers: list[tuple[Node, Edge]]


def _name(rng: random.Random, taken: set[str], parts: int = 2) -> str:
    while True:
        name = "".join(rng.choice(SYLLABLES) for _ in range(parts))
        if name not in taken:
            taken.add(name)
            return name


def _topology(rng: random.Random) -> Topology:
    taken: set[str] = set()
    n_services = rng.randint(4, 20)
    region_names = [f"{_name(rng, taken)}-{rng.randint(1, 3)}" for _ in range(rng.randint(1, 3))]
    zones: list[tuple[str, str]] = []  # (zone, region)
    for region in region_names:
        for letter in "abc"[: rng.randint(2, 3)]:
            zones.append((f"{region}{letter}", region))
    nodes_ = [(f"node-{_name(rng, taken)}-{k}", rng.choice(zones)) for k in range(rng.randint(3, 8))]
    hosts = [(f"ip-10-{rng.randint(0, 9)}-{k}-{rng.randint(2, 250)}", rng.choice(zones)) for k in range(6)]

    services: list[Service] = []
    for _ in range(n_services):
        name = _name(rng, taken, rng.choice((2, 2, 3)))
        version = f"{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}"
        instances = []
        k8s = rng.random() < 0.65
        for k in range(rng.randint(2, 5)):
            if k8s:
                node_name, (zone, region) = rng.choice(nodes_)
                pod = f"{name}-{rng.getrandbits(24):06x}-{rng.getrandbits(16):04x}"
                infra = {
                    "k8s.pod.name": pod,
                    "k8s.node.name": node_name,
                    "cloud.availability_zone": zone,
                    "cloud.region": region,
                }
            else:
                host, (zone, region) = hosts[rng.randrange(len(hosts))]
                infra = {"host.name": host, "cloud.availability_zone": zone, "cloud.region": region}
            infra["service.instance.id"] = f"{name}-{k}-{rng.getrandbits(32):08x}"
            resource = {"service.namespace": rng.choice(("shop", "core", "edge")), **infra}
            instances.append(Instance(name, resource, infra["cloud.availability_zone"], infra))
        bystander_key = f"app.{rng.choice(WORDS)}_{rng.choice(('mode', 'kind', 'pool', 'lane'))}"
        services.append(
            Service(
                name=name,
                style=rng.choice(("old", "new")),
                grpc=rng.random() < 0.35,
                version=version,
                instances=instances,
                tags_customer=rng.random() < 0.5,
                bystander=(bystander_key, [_name(rng, set()) for _ in range(rng.randint(2, 4))]),
            )
        )

    def server_node(service: Service, depth: int, consumer: bool = False, topic: str = "") -> Node:
        word = rng.choice(WORDS)
        if consumer:
            op, attrs = (
                f"{topic} process",
                [("messaging.system", "kafka"), ("messaging.destination.name", topic)],
            )
        elif service.grpc:
            rpc_service = f"{word}.v1.{word.capitalize()}Service"
            method = rng.choice(("Get", "List", "Create", "Compute", "Check")) + word.capitalize()
            op = f"{rpc_service}/{method}"
            attrs = [("rpc.system", "grpc"), ("rpc.service", rpc_service), ("rpc.method", method)]
        else:
            method = rng.choice(("GET", "GET", "POST", "PUT"))
            route = f"/{word}/{{id}}" if rng.random() < 0.5 else f"/api/{word}"
            op = f"{method} {route}"
            attrs = [(SEMCONV[service.style]["method"], method), ("http.route", route)]
        return Node(
            service, op, attrs, rng.uniform(2, 15), [], depth, rng.choice((0.0, 0.0, 0.002, 0.01)), consumer
        )

    root = server_node(services[0], 0)
    root.service.grpc = False
    tree = [root]
    for service in services[1:]:
        parent = rng.choice([n for n in tree if n.depth < 4 and not n.consumer] or [root])
        asynchronous = parent is not root and rng.random() < 0.15
        topic = f"{rng.choice(WORDS)}-events"
        child = server_node(service, parent.depth + 1, asynchronous, topic)
        if asynchronous:
            edge = Edge("async", 1.0, node=child, client_op=f"{topic} publish")
            edge.client_attrs = [("messaging.system", "kafka"), ("messaging.destination.name", topic)]
        else:
            edge = Edge("sync", rng.choice((1.0, 1.0, 0.9, 0.7)), node=child)
            edge.client_op = child.op if service.grpc else child.op.split(" ")[0]
            edge.client_attrs = [(SEMCONV[parent.service.style]["address"], service.name)]
            if service.grpc:
                edge.client_attrs += [("rpc.system", "grpc"), *child.attrs[1:]]
        _attach(rng, parent, edge)
        tree.append(child)

    peers: list[tuple[Node, Edge]] = []
    for node in list(tree):
        if rng.random() < 0.45:
            conv = SEMCONV[node.service.style]
            if rng.random() < 0.65:
                system = rng.choice(DB_SYSTEMS)
                table = rng.choice(TABLES)
                address = f"{system[:5]}-{_name(rng, taken)}.db.internal"
                op = f"SELECT {table}" if system != "redis" else f"GET {table}"
                statement = f"SELECT * FROM {table} WHERE id = ?" if system != "redis" else f"GET {table}:?"
                attrs = [("db.system", system), (conv["address"], address), (conv["statement"], statement)]
                answers = {("attribute", conv["address"], address)}
            else:
                peer_name = f"{_name(rng, taken)}-api"
                address = f"api.{peer_name}.example.com"
                method = rng.choice(("GET", "POST"))
                op = method
                attrs = [("peer.service", peer_name), (conv["address"], address), (conv["method"], method)]
                answers = {("attribute", "peer.service", peer_name), ("attribute", conv["address"], address)}
            peer = Peer(op, attrs, rng.uniform(3, 25), frozenset(answers))
            edge = Edge("peer", rng.choice((1.0, 1.0, 0.8)), peer=peer, client_op=op)
            _attach(rng, node, edge)
            peers.append((node, edge))
    n_customers = rng.randint(5, 30)
    customers = [
        f"{rng.choice(('c', 'cust-', 'acct-', 't'))}{rng.randint(100, 9999)}" for _ in range(n_customers)
    ]
    customers = list(dict.fromkeys(customers))
    weights = [1 / (k + 1) ** 0.8 for k in range(len(customers))]
    return Topology(
        services=services,
        nodes=tree,
        root=root,
        customer_key=rng.choice(CUSTOMER_KEYS),
        customers=customers,
        customer_weights=weights,
        cohort_key=rng.choice(COHORT_KEYS),
        cohorts=rng.sample(("beta", "trial", "gold", "free", "pro", "legacy", "edu"), rng.randint(3, 5)),
        size_key=rng.choice(SIZE_KEYS),
        flag_key=f"feature.{rng.choice(WORDS)}_{rng.choice(('v2', 'fast', 'batch', 'new'))}",
        peers=peers,
    )


def _attach(rng: random.Random, parent: Node, edge: Edge) -> None:
    """Put a call into a new stage or alongside the calls of an existing one (fan-out in parallel)."""
    if parent.stages and rng.random() < 0.6:
        rng.choice(parent.stages).append(edge)
    else:
        parent.stages.insert(rng.randint(0, len(parent.stages)), [edge])


# --- faults ---------------------------------------------------------------------------------------------

Pred = Callable[[Node, Instance, "Context"], bool]


@dataclass
class Context:
    customer: str
    cohort: str
    size: int
    flag: bool
    hit: bool = False  # the request met the fault (for a correlated decoy)


@dataclass
class Fault:
    kind: str
    signal: str = "latency"
    expected: set[Answer] = field(default_factory=set)
    description: str = ""
    slow: list[tuple[Pred, float]] = field(default_factory=list)
    fail: list[tuple[Pred, float]] = field(default_factory=list)
    peer_slow: dict[int, float] = field(default_factory=dict)  # id(edge) -> factor
    peer_fail: dict[int, float] = field(default_factory=dict)
    repeat: tuple[int, Callable[[Instance, Context], bool], int] | None = None  # (id(edge), when, calls)
    sequential: Node | None = None
    sequential_when: Callable[[Instance], bool] = lambda inst: True
    versions: dict[int, str] = field(default_factory=dict)  # id(instance) -> regression version
    flag_share: float = 0.0
    size_share: float = 0.0
    size_value: int = 150
    customer_boost: tuple[str, float] | None = None
    decoy: tuple[str, str, float, float] | None = None  # key, value, P(value | hit), P(value | miss)
    #: The services whose own spans the fault changes (for service-level methods: the right answer).
    culprits: set[str] = field(default_factory=set)

    def strengthen(self) -> None:
        self.slow = [(pred, 1 + (f - 1) * 1.6) for pred, f in self.slow]
        self.fail = [(pred, min(0.95, p * 1.5)) for pred, p in self.fail]
        self.peer_slow = {k: 1 + (f - 1) * 1.6 for k, f in self.peer_slow.items()}
        self.peer_fail = {k: min(0.95, p * 1.5) for k, p in self.peer_fail.items()}
        if self.repeat:
            edge_id, when, calls = self.repeat
            self.repeat = (edge_id, when, int(calls * 1.5))


def _equivalent_infra(topo: Topology, affected: list[Instance]) -> set[Answer]:
    """Every infrastructure value whose instances are exactly the affected ones (a node running one pod is
    that pod too): each names the cause equally well, the broadest first in the design's preference."""
    affected_ids = {id(i) for i in affected}
    carriers: dict[tuple[str, str], set[int]] = {}
    for service in topo.services:
        for inst in service.instances:
            for key, value in inst.infra.items():
                carriers.setdefault((key, value), set()).add(id(inst))
    return {("attribute", k, v) for (k, v), ids in carriers.items() if ids == affected_ids}


def _plan(rng: random.Random, topo: Topology, kind: str) -> Fault:
    fault = Fault(kind)
    factor = rng.uniform(2, 8)
    # Only what the root waits for can make it slower or fail: work behind an async edge never shows there.
    nodes = _sync_nodes(topo.root)
    instances = [i for n in nodes for i in n.service.instances]
    everywhere = [i for s in topo.services for i in s.instances]
    if kind == "two_changes":
        inner = rng.choice(("version_canary", "slow_node", "heavy_customer", "large_input", "slow_upstream"))
        fault = _plan(rng, topo, inner)
        fault.kind = kind
        value = rng.choice(("on", "enabled", "v2"))
        key = f"feature.{rng.choice(WORDS)}_rollout"
        fault.decoy = (key, value, rng.uniform(0.5, 0.8), rng.uniform(0.15, 0.35))
        fault.description += f"; decoy {key}={value} correlated with it"
        return fault
    if kind in ("version_canary", "version_rollout"):
        node = rng.choice(nodes)
        service = node.service
        new = _bump(rng, service.version)
        chosen = service.instances
        if kind == "version_canary":
            chosen = rng.sample(service.instances, rng.randint(1, max(1, len(service.instances) // 2)))
        fault.versions.update({id(i): new for i in chosen})
        ids = {id(i) for i in chosen}
        fault.slow.append((lambda n, i, c: n is node and id(i) in ids, factor))
        fault.expected = {("attribute", "service.version", new)}
        fault.culprits = {service.name}
        fault.description = f"{service.name} {new} on {len(chosen)}/{len(service.instances)} instances, {node.op} x{factor:.1f}"
    elif kind in ("slow_node", "slow_host", "slow_zone"):
        key = {
            "slow_node": "k8s.node.name",
            "slow_host": "host.name",
            "slow_zone": "cloud.availability_zone",
        }[kind]
        values = sorted({i.infra[key] for i in instances if key in i.infra})
        if not values:  # no instance of that kind in this topology: slow the zone instead
            key, kind = "cloud.availability_zone", "slow_zone"
            values = sorted({i.infra[key] for i in instances})
        counts = {v: sum(1 for i in instances if i.infra.get(key) == v) for v in values}
        value = rng.choice(
            [v for v in values if counts[v] == max(counts.values())] if rng.random() < 0.5 else values
        )
        affected = [i for i in everywhere if i.infra.get(key) == value]
        ids = {id(i) for i in affected}
        fault.slow.append((lambda n, i, c: id(i) in ids, factor))
        fault.expected = {("attribute", key, value)} | _equivalent_infra(topo, affected)
        fault.culprits = {i.service for i in affected if i.service in {n.service.name for n in nodes}}
        fault.description = f"{key}={value} ({len(affected)} instances) x{factor:.1f}"
    elif kind == "heavy_customer":
        customer = rng.choice(topo.customers[:8])
        node = rng.choice([n for n in nodes if n.depth <= 2])
        fault.customer_boost = (customer, rng.uniform(0.1, 0.3))
        fault.slow.append((lambda n, i, c: n is node and c.customer == customer, factor))
        fault.expected = {("attribute", topo.customer_key, customer)}
        fault.culprits = {node.service.name}
        fault.description = (
            f"{topo.customer_key}={customer} heavy at {node.service.name} {node.op} x{factor:.1f}"
        )
    elif kind == "large_input":
        node = rng.choice([n for n in nodes if n.depth <= 2])
        size_value = rng.choice((150, 200, 500, 1000))
        fault.size_value = size_value
        fault.size_share = rng.uniform(0.1, 0.4)
        fault.slow.append((lambda n, i, c: n is node and c.size == size_value, factor))
        fault.expected = {("attribute", topo.size_key, str(fault.size_value))}
        fault.culprits = {node.service.name}
        fault.description = (
            f"{topo.size_key}={fault.size_value} on {fault.size_share:.0%}, {node.op} x{factor:.1f}"
        )
    elif kind in ("slow_upstream", "failing_upstream"):
        node = rng.choice([n for n in nodes if n is not topo.root and not n.consumer] or nodes)
        answer_kind = "operation"
        fault.culprits = {node.service.name}
        if kind == "slow_upstream":
            fault.slow.append((lambda n, i, c: n is node, factor))
            fault.expected = {("operation", node.service.name, node.op)}
        else:
            p = rng.uniform(0.2, 0.7)
            fault.signal = "errors"
            fault.fail.append((lambda n, i, c: n is node, p))
            fault.expected = {
                (answer_kind, node.service.name, node.op),
                ("error_source", node.service.name, node.op),
            }
        fault.description = f"{node.service.name} {node.op} {'x' + format(factor, '.1f') if kind == 'slow_upstream' else 'fails'}"
    elif kind in ("slow_peer", "failing_peer"):
        if not topo.peers:
            return _plan(rng, topo, "slow_upstream" if kind == "slow_peer" else "failing_upstream")
        caller, edge = rng.choice([(n, e) for n, e in topo.peers if n in nodes] or topo.peers)
        assert edge.peer is not None
        fault.culprits = {caller.service.name}
        if kind == "slow_peer":
            fault.peer_slow[id(edge)] = factor
            fault.expected = {("operation", caller.service.name, edge.client_op)}
        else:
            fault.signal = "errors"
            fault.peer_fail[id(edge)] = rng.uniform(0.2, 0.7)
            fault.expected = {("operation", caller.service.name, edge.client_op)}
            fault.expected.add(("error_source", caller.service.name, edge.client_op))
        fault.expected |= set(edge.peer.answers)
        fault.description = (
            f"peer {edge.peer.attrs[1][1]} called by {caller.service.name} {kind.split('_')[0]}"
        )
    elif kind == "n_plus_one":
        candidates = [
            (n, e)
            for n in nodes
            for st in n.stages
            for e in st
            if e.mode == "peer" or (e.mode == "sync" and e.node and e.node.leaf())
        ]
        if not candidates:
            return _plan(rng, topo, "sequential")
        caller, edge = rng.choice(candidates)
        calls = rng.randint(8, 40)
        behind = rng.choice(("flag", "version"))
        fault.expected = {("n_plus_one", caller.service.name, edge.client_op)}
        fault.culprits = {caller.service.name}
        if edge.node is not None:
            fault.expected.add(("n_plus_one", edge.node.service.name, edge.node.op))
        if behind == "flag":
            fault.flag_share = rng.uniform(0.2, 0.7)
            fault.repeat = (id(edge), lambda i, c: c.flag, calls)
            fault.expected.add(("attribute", topo.flag_key, "on"))
        else:
            new = _bump(rng, caller.service.version)
            chosen = caller.service.instances
            if rng.random() < 0.5:
                chosen = rng.sample(chosen, rng.randint(1, len(chosen)))
            fault.versions.update({id(i): new for i in chosen})
            ids = {id(i) for i in chosen}
            fault.repeat = (id(edge), lambda i, c: id(i) in ids, calls)
            fault.expected.add(("attribute", "service.version", new))
        fault.description = f"{caller.service.name} calls {edge.client_op} x{calls} behind {behind}"
    elif kind == "sequential":
        parallel_callers = [
            n
            for n in nodes
            if any(len({_edge_name(e) for e in st if e.mode != "async"}) >= 2 for st in n.stages)
        ]
        if not parallel_callers:
            return _plan(rng, topo, "slow_upstream")
        node = rng.choice(parallel_callers)
        fault.sequential = node
        fault.expected = {("sequential", node.service.name, node.op)}
        fault.culprits = {node.service.name}
        if rng.random() < 0.5:
            new = _bump(rng, node.service.version)
            fault.versions.update({id(i): new for i in node.service.instances})
            fault.expected.add(("attribute", "service.version", new))
        fault.description = f"{node.service.name} {node.op} calls made sequential"
    elif kind == "zone_errors":
        fault.signal = "errors"
        zone = rng.choice(sorted({i.zone for i in instances}))
        affected = [i for i in everywhere if i.zone == zone]
        ids = {id(i) for i in affected}
        p = rng.uniform(0.15, 0.5)
        fault.fail.append((lambda n, i, c: id(i) in ids, p))
        fault.expected = {("attribute", "cloud.availability_zone", zone)} | _equivalent_infra(topo, affected)
        fault.culprits = {i.service for i in affected if i.service in {n.service.name for n in nodes}}
        fault.description = f"errors in zone {zone} ({len(affected)} instances) p={p:.2f}"
    elif kind == "cohort_errors":
        fault.signal = "errors"
        node = rng.choice([n for n in nodes if n.depth <= 2])
        p = rng.uniform(0.3, 0.9)
        if rng.random() < 0.5:
            value = rng.choice(topo.cohorts)
            fault.fail.append((lambda n, i, c: n is node and c.cohort == value, p))
            fault.expected = {("attribute", topo.cohort_key, value)}
        else:
            value = rng.choice(topo.customers[:3])
            fault.fail.append((lambda n, i, c: n is node and c.customer == value, p))
            fault.expected = {("attribute", topo.customer_key, value)}
        fault.culprits = {node.service.name}
        fault.description = f"errors for {value} at {node.service.name} {node.op} p={p:.2f}"
    return fault


def _sync_nodes(root: Node) -> list[Node]:
    found = [root]
    for stage in root.stages:
        for edge in stage:
            if edge.mode == "sync" and edge.node is not None:
                found += _sync_nodes(edge.node)
    return found


def _edge_name(edge: Edge) -> str:
    return edge.client_op


def _bump(rng: random.Random, version: str) -> str:
    major, minor, patch = (int(x) for x in version.split("."))
    return f"{major}.{minor + rng.randint(1, 3)}.{rng.randint(0, 9)}"


# --- span generation ------------------------------------------------------------------------------------


class _Window:
    """Runs requests through the topology into span columns (one Python touch per span, no Arrow per span)."""

    def __init__(
        self, topo: Topology, fault: Fault | None, regression: bool, rng: random.Random, first_tix: int
    ):
        self.topo, self.fault, self.regression, self.rng = topo, fault, regression, rng
        self.tix = first_tix
        self.cols: dict[str, list[Any]] = {
            k: []
            for k in (
                "tix",
                "sid",
                "pid",
                "svc",
                "name",
                "kind",
                "start",
                "dur",
                "err",
                "attrs",
                "types",
                "res",
            )
        }
        self.roots: list[tuple[float, bool]] = []
        self.versions: dict[int, str] = {}
        self.bystander: tuple[str, str, float] | None = None
        self._resources: dict[int, list[tuple[str, str]]] = {}
        self.edge_factor: dict[int, float] = {}

    def resource(self, inst: Instance, service: Service) -> list[tuple[str, str]]:
        res = self._resources.get(id(inst))
        if res is None:
            version = self.versions.get(id(inst), service.version)
            res = [("service.name", service.name), ("service.version", version), *inst.resource.items()]
            self._resources[id(inst)] = res
        return res

    def span(
        self,
        svc: str,
        name: str,
        kind: int,
        start: float,
        pid: int | None,
        attrs: list[tuple[str, str]],
        res: list[tuple[str, str]],
    ) -> int:
        c = self.cols
        sid = len(c["sid"])
        c["tix"].append(self.tix)
        c["sid"].append(sid)
        c["pid"].append(pid)
        c["svc"].append(svc)
        c["name"].append(name)
        c["kind"].append(kind)
        c["start"].append(start)
        c["dur"].append(0.0)
        c["err"].append(False)
        c["attrs"].append(attrs)
        c["types"].append(None)
        c["res"].append(res)
        return sid

    def request(self, t0_ms: float) -> None:
        rng, topo, fault = self.rng, self.topo, self.fault
        customer = rng.choices(topo.customers, topo.customer_weights)[0]
        if fault and fault.customer_boost and self.regression and rng.random() < fault.customer_boost[1]:
            customer = fault.customer_boost[0]
        size = rng.randint(1, 20)
        if fault and self.regression and rng.random() < fault.size_share:
            size = fault.size_value
        flag = bool(fault and self.regression and rng.random() < fault.flag_share)
        ctx = Context(customer, rng.choice(topo.cohorts), size, flag)
        root_attrs = [
            (topo.customer_key, customer),
            (topo.cohort_key, ctx.cohort),
            (topo.size_key, str(size)),
            (topo.flag_key, "on" if flag else "off"),
            ("client.platform", rng.choice(("web", "ios", "android"))),
        ]
        if self.bystander and rng.random() < self.bystander[2]:
            root_attrs.append(self.bystander[:2])
        start = len(self.cols["sid"])
        end, failed = self.node(topo.root, t0_ms, None, ctx, root_attrs)
        if fault and fault.decoy:
            key, value, p_hit, p_miss = fault.decoy
            if rng.random() < (p_hit if ctx.hit else p_miss):
                self.cols["attrs"][start].append((key, value))
        self.roots.append((end - t0_ms, failed))
        self.tix += 1

    def node(
        self,
        node: Node,
        start: float,
        pid: int | None,
        ctx: Context,
        extra: list[tuple[str, str]] | None = None,
    ) -> tuple[float, bool]:
        rng, fault, service = self.rng, self.fault, node.service
        inst = service.instances[rng.randrange(len(service.instances))]
        res = self.resource(inst, service)
        attrs = [*node.attrs, *(extra or ())]
        if service.tags_customer and node is not self.topo.root:
            attrs.append((self.topo.customer_key, ctx.customer))
        key, values = service.bystander
        attrs.append((key, values[rng.randrange(len(values))]))
        sid = self.span(service.name, node.op, CONSUMER if node.consumer else SERVER, start, pid, attrs, res)
        own = node.own_ms * math.exp(rng.gauss(0, 0.3))
        t = start + own * 0.4
        failed = False
        stages = node.stages
        active_fault = fault if self.regression else None
        if active_fault and active_fault.sequential is node:
            stages = [[e] for st in stages for e in st]
        for stage in stages:
            end = t
            for edge in stage:
                if edge.p < 1 and rng.random() > edge.p:
                    continue
                calls = 1
                repeat = active_fault.repeat if active_fault else None
                if repeat and repeat[0] == id(edge) and repeat[1](inst, ctx):
                    calls = repeat[2]
                    ctx.hit = True
                tt = t
                for _ in range(calls):
                    e, f = self.call(edge, tt, sid, ctx, res, short=calls > 1)
                    tt = e if calls > 1 else t
                    end = max(end, e)
                    failed = failed or (f and edge.mode != "async" and rng.random() < 0.9)
            t = end
        t += own * 0.6
        dur = t - start
        fail_p = node.error_rate
        if active_fault:
            for pred, factor in active_fault.slow:
                if pred(node, inst, ctx):
                    dur *= factor
                    ctx.hit = True
            for pred, p in active_fault.fail:
                if pred(node, inst, ctx):
                    fail_p = max(fail_p, p)
                    ctx.hit = True
        if fail_p and rng.random() < fail_p:
            failed = True
        self.close(sid, dur, failed, service, node)
        return start + dur, failed

    def call(
        self, edge: Edge, t: float, pid: int, ctx: Context, res: list[tuple[str, str]], short: bool
    ) -> tuple[float, bool]:
        rng, fault = self.rng, self.fault
        caller = self.cols["svc"][pid]
        if edge.mode == "peer":
            assert edge.peer is not None
            sid = self.span(caller, edge.client_op, CLIENT, t, pid, list(edge.peer.attrs), res)
            dur = edge.peer.ms * math.exp(rng.gauss(0, 0.3)) * (0.3 if short else 1.0)
            failed = rng.random() < 0.001
            if self.regression and fault:
                if id(edge) in fault.peer_slow:
                    dur *= fault.peer_slow[id(edge)]
                    ctx.hit = True
                if id(edge) in fault.peer_fail and rng.random() < fault.peer_fail[id(edge)]:
                    failed = True
            self.cols["dur"][sid] = dur
            self.cols["err"][sid] = failed
            return t + dur, failed
        assert edge.node is not None
        if edge.mode == "async":
            sid = self.span(caller, edge.client_op, PRODUCER, t, pid, list(edge.client_attrs), res)
            dur = rng.uniform(0.2, 1.0)
            self.cols["dur"][sid] = dur
            self.node(edge.node, t + dur + rng.uniform(1, 20), sid, ctx)
            return t + dur, False
        sid = self.span(caller, edge.client_op, CLIENT, t, pid, list(edge.client_attrs), res)
        net = rng.uniform(0.2, 1.0)
        end, failed = self.node(edge.node, t + net, sid, ctx)
        self.cols["dur"][sid] = end + net - t
        self.cols["err"][sid] = failed
        return end + net, failed

    def close(self, sid: int, dur: float, failed: bool, service: Service, node: Node) -> None:
        c = self.cols
        c["dur"][sid] = dur
        c["err"][sid] = failed
        if node.consumer:
            return
        if service.grpc:
            c["attrs"][sid].append(("rpc.grpc.status_code", "14" if failed else "0"))
            c["types"][sid] = [("rpc.grpc.status_code", INT_TYPE)]
        else:
            key = SEMCONV[service.style]["status"]
            c["attrs"][sid].append((key, "500" if failed else "200"))
            c["types"][sid] = [(key, INT_TYPE)]
        if failed:
            c["attrs"][sid].append(("error.type", "500" if not service.grpc else "UNAVAILABLE"))


def _table(windows: list[tuple[_Window, int]], seed: int) -> pa.Table:
    tix: list[int] = []
    sid: list[int] = []
    pid: list[int | None] = []
    cols: dict[str, list[Any]] = {
        k: [] for k in ("svc", "name", "kind", "start", "dur", "err", "attrs", "types", "res")
    }
    offset = 0
    for w, t0_ns in windows:
        c = w.cols
        tix += c["tix"]
        sid += [s + offset for s in c["sid"]]
        pid += [None if p is None else p + offset for p in c["pid"]]
        for k in cols:
            cols[k] += c[k]
        cols["start"][-len(c["start"]) :] = [t0_ns + int(s * MS) for s in c["start"]]
        offset += len(c["sid"])
    prefix = (seed & 0xFFFFFFFF) << 64
    n = len(sid)
    arrays = {
        "trace_id": pa.array([(prefix | t).to_bytes(16, "big") for t in tix], pa.binary(16)),
        "span_id": pa.array([(s + 1).to_bytes(8, "big") for s in sid], pa.binary(8)),
        "parent_span_id": pa.array(
            [None if p is None else (p + 1).to_bytes(8, "big") for p in pid], pa.binary(8)
        ),
        "service": pa.array(cols["svc"], pa.string()),
        "name": pa.array(cols["name"], pa.string()),
        "kind": pa.array(cols["kind"], pa.int8()),
        "start_ns": pa.array(cols["start"], pa.int64()),
        "duration_ns": pa.array([int(d * MS) for d in cols["dur"]], pa.int64()),
        "status_code": pa.array([2 if e else 0 for e in cols["err"]], pa.int8()),
        "attributes": pa.array(cols["attrs"], SPAN_SCHEMA.field("attributes").type),
        "attribute_types": pa.array(cols["types"], SPAN_SCHEMA.field("attribute_types").type),
        "resource": pa.array(cols["res"], SPAN_SCHEMA.field("resource").type),
    }
    return pa.table(
        [arrays[f.name] if f.name in arrays else pa.nulls(n, f.type) for f in SPAN_SCHEMA], schema=SPAN_SCHEMA
    )


def _symptom(base: _Window, reg: _Window, signal: str) -> tuple[float, float]:
    if signal == "errors":
        return (
            sum(f for _, f in reg.roots) / len(reg.roots),
            sum(f for _, f in base.roots) / len(base.roots),
        )
    durations = sorted(d for d, _ in base.roots)
    p90 = durations[int(0.9 * (len(durations) - 1))]
    return (
        sum(d > p90 for d, _ in reg.roots) / len(reg.roots),
        sum(d > p90 for d in durations) / len(durations),
    )


def case(seed: int, traces_per_window: int = TRACES_PER_WINDOW) -> Case:
    """The explain case of ``seed``: same seed, same spans, request and answers."""
    rng = random.Random(seed)
    topo = _topology(rng)
    healthy = rng.random() < HEALTHY_SHARE
    kind = "healthy" if healthy else rng.choice(FAULT_KINDS)
    fault = None if healthy else _plan(rng, topo, kind)
    kind = fault.kind if fault else kind  # a kind this topology cannot hold (no peer) falls back to another
    signal = fault.signal if fault else rng.choice(("latency", "latency", "errors"))

    # The unrelated deploy: another service's new version, everywhere or on a canary, changing nothing. It
    # never lands on the one service a fault changes (a rollout of the very service that got slower is a
    # likely cause, not a bystander); infrastructure faults touch many services and may share one with it.
    touched = {s for s in topo.services if fault and any(id(i) in fault.versions for i in s.instances)}
    if fault and len(fault.culprits) == 1:
        touched |= {s for s in topo.services if s.name in fault.culprits}
    deploy_service = rng.choice([s for s in topo.services if s not in touched] or topo.services)
    deploy_version = _bump(rng, deploy_service.version)
    deployed = deploy_service.instances
    if rng.random() < 0.5:
        deployed = rng.sample(deployed, rng.randint(1, max(1, len(deployed) - 1)))
    bystander = (
        f"app.{rng.choice(WORDS)}_client",
        f"{rng.choice(('web', 'app', 'sdk'))}-{rng.randint(2, 9)}.{rng.randint(0, 9)}",
        rng.uniform(0.2, 0.7),
    )

    spacing_ms = WINDOW_NS / MS / traces_per_window
    base = _Window(topo, None, False, random.Random(seed * 7919 + 1), 0)
    for i in range(traces_per_window):
        base.request(i * spacing_ms)
    for attempt in range(4):
        reg = _Window(topo, fault, True, random.Random(seed * 7919 + 2 + attempt), traces_per_window)
        reg.versions = {id(i): deploy_version for i in deployed}
        if fault:
            reg.versions.update(fault.versions)
        reg.bystander = bystander
        for i in range(traces_per_window):
            reg.request(i * spacing_ms)
        share = _symptom(base, reg, signal)
        if fault is None or share[0] - share[1] >= VISIBLE_GROWTH[signal]:
            break
        fault.strengthen()  # too weak to be a symptom at the root: a mislabelled healthy case otherwise

    description = fault.description if fault else "healthy"
    description += f"; unrelated deploy {deploy_service.name} {deploy_version} on {len(deployed)}/{len(deploy_service.instances)}"
    request = ExplainRequest(
        service=topo.root.service.name,
        operation=topo.root.op,
        start_ns=REG_T0,
        end_ns=REG_T0 + WINDOW_NS,
        baseline_start_ns=BASE_T0,
        baseline_end_ns=BASE_T0 + WINDOW_NS,
        signal=signal,  # type: ignore[arg-type]
    )
    return Case(
        seed=seed,
        kind=kind,
        spans=_table([(base, BASE_T0), (reg, REG_T0)], seed),
        request=request,
        expected=frozenset(fault.expected if fault else ()),
        services=[s.name for s in topo.services],
        healthy=healthy,
        description=description,
        culprits=frozenset(fault.culprits if fault else ()),
        symptom_share=share,
    )
