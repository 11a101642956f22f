"""Several satellites as one: which one owns a trace (membership), getting spans there (routing, forwarding,
OTLP encoding), and reading the whole cluster from any member (peer client, cluster views)."""
