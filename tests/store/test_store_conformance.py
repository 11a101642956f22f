"""What every store backend must do, whichever database answers: run against each backend in ``BACKENDS``."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, cast

import pyarrow as pa
import pytest

from spyglass.model.builder import SpanBatchBuilder, encode_attributes
from spyglass.model.rollups import TRACE_SUMMARY_SCHEMA
from spyglass.model.schema import STORED_SPAN_SCHEMA, SpanKind, StatusCode
from spyglass.model.span_fingerprint import fingerprint
from spyglass.store import duckdb_store, trace_ranges
from spyglass.store.attribute_cells import ATTRIBUTE_CELL_SCHEMA, CELL_SPAN_COLUMNS, attribute_cells_of
from spyglass.store.protocol import ScanFilter, Store, TraceQuery
from spyglass.store.top_values import TopValues
from tests.support.folding import cell_rows, folded, kept_values

from .conftest import BASE_NS, MS, SECOND, Corpus, TraceInfo, make_trace, span_id_of, stored, trace_id_of

SQL_LOOKING_VALUES = ["' OR 1=1 --", '"; DROP TABLE spans; --', "x') OR ('1'='1", "%", "*"]


def found(store: Store, **query: object) -> list[bytes]:
    result = store.find_traces(TraceQuery(**{"limit": 1000, **query}))  # type: ignore[arg-type]
    assert result.schema.equals(TRACE_SUMMARY_SCHEMA)
    return cast("list[bytes]", result.column("trace_id").to_pylist())


def late_span(trace_id: bytes, name: str, start_ns: int, duration_ns: int, **fields: Any) -> pa.Table:
    """One span of ``notifier`` arriving after its trace was written, a child of the trace's root."""
    late = SpanBatchBuilder()
    late.add(
        trace_id=trace_id,
        span_id=b"\x0f" * 8,
        parent_span_id=span_id_of(trace_id, 0),
        service="notifier",
        name=name,
        kind=SpanKind.CONSUMER,
        start_ns=start_ns,
        duration_ns=duration_ns,
        **fields,
    )
    return stored(late.finish())


# -- writing and reading one trace ---------------------------------------------------------------------------


def test_a_trace_is_not_read_when_the_caller_holds_exactly_its_stored_spans(store: Store) -> None:
    """``trace_unless_held`` reads the summary only when the held copies are the stored spans by count and ids,
    across writes that add to a trace; any other set (one span fewer, one exchanged, one twice) reads them."""
    trace_id = trace_id_of("held")
    spans = make_trace(trace_id)
    store.write(spans.slice(0, 4))
    store.write(spans.slice(4))  # late spans: the summary merges
    ids = spans.column("span_id")
    assert store.trace_unless_held(trace_id, fingerprint(ids)) is None
    other = make_trace(trace_id_of("other")).column("span_id")
    for held in (
        ids.slice(1),
        pa.chunked_array([ids.slice(1), other.slice(0, 1)]),
        pa.chunked_array([ids, ids.slice(0, 1)]),
    ):
        answer = store.trace_unless_held(trace_id, fingerprint(held))
        assert answer is not None and answer.equals(store.trace(trace_id))
    unknown = store.trace_unless_held(trace_id_of("unknown"), fingerprint(ids))
    assert unknown is not None and unknown.num_rows == 0


def test_trace_round_trip_is_exact(store: Store) -> None:
    trace_id = trace_id_of("round trip")
    written = make_trace(trace_id, error=True, sample_weight=0.25)
    store.write(written)

    got = store.trace(trace_id)

    assert got.schema.equals(STORED_SPAN_SCHEMA)
    assert got.equals(written.sort_by("start_ns"))
    rows = got.to_pylist()
    assert rows[0]["parent_span_id"] is None and all(r["parent_span_id"] for r in rows[1:])
    assert {r["kind"] for r in rows} == {
        SpanKind.SERVER,
        SpanKind.INTERNAL,
        SpanKind.CLIENT,
        SpanKind.PRODUCER,
        SpanKind.CONSUMER,
    }
    assert dict(rows[0]["attribute_types"])["cart.items"] == 4  # typed values keep their type
    assert rows[0]["status_message"] == "charge failed" and rows[0]["trace_state"] == "vendor=abc"
    assert [e["name"] for e in rows[1]["events"]] == ["cache miss", "rendered"]
    assert rows[5]["links"][0]["trace_id"] == trace_id_of("upstream batch")
    assert {r["sample_weight"] for r in rows} == {0.25}


