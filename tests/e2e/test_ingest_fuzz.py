"""A fuzz of hostile bodies on every ingest endpoint, interleaved with valid traces: every hostile body gets a clear
answer (never a 5xx or a dropped connection), and no acknowledged valid trace is lost, live or after a restart.

``SPYGLASS_FUZZ_BODIES`` sets the number of hostile bodies per endpoint: 5,000 by default, so the suite stays
within its time; ``SPYGLASS_FUZZ_BODIES=20000`` is the acceptance run (about 6.5 minutes on 2 cores, and
``bench/ingest_fuzz.py`` does the same against a separate server process);
``SPYGLASS_FUZZ_SEED`` picks another reproducible set. A failure names the kind and index of the body, which
``tests.support.hostile.HostileBodies(fmt, seed, now_ns, transport).body(index)`` makes again (the same
kind and mutation whatever ``now_ns``; only the times differ).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from tests.conftest import RunningServer
from tests.support.hostile import ENDPOINTS, missing_exports, run_fuzz, unstored_exports

HOSTILE_BODIES = int(os.environ.get("SPYGLASS_FUZZ_BODIES", "5000"))
SEED = int(os.environ.get("SPYGLASS_FUZZ_SEED", "1"))
#: Small, so that oversize bodies and gzip bombs cost little; the limit is what is tested, not its size.
MAX_BODY_BYTES = 4 * 1024 * 1024
VALID_EVERY = 20


@pytest.mark.timeout(900)
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_hostile_bodies_lose_no_valid_trace(
    start_server: Callable[..., RunningServer], endpoint: str
) -> None:
    spyglass = start_server(sample_rate=1.0, max_body_bytes=MAX_BODY_BYTES)
    report = run_fuzz(
        spyglass,
        endpoint,
        HOSTILE_BODIES,
        seed=SEED,
        threads=4,
        valid_every=VALID_EVERY,
        max_body_bytes=MAX_BODY_BYTES,
    )
    assert report.hostile_sent == HOSTILE_BODIES
    assert not report.violations, report.violation_summary()
    assert not report.refused_valid, (
        f"{len(report.refused_valid)} valid exports not acknowledged:\n"
        + "\n".join(report.refused_valid[:10])
    )
    assert len(report.acknowledged) == HOSTILE_BODIES // VALID_EVERY
    assert len({export.trace_id for export in report.acknowledged}) == len(report.acknowledged)
    assert spyglass.get("/api/v1/status").status_code == 200

    spyglass.flush()
    spyglass.server.log_writer.flush(timeout_s=60)
    lost_live = missing_exports(spyglass.api, report.acknowledged)
    assert not lost_live, f"{len(lost_live)} acknowledged exports lost (live):\n" + "\n".join(lost_live[:10])
    unstored = unstored_exports(spyglass.server.store, report.acknowledged)
    assert not unstored, f"{len(unstored)} acknowledged exports not stored:\n" + "\n".join(unstored[:10])

    spyglass.server.stop_thread()
    restarted = start_server(data_dir=spyglass.data_dir, sample_rate=1.0, max_body_bytes=MAX_BODY_BYTES)
    lost_after_restart = missing_exports(restarted.api, report.acknowledged)
    assert not lost_after_restart, (
        f"{len(lost_after_restart)} acknowledged exports lost after a restart:\n"
        + "\n".join(lost_after_restart[:10])
    )
