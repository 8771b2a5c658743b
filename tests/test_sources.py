"""Finding, recognising, describing and reading inputs, on real files written here."""

from __future__ import annotations

import gzip
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.table import MaskedColumn, Table
from astropy.wcs import WCS
from PIL import Image, ImageFile, JpegImagePlugin

from astrocat.errors import AstrocatError, InputError
from astrocat.kinds import Kind
from astrocat.sources import _fits
from astrocat.sources.describe import describe
from astrocat.sources.discover import resolve_inputs
from astrocat.sources.readers import (
    PlaneRead,
    read_plane,
    read_rgb,
    read_spectra,
    scan_table,
)
from astrocat.sources.sniff import sniff

N_FLUX = 40

# --------------------------------------------------------------------------- builders


def galaxy(n: int = 424, seed: int = 0) -> np.ndarray:
    """A smooth elliptical blob with noise: JPEG-like content, not white noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:n, :n]
    blob = 255 * np.exp(-(((x - n / 2) / (n / 10)) ** 2 + ((y - n / 2) / (n / 16)) ** 2))
    rgb = np.stack([blob, 0.8 * blob, 0.6 * blob], axis=-1) + rng.normal(0, 6, (n, n, 3))
    return np.clip(rgb, 0, 255).astype(np.uint8)


def wcs_header(ra: float, dec: float, n: int) -> fits.Header:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra, dec]
    w.wcs.crpix = [(n + 1) / 2, (n + 1) / 2]  # FITS 1-based centre
    w.wcs.cdelt = [-0.262 / 3600, 0.262 / 3600]
    return w.to_header()


def plane(n: int = 32, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(100, 5, (n, n)).astype(np.float32)


def spectra(n: int, seed: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).random((n, N_FLUX)).astype(np.float32)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One real file of every kind astrocat reads, plus the broken ones it must survive."""
    d = tmp_path_factory.mktemp("inputs")
    f: dict[str, Path] = {}

    def p(name: str) -> Path:
        f[name] = d / name
        return d / name

    Image.fromarray(galaxy()).save(p("rgb.jpg"), quality=90)
    Image.fromarray(galaxy()[:, :, 0]).save(p("grey.jpg"), quality=90)
    Image.fromarray(galaxy(100)).convert("RGBA").save(p("rgba.png"))
    Image.fromarray(galaxy(100)).convert("P").save(p("palette.png"))
    Image.fromarray(galaxy(100)).save(p("png_named.jpg"), format="PNG")
    data = galaxy()
    Image.fromarray(data).save(d / "full.jpg", quality=90)
    p("truncated.jpg").write_bytes((d / "full.jpg").read_bytes()[:6000])

    img = plane(33)
    fits.PrimaryHDU(img, header=wcs_header(150.1, 2.2, 33)).writeto(p("wcs.fits"))
    hdr = fits.Header({"RA": 10.5, "DEC": -3.25})
    fits.PrimaryHDU(img, header=hdr).writeto(p("keywords.fits"))
    ext = fits.ImageHDU(img, header=wcs_header(33.0, -5.0, 33))
    fits.HDUList([fits.PrimaryHDU(), ext]).writeto(p("ext.fits"))
    density = fits.ImageHDU(img)
    density.header["ASTROCAT"] = "Density_Field"
    fits.HDUList([fits.PrimaryHDU(), density]).writeto(p("density.fits"))
    fits.PrimaryHDU(img).writeto(d / "plain.fits")
    p("img.fits.gz").write_bytes(gzip.compress((d / "plain.fits").read_bytes()))
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(img)]).writeto(p("img.fits.fz"))
    fits.PrimaryHDU(np.zeros((4, 16, 16), np.float32)).writeto(p("cube.fits"))
    fits.PrimaryHDU(np.zeros((1, 16, 16), np.float32)).writeto(p("single_plane.fits"))
    fits.HDUList([fits.PrimaryHDU(np.zeros((3, 8, 8))), fits.ImageHDU(img)]).writeto(
        p("cube_then_plane.fits")
    )
    fits.PrimaryHDU().writeto(p("header_only.fits"))
    p("truncated.fits").write_bytes((d / "plain.fits").read_bytes()[:4000])

    flux = spectra(6)
    cols = [
        fits.Column(name="objid", format="K", array=np.arange(6) + 1000),
        fits.Column(name="z", format="E", array=np.linspace(0.1, 0.6, 6)),
        fits.Column(name="name", format="8A", array=[f"g{i}" for i in range(6)]),
        fits.Column(name="good", format="L", array=[True, False] * 3),
        fits.Column(name="FLUX", format=f"{N_FLUX}E", array=flux),
        fits.Column(name="wave", format=f"{N_FLUX}E", array=flux),  # array: not carried
    ]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(p("spec.fits"))

    flux = spectra(10)
    list_flux = [list(map(float, row)) for row in flux]
    list_flux[3] = None  # a missing spectrum
    list_flux[4] = list_flux[4][:-1]  # a short one
    table = pa.table(
        {
            "id": pa.array(np.arange(10), pa.int32()),
            "ra": np.linspace(10, 11, 10),
            "dec": np.linspace(-1, 1, 10).astype(np.float32),
            "z": np.linspace(0, 1, 10),
            "name": [f"obj{i}" for i in range(10)],
            "flag": [True] * 10,
            "flux": pa.array(list_flux, pa.list_(pa.float32())),
            "meta": pa.array([{"a": 1}] * 10),  # struct: dropped
        }
    )
    pq.write_table(table, p("list.parquet"))
    columns = {"id": np.arange(1000, dtype=np.int64)}
    big = spectra(1000, seed=3)
    columns |= {f"flux_{j}": big[:, j] for j in range(N_FLUX)}
    pq.write_table(pa.table(columns), p("cols.parquet"), row_group_size=100)
    pq.write_table(pa.table({"id": [1, 2], "mag": [20.0, 21.0]}), p("noflux.parquet"))
    pq.write_table(pa.table({"flux_0": [1.0], "flux_1": [2.0], "flux_3": [3.0]}), p("gap.parquet"))

    header = "id,name,z," + ",".join(f"flux_{j}" for j in range(5))
    rows = [f"{i},obj{i},0.{i}," + ",".join(str(i + j / 10) for j in range(5)) for i in range(8)]
    rows[2] = "2,obj2,0.2,1.0,,3.0,4.0,5.0"  # missing flux value
    rows[5] = "5,obj5,0.5,1.0,2.0"  # too few values
    rows[6] = "6,obj6,0.6,1.0,2.0,oops,4.0,5.0"  # not a number
    p("spec.csv").write_text("\n".join([header, *rows, ""]) + "\n")
    p("noflux.csv").write_text("id,ra,dec\n1,10.0,2.0\n")

    t = Table()
    t["id"] = [1, 2, 3]
    t["flux"] = spectra(3).astype(np.float64)
    t["z"] = MaskedColumn([0.1, 0.2, 0.3], mask=[False, True, False])
    t["name"] = ["a", "b", "c"]
    t.write(p("spec.ecsv"))

    np.save(p("spec1d.npy"), spectra(1)[0])
    np.save(p("spectra.npy"), spectra(5))
    np.save(p("map.npy"), plane(16))
    np.save(p("cube.npy"), np.arange(8**3, dtype=np.float32).reshape(8, 8, 8))
    np.save(p("bad4d.npy"), np.zeros((2, 2, 2, 2)))
    np.save(p("objects.npy"), np.array([{"a": 1}], dtype=object), allow_pickle=True)

    p("empty.fits").write_bytes(b"")
    p("random.bin").write_bytes(np.random.default_rng(4).bytes(2000))
    p("text.fits").write_text("Service unavailable, please retry later\n")
    p("page.fits").write_text("<!DOCTYPE html><html><body>404</body></html>\n")
    return f