def test_unknown_trace_is_empty(populated: Store) -> None:
    got = populated.trace(trace_id_of("never written"))
    assert got.num_rows == 0
    assert got.schema.equals(STORED_SPAN_SCHEMA)


def _by_trace(spans: pa.Table) -> pa.Table:
    return spans.sort_by([("trace_id", "ascending"), ("start_ns", "ascending"), ("span_id", "ascending")])


@pytest.mark.parametrize(("spans_worth_a_read", "reads_per_statement"), [(None, None), (1, 64), (1, 2)])
def test_several_traces_read_together_equal_each_read_alone(
    populated: Store,
    corpus: Corpus,
    monkeypatch: pytest.MonkeyPatch,
    spans_worth_a_read: int | None,
    reads_per_statement: int | None,
) -> None:
    # Reading every trace apart (a read's worth is one span) and in statements of two reads, as well as merged.
    if spans_worth_a_read is not None:
        monkeypatch.setattr(trace_ranges, "SPANS_WORTH_A_READ", spans_worth_a_read)
    if reads_per_statement is not None:
        monkeypatch.setattr(duckdb_store, "_READS_PER_STATEMENT", reads_per_statement)
    rng = random.Random(11)
    ids = [info.trace_id for info in corpus.traces]
    for size in (1, 2, 5, 20, len(ids)):
        asked = rng.sample(ids, size)
        unknown = [trace_id_of(f"never written {size}")]
        got = populated.traces([*asked, *unknown, *asked[:2]])  # duplicates and an unknown id
        assert got.schema.equals(STORED_SPAN_SCHEMA)
        expected = pa.concat_tables([populated.trace(trace_id) for trace_id in asked])
        assert _by_trace(got).equals(_by_trace(expected))
    assert populated.traces([]).num_rows == 0
    assert populated.traces(unknown).schema.equals(STORED_SPAN_SCHEMA)


def test_traces_read_together_include_late_spans_far_from_the_rest(store: Store) -> None:
    # A late span widens its trace's range past other traces': the ranges overlap and read as one.
    early, other = trace_id_of("early"), trace_id_of("in between")
    store.write(make_trace(early, start_ns=BASE_NS, duration_ns=100 * MS))
    store.write(make_trace(other, start_ns=BASE_NS + 10 * SECOND, duration_ns=100 * MS))
    store.write(late_span(early, "late", BASE_NS + 60 * SECOND, MS))

    got = store.traces([other, early])
    expected = pa.concat_tables([store.trace(early), store.trace(other)])
    assert got.num_rows == 13
    assert _by_trace(got).equals(_by_trace(expected))


def test_empty_write_is_a_no_op(store: Store) -> None:
    store.write(STORED_SPAN_SCHEMA.empty_table())
    assert store.span_count() == 0
    assert store.services() == []


