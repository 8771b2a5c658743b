"""FITS pixels and FITS table rows, read through astropy's memory map.

Header-only rules shared with ``describe`` (which HDU is the image, its shape) live in
:mod:`._fits`; this module adds what needs the data: the plane, its sky centre from the
WCS or RA/DEC keywords, and the rows of a binary table.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pyarrow as pa

from astrocat.errors import InputError
from astrocat.sources import _fits
from astrocat.sources.common import (
    Col,
    TableInfo,
    flux_names,
    numpy_carried,
    numpy_flux,
    table_info,
)

# --------------------------------------------------------------------------- 2-D planes


def fits_plane(path: str, hdu: int | None) -> tuple[np.ndarray, float, float]:
    with _fits.open_fits(path) as hdul:
        index = hdu if hdu is not None else _first_plane_hdu(hdul)
        try:
            chosen = hdul[index]
        except IndexError as exc:
            raise InputError(
                f"HDU {index} does not exist (file changed since it was scanned?)"
            ) from exc
        if not _fits.is_image_hdu(chosen):
            raise InputError(f"HDU {index} is not an image HDU")
        raw = chosen.data
        if raw is None:
            raise InputError(f"HDU {index} holds no image data")
        shape = _fits.plane_shape(raw.shape)
        if shape is None:
            raise InputError(
                f"FITS image in HDU {index} is {raw.ndim}-D (shape {raw.shape}): "
                "astrocat needs a 2-D single-band image"
            )
        data = np.array(raw.reshape(shape), dtype=np.float32)  # copy: the file closes
        header = chosen.header
        ra, dec = _sky_centre(header, shape)
        if math.isnan(ra) and index != 0:
            ra, dec = _sky_keywords(hdul[0].header)
    return data, ra, dec


def _first_plane_hdu(hdul: Any) -> int:
    for i, h in enumerate(hdul):
        if _fits.is_image_hdu(h) and _fits.plane_shape(_fits.header_shape(h.header)):
            return i
    raise InputError("no HDU holds a 2-D image")


def _sky_centre(header: Any, shape: tuple[int, int]) -> tuple[float, float]:
    """RA/Dec (deg) of the image centre from the WCS, else RA/DEC keywords, else NaN."""
    from astropy.wcs import WCS, FITSFixedWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            wcs = WCS(header)
            if wcs.has_celestial:
                cel = wcs.celestial
                ny, nx = shape
                ra, dec = cel.pixel_to_world_values((nx - 1) / 2, (ny - 1) / 2)
                ra, dec = float(ra), float(dec)
                if math.isfinite(ra) and math.isfinite(dec):
                    return ra % 360.0, dec
    except Exception:  # noqa: BLE001 -- a broken WCS just means "position unknown"
        pass
    return _sky_keywords(header)


def _sky_keywords(header: Any) -> tuple[float, float]:
    for ra_key, dec_key in (("RA", "DEC"), ("RA_OBJ", "DEC_OBJ")):
        ra, dec = header.get(ra_key), header.get(dec_key)
        if _is_number(ra) and _is_number(dec):
            return float(ra) % 360.0, float(dec)
    return math.nan, math.nan


def _is_number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


# --------------------------------------------------------------------------- tables


_FITS_NUMERIC = frozenset("BIJKED")


def _fits_col(column: Any) -> Col:
    fmt = column.format
    code = fmt.format
    if code in ("P", "Q"):
        element = getattr(fmt, "p_format", None)
        return Col(column.name, "array" if element in _FITS_NUMERIC else "other", None, None)
    if code in _FITS_NUMERIC:
        if fmt.repeat > 1:
            return Col(column.name, "array", None, int(fmt.repeat))
        scaled = column.bscale not in (None, 1, 1.0)
        carry = pa.float64() if code in "ED" or scaled else pa.int64()
        return Col(column.name, "number", carry)
    if code == "L" and fmt.repeat == 1:
        return Col(column.name, "other", pa.bool_())
    if code == "A":
        return Col(column.name, "other", pa.string())
    return Col(column.name, "other", None)


def scan_fits_hdu(hdu: Any) -> TableInfo:
    """TableInfo for an open FITS table HDU, from its header only (``describe`` uses it)."""
    if not _fits.is_table_hdu(hdu):
        raise InputError("HDU is not a table")
    cols = [_fits_col(c) for c in hdu.columns]
    n_rows = int(hdu.header.get("NAXIS2", 0))

    def first_length(col: Col) -> int:
        for value in hdu.data[:256].field(col.name):
            if len(value):
                return len(value)
        raise InputError(f"flux column {col.name!r} holds no values in its first rows")

    return table_info(cols, n_rows, first_length)


def scan_fits_table(path: str, hdu: int | None) -> TableInfo:
    """TableInfo for table HDU ``hdu`` (the first extension when None)."""
    with _fits.open_fits(path) as hdul:
        return scan_fits_hdu(hdul[1 if hdu is None else hdu])


def read_fits_table(
    path: str, hdu: int | None, start: int, stop: int, info: TableInfo
) -> tuple[np.ndarray, pa.Table]:
    with _fits.open_fits(path) as hdul:
        # a view of the memory map: only these rows
        rows = hdul[1 if hdu is None else hdu].data[start:stop]
        table = {name: rows.field(name) for name in flux_names(info) + list(info.carried.names)}
        flux = numpy_flux(table, info, stop - start)
        carried = numpy_carried(table, info.carried, stop - start)
    return flux, carried
