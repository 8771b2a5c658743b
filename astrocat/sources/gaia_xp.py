"""Gaia DR3 BP/RP (XP) spectra as the archive and GaiaXPy deliver them, and any VOTable
or array-text CSV of spectra.

* **XP_SAMPLED** (archive datalink, CSV/ECSV/FITS/VOTable): ``source_id``, ``flux`` and
  ``flux_error`` of 343 samples on 336-1020 nm in 2 nm steps (vacuum), W m^-2 nm^-1. CSV
  holds each array as text, ``"(a, b, ...)"`` or ``"[a,b,...]"``.
* **XP_CONTINUOUS** (basis-function coefficients, the bulk product): turned into absolute
  sampled spectra by GaiaXPy's ``calibrate`` on its default grid (the same 343 samples)
  when the ``[gaia]`` extra is installed; without it, an error row naming the extra.
* **GaiaXPy's outputs**: ``calibrate`` (absolute, W m^-2 nm^-1; the sampling in the FITS
  header ``SAMPLING``, the VOTable ``PARAM`` ``sampling`` or ``<name>_sampling.csv``
  beside a CSV) and ``convert`` (internally calibrated, BP and RP on separate rows with
  ``xp``, a pseudo-wavelength grid; a model that needs absolute flux refuses them).

Recognised by content (column names, array text, headers), never by file name.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa

from astrocat.errors import InputError
from astrocat.kernels.spectral import SpectralAxis, grid
from astrocat.sources.common import FLUX_ARRAY_NAMES, FLUX_COLUMN

#: XP_SAMPLED's grid and GaiaXPy calibrate's default: 336-1020 nm, 2 nm steps.
XP_SAMPLING = grid(336.0, 343, step=2.0)
XP_FLUX_UNIT = "W / (m2 nm)"
SAMPLING_SUFFIX = "_sampling.csv"
_ARRAY_TEXT = re.compile(rb'"\s*[(\[]')
_ID_NAMES = ("source_id",)


# ----------------------------------------------------------------- recognition


def recognise(path: Path, sniffed: str, head: bytes) -> str | None:
    if b"<VOTABLE" in head[:4096]:
        return "votable"
    if re.match(rb'\s*pos\r?\n\s*"\s*[(\[]', head):  # one array-text cell: not "csv"
        return "sampling"
    if sniffed in ("csv", "ecsv"):
        header = _header_line(head, sniffed)
        names = [n.strip().strip('"').lower() for n in header.split(",")]
        if names == ["pos"]:
            return "sampling"
        if "bp_coefficients" in names or b"name: bp_coefficients" in head:  # ECSV's YAML
            return "continuous"
        if "flux" in names and _ARRAY_TEXT.search(head):
            return "sampled"
        if sniffed == "ecsv" and b"name: source_id" in head and b"name: flux\n" in head:
            return "sampled"
        return None
    if sniffed in ("fits", "gzip"):
        return _recognise_fits(path)
    return None


def _header_line(head: bytes, sniffed: str) -> str:
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            return line
    return ""


def _recognise_fits(path: Path) -> str | None:
    from astrocat.sources.sniff import first_extension_cards

    try:
        header = first_extension_cards(path)  # raw cards: gzipped files give {}
    except OSError:
        return None
    if not header and path.name.lower().endswith(".gz"):
        header = _gzipped_extension(path)
    if not header.get("XTENSION", "").upper().startswith("BINTABLE"):
        return None
    names = {str(header.get(f"TTYPE{i}", "")).lower()
             for i in range(1, int(header.get("TFIELDS", "0") or 0) + 1)}
    if "bp_coefficients" in names:
        return "continuous"
    if "flux" in names and "source_id" in names and (
            "SAMPLING" in header or "xp" in names or _fits_array_length(header) == 343):
        return "sampled"
    return None


def _gzipped_extension(path: Path) -> dict[str, str]:
    from astropy.io import fits

    try:
        with fits.open(path) as hdul:
            return {k: str(v) for k, v in hdul[1].header.items()} if len(hdul) > 1 else {}
    except Exception:  # noqa: BLE001 -- not ours to judge: the FITS reader says why
        return {}


def _fits_array_length(header) -> int | None:
    for i in range(1, int(header.get("TFIELDS", 0)) + 1):
        if str(header.get(f"TTYPE{i}", "")).lower() == "flux":
            form = str(header.get(f"TFORM{i}", ""))  # 343E, or PE(343) variable-length
            m = re.search(r"\((\d+)\)", form) or re.match(r"(\d+)", form)
            return int(m.group(1)) if m else None
    return None


# ----------------------------------------------------------------- loading


def load(path: str, name: str):
    from astrocat.sources.common import Loaded

    if name == "continuous":
        return _continuous(path)
    table = _read_table(path, name)
    if "bp_coefficients" in {c.lower() for c in table.colnames}:
        return _continuous(path)
    flux, flux_unit = _flux(table)
    axis, product = _axis(path, table, flux.shape[1], flux_unit)
    return Loaded(flux, _carried(table), axis, product)


def _read_table(path: str, name: str):
    from astropy.table import Table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # units the VO spells its own way, W.nm-1.m-2
        if name == "votable":
            return Table.read(path, format="votable", use_names_over_ids=True)
        with open(path, "rb") as f:
            start = f.read(16).lstrip(b"\xef\xbb\xbf")
        if start.startswith(b"SIMPLE") or start.startswith(b"\x1f\x8b"):
            return Table.read(path, hdu=1, format="fits")
        if start.startswith(b"# %ECSV"):
            if not _gaiaxpy_ecsv(path):
                return Table.read(path, format="ascii.ecsv")
            import pandas as pd  # GaiaXPy's ECSV: arrays as text in columns said 'float'

            return Table.from_pandas(pd.read_csv(path, comment="#"))
        return Table.read(path, format="ascii.csv")


#: The datatypes the ECSV standard allows; GaiaXPy writes 'long' and 'float' (and arrays
#: as text in them), which astropy's ECSV reader warns about and then fails on.
_ECSV_TYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
               "uint64", "float16", "float32", "float64", "float128", "string"}


def _gaiaxpy_ecsv(path: str) -> bool:
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.startswith("#"):
                return False
            m = re.match(r"#\s+datatype:\s*(\S+)\s*$", line)
            if m and m.group(1) not in _ECSV_TYPES:
                return True
    return False


def _flux(table) -> tuple[np.ndarray, str]:
    """The flux column as (n, samples) float32 (array text parsed), and its unit."""
    col = next((table[c] for name in FLUX_ARRAY_NAMES for c in table.colnames
                if c.lower() == name), None)
    numbered = sorted(((int(m.group(1)), c) for c in table.colnames
                       if (m := FLUX_COLUMN.fullmatch(c))), key=lambda x: x[0])
    if col is None and numbered:  # flux_0 ... flux_N, as the other table readers take
        names = [c for _, c in numbered]
        unit = str(table[names[0]].unit) if table[names[0]].unit is not None else ""
        flux = np.stack([np.ma.filled(np.ma.asarray(table[c], dtype=np.float64), np.nan)
                         for c in names], axis=1).astype(np.float32)
        return flux, unit
    if col is None:
        raise InputError("no flux column: expected Gaia XP spectra (source_id, flux, "
                         "flux_error) or a spectra table with a flux array column or "
                         "flux_0 ... flux_N columns")
    unit = str(col.unit) if getattr(col, "unit", None) is not None else ""
    fast = _parse_text_arrays(col)
    if fast is not None:
        return fast, unit
    values = [_as_array(v) for v in col]
    lengths = {len(v) for v in values}
    if len(lengths) != 1:
        raise InputError(f"the flux arrays differ in length ({sorted(lengths)[:4]}): "
                         "every spectrum of a file must share one sampling")
    flux = np.array(values, dtype=np.float64).astype(np.float32)
    return flux, unit


def _parse_text_arrays(col) -> np.ndarray | None:
    """Array text of one length in every row, parsed in one go (numpy's C conversion);
    None where rows differ or hold missing values (the row-by-row path says which)."""
    cells = np.asarray(col)
    if cells.dtype.kind not in "US" or not len(cells):
        return None
    texts = [str(c).strip().strip("()[]") for c in cells]
    n = texts[0].count(",") + 1
    if any(t.count(",") + 1 != n for t in texts):
        return None
    try:
        values = np.array(",".join(texts).split(","), dtype=np.float64)
    except ValueError:
        return None
    return values.reshape(len(texts), n).astype(np.float32)


def _as_array(value) -> np.ndarray:
    if isinstance(value, str | bytes):
        text = value.decode() if isinstance(value, bytes) else value
        text = text.strip().strip("()[]")
        return np.array([float(x) if x.strip() not in ("", "nan", "null", "--") else np.nan
                         for x in text.replace(",", " ").split()], dtype=np.float64)
    arr = np.ma.filled(np.ma.asarray(value, dtype=np.float64), np.nan)
    return np.atleast_1d(arr)


def _axis(path: str, table, n: int, flux_unit: str) -> tuple[SpectralAxis | None, str]:
    """The samples' wavelengths (and what the file is) from what it states, else from
    the product's convention."""
    names = {c.lower() for c in table.colnames}
    internal = "xp" in names or "electron" in flux_unit.lower() or "e-/s" in flux_unit
    sampling = _stated_sampling(path, table)
    if internal:
        return (SpectralAxis(tuple(sampling) if sampling is not None else grid(0.0, n, 1.0),
                             unit="", medium="", flux_unit=flux_unit or "electron / s",
                             calibration="internal"),
                "GaiaXPy convert output (internally calibrated)")
    unit = _astropy_unit(flux_unit) or XP_FLUX_UNIT
    if sampling is not None and len(sampling) == n:
        return (SpectralAxis(tuple(float(x) for x in sampling), "nm", "vacuum", unit,
                             "absolute"), "Gaia XP sampled spectra (GaiaXPy calibrate)")
    if n == len(XP_SAMPLING):
        return (SpectralAxis(XP_SAMPLING, "nm", "vacuum", unit, "absolute"),
                "Gaia DR3 XP_SAMPLED spectra")
    return None, "a table of spectra"


def _astropy_unit(text: str) -> str:
    if not text:
        return ""
    from astropy import units as u

    try:
        return u.Unit(text.replace(".", " ").replace("**", ""), parse_strict="raise"
                      ).to_string()
    except ValueError:
        try:
            return u.Unit(text, format="vounit").to_string()
        except ValueError:
            return ""


def _stated_sampling(path: str, table) -> np.ndarray | None:
    """GaiaXPy writes its sampling beside the spectra: a FITS header keyword, a VOTable
    PARAM, or ``<name>_sampling.csv``."""
    meta = {str(k).lower(): v for k, v in (table.meta or {}).items()}
    raw = meta.get("sampling")
    if raw is None:
        companion = _companion(path)
        if companion is not None:
            raw = companion
    if raw is None:
        return None
    if isinstance(raw, str | bytes):
        return _as_array(raw)
    arr = np.asarray(raw, dtype=np.float64).ravel()
    return arr if arr.size > 1 else None


def _companion(path: str) -> str | None:
    stem = path
    for suffix in (".csv", ".ecsv", ".fits", ".xml"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    candidate = stem + SAMPLING_SUFFIX
    if not os.path.isfile(candidate):
        return None
    with open(candidate, encoding="utf-8") as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    return lines[1].strip().strip('"') if len(lines) >= 2 else None


def _carried(table) -> pa.Table:
    """The file's scalar columns (source_id, ra, dec, ...), as plain Arrow types."""
    arrays, names = [], []
    for name in table.colnames:
        col = table[name]
        if (name.lower() in ("flux", "flux_error", "spectrum") or len(col.shape) > 1
                or FLUX_COLUMN.fullmatch(name)):
            continue
        values = np.ma.asarray(col)
        if values.dtype.kind in "iu":
            arr = pa.array(np.ma.filled(values.astype(np.int64), 0), mask=np.ma.getmaskarray(
                values))
        elif values.dtype.kind == "f":
            arr = pa.array(np.ma.filled(values.astype(np.float64), np.nan))
        elif values.dtype.kind == "b":
            arr = pa.array(np.ma.filled(values, False))
        elif values.dtype.kind in "USO":
            if any(isinstance(v, str) and v.lstrip().startswith(("(", "[")) for v in
                   values[:1].tolist()):
                continue  # another array held as text
            arr = pa.array([None if m else str(v) for v, m in
                            zip(values.tolist(), np.ma.getmaskarray(values), strict=True)])
        else:
            continue
        arrays.append(arr)
        names.append(name)
    if not arrays:
        return pa.Table.from_struct_array(pa.array([{}] * len(table), type=pa.struct([])))
    return pa.Table.from_arrays(arrays, names=names)


def _continuous(path: str):
    """XP_CONTINUOUS coefficients -> absolute sampled spectra on GaiaXPy's default grid."""
    from astrocat.sources.common import Loaded

    try:
        import matplotlib

        with matplotlib.rc_context():  # GaiaXPy's plotter sets text.usetex on import
            from gaiaxpy import calibrate
    except ImportError as exc:
        raise InputError("Gaia XP_CONTINUOUS coefficients need GaiaXPy to become spectra: "
                         "pip install 'astrocat[gaia]' (or convert them yourself with "
                         "gaiaxpy.calibrate and give astrocat its output)") from exc
    _silence_gaiaxpy()
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            frame, sampling = calibrate(str(path), save_file=False)
        except Exception as exc:  # noqa: BLE001 -- GaiaXPy's own words
            raise InputError(f"GaiaXPy could not calibrate these XP_CONTINUOUS coefficients "
                             f"({exc})") from exc
    flux = np.array([np.asarray(v, dtype=np.float64) for v in frame["flux"]],
                    dtype=np.float64).astype(np.float32)
    carried = pa.table({"source_id": pa.array(frame["source_id"].astype("int64"))})
    axis = SpectralAxis(tuple(float(x) for x in sampling), "nm", "vacuum", XP_FLUX_UNIT,
                        "absolute")
    return Loaded(flux, carried, axis, "Gaia DR3 XP_CONTINUOUS (calibrated by GaiaXPy)")


def _silence_gaiaxpy() -> None:
    """GaiaXPy draws a tqdm bar per call on the terminal (astrocat draws its own): its
    calibrator module's ``tqdm`` becomes a plain pass-through."""
    import gaiaxpy.calibrator.calibrator as calibrator

    calibrator.tqdm = _no_bar


def _no_bar(iterable, *args, **kwargs):
    return iterable
