"""Attribute slots: a key's values coded in a column of its own answer as the maps do, on randomized spans
written in many writes (late spans, repeated keys, a value on the span and on its resource, keys appearing late,
a key that takes too many values), across reopening and compaction."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import spyglass.store.attribute_slots as attribute_slots
from spyglass.model.builder import SpanBatchBuilder
from spyglass.model.schema import SpanKind, StatusCode
from spyglass.model.sketch import bucket_index
from spyglass.store.attribute_cells import CELL_SPAN_COLUMNS, attribute_cells_of
from spyglass.store.attribute_slots import BIN_COLUMN, OUTCOME_COLUMN, AttributeSlots, slot_column
from spyglass.store.duckdb_store import DuckDBStore
from spyglass.store.protocol import ScanFilter, TraceQuery
from spyglass.store.top_values import TopValues
from tests.support.folding import cell_rows, folded, kept_values

from .conftest import BASE_NS, MS, SECOND, stored

KEYS = ["customer.id", "region", "http.route", "tier", "late.key", "request.id"]


def random_spans(
    rng: random.Random, count: int, start_ns: int, spread_ns: int, *, late_key: bool
) -> pa.Table:
    """Spans whose attributes and resources draw from ``KEYS``: the same key on span and resource, a request id
    with a value per span, ``late.key`` only when asked. (A map holds each key once: the receivers keep the first
    of repeats, and the store refuses them.)"""
    builder = SpanBatchBuilder()
    for _ in range(count):
        attrs: list[tuple[str, str]] = []
        for key in rng.sample(KEYS[:4], rng.randint(0, 4)):
            attrs.append((key, f"{key[:2]}{rng.randint(0, 40)}"))
        if late_key and rng.random() < 0.5:
            attrs.append(("late.key", f"L{rng.randint(0, 5)}"))
        attrs.append(("request.id", f"r{rng.getrandbits(40)}"))
        resource = [("service.name", rng.choice(["api", "db"])), ("region", f"eu-{rng.randint(0, 3)}")]
        if rng.random() < 0.3:
            resource.append(("tier", "gold"))
        builder.add(
            trace_id=rng.randbytes(16),
            span_id=rng.randbytes(8),
            parent_span_id=None,
            service=resource[0][1],
            name=rng.choice(["GET /a", "POST /b"]),
            kind=rng.choice([SpanKind.SERVER, SpanKind.CLIENT]),
            start_ns=start_ns + rng.randrange(spread_ns),
            duration_ns=int(rng.lognormvariate(16, 1.5)) if rng.random() > 0.02 else 0,
            status_code=StatusCode.ERROR if rng.random() < 0.1 else StatusCode.UNSET,
            attributes=(attrs, []),
            resource=(resource, []),
        )
    return stored(builder.finish(), sample_weight=rng.choice([1.0, 1.0, 4.0]))


def one_span(attributes: list[tuple[str, str]], start_ns: int) -> pa.Table:
    """A single root span of ``api`` with these attributes."""
    builder = SpanBatchBuilder()
    builder.add(
        trace_id=b"t" * 16,
        span_id=b"s" * 8,
        parent_span_id=None,
        service="api",
        name="GET /a",
        kind=SpanKind.SERVER,
        start_ns=start_ns,
        duration_ns=MS,
        attributes=(attributes, []),
    )
    return stored(builder.finish())


def rows(table: pa.Table) -> list[tuple[object, ...]]:
    return sorted(tuple(row.values()) for row in table.to_pylist())


def assert_cells_as_the_maps_give_them(store: DuckDBStore, window: tuple[int, int]) -> None:
    for key in [*KEYS, "service.name", "absent.key"]:
        for step_ns in (None, 7 * SECOND):
            for filters in (None, ScanFilter(service="api"), ScanFilter(kinds=(SpanKind.CLIENT,))):
                got = store.attribute_cells(key, *window, step_ns, filters)
                spans = store.scan(CELL_SPAN_COLUMNS, *window, filters)
                expected = attribute_cells_of(spans, key, window[0], step_ns)
                assert rows(got) == rows(expected), (key, step_ns, filters)
        assert_folded_as_after_summing(store, key, window)


def assert_folded_as_after_summing(store: DuckDBStore, key: str, window: tuple[int, int]) -> None:
    """With the quietest values folded (``TopValues``) and another part of the window added before the store's:
    the store's answer and the other part fold as the definition does after summing."""
    for step_ns in (None, 7 * SECOND):
        earlier = attribute_cells_of(store.scan(CELL_SPAN_COLUMNS, *window), key, window[0], step_ns)
        unfolded = cell_rows(store.attribute_cells(key, *window, step_ns))
        for limit in (3, 9):
            top = TopValues(limit, "__other__")
            top.add(earlier)
            got = top.settle(store.attribute_cells(key, *window, step_ns, None, top))
            kept = kept_values([cell_rows(earlier), unfolded], limit, "__other__")
            assert folded(cell_rows(got), None, "__other__") == folded(unfolded, kept, "__other__"), (
                key,
                limit,
            )
            assert folded(cell_rows(top.fold(earlier)), None, "__other__") == folded(
                cell_rows(earlier), kept, "__other__"
            )


