"""Scenarios: a healthy shop, and faults of the kinds spyglass must explain, switched on after a baseline.

A scenario is consulted through a few hooks at the places where the demo services make decisions (how long a
piece of work takes, whether it fails, whether calls run in parallel...). The base class answers every hook
the healthy way; a fault overrides only the hooks it needs. Services never ask a scenario directly: they ask
the `FaultSwitch` for the scenario that is *active now*, which is the healthy one until the switch is thrown.
To add a scenario, subclass `Scenario`, override a hook or two, and add an instance to `SCENARIOS`.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

HEAVY_CUSTOMER_ID = "cust-0217"


@dataclass(frozen=True)
class Site:
    """Where a piece of work runs, as a scenario sees it: the service instance, the operation, the customer."""

    service: str
    operation: str
    host: str
    zone: str
    version: str
    customer_id: str | None = None


@dataclass(frozen=True)
class Symptom:
    """Where a person would first notice the fault: a root operation whose latency or errors change."""

    service: str
    operation: str
    signal: Literal["latency", "errors"]


@dataclass(frozen=True)
class ExpectedFinding:
    """The cause `explain` should report, in the shape of the API's findings (key/value only for attributes)."""

    kind: Literal["attribute", "operation", "n_plus_one", "sequential", "error_source"]
    service: str
    operation: str | None = None
    key: str | None = None
    value: str | None = None

    def matches(self, finding: Mapping[str, Any]) -> bool:
        """Whether an explain finding names this cause, itself or as the other half of a mechanism told with
        the value that switched it on (``evidence.since`` / ``evidence.through``). An attribute names it by key
        and value: which service's spans carried it can differ (a customer id travels as baggage)."""
        evidence = finding.get("evidence") or {}
        if "since" in evidence and self._names({"kind": "attribute", **evidence["since"]}):
            return True
        if "through" in evidence and self._names(evidence["through"]):
            return True
        return self._names(finding)

    def _names(self, finding: Mapping[str, Any]) -> bool:
        if finding.get("kind") != self.kind:
            return False
        if self.kind == "attribute":
            return finding.get("key") == self.key and finding.get("value") == self.value
        return finding.get("service") == self.service and finding.get("operation") == self.operation


class ServiceUnavailable(Exception):
    """A dependency refused the work; the service answers 503."""

    http_status = 503


# Exceptions are recorded with their module-qualified type; name them as a real payment service would.
ServiceUnavailable.__module__ = "gateway.errors"


class Scenario:
    """The healthy shop. Every hook returns the healthy behaviour; fault scenarios override some of them."""

    name: ClassVar[str] = "healthy"
    description: ClassVar[str] = "A healthy shop: steady traffic, low latency, a trickle of benign errors."
    symptom: ClassVar[Symptom | None] = None
    expected: ClassVar[tuple[ExpectedFinding, ...]] = ()

    @property
    def cause(self) -> str:
        """The cause this scenario injects, in one sentence."""
        return "nothing: no fault is injected"

    @property
    def has_fault(self) -> bool:
        return type(self) is not Scenario

    def redeploys(self) -> dict[str, dict[int, str]]:
        """Versions to roll out when the fault starts: service -> instance index -> new service.version."""
        return {}

    def latency_factor(self, site: Site) -> float:
        """Multiplier on the time a piece of work takes at this site."""
        return 1.0

    def failure(self, site: Site) -> Exception | None:
        """An exception the work at this site raises, or None for success."""
        return None

    def runs_in_sequence(self, site: Site) -> bool:
        """Whether this operation calls its independent dependencies one after another."""
        return False

    def queries_per_item(self, site: Site) -> bool:
        """Whether this operation queries the database once per item instead of once per request (n+1)."""
        return False

    def pick_customer(self, rng: random.Random) -> str | None:
        """A customer to send the next request as, or None to pick one from the usual population."""
        return None

    def cart_size(self, customer_id: str | None, rng: random.Random) -> int | None:
        """The number of items in this customer's cart, or None for the usual size."""
        return None


class SlowVersion(Scenario):
    """A bad deploy: one version of one service makes one operation slower where it runs."""

    name = "slow-version"
    description = (
        "A rolling deploy of inventory 2.4.0 makes its stock query 5x slower on the upgraded instances."
    )
    symptom = Symptom("frontend", "GET /product/{id}", "latency")
    expected = (ExpectedFinding("attribute", "inventory", key="service.version", value="2.4.0"),)

    def __init__(
        self, service: str = "inventory", version: str = "2.4.0", operation: str = "SELECT stock"
    ) -> None:
        self.service, self.version, self.operation = service, version, operation
        self.factor = 5.0
        self.upgraded_instances = (1, 2)

    @property
    def cause(self) -> str:
        return f"{self.service} {self.version} runs '{self.operation}' {self.factor:g}x slower"

    def redeploys(self) -> dict[str, dict[int, str]]:
        return {self.service: {index: self.version for index in self.upgraded_instances}}

    def latency_factor(self, site: Site) -> float:
        if site.service == self.service and site.version == self.version and site.operation == self.operation:
            return self.factor
        return 1.0


