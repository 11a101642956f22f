"""Whatever the bytes, the JSON decoders answer with a valid span batch or a ``DecodeError``, nothing else."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import orjson
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st

from spyglass.model.schema import SPAN_SCHEMA
from spyglass.receivers.decoders.limits import MAX_NAME_BYTES, MAX_TIME_NS
from spyglass.receivers.decoders.otlp_json import decode_otlp_json
from spyglass.receivers.decoders.result import DecodeError, DecodeResult
from spyglass.receivers.decoders.zipkin_json import decode_zipkin_json
from spyglass.receivers.decoders.zipkin_v1 import decode_zipkin_v1_json
from tests.support.decode_answers import check_message

Decoder = Callable[[bytes], DecodeResult]
DECODERS = pytest.mark.parametrize(
    "decoder",
    [decode_otlp_json, decode_zipkin_json, decode_zipkin_v1_json],
    ids=["otlp", "zipkin", "zipkin-v1"],
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TRACE = "5b8efff798038103d269b633813fc60c"
START = 1_700_000_000_000_000_000


def check(decoder: Decoder, data: bytes) -> DecodeResult | None:
    """Decode, and hold the answer to everything a decoder promises."""
    try:
        result = decoder(data)
    except DecodeError as error:
        assert str(error), "a refusal must say why"
        # The catch-all for unforeseen errors is a safety net: anything the fuzzer reaches is foreseen.
        assert not str(error).startswith("cannot decode"), str(error)
        if currently_in_test_context():
            event("refused")
        return None
    assert isinstance(result, DecodeResult)
    batch = result.batch
    assert batch.schema.equals(SPAN_SCHEMA)
    batch.validate(full=True)
    assert result.rejected_spans >= 0
    check_message(result)
    if currently_in_test_context():  # see the mix of outcomes with pytest --hypothesis-show-statistics
        event(
            "partial success"
            if result.rejected_spans
            else f"accepted {'some' if batch.num_rows else 'no'} spans"
        )
    if batch.num_rows:
        assert batch.column("trace_id").null_count == 0 and batch.column("span_id").null_count == 0
        assert not any(value == bytes(16) for value in batch.column("trace_id").to_pylist())
        assert not any(value == bytes(8) for value in batch.column("span_id").to_pylist())
        assert pc.min(batch.column("start_ns")).as_py() > 0
        assert pc.min(batch.column("duration_ns")).as_py() >= 0
        assert pc.max(pc.add(batch.column("start_ns"), batch.column("duration_ns"))).as_py() < MAX_TIME_NS
        assert pc.max(pc.binary_length(batch.column("name"))).as_py() <= MAX_NAME_BYTES
        assert pc.min(pc.binary_length(batch.column("service"))).as_py() > 0
    return result


# -- arbitrary bytes and arbitrary JSON ----------------------------------------------------------------------------

OTLP_WORDS = [
    "resourceSpans", "scopeSpans", "spans", "resource", "scope", "attributes", "key", "value", "stringValue",
    "intValue", "boolValue", "doubleValue", "bytesValue", "arrayValue", "kvlistValue", "values", "traceId",
    "spanId", "parentSpanId", "name", "kind", "startTimeUnixNano", "endTimeUnixNano", "events", "links",
    "timeUnixNano", "status", "code", "message", "traceState", "version", "resource_spans", "scope_spans",
]  # fmt: skip
ZIPKIN_WORDS = [
    "traceId", "id", "parentId", "name", "kind", "timestamp", "duration", "localEndpoint", "remoteEndpoint",
    "serviceName", "ipv4", "ipv6", "port", "tags", "annotations", "value", "shared", "debug", "error",
]  # fmt: skip
ZIPKIN_V1_WORDS = [
    "traceId", "id", "parentId", "name", "timestamp", "duration", "debug", "annotations", "binaryAnnotations",
    "endpoint", "key", "value", "serviceName", "ipv4", "port", "cs", "sr", "ss", "cr", "ms", "mr", "ws", "wr",
    "ca", "sa", "ma", "lc", "error",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(
        [TRACE, TRACE[:16], "0" * 32, "", "SERVER", "SPAN_KIND_CLIENT", str(START), "-1", "AAE="]
    ),
)


def json_values(words: list[str], max_leaves: int = 40) -> st.SearchStrategy[Any]:
    keys = st.one_of(st.sampled_from(words), st.text(max_size=8))
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=6)
        ),
        max_leaves=max_leaves,
    )


@DECODERS
@FUZZ
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes(decoder: Decoder, data: bytes) -> None:
    check(decoder, data)


@DECODERS
@FUZZ
@given(value=json_values(OTLP_WORDS + ZIPKIN_WORDS + ZIPKIN_V1_WORDS))
def test_arbitrary_json(decoder: Decoder, value: Any) -> None:
    check(decoder, orjson.dumps(value))


@FUZZ
@given(value=st.fixed_dictionaries({"resourceSpans": st.lists(json_values(OTLP_WORDS), max_size=3)}))
def test_otlp_shaped_json(value: Any) -> None:
    check(decode_otlp_json, orjson.dumps(value))


@FUZZ
@given(
    value=st.lists(st.dictionaries(st.sampled_from(ZIPKIN_WORDS), json_values(ZIPKIN_WORDS, 6)), max_size=4)
)
def test_zipkin_shaped_json(value: Any) -> None:
    check(decode_zipkin_json, orjson.dumps(value))


@FUZZ
@given(
    value=st.lists(
        st.dictionaries(st.sampled_from(ZIPKIN_V1_WORDS), json_values(ZIPKIN_V1_WORDS, 8)), max_size=4
    )
)
def test_zipkin_v1_shaped_json(value: Any) -> None:
    check(decode_zipkin_v1_json, orjson.dumps(value))


# -- mutated valid bodies -------------------------------------------------------------------------------------------


def kv(key: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "value": value}


VALID_OTLP: dict[str, Any] = {
    "resourceSpans": [
        {
            "resource": {
                "attributes": [kv("service.name", {"stringValue": "checkout"}), kv("n", {"intValue": 3})]
            },
            "scopeSpans": [
                {
                    "scope": {"name": "lib", "version": "1"},
                    "spans": [
                        {
                            "traceId": TRACE,
                            "spanId": f"{i + 1:016x}",
                            "parentSpanId": "" if i == 0 else "0000000000000001",
                            "traceState": "a=b",
                            "name": f"op{i}",
                            "kind": i % 6,
                            "startTimeUnixNano": str(START + i),
                            "endTimeUnixNano": START + 1000 + i,
                            "attributes": [
                                kv("s", {"stringValue": "v"}),
                                kv("i", {"intValue": "42"}),
                                kv("d", {"doubleValue": 0.5}),
                                kv("b", {"boolValue": True}),
                                kv("x", {"bytesValue": "AAE="}),
                                kv("a", {"arrayValue": {"values": [{"stringValue": "e"}, {"intValue": 1}]}}),
                                kv("k", {"kvlistValue": {"values": [kv("in", {"boolValue": False})]}}),
                            ],
                            "events": [{"timeUnixNano": str(START + 5), "name": "ev", "attributes": []}],
                            "links": [{"traceId": TRACE, "spanId": "00000000000000ff", "attributes": []}],
                            "status": {"code": 2, "message": "bad"},
                        }
                        for i in range(3)
                    ],
                }
            ],
        }
    ]
}
VALID_ZIPKIN: list[dict[str, Any]] = [
    {
        "traceId": TRACE if i % 2 else TRACE[16:],
        "id": f"{i + 1:016x}",
        "parentId": "0000000000000001" if i else None,
        "name": f"op{i}",
        "kind": ["CLIENT", "SERVER", "PRODUCER", "CONSUMER"][i],
        "timestamp": START // 1000 + i,
        "duration": 25,
        "localEndpoint": {"serviceName": "web", "ipv4": "10.0.0.1", "port": 80},
        "remoteEndpoint": {"serviceName": "db", "ipv6": "::1", "port": 5432},
        "annotations": [{"timestamp": START // 1000 + i + 1, "value": "ws"}],
        "tags": {"http.path": "/", "error": "boom"},
        "shared": True,
        "debug": False,
    }
    for i in range(4)
]


_WEB = {"serviceName": "web", "ipv4": "10.0.0.1", "port": 80}
_DB = {"serviceName": "db", "ipv4": "10.0.0.2", "port": 5432}
_US = START // 1000
#: An RPC's two halves in one v1 span, a local span, and a producer, as Zipkin v1 reporters write them.
VALID_ZIPKIN_V1 = [
    {
        "traceId": TRACE[16:],
        "parentId": "eee19b7ec3c1b173",
        "id": "eee19b7ec3c1b174",
        "name": "get",
        "timestamp": _US,
        "duration": 40,
        "annotations": [
            {"timestamp": _US, "value": "cs", "endpoint": _WEB},
            {"timestamp": _US + 5, "value": "sr", "endpoint": _DB},
            {"timestamp": _US + 30, "value": "ss", "endpoint": _DB},
            {"timestamp": _US + 40, "value": "cr", "endpoint": _WEB},
            {"timestamp": _US + 20, "value": "cache miss", "endpoint": _DB},
        ],
        "binaryAnnotations": [
            {"key": "http.path", "value": "/", "endpoint": _WEB},
            {"key": "error", "value": "boom", "endpoint": _DB},
            {"key": "sa", "value": True, "endpoint": _DB},
            {"key": "ca", "value": True, "endpoint": _WEB},
        ],
    },
    {
        "traceId": TRACE[16:],
        "id": "eee19b7ec3c1b173",
        "name": "checkout",
        "timestamp": _US - 10,
        "duration": 60,
        "binaryAnnotations": [{"key": "lc", "value": "", "endpoint": _WEB}],
    },
    {
        "traceId": TRACE[16:],
        "parentId": "eee19b7ec3c1b173",
        "id": "eee19b7ec3c1b175",
        "name": "send",
        "annotations": [
            {"timestamp": _US + 45, "value": "ms", "endpoint": _WEB},
            {"timestamp": _US + 47, "value": "ws", "endpoint": _WEB},
        ],
        "binaryAnnotations": [{"key": "ma", "value": True, "endpoint": {"serviceName": "kafka"}}],
        "debug": True,
    },
]
VALID_BODIES: dict[Decoder, Any] = {
    decode_otlp_json: VALID_OTLP,
    decode_zipkin_json: VALID_ZIPKIN,
    decode_zipkin_v1_json: VALID_ZIPKIN_V1,
}


def test_the_valid_bodies_are_valid() -> None:
    otlp = check(decode_otlp_json, orjson.dumps(VALID_OTLP))
    zipkin = check(decode_zipkin_json, orjson.dumps(VALID_ZIPKIN))
    v1 = check(decode_zipkin_v1_json, orjson.dumps(VALID_ZIPKIN_V1))
    assert otlp is not None and otlp.batch.num_rows == 3 and otlp.rejected_spans == 0
    assert zipkin is not None and zipkin.batch.num_rows == 4 and zipkin.rejected_spans == 0
    assert v1 is not None and v1.batch.num_rows == 4 and v1.rejected_spans == 0  # the RPC's halves apart


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every location inside a JSON document, the root included."""
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found.extend(paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(paths(value, (*prefix, index)))
    return found


def mutate(
    document: Any, draw: Callable[[st.SearchStrategy[Any]], Any], replacements: st.SearchStrategy[Any]
) -> Any:
    """Replace, delete or duplicate a few nodes of a copy of ``document``."""
    document = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(paths(document)))
        if not path:
            document = draw(replacements)
            continue
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        action = draw(st.sampled_from(["replace", "delete", "duplicate"]))
        if action == "replace":
            parent[last] = draw(replacements)
        elif action == "delete":
            del parent[last]
        elif isinstance(parent, list):
            parent.insert(last, copy.deepcopy(parent[last]))
        else:
            parent[last] = [parent[last], parent[last]]
    return document


