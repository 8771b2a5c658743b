"""What every science task module provides, and the small types they share.

A task module (``morphology``, ``redshift``, ``lenses``, ``cosmology``) owns everything
about its task: the catalog columns it reads, its streaming accumulator, its numbers, its
terminal section, its figures, its truth layout and its options. The summary driver and
the CLI only walk the registry in :mod:`astrocat.science`, so a new task is one new module
plus one line there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from astrocat.science.figures import FigureOut, Images
    from astrocat.science.render import Section
    from astrocat.science.truth import Truth, TruthLayout


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
