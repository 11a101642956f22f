"""Arrow columns as numpy arrays of a chosen type: what the analysis, the stores and the aggregator compute on."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

__all__ = ["as_numpy", "id_words", "valid_mask"]


def as_numpy(column: pa.Array | pa.ChunkedArray, dtype: Any) -> npt.NDArray[Any]:
    """``column``'s values as a numpy array of ``dtype`` (without a copy where Arrow's layout allows; nulls as
    numpy reads them: NaN for floats, so callers fill them first where that matters)."""
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=dtype)


def valid_mask(array: pa.Array) -> npt.NDArray[np.bool_]:
    """Which values of ``array`` are not null, from its validity bits (no compute call)."""
    n = len(array)
    nulls = array.null_count
    if nulls == 0:
        return np.ones(n, dtype=bool)
    if nulls == n:
        return np.zeros(n, dtype=bool)
    bits = np.frombuffer(array.buffers()[0], np.uint8)
    return np.unpackbits(bits, bitorder="little", count=array.offset + n)[array.offset :].astype(bool)


def id_words(column: pa.Array) -> npt.NDArray[np.uint64]:
    """A fixed-size binary(8) column (span ids) as big-endian uint64 values (a writable copy; null rows are
    zero)."""
    n = len(column)
    data = column.buffers()[1]
    if data is None or n == 0:
        return np.zeros(n, dtype=np.uint64)
    raw = np.frombuffer(data, dtype=">u8", count=column.offset + n)[column.offset :]
    words = raw.astype(np.uint64)
    if column.null_count:
        words[~valid_mask(column)] = 0
    return words
