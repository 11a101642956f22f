"""Retention: the store keeps what the policy says and no more, deleted a small slice at a time.

A thread of its own, at background priority (``background.Periodic``), runs a pass every ``interval_s``: spans and
logs past ``--retention`` are deleted, rollup rows past ``--rollup-retention`` too, and rollups are merged into
coarser buckets as they age (``RetentionPolicy.rollup_tiers``, coarsest first, so a backlog is merged once). Each
step is one short store transaction over the oldest slice of time; the slice adapts so that a step holds the
store's writer about ``step_target_s`` (a span write waits at most that), and after each step the worker rests
as long as the step took, so it never takes more than half of a core from ingest and queries. After a pass that
deleted or merged anything, ``Store.reclaim_space`` (at most every ``reclaim_interval_s``) makes the freed space
reusable; DuckDB never shrinks its file on a delete, so when expiry left free blocks in more than a quarter of a
file of 64 MB or more, the same call compacts it (``spyglass.store.duckdb_compaction``: the live rows copied from
a snapshot into a fresh file that replaces it, writes made meanwhile replayed onto it). The compaction runs in
this thread, after the pass's steps, so it never overlaps one. Under steady traffic the file stops growing once it
holds a retention's worth, and gives back what a shorter retention or a quieter week no longer needs
(``tests/satellite/test_retention.py``: days 8 and 9 at 26.8 MB against day 7's 39.1 MB, a copy of 1.1-1.7 s,
writes waiting 40-70 ms for the swap; ``bench/retention.py --compaction 5000000``: 313 MB down to 169 MB, a copy
of 7.8 s while 10,000 spans/s were written, which waited 0.22 s).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial

from spyglass.background import Periodic
from spyglass.model.figures import RetentionCounters, StorageFigures, StorageStatus
from spyglass.model.retention import RetentionPolicy
from spyglass.store.protocol import RetentionStep, Store

log = logging.getLogger(__name__)

SECOND_NS = 1_000_000_000
#: How often a pass runs; the first one runs an interval after start (not during a restart's busy seconds).
PASS_INTERVAL_S = 60.0
#: How long one step may hold the store's writer.
STEP_TARGET_S = 0.05
#: At most this often a checkpoint after deletions (DuckDB rewrites what the write-ahead log holds).
RECLAIM_INTERVAL_S = 600.0
#: The first slice of each job, and the bounds slices adapt within (a second of 50,000 spans/s is a step's worth).
FIRST_SLICE_NS = SECOND_NS
MIN_SLICE_NS = SECOND_NS // 10
MAX_SLICE_NS = 7 * 86_400 * SECOND_NS
#: Status reads the store's figures (a few small scans) at most this often.
FIGURES_MAX_AGE_S = 5.0


class RetentionWorker:
    """Applies a ``RetentionPolicy`` to a store, continuously and in small steps; reports what it did."""

    def __init__(
        self,
        store: Store,
        policy: RetentionPolicy,
        *,
        interval_s: float = PASS_INTERVAL_S,
        step_target_s: float = STEP_TARGET_S,
        reclaim_interval_s: float = RECLAIM_INTERVAL_S,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.store = store
        self.policy = policy
        self.interval_s = interval_s
        self.step_target_s = step_target_s
        self.reclaim_interval_s = reclaim_interval_s
        self.clock = clock
        self.counters = RetentionCounters()
        self._slices_ns: dict[str, int] = {}
        self._last_reclaim_s = -math.inf
        self._figures: StorageFigures | None = None
        self._figures_at_s = -math.inf
        self._figures_lock = threading.Lock()
        self._periodic = Periodic("spyglass-retention", interval_s, self.run_pass, "a retention pass")

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        self._periodic.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop after the step under way (a step is short)."""
        self._periodic.stop(timeout_s)

    # -- one pass --------------------------------------------------------------------------------------

    def run_pass(self, now_ns: int | None = None, *, reclaim: bool | None = None) -> int:
        """Bring the store up to the policy as of ``now_ns``, step by step; returns the rows deleted or merged.
        ``reclaim`` forces (True) or skips (False) the checkpoint; by default at most every interval."""
        now = self.clock() if now_ns is None else now_ns
        policy = self.policy
        store = self.store
        keep_ns = now - policy.retention_s * SECOND_NS
        jobs: list[tuple[str, Callable[[int], RetentionStep]]] = [
            ("spans", partial(store.expire, "spans", keep_ns)),
            ("logs", partial(store.expire, "logs", keep_ns)),
            ("rollups", partial(store.expire, "rollups", now - policy.rollup_retention_s * SECOND_NS)),
        ]
        # Coarsest first: rows old enough for several tiers are merged once, straight into the coarsest.
        for tier in sorted(policy.rollup_tiers, key=lambda t: -t.bucket_s):
            before_ns = now - tier.after_s * SECOND_NS
            jobs.append(
                (f"downsample_{tier.bucket_s}", partial(store.downsample_rollups, before_ns, tier.bucket_s))
            )
        changed = 0
        for name, run in jobs:
            while not self._periodic.stopping.is_set():
                step, elapsed_s = self._step(name, run)
                changed += step.rows
                if not step.more:
                    break
                # Rest as long as the step took: at most half of a core, and the writer free in between.
                if self._periodic.stopping.wait(max(elapsed_s, 0.001)):
                    break
        # Downsampling deletes the rows it merged too: any change leaves space to reclaim. Closing checkpoints.
        due = reclaim is None and changed and self._reclaim_due() and not self._periodic.stopping.is_set()
        if reclaim or due:
            compaction = store.reclaim_space()
            self._last_reclaim_s = time.monotonic()
            if compaction is not None:
                self.counters.compactions += 1
                self.counters.bytes_compacted += max(0, compaction.bytes_before - compaction.bytes_after)
                self.counters.last_compaction_copy_s = compaction.copy_s
                self.counters.last_compaction_pause_s = compaction.pause_s
        self.counters.passes += 1
        self.counters.last_pass_ns = self.clock() if now_ns is None else now_ns
        with self._figures_lock:
            self._figures_at_s = -math.inf  # the next status reads them afresh
        return changed

    def _step(self, name: str, run: Callable[[int], RetentionStep]) -> tuple[RetentionStep, float]:
        """One transaction over the job's current slice; the slice then adapts to the time it took."""
        slice_ns = self._slices_ns.get(name, FIRST_SLICE_NS)
        started = time.perf_counter()
        step = run(slice_ns)
        elapsed_s = time.perf_counter() - started
        counters = self.counters
        counters.steps += 1
        counters.longest_step_s = max(counters.longest_step_s, elapsed_s)
        if name == "spans":
            counters.spans_expired += step.rows
        elif name == "logs":
            counters.logs_expired += step.rows
        elif name == "rollups":
            counters.rollup_rows_expired += step.rows
        else:
            counters.rollup_rows_downsampled += step.rows
        if elapsed_s > self.step_target_s:
            slice_ns = int(slice_ns * max(0.25, self.step_target_s / elapsed_s))
        elif elapsed_s < self.step_target_s / 2 and step.rows:
            slice_ns *= 2  # only after real work: empty slices (gaps in the data) say nothing of the next
        self._slices_ns[name] = min(MAX_SLICE_NS, max(MIN_SLICE_NS, slice_ns))
        return step, elapsed_s

    def _reclaim_due(self) -> bool:
        return time.monotonic() - self._last_reclaim_s >= self.reclaim_interval_s

    # -- what it reports -------------------------------------------------------------------------------

    def status(self) -> StorageStatus:
        """The store's figures (read at most every ``FIGURES_MAX_AGE_S``), the policy, and the counters."""
        with self._figures_lock:
            if self._figures is None or time.monotonic() - self._figures_at_s > FIGURES_MAX_AGE_S:
                self._figures = self.store.storage_figures()
                self._figures_at_s = time.monotonic()
            figures = self._figures
        return StorageStatus(figures=figures, policy=self.policy, counters=replace(self.counters))