def test_trace_split_across_writes_merges_its_summary(store: Store) -> None:
    trace_id = trace_id_of("split")
    whole = make_trace(trace_id, start_ns=BASE_NS, duration_ns=100 * MS, error=True, sample_weight=2.0)

    store.write(whole.slice(3, 3))  # children first: no root yet
    summary = store.find_traces(TraceQuery()).to_pylist()
    assert len(summary) == 1
    assert summary[0]["root_service"] is None and summary[0]["root_operation"] is None
    assert summary[0]["span_count"] == 3
    assert store.trace(trace_id).num_rows == 3

    store.write(whole.slice(0, 3))  # the root arrives later
    summary = store.find_traces(TraceQuery()).to_pylist()
    assert summary == [
        {
            "trace_id": trace_id,
            "root_service": "frontend",
            "root_operation": "GET /checkout",
            "start_ns": BASE_NS,
            "duration_ns": 100 * MS,
            "span_count": 6,
            "error_count": 3,
            "sample_weight": 2.0,
        }
    ]
    assert store.trace(trace_id).equals(whole.sort_by("start_ns"))


def test_late_span_extends_the_trace(store: Store) -> None:
    trace_id = trace_id_of("late")
    store.write(make_trace(trace_id, start_ns=BASE_NS, duration_ns=100 * MS))
    late = late_span(
        trace_id,
        "retry receipt",
        BASE_NS + 30 * SECOND,
        5 * MS,
        status_code=StatusCode.ERROR,
        attributes=encode_attributes([("retry", 1)]),
    )
    store.write(late)

    (summary,) = store.find_traces(TraceQuery()).to_pylist()
    assert summary["duration_ns"] == 30 * SECOND + 5 * MS
    assert summary["span_count"] == 7 and summary["error_count"] == 1
    assert summary["root_service"] == "frontend"
    spans = store.trace(trace_id)
    assert spans.num_rows == 7
    assert spans.column("name").to_pylist()[-1] == "retry receipt"


# -- searching traces ----------------------------------------------------------------------------------------


def test_summary_fields(populated: Store, corpus: Corpus) -> None:
    info = corpus.traces[5]
    rows = {r["trace_id"]: r for r in populated.find_traces(TraceQuery(limit=100)).to_pylist()}
    assert rows[info.trace_id] == {
        "trace_id": info.trace_id,
        "root_service": "mobile-api",
        "root_operation": "GET /cart",
        "start_ns": BASE_NS + 5 * SECOND,
        "duration_ns": 60 * MS,
        "span_count": 6,
        "error_count": 3,
        "sample_weight": 4.0,
    }


def test_no_filter_returns_every_trace_newest_first(populated: Store, corpus: Corpus) -> None:
    assert found(populated) == corpus.ids()


