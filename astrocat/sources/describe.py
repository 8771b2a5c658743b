"""Describe one input file as an :class:`InputUnit`, from headers only, never failing.

Every file becomes exactly one unit: a file astrocat cannot use gets ``kind=None`` and an
``error`` saying what was wrong and what was expected, and becomes an error row in the
catalog, so nothing silently disappears from a survey run.

Routing rules (the format is recognised from content by :func:`~.sniff.sniff`):

- JPEG / PNG -> ``RGB_IMAGE``, one item (Pillow reads the header to reject garbage).
- FITS (also gzip-compressed, also tile-compressed ``CompImageHDU``): the primary HDU if
  it holds a 2-D image, else the first image HDU whose data is 2-D; its index goes in
  ``hdu`` and other image HDUs are ignored (one work item per file). Length-1 axes are
  dropped first, so a (1, H, W) image counts as 2-D. The chosen header's
  ``ASTROCAT = 'density_field'`` (any case) makes it ``DENSITY_FIELD``, otherwise
  ``MONO_IMAGE``. With no 2-D image but a table HDU holding spectra -> ``SPECTRUM``,
  ``fmt='fits_table'``, one item per row (NAXIS2). Only headers are read.
- Parquet / CSV / ECSV / FITS table: one spectrum per row. The flux is either numeric
  columns ``flux_0 ... flux_N`` (contiguous, any case) or one numeric list/array column
  named ``flux`` (else ``spectrum``, any case). Row counts come from Parquet metadata,
  the FITS header, a streamed line count (CSV) or the table itself (ECSV).
- ``.npy``: 1-D -> one spectrum; 2-D square -> one ``DENSITY_FIELD`` map; 2-D
  non-square -> a table of spectra (one per row); 3-D with equal sides -> a
  ``DENSITY_FIELD`` cube (projected when read); anything else is an error.
- Everything else, empty files and tables without rows or flux: ``kind=None`` + error.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from astrocat.errors import InputError
from astrocat.kinds import Kind
from astrocat.sources import _fits, fitsfiles, images, spectra_products
from astrocat.sources._fits import DEFAULT_PRODUCT, Product
from astrocat.sources.common import HANDED_BYTES, TRANSIENT_ERRNOS, hand_over, library_message
from astrocat.sources.readers import TableInfo, _scan_table, scan_fits_hdu
from astrocat.sources.sniff import HEAD_BYTES, looks_like, sniff_bytes
from astrocat.sources.units import InputUnit

_EXPECTED_FORMATS = "JPEG, PNG, FITS, Parquet, CSV/ECSV or .npy"


class _Skipped(Exception):
    """Internal: astrocat's own file (a catalog it wrote), never a survey input."""


class _Unusable(Exception):
    """Internal: the file cannot be used; carries the message and the format guessed."""

    def __init__(self, message: str, fmt: str = "unknown",
                 st: os.stat_result | None = None) -> None:
        super().__init__(message)
        self.fmt = fmt
        self.st = st  # the file's status, where it was read before the file was refused


def describe(path: str | Path, root: str | Path, source: str | None = None,
             product: Product = DEFAULT_PRODUCT) -> InputUnit:
    """One InputUnit for ``path``; never raises for a bad file (error units instead).
    ``source`` (the path as the catalog shows it) is worked out from ``root`` unless the
    caller already has it; ``product`` names the FITS HDU and cube plane a run reads."""
    path = Path(os.path.abspath(path))
    if source is None:
        source = source_of(path, Path(os.path.abspath(root)))
    size = mtime_ns = 0
    fmt = "unknown"
    transient = False
    try:
        st, whole = _stat_and_read(path)
        size, mtime_ns = st.st_size, st.st_mtime_ns
        head = whole[:HEAD_BYTES]
        sniffed = sniff_bytes(head)
        if sniffed in ("jpeg", "fits") and len(whole) == size:
            hand_over(str(path), whole)  # a JPEG's decoder, a FITS file's memory layout
        unit = _route(path, sniffed, head, product)
    except _Skipped as exc:
        return InputUnit(path=str(path), source=source, fmt="astrocat", kind=None, n_items=0,
                         size=size, mtime_ns=mtime_ns, skipped=str(exc))
    except _Unusable as exc:
        fmt, error = exc.fmt, str(exc)
        if exc.st is not None:
            size, mtime_ns = exc.st.st_size, exc.st.st_mtime_ns
    except FileNotFoundError:
        error = "file does not exist" + (" (broken symbolic link)" if path.is_symlink() else "")
    except PermissionError:
        with contextlib.suppress(OSError):  # listed but not readable: its status still is
            st = os.stat(path)
            size, mtime_ns = st.st_size, st.st_mtime_ns
        error = "cannot read file: permission denied; fix the permissions and re-run: it is " \
                "retried"
        transient = True
    except Exception as exc:  # noqa: BLE001 -- last resort: a bad file must not stop a run
        error = f"could not be read ({library_message(exc)})"
        transient = isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS
    else:
        return InputUnit(
            path=str(path),
            source=source,
            size=size,
            mtime_ns=mtime_ns,
            **unit,
        )
    return InputUnit(
        path=str(path),
        source=source,
        fmt=fmt,
        kind=None,
        n_items=1,
        size=size,
        mtime_ns=mtime_ns,
        error=error,
        transient=transient,
    )


