"""Truth files for ``astrocat summarize --truth``: which task a CSV is for, and the join.

Truth comes in the real published layouts (the same ones ``astrocat simulate`` writes),
so a user with the real data passes the files as they were downloaded. Each task module
declares its layout as data (a :class:`TruthLayout`: the columns that identify it, the
ID column, the value columns, how an ``object_id`` becomes the integer ID); this module
only reads files and joins. A task is recognised by its columns, not by the file name,
because people rename files. The types (:class:`TruthLayout`, :class:`Truth`) are
:mod:`astrocat.science.base`'s, re-exported here: the task modules use them, and this
module walks the registry that imports the task modules.

Only numbers are kept (int64 IDs sorted for ``searchsorted``, float32 values), so a
61,578-row Kaggle file costs about 9 MB.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from astrocat.errors import AstrocatError
from astrocat.science.base import Truth, TruthLayout, id_keys


def layouts() -> list[TruthLayout]:
    """Every registered task's layout, in registry order (detection tries them in turn)."""
    from astrocat.science import TASKS

    return [t.TRUTH for t in TASKS if t.TRUTH is not None]


def _layout(task: str) -> TruthLayout:
    for lay in layouts():
        if lay.task == task:
            return lay
    raise KeyError(task)


def detect_task(names: list[str] | set[str]) -> str | None:
    """The task a truth table is for, from its columns (the published layouts)."""
    lay = _detect(set(names))
    return lay.task if lay else None


def _detect(names: set[str]) -> TruthLayout | None:
    return next((lay for lay in layouts() if lay.signature <= names), None)


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
    lay = _detect(set(header))
    if lay is None:
        known = "; ".join(x.hint for x in layouts() if x.hint)
        raise AstrocatError(f"--truth {path}: columns {header[:6]} match no known layout "
                            f"({known})")
    missing = [c for c in lay.columns if c not in header]
    if missing:
        raise AstrocatError(f"--truth {path}: {lay.label} columns missing: {missing[:5]}")
    columns = [*lay.columns, *(c for c in lay.optional if c in header)]
    id_col = lay.id_column
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
    return Truth(lay.task, path, ids.astype(np.int64), list(columns), values[first],
                 n_duplicates=len(raw_ids) - len(ids), layout=lay)


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
    """Integer join key of each object_id (-1 where it has none) under ``task``'s layout."""
    if len(object_id) == 0:
        return np.zeros(0, dtype=np.int64)
    return id_keys(object_id, _layout(task).id_pattern)
