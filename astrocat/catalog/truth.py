"""Truth files for ``astrocat summarize --truth``: which task a CSV is for, and the join.

Truth comes in the real published layouts (the same ones ``astrocat simulate`` writes),
so a user with the real data passes the files as they were downloaded:

* Galaxy Zoo 2 (Kaggle "Galaxy Challenge"): ``training_solutions_rev1.csv`` with
  ``GalaxyID, Class1.1 ... Class11.6``; joined on ``GalaxyID == object_id``.
* Bologna Lens Finding Challenge: ``ID, is_lens, ...``; joined on the trailing integer of
  ``object_id`` (``imageEUC_VIS-200001`` -> 200001).
* Density fields: ``ID, omega_m, sigma_8``; joined on the trailing integer of
  ``field_<ID>``.

A task is recognised by its columns, not by the file name, because people rename files.
Only numbers are kept (int64 IDs sorted for ``searchsorted``, float32 values), so a
61,578-row Kaggle file costs about 9 MB.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from astrocat.errors import AstrocatError
from astrocat.kernels.gz_tree import galaxy_zoo2

MORPHOLOGY, LENS, COSMOLOGY = "morphology", "lens", "cosmology"

#: object_id -> integer key, per task. Galaxy IDs are the whole stem; lens and field IDs
#: are the stem's trailing integer (imageEUC_VIS-<ID>, field_<ID>).
ID_PATTERNS = {MORPHOLOGY: r"^(?P<id>\d+)$", LENS: r"(?P<id>\d+)$", COSMOLOGY: r"(?P<id>\d+)$"}


@dataclass
class Truth:
    """One task's truth: sorted integer IDs and a float32 value matrix (rows follow IDs)."""

    task: str
    path: Path
    ids: np.ndarray  # int64, sorted ascending, unique
    columns: list[str]  # value column names in the file's spelling
    values: np.ndarray  # float32 (n, len(columns))
    n_duplicates: int = 0
    extra: dict = field(default_factory=dict)

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Row of each key in ``values``, -1 where the key has no truth."""
        keys = np.asarray(keys, dtype=np.int64)
        if len(self.ids) == 0:
            return np.full(len(keys), -1, dtype=np.int64)
        pos = np.searchsorted(self.ids, keys)
        pos = np.minimum(pos, len(self.ids) - 1)
        return np.where(self.ids[pos] == keys, pos, -1)

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.columns.index(name)]


def detect_task(names: list[str] | set[str]) -> str | None:
    """The task a truth table is for, from its columns (the published layouts)."""
    names = set(names)
    if {"GalaxyID", "Class1.1"} <= names:
        return MORPHOLOGY
    if {"ID", "is_lens"} <= names:
        return LENS
    if {"ID", "omega_m", "sigma_8"} <= names:
        return COSMOLOGY
    return None


def _header(path: Path) -> list[str]:
    if not path.is_file():
        raise AstrocatError(f"--truth {path}: no such file")
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            return [h.strip().strip('"') for h in f.readline().split(",")]
    except OSError as exc:
        raise AstrocatError(f"--truth {path}: not readable ({exc})") from exc


def load(path: str | Path) -> Truth:
    """Read one truth CSV, recognise its task, and index it by integer ID.

    Streamed in blocks with only the needed columns, parsed straight to int64 IDs and
    float32 values: a million-row truth file never exists as a float64 table in memory.
    """
    from pyarrow import csv

    path = Path(path)
    header = _header(path)
    task = detect_task(header)
    if task is None:
        raise AstrocatError(
            f"--truth {path}: columns {header[:6]} match no known layout "
            "(GalaxyID,Class1.1,... for morphology; ID,is_lens,... for lenses; "
            "ID,omega_m,sigma_8 for density fields)"
        )
    id_col = "GalaxyID" if task == MORPHOLOGY else "ID"
    if task == MORPHOLOGY:
        columns = galaxy_zoo2().kaggle_columns
        missing = [c for c in columns if c not in header]
        if missing:
            raise AstrocatError(f"--truth {path}: Galaxy Zoo columns missing: {missing[:5]}")
    elif task == LENS:
        columns = [c for c in ("is_lens", "Einstein_area", "numb_pix_lensed_image",
                               "flux_lensed_image_in_sigma") if c in header]
    else:
        columns = ["omega_m", "sigma_8"]
    opts = csv.ConvertOptions(include_columns=[id_col, *columns],
                              column_types={id_col: pa.int64(),
                                            **{c: pa.float32() for c in columns}})
    id_parts, value_parts = [], []
    try:
        with csv.open_csv(path, convert_options=opts) as reader:
            for batch in reader:
                id_parts.append(batch.column(id_col).to_numpy(zero_copy_only=False))
                value_parts.append(np.column_stack([
                    batch.column(c).to_numpy(zero_copy_only=False) for c in columns]))
    except (pa.ArrowInvalid, OSError) as exc:
        raise AstrocatError(f"--truth {path}: {id_col} must be integers and "
                            f"{', '.join(columns[:3])}... numbers ({exc})") from exc
    raw_ids = np.concatenate(id_parts) if id_parts else np.zeros(0, np.int64)
    values = (np.concatenate(value_parts) if value_parts
              else np.zeros((0, len(columns)), np.float32)).astype(np.float32, copy=False)
    del id_parts, value_parts
    ids, first = np.unique(raw_ids, return_index=True)  # sorted; first occurrence wins
    return Truth(task, path, ids.astype(np.int64), list(columns), values[first],
                 n_duplicates=len(raw_ids) - len(ids))


def load_all(paths: list[str | Path]) -> dict[str, Truth]:
    """Each ``--truth`` file, keyed by task; two files for one task is an error."""
    out: dict[str, Truth] = {}
    for p in paths:
        t = load(p)
        if t.task in out:
            raise AstrocatError(f"--truth: two {t.task} files ({out[t.task].path} and {p}); "
                                "give one per task")
        out[t.task] = t
    return out


def object_keys(object_id: pa.Array | pa.ChunkedArray, task: str) -> np.ndarray:
    """Integer join key of each object_id (-1 where it has none), vectorised in Arrow."""
    if len(object_id) == 0:
        return np.zeros(0, dtype=np.int64)
    digits = pc.struct_field(pc.extract_regex(object_id, ID_PATTERNS[task]), [0])
    # 19 digits or more may overflow int64: no such IDs exist in these layouts.
    ok = pc.and_kleene(pc.is_valid(digits), pc.less(pc.utf8_length(digits), 19))
    digits = pc.if_else(ok, digits, pa.scalar("-1"))
    return pc.cast(pc.fill_null(digits, "-1"), pa.int64()).to_numpy(zero_copy_only=False)
