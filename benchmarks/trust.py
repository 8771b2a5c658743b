"""Evaluate trust per row: the out-of-domain flag on fresh and foreign inputs, the TTA
spread and intervals against the truth, and what both cost.

    python -m benchmarks.trust [--size full|tiny] [--data DIR] [--out benchmarks/RESULTS.md]
                               [--no-cards]

Fresh simulated surveys (seed 99, never used in training or in the references) are the
in-domain inputs; the foreign ones are real files made from them and from elsewhere:
photographs (matplotlib's sample photographs), star fields (sparse, and as dense as a
globular cluster's core), the other tasks' inputs forced through a model (``--model``),
the right kind of input at 2x and 0.5x its pixel scale (or, for spectra, its sampling)
with nothing in the file saying so, and 10x the noise. Every set goes through the real
``astrocat infer``; the flagged share is over its ok rows.

Writes ``benchmarks/TRUST.json``, the "Trust per row" section of ``RESULTS.md`` (the rest
of that file is left as the last ``benchmarks.run`` wrote it) and, unless ``--no-cards``,
the figures into the bundled cards' ``[evaluation]`` tables.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
SEED = 99
HEADING = "## Trust per row"


@dataclass(frozen=True)
class Size:
    galaxies: int
    lenses: int
    fields: int
    spectra: int
    foreign: int  # items per foreign set


SIZES = {"full": Size(1000, 1000, 500, 5000, 200), "tiny": Size(24, 24, 16, 200, 6)}
#: Share of in-domain rows flagged at most, and of clearly foreign rows at least.
IN_DOMAIN_TARGET, FOREIGN_TARGET = 0.01, 0.95


def log(msg: str) -> None:
    print(f"[trust {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def astrocat(*args: str) -> float:
    """Run the real CLI; its wall time (exit 1, some inputs unusable, is fine). An
    ``infer`` always writes a fresh catalog: no part of an earlier run is reused."""
    if args[0] == "infer":
        out = Path(args[args.index("--out") + 1])
        out.unlink(missing_ok=True)
        shutil.rmtree(out.with_name(out.name + ".parts"), ignore_errors=True)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", "from astrocat.cli import main; main()", *args],
                       capture_output=True, text=True)
    if r.returncode not in (0, 1):
        raise RuntimeError(f"astrocat {shlex.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- inputs


def _photos() -> list[np.ndarray]:
    import matplotlib
    from PIL import Image

    folder = Path(matplotlib.get_data_path()) / "sample_data"
    return [np.asarray(Image.open(folder / f).convert("RGB"), np.float32)
            for f in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")]


def _photo_crops(n: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    from PIL import Image

    photos, out = _photos(), []
    for i in range(n):
        p = photos[i % len(photos)]
        s = int(rng.integers(min(p.shape[:2]) // 3, min(p.shape[:2])))
        y, x = (int(rng.integers(0, d - s + 1)) for d in p.shape[:2])
        crop = Image.fromarray(p[y:y + s, x:x + s].astype(np.uint8)).resize((size, size))
        out.append(np.asarray(crop, np.float32))
    return out


def _stars(size: int, n_stars: int, rng: np.random.Generator, sigma: float = 1.5
           ) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    img = np.zeros((size, size))
    for _ in range(n_stars):
        cy, cx = rng.uniform(0, size, 2)
        img += (rng.pareto(1.5) * 20 + 5) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2)
                                                    / (2 * sigma**2))
    return img


def _noise_sigma(img: np.ndarray) -> float:
    """The noise of an image from its border (median absolute deviation)."""
    border = np.concatenate([img[:8].ravel(), img[-8:].ravel()])
    return float(1.4826 * np.median(np.abs(border - np.median(border)))) or 1.0


def _noise_sigma_8bit(rgb: np.ndarray) -> float:
    """The noise of an 8-bit picture whose sky is clipped to black: the robust spread of
    the residual from a 5-pixel median filter, where the picture is not clipped."""
    from scipy import ndimage

    g = rgb[..., 1]
    resid = g - ndimage.median_filter(g, 5)
    lit = g > 5
    return float(1.4826 * np.median(np.abs(resid[lit]))) if lit.any() else 1.0


def _scale(img: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """The same sky at ``factor`` x the pixel scale (2: objects half the size, the
    border filled with noise like the image's; 0.5: the centre blown up twice)."""
    from scipy import ndimage

    h, w = img.shape[:2]
    if factor > 1:
        small = ndimage.zoom(img, (0.5, 0.5) + (1,) * (img.ndim - 2), order=1)
        out = np.median(img[:8], axis=(0, 1)) + rng.normal(
            0, _noise_sigma(img), img.shape)
        sh, sw = small.shape[:2]
        out[(h - sh) // 2:(h - sh) // 2 + sh, (w - sw) // 2:(w - sw) // 2 + sw] = small
        return out
    centre = img[h // 4:h // 4 + h // 2, w // 4:w // 4 + w // 2]
    big = ndimage.zoom(centre, (h / centre.shape[0], w / centre.shape[1])
                       + (1,) * (img.ndim - 2), order=1)
    return big[:h, :w]


def _jpeg(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(path, quality=90)


def _fits(path: Path, data: np.ndarray) -> None:
    from astropy.io import fits

    fits.writeto(path, np.asarray(data, np.float32), overwrite=True)  # no WCS: no scale


def _to_rgb(plane: np.ndarray) -> np.ndarray:
    """A single-band image as an 8-bit colour picture (asinh stretch, grey)."""
    lo, hi = np.percentile(plane, [1, 99.5])
    x = np.arcsinh((plane - lo) / max(hi - lo, 1e-6) * 10) / np.arcsinh(10)
    return np.repeat(np.clip(x * 255, 0, 255)[..., None], 3, axis=2)


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    from scipy import ndimage

    return ndimage.zoom(img, (size / img.shape[0], size / img.shape[1])
                        + (1,) * (img.ndim - 2), order=1)


@dataclass
class Surveys:
    galaxies: Path
    lenses: Path
    fields: Path
    spectra: Path


def simulate(size: Size, data: Path) -> Surveys:
    s = Surveys(data / "galaxies", data / "lenses", data / "fields", data / "spectra")
    for kind, n, out in (("galaxies", size.galaxies, s.galaxies),
                         ("lenses", size.lenses, s.lenses), ("fields", size.fields, s.fields),
                         ("spectra", size.spectra, s.spectra)):
        if not (out / "simulation.json").is_file():
            log(f"simulating {n} {kind} (seed {SEED})")
            extra = ["--merger-fraction", "0.05"] if kind == "galaxies" else []
            astrocat("simulate", kind, "--n", str(n), "--seed", str(SEED), "--out", str(out),
                     "-q", *extra)
    return s


def _read_spectra(path: Path, n: int) -> np.ndarray:
    import pyarrow.parquet as pq

    flux = pq.read_table(path, columns=["flux"]).column("flux").combine_chunks()
    return np.asarray(flux.flatten(), np.float32).reshape(len(flux), -1)[:n]


def _spectra_table(path: Path, flux: np.ndarray) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    flat = pa.array(np.asarray(flux, np.float32).ravel())
    arr = pa.FixedSizeListArray.from_arrays(flat, flux.shape[1])
    pq.write_table(pa.table({"source_id": np.arange(len(flux)), "flux": arr}), path)


def foreign_sets(s: Surveys, size: Size, data: Path) -> list[dict]:
    """Each foreign set written as files once: (model, label, directory, clearly foreign)."""
    from astrocat.sources import readers

    n = size.foreign
    sets: list[dict] = []

    def make(model: str, label: str, foreign: bool, build) -> None:
        folder = data / "foreign" / f"{model}-{label.replace(' ', '_')}"
        if not (folder / ".done").is_file():
            folder.mkdir(parents=True, exist_ok=True)
            build(folder, np.random.default_rng(len(sets) + 1))
            (folder / ".done").write_text("")
        sets.append({"model": model, "set": label, "dir": str(folder), "foreign": foreign})

    gal = sorted(s.galaxies.glob("*.jpg"))[:n]
    lens = sorted(s.lenses.glob("*.fits"))[:n]
    fld = sorted(s.fields.glob("*.npy"))[:n]

    def rgb(p: Path) -> np.ndarray:
        from PIL import Image

        return np.asarray(Image.open(p).convert("RGB"), np.float32)

    def plane(p: Path) -> np.ndarray:
        fmt = "npy" if p.suffix == ".npy" else "fits_image"
        return readers.read_plane(str(p), fmt, None if fmt == "npy" else 0).data

    # gz2-cnn: 424 x 424 colour JPEGs
    make("gz2-cnn", "photographs", True, lambda d, r: [
        _jpeg(d / f"p{i}.jpg", c) for i, c in enumerate(_photo_crops(n, 424, r))])
    make("gz2-cnn", "star fields", True, lambda d, r: [
        _jpeg(d / f"s{i}.jpg", 8 + r.normal(0, 3, (424, 424, 3))
              + _stars(424, 40, r, 2.5)[..., None] * r.uniform(0.7, 1.3, 3)) for i in range(n)])
    make("gz2-cnn", "lens cut-outs", True, lambda d, r: [
        _jpeg(d / f"{p.stem}.jpg", _resize(_to_rgb(plane(p)), 424)) for p in lens])
    make("gz2-cnn", "density fields", True, lambda d, r: [
        _jpeg(d / f"{p.stem}.jpg", _resize(_to_rgb(np.log10(plane(p) + 1e-3)), 424))
        for p in fld])
    for factor in (2.0, 0.5):
        make("gz2-cnn", f"{factor:g}x pixel scale", False, lambda d, r, f=factor: [
            _jpeg(d / p.name, _scale(rgb(p), f, r)) for p in gal])
    make("gz2-cnn", "10x noise", False, lambda d, r: [
        _jpeg(d / p.name, (lambda a: a + r.normal(0, 9.95 * _noise_sigma_8bit(a),
                                                  a.shape))(rgb(p))) for p in gal])
    # lens-lastro: 101 x 101 single-band FITS
    make("lens-lastro", "photographs", True, lambda d, r: [
        _fits(d / f"p{i}.fits", c.mean(axis=2)) for i, c in enumerate(_photo_crops(n, 101, r))])
    make("lens-lastro", "sparse star fields", True, lambda d, r: [
        _fits(d / f"s{i}.fits", r.normal(0, 1, (101, 101)) + _stars(101, 15, r))
        for i in range(n)])
    make("lens-lastro", "globular cluster cores", True, lambda d, r: [
        _fits(d / f"g{i}.fits", r.normal(0, 1, (101, 101)) + _stars(101, 500, r))
        for i in range(n)])
    make("lens-lastro", "galaxy images", True, lambda d, r: [
        _fits(d / f"{p.stem}.fits", rgb(p).mean(axis=2)) for p in gal])
    make("lens-lastro", "density fields", True, lambda d, r: [
        _fits(d / f"{p.stem}.fits", _resize(plane(p), 101)) for p in fld])
    for factor in (2.0, 0.5):
        make("lens-lastro", f"{factor:g}x pixel scale", False, lambda d, r, f=factor: [
            _fits(d / p.name, _scale(plane(p), f, r)) for p in lens])
    make("lens-lastro", "10x noise", False, lambda d, r: [
        _fits(d / p.name, (lambda a: a + r.normal(0, 9.95 * _noise_sigma(a), a.shape))(
            plane(p))) for p in lens])
    # cosmo-cnn: 64 x 64 density maps (.npy)
    make("cosmo-cnn", "photographs", True, lambda d, r: [
        np.save(d / f"p{i}.npy", c.mean(axis=2) / 128) for i, c in
        enumerate(_photo_crops(n, 64, r))])
    make("cosmo-cnn", "star fields", True, lambda d, r: [
        np.save(d / f"s{i}.npy", 1 + _stars(64, 30, r)) for i in range(n)])
    make("cosmo-cnn", "lens cut-outs", True, lambda d, r: [
        np.save(d / f"{p.stem}.npy", np.maximum(plane(p), 0)[18:82, 18:82]) for p in lens])
    for factor in (2.0, 0.5):
        make("cosmo-cnn", f"{factor:g}x pixel scale", False, lambda d, r, f=factor: [
            np.save(d / p.name, np.tile(_resize(plane(p), 32), (2, 2)) if f > 1 else
                    _scale(plane(p), f, r)) for p in fld])
    # redshift-cnn1d: 186-sample spectra in a Parquet table
    flux = _read_spectra(s.spectra / "spectra.parquet", max(n, 20))
    wl = np.linspace(330, 1050, flux.shape[1]) * 1e-9
    make("redshift-cnn1d", "stellar blackbodies", True, lambda d, r: _spectra_table(
        d / "stars.parquet", np.stack([1 / wl**5 / (np.exp(1.4388e-2 / (wl * t)) - 1) * 1e-25
                                       * (1 + r.normal(0, 0.02, wl.shape))
                                       for t in r.uniform(3000, 30000, n)])))
    make("redshift-cnn1d", "image rows", True, lambda d, r: _spectra_table(
        d / "rows.parquet", np.stack([_resize(rgb(p).mean(axis=2), 186)[93] for p in gal])))
    make("redshift-cnn1d", "white noise", True, lambda d, r: _spectra_table(
        d / "noise.parquet", r.normal(1, 1, (n, flux.shape[1]))))
    for factor in (2.0, 0.5):
        make("redshift-cnn1d", f"{factor:g}x sampling", False, lambda d, r, f=factor:
             _spectra_table(d / "resampled.parquet", np.stack([np.interp(
                 np.clip((np.arange(len(f_)) - len(f_) / 2) * f + len(f_) / 2, 0, len(f_) - 1),
                 np.arange(len(f_)), f_) for f_ in flux[:n]])))
    make("redshift-cnn1d", "10x noise", False, lambda d, r: _spectra_table(
        d / "noisy.parquet", flux[:n] + r.normal(0, 1, flux[:n].shape) * 9.95
        * np.median(np.abs(np.diff(flux[:n], axis=1)), axis=1, keepdims=True) / 1.35))
    return sets


# --------------------------------------------------------------------------- measuring


def _catalog(path: Path):
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pandas()


def flagged(cat, model: str) -> dict:
    ok = cat[(cat.status == "ok") & (cat.model == model)]
    return {"n": int(len(ok)), "errors": int((cat.status == "error").sum()),
            "flagged": int(ok.ood_flag.sum()),
            "share": round(float(ok.ood_flag.mean()), 4) if len(ok) else None,
            "median_distance": round(float(ok.ood_distance.median()), 3) if len(ok) else None}


def drift_of(path: Path, model: str) -> dict | None:
    """The run's drift record for ``model`` (its provenance), without the sketches."""
    import pyarrow.parquet as pq

    prov = json.loads(pq.read_schema(path).metadata[b"astrocat"])
    d = (prov.get("models", {}).get(model) or {}).get("drift")
    return None if d is None else {k: v for k, v in d.items()
                                   if k not in ("sketch", "reference", "test")}


def row_errors(cat, model: str, s: Surveys) -> dict:
    """Per ok row of ``model``, its squared error against the truth, keyed so that the
    same object matches across sets (GalaxyID, the lens' ID, the field, the table row)."""
    import re

    import pyarrow.parquet as pq

    ok = cat[(cat.status == "ok") & (cat.model == model)]
    if model == "gz2-cnn" or model == "cosmo-cnn":
        names, truth = _truth(s)[model]
        keys = [k for k in ok.object_id if k in truth]
        pred = ok.set_index("object_id").loc[keys, names].to_numpy()
        sq = ((pred - np.array([truth[k] for k in keys])) ** 2).mean(axis=1)
        return dict(zip(keys, sq, strict=True))
    if model == "lens-lastro":
        with open(s.lenses / "lens_labels.csv", newline="") as f:
            truth = {r["ID"]: float(r["is_lens"]) for r in csv.DictReader(f)}
        keys = [re.search(r"(\d+)$", Path(src).stem).group(1) for src in ok.source]
        return {k: (p - truth[k]) ** 2 for k, p in zip(keys, ok.p_lens, strict=True)
                if k in truth}
    z = pq.read_table(s.spectra / "spectra.parquet", columns=["z"]).column("z").to_numpy()
    return {int(r): ((zp - z[int(r)]) / (1 + z[int(r)])) ** 2
            for r, zp in zip(ok.row, ok.z_pred, strict=True)}


#: How each model's error is summarised from its rows' squared errors.
ERROR_NAME = {"gz2-cnn": "RMSE of the 37 vote fractions", "cosmo-cnn": "RMSE of (Omega_m, "
              "sigma_8)", "lens-lastro": "Brier score of p_lens",
              "redshift-cnn1d": "RMSE of dz/(1+z)"}


def error_ratio(shifted: dict, fresh: dict, model: str) -> float | None:
    """The model's error on a shifted set over its error on the same objects fresh."""
    keys = [k for k in shifted if k in fresh]
    if not keys:
        return None
    a = float(np.mean([shifted[k] for k in keys]))
    b = float(np.mean([fresh[k] for k in keys]))
    if model != "lens-lastro":  # root of the mean square
        a, b = np.sqrt(a), np.sqrt(b)
    return round(a / b, 3) if b > 0 else None


def _truth(s: Surveys):
    from astrocat.kernels.gz_tree import galaxy_zoo2

    tree = galaxy_zoo2()
    with open(s.galaxies / "training_solutions_rev1.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    gz = {r["GalaxyID"]: [float(r[c]) for c in tree.kaggle_columns] for r in rows}
    with open(s.fields / "fields_truth.csv", newline="") as f:
        cos = {f"field_{r['ID']}": [float(r["omega_m"]), float(r["sigma_8"])]
               for r in csv.DictReader(f)}
    return {"gz2-cnn": ([a.catalog_column for a in tree.answers], gz),
            "cosmo-cnn": (["omega_m_pred", "sigma_8_pred"], cos)}


def tta_figures(single, tta, names: list[str], truth: dict) -> dict:
    from scipy import stats

    a = single[single.status == "ok"].set_index("object_id")
    b = tta[tta.status == "ok"].set_index("object_id")
    ids = [i for i in b.index if i in truth and i in a.index]
    y = np.array([truth[i] for i in ids])
    p1, p8 = a.loc[ids, names].to_numpy(), b.loc[ids, names].to_numpy()
    spread = b.loc[ids, [f"{c}_std" for c in names]].to_numpy()
    err = np.abs(p8 - y)
    out = {"n": len(ids), "rmse_single_view": float(np.sqrt(np.mean((p1 - y) ** 2))),
           "rmse_tta_mean": float(np.sqrt(np.mean((p8 - y) ** 2))),
           "spearman_spread_error": float(stats.spearmanr(spread.ravel(), err.ravel())[0])}
    top = spread.ravel() >= np.quantile(spread.ravel(), 0.9)
    low = spread.ravel() <= np.median(spread.ravel())
    out["error_ratio_top10_vs_below_median"] = float(err.ravel()[top].mean()
                                                    / err.ravel()[low].mean())
    if f"{names[0]}_lo" in b.columns:
        lo = b.loc[ids, [f"{c}_lo" for c in names]].to_numpy()
        hi = b.loc[ids, [f"{c}_hi" for c in names]].to_numpy()
        out["interval_coverage"] = float(((lo <= y) & (y <= hi)).mean())
        out["interval_mean_width"] = float((hi - lo).mean())
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def _ms_per_item(fn, x: np.ndarray, n: int, repeat: int = 5) -> float:
    """Best of ``repeat`` calls of ``fn(x)``, in milliseconds per item."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return min(times) / n * 1e3


def flag_cost(s: Surveys) -> dict:
    """Per item: the network alone, and the flag's statistics and distances beside it."""
    import dataclasses

    from astrocat.engines.base import open_engine
    from astrocat.kernels import ood
    from astrocat.kernels.preprocess import prepare
    from astrocat.models import datasets
    from astrocat.models.reference import of
    from astrocat.models.zoo import bundled

    out = {}
    data = {"gz2-cnn": ("morphology", s.galaxies), "lens-lastro": ("lens", s.lenses),
            "cosmo-cnn": ("cosmology", s.fields),
            "redshift-cnn1d": ("redshift", s.spectra / "spectra.parquet")}
    for name, (task, path) in data.items():
        card = bundled()[name]
        x, _ = datasets.load_task(task, card.input, path, limit=128, seed=0)
        x = prepare(x, card.input)
        bare = open_engine(dataclasses.replace(card, reference=None), "onnxruntime")
        full = open_engine(card, "onnxruntime")
        ref = of(card)

        n = len(x)
        net = _ms_per_item(bare.run, x, n)
        heads = _ms_per_item(full.run, x, n)
        feats = full.run(x).features
        flag = _ms_per_item(lambda a, f=feats, r=ref, lay=card.input.layout: r.distance(
            ood.input_statistics(a, lay), f), x, n)
        out[name] = {"network_ms": round(net, 4), "network_with_features_ms": round(heads, 4),
                     "statistics_and_distance_ms": round(flag, 4)}
    return out


def evaluate(size: Size, data: Path) -> dict:
    s = simulate(size, data)
    sets = foreign_sets(s, size, data)
    runs = data / "runs"
    runs.mkdir(exist_ok=True)
    results: dict = {"in_domain": {}, "shifts": [], "tta": {}, "cost": {}}
    excl = ["--exclude", "*.csv", "--exclude", "*.json"]
    domain = {"gz2-cnn": s.galaxies, "lens-lastro": s.lenses, "cosmo-cnn": s.fields,
              "redshift-cnn1d": s.spectra}
    single: dict = {}
    for model, folder in domain.items():
        out = runs / f"{model}-in-domain.parquet"
        log(f"{model}: in-domain ({folder.name})")
        seconds = astrocat("infer", "-q", "--model", model, "--input", str(folder), "--out",
                           str(out), "--workers", "1", *excl)
        single[model] = (_catalog(out), seconds)
        results["in_domain"][model] = {**flagged(single[model][0], model),
                                       "drift": drift_of(out, model)}
    fresh_errors = {m: row_errors(single[m][0], m, s) for m in domain}
    for st in sets:
        out = runs / f"{Path(st['dir']).name}.parquet"
        log(f"{st['model']}: {st['set']}")
        astrocat("infer", "-q", "--model", st["model"], "--input", st["dir"], "--out", str(out))
        cat = _catalog(out)
        entry = {**{k: st[k] for k in ("model", "set", "foreign")},
                 **flagged(cat, st["model"]), "drift": drift_of(out, st["model"])}
        if not st["foreign"]:  # the same objects, shifted: how much worse the model does
            entry["error_ratio"] = error_ratio(row_errors(cat, st["model"], s),
                                               fresh_errors[st["model"]], st["model"])
        results["shifts"].append(entry)
    truth = _truth(s)
    for model in ("gz2-cnn", "lens-lastro", "cosmo-cnn"):
        out = runs / f"{model}-tta8.parquet"
        log(f"{model}: --tta 8")
        seconds = astrocat("infer", "-q", "--model", model, "--tta", "8", "--input",
                           str(domain[model]), "--out", str(out), "--workers", "1", *excl)
        cat = _catalog(out)
        entry = {"seconds_tta8": round(seconds, 2),
                 "seconds_single": round(single[model][1], 2),
                 "wall_ratio": round(seconds / single[model][1], 2)}
        if model in truth:
            names, t = truth[model]
            entry |= tta_figures(single[model][0], cat, names, t)
        else:
            ok = cat[cat.status == "ok"]
            entry["median_spread_p_lens"] = round(float(ok.p_lens_std.median()), 5)
        results["tta"][model] = entry
    log("flag cost, in process")
    results["cost"] = flag_cost(s)
    return results


# --------------------------------------------------------------------------- report


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def markdown(r: dict) -> str:
    """The "Trust per row" section of RESULTS.md, from TRUST.json."""
    res = r["results"]
    lines = [HEADING, "",
             f"Produced by `{r['command']}` on {r['started'][:16].replace('T', ' ')} UTC "
             f"({r['seconds'] / 60:.1f} min; size `{r['size']}`): fresh simulated surveys, "
             f"seed {SEED}, never used in training or in the models' reference statistics, "
             "and foreign inputs made as files, each set through the real `astrocat infer`.",
             "", "### Out-of-domain flag: share of ok rows flagged", "",
             "| model | inputs | N | flagged | target | met? |", "|---|---|---|---|---|---|"]
    for model, f in res["in_domain"].items():
        met = f["share"] is not None and f["share"] <= IN_DOMAIN_TARGET
        lines.append(f"| {model} | in domain (fresh survey) | {f['n']} | {_pct(f['share'])} "
                     f"| <= {IN_DOMAIN_TARGET:.0%} | {'yes' if met else '**no**'} |")
    for f in res["shifts"]:
        if f["foreign"]:
            met = "yes" if (f["share"] or 0) >= FOREIGN_TARGET else "**no**"
            target = f">= {FOREIGN_TARGET:.0%}"
        else:
            met, target = "-", "report"
        lines.append(f"| {f['model']} | {f['set']} | {f['n']} | {_pct(f['share'])} | "
                     f"{target} | {met} |")
    lines += drift_lines(res)
    lines += ["", "### Test-time augmentation (8 views) against the truth", "",
              "| model | N | RMSE, one view | RMSE, mean of 8 | Spearman(spread, abs error) "
              "| abs error, top 10% spread / below median | 90% interval coverage | mean "
              "width | wall time, --tta 8 / none |", "|---|---|---|---|---|---|---|---|---|"]
    for model, t in res["tta"].items():
        if "rmse_tta_mean" in t:
            lines.append(
                f"| {model} | {t['n']} | {t['rmse_single_view']:.4f} | "
                f"{t['rmse_tta_mean']:.4f} | {t['spearman_spread_error']:.2f} | "
                f"{t['error_ratio_top10_vs_below_median']:.1f}x | "
                f"{_pct(t.get('interval_coverage'))} | {t.get('interval_mean_width', 0):.3f} "
                f"| {t['wall_ratio']:.2f}x |")
        else:
            lines.append(f"| {model} | - | - | - | - | - | - (a score: no interval) | - | "
                         f"{t['wall_ratio']:.2f}x |")
    lines += ["", "### What the flag costs, per item (one core, batches of up to 128, best of "
              "5)", "",
              "| model | network | network giving its features too | statistics + distances "
              "| statistics + distances / network |", "|---|---|---|---|---|"]
    for model, c in res["cost"].items():
        lines.append(f"| {model} | {c['network_ms']:.3f} ms | {c['network_with_features_ms']:.3f} "
                     f"ms | {c['statistics_and_distance_ms']:.3f} ms | "
                     f"{100 * c['statistics_and_distance_ms'] / c['network_ms']:.1f}% |")
    lines += ["", "Giving the features is one more graph output of a tensor the network "
              "computes anyway: its column differs from the network's by timing noise."]
    missed = [f for f in res["shifts"] if f["foreign"] and (f["share"] or 0) < FOREIGN_TARGET]
    missed += [{"model": m, "set": "in domain", **f} for m, f in res["in_domain"].items()
               if f["share"] is not None and f["share"] > IN_DOMAIN_TARGET]
    if missed:
        lines += ["", "Misses: " + "; ".join(f"{f['model']} {f['set']} {_pct(f['share'])}"
                                              for f in missed) + ". The shifts that keep an "
                  "input's kind (pixel scale, sampling, noise) are reported, not targeted: "
                  "a model may generalise to some of them, and the flag says only how unlike "
                  "the training inputs they look."]
    return "\n".join(lines) + "\n"


#: A shift that raises the model's error by this factor must read shifted or far.
ERROR_RAISE = 1.2


def drift_lines(res: dict) -> list[str]:
    """The drift verdict of each set's run as a whole (``kernels.drift``)."""
    if not any(f.get("drift") for f in res["shifts"]):
        return []
    lines = ["", "### Drift per run: each set as a whole against the model's reference", "",
             "The verdict each run recorded in its catalog's provenance "
             "(`models.<name>.drift`). Target: foreign sets, and shifts that raise the "
             f"model's error on the same objects by {ERROR_RAISE - 1:.0%} or more, read "
             "`shifted` or `far`; fresh in-domain surveys read `in_domain` (their false-alarm "
             "rate over 100 runs of 500 rows is `benchmarks/drift.py`'s).", "",
             "| model | inputs | N | verdict | median ratio | beyond ref. 95 % | KS | p | "
             "error / fresh | target | met? |", "|---|---|---|---|---|---|---|---|---|---|---|"]

    def row(model: str, label: str, f: dict, target: str, met: str) -> str:
        d = f.get("drift") or {}
        ratio = f.get("error_ratio")
        return (f"| {model} | {label} | {d.get('n', '-')} | {d.get('verdict', '-')} | "
                f"{d.get('median_ratio', '-')} | {_pct(d.get('beyond_q95'))} | "
                f"{d.get('statistic', '-')} | {d.get('p_value', '-')} | "
                f"{'-' if ratio is None else f'{ratio:.2f}x'} | {target} | {met} |")

    for model, f in res["in_domain"].items():
        ok = (f.get("drift") or {}).get("verdict") == "in_domain"
        lines.append(row(model, "in domain (fresh survey)", f, "in_domain",
                         "yes" if ok else "**no**"))
    for f in res["shifts"]:
        moved = (f.get("drift") or {}).get("verdict") in ("shifted", "far")
        must = f["foreign"] or (f.get("error_ratio") or 0) >= ERROR_RAISE
        lines.append(row(f["model"], f["set"], f, "shifted or far" if must else "report",
                         ("yes" if moved else "**no**") if must else "-"))
    lines += ["", "Error measures: " + "; ".join(f"{m}: {e}" for m, e in ERROR_NAME.items())
              + ", on the same objects fresh and shifted."]
    return lines


def splice(results_md: Path, section: str, heading: str = HEADING) -> None:
    """Put ``section`` (which starts with ``heading``) in place of RESULTS.md's own
    section of that heading (or at its end)."""
    text = results_md.read_text() if results_md.is_file() else "# astrocat benchmarks\n"
    if heading in text:
        start = text.index(heading)
        nxt = text.find("\n## ", start + len(heading))
        gap = "" if section.endswith("\n\n") else "\n"  # a blank line before the next
        text = text[:start] + section + (gap + text[nxt + 1:] if nxt >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    results_md.write_text(text)


def section_main(module: str, args, argv: list[str] | None, json_name: str, heading: str,
                 markdown, evaluate, extra=None) -> dict | None:
    """What the benchmarks with a RESULTS.md section of their own (trust, drift,
    fine-tuning) share: with ``--render`` their section again from its JSON record
    (returns None); otherwise ``evaluate(data)`` on ``--data``/``--size``, then the record
    (command, size, start, seconds, ``extra()``, results) written beside ``--out`` and its
    section spliced in (returns the record)."""
    json_path = args.out.with_name(json_name)
    if args.render:
        splice(args.out, markdown(json.loads(json_path.read_text())), heading)
        return None
    command = shlex.join(["python", "-m", f"benchmarks.{module}",
                          *(argv if argv is not None else sys.argv[1:])])
    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    data = args.data.resolve() / args.size
    data.mkdir(parents=True, exist_ok=True)
    results = evaluate(data)
    record = {"command": command, "size": args.size, "started": started.isoformat(),
              "seconds": time.perf_counter() - t0, **(extra() if extra else {}),
              "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(record, indent=1))
    splice(args.out, markdown(record), heading)
    print(f"[{module} {time.strftime('%H:%M:%S')}] wrote {args.out} and {json_path}",
          file=sys.stderr, flush=True)
    return record


def update_cards(res: dict) -> None:
    import tomllib

    from astrocat.models.card import write_card
    from astrocat.models.zoo import zoo_root

    for model, f in res["in_domain"].items():
        folder = zoo_root() / model
        card = tomllib.loads((folder / "card.toml").read_text())
        ev = card.setdefault("evaluation", {})
        ev["ood_flagged_in_domain"] = f["share"]
        ev["ood_command"] = "python -m benchmarks.trust --size full"
        foreign = [x for x in res["shifts"] if x["model"] == model and x["foreign"]]
        if foreign:
            ev["ood_flagged_foreign_min"] = min(x["share"] for x in foreign)
        t = res["tta"].get(model, {})
        for key in ("rmse_tta_mean", "spearman_spread_error", "interval_coverage"):
            if key in t:
                ev[f"tta8_{key}"] = t[key]
        write_card(card, folder)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.trust", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=sorted(SIZES), default="full")
    ap.add_argument("--data", type=Path, default=BENCH / ".data" / "trust")
    ap.add_argument("--out", type=Path, default=BENCH / "RESULTS.md")
    ap.add_argument("--no-cards", action="store_true",
                    help="leave the bundled cards' [evaluation] tables as they are")
    ap.add_argument("--render", action="store_true",
                    help="only re-render RESULTS.md's section from TRUST.json")
    args = ap.parse_args(argv)
    record = section_main("trust", args, argv, "TRUST.json", HEADING, markdown,
                          lambda data: evaluate(SIZES[args.size], data))
    if record is not None and not args.no_cards:
        update_cards(record["results"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
