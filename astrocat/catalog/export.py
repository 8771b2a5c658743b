"""``astrocat export``: a catalog (any layout, or a store's version) as the tables TOPCAT,
STILTS, VizieR and the VO open -- FITS binary table, VOTable, ECSV -- with units, UCDs,
descriptions and the provenance, streamed in bounded memory.

Rows go out a batch at a time in every format, so memory does not grow with the catalog:

* **FITS**: a BINTABLE whose header (astropy's, ``NAXIS2`` the row count known in
  advance) is followed by the rows as big-endian records, batch by batch. The primary HDU
  carries the VOTable description of the columns (STIL's "FITS-plus": TOPCAT and STILTS
  read UCDs and descriptions from it); the BINTABLE also has ``TUCDn``/``TCOMMn`` cards
  for other FITS readers and the provenance as ``ASTRO*`` cards plus ``PROVJSON``.
  Sensible at any size (TOPCAT maps FITS files instead of reading them).
* **VOTable**: BINARY serialisation (base64 of the same fixed-size records) after the
  shared header. Base64 inflates the data by a third and most VOTable readers parse the
  whole document into memory: past ~10 million rows use FITS or the Parquet itself.
* **ECSV**: astropy's header (units, descriptions, UCDs as column meta, provenance) and
  comma-separated rows written by pyarrow's CSV writer. Text: for exchange and small
  catalogs, not for speed.

FITS and VOTable text columns are ASCII of a fixed width, measured in a first pass over
the text columns only; a non-ASCII character is written as its Python escape (``\\xe9``).
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from astrocat.catalog.reader import CatalogReader, open_catalog
from astrocat.catalog.schema import Column, columns_of
from astrocat.catalog.votable import document
from astrocat.errors import AstrocatError

FORMATS = ("fits", "votable", "ecsv")
SUFFIXES = {".fits": "fits", ".fit": "fits", ".fts": "fits", ".vot": "votable",
            ".votable": "votable", ".xml": "votable", ".ecsv": "ecsv"}
BATCH_ROWS = 65_536
FITS_BLOCK = 2880
#: Big-endian numpy types of the records (FITS and VOTable BINARY share them) and FITS
#: TFORM letters; booleans are one ASCII byte, T or F; anything else is exported as text.
_NUMERIC = {
    pa.int8(): (">i2", "I"), pa.uint8(): (">i2", "I"), pa.int16(): (">i2", "I"),
    pa.uint16(): (">i4", "J"), pa.int32(): (">i4", "J"), pa.uint32(): (">i8", "K"),
    pa.int64(): (">i8", "K"), pa.uint64(): (">i8", "K"), pa.float16(): (">f4", "E"),
    pa.float32(): (">f4", "E"), pa.float64(): (">f8", "D"), pa.bool_(): ("S1", "L"),
}


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    rows: int
    columns: int

    def __str__(self) -> str:
        return f"{self.rows} rows, {self.columns} columns -> {self.path} ({self.format})"


def format_of(out: Path, requested: str | None) -> str:
    if requested:
        if requested not in FORMATS:
            raise AstrocatError(f"unknown export format '{requested}' "
                                f"(choose from {', '.join(FORMATS)})")
        return requested
    suffixes = [s.lower() for s in out.suffixes]
    if suffixes[-1:] == [".gz"]:
        raise AstrocatError(f"{out}: compressed exports are not written; drop '.gz' and "
                            "compress the file afterwards if you need to")
    for suffix in reversed(suffixes):
        if suffix in SUFFIXES:
            return SUFFIXES[suffix]
    raise AstrocatError(f"cannot tell the format of {out} from its name: end it in .fits, "
                        ".vot or .ecsv, or give --format (fits, votable, ecsv)")


def export(catalog: str | Path | CatalogReader, out: str | Path, *, format: str | None = None,
           columns: Sequence[str] | None = None, overwrite: bool = False) -> ExportResult:
    """Write ``catalog`` (a file, dataset, HATS catalog, store or ``STORE@N``) to ``out`` as
    FITS, VOTable or ECSV (from ``out``'s suffix unless ``format`` says), all columns or the
    named ones, atomically (a reader never sees half a file)."""
    reader = catalog if isinstance(catalog, CatalogReader) else open_catalog(catalog)
    out = Path(out)
    fmt = format_of(out, format)
    if out.exists() and not overwrite:
        raise AstrocatError(f"{out} exists; give --overwrite to replace it")
    cols = _columns(reader, columns)
    rows = reader.num_rows
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            if fmt == "ecsv":
                _write_ecsv(fh, reader, cols)
            else:
                widths = _text_widths(reader, cols)
                write = _write_fits if fmt == "fits" else _write_votable
                write(fh, reader, cols, widths, rows)
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return ExportResult(out, fmt, rows, len(cols))


def _columns(reader: CatalogReader, wanted: Sequence[str] | None) -> list[Column]:
    """The catalog's own columns (not HATS's ``_healpix_29`` or a pandas index)."""
    have = [c for c in columns_of(reader.schema) if not c.name.startswith("_")]
    if not wanted:
        return have
    by_name = {c.name: c for c in have}
    missing = [w for w in wanted if w not in by_name]
    if missing:
        raise AstrocatError(f"no column {', '.join(missing)} in {reader.path} (it has "
                            f"{', '.join(by_name)})")
    return [by_name[w] for w in wanted]


def _batches(reader: CatalogReader, cols: Sequence[Column]) -> Iterator[pa.RecordBatch]:
    yield from reader.batches([c.name for c in cols], batch_size=BATCH_ROWS)


def _is_text(col: Column) -> bool:
    return col.type not in _NUMERIC


def _ascii(arr: pa.Array) -> pa.Array:
    """Text as ASCII (non-ASCII characters as their escapes, nulls as ''): FITS and VOTable
    ``char`` hold ASCII only."""
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.cast(arr, pa.string())
    arr = pc.fill_null(arr, "")
    if pc.all(pc.string_is_ascii(arr)).as_py() is not False:
        return arr
    return pa.array([v.encode("ascii", "backslashreplace").decode() for v in arr.to_pylist()],
                    pa.string())


def _text_widths(reader: CatalogReader, cols: Sequence[Column]) -> dict[str, int]:
    """Each text column's longest value, in ASCII bytes (a pass over the text columns)."""
    text = [c for c in cols if _is_text(c)]
    widths = dict.fromkeys((c.name for c in text), 1)
    if text:
        for batch in _batches(reader, text):
            for c in text:
                n = pc.max(pc.binary_length(_ascii(batch.column(c.name)))).as_py()
                widths[c.name] = max(widths[c.name], n or 0)
    return widths