@pytest.mark.parametrize(
    ("query", "predicate"),
    [
        ({"service": "frontend"}, lambda t: t.root_service == "frontend"),
        ({"service": "payment"}, lambda t: False),  # payment is never the root
        ({"operation": "GET /checkout"}, lambda t: t.root_operation == "GET /checkout"),
        ({"operation": "Charge"}, lambda t: False),
        ({"attributes": (("customer.id", "cust-1"),)}, lambda t: t.customer == "cust-1"),
        ({"attributes": (("service.version", "1.5.0"),)}, lambda t: t.version == "1.5.0"),  # resource
        ({"attributes": (("host.name", "payment-7"),)}, lambda t: True),  # resource of a child span
        ({"attributes": (("http.status_code", "502"),)}, lambda t: t.error),  # typed value, text compare
        ({"attributes": (("customer.id", "nobody"),)}, lambda t: False),
        ({"attributes": (("no.such.key", "cust-1"),)}, lambda t: False),
        (
            {"attributes": (("customer.id", "cust-2"), ("service.version", "1.4.0"))},
            lambda t: t.customer == "cust-2" and t.version == "1.4.0",
        ),
        ({"min_duration_ns": 100 * MS}, lambda t: t.duration_ns >= 100 * MS),
        ({"max_duration_ns": 50 * MS}, lambda t: t.duration_ns <= 50 * MS),
        (
            {"min_duration_ns": 50 * MS, "max_duration_ns": 120 * MS},
            lambda t: 50 * MS <= t.duration_ns <= 120 * MS,
        ),
        ({"error": True}, lambda t: t.error),
        ({"error": False}, lambda t: not t.error),
        ({"start_ns": BASE_NS + 5 * SECOND}, lambda t: t.start_ns >= BASE_NS + 5 * SECOND),
        ({"end_ns": BASE_NS + 5 * SECOND}, lambda t: t.start_ns < BASE_NS + 5 * SECOND),
        (
            {"start_ns": BASE_NS + 5 * SECOND, "end_ns": BASE_NS + 10 * SECOND},
            lambda t: BASE_NS + 5 * SECOND <= t.start_ns < BASE_NS + 10 * SECOND,
        ),
        ({"start_ns": BASE_NS + 100 * SECOND}, lambda t: False),
        (
            {
                "service": "frontend",
                "operation": "GET /cart",
                "error": False,
                "min_duration_ns": 50 * MS,
                "attributes": (("service.version", "1.5.0"),),
                "start_ns": BASE_NS + 10 * SECOND,
                "end_ns": BASE_NS + 28 * SECOND,
            },
            lambda t: (
                t.root_service == "frontend"
                and t.root_operation == "GET /cart"
                and not t.error
                and t.duration_ns >= 50 * MS
                and t.version == "1.5.0"
                and BASE_NS + 10 * SECOND <= t.start_ns < BASE_NS + 28 * SECOND
            ),
        ),
        (
            {
                "attributes": (("customer.id", "cust-3"),),
                "start_ns": BASE_NS + 6 * SECOND,
                "end_ns": BASE_NS + 20 * SECOND,
            },
            lambda t: t.customer == "cust-3" and BASE_NS + 6 * SECOND <= t.start_ns < BASE_NS + 20 * SECOND,
        ),
    ],
)
def test_find_traces_filters(
    populated: Store, corpus: Corpus, query: dict[str, object], predicate: Callable[[TraceInfo], bool]
) -> None:
    assert found(populated, **query) == corpus.ids(predicate)


@pytest.mark.parametrize(
    ("query", "predicate"),
    [
        ({"service": "payment"}, lambda t: True),
        ({"service": "payment", "operation": "Charge"}, lambda t: True),
        ({"service": "frontend", "operation": "Charge"}, lambda t: False),  # one span must carry both
        ({"service": "frontend", "operation": "render cart"}, lambda t: t.root_service == "frontend"),
        # span durations: the shortest spans of traces 0 and 1 take at most 1 ms
        ({"max_duration_ns": 1 * MS}, lambda t: t.duration_ns <= 20 * MS),
        (
            {"service": "notifier", "attributes": (("customer.id", "cust-0"),), "error": True},
            lambda t: t.customer == "cust-0" and t.error,
        ),
    ],
)
def test_find_traces_matching_any_span(
    populated: Store, corpus: Corpus, query: dict[str, object], predicate: Callable[[TraceInfo], bool]
) -> None:
    assert found(populated, match_any_span=True, **query) == corpus.ids(predicate)


def test_limit_keeps_the_newest(populated: Store, corpus: Corpus) -> None:
    assert found(populated, limit=5) == corpus.ids()[:5]
    assert (
        found(populated, service="frontend", limit=3)
        == corpus.ids(lambda t: t.root_service == "frontend")[:3]
    )
    assert len(populated.find_traces(TraceQuery(limit=20_000))) == len(corpus.traces)
    assert populated.find_traces(TraceQuery(limit=0)).num_rows == 0


@pytest.mark.parametrize("value", SQL_LOOKING_VALUES)
def test_sql_looking_values_match_nothing_and_break_nothing(populated: Store, value: str) -> None:
    before = (populated.span_count(), populated.services())
    for query in (
        TraceQuery(service=value),
        TraceQuery(operation=value),
        TraceQuery(service=value, operation=value, match_any_span=True),
        TraceQuery(attributes=((value, "cust-1"),)),
        TraceQuery(attributes=(("customer.id", value),)),
        TraceQuery(attributes=((value, value),), start_ns=BASE_NS, end_ns=BASE_NS + 100 * SECOND),
    ):
        assert populated.find_traces(query).num_rows == 0, query
    assert populated.operations(value) == []
    filters = ScanFilter(service=value, operation=value, attributes=((value, value),))
    assert populated.scan(["span_id"], BASE_NS, BASE_NS + 100 * SECOND, filters).num_rows == 0
    with pytest.raises(ValueError):
        populated.scan([value], BASE_NS, BASE_NS + 100 * SECOND)
    assert (populated.span_count(), populated.services()) == before


