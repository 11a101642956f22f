"""Sampling decisions: given whole, quiet traces, which to keep and how many traces each kept one stands for.

A sampler is a function of the traces and of live statistics, so it is tested with synthetic traces and no
server. Every sampler returns the kept spans with a ``sample_weight`` column: the inverse of the probability
the trace was kept with, so sums of weights over stored traces estimate the unsampled totals (Horvitz-Thompson).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spyglass.model.adjusted_count import adjusted_counts, forced_traces
from spyglass.model.arrow_numpy import as_numpy
from spyglass.model.schema import STORED_SPAN_SCHEMA
from spyglass.satellite.trace_features import trace_attribute_values, trace_features


class Sampler(Protocol):
    """Decides which of a set of whole, quiet traces go to the store."""

    def decide(self, traces: pa.Table) -> pa.Table:
        """Return the spans of kept traces (``STORED_SPAN_SCHEMA``, with ``sample_weight``)."""
        ...


def with_weights(spans: pa.Table, trace_ids: pa.Array, weights: np.ndarray) -> pa.Table:
    """The spans of the given traces, each carrying its trace's weight."""
    position = pc.index_in(spans.column("trace_id"), value_set=trace_ids)
    kept = spans.filter(pc.is_valid(position))
    span_weights = (
        pa.array(weights, pa.float64())[0:0]
        if kept.num_rows == 0
        else pc.take(pa.array(weights, pa.float64()), position.filter(pc.is_valid(position)))
    )
    return kept.append_column("sample_weight", span_weights).cast(STORED_SPAN_SCHEMA)


def with_adjusted_counts(kept: pa.Table) -> pa.Table:
    """Kept spans weighing their trace's weight times the spans each stands for (its adjusted count, when its
    service head-sampled): the product of the two keep probabilities, inverted. Applied once, on the way to the
    store; samplers weigh traces only."""
    adjusted = adjusted_counts(kept.column("trace_state"))
    if adjusted is None:
        return kept
    index = kept.column_names.index("sample_weight")
    weights = pc.multiply(kept.column("sample_weight"), pa.array(adjusted))
    return kept.set_column(index, "sample_weight", weights)


class KeepAllSampler:
    """Keeps every trace with weight 1.0: the behaviour of ``--sample-rate 1.0``."""

    def decide(self, traces: pa.Table) -> pa.Table:
        weights = pa.array(np.ones(traces.num_rows, dtype=np.float64))
        return traces.append_column("sample_weight", weights).cast(STORED_SPAN_SCHEMA)


@dataclass(frozen=True)
class SamplingPolicy:
    """The knobs of dynamic sampling. The defaults are what ``spyglass serve`` uses."""

    sample_rate: float = 0.05
    #: Share of the budget errors may take before signatures are rationed against each other.
    error_share: float = 0.7
    #: The body (neither error nor tail) always gets at least this share, so every mode stays represented.
    min_body_share: float = 0.1
    #: The smallest keep probability, as a share of the rate: bounds every weight by 1 / (share * rate).
    min_probability_share: float = 0.05
    #: Traces seen of a root operation before its latency distribution is trusted; earlier ones are kept.
    warmup_traces: int = 30
    #: Keep the first this-many traces of each never-seen shape and of each rare attribute value.
    novelty_keeps: int = 3
    #: Share of the budget novelty may take when it is not rare (then new traces are rationed).
    novelty_share: float = 0.25
    #: Attribute values (span or resource) whose first appearances are kept: deployments, hosts, zones.
    novelty_keys: tuple[str, ...] = (
        "service.version",
        "host.name",
        "cloud.availability_zone",
        "k8s.pod.name",
        "peer.service",
        "http.route",
        "deployment.environment",
    )
    #: Statistics halve this often, so the sampler follows traffic as it changes.
    half_life_s: float = 300.0
    #: Width of a latency stratum, as a factor: strata are log-spaced, each this many times wider than the last.
    stratum_factor: float = 2.0


