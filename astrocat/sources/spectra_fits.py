"""Spectral products in FITS, recognised by content: SDSS/BOSS ``spec-`` files, DESI coadds
and 1-D FITS images with a wavelength WCS.

* ``sdss_spec``: the SDSS DR8+ ``spec-PLATE-MJD-FIBER.fits`` data model. HDU 1 ``COADD``
  (``flux`` in 1e-17 erg/s/cm2/A, ``loglam`` log10 of the vacuum wavelength in A,
  ``ivar``, ``and_mask``, ...); HDU 2 ``SPECOBJ`` (one row: ``SPECOBJID``, ``PLUG_RA``,
  ``PLUG_DEC``, ``PLATE``, ``MJD``, ``FIBERID``, ``Z``, ...). One spectrum per file.
* ``desi_coadd``: the DESI ``coadd-*.fits`` (and ``spectra-*.fits``) data model. Image
  HDUs ``B_WAVELENGTH``, ``B_FLUX`` (n_spectra x n_pixels), ``B_IVAR``, ``B_MASK`` and the
  same for the ``R`` and ``Z`` arms; table ``FIBERMAP`` (``TARGETID``, ``TARGET_RA``,
  ``TARGET_DEC``, ...). The arms present are concatenated B, R, Z into one row per
  spectrum on one axis of increasing segments (the resampler averages the overlaps).
* ``wcs1d``: a 1-D image (NAXIS = 1, or NAXIS2 = 1) in the primary HDU (or the first
  extension when the primary is empty) whose header states the wavelength of its pixels:
  ``CRVAL1``, ``CDELT1`` or ``CD1_1``, ``CRPIX1`` (default 1), ``CTYPE1`` one of WAVE,
  AWAV (air), WAVE-LOG / AWAV-LOG (FITS's logarithmic axis), LINEAR or none, IRAF's
  ``DC-FLAG`` = 1 (the axis is log10 of the wavelength), ``CUNIT1`` (default Angstrom, or
  IRAF's ``WAT1_001 units=``) and ``BUNIT``; the same wavelengths as specutils'
  ``wcs1d-fits`` loader (astropy's WCS), and IRAF's log-linear axis that loader leaves in
  log10. An ``IVAR`` extension (zero: masked) and a ``MASK``/``DQ``/``QUALITY`` extension
  (non-zero: masked) of the same length are applied where present.

Masked samples (zero inverse variance, mask bits set, non-finite flux) are NaN; rows are
never blanked whole (the pipeline reports a spectrum with too few good samples).
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from astrocat.errors import InputError
from astrocat.kernels.spectral import SpectralAxis
from astrocat.sources import _fits
from astrocat.sources.common import Loaded, about

SDSS, DESI, WCS1D = "sdss_spec", "desi_coadd", "wcs1d"

#: SDSS and DESI flux density unit, as their data models state it.
SURVEY_FLUX_UNIT = "1e-17 erg / (Angstrom s cm2)"
#: CTYPE1 values of a 1-D wavelength axis read here (FITS WCS paper III, IRAF's LINEAR).
WCS1D_CTYPES = frozenset({"WAVE", "AWAV", "WAVE-LOG", "AWAV-LOG", "LINEAR", ""})
#: DESI's arms, in the order they are concatenated.
DESI_ARMS = ("B", "R", "Z")
#: Headers looked at (at most) for DESI's FIBERMAP and ?_FLUX HDUs when recognising.
_MAX_HDUS = 40
_ARM_FLUX = re.compile(r"^([A-Z])_FLUX$")


# --------------------------------------------------------------------------- recognise


def recognise(path: Path, sniffed: str, head: bytes) -> str | None:
    """``sdss_spec``, ``desi_coadd``, ``wcs1d`` or None, from headers only; never raises
    (a file that cannot even be opened is left to the other readers to report)."""
    if sniffed not in ("fits", "gzip"):
        return None
    if sniffed == "fits" and _raw_sdss(path):  # the many-files case, without astropy
        return SDSS
    try:
        with _fits.open_fits(str(path), memmap=True) as hdul:
            return _recognise(hdul)
    except Exception:  # noqa: BLE001 -- not ours, or damaged: the FITS reader says which
        return None


def _raw_sdss(path: Path) -> bool:
    """An SDSS/BOSS spec file from its raw cards: an empty primary, then COADD with
    loglam or flux (as :func:`_recognise` decides it through astropy)."""
    from astrocat.sources.sniff import first_extension_cards

    try:
        cards = first_extension_cards(path, max_blocks=8)
    except OSError:
        return False
    if cards.get("EXTNAME", "").strip().upper() != "COADD" or not cards.get(
            "XTENSION", "").upper().startswith("BINTABLE"):
        return False
    names = {cards.get(f"TTYPE{i}", "").strip().lower()
             for i in range(1, int(cards.get("TFIELDS", "0") or 0) + 1)}
    return bool(names & {"loglam", "flux"})


def _recognise(hdul: Any) -> str | None:
    primary = hdul[0].header
    if _naxis(primary) > 0:
        return WCS1D if _is_wcs1d(primary) else None
    try:
        first = hdul[1]
    except IndexError:
        return None
    name = _extname(first.header)
    if name == "COADD" and _fits.is_table_hdu(first):
        columns = {c.lower() for c in first.columns.names}
        if columns & {"loglam", "flux"}:
            return SDSS
    if _fits.is_image_hdu(first):
        return WCS1D if _is_wcs1d(first.header) else None
    if not _fits.is_table_hdu(first):  # DESI's HDU 1 is FIBERMAP: image MEFs are not read on
        return None
    fibermap = flux = False
    for k in range(1, _MAX_HDUS):
        try:
            name = _extname(hdul[k].header)
        except IndexError:
            break
        fibermap |= name == "FIBERMAP"
        flux |= bool(_ARM_FLUX.match(name))
        if fibermap and flux:
            return DESI
    return None


def _naxis(header: Any) -> int:
    n = header.get("NAXIS", 0)
    return n if isinstance(n, int) else 0


def _extname(header: Any) -> str:
    name = header.get("EXTNAME", "")
    return name.strip().upper() if isinstance(name, str) else ""


def _is_wcs1d(header: Any) -> bool:
    """A 1-D image (or one row of a 2-D one) with a wavelength axis in its header."""
    shape = _fits.header_shape(header)
    if not shape or len(shape) > 2 or (len(shape) == 2 and shape[0] != 1) or shape[-1] < 2:
        return False
    ctype = header.get("CTYPE1", "")
    if not isinstance(ctype, str) or ctype.strip().upper() not in WCS1D_CTYPES:
        return False
    return _number(header.get("CRVAL1")) is not None and (
        _number(header.get("CD1_1")) is not None or _number(header.get("CDELT1")) is not None)


def _number(value: Any) -> float | None:
    """A finite header number (not a bool, not a string), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------- load


