"""Reading what was stored and buffered: metrics, the service graph, critical paths and explain."""
