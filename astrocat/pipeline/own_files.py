"""astrocat's own files are never survey inputs, wherever they sit under ``--input``.

Recognised by astrocat's markers, one look per directory (never by opening every file):

* this run's catalog, its store and their temporaries (``--out`` inside ``--input``);
* any store (``OUT.parts/``, a job's store): parts, versions, manifests, history, lock,
  logs, run records;
* a catalog file with its store beside it (``cat.parquet`` beside ``cat.parquet.parts/``);
* a simulated survey's record (``simulation.json``) and the truth tables it names.

A Parquet catalog carried away from its store is recognised by its footer where tables
are described (``sources.describe``). Each skip is counted by its reason.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

from astrocat.catalog.names import PARTS_SUFFIX, is_store

SIMULATION_RECORD = "simulation.json"
#: The truth tables each simulated kind writes beside its survey, for records written
#: before ``simulation.json`` named them (astrocat < 0.2).
SIMULATED_TRUTH = {"galaxies": ("training_solutions_rev1.csv",),
                   "lenses": ("lens_labels.csv",), "fields": ("fields_truth.csv",)}

STORE = "an astrocat store (parts, versions, logs)"
CATALOG = "an astrocat catalog"
SIMULATION = "a simulated survey's record or truth table"


def simulation_truth(record: dict) -> tuple[str, ...]:
    """The truth tables a ``simulation.json`` record names (or its kind's defaults)."""
    named = record.get("truth_files")
    if isinstance(named, list):
        return tuple(str(n) for n in named)
    return SIMULATED_TRUTH.get(str(record.get("kind")), ())


class OwnFiles:
    """``own(path)`` is the reason an absolute path is astrocat's own file, or None;
    ``counts`` holds the skips by reason. Paths are compared as real paths."""

    def __init__(self, out: Path, parts_dir: Path) -> None:
        self.out, self.parts = str(out), os.path.join(str(parts_dir), "")
        self.tmp = f".{out.name}.tmp-"
        self.real: dict[str, str] = {}  # directory -> its real path
        self.dir_reason: dict[str, str | None] = {}  # real directory -> reason or None
        self.simulated: dict[str, frozenset[str]] = {}  # real directory -> own names
        self.parts_names: dict[str, frozenset[str] | None] = {}  # real directory -> *.parts
        self.counts: Counter = Counter()

    def __call__(self, path: str, link: bool | None = None) -> str | None:
        """``link``: whether ``path`` is a symbolic link, where the caller already knows
        (its ``lstat``); the driver asks this of every input, so each saved system call
        counts."""
        reason = self._reason(path, link)
        if reason is not None:
            self.counts[reason] += 1
        return reason

    def _reason(self, path: str, link: bool | None) -> str | None:
        head, name = os.path.split(path)
        if (real := self.real.get(head)) is None:
            real = self.real[head] = os.path.realpath(head)
        full = os.path.join(real, name)
        if os.path.islink(full) if link is None else link:
            full = os.path.realpath(full)
            real, name = os.path.split(full)
        if full == self.out or full.startswith(self.parts) or name.startswith(self.tmp):
            return CATALOG if full == self.out else STORE
        if self._in_store(real):
            return STORE
        if name in self._simulated(real):
            return SIMULATION
        beside = full + PARTS_SUFFIX
        stores = self._parts_beside(real)
        if (name + PARTS_SUFFIX in stores if stores is not None else os.path.isdir(beside)) \
                and is_store(Path(beside)):
            return CATALOG
        return None

    def _parts_beside(self, real_dir: str) -> frozenset[str] | None:
        """Names in ``real_dir`` that end like a store (``OUT.parts``), from one listing
        per directory (cached); None where it cannot be listed (then each file's
        neighbour is looked up itself). A ``stat`` beside every input cost the driver
        0.11 s per 20,000 files."""
        if real_dir not in self.parts_names:
            try:
                with os.scandir(real_dir) as entries:
                    names = frozenset(e.name for e in entries if e.name.endswith(PARTS_SUFFIX))
            except OSError:
                names = None
            self.parts_names[real_dir] = names
        return self.parts_names[real_dir]

    def _in_store(self, real_dir: str) -> bool:
        """Whether ``real_dir`` or a directory above it is a store (cached per directory)."""
        if real_dir in self.dir_reason:
            return self.dir_reason[real_dir] is not None
        parent = os.path.dirname(real_dir)
        inside = (is_store(Path(real_dir)) or _looks_like_unpublished_store(real_dir)
                  or (parent != real_dir and self._in_store(parent)))
        self.dir_reason[real_dir] = STORE if inside else None
        return inside

    def _simulated(self, real_dir: str) -> frozenset[str]:
        if (names := self.simulated.get(real_dir)) is None:
            names = frozenset()
            record = os.path.join(real_dir, SIMULATION_RECORD)
            if os.path.isfile(record):
                try:
                    info = json.loads(Path(record).read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    info = None
                if isinstance(info, dict) and "astrocat_version" in info:
                    names = frozenset({SIMULATION_RECORD, *simulation_truth(info)})
            self.simulated[real_dir] = names
        return names


def _looks_like_unpublished_store(real_dir: str) -> bool:
    """A store whose first run has not published yet: ``OUT.parts/`` holding its lock."""
    return real_dir.endswith(PARTS_SUFFIX) and os.path.isfile(os.path.join(real_dir, "lock"))
