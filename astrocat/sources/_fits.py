"""FITS helpers shared by describing (headers only) and reading (pixels).

Kept apart so the routing rule "which HDU is the image" is written once, for both ways a
file is read: astropy, the reference, and cfitsio through the optional ``fitsio`` package
(several times faster), which is used only where it gives astropy's answer exactly and
otherwise *declines*, handing the file to astropy (:func:`fast_or_reference`). A small
file whose HDUs are all plain is laid out from its own bytes instead of cfitsio's
(:class:`MemoryFits`), under the same rule: where in doubt, decline.
"""

from __future__ import annotations

import gzip
import io
import math
import re
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

from astrocat.errors import InputError
from astrocat.sources.common import take_bytes
from astrocat.sources.sniff import end_block

if TYPE_CHECKING:
    from astropy.io import fits

try:  # optional: without it astropy reads all but small plain files, only more slowly
    import fitsio
except ImportError:  # pragma: no cover - exercised only where fitsio is missing
    fitsio = None

#: False sends every FITS file through astropy, the reference (the tests compare both).
USE_FITSIO = True


@cache
def astropy_fits():
    """``astropy.io.fits``, imported on first use: 0.3 s a run without FITS never pays."""
    from astropy.io import fits

    return fits


def _image_hdus() -> tuple[type, ...]:
    """Image HDU classes (CompImageHDU is an ImageHDU subclass in astropy >= 6, listed for
    older versions' sake)."""
    fits = astropy_fits()
    return (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)

T = TypeVar("T")


class HeaderLike(Protocol):
    """What the header rules need: an astropy ``Header`` or :class:`Cards`."""

    def get(self, key: str, default: Any = None) -> Any: ...


@contextmanager
def open_fits(path: str, memmap: bool = True) -> Iterator[fits.HDUList]:
    """Open lazily; astropy's warnings about sloppy headers are silenced.

    Survey headers are routinely non-standard; the warnings would flood the log for
    every file and say nothing the astronomer can act on. Pixels are read with
    ``memmap=False``: astropy refuses to memory-map scaled images (BZERO/BSCALE/BLANK,
    the unsigned-integer convention included), and a cut-out is read whole anyway.
    """
    from astropy.utils.exceptions import AstropyWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        with astropy_fits().open(path, memmap=memmap, lazy_load_hdus=True) as hdul:
            yield hdul


def is_image_hdu(hdu: fits.hdu.base._BaseHDU) -> bool:
    return isinstance(hdu, _image_hdus())


def is_table_hdu(hdu: fits.hdu.base._BaseHDU) -> bool:
    fits = astropy_fits()
    return (isinstance(hdu, (fits.BinTableHDU, fits.TableHDU))
            and not isinstance(hdu, fits.CompImageHDU))


def is_compressed_image(hdu: fits.hdu.base._BaseHDU) -> bool:
    return isinstance(hdu, astropy_fits().CompImageHDU)


def header_shape(header: HeaderLike) -> tuple[int, ...]:
    """Image shape in numpy order (NAXISn, ..., NAXIS1) from the header alone."""
    naxis = header.get("NAXIS", 0)
    if not isinstance(naxis, int) or naxis <= 0:
        return ()
    dims = [header.get(f"NAXIS{k}", 0) for k in range(naxis, 0, -1)]
    return tuple(d if isinstance(d, int) and d >= 0 else 0 for d in dims)


