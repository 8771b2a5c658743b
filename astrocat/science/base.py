"""What every science task module provides, and the small types they share.

A task module (``morphology``, ``redshift``, ``lenses``, ``cosmology``) owns everything
about its task: the catalog columns it reads, its streaming accumulator, its numbers, its
terminal section, its figures, its truth layout and its options. The summary driver and
the CLI only walk the registry in :mod:`astrocat.science`, so a new task is one new module
plus one line there.

Imports run one way inside the package: this module, ``stats``, ``streaming``,
``drawing`` and ``render``'s tables < the task modules < the registry (the package) <
the drivers that walk it (``summary``, ``compare``, ``figures``, ``truth``, ``report``).
A task module imports only from the first group (and ``trust``), never a driver.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from astrocat.science.drawing import FigureOut, Images
    from astrocat.science.render import Section


@dataclass(frozen=True)
class TaskOption:
    """One ``summarize`` option a task owns; the CLI builds its click option from this."""

    name: str  # key in the options mapping; the flag is --name-with-dashes
    default: Any
    help: str
    type: Any = None  # a click ParamType; None: inferred from the default
    in_report: bool = True  # echoed under the report's "options"
    switch: bool = False  # an on/off flag, --name/--no-name (the default is a bool)

    @property
    def flag(self) -> str:
        """The click declaration: --name-with-dashes, or --name/--no-name for a switch."""
        flag = "--" + self.name.replace("_", "-")
        return f"{flag}/--no-{flag[2:]}" if self.switch else flag


@dataclass
class Context:
    """What a task's accumulator may know about the run before the first batch."""

    names: frozenset[str]  # the catalog's columns
    options: dict[str, Any]  # every task option, by name
    truth: Truth | None  # this task's truth file, when one was given
    images: bool  # keep `source` strings for image mosaics (figures wanted)
    seed: int
    notes: list[str] = field(default_factory=list)  # the report's notes, shared
    provenance: dict = field(default_factory=dict)  # the catalog's (models, their TTA views)


class Accumulator(Protocol):
    """Folds record batches into bounded state; ``finish`` turns it into numbers."""

    columns: list[str]  # catalog columns it reads (empty: the task is absent)

    def update(self, batch: pa.RecordBatch, ok: np.ndarray) -> None: ...

    def finish(self) -> tuple[dict, dict] | None:
        """(the report section, the arrays its figures need), or None: nothing to report."""
        ...


@runtime_checkable
class ScienceTask(Protocol):
    """The attributes and functions every task module defines."""

    KEY: str  # report key, truth task name and figure section
    OPTIONS: tuple[TaskOption, ...]
    TRUTH: TruthLayout | None  # its published truth layout (None: truth is a column)

    def start(self, ctx: Context) -> Accumulator: ...

    def section(self, report: dict) -> Section: ...

    def figures(self, data: dict, report: dict, images: Images) -> list[FigureOut]: ...

    def compare(self, ctx: CompareContext) -> Comparison: ...

    def compare_section(self, result: dict) -> Section: ...


def values(batch: pa.RecordBatch, name: str) -> np.ndarray:
    """One column of a batch as numpy (copying only when Arrow must)."""
    return batch.column(name).to_numpy(zero_copy_only=False)


def equals(arr: pa.Array, value: str) -> np.ndarray:
    """Boolean mask of ``arr == value``."""
    return pc.equal(arr, value).to_numpy(zero_copy_only=False).astype(bool)


@dataclass
class CompareContext:
    """What a task's comparison of two catalog versions may know before the first batch."""

    names_a: frozenset[str]  # version A's columns
    names_b: frozenset[str]
    options: dict[str, Any]  # every task option, by name
    examples: int = 10  # objects listed per kind of change


class Comparison(Protocol):
    """Folds joined batches of two versions (``Joined``) into a task's comparison."""

    columns: list[str]  # catalog columns it reads from both versions (empty: absent)

    def update(self, joined: Joined) -> None: ...

    def finish(self, a: dict | None, b: dict | None) -> dict | None:
        """The comparison, given each version's summary section of the task (or None)."""
        ...


@dataclass
class Joined:
    """One batch of rows of versions A and B matched on (source, hdu, row)."""

    batch: pa.RecordBatch  # columns "a.<name>", "b.<name>", and the keys

    def a(self, name: str) -> np.ndarray:
        return values(self.batch, f"a.{name}")

    def b(self, name: str) -> np.ndarray:
        return values(self.batch, f"b.{name}")

    def column(self, side: str, name: str) -> pa.Array:
        return self.batch.column(f"{side}.{name}")

    @property
    def in_a(self) -> np.ndarray:
        return self.batch.column("a.status").is_valid().to_numpy(zero_copy_only=False)

    @property
    def in_b(self) -> np.ndarray:
        return self.batch.column("b.status").is_valid().to_numpy(zero_copy_only=False)

    def ok_in_both(self) -> np.ndarray:
        """Rows that are ok in both versions (the rows whose values can be compared)."""
        return (equals(self.batch.column("a.status").fill_null(""), "ok")
                & equals(self.batch.column("b.status").fill_null(""), "ok"))


# --------------------------------------------------------------------------- truth


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
    layout: TruthLayout = field(kw_only=True, repr=False)  # the file's (``truth.load``)

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
        return id_keys(object_id, self.layout.id_pattern)

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
        lay = self.layout
        notes.append(f"no {lay.noun} in the catalog has an entry in {self.path} ({lay.join})")


def id_keys(object_id: pa.Array | pa.ChunkedArray, pattern: str) -> np.ndarray:
    """Integer join key of each object_id (-1 where it has none): the ``id`` group of
    ``pattern`` (a :class:`TruthLayout`'s ``id_pattern``), vectorised in Arrow."""
    if len(object_id) == 0:
        return np.zeros(0, dtype=np.int64)
    digits = pc.struct_field(pc.extract_regex(object_id, pattern), [0])
    # 19 digits or more may overflow int64: no such IDs exist in these layouts.
    ok = pc.and_kleene(pc.is_valid(digits), pc.less(pc.utf8_length(digits), 19))
    digits = pc.if_else(ok, digits, pa.scalar("-1"))
    return pc.cast(pc.fill_null(digits, "-1"), pa.int64()).to_numpy(zero_copy_only=False)
