"""The one-sentence summary of each finding, in the words of its kind and signal."""

from __future__ import annotations

from typing import Any

from spyglass.analysis.explain.finding import Finding, Kind
from spyglass.analysis.explain.numbers import pct
from spyglass.analysis.explain.symptom import ExplainRequest


def summary(f: Finding, req: ExplainRequest) -> str:
    """One sentence a person reads first: what the finding names, its measure, its share of the growth; and the
    other half of the cause when a mechanism and its value are told as one."""
    sentence = _sentence(f, req)
    since, through = f.evidence.get("since"), f.evidence.get("through")
    if since:
        sentence += f" Since {since['key']}={since['value']} (in {since['service']})."
    elif through:
        how = {"operation": "own time", "n_plus_one": "n+1 calls", "sequential": "sequential calls"}
        mechanism = how.get(through["kind"], "errors")
        sentence += f" Through {through['service']} '{through['operation']}' ({mechanism})."
    return sentence


def _sentence(f: Finding, req: ExplainRequest) -> str:
    symptom = f"{req.service} {req.operation}"
    what = "slower" if req.signal == "latency" else "failing"
    share = f"{f.score * 100:.0f}%"
    ev = f.evidence
    reg, base = ev.get("regression", {}), ev.get("baseline", {})
    if f.kind == Kind.ATTRIBUTE and "services" in ev:
        where = ", ".join(ev["services"][:3]) + (" and more" if len(ev["services"]) > 3 else "")
        if req.signal == "latency":
            return (
                f"Spans with {f.key}={f.value} (in {where}) took {reg.get('ms_with')} ms "
                f"against {reg.get('ms_without') if reg.get('ms_without') is not None else base.get('ms_with')} ms "
                f"{'elsewhere' if reg.get('ms_without') is not None else 'before'}: {share} of the {symptom} latency growth."
            )
        return (
            f"Spans with {f.key}={f.value} (in {where}) originate errors in "
            f"{pct(reg.get('errors_originated_per_span_with'))} of their calls: {share} of the new {symptom} failures."
        )
    if f.where:
        # An operation told by the uninstrumented peer it calls (``relabel_peers``): its own time is the peer's.
        calls = ev["also"][0].removeprefix(f"{f.service} operation ")
        return _own_growth(f"{f.service}'s calls to {f.key}={f.value} ({calls})", req, share, reg, base)
    if f.kind == Kind.ATTRIBUTE:
        return (
            f"Traces through {f.service} with {f.key}={f.value} explain {share} of the {what} "
            f"{symptom} traces ({pct(reg.get('symptom_share_with'))} of them are {what}, against "
            f"{pct(reg.get('symptom_share_without') if reg.get('symptom_share_without') is not None else base.get('symptom_share_without'))} without it)."
        )
    if f.kind == Kind.OPERATION:
        return _own_growth(f"{f.service} '{f.operation}'", req, share, reg, base)
    if f.kind == Kind.N_PLUS_ONE:
        return (
            f"{f.service} calls '{f.operation}' {reg.get('calls_per_trace')} times per {symptom} request "
            f"(was {base.get('calls_per_trace')}): an n+1 pattern costing {share} of the latency growth."
        )
    if f.kind == Kind.SEQUENTIAL:
        return (
            f"{f.service} '{f.operation}' now runs its independent calls one after another, losing "
            f"{ev.get('time_lost_ms_per_trace')} ms of overlap per request ({share} of the latency growth)."
        )
    return (
        f"Errors of {symptom} originate in {f.service} '{f.operation}' "
        f"({pct(reg.get('failed_traces_originating_here'))} of requests now, "
        f"{pct(base.get('failed_traces_originating_here'))} before)."
    )


def _own_growth(
    subject: str, req: ExplainRequest, share: str, reg: dict[str, Any], base: dict[str, Any]
) -> str:
    """How an operation's own time (or its errors) per symptom request grew: an operation's finding, or the
    calls to a peer that sends no spans."""
    symptom = f"{req.service} {req.operation}"
    if req.signal == "latency":
        return (
            f"{subject} own time grew from {base.get('own_ms_per_trace')} to {reg.get('own_ms_per_trace')} ms per "
            f"{symptom} request ({share} of the latency growth)."
        )
    return (
        f"{subject} errors grew from {base.get('errors_per_trace')} to {reg.get('errors_per_trace')} per "
        f"{symptom} request."
    )
