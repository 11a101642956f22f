"""explain on a workload it was not tuned on: a four-tier chain with its own attribute keys and five faults.

gateway POST /order -> orders place -> (pricing quote -> db SELECT price) || (stock reserve -> db UPDATE stock),
with tenants, Kubernetes pods, a feature flag and versions. Each test injects one fault into the regression
window and checks that the cause comes first.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from spyglass.analysis.explain import ExplainRequest, explain_spans
from tests.support.explain_workloads import S, shop, windows_request, workload

PODS = {"pricing": ["pricing-7f9c-a1", "pricing-7f9c-b2", "pricing-7f9c-c3", "pricing-7f9c-d4"]}


def chain(
    rng: random.Random,
    regression: bool,
    i: int,
    *,
    slow_pod: str | None = None,
    pricing_version: str | None = None,
    flag_share: float = 0.0,
    failing_tenant: str | None = None,
    stock_failures: float = 0.0,
    sequential: bool = False,
    price_queries: int = 1,
) -> list[S]:
    tenant = rng.choice(["acme", "globex", "initech", "umbrella", "hooli"])
    pod = rng.choice(PODS["pricing"])
    version = pricing_version if regression and pricing_version else "4.0.2"
    flag = regression and rng.random() < flag_share
    price_ms = rng.lognormvariate(1.8, 0.35)
    if regression and slow_pod == pod:
        price_ms *= 6
    if version != "4.0.2":
        price_ms *= 3
    if flag:
        price_ms *= 5
    stock_ms = rng.lognormvariate(1.6, 0.35)
    tenant_fails = regression and failing_tenant == tenant and rng.random() < 0.8
    stock_fails = regression and rng.random() < stock_failures
    failed = tenant_fails or stock_fails
    queries = price_queries if regression else 1
    query_ms = price_ms if queries == 1 else rng.uniform(0.8, 1.2)
    pricing_total = query_ms * queries + 2
    stock_start = 2 + pricing_total if regression and sequential else 2
    branches_end = max(2 + pricing_total, stock_start + stock_ms + 1) + 1
    root_ms = branches_end + rng.uniform(1, 2)
    pricing_resource = {"k8s.pod.name": pod, "service.version": version, "k8s.namespace.name": "shop"}
    spans = [
        S(
            "gateway",
            "POST /order",
            0,
            root_ms,
            attrs={"tenant.id": tenant, "http.route": "/order"},
            error=failed,
        ),
        S("orders", "place", 1, root_ms - 2, 0, attrs={"tenant.id": tenant}, error=failed),
        S(
            "pricing",
            "quote",
            2,
            pricing_total,
            1,
            attrs={"feature_flag.key": "new-pricing" if flag else "none"},
            resource=pricing_resource,
        ),
        S("stock", "reserve", stock_start, stock_ms + 1, 1, error=stock_fails),
        S(
            "db",
            "UPDATE stock",
            stock_start + 0.5,
            stock_ms,
            3,
            attrs={"db.system": "postgresql"},
            error=stock_fails,
        ),
    ]
    for q in range(queries):
        spans.append(
            S("db", "SELECT price", 3 + q * query_ms, query_ms * 0.95, 2, attrs={"db.system": "postgresql"})
        )
    if tenant_fails:
        spans.append(S("orders", "check quota", 1.5, 0.5, 1, attrs={"tenant.id": tenant}, error=True))
    return spans


def request(signal: str = "latency") -> ExplainRequest:
    return windows_request("gateway", "POST /order", signal)


def top(findings: list[dict[str, Any]]) -> tuple[Any, ...]:
    assert findings, "no findings"
    f = findings[0]
    return (f["kind"], f["service"], f.get("key") or f.get("operation"), f.get("value"))


def test_one_slow_pod() -> None:
    spans = workload(lambda rng, reg, i: chain(rng, reg, i, slow_pod="pricing-7f9c-b2"))
    findings = explain_spans(spans, request())
    assert top(findings) == ("attribute", "pricing", "k8s.pod.name", "pricing-7f9c-b2"), findings[:3]


def test_a_full_rollout_whose_calls_got_slower() -> None:
    """pricing 4.1.0 everywhere, and its database query three times slower: the query is where the time went
    (the database may have slowed by itself), the rollout that came with it is the next thing to check."""
    spans = workload(lambda rng, reg, i: chain(rng, reg, i, pricing_version="4.1.0"))
    findings = explain_spans(spans, request())
    assert top(findings) == ("operation", "db", "SELECT price", None), findings[:3]
    assert ("attribute", "pricing", "service.version", "4.1.0") in [top([f]) for f in findings[1:3]]


def test_a_feature_flag_on_some_requests() -> None:
    spans = workload(lambda rng, reg, i: chain(rng, reg, i, flag_share=0.4))
    findings = explain_spans(spans, request())
    assert top(findings) == ("attribute", "pricing", "feature_flag.key", "new-pricing"), findings[:3]


def test_errors_of_one_tenant() -> None:
    spans = workload(lambda rng, reg, i: chain(rng, reg, i, failing_tenant="globex"))
    findings = explain_spans(spans, request("errors"))
    first = top(findings)
    assert first[2:] == ("tenant.id", "globex") or first == ("error_source", "orders", "check quota", None), (
        findings[:3]
    )
    named = [(f["kind"], f.get("key") or f.get("operation"), f.get("value")) for f in findings[:3]]
    assert ("attribute", "tenant.id", "globex") in named, named


def test_errors_originating_deep_in_the_chain() -> None:
    spans = workload(lambda rng, reg, i: chain(rng, reg, i, stock_failures=0.3))
    findings = explain_spans(spans, request("errors"))
    assert top(findings) == ("error_source", "db", "UPDATE stock", None), findings[:3]
    # The spans that only passed the failure up (the root first: it failed by definition) are no finding.
    passed_on = [f for f in findings if f["kind"] == "operation"]
    assert not passed_on, passed_on


def test_branches_run_in_sequence() -> None:
    spans = workload(lambda rng, reg, i: chain(rng, reg, i, sequential=True))
    findings = explain_spans(spans, request())
    assert top(findings) == ("sequential", "orders", "place", None), findings[:3]


def test_one_query_per_price() -> None:
    spans = workload(lambda rng, reg, i: chain(rng, reg, i, price_queries=25))
    findings = explain_spans(spans, request())
    assert top(findings) == ("n_plus_one", "db", "SELECT price", None), findings[:3]


def routed(
    rng: random.Random, regression: bool, i: int, *, failing_route: str = "", failing_region: str = ""
) -> list[S]:
    """gateway GET /api -> api handle (one of four routes, one of two regions) -> db query."""
    route = rng.choice(["/a", "/b", "/c", "/d"])
    region = rng.choice(["eu-west-1", "us-east-1"])
    route_fails = regression and route == failing_route and rng.random() < 0.5
    region_fails = regression and region == failing_region and rng.random() < 0.3
    failed = route_fails or region_fails
    work, query = rng.lognormvariate(3.0, 0.6), rng.lognormvariate(1.2, 0.2)
    return [
        S("gateway", "GET /api", 0, work + query + 4, error=failed),
        S(
            "api",
            "handle",
            1,
            work + query + 2,
            0,
            attrs={"http.route": route},
            resource={"cloud.region": region},
            error=failed,
        ),
        S("db", "query", 2 + work, query, 1, resource={"cloud.region": region}, error=region_fails),
    ]


def routed_request() -> ExplainRequest:
    return replace(request("errors"), operation="GET /api")


def test_errors_of_one_route_name_the_route_and_where_they_start() -> None:
    """The failing route splits the failing operation's spans: it is what switched the errors on, told as one
    finding with where they start (not folded away into the error source)."""
    findings = explain_spans(
        workload(lambda rng, reg, i: routed(rng, reg, i, failing_route="/c")), routed_request()
    )
    top = findings[0]
    assert (top["kind"], top["service"], top["key"], top["value"]) == ("attribute", "api", "http.route", "/c")
    through = top["evidence"]["through"]
    assert (through["kind"], through["service"], through["operation"]) == ("error_source", "api", "handle")
    assert through["regression"]["failed_traces_originating_here"] > 0.1
    assert "Through api 'handle' (errors)" in top["summary"]
    assert not any(f["kind"] == "error_source" for f in findings), findings


def test_errors_of_one_region() -> None:
    findings = explain_spans(
        workload(lambda rng, reg, i: routed(rng, reg, i, failing_region="eu-west-1")), routed_request()
    )
    top = findings[0]
    assert (top["kind"], top["key"], top["value"]) == ("attribute", "cloud.region", "eu-west-1"), findings[:2]
    assert (top["evidence"]["through"]["kind"], top["evidence"]["through"]["operation"]) == (
        "error_source",
        "query",
    )


def web(rng: random.Random, regression: bool, i: int, *, slow_host: str | None = None) -> list[S]:
    """One service on twenty hosts; ``slow_host`` makes 1 request in 20 ten times slower: a tail, not a shift."""
    host = f"web-{rng.randrange(20)}"
    ms = rng.lognormvariate(2.5, 0.3) * (10 if regression and host == slow_host else 1)
    return [S("web", "GET /", 0, ms + 1, resource={"host.name": host}), S("web", "render", 0.5, ms, 0)]


def web_request() -> ExplainRequest:
    return replace(request(), service="web", operation="GET /")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_tail_of_one_slow_host_in_twenty(seed: int) -> None:
    """Only ~8 of 150 requests slow down: the share above the baseline's p90 barely moves, the p99 jumps."""
    spans = workload(lambda rng, reg, i: web(rng, reg, i, slow_host="web-7"), n=150, seed=seed)
    assert top(explain_spans(spans, web_request())) == ("attribute", "web", "host.name", "web-7")


