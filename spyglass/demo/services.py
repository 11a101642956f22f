"""The demo shop: what each service does, and who owns it.

    traffic -> frontend  GET /                -> inventory GET /products/featured  || cart GET /cart
                         GET /product/{id}    -> inventory GET /products/{id}      || cart GET /cart
                         POST /cart           -> cart POST /cart/items -> inventory GET /products/{id}
                         POST /checkout       -> checkout POST /checkout
    checkout  -> cart GET /cart, postgres SELECT products, inventory POST /reserve, payments POST /charge,
                 postgres INSERT orders, then publishes to the `orders` queue
    payments  -> fraud-api POST /v1/score (uninstrumented), postgres INSERT payments
    email     <- consumes `orders` (a new trace linked to the checkout), -> sendgrid POST /v3/mail/send
    inventory -> postgres SELECT products / SELECT stock / UPDATE stock;  cart -> redis HGETALL / HSET

`||` marks calls the frontend makes in parallel (unless a scenario makes them sequential).
"""

from __future__ import annotations

import functools
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.trace import Link, SpanKind

from spyglass.demo.instance import (
    Cluster,
    HttpError,
    OrderMessage,
    Reply,
    Request,
    Route,
    ServiceInstance,
    UninstrumentedService,
    Worker,
)
from spyglass.demo.telemetry import PROPAGATOR, InstanceIdentity

log = logging.getLogger("spyglass.demo")

PRODUCT_COUNT = 400
NORMAL_CART_ITEMS = (20, 40)
PRODUCT_CACHE_TTL_S = 3.0
CATEGORIES = ("kitchen", "garden", "toys", "books", "outdoor", "electronics", "grocery", "pets", "sale")
WAREHOUSES = ("wh-east-1", "wh-east-2", "wh-central", "wh-west")


class DeadlockDetected(Exception):
    """PostgreSQL aborted the transaction to break a deadlock; retrying it usually succeeds."""


# Exceptions are recorded with their module-qualified type; name this one as the PostgreSQL driver does.
DeadlockDetected.__module__ = "psycopg.errors"


@functools.lru_cache(maxsize=PRODUCT_COUNT)
def product(product_id: int) -> dict[str, Any]:
    """The catalogue entry of a product, derived from its id."""
    rng = random.Random(product_id)
    return {
        "id": product_id,
        "name": f"{rng.choice(('Classic', 'Compact', 'Deluxe', 'Eco', 'Smart'))} {rng.choice(CATEGORIES)} item",
        "sku": f"sku-{product_id:05d}",
        "price_usd": round(rng.uniform(2.0, 120.0), 2),
        "categories": sorted(rng.sample(CATEGORIES, k=rng.randint(1, 3))),
    }


def customer_tier(customer_id: str) -> str:
    """Customers are numbered by how much they buy; the first ten are enterprise accounts."""
    try:
        rank = int(customer_id.rsplit("-", 1)[-1])
    except ValueError:
        return "free"
    return "enterprise" if rank <= 10 else "pro" if rank <= 60 else "free"


def client_platform(user_agent: str) -> str:
    lowered = user_agent.lower()
    return "ios" if "ios" in lowered else "android" if "android" in lowered else "web"


def _product_id(raw: Any) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise HttpError(400, f"invalid product id {raw!r}") from None


# --- frontend (shop-web) -------------------------------------------------------------------------------------


def _as_customer(
    handler: Callable[[ServiceInstance, Request], Reply],
) -> Callable[[ServiceInstance, Request], Reply]:
    """Identify the customer of a storefront request and pass it downstream as W3C baggage."""

    def identified(instance: ServiceInstance, request: Request) -> Reply:
        customer_id = request.headers.get("x-customer-id")
        user_agent = request.headers.get("user-agent", "")
        request.span.set_attribute("app.platform", client_platform(user_agent))
        if not customer_id:
            return handler(instance, request)
        request.customer_id = customer_id
        request.span.set_attributes(
            {
                "customer.id": customer_id,
                "customer.tier": customer_tier(customer_id),
                "enduser.id": request.headers.get("x-user-id", customer_id),
            }
        )
        token = otel_context.attach(baggage.set_baggage("customer.id", customer_id))
        try:
            with instance.span("authenticate", {"auth.method": "session-cookie"}):
                instance.work("authenticate", 0.4)
            return handler(instance, request)
        finally:
            otel_context.detach(token)

    return identified


