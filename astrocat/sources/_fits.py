"""FITS helpers shared by describing (headers only) and reading (pixels).

Kept apart so the routing rule "which HDU is the image" is written once.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

#: Image HDU classes (CompImageHDU is an ImageHDU subclass in astropy >= 6, listed for
#: older versions' sake).
IMAGE_HDUS = (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)
TABLE_HDUS = (fits.BinTableHDU, fits.TableHDU)


@contextmanager
def open_fits(path: str) -> Iterator[fits.HDUList]:
    """Open lazily with memmap; astropy's warnings about sloppy headers are silenced.

    Survey headers are routinely non-standard; the warnings would flood the log for
    every file and say nothing the astronomer can act on.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        with fits.open(path, memmap=True, lazy_load_hdus=True) as hdul:
            yield hdul


def is_image_hdu(hdu: fits.hdu.base._BaseHDU) -> bool:
    return isinstance(hdu, IMAGE_HDUS)


def is_table_hdu(hdu: fits.hdu.base._BaseHDU) -> bool:
    return isinstance(hdu, TABLE_HDUS) and not isinstance(hdu, fits.CompImageHDU)


def is_compressed_image(hdu: fits.hdu.base._BaseHDU) -> bool:
    return isinstance(hdu, fits.CompImageHDU)


def header_shape(header: fits.Header) -> tuple[int, ...]:
    """Image shape in numpy order (NAXISn, ..., NAXIS1) from the header alone."""
    naxis = header.get("NAXIS", 0)
    if not isinstance(naxis, int) or naxis <= 0:
        return ()
    dims = [header.get(f"NAXIS{k}", 0) for k in range(naxis, 0, -1)]
    return tuple(d if isinstance(d, int) and d >= 0 else 0 for d in dims)


def squeeze_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Drop length-1 axes: a (1, H, W) 'cube' is really one plane and is accepted as such."""
    return tuple(d for d in shape if d != 1) if len(shape) > 2 else shape


def plane_shape(shape: tuple[int, ...]) -> tuple[int, int] | None:
    """The 2-D shape the image reduces to, or None if it is not a single plane."""
    squeezed = squeeze_shape(shape)
    if len(squeezed) == 2 and 0 not in squeezed:
        return squeezed[0], squeezed[1]
    return None


def image_data_bytes(header: fits.Header) -> int:
    """Bytes an uncompressed image's data needs, to spot truncated files cheaply."""
    bitpix = header.get("BITPIX", 8)
    shape = header_shape(header)
    return abs(int(bitpix)) // 8 * math.prod(shape) if shape else 0


def is_density_field(header: fits.Header) -> bool:
    """The ``ASTROCAT = 'density_field'`` tag marks a FITS map as a density field."""
    value = header.get("ASTROCAT")
    return isinstance(value, str) and value.strip().lower() == "density_field"
