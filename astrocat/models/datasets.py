"""Training data in the real published layouts, so real data trains unchanged.

- Galaxy Zoo (Kaggle "Galaxy Challenge"): ``training_solutions_rev1.csv`` plus
  ``<GalaxyID>.jpg`` beside it or in ``images_training_rev1/``.
- Redshift: a spectra table (Parquet/CSV/ECSV/FITS) with 186 fluxes per row (columns
  ``flux_0..`` or an array column ``flux``) and a true redshift column ``z``.
- Lens finding (Bologna challenge): ``imageEUC_VIS-<ID>.fits`` plus a labels CSV with
  columns ``ID, is_lens, ...``.
- Cosmology: 2-D maps as ``.npy`` plus ``fields_truth.csv`` with ``ID, omega_m, sigma_8``
  (file ``field_<ID>.npy``; Quijote 3-D ``df_m_*`` cubes are projected to maps).
- Fine-tuning (``finetune_labels``): a folder per class (``DIR/<class>/*.jpg``, as Keras'
  ``image_dataset_from_directory`` reads it), or a labels CSV (the Kaggle Galaxy Zoo
  layout, Zoobot / GZ DESI catalogs) of class labels or vote fractions.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from astrocat.errors import AstrocatError
from astrocat.kernels.gz_tree import galaxy_zoo2
from astrocat.kernels.preprocess import centre_crop_plane
from astrocat.kinds import PLANE_KINDS, Kind
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
    folder = kaggle_image_folder(labels)
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


def kaggle_image_folder(labels: Path) -> Path:
    """Where the Kaggle layout keeps a labels CSV's images: ``images_training_rev1/``
    beside it when there is one, else the CSV's own folder."""
    folder = Path(labels).parent
    return folder / "images_training_rev1" if (folder / "images_training_rev1").is_dir() \
        else folder


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


# --------------------------------------------------------------------------- fine-tuning

#: The image files fine-tuning reads, per input kind of the parent model (a folder per
#: class holds these; other files are left alone, as Keras does).
IMAGE_SUFFIXES: dict[Kind, tuple[str, ...]] = {
    Kind.RGB_IMAGE: (".jpg", ".jpeg", ".png"),
    **{k: (".fits", ".fit", ".fts", ".fits.gz", ".fits.fz", ".npy") for k in PLANE_KINDS},
}
#: Columns of a labels CSV that name each item's image file (Zoobot and GZ DESI catalogs:
#: ``file_loc``), by precedence; matched without regard to case.
FILE_COLUMNS = ("file_loc", "local_png_loc", "png_loc", "jpg_loc", "file", "filename",
                "file_name", "filepath", "file_path", "path", "image", "image_path")
#: Columns that identify each item, whose image is ``<id>.jpg`` (or .png ...) beside the
#: CSV, in ``images_training_rev1/`` (Kaggle), or anywhere below the CSV's folder
#: (``J000/J000003.51+000025.6.png``: GZ DESI), by precedence.
ID_COLUMNS = ("GalaxyID", "id_str", "iauname", "dr8_id", "objid", "object_id", "id", "ID")


@dataclass(frozen=True)
class Labels:
    """What a model is fine-tuned to give, read before any image or TensorFlow is."""

    files: list[Path]  # one image per item
    y: np.ndarray  # (n, k) float32: one-hot classes, or vote fractions in [0, 1]
    outputs: list[str]  # the new model's output names, one per column of y
    sources: list[str]  # per output: its class (folder or label) or its CSV column
    kind: str  # "classes" (softmax) or "fractions" (sigmoid)
    described: str  # how they were read, for the card
    skipped: list[str]  # what was left out and why (rows without an image or a label)


def output_name(text: str) -> str:
    """``text`` as a catalog column name: lowercase, runs of other characters than
    [a-z0-9_] as one "_" ("Class1.1" -> "class1_1", "Barred spiral" -> "barred_spiral")."""
    return re.sub(r"[^a-z0-9_]+", "_", text.strip().lower()).strip("_")