@_as_customer
def frontend_home(instance: ServiceInstance, request: Request) -> Reply:
    featured, cart = instance.fan_out(
        request.route,
        [
            lambda: instance.call("inventory", "GET", "/products/featured").expect_ok(),
            lambda: instance.call("cart", "GET", "/cart").expect_ok(),
        ],
    )
    with instance.span(
        "render home", {"template.name": "home.html", "products.shown": len(featured["products"])}
    ):
        instance.work("render home", 1.2)
    return 200, {"featured": [p["id"] for p in featured["products"]], "cart_items": cart["count"]}


@_as_customer
def frontend_product(instance: ServiceInstance, request: Request) -> Reply:
    product_id = _product_id(request.params["id"])
    request.span.set_attribute("product.id", product_id)
    details, cart = instance.fan_out(
        request.route,
        [
            lambda: instance.call(
                "inventory", "GET", "/products/{id}", f"/products/{product_id}"
            ).expect_ok(),
            lambda: instance.call("cart", "GET", "/cart").expect_ok(),
        ],
    )
    with instance.span(
        "render product", {"template.name": "product.html", "product.in_stock": details["in_stock"]}
    ):
        instance.work("render product", 1.5)
    return 200, {"product": details, "cart_items": cart["count"]}


@_as_customer
def frontend_add_to_cart(instance: ServiceInstance, request: Request) -> Reply:
    body = request.body if isinstance(request.body, dict) else {}
    product_id = _product_id(body.get("product_id"))
    quantity = int(body.get("quantity") or 1)
    request.span.set_attributes({"product.id": product_id, "cart.quantity": quantity})
    added = instance.call(
        "cart", "POST", "/cart/items", body={"product_id": product_id, "quantity": quantity}
    )
    return 201, added.expect_ok()


@_as_customer
def frontend_checkout(instance: ServiceInstance, request: Request) -> Reply:
    body = request.body if isinstance(request.body, dict) else {}
    method = str(body.get("payment_method") or "card")
    request.span.set_attribute("payment.method", method)
    order = instance.call("checkout", "POST", "/checkout", body={"payment_method": method}).expect_ok()
    request.span.set_attribute("order.id", order["order_id"])
    return 201, order


# --- cart (basket-team) --------------------------------------------------------------------------------------


def cart_get(instance: ServiceInstance, request: Request) -> Reply:
    customer_id = request.customer_id or "anonymous"
    size = instance.cluster.faults.active.cart_size(customer_id, instance.rng)
    if size is None:
        size = instance.rng.randint(*NORMAL_CART_ITEMS)
    instance.redis("HGETALL", f"cart:{customer_id}", 0.8 + 0.004 * size)
    with instance.span("load cart", {"cart.items": size}):
        instance.work("load cart", 1.0 + 0.01 * size)
        product_ids = instance.rng.sample(range(1, PRODUCT_COUNT + 1), k=min(size, PRODUCT_COUNT))
        product_ids += [instance.rng.randint(1, PRODUCT_COUNT) for _ in range(size - len(product_ids))]
        items = [{"product_id": pid, "quantity": instance.rng.choice((1, 1, 1, 2, 3))} for pid in product_ids]
    request.span.set_attributes(
        {
            "cart.items": size,
            "cart.product_ids": [product(pid)["sku"] for pid in product_ids[:10]],
            "cart.quantities": [item["quantity"] for item in items[:10]],
        }
    )
    return 200, {"items": items, "count": size}


def cart_add_item(instance: ServiceInstance, request: Request) -> Reply:
    body = request.body if isinstance(request.body, dict) else {}
    product_id = _product_id(body.get("product_id"))
    quantity = int(body.get("quantity") or 1)
    details = instance.call("inventory", "GET", "/products/{id}", f"/products/{product_id}").expect_ok()
    if not details["in_stock"]:
        raise HttpError(409, f"product {product_id} is out of stock")
    instance.redis("HSET", f"cart:{request.customer_id or 'anonymous'}", 0.6)
    request.span.set_attributes({"product.id": product_id, "cart.quantity": quantity})
    return 201, {"product_id": product_id, "quantity": quantity}


