"""Owners come from the configured map first, then from resource attributes the services send."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from spyglass.analysis.ownership import Ownership
from spyglass.model.builder import SpanBatchBuilder, encode_attributes


def _spans(*services: tuple[str, dict[str, str]]) -> pa.Table:
    builder = SpanBatchBuilder()
    for index, (service, resource) in enumerate(services):
        builder.add(
            trace_id=bytes([index + 1]) * 16,
            span_id=bytes([index + 1]) * 8,
            parent_span_id=None,
            service=service,
            name="op",
            kind=2,
            start_ns=1,
            duration_ns=1,
            resource=encode_attributes([("service.name", service), *resource.items()]),
        )
    return pa.Table.from_batches([builder.finish()])


def test_resource_attributes_then_configuration(tmp_path: Path) -> None:
    owners_file = tmp_path / "owners.json"
    owners_file.write_text(json.dumps({"payments": "payments-oncall"}))
    ownership = Ownership.from_file(owners_file)
    ownership.learn(
        _spans(
            ("checkout", {"service.namespace": "orders-team"}),
            ("payments", {"service.namespace": "payments-team"}),
            ("cart", {"team": "basket", "service.namespace": "shop"}),
            ("legacy", {}),
        )
    )
    assert ownership.owner("checkout") == "orders-team"
    assert ownership.owner("payments") == "payments-oncall"  # the configured map wins
    assert ownership.owner("cart") == "basket"  # a team attribute is more specific than the namespace
    assert ownership.owner("legacy") is None
    assert ownership.owner(None) is None


def test_bad_owner_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "owners.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="owners.json"):
        Ownership.from_file(bad)
