"""Reading a catalog back: its schema, its provenance, its rows in bounded batches.

Everything that reads a catalog (``summarize``, and later ``diff``) goes through
``open_catalog``, so a new layout is taught to every reader in one place.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from astrocat.errors import AstrocatError


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

    path: Path
    schema: pa.Schema

    @property
    def provenance(self) -> dict:
        return provenance(self.schema)

    def batches(self, columns: Sequence[str], batch_size: int = 65_536
                ) -> Iterator[pa.RecordBatch]:
        """Record batches of the named columns, in catalog order, never all rows at once."""
        yield from pq.ParquetFile(self.path).iter_batches(batch_size=batch_size,
                                                          columns=list(columns))


def open_catalog(path: str | Path) -> CatalogReader:
    """Open a catalog written by any astrocat version; a clear error if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise AstrocatError(f"no catalog at {path}")
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise AstrocatError(f"{path} is not a readable Parquet catalog ({exc})") from exc
    return CatalogReader(path, schema)
