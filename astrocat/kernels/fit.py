"""Bring a plane to the pixel scale and size its model was trained at, as the card says.

Survey stamps rarely match a model exactly: a 100x100 cut-out for a 101x101 network, a
0.2"/px camera for a model trained at 0.1"/px. The card decides (``fit``, ``fill``,
``pixel_scale``, ``scale_mismatch``); the defaults are astrocat 0.1's behaviour, byte for
byte: larger stamps centre-cropped, smaller ones refused, the WCS scale not looked at.

Resampling is flux-conserving: each output pixel receives the input flux over the area
it covers (exact area overlap of axis-aligned pixel grids, i.e. drizzle with pixfrac 1 and
no rotation), so the total flux of the covered area is kept and a point source stays as
bright as it was. It is separable: two small overlap matrices, one per axis.
"""

from __future__ import annotations

import math

import numpy as np

from astrocat.errors import InputError
from astrocat.kernels.preprocess import InputSpecLike, centre_crop_plane

#: Pixel scales that differ by less than this fraction are taken as equal: WCS solutions
#: of one instrument scatter by a fraction of a percent.
SCALE_TOLERANCE = 0.01


def fit_plane(data: np.ndarray, spec: InputSpecLike,
              scale: tuple[float, float] | None = None) -> np.ndarray:
    """``data`` at the model's pixel scale (when the card gives one and the WCS another)
    and size (``spec.fit``)."""
    if spec.pixel_scale is not None and scale is not None:
        data = to_scale(data, scale, spec)
    return to_size(data, spec)


def to_scale(data: np.ndarray, scale: tuple[float, float], spec: InputSpecLike) -> np.ndarray:
    """Resample from the stamp's (y, x) arcsec/px to the card's ``pixel_scale``, keeping
    the whole pixels that fit in the stamp's field, centred; or refuse, as the card says."""
    target = spec.pixel_scale
    assert target is not None
    sy, sx = scale
    if abs(sy / target - 1) <= SCALE_TOLERANCE and abs(sx / target - 1) <= SCALE_TOLERANCE:
        return data
    shown = f"{sx:.4g}\"" if math.isclose(sx, sy, rel_tol=SCALE_TOLERANCE) else \
        f"{sx:.4g}\" x {sy:.4g}\""
    if spec.scale_mismatch == "error":
        raise InputError(f"pixels are {shown} per pixel but the model was trained at "
                         f"{target:.4g}\"/px (pixel_scale in its card); set scale_mismatch = "
                         "\"resample\" in the card, or use a model trained at this scale")
    fy, fx = sy / target, sx / target  # output pixels per input pixel, along each axis
    h, w = data.shape
    ny, nx = math.floor(h * fy + 1e-6), math.floor(w * fx + 1e-6)
    if ny < 1 or nx < 1:
        raise InputError(f"a {h}x{w} stamp at {shown}/px holds less than one pixel at the "
                         f"model's {target:.4g}\"/px")
    return rebin(data, ny, nx, fy, fx)


def to_size(data: np.ndarray, spec: InputSpecLike) -> np.ndarray:
    """The model's (height, width): crop a larger stamp about its centre; a smaller one
    is padded (``fit = "pad"``), resampled (``"resample"``) or refused."""
    height, width = spec.image_size
    h, w = data.shape
    if (h, w) == (height, width):
        return data
    if spec.fit == "error":
        raise InputError(f"image is {h}x{w} pixels but the model takes {height}x{width}; its "
                         "card refuses other sizes (fit = \"error\"); fit = \"crop\", \"pad\" "
                         "or \"resample\" would take it")
    if spec.fit == "resample":
        return rebin(data, height, width)
    if spec.fit == "pad" and (h < height or w < width):
        data = pad_plane(data, max(h, height), max(w, width), raw_value(spec, spec.fill))
    elif h < height or w < width:
        raise InputError(f"image is {h}x{w} pixels but the model needs at least "
                         f"{height}x{width}; set fit = \"pad\" or \"resample\" in the model "
                         "card to use smaller stamps")
    return centre_crop_plane(data, height, width)


def pad_plane(data: np.ndarray, height: int, width: int, value: float) -> np.ndarray:
    """``data`` centred in a ``height x width`` plane of ``value`` (the extra row or column
    of an odd difference goes after, as the crop takes it before)."""
    h, w = data.shape
    top, left = (height - h) // 2, (width - w) // 2
    out = np.full((height, width), value, dtype=np.float32)
    out[top:top + h, left:left + w] = data
    return out


def rebin(data: np.ndarray, height: int, width: int, fy: float | None = None,
          fx: float | None = None) -> np.ndarray:
    """Flux-conserving resampling onto a ``height x width`` grid with the same centre, whose
    pixels are ``1/fy x 1/fx`` input pixels (default: the grid spans the whole stamp); each
    output pixel receives the flux over the input area it covers."""
    h, w = data.shape
    ry = overlap(h, height, height / h if fy is None else fy)
    rx = overlap(w, width, width / w if fx is None else fx)
    return (ry @ data.astype(np.float64) @ rx.T).astype(np.float32)


def overlap(n_in: int, n_out: int, f: float) -> np.ndarray:
    """(n_out, n_in) lengths (in input pixels) of the overlap of each output pixel with
    each input pixel, for output pixels 1/f input pixels wide, centred on the input."""
    edges = n_in / 2 + (np.arange(n_out + 1) - n_out / 2) / f
    cells = np.arange(n_in)
    lo = np.maximum(edges[:-1, None], cells[None, :])
    hi = np.minimum(edges[1:, None], cells[None, :] + 1)
    return np.clip(hi - lo, 0.0, None)


def raw_value(spec: InputSpecLike, value: float) -> float:
    """The raw pixel value that the card's scaling turns into ``value`` (the pad fill is
    given in network-input units: 0 is the training mean of a standardized model)."""
    mean, std = float(np.mean(spec.mean)), float(np.mean(spec.std))
    match spec.preprocessing:
        case "scale_255":
            return value * 255.0
        case "scale_255_standardize":
            return (value * std + mean) * 255.0
        case "standardize":
            return value * std + mean
        case "log_standardize":
            return 10.0 ** (value * std + mean)
    raise ValueError(f"no single raw value for {spec.preprocessing} preprocessing")
