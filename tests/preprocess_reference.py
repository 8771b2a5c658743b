"""An independent, slow, float64 reference of image preprocessing, written from the
definitions rather than from astrocat's code: a centre crop of ``crop_fraction`` of the
shorter side, zoomed by ``zoom`` (the central 1/zoom), resampled to ``size`` with a
separable filter that widens with the downscale factor when antialiasing (Pillow's and
torchvision's ``antialias=True`` convention), pixels outside the crop never contributing.
"""

from __future__ import annotations

import math

import numpy as np


def _filter(name: str):
    if name == "bilinear":
        return 1.0, lambda x: np.clip(1.0 - np.abs(x), 0.0, None)
    if name == "box":
        return 0.5, lambda x: ((x > -0.5) & (x <= 0.5)).astype(float)  # as Pillow
    if name == "bicubic":
        a = -0.5

        def cubic(x):
            x = np.abs(x)
            return np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                            np.where(x < 2, (((x - 5) * x + 8) * x - 4) * a, 0.0))
        return 2.0, cubic
    if name == "lanczos":
        return 3.0, lambda x: np.where(np.abs(x) < 3, np.sinc(x) * np.sinc(x / 3), 0.0)
    raise ValueError(name)


def _weights(n_in: int, lo: float, hi: float, n_out: int, name: str,
             antialias: bool) -> np.ndarray:
    """(n_out, n_in) weights sampling [lo, hi) of an axis of n_in pixels."""
    support, f = _filter(name)
    scale = (hi - lo) / n_out
    fscale = max(scale, 1.0) if antialias else 1.0
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        centre = lo + (i + 0.5) * scale
        j0 = max(int(centre - support * fscale + 0.5), 0)
        j1 = min(int(centre + support * fscale + 0.5), n_in)
        j = np.arange(j0, j1)
        w = f((j + 0.5 - centre) / fscale)
        m[i, j0:j1] = w / w.sum()
    return m


def crop_box(width: int, height: int, crop_fraction: float, zoom: float = 1.0):
    side = crop_fraction * min(width, height) / zoom
    return ((width - side) / 2, (height - side) / 2, (width + side) / 2, (height + side) / 2)


def preprocess(img: np.ndarray, size: int, crop_fraction: float, zoom: float = 1.0,
               name: str = "bilinear", antialias: bool = True) -> np.ndarray:
    """(H, W, C) pixels -> (size, size, C) float64, in the image's own units."""
    h, w = img.shape[:2]
    x0, y0, x1, y1 = crop_box(w, h, crop_fraction, zoom)
    # pixels outside the crop never contribute: work on the enclosing whole-pixel window
    left, top = math.floor(x0), math.floor(y0)
    win = img[top:math.ceil(y1), left:math.ceil(x1)].astype(np.float64)
    wy = _weights(win.shape[0], y0 - top, y1 - top, size, name, antialias)
    wx = _weights(win.shape[1], x0 - left, x1 - left, size, name, antialias)
    return np.einsum("ikc,lk->ilc", np.einsum("ij,jkc->ikc", wy, win), wx)