def load(path: str, name: str) -> Loaded:
    readers = {SDSS: _load_sdss, DESI: _load_desi, WCS1D: _load_wcs1d}
    if name not in readers:
        raise InputError(f"{path}: unknown FITS spectral product {name!r}")

    def reference() -> Loaded:
        with about(path), _fits.open_fits(path, memmap=False) as hdul:
            return readers[name](path, hdul)

    if name == SDSS:  # one spectrum a file, millions of files: astropy costs ~10 ms each
        return _fits.fast_or_reference(lambda: _load_sdss_fast(path), reference)
    return reference()


def _load_sdss_fast(path: str) -> Loaded:
    """The SDSS/BOSS spec file through cfitsio (~1 ms), or Declined: astropy decides."""
    with _fits.FastFits(path) as ff:
        f = ff._fits
        coadd = f[1]
        names = {n.lower(): n for n in coadd.get_colnames()}
        if "loglam" not in names or "flux" not in names or len(f) < 3:
            raise _fits.Declined("not the whole data model: astropy says what is missing")
        wanted = [names[c] for c in ("loglam", "flux", "ivar", "and_mask") if c in names]
        data = coadd.read(columns=wanted)
        specobj = f[2]
        if specobj.get_extname().upper() != "SPECOBJ":
            raise _fits.Declined("no SPECOBJ second")
        sonames = {n.upper(): n for n in specobj.get_colnames()}
        keys = [k for k in ("SPECOBJID", "PLUG_RA", "PLUG_DEC", "PLATE", "MJD", "FIBERID", "Z")
                if k in sonames]
        if "SPECOBJID" not in keys or specobj.get_nrows() < 1:
            raise _fits.Declined("no SPECOBJID: astropy's path names the file instead")
        rec = specobj.read(columns=[sonames[k] for k in keys], rows=[0])[0]
        bunit = ff.header(0).get("BUNIT")
    loglam = np.asarray(data[names["loglam"]], dtype=np.float64)
    flux = np.asarray(data[names["flux"]], dtype=np.float64)
    if loglam.ndim != 1 or len(loglam) < 2:
        raise _fits.Declined("too few pixels: astropy's path says so")
    bad = ~np.isfinite(flux)
    if "ivar" in names:
        bad |= ~(np.asarray(data[names["ivar"]], dtype=np.float64) > 0)
    if "and_mask" in names:
        bad |= np.asarray(data[names["and_mask"]]) != 0
    what = "SDSS/BOSS spec file"
    lam = _increasing(10.0 ** loglam, what, "10**loglam")
    row = {k: _scalar(rec[sonames[k]]) for k in keys}
    if not _text(row["SPECOBJID"]):
        raise _fits.Declined("empty SPECOBJID")
    carried = _sdss_row_table(row, Path(path).stem)
    unit = _flux_unit(bunit) or SURVEY_FLUX_UNIT
    axis = SpectralAxis(wavelength=tuple(lam.tolist()), unit="Angstrom", medium="vacuum",
                        flux_unit=unit, calibration="absolute")
    return Loaded(flux=np.where(bad, np.nan, flux).astype(np.float32)[None, :],
                  carried=carried, axis=axis, product=what)


