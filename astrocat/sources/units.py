"""The plain value a source hands to the pipeline: one input file (or table) described."""

from __future__ import annotations

from dataclasses import dataclass

from astrocat.kinds import Kind


@dataclass(frozen=True, slots=True)
class InputUnit:
    """One input file as the pipeline sees it, cheap to build (headers only, no pixels).

    An image file is one work item (``n_items == 1``); a spectra table holds one work
    item per row (``n_items`` rows). A file that cannot be used at all has ``kind`` None
    and ``error`` set: it still becomes exactly one catalog row.
    """

    path: str  # absolute path
    source: str  # POSIX path relative to the input root (what the catalog shows)
    # jpeg | png | fits_image | fits_table | parquet | csv | ecsv | npy | unknown, and
    # fits for a FITS file that could not be routed (error units only)
    fmt: str
    kind: Kind | None
    n_items: int = 1
    hdu: int | None = None  # FITS HDU index holding the image or table
    size: int = 0  # bytes, for incremental re-run keys
    mtime_ns: int = 0
    error: str | None = None
    transient: bool = False  # the error is about this moment (permissions, I/O), not content
    # astrocat's own file (a catalog it wrote): never an input, no row; says which
    skipped: str | None = None
