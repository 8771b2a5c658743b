"""Catalog columns built from their buffers: the same arrays as pyarrow's own
conversions, without importing pandas."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from astrocat.catalog.columns import to_arrow, to_numpy

CASES = [
    (["a", "", "Ωm σ8 — é", "x" * 300], pa.string()),
    ([], pa.string()),
    ([0, -1, 7, 2**31 - 1], pa.int32()),
    ([0, -1, 2**40], pa.int64()),
    (np.array([1.5, np.nan, -np.inf], np.float32), pa.float32()),
    (np.array([1.5, np.nan], np.float32), pa.float64()),
    ([float("nan"), 12.25], pa.float64()),
    (np.array([True, False, True] * 5), pa.bool_()),
    ([True, False], pa.bool_()),
    (np.arange(3, dtype=np.int16), pa.int32()),
]


def same(a: pa.Array, b: pa.Array) -> bool:
    """Equal arrays, NaN equal to NaN (``Array.equals`` says NaN differs from itself)."""
    if a.type != b.type or len(a) != len(b) or a.null_count != b.null_count:
        return False
    if pa.types.is_floating(a.type):
        return np.array_equal(np.array(a.to_pylist(), float), np.array(b.to_pylist(), float),
                              equal_nan=True)
    return a.to_pylist() == b.to_pylist()


@pytest.mark.parametrize(("values", "type_"), CASES)
def test_to_arrow_is_pa_array(values, type_):
    got = to_arrow(values, type_)
    got.validate(full=True)
    assert same(got, pa.array(values, type=type_))


@pytest.mark.parametrize(("values", "type_"), [
    ([1, None], pa.int64()),          # a null: pyarrow's way
    (["a", None], pa.string()),
    ([2**40], pa.int32()),            # would wrap: pyarrow refuses it
    ([1.5], pa.int32()),              # would truncate: pyarrow refuses it
    ([[1, 2]], pa.list_(pa.int8())),  # nested
])
def test_what_buffers_cannot_hold_takes_pyarrows_way(values, type_):
    try:
        want = pa.array(values, type=type_)
    except (pa.ArrowInvalid, OverflowError) as exc:
        with pytest.raises(type(exc)):
            to_arrow(values, type_)
        return
    assert same(to_arrow(values, type_), want)


def test_sentinel_columns():
    for value, type_ in (("", pa.string()), (-1, pa.int32()), (float("nan"), pa.float32()),
                         (False, pa.bool_())):
        assert same(to_arrow([value] * 4, type_), pa.array([value] * 4, type=type_))
    assert len(to_arrow([], pa.string())) == 0


@pytest.mark.parametrize("column", [
    pa.chunked_array([pa.array([1.0, 2.0], pa.float32()), pa.array([3.0], pa.float32())]),
    pa.chunked_array([], pa.float64()),
    pa.array([4, 5, 6], pa.int64()).slice(1),
    pa.chunked_array([pa.array(["ok", "error"]), pa.array(["ok"])]),
    pa.array([1, None], pa.int32()),
    pa.array([True, False]),
])
def test_to_numpy_is_pyarrows(column):
    got, want = to_numpy(column), column.to_numpy(zero_copy_only=False)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_none_of_it_imports_pandas():
    code = ("import sys, numpy as np, pyarrow as pa\n"
            "from astrocat.catalog.columns import to_arrow, to_numpy\n"
            "a = to_arrow(['x', 'y'], pa.string()); b = to_arrow([1, 2], pa.int32())\n"
            "c = to_arrow(np.ones(3, bool), pa.bool_()); d = to_arrow([0.5] * 2, pa.float32())\n"
            "to_numpy(pa.chunked_array([b, b])); to_numpy(a)\n"
            "print('pandas' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr[-2000:]
