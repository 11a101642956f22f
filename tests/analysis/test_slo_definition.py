"""An SLO definition is checked once, for the file and the API alike: each refusal names the field."""

from __future__ import annotations

from typing import Any

import pytest

from spyglass.analysis.slo import DEFAULT_PERIOD_DAYS, InvalidSlo, slo_from_fields, slug

GOOD: dict[str, Any] = {"name": "Checkout latency", "service": "frontend", "operation": "POST /checkout"}


def test_latency_and_errors_slos_and_their_defaults() -> None:
    latency = slo_from_fields({**GOOD, "objective": 0.99, "latency_ms": 300})
    assert latency.kind == "latency" and latency.latency_ms == 300.0
    assert latency.id == "checkout-latency" and latency.period_days == DEFAULT_PERIOD_DAYS == 28
    assert latency.defined_in == "api" and not latency.read_only
    assert latency.error_budget == pytest.approx(0.01)
    errors = slo_from_fields({**GOOD, "objective": 0.999, "kind": "errors", "owner": "shop-web"}, "slos.yaml")
    assert errors.kind == "errors" and errors.latency_ms is None and errors.owner == "shop-web"
    assert errors.read_only
    assert slo_from_fields(latency.stored()) == latency


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"objective": 1.5}, "objective must be in (0, 1)"),
        ({"objective": 0}, "objective must be in (0, 1)"),
        ({"objective": "high"}, "objective must be a number"),
        ({"objective": None}, "objective is required"),
        ({"kind": "cpu"}, "kind must be 'latency' or 'errors'"),
        ({"kind": "latency"}, "latency_ms is required for a latency SLO"),
        ({"kind": "errors", "latency_ms": 100}, "latency_ms is for latency SLOs"),
        ({"latency_ms": -1}, "latency_ms must be > 0"),
        ({"period_days": 0}, "period_days must be a whole number"),
        ({"period_days": 1.5}, "period_days must be a whole number"),
        ({"service": ""}, "service must be a non-empty string"),
        ({"operation": None}, "operation is required"),
        ({"id": "Not An Id"}, "id must be lower-case"),
        ({"objectve": 0.9}, "unknown field 'objectve'"),
    ],
)
def test_a_bad_field_is_named(change: dict[str, Any], names: str) -> None:
    with pytest.raises(InvalidSlo) as refused:
        slo_from_fields({**GOOD, "objective": 0.99, **change})
    assert names in str(refused.value)


def test_ids_are_made_of_names() -> None:
    assert slug("Checkout: p99 < 300 ms!") == "checkout-p99-300-ms"
    assert slug("???") == "slo"