class NPlusOne(Scenario):
    """A query issued once per item instead of once per request."""

    name = "n-plus-one"
    description = (
        "Checkout prices the cart with one database query per item (20-40 items) instead of one query."
    )
    symptom = Symptom("frontend", "POST /checkout", "latency")
    expected = (ExpectedFinding("n_plus_one", "checkout", operation="SELECT products"),)

    @property
    def cause(self) -> str:
        return "checkout runs 'SELECT products' once per cart item"

    def queries_per_item(self, site: Site) -> bool:
        return site.service == "checkout"


class NoisyHost(Scenario):
    """One host slows everything that runs on it."""

    name = "noisy-host"
    description = "A noisy neighbour on host cart-2 makes everything the cart instance there does slow."
    symptom = Symptom("frontend", "GET /product/{id}", "latency")
    expected = (ExpectedFinding("attribute", "cart", key="host.name", value="cart-2"),)

    def __init__(self, host: str = "cart-2", factor: float = 8.0) -> None:
        self.host, self.factor = host, factor

    @property
    def cause(self) -> str:
        return f"all work on host {self.host} is {self.factor:g}x slower"

    def latency_factor(self, site: Site) -> float:
        return self.factor if site.host == self.host else 1.0


class HeavyCustomer(Scenario):
    """One customer's unusual requests make an operation slow for everyone measuring it."""

    name = "heavy-customer"
    description = (
        f"Customer {HEAVY_CUSTOMER_ID} starts sending a third of the traffic with 300-500-item carts."
    )
    symptom = Symptom("frontend", "POST /checkout", "latency")
    expected = (ExpectedFinding("attribute", "frontend", key="customer.id", value=HEAVY_CUSTOMER_ID),)

    def __init__(self, customer_id: str = HEAVY_CUSTOMER_ID, share: float = 0.35) -> None:
        self.customer_id, self.share = customer_id, share

    @property
    def cause(self) -> str:
        return f"customer {self.customer_id} checks out huge carts, which makes checkout slow"

    def pick_customer(self, rng: random.Random) -> str | None:
        return self.customer_id if rng.random() < self.share else None

    def cart_size(self, customer_id: str | None, rng: random.Random) -> int | None:
        return rng.randint(300, 500) if customer_id == self.customer_id else None


class SequentialCalls(Scenario):
    """Independent calls made one after another instead of in parallel."""

    name = "sequential-calls"
    description = "The frontend calls cart and inventory one after the other instead of in parallel."
    symptom = Symptom("frontend", "GET /product/{id}", "latency")
    expected = (ExpectedFinding("sequential", "frontend", operation="GET /product/{id}"),)

    @property
    def cause(self) -> str:
        return "frontend runs its independent calls to cart and inventory in sequence"

    def runs_in_sequence(self, site: Site) -> bool:
        return site.service == "frontend"


class SlowUpstream(Scenario):
    """An uninstrumented dependency gets slower; only its callers' client spans show it."""

    name = "slow-upstream"
    description = "The uninstrumented fraud-api that payments depends on becomes 8x slower."
    symptom = Symptom("frontend", "POST /checkout", "latency")
    expected = (ExpectedFinding("attribute", "payments", key="peer.service", value="fraud-api"),)

    def __init__(self, peer: str = "fraud-api", factor: float = 8.0) -> None:
        self.peer, self.factor = peer, factor

    @property
    def cause(self) -> str:
        return f"the upstream {self.peer} answers {self.factor:g}x slower"

    def latency_factor(self, site: Site) -> float:
        return self.factor if site.service == self.peer else 1.0


class ZoneErrors(Scenario):
    """One availability zone's instances fail: errors that originate in one place."""

    name = "zone-errors"
    description = "Payments instances in us-east-1c lose their card network and fail charges with 503."
    symptom = Symptom("frontend", "POST /checkout", "errors")
    expected = (
        ExpectedFinding("attribute", "payments", key="cloud.availability_zone", value="us-east-1c"),
        ExpectedFinding("error_source", "payments", operation="authorize card"),
    )

    def __init__(self, zone: str = "us-east-1c") -> None:
        self.zone = zone

    @property
    def cause(self) -> str:
        return f"payments in {self.zone} fail 'authorize card' with 503"

    def failure(self, site: Site) -> Exception | None:
        if site.service == "payments" and site.zone == self.zone and site.operation == "authorize card":
            return ServiceUnavailable(f"card network gateway unreachable from {self.zone}")
        return None


HEALTHY = Scenario()

SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        HEALTHY,
        SlowVersion(),
        NPlusOne(),
        NoisyHost(),
        HeavyCustomer(),
        SequentialCalls(),
        SlowUpstream(),
        ZoneErrors(),
    )
}


class FaultSwitch:
    """The scenario of a demo run and whether its fault is on yet; services ask it for the `active` scenario."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self._lock = threading.Lock()
        self._started_ns: int | None = None

    @property
    def active(self) -> Scenario:
        return self.scenario if self._started_ns is not None else HEALTHY

    @property
    def started_ns(self) -> int | None:
        return self._started_ns

    def turn_on(self) -> int:
        """Start the fault now (idempotent); returns when it started, in ns since the epoch."""
        with self._lock:
            if self._started_ns is None:
                self._started_ns = time.time_ns()
            return self._started_ns
