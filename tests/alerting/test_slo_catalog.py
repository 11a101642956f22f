"""SLOs from a YAML or JSON file (read-only) and from the API (kept across restarts in the data directory)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spyglass.alerting.slo_catalog import SloCatalog, SloConflict, read_slo_file
from spyglass.analysis.slo import InvalidSlo, slo_from_fields

YAML = """
# the shop's SLOs
- name: Checkout latency
  service: frontend
  operation: POST /checkout
  objective: 0.99
  latency_ms: 300
  owner: shop-web
- name: Checkout succeeds
  id: checkout-ok
  service: frontend
  operation: POST /checkout
  objective: 0.999
  period_days: 30
"""


def test_yaml_and_json_files(tmp_path: Path) -> None:
    path = tmp_path / "slos.yaml"
    path.write_text(YAML)
    latency, errors = read_slo_file(path)
    assert (latency.id, latency.kind, latency.latency_ms, latency.owner) == (
        "checkout-latency",
        "latency",
        300.0,
        "shop-web",
    )
    assert (errors.id, errors.kind, errors.period_days, errors.defined_in) == (
        "checkout-ok",
        "errors",
        30,
        str(path),
    )
    as_json = tmp_path / "slos.json"
    as_json.write_text(
        json.dumps({"slos": [{"name": "x", "service": "a", "operation": "b", "objective": 0.9}]})
    )
    assert [slo.id for slo in read_slo_file(as_json)] == ["x"]


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("- {name: a, service: s, operation: o, objective: 2}", "SLO #1 (a): objective must be in (0, 1)"),
        ("- {name: a, service: s, operation: o, objective: 0.9, kind: cpu}", "kind must be 'latency' or"),
        ("- {name: a, service: s, operation: o, objective: 0.9, kind: latency}", "latency_ms is required"),
        (
            "- {name: a, service: s, operation: o, objective: 0.9}\n- {name: a, service: t, operation: o, objective: 0.5}",
            "id 'a' is used twice",
        ),
        ("name: a", "expected a list of SLOs"),
        ("- [unclosed", "cannot read it"),
    ],
)
def test_a_bad_file_names_the_slo_and_the_field(tmp_path: Path, text: str, names: str) -> None:
    path = tmp_path / "slos.yaml"
    path.write_text(text)
    with pytest.raises(InvalidSlo) as refused:
        read_slo_file(path)
    assert names in str(refused.value) and str(path) in str(refused.value)


def test_api_slos_survive_a_restart_and_file_slos_are_read_only(tmp_path: Path) -> None:
    path = tmp_path / "slos.yaml"
    path.write_text(YAML)
    stored_at = tmp_path / "data" / "slos.json"
    catalog = SloCatalog(read_slo_file(path), stored_at)
    posted = slo_from_fields({"name": "Cart", "service": "cart", "operation": "GET /cart", "objective": 0.95})
    catalog.add(posted)
    with pytest.raises(SloConflict, match="already defined through the API"):
        catalog.add(posted)
    with pytest.raises(SloConflict, match=f"already defined in {path}"):
        catalog.add(
            slo_from_fields(
                {"id": "checkout-ok", "name": "n", "service": "s", "operation": "o", "objective": 0.5}
            )
        )
    with pytest.raises(SloConflict, match=f"defined in {path}: remove it there"):
        catalog.remove("checkout-ok")
    assert catalog.remove("nothing") is None
    again = SloCatalog(read_slo_file(path), stored_at)
    assert [slo.id for slo in again.all()] == ["checkout-latency", "checkout-ok", "cart"]
    assert again.get("cart") == posted
    assert again.remove("cart") == posted
    assert [slo.id for slo in SloCatalog([], stored_at).all()] == []


def test_a_damaged_store_file_is_moved_aside_not_overwritten(tmp_path: Path) -> None:
    stored_at = tmp_path / "slos.json"
    stored_at.write_text("{not json")
    catalog = SloCatalog([], stored_at)
    assert catalog.all() == []
    assert (tmp_path / "slos.json.damaged").read_text() == "{not json"
