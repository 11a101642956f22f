"""One finding of explain: a typed record while explain ranks and folds, the JSON object of the API at the end."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pyarrow as pa

#: A finding explaining less than this share of the symptom's growth is not shown.
MIN_SCORE = 0.05


class Kind(StrEnum):
    """What a finding names (the API reference lists these strings)."""

    #: A value: what requests carried (a customer, a flag) or where spans ran (a version, a node, a zone).
    ATTRIBUTE = "attribute"
    #: Where time went: the own (exclusive) time of a (service, operation) grew, or its errors did.
    OPERATION = "operation"
    #: A child operation called many times under one parent, more than before.
    N_PLUS_ONE = "n_plus_one"
    #: A parent whose children overlapped before and run one after another now.
    SEQUENTIAL = "sequential"
    #: Where failed requests' errors originate (the deepest failed span).
    ERROR_SOURCE = "error_source"


#: Kinds that name a mechanism in one operation (how it does its work), not a value.
MECHANISMS = frozenset({Kind.N_PLUS_ONE, Kind.SEQUENTIAL, Kind.ERROR_SOURCE})


@dataclass
class Finding:
    """A candidate cause with its score (the share of the symptom's growth it explains) and evidence."""

    kind: Kind
    score: float
    service: str
    evidence: dict[str, Any]
    operation: str | None = None
    key: str | None = None
    value: str | None = None
    #: The score before clipping to 1 (two values that both "explain all of it" may still differ twofold).
    raw_score: float = 0.0
    #: A resource value judged by the spans that ran there (``places.py``), not by whole requests.
    place: bool = False
    #: The services whose own findings this place says why of.
    why_services: tuple[str, ...] = ()
    #: Names where time went (an uninstrumented peer, relabelled from its caller's operation): ranks like an
    #: operation, after the value that explains it.
    where: bool = False
    summary: str = ""
    owner: str | None = None
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def identity(self) -> tuple[str, str, str | None, str | None, str | None]:
        return (self.kind, self.service, self.key, self.value, self.operation)

    @property
    def label(self) -> str:
        """How another finding's evidence names this one (``also``)."""
        if self.key is not None:
            return f"{self.service} {self.key}={self.value}"
        return f"{self.service} operation '{self.operation}'"

    def to_json(self) -> dict[str, Any]:
        """The API's object, in its documented field order."""
        out: dict[str, Any] = {"kind": str(self.kind), "score": round(self.score, 4), "summary": self.summary}
        out["service"] = self.service
        if self.operation is not None:
            out["operation"] = self.operation
        if self.key is not None:
            out["key"], out["value"] = self.key, self.value
        out["owner"] = self.owner
        out["evidence"] = self.evidence
        out["examples"] = self.examples
        return out


def values_table(findings: list[Finding]) -> pa.Table:
    """The findings' values as a table for SQL: ``i`` (the index in ``findings``), ``service``, ``k``, ``v``."""
    return pa.table(
        {
            "i": list(range(len(findings))),
            "service": [f.service for f in findings],
            "k": [f.key for f in findings],
            "v": [f.value for f in findings],
        }
    )
