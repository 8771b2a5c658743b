"""Training data in the real published layouts, so real data trains unchanged.

- Galaxy Zoo (Kaggle "Galaxy Challenge"): ``training_solutions_rev1.csv`` plus
  ``<GalaxyID>.jpg`` beside it or in ``images_training_rev1/``.
- Redshift: a spectra table (Parquet/CSV/ECSV/FITS) with 186 fluxes per row (columns
  ``flux_0..`` or an array column ``flux``) and a true redshift column ``z``.
- Lens finding (Bologna challenge): ``imageEUC_VIS-<ID>.fits`` plus a labels CSV with
  columns ``ID, is_lens, ...``.
- Cosmology: 2-D maps as ``.npy`` plus ``fields_truth.csv`` with ``ID, omega_m, sigma_8``
  (file ``field_<ID>.npy``; Quijote 3-D ``df_m_*`` cubes are projected to maps).
"""

from __future__ import annotations

import csv
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from astrocat.errors import AstrocatError
from astrocat.kernels.gz_tree import galaxy_zoo2
from astrocat.kernels.preprocess import centre_crop_plane
from astrocat.models.card import InputSpec
from astrocat.sources import readers
from astrocat.sources.sniff import sniff

REDSHIFT_COLUMNS = ("z", "z_true", "redshift", "zspec", "z_spec")


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _limit(n: int, limit: int | None, seed: int) -> np.ndarray:
    idx = np.arange(n)
    if limit is not None and limit < n:
        idx = np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))
    return idx


def _parallel(fn, items, workers: int = 4) -> list:
    with ThreadPoolExecutor(workers) as pool:  # Pillow/astropy release the GIL while decoding
        return list(pool.map(fn, items))


