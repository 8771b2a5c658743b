"""The HATS layout: a HEALPix-partitioned catalog that ``lsdb.open_catalog`` opens, where
cone searches and crossmatches work (how Euclid Q1 and Rubin DP1 are served).

What ``--out`` holds is a HATS *collection*, the layout LSDB itself writes
(``Catalog.write_catalog(as_collection=True)``) and opens in one call::

    OUT/
      collection.properties        # names the main catalog and the default margin
      astrocat/                    # the catalog: hats.properties, dataset/Norder=*/...
      astrocat_10arcs/             # its margin cache (a HATS catalog of type "margin")
      _astrocat_unplaced.parquet   # rows without sky coordinates (see below)

**The margin cache.** A catalog partitioned by HEALPix pixel only ever matches rows of
the same pixel, so a neighbour across a partition border would be missed. The margin
cache holds, for every partition, copies of the rows of the neighbouring partitions that
lie within ``hats_margin_arcsec`` of its border; LSDB loads it with the catalog
(``lsdb.open_catalog(OUT)``) and uses it whenever this catalog is the right-hand side of a
crossmatch (``survey.crossmatch(astrocat_catalog, radius_arcsec=...)``), so every pair
within the radius is found. LSDB refuses a crossmatch radius larger than the margin.

**Default radius: 10 arcsec** (``layouts.MARGIN_ARCSEC``). The rows are objects positioned by
their image's WCS or a positions table; the surveys they are matched against need
1-2 arcsec (Gaia, SDSS, Euclid, Rubin) up to ~5-6 arcsec (GALEX, WISE, FIRST/NVSS), and
a cut-out's centre can sit a few arcsec from the catalogued object; 10 arcsec covers all
of these with room. It costs little: the margin is built from HEALPix order 13 pixels
(``margin2order``: the smallest pixels at least 10 arcsec wide, ~16-26 arcsec), so any
threshold from 8.1 to 16 arcsec costs the same, and for LSDB's partitions (order <= 7) it
copies about 4 x 2**(k-13) of an order-k partition's rows (~6% at order 7, less below;
half at hats-import's deepest, order 10, which only the densest sky reaches).
LSDB's and hats-import's own default, 5 arcsec, is the tight end of that range.

**Options** (``PublishContext.options``, which ``InferOptions(layout_options=...)``
fills; job files pass none yet):

* ``hats_margin_arcsec`` (``astrocat infer --hats-margin``, ``astrocat.infer(...,
  hats_margin_arcsec=)``; checked by ``layouts.margin_arcsec`` before any work): the
  margin radius, 1 to 60 arcsec (60 keeps the margin's order,
  11, above hats-import's deepest partitions, order 10); 0 writes no margin (the
  collection holds the catalog alone, and crossmatches with this catalog on the right
  can miss pairs across partition borders).
* ``hats_partition_rows``: the most rows in a partition (LSDB's ``partition_rows``,
  hats-import's ``pixel_threshold``; default: LSDB's ~1 GiB partitions, 1,000,000 rows
  for hats-import). ``hats_pixel_threshold`` is an older name for it, hats-import only.
* ``hats_lsdb_max_rows``: above this many placed rows (default 200,000) the catalog is
  built by hats-import instead of LSDB.

Built with the real libraries: LSDB's own writer for small catalogs (the placed rows fit in
memory; ``lsdb.from_dataframe(margin_threshold=...)`` computes the margin),
``hats-import``'s collection pipeline (``CollectionArguments`` with the catalog and one
margin, ``MarginCacheArguments`` underneath) on the run's own Dask client for large ones
(reading the parts directly, in parallel). Rows without sky coordinates (images without a
WCS or a positions table, error rows) cannot live in HATS: they go to
``_astrocat_unplaced.parquet`` at the top of the collection (HATS readers ignore it),
under the same schema, and are counted. ``hats.properties`` of the catalog and the margin
and ``collection.properties`` carry the HATS provenance keys as ``hats`` defines them
(``hats_builder`` naming astrocat and the library that wrote it, ``hats_creation_date``,
``hats_estsize``, ``hats_release_date``, ``hats_version``). Every collection written is
checked with ``hats.io.validation.is_valid_collection(strict=True)``, which validates the
catalog and its margin. This module needs the ``[hats]`` extra (hats, hats-import, lsdb);
it is imported only to publish one.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hats_import.catalog.file_readers import InputReader

from astrocat._version import __version__
from astrocat.catalog.layouts.publication import Publication, PublishContext, margin_arcsec
from astrocat.catalog.writer import parquet_options
from astrocat.errors import AstrocatError

UNPLACED = "_astrocat_unplaced.parquet"
#: Above this many placed rows, hats-import builds the catalog on the Dask workers.
LSDB_MAX_ROWS = 200_000
CATALOG_NAME = "astrocat"
#: hats-import's deepest partition order.
HATS_IMPORT_MAX_ORDER = 10


def margin_name(arcsec: float) -> str:
    """The margin catalog's directory in the collection (as LSDB and hats-import name it)."""
    return f"{CATALOG_NAME}_{int(arcsec)}arcs"


def placed(batch: pa.RecordBatch) -> np.ndarray:
    """Rows with finite, in-range sky coordinates."""
    ra = batch.column("ra").to_numpy(zero_copy_only=False)
    dec = batch.column("dec").to_numpy(zero_copy_only=False)
    with np.errstate(invalid="ignore"):
        return np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90)


