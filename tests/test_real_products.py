"""Files written after real survey products' documented layouts, not astrocat's own.

``astrocat simulate`` writes clean float32 cut-outs; archives write scaled integers
(BZERO/BSCALE, the unsigned convention, BLANK), multi-extension products (HST/JWST
SCI/ERR/DQ, Rubin image/mask/variance, Euclid VIS quadrants), cubes of bands (the Legacy
Survey viewer's grz cut-outs), tile-compressed images with quantisation and dithering,
ASCII tables, and stamps of another size or pixel scale. Each file here has the row it
must give; the cfitsio and astropy paths must agree on every one.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from PIL import Image

from astrocat.errors import InputError
from astrocat.kernels import fit
from astrocat.kinds import Kind
from astrocat.models.card import InputSpec
from astrocat.simulate import lenses
from astrocat.sources import _fits, fitsfiles

N = lenses.SIZE  # 101: the bundled lens model's stamp


# ------------------------------------------------------------------ writing the corpus


def _wcs(scale_arcsec: float = 0.1, n: int = N, ra: float = 150.1, dec: float = 2.2,
         naxis: int = 2) -> fits.Header:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.cunit = ["deg", "deg"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [(n + 1) / 2, (n + 1) / 2]
    w.wcs.cd = np.array([[-scale_arcsec, 0.0], [0.0, scale_arcsec]]) / 3600
    return w.to_header()


@pytest.fixture(scope="module")
def lens_images() -> list[np.ndarray]:
    """Three simulated lens-survey cut-outs (float32, physical units: sky-subtracted ADU)."""
    return [lenses.render(16, i, is_lens=bool(i % 2))[0] for i in range(3)]


def _primary(data, header: fits.Header | None = None, **keys) -> fits.HDUList:
    h = fits.PrimaryHDU(data, header)
    for k, v in keys.items():
        h.header[k] = v
    return fits.HDUList([h])


def hst_flt(x: np.ndarray) -> fits.HDUList:
    """HST ACS/WFC3 calibrated exposure: a header-only primary, then SCI, ERR and DQ
    (EXTVER 1) image extensions; DQ is int16 bit flags."""
    primary = fits.PrimaryHDU()
    primary.header.update(TELESCOP="HST", INSTRUME="ACS", FILETYPE="SCI", NEXTEND=3)
    dq = np.zeros(x.shape, np.int16)
    dq[10:14, 10:14] = 4096  # cosmic ray: flagged
    dq[50, 50] = 16  # a warm pixel: flagged by --mask-bits only when asked
    return fits.HDUList([
        primary,
        fits.ImageHDU(x, _wcs(), name="SCI", ver=1),
        fits.ImageHDU(np.abs(x) * 0.1 + 1, name="ERR", ver=1),
        fits.ImageHDU(dq, name="DQ", ver=1),
    ])


def hst_raw(x: np.ndarray) -> fits.HDUList:
    """HST raw exposure: SCI as unsigned 16-bit (BITPIX 16, BZERO 32768)."""
    primary = fits.PrimaryHDU()
    primary.header["TELESCOP"] = "HST"
    counts = np.clip(np.round(x * 4 + 2000), 0, 65535).astype(np.uint16)
    return fits.HDUList([primary, fits.ImageHDU(counts, name="SCI", ver=1)])


def jwst_cal(x: np.ndarray) -> fits.HDUList:
    """JWST calibrated image (_cal.fits): SCI float32, ERR, DQ as uint32, AREA, VAR_*."""
    primary = fits.PrimaryHDU()
    primary.header.update(TELESCOP="JWST", INSTRUME="NIRCAM")
    dq = np.zeros(x.shape, np.uint32)
    dq[0, :] = 1  # DO_NOT_USE along one edge
    return fits.HDUList([
        primary,
        fits.ImageHDU(x, _wcs(), name="SCI"),
        fits.ImageHDU(np.abs(x) * 0.1, name="ERR"),
        fits.ImageHDU(dq, name="DQ"),
        fits.ImageHDU(np.ones(x.shape, np.float32), name="AREA"),
        fits.ImageHDU(np.ones(x.shape, np.float32), name="VAR_POISSON"),
    ])


def legacy_grz(x: np.ndarray) -> fits.HDUList:
    """Legacy Survey viewer cut-out: one primary cube (g, r, z) x y x x, float32, with
    BANDS = 'grz' and BAND0..BAND2 naming the planes."""
    header = _wcs(0.262)
    header.update(BANDS="grz", BAND0="g", BAND1="r", BAND2="z")
    return _primary(np.stack([x * 0.5, x, x * 1.3]).astype(np.float32), header)


def dss_plate(x: np.ndarray) -> fits.HDUList:
    """A DSS plate stamp: scaled int16 (BSCALE/BZERO), plate-solution keywords."""
    bscale, bzero = 0.01, 5.0
    stored = np.round((x - bzero) / bscale).astype(np.int16)
    h = fits.PrimaryHDU(stored)
    h.header.update(BSCALE=bscale, BZERO=bzero, PLATEID="XJ123", SURVEY="POSSII-F",
                    PLTRAH=10, PLTRAM=0, PLTRAS=30.0, PLTDECSN="+", PLTDECD=2, PLTDECM=12)
    return fits.HDUList([h])


def camera_uint16(x: np.ndarray) -> fits.HDUList:
    """A CCD camera frame as most cameras write it: unsigned 16-bit (BZERO 32768)."""
    return _primary(np.clip(np.round(x * 4 + 1000), 0, 65535).astype(np.uint16), _wcs())


def rubin_calexp(x: np.ndarray) -> fits.HDUList:
    """Rubin (LSST Science Pipelines) calexp: header-only primary, then image, mask (int32
    bit planes) and variance extensions named IMAGE, MASK, VARIANCE."""
    mask = np.zeros(x.shape, np.int32)
    mask[20:22, 30:40] = 1 << 0  # BAD
    mask[60, 60] = 1 << 5  # DETECTED: not a bad pixel
    return fits.HDUList([
        fits.PrimaryHDU(),
        fits.ImageHDU(x, _wcs(0.2), name="IMAGE"),
        fits.ImageHDU(mask, name="MASK"),
        fits.ImageHDU(np.abs(x) + 1, name="VARIANCE"),
    ])


def euclid_vis(x: np.ndarray) -> fits.HDUList:
    """Euclid VIS calibrated frame: per-quadrant extensions named '<CCD>.SCI', '.RMS',
    '.FLG' behind a header-only primary."""
    return fits.HDUList([
        fits.PrimaryHDU(),
        fits.ImageHDU(x, _wcs(), name="1-1.SCI"),
        fits.ImageHDU(np.abs(x) * 0.1 + 1, name="1-1.RMS"),
        fits.ImageHDU(np.zeros(x.shape, np.int32), name="1-1.FLG"),
    ])


def tile_quantized(x: np.ndarray) -> fits.HDUList:
    """Tile-compressed float image: RICE with quantisation and subtractive dithering; NaN
    pixels stored through ZBLANK."""
    y = x.copy()
    y[0:3, 0:3] = np.nan
    return fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(
        y, _wcs(), compression_type="RICE_1", quantize_level=16.0, quantize_method=2,
        dither_seed=7)])


def int32_blank(x: np.ndarray) -> fits.HDUList:
    """Integer image with BLANK (undefined pixels), as older archives write masked data."""
    stored = np.round(x * 1000).astype(np.int32)
    stored[5:8, 5:8] = -999999
    return _primary(stored, _wcs(), BLANK=-999999)


def ascii_table(_: np.ndarray) -> fits.HDUList:
    """A FITS ASCII table (TableHDU) of object positions: valid, but holds no spectra."""
    cols = [fits.Column(name="NAME", format="A8", array=np.array(["a", "b"])),
            fits.Column(name="RA", format="F10.5", array=np.array([1.5, 2.5])),
            fits.Column(name="NOBS", format="I5", array=np.array([3, 4]))]
    return fits.HDUList([fits.PrimaryHDU(), fits.TableHDU.from_columns(cols)])


def stamp_100(x: np.ndarray) -> fits.HDUList:
    return _primary(x[:100, :100].copy(), _wcs(n=100))


def stamp_02(x: np.ndarray) -> fits.HDUList:
    """The same sky at 0.2"/px (2x2 blocks summed: flux kept), 51x51 pixels."""
    y = np.pad(x, ((0, 1), (0, 1)), mode="edge").reshape(51, 2, 51, 2).sum(axis=(1, 3))
    return _primary(y.astype(np.float32), _wcs(0.2, n=51))