def squeeze_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Drop length-1 axes: a (1, H, W) 'cube' is really one plane and is accepted as such."""
    return tuple(d for d in shape if d != 1) if len(shape) > 2 else shape


def plane_shape(shape: tuple[int, ...]) -> tuple[int, int] | None:
    """The 2-D shape the image reduces to, or None if it is not a single plane."""
    squeezed = squeeze_shape(shape)
    if len(squeezed) == 2 and 0 not in squeezed:
        return squeezed[0], squeezed[1]
    return None


def cube_planes(shape: tuple[int, ...]) -> int | None:
    """How many planes a cube (bands x y x x, length-1 axes dropped) holds, else None."""
    squeezed = squeeze_shape(shape)
    if len(squeezed) == 3 and 0 not in squeezed:
        return squeezed[0]
    return None


# ------------------------------------------------------- naming an HDU and a plane

#: An HDU as a card or ``--hdu`` names it: its index, its EXTNAME, or (EXTNAME, EXTVER).
HduName = int | str | tuple[str, int]


def parse_hdu_name(text: str) -> HduName:
    """``--hdu`` as typed: ``3``, ``SCI`` or ``SCI,2``."""
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    name, _, ver = text.partition(",")
    if ver.strip():
        if not ver.strip().isdigit():
            raise ValueError(f"{text!r}: give an index (3), an EXTNAME (SCI) or EXTNAME,EXTVER "
                             "(SCI,2)")
        return (name.strip(), int(ver))
    return name.strip()


def hdu_label(name: HduName) -> str:
    return f"{name[0]},{name[1]}" if isinstance(name, tuple) else str(name)


def find_hdu(headers: list[HeaderLike], want: HduName) -> int:
    """The index of the HDU ``want`` names among a file's headers (astropy's rules: EXTNAME
    compared without case or trailing blanks, EXTVER 1 when absent, ``PRIMARY`` is HDU 0)."""
    if isinstance(want, int):
        if 0 <= want < len(headers):
            return want
        raise InputError(f"HDU {want} does not exist: the file has {len(headers)} HDU(s) "
                         f"({hdu_names(headers)})")
    name, ver = (want, None) if isinstance(want, str) else want
    name = name.strip().upper()
    for index, header in enumerate(headers):
        extname = header.get("EXTNAME")
        here = extname.strip().upper() if isinstance(extname, str) else (
            "PRIMARY" if index == 0 else "")
        if here == name and (ver is None or header.get("EXTVER", 1) == ver):
            return index
    raise InputError(f"no HDU named {hdu_label(want)!r}: the file has {hdu_names(headers)}; "
                     "name one of them with --hdu (or hdu in the model card)")


def hdu_names(headers: list[HeaderLike]) -> str:
    """``0 PRIMARY, 1 SCI,1, 2 ERR,1``: a file's HDUs as a person would name them."""
    out = []
    for index, header in enumerate(headers):
        extname = header.get("EXTNAME")
        if isinstance(extname, str) and extname.strip():
            label = f"{extname.strip()},{header.get('EXTVER', 1)}"
        else:
            label = "PRIMARY" if index == 0 else "(no EXTNAME)"
        out.append(f"{index} {label}")
    return ", ".join(out)


def plane_index(header: HeaderLike, planes: int, want: int | str) -> int:
    """The cube plane ``want`` names: an index along the cube's first numpy axis (the FITS
    NAXIS3 axis), or a band name found in the header's BANDn / BANDS keywords."""
    if isinstance(want, int):
        if 0 <= want < planes:
            return want
        raise InputError(f"plane {want} does not exist: the cube has {planes} planes "
                         f"(0 to {planes - 1})")
    bands = cube_bands(header, planes)
    for index, band in enumerate(bands):
        if band is not None and band.strip().lower() == want.strip().lower():
            return index
    named = ", ".join(f"{i} {b}" for i, b in enumerate(bands) if b is not None)
    raise InputError(
        f"no plane for band {want!r}: " + (f"the header names {named}" if named else
                                           "the header names no bands (BAND0.., BANDS)")
        + "; name the plane by its index instead (--plane N)")


def cube_bands(header: HeaderLike, planes: int) -> list[str | None]:
    """Each plane's band name: BAND0, BAND1, ... (the Legacy Survey viewer's cut-outs,
    0-based like numpy's first axis), BAND1..BANDn where there is no BAND0, else one
    string BANDS = 'grz' (or 'g,r,z')."""
    zero = [header.get(f"BAND{i}") for i in range(planes)]
    one = [header.get(f"BAND{i + 1}") for i in range(planes)]
    for names in (zero, one):
        if any(isinstance(b, str) for b in names) and header.get(
                f"BAND{planes if names is zero else 0}") is None:
            return [b if isinstance(b, str) else None for b in names]
    bands = header.get("BANDS")
    if isinstance(bands, str):
        parts = bands.split(",") if "," in bands else list(bands.strip())
        if len(parts) == planes:
            return [p.strip() for p in parts]
    return [None] * planes