def _check_outputs(names: list[str], sources: list[str], where: str) -> None:
    """The card's rules for output names (``card._outputs``), said in terms of the data."""
    from astrocat.catalog.schema import BASE_NAMES, TRUST_NAMES

    seen: dict[str, str] = {}
    for name, source in zip(names, sources, strict=True):
        if name in ("", "p_"):
            raise AstrocatError(f"{where}: {source!r} gives no usable output name (letters "
                                "or digits are needed); rename it")
        if name in BASE_NAMES or name in TRUST_NAMES:
            raise AstrocatError(f"{where}: {source!r} would be output '{name}', a column "
                                "astrocat writes itself; rename it")
        if name in seen:
            raise AstrocatError(f"{where}: {seen[name]!r} and {source!r} both become output "
                                f"'{name}' (outputs are lowercase letters, digits and _); "
                                "rename one")
        seen[name] = source


def _images_in(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
                  and p.name.lower().endswith(suffixes))


def _class_folders(data: Path, suffixes: tuple[str, ...]) -> dict[str, list[Path]]:
    """Each sub-folder holding images (at any depth below it), by name, sorted as
    ``image_dataset_from_directory`` sorts its classes."""
    found = {}
    for sub in sorted(p for p in data.iterdir() if p.is_dir() and not p.name.startswith(".")):
        images = _images_in(sub, suffixes)
        if images:
            found[sub.name] = images
    return found


def _labels_csv(data: Path) -> Path | None:
    """The labels CSV in a folder: ``training_solutions_rev1.csv`` (Kaggle), else the
    only CSV there; None when there is none."""
    if (data / "training_solutions_rev1.csv").is_file():
        return data / "training_solutions_rev1.csv"
    csvs = sorted(p for p in data.glob("*.csv") if not p.name.startswith("."))
    if len(csvs) > 1:
        raise AstrocatError(f"{data} holds several CSVs ({', '.join(p.name for p in csvs[:4])}"
                            "): pass the one with the labels as --data")
    return csvs[0] if csvs else None


def finetune_labels(data: Path, kind: Kind, label_columns: Sequence[str] | None = None,
                    limit: int | None = None, seed: int = 0) -> Labels:
    """The items and labels of a fine-tuning set, for a parent model taking ``kind``:

    * a folder per class (``DIR/spirals/*.jpg``, ``DIR/others/*.jpg``): classes sorted by
      folder name, outputs ``p_<folder>`` (one-hot, softmax);
    * a labels CSV (``--data`` the file, or the only CSV in ``DIR``): an id or file column
      (``ID_COLUMNS``, ``FILE_COLUMNS``) and either one column of class labels (strings:
      outputs ``p_<label>``) or columns of vote fractions in [0, 1] (outputs named after
      the columns), ``label_columns`` or by default every numeric column but the id.

    Everything here is cheap (file names and the CSV): a wrong layout is said before
    TensorFlow loads.
    """
    data = Path(data)
    if kind not in IMAGE_SUFFIXES:
        raise AstrocatError(f"fine-tuning reads images; a {kind.value} model cannot be "
                            "fine-tuned by astrocat yet")
    if not data.exists():
        raise AstrocatError(f"{data} does not exist")
    suffixes = IMAGE_SUFFIXES[kind]
    if data.is_dir():
        folders = _class_folders(data, suffixes)
        labels = _labels_csv(data) if label_columns or len(folders) < 2 else None
        if labels is None and len(folders) >= 2:
            got = _from_folders(data, folders)
        elif labels is not None:
            got = _from_csv(labels, suffixes, label_columns)
        elif folders:
            (only, images), = folders.items()
            raise AstrocatError(
                f"{data} holds one class folder ({only}/, {len(images)} images): "
                f"fine-tuning a classifier needs at least two (e.g. {data / only}/*.jpg "
                f"and {data / 'others'}/*.jpg), or a labels CSV")
        else:
            raise AstrocatError(
                f"{data} holds neither class folders ({data}/<class>/*"
                f"{suffixes[0]}, one per class) nor a labels CSV")
    else:
        if _sniff_quietly(data) != "csv":
            raise AstrocatError(f"--data {data}: fine-tuning reads a folder with one "
                                "sub-folder of images per class, or a labels CSV")
        got = _from_csv(data, suffixes, label_columns)
    if limit is not None and limit < len(got.files):
        idx = _limit(len(got.files), limit, seed)
        got = Labels([got.files[i] for i in idx], got.y[idx], got.outputs, got.sources,
                     got.kind, f"{got.described}; {limit} of {len(got.files)} used (--limit)",
                     got.skipped)
    return got