# --------------------------------------------------------------------------- sniff


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("rgb.jpg", "jpeg"),
        ("grey.jpg", "jpeg"),
        ("rgba.png", "png"),
        ("png_named.jpg", "png"),
        ("wcs.fits", "fits"),
        ("img.fits.fz", "fits"),
        ("img.fits.gz", "gzip"),
        ("list.parquet", "parquet"),
        ("spec.csv", "csv"),
        ("spec.ecsv", "ecsv"),
        ("spectra.npy", "npy"),
        ("empty.fits", "unknown"),
        ("random.bin", "unknown"),
        ("text.fits", "unknown"),
    ],
)
def test_sniff_uses_content_not_extension(files: dict[str, Path], name: str, expected: str):
    assert sniff(files[name]) == expected


# --------------------------------------------------------------------------- describe


@pytest.mark.parametrize(
    ("name", "fmt", "kind", "n_items", "hdu"),
    [
        ("rgb.jpg", "jpeg", Kind.RGB_IMAGE, 1, None),
        ("grey.jpg", "jpeg", Kind.RGB_IMAGE, 1, None),
        ("palette.png", "png", Kind.RGB_IMAGE, 1, None),
        ("png_named.jpg", "png", Kind.RGB_IMAGE, 1, None),
        ("truncated.jpg", "jpeg", Kind.RGB_IMAGE, 1, None),  # header is fine: fails on read
        ("wcs.fits", "fits_image", Kind.MONO_IMAGE, 1, 0),
        ("ext.fits", "fits_image", Kind.MONO_IMAGE, 1, 1),
        ("density.fits", "fits_image", Kind.DENSITY_FIELD, 1, 1),
        ("img.fits.gz", "fits_image", Kind.MONO_IMAGE, 1, 0),
        ("img.fits.fz", "fits_image", Kind.MONO_IMAGE, 1, 1),
        ("single_plane.fits", "fits_image", Kind.MONO_IMAGE, 1, 0),
        ("cube_then_plane.fits", "fits_image", Kind.MONO_IMAGE, 1, 1),
        ("spec.fits", "fits_table", Kind.SPECTRUM, 6, 1),
        ("list.parquet", "parquet", Kind.SPECTRUM, 10, None),
        ("cols.parquet", "parquet", Kind.SPECTRUM, 1000, None),
        ("spec.csv", "csv", Kind.SPECTRUM, 8, None),
        ("spec.ecsv", "ecsv", Kind.SPECTRUM, 3, None),
        ("spec1d.npy", "npy", Kind.SPECTRUM, 1, None),
        ("spectra.npy", "npy", Kind.SPECTRUM, 5, None),
        ("map.npy", "npy", Kind.DENSITY_FIELD, 1, None),
        ("cube.npy", "npy", Kind.DENSITY_FIELD, 1, None),
    ],
)
def test_describe_routes(files, name, fmt, kind, n_items, hdu):
    path = files[name]
    unit = describe(path, path.parent)
    assert unit.error is None
    assert (unit.fmt, unit.kind, unit.n_items, unit.hdu) == (fmt, kind, n_items, hdu)
    assert unit.source == name
    assert unit.path == str(path)
    st = path.stat()
    assert (unit.size, unit.mtime_ns) == (st.st_size, st.st_mtime_ns)


