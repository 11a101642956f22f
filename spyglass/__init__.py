"""spyglass: distributed tracing that explains. Analyzes 100% of spans, keeps the traces that matter."""

__version__ = "0.1.0"
