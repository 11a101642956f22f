"""numpy views of the Arrow arrays ptars returns, for the protobuf decoders' checks and reshaping.

A ``pyarrow.compute`` call costs several microseconds before it touches a value, and a 1000-span request needs
dozens of them; numpy over the same buffers (offsets, validity bits, fixed-width data) costs about a microsecond
a call. These helpers read the buffers without copying, so the decoders' checks are numpy expressions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from spyglass.model.arrow_numpy import valid_mask

Mask = npt.NDArray[np.bool_]
Ints = npt.NDArray[Any]

__all__ = [
    "Mask",
    "fixed_binary",
    "int_values",
    "lengths",
    "offsets",
    "valid_mask",
    "with_validity",
]


def offsets(array: pa.Array) -> npt.NDArray[np.int32]:
    """The ``len + 1`` value offsets of a string, binary or list array (into its data, not rebased)."""
    if isinstance(array, pa.ListArray):
        # A nested array's ``buffers()`` lists every child's buffers too (tens of objects for a KeyValue list);
        # its offsets alone are one small array, already cut to the slice.
        array = array.offsets
        return np.frombuffer(array.buffers()[1], np.int32, count=len(array), offset=array.offset * 4)
    buffer = array.buffers()[1]
    return np.frombuffer(buffer, np.int32, count=len(array) + 1, offset=array.offset * 4)


def lengths(array: pa.Array) -> npt.NDArray[np.int32]:
    """Byte length of each string or binary value, or item count of each list (0 for a null)."""
    return np.diff(offsets(array))


def int_values(array: pa.Array) -> Ints:
    """The values of a fixed-width numeric array as numpy (nulls read as whatever their slot holds)."""
    dtype = np.dtype(array.type.to_pandas_dtype())
    return np.frombuffer(array.buffers()[1], dtype, count=len(array), offset=array.offset * dtype.itemsize)


def fixed_binary(array: pa.Array, size: int, present: Mask | None = None) -> pa.Array:
    """A binary array whose values are ``size`` bytes (where ``present``; zeros and null elsewhere) as
    ``binary(size)``, in one gather (the caller has rejected rows of another length)."""
    n = len(array)
    data = array.buffers()[2]
    starts = offsets(array)[:-1]
    if present is None and n and data is not None:
        first = int(starts[0])
        # The common case: every value is ``size`` bytes and they lie end to end.
        if int(starts[-1]) - first == (n - 1) * size and len(data) >= first + n * size:
            values = np.frombuffer(data, np.uint8, count=n * size, offset=first)
            return pa.FixedSizeBinaryArray.from_buffers(pa.binary(size), n, [None, pa.py_buffer(values)])
    out = np.zeros((n, size), dtype=np.uint8)
    rows = np.arange(n) if present is None else np.flatnonzero(present)
    if rows.size and data is not None:
        raw = np.frombuffer(data, np.uint8)
        out[rows] = raw[starts[rows, None] + np.arange(size)]
    validity = None if present is None else _bitmap(present)
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(size), n, [validity, pa.py_buffer(out)])


def with_validity(array: pa.Array, valid: Mask) -> pa.Array:
    """``array`` with nulls where ``valid`` is false (its values otherwise shared, not copied)."""
    if valid.all():
        return array
    if not valid.any():
        return pa.nulls(len(array), array.type)
    if array.offset or array.null_count:
        valid = valid & valid_mask(array)
        array = pa.concat_arrays([array]) if array.offset else array
    return pa.Array.from_buffers(array.type, len(array), [_bitmap(valid), *array.buffers()[1:]])


def _bitmap(valid: Mask) -> pa.Buffer:
    return pa.py_buffer(np.packbits(valid, bitorder="little"))
