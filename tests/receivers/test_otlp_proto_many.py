"""Exports decoded together answer exactly as each decoded alone: the same spans, the same partial rejections
(counted from the export's own first span), the same refusals, whatever else is in the group."""

from __future__ import annotations

import random
import time

import pytest

from spyglass.receivers.decoders.otlp_proto import decode_otlp_proto, decode_otlp_proto_many
from spyglass.receivers.decoders.result import DecodeError, DecodeResult
from tests.support.flood import export_template
from tests.support.hostile import HostileBodies


def _alone(body: bytes) -> DecodeResult | DecodeError:
    try:
        return decode_otlp_proto(body)
    except DecodeError as error:
        return error


def _same(together: DecodeResult | DecodeError, alone: DecodeResult | DecodeError) -> None:
    assert type(together) is type(alone)
    if isinstance(alone, DecodeError):
        assert str(together) == str(alone)
        return
    assert isinstance(together, DecodeResult)
    assert (together.rejected_spans, together.error_message) == (alone.rejected_spans, alone.error_message)
    assert together.batch.schema == alone.batch.schema
    assert together.batch.to_pylist() == alone.batch.to_pylist()


@pytest.mark.parametrize("seed", range(12))
def test_groups_of_valid_odd_and_hostile_exports_answer_as_each_alone(seed: int) -> None:
    rng = random.Random(seed)
    hostile = HostileBodies("traces_proto", seed, time.time_ns(), transport="grpc")
    groups = 0
    for index in range(40):
        size = rng.choice([2, 3, 5, 8])
        group = []
        for slot in range(size):
            if rng.random() < 0.5:
                group.append(hostile.body(index * 8 + slot).content)
            else:
                spans = rng.choice([0, 1, 10, 200])
                group.append(export_template(spans, rng.randbytes(8)) if spans else b"")
        answers = decode_otlp_proto_many(group)
        assert len(answers) == len(group)
        for body, answer in zip(group, answers, strict=True):
            _same(answer, _alone(body))
        groups += 1
    assert groups == 40


def test_one_export_of_bad_wire_data_refuses_only_itself() -> None:
    good = export_template(50, b"together")
    answers = decode_otlp_proto_many([good, b"\xff\x00 not protobuf" * 5, good])
    assert [type(a).__name__ for a in answers] == ["DecodeResult", "DecodeError", "DecodeResult"]
    assert all(a.batch.num_rows == 50 for a in answers if isinstance(a, DecodeResult))
