"""The columnar log record batch: OTLP log records that carry trace context, as receivers hand them on.

spyglass keeps only log records that correlate with a trace (a valid trace id), so ``trace_id`` is never null
here; ``span_id`` is null when a record names its trace but no span. Attributes and resource use the same
text-plus-type maps as spans (``spyglass.model.schema``). A body that is not a string is kept as JSON text.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from spyglass.model.attributes import typed_attributes
from spyglass.model.schema import ATTRIBUTE_TYPES, ATTRIBUTES, SPAN_ID, TRACE_ID

LOG_SCHEMA = pa.schema(
    [
        pa.field("time_ns", pa.int64(), nullable=False),  # the record's time, else its observed time
        pa.field("observed_time_ns", pa.int64(), nullable=False),  # 0 when the sender did not set it
        pa.field("trace_id", TRACE_ID, nullable=False),
        pa.field("span_id", SPAN_ID),
        pa.field("severity_number", pa.int8(), nullable=False),  # OTLP SeverityNumber, 0 = unspecified
        pa.field("severity_text", pa.string()),
        pa.field("body", pa.string()),  # strings as they are, other values as JSON; null when absent
        pa.field("attributes", ATTRIBUTES),
        pa.field("attribute_types", ATTRIBUTE_TYPES),
        pa.field("resource", ATTRIBUTES),
        pa.field("resource_types", ATTRIBUTE_TYPES),
        pa.field("service", pa.string(), nullable=False),
        pa.field("scope_name", pa.string()),
    ]
)

#: Highest OTLP SeverityNumber (FATAL4); other values are read as 0 (unspecified).
MAX_SEVERITY_NUMBER = 24
_SEVERITY_NAMES = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")


def severity_name(number: int) -> str:
    """The short name of an OTLP severity number (``9`` -> ``"INFO"``), ``""`` when unspecified."""
    if not 1 <= number <= MAX_SEVERITY_NUMBER:
        return ""
    return _SEVERITY_NAMES[(number - 1) // 4]


def log_record_json(row: dict[str, Any]) -> dict[str, Any]:
    """One stored log record (a ``LOG_SCHEMA`` row) as the API and alerts give it."""
    return {
        "time_ns": row["time_ns"],
        "observed_time_ns": row["observed_time_ns"],
        "trace_id": row["trace_id"].hex(),
        "span_id": row["span_id"].hex() if row["span_id"] is not None else None,
        "severity": row["severity_text"] or severity_name(row["severity_number"]),
        "severity_number": row["severity_number"],
        "body": row["body"],
        "attributes": typed_attributes(row["attributes"], row["attribute_types"]),
        "resource": typed_attributes(row["resource"], row["resource_types"]),
        "service": row["service"],
        "scope": row["scope_name"] or "",
    }


def empty_log_batch() -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([], schema=LOG_SCHEMA)
