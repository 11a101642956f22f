"""A cluster's storage figures in ``/api/v1/status``: each member expires and measures its own store, so amounts
add up and the oldest data is the earliest any member holds; with one shared store, one member's figures are
the cluster's."""

from __future__ import annotations

from typing import Any

from spyglass.cluster.node import _cluster_storage


def member(
    oldest_ns: int | None, disk_bytes: int, spans_expired: int, last_pass_ns: int | None
) -> dict[str, Any]:
    return {
        "oldest_ns": oldest_ns,
        "disk_bytes": disk_bytes,
        "storage": {
            "disk_bytes": disk_bytes,
            "free_bytes": 10,
            "oldest_span_ns": oldest_ns,
            "oldest_log_ns": None,
            "oldest_rollup_ns": oldest_ns,
            "retention_s": 604_800,
            "rollup_retention_s": 7_776_000,
            "rollup_tiers": [{"after_s": 86_400, "bucket_s": 60}],
            "spans_expired": spans_expired,
            "logs_expired": 0,
            "rollup_rows_expired": 0,
            "rollup_rows_downsampled": 0,
            "retention_steps": 2,
            "retention_passes": 1,
            "last_pass_ns": last_pass_ns,
            "longest_step_s": 0.01,
        },
    }


def test_members_own_stores_add_up() -> None:
    members = [member(300, 1_000, 5, 70), member(100, 2_000, 7, 90), member(None, 500, 0, None)]
    merged = _cluster_storage(members, shared_store=False)
    storage = merged["storage"]
    assert (merged["oldest_ns"], merged["disk_bytes"]) == (100, 3_500)
    assert (storage["oldest_span_ns"], storage["oldest_log_ns"], storage["oldest_rollup_ns"]) == (
        100,
        None,
        100,
    )
    assert (storage["disk_bytes"], storage["free_bytes"], storage["spans_expired"]) == (3_500, 30, 12)
    assert (storage["retention_passes"], storage["retention_steps"], storage["last_pass_ns"]) == (3, 6, 90)
    assert (storage["retention_s"], storage["rollup_tiers"]) == (
        604_800,
        [{"after_s": 86_400, "bucket_s": 60}],
    )


def test_a_shared_store_is_measured_once() -> None:
    members = [member(300, 1_000, 5, 70), member(100, 1_000, 7, 90)]
    merged = _cluster_storage(members, shared_store=True)
    assert merged == {key: members[0][key] for key in ("oldest_ns", "disk_bytes", "storage")}
