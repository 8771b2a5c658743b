"""Spectral products as archives deliver them, recognised by content: one row per spectrum,
each with the spectral axis its file states (so a model can put it on its own axis).

Each product family lives in its own module with the same two functions:

* ``recognise(path, sniffed, head) -> str | None``: the product's format name (cheap:
  the first bytes, FITS headers), or None;
* ``load(path, fmt) -> Loaded``: the whole file's spectra (these products are per-object
  or per-query files, read whole, once per process: :func:`loaded` caches them).

Families: :mod:`.gaia_xp` (Gaia DR3 XP_SAMPLED and XP_CONTINUOUS in CSV, ECSV, FITS and
VOTable, GaiaXPy's outputs; any VOTable or array-text CSV of spectra) and
:mod:`.spectra_fits` (SDSS/BOSS ``spec-`` files, DESI coadds, 1-D FITS images with a
wavelength WCS). Rows come back as the other readers give them: flux float32 with NaN
for masked samples (zero inverse variance, mask bits), and the carried columns (the
object's ID, ra/dec, the file's other scalar columns).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from astrocat.errors import InputError
from astrocat.kernels.spectral import SpectralAxis
from astrocat.sources.common import TableInfo


@dataclass(frozen=True)
class Loaded:
    """A product file's spectra: flux (n, samples) with NaN where masked, the carried
    columns, and the axis the file states for its samples."""

    flux: np.ndarray
    carried: pa.Table
    axis: SpectralAxis | None
    product: str  # what it is, in words, for messages

    def info(self) -> TableInfo:
        return TableInfo(n_rows=len(self.flux), flux_columns=None, flux_array_column=None,
                         n_flux=self.flux.shape[1], carried=self.carried.schema,
                         axis=self.axis, product=self.product)


def _families():
    from astrocat.sources import gaia_xp, spectra_fits

    return (gaia_xp, spectra_fits)


def recognise(path: Path, sniffed: str, head: bytes) -> str | None:
    """The product format of a file (``<family>:<name>``), or None for the other readers."""
    for family in _families():
        name = family.recognise(path, sniffed, head)
        if name is not None:
            return f"{family.__name__.rsplit('.', 1)[-1]}:{name}"
    return None


def is_product(fmt: str) -> bool:
    return ":" in fmt


@functools.lru_cache(maxsize=8)
def _load(path: str, fmt: str, mtime_ns: int, size: int) -> Loaded:
    family, _, name = fmt.partition(":")
    for module in _families():
        if module.__name__.endswith("." + family):
            return module.load(path, name)
    raise InputError(f"unknown spectral product {fmt!r}")


def loaded(path: str, fmt: str) -> Loaded:
    """The file's spectra, read once per process while it is unchanged."""
    st = os.stat(path)
    return _load(path, fmt, st.st_mtime_ns, st.st_size)


def scan(path: str, fmt: str) -> TableInfo:
    return loaded(path, fmt).info()


def read(path: str, fmt: str, start: int, stop: int) -> tuple[np.ndarray, pa.Table]:
    got = loaded(path, fmt)
    return got.flux[start:stop], got.carried.slice(start, stop - start)
