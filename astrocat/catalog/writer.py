"""Parts: each partition writes its own Parquet part atomically, with its statistics in
the footer; the layouts (``catalog.layouts``) publish a catalog from finished parts only.
A killed run leaves finished parts to resume from and never a half-written catalog.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from astrocat.catalog.columns import to_arrow
from astrocat.catalog.schema import (
    BASE_COLUMNS,
    BASE_NAMES,
    TRUST_COLUMNS,
    Column,
    columns_of,
    sentinel,
    to_field,
)

PART_META_KEY = b"astrocat_part"


def parquet_options(schema: pa.Schema) -> dict:
    """How every Parquet file astrocat writes is encoded: zstd, and dictionaries for the
    string columns only. Predictions and statistics are floats unique to each row, for
    which a dictionary only costs: on a 20,000-row catalog dictionaries everywhere took
    4.3 MB and 77-99 ms to write, on strings only 2.9 MB and 21-25 ms (the same values)."""
    strings = [f.name for f in schema
               if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    return {"compression": "zstd", "use_dictionary": strings}


def atomic_write(table: pa.Table, path: Path, **kwargs) -> None:
    """Write a whole Parquet file under a temporary name and rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        pq.write_table(table, tmp, **kwargs)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_part(table: pa.Table, path: Path, stats: Mapping[str, object]) -> dict:
    """Write one partition's rows, with its statistics (and its columns) in the footer for
    resuming; returns the statistics as written."""
    meta = dict(table.schema.metadata or {})
    stats = {**stats, "columns": part_columns(table.schema)}
    meta[PART_META_KEY] = json.dumps(stats).encode()
    atomic_write(table.replace_schema_metadata(meta), path, **parquet_options(table.schema))
    return stats


def part_stats(path: Path) -> dict:
    """Statistics a finished part recorded (rows, errors, models, string lengths, columns;
    parts of astrocat 0.1 get their columns from the schema here)."""
    schema = pq.read_schema(path)
    stats = json.loads((schema.metadata or {})[PART_META_KEY])
    stats.setdefault("columns", part_columns(schema))
    return stats


def _unify(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    if a == b:
        return a
    if pa.types.is_string(a) or pa.types.is_string(b):
        return pa.string()
    return pa.float64()  # int/float/bool mixes: numbers


#: Base and trust columns by name: their metadata is this version's, whichever part
#: (perhaps from an earlier astrocat) a published catalog reuses.
CANONICAL = {c.name: c for c in (*BASE_COLUMNS, *TRUST_COLUMNS)}


def part_columns(schema: pa.Schema) -> list[list]:
    """A part's columns as JSON-able records [name, type, unit, description, carried, ucd]:
    kept in its statistics, so publishing never has to open the part again."""
    return [[c.name, str(c.type), c.unit, c.description,
             (schema.field(c.name).metadata or {}).get(b"carried") == b"1", c.ucd]
            for c in columns_of(schema)]


def final_columns(parts: Iterable[list[list]], outputs_wanted: Sequence[str | Column]
                  ) -> list[Column]:
    """Base columns, the outputs of models that ran, then every carried column seen;
    ``parts``: each part's ``part_columns``; ``outputs_wanted``: names, or the columns
    the cards define now (their UCDs and descriptions win over those of reused parts)."""
    base: dict[str, Column] = {}
    outputs: dict[str, Column] = {}
    carried: dict[str, Column] = {}
    output_names = [o if isinstance(o, str) else o.name for o in outputs_wanted]
    current = {**CANONICAL, **{o.name: o for o in outputs_wanted if isinstance(o, Column)}}
    wanted = set(output_names)
    for records in parts:
        for name, type_, unit, description, is_carried, *ucd in records:  # 0.x: no ucd
            col = Column(name, pa.type_for_alias(type_), unit, description, *ucd)
            if name in current:  # as astrocat and the cards define it now
                col = current[name]
            if name in BASE_NAMES:
                base.setdefault(name, col)
            elif name in wanted:
                outputs.setdefault(name, col)
            elif name not in outputs and is_carried:
                prev = carried.get(name)
                if prev is None:
                    carried[name] = col
                elif prev.type != col.type:
                    carried[name] = Column(name, _unify(prev.type, col.type), prev.unit,
                                           prev.description, prev.ucd)
    ordered_outputs = [outputs[n] for n in output_names if n in outputs]
    return [*base.values(), *ordered_outputs, *carried.values()]


def conform(batch: pa.RecordBatch, columns: list[Column]) -> pa.RecordBatch:
    """A part's batch under the catalog's columns: sentinels for columns it lacks."""
    arrays = []
    for col in columns:
        idx = batch.schema.get_field_index(col.name)
        if idx < 0:
            arrays.append(to_arrow([sentinel(col.type)] * batch.num_rows, col.type))
        else:
            arr = batch.column(idx)
            arrays.append(arr if arr.type == col.type else arr.cast(col.type))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema([to_field(c) for c in columns]))