@dataclass(frozen=True)
class Product:
    """What to read from a FITS product, beyond the default rule (the first 2-D image):
    the image HDU by name, a cube's plane, and a mask/quality HDU whose flagged pixels
    become NaN (any non-zero value, or only ``mask_bits``) before the NaN policy."""

    hdu: HduName | None = None
    plane: int | str | None = None
    mask_hdu: HduName | None = None
    mask_bits: int | None = None


DEFAULT_PRODUCT = Product()


def image_data_bytes(header: HeaderLike) -> int:
    """Bytes an uncompressed image's data needs, to spot truncated files cheaply."""
    bitpix = header.get("BITPIX", 8)
    shape = header_shape(header)
    return abs(int(bitpix)) // 8 * math.prod(shape) if shape else 0


def is_density_field(header: HeaderLike) -> bool:
    """The ``ASTROCAT = 'density_field'`` tag marks a FITS map as a density field."""
    value = header.get("ASTROCAT")
    return isinstance(value, str) and value.strip().lower() == "density_field"


# ------------------------------------------------------------- the cfitsio path


class Declined(Exception):
    """The cfitsio path cannot promise astropy's exact answer for this file."""


def fast_or_reference(
    fast: Callable[[], T],
    reference: Callable[[], T],
    keep: tuple[type[Exception], ...] = (),
) -> T:
    """``fast()``'s answer; where it declines or cfitsio fails, ``reference()``'s.

    Every failure is left to astropy, so error messages are always astropy's own; only
    the exception types in ``keep`` (rules both paths share) come from ``fast``.
    """
    try:
        return fast()
    except keep:
        raise
    except Exception:  # noqa: BLE001 -- Declined, or any cfitsio complaint: astropy decides
        return reference()


#: Paths cfitsio takes literally: its extended file-name syntax gives meaning to brackets,
#: "+N" suffixes, "://" and more, so any other path goes to astropy.
_LITERAL_PATH = re.compile(r"[\w ./,=@%~-]*[\w./,=@%~-]")


#: FITS files up to this size are read whole and, where every HDU is plain (no tile
#: compression, no random groups, standard values), their layout is found in the bytes
#: (:class:`MemoryFits`): opening each of a survey's cut-outs through cfitsio was a large
#: part of describing and reading it (a 46 KB cut-out: 0.49-0.55 ms this way, 0.63-0.71).
MEMORY_BYTES = 256 << 10
#: cfitsio's type code for an image HDU (``fitsio.IMAGE_HDU``), a table's (binary, ASCII).
IMAGE_HDU, ASCII_TBL, BINARY_TBL = 0, 1, 2


