"""FITS pixels and FITS table rows.

Header-only rules shared with ``describe`` (which HDU is the image, its shape) live in
:mod:`._fits`; this module adds what needs the data: the plane, its sky centre from the
WCS or RA/DEC keywords, and the rows of a binary table.

A plane is read through cfitsio (``fitsio``) where that gives astropy's answer exactly:
the same pixels, and a plain TAN WCS's centre computed directly (astropy builds a full
``WCS`` per file, most of its cost); any other file is read by astropy, the reference.
Tables are always read by astropy: one file holds many spectra, so per-file cost is moot.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from astrocat.errors import InputError
from astrocat.sources import _fits
from astrocat.sources._fits import DEFAULT_PRODUCT, Declined, Product
from astrocat.sources.common import (
    Col,
    TableInfo,
    flux_names,
    numpy_carried,
    numpy_flux,
    table_info,
)

# --------------------------------------------------------------------------- 2-D planes


class Plane(NamedTuple):
    """A plane as read, with the HDU it came from (the tests compare the two paths)."""

    hdu: int
    data: np.ndarray  # float32, 2-D; masked pixels NaN
    ra: float
    dec: float
    scale: tuple[float, float] | None = None  # arcsec per pixel along (y, x), from the WCS


def fits_plane(path: str, hdu: int | None, product: Product = DEFAULT_PRODUCT) -> Plane:
    return _fits.fast_or_reference(
        lambda: fitsio_plane(path, hdu, product), lambda: astropy_plane(path, hdu, product)
    )


def astropy_plane(path: str, hdu: int | None, product: Product = DEFAULT_PRODUCT) -> Plane:
    """The reference reader: astropy's physical values (BSCALE/BZERO applied, BLANK as
    NaN, tiles decompressed) and a full astropy ``WCS``."""
    with _fits.open_fits(path, memmap=False) as hdul:
        if hdu is not None:
            index = hdu
        elif product.hdu is not None:
            index = _fits.find_hdu([h.header for h in hdul], product.hdu)
        else:
            index = _first_plane_hdu(hdul)
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
        header = chosen.header
        data = _the_plane(raw, header, index, product)
        ra, dec, scale = _sky_centre(header, data.shape)
        if math.isnan(ra) and index != 0:
            ra, dec = _sky_keywords(hdul[0].header)
        if product.mask_hdu is not None:
            where = _fits.find_hdu([h.header for h in hdul], product.mask_hdu)
            if not _fits.is_image_hdu(hdul[where]) or hdul[where].data is None:
                raise InputError(f"mask HDU {_fits.hdu_label(product.mask_hdu)} holds no image")
            _apply_mask(data, hdul[where].data, product)
    return Plane(index, data, ra, dec, scale)


def fitsio_plane(path: str, hdu: int | None, product: Product = DEFAULT_PRODUCT) -> Plane:
    """:func:`astropy_plane`'s answer through cfitsio, or :class:`Declined` (failures
    included: astropy words the errors)."""
    with _fits.taken(path) or _fits.FastFits(path, in_memory=True) as f:
        if hdu is not None:
            index = hdu
        elif product.hdu is not None:
            index = _fits.find_hdu(f.headers(), product.hdu)
        else:
            index = f.first_plane()
        if not f.is_image(index):
            raise Declined(f"HDU {index} is not an image")
        header = f.header(index)
        shape = _fits.header_shape(header)
        plane = _fits.plane_shape(shape)
        if plane is None and product.plane is not None and _fits.cube_planes(shape):
            plane = _fits.squeeze_shape(shape)[1:]  # one plane of a cube
        if plane is None:
            raise Declined(f"HDU {index} holds no 2-D plane")
        _check_unscaled(header)
        ra, dec, scale = _fitsio_centre(header, plane)  # before the pixels: it may decline
        if math.isnan(ra) and index != 0:
            ra, dec = _sky_keywords(f.header(0))
        raw = f.pixels(index)
        if raw.shape != shape:
            raise Declined("cfitsio's image shape differs from the header's")
        data = _the_plane(raw, header, index, product)
        if product.mask_hdu is not None:
            where = _fits.find_hdu(f.headers(), product.mask_hdu)
            if not f.is_image(where):
                raise Declined("the mask HDU is not an image")
            _check_unscaled(f.header(where))
            _apply_mask(data, f.pixels(where), product)
    return Plane(index, data, ra, dec, scale)


def _the_plane(raw: np.ndarray, header: Any, index: int, product: Product) -> np.ndarray:
    """The 2-D float32 plane of an image HDU's data (a copy: the file closes), the named
    plane of a cube; a cube with no plane named is refused with the fix in the message."""
    shape = _fits.plane_shape(raw.shape)
    if shape is not None:
        return np.array(raw.reshape(shape), dtype=np.float32)
    planes = _fits.cube_planes(raw.shape)
    if planes is not None and product.plane is not None:
        k = _fits.plane_index(header, planes, product.plane)
        return np.array(raw.reshape(planes, *_fits.squeeze_shape(raw.shape)[1:])[k],
                        dtype=np.float32)
    raise InputError(not_a_plane(raw.shape, index))


def not_a_plane(shape: tuple[int, ...], index: int) -> str:
    """Why a FITS image is not one plane, and what to do about it."""
    fix = ""
    if _fits.cube_planes(shape) is not None:
        fix = ("; it looks like a cube of bands: name the plane to read with --plane N (or "
               "plane = N, or a band name, in the model card)")
    elif len(_fits.squeeze_shape(shape)) == 1:
        fix = "; a 1-D spectrum must be stored as a table row with a flux column"
    return (f"FITS image is {len(shape)}-D (shape {tuple(shape)}, HDU {index}): astrocat "
            f"needs a 2-D single-band image{fix}")


def _apply_mask(data: np.ndarray, mask: np.ndarray, product: Product) -> None:
    """Flagged pixels become NaN: any non-zero mask value, or only ``mask_bits``."""
    mask = np.asarray(mask)
    plane = _fits.plane_shape(mask.shape)
    if plane != data.shape:
        raise InputError(f"mask HDU {_fits.hdu_label(product.mask_hdu)} has shape "
                         f"{tuple(mask.shape)} but the image is {data.shape[0]}x{data.shape[1]}")
    mask = mask.reshape(plane)
    if product.mask_bits is None:
        bad = mask != 0
    elif mask.dtype.kind in "iu":
        bad = (mask.astype(np.int64) & product.mask_bits) != 0
    else:
        raise InputError(f"mask HDU {_fits.hdu_label(product.mask_hdu)} holds {mask.dtype} "
                         "values, not integer flags: drop mask_bits to flag every non-zero "
                         "pixel")
    data[bad] = np.nan


def _first_plane_hdu(hdul: Any) -> int:
    for i, h in enumerate(hdul):
        if _fits.is_image_hdu(h) and _fits.plane_shape(_fits.header_shape(h.header)):
            return i
    raise InputError("no HDU holds a 2-D image")


#: BZERO of the unsigned-integer convention (BSCALE 1) by BITPIX: astropy and cfitsio both
#: give the unsigned integers themselves, exactly.
_UNSIGNED_BZERO = {16: 32768, 32: 2147483648}


def _check_unscaled(header: _fits.HeaderLike) -> None:
    """Declined unless cfitsio's values are astropy's ``data`` to the bit.

    Unsigned integers (BZERO 2**15 or 2**31 with BSCALE 1) are; other scaled images
    (BSCALE/BZERO) and integer images with BLANK are left to astropy, which scales in
    other arithmetic than cfitsio (float32 for 8/16-bit data) and turns BLANK into NaN.
    """
    bitpix = header.get("BITPIX")
    bscale, bzero = header.get("BSCALE", 1), header.get("BZERO", 0)
    if not (isinstance(bitpix, int) and _is_number(bscale) and _is_number(bzero)):
        raise Declined("BITPIX, BSCALE or BZERO is not a plain number")
    unsigned = bscale == 1 and bzero == _UNSIGNED_BZERO.get(bitpix)
    if (bscale != 1 or bzero != 0) and not unsigned:
        raise Declined("scaled pixels")
    if bitpix > 0 and (header.get("BLANK") is not None or header.get("ZBLANK") is not None):
        raise Declined("integer pixels with a BLANK value")


def _sky_centre(header: Any, shape: tuple[int, int]
                ) -> tuple[float, float, tuple[float, float] | None]:
    """RA/Dec (deg) of the image centre from the WCS, else RA/DEC keywords, else NaN; and
    the pixel scale (arcsec/px along y, x) where the WCS is celestial, in degrees."""
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
                    return ra % 360.0, dec, _wcs_scale(cel)
    except Exception:  # noqa: BLE001 -- a broken WCS just means "position unknown"
        pass
    return (*_sky_keywords(header), None)


def _wcs_scale(cel: Any) -> tuple[float, float] | None:
    """astropy's ``proj_plane_pixel_scales`` in arcsec, (y, x); None unless in degrees."""
    from astropy.wcs.utils import proj_plane_pixel_scales

    if any(str(u) != "deg" for u in cel.wcs.cunit):
        return None
    sx, sy = (float(v) * 3600.0 for v in proj_plane_pixel_scales(cel))
    return (sy, sx) if sx > 0 and sy > 0 and math.isfinite(sx * sy) else None