def _stat_and_read(path: Path) -> tuple[os.stat_result, bytes]:
    """The file's status and its bytes (a small file whole, so its reader gets them; else
    its head), in four system calls. Each call releases and retakes the GIL the worker's
    threads share, and ``stat`` + ``open`` + ``read`` took eight. ``O_NONBLOCK``: opening
    a pipe must not wait for a writer (it is refused by its status, unread)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        _check_regular(os.stat(path))  # a directory, a socket: say which
        raise
    try:
        st = os.fstat(fd)
        _check_regular(st)
        want = st.st_size if st.st_size <= HANDED_BYTES else HEAD_BYTES
        whole = os.read(fd, want)
        while 0 < len(whole) < want and (more := os.read(fd, want - len(whole))):
            whole += more  # a short read (a network file system may give one)
        return st, whole
    finally:
        os.close(fd)


def _check_regular(st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise _Unusable("is a directory that could not be listed (permission denied?)", st=st)
    if not stat.S_ISREG(st.st_mode):
        raise _Unusable("not a regular file (a pipe, socket or device)", st=st)
    if st.st_size == 0:
        raise _Unusable("empty file (0 bytes; an interrupted download?)", st=st)


def source_of(path: str | Path, root: str | Path) -> str:
    """The path as the catalog shows it: relative to the input root where it lies under it,
    else absolute (both absolute and normalised; strings, not Paths: the driver asks this
    for every input)."""
    path, under_root = str(path), os.path.join(str(root), "")
    return (path[len(under_root):] if path.startswith(under_root) else path).replace(os.sep, "/")


def _route(path: Path, sniffed: str, head: bytes, product: Product) -> dict[str, Any]:
    """The unit's fmt/kind/n_items/hdu fields for a readable file, or raise _Unusable."""
    spectral = spectra_products.recognise(path, sniffed, head)
    if spectral is not None:
        return _product(path, spectral)
    match sniffed:
        case "jpeg" | "png":
            return _image(path, sniffed, head)
        case "fits" | "gzip":
            return _fits_file(path, sniffed == "gzip", product)
        case "parquet" | "csv" | "ecsv":
            return _table(path, sniffed)
        case "npy":
            return _npy(path)
    raise _Unusable(
        f"not a recognised format (expected {_EXPECTED_FORMATS}); "
        f"first bytes look like {looks_like(head)}"
    )


def _image(path: Path, fmt: str, head: bytes) -> dict[str, Any]:
    from PIL import Image

    if fmt == "jpeg" and images.jpeg_size(head):  # the header is in the first bytes read
        return {"fmt": fmt, "kind": Kind.RGB_IMAGE, "n_items": 1}  # else Pillow looks

    try:
        with Image.open(path) as img:
            width, height = img.size
    except Exception as exc:  # noqa: BLE001 -- Pillow raises many types for bad headers
        if isinstance(exc, OSError) and exc.errno is not None:
            raise  # the system's error (permissions, I/O), not the header's: see describe
        raise _Unusable(f"{fmt.upper()} header is corrupt ({exc})", fmt) from exc
    if width < 1 or height < 1:
        raise _Unusable(f"{fmt.upper()} image has no pixels ({width}x{height})", fmt)
    return {"fmt": fmt, "kind": Kind.RGB_IMAGE, "n_items": 1}


def _product(path: Path, fmt: str) -> dict[str, Any]:
    """A spectral product (Gaia XP, GaiaXPy, SDSS, DESI, 1-D WCS, VOTable)."""
    if fmt.endswith(":sampling"):
        raise _Skipped("a GaiaXPy sampling file (read with the spectra beside it)")
    return _spectra(fmt, fmt, lambda: spectra_products.scan(str(path), fmt))


