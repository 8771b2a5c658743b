""".npy arrays: memory-mapped planes and cubes (density fields) and rows of spectra.

Only plain numeric arrays are accepted, so a pickled file is refused rather than run.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from astrocat.errors import InputError
from astrocat.sources.common import TableInfo, empty_table

# --------------------------------------------------------------------- maps and cubes


def npy_plane(path: str) -> np.ndarray:
    arr = _load_npy(path)
    if arr.ndim == 2:
        return np.array(arr, dtype=np.float32)
    if arr.ndim == 3:
        return arr.mean(axis=0, dtype=np.float64).astype(np.float32)
    raise InputError(
        f"npy array has shape {arr.shape}: a density field must be a 2-D map or a 3-D cube"
    )


def _load_npy(path: str) -> np.ndarray:
    """Memory-map a numeric .npy; refuse pickled objects and structured/complex arrays."""
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise InputError(f"npy file cannot be memory-mapped: {_npy_problem(exc)}") from exc
    if not isinstance(arr, np.ndarray):
        raise InputError("not a .npy array")
    if arr.dtype.kind not in "biuf":
        raise InputError(f"npy array has dtype {arr.dtype}: expected plain real numbers")
    return arr


def _npy_problem(exc: Exception) -> str:
    text = str(exc)
    if "pickle" in text.lower() or "object" in text.lower():
        return "it holds Python objects; save a plain numeric array instead"
    return f"truncated or corrupt ({text})"


# --------------------------------------------------------------------------- spectra


def scan_npy(path: str) -> TableInfo:
    arr = _load_npy(path)
    if arr.ndim not in (1, 2):
        raise InputError(f"npy array has shape {arr.shape}: spectra must be 1-D or 2-D (rows)")
    n_rows = 1 if arr.ndim == 1 else arr.shape[0]
    return TableInfo(n_rows, None, None, int(arr.shape[-1]), pa.schema([]))


def read_npy(path: str, start: int, stop: int, info: TableInfo) -> tuple[np.ndarray, pa.Table]:
    arr = _load_npy(path)
    rows = arr[None, :] if arr.ndim == 1 else arr
    flux = np.array(rows[start:stop], dtype=np.float32)
    if flux.shape[1] != info.n_flux:
        raise InputError(f"npy rows have {flux.shape[1]} values, expected {info.n_flux}")
    return flux, empty_table(stop - start)