#: A root service that asks to keep more than this share of its traces (Zipkin ``debug``) is sampled as if none
#: asked, once ``_DEBUG_EVIDENCE`` of its traces were seen (counted a decision at a time); before, as asked.
_UBIQUITOUS_DEBUG = 0.5
_DEBUG_EVIDENCE = 100.0
_RANK_BIN = float(np.log(1.005))  # latency ranks from 0.5%-wide log bins
_RANK_BINS = 6400  # up to 1.005**6400 ns: far beyond any trace
_MAX_REMEMBERED = (
    100_000  # shapes or attribute values remembered for novelty, before the rarest are forgotten
)
#: Root operations whose latency history is kept, each a histogram of ``_RANK_BINS`` counts (25 KB). Real
#: services have hundreds; span names that carry ids (raw URL paths) make one per request, which must not grow
#: memory without end (45 KB each, unbounded, was 1.5 GB after 30,000 such names). Past the bound a new root
#: operation is decided as one warming up, until quiet ones are forgotten.
_MAX_OPERATIONS = 2_000
#: At a decay, a root operation whose halved count is below this (about two traces in a half-life) is forgotten.
_QUIET_OPERATION = 1.0
#: With every slot taken, the ones seen about once are given up first.
_SEEN_ONCE = 2.0


class _OperationLatency:
    """A decaying histogram of one root operation's trace durations, to rank new traces against."""

    def __init__(self) -> None:
        self.counts = np.zeros(_RANK_BINS, dtype=np.float32)

    @staticmethod
    def bins(durations_ns: np.ndarray) -> np.ndarray:
        safe = np.maximum(durations_ns.astype(np.float64), 1.0)
        return np.clip((np.log(safe) / _RANK_BIN).astype(np.int64), 0, _RANK_BINS - 1)

    @property
    def total(self) -> float:
        return float(self.counts.sum(dtype=np.float64))

    def ranks(self, bins: np.ndarray) -> np.ndarray:
        """Fraction of earlier traces strictly faster than each given bin (mid-bin for ties)."""
        total = self.total
        if total <= 0:
            return np.zeros(len(bins))
        below = np.concatenate([[0.0], np.cumsum(self.counts, dtype=np.float64)])
        return cast(np.ndarray, (below[bins] + self.counts[bins] / 2) / total)

    def add(self, bins: np.ndarray) -> None:
        np.add.at(self.counts, bins, 1.0)


