"""A trace read whole from the store and the recall buffer: the buffer's copies of a kept trace answer for the
store only when they are exactly what it holds, and the answer is the same either way."""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from spyglass.analysis.traces import trace_spans
from spyglass.model.span_fingerprint import SpanFingerprint
from spyglass.receivers.decoders.otlp_json import decode_otlp_json
from spyglass.satellite.pipeline import Satellite, SatelliteSettings
from spyglass.satellite.sampler import with_weights
from spyglass.store.duckdb_store import DuckDBStore
from spyglass.store.store_over import StoreOver

BASE_NS = int(time.time() * 1e9) - 600 * 10**9


class _Counting(StoreOver):
    """The DuckDB store, counting the lookups its summary answered without reading spans."""

    def __init__(self, local: DuckDBStore) -> None:
        super().__init__(local)
        self.from_summary = 0

    def trace_unless_held(self, trace_id: bytes, held: SpanFingerprint) -> pa.Table | None:
        answer = self.local.trace_unless_held(trace_id, held)
        self.from_summary += answer is None
        return answer


class _StoreOnly(StoreOver):
    """The same store, always reading the spans: the answer before the buffer's copies could stand for them."""

    def trace_unless_held(self, trace_id: bytes, held: SpanFingerprint) -> pa.Table | None:
        return self.local.trace(trace_id)


class _KeepSome:
    """Keeps the traces whose id's last byte is even (about half), weight 2."""

    def decide(self, traces: pa.Table) -> pa.Table:
        ids = pc.unique(traces.column("trace_id").combine_chunks())
        kept = pa.array([i for i in ids.to_pylist() if i[-1] % 2 == 0], pa.binary(16))
        return with_weights(traces, kept, np.full(len(kept), 2.0))


def _value(rng: random.Random) -> dict[str, object]:
    kind = rng.randrange(6)
    if kind == 0:
        return {"stringValue": rng.choice(["<b>x</b>", "héllo ✓", "", "a" * rng.randrange(1, 3000)])}
    if kind == 1:
        return {"intValue": str(rng.randrange(-(2**63), 2**63))}
    if kind == 2:
        return {"doubleValue": rng.random() * 1e6}
    if kind == 3:
        return {"boolValue": rng.random() < 0.5}
    if kind == 4:
        return {"arrayValue": {"values": [{"stringValue": str(i)} for i in range(rng.randrange(3))]}}
    return {"kvlistValue": {"values": [{"key": "k", "value": {"intValue": "1"}}]}}


def _attributes(rng: random.Random) -> list[dict[str, object]]:
    keys = [rng.choice(["http.route", "customer.id", "k", "dup", "ünï"]) for _ in range(rng.randrange(6))]
    return [{"key": key, "value": _value(rng)} for key in keys]  # keys may repeat


def _trace(rng: random.Random, index: int) -> tuple[bytes, list[dict[str, object]]]:
    """One trace's spans (OTLP JSON), with odd but legal parts: 64-bit ids, a client and server sharing a span
    id, repeated attribute keys, events and links."""
    trace_id = (bytes(8) if rng.random() < 0.2 else rng.randbytes(8)) + rng.randbytes(8)
    start = BASE_NS + index * 1_000_000
    root = rng.randbytes(8)
    spans: list[dict[str, object]] = []
    for n in range(rng.randrange(1, 9)):
        span_id = root if n == 0 else rng.randbytes(8)
        parent = None if n == 0 else root
        shared = n > 0 and rng.random() < 0.2  # Zipkin-style: the server half reuses the client's id
        for kind in (3, 2) if shared else (rng.choice([1, 2, 3, 4, 5]),):
            spans.append(
                {
                    "traceId": trace_id.hex(),
                    "spanId": span_id.hex(),
                    **({"parentSpanId": parent.hex()} if parent else {}),
                    "name": f"op{rng.randrange(4)}",
                    "kind": kind,
                    "startTimeUnixNano": str(start + n * 1000),
                    "endTimeUnixNano": str(start + n * 1000 + rng.randrange(1, 10**8)),
                    "attributes": _attributes(rng),
                    "events": [{"name": "e", "timeUnixNano": str(start), "attributes": _attributes(rng)}]
                    if rng.random() < 0.3
                    else [],
                    "links": [{"traceId": rng.randbytes(16).hex(), "spanId": rng.randbytes(8).hex()}]
                    if rng.random() < 0.2
                    else [],
                    "status": {"code": rng.choice([0, 1, 2])},
                }
            )
    return trace_id, spans


def _body(service: str, spans: list[dict[str, object]]) -> bytes:
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}
    return orjson.dumps({"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": spans}]}]})


def _wait(predicate: object, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_trace_reads_the_same_from_the_buffers_copies_as_from_the_store(tmp_path: Path, seed: int) -> None:
    """Random traces (half kept) through the decoder and the satellite; some get late spans after their
    decision, some are still undecided when asked. Every trace answers the same with the buffer's copies
    standing for the stored spans as with the store read, and the copies stood for most kept traces."""
    rng = random.Random(seed)
    local = DuckDBStore(tmp_path / "s.duckdb")
    store = _Counting(local)
    satellite = Satellite(SatelliteSettings(decision_wait_s=0.2), store, _KeepSome())
    satellite.start()
    try:
        traces = [_trace(rng, index) for index in range(120)]
        for first in range(0, len(traces), 30):
            spans = [span for _, trace in traces[first : first + 30] for span in trace]
            assert satellite.submit(decode_otlp_json(_body(f"svc{first}", spans)).batch)
        _wait(lambda: satellite.counters.traces_decided == len(traces))
        satellite.flush()
        late = [trace_id for trace_id, _ in traces[:40] if rng.random() < 0.3]
        late_spans = [
            {**_trace(rng, 999)[1][0], "traceId": trace_id.hex(), "spanId": rng.randbytes(8).hex()}
            for trace_id in late
        ]
        assert satellite.submit(decode_otlp_json(_body("late", late_spans)).batch)
        _wait(lambda: satellite.counters.late_spans == len(late))
        satellite.flush()
        undecided = [_trace(rng, 2000 + n) for n in range(5)]  # asked around their decision
        ids = [trace_id for trace_id, _ in traces + undecided]
        satellite.submit(decode_otlp_json(_body("new", [s for _, t in undecided for s in t])).batch)
        store_only = _StoreOnly(local)
        for trace_id in ids:
            fast = trace_spans(store, satellite, trace_id)
            slow = trace_spans(store_only, satellite, trace_id)
            assert fast.num_rows > 0
            assert fast.equals(slow), trace_id.hex()
        kept = [trace_id for trace_id, _ in traces if trace_id[-1] % 2 == 0 and trace_id not in late]
        assert store.from_summary >= len(kept) * 0.9
        assert all(trace_spans(store, satellite, trace_id).num_rows for trace_id in late)
    finally:
        satellite.stop()
        local.close()