def _from_folders(data: Path, folders: dict[str, list[Path]]) -> Labels:
    names = list(folders)
    outputs = [f"p_{output_name(c)}" for c in names]
    _check_outputs(outputs, names, f"{data}: class folder")
    files = [p for c in names for p in folders[c]]
    y = np.zeros((len(files), len(names)), np.float32)
    y[np.arange(len(files)), np.repeat(np.arange(len(names)), [len(folders[c]) for c in names])] = 1
    counts = ", ".join(f"{c} {len(folders[c])}" for c in names)
    return Labels(files, y, outputs, names, "classes",
                  f"a folder per class ({counts} images)", [])


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _column(names: list[str], candidates: Sequence[str]) -> str | None:
    lower = {n.lower(): n for n in names}
    return next((lower[c.lower()] for c in candidates if c.lower() in lower), None)


class _ImageFinder:
    """An item's image from its file column (absolute, relative to the CSV, or its base
    name among the images) or its id (``<id>.<suffix>``)."""

    def __init__(self, labels: Path, suffixes: tuple[str, ...]) -> None:
        self.base, self.folder, self.suffixes = labels.parent, kaggle_image_folder(labels), suffixes
        self._index: dict[str, Path] | None = None

    def index(self) -> dict[str, Path]:
        if self._index is None:  # once, and only when a direct look-up misses
            self._index = {}
            for p in _images_in(self.base, self.suffixes):
                self._index.setdefault(p.name, p)
                self._index.setdefault(p.name[: -len(_suffix(p.name, self.suffixes))], p)
        return self._index

    def by_file(self, value: str) -> Path | None:
        p = Path(value)
        for candidate in (p, self.base / p, self.folder / p.name):
            if candidate.is_file():
                return candidate
        return self.index().get(p.name)

    def by_id(self, value: str) -> Path | None:
        for suffix in self.suffixes:
            if (self.folder / f"{value}{suffix}").is_file():
                return self.folder / f"{value}{suffix}"
        return self.index().get(value)


def _suffix(name: str, suffixes: tuple[str, ...]) -> str:
    return next(s for s in sorted(suffixes, key=len, reverse=True) if name.lower().endswith(s))


def _from_csv(path: Path, suffixes: tuple[str, ...],
              label_columns: Sequence[str] | None) -> Labels:
    import difflib

    rows = _read_csv(path)
    header = list(rows[0]) if rows else []
    if not rows:
        raise AstrocatError(f"{path}: no rows")
    file_col, id_col = _column(header, FILE_COLUMNS), _column(header, ID_COLUMNS)
    key = file_col or id_col
    if key is None:
        raise AstrocatError(f"{path}: no column naming each item's image: one of "
                            f"{', '.join(ID_COLUMNS)} (its image <id>{suffixes[0]}) or "
                            f"{', '.join(FILE_COLUMNS[:6])}, ... (a file name or path)")
    not_labels = {c for c in header if c.lower() in {x.lower() for x in
                                                     (*FILE_COLUMNS, *ID_COLUMNS)}}
    numeric = {c: [_number(r[c] or "nan") for r in rows] for c in header}
    numeric = {c: v for c, v in numeric.items() if all(x is not None for x in v)}
    if label_columns:
        missing = [c for c in label_columns if c not in header]
        for c in missing:
            near = difflib.get_close_matches(c, header, n=1)
            raise AstrocatError(f"--label-columns: {path} has no column {c!r}"
                                + (f" (did you mean {near[0]!r}?)" if near else "")
                                + f"; it has {', '.join(header[:12])}"
                                + (", ..." if len(header) > 12 else ""))
        chosen = list(dict.fromkeys(label_columns))
    else:
        chosen = [c for c in header if c not in not_labels and c in numeric]
        if not chosen:
            text = [c for c in header if c not in not_labels]
            if len(text) != 1:
                raise AstrocatError(
                    f"{path}: no numeric label columns; choose the labels with "
                    "--label-columns (one column of class names, or columns of vote "
                    f"fractions) among {', '.join(text[:12])}")
            chosen = text
    finder = _ImageFinder(path, suffixes)
    find = finder.by_file if key == file_col else finder.by_id
    files, keep, lost = [], [], []
    for i, r in enumerate(rows):
        found = find(r[key].strip()) if r[key] and r[key].strip() else None
        if found is None:
            lost.append(r[key])
        else:
            files.append(found)
            keep.append(i)
    if not files:
        looked = (f"{finder.folder}/<{key}>{suffixes[0]} (and {', '.join(suffixes[1:])}), "
                  f"and by name anywhere below {finder.base}" if key == id_col else
                  f"as given, relative to {finder.base}, and by name below it")
        raise AstrocatError(f"{path}: none of the {len(rows)} rows' {key} values (e.g. "
                            f"{rows[0][key]!r}) matches an image; looked {looked}")
    skipped = ([f"{len(lost)} of {len(rows)} rows of {path.name} have no image (e.g. "
                f"{key} {lost[0]!r})"] if lost else [])
    if len(chosen) == 1 and chosen[0] not in numeric:
        return _csv_classes(path, [rows[i] for i in keep], files, chosen[0], key, skipped)
    text = [c for c in chosen if c not in numeric]
    if text:
        raise AstrocatError(f"{path}: column {text[0]!r} is not numeric: vote-fraction "
                            "columns hold numbers in [0, 1]; class labels are one column of "
                            "names (--label-columns that column alone)")
    y = np.array([[numeric[c][i] for c in chosen] for i in keep], dtype=np.float64)
    finite = np.isfinite(y).all(axis=1)
    if not finite.all():
        skipped.append(f"{int((~finite).sum())} rows of {path.name} with an empty label")
        files = [f for f, ok in zip(files, finite, strict=True) if ok]
        y = y[finite]
    for j, c in enumerate(chosen):
        if len(y) and not (0.0 <= y[:, j].min() and y[:, j].max() <= 1.0):
            raise AstrocatError(
                f"{path}: column {c!r} holds values outside [0, 1] ({y[:, j].min():.4g} to "
                f"{y[:, j].max():.4g}): fine-tuning reads vote fractions in [0, 1] or one "
                "column of class names; choose the columns with --label-columns")
    outputs = [output_name(c) for c in chosen]
    _check_outputs(outputs, chosen, f"{path}: column")
    return Labels(files, y.astype(np.float32), outputs, chosen, "fractions",
                  f"vote fractions from {path.name} ({', '.join(chosen[:8])}"
                  f"{', ...' if len(chosen) > 8 else ''}; images by {key})", skipped)