#: name -> (writer, expected status, expected text in the error or None)
CORPUS = {
    "hst_acs_flt.fits": (hst_flt, "ok", None),
    "hst_raw.fits": (hst_raw, "ok", None),
    "jwst_nircam_cal.fits": (jwst_cal, "ok", None),
    "legacy_grz_cutout.fits": (legacy_grz, "error", "--plane"),
    "dss_plate.fits": (dss_plate, "ok", None),
    "camera_uint16.fits": (camera_uint16, "ok", None),
    "rubin_calexp.fits": (rubin_calexp, "ok", None),
    "euclid_vis_stamp.fits": (euclid_vis, "ok", None),
    "tile_quantized.fits.fz": (tile_quantized, "ok", None),
    "int32_blank.fits": (int32_blank, "ok", None),
    "ascii_table.fits": (ascii_table, "error", "no flux columns"),
    "stamp_100x100.fits": (stamp_100, "error", 'fit = "pad"'),
    "stamp_0.2arcsec.fits": (stamp_02, "ok", None),
}
#: A Python class name (ValueError, AttributeError, ...) must never reach an error text.
CLASS_NAME = re.compile(r"\b\w*(Error|Exception|Warning)\b")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, lens_images) -> Path:
    d = tmp_path_factory.mktemp("products")
    for name, (write, _, _) in CORPUS.items():
        write(lens_images[1]).writeto(d / name)
    # a palette PNG with byte transparency: Pillow warns while converting it
    im = Image.fromarray((np.arange(64 * 64).reshape(64, 64) % 200).astype(np.uint8), "L")
    im.convert("P").save(d / "palette.png", transparency=bytes([0] * 10 + [255] * 246))
    return d


