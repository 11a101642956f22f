"""Every accepted span: aggregated, buffered, decided by the sampler, and written to the store."""