def assert_searches_as_the_maps_give_them(store: DuckDBStore, windows: list[tuple[int, int]]) -> None:
    """A search for a key's value finds the traces starting in the window with a span carrying it, on the span
    or its resource, whether the slot registry lets the store answer at once (no span has it) or not: values
    on spans, values on resources behind a span's own value (``tier: gold``), and values nobody has."""
    spans = store.scan(["trace_id", "start_ns", "attributes", "resource"], 0, 2**62).to_pylist()
    first: dict[bytes, int] = {}
    carried: dict[tuple[str, str], set[bytes]] = {}
    for span in spans:
        trace_id = span["trace_id"]
        first[trace_id] = min(first.get(trace_id, span["start_ns"]), span["start_ns"])
        for pair in [*span["attributes"], *span["resource"]]:
            carried.setdefault(pair, set()).add(trace_id)
    rng = random.Random(7)
    asked = rng.sample(sorted(carried), 12) + [
        ("tier", "gold"),
        ("region", "eu-1"),
        ("customer.id", "only-before"),
    ]
    asked += [(key, "nobody has this") for key in [*KEYS, "absent.key"]]
    for key, value in asked:
        for window in windows:
            found = store.find_traces(
                TraceQuery(attributes=((key, value),), start_ns=window[0], end_ns=window[1], limit=10**6)
            )
            expected = {t for t in carried.get((key, value), set()) if window[0] <= first[t] < window[1]}
            assert set(found.column("trace_id").to_pylist()) == expected, (key, value, window)


