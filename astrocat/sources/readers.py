"""Read pixels and fluxes: the only module that touches data, everything else reads headers.

Every public function here either returns clean arrays or raises
:class:`~astrocat.errors.InputError` whose message names the file and says what was
wrong, so the pipeline can write an error row and carry on. Library exceptions (Pillow,
astropy, pyarrow, numpy) never escape: an astronomer should not have to read a
traceback to learn that one cut-out in a million is truncated.

Memory stays bounded: images are decoded at reduced size where the format allows it,
tables are read only over the requested row range.
"""

from __future__ import annotations

import io
import math
import os
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from PIL import Image

from astrocat.errors import InputError
from astrocat.sources import _fits

#: Above this fraction of NaN/inf pixels a plane is refused rather than patched.
MAX_BAD_PIXEL_FRACTION = 0.10
#: Names of an array column holding one spectrum per row (case-insensitive, in order).
FLUX_ARRAY_NAMES = ("flux", "spectrum")
FLUX_COLUMN = re.compile(r"flux_(\d+)", re.IGNORECASE)
#: Upper bound on the flux values decoded at once while reading a table range.
_BATCH_VALUES = 8_000_000
#: Data lines parsed to infer a CSV's column types.
_CSV_SNIFF_ROWS = 1000

_EXPECTED_FLUX = "expected flux_0 ... flux_N columns or one array column named flux"


@contextmanager
def _about(path: str | Path) -> Iterator[None]:
    """Prefix any failure with the file name and turn library errors into InputError."""
    try:
        yield
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from exc
    except FileNotFoundError as exc:
        raise InputError(f"{path}: file no longer exists ({exc.strerror})") from exc
    except PermissionError as exc:
        raise InputError(f"{path}: cannot read file: permission denied") from exc
    except MemoryError as exc:
        raise InputError(f"{path}: not enough memory to read this input") from exc
    except Exception as exc:  # noqa: BLE001 -- any library failure is a bad input here
        raise InputError(
            f"{path}: could not be read, the file looks corrupt or truncated "
            f"({type(exc).__name__}: {exc})"
        ) from exc


# --------------------------------------------------------------------------- RGB images


def read_rgb(path: str, size: int, crop_fraction: float) -> np.ndarray:
    """Centre-crop ``crop_fraction`` of the shorter side, resize to (size, size, 3) uint8.

    JPEGs are decoded at a reduced DCT scale (``draft``) when the crop still holds at
    least ``size`` pixels afterwards: for survey cut-outs that are several times larger
    than the network input this skips most of the decoding work.
    """
    if size < 1 or not 0.0 < crop_fraction <= 1.0:
        raise ValueError(f"need size >= 1 and 0 < crop_fraction <= 1, got {size}, {crop_fraction}")
    with _about(path):
        try:
            img = Image.open(path)
        except OSError as exc:
            raise InputError(f"not a readable JPEG or PNG image ({exc})") from exc
        with img:
            kind = img.format or "image"
            try:
                return _crop_resize(img, size, crop_fraction)
            except (
                OSError,
                SyntaxError,
                ValueError,
                EOFError,
                Image.DecompressionBombError,
            ) as exc:
                raise InputError(f"{kind} data is truncated or corrupt ({exc})") from exc