def _record_dtype(cols: Sequence[Column], widths: dict[str, int]) -> np.dtype:
    return np.dtype([(c.name, _NUMERIC[c.type][0] if c.type in _NUMERIC
                      else f"S{widths[c.name]}") for c in cols])


def _records(batch: pa.RecordBatch, cols: Sequence[Column], dtype: np.dtype) -> bytes:
    """A batch as big-endian fixed-size records, as FITS and VOTable BINARY lay them out."""
    rec = np.zeros(batch.num_rows, dtype=dtype)
    for c in cols:
        arr = batch.column(c.name)
        if c.type == pa.bool_():
            rec[c.name] = np.where(arr.to_numpy(zero_copy_only=False), b"T", b"F")
        elif c.type in _NUMERIC:
            values = arr.to_numpy(zero_copy_only=False)
            if pa.types.is_integer(c.type) and arr.null_count:
                values = pc.fill_null(arr, -1).to_numpy()
            rec[c.name] = values
        else:
            rec[c.name] = np.asarray(_ascii(arr).to_numpy(zero_copy_only=False), dtype="S")
    return rec.tobytes()


# -- FITS ---------------------------------------------------------------------------------

def _write_fits(fh, reader: CatalogReader, cols: Sequence[Column], widths: dict[str, int],
                rows: int) -> None:
    from astropy.io import fits

    head, tail = document(cols, reader.provenance, widths=widths, nrows=rows)
    votable = (head + tail).encode()
    primary = fits.PrimaryHDU(np.frombuffer(votable, dtype=np.uint8))
    # STIL recognises FITS-plus by VOTMETA straight after NAXIS1
    primary.header.insert("NAXIS1", ("VOTMETA", True, "Table metadata in VOTable format"),
                          after=True)
    primary.header["EXTEND"] = True
    primary.header["NTABLE"] = (1, "Number of following BINTABLE HDUs")
    fh.write(primary.header.tostring().encode())
    fh.write(votable + b"\0" * (-len(votable) % FITS_BLOCK))

    fits_cols = [fits.Column(name=c.name, format=_tform(c, widths), unit=c.unit or None)
                 for c in cols]
    header = fits.BinTableHDU.from_columns(fits_cols, nrows=0).header
    header["NAXIS2"] = rows
    for i, c in enumerate(cols, start=1):
        if c.ucd:
            header[f"TUCD{i}"] = c.ucd
        if c.description:
            header[f"TCOMM{i}"] = c.description  # long: CONTINUE cards
    header["EXTNAME"] = "CATALOG"
    _provenance_cards(header, reader.provenance)
    fh.write(header.tostring().encode())
    dtype = _record_dtype(cols, widths)
    written = 0
    for batch in _batches(reader, cols):
        fh.write(_records(batch, cols, dtype))
        written += batch.num_rows
    if written != rows:
        raise AstrocatError(f"{reader.path} changed while it was exported ({rows} rows "
                            f"counted, {written} read); export it again")
    fh.write(b"\0" * (-(written * dtype.itemsize) % FITS_BLOCK))


