"""Watching SLOs in the background: the SLOs defined (a file, the API), an evaluator that measures them every
few seconds off the ingest path, and alerts that open when a burn-rate pair fires, arrive with explain's
findings and owners, and are delivered to the log, a webhook and ``GET /api/v1/alerts``.

It reads through the same seams as the API (store, live data, rollups, ownership) and may import analysis,
the store protocol and the model; only the server and the API import it.
"""
