"""JPEG and PNG cut-outs: decoded at reduced scale where possible, then cropped and resized.

Apart from the other formats because Pillow is its only library and decoding, not I/O,
is its cost.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from astrocat.errors import InputError
from astrocat.sources.common import about


def read_rgb(path: str, size: int, crop_fraction: float) -> np.ndarray:
    """Centre-crop ``crop_fraction`` of the shorter side, resize to (size, size, 3) uint8.

    JPEGs are decoded at a reduced DCT scale (``draft``) when the crop still holds at
    least ``size`` pixels afterwards: for survey cut-outs that are several times larger
    than the network input this skips most of the decoding work.
    """
    if size < 1 or not 0.0 < crop_fraction <= 1.0:
        raise ValueError(f"need size >= 1 and 0 < crop_fraction <= 1, got {size}, {crop_fraction}")
    with about(path):
        try:
            img = Image.open(path)
        except OSError as exc:
            raise InputError(f"not a readable JPEG or PNG image ({exc})") from exc
        with img:
            kind = img.format or "image"
            try:
                return _crop_resize(img, size, crop_fraction)
            except (
                OSError,
                SyntaxError,
                ValueError,
                EOFError,
                Image.DecompressionBombError,
            ) as exc:
                raise InputError(f"{kind} data is truncated or corrupt ({exc})") from exc


def _crop_resize(img: Image.Image, size: int, crop_fraction: float) -> np.ndarray:
    width, height = img.size
    side = crop_fraction * min(width, height)  # crop side in original pixels
    scale = 1.0  # original pixels per decoded pixel
    if img.format == "JPEG" and side > size:
        factor = size / side
        drafted = img.draft("RGB", (math.ceil(width * factor), math.ceil(height * factor)))
        if drafted is not None:
            scale = width / drafted[1][2]
    img.load()  # decoding errors (truncation included) surface here
    if img.mode in ("1", "LA", "I;16", "I;16L", "I;16B", "I"):
        img = _to_grey8(img)
    elif img.mode not in ("RGB", "L"):
        img = img.convert("RGB")  # palette, RGBA, CMYK, YCbCr ...
    # Crop on whole decoded pixels first (so nothing outside the crop bleeds into its
    # edges), then resize; Pillow's bilinear filter widens with the scale factor, so
    # downscales are antialiased.
    w, h = img.size
    crop = max(1, min(round(side / scale), w, h))
    left, top = (w - crop) // 2, (h - crop) // 2
    if (left, top, crop) != (0, 0, w) or h != w:
        img = img.crop((left, top, left + crop, top + crop))
    out = img.resize((size, size), Image.Resampling.BILINEAR)
    arr = np.asarray(out, dtype=np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(arr)


def _to_grey8(img: Image.Image) -> Image.Image:
    """8-bit greyscale from 1-bit, grey+alpha or 16-bit greyscale (scaled, not clipped)."""
    if img.mode in ("1", "LA"):
        return img.convert("L")
    arr = np.asarray(img).astype(np.float64)
    top = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
    return Image.fromarray(np.clip(arr * (255.0 / top) + 0.5, 0, 255).astype(np.uint8))
