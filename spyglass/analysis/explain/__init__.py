"""Explain: from a symptom (a root operation got slower or fails more) to its most likely causes
(``pipeline.py`` tells the steps)."""

from spyglass.analysis.explain.finding import Finding, Kind
from spyglass.analysis.explain.pipeline import MAX_FINDINGS, explain_spans, findings
from spyglass.analysis.explain.symptom import COLUMNS, TRACES_PER_WINDOW, ExplainRequest

__all__ = [
    "COLUMNS",
    "MAX_FINDINGS",
    "TRACES_PER_WINDOW",
    "ExplainRequest",
    "Finding",
    "Kind",
    "explain_spans",
    "findings",
]
