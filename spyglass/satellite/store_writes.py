"""Writing accepted rows to the store so that no row costs another its place.

Two kinds of failure, told apart by the store (``UnwritableRows``): rows the store refuses for what they hold,
which retrying will never fix, and everything else (a full disk, a server away), which retrying may. Refused
rows are isolated by splitting the batch in halves until each refusal is one row, so one bad span costs only
itself; other failures are retried with backoff, never past ``RETRY_BOUND_S``, so the writer is never held
longer than that by one batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

from spyglass.store.protocol import UnwritableRows

log = logging.getLogger(__name__)

#: The longest one batch holds the writer retrying a failure that is not about its rows.
RETRY_BOUND_S = 10.0
#: Trace ids of unwritable rows named in the log per batch; the rest are only counted.
_LOGGED_IDS = 10


@dataclass
class WriteReport:
    """What became of one batch's rows."""

    written: int = 0
    #: rows the store refused on their own; the rest of the batch was written
    unwritable: int = 0
    #: rows given up after ``RETRY_BOUND_S`` of failures that were not about them (the store unavailable)
    failed: int = 0
    unwritable_trace_ids: list[str] = field(default_factory=list)


def write_isolating(
    write: Callable[[pa.Table], None], rows: pa.Table, what: str, retry_bound_s: float = RETRY_BOUND_S
) -> WriteReport:
    """Write ``rows`` with ``write``; rows it refuses are isolated and reported, the others written."""
    report = WriteReport()
    _write(write, rows, what, time.monotonic() + retry_bound_s, report)
    if report.unwritable:
        shown = ", ".join(report.unwritable_trace_ids[:_LOGGED_IDS])
        more = len(report.unwritable_trace_ids) - _LOGGED_IDS
        log.error(
            "the store refused %d of %d %s; the rest were written. Trace ids: %s%s",
            report.unwritable,
            rows.num_rows,
            what,
            shown,
            f" and {more} more" if more > 0 else "",
        )
    return report


def _write(
    write: Callable[[pa.Table], None], rows: pa.Table, what: str, deadline: float, report: WriteReport
) -> None:
    delay_s = 0.05
    while True:
        try:
            write(rows)
            report.written += rows.num_rows
            return
        except UnwritableRows as refusal:
            if rows.num_rows == 1:
                trace_id = _trace_id(rows)
                report.unwritable += 1
                report.unwritable_trace_ids.append(trace_id)
                log.debug("unwritable row of trace %s: %s", trace_id, refusal)
                return
            break
        except Exception:
            if time.monotonic() + delay_s > deadline:
                log.exception("giving up on writing %d %s after repeated store failures", rows.num_rows, what)
                report.failed += rows.num_rows
                return
            log.warning(
                "writing %d %s failed; retrying in %.2f s", rows.num_rows, what, delay_s, exc_info=True
            )
            time.sleep(delay_s)
            delay_s = min(delay_s * 2, 2.0)
    half = rows.num_rows // 2
    _write(write, rows.slice(0, half), what, deadline, report)
    _write(write, rows.slice(half), what, deadline, report)


def _trace_id(rows: pa.Table) -> str:
    if "trace_id" not in rows.column_names:
        return "?"
    value = rows.column("trace_id")[0].as_py()
    return value.hex() if isinstance(value, bytes) else str(value)