def test_plan_codes_each_span_as_the_maps_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Per span and key: the span's first value, else its resource's first; nothing where neither has it. A plan
    changes nothing until applied, and a key past ``MAX_SLOT_VALUES`` values is retired."""
    monkeypatch.setattr(attribute_slots, "MAX_SLOT_VALUES", 1000)
    rng = random.Random(7)
    slots = AttributeSlots()
    asked: list[int] = []
    for write in range(6):
        spans = random_spans(rng, 400, BASE_NS, 60 * SECOND, late_key=write >= 3)
        plan = slots.plan(spans, lambda: asked.append(1) or 123)  # type: ignore[func-returns-value]
        assert slots.plan(spans, lambda: 123).new_values == plan.new_values  # unchanged until applied
        slots.apply(plan)
        for key, slot in slots.slots.items():
            if slot.retired:
                assert slot_column(slot.index) not in plan.columns
                continue
            by_code = {code: value for value, code in slot.codes.items()}
            codes = plan.columns[slot_column(slot.index)].to_pylist()
            expected = pc.coalesce(
                pc.map_lookup(spans.column("attributes"), pa.scalar(key), "first"),
                pc.map_lookup(spans.column("resource"), pa.scalar(key), "first"),
            ).to_pylist()
            assert [None if code is None else by_code[code] for code in codes] == expected
        durations = np.asarray(spans.column("duration_ns"))
        failed = np.asarray(spans.column("status_code")) == StatusCode.ERROR
        assert plan.columns[OUTCOME_COLUMN].to_pylist() == (bucket_index(durations) * 2 + failed).tolist()
    assert [slot.key for slot in sorted(slots.slots.values(), key=lambda s: s.index)][-1] == "late.key"
    assert slots.slots["request.id"].retired and slots.readable("request.id") is None
    assert not slots.slots["customer.id"].retired
    assert len(asked) == 2  # once for the first keys, once when late.key came


def test_slots_are_at_most_slot_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(attribute_slots, "SLOT_COUNT", 3)
    slots = AttributeSlots()
    slots.apply(slots.plan(random_spans(random.Random(1), 50, BASE_NS, SECOND, late_key=True), lambda: None))
    assert len(slots.slots) == 3
    assert sorted(slot.index for slot in slots.slots.values()) == [0, 1, 2]


def test_the_store_answers_from_slots_as_from_the_maps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many writes, late spans before a slot's creation, a retired key; then again after reopening the file and
    after a compaction."""
    monkeypatch.setattr(attribute_slots, "MAX_SLOT_VALUES", 500)
    rng = random.Random(11)
    store = DuckDBStore(tmp_path / "slots.duckdb")
    try:
        for write in range(8):
            # late.key appears at the fourth write, in spans older than the newest stored: part of its window
            # is read from the maps, part from its slot.
            start = BASE_NS + (write - 3 if write >= 3 else write) * 20 * SECOND
            store.write(random_spans(rng, 300, start, 30 * SECOND, late_key=write >= 3))
        late = store._slots.readable("late.key")
        assert late is not None and late.covers_after_ns is not None
        assert store._slots.readable("customer.id") is not None and store._slots.slots["request.id"].retired
        window = (BASE_NS + 3 * SECOND + 7 * MS, BASE_NS + 150 * SECOND)
        assert_cells_as_the_maps_give_them(store, window)
        assert_searches_as_the_maps_give_them(
            store, [window, (late.covers_after_ns + 1, BASE_NS + 200 * SECOND)]
        )
    finally:
        store.close()
    reopened = DuckDBStore(tmp_path / "slots.duckdb")
    try:
        assert reopened._slots.readable("late.key") == late
        assert_cells_as_the_maps_give_them(reopened, window)
        reopened.write(random_spans(rng, 300, BASE_NS, 60 * SECOND, late_key=True))
        assert reopened.compact() is not None
        assert_cells_as_the_maps_give_them(reopened, window)
    finally:
        reopened.close()


