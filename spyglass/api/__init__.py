"""The query port: spyglass's JSON API, the Jaeger-compatible API, Prometheus metrics and the web UI."""
