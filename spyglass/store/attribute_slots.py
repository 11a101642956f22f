"""Attribute values kept a second time, as integer codes in columns of their own: one column (a slot) per key,
for the first ``SLOT_COUNT`` keys the store sees, so that metrics grouped by an attribute that is not rolled up
read two narrow integer columns instead of looking the key up in every span's maps.

At ten million spans, looking one key up in both maps cost DuckDB 260 ms before any summing, and summing by
(value, bin) in SQL a second more; a slot's codes and the span's latency bin (``BIN_COLUMN``, also written here)
are read in about 30 ms and summed in numpy.

A key gets a slot the first time a write carries it, while slots are free. A key that turns out to take more
than ``MAX_SLOT_VALUES`` values (an id, a URL) is retired: its slot is no longer filled and its key is read from
the maps again; it keeps its slot, so a key never changes columns. A slot covers the spans written from its
creation on: those that start at or before ``Slot.covers_after_ns`` (the newest start stored before) may lack
its codes, and are read from the maps.

The registry lives in the store's file (``SLOT_TABLES``); ``AttributeSlots`` is its copy in memory, changed
only after the write that changed the file commits (``plan`` then ``apply``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spyglass.model.arrow_numpy import as_numpy
from spyglass.model.map_entries import carried_entries
from spyglass.model.sketch import bucket_index

#: Keys given a slot at most (retired ones included).
SLOT_COUNT = 32
#: Values a slot codes at most; a key with more is retired. Metrics list the busiest 1,000 groups of a key.
MAX_SLOT_VALUES = 8192
#: Each stored span's latency-sketch bin (``spyglass.model.sketch.bucket_index`` of its duration).
BIN_COLUMN = "duration_bin"

SLOT_TABLES = [
    """CREATE TABLE IF NOT EXISTS attribute_slots (
        slot SMALLINT PRIMARY KEY,
        key VARCHAR NOT NULL,
        covers_after_ns BIGINT,
        retired BOOLEAN NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS attribute_slot_values (
        slot SMALLINT NOT NULL,
        code INTEGER NOT NULL,
        value VARCHAR NOT NULL
    )""",
]


def slot_column(slot: int) -> str:
    """The spans' column holding slot ``slot``'s codes."""
    return f"attr_slot_{slot}"


#: The columns a store adds to its span table (DuckDB types).
SLOT_SPAN_COLUMNS = [(BIN_COLUMN, "SMALLINT"), *((slot_column(i), "INTEGER") for i in range(SLOT_COUNT))]


@dataclass
class Slot:
    """One key's column: its codes by value, and the newest span start stored before it was created (None when
    the store was empty then: every span has its codes)."""

    index: int
    key: str
    covers_after_ns: int | None
    retired: bool = False
    codes: dict[str, int] = field(default_factory=dict)


@dataclass
class SlotPlan:
    """What one write adds: the span columns (``BIN_COLUMN`` and the codes of each active slot, null where a span
    does not carry the key), the slots created, the values coded (slot, code, value) and the slots retired."""

    columns: dict[str, pa.Array]
    new_slots: list[Slot]
    new_values: list[tuple[int, int, str]]
    retired: list[int]


class AttributeSlots:
    """The slots of one store, as its file holds them."""

    def __init__(self, slots: list[Slot] | None = None) -> None:
        self.slots: dict[str, Slot] = {slot.key: slot for slot in slots or []}

    @classmethod
    def from_rows(
        cls, slots: list[tuple[int, str, int | None, bool]], values: list[tuple[int, int, str]]
    ) -> AttributeSlots:
        """The registry from its tables' rows: (slot, key, covers_after_ns, retired) and (slot, code, value)."""
        by_index = {index: Slot(index, key, covers, bool(retired)) for index, key, covers, retired in slots}
        for index, code, value in values:
            if index in by_index:
                by_index[index].codes[value] = code
        return cls(list(by_index.values()))

    def readable(self, key: str) -> Slot | None:
        """The slot a read of ``key`` may use, if any."""
        slot = self.slots.get(key)
        return slot if slot is not None and not slot.retired else None

    def plan(self, spans: pa.Table, newest_start: Callable[[], int | None]) -> SlotPlan:
        """The columns and registry rows a write of ``spans`` adds. ``newest_start`` gives the newest span start
        stored so far (asked only when a slot is created)."""
        new_slots = self._new_slots(spans, newest_start)
        active = [slot for slot in [*self.slots.values(), *new_slots] if not slot.retired]
        columns: dict[str, pa.Array] = {
            BIN_COLUMN: pa.array(bucket_index(as_numpy(spans.column("duration_ns"), np.int64)))
        }
        new_values: list[tuple[int, int, str]] = []
        retired: list[int] = []
        if not active or spans.num_rows == 0:
            return SlotPlan(columns, new_slots, new_values, retired)
        # One entry per (span, key): a map holds a key once (receivers keep the first of repeats, and the store
        # refuses repeats), and a resource's value stands only for keys the span has no value of its own for.
        rows, key_of, values = carried_entries(spans, pa.array([slot.key for slot in active], pa.string()))
        encoded = values.dictionary_encode()
        texts = encoded.dictionary.to_pylist()
        per_key = max(1, len(texts))
        pair_of = key_of * per_key + as_numpy(encoded.indices, np.int64)
        # The distinct (key, value) pairs, counted densely: a sort of every entry cost twice as much.
        pairs = np.flatnonzero(np.bincount(pair_of, minlength=len(active) * per_key))
        pair_codes = np.empty(len(active) * per_key, np.int64)
        added: dict[int, int] = {}
        for pair in pairs.tolist():
            k, t = divmod(pair, per_key)
            slot = active[k]
            code = slot.codes.get(texts[t])
            if code is None:
                code = len(slot.codes) + added.get(k, 0)
                added[k] = added.get(k, 0) + 1
                new_values.append((slot.index, code, texts[t]))
            pair_codes[pair] = code
        codes = pair_codes[pair_of]
        for k, slot in enumerate(active):
            if len(slot.codes) + added.get(k, 0) > MAX_SLOT_VALUES:
                retired.append(slot.index)
                continue
            column = np.full(spans.num_rows, -1, np.int32)
            mine = key_of == k
            column[rows[mine]] = codes[mine]
            columns[slot_column(slot.index)] = pa.array(column, mask=column < 0)
        gone = set(retired)
        new_values = [row for row in new_values if row[0] not in gone]
        return SlotPlan(columns, new_slots, new_values, retired)

    def apply(self, plan: SlotPlan) -> None:
        """Take in what a committed write added."""
        for slot in plan.new_slots:
            self.slots[slot.key] = Slot(slot.index, slot.key, slot.covers_after_ns)
        by_index = {slot.index: slot for slot in self.slots.values()}
        for index, code, value in plan.new_values:
            by_index[index].codes[value] = code
        for index in plan.retired:
            by_index[index].retired = True
            by_index[index].codes.clear()

    def _new_slots(self, spans: pa.Table, newest_start: Callable[[], int | None]) -> list[Slot]:
        """Slots for the keys ``spans`` carry first, while slots are free, in the order they first appear."""
        free = SLOT_COUNT - len(self.slots)
        if free <= 0 or spans.num_rows == 0:
            return []
        seen: dict[str, None] = {}
        for name in ("attributes", "resource"):
            maps = spans.column(name)
            for chunk in maps.chunks:
                bounds = chunk.offsets
                first, last = bounds[0].as_py(), bounds[-1].as_py()
                # A slice's ``keys`` are its whole parent's: only the slice's entries are its own.
                for key in pc.unique(chunk.keys.slice(first, last - first)).to_pylist():
                    if key is not None and key not in self.slots:
                        seen.setdefault(key)
        keys = list(seen)[:free]
        if not keys:
            return []
        covers = newest_start()
        first = len(self.slots)
        return [Slot(first + i, key, covers) for i, key in enumerate(keys)]