# -- SDSS/BOSS spec files


def _load_sdss(path: str, hdul: Any) -> Loaded:
    what = "SDSS/BOSS spec file"
    coadd = hdul[1]
    cols = {c.lower(): c for c in coadd.columns.names}
    for need in ("loglam", "flux"):
        if need not in cols:
            raise InputError(
                f"{what}: HDU 1 (COADD) has no '{need}' column (it has "
                f"{', '.join(coadd.columns.names) or 'none'}); the SDSS DR8+ data model has "
                "flux, loglam, ivar and and_mask: is the file damaged or another product?")
    data = coadd.data
    loglam = np.asarray(data[cols["loglam"]], dtype=np.float64)
    flux = np.asarray(data[cols["flux"]], dtype=np.float64)
    if loglam.ndim != 1 or len(loglam) < 2:
        raise InputError(f"{what}: COADD has {len(loglam)} rows; a spectrum needs at least 2 "
                         "pixels")
    bad = ~np.isfinite(flux)
    if "ivar" in cols:
        ivar = np.asarray(data[cols["ivar"]], dtype=np.float64)
        bad |= ~(ivar > 0)
    if "and_mask" in cols:
        bad |= np.asarray(data[cols["and_mask"]]) != 0
    lam = _increasing(10.0 ** loglam, what, "10**loglam")
    flux = np.where(bad, np.nan, flux).astype(np.float32)[None, :]

    carried = _sdss_carried(hdul, Path(path).stem)
    unit = _flux_unit(hdul[0].header.get("BUNIT")) or SURVEY_FLUX_UNIT
    axis = SpectralAxis(wavelength=tuple(lam.tolist()), unit="Angstrom", medium="vacuum",
                        flux_unit=unit, calibration="absolute")
    return Loaded(flux=flux, carried=carried, axis=axis, product=what)


def _sdss_carried(hdul: Any, stem: str) -> pa.Table:
    """specobjid, ra/dec (PLUG_RA/PLUG_DEC), plate, mjd, fiberid, z_sdss: from SPECOBJ,
    else from the primary header (which has all but SPECOBJID and Z)."""
    row: dict[str, Any] = {}
    table = _hdu_named(hdul, "SPECOBJ")
    if table is not None and _fits.is_table_hdu(table) and len(table.data):
        rec = table.data[0]
        names = {n.upper(): n for n in table.columns.names}
        row = {key: rec[names[key]] for key in
               ("SPECOBJID", "PLUG_RA", "PLUG_DEC", "PLATE", "MJD", "FIBERID", "Z")
               if key in names}
    header = hdul[0].header
    for key, alt in (("PLUG_RA", "PLUG_RA"), ("PLUG_DEC", "PLUG_DEC"), ("PLATE", "PLATEID"),
                     ("MJD", "MJD"), ("FIBERID", "FIBERID")):
        if key not in row and alt in header:
            row[key] = header[alt]

    return _sdss_row_table({k: _scalar(v) for k, v in row.items()}, stem)


