"""Explain: from a symptom (a root operation got slower or fails more) to its most likely causes."""

from spyglass.analysis.explain.analysis import (
    COLUMNS,
    MAX_FINDINGS,
    TRACES_PER_WINDOW,
    ExplainRequest,
    explain_spans,
)

__all__ = ["COLUMNS", "MAX_FINDINGS", "TRACES_PER_WINDOW", "ExplainRequest", "explain_spans"]
