"""Reading a catalog back, whatever its layout: its schema, its provenance, its rows in
bounded batches.

Everything that reads a catalog (``summarize``, ``diff``) goes through ``open_catalog``,
which recognises a Parquet file (the file layout and catalogs of astrocat 0.1), a dataset
directory, a HATS catalog or collection (the catalog's rows, never its margin cache's
copies), or a store (its ``latest`` version).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from astrocat.catalog import names
from astrocat.catalog.store import LATEST, MANIFEST, STORE_FILE
from astrocat.errors import AstrocatError

HATS_UNPLACED = "_astrocat_unplaced.parquet"  # see catalog.layouts.hats
HATS_COLLECTION = "collection.properties"  # a HATS collection: catalog + margin cache


def provenance(schema: pa.Schema) -> dict:
    """The catalog's provenance record (empty if it has none)."""
    raw = (schema.metadata or {}).get(b"astrocat")
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return {}


@dataclass(frozen=True)
class CatalogReader:
    """An opened catalog: what it holds and a way to stream it."""

    path: Path  # as the user named it
    layout: str  # file | dataset | hats
    files: tuple[Path, ...]  # data files, in reading order
    schema: pa.Schema
    manifest: dict = field(default_factory=dict)  # the published version's, if any

    @property
    def provenance(self) -> dict:
        return provenance(self.schema) or self.manifest.get("provenance", {})

    def batches(self, columns: Sequence[str], batch_size: int = 65_536
                ) -> Iterator[pa.RecordBatch]:
        """Record batches of the named columns, file by file, never all rows at once."""
        for f in self.files:
            yield from pq.ParquetFile(f).iter_batches(batch_size=batch_size,
                                                      columns=list(columns))

    @property
    def num_rows(self) -> int:
        return sum(pq.read_metadata(f).num_rows for f in self.files)


def _schema(path: Path, what: str) -> pa.Schema:
    try:
        return pq.read_schema(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise AstrocatError(f"{what} is not a readable Parquet catalog ({exc})") from exc


def _hats_main(root: Path) -> Path:
    """The main catalog of a HATS collection (``collection.properties`` names it; astrocat
    writes one, with its margin cache), or ``root`` itself for a lone HATS catalog (what
    earlier versions wrote). Read without the ``hats`` library (the [hats] extra)."""
    props = root / HATS_COLLECTION
    if not props.is_file():
        return root
    for line in props.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith(("#", "!")) and \
                key.strip() == "hats_primary_table_url":
            return root / value.strip()  # relative to the collection, or absolute
    raise AstrocatError(f"{props} names no main catalog (hats_primary_table_url)")


def _hats_files(root: Path) -> list[Path]:
    """The main catalog's partitions in HEALPix order (never the margin cache's copies),
    then the rows without sky coordinates."""
    def order(p: Path) -> tuple[int, int]:
        norder = next(x for x in p.parts if x.startswith("Norder="))
        return int(norder.split("=")[1]), int(p.stem.split("=")[1])

    files = sorted((_hats_main(root) / "dataset").rglob("Npix=*.parquet"), key=order)
    return [*files, *([root / HATS_UNPLACED] if (root / HATS_UNPLACED).is_file() else [])]


def version_root(spec: str | Path) -> Path | None:
    """``NAME@N`` / ``NAME@latest``: the directory of that version of the store behind
    ``NAME`` (None if ``spec`` names no version; see :mod:`astrocat.catalog.names`)."""
    return names.version_dir(names.parse(spec))


def open_catalog(path: str | Path) -> CatalogReader:
    """Open a catalog written by any astrocat version: a file, a dataset directory, a HATS
    catalog, a store (its latest version), or any of these ``@N`` / ``@latest``."""
    name = names.parse(path)
    root = names.version_dir(name)
    path = name.path
    if root is None and not path.exists():
        raise AstrocatError(f"no catalog at {path}")
    if root is None and path.is_file():
        return CatalogReader(path, "file", (path,), _schema(path, str(path)))
    root = root or path
    if (root / LATEST).is_dir():  # a store: its latest published version
        root = (root / LATEST).resolve()
    manifest = json.loads((root / MANIFEST).read_text()) if (root / MANIFEST).is_file() else {}
    if any((root / f).is_file() for f in ("properties", "hats.properties", HATS_COLLECTION)):
        files = _hats_files(root)
        layout = "hats"
    elif manifest.get("layout") == "file":  # a store's version of the file layout
        files, layout = [_version_file(root, manifest, str(name))], "file"
    else:
        files = sorted(root.glob("*.parquet"))
        layout = "dataset"
    if not files:
        raise AstrocatError(f"{path} holds no Parquet catalog (neither a file, a dataset "
                            "directory, a HATS catalog nor an astrocat store)")
    common = root / "_common_metadata"
    schema = _schema(common if common.is_file() else files[-1], str(path))
    return CatalogReader(path, layout, tuple(files), schema, manifest)


def _version_file(root: Path, manifest: dict, spec: str) -> Path:
    """The catalog file of a file-layout version. astrocat before 0.2 kept only the
    latest catalog of ``infer --out`` (at OUT itself), not one per version."""
    file = root / manifest.get("file", STORE_FILE)
    if file.is_file():
        return file
    latest = manifest.get("catalog")
    store_latest = root.parent.parent / LATEST
    if latest and Path(latest).is_file() and store_latest.is_symlink() \
            and store_latest.resolve() == root.resolve():
        return Path(latest)  # the latest version of such a store: its catalog is OUT
    raise AstrocatError(
        f"{spec}: version {manifest.get('version', '?')} was published by astrocat "
        f"{manifest.get('astrocat_version', '< 0.2')}, which kept no copy of each version's "
        f"catalog file; only the latest one can be read" + (f" (at {latest})" if latest else ""))
