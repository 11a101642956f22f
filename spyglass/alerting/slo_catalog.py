"""The SLOs being watched: those of the ``--slos`` file (read at start, read-only through the API) and those
posted through the API, kept in ``<data-dir>/slos.json`` so they survive a restart.

The file is YAML or JSON (YAML holds JSON): a list of SLO objects, or ``{"slos": [...]}``. Ids are unique
across both; an SLO kept from the API whose id the file now defines is set aside (with a warning) while the file
defines it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import yaml

from spyglass.analysis.slo import InvalidSlo, Slo, slo_from_fields

log = logging.getLogger(__name__)

STORE_FILE_NAME = "slos.json"


class SloConflict(Exception):
    """The change would clash with an SLO already defined; the message says which and where."""


def read_slo_file(path: Path) -> list[Slo]:
    """Every SLO of a YAML or JSON file; ``InvalidSlo`` names the first bad one and its field."""
    try:
        document = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise InvalidSlo(f"{path}: cannot read it: {error}") from error
    if isinstance(document, dict) and set(document) == {"slos"}:
        document = document["slos"]
    if document is None:
        return []
    if not isinstance(document, list):
        raise InvalidSlo(f"{path}: expected a list of SLOs (or {{slos: [...]}})")
    slos: list[Slo] = []
    for number, fields in enumerate(document, start=1):
        name = fields.get("name") if isinstance(fields, dict) else None
        try:
            slo = slo_from_fields(fields, defined_in=str(path))
        except InvalidSlo as error:
            raise InvalidSlo(f"{path}: SLO #{number}{f' ({name})' if name else ''}: {error}") from None
        if any(other.id == slo.id for other in slos):
            raise InvalidSlo(f"{path}: SLO #{number}: id {slo.id!r} is used twice")
        slos.append(slo)
    return slos


class SloCatalog:
    """The SLOs of the file and of the API, by id (thread-safe)."""

    def __init__(self, file_slos: list[Slo], stored_at: Path) -> None:
        self.stored_at = stored_at
        self._lock = threading.Lock()
        self._slos: dict[str, Slo] = {slo.id: slo for slo in file_slos}
        for slo in self._read_stored():
            if slo.id in self._slos:
                log.warning(
                    "SLO %r posted through the API is set aside: %s defines that id",
                    slo.id,
                    self._slos[slo.id].defined_in,
                )
                continue
            self._slos[slo.id] = slo

    def all(self) -> list[Slo]:
        """Every SLO, file-defined first, each group in the order defined."""
        with self._lock:
            return list(self._slos.values())

    def get(self, slo_id: str) -> Slo | None:
        with self._lock:
            return self._slos.get(slo_id)

    def add(self, slo: Slo) -> None:
        """Keep an SLO posted through the API; ``SloConflict`` when its id is taken."""
        with self._lock:
            held = self._slos.get(slo.id)
            if held is not None:
                where = "through the API" if not held.read_only else f"in {held.defined_in}"
                raise SloConflict(f"an SLO with id {slo.id!r} is already defined {where}")
            self._slos[slo.id] = slo
            self._write_stored()

    def remove(self, slo_id: str) -> Slo | None:
        """Forget an SLO posted through the API (``None`` when unknown); ``SloConflict`` for a file's."""
        with self._lock:
            slo = self._slos.get(slo_id)
            if slo is None:
                return None
            if slo.read_only:
                raise SloConflict(
                    f"SLO {slo_id!r} is defined in {slo.defined_in}: remove it there (and restart) instead"
                )
            del self._slos[slo_id]
            self._write_stored()
            return slo

    def _read_stored(self) -> list[Slo]:
        if not self.stored_at.is_file():
            return []
        try:
            entries: Any = json.loads(self.stored_at.read_text())
            return [slo_from_fields(fields) for fields in entries]
        except (OSError, ValueError, TypeError) as error:
            # A damaged file must not keep the server from starting, nor be overwritten: it is moved aside.
            aside = self.stored_at.with_name(self.stored_at.name + ".damaged")
            log.error("cannot read the SLOs kept in %s (%s); moved to %s", self.stored_at, error, aside)
            os.replace(self.stored_at, aside)
            return []

    def _write_stored(self) -> None:
        """Write the API's SLOs whole, atomically (a crash leaves the old file or the new one)."""
        entries = [slo.stored() for slo in self._slos.values() if not slo.read_only]
        self.stored_at.parent.mkdir(parents=True, exist_ok=True)
        partial = self.stored_at.with_name(self.stored_at.name + ".tmp")
        partial.write_text(json.dumps(entries, indent=2) + "\n")
        os.replace(partial, self.stored_at)
