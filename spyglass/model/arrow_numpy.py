"""Arrow columns as numpy arrays of a chosen type: what the analysis, the stores and the aggregator compute on."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

__all__ = ["as_numpy", "valid_mask"]


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