@pytest.mark.parametrize(
    ("name", "phrases"),
    [
        ("empty.fits", ["empty file"]),
        ("random.bin", ["not a recognised format", "JPEG, PNG, FITS", "binary data"]),
        ("text.fits", ["not a recognised format", "first bytes look like text"]),
        ("page.fits", ["HTML page"]),
        ("cube.fits", ["FITS image is 3-D", "(4, 16, 16)", "2-D single-band image"]),
        ("header_only.fits", ["no image or table HDU with data"]),
        ("truncated.fits", ["truncated"]),
        ("noflux.parquet", ["no flux columns", "flux_0 ... flux_N", "named flux", "id, mag"]),
        ("noflux.csv", ["no flux columns"]),
        ("gap.parquet", ["contiguous", "flux_2 is missing"]),
        ("bad4d.npy", ["shape (2, 2, 2, 2)"]),
        ("objects.npy", ["Python objects"]),
    ],
)
def test_describe_error_units(files, name, phrases):
    path = files[name]
    unit = describe(path, path.parent)
    assert unit.kind is None
    assert unit.error
    for phrase in phrases:
        assert phrase in unit.error, unit.error
    assert unit.n_items == 1
    assert unit.source == name


def test_describe_survives_missing_dirs_and_pipes(tmp_path: Path):
    missing = describe(tmp_path / "gone.fits", tmp_path)
    assert missing.kind is None and "does not exist" in missing.error
    os.symlink(tmp_path / "nowhere", tmp_path / "link.fits")
    broken = describe(tmp_path / "link.fits", tmp_path)
    assert "broken symbolic link" in broken.error
    os.mkfifo(tmp_path / "pipe")  # opening it would block: describe must not try
    assert "not a regular file" in describe(tmp_path / "pipe", tmp_path).error
    outside = describe(tmp_path / "gone.fits", tmp_path / "elsewhere")
    assert outside.source == (tmp_path / "gone.fits").as_posix()


# --------------------------------------------------------------------------- discover


def make_tree(root: Path) -> None:
    for rel in [
        "b/2.fits",
        "b/1.jpg",
        "a.fits",
        "c/d/e.fits",
        ".hidden.fits",
        ".git/x.fits",
        "b/.cache/y.fits",
        "c/skip.tmp",
    ]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")


def rels(root: Path, paths) -> list[str]:
    return [Path(p).relative_to(root).as_posix() for p in paths]


def test_directory_walk_sorted_skips_hidden(tmp_path: Path):
    make_tree(tmp_path)
    root, paths = resolve_inputs(str(tmp_path))
    assert root == tmp_path
    assert not isinstance(paths, list | tuple)  # lazy
    listed = list(paths)
    assert all(isinstance(p, str) and p == os.path.abspath(p) for p in listed)  # normalised
    assert rels(tmp_path, listed) == ["a.fits", "b/1.jpg", "b/2.fits", "c/d/e.fits", "c/skip.tmp"]
    assert list(resolve_inputs(str(tmp_path))[1]) == listed  # deterministic


def test_exclude_patterns_are_relative_to_root(tmp_path: Path):
    make_tree(tmp_path)
    _, paths = resolve_inputs(str(tmp_path), exclude=["*.tmp", "b"])
    assert rels(tmp_path, paths) == ["a.fits", "c/d/e.fits"]


