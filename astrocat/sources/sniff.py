"""Recognise an input file's format from its first bytes, never from its name.

Survey archives are full of misnamed files (``.fits`` that are HTML error pages,
``.jpg`` that are PNGs, gzip files without ``.gz``), so the extension is only a hint for
messages; the magic bytes decide.
"""

from __future__ import annotations

import csv
import re
import zlib
from pathlib import Path

import numpy as np

#: How much of the file is looked at. Enough for every magic number and for the
#: "is this text with commas?" test on a CSV header line.
HEAD_BYTES = 4096

_FITS_MAGIC = b"SIMPLE  ="
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0e-\x1f\x7f]")  # not found in text files


def read_head(path: Path | str, n: int = HEAD_BYTES) -> bytes:
    """The first ``n`` bytes of a file (fewer if the file is shorter)."""
    with open(path, "rb") as f:
        return f.read(n)


def sniff(path: Path | str) -> str:
    """Return 'jpeg' | 'png' | 'fits' | 'gzip' | 'parquet' | 'npy' | 'ecsv' | 'csv' | 'unknown'.

    'gzip' means gzip-compressed FITS (other gzip content is 'unknown', astrocat cannot
    use it). Raises OSError if the file cannot be opened; callers report that.
    """
    return sniff_bytes(read_head(path))


def sniff_bytes(head: bytes) -> str:
    """:func:`sniff` on bytes already read from the start of a file."""
    if not head:
        return "unknown"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(_FITS_MAGIC):
        return "fits"
    if head.startswith(b"\x1f\x8b"):
        return "gzip" if gunzip_head(head).startswith(_FITS_MAGIC) else "unknown"
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    text = _as_text(head)
    if text is None:
        return "unknown"
    if text.lstrip("\ufeff").startswith("# %ECSV"):
        return "ecsv"
    return (
        "csv"
        if _looks_like_csv(text.lstrip("\ufeff"), complete=len(head) < HEAD_BYTES)
        else "unknown"
    )


def gunzip_head(head: bytes, n: int = 80) -> bytes:
    """Decompress the start of a gzip stream (as much as ``head`` allows); b'' if corrupt."""
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, n)
    except zlib.error:
        return b""


def looks_like(head: bytes) -> str:
    """A short human description of unrecognised content, for error messages."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip-compressed data that is not FITS"
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (.npz or .zip; unpack it first)"
    if head.startswith((b"GIF8", b"II*\x00", b"MM\x00*", b"BM", b"RIFF")):
        return "an image format other than JPEG or PNG (GIF, TIFF, BMP or WebP)"
    if head.startswith(b"\x89HDF"):
        return "HDF5 data"
    text = _as_text(head)
    if text is None:
        return "binary data"
    lowered = text.lstrip().lower()
    if lowered.startswith(("<!doctype html", "<html")):
        return "an HTML page (a failed download?)"
    return "text"


def _looks_like_csv(text: str, complete: bool) -> bool:
    """A header line with commas, then a data line with as many fields.

    The second line is what tells a table from prose ("Service unavailable, retry") in
    a failed download; a header longer than the bytes read is given the benefit of the
    doubt.
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or "," not in lines[0]:
        return False
    if len(lines) == 1:
        return not complete and "\n" not in text.lstrip("\r\n")
    if len(lines) == 2 and not complete:
        return True  # the second line may be cut off by the read size
    # Any of the next few lines will do, so one malformed first row is still a CSV.
    usable = lines[:6] if complete else lines[:-1][:6]
    rows = list(csv.reader(usable))
    return any(len(row) == len(rows[0]) for row in rows[1:])


def _as_text(head: bytes) -> str | None:
    """Decode as UTF-8 if every character is printable text; None for binary data."""
    if _CONTROL_BYTES.search(head):
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut off by the read size is still text.
        if exc.start < len(head) - 3:
            return None
        text = head[: exc.start].decode("utf-8")
    return text


# --------------------------------------------------------------------------- FITS cards


# A FITS file's header cards read raw, for recognising what it holds from its first bytes
# (the spectral product families and their dispatcher, ``spectra_products``, share them).


def header_cards(block: bytes) -> dict[str, str]:
    """Keyword -> raw value of the 80-character cards in ``block`` (up to END)."""
    out: dict[str, str] = {}
    for i in range(0, len(block) - 79, 80):
        card = block[i:i + 80].decode("ascii", errors="replace")
        key = card[:8].strip()
        if key == "END":
            break
        if card[8:10] == "= ":
            out.setdefault(key, card[10:].split("/")[0].strip().strip("'").strip())
    return out


def first_extension_cards(path: Path, max_blocks: int = 40) -> dict[str, str]:
    """The first extension's header cards, read raw (no FITS library: a look at a
    file's first table costs microseconds); {} where there is none or it is gzipped."""
    with open(path, "rb") as f:
        data = f.read(2880 * max_blocks)
    end = end_block(data, 0)
    if end is None:
        return {}
    primary = header_cards(data[:end])
    try:
        shape = [int(primary.get(f"NAXIS{i}", "0")) for i in
                 range(1, int(primary.get("NAXIS", "0")) + 1)]
        size = abs(int(primary.get("BITPIX", "8"))) // 8 * (int(np.prod(shape)) if shape
                                                             else 0)
    except ValueError:
        return {}
    start = end + -(-size // 2880) * 2880  # past the primary's data, if it has any
    stop = end_block(data, start)
    if stop is None:
        return {}
    return header_cards(data[start:stop])


def end_block(data: bytes, start: int) -> int | None:
    """The offset just past the header block holding the END card at or after ``start``."""
    i = data.find(b"END", start)
    while 0 <= i <= len(data) - 80:  # a card starting with END, blank after it
        if not (i - start) % 80 and not data[i + 3:i + 80].strip():
            return ((i - start) // 2880 + 1) * 2880 + start
        i = data.find(b"END", i + 1)
    return None
