"""Attribute values kept a second time, as integer codes in columns of their own: one column (a slot) per key,
for the first ``SLOT_COUNT`` keys the store sees, so that metrics grouped by an attribute that is not rolled up
read two narrow integer columns instead of looking the key up in every span's maps.

At ten million spans, looking one key up in both maps cost DuckDB 260 ms before any summing, and summing by
(value, bin) in SQL a second more; a slot's codes and the span's latency bin (``BIN_COLUMN``, also written here)
are read in about 30 ms and summed in numpy.

A key gets a slot the first time a write carries it, while slots are free. A key that turns out to take more
than ``MAX_SLOT_VALUES`` values (an id, a URL), or a value longer than ``MAX_SLOT_VALUE_CHARS``, is retired:
its slot is no longer filled and its key is read from the maps again; it keeps its slot, so a key never changes
columns. Values are counted over the file's life, expired spans' too: a key whose values churn (pod names) is
retired once it has seen that many. A slot covers the spans written from its creation on: those that start at
or before ``Slot.covers_after_ns`` (the newest start stored before) may lack its codes, and are read from the
maps.

The registry lives in the store's file (``SLOT_TABLES``); ``AttributeSlots`` is its copy in memory, changed
only after the write that changed the file commits (``plan`` then ``apply``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from spyglass.model.arrow_numpy import as_numpy
from spyglass.model.map_entries import map_entries, own_entries
from spyglass.model.schema import StatusCode
from spyglass.model.sketch import bucket_index

#: Keys given a slot at most (retired ones included).
SLOT_COUNT = 32
#: Values a slot codes at most; a key with more is retired. Metrics list the busiest 1,000 groups of a key.
MAX_SLOT_VALUES = 8192
#: Characters of a value a slot codes at most; a key with a longer value (a query, a payload) is retired. With
#: ``MAX_SLOT_VALUES``, this bounds what the registry holds in memory to about 100 MB.
MAX_SLOT_VALUE_CHARS = 256
#: Each stored span's latency-sketch bin (``spyglass.model.sketch.bucket_index`` of its duration), as files of
#: schema version 6 wrote it; later writes fill ``OUTCOME_COLUMN`` instead.
BIN_COLUMN = "duration_bin"
#: Each stored span's bin times two, plus one if it failed: what a metrics read sums by, read as it is (computing
#: it from the bin and the status took DuckDB 10-25 ms more at ten million spans).
OUTCOME_COLUMN = "bin_outcome"

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


#: The DuckDB type of a slot's column. A slot's column is added to the span table when the slot is created:
#: every column costs each write, null or not (24 unused ones cost a write of 125,000 spans 1.1 µs a span).
SLOT_COLUMN_TYPE = "INTEGER"
#: The type a slot's codes are read as, the narrowest every code (below ``MAX_SLOT_VALUES``) fits: at ten million
#: spans, 16 bits hand DuckDB's reader 20 MB less than the column's own 32.
SLOT_CODE_READ_TYPE = "SMALLINT" if MAX_SLOT_VALUES <= 2**15 else SLOT_COLUMN_TYPE


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
    """What one write adds: the span columns (``OUTCOME_COLUMN`` and the codes of each active slot, null where a span
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
        stored so far (asked only when a slot is created). ``spans``' resources may come dictionary-encoded, as
        runs of spans sharing one (``duckdb_store.with_shared_resources``): each distinct one is read once."""
        resources, resource_of = _distinct_maps(spans.column("resource"))
        new_slots = self._new_slots([spans.column("attributes"), resources], newest_start)
        active = [slot for slot in [*self.slots.values(), *new_slots] if not slot.retired]
        bins = bucket_index(as_numpy(spans.column("duration_ns"), np.int64)).astype(np.int16)
        failed = as_numpy(spans.column("status_code"), np.int16) == StatusCode.ERROR
        columns: dict[str, pa.Array] = {OUTCOME_COLUMN: pa.array(bins * 2 + failed)}
        new_values: list[tuple[int, int, str]] = []
        retired: list[int] = []
        if not active or spans.num_rows == 0:
            return SlotPlan(columns, new_slots, new_values, retired)
        # One entry per (span, key) and per (resource, key): a map holds a key once (receivers keep the first of
        # repeats, and the store refuses repeats).
        keys = pa.array([slot.key for slot in active], pa.string())
        own_rows, own_keys, own_values = map_entries(spans.column("attributes"), keys)
        res_rows, res_keys, res_values = map_entries(resources, keys)
        encoded = pa.concat_arrays([own_values, res_values]).dictionary_encode()
        texts = encoded.dictionary.to_pylist()
        per_key = max(1, len(texts))
        pair_of = np.concatenate([own_keys, res_keys]) * per_key + as_numpy(encoded.indices, np.int64)
        # The distinct (key, value) pairs, counted densely: a sort of every entry cost twice as much.
        pairs = np.flatnonzero(np.bincount(pair_of, minlength=len(active) * per_key))
        pair_codes = np.empty(len(active) * per_key, np.int64)
        added: dict[int, int] = {}
        too_long: set[int] = set()
        for pair in pairs.tolist():
            k, t = divmod(pair, per_key)
            slot = active[k]
            code = slot.codes.get(texts[t])
            if code is None:
                code = len(slot.codes) + added.get(k, 0)
                added[k] = added.get(k, 0) + 1
                new_values.append((slot.index, code, texts[t]))
                if len(texts[t]) > MAX_SLOT_VALUE_CHARS:
                    too_long.add(k)
            pair_codes[pair] = code
        codes = pair_codes[pair_of]
        own_codes, res_codes = codes[: len(own_keys)], codes[len(own_keys) :]
        for k, slot in enumerate(active):
            if k in too_long or len(slot.codes) + added.get(k, 0) > MAX_SLOT_VALUES:
                retired.append(slot.index)
                continue
            # A resource's value stands for the spans without a value of their own.
            by_resource = np.full(len(resources), -1, np.int32)
            mine = res_keys == k
            by_resource[res_rows[mine]] = res_codes[mine]
            column = by_resource[resource_of]
            mine = own_keys == k
            column[own_rows[mine]] = own_codes[mine]
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

    def _new_slots(
        self, maps: list[pa.Array | pa.ChunkedArray], newest_start: Callable[[], int | None]
    ) -> list[Slot]:
        """Slots for the keys ``maps`` hold first, while slots are free, in the order they first appear."""
        free = SLOT_COUNT - len(self.slots)
        if free <= 0:
            return []
        seen: dict[str, None] = {}
        for column in maps:
            for chunk in column.chunks if isinstance(column, pa.ChunkedArray) else [column]:
                if len(chunk) == 0:
                    continue
                for key in pc.unique(own_entries(chunk)[0]).to_pylist():
                    if key is not None and key not in self.slots:
                        seen.setdefault(key)
        keys = list(seen)[:free]
        if not keys:
            return []
        covers = newest_start()
        first = len(self.slots)
        return [Slot(first + i, key, covers) for i, key in enumerate(keys)]


def _distinct_maps(column: pa.ChunkedArray) -> tuple[pa.Array, npt.NDArray[np.int64]]:
    """The distinct maps of a column whose chunks may be dictionary-encoded, and each row's index among them
    (plain chunks count every row as its own)."""
    parts: list[pa.Array] = []
    index: list[npt.NDArray[np.int64]] = []
    held = 0
    for chunk in column.chunks:
        if isinstance(chunk, pa.DictionaryArray):
            parts.append(chunk.dictionary)
            index.append(as_numpy(chunk.indices, np.int64) + held)
            held += len(chunk.dictionary)
        else:
            parts.append(chunk)
            index.append(np.arange(held, held + len(chunk), dtype=np.int64))
            held += len(chunk)
    if not parts:
        return pa.array([], column.type), np.empty(0, np.int64)
    return pa.concat_arrays(parts), np.concatenate(index)