def test_sql_looking_names_are_stored_and_found_as_text(store: Store) -> None:
    trace_id = trace_id_of("quoted")
    service = SQL_LOOKING_VALUES[0]
    store.write(
        make_trace(trace_id, root_service=service, root_operation=SQL_LOOKING_VALUES[1], customer="'")
    )
    store.write(make_trace(trace_id_of("plain"), start_ns=BASE_NS + SECOND))
    assert found(store, service=service, operation=SQL_LOOKING_VALUES[1]) == [trace_id]
    assert found(store, attributes=(("customer.id", "'"),)) == [trace_id]
    assert service in store.services()
    assert store.trace(trace_id).column("service").to_pylist()[0] == service


# -- catalog and scans ---------------------------------------------------------------------------------------


def test_services_and_operations(populated: Store) -> None:
    assert populated.services() == ["frontend", "mobile-api", "notifier", "payment"]
    assert populated.operations("payment") == [
        ("Charge", SpanKind.SERVER),
        ("publish receipt", SpanKind.PRODUCER),
    ]
    assert populated.operations("frontend") == [
        ("GET /cart", SpanKind.SERVER),
        ("GET /checkout", SpanKind.SERVER),
        ("POST /charge", SpanKind.CLIENT),
        ("render cart", SpanKind.INTERNAL),
    ]
    assert populated.operations("no such service") == []


def test_span_count(populated: Store, corpus: Corpus) -> None:
    assert populated.span_count() == corpus.spans.num_rows == 180


def test_scan_returns_the_named_columns_of_the_window(populated: Store) -> None:
    got = populated.scan(["trace_id", "service", "duration_ns"], BASE_NS + 5 * SECOND, BASE_NS + 10 * SECOND)
    assert got.schema.equals(
        pa.schema([STORED_SPAN_SCHEMA.field(n) for n in ("trace_id", "service", "duration_ns")])
    )
    assert got.num_rows == 5 * 6
    assert {trace_id_of(f"trace-{i}") for i in range(5, 10)} == set(got.column("trace_id").to_pylist())


def test_scan_window_is_half_open(populated: Store) -> None:
    start = BASE_NS + 5 * SECOND  # the root span of trace 5 starts exactly here
    assert populated.scan(["name"], start, start + 1).column("name").to_pylist() == ["GET /cart"]
    assert populated.scan(["name"], start, start).num_rows == 0
    assert populated.scan(["name"], start - 10 * MS, start).num_rows == 0


@pytest.mark.parametrize(
    ("filters", "rows"),
    [
        (ScanFilter(service="payment"), 10),
        (ScanFilter(operation="Charge"), 5),
        (ScanFilter(service="payment", operation="Charge"), 5),
        (ScanFilter(service="frontend", operation="Charge"), 0),
        (ScanFilter(attributes=(("customer.id", "cust-1"),)), 4),  # traces 5 and 9: root and Charge spans
        (ScanFilter(attributes=(("host.name", "payment-7"),)), 10),  # resource
        (
            ScanFilter(
                service="payment", attributes=(("host.name", "payment-7"), ("payment.amount", "12.5"))
            ),
            5,
        ),
    ],
)
def test_scan_filters(populated: Store, filters: ScanFilter, rows: int) -> None:
    got = populated.scan(
        ["service", "name", "attributes", "resource"], BASE_NS + 5 * SECOND, BASE_NS + 10 * SECOND, filters
    )
    assert got.num_rows == rows


