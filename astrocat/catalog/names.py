"""One way to name a catalog and its versions, the same in every command and in the API.

A name is ``PATH``, ``PATH@N`` or ``PATH@latest``, where ``PATH`` is any of

* what ``astrocat infer --out`` wrote (a Parquet file, or the dataset/HATS link), whose
  versions live in the store ``PATH.parts`` beside it;
* that store itself (``PATH.parts``), or a job's store (``astrocat run``'s ``out``);
* a version's own directory inside a store.

``PATH`` alone is the catalog as it stands (a store: its latest version). ``@N`` and
``@latest`` ask the store behind it. What is not astrocat's is said so, never guessed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from astrocat.catalog.store import HISTORY, LATEST, VERSIONS, Store
from astrocat.errors import AstrocatError

PARTS_SUFFIX = ".parts"
_VERSIONED = re.compile(r"(.+)@(\d+|latest)")


def parts_dir_for(out: Path) -> Path:
    """The store that ``astrocat infer --out OUT`` keeps beside its catalog."""
    return out.with_name(out.name + PARTS_SUFFIX)


def is_store(path: Path) -> bool:
    """A directory an astrocat run keeps its parts and versions in (its own markers)."""
    return path.is_dir() and ((path / VERSIONS).is_dir() or (path / HISTORY).is_file()
                              or (path / LATEST).is_symlink())


@dataclass(frozen=True)
class CatalogName:
    """A parsed name: the path as given, the version asked for (None: as it stands)."""

    path: Path
    version: int | str | None = None  # N, "latest", or None

    def __str__(self) -> str:
        return f"{self.path}@{self.version}" if self.version is not None else str(self.path)


def parse(spec: str | Path) -> CatalogName:
    """``PATH``, ``PATH@N`` or ``PATH@latest`` (a path that exists with an @ in its name
    is that path)."""
    text = str(spec)
    m = _VERSIONED.fullmatch(text)
    if m is None or os.path.lexists(text):
        return CatalogName(Path(text))
    return CatalogName(Path(m[1]), int(m[2]) if m[2].isdigit() else "latest")


def find_store(path: Path) -> Store | None:
    """The store behind ``path`` (see the module's list), or None."""
    if is_store(path):
        return Store(path)
    parts = parts_dir_for(Path(os.path.abspath(path)))
    if is_store(parts):
        return Store(parts)
    if path.exists():  # a version directory, or a link into one
        real = path.resolve()
        for parent in (real, *real.parents):
            if parent.parent.name == VERSIONS and is_store(parent.parent.parent):
                return Store(parent.parent.parent)
    return None


def require_store(path: Path, what: str) -> Store:
    """The store behind ``path``, or an error a person can act on."""
    store = find_store(path)
    if store is not None:
        return store
    if not os.path.lexists(path):
        raise AstrocatError(f"{what}: no store or catalog at {path}")
    raise AstrocatError(
        f"{what}: {path} is not an astrocat catalog with versions: give the --out of "
        f"`astrocat infer` (its versions live in {parts_dir_for(path).name}/ beside it) or "
        "the out of a job file (`astrocat run`)")


def version_number(store: Store, version: int | str, spec: str) -> int:
    """The number of ``version`` (``latest`` or N) in ``store``, checked as kept."""
    kept = store.versions()
    if version == "latest":
        latest = store.latest()
        if latest is None:
            raise AstrocatError(f"{spec}: {store.root} has no published version yet")
        return latest
    if version not in kept:
        record = store.retention()
        why = (f"older ones were removed by the retention of {record} versions"
               if record else "older ones were removed by the store's retention")
        raise AstrocatError(
            f"{spec}: there is no version {version} (versions kept: "
            f"{', '.join(map(str, kept)) or 'none'}; {why}; `astrocat history "
            f"{store.root}` lists every version ever published)")
    return int(version)


def version_dir(name: CatalogName) -> Path | None:
    """The directory of the version a name asks for (None: it asks for none)."""
    if name.version is None:
        return None
    store = require_store(name.path, str(name))
    return store.version_dir(version_number(store, name.version, str(name)))
