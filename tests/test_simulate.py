"""The simulated surveys: real published file formats, truths that obey their rules."""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.visualization import make_lupton_rgb
from astropy.wcs import WCS
from PIL import Image

from astrocat.kernels.gz_tree import galaxy_zoo2
from astrocat.simulate import KINDS, simulate
from astrocat.simulate import fields as fields_mod
from astrocat.simulate import galaxies as galaxies_mod
from astrocat.simulate import lenses as lenses_mod
from astrocat.simulate import spectra as spectra_mod
from astrocat.simulate._render import lupton_rgb


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


# ----------------------------------------------------------------- galaxies


@pytest.fixture(scope="module")
def galaxy_survey(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gal")
    return simulate("galaxies", 40, out, seed=3, progress=False, workers=1, merger_fraction=0.1)


def test_galaxy_jpegs_are_kaggle_like(galaxy_survey: Path) -> None:
    header, rows = _read_csv(galaxy_survey)
    ids = [int(r[0]) for r in rows]
    assert ids == list(range(100000, 100040))
    for gid in ids[:10]:
        path = galaxy_survey.parent / f"{gid}.jpg"
        with Image.open(path) as im:
            assert im.format == "JPEG"
            assert im.size == (424, 424)
            assert im.mode == "RGB"
            im.load()
    assert len(list(galaxy_survey.parent.glob("*.jpg"))) == 40


def test_galaxy_labels_follow_the_decision_tree(galaxy_survey: Path) -> None:
    tree = galaxy_zoo2()
    header, rows = _read_csv(galaxy_survey)
    assert header == ["GalaxyID", *tree.kaggle_columns]
    values = np.array([[float(x) for x in r[1:]] for r in rows])
    assert values.shape == (40, 37)
    assert (values >= 0).all() and (values <= 1).all()
    assert tree.violations(values).max() < 1e-6
    assert all(len(x.split(".")[1]) == 6 for x in rows[0][1:])


def test_merger_count_is_exact_and_threshold_recovers_it(galaxy_survey: Path) -> None:
    tree = galaxy_zoo2()
    _, rows = _read_csv(galaxy_survey)
    merger = np.array([float(r[1 + tree.index("Class8.6")]) for r in rows])
    assert (merger >= 0.3).sum() == round(0.1 * 40)
    assert merger[merger >= 0.3].min() >= 0.45
    assert merger[merger < 0.3].max() < 0.15


def test_merger_count_rounds(tmp_path: Path) -> None:
    path = simulate("galaxies", 30, tmp_path, seed=1, progress=False, workers=1)  # 3 %
    tree = galaxy_zoo2()
    _, rows = _read_csv(path)
    merger = np.array([float(r[1 + tree.index("Class8.6")]) for r in rows])
    assert (merger >= 0.3).sum() == round(0.03 * 30) == 1


def test_galaxies_deterministic_across_worker_counts(tmp_path: Path) -> None:
    a = simulate("galaxies", 10, tmp_path / "a", seed=7, progress=True, workers=1)
    b = simulate("galaxies", 10, tmp_path / "b", seed=7, progress=False, workers=2)
    assert a.read_bytes() == b.read_bytes()
    assert (a.parent / "100004.jpg").read_bytes() == (b.parent / "100004.jpg").read_bytes()
    c = simulate("galaxies", 10, tmp_path / "c", seed=8, progress=False, workers=1)
    assert a.read_bytes() != c.read_bytes()


# The default survey's bytes before the camera existed (astrocat 0.3.0 at commit 6c54e0e,
# Pillow 13's bundled libjpeg-turbo, quality 90): the default camera must not move them.
BEFORE_CAMERA = {
    "100000.jpg": "c72a12d3f5c691c4", "100001.jpg": "f632fb01845c3185",
    "100002.jpg": "1b6743095e825df3", "100003.jpg": "3ecd479dd989beb5",
    "100004.jpg": "56b9448a77d7240f", "100005.jpg": "d80d866bbae0e0d8",
    "training_solutions_rev1.csv": "ef73cf1862f6a582",
}
#: A star, a dusty edge-on disk, an artifact and a barred, ringed disk (seed 3, by index).
BEFORE_CAMERA_RENDERS = {26: "f16198dc0bbecf06", 29: "b01aadd0aa0c7d80",
                         50: "9c5a72979878251c", 296: "b96a830602de4314"}
SHIFT = galaxies_mod.Camera(psf=1.6, noise=2.5, pixel_scale=1.4, colour=(1.25, 1.0, 0.8))


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16]
            for p in sorted(folder.iterdir())}


