"""The file layout: one Parquet file, materialised from the parts in plan order.

Batches are buffered across parts into row groups of ``ROW_GROUP_ROWS`` (the last may be
smaller): readers plan per row group, and Parquet's advice is 64k to 1M rows each. Memory
holds one row group at most; the file appears at its path in one ``os.replace``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from astrocat.catalog.layouts.publication import Publication, PublishContext, prepare
from astrocat.catalog.writer import parquet_options

ROW_GROUP_ROWS = 131_072


def write(pub: Publication, out: Path, row_group_rows: int = ROW_GROUP_ROWS,
          parts: Sequence[Path] | None = None, schema: pa.Schema | None = None) -> dict:
    """Stream ``pub`` (or only its ``parts``) into ``out`` atomically, under ``schema``
    (default: the catalog's, with provenance); statistics of the file written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    rows = groups = buffered = 0
    buf: list[pa.RecordBatch] = []
    schema = schema or pub.schema()
    try:
        with pq.ParquetWriter(tmp, schema, **parquet_options(schema)) as writer:
            for batch in pub.batches(parts):
                buf.append(batch)
                buffered += batch.num_rows
                rows += batch.num_rows
                if buffered >= row_group_rows:  # write whole groups; the rest waits
                    table = pa.Table.from_batches(buf)
                    full = buffered - buffered % row_group_rows
                    writer.write_table(table.slice(0, full), row_group_size=row_group_rows)
                    groups += full // row_group_rows
                    rest = table.slice(full)
                    buf, buffered = rest.to_batches(), rest.num_rows
            if buffered:
                writer.write_table(pa.Table.from_batches(buf), row_group_size=buffered)
                groups += 1
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return {"rows": rows, "files": 1, "row_groups": groups}


def publish(pub: Publication, dest: Path, ctx: PublishContext) -> dict:
    return write(pub, dest, ctx.options.get("row_group_rows", ROW_GROUP_ROWS))


def commit(out: Path, parts: Sequence[Path], output_names: Sequence[str],
           provenance: Mapping[str, object]) -> int:
    """Parts -> one catalog file at ``out``; returns rows written (for scripts and tests)."""
    return write(prepare(parts, output_names, dict(provenance)), Path(out))["rows"]