def test_a_version_5_file_gets_slots_for_what_is_written_next(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    rng = random.Random(3)
    store = DuckDBStore(path)
    store.write(random_spans(rng, 200, BASE_NS, 30 * SECOND, late_key=False))
    store.write(one_span([("customer.id", "only-before")], BASE_NS + SECOND))  # no later span carries it
    store.close()
    import duckdb

    with duckdb.connect(str(path)) as connection:  # as a file from before slots
        columns = connection.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'spans'")
        for (name,) in columns.fetchall():
            if name in (BIN_COLUMN, OUTCOME_COLUMN) or name.startswith("attr_slot_"):
                connection.execute(f"ALTER TABLE spans DROP COLUMN {name}")
        for table in ("attribute_slots", "attribute_slot_values"):
            connection.execute(f"DROP TABLE {table}")
        connection.execute("UPDATE schema_version SET version = 5")
    reopened = DuckDBStore(path)
    try:
        assert not reopened._slots.slots
        reopened.write(random_spans(rng, 200, BASE_NS, 60 * SECOND, late_key=True))
        customer = reopened._slots.readable("customer.id")
        assert customer is not None and customer.covers_after_ns is not None
        assert_cells_as_the_maps_give_them(reopened, (BASE_NS, BASE_NS + 60 * SECOND))
        # Spans from before the upgrade have no codes: a value only they carry is found in their maps.
        assert "only-before" not in customer.codes
        assert_searches_as_the_maps_give_them(
            reopened,
            [(BASE_NS, BASE_NS + 60 * SECOND), (customer.covers_after_ns + 1, BASE_NS + 60 * SECOND)],
        )
    finally:
        reopened.close()


def test_a_version_6_file_reads_its_spans_outcomes_from_their_bins(tmp_path: Path) -> None:
    """Spans written before outcomes were kept have their bin only: a window of them, and one of old and new
    spans, answer as the maps do."""
    path = tmp_path / "six.duckdb"
    rng = random.Random(6)
    store = DuckDBStore(path)
    store.write(random_spans(rng, 300, BASE_NS, 30 * SECOND, late_key=False))
    store.close()
    import duckdb

    with duckdb.connect(str(path)) as connection:  # as schema version 6 wrote them: the bin, no outcome
        connection.execute(f"UPDATE spans SET {BIN_COLUMN} = {OUTCOME_COLUMN} >> 1")
        connection.execute(f"ALTER TABLE spans DROP COLUMN {OUTCOME_COLUMN}")
        connection.execute("UPDATE schema_version SET version = 6")
    reopened = DuckDBStore(path)
    try:
        assert reopened._slots.readable("customer.id") is not None
        assert_cells_as_the_maps_give_them(reopened, (BASE_NS, BASE_NS + 30 * SECOND))
        reopened.write(random_spans(rng, 300, BASE_NS + 30 * SECOND, 30 * SECOND, late_key=False))
        assert_cells_as_the_maps_give_them(reopened, (BASE_NS, BASE_NS + 60 * SECOND))
    finally:
        reopened.close()


def test_a_slot_retired_after_a_read_looked_it_up_is_read_from_the_maps(tmp_path: Path) -> None:
    """A write may retire a slot (and delete its values) between a read's look at the registry in memory and its
    query: the read then answers from the maps."""
    store = DuckDBStore(tmp_path / "race.duckdb")
    try:
        store.write(random_spans(random.Random(5), 300, BASE_NS, 30 * SECOND, late_key=True))
        slot = store._slots.readable("customer.id")
        assert slot is not None
        with store._conn.cursor() as cur:  # as the write's transaction leaves the file, before memory is told
            cur.execute("UPDATE attribute_slots SET retired = true WHERE slot = ?", [slot.index])
            cur.execute("DELETE FROM attribute_slot_values WHERE slot = ?", [slot.index])
        assert store._slots.readable("customer.id") is slot
        assert_cells_as_the_maps_give_them(store, (BASE_NS, BASE_NS + 30 * SECOND))
    finally:
        store.close()


def test_a_key_with_a_value_too_long_to_code_is_retired() -> None:
    """A payload or a query string in an attribute would make the registry hold megabytes: its key goes back to
    the maps, and the spans written with it carry no code for it."""
    slots = AttributeSlots()
    spans = random_spans(random.Random(2), 100, BASE_NS, SECOND, late_key=True)
    slots.apply(slots.plan(spans, lambda: None))
    assert slots.readable("late.key") is not None
    long_value = "<script>" + "x" * attribute_slots.MAX_SLOT_VALUE_CHARS
    plan = slots.plan(one_span([("late.key", long_value), ("region", "eu-1")], BASE_NS), lambda: None)
    late = slots.slots["late.key"]
    assert plan.retired == [late.index] and slot_column(late.index) not in plan.columns
    assert all(index != late.index for index, _, _ in plan.new_values)
    slots.apply(plan)
    assert slots.readable("late.key") is None and not late.codes
    assert slots.readable("region") is not None


def test_a_key_with_as_many_values_as_a_slot_codes_reads_every_code_back(tmp_path: Path) -> None:
    """Codes are read narrower than they are stored (``SLOT_CODE_READ_TYPE``): the highest a slot gives, for its
    ``MAX_SLOT_VALUES``-th value, sums as the maps give it."""
    values = attribute_slots.MAX_SLOT_VALUES
    builder = SpanBatchBuilder()
    for index in range(values):
        builder.add(
            trace_id=index.to_bytes(16, "big"),
            span_id=index.to_bytes(8, "big"),
            parent_span_id=None,
            service="api",
            name="GET /a",
            kind=SpanKind.SERVER,
            start_ns=BASE_NS + index * MS,
            duration_ns=(index % 97 + 1) * MS,
            status_code=StatusCode.ERROR if index % 5 == 0 else StatusCode.UNSET,
            attributes=([("customer.id", f"c{index}")], []),
        )
    store = DuckDBStore(tmp_path / "codes.duckdb")
    try:
        store.write(stored(builder.finish()))
        slot = store._slots.readable("customer.id")
        assert slot is not None and len(slot.codes) == values
        window = (BASE_NS, BASE_NS + values * MS)
        got = store.attribute_cells("customer.id", *window, None)
        expected = attribute_cells_of(store.scan(CELL_SPAN_COLUMNS, *window), "customer.id", window[0], None)
        assert rows(got) == rows(expected)
        assert f"c{values - 1}" in got.column("value").to_pylist()
    finally:
        store.close()