def _infer(inputs: Path, out: Path, *options: str) -> tuple[subprocess.CompletedProcess, dict]:
    """The real CLI in its own process (what a user's terminal shows), and its rows."""
    r = subprocess.run([sys.executable, "-m", "astrocat.cli", "infer", "--input", str(inputs),
                        "--out", str(out), "--workers", "1", *options],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode in (0, 1), r.stderr
    rows = pq.read_table(out).to_pylist()
    return r, {row["source"]: row for row in rows}


# ------------------------------------------------------------------ the corpus, whole


def test_each_product_gives_its_documented_row_and_no_warning_is_printed(corpus, tmp_path):
    r, rows = _infer(corpus, tmp_path / "cat.parquet")
    assert set(rows) == {*CORPUS, "palette.png"}  # every input, exactly once
    for name, (_, status, text) in CORPUS.items():
        row = rows[name]
        assert row["status"] == status, (name, row["error"])
        if text is not None:
            assert text in row["error"], (name, row["error"])
        if status == "error":
            assert "corrupt" not in row["error"] and not CLASS_NAME.search(row["error"]), row
        else:
            assert 0.0 <= row["p_lens"] <= 1.0
    assert rows["palette.png"]["status"] == "ok"
    # MEF products are read from their first 2-D image extension (SCI, IMAGE, 1-1.SCI)
    assert rows["hst_acs_flt.fits"]["hdu"] == 1 and rows["rubin_calexp.fits"]["hdu"] == 1
    # the library warning went to the log beside the parts, counted in the summary line
    others = [line for line in r.stderr.splitlines() if not line.startswith("wrote ")]
    assert not any("warn" in line.lower() for line in others), r.stderr
    assert "1 library warning(s)" in r.stderr
    log = (tmp_path / "cat.parquet.parts" / "warnings.log").read_text()
    assert "palette.png: UserWarning: Palette images" in log


def test_a_cube_reads_the_named_plane_by_index_or_band(corpus, tmp_path, lens_images):
    cube = tmp_path / "in" / "legacy_grz_cutout.fits"
    cube.parent.mkdir()
    cube.write_bytes((corpus / "legacy_grz_cutout.fits").read_bytes())
    single = tmp_path / "in" / "r_band.fits"
    fits.PrimaryHDU(legacy_grz(lens_images[1])[0].data[1], _wcs(0.262)).writeto(single)
    _, by_band = _infer(cube.parent, tmp_path / "a.parquet", "--plane", "r")
    _, by_index = _infer(cube.parent, tmp_path / "b.parquet", "--plane", "1")
    got = by_band["legacy_grz_cutout.fits"]
    assert got["status"] == "ok" and got["hdu"] == 0
    assert got["p_lens"] == by_index["legacy_grz_cutout.fits"]["p_lens"]
    assert got["p_lens"] == by_band["r_band.fits"]["p_lens"]
    _, missing = _infer(cube.parent, tmp_path / "c.parquet", "--plane", "i")
    error = missing["legacy_grz_cutout.fits"]["error"]
    assert "no plane for band 'i'" in error and "0 g, 1 r, 2 z" in error


def test_the_named_hdu_and_its_mask(corpus, tmp_path, lens_images):
    d = tmp_path / "in"
    d.mkdir()
    for name in ("hst_acs_flt.fits", "rubin_calexp.fits"):
        (d / name).write_bytes((corpus / name).read_bytes())
    _, plain = _infer(d, tmp_path / "a.parquet")
    _, err = _infer(d, tmp_path / "b.parquet", "--hdu", "ERR")
    assert err["hst_acs_flt.fits"]["hdu"] == 2
    assert err["hst_acs_flt.fits"]["p_lens"] != plain["hst_acs_flt.fits"]["p_lens"]
    missing = err["rubin_calexp.fits"]["error"]
    assert "no HDU named 'ERR'" in missing and "1 IMAGE,1, 2 MASK,1" in missing
    # the mask's flagged pixels become NaN, then the NaN policy patches them (median)
    _, masked = _infer(d, tmp_path / "c.parquet", "--hdu", "SCI,1", "--mask-hdu", "DQ")
    x = lens_images[1].copy()
    x[10:14, 10:14] = np.nan
    x[50, 50] = np.nan
    want = fits.PrimaryHDU(np.where(np.isnan(x), np.nanmedian(x), x).astype(np.float32),
                           _wcs())
    (d / "hst_acs_flt.fits").unlink()
    (d / "rubin_calexp.fits").unlink()
    want.writeto(d / "patched.fits")
    _, ref = _infer(d, tmp_path / "d.parquet")
    assert masked["hst_acs_flt.fits"]["p_lens"] == pytest.approx(ref["patched.fits"]["p_lens"],
                                                                abs=1e-6)


def test_mask_bits_choose_which_flags_count(corpus):
    path = str(corpus / "hst_acs_flt.fits")
    only_cr = _fits.Product(hdu="SCI", mask_hdu="DQ", mask_bits=4096)
    for reader in (fitsfiles.astropy_plane, fitsfiles.fitsio_plane):
        plane = reader(path, None, only_cr)
        assert np.isnan(plane.data[10:14, 10:14]).all() and not np.isnan(plane.data[50, 50])
        assert np.isnan(plane.data).sum() == 16


# ------------------------------------------------- scaled integers: astropy's values


@pytest.mark.parametrize("fmt", ["uint16", "scaled_int16", "int32_blank"])
def test_scaled_integers_give_the_float32_p_lens(fmt, lens_images, tmp_path):
    """An integer cut-out and a float32 file holding the same physical values give the
    same p_lens (to 1e-5), through the cfitsio and astropy paths alike."""
    d = tmp_path / "in"
    d.mkdir()
    for i, x in enumerate(lens_images):
        if fmt == "uint16":
            stored = np.round(x * 4 + 1000).astype(np.uint16)
            physical = stored.astype(np.float32)
            hdu = fits.PrimaryHDU(stored, _wcs())
        elif fmt == "scaled_int16":
            stored = np.round(x / 0.01).astype(np.int16)
            physical = (stored.astype(np.float64) * 0.01 + 0.5).astype(np.float32)
            hdu = fits.PrimaryHDU(stored, _wcs())
            hdu.header.update(BSCALE=0.01, BZERO=0.5)
        else:
            stored = np.round(x * 1000).astype(np.int32)
            stored[40:43, 40:43] = -2**31
            physical = stored.astype(np.float32)
            physical[40:43, 40:43] = np.nan
            hdu = fits.PrimaryHDU(stored, _wcs())
            hdu.header["BLANK"] = -2**31
        hdu.writeto(d / f"{i}_int.fits")
        fits.PrimaryHDU(physical, _wcs()).writeto(d / f"{i}_float.fits")
        got = [reader(str(d / f"{i}_int.fits"), None) for reader in
               (fitsfiles.astropy_plane, lambda p, h: fitsfiles.fits_plane(p, h))]
        for plane in got:
            assert np.allclose(plane.data, physical, rtol=1e-6, atol=1e-6, equal_nan=True)
    r, rows = _infer(d, tmp_path / "cat.parquet")
    assert r.returncode == 0, r.stderr
    for i in range(len(lens_images)):
        assert rows[f"{i}_int.fits"]["p_lens"] == pytest.approx(
            rows[f"{i}_float.fits"]["p_lens"], abs=1e-5)


# --------------------------------------------------------- the two paths agree


@pytest.mark.parametrize("name", [n for n, (_, status, _) in CORPUS.items() if status == "ok"])
def test_astropy_and_cfitsio_agree_on_every_usable_product(corpus, name):
    path = str(corpus / name)
    ref = fitsfiles.astropy_plane(path, None)
    try:
        fast = fitsfiles.fitsio_plane(path, None)
    except _fits.Declined:
        return  # left to astropy: the answer is astropy's by construction
    assert fast.hdu == ref.hdu
    assert np.array_equal(fast.data, ref.data, equal_nan=True)
    assert np.allclose((fast.ra, fast.dec), (ref.ra, ref.dec), atol=1e-9, equal_nan=True)
    assert (fast.scale is None) == (ref.scale is None)
    if ref.scale is not None:
        assert fast.scale == pytest.approx(ref.scale, rel=1e-9)


def test_which_paths_take_the_fast_route(corpus):
    """Unsigned integers and quantised tiles go through cfitsio; scaled and BLANK ones
    are declined (astropy scales in float32 and turns BLANK into NaN)."""
    for name in ("hst_raw.fits", "camera_uint16.fits", "tile_quantized.fits.fz"):
        fitsfiles.fitsio_plane(str(corpus / name), None)
    for name in ("dss_plate.fits", "int32_blank.fits"):
        with pytest.raises(_fits.Declined):
            fitsfiles.fitsio_plane(str(corpus / name), None)


# --------------------------------------------- stamps that do not match the model


def _spec(**fields) -> InputSpec:
    return InputSpec(Kind.MONO_IMAGE, (8, 8, 1), "standardize", mean=3.0, std=2.0, **fields)


def test_pad_matches_numpy_with_the_fill_in_network_units():
    x = np.arange(36, dtype=np.float32).reshape(6, 6)
    got = fit.to_size(x, _spec(fit="pad", fill=-1.0))
    want = np.pad(x, 1, constant_values=3.0 - 2.0)  # mean + fill * std
    assert np.array_equal(got, want)
    odd = fit.to_size(np.ones((5, 12), np.float32), _spec(fit="pad"))
    assert odd.shape == (8, 8) and np.array_equal(odd[1:6, :], np.ones((5, 8)))
    assert np.all(odd[[0, 6, 7], :] == 3.0)
    with pytest.raises(InputError, match='fit = "pad" or "resample"'):
        fit.to_size(x, _spec())
    with pytest.raises(InputError, match='fit = "error"'):
        fit.to_size(np.ones((9, 9), np.float32), _spec(fit="error"))


def _fine_reference(x: np.ndarray, up: int, down: int) -> np.ndarray:
    """Resampling by up/down through a fine grid: every pixel split into up x up equal
    parts (flux / up^2), then down x down blocks summed."""
    fine = np.repeat(np.repeat(x.astype(np.float64), up, 0), up, 1) / up**2
    h, w = fine.shape[0] // down * down, fine.shape[1] // down * down
    off_y, off_x = (fine.shape[0] - h) // 2, (fine.shape[1] - w) // 2
    fine = fine[off_y:off_y + h, off_x:off_x + w]
    return fine.reshape(h // down, down, w // down, down).sum(axis=(1, 3))


@pytest.mark.parametrize("from_scale,to_scale,up,down", [
    (0.2, 0.1, 2, 1),  # coarser stamp: every pixel split in 4
    (0.15, 0.1, 3, 2),  # 1.5x
    (0.1, 0.2, 1, 2),  # finer stamp: 2x2 blocks summed
    (0.1, 0.3, 1, 3),
])
def test_pixel_scale_resampling_conserves_flux_like_the_reference(from_scale, to_scale, up,
                                                                   down):
    rng = np.random.default_rng(3)
    x = rng.normal(5, 2, (24, 24)).astype(np.float32)
    spec = _spec(pixel_scale=to_scale)
    got = fit.to_scale(x, (from_scale, from_scale), spec)
    want = _fine_reference(x, up, down)
    assert got.shape == want.shape
    assert np.allclose(got, want, rtol=1e-5, atol=1e-5)
    if up % down == 0 or down % up == 0:
        assert got.sum() == pytest.approx(x.sum(), rel=1e-5)


def test_fit_resample_to_the_model_size_matches_the_reference():
    x = np.random.default_rng(4).normal(size=(12, 12)).astype(np.float32)
    got = fit.to_size(x, _spec(fit="resample"))  # 12 -> 8: 2/3
    assert np.allclose(got, _fine_reference(x, 2, 3), atol=1e-5)


def test_a_stamp_at_another_scale_is_resampled_or_refused(corpus):
    plane = fitsfiles.astropy_plane(str(corpus / "stamp_0.2arcsec.fits"), None)
    assert plane.scale == pytest.approx((0.2, 0.2))
    card = InputSpec(Kind.MONO_IMAGE, (N, N, 1), "standardize", pixel_scale=0.1)
    assert fit.fit_plane(plane.data, card, plane.scale).shape == (N, N)
    strict = InputSpec(Kind.MONO_IMAGE, (N, N, 1), "standardize", pixel_scale=0.1,
                       scale_mismatch="error")
    with pytest.raises(InputError, match=r"0\.2\" per pixel .* trained at 0\.1\"/px"):
        fit.fit_plane(plane.data, strict, plane.scale)
    same = fitsfiles.astropy_plane(str(corpus / "camera_uint16.fits"), None)
    assert fit.fit_plane(same.data, strict, same.scale) is same.data  # within 1 %: as is


def test_defaults_keep_result_keys_and_values():
    """A card without the new fields has the key it had before them; the default fit is
    the 0.1 centre crop."""
    from astrocat.kernels.preprocess import centre_crop_plane

    spec = InputSpec(Kind.MONO_IMAGE, (8, 8, 1), "standardize")
    assert set(spec.identity()) == {"kind", "shape", "preprocessing", "layout", "crop_fraction",
                                    "zoom", "resize_filter", "antialias", "mean", "std"}
    x = np.random.default_rng(5).normal(size=(11, 13)).astype(np.float32)
    assert np.array_equal(fit.fit_plane(x, spec, (0.3, 0.3)), centre_crop_plane(x, 8, 8))


# ------------------------------------------------------------ cards and job files


def test_card_and_job_file_fields_for_products(tmp_path):
    from astrocat.errors import CardError
    from astrocat.jobs.jobfile import JobError, load_job
    from astrocat.models.card import parse_card

    base = {"name": "m", "task": "lens", "outputs": [{"name": "p"}],
            "files": {"onnx": "m.onnx"}, "sha256": {"onnx": "0" * 64}}
    plane = {"kind": "mono_image", "shape": [8, 8, 1], "preprocessing": "standardize"}
    card = parse_card({**base, "input": {**plane, "hdu": ["SCI", 2], "plane": "r",
                                         "mask_hdu": "DQ", "mask_bits": 4096, "fit": "pad",
                                         "fill": -1.0, "pixel_scale": 0.1}}, tmp_path, "c")
    assert card.input.product == _fits.Product(("SCI", 2), "r", "DQ", 4096)
    assert card.input.identity()["pixel_scale"] == 0.1
    bad = [({"pixel_scal": 0.1}, "did you mean 'pixel_scale'"),
           ({"fit": "stretch"}, "not one of crop, error, pad, resample"),
           ({"mask_bits": 3}, "mask_bits needs mask_hdu"),
           ({"hdu": ["SCI"]}, "EXTNAME, EXTVER")]
    for extra, message in bad:
        with pytest.raises(CardError, match=re.escape(message)):
            parse_card({**base, "input": {**plane, **extra}}, tmp_path, "c")
    rgb = {"kind": "rgb_image", "shape": [8, 8, 3], "preprocessing": "scale_255", "hdu": 1}
    with pytest.raises(CardError, match="applies to single-band planes"):
        parse_card({**base, "input": rgb}, tmp_path, "c")
    job = tmp_path / "job.toml"
    job.write_text('[job]\nname = "n"\ninput = "in"\nout = "store"\nhdu = ["SCI", 2]\n'
                   'plane = 1\nmask_hdu = "DQ"\n')
    spec = load_job(job)
    assert (spec.hdu, spec.plane, spec.mask_hdu) == (("SCI", 2), 1, "DQ")
    job.write_text('[job]\nname = "n"\ninput = "in"\nout = "store"\nplane = -1\n')
    with pytest.raises(JobError, match="plane"):
        load_job(job)
    assert _fits.parse_hdu_name("SCI,2") == ("SCI", 2) and _fits.parse_hdu_name("3") == 3
