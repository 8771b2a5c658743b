"""Catalog columns between numpy and Arrow, through their buffers.

``pa.array`` and ``to_numpy`` ask pandas, on their first call in a process, whether the
values are a pandas object, and so import pandas: 0.2 s at start and 0.1 s more at exit,
a third of the fixed cost of a small ``astrocat infer`` that never touches pandas. The
catalog's own columns are flat numbers, booleans and strings, which Arrow lays out as
plain buffers (``pa.Array.from_buffers``, DLPack); anything else takes pyarrow's way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa


def to_arrow(values: Sequence | np.ndarray, type_: pa.DataType) -> pa.Array:
    """``pa.array(values, type=type_)``; values other than plain numbers, booleans and
    strings (a None, a nested type) take ``pa.array``'s way."""
    try:
        if pa.types.is_string(type_):
            return _strings(values)
        if pa.types.is_boolean(type_):
            flags = np.asarray(values)
            if flags.dtype == bool:
                bits = np.packbits(flags, bitorder="little")
                return pa.Array.from_buffers(type_, len(flags), [None, pa.py_buffer(bits)])
        elif pa.types.is_integer(type_) or pa.types.is_floating(type_):
            arr = np.asarray(values)
            kinds = "iub" if pa.types.is_integer(type_) else "iufb"
            if arr.ndim == 1 and arr.dtype.kind in kinds:
                out = np.ascontiguousarray(arr, dtype=type_.to_pandas_dtype())
                if out.dtype.kind == "f" or np.array_equal(out, arr):  # no wrapped integers
                    return pa.Array.from_buffers(type_, len(out), [None, pa.py_buffer(out)])
    except (AttributeError, TypeError):
        pass
    return pa.array(values, type=type_)


def to_numpy(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """``column.to_numpy(zero_copy_only=False)``: numbers without nulls through DLPack,
    strings as an object array."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    type_ = column.type
    if column.null_count == 0 and (pa.types.is_integer(type_) or pa.types.is_floating(type_)):
        parts = [np.from_dlpack(c) for c in chunks]
        return parts[0] if len(parts) == 1 else np.concatenate(
            parts or [np.empty(0, type_.to_pandas_dtype())])
    if pa.types.is_string(type_) or pa.types.is_large_string(type_):
        return np.asarray(column.to_pylist(), dtype=object)
    return column.to_numpy(zero_copy_only=False)


def _strings(values: Sequence[str]) -> pa.Array:
    encoded = [v.encode() for v in values]  # AttributeError where one is not a str
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    if offsets[-1] < 2**31:
        return pa.Array.from_buffers(pa.string(), len(encoded), [
            None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(b"".join(encoded))])
    large = pa.Array.from_buffers(pa.large_string(), len(encoded), [
        None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])
    return large.cast(pa.string())  # over 2 GiB: Arrow itself says it cannot