def _crop_resize(img: Image.Image, size: int, crop_fraction: float) -> np.ndarray:
    width, height = img.size
    side = crop_fraction * min(width, height)  # crop side in original pixels
    scale = 1.0  # original pixels per decoded pixel
    if img.format == "JPEG" and side > size:
        factor = size / side
        drafted = img.draft("RGB", (math.ceil(width * factor), math.ceil(height * factor)))
        if drafted is not None:
            scale = width / drafted[1][2]
    img.load()  # decoding errors (truncation included) surface here
    if img.mode in ("1", "LA", "I;16", "I;16L", "I;16B", "I"):
        img = _to_grey8(img)
    elif img.mode not in ("RGB", "L"):
        img = img.convert("RGB")  # palette, RGBA, CMYK, YCbCr ...
    # Crop on whole decoded pixels first (so nothing outside the crop bleeds into its
    # edges), then resize; Pillow's bilinear filter widens with the scale factor, so
    # downscales are antialiased.
    w, h = img.size
    crop = max(1, min(round(side / scale), w, h))
    left, top = (w - crop) // 2, (h - crop) // 2
    if (left, top, crop) != (0, 0, w) or h != w:
        img = img.crop((left, top, left + crop, top + crop))
    out = img.resize((size, size), Image.Resampling.BILINEAR)
    arr = np.asarray(out, dtype=np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(arr)


def _to_grey8(img: Image.Image) -> Image.Image:
    """8-bit greyscale from 1-bit, grey+alpha or 16-bit greyscale (scaled, not clipped)."""
    if img.mode in ("1", "LA"):
        return img.convert("L")
    arr = np.asarray(img).astype(np.float64)
    top = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
    return Image.fromarray(np.clip(arr * (255.0 / top) + 0.5, 0, 255).astype(np.uint8))


# --------------------------------------------------------------------------- 2-D planes


@dataclass(frozen=True)
class PlaneRead:
    """A 2-D single-band plane and where it points on the sky (NaN when unknown)."""

    data: np.ndarray  # float32, 2-D, all finite
    ra: float
    dec: float


def read_plane(path: str, fmt: str, hdu: int | None) -> PlaneRead:
    """Read a FITS image HDU (plain, .gz or tile-compressed) or a .npy map/cube as float32.

    A .npy cube (3-D) is projected by averaging along axis 0, as Quijote-style maps
    are made. Up to 10% NaN/inf pixels are replaced by the median (masked edges of
    cut-outs); more means the cut-out is mostly off the footprint and is refused.
    """
    if fmt not in ("fits_image", "fits", "gzip", "npy"):
        raise ValueError(f"read_plane cannot read format {fmt!r}")
    with _about(path):
        if fmt == "npy":
            data, ra, dec = _npy_plane(path), math.nan, math.nan
        else:
            data, ra, dec = _fits_plane(path, hdu)
        return PlaneRead(_patch_non_finite(data), ra, dec)


def _fits_plane(path: str, hdu: int | None) -> tuple[np.ndarray, float, float]:
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


def _npy_plane(path: str) -> np.ndarray:
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


def _patch_non_finite(data: np.ndarray) -> np.ndarray:
    bad = ~np.isfinite(data)
    n_bad = int(bad.sum())
    if n_bad == 0:
        return data
    if n_bad > MAX_BAD_PIXEL_FRACTION * data.size:
        raise InputError(
            f"{n_bad} of {data.size} pixels ({n_bad / data.size:.0%}) are NaN or infinite; "
            f"at most {MAX_BAD_PIXEL_FRACTION:.0%} can be patched (is the cut-out off the "
            "survey footprint?)"
        )
    data[bad] = np.median(data[~bad])
    return data


# --------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class TableInfo:
    """What a spectra table holds, from its header/metadata: where the flux is and
    which other columns ride along into the catalog (``carried``)."""

    n_rows: int
    flux_columns: tuple[str, ...] | None  # flux_0 ... flux_N, in order
    flux_array_column: str | None  # one list/array column
    n_flux: int
    carried: pa.Schema


@dataclass(frozen=True)
class _Col:
    """One column as seen from a header: its role for flux detection, its carried type."""

    name: str
    role: str  # 'number' | 'array' | 'other'
    carry: pa.DataType | None  # plain Arrow type when carried, None when dropped
    length: int | None = None  # fixed array length ('array' only)


def scan_table(path: str, fmt: str, hdu: int | None) -> TableInfo:
    """Find the flux and the carried columns from metadata and headers, without the data.

    Only a few rows are looked at: the first row of a variable-length flux column (for
    the number of flux values) and the first CSV lines (for column types).
    """
    with _about(path):
        return _scan_table(path, fmt, hdu)


def _scan_table(path: str, fmt: str, hdu: int | None) -> TableInfo:
    """:func:`scan_table` without the file name in messages (``describe`` adds its own)."""
    match fmt:
        case "parquet":
            return _scan_parquet(path)
        case "csv":
            return _scan_csv(path)
        case "ecsv":
            return _scan_ecsv(path)
        case "fits_table" | "fits" | "gzip":
            with _fits.open_fits(path) as hdul:
                return scan_fits_hdu(hdul[1 if hdu is None else hdu])
        case "npy":
            return _scan_npy(path)
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
    with _about(path):
        if stop > info.n_rows:
            raise InputError(
                f"rows up to {stop} were asked for but the table was scanned with "
                f"{info.n_rows} rows (file changed since?)"
            )
        if start == stop:
            return np.empty((0, info.n_flux), dtype=np.float32), info.carried.empty_table()
        match fmt:
            case "parquet":
                flux, carried = _read_parquet(path, start, stop, info)
            case "csv":
                flux, carried = _read_csv(path, start, stop, info)
            case "ecsv":
                flux, carried = _read_ecsv(path, start, stop, info)
            case "fits_table" | "fits" | "gzip":
                flux, carried = _read_fits_table(path, 1 if hdu is None else hdu, start, stop, info)
            case "npy":
                flux, carried = _read_npy(path, start, stop, info)
            case _:
                raise ValueError(f"read_spectra cannot read format {fmt!r}")
        _blank_bad_rows(flux)
        return flux, carried


# ------------------------------------------------------------- flux detection (shared)


def _choose_flux(
    cols: Sequence[_Col], lenient_text: bool = False
) -> tuple[tuple[str, ...] | None, _Col | None]:
    """Pick flux_0..flux_N columns, else an array column named flux/spectrum.

    ``lenient_text``: CSV columns are typed from a sample of lines, so a flux_i column
    that looks like text is still accepted (its bad values become NaN rows).
    """
    numbered: dict[int, _Col] = {}
    for col in cols:
        m = FLUX_COLUMN.fullmatch(col.name)
        if m is None:
            continue
        index = int(m.group(1))
        if index in numbered:
            raise InputError(
                f"flux column index {index} appears twice ({numbered[index].name!r} and "
                f"{col.name!r}); {_EXPECTED_FLUX}"
            )
        numbered[index] = col
    if numbered:
        missing = sorted(set(range(max(numbered) + 1)) - set(numbered))
        if missing:
            shown = ", ".join(f"flux_{i}" for i in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise InputError(
                f"flux columns must be contiguous flux_0 ... flux_{max(numbered)}, "
                f"but {shown}{more} {'is' if len(missing) == 1 else 'are'} missing"
            )
        ordered = [numbered[i] for i in range(len(numbered))]
        wrong = [c.name for c in ordered if c.role != "number" and not lenient_text]
        if wrong:
            raise InputError(
                f"flux column {wrong[0]!r} does not hold plain numbers; "
                "each flux_i column must be numeric"
            )
        return tuple(c.name for c in ordered), None
    by_name = {c.name.lower(): c for c in cols}
    for name in FLUX_ARRAY_NAMES:
        col = by_name.get(name)
        if col is None:
            continue
        if col.role == "array":
            return None, col
        if col.role == "number":
            raise InputError(
                f"column {col.name!r} holds one number per row, not a spectrum; {_EXPECTED_FLUX}"
            )
        raise InputError(f"column {col.name!r} does not hold numbers; {_EXPECTED_FLUX}")
    names = ", ".join(c.name for c in cols[:8]) + (", ..." if len(cols) > 8 else "")
    raise InputError(f"table has no flux columns: {_EXPECTED_FLUX} (columns: {names or 'none'})")


def _table_info(
    cols: Sequence[_Col],
    n_rows: int,
    first_length: Callable[[_Col], int],
    lenient_text: bool = False,
) -> TableInfo:
    """Assemble TableInfo; ``first_length(col)`` finds a variable array's length."""
    flux_columns, array_col = _choose_flux(cols, lenient_text)
    if flux_columns is not None:
        n_flux = len(flux_columns)
        used = {c.lower() for c in flux_columns}
    else:
        assert array_col is not None
        n_flux = array_col.length if array_col.length else first_length(array_col)
        used = {array_col.name.lower()}
    if n_flux < 1:
        raise InputError(f"flux column {array_col.name if array_col else ''!r} is empty")
    carried = pa.schema(
        [
            pa.field(c.name, c.carry)
            for c in cols
            if c.carry is not None and c.name.lower() not in used
        ]
    )
    return TableInfo(
        n_rows=n_rows,
        flux_columns=flux_columns,
        flux_array_column=array_col.name if array_col else None,
        n_flux=int(n_flux),
        carried=carried,
    )


def _blank_bad_rows(flux: np.ndarray) -> None:
    bad = ~np.isfinite(flux).all(axis=1)
    flux[bad] = np.nan


# ----------------------------------------------------------------- Arrow helpers


def _plain_arrow_type(t: pa.DataType) -> pa.DataType | None:
    """int*/uint* -> int64, float* -> float64, bool, string; anything else dropped."""
    if pa.types.is_dictionary(t):
        return _plain_arrow_type(t.value_type)
    if pa.types.is_integer(t):
        return pa.int64()
    if pa.types.is_floating(t):
        return pa.float64()
    if pa.types.is_boolean(t):
        return pa.bool_()
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    return None


def _is_list(t: pa.DataType) -> bool:
    return (
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_fixed_size_list(t)
        or pa.types.is_list_view(t)
        or pa.types.is_large_list_view(t)
    )


def _arrow_col(field: pa.Field) -> _Col:
    t = field.type
    if _is_list(t):
        value = t.value_type
        numeric = pa.types.is_integer(value) or pa.types.is_floating(value)
        length = t.list_size if pa.types.is_fixed_size_list(t) else None
        return _Col(field.name, "array" if numeric else "other", None, length)
    carry = _plain_arrow_type(t)
    numeric = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t)
    return _Col(field.name, "number" if numeric else "other", carry)


def _arrow_flux(table: pa.Table, info: TableInfo) -> np.ndarray:
    """Flux rows from Arrow columns; nulls and wrong-length lists give NaN rows."""
    n = table.num_rows
    if info.flux_columns is not None:
        out = np.empty((n, info.n_flux), dtype=np.float32)
        for j, name in enumerate(info.flux_columns):
            out[:, j] = _arrow_numbers(table.column(name))
        return out
    assert info.flux_array_column is not None
    column = table.column(info.flux_array_column).combine_chunks()
    return _list_flux(column, info.n_flux)


def _arrow_numbers(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """float64 values, null (or unparseable text) -> NaN."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        column = _cast_lenient(column, pa.float64())
    elif not pa.types.is_floating(column.type):
        column = pc.cast(column, pa.float64(), safe=False)
    return column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def _list_flux(column: pa.Array, n_flux: int) -> np.ndarray:
    out = np.full((len(column), n_flux), np.nan, dtype=np.float32)
    if pa.types.is_fixed_size_list(column.type):
        lengths = np.where(column.is_null().to_numpy(zero_copy_only=False), -1, n_flux)
    else:
        lengths = pc.fill_null(pc.list_value_length(column), -1).to_numpy(zero_copy_only=False)
    good = lengths == n_flux
    if good.any():
        values = pc.list_flatten(column.filter(pa.array(good)))
        values = pc.cast(values, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
        out[good] = values.reshape(-1, n_flux)
    return out


def _cast_lenient(column: pa.ChunkedArray | pa.Array, target: pa.DataType) -> pa.Array:
    """Cast text to ``target``; values that do not parse become null instead of failing."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    try:
        return pc.cast(column, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    parse = {pa.int64(): _parse_int, pa.float64(): _parse_float, pa.bool_(): _parse_bool}.get(
        target
    )
    if parse is None:
        return pc.cast(column, target, safe=False)
    return pa.array([parse(v) for v in column.to_pylist()], type=target)


def _parse_float(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _parse_int(text: Any) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        value = _parse_float(text)
        return int(value) if value is not None and value.is_integer() else None


def _parse_bool(text: Any) -> bool | None:
    lowered = str(text).strip().lower() if text is not None else ""
    return {"true": True, "t": True, "1": True, "false": False, "f": False, "0": False}.get(lowered)


def _arrow_carried(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """The carried columns, cast to the plain types promised in ``schema``."""
    if len(schema) == 0:
        return _empty_table(table.num_rows)
    arrays = []
    for field in schema:
        column = table.column(field.name)
        if pa.types.is_dictionary(column.type):
            column = pc.cast(column, column.type.value_type)
        if column.type == field.type:
            arrays.append(column.combine_chunks())
        elif pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            arrays.append(_cast_lenient(column, field.type))
        else:
            arrays.append(pc.cast(column, field.type, safe=False).combine_chunks())
    return pa.Table.from_arrays(arrays, schema=schema)


def _empty_table(n_rows: int) -> pa.Table:
    """A table with no columns but ``n_rows`` rows, so row counts always line up."""
    return pa.Table.from_struct_array(pa.array([{}] * n_rows, type=pa.struct([])))


# ----------------------------------------------------------------- Parquet


def _open_parquet(path: str) -> pq.ParquetFile:
    """Open for streaming: without ``pre_buffer=False`` and a read buffer, pyarrow loads
    whole column chunks, i.e. a whole row group (which may be the whole file)."""
    return pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)


def _scan_parquet(path: str) -> TableInfo:
    pf = _open_parquet(path)
    cols = [_arrow_col(f) for f in pf.schema_arrow]

    def first_length(col: _Col) -> int:
        for batch in pf.iter_batches(batch_size=256, columns=[col.name]):
            lengths = pc.list_value_length(batch.column(0)).drop_null()
            if len(lengths):
                return int(lengths[0].as_py())
        raise InputError(f"flux column {col.name!r} holds no values")

    return _table_info(cols, pf.metadata.num_rows, first_length)


def _read_parquet(path: str, start: int, stop: int, info: TableInfo) -> tuple[np.ndarray, pa.Table]:
    """Decode from the row group holding ``start`` onwards, in bounded batches.

    Row groups before ``start`` are never read. The batch stream is kept (per process,
    see :class:`_ParquetCursor`) so the next chunk of a sequential scan continues it
    instead of decoding the row group again from its first row: a 520,000-row file
    written as one row group is otherwise re-decoded once per chunk.
    """
    columns = _flux_names(info) + list(info.carried.names)
    key = (path, *_stamp(path), tuple(columns))
    cursor = _CURSORS.take(key, start)
    if cursor is None:
        cap = max(1, _BATCH_VALUES // max(info.n_flux, 1))
        cursor = _ParquetCursor(path, columns, start, min(max(stop - start, 1024), cap))
    parts = cursor.read(stop - start)
    _CURSORS.give(key, cursor)
    if sum(p.num_rows for p in parts) < stop - start:
        raise InputError(f"table ended before row {stop} (file changed since it was scanned?)")
    table = pa.Table.from_batches(parts)
    return _arrow_flux(table, info), _arrow_carried(table, info.carried)


def _stamp(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


class _ParquetCursor:
    """A batch stream over a Parquet file positioned at row ``position``."""

    def __init__(self, path: str, columns: list[str], start: int, max_batch: int) -> None:
        self.file = _open_parquet(path)
        md = self.file.metadata
        first, row = md.num_row_groups, 0
        for i in range(md.num_row_groups):
            n = md.row_group(i).num_rows
            if row + n > start:
                first = i
                break
            row += n
        self.position = row  # first row of the first group read
        self.pending: pa.RecordBatch | None = None
        groups = list(range(first, md.num_row_groups))
        self.batches: Iterator[pa.RecordBatch] = iter(())
        if groups:
            self.batches = self.file.iter_batches(
                batch_size=max_batch, row_groups=groups, columns=columns, use_threads=False
            )
        self._skip(start - row)

    def _next(self) -> pa.RecordBatch | None:
        if self.pending is not None:
            batch, self.pending = self.pending, None
            return batch
        return next(self.batches, None)

    def _skip(self, n: int) -> None:
        while n > 0:
            batch = self._next()
            if batch is None:
                return
            if batch.num_rows > n:
                self.pending = batch.slice(n)
            self.position += min(n, batch.num_rows)
            n -= batch.num_rows

    def read(self, n: int) -> list[pa.RecordBatch]:
        parts = []
        while n > 0:
            batch = self._next()
            if batch is None:
                break
            if batch.num_rows > n:
                self.pending = batch.slice(n)
                batch = batch.slice(0, n)
            parts.append(batch)
            self.position += batch.num_rows
            n -= batch.num_rows
        return parts

    def close(self) -> None:
        self.file.close()


class _CursorCache:
    """A few open cursors per process, handed out only to a reader starting where the
    cursor stands; a cursor in use is out of the cache, so threads never share one."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self.lock = threading.Lock()
        self.items: OrderedDict[tuple, _ParquetCursor] = OrderedDict()

    def take(self, key: tuple, position: int) -> _ParquetCursor | None:
        with self.lock:
            cursor = self.items.get(key)
            if cursor is None or cursor.position != position:
                return None
            return self.items.pop(key)

    def give(self, key: tuple, cursor: _ParquetCursor) -> None:
        with self.lock:
            old = self.items.pop(key, None)
            self.items[key] = cursor
            evicted = [
                self.items.popitem(last=False)[1] for _ in range(len(self.items) - self.size)
            ]
        for c in [old, *evicted]:
            if c is not None and c is not cursor:
                c.close()


_CURSORS = _CursorCache()


def _flux_names(info: TableInfo) -> list[str]:
    if info.flux_columns is not None:
        return list(info.flux_columns)
    assert info.flux_array_column is not None
    return [info.flux_array_column]


# ----------------------------------------------------------------- CSV


def _csv_lines(path: str, start: int, stop: int | None) -> tuple[bytes, list[bytes], int]:
    """The header line and the data lines [start, stop), plus the data lines passed.

    Lines are split on newlines (pyarrow's default CSV dialect does not allow newlines
    inside values either) and blank lines are skipped, as pyarrow skips them. Only the
    requested lines are kept, so memory is bounded by the range. Where the previous
    read stopped is remembered, so reading a file chunk after chunk is linear.
    """
    key = (path, *_stamp(path))
    header, index, offset = _CSV_BOOKMARKS.get(key, (b"", 0, 0))
    if index > start:
        header, index, offset = b"", 0, 0
    kept: list[bytes] = []
    with open(path, "rb") as f:
        f.seek(offset)
        for line in f:
            if stop is not None and index >= stop and header:
                break
            offset += len(line)
            if not line.strip(b"\r\n"):
                continue
            if not header:
                header = line
                continue
            if index >= start:
                kept.append(line if line.endswith(b"\n") else line + b"\n")
            index += 1
    with _BOOKMARK_LOCK:
        _CSV_BOOKMARKS.pop(key, None)
        _CSV_BOOKMARKS[key] = (header, index, offset)
        while len(_CSV_BOOKMARKS) > 64:
            _CSV_BOOKMARKS.popitem(last=False)
    return header, kept, index


#: (path, size, mtime_ns) -> (header line, data lines passed, byte offset after them)
_CSV_BOOKMARKS: OrderedDict[tuple, tuple[bytes, int, int]] = OrderedDict()
_BOOKMARK_LOCK = threading.Lock()


def _csv_count_rows(path: str) -> int:
    count, seen_header = 0, False
    with open(path, "rb") as f:
        for line in f:
            if line.strip(b"\r\n"):
                if seen_header:
                    count += 1
                seen_header = True
    return count


def _parse_csv(
    header: bytes, lines: list[bytes], all_text: bool, columns: Sequence[str] | None = None
) -> tuple[pa.Table, list[int]]:
    """Parse a bounded block of CSV lines; rows with the wrong column count are reported
    (by index) rather than failing the block."""
    bad: list[int] = []

    def on_invalid(row: Any) -> str:
        bad.append(row.number - 2 if row.number is not None else -1)  # 1-based, header first
        return "skip"

    data = header + b"".join(lines)
    names = None
    if all_text:
        names = pacsv.read_csv(
            io.BytesIO(header), read_options=pacsv.ReadOptions(use_threads=False)
        ).column_names
    convert = pacsv.ConvertOptions(
        column_types={n: pa.string() for n in names} if names else None,
        strings_can_be_null=True,
        null_values=[""] if all_text else None,
        include_columns=list(columns) if columns is not None else None,
    )
    table = pacsv.read_csv(
        io.BytesIO(data),
        read_options=pacsv.ReadOptions(use_threads=False, block_size=max(len(data) + 1, 1 << 16)),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
        convert_options=convert,
    )
    if -1 in bad:
        raise InputError("CSV rows have the wrong number of values")
    return table, bad


def _scan_csv(path: str) -> TableInfo:
    header, sample, _ = _csv_lines(path, 0, _CSV_SNIFF_ROWS)
    if not header:
        raise InputError("CSV file has no header line")
    table, _ = _parse_csv(header, sample, all_text=False)
    cols = []
    for field in table.schema:
        t = field.type
        numeric = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t)
        # In a CSV everything is text: keep dates and odd values as strings, not dropped.
        carry = _plain_arrow_type(t) or pa.string()
        cols.append(_Col(field.name, "number" if numeric else "other", carry))
    n_rows = _csv_count_rows(path)
    return _table_info(cols, n_rows, lambda col: 0, lenient_text=True)


def _read_csv(path: str, start: int, stop: int, info: TableInfo) -> tuple[np.ndarray, pa.Table]:
    """Re-stream from the start, keep only lines [start, stop), parse them as text."""
    header, lines, _ = _csv_lines(path, start, stop)
    n = stop - start
    if len(lines) < n:
        raise InputError(f"CSV ended before row {stop} (file changed since it was scanned?)")
    columns = _flux_names(info) + list(info.carried.names)
    table, bad = _parse_csv(header, lines, all_text=True, columns=columns)
    if bad:
        # Put rows with the wrong number of values back as all-null rows, in place.
        bad_set = set(bad)
        take, good = [], 0
        for i in range(n):
            if i in bad_set:
                take.append(None)
            else:
                take.append(good)
                good += 1
        table = table.take(pa.array(take, type=pa.int64()))
    return _arrow_flux(table, info), _arrow_carried(table, info.carried)


# ----------------------------------------------------------------- ECSV (small files)


def _read_ecsv_table(path: str) -> Any:
    from astropy.table import Table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Table.read(path, format="ascii.ecsv")


def _numpy_carry(dtype: np.dtype) -> pa.DataType | None:
    kind = dtype.kind
    if kind in "iu":
        return pa.int64()
    if kind == "f":
        return pa.float64()
    if kind == "b":
        return pa.bool_()
    if kind in "US":
        return pa.string()
    return None


def _numpy_col(name: str, dtype: np.dtype, item_shape: tuple[int, ...]) -> _Col:
    numeric = dtype.kind in "iuf"
    if item_shape:
        return _Col(name, "array" if numeric else "other", None, math.prod(item_shape))
    if dtype.kind == "O":  # variable-length arrays (ECSV 'float64[null]')
        return _Col(name, "array", None, None)
    return _Col(name, "number" if numeric else "other", _numpy_carry(dtype))


def _scan_ecsv(path: str) -> TableInfo:
    table = _read_ecsv_table(path)
    cols = [_numpy_col(c.name, c.dtype, c.shape[1:]) for c in table.columns.values()]

    def first_length(col: _Col) -> int:
        for value in table[col.name]:
            if value is not None and np.ndim(value) == 1 and len(value):
                return len(value)
        raise InputError(f"flux column {col.name!r} holds no values")

    return _table_info(cols, len(table), first_length)


def _read_ecsv(path: str, start: int, stop: int, info: TableInfo) -> tuple[np.ndarray, pa.Table]:
    table = _read_ecsv_table(path)[start:stop]
    return _numpy_flux(table, info, stop - start), _numpy_carried(table, info.carried, stop - start)


def _numpy_values(column: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Data and mask (None if unmasked) of an astropy/numpy column."""
    if isinstance(column, np.ma.MaskedArray):  # astropy MaskedColumn included
        mask = np.ma.getmaskarray(column)
        return np.asarray(np.ma.getdata(column)), (mask if mask.any() else None)
    return np.asarray(column), None


def _numpy_flux(table: Any, info: TableInfo, n: int) -> np.ndarray:
    if info.flux_columns is not None:
        out = np.empty((n, info.n_flux), dtype=np.float32)
        for j, name in enumerate(info.flux_columns):
            data, mask = _numpy_values(table[name])
            column = data.astype(np.float32)
            if mask is not None:
                column[mask] = np.nan
            out[:, j] = column
        return out
    assert info.flux_array_column is not None
    data, mask = _numpy_values(table[info.flux_array_column])
    if data.dtype.kind == "O":  # variable-length rows
        out = np.full((n, info.n_flux), np.nan, dtype=np.float32)
        for i, value in enumerate(data):
            row = _as_float_row(value)
            if row is not None and row.size == info.n_flux:
                out[i] = row
    else:
        out = data.reshape(n, -1).astype(np.float32)
        if out.shape[1] != info.n_flux:
            raise InputError(f"flux arrays have {out.shape[1]} values, expected {info.n_flux}")
    if mask is not None:
        out[mask.reshape(n, -1).any(axis=1)] = np.nan
    return out


def _as_float_row(value: Any) -> np.ndarray | None:
    try:
        return np.asarray(value, dtype=np.float32).ravel()
    except (TypeError, ValueError):
        return None


_NUMPY_OF = {pa.int64(): np.int64, pa.float64(): np.float64, pa.bool_(): np.bool_}


def _numpy_carried(table: Any, schema: pa.Schema, n: int) -> pa.Table:
    if len(schema) == 0:
        return _empty_table(n)
    arrays = []
    for field in schema:
        data, mask = _numpy_values(table[field.name])
        if data.dtype.kind == "S":
            data = np.char.decode(data, "ascii", errors="replace")
        elif data.dtype.kind != "U":
            # Native byte order (FITS is big-endian); ids above 2**63 would wrap, none
            # exist in practice.
            data = data.astype(_NUMPY_OF[field.type])
        arrays.append(pa.array(data, mask=mask, type=field.type, from_pandas=False))
    return pa.Table.from_arrays(arrays, schema=schema)


# ----------------------------------------------------------------- FITS tables


_FITS_NUMERIC = frozenset("BIJKED")


def _fits_col(column: Any) -> _Col:
    fmt = column.format
    code = fmt.format
    if code in ("P", "Q"):
        element = getattr(fmt, "p_format", None)
        return _Col(column.name, "array" if element in _FITS_NUMERIC else "other", None, None)
    if code in _FITS_NUMERIC:
        if fmt.repeat > 1:
            return _Col(column.name, "array", None, int(fmt.repeat))
        scaled = column.bscale not in (None, 1, 1.0)
        carry = pa.float64() if code in "ED" or scaled else pa.int64()
        return _Col(column.name, "number", carry)
    if code == "L" and fmt.repeat == 1:
        return _Col(column.name, "other", pa.bool_())
    if code == "A":
        return _Col(column.name, "other", pa.string())
    return _Col(column.name, "other", None)


def scan_fits_hdu(hdu: Any) -> TableInfo:
    """TableInfo for an open FITS table HDU, from its header only (``describe`` uses it)."""
    if not _fits.is_table_hdu(hdu):
        raise InputError("HDU is not a table")
    cols = [_fits_col(c) for c in hdu.columns]
    n_rows = int(hdu.header.get("NAXIS2", 0))

    def first_length(col: _Col) -> int:
        for value in hdu.data[:256].field(col.name):
            if len(value):
                return len(value)
        raise InputError(f"flux column {col.name!r} holds no values in its first rows")

    return _table_info(cols, n_rows, first_length)


def _read_fits_table(
    path: str, hdu: int, start: int, stop: int, info: TableInfo
) -> tuple[np.ndarray, pa.Table]:
    with _fits.open_fits(path) as hdul:
        rows = hdul[hdu].data[start:stop]  # a view of the memory map: only these rows
        table = {name: rows.field(name) for name in _flux_names(info) + list(info.carried.names)}
        flux = _numpy_flux(table, info, stop - start)
        carried = _numpy_carried(table, info.carried, stop - start)
    return flux, carried


# ----------------------------------------------------------------- .npy spectra


def _scan_npy(path: str) -> TableInfo:
    arr = _load_npy(path)
    if arr.ndim not in (1, 2):
        raise InputError(f"npy array has shape {arr.shape}: spectra must be 1-D or 2-D (rows)")
    n_rows = 1 if arr.ndim == 1 else arr.shape[0]
    return TableInfo(n_rows, None, None, int(arr.shape[-1]), pa.schema([]))


def _read_npy(path: str, start: int, stop: int, info: TableInfo) -> tuple[np.ndarray, pa.Table]:
    arr = _load_npy(path)
    rows = arr[None, :] if arr.ndim == 1 else arr
    flux = np.array(rows[start:stop], dtype=np.float32)
    if flux.shape[1] != info.n_flux:
        raise InputError(f"npy rows have {flux.shape[1]} values, expected {info.n_flux}")
    return flux, _empty_table(stop - start)
