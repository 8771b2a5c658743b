"""Catalog layouts: how a published version is laid out for readers, one module each.

* ``file``: one Parquet file, row groups of at least 128k rows (the default).
* ``dataset``: a directory of Parquet files (compacted parts) with ``_metadata`` and
  ``_common_metadata``; publishing costs O(files), never a copy of every row.
* ``hats``: a HATS collection that LSDB opens: the catalog (HEALPix-partitioned Parquet)
  and its margin cache, for crossmatches across partition borders; rows without sky
  coordinates in a sibling table inside it.

Each module has ``publish(pub, dest, ctx) -> dict`` (statistics of what it wrote). The
parts, the columns and the provenance they publish are one :class:`Publication`.
"""

from __future__ import annotations

from astrocat.catalog.layouts.publication import (
    BATCH_ROWS,
    MARGIN_ARCSEC,
    MAX_MARGIN_ARCSEC,
    Publication,
    PublishContext,
    margin_arcsec,
    prepare,
)
from astrocat.errors import AstrocatError

__all__ = ["BATCH_ROWS", "LAYOUTS", "MARGIN_ARCSEC", "MAX_MARGIN_ARCSEC", "Publication",
           "PublishContext", "margin_arcsec", "module", "prepare"]

LAYOUTS = ("file", "dataset", "hats")


def module(layout: str):
    """The module that publishes ``layout``."""
    if layout == "file":
        from astrocat.catalog.layouts import file as mod
    elif layout == "dataset":
        from astrocat.catalog.layouts import dataset as mod
    elif layout == "hats":
        try:
            from astrocat.catalog.layouts import hats as mod
        except ImportError as exc:
            raise AstrocatError(f"--layout hats needs the [hats] extra ({exc.name} is "
                                "missing): pip install 'astrocat[hats]'") from exc
    else:
        raise AstrocatError(f"unknown layout {layout!r} (choose from {', '.join(LAYOUTS)})")
    return mod
