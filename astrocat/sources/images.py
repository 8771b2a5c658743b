"""JPEG and PNG cut-outs: decoded at reduced scale where possible, then cropped and resized.

Apart from the other formats because decoding, not I/O, is their cost. Pillow is the
reference. Baseline colour and greyscale JPEGs are decoded by libjpeg-turbo through
``simplejpeg`` instead, at the DCT scale Pillow's ``draft`` would choose, giving Pillow's
pixels exactly (the tests compare both). The reasons are speed and concurrency: Pillow
parses JPEG headers in Python, holding the GIL that the worker's decoder threads share.
simplejpeg parses and decodes in C and releases the GIL. Anything else (PNG, CMYK, a file
libjpeg-turbo only warns about, one too large to trust) is *declined* and goes to Pillow.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from astrocat.errors import InputError
from astrocat.sources.common import about, take_bytes

try:  # a dependency; guarded only so that Pillow alone still works where it is missing
    import simplejpeg
except ImportError:  # pragma: no cover
    simplejpeg = None

#: False sends every image through Pillow, the reference (the tests compare both).
USE_SIMPLEJPEG = True

#: Card filter names -> Pillow's resampling filters.
FILTERS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
           "lanczos": Image.Resampling.LANCZOS, "box": Image.Resampling.BOX,
           "hamming": Image.Resampling.HAMMING, "nearest": Image.Resampling.NEAREST}


def read_rgb(path: str, size: int, crop_fraction: float, zoom: float = 1.0,
             resize_filter: str = "bilinear", antialias: bool = True) -> np.ndarray:
    """Centre-crop ``crop_fraction`` of the shorter side, then its central ``1 / zoom``,
    and resample that box (fractional, exact) to (size, size, 3) uint8.

    JPEGs are decoded at a reduced DCT scale (``draft``) when the crop still holds at
    least ``size`` pixels afterwards: for survey cut-outs that are several times larger
    than the network input this skips most of the decoding work.
    """
    if size < 1 or not 0.0 < crop_fraction <= 1.0 or zoom < 1.0:
        raise ValueError(f"need size >= 1, 0 < crop_fraction <= 1 and zoom >= 1, got {size}, "
                         f"{crop_fraction}, {zoom}")
    fraction = crop_fraction / zoom
    with about(path):
        decoded = _turbo_decode(path, size, fraction, antialias) if USE_SIMPLEJPEG else None
        if decoded is not None:
            return _resample(*decoded, size, resize_filter, antialias)
        try:
            img = Image.open(path)
        except OSError as exc:
            if exc.errno is not None:
                raise  # the system's (permissions, I/O): worded, and retried, by ``about``
            raise InputError(f"not a readable JPEG or PNG image ({exc})") from exc
        with img:
            kind = img.format or "image"
            try:
                return _resample(*_crop(*_pillow_decode(img, size, fraction, antialias)),
                                 size, resize_filter, antialias)
            except (
                OSError,
                SyntaxError,
                ValueError,
                EOFError,
                Image.DecompressionBombError,
            ) as exc:
                raise InputError(f"{kind} data is truncated or corrupt ({exc})") from exc


def read_bytes(path: str | Path) -> bytes:
    """A JPEG's bytes for libjpeg-turbo (the one place this module opens a file itself),
    or those ``describe`` just read and handed over (``common.hand_over``)."""
    kept = take_bytes(str(path))
    if kept is not None:
        return kept
    with open(path, "rb") as f:
        return f.read()


def gpu_jpeg(path: str | Path) -> bytes | None:
    """A JPEG's bytes for decoding on the torch engine's device (``sources.gpu_decode``,
    ``--decode gpu``): read on a decoder thread, never decoded here. None where the CPU
    path must take the file: not a JPEG, a header libjpeg-turbo cannot parse (Pillow
    words the problem), CMYK, more pixels than Pillow's decompression-bomb limit, or
    simplejpeg missing (the header then goes unchecked)."""
    with about(path):
        data = read_bytes(path)
    return data if _turbo_header(data) is not None else None


def _turbo_header(data: bytes) -> tuple[int, int, str] | None:
    """(height, width, colorspace) of a JPEG libjpeg-turbo takes as Pillow would; None for
    Pillow to take: simplejpeg missing, not a JPEG, a header it cannot parse (Pillow words
    the error), CMYK (Pillow converts it its own way), or more pixels than Pillow's
    decompression-bomb guard allows."""
    if simplejpeg is None or not data.startswith(b"\xff\xd8\xff"):
        return None
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    if colorspace not in ("YCbCr", "Gray") or not 0 < width * height <= Image.MAX_IMAGE_PIXELS:
        return None
    return height, width, colorspace


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """A JPEG's (width, height) from libjpeg-turbo's header parse of ``data`` (the whole
    file, or its first bytes where they hold the header), which holds no GIL; None where
    simplejpeg is missing or cannot read it (Pillow then looks, and words the problem)."""
    if simplejpeg is None or not USE_SIMPLEJPEG:
        return None
    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    return (width, height) if width > 0 and height > 0 else None


def _draft_scale(width: int, height: int, size: int, side: float, antialias: bool) -> int:
    """The DCT scale denominator (1, 2, 4 or 8) Pillow's ``draft`` picks for a JPEG whose
    crop of ``side`` pixels is resampled to ``size``: the largest that still leaves the
    crop at least ``size`` pixels (``JpegImageFile.draft``'s rule)."""
    if side <= size or not antialias:
        return 1
    factor = size / side
    most = min(width // math.ceil(width * factor), height // math.ceil(height * factor))
    return next(s for s in (8, 4, 2, 1) if most >= s)


def _pillow_decode(img: Image.Image, size: int, fraction: float, antialias: bool
                   ) -> tuple[Image.Image, float, float]:
    """Decode with Pillow (at a reduced DCT scale for JPEGs): the image, the crop side in
    original pixels, and original pixels per decoded pixel."""
    width, height = img.size
    side = fraction * min(width, height)  # crop side in original pixels
    scale = 1.0  # original pixels per decoded pixel
    if img.format == "JPEG" and side > size and antialias:
        factor = size / side
        drafted = img.draft("RGB", (math.ceil(width * factor), math.ceil(height * factor)))
        if drafted is not None:
            scale = width / drafted[1][2]
    img.load()  # decoding errors (truncation included) surface here
    if img.mode in ("1", "LA", "I;16", "I;16L", "I;16B", "I"):
        img = _to_grey8(img)
    elif img.mode not in ("RGB", "L"):
        img = img.convert("RGB")  # palette, RGBA, CMYK, YCbCr ...
    return img, side, scale


def _turbo_decode(path: str, size: int, fraction: float, antialias: bool
                  ) -> tuple[Image.Image, tuple[float, ...]] | None:
    """:func:`_pillow_decode`'s image, cut to its :func:`_window`, and the crop box in it,
    decoded through simplejpeg; or None to decline."""
    if simplejpeg is None:
        return None
    data = read_bytes(path)
    if (header := _turbo_header(data)) is None:
        return None
    height, width, colorspace = header
    side = fraction * min(width, height)
    s = _draft_scale(width, height, size, side, antialias)
    want = (-(-height // s), -(-width // s))
    grey = colorspace == "Gray"
    try:
        arr = simplejpeg.decode_jpeg(data, colorspace="GRAY" if grey else "RGB",
                                     min_height=want[0], min_width=want[1])
    except ValueError:
        return None  # libjpeg-turbo's warnings are errors here; Pillow decides
    if arr.shape[:2] != want:
        return None
    (left, top, right, bottom), box = _window(want[1], want[0], side / s)  # draft's scale
    arr = arr[top:bottom, left:right, 0] if grey else arr[top:bottom, left:right]
    return Image.fromarray(np.ascontiguousarray(arr)), box  # only the window is copied


def _window(w: int, h: int, s: float) -> tuple[tuple[int, int, int, int], tuple[float, ...]]:
    """The whole-pixel window enclosing the central ``s``-pixel box of a ``w`` x ``h``
    image, and the (fractional, exact) box inside that window."""
    x0, y0 = (w - s) / 2, (h - s) / 2
    left, top = max(0, math.floor(x0)), max(0, math.floor(y0))
    right, bottom = min(w, math.ceil(x0 + s)), min(h, math.ceil(y0 + s))
    return (left, top, right, bottom), (x0 - left, y0 - top, x0 + s - left, y0 + s - top)


def _crop(img: Image.Image, side: float, scale: float
          ) -> tuple[Image.Image, tuple[float, ...]]:
    """Cut a decoded image to its window (pixels outside it never contribute)."""
    window, box = _window(*img.size, side / scale)
    if window != (0, 0, *img.size):
        img = img.crop(window)
    return img, box


def _resample(img: Image.Image, box: tuple[float, ...], size: int, resize_filter: str,
              antialias: bool) -> np.ndarray:
    """The ``box`` of an image, resampled to (size, size, 3) uint8."""
    if antialias or resize_filter == "nearest":
        # Pillow's filters widen with the downscale factor: antialiased, as torchvision's
        # antialias=True is defined to match
        arr = np.asarray(img.resize((size, size), FILTERS[resize_filter], box=box))
    else:
        arr = _sample(np.asarray(img), box, size, resize_filter)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(arr, dtype=np.uint8)


#: Filter kernels (support, function) for resampling without antialiasing.
_KERNELS = {
    "bilinear": (1.0, lambda x: np.clip(1.0 - np.abs(x), 0.0, None)),
    "hamming": (1.0, lambda x: np.where(np.abs(x) < 1, 0.54 + 0.46 * np.cos(np.pi * x), 0.0)),
    "box": (0.5, lambda x: ((x > -0.5) & (x <= 0.5)).astype(np.float64)),
    "bicubic": (2.0, lambda x: _cubic(np.abs(x))),
    "lanczos": (3.0, lambda x: np.where(np.abs(x) < 3, np.sinc(x) * np.sinc(x / 3), 0.0)),
}


def _cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    return np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                    np.where(x < 2, (((x - 5) * x + 8) * x - 4) * a, 0.0))


def _weights(n_in: int, lo: float, hi: float, n_out: int, resize_filter: str) -> np.ndarray:
    """(n_out, n_in) interpolation weights at the output pixel centres, edges clamped."""
    support, kernel = _KERNELS[resize_filter]
    centres = lo + (np.arange(n_out) + 0.5) * ((hi - lo) / n_out)
    j = np.arange(n_in)
    w = kernel(j[None, :] + 0.5 - centres[:, None])
    w[np.abs(j[None, :] + 0.5 - centres[:, None]) >= support + 0.5] = 0.0
    return w / w.sum(axis=1, keepdims=True)


def _sample(arr: np.ndarray, box: tuple[float, float, float, float], size: int,
            resize_filter: str) -> np.ndarray:
    """Resample ``box`` of an image to ``size`` without antialiasing (TensorFlow's
    ``tf.image.resize`` default), separably in float, rounded to uint8."""
    x0, y0, x1, y1 = box
    wy = _weights(arr.shape[0], y0, y1, size, resize_filter)
    wx = _weights(arr.shape[1], x0, x1, size, resize_filter)
    a = arr.astype(np.float32)
    out = np.einsum("ik...,lk->il...", np.einsum("ij,jk...->ik...", wy, a), wx)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _to_grey8(img: Image.Image) -> Image.Image:
    """8-bit greyscale from 1-bit, grey+alpha or 16-bit greyscale (scaled, not clipped)."""
    if img.mode in ("1", "LA"):
        return img.convert("L")
    arr = np.asarray(img).astype(np.float64)
    top = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
    return Image.fromarray(np.clip(arr * (255.0 / top) + 0.5, 0, 255).astype(np.uint8))