class DynamicSampler:
    """Keeps ``sample_rate`` of traces on average, spending the budget on what explains.

    Priorities, each informed by all traffic seen so far (the statistics every trace updates):
    errors, rationed per error signature so a storm of one error does not starve the others; the latency tail
    of each root operation; the first traces of a new root operation, a new shape, or a new value of an
    attribute that marks a change (a version, a host, a zone); and for the rest, an equal share for each latency
    stratum of each root operation, so that every mode of performance is represented, not only the common one.
    """

    def __init__(
        self,
        policy: SamplingPolicy,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self._rng = np.random.default_rng(seed)
        self._clock = clock
        self._last_decay = clock()
        self._latency: dict[str, _OperationLatency] = {}  # by root service and operation
        self._seen_shapes: dict[int, float] = {}
        self._seen_values: dict[tuple[str, str], float] = {}
        self._errors = _ClassRates()
        self._tail = _ClassRates()
        self._novel = _ClassRates(half_life_traces=1_000.0)  # forget the start-up burst of novelty quickly
        self._body = _ClassRates()
        self._ids: dict[object, int] = {}
        self._credit: dict[int, float] = {}
        #: Per root service that asked to keep a trace: (traces seen, traces that asked), decaying.
        self._debug_marks: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def decide(self, traces: pa.Table) -> pa.Table:
        if traces.num_rows == 0:
            return traces.append_column("sample_weight", pa.array([], pa.float64())).cast(STORED_SPAN_SCHEMA)
        table = trace_features(traces)
        features = pa.RecordBatch.from_arrays(
            [c.combine_chunks() for c in table.columns], names=table.column_names
        )
        # Which values of the change-marking keys each trace carries; not needed when every trace is kept.
        values = None
        if self.policy.sample_rate < 1.0:
            values = trace_attribute_values(traces, list(self.policy.novelty_keys))
        # A trace a sender asked to keep (a debug span) is kept whatever the rate, standing for itself, unless its
        # root service asks so of most of its traces (``_honoured``).
        forced = pc.is_in(features.column("trace_id"), value_set=forced_traces(traces))
        with self._lock:
            self._decay()
            probabilities, labels = self._probabilities(features, values)
            if values is not None:
                forced_mask = forced.to_numpy(zero_copy_only=False)
                probabilities[self._honoured(features.column("root_service"), forced_mask)] = 1.0
            keep = self._systematic(labels, probabilities)
        trace_ids = features.column("trace_id").filter(pa.array(keep))
        return with_weights(traces, trace_ids, 1.0 / probabilities[keep])

    # -- the policy ------------------------------------------------------------------------------------

    def _probabilities(
        self, features: pa.RecordBatch, values: pa.Table | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Keep probability and sampling stratum per trace; ``values`` is None when the rate keeps every trace.
        Budgets are fractions of all traces, and each class's share of traffic is a running average over many
        decisions, so a small batch is decided as fairly as a large one."""
        policy = self.policy
        n = features.num_rows
        if values is None:  # every trace is kept
            return np.ones(n), np.zeros(n, dtype=np.int64)
        rate = policy.sample_rate
        has_error = features.column("has_error").to_numpy(zero_copy_only=False).astype(bool)
        tail_band, warming, strata = self._latency_classes(features)
        tail = tail_band >= 0
        # Why a trace is new, so a flood of one kind (shapes made of random parts) does not crowd out another
        # (the first traces of a new version): 0 new shape, 1 operation warming up, 2 new attribute value.
        novelty = np.full(n, -1, dtype=np.int64)
        novelty[self._novel_shapes(features)] = 0
        novelty[warming] = 1
        novelty[self._novel_values(features, values)] = 2
        tail &= ~has_error
        novel = (novelty >= 0) & ~(has_error | tail)
        body = ~(has_error | novel | tail)
        p = np.zeros(n)

        # Errors first: all of them while they fit their share, else an equal ration per signature.
        signatures = pc.fill_null(features.column("error_signature").filter(pa.array(has_error)), "")
        signature_ids = np.array([self._id(("error", s)) for s in signatures.to_pylist()], dtype=np.int64)
        p[has_error], error_spend = self._errors.allocate(signature_ids, n, policy.error_share * rate)
        # Then the latency tail, with what is left once the body has its minimum (and never nothing).
        room = max(policy.min_body_share * rate, rate - error_spend - policy.min_body_share * rate)
        # The deepest outliers are served first.
        p[tail], tail_spend = self._tail.allocate(tail_band[tail], n, room, priority=True)
        # The first traces of anything new are kept; they are few once traffic is known, so they come out of the
        # body's part rather than the tail's. Traffic where everything looks new (shapes made of random parts)
        # is rationed to its share instead of taking the whole budget.
        p[novel], novel_spend = self._novel.allocate(novelty[novel], n, policy.novelty_share * rate)
        # The body: what is left, an equal part for every latency stratum of every root operation.
        left = max(policy.min_body_share * rate, rate - error_spend - novel_spend - tail_spend)
        p[body], _ = self._body.allocate(strata[body], n, left)
        labels = strata.copy()
        labels[has_error] = signature_ids
        labels[novel] = [self._id(("novel", int(kind))) for kind in novelty[novel]]
        labels[tail] = [self._id(("tail", int(band))) for band in tail_band[tail]]
        # No trace is kept with a vanishing probability: its weight would swamp every estimate.
        return np.clip(p, policy.min_probability_share * rate, 1.0), labels

    def _honoured(self, root_services: pa.Array, forced: np.ndarray) -> np.ndarray:
        """Which traces asking to be kept are: all of them, but those of a root service that marks most of its
        traces so (``_UBIQUITOUS_DEBUG``), where the mark tells no trace apart from the others.
        OpenTelemetry's Python Zipkin exporter marks every sampled span debug: honoured, it would keep every
        trace of such a service whatever the rate."""
        encoded = pc.fill_null(root_services, "").dictionary_encode()
        codes = as_numpy(encoded.indices, np.int64)
        names = encoded.dictionary.to_pylist()
        traces = np.bincount(codes, minlength=len(names))
        marked = np.bincount(codes, weights=forced, minlength=len(names))
        ubiquitous = np.zeros(len(names), dtype=bool)
        for index, name in enumerate(names):
            seen, asked = self._debug_marks.get(name, (0.0, 0.0))
            if asked == 0.0 and marked[index] == 0:
                continue  # a service that never asked: nothing to remember
            seen, asked = seen + float(traces[index]), asked + float(marked[index])
            self._debug_marks[name] = (seen, asked)
            ubiquitous[index] = seen >= _DEBUG_EVIDENCE and asked > _UBIQUITOUS_DEBUG * seen
        return cast(np.ndarray, forced & ~ubiquitous[codes])

    def _id(self, key: object) -> int:
        """A stable integer for a stratum key (an error signature, a root operation, a class)."""
        return self._ids.setdefault(key, len(self._ids))

    def _systematic(self, labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
        """Systematic selection within each stratum, in arrival order: a running credit per stratum gains each
        trace's probability and a trace is kept whenever the credit crosses a whole number. The kept count of a
        stratum is then within one of its expectation, so weighted estimates are far tighter than independent
        coin flips give; each stratum's credit starts at a random point, so every trace has its probability."""
        keep = np.zeros(len(labels), dtype=bool)
        order = np.argsort(labels, kind="stable")
        boundaries = np.flatnonzero(np.diff(labels[order])) + 1
        for rows in np.split(order, boundaries):
            label = int(labels[rows[0]])
            start = self._credit.get(label)
            if start is None:
                start = float(self._rng.random())
            running = start + np.cumsum(probabilities[rows])
            previous = np.concatenate([[start], running[:-1]])
            keep[rows] = np.floor(running) > np.floor(previous)
            self._credit[label] = float(running[-1] % 1.0)
        return keep

    def _latency_classes(self, features: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per trace: its band of its root operation's tail (-1: not in the tail; 0: the deepest half of it;
        1: the rest of it; 2: just short of it, while history is short and the estimate noisy), whether its root
        operation is still warming up, and its latency stratum."""
        n = features.num_rows
        tail = np.full(n, -1, dtype=np.int64)
        warming = np.zeros(n, dtype=bool)
        strata = np.zeros(n, dtype=np.int64)
        tail_rank = 1.0 - max(0.005, min(0.02, 0.6 * self.policy.sample_rate))
        stratum_bins = max(1, round(np.log(self.policy.stratum_factor) / _RANK_BIN))
        root = pc.binary_join_element_wise(
            pc.fill_null(features.column("root_service"), ""),
            pc.fill_null(features.column("root_operation"), ""),
            "\x1f",
        ).dictionary_encode()
        codes = root.indices.to_numpy(zero_copy_only=False)
        durations = features.column("duration_ns").to_numpy(zero_copy_only=False)
        order = np.argsort(codes, kind="stable")
        groups = np.split(order, np.flatnonzero(np.diff(codes[order])) + 1)
        keys = [root.dictionary[int(codes[rows[0]])].as_py() for rows in groups]
        if len(self._latency) >= _MAX_OPERATIONS:
            self._forget_operations(below=_SEEN_ONCE)
        # When histograms run short, the busiest new root operations of the round are the ones that get one.
        new = sorted(
            (i for i, key in enumerate(keys) if key not in self._latency), key=lambda i: -len(groups[i])
        )
        for i in new[: max(0, _MAX_OPERATIONS - len(self._latency))]:
            self._latency[keys[i]] = _OperationLatency()
        for key, rows in zip(keys, groups, strict=True):
            latency = self._latency.get(key)
            bins = _OperationLatency.bins(durations[rows])
            strata[rows] = (1 + self._id(("operation", key))) * _RANK_BINS + bins // stratum_bins
            if latency is None:  # no history to rank against: decided as a new one
                warming[rows[: self.policy.warmup_traces]] = True
                continue
            still_warming = max(0, self.policy.warmup_traces - int(latency.total))
            warming[rows[:still_warming]] = True
            # Rank against history and this round together: a first round can be thousands of traces.
            latency.add(bins)
            if latency.total >= self.policy.warmup_traces:
                ranks = latency.ranks(bins)
                widened = 1.0 - min(0.1, 20.0 / latency.total)
                tail[rows] = np.select(
                    [ranks >= (1.0 + tail_rank) / 2, ranks >= tail_rank, ranks >= widened],
                    [0, 1, 2],
                    default=-1,
                )
        return tail, warming, strata

    def _forget_operations(self, below: float) -> None:
        """Forget the latency history of root operations with fewer than ``below`` (decayed) traces."""
        quiet = [key for key, latency in self._latency.items() if latency.total < below]
        for key in quiet:
            del self._latency[key]

    def _novel_shapes(self, features: pa.RecordBatch) -> np.ndarray:
        """The first ``novelty_keeps`` traces of every shape never seen before."""
        shapes = features.column("shape").to_numpy(zero_copy_only=False)
        distinct, inverse, counts = np.unique(shapes, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        keys = distinct.tolist()
        seen = np.fromiter(
            (self._seen_shapes.get(shape, 0.0) for shape in keys), dtype=np.float64, count=len(keys)
        )
        allowance = np.where(seen < self.policy.novelty_keeps, self.policy.novelty_keeps - seen, 0.0)
        # Each trace's place among its shape's traces, in arrival order.
        order = np.argsort(inverse, kind="stable")
        place = np.empty(len(shapes), dtype=np.int64)
        place[order] = np.arange(len(shapes)) - np.repeat(np.cumsum(counts) - counts, counts)
        self._seen_shapes.update(zip(keys, (seen + counts).tolist(), strict=True))
        return cast(np.ndarray, place < allowance.astype(np.int64)[inverse])

    def _novel_values(self, features: pa.RecordBatch, values: pa.Table) -> np.ndarray:
        """The first ``novelty_keeps`` traces carrying each value never seen before of a change-marking key."""
        novel = np.zeros(features.num_rows, dtype=bool)
        if values.num_rows == 0:
            return novel
        pairs = values.group_by(["key", "value"]).aggregate([("trace_id", "count")])
        labels = None
        for key, value, count in zip(
            pairs.column("key").to_pylist(),
            pairs.column("value").to_pylist(),
            pairs.column("trace_id_count").to_pylist(),
            strict=True,
        ):
            seen = self._seen_values.get((key, value), 0.0)
            self._seen_values[(key, value)] = seen + count
            if seen >= self.policy.novelty_keeps:
                continue
            if labels is None:
                labels = pc.binary_join_element_wise(values.column("key"), values.column("value"), "\x1f")
            carriers = values.column("trace_id").filter(pc.equal(labels, f"{key}\x1f{value}"))
            first = carriers[: int(self.policy.novelty_keeps - seen)]
            novel |= pc.is_in(features.column("trace_id"), value_set=first).to_numpy(zero_copy_only=False)
        return novel

    def _decay(self) -> None:
        """Halve every statistic once per half-life, forgetting what no longer happens."""
        now = self._clock()
        if now - self._last_decay < self.policy.half_life_s:
            return
        self._last_decay = now
        for latency in self._latency.values():
            latency.counts *= 0.5
        self._debug_marks = {
            name: (seen * 0.5, asked * 0.5)
            for name, (seen, asked) in self._debug_marks.items()
            if seen >= 2.0
        }
        self._forget_operations(below=_QUIET_OPERATION)
        if len(self._ids) > _MAX_REMEMBERED:
            # Strata of root operations and error signatures are numbered as they come: numbers for ones long
            # gone would pile up with span names or messages that carry ids. Start the numbering over, with the
            # statistics kept under the old numbers (credits, shares), which rebuild within a half-life.
            self._ids.clear()
            self._credit.clear()
            self._errors.share.clear()
            self._body.share.clear()
        # Shapes and values stay known (halved, never below the novelty bar): a host seen an hour ago is not new.
        floor = float(self.policy.novelty_keeps)
        for shape, count in self._seen_shapes.items():
            self._seen_shapes[shape] = max(floor, count * 0.5)
        for pair, count in self._seen_values.items():
            self._seen_values[pair] = max(floor, count * 0.5)
        for table in (self._seen_shapes, self._seen_values):
            if len(table) > _MAX_REMEMBERED:  # unbounded values (pod names...) must not grow memory forever
                keep = sorted(table.items(), key=lambda item: item[1], reverse=True)[: _MAX_REMEMBERED // 2]
                table.clear()
                table.update(keep)  # type: ignore[arg-type]


class _ClassRates:
    """Running share of all traces that falls in each label of one class (signatures, strata...).

    An exponential average over traces, not over calls: a label's share moves by how many traces were seen.
    """

    def __init__(self, half_life_traces: float = 10_000.0) -> None:
        self.half_life_traces = half_life_traces
        self.share: dict[object, float] = {}
        self.seen = 0

    def allocate(
        self, labels: np.ndarray, n: int, budget: float, priority: bool = False
    ) -> tuple[np.ndarray, float]:
        """Update the shares with ``labels`` (one per trace of this class, out of ``n`` traces in all), then
        give each label an equal part of ``budget`` (a fraction of all traces) by water-filling, or with
        ``priority``, serve the labels in increasing order.

        Returns each trace's keep probability and the fraction of all traffic the class is expected to keep.
        """
        if n == 0:
            return np.zeros(0), 0.0
        # A plain running average until a half-life of traces was seen, then an exponential one.
        self.seen += n
        weight = max(n / self.seen, 1.0 - 0.5 ** (n / self.half_life_traces))
        distinct, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
        for label in self.share:
            self.share[label] *= 1.0 - weight
        for label, count in zip(distinct.tolist(), counts.tolist(), strict=True):
            self.share[label] = self.share.get(label, 0.0) + weight * count / n
        if len(self.share) > _MAX_REMEMBERED:
            self.share = dict(sorted(self.share.items(), key=lambda item: item[1])[-_MAX_REMEMBERED // 2 :])
        if len(labels) == 0:
            return np.zeros(0), 0.0
        own = np.array([self.share[label] for label in distinct.tolist()])
        if priority:
            # Lower labels first, each taking what it needs of what is left.
            granted: dict[object, float] = {}
            remaining = budget
            for label, share in sorted(self.share.items(), key=lambda item: item[0]):  # type: ignore[arg-type, return-value]
                granted[label] = min(share, remaining)
                remaining -= granted[label]
            keep = np.array([granted[label] for label in distinct.tolist()]) / np.maximum(own, 1e-12)
            return np.minimum(1.0, keep)[inverse], budget - remaining
        shares = np.fromiter(self.share.values(), dtype=np.float64, count=len(self.share))
        cap = _water_level(shares, budget)
        keep = np.minimum(1.0, cap / np.maximum(own, 1e-12))
        return keep[inverse], float(np.minimum(shares, cap).sum())


def _water_level(shares: np.ndarray, budget: float) -> float:
    """The cap c with sum(min(share, c)) == budget (every share fits: the largest share)."""
    ordered = np.sort(shares)
    remaining = budget
    for index, share in enumerate(ordered):
        fair = remaining / (len(ordered) - index)
        if share > fair:
            return fair
        remaining -= share
    return float(ordered[-1]) if len(ordered) else 0.0