class FastFits:
    """A FITS file as cfitsio sees it (HDU layout, offsets, pixels), with each header read
    from its raw cards: fitsio's own header reader costs O(cards^2), 20 ms for 300 cards.
    With ``in_memory``, a small file (``MEMORY_BYTES``) is read whole and, where it is
    plain, its HDUs are found in its bytes without cfitsio (:class:`MemoryFits`).

    Use as a context manager; raises :class:`Declined` when switched off, or when fitsio
    is missing and the file is not laid out in memory.
    """

    def __init__(self, path: str, in_memory: bool = False) -> None:
        if not USE_FITSIO:
            raise Declined("the fast FITS paths are switched off")
        if not _LITERAL_PATH.fullmatch(path):
            raise Declined("cfitsio would parse this path as extended file-name syntax")
        handed = take_bytes(path) if in_memory else None  # describe read it just now
        if handed is not None and len(handed) <= MEMORY_BYTES and self._laid_out(handed):
            return
        # Opened first: given a missing x.fits, cfitsio quietly opens x.fits.gz instead.
        self._file: Any = open(path, "rb")  # closed by __exit__
        try:
            head = self._file.read(max(MEMORY_BYTES + 1, 2) if in_memory else 2)
            whole = head if in_memory and len(head) <= MEMORY_BYTES else None
            if head[:2] == b"\x1f\x8b":
                # cfitsio takes a cut-off gzip stream without complaint, astropy refuses
                # it: inflate it here as astropy would (its headers are then read from it)
                whole = gzip.decompress(head + self._file.read())
            if whole is not None:
                self._file.close()
                if in_memory and self._laid_out(whole):
                    return
                self._file = io.BytesIO(whole)
            if fitsio is None:
                raise Declined("fitsio is not installed")
            self._fits: Any = fitsio.FITS(path)
        except BaseException:
            self._file.close()
            raise
        self._headers: dict[int, Cards] = {}

    def _laid_out(self, data: bytes) -> bool:
        """Lay the file's bytes out in memory (:class:`MemoryFits`, its headers parsed
        once); False where they are not plain (then cfitsio opens the file)."""
        try:
            self._fits = MemoryFits(data)
        except Declined:
            return False
        self._file = io.BytesIO(data)
        self._headers = {i: hdu.cards for i, hdu in enumerate(self._fits)}
        return True

    def __enter__(self) -> FastFits:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fits.close()
        self._file.close()

    def hand_over(self, path: str) -> None:
        """Keep this open file for the next :func:`taken` of ``path`` on this thread:
        ``describe`` routes a FITS file and its reader reads the pixels right after, on
        the same decoder thread, without opening it and parsing its headers again."""
        previous = getattr(_handed, "file", None)
        if previous is not None:
            previous[1].__exit__()
        _handed.file = (path, self)


    def _hdu(self, index: int) -> Any:
        if index < 0:  # fitsio would count from the end
            raise Declined("negative HDU index")
        return self._fits[index]

    def is_image(self, index: int) -> bool:
        """An image HDU to cfitsio and to astropy alike (astropy goes by the first card)."""
        header = self.header(index)
        if self._hdu(index).get_exttype(num=True) != IMAGE_HDU:
            return False
        if header.compressed:
            return (
                header.first == "XTENSION"
                and header.get("XTENSION") in ("BINTABLE", "A3DTABLE")
                and header.get("ZIMAGE") is True
            )
        if index == 0:
            return (
                header.first == "SIMPLE"
                and header.get("SIMPLE") is True
                and header.get("GROUPS") is None
            )
        return header.first == "XTENSION" and header.get("XTENSION") == "IMAGE"

    def is_compressed(self, index: int) -> bool:
        return self.header(index).compressed

    def data_start(self, index: int) -> int:
        return int(self._hdu(index).get_offsets()["data_start"])

    def header(self, index: int) -> Cards:
        """HDU ``index``'s header; a tile-compressed image's reads as the image's."""
        if index not in self._headers:
            hdu = self._hdu(index)
            offsets = hdu.get_offsets()
            start, stop = offsets["header_start"], offsets["data_start"]
            self._file.seek(start)
            raw = self._file.read(stop - start)
            if len(raw) != stop - start:
                raise Declined("header shorter than cfitsio says")
            compressed = hdu.get_exttype(num=True) == IMAGE_HDU and hdu.is_compressed()
            self._headers[index] = Cards(raw, compressed=bool(compressed))
        return self._headers[index]

    def headers(self) -> list[Cards]:
        """Every HDU's header, for naming HDUs (:func:`find_hdu`)."""
        return [self.header(i) for i in range(len(self._fits))]

    def pixels(self, index: int) -> np.ndarray:
        """The image as stored (decompressed, native byte order): what astropy's
        ``data`` holds for an unscaled image."""
        return self._hdu(index).read()

    def first_plane(self) -> int:
        """The first image HDU holding a 2-D plane, by the rule astropy's path applies.

        Declined when another kind of HDU comes first or no plane is found: the two
        routes treat tables differently, and astropy words the errors.
        """
        for index in range(len(self._fits)):
            if not self.is_image(index):
                raise Declined("a table or other HDU comes before the image")
            if plane_shape(header_shape(self.header(index))):
                return index
        raise Declined("no 2-D image")