def _text(value: Any) -> str:
    return (value.decode() if isinstance(value, bytes) else
            str(value) if value is not None else "").strip()


def _sdss_row_table(row: dict[str, Any], stem: str) -> pa.Table:
    """The carried columns of one SDSS spectrum from its SPECOBJ/header values."""

    def num(key: str, kind: type) -> Any:
        v = _number(row.get(key))
        return None if v is None else kind(v)

    specobjid = _text(row.get("SPECOBJID"))
    ra, dec = num("PLUG_RA", float), num("PLUG_DEC", float)
    columns = {
        # No SPECOBJID (not in SPECOBJ, e.g. a stripped file): the file's name names it.
        ("specobjid" if specobjid else "object_id"): pa.array([specobjid or stem],
                                                             pa.string()),
        "ra": pa.array([math.nan if ra is None else ra], pa.float64()),
        "dec": pa.array([math.nan if dec is None else dec], pa.float64()),
        "plate": pa.array([num("PLATE", int)], pa.int32()),
        "mjd": pa.array([num("MJD", int)], pa.int32()),
        "fiberid": pa.array([num("FIBERID", int)], pa.int32()),
        "z_sdss": pa.array([num("Z", float)], pa.float64()),
    }
    return pa.table(columns)


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


# -- DESI coadds


def _load_desi(path: str, hdul: Any) -> Loaded:
    what = ("DESI spectra file" if Path(path).name.lower().startswith("spectra-")
            else "DESI coadd file")
    fluxes, lams = [], []
    n_spec, f_unit = None, ""
    for arm in DESI_ARMS:
        f_hdu = _hdu_named(hdul, f"{arm}_FLUX")
        if f_hdu is None:
            continue
        w_hdu = _hdu_named(hdul, f"{arm}_WAVELENGTH")
        if w_hdu is None or w_hdu.data is None:
            raise InputError(f"{what}: {arm}_FLUX has no {arm}_WAVELENGTH HDU beside it: "
                             "the wavelengths of its pixels are unknown")
        lam = np.asarray(w_hdu.data, dtype=np.float64).ravel()
        flux = f_hdu.data
        if flux is None or flux.ndim != 2 or flux.shape[1] != len(lam):
            shape = None if flux is None else flux.shape
            raise InputError(f"{what}: {arm}_FLUX has shape {shape}; expected (spectra, "
                             f"{len(lam)}) to match {arm}_WAVELENGTH")
        if n_spec is None:
            n_spec = flux.shape[0]
        elif flux.shape[0] != n_spec:
            raise InputError(f"{what}: {arm}_FLUX holds {flux.shape[0]} spectra, the arm "
                             f"before it {n_spec}: the arms must hold the same spectra")
        flux = np.asarray(flux, dtype=np.float32)
        bad = ~np.isfinite(flux)
        for suffix, is_bad in (("IVAR", lambda a: ~(a > 0)), ("MASK", lambda a: a != 0)):
            extra = _hdu_named(hdul, f"{arm}_{suffix}")
            if extra is None or extra.data is None:
                continue
            if extra.data.shape != flux.shape:
                raise InputError(f"{what}: {arm}_{suffix} has shape {extra.data.shape}, "
                                 f"{arm}_FLUX {flux.shape}: they must match")
            bad |= is_bad(np.asarray(extra.data))
        fluxes.append(np.where(bad, np.float32(np.nan), flux))
        f_unit = f_unit or _flux_unit(f_hdu.header.get("BUNIT"))
        unit = _length_unit(w_hdu.header.get("BUNIT"), f"{arm}_WAVELENGTH BUNIT")
        lams.append(_increasing(_to_angstrom(lam, unit), what, f"{arm}_WAVELENGTH"))
    if not fluxes:
        raise InputError(f"{what}: no B_FLUX, R_FLUX or Z_FLUX HDU: nothing to read")

    fibermap = _hdu_named(hdul, "FIBERMAP")
    if fibermap is None or not _fits.is_table_hdu(fibermap):
        raise InputError(f"{what}: FIBERMAP is not a table")
    fm = fibermap.data
    if len(fm) != n_spec:
        raise InputError(f"{what}: FIBERMAP has {len(fm)} rows for {n_spec} spectra: the "
                         "file is inconsistent")
    names = {n.upper(): n for n in fibermap.columns.names}
    if "TARGETID" not in names:
        raise InputError(f"{what}: FIBERMAP has no TARGETID column")

    def col(key: str) -> np.ndarray:
        if key not in names:
            return np.full(n_spec, np.nan)
        return np.asarray(fm[names[key]], dtype=np.float64)

    carried = pa.table({
        "targetid": pa.array(np.asarray(fm[names["TARGETID"]], dtype=np.int64)),
        "ra": pa.array(col("TARGET_RA")),
        "dec": pa.array(col("TARGET_DEC")),
    })
    axis = SpectralAxis(wavelength=tuple(np.concatenate(lams).tolist()), unit="Angstrom",
                        medium="vacuum", flux_unit=f_unit or SURVEY_FLUX_UNIT,
                        calibration="absolute")
    return Loaded(flux=np.concatenate(fluxes, axis=1), carried=carried, axis=axis,
                  product=what)