@pytest.mark.parametrize("kinds", [(2,), (3,), (0, 1), (2, 3), (4, 5)])
def test_scan_by_span_kind(populated: Store, kinds: tuple[int, ...]) -> None:
    window = (BASE_NS, BASE_NS + 20 * SECOND)
    every = populated.scan(["span_id", "kind"], *window)
    got = populated.scan(["span_id", "kind"], *window, ScanFilter(service="payment", kinds=kinds))
    of_payment = populated.scan(["span_id", "kind"], *window, ScanFilter(service="payment"))
    assert sorted(got.column("span_id").to_pylist()) == sorted(
        row["span_id"] for row in of_payment.to_pylist() if row["kind"] in kinds
    )
    alone = populated.scan(["kind"], *window, ScanFilter(kinds=kinds)).column("kind").to_pylist()
    assert sorted(alone) == sorted(k for k in every.column("kind").to_pylist() if k in kinds)
    assert set(every.column("kind").to_pylist()) >= {2, 3}  # the corpus has servers and clients


@pytest.mark.parametrize(
    "key", ["customer.id", "host.name", "payment.amount", "cart.size", "absent.key", *SQL_LOOKING_VALUES]
)
@pytest.mark.parametrize("step_ns", [None, SECOND, 3 * SECOND])
@pytest.mark.parametrize(
    "filters",
    [None, ScanFilter(service="payment"), ScanFilter(operation="Charge"), ScanFilter(kinds=(3,))],
)
def test_attribute_cells_are_the_scanned_spans_summed(
    populated: Store, key: str, step_ns: int | None, filters: ScanFilter | None
) -> None:
    """Whether the backend sums in its own SQL or from its scan in Arrow, the rows are the window's spans that
    carry the key (span attribute first, else resource), summed by value, step and bin."""
    start, end = BASE_NS + 2 * SECOND + 7 * MS, BASE_NS + 11 * SECOND
    got = populated.attribute_cells(key, start, end, step_ns, filters)
    assert got.schema.equals(ATTRIBUTE_CELL_SCHEMA)
    expected = attribute_cells_of(populated.scan(CELL_SPAN_COLUMNS, start, end, filters), key, start, step_ns)

    def rows(table: pa.Table) -> list[tuple[object, ...]]:
        return sorted(tuple(row.values()) for row in table.to_pylist())

    assert rows(got) == rows(expected)
    if key == "host.name" and filters is None:
        # Every span of the window carries its resource's host: the weights sum to the spans' weights.
        scanned = populated.scan(["sample_weight"], start, end)
        assert sum(got.column("weight").to_pylist()) == pytest.approx(
            sum(scanned.column("sample_weight").to_pylist())
        )
    if key == "absent.key" or key in SQL_LOOKING_VALUES:  # a key that looks like SQL is only a key
        assert got.num_rows == 0


@pytest.mark.parametrize("key", ["customer.id", "host.name"])
@pytest.mark.parametrize("step_ns", [None, SECOND])
@pytest.mark.parametrize("limit", [2, 3])
def test_attribute_cells_fold_the_quietest_values_as_summing_first_would(
    populated: Store, key: str, step_ns: int | None, limit: int
) -> None:
    """With ``TopValues`` and another part of the window counted first, the store's rows are its unfolded rows
    with the values not among the busiest over both parts summed as one, whatever way the backend sums."""
    start, end = BASE_NS + 2 * SECOND + 7 * MS, BASE_NS + 11 * SECOND
    earlier = populated.attribute_cells(key, BASE_NS, start, step_ns)
    unfolded = cell_rows(populated.attribute_cells(key, start, end, step_ns))
    top = TopValues(limit, "__other__")
    top.add(earlier)
    got = top.settle(populated.attribute_cells(key, start, end, step_ns, None, top))
    kept = kept_values([cell_rows(earlier), unfolded], limit, "__other__")
    assert kept is not None, len({row[0] for row in unfolded})  # the corpus has more values than the limit
    assert folded(cell_rows(got), None, "__other__") == folded(unfolded, kept, "__other__")


