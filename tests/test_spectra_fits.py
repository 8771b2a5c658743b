"""SDSS/BOSS spec files, DESI coadds and 1-D WCS FITS spectra (astrocat.sources.spectra_fits).

No real SDSS or DESI file can be downloaded here: the files are written to their published
data models (SDSS DR8+ ``spec``, DESI ``coadd``, IRAF / FITS WCS paper III 1-D images) with
a smooth positive continuum, a few lines and some masked pixels, and read both by astrocat
and by specutils' own loaders, which must agree on wavelengths and unmasked fluxes.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from astrocat.errors import InputError
from astrocat.sources import spectra_fits, spectra_products
from astrocat.sources.sniff import read_head, sniff_bytes

SDSS_N = 4650  # BOSS: 3567-10400 A (SDSS-I/II files, ~3800 pixels, stop at 9200 A)
DESI_ARMS = {"B": (3600.0, 5930.0), "R": (5760.0, 7620.0), "Z": (7520.0, 9824.0)}
DESI_N = 3
DESI_TARGETS = [39627652591521181, 39627652591521182, 39627652591521999]
DESI_RADEC = [(150.25, 2.1), (150.5, 2.2), (151.0, -1.5)]


def spectrum(lam: np.ndarray, z: float = 0.1, scale: float = 1.0) -> np.ndarray:
    """A smooth positive continuum with a few emission and absorption lines (Angstrom)."""
    lam = np.asarray(lam, dtype=np.float64)
    flux = 5.0 + 3.0 * np.exp(-((lam - 6000.0) / 3000.0) ** 2) + 1e-4 * (lam - 3500.0)
    for rest, amp in ((3727.0, 6.0), (4861.0, 3.0), (5007.0, 8.0), (6563.0, 10.0),
                      (3934.0, -1.5), (5175.0, -1.0)):
        flux += amp * np.exp(-0.5 * ((lam - rest * (1 + z)) / 4.0) ** 2)
    return scale * flux


def _read_spec(path: Path):
    head = read_head(path)
    fmt = spectra_products.recognise(path, sniff_bytes(head), head)
    assert fmt is not None, f"{path.name} not recognised"
    return fmt, spectra_products.loaded(str(path), fmt)


# ----------------------------------------------------------------- file writers


def write_sdss(path: Path, *, specobjid: str = "299489677444933632", drop: str = "") -> Path:
    """spec-PLATE-MJD-FIBER.fits as SDSS DR8+ writes it (a trimmed set of columns)."""
    loglam = (3.5523 + 1e-4 * np.arange(SDSS_N)).astype(np.float32)
    lam = 10.0 ** loglam.astype(np.float64)
    flux = spectrum(lam, z=0.1).astype(np.float32)
    ivar = np.full(SDSS_N, 4.0, np.float32)
    ivar[100:110] = 0.0  # e.g. a bad column
    and_mask = np.zeros(SDSS_N, np.int32)
    and_mask[2000:2005] = 1 << 23  # BRIGHTSKY
    or_mask = and_mask.copy()
    or_mask[3000] = 1 << 16
    primary = fits.PrimaryHDU()
    h = primary.header
    h["TELESCOP"] = "SDSS 2.5-M"
    h["VERS2D"] = "v5_7_0"
    h["PLATEID"] = 266
    h["MJD"] = 51602
    h["FIBERID"] = 3
    h["PLUG_RA"] = 146.71421
    h["PLUG_DEC"] = -1.0413043
    h["BUNIT"] = "1E-17 erg/cm^2/s/Ang"
    cols = [
        fits.Column("flux", "E", array=flux),
        fits.Column("loglam", "E", array=loglam),
        fits.Column("ivar", "E", array=ivar),
        fits.Column("and_mask", "J", array=and_mask),
        fits.Column("or_mask", "J", array=or_mask),
        fits.Column("wdisp", "E", array=np.full(SDSS_N, 1.1, np.float32)),
        fits.Column("sky", "E", array=np.full(SDSS_N, 2.0, np.float32)),
        fits.Column("model", "E", array=flux),
    ]
    cols = [c for c in cols if c.name != drop]
    coadd = fits.BinTableHDU.from_columns(cols, name="COADD")
    specobj = fits.BinTableHDU.from_columns([
        fits.Column("PLATE", "J", array=[266]),
        fits.Column("MJD", "J", array=[51602]),
        fits.Column("FIBERID", "J", array=[3]),
        fits.Column("SPECOBJID", "19A", array=[specobjid]),
        fits.Column("PLUG_RA", "D", array=[146.71421]),
        fits.Column("PLUG_DEC", "D", array=[-1.0413043]),
        fits.Column("Z", "E", array=[0.1]),
        fits.Column("CLASS", "6A", array=["GALAXY"]),
    ], name="SPECOBJ")
    fits.HDUList([primary, coadd, specobj]).writeto(path)
    return path


def desi_wave(arm: str) -> np.ndarray:
    lo, hi = DESI_ARMS[arm]
    return lo + 0.8 * np.arange(int(round((hi - lo) / 0.8)) + 1)


def write_desi(path: Path, arms: str = "BRZ", fibermap_rows: int = DESI_N) -> Path:
    """coadd-SURVEY-PROGRAM-HEALPIX.fits as the DESI data model has it."""
    primary = fits.PrimaryHDU()
    primary.header["INFIL000"] = "spectra-main-dark-10032.fits"
    fm = fits.BinTableHDU.from_columns([
        fits.Column("TARGETID", "K", array=DESI_TARGETS[:fibermap_rows]),
        fits.Column("TARGET_RA", "D", array=[r for r, _ in DESI_RADEC][:fibermap_rows]),
        fits.Column("TARGET_DEC", "D", array=[d for _, d in DESI_RADEC][:fibermap_rows]),
        fits.Column("COADD_FIBERSTATUS", "J", array=[0] * fibermap_rows),
        fits.Column("OBJTYPE", "3A", array=["TGT"] * fibermap_rows),
    ], name="FIBERMAP")
    exp = fits.BinTableHDU.from_columns([
        fits.Column("TARGETID", "K", array=DESI_TARGETS + DESI_TARGETS),
        fits.Column("EXPID", "J", array=[1, 1, 1, 2, 2, 2]),
    ], name="EXP_FIBERMAP")
    hdus = [primary, fm, exp]
    for arm in arms:
        lam = desi_wave(arm)
        flux = np.stack([spectrum(lam, z=0.05 + 0.1 * k, scale=1 + k)
                         for k in range(DESI_N)]).astype(np.float32)
        ivar = np.full(flux.shape, 2.0, np.float32)
        mask = np.zeros(flux.shape, np.int32)
        ivar[0, 50:60] = 0.0
        mask[1, 200:203] = 2
        ivar[2, :] = 0.0 if arm == "Z" else 2.0  # a whole arm without data
        w = fits.ImageHDU(lam, name=f"{arm}_WAVELENGTH")
        w.header["BUNIT"] = "Angstrom"
        f = fits.ImageHDU(flux, name=f"{arm}_FLUX")
        f.header["BUNIT"] = "10**-17 erg/(s cm2 Angstrom)"
        iv = fits.ImageHDU(ivar, name=f"{arm}_IVAR")
        iv.header["BUNIT"] = "10**+34 (s2 cm4 Angstrom2) / erg2"
        m = fits.ImageHDU(mask, name=f"{arm}_MASK")
        res = fits.ImageHDU(np.zeros((DESI_N, 11, len(lam)), np.float32),
                            name=f"{arm}_RESOLUTION")
        hdus += [w, f, iv, m, res]
    scores = fits.BinTableHDU.from_columns(
        [fits.Column("TARGETID", "K", array=DESI_TARGETS)], name="SCORES")
    fits.HDUList([*hdus, scores]).writeto(path)
    return path


def write_wcs1d(path: Path, *, lo: float = 3500.0, hi: float = 10500.0, kind: str = "linear",
                obj: str | None = "NGC 1234", ivar: bool = False, two_d: bool = False,
                extra: dict | None = None) -> tuple[Path, np.ndarray]:
    """A 1-D image with a wavelength WCS; returns the path and the true wavelengths (A)."""
    h = fits.Header()
    if kind == "linear":  # FITS WCS: CTYPE1 WAVE, linear in Angstrom
        step = 2.0
        n = int(round((hi - lo) / step)) + 1
        lam = lo + step * np.arange(n)
        h.update(CTYPE1="WAVE", CRVAL1=lo, CDELT1=step, CRPIX1=1.0, CUNIT1="Angstrom")
    elif kind == "air":  # air wavelengths, CD1_1, reference pixel in the middle
        step = 2.5
        n = int(round((hi - lo) / step)) + 1
        lam = lo + step * np.arange(n)
        h.update(CTYPE1="AWAV", CRVAL1=float(lam[n // 2]), CD1_1=step,
                 CRPIX1=float(n // 2 + 1), CUNIT1="Angstrom")
    elif kind == "dcflag":  # IRAF: CTYPE1 LINEAR with DC-FLAG = 1, log10(lambda)
        step = 1e-4
        n = int(math.floor((math.log10(hi) - math.log10(lo)) / step)) + 1
        lam = 10.0 ** (math.log10(lo) + step * np.arange(n))
        h.update(CTYPE1="LINEAR", CRVAL1=math.log10(lo), CDELT1=step, CD1_1=step,
                 CRPIX1=1.0, WCSDIM=1)
        h["DC-FLAG"] = 1
        h["WAT0_001"] = "system=equispec"
        h["WAT1_001"] = "wtype=linear label=Wavelength units=angstroms"
    elif kind == "wavelog":  # FITS WCS paper III: lambda = CRVAL1 exp(w / CRVAL1)
        r = 1e-4 * math.log(10)  # the same spacing, in ln
        n = int(math.floor(math.log(hi / lo) / r)) + 1
        lam = lo * np.exp(r * np.arange(n))
        ref = n // 3
        h.update(CTYPE1="WAVE-LOG", CRVAL1=float(lam[ref]), CDELT1=float(lam[ref] * r),
                 CRPIX1=float(ref + 1), CUNIT1="Angstrom")
    else:
        raise ValueError(kind)
    flux = spectrum(lam, z=0.2).astype(np.float32)
    flux[40:45] = np.nan  # bad pixels written as NaN
    h["BUNIT"] = "erg / (s cm2 Angstrom)"
    if obj is not None:
        h["OBJECT"] = obj
    h["RA"], h["DEC"] = 210.802, 54.349
    h.update(extra or {})
    primary = fits.PrimaryHDU(flux[None, :] if two_d else flux, header=h)
    hdus = [primary]
    if ivar:
        iv = np.full(len(flux), 9.0, np.float32)
        iv[300:320] = 0.0
        hdus.append(fits.ImageHDU(iv, name="IVAR"))
    fits.HDUList(hdus).writeto(path)
    return path, lam


# ----------------------------------------------------------------- SDSS/BOSS


def test_sdss_spec_file(tmp_path):
    path = write_sdss(tmp_path / "spec-0266-51602-0003.fits")
    fmt, got = _read_spec(path)
    assert fmt == "spectra_fits:sdss_spec"
    assert got.product == "SDSS/BOSS spec file"
    assert got.flux.shape == (1, SDSS_N) and got.flux.dtype == np.float32
    row = got.carried.to_pylist()
    assert row == [{"specobjid": "299489677444933632", "ra": 146.71421, "dec": -1.0413043,
                    "plate": 266, "mjd": 51602, "fiberid": 3, "z_sdss": pytest.approx(0.1)}]
    ax = got.axis
    assert (ax.unit, ax.medium, ax.calibration) == ("Angstrom", "vacuum", "absolute")
    assert ax.flux_unit == "1e-17 erg / (Angstrom s cm2)"
    lam = np.asarray(ax.wavelength)
    assert lam[0] == pytest.approx(10 ** 3.5523, rel=1e-6)
    assert ax.range_nm()[0] < 366 and ax.range_nm()[1] > 996  # covers the redshift model

    # masked: ivar == 0 and and_mask != 0 (not or_mask); nothing else
    nan = np.isnan(got.flux[0])
    assert set(np.flatnonzero(nan)) == set(range(100, 110)) | set(range(2000, 2005))

    from specutils import Spectrum

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = Spectrum.read(path, format="SDSS-III/IV spec")
    np.testing.assert_allclose(lam, ref.spectral_axis.to_value("Angstrom"), rtol=1e-6)
    assert str(ref.flux.unit) == ax.flux_unit
    good = ~nan
    np.testing.assert_array_equal(ref.mask, np.isin(np.arange(SDSS_N), range(2000, 2005)))
    np.testing.assert_allclose(got.flux[0][good], ref.flux.value[good], rtol=1e-6)


def test_sdss_without_loglam_is_an_input_error(tmp_path):
    path = write_sdss(tmp_path / "spec-0266-51602-0004.fits", drop="loglam")
    head = read_head(path)
    fmt = spectra_products.recognise(path, sniff_bytes(head), head)
    assert fmt == "spectra_fits:sdss_spec"
    with pytest.raises(InputError, match="no 'loglam' column"):
        spectra_products.loaded(str(path), fmt)


def test_sdss_all_ivar_zero_masks_the_row_not_an_error(tmp_path):
    path = write_sdss(tmp_path / "spec-0266-51602-0005.fits")
    with fits.open(path, mode="update") as hdul:
        hdul[1].data["ivar"][:] = 0.0
    _, got = _read_spec(path)
    assert got.flux.shape == (1, SDSS_N) and np.isnan(got.flux).all()


# ----------------------------------------------------------------- DESI


def test_desi_coadd(tmp_path):
    path = write_desi(tmp_path / "coadd-main-dark-10032.fits")
    fmt, got = _read_spec(path)
    assert fmt == "spectra_fits:desi_coadd"
    assert got.product == "DESI coadd file"
    n = {arm: len(desi_wave(arm)) for arm in "BRZ"}
    total = sum(n.values())
    assert got.flux.shape == (DESI_N, total) and got.flux.dtype == np.float32
    assert got.carried.column_names == ["targetid", "ra", "dec"]
    assert got.carried.column("targetid").to_pylist() == DESI_TARGETS
    assert list(zip(got.carried.column("ra").to_pylist(), got.carried.column("dec").to_pylist(),
                    strict=True)) == DESI_RADEC
    ax = got.axis
    assert (ax.unit, ax.medium, ax.calibration) == ("Angstrom", "vacuum", "absolute")
    assert ax.flux_unit == "1e-17 erg / (Angstrom s cm2)"
    lam = np.asarray(ax.wavelength)
    # three increasing segments, B then R then Z, each as the file states it
    breaks = np.flatnonzero(np.diff(lam) <= 0) + 1
    assert breaks.tolist() == [n["B"], n["B"] + n["R"]]
    np.testing.assert_array_equal(lam, np.concatenate([desi_wave(a) for a in "BRZ"]))

    # masks: row 0 ivar == 0 in every arm, row 1 mask bits, row 2 the Z arm all ivar 0
    nan = np.isnan(got.flux)
    offs = {"B": 0, "R": n["B"], "Z": n["B"] + n["R"]}
    want = np.zeros_like(nan)
    for o in offs.values():
        want[0, o + 50:o + 60] = True
        want[1, o + 200:o + 203] = True
    want[2, offs["Z"]:] = True
    np.testing.assert_array_equal(nan, want)

    from specutils import SpectrumList

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = SpectrumList.read(path, format="DESI coadd")
    assert [s.meta["band"] for s in ref] == ["b", "r", "z"]
    for arm, s in zip("BRZ", ref, strict=True):
        sl = slice(offs[arm], offs[arm] + n[arm])
        np.testing.assert_allclose(lam[sl], s.spectral_axis.to_value("Angstrom"), rtol=1e-6)
        assert str(s.flux.unit) == ax.flux_unit
        ivar = s.uncertainty.array
        good = (ivar > 0) & ~s.mask  # specutils keeps ivar apart from its mask
        np.testing.assert_array_equal(~nan[:, sl], good)
        np.testing.assert_allclose(got.flux[:, sl][good], s.flux.value[good], rtol=1e-6)
    table = ref[0].meta["fibermap"]
    assert list(table["TARGETID"]) == got.carried.column("targetid").to_pylist()


def test_desi_with_missing_arm_and_bad_fibermap(tmp_path):
    path = write_desi(tmp_path / "coadd-br.fits", arms="BR")
    _, got = _read_spec(path)
    assert got.flux.shape[1] == len(desi_wave("B")) + len(desi_wave("R"))

    bad = write_desi(tmp_path / "coadd-bad.fits", fibermap_rows=2)
    head = read_head(bad)
    fmt = spectra_products.recognise(bad, sniff_bytes(head), head)
    with pytest.raises(InputError, match="FIBERMAP has 2 rows for 3 spectra"):
        spectra_products.loaded(str(bad), fmt)


# ----------------------------------------------------------------- 1-D WCS


@pytest.mark.parametrize("kind", ["linear", "air", "dcflag", "wavelog"])
def test_wcs1d(tmp_path, kind):
    path, lam_true = write_wcs1d(tmp_path / f"{kind}.fits", kind=kind, ivar=kind == "linear",
                                 two_d=kind == "air")
    fmt, got = _read_spec(path)
    assert fmt == "spectra_fits:wcs1d"
    assert got.flux.shape == (1, len(lam_true))
    assert got.carried.to_pylist() == [{"object_id": "NGC 1234", "ra": 210.802,
                                        "dec": 54.349}]
    ax = got.axis
    assert ax.unit == "Angstrom"
    assert ax.medium == {"linear": "vacuum", "air": "air", "dcflag": "",
                         "wavelog": "vacuum"}[kind]
    assert ax.flux_unit == "erg / (Angstrom s cm2)"
    lam = np.asarray(ax.wavelength)
    np.testing.assert_allclose(lam, lam_true, rtol=1e-9)
    nan = np.isnan(got.flux[0])
    masked = set(range(40, 45)) | (set(range(300, 320)) if kind == "linear" else set())
    assert set(np.flatnonzero(nan)) == masked

    from specutils import Spectrum

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = Spectrum.read(path, format="wcs1d-fits")
    ref_flux = np.asarray(ref.flux.value).reshape(-1)
    ref_axis = ref.spectral_axis
    if kind == "dcflag":  # specutils leaves IRAF's log-linear axis in log10(lambda)
        ref_lam = 10.0 ** np.asarray(ref_axis.value)
    else:
        ref_lam = ref_axis.to_value("Angstrom")
    np.testing.assert_allclose(lam, ref_lam, rtol=1e-6)
    good = ~nan
    np.testing.assert_allclose(got.flux[0][good], ref_flux[good], rtol=1e-6)
    if kind == "linear":  # specutils reads the IVAR extension as the uncertainty
        assert (ref.uncertainty.array[300:320] == 0).all()


def test_wcs1d_id_from_file_name_and_no_position(tmp_path):
    path, _ = write_wcs1d(tmp_path / "star42.fits", obj=None,
                          extra={"RA": "14:03:12.5", "DEC": "+54:20:56"})
    _, got = _read_spec(path)
    row = got.carried.to_pylist()[0]
    assert row["object_id"] == "star42"
    assert math.isnan(row["ra"]) and math.isnan(row["dec"])


def test_wcs1d_decreasing_axis_is_reversed(tmp_path):
    h = fits.Header()
    h.update(CTYPE1="WAVE", CRVAL1=9000.0, CDELT1=-3.0, CRPIX1=1.0, CUNIT1="nm")
    lam = 9000.0 - 3.0 * np.arange(100)
    fits.PrimaryHDU(spectrum(lam * 10).astype(np.float32), header=h).writeto(
        tmp_path / "down.fits")
    _, got = _read_spec(tmp_path / "down.fits")
    assert got.axis.unit == "nm"
    np.testing.assert_allclose(got.axis.wavelength, lam[::-1])
    np.testing.assert_allclose(got.flux[0], spectrum(lam[::-1] * 10), rtol=1e-6)
    assert got.axis.flux_unit == ""  # no BUNIT


def test_wcs1d_bad_unit_is_an_input_error(tmp_path):
    path, _ = write_wcs1d(tmp_path / "hz.fits", extra={"CUNIT1": "Hz"})
    head = read_head(path)
    fmt = spectra_products.recognise(path, sniff_bytes(head), head)
    assert fmt == "spectra_fits:wcs1d"
    with pytest.raises(InputError, match="CUNIT1 is 'Hz'"):
        spectra_products.loaded(str(path), fmt)


def test_gzipped_wcs1d(tmp_path):
    import gzip

    path, lam = write_wcs1d(tmp_path / "plain.fits")
    gz = tmp_path / "zipped.fits.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    head = read_head(gz)
    assert sniff_bytes(head) == "gzip"
    fmt, got = _read_spec(gz)
    assert fmt == "spectra_fits:wcs1d"
    np.testing.assert_allclose(got.axis.wavelength, lam)
    gz2 = tmp_path / "anon.fits.gz"
    with fits.open(path) as hdul:
        del hdul[0].header["OBJECT"]
        hdul.writeto(gz2)
    assert _read_spec(gz2)[1].carried.column("object_id").to_pylist() == ["anon"]


def test_other_fits_files_are_not_recognised(tmp_path):
    """Images, 1-D arrays without a wavelength axis, spPlate-like stacks, plain tables."""
    fits.PrimaryHDU(np.zeros((64, 64), np.float32)).writeto(tmp_path / "image.fits")
    fits.PrimaryHDU(np.zeros(100, np.float32)).writeto(tmp_path / "nowcs.fits")
    h = fits.Header()
    h.update(CTYPE1="LINEAR", CRVAL1=3.58, CD1_1=1e-4, CRPIX1=1.0)
    h["DC-FLAG"] = 1
    fits.PrimaryHDU(np.zeros((5, 100), np.float32), header=h).writeto(tmp_path / "stack.fits")
    h1 = fits.Header()
    h1.update(CTYPE1="RA---TAN", CRVAL1=10.0, CDELT1=1e-4)
    fits.PrimaryHDU(np.zeros(100, np.float32), header=h1).writeto(tmp_path / "ra.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(
        [fits.Column("flux", "10E", array=np.zeros((3, 10)))])]).writeto(tmp_path / "t.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((8, 8), np.float32)),
                  fits.ImageHDU(np.zeros((8, 8), np.float32))]).writeto(tmp_path / "mef.fits")
    for name in ("image.fits", "nowcs.fits", "stack.fits", "ra.fits", "t.fits", "mef.fits"):
        head = read_head(tmp_path / name)
        assert spectra_fits.recognise(tmp_path / name, sniff_bytes(head), head) is None, name
    (tmp_path / "junk.fits").write_bytes(b"SIMPLE  =                    T" + b"\0" * 100)
    head = read_head(tmp_path / "junk.fits")
    assert spectra_fits.recognise(tmp_path / "junk.fits", "fits", head) is None


# ----------------------------------------------------------------- end to end


def test_infer_end_to_end(tmp_path):
    from click.testing import CliRunner

    from astrocat.cli import main

    src = tmp_path / "in"
    src.mkdir()
    write_sdss(src / "spec-0266-51602-0003.fits")
    write_desi(src / "coadd-main-dark-10032.fits")
    write_wcs1d(src / "linear.fits", obj="LIN-1", ivar=True)
    write_wcs1d(src / "loglin.fits", kind="dcflag", obj="LOG-1", two_d=True)
    write_wcs1d(src / "wavelog.fits", kind="wavelog", obj="LOG-2")
    write_wcs1d(src / "short.fits", lo=4000.0, hi=7000.0, obj="SHORT-1")
    write_sdss(src / "spec-0266-51602-0004.fits", drop="loglam")
    out = tmp_path / "cat.parquet"
    r = CliRunner().invoke(main, ["infer", "-q", "--input", str(src), "--out", str(out)])
    assert r.exit_code in (0, 1), r.output + repr(r.exception)
    rows = pq.read_table(out).to_pylist()
    by_id = {row["object_id"]: row for row in rows}
    assert len(rows) == 1 + DESI_N + 4 + 1, [(row["object_id"], row["error"]) for row in rows]

    ok = ["299489677444933632", "LIN-1", "LOG-1", "LOG-2"]
    for oid in ok:
        row = by_id[oid]
        assert (row["status"], row["model"]) == ("ok", "redshift-cnn1d"), row
        assert math.isfinite(row["z_pred"])
    sdss = by_id["299489677444933632"]
    assert (sdss["ra"], sdss["dec"]) == pytest.approx((146.71421, -1.0413043))
    assert by_id["LIN-1"]["ra"] == pytest.approx(210.802)

    short = by_id["SHORT-1"]
    assert short["status"] == "error"
    assert "400.0-700.0 nm" in short["error"] and "366.0-996.0 nm" in short["error"], short

    # DESI's Z arm ends at 982.4 nm, short of the bundled model's 996 nm: every DESI
    # spectrum is an error row naming both ranges (never silently extrapolated)
    broken = next(row for row in rows if row["source"] == "spec-0266-51602-0004.fits")
    assert broken["status"] == "error" and "no 'loglam' column" in broken["error"], broken

    desi = sorted((row for row in rows if row["source"].startswith("coadd-")),
                  key=lambda row: row["row"])
    assert [row["targetid"] for row in desi] == DESI_TARGETS
    for row, radec in zip(desi, DESI_RADEC, strict=True):
        assert row["status"] == "error", row
        assert "360.0-982.4 nm" in row["error"] and "366.0-996.0 nm" in row["error"], row
        assert (row["ra"], row["dec"]) == pytest.approx(radec)
    # TARGETID is DESI's object ID (needs "targetid" in the worker's ID_COLUMNS)
    assert [row["object_id"] for row in desi] == [str(t) for t in DESI_TARGETS]


def test_units_a_card_may_use_without_astropy_are_what_astropy_says():
    """Cards naming these units are checked without importing astropy.units (a third of
    a second of every run): each must parse, the wavelength ones as lengths, the flux
    ones as spectral flux densities."""
    from astropy import units as u

    from astrocat.models.card import KNOWN_FLUX_UNITS, KNOWN_WAVELENGTH_UNITS

    for name in KNOWN_WAVELENGTH_UNITS:
        assert u.Unit(name).is_equivalent(u.m), name
    for name in KNOWN_FLUX_UNITS:
        unit = u.Unit(name)
        assert unit.is_equivalent(u.W / u.m**2 / u.nm) or unit.is_equivalent(u.Jy), name