#: A primary WCS axis type: without one astropy's WCS has no celestial axes.
_CTYPE = re.compile(r"CTYPE\d+")


def _fitsio_centre(header: _fits.Cards, shape: tuple[int, int]
                   ) -> tuple[float, float, tuple[float, float] | None]:
    """:func:`_sky_centre`'s answer without astropy's WCS: computed for a plain TAN
    WCS, the RA/DEC keywords when there is no WCS at all, Declined for any other."""
    centre = _tan_centre(header, shape)
    if centre is not None:
        a, b, c, d = _linear_matrix(header)  # not None: the centre was computed from it
        return *centre, (math.hypot(b, d) * 3600.0, math.hypot(a, c) * 3600.0)
    if any(_CTYPE.fullmatch(key) for key in header.keys()):
        raise Declined("a WCS other than plain TAN: astropy's WCS decides")
    return (*_sky_keywords(header), None)


#: Keywords that bend or redefine a TAN WCS (SIP polynomials, projection parameters,
#: distortion tables, other ways to give the rotation, a third axis): astropy decides.
_NOT_PLAIN_TAN = re.compile(
    r"(?:A|B|AP|BP)_\w+|P[VS]\d+_\d+\w?|PROJP\d+"
    r"|D[PQ]\d+|C[PQ](?:DIS|ERR)\d+\w?|D2IM\w+|AXISCORR"
    r"|CROTA\d+|(?:PC|CD)\d{6}"
    r"|(?:CTYPE|CRPIX|CRVAL|CDELT|CUNIT)(?:[03-9]|\d\d+)"
    r"|(?:PC|CD)(?:[03-9]|\d\d+)_\d+|(?:PC|CD)\d+_(?:[03-9]|\d\d+)"
)
_MATRIX = ("1_1", "1_2", "2_1", "2_2")