#: Cards without a value; astropy never answers ``get`` with them.
_COMMENTARY = frozenset({"", "COMMENT", "HISTORY", "CONTINUE"})
#: Keys a tile-compressed HDU stores with a Z prefix (astropy's image header drops it).
_IMAGE_KEY = re.compile(r"BITPIX|NAXIS\d*")
#: A value in the fixed format every FITS writer uses; anything else astropy parses
#: leniently, and the file is left to astropy.
_VALUE = re.compile(
    r" *(?:'(?P<str>(?:[^']|'')*)'|(?P<bool>[TF])|(?P<int>[+-]?\d+)"
    r"|(?P<float>[+-]?(?:\d+\.?\d*|\.\d+)(?:[ED][+-]?\d+)?)) *(?:/.*)?"
)


class Cards:
    """Header values parsed from the raw 80-character cards, each as astropy's
    ``Header.get`` gives it, else :class:`Declined` (duplicates, HIERARCH names,
    non-standard cards and values: wherever the two parsers might differ)."""

    def __init__(self, raw: bytes, compressed: bool = False) -> None:
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise Declined("non-ASCII header") from exc
        self.compressed = compressed
        self.first = text[:8].rstrip().upper()  # astropy picks the HDU class by it
        self._values: dict[str, str] = {}
        self._unsure: set[str] = set()
        for start in range(0, len(text) - 79, 80):
            card = text[start : start + 80]
            key = card[:8].rstrip().upper()
            if key == "END":
                break
            if key in _COMMENTARY:
                continue
            if key == "HIERARCH":  # astropy answers get(NAME) from these too
                self._unsure.add(card[8:].partition("=")[0].strip().upper())
            elif card[8:10] != "= " or key in self._values:
                # astropy also finds a keyword ended early by "= " ("CRVAL1 = 1.0")
                self._unsure.update((key, card[:10].partition("= ")[0].strip().upper()))
            else:
                self._values[key] = card[10:]

    def keys(self) -> Iterable[str]:
        return self._values.keys() | self._unsure

    def get(self, key: str, default: Any = None) -> Any:
        if self.compressed and _IMAGE_KEY.fullmatch(key):
            key = "Z" + key
        if key in self._unsure:
            raise Declined(f"the {key} card is repeated or non-standard")
        raw = self._values.get(key)
        if raw is None:
            return default
        m = _VALUE.fullmatch(raw)
        if m is None:
            raise Declined(f"the {key} value is not in the fixed format")
        if (text := m["str"]) is not None:
            if text.rstrip().endswith("&"):
                raise Declined(f"the {key} string may go on in CONTINUE cards")
            return text.replace("''", "'").rstrip()
        if m["bool"]:
            return m["bool"] == "T"
        if m["int"]:
            return int(m["int"])
        return float(m["float"].replace("D", "E"))


#: Stored pixel types by BITPIX (FITS is big-endian; 8-bit pixels are unsigned).
_PIXELS = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
#: The unsigned-integer convention (BSCALE 1, BZERO 2**(BITPIX-1)) read as cfitsio reads
#: it: the stored signed integer with its top bit flipped, as an unsigned integer.
_UNSIGNED = {16: (">u2", np.uint16(1 << 15)), 32: (">u4", np.uint32(1 << 31))}