def _tform(col: Column, widths: dict[str, int]) -> str:
    return _NUMERIC[col.type][1] if col.type in _NUMERIC else f"{widths[col.name]}A"


def _provenance_cards(header, provenance: dict) -> None:
    """Who made the catalog, as FITS cards: the key items, and the whole record as JSON
    (a long string, continued over CONTINUE cards)."""
    if not provenance:
        return
    for key, card in (("astrocat_version", "ASTROVER"), ("input_root", "ASTROIN")):
        if provenance.get(key):
            header[card] = str(provenance[key])
    if provenance.get("created_utc"):  # FITS dates carry no time zone: they are UTC
        header["DATE"] = (str(provenance["created_utc"])[:19], "catalog written (UTC)")
    models = provenance.get("models") or {}
    if models:
        header["ASTROMOD"] = ", ".join(f"{name} {m.get('version', '')}".strip()
                                       for name, m in models.items())
    header["PROVJSON"] = (json.dumps(provenance, sort_keys=True, default=str),
                          "astrocat provenance record (JSON)")


# -- VOTable ------------------------------------------------------------------------------

def _write_votable(fh, reader: CatalogReader, cols: Sequence[Column], widths: dict[str, int],
                   rows: int) -> None:
    head, tail = document(cols, reader.provenance, widths=widths, nrows=rows)
    fh.write(head.encode())
    fh.write(b'<DATA><BINARY><STREAM encoding="base64">\n')
    dtype = _record_dtype(cols, widths)
    line = 57  # bytes per base64 line of 76 characters
    pending = b""
    for batch in _batches(reader, cols):
        pending += _records(batch, cols, dtype)
        cut = len(pending) - len(pending) % line
        fh.write(base64.encodebytes(pending[:cut]))
        pending = pending[cut:]
    fh.write(base64.encodebytes(pending))
    fh.write(b"</STREAM></BINARY></DATA>\n")
    fh.write(tail.encode())


# -- ECSV ---------------------------------------------------------------------------------

def _write_ecsv(fh, reader: CatalogReader, cols: Sequence[Column]) -> None:
    import pyarrow.csv as pacsv
    from astropy.table import Table

    empty = Table(meta={"astrocat": reader.provenance} if reader.provenance else {})
    for c in cols:
        dtype = (str if _is_text(c) else bool if c.type == pa.bool_()
                 else np.dtype(_NUMERIC[c.type][0]).newbyteorder("="))
        empty[c.name] = np.zeros(0, dtype=dtype)
        empty[c.name].unit = c.unit or None
        empty[c.name].description = c.description or None
        if c.ucd:
            empty[c.name].meta["ucd"] = c.ucd
    header = _ecsv_header(empty)
    fh.write(header.encode())
    options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
    for batch in _batches(reader, cols):
        arrays = [_ecsv_values(batch.column(c.name), c) for c in cols]
        pacsv.write_csv(pa.RecordBatch.from_arrays(arrays, [c.name for c in cols]), fh,
                        write_options=options)


def _ecsv_header(empty) -> str:
    """astropy's own ECSV header and column-name line, for a zero-row table."""
    import io

    text = io.StringIO()
    empty.write(text, format="ascii.ecsv", delimiter=",")
    return text.getvalue()


def _ecsv_values(arr: pa.Array, col: Column) -> pa.Array:
    """What ECSV's reader expects: True/False for booleans, text without nulls."""
    if col.type == pa.bool_():
        return pc.if_else(arr, "True", "False")
    if _is_text(col):
        return pc.fill_null(pc.cast(arr, pa.string()), "")
    return arr