def publish(pub: Publication, dest: Path, ctx: PublishContext) -> dict:
    limit = ctx.options.get("hats_lsdb_max_rows", LSDB_MAX_ROWS)
    margin = margin_arcsec(ctx.options)
    tmp = ctx.store.root / f".unplaced.tmp-{os.getpid()}"
    keep: list[pa.RecordBatch] | None = []  # placed rows, while few enough for LSDB
    n_placed = n_unplaced = 0
    try:
        schema = pub.schema()
        with pq.ParquetWriter(tmp, schema, **parquet_options(schema)) as writer:
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
            _with_lsdb(pub, keep, dest, ctx, margin)
            builder = "lsdb.from_dataframe + to_hats"
        else:
            _with_hats_import(pub, dest, ctx, margin)
            builder = "hats-import pipeline_with_client"
        os.replace(tmp, dest / UNPLACED)
    finally:
        tmp.unlink(missing_ok=True)
    _finish_properties(dest, pub)
    from hats.io.validation import is_valid_collection

    # what is_valid_catalog(dest, strict=True) does for a collection, without its warning
    # that it found one: the collection's properties, the catalog's and the margin's
    if not is_valid_collection(str(dest), strict=True):
        raise AstrocatError(f"the HATS collection written to {dest} does not validate "
                            "(hats.io.validation.is_valid_collection); this is a bug")
    main = dest / CATALOG_NAME
    margin_dir = dest / margin_name(margin)
    return {"rows": n_placed + n_unplaced, "placed": n_placed, "unplaced": n_unplaced,
            "files": len(list((main / "dataset").rglob("Npix=*.parquet"))) + 1,
            "builder": builder, "margin_arcsec": margin,
            "margin_rows": _total_rows(margin_dir) if margin else 0}


def _total_rows(catalog_dir: Path) -> int:
    from hats.catalog import TableProperties

    return int(TableProperties.read_from_dir(catalog_dir).total_rows or 0)


def _with_lsdb(pub: Publication, batches: list[pa.RecordBatch], dest: Path,
               ctx: PublishContext, margin: float) -> None:
    import lsdb

    table = pa.Table.from_batches(batches, schema=pub.schema(provenance=False))
    df = table.to_pandas(types_mapper=pd_types())
    catalog = lsdb.from_dataframe(df, ra_column="ra", dec_column="dec",
                                  catalog_name=CATALOG_NAME,
                                  partition_rows=ctx.options.get("hats_partition_rows"),
                                  margin_threshold=margin or None)
    catalog.write_catalog(dest, catalog_name=CATALOG_NAME, as_collection=True,
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


def _with_hats_import(pub: Publication, dest: Path, ctx: PublishContext,
                      margin: float) -> None:
    from hats_import.collection.arguments import CollectionArguments
    from hats_import.pipeline import pipeline_with_client

    if ctx.client is None:
        raise AstrocatError("--layout hats needs a Dask client for a catalog this large")
    work = ctx.store.root / ".hats-import"
    shutil.rmtree(work, ignore_errors=True)
    rows = ctx.options.get("hats_partition_rows",
                           ctx.options.get("hats_pixel_threshold", 1_000_000))
    args = CollectionArguments(
        output_path=dest.parent, output_artifact_name=dest.name, tmp_dir=work,
        resume=False, progress_bar=False,
    ).catalog(
        output_artifact_name=CATALOG_NAME,
        input_file_list=[str(p) for p in pub.parts], file_reader=PlacedRows(pub),
        ra_column="ra", dec_column="dec", catalog_type="object",
        highest_healpix_order=HATS_IMPORT_MAX_ORDER, pixel_threshold=rows)
    if margin:
        args.add_margin(margin_threshold=margin, output_artifact_name=margin_name(margin),
                        is_default=True)
    root = logging.getLogger()
    root.addFilter(_collection_found)
    try:
        pipeline_with_client(args, ctx.client())
    finally:
        root.removeFilter(_collection_found)
        shutil.rmtree(work, ignore_errors=True)


def _collection_found(record: logging.LogRecord) -> bool:
    """hats-import checks the collection it built with ``is_valid_catalog``, which logs
    "Looking for catalog - found collection." on the root logger: expected here, and not
    for the user's terminal."""
    return "found collection" not in record.getMessage()


def _finish_properties(dest: Path, pub: Publication) -> None:
    """The HATS provenance keys of the collection, its catalog and its margin: the builder
    names astrocat before the library that wrote the files (``hats_builder =
    astrocat 0.2.0 via lsdb v0.11.1, hats v0.11.1``), sizes counted once everything is in
    place. ``hats_creation_date``, ``hats_release_date`` (of the HATS format) and
    ``hats_version`` are the ones the library wrote."""
    from hats.catalog import TableProperties
    from hats.catalog.dataset.collection_properties import CollectionProperties
    from hats.io.size_estimates import estimate_dir_size

    collection = CollectionProperties.read_from_dir(dest)
    members = [collection.hats_primary_table_url, *(collection.all_margins or [])]
    models = pub.provenance.get("models") or {}
    title = f"astrocat {__version__} catalog"
    about = (f"{title}: predictions of " + ", ".join(
        f"{name} {m.get('version', '')}".strip() for name, m in sorted(models.items()))
        if models else title)
    for props, where in ([(TableProperties.read_from_dir(dest / m), dest / m)
                          for m in members] + [(collection, dest)]):
        builder = props.model_dump(by_alias=True).get("hats_builder") or "hats"
        if not builder.startswith("astrocat "):
            builder = f"astrocat {__version__} via {builder}"
        update = {"hats_builder": builder, "obs_title": title, "obs_description": about,
                  "hats_estsize": estimate_dir_size(where, divisor=1024)}
        if where.name in (collection.all_margins or []):
            # the main catalog by its name in the collection, as LSDB writes it (hats-import
            # writes the absolute path it built in, which a published version has left)
            update["primary_catalog"] = collection.hats_primary_table_url
        props.model_copy(update=update).to_properties_file(where)
