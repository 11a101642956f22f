"""An outcome (how requests ended) is never named as a cause, whatever convention names it."""

from __future__ import annotations

import pytest

from spyglass.analysis.explain import explain_spans
from spyglass.analysis.outcomes import is_outcome
from tests.support.fault_corpus import Case, case

OUTCOMES = [
    "http.status_code",
    "http.response.status_code",
    "rpc.grpc.status_code",
    "rpc.connect_rpc.error_code",
    "db.response.status_code",
    "error",
    "error.type",
    "exception.type",
    "exception.message",
    "otel.status_code",
    "otel.status_description",
    "grpc.status_code",
    "messaging.kafka.error_code",
]
CIRCUMSTANCES = [
    "cloud.availability_zone",
    "k8s.node.name",
    "host.name",
    "service.version",
    "http.route",
    "http.request.method",
    "customer.id",
    "feature_flag.value",
    "server.address",
    "peer.service",
    "db.system",
]


@pytest.mark.parametrize("key", OUTCOMES)
def test_outcome_keys_old_and_new_are_recognised(key: str) -> None:
    assert is_outcome(key)


@pytest.mark.parametrize("key", CIRCUMSTANCES)
def test_circumstances_are_not_outcomes(key: str) -> None:
    assert not is_outcome(key)


def _error_cases(count: int) -> list[Case]:
    """The first ``count`` error faults of a fixed slice of the corpus (zones, cohorts, upstreams, peers)."""
    found: list[Case] = []
    seed = 7_000_000
    while len(found) < count:
        c = case(seed)
        seed += 1
        if not c.healthy and c.request.signal == "errors":
            found.append(c)
    return found


def test_no_finding_on_error_faults_is_named_by_an_outcome() -> None:
    named_by_outcome = []
    for c in _error_cases(12):
        for finding in explain_spans(c.spans, c.request):
            if finding["kind"] == "attribute" and is_outcome(finding["key"]):
                named_by_outcome.append((c.kind, finding["key"], finding["value"]))
    assert not named_by_outcome