def test_single_file_root_is_parent(tmp_path: Path):
    make_tree(tmp_path)
    root, paths = resolve_inputs(str(tmp_path / "b" / "2.fits"))
    assert root == tmp_path / "b" and list(paths) == [str(tmp_path / "b" / "2.fits")]


def test_glob_with_recursive_double_star(tmp_path: Path):
    make_tree(tmp_path)
    root, paths = resolve_inputs(str(tmp_path / "**" / "*.fits"))
    assert root == tmp_path
    assert rels(tmp_path, paths) == ["a.fits", "b/2.fits", "c/d/e.fits"]
    root, paths = resolve_inputs(str(tmp_path / "b" / "?.*"))
    assert root == tmp_path / "b"
    assert rels(root, paths) == ["1.jpg", "2.fits"]
    _, paths = resolve_inputs(str(tmp_path / "*" / "*.fits"))
    assert rels(tmp_path, paths) == ["b/2.fits"]


def test_relative_glob_uses_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    make_tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    root, paths = resolve_inputs("[ab]*")
    assert root == tmp_path and rels(tmp_path, paths) == ["a.fits"]


def test_existing_name_with_brackets_is_not_a_glob(tmp_path: Path):
    (tmp_path / "img[1].fits").write_text("x")
    assert list(resolve_inputs(str(tmp_path / "img[1].fits"))[1]) == [str(tmp_path / "img[1].fits")]


def test_list_file(tmp_path: Path):
    make_tree(tmp_path)
    listing = tmp_path / "lists" / "inputs.txt"
    listing.parent.mkdir()
    listing.write_text(f"# my sample\n\n../a.fits\n  ../b/2.fits  \n{tmp_path / 'c'}\n")
    root, paths = resolve_inputs(f"@{listing}")
    assert root == listing.parent
    assert [Path(p).as_posix() for p in paths] == [
        (tmp_path / "a.fits").as_posix(),
        (tmp_path / "b" / "2.fits").as_posix(),
        (tmp_path / "c" / "d" / "e.fits").as_posix(),
        (tmp_path / "c" / "skip.tmp").as_posix(),
    ]


def test_listed_but_missing_file_becomes_error_unit(tmp_path: Path):
    listing = tmp_path / "inputs.txt"
    listing.write_text("missing.fits\n")
    root, paths = resolve_inputs(f"@{listing}")
    units = [describe(p, root) for p in paths]
    assert len(units) == 1 and "does not exist" in units[0].error


@pytest.mark.parametrize(
    ("spec", "phrase"),
    [
        ("nope/here", "does not exist"),
        ("nope/*.fits", "no files match"),
        ("@nope.txt", "list file"),
        ("", "no input given"),
    ],
)
def test_specs_matching_nothing_raise_clearly(tmp_path, monkeypatch, spec, phrase):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AstrocatError, match=phrase):
        resolve_inputs(spec)


def test_empty_directory_and_empty_list_raise(tmp_path: Path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / ".only_hidden").write_text("x")
    with pytest.raises(AstrocatError, match="holds no"):
        resolve_inputs(str(tmp_path / "d"))
    (tmp_path / "l.txt").write_text("# nothing\n")
    with pytest.raises(AstrocatError, match="names no files"):
        resolve_inputs(f"@{tmp_path / 'l.txt'}")


def test_walk_is_lazy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for sub in "abc":
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "x.fits").write_text("x")
    listed: list[str] = []
    real = os.scandir

    def spy(path):
        listed.append(Path(path).name)
        return real(path)

    monkeypatch.setattr("astrocat.sources.discover.os.scandir", spy)
    _, paths = resolve_inputs(str(tmp_path))
    assert Path(next(paths)).parent.name == "a"
    assert "c" not in listed  # later directories are not listed yet


# --------------------------------------------------------------------------- read_rgb


def test_read_rgb_shapes(files):
    for name in ["rgb.jpg", "grey.jpg", "rgba.png", "palette.png", "png_named.jpg"]:
        out = read_rgb(str(files[name]), 64, 0.5)
        assert out.shape == (64, 64, 3) and out.dtype == np.uint8, name
    grey = read_rgb(str(files["grey.jpg"]), 64, 0.5)
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    up = read_rgb(str(files["rgba.png"]), 128, 1.0)  # upscaling a small image
    assert up.shape == (128, 128, 3)


def test_read_rgb_crops_the_centre(tmp_path: Path):
    img = np.zeros((200, 300, 3), np.uint8)
    img[50:150, 100:200] = 255  # a white square exactly the central half of the short side
    Image.fromarray(img).save(tmp_path / "c.png")
    out = read_rgb(str(tmp_path / "c.png"), 20, 0.5)
    assert out.min() == 255


