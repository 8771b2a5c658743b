"""The simulated surveys: real published file formats, truths that obey their rules."""

from __future__ import annotations

import csv
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