def _csv_classes(path: Path, rows: list[dict[str, str]], files: list[Path], column: str,
                 key: str, skipped: list[str]) -> Labels:
    values = [(r[column] or "").strip() for r in rows]
    have = [i for i, v in enumerate(values) if v]
    if len(have) < len(values):
        skipped = [*skipped, f"{len(values) - len(have)} rows of {path.name} with no "
                   f"{column}"]
    classes = sorted({values[i] for i in have})
    if len(classes) < 2:
        raise AstrocatError(f"{path}: column {column!r} holds {len(classes)} class(es) "
                            f"({', '.join(classes)}): a classifier needs at least two")
    outputs = [f"p_{output_name(c)}" for c in classes]
    _check_outputs(outputs, classes, f"{path}: class")
    index = {c: j for j, c in enumerate(classes)}
    y = np.zeros((len(have), len(classes)), np.float32)
    y[np.arange(len(have)), [index[values[i]] for i in have]] = 1
    counts = ", ".join(f"{c} {int(y[:, j].sum())}" for j, c in enumerate(classes[:8]))
    return Labels([files[i] for i in have], y, outputs, classes, "classes",
                  f"class labels from column {column} of {path.name} ({counts}"
                  f"{', ...' if len(classes) > 8 else ''}; images by {key})", skipped)


def load_images(files: Sequence[Path], spec: InputSpec) -> np.ndarray:
    """Images read and cropped for ``spec`` as ``load_task`` reads them for training (and
    ``infer`` for inference): RGB through ``read_rgb``, planes centre-cropped."""
    if spec.kind == Kind.RGB_IMAGE:
        return np.stack(_parallel(lambda p: readers.read_rgb(
            str(p), spec.image_size[0], spec.crop_fraction, spec.zoom, spec.resize_filter,
            spec.antialias), files))

    def plane(p: Path) -> np.ndarray:
        if p.name.lower().endswith(".npy"):
            data = readers.read_plane(str(p), "npy", None).data
        else:
            data = readers.read_plane(str(p), "fits_image", _first_image_hdu(p)).data
        return centre_crop_plane(data, *spec.image_size)

    return np.stack(_parallel(plane, files))