# -- 1-D WCS images


def _load_wcs1d(path: str, hdul: Any) -> Loaded:
    what = "1-D FITS spectrum (wavelength WCS)"
    index = 0 if _naxis(hdul[0].header) > 0 else 1
    hdu = hdul[index]
    header = hdu.header
    if hdu.data is None:
        raise InputError(f"{what}: HDU {index} holds no data")
    flux = np.asarray(hdu.data, dtype=np.float64).reshape(-1)
    n = len(flux)
    lam, unit, medium = wcs1d_wavelengths(header, n, what)
    bad = ~np.isfinite(flux)
    for names, is_bad in ((("IVAR",), lambda a: ~(a > 0)),
                          (("MASK", "DQ", "QUALITY"), lambda a: a != 0)):
        for extra in (_hdu_named(hdul, k) for k in names):
            if (extra is not None and extra is not hdu and _fits.is_image_hdu(extra)
                    and extra.data is not None and extra.data.size == n):
                bad |= is_bad(np.asarray(extra.data).reshape(-1))
                break
    flux = np.where(bad, np.nan, flux).astype(np.float32)
    if lam[-1] < lam[0]:  # a decreasing axis (CDELT1 < 0): put it in increasing order
        lam, flux = lam[::-1], flux[::-1]

    obj = header.get("OBJECT")
    name = Path(path).name
    stem = Path(name[:-3] if name.lower().endswith(".gz") else name).stem
    object_id = obj.strip() if isinstance(obj, str) and obj.strip() else stem
    ra, dec = _number(header.get("RA")), _number(header.get("DEC"))
    if ra is None or dec is None or not (0 <= ra <= 360 and -90 <= dec <= 90):
        ra = dec = None
    carried = pa.table({
        "object_id": pa.array([object_id], pa.string()),
        "ra": pa.array([math.nan if ra is None else ra], pa.float64()),
        "dec": pa.array([math.nan if dec is None else dec], pa.float64()),
    })
    axis = SpectralAxis(wavelength=tuple(lam.tolist()), unit=unit, medium=medium,
                        flux_unit=_flux_unit(header.get("BUNIT")), calibration="")
    return Loaded(flux=flux[None, :], carried=carried, axis=axis, product=what)


