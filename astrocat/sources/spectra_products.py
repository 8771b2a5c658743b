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
object's ID, ra/dec, the file's other scalar columns). The families return a
:class:`~astrocat.sources.common.Loaded` and peek at raw FITS cards through ``sniff``:
they never import this module, which imports them.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from astrocat.errors import InputError
from astrocat.sources.common import Loaded, TableInfo
from astrocat.sources.sniff import first_extension_cards
from astrocat.sources.sniff import header_cards as _cards


def _families():
    from astrocat.sources import gaia_xp, spectra_fits

    return (gaia_xp, spectra_fits)


def recognise(path: Path, sniffed: str, head: bytes) -> str | None:
    """The product format of a file (``<family>:<name>``), or None for the other readers."""
    if sniffed in ("jpeg", "png", "parquet", "npy"):
        return None  # the hot path of image surveys: no product is one of these
    if sniffed in ("fits", "gzip") and not fits_may_hold_spectra(head, sniffed == "gzip",
                                                                 path):
        return None  # a 2-D image (a cut-out, a map): never opened twice
    for family in _families():
        name = family.recognise(path, sniffed, head)
        if name is not None:
            return f"{family.__name__.rsplit('.', 1)[-1]}:{name}"
    return None


def _leading_image(head: bytes) -> bool:
    """Whether the primary header's leading cards, in the order the FITS standard fixes
    (SIMPLE, BITPIX, NAXIS, NAXIS1, NAXIS2: section 4.4.1.1), say a 2-D (or larger)
    image with more than one row: read from five cards, not the whole header (a survey's
    cut-outs, tens of microseconds each). False where they are not in that form (the
    whole header is read then)."""
    def value(card: bytes, key: bytes) -> int | None:
        if card[:8] != key.ljust(8) or card[8:10] != b"= ":
            return None
        try:
            return int(card[10:].split(b"/")[0])
        except ValueError:
            return None

    naxis = value(head[160:240], b"NAXIS")
    rows = value(head[320:400], b"NAXIS2") if naxis is not None and naxis >= 2 else None
    return head[:8] == b"SIMPLE  " and rows is not None and rows > 1


def fits_may_hold_spectra(head: bytes, gzipped: bool = False,
                          path: Path | None = None) -> bool:
    """From the first bytes alone: False for a file whose primary HDU is a 2-D (or larger)
    image, or whose first extension is one, so the spectral readers never open the
    survey's image cut-outs; True where a spectrum may be (1-D data, tables, or too
    little read to tell)."""
    if gzipped:
        from astrocat.sources.sniff import gunzip_head

        head = gunzip_head(head, len(head))
    if _leading_image(head):
        return False
    primary = _cards(head[:2880 * 36])
    try:
        naxis = int(primary.get("NAXIS", "0"))
        if naxis >= 2 and int(primary.get("NAXIS2", "0")) > 1:
            return False
        if naxis:
            return True  # 1-D data: a WCS spectrum
    except ValueError:
        return True
    end = head.find(b"END" + b" " * 77)
    if end < 0:
        return True
    start = (end // 2880 + 1) * 2880  # the first extension's header
    ext = _cards(head[start:])
    if not ext:
        return True
    if (path is not None and not gzipped and "ZIMAGE" not in ext
            and ext.get("XTENSION", "").upper().startswith("BINTABLE")):
        try:  # a tile-compressed image says so after its columns: read the whole header
            ext = first_extension_cards(path) or ext
        except OSError:
            pass
    if ext.get("ZIMAGE", "").upper() == "T":  # a tile-compressed image (.fz)
        try:
            return not (int(ext.get("ZNAXIS", "0")) >= 2 and int(ext.get("ZNAXIS2", "0")) > 1)
        except ValueError:
            return True
    if ext.get("XTENSION", "").upper().startswith(("BINTABLE", "TABLE")):
        return True
    try:
        return not (int(ext.get("NAXIS", "0")) >= 2 and int(ext.get("NAXIS2", "0")) > 1)
    except ValueError:
        return True


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