def _tan_centre(header: _fits.Cards, shape: tuple[int, int]) -> tuple[float, float] | None:
    """RA/Dec (deg) of the centre pixel (the one :func:`_sky_centre` asks astropy for)
    of a plain gnomonic WCS: RA---TAN/DEC--TAN in degrees, a CD matrix or CDELT with an
    optional PC, LONPOLE 180. None for any other header."""
    if (header.get("CTYPE1"), header.get("CTYPE2")) != ("RA---TAN", "DEC--TAN"):
        return None
    if header.get("NAXIS") != 2 or header.get("WCSAXES", 2) != 2:
        return None
    if header.get("LONPOLE", 180) != 180 or any(
        header.get(f"CUNIT{i}", "deg") != "deg" for i in (1, 2)
    ):
        return None
    if any(_NOT_PLAIN_TAN.fullmatch(key) for key in header.keys()):
        return None
    crpix = header.get("CRPIX1"), header.get("CRPIX2")
    ra0, dec0 = header.get("CRVAL1"), header.get("CRVAL2")
    matrix = _linear_matrix(header)
    if matrix is None or not all(_is_number(v) for v in (*crpix, ra0, dec0)):
        return None
    if abs(dec0) >= 90:  # at the pole the default LONPOLE is 0, not 180
        return None
    ny, nx = shape
    # astropy's 0-based centre ((nx - 1) / 2, (ny - 1) / 2) is FITS pixel (nx + 1) / 2
    dx, dy = (nx + 1) / 2 - crpix[0], (ny + 1) / 2 - crpix[1]
    a, b, c, d = matrix
    ra, dec = gnomonic_to_sky(ra0, dec0, a * dx + b * dy, c * dx + d * dy)
    if not (math.isfinite(ra) and math.isfinite(dec)):
        return None
    return ra % 360.0, dec


