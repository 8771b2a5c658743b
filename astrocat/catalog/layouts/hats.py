"""The HATS layout: a HEALPix-partitioned catalog that ``lsdb.open_catalog`` opens, where
cone searches and crossmatches work (how Euclid Q1 and Rubin DP1 are served).

Built with the real libraries: LSDB's own writer for small catalogs (the placed rows fit in
memory), ``hats-import`` on the run's own Dask client for large ones (reading the parts
directly, in parallel). Rows without sky coordinates (images without a WCS or a positions
table, error rows) cannot live in HATS: they go to ``_astrocat_unplaced.parquet`` inside
the catalog directory (HATS readers ignore it), under the same schema, and are counted.
Every catalog written is checked with ``hats.io.validation.is_valid_catalog``. This module
needs the ``[hats]`` extra (hats, hats-import, lsdb); it is imported only to publish one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hats_import.catalog.file_readers import InputReader

from astrocat.catalog.layouts import Publication, PublishContext
from astrocat.errors import AstrocatError

UNPLACED = "_astrocat_unplaced.parquet"
#: Above this many placed rows, hats-import builds the catalog on the Dask workers.
LSDB_MAX_ROWS = 200_000
CATALOG_NAME = "astrocat"


def placed(batch: pa.RecordBatch) -> np.ndarray:
    """Rows with finite, in-range sky coordinates."""
    ra = batch.column("ra").to_numpy(zero_copy_only=False)
    dec = batch.column("dec").to_numpy(zero_copy_only=False)
    with np.errstate(invalid="ignore"):
        return np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90)


def publish(pub: Publication, dest: Path, ctx: PublishContext) -> dict:
    limit = ctx.options.get("hats_lsdb_max_rows", LSDB_MAX_ROWS)
    tmp = ctx.store.root / f".unplaced.tmp-{os.getpid()}"
    keep: list[pa.RecordBatch] | None = []  # placed rows, while few enough for LSDB
    n_placed = n_unplaced = 0
    try:
        with pq.ParquetWriter(tmp, pub.schema(), compression="zstd") as writer:
            for batch in pub.batches():
                mask = placed(batch)
                n_placed += int(mask.sum())
                if (~mask).any():
                    writer.write_batch(batch.filter(pa.array(~mask)))
                    n_unplaced += int((~mask).sum())
                if keep is not None and mask.any():
                    keep.append(batch.filter(pa.array(mask)))
                    if n_placed > limit:
                        keep = None
        shutil.rmtree(dest)  # the builders create the catalog directory themselves
        if n_placed == 0:
            raise AstrocatError("--layout hats: no row has sky coordinates (ra/dec); give "
                                "--positions TABLE for inputs that carry none, or use "
                                "--layout file or dataset")
        if keep is not None:
            _with_lsdb(pub, keep, dest)
            builder = "lsdb.from_dataframe + to_hats"
        else:
            _with_hats_import(pub, dest, ctx)
            builder = "hats-import pipeline_with_client"
        os.replace(tmp, dest / UNPLACED)
    finally:
        tmp.unlink(missing_ok=True)
    from hats.io.validation import is_valid_catalog

    if not is_valid_catalog(str(dest), strict=True, verbose=False):
        raise AstrocatError(f"the HATS catalog written to {dest} does not validate "
                            "(hats.io.validation.is_valid_catalog); this is a bug")
    return {"rows": n_placed + n_unplaced, "placed": n_placed, "unplaced": n_unplaced,
            "files": len(list((dest / "dataset").rglob("Npix=*.parquet"))) + 1,
            "builder": builder}


def _with_lsdb(pub: Publication, batches: list[pa.RecordBatch], dest: Path) -> None:
    import lsdb

    table = pa.Table.from_batches(batches, schema=pub.schema(provenance=False))
    df = table.to_pandas(types_mapper=pd_types())
    catalog = lsdb.from_dataframe(df, ra_column="ra", dec_column="dec",
                                  catalog_name=CATALOG_NAME)
    catalog.write_catalog(dest, catalog_name=CATALOG_NAME, as_collection=False,
                          progress_bar=False)


def pd_types():
    """Arrow-backed pandas columns, so float32 stays float32 and strings stay strings."""
    import pandas as pd

    return pd.ArrowDtype


class PlacedRows(InputReader):
    """A hats-import reader of astrocat parts: conformed rows with sky coordinates only
    (hats-import's documented extension point; pickled to the workers)."""

    def __init__(self, pub: Publication) -> None:
        self.pub = pub

    def read(self, input_file, read_columns=None):
        for batch in self.pub.batches([Path(input_file)]):
            mask = placed(batch)
            if mask.any():
                table = pa.Table.from_batches([batch.filter(pa.array(mask))])
                yield table.select(read_columns) if read_columns else table


def _with_hats_import(pub: Publication, dest: Path, ctx: PublishContext) -> None:
    from hats_import.catalog.arguments import ImportArguments
    from hats_import.pipeline import pipeline_with_client

    if ctx.client is None:
        raise AstrocatError("--layout hats needs a Dask client for a catalog this large")
    work = ctx.store.root / ".hats-import"
    shutil.rmtree(work, ignore_errors=True)
    args = ImportArguments(
        output_path=dest.parent, output_artifact_name=dest.name,
        input_file_list=[str(p) for p in pub.parts], file_reader=PlacedRows(pub),
        ra_column="ra", dec_column="dec", catalog_type="object", tmp_dir=work,
        resume=False, progress_bar=False, highest_healpix_order=10,
        pixel_threshold=ctx.options.get("hats_pixel_threshold", 1_000_000))
    try:
        pipeline_with_client(args, ctx.client())
    finally:
        shutil.rmtree(work, ignore_errors=True)
