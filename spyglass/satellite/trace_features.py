"""One row per trace, computed from its spans in one columnar pass: what the sampler decides on.

Features: the root (the span without a parent, else the earliest), the trace's duration, whether it failed and
the signature of the error where it originates (the latest-starting error span, with numbers in its message
folded so ``timeout after 31ms`` and ``timeout after 47ms`` are one signature), and its *shape* (a hash of the
distinct service/operation pairs it touched).
"""

from __future__ import annotations

import pyarrow as pa

from spyglass.model.arrow_sql import query_arrow

FEATURE_COLUMNS = [
    "trace_id",
    "parent_span_id",
    "service",
    "name",
    "start_ns",
    "duration_ns",
    "status_code",
    "status_message",
]

_FEATURES_SQL = """
SELECT trace_id,
       count(*) AS span_count,
       arg_min(service, (parent_span_id IS NOT NULL)::BIGINT * 4611686018427387904 + start_ns) AS root_service,
       arg_min(name, (parent_span_id IS NOT NULL)::BIGINT * 4611686018427387904 + start_ns) AS root_operation,
       max(start_ns + duration_ns) - min(start_ns) AS duration_ns,
       bool_or(status_code = 2) AS has_error,
       arg_max(service || ' ' || name || ': ' || regexp_replace(coalesce(left(status_message, 80), ''),
                                                                '[0-9]+', '#', 'g'),
               start_ns) FILTER (WHERE status_code = 2) AS error_signature,
       hash(list_sort(list_distinct(list(service || chr(31) || name)))) AS shape
FROM spans GROUP BY trace_id
ORDER BY min(start_ns), trace_id
"""

_VALUES_SQL = """
SELECT DISTINCT trace_id, k AS key, coalesce(attributes[k], resource[k]) AS value
FROM spans, (SELECT unnest(?::VARCHAR[]) AS k)
WHERE coalesce(attributes[k], resource[k]) IS NOT NULL
"""


def trace_features(spans: pa.Table) -> pa.Table:
    """Per-trace features of a table of whole traces (``SPAN_SCHEMA`` columns)."""
    return query_arrow(_FEATURES_SQL, spans=spans.select(FEATURE_COLUMNS))


def trace_attribute_values(spans: pa.Table, keys: list[str]) -> pa.Table:
    """Distinct ``(trace_id, key, value)`` for the given attribute keys (span attribute or resource)."""
    return query_arrow(_VALUES_SQL, [keys], spans=spans.select(["trace_id", "attributes", "resource"]))
