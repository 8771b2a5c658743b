"""Spectral products through ``astrocat infer`` against a plain astropy + specutils loop.

    python -m benchmarks.spectra_products [--sources 4000] [--sdss 400] [--out DIR]

Rows, each timed as whole processes in the same run (ratios, not absolute times, are
what compare across machines):

* Gaia DR3 XP_SAMPLED in the archive's CSV (arrays as text) and VOTable, made of the real
  GaiaXPy test spectra (tests/data/gaia_xp) repeated with noise to ``--sources`` rows;
* XP_CONTINUOUS (CSV) of the real coefficients repeated, through GaiaXPy;
* ``--sdss`` single-spectrum SDSS/BOSS ``spec-`` files written after the data model.

The baseline is what a careful user writes without astrocat: astropy reads each file,
specutils' ``FluxConservingResampler`` puts each spectrum on the model's axis, ONNX
Runtime runs the bundled redshift model over batches of 256 (minmax as its card says).
Results: ``benchmarks/spectra_products.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GAIA = ROOT / "tests" / "data" / "gaia_xp"


def _array_text(values: np.ndarray) -> str:
    return '"(' + ", ".join(f"{v:.7e}" for v in values) + ')"'


def make_xp_sampled(n: int, out: Path, rng: np.random.Generator) -> tuple[Path, Path]:
    """``n`` XP_SAMPLED rows (CSV with array text, and the same as a VOTable)."""
    from astropy.table import Table

    base = Table.read(GAIA / "xp_sampled" / "XP_SAMPLED_RAW_dr3int6.ecsv")
    flux0 = np.array([np.asarray(f, dtype=np.float64) for f in base["flux"]])
    pick = rng.integers(0, len(flux0), n)
    flux = flux0[pick] * rng.normal(1.0, 0.02, (n, flux0.shape[1]))
    ids = np.arange(1, n + 1, dtype=np.int64)
    ra, dec = rng.uniform(0, 360, n), rng.uniform(-60, 60, n)
    csv = out / "xp_sampled.csv"
    with open(csv, "w") as f:
        f.write("source_id,solution_id,ra,dec,flux,flux_error\n")
        for i in range(n):
            f.write(f"{ids[i]},4545469030156206080,{ra[i]},{dec[i]},{_array_text(flux[i])},"
                    f"{_array_text(flux[i] * 0.01)}\n")
    t = Table({"source_id": ids, "ra": ra, "dec": dec, "flux": flux.astype(np.float32),
               "flux_error": (flux * 0.01).astype(np.float32)})
    t["flux"].unit = "W / (m2 nm)"
    vot = out / "xp_sampled.xml"
    t.write(vot, format="votable", overwrite=True, tabledata_format="binary2")  # as the archive
    return csv, vot


def make_xp_continuous(n: int, out: Path) -> Path:
    """The real coefficients' rows repeated to ``n`` (source_id made unique)."""
    lines = (GAIA / "xp_continuous" / "XP_CONTINUOUS_RAW.csv").read_text().splitlines()
    header, rows = lines[0], lines[1:]
    path = out / "xp_continuous.csv"
    with open(path, "w") as f:
        f.write(header + "\n")
        for i in range(n):
            row = rows[i % len(rows)]
            f.write(f"{i + 1}{row[row.index(','):]}\n")
    return path


def make_sdss(n: int, out: Path, rng: np.random.Generator) -> Path:
    """``n`` SDSS/BOSS spec files (COADD + SPECOBJ), after the DR8+ data model."""
    from astropy.io import fits

    d = out / "sdss"
    d.mkdir(parents=True, exist_ok=True)
    loglam = 3.5523 + 1e-4 * np.arange(4600)
    lam = 10 ** loglam
    for i in range(n):
        z = rng.uniform(0.02, 0.4)
        cont = 5 + 3 * np.exp(-((lam / (1 + z) - 4000) / 1500) ** 2)
        line = 20 * np.exp(-0.5 * ((lam - 6563 * (1 + z)) / 4) ** 2)
        flux = (cont + line + rng.normal(0, 0.3, lam.size)).astype(np.float32)
        ivar = np.full(lam.size, 11.0, np.float32)
        ivar[rng.integers(0, lam.size, 20)] = 0
        coadd = fits.BinTableHDU.from_columns([
            fits.Column("flux", "E", array=flux), fits.Column("loglam", "E", array=loglam),
            fits.Column("ivar", "E", array=ivar),
            fits.Column("and_mask", "J", array=np.zeros(lam.size, np.int32))], name="COADD")
        specobj = fits.BinTableHDU.from_columns([
            fits.Column("SPECOBJID", "21A", array=[str(10**18 + i)]),
            fits.Column("PLUG_RA", "D", array=[rng.uniform(0, 360)]),
            fits.Column("PLUG_DEC", "D", array=[rng.uniform(-10, 60)]),
            fits.Column("Z", "E", array=[z])], name="SPECOBJ")
        fits.HDUList([fits.PrimaryHDU(), coadd, specobj]).writeto(
            d / f"spec-{1000 + i // 1000:04d}-55000-{i % 1000 + 1:04d}.fits", overwrite=True)
    return d