def _render(index: int, camera=galaxies_mod.DEFAULT_CAMERA, seed: int = 3) -> np.ndarray:
    from astrocat.simulate._common import object_rng

    rng = object_rng(seed, "galaxies", index)
    truth = galaxies_mod._draw_truth(rng, False)
    galaxies_mod._raw_votes(truth, rng, galaxy_zoo2())
    return galaxies_mod.render(truth, rng, camera)


def test_the_default_camera_writes_the_same_bytes_as_before(tmp_path: Path) -> None:
    galaxies_mod.simulate(6, tmp_path / "a", seed=3, progress=False, workers=1,
                          merger_fraction=0.34)
    assert _digests(tmp_path / "a") == BEFORE_CAMERA
    galaxies_mod.simulate(6, tmp_path / "b", seed=3, progress=False, workers=1,
                          merger_fraction=0.34, camera=galaxies_mod.Camera())
    assert _digests(tmp_path / "b") == BEFORE_CAMERA
    for index, digest in BEFORE_CAMERA_RENDERS.items():
        jpeg = galaxies_mod._encode_jpeg(_render(index))
        assert hashlib.sha256(jpeg).hexdigest()[:16] == digest, index


def test_a_shifted_camera_draws_the_same_objects_and_labels(tmp_path: Path) -> None:
    a = galaxies_mod.simulate(6, tmp_path / "a", seed=3, progress=False, workers=1,
                              merger_fraction=0.34)
    b = galaxies_mod.simulate(6, tmp_path / "b", seed=3, progress=False, workers=2,
                              merger_fraction=0.34, camera=SHIFT)
    assert a.read_bytes() == b.read_bytes()  # the labels come from the truth
    for gid in range(100000, 100006):
        pa, pb = (np.asarray(Image.open(p.parent / f"{gid}.jpg"), np.float32) for p in (a, b))
        assert pa.shape == pb.shape == (424, 424, 3)
        assert np.abs(pa - pb).mean() > 1.0, gid


def _second_moment(img: np.ndarray) -> tuple[float, float, float]:
    """Centroid (x, y) and flux-weighted mean squared radius about it."""
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    w = img / img.sum()
    x, y = (w * xx).sum(), (w * yy).sum()
    return float(x), float(y), float((w * ((xx - x) ** 2 + (yy - y) ** 2)).sum())


def test_pixel_scale_shrinks_objects_and_offsets_and_keeps_surface_brightness() -> None:
    c = galaxies_mod.SIZE / 2 - 0.5
    truth = galaxies_mod.Truth(kind="disk", q=0.7, re=12.0)  # exponential: inside the frame
    got = {}
    for scale in (1.0, 1.5):
        cv = galaxies_mod._Canvas(np.random.default_rng(0),
                                  galaxies_mod.Camera(pixel_scale=scale))
        galaxies_mod._draw_galaxy(cv, truth, c + 45, c - 30, cv.surface(1e5), 0.3)
        r = cv.bands[1]
        got[scale] = (*_second_moment(r), float(r.max()))
    (x1, y1, m1, peak1), (x2, y2, m2, peak2) = got[1.0], got[1.5]
    assert (x1 - c, y1 - c) == pytest.approx((45, -30), abs=0.3)
    assert (x2 - c, y2 - c) == pytest.approx((30, -20), abs=0.3)  # offsets / 1.5
    assert np.sqrt(m2 / m1) == pytest.approx(1 / 1.5, rel=0.02)  # 1.5x smaller
    assert peak2 == pytest.approx(peak1, rel=0.1)  # the same surface brightness


def test_psf_noise_and_colour_change_what_they_say() -> None:
    quiet = galaxies_mod.Camera(noise=0.0)

    def sharpness(img: np.ndarray) -> float:
        g = img[..., 1].astype(np.float64)
        return float((np.diff(g, axis=0) ** 2).sum() + (np.diff(g, axis=1) ** 2).sum())

    spiral = [sharpness(_render(1, galaxies_mod.Camera(noise=0.0, psf=f))) for f in (1, 2)]
    assert spiral[1] < 0.6 * spiral[0]  # a wider PSF blurs the arms
    clean = _render(0, quiet)
    corner = [(_render(0, galaxies_mod.Camera(noise=f))[:100, :100] > 0).mean()
              for f in (1.0, 2.5)]
    assert (clean[:100, :100] > 0).mean() < 0.01 < corner[0] < corner[1]
    blue = _render(0, galaxies_mod.Camera(noise=0.0, colour=(2.0, 1.0, 1.0)))
    body = clean[..., 1] > 40  # the galaxy: g -> blue, i -> red
    ratio = [img[..., 2][body].mean() / img[..., 0][body].mean() for img in (clean, blue)]
    assert ratio[1] > 1.3 * ratio[0]


