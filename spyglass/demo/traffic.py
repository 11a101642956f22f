"""Shoppers: an open-loop stream of requests to the frontend at a steady average rate.

Arrivals are Poisson (the next request does not wait for the previous one), customers are skewed (a few big
accounts send much of the traffic), and the endpoint mix is a shop's: browsing far more than buying. The mix is
dealt from a shuffled deck rather than drawn independently, so a few seconds of traffic already hold every
endpoint: a newcomer's first minute, and a short test run, always include checkouts.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from spyglass.demo.connection_pool import Address, ConnectionPool
from spyglass.demo.scenarios import FaultSwitch

log = logging.getLogger("spyglass.demo")

CUSTOMER_COUNT = 300
MAX_IN_FLIGHT = 256
PRODUCT_IDS = (1, 420)  # ids above the catalogue's 400 are stale links: 404s, as real shops see
USER_AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari/605.1.15",
    "ShopApp/4.12.0 (iOS 17.5; iPhone15,2)",
    "ShopApp/4.11.3 (Android 14; Pixel 8)",
)


@dataclass(frozen=True)
class Endpoint:
    """A request the shoppers send, and its share of the traffic."""

    method: str
    path: str
    cards: int  # its share of the traffic, in cards of a deck


ENDPOINTS = (
    Endpoint("GET", "/", 5),
    Endpoint("GET", "/product/{id}", 8),
    Endpoint("POST", "/cart", 4),
    Endpoint("POST", "/checkout", 3),
)


class EndpointDeck:
    """Deals endpoints in shuffled order, each as often as its cards: every deck's worth of requests (20) holds
    the whole mix. Independent draws can leave dozens of requests without a checkout (0.85^30 is 0.8%)."""

    def __init__(self, endpoints: tuple[Endpoint, ...], rng: random.Random) -> None:
        self._deck = [endpoint for endpoint in endpoints for _ in range(endpoint.cards)]
        self._rng = rng
        self._left: list[Endpoint] = []
        self._lock = threading.Lock()

    def deal(self) -> Endpoint:
        with self._lock:
            if not self._left:
                self._left = list(self._deck)
                self._rng.shuffle(self._left)
            return self._left.pop()


@dataclass
class TrafficCounts:
    """What the shoppers saw; updated from many threads under `lock`."""

    requests_sent: int = 0
    errors: int = 0
    dropped: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class Customers:
    """A few hundred customers, Zipf-skewed: customer `cust-0001` sends the most traffic."""

    def __init__(self, count: int = CUSTOMER_COUNT) -> None:
        self.ids = [f"cust-{rank:04d}" for rank in range(1, count + 1)]
        self.weights = [1.0 / rank for rank in range(1, count + 1)]

    def pick(self, rng: random.Random) -> str:
        return rng.choices(self.ids, weights=self.weights)[0]


class TrafficGenerator:
    """Sends requests to the frontend instances at `rate_per_s` on average until stopped."""

    def __init__(
        self,
        frontends: list[Address],
        rate_per_s: float,
        faults: FaultSwitch,
        rng: random.Random,
        counts: TrafficCounts,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        self._frontends = frontends
        self._rate_per_s = rate_per_s
        self._faults = faults
        self._rng = rng
        self.counts = counts
        self._customers = Customers()
        self._deck = EndpointDeck(ENDPOINTS, rng)
        self._pool = ConnectionPool(timeout_s=30.0)
        self._executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="demo-shopper")
        self._stop = threading.Event()
        self._in_flight = threading.BoundedSemaphore(MAX_IN_FLIGHT)
        self._thread = threading.Thread(target=self._run, name="demo-traffic", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop sending and wait for the requests in flight to finish."""
        self._stop.set()
        self._thread.join(timeout_s)
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._pool.close()

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            next_at += self._rng.expovariate(self._rate_per_s)
            delay = next_at - time.monotonic()
            if delay < -1.0:  # fell behind (a stalled machine): do not burst to catch up
                next_at = time.monotonic()
            elif delay > 0 and self._stop.wait(delay):
                return
            if not self._in_flight.acquire(blocking=False):
                with self.counts.lock:
                    self.counts.dropped += 1
                continue
            try:
                self._executor.submit(self._send_one)
            except RuntimeError:  # executor shut down under us
                self._in_flight.release()
                return

    def _send_one(self) -> None:
        try:
            self._send(*self._next_request())
        finally:
            self._in_flight.release()

    def _next_request(self) -> tuple[str, str, bytes | None, dict[str, str]]:
        rng = self._rng
        endpoint = self._deck.deal()
        customer_id = self._faults.active.pick_customer(rng) or self._customers.pick(rng)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": rng.choice(USER_AGENTS),
            "X-Customer-Id": customer_id,
            "X-User-Id": f"{customer_id}-u{rng.randint(1, 3)}",
        }
        body: dict[str, object] | None = None
        path = endpoint.path
        if "{id}" in path:
            path = path.replace("{id}", str(rng.randint(*PRODUCT_IDS)))
        elif endpoint.path == "/cart":
            body = {"product_id": rng.randint(*PRODUCT_IDS), "quantity": rng.choice((1, 1, 2))}
        elif endpoint.path == "/checkout":
            body = {"payment_method": rng.choice(("card", "card", "card", "paypal"))}
        return endpoint.method, path, json.dumps(body).encode() if body is not None else None, headers

    def _send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> None:
        address = self._rng.choice(self._frontends)
        try:
            status, _ = self._pool.request(address, method, path, body, headers)
        except Exception as error:  # the shop is down or shutting down: count it, never crash
            log.debug("request %s %s failed: %s", method, path, error)
            status = 0
        with self.counts.lock:
            self.counts.requests_sent += 1
            self.counts.by_status[status] = self.counts.by_status.get(status, 0) + 1
            if status == 0 or status >= 500:
                self.counts.errors += 1
