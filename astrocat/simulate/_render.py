"""Small vectorised light-profile helpers shared by the image simulators."""

from __future__ import annotations

from functools import cache

import numpy as np


@cache
def pixel_grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(y, x)`` pixel-centre coordinates of an n x n image, float32 (cached per size)."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    yy.flags.writeable = False
    xx.flags.writeable = False
    return yy, xx


def sersic_bn(n: float) -> float:
    """b_n so that r_e encloses half the light (Ciotti & Bertin 1999 expansion)."""
    return 2.0 * n - 1.0 / 3.0 + 4.0 / (405.0 * n) + 46.0 / (25515.0 * n * n)


def rotate(dx: np.ndarray, dy: np.ndarray, pa: float) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates along (u) and across (v) a major axis at position angle ``pa`` (rad)."""
    c, s = np.float32(np.cos(pa)), np.float32(np.sin(pa))
    return dx * c + dy * s, -dx * s + dy * c


def ellipse_radius(u: np.ndarray, v: np.ndarray, q: float, boxiness: float = 2.0) -> np.ndarray:
    """Elliptical radius; ``boxiness`` > 2 gives boxy (generalised-ellipse) isophotes."""
    if boxiness == 2.0:
        return np.hypot(u, v / np.float32(q))
    c = np.float32(boxiness)
    return (np.abs(u) ** c + np.abs(v / np.float32(q)) ** c) ** (np.float32(1.0) / c)


def sersic(r: np.ndarray, re: float, n: float) -> np.ndarray:
    """Sersic surface brightness, 1 at r = r_e (fast paths for n = 0.5 and 1)."""
    bn = np.float32(sersic_bn(n))
    x = r / np.float32(re)
    if n == 1.0:
        return np.exp(-bn * (x - 1.0))
    if n == 0.5:
        return np.exp(-bn * (x * x - 1.0))
    return np.exp(-bn * (x ** np.float32(1.0 / n) - 1.0))


def unit(img: np.ndarray) -> np.ndarray:
    """Scale to unit total so component fluxes can be set directly."""
    s = float(img.sum())
    return img / np.float32(s) if s > 0 else img


def lupton_rgb(
    r: np.ndarray, g: np.ndarray, b: np.ndarray, *, stretch: float, q: float, minimum: float
) -> np.ndarray:
    """``astropy.visualization.make_lupton_rgb`` (Lupton et al. 2004), in float32.

    Same asinh-of-intensity mapping, colour-preserving saturation and truncation to
    uint8 as astropy 6-8 (tests check agreement to one grey level); about 4x faster,
    which matters at 20,000 images.
    """
    img = np.stack([r, g, b]).astype(np.float32, copy=False) - np.float32(minimum)
    intensity = img.sum(axis=0) / np.float32(3.0)
    slope = np.float32(0.1 / np.arcsinh(0.1 * q))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.arcsinh(intensity * np.float32(q / stretch)) * slope / intensity
    ratio[~(intensity > 0)] = 0.0
    img *= ratio
    np.maximum(img, 0.0, out=img)
    peak = img.max(axis=0)
    over = peak > 1.0
    img[:, over] /= peak[over]
    img *= np.float32(255.0)
    return np.moveaxis(img.astype(np.uint8), 0, -1)