# --- inventory (supply-team) ---------------------------------------------------------------------------------


def _cache_lookup(instance: ServiceInstance, key: str) -> bool:
    """Look `key` up in this instance's in-memory cache (and refresh it on a miss); True on a hit."""
    now = time.monotonic()
    with instance.lock:
        cache: dict[str, float] = instance.state.setdefault("cache", {})
        hit = cache.get(key, 0.0) > now
        if not hit:
            cache[key] = now + PRODUCT_CACHE_TTL_S * instance.rng.uniform(0.5, 1.5)
    with instance.span("cache lookup", {"cache.name": "products", "cache.hit": hit}) as span:
        instance.work("cache lookup", 0.1)
        if not hit:
            span.add_event("cache miss", {"cache.key": key})
    return hit


def inventory_featured(instance: ServiceInstance, request: Request) -> Reply:
    if not _cache_lookup(instance, "featured"):
        instance.sql(
            "SELECT",
            "products",
            "SELECT id, name, price_cents FROM products WHERE featured ORDER BY rank LIMIT $1",
            2.0,
            rows=8,
        )
    featured = [product(pid) for pid in range(1, 9)]
    request.span.set_attribute("products.returned", len(featured))
    return 200, {"products": featured}


def inventory_product(instance: ServiceInstance, request: Request) -> Reply:
    product_id = _product_id(request.params["id"])
    request.span.set_attribute("product.id", product_id)
    if product_id > PRODUCT_COUNT or not _cache_lookup(instance, f"product:{product_id}"):
        exists = product_id <= PRODUCT_COUNT
        instance.sql("SELECT", "products", "SELECT * FROM products WHERE id = $1", 1.2, rows=int(exists))
        if not exists:
            raise HttpError(404, f"product {product_id} not found")
    instance.sql(
        "SELECT", "stock", "SELECT warehouse_id, quantity FROM stock WHERE product_id = $1", 2.5, rows=2
    )
    details = product(product_id)
    available = instance.rng.choice((0, 3, 12, 40, 150)) if instance.rng.random() < 0.5 else 25
    warehouses = sorted(instance.rng.sample(WAREHOUSES, k=2))
    request.span.set_attributes(
        {
            "product.categories": details["categories"],
            "product.price_usd": details["price_usd"],
            "stock.available": available,
            "stock.in_stock": available > 0,
            "inventory.warehouses": warehouses,
        }
    )
    return 200, {**details, "available": available, "in_stock": available > 0}


def inventory_reserve(instance: ServiceInstance, request: Request) -> Reply:
    body = request.body if isinstance(request.body, dict) else {}
    items = body.get("items") or []
    request.span.set_attribute("reservation.items", len(items))
    for attempt in (1, 2):
        deadlock = (
            DeadlockDetected("deadlock detected") if attempt == 1 and instance.rng.random() < 0.01 else None
        )
        try:
            instance.sql(
                "UPDATE",
                "stock",
                "UPDATE stock SET reserved = reserved + v.qty FROM unnest($1::int[], $2::int[]) AS v(id, qty) "
                "WHERE stock.product_id = v.id",
                1.5 + 0.05 * len(items),
                rows=len(items),
                error=deadlock,
            )
            break
        except DeadlockDetected:
            request.span.add_event("retry", {"retry.attempt": attempt, "retry.reason": "deadlock detected"})
    return 200, {"reserved": len(items)}


# --- checkout (orders-team) ----------------------------------------------------------------------------------