def _linear_matrix(header: _fits.Cards) -> tuple[float, float, float, float] | None:
    """Pixel offsets -> intermediate world coordinates (deg), as wcslib reads them: the
    CD matrix (missing elements 0), else CDELT times PC (missing PC: the identity)."""
    cd = [header.get(f"CD{ij}") for ij in _MATRIX]
    pc = [header.get(f"PC{ij}") for ij in _MATRIX]
    if not all(v is None or _is_number(v) for v in (*cd, *pc)):
        return None
    if any(v is not None for v in cd):
        if any(v is not None for v in pc):  # both given: wcslib's precedence rules decide
            return None
        m = [0.0 if v is None else v for v in cd]
    else:
        s1, s2 = header.get("CDELT1"), header.get("CDELT2")
        if not (_is_number(s1) and _is_number(s2)):
            return None
        p = [unit if v is None else v for v, unit in zip(pc, (1, 0, 0, 1), strict=True)]
        m = [s1 * p[0], s1 * p[1], s2 * p[2], s2 * p[3]]
    if m[0] * m[3] - m[1] * m[2] == 0:  # singular: wcslib refuses or "fixes" it
        return None
    return m[0], m[1], m[2], m[3]


def gnomonic_to_sky(ra0: float, dec0: float, x: float, y: float) -> tuple[float, float]:
    """Inverse gnomonic (TAN) projection about (ra0, dec0), native pole at LONPOLE 180:
    intermediate world coordinates (x, y) in degrees -> (RA, Dec) in degrees.

    Written with atan2 throughout, so it stays accurate at the tangent point, near the
    celestial poles and far from the axis (Calabretta & Greisen 2002, eqs. 2, 54).
    """
    d0 = math.radians(dec0)
    xi, eta = math.radians(x), math.radians(y)
    across = math.cos(d0) - eta * math.sin(d0)
    ra = ra0 + math.degrees(math.atan2(xi, across))
    dec = math.degrees(math.atan2(math.sin(d0) + eta * math.cos(d0), math.hypot(xi, across)))
    return ra, dec


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


#: ASCII-table (``TableHDU``) column codes: text, integer, fixed and floating point.
_ASCII_CARRY = {"A": pa.string(), "I": pa.int64(), "F": pa.float64(), "E": pa.float64(),
                "D": pa.float64()}


def _fits_col(column: Any) -> Col:
    fmt = column.format
    code = fmt.format
    if not hasattr(fmt, "repeat"):  # an ASCII table's column: one value per cell
        carry = _ASCII_CARRY.get(code)
        scaled = column.bscale not in (None, 1, 1.0) and code == "I"
        role = "number" if code in "IFED" else "other"
        return Col(column.name, role, pa.float64() if scaled else carry)
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
