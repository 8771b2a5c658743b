"""Read pixels and fluxes: the one entry point, handing each format to its family module.

Every public function here either returns clean arrays or raises
:class:`~astrocat.errors.InputError` whose message names the file and says what was
wrong, so the pipeline can write an error row and carry on. Library exceptions (Pillow,
astropy, pyarrow, numpy) never escape: an astronomer should not have to read a
traceback to learn that one cut-out in a million is truncated.

Memory stays bounded: images are decoded at reduced size where the format allows it,
tables are read only over the requested row range.

The families are :mod:`.images` (JPEG/PNG), :mod:`.fitsfiles` (FITS images and tables),
:mod:`.tables` (Parquet, CSV, ECSV), :mod:`.arrays` (``.npy``) and
:mod:`.spectra_products` (Gaia XP, GaiaXPy, SDSS, DESI, 1-D WCS, VOTable); the error contract and
flux detection they share are in :mod:`.common`. Callers import only this module, so a
format can change home without touching them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from astrocat.errors import InputError
from astrocat.sources import arrays, fitsfiles, spectra_products, tables
from astrocat.sources._fits import DEFAULT_PRODUCT, Product
from astrocat.sources.common import TableInfo, about, blank_bad_rows, patch_non_finite
from astrocat.sources.fitsfiles import scan_fits_hdu
from astrocat.sources.images import read_rgb

__all__ = [
    "PlaneRead",
    "Product",
    "TableInfo",
    "read_plane",
    "read_rgb",
    "read_spectra",
    "scan_fits_hdu",
    "scan_table",
]

# --------------------------------------------------------------------------- 2-D planes


@dataclass(frozen=True)
class PlaneRead:
    """A 2-D single-band plane and where it points on the sky (NaN when unknown)."""

    data: np.ndarray  # float32, 2-D, all finite
    ra: float
    dec: float
    scale: tuple[float, float] | None = None  # arcsec/px along (y, x) from the WCS


def read_plane(path: str, fmt: str, hdu: int | None,
               product: Product = DEFAULT_PRODUCT) -> PlaneRead:
    """Read a FITS image HDU (plain, .gz or tile-compressed; scaled integers as astropy
    scales them, BLANK as NaN) or a .npy map/cube as float32.

    ``product`` names the HDU (when ``hdu`` is not already known), a cube's plane and a
    mask HDU whose flagged pixels become NaN. A .npy cube (3-D) is projected by averaging
    along axis 0, as Quijote-style maps are made. Up to 10% NaN/inf pixels are replaced
    by the median (masked edges of cut-outs); more means the cut-out is mostly off the
    footprint and is refused.
    """
    if fmt not in ("fits_image", "fits", "gzip", "npy"):
        raise ValueError(f"read_plane cannot read format {fmt!r}")
    with about(path):
        if fmt == "npy":
            return PlaneRead(patch_non_finite(arrays.npy_plane(path)), math.nan, math.nan)
        plane = fitsfiles.fits_plane(path, hdu, product)
        return PlaneRead(patch_non_finite(plane.data), plane.ra, plane.dec, plane.scale)


# --------------------------------------------------------------------------- tables


def scan_table(path: str, fmt: str, hdu: int | None) -> TableInfo:
    """Find the flux and the carried columns from metadata and headers, without the data.

    Only a few rows are looked at: the first row of a variable-length flux column (for
    the number of flux values) and the first CSV lines (for column types).
    """
    with about(path):
        return _scan_table(path, fmt, hdu)


def _scan_table(path: str, fmt: str, hdu: int | None) -> TableInfo:
    """:func:`scan_table` without the file name in messages (``describe`` adds its own)."""
    if spectra_products.is_product(fmt):
        return spectra_products.scan(path, fmt)
    match fmt:
        case "parquet":
            return tables.scan_parquet(path)
        case "csv":
            return tables.scan_csv(path)
        case "ecsv":
            return tables.scan_ecsv(path)
        case "fits_table" | "fits" | "gzip":
            return fitsfiles.scan_fits_table(path, hdu)
        case "npy":
            return arrays.scan_npy(path)
    raise ValueError(f"scan_table cannot read format {fmt!r}")


def read_spectra(
    path: str, fmt: str, hdu: int | None, start: int, stop: int, info: TableInfo
) -> tuple[np.ndarray, pa.Table]:
    """Rows [start, stop): flux float32 (stop - start, n_flux) and the carried columns.

    A row whose flux has a missing, non-numeric or non-finite value (or the wrong
    length) comes back as a row of NaN, so only that row becomes an error row.
    """
    if not 0 <= start <= stop:
        raise ValueError(f"bad row range [{start}, {stop})")
    with about(path):
        if stop > info.n_rows:
            raise InputError(
                f"rows up to {stop} were asked for but the table was scanned with "
                f"{info.n_rows} rows (file changed since?)"
            )
        if start == stop:
            return np.empty((0, info.n_flux), dtype=np.float32), info.carried.empty_table()
        if spectra_products.is_product(fmt):  # masked samples are NaN, rows kept whole
            return spectra_products.read(path, fmt, start, stop)
        match fmt:
            case "parquet":
                flux, carried = tables.read_parquet(path, start, stop, info)
            case "csv":
                flux, carried = tables.read_csv(path, start, stop, info)
            case "ecsv":
                flux, carried = tables.read_ecsv(path, start, stop, info)
            case "fits_table" | "fits" | "gzip":
                flux, carried = fitsfiles.read_fits_table(path, hdu, start, stop, info)
            case "npy":
                flux, carried = arrays.read_npy(path, start, stop, info)
            case _:
                raise ValueError(f"read_spectra cannot read format {fmt!r}")
        blank_bad_rows(flux)
        return flux, carried
