"""Sampling quality: spyglass's dynamic sampler against head sampling and a fixed tail-sampling policy.

All three see the same synthetic traffic (three root operations, one with a rare slow mode, several error
signatures, one of them a storm) and keep the same fraction of traces. For each: how many traces it kept,
which share of every operation's p99 outliers and of the errors (and of the rarest error) it kept, and how
far estimates computed from the kept traces alone (weighted p99 per operation, trace counts) are from truth.

    python bench/sampling_quality.py --traces 200000 --rate 0.02
"""

from __future__ import annotations

# First: spyglass sets numpy's CPU dispatch before numpy loads, as in `spyglass serve` (numpy_sort_dispatch).
import spyglass  # noqa: F401

# isort: split

import argparse

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from figures import Figure, record

from spyglass.demo.synthetic import synthetic_traffic
from spyglass.satellite.sampler import DynamicSampler, SamplingPolicy
from spyglass.satellite.trace_features import trace_features

OPERATIONS = {
    "GET /product": (0.6, 20.0, 0.4),
    "POST /checkout": (0.3, 120.0, 0.5),
    "GET /health": (0.1, 2.0, 0.2),
}
ERRORS = {
    "connection refused to cache": 0.004,
    "card declined": 0.002,
    "db deadlock": 0.0005,
    "rare corruption": 0.0001,
}
BATCH_TRACES = 2000


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, q * cumulative[-1])])


def evaluate(name: str, truth: dict, kept: dict[bytes, float]) -> list[str]:
    ids = np.array(list(truth["trace_id"]), dtype=object)
    keep_mask = np.array([t in kept for t in ids])
    weights = np.array([kept.get(t, 0.0) for t in ids])
    outlier_shares, p99_errors = [], []
    for operation in OPERATIONS:
        of_op = truth["root_operation"] == operation
        durations = truth["duration_ns"][of_op]
        p99 = np.quantile(durations, 0.99)
        outliers = of_op & (truth["duration_ns"] > p99)
        outlier_shares.append(keep_mask[outliers].mean())
        sample = of_op & keep_mask
        estimate = (
            weighted_quantile(truth["duration_ns"][sample], weights[sample], 0.99) if sample.any() else 0.0
        )
        p99_errors.append(abs(estimate - p99) / p99)
    errors = truth["has_error"]
    rarest = np.array([s is not None and "rare corruption" in s for s in truth["error_signature"]])
    count_error = abs(weights.sum() - len(ids)) / len(ids)
    return [
        name,
        f"{keep_mask.mean():.4f}",
        f"{min(outlier_shares):.2f} / {np.mean(outlier_shares):.2f}",
        f"{keep_mask[errors].mean():.2f}",
        f"{keep_mask[rarest].mean():.2f}" if rarest.any() else "-",
        f"{max(p99_errors) * 100:.1f}%",
        f"{count_error * 100:.1f}%",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--traces", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    traffic = synthetic_traffic(rng, args.traces, OPERATIONS, ERRORS, slow_mode=("GET /product", 0.02, 10.0))
    features = trace_features(traffic)
    truth = {
        name: np.array(features.column(name).to_pylist(), dtype=object) for name in features.column_names
    }
    truth["duration_ns"] = truth["duration_ns"].astype(np.int64)
    truth["has_error"] = truth["has_error"].astype(bool)
    n = len(truth["trace_id"])

    # spyglass: decisions in batches of quiet traces, as the satellite makes them.
    sampler = DynamicSampler(SamplingPolicy(sample_rate=args.rate), seed=args.seed)
    spyglass_kept: dict[bytes, float] = {}
    for start in range(0, n, BATCH_TRACES):
        ids = pa.array(list(truth["trace_id"][start : start + BATCH_TRACES]), pa.binary(16))
        batch = traffic.filter(pc.is_in(traffic.column("trace_id"), value_set=ids))
        kept = sampler.decide(batch).group_by("trace_id").aggregate([("sample_weight", "max")])
        spyglass_kept.update(zip(kept.column(0).to_pylist(), kept.column(1).to_pylist(), strict=True))
    achieved = len(spyglass_kept) / n

    # Head sampling at the rate spyglass achieved: a coin per trace at its start, blind to what happens.
    coins = rng.random(n) < achieved
    head_kept = {t: 1.0 / achieved for t in truth["trace_id"][coins]}

    # A fixed tail policy (errors + a latency threshold + probabilistic), tuned to the same number of traces:
    # the threshold is the global p99 of the first 5% of traffic, as an operator would set it once.
    threshold = np.quantile(truth["duration_ns"][: n // 20], 0.99)
    forced = truth["has_error"] | (truth["duration_ns"] > threshold)
    rest_rate = max(0.0, (achieved * n - forced.sum()) / max(1, (~forced).sum()))
    rest = ~forced & (rng.random(n) < rest_rate)
    tail_kept = {t: 1.0 for t in truth["trace_id"][forced]}
    tail_kept.update({t: 1.0 / rest_rate for t in truth["trace_id"][rest]} if rest_rate > 0 else {})

    header = [
        "sampler",
        "kept",
        "p99 outliers kept (min/mean)",
        "errors kept",
        "rarest error kept",
        "worst p99 estimate error",
        "trace count estimate error",
    ]
    rows = [
        evaluate("spyglass dynamic", truth, spyglass_kept),
        evaluate("head (probabilistic)", truth, head_kept),
        evaluate("fixed tail policy", truth, tail_kept),
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(
        f"{n:,} traces, target rate {args.rate}, {len(OPERATIONS)} root operations, {len(ERRORS)} error signatures"
    )
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    spyglass_row = dict(zip(header, rows[0], strict=True))
    conditions = f"{n:,} traces at {args.rate}"
    record(
        [
            Figure(
                "sampling_quality",
                "p99 outliers kept (worst operation)",
                float(spyglass_row["p99 outliers kept (min/mean)"].split(" / ")[0]) * 100,
                "%",
                conditions=conditions,
            ),
            Figure(
                "sampling_quality",
                "errors kept",
                float(spyglass_row["errors kept"]) * 100,
                "%",
                conditions=conditions,
            ),
        ]
    )


if __name__ == "__main__":
    main()