def _table(path: Path, fmt: str) -> dict[str, Any]:
    if fmt == "parquet" and _is_astrocat_catalog(path):
        raise _Skipped("an astrocat catalog")
    return _spectra(fmt, fmt.upper(), lambda: _scan_table(str(path), fmt, None))


def _spectra(fmt: str, what: str, scan: Callable[[], TableInfo]) -> dict[str, Any]:
    """A file of spectra, one item per row, from its scan; or why it cannot be used."""
    try:
        info = scan()
    except InputError as exc:
        raise _Unusable(str(exc), fmt) from exc
    except Exception as exc:  # noqa: BLE001 -- pyarrow/astropy/GaiaXPy errors of all kinds
        raise _Unusable(f"{what} file could not be read ({library_message(exc)}): it "
                        "may be damaged or truncated", fmt) from exc
    if info.n_rows == 0:
        raise _Unusable("table has no rows", fmt)
    return {"fmt": fmt, "kind": Kind.SPECTRUM, "n_items": info.n_rows}


def _is_astrocat_catalog(path: Path) -> bool:
    """A Parquet file astrocat wrote: its footer carries astrocat's provenance key."""
    import pyarrow.parquet as pq

    try:
        return b"astrocat" in (pq.read_schema(path).metadata or {})
    except Exception:  # noqa: BLE001 -- unreadable: _scan_table says why
        return False