def _timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def astrocat_run(spec: Path, work: Path, label: str) -> float:
    out = work / f"{label}.parquet"
    shutil.rmtree(out.with_name(out.name + ".parts"), ignore_errors=True)
    out.unlink(missing_ok=True)
    return _timed(["astrocat", "infer", "-q", "--input", str(spec), "--out", str(out)])


def baseline_run(spec: Path, kind: str) -> float:
    return _timed([sys.executable, "-m", "benchmarks.spectra_products", "--baseline", kind,
                   str(spec)])


def baseline(kind: str, spec: Path) -> None:
    """The plain loop (run in its own process by :func:`baseline_run`)."""
    import warnings

    import astropy.units as u
    import onnxruntime as ort
    from astropy.table import Table
    from specutils import Spectrum
    from specutils.manipulation import FluxConservingResampler

    from astrocat.models.zoo import resolve

    warnings.simplefilter("ignore")
    card = resolve("redshift-cnn1d")
    axis = np.asarray(card.input.spectral_axis.wavelength)
    cut = int(np.argmax(np.diff(axis) < 0)) + 1
    segments = (axis[:cut] * u.nm, axis[cut:] * u.nm)
    resample = FluxConservingResampler()
    session = ort.InferenceSession(str(card.directory / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    rows: list[np.ndarray] = []

    def on_axis(flux, lam) -> np.ndarray:
        sp = Spectrum(flux=flux * u.Unit("W / (m2 nm)"), spectral_axis=lam)
        return np.concatenate([resample(sp, s).flux.value for s in segments])

    if kind == "xp":
        t = Table.read(spec, format="votable" if spec.suffix == ".xml" else "ascii.csv")
        lam = np.arange(336.0, 1021.0, 2.0) * u.nm
        for f in t["flux"]:
            values = (np.array(f.strip("()").split(","), float) if isinstance(f, str)
                      else np.asarray(f, float))
            rows.append(on_axis(values, lam))
    elif kind == "continuous":
        from gaiaxpy import calibrate

        frame, sampling = calibrate(str(spec), save_file=False)
        for f in frame["flux"]:
            rows.append(on_axis(np.asarray(f, float), sampling * u.nm))
    else:  # sdss: one file a spectrum
        for path in sorted(spec.glob("spec-*.fits")):
            sp = Spectrum.read(path, format="SDSS-III/IV spec")
            good = ~sp.mask if sp.mask is not None else np.ones(len(sp.flux), bool)
            lam = sp.spectral_axis[good].to(u.nm)
            rows.append(on_axis(sp.flux.value[good].astype(float), lam))
    x = np.array(rows, np.float32)
    lo, hi = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
    x = ((x - lo) / (hi - lo))[..., None]
    for a in range(0, len(x), 256):
        session.run(None, {name: x[a:a + 256]})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--sources", type=int, default=4000)
    p.add_argument("--continuous", type=int, default=1000)
    p.add_argument("--sdss", type=int, default=400)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    p.add_argument("--work", type=Path, default=ROOT / "benchmarks" / ".data" / "products")
    p.add_argument("--baseline", nargs=2, metavar=("KIND", "PATH"))
    args = p.parse_args(argv)
    if args.baseline:
        baseline(args.baseline[0], Path(args.baseline[1]))
        return 0
    rng = np.random.default_rng(0)
    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    csv, vot = make_xp_sampled(args.sources, work, rng)
    cont = make_xp_continuous(args.continuous, work)
    sdss = make_sdss(args.sdss, work, rng)
    rows = []
    for label, spec, kind, n in (("XP_SAMPLED CSV (array text)", csv, "xp", args.sources),
                                 ("XP_SAMPLED VOTable", vot, "xp", args.sources),
                                 ("XP_CONTINUOUS CSV via GaiaXPy", cont, "continuous",
                                  args.continuous),
                                 ("SDSS spec files, one spectrum each", sdss, "sdss",
                                  args.sdss)):
        ours, theirs = [], []
        for _ in range(2):  # alternating pairs: the machine's speed drifts
            ours.append(astrocat_run(spec, work, f"{kind}-{spec.stem}"))
            theirs.append(baseline_run(spec, kind))
        a, b = min(ours), min(theirs)
        rows.append({"input": label, "n": n, "astrocat_s": round(a, 2),
                     "baseline_s": round(b, 2), "speedup": round(b / a, 2)})
        print(rows[-1], flush=True)
    record = {"date": dt.date.today().isoformat(), "machine": platform.processor() or
              platform.machine(), "cores": __import__("os").cpu_count(), "rows": rows,
              "command": "python -m benchmarks.spectra_products " + " ".join(argv or
                                                                              sys.argv[1:])}
    (args.out / "spectra_products.json").write_text(json.dumps(record, indent=1))
    lines = ["# Spectral products: astrocat infer vs astropy + specutils + ONNX Runtime", "",
             f"{record['date']}, {record['cores']} cores; whole processes, the better of two "
             "alternating runs each; `" + record["command"] + "`.", "",
             "| input | spectra | astrocat (s) | plain loop (s) | speed-up |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['input']} | {r['n']:,} | {r['astrocat_s']} | {r['baseline_s']} | "
              f"{r['speedup']}x |" for r in rows]
    (args.out / "spectra_products.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
