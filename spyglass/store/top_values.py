"""Which values of an attribute a grouped answer names: the busiest, over every part of the window; the rest are
summed as one group (``other``), as ``/api/v1/metrics`` lists at most a thousand groups.

Summing a key with 5,000 values by value and latency bin made 2.2 million cells at ten million spans, and most of
a query's time went to counting into that many cells and summarizing them, for values the answer then folded
away. Chosen first, the quietest values are folded as they are summed: cells of a thousand values, not of five.

The choice is over the whole window: parts read apart (the recall buffer, spans waiting for their write, a
cluster's peers, a store's older spans) ``add`` their sums first, and the last part read, usually the store's
own, ``choose``s with its totals beside theirs. Every part is then ``fold``ed by the same choice.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from spyglass.model.arrow_numpy import as_numpy


def busiest(
    names: pa.Array, totals: npt.NDArray[np.float64], limit: int, other: str
) -> npt.NDArray[np.int64] | None:
    """Indices of the ``limit - 1`` names with the largest totals (ties by name), which keep their own group, the
    rest going to ``other``; None when no more than ``limit`` names have a total, so that every one keeps it. A
    name equal to ``other`` is never kept: it takes the folded ones in."""
    if np.count_nonzero(totals) <= limit:
        return None
    by_name = np.empty(len(names), np.int64)
    by_name[as_numpy(pc.sort_indices(names), np.int64)] = np.arange(len(names))
    ranking = np.where(as_numpy(pc.fill_null(pc.equal(names, other), False), np.bool_), 0.0, totals)
    return np.lexsort((by_name, -ranking))[: limit - 1]


class TopValues:
    """The choice of which values keep their name, made once for a read of every part of a window."""

    def __init__(self, limit: int, other: str) -> None:
        self.limit = limit
        self.other = other
        self._added: list[pa.Table] = []
        self._chosen = False
        self._kept: pa.Array | None = None  # None once chosen: every value keeps its name

    def add(self, cells: pa.Table) -> None:
        """Count a part read before the choice: ``cells`` has ``value`` and ``weight`` columns."""
        if self._chosen:
            raise RuntimeError("values were already chosen")
        if cells.num_rows:
            self._added.append(_totals(cells.column("value"), cells.column("weight")))

    def needs_totals(self, values: int) -> bool:
        """Whether the last part read, with this many distinct values, must give ``choose`` its totals. Not if
        the choice is made and keeps every value, nor if the parts together cannot have more values than the limit
        (which makes that choice)."""
        if self._chosen:
            return self._kept is not None
        if values + sum(int(t.num_rows) for t in self._added) > self.limit:
            return True
        self._chosen, self._kept, self._added = True, None, []
        return False

    def choose(self, values: pa.Array, totals: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_] | None:
        """Which of ``values`` (distinct, with these totals) keep their name; None when all do. The first call
        chooses, over these totals and those added; later ones answer by that choice."""
        if not self._chosen:
            own = pa.table(
                {"value": pa.array(values).cast(pa.string()), "weight": pa.array(totals, pa.float64())}
            )
            every = _totals_of_parts([*self._added, own])
            kept = busiest(
                every.column("value"), as_numpy(every.column("weight"), np.float64), self.limit, self.other
            )
            self._kept = None if kept is None else every.column("value").take(pa.array(kept))
            self._chosen = True
            self._added = []
        if self._kept is None:
            return None
        return as_numpy(pc.is_in(pa.array(values).cast(pa.string()), value_set=self._kept), np.bool_)

    def settle(self, cells: pa.Table) -> pa.Table:
        """``fold`` of ``cells`` (``ATTRIBUTE_CELL_SCHEMA`` rows), choosing first, if not yet done, with their totals
        as the last part's."""
        if not self._chosen:
            own = _totals(cells.column("value"), cells.column("weight"))
            self.choose(own.column("value"), as_numpy(own.column("weight"), np.float64))
        return self.fold(cells)

    def recode(
        self, dictionary: pa.Array, kept: npt.NDArray[np.bool_]
    ) -> tuple[npt.NDArray[np.int64], pa.Array]:
        """The new code of each of ``dictionary``'s codes and the new dictionary: the kept values in their order,
        then ``other``."""
        numbers = np.cumsum(kept) - 1
        new_dictionary = pa.concat_arrays(
            [dictionary.filter(pa.array(kept)).cast(pa.string()), pa.array([self.other], pa.string())]
        )
        return np.where(kept, numbers, int(np.count_nonzero(kept))).astype(np.int64), new_dictionary

    def fold(self, cells: pa.Table) -> pa.Table:
        """``cells`` (``ATTRIBUTE_CELL_SCHEMA`` rows) with every value not kept named ``other``, and rows that
        became the same cell summed. Choose first (``choose``, or ``settle``)."""
        if not self._chosen:
            raise RuntimeError("values are not chosen yet")
        if self._kept is None or cells.num_rows == 0:
            return cells
        if self._folded_already(cells.column("value")):
            return cells
        names = cells.column("value").cast(pa.string())
        named = pc.if_else(pc.is_in(names, value_set=self._kept), names, pa.scalar(self.other, pa.string()))
        keys = [name for name in ("value", "start_ns", "bin") if name in cells.column_names]
        sums = [name for name in cells.column_names if name not in keys]
        summed = (
            cells.set_column(cells.schema.get_field_index("value"), "value", named)
            .group_by(keys, use_threads=False)
            .aggregate([(name, "sum") for name in sums])
        )
        return summed.rename_columns([*keys, *sums]).select(cells.column_names).cast(cells.schema)

    def _folded_already(self, values: pa.ChunkedArray) -> bool:
        """Whether every value of these (dictionary-encoded) cells is kept or ``other``: the store's own part,
        folded as it was summed, is then left as it is."""
        if not pa.types.is_dictionary(values.type):
            return False
        assert self._kept is not None
        named = pa.concat_arrays([pa.array(self._kept), pa.array([self.other], pa.string())])
        return all(
            bool(
                pc.all(pc.is_in(c.dictionary.cast(pa.string()), value_set=named)).as_py()
                or len(c.dictionary) == 0
            )
            for c in values.chunks
        )


def with_last_part(
    top: TopValues | None, earlier: list[pa.Table], read_last: Callable[[TopValues | None], pa.Table]
) -> list[pa.Table]:
    """The cells of a window's parts: ``earlier`` ones, already read, and the one ``read_last`` reads (given
    ``top``), that one first. With ``top``, the earlier parts' totals count before the last part chooses, and
    every part is folded by that one choice."""
    if top is None:
        return [read_last(None), *earlier]
    for part in earlier:
        top.add(part)
    last = top.settle(read_last(top))
    return [last, *(top.fold(part) for part in earlier)]


def _totals(values: pa.ChunkedArray | pa.Array, weights: pa.ChunkedArray | pa.Array) -> pa.Table:
    """One row per value: its summed weight."""
    return _totals_of_parts([pa.table({"value": values, "weight": weights})])


def _totals_of_parts(parts: list[pa.Table]) -> pa.Table:
    plain = [
        pa.table(
            {"value": p.column("value").cast(pa.string()), "weight": p.column("weight").cast(pa.float64())}
        )
        for p in parts
    ]
    summed = pa.concat_tables(plain).group_by("value", use_threads=False).aggregate([("weight", "sum")])
    return summed.rename_columns(["value", "weight"])