def test_camera_parse_and_its_mistakes() -> None:
    Camera = galaxies_mod.Camera
    assert Camera.parse("psf=1.6,noise=2,pixel_scale=1.3,colour=1.2/1/0.85") == Camera(
        psf=1.6, noise=2.0, pixel_scale=1.3, colour=(1.2, 1.0, 0.85))
    assert Camera.parse("") == Camera() and Camera.parse("noise=2") == Camera(noise=2)
    assert Camera.parse("color=1/1/1") == Camera()
    for text, says in (("psf", "key=value"), ("fwhm=2", "key one of psf, noise"),
                       ("psf=big", "expected a number"), ("colour=1/2", "three gains"),
                       ("psf=0", "factors in (0, 10]"), ("noise=-1", "noise in [0, 100]"),
                       ("psf=1,psf=2", "given twice")):
        with pytest.raises(ValueError, match=re.escape(says)):
            Camera.parse(text)


def test_simulate_galaxies_camera_on_the_command_line(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from astrocat.cli import main

    out = tmp_path / "shifted"
    r = CliRunner().invoke(main, ["simulate", "galaxies", "--n", "2", "--seed", "3", "--out",
                                  str(out), "-q", "--camera",
                                  "psf=1.6,noise=2.5,pixel_scale=1.4,colour=1.25/1/0.8"])
    assert r.exit_code == 0, r.output
    record = json.loads((out / "simulation.json").read_text())
    assert record["camera"] == {"psf": 1.6, "noise": 2.5, "pixel_scale": 1.4,
                                "colour": [1.25, 1.0, 0.8]}
    for args, says in ((["galaxies", "--camera", "fwhm=2"], "Invalid value for '--camera'"),
                       (["lenses", "--camera", "psf=2"], "--camera is for galaxies only")):
        r = CliRunner().invoke(main, ["simulate", *args, "--n", "2", "--out",
                                      str(tmp_path / "x")])
        assert r.exit_code == 2 and says in r.output, r.output
    assert not (tmp_path / "x").exists()


def test_round_to_tree_keeps_sums_exact() -> None:
    tree = galaxy_zoo2()
    raw = np.random.default_rng(0).random((200, 37)) ** 3
    values = galaxies_mod.round_to_tree(tree.normalise(raw), tree)
    assert tree.violations(values).max() < 1e-9
    assert np.allclose(values * 1e6, np.round(values * 1e6))


def test_fast_lupton_matches_astropy() -> None:
    rng = np.random.default_rng(1)
    bands = rng.normal(0, 1, (3, 64, 64)) + np.exp(rng.uniform(-2, 6, (64, 64)))
    bands = bands.astype(np.float32)
    ref = make_lupton_rgb(bands[0], bands[1], bands[2], stretch=14.0, Q=10, minimum=1.0)
    ours = lupton_rgb(bands[0], bands[1], bands[2], stretch=14.0, q=10, minimum=1.0)
    assert ours.shape == ref.shape and ours.dtype == np.uint8
    assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1


# ------------------------------------------------------------------- lenses


def test_lens_cutouts_and_labels(tmp_path: Path) -> None:
    labels = simulate("lenses", 10, tmp_path, seed=2, progress=False, workers=1)
    header, rows = _read_csv(labels)
    assert header == [
        "ID",
        "is_lens",
        "Einstein_area",
        "numb_pix_lensed_image",
        "flux_lensed_image_in_sigma",
    ]
    assert sum(int(r[1]) for r in rows) == 5
    for r in rows:
        path = tmp_path / f"imageEUC_VIS-{r[0]}.fits"
        with fits.open(path) as hdul:
            data, hdr = hdul[0].data, hdul[0].header
            assert data.shape == (101, 101) and data.dtype.kind == "f" and data.itemsize == 4
            wcs = WCS(hdr)
            assert wcs.has_celestial
            assert list(wcs.wcs.ctype) == ["RA---TAN", "DEC--TAN"]
            scale = np.abs(wcs.proj_plane_pixel_scales()[0].to_value("arcsec"))
            assert scale == pytest.approx(0.1)
            assert list(wcs.wcs.crpix) == [51.0, 51.0]
            sky = wcs.pixel_to_world(50, 50)
            assert sky.ra.deg == pytest.approx(hdr["RA"]) and sky.dec.deg == pytest.approx(
                hdr["DEC"]
            )
        area, npix, flux = float(r[2]), int(r[3]), float(r[4])
        if r[1] == "1":
            assert area > 0 and npix >= lenses_mod.MIN_LENSED_PIXELS and flux > npix
        else:
            assert area == 0 and npix == 0 and flux == 0
    again = simulate("lenses", 10, tmp_path / "again", seed=2, progress=False, workers=1)
    assert labels.read_bytes() == again.read_bytes()


def test_lens_gzip_option(tmp_path: Path) -> None:
    simulate("lenses", 2, tmp_path, seed=0, progress=False, workers=1, compress="gzip")
    files = sorted(tmp_path.glob("imageEUC_VIS-*.fits.gz"))
    assert len(files) == 2
    with fits.open(files[0]) as hdul:
        assert hdul[0].data.shape == (101, 101)


def test_sie_einstein_area_is_pi_theta_e_squared() -> None:
    lens = {"theta_e": 12.0, "q": 0.6, "pa": 0.4, "g1": 0.0, "g2": 0.0}
    expected = np.pi * (12.0 * lenses_mod.PIXEL_ARCSEC) ** 2
    assert lenses_mod.einstein_area(lens) == pytest.approx(expected, rel=0.02)


# ------------------------------------------------------------------ spectra


def test_spectra_parquet(tmp_path: Path) -> None:
    path = simulate("spectra", 4000, tmp_path, seed=0, progress=False)
    assert path.name == "spectra.parquet"
    table = pq.read_table(path)
    assert table.column_names == ["source_id", "ra", "dec", "z", "flux"]
    assert str(table.schema.field("source_id").type) == "int64"
    assert str(table.schema.field("ra").type) == "double"
    flux = np.stack(table.column("flux").to_numpy(zero_copy_only=False))
    assert flux.shape == (4000, 186) and flux.dtype == np.float32
    assert np.isfinite(flux).all()
    assert len(set(table.column("source_id").to_pylist())) == 4000
    z = table.column("z").to_numpy()
    assert z.min() >= 0 and z.max() <= 0.6
    assert z.mean() == pytest.approx(0.142, abs=0.006)
    assert np.median(z) == pytest.approx(0.126, abs=0.008)
    assert z.std() == pytest.approx(0.079, abs=0.006)
    again = pq.read_table(simulate("spectra", 4000, tmp_path / "b", seed=0, progress=False))
    assert again.equals(table)


def test_spectra_wavelength_grid() -> None:
    lam = spectra_mod.wavelengths()
    assert lam.shape == (186,)
    assert lam[0] == pytest.approx(366.0) and lam[-1] == pytest.approx(996.0)
    assert np.all(np.diff(lam[:80]) > 0) and np.all(np.diff(lam[80:]) > 0)
    r = spectra_mod.resolving_power()
    assert r.min() >= 30 and r.max() <= 100


def test_spectra_redshift_moves_features() -> None:
    """The 4000 A break must walk across BP as z grows (else z is not learnable)."""
    table, zs = spectra_mod._tables()
    early = table[0]
    lam = spectra_mod.wavelengths()[:80]
    for z in (0.05, 0.3):
        row = early[int(round(z / spectra_mod.DZ)), :80]
        step = np.argmax(np.diff(row) / row[:-1])
        assert lam[step] == pytest.approx(400 * (1 + z), abs=15)


def test_spectra_csv_and_fits(tmp_path: Path) -> None:
    csv_path = simulate("spectra", 5, tmp_path, progress=False, fmt="csv")
    header, rows = _read_csv(csv_path)
    assert header == ["source_id", "ra", "dec", "z"] + [f"flux_{i}" for i in range(186)]
    assert len(rows) == 5 and all(len(r) == 190 for r in rows)
    fits_path = simulate("spectra", 5, tmp_path, progress=False, fmt="fits")
    with fits.open(fits_path) as hdul:
        assert hdul[1].data["flux"].shape == (5, 186)
        assert len(hdul["WAVELEN"].data) == 186
    with pytest.raises(ValueError):
        simulate("spectra", 5, tmp_path, progress=False, fmt="xlsx")


# ------------------------------------------------------------------- fields


def test_fields_maps_and_truth(tmp_path: Path) -> None:
    truth = simulate("fields", 20, tmp_path, seed=4, progress=False)
    header, rows = _read_csv(truth)
    assert header == ["ID", "omega_m", "sigma_8"]
    params = np.array([[float(r[1]), float(r[2])] for r in rows])
    assert (params[:, 0] >= 0.1).all() and (params[:, 0] <= 0.5).all()
    assert (params[:, 1] >= 0.6).all() and (params[:, 1] <= 1.0).all()
    # Latin hypercube: one draw in each of the n strata of each parameter.
    for j, (lo, hi) in enumerate([(0.1, 0.5), (0.6, 1.0)]):
        strata = np.floor((params[:, j] - lo) / (hi - lo) * 20).astype(int)
        assert sorted(strata) == list(range(20))
    for r in rows[:5]:
        m = np.load(tmp_path / f"field_{r[0]}.npy")
        assert m.shape == (64, 64) and m.dtype == np.float32
        assert (m > 0).all() and m.mean() == pytest.approx(1.0, abs=0.15)
    again = simulate("fields", 20, tmp_path / "b", seed=4, progress=False)
    assert truth.read_bytes() == again.read_bytes()
    assert (tmp_path / "field_3.npy").read_bytes() == (tmp_path / "b" / "field_3.npy").read_bytes()


def test_fields_power_spectrum_recovers_both_parameters() -> None:
    """A quadratic fit on the binned P(k) beats the prior-centre RMSE (0.115) by far."""
    n = 600
    params = fields_mod.latin_hypercube(n, 11)
    k, _ = fields_mod._kgrid()
    bins = np.logspace(np.log10(k[k > 0].min() * 0.99), np.log10(k.max() * 1.01), 13)
    idx = np.digitize(k, bins)
    feats = []
    for i, (om, s8) in enumerate(params):
        m = fields_mod.density_map(om, s8, np.random.default_rng([11, i]))
        pk = np.abs(np.fft.rfft2(m / m.mean() - 1)) ** 2
        feats.append([np.log(pk[idx == b].mean()) for b in range(1, len(bins))])
    x = np.asarray(feats)
    x = np.column_stack([np.ones(n), x, x**2])
    train, test = slice(0, 450), slice(450, n)
    for j in range(2):
        w, *_ = np.linalg.lstsq(x[train], params[train, j], rcond=None)
        rmse = np.sqrt(np.mean((x[test] @ w - params[test, j]) ** 2))
        assert rmse < 0.06, (j, rmse)


# ------------------------------------------------------------------- sample


def test_sample_layout(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    truth = simulate("sample", 12, out, progress=False, workers=1)
    assert truth == tmp_path / "demo_truth"
    assert sorted(p.name for p in truth.iterdir()) == [
        "fields_truth.csv",
        "lens_labels.csv",
        "training_solutions_rev1.csv",
    ]
    # Truth never lands inside out: the only CSV there is the deliberately broken one.
    assert [p.name for p in out.rglob("*.csv")] == ["spectra_missing_flux.csv"]
    assert len(list((out / "galaxies").glob("*.jpg"))) == 12
    lens_files = [p.name for p in (out / "lenses").iterdir()]
    assert any(n.endswith(".fits.gz") for n in lens_files)
    assert any(n.endswith(".fits.fz") for n in lens_files)
    fz = next((out / "lenses").glob("*.fits.fz"))
    with fits.open(fz) as hdul:
        assert hdul[1].data.shape == (101, 101)
        assert WCS(hdul[1].header).has_celestial
    table = pq.read_table(out / "spectra" / "spectra.parquet")
    assert "z" in table.column_names and table.num_rows == 16
    assert len(list((out / "fields").glob("field_*.npy"))) == 2
    broken = out / "broken"
    with pytest.raises(OSError):
        with Image.open(broken / "truncated.jpg") as im:
            im.load()
    assert (broken / "empty.jpg").stat().st_size == 0
    with pytest.raises(OSError):
        fits.open(broken / "not_really.fits")
    with fits.open(broken / "cube.fits") as hdul:
        assert hdul[0].data.ndim == 3
    _, rows = _read_csv(broken / "spectra_missing_flux.csv")
    assert any(cell == "" for row in rows for cell in row)
    # The sample's default seed differs from training's: no shared objects.
    gal = galaxies_mod.simulate(1, tmp_path / "train", 0, progress=False, workers=1)
    assert (
        gal.read_text().splitlines()[1].split(",")[1:]
        != ((truth / "training_solutions_rev1.csv").read_text().splitlines()[1].split(",")[1:])
    )


def test_dispatcher_rejects_unknown_kind(tmp_path: Path) -> None:
    assert KINDS == ("galaxies", "spectra", "lenses", "fields", "sample")
    with pytest.raises(ValueError, match="unknown survey kind"):
        simulate("quasars", 1, tmp_path)