mutations = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.sampled_from(OTLP_WORDS + ZIPKIN_WORDS), scalars, max_size=3),
)


@FUZZ
@given(data=st.data())
def test_mutated_otlp_bodies(data: st.DataObject) -> None:
    check(decode_otlp_json, orjson.dumps(mutate(VALID_OTLP, data.draw, mutations)))


@FUZZ
@given(data=st.data())
def test_mutated_zipkin_bodies(data: st.DataObject) -> None:
    check(decode_zipkin_json, orjson.dumps(mutate(VALID_ZIPKIN, data.draw, mutations)))


v1_mutations = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.sampled_from(ZIPKIN_V1_WORDS), scalars, max_size=3),
)


@FUZZ
@given(data=st.data())
def test_mutated_zipkin_v1_bodies(data: st.DataObject) -> None:
    check(decode_zipkin_v1_json, orjson.dumps(mutate(VALID_ZIPKIN_V1, data.draw, v1_mutations)))


@DECODERS
@FUZZ
@given(data=st.data())
def test_byte_flipped_valid_bodies(decoder: Decoder, data: st.DataObject) -> None:
    body = bytearray(orjson.dumps(VALID_BODIES[decoder]))
    for _ in range(data.draw(st.integers(1, 6))):
        position = data.draw(st.integers(0, len(body) - 1))
        action = data.draw(st.sampled_from(["set", "delete", "insert"]))
        byte = data.draw(st.sampled_from(b'{}[]",:0fA-\\ \x00\xff'))
        if action == "set":
            body[position] = byte
        elif action == "delete":
            del body[position]
        else:
            body.insert(position, byte)
    check(decoder, bytes(body))
