"""The cfitsio (fitsio) FITS path against astropy, the reference, on real files.

Every file is read both ways (``_fits.USE_FITSIO`` off gives the reference): pixels,
HDU choice, routing and error texts must be identical, and the image centre's RA/Dec
must be astropy ``WCS.pixel_to_world_values``'s to 1e-9 deg. Files the fast path must
handle itself are checked to really take it; the rest must decline to astropy.
"""

from __future__ import annotations

import builtins
import gzip
import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from astrocat.errors import InputError, TransientInputError
from astrocat.sources import _fits, describe, fitsfiles
from astrocat.sources import common as sources_common
from astrocat.sources.readers import read_plane, read_spectra, scan_table

pytest.importorskip("fitsio")
#: float64 pixels beyond float32's range overflow to inf on both paths alike.
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")

#: RA/Dec agreement asked of the analytic centre (0.0036 mas).
TOL_DEG = 1e-9
N = 101
PIX = 0.1 / 3600  # deg per pixel


# --------------------------------------------------------------------------- builders


def tan(
    ra: float,
    dec: float,
    *,
    crpix: tuple[float, float] = ((N + 1) / 2, (N + 1) / 2),
    form: str = "cd",
    rot_deg: float = 0.0,
    scale: float = PIX,
    ctype: tuple[str, str] = ("RA---TAN", "DEC--TAN"),
    **extra: Any,
) -> fits.Header:
    """A celestial WCS header; ``form`` is 'cd', 'pc' (PC + CDELT) or 'cdelt'."""
    c, s = math.cos(math.radians(rot_deg)), math.sin(math.radians(rot_deg))
    h = fits.Header()
    h["CTYPE1"], h["CTYPE2"] = ctype
    h["CRVAL1"], h["CRVAL2"] = ra, dec
    h["CRPIX1"], h["CRPIX2"] = crpix
    if form == "cd":
        h["CD1_1"], h["CD1_2"], h["CD2_1"], h["CD2_2"] = -scale * c, scale * s, scale * s, scale * c
    elif form == "pc":
        h["CDELT1"], h["CDELT2"] = -scale, scale
        h["PC1_1"], h["PC1_2"], h["PC2_1"], h["PC2_2"] = c, -s, s, c
    else:
        h["CDELT1"], h["CDELT2"] = -scale, scale
    h.update(extra)
    return h