def test_draft_decoding_matches_full_decode(files, monkeypatch: pytest.MonkeyPatch):
    """Pillow, the reference: reduced-scale decoding where the crop allows it."""
    from astrocat.sources import images

    monkeypatch.setattr(images, "USE_SIMPLEJPEG", False)
    calls: list[tuple[int, int]] = []
    real = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        calls.append(size)
        return real(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    fast = read_rgb(str(files["rgb.jpg"]), 64, 0.5).astype(float)
    assert calls == [(128, 128)]  # crop 212 px -> 64: decode at 1/2 scale, still >= 64 px
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", lambda self, m, s: None)
    full = read_rgb(str(files["rgb.jpg"]), 64, 0.5).astype(float)
    assert np.abs(fast - full).mean() < 1.5
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def _jpeg_cases(d: Path) -> list[tuple[Path, bool]]:
    """JPEGs of every shape libjpeg-turbo may meet, and whether simplejpeg takes them
    (True) or must decline them to Pillow (False)."""
    rng = np.random.default_rng(5)
    cases = []

    def save(name, arr, turbo, mode=None, **kw):
        img = Image.fromarray(arr) if mode is None else Image.fromarray(arr).convert(mode)
        img.save(d / name, "JPEG", **kw)
        cases.append((d / name, turbo))

    g = galaxy()
    save("q90.jpg", g, True, quality=90)
    save("q50-444.jpg", g, True, quality=50, subsampling=0)
    save("q75-422.jpg", g, True, quality=75, subsampling=1)
    save("progressive.jpg", g, True, quality=85, progressive=True)
    save("odd.jpg", rng.integers(0, 255, (333, 517, 3), dtype=np.uint8), True, quality=80)
    save("tall.jpg", rng.integers(0, 255, (601, 97, 3), dtype=np.uint8), True)
    save("small.jpg", galaxy(40), True)
    save("grey.jpg", g[:, :, 1], True)
    save("restart.jpg", g, True, quality=80, restart_marker_blocks=4)
    save("cmyk.jpg", g, False, mode="CMYK")
    return cases


@pytest.mark.parametrize("size, crop, zoom, resize_filter, antialias", [
    (64, 0.5, 1.0, "bilinear", True), (64, 1.0, 1.0, "bilinear", True),
    (32, 0.25, 1.0, "bicubic", True), (100, 0.8, 1.3, "lanczos", True),
    (64, 0.5, 1.0, "bilinear", False), (256, 1.0, 1.0, "bilinear", True),
    (7, 1.0, 2.0, "box", True)])
def test_simplejpeg_gives_pillows_pixels(tmp_path, monkeypatch, size, crop, zoom,
                                         resize_filter, antialias):
    """libjpeg-turbo through simplejpeg at Pillow's draft scale: the same pixels as the
    Pillow reference, or the file declined to Pillow."""
    import simplejpeg

    from astrocat.sources import images

    taken = []
    real = simplejpeg.decode_jpeg
    monkeypatch.setattr(images.simplejpeg, "decode_jpeg",
                        lambda *a, **k: taken.append(1) or real(*a, **k))
    for path, turbo in _jpeg_cases(tmp_path):
        taken.clear()
        args = (str(path), size, crop, zoom, resize_filter, antialias)
        monkeypatch.setattr(images, "USE_SIMPLEJPEG", True)
        fast = read_rgb(*args)
        assert bool(taken) == turbo, path.name
        monkeypatch.setattr(images, "USE_SIMPLEJPEG", False)
        np.testing.assert_array_equal(fast, read_rgb(*args), err_msg=path.name)


def test_jpegs_libjpeg_only_warns_about_go_to_pillow(files, tmp_path):
    """A truncated JPEG: simplejpeg declines (its warnings are errors), Pillow words the
    error row as before."""
    from astrocat.sources import images

    assert images._turbo_decode(str(files["truncated.jpg"]), 64, 0.5, True) is None


def test_truncated_jpeg_raises_input_error(files):
    path = str(files["truncated.jpg"])
    with pytest.raises(InputError) as err:
        read_rgb(path, 64, 0.5)
    assert path in str(err.value) and "JPEG data is truncated or corrupt" in str(err.value)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_read_rgb_on_garbage_raises_input_error(files):
    with pytest.raises(InputError, match="not a readable JPEG or PNG"):
        read_rgb(str(files["random.bin"]), 64, 0.5)


# --------------------------------------------------------------------------- read_plane


def test_read_plane_fits_with_wcs(files):
    out = read_plane(str(files["wcs.fits"]), "fits_image", 0)
    assert isinstance(out, PlaneRead)
    assert out.data.dtype == np.float32 and out.data.shape == (33, 33)
    np.testing.assert_array_equal(out.data, plane(33))
    assert out.ra == pytest.approx(150.1, abs=1e-6) and out.dec == pytest.approx(2.2, abs=1e-6)


@pytest.mark.parametrize(
    ("name", "hdu", "ra", "dec"),
    [
        ("ext.fits", 1, 33.0, -5.0),
        ("keywords.fits", 0, 10.5, -3.25),
        ("img.fits.gz", 0, math.nan, math.nan),
        ("img.fits.fz", 1, math.nan, math.nan),
        ("single_plane.fits", 0, math.nan, math.nan),
    ],
)
def test_read_plane_variants(files, name, hdu, ra, dec):
    unit = describe(files[name], files[name].parent)
    out = read_plane(unit.path, unit.fmt, unit.hdu)
    assert out.data.ndim == 2 and out.data.dtype == np.float32
    if name != "single_plane.fits":
        np.testing.assert_allclose(out.data, plane(33), rtol=0, atol=0.5)  # fz: quantised
    np.testing.assert_allclose([out.ra, out.dec], [ra, dec], atol=1e-6)


def test_read_plane_patches_a_few_nans_refuses_many(tmp_path: Path):
    img = plane(20)
    img[0, :10] = np.nan  # 2.5 %
    fits.PrimaryHDU(img).writeto(tmp_path / "few.fits")
    out = read_plane(str(tmp_path / "few.fits"), "fits_image", 0)
    assert np.isfinite(out.data).all()
    assert out.data[0, 0] == pytest.approx(np.nanmedian(img))
    img[:5] = np.inf  # 25 %
    fits.PrimaryHDU(img).writeto(tmp_path / "many.fits")
    with pytest.raises(InputError, match=r"NaN or infinite.*at most 10%"):
        read_plane(str(tmp_path / "many.fits"), "fits_image", 0)


def test_read_plane_npy_map_and_cube(files):
    out = read_plane(str(files["map.npy"]), "npy", None)
    np.testing.assert_array_equal(out.data, plane(16))
    assert math.isnan(out.ra) and math.isnan(out.dec)
    cube = read_plane(str(files["cube.npy"]), "npy", None)
    expected = np.arange(8**3, dtype=np.float32).reshape(8, 8, 8).mean(axis=0)
    np.testing.assert_allclose(cube.data, expected)


def test_read_plane_wrong_dims_raise_input_error(files):
    with pytest.raises(InputError, match=r"cube.fits: FITS image is 3-D .*HDU 0.*--plane"):
        read_plane(str(files["cube.fits"]), "fits_image", 0)
    with pytest.raises(InputError, match=r"shape \(2, 2, 2, 2\)"):
        read_plane(str(files["bad4d.npy"]), "npy", None)
    with pytest.raises(InputError, match="text.fits"):
        read_plane(str(files["text.fits"]), "fits_image", 0)


# --------------------------------------------------------------------------- tables


def test_parquet_list_column(files):
    path = str(files["list.parquet"])
    info = scan_table(path, "parquet", None)
    assert (info.n_rows, info.flux_array_column, info.flux_columns) == (10, "flux", None)
    assert info.n_flux == N_FLUX
    assert info.carried == pa.schema(
        [
            ("id", pa.int64()),
            ("ra", pa.float64()),
            ("dec", pa.float64()),
            ("z", pa.float64()),
            ("name", pa.string()),
            ("flag", pa.bool_()),
        ]
    )
    flux, carried = read_spectra(path, "parquet", None, 2, 7, info)
    assert flux.shape == (5, N_FLUX) and flux.dtype == np.float32
    np.testing.assert_array_equal(flux[0], spectra(10)[2])
    assert np.isnan(flux[1]).all() and np.isnan(flux[2]).all()  # missing row, short row
    assert np.isfinite(flux[[0, 3, 4]]).all()
    assert carried.schema == info.carried
    assert carried.column("id").to_pylist() == [2, 3, 4, 5, 6]
    assert carried.column("name").to_pylist()[0] == "obj2"


def test_parquet_flux_columns_read_only_needed_row_groups(files, monkeypatch):
    path = str(files["cols.parquet"])
    info = scan_table(path, "parquet", None)
    assert info.flux_columns == tuple(f"flux_{j}" for j in range(N_FLUX))
    assert info.carried.names == ["id"]
    groups: list[list[int]] = []
    real = pq.ParquetFile.iter_batches

    def spy(self, *args, **kwargs):
        groups.append(list(kwargs["row_groups"]))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    big = spectra(1000, seed=3)
    for start, stop, first_group in [(450, 470, 4), (195, 205, 1), (990, 1000, 9)]:
        flux, carried = read_spectra(path, "parquet", None, start, stop, info)
        assert groups[-1][0] == first_group  # groups before the range are never read
        np.testing.assert_array_equal(flux, big[start:stop])
        assert carried.column("id").to_pylist() == list(range(start, stop))
    groups.clear()
    chunks = [read_spectra(path, "parquet", None, a, a + 64, info)[0] for a in range(0, 960, 64)]
    assert len(groups) == 1  # a sequential scan continues one stream, no re-decoding
    np.testing.assert_array_equal(np.concatenate(chunks), big[:960])


def test_parquet_reads_stay_bounded_for_one_huge_row_group(tmp_path: Path):
    n = 50_000
    flux = np.random.default_rng(5).random((n, 100), dtype=np.float32)
    arr = pa.FixedSizeListArray.from_arrays(pa.array(flux.ravel()), 100)
    pq.write_table(pa.table({"flux": arr}), tmp_path / "one_group.parquet", row_group_size=n)
    path = str(tmp_path / "one_group.parquet")
    # Arrow's peak allocation is per process, so measure it in a fresh one.
    code = f"""
import pyarrow as pa
from astrocat.sources.readers import scan_table, read_spectra
info = scan_table({path!r}, "parquet", None)
flux, _ = read_spectra({path!r}, "parquet", None, 40_000, 40_010, info)
print(pa.default_memory_pool().max_memory(), float(flux[3, 7]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    peak, value = out.stdout.split()
    assert float(value) == pytest.approx(float(flux[40_003, 7]))
    assert int(peak) < 10_000_000  # the file holds 20 MB of flux; reading it all peaks ~90 MB


def test_csv_bad_rows_do_not_spoil_the_chunk(files):
    path = str(files["spec.csv"])
    info = scan_table(path, "csv", None)
    assert info.n_rows == 8 and info.n_flux == 5
    assert info.carried == pa.schema(
        [("id", pa.int64()), ("name", pa.string()), ("z", pa.float64())]
    )
    flux, carried = read_spectra(path, "csv", None, 0, 8, info)
    bad = [2, 5, 6]  # missing value, too few values, text
    assert np.isnan(flux[bad]).all()
    good = [i for i in range(8) if i not in bad]
    np.testing.assert_allclose(flux[good], [[i + j / 10 for j in range(5)] for i in good])
    assert carried.column("id").to_pylist() == [0, 1, 2, 3, 4, None, 6, 7]
    assert carried.column("z").to_pylist()[2] == pytest.approx(0.2)
    flux, carried = read_spectra(path, "csv", None, 6, 8, info)
    assert np.isnan(flux[0]).all() and np.isfinite(flux[1]).all()
    assert carried.column("name").to_pylist() == ["obj6", "obj7"]
    chunks = [read_spectra(path, "csv", None, a, a + 2, info)[0] for a in range(0, 8, 2)]
    np.testing.assert_array_equal(
        np.concatenate(chunks), read_spectra(path, "csv", None, 0, 8, info)[0]
    )


def test_fits_table(files):
    path = str(files["spec.fits"])
    info = scan_table(path, "fits_table", 1)
    assert (info.n_rows, info.flux_array_column, info.n_flux) == (6, "FLUX", N_FLUX)
    assert info.carried == pa.schema(
        [("objid", pa.int64()), ("z", pa.float64()), ("name", pa.string()), ("good", pa.bool_())]
    )
    flux, carried = read_spectra(path, "fits_table", 1, 1, 4, info)
    np.testing.assert_array_equal(flux, spectra(6)[1:4])
    assert carried.to_pydict()["objid"] == [1001, 1002, 1003]
    assert carried.to_pydict()["name"] == ["g1", "g2", "g3"]
    assert carried.to_pydict()["good"] == [False, True, False]


def test_ecsv(files):
    path = str(files["spec.ecsv"])
    info = scan_table(path, "ecsv", None)
    assert (info.n_rows, info.n_flux, info.carried.names) == (3, N_FLUX, ["id", "z", "name"])
    flux, carried = read_spectra(path, "ecsv", None, 0, 3, info)
    np.testing.assert_allclose(flux, spectra(3), rtol=1e-6)
    assert carried.column("z").to_pylist() == [0.1, None, 0.3]


def test_npy_spectra(files):
    info = scan_table(str(files["spectra.npy"]), "npy", None)
    assert (info.n_rows, info.n_flux, len(info.carried)) == (5, N_FLUX, 0)
    flux, carried = read_spectra(str(files["spectra.npy"]), "npy", None, 1, 3, info)
    np.testing.assert_array_equal(flux, spectra(5)[1:3])
    assert carried.num_rows == 2  # no columns, but the row count still lines up
    info = scan_table(str(files["spec1d.npy"]), "npy", None)
    flux, _ = read_spectra(str(files["spec1d.npy"]), "npy", None, 0, 1, info)
    np.testing.assert_array_equal(flux[0], spectra(1)[0])


def test_table_read_errors_name_the_file(files, tmp_path: Path):
    with pytest.raises(InputError) as err:
        scan_table(str(files["noflux.parquet"]), "parquet", None)
    assert "noflux.parquet" in str(err.value) and "no flux columns" in str(err.value)
    info = scan_table(str(files["list.parquet"]), "parquet", None)
    with pytest.raises(InputError, match="file changed since"):
        read_spectra(str(files["list.parquet"]), "parquet", None, 5, 20, info)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(files["list.parquet"].read_bytes()[:300])
    with pytest.raises(InputError, match="broken.parquet: could not be read"):
        read_spectra(str(broken), "parquet", None, 0, 2, info)


def test_describe_reads_fits_headers_not_pixels(files, monkeypatch: pytest.MonkeyPatch):
    def no_pixels(self, *index):
        raise AssertionError("describe read pixel data")

    for cls in (fits.hdu.image._ImageBaseHDU, fits.CompImageHDU, fits.BinTableHDU):
        monkeypatch.setattr(cls, "data", property(no_pixels))
    monkeypatch.setattr(_fits.FastFits, "pixels", no_pixels)  # cfitsio's reads, spied too
    for name in ["wcs.fits", "ext.fits", "img.fits.gz", "img.fits.fz", "spec.fits", "cube.fits"]:
        unit = describe(files[name], files[name].parent)
        assert "describe read pixel data" not in (unit.error or ""), name
    with pytest.raises(InputError, match="describe read pixel data"):  # the spy works
        read_plane(str(files["wcs.fits"]), "fits_image", 0)


def test_wide_csv_header_longer_than_the_sniffed_bytes(tmp_path: Path):
    n = 2000
    flux = spectra(3)[:, :1].repeat(n, axis=1)
    lines = [",".join(["objid", *(f"flux_{j}" for j in range(n))])]
    lines += [",".join([str(i), *(f"{v:.6f}" for v in row)]) for i, row in enumerate(flux)]
    path = tmp_path / "wide.csv"
    path.write_text("\n".join(lines) + "\n")
    assert sniff(path) == "csv"
    unit = describe(path, tmp_path)
    assert (unit.kind, unit.n_items) == (Kind.SPECTRUM, 3)
    info = scan_table(str(path), "csv", None)
    got, carried = read_spectra(str(path), "csv", None, 1, 3, info)
    np.testing.assert_allclose(got, flux[1:3], atol=1e-6)
    assert carried.column("objid").to_pylist() == [1, 2]


def test_gzip_that_is_not_fits(tmp_path: Path):
    (tmp_path / "x.fits.gz").write_bytes(gzip.compress(b"id,flux\n1,2\n"))
    unit = describe(tmp_path / "x.fits.gz", tmp_path)
    assert unit.kind is None and "gzip-compressed data that is not FITS" in unit.error


def test_fixed_size_list_flux_and_excluded_list_entries(tmp_path: Path):
    flux = spectra(4)
    arr = pa.FixedSizeListArray.from_arrays(pa.array(flux.ravel()), N_FLUX)
    table = pa.table({"Spectrum": arr, "id": pa.array([1, 2, 3, 4], pa.uint16())})
    pq.write_table(table, tmp_path / "s.parquet")
    info = scan_table(str(tmp_path / "s.parquet"), "parquet", None)
    assert info.flux_array_column == "Spectrum" and info.n_flux == N_FLUX
    got, carried = read_spectra(str(tmp_path / "s.parquet"), "parquet", None, 0, 4, info)
    np.testing.assert_array_equal(got, flux)
    assert carried.schema == pa.schema([("id", pa.int64())])
    (tmp_path / "l.txt").write_text("s.parquet\nnotes.tmp\n")
    _, paths = resolve_inputs(f"@{tmp_path / 'l.txt'}", exclude=["*.tmp"])
    assert [Path(p).name for p in paths] == ["s.parquet"]


def test_describe_hands_a_jpegs_bytes_to_its_reader_once(tmp_path: Path):
    """A cut-out is opened once: describe reads a small JPEG whole and its reader, next on
    the same thread, decodes those bytes; a later read, or another file's, opens the file."""
    from astrocat.sources.images import read_rgb

    rng = np.random.default_rng(3)
    paths = []
    for name in ("a.jpg", "b.jpg"):
        Image.fromarray(rng.integers(0, 255, (96, 96, 3), np.uint8)).save(tmp_path / name)
        paths.append(tmp_path / name)
    want = read_rgb(str(paths[0]), 32, 0.8)
    unit = describe(paths[0], tmp_path)
    assert unit.kind == Kind.RGB_IMAGE
    moved = tmp_path / "moved.jpg"
    paths[0].rename(moved)  # the reader can only have the bytes describe read
    np.testing.assert_array_equal(read_rgb(unit.path, 32, 0.8), want)
    with pytest.raises(InputError):  # handed over once: now the file is looked for
        read_rgb(unit.path, 32, 0.8)
    moved.rename(paths[0])
    describe(paths[1], tmp_path)  # b's bytes are kept, not a's
    paths[0].unlink()
    with pytest.raises(InputError):
        read_rgb(str(paths[0]), 32, 0.8)
