"""Where spans and logs come in (OTLP over HTTP and gRPC, Zipkin, forwarded from peers): decoded to columns."""
