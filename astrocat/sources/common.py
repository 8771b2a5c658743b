"""What every reader shares: one error contract and one set of rules for spectra tables.

Each format module reports failures through :func:`about` and finds the flux the same way
(:func:`table_info`), so a file means the same thing whatever its format.
"""

from __future__ import annotations

import errno
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from astrocat.errors import InputError, TransientInputError
from astrocat.kernels.spectral import SpectralAxis

#: OSError numbers that say nothing about the file's content: worth a retry next run.
TRANSIENT_ERRNOS = frozenset({errno.EIO, errno.EAGAIN, errno.EBUSY, errno.EINTR,
                              errno.ENOMEM, errno.ESTALE, errno.ETIMEDOUT, errno.ENFILE,
                              errno.EMFILE, errno.ECONNRESET, errno.EHOSTDOWN, errno.ENOLINK})
#: Above this fraction of NaN/inf pixels a plane is refused rather than patched.
MAX_BAD_PIXEL_FRACTION = 0.10
#: Names of an array column holding one spectrum per row (case-insensitive, in order).
FLUX_ARRAY_NAMES = ("flux", "spectrum")
FLUX_COLUMN = re.compile(r"flux_(\d+)", re.IGNORECASE)

_EXPECTED_FLUX = "expected flux_0 ... flux_N columns or one array column named flux"

#: Files up to this size are read whole by ``describe``, and their bytes handed over to
#: the reader that opens them next on the same thread (a JPEG's decoder, a FITS file's
#: memory layout): one open and read per cut-out instead of two.
HANDED_BYTES = 256 << 10

_handed = threading.local()


def hand_over(path: str, data: bytes) -> None:
    """Keep a file's bytes, read whole by ``describe``, for the next :func:`take_bytes` of
    ``path`` on this thread (its reader, next on the same decoder thread)."""
    _handed.data = (path, data)


def take_bytes(path: str) -> bytes | None:
    """The bytes :func:`hand_over` kept for ``path`` on this thread, once; None if none
    were (bytes kept for another path are dropped)."""
    kept = getattr(_handed, "data", None)
    _handed.data = None
    return kept[1] if kept is not None and kept[0] == path else None


@contextmanager
def about(path: str | Path) -> Iterator[None]:
    """Prefix any failure with the file name and turn library errors into InputError."""
    try:
        yield
    except InputError as exc:
        raise type(exc)(f"{path}: {exc}") from exc
    except FileNotFoundError as exc:
        raise TransientInputError(f"{path}: file no longer exists ({exc.strerror}); the next "
                                  "run retries it if it is back") from exc
    except PermissionError as exc:
        raise TransientInputError(f"{path}: cannot read file: permission denied; fix the "
                                  "permissions and re-run: it is retried") from exc
    except MemoryError as exc:
        raise TransientInputError(f"{path}: not enough memory to read this input; the next "
                                  "run retries it (fewer --workers leave more per worker)") from exc
    except Exception as exc:  # noqa: BLE001 -- any library failure is a bad input here
        if isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS:
            raise TransientInputError(f"{path}: I/O error ({exc.strerror}); the next run "
                                      "retries it") from exc
        raise InputError(
            f"{path}: could not be read ({library_message(exc)}): the file may be damaged "
            "or truncated, or hold a layout astrocat does not read"
        ) from exc


def library_message(exc: BaseException) -> str:
    """A library error's own words, without Python's class name (a catalog row is read by
    an astronomer, not a debugger); never empty."""
    if isinstance(exc, KeyError) and exc.args:
        return f"{exc.args[0]!r} is missing"
    text = str(exc).strip()
    return text or "the library gave no details"


def patch_non_finite(data: np.ndarray) -> np.ndarray:
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
    axis: SpectralAxis | None = None  # the wavelengths the file states for its samples
    product: str = ""  # what the file is, in words (spectral products), for messages


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


@dataclass(frozen=True)
class Col:
    """One column as seen from a header: its role for flux detection, its carried type."""

    name: str
    role: str  # 'number' | 'array' | 'other'
    carry: pa.DataType | None  # plain Arrow type when carried, None when dropped
    length: int | None = None  # fixed array length ('array' only)


# ------------------------------------------------------------- flux detection


def _choose_flux(
    cols: Sequence[Col], lenient_text: bool = False
) -> tuple[tuple[str, ...] | None, Col | None]:
    """Pick flux_0..flux_N columns, else an array column named flux/spectrum.

    ``lenient_text``: CSV columns are typed from a sample of lines, so a flux_i column
    that looks like text is still accepted (its bad values become NaN rows).
    """
    numbered: dict[int, Col] = {}
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


def table_info(
    cols: Sequence[Col],
    n_rows: int,
    first_length: Callable[[Col], int],
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


def blank_bad_rows(flux: np.ndarray) -> None:
    bad = ~np.isfinite(flux).all(axis=1)
    flux[bad] = np.nan


def empty_table(n_rows: int) -> pa.Table:
    """A table with no columns but ``n_rows`` rows, so row counts always line up."""
    return pa.Table.from_struct_array(pa.array([{}] * n_rows, type=pa.struct([])))


def flux_names(info: TableInfo) -> list[str]:
    if info.flux_columns is not None:
        return list(info.flux_columns)
    assert info.flux_array_column is not None
    return [info.flux_array_column]


# ----------------------------------------------- numpy columns (ECSV and FITS tables)


def _numpy_values(column: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Data and mask (None if unmasked) of an astropy/numpy column."""
    if isinstance(column, np.ma.MaskedArray):  # astropy MaskedColumn included
        mask = np.ma.getmaskarray(column)
        return np.asarray(np.ma.getdata(column)), (mask if mask.any() else None)
    return np.asarray(column), None


def numpy_flux(table: Any, info: TableInfo, n: int) -> np.ndarray:
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


def numpy_carried(table: Any, schema: pa.Schema, n: int) -> pa.Table:
    if len(schema) == 0:
        return empty_table(n)
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