def _npy(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    except ValueError as exc:
        raise _Unusable(f"npy header is corrupt ({exc})", "npy") from exc
    if dtype.hasobject:
        raise _Unusable("npy array holds Python objects; save a plain numeric array instead", "npy")
    if dtype.kind not in "biuf":
        raise _Unusable(f"npy array has dtype {dtype}: expected plain real numbers", "npy")
    needed = dtype.itemsize * int(np.prod(shape)) if shape else dtype.itemsize
    if needed > path.stat().st_size:
        raise _Unusable(f"npy file is truncated: shape {shape} needs {needed} bytes", "npy")
    if 0 in shape:
        raise _Unusable(f"npy array is empty (shape {shape})", "npy")
    ndim = len(shape)
    if ndim == 1:
        return {"fmt": "npy", "kind": Kind.SPECTRUM, "n_items": 1}
    if ndim == 2 and shape[0] == shape[1]:
        return {"fmt": "npy", "kind": Kind.DENSITY_FIELD, "n_items": 1}
    if ndim == 2:
        return {"fmt": "npy", "kind": Kind.SPECTRUM, "n_items": shape[0]}
    if ndim == 3 and len(set(shape)) == 1:
        return {"fmt": "npy", "kind": Kind.DENSITY_FIELD, "n_items": 1}
    raise _Unusable(
        f"npy array has shape {shape}: astrocat expects a 1-D spectrum, a 2-D array "
        "(square: a density map; otherwise one spectrum per row) or a 3-D cube with equal "
        "sides",
        "npy",
    )


def _fits_file(path: Path, compressed_file: bool, product: Product) -> dict[str, Any]:
    try:
        return _fits_route(path, compressed_file, product)
    except _Unusable:
        raise
    except InputError as exc:  # a named HDU or plane that is not in this file
        raise _Unusable(str(exc), "fits") from exc
    except Exception as exc:  # noqa: BLE001 -- astropy raises many types for bad files
        raise _Unusable(f"FITS file could not be read ({library_message(exc)}): it may be "
                        "damaged or truncated", "fits") from exc


#: Above this size a .fits.gz is described by astropy: the cfitsio path inflates the whole
#: file twice (cfitsio, and Python to catch cut-off streams as astropy does), which costs
#: more than astropy's read from about here on (measured: 11 KB 0.32 vs 0.50 ms).
_FITSIO_GZIP_LIMIT = 16 * 1024


def _fits_route(path: Path, compressed_file: bool, product: Product) -> dict[str, Any]:
    """Pick the image HDU (or the spectra table) by reading headers only: through cfitsio
    where that gives astropy's routing, else (and for every error) through astropy."""
    return _fits.fast_or_reference(
        lambda: _fitsio_route(path, compressed_file, product),
        lambda: _astropy_route(path, compressed_file, product),
        keep=(_Unusable,),
    )


def _usable_image(shape: tuple[int, ...], product: Product) -> bool:
    """One plane, or a cube when the run names the plane to read."""
    return _fits.plane_shape(shape) is not None or (
        product.plane is not None and _fits.cube_planes(shape) is not None)


def _fitsio_route(path: Path, compressed_file: bool,
                  product: Product = DEFAULT_PRODUCT) -> dict[str, Any]:
    """:func:`_astropy_route` for files whose image (the named one, else the first 2-D
    image) comes before any table; Declined for the rest (tables, bad images, large gzip
    files, cubes)."""
    if compressed_file and path.stat().st_size > _FITSIO_GZIP_LIMIT:
        raise _fits.Declined("a large gzip file")
    f = _fits.FastFits(str(path), in_memory=True)
    try:
        if product.hdu is not None:
            index = _fits.find_hdu(f.headers(), product.hdu)
            if not f.is_image(index):
                raise _fits.Declined("the named HDU is not an image")
        else:
            index = f.first_plane()
        header = f.header(index)
        if not _fits.plane_shape(_fits.header_shape(header)):
            raise _fits.Declined("not one plane")
        if not compressed_file and not f.is_compressed(index):
            _check_not_truncated(path, f.data_start(index), _fits.image_data_bytes(header))
        unit = _image_unit(index, header)
    except BaseException:
        f.__exit__()
        raise
    f.hand_over(str(path))  # the reader, next on this thread, reads the pixels from it
    return unit


def _astropy_route(path: Path, compressed_file: bool,
                   product: Product = DEFAULT_PRODUCT) -> dict[str, Any]:
    """The reference routing, through astropy's lazily loaded HDUs."""
    bad_image: tuple[int, tuple[int, ...]] | None = None
    table: tuple[int, TableInfo] | None = None
    table_problem: str | None = None
    with _fits.open_fits(str(path)) as hdul:
        named = product.hdu is not None
        indices = ([_fits.find_hdu([h.header for h in hdul], product.hdu)] if named
                   else range(len(hdul)))
        for index in indices:
            hdu = hdul[index]
            if _fits.is_image_hdu(hdu):
                shape = _fits.header_shape(hdu.header)
                if not shape or 0 in shape:
                    if named:
                        raise _Unusable(f"HDU {index} ({_fits.hdu_label(product.hdu)}) holds "
                                        "no image data", "fits_image")
                    continue
                if not _usable_image(shape, product):
                    bad_image = bad_image or (index, shape)
                    continue
                if not compressed_file and not _fits.is_compressed_image(hdu):
                    data_start = hdu.fileinfo()["datLoc"]
                    _check_not_truncated(path, data_start, _fits.image_data_bytes(hdu.header))
                return _image_unit(index, hdu.header)
            if _fits.is_table_hdu(hdu) and table is None:
                try:
                    info = scan_fits_hdu(hdu)
                except InputError as exc:
                    table_problem = table_problem or f"FITS table in HDU {index}: {exc}"
                    continue
                if info.n_rows == 0:
                    table_problem = table_problem or f"FITS table in HDU {index} has no rows"
                    continue
                table = (index, info)
            elif named:
                raise _Unusable(f"HDU {index} ({_fits.hdu_label(product.hdu)}) is neither an "
                                "image nor a table", "fits")
    if table is not None:
        index, info = table
        return {"fmt": "fits_table", "kind": Kind.SPECTRUM, "n_items": info.n_rows, "hdu": index}
    if bad_image is not None:
        index, shape = bad_image
        raise _Unusable(fitsfiles.not_a_plane(shape, index), "fits_image")
    if table_problem is not None:
        raise _Unusable(table_problem, "fits_table")
    raise _Unusable("FITS file has no image or table HDU with data", "fits")


def _image_unit(index: int, header: _fits.HeaderLike) -> dict[str, Any]:
    kind = Kind.DENSITY_FIELD if _fits.is_density_field(header) else Kind.MONO_IMAGE
    return {"fmt": "fits_image", "kind": kind, "n_items": 1, "hdu": index}


def _check_not_truncated(path: Path, data_start: int, data_bytes: int) -> None:
    """An uncompressed HDU whose data runs past the end of the file is truncated."""
    size = path.stat().st_size
    if data_start + data_bytes > size:
        raise _Unusable(
            f"FITS file is truncated: the image data needs {data_bytes} bytes after the "
            f"header but only {max(size - data_start, 0)} are there",
            "fits_image",
        )
