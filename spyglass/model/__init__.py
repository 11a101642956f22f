"""The shared vocabulary: span, rollup and log schemas, the latency sketch, and rules every layer applies."""
