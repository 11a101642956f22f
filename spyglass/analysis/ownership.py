"""Which team owns a service: from a configured map first, else from what the service says about itself.

Services tell their owner through resource attributes (``service.namespace`` in OpenTelemetry's semantic
conventions, or a ``team`` / ``service.owner`` attribute); an operator can override or fill gaps with a map
(``--owners FILE``, JSON ``{"service": "team"}``). Every finding of ``explain`` names the owner this way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa

from spyglass.model.arrow_sql import query_arrow

#: Resource attributes naming a service's owning team, most specific first.
OWNER_ATTRIBUTES = ("team", "service.owner", "owner", "service.namespace")


class Ownership:
    """Resolves service -> owning team."""

    def __init__(self, configured: Mapping[str, str] | None = None) -> None:
        self.configured = dict(configured or {})
        self.learned: dict[str, str] = {}
        #: When owners were last learned from recent spans (monotonic ns; 0: never), and for which services.
        self.learned_at_ns = 0
        self.looked_for: set[str] = set()

    @classmethod
    def from_file(cls, path: Path | None) -> Ownership:
        """Read ``{"service": "team", ...}``; a missing path means no configured owners."""
        if path is None:
            return cls()
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise ValueError(f"{path}: expected a JSON object mapping service names to team names")
        return cls(data)

    def learn(self, spans: pa.Table) -> None:
        """Pick up owners from the resources of these spans (any ``SPAN_SCHEMA`` table with ``resource``). When
        a service's resources disagree, the owner most rows name wins (then the first by name), so the answer
        does not depend on which rows came first."""
        if spans.num_rows == 0 or "resource" not in spans.column_names:
            return
        owner = "coalesce(" + ", ".join(f"resource['{key}']" for key in OWNER_ATTRIBUTES) + ")"
        rows = query_arrow(
            f"SELECT service, {owner} AS team, count(*) AS n FROM spans WHERE {owner} <> '' GROUP BY ALL",  # noqa: S608
            spans=spans.select(["service", "resource"]),
        ).to_pylist()
        best: dict[str, tuple[int, str]] = {}
        for row in rows:
            rank = (row["n"], row["team"])
            held = best.get(row["service"])
            if held is None or rank[0] > held[0] or (rank[0] == held[0] and rank[1] < held[1]):
                best[row["service"]] = rank
        self.learned.update({service: team for service, (_, team) in best.items()})

    def owner(self, service: str | None) -> str | None:
        """The owning team of a service, or None when nobody said."""
        if service is None:
            return None
        return self.configured.get(service) or self.learned.get(service)