def pixels(shape: tuple[int, ...] = (N, N), seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(100, 5, shape).astype(np.float32)


def with_nans(data: np.ndarray) -> np.ndarray:
    data = data.copy()
    data[3, 5:15] = np.nan
    return data


def primary(data: np.ndarray | None, header: fits.Header | None = None) -> fits.HDUList:
    return fits.HDUList([fits.PrimaryHDU(data, header=header)])


def scaled(data: np.ndarray, dtype: str, **scaling: float) -> fits.HDUList:
    hdu = fits.PrimaryHDU(data)
    hdu.scale(dtype, **scaling)
    return fits.HDUList([hdu])


def behind_empty_primary(*hdus: fits.hdu.base._BaseHDU) -> fits.HDUList:
    return fits.HDUList([fits.PrimaryHDU(), *hdus])


def spectra_table() -> fits.BinTableHDU:
    flux = np.random.default_rng(2).random((6, 40)).astype(np.float32)
    return fits.BinTableHDU.from_columns(
        [
            fits.Column(name="objid", format="K", array=np.arange(6) + 1000),
            fits.Column(name="z", format="E", array=np.linspace(0.1, 0.6, 6)),
            fits.Column(name="FLUX", format="40E", array=flux),
        ]
    )


SIP = {"A_ORDER": 2, "A_0_2": 3e-6, "A_1_1": 2e-6, "B_ORDER": 2, "B_2_0": -2e-6, "B_1_1": 1e-6}

#: Files read by cfitsio with the analytic centre (or keywords, or no position).
FAST: dict[str, Callable[[], fits.HDUList]] = {
    "cd.fits": lambda: primary(pixels(), tan(150.1, 2.2, crpix=(40.3, 60.7), rot_deg=30)),
    "pc.fits": lambda: primary(
        pixels((64, N)), tan(33.0, -5.0, crpix=(10.0, 80.0), form="pc", rot_deg=17)
    ),
    "cdelt.fits": lambda: primary(pixels(), tan(210.5, 54.3, crpix=(30.5, 51.0), form="cdelt")),
    "cd_and_cdelt.fits": lambda: primary(
        pixels(), tan(12.0, 40.0, crpix=(20.0, 20.0), rot_deg=-40, CDELT1=-1.0, CDELT2=1.0)
    ),
    "rotated_far.fits": lambda: primary(
        pixels(), tan(300.0, -30.0, crpix=(1.0, 1.0), rot_deg=135, scale=0.01)
    ),
    "wide_field.fits": lambda: primary(
        pixels(), tan(80.0, 60.0, crpix=(-20.0, 0.0), form="pc", rot_deg=75, scale=0.3)
    ),
    "north_pole.fits": lambda: primary(
        pixels(), tan(45.0, 89.99, crpix=(51.0, 10.0), form="pc", rot_deg=5, scale=0.005)
    ),
    "south_pole.fits": lambda: primary(
        pixels(), tan(200.0, -89.95, crpix=(80.0, 70.0), rot_deg=60, scale=0.004)
    ),
    "ra_near_0.fits": lambda: primary(pixels(), tan(0.0005, 10.0, crpix=(1.0, 51.0))),
    "ra_near_360.fits": lambda: primary(pixels(), tan(359.9995, -10.0, crpix=(101.0, 51.0))),
    "ra_exactly_0.fits": lambda: primary(pixels(), tan(0.0, 0.0)),
    "simulated_style.fits": lambda: primary(
        pixels(),
        tan(356.88, -32.41, form="cdelt", WCSAXES=2, CUNIT1="deg", CUNIT2="deg",
            LONPOLE=180.0, LATPOLE=-32.41, MJDREF=0.0, RADESYS="ICRS", RA=1.0, DEC=2.0),
    ),
    "ext.fits": lambda: behind_empty_primary(fits.ImageHDU(pixels(), tan(33.0, -5.0))),
    "ext_keywords.fits": lambda: fits.HDUList(
        [fits.PrimaryHDU(header=fits.Header({"RA": 10.5, "DEC": -3.25})), fits.ImageHDU(pixels())]
    ),
    "keywords.fits": lambda: primary(pixels(), fits.Header({"RA_OBJ": -10.5, "DEC_OBJ": 3})),
    "no_position.fits": lambda: primary(pixels()),
    "cube_then_plane.fits": lambda: fits.HDUList(
        [fits.PrimaryHDU(np.zeros((3, 8, 8))), fits.ImageHDU(pixels(), tan(1.0, 1.0))]
    ),
    "single_plane.fits": lambda: primary(pixels((1, 16, 16))),
    "nan.fits": lambda: primary(with_nans(pixels()), tan(150.0, 2.0, rot_deg=3)),
    "img.fits.gz": lambda: primary(pixels(), tan(150.1, 2.2, crpix=(40.3, 60.7))),
    "small.fits.gz": lambda: primary(pixels((24, 24)), tan(150.1, 2.2, form="pc", rot_deg=9)),
    "img.fits.fz": lambda: behind_empty_primary(
        fits.CompImageHDU(pixels(), tan(150.1, 2.2, crpix=(40.3, 60.7), rot_deg=30))
    ),
    "nan.fits.fz": lambda: behind_empty_primary(
        fits.CompImageHDU(with_nans(pixels()), tan(20.0, -70.0, form="pc", rot_deg=12))
    ),
    "hcompress.fits.fz": lambda: behind_empty_primary(
        fits.CompImageHDU(pixels(), compression_type="HCOMPRESS_1")
    ),
    "int16.fits.fz": lambda: behind_empty_primary(
        fits.CompImageHDU((pixels() * 10).astype(np.int16))
    ),
    "density.fits": lambda: behind_empty_primary(
        fits.ImageHDU(pixels(), fits.Header({"ASTROCAT": "Density_Field"}))
    ),
    "int32.fits": lambda: primary((pixels() * 1e6).astype(np.int32), tan(5.0, 5.0)),
    "uint8.fits": lambda: primary(np.clip(pixels() * 2 - 100, 0, 255).astype(np.uint8)),
    "int64.fits": lambda: primary((pixels() * 1e12).astype(np.int64)),
    "float64.fits": lambda: primary(pixels().astype(np.float64) * 1e39),  # inf in float32
    "mostly_nan.fits": lambda: primary(np.full((N, N), np.nan, np.float32)),
    "unscaled_ints.fits": lambda: primary(
        (pixels() * 10).astype(np.int16), fits.Header({"BSCALE": 1, "BZERO": 0})
    ),
    # the unsigned-integer convention (BZERO 2**15, 2**31): both give the integers exactly
    "uint16.fits": lambda: primary((pixels() * 100).astype(np.uint16)),
    "uint32.fits": lambda: primary((pixels() * 1e6).astype(np.uint32)),
    "uint16.fits.fz": lambda: behind_empty_primary(
        fits.CompImageHDU((pixels() * 100).astype(np.uint16))
    ),
}

#: Files the fast path must hand to astropy; results are astropy's by construction.
DECLINED: dict[str, Callable[[], fits.HDUList]] = {
    "sin.fits": lambda: primary(pixels(), tan(150.0, 2.0, crpix=(30.0, 70.0),
                                              ctype=("RA---SIN", "DEC--SIN"))),
    "sip.fits": lambda: primary(
        pixels(), tan(150.0, 2.0, crpix=(30.0, 70.0), ctype=("RA---TAN-SIP", "DEC--TAN-SIP"),
                      **SIP)
    ),
    "sip_plain_ctype.fits": lambda: primary(pixels(), tan(150.0, 2.0, crpix=(30.0, 70.0), **SIP)),
    "tan_with_pv.fits": lambda: primary(
        pixels(), tan(150.0, 2.0, crpix=(30.0, 70.0), PV1_1=1.0, PV2_1=1.0, PV1_4=1e-3)
    ),
    "crota.fits": lambda: primary(pixels(), tan(150.0, 2.0, crpix=(30.0, 70.0), form="cdelt",
                                                CROTA2=25.0)),
    "lonpole_0.fits": lambda: primary(pixels(), tan(150.0, 2.0, crpix=(30.0, 70.0), LONPOLE=0.0)),
    "arcsec_units.fits": lambda: primary(
        pixels(), tan(150.0, 2.0, form="cdelt", scale=0.1, CUNIT1="arcsec", CUNIT2="arcsec")
    ),
    "galactic.fits": lambda: primary(pixels(), tan(120.0, 30.0, ctype=("GLON-TAN", "GLAT-TAN"))),
    "at_the_pole.fits": lambda: primary(pixels(), tan(10.0, 90.0, crpix=(30.0, 70.0))),
    "third_axis.fits": lambda: primary(
        pixels((1, N, N)), tan(150.0, 2.0, CTYPE3="FREQ", CRVAL3=1e9, CDELT3=1e6, CRPIX3=1.0)
    ),
    "singular_cd.fits": lambda: primary(pixels(), tan(150.0, 2.0, CD2_1=0.0, CD2_2=0.0)),
    "repeated_crval.fits": lambda: primary(pixels(), _repeated(tan(150.0, 2.0), "CRVAL1", 1.0)),
    "scaled.fits": lambda: scaled(pixels(), "int16", bscale=0.01, bzero=100.0),
    "scaled_float.fits": lambda: scaled(pixels(), "float32", bzero=5.0),
    "blank.fits": lambda: primary((pixels() * 10).astype(np.int16), fits.Header({"BLANK": 1000})),
    "table_then_image.fits": lambda: behind_empty_primary(
        spectra_table(), fits.ImageHDU(pixels(), tan(150.0, 2.0))
    ),
    "spec.fits": lambda: behind_empty_primary(spectra_table()),
    "cube.fits": lambda: primary(np.zeros((4, 16, 16), np.float32)),
    "header_only.fits": lambda: primary(None),
}

#: Broken or odd files, written byte by byte; cfitsio must leave all but ODD to astropy.
BROKEN = (
    "truncated.fits", "truncated.fits.gz", "truncated_inside.fits.gz", "corrupt_header.fits",
    "garbage_data.fits.fz", "simple_false.fits", "img[1].fits", "img[1].fits.gz",
)
ODD = ("unpadded.fits", "trailing_garbage.fits")


def _repeated(header: fits.Header, key: str, value: float) -> fits.Header:
    header.append((key, value), useblanks=False, bottom=True)
    return header


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("fits")
    out: dict[str, Path] = {}
    for name, build in {**FAST, **DECLINED}.items():
        out[name] = d / name
        hdul = build()
        if name.endswith(".gz"):
            hdul.writeto(d / "tmp.fits", overwrite=True, output_verify="silentfix")
            out[name].write_bytes(gzip.compress((d / "tmp.fits").read_bytes()))
        else:
            hdul.writeto(out[name], output_verify="silentfix")
    whole = out["cd.fits"].read_bytes()
    for name, content in {
        "truncated.fits": whole[:4000],
        "truncated.fits.gz": gzip.compress(whole)[:3000],
        "truncated_inside.fits.gz": gzip.compress(whole[:4000]),
        "corrupt_header.fits": whole[:400] + b"\x00\xff" * 1240 + whole[2880:],
        "garbage_data.fits.fz": (
            out["img.fits.fz"].read_bytes()[:8640] + b"\x17" * 2880
        ),
        "simple_false.fits": whole.replace(b"SIMPLE  =                    T",
                                           b"SIMPLE  =                    F", 1),
        "unpadded.fits": whole[: 2880 + N * N * 4],
        "trailing_garbage.fits": whole + b"garbage" * 50,
        "img[1].fits": whole,
        "img[1].fits.gz": gzip.compress(whole),
    }.items():
        out[name] = d / name
        out[name].write_bytes(content)
    return out


ALL = [*FAST, *DECLINED, *BROKEN, *ODD]
#: Files whose image has a usable celestial WCS (a singular matrix is not usable).
WITH_WCS = [
    name
    for name, build in {**FAST, **DECLINED}.items()
    if any("CTYPE1" in hdu.header for hdu in build()) and name != "singular_cd.fits"
]


# ------------------------------------------------------------------- running both


@pytest.fixture(autouse=True, params=["memory", "cfitsio"])
def layout(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test twice: small plain files laid out from their bytes (the default), and
    every file laid out by cfitsio (as files over ``MEMORY_BYTES`` are)."""
    if request.param == "cfitsio":
        monkeypatch.setattr(_fits, "MEMORY_BYTES", 0)
    return request.param


def reference(monkeypatch: pytest.MonkeyPatch, fn: Callable[[], Any]) -> Any:
    """``fn()`` with the cfitsio path switched off."""
    with monkeypatch.context() as m:
        m.setattr(_fits, "USE_FITSIO", False)
        return fn()


def outcome(fn: Callable[[], Any]) -> Any:
    """The result, or the InputError's text (what a catalog error row would show)."""
    try:
        return fn()
    except InputError as exc:
        return f"{type(exc).__name__}: {exc}"


def sky_gap(a: float, b: float) -> float:
    """|a - b| in degrees, across the 0/360 seam."""
    return abs((a - b + 180.0) % 360.0 - 180.0)


def wcs_centre(path: Path, hdu: int, shape: tuple[int, int]) -> tuple[float, float]:
    """astropy's WCS at the centre pixel: the reference the brief sets."""
    with fits.open(path) as hdul, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cel = WCS(hdul[hdu].header).celestial
    ny, nx = shape
    ra, dec = cel.pixel_to_world_values((nx - 1) / 2, (ny - 1) / 2)
    return float(ra), float(dec)


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("name", ALL)
def test_describe_is_the_same(files, monkeypatch, name):
    path = files[name]
    assert describe.describe(path, path.parent) == reference(
        monkeypatch, lambda: describe.describe(path, path.parent)
    )


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("given_hdu", [True, False], ids=["hdu", "no-hdu"])
def test_read_plane_is_the_same(files, monkeypatch, name, given_hdu):
    path = files[name]
    unit = describe.describe(path, path.parent)
    hdu = unit.hdu if given_hdu else None
    fast = outcome(lambda: read_plane(str(path), "fits_image", hdu))
    ref = outcome(lambda: reference(monkeypatch, lambda: read_plane(str(path), "fits_image", hdu)))
    if isinstance(ref, str):
        assert fast == ref  # identical error text
        return
    assert not isinstance(fast, str), fast
    assert fast.data.dtype == np.float32 and ref.data.dtype == np.float32
    assert np.array_equal(fast.data, ref.data)
    assert math.isnan(fast.ra) == math.isnan(ref.ra) and math.isnan(fast.dec) == math.isnan(ref.dec)
    if not math.isnan(ref.ra):
        assert sky_gap(fast.ra, ref.ra) < TOL_DEG and abs(fast.dec - ref.dec) < TOL_DEG


@pytest.mark.parametrize("name", list(FAST))
def test_fast_path_is_taken_and_chooses_the_same_hdu(files, name):
    path = str(files[name])
    for hdu in (None, describe.describe(files[name], files[name].parent).hdu):
        fast, ref = fitsfiles.fitsio_plane(path, hdu), fitsfiles.astropy_plane(path, hdu)
        assert fast.hdu == ref.hdu
        assert np.array_equal(fast.data, ref.data, equal_nan=True)
    gzipped = name.endswith(".gz")
    if gzipped and files[name].stat().st_size > describe._FITSIO_GZIP_LIMIT:
        with pytest.raises(_fits.Declined):  # astropy describes large .gz files
            describe._fitsio_route(files[name], gzipped)
    else:
        assert describe._fitsio_route(files[name], gzipped)["hdu"] == fast.hdu


@pytest.mark.parametrize("name", list(DECLINED))
def test_other_files_are_declined(files, name):
    with pytest.raises(_fits.Declined):
        fitsfiles.fitsio_plane(str(files[name]), None)


@pytest.mark.parametrize("name", BROKEN)
def test_broken_files_are_left_to_astropy(files, name):
    with pytest.raises(Exception):  # noqa: B017 -- Declined, or cfitsio's own complaint
        fitsfiles.fitsio_plane(str(files[name]), None)


@pytest.mark.parametrize("name", WITH_WCS)
def test_centre_matches_astropy_wcs(files, name):
    path = files[name]
    unit = describe.describe(path, path.parent)
    out = read_plane(str(path), "fits_image", unit.hdu)
    expected = wcs_centre(path, unit.hdu, out.data.shape)
    assert sky_gap(out.ra, expected[0]) < TOL_DEG, (out.ra, expected[0])
    assert abs(out.dec - expected[1]) < TOL_DEG, (out.dec, expected[1])


def test_centres_of_random_tan_headers():
    """Analytic centres of 1000 random TAN headers (all over the sky, the poles and the
    0/360 seam included) against astropy's WCS.

    Dec and the on-sky offset must agree to 1e-9 deg everywhere, RA itself wherever it is
    well defined: within ~0.01 deg of a pole one ulp of the position is ~1e-9 deg of RA,
    for wcslib as for any other formula.
    """
    rng = np.random.default_rng(7)
    for i in range(1000):
        dec0 = float(rng.choice([rng.uniform(-89.999, 89.999), rng.choice([-1, 1]) * 89.9999]))
        ra0 = float(rng.choice([rng.uniform(0, 360), rng.uniform(-1e-3, 1e-3) % 360]))
        ny, nx = (int(v) for v in rng.integers(8, 400, 2))
        header = tan(
            ra0, dec0,
            crpix=(float(rng.uniform(-50, 450)), float(rng.uniform(-50, 450))),
            form=("cd", "pc", "cdelt")[i % 3],
            rot_deg=float(rng.uniform(-180, 180)),
            scale=float(10 ** rng.uniform(-5, -1)),
        )
        header["NAXIS"], header["NAXIS1"], header["NAXIS2"] = 2, nx, ny
        got = fitsfiles._tan_centre(_fits.Cards(header.tostring().encode("ascii")), (ny, nx))
        assert got is not None
        w = WCS(header)
        ra, dec = (float(v) for v in w.pixel_to_world_values((nx - 1) / 2, (ny - 1) / 2))
        assert abs(got[1] - dec) < TOL_DEG
        assert sky_gap(got[0], ra) * math.cos(math.radians(dec)) < TOL_DEG
        if abs(dec) < 89.99:
            assert sky_gap(got[0], ra) < TOL_DEG, (header, got, ra)


def one_card(card: str) -> tuple[bytes, str]:
    return (card.ljust(80) + "END".ljust(80)).encode("ascii"), card.split("=")[0].strip().upper()


@pytest.mark.parametrize(
    "card",
    [
        "CRVAL1  = 150.25 / comment",
        "CRVAL1  =                 -7.5D2",
        "CRVAL1  =               1.5E-3",
        "CRVAL1  =                  51.",
        "CRVAL1  =                  +.5",
        "NAXIS   =                    2",
        "NAXIS   =                 0007",
        "BLANK   =                -1000 / x",
        "EXTEND  =                    T",
        "ASTROCAT= 'density_field'",
        "ASTROCAT= '  Density_Field   ' / tagged",
        "CTYPE1  = 'RA---TAN'",
        "OBJECT  = 'it''s / not a comment'",
        "OBJECT  = ''",
        "ra      =                 10.5",
    ],
)
def test_standard_cards_parse_as_astropy_does(card):
    raw, key = one_card(card)
    got = _fits.Cards(raw).get(key)
    expected = fits.Header.fromstring(raw.decode("ascii")).get(key)
    assert got == expected and type(got) is type(expected), (got, expected)


@pytest.mark.parametrize(
    "card",
    [
        "CRVAL1  = 150.25 garbage",
        "CRVAL1  =                1.5e2",
        "CRVAL1  =                     / no value",
        "CRVAL1  = (1.0, 2.0)",
        "CRVAL1 = 150.25",
        "BSCALE  =0.5",
        "OBJECT  = 'a long string going on&'",
    ],
)
def test_lenient_cards_are_left_to_astropy(card):
    raw, key = one_card(card)
    with pytest.raises(_fits.Declined):
        _fits.Cards(raw).get(key)


def test_ambiguous_cards_are_declined():
    cards = [
        "CRVAL1  =                  1.0",
        "CRVAL1  =                  2.0",  # astropy takes the first, wcslib the last
        "HIERARCH RA = 3.0",  # astropy answers get('RA') with it
        "DEC     =                  4.0",
    ]
    raw = ("".join(c.ljust(80) for c in cards) + "END".ljust(80)).encode("ascii")
    header = _fits.Cards(raw)
    for key in ("CRVAL1", "RA"):
        with pytest.raises(_fits.Declined):
            header.get(key)
    assert header.get("DEC") == 4.0 and header.get("CRVAL2", 9) == 9


def test_compressed_headers_read_as_image_headers(files):
    with _fits.FastFits(str(files["img.fits.fz"])) as f:
        header = f.header(1)
    assert _fits.header_shape(header) == (N, N) and header.get("BITPIX") == -32


def test_describe_reads_no_pixels_either_way(files, monkeypatch: pytest.MonkeyPatch):
    """Both libraries are spied on: describe reads headers, never pixels."""

    def no_pixels(*args: object) -> None:
        raise AssertionError("describe read pixel data")

    for cls in (fits.hdu.image._ImageBaseHDU, fits.CompImageHDU, fits.BinTableHDU):
        monkeypatch.setattr(cls, "data", property(no_pixels))
    monkeypatch.setattr(_fits.FastFits, "pixels", no_pixels)
    for name in ALL:
        unit = describe.describe(files[name], files[name].parent)
        assert "describe read pixel data" not in (unit.error or ""), name
    with pytest.raises(InputError, match="describe read pixel data"):  # the spies work
        read_plane(str(files["cd.fits"]), "fits_image", 0)


def test_without_fitsio_everything_reads_the_same(files, monkeypatch: pytest.MonkeyPatch):
    path = files["cd.fits"]
    fast = read_plane(str(path), "fits_image", 0)
    monkeypatch.setattr(_fits, "fitsio", None)
    ref = read_plane(str(path), "fits_image", 0)
    assert np.array_equal(fast.data, ref.data) and sky_gap(fast.ra, ref.ra) < TOL_DEG
    assert describe.describe(path, path.parent).kind is not None


def test_vanished_file_is_not_swapped_for_its_gz(tmp_path: Path, files, monkeypatch):
    """cfitsio opens x.fits.gz when x.fits is missing; the fast path must not."""
    (tmp_path / "x.fits.gz").write_bytes(gzip.compress(files["cd.fits"].read_bytes()))
    fast = outcome(lambda: read_plane(str(tmp_path / "x.fits"), "fits_image", 0))
    ref = outcome(lambda: reference(
        monkeypatch, lambda: read_plane(str(tmp_path / "x.fits"), "fits_image", 0)))
    assert isinstance(fast, str) and fast == ref
    assert fast.startswith(TransientInputError.__name__)


def test_fits_table_spectra_are_the_same(files, monkeypatch):
    path = str(files["spec.fits"])
    info = scan_table(path, "fits_table", 1)
    assert info == reference(monkeypatch, lambda: scan_table(path, "fits_table", 1))
    flux, carried = read_spectra(path, "fits_table", 1, 1, 5, info)
    ref_flux, ref_carried = reference(
        monkeypatch, lambda: read_spectra(path, "fits_table", 1, 1, 5, info))
    assert np.array_equal(flux, ref_flux) and carried.equals(ref_carried)


def test_a_fits_file_is_opened_once_to_route_and_read(tmp_path, monkeypatch):
    """describe hands its open cfitsio file to the reader on the same thread (one header
    pass per file); a file described but never read is closed by release_handed."""
    import numpy as np
    from astropy.io import fits

    from astrocat.sources import _fits, readers
    from astrocat.sources.describe import describe

    if _fits.fitsio is None:
        pytest.skip("fitsio is not installed: astropy reads every file")
    path = tmp_path / "stamp.fits"
    fits.PrimaryHDU(np.arange(400, dtype=np.float32).reshape(20, 20)).writeto(path)
    opened = []
    real = _fits.FastFits.__init__

    def counting(self, p, **kw):
        opened.append(p)
        real(self, p, **kw)

    monkeypatch.setattr(_fits.FastFits, "__init__", counting)
    unit = describe(path, tmp_path)
    plane = readers.read_plane(unit.path, unit.fmt, unit.hdu)
    assert len(opened) == 1 and plane.data.shape == (20, 20)
    assert plane.data[3, 4] == 64.0
    describe(path, tmp_path)  # routed, never read
    kept = _fits._handed.file
    assert kept is not None
    _fits.release_handed()
    assert _fits._handed.file is None and kept[1]._file.closed


# ------------------------------------------------------------- the in-memory layout


def _as_read(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


@pytest.mark.parametrize("name", [n for n in [*FAST, *DECLINED, "unpadded.fits"]
                                  if not n.endswith(".fz")])
def test_memory_layout_is_cfitsios(files, name):
    """HDU count, types, offsets and pixels found in the bytes are cfitsio's own."""
    import fitsio

    mine = _fits.MemoryFits(_as_read(files[name]))
    with fitsio.FITS(str(files[name])) as theirs:
        assert len(mine) == len(theirs)
        for i in range(len(theirs)):
            ours, cf = mine[i], theirs[i]
            assert ours.get_exttype(num=True) == cf.get_exttype(num=True)
            for key in ("header_start", "data_start"):
                assert ours.get_offsets()[key] == cf.get_offsets()[key], (i, key)
            if cf.get_exttype(num=True) == fitsio.IMAGE_HDU and ours.shape and all(ours.shape):
                header = ours.cards
                if (header.get("BSCALE", 1), header.get("BZERO", 0)) not in (
                        (1, 0), (1, 32768), (1, 2147483648)):
                    with pytest.raises(_fits.Declined):
                        ours.read()
                    continue
                ref = cf.read()
                got = ours.read()
                assert got.dtype.kind == ref.dtype.kind and got.shape == ref.shape
                assert np.array_equal(got, ref, equal_nan=True)


#: Not plain: compressed images, cut-off or damaged files, bytes after the last HDU (the
#: img[1] files are plain: only their names are odd, to cfitsio).
NOT_PLAIN = [*(n for n in FAST if n.endswith(".fz")),
             *(n for n in BROKEN if "[" not in n), "trailing_garbage.fits"]


@pytest.mark.parametrize("name", NOT_PLAIN)
def test_memory_layout_declines_what_is_not_plain(files, name):
    """Compressed images, cut-off or damaged files, bytes after the last HDU: Declined,
    so cfitsio and astropy decide as before."""
    data = files[name].read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except EOFError:  # a cut-off gzip stream is refused before any layout is looked for
            with pytest.raises(EOFError):
                _fits.FastFits(str(files[name]), in_memory=True)
            return
    with pytest.raises(_fits.Declined):
        _fits.MemoryFits(data)


def test_memory_layout_is_used_for_small_plain_files(files, monkeypatch, layout):
    """The in-memory layout really carries the survey's cut-outs: cfitsio never opens them
    (and does open them when they are over ``MEMORY_BYTES``)."""
    import fitsio

    opened = []
    real = fitsio.FITS

    def spy(*args: Any, **kwargs: Any) -> Any:
        opened.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(fitsio, "FITS", spy)
    read_whole = []
    real_open = builtins.open

    def open_spy(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if str(file) == str(path):
            read_whole.append(mode)
        return real_open(file, mode, *args, **kwargs)

    real_os_open = os.open

    def os_open_spy(file: Any, flags: int, *args: Any, **kwargs: Any) -> Any:
        if str(file) == str(path) and not flags & (os.O_WRONLY | os.O_RDWR):
            read_whole.append("rb")
        return real_os_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", open_spy)
    monkeypatch.setattr(os, "open", os_open_spy)
    path = files["cd.fits"]
    unit = describe.describe(path, path.parent)
    plane = read_plane(str(path), "fits_image", unit.hdu)
    assert plane.data.shape == (N, N)
    assert opened == ([] if layout == "memory" else [str(path)])
    # describe reads the small file whole once and hands its bytes to the memory layout
    assert read_whole == (["rb"] if layout == "memory" else ["rb", "rb"])
    assert sources_common.take_bytes(str(path)) is None  # taken, nothing left behind