class MemoryFits:
    """The HDUs of a FITS file held in memory, found from their headers: what
    :class:`FastFits` asks of ``fitsio.FITS`` (``len``, indexing, ``close``), for files
    whose every HDU is a plain image or table. Declined at the first doubt (compressed
    images, random groups, values :class:`Cards` declines, data running past the end,
    bytes after the last HDU that are not an extension): cfitsio, then astropy, decide."""

    def __init__(self, data: bytes) -> None:
        self._hdus: list[MemoryHdu] = []
        start = 0
        while start < len(data):
            if start and data[start:start + 8] != b"XTENSION":
                raise Declined("bytes after the last HDU")
            hdu = MemoryHdu(data, start, first=not self._hdus)
            self._hdus.append(hdu)
            start = hdu.data_start + -(-hdu.data_bytes // 2880) * 2880

    def __len__(self) -> int:
        return len(self._hdus)

    def __getitem__(self, index: int) -> MemoryHdu:
        return self._hdus[index]

    def close(self) -> None:
        """Nothing to release: the bytes go with the object."""


class MemoryHdu:
    """One plain HDU in a FITS file's bytes: its type, offsets and pixels, as a cfitsio
    HDU object gives them (``get_exttype``, ``is_compressed``, ``get_offsets``, ``read``)."""

    def __init__(self, data: bytes, start: int, first: bool) -> None:
        data_start = end_block(data, start)
        if data_start is None:
            raise Declined("no END card")
        self._data, self.header_start, self.data_start = data, start, data_start
        header = Cards(data[start:data_start])  # its cards end at END
        if first:
            if header.first != "SIMPLE" or header.get("SIMPLE") is not True \
                    or header.get("GROUPS") is not None:
                raise Declined("not a plain primary HDU")
            self._type = IMAGE_HDU
        else:
            xtension = header.get("XTENSION") if header.first == "XTENSION" else None
            kinds = {"IMAGE": IMAGE_HDU, "BINTABLE": BINARY_TBL, "TABLE": ASCII_TBL}
            if xtension not in kinds or header.get("ZIMAGE") is not None:
                raise Declined("a compressed image or an unusual extension")
            self._type = kinds[xtension]
        bitpix, naxis = header.get("BITPIX"), header.get("NAXIS")
        if bitpix not in _PIXELS or not isinstance(naxis, int) or not 0 <= naxis <= 999:
            raise Declined("BITPIX or NAXIS is not a standard value")
        dims = [header.get(f"NAXIS{k}") for k in range(naxis, 0, -1)]
        pcount, gcount = (0, 1) if first else (header.get("PCOUNT", 0), header.get("GCOUNT", 1))
        if not all(isinstance(v, int) and v >= 0 for v in (*dims, pcount, gcount)):
            raise Declined("an axis length, PCOUNT or GCOUNT is not a count")
        self.cards, self._bitpix, self.shape = header, bitpix, tuple(dims)
        self.data_bytes = (abs(bitpix) // 8 * gcount * (pcount + math.prod(dims))
                           if naxis else 0)
        if self.data_start + self.data_bytes > len(data):
            raise Declined("the data runs past the end of the file")

    def get_exttype(self, num: bool = True) -> int:
        return self._type

    def is_compressed(self) -> bool:
        return False

    def get_offsets(self) -> dict[str, int]:
        return {"header_start": self.header_start, "data_start": self.data_start,
                "data_end": self.data_start + self.data_bytes}

    def read(self) -> np.ndarray:
        """The image's pixels as cfitsio gives them (unsigned integers as such; other
        scaling declined), a read-only view of the file's bytes."""
        if self._type != IMAGE_HDU:
            raise Declined("not an image")
        bscale, bzero = self.cards.get("BSCALE", 1), self.cards.get("BZERO", 0)
        stored, flip = _PIXELS[self._bitpix], None
        if (bscale, bzero) != (1, 0):
            if bscale != 1 or self._bitpix not in _UNSIGNED \
                    or bzero != int(_UNSIGNED[self._bitpix][1]):
                raise Declined("scaled pixels")
            stored, flip = _UNSIGNED[self._bitpix]
        pixels = np.frombuffer(self._data, stored, math.prod(self.shape), self.data_start)
        if flip is not None:
            pixels = pixels ^ flip
        return pixels.reshape(self.shape)


def taken(path: str) -> FastFits | None:
    """The open file :meth:`FastFits.hand_over` kept for ``path`` on this thread, else
    None (a kept file of another path is closed)."""
    kept = getattr(_handed, "file", None)
    _handed.file = None
    if kept is None:
        return None
    if kept[0] == path:
        return kept[1]
    kept[1].__exit__()
    return None


_handed = threading.local()


def release_handed() -> None:
    """Close a file handed over on this thread and not taken (its input was not read), and
    drop any bytes ``describe`` handed over and no reader took."""
    taken("")
    take_bytes("")