def test_scan_trace_share_keeps_whole_traces_the_same_on_every_call(populated: Store) -> None:
    window = (BASE_NS, BASE_NS + 100 * SECOND)

    def kept(share: float) -> dict[bytes, int]:
        ids = populated.scan(["trace_id"], *window, ScanFilter(trace_share=share)).column(0).to_pylist()
        return {trace_id: ids.count(trace_id) for trace_id in ids}

    assert len(kept(1.0)) == 30 and kept(0.0) == {}
    half = kept(0.5)
    assert 5 <= len(half) <= 25, half  # a uniform share of the 30 traces
    assert set(half.values()) == {6}  # a kept trace comes with every one of its spans
    assert kept(0.5) == half
    assert set(kept(0.25)) <= set(half)  # a smaller share keeps a subset: one hash decides


def test_scan_every_column_round_trips(populated: Store, corpus: Corpus) -> None:
    got = populated.scan(list(STORED_SPAN_SCHEMA.names), BASE_NS, BASE_NS + 100 * SECOND)
    assert got.schema.equals(STORED_SPAN_SCHEMA)
    key = [("start_ns", "ascending"), ("span_id", "ascending")]
    assert got.sort_by(key).equals(corpus.spans.sort_by(key))


def test_scan_rejects_unknown_columns(populated: Store) -> None:
    with pytest.raises(ValueError, match="nope"):
        populated.scan(["service", "nope"], BASE_NS, BASE_NS + SECOND)
    with pytest.raises(ValueError):
        populated.scan([], BASE_NS, BASE_NS + SECOND)


# -- logs ----------------------------------------------------------------------------------------------------


def _log(trace_id: bytes, time_ns: int, span_id: bytes | None, body: str | None) -> dict[str, object]:
    return {
        "time_ns": time_ns,
        "observed_time_ns": time_ns + 1,
        "trace_id": trace_id,
        "span_id": span_id,
        "severity_number": 9,
        "severity_text": "INFO",
        "body": body,
        "attributes": [("attempt", "1")],
        "attribute_types": [("attempt", 2)],
        "resource": [("service.name", "payment")],
        "resource_types": [],
        "service": "payment",
        "scope_name": None,
    }


def test_logs_come_back_by_trace_oldest_first(store: Store) -> None:
    from spyglass.model.log_schema import LOG_SCHEMA

    one, two, other = trace_id_of("log one"), trace_id_of("log two"), trace_id_of("log other")
    rows = [
        _log(one, BASE_NS + 30, b"\x02" * 8, "third"),
        _log(one, BASE_NS + 10, b"\x01" * 8, "first"),
        _log(two, BASE_NS + 20, None, '{"json": ["body"]}'),
        _log(other, BASE_NS + 15, b"\x03" * 8, None),
        _log(one, BASE_NS + 10, None, "no span, same time: comes first"),
    ]
    store.write_logs(pa.Table.from_pylist(rows, schema=LOG_SCHEMA))
    store.write_logs(LOG_SCHEMA.empty_table())

    got = store.logs_for_traces([one, two])
    assert got.schema.equals(LOG_SCHEMA)
    assert got.column("body").to_pylist() == [
        "no span, same time: comes first",
        "first",
        '{"json": ["body"]}',
        "third",
    ]
    assert got.to_pylist()[1] == rows[1]
    assert store.logs_for_traces([one], limit=2).column("body").to_pylist() == [
        "no span, same time: comes first",
        "first",
    ]
    assert store.logs_for_traces([other]).column("body").to_pylist() == [None]
    assert store.logs_for_traces([trace_id_of("no logs")]).num_rows == 0
    assert store.logs_for_traces([]).num_rows == 0
