"""Arrow columns as numpy arrays of a chosen type: what the analysis, the stores and the aggregator compute on."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

__all__ = ["as_numpy"]


def as_numpy(column: pa.Array | pa.ChunkedArray, dtype: Any) -> npt.NDArray[Any]:
    """``column``'s values as a numpy array of ``dtype`` (without a copy where Arrow's layout allows; nulls as
    numpy reads them: NaN for floats, so callers fill them first where that matters)."""
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=dtype)