def test_a_slow_host_that_is_its_service_only_home_is_named_beside_it() -> None:
    """web calls pricing, which runs on one host alone (both its instances); the host got slower. The spans
    cannot tell the host from the service, so pricing's own time is named and the host right after it."""

    def one_home(rng: random.Random, regression: bool, i: int) -> list[S]:
        price_ms = rng.lognormvariate(2.5, 0.3) * (2.5 if regression else 1)
        web_ms = rng.lognormvariate(2.0, 0.3)
        web = {"host.name": f"web-{rng.randrange(4)}"}
        pricing = {"host.name": "ip-10-0-0-7", "service.instance.id": f"pricing-{i % 2}"}
        return [
            S("web", "GET /", 0, web_ms + price_ms + 2, resource=web),
            S("pricing", "quote", 1, price_ms, 0, resource=pricing),
        ]

    findings = explain_spans(workload(one_home, n=200), web_request())
    named = [(f["kind"], f.get("key") or f.get("operation"), f.get("value")) for f in findings[:3]]
    assert named[0] == ("operation", "quote", None), named
    assert ("attribute", "host.name", "ip-10-0-0-7") in named[1:], named
    host = next(f for f in findings if f.get("key") == "host.name")
    assert host["score"] < findings[0]["score"]


def test_no_fault_gives_no_confident_finding() -> None:
    """Healthy traffic in both windows, ten times over: noise must not read as a cause."""
    confident = []
    for seed in range(1, 11):
        for spans, req in (
            (workload(lambda rng, reg, i: web(rng, reg, i), n=150, seed=seed), web_request()),
            (workload(lambda rng, reg, i: chain(rng, reg, i), n=150, seed=seed), request()),
            (workload(lambda rng, reg, i: chain(rng, reg, i), n=150, seed=seed), request("errors")),
        ):
            confident += [
                (seed, f["kind"], f["score"]) for f in explain_spans(spans, req) if f["score"] >= 0.3
            ]
    assert not confident, confident


def flagged(rng: random.Random, regression: bool, i: int) -> list[S]:
    """The shop, where a feature flag switched on for half the regression's requests makes each of them look
    up its rows one by one (20 queries instead of one)."""
    on = regression and rng.random() < 0.5
    spans = shop(rng, regression, i, queries=20 if on else 1)
    spans[0].attrs["feature.bulk_lookup"] = "on" if on else "off"
    return spans


def test_a_mechanism_and_the_flag_that_switched_it_on_are_one_finding() -> None:
    findings = explain_spans(workload(flagged, n=400), replace(request(), service="api", operation="GET /x"))
    top = findings[0]
    assert (top["kind"], top["service"], top["operation"]) == ("n_plus_one", "db", "SELECT row"), findings[:3]
    since = top["evidence"]["since"]
    assert (since["key"], since["value"]) == ("feature.bulk_lookup", "on")
    assert since["regression"]["symptom_share_with"] > since["regression"]["symptom_share_without"]
    assert "Since feature.bulk_lookup=on" in top["summary"]
    assert not any(f.get("key") == "feature.bulk_lookup" for f in findings), findings
