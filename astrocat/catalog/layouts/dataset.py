"""The dataset layout: a directory of Parquet files with ``_metadata`` and
``_common_metadata``, readable by ``pyarrow.dataset``, DuckDB, polars and pandas.

Its files are *segments*: runs of consecutive parts compacted into one file of about
``SEGMENT_ROWS`` rows, every one under the catalog's one explicit schema. A segment's
name hashes the parts it holds and the schema, and its boundaries are content-defined
(a segment ends after a part whose key hashes to 0 modulo a stride), so a re-run that
changes a few parts rebuilds a few segments; the others are reused as they are. Segments
are built on the Dask workers; publishing a version hard-links them into the version's
directory and writes the two metadata files from their footers: O(files), never a copy of
every row. Provenance lives in ``_common_metadata`` only, so that segments are shared
between versions.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from astrocat.catalog.layouts import file
from astrocat.catalog.layouts.publication import Publication, PublishContext
from astrocat.catalog.writer import part_stats

SEGMENT_ROWS = 1_048_576  # target rows per file
ROW_GROUP_ROWS = 131_072


@dataclass(frozen=True)
class Segment:
    key: str
    parts: tuple[Path, ...]
    rows: int

    @property
    def name(self) -> str:
        return f"seg-{self.key}.parquet"


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def plan_segments(pub: Publication, target: int = SEGMENT_ROWS) -> list[Segment]:
    """Consecutive parts grouped into segments with content-defined boundaries."""
    if not pub.parts:
        return []
    mean_rows = max(1, sum(pub.rows) // len(pub.parts))
    stride = 1 << max(0, (target // mean_rows).bit_length() - 1)  # a power of two: stable
    schema_id = hashlib.sha256(pub.schema(provenance=False).to_string().encode()).hexdigest()
    out, group, rows = [], [], 0

    def close() -> None:
        nonlocal group, rows
        h = hashlib.sha256(schema_id.encode())
        for p in group:
            h.update(p.name.encode())
        out.append(Segment(h.hexdigest()[:24], tuple(group), rows))
        group, rows = [], 0

    for part, n in zip(pub.parts, pub.rows, strict=True):
        group.append(part)
        rows += n
        if (rows >= target // 4 and _hash(part.name) % stride == 0) or rows >= 2 * target:
            close()
    if group:
        close()
    return out


def build_segment(pub: Publication, segment: Segment, path: Path) -> Path:
    """Copy a segment's parts, conformed, into one file (on a Dask worker)."""
    if not path.is_file():
        lengths: dict[str, int] = {}
        for p in segment.parts:  # from the parts' footers, not their rows
            for name, n in part_stats(p).get("string_lengths", {}).items():
                lengths[name] = max(lengths.get(name, 1), n)
        file.write(pub, path, ROW_GROUP_ROWS, segment.parts,
                   pub.schema(provenance=False, lengths=lengths))
    return path


def publish(pub: Publication, dest: Path, ctx: PublishContext) -> dict:
    """Build missing segments, link them into ``dest`` and write the metadata files."""
    segments = plan_segments(pub, ctx.options.get("segment_rows", SEGMENT_ROWS))
    ctx.store.segments.mkdir(parents=True, exist_ok=True)
    missing = [s for s in segments if not (ctx.store.segments / s.name).is_file()]
    if missing:
        _build_all(pub, missing, ctx)
    collector = []
    groups = 0
    for i, seg in enumerate(segments):
        name = f"part-{i:05d}-{seg.key}.parquet"  # sorted names keep plan order
        os.link(ctx.store.segments / seg.name, dest / name)
        meta = pq.read_metadata(dest / name)
        meta.set_file_path(name)
        collector.append(meta)
        groups += meta.num_row_groups
    schema = pub.schema()
    pq.write_metadata(schema, dest / "_common_metadata")
    pq.write_metadata(schema, dest / "_metadata", metadata_collector=collector)
    return {"rows": sum(s.rows for s in segments), "files": len(segments),
            "row_groups": groups, "segments": [s.name for s in segments],
            "segments_built": len(missing)}


def _build_all(pub: Publication, segments: list[Segment], ctx: PublishContext) -> None:
    """Build segments on the Dask workers when there are several, else right here."""
    paths = [ctx.store.segments / s.name for s in segments]
    client = ctx.client() if ctx.client is not None and len(segments) > 1 else None
    if client is None:
        for s, p in zip(segments, paths, strict=True):
            build_segment(pub, s, p)
        return
    futures = client.map(build_segment, [pub] * len(segments), segments, paths, pure=False)
    client.gather(futures)