def load_galaxy_zoo(
    data: Path, size: int, crop_fraction: float, limit: int | None = None, seed: int = 0,
    zoom: float = 1.0, resize_filter: str = "bilinear", antialias: bool = True,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images (n, size, size, 3) uint8 and the 37 vote fractions in tree order."""
    data = Path(data)
    labels = data / "training_solutions_rev1.csv" if data.is_dir() else data
    if not labels.is_file():
        raise AstrocatError(f"no training_solutions_rev1.csv in {data}")
    folder = labels.parent
    if (folder / "images_training_rev1").is_dir():
        folder = folder / "images_training_rev1"
    rows = _read_csv(labels)
    cols = galaxy_zoo2().kaggle_columns
    missing = [c for c in ["GalaxyID", *cols] if c not in rows[0]]
    if missing:
        raise AstrocatError(f"{labels}: missing columns {missing[:5]}")
    rows = [rows[i] for i in _limit(len(rows), limit, seed)]
    ids = [r["GalaxyID"] for r in rows]
    y = np.array([[float(r[c]) for c in cols] for r in rows], dtype=np.float32)
    x = np.stack(_parallel(lambda i: readers.read_rgb(
        str(folder / f"{i}.jpg"), size, crop_fraction, zoom, resize_filter, antialias), ids))
    return x, y, ids


def load_spectra(
    data: Path, limit: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Fluxes (n, n_flux) float32 and true redshifts from a spectra table."""
    path = Path(data)
    fmt = sniff(path)
    fmt = {"fits": "fits_table"}.get(fmt, fmt)
    hdu = 1 if fmt == "fits_table" else None
    info = readers.scan_table(str(path), fmt, hdu)
    flux, carried = readers.read_spectra(str(path), fmt, hdu, 0, info.n_rows, info)
    names = {n.lower(): n for n in carried.column_names}
    zcol = next((names[c] for c in REDSHIFT_COLUMNS if c in names), None)
    if zcol is None:
        raise AstrocatError(f"{path}: no true-redshift column (one of {REDSHIFT_COLUMNS})")
    z = np.asarray(carried.column(zcol).to_numpy(zero_copy_only=False), dtype=np.float32)
    keep = np.isfinite(flux).all(axis=1) & np.isfinite(z)
    flux, z = flux[keep], z[keep]
    idx = _limit(len(z), limit, seed)
    return flux[idx], z[idx]


def _find_labels(folder: Path, required: set[str]) -> Path:
    for p in sorted(folder.glob("*.csv")):
        with open(p, newline="") as f:
            header = set(next(csv.reader(f), []))
        if required <= header:
            return p
    raise AstrocatError(f"no CSV with columns {sorted(required)} in {folder}")


def _id_of(name: str) -> str:
    m = re.search(r"(\d+)(?=\.[^.]+(\.(gz|fz))?$)", name)
    return m.group(1) if m else name


def load_lenses(
    data: Path, limit: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Cut-outs (n, H, W) float32 and is_lens labels, joined on the challenge ID."""
    folder = Path(data)
    labels = {r["ID"]: r for r in _read_csv(_find_labels(folder, {"ID", "is_lens"}))}
    files = sorted(p for p in folder.rglob("*.fits*") if _id_of(p.name) in labels)
    if not files:
        raise AstrocatError(f"no FITS cut-outs matching the labels' IDs in {folder}")
    files = [files[i] for i in _limit(len(files), limit, seed)]

    def read(p: Path) -> np.ndarray:
        fmt = "fits_image"
        return readers.read_plane(str(p), fmt, _first_image_hdu(p)).data

    x = np.stack(_parallel(read, files))
    ids = [_id_of(p.name) for p in files]
    y = np.array([float(labels[i]["is_lens"]) for i in ids], dtype=np.float32)
    return x, y, ids


def _first_image_hdu(path: Path) -> int:
    from astrocat.sources.describe import describe

    unit = describe(path, path.parent)
    if unit.error:
        raise AstrocatError(unit.error)
    return unit.hdu if unit.hdu is not None else 0


def load_fields(
    data: Path, limit: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Maps (n, H, W) float32 and (Omega_m, sigma_8), joined on ID."""
    folder = Path(data)
    truth = {r["ID"]: r for r in _read_csv(_find_labels(folder, {"ID", "omega_m", "sigma_8"}))}
    files = sorted(p for p in folder.rglob("*.npy") if _id_of(p.name) in truth)
    if not files:
        raise AstrocatError(f"no .npy maps matching fields_truth.csv IDs in {folder}")
    files = [files[i] for i in _limit(len(files), limit, seed)]
    x = np.stack([readers.read_plane(str(p), "npy", None).data for p in files])
    ids = [_id_of(p.name) for p in files]
    y = np.array([[float(truth[i]["omega_m"]), float(truth[i]["sigma_8"])] for i in ids],
                 dtype=np.float32)
    return x, y, ids


#: What each task's training data is, for messages: (a file or a directory, its layout).
LAYOUT_HINTS = {
    "morphology": ("dir", "a Galaxy Zoo directory (training_solutions_rev1.csv, and "
                   "<GalaxyID>.jpg beside it or in images_training_rev1/)"),
    "redshift": ("file", "a spectra table file (Parquet/CSV/ECSV/FITS with 186 flux columns "
                 "and z)"),
    "lens": ("dir", "a directory of FITS cut-outs (imageEUC_VIS-<ID>.fits) with a labels CSV "
             "(ID, is_lens, ...)"),
    "cosmology": ("dir", "a directory of maps (field_<ID>.npy) with fields_truth.csv (ID, "
                  "omega_m, sigma_8)"),
}
#: What ``sniff`` calls a table ``load_spectra`` reads.
TABLE_FORMATS = ("parquet", "csv", "ecsv", "fits", "gzip")


def check_data(task: str, data: Path) -> None:
    """Whether ``data`` has the shape of ``task``'s layout (a file or a directory, its
    labels table), cheaply and before any heavy import; an ``AstrocatError`` saying what
    to pass instead."""
    if task not in LAYOUT_HINTS:
        raise AstrocatError(f"unknown task '{task}'")
    data = Path(data)
    want, hint = LAYOUT_HINTS[task]
    what = f"{task} training reads {hint}"
    if not data.exists():
        raise AstrocatError(f"{what}; {data} does not exist")
    if task == "redshift":
        if data.is_dir():
            tables = sorted(p for p in data.iterdir() if p.is_file() and not p.name.startswith(
                ".") and _sniff_quietly(p) in TABLE_FORMATS)
            example = (f"pass the table, e.g. {tables[0]}" if tables else
                       "it holds no table file; pass the table's path")
            raise AstrocatError(f"{what}; {data} is a directory — {example}")
        fmt = _sniff_quietly(data)
        if fmt not in TABLE_FORMATS:
            from astrocat.sources.sniff import looks_like, read_head

            seen = {"jpeg": "a JPEG image", "png": "a PNG image",
                    "npy": "a NumPy array"}.get(fmt) or looks_like(read_head(data))
            raise AstrocatError(f"{what}; {data} is {seen}, not a table")
        return
    if not data.is_dir():
        if task == "morphology" and _sniff_quietly(data) == "csv":
            return  # the labels file itself: the images are beside it
        ours = _sniff_quietly(data) in ("csv", "jpeg", "png", "fits", "gzip", "npy")
        raise AstrocatError(f"{what}; {data} is a file — pass the data set's directory"
                            + (f", e.g. {data.parent}" if ours else ""))
    if task == "morphology":
        if not (data / "training_solutions_rev1.csv").is_file():
            raise AstrocatError(f"{what}; {data} has no training_solutions_rev1.csv")
        return
    required = {"ID", "is_lens"} if task == "lens" else {"ID", "omega_m", "sigma_8"}
    try:
        _find_labels(data, required)
    except AstrocatError:
        raise AstrocatError(f"{what}; {data} has no CSV with columns "
                            f"{', '.join(sorted(required))}") from None


def _sniff_quietly(path: Path) -> str:
    try:
        return sniff(path)
    except OSError:
        return "unknown"


def load_task(
    task: str, spec: InputSpec, data: Path, limit: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A task's raw items, read and cropped for ``spec`` as ``infer`` reads them, and its
    truth as (n, n_outputs) float32.

    Training and INT8 calibration/validation both load here, so a model is fitted and
    scored on the arrays ``infer`` would give it (``kernels.preprocess.prepare`` then
    scales them).
    """
    data = Path(data)
    check_data(task, data)
    if task == "morphology":
        x, y, _ = load_galaxy_zoo(data, spec.image_size[0], spec.crop_fraction, limit, seed,
                                  spec.zoom, spec.resize_filter, spec.antialias)
        return x, y
    if task == "redshift":
        x, z = load_spectra(data, limit, seed)
        if x.shape[1] != int(np.prod(spec.shape)):
            raise AstrocatError(f"spectra have {x.shape[1]} samples; the model needs "
                                f"{int(np.prod(spec.shape))}")
        return x, z[:, None]
    if task == "lens":
        x, y, _ = load_lenses(data, limit, seed)
        y = y[:, None]
    elif task == "cosmology":
        x, y, _ = load_fields(data, limit, seed)
    else:
        raise AstrocatError(f"unknown task '{task}'")
    return np.stack([centre_crop_plane(plane, *spec.image_size) for plane in x]), y


def provenance(data: Path) -> str:
    """What the training data was: the simulation record if astrocat made it."""
    folder = data if data.is_dir() else data.parent
    marker = folder / "simulation.json"
    if marker.is_file():
        info = json.loads(marker.read_text())
        return (f"SIMULATED by astrocat {info.get('astrocat_version', '')}: "
                f"{info.get('command', '')} (not real survey data)")
    return f"user data at {data}"