def checkout_place_order(instance: ServiceInstance, request: Request) -> Reply:
    body = request.body if isinstance(request.body, dict) else {}
    method = str(body.get("payment_method") or "card")
    instance.work(request.route, 0.5)
    items = instance.call("cart", "GET", "/cart").expect_ok()["items"]
    request.span.set_attribute("cart.items", len(items))
    if not items:
        raise HttpError(400, "the cart is empty")
    if instance.cluster.faults.active.queries_per_item(instance.site(request.route)):
        for _ in items:
            instance.sql("SELECT", "products", "SELECT price_cents FROM products WHERE id = $1", 0.6, rows=1)
    else:
        instance.sql(
            "SELECT",
            "products",
            "SELECT id, price_cents FROM products WHERE id = ANY($1)",
            1.0 + 0.02 * len(items),
            rows=len(items),
        )
    with instance.span("price cart", {"cart.items": len(items)}) as span:
        instance.work("price cart", 0.3 + 0.04 * len(items))
        total = round(sum(product(item["product_id"])["price_usd"] * item["quantity"] for item in items), 2)
        discounted = len(items) >= 30
        if discounted:
            total = round(total * 0.95, 2)
        span.set_attributes({"order.amount_usd": total, "order.discount_applied": discounted})
    instance.call("inventory", "POST", "/reserve", body={"items": items}).expect_ok()
    payment = instance.call(
        "payments", "POST", "/charge", body={"amount_usd": total, "method": method}
    ).expect_ok()
    order_id = f"ord-{instance.rng.getrandbits(40):010x}"
    instance.sql(
        "INSERT",
        "orders",
        "INSERT INTO orders (id, customer_id, amount_cents, item_count) VALUES ($1, $2, $3, $4)",
        1.5,
        rows=1,
    )
    request.span.set_attributes({"order.id": order_id, "order.amount_usd": total})
    _publish_order(instance, OrderMessage(order_id, request.customer_id, total))
    return 201, {"order_id": order_id, "amount_usd": total, "payment_id": payment["payment_id"]}


def _publish_order(instance: ServiceInstance, message: OrderMessage) -> None:
    attributes = {
        "messaging.system": "rabbitmq",
        "messaging.destination.name": "orders",
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.message.id": message.order_id,
    }
    with instance.span("publish orders", attributes, kind=SpanKind.PRODUCER) as span:
        PROPAGATOR.inject(message.headers)
        instance.work("publish orders", 0.3)
        try:
            instance.cluster.order_queue.put_nowait(message)
        except queue.Full:
            span.add_event("message dropped", {"reason": "queue full"})


# --- payments (payments-team) --------------------------------------------------------------------------------


def payments_charge(instance: ServiceInstance, request: Request) -> Reply:
    body = request.body if isinstance(request.body, dict) else {}
    amount = float(body.get("amount_usd") or 0.0)
    method = str(body.get("method") or "card")
    request.span.set_attributes({"payment.amount_usd": amount, "payment.method": method})
    fraud = instance.call("fraud-api", "POST", "/v1/score", body={"amount_usd": amount}).expect_ok()
    request.span.set_attribute("payment.fraud_score", float(fraud["score"]))
    three_ds = amount > 500 or float(fraud["score"]) > 0.3
    declined = False
    with instance.span(
        "authorize card", {"payment.network": "visa", "payment.three_ds": three_ds, "payment.method": method}
    ) as span:
        instance.work("authorize card", 5.0 if three_ds else 3.0)
        if instance.rng.random() < 0.02:
            declined = True
            span.add_event("card declined", {"decline.code": "insufficient_funds"})
    if declined:
        raise HttpError(402, "card declined")
    instance.sql(
        "INSERT",
        "payments",
        "INSERT INTO payments (id, amount_cents, method) VALUES ($1, $2, $3)",
        1.0,
        rows=1,
    )
    return 200, {"payment_id": f"pay-{instance.rng.getrandbits(40):010x}", "status": "captured"}


# --- email (growth-team) -------------------------------------------------------------------------------------


def email_worker(instance: ServiceInstance, stopping: threading.Event) -> None:
    """Consume `orders` until asked to stop and the queue is drained; one new trace per message."""
    orders = instance.cluster.order_queue
    while True:
        try:
            message = orders.get(timeout=0.1)
        except queue.Empty:
            if stopping.is_set():
                return
            continue
        try:
            _send_receipt(instance, message)
        except Exception:
            log.debug("sending a receipt failed", exc_info=True)


