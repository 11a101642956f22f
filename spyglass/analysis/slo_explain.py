"""Why an SLO burns: explain run on the burning window against its baseline, as ``POST /api/v1/explain`` runs
it (the same findings, exact numbers from the rollups, logs and span events of the examples), each finding
with links to its example traces, and who to send it to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spyglass.analysis.explain import ExplainRequest
from spyglass.analysis.explain_numbers import attach_exact_numbers
from spyglass.analysis.explain_source import explain
from spyglass.analysis.finding_context import attach_context
from spyglass.analysis.live import LiveData, RollupReader
from spyglass.analysis.ownership import Ownership
from spyglass.analysis.slo import Slo
from spyglass.analysis.slo_windows import ExplainWindows
from spyglass.store.protocol import Store

#: Findings an alert carries (the most likely causes; explain itself answers with more).
FINDINGS_PER_ALERT = 3
#: Log records and span events kept per finding.
CONTEXT_PER_FINDING = 3


@dataclass(frozen=True)
class ExplainSources:
    """Where explain reads from (in a cluster, the cluster-wide views), as the API's explain does."""

    store: Store
    live: LiveData
    rollups: RollupReader
    ownership: Ownership


@dataclass(frozen=True)
class BurnExplained:
    """Explain's answer for a burn: the top findings (API ``Finding`` objects with ``links``), the symptom's
    numbers in both windows, and the team to route the alert to."""

    findings: list[dict[str, Any]]
    symptom: dict[str, Any]
    owners: list[str]
    routing_key: str | None


def explain_request(slo: Slo, windows: ExplainWindows) -> ExplainRequest:
    """The explain request an SLO's burn is: its operation, its signal, the two windows."""
    return ExplainRequest(
        service=slo.service,
        operation=slo.operation,
        start_ns=windows.start_ns,
        end_ns=windows.end_ns,
        baseline_start_ns=windows.baseline_start_ns,
        baseline_end_ns=windows.baseline_end_ns,
        signal="latency" if slo.kind == "latency" else "errors",
    )


def explain_burn(sources: ExplainSources, slo: Slo, windows: ExplainWindows) -> BurnExplained:
    """The top findings of the burn, with links, and owners: the findings' (most likely cause first), then the
    SLO's own. The routing key is the top finding's owner, else the SLO's, else the owner of its service."""
    req = explain_request(slo, windows)
    findings = explain(sources.store, sources.live, sources.ownership, req)[:FINDINGS_PER_ALERT]
    attach_context(sources.store, sources.live, findings, CONTEXT_PER_FINDING)
    symptom = attach_exact_numbers(sources.store, sources.rollups, sources.live, req, findings)
    for finding in findings:
        finding["links"] = [f"/traces/{trace_id}" for trace_id in finding["examples"]["regression"]]
    owners: list[str] = []
    for owner in [*(f.get("owner") for f in findings), slo.owner]:
        if owner and owner not in owners:
            owners.append(owner)
    top_owner = findings[0].get("owner") if findings else None
    routing_key = top_owner or slo.owner or sources.ownership.owner(slo.service)
    return BurnExplained(findings, symptom, owners, routing_key)
