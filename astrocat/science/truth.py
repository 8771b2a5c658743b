"""Truth files for ``astrocat summarize --truth``: which task a CSV is for, and the join.

Truth comes in the real published layouts (the same ones ``astrocat simulate`` writes),
so a user with the real data passes the files as they were downloaded. Each task module
declares its layout as data (a :class:`TruthLayout`: the columns that identify it, the
ID column, the value columns, how an ``object_id`` becomes the integer ID); this module
only reads files and joins. A task is recognised by its columns, not by the file name,
because people rename files.

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


@dataclass(frozen=True)
class TruthLayout:
    """A published truth table, described as data by the task module it belongs to."""

    task: str  # the task's KEY
    signature: frozenset[str]  # columns whose presence identifies the layout
    id_column: str
    columns: tuple[str, ...]  # value columns that must be present
    optional: tuple[str, ...] = ()  # value columns kept when present
    id_pattern: str = r"(?P<id>\d+)$"  # object_id -> integer ID (the `id` group)
    hint: str = ""  # "GalaxyID,Class1.1,... for morphology": for "matches no known layout"
    label: str = ""  # what its value columns are called, for "columns missing"
    noun: str = "object"  # one catalog row of this task, for "no <noun> ... has an entry"
    join: str = "joined on the trailing integer of object_id"  # how rows meet the file


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

    def keys(self, object_id: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """The integer join key of each object_id under this truth's layout."""
        return object_keys(object_id, self.task)

    def match(self, keys: np.ndarray, notes: list[str]) -> np.ndarray | None:
        """Row of each key (-1: none), or None with a note when no key has truth at all."""
        rows = self.lookup(keys)
        if (rows >= 0).any():
            return rows
        self.note_unmatched(notes)
        return None

    def note_unused(self, notes: list[str], lacking: str) -> None:
        """Say that this truth was given for a task the catalog has no outputs of."""
        notes.append(f"{self.task} truth {self.path} given but the catalog has {lacking}")

    def note_unmatched(self, notes: list[str]) -> None:
        """Say that the truth file and the catalog share no object."""
        lay = _layout(self.task)
        notes.append(f"no {lay.noun} in the catalog has an entry in {self.path} ({lay.join})")


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
    digits = pc.struct_field(pc.extract_regex(object_id, _layout(task).id_pattern), [0])
    # 19 digits or more may overflow int64: no such IDs exist in these layouts.
    ok = pc.and_kleene(pc.is_valid(digits), pc.less(pc.utf8_length(digits), 19))
    digits = pc.if_else(ok, digits, pa.scalar("-1"))
    return pc.cast(pc.fill_null(digits, "-1"), pa.int64()).to_numpy(zero_copy_only=False)