def wcs1d_wavelengths(header: Any, n: int, what: str = "1-D FITS spectrum"
                      ) -> tuple[np.ndarray, str, str]:
    """The ``n`` pixels' wavelengths, their unit and medium, from a 1-D WCS header.

    λ = CRVAL1 + CD1_1 (or CDELT1) * (p - CRPIX1), p = 1 .. n; with CTYPE1 ``*-LOG`` the
    FITS logarithmic axis λ = CRVAL1 exp(w / CRVAL1) (w the linear value less CRVAL1);
    with IRAF's DC-FLAG = 1 the linear value is log10 λ.
    """
    ctype = str(header.get("CTYPE1", "") or "").strip().upper()
    crval = _number(header.get("CRVAL1"))
    step = _number(header.get("CD1_1"))
    if step is None:
        step = _number(header.get("CDELT1"))
    crpix = _number(header.get("CRPIX1"))
    crpix = 1.0 if crpix is None else crpix
    if crval is None or step is None or step == 0:
        raise InputError(f"{what}: the header's wavelength axis is incomplete (CRVAL1 = "
                         f"{header.get('CRVAL1')!r}, CDELT1/CD1_1 = {step!r}): both must be "
                         "non-zero numbers")
    offset = step * (np.arange(1, n + 1, dtype=np.float64) - crpix)
    dc_flag = _number(header.get("DC-FLAG"))
    with np.errstate(over="ignore", invalid="ignore"):
        if ctype.endswith("-LOG"):
            lam = crval * np.exp(offset / crval)
        elif dc_flag == 1:
            lam = 10.0 ** (crval + offset)
        else:
            lam = crval + offset
    if not np.all(np.isfinite(lam)) or np.any(lam <= 0):
        log = " (DC-FLAG = 1: CRVAL1 and CDELT1 are log10 of the wavelength)" if (
            dc_flag == 1 and not ctype.endswith("-LOG")) else ""
        raise InputError(f"{what}: the header's wavelength axis (CTYPE1 = {ctype or 'none'}, "
                         f"CRVAL1 = {crval}, step = {step}, CRPIX1 = {crpix}){log} gives "
                         "wavelengths that are not all positive numbers")
    unit = _wcs_unit(header, what)
    medium = "air" if ctype.startswith("AWAV") else "vacuum" if ctype.startswith("WAVE") \
        else ""
    return lam, unit, medium


def _wcs_unit(header: Any, what: str) -> str:
    cunit = header.get("CUNIT1")
    source = "CUNIT1"
    if not (isinstance(cunit, str) and cunit.strip()):
        wat = header.get("WAT1_001")
        found = re.search(r"units=(\S+)", wat) if isinstance(wat, str) else None
        cunit, source = (found.group(1), "WAT1_001 units") if found else ("Angstrom", "")
    return _length_unit(cunit, source, what)


# --------------------------------------------------------------------------- helpers


def _hdu_named(hdul: Any, name: str) -> Any:
    try:
        return hdul[name]
    except KeyError:
        return None


def _increasing(lam: np.ndarray, what: str, label: str) -> np.ndarray:
    if not np.all(np.isfinite(lam)) or np.any(lam <= 0):
        raise InputError(f"{what}: {label} holds wavelengths that are not positive numbers")
    if np.any(np.diff(lam) <= 0):
        raise InputError(f"{what}: {label} does not increase from pixel to pixel: the "
                         "wavelength axis is damaged")
    return lam


def _length_unit(text: Any, source: str = "", what: str = "") -> str:
    """A wavelength unit as astropy writes it ('Angstrom' when the file says none)."""
    from astropy import units as u

    if not (isinstance(text, str) and text.strip()):
        return "Angstrom"
    raw = text.strip()
    for candidate in (raw, raw.rstrip("s"), raw.lower(), raw.lower().rstrip("s")):
        try:
            unit = u.Unit(candidate)
        except ValueError:
            continue
        if unit.physical_type == "length":
            return unit.to_string()
    raise InputError(f"{what + ': ' if what else ''}{source or 'the wavelength unit'} is "
                     f"{raw!r}, not a unit of length astropy knows (e.g. Angstrom, nm, um): "
                     "astrocat reads spectra on a wavelength axis")


def _to_angstrom(lam: np.ndarray, unit: str) -> np.ndarray:
    from astropy import units as u

    return lam if unit == "Angstrom" else (lam * u.Unit(unit)).to_value(u.AA)


def _flux_unit(text: Any) -> str:
    """BUNIT as an astropy unit string when it is a flux density (f_lambda, f_nu or photon
    flux: the resampler converts those); else "" (counts, ADU, unparseable: the model
    normalises each spectrum, only its shape is used)."""
    from astropy import units as u

    if not (isinstance(text, str) and text.strip()):
        return ""
    raw = text.strip()
    if "Ang" in raw and "Angstrom" not in raw:  # SDSS/IRAF: '1E-17 erg/cm^2/s/Ang'
        raw = raw.replace("Ang", "Angstrom")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            unit = u.Unit(raw)
        (1.0 * unit).to(u.erg / (u.s * u.cm ** 2 * u.AA),
                        equivalencies=u.spectral_density(500 * u.nm))
    except (ValueError, TypeError, u.UnitsError):
        return ""
    return unit.to_string()
