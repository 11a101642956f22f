"""Reading what was stored and buffered: metrics, the service graph, critical paths, explain, and SLOs' SLI,
budget and burn rates."""