def _send_receipt(instance: ServiceInstance, message: OrderMessage) -> None:
    producer = trace.get_current_span(PROPAGATOR.extract(message.headers)).get_span_context()
    links = [Link(producer, {"messaging.operation.type": "send"})] if producer.is_valid else []
    attributes: dict[str, Any] = {
        "messaging.system": "rabbitmq",
        "messaging.destination.name": "orders",
        "messaging.operation.type": "process",
        "messaging.message.id": message.order_id,
        "order.amount_usd": message.amount_usd,
    }
    if message.customer_id:
        attributes["customer.id"] = message.customer_id
    # A new trace: the receipt is sent long after the checkout answered; the link leads back to it.
    with instance.tracer.start_as_current_span(
        "process orders",
        context=otel_context.Context(),
        kind=SpanKind.CONSUMER,
        links=links,
        attributes=attributes,
    ):
        with instance.span("render receipt", {"template.name": "receipt.html"}):
            instance.work("render receipt", 2.0)
        instance.call("sendgrid", "POST", "/v3/mail/send", body={"to": message.customer_id}).expect_ok()


# --- the shop ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceSpec:
    """A service and how it runs: its owning team, version, one instance per listed zone, routes, workers."""

    name: str
    namespace: str
    version: str
    zones: tuple[str, ...]
    routes: tuple[Route, ...] = ()
    workers: tuple[Worker, ...] = ()


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "frontend",
        "shop-web",
        "1.14.2",
        ("us-east-1a", "us-east-1b"),
        (
            Route("GET", "/", frontend_home),
            Route("GET", "/product/{id}", frontend_product),
            Route("POST", "/cart", frontend_add_to_cart),
            Route("POST", "/checkout", frontend_checkout),
        ),
    ),
    ServiceSpec(
        "cart",
        "basket-team",
        "3.2.0",
        ("us-east-1a", "us-east-1b", "us-east-1b"),
        (Route("GET", "/cart", cart_get), Route("POST", "/cart/items", cart_add_item)),
    ),
    ServiceSpec(
        "inventory",
        "supply-team",
        "2.3.1",
        ("us-east-1a", "us-east-1b", "us-east-1c"),
        (
            Route("GET", "/products/featured", inventory_featured),
            Route("GET", "/products/{id}", inventory_product),
            Route("POST", "/reserve", inventory_reserve),
        ),
    ),
    ServiceSpec(
        "checkout",
        "orders-team",
        "5.0.3",
        ("us-east-1a", "us-east-1b"),
        (Route("POST", "/checkout", checkout_place_order),),
    ),
    ServiceSpec(
        "payments",
        "payments-team",
        "1.8.7",
        ("us-east-1a", "us-east-1b", "us-east-1c", "us-east-1c"),
        (Route("POST", "/charge", payments_charge),),
    ),
    ServiceSpec("email", "growth-team", "0.9.4", ("us-east-1b",), workers=(email_worker,)),
)


def start_shop(cluster: Cluster) -> None:
    """Start every instance of every service, and the uninstrumented upstreams, on loopback ports."""
    rng = cluster.rng
    cluster.add_upstream(
        UninstrumentedService(
            cluster,
            "fraud-api",
            host="fraud-api.vendor.example",
            zone="external",
            base_ms=6.0,
            reply=lambda: {"score": round(rng.betavariate(1.2, 12.0), 4), "model": "gbm-2024-06"},
        )
    )
    cluster.add_upstream(
        UninstrumentedService(
            cluster, "sendgrid", host="api.sendgrid.example", zone="external", base_ms=8.0, reply=lambda: {}
        )
    )
    for spec in SERVICES:
        for index, zone in enumerate(spec.zones):
            host = f"{spec.name}-{index + 1}"
            identity = InstanceIdentity(
                service=spec.name,
                namespace=spec.namespace,
                version=spec.version,
                host=host,
                zone=zone,
                instance_id=f"{host}-{rng.getrandbits(24):06x}",
            )
            cluster.add_instance(ServiceInstance(cluster, identity, index, spec.routes, spec.workers))
