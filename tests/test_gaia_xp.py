"""Issue 32: real Gaia DR3 XP files (GaiaXPy's BSD-licensed test files, tests/data/gaia_xp)
through ``astrocat infer``, the spectral axis of the redshift card, and resampling that
agrees with specutils."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import astropy.units as u
import numpy as np
import pyarrow.parquet as pq
from click.testing import CliRunner

from astrocat.cli import main
from astrocat.kernels import spectral
from astrocat.models.zoo import resolve

DATA = Path(__file__).parent / "data" / "gaia_xp"
SAMPLED = sorted((DATA / "xp_sampled").iterdir())
CONTINUOUS = sorted((DATA / "xp_continuous").iterdir())
CALIBRATED = [DATA / "output_solution" / f"calibrator.{e}" for e in ("csv", "ecsv", "fits",
                                                                      "xml")]
ARCHIVE = SAMPLED + CONTINUOUS  # the eight files as the archive delivers them


def _infer(files: list[Path], tmp_path: Path, *extra: str):
    src = tmp_path / "in"
    src.mkdir(exist_ok=True)
    for f in files:
        shutil.copy(f, src / f.name)
    out = tmp_path / "cat.parquet"
    r = CliRunner().invoke(main, ["infer", "--input", str(src), "--out", str(out), *extra])
    table = pq.read_table(out).to_pylist() if out.exists() else []
    return r.exit_code, r.output, table


def test_every_real_gaia_file_gives_one_ok_row_per_source(tmp_path):
    files = ARCHIVE + CALIBRATED + [DATA / "output_solution" / "calibrator_sampling.csv"]
    code, said, rows = _infer(files, tmp_path)
    assert code == 0, said
    assert "warning" not in said.lower()
    assert "astrocat store" not in said and "astrocat catalog" not in said
    by_file: dict[str, list[dict]] = {}
    for r in rows:
        by_file.setdefault(r["source"], []).append(r)
    assert set(by_file) == {f.name for f in ARCHIVE + CALIBRATED}  # the sampling: no row
    for name, got in by_file.items():
        assert len(got) == 2, name
        for r in got:
            assert r["status"] == "ok" and r["model"] == "redshift-cnn1d", (name, r["error"])
            assert np.isfinite(r["z_pred"]) and np.isfinite(r["ood_distance"]), name
    sampled = {(r["source"], r["object_id"]): r["z_pred"] for r in rows}
    # the same source in every format gives the same redshift
    for group in (SAMPLED, CONTINUOUS + CALIBRATED):
        ids = {r["object_id"] for r in rows if r["source"] == group[0].name}
        for oid in ids:
            z = [sampled[(f.name, oid)] for f in group]
            assert max(z) - min(z) <= 1e-5, (oid, z)
    # XP_SAMPLED's source "6" is XP_CONTINUOUS's 5853498713190525696 (the same spectrum,
    # its ID replaced in GaiaXPy's internal test release): the two paths agree
    assert abs(sampled[(SAMPLED[0].name, "6")]
               - sampled[(CONTINUOUS[0].name, "5853498713190525696")]) <= 1e-5
    ra = [r["ra"] for r in rows if r["source"] == SAMPLED[0].name]
    assert all(np.isfinite(ra))  # XP_SAMPLED carries ra/dec


def test_internally_calibrated_spectra_are_refused_with_the_reason(tmp_path):
    files = [DATA / "output_solution" / "converter.csv",
             DATA / "output_solution" / "converter_sampling.csv",
             DATA / "converter_solution" / "SampledMeanSpectrum.csv"]
    code, said, rows = _infer(files, tmp_path)
    assert code == 1
    assert len(rows) == 8 and all(r["status"] == "error" for r in rows)
    assert all("internally calibrated" in r["error"] and "calibrate" in r["error"]
               for r in rows)


def test_xp_continuous_without_gaiaxpy_names_the_extra(tmp_path, monkeypatch):
    from astrocat.sources import spectra_products

    spectra_products._load.cache_clear()
    monkeypatch.setitem(sys.modules, "gaiaxpy", None)  # as if not installed
    code, said, rows = _infer([CONTINUOUS[0]], tmp_path)
    spectra_products._load.cache_clear()
    assert code == 1
    assert rows and all("astrocat[gaia]" in r["error"] for r in rows)


def test_the_bundled_card_states_the_simulators_axis():
    from astrocat.simulate.spectra import wavelengths

    axis = resolve("redshift-cnn1d").input.spectral_axis
    assert axis is not None and axis.unit == "nm" and axis.medium == "vacuum"
    assert np.array_equal(np.asarray(axis.wavelength), wavelengths())
    assert u.Unit(axis.flux_unit) == u.W / u.m**2 / u.nm


def test_resampling_agrees_with_specutils_on_the_real_spectra():
    from specutils import Spectrum
    from specutils.manipulation import FluxConservingResampler

    from astrocat.sources import gaia_xp

    got = gaia_xp.load(str(SAMPLED[0]), "sampled")
    model = resolve("redshift-cnn1d").input.spectral_axis
    ours = spectral.resampler(got.axis, model).apply(got.flux)
    dst = np.asarray(model.wavelength)
    bp = slice(0, int(np.argmax(np.diff(dst) < 0)) + 1)  # the axis's two segments
    rp = slice(bp.stop, len(dst))
    for k in range(len(got.flux)):
        sp = Spectrum(flux=got.flux[k].astype(np.float64) * u.Unit(got.axis.flux_unit),
                      spectral_axis=np.asarray(got.axis.wavelength) * u.nm)
        for seg in (bp, rp):
            ref = FluxConservingResampler()(sp, dst[seg] * u.nm).flux.value
            rel = np.abs(ours[k, seg] - ref) / np.abs(ref).max()
            assert np.nanmax(rel) <= 1e-5


def test_flux_units_convert_through_spectral_density():
    lam = np.linspace(400.0, 900.0, 50)
    f_nu = np.linspace(1.0, 2.0, 50)[None, :]  # Jy
    src = spectral.SpectralAxis(tuple(lam), "nm", "vacuum", "Jy", "absolute")
    dst = spectral.SpectralAxis(tuple(lam), "nm", "vacuum", "W / (m2 nm)", "absolute")
    got = spectral.resampler(src, dst).apply(f_nu)[0]
    want = (f_nu[0] * u.Jy).to_value(u.W / u.m**2 / u.nm,
                                      equivalencies=u.spectral_density(lam * u.nm))
    assert np.allclose(got, want, rtol=1e-5)


def test_air_wavelengths_match_specutils():
    from specutils.utils.wcs_utils import air_to_vac

    air = np.array([400.0, 656.28, 900.0])
    ours = spectral.air_to_vacuum_nm(air)
    ref = air_to_vac(air * u.nm, method="Morton2000", scheme="inversion").to_value(u.nm)
    assert np.allclose(ours, ref, rtol=1e-7)


def test_a_spectrum_that_does_not_cover_the_model_says_both_ranges(tmp_path):
    """GaiaXPy output on a narrower sampling (its CSV beside ``_sampling.csv``)."""
    src = tmp_path / "narrow"
    src.mkdir()
    lam = np.arange(400.0, 902.0, 2.0)
    flux = 1e-16 * (1 + 0.3 * np.sin(lam / 40.0))
    (src / "narrow_sampling.csv").write_text(
        'pos\n"(' + ", ".join(f"{x:.1f}" for x in lam) + ')"\n')
    (src / "narrow.csv").write_text(
        'source_id,flux,flux_error\n42,"(' + ", ".join(f"{x:.6e}" for x in flux) + ')","('
        + ", ".join("1e-18" for _ in lam) + ')"\n')
    out = tmp_path / "n.parquet"
    r = CliRunner().invoke(main, ["infer", "-q", "--input", str(src), "--out", str(out)])
    assert r.exit_code == 1, r.output
    (row,) = pq.read_table(out).to_pylist()
    assert row["object_id"] == "42" and row["status"] == "error"
    assert "400.0-900.0 nm" in row["error"] and "366.0-996.0 nm" in row["error"]


def test_a_card_without_an_axis_keeps_the_length_rule_and_says_so(tmp_path):
    card_dir = tmp_path / "noaxis"
    shutil.copytree(resolve("redshift-cnn1d").directory, card_dir)
    card = card_dir / "card.toml"
    text = card.read_text()
    start = text.index("[input.spectral_axis]")
    end = text.index("[files]")
    card.write_text(text[:start] + text[end:])
    code, said, rows = _infer([SAMPLED[0]], tmp_path, "--model", str(card_dir))
    assert code == 1
    assert all("343 flux samples" in r["error"] and "states no spectral axis" in r["error"]
               for r in rows)


def test_votable_spectra_tables_give_the_parquet_tables_numbers(sample_dir, tmp_path):
    """The sample's spectra table as VOTables (a flux array column; flux_0 ... flux_N),
    and a positions table as a VOTable: the same rows, the same redshifts."""
    from astropy.table import Table

    parquet = sample_dir / "spectra" / "spectra.parquet"
    t = pq.read_table(parquet).to_pandas()[:40]
    src = tmp_path / "vot"
    src.mkdir()
    flux = np.stack(t["flux"].to_numpy()).astype(np.float32)
    Table({"source_id": t["source_id"].to_numpy(), "ra": t["ra"].to_numpy(),
           "dec": t["dec"].to_numpy(), "flux": flux}).write(src / "array.xml",
                                                             format="votable")
    cols = {"source_id": t["source_id"].to_numpy()}
    cols.update({f"flux_{i}": flux[:, i] for i in range(flux.shape[1])})
    Table(cols).write(src / "columns.vot", format="votable")
    pq.write_table(pq.read_table(parquet).slice(0, 40), src / "same.parquet")
    out = tmp_path / "v.parquet"
    r = CliRunner().invoke(main, ["infer", "-q", "--input", str(src), "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = pq.read_table(out, columns=["source", "object_id", "z_pred"]).to_pylist()
    z = {(r["source"], r["object_id"]): r["z_pred"] for r in rows}
    for oid in map(str, t["source_id"]):
        ref = z[("same.parquet", oid)]
        assert abs(z[("array.xml", oid)] - ref) < 1e-6
        assert abs(z[("columns.vot", oid)] - ref) < 1e-6

    positions = tmp_path / "positions.xml"
    Table({"object_id": [str(i) for i in t["source_id"]], "ra": np.full(40, 10.0),
           "dec": np.full(40, -5.0)}).write(positions, format="votable")
    from astrocat.sources.positions import _read

    assert _read(positions).num_rows == 40


def test_image_cut_outs_are_never_opened_by_the_spectral_readers(tmp_path, monkeypatch):
    """The spectral products are told from images by the first bytes alone: a survey of
    2-D cut-outs (plain, tile-compressed, in an extension) pays no extra FITS open."""
    from astropy.io import fits

    from astrocat.sources import spectra_fits, spectra_products
    from astrocat.sources.sniff import sniff_bytes

    img = np.zeros((40, 40), np.float32)
    files = {"plain.fits": fits.HDUList([fits.PrimaryHDU(img)]),
             "ext.fits": fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(img, name="SCI")]),
             "tiles.fits.fz": fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(img)])}
    opened = []
    monkeypatch.setattr(spectra_fits._fits, "open_fits",
                        lambda *a, **k: opened.append(a) or (_ for _ in ()).throw(OSError()))
    for name, hdul in files.items():
        path = tmp_path / name
        hdul.writeto(path)
        head = path.read_bytes()[:4096]
        assert not spectra_products.fits_may_hold_spectra(head, path=path)
        assert spectra_products.recognise(path, sniff_bytes(head), head) is None
    assert opened == []
    table = DATA / "xp_sampled" / "XP_SAMPLED_RAW_dr3int6.fits"
    assert spectra_products.fits_may_hold_spectra(table.read_bytes()[:4096])


def test_gaiaxpy_leaves_matplotlib_as_it_was(tmp_path):
    """GaiaXPy's plotter turns on LaTeX text when imported: astrocat's figures (and a
    notebook's) must not inherit it."""
    import matplotlib

    before = matplotlib.rcParams["text.usetex"]
    _infer([CONTINUOUS[0]], tmp_path)
    assert matplotlib.rcParams["text.usetex"] == before


def test_the_leading_cards_tell_an_image_only_in_the_standard_order(tmp_path):
    """``fits_may_hold_spectra`` reads a 2-D primary image from its five leading cards
    (SIMPLE, BITPIX, NAXIS, NAXIS1, NAXIS2); a 1-D spectrum, a single-row image, or
    leading cards out of the standard's order go to the whole header, which decides."""
    from astropy.io import fits

    from astrocat.sources import spectra_products

    def head(hdu) -> bytes:
        path = tmp_path / "f.fits"
        hdu.writeto(path, overwrite=True)
        return path.read_bytes()[:4096]

    image = head(fits.PrimaryHDU(np.zeros((40, 30), np.float32)))
    assert spectra_products._leading_image(image)  # noqa: SLF001
    assert not spectra_products.fits_may_hold_spectra(image)
    spectrum = head(fits.PrimaryHDU(np.zeros(500, np.float32)))
    assert not spectra_products._leading_image(spectrum)  # noqa: SLF001
    assert spectra_products.fits_may_hold_spectra(spectrum)
    row = head(fits.PrimaryHDU(np.zeros((1, 500), np.float32)))
    assert not spectra_products._leading_image(row)  # noqa: SLF001
    assert spectra_products.fits_may_hold_spectra(row)  # one row: a spectrum, perhaps
    swapped = image[:160] + image[240:320] + image[160:240] + image[320:]  # NAXIS after
    assert not spectra_products._leading_image(swapped)  # noqa: SLF001
    assert not spectra_products.fits_may_hold_spectra(swapped)  # the whole header says
